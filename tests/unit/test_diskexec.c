/*
 * Disk executor: model ID validation, deletes relative to the models
 * directory that never follow links or leave it, idempotence and error
 * reporting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "coord/diskexec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct fixture {
  char root[512];    /* a fresh directory for this test */
  char models[600];  /* root/models */
  char outside[600]; /* root/outside: must never be touched */
  mesh_diskexec *d;
} fixture;

static void path_join(char *out, size_t cap, const char *a, const char *b)
{
  int n = snprintf(out, cap, "%s/%s", a, b);
  assert_true(n > 0 && (size_t)n < cap);
}

static void write_file(const char *path, size_t bytes)
{
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  for (size_t i = 0; i < bytes; i++)
    fputc('x', f);
  assert_int_equal(fclose(f), 0);
}

static bool exists(const char *path)
{
  struct stat st;
  return lstat(path, &st) == 0;
}

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  const char *base = getenv("MESH_TEST_TMP");
  if (base == NULL)
    base = "/tmp";
  mkdir(base, 0755);
  snprintf(f->root, sizeof f->root, "%s/diskexec.XXXXXX", base);
  assert_non_null(mkdtemp(f->root));
  chmod(f->root, 0755);
  path_join(f->models, sizeof f->models, f->root, "models");
  path_join(f->outside, sizeof f->outside, f->root, "outside");
  assert_int_equal(mkdir(f->outside, 0755), 0);
  char p[700];
  path_join(p, sizeof p, f->outside, "precious");
  write_file(p, 10);
  assert_int_equal(mesh_diskexec_open(f->models, &f->d), 0);
  *state = f;
  return 0;
}

static void rm_rf(const char *path)
{
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", path, path);
  if (system(cmd) != 0)
    fprintf(stderr, "could not clean %s\n", path);
}

static int teardown(void **state)
{
  fixture *f = *state;
  mesh_diskexec_close(f->d);
  rm_rf(f->root);
  free(f);
  return 0;
}

static int valid(const char *id)
{
  return mesh_model_id_validate(id, strlen(id), NULL);
}

static void test_model_id_valid(void **state)
{
  (void)state;
  assert_int_equal(valid("meta-llama/Llama-3.2-1B-Instruct"), 0);
  assert_int_equal(valid("a/b"), 0);
  assert_int_equal(valid("mlx-community/Qwen2.5_0.5B.q4"), 0);
  char dir[MESH_MODEL_DIR_MAX];
  assert_int_equal(mesh_model_dir_name("mlx-community/Qwen3-8B", NULL, dir, sizeof dir), 0);
  assert_string_equal(dir, "mlx-community--Qwen3-8B");
}

/* Each (model, revision) has its own directory; main keeps the plain name. */
static void test_model_dir_revision(void **state)
{
  (void)state;
  char dir[MESH_MODEL_DIR_MAX];
  assert_int_equal(mesh_model_dir_name("org/name", "main", dir, sizeof dir), 0);
  assert_string_equal(dir, "org--name");
  assert_int_equal(mesh_model_dir_name("org/name", "v2", dir, sizeof dir), 0);
  assert_string_equal(dir, "org--name@v2");
  assert_int_equal(mesh_model_dir_name("org/name", "refs/pr/1", dir, sizeof dir), 0);
  assert_string_equal(dir, "org--name@refs%2Fpr%2F1");
  assert_int_equal(
      mesh_model_dir_name("org/name", "0123456789abcdef0123456789abcdef01234567", dir, sizeof dir),
      0);
  assert_string_equal(dir, "org--name@0123456789abcdef0123456789abcdef01234567");
  /* Distinct revisions never share a name ("a/b" versus "a%2Fb" cannot
   * collide: '%' is not a revision character). */
  assert_int_equal(mesh_model_dir_name("org/name", "a%2Fb", dir, sizeof dir), -EINVAL);
  assert_int_equal(mesh_model_dir_name("org/name", "..", dir, sizeof dir), -EINVAL);
  assert_int_equal(mesh_model_dir_name("org/name", "/x", dir, sizeof dir), -EINVAL);
  /* Too small a buffer, and a pair longer than one path component. */
  char small[12];
  assert_int_equal(mesh_model_dir_name("org/name", "v2", small, sizeof small), -ENAMETOOLONG);
  char id[MESH_MODEL_ID_MAX];
  memset(id, 'x', 96);
  id[96] = '/';
  memset(id + 97, 'y', 96);
  id[193] = '\0';
  char rev[MESH_REVISION_MAX + 1];
  memset(rev, '/', MESH_REVISION_MAX);
  rev[0] = 'r';
  rev[MESH_REVISION_MAX] = '\0';
  for (size_t i = 1; i < MESH_REVISION_MAX; i += 2)
    rev[i] = 'r';
  assert_int_equal(mesh_revision_validate(rev, MESH_REVISION_MAX), 0);
  assert_int_equal(mesh_model_dir_name(id, rev, dir, sizeof dir), -ENAMETOOLONG);
  assert_int_equal(mesh_model_dir_name(id, "main", dir, sizeof dir), 0);
}

