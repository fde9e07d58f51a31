/*
 * The control API: HTTP/1.1 with JSON bodies, served by libevent's evhttp on
 * the daemon's event loop, for meshctl and for scripts.
 *
 * The API owns no state of the node. Everything it shows and every command
 * it runs goes through a backend: an ops table plus a context pointer that
 * the daemon fills (tests and tests/tools/api_fake.c fill a fake one). All
 * backend calls happen on the event loop's thread, from within a request
 * handler, and must not block: a command is accepted or refused at once and
 * carried out later by the loop.
 *
 * Listening (mesh_api_new): "HOST:PORT", "[V6]:PORT" or "unix:PATH". A Unix
 * socket is created with mode 0600 (a stale socket at PATH is replaced; any
 * other kind of file there is an error). A TCP address that is not loopback
 * (127.0.0.0/8, ::1) is refused unless a token is configured. With a token,
 * every request must carry "Authorization: Bearer <token>" (compared in
 * constant time) or gets 401.
 *
 * Who may call the API. A token, when set, is needed on every request
 * (meshd sets one on every TCP listener: its --api-token, else the
 * contents of $MESH_HOME/api.token; a Unix socket, made 0600, is
 * guarded by file permissions). Whatever the token, a request a web page
 * could have made is refused with 403 {"error"} before anything else is
 * looked at, and counted in meshd_api_refused_total{reason} (api_guard.c):
 *   preflight     any OPTIONS request; no CORS header is ever sent, so a
 *                 browser never lets a page send what would need one;
 *   host          on a loopback TCP listener, a Host that is not localhost,
 *                 127.0.0.0/8 or [::1] (with any port): DNS rebinding;
 *   origin        an Origin other than this API's own loopback origin
 *                 ("null" included), or a Sec-Fetch-Site other than
 *                 "same-origin" or "none";
 *   content_type  a POST, PUT, DELETE or PATCH whose Content-Type is not
 *                 application/json: forms and text/plain bodies are what a
 *                 page may send cross-site without a preflight.
 * A repeated Host, Origin, Sec-Fetch-Site or Content-Type header is refused
 * under the same reason.
 *
 * Endpoints (all answers are JSON, except /metrics, which is Prometheus text
 * format 0.0.4):
 *   GET    /node_id                      {"nodeId", "epoch"}
 *   GET    /state                        EXO shape: topology.nodes, downloads
 *                                        keyed by node ID, members, self
 *   GET    /members                      {"members": [...]}
 *   GET    /downloads                    {"downloads": {nodeId: [...]}}
 *   GET    /journal?limit=N              {"entries": [...]}, newest first
 *   GET    /metrics                      Prometheus text
 *   POST   /download/start               {"targetNodeId","modelId","revision"}
 *   DELETE /download/{nodeId}/{modelId}  modelId may hold a literal or an
 *                                        encoded (%2F) slash: org/name
 *   POST   /download/cancel              {"targetNodeId","modelId"}
 *   POST   /gc                           {"ok": true, "collected": N}
 *   POST   /leave                        {"ok": true}
 *   POST   /transport/reset/{nodeId}     {"ok": true, "targetNodeId"}: destroys
 *                                        the RDMA queue pair to that peer; its
 *                                        datagrams take TCP and RDMA is retried
 *                                        after a backoff (404: no RDMA path)
 * Errors are {"error": "message"} with the status of mesh_api_http_status().
 * Request bodies are capped at MESH_API_MAX_BODY (413 beyond), headers at
 * MESH_API_MAX_HEADERS (libevent answers those itself). Node IDs in requests
 * are full peer IDs; prefixes are meshctl's business.
 *
 * Requests are counted by endpoint and status and shown in /metrics as
 * meshd_api_requests_total{endpoint,code}.
 *
 * Connections: at most max_connections are open at once (the cap); one
 * more is closed as soon as it is accepted, without an answer, and counted
 * (meshd_api_connections_refused_total{reason="limit"}). When accept fails
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM, ...) accepting pauses for 100 ms
 * (meshd_api_accept_paused_total{reason}) rather than spinning; at most 64
 * connections are accepted per turn of the loop. Idle connections are
 * closed after 30 s.
 */
#ifndef MESH_DAEMON_API_H
#define MESH_DAEMON_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

