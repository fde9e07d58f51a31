/*
 * The Hub client: its lifecycle, download states, reports, progress and the
 * kick that starts queued downloads and frees finished ones.
 */
#include "coord/hf_internal.h"
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

static const char *dl_state_name[] = {"queued", "listing", "fetching", "dead"};

void hf_dl_set_state(hf_dl *dl, dl_state s)
{
  LOG_DEBUG("hf", "download %" PRIu64 " %s@%s: %s -> %s", dl->id, dl->repo, dl->revision,
            dl_state_name[dl->state], dl_state_name[s]);
  dl->state = s;
}

void hf_kick(mesh_hf_client *c)
{
  event_active(c->kick, 0, 0);
}

mesh_hf_progress hf_progress_of(const hf_dl *dl)
{
  mesh_hf_progress p = {
      .done_bytes = dl->done_bytes,
      .session_bytes = dl->net_bytes,
      .total_bytes = dl->tree.total_bytes,
      .files_done = dl->files_done,
      .files_total = (uint32_t)dl->tree.len,
      .eta_ms = UINT64_MAX,
      .hub_bytes = dl->hub_bytes,
      .peer_bytes = dl->peer_bytes,
  };
  return p;
}

void hf_emit(hf_dl *dl, mesh_hf_report_kind kind, const mesh_hf_progress *p, int err,
             const char *msg)
{
  mesh_hf_report r = {
      .kind = kind, .id = dl->id, .user = dl->user, .progress = *p, .err = err, .message = msg};
  dl->c->fn(&r, dl->c->ctx);
}

bool hf_dl_idle(const hf_dl *dl)
{
  if (dl->dop.w.busy)
    return false;
  for (size_t i = 0; i < dl->tree.len && dl->jobs != NULL; i++)
    if (!hf_job_idle(&dl->jobs[i]))
      return false;
  return true;
}

/* Stops every request and timer of dl and marks it dead (freed by kick). */
void hf_dl_stop(hf_dl *dl)
{
  mesh_hf_client *c = dl->c;
  hf_xfer_stop(&dl->lx);
  if (dl->retry_ev != NULL)
    event_free(dl->retry_ev);
  if (dl->progress_ev != NULL)
    event_free(dl->progress_ev);
  dl->retry_ev = dl->progress_ev = NULL;
  for (size_t i = 0; i < dl->tree.len && dl->jobs != NULL; i++)
    hf_job_stop(&dl->jobs[i]);
  if (c->src_ops != NULL && dl->state != DL_DEAD)
    c->src_ops->finished(c->src_ctx, dl->id);
  if (dl->state == DL_LISTING || dl->state == DL_FETCHING)
    c->running--;
  hf_dl_set_state(dl, DL_DEAD);
  hf_kick(c);
}

