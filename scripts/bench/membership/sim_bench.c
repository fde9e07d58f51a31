/*
 * Membership figures from the simulator, one line per N:
 *   detection time after a crash (p50, max over the live members),
 *   time for one update to reach everyone,
 *   messages and bytes per member per second when the view is quiet,
 *   members wrongly declared dead during 120 s at 0, 5, 10 and 20% loss.
 * Usage: sim_bench N [seed]
 */
#include "support_sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mesh_time_ms *seen;
static mesh_peer_id target_id;
static uint64_t target_epoch;

static void on_event(sim *s, size_t obs, const mesh_view_event *ev, void *p)
{
  if (seen != NULL && ev->type == MESH_VIEW_DEAD && ev->epoch == target_epoch &&
      memcmp(ev->peer.b, target_id.b, MESH_PEER_ID_LEN) == 0 && seen[obs] == 0)
    seen[obs] = ev->at;
}

static size_t spread_target;
static bool all_see(sim *s, void *p)
{
  for (size_t i = 0; i < sim_n(s); i++) {
    mesh_swim_state st;
    uint64_t ep;
    if (i != spread_target &&
        (sim_view_of(s, i, spread_target, &st, &ep) != 0 || ep != sim_epoch(s, spread_target)))
      return false;
  }
  return true;
}

static size_t crashed;
static bool all_detected(sim *s, void *p)
{
  for (size_t i = 0; i < sim_n(s); i++)
    if (i != crashed && seen[i] == 0)
      return false;
  return true;
}

static int cmp(const void *a, const void *b)
{
  mesh_time_ms x = *(const mesh_time_ms *)a, y = *(const mesh_time_ms *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
  if (argc < 2)
    return 2;
  size_t n = strtoul(argv[1], NULL, 10);
  uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
  sim_config cfg = {.n = n, .seed = seed, .delay_ms = 1, .jitter_ms = 2,
                    .join_spread_ms = (uint32_t)(n * 5)};
  cfg.swim.profile = MESH_SWIM_PROFILE_LAN;
  sim *s;
  if (sim_new(&cfg, &s) != 0)
    return 1;
  sim_on_event(s, on_event, NULL);
  sim_start(s);
  bool formed = sim_run_until_cond(s, 600000, 1000, sim_converged, NULL);
  mesh_time_ms formed_at = sim_now(s);
  sim_run_until(s, sim_now(s) + 60000);
  sim_reset_stats(s);
  mesh_time_ms t0 = sim_now(s);
  sim_run_until(s, t0 + 30000);
  double msgs = (double)sim_get_stats(s)->msgs_sent / (double)n / 30.0;
  double bytes = (double)sim_get_stats(s)->bytes_sent / (double)n / 30.0;

  spread_target = 0;
  sim_bump_epoch(s, 0);
  mesh_time_ms t1 = sim_now(s);
  bool spread_ok = sim_run_until_cond(s, t1 + 60000, 10, all_see, NULL);
  mesh_time_ms spread = sim_now(s) - t1;
  sim_run_until(s, sim_now(s) + 30000);

  unsigned long long fd[4] = {0};
  double losses[4] = {0, 0.05, 0.10, 0.20};
  for (int i = 0; i < 4; i++) {
    sim_set_loss(s, losses[i]);
    uint64_t before = sim_get_stats(s)->false_deaths;
    sim_run_until(s, sim_now(s) + 120000);
    fd[i] = (unsigned long long)(sim_get_stats(s)->false_deaths - before);
  }
  sim_set_loss(s, 0);
  sim_run_until(s, sim_now(s) + 60000);

  crashed = 1 % n;
  target_id = sim_identity(s, crashed)->id;
  target_epoch = sim_epoch(s, crashed);
  seen = calloc(n, sizeof *seen);
  mesh_time_ms tc = sim_now(s);
  sim_crash(s, crashed);
  bool det_ok = sim_run_until_cond(s, tc + 300000, 50, all_detected, NULL);
  mesh_time_ms *d = calloc(n, sizeof *d);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (i != crashed && seen[i] != 0)
      d[k++] = seen[i] - tc;
  qsort(d, k, sizeof *d, cmp);
  printf("%zu\t%llu\t%llu\t%llu\t%.2f\t%.0f\t%llu\t%llu\t%llu\t%llu\t%s\n", n,
         k ? (unsigned long long)d[k / 2] : 0ULL, k ? (unsigned long long)d[k - 1] : 0ULL,
         (unsigned long long)spread, msgs, bytes, fd[0], fd[1], fd[2], fd[3],
         formed && spread_ok && det_ok ? "ok" : "incomplete");
  fprintf(stderr, "N=%zu formed at %llu ms virtual\n", n, (unsigned long long)formed_at);
  free(seen);
  free(d);
  sim_free(s);
  return 0;
}
