/* The UDP path's sans-IO parts: keys from a real handshake, sealing, the replay window, and the
 * path state machine in simulated time. */
#include "net/handshake.h"
#include "net/udp_wire.h"
#include "src/base/err.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

/* A full handshake between a dialer and a listener, in memory. */
static void handshake(mesh_hs *d, mesh_hs *l)
{
  static mesh_identity a, b;
  static mesh_psk psk;
  assert_int_equal(mesh_identity_generate(&a), 0);
  assert_int_equal(mesh_identity_generate(&b), 0);
  randombytes_buf(psk.key, sizeof psk.key);
  uint8_t hd[MESH_HS_LEN_SIZE + MESH_HS_MSG_MAX], hl[MESH_HS_LEN_SIZE + MESH_HS_MSG_MAX];
  size_t nd, nl;
  assert_int_equal(mesh_hs_init(d, false, &a, &psk, 1, NULL, NULL, 0), 0);
  assert_int_equal(mesh_hs_init(l, true, &b, &psk, 1, NULL, NULL, 0), 0);
  assert_int_equal(mesh_hs_write_hello(d, hd, sizeof hd, &nd), 0);
  assert_int_equal(mesh_hs_read_hello(l, hd + 2, nd - 2), 0);
  assert_int_equal(mesh_hs_write_hello(l, hl, sizeof hl, &nl), 0);
  assert_int_equal(mesh_hs_read_hello(d, hl + 2, nl - 2), 0);
  assert_true(d->done && l->done);
}

/* ---- keys ---- */

static void test_keys_match_and_directions_differ(void **state)
{
  (void)state;
  static mesh_hs d, l;
  handshake(&d, &l);
  assert_memory_equal(d.export_secret, l.export_secret, 32);
  /* The export secret is none of the frame keys. */
  assert_memory_not_equal(d.export_secret, d.tx.key, 32);
  assert_memory_not_equal(d.export_secret, d.rx.key, 32);

  mesh_udp_keys kd, kl;
  mesh_udp_keys_derive(d.export_secret, true, &kd);
  mesh_udp_keys_derive(l.export_secret, false, &kl);
  assert_memory_equal(kd.tx, kl.rx, MESH_UDP_KEY_LEN);
  assert_memory_equal(kd.rx, kl.tx, MESH_UDP_KEY_LEN);
  assert_memory_not_equal(kd.tx, kd.rx, MESH_UDP_KEY_LEN);
  assert_int_equal(kd.tx_index, kl.rx_index);
  assert_int_equal(kd.rx_index, kl.tx_index);
  /* UDP keys never equal a TCP frame key of the same link. */
  assert_memory_not_equal(kd.tx, d.tx.key, 32);
  assert_memory_not_equal(kd.tx, d.rx.key, 32);
  assert_memory_not_equal(kd.rx, d.tx.key, 32);
  assert_memory_not_equal(kd.rx, d.rx.key, 32);

  /* Another handshake between the same kind of peers: other keys. */
  static mesh_hs d2, l2;
  handshake(&d2, &l2);
  mesh_udp_keys k2;
  mesh_udp_keys_derive(d2.export_secret, true, &k2);
  assert_memory_not_equal(kd.tx, k2.tx, MESH_UDP_KEY_LEN);
  mesh_hs_clear(&d);
  mesh_hs_clear(&l);
  mesh_hs_clear(&d2);
  mesh_hs_clear(&l2);
}

/* ---- sealing ---- */

