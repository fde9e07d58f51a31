/*
 * File jobs of a download: resume from a partial file, fetch with Range,
 * verify, sync and rename into place, and retry with backoff on 429, 5xx and
 * cut transfers.
 *
 * The transfer itself is in hf_job_fetch.c, the work functions of the items
 * in hf_work.c.
 *
 * Threading model of a file job. The job (hf_job) is the loop thread's: its
 * state, its request (libcurl runs on the loop), its counts and its write
 * buffers while they are free. Every disk call and every hash update runs on
 * the work pool as an item of the job's strand, so the items of one file run
 * one at a time in the order submitted, on whichever worker is free:
 *
 *   OPEN      open (creating) the file's directory, stat the file in place
 *             (one of the listed size is opened to be hashed), or open the
 *             partial file, truncate one longer than listed; start the
 *             hash                                      -> job_open_done
 *   PREHASH   hash [from, to) of a partial file left by an earlier run, or
 *             of the file in place, one HF_PREHASH_SLICE per item
 *                                                       -> job_prehash_done
 *   CHECK     finish the hash of the file in place and compare; close
 *             everything. A match takes the file as done; a mismatch
 *             (counted) opens again with `replace`: the file is downloaded
 *             into its partial and renamed over the wrong one
 *                                                       -> job_check_done
 *   write     pwrite one buffer at its offset, hash it, hand every
 *             HF_WRITEBACK_STEP to the disk; a `restart` buffer first
 *             truncates the file and resets the hash (a 200 answer to a
 *             range)                                    -> job_write_done
 *   VERIFY    finish the hash and compare; on a match fdatasync (unless
 *             no_sync) and rename into place; on a mismatch unlink the
 *             partial; close everything                 -> job_verify_done
 *   CLOSE     close what a stopped job holds            -> job_close_done
 *
 * What the items work on (hf_disk: descriptors, hash state, the first write
 * error) belongs to the strand: the loop never touches it, and it passes from
 * one item to the next through the pool's lock. The loop reads an item's
 * results only in its done function, where the item is the loop's again.
 *
 * Write buffers and backpressure. The libcurl write callback (hf_job_on_body,
 * on the loop) copies the received bytes into the job's current buffer and
 * submits each full buffer as a write item, and the current one at once when
 * no write of the file is in flight (so bytes reach the disk as soon as it is
 * free, and batch up only while it is busy). A job has HF_WBUFS buffers of
 * buf_cap = min(HF_WBUF_BYTES, file size) bytes. A chunk is taken whole or
 * not at all: when the free room is smaller than the chunk, the callback
 * returns CURL_WRITEFUNC_PAUSE (libcurl keeps the chunk and delivers it again
 * on resume) and write_pauses counts it; job_write_done resumes the transfer
 * with curl_easy_pause(CURLPAUSE_CONT), which may call the write callback
 * again at once. So a file never holds more than HF_WBUFS * buf_cap bytes in
 * memory, however slow the disk. 1 MiB per buffer: a write item then costs
 * about a millisecond of hashing and writing, which amortises the pool's
 * hand-over (a lock and a wake-up) to nothing, and is twice libcurl's
 * receive buffer (512 KiB), so one chunk always fits in one free buffer;
 * four buffers let the network fill two while a worker writes one, with one
 * to spare for the worker picking up the next, at 4 MiB per file.
 *
 * Bytes are counted (have, done_bytes, progress) when accepted into a buffer;
 * a write that fails later fails the download at once (job_write_done),
 * naming the file and the errno, and counts in io_errors. Later writes of
 * that file are skipped by the strand (hf_disk.err). A partial file removed
 * under a running download is noticed by the next write (the open file has
 * no link left) and fails it the same way, rather than filling an unlinked
 * inode; one removed after the last write fails the rename into place.
 *
 * Large files (range_threshold and up) are fetched in ranges by several
 * transfers at once and hashed whole at the end: hf_ranged.c. This file
 * still opens, verifies and closes them; their writes, the sidecar and the
 * whole-file hash are items of the same strand.
 *
 * Lifetime: a job whose download stops (cancel, failure, client free) submits
 * its partly filled buffer and a CLOSE item; the download is freed by the
 * kick only when every job's strand and its directory item are idle
 * (hf_dl_idle), and every done function of a dead download kicks.
 */
