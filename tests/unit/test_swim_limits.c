/*
 * Unit tests of the membership core's bounds on what peers can make it hold
 * (new members per push-pull, per peer and probe interval by datagram, and
 * the view's size cap), of which message kinds each class carries, of the
 * refusal of a dead claim older than the member's refutation, of who may
 * accuse (members only; a dead claim about a member held alive is a
 * suspicion first), and of what one peer can make the core spend
 * (verifications skipped before the signature check, the bad-signature
 * budget and its disconnect request, the push-pull token bucket).
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
  uint64_t join_token; /* the timer the core asked for when it joined */
  mesh_time_ms join_timer_at;
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
  assert_true(f->out.timer_set);
  f->join_token = f->out.timer_token;
  f->join_timer_at = f->out.timer_at;
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
  /* Member 0 is known at incarnation 2 (it refuted twice); member 1, the
   * accuser, is a member too. */
  uint8_t *rec = alive_record_inc(&f->m[0], 2, &len);
  deliver_one(f, rec, len, 100);
  free(rec);
  deliver_one(f, f->rec[1], f->rec_len[1], 100);
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
  assert_int_equal(mesh_swim_view_size(f->s), 2);
  /* One about its current incarnation is taken: as a suspicion, since we
   * hold member 0 alive (test_member_dead_claim_suspects_first). */
  uint8_t *cur = dead_claim(&f->m[1], &f->m[0], 2, &len);
  deliver_one(f, cur, len, 300);
  free(cur);
  assert_int_equal(mesh_swim_member_find(f->s, &f->m[0].id, &mi), 0);
  assert_int_equal(mi.state, MESH_SWIM_SUSPECT);
  assert_int_equal(mesh_swim_counters_get(f->s)->dead_claims_deferred, 1);
  teardown(f);
}

/* ---- who may accuse ---- */

/* A claim signed by signer in the name of accuser about target at (epoch,
 * inc): an encoded Update. */
static uint8_t *claim(const mesh_identity *signer, const mesh_peer_id *accuser,
                      const mesh_peer_id *target, uint64_t epoch, uint64_t inc, bool dead,
                      size_t *len)
{
  swim_accuse_body a = {
      .target = *target, .accuser = *accuser, .epoch = epoch, .incarnation = inc, .dead = dead};
  uint8_t *body, *upd;
  size_t blen;
  uint8_t sig[MESH_SIG_LEN];
  assert_int_equal(swim_accuse_body_encode(&a, &body, &blen), 0);
  assert_int_equal(mesh_sign(signer, MESH_DOMAIN_ACCUSE, (const uint8_t *)SWIM_TYPE_ACCUSE,
                             strlen(SWIM_TYPE_ACCUSE), body, blen, sig),
                   0);
  assert_int_equal(swim_update_encode(target, true, body, blen, sig, &upd, len), 0);
  free(body);
  return upd;
}

/* The alive record of subject at epoch 1, incarnation inc, signed by signer
 * (a forgery unless signer is subject). */
static uint8_t *record_signed_by(const mesh_identity *signer, const mesh_peer_id *subject,
                                 uint64_t inc, size_t *len)
{
  const char *addr = "/ip4/127.0.0.1/tcp/4001";
  uint8_t *body, *upd;
  size_t blen;
  uint8_t sig[MESH_SIG_LEN];
  assert_int_equal(
      swim_member_body_encode(subject, 1, inc, false, &addr, 1, NULL, 0, "t", "h", &body, &blen),
      0);
  assert_int_equal(mesh_sign(signer, MESH_DOMAIN_MEMBER, (const uint8_t *)SWIM_TYPE_MEMBER,
                             strlen(SWIM_TYPE_MEMBER), body, blen, sig),
                   0);
  assert_int_equal(swim_update_encode(subject, false, body, blen, sig, &upd, len), 0);
  free(body);
  return upd;
}

/* Delivers n updates in one packet of kind from peer `from`. */
static int deliver_from(fixture *f, const mesh_peer_id *from, int kind, const uint8_t *const *ups,
                        const size_t *lens, size_t n, mesh_time_ms now)
{
  mesh_swim_class cls = kind == MESH_SWIM_MSG_PUSH_PULL ? MESH_SWIM_STREAM : MESH_SWIM_DATAGRAM;
  swim_packet_out p = {
      .kind = kind, .epoch = 1, .updates = ups, .update_lens = lens, .n_updates = n, .reply = true};
  uint8_t *buf;
  size_t len;
  assert_int_equal(swim_packet_encode(&p, 0, &buf, &len), 0);
  int rc = mesh_swim_handle_packet(f->s, from, cls, buf, len, now, &f->out);
  free(buf);
  return rc;
}

