#include "src/daemon/downloads.h"

#include "src/base/clock.h"
#include "src/base/config.h"
#include "src/base/err.h"
#include "src/base/log.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Downloads running in the client, at most one per (model, revision). */
#define ACTIVE_MAX 64
/* Store items written in one transaction at most; a longer drain is split. */
#define BATCH_MAX 256
/* Room for the models directory, so that it and a model directory name
 * always fit in a path. */
#define MODELS_DIR_MAX (PATH_MAX - MESH_MODEL_DIR_MAX - 2)

/* Messages to peers that had no connection when sent (a document, a command)
 * are kept, bounded, and sent when the peer's connection comes up, instead
 * of waiting for the next anti-entropy round. */
#define HELD_PEERS 16
#define HELD_PER_PEER 4
#define HELD_BYTES_MAX (8u << 20)

typedef struct held_msg {
  uint8_t *buf; /* owned */
  size_t len;
} held_msg;

typedef struct held_peer {
  bool used;
  mesh_peer_id peer;
  held_msg msgs[HELD_PER_PEER]; /* oldest first */
  size_t n;
  mesh_time_ms at; /* when the last one was kept: the oldest slot is reused */
} held_peer;

typedef struct active {
  bool used;
  char model_id[MESH_MODEL_ID_MAX];
  char revision[MESH_REVISION_MAX + 1];
  uint64_t hf_id;  /* the client's id */
  bool accepted;   /* the core asked for the download (not only a size check) */
  bool listed;     /* the file list arrived */
} active;

struct mesh_downloads {
  mesh_node *node;       /* borrowed */
  mesh_membership *mem;  /* borrowed */
  mesh_loop *loop;       /* the node's */
  mesh_net *net;         /* the node's */
  mesh_coord *coord;     /* the core */
  mesh_store *store;     /* own entries and journal */
  mesh_diskexec *disk;   /* the models directory */
  mesh_hf_client *hf;    /* downloads */
  mesh_rng rng;          /* retry jitter */
  mesh_timer *timer;     /* the core's next deadline */
  char models_dir[MODELS_DIR_MAX];
  active active[ACTIVE_MAX];
  mesh_coord_out batch[BATCH_MAX]; /* store items of this drain */
  size_t n_batch;
  bool draining; /* re-entry guard: results fed back while draining */
  mesh_downloads_result_fn result_fn; /* answers of other nodes to our commands */
  void *result_arg;
  held_peer held[HELD_PEERS]; /* messages waiting for a connection */
  size_t held_bytes;          /* their total size */
  mesh_downloads_counters counters;
};

static void drain(mesh_downloads *d);

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
  mesh_hf_request req = {
      .repo = act->model_id, .revision = act->revision, .model_dir = dir, .max_bytes = 0};
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
  mesh_time_ms now = mesh_loop_now(d->loop);
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
  case MESH_COORD_ACT_DELETE: {
    cancel_active(d, act->model_id, act->revision);
    int rc = mesh_diskexec_delete(d->disk, act->model_dir);
    if (rc != 0 && rc != -EAGAIN)
      MESH_LOG_RL(MESH_LOG_WARN, "downloads", "delete of %s failed: %s", act->model_dir,
                  mesh_strerror(rc));
    mesh_coord_delete_result(d->coord, act->model_id, act->revision, rc, now);
    break;
  }
  case MESH_COORD_ACT_VERIFY: {
    bool present = false;
    uint64_t bytes = 0;
    uint32_t partials = 0;
    int rc = mesh_diskexec_inspect(d->disk, act->model_dir, &present, &bytes, &partials);
    if (rc != 0 && rc != -EAGAIN)
      present = false;
    mesh_coord_verified(d->coord, act->model_id, act->revision, present && partials == 0, bytes,
                        now);
    break;
  }
  }
}

static void flush_batch(mesh_downloads *d)
{
  if (d->n_batch == 0)
    return;
  int rc = mesh_store_apply(d->store, d->batch, d->n_batch, mesh_clock_wall_ms(),
                            mesh_node_epoch(d->node));
  if (rc != 0) {
    d->counters.store_failures++;
    MESH_LOG_RL(MESH_LOG_ERROR, "downloads", "store write of %zu items failed: %s", d->n_batch,
                mesh_strerror(rc));
  }
  for (size_t i = 0; i < d->n_batch; i++)
    mesh_coord_out_release(&d->batch[i]);
  d->n_batch = 0;
}

