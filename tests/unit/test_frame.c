/* Frames: sealing and opening, and every way a frame is refused. */
#include "net/frame.h"
#include "net/frame_cipher.h"
#include "net/frame_speed.h"
#include "src/base/err.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <sodium.h>

static void pair(mesh_frame_dir *tx, mesh_frame_dir *rx)
{
  memset(tx, 0, sizeof *tx);
  randombytes_buf(tx->key, sizeof tx->key);
  *rx = *tx;
}

static size_t seal(mesh_frame_dir *tx, uint8_t type, const uint8_t *p, size_t n, uint8_t *out,
                   size_t cap)
{
  mesh_frame f = {.type = type,
                  .channel = 1,
                  .cls = 0,
                  .flags = MESH_FRAME_FIRST | MESH_FRAME_LAST,
                  .total = (uint32_t)n,
                  .payload = p,
                  .len = n};
  size_t len;
  assert_int_equal(mesh_frame_seal(tx, &f, out, cap, &len), 0);
  assert_int_equal(len, mesh_frame_wire_size(n));
  return len;
}

static void test_roundtrip_in_order(void **state)
{
  mesh_frame_dir tx, rx;
  pair(&tx, &rx);
  uint8_t out[256], msg[100];
  for (int i = 0; i < 5; i++) {
    memset(msg, 'a' + i, sizeof msg);
    size_t n = seal(&tx, MESH_FRAME_DATA, msg, (size_t)(10 * i), out, sizeof out);
    size_t flen;
    assert_int_equal(mesh_frame_peek(out, 3, 1 << 20, &flen), 0);
    assert_int_equal(flen, 0); /* not even a length yet */
    assert_int_equal(mesh_frame_peek(out, n, 1 << 20, &flen), 0);
    assert_int_equal(flen, n);
    mesh_frame f;
    assert_int_equal(mesh_frame_open(&rx, out, n, &f), 0);
    assert_int_equal(f.type, MESH_FRAME_DATA);
    assert_int_equal(f.channel, 1);
    assert_int_equal(f.len, (size_t)(10 * i));
    assert_memory_equal(f.payload, msg, f.len);
  }
  assert_int_equal(rx.counter, 5);
  assert_int_equal(tx.counter, 5);
}

/* The wire format is XChaCha20-Poly1305 as libsodium defines it: a frame
 * opens with the stock API and the documented nonce. */
static void test_is_xchacha20_poly1305(void **state)
{
  mesh_frame_dir tx, rx;
  pair(&tx, &rx);
  uint8_t out[256];
  const uint8_t msg[] = "interoperable";
  for (int i = 0; i < 3; i++) {
    size_t n = seal(&tx, MESH_FRAME_DATA, msg, sizeof msg, out, sizeof out);
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {0};
    memcpy(nonce, "meshd-fr", 8);
    memcpy(nonce + 16, out + 4, 8); /* the counter, big-endian */
    uint8_t pt[256];
    unsigned long long plen;
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
                         pt, &plen, NULL, out + MESH_FRAME_PREFIX, n - MESH_FRAME_PREFIX, out,
                         MESH_FRAME_PREFIX, nonce, rx.key),
                     0);
    assert_int_equal(plen, MESH_FRAME_INNER + sizeof msg);
    assert_memory_equal(pt + MESH_FRAME_INNER, msg, sizeof msg);
    assert_int_equal(out[11], i);
  }
}

/* OpenSSL's and libsodium's ChaCha20-Poly1305 make the same frames, and
 * each opens the other's: the fallback is the same wire. */
