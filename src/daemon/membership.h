/*
 * The membership part of the daemon: runs the SWIM core (net/swim.h) over
 * the node's network (net/transport.h) and the loop's timers.
 *
 * It feeds the core what arrives on MESH_CH_SWIM and every peer that
 * finishes a handshake, and drains the core's outbox after every input:
 * messages go to mesh_net_send, addresses of members we have no connection
 * to are dialled once each (the transport keeps a dialled peer connected),
 * the core's one timer request becomes one loop timer, and view events and
 * application state go to the subscribers in the order they happened (the
 * coordinator is the first).
 *
 * When the core says this node was declared dead in its own epoch
 * (epoch_over), the node cannot come back in that epoch: the part tells the
 * daemon (mesh_membership_on_epoch_over), which makes a new epoch durable
 * off the loop and then hands it back (mesh_membership_renew). Until then
 * the core says nothing in any new epoch. The process never restarts for
 * this (src/daemon/renew.c).
 *
 * The loop's lag samples (src/daemon/loop.h) go to the core as well, which
 * raises Lifeguard's health score when this node's own loop runs late.
 *
 * Runs on the loop thread only; nothing here blocks.
 */
#ifndef MESH_DAEMON_MEMBERSHIP_H
#define MESH_DAEMON_MEMBERSHIP_H

#include "net/swim.h"
#include "net/view.h"
#include "src/daemon/node.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mesh_config;
typedef struct mesh_membership mesh_membership;

/* A view event, in order. */
typedef void (*mesh_membership_event_fn)(void *arg, const mesh_view_event *ev);
/* A peer's application state arrived with a push-pull (borrowed bytes). */
typedef void (*mesh_membership_app_fn)(void *arg, const mesh_peer_id *from, uint64_t epoch,
                                       const uint8_t *buf, size_t len);
/* The leave finished (its broadcasts went out, or the deadline passed). */
typedef void (*mesh_membership_done_fn)(void *arg);

#define MESH_MEMBERSHIP_MAX_SUBSCRIBERS 4

/*
 * Creates the core from cfg (profile and overrides) for node's identity and
 * epoch, and registers on the node's MESH_CH_SWIM channel and peer events.
 * Nothing is sent until mesh_membership_start.
 */
int mesh_membership_new(mesh_node *node, const struct mesh_config *cfg, mesh_membership **out,
                        char *err, size_t errlen);
void mesh_membership_free(mesh_membership *m);
/* The keepalive period and idle timeout of peer connections that cfg's
 * membership timing calls for (mesh_swim_link_timing). -EINVAL for an
 * impossible timing (mesh_membership_new says why). */
int mesh_membership_link_timing(const struct mesh_config *cfg, mesh_time_ms *keepalive_ms,
                                mesh_time_ms *idle_ms);

int mesh_membership_subscribe(mesh_membership *m, mesh_membership_event_fn ev,
                              mesh_membership_app_fn app, void *arg);

/* A connection to peer finished its handshake (after membership saw it). */
typedef void (*mesh_membership_peer_up_fn)(void *arg, const mesh_peer_id *peer);
void mesh_membership_on_peer_up(mesh_membership *m, mesh_membership_peer_up_fn fn, void *arg);

/* View events were lost (the core's outbox could not hold them): a
 * subscriber sees such a gap in the next event's number, but the last
 * changes of a drain would wait for the next change, so it is told at the
 * end of that drain to compare the core's number with its own
 * (net/view.h). Called on the loop thread. */
typedef void (*mesh_membership_view_gap_fn)(void *arg);
void mesh_membership_on_view_gap(mesh_membership *m, mesh_membership_view_gap_fn fn, void *arg);

/* Joins through cfg's join addresses (none for the first node). */
int mesh_membership_start(mesh_membership *m);

/* Leaves gracefully: spreads a signed left record, then calls done once
 * the broadcasts are out or deadline_ms passed. */
int mesh_membership_leave(mesh_membership *m, mesh_time_ms deadline_ms,
                          mesh_membership_done_fn done, void *arg);
bool mesh_membership_leaving(const mesh_membership *m);

int mesh_membership_set_app_state(mesh_membership *m, const uint8_t *buf, size_t len);

/* This node was declared dead in epoch by accuser (borrowed for the call).
 * Called once per epoch, from a drain, on the loop thread. */
typedef void (*mesh_membership_epoch_over_fn)(void *arg, const mesh_peer_id *accuser,
                                              uint64_t epoch);
void mesh_membership_on_epoch_over(mesh_membership *m, mesh_membership_epoch_over_fn fn, void *arg);
/* Continues under epoch, already durable: this node is announced alive at
 * it (mesh_swim_set_epoch). -ESTALE when it is not higher. */
int mesh_membership_renew(mesh_membership *m, uint64_t epoch);

/* The core, for reading members and counters (not for feeding input). */
const mesh_swim *mesh_membership_core(const mesh_membership *m);
/* This node's advertised addresses. */
size_t mesh_membership_addrs(const mesh_membership *m, const char *const **addrs);

/* Who this node connects to (src/daemon/connections.h). */
struct mesh_connections *mesh_membership_connections(mesh_membership *m);

/* Sends the glue could not make (for /metrics). */
typedef struct mesh_membership_counters {
  uint64_t sends_no_route; /* a send found no connection: handed to the connection manager */
  uint64_t sends_failed;   /* a send refused for another reason */
  uint64_t epochs_over;    /* times this node learned it was declared dead */
} mesh_membership_counters;
const mesh_membership_counters *mesh_membership_counters_get(const mesh_membership *m);
/* Sends held until their peer's connection came up (src/daemon/sendhold.h). */
struct mesh_sendhold_counters;
const struct mesh_sendhold_counters *mesh_membership_hold_counters(const mesh_membership *m);

#endif