#include "coord/hf_internal.h"
#include "src/base/log.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *job_state_name[] = {"wait",  "open",   "prehash", "xfer",
                                       "retry", "verify", "done"};

void hf_job_set_state(hf_job *j, job_state s)
{
  LOG_DEBUG("hf", "download %" PRIu64 " file %s: %s -> %s", j->dl->id, j->f->path,
            job_state_name[j->state], job_state_name[s]);
  j->state = s;
}

/* ---- the loop's side ---------------------------------------------------- */

static void job_submit(hf_job *j, hf_op *o, hf_op_kind kind, mesh_done_fn done)
{
  o->resumed = 0;
  o->j = j;
  o->kind = kind;
  o->err = 0;
  o->step = NULL;
  o->n = 0;
  o->in_place = o->not_regular = o->mismatch = false;
  o->got[0] = '\0';
  mesh_pool_submit(j->dl->c->pool, &o->w, j->strand, hf_work_op, done);
}

void hf_job_submit(hf_job *j, hf_op *o, hf_op_kind kind, mesh_done_fn done)
{
  job_submit(j, o, kind, done);
}

/* Common head of every done function: a dead download only counts down its
 * items (and kicks, so that the last one lets it be freed). */
static bool job_dead(hf_job *j)
{
  if (j->dl->state != DL_DEAD && j->state != JOB_DONE)
    return false;
  if (j->dl->state == DL_DEAD)
    hf_kick(j->dl->c);
  return true;
}

bool hf_job_dead(hf_job *j)
{
  return job_dead(j);
}

/* Tells the peer sources the job wants nothing more of its transfer. */
static void job_drop_source(hf_job *j)
{
  mesh_hf_client *c = j->dl->c;
  void *x = j->src;
  j->src = NULL;
  /* No sources any more (the daemon's shutdown): their transfers are gone. */
  if (x != NULL && c->src_ops != NULL)
    c->src_ops->stop(c->src_ctx, x);
}

static void job_finish(hf_job *j)
{
  hf_dl *dl = j->dl;
  j->holds = false;
  hf_xfer_stop(&j->x);
  job_drop_source(j);
  if (j->ev != NULL) {
    event_free(j->ev);
    j->ev = NULL;
  }
  hf_job_set_state(j, JOB_DONE);
  dl->active_jobs--;
  dl->files_done++;
  /* Its last item has run: the buffers go now, not with the download, so a
   * model of many files holds buffers for files_at_once files only. */
  if (hf_job_idle(j))
    hf_job_free(j);
}

/* Fails the download for a file system error of an item of j. */
static void job_io_fail(hf_job *j, int err, const char *step)
{
  hf_dl *dl = j->dl;
  dl->c->counters.io_errors++;
  hf_dl_fail(dl, err, "%s: %s %s: %s (partial file kept)", j->f->path, step, j->partial,
             strerror(-err));
}

void hf_job_io_fail(hf_job *j, int err, const char *step)
{
  job_io_fail(j, err, step);
}

static void job_write_done(mesh_work *w);
static void job_verify_done(mesh_work *w);
static void job_open_done(mesh_work *w);

void hf_job_init(hf_job *j, hf_dl *dl, const mesh_hf_file *f)
{
  j->dl = dl;
  j->f = f;
  j->disk.fd = j->disk.pfd = -1;
  hf_wset_init(&j->ws, j->bufs, HF_WBUFS, NULL, hf_work_write, job_write_done);
}

void hf_job_flush(hf_job *j)
{
  hf_wset_flush(j, &j->ws);
}

static void job_verify(hf_job *j)
{
  hf_job_flush(j);
  hf_job_set_state(j, JOB_VERIFY);
  j->op.sync = !j->dl->c->opt.no_sync;
  j->op.before_sync = j->dl->c->opt.before_sync;
  j->op.before_sync_arg = j->dl->c->opt.before_sync_arg;
  j->op.ranged = j->ranged;
  j->holds = false; /* the verify item closes everything */
  job_submit(j, &j->op, HF_OP_VERIFY, job_verify_done);
}

void hf_job_verify(hf_job *j)
{
  job_verify(j);
}

