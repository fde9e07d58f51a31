/*
 * The download engine of the Hub client: file lists, file jobs, retries,
 * verification, progress and the callback to the caller.
 *
 * A download moves QUEUED -> LISTING -> FETCHING -> DEAD (dl_set_state); a
 * file job WAIT -> (PREHASH) -> XFER <-> RETRY -> DONE (job_set_state).
 * DEAD downloads are freed by the kick event, never inside a report, so that
 * a callback may cancel the very download it is told about.
 */
#include "coord/hf_client.h"
#include "coord/hf_fs.h"
#include "coord/hf_xfer.h"
#include "src/base/clock.h"
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

/* Bytes of a partial file hashed per loop turn when resuming. */
#define PREHASH_SLICE (4u << 20)
/* Redirects followed for one request. */
#define MAX_REDIRECTS 5
#define MSG_MAX 1024

typedef enum dl_state { DL_QUEUED, DL_LISTING, DL_FETCHING, DL_DEAD } dl_state;
typedef enum job_state { JOB_WAIT, JOB_PREHASH, JOB_XFER, JOB_RETRY, JOB_DONE } job_state;

typedef struct hf_dl hf_dl;

typedef struct hf_job {
  hf_dl *dl;
  const mesh_hf_file *f; /* in dl->tree */
  job_state state;
  int pfd;                             /* directory holding the file, or -1 */
  const char *leaf;                    /* last component of f->path */
  char partial[MESH_HF_NAME_MAX + 16]; /* leaf + ".partial" */
  int fd;                              /* the partial file, or -1 */
  uint64_t have;                       /* bytes in the partial file, all hashed */
  uint64_t prehash_to;                 /* PREHASH: bytes of the partial to hash */
  mesh_hf_hash hash;                   /* over the first `have` bytes */
  bool hash_live;                      /* hash initialised */
  hf_xfer x;                           /* the request */
  unsigned attempt;                    /* failed tries so far */
  unsigned redirects;                  /* redirects in this try */
  char url[MESH_HF_URL_MAX];           /* URL of this try */
  struct event *ev;                    /* retry timer and prehash turns */
  bool writing;                        /* the answer's body is file content */
  int io_err;                          /* errno of a failed write */
  bool overflow;                       /* more bytes than listed */
  bool range_mismatch;                 /* Content-Range not where asked */
} hf_job;

struct hf_dl {
  hf_dl *next;
  mesh_hf_client *c;
  uint64_t id;
  void *user;
  char *repo;
  char *revision;
  char *model_dir;
  uint64_t max_bytes;
  dl_state state;
  int dirfd; /* the model directory, or -1 */

  hf_xfer lx;                     /* file list request */
  char list_url[MESH_HF_URL_MAX]; /* page being fetched */
  char page_url[MESH_HF_URL_MAX]; /* page before redirects, for retries */
  char *body;                     /* page body, bounded by max_list_page_bytes */
  size_t body_len;
  size_t body_cap;
  bool body_over;         /* the page grew past its bound */
  unsigned pages;         /* pages fetched */
  unsigned attempt;       /* failed tries of this page */
  unsigned redirects;     /* redirects of this try */
  struct event *retry_ev; /* list retry timer */
  mesh_hf_tree tree;

  hf_job *jobs;        /* one per file of tree */
  size_t next_job;     /* first job never begun */
  int active_jobs;     /* begun and not done */
  uint32_t files_done; /* verified and in place */
  uint64_t done_bytes; /* in place plus in partial files */
  uint64_t net_bytes;  /* received in this run */

  struct event *progress_ev;
  uint64_t last_net;    /* net_bytes at the last report */
  uint64_t last_done;   /* done_bytes at the last report */
  mesh_time_ms last_ms; /* time of the last report */
};

struct mesh_hf_client {
  struct event_base *base;
  hf_multi multi;
  mesh_hf_options opt; /* defaults filled in */
  char *endpoint;      /* owned */
  char *token;         /* owned, NULL when none */
  mesh_hf_report_fn fn;
  void *ctx;
  mesh_rng rng;
  hf_dl *dls; /* every download not yet freed */
  uint64_t next_id;
  int running;            /* downloads LISTING or FETCHING */
  struct event *kick;     /* starts queued downloads, frees dead ones */
  unsigned char *scratch; /* PREHASH_SLICE bytes for hashing partial files */
  mesh_hf_counters counters;
};

