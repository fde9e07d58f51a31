/*
 * The control API's token file: made on first start with mode 0600 and 64
 * hex digits, read back the same on the next, shared by two racing starts;
 * refused when others could read or write it, when it is a symlink or not
 * a regular file, or when it holds no well-formed token. A client reads it
 * without the ownership rules.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "src/identity/apitoken.h"
#include "src/identity/durable.h"
#include "support_identity.h"

typedef struct fixture {
  char dir[512];  /* scratch directory */
  char path[600]; /* dir/api.token */
} fixture;

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  ident_test_mkdtemp(f->dir, sizeof f->dir);
  ident_test_path(f->path, sizeof f->path, f->dir, MESH_APITOKEN_FILE);
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

static void test_created_then_reused(void **state)
{
  fixture *f = *state;
  char tok[MESH_APITOKEN_MAX + 1];
  char err[256] = "";
  bool created = false;
  /* A umask that would leave the file world-readable does not. */
  mode_t old = umask(0);
  assert_int_equal(
      mesh_apitoken_load_or_create(f->path, tok, sizeof tok, &created, err, sizeof err), 0);
  umask(old);
  assert_true(created);
  assert_int_equal(strlen(tok), 64);
  for (size_t i = 0; i < 64; i++)
    assert_non_null(strchr("0123456789abcdef", tok[i]));
  struct stat st;
  assert_int_equal(lstat(f->path, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0600);
  char file[128];
  assert_int_equal(ident_test_read(f->path, file, sizeof file), 65);
  assert_memory_equal(file, tok, 64);
  assert_int_equal(file[64], '\n');

  char again[MESH_APITOKEN_MAX + 1];
  assert_int_equal(
      mesh_apitoken_load_or_create(f->path, again, sizeof again, &created, err, sizeof err), 0);
  assert_false(created);
  assert_string_equal(again, tok);
  /* A client reads the same. */
  char client[MESH_APITOKEN_MAX + 1];
  assert_int_equal(mesh_apitoken_read(f->path, client, sizeof client, err, sizeof err), 0);
  assert_string_equal(client, tok);
  /* No temp file is left next to it. */
  assert_int_equal(ident_test_count(f->dir, "api.token.tmp"), 0);
}

static void test_two_tokens_differ(void **state)
{
  fixture *f = *state;
  char a[MESH_APITOKEN_MAX + 1], b[MESH_APITOKEN_MAX + 1];
  char err[256];
  bool created;
  assert_int_equal(mesh_apitoken_load_or_create(f->path, a, sizeof a, &created, err, sizeof err),
                   0);
  unlink(f->path);
  assert_int_equal(mesh_apitoken_load_or_create(f->path, b, sizeof b, &created, err, sizeof err),
                   0);
  assert_true(created);
  assert_string_not_equal(a, b);
}

static void test_operator_token(void **state)
{
  fixture *f = *state;
  char tok[MESH_APITOKEN_MAX + 1];
  char err[256];
  bool created;
  static const char mine[] = "my-own-token-0123456789\r\n";
  ident_test_write(f->path, mine, sizeof mine - 1, 0600);
  assert_int_equal(
      mesh_apitoken_load_or_create(f->path, tok, sizeof tok, &created, err, sizeof err), 0);
  assert_false(created);
  assert_string_equal(tok, "my-own-token-0123456789");
}

static void test_refused(void **state)
{
  fixture *f = *state;
  char tok[MESH_APITOKEN_MAX + 1];
  char err[256];
  bool created;
  static const char good[] = "0123456789abcdef0123456789abcdef\n";
  /* Readable or writable by others: refused with the fix in the message,
   * and the file is left alone. */
  static const mode_t open_modes[] = {0644, 0640, 0604, 0620, 0602, 0666};
  for (size_t i = 0; i < sizeof open_modes / sizeof open_modes[0]; i++) {
    unlink(f->path);
    ident_test_write(f->path, good, sizeof good - 1, open_modes[i]);
    err[0] = '\0';
    assert_int_equal(
        mesh_apitoken_load_or_create(f->path, tok, sizeof tok, &created, err, sizeof err), -EACCES);
    assert_non_null(strstr(err, "chmod 600"));
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, open_modes[i]);
  }
  /* A client still reads it: the daemon is the one that refuses. */
  assert_int_equal(mesh_apitoken_read(f->path, tok, sizeof tok, err, sizeof err), 0);

  /* A symlink, even to a good file of ours. */
  char target[700];
  snprintf(target, sizeof target, "%s/elsewhere", f->dir);
  ident_test_write(target, good, sizeof good - 1, 0600);
  unlink(f->path);
  assert_int_equal(symlink(target, f->path), 0);
  assert_int_equal(
      mesh_apitoken_load_or_create(f->path, tok, sizeof tok, &created, err, sizeof err), -ELOOP);
  assert_non_null(strstr(err, "symlink"));
  unlink(f->path);
  unlink(target);

  /* A directory. */
  assert_int_equal(mkdir(f->path, 0700), 0);
  assert_int_equal(
      mesh_apitoken_load_or_create(f->path, tok, sizeof tok, &created, err, sizeof err), -EINVAL);
  rmdir(f->path);

  /* Malformed contents. */
  static const char *const bad[] = {"",
                                    "\n",
                                    "short\n",
                                    "has a space in the middle ok\n",
                                    "tab\tinside-0123456789\n",
                                    "two\nlines-0123456789abcdef\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    unlink(f->path);
    ident_test_write(f->path, bad[i], strlen(bad[i]), 0600);
    assert_int_equal(
        mesh_apitoken_load_or_create(f->path, tok, sizeof tok, &created, err, sizeof err),
        -EBADMSG);
    assert_int_equal(mesh_apitoken_read(f->path, tok, sizeof tok, err, sizeof err), -EBADMSG);
  }
  /* Too long. */
  char big[MESH_APITOKEN_MAX + 10];
  memset(big, 'a', sizeof big);
  unlink(f->path);
  ident_test_write(f->path, big, sizeof big, 0600);
  assert_int_equal(
      mesh_apitoken_load_or_create(f->path, tok, sizeof tok, &created, err, sizeof err), -EBADMSG);
  assert_int_equal(mesh_apitoken_read(f->path, tok, sizeof tok, err, sizeof err), -EBADMSG);
  unlink(f->path);
  /* Missing, for a client: -ENOENT, nothing made. */
  assert_int_equal(mesh_apitoken_read(f->path, tok, sizeof tok, err, sizeof err), -ENOENT);
  assert_int_equal(access(f->path, F_OK), -1);
}

/* A failed write leaves no file and no temp file: the next start tries
 * again. */
static void test_failed_create(void **state)
{
  fixture *f = *state;
  char tok[MESH_APITOKEN_MAX + 1];
  char err[256] = "";
  bool created = true;
  mesh_durable_inject_fault(MESH_DURABLE_STEP_FSYNC, 0, -EIO);
  assert_int_equal(
      mesh_apitoken_load_or_create(f->path, tok, sizeof tok, &created, err, sizeof err), -EIO);
  assert_false(created);
  assert_non_null(strstr(err, "cannot create"));
  assert_int_equal(access(f->path, F_OK), -1);
  assert_int_equal(ident_test_count(f->dir, "api.token"), 0);
  assert_int_equal(
      mesh_apitoken_load_or_create(f->path, tok, sizeof tok, &created, err, sizeof err), 0);
  assert_true(created);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_created_then_reused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_two_tokens_differ, setup, teardown),
      cmocka_unit_test_setup_teardown(test_operator_token, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_create, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
