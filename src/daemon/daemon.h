/*
 * The running daemon: a node (src/daemon/node.h) with its parts wired in:
 * membership (src/daemon/membership.h), downloads (src/daemon/downloads.h)
 * and the control API (src/daemon/api.h).
 *
 * Order at start: the node loads the identity and swarm key and advances the
 * epoch durably; then the download part restores this node's entries from
 * the store; the API starts listening; membership joins last, so that the
 * first view event finds every subscriber in place.
 *
 * SIGINT/SIGTERM and POST /leave leave gracefully (a signed left record is
 * spread, bounded by a deadline) and then stop; a second signal stops at
 * once. When membership reports that this node was declared dead in its own
 * epoch, the daemon renews its epoch in place (src/daemon/renew.c): the new
 * epoch is made durable on the work pool, then announced; the process, the
 * API, connections, executors and downloads keep running. It never restarts
 * for that. If the new epoch cannot be made durable, it stops with an error.
 */
#ifndef MESH_DAEMON_DAEMON_H
#define MESH_DAEMON_DAEMON_H

#include <stddef.h>

struct mesh_config;

/*
 * Runs until stopped. Returns 0 after a clean stop, or a negative errno when
 * the daemon could not start or had to stop itself (a new epoch it could not
 * persist), with a one-line reason in err (errlen bytes; also logged).
 */
int mesh_daemon_run(const struct mesh_config *cfg, char *err, size_t errlen);

#endif
