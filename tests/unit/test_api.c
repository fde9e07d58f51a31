/*
 * The control API driven over real HTTP on loopback: a client socket in the
 * test talks to the server on the same event_base, which is run in steps
 * until the answer is complete (or a deadline passes, which fails).
 */
#include "src/base/pool.h"
#include "src/daemon/api.h"
#include "src/daemon/api_internal.h"
#include "src/base/platform.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define ID_SELF "12D3KooWSe1fMASi45ub7Qe4ZE36UT5G6cU4ud8Fhhe4deS4F3cw"
#define ID_PEER "12D3KooWAbc9KTAb8dLcukC7edhDQ7cn5d4gEYkbUrMWeWQLGsCm"
#define ID_DEAD "12D3KooWDead6BVScJy9uUxcJnTPkyRFA6CAFjF1YveCHK1ATbQg"

/* ---- A backend that shows fixed records and records the commands. */

typedef struct backend {
  int calls_start, calls_delete, calls_cancel, calls_gc, calls_leave;
  char node[MESH_API_NODE_ID_MAX];
  char model[MESH_API_MODEL_ID_MAX];
  char revision[MESH_API_REVISION_MAX];
  int next_rc;        /* what the next command returns */
  char next_err[128]; /* and its message */
  size_t journal_limit_seen;
  size_t extra_downloads; /* entries of another owner listed after the five */
} backend;

static int be_self(void *ctx, mesh_api_self *out)
{
  static const char *addrs[] = {"/ip4/127.0.0.1/tcp/52416"};
  out->peer_id = ID_SELF;
  out->epoch = 7;
  out->addrs = addrs;
  out->naddrs = 1;
  out->agent = "meshd/test";
  return 0;
}

static int be_members(void *ctx, mesh_api_member_fn fn, void *arg)
{
  const char *a[] = {"/ip4/127.0.0.2/tcp/52416"};
  mesh_api_member ms[] = {
      {.peer_id = ID_SELF, .epoch = 7, .state = MESH_API_ALIVE, .is_self = true},
      {.peer_id = ID_PEER,
       .addrs = a,
       .naddrs = 1,
       .epoch = 3,
       .incarnation = 2,
       .state = MESH_API_SUSPECT,
       .state_ms = 1500,
       .transport = "tcp",
       .frame_cipher = "aes-256-gcm"},
      {.peer_id = ID_DEAD, .epoch = 1, .state = MESH_API_DEAD, .state_ms = 60000},
  };
  for (size_t i = 0; i < 3; i++) {
    if (fn(arg, &ms[i]) != 0)
      break;
  }
  return 0;
}

