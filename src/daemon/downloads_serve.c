/*
 * Serving this node's completed model files to members on the bulk channel:
 * who may ask, which files, how many at once, and the reads on the pool.
 *
 * A request is served only when serving is on, the requester is a member of
 * the view, this node's own entry of (model, revision) is completed in its
 * current epoch (the coordinator core says so), the path is a plain
 * relative path (no "..", no "." or empty component, no ".partial" file)
 * that leads, without following a symbolic link, to a regular file inside
 * the entry's directory, that file is listed in the directory's manifest of
 * verified files (coord/hf_manifest.h, written when the download completed)
 * at the size it has now, and the range lies within the file. At most
 * max_uploads run at once, a member at most half of them (at least one).
 * Every refusal is answered (BulkEnd with a negative errno and a reason)
 * and counted by reason.
 *
 * Chunks are sent only within the requester's credit: one read of at most
 * MESH_BULK_CHUNK_MAX bytes is on the pool at a time per upload, so an
 * upload holds one buffer. A chunk the bulk queue refuses (-EAGAIN) is kept
 * and sent again when the peer's queue has room (the writable callback, or
 * the next tick).
 *
 * A test may change sealed lists and chunks and slow the reads through the
 * part's hooks (mesh_downloads_hooks, src/daemon/test_faults.h).
 *
 * A file list request (the Hub unreachable for the requester) is checked
 * the same way but names no file: the answer is the entry's manifest,
 * signed with this node's key for (model, revision, this node, its epoch)
 * on the pool (coord/hf_filelist.h), and sent in chunks like a file.
 */
#include "src/daemon/downloads_internal.h"

#include "coord/hf_manifest.h"
#include "src/base/err.h"
#include "src/base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Where a chunk's bytes are read in an upload's buffer: room for the
 * message's header ahead of them, and a cache line's alignment for the
 * kernel's copy into them (a misaligned one is slower). */
#define UPLOAD_DATA_AT 64
_Static_assert(UPLOAD_DATA_AT >= MESH_BULK_CHUNK_HDR_MAX, "room for a chunk's header");

/* A requester that grants no credit for this long is dropped. */
#define UPLOAD_IDLE_MS 30000

static const char *const refusal_names[SERVE_REFUSED__COUNT] = {
    [SERVE_REFUSED_OFF] = "serving_off",
    [SERVE_REFUSED_NOT_MEMBER] = "not_member",
    [SERVE_REFUSED_NOT_COMPLETED] = "not_completed",
    [SERVE_REFUSED_PATH] = "bad_path",
    [SERVE_REFUSED_BUSY] = "busy",
    [SERVE_REFUSED_PEER_SHARE] = "peer_share",
    [SERVE_REFUSED_RANGE] = "bad_range",
    [SERVE_REFUSED_IO] = "io",
    [SERVE_REFUSED_NOT_VERIFIED] = "not_verified",
    [SERVE_REFUSED_NO_LIST] = "no_list",
};

const char *dl_serve_refusal_name(serve_refusal r)
{
  return (unsigned)r < SERVE_REFUSED__COUNT ? refusal_names[r] : "?";
}

const char *mesh_downloads_refusal_name(int i)
{
  return i >= 0 && i < SERVE_REFUSED__COUNT ? refusal_names[i] : NULL;
}

void mesh_downloads_peer_stats_get(const mesh_downloads *d, mesh_downloads_peer_stats *out)
{
  memset(out, 0, sizeof *out);
  out->bad_sources = d->peers.bad_sources;
  out->source_failures = d->peers.source_failures;
  out->protocol_errors = d->peers.protocol_errors;
  out->uploads = d->peers.uploads;
  out->upload_bytes = d->peers.upload_bytes;
  out->uploads_active = d->peers.uploads_active;
  out->lists_served = d->peers.lists_served;
  out->lists_taken = d->peers.lists_taken;
  out->lists_refused = d->peers.lists_refused;
  _Static_assert(SERVE_REFUSED__COUNT <= MESH_DOWNLOADS_REFUSALS_MAX, "refusal counters");
  for (int i = 0; i < SERVE_REFUSED__COUNT; i++)
    out->refused[i] = d->peers.refused[i];
}

