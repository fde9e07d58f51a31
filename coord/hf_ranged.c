/*
 * A large file fetched in ranges from several sources at once: lanes claim
 * missing ranges, write them at their offsets, a sidecar records the ranges
 * written whole, and the whole file is hashed once every range is in.
 *
 * Why the order never matters: bytes are written with pwrite at their own
 * offsets (each lane's in order, lanes in any order), nothing is hashed as it
 * arrives, and the file is hashed from its first byte to its last on the work
 * pool (HASH slices, then the job's usual VERIFY: sync, rename) only when the
 * table says every range is DONE. A wrong hash drops every peer the file
 * took bytes from (hf_job.c's verify, as for a file fetched in order) and
 * fetches it again.
 *
 * Lanes (hf_lane, at most HF_LANES per file, all on the loop thread). A lane
 * claims the next MISSING range and asks the peer sources for [got, end) of
 * it; the sources bound the transfers per source. With no peer for it, the
 * lane takes the job's Hub request, which runs from the range's first
 * missing byte and claims the following missing ranges as it reaches them,
 * so a file no peer has is still one request; when it reaches a range that
 * is claimed or done, the lane stops the request (`cut`). One Hub request
 * per file at a time. A lane whose transfer ends (done or failed) DRAINs:
 * once its buffers are written, the ranges it wrote whole are DONE and the
 * others go back to MISSING with their `got` kept, so the next lane goes on
 * from there. A failed transfer only costs the source (the sources leave it
 * out of the download), never bytes already taken.
 *
 * Writes. Each lane has HF_LANE_BUFS buffers of the job's buf_cap, written
 * on the job's strand (so a lane's writes land in order, and a sidecar write
 * submitted after a range's last write runs after it). A range is DONE when
 * the write holding its last byte is done; the sidecar (one HF_OP_RANGES at
 * a time; a change meanwhile is written after it) is written after that, so
 * it never names a range whose bytes were not handed to the file first.
 */
#include "coord/hf_internal.h"
#include "coord/hf_fs.h"
#include "src/base/log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *lane_state_name[] = {"idle", "run", "drain"};

bool hf_ranged_wanted(const mesh_hf_client *c, const mesh_hf_file *f)
{
  return f->size >= c->opt.range_threshold && f->size > c->opt.range_bytes;
}

uint64_t hf_ranged_range_bytes(const mesh_hf_client *c, const mesh_hf_file *f)
{
  uint64_t least = f->size / MESH_HF_RANGES_MAX + 1;
  return c->opt.range_bytes > least ? c->opt.range_bytes : least;
}

/* ---- work functions (the job's strand) ------------------------------------ */

/* Writes len bytes of text as the sidecar of j's partial (temporary name,
 * then rename: a crash leaves the old sidecar or the new one). */
static int save_text(hf_job *j, const char *text, size_t len)
{
  hf_disk *d = &j->disk;
  char name[MESH_HF_NAME_MAX + 32], tmp[MESH_HF_NAME_MAX + 40];
  snprintf(name, sizeof name, "%s%s", j->partial, MESH_HF_RANGES_SUFFIX);
  snprintf(tmp, sizeof tmp, "%s.tmp", name);
  int fd = openat(d->pfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    return -errno;
  size_t off = 0;
  int rc = 0;
  while (off < len) {
    ssize_t n = write(fd, text + off, len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      rc = n < 0 ? -errno : -EIO;
      break;
    }
    off += (size_t)n;
  }
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc == 0 && renameat(d->pfd, tmp, d->pfd, name) != 0)
    rc = -errno;
  if (rc != 0)
    unlinkat(d->pfd, tmp, 0);
  return rc;
}

