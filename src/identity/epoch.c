/*
 * The epoch file ($MESH_HOME/epoch).
 *
 *   OFFSET SIZE  FIELD
 *   0      1-20  the epoch in decimal, no sign, no leading zeros
 *   n      1     '\n'
 *
 * Nothing else is accepted. Advancing holds an exclusive lock on
 * $MESH_HOME/epoch.lock so that two processes started on one home at the
 * same moment cannot both take the same epoch, writes $MESH_HOME/epoch.tmp
 * (replacing one left by a crash) and renames it over the epoch file.
 */
#include "src/identity/epoch.h"

#include "src/base/err.h"
#include "src/base/fileperm.h"
#include "src/identity/durable.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>

/* "18446744073709551615\n" is 21 bytes; a longer file is corrupt. */
#define EPOCH_FILE_MAX 32

static int home_path(const char *home, const char *name, char *buf, size_t len)
{
  int n = snprintf(buf, len, "%s/%s", home, name);
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Parses the file body; on failure *why says what is wrong with it. */
static int parse_epoch(const uint8_t *buf, size_t len, uint64_t *out, const char **why)
{
  if (len == 0) {
    *why = "it is empty";
    return -EBADMSG;
  }
  if (buf[len - 1] != '\n') {
    *why = "it does not end with a newline";
    return -EBADMSG;
  }
  size_t digits = len - 1;
  if (digits == 0) {
    *why = "it holds no number";
    return -EBADMSG;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < digits; i++) {
    if (buf[i] < '0' || buf[i] > '9') {
      *why = "it is not a decimal number";
      return -EBADMSG;
    }
    unsigned d = (unsigned)(buf[i] - '0');
    if (v > (UINT64_MAX - d) / 10) {
      *why = "the number does not fit in 64 bits";
      return -EBADMSG;
    }
    v = v * 10 + d;
  }
  if (buf[0] == '0' && digits > 1) {
    *why = "the number has leading zeros";
    return -EBADMSG;
  }
  *out = v;
  return 0;
}

/* Reads the epoch file at path; 0 when it does not exist. */
static int read_epoch(const char *path, uint64_t *out, char *err, size_t errlen)
{
  uint8_t buf[EPOCH_FILE_MAX];
  size_t len = 0;
  struct stat st;
  int rc = mesh_durable_read(path, buf, sizeof buf, &len, &st);
  if (rc == -ENOENT) {
    *out = 0;
    return 0;
  }
  const char *why = NULL;
  if (rc == -EFBIG) {
    why = "it is too long";
    rc = -EBADMSG;
  } else if (rc == -EINVAL) {
    why = "it is not a regular file";
    rc = -EBADMSG;
  } else if (rc != 0) {
    mesh_identity_errf(err, errlen, "cannot read epoch file '%s': %s", path, mesh_strerror(rc));
    return rc;
  } else {
    rc = parse_epoch(buf, len, out, &why);
  }
  if (rc != 0)
    mesh_identity_errf(err, errlen,
                       "epoch file '%s' is corrupt (%s); refusing to start, since reusing an "
                       "epoch would bring old state back: restore it or write a number higher "
                       "than any epoch this node has used",
                       path, why);
  return rc;
}

int mesh_epoch_read(const char *home, uint64_t *out, char *err, size_t errlen)
{
  char path[PATH_MAX];
  int rc = home_path(home, "epoch", path, sizeof path);
  if (rc != 0) {
    mesh_identity_errf(err, errlen, "home directory name too long: '%s'", home);
    return rc;
  }
  return read_epoch(path, out, err, errlen);
}

int mesh_epoch_advance(const char *home, uint64_t *out, char *err, size_t errlen)
{
  char path[PATH_MAX], tmp[PATH_MAX], lock[PATH_MAX];
  if (home_path(home, "epoch", path, sizeof path) != 0 ||
      home_path(home, "epoch.tmp", tmp, sizeof tmp) != 0 ||
      home_path(home, "epoch.lock", lock, sizeof lock) != 0) {
    mesh_identity_errf(err, errlen, "home directory name too long: '%s'", home);
    return -ENAMETOOLONG;
  }

  int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lfd < 0) {
    int rc = -errno;
    mesh_identity_errf(err, errlen, "cannot open epoch lock '%s': %s", lock, mesh_strerror(rc));
    return rc;
  }
  /* 0600 whatever the umask. The lock holds nothing secret, so a lock file
   * left by another user (root once ran meshd here) still serves: a failed
   * chmod is not an error. */
  (void)mesh_file_set_mode(lfd, NULL, 0600);
  int rc = 0;
  while (flock(lfd, LOCK_EX) != 0) {
    if (errno != EINTR) {
      rc = -errno;
      mesh_identity_errf(err, errlen, "cannot lock '%s': %s", lock, mesh_strerror(rc));
      break;
    }
  }

  uint64_t cur = 0;
  if (rc == 0)
    rc = read_epoch(path, &cur, err, errlen);
  if (rc == 0 && cur == UINT64_MAX) {
    rc = -EOVERFLOW;
    mesh_identity_errf(err, errlen, "epoch file '%s' is at the largest epoch there is", path);
  }
  if (rc == 0) {
    char text[EPOCH_FILE_MAX];
    int n = snprintf(text, sizeof text, "%" PRIu64 "\n", cur + 1);
    rc = mesh_durable_write(path, tmp, text, (size_t)n, 0600, true);
    if (rc != 0)
      mesh_identity_errf(err, errlen, "cannot write epoch file '%s': %s", path, mesh_strerror(rc));
  }
  if (rc == 0)
    *out = cur + 1;
  close(lfd); /* releases the lock */
  return rc;
}
