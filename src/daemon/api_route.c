/*
 * The control API's routing: which endpoint a request names, the guard and
 * the token checks, and the dispatch to the endpoint's handler.
 */
#include "src/daemon/api_internal.h"

#include "src/base/log.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <sodium.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

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

void mesh_api_handle_request(struct evhttp_request *req, void *arg)
{
  mesh_api *api = arg;
  const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
  const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
  if (path == NULL || path[0] != '/') {
    mesh_api_send_error(api, req, EP_OTHER, 400, "bad request target");
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
    mesh_api_send_error(api, req, ep, 403, "%s", why);
    return;
  }
  if (!authorized(api, req)) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"meshd\"");
    MESH_LOG_RL(MESH_LOG_WARN, "api", "request without a valid token refused");
    mesh_api_send_error(api, req, ep, 401, "a valid bearer token is required");
    return;
  }
  if (ep == EP_OTHER) {
    mesh_api_send_error(api, req, ep, 404, "no such endpoint: %.200s", path);
    return;
  }
  if (evhttp_request_get_command(req) != want) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", method_name(want));
    mesh_api_send_error(api, req, ep, 405, "%s takes %s", path, method_name(want));
    return;
  }
  if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > MESH_API_MAX_BODY) {
    mesh_api_send_error(api, req, ep, 413, "the body is larger than %d bytes", MESH_API_MAX_BODY);
    return;
  }
  switch (ep) {
  case EP_NODE_ID:
    mesh_api_handle_node_id(api, req);
    break;
  case EP_STATE:
    mesh_api_handle_state(api, req);
    break;
  case EP_MEMBERS:
    mesh_api_handle_members(api, req);
    break;
  case EP_DOWNLOADS:
    mesh_api_handle_downloads(api, req);
    break;
  case EP_JOURNAL:
    mesh_api_handle_journal(api, req, evhttp_uri_get_query(uri));
    break;
  case EP_METRICS:
    mesh_api_handle_metrics(api, req);
    break;
  case EP_DOWNLOAD_START:
  case EP_DOWNLOAD_CANCEL:
    mesh_api_handle_command(api, req, ep, NULL, NULL);
    break;
  case EP_DOWNLOAD_DELETE:
    mesh_api_handle_command(api, req, ep, path + strlen("/download/"), evhttp_uri_get_query(uri));
    break;
  case EP_GC:
    mesh_api_handle_gc(api, req);
    break;
  case EP_LEAVE:
    mesh_api_handle_leave(api, req);
    break;
  case EP_TRANSPORT_RESET:
    mesh_api_handle_transport_reset(api, req, path + strlen("/transport/reset/"));
    break;
  default:
    mesh_api_send_error(api, req, EP_OTHER, 404, "no such endpoint");
    break;
  }
}
