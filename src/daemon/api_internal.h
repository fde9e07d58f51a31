/*
 * What the files of the control API share and nobody else uses: the server's
 * state, its answers and handlers, the metrics collector behind
 * mesh_api_metrics and the JSON renderings of the backend's records.
 * Everything here runs on the event loop's thread.
 */
#ifndef MESH_DAEMON_API_INTERNAL_H
#define MESH_DAEMON_API_INTERNAL_H

#include "src/daemon/api.h"

#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event;
struct event_base;
struct evconnlistener;
struct evhttp;
struct evhttp_connection;
struct evhttp_request;

/* Bounds of one /metrics answer. */
#define MESH_API_METRICS_MAX_FAMILIES 512
#define MESH_API_METRICS_MAX_TEXT (4u << 20)

/* One family: HELP, TYPE and its samples, written out together. */
typedef struct mesh_api_family {
  char *name; /* owned */
  char *help; /* owned, escaped */
  mesh_api_metric_type type;
  char *text; /* owned: the sample lines */
  size_t len; /* bytes used in text */
  size_t cap; /* bytes allocated for text */
} mesh_api_family;

struct mesh_api_metrics {
  mesh_api_family *fam; /* owned array */
  size_t nfam;
  size_t capfam;
  size_t total;     /* bytes of text held in all families */
  uint64_t dropped; /* samples refused (bounds or bad names) */
};

void mesh_api_metrics_init(mesh_api_metrics *m);
void mesh_api_metrics_free(mesh_api_metrics *m);
/* Writes every family, in order of first appearance, into a new string
 * (caller frees) of *len bytes. NULL when out of memory. */
char *mesh_api_metrics_render(const mesh_api_metrics *m, size_t *len);

/* ---- The listener and its connections (api_conns.c).
 *
 * evhttp accepts through an evconnlistener made here, so that a failed
 * accept (EMFILE and the like) pauses accepting for
 * MESH_API_ACCEPT_PAUSE_MS instead of leaving a readable listener to spin,
 * and at most MESH_API_ACCEPT_BATCH connections are taken per turn of the
 * loop. Every connection evhttp makes is counted from its creation to its
 * close; one above the cap is closed in the same turn it was accepted.
 *
 * libevent 2.1 tells a server nothing about a new connection before its
 * first request, so the count takes two steps: evhttp asks for each
 * connection's bufferevent (evhttp_set_bevcb), made and held here; once the
 * listener's callback has returned (the settle event, in the same turn,
 * before any of the new sockets can be read), the connection evhttp made
 * around it is found as that bufferevent's callback argument (every evhttp
 * from 2.0 to 2.2 passes its connection there; checked with
 * evhttp_connection_get_bufferevent), and its close callback is set.
 */
#define MESH_API_ACCEPT_BATCH 64
#define MESH_API_ACCEPT_PAUSE_MS 100

/* Why accepting paused: the reason label of meshd_api_accept_paused_total. */
enum mesh_api_pause_reason {
  MESH_API_PAUSE_DESCRIPTORS = 0, /* EMFILE, ENFILE */
  MESH_API_PAUSE_MEMORY = 1,      /* ENOBUFS, ENOMEM, or a bufferevent not made */
  MESH_API_PAUSE_OTHER = 2,       /* any other error of accept */
  MESH_API_PAUSE_COUNT
};

/* Called when a counted connection closes, before evhttp frees its
 * requests: the API forgets commands pending on it. */
typedef void (*mesh_api_conn_closed_fn)(void *arg, struct evhttp_connection *evcon);

typedef struct mesh_api_conns {
  struct event_base *base;        /* borrowed */
  struct evhttp *http;            /* borrowed */
  struct evconnlistener *lev;     /* owned by http once bound; NULL before */
  struct event *settle;           /* owned: adopts the connections of a turn */
  struct event *resume;           /* owned: ends a pause */
  mesh_api_conn_closed_fn closed; /* the API's hook */
  void *closed_arg;
  size_t max;    /* the cap on open connections */
  size_t open;   /* counted connections open now */
  bool paused;   /* accepting stopped until resume fires */
  size_t nfresh; /* entries used in fresh */
  /* Bufferevents made this turn and not yet adopted: one reference each is
   * held here, so that none is freed under us before settle. */
  struct bufferevent *fresh[MESH_API_ACCEPT_BATCH];
  uint64_t accepted;                           /* connections counted in all */
  uint64_t refused_limit;                      /* closed at once: over the cap */
  uint64_t untracked;                          /* left to evhttp uncounted */
  uint64_t paused_total[MESH_API_PAUSE_COUNT]; /* pauses by reason */
  struct mesh_api_conns *next;                 /* in the list of those listening */
  bool registered;                             /* on that list */
} mesh_api_conns;

