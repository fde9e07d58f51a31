/*
 * The identity key file: created on first use with mode 0600, reloaded to the
 * same peer ID, refused when others can read it, when truncated, of another
 * key type or with a public key that does not belong to the seed; written
 * atomically (a failed write leaves nothing behind, concurrent creators agree
 * on one key).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/crypto.pb-c.h"
#include "src/base/err.h"
#include "src/identity/durable.h"
#include "src/identity/identity.h"
#include "support_identity.h"

typedef struct fixture {
  char dir[512];  /* scratch directory */
  char path[600]; /* dir/identity.key */
} fixture;

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  ident_test_mkdtemp(f->dir, sizeof f->dir);
  ident_test_path(f->path, sizeof f->path, f->dir, "identity.key");
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture *f = *state;
  mesh_durable_inject_fault(MESH_DURABLE_STEP_NONE, 0, 0);
  ident_test_rmdir(f->dir);
  free(f);
  return 0;
}

static void assert_same_identity(const mesh_identity *a, const mesh_identity *b)
{
  assert_memory_equal(a->pk, b->pk, sizeof a->pk);
  assert_memory_equal(a->sk, b->sk, sizeof a->sk);
  assert_true(mesh_peer_id_eq(&a->id, &b->id));
}

/* Packs a PrivateKey with the given type and data into buf. */
static size_t pack_key(int type, const uint8_t *data, size_t len, uint8_t *buf)
{
  Mesh__Crypto__PrivateKey k = MESH__CRYPTO__PRIVATE_KEY__INIT;
  k.type = (Mesh__Crypto__KeyType)type;
  k.data.len = len;
  k.data.data = (uint8_t *)data;
  return mesh__crypto__private_key__pack(&k, buf);
}

/* Writes bytes as a 0600 key file and expects load to refuse it with
 * -EBADMSG and a message naming the file and containing want. */
static void expect_bad_file(const fixture *f, const uint8_t *buf, size_t len, const char *want)
{
  ident_test_write(f->path, buf, len, 0600);
  mesh_identity id;
  char err[512] = "";
  assert_int_equal(mesh_identity_load(f->path, &id, err, sizeof err), -EBADMSG);
  assert_non_null(strstr(err, f->path));
  if (want != NULL && strstr(err, want) == NULL)
    fail_msg("message '%s' does not say '%s'", err, want);
  /* load_or_create must not replace a damaged key with a new one. */
  assert_int_equal(mesh_identity_load_or_create(f->path, &id, err, sizeof err), -EBADMSG);
  static char back[16384];
  assert_int_equal(ident_test_read(f->path, back, sizeof back), (long)len);
  assert_memory_equal(back, buf, len);
}