static mesh_swim_state state_of(const fixture *f, int member)
{
  mesh_swim_member_info mi;
  assert_int_equal(mesh_swim_member_find(f->s, &f->m[member].id, &mi), 0);
  return mi.state;
}

/* Ed25519 verifications and signature-cache lookups so far: both stay put
 * when a record is settled before its signature is looked at. */
static uint64_t sig_work(const fixture *f)
{
  const mesh_swim_counters *c = mesh_swim_counters_get(f->s);
  return c->sig_verified + c->sig_cache_hits;
}

/* A flood of claims by keys that never joined the view: suspect and dead,
 * about a member and about this node, each from a fresh key. Every one is
 * refused before any signature check and counted; nothing changes, and this
 * node's epoch and incarnation stay where they were. */
static void test_non_member_claims_refused(void **state)
{
  mesh_swim_config cfg = {.profile = MESH_SWIM_PROFILE_LAN};
  fixture *f = setup(&cfg);
  deliver_one(f, f->rec[0], f->rec_len[0], 100);
  assert_int_equal(state_of(f, 0), MESH_SWIM_ALIVE);
  mesh_swim_outbox_clear(&f->out);
  uint64_t work = sig_work(f);
  uint64_t seq = mesh_swim_view_seq(f->s);
  const int keys = 50, rounds = 4;
  for (int k = 0; k < keys; k++) {
    mesh_identity outsider;
    make_identity(&outsider, (uint8_t)(200 + k));
    for (int r = 0; r < rounds; r++) {
      const mesh_peer_id *target = r < 2 ? &f->m[0].id : &f->self.id;
      size_t len;
      uint8_t *c = claim(&outsider, &outsider.id, target, 1, 0, r % 2 == 0, &len);
      deliver_one(f, c, len, 200 + (mesh_time_ms)k);
      free(c);
      assert_false(f->out.epoch_over);
    }
    mesh_swim_outbox_clear(&f->out);
  }
  assert_int_equal(dropped(f, MESH_SWIM_DROP_NOT_MEMBER), keys * rounds);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_BAD_SIGNATURE), 0);
  assert_int_equal(sig_work(f), work);
  assert_int_equal(mesh_swim_epoch(f->s), 1);
  assert_int_equal(mesh_swim_incarnation(f->s), 0);
  assert_int_equal(mesh_swim_counters_get(f->s)->refutations, 0);
  assert_int_equal(state_of(f, 0), MESH_SWIM_ALIVE);
  assert_int_equal(mesh_swim_view_seq(f->s), seq);
  assert_string_equal(mesh_swim_drop_name(MESH_SWIM_DROP_NOT_MEMBER), "accuser-not-member");
  /* A member's suspicion about this node is refuted, as SWIM has it. */
  size_t len;
  uint8_t *c = claim(&f->m[0], &f->m[0].id, &f->self.id, 1, 0, false, &len);
  deliver_one(f, c, len, 400);
  free(c);
  assert_int_equal(mesh_swim_incarnation(f->s), 1);
  assert_int_equal(mesh_swim_counters_get(f->s)->refutations, 1);
  /* And a member's dead claim ends this node's epoch (the caller renews). */
  c = claim(&f->m[0], &f->m[0].id, &f->self.id, 1, 1, true, &len);
  deliver_one(f, c, len, 500);
  free(c);
  assert_true(f->out.epoch_over);
  assert_memory_equal(f->out.epoch_over_by.b, f->m[0].id.b, MESH_PEER_ID_LEN);
  teardown(f);
}

/* A member held dead or left may no longer accuse others; its claim about
 * this node itself still counts (after a partition, that is how a node
 * learns it was declared dead). */
