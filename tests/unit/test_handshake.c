/* The handshake, in memory: keys agree; every forgery is refused. */
#include "net/handshake.h"

#include "proto/handshake.pb-c.h"
#include "src/base/err.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

typedef struct fixture {
  mesh_identity a, b, c; /* a dials, b listens, c is a third peer */
  mesh_psk psk, other;
  mesh_hs d, l;
  uint8_t hello_d[MESH_HS_LEN_SIZE + MESH_HS_MSG_MAX];
  size_t hello_d_len;
  uint8_t hello_l[MESH_HS_LEN_SIZE + MESH_HS_MSG_MAX];
  size_t hello_l_len;
} fixture;

static fixture fx;

static void start(const mesh_peer_id *expect, const mesh_psk *listener_psk)
{
  assert_int_equal(
      mesh_hs_init(&fx.d, false, &fx.a, &fx.psk, 7, expect, (const uint8_t *)"ext-a", 5), 0);
  assert_int_equal(mesh_hs_init(&fx.l, true, &fx.b, listener_psk, 9, NULL, NULL, 0), 0);
  assert_int_equal(mesh_hs_write_hello(&fx.d, fx.hello_d, sizeof fx.hello_d, &fx.hello_d_len), 0);
  size_t n;
  assert_int_equal(mesh_hs_peek(fx.hello_d, fx.hello_d_len, &n), 0);
  assert_int_equal(n + MESH_HS_LEN_SIZE, fx.hello_d_len);
}

static int setup(void **state)
{
  memset(&fx, 0, sizeof fx);
  assert_int_equal(mesh_identity_generate(&fx.a), 0);
  assert_int_equal(mesh_identity_generate(&fx.b), 0);
  assert_int_equal(mesh_identity_generate(&fx.c), 0);
  randombytes_buf(fx.psk.key, sizeof fx.psk.key);
  randombytes_buf(fx.other.key, sizeof fx.other.key);
  return 0;
}

static void test_keys_agree(void **state)
{
  start(&fx.b.id, &fx.psk);
  assert_int_equal(mesh_hs_read_hello(&fx.l, fx.hello_d + 2, fx.hello_d_len - 2), 0);
  assert_int_equal(mesh_hs_write_hello(&fx.l, fx.hello_l, sizeof fx.hello_l, &fx.hello_l_len), 0);
  assert_true(fx.l.done);
  assert_int_equal(mesh_hs_read_hello(&fx.d, fx.hello_l + 2, fx.hello_l_len - 2), 0);
  assert_true(fx.d.done);
  assert_memory_equal(fx.d.tx.key, fx.l.rx.key, MESH_FRAME_KEY_LEN);
  assert_memory_equal(fx.d.rx.key, fx.l.tx.key, MESH_FRAME_KEY_LEN);
  assert_memory_not_equal(fx.d.tx.key, fx.d.rx.key, MESH_FRAME_KEY_LEN);
  assert_true(mesh_peer_id_eq(&fx.d.peer, &fx.b.id));
  assert_true(mesh_peer_id_eq(&fx.l.peer, &fx.a.id));
  assert_int_equal(fx.d.peer_epoch, 9);
  assert_int_equal(fx.l.peer_epoch, 7);
  assert_int_equal(fx.l.peer_ext_len, 5);
  assert_memory_equal(fx.l.peer_ext, "ext-a", 5);
  assert_int_equal(fx.d.peer_ext_len, 0);
}

static void test_wrong_swarm_key(void **state)
{
  start(NULL, &fx.other);
  assert_int_equal(mesh_hs_read_hello(&fx.l, fx.hello_d + 2, fx.hello_d_len - 2), -EACCES);
}

/* Re-signs nothing: changes the body (here the epoch) and recomputes the
 * swarm-key MAC, as a member of the swarm without the peer's key could. */