/* Prepares c for http on base. Returns 0 or -ENOMEM. */
int mesh_api_conns_init(mesh_api_conns *c, struct event_base *base, struct evhttp *http, size_t max,
                        mesh_api_conn_closed_fn closed, void *closed_arg);
/* Serves http on fd, a listening socket (taken over: closed by evhttp when
 * freed, or here on failure). Returns 0 or -ENOMEM. */
int mesh_api_conns_listen(mesh_api_conns *c, int fd);
/* Makes sure evcon's close reaches the API's hook, also for a connection
 * that could not be counted (the API holds a command open on it). */
void mesh_api_conns_watch(mesh_api_conns *c, struct evhttp_connection *evcon);
/* Before evhttp_free: drops the references still held. */
void mesh_api_conns_release(mesh_api_conns *c);
/* After evhttp_free: frees the events. */
void mesh_api_conns_free(mesh_api_conns *c);
/* Adds meshd_api_connections_* and meshd_api_accept_paused_total. */
void mesh_api_conns_metrics(const mesh_api_conns *c, mesh_api_metrics *m);

/* ---- Requests a web page could have sent (api_guard.c). */

/* Why a request was refused before it reached an endpoint: the reason
 * label of meshd_api_refused_total. */
enum mesh_api_refusal {
  MESH_API_REFUSED_NONE = -1,
  MESH_API_REFUSED_HOST = 0,         /* Host not a loopback name (DNS rebinding) */
  MESH_API_REFUSED_ORIGIN = 1,       /* Origin or Sec-Fetch-Site of a web page */
  MESH_API_REFUSED_CONTENT_TYPE = 2, /* a change of state without a JSON body type */
  MESH_API_REFUSED_PREFLIGHT = 3,    /* OPTIONS: CORS is never granted */
  MESH_API_REFUSED_COUNT
};

typedef struct mesh_api_guard {
  bool check_host; /* TCP on loopback: only loopback Host values */
  unsigned port;   /* the TCP port bound (0 on a Unix socket: no own origin) */
} mesh_api_guard;

/* Applies the checks to req. Returns MESH_API_REFUSED_NONE, or the reason
 * with a one-line message for the client in why (len bytes). */
enum mesh_api_refusal mesh_api_guard_check(const mesh_api_guard *g, struct evhttp_request *req,
                                           char *why, size_t len);
const char *mesh_api_refusal_name(enum mesh_api_refusal r);

/* JSON renderings (new references; NULL when out of memory). */
json_t *mesh_api_json_self(const mesh_api_self *s);
json_t *mesh_api_json_member(const mesh_api_member *m);
/* Adds d to downloads, an object keyed by owner node ID, wrapped in its
 * status name. Returns 0 or -ENOMEM. */
int mesh_api_json_add_download(json_t *downloads, const mesh_api_download *d);
json_t *mesh_api_json_journal_entry(const mesh_api_journal_entry *e);
const char *mesh_api_member_state_name(mesh_api_member_state s);
const char *mesh_api_download_status_name(mesh_api_download_status s);

/* ---- /state and /downloads rendered on the work pool (api_render.c). */

struct mesh_pool;
typedef struct mesh_api_render mesh_api_render;
/* Sends a rendered answer (rc 0: text of len bytes, else the backend's or
 * the render's error). */
typedef void (*mesh_api_render_send_fn)(void *api, struct evhttp_request *req, int ep, int rc,
                                        const char *text, size_t len);
typedef struct mesh_api_renders {
  struct mesh_pool *pool;       /* borrowed; NULL: render on the loop */
  mesh_api_render_send_fn send; /* the API's */
  mesh_api_render *list;        /* renders under way, owned */
  size_t in_flight;
  uint64_t rendered; /* answers rendered */
  uint64_t on_loop;  /* ... of them on the loop (small) */
  uint64_t dropped;  /* ... whose client had gone */
} mesh_api_renders;
void mesh_api_renders_init(mesh_api_renders *rs, struct mesh_pool *pool,
                           mesh_api_render_send_fn send);
/* Copies the backend's downloads (on the loop, no JSON) and renders the
 * answer, on the pool when it is large: /state when members is not NULL
 * (members and self_json are handed over), else /downloads. */
int mesh_api_render_start(mesh_api_renders *rs, void *api, struct evhttp_request *req, int ep,
                          json_t *members, json_t *self_json, const mesh_api_backend_ops *ops,
                          void *ctx);