static void test_departed_accuser(void **state)
{
  mesh_swim_config cfg = {.profile = MESH_SWIM_PROFILE_LAN};
  fixture *f = setup(&cfg);
  deliver_one(f, f->rec[0], f->rec_len[0], 100);
  deliver_one(f, f->rec[1], f->rec_len[1], 100);
  deliver_one(f, f->rec[2], f->rec_len[2], 100);
  /* Member 2 suspects member 1; member 0 declares it dead. */
  size_t len;
  uint8_t *c = claim(&f->m[2], &f->m[2].id, &f->m[1].id, 1, 0, false, &len);
  deliver_one(f, c, len, 200);
  free(c);
  assert_int_equal(state_of(f, 1), MESH_SWIM_SUSPECT);
  c = claim(&f->m[0], &f->m[0].id, &f->m[1].id, 1, 0, true, &len);
  deliver_one(f, c, len, 300);
  free(c);
  assert_int_equal(state_of(f, 1), MESH_SWIM_DEAD);
  mesh_swim_outbox_clear(&f->out);
  /* Member 1, held dead, accuses member 0: refused. */
  c = claim(&f->m[1], &f->m[1].id, &f->m[0].id, 1, 0, false, &len);
  deliver_one(f, c, len, 400);
  free(c);
  assert_int_equal(state_of(f, 0), MESH_SWIM_ALIVE);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_DEPARTED), 1);
  assert_string_equal(mesh_swim_drop_name(MESH_SWIM_DROP_DEPARTED), "accuser-departed");
  /* ... but its dead claim about this node is taken. */
  c = claim(&f->m[1], &f->m[1].id, &f->self.id, 1, 0, true, &len);
  deliver_one(f, c, len, 500);
  free(c);
  assert_true(f->out.epoch_over);
  assert_memory_equal(f->out.epoch_over_by.b, f->m[1].id.b, MESH_PEER_ID_LEN);
  teardown(f);
}

/* Events and the timer of a fixture's core, fed by run(). */
typedef struct clock_run {
  mesh_time_ms at;       /* the core's next wake-up */
  uint64_t token;        /* its token (0: none) */
  mesh_time_ms dead_at;  /* first DEAD event about the watched member (0: none) */
  mesh_time_ms alive_at; /* first ALIVE_AGAIN about it (0: none) */
  unsigned suspects;     /* SUSPECT events about it */
  unsigned sent_ours;    /* our suspect claims about it in messages sent */
  unsigned sent_dead;    /* dead claims about it by others in messages sent */
  bool answers[MEMBERS]; /* members that answer our pings */
} clock_run;

/* Counts the claims about member w that the outbox's messages carry. */
static void scan_sends(fixture *f, clock_run *r, int w)
{
  for (size_t i = 0; i < f->out.n_sends; i++) {
    swim_packet p;
    if (swim_packet_decode(f->out.sends[i].buf, f->out.sends[i].len, &p) != 0)
      continue;
    for (size_t k = 0; k < p.n_updates; k++) {
      swim_update u;
      swim_accuse_body a;
      if (swim_update_decode(p.updates[k], p.update_lens[k], &u) != 0)
        continue;
      if (u.accuse && swim_accuse_body_decode(u.body, u.body_len, &a) == 0 &&
          memcmp(a.target.b, f->m[w].id.b, MESH_PEER_ID_LEN) == 0) {
        bool ours = memcmp(a.accuser.b, f->self.id.b, MESH_PEER_ID_LEN) == 0;
        r->sent_ours += ours && !a.dead;
        r->sent_dead += !ours && a.dead;
      }
      swim_update_release(&u);
    }
    swim_packet_release(&p);
  }
}

/* Takes what the outbox holds (the timer, events about member w), then
 * clears it: nothing sent reaches anyone. */
