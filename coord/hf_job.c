/*
 * File jobs of a download: resume from a partial file, fetch with Range,
 * verify, sync and rename into place, and retry with backoff on 429, 5xx and
 * cut transfers.
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
 * Write buffers and backpressure. The libcurl write callback (job_on_body,
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
#include "src/base/platform.h"
#include "coord/hf_fs.h"
#include "src/base/log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *job_state_name[] = {"wait",  "open",   "prehash", "xfer",
                                       "retry", "verify", "done"};

static void job_set_state(hf_job *j, job_state s)
{
  LOG_DEBUG("hf", "download %" PRIu64 " file %s: %s -> %s", j->dl->id, j->f->path,
            job_state_name[j->state], job_state_name[s]);
  j->state = s;
}

/* ---- work functions (worker threads: they touch the item and j->disk) ---- */

static void disk_close(hf_disk *d)
{
  if (d->fd >= 0)
    close(d->fd);
  if (d->pfd >= 0)
    close(d->pfd);
  d->fd = d->pfd = -1;
  if (d->hash_live)
    mesh_hf_hash_free(&d->hash);
  d->hash_live = false;
}

static void op_fail(hf_op *o, const char *step, int err)
{
  o->step = step;
  o->err = err != 0 ? err : -EIO;
}

static void work_open(hf_op *o)
{
  hf_job *j = o->j;
  hf_disk *d = &j->disk;
  const mesh_hf_file *f = j->f;
  const char *leaf = NULL;
  int rc = mesh_hf_fs_open_parent(o->dirfd, f->path, true, &d->pfd, &leaf);
  if (rc != 0) {
    op_fail(o, "cannot open its directory", rc);
    return;
  }
  struct stat st;
  if (fstatat(d->pfd, j->leaf, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISREG(st.st_mode)) {
      o->not_regular = true;
      op_fail(o, "exists and is not a regular file", -EEXIST);
      return;
    }
    if ((uint64_t)st.st_size == f->size && !o->replace) {
      /* A size proves nothing (another revision's file, a file cut and
       * refilled): it is taken only when its hash matches the list. */
      d->fd = openat(d->pfd, j->leaf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (d->fd < 0) {
        op_fail(o, "cannot open the file in place", -errno);
        return;
      }
      rc = mesh_hf_hash_init(&d->hash, f->lfs ? MESH_HF_HASH_SHA256 : MESH_HF_HASH_GIT_BLOB,
                             f->size);
      if (rc != 0) {
        op_fail(o, "cannot start hash", rc);
        return;
      }
      d->hash_live = true;
      o->in_place = true;
      return;
    }
  }
  d->fd = openat(d->pfd, j->partial, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (d->fd < 0 || fstat(d->fd, &st) != 0) {
    op_fail(o, "cannot open the partial file", -errno);
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    o->not_regular = true;
    op_fail(o, "the partial file is not a regular file", -EEXIST);
    return;
  }
  uint64_t have = (uint64_t)st.st_size;
  if (have > f->size) {
    if (ftruncate(d->fd, 0) != 0) {
      op_fail(o, "truncate", -errno);
      return;
    }
    have = 0;
  }
  rc = mesh_hf_hash_init(&d->hash, f->lfs ? MESH_HF_HASH_SHA256 : MESH_HF_HASH_GIT_BLOB, f->size);
  if (rc != 0) {
    op_fail(o, "cannot start hash", rc);
    return;
  }
  d->hash_live = true;
  d->writeback_from = have;
  o->n = have;
  if (o->ranged)
    hf_ranged_work_open(o, have);
}

/* Reads [from, to) through the job's first buffer (no write is in flight
 * while a job prehashes) and hashes it; o->n says how far it got (short when
 * the file shrank under us). */
void hf_work_prehash(hf_op *o)
{
  hf_job *j = o->j;
  hf_disk *d = &j->disk;
  unsigned char *buf = j->bufs[0].data;
  uint64_t at = o->from;
  while (at < o->to) {
    uint64_t want = o->to - at;
    size_t n = want < j->buf_cap ? (size_t)want : j->buf_cap;
    ssize_t r = pread(d->fd, buf, n, (off_t)at);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      op_fail(o, "reading the partial file", -errno);
      break;
    }
    if (r == 0)
      break;
    mesh_hf_hash_update(&d->hash, buf, (size_t)r);
    at += (uint64_t)r;
  }
  o->n = at - o->from;
}

/* Removes a ranged file's sidecar: the file is in place, or started over. */
static void ranges_unlink(hf_op *o)
{
  char name[MESH_HF_NAME_MAX + 32];
  if (!o->ranged)
    return;
  snprintf(name, sizeof name, "%s%s", o->j->partial, MESH_HF_RANGES_SUFFIX);
  unlinkat(o->j->disk.pfd, name, 0);
}

static void work_verify(hf_op *o)
{
  hf_job *j = o->j;
  hf_disk *d = &j->disk;
  const mesh_hf_file *f = j->f;
  if (d->err != 0) {
    op_fail(o, "writing", -d->err);
    goto out;
  }
  if (mesh_hf_hash_final_hex(&d->hash, o->got) != 0) {
    op_fail(o, "hashing failed", -EIO);
    goto out;
  }
  const char *want = f->lfs ? f->sha256 : f->oid;
  if (!mesh_hf_hex_equal(want, o->got)) {
    o->mismatch = true;
    unlinkat(d->pfd, j->partial, 0);
    ranges_unlink(o);
    goto out;
  }
  if (o->sync) {
    o->before_sync(o->before_sync_arg);
    int rc = mesh_fdatasync(d->fd);
    if (rc != 0) {
      op_fail(o, "sync", rc);
      goto out;
    }
  }
  if (renameat(d->pfd, j->partial, d->pfd, j->leaf) != 0)
    op_fail(o, "rename into place", -errno);
  else
    ranges_unlink(o);
out:
  disk_close(d);
}

/* The file in place was read through by PREHASH: compare its hash. It stays
 * where it is either way (a mismatch is replaced by the rename of the new
 * download). */
static void work_check(hf_op *o)
{
  hf_job *j = o->j;
  hf_disk *d = &j->disk;
  const mesh_hf_file *f = j->f;
  if (mesh_hf_hash_final_hex(&d->hash, o->got) != 0) {
    op_fail(o, "hashing failed", -EIO);
  } else {
    const char *want = f->lfs ? f->sha256 : f->oid;
    o->mismatch = !mesh_hf_hex_equal(want, o->got);
  }
  disk_close(d);
}

static void work_op(mesh_work *w)
{
  hf_op *o = (hf_op *)((char *)w - offsetof(hf_op, w));
  switch (o->kind) {
  case HF_OP_OPEN:
    work_open(o);
    break;
  case HF_OP_PREHASH:
    hf_work_prehash(o);
    break;
  case HF_OP_HASH:
    /* A ranged file is hashed from its first byte once it is whole. */
    if (o->from == 0 && mesh_hf_hash_reset(&o->j->disk.hash, o->j->f->size) != 0) {
      op_fail(o, "cannot start hash", -EIO);
      break;
    }
    hf_work_prehash(o);
    break;
  case HF_OP_RANGES:
    hf_ranged_work_save(o);
    break;
  case HF_OP_VERIFY:
    work_verify(o);
    break;
  case HF_OP_CHECK:
    work_check(o);
    break;
  case HF_OP_CLOSE:
    disk_close(&o->j->disk);
    break;
  }
}

bool hf_wbuf_write(hf_job *j, hf_wbuf *b)
{
  hf_disk *d = &j->disk;
  size_t off = 0;
  while (off < b->len) {
    ssize_t n = pwrite(d->fd, b->data + off, b->len - off, (off_t)(b->off + off));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      d->err = b->err = n < 0 ? errno : ENOSPC;
      return false;
    }
    off += (size_t)n;
  }
  /* A partial file removed under the download would take every further
   * byte into an inode nobody can reach (and keep its space in use until
   * the download ends): stop at the first write after the removal. */
  struct stat st;
  if (fstat(d->fd, &st) == 0 && st.st_nlink == 0) {
    d->err = b->err = ENOENT;
    return false;
  }
  return true;
}