static void test_model_id_refused(void **state)
{
  (void)state;
  const char *bad[] = {"../../etc", "/abs",  "/abs/x", "a/../b", "a/b/c", "a",  "a/",
                       "/a",        "a//b",  "./b",    "a/.",    "a/..",  "..", "a b/c",
                       "a/b\\c",    "a/b;c", "a--b/c", "",       "a/b\n", "ü/x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *why = NULL;
    assert_int_equal(mesh_model_id_validate(bad[i], strlen(bad[i]), &why), -EINVAL);
    assert_non_null(why);
  }
  /* A NUL inside: "a/b\0c" of length 5. */
  assert_int_equal(mesh_model_id_validate("a/b\0c", 5, NULL), -EINVAL);
  /* Parts longer than 96 characters. */
  char longid[300];
  memset(longid, 'x', sizeof longid);
  longid[97] = '/';
  longid[98] = 'y';
  assert_int_equal(mesh_model_id_validate(longid, 99, NULL), -EINVAL);
  longid[96] = '/';
  longid[97] = 'y';
  assert_int_equal(mesh_model_id_validate(longid, 98, NULL), 0);
  memset(longid + 97, 'y', 97);
  assert_int_equal(mesh_model_id_validate(longid, 97 + 97, NULL), -EINVAL);
  char dir[8];
  assert_int_equal(mesh_model_dir_name("../../etc", NULL, dir, sizeof dir), -EINVAL);
  assert_int_equal(mesh_model_dir_name("abcd/efgh", NULL, dir, sizeof dir), -ENAMETOOLONG);
}

static void test_revision(void **state)
{
  (void)state;
  assert_int_equal(mesh_revision_validate("main", 4), 0);
  assert_int_equal(mesh_revision_validate("refs/pr/1", 9), 0);
  assert_int_equal(mesh_revision_validate("0123456789abcdef0123456789abcdef01234567", 40), 0);
  assert_int_equal(mesh_revision_validate("", 0), -EINVAL);
  assert_int_equal(mesh_revision_validate("/main", 5), -EINVAL);
  assert_int_equal(mesh_revision_validate("a/../b", 6), -EINVAL);
  assert_int_equal(mesh_revision_validate("ma in", 5), -EINVAL);
}

static void test_delete_missing_is_success(void **state)
{
  fixture *f = *state;
  assert_int_equal(mesh_diskexec_delete(f->d, "org--absent"), 0);
  assert_int_equal(mesh_diskexec_delete(f->d, "org--absent"), 0);
}

/* Marks models/name as meshd's, as the download client does when it makes
 * a model directory. */
static void mark_dir(mesh_diskexec *d, const char *name)
{
  char text[MESH_DISKEXEC_MARKER_MAX];
  assert_int_equal(mesh_diskexec_marker_text("12D3KooWtest", "org/x", "main", text, sizeof text),
                   0);
  assert_int_equal(mesh_diskexec_adopt(d, name, text), 0);
}

static void make_tree(const char *models, const char *name, int files)
{
  char dir[800], sub[900], p[1000];
  path_join(dir, sizeof dir, models, name);
  assert_int_equal(mkdir(dir, 0755), 0);
  path_join(sub, sizeof sub, dir, "sub");
  assert_int_equal(mkdir(sub, 0755), 0);
  for (int i = 0; i < files; i++) {
    char leaf[32];
    snprintf(leaf, sizeof leaf, "f%d.safetensors", i);
    path_join(p, sizeof p, i % 2 ? sub : dir, leaf);
    write_file(p, 100);
  }
}

