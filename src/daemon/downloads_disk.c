/*
 * The download part's DELETE and VERIFY actions, run on the disk strand in
 * slices. disk_work runs on a pool worker and touches only its job, the
 * job's scan and the thread-safe disk executor; every other function here
 * runs on the loop thread, including disk_done, which submits the next
 * slice or tells the core the result.
 */
#include "src/daemon/downloads_internal.h"

#include "src/base/err.h"
#include "src/base/log.h"
#include "src/base/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* On a worker: one slice of a delete or of an inspection. Touches only the
 * job, its scan and the shared, thread-safe disk executor. A finished scan
 * is closed here, so its directories are closed off the loop too. */
static void disk_work(mesh_work *w)
{
  disk_job *j = (disk_job *)w;
  if (j->kind == MESH_COORD_ACT_DELETE) {
    j->rc = mesh_diskexec_delete(j->disk, j->model_dir);
    return;
  }
  if (j->scan == NULL) {
    j->rc = mesh_diskexec_scan_new(j->disk, j->model_dir, &j->scan);
    if (j->rc != 0)
      return;
  }
  j->rc = mesh_diskexec_scan_step(j->scan);
  mesh_diskexec_scan_result(j->scan, &j->present, &j->bytes, &j->partials);
  if (j->rc != -EAGAIN) {
    mesh_diskexec_scan_free(j->scan);
    j->scan = NULL;
  }
  /* A completed entry of the store whose directory an earlier version made
   * (without a marker) becomes this node's now, so it can be deleted. A
   * marker already there is left as it is. */
  if (j->rc == 0 && j->present && j->adopt &&
      mesh_diskexec_adopt(j->disk, j->model_dir, j->mark) == 0)
    j->adopted = true;
}

static void disk_done(mesh_work *w);

static void disk_submit(mesh_downloads *d, disk_job *j)
{
  mesh_pool_submit(d->pool, &j->work, d->disk_strand, disk_work, disk_done);
}

void dl_disk_forget(mesh_downloads *d, disk_job *j)
{
  for (disk_job **pp = &d->jobs; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == j) {
      *pp = j->next;
      break;
    }
  }
  mesh_diskexec_scan_free(j->scan); /* only a scan left unfinished */
  free(j);
}

/* Starts the next waiting inspection, if none runs. One at a time: a scan
 * keeps its directories open between slices, so scans of many models (after
 * a restart, every completed one is verified) must not all be open at once.
 * Those overtaken by a delete meanwhile are dropped unrun. */
static void verify_next(mesh_downloads *d)
{
  while (d->verify_running == NULL && d->verify_waiting != NULL) {
    disk_job *j = d->verify_waiting;
    d->verify_waiting = j->wait_next;
    j->wait_next = NULL;
    if (j->stale) {
      d->counters.verify_dropped++;
      dl_disk_forget(d, j);
      continue;
    }
    d->verify_running = j;
    disk_submit(d, j);
  }
}

/* On the loop: a slice is back. One that ran out of its share goes on with
 * the next slice, at the back of the strand (other models' work runs in
 * between); the final result goes to the core with this turn's now. */
static void disk_done(mesh_work *w)
{
  disk_job *j = (disk_job *)w;
  mesh_downloads *d = j->d;
  d->counters.disk_slices++;
  j->slices++;
  if (d->stopping) {
    /* Shutting down: the entry stays as stored (deleting, or completed to
     * be verified) and the next start carries it on. */
    if (d->verify_running == j)
      d->verify_running = NULL;
    dl_disk_forget(d, j);
    return;
  }
  if (j->rc == -EAGAIN && !(j->kind == MESH_COORD_ACT_VERIFY && j->stale)) {
    disk_submit(d, j);
    return;
  }
  mesh_time_ms now = mesh_loop_now(d->loop);
  if (j->kind == MESH_COORD_ACT_DELETE) {
    if (j->rc != 0)
      MESH_LOG_RL(MESH_LOG_WARN, "downloads", "delete of %s failed: %s", j->model_dir,
                  mesh_strerror(j->rc));
    else if (j->slices > 1)
      LOG_DEBUG("downloads", "deleted %s in %u slices", j->model_dir, j->slices);
    mesh_coord_delete_result(d->coord, j->model_id, j->revision, j->rc, now);
  } else {
    d->verify_running = NULL;
    if (j->stale) {
      d->counters.verify_dropped++;
    } else {
      bool present = j->present && j->rc == 0;
      if (j->adopted)
        d->counters.dirs_adopted++;
      mesh_coord_verified(d->coord, j->model_id, j->revision, present && j->partials == 0, j->bytes,
                          now);
    }
    verify_next(d);
  }
  dl_disk_forget(d, j);
  dl_drain(d);
}

/* Hands a DELETE or VERIFY to the pool. At most one action per own entry is
 * in flight (the core's rule), so jobs are bounded by the entries. */
void dl_disk_start(mesh_downloads *d, const mesh_coord_action *act)
{
  disk_job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    /* No memory for the job: the core hears a failure and retries later. */
    mesh_time_ms now = mesh_loop_now(d->loop);
    if (act->kind == MESH_COORD_ACT_DELETE)
      mesh_coord_delete_result(d->coord, act->model_id, act->revision, -ENOMEM, now);
    else
      mesh_coord_verified(d->coord, act->model_id, act->revision, false, 0, now);
    return;
  }
  j->d = d;
  j->disk = d->disk;
  j->kind = act->kind;
  snprintf(j->model_id, sizeof j->model_id, "%s", act->model_id);
  snprintf(j->revision, sizeof j->revision, "%s", act->revision);
  snprintf(j->model_dir, sizeof j->model_dir, "%s", act->model_dir);
  j->adopt = act->kind == MESH_COORD_ACT_VERIFY && act->adopt &&
             dl_marker_text(d, act->model_id, act->revision, j->mark, sizeof j->mark) == 0;
  if (act->kind == MESH_COORD_ACT_DELETE) {
    /* An inspection of the same entry still waiting or running must not
     * report after the delete began: the entry is no longer what it saw. */
    for (disk_job *o = d->jobs; o != NULL; o = o->next)
      if (o->kind == MESH_COORD_ACT_VERIFY && strcmp(o->model_id, j->model_id) == 0 &&
          strcmp(o->revision, j->revision) == 0)
        o->stale = true;
  }
  j->next = d->jobs;
  d->jobs = j;
  if (act->kind == MESH_COORD_ACT_DELETE) {
    disk_submit(d, j);
    return;
  }
  disk_job **tail = &d->verify_waiting;
  while (*tail != NULL)
    tail = &(*tail)->wait_next;
  *tail = j;
  verify_next(d);
}
