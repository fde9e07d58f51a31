/*
 * The control API's server: listening (TCP on loopback, or a Unix socket),
 * the token check, routing, and the answers. See api.h for the endpoints.
 */
#include "src/daemon/api.h"
#include "src/base/platform.h"

#include "src/base/err.h"
#include "src/base/log.h"
#include "src/daemon/api_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

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

static const char *const endpoint_names[EP_COUNT] = {
    "node_id", "state",           "members",         "downloads",       "journal",
    "metrics", "download_start",  "download_delete", "download_cancel", "gc",
    "leave",   "transport_reset", "other",
};

/* The statuses the API answers with; counted per endpoint. */
static const int status_codes[] = {200, 400, 401, 403, 404, 405, 409, 413, 500, 501, 503, 504};
#define NSTATUS (sizeof(status_codes) / sizeof(status_codes[0]))

struct mesh_api {
  struct event_base *base;                      /* borrowed */
  struct evhttp *http;                          /* owned */
  const mesh_api_backend_ops *ops;              /* borrowed */
  void *ctx;                                    /* borrowed, passed to ops */
  bool has_token;                               /* requests must carry the token */
  uint8_t token_hash[crypto_generichash_BYTES]; /* BLAKE2b of the token */
  char bound[128];                              /* the address bound, for messages */
  char *unix_path;                              /* owned; removed on free; NULL for TCP */
  uint64_t counts[EP_COUNT][NSTATUS];           /* answers by endpoint and status */
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

int mesh_api_http_status(int err)
{
  switch (err) {
  case 0:
    return 200;
  case -EINVAL:
  case -EBADMSG:
    return 400;
  case -EACCES:
  case -EPERM:
    return 403;
  case -ENOENT:
    return 404;
  case -EHOSTUNREACH:
  case -ESTALE:
  case -EEXIST:
  case -EBUSY:
  case -EALREADY:
  case -EDQUOT: /* a node's share of another's entries is full (--command-quota) */
    return 409;
  case -EMSGSIZE:
    return 413;
  case -ENOSYS:
  case -EOPNOTSUPP:
    return 501;
  case -EAGAIN:
    return 503;
  default:
    return 500;
  }
}

static const char *reason_phrase(int code)
{
  switch (code) {
  case 200:
    return "OK";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 409:
    return "Conflict";
  case 413:
    return "Payload Too Large";
  case 501:
    return "Not Implemented";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  default:
    return "Internal Server Error";
  }
}

static void count(mesh_api *api, enum api_endpoint ep, int code)
{
  for (size_t i = 0; i < NSTATUS; i++) {
    if (status_codes[i] == code) {
      api->counts[ep][i]++;
      return;
    }
  }
}

uint64_t mesh_api_refused_count(const mesh_api *api, const char *reason)
{
  for (int r = 0; r < MESH_API_REFUSED_COUNT; r++) {
    if (strcmp(mesh_api_refusal_name((enum mesh_api_refusal)r), reason) == 0)
      return api->refused[r];
  }
  return 0;
}

uint64_t mesh_api_request_count(const mesh_api *api, const char *endpoint, int code)
{
  for (int e = 0; e < EP_COUNT; e++) {
    if (strcmp(endpoint_names[e], endpoint) != 0)
      continue;
    for (size_t i = 0; i < NSTATUS; i++) {
      if (status_codes[i] == code)
        return api->counts[e][i];
    }
  }
  return 0;
}

/* ---- Answers. */

static void send_body(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep, int code,
                      const char *ctype, const char *body, size_t len)
{
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Content-Type", ctype);
  evhttp_add_header(h, "Cache-Control", "no-store");
  struct evbuffer *buf = evbuffer_new();
  if (buf == NULL || evbuffer_add(buf, body, len) < 0) {
    if (buf != NULL)
      evbuffer_free(buf);
    evhttp_send_error(req, 500, NULL);
    count(api, ep, 500);
    return;
  }
  evhttp_send_reply(req, code, reason_phrase(code), buf);
  evbuffer_free(buf);
  count(api, ep, code);
}

/* Sends j (a reference is taken over) as the answer. */
static void send_json(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep, int code,
                      json_t *j)
{
  char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (text == NULL) {
    static const char oom[] = "{\"error\":\"out of memory\"}\n";
    send_body(api, req, ep, 500, "application/json", oom, sizeof(oom) - 1);
    return;
  }
  size_t n = strlen(text);
  char *line = realloc(text, n + 2);
  if (line == NULL) {
    send_body(api, req, ep, code, "application/json", text, n);
    free(text);
    return;
  }
  line[n] = '\n';
  line[n + 1] = '\0';
  send_body(api, req, ep, code, "application/json", line, n + 1);
  free(line);
}

static void send_error(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep, int code,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void send_error(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep, int code,
                       const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  json_t *j = json_pack("{s:s}", "error", msg);
  if (j == NULL)
    j = json_pack("{s:s}", "error", "request failed");
  send_json(api, req, ep, code, j);
}

static void send_backend_error(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep,
                               int rc, const char *why)
{
  int code = mesh_api_http_status(rc);
  if (why != NULL && why[0] != '\0')
    send_error(api, req, ep, code, "%s", why);
  else
    send_error(api, req, ep, code, "%s", mesh_strerror(rc));
}

/* ---- Read endpoints. */

static int collect_member(void *arg, const mesh_api_member *m)
{
  json_t *j = mesh_api_json_member(m);
  if (j == NULL)
    return -ENOMEM;
  return json_array_append_new(arg, j) < 0 ? -ENOMEM : 0;
}

static int collect_journal(void *arg, const mesh_api_journal_entry *e)
{
  json_t *j = mesh_api_json_journal_entry(e);
  if (j == NULL)
    return -ENOMEM;
  return json_array_append_new(arg, j) < 0 ? -ENOMEM : 0;
}

static int get_members(mesh_api *api, json_t **out)
{
  json_t *a = json_array();
  if (a == NULL)
    return -ENOMEM;
  int rc = api->ops->list_members(api->ctx, collect_member, a);
  if (rc < 0) {
    json_decref(a);
    return rc;
  }
  *out = a;
  return 0;
}

static void handle_node_id(mesh_api *api, struct evhttp_request *req)
{
  mesh_api_self self = {0};
  int rc = api->ops->get_self(api->ctx, &self);
  if (rc < 0) {
    send_backend_error(api, req, EP_NODE_ID, rc, NULL);
    return;
  }
  send_json(api, req, EP_NODE_ID, 200,
            json_pack("{s:s?, s:I}", "nodeId", self.peer_id, "epoch", (json_int_t)self.epoch));
}

static void handle_members(mesh_api *api, struct evhttp_request *req)
{
  json_t *members = NULL;
  int rc = get_members(api, &members);
  if (rc < 0) {
    send_backend_error(api, req, EP_MEMBERS, rc, NULL);
    return;
  }
  send_json(api, req, EP_MEMBERS, 200, json_pack("{s:o}", "members", members));
}

/* The render's answer (api_render.c). */
static void send_rendered(void *arg, struct evhttp_request *req, int ep, int rc, const char *text,
                          size_t len)
{
  mesh_api *api = arg;
  if (rc == 0 && text != NULL)
    send_body(api, req, (enum api_endpoint)ep, 200, "application/json", text, len);
  else
    send_backend_error(api, req, (enum api_endpoint)ep, rc != 0 ? rc : -ENOMEM, NULL);
}

/* Starts a render of /state (members given) or /downloads; the answer goes
 * out when it is done. */
static void render(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep, json_t *members,
                   json_t *self_json)
{
  mesh_api_conns_watch(&api->conns, evhttp_request_get_connection(req));
  int rc =
      mesh_api_render_start(&api->renders, api, req, ep, members, self_json, api->ops, api->ctx);
  if (rc != 0)
    send_backend_error(api, req, ep, rc, NULL);
}

static void handle_downloads(mesh_api *api, struct evhttp_request *req)
{
  render(api, req, EP_DOWNLOADS, NULL, NULL);
}

static void handle_state(mesh_api *api, struct evhttp_request *req)
{
  mesh_api_self self = {0};
  json_t *members = NULL;
  int rc = api->ops->get_self(api->ctx, &self);
  json_t *self_json = rc == 0 ? mesh_api_json_self(&self) : NULL;
  if (rc == 0)
    rc = get_members(api, &members);
  if (rc < 0 || self_json == NULL) {
    json_decref(self_json);
    json_decref(members);
    send_backend_error(api, req, EP_STATE, rc < 0 ? rc : -ENOMEM, NULL);
    return;
  }
  render(api, req, EP_STATE, members, self_json);
}

static void handle_journal(mesh_api *api, struct evhttp_request *req, const char *query)
{
  size_t limit;
  char why[128] = "";
  if (mesh_api_parse_journal_limit(query, &limit, why, sizeof(why)) < 0) {
    send_error(api, req, EP_JOURNAL, 400, "%s", why);
    return;
  }
  json_t *a = json_array();
  if (a == NULL) {
    send_backend_error(api, req, EP_JOURNAL, -ENOMEM, NULL);
    return;
  }
  int rc = api->ops->journal(api->ctx, limit, collect_journal, a);
  if (rc < 0) {
    json_decref(a);
    send_backend_error(api, req, EP_JOURNAL, rc, NULL);
    return;
  }
  send_json(api, req, EP_JOURNAL, 200, json_pack("{s:o}", "entries", a));
}

static void handle_metrics(mesh_api *api, struct evhttp_request *req)
{
  mesh_api_metrics m;
  mesh_api_metrics_init(&m);
  if (api->ops->metrics != NULL)
    api->ops->metrics(api->ctx, &m);
  /* This request shows among the answers, as if already sent. */
  for (int e = 0; e < EP_COUNT; e++) {
    for (size_t s = 0; s < NSTATUS; s++) {
      uint64_t n = api->counts[e][s];
      if (e == EP_METRICS && status_codes[s] == 200)
        n++;
      if (n == 0)
        continue;
      char code[8];
      snprintf(code, sizeof(code), "%d", status_codes[s]);
      const char *labels[] = {"endpoint", endpoint_names[e], "code", code, NULL};
      mesh_api_metric(&m, "meshd_api_requests_total", MESH_API_COUNTER,
                      "Control API requests answered, by endpoint and status.", labels, (double)n);
    }
  }
  for (int r = 0; r < MESH_API_REFUSED_COUNT; r++) {
    const char *labels[] = {"reason", mesh_api_refusal_name((enum mesh_api_refusal)r), NULL};
    mesh_api_metric(&m, "meshd_api_refused_total", MESH_API_COUNTER,
                    "Control API requests refused as a web page's (Host, Origin, Content-Type, "
                    "preflight).",
                    labels, (double)api->refused[r]);
  }
  mesh_api_conns_metrics(&api->conns, &m);
  mesh_api_metric(&m, "meshd_api_metric_samples_dropped", MESH_API_GAUGE,
                  "Samples of this answer refused (bad names or bounds).", NULL, (double)m.dropped);
  size_t len = 0;
  char *text = mesh_api_metrics_render(&m, &len);
  mesh_api_metrics_free(&m);
  if (text == NULL) {
    send_backend_error(api, req, EP_METRICS, -ENOMEM, NULL);
    return;
  }
  send_body(api, req, EP_METRICS, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
  free(text);
}

/* ---- Commands. */

static const char *body_of(struct evhttp_request *req, size_t *len)
{
  struct evbuffer *in = evhttp_request_get_input_buffer(req);
  *len = evbuffer_get_length(in);
  if (*len == 0)
    return "";
  return (const char *)evbuffer_pullup(in, -1);
}

static void pending_release(struct api_pending *p)
{
  if (p->timer != NULL) {
    event_free(p->timer);
    p->timer = NULL;
  }
  p->ticket = 0;
  p->req = NULL;
}

/* A connection closed (the listener's close hook): a command pending on it
 * is forgotten, since its client went away (libevent frees the request). */
static void api_conn_closed(void *arg, struct evhttp_connection *evcon)
{
  mesh_api *api = arg;
  mesh_api_renders_conn_closed(&api->renders, evcon);
  for (size_t i = 0; i < MESH_API_MAX_PENDING; i++) {
    struct api_pending *p = &api->pending[i];
    if (p->ticket != 0 && p->req != NULL && evhttp_request_get_connection(p->req) == evcon) {
      p->req = NULL;
      pending_release(p);
    }
  }
}

static void pending_timeout(evutil_socket_t fd, short what, void *arg)
{
  struct api_pending *p = arg;
  mesh_api *api = p->api;
  struct evhttp_request *req = p->req;
  enum api_endpoint ep = p->ep;
  char node[MESH_API_NODE_ID_MAX];
  snprintf(node, sizeof(node), "%s", p->node);
  pending_release(p);
  if (req != NULL)
    send_error(api, req, ep, 504,
               "no answer from node %s within %d s; the command may still be carried out", node,
               MESH_API_PENDING_TIMEOUT_MS / 1000);
}

/* Holds req open until mesh_api_command_done(ticket) or the timeout.
 * Returns 0, or -EBUSY when too many commands are pending. */
static int pending_hold(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep,
                        uint64_t ticket, const mesh_api_cmd *cmd)
{
  for (size_t i = 0; i < MESH_API_MAX_PENDING; i++) {
    struct api_pending *p = &api->pending[i];
    if (p->ticket != 0)
      continue;
    p->timer = evtimer_new(api->base, pending_timeout, p);
    if (p->timer == NULL)
      return -ENOMEM;
    p->ticket = ticket;
    p->req = req;
    p->ep = ep;
    p->api = api;
    snprintf(p->node, sizeof(p->node), "%s", cmd->node);
    snprintf(p->model, sizeof(p->model), "%s", cmd->model);
    snprintf(p->revision, sizeof(p->revision), "%s", cmd->revision);
    struct timeval tv = {MESH_API_PENDING_TIMEOUT_MS / 1000,
                         (MESH_API_PENDING_TIMEOUT_MS % 1000) * 1000};
    evtimer_add(p->timer, &tv);
    mesh_api_conns_watch(&api->conns, evhttp_request_get_connection(req));
    return 0;
  }
  return -EBUSY;
}

void mesh_api_connection_stats(const mesh_api *api, mesh_api_conn_stats *out)
{
  const mesh_api_conns *c = &api->conns;
  *out = (mesh_api_conn_stats){.open = c->open,
                               .max = c->max,
                               .accepted = c->accepted,
                               .refused_limit = c->refused_limit,
                               .untracked = c->untracked};
  for (int r = 0; r < MESH_API_PAUSE_COUNT; r++)
    out->accept_paused += c->paused_total[r];
}

int mesh_api_command_done(mesh_api *api, uint64_t ticket, int rc, const char *message)
{
  for (size_t i = 0; i < MESH_API_MAX_PENDING; i++) {
    struct api_pending *p = &api->pending[i];
    if (p->ticket != ticket || ticket == 0)
      continue;
    struct evhttp_request *req = p->req;
    enum api_endpoint ep = p->ep;
    json_t *j = NULL;
    if (rc == 0)
      j = json_pack("{s:b, s:s, s:s, s:s, s:s}", "ok", 1, "targetNodeId", p->node, "modelId",
                    p->model, "revision", p->revision, "message", message != NULL ? message : "");
    pending_release(p);
    if (req == NULL)
      return 0;
    if (rc == 0)
      send_json(api, req, ep, 200, j);
    else
      send_backend_error(api, req, ep, rc, message);
    return 0;
  }
  return -ENOENT;
}

static void handle_command(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep,
                           const char *delete_rest, const char *query)
{
  mesh_api_cmd cmd;
  char why[256] = "";
  int rc;
  if (ep == EP_DOWNLOAD_DELETE) {
    rc = mesh_api_parse_delete_path(delete_rest, strlen(delete_rest), &cmd, why, sizeof(why));
    if (rc == 0)
      rc = mesh_api_parse_revision_query(query, cmd.revision, sizeof(cmd.revision), why,
                                         sizeof(why));
  } else {
    size_t len;
    const char *body = body_of(req, &len);
    if (body == NULL) {
      send_backend_error(api, req, ep, -ENOMEM, NULL);
      return;
    }
    rc = mesh_api_parse_command(body, len, true, &cmd, why, sizeof(why));
  }
  if (rc < 0) {
    send_error(api, req, ep, 400, "%s", why);
    return;
  }
  why[0] = '\0';
  mesh_api_call call = {.ticket = ++api->next_ticket};
  switch (ep) {
  case EP_DOWNLOAD_START:
    rc = api->ops->start(api->ctx, &call, cmd.node, cmd.model, cmd.revision, why, sizeof(why));
    break;
  case EP_DOWNLOAD_DELETE:
    rc = api->ops->delete_model(api->ctx, &call, cmd.node, cmd.model, cmd.revision, why,
                                sizeof(why));
    break;
  default:
    rc = api->ops->cancel(api->ctx, &call, cmd.node, cmd.model, cmd.revision, why, sizeof(why));
    break;
  }
  uint64_t ticket = call.ticket;
  if (rc < 0) {
    send_backend_error(api, req, ep, rc, why);
    return;
  }
  if (rc == MESH_API_PENDING) {
    /* Carried to another node: answer when it answers. */
    int hold = pending_hold(api, req, ep, ticket, &cmd);
    if (hold != 0)
      send_error(api, req, ep, 503,
                 "too many commands waiting for other nodes; the command was sent to %s", cmd.node);
    return;
  }
  LOG_INFO("api", "%s %s@%s on %s accepted", endpoint_names[ep], cmd.model, cmd.revision, cmd.node);
  json_t *j = json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "targetNodeId", cmd.node, "modelId",
                        cmd.model, "revision", cmd.revision);
  send_json(api, req, ep, 200, j);
}

static void handle_gc(mesh_api *api, struct evhttp_request *req)
{
  uint64_t collected = 0;
  char why[256] = "";
  int rc = api->ops->gc(api->ctx, &collected, why, sizeof(why));
  if (rc < 0) {
    send_backend_error(api, req, EP_GC, rc, why);
    return;
  }
  send_json(api, req, EP_GC, 200,
            json_pack("{s:b, s:I}", "ok", 1, "collected", (json_int_t)collected));
}

static void handle_leave(mesh_api *api, struct evhttp_request *req)
{
  char why[256] = "";
  int rc = api->ops->leave(api->ctx, why, sizeof(why));
  if (rc < 0) {
    send_backend_error(api, req, EP_LEAVE, rc, why);
    return;
  }
  LOG_INFO("api", "leave requested");
  send_json(api, req, EP_LEAVE, 200, json_pack("{s:b}", "ok", 1));
}

static void handle_transport_reset(mesh_api *api, struct evhttp_request *req, const char *rest)
{
  char node[MESH_API_NODE_ID_MAX];
  if (mesh_api_percent_decode(rest, strlen(rest), node, sizeof node) != 0 ||
      !mesh_api_valid_node_id(node)) {
    send_error(api, req, EP_TRANSPORT_RESET, 400, "bad node ID in the path");
    return;
  }
  if (api->ops->transport_reset == NULL) {
    send_error(api, req, EP_TRANSPORT_RESET, 501, "this node cannot reset transports");
    return;
  }
  char why[256] = "";
  int rc = api->ops->transport_reset(api->ctx, node, why, sizeof(why));
  if (rc < 0) {
    send_backend_error(api, req, EP_TRANSPORT_RESET, rc, why);
    return;
  }
  LOG_INFO("api", "transport reset of %s requested", node);
  send_json(api, req, EP_TRANSPORT_RESET, 200,
            json_pack("{s:b, s:s}", "ok", 1, "targetNodeId", node));
}

/* ---- Routing. */

/* Which endpoint a path names and which method it takes. */
static enum api_endpoint route(const char *path, enum evhttp_cmd_type *method)
{
  static const struct {
    const char *path;
    enum api_endpoint ep;
    enum evhttp_cmd_type method;
  } table[] = {
      {"/node_id", EP_NODE_ID, EVHTTP_REQ_GET},
      {"/state", EP_STATE, EVHTTP_REQ_GET},
      {"/members", EP_MEMBERS, EVHTTP_REQ_GET},
      {"/downloads", EP_DOWNLOADS, EVHTTP_REQ_GET},
      {"/journal", EP_JOURNAL, EVHTTP_REQ_GET},
      {"/metrics", EP_METRICS, EVHTTP_REQ_GET},
      {"/download/start", EP_DOWNLOAD_START, EVHTTP_REQ_POST},
      {"/download/cancel", EP_DOWNLOAD_CANCEL, EVHTTP_REQ_POST},
      {"/gc", EP_GC, EVHTTP_REQ_POST},
      {"/leave", EP_LEAVE, EVHTTP_REQ_POST},
  };
  for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
    if (strcmp(path, table[i].path) == 0) {
      *method = table[i].method;
      return table[i].ep;
    }
  }
  if (strncmp(path, "/transport/reset/", 17) == 0 && path[17] != '\0') {
    *method = EVHTTP_REQ_POST;
    return EP_TRANSPORT_RESET;
  }
  if (strncmp(path, "/download/", 10) == 0 && path[10] != '\0') {
    *method = EVHTTP_REQ_DELETE;
    return EP_DOWNLOAD_DELETE;
  }
  return EP_OTHER;
}

static const char *method_name(enum evhttp_cmd_type m)
{
  switch (m) {
  case EVHTTP_REQ_GET:
    return "GET";
  case EVHTTP_REQ_POST:
    return "POST";
  case EVHTTP_REQ_DELETE:
    return "DELETE";
  case EVHTTP_REQ_PUT:
    return "PUT";
  case EVHTTP_REQ_OPTIONS:
    return "OPTIONS";
  case EVHTTP_REQ_HEAD:
    return "HEAD";
  case EVHTTP_REQ_PATCH:
    return "PATCH";
  default:
    return "other";
  }
}

static bool authorized(const mesh_api *api, struct evhttp_request *req)
{
  if (!api->has_token)
    return true;
  const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
  if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
    return false;
  const char *tok = h + 7;
  while (*tok == ' ')
    tok++;
  uint8_t hash[crypto_generichash_BYTES];
  crypto_generichash(hash, sizeof(hash), (const uint8_t *)tok, strlen(tok), NULL, 0);
  /* Hashes of equal length compared in constant time: neither the token's
   * length nor its bytes show in the timing. */
  return sodium_memcmp(hash, api->token_hash, sizeof(hash)) == 0;
}

static void handle_request(struct evhttp_request *req, void *arg)
{
  mesh_api *api = arg;
  const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
  const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
  if (path == NULL || path[0] != '/') {
    send_error(api, req, EP_OTHER, 400, "bad request target");
    return;
  }
  enum evhttp_cmd_type want = EVHTTP_REQ_GET;
  enum api_endpoint ep = route(path, &want);
  /* Before the token: a browser's request is refused as one (and counted
   * so) whether or not a token is needed. */
  char why[256];
  enum mesh_api_refusal refusal = mesh_api_guard_check(&api->guard, req, why, sizeof why);
  if (refusal != MESH_API_REFUSED_NONE) {
    api->refused[refusal]++;
    MESH_LOG_RL(MESH_LOG_WARN, "api", "refused %s %.100s: %s",
                method_name(evhttp_request_get_command(req)), path, why);
    send_error(api, req, ep, 403, "%s", why);
    return;
  }
  if (!authorized(api, req)) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"meshd\"");
    MESH_LOG_RL(MESH_LOG_WARN, "api", "request without a valid token refused");
    send_error(api, req, ep, 401, "a valid bearer token is required");
    return;
  }
  if (ep == EP_OTHER) {
    send_error(api, req, ep, 404, "no such endpoint: %.200s", path);
    return;
  }
  if (evhttp_request_get_command(req) != want) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", method_name(want));
    send_error(api, req, ep, 405, "%s takes %s", path, method_name(want));
    return;
  }
  if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > MESH_API_MAX_BODY) {
    send_error(api, req, ep, 413, "the body is larger than %d bytes", MESH_API_MAX_BODY);
    return;
  }
  switch (ep) {
  case EP_NODE_ID:
    handle_node_id(api, req);
    break;
  case EP_STATE:
    handle_state(api, req);
    break;
  case EP_MEMBERS:
    handle_members(api, req);
    break;
  case EP_DOWNLOADS:
    handle_downloads(api, req);
    break;
  case EP_JOURNAL:
    handle_journal(api, req, evhttp_uri_get_query(uri));
    break;
  case EP_METRICS:
    handle_metrics(api, req);
    break;
  case EP_DOWNLOAD_START:
  case EP_DOWNLOAD_CANCEL:
    handle_command(api, req, ep, NULL, NULL);
    break;
  case EP_DOWNLOAD_DELETE:
    handle_command(api, req, ep, path + strlen("/download/"), evhttp_uri_get_query(uri));
    break;
  case EP_GC:
    handle_gc(api, req);
    break;
  case EP_LEAVE:
    handle_leave(api, req);
    break;
  case EP_TRANSPORT_RESET:
    handle_transport_reset(api, req, path + strlen("/transport/reset/"));
    break;
  default:
    send_error(api, req, EP_OTHER, 404, "no such endpoint");
    break;
  }
}

