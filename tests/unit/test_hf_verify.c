/*
 * Digests of downloaded files: the FIPS 180 test vectors for SHA-1 and
 * SHA-256, git blob ids as `git hash-object` prints them, and streaming
 * (split updates, reset) giving the same digest as one shot.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "coord/hf_verify.h"

#include <stdlib.h>
#include <string.h>

static const char *abc448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

static void test_sha1_fips_vectors(void **state)
{
  char hex[MESH_HF_HEX_MAX];
  mesh_hf_sha1_hex("abc", 3, hex);
  assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
  mesh_hf_sha1_hex(abc448, strlen(abc448), hex);
  assert_string_equal(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  mesh_hf_sha1_hex("", 0, hex);
  assert_string_equal(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  char *million = malloc(1000000);
  memset(million, 'a', 1000000);
  mesh_hf_sha1_hex(million, 1000000, hex);
  assert_string_equal(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  free(million);
}

static void test_sha256_fips_vectors(void **state)
{
  char hex[MESH_HF_HEX_MAX];
  mesh_hf_sha256_hex("abc", 3, hex);
  assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  mesh_hf_sha256_hex(abc448, strlen(abc448), hex);
  assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  mesh_hf_sha256_hex("", 0, hex);
  assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  /* One million 'a', fed in uneven pieces through the streaming interface. */
  mesh_hf_hash h;
  assert_int_equal(mesh_hf_hash_init(&h, MESH_HF_HASH_SHA256, 1000000), 0);
  char buf[997];
  memset(buf, 'a', sizeof buf);
  size_t left = 1000000;
  while (left > 0) {
    size_t n = left < sizeof buf ? left : sizeof buf;
    mesh_hf_hash_update(&h, buf, n);
    left -= n;
  }
  assert_int_equal(mesh_hf_hash_final_hex(&h, hex), 0);
  mesh_hf_hash_free(&h);
  assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_git_blob_oid(void **state)
{
  char hex[MESH_HF_HEX_MAX];
  /* As printed by `git hash-object` for the same content. */
  mesh_hf_git_blob_oid("", 0, hex);
  assert_string_equal(hex, "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
  mesh_hf_git_blob_oid("hello world\n", 12, hex);
  assert_string_equal(hex, "3b18e512dba79e4c8300dd08aeb37f8e728b8dad");
  /* The header is "blob <size>\0": the same bytes under SHA-1 alone differ. */
  char plain[MESH_HF_HEX_MAX];
  mesh_hf_sha1_hex("hello world\n", 12, plain);
  assert_string_not_equal(hex, plain);
}

static void test_streaming_and_reset(void **state)
{
  const char *text = "hello world\n";
  mesh_hf_hash h;
  char hex[MESH_HF_HEX_MAX];
  assert_int_equal(mesh_hf_hash_init(&h, MESH_HF_HASH_GIT_BLOB, 12), 0);
  mesh_hf_hash_update(&h, "garbage", 7);
  /* A reset (a server that ignored a range) forgets what was fed. */
  assert_int_equal(mesh_hf_hash_reset(&h, 12), 0);
  mesh_hf_hash_update(&h, text, 5);
  mesh_hf_hash_update(&h, text + 5, 7);
  assert_int_equal(mesh_hf_hash_final_hex(&h, hex), 0);
  mesh_hf_hash_free(&h);
  assert_string_equal(hex, "3b18e512dba79e4c8300dd08aeb37f8e728b8dad");
}

static void test_hex_helpers(void **state)
{
  assert_true(mesh_hf_is_hex("0123456789abcdefABCDEF", 22));
  assert_false(mesh_hf_is_hex("0123g", 5));
  assert_false(mesh_hf_is_hex("0123", 3)); /* longer than n */
  assert_false(mesh_hf_is_hex("01", 3));   /* shorter than n */
  assert_true(mesh_hf_hex_equal("ABCDEF", "abcdef"));
  assert_false(mesh_hf_hex_equal("abcdef", "abcdee"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sha1_fips_vectors), cmocka_unit_test(test_sha256_fips_vectors),
      cmocka_unit_test(test_git_blob_oid),      cmocka_unit_test(test_streaming_and_reset),
      cmocka_unit_test(test_hex_helpers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
