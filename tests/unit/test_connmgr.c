/*
 * The connection manager's rules on an injected clock: seeds for life with
 * capped backoff and jitter, members kept connected while in the view and
 * retried after they depart until reaped, remembered members only while the
 * view is empty, unreached addresses dropped, mentioned addresses tried once
 * at a bounded rate, and a bounded table that evicts and counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "net/connmgr.h"
#include "src/base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEVER UINT64_MAX

typedef struct fx {
  mesh_rng rng;
  mesh_identity self;
  mesh_connmgr_config cfg;
  mesh_connmgr *cm;
  mesh_cm_dial d[64];
} fx;

static int setup(void **state)
{
  fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  mesh_rng_seed(&f->rng, 7);
  assert_int_equal(mesh_identity_generate(&f->self), 0);
  mesh_connmgr_config_default(&f->cfg);
  assert_int_equal(mesh_connmgr_new(&f->cfg, &f->self.id, &f->rng, &f->cm), 0);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fx *f = *state;
  mesh_connmgr_free(f->cm);
  free(f);
  return 0;
}

static mesh_peer_id new_peer(void)
{
  mesh_identity id;
  assert_int_equal(mesh_identity_generate(&id), 0);
  return id.id;
}

static size_t poll_at(fx *f, mesh_time_ms now)
{
  return mesh_connmgr_poll(f->cm, now, f->d, 64);
}

/* A seed is dialled at once, then after each failure with a delay that
 * doubles up to the cap, jittered within [d/2, d]; it never gives up. */
static void test_seed_backoff_for_life(void **state)
{
  fx *f = *state;
  mesh_time_ms now = 1000;
  assert_int_equal(mesh_connmgr_add_seed(f->cm, "/ip4/10.0.0.1/tcp/52416", now), 0);
  assert_int_equal(mesh_connmgr_add_seed(f->cm, "/ip4/10.0.0.1/tcp/52416", now), -EEXIST);
  assert_int_equal(mesh_connmgr_next_due(f->cm), now);
  mesh_time_ms expect = f->cfg.backoff_min_ms;
  for (int i = 0; i < 40; i++) {
    assert_int_equal(poll_at(f, now), 1);
    assert_string_equal(f->d[0].addr, "/ip4/10.0.0.1/tcp/52416");
    assert_int_equal(f->d[0].role, MESH_CM_SEED);
    assert_false(f->d[0].has_peer);
    /* Under way: nothing more until its result. */
    assert_int_equal(poll_at(f, now + 100000), 0);
    mesh_connmgr_dial_result(f->cm, f->d[0].token, -ECONNREFUSED, NULL, now);
    mesh_time_ms due = mesh_connmgr_next_due(f->cm);
    mesh_time_ms d = expect < f->cfg.backoff_max_ms ? expect * 2 : f->cfg.backoff_max_ms;
    if (d > f->cfg.backoff_max_ms)
      d = f->cfg.backoff_max_ms;
    assert_true(due >= now + d / 2 && due <= now + d);
    expect = d;
    assert_int_equal(poll_at(f, due - 1), 0);
    now = due;
  }
  /* After forty failures it is still dialled, at the cap. */
  assert_int_equal(expect, f->cfg.backoff_max_ms);
  assert_int_equal(mesh_connmgr_counters_get(f->cm)->dials[MESH_CM_SEED], 40);
  assert_int_equal(mesh_connmgr_counters_get(f->cm)->dial_failures, 40);
}

/* Once a seed reached a peer, it is quiet while that peer is up and
 * redials soon after it goes down (a graceful restart of a seed). */
static void test_seed_quiet_while_up_redials_after_down(void **state)
{
  fx *f = *state;
  mesh_peer_id p = new_peer();
  assert_int_equal(mesh_connmgr_add_seed(f->cm, "/ip4/10.0.0.1/tcp/1", 0), 0);
  assert_int_equal(poll_at(f, 0), 1);
  mesh_connmgr_peer_up(f->cm, &p, 5);
  mesh_connmgr_dial_result(f->cm, f->d[0].token, 0, &p, 5);
  assert_true(mesh_connmgr_is_up(f->cm, &p));
  assert_int_equal(mesh_connmgr_next_due(f->cm), NEVER);
  assert_int_equal(poll_at(f, 10 * 60 * 1000), 0);
  mesh_connmgr_peer_down(f->cm, &p, 600000);
  mesh_time_ms due = mesh_connmgr_next_due(f->cm);
  assert_true(due >= 600000 + f->cfg.backoff_min_ms / 2 && due <= 600000 + f->cfg.backoff_min_ms);
  assert_int_equal(poll_at(f, due), 1);
}