/* The connection of some renders closed: their answers are dropped. */
void mesh_api_renders_conn_closed(mesh_api_renders *rs, struct evhttp_connection *evcon);
/* Waits for every render (before the API is freed). */
void mesh_api_renders_flush(mesh_api_renders *rs);

/* ---- The server (api.c) and what its files share. */

/* Endpoints, as named in meshd_api_requests_total{endpoint=...}. */
enum api_endpoint {
  EP_NODE_ID,
  EP_STATE,
  EP_MEMBERS,
  EP_DOWNLOADS,
  EP_JOURNAL,
  EP_METRICS,
  EP_DOWNLOAD_START,
  EP_DOWNLOAD_DELETE,
  EP_DOWNLOAD_CANCEL,
  EP_GC,
  EP_LEAVE,
  EP_TRANSPORT_RESET,
  EP_OTHER,
  EP_COUNT
};

/* Endpoint names, indexed by enum api_endpoint (api_answer.c). */
extern const char *const mesh_api_endpoint_names[EP_COUNT];

/* The statuses the API answers with; counted per endpoint (api_answer.c;
 * the definition's length must match). */
#define MESH_API_NSTATUS 12
extern const int mesh_api_status_codes[MESH_API_NSTATUS];

struct mesh_api {
  struct event_base *base;                      /* borrowed */
  struct evhttp *http;                          /* owned */
  const mesh_api_backend_ops *ops;              /* borrowed */
  void *ctx;                                    /* borrowed, passed to ops */
  bool has_token;                               /* requests must carry the token */
  uint8_t token_hash[crypto_generichash_BYTES]; /* BLAKE2b of the token */
  char bound[128];                              /* the address bound, for messages */
  char *unix_path;                              /* owned; removed on free; NULL for TCP */
  uint64_t counts[EP_COUNT][MESH_API_NSTATUS];  /* answers by endpoint and status */
  mesh_api_conns conns;                         /* the listener and its connections */
  mesh_api_guard guard;                         /* what keeps web pages out */
  mesh_api_renders renders;                     /* /state and /downloads under way */
  uint64_t refused[MESH_API_REFUSED_COUNT];     /* requests refused by the guard, by reason */
  uint64_t next_ticket;                         /* last ticket handed out */
  struct api_pending {
    uint64_t ticket;            /* 0: free slot */
    struct evhttp_request *req; /* held open until the answer */
    enum api_endpoint ep;       /* for counting */
    char node[MESH_API_NODE_ID_MAX];
    char model[MESH_API_MODEL_ID_MAX];
    char revision[MESH_API_REVISION_MAX];
    struct event *timer;  /* the timeout */
    struct mesh_api *api; /* back pointer for the callbacks */
  } pending[MESH_API_MAX_PENDING];
};

/* Answers (api_answer.c). Each counts itself in api->counts. */
void mesh_api_send_body(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep, int code,
                        const char *ctype, const char *body, size_t len);
/* Sends j (a reference is taken over) as the answer. */
void mesh_api_send_json(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep, int code,
                        json_t *j);
void mesh_api_send_error(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep, int code,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void mesh_api_send_backend_error(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep,
                                 int rc, const char *why);

/* Read endpoints (api_reads.c). */
void mesh_api_handle_node_id(mesh_api *api, struct evhttp_request *req);
void mesh_api_handle_members(mesh_api *api, struct evhttp_request *req);
void mesh_api_handle_downloads(mesh_api *api, struct evhttp_request *req);
void mesh_api_handle_state(mesh_api *api, struct evhttp_request *req);
void mesh_api_handle_journal(mesh_api *api, struct evhttp_request *req, const char *query);
void mesh_api_handle_metrics(mesh_api *api, struct evhttp_request *req);
/* The render's answer (a mesh_api_render_send_fn; arg is the API). */
void mesh_api_send_rendered(void *arg, struct evhttp_request *req, int ep, int rc, const char *text,
                            size_t len);

/* Commands (api_commands.c). */
void mesh_api_handle_command(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep,
                             const char *delete_rest, const char *query);
void mesh_api_handle_gc(mesh_api *api, struct evhttp_request *req);
void mesh_api_handle_leave(mesh_api *api, struct evhttp_request *req);
void mesh_api_handle_transport_reset(mesh_api *api, struct evhttp_request *req, const char *rest);
/* Frees p's timer and its slot (the request, if any, is left alone). */
void mesh_api_pending_release(struct api_pending *p);
/* The listener's close hook (a mesh_api_conn_closed_fn; arg is the API). */
void mesh_api_conn_closed(void *arg, struct evhttp_connection *evcon);

/* Routing (api_route.c): evhttp's callback for every request (arg is the
 * API). */
void mesh_api_handle_request(struct evhttp_request *req, void *arg);

#endif