void hf_ranged_work_open(hf_op *o, uint64_t partial_size)
{
  hf_job *j = o->j;
  hf_disk *d = &j->disk;
  char name[MESH_HF_NAME_MAX + 32];
  snprintf(name, sizeof name, "%s%s", j->partial, MESH_HF_RANGES_SUFFIX);
  o->n = 0; /* nothing to prehash: the file is hashed whole at the end */
  o->resumed = 0;
  int fd = openat(d->pfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    char *text = malloc(MESH_HF_RANGES_TEXT_MAX + 1);
    ssize_t n = -1;
    if (text != NULL) {
      do
        n = read(fd, text, MESH_HF_RANGES_TEXT_MAX + 1);
      while (n < 0 && errno == EINTR);
    }
    close(fd);
    /* A sidecar that cannot be read or is of another layout: every range
     * is fetched again (the bytes in the partial are overwritten). */
    if (n > 0 && (size_t)n <= MESH_HF_RANGES_TEXT_MAX &&
        mesh_hf_ranges_decode(&j->rt, text, (size_t)n) == 0)
      o->resumed = mesh_hf_ranges_done(&j->rt);
    free(text);
    return;
  }
  /* No sidecar: a partial left by a fetch in order holds its first bytes.
   * The sidecar is written before any byte at an offset of our choosing,
   * so a partial without one is never one with holes. */
  mesh_hf_ranges_take_prefix(&j->rt, partial_size);
  o->resumed = mesh_hf_ranges_done(&j->rt);
  char *text = malloc(MESH_HF_RANGES_TEXT_MAX);
  if (text == NULL) {
    o->err = -ENOMEM;
    o->step = "out of memory";
    return;
  }
  int len = mesh_hf_ranges_encode(&j->rt, text, MESH_HF_RANGES_TEXT_MAX);
  int rc = len < 0 ? len : save_text(j, text, (size_t)len);
  free(text);
  if (rc != 0) {
    o->err = rc;
    o->step = "cannot write the ranges file";
  }
}

void hf_ranged_work_save(hf_op *o)
{
  int rc = save_text(o->j, o->j->rtext, (size_t)o->to);
  if (rc != 0) {
    o->err = rc;
    o->step = "writing the ranges file";
  }
}

/* ---- the loop's side ------------------------------------------------------ */

static void lane_set(hf_lane *l, hf_lane_state s)
{
  LOG_DEBUG("hf", "download %" PRIu64 " file %s lane %d: %s -> %s (ranges %u-%u)", l->j->dl->id,
            l->j->f->path, (int)(l - l->j->lanes), lane_state_name[l->state], lane_state_name[s],
            l->first, l->last);
  l->state = s;
}

static void fill(hf_job *j);

static void save_done(mesh_work *w)
{
  hf_op *o = (hf_op *)((char *)w - offsetof(hf_op, w));
  hf_job *j = o->j;
  if (hf_job_dead(j))
    return;
  if (o->err != 0)
    /* Only a resume loses by it: the file itself is whole or hashed wrong. */
    MESH_LOG_RL(MESH_LOG_WARN, "hf", "%s: %s: %s", j->f->path, o->step, strerror(-o->err));
  if (j->rdirty) {
    j->rdirty = false;
    int len = mesh_hf_ranges_encode(&j->rt, j->rtext, MESH_HF_RANGES_TEXT_MAX);
    if (len > 0) {
      j->rop.to = (uint64_t)len;
      hf_job_submit(j, &j->rop, HF_OP_RANGES, save_done);
    }
  }
}

static void ranges_save(hf_job *j)
{
  if (j->rop.w.busy) {
    j->rdirty = true;
    return;
  }
  int len = mesh_hf_ranges_encode(&j->rt, j->rtext, MESH_HF_RANGES_TEXT_MAX);
  if (len <= 0)
    return;
  j->rop.to = (uint64_t)len;
  hf_job_submit(j, &j->rop, HF_OP_RANGES, save_done);
}

static size_t lane_room(const hf_lane *l)
{
  size_t room = 0;
  for (int i = 0; i < HF_LANE_BUFS; i++) {
    const hf_wbuf *b = &l->bufs[i];
    if (i == l->cur)
      room += l->j->buf_cap - b->len;
    else if (!b->w.busy)
      room += l->j->buf_cap;
  }
  return room;
}

static void work_write_lane(mesh_work *w);
static void lane_write_done(mesh_work *w);

