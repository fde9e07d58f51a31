/*
 * The event loop of meshd: one libevent event_base that every part of the
 * daemon shares.
 *
 * It offers what the rest of the daemon plugs into:
 *   - a monotonic "now" read once per turn of the loop (mesh_loop_now): the
 *     first caller in a turn reads the clock, every later caller in the same
 *     turn gets the same value, so that one turn sees one time;
 *   - timers (one-shot, re-armable), fd watches (for the RDMA completion
 *     channel, libcurl's sockets, anything with a file descriptor);
 *   - signals: SIGINT and SIGTERM call the stop callback (a graceful stop),
 *     SIGHUP calls the reload callback; SIGPIPE is ignored;
 *   - per-turn hooks, run after every turn of the loop (drain outboxes,
 *     flush what a turn produced).
 *
 * Nothing here blocks except mesh_loop_run, which runs until mesh_loop_stop.
 * Callbacks run on the loop's thread only. Objects made here (timers,
 * watches) are owned by their caller, who frees them before the loop.
 */
#ifndef MESH_DAEMON_LOOP_H
#define MESH_DAEMON_LOOP_H

#include "src/base/clock.h"

#include <stdbool.h>

struct event_base;

typedef struct mesh_loop mesh_loop;
typedef struct mesh_timer mesh_timer;
typedef struct mesh_watch mesh_watch;

/* A timer fired; now is the loop's cached time of this turn. */
typedef void (*mesh_timer_fn)(void *arg, mesh_time_ms now);
/* An fd is ready; what is MESH_WATCH_READ and/or MESH_WATCH_WRITE. */
typedef void (*mesh_watch_fn)(int fd, int what, void *arg);
/* A signal-driven or per-turn callback. */
typedef void (*mesh_loop_fn)(void *arg);

#define MESH_WATCH_READ 1
#define MESH_WATCH_WRITE 2

/* Upper bound on per-turn hooks; more is a programming error (-ENOSPC). */
#define MESH_LOOP_MAX_HOOKS 16

int mesh_loop_new(mesh_loop **out);
/* Frees the loop; every timer and watch must be freed before. */
void mesh_loop_free(mesh_loop *l);

/* The libevent base, for parts that use libevent directly (evhttp,
 * bufferevents). Owned by the loop. */
struct event_base *mesh_loop_base(mesh_loop *l);

/* The monotonic time of this turn (read at the first call in a turn). */
mesh_time_ms mesh_loop_now(mesh_loop *l);

/*
 * Installs SIGINT/SIGTERM -> on_stop and SIGHUP -> on_reload (either may be
 * NULL: a NULL on_stop stops the loop itself). Returns 0 or -ENOMEM.
 */
int mesh_loop_handle_signals(mesh_loop *l, mesh_loop_fn on_stop, mesh_loop_fn on_reload, void *arg);

/* Adds a hook run after every turn of the loop. Returns 0 or -ENOSPC. */
int mesh_loop_add_turn_hook(mesh_loop *l, mesh_loop_fn fn, void *arg);

/* Timers: created disarmed; arming an armed timer re-arms it. */
int mesh_timer_new(mesh_loop *l, mesh_timer_fn fn, void *arg, mesh_timer **out);
void mesh_timer_arm(mesh_timer *t, mesh_time_ms delay_ms);
void mesh_timer_cancel(mesh_timer *t);
bool mesh_timer_armed(const mesh_timer *t);
void mesh_timer_free(mesh_timer *t);

/*
 * Watches fd for what (MESH_WATCH_READ|MESH_WATCH_WRITE), persistently, until
 * mesh_watch_free. The fd stays the caller's. Returns 0, -EINVAL or -ENOMEM.
 */
int mesh_watch_new(mesh_loop *l, int fd, int what, mesh_watch_fn fn, void *arg, mesh_watch **out);
/* Changes the set of events watched. */
int mesh_watch_set(mesh_watch *w, int what);
void mesh_watch_free(mesh_watch *w);

/* Runs until mesh_loop_stop, or until no event is registered at all.
 * Returns 0, or -EIO when libevent fails. */
int mesh_loop_run(mesh_loop *l);
/* Runs one turn (waiting at most until the next event). For tests.
 * Returns 0, 1 when no event is registered, or -EIO. */
int mesh_loop_run_once(mesh_loop *l, bool nonblock);
/* Asks mesh_loop_run to return after the current turn. */
void mesh_loop_stop(mesh_loop *l);
bool mesh_loop_stopping(const mesh_loop *l);

#endif