/* ---- Listening. */

static bool is_loopback(const struct sockaddr *sa)
{
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
      return true;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
      return in6->sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

static void format_sockaddr(const struct sockaddr *sa, char *buf, size_t len)
{
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
  } else {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
  }
}

/* Splits "host:port" or "[v6]:port". */
static int split_host_port(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
  const char *colon;
  const char *h = addr;
  size_t hl;
  if (addr[0] == '[') {
    const char *end = strchr(addr, ']');
    if (end == NULL || end[1] != ':')
      return -EINVAL;
    h = addr + 1;
    hl = (size_t)(end - h);
    colon = end + 1;
  } else {
    colon = strrchr(addr, ':');
    if (colon == NULL || memchr(addr, ':', (size_t)(colon - addr)) != NULL)
      return -EINVAL;
    hl = (size_t)(colon - addr);
  }
  size_t pl = strlen(colon + 1);
  if (hl >= hostlen || pl == 0 || pl >= portlen)
    return -EINVAL;
  for (size_t i = 0; i < pl; i++) {
    if (colon[1 + i] < '0' || colon[1 + i] > '9')
      return -EINVAL;
  }
  memcpy(host, h, hl);
  host[hl] = '\0';
  memcpy(port, colon + 1, pl + 1);
  return 0;
}