static void test_delete_tree(void **state)
{
  fixture *f = *state;
  make_tree(f->models, "org--model", 6);
  mark_dir(f->d, "org--model");
  char dir[800];
  path_join(dir, sizeof dir, f->models, "org--model");
  bool present;
  uint64_t bytes;
  uint32_t partials;
  assert_int_equal(mesh_diskexec_inspect(f->d, "org--model", &present, &bytes, &partials), 0);
  assert_true(present);
  assert_int_equal(bytes, 600);
  assert_int_equal(partials, 0);
  assert_int_equal(mesh_diskexec_delete(f->d, "org--model"), 0);
  assert_false(exists(dir));
  assert_int_equal(mesh_diskexec_inspect(f->d, "org--model", &present, &bytes, &partials), 0);
  assert_false(present);
}

/* More entries than the per-call budget: the one-call inspection still
 * sees every file (no entry count makes a model look incomplete). */
static void test_inspect_beyond_budget(void **state)
{
  fixture *f = *state;
  make_tree(f->models, "org--model", 50);
  mesh_diskexec_set_budget(f->d, 3);
  bool present;
  uint64_t bytes;
  uint32_t partials;
  assert_int_equal(mesh_diskexec_inspect(f->d, "org--model", &present, &bytes, &partials), 0);
  assert_true(present);
  assert_int_equal(bytes, 5000);
  assert_int_equal(partials, 0);
}

/* Deleting one revision's directory leaves another revision's alone. */
static void test_delete_one_revision(void **state)
{
  fixture *f = *state;
  char v2[MESH_MODEL_DIR_MAX], pr[MESH_MODEL_DIR_MAX];
  assert_int_equal(mesh_model_dir_name("org/model", "v2", v2, sizeof v2), 0);
  assert_int_equal(mesh_model_dir_name("org/model", "refs/pr/1", pr, sizeof pr), 0);
  make_tree(f->models, "org--model", 3);
  mark_dir(f->d, "org--model");
  make_tree(f->models, v2, 4);
  mark_dir(f->d, v2);
  make_tree(f->models, pr, 5);
  mark_dir(f->d, pr);
  bool present;
  uint64_t bytes;
  uint32_t partials;
  assert_int_equal(mesh_diskexec_delete(f->d, v2), 0);
  assert_int_equal(mesh_diskexec_inspect(f->d, v2, &present, &bytes, &partials), 0);
  assert_false(present);
  assert_int_equal(mesh_diskexec_inspect(f->d, "org--model", &present, &bytes, &partials), 0);
  assert_true(present);
  assert_int_equal(bytes, 300);
  assert_int_equal(mesh_diskexec_inspect(f->d, pr, &present, &bytes, &partials), 0);
  assert_true(present);
  assert_int_equal(bytes, 500);
  assert_int_equal(mesh_diskexec_delete(f->d, pr), 0);
  assert_int_equal(mesh_diskexec_inspect(f->d, "org--model", &present, &bytes, &partials), 0);
  assert_true(present);
}

static void test_delete_bounded_per_call(void **state)
{
  fixture *f = *state;
  make_tree(f->models, "org--big", 50);
  mark_dir(f->d, "org--big");
  mesh_diskexec_set_budget(f->d, 10);
  int calls = 0, rc;
  do {
    rc = mesh_diskexec_delete(f->d, "org--big");
    calls++;
  } while (rc == -EAGAIN && calls < 100);
  assert_int_equal(rc, 0);
  /* 53 entries (two directories, 50 files, plus re-visits of the
   * directories) at 10 per call: more than 5 calls, far fewer than 100. */
  assert_true(calls > 5);
  assert_true(calls < 20);
}

