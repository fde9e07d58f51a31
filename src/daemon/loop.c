/* The daemon's one event loop: timers, fd watches, signals and lateness, on libevent. */
#include "src/daemon/loop.h"

#include "src/base/log.h"

#include <errno.h>
#include <event2/event.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>

const double mesh_loop_lag_bounds_ms[MESH_LOOP_LAG_BUCKETS] = {1,   2,   5,   10,   20,   50,
                                                               100, 200, 500, 1000, 2000, 5000};

struct mesh_loop {
  struct event_base *base;
  mesh_time_ms now; /* the cached time of this turn */
  bool now_fresh;   /* now was read during the current turn */
  bool stop;        /* mesh_loop_stop was called */
  struct event *sig_int, *sig_term, *sig_hup;
  mesh_loop_fn on_stop, on_reload;
  void *sig_arg;
  struct {
    mesh_loop_fn fn;
    void *arg;
  } hooks[MESH_LOOP_MAX_HOOKS];
  int nhooks;
  struct event *lag_ev;    /* the measuring timer */
  uint64_t lag_due_us;     /* when it should fire (monotonic us) */
  mesh_loop_lag lag;       /* the figures */
  mesh_loop_lag_fn lag_fn; /* the listener */
  void *lag_arg;
};

struct mesh_timer {
  mesh_loop *loop;
  struct event *ev;
  mesh_timer_fn fn;
  void *arg;
};

struct mesh_watch {
  mesh_loop *loop;
  struct event *ev;
  int fd;
  mesh_watch_fn fn;
  void *arg;
};

void mesh_loop_libevent_log(int severity, const char *msg)
{
  /* One rate-limited call site per severity, so that a flood of warnings
   * cannot hide an error behind its suppression. */
  switch (severity) {
  case EVENT_LOG_DEBUG:
    MESH_LOG_RL(MESH_LOG_DEBUG, "libevent", "%s", msg);
    break;
  case EVENT_LOG_MSG:
    MESH_LOG_RL(MESH_LOG_INFO, "libevent", "%s", msg);
    break;
  case EVENT_LOG_WARN:
    MESH_LOG_RL(MESH_LOG_WARN, "libevent", "%s", msg);
    break;
  default:
    MESH_LOG_RL(MESH_LOG_ERROR, "libevent", "%s", msg);
    break;
  }
}

int mesh_loop_new(mesh_loop **out)
{
  mesh_loop *l = calloc(1, sizeof *l);
  if (l == NULL)
    return -ENOMEM;
  struct event_config *cfg = event_config_new();
  if (cfg == NULL) {
    free(l);
    return -ENOMEM;
  }
  /* Process-wide; setting it again (a second loop in a test) is harmless. */
  event_set_log_callback(mesh_loop_libevent_log);
  /* The loop is single-threaded: no locks needed. */
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
  l->base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  if (l->base == NULL) {
    free(l);
    return -ENOMEM;
  }
  /* Writes to a closed peer socket must fail with EPIPE, not kill meshd. */
  signal(SIGPIPE, SIG_IGN);
  *out = l;
  return 0;
}

void mesh_loop_free(mesh_loop *l)
{
  if (l == NULL)
    return;
  if (l->sig_int != NULL)
    event_free(l->sig_int);
  if (l->sig_term != NULL)
    event_free(l->sig_term);
  if (l->sig_hup != NULL)
    event_free(l->sig_hup);
  if (l->lag_ev != NULL)
    event_free(l->lag_ev);
  event_base_free(l->base);
  free(l);
}

struct event_base *mesh_loop_base(mesh_loop *l)
{
  return l->base;
}

mesh_time_ms mesh_loop_now(mesh_loop *l)
{
  if (!l->now_fresh) {
    l->now = mesh_clock_now_ms();
    l->now_fresh = true;
  }
  return l->now;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
  mesh_loop *l = arg;
  if (sig == SIGHUP) {
    if (l->on_reload != NULL)
      l->on_reload(l->sig_arg);
    return;
  }
  if (l->on_stop != NULL)
    l->on_stop(l->sig_arg);
  else
    mesh_loop_stop(l);
}

