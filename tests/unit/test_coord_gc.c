/*
 * Collection of others' entries: 10,000 stale entries from 100 departed
 * peers collected in one pass with bounded work per tick, superseded epochs
 * collected at once, and owners that come and go.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_coord_harness.h"

#include <errno.h>

#define MIN 60000ull
#define PEERS 100
#define PER_PEER 100
#define BUDGET 1000

typedef struct crowd {
  tnode b;                  /* the node that holds the others' entries */
  mesh_identity ids[PEERS]; /* the owners */
  mesh_coord_settings set;
} crowd;

static void load_crowd(crowd *w, uint64_t epoch, mesh_time_ms now)
{
  mesh_coord_settings_default(&w->set);
  w->set.gc_budget = BUDGET;
  w->set.gc_grace = 5 * MIN;
  tnode_init(&w->b, 99, 1, &w->set);
  for (int i = 0; i < PEERS; i++) {
    assert_int_equal(mesh_identity_generate(&w->ids[i]), 0);
    mesh_view_event ev = {.type = MESH_VIEW_JOINED,
                          .peer = w->ids[i].id,
                          .epoch = epoch,
                          .old_epoch = epoch,
                          .at = now};
    mesh_coord_view_event(w->b.c, &ev, now);
    uint8_t *m;
    size_t len;
    craft_doc_n(&w->ids[i], &w->ids[i].id, epoch, 1, "org/model", PER_PEER, &m, &len);
    assert_int_equal(mesh_coord_receive(w->b.c, &w->ids[i].id, m, len, now), 0);
    free(m);
  }
  /* The requests sent on join are not what these tests look at. */
  tnode_drain(&w->b);
  tnode_clear(&w->b);
  assert_int_equal(mesh_coord_held_entries(w->b.c), PEERS * PER_PEER);
}

static void test_ten_thousand_departed_bounded_per_tick(void **state)
{
  (void)state;
  crowd *w = calloc(1, sizeof *w);
  load_crowd(w, 1, 0);
  size_t writes_before = w->b.total[MESH_COORD_OUT_SEND] + w->b.total[MESH_COORD_OUT_JOURNAL];
  for (int i = 0; i < PEERS; i++) {
    mesh_view_event ev = {.type = i % 2 ? MESH_VIEW_DEAD : MESH_VIEW_LEFT,
                          .peer = w->ids[i].id,
                          .epoch = 1,
                          .old_epoch = 1,
                          .at = 1000};
    mesh_coord_view_event(w->b.c, &ev, 1000);
  }
  visit_count v = visit(&w->b, 1000);
  assert_int_equal(v.abandoned, PEERS * PER_PEER);
  assert_int_equal(v.min_collect_in, 5 * MIN);
  mesh_coord_tick(w->b.c, 1000 + 5 * MIN - 1);
  assert_int_equal(visit(&w->b, 1000 + 5 * MIN - 1).others, PEERS * PER_PEER);

  /* Grace over: the first tick takes all of them out of sight and frees
   * what its budget allows; the rest goes in the ticks after. */
  mesh_time_ms t = 1000 + 5 * MIN;
  int ticks = 0;
  while (mesh_coord_held_entries(w->b.c) > 0 && ticks < 1000) {
    mesh_coord_tick(w->b.c, t);
    if (ticks == 0)
      assert_int_equal(visit(&w->b, t).others, 0);
    ticks++;
    t += 10;
  }
  const mesh_coord_stats *st = mesh_coord_get_stats(w->b.c);
  assert_int_equal(mesh_coord_held_entries(w->b.c), 0);
  assert_int_equal(st->entries_collected, PEERS * PER_PEER);
  assert_int_equal(st->docs_collected, PEERS);
  assert_true(st->gc_max_work <= BUDGET);
  /* (10,000 entries + 100 documents) / 1,000 per tick. */
  assert_true(ticks >= (PEERS * PER_PEER) / BUDGET);
  assert_true(ticks <= (PEERS * PER_PEER + PEERS) / BUDGET + 1);
  /* Collecting wrote nothing and sent nothing. */
  tnode_drain(&w->b);
  assert_int_equal(w->b.total[MESH_COORD_OUT_SEND] + w->b.total[MESH_COORD_OUT_JOURNAL],
                   writes_before);
  assert_int_equal(w->b.total[MESH_COORD_OUT_STORE_PUT], 0);
  assert_int_equal(w->b.total[MESH_COORD_OUT_ACTION], 0);
  /* Past tombstone_ttl the departed peers are forgotten; then idle. */
  mesh_coord_tick(w->b.c, 1000 + w->set.tombstone_ttl + 1);
  assert_int_equal(mesh_coord_next_deadline(w->b.c), UINT64_MAX);
  tnode_free(&w->b);
  free(w);
}

