/*
 * File jobs of a download: resume from a partial file (hashed first, a slice
 * per loop turn), fetch with Range, verify, sync and rename into place, and
 * retry with backoff on 429, 5xx and cut transfers.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

static const char *job_state_name[] = {"wait", "prehash", "xfer", "retry", "done"};

static void job_set_state(hf_job *j, job_state s)
{
  LOG_DEBUG("hf", "download %" PRIu64 " file %s: %s -> %s", j->dl->id, j->f->path,
            job_state_name[j->state], job_state_name[s]);
  j->state = s;
}

static void job_finish(hf_job *j)
{
  hf_dl *dl = j->dl;
  hf_job_stop(j);
  job_set_state(j, JOB_DONE);
  dl->active_jobs--;
  dl->files_done++;
}

/* The partial file is complete: check its hash, sync it and rename it into place. */
static void job_verify(hf_job *j)
{
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  char got[MESH_HF_HEX_MAX];
  if (mesh_hf_hash_final_hex(&j->hash, got) != 0) {
    hf_dl_fail(dl, -EIO, "%s: hashing failed", j->f->path);
    return;
  }
  const char *want = j->f->lfs ? j->f->sha256 : j->f->oid;
  if (!mesh_hf_hex_equal(want, got)) {
    c->counters.hash_mismatches++;
    unlinkat(j->pfd, j->partial, 0);
    dl->done_bytes -= j->have;
    hf_dl_fail(dl, -EBADMSG, "%s: %s mismatch: expected %s, got %s (partial file deleted)",
               j->f->path, j->f->lfs ? "sha256" : "git blob sha1", want, got);
    return;
  }
  int sync_rc = c->opt.no_sync ? 0 : mesh_fdatasync(j->fd);
  if (sync_rc != 0) {
    hf_dl_fail(dl, sync_rc, "%s: sync: %s", j->f->path, strerror(-sync_rc));
    return;
  }
  if (renameat(j->pfd, j->partial, j->pfd, j->leaf) != 0) {
    hf_dl_fail(dl, -errno, "%s: rename into place: %s", j->f->path, strerror(errno));
    return;
  }
  c->counters.files_verified++;
  job_finish(j);
  hf_fill_jobs(dl);
}

static void job_request(hf_job *j);

static void on_job_timer(evutil_socket_t fd, short what, void *arg)
{
  hf_job *j = arg;
  if (j->state == JOB_RETRY) {
    mesh_hf_url_resolve(j->dl->c->endpoint, j->dl->repo, j->dl->revision, j->f->path, j->url,
                        sizeof j->url);
    job_request(j);
    return;
  }
  /* PREHASH: hash the next slice of what an earlier run left. */
  hf_dl *dl = j->dl;
  uint64_t want = j->prehash_to - j->have;
  size_t n = want < HF_PREHASH_SLICE ? (size_t)want : HF_PREHASH_SLICE;
  ssize_t r = pread(j->fd, dl->c->scratch, n, (off_t)j->have);
  if (r < 0) {
    hf_dl_fail(dl, -errno, "%s: reading partial file: %s", j->f->path, strerror(errno));
    return;
  }
  if (r == 0)
    j->prehash_to = j->have; /* the file shrank under us: resume from here */
  mesh_hf_hash_update(&j->hash, dl->c->scratch, (size_t)r);
  j->have += (uint64_t)r;
  dl->done_bytes += (uint64_t)r;
  if (j->have < j->prehash_to) {
    event_active(j->ev, 0, 0);
    return;
  }
  if (j->have == j->f->size)
    job_verify(j);
  else
    job_request(j);
}

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

static bool job_on_headers(hf_xfer *x)
{
  hf_job *j = x->owner;
  j->writing = mesh_hf_status_classify(x->status) == MESH_HF_STATUS_OK;
  if (!j->writing)
    return true;
  if (x->status == 200 && j->have > 0) {
    /* The server ignored the range: start the file over. */
    if (ftruncate(j->fd, 0) != 0 || mesh_hf_hash_reset(&j->hash, j->f->size) != 0) {
      j->io_err = errno != 0 ? errno : EIO;
      return false;
    }
    j->dl->done_bytes -= j->have;
    j->have = 0;
    j->writeback_from = 0;
    j->dl->c->counters.restarts++;
    return true;
  }
  if (x->status == 206) {
    unsigned long long a = 0, b = 0, t = 0;
    if (sscanf(x->content_range, "bytes %llu-%llu/%llu", &a, &b, &t) != 3 || a != j->have ||
        t != j->f->size) {
      j->range_mismatch = true;
      return false;
    }
  }
  return true;
}

static size_t job_on_body(hf_xfer *x, const char *p, size_t n)
{
  hf_job *j = x->owner;
  if (!j->writing)
    return n;
  if (n > j->f->size - j->have) {
    j->overflow = true;
    return 0;
  }
  size_t off = 0;
  while (off < n) {
    ssize_t w = pwrite(j->fd, p + off, n - off, (off_t)(j->have + off));
    if (w < 0) {
      if (errno == EINTR)
        continue;
      j->io_err = errno;
      return 0;
    }
    off += (size_t)w;
  }
  mesh_hf_hash_update(&j->hash, p, n);
  j->have += n;
  if (!j->dl->c->opt.no_sync && j->have - j->writeback_from >= HF_WRITEBACK_STEP) {
    mesh_hf_fs_start_writeback(j->fd, j->writeback_from, j->have - j->writeback_from);
    j->writeback_from = j->have;
  }
  j->dl->done_bytes += n;
  j->dl->net_bytes += n;
  j->dl->c->counters.bytes_received += n;
  return n;
}

