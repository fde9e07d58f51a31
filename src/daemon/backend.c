/*
 * The control API's backend for a running node: what /state, /members,
 * /downloads, /journal and /metrics show, and the commands, read from and
 * handed to the membership and download parts. Everything here runs inside
 * a request handler on the loop thread and returns at once.
 */
#include "src/daemon/daemon_internal.h"

#include "net/rdma.h"

#include "src/base/err.h"
#include "src/base/log.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int be_get_self(void *ctx, mesh_api_self *out)
{
  mesh_daemon *d = ctx;
  mesh_peer_id_to_text(&mesh_node_identity(d->node)->id, d->self_text, sizeof d->self_text);
  out->peer_id = d->self_text;
  out->epoch = mesh_node_epoch(d->node);
  out->naddrs = mesh_membership_addrs(d->mem, &out->addrs);
  out->agent = "meshd/" MESH_VERSION;
  return 0;
}

static mesh_api_member_state api_state(mesh_swim_state s)
{
  switch (s) {
  case MESH_SWIM_SUSPECT:
    return MESH_API_SUSPECT;
  case MESH_SWIM_DEAD:
    return MESH_API_DEAD;
  case MESH_SWIM_LEFT:
    return MESH_API_LEFT;
  case MESH_SWIM_ALIVE:
    break;
  }
  return MESH_API_ALIVE;
}

static int be_list_members(void *ctx, mesh_api_member_fn fn, void *arg)
{
  mesh_daemon *d = ctx;
  mesh_api_self self;
  be_get_self(d, &self);
  mesh_api_member me = {.peer_id = self.peer_id,
                        .addrs = self.addrs,
                        .naddrs = self.naddrs,
                        .epoch = self.epoch,
                        .incarnation = mesh_swim_incarnation(mesh_membership_core(d->mem)),
                        .state = MESH_API_ALIVE,
                        .state_ms = mesh_loop_now(mesh_node_loop(d->node)) - d->started_at,
                        .transport = NULL,
                        .is_self = true};
  if (fn(arg, &me) != 0)
    return 0;
  const mesh_swim *s = mesh_membership_core(d->mem);
  mesh_time_ms now = mesh_loop_now(mesh_node_loop(d->node));
  size_t n = mesh_swim_member_count(s);
  for (size_t i = 0; i < n; i++) {
    mesh_swim_member_info info;
    if (mesh_swim_member_at(s, i, &info) != 0)
      continue;
    char id[MESH_PEER_ID_TEXT_MAX];
    mesh_peer_id_to_text(&info.id, id, sizeof id);
    int cipher = mesh_net_frame_cipher(mesh_node_net(d->node), &info.id);
    const char *addrs[MESH_SWIM_MAX_ADDRS];
    size_t na = 0;
    const char *p = info.addrs;
    for (size_t k = 0; k < info.n_addrs && na < MESH_SWIM_MAX_ADDRS; k++) {
      addrs[na++] = p;
      p += strlen(p) + 1;
    }
    mesh_api_member m = {
        .peer_id = id,
        .addrs = addrs,
        .naddrs = na,
        .epoch = info.epoch,
        .incarnation = info.incarnation,
        .state = api_state(info.state),
        .state_ms = now >= info.since ? now - info.since : 0,
        .transport = mesh_net_route(mesh_node_net(d->node), &info.id, MESH_CLASS_DATAGRAM),
        .frame_cipher = cipher >= 0 ? mesh_frame_cipher_name((mesh_frame_cipher)cipher) : NULL,
        .is_self = false};
    if (fn(arg, &m) != 0)
      break;
  }
  return 0;
}

static mesh_api_download_status api_status(mesh_coord_status s)
{
  switch (s) {
  case MESH_COORD_PENDING:
    return MESH_API_DL_PENDING;
  case MESH_COORD_ONGOING:
    return MESH_API_DL_ONGOING;
  case MESH_COORD_COMPLETED:
    return MESH_API_DL_COMPLETED;
  case MESH_COORD_FAILED:
    return MESH_API_DL_FAILED;
  case MESH_COORD_DELETING:
    break;
  }
  return MESH_API_DL_DELETING;
}

typedef struct visit_ctx {
  const mesh_downloads *dl;
  mesh_api_download_fn fn;
  void *arg;
  bool stop;
} visit_ctx;

