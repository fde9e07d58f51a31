/*
 * Property: a forged or replayed record changes nothing.
 *
 *   - an alive record for X signed by another member M: dropped (bad
 *     signature), X's record unchanged everywhere;
 *   - a dead claim naming Y as accuser but signed by M: dropped;
 *   - a genuine suspicion of X, replayed after X refuted it: no event;
 *   - X's genuine alive record of its old epoch, replayed after X restarted:
 *     no event, counted as stale;
 *   - a flood of suspect and dead claims signed by a key outside the mesh,
 *     about every node, sent to every node: refused unverified (counted as
 *     accuser-not-member), no event, no epoch changes;
 *   - a member's dead claim about a live X, sent to everyone but X: each
 *     node suspects X instead of declaring it dead, X hears of it and
 *     refutes, and nobody's epoch changes.
 */
#include "support_sim.h"

#include "net/swim_internal.h"
#include "src/identity/signed.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

static unsigned events;

static void count_events(sim *s, size_t obs, const mesh_view_event *ev, void *p)
{
  events++;
}

static sim *formed(uint64_t seed)
{
  sim_config cfg = {.n = 8, .seed = seed, .delay_ms = 2, .jitter_ms = 3};
  cfg.swim.profile = MESH_SWIM_PROFILE_LAN;
  sim *s;
  assert_int_equal(sim_new(&cfg, &s), 0);
  sim_on_event(s, count_events, NULL);
  sim_start(s);
  assert_true(sim_run_until_cond(s, 60000, 250, sim_converged, NULL));
  sim_run_until(s, sim_now(s) + 10000); /* let the join gossip drain */
  events = 0;
  return s;
}

/* An Update whose body is signed by `signer` (who may not be its speaker). */
static void member_update(const mesh_identity *signer, const mesh_peer_id *subject, uint64_t epoch,
                          uint64_t inc, const char *addr, uint8_t **upd, size_t *len)
{
  const char *addrs[1] = {addr};
  uint8_t *body, sig[MESH_SIG_LEN];
  size_t blen;
  assert_int_equal(swim_member_body_encode(subject, epoch, inc, false, addrs, 1, NULL, 0,
                                           "meshd-sim/1", "sim", &body, &blen),
                   0);
  assert_int_equal(mesh_sign(signer, MESH_DOMAIN_MEMBER, (const uint8_t *)SWIM_TYPE_MEMBER,
                             strlen(SWIM_TYPE_MEMBER), body, blen, sig),
                   0);
  assert_int_equal(swim_update_encode(subject, false, body, blen, sig, upd, len), 0);
  free(body);
}

static void accuse_update(const mesh_identity *signer, const mesh_peer_id *accuser,
                          const mesh_peer_id *target, uint64_t epoch, uint64_t inc, bool dead,
                          uint8_t **upd, size_t *len)
{
  swim_accuse_body a = {
      .target = *target, .accuser = *accuser, .epoch = epoch, .incarnation = inc, .dead = dead};
  uint8_t *body, sig[MESH_SIG_LEN];
  size_t blen;
  assert_int_equal(swim_accuse_body_encode(&a, &body, &blen), 0);
  assert_int_equal(mesh_sign(signer, MESH_DOMAIN_ACCUSE, (const uint8_t *)SWIM_TYPE_ACCUSE,
                             strlen(SWIM_TYPE_ACCUSE), body, blen, sig),
                   0);
  assert_int_equal(swim_update_encode(target, true, body, blen, sig, upd, len), 0);
  free(body);
}

/* Sends upd from node `from` to node `to` in a GOSSIP datagram. */
static void inject(sim *s, size_t from, size_t to, const uint8_t *upd, size_t len)
{
  const uint8_t *ups[1] = {upd};
  size_t lens[1] = {len};
  swim_packet_out p = {
      .kind = MESH_SWIM_MSG_GOSSIP, .updates = ups, .update_lens = lens, .n_updates = 1};
  uint8_t *buf;
  size_t blen;
  assert_int_equal(swim_packet_encode(&p, 0, &buf, &blen), 0);
  sim_inject(s, from, to, MESH_SWIM_DATAGRAM, buf, blen);
  free(buf);
}

static uint64_t drops(sim *s, mesh_swim_drop why)
{
  uint64_t n = 0;
  for (size_t i = 0; i < sim_n(s); i++)
    if (sim_up(s, i))
      n += mesh_swim_counters_get(sim_core(s, i))->dropped[why];
  return n;
}