/* A --join list shared by every node names this one too: the seed that
 * leads back here is never dialled again. */
static void test_seed_to_self_stops(void **state)
{
  fx *f = *state;
  assert_int_equal(mesh_connmgr_add_seed(f->cm, "/ip4/127.0.0.1/tcp/1", 0), 0);
  assert_int_equal(poll_at(f, 0), 1);
  mesh_connmgr_dial_result(f->cm, f->d[0].token, -ELOOP, NULL, 1);
  assert_int_equal(mesh_connmgr_next_due(f->cm), NEVER);
  assert_int_equal(poll_at(f, 100000000), 0);
}

/* A member in the view is dialled at once and kept connected; departed
 * (left), it is retried with backoff until reaped, then forgotten. */
static void test_member_lifetimes(void **state)
{
  fx *f = *state;
  mesh_peer_id p = new_peer();
  const char *addrs[] = {"/ip4/10.0.0.2/tcp/52416"};
  assert_int_equal(mesh_connmgr_member(f->cm, &p, MESH_CM_IN_VIEW, addrs, 1, 100), 0);
  assert_int_equal(poll_at(f, 100), 1);
  assert_true(f->d[0].has_peer);
  assert_true(mesh_peer_id_eq(&f->d[0].peer, &p));
  mesh_connmgr_peer_up(f->cm, &p, 110);
  mesh_connmgr_dial_result(f->cm, f->d[0].token, 0, &p, 110);
  assert_int_equal(poll_at(f, 1000000), 0);
  /* It leaves: the connection goes, and it is redialled, for as long as
   * membership keeps its record. */
  assert_int_equal(mesh_connmgr_member(f->cm, &p, MESH_CM_DEPARTED, addrs, 1, 2000), 0);
  mesh_connmgr_peer_down(f->cm, &p, 2000);
  mesh_time_ms now = 2000;
  for (int i = 0; i < 20; i++) {
    now = mesh_connmgr_next_due(f->cm);
    assert_true(now != NEVER);
    assert_int_equal(poll_at(f, now), 1);
    mesh_connmgr_dial_result(f->cm, f->d[0].token, -ECONNREFUSED, NULL, now);
  }
  /* It comes back under a new epoch: the dial reaches it. */
  now = mesh_connmgr_next_due(f->cm);
  assert_true(now - 2000 < 20 * (mesh_time_ms)f->cfg.backoff_max_ms);
  assert_int_equal(poll_at(f, now), 1);
  mesh_connmgr_peer_up(f->cm, &p, now);
  mesh_connmgr_dial_result(f->cm, f->d[0].token, 0, &p, now);
  assert_int_equal(mesh_connmgr_next_due(f->cm), NEVER);
  /* Reaped: forgotten. */
  mesh_connmgr_peer_down(f->cm, &p, now + 1);
  assert_int_equal(mesh_connmgr_member(f->cm, &p, MESH_CM_GONE, NULL, 0, now + 1), 0);
  assert_int_equal(mesh_connmgr_count(f->cm), 0);
  assert_int_equal(mesh_connmgr_next_due(f->cm), NEVER);
}

/* An address a member advertises but that never reached it gets three
 * tries, then leaves the redial list; one that reached it stays. */
static void test_unreached_addresses_dropped(void **state)
{
  fx *f = *state;
  mesh_peer_id p = new_peer();
  const char *addrs[] = {"/ip4/10.0.0.2/tcp/1", "/ip4/192.168.9.9/tcp/1"};
  assert_int_equal(mesh_connmgr_member(f->cm, &p, MESH_CM_IN_VIEW, addrs, 2, 0), 0);
  /* The first address reaches it. */
  assert_int_equal(poll_at(f, 0), 1);
  assert_string_equal(f->d[0].addr, addrs[0]);
  mesh_connmgr_peer_up(f->cm, &p, 1);
  mesh_connmgr_dial_result(f->cm, f->d[0].token, 0, &p, 1);
  mesh_connmgr_peer_down(f->cm, &p, 2);
  /* Now nothing answers anywhere. */
  mesh_time_ms now = 2;
  unsigned tried_second = 0;
  for (int i = 0; i < 30; i++) {
    now = mesh_connmgr_next_due(f->cm);
    assert_int_equal(poll_at(f, now), 1);
    if (strcmp(f->d[0].addr, addrs[1]) == 0)
      tried_second++;
    mesh_connmgr_dial_result(f->cm, f->d[0].token, -ETIMEDOUT, NULL, now);
  }
  assert_int_equal(tried_second, f->cfg.unreached_tries);
  assert_int_equal(mesh_connmgr_counters_get(f->cm)->addrs_dropped, 1);
  mesh_cm_entry_info e;
  assert_int_equal(mesh_connmgr_entry_at(f->cm, 0, &e), 0);
  assert_int_equal(e.n_addrs, 1);
  assert_string_equal(e.addrs[0], addrs[0]);
  assert_true(e.reached[0]);
  /* A new record with the address again: it gets its tries again. */
  assert_int_equal(mesh_connmgr_member(f->cm, &p, MESH_CM_IN_VIEW, addrs, 2, now), 0);
  assert_int_equal(mesh_connmgr_entry_at(f->cm, 0, &e), 0);
  assert_int_equal(e.n_addrs, 2);
}