static int be_downloads(void *ctx, mesh_api_download_fn fn, void *arg)
{
  mesh_api_download ds[] = {
      {.owner_id = ID_SELF,
       .owner_epoch = 7,
       .model_id = "org/pending",
       .revision = "main",
       .status = MESH_API_DL_PENDING,
       .eta_ms = -1},
      {.owner_id = ID_SELF,
       .owner_epoch = 7,
       .model_id = "org/ongoing",
       .revision = "main",
       .status = MESH_API_DL_ONGOING,
       .bytes_done = 40,
       .bytes_total = 100,
       .files_done = 1,
       .files_total = 3,
       .speed_bps = 10,
       .eta_ms = 6000,
       .model_dir = "/m/org--ongoing"},
      {.owner_id = ID_PEER,
       .owner_epoch = 3,
       .model_id = "org/done",
       .revision = "v1",
       .status = MESH_API_DL_COMPLETED,
       .bytes_done = 5,
       .bytes_total = 5,
       .eta_ms = -1},
      {.owner_id = ID_PEER,
       .owner_epoch = 3,
       .model_id = "org/failed",
       .revision = "main",
       .status = MESH_API_DL_FAILED,
       .error = "Directory not empty",
       .eta_ms = -1},
      {.owner_id = ID_DEAD,
       .owner_epoch = 1,
       .model_id = "org/gone",
       .revision = "main",
       .status = MESH_API_DL_DELETING,
       .abandoned = true,
       .collect_in_ms = 90000,
       .eta_ms = -1},
  };
  for (size_t i = 0; i < 5; i++) {
    if (fn(arg, &ds[i]) != 0)
      break;
  }
  backend *b = ctx;
  for (size_t i = 0; i < b->extra_downloads; i++) {
    char model[64];
    snprintf(model, sizeof model, "sybil/model-%zu", i);
    mesh_api_download d = {.owner_id = ID_PEER,
                           .owner_epoch = 3,
                           .model_id = model,
                           .revision = "main",
                           .status = MESH_API_DL_COMPLETED,
                           .bytes_done = 5,
                           .bytes_total = 5,
                           .model_dir = "/m/sybil",
                           .eta_ms = -1};
    int rc = fn(arg, &d);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int be_journal(void *ctx, size_t limit, mesh_api_journal_fn fn, void *arg)
{
  backend *b = ctx;
  b->journal_limit_seen = limit;
  for (size_t i = 0; i < 5 && i < limit; i++) {
    mesh_api_journal_entry e = {.seq = 5 - i,
                                .unix_ms = 1000 * (int64_t)(5 - i),
                                .kind = "start",
                                .node_id = ID_SELF,
                                .message = "why"};
    if (fn(arg, &e) != 0)
      break;
  }
  return 0;
}

static void be_metrics(void *ctx, mesh_api_metrics *m)
{
  /* Interleaved on purpose: the answer must group them by family. */
  const char *alive[] = {"state", "alive", NULL};
  const char *dead[] = {"state", "dead", NULL};
  const char *esc[] = {"reason", "a\"b\\c\nd", NULL};
  mesh_api_metric(m, "mesh_members", MESH_API_GAUGE, "Members by state.", alive, 2);
  mesh_api_metric(m, "mesh_drops_total", MESH_API_COUNTER, "Drops.", esc, 3);
  mesh_api_metric(m, "mesh_members", MESH_API_GAUGE, "Members by state.", dead, 1);
  /* Refused: a bad name and a type that disagrees with the family. */
  assert_int_equal(mesh_api_metric(m, "bad name", MESH_API_GAUGE, "x", NULL, 1), -EINVAL);
  assert_int_equal(mesh_api_metric(m, "mesh_members", MESH_API_COUNTER, "x", NULL, 1), -EINVAL);
}

static int be_command(backend *b, const char *node, const char *model, const char *rev, char *err,
                      size_t errlen)
{
  snprintf(b->node, sizeof(b->node), "%s", node);
  snprintf(b->model, sizeof(b->model), "%s", model);
  snprintf(b->revision, sizeof(b->revision), "%s", rev != NULL ? rev : "");
  if (b->next_rc < 0)
    snprintf(err, errlen, "%s", b->next_err);
  return b->next_rc;
}

static int be_start(void *ctx, const mesh_api_call *call, const char *node, const char *model,
                    const char *rev, char *err, size_t errlen)
{
  backend *b = ctx;
  b->calls_start++;
  return be_command(b, node, model, rev, err, errlen);
}

static int be_delete(void *ctx, const mesh_api_call *call, const char *node, const char *model,
                     const char *rev, char *err, size_t errlen)
{
  backend *b = ctx;
  b->calls_delete++;
  return be_command(b, node, model, rev, err, errlen);
}

static int be_cancel(void *ctx, const mesh_api_call *call, const char *node, const char *model,
                     const char *rev, char *err, size_t errlen)
{
  backend *b = ctx;
  b->calls_cancel++;
  return be_command(b, node, model, rev, err, errlen);
}

static int be_gc(void *ctx, uint64_t *collected, char *err, size_t errlen)
{
  backend *b = ctx;
  b->calls_gc++;
  *collected = 4;
  return 0;
}

static int be_leave(void *ctx, char *err, size_t errlen)
{
  backend *b = ctx;
  b->calls_leave++;
  return 0;
}

static const mesh_api_backend_ops be_ops = {
    .get_self = be_self,
    .list_members = be_members,
    .list_downloads = be_downloads,
    .journal = be_journal,
    .metrics = be_metrics,
    .start = be_start,
    .delete_model = be_delete,
    .cancel = be_cancel,
    .gc = be_gc,
    .leave = be_leave,
};

/* ---- Fixture: a server on loopback and a client that runs its loop. */

typedef struct fixture {
  struct event_base *base;
  mesh_api *api;
  backend be;
  struct sockaddr_storage addr; /* where the server listens */
  socklen_t addrlen;
  char dir[128];  /* scratch folder for Unix sockets */
  char token[32]; /* "" when none */
} fixture;

typedef struct response {
  int status;
  char *head; /* status line and headers, NUL-terminated */
  char *body; /* NUL-terminated */
  size_t body_len;
} response;

static void response_free(response *r)
{
  free(r->head);
  free(r->body);
  memset(r, 0, sizeof(*r));
}

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_addr_from_api(fixture *f)
{
  char a[160];
  mesh_api_address(f->api, a, sizeof(a));
  memset(&f->addr, 0, sizeof(f->addr));
  if (strncmp(a, "unix:", 5) == 0) {
    struct sockaddr_un *un = (struct sockaddr_un *)&f->addr;
    un->sun_family = AF_UNIX;
    size_t n = strlen(a + 5);
    assert_true(n < sizeof(un->sun_path));
    memcpy(un->sun_path, a + 5, n + 1);
    f->addrlen = sizeof(*un);
    return;
  }
  struct sockaddr_in *in = (struct sockaddr_in *)&f->addr;
  char *colon = strrchr(a, ':');
  assert_non_null(colon);
  *colon = '\0';
  in->sin_family = AF_INET;
  in->sin_port = htons((uint16_t)strtoul(colon + 1, NULL, 10));
  assert_int_equal(inet_pton(AF_INET, a, &in->sin_addr), 1);
  f->addrlen = sizeof(*in);
}

static int start_server_capped(fixture *f, const char *addr, const char *token, size_t max)
{
  mesh_api_options opt = {.addr = addr, .token = token, .max_connections = max};
  char err[256];
  int rc = mesh_api_new(f->base, &opt, &be_ops, &f->be, &f->api, err, sizeof(err));
  if (rc == 0)
    set_addr_from_api(f);
  return rc;
}

static int start_server(fixture *f, const char *addr, const char *token)
{
  return start_server_capped(f, addr, token, 0);
}

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof(*f));
  f->base = event_base_new();
  snprintf(f->dir, sizeof(f->dir), "/tmp/test_api.XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  assert_int_equal(start_server(f, "127.0.0.1:0", NULL), 0);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture *f = *state;
  mesh_api_free(f->api);
  event_base_free(f->base);
  rmdir(f->dir);
  free(f);
  return 0;
}

/*
 * Sends raw (len bytes) on a new connection and reads until the server
 * closes it, running the server's loop in between. Fails the test after
 * 10 s. Returns the parsed answer (status 0 when none came).
 */
static response roundtrip(fixture *f, const char *raw, size_t len)
{
  response r = {0};
  int fd = mesh_socket_nb(f->addr.ss_family, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  int c = connect(fd, (struct sockaddr *)&f->addr, f->addrlen);
  assert_true(c == 0 || errno == EINPROGRESS);
  size_t sent = 0;
  size_t cap = 4096, got = 0;
  char *buf = malloc(cap);
  uint64_t deadline = now_ms() + 10000;
  bool eof = false;
  while (!eof) {
    assert_true(now_ms() < deadline);
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    struct pollfd p = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
    poll(&p, 1, 5);
    if (sent < len && (p.revents & POLLOUT)) {
      ssize_t n = send(fd, raw + sent, len - sent, MSG_NOSIGNAL);
      if (n > 0)
        sent += (size_t)n;
      else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        sent = len; /* the server closed early (a 413 before the body) */
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      if (got + 4096 > cap) {
        cap *= 2;
        buf = realloc(buf, cap);
      }
      ssize_t n = recv(fd, buf + got, cap - got - 1, 0);
      if (n > 0)
        got += (size_t)n;
      else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
        eof = true;
    }
  }
  close(fd);
  /* Let the server notice the close before the next request. */
  event_base_loop(f->base, EVLOOP_NONBLOCK);
  buf[got] = '\0';
  char *sep = strstr(buf, "\r\n\r\n");
  if (sep != NULL && sscanf(buf, "HTTP/1.%*d %d", &r.status) == 1) {
    r.head = strndup(buf, (size_t)(sep - buf));
    r.body = strdup(sep + 4);
    r.body_len = got - (size_t)(sep + 4 - buf);
  }
  free(buf);
  return r;
}

/* A request with Connection: close, the token if any, the header lines
 * given in headers (each ending in CRLF; it must hold Host) and a body. */
static response request_with(fixture *f, const char *method, const char *path, const char *headers,
                             const char *body)
{
  char head[2048];
  size_t blen = body != NULL ? strlen(body) : 0;
  char auth[128] = "";
  if (f->token[0] != '\0')
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", f->token);
  int n = snprintf(head, sizeof(head),
                   "%s %s HTTP/1.1\r\n%sConnection: close\r\n%s"
                   "Content-Length: %zu\r\n\r\n",
                   method, path, headers, auth, blen);
  assert_true(n > 0 && (size_t)n < sizeof(head));
  char *raw = malloc((size_t)n + blen + 1);
  memcpy(raw, head, (size_t)n);
  if (blen > 0)
    memcpy(raw + n, body, blen);
  response r = roundtrip(f, raw, (size_t)n + blen);
  free(raw);
  return r;
}

/* What meshctl and scripts send: Host localhost, and a JSON body type on
 * anything but a GET. */
static response request(fixture *f, const char *method, const char *path, const char *body)
{
  bool get = strcmp(method, "GET") == 0;
  return request_with(
      f, method, path,
      get ? "Host: localhost\r\n" : "Host: localhost\r\nContent-Type: application/json\r\n", body);
}

static json_t *body_json(const response *r)
{
  json_error_t e;
  json_t *j = json_loads(r->body, 0, &e);
  if (j == NULL)
    fail_msg("not JSON (%s): %s", e.text, r->body);
  return j;
}

/* Asserts an error answer: the status and {"error": "...needle..."}. */
static void assert_error(response *r, int status, const char *needle)
{
  if (r->status != status)
    fail_msg("want %d, got %d: %s", status, r->status, r->body ? r->body : "");
  json_t *j = body_json(r);
  const char *msg = json_string_value(json_object_get(j, "error"));
  assert_non_null(msg);
  if (needle != NULL && strstr(msg, needle) == NULL)
    fail_msg("error '%s' lacks '%s'", msg, needle);
  assert_non_null(strstr(r->head, "Content-Type: application/json"));
  json_decref(j);
  response_free(r);
}

/* ---- Read endpoints. */

static void test_node_id(void **state)
{
  fixture *f = *state;
  response r = request(f, "GET", "/node_id", NULL);
  assert_int_equal(r.status, 200);
  json_t *j = body_json(&r);
  assert_string_equal(json_string_value(json_object_get(j, "nodeId")), ID_SELF);
  assert_int_equal(json_integer_value(json_object_get(j, "epoch")), 7);
  json_decref(j);
  response_free(&r);
  assert_int_equal(mesh_api_request_count(f->api, "node_id", 200), 1);
}

static json_t *entry_of(json_t *list, const char *wrap, const char *model)
{
  size_t i;
  json_t *e;
  json_array_foreach(list, i, e)
  {
    json_t *in = json_object_get(e, wrap);
    if (in != NULL && strcmp(json_string_value(json_object_get(in, "modelId")), model) == 0)
      return in;
  }
  return NULL;
}

static void test_state_exo_shape(void **state)
{
  fixture *f = *state;
  response r = request(f, "GET", "/state", NULL);
  assert_int_equal(r.status, 200);
  json_t *j = body_json(&r);
  /* topology.nodes: the view only (alive and suspect), not the dead. */
  json_t *nodes = json_object_get(json_object_get(j, "topology"), "nodes");
  assert_true(json_is_array(nodes));
  assert_int_equal(json_array_size(nodes), 2);
  assert_string_equal(json_string_value(json_object_get(json_array_get(nodes, 0), "nodeId")),
                      ID_SELF);
  json_t *dl = json_object_get(j, "downloads");
  assert_true(json_is_object(dl));
  assert_int_equal(json_object_size(dl), 3);
  json_t *mine = json_object_get(dl, ID_SELF);
  json_t *p = entry_of(mine, "DownloadPending", "org/pending");
  assert_non_null(p);
  static const char *const keys[] = {"nodeId",         "epoch",      "modelId", "revision",
                                     "modelDirectory", "downloaded", "total",   "abandoned"};
  for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
    if (json_object_get(p, keys[k]) == NULL)
      fail_msg("DownloadPending lacks %s", keys[k]);
  }
  json_t *o = entry_of(mine, "DownloadOngoing", "org/ongoing");
  assert_non_null(o);
  json_t *prog = json_object_get(o, "downloadProgress");
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(prog, "downloaded"), "inBytes")), 40);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(prog, "total"), "inBytes")),
                   100);
  assert_int_equal(json_integer_value(json_object_get(prog, "speed")), 10);
  assert_int_equal(json_integer_value(json_object_get(prog, "etaMs")), 6000);
  assert_int_equal(json_integer_value(json_object_get(prog, "filesDone")), 1);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "downloaded"), "inBytes")),
                   40);
  assert_string_equal(json_string_value(json_object_get(o, "modelDirectory")), "/m/org--ongoing");
  json_t *peer = json_object_get(dl, ID_PEER);
  assert_non_null(entry_of(peer, "DownloadCompleted", "org/done"));
  json_t *fl = entry_of(peer, "DownloadFailed", "org/failed");
  assert_string_equal(json_string_value(json_object_get(fl, "errorMessage")),
                      "Directory not empty");
  json_t *gone = entry_of(json_object_get(dl, ID_DEAD), "DownloadDeleting", "org/gone");
  assert_true(json_is_true(json_object_get(gone, "abandoned")));
  assert_int_equal(json_integer_value(json_object_get(gone, "abandonedCollectInMs")), 90000);
  assert_null(json_object_get(p, "abandonedCollectInMs"));
  /* members and self. */
  json_t *members = json_object_get(j, "members");
  assert_int_equal(json_array_size(members), 3);
  json_t *m1 = json_array_get(members, 1);
  assert_string_equal(json_string_value(json_object_get(m1, "state")), "suspect");
  assert_int_equal(json_integer_value(json_object_get(m1, "incarnation")), 2);
  assert_int_equal(json_integer_value(json_object_get(m1, "timeInStateMs")), 1500);
  assert_string_equal(json_string_value(json_object_get(m1, "transport")), "tcp");
  assert_string_equal(json_string_value(json_object_get(m1, "frameCipher")), "aes-256-gcm");
  assert_true(json_is_null(json_object_get(json_array_get(members, 2), "frameCipher")));
  json_t *self = json_object_get(j, "self");
  assert_string_equal(json_string_value(json_object_get(self, "nodeId")), ID_SELF);
  assert_string_equal(json_string_value(json_object_get(self, "agent")), "meshd/test");
  json_decref(j);
  response_free(&r);
}