static void lane_flush(hf_lane *l)
{
  if (l->cur < 0)
    return;
  hf_wbuf *b = &l->bufs[l->cur];
  l->cur = -1;
  if (b->len == 0)
    return;
  l->in_flight++;
  l->j->in_flight++;
  mesh_pool_submit(l->j->dl->c->pool, &b->w, l->j->strand, work_write_lane, lane_write_done);
}

static int lane_take_buffer(hf_lane *l, uint64_t off)
{
  for (int i = 0; i < HF_LANE_BUFS; i++) {
    hf_wbuf *b = &l->bufs[i];
    if (b->w.busy)
      continue;
    if (b->data == NULL && (b->data = malloc(l->j->buf_cap)) == NULL)
      return -1;
    b->j = l->j;
    b->lane = l;
    b->len = 0;
    b->off = off;
    b->restart = false;
    l->cur = i;
    return i;
  }
  return -1;
}

/* Takes n bytes (which fit: lane_room) at l->next into the lane's buffers. */
static bool lane_accept(hf_lane *l, const uint8_t *p, size_t n)
{
  hf_job *j = l->j;
  mesh_hf_client *c = j->dl->c;
  size_t off = 0;
  while (off < n) {
    if (l->cur < 0 && lane_take_buffer(l, l->next + off) < 0)
      return false;
    hf_wbuf *b = &l->bufs[l->cur];
    size_t k = j->buf_cap - b->len;
    if (k > n - off)
      k = n - off;
    memcpy(b->data + b->len, p + off, k);
    b->len += k;
    off += k;
    if (b->len == j->buf_cap)
      lane_flush(l);
  }
  if (l->in_flight == 0)
    lane_flush(l);
  l->next += n;
  for (uint32_t i = l->first; i <= l->last; i++) {
    uint64_t s = mesh_hf_range_start(&j->rt, i), e = mesh_hf_range_end(&j->rt, i);
    j->rt.got[i] = l->next >= e ? e - s : l->next > s ? l->next - s : 0;
  }
  j->have += n;
  j->dl->done_bytes += n;
  j->dl->net_bytes += n;
  c->counters.buffered_bytes += n;
  if (c->counters.buffered_bytes > c->counters.buffered_peak)
    c->counters.buffered_peak = c->counters.buffered_bytes;
  return true;
}

/* Marks the lane's ranges written whole DONE; a draining lane with nothing
 * left in flight hands back the rest and goes idle. */
static void lane_settle(hf_lane *l)
{
  hf_job *j = l->j;
  mesh_hf_client *c = j->dl->c;
  bool saved = false;
  while (l->state != LANE_IDLE && l->first <= l->last &&
         mesh_hf_range_end(&j->rt, l->first) <= l->written) {
    j->rt.state[l->first] = MESH_HF_RANGE_DONE;
    c->counters.ranges_done++;
    saved = true;
    l->first++;
  }
  if (saved)
    ranges_save(j);
  if (l->state != LANE_DRAIN || l->in_flight != 0)
    return;
  for (uint32_t i = l->first; i <= l->last && i < j->rt.n; i++)
    if (j->rt.state[i] == MESH_HF_RANGE_CLAIMED)
      j->rt.state[i] = MESH_HF_RANGE_MISSING;
  if (l->hub) {
    l->hub = false;
    j->hub_lane = NULL;
  }
  lane_set(l, LANE_IDLE);
}

static void lane_drain(hf_lane *l)
{
  l->paused = false;
  lane_flush(l);
  lane_set(l, LANE_DRAIN);
  lane_settle(l);
}

static bool lane_on_headers(hf_xfer *x);
static size_t lane_on_body(hf_xfer *x, const char *p, size_t n);
static void lane_on_done(hf_xfer *x, CURLcode rc);

static int lane_hub_request(hf_lane *l, bool follow)
{
  hf_job *j = l->j;
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  if (!follow) {
    j->redirects = 0;
    mesh_hf_url_resolve(c->endpoint, dl->repo, dl->revision, j->f->path, j->url, sizeof j->url);
  }
  j->writing = j->overflow = j->range_mismatch = j->too_big = false;
  l->cut = false;
  j->x.owner = l;
  j->x.on_headers = lane_on_headers;
  j->x.on_body = lane_on_body;
  j->x.on_done = lane_on_done;
  j->have_at_request = j->have;
  hf_xfer_params p = hf_params_for(c, j->url, l->next);
  c->counters.requests++;
  return hf_xfer_start(&c->multi, &j->x, j->url, &p);
}

