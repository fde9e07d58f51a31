/*
 * The node's connection manager: the rules of net/connmgr.h run on the
 * loop. It dials what the rules say is due (one attempt at a time through
 * mesh_net_dial), feeds back peer events and dial outcomes, and keeps the
 * last known members durable through a save callback (the daemon writes
 * them to the store on the store strand), so a node restarted without
 * --join finds its cluster.
 *
 * The membership glue (membership.c) owns it and tells it of seeds, of
 * every change of a member's record, and of sends that found no
 * connection. Everything runs on the loop thread.
 */
#ifndef MESH_DAEMON_CONNECTIONS_H
#define MESH_DAEMON_CONNECTIONS_H

#include "coord/store.h"
#include "net/connmgr.h"
#include "src/daemon/node.h"

typedef struct mesh_connections mesh_connections;

/* Receives the members to keep (borrowed for the call). */
typedef void (*mesh_connections_save_fn)(void *arg, const mesh_store_member *members, size_t n);

int mesh_connections_new(mesh_node *node, mesh_connections **out);
void mesh_connections_free(mesh_connections *c);

/* A --join address (dialled for the node's whole life). */
int mesh_connections_seed(mesh_connections *c, const char *addr);
/* A member's record changed: its state and its addresses (NUL-terminated,
 * back to back, as mesh_swim_member_info has them). */
void mesh_connections_member(mesh_connections *c, const mesh_peer_id *peer,
                             mesh_cm_member_state st, const char *addrs, size_t n_addrs);
/* A send to peer found no connection; addrs (may be empty) are the ones
 * the send carried. A member with an entry is dialled from its own record;
 * for anyone else the addresses were only mentioned by a peer, and get one
 * rate-limited attempt. */
void mesh_connections_no_route(mesh_connections *c, const mesh_peer_id *peer,
                               const char *const *addrs, size_t n);
/* A transport peer event. */
void mesh_connections_peer(mesh_connections *c, const mesh_peer_id *peer, bool up);

/* The members kept before this start (from the store). */
void mesh_connections_remember(mesh_connections *c, const mesh_store_member *members, size_t n);
/* Where to keep the members; saves happen a few seconds after a change,
 * and at once on mesh_connections_save_now. */
void mesh_connections_on_save(mesh_connections *c, mesh_connections_save_fn fn, void *arg);
void mesh_connections_save_now(mesh_connections *c);

const mesh_connmgr *mesh_connections_core(const mesh_connections *c);

#endif
