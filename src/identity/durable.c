/* Writing small files so that they survive a crash (temp file, fsync, rename). */
#include "src/identity/durable.h"

#include "src/base/err.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The armed fault, if any (tests only; see mesh_durable_inject_fault). */
static struct {
  mesh_durable_step step; /* which step fails; NONE when disarmed */
  unsigned after;         /* successful calls of that step still allowed */
  int err;                /* negative errno the failing call returns */
} fault;

void mesh_durable_inject_fault(mesh_durable_step step, unsigned after, int err)
{
  fault.step = step;
  fault.after = after;
  fault.err = err;
}

/* Returns the injected error when this call of step is the one to fail. */
static int fault_hit(mesh_durable_step step)
{
  if (fault.step != step)
    return 0;
  if (fault.after > 0) {
    fault.after--;
    return 0;
  }
  fault.step = MESH_DURABLE_STEP_NONE;
  return fault.err;
}

void mesh_identity_errf(char *err, size_t errlen, const char *fmt, ...)
{
  if (err == NULL || errlen == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Copies the directory part of path into dir ("." when there is none). */
static int dir_of(const char *path, char *dir, size_t cap)
{
  const char *slash = strrchr(path, '/');
  int n;
  if (slash == NULL)
    n = snprintf(dir, cap, ".");
  else if (slash == path)
    n = snprintf(dir, cap, "/");
  else
    n = snprintf(dir, cap, "%.*s", (int)(slash - path), path);
  return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int mesh_durable_sync_dir(const char *path)
{
  char dir[PATH_MAX];
  int rc = dir_of(path, dir, sizeof dir);
  if (rc != 0)
    return rc;
  rc = fault_hit(MESH_DURABLE_STEP_SYNC_DIR);
  if (rc != 0)
    return rc;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  rc = fsync(fd) == 0 ? 0 : -errno;
  close(fd);
  return rc;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
  int rc = fault_hit(MESH_DURABLE_STEP_WRITE);
  if (rc != 0)
    return rc;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Creates the temp file: a fresh one at tmp, or a unique name next to path
 * when tmp is NULL. The name used is copied into name. */
static int open_temp(const char *path, const char *tmp, char *name, size_t cap)
{
  int n;
  int fd;
  if (tmp != NULL) {
    n = snprintf(name, cap, "%s", tmp);
    if (n < 0 || (size_t)n >= cap)
      return -ENAMETOOLONG;
    /* A temp file left by a crash holds nothing of value: the real file was
     * never replaced by it. */
    if (unlink(name) != 0 && errno != ENOENT)
      return -errno;
    fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  } else {
    n = snprintf(name, cap, "%s.tmp.XXXXXX", path);
    if (n < 0 || (size_t)n >= cap)
      return -ENAMETOOLONG;
    fd = mkostemp(name, O_CLOEXEC);
  }
  return fd < 0 ? -errno : fd;
}

int mesh_durable_write(const char *path, const char *tmp, const void *data, size_t len, mode_t mode,
                       bool replace)
{
  char name[PATH_MAX];
  int fd = open_temp(path, tmp, name, sizeof name);
  if (fd < 0)
    return fd;

  /* The mode is set on the descriptor so that the umask cannot widen or
   * narrow it, and before any data is written. */
  int rc = fchmod(fd, mode) == 0 ? 0 : -errno;
  if (rc == 0)
    rc = write_all(fd, data, len);
  if (rc == 0) {
    rc = fault_hit(MESH_DURABLE_STEP_FSYNC);
    if (rc == 0 && fsync(fd) != 0)
      rc = -errno;
  }
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc == 0)
    rc = fault_hit(MESH_DURABLE_STEP_RENAME);
  if (rc == 0) {
    if (replace) {
      if (rename(name, path) != 0)
        rc = -errno;
    } else {
      /* link() never replaces: of two concurrent creators exactly one wins
       * and the other sees EEXIST. */
      if (link(name, path) != 0)
        rc = -errno;
      unlink(name);
    }
  }
  if (rc != 0) {
    unlink(name);
    return rc;
  }
  return mesh_durable_sync_dir(path);
}

int mesh_durable_read_fd(int fd, uint8_t *buf, size_t cap, size_t *len)
{
  int rc = 0;
  size_t n = 0;
  while (rc == 0) {
    /* Read one byte past cap so that a file that grew after fstat is still
     * caught as too large. */
    uint8_t extra;
    ssize_t r = n < cap ? read(fd, buf + n, cap - n) : read(fd, &extra, 1);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      rc = -errno;
    } else if (r == 0) {
      break;
    } else if (n >= cap) {
      rc = -EFBIG;
    } else {
      n += (size_t)r;
    }
  }
  if (rc == 0)
    *len = n;
  return rc;
}

int mesh_durable_read(const char *path, uint8_t *buf, size_t cap, size_t *len, struct stat *st)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return -errno;
  int rc = 0;
  if (fstat(fd, st) != 0)
    rc = -errno;
  else if (!S_ISREG(st->st_mode))
    rc = -EINVAL;
  if (rc == 0)
    rc = mesh_durable_read_fd(fd, buf, cap, len);
  close(fd);
  return rc;
}