static void test_symlinks_not_followed(void **state)
{
  fixture *f = *state;
  char dir[800], p[1000];
  path_join(dir, sizeof dir, f->models, "org--links");
  assert_int_equal(mkdir(dir, 0755), 0);
  path_join(p, sizeof p, dir, "to-outside-dir");
  assert_int_equal(symlink(f->outside, p), 0);
  char target[800];
  path_join(target, sizeof target, f->outside, "precious");
  path_join(p, sizeof p, dir, "to-outside-file");
  assert_int_equal(symlink(target, p), 0);
  path_join(p, sizeof p, dir, "dangling");
  assert_int_equal(symlink("/nonexistent/x", p), 0);
  mark_dir(f->d, "org--links");
  assert_int_equal(mesh_diskexec_delete(f->d, "org--links"), 0);
  assert_false(exists(dir));
  assert_true(exists(f->outside));
  assert_true(exists(target));

  /* The model directory itself is a link to the outside (models kept on
   * another disk): without a marker behind it, it is left alone; with one,
   * removed as a link and its target kept. */
  path_join(p, sizeof p, f->models, "org--dirlink");
  assert_int_equal(symlink(f->outside, p), 0);
  assert_int_equal(mesh_diskexec_delete(f->d, "org--dirlink"), -EPERM);
  assert_true(exists(p));
  mark_dir(f->d, "org--dirlink");
  assert_int_equal(mesh_diskexec_delete(f->d, "org--dirlink"), 0);
  assert_false(exists(p));
  assert_true(exists(target));
  char outside_mark[900];
  path_join(outside_mark, sizeof outside_mark, f->outside, MESH_DISKEXEC_MARKER);
  assert_true(exists(outside_mark));
}

/* A model directory that is a link (models kept on another disk) is
 * inspected through it, as it was written: present with its files' bytes.
 * A dangling one is missing. */
static void test_inspect_through_dir_link(void **state)
{
  fixture *f = *state;
  make_tree(f->root, "elsewhere", 4);
  char target[800], p[1000];
  path_join(target, sizeof target, f->root, "elsewhere");
  path_join(p, sizeof p, f->models, "org--linked");
  assert_int_equal(symlink(target, p), 0);
  bool present;
  uint64_t bytes;
  uint32_t partials;
  assert_int_equal(mesh_diskexec_inspect(f->d, "org--linked", &present, &bytes, &partials), 0);
  assert_true(present);
  assert_int_equal(bytes, 400);
  path_join(p, sizeof p, f->models, "org--dangling");
  assert_int_equal(symlink("/nonexistent/x", p), 0);
  assert_int_equal(mesh_diskexec_inspect(f->d, "org--dangling", &present, &bytes, &partials), 0);
  assert_false(present);
}

/* A directory meshd did not make (no marker, a marker that is a link, or a
 * file that is not a marker) is never removed: -EPERM and every file kept.
 * A delete stopped after any slice still finds the marker: it goes last. */
static void test_delete_only_owned(void **state)
{
  fixture *f = *state;
  char dir[800], p[1000];
  make_tree(f->models, "org--theirs", 4);
  path_join(dir, sizeof dir, f->models, "org--theirs");
  path_join(p, sizeof p, dir, "f0.safetensors");
  assert_int_equal(mesh_diskexec_delete(f->d, "org--theirs"), -EPERM);
  assert_true(exists(p));
  char m[900];
  path_join(m, sizeof m, dir, MESH_DISKEXEC_MARKER);
  assert_int_equal(symlink("/etc/hostname", m), 0);
  assert_int_equal(mesh_diskexec_delete(f->d, "org--theirs"), -EPERM);
  assert_int_equal(unlink(m), 0);
  write_file(m, 20); /* a file of that name, but not a marker's content */
  assert_int_equal(mesh_diskexec_delete(f->d, "org--theirs"), -EPERM);
  assert_true(exists(p));
  /* A plain file in a model directory's place is not meshd's either. */
  path_join(p, sizeof p, f->models, "org--file");
  write_file(p, 10);
  assert_int_equal(mesh_diskexec_delete(f->d, "org--file"), -EPERM);
  assert_true(exists(p));

  /* Owned: deleted one entry per call, the marker there after every slice
   * but the last. */
  make_tree(f->models, "org--mine", 6);
  mark_dir(f->d, "org--mine");
  path_join(dir, sizeof dir, f->models, "org--mine");
  path_join(m, sizeof m, dir, MESH_DISKEXEC_MARKER);
  mesh_diskexec_set_budget(f->d, 3);
  int calls = 0, rc;
  while ((rc = mesh_diskexec_delete(f->d, "org--mine")) == -EAGAIN) {
    assert_true(exists(m));
    calls++;
    assert_true(calls < 100);
  }
  assert_int_equal(rc, 0);
  assert_false(exists(dir));
  assert_true(calls > 2);
  /* Adopting needs the directory. */
  assert_int_equal(mesh_diskexec_adopt(f->d, "org--mine", "x"), -ENOENT);
}

