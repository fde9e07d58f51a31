/*
 * Properties of dissemination and load:
 *   - one update (a member continuing under a new epoch) reaches all N
 *     members in O(log N) gossip rounds: within 4 * ceil(log2(N + 1))
 *     rounds for N = 16, 64, 256;
 *   - messages per member per probe period, once the view is formed and
 *     quiet, do not grow with N (within 25% from N = 16 to N = 256).
 */
#include "support_sim.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

static bool all_see(sim *s, void *p)
{
  size_t t = *(size_t *)p;
  for (size_t i = 0; i < sim_n(s); i++) {
    if (i == t)
      continue;
    mesh_swim_state st;
    uint64_t ep;
    if (sim_view_of(s, i, t, &st, &ep) != 0 || ep != sim_epoch(s, t))
      return false;
  }
  return true;
}

/* Spread time of one update (ms) and quiet-time messages per member per
 * second. */
static void measure(size_t n, uint64_t seed, mesh_time_ms *spread, double *msgs)
{
  sim_config cfg = {.n = n, .seed = seed, .delay_ms = 2, .jitter_ms = 3, .join_spread_ms = 2000};
  cfg.swim.profile = MESH_SWIM_PROFILE_LAN;
  sim *s;
  assert_int_equal(sim_new(&cfg, &s), 0);
  sim_start(s);
  assert_true(sim_run_until_cond(s, 300000, 500, sim_converged, NULL));
  /* Let the join news run out of retransmits. */
  sim_run_until(s, sim_now(s) + 60000);
  sim_reset_stats(s);
  mesh_time_ms t0 = sim_now(s);
  sim_run_until(s, t0 + 20000);
  *msgs = (double)sim_get_stats(s)->msgs_sent / (double)n / 20.0;
  size_t target = (size_t)(seed % n);
  sim_bump_epoch(s, target);
  mesh_time_ms t1 = sim_now(s);
  assert_true(sim_run_until_cond(s, t1 + 60000, 10, all_see, &target));
  *spread = sim_now(s) - t1;
  sim_free(s);
}

static void test_dissemination_log_n_and_flat_load(void **state)
{
  size_t sizes[3] = {16, 64, sim_scaled(256, 32)};
  double msgs[3];
  for (int i = 0; i < 3; i++) {
    mesh_time_ms spread;
    measure(sizes[i], 500 + (uint64_t)i, &spread, &msgs[i]);
    double rounds = (double)spread / 200.0;
    double bound = 4.0 * ceil(log2((double)sizes[i] + 1.0));
    printf("N=%zu: update reached all in %llu ms = %.1f gossip rounds (bound %.0f); "
           "%.2f messages per member per second when quiet\n",
           sizes[i], (unsigned long long)spread, rounds, bound, msgs[i]);
    assert_true(rounds <= bound);
  }
  assert_true(msgs[0] > 1.0); /* probes and acks do flow */
  assert_true(msgs[2] <= msgs[0] * 1.25);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dissemination_log_n_and_flat_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
