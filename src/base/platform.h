/*
 * The few system calls whose form differs between Linux and macOS, behind
 * one interface. Each platform has its own file (platform_linux.c,
 * platform_darwin.c), compiled everywhere with its whole body behind the
 * platform's macro, so that no #ifdef is scattered through the logic.
 *
 * Every function returns a file descriptor or 0 on success, or a negative
 * errno. None blocks beyond the system call itself.
 */
#ifndef MESH_BASE_PLATFORM_H
#define MESH_BASE_PLATFORM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* socket() that is non-blocking and close-on-exec from the start (Linux:
 * SOCK_NONBLOCK | SOCK_CLOEXEC; macOS: fcntl after creation). On macOS the
 * socket also has SO_NOSIGPIPE set, as Linux callers use MSG_NOSIGNAL. */
int mesh_socket_nb(int domain, int type, int protocol);

/* accept() returning a non-blocking, close-on-exec socket (Linux: accept4). */
int mesh_accept_nb(int fd, struct sockaddr *addr, socklen_t *addrlen);

/* Makes a file's data durable (Linux: fdatasync; macOS: F_FULLFSYNC, since
 * fsync there does not reach the disk's platter). */
int mesh_fdatasync(int fd);

/* Starts writing a file range back to disk without waiting (Linux:
 * sync_file_range; macOS has no such call and does nothing), so that a
 * later mesh_fdatasync has less to do. Advisory: never fails. */
void mesh_start_writeback(int fd, unsigned long long off, unsigned long long len);

/* Lowers the calling thread's scheduling priority below the event loop's
 * (Linux: a nice value of 10 for this thread alone; macOS: the utility QoS
 * class). The work pool's workers call it, so that when hashing and disk
 * work fill every CPU the loop that answers probes still runs first.
 * Advisory: a failure leaves the thread as it was. */
void mesh_thread_lower_priority(void);

/* Bytes the C library's allocator has handed out and not yet taken back
 * (Linux: mallinfo2's uordblks + hblkhd; macOS: size_in_use summed over
 * every malloc zone). For measurements such as tests/tools/bench_coord's,
 * not for limits: what counts as "in use" differs between allocators. */
size_t mesh_heap_in_use(void);

/* The limit on open files (RLIMIT_NOFILE): the soft limit in force before
 * the call, after it, and the most it could be raised to. */
typedef struct mesh_nofile {
  uint64_t before; /* soft limit found */
  uint64_t soft;   /* soft limit in force now */
  uint64_t hard;   /* the most the soft limit may be (the system's cap applied) */
} mesh_nofile;

/* Raises the soft limit on open files to the hard limit, or as near as the
 * system lets a process go (Linux: the hard limit itself; macOS: a hard
 * limit of RLIM_INFINITY stands for kern.maxfilesperproc, or OPEN_MAX when
 * setrlimit refuses that, as setrlimit(2) there asks). Fills *out. Returns
 * 0 (also when raising was refused: out->soft then equals out->before), or
 * a negative errno when the limit cannot be read. */
int mesh_nofile_raise(mesh_nofile *out);

#endif
