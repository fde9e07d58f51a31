/*
 * Unit tests of the membership core's pieces: suspicion timeout math,
 * Lifeguard awareness, the broadcast queue's limits, profiles, the codec's
 * round trip and rejection, two cores talking directly, and the numbering
 * of view changes (net/view.h).
 */
#include "net/swim_internal.h"
#include "src/identity/signed.h"
#include "src/base/err.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

static void make_identity(mesh_identity *id, uint8_t tag)
{
  uint8_t seed[32];
  memset(seed, tag, sizeof seed);
  crypto_sign_seed_keypair(id->pk, id->sk, seed);
  mesh_peer_id_from_pubkey(id->pk, &id->id);
}

static void test_suspicion_math(void **state)
{
  /* memberlist's numbers: mult 4, n 1000, interval 1 s -> 12 s. */
  assert_int_equal(swim_suspicion_timeout(4, 1000, 1000), 12000);
  assert_int_equal(swim_suspicion_timeout(4, 3, 1000), 4000); /* log10 floor of 1 */
  /* No confirmations: max; all k: min; in between: strictly between. */
  assert_int_equal(swim_suspicion_remaining(0, 3, 0, 2000, 30000), 30000);
  assert_int_equal(swim_suspicion_remaining(3, 3, 0, 2000, 30000), 2000);
  int64_t one = swim_suspicion_remaining(1, 3, 0, 2000, 30000);
  assert_true(one < 30000 && one > 2000);
  /* log(2)/log(4) = 0.5 of the way. */
  assert_int_equal(one, 16000);
  assert_int_equal(swim_suspicion_remaining(0, 0, 500, 2000, 30000), 1500);
  assert_int_equal(swim_suspicion_remaining(1, 3, 20000, 2000, 30000), -4000);
}

static void test_suspicion_confirmations(void **state)
{
  mesh_identity a, b, c;
  make_identity(&a, 1);
  make_identity(&b, 2);
  make_identity(&c, 3);
  swim_suspicion sp;
  swim_suspicion_init(&sp, 2, 4000, 24000, 1000, &a.id);
  assert_int_equal(sp.deadline, 1000 + 24000);
  assert_false(swim_suspicion_confirm(&sp, &a.id)); /* the first accuser does not count */
  assert_true(swim_suspicion_confirm(&sp, &b.id));
  assert_false(swim_suspicion_confirm(&sp, &b.id)); /* nor twice */
  assert_true(sp.deadline < 1000 + 24000);
  assert_true(swim_suspicion_confirm(&sp, &c.id));
  assert_int_equal(sp.deadline, 1000 + 4000);
  assert_false(swim_suspicion_wants(&sp, &c.id));
}

static void test_awareness(void **state)
{
  swim_awareness a;
  swim_awareness_init(&a, 8);
  assert_int_equal(swim_awareness_scale(&a, 500), 500);
  swim_awareness_apply(&a, -3);
  assert_int_equal(a.score, 0);
  swim_awareness_apply(&a, 3);
  assert_int_equal(swim_awareness_scale(&a, 500), 2000);
  swim_awareness_apply(&a, 100);
  assert_int_equal(a.score, 7);
  assert_int_equal(swim_awareness_scale(&a, 1000), 8000);
}

static void test_broadcast_queue(void **state)
{
  mesh_identity ids[4];
  for (int i = 0; i < 4; i++)
    make_identity(&ids[i], (uint8_t)(10 + i));
  swim_bqueue q;
  swim_bq_init(&q);
  uint8_t big[100], small[10];
  memset(big, 1, sizeof big);
  memset(small, 2, sizeof small);
  assert_int_equal(swim_bq_push(&q, &ids[0].id, big, sizeof big), 0);
  assert_int_equal(swim_bq_push(&q, &ids[1].id, small, sizeof small), 0);
  /* A newer update about the same peer replaces the queued one. */
  assert_int_equal(swim_bq_push(&q, &ids[0].id, small, sizeof small), 0);
  assert_int_equal(q.n, 2);
  assert_int_equal(swim_bq_push(&q, &ids[2].id, big, sizeof big), 0);
  size_t idx[8];
  /* Budget fits the two small ones only. */
  size_t n = swim_bq_select(&q, 30, 3, idx, 8);
  assert_int_equal(n, 2);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(q.items[idx[i]].len, 10);
  /* Limit 2: after two rounds every update is gone, none sent a third time. */
  for (int round = 0; round < 2; round++) {
    n = swim_bq_select(&q, 1000, 3, idx, 8);
    assert_int_equal(n, 3);
    swim_bq_commit(&q, idx, n, 2);
  }
  assert_int_equal(q.n, 0);
  assert_int_equal(swim_retransmit_limit(4, 9), 4);
  assert_int_equal(swim_retransmit_limit(4, 10), 8);
  assert_int_equal(swim_retransmit_limit(4, 1000), 16);
  swim_bq_free(&q);
}

static void test_profiles(void **state)
{
  mesh_swim_config c = {.profile = MESH_SWIM_PROFILE_LAN};
  assert_int_equal(mesh_swim_config_resolve(&c), 0);
  assert_int_equal(c.probe_interval_ms, 1000);
  assert_int_equal(c.probe_timeout_ms, 500);
  assert_int_equal(c.gossip_interval_ms, 200);
  assert_int_equal(c.push_pull_interval_ms, 30000);
  mesh_swim_config t = {.profile = MESH_SWIM_PROFILE_THUNDERBOLT, .gossip_nodes = 5};
  assert_int_equal(mesh_swim_config_resolve(&t), 0);
  assert_int_equal(t.probe_interval_ms, 200);
  assert_int_equal(t.probe_timeout_ms, 100);
  assert_int_equal(t.gossip_nodes, 5); /* overrides stay */
  mesh_swim_config w = {.profile = MESH_SWIM_PROFILE_WAN};
  assert_int_equal(mesh_swim_config_resolve(&w), 0);
  assert_int_equal(w.probe_interval_ms, 5000);
  assert_int_equal(w.suspicion_mult, 6);
  mesh_swim_config bad = {.profile = MESH_SWIM_PROFILE_LAN, .probe_timeout_ms = 2000};
  assert_int_equal(mesh_swim_config_resolve(&bad), -EINVAL);
  mesh_swim_profile p;
  assert_int_equal(mesh_swim_profile_parse("thunderbolt", &p), 0);
  assert_int_equal(p, MESH_SWIM_PROFILE_THUNDERBOLT);
  assert_int_equal(mesh_swim_profile_parse("fast", &p), -EINVAL);
}