#define MESH_API_DEFAULT_ADDR "127.0.0.1:52417"
/* Largest request body handled; larger gets 413 {"error"}. */
#define MESH_API_MAX_BODY (64 * 1024)
/* libevent's own hard cap, above which it answers 413 itself (with its own
 * HTML body) before the request reaches the API; it bounds memory while a
 * body is read. */
#define MESH_API_MAX_BODY_HARD (1024 * 1024)
#define MESH_API_MAX_HEADERS (16 * 1024)
/* Bounds of the text fields of a command. */
#define MESH_API_NODE_ID_MAX 72   /* peer ID text, as MESH_PEER_ID_TEXT_MAX */
#define MESH_API_MODEL_ID_MAX 256 /* "org/name" */
#define MESH_API_REVISION_MAX 128 /* branch, tag or commit */
#define MESH_API_JOURNAL_DEFAULT 100
#define MESH_API_JOURNAL_MAX 10000

/* ---- What the backend shows. Strings are borrowed: valid only during the
 * call that hands them over (or, for get_self, until the handler returns). */

typedef enum mesh_api_member_state {
  MESH_API_ALIVE = 0,
  MESH_API_SUSPECT = 1,
  MESH_API_DEAD = 2,
  MESH_API_LEFT = 3,
} mesh_api_member_state;

typedef struct mesh_api_self {
  const char *peer_id;      /* base58 text */
  uint64_t epoch;           /* this run's epoch */
  const char *const *addrs; /* listen addresses, multiaddr text */
  size_t naddrs;
  const char *agent; /* "meshd/0.1.0" */
} mesh_api_self;

typedef struct mesh_api_member {
  const char *peer_id;
  const char *const *addrs;
  size_t naddrs;
  uint64_t epoch;
  uint64_t incarnation;
  mesh_api_member_state state;
  uint64_t state_ms;        /* time spent in the current state */
  const char *transport;    /* "tcp", "rdma", or NULL when none is connected */
  const char *frame_cipher; /* the connection's frame cipher ("aes-256-gcm", ...), or NULL */
  bool is_self;             /* the node itself (listed too, as alive) */
} mesh_api_member;

typedef enum mesh_api_download_status {
  MESH_API_DL_PENDING = 0,
  MESH_API_DL_ONGOING = 1,
  MESH_API_DL_COMPLETED = 2,
  MESH_API_DL_FAILED = 3,
  MESH_API_DL_DELETING = 4,
} mesh_api_download_status;

typedef struct mesh_api_download {
  const char *owner_id; /* the node that owns the entry */
  uint64_t owner_epoch;
  const char *model_id; /* "org/name" */
  const char *revision;
  mesh_api_download_status status;
  uint64_t bytes_done;
  uint64_t bytes_total; /* 0 when not known yet */
  uint32_t files_done;
  uint32_t files_total;
  uint64_t speed_bps;        /* bytes per second, ongoing only */
  int64_t eta_ms;            /* -1 when unknown */
  const char *model_dir;     /* absolute path of the files on the owner; may be NULL */
  const char *error;         /* failed only; may be NULL otherwise */
  bool abandoned;            /* owner dead or left: shown until collected */
  uint64_t collect_in_ms;    /* abandoned only: time left before collection */
  bool has_sources;          /* this node's own entry, fetched in this run: the fields below */
  uint64_t hub_bytes;        /* bytes received from the Hub */
  uint64_t peer_bytes;       /* bytes received from peers */
  uint64_t source_speed_bps; /* the last speed measured (0 once done) */
  const char *peers;         /* peer IDs bytes came from, comma-separated; "" none */
  /* Own entry whose last run took its file list from a member: that peer
   * ID (kept across restarts); NULL: the Hub's (shown when has_sources). */
  const char *file_list_source;
} mesh_api_download;

typedef struct mesh_api_journal_entry {
  uint64_t seq;         /* increasing */
  int64_t unix_ms;      /* wall time of the record */
  const char *kind;     /* short word: "start", "delete", "collect", ... */
  const char *node_id;  /* may be NULL */
  const char *model_id; /* may be NULL */
  const char *message;  /* why, in words */
} mesh_api_journal_entry;

