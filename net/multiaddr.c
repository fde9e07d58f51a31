/* Parsing and printing peer addresses: multiaddrs and plain host:port (net/multiaddr.h). */
#include "net/multiaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static int fail(const char **why, const char *reason)
{
  if (why != NULL)
    *why = reason;
  return -EBADMSG;
}

/* Parses a decimal port 1..65535 of exactly len characters. */
static int parse_port(const char *s, size_t len, uint16_t *out)
{
  if (len == 0 || len > 5)
    return -EBADMSG;
  unsigned v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -EBADMSG;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  /* Port 0 is allowed: listening on it picks a free port. */
  if (v > 65535)
    return -EBADMSG;
  *out = (uint16_t)v;
  return 0;
}

/* A DNS name: letters, digits, '-', '.', 1..253 characters. */
static bool valid_dns(const char *s, size_t len)
{
  if (len == 0 || len > 253)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok)
      return false;
  }
  return true;
}

/* Sets the host of out from len bytes of s, checking it against kind and
 * storing IPs in canonical form. */
static int set_host(mesh_multiaddr *out, mesh_ma_host kind, const char *s, size_t len,
                    const char **why)
{
  char tmp[MESH_MULTIADDR_HOST_MAX];
  if (len == 0 || len >= sizeof tmp)
    return fail(why, "bad host length");
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  out->kind = kind;
  if (kind == MESH_MA_IP4) {
    struct in_addr a;
    if (inet_pton(AF_INET, tmp, &a) != 1)
      return fail(why, "bad IPv4 address");
    inet_ntop(AF_INET, &a, out->host, sizeof out->host);
  } else if (kind == MESH_MA_IP6) {
    struct in6_addr a;
    if (inet_pton(AF_INET6, tmp, &a) != 1)
      return fail(why, "bad IPv6 address");
    inet_ntop(AF_INET6, &a, out->host, sizeof out->host);
  } else {
    if (!valid_dns(tmp, len))
      return fail(why, "bad DNS name");
    memcpy(out->host, tmp, len + 1);
  }
  return 0;
}

/* Takes the next "/part" of *p (without the slash); false at the end. */
static bool next_part(const char **p, const char **part, size_t *len)
{
  const char *s = *p;
  if (*s != '/')
    return false;
  s++;
  const char *e = strchr(s, '/');
  size_t n = e != NULL ? (size_t)(e - s) : strlen(s);
  *part = s;
  *len = n;
  *p = s + n;
  return true;
}

static bool part_is(const char *part, size_t len, const char *word)
{
  return strlen(word) == len && memcmp(part, word, len) == 0;
}

/* Trailing slashes end a multiaddr as well as its end does (go-multiaddr
 * trims them). */
static bool only_slashes(const char *p)
{
  while (*p == '/')
    p++;
  return *p == '\0';
}

static int parse_multiaddr(const char *text, mesh_multiaddr *out, const char **why)
{
  const char *p = text;
  const char *part;
  size_t len;
  if (!next_part(&p, &part, &len))
    return fail(why, "empty multiaddr");
  mesh_ma_host kind;
  if (part_is(part, len, "ip4"))
    kind = MESH_MA_IP4;
  else if (part_is(part, len, "ip6"))
    kind = MESH_MA_IP6;
  else if (part_is(part, len, "dns4"))
    kind = MESH_MA_DNS4;
  else if (part_is(part, len, "dns6"))
    kind = MESH_MA_DNS6;
  else if (part_is(part, len, "dns"))
    kind = MESH_MA_DNS;
  else
    return fail(why, "multiaddr must start with /ip4, /ip6, /dns4, /dns6 or /dns");
  if (!next_part(&p, &part, &len))
    return fail(why, "missing host");
  int rc = set_host(out, kind, part, len, why);
  if (rc != 0)
    return rc;
  if (!next_part(&p, &part, &len) || !part_is(part, len, "tcp"))
    return fail(why, "expected /tcp/PORT after the host");
  memcpy(out->scheme, "tcp", 4);
  if (!next_part(&p, &part, &len) || parse_port(part, len, &out->port) != 0)
    return fail(why, "bad port");
  if (only_slashes(p))
    return 0;
  if (!next_part(&p, &part, &len) || !(part_is(part, len, "p2p") || part_is(part, len, "ipfs")))
    return fail(why, "only /p2p/ID may follow the port");
  if (!next_part(&p, &part, &len) || len == 0 || len >= MESH_PEER_ID_TEXT_MAX)
    return fail(why, "bad peer ID");
  char id[MESH_PEER_ID_TEXT_MAX];
  memcpy(id, part, len);
  id[len] = '\0';
  if (mesh_peer_id_parse(id, &out->peer) != 0)
    return fail(why, "bad peer ID (meshd peers are Ed25519 libp2p keys: 12D3KooW... or b...)");
  out->has_peer = true;
  if (!only_slashes(p))
    return fail(why, "trailing parts after /p2p/ID");
  return 0;
}