static size_t forge(const uint8_t *hello, size_t len, const mesh_psk *psk, uint8_t *out)
{
  Mesh__Handshake__Hello *h = mesh__handshake__hello__unpack(NULL, len, hello);
  assert_non_null(h);
  Mesh__Handshake__HelloBody *b =
      mesh__handshake__hello_body__unpack(NULL, h->body.len, h->body.data);
  assert_non_null(b);
  b->epoch += 1000;
  uint8_t body[MESH_HS_MSG_MAX];
  size_t blen = mesh__handshake__hello_body__pack(b, body);
  uint8_t mac[32];
  crypto_generichash_state st;
  crypto_generichash_init(&st, psk->key, sizeof psk->key, sizeof mac);
  crypto_generichash_update(&st, (const uint8_t *)"meshd-psk-hello-1", 17);
  crypto_generichash_update(&st, h->signature.data, h->signature.len);
  crypto_generichash_update(&st, body, blen);
  crypto_generichash_final(&st, mac, sizeof mac);
  Mesh__Handshake__Hello f = MESH__HANDSHAKE__HELLO__INIT;
  f.body.data = body;
  f.body.len = blen;
  f.signature = h->signature;
  f.psk_mac.data = mac;
  f.psk_mac.len = sizeof mac;
  size_t n = mesh__handshake__hello__pack(&f, out);
  mesh__handshake__hello_body__free_unpacked(b, NULL);
  mesh__handshake__hello__free_unpacked(h, NULL);
  return n;
}

static void test_forged_signature(void **state)
{
  start(NULL, &fx.psk);
  uint8_t forged[MESH_HS_MSG_MAX + 64];
  size_t n = forge(fx.hello_d + 2, fx.hello_d_len - 2, &fx.psk, forged);
  assert_int_equal(mesh_hs_read_hello(&fx.l, forged, n), -MESH_EAUTH);
  /* The honest one still works on a fresh listener. */
  assert_int_equal(mesh_hs_init(&fx.l, true, &fx.b, &fx.psk, 9, NULL, NULL, 0), 0);
  assert_int_equal(mesh_hs_read_hello(&fx.l, fx.hello_d + 2, fx.hello_d_len - 2), 0);
}

static void test_peer_id_mismatch(void **state)
{
  start(&fx.c.id, &fx.psk); /* a dials expecting c, reaches b */
  assert_int_equal(mesh_hs_read_hello(&fx.l, fx.hello_d + 2, fx.hello_d_len - 2), 0);
  assert_int_equal(mesh_hs_write_hello(&fx.l, fx.hello_l, sizeof fx.hello_l, &fx.hello_l_len), 0);
  assert_int_equal(mesh_hs_read_hello(&fx.d, fx.hello_l + 2, fx.hello_l_len - 2), -EPERM);
  assert_false(fx.d.done);
}

static void test_replayed_listener_hello(void **state)
{
  start(NULL, &fx.psk);
  assert_int_equal(mesh_hs_read_hello(&fx.l, fx.hello_d + 2, fx.hello_d_len - 2), 0);
  assert_int_equal(mesh_hs_write_hello(&fx.l, fx.hello_l, sizeof fx.hello_l, &fx.hello_l_len), 0);
  /* A second dial by a: b's old reply names the old ephemeral key. */
  mesh_hs d2;
  uint8_t h2[MESH_HS_LEN_SIZE + MESH_HS_MSG_MAX];
  size_t n2;
  assert_int_equal(mesh_hs_init(&d2, false, &fx.a, &fx.psk, 7, NULL, NULL, 0), 0);
  assert_int_equal(mesh_hs_write_hello(&d2, h2, sizeof h2, &n2), 0);
  assert_int_equal(mesh_hs_read_hello(&d2, fx.hello_l + 2, fx.hello_l_len - 2), -MESH_EAUTH);
  /* A Hello reflected back at its own sender is refused. */
  mesh_hs d3;
  assert_int_equal(mesh_hs_init(&d3, false, &fx.b, &fx.psk, 7, NULL, NULL, 0), 0);
  assert_int_equal(mesh_hs_write_hello(&d3, h2, sizeof h2, &n2), 0);
  assert_int_equal(mesh_hs_read_hello(&d3, h2 + 2, n2 - 2), -EBADMSG);
}

