/*
 * What keeps a web page from driving the control API (see api.h, "Who may
 * call the API"). A browser can be made by any page it shows to send a
 * request to 127.0.0.1:52417: a "simple" cross-origin POST (form or
 * text/plain body) goes out without asking the server first, and with DNS
 * rebinding a page's own name comes to point at 127.0.0.1, so that it may
 * also read the answers. Every such request carries a mark a browser cannot
 * leave off or forge: the Host names the page's site, an Origin (or
 * Sec-Fetch-Site) header says where the page came from, a body that is not a
 * form or text needs a preflight (OPTIONS) first. Command-line clients
 * (meshctl, curl, scripts) send none of these, so refusing them costs
 * operators nothing.
 *
 * The checks are pure functions of header values, fuzzed with the request
 * parsers; mesh_api_guard_check applies them to a request.
 */
#include "src/daemon/api.h"

#include "src/daemon/api_internal.h"

#include <arpa/inet.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Largest host part of a Host or Origin value looked at; longer is not
 * loopback anyway ("[" + the longest IPv6 text + "]"). */
#define GUARD_HOST_MAX 64

/* Splits "host[:port]" or "[v6][:port]" (len bytes, not NUL-terminated)
 * into the host text (without brackets, into host of GUARD_HOST_MAX bytes)
 * and the port (0 when absent). Returns false when malformed. */
static bool split_authority(const char *s, size_t len, char *host, bool *v6, unsigned *port)
{
  const char *hend;
  const char *rest;
  *v6 = false;
  if (len > 0 && s[0] == '[') {
    const char *close = memchr(s, ']', len);
    if (close == NULL)
      return false;
    s++;
    hend = close;
    rest = close + 1;
    *v6 = true;
  } else {
    const char *colon = memchr(s, ':', len);
    hend = colon != NULL ? colon : s + len;
    rest = hend;
  }
  size_t hl = (size_t)(hend - s);
  if (hl == 0 || hl >= GUARD_HOST_MAX)
    return false;
  memcpy(host, s, hl);
  host[hl] = '\0';
  const char *end = (*v6 ? s - 1 : s) + len;
  *port = 0;
  if (rest == end)
    return true;
  if (*rest != ':' || end - rest < 2 || end - rest > 6)
    return false;
  unsigned p = 0;
  for (const char *c = rest + 1; c < end; c++) {
    if (*c < '0' || *c > '9')
      return false;
    p = p * 10 + (unsigned)(*c - '0');
  }
  if (p == 0 || p > 65535)
    return false;
  *port = p;
  return true;
}

/* "localhost", an IPv4 address in 127.0.0.0/8 (dotted quad only), or, in
 * brackets, ::1 or ::ffff:127.x.y.z. Not 0.0.0.0: browsers have reached
 * local services through it. */
static bool host_is_loopback(const char *host, bool v6)
{
  if (v6) {
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) != 1)
      return false;
    if (IN6_IS_ADDR_LOOPBACK(&a6))
      return true;
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
  }
  if (strcasecmp(host, "localhost") == 0)
    return true;
  struct in_addr a4;
  if (inet_pton(AF_INET, host, &a4) != 1)
    return false;
  return (ntohl(a4.s_addr) >> 24) == 127;
}

bool mesh_api_host_is_loopback(const char *value)
{
  if (value == NULL)
    return false;
  char host[GUARD_HOST_MAX];
  bool v6;
  unsigned port;
  if (!split_authority(value, strlen(value), host, &v6, &port))
    return false;
  return host_is_loopback(host, v6);
}

bool mesh_api_origin_is_own(const char *value, unsigned port)
{
  static const char scheme[] = "http://";
  if (value == NULL || port == 0 || strncasecmp(value, scheme, sizeof(scheme) - 1) != 0)
    return false;
  const char *auth = value + sizeof(scheme) - 1;
  char host[GUARD_HOST_MAX];
  bool v6;
  unsigned p;
  /* An origin is scheme://host[:port], nothing after: a path or a user
   * part is not an origin a browser sends. */
  if (!split_authority(auth, strlen(auth), host, &v6, &p))
    return false;
  if (p == 0)
    p = 80;
  return p == port && host_is_loopback(host, v6);
}