static void test_codec_round_trip(void **state)
{
  mesh_identity a;
  make_identity(&a, 20);
  const char *addrs[2] = {"/ip4/127.0.0.1/tcp/4001", "/ip4/10.0.0.2/tcp/4001"};
  uint8_t attrs[3] = {1, 2, 3};
  mesh_swim_transport tr[2] = {{.name = "tcp"}, {.name = "rdma", .attrs = attrs, .attrs_len = 3}};
  uint8_t *body;
  size_t blen;
  assert_int_equal(
      swim_member_body_encode(&a.id, 7, 3, false, addrs, 2, tr, 2, "meshd/0.1", "h1", &body, &blen),
      0);
  swim_member_body b;
  assert_int_equal(swim_member_body_decode(body, blen, &b), 0);
  assert_memory_equal(b.id.b, a.id.b, MESH_PEER_ID_LEN);
  assert_int_equal(b.epoch, 7);
  assert_int_equal(b.incarnation, 3);
  assert_int_equal(b.n_addrs, 2);
  assert_string_equal(b.addrs[1], "/ip4/10.0.0.2/tcp/4001");
  assert_string_equal(b.agent, "meshd/0.1");
  assert_string_equal(b.host, "h1");
  swim_member_body_release(&b);

  uint8_t sig[MESH_SIG_LEN];
  assert_int_equal(mesh_sign(&a, MESH_DOMAIN_MEMBER, (const uint8_t *)SWIM_TYPE_MEMBER,
                             strlen(SWIM_TYPE_MEMBER), body, blen, sig),
                   0);
  uint8_t *upd;
  size_t ulen;
  assert_int_equal(swim_update_encode(&a.id, false, body, blen, sig, &upd, &ulen), 0);
  const uint8_t *ups[1] = {upd};
  size_t lens[1] = {ulen};
  swim_packet_out p = {.kind = MESH_SWIM_MSG_PING_REQ,
                       .seq = 99,
                       .target = &a.id,
                       .target_addrs = "x\0y",
                       .n_target_addrs = 2,
                       .nack = true,
                       .updates = ups,
                       .update_lens = lens,
                       .n_updates = 1};
  uint8_t *buf;
  size_t len;
  assert_int_equal(swim_packet_encode(&p, 0, &buf, &len), 0);
  swim_packet d;
  assert_int_equal(swim_packet_decode(buf, len, &d), 0);
  assert_int_equal(d.kind, MESH_SWIM_MSG_PING_REQ);
  assert_int_equal(d.seq, 99);
  assert_true(d.nack);
  assert_int_equal(d.n_target_addrs, 2);
  assert_string_equal(d.target_addrs[1], "y");
  assert_int_equal(d.n_updates, 1);
  swim_update u;
  assert_int_equal(swim_update_decode(d.updates[0], d.update_lens[0], &u), 0);
  mesh_swim_counters c = {0};
  assert_int_equal(
      swim_verify(NULL, &a.id, MESH_DOMAIN_MEMBER, SWIM_TYPE_MEMBER, u.body, u.body_len, u.sig, &c),
      0);
  /* Wrong domain: rejected. */
  assert_int_equal(
      swim_verify(NULL, &a.id, MESH_DOMAIN_ACCUSE, SWIM_TYPE_MEMBER, u.body, u.body_len, u.sig, &c),
      -MESH_EAUTH);
  /* The cache answers the second time without Ed25519. */
  mesh_swim_sigcache *cache;
  assert_int_equal(mesh_swim_sigcache_new(64, &cache), 0);
  assert_int_equal(swim_verify(cache, &a.id, MESH_DOMAIN_MEMBER, SWIM_TYPE_MEMBER, u.body,
                               u.body_len, u.sig, &c),
                   0);
  uint64_t verified = c.sig_verified;
  assert_int_equal(swim_verify(cache, &a.id, MESH_DOMAIN_MEMBER, SWIM_TYPE_MEMBER, u.body,
                               u.body_len, u.sig, &c),
                   0);
  assert_int_equal(c.sig_verified, verified);
  assert_int_equal(c.sig_cache_hits, 1);
  mesh_swim_sigcache_free(cache);
  swim_update_release(&u);
  swim_packet_release(&d);
  free(buf);
  free(upd);
  free(body);
}