/* /state and /downloads of 5,000 others' entries: the loop copies the
 * entries, a worker of the pool renders the JSON, and the answer is whole;
 * a small answer is rendered on the loop (the workers may be stuck in a
 * slow disk's syncs). */
static void test_large_state_rendered_off_the_loop(void **state)
{
  fixture *f = *state;
  f->be.extra_downloads = 5000;
  mesh_api_free(f->api);
  f->api = NULL;
  mesh_pool *pool = NULL;
  assert_int_equal(mesh_pool_new(f->base, 2, &pool), 0);
  mesh_api_options opt = {.addr = "127.0.0.1:0", .pool = pool};
  char err[256];
  assert_int_equal(mesh_api_new(f->base, &opt, &be_ops, &f->be, &f->api, err, sizeof(err)), 0);
  set_addr_from_api(f);
  static const char *const paths[] = {"/state", "/downloads"};
  for (size_t i = 0; i < 2; i++) {
    mesh_pool_stats before, after;
    mesh_pool_get_stats(pool, &before);
    response r = request(f, "GET", paths[i], NULL);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    json_t *peer = json_object_get(json_object_get(j, "downloads"), ID_PEER);
    assert_int_equal(json_array_size(peer), 5000 + 2);
    if (i == 0)
      assert_int_equal(json_array_size(json_object_get(j, "members")), 3);
    json_decref(j);
    response_free(&r);
    mesh_pool_get_stats(pool, &after);
    assert_int_equal(after.completed, before.completed + 1); /* a worker rendered it */
  }
  f->be.extra_downloads = 10;
  mesh_pool_stats before, after;
  mesh_pool_get_stats(pool, &before);
  response small = request(f, "GET", "/downloads", NULL);
  assert_int_equal(small.status, 200);
  response_free(&small);
  mesh_pool_get_stats(pool, &after);
  assert_int_equal(after.completed, before.completed);
  mesh_api_free(f->api);
  f->api = NULL;
  mesh_pool_free(pool);
  f->be.extra_downloads = 0;
  assert_int_equal(start_server(f, "127.0.0.1:0", NULL), 0);
}

static void test_members_downloads(void **state)
{
  fixture *f = *state;
  response r = request(f, "GET", "/members", NULL);
  assert_int_equal(r.status, 200);
  json_t *j = body_json(&r);
  assert_int_equal(json_array_size(json_object_get(j, "members")), 3);
  assert_true(
      json_is_true(json_object_get(json_array_get(json_object_get(j, "members"), 0), "self")));
  json_decref(j);
  response_free(&r);
  r = request(f, "GET", "/downloads", NULL);
  assert_int_equal(r.status, 200);
  j = body_json(&r);
  assert_int_equal(json_object_size(json_object_get(j, "downloads")), 3);
  json_decref(j);
  response_free(&r);
}

static void test_journal(void **state)
{
  fixture *f = *state;
  response r = request(f, "GET", "/journal?limit=2", NULL);
  assert_int_equal(r.status, 200);
  json_t *j = body_json(&r);
  json_t *e = json_object_get(j, "entries");
  assert_int_equal(json_array_size(e), 2);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(e, 0), "seq")), 5);
  assert_int_equal(f->be.journal_limit_seen, 2);
  json_decref(j);
  response_free(&r);
  r = request(f, "GET", "/journal", NULL);
  assert_int_equal(r.status, 200);
  assert_int_equal(f->be.journal_limit_seen, MESH_API_JOURNAL_DEFAULT);
  response_free(&r);
  r = request(f, "GET", "/journal?limit=0", NULL);
  assert_error(&r, 400, "limit");
  r = request(f, "GET", "/journal?limit=abc", NULL);
  assert_error(&r, 400, "limit");
  r = request(f, "GET", "/journal?limit=99999999", NULL);
  assert_error(&r, 400, "limit");
}

/* The histogram type: cumulative buckets in order, +Inf, _sum and _count,
 * one HELP and TYPE; refusals counted and leaving nothing behind. */
static void test_metrics_histogram(void **state)
{
  (void)state;
  mesh_api_metrics m;
  mesh_api_metrics_init(&m);
  const double bounds[] = {0.001, 0.005, 0.1};
  const uint64_t counts[] = {5, 0, 3};
  const char *labels[] = {"loop", "main", NULL};
  assert_int_equal(
      mesh_api_histogram(&m, "meshd_lag_seconds", "Lag.", labels, bounds, counts, 3, 1.25, 10), 0);
  /* Refused: bounds not increasing, buckets holding more than count, an
   * "le" label, a counter sample in a histogram family, a histogram under
   * a counter's name, and the histogram type through mesh_api_metric. */
  const double down[] = {0.1, 0.01};
  const uint64_t two[] = {1, 1};
  assert_int_equal(mesh_api_histogram(&m, "h1", "x", NULL, down, two, 2, 0, 2), -EINVAL);
  assert_int_equal(mesh_api_histogram(&m, "h2", "x", NULL, bounds, counts, 3, 0, 7), -EINVAL);
  const char *le[] = {"le", "1", NULL};
  assert_int_equal(mesh_api_histogram(&m, "h3", "x", le, bounds, counts, 3, 0, 8), -EINVAL);
  assert_int_equal(mesh_api_metric(&m, "meshd_lag_seconds", MESH_API_COUNTER, "x", NULL, 1),
                   -EINVAL);
  assert_int_equal(mesh_api_metric(&m, "c_total", MESH_API_COUNTER, "x", NULL, 1), 0);
  assert_int_equal(mesh_api_histogram(&m, "c_total", "x", NULL, bounds, counts, 3, 0, 8), -EINVAL);
  assert_int_equal(mesh_api_metric(&m, "h4", MESH_API_HISTOGRAM, "x", NULL, 1), -EINVAL);
  assert_int_equal(m.dropped, 6);
  size_t len = 0;
  char *text = mesh_api_metrics_render(&m, &len);
  assert_non_null(text);
  const char *want = "# HELP meshd_lag_seconds Lag.\n"
                     "# TYPE meshd_lag_seconds histogram\n"
                     "meshd_lag_seconds_bucket{loop=\"main\",le=\"0.001\"} 5\n"
                     "meshd_lag_seconds_bucket{loop=\"main\",le=\"0.005\"} 5\n"
                     "meshd_lag_seconds_bucket{loop=\"main\",le=\"0.1\"} 8\n"
                     "meshd_lag_seconds_bucket{loop=\"main\",le=\"+Inf\"} 10\n"
                     "meshd_lag_seconds_sum{loop=\"main\"} 1.25\n"
                     "meshd_lag_seconds_count{loop=\"main\"} 10\n"
                     "# HELP c_total x\n";
  if (strstr(text, want) == NULL)
    fail_msg("histogram not as expected:\n%s", text);
  assert_null(strstr(text, "h1"));
  assert_null(strstr(text, "h2"));
  assert_null(strstr(text, "h3"));
  free(text);
  /* Without labels. */
  mesh_api_metrics_free(&m);
  mesh_api_metrics_init(&m);
  assert_int_equal(mesh_api_histogram(&m, "h", "x", NULL, bounds, counts, 1, 0.5, 5), 0);
  text = mesh_api_metrics_render(&m, &len);
  assert_non_null(strstr(text, "h_bucket{le=\"0.001\"} 5\nh_bucket{le=\"+Inf\"} 5\nh_sum 0.5\n"
                               "h_count 5\n"));
  free(text);
  mesh_api_metrics_free(&m);
}

