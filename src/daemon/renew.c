/*
 * Renewal in place: what the daemon does when membership reports that this
 * node was declared dead in its own epoch.
 *
 * A dead claim ends the epoch for good: every peer holds a tombstone for
 * (this node, that epoch) and refuses its records. The node takes epoch + 1
 * and goes on in the same process; its control API, connections, executors
 * and downloads keep running throughout. The steps:
 *
 *   1. (loop) epoch_over arrives from membership, naming the accuser: one
 *      log line, and a work item goes to the pool. Meanwhile the membership
 *      core is silent in the dead epoch (it stops probing and accusing) and
 *      the node says nothing in any new one.
 *   2. (worker) mesh_epoch_advance makes epoch + 1 durable: temp file,
 *      fsync, rename, fsync of the directory. The fsyncs may take long
 *      (F_FULLFSYNC on macOS), which is why this is not on the loop. The
 *      work function touches only its item (the home's path, the results).
 *   3. (loop, done) only now, in this order: the node and its network take
 *      the epoch (handshakes from now on carry it; connections stay up,
 *      net/transport.h says why); membership announces this node alive at
 *      the new epoch (mesh_swim_set_epoch, the same call the simulator
 *      makes); the coordinator moves its own entries to the new epoch and
 *      publishes them, leaving running transfers alone.
 *
 * If the new epoch cannot be made durable, the node stops with an error and
 * a non-zero exit: a node that cannot persist its epoch must not continue,
 * since a later start could hand out an epoch that was already used.
 *
 * At shutdown the daemon flushes the pool before freeing the parts; a
 * renewal completing then, or while a graceful leave is under way, leaves
 * the new epoch on disk (the next start takes a higher one) and announces
 * nothing.
 */
#include "src/daemon/daemon_internal.h"

#include "src/base/config.h"
#include "src/base/err.h"
#include "src/base/log.h"
#include "src/identity/epoch.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Worker thread: only the item is touched. */
static void renew_work(mesh_work *w)
{
  mesh_daemon_renewal *r = (mesh_daemon_renewal *)((char *)w - offsetof(mesh_daemon_renewal, work));
  r->err[0] = '\0';
  r->rc = mesh_epoch_advance(r->home, &r->epoch, r->err, sizeof r->err);
  r->done_us = mesh_clock_now_us();
}

/* Loop thread, once the new epoch is durable (or could not be made so). */
static void renew_done(mesh_work *w)
{
  mesh_daemon_renewal *r = (mesh_daemon_renewal *)((char *)w - offsetof(mesh_daemon_renewal, work));
  mesh_daemon *d = (mesh_daemon *)((char *)r - offsetof(mesh_daemon, renewal));
  r->busy = false;
  if (r->rc != 0) {
    LOG_ERROR("daemon",
              "cannot persist a new epoch after being declared dead: %s; a node that cannot "
              "persist its epoch must not continue: stopping",
              r->err[0] != '\0' ? r->err : mesh_strerror(r->rc));
    if (d->exit_rc == 0) {
      d->exit_rc = r->rc;
      snprintf(d->exit_err, sizeof d->exit_err,
               "declared dead in epoch %llu and cannot persist a new epoch: %s",
               (unsigned long long)r->dead_epoch,
               r->err[0] != '\0' ? r->err : mesh_strerror(r->rc));
    }
    mesh_node_stop(d->node);
    return;
  }
  if (d->shutting_down || mesh_membership_leaving(d->mem)) {
    /* A node on its way out announces nothing: its left record (or its
     * silence) ends the old epoch, and the next start takes a higher one. */
    LOG_INFO("daemon", "epoch %llu is durable; leaving, so it is not announced",
             (unsigned long long)r->epoch);
    return;
  }
  uint64_t old = mesh_node_epoch(d->node);
  int rc = mesh_node_set_epoch(d->node, r->epoch);
  if (rc == 0)
    rc = mesh_membership_renew(d->mem, r->epoch);
  if (rc == 0)
    rc = mesh_downloads_renew(d->dl, r->epoch);
  if (rc != 0) {
    /* Only an epoch that does not grow gets here: the file went backward
     * under us, which the home lock rules out. Do not go on guessing. */
    LOG_ERROR("daemon", "renewing to epoch %llu failed: %s: stopping", (unsigned long long)r->epoch,
              mesh_strerror(rc));
    if (d->exit_rc == 0) {
      d->exit_rc = rc;
      snprintf(d->exit_err, sizeof d->exit_err, "renewing epoch %llu to %llu failed: %s",
               (unsigned long long)old, (unsigned long long)r->epoch, mesh_strerror(rc));
    }
    mesh_node_stop(d->node);
    return;
  }
  LOG_INFO("daemon",
           "renewed in place: epoch %llu -> %llu (durable in %.1f ms); API, "
           "connections, downloads and executors kept running",
           (unsigned long long)old, (unsigned long long)r->epoch,
           (double)(r->done_us - r->started_us) / 1000.0);
}

void mesh_daemon_epoch_over(void *arg, const mesh_peer_id *accuser, uint64_t epoch)
{
  mesh_daemon *d = arg;
  mesh_daemon_renewal *r = &d->renewal;
  char who[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(accuser, who, sizeof who);
  if (r->busy || d->shutting_down) {
    LOG_INFO("daemon", "declared dead in epoch %llu by %s again: a renewal is under way",
             (unsigned long long)epoch, who);
    return;
  }
  LOG_WARN("daemon",
           "declared dead in epoch %llu by %s: renewing the epoch in place (the process, API, "
           "connections and downloads stay)",
           (unsigned long long)epoch, who);
  r->dead_epoch = epoch;
  r->accuser = *accuser;
  int w = snprintf(r->home, sizeof r->home, "%s", d->cfg->home);
  if (w < 0 || (size_t)w >= sizeof r->home) {
    /* mesh_node_new already opened this home by this name: cannot happen. */
    r->rc = -ENAMETOOLONG;
    r->err[0] = '\0';
    renew_done(&r->work);
    return;
  }
  r->busy = true;
  r->started_us = mesh_clock_now_us();
  mesh_pool_submit(mesh_node_pool(d->node), &r->work, NULL, renew_work, renew_done);
}
