/*
 * Unit tests of the membership core's bounds on what peers can make it hold
 * (new members per push-pull, per peer and probe interval by datagram, and
 * the view's size cap), of which message kinds each class carries, and of
 * the refusal of a dead claim older than the member's refutation.
 */
#include "net/swim_internal.h"
#include "src/identity/signed.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#define MEMBERS 12

static void make_identity(mesh_identity *id, uint8_t tag)
{
  uint8_t seed[32];
  memset(seed, tag, sizeof seed);
  crypto_sign_seed_keypair(id->pk, id->sk, seed);
  mesh_peer_id_from_pubkey(id->pk, &id->id);
}

/* The signed alive record of id at epoch 1, incarnation inc. */
static uint8_t *alive_record_inc(const mesh_identity *id, uint64_t inc, size_t *len)
{
  const char *addr = "/ip4/127.0.0.1/tcp/4001";
  uint8_t *body, *upd;
  size_t blen;
  uint8_t sig[MESH_SIG_LEN];
  assert_int_equal(
      swim_member_body_encode(&id->id, 1, inc, false, &addr, 1, NULL, 0, "t", "h", &body, &blen),
      0);
  assert_int_equal(mesh_sign(id, MESH_DOMAIN_MEMBER, (const uint8_t *)SWIM_TYPE_MEMBER,
                             strlen(SWIM_TYPE_MEMBER), body, blen, sig),
                   0);
  assert_int_equal(swim_update_encode(&id->id, false, body, blen, sig, &upd, len), 0);
  free(body);
  return upd;
}

/* The signed alive record of id at epoch 1 (an encoded Update). */
static uint8_t *alive_record(const mesh_identity *id, size_t *len)
{
  return alive_record_inc(id, 0, len);
}

/* A dead claim by accuser about target at epoch 1, incarnation inc. */
static uint8_t *dead_claim(const mesh_identity *accuser, const mesh_identity *target, uint64_t inc,
                           size_t *len)
{
  swim_accuse_body a = {
      .target = target->id, .accuser = accuser->id, .epoch = 1, .incarnation = inc, .dead = true};
  uint8_t *body, *upd;
  size_t blen;
  uint8_t sig[MESH_SIG_LEN];
  assert_int_equal(swim_accuse_body_encode(&a, &body, &blen), 0);
  assert_int_equal(mesh_sign(accuser, MESH_DOMAIN_ACCUSE, (const uint8_t *)SWIM_TYPE_ACCUSE,
                             strlen(SWIM_TYPE_ACCUSE), body, blen, sig),
                   0);
  assert_int_equal(swim_update_encode(&target->id, true, body, blen, sig, &upd, len), 0);
  free(body);
  return upd;
}

typedef struct fixture {
  mesh_identity self, peer;
  mesh_identity m[MEMBERS];
  uint8_t *rec[MEMBERS];
  size_t rec_len[MEMBERS];
  mesh_rng rng;
  mesh_swim *s;
  mesh_swim_outbox out;
} fixture;

static fixture *setup(const mesh_swim_config *cfg)
{
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  make_identity(&f->self, 1);
  make_identity(&f->peer, 2);
  for (int i = 0; i < MEMBERS; i++) {
    make_identity(&f->m[i], (uint8_t)(100 + i));
    f->rec[i] = alive_record(&f->m[i], &f->rec_len[i]);
  }
  mesh_rng_seed(&f->rng, 9);
  mesh_swim_outbox_init(&f->out);
  assert_int_equal(mesh_swim_new(cfg, &f->self, 1, &f->rng, &f->s), 0);
  assert_int_equal(mesh_swim_join(f->s, NULL, 0, 0, &f->out), 0);
  mesh_swim_outbox_clear(&f->out);
  return f;
}

static void teardown(fixture *f)
{
  for (int i = 0; i < MEMBERS; i++)
    free(f->rec[i]);
  mesh_swim_outbox_free(&f->out);
  mesh_swim_free(f->s);
  free(f);
}

/* Delivers a packet of `kind` on `cls` from the fixture's peer carrying the
 * records of members [first, first + n). */
