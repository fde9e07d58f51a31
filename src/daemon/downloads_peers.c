/*
 * Peer sources of the download client: file bytes asked of members on the
 * bulk channel, with credit-based flow control, instead of the Hub; and the
 * record of where each own entry's bytes came from. Loop thread only.
 *
 * Who is asked is the coordinator core's rule (mesh_coord_pick_source:
 * members alive in the view at their current epoch whose document says the
 * revision is completed, least loaded first, at most PEER_PER_SOURCE_MAX
 * transfers each). A source that fails a download (a refusal, an error, a
 * stall, leaving the view, bytes out of order, or bytes whose file failed
 * its hash) is left out of that download from then on; the client goes on
 * from where the file is, with another source or the Hub.
 *
 * Flow control: a request carries PEER_WINDOW bytes of credit; as the job's
 * write buffers take chunks, more credit is granted every PEER_CREDIT_STEP.
 * A chunk the job has no room for is held (bounded by the window: the
 * source may not send past its credit, and a chunk past it is a protocol
 * error) until the job resumes the transfer.
 */
#include "src/daemon/downloads_internal.h"

#include "src/base/err.h"
#include "src/base/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- where bytes came from ------------------------------------------------ */

static prov_rec *prov_get(mesh_downloads *d, const char *model, const char *rev, bool make)
{
  prov_rec *oldest = NULL;
  for (size_t i = 0; i < PROV_MAX; i++) {
    prov_rec *r = &d->prov[i];
    if (r->used && strcmp(r->model_id, model) == 0 && strcmp(r->revision, rev) == 0)
      return r;
    if (oldest == NULL || !r->used || (oldest->used && r->at < oldest->at))
      oldest = r;
  }
  if (!make)
    return NULL;
  memset(oldest, 0, sizeof *oldest);
  oldest->used = true;
  snprintf(oldest->model_id, sizeof oldest->model_id, "%s", model);
  snprintf(oldest->revision, sizeof oldest->revision, "%s", rev);
  return oldest;
}

void dl_prov_update(mesh_downloads *d, const char *model, const char *rev,
                    const mesh_hf_progress *p, uint64_t hf_id, bool final)
{
  prov_rec *r = prov_get(d, model, rev, true);
  r->hub_bytes = p->hub_bytes;
  r->peer_bytes = p->peer_bytes;
  r->speed_bps = final ? 0 : p->speed_bps;
  r->at = mesh_loop_now(d->loop);
  if (mesh_hf_sources_of(d->hf, hf_id, r->sources, sizeof r->sources) != 0)
    r->sources[0] = '\0';
}

int mesh_downloads_provenance(const mesh_downloads *d, const char *model, const char *rev,
                              mesh_downloads_prov *out)
{
  prov_rec *r = prov_get((mesh_downloads *)d, model, rev, false);
  if (r == NULL)
    return -ENOENT;
  out->hub_bytes = r->hub_bytes;
  out->peer_bytes = r->peer_bytes;
  out->speed_bps = r->speed_bps;
  out->sources = r->sources;
  return 0;
}

/* ---- sources of one download ---------------------------------------------- */

static peer_dl *pdl_get(mesh_downloads *d, uint64_t dl_id, bool make)
{
  peer_dl *free_slot = NULL;
  for (size_t i = 0; i < PEER_DLS_MAX; i++) {
    if (d->peer_dls[i].used && d->peer_dls[i].dl_id == dl_id)
      return &d->peer_dls[i];
    if (!d->peer_dls[i].used && free_slot == NULL)
      free_slot = &d->peer_dls[i];
  }
  if (!make || free_slot == NULL)
    return NULL;
  memset(free_slot, 0, sizeof *free_slot);
  free_slot->used = true;
  free_slot->dl_id = dl_id;
  return free_slot;
}

static mesh_coord_source_use *pdl_use(peer_dl *p, const mesh_peer_id *peer, size_t *idx)
{
  for (size_t i = 0; i < p->n_use; i++)
    if (memcmp(&p->use[i].peer, peer, sizeof *peer) == 0) {
      *idx = i;
      return &p->use[i];
    }
  if (p->n_use == PEER_USE_MAX)
    return NULL;
  *idx = p->n_use;
  mesh_coord_source_use *u = &p->use[p->n_use++];
  memset(u, 0, sizeof *u);
  u->peer = *peer;
  p->busy_until[*idx] = 0;
  return u;
}

