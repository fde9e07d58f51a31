/*
 * File lists from members: when the Hub cannot be reached for a download's
 * file list and the operator allows it (--file-lists-from-members), a
 * source member (the peer sources' rule: alive in the view at its current
 * epoch, its signed document says the revision is completed) is asked for
 * its list on the bulk channel. It answers with its manifest signed by its
 * identity key for (model, revision, its peer ID, its epoch)
 * (coord/hf_filelist.h), in chunks within the credit granted, like a file.
 * The signature is checked against that member's peer ID and the manifest
 * parsed with the Hub list's bounds on the pool; only then does the client
 * take it, and every file is still verified against its hashes.
 *
 * A list that is refused (bad signature, another model, revision, owner or
 * epoch, malformed or too large) is counted, the source is dropped for that
 * download and journalled, and the next source is asked; with none left
 * the download fails. Without the option the download fails at once with a
 * message that names it. Loop thread, but for the CHECK item.
 */
#include "src/daemon/downloads_internal.h"

#include "src/base/err.h"
#include "src/base/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A source that sends nothing for this long while it owes bytes is dropped. */
#define LIST_STALL_MS PEER_STALL_MS

static void fetch_free(list_fetch *f)
{
  free(f->buf);
  mesh_hf_tree_free(&f->tree);
  memset(f, 0, sizeof *f);
}

/* Forgets what the last source sent, before the next one is asked. */
static void fetch_reset(list_fetch *f)
{
  f->id = 0;
  f->len = 0;
  f->granted = f->owed = 0;
  mesh_hf_tree_free(&f->tree);
  mesh_hf_tree_init(&f->tree);
}

/* Asks the next source: 0 (asked), -EBUSY (ask again at the next tick) or
 * -ENOENT (none left). */
static int fetch_ask(mesh_downloads *d, list_fetch *f)
{
  for (;;) {
    fetch_reset(f);
    mesh_peer_id src;
    int rc = dl_pick_source(d, f->dl_id, f->model_id, f->revision, &src);
    if (rc == -EBUSY)
      dl_peers_arm(d); /* the tick asks again */
    if (rc != 0)
      return rc;
    f->peer = src;
    f->id = ++d->next_xfer_id;
    f->granted = PEER_WINDOW;
    f->last_rx = mesh_loop_now(d->loop);
    (void)mesh_coord_view_of(d->coord, &src, &f->epoch);
    mesh_bulk_msg m = {.kind = MESH_BULK_REQUEST,
                       .id = f->id,
                       .offset = 0,
                       .length = MESH_HF_FILELIST_MAX,
                       .credit = PEER_WINDOW,
                       .file_list = true};
    snprintf(m.model_id, sizeof m.model_id, "%s", f->model_id);
    snprintf(m.revision, sizeof m.revision, "%s", f->revision);
    if (dl_bulk_send(d, &src, &m) == 0) {
      char peer[MESH_PEER_ID_TEXT_MAX];
      mesh_peer_id_to_text(&src, peer, sizeof peer);
      LOG_INFO("lists", "%s@%s: asking member %s for its file list", f->model_id, f->revision,
               peer);
      dl_peers_arm(d);
      return 0;
    }
    /* No connection: the next source (each is tried once). */
    d->peers.source_failures++;
    dl_source_failed(d, f->dl_id, &src);
  }
}

/* No source is left: the download fails. */
static void fetch_give_up(mesh_downloads *d, list_fetch *f, int err)
{
  uint64_t dl_id = f->dl_id;
  char why[200];
  snprintf(why, sizeof why, "%s", f->why[0] != '\0' ? f->why : "no member has completed it");
  fetch_free(f);
  (void)mesh_hf_source_list_done(d->hf, dl_id, err, NULL, NULL, why);
}

/* The source failed this list (why): dropped for the download, journalled,
 * and the next one asked. */