static void held_drop_first(mesh_downloads *d, held_peer *h)
{
  d->held_bytes -= h->msgs[0].len;
  free(h->msgs[0].buf);
  memmove(&h->msgs[0], &h->msgs[1], (h->n - 1) * sizeof h->msgs[0]);
  h->n--;
}

static void held_clear(mesh_downloads *d, held_peer *h)
{
  while (h->n > 0)
    held_drop_first(d, h);
  h->used = false;
}

/* Keeps a copy of a message the peer could not be sent yet (bounded: the
 * oldest go first; anti-entropy repairs whatever is dropped). */
static void held_add(mesh_downloads *d, const mesh_peer_id *to, const uint8_t *buf, size_t len)
{
  if (len > HELD_BYTES_MAX)
    return;
  held_peer *h = NULL, *oldest = &d->held[0];
  for (size_t i = 0; i < HELD_PEERS && h == NULL; i++) {
    if (d->held[i].used && mesh_peer_id_eq(&d->held[i].peer, to))
      h = &d->held[i];
    else if (!d->held[i].used || (oldest->used && d->held[i].at < oldest->at))
      oldest = &d->held[i];
  }
  if (h == NULL) {
    h = oldest;
    held_clear(d, h);
    h->used = true;
    h->peer = *to;
  }
  if (h->n == HELD_PER_PEER)
    held_drop_first(d, h);
  while (d->held_bytes + len > HELD_BYTES_MAX) {
    held_peer *victim = NULL;
    for (size_t i = 0; i < HELD_PEERS; i++)
      if (d->held[i].used && d->held[i].n > 0 && (victim == NULL || d->held[i].at < victim->at))
        victim = &d->held[i];
    if (victim == NULL)
      return;
    held_drop_first(d, victim);
  }
  uint8_t *copy = malloc(len);
  if (copy == NULL)
    return;
  memcpy(copy, buf, len);
  h->msgs[h->n++] = (held_msg){.buf = copy, .len = len};
  h->at = mesh_loop_now(d->loop);
  d->held_bytes += len;
}

static void on_peer_up(void *arg, const mesh_peer_id *peer)
{
  mesh_downloads *d = arg;
  for (size_t i = 0; i < HELD_PEERS; i++) {
    held_peer *h = &d->held[i];
    if (!h->used || !mesh_peer_id_eq(&h->peer, peer))
      continue;
    for (size_t k = 0; k < h->n; k++)
      if (mesh_net_send(d->net, peer, MESH_CH_COORD, MESH_CLASS_STREAM, h->msgs[k].buf,
                        h->msgs[k].len) == 0)
        d->counters.held_sent++;
    held_clear(d, h);
  }
}

/* Takes over a store item; it is written with the rest of this drain. */
static void batch_add(mesh_downloads *d, const mesh_coord_out *item)
{
  if (d->n_batch == BATCH_MAX)
    flush_batch(d);
  d->batch[d->n_batch++] = *item;
}

static void drain(mesh_downloads *d)
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
        held_add(d, &item.u.send.to, item.u.send.bytes, item.u.send.len);
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
      if (item.u.result.code == 0)
        LOG_INFO("downloads", "command %llu carried out by %s",
                 (unsigned long long)item.u.result.seq, id);
      else
        LOG_WARN("downloads", "command %llu refused by %s: %s",
                 (unsigned long long)item.u.result.seq, id, item.u.result.message);
      if (d->result_fn != NULL)
        d->result_fn(d->result_arg, item.u.result.seq, item.u.result.code,
                     item.u.result.message);
      mesh_coord_out_release(&item);
      break;
    }
    case MESH_COORD_OUT_JOURNAL:
      LOG_INFO("downloads", "journal: %s %s", item.u.journal.model_id, item.u.journal.text);
      batch_add(d, &item);
      break;
    case MESH_COORD_OUT_STORE_PUT:
    case MESH_COORD_OUT_STORE_DEL:
    case MESH_COORD_OUT_STORE_META:
      batch_add(d, &item);
      break;
    }
  }
  flush_batch(d);
  d->draining = false;
  mesh_time_ms next = mesh_coord_next_deadline(d->coord);
  if (next == UINT64_MAX) {
    mesh_timer_cancel(d->timer);
  } else {
    mesh_time_ms now = mesh_loop_now(d->loop);
    mesh_timer_arm(d->timer, next > now ? next - now : 0);
  }
}