static void test_codec_rejects(void **state)
{
  swim_packet d;
  uint8_t junk[4] = {0xff, 0xff, 0xff, 0xff};
  assert_int_equal(swim_packet_decode(junk, sizeof junk, &d), -EBADMSG);
  /* Kind out of range. */
  swim_packet_out p = {.kind = 9};
  uint8_t *buf;
  size_t len;
  assert_int_equal(swim_packet_encode(&p, 0, &buf, &len), 0);
  assert_int_equal(swim_packet_decode(buf, len, &d), -EBADMSG);
  free(buf);
  /* A target that is not a peer ID. */
  mesh_peer_id bogus;
  memset(&bogus, 7, sizeof bogus);
  swim_packet_out q = {.kind = MESH_SWIM_MSG_PING, .target = &bogus};
  assert_int_equal(swim_packet_encode(&q, 0, &buf, &len), 0);
  assert_int_equal(swim_packet_decode(buf, len, &d), -EBADMSG);
  free(buf);
  /* A digest outside a push-pull, and a digest key of the wrong length
   * (encoded by hand: the encoder writes only whole keys). */
  uint8_t key[MESH_SWIM_DIGEST_KEY] = {1};
  uint64_t h = 42;
  swim_packet_out r = {.kind = MESH_SWIM_MSG_PING, .digest_key = key, .digest = &h, .n_digest = 1};
  assert_int_equal(swim_packet_encode(&r, 0, &buf, &len), 0);
  assert_int_equal(swim_packet_decode(buf, len, &d), -EBADMSG);
  free(buf);
  r.kind = MESH_SWIM_MSG_PUSH_PULL;
  assert_int_equal(swim_packet_encode(&r, 0, &buf, &len), 0);
  assert_int_equal(swim_packet_decode(buf, len, &d), 0);
  assert_int_equal(d.n_digest, 1);
  assert_true(d.digest[0] == 42);
  swim_packet_release(&d);
  free(buf);
  /* kind PUSH_PULL (field 1 = 6), digest_key (field 11) of 3 bytes, and a
   * digest (field 12, fixed64) with no key at all. */
  const uint8_t short_key[] = {0x08, 0x06, 0x5a, 0x03, 1, 2, 3};
  assert_int_equal(swim_packet_decode(short_key, sizeof short_key, &d), -EBADMSG);
  const uint8_t keyless[] = {0x08, 0x06, 0x61, 1, 2, 3, 4, 5, 6, 7, 8};
  assert_int_equal(swim_packet_decode(keyless, sizeof keyless, &d), -EBADMSG);
  /* Too many addresses, too long a host: refused at encode. */
  mesh_identity a;
  make_identity(&a, 30);
  const char *addrs[9] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
  uint8_t *body;
  size_t blen;
  assert_int_equal(
      swim_member_body_encode(&a.id, 1, 0, false, addrs, 9, NULL, 0, NULL, NULL, &body, &blen),
      -EINVAL);
  char host[300];
  memset(host, 'h', sizeof host - 1);
  host[sizeof host - 1] = 0;
  assert_int_equal(
      swim_member_body_encode(&a.id, 1, 0, false, addrs, 1, NULL, 0, NULL, host, &body, &blen),
      -EINVAL);
  /* An update with a short signature. */
  swim_update u;
  assert_int_equal(swim_update_decode(junk, 0, &u), -EBADMSG);
}

/* Two cores wired back to back: join, probe, leave. */
typedef struct pair {
  mesh_identity id[2];
  mesh_rng rng[2];
  mesh_swim *s[2];
  mesh_swim_outbox out;
  uint64_t token[2];
  mesh_time_ms at[2];
  unsigned events[2][MESH_VIEW_EVENT_MAX + 1];
  unsigned apps[2];
  bool stopped[2];               /* a stopped process: no timers, messages to it lost */
  bool over[2];                  /* the core reported epoch_over */
  mesh_peer_id over_by[2];       /* ... made by this accuser */
  uint64_t over_epoch[2];        /* ... ending this epoch */
  mesh_time_ms first_suspect[2]; /* when the core first raised SUSPECT (0: never) */
  uint64_t last_seq[2];          /* seq of the last view event seen */
  unsigned seq_gaps[2];          /* events whose seq was not the last one's + 1 */
  bool alloc_failed[2];          /* an outbox of this core reported alloc_failed */
} pair;

static void pump(pair *p, int who, mesh_time_ms now)
{
  mesh_swim_outbox *o = &p->out;
  /* Copy out first: delivering refills the same outbox. */
  size_t n = o->n_sends;
  mesh_swim_send *sends = malloc((n + 1) * sizeof *sends);
  assert_non_null(sends);
  if (n > 0)
    memcpy(sends, o->sends, n * sizeof *sends);
  for (size_t i = 0; i < n; i++) {
    sends[i].buf = malloc(o->sends[i].len + 1);
    memcpy(sends[i].buf, o->sends[i].buf, o->sends[i].len);
  }
  p->alloc_failed[who] |= o->alloc_failed != 0;
  for (size_t i = 0; i < o->n_events; i++) {
    p->events[who][o->events[i].type]++;
    if (o->events[i].seq != p->last_seq[who] + 1)
      p->seq_gaps[who]++;
    p->last_seq[who] = o->events[i].seq;
    if (o->events[i].type == MESH_VIEW_SUSPECT && p->first_suspect[who] == 0)
      p->first_suspect[who] = now;
  }
  if (o->epoch_over) {
    p->over[who] = true;
    p->over_by[who] = o->epoch_over_by;
    p->over_epoch[who] = o->epoch_over_epoch;
  }
  p->apps[who] += (unsigned)o->n_apps;
  if (o->timer_set) {
    p->token[who] = o->timer_token;
    p->at[who] = o->timer_at;
  }
  bool dialed = o->n_dials > 0;
  mesh_swim_outbox_clear(o);
  if (dialed) {
    mesh_swim_peer_connected(p->s[who], &p->id[1 - who].id, "peer", 1, now, o);
    pump(p, who, now);
  }
  for (size_t i = 0; i < n; i++) {
    int to = memcmp(sends[i].to.b, p->id[0].id.b, MESH_PEER_ID_LEN) == 0 ? 0 : 1;
    if (p->stopped[to]) {
      free(sends[i].buf);
      continue;
    }
    mesh_swim_handle_packet(p->s[to], &p->id[1 - to].id, sends[i].cls, sends[i].buf, sends[i].len,
                            now, o);
    free(sends[i].buf);
    pump(p, to, now);
  }
  free(sends);
}

/* Two cores with identities made from id_seed and id_seed + 1. */
static pair *pair_new(uint8_t id_seed, uint64_t rng_seed)
{
  pair *p = calloc(1, sizeof *p);
  assert_non_null(p);
  mesh_swim_outbox_init(&p->out);
  for (int i = 0; i < 2; i++) {
    make_identity(&p->id[i], (uint8_t)(id_seed + i));
    mesh_rng_seed(&p->rng[i], rng_seed + (uint64_t)i);
    mesh_swim_config c = {.profile = MESH_SWIM_PROFILE_LAN};
    assert_int_equal(mesh_swim_new(&c, &p->id[i], 1, &p->rng[i], &p->s[i]), 0);
  }
  return p;
}

static void pair_free(pair *p)
{
  mesh_swim_outbox_free(&p->out);
  mesh_swim_free(p->s[0]);
  mesh_swim_free(p->s[1]);
  free(p);
}