static int listen_tcp(mesh_api *api, const char *addr, char *err, size_t errlen)
{
  char host[256];
  char port[8];
  if (split_host_port(addr, host, sizeof(host), port, sizeof(port)) < 0) {
    snprintf(err, errlen, "bad API address '%s': want HOST:PORT, [V6]:PORT or unix:PATH", addr);
    return -EINVAL;
  }
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  int g = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &res);
  if (g != 0 || res == NULL) {
    snprintf(err, errlen, "API address '%s': %s", addr, gai_strerror(g));
    return -EINVAL;
  }
  if (!is_loopback(res->ai_addr) && !api->has_token) {
    snprintf(err, errlen,
             "refusing to serve the API on '%s', which is not loopback, without a token "
             "(set --api-token)",
             addr);
    freeaddrinfo(res);
    return -EACCES;
  }
  int fd = mesh_socket_nb(res->ai_family, SOCK_STREAM, 0);
  int rc = 0;
  if (fd < 0) {
    rc = fd;
    goto fail;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (res->ai_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0) {
    rc = -errno;
    goto fail;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
    rc = -errno;
    goto fail;
  }
  format_sockaddr((struct sockaddr *)&ss, api->bound, sizeof(api->bound));
  /* On loopback, a Host naming anything else can only come from a page
   * whose name was pointed here (DNS rebinding). Beyond loopback the Host
   * is this machine's name, which the API cannot know; the token guards. */
  api->guard.check_host = is_loopback((struct sockaddr *)&ss);
  api->guard.port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                  : ((struct sockaddr_in6 *)&ss)->sin6_port);
  rc = mesh_api_conns_listen(&api->conns, fd);
  fd = -1; /* taken over, also on failure */
  if (rc < 0)
    goto fail;
  freeaddrinfo(res);
  return 0;