static void test_metrics(void **state)
{
  fixture *f = *state;
  response r = request(f, "GET", "/nope", NULL);
  assert_error(&r, 404, "no such endpoint");
  r = request(f, "GET", "/metrics", NULL);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.head, "Content-Type: text/plain; version=0.0.4"));
  const char *b = r.body;
  /* Grouped: both mesh_members samples follow its one HELP/TYPE. */
  const char *want = "# HELP mesh_members Members by state.\n"
                     "# TYPE mesh_members gauge\n"
                     "mesh_members{state=\"alive\"} 2\n"
                     "mesh_members{state=\"dead\"} 1\n";
  if (strstr(b, want) == NULL)
    fail_msg("members family not grouped:\n%s", b);
  assert_non_null(strstr(b, "mesh_drops_total{reason=\"a\\\"b\\\\c\\nd\"} 3\n"));
  assert_non_null(strstr(b, "# TYPE meshd_api_requests_total counter\n"));
  assert_non_null(strstr(b, "meshd_api_requests_total{endpoint=\"other\",code=\"404\"} 1\n"));
  assert_non_null(strstr(b, "meshd_api_requests_total{endpoint=\"metrics\",code=\"200\"} 1\n"));
  assert_non_null(strstr(b, "meshd_api_metric_samples_dropped 2\n"));
  /* Each family's HELP appears once. */
  const char *first = strstr(b, "# HELP mesh_members ");
  assert_null(strstr(first + 1, "# HELP mesh_members "));
  response_free(&r);
}

/* ---- Commands. */

static void test_start(void **state)
{
  fixture *f = *state;
  response r = request(f, "POST", "/download/start",
                       "{\"targetNodeId\":\"" ID_PEER "\",\"modelId\":\"org/name\","
                       "\"revision\":\"v2\"}");
  assert_int_equal(r.status, 200);
  json_t *j = body_json(&r);
  assert_true(json_is_true(json_object_get(j, "ok")));
  json_decref(j);
  response_free(&r);
  assert_int_equal(f->be.calls_start, 1);
  assert_string_equal(f->be.node, ID_PEER);
  assert_string_equal(f->be.model, "org/name");
  assert_string_equal(f->be.revision, "v2");
  /* The revision defaults to main. */
  r = request(f, "POST", "/download/start",
              "{\"targetNodeId\":\"" ID_PEER "\",\"modelId\":\"org/name\"}");
  assert_int_equal(r.status, 200);
  response_free(&r);
  assert_string_equal(f->be.revision, "main");
  assert_int_equal(f->be.calls_start, 2);
}

static void test_start_bad_bodies(void **state)
{
  fixture *f = *state;
  static const struct {
    const char *body;
    const char *needle;
  } bad[] = {
      {"", "body is required"},
      {"{", "malformed JSON"},
      {"[1,2]", "JSON object"},
      {"\"str\"", "expected"},
      {"{\"modelId\":\"org/x\"}", "targetNodeId\" is required"},
      {"{\"targetNodeId\":5,\"modelId\":\"org/x\"}", "must be a string"},
      {"{\"targetNodeId\":\"" ID_PEER "\"}", "modelId\" is required"},
      {"{\"targetNodeId\":\"not a peer!\",\"modelId\":\"org/x\"}", "not a peer ID"},
      {"{\"targetNodeId\":\"" ID_PEER "\",\"modelId\":\"../etc\"}", "modelId"},
      {"{\"targetNodeId\":\"" ID_PEER "\",\"modelId\":\"a/b/c\"}", "modelId"},
      {"{\"targetNodeId\":\"" ID_PEER "\",\"modelId\":\"org/x\",\"revision\":\"../x\"}",
       "revision"},
      {"{\"targetNodeId\":\"" ID_PEER "\",\"modelId\":\"org/x\",\"revision\":7}", "revision"},
      {"{\"targetNodeId\":\"a\",\"targetNodeId\":\"b\",\"modelId\":\"org/x\"}", "duplicate"},
      {"{\"targetNodeId\":\"a\\u0000b\",\"modelId\":\"org/x\"}", "NUL"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    response r = request(f, "POST", "/download/start", bad[i].body);
    if (r.status != 400)
      fail_msg("body %s: got %d", bad[i].body, r.status);
    assert_error(&r, 400, bad[i].needle);
  }
  assert_int_equal(f->be.calls_start, 0);
  assert_int_equal(mesh_api_request_count(f->api, "download_start", 400),
                   sizeof(bad) / sizeof(bad[0]));
}

static void test_backend_errors_map(void **state)
{
  fixture *f = *state;
  static const struct {
    int rc;
    int status;
  } map[] = {{-ENOENT, 404}, {-EHOSTUNREACH, 409}, {-ESTALE, 409}, {-EINVAL, 400},
             {-EEXIST, 409}, {-EAGAIN, 503},       {-EIO, 500},    {-EDQUOT, 409}};
  for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
    f->be.next_rc = map[i].rc;
    snprintf(f->be.next_err, sizeof(f->be.next_err), "reason %zu", i);
    response r = request(f, "POST", "/download/cancel",
                         "{\"targetNodeId\":\"" ID_DEAD "\",\"modelId\":\"org/x\"}");
    char needle[32];
    snprintf(needle, sizeof(needle), "reason %zu", i);
    assert_error(&r, map[i].status, needle);
    assert_int_equal(mesh_api_http_status(map[i].rc), map[i].status);
  }
  assert_int_equal(f->be.calls_cancel, 8);
  /* Without a message the errno's text is used. */
  f->be.next_rc = -ESTALE;
  f->be.next_err[0] = '\0';
  response r = request(f, "POST", "/download/cancel",
                       "{\"targetNodeId\":\"" ID_DEAD "\",\"modelId\":\"org/x\"}");
  assert_error(&r, 409, "epoch");
}

