/* Shared between the daemon's assembly (daemon.c), its API backend
 * (backend.c) and its metrics (metrics.c). */
#ifndef MESH_DAEMON_DAEMON_INTERNAL_H
#define MESH_DAEMON_DAEMON_INTERNAL_H

#include "src/daemon/api.h"
#include "src/daemon/daemon.h"
#include "src/daemon/downloads.h"
#include "src/daemon/membership.h"
#include "src/daemon/node.h"

typedef struct mesh_daemon {
  const struct mesh_config *cfg; /* borrowed */
  mesh_node *node;
  mesh_membership *mem;
  mesh_downloads *dl;
  mesh_api *api;
  mesh_time_ms started_at;                /* loop time at start */
  char self_text[MESH_PEER_ID_TEXT_MAX];  /* this node's peer ID text */
  bool stopping;                          /* a stop was asked for once */
  struct {
    uint64_t seq;    /* the command's number at the target; 0: free */
    uint64_t ticket; /* the API request waiting for its answer */
  } waiting[MESH_API_MAX_PENDING];        /* API requests waiting for other nodes */
} mesh_daemon;

/* An answer of another node arrived: completes the API request waiting. */
void mesh_daemon_command_result(void *arg, uint64_t seq, int code, const char *message);

extern const mesh_api_backend_ops mesh_daemon_backend;

/* Starts a graceful leave that stops the loop when done. -EALREADY when one
 * is under way. */
int mesh_daemon_leave(mesh_daemon *d);
/* Adds every metric of the node (the backend's metrics op). */
void mesh_daemon_metrics(void *ctx, mesh_api_metrics *m);

#endif
