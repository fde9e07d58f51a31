/*
 * The verified-files manifest: what a download writes is what a server
 * finds, at its size, and nothing else is found.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "coord/hf_manifest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void test_round_trip(void **state)
{
  (void)state;
  mesh_hf_file files[2];
  memset(files, 0, sizeof files);
  files[0].path = (char *)"config.json";
  files[0].size = 42;
  memcpy(files[0].oid, "0123456789abcdef0123456789abcdef01234567", 41);
  files[1].path = (char *)"sub dir/model 1.safetensors";
  files[1].size = 1ull << 33;
  files[1].lfs = true;
  memset(files[1].sha256, 'a', 64);
  mesh_hf_tree t = {.files = files, .len = 2};
  char *text;
  size_t len;
  assert_int_equal(mesh_hf_manifest_encode(&t, &text, &len), 0);
  uint64_t size = 0;
  assert_int_equal(mesh_hf_manifest_find(text, len, "config.json", &size), 0);
  assert_int_equal(size, 42);
  assert_int_equal(mesh_hf_manifest_find(text, len, "sub dir/model 1.safetensors", &size), 0);
  assert_int_equal(size, 1ull << 33);
  assert_int_equal(mesh_hf_manifest_find(text, len, "config", &size), -ENOENT);
  assert_int_equal(mesh_hf_manifest_find(text, len, "model 1.safetensors", &size), -ENOENT);
  free(text);
}

static void test_malformed(void **state)
{
  (void)state;
  uint64_t size;
  static const char *bad[] = {
      "",
      "meshd-files 2\n",
      "meshd-files 1\n12 abc",
      "meshd-files 1\nx abc a\n",
      "meshd-files 1\n12 abc\n",
      "meshd-files 1\n99999999999999999999999 abc a\n",
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
    assert_int_equal(mesh_hf_manifest_find(bad[k], strlen(bad[k]), "a", &size), -EBADMSG);
  const char *empty = "meshd-files 1\n";
  assert_int_equal(mesh_hf_manifest_find(empty, strlen(empty), "a", &size), -ENOENT);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_malformed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