static void test_delete_paths(void **state)
{
  fixture *f = *state;
  response r = request(f, "DELETE", "/download/" ID_PEER "/org%2Fname", NULL);
  assert_int_equal(r.status, 200);
  response_free(&r);
  assert_string_equal(f->be.model, "org/name");
  assert_string_equal(f->be.node, ID_PEER);
  assert_string_equal(f->be.revision, "main");
  /* A revision is named in the query; a misspelt parameter is refused
   * rather than taken as main. */
  r = request(f, "DELETE", "/download/" ID_PEER "/org%2Fname?revision=refs%2Fpr%2F1", NULL);
  assert_int_equal(r.status, 200);
  json_t *jr = body_json(&r);
  assert_string_equal(json_string_value(json_object_get(jr, "revision")), "refs/pr/1");
  json_decref(jr);
  response_free(&r);
  assert_string_equal(f->be.revision, "refs/pr/1");
  r = request(f, "DELETE", "/download/" ID_PEER "/org/name?revision=v2", NULL);
  assert_int_equal(r.status, 200);
  response_free(&r);
  assert_string_equal(f->be.model, "org/name");
  assert_string_equal(f->be.revision, "v2");
  int calls = f->be.calls_delete;
  r = request(f, "DELETE", "/download/" ID_PEER "/org/name?rev=v2", NULL);
  assert_error(&r, 400, "revision=R");
  r = request(f, "DELETE", "/download/" ID_PEER "/org/name?revision=v2&x=1", NULL);
  assert_error(&r, 400, "revision=R");
  r = request(f, "DELETE", "/download/" ID_PEER "/org/name?revision=..", NULL);
  assert_error(&r, 400, "revision");
  r = request(f, "DELETE", "/download/" ID_PEER "/org/name?revision=", NULL);
  assert_error(&r, 400, "revision=R");
  assert_int_equal(f->be.calls_delete, calls);
  /* Cancel takes "revision" in its body, default main. */
  r = request(f, "POST", "/download/cancel",
              "{\"targetNodeId\":\"" ID_PEER "\",\"modelId\":\"org/x\",\"revision\":\"v2\"}");
  assert_int_equal(r.status, 200);
  response_free(&r);
  assert_string_equal(f->be.revision, "v2");
  r = request(f, "POST", "/download/cancel",
              "{\"targetNodeId\":\"" ID_PEER "\",\"modelId\":\"org/x\"}");
  assert_int_equal(r.status, 200);
  response_free(&r);
  assert_string_equal(f->be.revision, "main");
  r = request(f, "DELETE", "/download/" ID_PEER "/org2/name.v1", NULL);
  assert_int_equal(r.status, 200);
  response_free(&r);
  assert_string_equal(f->be.model, "org2/name.v1");
  r = request(f, "DELETE", "/download/" ID_PEER "/org%2", NULL);
  assert_error(&r, 400, "model ID");
  r = request(f, "DELETE", "/download/" ID_PEER "/org%00x", NULL);
  assert_error(&r, 400, "model ID");
  r = request(f, "DELETE", "/download/" ID_PEER, NULL);
  assert_error(&r, 400, "/download/{nodeId}/{modelId}");
  r = request(f, "DELETE", "/download/" ID_PEER "/a/b/c", NULL);
  assert_error(&r, 400, "model ID");
  r = request(f, "DELETE", "/download/bad%21id/org/x", NULL);
  assert_error(&r, 400, "node ID");
  assert_int_equal(f->be.calls_delete, 4); /* two above with a revision */
  f->be.next_rc = -ENOENT;
  snprintf(f->be.next_err, sizeof(f->be.next_err), "no model org/zzz");
  r = request(f, "DELETE", "/download/" ID_PEER "/org/zzz", NULL);
  assert_error(&r, 404, "no model org/zzz");
  /* GET on a delete path is the wrong method. */
  r = request(f, "GET", "/download/" ID_PEER "/org/zzz", NULL);
  assert_error(&r, 405, "DELETE");
}

static void test_gc_leave(void **state)
{
  fixture *f = *state;
  response r = request(f, "POST", "/gc", NULL);
  assert_int_equal(r.status, 200);
  json_t *j = body_json(&r);
  assert_int_equal(json_integer_value(json_object_get(j, "collected")), 4);
  json_decref(j);
  response_free(&r);
  r = request(f, "POST", "/leave", "");
  assert_int_equal(r.status, 200);
  response_free(&r);
  assert_int_equal(f->be.calls_gc, 1);
  assert_int_equal(f->be.calls_leave, 1);
}

/* ---- Protocol errors and bounds. */

static void test_wrong_method_and_path(void **state)
{
  fixture *f = *state;
  response r = request(f, "POST", "/state", "{}");
  assert_true(strstr(r.head, "Allow: GET") != NULL);
  assert_error(&r, 405, "GET");
  r = request(f, "GET", "/gc", NULL);
  assert_error(&r, 405, "POST");
  r = request(f, "PUT", "/download/start", "{}");
  assert_error(&r, 405, "POST");
  r = request(f, "GET", "/state/extra", NULL);
  assert_error(&r, 404, NULL);
  r = request(f, "GET", "/download/", NULL);
  assert_error(&r, 404, NULL);
  assert_int_equal(mesh_api_request_count(f->api, "other", 404), 2);
  assert_int_equal(mesh_api_request_count(f->api, "state", 405), 1);
}

static void test_body_too_big(void **state)
{
  fixture *f = *state;
  /* Over the API's cap: a JSON 413 and no command. */
  size_t n = MESH_API_MAX_BODY + 1;
  char *big = malloc(n + 1);
  memset(big, ' ', n);
  big[n] = '\0';
  response r = request(f, "POST", "/download/start", big);
  assert_error(&r, 413, "larger than");
  free(big);
  /* Over libevent's hard cap: refused before it is read. */
  n = MESH_API_MAX_BODY_HARD + 1;
  big = malloc(n + 1);
  memset(big, ' ', n);
  big[n] = '\0';
  r = request(f, "POST", "/download/start", big);
  assert_int_equal(r.status, 413);
  response_free(&r);
  free(big);
  assert_int_equal(f->be.calls_start, 0);
  assert_int_equal(mesh_api_request_count(f->api, "download_start", 413), 1);
}

static void test_headers_too_big_and_garbage(void **state)
{
  fixture *f = *state;
  size_t n = MESH_API_MAX_HEADERS + 100;
  char *raw = malloc(n + 200);
  int k = snprintf(raw, 200, "GET /state HTTP/1.1\r\nHost: x\r\nX-Big: ");
  memset(raw + k, 'a', n);
  memcpy(raw + k + n, "\r\n\r\n", 4);
  response r = roundtrip(f, raw, (size_t)k + n + 4);
  /* libevent refuses it (413, or 400 depending on where the cut falls). */
  assert_true(r.status == 413 || r.status == 400);
  response_free(&r);
  free(raw);
  static const char garbage[] = "\x01\x02 nonsense\r\n\r\n";
  r = roundtrip(f, garbage, sizeof(garbage) - 1);
  assert_true(r.status == 0 || r.status == 400);
  response_free(&r);
  /* The server still answers afterwards. */
  r = request(f, "GET", "/node_id", NULL);
  assert_int_equal(r.status, 200);
  response_free(&r);
}

/* ---- Listening rules, token, Unix socket. */

static void test_non_loopback_needs_token(void **state)
{
  fixture *f = *state;
  mesh_api *api = NULL;
  char err[256] = "";
  mesh_api_options opt = {.addr = "0.0.0.0:0"};
  assert_int_equal(mesh_api_new(f->base, &opt, &be_ops, &f->be, &api, err, sizeof(err)), -EACCES);
  assert_null(api);
  assert_non_null(strstr(err, "not loopback"));
  opt.addr = "[::]:0";
  assert_int_equal(mesh_api_new(f->base, &opt, &be_ops, &f->be, &api, err, sizeof(err)), -EACCES);
  opt.addr = ":0";
  assert_int_equal(mesh_api_new(f->base, &opt, &be_ops, &f->be, &api, err, sizeof(err)), -EACCES);
  opt.addr = "nonsense";
  assert_int_equal(mesh_api_new(f->base, &opt, &be_ops, &f->be, &api, err, sizeof(err)), -EINVAL);
  opt.addr = "127.0.0.1:99999x";
  assert_int_equal(mesh_api_new(f->base, &opt, &be_ops, &f->be, &api, err, sizeof(err)), -EINVAL);
  /* A backend must have every command. */
  mesh_api_backend_ops partial = be_ops;
  partial.leave = NULL;
  opt.addr = "127.0.0.1:0";
  assert_int_equal(mesh_api_new(f->base, &opt, &partial, &f->be, &api, err, sizeof(err)), -EINVAL);
  /* Any 127/8 address is loopback. */
  opt.addr = "127.0.0.2:0";
  assert_int_equal(mesh_api_new(f->base, &opt, &be_ops, &f->be, &api, err, sizeof(err)), 0);
  mesh_api_free(api);
}

