/*
 * Epochs: 1 on the first start, one more at every start (also across
 * processes), never the same twice, never backward; a corrupt file stops the
 * start with a message naming the file and is left as it was; a temp file
 * left by a crash is ignored and removed; reading changes nothing; a home
 * that cannot be written fails the advance.
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

#include "src/base/err.h"
#include "src/base/fileperm.h"
#include "src/identity/durable.h"
#include "src/identity/epoch.h"
#include "src/identity/homelock.h"
#include "support_identity.h"

typedef struct fixture {
  char dir[512];  /* the home directory */
  char path[600]; /* home/epoch */
  char tmp[600];  /* home/epoch.tmp */
} fixture;

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  ident_test_mkdtemp(f->dir, sizeof f->dir);
  ident_test_path(f->path, sizeof f->path, f->dir, "epoch");
  ident_test_path(f->tmp, sizeof f->tmp, f->dir, "epoch.tmp");
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture *f = *state;
  mesh_durable_inject_fault(MESH_DURABLE_STEP_NONE, 0, 0);
  chmod(f->dir, 0700);
  ident_test_rmdir(f->dir);
  free(f);
  return 0;
}

static uint64_t advance_ok(const char *home)
{
  uint64_t e = 0;
  char err[512] = "";
  int rc = mesh_epoch_advance(home, &e, err, sizeof err);
  if (rc != 0)
    fail_msg("advance failed: %d %s", rc, err);
  return e;
}

static void test_first_and_next(void **state)
{
  fixture *f = *state;
  uint64_t e = 99;
  char err[256];
  assert_int_equal(mesh_epoch_read(f->dir, &e, err, sizeof err), 0);
  assert_int_equal(e, 0);
  /* Reading a missing epoch creates nothing. */
  assert_int_equal(ident_test_count(f->dir, ""), 2); /* . and .. */

  assert_int_equal(advance_ok(f->dir), 1);
  char buf[64];
  assert_int_equal(ident_test_read(f->path, buf, sizeof buf), 2);
  assert_string_equal(buf, "1\n");
  assert_int_equal(advance_ok(f->dir), 2);
  assert_int_equal(advance_ok(f->dir), 3);
  assert_int_equal(ident_test_read(f->path, buf, sizeof buf), 2);
  assert_string_equal(buf, "3\n");
  assert_int_equal(ident_test_count(f->dir, "epoch.tmp"), 0);
}

static void test_read_changes_nothing(void **state)
{
  fixture *f = *state;
  ident_test_write(f->path, "41\n", 3, 0644);
  struct stat before, after;
  assert_int_equal(stat(f->path, &before), 0);
  for (int i = 0; i < 5; i++) {
    uint64_t e = 0;
    char err[256];
    assert_int_equal(mesh_epoch_read(f->dir, &e, err, sizeof err), 0);
    assert_int_equal(e, 41);
  }
  assert_int_equal(stat(f->path, &after), 0);
  assert_int_equal(before.st_ino, after.st_ino);
  assert_int_equal(before.st_size, after.st_size);
  char buf[64];
  ident_test_read(f->path, buf, sizeof buf);
  assert_string_equal(buf, "41\n");
  assert_int_equal(advance_ok(f->dir), 42);
}

