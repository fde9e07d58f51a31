/*
 * The control API's commands: start, cancel and delete a download (held open
 * while another node carries them out), gc, leave and transport reset.
 */
#include "src/daemon/api_internal.h"

#include "src/base/err.h"
#include "src/base/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* ---- Commands. */

static const char *body_of(struct evhttp_request *req, size_t *len)
{
  struct evbuffer *in = evhttp_request_get_input_buffer(req);
  *len = evbuffer_get_length(in);
  if (*len == 0)
    return "";
  return (const char *)evbuffer_pullup(in, -1);
}

void mesh_api_pending_release(struct api_pending *p)
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
void mesh_api_conn_closed(void *arg, struct evhttp_connection *evcon)
{
  mesh_api *api = arg;
  mesh_api_renders_conn_closed(&api->renders, evcon);
  for (size_t i = 0; i < MESH_API_MAX_PENDING; i++) {
    struct api_pending *p = &api->pending[i];
    if (p->ticket != 0 && p->req != NULL && evhttp_request_get_connection(p->req) == evcon) {
      p->req = NULL;
      mesh_api_pending_release(p);
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
  mesh_api_pending_release(p);
  if (req != NULL)
    mesh_api_send_error(api, req, ep, 504,
                        "no answer from node %s within %d s; the command may still be carried out",
                        node, MESH_API_PENDING_TIMEOUT_MS / 1000);
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
    mesh_api_pending_release(p);
    if (req == NULL)
      return 0;
    if (rc == 0)
      mesh_api_send_json(api, req, ep, 200, j);
    else
      mesh_api_send_backend_error(api, req, ep, rc, message);
    return 0;
  }
  return -ENOENT;
}

void mesh_api_handle_command(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep,
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
      mesh_api_send_backend_error(api, req, ep, -ENOMEM, NULL);
      return;
    }
    rc = mesh_api_parse_command(body, len, true, &cmd, why, sizeof(why));
  }
  if (rc < 0) {
    mesh_api_send_error(api, req, ep, 400, "%s", why);
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
    mesh_api_send_backend_error(api, req, ep, rc, why);
    return;
  }
  if (rc == MESH_API_PENDING) {
    /* Carried to another node: answer when it answers. */
    int hold = pending_hold(api, req, ep, ticket, &cmd);
    if (hold != 0)
      mesh_api_send_error(api, req, ep, 503,
                          "too many commands waiting for other nodes; the command was sent to %s",
                          cmd.node);
    return;
  }
  LOG_INFO("api", "%s %s@%s on %s accepted", mesh_api_endpoint_names[ep], cmd.model, cmd.revision,
           cmd.node);
  json_t *j = json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "targetNodeId", cmd.node, "modelId",
                        cmd.model, "revision", cmd.revision);
  mesh_api_send_json(api, req, ep, 200, j);
}

void mesh_api_handle_gc(mesh_api *api, struct evhttp_request *req)
{
  uint64_t collected = 0;
  char why[256] = "";
  int rc = api->ops->gc(api->ctx, &collected, why, sizeof(why));
  if (rc < 0) {
    mesh_api_send_backend_error(api, req, EP_GC, rc, why);
    return;
  }
  mesh_api_send_json(api, req, EP_GC, 200,
                     json_pack("{s:b, s:I}", "ok", 1, "collected", (json_int_t)collected));
}

void mesh_api_handle_leave(mesh_api *api, struct evhttp_request *req)
{
  char why[256] = "";
  int rc = api->ops->leave(api->ctx, why, sizeof(why));
  if (rc < 0) {
    mesh_api_send_backend_error(api, req, EP_LEAVE, rc, why);
    return;
  }
  LOG_INFO("api", "leave requested");
  mesh_api_send_json(api, req, EP_LEAVE, 200, json_pack("{s:b}", "ok", 1));
}

void mesh_api_handle_transport_reset(mesh_api *api, struct evhttp_request *req, const char *rest)
{
  char node[MESH_API_NODE_ID_MAX];
  if (mesh_api_percent_decode(rest, strlen(rest), node, sizeof node) != 0 ||
      !mesh_api_valid_node_id(node)) {
    mesh_api_send_error(api, req, EP_TRANSPORT_RESET, 400, "bad node ID in the path");
    return;
  }
  if (api->ops->transport_reset == NULL) {
    mesh_api_send_error(api, req, EP_TRANSPORT_RESET, 501, "this node cannot reset transports");
    return;
  }
  char why[256] = "";
  int rc = api->ops->transport_reset(api->ctx, node, why, sizeof(why));
  if (rc < 0) {
    mesh_api_send_backend_error(api, req, EP_TRANSPORT_RESET, rc, why);
    return;
  }
  LOG_INFO("api", "transport reset of %s requested", node);
  mesh_api_send_json(api, req, EP_TRANSPORT_RESET, 200,
                     json_pack("{s:b, s:s}", "ok", 1, "targetNodeId", node));
}