static void test_openssl_and_libsodium_agree(void **state)
{
  mesh_frame_dir tx, rx;
  pair(&tx, &rx);
  static uint8_t msg[20000], a[20100], b[20100];
  randombytes_buf(msg, sizeof msg);
  size_t sizes[] = {0, 1, 63, 64, 65, 1000, 16384, sizeof msg};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    mesh_frame_dir tx2 = tx;
    size_t na = seal(&tx, MESH_FRAME_DATA, msg, sizes[i], a, sizeof a);
    mesh_frame_test_portable(true);
    size_t nb = seal(&tx2, MESH_FRAME_DATA, msg, sizes[i], b, sizeof b);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    /* The libsodium path opens what OpenSSL sealed, and rejects a flip. */
    mesh_frame_dir rx2 = rx;
    mesh_frame f;
    b[na - 1] ^= 1;
    assert_int_equal(mesh_frame_open(&rx2, b, nb, &f), -MESH_EAUTH);
    assert_int_equal(rx2.counter, rx.counter);
    assert_int_equal(mesh_frame_open(&rx2, a, na, &f), 0);
    assert_int_equal(f.len, sizes[i]);
    assert_memory_equal(f.payload, msg, sizes[i]);
    mesh_frame_test_portable(false);
    rx = rx2;
  }
  /* And OpenSSL opens what libsodium sealed. */
  mesh_frame_test_portable(true);
  size_t n = seal(&tx, MESH_FRAME_DATA, msg, 777, a, sizeof a);
  mesh_frame_test_portable(false);
  mesh_frame f;
  assert_int_equal(mesh_frame_open(&rx, a, n, &f), 0);
  assert_memory_equal(f.payload, msg, 777);
}

/* An AES-256-GCM direction pair under a random key. */
static void pair_aes(mesh_frame_dir *tx, mesh_frame_dir *rx)
{
  pair(tx, rx);
  tx->cipher = MESH_FRAME_AES_256_GCM;
  rx->cipher = MESH_FRAME_AES_256_GCM;
}

/* Opens an AES-256-GCM frame with OpenSSL's stock API, the nonce built as
 * net/frame.h documents it (4 zero bytes || the header's counter). */
static int reference_aes_open(const uint8_t key[32], const uint8_t *wire, size_t n, uint8_t *pt)
{
  uint8_t nonce[12] = {0};
  memcpy(nonce + 4, wire + 4, 8);
  size_t clen = n - MESH_FRAME_PREFIX - MESH_FRAME_TAG;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int len, ok = ctx != NULL && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
                EVP_DecryptUpdate(ctx, NULL, &len, wire, MESH_FRAME_PREFIX) == 1 &&
                EVP_DecryptUpdate(ctx, pt, &len, wire + MESH_FRAME_PREFIX, (int)clen) == 1 &&
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, MESH_FRAME_TAG,
                                    (void *)(wire + MESH_FRAME_PREFIX + clen)) == 1 &&
                EVP_DecryptFinal_ex(ctx, pt + clen, &len) == 1;
  EVP_CIPHER_CTX_free(ctx);
  return ok ? 0 : -1;
}

/* AES-256-GCM frames are standard AES-GCM with the documented 96-bit nonce,
 * small (libsodium where it has AES) and large (OpenSSL) alike, and the
 * counter in the nonce goes up by one per frame. */
static void test_is_aes_256_gcm(void **state)
{
  mesh_frame_dir tx, rx;
  pair_aes(&tx, &rx);
  static uint8_t msg[70000], out[70100], pt[70100];
  randombytes_buf(msg, sizeof msg);
  size_t sizes[] = {0, 5, 700, 768, 4096, 65536, sizeof msg};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = seal(&tx, MESH_FRAME_DATA, msg, sizes[i], out, sizeof out);
    assert_int_equal(out[11], i); /* the counter */
    assert_int_equal(reference_aes_open(rx.key, out, n, pt), 0);
    assert_memory_equal(pt + MESH_FRAME_INNER, msg, sizes[i]);
    mesh_frame f;
    assert_int_equal(mesh_frame_open(&rx, out, n, &f), 0);
    assert_int_equal(f.len, sizes[i]);
    assert_memory_equal(f.payload, msg, sizes[i]);
  }
  assert_int_equal(tx.counter, 7);
  assert_int_equal(rx.counter, 7);
}