/* A send may call the writable callback before it returns (the queue it
 * fills is pumped at once); the callback must not send for an upload in
 * the middle of a send (it would send the same chunk twice), so it does
 * nothing meanwhile and the tick picks up what it would have done. Every
 * bulk send, the downloads' requests and credits too, goes through here. */
static int net_send(mesh_downloads *d, const mesh_peer_id *to, const uint8_t *buf, size_t len)
{
  d->serve_sending = true;
  int rc = mesh_net_send(d->net, to, MESH_CH_BULK, MESH_CLASS_STREAM, buf, len);
  d->serve_sending = false;
  return rc;
}

int dl_bulk_send(mesh_downloads *d, const mesh_peer_id *to, const mesh_bulk_msg *m)
{
  uint8_t *buf;
  size_t len;
  int rc = mesh_bulk_encode(m, &buf, &len);
  if (rc != 0)
    return rc;
  rc = net_send(d, to, buf, len);
  free(buf);
  return rc;
}

static void refuse(mesh_downloads *d, const mesh_peer_id *to, uint64_t id, serve_refusal why,
                   int code)
{
  d->peers.refused[why]++;
  mesh_bulk_msg m = {.kind = MESH_BULK_END, .id = id, .code = code};
  snprintf(m.reason, sizeof m.reason, "%s", dl_serve_refusal_name(why));
  (void)dl_bulk_send(d, to, &m);
  char peer[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(to, peer, sizeof peer);
  MESH_LOG_RL(MESH_LOG_INFO, "serve", "request %" PRIu64 " of %s refused: %s", id, peer,
              dl_serve_refusal_name(why));
}

/* ---- the pool's side ------------------------------------------------------ */

static int open_beneath(const char *full, size_t base_len, int *out);

/* Reads the manifest of the model directory rel[0, dir_len) (under the
 * models directory, rel[0, base_len)) into a malloc'ed text (*text, the
 * caller's to free) of *len bytes, at most MESH_HF_MANIFEST_MAX. 0 or a
 * negative errno (-ENOENT: there is none). A worker. */
static int manifest_read(const char *rel, size_t dir_len, size_t base_len, char **text, size_t *len)
{
  char path[PATH_MAX];
  int n = snprintf(path, sizeof path, "%.*s/%s", (int)dir_len, rel, MESH_HF_MANIFEST);
  if (n < 0 || (size_t)n >= sizeof path)
    return -ENAMETOOLONG;
  int fd = -1;
  int rc = open_beneath(path, base_len, &fd);
  if (rc != 0)
    return rc;
  struct stat st;
  char *t = NULL;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MESH_HF_MANIFEST_MAX ||
      (t = malloc((size_t)st.st_size + 1)) == NULL) {
    close(fd);
    return -EIO;
  }
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = pread(fd, t + got, (size_t)st.st_size - got, (off_t)got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  *text = t;
  *len = got;
  return 0;
}

/* Whether the file of u (size bytes now) is listed in its model directory's
 * manifest at that size: the download that put it there verified it. */
static bool verified(upload *u, uint64_t size)
{
  char *text = NULL;
  size_t len = 0;
  if (manifest_read(u->rel, u->dir_len, u->base_len, &text, &len) != 0)
    return false;
  uint64_t listed = 0;
  bool ok =
      mesh_hf_manifest_find(text, len, u->rel + u->dir_len + 1, &listed) == 0 && listed == size;
  free(text);
  return ok;
}

/* Opens rel (model directory, then the file's path) under the models
 * directory, one component at a time, never following a symbolic link. */
static int open_beneath(const char *full, size_t base_len, int *out)
{
  char base[PATH_MAX];
  if (base_len == 0 || base_len >= sizeof base)
    return -ENAMETOOLONG;
  memcpy(base, full, base_len);
  base[base_len] = '\0';
  int dir = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0)
    return -errno;
  const char *p = full + base_len + 1;
  for (;;) {
    const char *slash = strchr(p, '/');
    char name[256];
    size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= sizeof name) {
      close(dir);
      return -EINVAL;
    }
    memcpy(name, p, n);
    name[n] = '\0';
    int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (slash != NULL ? O_DIRECTORY : 0);
    int fd = openat(dir, name, flags);
    int e = errno;
    close(dir);
    if (fd < 0)
      return e == ELOOP ? -EINVAL : -e;
    if (slash == NULL) {
      *out = fd;
      return 0;
    }
    dir = fd;
    p = slash + 1;
  }
}

