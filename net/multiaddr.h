/*
 * Peer addresses: the multiaddr forms meshd accepts, and plain host:port.
 *
 *   /ip4/127.0.0.1/tcp/52416
 *   /ip6/::1/tcp/52416/p2p/12D3KooW...
 *   /dns4/node-a.lan/tcp/52416      (also /dns6/ and /dns/)
 *   127.0.0.1:52416   localhost:52416   [::1]:52416
 *
 * Only the text form is handled (the binary multiaddr form never travels in
 * meshd). A /p2p/ part names the peer ID the dialled key must have; it is
 * accepted on the command line and in --join, and a handshake with a peer
 * whose key gives another ID is refused. Parsing bounds the input length
 * first and never allocates. Nothing here blocks except
 * mesh_multiaddr_resolve for DNS names (getaddrinfo), which only listening
 * uses, once at start-up; dialling resolves names asynchronously on the
 * loop (net/resolve.h).
 */
#ifndef MESH_NET_MULTIADDR_H
#define MESH_NET_MULTIADDR_H

#include "src/identity/identity.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest address text accepted (a DNS name is at most 253 characters). */
#define MESH_MULTIADDR_TEXT_MAX 400
#define MESH_MULTIADDR_HOST_MAX 254

typedef enum mesh_ma_host {
  MESH_MA_IP4 = 1,
  MESH_MA_IP6 = 2,
  MESH_MA_DNS4 = 3,
  MESH_MA_DNS6 = 4,
  MESH_MA_DNS = 5, /* either family */
} mesh_ma_host;

typedef struct mesh_multiaddr {
  mesh_ma_host kind;
  char host[MESH_MULTIADDR_HOST_MAX]; /* address text (canonical for IPs) or DNS name */
  uint16_t port;
  char scheme[8];    /* transport protocol: "tcp" */
  bool has_peer;     /* a /p2p/ part was given */
  mesh_peer_id peer; /* its peer ID when has_peer */
} mesh_multiaddr;

/* Parses a multiaddr or host:port. -EBADMSG names no reason; why (may be
 * NULL) receives a short static one. -EMSGSIZE when the text is too long. */
int mesh_multiaddr_parse(const char *text, mesh_multiaddr *out, const char **why);
/* Writes the multiaddr text form. -ENOSPC when buf is too small. */
int mesh_multiaddr_format(const mesh_multiaddr *a, char *buf, size_t len);
/* The address of a socket (IPv4 or IPv6) as a multiaddr with the scheme. */
int mesh_multiaddr_from_sockaddr(const struct sockaddr *sa, socklen_t salen, const char *scheme,
                                 mesh_multiaddr *out);
/* Resolves to a socket address: IPs directly, DNS names with getaddrinfo
 * (blocking: for start-up only, never from the running loop; dials use
 * net/resolve.h). -EHOSTUNREACH when a name does not resolve. */
int mesh_multiaddr_resolve(const mesh_multiaddr *a, struct sockaddr_storage *ss, socklen_t *sslen);

#endif