/* Members kept from before a restart are dialled while the view is empty,
 * become members when the view names them, and stop when anyone else is
 * in the view. */
static void test_remembered_only_while_view_empty(void **state)
{
  fx *f = *state;
  mesh_peer_id a = new_peer(), b = new_peer(), c = new_peer();
  const char *aa[] = {"/ip4/10.0.0.1/tcp/1"};
  const char *ba[] = {"/ip4/10.0.0.2/tcp/1"};
  const char *ca[] = {"/ip4/10.0.0.3/tcp/1"};
  assert_int_equal(mesh_connmgr_remember(f->cm, &a, aa, 1, 0), 0);
  assert_int_equal(mesh_connmgr_remember(f->cm, &b, ba, 1, 0), 0);
  assert_int_equal(mesh_connmgr_remember(f->cm, &a, aa, 1, 0), -EEXIST);
  assert_int_equal(mesh_connmgr_remember(f->cm, &f->self.id, aa, 1, 0), -EINVAL);
  assert_int_equal(poll_at(f, 0), 2);
  assert_int_equal(f->d[0].role, MESH_CM_REMEMBERED);
  assert_true(f->d[0].has_peer);
  uint64_t ta = mesh_peer_id_eq(&f->d[0].peer, &a) ? f->d[0].token : f->d[1].token;
  uint64_t tb = mesh_peer_id_eq(&f->d[0].peer, &b) ? f->d[0].token : f->d[1].token;
  mesh_connmgr_dial_result(f->cm, tb, -ECONNREFUSED, NULL, 10);
  /* a answers and joins the view: b is no longer dialled. */
  mesh_connmgr_peer_up(f->cm, &a, 10);
  mesh_connmgr_dial_result(f->cm, ta, 0, &a, 10);
  assert_int_equal(mesh_connmgr_member(f->cm, &a, MESH_CM_IN_VIEW, aa, 1, 11), 0);
  assert_int_equal(mesh_connmgr_member(f->cm, &c, MESH_CM_IN_VIEW, ca, 1, 11), 0);
  assert_int_equal(poll_at(f, 100000), 1); /* c, a new member */
  assert_true(mesh_peer_id_eq(&f->d[0].peer, &c));
  mesh_connmgr_dial_result(f->cm, f->d[0].token, -ECONNREFUSED, NULL, 100000);
  const mesh_connmgr_counters *k = mesh_connmgr_counters_get(f->cm);
  assert_int_equal(k->entries[MESH_CM_REMEMBERED], 1);
  assert_int_equal(k->entries[MESH_CM_MEMBER], 2);
  /* Everyone departs: b is dialled again. */
  assert_int_equal(mesh_connmgr_member(f->cm, &a, MESH_CM_DEPARTED, aa, 1, 200000), 0);
  assert_int_equal(mesh_connmgr_member(f->cm, &c, MESH_CM_GONE, NULL, 0, 200000), 0);
  size_t n = poll_at(f, 300000);
  bool got_b = false;
  for (size_t i = 0; i < n; i++)
    got_b = got_b || mesh_peer_id_eq(&f->d[i].peer, &b);
  assert_true(got_b);
}

/* Addresses a peer mentions (an indirect-probe request naming a stranger)
 * are tried once, at a bounded rate, never twice within the memory. */
