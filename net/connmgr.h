/*
 * Who this node connects to, and when: the connection manager's rules, as a
 * sans-IO state machine (no clock, no socket, no log).
 *
 * One table holds every address worth dialling, each entry with a role:
 *
 *   seed        an address from --join. Dialled whenever the peer it
 *               reached is not connected, with capped backoff and jitter,
 *               for the node's whole life.
 *   member      a member of the view, with the addresses of its signed
 *               record. In the view (alive, suspect): kept connected.
 *               Departed (dead, left): retried with backoff until the
 *               membership core reaps it, since a node that left may come
 *               back under a new epoch.
 *   remembered  a member known before this start (kept in the store).
 *               Dialled while the view holds nobody else, so that a node
 *               restarted without --join finds its cluster.
 *
 * An address a member advertises but that never reached it gets a few
 * attempts (unreached_tries), then is dropped from the redial list until
 * the member's record changes; an address that reached it stays.
 * Addresses a peer merely mentions (an indirect-probe request naming a
 * stranger) are never kept: each is tried once, at a bounded rate, and an
 * address tried recently is not tried again.
 *
 * The table is bounded: when full, the least recently useful entry that
 * is not a seed or a member in the view is evicted; if there is none, the
 * new entry is refused. Everything refused is counted.
 *
 * The caller feeds it the view (mesh_connmgr_member), the transport's peer
 * events (peer_up/peer_down) and dial outcomes (dial_result), then asks
 * which dials are due (mesh_connmgr_poll) and when to ask again
 * (mesh_connmgr_next_due). Time is the caller's cached "now".
 */
#ifndef MESH_NET_CONNMGR_H
#define MESH_NET_CONNMGR_H

#include "src/base/clock.h"
#include "src/base/rng.h"
#include "src/identity/identity.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest address text kept (a multiaddr with a /p2p/ part fits). */
#define MESH_CM_ADDR_MAX 256
/* Addresses kept per entry. */
#define MESH_CM_MAX_ADDRS 8

typedef enum mesh_cm_role {
  MESH_CM_SEED = 0,
  MESH_CM_MEMBER = 1,
  MESH_CM_REMEMBERED = 2,
} mesh_cm_role;
#define MESH_CM_ROLE_COUNT 3

const char *mesh_cm_role_name(mesh_cm_role r);

typedef struct mesh_connmgr_config {
  size_t max_entries;             /* table size (1024) */
  size_t max_remembered;          /* remembered members kept (64) */
  mesh_time_ms backoff_min_ms;    /* first redial delay (100 ms) */
  mesh_time_ms backoff_max_ms;    /* cap on the redial delay (30 s) */
  unsigned unreached_tries;       /* attempts for an address that never reached its peer (3) */
  uint32_t mention_rate;          /* one-shot dials of mentioned addresses per second (10) */
  uint32_t mention_burst;         /* ... allowed at once (20) */
  size_t mention_memory;          /* mentioned addresses remembered as tried (256) */
  mesh_time_ms mention_memory_ms; /* ... for this long (60 s) */
} mesh_connmgr_config;

/* Fills the defaults above. */
void mesh_connmgr_config_default(mesh_connmgr_config *c);

typedef struct mesh_connmgr_counters {
  uint64_t dials[MESH_CM_ROLE_COUNT]; /* dials started, by role */
  uint64_t dial_failures;             /* dials that did not reach a peer */
  uint64_t mention_dials;             /* one-shot dials of mentioned addresses */
  uint64_t mentions_refused_rate;     /* mentions over the rate */
  uint64_t mentions_refused_recent;   /* mentions of an address tried recently */
  uint64_t refused_full;              /* entries refused: table full of seeds and members */
  uint64_t refused_bad;               /* addresses refused: too long, empty */
  uint64_t evicted;                   /* entries evicted for room */
  uint64_t addrs_dropped;             /* addresses dropped after unreached_tries */
  uint64_t wrong_peer;                /* a member's address reached another peer */
  uint64_t entries[MESH_CM_ROLE_COUNT]; /* gauge: entries now, by role */
} mesh_connmgr_counters;

/* A dial the caller must start. token comes back in dial_result. */
typedef struct mesh_cm_dial {
  uint64_t token;
  char addr[MESH_CM_ADDR_MAX];
  bool has_peer;     /* the handshake must prove peer */
  mesh_peer_id peer;
  mesh_cm_role role; /* what it is for (a mention's is MESH_CM_MEMBER, one_shot set) */
  bool one_shot;     /* a mentioned address: tried once */
} mesh_cm_dial;