/* OPEN of a file list: reads the manifest of u's model directory and seals
 * it. A worker: it touches the upload's input and result fields only. */
static int list_open(upload *u)
{
  char *text = NULL;
  size_t got = 0;
  int rc = manifest_read(u->rel, strlen(u->rel), u->base_len, &text, &got);
  if (rc != 0)
    return rc;
  rc = mesh_hf_filelist_seal(u->ident, &u->meta, text, got, &u->blob, &u->blob_len);
  free(text);
  if (rc != 0)
    return rc;
  u->d->hooks->list_sealed(u->d->hooks->arg, u->blob, u->blob_len);
  if (u->off >= u->blob_len)
    return -ERANGE;
  if (u->end > u->blob_len)
    u->end = u->blob_len;
  return 0;
}

static void upload_work(mesh_work *w)
{
  upload *u = (upload *)w;
  u->err = 0;
  if (u->opening && u->list) {
    u->err = list_open(u);
    if (u->err == -ENOENT)
      u->unverified = true;
    return;
  }
  if (u->opening) {
    int fd = -1;
    int rc = open_beneath(u->rel, u->base_len, &fd);
    if (rc != 0) {
      u->err = rc;
      return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(fd);
      u->err = -EINVAL;
      return;
    }
    if (!verified(u, (uint64_t)st.st_size)) {
      close(fd);
      u->unverified = true;
      u->err = -EPERM;
      return;
    }
    if (u->end > (uint64_t)st.st_size) {
      close(fd);
      u->err = -ERANGE;
      return;
    }
    u->fd = fd;
    return;
  }
  u->d->hooks->before_chunk_read(u->d->hooks->arg);
  size_t want = (size_t)(u->end - u->off);
  if (want > MESH_BULK_CHUNK_SEND)
    want = MESH_BULK_CHUNK_SEND;
  if (want > u->credit)
    want = (size_t)u->credit;
  /* A file's bytes are read into buf after room for the message's header,
   * which is then written just ahead of them: the message, with no copy. */
  uint8_t *data = u->list ? u->blob + u->off : u->buf + UPLOAD_DATA_AT;
  if (u->list) {
    u->len = want;
  } else {
    size_t got = 0;
    while (got < want) {
      ssize_t n = pread(u->fd, data + got, want - got, (off_t)(u->off + got));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        u->err = n == 0 ? -EIO : -errno; /* shrank under us, or a read error */
        return;
      }
      got += (size_t)n;
    }
    u->len = got;
  }
  /* A test hook may change the chunk (buf, or the upload's own blob). */
  u->corrupted = u->len > 0 && u->d->hooks->chunk_out(u->d->hooks->arg, data, u->len);
  /* Encoded here, not on the loop: a chunk is a quarter MiB, and the loop
   * already seals every byte it sends. */
  if (!u->list) {
    uint8_t hdr[MESH_BULK_CHUNK_HDR_MAX];
    size_t hl = mesh_bulk_chunk_header(u->id, u->off, u->len, hdr);
    if (hl == 0) {
      u->err = -EINVAL;
      return;
    }
    memcpy(data - hl, hdr, hl);
    u->pending = data - hl;
    u->pending_len = hl + u->len;
    u->pending_owned = false;
    return;
  }
  mesh_bulk_msg m = {
      .kind = MESH_BULK_CHUNK, .id = u->id, .offset = u->off, .data = data, .data_len = u->len};
  u->err = mesh_bulk_encode(&m, &u->pending, &u->pending_len);
  u->pending_owned = true;
}