static void test_token(void **state)
{
  fixture *f = *state;
  mesh_api_free(f->api);
  assert_int_equal(start_server(f, "127.0.0.1:0", "s3cret-token"), 0);
  response r = request(f, "GET", "/state", NULL);
  assert_true(strstr(r.head, "WWW-Authenticate: Bearer") != NULL);
  assert_error(&r, 401, "token");
  snprintf(f->token, sizeof(f->token), "s3cret-tokeX");
  r = request(f, "GET", "/state", NULL);
  assert_error(&r, 401, "token");
  snprintf(f->token, sizeof(f->token), "s3cret-token-longer");
  r = request(f, "POST", "/leave", NULL);
  assert_error(&r, 401, "token");
  assert_int_equal(f->be.calls_leave, 0);
  snprintf(f->token, sizeof(f->token), "s3cret-token");
  r = request(f, "GET", "/state", NULL);
  assert_int_equal(r.status, 200);
  response_free(&r);
  /* Unknown paths too are behind the token. */
  f->token[0] = '\0';
  r = request(f, "GET", "/nope", NULL);
  assert_error(&r, 401, NULL);
  assert_int_equal(mesh_api_request_count(f->api, "state", 401), 2);
}

static void test_unix_socket(void **state)
{
  fixture *f = *state;
  mesh_api_free(f->api);
  char path[200];
  snprintf(path, sizeof(path), "%s/api.sock", f->dir);
  char addr[220];
  snprintf(addr, sizeof(addr), "unix:%s", path);
  assert_int_equal(start_server(f, addr, NULL), 0);
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0600);
  response r = request(f, "GET", "/node_id", NULL);
  assert_int_equal(r.status, 200);
  response_free(&r);
  /* A second server on a socket in use is refused. */
  mesh_api *other = NULL;
  char err[256];
  mesh_api_options opt = {.addr = addr};
  assert_int_equal(mesh_api_new(f->base, &opt, &be_ops, &f->be, &other, err, sizeof(err)),
                   -EADDRINUSE);
  /* Freed: the socket file goes. */
  mesh_api_free(f->api);
  f->api = NULL;
  assert_int_equal(lstat(path, &st), -1);
  /* A regular file in the way is not replaced. */
  FILE *fp = fopen(path, "w");
  fclose(fp);
  assert_int_equal(mesh_api_new(f->base, &opt, &be_ops, &f->be, &other, err, sizeof(err)), -EEXIST);
  unlink(path);
  /* A path too long for sun_path. */
  char longp[300];
  memset(longp, 'x', sizeof(longp));
  memcpy(longp, "unix:/tmp/", 10);
  longp[sizeof(longp) - 1] = '\0';
  opt.addr = longp;
  assert_int_equal(mesh_api_new(f->base, &opt, &be_ops, &f->be, &other, err, sizeof(err)),
                   -ENAMETOOLONG);
  /* Restore a server for teardown. */
  assert_int_equal(start_server(f, "127.0.0.1:0", NULL), 0);
}

/* ---- What a web page could send. */

/* Each request a browser would let any page send to 127.0.0.1 (or, after
 * DNS rebinding, to its own name resolved there): refused with 403 before
 * any command runs, and counted by reason. Then the same server still
 * serves a command-line client. */
static void test_browser_requests_refused(void **state)
{
  fixture *f = *state;
  static const char start[] = "{\"targetNodeId\":\"" ID_SELF "\",\"modelId\":\"org/m\"}";
  static const struct {
    const char *method;
    const char *path;
    const char *headers;
    const char *body;
    const char *reason;
    const char *needle;
  } cases[] = {
      /* <form method=post enctype=...> and fetch(..., {mode: "no-cors"}). */
      {"POST", "/download/start",
       "Host: 127.0.0.1:52417\r\nContent-Type: application/x-www-form-urlencoded\r\n",
       "targetNodeId=x&modelId=org%2Fm", "content_type", "application/json"},
      {"POST", "/leave", "Host: 127.0.0.1:52417\r\nContent-Type: text/plain;charset=UTF-8\r\n",
       start, "content_type", "text/plain"},
      {"POST", "/gc",
       "Host: localhost:52417\r\nContent-Type: multipart/form-data; boundary=----x\r\n",
       "------x--\r\n", "content_type", "multipart"},
      {"POST", "/leave", "Host: localhost\r\n", NULL, "content_type", "''"},
      {"DELETE", "/download/" ID_SELF "/org%2Fm", "Host: localhost\r\n", NULL, "content_type",
       NULL},
      {"POST", "/download/start", "Host: localhost\r\nContent-Type: application/json-seq\r\n",
       start, "content_type", NULL},
      /* The same after DNS rebinding: the page's own name in Host. */
      {"GET", "/state", "Host: evil.example:52417\r\n", NULL, "host", "evil.example"},
      {"POST", "/leave", "Host: evil.example:52417\r\nContent-Type: application/json\r\n", "{}",
       "host", NULL},
      {"GET", "/state", "Host: 0.0.0.0:52417\r\n", NULL, "host", NULL},
      {"GET", "/state", "Host: 127.0.0.1.evil.example\r\n", NULL, "host", NULL},
      {"GET", "/state", "Host: localhost\r\nHost: evil.example\r\n", NULL, "host", NULL},
      {"GET", "/node_id", "X-No-Host: 1\r\n", NULL, "host", NULL},
      /* A page's fetch() with a JSON body still says where it came from. */
      {"POST", "/download/start",
       "Host: 127.0.0.1:52417\r\nOrigin: https://evil.example\r\n"
       "Content-Type: application/json\r\n",
       start, "origin", "evil.example"},
      {"GET", "/state", "Host: localhost\r\nOrigin: null\r\n", NULL, "origin", "null"},
      {"GET", "/state", "Host: localhost\r\nOrigin: http://localhost:8080\r\n", NULL, "origin",
       NULL},
      {"GET", "/state", "Host: localhost\r\nSec-Fetch-Site: cross-site\r\n", NULL, "origin",
       "cross-site"},
      /* The preflight a page's JSON request needs: never granted. */
      {"OPTIONS", "/download/start",
       "Host: 127.0.0.1:52417\r\nOrigin: https://evil.example\r\n"
       "Access-Control-Request-Method: POST\r\n"
       "Access-Control-Request-Headers: content-type\r\n",
       NULL, "preflight", "CORS"},
      {"OPTIONS", "/leave", "Host: localhost\r\n", NULL, "preflight", NULL},
  };
  uint64_t want[4] = {0};
  const char *reasons[4] = {"host", "origin", "content_type", "preflight"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    response r = request_with(f, cases[i].method, cases[i].path, cases[i].headers, cases[i].body);
    if (r.status != 403)
      fail_msg("case %zu (%s %s): want 403, got %d: %s", i, cases[i].method, cases[i].path,
               r.status, r.body != NULL ? r.body : "");
    /* Nothing that would let a page read the answer. */
    assert_null(strstr(r.head, "Access-Control-"));
    assert_error(&r, 403, cases[i].needle);
    for (int k = 0; k < 4; k++)
      want[k] += strcmp(reasons[k], cases[i].reason) == 0;
    for (int k = 0; k < 4; k++) {
      if (mesh_api_refused_count(f->api, reasons[k]) != want[k])
        fail_msg("after case %zu: refused{%s} = %llu, want %llu", i, reasons[k],
                 (unsigned long long)mesh_api_refused_count(f->api, reasons[k]),
                 (unsigned long long)want[k]);
    }
  }
  assert_int_equal(f->be.calls_start + f->be.calls_delete + f->be.calls_gc + f->be.calls_leave, 0);
  /* The figures show in /metrics. */
  response r = request(f, "GET", "/metrics", NULL);
  assert_int_equal(r.status, 200);
  char line[128];
  snprintf(line, sizeof line, "meshd_api_refused_total{reason=\"content_type\"} %llu\n",
           (unsigned long long)want[2]);
  assert_non_null(strstr(r.body, line));
  snprintf(line, sizeof line, "meshd_api_refused_total{reason=\"host\"} %llu\n",
           (unsigned long long)want[0]);
  assert_non_null(strstr(r.body, line));
  response_free(&r);
  /* What command-line clients send is served: loopback Hosts with any
   * port, a JSON body type with parameters, this API's own origin. */
  char own[160];
  char addr[64];
  mesh_api_address(f->api, addr, sizeof addr);
  snprintf(own, sizeof own, "Host: 127.0.0.1\r\nOrigin: http://%s\r\n", addr);
  static const char *const fine[] = {
      "Host: localhost\r\n",
      "Host: LOCALHOST:52417\r\n",
      "Host: 127.0.0.1:52417\r\n",
      "Host: 127.3.2.1\r\n",
      "Host: [::1]:52417\r\n",
      "Host: [::1]\r\n",
      "Host: localhost\r\nSec-Fetch-Site: none\r\n",
  };
  for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
    r = request_with(f, "GET", "/node_id", fine[i], NULL);
    if (r.status != 200)
      fail_msg("'%s': want 200, got %d: %s", fine[i], r.status, r.body ? r.body : "");
    response_free(&r);
  }
  r = request_with(f, "GET", "/node_id", own, NULL);
  assert_int_equal(r.status, 200);
  response_free(&r);
  r = request_with(f, "POST", "/download/start",
                   "Host: 127.0.0.1:52417\r\nContent-Type: Application/JSON; charset=utf-8\r\n",
                   start);
  assert_int_equal(r.status, 200);
  response_free(&r);
  assert_int_equal(f->be.calls_start, 1);
}