static void test_create_and_reload(void **state)
{
  fixture *f = *state;
  mesh_identity a, b, c;
  char err[256] = "";
  assert_int_equal(mesh_identity_load(f->path, &a, err, sizeof err), -ENOENT);
  assert_int_equal(mesh_identity_load_or_create(f->path, &a, err, sizeof err), 0);

  struct stat st;
  assert_int_equal(stat(f->path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(st.st_size, 68);
  assert_int_equal(ident_test_count(f->dir, "identity.key.tmp"), 0);

  assert_int_equal(mesh_identity_load(f->path, &b, err, sizeof err), 0);
  assert_same_identity(&a, &b);
  assert_int_equal(mesh_identity_load_or_create(f->path, &c, err, sizeof err), 0);
  assert_same_identity(&a, &c);

  /* The file is exactly the libp2p encoding. */
  uint8_t enc[128];
  size_t n;
  assert_int_equal(mesh_identity_encode(&a, enc, sizeof enc, &n), 0);
  char back[256];
  assert_int_equal(ident_test_read(f->path, back, sizeof back), (long)n);
  assert_memory_equal(back, enc, n);
}

static void test_save_replaces(void **state)
{
  fixture *f = *state;
  mesh_identity a, b, got;
  char err[256];
  assert_int_equal(mesh_identity_generate(&a), 0);
  assert_int_equal(mesh_identity_generate(&b), 0);
  assert_int_equal(mesh_identity_save(f->path, &a), 0);
  assert_int_equal(mesh_identity_save(f->path, &b), 0);
  assert_int_equal(mesh_identity_load(f->path, &got, err, sizeof err), 0);
  assert_same_identity(&got, &b);
  assert_int_equal(ident_test_count(f->dir, "identity.key.tmp"), 0);
}

static void test_permissions_refused(void **state)
{
  fixture *f = *state;
  mesh_identity a, b;
  char err[512];
  assert_int_equal(mesh_identity_load_or_create(f->path, &a, err, sizeof err), 0);

  static const mode_t modes[] = {0644, 0640, 0604, 0660, 0666, 0610, 0601, 0620};
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    assert_int_equal(chmod(f->path, modes[i]), 0);
    err[0] = '\0';
    assert_int_equal(mesh_identity_load(f->path, &b, err, sizeof err), -EACCES);
    char want[1400];
    snprintf(want, sizeof want, "Permissions %04o for '%s' are too open; run: chmod 600 %s",
             (unsigned)modes[i], f->path, f->path);
    assert_string_equal(err, want);
    /* load_or_create refuses too, and never writes a new key over it. */
    assert_int_equal(mesh_identity_load_or_create(f->path, &b, err, sizeof err), -EACCES);
  }
  assert_int_equal(chmod(f->path, 0400), 0);
  assert_int_equal(mesh_identity_load(f->path, &b, err, sizeof err), 0);
  assert_same_identity(&a, &b);
  assert_int_equal(chmod(f->path, 0600), 0);
  assert_int_equal(mesh_identity_load(f->path, &b, err, sizeof err), 0);
  assert_same_identity(&a, &b);
}

static void test_truncated(void **state)
{
  fixture *f = *state;
  mesh_identity a;
  assert_int_equal(mesh_identity_generate(&a), 0);
  uint8_t enc[128];
  size_t n;
  assert_int_equal(mesh_identity_encode(&a, enc, sizeof enc, &n), 0);
  assert_int_equal(n, 68);
  for (size_t len = 0; len < n; len++)
    expect_bad_file(f, enc, len, NULL);
  /* Trailing garbage after a whole key is not a key file either. */
  uint8_t longer[80];
  memcpy(longer, enc, n);
  longer[n] = 0xff;
  expect_bad_file(f, longer, n + 1, NULL);
}

static void test_wrong_type(void **state)
{
  fixture *f = *state;
  mesh_identity a;
  assert_int_equal(mesh_identity_generate(&a), 0);
  uint8_t buf[256];
  static const struct {
    int type;
    const char *name;
  } types[] = {{0, "RSA"}, {2, "Secp256k1"}, {3, "ECDSA"}, {9, "unknown"}};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    size_t n = pack_key(types[i].type, a.sk, sizeof a.sk, buf);
    expect_bad_file(f, buf, n, types[i].name);
  }
  /* Not a protobuf at all. */
  const char *text = "-----BEGIN OPENSSH PRIVATE KEY-----\n";
  expect_bad_file(f, (const uint8_t *)text, strlen(text), "PrivateKey");
}

static void test_pk_mismatch(void **state)
{
  fixture *f = *state;
  mesh_identity a, b;
  assert_int_equal(mesh_identity_generate(&a), 0);
  assert_int_equal(mesh_identity_generate(&b), 0);
  uint8_t data[96];
  uint8_t buf[256];

  /* a's seed with b's public key. */
  memcpy(data, a.sk, 32);
  memcpy(data + 32, b.pk, 32);
  expect_bad_file(f, buf, pack_key(1, data, 64, buf), "does not match");

  /* One bit flipped anywhere in the 64 bytes. */
  for (size_t i = 0; i < 64; i += 5) {
    memcpy(data, a.sk, 64);
    data[i] ^= 0x10;
    expect_bad_file(f, buf, pack_key(1, data, 64, buf), "does not match");
  }

  /* Wrong data sizes. */
  expect_bad_file(f, buf, pack_key(1, a.sk, 32, buf), "expected 64");
  expect_bad_file(f, buf, pack_key(1, a.sk, 63, buf), "expected 64");
  memcpy(data, a.sk, 64);
  memcpy(data + 64, a.sk, 1);
  expect_bad_file(f, buf, pack_key(1, data, 65, buf), "expected 64");
}

/* libp2p's older seed || pk || pk form loads when both copies agree. */
static void test_legacy_96(void **state)
{
  fixture *f = *state;
  mesh_identity a, got;
  char err[256];
  assert_int_equal(mesh_identity_generate(&a), 0);
  uint8_t data[96], buf[256];
  memcpy(data, a.sk, 64);
  memcpy(data + 64, a.pk, 32);
  size_t n = pack_key(1, data, 96, buf);
  ident_test_write(f->path, buf, n, 0600);
  assert_int_equal(mesh_identity_load(f->path, &got, err, sizeof err), 0);
  assert_same_identity(&a, &got);

  data[95] ^= 1;
  expect_bad_file(f, buf, pack_key(1, data, 96, buf), "differ");
}