static void job_write_done(mesh_work *w)
{
  hf_wbuf *b = (hf_wbuf *)((char *)w - offsetof(hf_wbuf, w));
  hf_job *j = b->j;
  mesh_hf_client *c = j->dl->c;
  hf_wset_written(j, &j->ws, b);
  if (job_dead(j))
    return;
  if (b->err != 0 && j->io_err == 0) {
    j->io_err = b->err;
    if (b->err == ENOENT) {
      c->counters.io_errors++;
      hf_dl_fail(j->dl, -ENOENT, "%s: %s was removed while downloading", j->f->path, j->partial);
      return;
    }
    job_io_fail(j, -b->err, "writing");
    return;
  }
  if (j->paused && j->x.easy != NULL) {
    /* May call hf_job_on_body at once with the chunk libcurl kept. */
    j->paused = false;
    curl_easy_pause(j->x.easy, CURLPAUSE_CONT);
  } else if (j->paused && j->src != NULL) {
    /* May hand the chunk it kept at once (mesh_hf_source_data). */
    j->paused = false;
    c->src_ops->resume(c->src_ctx, j->src);
  }
}

static void job_verify_done(mesh_work *w)
{
  hf_op *o = (hf_op *)((char *)w - offsetof(hf_op, w));
  hf_job *j = o->j;
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  if (job_dead(j))
    return;
  if (o->mismatch && j->n_used > 0 && c->src_ops != NULL) {
    /* Peers sent some of these bytes: each of them is left out of this
     * download from now on, and the file starts over (its partial was
     * deleted) from the sources left, or the Hub. */
    c->counters.peer_mismatches++;
    for (int i = 0; i < j->n_used; i++) {
      LOG_WARN("hf",
               "%s@%s: %s: %s mismatch (got %s) with bytes from peer %s: that peer is "
               "dropped for this download, the file is fetched again",
               dl->repo, dl->revision, j->f->path, j->f->lfs ? "sha256" : "git blob sha1", o->got,
               j->used[i]);
      c->src_ops->bad(c->src_ctx, dl->id, j->used[i]);
    }
    j->n_used = 0;
    dl->done_bytes -= j->have;
    j->have = 0;
    j->prehash_to = 0;
    if (j->ranged && hf_ranged_reset(j) != 0) {
      hf_dl_fail(dl, -ENOMEM, "%s: out of memory", j->f->path);
      return;
    }
    j->holds = true;
    j->op.replace = false;
    j->op.ranged = j->ranged;
    hf_job_set_state(j, JOB_OPEN);
    job_submit(j, &j->op, HF_OP_OPEN, job_open_done);
    return;
  }
  if (o->mismatch) {
    c->counters.hash_mismatches++;
    dl->done_bytes -= j->have;
    hf_dl_fail(dl, -EBADMSG, "%s: %s mismatch: expected %s, got %s (partial file deleted)",
               j->f->path, j->f->lfs ? "sha256" : "git blob sha1",
               j->f->lfs ? j->f->sha256 : j->f->oid, o->got);
    return;
  }
  if (o->err != 0) {
    if (o->err == -ENOENT && strcmp(o->step, "rename into place") == 0) {
      c->counters.io_errors++;
      hf_dl_fail(dl, o->err, "%s: rename into place: %s was removed while downloading", j->f->path,
                 j->partial);
      return;
    }
    job_io_fail(j, o->err, o->step);
    return;
  }
  c->counters.files_verified++;
  job_finish(j);
  hf_fill_jobs(dl);
}

static void job_prehash_done(mesh_work *w);
static void job_check_done(mesh_work *w);
static void job_open_done(mesh_work *w);

/* The file in place has been read: CHECK compares and closes it. */
static void job_check(hf_job *j)
{
  hf_job_set_state(j, JOB_VERIFY);
  j->holds = false; /* the check item closes everything */
  job_submit(j, &j->op, HF_OP_CHECK, job_check_done);
}

static void job_check_done(mesh_work *w)
{
  hf_op *o = (hf_op *)((char *)w - offsetof(hf_op, w));
  hf_job *j = o->j;
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  if (job_dead(j))
    return;
  if (o->err != 0) {
    c->counters.io_errors++;
    hf_dl_fail(dl, o->err, "%s: %s: %s", j->f->path, o->step, strerror(-o->err));
    return;
  }
  j->checking = false;
  if (!o->mismatch) {
    c->counters.files_verified++;
    job_finish(j);
    hf_fill_jobs(dl);
    return;
  }
  c->counters.in_place_mismatches++;
  MESH_LOG_RL(MESH_LOG_INFO, "hf",
              "%s: in place with the listed size but %s %s, not %s: downloading it again",
              j->f->path, j->f->lfs ? "sha256" : "git blob sha1", o->got,
              j->f->lfs ? j->f->sha256 : j->f->oid);
  dl->done_bytes -= j->have;
  j->have = 0;
  j->prehash_to = 0;
  j->holds = true;
  j->op.replace = true;
  hf_job_set_state(j, JOB_OPEN);
  job_submit(j, &j->op, HF_OP_OPEN, job_open_done);
}