static void settle(fixture *f, clock_run *r, int w, mesh_time_ms now)
{
  scan_sends(f, r, w);
  /* Pings to members that answer: their ACKs, delivered after the clear. */
  int ack_to[16];
  uint32_t ack_seq[16];
  mesh_swim_class ack_cls[16];
  size_t n_acks = 0;
  for (size_t i = 0; i < f->out.n_sends && n_acks < 16; i++) {
    const mesh_swim_send *snd = &f->out.sends[i];
    if (snd->kind != MESH_SWIM_MSG_PING)
      continue;
    for (int m = 0; m < MEMBERS; m++) {
      swim_packet p;
      if (!r->answers[m] || memcmp(snd->to.b, f->m[m].id.b, MESH_PEER_ID_LEN) != 0 ||
          swim_packet_decode(snd->buf, snd->len, &p) != 0)
        continue;
      ack_to[n_acks] = m;
      ack_seq[n_acks] = p.seq;
      ack_cls[n_acks++] = snd->cls;
      swim_packet_release(&p);
    }
  }
  for (size_t i = 0; i < f->out.n_events; i++) {
    const mesh_view_event *ev = &f->out.events[i];
    if (memcmp(ev->peer.b, f->m[w].id.b, MESH_PEER_ID_LEN) != 0)
      continue;
    if (ev->type == MESH_VIEW_DEAD && r->dead_at == 0)
      r->dead_at = now;
    if (ev->type == MESH_VIEW_ALIVE_AGAIN && r->alive_at == 0)
      r->alive_at = now;
    if (ev->type == MESH_VIEW_SUSPECT)
      r->suspects++;
  }
  if (f->out.timer_set) {
    r->at = f->out.timer_at;
    r->token = f->out.timer_token;
  }
  mesh_swim_outbox_clear(&f->out);
  for (size_t i = 0; i < n_acks; i++) {
    swim_packet_out ack = {.kind = MESH_SWIM_MSG_ACK, .seq = ack_seq[i], .epoch = 1};
    uint8_t *buf;
    size_t len;
    assert_int_equal(swim_packet_encode(&ack, 0, &buf, &len), 0);
    assert_int_equal(
        mesh_swim_handle_packet(f->s, &f->m[ack_to[i]].id, ack_cls[i], buf, len, now, &f->out), 0);
    free(buf);
    settle(f, r, w, now);
  }
}

/* Runs the core's timers from *now to until (10 ms steps). */
static void run(fixture *f, clock_run *r, int w, mesh_time_ms *now, mesh_time_ms until)
{
  for (; *now < until; *now += 10) {
    if (r->token != 0 && r->at <= *now) {
      uint64_t t = r->token;
      r->token = 0;
      assert_int_equal(mesh_swim_handle_timer(f->s, t, *now, &f->out), 0);
      settle(f, r, w, *now);
    }
  }
}

/* A member's dead claim about a member held alive: a suspicion of this
 * node's own first (the victim can refute it), death only when that
 * suspicion times out unrefuted; the same claim relayed again changes
 * nothing; a refutation within the epoch ends it. */
static void test_member_dead_claim_suspects_first(void **state)
{
  mesh_swim_config cfg = {.profile = MESH_SWIM_PROFILE_LAN};
  for (int refute = 0; refute < 2; refute++) {
    fixture *f = setup(&cfg);
    clock_run r = {.token = f->join_token, .at = f->join_timer_at};
    /* The accuser answers our pings; the victim too once it has refuted. */
    r.answers[1] = true;
    mesh_time_ms now = 100;
    deliver_one(f, f->rec[0], f->rec_len[0], now); /* the victim */
    deliver_one(f, f->rec[1], f->rec_len[1], now); /* the accuser */
    settle(f, &r, 0, now);
    size_t len;
    uint8_t *c = claim(&f->m[1], &f->m[1].id, &f->m[0].id, 1, 0, true, &len);
    now = 1000;
    deliver_one(f, c, len, now);
    assert_int_equal(state_of(f, 0), MESH_SWIM_SUSPECT);
    assert_int_equal(mesh_swim_counters_get(f->s)->dead_claims_deferred, 1);
    settle(f, &r, 0, now);
    assert_int_equal(r.suspects, 1);
    assert_int_equal(r.dead_at, 0);
    /* The same dead claim, relayed back: no second opinion. */
    deliver_one(f, c, len, now + 50);
    free(c);
    assert_int_equal(state_of(f, 0), MESH_SWIM_SUSPECT);
    settle(f, &r, 0, now + 50);
    /* What we spread (gossip, and pings to the victim so that it can
     * refute) is our own suspicion, never the dead claim. */
    run(f, &r, 0, &now, 2000);
    assert_true(r.sent_ours > 0);
    assert_int_equal(r.sent_dead, 0);
    if (refute) {
      /* The victim heard our suspicion and refutes within its epoch. */
      uint8_t *rec = alive_record_inc(&f->m[0], 1, &len);
      deliver_one(f, rec, len, now);
      free(rec);
      r.answers[0] = true;
      settle(f, &r, 0, now);
      assert_int_equal(state_of(f, 0), MESH_SWIM_ALIVE);
      assert_true(r.alive_at != 0);
      run(f, &r, 0, &now, 60000);
      assert_int_equal(r.dead_at, 0);
      assert_int_equal(mesh_swim_counters_get(f->s)->deaths_declared, 0);
    } else {
      /* Silence: dead when our suspicion times out (three members in the
       * view: min = suspicion_mult * 1 * 1 s, with no confirmations
       * expected), after a last-chance ping, and not before. */
      mesh_swim_config lan = {.profile = MESH_SWIM_PROFILE_LAN};
      assert_int_equal(mesh_swim_config_resolve(&lan), 0);
      mesh_time_ms min = (mesh_time_ms)lan.suspicion_mult * 1000;
      run(f, &r, 0, &now, 60000);
      assert_true(r.dead_at != 0);
      assert_true(r.dead_at - 1000 >= min);
      assert_true(r.dead_at - 1000 <= min + 1000);
      assert_int_equal(r.suspects, 1);
      assert_int_equal(r.sent_dead, 0);
      assert_int_equal(mesh_swim_counters_get(f->s)->deaths_declared, 1);
      assert_int_equal(mesh_swim_counters_get(f->s)->last_chance_probes, 1);
    }
    teardown(f);
  }
}