/* A Unix socket has no Host to check (browsers cannot reach one), but a
 * body type a form could send is still refused. */
static void test_browser_rules_on_unix_socket(void **state)
{
  fixture *f = *state;
  mesh_api_free(f->api);
  char addr[220];
  snprintf(addr, sizeof(addr), "unix:%s/api.sock", f->dir);
  assert_int_equal(start_server(f, addr, NULL), 0);
  response r = request_with(f, "GET", "/node_id", "Host: whatever\r\n", NULL);
  assert_int_equal(r.status, 200);
  response_free(&r);
  r = request_with(f, "POST", "/leave", "Host: localhost\r\nContent-Type: text/plain\r\n", "");
  assert_error(&r, 403, "application/json");
  r = request_with(f, "GET", "/node_id", "Host: localhost\r\nOrigin: http://localhost\r\n", NULL);
  assert_error(&r, 403, "web pages");
  r = request(f, "POST", "/leave", NULL);
  assert_int_equal(r.status, 200);
  response_free(&r);
  assert_int_equal(f->be.calls_leave, 1);
  assert_int_equal(mesh_api_refused_count(f->api, "content_type"), 1);
  assert_int_equal(mesh_api_refused_count(f->api, "origin"), 1);
  mesh_api_free(f->api);
  assert_int_equal(start_server(f, "127.0.0.1:0", NULL), 0);
}

/* With a token, a browser's request is still refused as one (403, counted
 * by reason), before the token is looked at. */
static void test_browser_refused_before_token(void **state)
{
  fixture *f = *state;
  mesh_api_free(f->api);
  assert_int_equal(start_server(f, "127.0.0.1:0", "tok-abcdef"), 0);
  snprintf(f->token, sizeof(f->token), "tok-abcdef");
  response r =
      request_with(f, "POST", "/leave", "Host: localhost\r\nContent-Type: text/plain\r\n", "{}");
  assert_error(&r, 403, "application/json");
  r = request_with(f, "GET", "/state", "Host: evil.example\r\n", NULL);
  assert_error(&r, 403, "loopback");
  r = request(f, "POST", "/leave", NULL);
  assert_int_equal(r.status, 200);
  response_free(&r);
  assert_int_equal(f->be.calls_leave, 1);
  assert_int_equal(mesh_api_refused_count(f->api, "content_type"), 1);
  assert_int_equal(mesh_api_refused_count(f->api, "host"), 1);
}

/* ---- The pure parsers. */

static void test_header_checks(void **state)
{
  (void)state;
  static const char *const loop[] = {"localhost",          "LocalHost:1",    "127.0.0.1",
                                     "127.255.255.254:80", "[::1]",          "[::1]:52417",
                                     "[::ffff:127.0.0.1]", "127.0.0.1:65535"};
  for (size_t i = 0; i < sizeof loop / sizeof loop[0]; i++) {
    if (!mesh_api_host_is_loopback(loop[i]))
      fail_msg("'%s' should be loopback", loop[i]);
  }
  static const char *const foreign[] = {"",
                                        "evil.example",
                                        "evil.example:52417",
                                        "0.0.0.0",
                                        "0.0.0.0:52417",
                                        "[::]:1",
                                        "127.0.0.1.nip.io",
                                        "localhost.evil.example",
                                        "127.1",
                                        "0x7f000001",
                                        "2130706433",
                                        "localhost:",
                                        "localhost:0",
                                        "localhost:65536",
                                        "localhost:1x",
                                        "[::1",
                                        "[::1]x",
                                        "[::1]:",
                                        "::1",
                                        "localhost :80",
                                        "10.0.0.1",
                                        "[::ffff:10.0.0.1]",
                                        "localhost:123456"};
  for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
    if (mesh_api_host_is_loopback(foreign[i]))
      fail_msg("'%s' should not be loopback", foreign[i]);
  }
  assert_false(mesh_api_host_is_loopback(NULL));

  assert_true(mesh_api_origin_is_own("http://127.0.0.1:52417", 52417));
  assert_true(mesh_api_origin_is_own("http://localhost:52417", 52417));
  assert_true(mesh_api_origin_is_own("http://[::1]:52417", 52417));
  assert_true(mesh_api_origin_is_own("http://localhost", 80));
  assert_false(mesh_api_origin_is_own("http://localhost:52418", 52417));
  assert_false(mesh_api_origin_is_own("https://localhost:52417", 52417));
  assert_false(mesh_api_origin_is_own("http://localhost:52417/x", 52417));
  assert_false(mesh_api_origin_is_own("http://evil.example:52417", 52417));
  assert_false(mesh_api_origin_is_own("null", 52417));
  assert_false(mesh_api_origin_is_own("", 52417));
  assert_false(mesh_api_origin_is_own("http://localhost:52417", 0));
  assert_false(mesh_api_origin_is_own(NULL, 52417));

  assert_true(mesh_api_content_type_is_json("application/json"));
  assert_true(mesh_api_content_type_is_json("APPLICATION/JSON"));
  assert_true(mesh_api_content_type_is_json(" application/json; charset=utf-8"));
  assert_true(mesh_api_content_type_is_json("application/json ;charset=utf-8"));
  assert_false(mesh_api_content_type_is_json(NULL));
  assert_false(mesh_api_content_type_is_json(""));
  assert_false(mesh_api_content_type_is_json("text/plain"));
  assert_false(mesh_api_content_type_is_json("application/x-www-form-urlencoded"));
  assert_false(mesh_api_content_type_is_json("multipart/form-data; boundary=x"));
  assert_false(mesh_api_content_type_is_json("application/json-seq"));
  assert_false(mesh_api_content_type_is_json("application/jsonx"));
  assert_false(mesh_api_content_type_is_json("text/plain; application/json"));
}

static void test_parsers(void **state)
{
  char out[16];
  assert_int_equal(mesh_api_percent_decode("a%2Fb", 5, out, sizeof(out)), 0);
  assert_string_equal(out, "a/b");
  assert_int_equal(mesh_api_percent_decode("%", 1, out, sizeof(out)), -EBADMSG);
  assert_int_equal(mesh_api_percent_decode("%4", 2, out, sizeof(out)), -EBADMSG);
  assert_int_equal(mesh_api_percent_decode("%g0", 3, out, sizeof(out)), -EBADMSG);
  assert_int_equal(mesh_api_percent_decode("%00", 3, out, sizeof(out)), -EBADMSG);
  assert_int_equal(mesh_api_percent_decode("0123456789abcdef", 16, out, sizeof(out)), -EMSGSIZE);
  assert_true(mesh_api_valid_model_id("org/name"));
  assert_true(mesh_api_valid_model_id("gpt2"));
  assert_false(mesh_api_valid_model_id("org/"));
  assert_false(mesh_api_valid_model_id("/name"));
  assert_false(mesh_api_valid_model_id("org/.."));
  assert_false(mesh_api_valid_model_id("a b/c"));
  assert_true(mesh_api_valid_revision("refs/pr/1"));
  assert_false(mesh_api_valid_revision("a/../b"));
  assert_true(mesh_api_valid_node_id(ID_PEER));
  assert_false(mesh_api_valid_node_id(""));
  assert_false(mesh_api_valid_node_id("12D3-x"));
  size_t lim;
  char err[64];
  assert_int_equal(mesh_api_parse_journal_limit("x=1&limit=7", &lim, err, sizeof(err)), 0);
  assert_int_equal(lim, 7);
  assert_int_equal(mesh_api_parse_journal_limit("limit=", &lim, err, sizeof(err)), -EBADMSG);
  assert_int_equal(mesh_api_parse_journal_limit("limit", &lim, err, sizeof(err)), -EBADMSG);
}