static const char *dl_state_name[] = {"queued", "listing", "fetching", "dead"};
static const char *job_state_name[] = {"wait", "prehash", "xfer", "retry", "done"};

static void dl_set_state(hf_dl *dl, dl_state s)
{
  LOG_DEBUG("hf", "download %" PRIu64 " %s@%s: %s -> %s", dl->id, dl->repo, dl->revision,
            dl_state_name[dl->state], dl_state_name[s]);
  dl->state = s;
}

static void job_set_state(hf_job *j, job_state s)
{
  LOG_DEBUG("hf", "download %" PRIu64 " file %s: %s -> %s", j->dl->id, j->f->path,
            job_state_name[j->state], job_state_name[s]);
  j->state = s;
}

static void kick(mesh_hf_client *c)
{
  event_active(c->kick, 0, 0);
}

static mesh_hf_progress progress_of(const hf_dl *dl)
{
  mesh_hf_progress p = {
      .done_bytes = dl->done_bytes,
      .total_bytes = dl->tree.total_bytes,
      .files_done = dl->files_done,
      .files_total = (uint32_t)dl->tree.len,
      .eta_ms = UINT64_MAX,
  };
  return p;
}

static void emit(hf_dl *dl, mesh_hf_report_kind kind, const mesh_hf_progress *p, int err,
                 const char *msg)
{
  mesh_hf_report r = {
      .kind = kind, .id = dl->id, .user = dl->user, .progress = *p, .err = err, .message = msg};
  dl->c->fn(&r, dl->c->ctx);
}

/* Closes what a job holds; its partial file stays on disk. */
static void job_stop(hf_job *j)
{
  hf_xfer_stop(&j->x);
  if (j->ev != NULL) {
    event_free(j->ev);
    j->ev = NULL;
  }
  if (j->fd >= 0)
    close(j->fd);
  if (j->pfd >= 0)
    close(j->pfd);
  j->fd = j->pfd = -1;
  if (j->hash_live)
    mesh_hf_hash_free(&j->hash);
  j->hash_live = false;
}

/* Stops every request and timer of dl and marks it dead (freed by kick). */
static void dl_stop(hf_dl *dl)
{
  mesh_hf_client *c = dl->c;
  hf_xfer_stop(&dl->lx);
  if (dl->retry_ev != NULL)
    event_free(dl->retry_ev);
  if (dl->progress_ev != NULL)
    event_free(dl->progress_ev);
  dl->retry_ev = dl->progress_ev = NULL;
  for (size_t i = 0; i < dl->tree.len && dl->jobs != NULL; i++)
    job_stop(&dl->jobs[i]);
  if (dl->state == DL_LISTING || dl->state == DL_FETCHING)
    c->running--;
  dl_set_state(dl, DL_DEAD);
  kick(c);
}