static void test_two_cores(void **state)
{
  pair *p = pair_new(40, 1);
  uint8_t digest[5] = {1, 2, 3, 4, 5};
  assert_int_equal(mesh_swim_set_app_state(p->s[0], digest, 5), 0);
  uint8_t huge[MESH_SWIM_MAX_APP_STATE + 1] = {0};
  assert_int_equal(mesh_swim_set_app_state(p->s[0], huge, sizeof huge), -EMSGSIZE);
  assert_int_equal(mesh_swim_join(p->s[0], NULL, 0, 0, &p->out), 0);
  pump(p, 0, 0);
  const char *seed = "peer";
  assert_int_equal(mesh_swim_join(p->s[1], &seed, 1, 0, &p->out), 0);
  pump(p, 1, 0);
  assert_true(mesh_swim_joined(p->s[1]));
  assert_int_equal(mesh_swim_view_size(p->s[0]), 1);
  assert_int_equal(mesh_swim_view_size(p->s[1]), 1);
  assert_int_equal(p->events[0][MESH_VIEW_JOINED], 1);
  assert_int_equal(p->events[1][MESH_VIEW_JOINED], 1);
  assert_int_equal(p->apps[1], 1); /* node 1 got node 0's digest */
  /* Run timers for ten seconds: probes are answered, nobody is suspected. */
  mesh_swim_counters half = {0}; /* after five, when the join's news is out */
  for (mesh_time_ms now = 0; now < 10000; now += 10) {
    if (now == 5000)
      half = *mesh_swim_counters_get(p->s[0]);
    for (int i = 0; i < 2; i++) {
      if (p->at[i] <= now && p->token[i] != 0) {
        uint64_t t = p->token[i];
        p->token[i] = 0;
        mesh_swim_handle_timer(p->s[i], t, now, &p->out);
        pump(p, i, now);
      }
    }
  }
  assert_true(mesh_swim_counters_get(p->s[0])->probes_sent >= 8);
  assert_int_equal(mesh_swim_counters_get(p->s[0])->acks_received,
                   mesh_swim_counters_get(p->s[0])->probes_sent);
  assert_int_equal(p->events[0][MESH_VIEW_SUSPECT], 0);
  /* A probe is a kind and a sequence number: no receiver ID, no epoch
   * (the transport authenticates both ends), no signature. */
  const mesh_swim_counters *c0 = mesh_swim_counters_get(p->s[0]);
  for (int k = MESH_SWIM_MSG_PING; k <= MESH_SWIM_MSG_ACK; k++) {
    assert_true(c0->msgs_sent[k] > half.msgs_sent[k]);
    assert_true(c0->bytes_sent[k] - half.bytes_sent[k] <=
                8 * (c0->msgs_sent[k] - half.msgs_sent[k]));
  }
  /* A push-pull answer leaves out what its asker sent: between two
   * settled members it carries no record at all. A connection at a newer
   * epoch makes node 0 ask. */
  uint64_t asked = c0->bytes_sent[MESH_SWIM_MSG_PUSH_PULL];
  uint64_t answered = mesh_swim_counters_get(p->s[1])->bytes_sent[MESH_SWIM_MSG_PUSH_PULL];
  uint64_t answers = mesh_swim_counters_get(p->s[1])->msgs_sent[MESH_SWIM_MSG_PUSH_PULL];
  assert_int_equal(mesh_swim_peer_connected(p->s[0], &p->id[1].id, "peer", 2, 10000, &p->out), 0);
  pump(p, 0, 10000);
  assert_int_equal(mesh_swim_counters_get(p->s[1])->msgs_sent[MESH_SWIM_MSG_PUSH_PULL],
                   answers + 1);
  assert_true(c0->bytes_sent[MESH_SWIM_MSG_PUSH_PULL] - asked > 200); /* two records */
  assert_true(mesh_swim_counters_get(p->s[1])->bytes_sent[MESH_SWIM_MSG_PUSH_PULL] - answered < 16);
  /* A stale timer token is ignored. */
  mesh_swim_handle_timer(p->s[0], 1, 10000, &p->out);
  assert_true(mesh_swim_counters_get(p->s[0])->timers_stale >= 1);
  mesh_swim_outbox_clear(&p->out);
  /* Leave: the other side sees LEFT. */
  assert_int_equal(mesh_swim_leave(p->s[1], 10000, &p->out), 0);
  pump(p, 1, 10000);
  assert_int_equal(p->events[0][MESH_VIEW_LEFT], 1);
  assert_int_equal(mesh_swim_view_size(p->s[0]), 0);
  /* Garbage is counted, not fatal. */
  uint8_t junk[3] = {1, 2, 3};
  assert_int_equal(
      mesh_swim_handle_packet(p->s[0], &p->id[1].id, MESH_SWIM_DATAGRAM, junk, 3, 10000, &p->out),
      -EBADMSG);
  assert_int_equal(mesh_swim_counters_get(p->s[0])->dropped[MESH_SWIM_DROP_MALFORMED], 1);
  pair_free(p);
}

/* Fires every due timer of the pair up to (not including) until. */
static void fire_timers(pair *p, mesh_time_ms from, mesh_time_ms until)
{
  for (mesh_time_ms now = from; now < until; now++) {
    for (int i = 0; i < 2; i++) {
      if (p->at[i] <= now && p->token[i] != 0) {
        uint64_t t = p->token[i];
        p->token[i] = 0;
        mesh_swim_handle_timer(p->s[i], t, now, &p->out);
        pump(p, i, now);
      }
    }
  }
}

/* A member whose connection closed is probed out of turn, at most one
 * probe timeout after our last probe began, not a probe interval. */
static void test_peer_lost_probes_soon(void **state)
{
  pair *p = pair_new(90, 3);
  assert_int_equal(mesh_swim_join(p->s[0], NULL, 0, 0, &p->out), 0);
  pump(p, 0, 0);
  const char *seed = "peer";
  assert_int_equal(mesh_swim_join(p->s[1], &seed, 1, 0, &p->out), 0);
  pump(p, 1, 0);
  const mesh_swim_counters *c = mesh_swim_counters_get(p->s[0]);
  /* Until a probe of node 0 has just begun (and been answered at once). */
  mesh_time_ms now = 0;
  uint64_t probes = c->probes_sent;
  while (c->probes_sent == probes && now < 5000) {
    fire_timers(p, now, now + 1);
    now++;
  }
  assert_true(c->probes_sent == probes + 1);
  mesh_time_ms began = now - 1;
  fire_timers(p, now, began + 100);
  probes = c->probes_sent;
  assert_int_equal(mesh_swim_peer_lost(p->s[0], &p->id[1].id, began + 100, &p->out), 0);
  pump(p, 0, began + 100);
  /* The next probe would come at began + 1000: it comes after the probe
   * timeout (500 ms) instead. */
  fire_timers(p, began + 100, began + 600);
  assert_int_equal(c->probes_sent, probes + 1);
  assert_int_equal(c->acks_received, c->probes_sent); /* alive: it answered */
  assert_int_equal(p->events[0][MESH_VIEW_SUSPECT], 0);
  /* An unknown peer changes nothing. */
  mesh_peer_id stranger;
  memset(&stranger, 7, sizeof stranger);
  assert_int_equal(mesh_swim_peer_lost(p->s[0], &stranger, began + 600, &p->out), 0);
  mesh_swim_outbox_clear(&p->out);
  pair_free(p);
}