/* Called once per item; return 0 to go on, nonzero to stop early. */
typedef int (*mesh_api_member_fn)(void *arg, const mesh_api_member *m);
typedef int (*mesh_api_download_fn)(void *arg, const mesh_api_download *d);
typedef int (*mesh_api_journal_fn)(void *arg, const mesh_api_journal_entry *e);

/* ---- Metrics. The backend adds samples through mesh_api_metric(); the API
 * groups them by family and writes HELP and TYPE once per family, and adds
 * its own meshd_api_requests_total{endpoint,code} and its connection figures
 * (meshd_api_connections_open, _max, _accepted_total, _refused_total{reason},
 * _untracked_total, meshd_api_accept_paused_total{reason}). The node's families (the
 * daemon's metrics.c adds these and more; dashboards rely on the names):
 *   meshd_members{state}                         gauge
 *   meshd_swim_probes_total                      counter
 *   meshd_swim_suspicions_total                  counter
 *   meshd_swim_refutations_total                 counter
 *   meshd_transport_bytes_total{transport,dir}   counter  (tcp|rdma, out|in)
 *   meshd_transport_frames_total{transport,dir}  counter
 *   meshd_drops_total{transport,reason}          counter
 *   meshd_gc_collected_total                     counter
 *   meshd_journal_records                        gauge
 *   meshd_store_backlog_batches                  gauge
 *   meshd_disk_slices_total                      counter
 *   meshd_download_bytes_total                   counter
 *   meshd_epoch_renewals_total                   counter
 *   meshd_loop_lag_seconds                       histogram (mesh_api_histogram)
 *   meshd_loop_lag_max_seconds                   gauge
 */
typedef struct mesh_api_metrics mesh_api_metrics;

typedef enum mesh_api_metric_type {
  MESH_API_COUNTER = 0,
  MESH_API_GAUGE = 1,
  MESH_API_HISTOGRAM = 2, /* only through mesh_api_histogram */
} mesh_api_metric_type;

/*
 * Adds one sample. name: [a-zA-Z_:][a-zA-Z0-9_:]*; labels: NULL or a
 * NULL-terminated list of name, value, name, value, ... (values escaped
 * here). The first sample of a family fixes its type and help. Returns 0,
 * -EINVAL (bad name, or a type that disagrees with the family's) or
 * -EMSGSIZE (too many families or too much text; the sample is dropped).
 */
int mesh_api_metric(mesh_api_metrics *m, const char *name, mesh_api_metric_type type,
                    const char *help, const char *const *labels, double value);

/* Most buckets one histogram sample may have (the +Inf bucket apart). */
#define MESH_API_HISTOGRAM_MAX_BUCKETS 32

/*
 * Adds one histogram (a Prometheus histogram family of that name): n
 * buckets with upper bounds bounds[0..n) (strictly increasing, finite) and
 * counts[i] the observations that fell in bucket i alone (above bounds[i-1],
 * at most bounds[i]); count observations in all (those above the last bound
 * are count minus the buckets' sum) adding up to sum. Written as
 * name_bucket{labels,le="..."} with cumulative counts, le="+Inf" = count,
 * then name_sum and name_count. labels as for mesh_api_metric, without
 * "le". Returns 0, -EINVAL (bad name, labels or bounds, buckets holding more
 * than count, or a family of another type) or -EMSGSIZE.
 */
int mesh_api_histogram(mesh_api_metrics *m, const char *name, const char *help,
                       const char *const *labels, const double *bounds, const uint64_t *counts,
                       size_t n, double sum, uint64_t count);

/* ---- The backend. Each command returns 0 or a negative errno and may
 * write a one-line reason into err (errlen bytes); the API maps the code
 * with mesh_api_http_status(). */
/* What a command op is told of the request it serves. */
typedef struct mesh_api_call {
  uint64_t ticket; /* names this request's answer when the op returns MESH_API_PENDING */
} mesh_api_call;