static void work_write(mesh_work *w)
{
  hf_wbuf *b = (hf_wbuf *)((char *)w - offsetof(hf_wbuf, w));
  hf_job *j = b->j;
  hf_disk *d = &j->disk;
  b->err = 0;
  if (d->err != 0 || d->fd < 0)
    return; /* an earlier write failed (or the open did): the download is failing */
  if (b->restart) {
    if (ftruncate(d->fd, 0) != 0 || mesh_hf_hash_reset(&d->hash, j->f->size) != 0) {
      d->err = b->err = errno != 0 ? errno : EIO;
      return;
    }
    d->writeback_from = 0;
  }
  if (!hf_wbuf_write(j, b))
    return;
  mesh_hf_hash_update(&d->hash, b->data, b->len);
  uint64_t end = b->off + b->len;
  if (j->dl->c->opt.no_sync)
    return;
  if (end - d->writeback_from >= HF_WRITEBACK_STEP) {
    mesh_hf_fs_start_writeback(d->fd, d->writeback_from, end - d->writeback_from);
    d->writeback_from = end;
  }
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
  mesh_pool_submit(j->dl->c->pool, &o->w, j->strand, work_op, done);
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
  job_set_state(j, JOB_DONE);
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

static void job_request(hf_job *j);
static void job_write_done(mesh_work *w);
static void job_verify_done(mesh_work *w);
static void job_open_done(mesh_work *w);

void hf_job_init(hf_job *j, hf_dl *dl, const mesh_hf_file *f)
{
  j->dl = dl;
  j->f = f;
  j->disk.fd = j->disk.pfd = -1;
  hf_wset_init(&j->ws, j->bufs, HF_WBUFS, NULL, work_write, job_write_done);
}

static void job_flush(hf_job *j)
{
  hf_wset_flush(j, &j->ws);
}

static void job_verify(hf_job *j)
{
  job_flush(j);
  job_set_state(j, JOB_VERIFY);
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
    /* May call job_on_body at once with the chunk libcurl kept. */
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
    job_set_state(j, JOB_OPEN);
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
  job_set_state(j, JOB_VERIFY);
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
  job_set_state(j, JOB_OPEN);
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
    job_request(j);
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
  job_request(j);
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
  job_set_state(j, JOB_RETRY);
  hf_arm(j->ev, ms);
}

void hf_job_retry(hf_job *j, const char *why)
{
  job_retry(j, why);
}

/* Starts the file over: the next buffer truncates the file and resets the
 * hash on the strand, in order after every write already submitted. */
static void job_start_over(hf_job *j)
{
  j->dl->done_bytes -= j->have;
  j->have = 0;
  j->ws.restart_next = true;
}

static bool job_on_headers(hf_xfer *x)
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
  c->counters.buffered_bytes += n;
  if (c->counters.buffered_bytes > c->counters.buffered_peak)
    c->counters.buffered_peak = c->counters.buffered_bytes;
}

