/*
 * The transfer of a file job fetched in order: its Hub request (libcurl's
 * callbacks, on the loop) or a peer source, feeding the write buffers.
 */
#include "coord/hf_internal.h"
#include "src/base/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Starts the file over: the next buffer truncates the file and resets the
 * hash on the strand, in order after every write already submitted. */
static void job_start_over(hf_job *j)
{
  j->dl->done_bytes -= j->have;
  j->have = 0;
  j->ws.restart_next = true;
}

bool hf_job_on_headers(hf_xfer *x)
{
  hf_job *j = x->owner;
  j->writing = mesh_hf_status_classify(x->status) == MESH_HF_STATUS_OK;
  if (!j->writing)
    return true;
  if (x->status == 200 && j->have > 0) {
    /* The server ignored the range: start the file over. */
    job_start_over(j);
    j->dl->c->counters.restarts++;
    return true;
  }
  if (!hf_range_answers(x, j->have, j->f->size)) {
    j->range_mismatch = true;
    return false;
  }
  return true;
}

bool hf_range_answers(const hf_xfer *x, uint64_t from, uint64_t size)
{
  if (x->status != 206)
    return true;
  unsigned long long a = 0, b = 0, t = 0;
  return sscanf(x->content_range, "bytes %llu-%llu/%llu", &a, &b, &t) == 3 && a == from &&
         t == size;
}

/* Takes n bytes (which fit: hf_wset_room) into the write buffers. False
 * when a buffer cannot be had. */
static bool job_accept(hf_job *j, const char *p, size_t n)
{
  if (!hf_wset_fill(j, &j->ws, j->have, p, n))
    return false;
  hf_job_took(j, n);
  return true;
}

void hf_job_took(hf_job *j, size_t n)
{
  mesh_hf_client *c = j->dl->c;
  j->have += n;
  j->dl->done_bytes += n;
  j->dl->net_bytes += n;
  if (n > 0) {
    j->dl->last_byte_ms = mesh_clock_now_ms();
    if (j->dl->first_byte_ms == 0)
      j->dl->first_byte_ms = j->dl->last_byte_ms;
  }
  c->counters.buffered_bytes += n;
  if (c->counters.buffered_bytes > c->counters.buffered_peak)
    c->counters.buffered_peak = c->counters.buffered_bytes;
}

/* libcurl's write callback, on the loop: copies the chunk into the write
 * buffers (whole or not at all) and submits every full one. */
size_t hf_job_on_body(hf_xfer *x, const char *p, size_t n)
{
  hf_job *j = x->owner;
  mesh_hf_client *c = j->dl->c;
  if (!j->writing)
    return n;
  if (j->io_err != 0)
    return 0;
  if (n > j->f->size - j->have) {
    j->overflow = true;
    return 0;
  }
  if (n > hf_wset_room(j, &j->ws)) {
    if (j->in_flight == 0) {
      /* Nothing will free a buffer: a chunk larger than all of them. */
      j->too_big = true;
      return 0;
    }
    j->paused = true;
    c->counters.write_pauses++;
    return CURL_WRITEFUNC_PAUSE;
  }
  if (!job_accept(j, p, n)) {
    j->io_err = ENOMEM;
    return 0;
  }
  j->dl->hub_bytes += n;
  c->counters.bytes_received += n;
  return n;
}

/* Remembers label among the peers this file and its download hold bytes of. */
static void job_note_source(hf_job *j, const char *label)
{
  hf_dl *dl = j->dl;
  bool known = false;
  for (int i = 0; i < j->n_used && !known; i++)
    known = strcmp(j->used[i], label) == 0;
  if (!known) {
    if (j->n_used == HF_USED_MAX) {
      memmove(j->used[0], j->used[1], sizeof j->used[0] * (HF_USED_MAX - 1));
      j->n_used--;
    }
    snprintf(j->used[j->n_used++], sizeof j->used[0], "%s", label);
  }
  for (int i = 0; i < dl->n_sources; i++)
    if (strcmp(dl->sources[i], label) == 0)
      return;
  if (dl->n_sources < HF_DL_SOURCES_MAX)
    snprintf(dl->sources[dl->n_sources++], sizeof dl->sources[0], "%s", label);
}

void hf_job_note_source(hf_job *j, const char *label)
{
  job_note_source(j, label);
}

int mesh_hf_source_data(mesh_hf_client *c, void *job, uint64_t off, const uint8_t *p, size_t n)
{
  if (*(const hf_sink *)job == HF_SINK_LANE) {
    hf_lane *l = job;
    return l->j->dl->c == c ? hf_ranged_source_data(l, off, p, n) : -ESTALE;
  }
  hf_job *j = job;
  if (j->dl->c != c || j->src == NULL || j->state != JOB_XFER || j->io_err != 0)
    return -ESTALE;
  if (off != j->have || n > j->f->size - j->have)
    return -EBADMSG;
  if (n > hf_wset_room(j, &j->ws)) {
    if (j->in_flight == 0)
      return -EBADMSG; /* larger than every buffer together: never fits */
    j->paused = true;
    c->counters.write_pauses++;
    return -EAGAIN;
  }
  if (!job_accept(j, (const char *)p, n)) {
    j->io_err = ENOMEM;
    return -ESTALE;
  }
  job_note_source(j, j->src_label);
  j->dl->peer_bytes += n;
  c->counters.peer_bytes += n;
  return 0;
}