/* While a member is suspect, a dead claim by another member is taken at
 * once (SWIM: the accused was suspected first). */
static void test_dead_claim_about_suspect_taken(void **state)
{
  mesh_swim_config cfg = {.profile = MESH_SWIM_PROFILE_LAN};
  fixture *f = setup(&cfg);
  for (int i = 0; i < 3; i++)
    deliver_one(f, f->rec[i], f->rec_len[i], 100);
  size_t len;
  uint8_t *c = claim(&f->m[1], &f->m[1].id, &f->m[0].id, 1, 0, false, &len);
  deliver_one(f, c, len, 200);
  free(c);
  assert_int_equal(state_of(f, 0), MESH_SWIM_SUSPECT);
  c = claim(&f->m[2], &f->m[2].id, &f->m[0].id, 1, 0, true, &len);
  deliver_one(f, c, len, 300);
  free(c);
  assert_int_equal(state_of(f, 0), MESH_SWIM_DEAD);
  assert_int_equal(mesh_swim_counters_get(f->s)->dead_claims_deferred, 0);
  teardown(f);
}

/* A joiner learns the sender's tombstones from a push-pull: a member first
 * seen in it together with the sender's dead claim is dead at once, in
 * whatever order the records come (the accuser's record after its claim). */
static void test_push_pull_tombstone(void **state)
{
  mesh_swim_config cfg = {.profile = MESH_SWIM_PROFILE_LAN};
  fixture *f = setup(&cfg);
  size_t clen;
  uint8_t *c = claim(&f->m[1], &f->m[1].id, &f->m[0].id, 1, 0, true, &clen);
  const uint8_t *ups[3] = {f->rec[0], c, f->rec[1]};
  size_t lens[3] = {f->rec_len[0], clen, f->rec_len[1]};
  assert_int_equal(deliver_from(f, &f->peer.id, MESH_SWIM_MSG_PUSH_PULL, ups, lens, 3, 100), 0);
  free(c);
  assert_int_equal(state_of(f, 0), MESH_SWIM_DEAD);
  assert_int_equal(state_of(f, 1), MESH_SWIM_ALIVE);
  assert_int_equal(mesh_swim_view_size(f->s), 1);
  assert_int_equal(mesh_swim_counters_get(f->s)->dead_claims_deferred, 0);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_NOT_MEMBER), 0);
  teardown(f);
}

/* ---- what one peer can make us spend ---- */

/* The default cap: one push-pull of 300 strangers brings in 256, and the
 * 44 refused cost no signature check. */
static void test_default_intro_cap(void **state)
{
  mesh_swim_config cfg = {.profile = MESH_SWIM_PROFILE_LAN};
  fixture *f = setup(&cfg);
  assert_int_equal(mesh_swim_config_get(f->s)->max_intro_sync, 256);
  enum { N = 300 };
  uint8_t **recs = calloc(N, sizeof *recs);
  size_t *lens = calloc(N, sizeof *lens);
  assert_non_null(recs);
  assert_non_null(lens);
  for (int i = 0; i < N; i++) {
    mesh_identity id;
    uint8_t seed[32] = {0};
    seed[0] = (uint8_t)i;
    seed[1] = (uint8_t)(i >> 8);
    seed[2] = 0xA5;
    crypto_sign_seed_keypair(id.pk, id.sk, seed);
    mesh_peer_id_from_pubkey(id.pk, &id.id);
    recs[i] = alive_record(&id, &lens[i]);
  }
  uint64_t work = sig_work(f);
  assert_int_equal(deliver_from(f, &f->peer.id, MESH_SWIM_MSG_PUSH_PULL,
                                (const uint8_t *const *)recs, lens, N, 100),
                   0);
  assert_int_equal(mesh_swim_view_size(f->s), 256);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_INTRO_LIMIT), N - 256);
  assert_int_equal(sig_work(f) - work, 256);
  for (int i = 0; i < N; i++)
    free(recs[i]);
  free(recs);
  free(lens);
  teardown(f);
}

