/*
 * Signed file lists of members (coord/hf_filelist.h) and the manifest
 * reader that takes them apart (mesh_hf_manifest_parse): a list signed by
 * a member opens only for that member, model, revision and epoch, with the
 * very manifest it signed; the manifest gives back the files it was written
 * from, and nothing malformed or out of bounds gets through.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "coord/hf_filelist.h"
#include "src/base/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char manifest[] =
    "meshd-files 1\n"
    "42 0123456789abcdef0123456789abcdef01234567 config.json\n"
    "8589934592 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa sub dir/model "
    "1.safetensors\n";

static void identity(uint8_t fill, mesh_identity *id)
{
  uint8_t seed[MESH_SEED_LEN];
  memset(seed, fill, sizeof seed);
  assert_int_equal(mesh_identity_from_seed(seed, id), 0);
}

static mesh_hf_filelist_meta meta_of(const mesh_identity *id, uint64_t epoch)
{
  mesh_hf_filelist_meta m;
  memset(&m, 0, sizeof m);
  snprintf(m.model_id, sizeof m.model_id, "acme/tiny");
  snprintf(m.revision, sizeof m.revision, "main");
  m.owner = id->id;
  m.epoch = epoch;
  return m;
}

static void seal(const mesh_identity *id, const mesh_hf_filelist_meta *m, uint8_t **buf,
                 size_t *len)
{
  assert_int_equal(mesh_hf_filelist_seal(id, m, manifest, sizeof manifest - 1, buf, len), 0);
}

/* A list of `manifest` sealed by the identity of seed byte 1 in epoch 7:
 * each test's state. */
typedef struct sealed {
  mesh_identity a;
  mesh_hf_filelist_meta m;
  uint8_t *buf;
  size_t len;
} sealed;

static int sealed_setup(void **state)
{
  sealed *f = calloc(1, sizeof *f);
  assert_non_null(f);
  identity(1, &f->a);
  f->m = meta_of(&f->a, 7);
  seal(&f->a, &f->m, &f->buf, &f->len);
  *state = f;
  return 0;
}

static int sealed_teardown(void **state)
{
  sealed *f = *state;
  free(f->buf);
  free(f);
  return 0;
}

static int open_list(const uint8_t *buf, size_t len, const mesh_hf_filelist_meta *want)
{
  const char *m = NULL;
  size_t mlen = 0;
  char err[160];
  return mesh_hf_filelist_open(buf, len, want, &m, &mlen, err, sizeof err);
}

static void test_round_trip(void **state)
{
  sealed *f = *state;
  const mesh_hf_filelist_meta m = f->m;
  uint8_t *buf = f->buf;
  size_t len = f->len;
  const char *got = NULL;
  size_t glen = 0;
  char err[160];
  assert_int_equal(mesh_hf_filelist_open(buf, len, &m, &got, &glen, err, sizeof err), 0);
  assert_int_equal(glen, sizeof manifest - 1);
  assert_memory_equal(got, manifest, glen);

  mesh_hf_tree t;
  mesh_hf_tree_init(&t);
  assert_int_equal(mesh_hf_manifest_parse(got, glen, NULL, &t, err, sizeof err), 0);
  assert_int_equal(t.len, 2);
  assert_string_equal(t.files[0].path, "config.json");
  assert_int_equal(t.files[0].size, 42);
  assert_false(t.files[0].lfs);
  assert_string_equal(t.files[0].oid, "0123456789abcdef0123456789abcdef01234567");
  assert_string_equal(t.files[1].path, "sub dir/model 1.safetensors");
  assert_true(t.files[1].lfs);
  assert_int_equal(t.files[1].size, 1ull << 33);
  assert_int_equal(t.total_bytes, 42 + (1ull << 33));
  /* What a download writes from it is the manifest it came from. */
  char *text;
  size_t tlen;
  assert_int_equal(mesh_hf_manifest_encode(&t, &text, &tlen), 0);
  assert_int_equal(tlen, sizeof manifest - 1);
  assert_memory_equal(text, manifest, tlen);
  free(text);
  mesh_hf_tree_free(&t);
}

/* Every byte of the list matters: a change anywhere is refused. */
static void test_tampered(void **state)
{
  sealed *f = *state;
  const mesh_hf_filelist_meta m = f->m;
  uint8_t *buf = f->buf;
  size_t len = f->len;
  for (size_t i = 0; i < len; i++) {
    buf[i] ^= 0x01;
    assert_int_not_equal(open_list(buf, len, &m), 0);
    buf[i] ^= 0x01;
  }
  /* A byte changed in the manifest: the signature holds, the hash does not. */
  buf[len - 2] ^= 0x01;
  assert_int_equal(open_list(buf, len, &m), -MESH_EAUTH);
  buf[len - 2] ^= 0x01;
  /* Cut short, or with more appended. */
  assert_int_not_equal(open_list(buf, len - 1, &m), 0);
  uint8_t *more = malloc(len + 5);
  memcpy(more, buf, len);
  memcpy(more + len, "1 a b", 5);
  assert_int_equal(open_list(more, len + 5, &m), -MESH_EAUTH);
  free(more);
  assert_int_equal(open_list(buf, len, &m), 0);
}

