/* macOS forms of the calls in platform.h. */
#ifdef __APPLE__

#include "src/base/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc/malloc.h>
#include <pthread.h>
#include <pthread/qos.h>
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

#else
typedef int mesh_platform_darwin_unused;
#endif