fail:
  snprintf(err, errlen, "cannot listen on '%s': %s", addr, mesh_strerror(rc));
  if (fd >= 0)
    close(fd);
  freeaddrinfo(res);
  return rc;
}

static int listen_unix(mesh_api *api, const char *path, char *err, size_t errlen)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof(sa.sun_path)) {
    snprintf(err, errlen, "API socket path '%s' is empty or too long (at most %zu bytes)", path,
             sizeof(sa.sun_path) - 1);
    return -ENAMETOOLONG;
  }
  memcpy(sa.sun_path, path, n + 1);
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      snprintf(err, errlen, "API socket path '%s' exists and is not a socket", path);
      return -EEXIST;
    }
    /* A socket someone still answers on is in use; a dead one is stale. */
    int probe = mesh_socket_nb(AF_UNIX, SOCK_STREAM, 0);
    int c = probe >= 0 ? connect(probe, (struct sockaddr *)&sa, sizeof(sa)) : -1;
    if (c == 0 || (c < 0 && errno == EAGAIN)) {
      close(probe);
      snprintf(err, errlen, "API socket '%s' is in use by another process", path);
      return -EADDRINUSE;
    }
    if (probe >= 0)
      close(probe);
    unlink(path);
  }
  int fd = mesh_socket_nb(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) {
    int rc = fd;
    snprintf(err, errlen, "cannot create the API socket: %s", mesh_strerror(rc));
    return rc;
  }
  /* The umask makes the socket 0600 from its first moment; chmod states it. */
  mode_t old = umask(0177);
  int b = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
  int berr = errno;
  umask(old);
  if (b < 0 || chmod(path, 0600) < 0 || listen(fd, 64) < 0) {
    int rc = b < 0 ? -berr : -errno;
    snprintf(err, errlen, "cannot listen on unix:%s: %s", path, mesh_strerror(rc));
    close(fd);
    if (b == 0)
      unlink(path);
    return rc;
  }
  api->unix_path = strdup(path);
  if (api->unix_path == NULL) {
    close(fd);
    unlink(path);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  if (mesh_api_conns_listen(&api->conns, fd) < 0) {
    /* fd was taken over and closed; the path goes with mesh_api_free. */
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  snprintf(api->bound, sizeof(api->bound), "unix:%s", path);
  return 0;
}

int mesh_api_new(struct event_base *base, const mesh_api_options *opt,
                 const mesh_api_backend_ops *ops, void *ctx, mesh_api **out, char *err,
                 size_t errlen)
{
  *out = NULL;
  if (ops == NULL || ops->get_self == NULL || ops->list_members == NULL ||
      ops->list_downloads == NULL || ops->journal == NULL || ops->start == NULL ||
      ops->delete_model == NULL || ops->cancel == NULL || ops->gc == NULL || ops->leave == NULL) {
    snprintf(err, errlen, "the API's backend lacks an operation");
    return -EINVAL;
  }
  if (sodium_init() < 0) {
    snprintf(err, errlen, "libsodium failed to initialise");
    return -ENOSYS;
  }
  mesh_api *api = calloc(1, sizeof(*api));
  if (api == NULL) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  api->base = base;
  api->ops = ops;
  mesh_api_renders_init(&api->renders, opt != NULL ? opt->pool : NULL, send_rendered);
  api->ctx = ctx;
  const char *token = opt != NULL ? opt->token : NULL;
  if (token != NULL && token[0] != '\0') {
    api->has_token = true;
    crypto_generichash(api->token_hash, sizeof(api->token_hash), (const uint8_t *)token,
                       strlen(token), NULL, 0);
  }
  api->http = evhttp_new(base);
  if (api->http == NULL) {
    free(api);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  evhttp_set_max_headers_size(api->http, MESH_API_MAX_HEADERS);
  evhttp_set_max_body_size(api->http, MESH_API_MAX_BODY_HARD);
  evhttp_set_timeout(api->http, 30);
  /* Every method reaches the handler, so a wrong one gets a JSON 405. */
  evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
  /* Read and drop a too-large body before answering 413, so the client
   * sees the answer rather than a reset. */
  evhttp_set_flags(api->http, EVHTTP_SERVER_LINGERING_CLOSE);
  evhttp_set_gencb(api->http, handle_request, api);
  size_t max_conns = opt != NULL && opt->max_connections > 0 ? opt->max_connections
                                                             : MESH_API_DEFAULT_MAX_CONNECTIONS;
  if (mesh_api_conns_init(&api->conns, base, api->http, max_conns, api_conn_closed, api) < 0) {
    mesh_api_free(api);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  const char *addr = opt != NULL && opt->addr != NULL ? opt->addr : MESH_API_DEFAULT_ADDR;
  int rc;
  if (strncmp(addr, "unix:", 5) == 0)
    rc = listen_unix(api, addr + 5, err, errlen);
  else
    rc = listen_tcp(api, addr, err, errlen);
  if (rc < 0) {
    mesh_api_free(api);
    return rc;
  }
  LOG_INFO("api", "control API on %s%s, at most %zu connections", api->bound,
           api->has_token ? " (token required)" : "", max_conns);
  *out = api;
  return 0;
}

void mesh_api_free(mesh_api *api)
{
  if (api == NULL)
    return;
  /* Renders on the pool point at the API: their answers go out first. */
  mesh_api_renders_flush(&api->renders);
  for (size_t i = 0; i < MESH_API_MAX_PENDING; i++)
    if (api->pending[i].ticket != 0)
      pending_release(&api->pending[i]);
  /* Connections closed by evhttp_free still reach the close hook, so the
   * listener's state goes after it. */
  mesh_api_conns_release(&api->conns);
  if (api->http != NULL)
    evhttp_free(api->http);
  mesh_api_conns_free(&api->conns);
  if (api->unix_path != NULL) {
    unlink(api->unix_path);
    free(api->unix_path);
  }
  sodium_memzero(api->token_hash, sizeof(api->token_hash));
  free(api);
}

void mesh_api_address(const mesh_api *api, char *buf, size_t len)
{
  snprintf(buf, len, "%s", api->bound);
}