typedef struct mesh_api_backend_ops {
  /* Fills *out; strings stay valid until the request handler returns. */
  int (*get_self)(void *ctx, mesh_api_self *out);
  /* Every member known, the node itself included (is_self). */
  int (*list_members)(void *ctx, mesh_api_member_fn fn, void *arg);
  /* Every download entry known: own ones and the replicas of others'. */
  int (*list_downloads)(void *ctx, mesh_api_download_fn fn, void *arg);
  /* Up to limit journal records, newest first. */
  int (*journal)(void *ctx, size_t limit, mesh_api_journal_fn fn, void *arg);
  /* Adds the node's metrics (may be NULL). */
  void (*metrics)(void *ctx, mesh_api_metrics *m);
  /* Commands. call describes the request served (borrowed for the call);
   * node is a full peer ID text; model "org/name". Errors: -EINVAL bad
   * argument, -ENOENT unknown node or model, -EHOSTUNREACH node not in the
   * view, -ESTALE old epoch, -EEXIST/-EBUSY conflicting state. */
  int (*start)(void *ctx, const mesh_api_call *call, const char *node, const char *model,
               const char *revision, char *err, size_t errlen);
  /* Delete and cancel address one revision's entry (and directory). */
  int (*delete_model)(void *ctx, const mesh_api_call *call, const char *node, const char *model,
                      const char *revision, char *err, size_t errlen);
  int (*cancel)(void *ctx, const mesh_api_call *call, const char *node, const char *model,
                const char *revision, char *err, size_t errlen);
  /* Runs a collection pass now; *collected receives the entries removed. */
  int (*gc)(void *ctx, uint64_t *collected, char *err, size_t errlen);
  /* Starts a graceful leave. Must not free the API from within the call:
   * the answer is sent after it returns; stop the loop later. */
  int (*leave)(void *ctx, char *err, size_t errlen);
  /* Optional (NULL: 501): destroys the RDMA queue pair to node (full peer
   * ID text), which then falls back to TCP and retries RDMA later.
   * -ENOENT when that peer has no RDMA path. */
  int (*transport_reset)(void *ctx, const char *node, char *err, size_t errlen);
} mesh_api_backend_ops;

/*
 * Commands carried to another node. A command op may return
 * MESH_API_PENDING: the command was handed to the target node and its
 * answer comes later. The request is then held open (at most
 * MESH_API_MAX_PENDING at once, each for at most MESH_API_PENDING_TIMEOUT_MS)
 * until the backend calls mesh_api_command_done with the ticket the op was
 * given in its mesh_api_call; past the timeout the client
 * gets 504, saying the command may still be carried out.
 */
#define MESH_API_PENDING 1
#define MESH_API_MAX_PENDING 64
#define MESH_API_PENDING_TIMEOUT_MS 10000

/* Connections open at once by default (--api-max-connections). */
#define MESH_API_DEFAULT_MAX_CONNECTIONS 64

typedef struct mesh_api_options {
  const char *addr;       /* NULL: MESH_API_DEFAULT_ADDR */
  const char *token;      /* NULL or "": no token (loopback only) */
  size_t max_connections; /* 0: MESH_API_DEFAULT_MAX_CONNECTIONS */
  struct mesh_pool *pool; /* renders /state and /downloads off the loop; NULL: on it */
} mesh_api_options;

typedef struct mesh_api mesh_api;

/*
 * Starts serving on base. ops and ctx are borrowed for the API's lifetime;
 * every operation but metrics is required (-EINVAL otherwise).
 * Errors: -EINVAL bad address, -EACCES non-loopback address without a token,
 * -ENAMETOOLONG Unix path too long, -EEXIST a non-socket file at the Unix
 * path, and the errno of a failed socket call. err receives one line.
 */
int mesh_api_new(struct event_base *base, const mesh_api_options *opt,
                 const mesh_api_backend_ops *ops, void *ctx, mesh_api **out, char *err,
                 size_t errlen);
/* Stops listening, drops open connections, removes a Unix socket file. */
void mesh_api_free(mesh_api *api);

/* The answer to a pending command: rc 0 (message says what was done) or a
 * negative errno with the target's message. Unknown or expired tickets are
 * ignored (returns -ENOENT). */
int mesh_api_command_done(mesh_api *api, uint64_t ticket, int rc, const char *message);
/* The address actually bound ("127.0.0.1:40123" after port 0, or
 * "unix:PATH"), into buf of len bytes. */