static int deliver(fixture *f, int kind, mesh_swim_class cls, int first, int n, mesh_time_ms now)
{
  const uint8_t *ups[MEMBERS];
  size_t lens[MEMBERS];
  for (int i = 0; i < n; i++) {
    ups[i] = f->rec[first + i];
    lens[i] = f->rec_len[first + i];
  }
  swim_packet_out p = {.kind = kind,
                       .epoch = 1,
                       .target = kind == MESH_SWIM_MSG_PING ? &f->self.id : NULL,
                       .updates = ups,
                       .update_lens = lens,
                       .n_updates = (size_t)n,
                       .reply = true};
  uint8_t *buf;
  size_t len;
  assert_int_equal(swim_packet_encode(&p, 0, &buf, &len), 0);
  int rc = mesh_swim_handle_packet(f->s, &f->peer.id, cls, buf, len, now, &f->out);
  free(buf);
  return rc;
}

static uint64_t dropped(const fixture *f, mesh_swim_drop why)
{
  return mesh_swim_counters_get(f->s)->dropped[why];
}

static void test_push_pull_intro_cap(void **state)
{
  mesh_swim_config cfg = {.profile = MESH_SWIM_PROFILE_LAN, .max_intro_sync = 4};
  fixture *f = setup(&cfg);
  assert_int_equal(deliver(f, MESH_SWIM_MSG_PUSH_PULL, MESH_SWIM_STREAM, 0, 10, 100), 0);
  /* Four new members from one push-pull, the other six refused and counted. */
  assert_int_equal(mesh_swim_view_size(f->s), 4);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_INTRO_LIMIT), 6);
  /* The cap is per push-pull: the next one brings four more (the four known
   * already do not count) and two are refused again. */
  assert_int_equal(deliver(f, MESH_SWIM_MSG_PUSH_PULL, MESH_SWIM_STREAM, 0, 10, 200), 0);
  assert_int_equal(mesh_swim_view_size(f->s), 8);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_INTRO_LIMIT), 8);
  /* Records of members already known are not introductions. */
  assert_int_equal(deliver(f, MESH_SWIM_MSG_PUSH_PULL, MESH_SWIM_STREAM, 0, 8, 300), 0);
  assert_int_equal(mesh_swim_view_size(f->s), 8);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_INTRO_LIMIT), 8);
  teardown(f);
}

static void test_gossip_intro_rate(void **state)
{
  mesh_swim_config cfg = {.profile = MESH_SWIM_PROFILE_LAN, .max_intro_rate = 3};
  fixture *f = setup(&cfg);
  /* Gossip from one peer: three new members per probe interval (1 s). */
  assert_int_equal(deliver(f, MESH_SWIM_MSG_GOSSIP, MESH_SWIM_DATAGRAM, 0, 5, 1000), 0);
  assert_int_equal(mesh_swim_view_size(f->s), 3);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_INTRO_LIMIT), 2);
  assert_int_equal(deliver(f, MESH_SWIM_MSG_GOSSIP, MESH_SWIM_DATAGRAM, 5, 2, 1500), 0);
  assert_int_equal(mesh_swim_view_size(f->s), 3);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_INTRO_LIMIT), 4);
  /* A probe interval later the peer may introduce three more. */
  assert_int_equal(deliver(f, MESH_SWIM_MSG_GOSSIP, MESH_SWIM_DATAGRAM, 3, 5, 2000), 0);
  assert_int_equal(mesh_swim_view_size(f->s), 6);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_INTRO_LIMIT), 6);
  teardown(f);
}

static void test_view_cap(void **state)
{
  mesh_swim_config cfg = {.profile = MESH_SWIM_PROFILE_LAN, .max_members = 5};
  fixture *f = setup(&cfg);
  assert_int_equal(deliver(f, MESH_SWIM_MSG_PUSH_PULL, MESH_SWIM_STREAM, 0, 8, 100), 0);
  assert_int_equal(mesh_swim_view_size(f->s), 5);
  assert_int_equal(mesh_swim_member_count(f->s), 5);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_VIEW_FULL), 3);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_INTRO_LIMIT), 0);
  assert_string_equal(mesh_swim_drop_name(MESH_SWIM_DROP_VIEW_FULL), "view-full");
  assert_string_equal(mesh_swim_drop_name(MESH_SWIM_DROP_INTRO_LIMIT), "intro-limit");
  teardown(f);
}

