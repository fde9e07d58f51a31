/*
 * Who the coordinator core names as sources of a model's files (rule 10):
 * members alive in the view at their current epoch whose document says the
 * revision is completed; never a departed member, a member of an ended
 * epoch, a suspect, or a peer outside the view. And the pick among them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_coord_harness.h"

#include <errno.h>

static void pair(tnode *a, tnode *b, mesh_time_ms now)
{
  tnode *all[] = {a, b};
  view_event(a, MESH_VIEW_JOINED, b, b->epoch, b->epoch, now);
  view_event(b, MESH_VIEW_JOINED, a, a->epoch, a->epoch, now);
  exchange(all, 2, now);
}

static size_t sources(tnode *t, const char *model, mesh_peer_id *out)
{
  return mesh_coord_sources(t->c, model, "main", out, MESH_COORD_SOURCES_MAX);
}

static void test_completed_alive_members_only(void **state)
{
  (void)state;
  tnode a, b, c;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  tnode_init(&c, 3, 1, NULL);
  pair(&a, &b, 0);
  pair(&a, &c, 0);
  start_model(&b, "org/done", true, 0);
  start_model(&c, "org/done", false, 0); /* still downloading */
  mesh_coord_tick(b.c, 1000);
  mesh_coord_tick(c.c, 1000);
  tnode *all[] = {&a, &b, &c};
  exchange(all, 3, 1000);
  mesh_peer_id out[MESH_COORD_SOURCES_MAX];
  assert_int_equal(sources(&a, "org/done", out), 1);
  assert_memory_equal(&out[0], &b.id.id, sizeof out[0]);
  assert_true(mesh_coord_source_ok(a.c, &b.id.id, "org/done", "main"));
  assert_false(mesh_coord_source_ok(a.c, &c.id.id, "org/done", "main"));
  /* Another revision, or another model, has no source. */
  assert_int_equal(mesh_coord_sources(a.c, "org/done", "v2", out, MESH_COORD_SOURCES_MAX), 0);
  assert_int_equal(sources(&a, "org/other", out), 0);
  /* Its own completed entry is what b may serve; c may not serve its own. */
  char dir[MESH_MODEL_DIR_MAX];
  assert_int_equal(mesh_coord_own_completed(b.c, "org/done", "main", dir, sizeof dir), 0);
  assert_string_equal(dir, "org--done");
  assert_int_equal(mesh_coord_own_completed(c.c, "org/done", "main", dir, sizeof dir), -ENOENT);
  assert_int_equal(mesh_coord_own_completed(b.c, "org/done", "v2", dir, sizeof dir), -ENOENT);

  /* A suspect is not asked (the pick waits for it rather than send the
   * download to the Hub, unless it failed the download); alive again, it
   * is asked. */
  view_event(&a, MESH_VIEW_SUSPECT, &b, 1, 1, 2000);
  assert_int_equal(sources(&a, "org/done", out), 0);
  mesh_peer_id got;
  assert_int_equal(mesh_coord_pick_source(a.c, "org/done", "main", NULL, 0, 4, &got), -EBUSY);
  mesh_coord_source_use failed = {.peer = b.id.id, .failed = true};
  assert_int_equal(mesh_coord_pick_source(a.c, "org/done", "main", &failed, 1, 4, &got), -ENOENT);
  view_event(&a, MESH_VIEW_ALIVE_AGAIN, &b, 1, 1, 2100);
  assert_int_equal(sources(&a, "org/done", out), 1);

  /* A departed member is never a source, though its document is still
   * shown (abandoned) for the grace. */
  view_event(&a, MESH_VIEW_DEAD, &b, 1, 1, 3000);
  assert_int_equal(sources(&a, "org/done", out), 0);
  assert_int_equal(mesh_coord_pick_source(a.c, "org/done", "main", NULL, 0, 4, &got), -ENOENT);
  assert_false(mesh_coord_source_ok(a.c, &b.id.id, "org/done", "main"));
  tnode_free(&a);
  tnode_free(&b);
  tnode_free(&c);
}

/* A member whose epoch ended: its document of the old epoch says completed,
 * but the member restarted and has published nothing yet under the new
 * one. It is not a source until it says so in its new epoch. */