static void test_seal_open(void **state)
{
  (void)state;
  uint8_t secret[32];
  randombytes_buf(secret, sizeof secret);
  mesh_udp_keys a, b;
  mesh_udp_keys_derive(secret, true, &a);
  mesh_udp_keys_derive(secret, false, &b);
  const uint8_t msg[] = "probe: are you there";
  mesh_udp_header h = {.type = MESH_UDP_DATA, .channel = 1, .index = a.tx_index, .counter = 77};
  uint8_t pkt[256], out[256];
  size_t n, m;
  assert_int_equal(mesh_udp_seal(a.tx, &h, msg, sizeof msg, pkt, sizeof pkt, &n), 0);
  assert_int_equal(n, MESH_UDP_OVERHEAD + sizeof msg);
  mesh_udp_header g;
  assert_int_equal(mesh_udp_peek(pkt, n, &g), 0);
  assert_int_equal(g.type, MESH_UDP_DATA);
  assert_int_equal(g.channel, 1);
  assert_int_equal(g.index, b.rx_index);
  assert_true(g.counter == 77);
  assert_int_equal(mesh_udp_open(b.rx, pkt, n, out, sizeof out, &m), 0);
  assert_int_equal(m, sizeof msg);
  assert_memory_equal(out, msg, sizeof msg);

  /* Any flipped bit (header, ciphertext or tag) fails the tag. */
  for (size_t i = 0; i < n; i++) {
    if (i >= 2 && i < 4)
      continue; /* reserved bytes: refused by peek already */
    pkt[i] ^= 0x10;
    assert_int_equal(mesh_udp_open(b.rx, pkt, n, out, sizeof out, &m), -MESH_EAUTH);
    pkt[i] ^= 0x10;
  }
  /* The sender's own key, the other direction, does not open it. */
  assert_int_equal(mesh_udp_open(b.tx, pkt, n, out, sizeof out, &m), -MESH_EAUTH);
  /* Too small a buffer either way. */
  assert_int_equal(mesh_udp_seal(a.tx, &h, msg, sizeof msg, pkt, 40, &n), -EMSGSIZE);
  assert_int_equal(mesh_udp_open(b.rx, pkt, MESH_UDP_OVERHEAD + sizeof msg, out, 4, &m), -EMSGSIZE);

  /* A ping: empty payload, no channel. */
  mesh_udp_header p = {.type = MESH_UDP_PING, .index = 5, .counter = 0};
  assert_int_equal(mesh_udp_seal(a.tx, &p, NULL, 0, pkt, sizeof pkt, &n), 0);
  assert_int_equal(n, MESH_UDP_OVERHEAD);
  assert_int_equal(mesh_udp_peek(pkt, n, &g), 0);
  assert_int_equal(mesh_udp_open(b.rx, pkt, n, out, sizeof out, &m), 0);
  assert_int_equal(m, 0);
}

static void test_peek_refuses(void **state)
{
  (void)state;
  uint8_t pkt[64] = {0};
  mesh_udp_header g;
  pkt[0] = MESH_UDP_DATA;
  pkt[1] = 1;
  assert_int_equal(mesh_udp_peek(pkt, MESH_UDP_OVERHEAD - 1, &g), -EBADMSG); /* short */
  assert_int_equal(mesh_udp_peek(pkt, MESH_UDP_OVERHEAD, &g), 0);
  pkt[1] = 0;
  assert_int_equal(mesh_udp_peek(pkt, sizeof pkt, &g), -EBADMSG); /* data without channel */
  pkt[0] = MESH_UDP_PONG;
  assert_int_equal(mesh_udp_peek(pkt, sizeof pkt, &g), 0);
  pkt[1] = 2;
  assert_int_equal(mesh_udp_peek(pkt, sizeof pkt, &g), -EBADMSG); /* pong with channel */
  pkt[1] = 0;
  pkt[3] = 1;
  assert_int_equal(mesh_udp_peek(pkt, sizeof pkt, &g), -EBADMSG); /* reserved */
  pkt[3] = 0;
  pkt[0] = 0;
  assert_int_equal(mesh_udp_peek(pkt, sizeof pkt, &g), -EBADMSG); /* type */
  pkt[0] = 4;
  assert_int_equal(mesh_udp_peek(pkt, sizeof pkt, &g), -EBADMSG);
}

/* ---- replay window ---- */