static void fetch_fail(mesh_downloads *d, list_fetch *f, const char *why)
{
  char peer[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(&f->peer, peer, sizeof peer);
  LOG_WARN("lists", "%s@%s: file list of member %s refused: %s", f->model_id, f->revision, peer,
           why);
  mesh_bulk_msg m = {.kind = MESH_BULK_CANCEL, .id = f->id};
  (void)dl_bulk_send(d, &f->peer, &m);
  d->peers.source_failures++;
  dl_source_failed(d, f->dl_id, &f->peer);
  char text[200];
  snprintf(text, sizeof text, "its file list was refused: %s", why);
  mesh_coord_source_dropped(d->coord, f->model_id, f->revision, &f->peer, text);
  snprintf(f->why, sizeof f->why, "member %s: %s", peer, why);
  int rc = fetch_ask(d, f);
  if (rc == -ENOENT)
    fetch_give_up(d, f, -EIO);
}

int dl_lists_start(void *ctx, const mesh_hf_source_req *req, char *why, size_t why_cap)
{
  mesh_downloads *d = ctx;
  if (!d->lists_from_members) {
    snprintf(why, why_cap,
             "file lists from members are off (--file-lists-from-members allows them)");
    return -EPERM;
  }
  list_fetch *f = NULL;
  for (size_t i = 0; i < LIST_FETCH_MAX && f == NULL; i++)
    if (!d->lists[i].used && !d->lists[i].w.busy)
      f = &d->lists[i];
  if (f == NULL) {
    snprintf(why, why_cap, "%d file lists are being asked of members already", LIST_FETCH_MAX);
    return -EBUSY;
  }
  memset(f, 0, sizeof *f);
  f->used = true;
  f->d = d;
  f->dl_id = req->dl_id;
  snprintf(f->model_id, sizeof f->model_id, "%s", req->repo);
  snprintf(f->revision, sizeof f->revision, "%s", req->revision);
  mesh_hf_tree_init(&f->tree);
  int rc = fetch_ask(d, f);
  if (rc == -ENOENT) {
    fetch_free(f);
    snprintf(why, why_cap, "no member alive in the view has completed %s@%s to give its file list",
             req->repo, req->revision);
    return -ENOENT;
  }
  return 0; /* asked, or a suspect has it and is asked at the next tick */
}

/* ---- the check, on the pool ----------------------------------------------- */

static void check_work(mesh_work *w)
{
  list_fetch *f = (list_fetch *)w;
  mesh_hf_filelist_meta want;
  memset(&want, 0, sizeof want);
  snprintf(want.model_id, sizeof want.model_id, "%s", f->model_id);
  snprintf(want.revision, sizeof want.revision, "%s", f->revision);
  want.owner = f->peer;
  want.epoch = f->epoch;
  const char *manifest = NULL;
  size_t mlen = 0;
  f->why[0] = '\0';
  f->err = mesh_hf_filelist_open(f->buf, f->len, &want, &manifest, &mlen, f->why, sizeof f->why);
  if (f->err == 0)
    f->err = mesh_hf_manifest_parse(manifest, mlen, NULL, &f->tree, f->why, sizeof f->why);
}

static void check_done(mesh_work *w)
{
  list_fetch *f = (list_fetch *)w;
  mesh_downloads *d = f->d;
  if (f->dropped || d->stopping) {
    fetch_free(f);
    return;
  }
  free(f->buf);
  f->buf = NULL;
  f->cap = 0;
  if (f->err != 0) {
    d->peers.lists_refused++;
    char why[sizeof f->why];
    snprintf(why, sizeof why, "%s", f->why[0] != '\0' ? f->why : mesh_strerror(f->err));
    fetch_fail(d, f, why);
    return;
  }
  char label[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(&f->peer, label, sizeof label);
  mesh_peer_id peer = f->peer;
  char model[MESH_MODEL_ID_MAX], rev[MESH_REVISION_MAX + 1];
  snprintf(model, sizeof model, "%s", f->model_id);
  snprintf(rev, sizeof rev, "%s", f->revision);
  uint64_t dl_id = f->dl_id;
  mesh_hf_tree tree = f->tree;
  mesh_hf_tree_init(&f->tree);
  fetch_free(f);
  /* Recorded in the entry before the client goes on: its LISTED report may
   * complete the download at once (every file already in place). */
  d->peers.lists_taken++;
  mesh_coord_list_from_member(d->coord, model, rev, &peer);
  if (mesh_hf_source_list_done(d->hf, dl_id, 0, &tree, label, NULL) != 0)
    d->peers.lists_taken--; /* the download went away meanwhile */
  mesh_hf_tree_free(&tree);
}

/* ---- what sources send ---------------------------------------------------- */

static list_fetch *fetch_find(mesh_downloads *d, const mesh_peer_id *peer, uint64_t id)
{
  for (size_t i = 0; i < LIST_FETCH_MAX; i++) {
    list_fetch *f = &d->lists[i];
    if (f->used && !f->w.busy && f->id == id && id != 0 && mesh_peer_id_eq(&f->peer, peer))
      return f;
  }
  return NULL;
}

/* Grants the source more room once enough arrived, never past the bound. */
static void fetch_grant(mesh_downloads *d, list_fetch *f)
{
  if (f->owed < PEER_CREDIT_STEP || f->granted >= MESH_HF_FILELIST_MAX)
    return;
  uint64_t more = f->owed;
  if (more > MESH_HF_FILELIST_MAX - f->granted)
    more = MESH_HF_FILELIST_MAX - f->granted;
  mesh_bulk_msg m = {.kind = MESH_BULK_CREDIT, .id = f->id, .credit = more};
  if (dl_bulk_send(d, &f->peer, &m) == 0) {
    f->granted += more;
    f->owed = 0;
  }
}

bool dl_lists_on_bulk(mesh_downloads *d, const mesh_peer_id *from, const mesh_bulk_msg *m)
{
  list_fetch *f = fetch_find(d, from, m->id);
  if (f == NULL)
    return false;
  if (m->kind == MESH_BULK_END) {
    if (m->code != 0) {
      char why[MESH_BULK_REASON_MAX + 64];
      snprintf(why, sizeof why, "refused: %s (%s)", m->reason[0] != '\0' ? m->reason : "no reason",
               mesh_strerror(m->code));
      fetch_fail(d, f, why);
      return true;
    }
    f->id = 0; /* nothing more comes from it */
    mesh_pool_submit(d->pool, &f->w, NULL, check_work, check_done);
    return true;
  }
  /* A chunk: in order, within the credit and the bound on a list. */
  if (m->offset != f->len || m->data_len > f->granted - f->len) {
    d->peers.protocol_errors++;
    d->peers.lists_refused++;
    fetch_fail(d, f, "a chunk out of order, past its credit or past the largest list");
    return true;
  }
  if (f->len + m->data_len > f->cap) {
    size_t cap = f->cap != 0 ? f->cap : 65536;
    while (cap < f->len + m->data_len)
      cap *= 2;
    if (cap > MESH_HF_FILELIST_MAX)
      cap = MESH_HF_FILELIST_MAX;
    uint8_t *b = realloc(f->buf, cap);
    if (b == NULL) {
      fetch_fail(d, f, "out of memory");
      return true;
    }
    f->buf = b;
    f->cap = cap;
  }
  memcpy(f->buf + f->len, m->data, m->data_len);
  f->len += m->data_len;
  f->owed += m->data_len;
  f->last_rx = mesh_loop_now(d->loop);
  fetch_grant(d, f);
  return true;
}

void dl_lists_finished(mesh_downloads *d, uint64_t dl_id)
{
  for (size_t i = 0; i < LIST_FETCH_MAX; i++) {
    list_fetch *f = &d->lists[i];
    if (!f->used || f->dl_id != dl_id)
      continue;
    if (f->w.busy) {
      f->dropped = true; /* freed by check_done */
      continue;
    }
    if (f->id != 0) {
      mesh_bulk_msg m = {.kind = MESH_BULK_CANCEL, .id = f->id};
      (void)dl_bulk_send(d, &f->peer, &m);
    }
    fetch_free(f);
  }
}

void dl_lists_tick(mesh_downloads *d, mesh_time_ms now)
{
  for (size_t i = 0; i < LIST_FETCH_MAX; i++) {
    list_fetch *f = &d->lists[i];
    if (!f->used || f->w.busy)
      continue;
    if (f->id == 0) {
      /* A suspect had it: ask again. */
      if (fetch_ask(d, f) == -ENOENT)
        fetch_give_up(d, f, -EIO);
      continue;
    }
    uint64_t epoch = 0;
    if (mesh_coord_view_of(d->coord, &f->peer, &epoch) != 1 || epoch != f->epoch)
      fetch_fail(d, f, "it left the view or its epoch ended");
    else if (mesh_net_route(d->net, &f->peer, MESH_CLASS_STREAM) == NULL)
      fetch_fail(d, f, "its connection is gone");
    else if (now - f->last_rx > LIST_STALL_MS)
      fetch_fail(d, f, "it sent nothing for 5 s");
  }
}

bool dl_lists_running(const mesh_downloads *d)
{
  for (size_t i = 0; i < LIST_FETCH_MAX; i++)
    if (d->lists[i].used)
      return true;
  return false;
}

void dl_lists_close(mesh_downloads *d)
{
  for (size_t i = 0; i < LIST_FETCH_MAX; i++) {
    list_fetch *f = &d->lists[i];
    if (f->w.busy)
      f->dropped = true;
    else if (f->used)
      fetch_free(f);
  }
}