/* Counts the stream messages to peer in the outbox. */
static size_t streams_to(const mesh_swim_outbox *o, const mesh_peer_id *peer)
{
  size_t n = 0;
  for (size_t i = 0; i < o->n_sends; i++)
    if (o->sends[i].cls == MESH_SWIM_STREAM &&
        memcmp(o->sends[i].to.b, peer->b, MESH_PEER_ID_LEN) == 0)
      n++;
  return n;
}

/* A connection from a member held dead (a healed partition) or under a
 * newer epoch (a restart) starts a push-pull at once; one from a member
 * alive at the same epoch does not. */
static void test_reconnect_push_pull(void **state)
{
  pair *p = pair_new(50, 7);
  assert_int_equal(mesh_swim_join(p->s[0], NULL, 0, 0, &p->out), 0);
  pump(p, 0, 0);
  const char *seed = "peer";
  assert_int_equal(mesh_swim_join(p->s[1], &seed, 1, 0, &p->out), 0);
  pump(p, 1, 0);
  assert_int_equal(mesh_swim_view_size(p->s[0]), 1);
  mesh_swim_outbox *o = &p->out;

  /* Alive at the same epoch: nothing to sync. */
  assert_int_equal(mesh_swim_peer_connected(p->s[0], &p->id[1].id, "peer", 1, 0, o), 0);
  assert_int_equal(streams_to(o, &p->id[1].id), 0);
  /* Under a newer epoch: a push-pull. */
  assert_int_equal(mesh_swim_peer_connected(p->s[0], &p->id[1].id, "peer", 2, 0, o), 0);
  assert_int_equal(streams_to(o, &p->id[1].id), 1);
  mesh_swim_outbox_clear(o);

  /* Node 1 falls silent: node 0's sends go nowhere until it declares 1 dead. */
  unsigned dead = 0;
  mesh_time_ms now = 0;
  for (; now < 600000 && dead == 0; now += 10) {
    if (p->token[0] == 0 || p->at[0] > now)
      continue;
    uint64_t t = p->token[0];
    p->token[0] = 0;
    mesh_swim_handle_timer(p->s[0], t, now, o);
    for (size_t i = 0; i < o->n_events; i++)
      dead += o->events[i].type == MESH_VIEW_DEAD;
    if (o->timer_set) {
      p->token[0] = o->timer_token;
      p->at[0] = o->timer_at;
    }
    mesh_swim_outbox_clear(o);
  }
  assert_int_equal(dead, 1);
  /* The partition heals: the transport connects again at the same epoch. */
  assert_int_equal(mesh_swim_peer_connected(p->s[0], &p->id[1].id, "peer", 1, now, o), 0);
  assert_int_equal(streams_to(o, &p->id[1].id), 1);
  mesh_swim_outbox_clear(o);
  /* Not while leaving. */
  assert_int_equal(mesh_swim_leave(p->s[0], now, o), 0);
  mesh_swim_outbox_clear(o);
  assert_int_equal(mesh_swim_peer_connected(p->s[0], &p->id[1].id, "peer", 1, now, o), 0);
  assert_int_equal(streams_to(o, &p->id[1].id), 0);
  pair_free(p);
}

/* Runs both cores' timers from *now until stop(p) or until limit. */
static void run_timers(pair *p, mesh_time_ms *now, mesh_time_ms limit, bool (*stop)(pair *))
{
  for (; *now < limit && (stop == NULL || !stop(p)); *now += 10) {
    for (int i = 0; i < 2; i++) {
      if (!p->stopped[i] && p->token[i] != 0 && p->at[i] <= *now) {
        uint64_t t = p->token[i];
        p->token[i] = 0;
        mesh_swim_handle_timer(p->s[i], t, *now, &p->out);
        pump(p, i, *now);
      }
    }
  }
}

static pair *joined_pair(uint8_t id_seed, uint64_t rng_seed)
{
  pair *p = pair_new(id_seed, rng_seed);
  assert_int_equal(mesh_swim_join(p->s[0], NULL, 0, 0, &p->out), 0);
  pump(p, 0, 0);
  const char *seed = "peer";
  assert_int_equal(mesh_swim_join(p->s[1], &seed, 1, 0, &p->out), 0);
  pump(p, 1, 0);
  assert_int_equal(mesh_swim_view_size(p->s[0]), 1);
  assert_int_equal(mesh_swim_view_size(p->s[1]), 1);
  return p;
}

static bool zero_suspects(pair *p)
{
  return p->first_suspect[0] != 0;
}

static bool zero_declared_dead(pair *p)
{
  return p->events[0][MESH_VIEW_DEAD] > 0;
}

static bool one_over(pair *p)
{
  return p->over[1];
}

/* The outbox's one push-pull to `to` decoded into *pk (released by the
 * caller); fails the test when there is not exactly one. */
static void only_push_pull(mesh_swim_outbox *o, const mesh_peer_id *to, swim_packet *pk)
{
  size_t found = 0;
  for (size_t i = 0; i < o->n_sends; i++) {
    if (o->sends[i].kind != MESH_SWIM_MSG_PUSH_PULL ||
        memcmp(o->sends[i].to.b, to->b, MESH_PEER_ID_LEN) != 0)
      continue;
    assert_int_equal(o->sends[i].cls, MESH_SWIM_STREAM);
    assert_int_equal(swim_packet_decode(o->sends[i].buf, o->sends[i].len, pk), 0);
    found++;
  }
  assert_int_equal(found, 1);
}

