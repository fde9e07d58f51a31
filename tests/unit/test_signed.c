/*
 * Signed records: the signed bytes are libp2p's (length-prefixed domain,
 * type and payload), any change to the signature, payload, type or domain
 * fails verification, and envelopes round-trip, bound their fields and
 * refuse a signature made by another key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "proto/envelope.pb-c.h"
#include "src/base/err.h"
#include "src/identity/signed.h"

static const uint8_t type[] = {0x03, 0x01};
static const uint8_t payload[] = "alive: epoch 7, incarnation 3";

static void make_identity(uint8_t fill, mesh_identity *id)
{
  uint8_t seed[MESH_SEED_LEN];
  memset(seed, fill, sizeof seed);
  assert_int_equal(mesh_identity_from_seed(seed, id), 0);
}

static void test_sign_verify(void **state)
{
  (void)state;
  mesh_identity a;
  make_identity(1, &a);
  uint8_t sig[MESH_SIG_LEN];
  assert_int_equal(
      mesh_sign(&a, MESH_DOMAIN_MEMBER, type, sizeof type, payload, sizeof payload, sig), 0);
  assert_int_equal(
      mesh_verify(a.pk, MESH_DOMAIN_MEMBER, type, sizeof type, payload, sizeof payload, sig), 0);

  /* The signature covers exactly libp2p's signed-envelope bytes. */
  size_t dl = strlen(MESH_DOMAIN_MEMBER);
  uint8_t m[256];
  size_t n = 0;
  m[n++] = (uint8_t)dl;
  memcpy(m + n, MESH_DOMAIN_MEMBER, dl);
  n += dl;
  m[n++] = sizeof type;
  memcpy(m + n, type, sizeof type);
  n += sizeof type;
  m[n++] = sizeof payload;
  memcpy(m + n, payload, sizeof payload);
  n += sizeof payload;
  assert_int_equal(crypto_sign_verify_detached(sig, m, n, a.pk), 0);
}

static void test_tamper_every_byte(void **state)
{
  (void)state;
  mesh_identity a;
  make_identity(2, &a);
  uint8_t sig[MESH_SIG_LEN];
  uint8_t p[sizeof payload], t[sizeof type];
  memcpy(p, payload, sizeof p);
  memcpy(t, type, sizeof t);
  assert_int_equal(mesh_sign(&a, MESH_DOMAIN_DOWNLOADS, t, sizeof t, p, sizeof p, sig), 0);

  /* Each byte of each part, changed in one bit, the top bit or all bits. */
  static const uint8_t flips[] = {0x01, 0x80, 0xff};
  struct {
    uint8_t *bytes;
    size_t len;
  } parts[] = {{sig, sizeof sig}, {p, sizeof p}, {t, sizeof t}};
  int failures = 0, tries = 0;
  for (size_t f = 0; f < sizeof flips; f++) {
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
      for (size_t i = 0; i < parts[k].len; i++) {
        parts[k].bytes[i] ^= flips[f];
        tries++;
        failures +=
            mesh_verify(a.pk, MESH_DOMAIN_DOWNLOADS, t, sizeof t, p, sizeof p, sig) == -MESH_EAUTH;
        parts[k].bytes[i] ^= flips[f];
      }
    }
  }
  assert_int_equal(tries, 3 * (MESH_SIG_LEN + sizeof payload + sizeof type));
  assert_int_equal(failures, tries);
  /* Shorter payload or type. */
  assert_int_equal(mesh_verify(a.pk, MESH_DOMAIN_DOWNLOADS, t, sizeof t, p, sizeof p - 1, sig),
                   -MESH_EAUTH);
  assert_int_equal(mesh_verify(a.pk, MESH_DOMAIN_DOWNLOADS, t, 1, p, sizeof p, sig), -MESH_EAUTH);
  /* Untouched, it still verifies. */
  assert_int_equal(mesh_verify(a.pk, MESH_DOMAIN_DOWNLOADS, t, sizeof t, p, sizeof p, sig), 0);
}