/* ---- Connections: the cap, the close hook, the pause. */

/* A client connection, connecting (non-blocking) and left idle. */
static int idle_connect(fixture *f)
{
  int fd = mesh_socket_nb(f->addr.ss_family, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  int c = connect(fd, (struct sockaddr *)&f->addr, f->addrlen);
  assert_true(c == 0 || errno == EINPROGRESS);
  return fd;
}

static mesh_api_conn_stats stats_of(fixture *f)
{
  mesh_api_conn_stats st;
  mesh_api_connection_stats(f->api, &st);
  return st;
}

/* Runs the server's loop until the accepted and refused connections add up
 * to n (10 s at most). */
static void run_until_seen(fixture *f, uint64_t n)
{
  uint64_t deadline = now_ms() + 10000;
  for (;;) {
    mesh_api_conn_stats st = stats_of(f);
    if (st.accepted + st.refused_limit >= n)
      return;
    assert_true(now_ms() < deadline);
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    poll(NULL, 0, 2);
  }
}

static void run_until_open(fixture *f, uint64_t open)
{
  uint64_t deadline = now_ms() + 10000;
  while (stats_of(f).open != open) {
    assert_true(now_ms() < deadline);
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    poll(NULL, 0, 2);
  }
}

/* True when the server closed fd (EOF or reset), waiting up to 2 s. */
static bool closed_by_server(fixture *f, int fd)
{
  uint64_t deadline = now_ms() + 2000;
  while (now_ms() < deadline) {
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 5) > 0) {
      char c;
      ssize_t n = recv(fd, &c, 1, 0);
      return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    }
  }
  return false;
}

static void test_connection_cap(void **state)
{
  fixture *f = *state;
  mesh_api_free(f->api);
  assert_int_equal(start_server_capped(f, "127.0.0.1:0", NULL, 3), 0);
  int fds[5];
  for (int i = 0; i < 5; i++)
    fds[i] = idle_connect(f);
  run_until_seen(f, 5);
  mesh_api_conn_stats st = stats_of(f);
  assert_int_equal(st.max, 3);
  assert_int_equal(st.open, 3);
  assert_int_equal(st.accepted, 3);
  assert_int_equal(st.refused_limit, 2);
  assert_int_equal(st.untracked, 0);
  /* The two over the cap were closed at once; the first three were not. */
  assert_true(closed_by_server(f, fds[3]));
  assert_true(closed_by_server(f, fds[4]));
  assert_false(closed_by_server(f, fds[0]));
  /* Full: a request is refused too. */
  response r = request(f, "GET", "/node_id", NULL);
  assert_int_equal(r.status, 0);
  response_free(&r);
  assert_int_equal(stats_of(f).refused_limit, 3);
  /* Closing them frees the slots, and the API answers again. */
  for (int i = 0; i < 5; i++)
    close(fds[i]);
  run_until_open(f, 0);
  r = request(f, "GET", "/metrics", NULL);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "meshd_api_connections_open 1\n"));
  assert_non_null(strstr(r.body, "meshd_api_connections_max 3\n"));
  assert_non_null(strstr(r.body, "meshd_api_connections_refused_total{reason=\"limit\"} 3\n"));
  assert_non_null(strstr(r.body, "meshd_api_accept_paused_total{reason=\"descriptors\"} 0\n"));
  response_free(&r);
  run_until_open(f, 0);
  assert_int_equal(stats_of(f).accepted, 4);
}

/* A command held for another node's answer: its connection stays counted
 * while it waits; the answer goes out on it, and when the client closes,
 * the count drops and the ticket is gone. */
static void test_pending_on_counted_connection(void **state)
{
  fixture *f = *state;
  f->be.next_rc = MESH_API_PENDING;
  static const char body[] = "{\"targetNodeId\":\"" ID_PEER "\",\"modelId\":\"org/m\"}";
  char raw[512];
  int n = snprintf(raw, sizeof raw,
                   "POST /download/start HTTP/1.1\r\nHost: localhost\r\n"
                   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                   sizeof body - 1, body);
  int fd = idle_connect(f);
  uint64_t deadline = now_ms() + 10000;
  size_t sent = 0;
  while (f->be.calls_start == 0) {
    assert_true(now_ms() < deadline);
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    if (sent < (size_t)n) {
      ssize_t k = send(fd, raw + sent, (size_t)n - sent, MSG_NOSIGNAL);
      if (k > 0)
        sent += (size_t)k;
    }
    poll(NULL, 0, 2);
  }
  assert_int_equal(stats_of(f).open, 1);
  /* The first ticket the server handed out. */
  assert_int_equal(mesh_api_command_done(f->api, 1, 0, "done"), 0);
  char got[2048] = "";
  size_t have = 0;
  while (strstr(got, "\r\n\r\n") == NULL) {
    assert_true(now_ms() < deadline);
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 5) > 0) {
      ssize_t k = recv(fd, got + have, sizeof got - have - 1, 0);
      assert_true(k > 0);
      have += (size_t)k;
      got[have] = '\0';
    }
  }
  assert_non_null(strstr(got, "HTTP/1.1 200"));
  assert_int_equal(stats_of(f).open, 1);
  close(fd);
  run_until_open(f, 0);
  assert_int_equal(mesh_api_command_done(f->api, 1, 0, "again"), -ENOENT);
  f->be.next_rc = 0;
}

/* Accept fails for want of descriptors: accepting pauses (once, not in a
 * loop) and resumes after the pause, taking the connections that waited. */
static void test_accept_pauses_when_out_of_files(void **state)
{
  fixture *f = *state;
  int fds[6];
  for (int i = 0; i < 6; i++)
    fds[i] = idle_connect(f);
  struct rlimit old;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
  /* Room for two more descriptors: a limit just above the two lowest free
   * ones (the test runner may hold descriptors with gaps between them). */
  int room = 0;
  int lim = 0;
  while (room < 2) {
    if (fcntl(lim, F_GETFD) < 0 && errno == EBADF)
      room++;
    lim++;
  }
  struct rlimit low = {.rlim_cur = (rlim_t)lim, .rlim_max = old.rlim_max};
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
  uint64_t until = now_ms() + 60;
  while (now_ms() < until) {
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    poll(NULL, 0, 1);
  }
  mesh_api_conn_stats st = stats_of(f);
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
  /* Two accepted, then one pause: the listener stayed off for 60 ms of a
   * running loop instead of failing again and again. */
  assert_int_equal(st.open, 2);
  assert_int_equal(st.accept_paused, 1);
  run_until_open(f, 6);
  assert_int_equal(stats_of(f).accept_paused, 1);
  for (int i = 0; i < 6; i++)
    close(fds[i]);
  run_until_open(f, 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_node_id, setup, teardown),
      cmocka_unit_test_setup_teardown(test_state_exo_shape, setup, teardown),
      cmocka_unit_test_setup_teardown(test_members_downloads, setup, teardown),
      cmocka_unit_test_setup_teardown(test_large_state_rendered_off_the_loop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_journal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
      cmocka_unit_test(test_metrics_histogram),
      cmocka_unit_test_setup_teardown(test_start, setup, teardown),
      cmocka_unit_test_setup_teardown(test_start_bad_bodies, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_errors_map, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete_paths, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gc_leave, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_method_and_path, setup, teardown),
      cmocka_unit_test_setup_teardown(test_body_too_big, setup, teardown),
      cmocka_unit_test_setup_teardown(test_headers_too_big_and_garbage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_non_loopback_needs_token, setup, teardown),
      cmocka_unit_test_setup_teardown(test_token, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unix_socket, setup, teardown),
      cmocka_unit_test_setup_teardown(test_browser_requests_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_browser_rules_on_unix_socket, setup, teardown),
      cmocka_unit_test_setup_teardown(test_browser_refused_before_token, setup, teardown),
      cmocka_unit_test_setup_teardown(test_connection_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pending_on_counted_connection, setup, teardown),
      cmocka_unit_test_setup_teardown(test_accept_pauses_when_out_of_files, setup, teardown),
      cmocka_unit_test(test_parsers),
      cmocka_unit_test(test_header_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