int mesh_loop_handle_signals(mesh_loop *l, mesh_loop_fn on_stop, mesh_loop_fn on_reload, void *arg)
{
  l->on_stop = on_stop;
  l->on_reload = on_reload;
  l->sig_arg = arg;
  if (l->sig_int == NULL) {
    l->sig_int = evsignal_new(l->base, SIGINT, on_signal, l);
    l->sig_term = evsignal_new(l->base, SIGTERM, on_signal, l);
    l->sig_hup = evsignal_new(l->base, SIGHUP, on_signal, l);
    if (l->sig_int == NULL || l->sig_term == NULL || l->sig_hup == NULL)
      return -ENOMEM;
    if (evsignal_add(l->sig_int, NULL) != 0 || evsignal_add(l->sig_term, NULL) != 0 ||
        evsignal_add(l->sig_hup, NULL) != 0)
      return -ENOMEM;
  }
  return 0;
}

int mesh_loop_add_turn_hook(mesh_loop *l, mesh_loop_fn fn, void *arg)
{
  if (l->nhooks == MESH_LOOP_MAX_HOOKS)
    return -ENOSPC;
  l->hooks[l->nhooks].fn = fn;
  l->hooks[l->nhooks].arg = arg;
  l->nhooks++;
  return 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
  mesh_timer *t = arg;
  t->fn(t->arg, mesh_loop_now(t->loop));
}

int mesh_timer_new(mesh_loop *l, mesh_timer_fn fn, void *arg, mesh_timer **out)
{
  mesh_timer *t = calloc(1, sizeof *t);
  if (t == NULL)
    return -ENOMEM;
  t->loop = l;
  t->fn = fn;
  t->arg = arg;
  t->ev = evtimer_new(l->base, on_timer, t);
  if (t->ev == NULL) {
    free(t);
    return -ENOMEM;
  }
  *out = t;
  return 0;
}

void mesh_timer_arm(mesh_timer *t, mesh_time_ms delay_ms)
{
  struct timeval tv = {.tv_sec = (time_t)(delay_ms / 1000),
                       .tv_usec = (suseconds_t)((delay_ms % 1000) * 1000)};
  evtimer_add(t->ev, &tv);
}

void mesh_timer_cancel(mesh_timer *t)
{
  evtimer_del(t->ev);
}

bool mesh_timer_armed(const mesh_timer *t)
{
  return evtimer_pending(t->ev, NULL) != 0;
}

void mesh_timer_free(mesh_timer *t)
{
  if (t == NULL)
    return;
  event_free(t->ev);
  free(t);
}

static void on_watch(evutil_socket_t fd, short what, void *arg)
{
  mesh_watch *w = arg;
  int m = 0;
  if (what & EV_READ)
    m |= MESH_WATCH_READ;
  if (what & EV_WRITE)
    m |= MESH_WATCH_WRITE;
  w->fn(w->fd, m, w->arg);
}

static int watch_install(mesh_watch *w, int what)
{
  short ev = EV_PERSIST;
  if (what & MESH_WATCH_READ)
    ev |= EV_READ;
  if (what & MESH_WATCH_WRITE)
    ev |= EV_WRITE;
  if (w->ev != NULL) {
    event_del(w->ev);
    event_free(w->ev);
    w->ev = NULL;
  }
  if (what == 0)
    return 0;
  w->ev = event_new(w->loop->base, w->fd, ev, on_watch, w);
  if (w->ev == NULL)
    return -ENOMEM;
  if (event_add(w->ev, NULL) != 0)
    return -ENOMEM;
  return 0;
}

