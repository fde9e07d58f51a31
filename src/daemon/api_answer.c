/*
 * The control API's answers: the HTTP status of an error, the bodies sent,
 * and the count of answers by endpoint and status.
 */
#include "src/daemon/api_internal.h"

#include "src/base/err.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const mesh_api_endpoint_names[EP_COUNT] = {
    "node_id", "state",           "members",         "downloads",       "journal",
    "metrics", "download_start",  "download_delete", "download_cancel", "gc",
    "leave",   "transport_reset", "other",
};

/* The statuses the API answers with; counted per endpoint. */
const int mesh_api_status_codes[] = {200, 400, 401, 403, 404, 405, 409, 413, 500, 501, 503, 504};

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
  for (size_t i = 0; i < MESH_API_NSTATUS; i++) {
    if (mesh_api_status_codes[i] == code) {
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
    if (strcmp(mesh_api_endpoint_names[e], endpoint) != 0)
      continue;
    for (size_t i = 0; i < MESH_API_NSTATUS; i++) {
      if (mesh_api_status_codes[i] == code)
        return api->counts[e][i];
    }
  }
  return 0;
}

/* ---- Answers. */

void mesh_api_send_body(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep, int code,
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
void mesh_api_send_json(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep, int code,
                        json_t *j)
{
  char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (text == NULL) {
    static const char oom[] = "{\"error\":\"out of memory\"}\n";
    mesh_api_send_body(api, req, ep, 500, "application/json", oom, sizeof(oom) - 1);
    return;
  }
  size_t n = strlen(text);
  char *line = realloc(text, n + 2);
  if (line == NULL) {
    mesh_api_send_body(api, req, ep, code, "application/json", text, n);
    free(text);
    return;
  }
  line[n] = '\n';
  line[n + 1] = '\0';
  mesh_api_send_body(api, req, ep, code, "application/json", line, n + 1);
  free(line);
}

void mesh_api_send_error(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep, int code,
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
  mesh_api_send_json(api, req, ep, code, j);
}

void mesh_api_send_backend_error(mesh_api *api, struct evhttp_request *req, enum api_endpoint ep,
                                 int rc, const char *why)
{
  int code = mesh_api_http_status(rc);
  if (why != NULL && why[0] != '\0')
    mesh_api_send_error(api, req, ep, code, "%s", why);
  else
    mesh_api_send_error(api, req, ep, code, "%s", mesh_strerror(rc));
}