static uint64_t keyed(const uint8_t key[MESH_SWIM_DIGEST_KEY], const uint8_t *b, size_t len)
{
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, b, len, key);
  uint64_t v = 0;
  for (int i = crypto_shorthash_BYTES - 1; i >= 0; i--)
    v = v << 8 | h[i];
  return v;
}

static bool one_digest(pair *p)
{
  return mesh_swim_counters_get(p->s[0])->push_pull_digests > 0 ||
         mesh_swim_counters_get(p->s[1])->push_pull_digests > 0;
}

/*
 * Anti-entropy by digest (net/swim_sync.c): the periodic push-pull of a
 * settled pair sends hashes, not records, and its answer carries nothing;
 * an ask whose digest lacks the answerer's updates gets them all, with a
 * want list of the hashes the answerer does not hold; an answer that wants
 * an update the asker holds gets it pushed, one it does not hold gets
 * nothing.
 */
static void test_push_pull_digest(void **state)
{
  pair *p = joined_pair(70, 7);
  mesh_time_ms now = 0;
  uint64_t full0 = mesh_swim_counters_get(p->s[0])->bytes_sent[MESH_SWIM_MSG_PUSH_PULL];
  uint64_t full1 = mesh_swim_counters_get(p->s[1])->bytes_sent[MESH_SWIM_MSG_PUSH_PULL];
  assert_true(full0 + full1 > 200); /* the join went in full: records of ~100 bytes */
  run_timers(p, &now, 60000, one_digest);
  assert_true(one_digest(p));
  int asker = mesh_swim_counters_get(p->s[0])->push_pull_digests > 0 ? 0 : 1;
  const mesh_swim_counters *ca = mesh_swim_counters_get(p->s[asker]);
  const mesh_swim_counters *cb = mesh_swim_counters_get(p->s[1 - asker]);
  uint64_t before_a = asker == 0 ? full0 : full1, before_b = asker == 0 ? full1 : full0;
  /* Two hashes and a key asked; nothing answered, nothing pushed. */
  assert_true(ca->bytes_sent[MESH_SWIM_MSG_PUSH_PULL] - before_a < 60);
  assert_true(cb->bytes_sent[MESH_SWIM_MSG_PUSH_PULL] - before_b < 16);
  assert_int_equal(ca->push_pull_pushes, 0);
  assert_int_equal(cb->push_pull_pushes, 0);
  /* Nothing new: the early rounds after the join end, and the next ask
   * comes a whole period (30 s at lan for two members) later. */
  assert_int_equal(ca->push_pull_settled, 1);
  uint64_t digests = ca->push_pull_digests;
  mesh_time_ms settled_at = now;
  run_timers(p, &now, settled_at + 29000, NULL);
  assert_int_equal(ca->push_pull_digests, digests);
  run_timers(p, &now, settled_at + 32000, NULL);
  assert_int_equal(ca->push_pull_digests, digests + 1);
  assert_int_equal(p->events[0][MESH_VIEW_SUSPECT] + p->events[1][MESH_VIEW_SUSPECT], 0);

  /* An ask whose digest holds one hash node 1 does not know. */
  uint8_t key[MESH_SWIM_DIGEST_KEY];
  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (uint8_t)(i * 7 + 1);
  uint64_t stranger = UINT64_C(0x0123456789abcdef);
  swim_packet_out ask = {.kind = MESH_SWIM_MSG_PUSH_PULL,
                         .epoch = 1,
                         .digest_key = key,
                         .digest = &stranger,
                         .n_digest = 1};
  uint8_t *buf;
  size_t len;
  assert_int_equal(swim_packet_encode(&ask, 0, &buf, &len), 0);
  mesh_swim_outbox_clear(&p->out);
  assert_int_equal(
      mesh_swim_handle_packet(p->s[1], &p->id[0].id, MESH_SWIM_STREAM, buf, len, now, &p->out), 0);
  free(buf);
  swim_packet answer;
  only_push_pull(&p->out, &p->id[0].id, &answer);
  assert_true(answer.reply);
  assert_int_equal(answer.n_updates, 2); /* node 1's own record and node 0's */
  assert_int_equal(answer.n_want, 1);
  assert_true(answer.want[0] == stranger);
  assert_memory_equal(answer.digest_key, key, MESH_SWIM_DIGEST_KEY);
  /* Which of the two is node 0's record: node 0 holds it as its own. */
  uint64_t h0 = 0;
  for (size_t i = 0; i < answer.n_updates; i++) {
    swim_update u;
    assert_int_equal(swim_update_decode(answer.updates[i], answer.update_lens[i], &u), 0);
    if (memcmp(u.subject.b, p->id[0].id.b, MESH_PEER_ID_LEN) == 0)
      h0 = keyed(key, answer.updates[i], answer.update_lens[i]);
    swim_update_release(&u);
  }
  swim_packet_release(&answer);
  assert_true(h0 != 0);
  mesh_swim_outbox_clear(&p->out);

  /* An answer wanting node 0's record gets it pushed; one wanting a hash
   * node 0 does not hold gets nothing. */
  uint64_t wants[2] = {stranger, h0};
  for (int round = 0; round < 2; round++) {
    swim_packet_out want = {.kind = MESH_SWIM_MSG_PUSH_PULL,
                            .reply = true,
                            .epoch = 1,
                            .digest_key = key,
                            .want = round == 0 ? &wants[0] : wants,
                            .n_want = round == 0 ? 1 : 2};
    assert_int_equal(swim_packet_encode(&want, 0, &buf, &len), 0);
    uint64_t pushes = mesh_swim_counters_get(p->s[0])->push_pull_pushes;
    assert_int_equal(mesh_swim_handle_packet(p->s[0], &p->id[1].id, MESH_SWIM_STREAM, buf, len,
                                             now + 1000 * (round + 1), &p->out),
                     0);
    free(buf);
    if (round == 0) {
      for (size_t i = 0; i < p->out.n_sends; i++)
        assert_int_not_equal(p->out.sends[i].kind, MESH_SWIM_MSG_PUSH_PULL);
      assert_int_equal(mesh_swim_counters_get(p->s[0])->push_pull_pushes, pushes);
    } else {
      swim_packet push;
      only_push_pull(&p->out, &p->id[1].id, &push);
      assert_true(push.reply);
      assert_int_equal(push.n_want, 0);
      assert_int_equal(push.n_updates, 1);
      assert_true(keyed(key, push.updates[0], push.update_lens[0]) == h0);
      swim_packet_release(&push);
      assert_int_equal(mesh_swim_counters_get(p->s[0])->push_pull_pushes, pushes + 1);
    }
    mesh_swim_outbox_clear(&p->out);
  }
  pair_free(p);
}