int mesh_watch_new(mesh_loop *l, int fd, int what, mesh_watch_fn fn, void *arg, mesh_watch **out)
{
  if (fd < 0 || (what & ~(MESH_WATCH_READ | MESH_WATCH_WRITE)) != 0)
    return -EINVAL;
  mesh_watch *w = calloc(1, sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  w->loop = l;
  w->fd = fd;
  w->fn = fn;
  w->arg = arg;
  int rc = watch_install(w, what);
  if (rc != 0) {
    mesh_watch_free(w);
    return rc;
  }
  *out = w;
  return 0;
}

int mesh_watch_set(mesh_watch *w, int what)
{
  if ((what & ~(MESH_WATCH_READ | MESH_WATCH_WRITE)) != 0)
    return -EINVAL;
  return watch_install(w, what);
}

void mesh_watch_free(mesh_watch *w)
{
  if (w == NULL)
    return;
  if (w->ev != NULL)
    event_free(w->ev);
  free(w);
}

/* ---- loop lag ---- */

void mesh_loop_lag_record(mesh_loop_lag *lag, uint64_t late_us)
{
  lag->count++;
  lag->sum_us += late_us;
  lag->last_us = late_us;
  if (late_us > lag->max_us)
    lag->max_us = late_us;
  for (int i = 0; i < MESH_LOOP_LAG_BUCKETS; i++) {
    if ((double)late_us <= mesh_loop_lag_bounds_ms[i] * 1000.0) {
      lag->buckets[i]++;
      return;
    }
  }
}

double mesh_loop_lag_quantile_ms(const mesh_loop_lag *lag, double q)
{
  if (lag->count == 0)
    return 0;
  /* The rank of the sample that quantile q names (rounded up), at least
   * the first. */
  double rank = q * (double)lag->count;
  double want = (double)(uint64_t)rank;
  if (want < rank)
    want += 1;
  if (want < 1)
    want = 1;
  uint64_t cum = 0;
  for (int i = 0; i < MESH_LOOP_LAG_BUCKETS; i++) {
    cum += lag->buckets[i];
    if ((double)cum >= want)
      return mesh_loop_lag_bounds_ms[i];
  }
  return INFINITY;
}

static void lag_arm(mesh_loop *l)
{
  /* libevent measures a timer from its cached time, the start of this
   * turn; refresh it so that the deadline below and libevent's agree and
   * time spent earlier in the turn is not hidden from the next sample. */
  event_base_update_cache_time(l->base);
  l->lag_due_us = mesh_clock_now_us() + l->lag.period_ms * 1000u;
  struct timeval tv = {.tv_sec = (time_t)(l->lag.period_ms / 1000),
                       .tv_usec = (suseconds_t)((l->lag.period_ms % 1000) * 1000)};
  evtimer_add(l->lag_ev, &tv);
}

static void on_lag_timer(evutil_socket_t fd, short what, void *arg)
{
  mesh_loop *l = arg;
  /* Read the clock itself, not the turn's cached now: the lateness is the
   * time this callback waited behind others in the same turn too. */
  uint64_t at = mesh_clock_now_us();
  uint64_t late = at > l->lag_due_us ? at - l->lag_due_us : 0;
  mesh_loop_lag_record(&l->lag, late);
  lag_arm(l);
  if (l->lag_fn != NULL)
    l->lag_fn(l->lag_arg, (mesh_time_ms)(late / 1000), mesh_loop_now(l));
}

int mesh_loop_lag_start(mesh_loop *l, mesh_time_ms period_ms)
{
  if (period_ms == 0)
    return -EINVAL;
  if (l->lag_ev == NULL) {
    l->lag_ev = evtimer_new(l->base, on_lag_timer, l);
    if (l->lag_ev == NULL)
      return -ENOMEM;
  }
  l->lag.period_ms = period_ms;
  lag_arm(l);
  return 0;
}

void mesh_loop_on_lag(mesh_loop *l, mesh_loop_lag_fn fn, void *arg)
{
  l->lag_fn = fn;
  l->lag_arg = arg;
}

const mesh_loop_lag *mesh_loop_lag_get(const mesh_loop *l)
{
  return &l->lag;
}

int mesh_loop_run_once(mesh_loop *l, bool nonblock)
{
  l->now_fresh = false;
  int rc = event_base_loop(l->base, EVLOOP_ONCE | (nonblock ? EVLOOP_NONBLOCK : 0));
  if (rc < 0)
    return -EIO;
  for (int i = 0; i < l->nhooks; i++)
    l->hooks[i].fn(l->hooks[i].arg);
  /* 1: nothing is registered, so nothing can ever happen. */
  return rc == 1 ? 1 : 0;
}

int mesh_loop_run(mesh_loop *l)
{
  l->stop = false;
  while (!l->stop) {
    int rc = mesh_loop_run_once(l, false);
    if (rc < 0)
      return rc;
    if (rc == 1)
      break; /* no events left: running on would spin */
  }
  return 0;
}

void mesh_loop_stop(mesh_loop *l)
{
  l->stop = true;
  event_base_loopbreak(l->base);
}

bool mesh_loop_stopping(const mesh_loop *l)
{
  return l->stop;
}