static void dl_fail(hf_dl *dl, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void dl_fail(hf_dl *dl, int err, const char *fmt, ...)
{
  char msg[MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  mesh_hf_progress p = progress_of(dl);
  dl->c->counters.failed++;
  LOG_INFO("hf", "download %" PRIu64 " %s@%s failed: %s", dl->id, dl->repo, dl->revision, msg);
  dl_stop(dl);
  emit(dl, MESH_HF_REPORT_FAILED, &p, err, msg);
}

static void dl_complete(hf_dl *dl)
{
  mesh_hf_progress p = progress_of(dl);
  dl->c->counters.completed++;
  LOG_INFO("hf", "download %" PRIu64 " %s@%s completed: %u files, %" PRIu64 " bytes", dl->id,
           dl->repo, dl->revision, p.files_total, p.total_bytes);
  dl_stop(dl);
  emit(dl, MESH_HF_REPORT_COMPLETED, &p, 0, NULL);
}

/* The bearer token, for URLs of the endpoint's own origin only. */
static const char *token_for(mesh_hf_client *c, const char *url)
{
  if (c->token == NULL || !mesh_hf_same_origin(c->endpoint, url))
    return NULL;
  return c->token;
}

static hf_xfer_params params_for(mesh_hf_client *c, const char *url, uint64_t range_from)
{
  hf_xfer_params p = {
      .token = token_for(c, url),
      .range_from = range_from,
      .connect_timeout_ms = c->opt.connect_timeout_ms,
      .low_speed_bytes = c->opt.low_speed_bytes,
      .low_speed_time_ms = c->opt.low_speed_time_ms,
  };
  return p;
}

static uint64_t retry_after_ms(const hf_xfer *x)
{
  uint64_t ms = UINT64_MAX;
  if (x->retry_after[0] != '\0' &&
      mesh_hf_parse_retry_after(x->retry_after, (int64_t)time(NULL), &ms) != 0)
    ms = UINT64_MAX;
  return ms;
}

static uint64_t retry_delay(mesh_hf_client *c, unsigned attempt, const hf_xfer *x)
{
  return mesh_hf_retry_delay_ms(attempt, retry_after_ms(x), c->opt.backoff_base_ms,
                                c->opt.backoff_cap_ms, c->opt.max_retry_after_ms, &c->rng);
}

static void arm(struct event *ev, uint64_t ms)
{
  struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
  evtimer_add(ev, &tv);
}

/* ---- file jobs ---------------------------------------------------------- */

static void fill_jobs(hf_dl *dl);

static void job_finish(hf_job *j)
{
  hf_dl *dl = j->dl;
  job_stop(j);
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
    dl_fail(dl, -EIO, "%s: hashing failed", j->f->path);
    return;
  }
  const char *want = j->f->lfs ? j->f->sha256 : j->f->oid;
  if (!mesh_hf_hex_equal(want, got)) {
    c->counters.hash_mismatches++;
    unlinkat(j->pfd, j->partial, 0);
    dl->done_bytes -= j->have;
    dl_fail(dl, -EBADMSG, "%s: %s mismatch: expected %s, got %s (partial file deleted)", j->f->path,
            j->f->lfs ? "sha256" : "git blob sha1", want, got);
    return;
  }
  if (!c->opt.no_sync && fdatasync(j->fd) != 0) {
    dl_fail(dl, -errno, "%s: sync: %s", j->f->path, strerror(errno));
    return;
  }
  if (renameat(j->pfd, j->partial, j->pfd, j->leaf) != 0) {
    dl_fail(dl, -errno, "%s: rename into place: %s", j->f->path, strerror(errno));
    return;
  }
  c->counters.files_verified++;
  job_finish(j);
  fill_jobs(dl);
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
  size_t n = want < PREHASH_SLICE ? (size_t)want : PREHASH_SLICE;
  ssize_t r = pread(j->fd, dl->c->scratch, n, (off_t)j->have);
  if (r < 0) {
    dl_fail(dl, -errno, "%s: reading partial file: %s", j->f->path, strerror(errno));
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
  j->attempt++;
  if (j->attempt >= c->opt.max_attempts) {
    dl_fail(dl, -EIO, "%s: gave up after %u attempts: %s", j->f->path, j->attempt, why);
    return;
  }
  c->counters.retries++;
  uint64_t ms = retry_delay(c, j->attempt - 1, &j->x);
  MESH_LOG_RL(MESH_LOG_INFO, "hf", "%s: %s; retry %u in %" PRIu64 " ms", j->f->path, why,
              j->attempt, ms);
  job_set_state(j, JOB_RETRY);
  arm(j->ev, ms);
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
  j->dl->done_bytes += n;
  j->dl->net_bytes += n;
  j->dl->c->counters.bytes_received += n;
  return n;
}

static void job_on_done(hf_xfer *x, CURLcode rc)
{
  hf_job *j = x->owner;
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  char why[MSG_MAX];
  if (j->io_err != 0) {
    int e = j->io_err;
    dl_fail(dl, -e, "%s: writing %s: %s (partial file kept)", j->f->path, j->partial, strerror(e));
    return;
  }
  if (j->overflow) {
    dl_fail(dl, -EBADMSG, "%s: the server sent more than the listed %" PRIu64 " bytes", j->f->path,
            j->f->size);
    return;
  }
  if (j->range_mismatch) {
    j->range_mismatch = false;
    if (ftruncate(j->fd, 0) != 0 || mesh_hf_hash_reset(&j->hash, j->f->size) != 0) {
      dl_fail(dl, -EIO, "%s: cannot restart partial file", j->f->path);
      return;
    }
    dl->done_bytes -= j->have;
    j->have = 0;
    job_retry(j, "Content-Range does not match the range asked for");
    return;
  }
  if (rc != CURLE_OK) {
    snprintf(why, sizeof why, "%s", x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(rc));
    job_retry(j, why);
    return;
  }
  switch (mesh_hf_status_classify(x->status)) {
  case MESH_HF_STATUS_REDIRECT: {
    const char *w = NULL;
    if (x->redirect[0] == '\0' || !mesh_hf_redirect_allowed(c->endpoint, x->redirect, &w)) {
      c->counters.redirects_refused++;
      dl_fail(dl, -EPERM, "%s: redirect to %s refused: %s", j->f->path,
              x->redirect[0] != '\0' ? x->redirect : "(no Location)", w != NULL ? w : "no target");
      return;
    }
    if (++j->redirects > MAX_REDIRECTS) {
      dl_fail(dl, -ELOOP, "%s: more than %d redirects", j->f->path, MAX_REDIRECTS);
      return;
    }
    c->counters.redirects++;
    snprintf(j->url, sizeof j->url, "%s", x->redirect);
    job_request(j);
    return;
  }
  case MESH_HF_STATUS_RETRY:
    snprintf(why, sizeof why, "HTTP %ld", x->status);
    job_retry(j, why);
    return;
  case MESH_HF_STATUS_FATAL:
    mesh_hf_status_message(x->status, c->token != NULL, x->error_code, dl->repo, dl->revision,
                           j->f->path, why, sizeof why);
    dl_fail(dl, mesh_hf_status_errno(x->status), "%s", why);
    return;
  case MESH_HF_STATUS_OK:
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
  hf_xfer_params p = params_for(c, j->url, j->have);
  c->counters.requests++;
  int rc = hf_xfer_start(&c->multi, &j->x, j->url, &p);
  if (rc != 0)
    dl_fail(dl, rc, "%s: cannot start request: %s", j->f->path, strerror(-rc));
}

/* Begins job j: done already, resume a partial file, or fetch from the start. */
static void job_begin(hf_job *j)
{
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  const mesh_hf_file *f = j->f;
  dl->active_jobs++;
  int rc = mesh_hf_fs_open_parent(dl->dirfd, f->path, &j->pfd, &j->leaf);
  if (rc != 0) {
    dl_fail(dl, rc, "%s: cannot open its directory: %s", f->path, strerror(-rc));
    return;
  }
  snprintf(j->partial, sizeof j->partial, "%s%s", j->leaf, MESH_HF_PARTIAL_SUFFIX);
  struct stat st;
  if (fstatat(j->pfd, j->leaf, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISREG(st.st_mode)) {
      dl_fail(dl, -EEXIST, "%s: exists and is not a regular file", f->path);
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
    dl_fail(dl, -errno, "%s: cannot open %s: %s", f->path, j->partial, strerror(errno));
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    dl_fail(dl, -EEXIST, "%s: %s is not a regular file", f->path, j->partial);
    return;
  }
  uint64_t have = (uint64_t)st.st_size;
  if (have > f->size) {
    if (ftruncate(j->fd, 0) != 0) {
      dl_fail(dl, -errno, "%s: truncate: %s", f->path, strerror(errno));
      return;
    }
    have = 0;
  }
  rc = mesh_hf_hash_init(&j->hash, f->lfs ? MESH_HF_HASH_SHA256 : MESH_HF_HASH_GIT_BLOB, f->size);
  if (rc != 0) {
    dl_fail(dl, rc, "%s: cannot start hash", f->path);
    return;
  }
  j->hash_live = true;
  j->ev = evtimer_new(c->base, on_job_timer, j);
  if (j->ev == NULL) {
    dl_fail(dl, -ENOMEM, "%s: out of memory", f->path);
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
static void fill_jobs(hf_dl *dl)
{
  mesh_hf_client *c = dl->c;
  while (dl->state == DL_FETCHING && dl->active_jobs < c->opt.files_at_once &&
         dl->next_job < dl->tree.len)
    job_begin(&dl->jobs[dl->next_job++]);
  if (dl->state == DL_FETCHING && dl->files_done == dl->tree.len)
    dl_complete(dl);
}

/* ---- progress ----------------------------------------------------------- */

static void on_progress(evutil_socket_t fd, short what, void *arg)
{
  hf_dl *dl = arg;
  mesh_time_ms now = mesh_clock_now_ms();
  if (dl->net_bytes == dl->last_net && dl->done_bytes == dl->last_done)
    return;
  mesh_hf_progress p = progress_of(dl);
  uint64_t dt = now > dl->last_ms ? now - dl->last_ms : 1;
  p.speed_bps = (dl->net_bytes - dl->last_net) * 1000 / dt;
  if (p.speed_bps > 0 && p.total_bytes >= p.done_bytes)
    p.eta_ms = (p.total_bytes - p.done_bytes) * 1000 / p.speed_bps;
  dl->last_net = dl->net_bytes;
  dl->last_done = dl->done_bytes;
  dl->last_ms = now;
  emit(dl, MESH_HF_REPORT_PROGRESS, &p, 0, NULL);
}

/* ---- the file list ------------------------------------------------------ */

static void list_request(hf_dl *dl);

/* Bytes already on disk for f: the whole file if in place, else its partial. */
static uint64_t bytes_present(int dirfd, const mesh_hf_file *f)
{
  int pfd;
  const char *leaf;
  if (mesh_hf_fs_open_parent(dirfd, f->path, &pfd, &leaf) != 0)
    return 0;
  uint64_t n = 0;
  struct stat st;
  char partial[MESH_HF_NAME_MAX + 16];
  snprintf(partial, sizeof partial, "%s%s", leaf, MESH_HF_PARTIAL_SUFFIX);
  if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
      (uint64_t)st.st_size == f->size)
    n = f->size;
  else if (fstatat(pfd, partial, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
    n = (uint64_t)st.st_size < f->size ? (uint64_t)st.st_size : f->size;
  close(pfd);
  return n;
}

/* The list is complete: report it, apply the size guard, start fetching. */
static void list_done(hf_dl *dl)
{
  mesh_hf_client *c = dl->c;
  char err[MSG_MAX];
  int rc = mesh_hf_tree_finish(&dl->tree, err, sizeof err);
  if (rc != 0) {
    c->counters.list_errors++;
    dl_fail(dl, rc, "file list of %s@%s refused: %s", dl->repo, dl->revision, err);
    return;
  }
  dl->jobs = calloc(dl->tree.len != 0 ? dl->tree.len : 1, sizeof *dl->jobs);
  if (dl->jobs == NULL) {
    dl_fail(dl, -ENOMEM, "out of memory for %zu files", dl->tree.len);
    return;
  }
  for (size_t i = 0; i < dl->tree.len; i++) {
    dl->jobs[i].dl = dl;
    dl->jobs[i].f = &dl->tree.files[i];
    dl->jobs[i].fd = dl->jobs[i].pfd = -1;
  }
  mesh_hf_progress p = progress_of(dl);
  emit(dl, MESH_HF_REPORT_LISTED, &p, 0, NULL);
  if (dl->state == DL_DEAD)
    return; /* cancelled by the callback: not a byte fetched */
  uint64_t total = dl->tree.total_bytes;
  if (dl->max_bytes != 0 && total > dl->max_bytes) {
    dl_fail(dl, -EFBIG, "model %s is %" PRIu64 " bytes, over the limit of %" PRIu64 " bytes",
            dl->repo, total, dl->max_bytes);
    return;
  }
  if (!c->opt.skip_space_check) {
    uint64_t present = 0;
    for (size_t i = 0; i < dl->tree.len; i++)
      present += bytes_present(dl->dirfd, &dl->tree.files[i]);
    struct statvfs vfs;
    if (fstatvfs(dl->dirfd, &vfs) != 0) {
      dl_fail(dl, -errno, "%s: statvfs: %s", dl->model_dir, strerror(errno));
      return;
    }
    uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    uint64_t need = total - present;
    if (need > avail) {
      dl_fail(dl, -ENOSPC,
              "model %s needs %" PRIu64 " more bytes (%" PRIu64 " in all) but only %" PRIu64
              " bytes are free in %s",
              dl->repo, need, total, avail, dl->model_dir);
      return;
    }
  }
  dl->progress_ev = event_new(c->base, -1, EV_PERSIST, on_progress, dl);
  if (dl->progress_ev == NULL) {
    dl_fail(dl, -ENOMEM, "out of memory");
    return;
  }
  struct timeval tv = {.tv_sec = (time_t)(c->opt.progress_interval_ms / 1000),
                       .tv_usec = (suseconds_t)(c->opt.progress_interval_ms % 1000) * 1000};
  evtimer_add(dl->progress_ev, &tv);
  dl->last_ms = mesh_clock_now_ms();
  dl_set_state(dl, DL_FETCHING);
  fill_jobs(dl);
}

static void list_retry(hf_dl *dl, const char *why)
{
  mesh_hf_client *c = dl->c;
  dl->attempt++;
  if (dl->attempt >= c->opt.max_attempts) {
    dl_fail(dl, -EIO, "file list of %s@%s: gave up after %u attempts: %s", dl->repo, dl->revision,
            dl->attempt, why);
    return;
  }
  c->counters.retries++;
  uint64_t ms = retry_delay(c, dl->attempt - 1, &dl->lx);
  MESH_LOG_RL(MESH_LOG_INFO, "hf", "file list of %s: %s; retry %u in %" PRIu64 " ms", dl->repo, why,
              dl->attempt, ms);
  snprintf(dl->list_url, sizeof dl->list_url, "%s", dl->page_url);
  arm(dl->retry_ev, ms);
}

static void on_list_retry(evutil_socket_t fd, short what, void *arg)
{
  hf_dl *dl = arg;
  dl->redirects = 0;
  list_request(dl);
}

static bool list_on_headers(hf_xfer *x)
{
  hf_dl *dl = x->owner;
  dl->body_len = 0;
  dl->body_over = false;
  return true;
}

static size_t list_on_body(hf_xfer *x, const char *p, size_t n)
{
  hf_dl *dl = x->owner;
  if (mesh_hf_status_classify(x->status) != MESH_HF_STATUS_OK)
    return n;
  size_t max = dl->c->opt.max_list_page_bytes;
  if (n > max - dl->body_len) {
    dl->body_over = true;
    return 0;
  }
  if (dl->body_len + n > dl->body_cap) {
    size_t cap = dl->body_cap != 0 ? dl->body_cap : 65536;
    while (cap < dl->body_len + n)
      cap *= 2;
    if (cap > max)
      cap = max;
    char *b = realloc(dl->body, cap);
    if (b == NULL)
      return 0;
    dl->body = b;
    dl->body_cap = cap;
  }
  memcpy(dl->body + dl->body_len, p, n);
  dl->body_len += n;
  return n;
}

static void list_on_done(hf_xfer *x, CURLcode rc)
{
  hf_dl *dl = x->owner;
  mesh_hf_client *c = dl->c;
  char why[MSG_MAX];
  if (dl->body_over) {
    c->counters.list_errors++;
    dl_fail(dl, -EMSGSIZE, "file list of %s@%s: a page is larger than %zu bytes", dl->repo,
            dl->revision, c->opt.max_list_page_bytes);
    return;
  }
  if (rc != CURLE_OK) {
    snprintf(why, sizeof why, "%s", x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(rc));
    list_retry(dl, why);
    return;
  }
  switch (mesh_hf_status_classify(x->status)) {
  case MESH_HF_STATUS_REDIRECT: {
    const char *w = NULL;
    if (x->redirect[0] == '\0' || !mesh_hf_redirect_allowed(c->endpoint, x->redirect, &w)) {
      c->counters.redirects_refused++;
      dl_fail(dl, -EPERM, "file list of %s: redirect to %s refused: %s", dl->repo,
              x->redirect[0] != '\0' ? x->redirect : "(no Location)", w != NULL ? w : "no target");
      return;
    }
    if (++dl->redirects > MAX_REDIRECTS) {
      dl_fail(dl, -ELOOP, "file list of %s: more than %d redirects", dl->repo, MAX_REDIRECTS);
      return;
    }
    c->counters.redirects++;
    snprintf(dl->list_url, sizeof dl->list_url, "%s", x->redirect);
    list_request(dl);
    return;
  }
  case MESH_HF_STATUS_RETRY:
    snprintf(why, sizeof why, "HTTP %ld", x->status);
    list_retry(dl, why);
    return;
  case MESH_HF_STATUS_FATAL:
    mesh_hf_status_message(x->status, c->token != NULL, x->error_code, dl->repo, dl->revision,
                           "file list", why, sizeof why);
    dl_fail(dl, mesh_hf_status_errno(x->status), "%s", why);
    return;
  case MESH_HF_STATUS_OK:
    break;
  }
  char err[MSG_MAX];
  int prc = mesh_hf_tree_parse_page(&dl->tree, dl->body, dl->body_len, &c->opt.tree_limits, err,
                                    sizeof err);
  if (prc != 0) {
    c->counters.list_errors++;
    dl_fail(dl, prc, "file list of %s@%s refused: %s", dl->repo, dl->revision, err);
    return;
  }
  dl->pages++;
  char next[MESH_HF_URL_MAX];
  int lrc = x->link_truncated ? -EMSGSIZE : -ENOENT;
  if (x->link[0] != '\0' && !x->link_truncated)
    lrc = mesh_hf_link_next(x->link, next, sizeof next);
  if (lrc == -ENOENT) {
    free(dl->body);
    dl->body = NULL;
    dl->body_len = dl->body_cap = 0;
    list_done(dl);
    return;
  }
  if (lrc != 0) {
    c->counters.list_errors++;
    dl_fail(dl, lrc, "file list of %s: bad Link header", dl->repo);
    return;
  }
  const char *w = NULL;
  if (!mesh_hf_redirect_allowed(c->endpoint, next, &w)) {
    c->counters.redirects_refused++;
    dl_fail(dl, -EPERM, "file list of %s: next page %s refused: %s", dl->repo, next, w);
    return;
  }
  if (dl->pages >= c->opt.max_list_pages) {
    c->counters.list_errors++;
    dl_fail(dl, -EMSGSIZE, "file list of %s: more than %u pages", dl->repo, c->opt.max_list_pages);
    return;
  }
  snprintf(dl->page_url, sizeof dl->page_url, "%s", next);
  snprintf(dl->list_url, sizeof dl->list_url, "%s", next);
  dl->attempt = 0;
  dl->redirects = 0;
  list_request(dl);
}

static void list_request(hf_dl *dl)
{
  mesh_hf_client *c = dl->c;
  hf_xfer_params p = params_for(c, dl->list_url, 0);
  c->counters.requests++;
  int rc = hf_xfer_start(&c->multi, &dl->lx, dl->list_url, &p);
  if (rc != 0)
    dl_fail(dl, rc, "file list of %s: cannot start request: %s", dl->repo, strerror(-rc));
}

static void dl_begin(hf_dl *dl)
{
  mesh_hf_client *c = dl->c;
  c->running++;
  dl_set_state(dl, DL_LISTING);
  int rc = mesh_hf_fs_open_model_dir(dl->model_dir, true, &dl->dirfd);
  if (rc != 0) {
    dl_fail(dl, rc, "model directory %s: %s", dl->model_dir, strerror(-rc));
    return;
  }
  dl->retry_ev = evtimer_new(c->base, on_list_retry, dl);
  if (dl->retry_ev == NULL) {
    dl_fail(dl, -ENOMEM, "out of memory");
    return;
  }
  dl->lx.owner = dl;
  dl->lx.on_headers = list_on_headers;
  dl->lx.on_body = list_on_body;
  dl->lx.on_done = list_on_done;
  rc = mesh_hf_url_tree(c->endpoint, dl->repo, dl->revision, dl->page_url, sizeof dl->page_url);
  if (rc != 0) {
    dl_fail(dl, rc, "file list URL of %s too long", dl->repo);
    return;
  }
  snprintf(dl->list_url, sizeof dl->list_url, "%s", dl->page_url);
  list_request(dl);
}

/* ---- the client --------------------------------------------------------- */

static void dl_free(hf_dl *dl)
{
  if (dl->dirfd >= 0)
    close(dl->dirfd);
  mesh_hf_tree_free(&dl->tree);
  free(dl->jobs);
  free(dl->body);
  free(dl->repo);
  free(dl->revision);
  free(dl->model_dir);
  free(dl);
}

/* Frees dead downloads and starts queued ones while there is room. */
static void on_kick(evutil_socket_t fd, short what, void *arg)
{
  mesh_hf_client *c = arg;
  for (hf_dl **pp = &c->dls; *pp != NULL;) {
    hf_dl *dl = *pp;
    if (dl->state == DL_DEAD) {
      *pp = dl->next;
      dl_free(dl);
    } else {
      pp = &dl->next;
    }
  }
  for (hf_dl *dl = c->dls; dl != NULL && c->running < c->opt.downloads_at_once; dl = dl->next)
    if (dl->state == DL_QUEUED)
      dl_begin(dl);
}

static void defaults(mesh_hf_options *o)
{
#define DEF(field, v)                                                                              \
  if (o->field == 0)                                                                               \
  o->field = (v)
  DEF(downloads_at_once, 2);
  DEF(files_at_once, 4);
  DEF(connect_timeout_ms, 10000);
  DEF(low_speed_bytes, 1);
  DEF(low_speed_time_ms, 30000);
  DEF(max_attempts, 6);
  DEF(backoff_base_ms, 500);
  DEF(backoff_cap_ms, 30000);
  DEF(max_retry_after_ms, 120000);
  DEF(progress_interval_ms, 1000);
  DEF(max_list_page_bytes, (size_t)16 << 20);
  DEF(max_list_pages, 1000);
#undef DEF
}

int mesh_hf_client_new(struct event_base *base, const mesh_hf_options *opt, mesh_hf_report_fn fn,
                       void *ctx, mesh_hf_client **out)
{
  mesh_hf_client *c = calloc(1, sizeof *c);
  if (c == NULL)
    return -ENOMEM;
  if (opt != NULL)
    c->opt = *opt;
  defaults(&c->opt);
  c->base = base;
  c->fn = fn;
  c->ctx = ctx;
  const char *ep = c->opt.endpoint != NULL && c->opt.endpoint[0] != '\0' ? c->opt.endpoint
                                                                         : MESH_HF_DEFAULT_ENDPOINT;
  size_t n = strlen(ep);
  while (n > 0 && ep[n - 1] == '/')
    n--;
  int rc = -ENOMEM;
  c->endpoint = strndup(ep, n);
  if (c->endpoint == NULL)
    goto fail_endpoint;
  if (strncmp(c->endpoint, "http://", 7) != 0 && strncmp(c->endpoint, "https://", 8) != 0) {
    rc = -EINVAL;
    goto fail_token;
  }
  if (c->opt.token != NULL && c->opt.token[0] != '\0') {
    if (strpbrk(c->opt.token, "\r\n") != NULL) {
      rc = -EINVAL;
      goto fail_token;
    }
    c->token = strdup(c->opt.token);
    if (c->token == NULL)
      goto fail_token;
  }
  c->opt.endpoint = c->endpoint;
  c->opt.token = c->token;
  if (c->opt.seed != 0)
    mesh_rng_seed(&c->rng, c->opt.seed);
  else
    mesh_rng_seed_os(&c->rng);
  c->scratch = malloc(PREHASH_SLICE);
  if (c->scratch == NULL)
    goto fail_scratch;
  c->kick = event_new(base, -1, 0, on_kick, c);
  if (c->kick == NULL)
    goto fail_kick;
  rc = hf_multi_init(&c->multi, base);
  if (rc != 0)
    goto fail_multi;
  *out = c;
  return 0;
fail_multi:
  event_free(c->kick);
fail_kick:
  free(c->scratch);
fail_scratch:
  free(c->token);
fail_token:
  free(c->endpoint);
fail_endpoint:
  free(c);
  return rc;
}

void mesh_hf_client_free(mesh_hf_client *c)
{
  if (c == NULL)
    return;
  for (hf_dl *dl = c->dls; dl != NULL; dl = dl->next)
    if (dl->state != DL_DEAD)
      dl_stop(dl);
  while (c->dls != NULL) {
    hf_dl *dl = c->dls;
    c->dls = dl->next;
    dl_free(dl);
  }
  hf_multi_close(&c->multi);
  event_free(c->kick);
  free(c->scratch);
  free(c->token);
  free(c->endpoint);
  free(c);
}

int mesh_hf_start(mesh_hf_client *c, const mesh_hf_request *req, uint64_t *id)
{
  const char *rev = req->revision != NULL ? req->revision : "main";
  if (req->repo == NULL || mesh_hf_repo_check(req->repo) != 0 || mesh_hf_revision_check(rev) != 0 ||
      req->model_dir == NULL || req->model_dir[0] == '\0')
    return -EINVAL;
  hf_dl *dl = calloc(1, sizeof *dl);
  if (dl == NULL)
    return -ENOMEM;
  dl->c = c;
  dl->dirfd = -1;
  dl->user = req->user;
  dl->max_bytes = req->max_bytes;
  dl->repo = strdup(req->repo);
  dl->revision = strdup(rev);
  dl->model_dir = strdup(req->model_dir);
  if (dl->repo == NULL || dl->revision == NULL || dl->model_dir == NULL) {
    dl_free(dl);
    return -ENOMEM;
  }
  mesh_hf_tree_init(&dl->tree);
  dl->id = ++c->next_id;
  dl->state = DL_QUEUED;
  /* Append: downloads start in the order asked for. */
  hf_dl **pp = &c->dls;
  while (*pp != NULL)
    pp = &(*pp)->next;
  *pp = dl;
  *id = dl->id;
  kick(c);
  return 0;
}

int mesh_hf_cancel(mesh_hf_client *c, uint64_t id)
{
  for (hf_dl *dl = c->dls; dl != NULL; dl = dl->next) {
    if (dl->id == id && dl->state != DL_DEAD) {
      LOG_INFO("hf", "download %" PRIu64 " %s@%s cancelled", dl->id, dl->repo, dl->revision);
      dl_stop(dl);
      return 0;
    }
  }
  return -ENOENT;
}

void mesh_hf_get_counters(const mesh_hf_client *c, mesh_hf_counters *out)
{
  *out = c->counters;
}