typedef enum mesh_cm_member_state {
  MESH_CM_IN_VIEW = 0,  /* alive or suspect */
  MESH_CM_DEPARTED = 1, /* dead or left: retried until reaped */
  MESH_CM_GONE = 2,     /* reaped: forgotten */
} mesh_cm_member_state;

typedef struct mesh_connmgr mesh_connmgr;

/* self is this node (never dialled); rng the jitter source (borrowed). */
int mesh_connmgr_new(const mesh_connmgr_config *cfg, const mesh_peer_id *self, mesh_rng *rng,
                     mesh_connmgr **out);
void mesh_connmgr_free(mesh_connmgr *cm);

/* A --join address, dialled for the node's whole life; due at once.
 * 0, -EEXIST when present already, -EINVAL malformed, -ENOSPC refused. */
int mesh_connmgr_add_seed(mesh_connmgr *cm, const char *addr, mesh_time_ms now);

/* A member known before this start (from the store), with its addresses
 * (reached ones first). Ignored when the peer is already in the table.
 * 0, -EEXIST, -EINVAL, -ENOSPC (over max_remembered or the table). */
int mesh_connmgr_remember(mesh_connmgr *cm, const mesh_peer_id *peer, const char *const *addrs,
                          size_t n, mesh_time_ms now);

/* The membership core's record of peer changed: its state and the
 * addresses of its signed record. GONE forgets the entry. */
int mesh_connmgr_member(mesh_connmgr *cm, const mesh_peer_id *peer, mesh_cm_member_state st,
                        const char *const *addrs, size_t n, mesh_time_ms now);

/* Something must go to peer and there is no connection: a member's entry
 * is dialled now unless an attempt is under way or it is backing off.
 * -ENOENT when peer has no entry (the caller may then mention). */
int mesh_connmgr_want(mesh_connmgr *cm, const mesh_peer_id *peer, mesh_time_ms now);

/* A peer mentioned addresses for peer (which may be NULL): one attempt at
 * the first usable one, if the rate and the memory of recent tries allow.
 * 0 queued, -EALREADY tried recently, -EBUSY over the rate, -EINVAL. */
int mesh_connmgr_mention(mesh_connmgr *cm, const mesh_peer_id *peer, const char *const *addrs,
                         size_t n, mesh_time_ms now);

/* The transport's peer events. */
void mesh_connmgr_peer_up(mesh_connmgr *cm, const mesh_peer_id *peer, mesh_time_ms now);
void mesh_connmgr_peer_down(mesh_connmgr *cm, const mesh_peer_id *peer, mesh_time_ms now);

/* How the dial with token ended: rc 0 and the peer it reached, or a
 * negative errno (peer NULL). Unknown tokens are ignored. */
void mesh_connmgr_dial_result(mesh_connmgr *cm, uint64_t token, int rc, const mesh_peer_id *peer,
                              mesh_time_ms now);

/* Dials due at now, at most cap of them into out; each is then under way
 * until its dial_result. Returns how many. */
size_t mesh_connmgr_poll(mesh_connmgr *cm, mesh_time_ms now, mesh_cm_dial *out, size_t cap);

/* When poll has something next: a time, or UINT64_MAX for nothing. */
mesh_time_ms mesh_connmgr_next_due(const mesh_connmgr *cm);

/* Whether peer is connected, as the peer events said. */
bool mesh_connmgr_is_up(const mesh_connmgr *cm, const mesh_peer_id *peer);

/* One entry as shown to operators and saved to the store. */
typedef struct mesh_cm_entry_info {
  mesh_cm_role role;
  bool has_peer;
  mesh_peer_id peer;
  bool in_view;    /* members: alive or suspect */
  bool up;         /* connected now */
  unsigned attempts; /* failed dials since the last success */
  mesh_time_ms due;  /* next dial, or UINT64_MAX */
  size_t n_addrs;
  const char *addrs[MESH_CM_MAX_ADDRS]; /* borrowed until the next call */
  bool reached[MESH_CM_MAX_ADDRS];      /* the address reached this peer */
} mesh_cm_entry_info;

size_t mesh_connmgr_count(const mesh_connmgr *cm);
int mesh_connmgr_entry_at(const mesh_connmgr *cm, size_t i, mesh_cm_entry_info *out);

const mesh_connmgr_counters *mesh_connmgr_counters_get(const mesh_connmgr *cm);

#endif