/* The same key under the two ciphers makes different frames, and neither
 * opens the other's: a direction's cipher is part of what it accepts. */
static void test_ciphers_do_not_cross(void **state)
{
  mesh_frame_dir ctx, crx, atx, arx;
  pair(&ctx, &crx);
  atx = ctx;
  atx.cipher = MESH_FRAME_AES_256_GCM;
  arx = atx;
  const uint8_t msg[] = "same key, same counter";
  uint8_t a[128], c[128], copy[128];
  size_t na = seal(&atx, MESH_FRAME_DATA, msg, sizeof msg, a, sizeof a);
  size_t nc = seal(&ctx, MESH_FRAME_DATA, msg, sizeof msg, c, sizeof c);
  assert_int_equal(na, nc);
  assert_memory_not_equal(a + MESH_FRAME_PREFIX, c + MESH_FRAME_PREFIX, na - MESH_FRAME_PREFIX);
  mesh_frame f;
  memcpy(copy, a, na);
  assert_int_equal(mesh_frame_open(&crx, copy, na, &f), -MESH_EAUTH);
  memcpy(copy, c, nc);
  assert_int_equal(mesh_frame_open(&arx, copy, nc, &f), -MESH_EAUTH);
  assert_int_equal(mesh_frame_open(&arx, a, na, &f), 0);
  assert_int_equal(mesh_frame_open(&crx, c, nc, &f), 0);
  /* An unknown cipher seals nothing and opens nothing. */
  mesh_frame_dir bad = ctx;
  bad.cipher = MESH_FRAME_CIPHER_COUNT;
  mesh_frame g = {.type = MESH_FRAME_DATA, .payload = msg, .len = sizeof msg};
  size_t len;
  assert_int_equal(mesh_frame_seal(&bad, &g, a, sizeof a, &len), -EIO);
  assert_int_equal(bad.counter, ctx.counter);
}

/* AES-256-GCM: both paths make the same bytes and each opens the other's;
 * replays, reorders and every flipped bit are refused as with ChaCha. */
static void test_aes_paths_and_tampering(void **state)
{
  mesh_frame_dir tx, rx;
  pair_aes(&tx, &rx);
  static uint8_t msg[20000], a[20100], b[20100], copy[20100];
  randombytes_buf(msg, sizeof msg);
  size_t sizes[] = {0, 1, 64, 767, 768, 16384, sizeof msg};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    mesh_frame_dir tx2 = tx;
    size_t na = seal(&tx, MESH_FRAME_DATA, msg, sizes[i], a, sizeof a);
    mesh_frame_test_portable(true);
    size_t nb = seal(&tx2, MESH_FRAME_DATA, msg, sizes[i], b, sizeof b);
    mesh_frame_test_portable(false);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    mesh_frame f;
    mesh_frame_dir rx2 = rx;
    mesh_frame_test_portable(true);
    memcpy(copy, a, na);
    copy[na / 2] ^= 0x40;
    assert_int_equal(mesh_frame_open(&rx2, copy, na, &f), -MESH_EAUTH);
    assert_int_equal(mesh_frame_open(&rx2, a, na, &f), 0);
    mesh_frame_test_portable(false);
    assert_int_equal(mesh_frame_open(&rx, b, nb, &f), 0);
    assert_int_equal(f.len, sizes[i]);
    assert_memory_equal(f.payload, msg, sizes[i]);
  }
  uint8_t x[128], y[128];
  size_t nx = seal(&tx, MESH_FRAME_DATA, msg, 40, x, sizeof x);
  size_t ny = seal(&tx, MESH_FRAME_DATA, msg, 40, y, sizeof y);
  mesh_frame f;
  memcpy(copy, y, ny);
  assert_int_equal(mesh_frame_open(&rx, copy, ny, &f), -EPROTO);
  memcpy(copy, x, nx);
  assert_int_equal(mesh_frame_open(&rx, copy, nx, &f), 0);
  memcpy(copy, x, nx);
  assert_int_equal(mesh_frame_open(&rx, copy, nx, &f), -ESTALE);
  uint64_t at = rx.counter;
  for (size_t bit = 0; bit < ny * 8; bit++) {
    memcpy(copy, y, ny);
    copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    int rc = mesh_frame_open(&rx, copy, ny, &f);
    assert_true(rc == -MESH_EAUTH || rc == -EBADMSG || rc == -ESTALE || rc == -EPROTO);
    assert_int_equal(rx.counter, at);
  }
  assert_int_equal(mesh_frame_open(&rx, y, ny, &f), 0);
}