static void test_replay_in_order(void **state)
{
  (void)state;
  mesh_udp_replay w;
  memset(&w, 0, sizeof w);
  for (uint64_t c = 0; c < 10000; c++)
    assert_true(mesh_udp_replay_accept(&w, c));
  for (uint64_t c = 9990; c < 10000; c++)
    assert_false(mesh_udp_replay_check(&w, c)); /* duplicates */
}

static void test_replay_out_of_order_within_window(void **state)
{
  (void)state;
  mesh_udp_replay w;
  memset(&w, 0, sizeof w);
  assert_true(mesh_udp_replay_accept(&w, 3000));
  /* Everything within the window below the top, once, in any order. */
  for (uint64_t c = 3000 - MESH_UDP_REPLAY_WINDOW; c < 3000; c += 7)
    assert_true(mesh_udp_replay_accept(&w, c));
  for (uint64_t c = 2999; c > 3000 - MESH_UDP_REPLAY_WINDOW; c -= 11)
    if ((c - (3000 - MESH_UDP_REPLAY_WINDOW)) % 7 != 0)
      assert_true(mesh_udp_replay_accept(&w, c));
  assert_false(mesh_udp_replay_accept(&w, 3000 - MESH_UDP_REPLAY_WINDOW)); /* again */
  assert_false(mesh_udp_replay_accept(&w, 3000));
}

static void test_replay_too_old(void **state)
{
  (void)state;
  mesh_udp_replay w;
  memset(&w, 0, sizeof w);
  assert_true(mesh_udp_replay_accept(&w, 5000));
  assert_false(mesh_udp_replay_check(&w, 5000 - MESH_UDP_REPLAY_WINDOW - 1));
  assert_false(mesh_udp_replay_check(&w, 0));
  assert_true(mesh_udp_replay_check(&w, 5000 - MESH_UDP_REPLAY_WINDOW));
}

static void test_replay_far_jump(void **state)
{
  (void)state;
  mesh_udp_replay w;
  memset(&w, 0, sizeof w);
  for (uint64_t c = 0; c < 100; c++)
    assert_true(mesh_udp_replay_accept(&w, c));
  uint64_t far = UINT64_C(1) << 40;
  assert_true(mesh_udp_replay_accept(&w, far));
  /* Everything before the jump is now too old; just below it is fresh
   * (the bitmap was cleared, not left with the old counters' bits). */
  assert_false(mesh_udp_replay_check(&w, 99));
  for (uint64_t c = far - MESH_UDP_REPLAY_WINDOW; c < far; c++)
    assert_true(mesh_udp_replay_check(&w, c));
  assert_true(mesh_udp_replay_accept(&w, far - 1));
  assert_false(mesh_udp_replay_accept(&w, far - 1));
  /* A jump of less than a ring: the words in between start empty. */
  assert_true(mesh_udp_replay_accept(&w, far + 700));
  for (uint64_t c = far + 1; c < far + 700; c++)
    assert_true(mesh_udp_replay_check(&w, c));
  assert_false(mesh_udp_replay_check(&w, far));
  /* The limit: counters near the end are never accepted. */
  assert_false(mesh_udp_replay_accept(&w, MESH_UDP_COUNTER_LIMIT));
  assert_false(mesh_udp_replay_accept(&w, UINT64_MAX));
}

/* Random arrivals against a plain model: accepted exactly when the counter
 * is new and not more than the window below the highest accepted. */
static void test_replay_matches_model(void **state)
{
  (void)state;
  enum { N = 20000 };
  static bool seen[N + 4096];
  mesh_udp_replay w;
  memset(&w, 0, sizeof w);
  memset(seen, 0, sizeof seen);
  uint64_t top = 0;
  bool any = false;
  uint32_t x = 12345;
  for (int i = 0; i < 200000; i++) {
    x = x * 1103515245u + 12345u;
    uint64_t base = (uint64_t)i / 10;
    uint64_t c = base + (x >> 8) % 3000; /* ahead, behind, repeated */
    if (c >= N + 4096)
      continue;
    bool model = !seen[c] && (!any || c > top || top - c <= MESH_UDP_REPLAY_WINDOW);
    bool got = mesh_udp_replay_accept(&w, c);
    if (model != got)
      fail_msg("counter %llu: model %d, window %d", (unsigned long long)c, model, got);
    if (got) {
      seen[c] = true;
      if (!any || c > top)
        top = c;
      any = true;
    }
  }
}