static void test_not_regular_or_missing_dir(void **state)
{
  fixture *f = *state;
  mesh_identity id;
  char err[512] = "";
  assert_int_equal(mkdir(f->path, 0700), 0);
  assert_int_equal(mesh_identity_load(f->path, &id, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "not a regular file"));
  assert_int_equal(rmdir(f->path), 0);

  char missing[700];
  ident_test_path(missing, sizeof missing, f->dir, "no-such-dir/identity.key");
  assert_int_equal(mesh_identity_load_or_create(missing, &id, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, "cannot create key file"));
  assert_non_null(strstr(err, missing));

  /* A huge file is refused without being read whole. */
  static uint8_t big[8192];
  expect_bad_file(f, big, sizeof big, "too large");
}

/* A write that fails part way leaves neither a key file nor a temp file. */
static void test_failed_write_leaves_nothing(void **state)
{
  fixture *f = *state;
  mesh_identity id;
  char err[512] = "";
  static const mesh_durable_step steps[] = {MESH_DURABLE_STEP_WRITE, MESH_DURABLE_STEP_FSYNC,
                                            MESH_DURABLE_STEP_RENAME};
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    mesh_durable_inject_fault(steps[i], 0, -EIO);
    assert_int_equal(mesh_identity_load_or_create(f->path, &id, err, sizeof err), -EIO);
    assert_non_null(strstr(err, f->path));
    assert_int_equal(ident_test_count(f->dir, "identity.key"), 0);
  }
  /* Next time it works. */
  assert_int_equal(mesh_identity_load_or_create(f->path, &id, err, sizeof err), 0);
  assert_int_equal(ident_test_count(f->dir, "identity.key"), 1);
}

/* Processes that start together on an empty home all end up with the one
 * key that was written first. */
static void test_concurrent_create(void **state)
{
  fixture *f = *state;
  enum { N = 6 };
  int fds[N][2];
  for (int i = 0; i < N; i++) {
    assert_int_equal(pipe(fds[i]), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      mesh_identity id;
      char err[256];
      int rc = mesh_identity_load_or_create(f->path, &id, err, sizeof err);
      if (rc != 0)
        _exit(1);
      ssize_t w = write(fds[i][1], id.id.b, MESH_PEER_ID_LEN);
      _exit(w == MESH_PEER_ID_LEN ? 0 : 2);
    }
    close(fds[i][1]);
  }
  mesh_peer_id ids[N];
  for (int i = 0; i < N; i++) {
    int status;
    assert_true(wait(&status) > 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(read(fds[i][0], ids[i].b, MESH_PEER_ID_LEN), MESH_PEER_ID_LEN);
    close(fds[i][0]);
  }
  mesh_identity onfile;
  char err[256];
  assert_int_equal(mesh_identity_load(f->path, &onfile, err, sizeof err), 0);
  for (int i = 0; i < N; i++)
    assert_true(mesh_peer_id_eq(&ids[i], &onfile.id));
  assert_int_equal(ident_test_count(f->dir, "identity.key.tmp"), 0);
}

/* The key file must be a regular file of meshd's user: a symbolic link (even
 * to a good key) and a key owned by another user are refused, each with a
 * message that says what to do. */
static void test_symlink_and_owner_refused(void **state)
{
  fixture *f = *state;
  mesh_identity a, b;
  char err[512] = "";
  char real[700], want[1600];
  ident_test_path(real, sizeof real, f->dir, "real.key");
  assert_int_equal(mesh_identity_load_or_create(real, &a, err, sizeof err), 0);
  assert_int_equal(symlink(real, f->path), 0);
  assert_int_equal(mesh_identity_load(f->path, &b, err, sizeof err), -ELOOP);
  assert_non_null(strstr(err, "symbolic link"));
  assert_non_null(strstr(err, f->path));
  /* load_or_create neither follows nor replaces the link. */
  assert_int_equal(mesh_identity_load_or_create(f->path, &b, err, sizeof err), -ELOOP);
  struct stat st;
  assert_int_equal(lstat(f->path, &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  assert_int_equal(unlink(f->path), 0);

  if (geteuid() != 0) {
    print_message("skipped: key owned by another user (needs root to chown)\n");
    return;
  }
  assert_int_equal(chown(real, 1, 1), 0);
  assert_int_equal(mesh_identity_load(real, &b, err, sizeof err), -EACCES);
  snprintf(want, sizeof want,
           "key file '%s' is owned by uid 1, but meshd runs as uid 0; run: chown 0 %s", real, real);
  assert_string_equal(err, want);
  assert_int_equal(chown(real, 0, 0), 0);
  assert_int_equal(mesh_identity_load(real, &b, err, sizeof err), 0);
  assert_same_identity(&a, &b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_create_and_reload, setup, teardown),
      cmocka_unit_test_setup_teardown(test_save_replaces, setup, teardown),
      cmocka_unit_test_setup_teardown(test_permissions_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_type, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pk_mismatch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_legacy_96, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_regular_or_missing_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_write_leaves_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_create, setup, teardown),
      cmocka_unit_test_setup_teardown(test_symlink_and_owner_refused, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