static void test_wrong_domain_or_key(void **state)
{
  (void)state;
  mesh_identity a, b;
  make_identity(3, &a);
  make_identity(4, &b);
  uint8_t sig[MESH_SIG_LEN];
  assert_int_equal(
      mesh_sign(&a, MESH_DOMAIN_ACCUSE, type, sizeof type, payload, sizeof payload, sig), 0);
  const char *others[] = {MESH_DOMAIN_HANDSHAKE,
                          MESH_DOMAIN_MEMBER,
                          MESH_DOMAIN_DOWNLOADS,
                          MESH_DOMAIN_COMMAND,
                          "meshd-accus",
                          "meshd-accusee",
                          ""};
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
    assert_int_equal(mesh_verify(a.pk, others[i], type, sizeof type, payload, sizeof payload, sig),
                     -MESH_EAUTH);
  assert_int_equal(
      mesh_verify(b.pk, MESH_DOMAIN_ACCUSE, type, sizeof type, payload, sizeof payload, sig),
      -MESH_EAUTH);

  /* Length prefixes keep boundaries apart: ("ab", "c") is not ("a", "bc"). */
  uint8_t s2[MESH_SIG_LEN];
  assert_int_equal(mesh_sign(&a, "ab", (const uint8_t *)"c", 1, (const uint8_t *)"d", 1, s2), 0);
  assert_int_equal(mesh_verify(a.pk, "a", (const uint8_t *)"bc", 2, (const uint8_t *)"d", 1, s2),
                   -MESH_EAUTH);
  assert_int_equal(mesh_verify(a.pk, "ab", (const uint8_t *)"", 0, (const uint8_t *)"cd", 2, s2),
                   -MESH_EAUTH);
  assert_int_equal(mesh_verify(a.pk, "ab", (const uint8_t *)"c", 1, (const uint8_t *)"d", 1, s2),
                   0);
}

static void test_envelope_round_trip(void **state)
{
  (void)state;
  mesh_identity a;
  make_identity(5, &a);
  uint8_t *buf = NULL;
  size_t len = 0;
  assert_int_equal(mesh_envelope_seal(&a, MESH_DOMAIN_MEMBER, type, sizeof type, payload,
                                      sizeof payload, &buf, &len),
                   0);
  mesh_envelope env;
  assert_int_equal(mesh_envelope_open(MESH_DOMAIN_MEMBER, buf, len, &env), 0);
  assert_true(mesh_peer_id_eq(&env.signer, &a.id));
  assert_int_equal(env.type_len, sizeof type);
  assert_memory_equal(env.type, type, sizeof type);
  assert_int_equal(env.payload_len, sizeof payload);
  assert_memory_equal(env.payload, payload, sizeof payload);
  /* Both point into the buffer, as the header promises. */
  assert_true(env.type >= buf && env.type + env.type_len <= buf + len);
  assert_true(env.payload >= buf && env.payload + env.payload_len <= buf + len);

  assert_int_equal(mesh_envelope_open(MESH_DOMAIN_COMMAND, buf, len, &env), -MESH_EAUTH);

  /* Every single-byte change is refused, one way or the other. */
  for (size_t i = 0; i < len; i++) {
    for (unsigned flip = 1; flip < 256; flip <<= 1) {
      buf[i] ^= (uint8_t)flip;
      int rc = mesh_envelope_open(MESH_DOMAIN_MEMBER, buf, len, &env);
      if (rc != -EBADMSG && rc != -MESH_EAUTH)
        fail_msg("byte %zu ^ 0x%02x opened with %d", i, flip, rc);
      buf[i] ^= (uint8_t)flip;
    }
  }
  /* Every truncation too. */
  for (size_t n = 0; n < len; n++)
    assert_true(mesh_envelope_open(MESH_DOMAIN_MEMBER, buf, n, &env) < 0);
  assert_int_equal(mesh_envelope_open(MESH_DOMAIN_MEMBER, buf, len, &env), 0);
  free(buf);

  /* Empty type and payload. */
  assert_int_equal(mesh_envelope_seal(&a, MESH_DOMAIN_MEMBER, NULL, 0, NULL, 0, &buf, &len), 0);
  assert_int_equal(mesh_envelope_open(MESH_DOMAIN_MEMBER, buf, len, &env), 0);
  assert_int_equal(env.type_len, 0);
  assert_int_equal(env.payload_len, 0);
  free(buf);
}