static void test_bad_names_refused(void **state)
{
  fixture *f = *state;
  assert_int_equal(mesh_diskexec_delete(f->d, ".."), -EINVAL);
  assert_int_equal(mesh_diskexec_delete(f->d, "."), -EINVAL);
  assert_int_equal(mesh_diskexec_delete(f->d, ""), -EINVAL);
  assert_int_equal(mesh_diskexec_delete(f->d, "../outside"), -EINVAL);
  assert_int_equal(mesh_diskexec_delete(f->d, "/etc"), -EINVAL);
  assert_true(exists(f->outside));
}

static int appear_count;

static void appear_hook(void *arg, int at, const char *name)
{
  (void)arg;
  if (strcmp(name, "org--busy") != 0)
    return;
  char p[300];
  snprintf(p, sizeof p, "%s/late.partial", name);
  int fd = openat(at, p, O_CREAT | O_WRONLY, 0644);
  if (fd >= 0) {
    close(fd);
    appear_count++;
  }
}

static void test_file_appears_during_delete(void **state)
{
  fixture *f = *state;
  make_tree(f->models, "org--busy", 4);
  mark_dir(f->d, "org--busy");
  appear_count = 0;
  mesh_diskexec_set_hook(f->d, appear_hook, NULL);
  assert_int_equal(mesh_diskexec_delete(f->d, "org--busy"), -ENOTEMPTY);
  assert_int_equal(appear_count, 1);
  /* The marker was written back: the retry is still allowed. Once nothing
   * appears any more, it finishes. */
  mesh_diskexec_set_hook(f->d, NULL, NULL);
  assert_int_equal(mesh_diskexec_delete(f->d, "org--busy"), 0);
}

/* A read-only subdirectory makes the delete fail with EACCES. Root ignores
 * permissions, so as root the delete runs in a child that dropped to an
 * unprivileged user owning the tree. */
static void test_read_only_subdir(void **state)
{
  fixture *f = *state;
  char dir[800], ro[900], p[1000];
  make_tree(f->models, "org--ro", 0);
  mark_dir(f->d, "org--ro");
  path_join(dir, sizeof dir, f->models, "org--ro");
  path_join(ro, sizeof ro, dir, "ro");
  assert_int_equal(mkdir(ro, 0755), 0);
  path_join(p, sizeof p, ro, "weights.bin");
  write_file(p, 10);
  assert_int_equal(chmod(ro, 0555), 0);
  int rc;
  if (geteuid() != 0) {
    rc = mesh_diskexec_delete(f->d, "org--ro");
  } else {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "chown -R 65534:65534 '%s'", dir);
    assert_int_equal(system(cmd), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      int r = -EPERM;
      if (setgid(65534) == 0 && setuid(65534) == 0)
        r = mesh_diskexec_delete(f->d, "org--ro");
      ssize_t w = write(fds[1], &r, sizeof r);
      _exit(w == sizeof r ? 0 : 1);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], &rc, sizeof rc), (ssize_t)sizeof rc);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
  }
  assert_int_equal(rc, -EACCES);
  assert_true(exists(p));
  /* Fixing the permission lets the next attempt finish. */
  assert_int_equal(chmod(ro, 0755), 0);
  assert_int_equal(mesh_diskexec_delete(f->d, "org--ro"), 0);
  assert_false(exists(dir));
}

static void test_inspect_and_space(void **state)
{
  fixture *f = *state;
  char dir[800], p[1000];
  path_join(dir, sizeof dir, f->models, "org--partial");
  assert_int_equal(mkdir(dir, 0755), 0);
  path_join(p, sizeof p, dir, "model.safetensors.partial");
  write_file(p, 42);
  bool present;
  uint64_t bytes;
  uint32_t partials;
  assert_int_equal(mesh_diskexec_inspect(f->d, "org--partial", &present, &bytes, &partials), 0);
  assert_true(present);
  assert_int_equal(bytes, 42);
  assert_int_equal(partials, 1);
  uint64_t free_bytes = 0;
  assert_int_equal(mesh_diskexec_free_space(f->d, &free_bytes), 0);
  assert_true(free_bytes > 0);
}