/* Starts lane l on range i: 0, -EAGAIN (nothing to start now: the range is
 * handed back and asked again later), or a failure (the download failed). */
static int lane_start(hf_lane *l, uint32_t i)
{
  hf_job *j = l->j;
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  j->rt.state[i] = MESH_HF_RANGE_CLAIMED;
  l->first = l->last = i;
  l->next = mesh_hf_range_start(&j->rt, i) + j->rt.got[i];
  l->written = l->next;
  l->paused = l->cut = false;
  l->failed = 0;
  l->cur = -1;
  j->rnext = i + 1 < j->rt.n ? i + 1 : 0;
  if (c->src_ops != NULL) {
    mesh_hf_source_req req = {.dl_id = dl->id,
                              .user = dl->user,
                              .repo = dl->repo,
                              .revision = dl->revision,
                              .path = j->f->path,
                              .from = l->next,
                              .size = mesh_hf_range_end(&j->rt, i)};
    void *x = NULL;
    int rc = c->src_ops->start(c->src_ctx, &req, l, &x, l->src_label, sizeof l->src_label);
    if (rc == 0) {
      l->src = x;
      l->hub = false;
      c->counters.peer_transfers++;
      lane_set(l, LANE_RUN);
      return 0;
    }
    if (rc == -EBUSY) {
      j->rt.state[i] = MESH_HF_RANGE_MISSING;
      if (!evtimer_pending(j->ev, NULL))
        hf_arm(j->ev, HF_SOURCE_BUSY_MS);
      return -EAGAIN;
    }
  }
  if (j->hub_lane != NULL) {
    /* The Hub's request goes on into this range when it gets there; a
     * peer that gets the revision meanwhile (a restarted node learning the
     * documents) takes ranges ahead of it. */
    j->rt.state[i] = MESH_HF_RANGE_MISSING;
    if (c->src_ops != NULL && !evtimer_pending(j->ev, NULL))
      hf_arm(j->ev, HF_SOURCE_RETRY_MS);
    return -EAGAIN;
  }
  j->hub_lane = l;
  l->hub = true;
  l->src = NULL;
  lane_set(l, LANE_RUN);
  int rc = lane_hub_request(l, false);
  if (rc != 0) {
    hf_dl_fail(dl, rc, "%s: cannot start request: %s", j->f->path, strerror(-rc));
    return rc;
  }
  return 0;
}

static void hash_done(mesh_work *w);

static void hash_next(hf_job *j)
{
  uint64_t from = j->op.to;
  uint64_t to = j->f->size - from > HF_PREHASH_SLICE ? from + HF_PREHASH_SLICE : j->f->size;
  j->op.from = from;
  j->op.to = to;
  hf_job_submit(j, &j->op, HF_OP_HASH, hash_done);
}

static void hash_done(mesh_work *w)
{
  hf_op *o = (hf_op *)((char *)w - offsetof(hf_op, w));
  hf_job *j = o->j;
  if (hf_job_dead(j))
    return;
  if (o->err != 0) {
    hf_job_io_fail(j, o->err, o->step);
    return;
  }
  if (o->n < o->to - o->from) {
    hf_job_io_fail(j, -EIO, "the partial file is shorter than its ranges say");
    return;
  }
  if (o->to < j->f->size) {
    hash_next(j);
    return;
  }
  j->hashing = false;
  hf_job_verify(j);
}

/* Every range is in: hash the file from its start, then verify it. */
static void hash_begin(hf_job *j)
{
  if (j->bufs[0].data == NULL && (j->bufs[0].data = malloc(j->buf_cap)) == NULL) {
    hf_dl_fail(j->dl, -ENOMEM, "%s: out of memory", j->f->path);
    return;
  }
  j->hashing = true;
  j->state = JOB_PREHASH;
  j->op.to = 0;
  hash_next(j);
}

