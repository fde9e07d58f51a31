/* macOS forms of the calls in platform.h. */
#ifdef __APPLE__

#include "src/base/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc/malloc.h>
#include <pthread.h>
#include <pthread/qos.h>
#include <sys/resource.h>
#include <sys/sysctl.h>
#include <sys/syslimits.h>
#include <unistd.h>

/* Sets O_NONBLOCK and FD_CLOEXEC, and SO_NOSIGPIPE on sockets. */
static int prepare(int fd, int is_socket)
{
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
    return -errno;
  if (is_socket) {
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one) < 0)
      return -errno;
  }
  return 0;
}

int mesh_socket_nb(int domain, int type, int protocol)
{
  int fd = socket(domain, type, protocol);
  if (fd < 0)
    return -errno;
  int rc = prepare(fd, 1);
  if (rc != 0) {
    close(fd);
    return rc;
  }
  return fd;
}

int mesh_accept_nb(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
  int c = accept(fd, addr, addrlen);
  if (c < 0)
    return -errno;
  int rc = prepare(c, 1);
  if (rc != 0) {
    close(c);
    return rc;
  }
  return c;
}

int mesh_fdatasync(int fd)
{
  if (fcntl(fd, F_FULLFSYNC) == 0)
    return 0;
  /* Some file systems (network, FUSE) refuse F_FULLFSYNC: fall back. */
  return fsync(fd) == 0 ? 0 : -errno;
}

void mesh_start_writeback(int fd, unsigned long long off, unsigned long long len)
{
  (void)fd;
  (void)off;
  (void)len;
}

void mesh_thread_lower_priority(void)
{
  /* Below the loop's default QoS, above background (which throttles IO). */
  (void)pthread_set_qos_class_self_np(QOS_CLASS_UTILITY, 0);
}

size_t mesh_heap_in_use(void)
{
  /* A NULL zone sums the statistics of every zone of the process. */
  malloc_statistics_t st;
  malloc_zone_statistics(NULL, &st);
  return st.size_in_use;
}

static int set_soft(rlim_t soft, rlim_t hard)
{
  struct rlimit want = {.rlim_cur = soft, .rlim_max = hard};
  return setrlimit(RLIMIT_NOFILE, &want) == 0 ? 0 : -errno;
}

int mesh_nofile_raise(mesh_nofile *out)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return -errno;
  out->before = rl.rlim_cur;
  out->soft = rl.rlim_cur;
  /* The kernel takes no soft limit above kern.maxfilesperproc, and
   * setrlimit(2) refuses RLIM_INFINITY for this resource. */
  rlim_t cap = OPEN_MAX;
  int perproc = 0;
  size_t len = sizeof perproc;
  if (sysctlbyname("kern.maxfilesperproc", &perproc, &len, NULL, 0) == 0 && perproc > 0)
    cap = (rlim_t)perproc;
  rlim_t target = rl.rlim_max < cap ? rl.rlim_max : cap;
  out->hard = target;
  if (rl.rlim_cur >= target)
    return 0;
  if (set_soft(target, rl.rlim_max) == 0) {
    out->soft = target;
    return 0;
  }
  /* Older systems cap at OPEN_MAX whatever the sysctl says. */
  rlim_t fallback = rl.rlim_max < OPEN_MAX ? rl.rlim_max : OPEN_MAX;
  if (fallback > rl.rlim_cur && set_soft(fallback, rl.rlim_max) == 0) {
    out->soft = fallback;
    out->hard = fallback;
  }
  return 0;
}

#else
typedef int mesh_platform_darwin_unused;
#endif
