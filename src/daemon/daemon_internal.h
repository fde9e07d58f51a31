/* Shared between the daemon's assembly (daemon.c), its API backend
 * (backend.c) and its metrics (metrics.c). */
#ifndef MESH_DAEMON_DAEMON_INTERNAL_H
#define MESH_DAEMON_DAEMON_INTERNAL_H

#include "src/daemon/api.h"
#include "src/daemon/daemon.h"
#include "src/daemon/downloads.h"
#include "src/daemon/membership.h"
#include "src/daemon/node.h"
#include "src/daemon/test_faults.h"
#include "src/base/platform.h"

#include <limits.h>

/* A renewal in place (src/daemon/renew.c). The fields marked "worker" are
 * handed to the pool with the item and read back in its done function. */
typedef struct mesh_daemon_renewal {
  mesh_work work;       /* the pool's while busy */
  bool busy;            /* submitted, done not run yet */
  char home[PATH_MAX];  /* worker: the home whose epoch advances (a copy) */
  uint64_t epoch;       /* worker: the new epoch, when rc is 0 */
  int rc;               /* worker: 0 or the negative errno of the advance */
  char err[512];        /* worker: why the advance failed */
  uint64_t started_us;  /* when submitted (monotonic) */
  uint64_t done_us;     /* worker: when the advance finished */
  uint64_t dead_epoch;  /* the epoch the dead claim ended */
  mesh_peer_id accuser; /* who made the claim */
} mesh_daemon_renewal;

typedef struct mesh_daemon {
  const struct mesh_config *cfg; /* borrowed */
  mesh_node *node;
  mesh_membership *mem;
  mesh_downloads *dl;
  mesh_api *api;
  mesh_test_faults *faults;               /* test-only switches; NULL in production */
  mesh_time_ms started_at;                /* loop time at start */
  char self_text[MESH_PEER_ID_TEXT_MAX];  /* this node's peer ID text */
  bool stopping;                          /* a stop was asked for once */
  bool shutting_down;                     /* the loop ended: parts are being freed */
  mesh_daemon_renewal renewal;            /* the renewal in place, when one runs */
  mesh_nofile nofile;                     /* the limit on open files (limits.c) */
  int exit_rc;                            /* why the daemon stopped itself, or 0 */
  char exit_err[768];                     /* ... in words */
  struct {
    uint64_t seq;    /* the command's number at the target; 0: free */
    uint64_t ticket; /* the API request waiting for its answer */
  } waiting[MESH_API_MAX_PENDING];        /* API requests waiting for other nodes */
} mesh_daemon;

/* Open files the configuration needs: peer connections, API connections,
 * downloads in flight and a fixed margin (limits.c). */
uint64_t mesh_daemon_files_needed(const struct mesh_config *cfg);
/* Raises the soft limit on open files (platform.h) and logs it; one
 * warning naming the numbers when the hard limit is below what cfg needs.
 * Never fails: *out is zero when the limit could not be read. */
void mesh_daemon_raise_file_limit(const struct mesh_config *cfg, mesh_nofile *out);

/* An answer of another node arrived: completes the API request waiting. */
void mesh_daemon_command_result(void *arg, uint64_t seq, int code, const char *message);

extern const mesh_api_backend_ops mesh_daemon_backend;

/* Starts a graceful leave that stops the loop when done. -EALREADY when one
 * is under way. */
int mesh_daemon_leave(mesh_daemon *d);
/* Membership reported that this node was declared dead in epoch by accuser:
 * starts the renewal in place (src/daemon/renew.c). */
void mesh_daemon_epoch_over(void *arg, const mesh_peer_id *accuser, uint64_t epoch);
/* Adds every metric of the node (the backend's metrics op). */
void mesh_daemon_metrics(void *ctx, mesh_api_metrics *m);

#endif