/* libcurl's write callback, on the loop: copies the chunk into the write
 * buffers (whole or not at all) and submits every full one. */
static size_t job_on_body(hf_xfer *x, const char *p, size_t n)
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
  job_flush(j);
  if (j->io_err != 0) {
    int e = j->io_err;
    c->counters.io_errors++;
    hf_dl_fail(dl, -e, "%s: writing %s: %s (partial file kept)", j->f->path, j->partial,
               strerror(e));
    return;
  }
  if (err == 0 && j->have == j->f->size) {
    job_verify(j);
    return;
  }
  /* The file goes on from where it is, from another source or the Hub. */
  c->counters.peer_failovers++;
  MESH_LOG_RL(MESH_LOG_INFO, "hf",
              "%s@%s: %s: peer %s stopped at byte %" PRIu64 " of %" PRIu64 " (%s): going on "
              "from there elsewhere",
              dl->repo, dl->revision, j->f->path, j->src_label, j->have, j->f->size,
              why != NULL && why[0] != '\0' ? why : strerror(err < 0 ? -err : EIO));
  job_request(j);
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

static void job_on_done(hf_xfer *x, CURLcode rc)
{
  hf_job *j = x->owner;
  hf_dl *dl = j->dl;
  char why[HF_MSG_MAX];
  /* What this try brought goes to the disk, before a retry or the verify. */
  job_flush(j);
  j->paused = false;
  if (hf_job_transfer_broke(j))
    return;
  if (j->range_mismatch) {
    j->range_mismatch = false;
    job_start_over(j);
    job_retry(j, "Content-Range does not match the range asked for");
    return;
  }
  int err = 0;
  switch (hf_judge(dl, x, rc, j->f->path, j->f->path, &j->redirects, j->url, sizeof j->url, &err,
                   why, sizeof why)) {
  case HF_NEXT_RETRY:
    job_retry(j, why);
    return;
  case HF_NEXT_FOLLOW:
    job_request(j);
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
    job_retry(j, why);
    return;
  }
  job_verify(j);
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
    job_set_state(j, JOB_RETRY);
    hf_arm(j->ev, HF_SOURCE_BUSY_MS);
    return true;
  }
  if (rc != 0)
    return false;
  j->src = x;
  c->counters.peer_transfers++;
  job_set_state(j, JOB_XFER);
  j->have_at_request = j->have;
  return true;
}

static void job_request(hf_job *j)
{
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  if (job_try_sources(j))
    return;
  if (j->state != JOB_XFER)
    j->redirects = 0;
  j->writing = j->overflow = j->range_mismatch = j->too_big = j->paused = false;
  job_set_state(j, JOB_XFER);
  j->have_at_request = j->have;
  /* After a restart the range starts at 0 even while the restarting buffer
   * has not been written: the file is started over in order on the strand. */
  hf_xfer_params p = hf_params_for(c, j->url, j->have);
  c->counters.requests++;
  int rc = hf_xfer_start(&c->multi, &j->x, j->url, &p);
  if (rc != 0)
    hf_dl_fail(dl, rc, "%s: cannot start request: %s", j->f->path, strerror(-rc));
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
    job_set_state(j, JOB_PREHASH);
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
  j->x.on_headers = job_on_headers;
  j->x.on_body = job_on_body;
  j->x.on_done = job_on_done;
  mesh_hf_url_resolve(c->endpoint, dl->repo, dl->revision, f->path, j->url, sizeof j->url);
  if (o->n > 0) {
    /* Prehash reads through the first buffer. */
    if (j->bufs[0].data == NULL && (j->bufs[0].data = malloc(j->buf_cap)) == NULL) {
      hf_dl_fail(dl, -ENOMEM, "%s: out of memory", f->path);
      return;
    }
    j->prehash_to = o->n;
    job_set_state(j, JOB_PREHASH);
    job_prehash_next(j);
    return;
  }
  job_request(j);
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
  job_set_state(j, JOB_OPEN);
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
  job_flush(j);
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