/* ---- path state machine, simulated time ---- */

static mesh_udp_path_cfg cfg(void)
{
  mesh_udp_path_cfg c;
  mesh_udp_path_cfg_default(&c);
  return c;
}

/* Ticks every 50 ms from *now to until; counts pings and returns the
 * first state change (or none). */
static int run(mesh_udp_path *p, const mesh_udp_path_cfg *c, mesh_time_ms *now, mesh_time_ms until,
               int *pings, mesh_udp_path_out *change)
{
  int changes = 0;
  while (*now < until) {
    *now += 50;
    mesh_udp_path_out o;
    mesh_udp_path_tick(p, c, *now, &o);
    if (o.ping)
      (*pings)++;
    if (o.changed && changes++ == 0)
      *change = o;
  }
  return changes;
}

static void test_path_blocked_falls_back_with_backoff(void **state)
{
  (void)state;
  mesh_udp_path_cfg c = cfg();
  mesh_udp_path p;
  mesh_udp_path_out o;
  mesh_time_ms now = 1000;
  int pings = 0;
  mesh_udp_path_start(&p, &c, now, &o);
  assert_true(o.ping);
  assert_false(mesh_udp_path_usable(&p, &c, now)); /* TCP until UDP answers */
  /* Nothing ever answers: fallback after probe_ms, pinging meanwhile. */
  mesh_udp_path_out ch;
  assert_int_equal(run(&p, &c, &now, 1000 + c.probe_ms, &pings, &ch), 1);
  assert_true(ch.changed);
  assert_int_equal(ch.from, MESH_UDP_PATH_PROBING);
  assert_int_equal(p.state, MESH_UDP_PATH_FALLBACK);
  assert_int_equal(pings, (int)(c.probe_ms / c.ping_ms) - 1);
  assert_false(mesh_udp_path_usable(&p, &c, now));
  /* Silent until the backoff ends, then probing again. */
  pings = 0;
  mesh_time_ms fell = now;
  assert_int_equal(run(&p, &c, &now, fell + c.backoff_min_ms - 50, &pings, &ch), 0);
  assert_int_equal(pings, 0);
  assert_int_equal(run(&p, &c, &now, fell + c.backoff_min_ms, &pings, &ch), 1);
  assert_int_equal(p.state, MESH_UDP_PATH_PROBING);
  /* Still blocked: the next wait doubles. */
  run(&p, &c, &now, now + c.probe_ms, &pings, &ch);
  assert_int_equal(p.state, MESH_UDP_PATH_FALLBACK);
  assert_true(p.retry_at - now == 2 * c.backoff_min_ms);
  /* The backoff stops at its cap. */
  for (int i = 0; i < 20; i++) {
    run(&p, &c, &now, p.retry_at, &pings, &ch);
    run(&p, &c, &now, now + c.probe_ms, &pings, &ch);
  }
  assert_true(p.retry_at - p.since <= c.backoff_max_ms);
  /* UDP comes back: an answer makes it UP and resets the backoff. */
  run(&p, &c, &now, p.retry_at, &pings, &ch);
  assert_int_equal(p.state, MESH_UDP_PATH_PROBING);
  mesh_udp_path_on_rx(&p, &c, now, MESH_UDP_PONG, &o);
  assert_true(o.changed);
  assert_int_equal(p.state, MESH_UDP_PATH_UP);
  assert_true(mesh_udp_path_usable(&p, &c, now));
  assert_true(p.backoff == c.backoff_min_ms);
}

