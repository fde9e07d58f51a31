/*
 * Collection of others' entries: 10,000 stale entries from 100 departed
 * peers collected in one pass with bounded work per tick, superseded epochs
 * collected at once, owners that come and go, and the mirror of the view
 * made equal to membership's view after events were lost (resync).
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


/* Hands ev to c as membership would: a member entering the view (or a new
 * epoch) then answers the ping membership sends it (MESH_VIEW_ANSWERED). */
static void feed_view(mesh_coord *c, const mesh_view_event *ev, mesh_time_ms now)
{
  mesh_coord_view_event(c, ev, now);
  if (ev->type == MESH_VIEW_JOINED || ev->type == MESH_VIEW_EPOCH_CHANGED) {
    mesh_view_event a = *ev;
    a.type = MESH_VIEW_ANSWERED;
    a.old_epoch = a.epoch;
    mesh_coord_view_event(c, &a, now);
  }
}

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
    feed_view(w->b.c, &ev, now);
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

typedef struct owner_probe {
  const mesh_peer_id *owner;
  bool held;
} owner_probe;

/* Sets probe->held when an entry of probe->owner is visited. */
static void owner_visit(void *arg, const mesh_coord_view_entry *ve)
{
  owner_probe *probe = arg;
  if (!ve->own && mesh_peer_id_eq(&ve->e->owner, probe->owner))
    probe->held = true;
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
    feed_view(w->b.c, &ev, 1000);
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
    feed_view(w->b.c, &ev, 50);
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

/* Collection is fair: 100 owners depart at random times over ten minutes
 * while one more owner flaps (departs, is back, departs again) every
 * second for the whole run. Every other owner's entries are gone within
 * gc-grace plus one tick of its departure, in ticks of one second. (A FIFO
 * kept the flapper at its first place with an ever later deadline, and
 * everyone queued behind it waited.) */
static void test_collection_fair_under_a_flapping_owner(void **state)
{
  (void)state;
  crowd *w = calloc(1, sizeof *w);
  assert_non_null(w);
  load_crowd(w, 1, 0);
  const mesh_time_ms grace = w->set.gc_grace, tick = 1000, span = 10 * MIN;
  mesh_rng rng;
  mesh_rng_seed(&rng, 2026);
  mesh_time_ms departs[PEERS];
  const int flapper = 0;
  for (int i = 1; i < PEERS; i++)
    departs[i] = 1000 + mesh_rng_below(&rng, span);
  bool gone[PEERS] = {false};
  for (mesh_time_ms t = 1000; t <= span + grace + 10 * tick; t += tick) {
    /* The flapper: dead on even seconds, alive again on odd ones. */
    mesh_view_event fe = {.type = (t / tick) % 2 ? MESH_VIEW_ALIVE_AGAIN : MESH_VIEW_DEAD,
                          .peer = w->ids[flapper].id,
                          .epoch = 1,
                          .old_epoch = 1,
                          .at = t};
    feed_view(w->b.c, &fe, t);
    for (int i = 1; i < PEERS; i++) {
      if (departs[i] <= t && departs[i] > t - tick) {
        mesh_view_event ev = {.type = MESH_VIEW_DEAD,
                              .peer = w->ids[i].id,
                              .epoch = 1,
                              .old_epoch = 1,
                              .at = t};
        feed_view(w->b.c, &ev, t);
        departs[i] = t; /* as the node saw it */
      }
    }
    mesh_coord_tick(w->b.c, t);
    tnode_drain(&w->b);
    tnode_clear(&w->b);
    /* Each owner is looked at twice: a tick before its grace ends (still
     * held: not collected early) and a tick after (gone). */
    for (int i = 1; i < PEERS; i++) {
      if (gone[i] || departs[i] > t)
        continue;
      bool before = t + tick == departs[i] + grace;
      bool after = t == departs[i] + grace + tick;
      if (!before && !after)
        continue;
      owner_probe probe = {&w->ids[i].id, false};
      mesh_coord_visit(w->b.c, t, owner_visit, &probe);
      if (before) {
        assert_true(probe.held);
      } else {
        if (probe.held)
          fail_msg("owner %d departed at %llu ms still held at %llu ms", i,
                   (unsigned long long)departs[i], (unsigned long long)t);
        gone[i] = true;
      }
    }
  }
  for (int i = 1; i < PEERS; i++)
    assert_true(gone[i]);
  tnode_free(&w->b);
  free(w);
}

/* ---- resync from a view source ----------------------------------------- */

/* A view source over an array, as a membership core would offer it. */
typedef struct tview {
  mesh_view_member m[8];
  size_t n;
  uint64_t seq;
  size_t fail_at; /* member_at fails for this index + 1 (0: never) */
} tview;

static uint64_t tv_seq(const void *ctx)
{
  return ((const tview *)ctx)->seq;
}

static size_t tv_count(const void *ctx)
{
  return ((const tview *)ctx)->n;
}

static int tv_at(const void *ctx, size_t i, mesh_view_member *out)
{
  const tview *v = ctx;
  if (v->fail_at != 0 && i + 1 == v->fail_at)
    return -EIO;
  if (i >= v->n)
    return -ENOENT;
  *out = v->m[i];
  return 0;
}

static void tv_put(tview *v, const tnode *peer, uint64_t epoch, mesh_view_state st)
{
  assert_true(v->n < sizeof v->m / sizeof v->m[0]);
  v->m[v->n++] = (mesh_view_member){
      .peer = peer->id.id, .epoch = epoch, .state = st, .answered = true};
}

static int resync(tnode *t, tview *v, mesh_time_ms now)
{
  mesh_view_source src = {.ctx = v, .seq = tv_seq, .count = tv_count, .member_at = tv_at};
  return mesh_coord_view_resync(t->c, &src, now);
}

/* The mirror's answer about peer: 1 in the view, 0 departed, -ENOENT. */
static int mirror(const tnode *t, const tnode *peer, uint64_t *epoch)
{
  return mesh_coord_view_of(t->c, &peer->id.id, epoch);
}

static void give_doc(tnode *t, const tnode *owner, uint64_t epoch, const char *model,
                     mesh_time_ms now)
{
  uint8_t *m;
  size_t len;
  craft_doc(&owner->id, &owner->id.id, epoch, 1, model, &m, &len);
  assert_int_equal(mesh_coord_receive(t->c, &owner->id.id, m, len, now), 0);
  free(m);
}

/* Same entries shown, same abandonment, same time left. */
static void assert_same_view(const tnode *a, const tnode *b, mesh_time_ms now)
{
  visit_count va = visit(a, now), vb = visit(b, now);
  assert_int_equal(va.others, vb.others);
  assert_int_equal(va.abandoned, vb.abandoned);
  assert_int_equal(va.min_collect_in, vb.min_collect_in);
}

/* Peers that left the view while their events were lost: one listed dead
 * (with a document), one no longer listed at all (reaped, no document).
 * The resync departs both as DEAD and LEFT events would have, sends
 * nothing, and the document is collected after gc_grace. */
static void test_resync_departed(void **state)
{
  (void)state;
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  set.gc_grace = 10000;
  tnode b, r, x, y, z;
  tnode_init(&b, 1, 1, &set); /* fed the events */
  tnode_init(&r, 2, 1, &set); /* missed them: resynced */
  tnode_init(&x, 3, 1, NULL);
  tnode_init(&y, 4, 1, NULL);
  tnode_init(&z, 5, 1, NULL);
  tnode *obs[2] = {&b, &r};
  for (int i = 0; i < 2; i++) {
    view_event(obs[i], MESH_VIEW_JOINED, &x, 1, 1, 0);
    view_event(obs[i], MESH_VIEW_JOINED, &y, 1, 1, 0);
    view_event(obs[i], MESH_VIEW_JOINED, &z, 1, 1, 0);
    give_doc(obs[i], &x, 1, "org/x", 0);
    give_doc(obs[i], &z, 1, "org/z", 0);
    tnode_drain(obs[i]);
    tnode_clear(obs[i]);
  }
  view_event(&b, MESH_VIEW_DEAD, &x, 1, 1, 1000);
  view_event(&b, MESH_VIEW_LEFT, &y, 1, 1, 1000);
  view_event(&b, MESH_VIEW_REAPED, &y, 1, 1, 1000);

  tview v = {.seq = 9};
  tv_put(&v, &x, 1, MESH_VIEW_STATE_DEAD);
  tv_put(&v, &z, 1, MESH_VIEW_STATE_ALIVE);
  assert_int_equal(mirror(&r, &x, NULL), 1);
  assert_int_equal(resync(&r, &v, 1000), 0);
  assert_int_equal(mirror(&r, &x, NULL), 0);
  assert_int_equal(mirror(&r, &y, NULL), 0);
  assert_int_equal(mirror(&r, &z, NULL), 1);
  visit_count vr = visit(&r, 1000);
  assert_int_equal(vr.others, 2);
  assert_int_equal(vr.abandoned, 1);
  assert_int_equal(vr.min_collect_in, 10000);
  assert_same_view(&b, &r, 1000);
  const mesh_coord_stats *st = mesh_coord_get_stats(r.c);
  assert_int_equal(st->view_resyncs, 1);
  assert_int_equal(st->view_resync_fixes, 2);
  assert_int_equal(st->docs_abandoned, mesh_coord_get_stats(b.c)->docs_abandoned);
  assert_int_equal(tnode_drain(&r), 0); /* a departure sends nothing */
  /* A command to the departed owner is refused as for one that left. */
  mesh_coord_cmd cmd = {.kind = MESH_COORD_CMD_START, .model_id = "org/m", .target = &x.id.id};
  char msg[256];
  assert_int_equal(mesh_coord_command(r.c, &cmd, 1000, NULL, msg, sizeof msg), -EHOSTUNREACH);
  /* Collected after gc_grace, as after the events. */
  for (int i = 0; i < 2; i++) {
    mesh_coord_tick(obs[i]->c, 10999);
    assert_int_equal(visit(obs[i], 10999).abandoned, 1);
    mesh_coord_tick(obs[i]->c, 11000);
    visit_count vv = visit(obs[i], 11000);
    assert_int_equal(vv.others, 1);
    assert_int_equal(vv.abandoned, 0);
  }
  tnode *all[5] = {&b, &r, &x, &y, &z};
  for (int i = 0; i < 5; i++)
    tnode_free(all[i]);
}

/* Members that joined while their events were lost: each is greeted as a
 * newcomer (its document requested), suspicion included, and its
 * documents are accepted from then on; this node's own listing is
 * ignored. */
static void test_resync_joined(void **state)
{
  (void)state;
  tnode b, r, x, z;
  tnode_init(&b, 11, 1, NULL);
  tnode_init(&r, 12, 1, NULL);
  tnode_init(&x, 13, 3, NULL);
  tnode_init(&z, 14, 1, NULL);
  uint8_t *m;
  size_t len;
  craft_doc(&x.id, &x.id.id, 3, 1, "org/x", &m, &len);
  assert_int_equal(mesh_coord_receive(r.c, &x.id.id, m, len, 0), -EHOSTUNREACH);

  view_event(&b, MESH_VIEW_JOINED, &x, 3, 3, 100);
  view_event(&b, MESH_VIEW_JOINED, &z, 1, 1, 100);
  view_event(&b, MESH_VIEW_SUSPECT, &z, 1, 1, 100);
  tview v = {.seq = 3};
  tv_put(&v, &r, 1, MESH_VIEW_STATE_ALIVE); /* self */
  tv_put(&v, &x, 3, MESH_VIEW_STATE_ALIVE);
  tv_put(&v, &z, 1, MESH_VIEW_STATE_SUSPECT);
  assert_int_equal(resync(&r, &v, 100), 0);
  uint64_t e = 0;
  assert_int_equal(mirror(&r, &x, &e), 1);
  assert_int_equal(e, 3);
  assert_int_equal(mirror(&r, &z, &e), 1);
  assert_int_equal(e, 1);
  assert_int_equal(mirror(&r, &r, NULL), -ENOENT);
  assert_int_equal(mesh_coord_get_stats(r.c)->view_resync_fixes, 2);
  /* The same greetings as the events made: a request to each. */
  tnode_drain(&b);
  tnode_drain(&r);
  assert_int_equal(tnode_count(&r, MESH_COORD_OUT_SEND), 2);
  assert_int_equal(tnode_count(&r, MESH_COORD_OUT_SEND), tnode_count(&b, MESH_COORD_OUT_SEND));
  assert_int_equal(mesh_coord_get_stats(r.c)->requests_sent,
                   mesh_coord_get_stats(b.c)->requests_sent);
  assert_int_equal(mesh_coord_receive(r.c, &x.id.id, m, len, 200), 0);
  free(m);
  assert_int_equal(visit(&r, 200).others, 1);
  /* z is suspected, not gone: a command to it is accepted. */
  mesh_coord_cmd cmd = {.kind = MESH_COORD_CMD_START, .model_id = "org/m", .target = &z.id.id};
  char msg[256];
  uint64_t seq = 0;
  assert_int_equal(mesh_coord_command(r.c, &cmd, 200, &seq, msg, sizeof msg), 0);
  tnode *all[4] = {&b, &r, &x, &z};
  for (int i = 0; i < 4; i++)
    tnode_free(all[i]);
}

/* A member restarted under a new epoch while the EPOCH_CHANGED was lost:
 * the old epoch's entries are detached at once (not abandoned), its
 * document is requested, late documents of the old epoch are refused. */
static void test_resync_epoch_changed(void **state)
{
  (void)state;
  tnode b, r, x;
  tnode_init(&b, 21, 1, NULL);
  tnode_init(&r, 22, 1, NULL);
  tnode_init(&x, 23, 1, NULL);
  tnode *obs[2] = {&b, &r};
  for (int i = 0; i < 2; i++) {
    view_event(obs[i], MESH_VIEW_JOINED, &x, 1, 1, 0);
    give_doc(obs[i], &x, 1, "org/x", 0);
    tnode_drain(obs[i]);
    tnode_clear(obs[i]);
  }
  view_event(&b, MESH_VIEW_EPOCH_CHANGED, &x, 2, 1, 500);
  tview v = {.seq = 2};
  tv_put(&v, &x, 2, MESH_VIEW_STATE_ALIVE);
  assert_int_equal(resync(&r, &v, 500), 0);
  uint64_t e = 0;
  assert_int_equal(mirror(&r, &x, &e), 1);
  assert_int_equal(e, 2);
  visit_count vr = visit(&r, 500);
  assert_int_equal(vr.others, 0);
  assert_int_equal(vr.abandoned, 0);
  assert_same_view(&b, &r, 500);
  assert_int_equal(mesh_coord_get_stats(r.c)->docs_collected, 1);
  tnode_drain(&b);
  tnode_drain(&r);
  assert_int_equal(tnode_count(&r, MESH_COORD_OUT_SEND), 1);
  assert_int_equal(tnode_count(&r, MESH_COORD_OUT_SEND), tnode_count(&b, MESH_COORD_OUT_SEND));
  uint8_t *m;
  size_t len;
  craft_doc(&x.id, &x.id.id, 1, 2, "org/late", &m, &len);
  assert_int_equal(mesh_coord_receive(r.c, &x.id.id, m, len, 600), -ESTALE);
  free(m);
  give_doc(&r, &x, 2, "org/x2", 600);
  assert_int_equal(visit(&r, 600).last_epoch, 2);
  tnode *all[3] = {&b, &r, &x};
  for (int i = 0; i < 3; i++)
    tnode_free(all[i]);
}

/* A mirror already equal to the view: the resync changes nothing, sends
 * nothing, counts only itself. A listing that fails half-way departs
 * nobody. */
static void test_resync_nothing_changed(void **state)
{
  (void)state;
  tnode r, x, y, w;
  tnode_init(&r, 31, 1, NULL);
  tnode_init(&x, 32, 1, NULL);
  tnode_init(&y, 33, 1, NULL);
  tnode_init(&w, 34, 1, NULL);
  start_model(&r, "org/own", true, 0); /* an own document, which newcomers would get */
  view_event(&r, MESH_VIEW_JOINED, &x, 1, 1, 0);
  view_event(&r, MESH_VIEW_JOINED, &y, 1, 1, 0);
  view_event(&r, MESH_VIEW_SUSPECT, &y, 1, 1, 0);
  view_event(&r, MESH_VIEW_JOINED, &w, 1, 1, 0);
  give_doc(&r, &x, 1, "org/x", 0);
  give_doc(&r, &w, 1, "org/w", 0);
  view_event(&r, MESH_VIEW_LEFT, &w, 1, 1, 100);
  mesh_coord_tick(r.c, 300);
  tnode_drain(&r);
  tnode_clear(&r);
  mesh_coord_stats before = *mesh_coord_get_stats(r.c);
  visit_count vb = visit(&r, 300);

  tview v = {.seq = 7};
  tv_put(&v, &x, 1, MESH_VIEW_STATE_ALIVE);
  tv_put(&v, &r, 1, MESH_VIEW_STATE_ALIVE);
  tv_put(&v, &y, 1, MESH_VIEW_STATE_SUSPECT);
  tv_put(&v, &w, 1, MESH_VIEW_STATE_LEFT);
  assert_int_equal(resync(&r, &v, 300), 0);
  mesh_coord_tick(r.c, 300);
  assert_int_equal(tnode_drain(&r), 0);
  mesh_coord_stats after = *mesh_coord_get_stats(r.c);
  assert_int_equal(after.view_resyncs, before.view_resyncs + 1);
  assert_int_equal(after.view_resync_fixes, 0);
  after.view_resyncs = before.view_resyncs;
  assert_memory_equal(&after, &before, sizeof before);
  visit_count va = visit(&r, 300);
  assert_int_equal(va.others, vb.others);
  assert_int_equal(va.abandoned, vb.abandoned);
  assert_int_equal(va.min_collect_in, vb.min_collect_in);

  /* y is missing from a listing that fails before it: nobody departs. */
  tview bad = v;
  bad.fail_at = 3;
  assert_int_equal(resync(&r, &bad, 400), -EIO);
  assert_int_equal(mirror(&r, &y, NULL), 1);
  assert_int_equal(mirror(&r, &x, NULL), 1);
  assert_int_equal(tnode_drain(&r), 0);
  tnode *all[4] = {&r, &x, &y, &w};
  for (int i = 0; i < 4; i++)
    tnode_free(all[i]);
}

/* ---- budgets of others' documents ---------------------------------------- */

/* One node b and owners that joined its view at epoch 1. */
typedef struct budgeted {
  tnode b;
  mesh_identity ids[8];
  mesh_coord_settings set;
} budgeted;

static void budgeted_new(budgeted *w, void (*tune)(mesh_coord_settings *))
{
  mesh_coord_settings_default(&w->set);
  w->set.gc_grace = 5 * MIN;
  w->set.gc_budget = 50;
  tune(&w->set);
  tnode_init(&w->b, 7, 1, &w->set);
  for (int i = 0; i < 8; i++) {
    assert_int_equal(mesh_identity_generate(&w->ids[i]), 0);
    mesh_view_event ev = {
        .type = MESH_VIEW_JOINED, .peer = w->ids[i].id, .epoch = 1, .old_epoch = 1, .at = 0};
    feed_view(w->b.c, &ev, 0);
  }
  tnode_drain(&w->b);
  tnode_clear(&w->b);
}

/* Owner i sends version v of a document of n entries; returns the result. */
static int send_doc(budgeted *w, int i, uint64_t v, size_t n, mesh_time_ms now)
{
  uint8_t *m;
  size_t len;
  char prefix[32];
  snprintf(prefix, sizeof prefix, "org/o%d-v%llu-m", i, (unsigned long long)v);
  craft_doc_n(&w->ids[i], &w->ids[i].id, 1, v, prefix, n, &m, &len);
  int rc = mesh_coord_receive(w->b.c, &w->ids[i].id, m, len, now);
  free(m);
  return rc;
}

/* Owner i's digest names (1, v): how many document requests b sends. */
static size_t requests_for_digest(budgeted *w, int i, uint64_t v, mesh_time_ms now)
{
  Mesh__Coord__Digest d;
  mesh__coord__digest__init(&d);
  d.epoch = 1;
  d.version = v;
  uint8_t buf[64];
  size_t n = mesh__coord__digest__pack(&d, buf);
  size_t before = mesh_coord_get_stats(w->b.c)->requests_sent;
  assert_int_equal(mesh_coord_app_state(w->b.c, &w->ids[i].id, buf, n, now), 0);
  tnode_drain(&w->b);
  tnode_clear(&w->b);
  return mesh_coord_get_stats(w->b.c)->requests_sent - before;
}

static void tune_owner_caps(mesh_coord_settings *s)
{
  s->doc_max_entries = 10;
  s->doc_max_bytes = 8 << 10;
}

/* One owner's document over its entry or byte cap is refused whole and
 * counted; the one it holds stays; a document within the caps is taken. */
static void test_doc_owner_caps(void **state)
{
  (void)state;
  budgeted *w = calloc(1, sizeof *w);
  budgeted_new(w, tune_owner_caps);
  const mesh_coord_stats *st = mesh_coord_get_stats(w->b.c);
  assert_int_equal(send_doc(w, 0, 1, 10, 0), 0);
  assert_int_equal(mesh_coord_held_entries(w->b.c), 10);
  assert_int_equal(send_doc(w, 0, 2, 11, 0), -EMSGSIZE);
  assert_int_equal(st->docs_refused_owner_cap, 1);
  assert_int_equal(mesh_coord_held_entries(w->b.c), 10); /* version 1 stays */
  uint64_t ten = mesh_coord_held_bytes(w->b.c);
  print_message("a document of 10 entries holds %llu bytes\n", (unsigned long long)ten);
  assert_true(ten > 10 * 40 && ten <= w->set.doc_max_bytes);
  /* Bytes: with the cap one byte under what those ten entries cost, the
   * same document is refused on a fresh node, and nine entries fit. */
  w->set.doc_max_bytes = ten - 1;
  tnode_free(&w->b);
  tnode_init(&w->b, 7, 1, &w->set);
  mesh_view_event ev = {
      .type = MESH_VIEW_JOINED, .peer = w->ids[0].id, .epoch = 1, .old_epoch = 1, .at = 0};
  feed_view(w->b.c, &ev, 0);
  st = mesh_coord_get_stats(w->b.c);
  assert_int_equal(send_doc(w, 0, 1, 10, 0), -EMSGSIZE);
  assert_int_equal(st->docs_refused_owner_cap, 1);
  assert_int_equal(mesh_coord_held_bytes(w->b.c), 0);
  assert_int_equal(send_doc(w, 0, 1, 9, 0), 0);
  tnode_free(&w->b);
  free(w);
}

static void tune_budget(mesh_coord_settings *s)
{
  s->docs_max_entries = 250;
}

/* The documents held together stay within the budget: a third owner that
 * would pass it is refused and counted, not asked again for the same
 * version; an owner's newer document replaces its own; once a departed
 * owner's document is collected (injected clock: past gc_grace) there is
 * room again. */
static void test_doc_budget(void **state)
{
  (void)state;
  budgeted *w = calloc(1, sizeof *w);
  budgeted_new(w, tune_budget);
  const mesh_coord_stats *st = mesh_coord_get_stats(w->b.c);
  assert_int_equal(send_doc(w, 0, 1, 100, 0), 0);
  assert_int_equal(send_doc(w, 1, 1, 100, 0), 0);
  assert_int_equal(send_doc(w, 2, 1, 100, 0), -ENOBUFS);
  assert_int_equal(st->docs_refused_budget, 1);
  assert_int_equal(mesh_coord_held_entries(w->b.c), 200);
  uint64_t two = mesh_coord_held_bytes(w->b.c);
  /* The refused version is not asked for again; a later one is. */
  assert_int_equal(requests_for_digest(w, 2, 1, 10), 0);
  assert_int_equal(requests_for_digest(w, 2, 2, 10), 1);
  /* An owner replaces its own: 100 leave, 140 come (240 <= 250). */
  assert_int_equal(send_doc(w, 0, 2, 140, 20), 0);
  assert_int_equal(visit(&w->b, 20).others, 240);
  /* Owner 0's old 100 await freeing: held memory counts them. */
  assert_int_equal(mesh_coord_held_entries(w->b.c), 340);
  mesh_coord_tick(w->b.c, 30);
  mesh_coord_tick(w->b.c, 40);
  assert_int_equal(mesh_coord_held_entries(w->b.c), 240);
  /* Still no room for owner 2's 100. */
  assert_int_equal(send_doc(w, 2, 2, 100, 50), -ENOBUFS);
  assert_int_equal(st->docs_refused_budget, 2);
  /* Owner 1 dies; its document is shown abandoned until gc_grace, and
   * counts until then; after that there is room. */
  mesh_view_event ev = {
      .type = MESH_VIEW_DEAD, .peer = w->ids[1].id, .epoch = 1, .old_epoch = 1, .at = 60};
  feed_view(w->b.c, &ev, 60);
  assert_int_equal(send_doc(w, 2, 3, 100, 70), -ENOBUFS);
  for (mesh_time_ms t = 60 + 5 * MIN; mesh_coord_held_entries(w->b.c) > 140; t += 10)
    mesh_coord_tick(w->b.c, t);
  assert_int_equal(send_doc(w, 2, 3, 100, 61 + 5 * MIN + 1000), 0);
  assert_int_equal(mesh_coord_held_entries(w->b.c), 240);
  assert_int_equal(st->docs_refused_budget, 3);
  assert_true(two > 0 && mesh_coord_held_bytes(w->b.c) > two);
  print_message("held: %zu entries, %llu bytes; refused for the budget: %llu\n",
                mesh_coord_held_entries(w->b.c), (unsigned long long)mesh_coord_held_bytes(w->b.c),
                (unsigned long long)st->docs_refused_budget);
  tnode_free(&w->b);
  free(w);
}

static void tune_churn(mesh_coord_settings *s)
{
  s->docs_max_entries = 1000;
  s->gc_budget = 1; /* the collector barely keeps up */
}

/* Documents replaced faster than the collector frees them: live ones stay
 * within the budget and everything in memory within twice it. */
static void test_doc_churn_bounded(void **state)
{
  (void)state;
  budgeted *w = calloc(1, sizeof *w);
  budgeted_new(w, tune_churn);
  const mesh_coord_stats *st = mesh_coord_get_stats(w->b.c);
  size_t most = 0;
  for (uint64_t v = 1; v <= 60; v++) {
    for (int i = 0; i < 4; i++)
      send_doc(w, i, v, 200, v * 10);
    mesh_coord_tick(w->b.c, v * 10 + 5);
    size_t held = mesh_coord_held_entries(w->b.c);
    most = held > most ? held : most;
    assert_true(visit(&w->b, v * 10 + 5).others <= 1000);
    assert_true(held <= 2000);
  }
  print_message("churn: most entries in memory %zu (budget 1000), refused %llu of 240\n", most,
                (unsigned long long)st->docs_refused_budget);
  assert_true(st->docs_refused_budget > 0);
  assert_true(st->docs_accepted > 4);
  tnode_free(&w->b);
  free(w);
}

/* The attack that was seen: Sybil members, each with a big document. With
 * the default settings, 4,096-entry documents are refused at the owner cap,
 * and 200 owners of 1,024 entries each fill the budget and no more. */
static void test_doc_sybils_default_budget(void **state)
{
  (void)state;
  enum { OWNERS = 200 };
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  tnode *b = calloc(1, sizeof *b);
  mesh_identity *ids = calloc(OWNERS, sizeof *ids);
  assert_true(b != NULL && ids != NULL);
  tnode_init(b, 3, 1, &set);
  const mesh_coord_stats *st = mesh_coord_get_stats(b->c);
  size_t accepted = 0;
  for (int i = 0; i < OWNERS; i++) {
    assert_int_equal(mesh_identity_generate(&ids[i]), 0);
    mesh_view_event ev = {
        .type = MESH_VIEW_JOINED, .peer = ids[i].id, .epoch = 1, .old_epoch = 1, .at = 0};
    feed_view(b->c, &ev, 0);
    tnode_drain(b);
    tnode_clear(b);
    uint8_t *m;
    size_t len;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "org/s%d-m", i);
    size_t n = i < 10 ? MESH_COORD_MAX_DOC_ENTRIES : MESH_COORD_MAX_OWN_ENTRIES;
    craft_doc_n(&ids[i], &ids[i].id, 1, 1, prefix, n, &m, &len);
    accepted += mesh_coord_receive(b->c, &ids[i].id, m, len, 0) == 0;
    free(m);
  }
  print_message("%d Sybil owners: %zu documents accepted, held %zu entries and %.1f MiB "
                "(budget 65,536 entries, 64 MiB); refused: %llu over the owner cap, %llu over "
                "the budget\n",
                OWNERS, accepted, mesh_coord_held_entries(b->c),
                (double)mesh_coord_held_bytes(b->c) / (1 << 20),
                (unsigned long long)st->docs_refused_owner_cap,
                (unsigned long long)st->docs_refused_budget);
  assert_int_equal(st->docs_refused_owner_cap, 10);
  assert_true(mesh_coord_held_entries(b->c) <= set.docs_max_entries);
  assert_true(mesh_coord_held_bytes(b->c) <= set.docs_max_bytes);
  assert_int_equal(accepted + st->docs_refused_owner_cap + st->docs_refused_budget, OWNERS);
  assert_int_equal(accepted, set.docs_max_entries / MESH_COORD_MAX_OWN_ENTRIES);
  tnode_free(b);
  free(b);
  free(ids);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ten_thousand_departed_bounded_per_tick),
      cmocka_unit_test(test_superseded_epochs_collected_at_once),
      cmocka_unit_test(test_owner_comes_and_goes),
      cmocka_unit_test(test_collection_fair_under_a_flapping_owner),
      cmocka_unit_test(test_resync_departed),
      cmocka_unit_test(test_resync_joined),
      cmocka_unit_test(test_resync_epoch_changed),
      cmocka_unit_test(test_resync_nothing_changed),
      cmocka_unit_test(test_doc_owner_caps),
      cmocka_unit_test(test_doc_budget),
      cmocka_unit_test(test_doc_churn_bounded),
      cmocka_unit_test(test_doc_sybils_default_budget),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