static void test_forged_alive_and_dead_change_nothing(void **state)
{
  sim *s = formed(401);
  const size_t x = 2, m = 1, y = 3;
  mesh_swim_member_info before;
  assert_int_equal(mesh_swim_member_find(sim_core(s, 0), &sim_identity(s, x)->id, &before), 0);
  uint64_t bad = drops(s, MESH_SWIM_DROP_BAD_SIGNATURE);

  uint8_t *upd;
  size_t len;
  member_update(sim_identity(s, m), &sim_identity(s, x)->id, sim_epoch(s, x),
                before.incarnation + 5, "sim:666", &upd, &len);
  inject(s, m, 0, upd, len);
  free(upd);
  accuse_update(sim_identity(s, m), &sim_identity(s, y)->id, &sim_identity(s, x)->id,
                sim_epoch(s, x), before.incarnation, true, &upd, &len);
  inject(s, m, 0, upd, len);
  inject(s, m, 4, upd, len);
  free(upd);
  sim_run_until(s, sim_now(s) + 20000);

  mesh_swim_member_info after;
  assert_int_equal(mesh_swim_member_find(sim_core(s, 0), &sim_identity(s, x)->id, &after), 0);
  assert_int_equal(after.incarnation, before.incarnation);
  assert_int_equal(after.state, MESH_SWIM_ALIVE);
  assert_string_equal(after.addrs, "sim:2");
  assert_int_equal(drops(s, MESH_SWIM_DROP_BAD_SIGNATURE), bad + 3);
  assert_int_equal(events, 0);
  assert_int_equal(sim_get_stats(s)->false_deaths, 0);
  assert_true(sim_converged(s, NULL));
  sim_free(s);
}

static void test_replayed_suspicion_and_old_epoch_change_nothing(void **state)
{
  sim *s = formed(402);
  const size_t x = 5, m = 6;
  mesh_swim_member_info xi;
  assert_int_equal(mesh_swim_member_find(sim_core(s, 0), &sim_identity(s, x)->id, &xi), 0);
  /* A genuine suspicion by m: X hears of it and refutes. */
  uint8_t *susp;
  size_t slen;
  accuse_update(sim_identity(s, m), &sim_identity(s, m)->id, &sim_identity(s, x)->id,
                sim_epoch(s, x), xi.incarnation, false, &susp, &slen);
  inject(s, m, 0, susp, slen);
  sim_run_until(s, sim_now(s) + 20000);
  assert_true(events > 0); /* suspect, then alive again */
  assert_true(mesh_swim_incarnation(sim_core(s, x)) > xi.incarnation);
  assert_true(sim_converged(s, NULL));
  events = 0;
  for (size_t i = 0; i < sim_n(s); i++)
    if (i != m)
      inject(s, m, i, susp, slen);
  free(susp);
  sim_run_until(s, sim_now(s) + 20000);
  assert_int_equal(events, 0);

  /* X's genuine record of epoch 1, replayed after X restarted. */
  uint8_t *old;
  size_t olen;
  member_update(sim_identity(s, x), &sim_identity(s, x)->id, sim_epoch(s, x), xi.incarnation + 10,
                "sim:5", &old, &olen);
  sim_restart(s, x);
  assert_true(sim_run_until_cond(s, sim_now(s) + 10000, 100, sim_converged, NULL));
  sim_run_until(s, sim_now(s) + 10000);
  events = 0;
  uint64_t stale = drops(s, MESH_SWIM_DROP_STALE_EPOCH);
  for (size_t i = 0; i < sim_n(s); i++)
    if (i != m && i != x)
      inject(s, m, i, old, olen);
  free(old);
  sim_run_until(s, sim_now(s) + 20000);
  assert_int_equal(events, 0);
  assert_true(drops(s, MESH_SWIM_DROP_STALE_EPOCH) >= stale + sim_n(s) - 2);
  assert_true(sim_converged(s, NULL));
  sim_free(s);
}

/* Signature checks made by every live node: Ed25519 verifications and
 * signature-cache lookups. */
static uint64_t sig_work(sim *s)
{
  uint64_t n = 0;
  for (size_t i = 0; i < sim_n(s); i++) {
    if (sim_up(s, i)) {
      const mesh_swim_counters *c = mesh_swim_counters_get(sim_core(s, i));
      n += c->sig_verified + c->sig_cache_hits;
    }
  }
  return n;
}

static uint64_t deferred_deaths(sim *s)
{
  uint64_t n = 0;
  for (size_t i = 0; i < sim_n(s); i++)
    if (sim_up(s, i))
      n += mesh_swim_counters_get(sim_core(s, i))->dead_claims_deferred;
  return n;
}

