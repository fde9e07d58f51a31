/*
 * The node: the object that owns one running meshd peer.
 *
 * A node owns its event loop, its identity (key and peer ID), its current
 * epoch, the swarm key, the peer network (net/transport.h) and the lock of
 * its home (src/identity/homelock.h: one daemon per home). Starting a node
 * takes the home's lock (a second meshd on the home is refused), loads (or
 * creates) the identity, loads the swarm key (a node without one refuses to
 * start), advances the epoch durably before any network activity, then
 * listens. Joining (dialling seeds) is membership's business. The epoch
 * changes again only by a renewal in place (mesh_node_set_epoch).
 *
 * The parts built on top of the network plug in here, never into the
 * transport directly:
 *   mesh_node_on_message   one handler per channel (MESH_CH_SWIM, MESH_CH_COORD)
 *   mesh_node_on_peer      peer connected / disconnected events
 *   mesh_node_loop / mesh_node_net  timers, fd watches, sending
 * Everything runs on the loop's thread; nothing here blocks except
 * mesh_node_run_loop.
 */
#ifndef MESH_DAEMON_NODE_H
#define MESH_DAEMON_NODE_H

#include "net/transport.h"
#include "src/base/pool.h"
#include "src/daemon/loop.h"
#include "src/identity/identity.h"
#include "src/identity/psk.h"

#include <stddef.h>
#include <stdint.h>

struct mesh_config;
typedef struct mesh_node mesh_node;

struct mesh_rdma_config;

/*
 * Where a test may change what the node does (src/daemon/test_faults.h
 * fills these). Production passes NULL: the node then calls the identity.
 * Every hook runs on the loop thread and gets arg.
 */
typedef struct mesh_node_hooks {
  void *arg;
  /* Before RDMA attaches: may change its configuration. */
  void (*rdma_config)(void *arg, struct mesh_rdma_config *c);
  /* Once the transports are registered, before listening: may wrap the net
   * (mesh_net_wrap). 0, or a negative errno with err set, which stops the
   * start. */
  int (*net_ready)(void *arg, mesh_net *net, mesh_loop *loop, size_t frame_max, char *err,
                   size_t errlen);
  /* On SIGHUP, with the node's home. */
  void (*reload)(void *arg, const char *home);
} mesh_node_hooks;

/* Loads identity and swarm key, advances the epoch, and opens the network
 * (listening); the caller wires the parts built on it, then runs the loop.
 * cfg and hooks (NULL in production) must outlive the node. err receives a
 * one-line reason on failure. */
int mesh_node_new(const struct mesh_config *cfg, const mesh_node_hooks *hooks, mesh_node **out,
                  char *err, size_t errlen);
/* Runs the loop until a stop signal or mesh_node_stop. */
int mesh_node_run_loop(mesh_node *n);
/* Asks the loop to stop after this turn (a graceful stop). */
void mesh_node_stop(mesh_node *n);
/* Closes every connection and frees everything the node owns. */
void mesh_node_free(mesh_node *n);

/* A message arrived on a channel: from, the sender's epoch, the class, and
 * the bytes (borrowed for the duration of the call). */
typedef void (*mesh_node_message_fn)(void *arg, const mesh_peer_id *from, uint64_t epoch,
                                     mesh_class cls, const uint8_t *buf, size_t len);
/* Sets the handler of a channel (replacing any earlier one). -EINVAL for an
 * unknown channel. */
int mesh_node_on_message(mesh_node *n, mesh_channel ch, mesh_node_message_fn fn, void *arg);

/* Peer connected (ev->up) or disconnected; see net/transport.h. */
typedef void (*mesh_node_peer_fn)(void *arg, const mesh_net_peer_event *ev);
void mesh_node_on_peer(mesh_node *n, mesh_node_peer_fn fn, void *arg);

/* Stop callback for SIGINT/SIGTERM, in place of stopping the loop at once
 * (the daemon leaves the mesh gracefully first). */
void mesh_node_on_stop(mesh_node *n, mesh_loop_fn fn, void *arg);

mesh_loop *mesh_node_loop(mesh_node *n);
/* The work pool (src/base/pool.h): everything that can take long (file IO,
 * fsync, hashing, directory walks, store transactions) runs there, never on
 * the loop. Owned by the node; freed after the parts built on it. */
mesh_pool *mesh_node_pool(mesh_node *n);
mesh_net *mesh_node_net(mesh_node *n);
const mesh_identity *mesh_node_identity(const mesh_node *n);
uint64_t mesh_node_epoch(const mesh_node *n);
/* The node renewed its epoch in place: epoch (higher, and already durable)
 * becomes the node's, and the network's for handshakes from now on
 * (mesh_net_set_epoch: connections stay up). -ESTALE when not higher. */
int mesh_node_set_epoch(mesh_node *n, uint64_t epoch);

#endif