static void test_ended_epoch_never_a_source(void **state)
{
  (void)state;
  tnode a, b;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  pair(&a, &b, 0);
  start_model(&b, "org/m", true, 0);
  mesh_coord_tick(b.c, 1000);
  tnode *all[] = {&a, &b};
  exchange(all, 2, 1000);
  mesh_peer_id out[MESH_COORD_SOURCES_MAX];
  assert_int_equal(sources(&a, "org/m", out), 1);
  /* The view says b is at epoch 2 now: the old document is over. */
  view_event(&a, MESH_VIEW_EPOCH_CHANGED, &b, 2, 1, 2000);
  assert_int_equal(sources(&a, "org/m", out), 0);
  /* A document of epoch 1 arriving late (relayed) changes nothing. */
  uint8_t *m;
  size_t len;
  craft_doc(&b.id, &b.id.id, 1, 99, "org/m", &m, &len);
  (void)mesh_coord_receive(a.c, &b.id.id, m, len, 2100);
  free(m);
  assert_int_equal(sources(&a, "org/m", out), 0);
  /* Its document of epoch 2 saying completed makes it a source again. */
  craft_doc(&b.id, &b.id.id, 2, 1, "org/m", &m, &len);
  assert_int_equal(mesh_coord_receive(a.c, &b.id.id, m, len, 2200), 0);
  free(m);
  assert_int_equal(sources(&a, "org/m", out), 1);
  tnode_free(&a);
  tnode_free(&b);
}

/* A document claimed for a peer that is not in the view is refused, so a
 * non-member never becomes a source. */
static void test_non_member_never_a_source(void **state)
{
  (void)state;
  tnode a, x;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&x, 9, 1, NULL);
  uint8_t *m;
  size_t len;
  craft_doc(&x.id, &x.id.id, 1, 1, "org/m", &m, &len);
  (void)mesh_coord_receive(a.c, &x.id.id, m, len, 100);
  free(m);
  mesh_peer_id out[MESH_COORD_SOURCES_MAX];
  assert_int_equal(sources(&a, "org/m", out), 0);
  assert_false(mesh_coord_source_ok(a.c, &x.id.id, "org/m", "main"));
  tnode_free(&a);
  tnode_free(&x);
}

/* The pick: fewest transfers first, failed sources left out, a bound per
 * source (-EBUSY when every eligible one is at it), -ENOENT when none. */
static void test_pick_least_loaded_within_bound(void **state)
{
  (void)state;
  tnode a, b, c;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  tnode_init(&c, 3, 1, NULL);
  pair(&a, &b, 0);
  pair(&a, &c, 0);
  start_model(&b, "org/m", true, 0);
  start_model(&c, "org/m", true, 0);
  mesh_coord_tick(b.c, 1000);
  mesh_coord_tick(c.c, 1000);
  tnode *all[] = {&a, &b, &c};
  exchange(all, 3, 1000);
  mesh_peer_id got;
  mesh_coord_source_use use[2] = {{.peer = b.id.id, .active = 2}, {.peer = c.id.id, .active = 1}};
  assert_int_equal(mesh_coord_pick_source(a.c, "org/m", "main", use, 2, 4, &got), 0);
  assert_memory_equal(&got, &c.id.id, sizeof got);
  use[1].failed = true;
  assert_int_equal(mesh_coord_pick_source(a.c, "org/m", "main", use, 2, 4, &got), 0);
  assert_memory_equal(&got, &b.id.id, sizeof got);
  assert_int_equal(mesh_coord_pick_source(a.c, "org/m", "main", use, 2, 2, &got), -EBUSY);
  use[0].failed = true;
  assert_int_equal(mesh_coord_pick_source(a.c, "org/m", "main", use, 2, 4, &got), -ENOENT);
  assert_int_equal(mesh_coord_pick_source(a.c, "org/none", "main", NULL, 0, 4, &got), -ENOENT);
  tnode_free(&a);
  tnode_free(&b);
  tnode_free(&c);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_completed_alive_members_only),
      cmocka_unit_test(test_ended_epoch_never_a_source),
      cmocka_unit_test(test_non_member_never_a_source),
      cmocka_unit_test(test_pick_least_loaded_within_bound),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
