/*
 * The disk executor: bounded recursive deletes relative to the models
 * directory, inspection in slices and free space. See diskexec.h.
 */
#include "coord/diskexec.h"

#include "src/base/clock.h"
#include "src/base/err.h"

#include <dirent.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct mesh_diskexec {
  int root;                /* the models directory, O_DIRECTORY */
  uint32_t budget;         /* entries per call */
  uint32_t slice_ms;       /* time per delete call, 0 = no time bound */
  mesh_diskexec_hook hook; /* test hook, may be NULL */
  void *hook_arg;          /* passed to hook */
};

/* Per-call walk state (a delete call or a scan step). */
typedef struct walk {
  mesh_diskexec *d;
  uint32_t left;         /* entries this call may still visit */
  uint32_t visited;      /* entries visited so far, for the clock check */
  mesh_time_ms deadline; /* stop at this time, 0 = no time bound */
} walk;

int mesh_diskexec_open(const char *models_dir, mesh_diskexec **out)
{
  if (mkdir(models_dir, 0755) != 0 && errno != EEXIST)
    return -errno;
  int fd = open(models_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  mesh_diskexec *d = calloc(1, sizeof *d);
  if (d == NULL) {
    close(fd);
    return -ENOMEM;
  }
  d->root = fd;
  d->budget = MESH_DISKEXEC_DEFAULT_BUDGET;
  d->slice_ms = MESH_DISKEXEC_DEFAULT_SLICE_MS;
  *out = d;
  return 0;
}

void mesh_diskexec_close(mesh_diskexec *d)
{
  if (d == NULL)
    return;
  close(d->root);
  free(d);
}

void mesh_diskexec_set_hook(mesh_diskexec *d, mesh_diskexec_hook hook, void *arg)
{
  d->hook = hook;
  d->hook_arg = arg;
}

void mesh_diskexec_set_budget(mesh_diskexec *d, uint32_t budget)
{
  d->budget = budget > 0 ? budget : 1;
}

void mesh_diskexec_set_slice_ms(mesh_diskexec *d, uint32_t ms)
{
  d->slice_ms = ms;
}

/* Whether this call has used its share: its entries, or its time.
 * The clock is read every CLOCK_EVERY entries: an unlink costs microseconds,
 * a clock read tens of nanoseconds, so the check costs nothing and a slice
 * overruns its time by at most CLOCK_EVERY entries. */
#define CLOCK_EVERY 32
static bool walk_spent(walk *w)
{
  if (w->left == 0)
    return true;
  /* Not before 2 * MAX_DEPTH entries: a call first walks down again to where
   * the last one stopped, and must get further than that. */
  if (w->deadline != 0 && w->visited >= 2 * MESH_DISKEXEC_MAX_DEPTH &&
      w->visited % CLOCK_EVERY == 0 && mesh_clock_now_ms() >= w->deadline)
    return true;
  w->left--;
  w->visited++;
  return false;
}

/*
 * The model directory dir (open, named name relative to at) holds nothing
 * but its marker: the marker goes, then the directory, so that a delete
 * stopped in any earlier slice (or by a crash) still finds it marked. When
 * the directory cannot go after all (a file appeared meanwhile: ENOTEMPTY)
 * the marker is written back, so that the retry is still allowed. Not
 * atomic: a crash between the two steps leaves an empty, unmarked
 * directory, which a later delete refuses and the operator removes.
 */
static int remove_marked_dir(DIR *dir, int at, const char *name)
{
  char text[MESH_DISKEXEC_MARKER_MAX];
  ssize_t k = -1;
  int mfd = openat(dirfd(dir), MESH_DISKEXEC_MARKER, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (mfd >= 0) {
    k = pread(mfd, text, sizeof text - 1, 0);
    close(mfd);
  }
  if (unlinkat(dirfd(dir), MESH_DISKEXEC_MARKER, 0) != 0 && errno != ENOENT)
    return -errno;
  if (unlinkat(at, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
    return 0;
  int rc = -errno;
  if (k > 0) {
    text[k] = '\0';
    mesh_diskexec_mark_fd(dirfd(dir), text);
  }
  return rc;
}

/*
 * Removes name (relative to at) and everything under it. A symbolic link
 * or any other non-directory is unlinked as itself. Entries that vanish while
 * we work are fine: someone else removed them.
 */
static int remove_at(walk *w, int at, const char *name, int depth)
{
  /* depth 0 is the model directory: its marker goes last (below). */
  struct stat st;
  if (walk_spent(w))
    return -EAGAIN;
  if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? 0 : -errno;
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(at, name, 0) != 0 && errno != ENOENT)
      return -errno;
    return 0;
  }
  if (depth >= MESH_DISKEXEC_MAX_DEPTH)
    return -ELOOP;
  int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : -errno;
  DIR *dir = fdopendir(fd);
  if (dir == NULL) {
    int e = -errno;
    close(fd);
    return e;
  }
  int rc = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(dir);
    if (de == NULL) {
      if (errno != 0)
        rc = -errno;
      break;
    }
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    if (depth == 0 && strcmp(de->d_name, MESH_DISKEXEC_MARKER) == 0)
      continue;
    rc = remove_at(w, dirfd(dir), de->d_name, depth + 1);
    if (rc != 0)
      break;
  }
  if (rc == 0 && w->d->hook != NULL)
    w->d->hook(w->d->hook_arg, at, name);
  if (rc == 0 && depth == 0) {
    rc = remove_marked_dir(dir, at, name);
    closedir(dir);
    return rc;
  }
  closedir(dir);
  if (rc != 0)
    return rc;
  if (unlinkat(at, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
    return -errno;
  return 0;
}

int mesh_diskexec_marker_text(const char *peer_text, const char *model_id, const char *revision,
                              char *buf, size_t cap)
{
  int n = snprintf(buf, cap, "%speer %s\nmodel %s\nrevision %s\n", MESH_DISKEXEC_MARKER_MAGIC,
                   peer_text, model_id, revision);
  if (n < 0 || (size_t)n >= cap)
    return -ENAMETOOLONG;
  return 0;
}

int mesh_diskexec_mark_fd(int dirfd, const char *text)
{
  int fd = openat(dirfd, MESH_DISKEXEC_MARKER, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  0644);
  if (fd < 0)
    return errno == EEXIST ? 0 : -errno;
  size_t len = strlen(text);
  size_t done = 0;
  int rc = 0;
  while (done < len) {
    ssize_t k = write(fd, text + done, len - done);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      rc = k < 0 ? -errno : -EIO;
      break;
    }
    done += (size_t)k;
  }
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc != 0)
    unlinkat(dirfd, MESH_DISKEXEC_MARKER, 0); /* a torn marker would not be read as one */
  return rc;
}

int mesh_diskexec_owned_fd(int dirfd)
{
  int fd = openat(dirfd, MESH_DISKEXEC_MARKER, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return errno == ENOENT || errno == ELOOP ? -EPERM : -errno;
  struct stat st;
  char head[sizeof MESH_DISKEXEC_MARKER_MAGIC];
  size_t want = sizeof head - 1;
  int rc = -EPERM;
  if (fstat(fd, &st) != 0) {
    rc = -errno;
  } else if (S_ISREG(st.st_mode)) {
    ssize_t k = pread(fd, head, want, 0);
    if (k < 0)
      rc = -errno;
    else if ((size_t)k == want && memcmp(head, MESH_DISKEXEC_MARKER_MAGIC, want) == 0)
      rc = 0;
  }
  close(fd);
  return rc;
}

/* Opens the model directory dir_name (through a link: a model directory may
 * live on another disk) into *fd: 0, -ENOENT when it is not there, -EPERM
 * when it is not a directory (meshd never makes one that is not). */
static int open_model_dir(mesh_diskexec *d, const char *dir_name, int *fd)
{
  int f = openat(d->root, dir_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (f < 0)
    return errno == ENOTDIR ? -EPERM : -errno;
  *fd = f;
  return 0;
}

int mesh_diskexec_delete(mesh_diskexec *d, const char *dir_name)
{
  if (mesh_model_dir_name_check(dir_name) != 0)
    return -EINVAL;
  struct stat st;
  if (fstatat(d->root, dir_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? 0 : -errno;
  int fd = -1;
  int rc = open_model_dir(d, dir_name, &fd);
  if (rc == -ENOENT && S_ISLNK(st.st_mode))
    rc = -EPERM; /* a dangling link: nothing says meshd made it */
  if (rc != 0)
    return rc;
  rc = mesh_diskexec_owned_fd(fd);
  close(fd);
  if (rc != 0)
    return rc;
  walk w = {.d = d, .left = d->budget};
  if (d->slice_ms != 0)
    w.deadline = mesh_clock_now_ms() + d->slice_ms;
  rc = remove_at(&w, d->root, dir_name, 0);
  return rc == -EPERM ? -EACCES : rc;
}

int mesh_diskexec_adopt(mesh_diskexec *d, const char *dir_name, const char *text)
{
  if (mesh_model_dir_name_check(dir_name) != 0)
    return -EINVAL;
  int fd = -1;
  int rc = open_model_dir(d, dir_name, &fd);
  if (rc != 0)
    return rc;
  rc = mesh_diskexec_mark_fd(fd, text);
  close(fd);
  return rc;
}

static bool ends_with(const char *s, const char *suffix)
{
  size_t n = strlen(s);
  size_t m = strlen(suffix);
  return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/*
 * An inspection in slices: the directories being read stay open between
 * calls (one DIR per level, at most MESH_DISKEXEC_MAX_DEPTH), so the next
 * call goes on with the next entry instead of starting over.
 */
struct mesh_diskexec_scan {
  mesh_diskexec *d;
  DIR *stack[MESH_DISKEXEC_MAX_DEPTH]; /* stack[k]: the open directory at depth k */
  int depth;                           /* directories open */
  bool present;                        /* the model directory exists as a directory */
  uint64_t bytes;                      /* regular file bytes so far */
  uint32_t partials;                   /* ".partial" files so far */
};

int mesh_diskexec_scan_new(mesh_diskexec *d, const char *dir_name, mesh_diskexec_scan **out)
{
  struct stat st;
  if (mesh_model_dir_name_check(dir_name) != 0)
    return -EINVAL;
  mesh_diskexec_scan *s = calloc(1, sizeof *s);
  if (s == NULL)
    return -ENOMEM;
  s->d = d;
  int rc = 0;
  /* The model directory itself is looked at through a link, as the
   * downloader writes and the delete checks it (models kept on another
   * disk): a linked model would otherwise look missing at every start.
   * Links below it are not followed. */
  if (fstatat(d->root, dir_name, &st, 0) != 0) {
    rc = errno == ENOENT ? 0 : -errno;
    goto out;
  }
  if (!S_ISDIR(st.st_mode))
    goto out;
  s->present = true;
  int fd = openat(d->root, dir_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    s->present = errno != ENOENT;
    rc = errno == ENOENT ? 0 : -errno;
    goto out;
  }
  s->stack[0] = fdopendir(fd);
  if (s->stack[0] == NULL) {
    rc = -errno;
    close(fd);
    goto out;
  }
  s->depth = 1;
out:
  if (rc != 0) {
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* Visits entries until the tree is done (0), the call's share is spent
 * (-EAGAIN) or an entry cannot be looked at (its errno). Entries that vanish
 * meanwhile are skipped. */
static int scan_run(mesh_diskexec_scan *s, walk *w)
{
  while (s->depth > 0) {
    /* Checked before the read, so that no entry read is left unvisited. */
    if (walk_spent(w))
      return -EAGAIN;
    DIR *dir = s->stack[s->depth - 1];
    struct dirent *de = readdir(dir);
    if (de == NULL) {
      closedir(dir);
      s->stack[--s->depth] = NULL;
      continue;
    }
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    /* The marker is meshd's, not the model's: its bytes are not counted. */
    if (s->depth == 1 && strcmp(de->d_name, MESH_DISKEXEC_MARKER) == 0)
      continue;
    struct stat st;
    if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT)
        continue;
      return -errno;
    }
    if (S_ISREG(st.st_mode)) {
      s->bytes += (uint64_t)st.st_size;
      if (ends_with(de->d_name, ".partial"))
        s->partials++;
      continue;
    }
    if (!S_ISDIR(st.st_mode) || s->depth >= MESH_DISKEXEC_MAX_DEPTH)
      continue;
    int fd = openat(dirfd(dir), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT)
        continue;
      return -errno;
    }
    DIR *sub = fdopendir(fd);
    if (sub == NULL) {
      int e = -errno;
      close(fd);
      return e;
    }
    s->stack[s->depth++] = sub;
  }
  return 0;
}

int mesh_diskexec_scan_step(mesh_diskexec_scan *s)
{
  walk w = {.d = s->d, .left = s->d->budget};
  if (s->d->slice_ms != 0)
    w.deadline = mesh_clock_now_ms() + s->d->slice_ms;
  return scan_run(s, &w);
}

void mesh_diskexec_scan_result(const mesh_diskexec_scan *s, bool *present, uint64_t *bytes,
                               uint32_t *partials)
{
  *present = s->present;
  *bytes = s->bytes;
  *partials = s->partials;
}

void mesh_diskexec_scan_free(mesh_diskexec_scan *s)
{
  if (s == NULL)
    return;
  while (s->depth > 0)
    closedir(s->stack[--s->depth]);
  free(s);
}

int mesh_diskexec_inspect(mesh_diskexec *d, const char *dir_name, bool *present, uint64_t *bytes,
                          uint32_t *partials)
{
  *present = false;
  *bytes = 0;
  *partials = 0;
  mesh_diskexec_scan *s = NULL;
  int rc = mesh_diskexec_scan_new(d, dir_name, &s);
  if (rc != 0)
    return rc;
  /* No entry count ends it early: a tree of any size is looked at whole,
   * in steps of the executor's budget. */
  do {
    walk w = {.d = d, .left = d->budget};
    rc = scan_run(s, &w);
  } while (rc == -EAGAIN);
  mesh_diskexec_scan_result(s, present, bytes, partials);
  mesh_diskexec_scan_free(s);
  return rc;
}

int mesh_diskexec_free_space(mesh_diskexec *d, uint64_t *free_bytes)
{
  struct statvfs sv;
  if (fstatvfs(d->root, &sv) != 0)
    return -errno;
  *free_bytes = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
  return 0;
}
