/*
 * The control API's listener and the count of its connections: the cap,
 * the pause when accept fails, the batch per turn. See api_internal.h for
 * how a connection is counted from its creation to its close.
 */
#include "src/daemon/api_internal.h"

#include "src/base/err.h"
#include "src/base/log.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <unistd.h>

/* Every mesh_api_conns listening, for the listener's error callback: evhttp
 * gives the listener its own argument (the evhttp), so the callback finds
 * its state by that. Touched on the loop's thread only; one entry per API
 * (a daemon has one, a test a few). */
static mesh_api_conns *listening;

static mesh_api_conns *conns_of(const struct evhttp *http)
{
  for (mesh_api_conns *c = listening; c != NULL; c = c->next)
    if (c->http == http)
      return c;
  return NULL;
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
  mesh_api_conns *c = arg;
  if (c->closed != NULL)
    c->closed(c->closed_arg, evcon);
  if (c->open > 0)
    c->open--;
}

static void pause_accepting(mesh_api_conns *c, enum mesh_api_pause_reason why)
{
  c->paused_total[why]++;
  if (c->paused)
    return;
  c->paused = true;
  evconnlistener_disable(c->lev);
  struct timeval tv = {0, MESH_API_ACCEPT_PAUSE_MS * 1000};
  evtimer_add(c->resume, &tv);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
  mesh_api_conns *c = arg;
  c->paused = false;
  evconnlistener_enable(c->lev);
}

/* Accept failed for a reason that does not pass (libevent has already let
 * EINTR, EAGAIN and ECONNABORTED go by): stop accepting for a moment. A
 * listener left enabled would be readable again at once, and the loop would
 * spin on it; its default handling also logs every failure. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
  int err = EVUTIL_SOCKET_ERROR();
  mesh_api_conns *c = conns_of(arg);
  if (c == NULL) {
    /* Cannot happen while the API lives; without its state, stop for good
     * rather than spin. */
    evconnlistener_disable(lev);
    return;
  }
  enum mesh_api_pause_reason why = MESH_API_PAUSE_OTHER;
  if (err == EMFILE || err == ENFILE)
    why = MESH_API_PAUSE_DESCRIPTORS;
  else if (err == ENOBUFS || err == ENOMEM)
    why = MESH_API_PAUSE_MEMORY;
  MESH_LOG_RL(MESH_LOG_WARN, "api",
              "control API: accept failed (%s) with %zu connections open; pausing for %d ms",
              mesh_strerror(-err), c->open, MESH_API_ACCEPT_PAUSE_MS);
  pause_accepting(c, why);
}

/* evhttp asks for the bufferevent of each connection it accepts. It is made
 * without BEV_OPT_CLOSE_ON_FREE: evhttp then closes the socket itself,
 * at once, when it frees the connection. */
static struct bufferevent *on_new_bev(struct event_base *base, void *arg)
{
  mesh_api_conns *c = arg;
  /* The listener is disabled when fresh fills, so this holds; should it
   * not, the connection is served uncounted rather than overflow fresh. */
  if (c->nfresh == MESH_API_ACCEPT_BATCH) {
    c->untracked++;
    return NULL;
  }
  struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
  if (bev == NULL) {
    /* evhttp makes one of its own, or fails; either way this connection
     * is not counted. */
    c->untracked++;
    pause_accepting(c, MESH_API_PAUSE_MEMORY);
    return NULL;
  }
  bufferevent_incref(bev);
  c->fresh[c->nfresh++] = bev;
  /* A full batch: yield to the rest of the loop; settle takes the next. */
  if (c->nfresh == MESH_API_ACCEPT_BATCH)
    evconnlistener_disable(c->lev);
  event_active(c->settle, EV_TIMEOUT, 0);
  return bev;
}

/* The connection evhttp made around bev: NULL in *out when evhttp freed it
 * while setting it up (bufferevent_free cleared its callbacks). Returns
 * -ENOTSUP when the callback argument is not a connection of bev's (an
 * evhttp unlike 2.0 to 2.2), else 0. */
static int connection_of(struct bufferevent *bev, struct evhttp_connection **out)
{
  bufferevent_data_cb readcb = NULL;
  void *cbarg = NULL;
  *out = NULL;
  bufferevent_getcb(bev, &readcb, NULL, NULL, &cbarg);
  if (readcb == NULL)
    return 0;
  struct evhttp_connection *evcon = cbarg;
  if (evcon == NULL || evhttp_connection_get_bufferevent(evcon) != bev)
    return -ENOTSUP;
  *out = evcon;
  return 0;
}

static void adopt(mesh_api_conns *c, struct bufferevent *bev)
{
  struct evhttp_connection *evcon;
  int rc = connection_of(bev, &evcon);
  /* evhttp holds its own reference while the connection lives. */
  bufferevent_decref(bev);
  if (rc != 0) {
    c->untracked++;
    MESH_LOG_RL(MESH_LOG_ERROR, "api",
                "control API: this libevent's evhttp does not show its connections; they "
                "are not counted against --api-max-connections");
    return;
  }
  if (evcon == NULL)
    return; /* never served: nothing to count */
  if (c->open >= c->max) {
    c->refused_limit++;
    MESH_LOG_RL(MESH_LOG_WARN, "api",
                "control API: %zu connections open, the most allowed "
                "(--api-max-connections); closing new ones",
                c->open);
    evhttp_connection_free(evcon);
    return;
  }
  c->open++;
  c->accepted++;
  evhttp_connection_set_closecb(evcon, on_close, c);
}