/* A list is taken only for what was asked of whom. */
static void test_wrong_binding(void **state)
{
  sealed *f = *state;
  const mesh_identity a = f->a;
  const mesh_hf_filelist_meta m = f->m;
  mesh_identity b;
  identity(2, &b);
  uint8_t *buf = f->buf;
  size_t len = f->len;
  mesh_hf_filelist_meta w = m;
  snprintf(w.model_id, sizeof w.model_id, "acme/other");
  assert_int_equal(open_list(buf, len, &w), -EBADMSG);
  w = m;
  snprintf(w.revision, sizeof w.revision, "v2");
  assert_int_equal(open_list(buf, len, &w), -EBADMSG);
  w = m;
  w.epoch = 8;
  assert_int_equal(open_list(buf, len, &w), -EBADMSG);
  w = m;
  w.owner = b.id;
  assert_int_equal(open_list(buf, len, &w), -EBADMSG);

  /* b signing a list that names a as its owner: refused when sealed, and a
   * forged one (b's signature under a's name) fails the signature. */
  uint8_t *none;
  size_t none_len;
  assert_int_equal(mesh_hf_filelist_seal(&b, &m, manifest, sizeof manifest - 1, &none, &none_len),
                   -EINVAL);
  mesh_identity forger = b;
  forger.id = a.id;
  uint8_t *forged;
  size_t forged_len;
  seal(&forger, &m, &forged, &forged_len);
  assert_int_equal(open_list(forged, forged_len, &m), -MESH_EAUTH);
  free(forged);
}

static void test_bounds(void **state)
{
  (void)state;
  mesh_identity a;
  identity(1, &a);
  mesh_hf_filelist_meta m = meta_of(&a, 7);
  static const uint8_t junk[] = "meshd-file-list 1\nmodel acme/tiny\n";
  assert_int_equal(open_list(junk, sizeof junk - 1, &m), -EBADMSG);
  assert_int_equal(open_list((const uint8_t *)"", 0, &m), -EBADMSG);
  uint8_t one = 0;
  assert_int_equal(open_list(&one, MESH_HF_FILELIST_MAX + 1, &m), -EMSGSIZE);
  uint8_t *buf;
  size_t len;
  assert_int_equal(mesh_hf_filelist_seal(&a, &m, manifest, MESH_HF_MANIFEST_MAX + 1, &buf, &len),
                   -EINVAL);
  mesh_hf_filelist_meta bad = m;
  snprintf(bad.model_id, sizeof bad.model_id, "../etc");
  assert_int_equal(mesh_hf_filelist_seal(&a, &bad, manifest, sizeof manifest - 1, &buf, &len),
                   -EINVAL);
}

static void test_manifest_malformed(void **state)
{
  (void)state;
  static const char twice[] = "meshd-files 1\n"
                              "1 0123456789abcdef0123456789abcdef01234567 a\n"
                              "2 0123456789abcdef0123456789abcdef01234567 a\n";
  static const char *bad[] = {
      "",
      "meshd-files 2\n",
      "meshd-files 1\n12 abc",
      "meshd-files 1\nx 0123456789abcdef0123456789abcdef01234567 a\n",
      "meshd-files 1\n12 0123456789abcdef0123456789abcdef0123456 a\n",  /* 39 digits */
      "meshd-files 1\n12 0123456789ABCDEF0123456789abcdef01234567 a\n", /* upper case */
      "meshd-files 1\n12 0123456789abcdef0123456789abcdef01234567 ../a\n",
      "meshd-files 1\n12 0123456789abcdef0123456789abcdef01234567 /a\n",
      "meshd-files 1\n12 0123456789abcdef0123456789abcdef01234567 a.partial\n",
      twice,
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    mesh_hf_tree t;
    mesh_hf_tree_init(&t);
    char err[160];
    assert_int_equal(mesh_hf_manifest_parse(bad[k], strlen(bad[k]), NULL, &t, err, sizeof err),
                     -EBADMSG);
    mesh_hf_tree_free(&t);
  }
  /* The Hub list's bounds hold for a member's list as well. */
  mesh_hf_tree_limits lim = {.max_entries = 1};
  mesh_hf_tree t;
  mesh_hf_tree_init(&t);
  char err[160];
  assert_int_equal(mesh_hf_manifest_parse(manifest, sizeof manifest - 1, &lim, &t, err, sizeof err),
                   -EMSGSIZE);
  mesh_hf_tree_free(&t);
  lim = (mesh_hf_tree_limits){.max_file_size = 100};
  mesh_hf_tree_init(&t);
  assert_int_equal(mesh_hf_manifest_parse(manifest, sizeof manifest - 1, &lim, &t, err, sizeof err),
                   -EBADMSG);
  mesh_hf_tree_free(&t);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_round_trip, sealed_setup, sealed_teardown),
      cmocka_unit_test_setup_teardown(test_tampered, sealed_setup, sealed_teardown),
      cmocka_unit_test_setup_teardown(test_wrong_binding, sealed_setup, sealed_teardown),
      cmocka_unit_test(test_bounds),
      cmocka_unit_test(test_manifest_malformed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