static void fill(hf_job *j)
{
  if (j->dl->state != DL_FETCHING || j->state == JOB_DONE || j->hashing)
    return;
  bool idle = true;
  for (int k = 0; k < HF_LANES; k++)
    idle = idle && j->lanes[k].state == LANE_IDLE;
  if (mesh_hf_ranges_complete(&j->rt)) {
    if (idle && j->in_flight == 0)
      hash_begin(j);
    return;
  }
  for (int k = 0; k < HF_LANES; k++) {
    hf_lane *l = &j->lanes[k];
    if (l->state != LANE_IDLE)
      continue;
    int64_t i = mesh_hf_ranges_next_missing(&j->rt, j->rnext);
    if (i < 0)
      return;
    int rc = lane_start(l, (uint32_t)i);
    if (rc != 0)
      return;
  }
}

void hf_ranged_begin(hf_job *j)
{
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  if (j->rtext == NULL && (j->rtext = malloc(MESH_HF_RANGES_TEXT_MAX)) == NULL) {
    hf_dl_fail(dl, -ENOMEM, "%s: out of memory", j->f->path);
    return;
  }
  c->counters.ranged_files++;
  c->counters.ranges_resumed += j->op.resumed;
  j->have = mesh_hf_ranges_have(&j->rt);
  dl->done_bytes += j->have;
  if (j->op.resumed > 0)
    LOG_INFO("hf", "%s@%s: %s: %u of %u ranges already in the partial file", dl->repo, dl->revision,
             j->f->path, j->op.resumed, j->rt.n);
  for (int k = 0; k < HF_LANES; k++) {
    hf_lane *l = &j->lanes[k];
    l->sink = HF_SINK_LANE;
    l->j = j;
    l->cur = -1;
    l->state = LANE_IDLE;
  }
  j->state = JOB_XFER;
  fill(j);
}

void hf_ranged_on_timer(hf_job *j)
{
  j->state = JOB_XFER;
  fill(j);
}

static void work_write_lane(mesh_work *w)
{
  hf_wbuf *b = (hf_wbuf *)((char *)w - offsetof(hf_wbuf, w));
  hf_job *j = b->j;
  hf_disk *d = &j->disk;
  b->err = 0;
  if (d->err != 0 || d->fd < 0)
    return;
  size_t off = 0;
  while (off < b->len) {
    ssize_t n = pwrite(d->fd, b->data + off, b->len - off, (off_t)(b->off + off));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      d->err = b->err = n < 0 ? errno : ENOSPC;
      return;
    }
    off += (size_t)n;
  }
  struct stat st;
  if (fstat(d->fd, &st) == 0 && st.st_nlink == 0) {
    d->err = b->err = ENOENT;
    return;
  }
  if (!j->dl->c->opt.no_sync)
    mesh_hf_fs_start_writeback(d->fd, b->off, b->len);
}

static void lane_write_done(mesh_work *w)
{
  hf_wbuf *b = (hf_wbuf *)((char *)w - offsetof(hf_wbuf, w));
  hf_lane *l = b->lane;
  hf_job *j = l->j;
  mesh_hf_client *c = j->dl->c;
  j->in_flight--;
  l->in_flight--;
  c->counters.buffered_bytes -= b->len;
  if (hf_job_dead(j))
    return;
  if (b->err != 0 && j->io_err == 0) {
    j->io_err = b->err;
    hf_job_io_fail(j, -b->err, b->err == ENOENT ? "the partial file was removed" : "writing");
    return;
  }
  if (b->off + b->len > l->written)
    l->written = b->off + b->len;
  lane_settle(l);
  if (l->state == LANE_RUN && l->paused) {
    l->paused = false;
    if (l->hub && j->x.easy != NULL)
      curl_easy_pause(j->x.easy, CURLPAUSE_CONT);
    else if (l->src != NULL)
      c->src_ops->resume(c->src_ctx, l->src);
  }
  fill(j);
}

/* ---- peer transfers ------------------------------------------------------- */

