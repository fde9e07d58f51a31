/*
 * The download part of the daemon: the coordinator core (coord/coord.h)
 * with the IO it asks for.
 *
 * It owns the store (coord/store.h, $MESH_HOME/mesh.db), the disk executor
 * (coord/diskexec.h, the models directory) and the Hugging Face client
 * (coord/hf_client.h), and carries out the core's outbox after every input:
 * actions go to the executors and their results straight back into the core,
 * documents and commands go to peers on MESH_CH_COORD, the application digest
 * goes to membership, and store items of one drain are written as one
 * transaction. A single timer is armed for the core's next deadline, so an
 * idle node does no work at all (rule 6).
 *
 * A size check (CHECK_SPACE) is answered by starting the download: the
 * client lists the files and reports the total before fetching any byte; the
 * core then either accepts (the transfer goes on) or fails the entry (the
 * transfer is cancelled before its first byte).
 *
 * Runs on the loop thread. Store writes are synchronous and small.
 */
#ifndef MESH_DAEMON_DOWNLOADS_H
#define MESH_DAEMON_DOWNLOADS_H

#include "coord/coord.h"
#include "coord/hf_client.h"
#include "coord/store.h"
#include "src/daemon/membership.h"
#include "src/daemon/node.h"

#include <stddef.h>
#include <stdint.h>

struct mesh_config;
typedef struct mesh_downloads mesh_downloads;

/*
 * Opens the store and the models directory, restores this node's entries of
 * earlier epochs into a new coordinator, and subscribes to membership's view
 * events and application state and to MESH_CH_COORD.
 */
int mesh_downloads_new(mesh_node *node, mesh_membership *mem, const struct mesh_config *cfg,
                       mesh_downloads **out, char *err, size_t errlen);
void mesh_downloads_free(mesh_downloads *d);

/* A command from the control API. node_text is the target's peer ID text
 * (NULL or this node's ID: this node). Returns 0 or a negative errno with
 * msg set (see mesh_coord_command). *seq (may be NULL) receives the number
 * the target's answer will carry when the command was sent to another node,
 * else 0. */
int mesh_downloads_command(mesh_downloads *d, mesh_coord_cmd_kind kind, const char *node_text,
                           const char *model, const char *revision, uint64_t *seq, char *msg,
                           size_t msglen);

/* The answer of another node to a command this node sent it. */
typedef void (*mesh_downloads_result_fn)(void *arg, uint64_t seq, int code, const char *message);
void mesh_downloads_on_result(mesh_downloads *d, mesh_downloads_result_fn fn, void *arg);
/* Runs a collection pass now; *collected receives the entries freed. */
int mesh_downloads_gc(mesh_downloads *d, uint64_t *collected);

/* This node renewed its epoch in place (epoch already durable): its own
 * entries move to the new epoch and are published at once; running
 * transfers are not touched (mesh_coord_set_epoch). */
int mesh_downloads_renew(mesh_downloads *d, uint64_t epoch);

const mesh_coord *mesh_downloads_core(const mesh_downloads *d);
mesh_store *mesh_downloads_store(mesh_downloads *d);
void mesh_downloads_hf_counters(const mesh_downloads *d, mesh_hf_counters *out);

typedef struct mesh_downloads_counters {
  uint64_t store_failures; /* batches the store refused (logged) */
  uint64_t sends_failed;   /* documents or commands that found no connection */
  uint64_t held_sent;      /* of those, sent once the peer's connection came up */
  uint64_t results;        /* answers to commands sent to other nodes */
} mesh_downloads_counters;
const mesh_downloads_counters *mesh_downloads_counters_get(const mesh_downloads *d);

#endif
