/*
 * Property: a node restarted with a new epoch (same identity) is seen under
 * its new epoch by every member within a few probe intervals, and the
 * restart is never turned into a death: the old epoch ends with
 * EPOCH_CHANGED.
 *
 * Down for less than the probe timeout, nobody even suspects it: a probe
 * lost during the gap is answered through the indirect pings. Down for
 * longer (but less than the suspicion timeout), the old epoch may be
 * suspected while it is really silent, but is never declared dead, and the
 * new epoch is never suspected.
 */
#include "support_sim.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

typedef struct restart_ctx {
  mesh_peer_id id;
  uint64_t old_epoch;
  unsigned suspect_old, suspect_new, dead, changed;
} restart_ctx;

static void on_event(sim *s, size_t obs, const mesh_view_event *ev, void *p)
{
  restart_ctx *c = p;
  if (memcmp(ev->peer.b, c->id.b, MESH_PEER_ID_LEN) != 0)
    return;
  if (ev->type == MESH_VIEW_SUSPECT) {
    if (ev->epoch > c->old_epoch)
      c->suspect_new++;
    else
      c->suspect_old++;
  }
  if (ev->type == MESH_VIEW_DEAD)
    c->dead++;
  if (ev->type == MESH_VIEW_EPOCH_CHANGED && ev->old_epoch == c->old_epoch)
    c->changed++;
}

typedef struct seen_ctx {
  size_t target;
} seen_ctx;

static bool all_see_new_epoch(sim *s, void *p)
{
  seen_ctx *c = p;
  for (size_t i = 0; i < sim_n(s); i++) {
    if (i == c->target || !sim_up(s, i))
      continue;
    mesh_swim_state st;
    uint64_t ep;
    if (sim_view_of(s, i, c->target, &st, &ep) != 0 || st != MESH_SWIM_ALIVE ||
        ep != sim_epoch(s, c->target))
      return false;
  }
  return true;
}

static void run_restart(size_t n, mesh_time_ms down, bool expect_no_suspect, uint64_t seed)
{
  sim_config cfg = {.n = n, .seed = seed, .delay_ms = 2, .jitter_ms = 3};
  cfg.swim.profile = MESH_SWIM_PROFILE_LAN;
  sim *s;
  assert_int_equal(sim_new(&cfg, &s), 0);
  restart_ctx c = {0};
  sim_on_event(s, on_event, &c);
  sim_start(s);
  assert_true(sim_run_until_cond(s, 120000, 250, sim_converged, NULL));
  sim_run_until(s, sim_now(s) + 3000);
  size_t target = (size_t)(seed % n);
  c.id = sim_identity(s, target)->id;
  c.old_epoch = sim_epoch(s, target);
  sim_crash(s, target);
  sim_run_until(s, sim_now(s) + down);
  mesh_time_ms back = sim_now(s);
  sim_restart(s, target);
  seen_ctx sc = {.target = target};
  /* "A few probe intervals": five. */
  bool ok = sim_run_until_cond(s, back + 5000, 50, all_see_new_epoch, &sc);
  printf("N=%zu down %llu ms: new epoch seen by all after %llu ms; old-epoch suspicions %u, "
         "new-epoch suspicions %u, deaths %u, epoch-changed events %u\n",
         n, (unsigned long long)down, (unsigned long long)(sim_now(s) - back), c.suspect_old,
         c.suspect_new, c.dead, c.changed);
  assert_true(ok);
  /* Let any stale suspicion run its full course: still no death. */
  sim_run_until(s, sim_now(s) + 120000);
  assert_int_equal(c.dead, 0);
  assert_int_equal(c.suspect_new, 0);
  if (expect_no_suspect)
    assert_int_equal(c.suspect_old, 0);
  assert_int_equal(c.changed, n - 1);
  assert_int_equal(sim_get_stats(s)->false_deaths, 0);
  assert_true(sim_converged(s, NULL));
  sim_free(s);
}

static void test_restart_quick(void **state)
{
  run_restart(16, 300, true, 201);
}

static void test_restart_below_suspicion_timeout(void **state)
{
  run_restart(16, 3000, false, 202);
}

static void test_restart_larger(void **state)
{
  run_restart(sim_scaled(64, 16), 300, true, 203);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_restart_quick),
      cmocka_unit_test(test_restart_below_suspicion_timeout),
      cmocka_unit_test(test_restart_larger),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