void mesh_hf_source_end(mesh_hf_client *c, void *job, int err, const char *why)
{
  if (*(const hf_sink *)job == HF_SINK_LANE) {
    hf_lane *l = job;
    if (l->j->dl->c == c)
      hf_ranged_source_end(l, err, why);
    return;
  }
  hf_job *j = job;
  hf_dl *dl = j->dl;
  if (dl->c != c || j->src == NULL || j->state != JOB_XFER)
    return;
  j->src = NULL;
  j->paused = false;
  hf_job_flush(j);
  if (j->io_err != 0) {
    int e = j->io_err;
    c->counters.io_errors++;
    hf_dl_fail(dl, -e, "%s: writing %s: %s (partial file kept)", j->f->path, j->partial,
               strerror(e));
    return;
  }
  if (err == 0 && j->have == j->f->size) {
    hf_job_verify(j);
    return;
  }
  /* The file goes on from where it is, from another source or the Hub. */
  c->counters.peer_failovers++;
  MESH_LOG_RL(MESH_LOG_INFO, "hf",
              "%s@%s: %s: peer %s stopped at byte %" PRIu64 " of %" PRIu64 " (%s): going on "
              "from there elsewhere",
              dl->repo, dl->revision, j->f->path, j->src_label, j->have, j->f->size,
              why != NULL && why[0] != '\0' ? why : strerror(err < 0 ? -err : EIO));
  hf_job_request(j);
}

bool hf_job_transfer_broke(hf_job *j)
{
  hf_dl *dl = j->dl;
  if (j->io_err != 0) {
    int e = j->io_err;
    dl->c->counters.io_errors++;
    hf_dl_fail(dl, -e, "%s: writing %s: %s (partial file kept)", j->f->path, j->partial,
               strerror(e));
    return true;
  }
  if (j->too_big) {
    hf_dl_fail(dl, -ENOBUFS, "%s: a received chunk is larger than the write buffers", j->f->path);
    return true;
  }
  if (j->overflow) {
    hf_dl_fail(dl, -EBADMSG, "%s: the server sent more than the listed %" PRIu64 " bytes",
               j->f->path, j->f->size);
    return true;
  }
  return false;
}

void hf_job_on_done(hf_xfer *x, CURLcode rc)
{
  hf_job *j = x->owner;
  hf_dl *dl = j->dl;
  char why[HF_MSG_MAX];
  /* What this try brought goes to the disk, before a retry or the verify. */
  hf_job_flush(j);
  j->paused = false;
  if (hf_job_transfer_broke(j))
    return;
  if (j->range_mismatch) {
    j->range_mismatch = false;
    job_start_over(j);
    hf_job_retry(j, "Content-Range does not match the range asked for");
    return;
  }
  int err = 0;
  switch (hf_judge(dl, x, rc, j->f->path, j->f->path, &j->redirects, j->url, sizeof j->url, &err,
                   why, sizeof why)) {
  case HF_NEXT_RETRY:
    hf_job_retry(j, why);
    return;
  case HF_NEXT_FOLLOW:
    hf_job_request(j);
    return;
  case HF_NEXT_FAIL:
    hf_dl_fail(dl, err, "%s", why);
    return;
  case HF_NEXT_OK:
    break;
  }
  if (j->have < j->f->size) {
    snprintf(why, sizeof why, "transfer ended after %" PRIu64 " of %" PRIu64 " bytes", j->have,
             j->f->size);
    hf_job_retry(j, why);
    return;
  }
  hf_job_verify(j);
}

/* Asks the peer sources for the rest of the file: true when one took it
 * (or all are busy and the job asks again shortly), false for the Hub. */
static bool job_try_sources(hf_job *j)
{
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  if (c->src_ops == NULL || j->have >= j->f->size)
    return false;
  mesh_hf_source_req req = {.dl_id = dl->id,
                            .user = dl->user,
                            .repo = dl->repo,
                            .revision = dl->revision,
                            .path = j->f->path,
                            .from = j->have,
                            .size = j->f->size};
  void *x = NULL;
  j->writing = j->overflow = j->range_mismatch = j->too_big = j->paused = false;
  int rc = c->src_ops->start(c->src_ctx, &req, j, &x, j->src_label, sizeof j->src_label);
  if (rc == -EBUSY) {
    hf_job_set_state(j, JOB_RETRY);
    hf_arm(j->ev, HF_SOURCE_BUSY_MS);
    return true;
  }
  if (rc != 0)
    return false;
  j->src = x;
  c->counters.peer_transfers++;
  hf_job_set_state(j, JOB_XFER);
  j->have_at_request = j->have;
  return true;
}

void hf_job_request(hf_job *j)
{
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  if (job_try_sources(j))
    return;
  if (j->state != JOB_XFER)
    j->redirects = 0;
  j->writing = j->overflow = j->range_mismatch = j->too_big = j->paused = false;
  hf_job_set_state(j, JOB_XFER);
  j->have_at_request = j->have;
  /* After a restart the range starts at 0 even while the restarting buffer
   * has not been written: the file is started over in order on the strand. */
  hf_xfer_params p = hf_params_for(c, j->url, j->have);
  c->counters.requests++;
  int rc = hf_xfer_start(&c->multi, &j->x, j->url, &p);
  if (rc != 0)
    hf_dl_fail(dl, rc, "%s: cannot start request: %s", j->f->path, strerror(-rc));
}
