/*
 * Asynchronous name resolution for /dns4, /dns6 and /dns multiaddrs, on the
 * loop's libevent base (evdns): a lookup never blocks the loop.
 *
 * A resolver is made by its owner (the TCP transport makes one the first
 * time it dials a DNS name) and reads the system's /etc/resolv.conf and
 * /etc/hosts, unless told to use one nameserver (tests point it at a
 * loopback server they run). Every lookup has a deadline; at the deadline
 * it is abandoned and reported as -ETIMEDOUT. The answer always arrives
 * from the loop, never from inside mesh_resolve_start, so a caller is never
 * re-entered. IP literals are not looked up: they resolve at once (still
 * answered from the loop).
 *
 * Ownership: the resolver owns its lookups; a lookup handle is valid from
 * mesh_resolve_start until its callback runs or mesh_resolve_cancel. Freeing
 * the resolver cancels every lookup still running (no callback runs).
 * Everything runs on the loop's thread.
 */
#ifndef MESH_NET_RESOLVE_H
#define MESH_NET_RESOLVE_H

#include "net/multiaddr.h"

#include <stdint.h>
#include <sys/socket.h>

struct event_base;

typedef struct mesh_resolver mesh_resolver;
typedef struct mesh_resolve_req mesh_resolve_req;

/* Counted over the resolver's life. */
typedef struct mesh_resolver_counters {
  uint64_t lookups;   /* lookups started */
  uint64_t resolved;  /* answered with an address */
  uint64_t failed;    /* answered with no usable address (no such name, server failure) */
  uint64_t timed_out; /* abandoned at the deadline */
  uint64_t cancelled; /* cancelled by the caller */
} mesh_resolver_counters;

typedef struct mesh_resolver_options {
  uint32_t timeout_ms;    /* deadline of one lookup (5000) */
  unsigned max_pending;   /* lookups running at once; more get -EBUSY (64) */
  const char *nameserver; /* "IP" or "IP:port": use only this server and
                             /etc/hosts; NULL: the system's configuration */
} mesh_resolver_options;

/*
 * The answer of a lookup: rc 0 with the first address (family as the
 * multiaddr asks: /dns4 IPv4, /dns6 IPv6, /dns either) and the port of the
 * multiaddr; -EHOSTUNREACH when the name has no such address;
 * -ETIMEDOUT at the deadline; -EAGAIN when the server failed. sa is
 * borrowed for the call. The handle is gone once this runs.
 */
typedef void (*mesh_resolve_fn)(void *arg, int rc, const struct sockaddr *sa, socklen_t len);

/* Fills the defaults above; nameserver is the test hook's, if set. */
void mesh_resolver_options_default(mesh_resolver_options *o);
/* Test hook: resolvers made with default options from now on use only this
 * nameserver ("IP:port", copied; NULL restores the system's), so tests
 * query a server of their own on loopback, never the network's. */
void mesh_resolver_test_nameserver(const char *addr);
/* Makes a resolver on base (borrowed). opt may be NULL for the defaults.
 * -ENOMEM, or -EINVAL for a nameserver that is not an address. */
int mesh_resolver_new(struct event_base *base, const mesh_resolver_options *opt,
                      mesh_resolver **out);
/* Cancels every lookup (their callbacks do not run) and frees r. */
void mesh_resolver_free(mesh_resolver *r);
/*
 * Starts resolving a (copied). Non-blocking: fn runs later from the loop,
 * exactly once unless the lookup is cancelled. *req (may be NULL) receives
 * the handle. -EBUSY when max_pending lookups are running, -EINVAL for a
 * multiaddr with no host, -ENOMEM.
 */
int mesh_resolve_start(mesh_resolver *r, const mesh_multiaddr *a, mesh_resolve_fn fn, void *arg,
                       mesh_resolve_req **req);
/* Cancels a lookup whose callback has not run; its callback never runs. */
void mesh_resolve_cancel(mesh_resolve_req *req);
const mesh_resolver_counters *mesh_resolver_counters_of(const mesh_resolver *r);
/* What a lookup's rc means, for log lines ("no such name", ...). */
const char *mesh_resolve_strerror(int rc);

#endif