/* The public key edit_swap_key puts into an envelope (owned by the test). */
static Mesh__Crypto__PublicKey *swap_key;

/* Re-packs an envelope after edit() changed the decoded message. */
static uint8_t *repack(const uint8_t *buf, size_t len, size_t *out_len,
                       void (*edit)(Mesh__Envelope__Envelope *, void *), void *arg)
{
  Mesh__Envelope__Envelope *e = mesh__envelope__envelope__unpack(NULL, len, buf);
  assert_non_null(e);
  edit(e, arg);
  uint8_t *out = malloc(mesh__envelope__envelope__get_packed_size(e) + 1);
  *out_len = mesh__envelope__envelope__pack(e, out);
  if (e->public_key == swap_key)
    e->public_key = NULL; /* the test's own message, not the decoder's */
  mesh__envelope__envelope__free_unpacked(e, NULL);
  return out;
}

static void edit_swap_key(Mesh__Envelope__Envelope *e, void *arg)
{
  (void)arg;
  mesh__crypto__public_key__free_unpacked(e->public_key, NULL);
  e->public_key = swap_key;
}

static void test_envelope_other_key(void **state)
{
  (void)state;
  mesh_identity a, b;
  make_identity(6, &a);
  make_identity(7, &b);
  uint8_t *buf;
  size_t len;
  assert_int_equal(mesh_envelope_seal(&a, MESH_DOMAIN_DOWNLOADS, type, sizeof type, payload,
                                      sizeof payload, &buf, &len),
                   0);
  /* a's signature presented under b's public key: b did not say this. */
  Mesh__Crypto__PublicKey pk = MESH__CRYPTO__PUBLIC_KEY__INIT;
  pk.type = MESH__CRYPTO__KEY_TYPE__Ed25519;
  pk.data.len = MESH_PUBKEY_LEN;
  pk.data.data = b.pk;
  swap_key = &pk;
  size_t n;
  uint8_t *forged = repack(buf, len, &n, edit_swap_key, NULL);
  mesh_envelope env;
  assert_int_equal(mesh_envelope_open(MESH_DOMAIN_DOWNLOADS, forged, n, &env), -MESH_EAUTH);
  free(forged);

  /* Wrong key type or size. */
  pk.data.data = a.pk;
  pk.type = MESH__CRYPTO__KEY_TYPE__Secp256k1;
  forged = repack(buf, len, &n, edit_swap_key, NULL);
  assert_int_equal(mesh_envelope_open(MESH_DOMAIN_DOWNLOADS, forged, n, &env), -EBADMSG);
  free(forged);
  pk.type = MESH__CRYPTO__KEY_TYPE__Ed25519;
  pk.data.len = MESH_PUBKEY_LEN - 1;
  forged = repack(buf, len, &n, edit_swap_key, NULL);
  assert_int_equal(mesh_envelope_open(MESH_DOMAIN_DOWNLOADS, forged, n, &env), -EBADMSG);
  free(forged);
  swap_key = NULL;
  forged = repack(buf, len, &n, edit_swap_key, NULL);
  assert_int_equal(mesh_envelope_open(MESH_DOMAIN_DOWNLOADS, forged, n, &env), -EBADMSG);
  free(forged);
  free(buf);
}

static void edit_short_sig(Mesh__Envelope__Envelope *e, void *arg)
{
  (void)arg;
  e->signature.len = MESH_SIG_LEN - 1;
}

