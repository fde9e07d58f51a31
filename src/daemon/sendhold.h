/*
 * Membership messages held for a peer whose connection is being made.
 *
 * The membership core sends to members it has just learned of (a joiner
 * gossips its alive record to random members it has never been connected
 * to; a member relays news to the joiner). Without a connection the send
 * fails, the connection manager dials, and the message was lost although
 * the connection comes up a few milliseconds later: the joiner's own news
 * spent its retransmits on nothing. The hold keeps such messages until the
 * peer's connection is up, then they go out in the order they were made;
 * a message older than its time to live when the peer comes up is dropped
 * (a ping answered that late has been given up on).
 *
 * Bounded: at most MESH_SENDHOLD_MAX messages and MESH_SENDHOLD_BYTES bytes
 * in all; past either the oldest message is dropped first. Every message
 * held, sent and dropped is counted. Pure: no clock (callers pass now), no
 * IO; not thread-safe.
 */
#ifndef MESH_DAEMON_SENDHOLD_H
#define MESH_DAEMON_SENDHOLD_H

#include "net/transport.h"
#include "src/base/clock.h"
#include "src/identity/identity.h"

#include <stddef.h>
#include <stdint.h>

#define MESH_SENDHOLD_MAX 256
#define MESH_SENDHOLD_BYTES (1u << 20)

typedef struct mesh_sendhold_counters {
  uint64_t held;     /* messages kept for a peer without a connection */
  uint64_t released; /* handed back when the peer came up */
  uint64_t expired;  /* older than their time to live when it did */
  uint64_t evicted;  /* dropped for room (count or bytes) */
} mesh_sendhold_counters;

typedef struct mesh_sendhold_msg {
  mesh_peer_id to;
  mesh_class cls;
  mesh_time_ms until; /* dropped when its peer comes up after this */
  uint8_t *buf;       /* owned by the hold */
  size_t len;
} mesh_sendhold_msg;

typedef struct mesh_sendhold {
  mesh_sendhold_msg msgs[MESH_SENDHOLD_MAX]; /* oldest first, n of them */
  size_t n;
  size_t bytes; /* sum of their lengths */
  mesh_sendhold_counters c;
} mesh_sendhold;

void mesh_sendhold_init(mesh_sendhold *h);
/* Frees every message held. */
void mesh_sendhold_clear(mesh_sendhold *h);
/* Keeps a copy of buf (borrowed) for peer until until. 0, -EMSGSIZE (larger
 * than the whole hold), -ENOMEM. */
int mesh_sendhold_put(mesh_sendhold *h, const mesh_peer_id *to, mesh_class cls, const uint8_t *buf,
                      size_t len, mesh_time_ms until);
/* Called for each message released by mesh_sendhold_take (buf borrowed). */
typedef void (*mesh_sendhold_fn)(void *arg, const mesh_peer_id *to, mesh_class cls,
                                 const uint8_t *buf, size_t len);
/* peer came up: calls fn for its messages still within their time to live,
 * oldest first, and forgets all of its messages (and every expired one). */
void mesh_sendhold_take(mesh_sendhold *h, const mesh_peer_id *peer, mesh_time_ms now,
                        mesh_sendhold_fn fn, void *arg);

#endif