static void on_timer(void *arg, mesh_time_ms now)
{
  mesh_downloads *d = arg;
  mesh_coord_tick(d->coord, now);
  drain(d);
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

static void on_hf_report(const mesh_hf_report *r, void *ctx)
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
      drain(d); /* a DOWNLOAD action marks the transfer accepted */
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
    mesh_coord_progress(d->coord, model, rev, p->done_bytes, p->total_bytes, p->files_done,
                        p->files_total, p->speed_bps, p->eta_ms, now);
    break;
  case MESH_HF_REPORT_COMPLETED:
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
  drain(d);
}

static void on_view_event(void *arg, const mesh_view_event *ev)
{
  mesh_downloads *d = arg;
  mesh_coord_view_event(d->coord, ev, mesh_loop_now(d->loop));
  drain(d);
}

static void on_app_state(void *arg, const mesh_peer_id *from, uint64_t epoch, const uint8_t *buf,
                         size_t len)
{
  mesh_downloads *d = arg;
  mesh_coord_app_state(d->coord, from, buf, len, mesh_loop_now(d->loop));
  drain(d);
}

static void on_message(void *arg, const mesh_peer_id *from, uint64_t epoch, mesh_class cls,
                       const uint8_t *buf, size_t len)
{
  mesh_downloads *d = arg;
  int rc = mesh_coord_receive(d->coord, from, buf, len, mesh_loop_now(d->loop));
  if (rc != 0) {
    char id[MESH_PEER_ID_TEXT_MAX];
    mesh_peer_id_to_text(from, id, sizeof id);
    MESH_LOG_RL(MESH_LOG_WARN, "downloads", "refused a message from %s: %s", id,
                mesh_strerror(rc));
  }
  drain(d);
}

static int mkdir_p(const char *path)
{
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return -ENAMETOOLONG;
  for (char *p = buf + 1; *p != '\0'; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      return -errno;
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST)
    return -errno;
  return 0;
}