/* A direction used by several threads in turn (the per-thread contexts
 * re-keyed between directions) keeps sealing frames the other end opens. */
static void test_aes_rekey_between_directions(void **state)
{
  mesh_frame_dir t1, r1, t2, r2;
  pair_aes(&t1, &r1);
  pair_aes(&t2, &r2);
  static uint8_t msg[5000], out[5100];
  randombytes_buf(msg, sizeof msg);
  for (int i = 0; i < 6; i++) {
    mesh_frame_dir *tx = (i & 1) ? &t2 : &t1, *rx = (i & 1) ? &r2 : &r1;
    size_t n = seal(tx, MESH_FRAME_DATA, msg, sizeof msg, out, sizeof out);
    mesh_frame f;
    assert_int_equal(mesh_frame_open(rx, out, n, &f), 0);
    assert_memory_equal(f.payload, msg, sizeof msg);
  }
}

/* The start-up self-test gives both ciphers a figure. */
static void test_speed_measures_both(void **state)
{
  mesh_frame_speed sp;
  assert_int_equal(mesh_frame_speed_measure(65536, 1 << 20, 1, &sp), 0);
  assert_true(sp.gbps[MESH_FRAME_AES_256_GCM] > 0);
  assert_true(sp.gbps[MESH_FRAME_CHACHA20_POLY1305] > 0);
  assert_int_equal(mesh_frame_speed_measure(0, 1 << 20, 1, &sp), -EINVAL);
}

static void test_replay_reorder_forgery(void **state)
{
  mesh_frame_dir tx, rx;
  pair(&tx, &rx);
  uint8_t a[128], b[128], copy[128];
  const uint8_t msg[] = "hello";
  size_t na = seal(&tx, MESH_FRAME_DATA, msg, 5, a, sizeof a);
  size_t nb = seal(&tx, MESH_FRAME_DATA, msg, 5, b, sizeof b);
  mesh_frame f;
  /* b before a: reordered. */
  memcpy(copy, b, nb);
  assert_int_equal(mesh_frame_open(&rx, copy, nb, &f), -EPROTO);
  memcpy(copy, a, na);
  assert_int_equal(mesh_frame_open(&rx, copy, na, &f), 0);
  /* a again: replayed. */
  memcpy(copy, a, na);
  assert_int_equal(mesh_frame_open(&rx, copy, na, &f), -ESTALE);
  /* Each bit of b flipped in turn: never accepted, counter unchanged. */
  for (size_t bit = 0; bit < nb * 8; bit++) {
    memcpy(copy, b, nb);
    copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    int rc = mesh_frame_open(&rx, copy, nb, &f);
    assert_true(rc == -MESH_EAUTH || rc == -EBADMSG || rc == -ESTALE || rc == -EPROTO);
    assert_int_equal(rx.counter, 1);
  }
  /* A counter rewritten to the expected one does not pass the tag. */
  mesh_frame_dir tx2 = tx;
  tx2.counter = 7;
  uint8_t c[128];
  size_t nc = seal(&tx2, MESH_FRAME_DATA, msg, 5, c, sizeof c);
  c[11] = 1; /* counter 7 -> 1 */
  assert_int_equal(mesh_frame_open(&rx, c, nc, &f), -MESH_EAUTH);
  memcpy(copy, b, nb);
  assert_int_equal(mesh_frame_open(&rx, copy, nb, &f), 0);
}