/* Lets go of u->pending (the upload's buffer, or a message of its own). */
static void pending_drop(upload *u)
{
  if (u->pending_owned)
    free(u->pending);
  u->pending = NULL;
  u->pending_owned = false;
}

/* ---- the loop's side ------------------------------------------------------ */

static void upload_end(mesh_downloads *d, upload *u)
{
  if (u->fd >= 0)
    close(u->fd); /* a regular file opened for reading: nothing to flush */
  pending_drop(u);
  free(u->blob);
  uint8_t *buf = u->buf;
  memset(u, 0, sizeof *u);
  u->buf = buf;
  u->fd = -1;
  d->peers.uploads_active--;
}

static void upload_done(mesh_work *w);

/* Starts the next read when credit allows and nothing is in flight. */
static void upload_pump(mesh_downloads *d, upload *u)
{
  if (u->w.busy || u->pending != NULL || d->stopping)
    return;
  if (u->off == u->end) {
    mesh_bulk_msg m = {.kind = MESH_BULK_END, .id = u->id, .code = 0};
    int rc = dl_bulk_send(d, &u->peer, &m);
    if (rc == -EAGAIN)
      return; /* the tick or the writable callback tries again */
    upload_end(d, u);
    return;
  }
  if (u->credit == 0)
    return;
  u->opening = false;
  mesh_pool_submit(d->pool, &u->w, NULL, upload_work, upload_done);
}

/* Sends the encoded chunk kept in u->pending; false when the queue is full. */
static bool upload_send_pending(mesh_downloads *d, upload *u)
{
  int rc = net_send(d, &u->peer, u->pending, u->pending_len);
  if (rc == -EAGAIN)
    return false;
  pending_drop(u);
  if (rc != 0) {
    upload_end(d, u); /* no connection: the requester goes elsewhere */
    return false;
  }
  d->peers.upload_bytes += u->pending_n;
  return true;
}

static void upload_done(mesh_work *w)
{
  upload *u = (upload *)w;
  mesh_downloads *d = u->d;
  u->credit += u->credit_more;
  u->credit_more = 0;
  if (u->cancelled || d->stopping) {
    upload_end(d, u);
    return;
  }
  if (u->err != 0) {
    char peer[MESH_PEER_ID_TEXT_MAX];
    mesh_peer_id_to_text(&u->peer, peer, sizeof peer);
    serve_refusal why = u->list && u->unverified                  ? SERVE_REFUSED_NO_LIST
                        : u->unverified                           ? SERVE_REFUSED_NOT_VERIFIED
                        : u->err == -ERANGE                       ? SERVE_REFUSED_RANGE
                        : u->err == -EINVAL || u->err == -ENOTDIR ? SERVE_REFUSED_PATH
                                                                  : SERVE_REFUSED_IO;
    LOG_INFO("serve", "upload %" PRIu64 " to %s of %s: %s", u->id, peer, u->rel,
             mesh_strerror(u->err));
    refuse(d, &u->peer, u->id, why, u->err);
    upload_end(d, u);
    return;
  }
  if (u->opening) {
    if (u->list)
      d->peers.lists_served++;
    upload_pump(d, u);
    return;
  }
  if (u->corrupted)
    d->peers.corrupted_chunks++;
  u->pending_n = u->len;
  u->off += u->len;
  u->credit -= u->len;
  if (upload_send_pending(d, u))
    upload_pump(d, u);
}

static upload *upload_find(mesh_downloads *d, const mesh_peer_id *peer, uint64_t id)
{
  for (int i = 0; i < d->max_uploads; i++) {
    upload *u = &d->uploads[i];
    if (u->used && u->id == id && memcmp(&u->peer, peer, sizeof *peer) == 0)
      return u;
  }
  return NULL;
}

/* Whether a path names a file a completed download put in place: the Hub's
 * path rules, and never a partial file left by a download. */
