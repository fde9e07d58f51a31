/*
 * Property: every crash is detected by every live member within the bound
 * that SWIM and the profile predict, for N from 3 to 1,000, and no live
 * member is declared dead on the way.
 *
 * The bound (lan profile, probe interval P, gossip interval G):
 *   first probe of the crashed node   10 P  (each member's round-robin list
 *       puts it uniformly in 1..N-1: no member reaching it within t periods
 *       has probability about e^-t)
 *   the failed probe itself           P     (health-scaled; health stays 0 here)
 *   spreading the suspicion           2 G ceil(log2(N + 1))
 *   the suspicion timeout             at most suspicion_max_mult * min, with
 *       min = suspicion_mult * max(1, log10 N) * P
 *   spreading the death               2 G ceil(log2(N + 1))
 */
#include "support_sim.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef struct detect_ctx {
  size_t target;
  mesh_peer_id target_id;
  uint64_t target_epoch;
  mesh_time_ms *seen_dead; /* per observer, 0 = not yet */
  size_t n;
} detect_ctx;

static void on_event(sim *s, size_t obs, const mesh_view_event *ev, void *p)
{
  detect_ctx *c = p;
  if (c->seen_dead == NULL || ev->type != MESH_VIEW_DEAD)
    return;
  if (memcmp(ev->peer.b, c->target_id.b, MESH_PEER_ID_LEN) == 0 && ev->epoch == c->target_epoch &&
      c->seen_dead[obs] == 0)
    c->seen_dead[obs] = ev->at;
}

static bool all_detected(sim *s, void *p)
{
  detect_ctx *c = p;
  for (size_t i = 0; i < c->n; i++)
    if (i != c->target && sim_up(s, i) && c->seen_dead[i] == 0)
      return false;
  return true;
}

static mesh_time_ms detection_bound(const mesh_swim_config *cfg, size_t n)
{
  mesh_time_ms p = cfg->probe_interval_ms, g = cfg->gossip_interval_ms;
  double scale = log10((double)n);
  if (scale < 1.0)
    scale = 1.0;
  mesh_time_ms min = (mesh_time_ms)(cfg->suspicion_mult * scale * (double)p);
  mesh_time_ms spread = 2 * g * (mesh_time_ms)ceil(log2((double)n + 1.0));
  return 11 * p + 2 * spread + cfg->suspicion_max_mult * min;
}

static void run_detect(size_t n, uint64_t seed)
{
  sim_config cfg = {.n = n, .seed = seed, .delay_ms = 2, .jitter_ms = 3};
  cfg.swim.profile = MESH_SWIM_PROFILE_LAN;
  sim *s;
  assert_int_equal(sim_new(&cfg, &s), 0);
  detect_ctx c = {.n = n};
  sim_on_event(s, on_event, &c);
  sim_start(s);
  assert_true(sim_run_until_cond(s, 600000, 500, sim_converged, NULL));
  mesh_time_ms formed = sim_now(s);
  sim_run_until(s, formed + 5000);
  assert_int_equal(sim_get_stats(s)->false_deaths, 0);

  mesh_swim_config resolved = cfg.swim;
  assert_int_equal(mesh_swim_config_resolve(&resolved), 0);
  mesh_time_ms bound = detection_bound(&resolved, n);

  c.target = (size_t)(seed % n);
  c.target_id = sim_identity(s, c.target)->id;
  c.target_epoch = sim_epoch(s, c.target);
  c.seen_dead = calloc(n, sizeof *c.seen_dead);
  assert_non_null(c.seen_dead);
  mesh_time_ms crash = sim_now(s);
  sim_crash(s, c.target);
  bool ok = sim_run_until_cond(s, crash + bound, 100, all_detected, &c);
  mesh_time_ms worst = 0;
  size_t missing = 0;
  for (size_t i = 0; i < n; i++) {
    if (i == c.target)
      continue;
    if (c.seen_dead[i] == 0)
      missing++;
    else if (c.seen_dead[i] - crash > worst)
      worst = c.seen_dead[i] - crash;
  }
  printf("N=%zu formed at %llu ms; crash seen by all %zu live members within %llu ms "
         "(bound %llu ms), missing %zu\n",
         n, (unsigned long long)formed, n - 1, (unsigned long long)worst, (unsigned long long)bound,
         missing);
  assert_true(ok);
  assert_int_equal(missing, 0);
  assert_true(worst <= bound);
  assert_int_equal(sim_get_stats(s)->false_deaths, 0);
  free(c.seen_dead);
  sim_free(s);
}

static void test_detect_3(void **state)
{
  run_detect(3, 11);
}

static void test_detect_8(void **state)
{
  run_detect(8, 12);
}

static void test_detect_32(void **state)
{
  run_detect(32, 13);
}

static void test_detect_128(void **state)
{
  run_detect(sim_scaled(128, 32), 14);
}

/* About 30 s of CPU in a normal build; sanitizer builds set MESH_SIM_SCALE. */
static void test_detect_1000(void **state)
{
  run_detect(sim_scaled(1000, 64), 15);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_detect_3),    cmocka_unit_test(test_detect_8),
      cmocka_unit_test(test_detect_32),   cmocka_unit_test(test_detect_128),
      cmocka_unit_test(test_detect_1000),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