/* Records that could not change anything are settled before their
 * signature: the same full state again, an older incarnation, a claim about
 * an incarnation already refuted. */
static void test_no_verification_for_old_news(void **state)
{
  mesh_swim_config cfg = {.profile = MESH_SWIM_PROFILE_LAN};
  fixture *f = setup(&cfg);
  size_t len;
  uint8_t *newer = alive_record_inc(&f->m[0], 3, &len);
  deliver_one(f, newer, len, 100);
  free(newer);
  assert_int_equal(deliver(f, MESH_SWIM_MSG_PUSH_PULL, MESH_SWIM_STREAM, 1, 8, 200), 0);
  uint64_t work = sig_work(f);
  uint64_t ignored = mesh_swim_counters_get(f->s)->updates_ignored;
  assert_int_equal(deliver(f, MESH_SWIM_MSG_PUSH_PULL, MESH_SWIM_STREAM, 1, 8, 1300), 0);
  deliver_one(f, f->rec[0], f->rec_len[0], 1400); /* incarnation 0 < 3 */
  uint8_t *c = claim(&f->m[1], &f->m[1].id, &f->m[0].id, 1, 2, true, &len);
  deliver_one(f, c, len, 1500); /* about incarnation 2 < 3 */
  free(c);
  assert_int_equal(sig_work(f), work);
  assert_int_equal(mesh_swim_counters_get(f->s)->updates_ignored, ignored + 10);
  assert_int_equal(state_of(f, 0), MESH_SWIM_ALIVE);
  teardown(f);
}

/* Bad signatures: the 16th in a window from one peer asks the caller to
 * disconnect it (once), and its records are then refused unverified until
 * the window ends; others are not affected. */
static void test_bad_signature_budget(void **state)
{
  mesh_swim_config cfg = {.profile = MESH_SWIM_PROFILE_LAN};
  fixture *f = setup(&cfg);
  deliver_one(f, f->rec[0], f->rec_len[0], 100);
  mesh_swim_outbox_clear(&f->out);
  const mesh_swim_counters *k = mesh_swim_counters_get(f->s);
  /* Member 0's record at ever higher incarnations, signed by the peer. */
  for (uint64_t i = 1; i <= 15; i++) {
    size_t len;
    uint8_t *bad = record_signed_by(&f->peer, &f->m[0].id, i, &len);
    deliver_one(f, bad, len, 1000 + i);
    free(bad);
    assert_int_equal(f->out.n_disconnects, 0);
  }
  assert_int_equal(dropped(f, MESH_SWIM_DROP_BAD_SIGNATURE), 15);
  /* One packet with 20 more: the first reaches the budget, the rest are not
   * verified. */
  uint8_t *bad[20];
  size_t lens[20];
  for (int i = 0; i < 20; i++)
    bad[i] = record_signed_by(&f->peer, &f->m[0].id, 100 + (uint64_t)i, &lens[i]);
  uint64_t verified = k->sig_verified;
  assert_int_equal(deliver_from(f, &f->peer.id, MESH_SWIM_MSG_GOSSIP, (const uint8_t *const *)bad,
                                lens, 20, 2000),
                   0);
  assert_int_equal(k->sig_verified - verified, 1);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_BAD_SIGNATURE), 16);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_SIG_BUDGET), 1);
  assert_int_equal(f->out.n_disconnects, 1);
  assert_memory_equal(f->out.disconnects[0].b, f->peer.id.b, MESH_PEER_ID_LEN);
  assert_int_equal(k->disconnects_requested, 1);
  mesh_swim_outbox_clear(&f->out);
  assert_int_equal(f->out.n_disconnects, 0);
  /* Within the window: even a good record from it is refused unverified,
   * no second disconnect request; a push-pull from it is refused whole. */
  verified = k->sig_verified;
  deliver_one(f, f->rec[1], f->rec_len[1], 5000);
  assert_int_equal(deliver_from(f, &f->peer.id, MESH_SWIM_MSG_PUSH_PULL,
                                (const uint8_t *const *)bad, lens, 1, 5000),
                   -EAGAIN);
  assert_int_equal(k->sig_verified, verified);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_SIG_BUDGET), 3);
  assert_int_equal(f->out.n_disconnects, 0);
  assert_int_equal(mesh_swim_view_size(f->s), 1);
  /* Another peer is heard meanwhile. */
  assert_int_equal(deliver_from(f, &f->m[0].id, MESH_SWIM_MSG_GOSSIP,
                                (const uint8_t *const[]){f->rec[1]},
                                (const size_t[]){f->rec_len[1]}, 1, 5000),
                   0);
  assert_int_equal(mesh_swim_view_size(f->s), 2);
  /* The window ends 10 s after its first bad signature (at 1001): the
   * peer's records are looked at again. */
  deliver_one(f, f->rec[2], f->rec_len[2], 1000 + 10000);
  assert_int_equal(mesh_swim_view_size(f->s), 2);
  deliver_one(f, f->rec[2], f->rec_len[2], 1001 + 10000);
  assert_int_equal(mesh_swim_view_size(f->s), 3);
  assert_string_equal(mesh_swim_drop_name(MESH_SWIM_DROP_SIG_BUDGET), "sig-budget");
  for (int i = 0; i < 20; i++)
    free(bad[i]);
  teardown(f);
}

