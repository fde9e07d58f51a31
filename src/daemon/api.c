/*
 * The control API's server: listening (TCP on loopback, or a Unix socket),
 * and its making and freeing. See api.h for the endpoints.
 */
#include "src/daemon/api.h"
#include "src/base/platform.h"

#include "src/base/err.h"
#include "src/base/log.h"
#include "src/daemon/api_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

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
  mesh_api_renders_init(&api->renders, opt != NULL ? opt->pool : NULL, mesh_api_send_rendered);
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
  evhttp_set_gencb(api->http, mesh_api_handle_request, api);
  size_t max_conns = opt != NULL && opt->max_connections > 0 ? opt->max_connections
                                                             : MESH_API_DEFAULT_MAX_CONNECTIONS;
  if (mesh_api_conns_init(&api->conns, base, api->http, max_conns, mesh_api_conn_closed, api) < 0) {
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
      mesh_api_pending_release(&api->pending[i]);
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