static void test_bounds(void **state)
{
  uint8_t h[4] = {0, 0x10, 0, 1}; /* L = 1 MiB + 1 */
  size_t flen;
  assert_int_equal(mesh_frame_peek(h, 4, 1 << 20, &flen), -EMSGSIZE);
  uint8_t small[4] = {0, 0, 0, 5};
  assert_int_equal(mesh_frame_peek(small, 4, 1 << 20, &flen), -EBADMSG);
  /* Truncated: a length that disagrees with the frame given. */
  mesh_frame_dir tx, rx;
  pair(&tx, &rx);
  uint8_t out[64];
  size_t n = seal(&tx, MESH_FRAME_KEEPALIVE, NULL, 0, out, sizeof out);
  mesh_frame f;
  assert_int_equal(mesh_frame_open(&rx, out, n - 1, &f), -EBADMSG);
  assert_int_equal(mesh_frame_open(&rx, out, 3, &f), -EBADMSG);
  /* Too small an output buffer. */
  mesh_frame g = {.type = MESH_FRAME_DATA, .len = 10, .payload = out};
  size_t len;
  assert_int_equal(mesh_frame_seal(&tx, &g, out, 20, &len), -ENOSPC);
}

static void test_bad_type_refused(void **state)
{
  mesh_frame_dir tx, rx;
  pair(&tx, &rx);
  uint8_t out[64];
  size_t n = seal(&tx, 9, NULL, 0, out, sizeof out);
  mesh_frame f;
  assert_int_equal(mesh_frame_open(&rx, out, n, &f), -EBADMSG);
}

static mesh_frame chunk(uint8_t cls, uint8_t flags, uint32_t total, const uint8_t *p, size_t n)
{
  return (mesh_frame){.type = MESH_FRAME_DATA,
                      .channel = 2,
                      .cls = cls,
                      .flags = flags,
                      .total = total,
                      .payload = p,
                      .len = n};
}

static void test_reassembly(void **state)
{
  mesh_frame_reasm r;
  mesh_frame_reasm_init(&r, 100);
  uint8_t data[100];
  for (int i = 0; i < 100; i++)
    data[i] = (uint8_t)i;
  mesh_frame_msg m;
  mesh_frame f = chunk(1, MESH_FRAME_FIRST, 100, data, 40);
  assert_int_equal(mesh_frame_reasm_add(&r, &f, &m), 0);
  /* A datagram in between is delivered whole at once. */
  f = chunk(0, MESH_FRAME_FIRST | MESH_FRAME_LAST, 3, data, 3);
  assert_int_equal(mesh_frame_reasm_add(&r, &f, &m), 1);
  assert_int_equal(m.cls, 0);
  assert_int_equal(m.len, 3);
  f = chunk(1, 0, 0, data + 40, 40);
  assert_int_equal(mesh_frame_reasm_add(&r, &f, &m), 0);
  f = chunk(1, MESH_FRAME_LAST, 0, data + 80, 20);
  assert_int_equal(mesh_frame_reasm_add(&r, &f, &m), 1);
  assert_int_equal(m.cls, 1);
  assert_int_equal(m.channel, 2);
  assert_int_equal(m.len, 100);
  assert_memory_equal(m.data, data, 100);
  /* Refusals: too big, a middle chunk with no start, a new start inside a
   * message, more than announced, a short last chunk. */
  f = chunk(1, MESH_FRAME_FIRST, 101, data, 10);
  assert_int_equal(mesh_frame_reasm_add(&r, &f, &m), -EMSGSIZE);
  f = chunk(1, 0, 0, data, 10);
  assert_int_equal(mesh_frame_reasm_add(&r, &f, &m), -EBADMSG);
  f = chunk(1, MESH_FRAME_FIRST, 50, data, 10);
  assert_int_equal(mesh_frame_reasm_add(&r, &f, &m), 0);
  assert_int_equal(mesh_frame_reasm_add(&r, &f, &m), -EBADMSG);
  f = chunk(1, 0, 0, data, 41);
  assert_int_equal(mesh_frame_reasm_add(&r, &f, &m), -EBADMSG);
  f = chunk(1, MESH_FRAME_LAST, 0, data, 39);
  assert_int_equal(mesh_frame_reasm_add(&r, &f, &m), -EBADMSG);
  mesh_frame_reasm_free(&r);
  f = chunk(0, MESH_FRAME_FIRST, 3, data, 3);
  assert_int_equal(mesh_frame_reasm_add(&r, &f, &m), -EBADMSG);
  f = chunk(1, MESH_FRAME_FIRST | MESH_FRAME_LAST, 4, data, 3);
  assert_int_equal(mesh_frame_reasm_add(&r, &f, &m), -EBADMSG);
  mesh_frame_reasm_free(&r);
}

