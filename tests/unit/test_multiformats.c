/*
 * Unsigned varints, base58btc, base32 and CIDv1 against published vectors:
 * the multibase spec's test files (tests/basic.csv, leading_zero.csv,
 * two_leading_zeros.csv), the base58 draft (draft-msporny-base58), RFC 4648
 * section 10, and the unsigned-varint spec's examples.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "src/base/err.h"
#include "src/identity/multiformats.h"
#include "support_identity.h"

typedef struct vec {
  const char *bytes; /* raw bytes (may hold NULs: length is given) */
  size_t len;
  const char *text;
} vec;

#define V(b, t)                                                                                    \
  {                                                                                                \
    b, sizeof(b) - 1, t                                                                            \
  }

static const vec b58_vectors[] = {
    V("", ""),
    V("yes mani !", "7paNL19xttacUY"),
    V("\0yes mani !", "17paNL19xttacUY"),
    V("\0\0yes mani !", "117paNL19xttacUY"),
    V("Hello World!", "2NEpo7TZRRrLZSi2U"),
    V("The quick brown fox jumps over the lazy dog.",
      "USm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z"),
    V("\x00\x00\x28\x7f\xb4\xcd", "11233QC4"),
    V("\0", "1"),
    V("\0\0\0", "111"),
};

static const vec b32_vectors[] = {
    V("", ""),
    V("f", "my"),
    V("fo", "mzxq"),
    V("foo", "mzxw6"),
    V("foob", "mzxw6yq"),
    V("fooba", "mzxw6ytb"),
    V("foobar", "mzxw6ytboi"),
    V("yes mani !", "pfsxgidnmfxgsibb"),
    V("\0yes mani !", "ab4wk4zanvqw42jaee"),
    V("\0\0yes mani !", "aaahszltebwwc3tjeaqq"),
};

static void test_base58_vectors(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof b58_vectors / sizeof b58_vectors[0]; i++) {
    const vec *v = &b58_vectors[i];
    char text[256];
    assert_int_equal(mesh_base58_encode((const uint8_t *)v->bytes, v->len, text, sizeof text), 0);
    assert_string_equal(text, v->text);
    if (v->len == 0)
      continue; /* empty text is refused on input */
    uint8_t bytes[128];
    size_t n = 0;
    assert_int_equal(mesh_base58_decode(v->text, strlen(v->text), bytes, sizeof bytes, &n), 0);
    assert_int_equal(n, v->len);
    assert_memory_equal(bytes, v->bytes, n);
  }
}