void dl_source_failed(mesh_downloads *d, uint64_t dl_id, const mesh_peer_id *peer)
{
  peer_dl *p = pdl_get(d, dl_id, true);
  size_t idx;
  mesh_coord_source_use *u = p != NULL ? pdl_use(p, peer, &idx) : NULL;
  if (u != NULL)
    u->failed = true;
}

int dl_pick_source(mesh_downloads *d, uint64_t dl_id, const char *model, const char *rev,
                   mesh_peer_id *out)
{
  peer_dl *p = pdl_get(d, dl_id, true);
  if (p == NULL)
    return -ENOENT;
  snprintf(p->model_id, sizeof p->model_id, "%s", model);
  snprintf(p->revision, sizeof p->revision, "%s", rev);
  int rc = mesh_coord_pick_source(d->coord, model, rev, p->use, p->n_use, UINT32_MAX, out);
  size_t idx;
  if (rc == 0 && pdl_use(p, out, &idx) == NULL)
    return -ENOENT; /* more sources than remembered */
  return rc;
}

/* ---- transfers ------------------------------------------------------------ */

static peer_xfer *xfer_find(mesh_downloads *d, const mesh_peer_id *peer, uint64_t id)
{
  for (size_t i = 0; i < PEER_XFERS_MAX; i++) {
    peer_xfer *x = &d->xfers[i];
    if (x->used && x->id == id && memcmp(&x->peer, peer, sizeof *peer) == 0)
      return x;
  }
  return NULL;
}

bool dl_peers_running(const mesh_downloads *d)
{
  for (size_t i = 0; i < PEER_XFERS_MAX; i++)
    if (d->xfers[i].used)
      return true;
  return false;
}

static void xfer_free(peer_xfer *x)
{
  while (x->held != NULL) {
    peer_chunk *c = x->held;
    x->held = c->next;
    free(c);
  }
  memset(x, 0, sizeof *x);
}

/* Tells the source to stop (best effort: a gone connection ends it anyway). */
static void xfer_cancel_wire(mesh_downloads *d, peer_xfer *x)
{
  mesh_bulk_msg m = {.kind = MESH_BULK_CANCEL, .id = x->id};
  (void)dl_bulk_send(d, &x->peer, &m);
}

/* The transfer failed: the source is left out of this download, the job
 * goes on elsewhere from where its file is. */