static void test_mentions_once_and_rate_limited(void **state)
{
  fx *f = *state;
  mesh_time_ms now = 5000;
  size_t queued = 0, dials = 0;
  char addr[64];
  /* 10,000 distinct addresses in one second's worth of requests. */
  for (int i = 0; i < 10000; i++) {
    snprintf(addr, sizeof addr, "/ip4/10.99.%d.%d/tcp/1", i / 250, i % 250);
    const char *l[] = {addr};
    mesh_peer_id stranger = new_peer();
    if (mesh_connmgr_mention(f->cm, &stranger, l, 1, now + (mesh_time_ms)i / 10) == 0)
      queued++;
    if (i % 16 == 15) {
      size_t n = poll_at(f, now + (mesh_time_ms)i / 10);
      for (size_t k = 0; k < n; k++) {
        assert_true(f->d[k].one_shot);
        mesh_connmgr_dial_result(f->cm, f->d[k].token, -ETIMEDOUT, NULL, now);
      }
      dials += n;
    }
  }
  dials += poll_at(f, now + 1000);
  /* burst + rate x one second, and nothing stays in the table. */
  assert_true(queued <= f->cfg.mention_burst + f->cfg.mention_rate + 1);
  assert_int_equal(dials, queued);
  assert_int_equal(mesh_connmgr_count(f->cm), 0);
  const mesh_connmgr_counters *c = mesh_connmgr_counters_get(f->cm);
  assert_int_equal(c->mention_dials, queued);
  assert_int_equal(c->mentions_refused_rate + queued, 10000);
  assert_int_equal(mesh_connmgr_next_due(f->cm), NEVER);
  /* The same address again soon after: refused as recent. */
  snprintf(addr, sizeof addr, "/ip4/10.99.0.0/tcp/1");
  const char *l[] = {addr};
  assert_int_equal(mesh_connmgr_mention(f->cm, NULL, l, 1, now + 30000), -EALREADY);
  assert_int_equal(c->mentions_refused_recent, 1);
  /* ... and allowed once the memory has passed. */
  assert_int_equal(mesh_connmgr_mention(f->cm, NULL, l, 1, now + 70000), 0);
}

/* A mention of a member dials it from its own record, not from what the
 * mentioning peer said. */
static void test_mention_of_member_uses_its_record(void **state)
{
  fx *f = *state;
  mesh_peer_id p = new_peer();
  const char *own[] = {"/ip4/10.0.0.2/tcp/1"};
  const char *said[] = {"/ip4/6.6.6.6/tcp/1"};
  assert_int_equal(mesh_connmgr_member(f->cm, &p, MESH_CM_DEPARTED, own, 1, 0), 0);
  assert_int_equal(poll_at(f, 0), 1);
  mesh_connmgr_dial_result(f->cm, f->d[0].token, -ECONNREFUSED, NULL, 0);
  assert_int_equal(mesh_connmgr_mention(f->cm, &p, said, 1, 1), 0);
  size_t n = poll_at(f, 1000000);
  assert_int_equal(n, 1);
  assert_string_equal(f->d[0].addr, own[0]);
  assert_int_equal(mesh_connmgr_counters_get(f->cm)->mention_dials, 0);
}

/* The table is bounded: a full one evicts the least recently useful entry
 * that is neither a seed nor a member in the view; with none, it refuses
 * and counts. */