bool mesh_api_content_type_is_json(const char *value)
{
  static const char json[] = "application/json";
  if (value == NULL)
    return false;
  while (*value == ' ' || *value == '\t')
    value++;
  if (strncasecmp(value, json, sizeof(json) - 1) != 0)
    return false;
  /* Parameters (charset) may follow; another media type may not
   * ("application/json-seq", "application/jsonx"). */
  char next = value[sizeof(json) - 1];
  return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

const char *mesh_api_refusal_name(enum mesh_api_refusal r)
{
  switch (r) {
  case MESH_API_REFUSED_HOST:
    return "host";
  case MESH_API_REFUSED_ORIGIN:
    return "origin";
  case MESH_API_REFUSED_CONTENT_TYPE:
    return "content_type";
  case MESH_API_REFUSED_PREFLIGHT:
    return "preflight";
  default:
    return "none";
  }
}

/* The value of the only header called name, in *value (NULL when absent).
 * Returns false when there are two or more: which one a proxy or browser
 * meant is then unclear, so the request is refused. */
static bool only_header(struct evkeyvalq *h, const char *name, const char **value)
{
  *value = NULL;
  /* keyvalq_struct.h gives the list's fields but not sys/queue.h's
   * macros on every system. */
  for (struct evkeyval *kv = h->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
    if (strcasecmp(kv->key, name) != 0)
      continue;
    if (*value != NULL)
      return false;
    *value = kv->value;
  }
  return true;
}

/* Copies the printable ASCII of s (at most len - 1 bytes) into buf, for a
 * log line about a value the client chose. */
static void printable(const char *s, char *buf, size_t len)
{
  size_t n = 0;
  for (; s != NULL && *s != '\0' && n + 1 < len; s++)
    buf[n++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
  buf[n] = '\0';
}

enum mesh_api_refusal mesh_api_guard_check(const mesh_api_guard *g, struct evhttp_request *req,
                                           char *why, size_t len)
{
  struct evkeyvalq *h = evhttp_request_get_input_headers(req);
  enum evhttp_cmd_type m = evhttp_request_get_command(req);
  char shown[GUARD_HOST_MAX + 16];
  /* No CORS header is ever sent, so a browser never lets a page make a
   * request that needs a preflight; refusing the preflight says so. */
  if (m == EVHTTP_REQ_OPTIONS) {
    snprintf(why, len, "the control API answers no CORS preflight: it is not for web pages");
    return MESH_API_REFUSED_PREFLIGHT;
  }
  const char *v;
  if (g->check_host) {
    if (!only_header(h, "Host", &v) || !mesh_api_host_is_loopback(v)) {
      printable(v, shown, sizeof shown);
      snprintf(why, len,
               "Host '%s' is not a loopback name: only localhost, 127.0.0.1 and [::1] are "
               "served (a web page under another name may have been pointed here)",
               shown);
      return MESH_API_REFUSED_HOST;
    }
  }
  if (!only_header(h, "Origin", &v) || (v != NULL && !mesh_api_origin_is_own(v, g->port))) {
    printable(v, shown, sizeof shown);
    snprintf(why, len, "requests from web pages are refused (Origin '%s')", shown);
    return MESH_API_REFUSED_ORIGIN;
  }
  /* Browsers that send no Origin on a GET still say where it came from. */
  if (!only_header(h, "Sec-Fetch-Site", &v) ||
      (v != NULL && strcasecmp(v, "same-origin") != 0 && strcasecmp(v, "none") != 0)) {
    printable(v, shown, sizeof shown);
    snprintf(why, len, "requests from web pages are refused (Sec-Fetch-Site '%s')", shown);
    return MESH_API_REFUSED_ORIGIN;
  }
  if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
    if (!only_header(h, "Content-Type", &v) || !mesh_api_content_type_is_json(v)) {
      printable(v, shown, sizeof shown);
      snprintf(why, len,
               "a request that changes state needs 'Content-Type: application/json' (got '%s')",
               shown);
      return MESH_API_REFUSED_CONTENT_TYPE;
    }
  }
  return MESH_API_REFUSED_NONE;
}
