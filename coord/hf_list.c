/*
 * The file list of a download: pages followed by Link rel="next", retried
 * with backoff, parsed strictly (hf_tree.h), then the LISTED report and the
 * size guard before any file byte is fetched.
 *
 * Threads: the requests and reports run on the loop. Opening (creating) the
 * model directory and the survey of what is already on disk (a stat per file,
 * HF_SURVEY_SLICE files per item, then statvfs) are work items on the pool
 * (dl->dop, one at a time); while one is submitted the item and the tree it
 * reads are not changed by the loop, and the loop reads its results in done.
 */
#include "coord/hf_internal.h"
#include "coord/hf_manifest.h"
#include "coord/hf_fs.h"
#include "src/base/platform.h"
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
#include <stddef.h>
#include <unistd.h>

static void list_request(hf_dl *dl);

/* Bytes already on disk for f: the whole file if in place, else its partial. */
static uint64_t bytes_present(int dirfd, const mesh_hf_file *f)
{
  int pfd;
  const char *leaf;
  if (mesh_hf_fs_open_parent(dirfd, f->path, false, &pfd, &leaf) != 0)
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

static void dop_work(mesh_work *w);
static void survey_done(mesh_work *w);

/* Submits the survey of files [from, from + HF_SURVEY_SLICE). */
static void survey_next(hf_dl *dl, size_t from)
{
  hf_dop *o = &dl->dop;
  o->dl = dl;
  o->kind = HF_DOP_SURVEY;
  o->dirfd = dl->dirfd;
  o->from = from;
  o->to = dl->tree.len - from > HF_SURVEY_SLICE ? from + HF_SURVEY_SLICE : dl->tree.len;
  o->last = o->to == dl->tree.len;
  o->dir_missing = dl->dir_missing;
  o->err = 0;
  o->present = o->avail = 0;
  mesh_pool_submit(dl->c->pool, &o->w, NULL, dop_work, survey_done);
}

/* The list is complete: survey the model directory, then report it. */
static void list_done(hf_dl *dl)
{
  mesh_hf_client *c = dl->c;
  char err[HF_MSG_MAX];
  int rc = mesh_hf_tree_finish(&dl->tree, err, sizeof err);
  if (rc != 0) {
    c->counters.list_errors++;
    hf_dl_fail(dl, rc, "file list of %s@%s refused: %s", dl->repo, dl->revision, err);
    return;
  }
  dl->jobs = calloc(dl->tree.len != 0 ? dl->tree.len : 1, sizeof *dl->jobs);
  if (dl->jobs == NULL) {
    hf_dl_fail(dl, -ENOMEM, "out of memory for %zu files", dl->tree.len);
    return;
  }
  for (size_t i = 0; i < dl->tree.len; i++) {
    hf_job_init(&dl->jobs[i], dl, &dl->tree.files[i]);
  }
  dl->present = 0;
  survey_next(dl, 0);
}

/* Reports LISTED, applies the size guard and starts fetching. */
static void list_report(hf_dl *dl, uint64_t avail)
{
  mesh_hf_client *c = dl->c;
  uint64_t present = dl->present;
  mesh_hf_report r = {.kind = MESH_HF_REPORT_LISTED,
                      .id = dl->id,
                      .user = dl->user,
                      .progress = hf_progress_of(dl),
                      .free_bytes = avail,
                      .present_bytes = present};
  c->fn(&r, c->ctx);
  if (dl->state == DL_DEAD)
    return; /* cancelled by the callback: not a byte fetched */
  if (dl->list_only) {
    hf_dl_stop(dl); /* the space check is answered */
    return;
  }
  uint64_t total = dl->tree.total_bytes;
  if (dl->max_bytes != 0 && total > dl->max_bytes) {
    hf_dl_fail(dl, -EFBIG, "model %s is %" PRIu64 " bytes, over the limit of %" PRIu64 " bytes",
               dl->repo, total, dl->max_bytes);
    return;
  }
  uint64_t need = total - present;
  if (!c->opt.skip_space_check && need > avail) {
    hf_dl_fail(dl, -ENOSPC,
               "model %s needs %" PRIu64 " more bytes (%" PRIu64 " in all) but only %" PRIu64
               " bytes are free in %s",
               dl->repo, need, total, avail, dl->model_dir);
    return;
  }
  dl->progress_ev = event_new(c->base, -1, EV_PERSIST, hf_on_progress, dl);
  if (dl->progress_ev == NULL) {
    hf_dl_fail(dl, -ENOMEM, "out of memory");
    return;
  }
  struct timeval tv = {.tv_sec = (time_t)(c->opt.progress_interval_ms / 1000),
                       .tv_usec = (suseconds_t)(c->opt.progress_interval_ms % 1000) * 1000};
  evtimer_add(dl->progress_ev, &tv);
  dl->last_ms = mesh_clock_now_ms();
  hf_dl_set_state(dl, DL_FETCHING);
  hf_fill_jobs(dl);
}

static void survey_done(mesh_work *w)
{
  hf_dop *o = (hf_dop *)((char *)w - offsetof(hf_dop, w));
  hf_dl *dl = o->dl;
  if (dl->state == DL_DEAD) {
    hf_kick(dl->c);
    return;
  }
  if (o->err != 0) {
    hf_dl_fail(dl, o->err, "%s: statvfs: %s", dl->model_dir, strerror(-o->err));
    return;
  }
  dl->present += o->present;
  if (!o->last) {
    survey_next(dl, o->to);
    return;
  }
  list_report(dl, o->avail);
}

/* The Hub did not answer the list after every retry (a refusal, 401, 403
 * or 404, is an answer and never comes here): a member's signed list when
 * the sources allow it, else the download fails. */
static void list_unreachable(hf_dl *dl, const char *why)
{
  mesh_hf_client *c = dl->c;
  char refusal[HF_MSG_MAX / 2] = "";
  /* 429 is the Hub answering (too many requests), not the Hub gone. */
  if (c->src_ops != NULL && c->src_ops->list != NULL && dl->lx.status != 429) {
    mesh_hf_source_req req = {
        .dl_id = dl->id, .user = dl->user, .repo = dl->repo, .revision = dl->revision};
    if (c->src_ops->list(c->src_ctx, &req, refusal, sizeof refusal) == 0) {
      LOG_INFO("hf", "file list of %s@%s: the Hub cannot be reached (%s): asking a member",
               dl->repo, dl->revision, why);
      dl->list_wait = true;
      return;
    }
  }
  /* The refusal comes first: a message is cut at the entry's error bound,
   * and what the operator can do about it must not be what is cut. */
  hf_dl_fail(dl, -EIO,
             "file list of %s@%s: the Hub cannot be reached%s%s; gave up after %u attempts: %s",
             dl->repo, dl->revision, refusal[0] != '\0' ? "; " : "", refusal, dl->attempt, why);
}

int mesh_hf_source_list_done(mesh_hf_client *c, uint64_t id, int err, mesh_hf_tree *t,
                             const char *label, const char *why)
{
  hf_dl *dl = c->dls;
  while (dl != NULL && dl->id != id)
    dl = dl->next;
  if (dl == NULL || dl->state != DL_LISTING || !dl->list_wait)
    return -ENOENT;
  dl->list_wait = false;
  if (err != 0) {
    hf_dl_fail(dl, err, "file list of %s@%s: the Hub cannot be reached and no member gave one: %s",
               dl->repo, dl->revision, why != NULL ? why : strerror(-err));
    return 0;
  }
  /* Pages the Hub gave before it went away are dropped: one list, whole. */
  mesh_hf_tree_free(&dl->tree);
  dl->tree = *t;
  mesh_hf_tree_init(t);
  LOG_INFO("hf", "file list of %s@%s: %zu files from member %s", dl->repo, dl->revision,
           dl->tree.len, label);
  list_done(dl);
  return 0;
}

static void list_retry(hf_dl *dl, const char *why)
{
  mesh_hf_client *c = dl->c;
  dl->attempt++;
  if (dl->attempt >= c->opt.max_attempts) {
    list_unreachable(dl, why);
    return;
  }
  c->counters.retries++;
  uint64_t ms = hf_retry_delay(c, dl->attempt - 1, &dl->lx);
  MESH_LOG_RL(MESH_LOG_INFO, "hf", "file list of %s: %s; retry %u in %" PRIu64 " ms", dl->repo, why,
              dl->attempt, ms);
  snprintf(dl->list_url, sizeof dl->list_url, "%s", dl->page_url);
  hf_arm(dl->retry_ev, ms);
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
  char why[HF_MSG_MAX];
  if (dl->body_over) {
    c->counters.list_errors++;
    hf_dl_fail(dl, -EMSGSIZE, "file list of %s@%s: a page is larger than %zu bytes", dl->repo,
               dl->revision, c->opt.max_list_page_bytes);
    return;
  }
  char label[HF_MSG_MAX / 2];
  snprintf(label, sizeof label, "file list of %s", dl->repo);
  int fail = 0;
  switch (hf_judge(dl, x, rc, label, "file list", &dl->redirects, dl->list_url, sizeof dl->list_url,
                   &fail, why, sizeof why)) {
  case HF_NEXT_RETRY:
    list_retry(dl, why);
    return;
  case HF_NEXT_FOLLOW:
    list_request(dl);
    return;
  case HF_NEXT_FAIL:
    hf_dl_fail(dl, fail, "%s", why);
    return;
  case HF_NEXT_OK:
    break;
  }
  char err[HF_MSG_MAX];
  int prc = mesh_hf_tree_parse_page(&dl->tree, dl->body, dl->body_len, &c->opt.tree_limits, err,
                                    sizeof err);
  if (prc != 0) {
    c->counters.list_errors++;
    hf_dl_fail(dl, prc, "file list of %s@%s refused: %s", dl->repo, dl->revision, err);
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
    hf_dl_fail(dl, lrc, "file list of %s: bad Link header", dl->repo);
    return;
  }
  const char *w = NULL;
  if (!mesh_hf_redirect_allowed(c->endpoint, next, &w)) {
    c->counters.redirects_refused++;
    hf_dl_fail(dl, -EPERM, "file list of %s: next page %s refused: %s", dl->repo, next, w);
    return;
  }
  if (dl->pages >= c->opt.max_list_pages) {
    c->counters.list_errors++;
    hf_dl_fail(dl, -EMSGSIZE, "file list of %s: more than %u pages", dl->repo,
               c->opt.max_list_pages);
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
  hf_xfer_params p = hf_params_for(c, dl->list_url, 0);
  c->counters.requests++;
  int rc = hf_xfer_start(&c->multi, &dl->lx, dl->list_url, &p);
  if (rc != 0)
    hf_dl_fail(dl, rc, "file list of %s: cannot start request: %s", dl->repo, strerror(-rc));
}

/* Writes the manifest of o's download into its model directory (temporary
 * name, sync unless told not to, rename). A worker: the tree is left alone
 * by the loop while the item is submitted. */
static int manifest_write(hf_dop *o)
{
  const hf_dl *dl = o->dl;
  char *text = NULL;
  size_t len = 0;
  int rc = mesh_hf_manifest_encode(&dl->tree, &text, &len);
  if (rc != 0)
    return rc;
  static const char tmp[] = MESH_HF_MANIFEST ".tmp";
  int fd = openat(o->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    rc = -errno;
    free(text);
    return rc;
  }
  size_t off = 0;
  while (off < len && rc == 0) {
    ssize_t n = write(fd, text + off, len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      rc = n < 0 ? -errno : -EIO;
    else
      off += (size_t)n;
  }
  free(text);
  if (rc == 0 && o->sync)
    rc = mesh_fdatasync(fd);
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc == 0 && renameat(o->dirfd, tmp, o->dirfd, MESH_HF_MANIFEST) != 0)
    rc = -errno;
  if (rc != 0)
    unlinkat(o->dirfd, tmp, 0);
  return rc;
}

static void manifest_done(mesh_work *w)
{
  hf_dop *o = (hf_dop *)((char *)w - offsetof(hf_dop, w));
  hf_dl *dl = o->dl;
  if (dl->state == DL_DEAD) {
    hf_kick(dl->c);
    return;
  }
  if (o->err != 0) {
    /* The files are in place and verified: the download is complete, but
     * without its manifest the node serves none of them to members. */
    dl->c->counters.io_errors++;
    LOG_WARN("hf", "%s@%s: cannot write %s: %s (its files will not be served to members)", dl->repo,
             dl->revision, MESH_HF_MANIFEST, strerror(-o->err));
  }
  hf_dl_complete(dl);
}

void hf_dl_finish(hf_dl *dl)
{
  hf_dop *o = &dl->dop;
  dl->finishing = true;
  o->dl = dl;
  o->kind = HF_DOP_MANIFEST;
  o->dirfd = dl->dirfd;
  o->sync = !dl->c->opt.no_sync;
  o->err = 0;
  mesh_pool_submit(dl->c->pool, &o->w, NULL, dop_work, manifest_done);
}

/* Work function of dl->dop (a worker thread: it touches the item, and reads
 * the tree, which the loop leaves alone while the item is submitted). */
static void dop_work(mesh_work *w)
{
  hf_dop *o = (hf_dop *)((char *)w - offsetof(hf_dop, w));
  if (o->kind == HF_DOP_SURVEY) {
    const hf_dl *dl = o->dl;
    for (size_t i = o->from; i < o->to && !o->dir_missing; i++)
      o->present += bytes_present(o->dirfd, &dl->tree.files[i]);
    struct statvfs vfs;
    if (o->last) {
      if (fstatvfs(o->dirfd, &vfs) != 0)
        o->err = -errno;
      else
        o->avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    }
    return;
  }
  if (o->kind == HF_DOP_MANIFEST) {
    o->err = manifest_write(o);
    return;
  }
  o->dirfd = -1;
  o->dir_missing = false;
  o->err = mesh_hf_fs_open_model_dir(o->path, o->create, o->mark, o->adopt, &o->dirfd);
  if (o->err == -ENOENT && o->list_only) {
    /* A space check creates nothing: measure the parent's file system. */
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", o->path);
    char *slash = strrchr(parent, '/');
    if (slash == parent)
      slash[1] = '\0';
    else if (slash != NULL)
      *slash = '\0';
    else
      snprintf(parent, sizeof parent, ".");
    o->err = mesh_hf_fs_open_model_dir(parent, false, NULL, false, &o->dirfd);
    o->dir_missing = true;
  }
}

static void opendir_done(mesh_work *w)
{
  hf_dop *o = (hf_dop *)((char *)w - offsetof(hf_dop, w));
  hf_dl *dl = o->dl;
  mesh_hf_client *c = dl->c;
  /* The descriptor is the download's from here on, even a dead one's. */
  dl->dirfd = o->dirfd;
  dl->dir_missing = o->dir_missing;
  if (dl->state == DL_DEAD) {
    hf_kick(c);
    return;
  }
  int rc = o->err;
  if (rc != 0) {
    hf_dl_fail(dl, rc, "model directory %s: %s", dl->model_dir, strerror(-rc));
    return;
  }
  dl->retry_ev = evtimer_new(c->base, on_list_retry, dl);
  if (dl->retry_ev == NULL) {
    hf_dl_fail(dl, -ENOMEM, "out of memory");
    return;
  }
  dl->lx.owner = dl;
  dl->lx.on_headers = list_on_headers;
  dl->lx.on_body = list_on_body;
  dl->lx.on_done = list_on_done;
  rc = mesh_hf_url_tree(c->endpoint, dl->repo, dl->revision, dl->page_url, sizeof dl->page_url);
  if (rc != 0) {
    hf_dl_fail(dl, rc, "file list URL of %s too long", dl->repo);
    return;
  }
  snprintf(dl->list_url, sizeof dl->list_url, "%s", dl->page_url);
  list_request(dl);
}

void hf_dl_begin(hf_dl *dl)
{
  mesh_hf_client *c = dl->c;
  c->running++;
  hf_dl_set_state(dl, DL_LISTING);
  hf_dop *o = &dl->dop;
  o->dl = dl;
  o->kind = HF_DOP_OPENDIR;
  o->path = dl->model_dir;
  o->create = !dl->list_only;
  o->mark = dl->mark;
  o->adopt = dl->adopt;
  o->list_only = dl->list_only;
  mesh_pool_submit(c->pool, &o->w, NULL, dop_work, opendir_done);
}
