/*
 * /state and /downloads rendered off the loop. Rendering others' documents
 * as JSON costs tens of microseconds an entry: 60 large documents held once
 * stalled the loop for 7 s and got the node declared dead. The loop now only
 * copies the entries into one flat snapshot (a struct and one arena of
 * strings, no JSON); past RENDER_ON_LOOP_MAX entries a work item of the
 * pool builds and prints the JSON, and its done function sends the answer,
 * if the client is still there.
 *
 * Small answers (the common case: this node's own entries and a few peers')
 * are rendered on the loop at once: the workers may all be busy in a slow
 * disk's syncs for seconds, and an operator looking at a stuck node must
 * still get its state.
 */
#include "src/daemon/api_internal.h"

#include "src/base/err.h"
#include "src/base/pool.h"

#include <event2/http.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

enum { S_OWNER, S_MODEL, S_REV, S_DIR, S_ERROR, S_COUNT };

/* Entries rendered on the loop (a few milliseconds' worth); more go to
 * the pool. */
#define RENDER_ON_LOOP_MAX 1024

typedef struct snap_entry {
  mesh_api_download d;   /* string pointers unset until the worker runs */
  size_t off[S_COUNT];   /* offsets into the arena */
  bool has[S_COUNT];     /* the string was not NULL */
} snap_entry;

struct mesh_api_render {
  mesh_work work; /* the pool item; first */
  mesh_api_renders *owner;
  void *api;                   /* passed back to send */
  struct evhttp_request *req;  /* NULL once its connection closed */
  int ep;
  bool state;                  /* /state (else /downloads) */
  json_t *members, *self_json; /* /state: built on the loop, handed over */
  snap_entry *entries;         /* owned */
  size_t n, cap;
  char *arena;                 /* owned: every string of the snapshot */
  size_t used, arena_cap;
  int rc;                      /* the backend's listing, then the render */
  char *text;                  /* out: the answer, owned */
  size_t len;
  mesh_api_render *next;       /* in owner->list */
};

static int put_str(mesh_api_render *r, const char *s, size_t *off)
{
  size_t l = strlen(s) + 1;
  if (r->used + l > r->arena_cap) {
    size_t cap = r->arena_cap ? r->arena_cap : 4096;
    while (cap < r->used + l)
      cap *= 2;
    char *a = realloc(r->arena, cap);
    if (a == NULL)
      return -ENOMEM;
    r->arena = a;
    r->arena_cap = cap;
  }
  memcpy(r->arena + r->used, s, l);
  *off = r->used;
  r->used += l;
  return 0;
}

/* The backend's listing callback, on the loop: one entry copied. */
static int copy_entry(void *arg, const mesh_api_download *d)
{
  mesh_api_render *r = arg;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    snap_entry *e = realloc(r->entries, cap * sizeof *e);
    if (e == NULL)
      return -ENOMEM;
    r->entries = e;
    r->cap = cap;
  }
  snap_entry *e = &r->entries[r->n];
  memset(e, 0, sizeof *e);
  e->d = *d;
  const char *strs[S_COUNT] = {d->owner_id, d->model_id, d->revision, d->model_dir, d->error};
  for (int i = 0; i < S_COUNT; i++) {
    e->has[i] = strs[i] != NULL;
    if (strs[i] != NULL && put_str(r, strs[i], &e->off[i]) != 0)
      return -ENOMEM;
  }
  r->n++;
  return 0;
}

