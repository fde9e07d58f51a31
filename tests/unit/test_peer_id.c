/*
 * Peer IDs both ways: the libp2p peer-ID spec's vectors, round trips through
 * both text forms, and refusal of everything that is not an Ed25519 peer ID.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/crypto.pb-c.h"
#include "src/base/err.h"
#include "src/base/rng.h"
#include "src/identity/identity.h"
#include "src/identity/multiformats.h"
#include "support_identity.h"

/* The peer-ID spec's Ed25519 vector: a PrivateKey protobuf and its ID. */
static const char spec_key_hex[] =
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8"
    "be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";
static const char spec_peer_id[] = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq";
/* The spec's PublicKey protobuf for the same key. */
static const char spec_pubkey_proto_hex[] =
    "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";

/* The spec's example Ed25519 peer ID, and its CIDv1 form as other libp2p
 * implementations print it. */
static const char ex_peer_id[] = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
static const char ex_cid[] = "bafzaajaiaejcal72gwuz2or47oyxxn6b3rkwdmmkrxgkjxzy3rqt5kczyn7lcm3l";

/* The spec's sha256 (RSA-style) peer ID in both forms: valid text, but not
 * an Ed25519 identity, so meshd refuses it. */
static const char sha_peer_id[] = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";
static const char sha_cid[] = "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe";

/* The spec's Secp256k1 PublicKey protobuf (33-byte compressed key). */
static const char secp_pubkey_proto_hex[] =
    "08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99";

