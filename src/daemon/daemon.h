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
 * epoch, the daemon stops and asks its caller to start again, which gives it
 * a new epoch.
 */
#ifndef MESH_DAEMON_DAEMON_H
#define MESH_DAEMON_DAEMON_H

#include <stdbool.h>

struct mesh_config;

/*
 * Runs until stopped. Returns 0 after a clean stop or a negative errno when
 * the daemon could not start (logged). *restart is set when the caller
 * should start the daemon again (a new epoch is needed).
 */
int mesh_daemon_run(const struct mesh_config *cfg, bool *restart);

#endif
