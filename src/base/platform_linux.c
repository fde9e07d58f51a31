/* Linux forms of the calls in platform.h. */
#ifdef __linux__

#include "src/base/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

int mesh_socket_nb(int domain, int type, int protocol)
{
  int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  return fd >= 0 ? fd : -errno;
}

int mesh_accept_nb(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
  int c = accept4(fd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
  return c >= 0 ? c : -errno;
}

int mesh_fdatasync(int fd)
{
  return fdatasync(fd) == 0 ? 0 : -errno;
}

void mesh_start_writeback(int fd, unsigned long long off, unsigned long long len)
{
  /* A failure only means the final sync does more of the work. */
  (void)sync_file_range(fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE);
}

void mesh_thread_lower_priority(void)
{
  /* On Linux a nice value set for a thread ID applies to that thread only. */
  (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
}

size_t mesh_heap_in_use(void)
{
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

int mesh_nofile_raise(mesh_nofile *out)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return -errno;
  out->before = rl.rlim_cur;
  out->soft = rl.rlim_cur;
  out->hard = rl.rlim_max;
  if (rl.rlim_cur >= rl.rlim_max)
    return 0;
  /* The hard limit cannot exceed fs.nr_open, so it is always a value
   * setrlimit takes. */
  struct rlimit want = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
  if (setrlimit(RLIMIT_NOFILE, &want) == 0)
    out->soft = rl.rlim_max;
  return 0;
}

#else
typedef int mesh_platform_linux_unused;
#endif