/* Lateness of the caller's loop: small lateness changes nothing; half a
 * probe timeout counts as one failed probe, a stall as the probes it
 * missed, at most once per probe interval, and a node with a raised score
 * accuses a silent member later than a healthy one does. */
static void test_lateness(void **state)
{
  /* lan: interval 1000, timeout 500. */
  assert_int_equal(swim_awareness_lateness_delta(0, 500, 1000), 0);
  assert_int_equal(swim_awareness_lateness_delta(249, 500, 1000), 0);
  assert_int_equal(swim_awareness_lateness_delta(250, 500, 1000), 1);
  assert_int_equal(swim_awareness_lateness_delta(999, 500, 1000), 1);
  assert_int_equal(swim_awareness_lateness_delta(5000, 500, 1000), 6);
  assert_int_equal(swim_awareness_lateness_delta(UINT64_MAX, 500, 1000), 64);

  pair *p = joined_pair(60, 11);
  mesh_swim *s = p->s[0];
  mesh_swim_outbox *o = &p->out;
  assert_int_equal(mesh_swim_note_lateness(s, 100, 1000, o), 0);
  assert_int_equal(mesh_swim_health(s), 0);
  assert_int_equal(mesh_swim_note_lateness(s, 300, 1000, o), 0);
  assert_int_equal(mesh_swim_health(s), 1);
  /* Within the same probe interval: once only. */
  assert_int_equal(mesh_swim_note_lateness(s, 300, 1500, o), 0);
  assert_int_equal(mesh_swim_health(s), 1);
  assert_int_equal(mesh_swim_note_lateness(s, 300, 2000, o), 0);
  assert_int_equal(mesh_swim_health(s), 2);
  /* A long stall: up to the cap (awareness_max 8 -> score 7). */
  assert_int_equal(mesh_swim_note_lateness(s, 60000, 3000, o), 0);
  assert_int_equal(mesh_swim_health(s), 7);
  assert_int_equal(mesh_swim_counters_get(s)->lateness_reports, 3);
  mesh_swim_outbox_clear(o);
  pair_free(p);

  /* Backing off: member 1 falls silent; a healthy node 0 and a starved one
   * (same seeds) differ only in the lateness report. */
  mesh_time_ms healthy_at = 0, starved_at = 0;
  for (int starved = 0; starved < 2; starved++) {
    p = joined_pair(70, 13);
    mesh_time_ms now = 0;
    run_timers(p, &now, 3000, NULL);
    assert_int_equal(p->first_suspect[0], 0);
    if (starved) {
      assert_int_equal(mesh_swim_note_lateness(p->s[0], 4000, now, &p->out), 0);
      pump(p, 0, now);
    }
    p->stopped[1] = true;
    mesh_time_ms from = now;
    run_timers(p, &now, 120000, zero_suspects);
    assert_true(p->first_suspect[0] != 0);
    if (starved)
      starved_at = p->first_suspect[0] - from;
    else
      healthy_at = p->first_suspect[0] - from;
    pair_free(p);
  }
  assert_true(starved_at > healthy_at);
}

/* Declared dead: the outbox names the accuser and the epoch that ended; the
 * core falls silent in it; mesh_swim_set_epoch renews in place (counted)
 * and the accuser sees the member alive at the new epoch. */
static void test_renewal(void **state)
{
  pair *p = joined_pair(80, 17);
  mesh_time_ms now = 0;
  run_timers(p, &now, 3000, NULL);
  p->stopped[1] = true;
  run_timers(p, &now, 600000, zero_declared_dead);
  assert_int_equal(p->events[0][MESH_VIEW_DEAD], 1);
  /* Member 1 continues: the dead claim reaches it. */
  p->stopped[1] = false;
  run_timers(p, &now, now + 60000, one_over);
  assert_true(p->over[1]);
  assert_memory_equal(p->over_by[1].b, p->id[0].id.b, MESH_PEER_ID_LEN);
  assert_int_equal(p->over_epoch[1], 1);
  assert_int_equal(mesh_swim_epoch(p->s[1]), 1);
  uint64_t probes = mesh_swim_counters_get(p->s[1])->probes_sent;
  /* Silent in the dead epoch until the caller has a new one: no probes. */
  mesh_time_ms wait_until = now + 5000;
  run_timers(p, &now, wait_until, NULL);
  assert_int_equal(mesh_swim_counters_get(p->s[1])->probes_sent, probes);
  assert_int_equal(mesh_swim_counters_get(p->s[1])->epoch_renewals, 0);
  assert_int_equal(mesh_swim_set_epoch(p->s[1], 1, now, &p->out), -ESTALE);
  assert_int_equal(mesh_swim_set_epoch(p->s[1], 2, now, &p->out), 0);
  pump(p, 1, now);
  assert_int_equal(mesh_swim_counters_get(p->s[1])->epoch_renewals, 1);
  mesh_swim_member_info mi;
  assert_int_equal(mesh_swim_member_find(p->s[0], &p->id[1].id, &mi), 0);
  assert_int_equal(mi.state, MESH_SWIM_ALIVE);
  assert_int_equal(mi.epoch, 2);
  /* And it probes again. */
  run_timers(p, &now, now + 5000, NULL);
  assert_true(mesh_swim_counters_get(p->s[1])->probes_sent > probes);
  pair_free(p);
}

/* The i-th member of the core's view source. */
static mesh_view_member source_member(const mesh_view_source *src, size_t i)
{
  mesh_view_member vm;
  assert_int_equal(src->member_at(src->ctx, i, &vm), 0);
  return vm;
}