/* 10 x 10 directories of 50 one-byte files under models/name: 5,000 files. */
static void make_many(const char *models, const char *name)
{
  char top[800], d1[900], d2[1000], p[1100];
  path_join(top, sizeof top, models, name);
  assert_int_equal(mkdir(top, 0755), 0);
  for (int a = 0; a < 10; a++) {
    char n1[16];
    snprintf(n1, sizeof n1, "a%d", a);
    path_join(d1, sizeof d1, top, n1);
    assert_int_equal(mkdir(d1, 0755), 0);
    for (int b = 0; b < 10; b++) {
      char n2[16];
      snprintf(n2, sizeof n2, "b%d", b);
      path_join(d2, sizeof d2, d1, n2);
      assert_int_equal(mkdir(d2, 0755), 0);
      for (int c = 0; c < 50; c++) {
        char leaf[16];
        snprintf(leaf, sizeof leaf, c == 0 ? "f%d.partial" : "f%d", c);
        path_join(p, sizeof p, d2, leaf);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "x", 1), 1);
        close(fd);
      }
    }
  }
}

/* A big tree with an entry budget far above its size still goes in slices:
 * each call stops when its time is up. 5,000 files in nested directories
 * cannot be unlinked in 1 ms, so more than one call is needed, and every
 * call removes something (the count stays far below the entries). */
static void test_delete_bounded_by_time(void **state)
{
  fixture *f = *state;
  char top[800];
  path_join(top, sizeof top, f->models, "org--many");
  make_many(f->models, "org--many");
  mark_dir(f->d, "org--many");
  mesh_diskexec_set_budget(f->d, 1000000);
  mesh_diskexec_set_slice_ms(f->d, 1);
  int calls = 0, rc;
  do {
    rc = mesh_diskexec_delete(f->d, "org--many");
    calls++;
  } while (rc == -EAGAIN && calls < 5000);
  assert_int_equal(rc, 0);
  assert_false(exists(top));
  assert_true(calls > 1);
  assert_true(calls < 5000 / 32);
  print_message("5000 files deleted in %d slices of 1 ms\n", calls);
}

/* An inspection in slices finds what the one-call inspection finds, in as
 * many steps as its budget asks, keeping its place between steps. */
static void test_scan_in_slices(void **state)
{
  fixture *f = *state;
  make_many(f->models, "org--many");
  mark_dir(f->d, "org--many");
  bool present;
  uint64_t bytes;
  uint32_t partials;
  assert_int_equal(mesh_diskexec_inspect(f->d, "org--many", &present, &bytes, &partials), 0);
  assert_true(present);
  assert_int_equal(bytes, 5000);
  assert_int_equal(partials, 100);
  mesh_diskexec_set_budget(f->d, 500);
  mesh_diskexec_set_slice_ms(f->d, 0); /* entries only: the step count is exact */
  mesh_diskexec_scan *s;
  assert_int_equal(mesh_diskexec_scan_new(f->d, "org--many", &s), 0);
  int steps = 0, rc;
  do {
    rc = mesh_diskexec_scan_step(s);
    steps++;
  } while (rc == -EAGAIN && steps < 1000);
  assert_int_equal(rc, 0);
  mesh_diskexec_scan_result(s, &present, &bytes, &partials);
  mesh_diskexec_scan_free(s);
  assert_true(present);
  assert_int_equal(bytes, 5000);
  assert_int_equal(partials, 100);
  /* Every read counts: 5,000 files, 110 directories, and each directory's
   * ".", ".." and end: 5,443 reads at 500 a step. */
  assert_int_equal(steps, 11);
  /* A missing directory: nothing there, done at the first step. */
  assert_int_equal(mesh_diskexec_scan_new(f->d, "org--absent", &s), 0);
  assert_int_equal(mesh_diskexec_scan_step(s), 0);
  mesh_diskexec_scan_result(s, &present, &bytes, &partials);
  assert_false(present);
  mesh_diskexec_scan_free(s);
  assert_int_equal(mesh_diskexec_scan_new(f->d, "../x", &s), -EINVAL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_model_id_valid),
      cmocka_unit_test(test_model_id_refused),
      cmocka_unit_test(test_revision),
      cmocka_unit_test(test_model_dir_revision),
      cmocka_unit_test_setup_teardown(test_delete_one_revision, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete_missing_is_success, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete_tree, setup, teardown),
      cmocka_unit_test_setup_teardown(test_inspect_beyond_budget, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete_bounded_per_call, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete_bounded_by_time, setup, teardown),
      cmocka_unit_test_setup_teardown(test_scan_in_slices, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete_only_owned, setup, teardown),
      cmocka_unit_test_setup_teardown(test_symlinks_not_followed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_inspect_through_dir_link, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_names_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_appears_during_delete, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_only_subdir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_inspect_and_space, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