/* On a worker: the JSON, built and printed. Touches only r. */
static void render_work(mesh_work *w)
{
  mesh_api_render *r = (mesh_api_render *)w;
  if (r->rc != 0)
    return;
  json_t *downloads = json_object();
  int rc = downloads == NULL ? -ENOMEM : 0;
  for (size_t i = 0; i < r->n && rc == 0; i++) {
    snap_entry *e = &r->entries[i];
    const char **ptrs[S_COUNT] = {&e->d.owner_id, &e->d.model_id, &e->d.revision,
                                  &e->d.model_dir, &e->d.error};
    for (int k = 0; k < S_COUNT; k++)
      *ptrs[k] = e->has[k] ? r->arena + e->off[k] : NULL;
    rc = mesh_api_json_add_download(downloads, &e->d);
  }
  json_t *j = NULL;
  if (rc == 0 && r->state) {
    /* topology.nodes: the members of this node's view (alive and suspect). */
    json_t *nodes = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(r->members, i, m)
    {
      const char *st = json_string_value(json_object_get(m, "state"));
      if (nodes != NULL && st != NULL && (strcmp(st, "alive") == 0 || strcmp(st, "suspect") == 0))
        json_array_append_new(nodes, json_pack("{s:O, s:O, s:O, s:O}", "nodeId",
                                               json_object_get(m, "nodeId"), "epoch",
                                               json_object_get(m, "epoch"), "addresses",
                                               json_object_get(m, "addresses"), "state",
                                               json_object_get(m, "state")));
    }
    j = json_pack("{s:{s:o}, s:o, s:O, s:O}", "topology", "nodes", nodes, "downloads", downloads,
                  "members", r->members, "self", r->self_json);
    downloads = NULL;
  } else if (rc == 0) {
    j = json_pack("{s:o}", "downloads", downloads);
    downloads = NULL;
  }
  json_decref(downloads);
  char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (text == NULL) {
    r->rc = rc != 0 ? rc : -ENOMEM;
    return;
  }
  size_t n = strlen(text);
  char *line = realloc(text, n + 2);
  if (line == NULL) {
    free(text);
    r->rc = -ENOMEM;
    return;
  }
  line[n] = '\n';
  line[n + 1] = '\0';
  r->text = line;
  r->len = n + 1;
}

static void render_free(mesh_api_render *r)
{
  json_decref(r->members);
  json_decref(r->self_json);
  free(r->entries);
  free(r->arena);
  free(r->text);
  free(r);
}

static void unlink_render(mesh_api_renders *rs, mesh_api_render *r)
{
  for (mesh_api_render **pp = &rs->list; *pp != NULL; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  rs->in_flight--;
}

/* On the loop: the answer goes out, if its client is still connected. */
static void render_done(mesh_work *w)
{
  mesh_api_render *r = (mesh_api_render *)w;
  mesh_api_renders *rs = r->owner;
  unlink_render(rs, r);
  if (r->req != NULL)
    rs->send(r->api, r->req, r->ep, r->rc, r->text, r->len);
  else
    rs->dropped++;
  rs->rendered++;
  render_free(r);
}

void mesh_api_renders_init(mesh_api_renders *rs, mesh_pool *pool, mesh_api_render_send_fn send)
{
  memset(rs, 0, sizeof *rs);
  rs->pool = pool;
  rs->send = send;
}

int mesh_api_render_start(mesh_api_renders *rs, void *api, struct evhttp_request *req, int ep,
                          json_t *members, json_t *self_json, const mesh_api_backend_ops *ops,
                          void *ctx)
{
  mesh_api_render *r = calloc(1, sizeof *r);
  if (r == NULL) {
    json_decref(members);
    json_decref(self_json);
    return -ENOMEM;
  }
  r->owner = rs;
  r->api = api;
  r->req = req;
  r->ep = ep;
  r->state = members != NULL;
  r->members = members;
  r->self_json = self_json;
  r->rc = ops->list_downloads(ctx, copy_entry, r);
  if (r->rc > 0)
    r->rc = 0;
  r->next = rs->list;
  rs->list = r;
  rs->in_flight++;
  if (rs->pool == NULL || r->rc != 0 || r->n <= RENDER_ON_LOOP_MAX) {
    /* Small, failed, or no pool (a test's API): the same steps, here. */
    rs->on_loop++;
    render_work(&r->work);
    render_done(&r->work);
    return 0;
  }
  mesh_pool_submit(rs->pool, &r->work, NULL, render_work, render_done);
  return 0;
}

void mesh_api_renders_conn_closed(mesh_api_renders *rs, struct evhttp_connection *evcon)
{
  for (mesh_api_render *r = rs->list; r != NULL; r = r->next)
    if (r->req != NULL && evhttp_request_get_connection(r->req) == evcon)
      r->req = NULL;
}

void mesh_api_renders_flush(mesh_api_renders *rs)
{
  if (rs->pool != NULL && rs->in_flight > 0)
    mesh_pool_flush(rs->pool);
}