static void test_superseded_epochs_collected_at_once(void **state)
{
  (void)state;
  crowd *w = calloc(1, sizeof *w);
  load_crowd(w, 3, 0);
  for (int i = 0; i < PEERS; i++) {
    mesh_view_event ev = {.type = MESH_VIEW_EPOCH_CHANGED,
                          .peer = w->ids[i].id,
                          .epoch = 4,
                          .old_epoch = 3,
                          .at = 50};
    mesh_coord_view_event(w->b.c, &ev, 50);
  }
  /* At once, before any tick. */
  assert_int_equal(visit(&w->b, 50).others, 0);
  int ticks = 0;
  while (mesh_coord_held_entries(w->b.c) > 0 && ticks < 1000) {
    mesh_coord_tick(w->b.c, 50 + (mesh_time_ms)ticks);
    ticks++;
  }
  assert_true(ticks <= (PEERS * PER_PEER) / BUDGET + 1);
  assert_true(mesh_coord_get_stats(w->b.c)->gc_max_work <= BUDGET);
  /* Documents of the old epoch arriving late are refused. */
  uint8_t *m;
  size_t len;
  craft_doc(&w->ids[0], &w->ids[0].id, 3, 2, "org/late", &m, &len);
  assert_int_equal(mesh_coord_receive(w->b.c, &w->ids[0].id, m, len, 100), -ESTALE);
  free(m);
  tnode_free(&w->b);
  free(w);
}

/* An owner that dies, comes back in the same epoch (a false death) and dies
 * again is collected gc_grace after its last departure, once. */
static void test_owner_comes_and_goes(void **state)
{
  (void)state;
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  set.gc_grace = 10000;
  tnode a, b;
  tnode_init(&a, 1, 1, &set);
  tnode_init(&b, 2, 1, &set);
  uint8_t *m;
  size_t len;
  view_event(&b, MESH_VIEW_JOINED, &a, 1, 1, 0);
  craft_doc(&a.id, &a.id.id, 1, 1, "org/m", &m, &len);
  assert_int_equal(mesh_coord_receive(b.c, &a.id.id, m, len, 0), 0);
  free(m);
  view_event(&b, MESH_VIEW_DEAD, &a, 1, 1, 1000);
  view_event(&b, MESH_VIEW_ALIVE_AGAIN, &a, 1, 1, 2000);
  assert_int_equal(visit(&b, 2000).abandoned, 0);
  /* Past the first grace: still held, it is alive. */
  mesh_coord_tick(b.c, 12000);
  assert_int_equal(visit(&b, 12000).others, 1);
  view_event(&b, MESH_VIEW_LEFT, &a, 1, 1, 13000);
  mesh_coord_tick(b.c, 22999);
  assert_int_equal(visit(&b, 22999).abandoned, 1);
  mesh_coord_tick(b.c, 23000);
  assert_int_equal(visit(&b, 23000).others, 0);
  assert_int_equal(mesh_coord_get_stats(b.c)->docs_collected, 1);
  /* Reaped, then back with a new epoch: a fresh start. */
  view_event(&b, MESH_VIEW_REAPED, &a, 1, 1, 24000);
  view_event(&b, MESH_VIEW_JOINED, &a, 2, 1, 25000);
  craft_doc(&a.id, &a.id.id, 2, 1, "org/m2", &m, &len);
  assert_int_equal(mesh_coord_receive(b.c, &a.id.id, m, len, 25000), 0);
  free(m);
  visit_count v = visit(&b, 25000);
  assert_int_equal(v.others, 1);
  assert_int_equal(v.last_epoch, 2);
  tnode_free(&a);
  tnode_free(&b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ten_thousand_departed_bounded_per_tick),
      cmocka_unit_test(test_superseded_epochs_collected_at_once),
      cmocka_unit_test(test_owner_comes_and_goes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
