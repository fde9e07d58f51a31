/*
 * Property: with the lan profile and 10% independent datagram loss (plus
 * jitter, duplicates and reordering), 16 members running for ten minutes of
 * virtual time declare no live member dead, and the view stays whole.
 */
#include "support_sim.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

static void run_loss(double loss, uint64_t seed)
{
  sim_config cfg = {
      .n = 16, .seed = seed, .delay_ms = 2, .jitter_ms = 8, .dup = 0.01, .reorder = 0.05};
  cfg.swim.profile = MESH_SWIM_PROFILE_LAN;
  sim *s;
  assert_int_equal(sim_new(&cfg, &s), 0);
  sim_start(s);
  assert_true(sim_run_until_cond(s, 60000, 250, sim_converged, NULL));
  sim_set_loss(s, loss);
  mesh_time_ms start = sim_now(s);
  sim_run_until(s, start + 10 * 60 * 1000);
  const sim_stats *st = sim_get_stats(s);
  uint64_t refutes = 0, suspicions = 0;
  for (size_t i = 0; i < cfg.n; i++) {
    refutes += mesh_swim_counters_get(sim_core(s, i))->refutations;
    suspicions += mesh_swim_counters_get(sim_core(s, i))->suspicions_raised;
  }
  printf("loss %.0f%%: %llu datagrams lost, %llu suspicions raised, %llu refuted, "
         "%llu wrongly declared dead\n",
         loss * 100, (unsigned long long)st->datagrams_lost, (unsigned long long)suspicions,
         (unsigned long long)refutes, (unsigned long long)st->false_deaths);
  /* The loss must have been felt (so the test can fail) ... */
  assert_true(st->datagrams_lost > 1000);
  /* ... and yet nobody alive was declared dead, and the view is whole. */
  assert_int_equal(st->false_deaths, 0);
  assert_int_equal(st->epoch_overs, 0);
  sim_set_loss(s, 0);
  assert_true(sim_run_until_cond(s, sim_now(s) + 30000, 250, sim_converged, NULL));
  sim_free(s);
}

static void test_loss_10_percent_ten_minutes(void **state)
{
  run_loss(0.10, 101);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_loss_10_percent_ten_minutes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
