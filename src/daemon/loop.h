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
 *     flush what a turn produced);
 *   - the loop's lag (mesh_loop_lag_start): a periodic timer measures how
 *     late it fires, on the monotonic clock, into a histogram with fixed
 *     buckets, and tells one listener of every sample (membership feeds it
 *     to Lifeguard's health score).
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

/* Also routes libevent's own messages into meshd's log (once per process,
 * see mesh_loop_libevent_log). */
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

/*
 * Loop lag. A loop that cannot answer a probe in time gets its node
 * declared dead, so how late the loop runs is measured all the time: a
 * timer every period_ms (the daemon uses MESH_LOOP_LAG_PERIOD_MS) notes how
 * long after its deadline it fired. Each sample lands in the first bucket
 * whose upper bound it does not exceed (mesh_loop_lag_bounds_ms; beyond the
 * last it counts only in count). The bounds are fixed so that figures from
 * different runs and nodes compare, and include 10 ms and 100 ms, the
 * targets for p99 and max, so a quantile read from the buckets decides them
 * exactly. Samples come at a fixed period, so a bucket's share of the count
 * is a share of the time.
 */
#define MESH_LOOP_LAG_BUCKETS 12
/* 100 ms: the shortest probe timeout of the membership profiles
 * (thunderbolt's). Lateness that matters to a probe (half of it) shows in
 * the next sample, well within a probe interval; ten wake-ups a second cost
 * nothing measurable. */
#define MESH_LOOP_LAG_PERIOD_MS 100

/* Upper bounds of the buckets, in milliseconds: 1, 2, 5, 10, 20, 50, 100,
 * 200, 500, 1000, 2000, 5000. */
extern const double mesh_loop_lag_bounds_ms[MESH_LOOP_LAG_BUCKETS];

typedef struct mesh_loop_lag {
  mesh_time_ms period_ms;                  /* 0: not measuring */
  uint64_t count;                          /* samples */
  uint64_t buckets[MESH_LOOP_LAG_BUCKETS]; /* samples per bucket (not cumulative) */
  uint64_t sum_us;                         /* lateness of all samples */
  uint64_t max_us;                         /* worst sample */
  uint64_t last_us;                        /* latest sample */
} mesh_loop_lag;

/* A lag sample: late_ms late (rounded down), at the loop's now. */
typedef void (*mesh_loop_lag_fn)(void *arg, mesh_time_ms late_ms, mesh_time_ms now);

/* Starts measuring (idempotent: a second call changes the period). Returns 0
 * or -ENOMEM / -EINVAL (period 0). */
int mesh_loop_lag_start(mesh_loop *l, mesh_time_ms period_ms);
/* The one listener told of every sample (NULL removes it). */
void mesh_loop_on_lag(mesh_loop *l, mesh_loop_lag_fn fn, void *arg);
/* The figures so far. */
const mesh_loop_lag *mesh_loop_lag_get(const mesh_loop *l);
/* Adds one sample of late_us (the measuring timer's path; tests feed
 * figures through it). */
void mesh_loop_lag_record(mesh_loop_lag *lag, uint64_t late_us);
/* The upper bound, in ms, of the bucket holding quantile q (0 < q <= 1) of
 * the samples: at least that share of them were at most this late. 0 with
 * no samples; INFINITY when it lies beyond the last bound. */
double mesh_loop_lag_quantile_ms(const mesh_loop_lag *lag, double q);

/* Runs until mesh_loop_stop, or until no event is registered at all.
 * Returns 0, or -EIO when libevent fails. */
int mesh_loop_run(mesh_loop *l);

/*
 * libevent's log callback (event_set_log_callback; mesh_loop_new installs
 * it). libevent logs from places a peer can reach again and again (a failed
 * accept, a bad socket), so every line goes through the rate limiter
 * (MESH_LOG_RL: a few lines per severity per window, then one summary):
 * it never floods the log. Severities map to meshd's levels (debug, info,
 * warn, error); msg is libevent's, borrowed for the call.
 */
void mesh_loop_libevent_log(int severity, const char *msg);
/* Runs one turn (waiting at most until the next event). For tests.
 * Returns 0, 1 when no event is registered, or -EIO. */
int mesh_loop_run_once(mesh_loop *l, bool nonblock);
/* Asks mesh_loop_run to return after the current turn. */
void mesh_loop_stop(mesh_loop *l);
bool mesh_loop_stopping(const mesh_loop *l);

#endif