/* Push-pulls from one peer: a burst of 4, then one per 500 ms; the excess
 * is dropped before any record in it is looked at, and not answered. Each
 * peer has its own bucket. */
static void test_push_pull_bucket(void **state)
{
  mesh_swim_config cfg = {.profile = MESH_SWIM_PROFILE_LAN};
  fixture *f = setup(&cfg);
  swim_packet_out p = {.kind = MESH_SWIM_MSG_PUSH_PULL, .epoch = 1};
  uint8_t *buf;
  size_t len;
  assert_int_equal(swim_packet_encode(&p, 0, &buf, &len), 0);
  int answered = 0;
  for (int i = 0; i < 6; i++) {
    int rc = mesh_swim_handle_packet(f->s, &f->peer.id, MESH_SWIM_STREAM, buf, len, 1000, &f->out);
    assert_int_equal(rc, i < 4 ? 0 : -EAGAIN);
    for (size_t k = 0; k < f->out.n_sends; k++)
      answered += f->out.sends[k].kind == MESH_SWIM_MSG_PUSH_PULL;
    mesh_swim_outbox_clear(&f->out);
  }
  assert_int_equal(answered, 4);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_PUSH_PULL_RATE), 2);
  /* 499 ms later: still none; at 500 ms, one. */
  assert_int_equal(
      mesh_swim_handle_packet(f->s, &f->peer.id, MESH_SWIM_STREAM, buf, len, 1499, &f->out),
      -EAGAIN);
  assert_int_equal(
      mesh_swim_handle_packet(f->s, &f->peer.id, MESH_SWIM_STREAM, buf, len, 1500, &f->out), 0);
  assert_int_equal(
      mesh_swim_handle_packet(f->s, &f->peer.id, MESH_SWIM_STREAM, buf, len, 1500, &f->out),
      -EAGAIN);
  /* Another peer is not affected. */
  assert_int_equal(
      mesh_swim_handle_packet(f->s, &f->m[0].id, MESH_SWIM_STREAM, buf, len, 1500, &f->out), 0);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_PUSH_PULL_RATE), 4);
  /* A quiet peer earns its burst back, no more. */
  for (int i = 0; i < 5; i++)
    assert_int_equal(
        mesh_swim_handle_packet(f->s, &f->peer.id, MESH_SWIM_STREAM, buf, len, 60000, &f->out),
        i < 4 ? 0 : -EAGAIN);
  assert_string_equal(mesh_swim_drop_name(MESH_SWIM_DROP_PUSH_PULL_RATE), "push-pull-rate");
  /* Over the rate, a push-pull is refused before it is decoded: one that
   * would not decode (a target of 3 bytes, no peer ID) is counted as over
   * the rate, not as malformed. */
  uint8_t *broken = malloc(len + 5);
  assert_non_null(broken);
  memcpy(broken, buf, len);
  broken[len] = 0x1a;     /* field 3 (target), length-delimited */
  broken[len + 1] = 0x03; /* three bytes */
  broken[len + 2] = broken[len + 3] = broken[len + 4] = 0x01;
  assert_int_equal(mesh_swim_handle_packet(f->s, &f->m[1].id, MESH_SWIM_STREAM, broken, len + 5,
                                           60000, &f->out),
                   -EBADMSG); /* within its rate: decoded, and refused as malformed */
  assert_true(swim_packet_is_push_pull(buf, len));
  uint64_t malformed = dropped(f, MESH_SWIM_DROP_MALFORMED);
  uint64_t rate = dropped(f, MESH_SWIM_DROP_PUSH_PULL_RATE);
  assert_true(malformed >= 1);
  assert_int_equal(mesh_swim_handle_packet(f->s, &f->peer.id, MESH_SWIM_STREAM, broken, len + 5,
                                           60000, &f->out),
                   -EAGAIN);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_PUSH_PULL_RATE), rate + 1);
  assert_int_equal(dropped(f, MESH_SWIM_DROP_MALFORMED), malformed);
  /* The peek tells kinds apart, with fields in any order. */
  swim_packet_out ping = {.kind = MESH_SWIM_MSG_PING, .seq = 7, .epoch = 1};
  uint8_t *pb;
  size_t pl;
  assert_int_equal(swim_packet_encode(&ping, 0, &pb, &pl), 0);
  assert_false(swim_packet_is_push_pull(pb, pl));
  free(pb);
  static const uint8_t reordered[] = {0x50, 0x01, 0x10, 0x07, 0x08, 0x06}; /* epoch, seq, kind */
  assert_int_equal(MESH_SWIM_MSG_PUSH_PULL, 6);
  assert_true(swim_packet_is_push_pull(reordered, sizeof reordered));
  assert_false(swim_packet_is_push_pull(reordered, sizeof reordered - 1));
  free(broken);
  mesh_swim_outbox_clear(&f->out);
  free(buf);
  teardown(f);
}