void hf_dl_fail(hf_dl *dl, int err, const char *fmt, ...)
{
  char msg[HF_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  mesh_hf_progress p = hf_progress_of(dl);
  dl->c->counters.failed++;
  LOG_INFO("hf", "download %" PRIu64 " %s@%s failed: %s", dl->id, dl->repo, dl->revision, msg);
  hf_dl_stop(dl);
  hf_emit(dl, MESH_HF_REPORT_FAILED, &p, err, msg);
}

hf_next hf_judge(hf_dl *dl, const hf_xfer *x, CURLcode rc, const char *label, const char *what,
                 unsigned *redirects, char *url, size_t url_cap, int *err, char *why,
                 size_t why_cap)
{
  mesh_hf_client *c = dl->c;
  if (rc != CURLE_OK) {
    snprintf(why, why_cap, "%s", x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(rc));
    return HF_NEXT_RETRY;
  }
  switch (mesh_hf_status_classify(x->status)) {
  case MESH_HF_STATUS_REDIRECT: {
    const char *w = NULL;
    if (x->redirect[0] == '\0' || !mesh_hf_redirect_allowed(c->endpoint, x->redirect, &w)) {
      c->counters.redirects_refused++;
      *err = -EPERM;
      snprintf(why, why_cap, "%s: redirect to %s refused: %s", label,
               x->redirect[0] != '\0' ? x->redirect : "(no Location)", w != NULL ? w : "no target");
      return HF_NEXT_FAIL;
    }
    if (++*redirects > HF_MAX_REDIRECTS) {
      *err = -ELOOP;
      snprintf(why, why_cap, "%s: more than %d redirects", label, HF_MAX_REDIRECTS);
      return HF_NEXT_FAIL;
    }
    c->counters.redirects++;
    snprintf(url, url_cap, "%s", x->redirect);
    return HF_NEXT_FOLLOW;
  }
  case MESH_HF_STATUS_RETRY:
    snprintf(why, why_cap, "HTTP %ld", x->status);
    return HF_NEXT_RETRY;
  case MESH_HF_STATUS_FATAL:
    mesh_hf_status_message(x->status, c->token != NULL, x->error_code, dl->repo, dl->revision, what,
                           why, why_cap);
    *err = mesh_hf_status_errno(x->status);
    return HF_NEXT_FAIL;
  case MESH_HF_STATUS_OK:
    break;
  }
  return HF_NEXT_OK;
}

void hf_dl_complete(hf_dl *dl)
{
  mesh_hf_progress p = hf_progress_of(dl);
  dl->c->counters.completed++;
  mesh_time_ms now = mesh_clock_now_ms();
  uint64_t took = now > dl->started_ms ? now - dl->started_ms : 0;
  if (dl->net_bytes > 0) {
    /* The transfer itself: from the first byte received to the last. */
    uint64_t span = dl->last_byte_ms > dl->first_byte_ms ? dl->last_byte_ms - dl->first_byte_ms : 0;
    LOG_INFO("hf",
             "download %" PRIu64 " %s@%s completed: %u files, %" PRIu64 " bytes in %" PRIu64
             " ms; %" PRIu64 " bytes received (%" PRIu64 " from peers) in %" PRIu64
             " ms from the first to the last",
             dl->id, dl->repo, dl->revision, p.files_total, p.total_bytes, took, dl->net_bytes,
             dl->peer_bytes, span);
  } else {
    LOG_INFO("hf",
             "download %" PRIu64 " %s@%s completed: %u files, %" PRIu64 " bytes in %" PRIu64
             " ms; nothing to receive",
             dl->id, dl->repo, dl->revision, p.files_total, p.total_bytes, took);
  }
  hf_dl_stop(dl);
  hf_emit(dl, MESH_HF_REPORT_COMPLETED, &p, 0, NULL);
}

/* The bearer token, for URLs of the endpoint's own origin only. */
static const char *token_for(mesh_hf_client *c, const char *url)
{
  if (c->token == NULL || !mesh_hf_same_origin(c->endpoint, url))
    return NULL;
  return c->token;
}

hf_xfer_params hf_params_for(mesh_hf_client *c, const char *url, uint64_t range_from)
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

uint64_t hf_retry_delay(mesh_hf_client *c, unsigned attempt, const hf_xfer *x)
{
  return mesh_hf_retry_delay_ms(attempt, retry_after_ms(x), c->opt.backoff_base_ms,
                                c->opt.backoff_cap_ms, c->opt.max_retry_after_ms, &c->rng);
}

void hf_arm(struct event *ev, uint64_t ms)
{
  struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
  evtimer_add(ev, &tv);
}

/* ---- progress ----------------------------------------------------------- */

void hf_on_progress(evutil_socket_t fd, short what, void *arg)
{
  hf_dl *dl = arg;
  mesh_time_ms now = mesh_clock_now_ms();
  if (dl->net_bytes == dl->last_net && dl->done_bytes == dl->last_done)
    return;
  mesh_hf_progress p = hf_progress_of(dl);
  uint64_t dt = now > dl->last_ms ? now - dl->last_ms : 1;
  p.speed_bps = (dl->net_bytes - dl->last_net) * 1000 / dt;
  if (p.speed_bps > 0 && p.total_bytes >= p.done_bytes)
    p.eta_ms = (p.total_bytes - p.done_bytes) * 1000 / p.speed_bps;
  dl->last_net = dl->net_bytes;
  dl->last_done = dl->done_bytes;
  dl->last_ms = now;
  hf_emit(dl, MESH_HF_REPORT_PROGRESS, &p, 0, NULL);
}

/* ---- the client --------------------------------------------------------- */

/* Only when hf_dl_idle: no item of dl is on the pool. */
static void dl_free(hf_dl *dl)
{
  for (size_t i = 0; i < dl->tree.len && dl->jobs != NULL; i++)
    hf_job_free(&dl->jobs[i]);
  if (dl->dirfd >= 0)
    close(dl->dirfd);
  mesh_hf_tree_free(&dl->tree);
  free(dl->jobs);
  free(dl->body);
  free(dl->repo);
  free(dl->revision);
  free(dl->model_dir);
  free(dl->mark);
  free(dl);
}

/* Frees dead downloads whose items are all done (the done function of the
 * last one kicks again) and starts queued ones while there is room. */
static void on_kick(evutil_socket_t fd, short what, void *arg)
{
  mesh_hf_client *c = arg;
  for (hf_dl **pp = &c->dls; *pp != NULL;) {
    hf_dl *dl = *pp;
    if (dl->state == DL_DEAD && hf_dl_idle(dl)) {
      *pp = dl->next;
      dl_free(dl);
    } else {
      pp = &dl->next;
    }
  }
  for (hf_dl *dl = c->dls; dl != NULL && c->running < c->opt.downloads_at_once; dl = dl->next)
    if (dl->state == DL_QUEUED)
      hf_dl_begin(dl);
}

/* The sync hook of a client nobody hooked. */
static void no_before_sync(void *arg)
{
  (void)arg;
}

static void defaults(mesh_hf_options *o)
{
  if (o->before_sync == NULL)
    o->before_sync = no_before_sync;
#define DEF(field, v)                                                                              \
  if (o->field == 0)                                                                               \
  o->field = (v)
  DEF(downloads_at_once, 2);
  DEF(files_at_once, 4);
  DEF(range_threshold, (uint64_t)64 << 20);
  DEF(range_bytes, (uint64_t)16 << 20);
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

int mesh_hf_client_new(struct event_base *base, mesh_pool *pool, const mesh_hf_options *opt,
                       mesh_hf_report_fn fn, void *ctx, mesh_hf_client **out)
{
  if (pool == NULL)
    return -EINVAL;
  mesh_hf_client *c = calloc(1, sizeof *c);
  if (c == NULL)
    return -ENOMEM;
  if (opt != NULL)
    c->opt = *opt;
  defaults(&c->opt);
  c->base = base;
  c->pool = pool;
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
      hf_dl_stop(dl);
  /* The stopped downloads' items (buffered writes, CLOSE) run to the end;
   * their done functions see DEAD downloads and only count down. */
  mesh_pool_flush(c->pool);
  while (c->dls != NULL) {
    hf_dl *dl = c->dls;
    c->dls = dl->next;
    dl_free(dl);
  }
  hf_multi_close(&c->multi);
  event_free(c->kick);
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
  dl->started_ms = mesh_clock_now_ms();
  dl->user = req->user;
  dl->max_bytes = req->max_bytes;
  dl->list_only = req->list_only;
  dl->repo = strdup(req->repo);
  dl->revision = strdup(rev);
  dl->model_dir = strdup(req->model_dir);
  dl->adopt = req->adopt;
  if (req->owner_mark != NULL && (dl->mark = strdup(req->owner_mark)) == NULL) {
    dl_free(dl);
    return -ENOMEM;
  }
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
  hf_kick(c);
  return 0;
}

int mesh_hf_cancel(mesh_hf_client *c, uint64_t id)
{
  for (hf_dl *dl = c->dls; dl != NULL; dl = dl->next) {
    if (dl->id == id && dl->state != DL_DEAD) {
      LOG_INFO("hf", "download %" PRIu64 " %s@%s cancelled", dl->id, dl->repo, dl->revision);
      hf_dl_stop(dl);
      return 0;
    }
  }
  return -ENOENT;
}

void mesh_hf_get_counters(const mesh_hf_client *c, mesh_hf_counters *out)
{
  *out = c->counters;
}

void mesh_hf_set_sources(mesh_hf_client *c, const mesh_hf_source_ops *ops, void *ctx)
{
  c->src_ops = ops;
  c->src_ctx = ctx;
}

int mesh_hf_sources_of(const mesh_hf_client *c, uint64_t id, char *buf, size_t cap)
{
  for (const hf_dl *dl = c->dls; dl != NULL; dl = dl->next) {
    /* A download being reported COMPLETED or FAILED is DEAD already, and
     * still here until the kick frees it: its sources are still asked for. */
    if (dl->id != id)
      continue;
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < dl->n_sources && off < cap; i++) {
      int n = snprintf(buf + off, cap - off, "%s%s", i > 0 ? "," : "", dl->sources[i]);
      if (n < 0 || (size_t)n >= cap - off) {
        buf[off] = '\0';
        break;
      }
      off += (size_t)n;
    }
    return 0;
  }
  return -ENOENT;
}