static void on_settle(evutil_socket_t fd, short what, void *arg)
{
  mesh_api_conns *c = arg;
  size_t n = c->nfresh;
  c->nfresh = 0;
  for (size_t i = 0; i < n; i++)
    adopt(c, c->fresh[i]);
  if (n == MESH_API_ACCEPT_BATCH && !c->paused)
    evconnlistener_enable(c->lev);
}

int mesh_api_conns_init(mesh_api_conns *c, struct event_base *base, struct evhttp *http, size_t max,
                        mesh_api_conn_closed_fn closed, void *closed_arg)
{
  *c = (mesh_api_conns){
      .base = base, .http = http, .max = max, .closed = closed, .closed_arg = closed_arg};
  /* Same priority as the listener's event: settle runs in the turn that
   * accepted, before the loop waits for the new sockets. */
  c->settle = event_new(base, -1, 0, on_settle, c);
  c->resume = evtimer_new(base, on_resume, c);
  if (c->settle == NULL || c->resume == NULL) {
    mesh_api_conns_free(c);
    return -ENOMEM;
  }
  evhttp_set_bevcb(http, on_new_bev, c);
  return 0;
}

int mesh_api_conns_listen(mesh_api_conns *c, int fd)
{
  /* The socket already listens (backlog -1: leave it); accepted sockets
   * are non-blocking and close-on-exec. */
  c->lev = evconnlistener_new(c->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                              -1, fd);
  if (c->lev == NULL) {
    close(fd);
    return -ENOMEM;
  }
  evconnlistener_set_error_cb(c->lev, on_accept_error);
  if (evhttp_bind_listener(c->http, c->lev) == NULL) {
    evconnlistener_free(c->lev);
    c->lev = NULL;
    return -ENOMEM;
  }
  /* evhttp made its accept callback and its evhttp the listener's; the
   * error callback stays ours and finds c through the list. */
  if (!c->registered) {
    c->next = listening;
    listening = c;
    c->registered = true;
  }
  return 0;
}

void mesh_api_conns_watch(mesh_api_conns *c, struct evhttp_connection *evcon)
{
  /* The callback adopt set, set again: the same for a counted connection;
   * an uncounted one (rare: see adopt) then takes one off the count when
   * it closes, which errs towards allowing a connection more. */
  evhttp_connection_set_closecb(evcon, on_close, c);
}

void mesh_api_conns_release(mesh_api_conns *c)
{
  for (size_t i = 0; i < c->nfresh; i++)
    bufferevent_decref(c->fresh[i]);
  c->nfresh = 0;
}

void mesh_api_conns_free(mesh_api_conns *c)
{
  mesh_api_conns_release(c);
  for (mesh_api_conns **p = &listening; *p != NULL; p = &(*p)->next) {
    if (*p == c) {
      *p = c->next;
      break;
    }
  }
  c->registered = false;
  if (c->settle != NULL)
    event_free(c->settle);
  if (c->resume != NULL)
    event_free(c->resume);
  c->settle = NULL;
  c->resume = NULL;
}

void mesh_api_conns_metrics(const mesh_api_conns *c, mesh_api_metrics *m)
{
  mesh_api_metric(m, "meshd_api_connections_open", MESH_API_GAUGE,
                  "Control API connections open now.", NULL, (double)c->open);
  mesh_api_metric(m, "meshd_api_connections_max", MESH_API_GAUGE,
                  "Control API connections allowed at once (--api-max-connections).", NULL,
                  (double)c->max);
  mesh_api_metric(m, "meshd_api_connections_accepted_total", MESH_API_COUNTER,
                  "Control API connections accepted and served.", NULL, (double)c->accepted);
  static const char *const refused_limit[] = {"reason", "limit", NULL};
  mesh_api_metric(m, "meshd_api_connections_refused_total", MESH_API_COUNTER,
                  "Control API connections closed as soon as accepted (limit: the cap was "
                  "reached).",
                  refused_limit, (double)c->refused_limit);
  mesh_api_metric(m, "meshd_api_connections_untracked_total", MESH_API_COUNTER,
                  "Control API connections served without being counted against the cap (no "
                  "memory for their buffers, or an evhttp that does not show them).",
                  NULL, (double)c->untracked);
  static const char *const reasons[MESH_API_PAUSE_COUNT] = {"descriptors", "memory", "other"};
  for (int r = 0; r < MESH_API_PAUSE_COUNT; r++) {
    const char *labels[] = {"reason", reasons[r], NULL};
    mesh_api_metric(m, "meshd_api_accept_paused_total", MESH_API_COUNTER,
                    "Times accepting on the control API paused for 100 ms after accept failed "
                    "(descriptors: EMFILE or ENFILE; memory: ENOBUFS or ENOMEM).",
                    labels, (double)c->paused_total[r]);
  }
}
