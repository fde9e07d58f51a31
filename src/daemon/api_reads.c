/*
 * The control API's read endpoints: /node_id, /members, /state, /downloads,
 * /journal and /metrics.
 */
#include "src/daemon/api_internal.h"

#include <errno.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

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

void mesh_api_handle_node_id(mesh_api *api, struct evhttp_request *req)
{
  mesh_api_self self = {0};
  int rc = api->ops->get_self(api->ctx, &self);
  if (rc < 0) {
    mesh_api_send_backend_error(api, req, EP_NODE_ID, rc, NULL);
    return;
  }
  mesh_api_send_json(
      api, req, EP_NODE_ID, 200,
      json_pack("{s:s?, s:I}", "nodeId", self.peer_id, "epoch", (json_int_t)self.epoch));
}

void mesh_api_handle_members(mesh_api *api, struct evhttp_request *req)
{
  json_t *members = NULL;
  int rc = get_members(api, &members);
  if (rc < 0) {
    mesh_api_send_backend_error(api, req, EP_MEMBERS, rc, NULL);
    return;
  }
  mesh_api_send_json(api, req, EP_MEMBERS, 200, json_pack("{s:o}", "members", members));
}

/* The render's answer (api_render.c). */
void mesh_api_send_rendered(void *arg, struct evhttp_request *req, int ep, int rc, const char *text,
                            size_t len)
{
  mesh_api *api = arg;
  if (rc == 0 && text != NULL)
    mesh_api_send_body(api, req, (enum api_endpoint)ep, 200, "application/json", text, len);
  else
    mesh_api_send_backend_error(api, req, (enum api_endpoint)ep, rc != 0 ? rc : -ENOMEM, NULL);
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
    mesh_api_send_backend_error(api, req, ep, rc, NULL);
}

void mesh_api_handle_downloads(mesh_api *api, struct evhttp_request *req)
{
  render(api, req, EP_DOWNLOADS, NULL, NULL);
}

void mesh_api_handle_state(mesh_api *api, struct evhttp_request *req)
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
    mesh_api_send_backend_error(api, req, EP_STATE, rc < 0 ? rc : -ENOMEM, NULL);
    return;
  }
  render(api, req, EP_STATE, members, self_json);
}

void mesh_api_handle_journal(mesh_api *api, struct evhttp_request *req, const char *query)
{
  size_t limit;
  char why[128] = "";
  if (mesh_api_parse_journal_limit(query, &limit, why, sizeof(why)) < 0) {
    mesh_api_send_error(api, req, EP_JOURNAL, 400, "%s", why);
    return;
  }
  json_t *a = json_array();
  if (a == NULL) {
    mesh_api_send_backend_error(api, req, EP_JOURNAL, -ENOMEM, NULL);
    return;
  }
  int rc = api->ops->journal(api->ctx, limit, collect_journal, a);
  if (rc < 0) {
    json_decref(a);
    mesh_api_send_backend_error(api, req, EP_JOURNAL, rc, NULL);
    return;
  }
  mesh_api_send_json(api, req, EP_JOURNAL, 200, json_pack("{s:o}", "entries", a));
}

void mesh_api_handle_metrics(mesh_api *api, struct evhttp_request *req)
{
  mesh_api_metrics m;
  mesh_api_metrics_init(&m);
  if (api->ops->metrics != NULL)
    api->ops->metrics(api->ctx, &m);
  /* This request shows among the answers, as if already sent. */
  for (int e = 0; e < EP_COUNT; e++) {
    for (size_t s = 0; s < MESH_API_NSTATUS; s++) {
      uint64_t n = api->counts[e][s];
      if (e == EP_METRICS && mesh_api_status_codes[s] == 200)
        n++;
      if (n == 0)
        continue;
      char code[8];
      snprintf(code, sizeof(code), "%d", mesh_api_status_codes[s]);
      const char *labels[] = {"endpoint", mesh_api_endpoint_names[e], "code", code, NULL};
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
    mesh_api_send_backend_error(api, req, EP_METRICS, -ENOMEM, NULL);
    return;
  }
  mesh_api_send_body(api, req, EP_METRICS, 200, "text/plain; version=0.0.4; charset=utf-8", text,
                     len);
  free(text);
}