static int parse_hostport(const char *text, mesh_multiaddr *out, const char **why)
{
  const char *colon;
  int rc;
  if (text[0] == '[') {
    const char *close = strchr(text, ']');
    if (close == NULL || close[1] != ':')
      return fail(why, "expected [v6]:port");
    rc = set_host(out, MESH_MA_IP6, text + 1, (size_t)(close - text - 1), why);
    colon = close + 1;
  } else {
    colon = strrchr(text, ':');
    if (colon == NULL)
      return fail(why, "expected host:port or a multiaddr");
    if (memchr(text, ':', (size_t)(colon - text)) != NULL)
      return fail(why, "an IPv6 address needs brackets: [v6]:port");
    size_t hl = (size_t)(colon - text);
    char tmp[MESH_MULTIADDR_HOST_MAX];
    if (hl == 0 || hl >= sizeof tmp)
      return fail(why, "bad host length");
    memcpy(tmp, text, hl);
    tmp[hl] = '\0';
    struct in_addr a;
    rc = set_host(out, inet_pton(AF_INET, tmp, &a) == 1 ? MESH_MA_IP4 : MESH_MA_DNS, text, hl, why);
  }
  if (rc != 0)
    return rc;
  memcpy(out->scheme, "tcp", 4);
  if (parse_port(colon + 1, strlen(colon + 1), &out->port) != 0)
    return fail(why, "bad port");
  return 0;
}

int mesh_multiaddr_parse(const char *text, mesh_multiaddr *out, const char **why)
{
  memset(out, 0, sizeof *out);
  if (why != NULL)
    *why = NULL;
  size_t n = strnlen(text, MESH_MULTIADDR_TEXT_MAX + 1);
  if (n > MESH_MULTIADDR_TEXT_MAX) {
    if (why != NULL)
      *why = "address too long";
    return -EMSGSIZE;
  }
  int rc = text[0] == '/' ? parse_multiaddr(text, out, why) : parse_hostport(text, out, why);
  if (rc != 0)
    memset(out, 0, sizeof *out);
  return rc;
}

int mesh_multiaddr_format(const mesh_multiaddr *a, char *buf, size_t len)
{
  static const char *const kinds[] = {"", "ip4", "ip6", "dns4", "dns6", "dns"};
  if ((int)a->kind < MESH_MA_IP4 || (int)a->kind > MESH_MA_DNS)
    return -EINVAL;
  char id[MESH_PEER_ID_TEXT_MAX] = "";
  if (a->has_peer)
    mesh_peer_id_to_text(&a->peer, id, sizeof id);
  int w = snprintf(buf, len, "/%s/%s/%s/%u%s%s", kinds[a->kind], a->host,
                   a->scheme[0] != '\0' ? a->scheme : "tcp", (unsigned)a->port,
                   a->has_peer ? "/p2p/" : "", id);
  if (w < 0 || (size_t)w >= len)
    return -ENOSPC;
  return 0;
}

int mesh_multiaddr_from_sockaddr(const struct sockaddr *sa, socklen_t salen, const char *scheme,
                                 mesh_multiaddr *out)
{
  memset(out, 0, sizeof *out);
  snprintf(out->scheme, sizeof out->scheme, "%s", scheme);
  if (sa->sa_family == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    out->kind = MESH_MA_IP4;
    inet_ntop(AF_INET, &in->sin_addr, out->host, sizeof out->host);
    out->port = ntohs(in->sin_port);
    return 0;
  }
  if (sa->sa_family == AF_INET6 && salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    out->kind = MESH_MA_IP6;
    inet_ntop(AF_INET6, &in6->sin6_addr, out->host, sizeof out->host);
    out->port = ntohs(in6->sin6_port);
    return 0;
  }
  return -EAFNOSUPPORT;
}

int mesh_multiaddr_resolve(const mesh_multiaddr *a, struct sockaddr_storage *ss, socklen_t *sslen)
{
  memset(ss, 0, sizeof *ss);
  if (a->kind == MESH_MA_IP4) {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(a->port);
    if (inet_pton(AF_INET, a->host, &in->sin_addr) != 1)
      return -EBADMSG;
    *sslen = sizeof *in;
    return 0;
  }
  if (a->kind == MESH_MA_IP6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(a->port);
    if (inet_pton(AF_INET6, a->host, &in6->sin6_addr) != 1)
      return -EBADMSG;
    *sslen = sizeof *in6;
    return 0;
  }
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
  hints.ai_family = a->kind == MESH_MA_DNS4 ? AF_INET : a->kind == MESH_MA_DNS6 ? AF_INET6 : 0;
  char port[8];
  snprintf(port, sizeof port, "%u", (unsigned)a->port);
  struct addrinfo *res = NULL;
  if (getaddrinfo(a->host, port, &hints, &res) != 0 || res == NULL)
    return -EHOSTUNREACH;
  if (res->ai_addrlen > sizeof *ss) {
    freeaddrinfo(res);
    return -EAFNOSUPPORT;
  }
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *sslen = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}