static bool path_servable(const char *path)
{
  const char *why;
  size_t n = strlen(path);
  size_t sl = strlen(MESH_HF_PARTIAL_SUFFIX);
  if (mesh_hf_path_check(path, n, &why) != 0)
    return false;
  if (n >= sl && strcmp(path + n - sl, MESH_HF_PARTIAL_SUFFIX) == 0)
    return false;
  /* No component starting with '.': the ownership marker and hidden files. */
  for (const char *p = path; p != NULL; p = strchr(p, '/')) {
    if (*p == '/')
      p++;
    if (*p == '.')
      return false;
  }
  return true;
}

static void serve_request(mesh_downloads *d, const mesh_peer_id *from, const mesh_bulk_msg *m)
{
  if (!d->serve_models) {
    refuse(d, from, m->id, SERVE_REFUSED_OFF, -EPERM);
    return;
  }
  if (mesh_coord_view_of(d->coord, from, NULL) != 1) {
    refuse(d, from, m->id, SERVE_REFUSED_NOT_MEMBER, -EPERM);
    return;
  }
  char dir[MESH_MODEL_DIR_MAX];
  if (mesh_coord_own_completed(d->coord, m->model_id, m->revision, dir, sizeof dir) != 0) {
    refuse(d, from, m->id, SERVE_REFUSED_NOT_COMPLETED, -ENOENT);
    return;
  }
  if (!m->file_list && !path_servable(m->path)) {
    refuse(d, from, m->id, SERVE_REFUSED_PATH, -EINVAL);
    return;
  }
  if (upload_find(d, from, m->id) != NULL) {
    d->peers.protocol_errors++;
    return; /* the same id twice: the first one runs */
  }
  int mine = 0;
  upload *slot = NULL;
  for (int i = 0; i < d->max_uploads; i++) {
    upload *u = &d->uploads[i];
    if (u->used && memcmp(&u->peer, from, sizeof *from) == 0)
      mine++;
    if (!u->used && !u->w.busy && slot == NULL)
      slot = u;
  }
  int share = d->max_uploads / 2 > 0 ? d->max_uploads / 2 : 1;
  if (mine >= share) {
    refuse(d, from, m->id, SERVE_REFUSED_PEER_SHARE, -EBUSY);
    return;
  }
  if (slot == NULL) {
    refuse(d, from, m->id, SERVE_REFUSED_BUSY, -EBUSY);
    return;
  }
  slot->base_len = strlen(d->models_dir);
  slot->dir_len = slot->base_len + 1 + strlen(dir);
  slot->unverified = false;
  slot->list = m->file_list;
  slot->blob = NULL;
  slot->blob_len = 0;
  if (m->file_list) {
    slot->ident = mesh_node_identity(d->node);
    memset(&slot->meta, 0, sizeof slot->meta);
    snprintf(slot->meta.model_id, sizeof slot->meta.model_id, "%s", m->model_id);
    snprintf(slot->meta.revision, sizeof slot->meta.revision, "%s", m->revision);
    slot->meta.owner = slot->ident->id;
    slot->meta.epoch = mesh_node_epoch(d->node);
  }
  int n = m->file_list
              ? snprintf(slot->rel, sizeof slot->rel, "%s/%s", d->models_dir, dir)
              : snprintf(slot->rel, sizeof slot->rel, "%s/%s/%s", d->models_dir, dir, m->path);
  if (n < 0 || (size_t)n >= sizeof slot->rel) {
    refuse(d, from, m->id, SERVE_REFUSED_PATH, -ENAMETOOLONG);
    return;
  }
  slot->used = true;
  slot->d = d;
  slot->peer = *from;
  slot->id = m->id;
  slot->fd = -1;
  slot->off = m->offset;
  slot->end = m->offset + m->length;
  slot->credit = m->credit;
  slot->cancelled = false;
  slot->last_credit = mesh_loop_now(d->loop);
  slot->opening = true;
  d->peers.uploads++;
  d->peers.uploads_active++;
  mesh_pool_submit(d->pool, &slot->w, NULL, upload_work, upload_done);
  dl_peers_arm(d);
}