static void test_classes(void **state)
{
  mesh_swim_config cfg = {.profile = MESH_SWIM_PROFILE_LAN};
  fixture *f = setup(&cfg);
  /* A ping on the stream class (the fallback probe) is answered on it. */
  assert_int_equal(deliver(f, MESH_SWIM_MSG_PING, MESH_SWIM_STREAM, 0, 0, 10), 0);
  assert_int_equal(f->out.n_sends, 1);
  assert_int_equal(f->out.sends[0].kind, MESH_SWIM_MSG_ACK);
  assert_int_equal(f->out.sends[0].cls, MESH_SWIM_STREAM);
  mesh_swim_outbox_clear(&f->out);
  /* ... and on datagrams, on datagrams. */
  assert_int_equal(deliver(f, MESH_SWIM_MSG_PING, MESH_SWIM_DATAGRAM, 0, 0, 20), 0);
  assert_int_equal(f->out.n_sends, 1);
  assert_int_equal(f->out.sends[0].cls, MESH_SWIM_DATAGRAM);
  mesh_swim_outbox_clear(&f->out);
  /* Gossip on a stream and full state on a datagram are refused. */
  assert_int_equal(deliver(f, MESH_SWIM_MSG_GOSSIP, MESH_SWIM_STREAM, 0, 1, 30), -EBADMSG);
  assert_int_equal(deliver(f, MESH_SWIM_MSG_PUSH_PULL, MESH_SWIM_DATAGRAM, 0, 1, 40), -EBADMSG);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_MALFORMED), 2);
  assert_int_equal(mesh_swim_view_size(f->s), 0);
  teardown(f);
}

/* Delivers one update in a GOSSIP datagram from the fixture's peer. */
static void deliver_one(fixture *f, const uint8_t *upd, size_t len, mesh_time_ms now)
{
  const uint8_t *ups[1] = {upd};
  size_t lens[1] = {len};
  swim_packet_out p = {.kind = MESH_SWIM_MSG_GOSSIP,
                       .epoch = 1,
                       .updates = ups,
                       .update_lens = lens,
                       .n_updates = 1};
  uint8_t *buf;
  size_t blen;
  assert_int_equal(swim_packet_encode(&p, 0, &buf, &blen), 0);
  assert_int_equal(
      mesh_swim_handle_packet(f->s, &f->peer.id, MESH_SWIM_DATAGRAM, buf, blen, now, &f->out), 0);
  free(buf);
}

static void test_stale_dead_claim_refused(void **state)
{
  mesh_swim_config cfg = {.profile = MESH_SWIM_PROFILE_LAN};
  fixture *f = setup(&cfg);
  size_t len;
  /* Member 0 is known at incarnation 2 (it refuted twice). */
  uint8_t *rec = alive_record_inc(&f->m[0], 2, &len);
  deliver_one(f, rec, len, 100);
  free(rec);
  mesh_swim_member_info mi;
  assert_int_equal(mesh_swim_member_find(f->s, &f->m[0].id, &mi), 0);
  assert_int_equal(mi.incarnation, 2);
  /* A dead claim about incarnation 1 comes from an accuser that missed the
   * refutation: refused, the member stays alive. */
  uint8_t *old = dead_claim(&f->m[1], &f->m[0], 1, &len);
  deliver_one(f, old, len, 200);
  free(old);
  assert_int_equal(mesh_swim_member_find(f->s, &f->m[0].id, &mi), 0);
  assert_int_equal(mi.state, MESH_SWIM_ALIVE);
  assert_int_equal(mesh_swim_view_size(f->s), 1);
  /* One about its current incarnation is taken. */
  uint8_t *cur = dead_claim(&f->m[1], &f->m[0], 2, &len);
  deliver_one(f, cur, len, 300);
  free(cur);
  assert_int_equal(mesh_swim_member_find(f->s, &f->m[0].id, &mi), 0);
  assert_int_equal(mi.state, MESH_SWIM_DEAD);
  assert_int_equal(mesh_swim_view_size(f->s), 0);
  teardown(f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_push_pull_intro_cap),
      cmocka_unit_test(test_gossip_intro_rate),
      cmocka_unit_test(test_view_cap),
      cmocka_unit_test(test_classes),
      cmocka_unit_test(test_stale_dead_claim_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