static void visit_download(void *arg, const mesh_coord_view_entry *ve)
{
  visit_ctx *v = arg;
  if (v->stop)
    return;
  const mesh_coord_entry *e = ve->e;
  char owner[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(&e->owner, owner, sizeof owner);
  /* Where the files are on the owner's node: its models directory (ours, or
   * the one its document published) joined with the entry's directory. */
  char dir[PATH_MAX];
  const char *model_dir = NULL;
  if (ve->models_dir != NULL && ve->models_dir[0] != '\0' && e->model_dir[0] != '\0') {
    int n = snprintf(dir, sizeof dir, "%s/%s", ve->models_dir, e->model_dir);
    if (n > 0 && (size_t)n < sizeof dir)
      model_dir = dir;
  }
  mesh_api_download dl = {
      .owner_id = owner,
      .owner_epoch = e->owner_epoch,
      .model_id = e->model_id,
      .revision = e->revision,
      .status = api_status(e->status),
      .bytes_done = e->done_bytes,
      .bytes_total = e->total_bytes,
      .files_done = e->files_done,
      .files_total = e->files_total,
      /* An abandoned entry's owner is gone: its last speed means nothing now. */
      .speed_bps = ve->abandoned ? 0 : e->speed_bps,
      .eta_ms = ve->abandoned || e->eta_ms == UINT64_MAX || e->eta_ms > INT64_MAX
                    ? -1
                    : (int64_t)e->eta_ms,
      .model_dir = model_dir,
      .error = e->status == MESH_COORD_FAILED ? e->error : NULL,
      .abandoned = ve->abandoned,
      .collect_in_ms = ve->collect_in,
  };
  mesh_downloads_prov prov;
  if (ve->own && mesh_downloads_provenance(v->dl, e->model_id, e->revision, &prov) == 0) {
    dl.has_sources = true;
    dl.hub_bytes = prov.hub_bytes;
    dl.peer_bytes = prov.peer_bytes;
    dl.source_speed_bps = prov.speed_bps;
    dl.peers = prov.sources;
  }
  /* Kept in the entry (and the store): it outlives a restart, which the
   * byte counts above do not. */
  char list_from[MESH_PEER_ID_TEXT_MAX];
  if (ve->own && e->list_by_member) {
    mesh_peer_id_to_text(&e->list_from, list_from, sizeof list_from);
    dl.file_list_source = list_from;
  }
  if (v->fn(v->arg, &dl) != 0)
    v->stop = true;
}

static int be_list_downloads(void *ctx, mesh_api_download_fn fn, void *arg)
{
  mesh_daemon *d = ctx;
  visit_ctx v = {.dl = d->dl, .fn = fn, .arg = arg};
  /* Whether an owner is shown abandoned comes from the coordinator's mirror
   * of the view; /members reads the membership core. Should the mirror lag
   * (events lost at the end of a batch), it is brought up to the core
   * first, so that the two never disagree on who is in the view. */
  mesh_downloads_view_sync(d->dl);
  mesh_coord_visit(mesh_downloads_core(d->dl), mesh_loop_now(mesh_node_loop(d->node)),
                   visit_download, &v);
  return 0;
}

static const char *journal_kind(mesh_coord_journal_kind k)
{
  switch (k) {
  case MESH_COORD_J_COMMAND:
    return "command";
  case MESH_COORD_J_REFUSED:
    return "refused";
  case MESH_COORD_J_STATE:
    return "state";
  case MESH_COORD_J_RESTORE:
    return "restore";
  case MESH_COORD_J_REMOVED:
    return "removed";
  case MESH_COORD_J_SOURCE:
    return "source";
  }
  return "other";
}

typedef struct journal_ctx {
  mesh_daemon *d;
  mesh_api_journal_fn fn;
  void *arg;
} journal_ctx;

static int journal_one(void *arg, const mesh_store_journal_rec *r)
{
  journal_ctx *j = arg;
  mesh_api_journal_entry e = {.seq = (uint64_t)r->id,
                              .unix_ms = (int64_t)r->at_ms,
                              .kind = journal_kind(r->kind),
                              .node_id = j->d->self_text,
                              .model_id = r->model_id[0] ? r->model_id : NULL,
                              .message = r->text};
  return j->fn(j->arg, &e);
}

/* From the download part's in-memory copy of the newest records: no SQLite
 * on the loop. */
static int be_journal(void *ctx, size_t limit, mesh_api_journal_fn fn, void *arg)
{
  mesh_daemon *d = ctx;
  journal_ctx j = {.d = d, .fn = fn, .arg = arg};
  mesh_downloads_journal(d->dl, limit, journal_one, &j);
  return 0;
}

/* Runs a command; one carried to another node returns MESH_API_PENDING and
 * its API request waits for the target's answer. */
static int be_command(mesh_daemon *d, const mesh_api_call *call, mesh_coord_cmd_kind kind,
                      const char *node, const char *model, const char *revision, char *err,
                      size_t errlen)
{
  uint64_t seq = 0;
  int rc = mesh_downloads_command(d->dl, kind, node, model, revision, &seq, err, errlen);
  if (rc != 0 || seq == 0)
    return rc;
  /* A free slot, else the oldest: its request has timed out long ago (the
   * API holds at most as many as there are slots, each for a bounded time). */
  size_t slot = 0;
  for (size_t i = 0; i < MESH_API_MAX_PENDING; i++) {
    if (d->waiting[i].seq == 0) {
      slot = i;
      break;
    }
    if (d->waiting[i].seq < d->waiting[slot].seq)
      slot = i;
  }
  d->waiting[slot].seq = seq;
  d->waiting[slot].ticket = call->ticket;
  return MESH_API_PENDING;
}

void mesh_daemon_command_result(void *arg, uint64_t seq, int code, const char *message)
{
  mesh_daemon *d = arg;
  for (size_t i = 0; i < MESH_API_MAX_PENDING; i++) {
    if (d->waiting[i].seq != seq)
      continue;
    uint64_t ticket = d->waiting[i].ticket;
    d->waiting[i].seq = 0;
    if (d->api != NULL)
      mesh_api_command_done(d->api, ticket, code, message);
    return;
  }
}

static int be_start(void *ctx, const mesh_api_call *call, const char *node, const char *model,
                    const char *revision, char *err, size_t errlen)
{
  return be_command(ctx, call, MESH_COORD_CMD_START, node, model, revision, err, errlen);
}

static int be_delete(void *ctx, const mesh_api_call *call, const char *node, const char *model,
                     const char *revision, char *err, size_t errlen)
{
  return be_command(ctx, call, MESH_COORD_CMD_DELETE, node, model, revision, err, errlen);
}

static int be_cancel(void *ctx, const mesh_api_call *call, const char *node, const char *model,
                     const char *revision, char *err, size_t errlen)
{
  return be_command(ctx, call, MESH_COORD_CMD_CANCEL, node, model, revision, err, errlen);
}

static int be_gc(void *ctx, uint64_t *collected, char *err, size_t errlen)
{
  mesh_daemon *d = ctx;
  return mesh_downloads_gc(d->dl, collected);
}

static int be_leave(void *ctx, char *err, size_t errlen)
{
  mesh_daemon *d = ctx;
  int rc = mesh_daemon_leave(d);
  if (rc == -EALREADY)
    snprintf(err, errlen, "already leaving");
  return rc;
}

static int be_transport_reset(void *ctx, const char *node, char *err, size_t errlen)
{
  mesh_daemon *d = ctx;
  mesh_peer_id id;
  if (mesh_peer_id_parse(node, &id) != 0) {
    snprintf(err, errlen, "not a peer ID: %s", node);
    return -EINVAL;
  }
  int rc = mesh_rdma_reset_peer(mesh_node_net(d->node), &id);
  if (rc == -ENOENT)
    snprintf(err, errlen, "peer %s has no RDMA queue pair", node);
  return rc;
}

const mesh_api_backend_ops mesh_daemon_backend = {
    .get_self = be_get_self,
    .list_members = be_list_members,
    .list_downloads = be_list_downloads,
    .journal = be_journal,
    .metrics = mesh_daemon_metrics,
    .start = be_start,
    .delete_model = be_delete,
    .cancel = be_cancel,
    .gc = be_gc,
    .leave = be_leave,
    .transport_reset = be_transport_reset,
};