static void xfer_fail(mesh_downloads *d, peer_xfer *x, int err, const char *why)
{
  char peer[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(&x->peer, peer, sizeof peer);
  MESH_LOG_RL(MESH_LOG_INFO, "peers", "%s@%s: source %s dropped for this download: %s", x->model_id,
              x->revision, peer, why);
  d->peers.source_failures++;
  xfer_cancel_wire(d, x);
  dl_source_failed(d, x->dl_id, &x->peer);
  void *job = x->job;
  xfer_free(x);
  mesh_hf_source_end(d->hf, job, err, why);
}

/* Grants the source more credit once enough was taken. */
static void xfer_grant(mesh_downloads *d, peer_xfer *x)
{
  if (x->owed < PEER_CREDIT_STEP && x->granted + x->owed < x->end)
    return;
  if (x->granted >= x->end || x->owed == 0)
    return;
  uint64_t more = x->owed;
  if (more > x->end - x->granted)
    more = x->end - x->granted;
  mesh_bulk_msg m = {.kind = MESH_BULK_CREDIT, .id = x->id, .credit = more};
  if (dl_bulk_send(d, &x->peer, &m) == 0) {
    x->granted += more;
    x->owed = 0;
  }
  /* A credit the queue refused is sent with the next chunk taken. */
}

/* Hands held chunks to the job, in order, while it takes them. Returns
 * false when the transfer was freed (finished or failed). */
static bool xfer_feed_held(mesh_downloads *d, peer_xfer *x)
{
  while (x->held != NULL) {
    peer_chunk *c = x->held;
    int rc = mesh_hf_source_data(d->hf, x->job, c->off, c->data, c->len);
    if (rc == -EAGAIN) {
      x->paused = true;
      return true;
    }
    if (rc != 0) {
      xfer_fail(d, x, rc, "its bytes do not continue the file");
      return false;
    }
    x->held = c->next;
    if (x->held == NULL)
      x->held_tail = NULL;
    x->owed += c->len;
    free(c);
  }
  xfer_grant(d, x);
  if (x->ended && x->rx_next == x->end) {
    void *job = x->job;
    xfer_free(x);
    mesh_hf_source_end(d->hf, job, 0, NULL);
    return false;
  }
  return true;
}

static int src_start(void *ctx, const mesh_hf_source_req *req, void *job, void **xfer, char *label,
                     size_t label_cap)
{
  mesh_downloads *d = ctx;
  mesh_time_ms now = mesh_loop_now(d->loop);
  peer_dl *p = pdl_get(d, req->dl_id, true);
  if (p == NULL)
    return -ENOENT;
  snprintf(p->model_id, sizeof p->model_id, "%s", req->repo);
  snprintf(p->revision, sizeof p->revision, "%s", req->revision);
  peer_xfer *x = NULL;
  for (size_t i = 0; i < PEER_XFERS_MAX && x == NULL; i++)
    if (!d->xfers[i].used)
      x = &d->xfers[i];
  if (x == NULL)
    return -EBUSY;
  for (;;) {
    /* Transfers to each source, all downloads together: the bound is per
     * source, not per download. A source that said busy counts as full. */
    mesh_coord_source_use use[PEER_USE_MAX];
    for (size_t k = 0; k < p->n_use; k++) {
      use[k] = p->use[k];
      use[k].active = 0;
      for (size_t i = 0; i < PEER_XFERS_MAX; i++)
        if (d->xfers[i].used && memcmp(&d->xfers[i].peer, &use[k].peer, sizeof use[k].peer) == 0)
          use[k].active++;
      if (p->busy_until[k] > now)
        use[k].active = PEER_PER_SOURCE_MAX;
    }
    mesh_peer_id src;
    int rc = mesh_coord_pick_source(d->coord, req->repo, req->revision, use, p->n_use,
                                    PEER_PER_SOURCE_MAX, &src);
    if (rc != 0)
      return rc;
    size_t idx;
    if (pdl_use(p, &src, &idx) == NULL)
      return -ENOENT; /* more sources than remembered: the Hub */
    memset(x, 0, sizeof *x);
    x->used = true;
    x->id = ++d->next_xfer_id;
    x->dl_id = req->dl_id;
    x->peer = src;
    snprintf(x->model_id, sizeof x->model_id, "%s", req->repo);
    snprintf(x->revision, sizeof x->revision, "%s", req->revision);
    x->job = job;
    x->rx_next = req->from;
    x->end = req->size;
    x->granted =
        req->from + (req->size - req->from < PEER_WINDOW ? req->size - req->from : PEER_WINDOW);
    x->last_rx = now;
    (void)mesh_coord_view_of(d->coord, &src, &x->epoch);
    mesh_bulk_msg m = {.kind = MESH_BULK_REQUEST,
                       .id = x->id,
                       .offset = req->from,
                       .length = req->size - req->from,
                       .credit = x->granted - req->from};
    snprintf(m.model_id, sizeof m.model_id, "%s", req->repo);
    snprintf(m.revision, sizeof m.revision, "%s", req->revision);
    snprintf(m.path, sizeof m.path, "%s", req->path);
    rc = dl_bulk_send(d, &src, &m);
    if (rc == 0) {
      mesh_peer_id_to_text(&src, label, label_cap);
      *xfer = x;
      dl_peers_arm(d);
      return 0;
    }
    /* No connection, or the request could not be sent: the next source
     * (each is tried once, so the loop ends). */
    memset(x, 0, sizeof *x);
    p->use[idx].failed = true;
    d->peers.source_failures++;
  }
}

static void src_stop(void *ctx, void *xfer)
{
  mesh_downloads *d = ctx;
  peer_xfer *x = xfer;
  if (!x->used)
    return;
  xfer_cancel_wire(d, x);
  xfer_free(x);
}

static void src_resume(void *ctx, void *xfer)
{
  mesh_downloads *d = ctx;
  peer_xfer *x = xfer;
  if (!x->used)
    return;
  x->paused = false;
  x->last_rx = mesh_loop_now(d->loop);
  (void)xfer_feed_held(d, x);
}

static void src_bad(void *ctx, uint64_t dl_id, const char *label)
{
  mesh_downloads *d = ctx;
  mesh_peer_id peer;
  if (mesh_peer_id_parse(label, &peer) != 0)
    return;
  d->peers.bad_sources++;
  LOG_WARN("peers",
           "source %s sent bytes that failed the Hub's hash: dropped for download %" PRIu64, label,
           dl_id);
  dl_source_failed(d, dl_id, &peer);
  peer_dl *p = pdl_get(d, dl_id, false);
  if (p != NULL && p->model_id[0] != '\0') {
    /* Written with the next drain (the next report of this download): a
     * drain here could act on the download the client is in the middle of. */
    mesh_coord_source_dropped(d->coord, p->model_id, p->revision, &peer,
                              "its bytes failed the Hub's hash");
  }
}

static void src_finished(void *ctx, uint64_t dl_id)
{
  mesh_downloads *d = ctx;
  dl_lists_finished(d, dl_id);
  peer_dl *p = pdl_get(d, dl_id, false);
  if (p != NULL)
    memset(p, 0, sizeof *p);
}

const mesh_hf_source_ops dl_peer_sources = {
    .start = src_start,
    .stop = src_stop,
    .resume = src_resume,
    .bad = src_bad,
    .finished = src_finished,
    .list = dl_lists_start,
};

/* ---- what sources send ---------------------------------------------------- */

void dl_peers_on_bulk(mesh_downloads *d, const mesh_peer_id *from, const mesh_bulk_msg *m)
{
  peer_xfer *x = xfer_find(d, from, m->id);
  if (x == NULL)
    return; /* a transfer that ended or was cancelled: late bytes are dropped */
  if (m->kind == MESH_BULK_END) {
    if (m->code == 0 && x->rx_next == x->end) {
      x->ended = true;
      if (x->held == NULL && !x->paused)
        (void)xfer_feed_held(d, x);
      return;
    }
    if (m->code == -EBUSY) {
      /* Busy is not a failure: asked again once the pause is over. */
      peer_dl *p = pdl_get(d, x->dl_id, true);
      size_t idx;
      if (p != NULL && pdl_use(p, from, &idx) != NULL)
        p->busy_until[idx] = mesh_loop_now(d->loop) + PEER_BUSY_MS;
      void *job = x->job;
      xfer_free(x);
      mesh_hf_source_end(d->hf, job, -EBUSY, "source busy");
      return;
    }
    char why[MESH_BULK_REASON_MAX + 64];
    snprintf(why, sizeof why, "refused: %s (%s)", m->reason[0] != '\0' ? m->reason : "no reason",
             mesh_strerror(m->code != 0 ? m->code : -EPROTO));
    xfer_fail(d, x, m->code != 0 ? m->code : -EPROTO, why);
    return;
  }
  if (m->kind != MESH_BULK_CHUNK) {
    d->peers.protocol_errors++;
    return;
  }
  if (m->offset != x->rx_next || m->data_len > x->end - x->rx_next ||
      m->offset + m->data_len > x->granted) {
    d->peers.protocol_errors++;
    char why[160];
    snprintf(why, sizeof why,
             "a chunk out of order or past its credit (%zu bytes at %" PRIu64
             ", expected at %" PRIu64 ", credit up to %" PRIu64 ")",
             m->data_len, m->offset, x->rx_next, x->granted);
    xfer_fail(d, x, -EPROTO, why);
    return;
  }
  x->rx_next += m->data_len;
  x->last_rx = mesh_loop_now(d->loop);
  if (x->held == NULL && !x->paused) {
    int rc = mesh_hf_source_data(d->hf, x->job, m->offset, m->data, m->data_len);
    if (rc == 0) {
      x->owed += m->data_len;
      xfer_grant(d, x);
      return;
    }
    if (rc != -EAGAIN) {
      xfer_fail(d, x, rc, "its bytes do not continue the file");
      return;
    }
    x->paused = true;
  }
  /* Bounded by the credit: at most PEER_WINDOW bytes are ever held. */
  peer_chunk *c = malloc(sizeof *c + m->data_len);
  if (c == NULL) {
    xfer_fail(d, x, -ENOMEM, "out of memory holding a chunk");
    return;
  }
  c->next = NULL;
  c->off = m->offset;
  c->len = m->data_len;
  memcpy(c->data, m->data, m->data_len);
  if (x->held_tail != NULL)
    x->held_tail->next = c;
  else
    x->held = c;
  x->held_tail = c;
}

void dl_peers_tick(mesh_downloads *d, mesh_time_ms now)
{
  for (size_t i = 0; i < PEER_XFERS_MAX; i++) {
    peer_xfer *x = &d->xfers[i];
    if (!x->used)
      continue;
    /* A suspect goes on sending (a stall is caught below); one that left
     * the view, or whose epoch ended, is done with. */
    uint64_t epoch = 0;
    if (mesh_coord_view_of(d->coord, &x->peer, &epoch) != 1 || epoch != x->epoch)
      xfer_fail(d, x, -EHOSTUNREACH, "it left the view or its epoch ended");
    else if (mesh_net_route(d->net, &x->peer, MESH_CLASS_STREAM) == NULL)
      xfer_fail(d, x, -ENOTCONN, "its connection is gone");
    else if (!x->paused && x->held == NULL && now - x->last_rx > PEER_STALL_MS)
      xfer_fail(d, x, -ETIMEDOUT, "it sent nothing for 5 s");
    else
      xfer_grant(d, x); /* a credit the queue refused earlier */
  }
}

void dl_peers_close(mesh_downloads *d)
{
  dl_lists_close(d);
  for (size_t i = 0; i < PEER_XFERS_MAX; i++)
    if (d->xfers[i].used)
      xfer_free(&d->xfers[i]);
}

static void peers_on_timer(void *arg, mesh_time_ms now)
{
  mesh_downloads *d = arg;
  dl_peers_tick(d, now);
  dl_lists_tick(d, now);
  dl_serve_tick(d, now);
  dl_peers_arm(d);
}

void dl_peers_arm(mesh_downloads *d)
{
  if (d->peer_timer == NULL) {
    if (mesh_timer_new(d->loop, peers_on_timer, d, &d->peer_timer) != 0)
      return;
  }
  if ((dl_peers_running(d) || dl_lists_running(d) || dl_serve_running(d)) &&
      !mesh_timer_armed(d->peer_timer))
    mesh_timer_arm(d->peer_timer, PEER_TICK_MS);
}

void dl_on_bulk(void *arg, const mesh_peer_id *from, uint64_t epoch, mesh_class cls,
                const uint8_t *buf, size_t len)
{
  (void)epoch;
  mesh_downloads *d = arg;
  mesh_bulk_msg m;
  if (cls != MESH_CLASS_STREAM || mesh_bulk_decode(buf, len, &m) != 0) {
    d->peers.protocol_errors++;
    MESH_LOG_RL(MESH_LOG_INFO, "peers", "a malformed bulk message was dropped");
    return;
  }
  /* Chunks and ends answer this node's requests: of a file list, or of a
   * file's bytes. Everything else asks this node for something. */
  bool answer = m.kind == MESH_BULK_CHUNK || m.kind == MESH_BULK_END;
  if (answer && !dl_lists_on_bulk(d, from, &m))
    dl_peers_on_bulk(d, from, &m);
  else if (!answer)
    dl_serve_on_bulk(d, from, &m);
  mesh_bulk_msg_clear(&m);
}

void dl_on_writable(void *arg, const mesh_peer_id *peer)
{
  dl_serve_on_writable(arg, peer);
}