static void test_table_bounded(void **state)
{
  fx *f = *state;
  mesh_connmgr_free(f->cm);
  f->cfg.max_entries = 4;
  assert_int_equal(mesh_connmgr_new(&f->cfg, &f->self.id, &f->rng, &f->cm), 0);
  const char *addrs[] = {"/ip4/10.0.0.9/tcp/1"};
  assert_int_equal(mesh_connmgr_add_seed(f->cm, "/ip4/10.0.0.1/tcp/1", 0), 0);
  mesh_peer_id old = new_peer(), newer = new_peer(), in1 = new_peer(), in2 = new_peer();
  assert_int_equal(mesh_connmgr_member(f->cm, &old, MESH_CM_DEPARTED, addrs, 1, 10), 0);
  assert_int_equal(mesh_connmgr_member(f->cm, &newer, MESH_CM_DEPARTED, addrs, 1, 20), 0);
  assert_int_equal(mesh_connmgr_member(f->cm, &in1, MESH_CM_IN_VIEW, addrs, 1, 30), 0);
  /* Full: the oldest departed member goes. */
  assert_int_equal(mesh_connmgr_member(f->cm, &in2, MESH_CM_IN_VIEW, addrs, 1, 40), 0);
  const mesh_connmgr_counters *c = mesh_connmgr_counters_get(f->cm);
  assert_int_equal(c->evicted, 1);
  assert_int_equal(mesh_connmgr_count(f->cm), 4);
  bool old_there = false;
  for (size_t i = 0; i < 4; i++) {
    mesh_cm_entry_info e;
    assert_int_equal(mesh_connmgr_entry_at(f->cm, i, &e), 0);
    old_there = old_there || (e.has_peer && mesh_peer_id_eq(&e.peer, &old));
  }
  assert_false(old_there);
  /* Evicting the other departed one, then refusing. */
  mesh_peer_id in3 = new_peer(), in4 = new_peer();
  assert_int_equal(mesh_connmgr_member(f->cm, &in3, MESH_CM_IN_VIEW, addrs, 1, 50), 0);
  assert_int_equal(mesh_connmgr_member(f->cm, &in4, MESH_CM_IN_VIEW, addrs, 1, 60), -ENOSPC);
  assert_int_equal(mesh_connmgr_add_seed(f->cm, "/ip4/10.0.0.2/tcp/1", 60), -ENOSPC);
  assert_int_equal(c->evicted, 2);
  assert_int_equal(c->refused_full, 2);
  /* Bad addresses are refused and counted. */
  char longaddr[MESH_CM_ADDR_MAX + 10];
  memset(longaddr, 'a', sizeof longaddr - 1);
  longaddr[sizeof longaddr - 1] = '\0';
  assert_int_equal(mesh_connmgr_add_seed(f->cm, longaddr, 0), -EINVAL);
  assert_int_equal(mesh_connmgr_add_seed(f->cm, "", 0), -EINVAL);
  assert_int_equal(c->refused_bad, 2);
}

/* A member that a seed already reaches is redialled by the seed alone. */
static void test_seed_covers_member(void **state)
{
  fx *f = *state;
  mesh_peer_id p = new_peer();
  assert_int_equal(mesh_connmgr_add_seed(f->cm, "/ip4/10.0.0.1/tcp/1", 0), 0);
  assert_int_equal(poll_at(f, 0), 1);
  mesh_connmgr_peer_up(f->cm, &p, 1);
  mesh_connmgr_dial_result(f->cm, f->d[0].token, 0, &p, 1);
  const char *addrs[] = {"/ip4/10.0.0.1/tcp/1"};
  assert_int_equal(mesh_connmgr_member(f->cm, &p, MESH_CM_IN_VIEW, addrs, 1, 2), 0);
  mesh_connmgr_peer_down(f->cm, &p, 3);
  size_t n = poll_at(f, 1000);
  assert_int_equal(n, 1);
  assert_int_equal(f->d[0].role, MESH_CM_SEED);
}

/* want: a member without a connection is dialled now, unless it is
 * backing off; a stranger is not in the table. */
static void test_want(void **state)
{
  fx *f = *state;
  mesh_peer_id p = new_peer(), q = new_peer();
  const char *addrs[] = {"/ip4/10.0.0.2/tcp/1"};
  assert_int_equal(mesh_connmgr_member(f->cm, &p, MESH_CM_IN_VIEW, addrs, 1, 0), 0);
  assert_int_equal(poll_at(f, 0), 1);
  mesh_connmgr_peer_up(f->cm, &p, 1);
  mesh_connmgr_dial_result(f->cm, f->d[0].token, 0, &p, 1);
  mesh_connmgr_peer_down(f->cm, &p, 100);
  /* Down a moment ago: want brings the redial forward to now. */
  assert_int_equal(mesh_connmgr_want(f->cm, &p, 101), 0);
  assert_int_equal(poll_at(f, 101), 1);
  mesh_connmgr_dial_result(f->cm, f->d[0].token, -ECONNREFUSED, NULL, 102);
  /* Failing: want does not cut the backoff short. */
  assert_int_equal(mesh_connmgr_want(f->cm, &p, 103), 0);
  assert_int_equal(poll_at(f, 103), 0);
  assert_int_equal(mesh_connmgr_want(f->cm, &q, 103), -ENOENT);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_seed_backoff_for_life, setup, teardown),
      cmocka_unit_test_setup_teardown(test_seed_quiet_while_up_redials_after_down, setup, teardown),
      cmocka_unit_test_setup_teardown(test_seed_to_self_stops, setup, teardown),
      cmocka_unit_test_setup_teardown(test_member_lifetimes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unreached_addresses_dropped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_remembered_only_while_view_empty, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mentions_once_and_rate_limited, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mention_of_member_uses_its_record, setup, teardown),
      cmocka_unit_test_setup_teardown(test_table_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_seed_covers_member, setup, teardown),
      cmocka_unit_test_setup_teardown(test_want, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