/* Every view change is numbered, one after the other; a change whose event
 * the outbox could not hold (memory short, injected) still takes its
 * number, so the next event shows the gap; the view source lists the core's
 * members with the number of its last change. */
static void test_view_seq(void **state)
{
  pair *p = joined_pair(90, 19);
  mesh_time_ms now = 0;
  run_timers(p, &now, 3000, NULL);
  /* Joining made two changes on each side, numbered 1 and 2 without a gap:
   * the other joined, then answered a ping of ours (a newcomer's own ping,
   * or its turn in the probe round). */
  assert_int_equal(p->events[0][MESH_VIEW_JOINED], 1);
  assert_int_equal(p->events[0][MESH_VIEW_ANSWERED], 1);
  assert_int_equal(p->events[1][MESH_VIEW_ANSWERED], 1);
  assert_int_equal(mesh_swim_view_seq(p->s[0]), 2);
  assert_int_equal(p->last_seq[0], 2);
  assert_int_equal(p->seq_gaps[0], 0);
  assert_int_equal(p->seq_gaps[1], 0);
  mesh_view_source src;
  mesh_swim_view_source(p->s[0], &src);
  assert_int_equal(src.seq(src.ctx), 2);
  assert_int_equal(src.count(src.ctx), 1);
  mesh_view_member vm = source_member(&src, 0);
  assert_memory_equal(vm.peer.b, p->id[1].id.b, MESH_PEER_ID_LEN);
  assert_int_equal(vm.epoch, 1);
  assert_int_equal(vm.state, MESH_VIEW_STATE_ALIVE);
  assert_true(vm.answered);
  assert_int_equal(src.member_at(src.ctx, 1, &vm), -ENOENT);

  /* Node 1 leaves while node 0's outbox can hold no event: the LEFT is
   * lost, its number is not. */
  p->out.test_refuse_events = 1;
  assert_int_equal(mesh_swim_leave(p->s[1], now, &p->out), 0);
  pump(p, 1, now);
  assert_int_equal(p->out.test_refuse_events, 0);
  assert_true(p->alloc_failed[0]);
  assert_int_equal(p->events[0][MESH_VIEW_LEFT], 0);
  assert_int_equal(mesh_swim_view_size(p->s[0]), 0);
  assert_int_equal(mesh_swim_view_seq(p->s[0]), 3);
  assert_int_equal(p->last_seq[0], 2);
  /* The source tells what the event would have. */
  assert_int_equal(src.seq(src.ctx), 3);
  vm = source_member(&src, 0);
  assert_int_equal(vm.state, MESH_VIEW_STATE_LEFT);
  assert_int_equal(vm.epoch, 1);

  /* The next change (the tombstone reaped) is numbered 4: a gap of one. */
  p->stopped[1] = true;
  run_timers(p, &now, now + 120000, NULL);
  assert_int_equal(p->events[0][MESH_VIEW_REAPED], 1);
  assert_int_equal(p->last_seq[0], 4);
  assert_int_equal(p->seq_gaps[0], 1);
  assert_int_equal(mesh_swim_view_seq(p->s[0]), 4);
  assert_int_equal(src.count(src.ctx), 0);
  assert_int_equal(src.seq(src.ctx), 4);
  pair_free(p);
}

/* A member new to the view gets a ping of its own at the next probe tick,
 * not only at its turn in the round, and its answer is a view change. */
static void test_newcomer_answers(void **state)
{
  (void)state;
  pair *p = joined_pair(91, 23);
  mesh_time_ms now = 0;
  run_timers(p, &now, 2500, NULL);
  assert_int_equal(p->events[0][MESH_VIEW_JOINED], 1);
  assert_int_equal(p->events[0][MESH_VIEW_ANSWERED], 1);
  assert_int_equal(p->events[1][MESH_VIEW_ANSWERED], 1);
  assert_true(mesh_swim_counters_get(p->s[0])->newcomer_pings +
                  mesh_swim_counters_get(p->s[1])->newcomer_pings >=
              1);
  mesh_swim_member_info info;
  assert_int_equal(mesh_swim_member_find(p->s[0], &p->id[1].id, &info), 0);
  assert_true(info.answered);
  /* Answered once per epoch: more rounds raise no more. */
  run_timers(p, &now, now + 10000, NULL);
  assert_int_equal(p->events[0][MESH_VIEW_ANSWERED], 1);
  pair_free(p);
}

/* A subscriber's steps: in order it applies, behind the numbers it skips
 * (a resync read past them), past a gap it resyncs. */
static void test_view_follow(void **state)
{
  mesh_view_follower f = {0};
  mesh_view_event ev = {.type = MESH_VIEW_JOINED, .seq = 1};
  assert_int_equal(mesh_view_follow(&f, &ev), MESH_VIEW_APPLY);
  mesh_view_applied(&f, &ev);
  assert_int_equal(f.seq, 1);
  assert_int_equal(mesh_view_follow(&f, &ev), MESH_VIEW_SKIP);
  ev.seq = 3;
  assert_int_equal(mesh_view_follow(&f, &ev), MESH_VIEW_RESYNC);
  mesh_view_resynced(&f, 5);
  ev.seq = 4;
  assert_int_equal(mesh_view_follow(&f, &ev), MESH_VIEW_SKIP);
  ev.seq = 5;
  assert_int_equal(mesh_view_follow(&f, &ev), MESH_VIEW_SKIP);
  ev.seq = 6;
  assert_int_equal(mesh_view_follow(&f, &ev), MESH_VIEW_APPLY);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_suspicion_math),
      cmocka_unit_test(test_suspicion_confirmations),
      cmocka_unit_test(test_awareness),
      cmocka_unit_test(test_broadcast_queue),
      cmocka_unit_test(test_profiles),
      cmocka_unit_test(test_codec_round_trip),
      cmocka_unit_test(test_codec_rejects),
      cmocka_unit_test(test_two_cores),
      cmocka_unit_test(test_peer_lost_probes_soon),
      cmocka_unit_test(test_reconnect_push_pull),
      cmocka_unit_test(test_push_pull_digest),
      cmocka_unit_test(test_lateness),
      cmocka_unit_test(test_renewal),
      cmocka_unit_test(test_view_seq),
      cmocka_unit_test(test_view_follow),
      cmocka_unit_test(test_newcomer_answers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