void mesh_api_address(const mesh_api *api, char *buf, size_t len);
/* The listener's figures, as in /metrics. */
typedef struct mesh_api_conn_stats {
  uint64_t open;          /* connections open now */
  uint64_t max;           /* the cap */
  uint64_t accepted;      /* connections served since start */
  uint64_t refused_limit; /* closed at once: the cap was reached */
  uint64_t untracked;     /* served without being counted */
  uint64_t accept_paused; /* pauses after a failed accept, all reasons */
} mesh_api_conn_stats;
void mesh_api_connection_stats(const mesh_api *api, mesh_api_conn_stats *out);
/* Requests refused by the web-page checks for reason "host", "origin",
 * "content_type" or "preflight" (meshd_api_refused_total); for tests. */
uint64_t mesh_api_refused_count(const mesh_api *api, const char *reason);
/* Requests answered with code on the endpoint named as in /metrics
 * ("state", "download_start", ..., "other"); for tests. */
uint64_t mesh_api_request_count(const mesh_api *api, const char *endpoint, int code);

/*
 * The HTTP status for a backend error: -EINVAL/-EBADMSG 400, -ENOENT 404,
 * -EHOSTUNREACH/-ESTALE/-EEXIST/-EBUSY/-EALREADY 409, -EMSGSIZE 413,
 * -EACCES/-EPERM 403, -ENOSYS/-EOPNOTSUPP 501, -EAGAIN 503, anything
 * else 500.
 */
int mesh_api_http_status(int err);

/* ---- Header checks (api_guard.c), pure functions, fuzzed. value is a
 * header's value as received (NULL when absent: false). */

/* A Host value naming this machine's loopback: "localhost", an IPv4
 * address in 127.0.0.0/8 or "[::1]" (or "[::ffff:127.x.y.z]"), each with
 * or without ":PORT". Not "0.0.0.0", not any other name. */
bool mesh_api_host_is_loopback(const char *value);
/* An Origin value that is this API's own origin on loopback:
 * "http://" + a loopback host as above + the port the API listens on
 * (":80" may be left out). "null" and everything else are foreign. */
bool mesh_api_origin_is_own(const char *value, unsigned port);
/* "application/json", in any case, optionally followed by parameters
 * ("; charset=utf-8"); not "application/json-seq" or "text/plain". */
bool mesh_api_content_type_is_json(const char *value);

/* ---- Request parsing (api_request.c), pure functions, fuzzed. */

typedef struct mesh_api_cmd {
  char node[MESH_API_NODE_ID_MAX];
  char model[MESH_API_MODEL_ID_MAX];
  char revision[MESH_API_REVISION_MAX]; /* "main" when not given */
} mesh_api_cmd;

/* A body of POST /download/start or /download/cancel: "targetNodeId",
 * "modelId" and, with with_revision, "revision" (default "main"; both
 * endpoints take it). Returns 0 or -EBADMSG with err naming the field. */
int mesh_api_parse_command(const char *body, size_t len, bool with_revision, mesh_api_cmd *out,
                           char *err, size_t errlen);
/* The part of a DELETE path after "/download/": "{nodeId}/{modelId}",
 * percent-encoded; out->revision is "main". Returns 0 or -EBADMSG. */
int mesh_api_parse_delete_path(const char *rest, size_t len, mesh_api_cmd *out, char *err,
                               size_t errlen);
/* The query of a DELETE /download/...: "revision=R" (percent-encoded) or
 * nothing (query NULL or empty: "main"), into revision (cap bytes). Any
 * other parameter is refused, so that a misspelt one never deletes main.
 * Returns 0 or -EBADMSG. */
int mesh_api_parse_revision_query(const char *query, char *revision, size_t cap, char *err,
                                  size_t errlen);
/* "limit=N" from a query string (may be NULL). Returns 0 or -EBADMSG. */
int mesh_api_parse_journal_limit(const char *query, size_t *limit, char *err, size_t errlen);
/* Field checks: a peer ID text (base58 or base32 alphabet), a model ID
 * ("name" or "org/name" of [A-Za-z0-9._-], no "." or ".." parts), a
 * revision ([A-Za-z0-9._/-], no ".." part). */
bool mesh_api_valid_node_id(const char *s);
bool mesh_api_valid_model_id(const char *s);
bool mesh_api_valid_revision(const char *s);
/* Strict percent-decoding into out (cap bytes, NUL-terminated): "%" must be
 * followed by two hex digits and the result may not contain NUL. Returns 0,
 * -EBADMSG or -EMSGSIZE. */
int mesh_api_percent_decode(const char *in, size_t len, char *out, size_t cap);

#endif