static void job_prehash_next(hf_job *j)
{
  uint64_t to =
      j->prehash_to - j->have > HF_PREHASH_SLICE ? j->have + HF_PREHASH_SLICE : j->prehash_to;
  j->op.from = j->have;
  j->op.to = to;
  job_submit(j, &j->op, HF_OP_PREHASH, job_prehash_done);
}

static void job_prehash_done(mesh_work *w)
{
  hf_op *o = (hf_op *)((char *)w - offsetof(hf_op, w));
  hf_job *j = o->j;
  hf_dl *dl = j->dl;
  if (job_dead(j))
    return;
  if (o->err != 0) {
    job_io_fail(j, o->err, o->step);
    return;
  }
  j->have += o->n;
  dl->done_bytes += o->n;
  if (j->checking) {
    /* A file in place that shrank while read is wrong as well: CHECK
     * compares what was read, which then cannot match. */
    if (o->n == o->to - o->from && j->have < j->prehash_to)
      job_prehash_next(j);
    else
      job_check(j);
    return;
  }
  if (o->n < o->to - o->from)
    j->prehash_to = j->have; /* the file shrank under us: resume from here */
  if (j->have < j->prehash_to) {
    job_prehash_next(j);
    return;
  }
  if (j->have == j->f->size)
    job_verify(j);
  else
    hf_job_request(j);
}

static void on_job_timer(evutil_socket_t fd, short what, void *arg)
{
  hf_job *j = arg;
  if (j->ranged) {
    hf_ranged_on_timer(j);
    return;
  }
  mesh_hf_url_resolve(j->dl->c->endpoint, j->dl->repo, j->dl->revision, j->f->path, j->url,
                      sizeof j->url);
  hf_job_request(j);
}

void hf_job_retry(hf_job *j, const char *why);

static void job_retry(hf_job *j, const char *why)
{
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  if (j->have >= j->have_at_request + HF_PROGRESS_RESETS_ATTEMPTS)
    j->attempt = 0;
  j->attempt++;
  if (j->attempt >= c->opt.max_attempts) {
    hf_dl_fail(dl, -EIO, "%s: gave up after %u attempts: %s", j->f->path, j->attempt, why);
    return;
  }
  c->counters.retries++;
  uint64_t ms = hf_retry_delay(c, j->attempt - 1, &j->x);
  MESH_LOG_RL(MESH_LOG_INFO, "hf", "%s: %s; retry %u in %" PRIu64 " ms", j->f->path, why,
              j->attempt, ms);
  hf_job_set_state(j, JOB_RETRY);
  hf_arm(j->ev, ms);
}

void hf_job_retry(hf_job *j, const char *why)
{
  job_retry(j, why);
}

