/*
 * Property: a healed partition converges to one view.
 *
 * Short split (less than the suspicion timeout): suspicions are refuted and
 * nobody is declared dead. Long split (each side declares the other dead):
 * after healing, the reconnecting push-pull tells each side it was declared
 * dead, each member continues under a new epoch, and all converge to one
 * view of every live member at its current epoch. A one-way partition (A
 * hears B, B does not hear A) heals the same way.
 */
#include "support_sim.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

static sim *formed(size_t n, uint64_t seed)
{
  sim_config cfg = {.n = n, .seed = seed, .delay_ms = 2, .jitter_ms = 3};
  cfg.swim.profile = MESH_SWIM_PROFILE_LAN;
  sim *s;
  assert_int_equal(sim_new(&cfg, &s), 0);
  sim_start(s);
  assert_true(sim_run_until_cond(s, 60000, 250, sim_converged, NULL));
  return s;
}

static void split(sim *s, bool two_way)
{
  for (size_t i = 0; i < sim_n(s) / 2; i++)
    sim_set_group(s, i, 1);
  sim_block(s, 0, 1, true);
  if (two_way)
    sim_block(s, 1, 0, true);
}

static void test_short_partition_heals_without_deaths(void **state)
{
  sim *s = formed(16, 301);
  split(s, true);
  sim_run_until(s, sim_now(s) + 3000);
  sim_heal(s);
  mesh_time_ms healed = sim_now(s);
  assert_true(sim_run_until_cond(s, healed + 60000, 250, sim_converged, NULL));
  printf("short split: one view %llu ms after healing, %llu wrongly dead\n",
         (unsigned long long)(sim_now(s) - healed),
         (unsigned long long)sim_get_stats(s)->false_deaths);
  assert_int_equal(sim_get_stats(s)->false_deaths, 0);
  sim_free(s);
}

static void run_long(bool two_way, uint64_t seed)
{
  sim *s = formed(16, seed);
  split(s, two_way);
  /* Long enough for each side to declare the other dead. */
  sim_run_until(s, sim_now(s) + 40000);
  assert_true(sim_get_stats(s)->false_deaths > 0);
  assert_false(sim_converged(s, NULL));
  sim_heal(s);
  mesh_time_ms healed = sim_now(s);
  /* Reconnects happen at push-pull ticks (30 s in lan): allow three. */
  bool ok = sim_run_until_cond(s, healed + 90000, 250, sim_converged, NULL);
  printf("%s split of 40 s: one view %llu ms after healing (%llu epoch renewals)\n",
         two_way ? "two-way" : "one-way", (unsigned long long)(sim_now(s) - healed),
         (unsigned long long)sim_get_stats(s)->epoch_overs);
  assert_true(ok);
  /* Every node told it was declared dead renewed in place, through the
   * core's one path (the daemon's too), and each renewal was counted. */
  uint64_t renewals = 0;
  for (size_t i = 0; i < sim_n(s); i++)
    renewals += mesh_swim_counters_get(sim_core(s, i))->epoch_renewals;
  assert_true(sim_get_stats(s)->epoch_overs > 0);
  assert_int_equal(renewals, sim_get_stats(s)->epoch_overs);
  /* And it stays one view. */
  sim_run_until(s, sim_now(s) + 30000);
  assert_true(sim_converged(s, NULL));
  sim_free(s);
}

static void test_long_two_way_partition_converges(void **state)
{
  run_long(true, 302);
}

static void test_long_one_way_partition_converges(void **state)
{
  run_long(false, 303);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_short_partition_heals_without_deaths),
      cmocka_unit_test(test_long_two_way_partition_converges),
      cmocka_unit_test(test_long_one_way_partition_converges),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