int hf_ranged_source_data(hf_lane *l, uint64_t off, const uint8_t *p, size_t n)
{
  hf_job *j = l->j;
  mesh_hf_client *c = j->dl->c;
  if (l->src == NULL || l->state != LANE_RUN || j->io_err != 0 || j->state == JOB_DONE)
    return -ESTALE;
  if (off != l->next || n > mesh_hf_range_end(&j->rt, l->last) - l->next)
    return -EBADMSG;
  if (n > lane_room(l)) {
    if (l->in_flight == 0)
      return -EBADMSG;
    l->paused = true;
    c->counters.write_pauses++;
    return -EAGAIN;
  }
  if (!lane_accept(l, p, n)) {
    j->io_err = ENOMEM;
    return -ESTALE;
  }
  hf_job_note_source(j, l->src_label);
  j->dl->peer_bytes += n;
  c->counters.peer_bytes += n;
  return 0;
}

void hf_ranged_source_end(hf_lane *l, int err, const char *why)
{
  hf_job *j = l->j;
  hf_dl *dl = j->dl;
  mesh_hf_client *c = dl->c;
  if (l->src == NULL || l->state != LANE_RUN)
    return;
  l->src = NULL;
  if (j->io_err != 0) {
    int e = j->io_err;
    c->counters.io_errors++;
    hf_dl_fail(dl, -e, "%s: writing %s: %s (partial file kept)", j->f->path, j->partial,
               strerror(e));
    return;
  }
  if (err != 0 || l->next != mesh_hf_range_end(&j->rt, l->last)) {
    c->counters.peer_failovers++;
    MESH_LOG_RL(MESH_LOG_INFO, "hf",
                "%s@%s: %s: peer %s stopped at byte %" PRIu64 " of range %u: going on from "
                "there elsewhere (%s)",
                dl->repo, dl->revision, j->f->path, l->src_label, l->next, l->first,
                why != NULL && why[0] != '\0' ? why : strerror(err < 0 ? -err : EIO));
  }
  lane_drain(l);
  fill(j);
}

/* ---- the Hub's request ------------------------------------------------------ */

static bool lane_on_headers(hf_xfer *x)
{
  hf_lane *l = x->owner;
  hf_job *j = l->j;
  j->writing = mesh_hf_status_classify(x->status) == MESH_HF_STATUS_OK;
  if (!j->writing)
    return true;
  if (x->status == 200 && l->next > 0) {
    /* A server that ignores ranges cannot fill a file range by range. */
    j->range_mismatch = true;
    return false;
  }
  if (x->status == 206) {
    unsigned long long a = 0, b = 0, t = 0;
    if (sscanf(x->content_range, "bytes %llu-%llu/%llu", &a, &b, &t) != 3 || a != l->next ||
        t != j->f->size) {
      j->range_mismatch = true;
      return false;
    }
  }
  return true;
}

/* libcurl's write callback for the Hub's lane: takes the chunk whole (or
 * pauses), claiming the next ranges as it reaches them; stops the request
 * at a range that another lane has or that is done. */
static size_t lane_on_body(hf_xfer *x, const char *p, size_t n)
{
  hf_lane *l = x->owner;
  hf_job *j = l->j;
  mesh_hf_client *c = j->dl->c;
  if (!j->writing)
    return n;
  if (j->io_err != 0 || l->state != LANE_RUN)
    return 0;
  if (n > j->f->size - l->next) {
    j->overflow = true;
    return 0;
  }
  /* How much of the chunk the claimed ranges take, claiming more on the way. */
  size_t take = n;
  uint64_t end = mesh_hf_range_end(&j->rt, l->last);
  while (l->next + take > end) {
    uint32_t nx = l->last + 1;
    if (nx >= j->rt.n || j->rt.state[nx] != MESH_HF_RANGE_MISSING) {
      take = (size_t)(end - l->next);
      break;
    }
    j->rt.state[nx] = MESH_HF_RANGE_CLAIMED;
    l->last = nx;
    end = mesh_hf_range_end(&j->rt, l->last);
  }
  if (take > lane_room(l)) {
    if (l->in_flight == 0) {
      j->too_big = true;
      return 0;
    }
    l->paused = true;
    c->counters.write_pauses++;
    return CURL_WRITEFUNC_PAUSE;
  }
  if (take > 0 && !lane_accept(l, (const uint8_t *)p, take)) {
    j->io_err = ENOMEM;
    return 0;
  }
  j->dl->hub_bytes += take;
  c->counters.bytes_received += take;
  if (take < n) {
    l->cut = true;
    return 0;
  }
  return n;
}