static void test_base58_rejects(void **state)
{
  (void)state;
  uint8_t out[128];
  size_t n;
  assert_int_equal(mesh_base58_decode("", 0, out, sizeof out, &n), -EBADMSG);
  /* 0, O, I and l are left out of the alphabet. */
  const char *bad[] = {"0", "abc0", "O", "I", "l", "a b", "ab+", "\xc3\xa9"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(mesh_base58_decode(bad[i], strlen(bad[i]), out, sizeof out, &n), -EBADMSG);
  char nul[] = {'2', '\0', '2'};
  assert_int_equal(mesh_base58_decode(nul, 3, out, sizeof out, &n), -EBADMSG);
  char longtext[MESH_BASE58_MAX_TEXT + 2];
  memset(longtext, 'z', sizeof longtext);
  assert_int_equal(mesh_base58_decode(longtext, sizeof longtext, out, sizeof out, &n), -EMSGSIZE);
  assert_int_equal(mesh_base58_decode("2NEpo7TZRRrLZSi2U", 17, out, 11, &n), -ENOSPC);
  /* Leading '1's are zero bytes: 93 of them are more than the encoder takes. */
  memset(longtext, '1', MESH_BASE58_MAX_BYTES + 1);
  assert_int_equal(mesh_base58_decode(longtext, MESH_BASE58_MAX_BYTES + 1, out, sizeof out, &n),
                   -EMSGSIZE);
  assert_int_equal(mesh_base58_decode(longtext, MESH_BASE58_MAX_BYTES, out, sizeof out, &n), 0);
  assert_int_equal(n, MESH_BASE58_MAX_BYTES);
  /* The largest input round-trips through the longest text; one byte more
   * is refused. */
  uint8_t maxin[MESH_BASE58_MAX_BYTES + 1];
  memset(maxin, 0xff, sizeof maxin);
  char maxtext[256];
  assert_int_equal(mesh_base58_encode(maxin, sizeof maxin, maxtext, sizeof maxtext), -EMSGSIZE);
  assert_int_equal(mesh_base58_encode(maxin, MESH_BASE58_MAX_BYTES, maxtext, sizeof maxtext), 0);
  assert_true(strlen(maxtext) <= MESH_BASE58_MAX_TEXT);
  uint8_t back[MESH_BASE58_MAX_BYTES];
  assert_int_equal(mesh_base58_decode(maxtext, strlen(maxtext), back, sizeof back, &n), 0);
  assert_int_equal(n, MESH_BASE58_MAX_BYTES);
  assert_memory_equal(back, maxin, n);
  char small[4];
  assert_int_equal(mesh_base58_encode((const uint8_t *)"Hello", 5, small, sizeof small), -ENOSPC);
}

static void test_base32_vectors(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof b32_vectors / sizeof b32_vectors[0]; i++) {
    const vec *v = &b32_vectors[i];
    char text[256];
    assert_int_equal(mesh_base32_encode((const uint8_t *)v->bytes, v->len, text, sizeof text), 0);
    assert_string_equal(text, v->text);
    uint8_t bytes[128];
    size_t n = 99;
    assert_int_equal(mesh_base32_decode(v->text, strlen(v->text), bytes, sizeof bytes, &n), 0);
    assert_int_equal(n, v->len);
    assert_memory_equal(bytes, v->bytes, n);
  }
}

static void test_base32_rejects(void **state)
{
  (void)state;
  uint8_t out[64];
  size_t n;
  const char *bad[] = {
      "MZXW6",    /* uppercase is another multibase ('B') */
      "my======", /* padding */
      "mzxw1",    /* 1 is not in the alphabet */
      "m",        /* a lone character carries no byte */
      "mzx",      /* 3 characters cannot end a group */
      "mzxw6y",   /* neither can 6 */
      "mz",       /* spare bits set: "f" is "my" */
      "mzxw7",    /* spare bit set */
      "mzx w6",   /* space */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(mesh_base32_decode(bad[i], strlen(bad[i]), out, sizeof out, &n), -EBADMSG);
  assert_int_equal(mesh_base32_decode("mzxw6ytboi", 10, out, 5, &n), -ENOSPC);
}

static void test_uvarint(void **state)
{
  (void)state;
  static const struct {
    uint64_t value;
    const char *hex;
  } vectors[] = {
      {1, "01"},     {127, "7f"},   {128, "8001"},
      {255, "ff01"}, {300, "ac02"}, {16384, "808001"},
      {0, "00"},     {0x72, "72"},  {(1ull << 63) - 1, "ffffffffffffffff7f"},
  };
  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
    uint8_t want[MESH_UVARINT_MAX], got[MESH_UVARINT_MAX];
    size_t wn = ident_test_hex(vectors[i].hex, want, sizeof want);
    size_t gn = mesh_uvarint_put(got, vectors[i].value);
    assert_int_equal(gn, wn);
    assert_memory_equal(got, want, wn);
    uint64_t v = 0;
    size_t used = 0;
    assert_int_equal(mesh_uvarint_get(want, wn, &v, &used), 0);
    assert_int_equal(used, wn);
    assert_true(v == vectors[i].value);
  }
  uint8_t buf[16];
  assert_int_equal(mesh_uvarint_put(buf, 1ull << 63), 0);

  /* Not minimal, truncated, longer than nine bytes. */
  const char *bad[] = {"8000", "ff00", "80", "", "ffffffffffffffffff01", "80808080808080808001"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t n = ident_test_hex(bad[i], buf, sizeof buf);
    uint64_t v;
    size_t used;
    assert_int_equal(mesh_uvarint_get(buf, n, &v, &used), -EBADMSG);
  }
}