/* A head sealed ahead of the payload gives the very frame the joined bytes
 * give (the wire is the same: the receiver cannot tell), on both ciphers,
 * on the small-frame and the large-frame paths, also with the payload
 * already in place in the output; and it counts against the room. */
static void test_head_seals_as_joined(void **state)
{
  (void)state;
  static uint8_t joined[70000], a[70100], b[70100];
  randombytes_buf(joined, sizeof joined);
  const size_t sizes[] = {1, 100, 4096, 65536};
  for (int c = 0; c < MESH_FRAME_CIPHER_COUNT; c++) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = sizes[i], hl = 12;
      mesh_frame_dir t1, t2, rx;
      pair(&t1, &rx);
      t1.cipher = rx.cipher = (uint8_t)c;
      t1.counter = rx.counter = 7;
      t2 = t1;
      mesh_frame whole = {.type = MESH_FRAME_DATA,
                          .channel = 3,
                          .cls = 1,
                          .flags = MESH_FRAME_FIRST | MESH_FRAME_LAST,
                          .total = (uint32_t)(hl + n),
                          .payload = joined,
                          .len = hl + n};
      size_t la, lb;
      assert_int_equal(mesh_frame_seal(&t1, &whole, a, sizeof a, &la), 0);
      mesh_frame split = whole;
      split.head = joined;
      split.head_len = hl;
      split.len = n;
      /* The payload already where the seal puts it. */
      uint8_t *in_place = b + MESH_FRAME_PREFIX + MESH_FRAME_INNER + hl;
      memcpy(in_place, joined + hl, n);
      split.payload = in_place;
      assert_int_equal(mesh_frame_seal(&t2, &split, b, sizeof b, &lb), 0);
      assert_int_equal(la, mesh_frame_wire_size(hl + n));
      assert_int_equal(lb, la);
      assert_memory_equal(a, b, la);
      mesh_frame f;
      assert_int_equal(mesh_frame_open(&rx, b, lb, &f), 0);
      assert_int_equal(f.len, hl + n);
      assert_memory_equal(f.payload, joined, hl + n);
      assert_null(f.head);
      assert_int_equal(f.head_len, 0);
      /* One byte short of room for head and payload. */
      split.payload = joined + hl;
      assert_int_equal(mesh_frame_seal(&t2, &split, b, la - 1, &lb), -ENOSPC);
    }
  }
}

int main(void)
{
  if (sodium_init() < 0)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_in_order),
      cmocka_unit_test(test_is_xchacha20_poly1305),
      cmocka_unit_test(test_openssl_and_libsodium_agree),
      cmocka_unit_test(test_replay_reorder_forgery),
      cmocka_unit_test(test_is_aes_256_gcm),
      cmocka_unit_test(test_ciphers_do_not_cross),
      cmocka_unit_test(test_aes_paths_and_tampering),
      cmocka_unit_test(test_aes_rekey_between_directions),
      cmocka_unit_test(test_speed_measures_both),
      cmocka_unit_test(test_bounds),
      cmocka_unit_test(test_bad_type_refused),
      cmocka_unit_test(test_reassembly),
      cmocka_unit_test(test_head_seals_as_joined),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
