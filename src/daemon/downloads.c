/*
 * The download part's assembly on the loop thread (see downloads.h for the
 * threading model): the drain of the coordinator's outbox and the actions it
 * carries out (downloads through the client here; deletes and inspections
 * in downloads_disk.c; store items in downloads_store.c; sends to peers
 * without a connection held in downloads_held.c), the inputs that feed the
 * core, and the control API's commands, renewal and read-outs. Everything in
 * this file runs on the loop thread.
 */
#include "src/daemon/downloads_internal.h"

#include "src/base/err.h"
#include "src/base/log.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

static active *find_active(mesh_downloads *d, const char *model, const char *rev)
{
  for (size_t i = 0; i < ACTIVE_MAX; i++)
    if (d->active[i].used && strcmp(d->active[i].model_id, model) == 0 &&
        strcmp(d->active[i].revision, rev) == 0)
      return &d->active[i];
  return NULL;
}

static void drop_active(active *a)
{
  memset(a, 0, sizeof *a);
}

static void model_path(mesh_downloads *d, const char *dir, char *buf, size_t len)
{
  snprintf(buf, len, "%s/%s", d->models_dir, dir);
}

int dl_marker_text(mesh_downloads *d, const char *model, const char *rev, char *buf, size_t cap)
{
  char self[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(&mesh_node_identity(d->node)->id, self, sizeof self);
  return mesh_diskexec_marker_text(self, model, rev, buf, cap);
}

static active *start_hf(mesh_downloads *d, const mesh_coord_action *act, bool accepted)
{
  active *slot = NULL;
  for (size_t i = 0; i < ACTIVE_MAX && slot == NULL; i++)
    if (!d->active[i].used)
      slot = &d->active[i];
  mesh_time_ms now = mesh_loop_now(d->loop);
  if (slot == NULL) {
    const char *msg = "too many downloads running at once";
    if (accepted)
      mesh_coord_download_failed(d->coord, act->model_id, act->revision, msg, now);
    else
      mesh_coord_space_failed(d->coord, act->model_id, act->revision, msg, now);
    return NULL;
  }
  char dir[PATH_MAX];
  model_path(d, act->model_dir, dir, sizeof dir);
  /* The directory the download makes is marked as this node's, and one
   * made by an earlier version is adopted when the store's record of the
   * entry says this node made it (act->adopt). */
  char mark[MESH_DISKEXEC_MARKER_MAX];
  int mrc = dl_marker_text(d, act->model_id, act->revision, mark, sizeof mark);
  mesh_hf_request req = {.repo = act->model_id,
                         .revision = act->revision,
                         .model_dir = dir,
                         .max_bytes = 0,
                         .owner_mark = mrc == 0 ? mark : NULL,
                         .adopt = act->adopt};
  slot->used = true;
  snprintf(slot->model_id, sizeof slot->model_id, "%s", act->model_id);
  snprintf(slot->revision, sizeof slot->revision, "%s", act->revision);
  slot->accepted = accepted;
  req.user = slot;
  int rc = mesh_hf_start(d->hf, &req, &slot->hf_id);
  if (rc != 0) {
    char msg[MESH_COORD_ERROR_MAX];
    snprintf(msg, sizeof msg, "cannot start the download: %s", mesh_strerror(rc));
    drop_active(slot);
    if (accepted)
      mesh_coord_download_failed(d->coord, act->model_id, act->revision, msg, now);
    else
      mesh_coord_space_failed(d->coord, act->model_id, act->revision, msg, now);
    return NULL;
  }
  return slot;
}

static void cancel_active(mesh_downloads *d, const char *model, const char *rev)
{
  active *a = find_active(d, model, rev);
  if (a == NULL)
    return;
  mesh_hf_cancel(d->hf, a->hf_id);
  drop_active(a);
}

static void run_action(mesh_downloads *d, const mesh_coord_action *act)
{
  LOG_DEBUG("downloads", "%s %s@%s (%s)", mesh_coord_action_name(act->kind), act->model_id,
            act->revision, act->model_dir);
  switch (act->kind) {
  case MESH_COORD_ACT_CHECK_SPACE:
    /* The client lists the files and reports the total before any byte. */
    if (find_active(d, act->model_id, act->revision) == NULL)
      start_hf(d, act, false);
    break;
  case MESH_COORD_ACT_DOWNLOAD: {
    active *a = find_active(d, act->model_id, act->revision);
    if (a != NULL)
      a->accepted = true; /* the size check's transfer goes on */
    else
      start_hf(d, act, true);
    break;
  }
  case MESH_COORD_ACT_CANCEL:
    cancel_active(d, act->model_id, act->revision);
    break;
  case MESH_COORD_ACT_DELETE:
    /* The download of this entry, if one runs, is cancelled first, and the
     * walk is submitted only after mesh_hf_cancel returned. This relies on
     * the client's contract that cancel is synchronous on the loop: when it
     * returns, no write of that download is queued or running on the pool
     * and none will be, so the walk never races a write into the tree. */
    cancel_active(d, act->model_id, act->revision);
    dl_disk_start(d, act);
    break;
  case MESH_COORD_ACT_VERIFY:
    dl_disk_start(d, act);
    break;
  }
}

void dl_drain(mesh_downloads *d)
{
  if (d->draining)
    return; /* the outer drain picks up what this input produced */
  d->draining = true;
  mesh_coord_out item;
  while (mesh_coord_pop(d->coord, &item)) {
    switch (item.kind) {
    case MESH_COORD_OUT_ACTION:
      run_action(d, &item.u.action);
      mesh_coord_out_release(&item);
      break;
    case MESH_COORD_OUT_SEND: {
      int rc = mesh_net_send(d->net, &item.u.send.to, MESH_CH_COORD, MESH_CLASS_STREAM,
                             item.u.send.bytes, item.u.send.len);
      if (rc == -ENOTCONN)
        dl_held_add(d, &item.u.send.to, item.u.send.bytes, item.u.send.len);
      if (rc != 0) {
        d->counters.sends_failed++;
        char id[MESH_PEER_ID_TEXT_MAX];
        mesh_peer_id_to_text(&item.u.send.to, id, sizeof id);
        MESH_LOG_RL(MESH_LOG_DEBUG, "downloads", "send to %s: %s", id, mesh_strerror(rc));
      }
      mesh_coord_out_release(&item);
      break;
    }
    case MESH_COORD_OUT_APP_STATE:
      mesh_membership_set_app_state(d->mem, item.u.app_state.bytes, item.u.app_state.len);
      mesh_coord_out_release(&item);
      break;
    case MESH_COORD_OUT_RESULT: {
      char id[MESH_PEER_ID_TEXT_MAX];
      mesh_peer_id_to_text(&item.u.result.from, id, sizeof id);
      d->counters.results++;
      /* The message is the peer's text, escaped by the core. */
      if (item.u.result.code == 0)
        LOG_INFO("downloads", "command %llu carried out by %s",
                 (unsigned long long)item.u.result.seq, id);
      else
        LOG_WARN("downloads", "command %llu refused by %s: %s",
                 (unsigned long long)item.u.result.seq, id, item.u.result.message);
      if (d->result_fn != NULL)
        d->result_fn(d->result_arg, item.u.result.seq, item.u.result.code, item.u.result.message);
      mesh_coord_out_release(&item);
      break;
    }
    case MESH_COORD_OUT_JOURNAL:
      LOG_INFO("downloads", "journal: %s %s", item.u.journal.model_id, item.u.journal.text);
      dl_store_add(d, &item);
      break;
    case MESH_COORD_OUT_STORE_PUT:
    case MESH_COORD_OUT_STORE_DEL:
    case MESH_COORD_OUT_STORE_META:
      dl_store_add(d, &item);
      break;
    }
  }
  dl_store_flush(d);
  d->draining = false;
  mesh_time_ms next = mesh_coord_next_deadline(d->coord);
  if (next == UINT64_MAX) {
    mesh_timer_cancel(d->timer);
  } else {
    mesh_time_ms now = mesh_loop_now(d->loop);
    mesh_timer_arm(d->timer, next > now ? next - now : 0);
  }
}

void dl_on_timer(void *arg, mesh_time_ms now)
{
  mesh_downloads *d = arg;
  mesh_coord_tick(d->coord, now);
  dl_drain(d);
}

typedef struct status_probe {
  const char *model;
  const char *rev;
  int status; /* 0 when there is no such own entry */
} status_probe;

static void probe_entry(void *arg, const mesh_coord_view_entry *ve)
{
  status_probe *p = arg;
  if (ve->own && strcmp(ve->e->model_id, p->model) == 0 && strcmp(ve->e->revision, p->rev) == 0)
    p->status = (int)ve->e->status;
}

/* The status of this node's entry for (model, rev), or 0 when it has none. */
static int own_status(mesh_downloads *d, const char *model, const char *rev)
{
  status_probe p = {.model = model, .rev = rev};
  mesh_coord_visit(d->coord, mesh_loop_now(d->loop), probe_entry, &p);
  return p.status;
}

void dl_on_hf_report(const mesh_hf_report *r, void *ctx)
{
  mesh_downloads *d = ctx;
  active *a = r->user;
  if (a == NULL || !a->used || a->hf_id != r->id)
    return;
  mesh_time_ms now = mesh_loop_now(d->loop);
  const mesh_hf_progress *p = &r->progress;
  char model[MESH_MODEL_ID_MAX], rev[MESH_REVISION_MAX + 1];
  snprintf(model, sizeof model, "%s", a->model_id);
  snprintf(rev, sizeof rev, "%s", a->revision);
  switch (r->kind) {
  case MESH_HF_REPORT_LISTED:
    a->listed = true;
    if (!a->accepted) {
      /* What is already on disk (a resumed download) needs no new room. */
      uint64_t free_bytes = r->free_bytes + r->present_bytes;
      mesh_coord_space(d->coord, model, rev, p->total_bytes, free_bytes, now);
      dl_drain(d); /* a DOWNLOAD action marks the transfer accepted */
      if (a->used && !a->accepted && a->hf_id == r->id) {
        int st = own_status(d, model, rev);
        if (st == MESH_COORD_PENDING || st == MESH_COORD_ONGOING) {
          /* Accepted, its DOWNLOAD only held back by a rate limit: the
           * transfer goes on and that action will find it running. */
          a->accepted = true;
        } else {
          /* Refused by the size guard (or gone): stop before the first byte. */
          mesh_hf_cancel(d->hf, a->hf_id);
          drop_active(a);
        }
      }
    } else {
      mesh_coord_progress(d->coord, model, rev, p->done_bytes, p->total_bytes, p->files_done,
                          p->files_total, 0, UINT64_MAX, now);
    }
    break;
  case MESH_HF_REPORT_PROGRESS:
    dl_prov_update(d, model, rev, p, r->id, false);
    mesh_coord_progress(d->coord, model, rev, p->done_bytes, p->total_bytes, p->files_done,
                        p->files_total, p->speed_bps, p->eta_ms, now);
    break;
  case MESH_HF_REPORT_COMPLETED:
    dl_prov_update(d, model, rev, p, r->id, true);
    drop_active(a);
    mesh_coord_completed(d->coord, model, rev, p->total_bytes, now);
    break;
  case MESH_HF_REPORT_FAILED: {
    bool was_download = a->listed || a->accepted;
    drop_active(a);
    if (r->message != NULL)
      LOG_WARN("downloads", "%s@%s failed: %s", model, rev, r->message);
    if (was_download)
      mesh_coord_download_failed(d->coord, model, rev, r->message ? r->message : "failed", now);
    else
      mesh_coord_space_failed(d->coord, model, rev, r->message ? r->message : "failed", now);
    break;
  }
  }
  dl_drain(d);
}

/*
 * Makes the coordinator's mirror equal to membership's view as it is now.
 * The follower moves to the view's number only when the whole view was
 * applied; otherwise (memory short) it stays behind and the next event or
 * read-out tries again. Logged at most a few times per window: a node short
 * of memory may lose many events.
 */
static void view_resync(mesh_downloads *d, const char *why)
{
  mesh_view_source src;
  mesh_swim_view_source(mesh_membership_core(d->mem), &src);
  uint64_t had = d->view.seq;
  uint64_t seq = src.seq(src.ctx);
  int rc = mesh_coord_view_resync(d->coord, &src, mesh_loop_now(d->loop));
  if (rc == 0)
    mesh_view_resynced(&d->view, seq);
  MESH_LOG_RL(MESH_LOG_WARN, "downloads",
              "view changes %llu..%llu reached the coordinator incompletely (%s): %s",
              (unsigned long long)had + 1, (unsigned long long)seq, why,
              rc == 0 ? "resynced from membership" : mesh_strerror(rc));
}

void dl_on_view_event(void *arg, const mesh_view_event *ev)
{
  mesh_downloads *d = arg;
  if (!d->hooks->pass_view_event(d->hooks->arg))
    return; /* as if membership could not queue it */
  switch (mesh_view_follow(&d->view, ev)) {
  case MESH_VIEW_APPLY:
    if (mesh_coord_view_event(d->coord, ev, mesh_loop_now(d->loop)) == 0)
      mesh_view_applied(&d->view, ev);
    else
      view_resync(d, "an event could not be applied");
    break;
  case MESH_VIEW_SKIP:
    break; /* a resync already read the view past it */
  case MESH_VIEW_RESYNC:
    view_resync(d, "a gap in the event numbers");
    break;
  }
  dl_drain(d);
}

void dl_on_view_gap(void *arg)
{
  mesh_downloads_view_sync(arg);
}

void mesh_downloads_view_sync(mesh_downloads *d)
{
  mesh_view_source src;
  mesh_swim_view_source(mesh_membership_core(d->mem), &src);
  if (!mesh_view_behind(&d->view, &src))
    return;
  view_resync(d, "events lost at the end of a batch");
  dl_drain(d);
}

void dl_on_app_state(void *arg, const mesh_peer_id *from, uint64_t epoch, const uint8_t *buf,
                     size_t len)
{
  mesh_downloads *d = arg;
  mesh_coord_app_state(d->coord, from, buf, len, mesh_loop_now(d->loop));
  dl_drain(d);
}

void dl_on_message(void *arg, const mesh_peer_id *from, uint64_t epoch, mesh_class cls,
                   const uint8_t *buf, size_t len)
{
  mesh_downloads *d = arg;
  int rc = mesh_coord_receive(d->coord, from, buf, len, mesh_loop_now(d->loop));
  if (rc != 0) {
    char id[MESH_PEER_ID_TEXT_MAX];
    mesh_peer_id_to_text(from, id, sizeof id);
    MESH_LOG_RL(MESH_LOG_WARN, "downloads", "refused a message from %s: %s", id, mesh_strerror(rc));
  }
  dl_drain(d);
}

void mesh_downloads_on_result(mesh_downloads *d, mesh_downloads_result_fn fn, void *arg)
{
  d->result_fn = fn;
  d->result_arg = arg;
}

int mesh_downloads_command(mesh_downloads *d, mesh_coord_cmd_kind kind, const char *node_text,
                           const char *model, const char *revision, uint64_t *seq_out, char *msg,
                           size_t msglen)
{
  mesh_peer_id target;
  const mesh_peer_id *tp = NULL;
  if (node_text != NULL && node_text[0] != '\0') {
    if (mesh_peer_id_parse(node_text, &target) != 0) {
      snprintf(msg, msglen, "not a peer ID: %s", node_text);
      return -EINVAL;
    }
    if (!mesh_peer_id_eq(&target, &mesh_node_identity(d->node)->id))
      tp = &target;
  }
  mesh_coord_cmd cmd = {.kind = kind, .model_id = model, .revision = revision, .target = tp};
  uint64_t seq = 0;
  int rc = mesh_coord_command(d->coord, &cmd, mesh_loop_now(d->loop), &seq, msg, msglen);
  if (seq_out != NULL)
    *seq_out = rc == 0 && tp != NULL ? seq : 0;
  dl_drain(d);
  return rc;
}

int mesh_downloads_gc(mesh_downloads *d, uint64_t *collected)
{
  uint64_t before = mesh_coord_get_stats(d->coord)->entries_collected;
  mesh_coord_tick(d->coord, mesh_loop_now(d->loop));
  dl_drain(d);
  *collected = mesh_coord_get_stats(d->coord)->entries_collected - before;
  return 0;
}

const mesh_coord *mesh_downloads_core(const mesh_downloads *d)
{
  return d->coord;
}

void mesh_downloads_hf_counters(const mesh_downloads *d, mesh_hf_counters *out)
{
  mesh_hf_get_counters(d->hf, out);
}

const mesh_downloads_counters *mesh_downloads_counters_get(const mesh_downloads *d)
{
  return &d->counters;
}

int mesh_downloads_renew(mesh_downloads *d, uint64_t epoch)
{
  int rc = mesh_coord_set_epoch(d->coord, epoch, mesh_loop_now(d->loop));
  if (rc == 0)
    LOG_INFO("downloads", "%zu own entries re-published under epoch %llu; transfers keep running",
             mesh_coord_own_count(d->coord), (unsigned long long)epoch);
  dl_drain(d);
  return rc;
}