static void test_envelope_bounds(void **state)
{
  (void)state;
  mesh_identity a;
  make_identity(8, &a);
  uint8_t *buf = NULL;
  size_t len;
  uint8_t t[MESH_ENVELOPE_MAX_TYPE + 1];
  memset(t, 't', sizeof t);
  assert_int_equal(
      mesh_envelope_seal(&a, MESH_DOMAIN_COMMAND, t, sizeof t, payload, sizeof payload, &buf, &len),
      -EMSGSIZE);

  /* The largest payload passes; one byte more is refused on both sides. */
  uint8_t *big = calloc(1, MESH_ENVELOPE_MAX_PAYLOAD + 1);
  assert_non_null(big);
  assert_int_equal(mesh_envelope_seal(&a, MESH_DOMAIN_COMMAND, t, MESH_ENVELOPE_MAX_TYPE, big,
                                      MESH_ENVELOPE_MAX_PAYLOAD, &buf, &len),
                   0);
  mesh_envelope env;
  assert_int_equal(mesh_envelope_open(MESH_DOMAIN_COMMAND, buf, len, &env), 0);
  assert_int_equal(env.payload_len, MESH_ENVELOPE_MAX_PAYLOAD);
  assert_int_equal(env.type_len, MESH_ENVELOPE_MAX_TYPE);
  free(buf);
  assert_int_equal(mesh_envelope_seal(&a, MESH_DOMAIN_COMMAND, t, 1, big,
                                      MESH_ENVELOPE_MAX_PAYLOAD + 1, &buf, &len),
                   -EMSGSIZE);

  /* A hand-made envelope over the bounds is refused before it is verified. */
  Mesh__Crypto__PublicKey pk = MESH__CRYPTO__PUBLIC_KEY__INIT;
  pk.type = MESH__CRYPTO__KEY_TYPE__Ed25519;
  pk.data.len = MESH_PUBKEY_LEN;
  pk.data.data = a.pk;
  uint8_t sig[MESH_SIG_LEN] = {0};
  Mesh__Envelope__Envelope e = MESH__ENVELOPE__ENVELOPE__INIT;
  e.public_key = &pk;
  e.payload_type.len = sizeof t;
  e.payload_type.data = t;
  e.signature.len = sizeof sig;
  e.signature.data = sig;
  uint8_t out[512];
  size_t n = mesh__envelope__envelope__pack(&e, out);
  assert_int_equal(mesh_envelope_open(MESH_DOMAIN_COMMAND, out, n, &env), -EBADMSG);

  e.payload_type.len = 1;
  e.payload.len = MESH_ENVELOPE_MAX_PAYLOAD + 1;
  e.payload.data = big;
  uint8_t *huge = malloc(mesh__envelope__envelope__get_packed_size(&e));
  n = mesh__envelope__envelope__pack(&e, huge);
  assert_int_equal(mesh_envelope_open(MESH_DOMAIN_COMMAND, huge, n, &env), -EBADMSG);
  free(huge);
  free(big);

  /* Signatures of the wrong length. */
  assert_int_equal(mesh_envelope_seal(&a, MESH_DOMAIN_COMMAND, type, sizeof type, payload,
                                      sizeof payload, &buf, &len),
                   0);
  uint8_t *bad = repack(buf, len, &n, edit_short_sig, NULL);
  assert_int_equal(mesh_envelope_open(MESH_DOMAIN_COMMAND, bad, n, &env), -EBADMSG);
  free(bad);
  free(buf);

  /* Garbage and nothing. */
  const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  assert_int_equal(mesh_envelope_open(MESH_DOMAIN_COMMAND, junk, sizeof junk, &env), -EBADMSG);
  assert_int_equal(mesh_envelope_open(MESH_DOMAIN_COMMAND, junk, 0, &env), -EBADMSG);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sign_verify),         cmocka_unit_test(test_tamper_every_byte),
      cmocka_unit_test(test_wrong_domain_or_key), cmocka_unit_test(test_envelope_round_trip),
      cmocka_unit_test(test_envelope_other_key),  cmocka_unit_test(test_envelope_bounds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