void dl_serve_on_bulk(mesh_downloads *d, const mesh_peer_id *from, const mesh_bulk_msg *m)
{
  if (m->kind == MESH_BULK_REQUEST) {
    serve_request(d, from, m);
    return;
  }
  upload *u = upload_find(d, from, m->id);
  if (u == NULL)
    return; /* ended already */
  if (m->kind == MESH_BULK_CANCEL) {
    if (u->w.busy)
      u->cancelled = true; /* ended by its done function */
    else
      upload_end(d, u);
    return;
  }
  if (m->kind == MESH_BULK_CREDIT) {
    /* Never more in flight than the protocol's bound. */
    if (u->credit + u->credit_more > MESH_BULK_CREDIT_MAX - m->credit) {
      d->peers.protocol_errors++;
      refuse(d, from, m->id, SERVE_REFUSED_RANGE, -EPROTO);
      if (u->w.busy)
        u->cancelled = true;
      else
        upload_end(d, u);
      return;
    }
    /* The worker reads credit while its read runs: credit that arrives
     * meanwhile is added in the done function. */
    if (u->w.busy)
      u->credit_more += m->credit;
    else
      u->credit += m->credit;
    u->last_credit = mesh_loop_now(d->loop);
    upload_pump(d, u);
  }
}

void dl_serve_on_writable(mesh_downloads *d, const mesh_peer_id *peer)
{
  if (d->serve_sending) {
    /* Inside a send of ours: the tick, due at once, does it. */
    if (d->peer_timer != NULL)
      mesh_timer_arm(d->peer_timer, 0);
    return;
  }
  for (int i = 0; i < d->max_uploads; i++) {
    upload *u = &d->uploads[i];
    if (!u->used || u->w.busy || memcmp(&u->peer, peer, sizeof *peer) != 0)
      continue;
    if (u->pending != NULL && !upload_send_pending(d, u))
      continue;
    if (u->used)
      upload_pump(d, u);
  }
}

bool dl_serve_running(const mesh_downloads *d)
{
  return d->peers.uploads_active > 0;
}

void dl_serve_tick(mesh_downloads *d, mesh_time_ms now)
{
  for (int i = 0; i < d->max_uploads; i++) {
    upload *u = &d->uploads[i];
    if (!u->used || u->w.busy)
      continue;
    /* A requester that left the view, or went silent, gets nothing more. */
    if (mesh_coord_view_of(d->coord, &u->peer, NULL) != 1 ||
        now - u->last_credit > UPLOAD_IDLE_MS) {
      upload_end(d, u);
      continue;
    }
    if (u->pending != NULL && !upload_send_pending(d, u))
      continue;
    if (u->used)
      upload_pump(d, u);
  }
}

int dl_serve_init(mesh_downloads *d, bool serve, int max_uploads)
{
  d->serve_models = serve;
  d->max_uploads = max_uploads > 0 ? max_uploads : 8;
  d->uploads = calloc((size_t)d->max_uploads, sizeof *d->uploads);
  if (d->uploads == NULL)
    return -ENOMEM;
  for (int i = 0; i < d->max_uploads; i++) {
    d->uploads[i].fd = -1;
    void *buf = NULL;
    if (posix_memalign(&buf, UPLOAD_DATA_AT, UPLOAD_DATA_AT + MESH_BULK_CHUNK_MAX) != 0)
      buf = NULL;
    d->uploads[i].buf = buf;
    if (d->uploads[i].buf == NULL)
      return -ENOMEM;
  }
  return 0;
}

void dl_serve_close(mesh_downloads *d)
{
  if (d->uploads == NULL)
    return;
  for (int i = 0; i < d->max_uploads; i++) {
    upload *u = &d->uploads[i];
    if (u->used)
      upload_end(d, u);
    free(u->buf);
  }
  free(d->uploads);
  d->uploads = NULL;
}