/* Each "run" is its own process, as each start of meshd is. */
static void test_across_runs(void **state)
{
  fixture *f = *state;
  for (uint64_t run = 1; run <= 5; run++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      uint64_t e = 0;
      char err[256];
      int rc = mesh_epoch_advance(f->dir, &e, err, sizeof err);
      _exit(rc == 0 && e == run ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    uint64_t e = 0;
    char err[256];
    assert_int_equal(mesh_epoch_read(f->dir, &e, err, sizeof err), 0);
    assert_int_equal(e, run);
  }
}

static void test_corrupt_refused(void **state)
{
  fixture *f = *state;
  static const struct {
    const char *body;
    size_t len;
    const char *why;
  } cases[] = {
      {"", 0, "empty"},
      {"garbage\n", 8, "not a decimal"},
      {"-1\n", 3, "not a decimal"},
      {"+1\n", 3, "not a decimal"},
      {"18446744073709551616\n", 21, "64 bits"},
      {"99999999999999999999\n", 21, "64 bits"},
      {"12x\n", 4, "not a decimal"},
      {"12\nxx", 5, "newline"},
      {"12\n\n", 4, "not a decimal"},
      {"12", 2, "newline"},
      {" 12\n", 4, "not a decimal"},
      {"12 \n", 4, "not a decimal"},
      {"012\n", 4, "leading zeros"},
      {"\n", 1, "no number"},
      {"1\0\n", 3, "not a decimal"},
      {"0x10\n", 5, "not a decimal"},
      {"123456789012345678901234567890123456789\n", 40, "too long"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ident_test_write(f->path, cases[i].body, cases[i].len, 0644);
    uint64_t e = 7;
    char err[512] = "";
    assert_int_equal(mesh_epoch_read(f->dir, &e, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, f->path));
    if (strstr(err, cases[i].why) == NULL)
      fail_msg("case %zu: '%s' does not say '%s'", i, err, cases[i].why);
    err[0] = '\0';
    assert_int_equal(mesh_epoch_advance(f->dir, &e, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, f->path));
    /* Never a silent reset: the file is left exactly as it was. */
    char buf[128];
    assert_int_equal(ident_test_read(f->path, buf, sizeof buf), (long)cases[i].len);
    assert_memory_equal(buf, cases[i].body, cases[i].len);
  }

  /* A directory where the file should be. */
  unlink(f->path);
  assert_int_equal(mkdir(f->path, 0755), 0);
  uint64_t e;
  char err[512] = "";
  assert_int_equal(mesh_epoch_advance(f->dir, &e, err, sizeof err), -EBADMSG);
  assert_non_null(strstr(err, "not a regular file"));
  rmdir(f->path);
}

static void test_largest(void **state)
{
  fixture *f = *state;
  ident_test_write(f->path, "18446744073709551614\n", 21, 0644);
  uint64_t e = 0;
  char err[512] = "";
  assert_int_equal(mesh_epoch_advance(f->dir, &e, err, sizeof err), 0);
  assert_true(e == UINT64_MAX);
  assert_int_equal(mesh_epoch_read(f->dir, &e, err, sizeof err), 0);
  assert_true(e == UINT64_MAX);
  assert_int_equal(mesh_epoch_advance(f->dir, &e, err, sizeof err), -EOVERFLOW);
  assert_non_null(strstr(err, f->path));
  char buf[64];
  ident_test_read(f->path, buf, sizeof buf);
  assert_string_equal(buf, "18446744073709551615\n");
}

static void test_leftover_temp(void **state)
{
  fixture *f = *state;
  /* A crash after writing the temp file but before the rename: the temp file
   * (even with a higher number, or half written) is not the epoch. */
  ident_test_write(f->path, "4\n", 2, 0644);
  ident_test_write(f->tmp, "99", 2, 0644);
  uint64_t e = 0;
  char err[256];
  assert_int_equal(mesh_epoch_read(f->dir, &e, err, sizeof err), 0);
  assert_int_equal(e, 4);
  assert_int_equal(advance_ok(f->dir), 5);
  assert_int_equal(ident_test_count(f->dir, "epoch.tmp"), 0);

  /* A crash during the very first start. */
  unlink(f->path);
  ident_test_write(f->tmp, "1\n", 2, 0644);
  assert_int_equal(advance_ok(f->dir), 1);
  assert_int_equal(ident_test_count(f->dir, "epoch.tmp"), 0);
}

/* Runs mesh_epoch_advance in a child that cannot write to the home (as an
 * unprivileged user when the tests run as root, since root writes anywhere).
 * Returns the child's result code. */
static int advance_unprivileged(const char *home)
{
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
      _exit(2);
    uint64_t e = 0;
    char err[512];
    int rc = mesh_epoch_advance(home, &e, err, sizeof err);
    ssize_t w = write(fds[1], &rc, sizeof rc);
    _exit(w == sizeof rc ? 0 : 3);
  }
  close(fds[1]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  int rc = 1;
  assert_int_equal(read(fds[0], &rc, sizeof rc), sizeof rc);
  close(fds[0]);
  return rc;
}

static void test_unwritable_home(void **state)
{
  fixture *f = *state;
  assert_int_equal(advance_ok(f->dir), 1);
  assert_int_equal(advance_ok(f->dir), 2);
  /* The child must reach the directory but not write in it; the lock file
   * may be opened by anyone so that the write of the epoch is what fails. */
  char lock[700];
  ident_test_path(lock, sizeof lock, f->dir, "epoch.lock");
  assert_int_equal(chmod(lock, 0666), 0);
  assert_int_equal(chmod(f->dir, 0555), 0);
  int rc = advance_unprivileged(f->dir);
  assert_int_equal(rc, -EACCES);
  assert_int_equal(chmod(f->dir, 0700), 0);
  char buf[64];
  ident_test_read(f->path, buf, sizeof buf);
  assert_string_equal(buf, "2\n");
  assert_int_equal(advance_ok(f->dir), 3);

  /* A home that does not exist. */
  char missing[700];
  ident_test_path(missing, sizeof missing, f->dir, "missing");
  uint64_t e;
  char err[512] = "";
  assert_true(mesh_epoch_advance(missing, &e, err, sizeof err) < 0);
  assert_non_null(strstr(err, missing));
}

/* A failure at any step of the durable write fails the advance; the next
 * successful advance still returns more than any epoch handed out before. */
static void test_failed_writes(void **state)
{
  fixture *f = *state;
  uint64_t last = advance_ok(f->dir);
  static const mesh_durable_step steps[] = {MESH_DURABLE_STEP_WRITE, MESH_DURABLE_STEP_FSYNC,
                                            MESH_DURABLE_STEP_RENAME, MESH_DURABLE_STEP_SYNC_DIR};
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    mesh_durable_inject_fault(steps[i], 0, -EIO);
    uint64_t e = 0;
    char err[512] = "";
    assert_int_equal(mesh_epoch_advance(f->dir, &e, err, sizeof err), -EIO);
    assert_non_null(strstr(err, f->path));
    assert_int_equal(ident_test_count(f->dir, "epoch.tmp"), 0);
    char buf[64];
    ident_test_read(f->path, buf, sizeof buf);
    /* Before the rename the file is untouched. */
    if (steps[i] != MESH_DURABLE_STEP_SYNC_DIR) {
      char want[32];
      snprintf(want, sizeof want, "%llu\n", (unsigned long long)last);
      assert_string_equal(buf, want);
    }
    uint64_t next = advance_ok(f->dir);
    assert_true(next > last);
    last = next;
  }
}

/* Starts racing on one home never share an epoch. */
static void test_concurrent_advances(void **state)
{
  fixture *f = *state;
  enum { PROCS = 4, EACH = 10 };
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  for (int p = 0; p < PROCS; p++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      for (int i = 0; i < EACH; i++) {
        uint64_t e = 0;
        char err[256];
        if (mesh_epoch_advance(f->dir, &e, err, sizeof err) != 0)
          _exit(1);
        if (write(fds[1], &e, sizeof e) != sizeof e)
          _exit(2);
      }
      _exit(0);
    }
  }
  close(fds[1]);
  for (int p = 0; p < PROCS; p++) {
    int status;
    assert_true(wait(&status) > 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  int seen[PROCS * EACH + 1] = {0};
  uint64_t e;
  int count = 0;
  while (read(fds[0], &e, sizeof e) == sizeof e) {
    assert_true(e >= 1 && e <= PROCS * EACH);
    assert_int_equal(seen[e], 0);
    seen[e] = 1;
    count++;
  }
  close(fds[0]);
  assert_int_equal(count, PROCS * EACH);
  char err[256];
  assert_int_equal(mesh_epoch_read(f->dir, &e, err, sizeof err), 0);
  assert_int_equal(e, PROCS * EACH);
}

/* One daemon per home: a second holder (another open file, as another
 * process has) is refused with a message naming the lock and the PID;
 * after a release the lock is free again; the PID is in the file. */
static void test_home_lock(void **state)
{
  fixture *f = *state;
  mesh_home_lock a, b;
  char err[1024] = "";
  assert_int_equal(mesh_home_lock_take(f->dir, &a, err, sizeof err), 0);
  char want[1400];
  snprintf(want, sizeof want, "home %s is in use by meshd PID %ld (lock %s/meshd.lock)", f->dir,
           (long)getpid(), f->dir);
  assert_int_equal(mesh_home_lock_take(f->dir, &b, err, sizeof err), -EBUSY);
  assert_string_equal(err, want);
  assert_int_equal(b.fd, -1);
  /* The epoch is still readable and advanceable under the lock: advancing
   * has its own lock, and `meshd epoch` only reads. */
  uint64_t e = 0;
  assert_int_equal(mesh_epoch_read(f->dir, &e, err, sizeof err), 0);
  char path[700];
  ident_test_path(path, sizeof path, f->dir, "meshd.lock");
  FILE *fp = fopen(path, "r");
  assert_non_null(fp);
  long pid = 0;
  assert_int_equal(fscanf(fp, "%ld", &pid), 1);
  fclose(fp);
  assert_int_equal(pid, (long)getpid());
  mesh_home_lock_release(&a);
  mesh_home_lock_release(&a); /* twice is harmless */
  assert_int_equal(mesh_home_lock_take(f->dir, &b, err, sizeof err), 0);
  mesh_home_lock_release(&b);
  /* A home that is not there. */
  char missing[600];
  ident_test_path(missing, sizeof missing, f->dir, "nope");
  assert_int_equal(mesh_home_lock_take(missing, &b, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, "meshd.lock"));
}

static unsigned mode_of(const char *path)
{
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  return (unsigned)(st.st_mode & 07777);
}

/* Files meshd makes in the home are 0600 whatever the umask, also where an
 * older meshd left them 0644; the home it makes is 0700. */
static void test_private_modes(void **state)
{
  fixture *f = *state;
  char lock[700], elock[700], home[700], err[1024] = "";
  ident_test_path(lock, sizeof lock, f->dir, "meshd.lock");
  ident_test_path(elock, sizeof elock, f->dir, "epoch.lock");
  static const mode_t masks[] = {0, 022, 002};
  for (size_t i = 0; i < sizeof masks / sizeof masks[0]; i++) {
    mode_t old = umask(masks[i]);
    ident_test_write(f->path, "4\n", 2, 0644);
    ident_test_write(lock, "", 0, 0666);
    ident_test_write(elock, "", 0, 0644);
    advance_ok(f->dir);
    mesh_home_lock a;
    assert_int_equal(mesh_home_lock_take(f->dir, &a, err, sizeof err), 0);
    mesh_home_lock_release(&a);
    umask(old);
    assert_int_equal(mode_of(f->path), 0600);
    assert_int_equal(mode_of(lock), 0600);
    assert_int_equal(mode_of(elock), 0600);
  }
  /* A home made under umask 0 or 0277 is 0700 all the same. */
  static const mode_t home_masks[] = {0, 0277};
  for (size_t i = 0; i < sizeof home_masks / sizeof home_masks[0]; i++) {
    ident_test_path(home, sizeof home, f->dir, i == 0 ? "h0" : "h1");
    mode_t old = umask(home_masks[i]);
    assert_int_equal(mesh_home_prepare(home, err, sizeof err), 0);
    umask(old);
    assert_int_equal(mode_of(home), 0700);
    assert_int_equal(rmdir(home), 0);
  }
}

/* A home others may write, or one another user owns, is refused with the
 * command that fixes it; read-only for others is fine. */
static void test_unsafe_home_refused(void **state)
{
  fixture *f = *state;
  char err[1024] = "", want[2000];
  static const mode_t bad[] = {0777, 0770, 0707, 0720, 0702, 01777};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(chmod(f->dir, bad[i]), 0);
    assert_int_equal(mesh_home_check(f->dir, err, sizeof err), -EACCES);
    assert_int_equal(mesh_home_prepare(f->dir, err, sizeof err), -EACCES);
    snprintf(want, sizeof want,
             "home %s is writable by group or others (mode %04o), so they could replace its "
             "keys; run: chmod 700 %s",
             f->dir, (unsigned)bad[i], f->dir);
    assert_string_equal(err, want);
  }
  static const mode_t good[] = {0700, 0750, 0755, 0500};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    assert_int_equal(chmod(f->dir, good[i]), 0);
    assert_int_equal(mesh_home_check(f->dir, err, sizeof err), 0);
  }
  assert_int_equal(chmod(f->dir, 0700), 0);
  /* Not a directory. */
  ident_test_write(f->path, "1\n", 2, 0600);
  assert_int_equal(mesh_home_check(f->path, err, sizeof err), -ENOTDIR);
  if (geteuid() != 0) {
    print_message("skipped: home owned by another user (needs root to chown)\n");
    return;
  }
  assert_int_equal(chown(f->dir, 1, 1), 0);
  assert_int_equal(mesh_home_prepare(f->dir, err, sizeof err), -EACCES);
  snprintf(want, sizeof want,
           "home %s is owned by uid 1, but meshd runs as uid 0; run: chown 0 %s (or use a home of "
           "your own)",
           f->dir, f->dir);
  assert_string_equal(err, want);
  assert_int_equal(chown(f->dir, 0, 0), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_first_and_next, setup, teardown),
      cmocka_unit_test_setup_teardown(test_private_modes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unsafe_home_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_changes_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_across_runs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_corrupt_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_largest, setup, teardown),
      cmocka_unit_test_setup_teardown(test_leftover_temp, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unwritable_home, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_writes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_advances, setup, teardown),
      cmocka_unit_test_setup_teardown(test_home_lock, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