static void lane_on_done(hf_xfer *x, CURLcode rc)
{
  hf_lane *l = x->owner;
  hf_job *j = l->j;
  hf_dl *dl = j->dl;
  char why[HF_MSG_MAX];
  l->paused = false;
  if (j->io_err != 0) {
    int e = j->io_err;
    dl->c->counters.io_errors++;
    hf_dl_fail(dl, -e, "%s: writing %s: %s (partial file kept)", j->f->path, j->partial,
               strerror(e));
    return;
  }
  if (j->too_big) {
    hf_dl_fail(dl, -ENOBUFS, "%s: a received chunk is larger than the write buffers", j->f->path);
    return;
  }
  if (j->overflow) {
    hf_dl_fail(dl, -EBADMSG, "%s: the server sent more than the listed %" PRIu64 " bytes",
               j->f->path, j->f->size);
    return;
  }
  if (l->cut) {
    lane_drain(l);
    fill(j);
    return;
  }
  if (j->range_mismatch) {
    lane_drain(l);
    hf_job_retry(j, "the answer does not start at the range asked for");
    return;
  }
  int err = 0;
  switch (hf_judge(dl, x, rc, j->f->path, j->f->path, &j->redirects, j->url, sizeof j->url, &err,
                   why, sizeof why)) {
  case HF_NEXT_RETRY:
    lane_drain(l);
    hf_job_retry(j, why);
    return;
  case HF_NEXT_FOLLOW:
    err = lane_hub_request(l, true);
    if (err != 0)
      hf_dl_fail(dl, err, "%s: cannot start request: %s", j->f->path, strerror(-err));
    return;
  case HF_NEXT_FAIL:
    hf_dl_fail(dl, err, "%s", why);
    return;
  case HF_NEXT_OK:
    break;
  }
  if (l->next < mesh_hf_range_end(&j->rt, l->last)) {
    snprintf(why, sizeof why, "transfer ended at byte %" PRIu64 " of %" PRIu64, l->next,
             j->f->size);
    lane_drain(l);
    hf_job_retry(j, why);
    return;
  }
  lane_drain(l);
  fill(j);
}

/* ---- lifetime ---------------------------------------------------------------- */

void hf_ranged_stop(hf_job *j)
{
  mesh_hf_client *c = j->dl->c;
  for (int k = 0; k < HF_LANES; k++) {
    hf_lane *l = &j->lanes[k];
    void *x = l->src;
    l->src = NULL;
    if (x != NULL && c->src_ops != NULL)
      c->src_ops->stop(c->src_ctx, x);
    l->hub = false;
    l->paused = false;
    /* What a lane took is written out (its range is not DONE, so a resume
     * fetches it again; the bytes only save nothing). */
    lane_flush(l);
    l->state = LANE_IDLE;
  }
  j->hub_lane = NULL;
}

int hf_ranged_reset(hf_job *j)
{
  uint64_t size = j->rt.size, rb = j->rt.range_bytes;
  mesh_hf_ranges_free(&j->rt);
  j->rnext = 0;
  j->hub_lane = NULL;
  j->hashing = false;
  return mesh_hf_ranges_init(&j->rt, size, rb);
}

void hf_ranged_free(hf_job *j)
{
  for (int k = 0; k < HF_LANES; k++)
    for (int i = 0; i < HF_LANE_BUFS; i++) {
      free(j->lanes[k].bufs[i].data);
      j->lanes[k].bufs[i].data = NULL;
    }
  free(j->rtext);
  j->rtext = NULL;
  mesh_hf_ranges_free(&j->rt);
}