static void test_spec_vector(void **state)
{
  (void)state;
  uint8_t key[128];
  size_t n = ident_test_hex(spec_key_hex, key, sizeof key);
  mesh_identity id;
  assert_int_equal(mesh_identity_decode(key, n, &id), 0);

  char text[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(&id.id, text, sizeof text);
  assert_string_equal(text, spec_peer_id);

  /* The peer ID embeds exactly the spec's PublicKey protobuf. */
  uint8_t proto[64];
  size_t pn = ident_test_hex(spec_pubkey_proto_hex, proto, sizeof proto);
  assert_int_equal(id.id.b[0], 0x00);
  assert_int_equal(id.id.b[1], pn);
  assert_memory_equal(id.id.b + 2, proto, pn);

  mesh_peer_id parsed;
  assert_int_equal(mesh_peer_id_parse(spec_peer_id, &parsed), 0);
  assert_true(mesh_peer_id_eq(&parsed, &id.id));
  uint8_t pk[MESH_PUBKEY_LEN];
  mesh_peer_id_pubkey(&parsed, pk);
  assert_memory_equal(pk, id.pk, MESH_PUBKEY_LEN);

  /* Encoding the identity gives back the spec's bytes. */
  uint8_t enc[128];
  size_t en = 0;
  assert_int_equal(mesh_identity_encode(&id, enc, sizeof enc, &en), 0);
  assert_int_equal(en, n);
  assert_memory_equal(enc, key, n);
}

/* The fixed head of a peer ID must be what protoc-c's generated code makes
 * of PublicKey{Ed25519, pk}: the schema, not a constant, is the authority. */
static void test_head_matches_schema(void **state)
{
  (void)state;
  mesh_rng rng;
  mesh_rng_seed(&rng, 7);
  for (int i = 0; i < 16; i++) {
    uint8_t pk[MESH_PUBKEY_LEN];
    for (size_t j = 0; j < sizeof pk; j++)
      pk[j] = (uint8_t)mesh_rng_next(&rng);
    Mesh__Crypto__PublicKey msg = MESH__CRYPTO__PUBLIC_KEY__INIT;
    msg.type = MESH__CRYPTO__KEY_TYPE__Ed25519;
    msg.data.len = sizeof pk;
    msg.data.data = pk;
    uint8_t packed[64];
    size_t len = mesh__crypto__public_key__pack(&msg, packed);
    assert_int_equal(len, 36);
    mesh_peer_id id;
    mesh_peer_id_from_pubkey(pk, &id);
    assert_int_equal(id.b[0], MESH_MULTIHASH_IDENTITY);
    assert_int_equal(id.b[1], 36);
    assert_memory_equal(id.b + 2, packed, len);
  }
}

/* go-libp2p's walkthrough vector: the all-zero seed marshals to this. */
static void test_zero_seed_vector(void **state)
{
  (void)state;
  uint8_t want[128];
  size_t wn =
      ident_test_hex("0801124000000000000000000000000000000000000000000000000000000000000000003b"
                     "6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29",
                     want, sizeof want);
  uint8_t seed[MESH_SEED_LEN] = {0};
  mesh_identity id;
  assert_int_equal(mesh_identity_from_seed(seed, &id), 0);
  uint8_t enc[128];
  size_t en;
  assert_int_equal(mesh_identity_encode(&id, enc, sizeof enc, &en), 0);
  assert_int_equal(en, wn);
  assert_memory_equal(enc, want, wn);
}

static void test_cid_vector(void **state)
{
  (void)state;
  mesh_peer_id a, b;
  assert_int_equal(mesh_peer_id_parse(ex_peer_id, &a), 0);
  assert_int_equal(mesh_peer_id_parse(ex_cid, &b), 0);
  assert_true(mesh_peer_id_eq(&a, &b));
  assert_int_equal(mesh_peer_id_cmp(&a, &b), 0);

  char text[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_cid(&a, text, sizeof text);
  assert_string_equal(text, ex_cid);
  mesh_peer_id_to_text(&b, text, sizeof text);
  assert_string_equal(text, ex_peer_id);

  char s[MESH_PEER_ID_SHORT_MAX];
  mesh_peer_id_short(&a, s, sizeof s);
  assert_string_equal(s, "eQAJU5SA");
}

/* Ed25519 peer IDs published by other libp2p implementations in both text
 * forms, with the public key they carry. */
static const struct {
  const char *base58;
  const char *cid;
  const char *pk_hex;
} published[] = {
    /* The peer-ID spec's example; its CID as dotnet-libp2p prints it; its key
     * as a protocol spec's conformance fixture gives it. */
    {"12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
     "bafzaajaiaejcal72gwuz2or47oyxxn6b3rkwdmmkrxgkjxzy3rqt5kczyn7lcm3l",
     "2ffa35a99d3a3cfbb17bb7c1dc5561b18a8dcca4df38dc613ea859c37eb1336b"},
    /* The example of the libp2p forum's "determine the key type" thread; its
     * CID and base16 CID from an IPNS gateway's multibase tests. */
    {"12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK",
     "bafzaajaiaejcbzdibmxyzdjbbehgvizh6g5tikvy47mshdy6gwbruvgwvd24seje",
     "e4680b2f8c8d21090e6aa327f1bb342ab8e7d9238f1e35831a54d6a8f5c91124"},
    /* Both /p2p/ forms in the multiaddr implementations' test lists. */
    {"12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV",
     "bafzaajaiaejcalj543iwv2d7pkjt7ykvefrkfu7qjfi6sduakhso4lay6abn2d5u", NULL},
};

static void test_published_pairs(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof published / sizeof published[0]; i++) {
    mesh_peer_id a, b;
    assert_int_equal(mesh_peer_id_parse(published[i].base58, &a), 0);
    assert_int_equal(mesh_peer_id_parse(published[i].cid, &b), 0);
    assert_true(mesh_peer_id_eq(&a, &b));
    char text[MESH_PEER_ID_TEXT_MAX];
    mesh_peer_id_to_cid(&a, text, sizeof text);
    assert_string_equal(text, published[i].cid);
    mesh_peer_id_to_text(&b, text, sizeof text);
    assert_string_equal(text, published[i].base58);
    if (published[i].pk_hex != NULL) {
      uint8_t want[MESH_PUBKEY_LEN], got[MESH_PUBKEY_LEN];
      assert_int_equal(ident_test_hex(published[i].pk_hex, want, sizeof want), MESH_PUBKEY_LEN);
      mesh_peer_id_pubkey(&a, got);
      assert_memory_equal(got, want, MESH_PUBKEY_LEN);
      mesh_peer_id fromkey;
      mesh_peer_id_from_pubkey(want, &fromkey);
      assert_true(mesh_peer_id_eq(&fromkey, &a));
    }
  }
}

static void test_round_trips(void **state)
{
  (void)state;
  mesh_rng rng;
  mesh_rng_seed(&rng, 42);
  for (int i = 0; i < 500; i++) {
    uint8_t seed[MESH_SEED_LEN];
    for (size_t j = 0; j < sizeof seed; j++)
      seed[j] = (uint8_t)mesh_rng_next(&rng);
    mesh_identity id;
    assert_int_equal(mesh_identity_from_seed(seed, &id), 0);

    char text[MESH_PEER_ID_TEXT_MAX], cid[MESH_PEER_ID_TEXT_MAX], s[MESH_PEER_ID_SHORT_MAX];
    mesh_peer_id_to_text(&id.id, text, sizeof text);
    mesh_peer_id_to_cid(&id.id, cid, sizeof cid);
    mesh_peer_id_short(&id.id, s, sizeof s);
    assert_int_equal(strncmp(text, "12D3KooW", 8), 0);
    assert_int_equal(strncmp(cid, "bafzaajaiaejc", 13), 0);
    assert_int_equal(strlen(text), 52);
    assert_int_equal(strlen(cid), 65);
    assert_string_equal(s, text + strlen(text) - 8);

    mesh_peer_id a, b, c;
    assert_int_equal(mesh_peer_id_parse(text, &a), 0);
    assert_int_equal(mesh_peer_id_parse(cid, &b), 0);
    assert_int_equal(mesh_peer_id_from_bytes(id.id.b, MESH_PEER_ID_LEN, &c), 0);
    assert_true(mesh_peer_id_eq(&a, &id.id));
    assert_true(mesh_peer_id_eq(&b, &id.id));
    assert_true(mesh_peer_id_eq(&c, &id.id));
  }
}

static void test_generate_distinct(void **state)
{
  (void)state;
  mesh_identity a, b;
  assert_int_equal(mesh_identity_generate(&a), 0);
  assert_int_equal(mesh_identity_generate(&b), 0);
  assert_false(mesh_peer_id_eq(&a.id, &b.id));
  assert_true(mesh_peer_id_cmp(&a.id, &b.id) != 0);
  /* The order is antisymmetric, so sorted tables of peers are stable. */
  assert_true((mesh_peer_id_cmp(&a.id, &b.id) < 0) == (mesh_peer_id_cmp(&b.id, &a.id) > 0));
}

/* Parses text expecting -EBADMSG with a reason that contains want. */
static void expect_reject(const char *text, const char *want)
{
  mesh_peer_id id;
  memset(&id, 0xAB, sizeof id);
  char err[256] = "";
  int rc = mesh_peer_id_parse_err(text, &id, err, sizeof err);
  if (rc != -EBADMSG)
    fail_msg("'%s' parsed with %d, expected -EBADMSG", text ? text : "(null)", rc);
  assert_int_equal(mesh_peer_id_parse(text, &id), -EBADMSG);
  if (want != NULL && strstr(err, want) == NULL)
    fail_msg("'%s': reason '%s' does not say '%s'", text ? text : "(null)", err, want);
}

/* base58 text of arbitrary multihash bytes. */
static void b58_of(const char *hex, char *out, size_t cap)
{
  uint8_t b[128];
  size_t n = ident_test_hex(hex, b, sizeof b);
  assert_int_equal(mesh_base58_encode(b, n, out, cap), 0);
}

static void test_rejects(void **state)
{
  (void)state;
  expect_reject(NULL, "empty");
  expect_reject("", "empty");
  expect_reject("1", "multihash"); /* one zero byte */
  expect_reject("Qm", NULL);
  expect_reject("12D3KooW", NULL); /* valid base58, too short for a multihash */

  /* Wrong multihash: sha256 peer IDs in both forms. */
  expect_reject(sha_peer_id, "sha2-256");
  expect_reject(sha_cid, "sha2-256");

  /* Wrong key type inside an identity multihash: the spec's Secp256k1 key. */
  char text[256];
  char hex[256];
  snprintf(hex, sizeof hex, "0025%s", secp_pubkey_proto_hex);
  b58_of(hex, text, sizeof text);
  assert_int_equal(text[0], '1');
  expect_reject(text, "not an Ed25519 public key");

  /* Wrong length: one character more or fewer. */
  char s[128];
  snprintf(s, sizeof s, "%s2", spec_peer_id);
  expect_reject(s, NULL);
  snprintf(s, sizeof s, "%.*s", (int)strlen(spec_peer_id) - 1, spec_peer_id);
  expect_reject(s, NULL);
  /* Identity multihash of 35 and 37 bytes of an Ed25519-looking protobuf. */
  b58_of("0023080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce2", text,
         sizeof text);
  expect_reject(text, NULL);
  b58_of("0025080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e00", text,
         sizeof text);
  expect_reject(text, NULL);
  /* Right length, declared length wrong. */
  b58_of("0023080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e", text,
         sizeof text);
  expect_reject(text, NULL);

  /* Bad characters anywhere in the text. */
  const char badc[] = {'0', 'O', 'I', 'l', ' ', '\n', '/', '+', '-'};
  for (size_t pos = 0; pos < strlen(spec_peer_id); pos += 7) {
    for (size_t k = 0; k < sizeof badc; k++) {
      snprintf(s, sizeof s, "%s", spec_peer_id);
      s[pos] = badc[k];
      expect_reject(s, NULL);
    }
  }
  snprintf(s, sizeof s, " %s", spec_peer_id);
  expect_reject(s, "not a peer ID");
  snprintf(s, sizeof s, "%s\n", spec_peer_id);
  expect_reject(s, NULL);

  /* A valid ID with one character changed is a different, still valid key or
   * garbage; it must never parse to the original. */
  for (size_t pos = 8; pos < strlen(spec_peer_id); pos++) {
    snprintf(s, sizeof s, "%s", spec_peer_id);
    s[pos] = s[pos] == 'z' ? 'y' : 'z';
    mesh_peer_id id, orig;
    assert_int_equal(mesh_peer_id_parse(spec_peer_id, &orig), 0);
    if (mesh_peer_id_parse(s, &id) == 0)
      assert_false(mesh_peer_id_eq(&id, &orig));
  }

  /* CID forms: wrong codec (dag-pb), uppercase multibase, other multibase,
   * base32 damage, too long. */
  mesh_peer_id ex;
  assert_int_equal(mesh_peer_id_parse(ex_peer_id, &ex), 0);
  assert_int_equal(mesh_cid_format(0x70, ex.b, MESH_PEER_ID_LEN, text, sizeof text), 0);
  expect_reject(text, "codec");
  for (size_t i = 0; ex_cid[i] != '\0'; i++)
    s[i] = (char)(ex_cid[i] >= 'a' && ex_cid[i] <= 'z' ? ex_cid[i] - 32 : ex_cid[i]);
  s[strlen(ex_cid)] = '\0';
  expect_reject(s, "not a peer ID");
  snprintf(s, sizeof s, "z%s", ex_peer_id);
  expect_reject(s, "not a peer ID");
  snprintf(s, sizeof s, "%s", ex_cid);
  s[20] = '1';
  expect_reject(s, "CID");
  snprintf(s, sizeof s, "%sa", ex_cid);
  expect_reject(s, "CID");
  char longtext[200];
  memset(longtext, '2', sizeof longtext - 1);
  longtext[0] = '1';
  longtext[sizeof longtext - 1] = '\0';
  expect_reject(longtext, "too long");
}

static void test_from_bytes_rejects(void **state)
{
  (void)state;
  mesh_peer_id ok, id;
  assert_int_equal(mesh_peer_id_parse(spec_peer_id, &ok), 0);
  assert_int_equal(mesh_peer_id_from_bytes(ok.b, MESH_PEER_ID_LEN - 1, &id), -EBADMSG);
  assert_int_equal(mesh_peer_id_from_bytes(ok.b, 0, &id), -EBADMSG);
  uint8_t longer[MESH_PEER_ID_LEN + 1];
  memcpy(longer, ok.b, MESH_PEER_ID_LEN);
  longer[MESH_PEER_ID_LEN] = 0;
  assert_int_equal(mesh_peer_id_from_bytes(longer, sizeof longer, &id), -EBADMSG);
  /* Any change in the six head bytes is refused. */
  for (size_t i = 0; i < 6; i++) {
    uint8_t b[MESH_PEER_ID_LEN];
    memcpy(b, ok.b, sizeof b);
    b[i] ^= 0x01;
    assert_int_equal(mesh_peer_id_from_bytes(b, sizeof b, &id), -EBADMSG);
  }
}

static void test_small_buffers(void **state)
{
  (void)state;
  mesh_peer_id id;
  assert_int_equal(mesh_peer_id_parse(spec_peer_id, &id), 0);
  char small[10];
  memset(small, 'x', sizeof small);
  mesh_peer_id_to_text(&id, small, sizeof small);
  assert_string_equal(small, "");
  mesh_peer_id_to_cid(&id, small, sizeof small);
  assert_string_equal(small, "");
  char s[4];
  mesh_peer_id_short(&id, s, sizeof s);
  assert_string_equal(s, "Umo");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spec_vector),        cmocka_unit_test(test_head_matches_schema),
      cmocka_unit_test(test_zero_seed_vector),   cmocka_unit_test(test_cid_vector),
      cmocka_unit_test(test_published_pairs),    cmocka_unit_test(test_round_trips),
      cmocka_unit_test(test_generate_distinct),  cmocka_unit_test(test_rejects),
      cmocka_unit_test(test_from_bytes_rejects), cmocka_unit_test(test_small_buffers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