/* sha256 peer IDs published in both text forms name the same multihash:
 * base58 of the bare multihash, and a CIDv1 around it. The first pair is the
 * peer-ID spec's example; the second is from the multiaddr test lists. */
static const struct {
  const char *base58;
  const char *cid;
} sha_pairs[] = {
    {"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
     "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe"},
    {"QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",
     "bafzbeigvf25ytwc3akrijfecaotc74udrhcxzh2cx3we5qqnw5vgrei4bm"},
};

static void test_cid_and_base58_agree(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof sha_pairs / sizeof sha_pairs[0]; i++) {
    const char *b58 = sha_pairs[i].base58;
    const char *cid = sha_pairs[i].cid;
    uint8_t a[64], b[64];
    size_t an, bn;
    assert_int_equal(mesh_base58_decode(b58, strlen(b58), a, sizeof a, &an), 0);
    uint64_t codec = 0;
    assert_int_equal(mesh_cid_parse(cid, strlen(cid), &codec, b, sizeof b, &bn), 0);
    assert_int_equal(codec, MESH_MULTICODEC_LIBP2P_KEY);
    assert_int_equal(an, 34);
    assert_int_equal(bn, 34);
    assert_memory_equal(a, b, an);
    uint64_t code;
    size_t dl;
    assert_int_equal(mesh_multihash_check(a, an, &code, &dl), 0);
    assert_int_equal(code, MESH_MULTIHASH_SHA2_256);
    assert_int_equal(dl, 32);

    char text[128];
    assert_int_equal(mesh_cid_format(MESH_MULTICODEC_LIBP2P_KEY, a, an, text, sizeof text), 0);
    assert_string_equal(text, cid);
    assert_int_equal(mesh_base58_encode(b, bn, text, sizeof text), 0);
    assert_string_equal(text, b58);
  }
}

static void test_cid_rejects(void **state)
{
  (void)state;
  uint8_t mh[64];
  size_t n;
  uint64_t codec;
  /* A sha256 multihash with one digest byte dropped. */
  uint8_t bin[64];
  size_t bn = ident_test_hex("01721220"
                             "9df6f2c7d34ce4e40b65ac4f8ebbc2cdb9de0e0f7c2d52ac5d74e4c8ecd6f3",
                             bin, sizeof bin);
  char text[128];
  text[0] = 'b';
  assert_int_equal(mesh_base32_encode(bin, bn, text + 1, sizeof text - 1), 0);
  assert_int_equal(mesh_cid_parse(text, strlen(text), &codec, mh, sizeof mh, &n), -EBADMSG);
  /* Version 0 and version 2 in CIDv1 framing. */
  const char *versions[] = {"00720003010203", "02720003010203"};
  for (size_t i = 0; i < 2; i++) {
    bn = ident_test_hex(versions[i], bin, sizeof bin);
    assert_int_equal(mesh_base32_encode(bin, bn, text + 1, sizeof text - 1), 0);
    assert_int_equal(mesh_cid_parse(text, strlen(text), &codec, mh, sizeof mh, &n), -EBADMSG);
  }
  /* The same with version 1 parses. */
  bn = ident_test_hex("01720003010203", bin, sizeof bin);
  assert_int_equal(mesh_base32_encode(bin, bn, text + 1, sizeof text - 1), 0);
  assert_int_equal(mesh_cid_parse(text, strlen(text), &codec, mh, sizeof mh, &n), 0);
  assert_int_equal(n, 5);
  /* Other multibases, empty, bare prefix. */
  const char *bad[] = {"", "b", "zQmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
                       "BAFZBEIE5745RPV2M6TJYUUGYWY4D5EWRQGQQHFNF445HE3OMZPJBX5XQXE"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(mesh_cid_parse(bad[i], strlen(bad[i]), &codec, mh, sizeof mh, &n), -EBADMSG);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_base58_vectors), cmocka_unit_test(test_base58_rejects),
      cmocka_unit_test(test_base32_vectors), cmocka_unit_test(test_base32_rejects),
      cmocka_unit_test(test_uvarint),        cmocka_unit_test(test_cid_and_base58_agree),
      cmocka_unit_test(test_cid_rejects),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