static void test_self_and_garbage(void **state)
{
  /* b dials b. */
  mesh_hs d, l;
  uint8_t h[MESH_HS_LEN_SIZE + MESH_HS_MSG_MAX];
  size_t n;
  assert_int_equal(mesh_hs_init(&d, false, &fx.b, &fx.psk, 1, NULL, NULL, 0), 0);
  assert_int_equal(mesh_hs_init(&l, true, &fx.b, &fx.psk, 1, NULL, NULL, 0), 0);
  assert_int_equal(mesh_hs_write_hello(&d, h, sizeof h, &n), 0);
  assert_int_equal(mesh_hs_read_hello(&l, h + 2, n - 2), -ELOOP);
  /* Garbage and bounds. */
  assert_int_equal(mesh_hs_init(&l, true, &fx.b, &fx.psk, 1, NULL, NULL, 0), 0);
  uint8_t junk[64];
  memset(junk, 0xff, sizeof junk);
  assert_int_equal(mesh_hs_read_hello(&l, junk, sizeof junk), -EBADMSG);
  assert_int_equal(mesh_hs_read_hello(&l, junk, 0), -EBADMSG);
  assert_int_equal(mesh_hs_read_hello(&l, junk, MESH_HS_MSG_MAX + 1), -EMSGSIZE);
  uint8_t big[2] = {0xff, 0xff}, zero[2] = {0, 0};
  assert_int_equal(mesh_hs_peek(big, 2, &n), -EMSGSIZE);
  assert_int_equal(mesh_hs_peek(zero, 2, &n), -EBADMSG);
  assert_int_equal(mesh_hs_peek(zero, 1, &n), 0);
  assert_int_equal(n, 0);
  /* An extension over the bound is refused at init. */
  uint8_t ext[MESH_HS_EXT_MAX + 1] = {0};
  assert_int_equal(mesh_hs_init(&l, true, &fx.b, &fx.psk, 1, NULL, ext, sizeof ext), -EMSGSIZE);
  /* A listener cannot speak first. */
  assert_int_equal(mesh_hs_init(&l, true, &fx.b, &fx.psk, 1, NULL, NULL, 0), 0);
  assert_int_equal(mesh_hs_write_hello(&l, h, sizeof h, &n), -EINVAL);
}

/* A listener makes its ephemeral key pair only for a Hello that passed the
 * swarm-key MAC and the signature: garbage, a wrong swarm key and a forged
 * signature cost none. */
static void test_no_key_pair_before_psk(void **state)
{
  start(NULL, &fx.psk);
  uint64_t before = mesh_hs_kx_made();
  mesh_hs l;
  /* Garbage, truncated, and a Hello under another swarm key. */
  uint8_t junk[200];
  memset(junk, 0x5a, sizeof junk);
  for (int i = 0; i < 100; i++) {
    assert_int_equal(mesh_hs_init(&l, true, &fx.b, &fx.psk, 9, NULL, NULL, 0), 0);
    assert_int_equal(mesh_hs_read_hello(&l, junk, sizeof junk), -EBADMSG);
    assert_int_equal(mesh_hs_init(&l, true, &fx.b, &fx.other, 9, NULL, NULL, 0), 0);
    assert_int_equal(mesh_hs_read_hello(&l, fx.hello_d + 2, fx.hello_d_len - 2), -EACCES);
  }
  assert_int_equal(mesh_hs_kx_made() - before, 0);
  /* A Hello that passes makes exactly one, when the listener answers. */
  assert_int_equal(mesh_hs_init(&l, true, &fx.b, &fx.psk, 9, NULL, NULL, 0), 0);
  assert_int_equal(mesh_hs_read_hello(&l, fx.hello_d + 2, fx.hello_d_len - 2), 0);
  assert_int_equal(mesh_hs_kx_made() - before, 0);
  uint8_t out[MESH_HS_LEN_SIZE + MESH_HS_MSG_MAX];
  size_t n;
  assert_int_equal(mesh_hs_set_extension(&l, (const uint8_t *)"ext-b", 5), 0);
  assert_int_equal(mesh_hs_write_hello(&l, out, sizeof out, &n), 0);
  assert_int_equal(mesh_hs_kx_made() - before, 1);
  assert_true(l.done);
  /* The dialer gets the extension set after the read. */
  assert_int_equal(mesh_hs_read_hello(&fx.d, out + 2, n - 2), 0);
  assert_int_equal(fx.d.peer_ext_len, 5);
  assert_memory_equal(fx.d.peer_ext, "ext-b", 5);
  mesh_hs_clear(&l);
}