int mesh_downloads_new(mesh_node *node, mesh_membership *mem, const mesh_config *cfg,
                       mesh_downloads **out, char *err, size_t errlen)
{
  int rc;
  mesh_downloads *d = calloc(1, sizeof *d);
  if (d == NULL)
    return -ENOMEM;
  d->node = node;
  d->mem = mem;
  d->loop = mesh_node_loop(node);
  d->net = mesh_node_net(node);
  mesh_rng_seed_os(&d->rng);
  if (strlen(cfg->models_dir) >= sizeof d->models_dir) {
    snprintf(err, errlen, "models directory path too long");
    rc = -ENAMETOOLONG;
    goto fail;
  }
  snprintf(d->models_dir, sizeof d->models_dir, "%s", cfg->models_dir);

  if ((rc = mkdir_p(d->models_dir)) != 0) {
    snprintf(err, errlen, "models directory %s: %s", d->models_dir, mesh_strerror(rc));
    goto fail;
  }
  if ((rc = mesh_diskexec_open(d->models_dir, &d->disk)) != 0) {
    snprintf(err, errlen, "models directory %s: %s", d->models_dir, mesh_strerror(rc));
    goto fail;
  }

  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/mesh.db", cfg->home);
  mesh_store_settings ss = {.journal_max_records = (uint32_t)cfg->journal_max_records,
                            .journal_max_age_ms = cfg->journal_max_age_ms};
  if ((rc = mesh_store_open(path, &ss, &d->store, err, errlen)) != 0)
    goto fail;

  mesh_coord_settings cs;
  mesh_coord_settings_default(&cs);
  if (cfg->gc_grace_ms > 0)
    cs.gc_grace = cfg->gc_grace_ms;
  if (cfg->tombstone_ttl_ms > 0)
    cs.tombstone_ttl = cfg->tombstone_ttl_ms;
  cs.journal_max_records = (uint32_t)cfg->journal_max_records;
  cs.journal_max_age = cfg->journal_max_age_ms;
  cs.max_download_bytes = cfg->max_download_bytes;
  cs.models_dir = d->models_dir;
  if ((rc = mesh_coord_new(mesh_node_identity(node), mesh_node_epoch(node), &cs, &d->rng,
                           &d->coord)) != 0) {
    snprintf(err, errlen, "coordinator: %s", mesh_strerror(rc));
    goto fail;
  }

  mesh_coord_entry *entries = NULL;
  size_t n = 0;
  uint64_t version = 0;
  if ((rc = mesh_store_load(d->store, &entries, &n, &version)) != 0) {
    snprintf(err, errlen, "store %s: %s", path, mesh_strerror(rc));
    goto fail;
  }
  rc = mesh_coord_restore(d->coord, entries, n, version, mesh_loop_now(d->loop));
  free(entries);
  if (rc != 0) {
    snprintf(err, errlen, "restoring %zu entries: %s", n, mesh_strerror(rc));
    goto fail;
  }
  if (n > 0)
    LOG_INFO("downloads", "restored %zu entries of earlier epochs", n);

  mesh_hf_options ho;
  memset(&ho, 0, sizeof ho);
  ho.endpoint = cfg->hf_endpoint;
  ho.token = cfg->hf_token;
  ho.downloads_at_once = cfg->downloads_at_once;
  ho.files_at_once = cfg->files_at_once;
  ho.skip_space_check = true; /* the coordinator's size guard decides */
  if ((rc = mesh_hf_client_new(mesh_loop_base(d->loop), mesh_node_pool(d->node), &ho,
                               on_hf_report, d, &d->hf)) != 0) {
    snprintf(err, errlen, "download client (endpoint %s): %s", cfg->hf_endpoint,
             mesh_strerror(rc));
    goto fail;
  }
  if ((rc = mesh_timer_new(d->loop, on_timer, d, &d->timer)) != 0)
    goto fail;
  if ((rc = mesh_membership_subscribe(mem, on_view_event, on_app_state, d)) != 0)
    goto fail;
  mesh_membership_on_peer_up(mem, on_peer_up, d);
  if ((rc = mesh_node_on_message(node, MESH_CH_COORD, on_message, d)) != 0)
    goto fail;
  drain(d); /* what the restore asked for */
  *out = d;
  return 0;

fail:
  mesh_downloads_free(d);
  return rc;
}

void mesh_downloads_free(mesh_downloads *d)
{
  if (d == NULL)
    return;
  if (d->node != NULL)
    mesh_node_on_message(d->node, MESH_CH_COORD, NULL, NULL);
  if (d->mem != NULL)
    mesh_membership_on_peer_up(d->mem, NULL, NULL);
  if (d->timer != NULL)
    mesh_timer_free(d->timer);
  for (size_t i = 0; i < HELD_PEERS; i++)
    held_clear(d, &d->held[i]);
  mesh_hf_client_free(d->hf);
  flush_batch(d);
  mesh_coord_free(d->coord);
  mesh_store_close(d->store);
  mesh_diskexec_close(d->disk);
  free(d);
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
  drain(d);
  return rc;
}

int mesh_downloads_gc(mesh_downloads *d, uint64_t *collected)
{
  uint64_t before = mesh_coord_get_stats(d->coord)->entries_collected;
  mesh_coord_tick(d->coord, mesh_loop_now(d->loop));
  drain(d);
  *collected = mesh_coord_get_stats(d->coord)->entries_collected - before;
  return 0;
}

const mesh_coord *mesh_downloads_core(const mesh_downloads *d)
{
  return d->coord;
}

mesh_store *mesh_downloads_store(mesh_downloads *d)
{
  return d->store;
}

void mesh_downloads_hf_counters(const mesh_downloads *d, mesh_hf_counters *out)
{
  mesh_hf_get_counters(d->hf, out);
}

const mesh_downloads_counters *mesh_downloads_counters_get(const mesh_downloads *d)
{
  return &d->counters;
}