static void test_path_stops_while_up(void **state)
{
  (void)state;
  mesh_udp_path_cfg c = cfg();
  mesh_udp_path p;
  mesh_udp_path_out o, ch;
  mesh_time_ms now = 0;
  int pings = 0;
  mesh_udp_path_start(&p, &c, now, &o);
  now += 5;
  mesh_udp_path_on_rx(&p, &c, now, MESH_UDP_DATA, &o); /* the peer's data proves both ways */
  assert_int_equal(p.state, MESH_UDP_PATH_UP);
  /* Traffic both ways: never in doubt. */
  for (int i = 0; i < 100; i++) {
    now += 300;
    mesh_udp_path_on_tx(&p, &c, now);
    now += 2;
    mesh_udp_path_on_rx(&p, &c, now, MESH_UDP_DATA, &o);
    assert_int_equal(run(&p, &c, &now, now + 100, &pings, &ch), 0);
  }
  assert_int_equal(pings, 0);
  /* Answering a datagram just heard starts no doubt either. */
  mesh_udp_path_on_tx(&p, &c, now + 10);
  assert_true(p.doubt_since == 0);
  /* The peer goes quiet over UDP while we send: doubt, then TCP for
   * datagrams with pings, then a fallback. */
  now += 5000;
  mesh_udp_path_on_tx(&p, &c, now);
  assert_true(p.doubt_since == now);
  assert_true(mesh_udp_path_usable(&p, &c, now));
  mesh_time_ms doubt = now;
  run(&p, &c, &now, doubt + c.doubt_ms, &pings, &ch);
  assert_false(mesh_udp_path_usable(&p, &c, now));
  assert_int_equal(p.state, MESH_UDP_PATH_UP);
  assert_true(pings >= 1);
  assert_int_equal(run(&p, &c, &now, doubt + c.dead_ms, &pings, &ch), 1);
  assert_int_equal(ch.from, MESH_UDP_PATH_UP);
  assert_int_equal(p.state, MESH_UDP_PATH_FALLBACK);
  /* The peer's own retry (a ping) starts probing here at once. */
  mesh_udp_path_on_rx(&p, &c, now + 10, MESH_UDP_PING, &o);
  assert_true(o.changed && o.ping);
  assert_int_equal(p.state, MESH_UDP_PATH_PROBING);
}

static void test_path_doubt_cleared(void **state)
{
  (void)state;
  mesh_udp_path_cfg c = cfg();
  mesh_udp_path p;
  mesh_udp_path_out o, ch;
  mesh_time_ms now = 0;
  int pings = 0;
  mesh_udp_path_start(&p, &c, now, &o);
  mesh_udp_path_on_rx(&p, &c, ++now, MESH_UDP_PONG, &o);
  now += 3000;
  mesh_udp_path_on_tx(&p, &c, now);
  run(&p, &c, &now, now + c.doubt_ms + 100, &pings, &ch);
  assert_false(mesh_udp_path_usable(&p, &c, now));
  mesh_udp_path_on_rx(&p, &c, now, MESH_UDP_PONG, &o); /* a ping answered */
  assert_false(o.changed);
  assert_true(mesh_udp_path_usable(&p, &c, now));
  assert_int_equal(run(&p, &c, &now, now + 10000, &pings, &ch), 0);
  assert_int_equal(p.state, MESH_UDP_PATH_UP);
  /* A local send error: fallback at once. */
  mesh_udp_path_fail(&p, &c, now, &o);
  assert_true(o.changed);
  assert_int_equal(p.state, MESH_UDP_PATH_FALLBACK);
}

int main(void)
{
  if (sodium_init() < 0)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_keys_match_and_directions_differ),
      cmocka_unit_test(test_seal_open),
      cmocka_unit_test(test_peek_refuses),
      cmocka_unit_test(test_replay_in_order),
      cmocka_unit_test(test_replay_out_of_order_within_window),
      cmocka_unit_test(test_replay_too_old),
      cmocka_unit_test(test_replay_far_jump),
      cmocka_unit_test(test_replay_matches_model),
      cmocka_unit_test(test_path_blocked_falls_back_with_backoff),
      cmocka_unit_test(test_path_stops_while_up),
      cmocka_unit_test(test_path_doubt_cleared),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
