/*
 * The home lock ($MESH_HOME/meshd.lock); see homelock.h for the rules and
 * the file's format.
 */
#include "src/identity/homelock.h"

#include "src/base/err.h"
#include "src/base/fileperm.h"
#include "src/identity/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* How long to wait for a holder that has just taken the lock to write its
 * PID, before reporting it as unknown. */
#define PID_WAIT_TRIES 50
#define PID_WAIT_NS 2000000L

/* The PID written in the lock file, or 0 when it holds none (yet). */
static long read_holder(int fd)
{
  char buf[32];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0)
    return 0;
  long pid = 0;
  for (ssize_t i = 0; i < n && buf[i] != '\n'; i++) {
    if (buf[i] < '0' || buf[i] > '9' || pid > 99999999)
      return 0;
    pid = pid * 10 + (buf[i] - '0');
  }
  return pid;
}

int mesh_home_lock_take(const char *home, mesh_home_lock *out, char *err, size_t errlen)
{
  out->fd = -1;
  int w = snprintf(out->path, sizeof out->path, "%s/%s", home, MESH_HOME_LOCK_FILE);
  if (w < 0 || (size_t)w >= sizeof out->path) {
    mesh_identity_errf(err, errlen, "home directory name too long: '%s'", home);
    return -ENAMETOOLONG;
  }
  int fd = open(out->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    int rc = -errno;
    mesh_identity_errf(err, errlen, "cannot open lock file '%s': %s", out->path, mesh_strerror(rc));
    return rc;
  }
  /* 0600 whatever the umask (and for a lock file made 0644 by an older
   * meshd). It holds only a PID, so one left by another user still locks:
   * a failed chmod is not an error. */
  (void)mesh_file_set_mode(fd, NULL, 0600);
  int rc = 0;
  while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR)
      continue;
    rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
    break;
  }
  if (rc == -EBUSY) {
    /* The holder writes its PID right after locking: give it a moment. */
    long pid = read_holder(fd);
    for (int i = 0; pid == 0 && i < PID_WAIT_TRIES; i++) {
      struct timespec ts = {0, PID_WAIT_NS};
      nanosleep(&ts, NULL);
      pid = read_holder(fd);
    }
    if (pid > 0)
      mesh_identity_errf(err, errlen, "home %s is in use by meshd PID %ld (lock %s)", home, pid,
                         out->path);
    else
      mesh_identity_errf(err, errlen, "home %s is in use by another meshd (lock %s)", home,
                         out->path);
    close(fd);
    return rc;
  }
  if (rc != 0) {
    mesh_identity_errf(err, errlen, "cannot lock '%s': %s", out->path, mesh_strerror(rc));
    close(fd);
    return rc;
  }
  char text[32];
  int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
  ssize_t wrote = 0;
  if (ftruncate(fd, 0) != 0)
    rc = -errno;
  else if ((wrote = pwrite(fd, text, (size_t)n, 0)) < 0)
    rc = -errno;
  else if (wrote != n)
    rc = -EIO;
  if (rc != 0) {
    mesh_identity_errf(err, errlen, "cannot write lock file '%s': %s", out->path,
                       mesh_strerror(rc));
    close(fd);
    return rc;
  }
  out->fd = fd;
  return 0;
}

void mesh_home_lock_release(mesh_home_lock *l)
{
  if (l == NULL || l->fd < 0)
    return;
  /* Closing the descriptor releases the lock. The PID is left behind on
   * purpose: removing the file would race with a new holder's open. */
  close(l->fd);
  l->fd = -1;
}