static void job_open_done(mesh_work *w)
{
  hf_op *o = (hf_op *)((char *)w - offsetof(hf_op, w));
  hf_job *j = o->j;
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  const mesh_hf_file *f = j->f;
  if (job_dead(j))
    return;
  if (o->not_regular) {
    hf_dl_fail(dl, -EEXIST, "%s: %s", f->path, o->step);
    return;
  }
  if (o->err != 0) {
    hf_dl_fail(dl, o->err, "%s: %s: %s", f->path, o->step, strerror(-o->err));
    return;
  }
  if (o->in_place) {
    /* Read it through (in slices, like a partial) before taking it. */
    if (j->bufs[0].data == NULL && (j->bufs[0].data = malloc(j->buf_cap)) == NULL) {
      hf_dl_fail(dl, -ENOMEM, "%s: out of memory", f->path);
      return;
    }
    j->checking = true;
    j->have = 0;
    j->prehash_to = f->size;
    hf_job_set_state(j, JOB_PREHASH);
    if (f->size == 0)
      job_check(j);
    else
      job_prehash_next(j);
    return;
  }
  if (j->ev == NULL)
    j->ev = evtimer_new(c->base, on_job_timer, j);
  if (j->ev == NULL) {
    hf_dl_fail(dl, -ENOMEM, "%s: out of memory", f->path);
    return;
  }
  if (j->ranged) {
    hf_ranged_begin(j);
    return;
  }
  j->x.owner = j;
  j->x.on_headers = hf_job_on_headers;
  j->x.on_body = hf_job_on_body;
  j->x.on_done = hf_job_on_done;
  mesh_hf_url_resolve(c->endpoint, dl->repo, dl->revision, f->path, j->url, sizeof j->url);
  if (o->n > 0) {
    /* Prehash reads through the first buffer. */
    if (j->bufs[0].data == NULL && (j->bufs[0].data = malloc(j->buf_cap)) == NULL) {
      hf_dl_fail(dl, -ENOMEM, "%s: out of memory", f->path);
      return;
    }
    j->prehash_to = o->n;
    hf_job_set_state(j, JOB_PREHASH);
    job_prehash_next(j);
    return;
  }
  hf_job_request(j);
}

/* Begins job j: its OPEN item finds it in place, resumes a partial file or
 * starts from nothing. */
static void job_begin(hf_job *j)
{
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  const mesh_hf_file *f = j->f;
  dl->active_jobs++;
  const char *slash = strrchr(f->path, '/');
  j->leaf = slash != NULL ? slash + 1 : f->path;
  snprintf(j->partial, sizeof j->partial, "%s%s", j->leaf, MESH_HF_PARTIAL_SUFFIX);
  j->buf_cap = f->size < HF_WBUF_BYTES ? (size_t)f->size : HF_WBUF_BYTES;
  if (j->buf_cap == 0)
    j->buf_cap = 1;
  int rc = mesh_strand_new(c->pool, &j->strand);
  if (rc != 0) {
    hf_dl_fail(dl, rc, "%s: out of memory", f->path);
    return;
  }
  j->ranged = hf_ranged_wanted(c, f);
  if (j->ranged) {
    rc = mesh_hf_ranges_init(&j->rt, f->size, hf_ranged_range_bytes(c, f));
    if (rc != 0) {
      hf_dl_fail(dl, rc, "%s: cannot cut it in ranges: %s", f->path, strerror(-rc));
      return;
    }
  }
  j->holds = true;
  j->op.dirfd = dl->dirfd;
  j->op.replace = false;
  j->op.ranged = j->ranged;
  hf_job_set_state(j, JOB_OPEN);
  job_submit(j, &j->op, HF_OP_OPEN, job_open_done);
}

/* Starts jobs up to files_at_once; completes the download when all are done. */
void hf_fill_jobs(hf_dl *dl)
{
  mesh_hf_client *c = dl->c;
  while (dl->state == DL_FETCHING && dl->active_jobs < c->opt.files_at_once &&
         dl->next_job < dl->tree.len)
    job_begin(&dl->jobs[dl->next_job++]);
  if (dl->state == DL_FETCHING && dl->files_done == dl->tree.len && !dl->finishing)
    hf_dl_finish(dl);
}

static void job_close_done(mesh_work *w)
{
  hf_op *o = (hf_op *)((char *)w - offsetof(hf_op, w));
  job_dead(o->j);
}

void hf_job_stop(hf_job *j)
{
  hf_xfer_stop(&j->x);
  job_drop_source(j);
  if (j->ranged)
    hf_ranged_stop(j);
  j->paused = false;
  if (j->ev != NULL) {
    event_free(j->ev);
    j->ev = NULL;
  }
  if (j->strand == NULL)
    return;
  /* What was received is written out, so that a resume finds it. */
  hf_job_flush(j);
  if (j->holds) {
    j->holds = false;
    job_submit(j, &j->fin, HF_OP_CLOSE, job_close_done);
  }
}

bool hf_job_idle(const hf_job *j)
{
  return j->strand == NULL || mesh_strand_pending(j->strand) == 0;
}

void hf_job_free(hf_job *j)
{
  for (int i = 0; i < HF_WBUFS; i++) {
    free(j->bufs[i].data);
    j->bufs[i].data = NULL;
  }
  hf_ranged_free(j);
  if (j->strand != NULL)
    mesh_strand_free(j->strand);
  j->strand = NULL;
}