static void job_on_done(hf_xfer *x, CURLcode rc)
{
  hf_job *j = x->owner;
  hf_dl *dl = j->dl;
  char why[HF_MSG_MAX];
  if (j->io_err != 0) {
    int e = j->io_err;
    hf_dl_fail(dl, -e, "%s: writing %s: %s (partial file kept)", j->f->path, j->partial,
               strerror(e));
    return;
  }
  if (j->overflow) {
    hf_dl_fail(dl, -EBADMSG, "%s: the server sent more than the listed %" PRIu64 " bytes",
               j->f->path, j->f->size);
    return;
  }
  if (j->range_mismatch) {
    j->range_mismatch = false;
    if (ftruncate(j->fd, 0) != 0 || mesh_hf_hash_reset(&j->hash, j->f->size) != 0) {
      hf_dl_fail(dl, -EIO, "%s: cannot restart partial file", j->f->path);
      return;
    }
    dl->done_bytes -= j->have;
    j->have = 0;
    j->writeback_from = 0;
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

static void job_request(hf_job *j)
{
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  if (j->state != JOB_XFER)
    j->redirects = 0;
  j->writing = j->overflow = j->range_mismatch = false;
  j->io_err = 0;
  job_set_state(j, JOB_XFER);
  j->have_at_request = j->have;
  hf_xfer_params p = hf_params_for(c, j->url, j->have);
  c->counters.requests++;
  int rc = hf_xfer_start(&c->multi, &j->x, j->url, &p);
  if (rc != 0)
    hf_dl_fail(dl, rc, "%s: cannot start request: %s", j->f->path, strerror(-rc));
}

/* Begins job j: done already, resume a partial file, or fetch from the start. */
static void job_begin(hf_job *j)
{
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  const mesh_hf_file *f = j->f;
  dl->active_jobs++;
  int rc = mesh_hf_fs_open_parent(dl->dirfd, f->path, true, &j->pfd, &j->leaf);
  if (rc != 0) {
    hf_dl_fail(dl, rc, "%s: cannot open its directory: %s", f->path, strerror(-rc));
    return;
  }
  snprintf(j->partial, sizeof j->partial, "%s%s", j->leaf, MESH_HF_PARTIAL_SUFFIX);
  struct stat st;
  if (fstatat(j->pfd, j->leaf, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISREG(st.st_mode)) {
      hf_dl_fail(dl, -EEXIST, "%s: exists and is not a regular file", f->path);
      return;
    }
    if ((uint64_t)st.st_size == f->size) {
      dl->done_bytes += f->size;
      job_finish(j);
      return;
    }
  }
  j->fd = openat(j->pfd, j->partial, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (j->fd < 0 || fstat(j->fd, &st) != 0) {
    hf_dl_fail(dl, -errno, "%s: cannot open %s: %s", f->path, j->partial, strerror(errno));
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    hf_dl_fail(dl, -EEXIST, "%s: %s is not a regular file", f->path, j->partial);
    return;
  }
  uint64_t have = (uint64_t)st.st_size;
  if (have > f->size) {
    if (ftruncate(j->fd, 0) != 0) {
      hf_dl_fail(dl, -errno, "%s: truncate: %s", f->path, strerror(errno));
      return;
    }
    have = 0;
  }
  rc = mesh_hf_hash_init(&j->hash, f->lfs ? MESH_HF_HASH_SHA256 : MESH_HF_HASH_GIT_BLOB, f->size);
  if (rc != 0) {
    hf_dl_fail(dl, rc, "%s: cannot start hash", f->path);
    return;
  }
  j->hash_live = true;
  j->ev = evtimer_new(c->base, on_job_timer, j);
  if (j->ev == NULL) {
    hf_dl_fail(dl, -ENOMEM, "%s: out of memory", f->path);
    return;
  }
  j->x.owner = j;
  j->x.on_headers = job_on_headers;
  j->x.on_body = job_on_body;
  j->x.on_done = job_on_done;
  mesh_hf_url_resolve(c->endpoint, dl->repo, dl->revision, f->path, j->url, sizeof j->url);
  if (have > 0) {
    j->prehash_to = have;
    job_set_state(j, JOB_PREHASH);
    event_active(j->ev, 0, 0);
    return;
  }
  job_request(j);
}

/* Starts jobs up to files_at_once; completes the download when all are done. */
void hf_fill_jobs(hf_dl *dl)
{
  mesh_hf_client *c = dl->c;
  while (dl->state == DL_FETCHING && dl->active_jobs < c->opt.files_at_once &&
         dl->next_job < dl->tree.len)
    job_begin(&dl->jobs[dl->next_job++]);
  if (dl->state == DL_FETCHING && dl->files_done == dl->tree.len)
    hf_dl_complete(dl);
}