static double now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* What the listener spends on one Hello: garbage, a wrong swarm key, and a
 * replayed valid Hello (which passes the checks, so it is answered and only
 * its missing finish frame ends it). Printed for the record, not asserted:
 * timings depend on the machine. */
static void test_cost_of_hellos(void **state)
{
  enum { N = 2000 };
  start(NULL, &fx.psk);
  mesh_hs l;
  uint8_t junk[200], out[MESH_HS_LEN_SIZE + MESH_HS_MSG_MAX];
  size_t n;
  memset(junk, 0x5a, sizeof junk);
  uint64_t k0 = mesh_hs_kx_made();
  double t0 = now_us();
  for (int i = 0; i < N; i++) {
    assert_int_equal(mesh_hs_init(&l, true, &fx.b, &fx.psk, 9, NULL, NULL, 0), 0);
    assert_int_equal(mesh_hs_read_hello(&l, junk, sizeof junk), -EBADMSG);
  }
  uint64_t k1 = mesh_hs_kx_made();
  double t1 = now_us();
  for (int i = 0; i < N; i++) {
    assert_int_equal(mesh_hs_init(&l, true, &fx.b, &fx.other, 9, NULL, NULL, 0), 0);
    assert_int_equal(mesh_hs_read_hello(&l, fx.hello_d + 2, fx.hello_d_len - 2), -EACCES);
  }
  uint64_t k2 = mesh_hs_kx_made();
  double t2 = now_us();
  for (int i = 0; i < N; i++) {
    assert_int_equal(mesh_hs_init(&l, true, &fx.b, &fx.psk, 9, NULL, NULL, 0), 0);
    assert_int_equal(mesh_hs_read_hello(&l, fx.hello_d + 2, fx.hello_d_len - 2), 0);
    assert_int_equal(mesh_hs_write_hello(&l, out, sizeof out, &n), 0);
  }
  uint64_t k3 = mesh_hs_kx_made();
  double t3 = now_us();
  mesh_hs_clear(&l);
  printf("hello cost over %d each: garbage %.2f us (%llu key pairs), wrong swarm key %.2f us "
         "(%llu key pairs), replayed valid %.2f us (%llu key pairs)\n",
         N, (t1 - t0) / N, (unsigned long long)(k1 - k0), (t2 - t1) / N,
         (unsigned long long)(k2 - k1), (t3 - t2) / N, (unsigned long long)(k3 - k2));
  assert_int_equal(k1 - k0, 0);
  assert_int_equal(k2 - k1, 0);
  assert_int_equal(k3 - k2, N);
}

int main(void)
{
  if (sodium_init() < 0)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_keys_agree, setup),
      cmocka_unit_test_setup(test_wrong_swarm_key, setup),
      cmocka_unit_test_setup(test_forged_signature, setup),
      cmocka_unit_test_setup(test_peer_id_mismatch, setup),
      cmocka_unit_test_setup(test_replayed_listener_hello, setup),
      cmocka_unit_test_setup(test_self_and_garbage, setup),
      cmocka_unit_test_setup(test_no_key_pair_before_psk, setup),
      cmocka_unit_test_setup(test_cost_of_hellos, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
