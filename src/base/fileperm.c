/*
 * Ownership and mode checks of trusted files and the home (fileperm.h).
 */
#include "src/base/fileperm.h"

#include "src/base/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* Formats a one-line message into err when err is not NULL. */
static void say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errlen, const char *fmt, ...)
{
  if (err == NULL || errlen == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int mesh_file_check(const struct stat *st, const char *path, mesh_file_rule rule, const char *what,
                    char *err, size_t errlen)
{
  uid_t me = geteuid();
  if (!S_ISREG(st->st_mode)) {
    say(err, errlen, "%s '%s' is not a regular file", what, path);
    return -EINVAL;
  }
  /* root may own settings: a packaged service reads root's /etc file as
   * its own user. root can replace any file anyway. */
  bool root_ok = rule == MESH_FILE_SETTINGS && st->st_uid == 0;
  if (st->st_uid != me && !root_ok) {
    say(err, errlen, "%s '%s' is owned by uid %u, but meshd runs as uid %u; run: chown %u %s", what,
        path, (unsigned)st->st_uid, (unsigned)me, (unsigned)me, path);
    return -EACCES;
  }
  unsigned mode = (unsigned)(st->st_mode & 07777);
  if (rule == MESH_FILE_SECRET && (st->st_mode & 077) != 0) {
    /* As ssh does: a private key that others can read is not used, and the
     * message says how to fix it. */
    say(err, errlen, "Permissions %04o for '%s' are too open; run: chmod 600 %s", mode, path, path);
    return -EACCES;
  }
  if (rule == MESH_FILE_SETTINGS && (st->st_mode & 022) != 0) {
    say(err, errlen, "%s '%s' is writable by group or others (mode %04o); run: chmod go-w %s", what,
        path, mode, path);
    return -EACCES;
  }
  return 0;
}

int mesh_file_open_checked(const char *path, mesh_file_rule rule, const char *what, int *fd,
                           struct stat *st, char *err, size_t errlen)
{
  *fd = -1;
  /* O_NONBLOCK: a FIFO planted under the name must not hang the open; it is
   * refused as not a regular file right after. */
  int f = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
  if (f < 0) {
    int rc = -errno;
    if (rc == -ELOOP)
      say(err, errlen,
          "%s '%s' is a symbolic link; meshd reads it only as a regular file: replace the link "
          "with the file it points to",
          what, path);
    else
      say(err, errlen, "cannot read %s '%s': %s", what, path, mesh_strerror(rc));
    return rc;
  }
  int rc = fstat(f, st) == 0 ? 0 : -errno;
  if (rc != 0)
    say(err, errlen, "cannot read %s '%s': %s", what, path, mesh_strerror(rc));
  else
    rc = mesh_file_check(st, path, rule, what, err, errlen);
  if (rc != 0) {
    close(f);
    return rc;
  }
  *fd = f;
  return 0;
}

int mesh_home_check(const char *home, char *err, size_t errlen)
{
  struct stat st;
  if (stat(home, &st) != 0) {
    int rc = -errno;
    say(err, errlen, "cannot use home %s: %s", home, mesh_strerror(rc));
    return rc;
  }
  if (!S_ISDIR(st.st_mode)) {
    say(err, errlen, "home %s is not a directory", home);
    return -ENOTDIR;
  }
  uid_t me = geteuid();
  if (st.st_uid != me) {
    say(err, errlen,
        "home %s is owned by uid %u, but meshd runs as uid %u; run: chown %u %s (or use a home "
        "of your own)",
        home, (unsigned)st.st_uid, (unsigned)me, (unsigned)me, home);
    return -EACCES;
  }
  if ((st.st_mode & 022) != 0) {
    say(err, errlen,
        "home %s is writable by group or others (mode %04o), so they could replace its keys; "
        "run: chmod 700 %s",
        home, (unsigned)(st.st_mode & 07777), home);
    return -EACCES;
  }
  return 0;
}

int mesh_home_prepare(const char *home, char *err, size_t errlen)
{
  if (mkdir(home, 0700) == 0) {
    /* mkdir's mode passes through the umask: state it exactly. */
    if (chmod(home, 0700) != 0) {
      int rc = -errno;
      say(err, errlen, "cannot set the mode of home %s: %s", home, mesh_strerror(rc));
      return rc;
    }
  } else if (errno != EEXIST) {
    int rc = -errno;
    say(err, errlen, "cannot create home %s: %s", home, mesh_strerror(rc));
    return rc;
  }
  return mesh_home_check(home, err, errlen);
}

int mesh_file_set_mode(int fd, const char *path, mode_t mode)
{
  if (fd >= 0)
    return fchmod(fd, mode) == 0 ? 0 : -errno;
  int f = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
  if (f < 0)
    return -errno;
  int rc = fchmod(f, mode) == 0 ? 0 : -errno;
  close(f);
  return rc;
}