static void test_outsider_claims_change_nothing(void **state)
{
  sim *s = formed(403);
  mesh_identity outsider;
  uint8_t seed[32];
  memset(seed, 0xEE, sizeof seed);
  crypto_sign_seed_keypair(outsider.pk, outsider.sk, seed);
  mesh_peer_id_from_pubkey(outsider.pk, &outsider.id);
  size_t n = sim_n(s);
  uint64_t epochs[16];
  assert_true(n <= 16);
  for (size_t i = 0; i < n; i++)
    epochs[i] = sim_epoch(s, i);
  uint64_t overs = sim_get_stats(s)->epoch_overs;
  uint64_t work = sig_work(s);
  /* Ten rounds, 100 ms apart: to every node, a suspect and a dead claim
   * about itself and about its neighbour, relayed by another member. */
  unsigned sent = 0;
  for (int round = 0; round < 10; round++) {
    for (size_t to = 0; to < n; to++) {
      size_t about[2] = {to, (to + 1) % n};
      for (int k = 0; k < 4; k++) {
        size_t x = about[k / 2];
        uint8_t *upd;
        size_t len;
        accuse_update(&outsider, &outsider.id, &sim_identity(s, x)->id, sim_epoch(s, x),
                      (uint64_t)round, k % 2 == 1, &upd, &len);
        inject(s, (to + 2) % n, to, upd, len);
        free(upd);
        sent++;
      }
    }
    sim_run_until(s, sim_now(s) + 100);
  }
  sim_run_until(s, sim_now(s) + 20000);
  printf("%u claims by a key outside the mesh: %llu refused as accuser-not-member, %u view "
         "events, %llu epoch renewals\n",
         sent, (unsigned long long)drops(s, MESH_SWIM_DROP_NOT_MEMBER), events,
         (unsigned long long)(sim_get_stats(s)->epoch_overs - overs));
  assert_int_equal(drops(s, MESH_SWIM_DROP_NOT_MEMBER), sent);
  assert_int_equal(events, 0);
  assert_int_equal(sim_get_stats(s)->epoch_overs, overs);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(sim_epoch(s, i), epochs[i]);
  /* Not one of them cost a signature check. */
  assert_int_equal(sig_work(s), work);
  assert_true(sim_converged(s, NULL));
  sim_free(s);
}

static unsigned deaths;

static void count_deaths(sim *s, size_t obs, const mesh_view_event *ev, void *p)
{
  events++;
  deaths += ev->type == MESH_VIEW_DEAD;
}

static void test_member_dead_claim_is_refuted(void **state)
{
  sim *s = formed(404);
  sim_on_event(s, count_deaths, NULL);
  deaths = 0;
  const size_t x = 3, m = 6;
  size_t n = sim_n(s);
  uint64_t epoch_x = sim_epoch(s, x);
  uint64_t overs = sim_get_stats(s)->epoch_overs;
  mesh_swim_member_info xi;
  assert_int_equal(mesh_swim_member_find(sim_core(s, 0), &sim_identity(s, x)->id, &xi), 0);
  uint8_t *upd;
  size_t len;
  accuse_update(sim_identity(s, m), &sim_identity(s, m)->id, &sim_identity(s, x)->id, epoch_x,
                xi.incarnation, true, &upd, &len);
  for (size_t i = 0; i < n; i++)
    if (i != x && i != m)
      inject(s, m, i, upd, len);
  free(upd);
  /* Delivered: every receiver holds X suspect (its own suspicion). */
  mesh_time_ms t0 = sim_now(s);
  sim_run_until(s, t0 + 20);
  assert_int_equal(deferred_deaths(s), n - 2);
  assert_false(sim_converged(s, NULL));
  assert_true(sim_run_until_cond(s, t0 + 30000, 50, sim_converged, NULL));
  mesh_time_ms back = sim_now(s) - t0;
  sim_run_until(s, sim_now(s) + 30000);
  uint64_t deferred = deferred_deaths(s);
  printf("a member's dead claim about a live node, to %zu others: %llu suspicions instead, "
         "refuted, one view again after %llu ms; deaths %u, epoch renewals %llu\n",
         n - 2, (unsigned long long)deferred, (unsigned long long)back, deaths,
         (unsigned long long)(sim_get_stats(s)->epoch_overs - overs));
  assert_int_equal(deferred, n - 2);
  assert_int_equal(deaths, 0);
  assert_int_equal(sim_get_stats(s)->false_deaths, 0);
  assert_int_equal(sim_get_stats(s)->epoch_overs, overs);
  assert_int_equal(sim_epoch(s, x), epoch_x);
  assert_true(mesh_swim_incarnation(sim_core(s, x)) > xi.incarnation);
  assert_true(sim_converged(s, NULL));
  sim_free(s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forged_alive_and_dead_change_nothing),
      cmocka_unit_test(test_replayed_suspicion_and_old_epoch_change_nothing),
      cmocka_unit_test(test_outsider_claims_change_nothing),
      cmocka_unit_test(test_member_dead_claim_is_refuted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