/* The per-peer table is fixed: a crowd of new peers takes the slots of the
 * least recently heard, but not the slot of a peer over its bad-signature
 * budget while there are others to take. */
static void test_peer_table(void **state)
{
  swim_peers *t = calloc(1, sizeof *t);
  assert_non_null(t);
  swim_peers_init(t);
  mesh_identity bad;
  make_identity(&bad, 250);
  swim_peer *p = swim_peers_get(t, &bad.id, 4, 0);
  for (int i = 0; i < 15; i++)
    assert_false(swim_peer_bad_sig(p, 16, 10000, 10));
  assert_true(swim_peer_bad_sig(p, 16, 10000, 20));
  assert_false(swim_peer_bad_sig(p, 16, 10000, 30)); /* asked once per window */
  for (int i = 0; i < 3 * SWIM_PEER_SLOTS; i++) {
    mesh_peer_id id;
    memset(&id, 0, sizeof id);
    memcpy(id.b, &i, sizeof i);
    swim_peer *q = swim_peers_get(t, &id, 4, 100 + (mesh_time_ms)i);
    assert_false(swim_peer_is_cut(q, 10000, 100 + (mesh_time_ms)i));
  }
  p = swim_peers_get(t, &bad.id, 4, 5000);
  assert_true(swim_peer_is_cut(p, 10000, 5000));
  assert_false(swim_peer_is_cut(p, 10000, 10010)); /* 10 s after its first */
  assert_int_equal(p->bad_n, 0);
  free(t);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_push_pull_intro_cap),
      cmocka_unit_test(test_gossip_intro_rate),
      cmocka_unit_test(test_view_cap),
      cmocka_unit_test(test_classes),
      cmocka_unit_test(test_stale_dead_claim_refused),
      cmocka_unit_test(test_non_member_claims_refused),
      cmocka_unit_test(test_departed_accuser),
      cmocka_unit_test(test_member_dead_claim_suspects_first),
      cmocka_unit_test(test_dead_claim_about_suspect_taken),
      cmocka_unit_test(test_push_pull_tombstone),
      cmocka_unit_test(test_default_intro_cap),
      cmocka_unit_test(test_no_verification_for_old_news),
      cmocka_unit_test(test_bad_signature_budget),
      cmocka_unit_test(test_push_pull_bucket),
      cmocka_unit_test(test_peer_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
