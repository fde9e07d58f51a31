/*
 * Force-included (-include) into every file of a sans-IO core (the SWIM core,
 * the connection manager, the coordinator core): the identifiers through
 * which code reaches a socket, a file, a clock, the environment, a thread or
 * the event loop are poisoned, so that a core calling one fails to build.
 * A core is driven by its caller (inputs, a "now", an outbox); it never
 * reaches out itself.
 *
 * The system headers that declare these names come first: once they are in,
 * a core's own #include of them adds nothing, and the poison only catches
 * uses. Memory (malloc), strings and formatting into buffers (snprintf)
 * stay allowed; a format attribute is spelled __printf__.
 */
#ifndef MESH_SANS_IO_H
#define MESH_SANS_IO_H

#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Libraries the cores use whose headers name fields like these (sodium's
 * randombytes_implementation has a .close). */
#include <protobuf-c/protobuf-c.h>
#include <sodium.h>

/* sockets and names */
#pragma GCC poison socket connect bind listen accept4 recv sendto recvfrom sendmsg recvmsg
#pragma GCC poison getaddrinfo gethostbyname select poll
/* send and accept also name fields of the cores' own structs (an outbox
 * item's .send, a setting's .accept): only a call is refused. */
#define send(...) (sizeof(struct mesh_sans_io_core_calls_send))
#define accept(...) (sizeof(struct mesh_sans_io_core_calls_accept))
/* files and directories */
#pragma GCC poison open openat creat fopen fdopen freopen fread fwrite fclose fflush fsync
#pragma GCC poison fdatasync read write pread pwrite close unlink unlinkat mkdir rmdir rename
#pragma GCC poison opendir readdir fstat lstat
/* standard streams */
#pragma GCC poison printf fprintf vfprintf puts fputs fputc putchar perror
/* clocks and sleeping */
#pragma GCC poison clock_gettime gettimeofday time sleep usleep nanosleep
/* the environment, processes and threads */
#pragma GCC poison getenv system fork exit abort pthread_create
/* the event loop, the store and HTTP */
#pragma GCC poison event_base_new event_base_loop event_base_dispatch event_new event_add
#pragma GCC poison evtimer_new sqlite3_open sqlite3_open_v2 sqlite3_exec sqlite3_step
#pragma GCC poison curl_easy_init curl_easy_perform curl_multi_perform

#endif
