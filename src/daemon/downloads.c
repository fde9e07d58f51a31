/*
 * The download part of the daemon. See downloads.h for the threading model;
 * in short: everything here runs on the loop thread except the work
 * functions (store_work, disk_work, start_work), which run on pool workers
 * and touch only what their item carries.
 */
#include "src/daemon/downloads.h"

#include "src/base/clock.h"
#include "src/base/config.h"
#include "src/base/err.h"
#include "src/base/log.h"
#include "src/base/pool.h"
#include "src/daemon/api.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Downloads running in the client, at most one per (model, revision). */
#define ACTIVE_MAX 64
/* Store items written in one transaction at most; a longer drain is split. */
#define BATCH_MAX 256
/* Store batches that exist at once (each holds up to BATCH_MAX items, about
 * 200 KiB): on the strand or waiting for it. Made when first needed, kept
 * for reuse. When all are taken and the newest is full, further store items
 * are dropped and counted, as a batch the store refused would be. */
#define STORE_BATCHES_MAX 16
/* Of those, handed to the strand at once: one running and one queued behind
 * it, so that the worker goes on without waiting for the loop; the rest wait
 * on the loop, where a later drain can still add to the newest. */
#define STORE_INFLIGHT 2
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

/*
 * One transaction's worth of store items. Ownership: the loop fills it (the
 * items are taken over from the drain); at mesh_pool_submit it passes to the
 * store strand, whose worker runs the transaction and copies the store's
 * counters into it; from the first line of store_done it is the loop's
 * again, which releases the items and keeps it for reuse.
 */
typedef struct store_batch {
  mesh_work work;           /* the pool item; first, so that the item is the batch */
  mesh_downloads *d;        /* for store_done only (the worker never reads it) */
  mesh_store *store;        /* handed over with the item */
  uint64_t wall_ms;         /* stamps its journal records */
  uint64_t epoch;           /* the node's epoch when it was opened */
  int64_t first_id;         /* id of its first journal record, 0 when it has none */
  size_t n_journal;         /* its journal records: first_id .. first_id + n_journal - 1 */
  int rc;                   /* the transaction's result (written by the worker) */
  mesh_store_stats stats;   /* the store's counters after it (written by the worker) */
  struct store_batch *next; /* waiting list or free list */
  size_t n;                 /* items used */
  mesh_coord_out items[BATCH_MAX];
} store_batch;

/*
 * A DELETE or VERIFY action on the pool, on the disk strand (so that a
 * delete and an inspection never overlap; a job's next slice goes to the
 * back of the strand, so other models' work runs between slices). The loop
 * fills it; from mesh_pool_submit to disk_done the worker owns the result
 * fields and the scan; the rest is read-only meanwhile.
 */
typedef struct disk_job {
  mesh_work work;              /* the pool item; first */
  mesh_downloads *d;           /* for disk_done only */
  mesh_diskexec *disk;         /* shared with other jobs; its calls are thread-safe */
  mesh_coord_action_kind kind; /* DELETE or VERIFY */
  char model_id[MESH_MODEL_ID_MAX];
  char revision[MESH_REVISION_MAX + 1];
  char model_dir[MESH_MODEL_DIR_MAX];
  int rc;                /* worker: the call's result */
  bool present;          /* worker, VERIFY: the directory is there */
  uint64_t bytes;        /* worker, VERIFY: bytes of its regular files */
  uint32_t partials;     /* worker, VERIFY: ".partial" files */
  uint32_t slices;       /* slices run so far */
  bool stale;            /* VERIFY overtaken by a DELETE: its result is dropped */
  mesh_diskexec_scan *scan;   /* VERIFY: the inspection's place (the worker's while submitted) */
  struct disk_job *next;      /* d->jobs: every job not yet done */
  struct disk_job *wait_next; /* d->verify_waiting */
} disk_job;

/* The newest journal records, as the store holds them (same ids, times and
 * epochs), oldest first in a ring, so that /journal never reads SQLite. */
typedef struct journal_mirror {
  mesh_store_journal_rec *recs; /* cap records, owned */
  size_t cap;                   /* min(journal_max_records, MESH_API_JOURNAL_MAX) */
  size_t head;                  /* index of the oldest */
  size_t n;                     /* records held */
} journal_mirror;

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
  mesh_pool *pool;       /* the node's */
  mesh_coord *coord;     /* the core */
  mesh_store *store;     /* own entries and journal; used on store_strand only */
  mesh_strand *store_strand; /* orders the store's transactions as the drains */
  mesh_strand *disk_strand;  /* orders deletes and inspections */
  mesh_diskexec *disk;       /* the models directory; used by disk jobs */
  mesh_hf_client *hf;    /* downloads */
  mesh_rng rng;          /* retry jitter */
  mesh_timer *timer;     /* the core's next deadline */
  char models_dir[MODELS_DIR_MAX];
  active active[ACTIVE_MAX];
  store_batch *waiting;            /* batches not yet handed to the strand, oldest first */
  store_batch *waiting_tail;       /* the newest of them: a drain adds to it while not full */
  store_batch *spare;              /* batches written, kept for reuse */
  size_t n_batches;                /* made so far (at most STORE_BATCHES_MAX) */
  size_t n_waiting;                /* on the waiting list */
  size_t n_submitted;              /* on the strand (at most STORE_INFLIGHT) */
  mesh_store_settings journal_set; /* the store's journal bounds, which the mirror keeps too */
  mesh_store_stats store_stats;    /* the store's counters, copied after each transaction */
  journal_mirror journal;          /* the newest records, served to /journal */
  int64_t journal_next_id;         /* the id the next journal record gets */
  disk_job *jobs;                  /* disk jobs not yet done (waiting or submitted) */
  disk_job *verify_waiting;        /* inspections waiting for the one running, oldest first */
  disk_job *verify_running;        /* the inspection on the strand, or NULL */
  bool stopping;                   /* mesh_downloads_free began: done functions report nothing */
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

/* ---- deletes and inspections on the pool ------------------------------ */

/* On a worker: one slice of a delete or of an inspection. Touches only the
 * job, its scan and the shared, thread-safe disk executor. A finished scan
 * is closed here, so its directories are closed off the loop too. */
static void disk_work(mesh_work *w)
{
  disk_job *j = (disk_job *)w;
  if (j->kind == MESH_COORD_ACT_DELETE) {
    j->rc = mesh_diskexec_delete(j->disk, j->model_dir);
    return;
  }
  if (j->scan == NULL) {
    j->rc = mesh_diskexec_scan_new(j->disk, j->model_dir, &j->scan);
    if (j->rc != 0)
      return;
  }
  j->rc = mesh_diskexec_scan_step(j->scan);
  mesh_diskexec_scan_result(j->scan, &j->present, &j->bytes, &j->partials);
  if (j->rc != -EAGAIN) {
    mesh_diskexec_scan_free(j->scan);
    j->scan = NULL;
  }
}

static void disk_done(mesh_work *w);

static void disk_submit(mesh_downloads *d, disk_job *j)
{
  mesh_pool_submit(d->pool, &j->work, d->disk_strand, disk_work, disk_done);
}

static void disk_forget(mesh_downloads *d, disk_job *j)
{
  for (disk_job **pp = &d->jobs; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == j) {
      *pp = j->next;
      break;
    }
  }
  mesh_diskexec_scan_free(j->scan); /* only a scan left unfinished */
  free(j);
}

/* Starts the next waiting inspection, if none runs. One at a time: a scan
 * keeps its directories open between slices, so scans of many models (after
 * a restart, every completed one is verified) must not all be open at once.
 * Those overtaken by a delete meanwhile are dropped unrun. */
static void verify_next(mesh_downloads *d)
{
  while (d->verify_running == NULL && d->verify_waiting != NULL) {
    disk_job *j = d->verify_waiting;
    d->verify_waiting = j->wait_next;
    j->wait_next = NULL;
    if (j->stale) {
      d->counters.verify_dropped++;
      disk_forget(d, j);
      continue;
    }
    d->verify_running = j;
    disk_submit(d, j);
  }
}

/* On the loop: a slice is back. One that ran out of its share goes on with
 * the next slice, at the back of the strand (other models' work runs in
 * between); the final result goes to the core with this turn's now. */
static void disk_done(mesh_work *w)
{
  disk_job *j = (disk_job *)w;
  mesh_downloads *d = j->d;
  d->counters.disk_slices++;
  j->slices++;
  if (d->stopping) {
    /* Shutting down: the entry stays as stored (deleting, or completed to
     * be verified) and the next start carries it on. */
    if (d->verify_running == j)
      d->verify_running = NULL;
    disk_forget(d, j);
    return;
  }
  if (j->rc == -EAGAIN && !(j->kind == MESH_COORD_ACT_VERIFY && j->stale)) {
    disk_submit(d, j);
    return;
  }
  mesh_time_ms now = mesh_loop_now(d->loop);
  if (j->kind == MESH_COORD_ACT_DELETE) {
    if (j->rc != 0)
      MESH_LOG_RL(MESH_LOG_WARN, "downloads", "delete of %s failed: %s", j->model_dir,
                  mesh_strerror(j->rc));
    else if (j->slices > 1)
      LOG_DEBUG("downloads", "deleted %s in %u slices", j->model_dir, j->slices);
    mesh_coord_delete_result(d->coord, j->model_id, j->revision, j->rc, now);
  } else {
    d->verify_running = NULL;
    if (j->stale) {
      d->counters.verify_dropped++;
    } else {
      bool present = j->present && j->rc == 0;
      mesh_coord_verified(d->coord, j->model_id, j->revision, present && j->partials == 0, j->bytes,
                          now);
    }
    verify_next(d);
  }
  disk_forget(d, j);
  drain(d);
}

/* Hands a DELETE or VERIFY to the pool. At most one action per own entry is
 * in flight (the core's rule), so jobs are bounded by the entries. */
static void disk_start(mesh_downloads *d, const mesh_coord_action *act)
{
  disk_job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    /* No memory for the job: the core hears a failure and retries later. */
    mesh_time_ms now = mesh_loop_now(d->loop);
    if (act->kind == MESH_COORD_ACT_DELETE)
      mesh_coord_delete_result(d->coord, act->model_id, act->revision, -ENOMEM, now);
    else
      mesh_coord_verified(d->coord, act->model_id, act->revision, false, 0, now);
    return;
  }
  j->d = d;
  j->disk = d->disk;
  j->kind = act->kind;
  snprintf(j->model_id, sizeof j->model_id, "%s", act->model_id);
  snprintf(j->revision, sizeof j->revision, "%s", act->revision);
  snprintf(j->model_dir, sizeof j->model_dir, "%s", act->model_dir);
  if (act->kind == MESH_COORD_ACT_DELETE) {
    /* An inspection of the same entry still waiting or running must not
     * report after the delete began: the entry is no longer what it saw. */
    for (disk_job *o = d->jobs; o != NULL; o = o->next)
      if (o->kind == MESH_COORD_ACT_VERIFY && strcmp(o->model_id, j->model_id) == 0 &&
          strcmp(o->revision, j->revision) == 0)
        o->stale = true;
  }
  j->next = d->jobs;
  d->jobs = j;
  if (act->kind == MESH_COORD_ACT_DELETE) {
    disk_submit(d, j);
    return;
  }
  disk_job **tail = &d->verify_waiting;
  while (*tail != NULL)
    tail = &(*tail)->wait_next;
  *tail = j;
  verify_next(d);
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
    disk_start(d, act);
    break;
  case MESH_COORD_ACT_VERIFY:
    disk_start(d, act);
    break;
  }
}

/* ---- the journal mirror ------------------------------------------------- */

static mesh_store_journal_rec *mirror_at(journal_mirror *m, size_t i)
{
  return &m->recs[(m->head + i) % m->cap];
}

static void mirror_drop_oldest(journal_mirror *m)
{
  m->head = (m->head + 1) % m->cap;
  m->n--;
}

/* Appends a record and prunes as the store's apply will, with the same
 * times: by count (ids within journal_max_records of the newest) and by age
 * (older than journal_max_age_ms before the batch's time). Records are in id
 * order; their times are too unless the wall clock stepped back, the one
 * case where the mirror may keep an old record a little longer than the
 * store. */
static void mirror_append(mesh_downloads *d, const mesh_store_journal_rec *r)
{
  journal_mirror *m = &d->journal;
  if (m->n == m->cap)
    mirror_drop_oldest(m);
  *mirror_at(m, m->n) = *r;
  m->n++;
  uint64_t max_age = d->journal_set.journal_max_age_ms;
  while (m->n > 0) {
    const mesh_store_journal_rec *old = mirror_at(m, 0);
    bool too_many = old->id <= r->id - (int64_t)d->journal_set.journal_max_records;
    bool too_old = max_age != 0 && r->at_ms > max_age && old->at_ms < r->at_ms - max_age;
    if (!too_many && !too_old)
      break;
    mirror_drop_oldest(m);
  }
}

/* The store refused a batch: its records [first, last] are not in the store,
 * so they leave the mirror too (later records keep their ids; the store's
 * ids just have a gap). */
static void mirror_forget(mesh_downloads *d, int64_t first, int64_t last)
{
  journal_mirror *m = &d->journal;
  size_t kept = 0;
  for (size_t i = 0; i < m->n; i++) {
    mesh_store_journal_rec *r = mirror_at(m, i);
    if (r->id >= first && r->id <= last)
      continue;
    if (kept != i)
      *mirror_at(m, kept) = *r;
    kept++;
  }
  m->n = kept;
}

/* ---- store batches on the strand ---------------------------------------- */

/* On a worker, in drain order (the strand): the transaction. */
static void store_work(mesh_work *w)
{
  store_batch *b = (store_batch *)w;
  b->rc = mesh_store_apply_numbered(b->store, b->items, b->n, b->wall_ms, b->epoch, b->first_id);
  b->stats = *mesh_store_get_stats(b->store);
}

static void store_done(mesh_work *w);

static void note_backlog(mesh_downloads *d)
{
  d->counters.store_backlog = d->n_waiting + d->n_submitted;
  if (d->counters.store_backlog > d->counters.store_backlog_max)
    d->counters.store_backlog_max = d->counters.store_backlog;
}

/* Hands waiting batches to the strand, oldest first, while fewer than
 * STORE_INFLIGHT are on it. Called at the end of every drain and when a
 * transaction is done; the loop never waits for the store. */
static void flush_batch(mesh_downloads *d)
{
  while (d->waiting != NULL && d->n_submitted < STORE_INFLIGHT) {
    store_batch *b = d->waiting;
    d->waiting = b->next;
    if (d->waiting == NULL)
      d->waiting_tail = NULL;
    d->n_waiting--;
    b->next = NULL;
    d->n_submitted++;
    mesh_pool_submit(d->pool, &b->work, d->store_strand, store_work, store_done);
  }
  note_backlog(d);
}

/* On the loop: the transaction is over. Releases the items (the batch owned
 * them since batch_add) and keeps the batch for reuse. */
static void store_done(mesh_work *w)
{
  store_batch *b = (store_batch *)w;
  mesh_downloads *d = b->d;
  d->n_submitted--;
  d->store_stats = b->stats;
  if (b->rc != 0) {
    d->counters.store_failures++;
    MESH_LOG_RL(MESH_LOG_ERROR, "downloads", "store write of %zu items failed: %s", b->n,
                mesh_strerror(b->rc));
    if (b->n_journal > 0)
      mirror_forget(d, b->first_id, b->first_id + (int64_t)b->n_journal - 1);
  }
  for (size_t i = 0; i < b->n; i++)
    mesh_coord_out_release(&b->items[i]);
  b->n = 0;
  b->next = d->spare;
  d->spare = b;
  flush_batch(d);
}

/* The batch this drain's next item goes into: the newest waiting one while
 * it has room and the epoch is the same (drains that wait behind a slow
 * store share a transaction, and its journal records share the time the
 * batch was opened), else a new one. NULL when all STORE_BATCHES_MAX are
 * taken. */
static store_batch *batch_for_item(mesh_downloads *d)
{
  uint64_t epoch = mesh_node_epoch(d->node);
  store_batch *t = d->waiting_tail;
  if (t != NULL && t->n < BATCH_MAX && t->epoch == epoch)
    return t;
  store_batch *b = d->spare;
  if (b != NULL) {
    d->spare = b->next;
  } else {
    if (d->n_batches == STORE_BATCHES_MAX)
      return NULL;
    b = calloc(1, sizeof *b);
    if (b == NULL)
      return NULL;
    d->n_batches++;
  }
  b->d = d;
  b->store = d->store;
  b->wall_ms = mesh_clock_wall_ms();
  b->epoch = epoch;
  b->first_id = 0;
  b->n_journal = 0;
  b->n = 0;
  b->rc = 0;
  b->next = NULL;
  if (d->waiting_tail != NULL)
    d->waiting_tail->next = b;
  else
    d->waiting = b;
  d->waiting_tail = b;
  d->n_waiting++;
  note_backlog(d);
  return b;
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

/* Takes over a store item; it is written with the rest of this drain. A
 * journal record gets its id here and enters the mirror at once. */
static void batch_add(mesh_downloads *d, mesh_coord_out *item)
{
  store_batch *b = batch_for_item(d);
  if (b == NULL) {
    /* The store is this far behind (or memory ran out): the item is lost as
     * if its batch had failed; the core's state in memory is unaffected and
     * the next write of the same entry repairs the snapshot. */
    d->counters.store_dropped++;
    MESH_LOG_RL(MESH_LOG_ERROR, "downloads",
                "store is behind (%zu batches waiting): a store item was dropped",
                d->n_waiting + d->n_submitted);
    mesh_coord_out_release(item);
    return;
  }
  if (item->kind == MESH_COORD_OUT_JOURNAL) {
    int64_t id = d->journal_next_id++;
    if (b->n_journal == 0)
      b->first_id = id;
    b->n_journal++;
    mesh_store_journal_rec r = {
        .id = id, .at_ms = b->wall_ms, .epoch = b->epoch, .kind = item->u.journal.kind};
    snprintf(r.model_id, sizeof r.model_id, "%s", item->u.journal.model_id);
    snprintf(r.text, sizeof r.text, "%s", item->u.journal.text);
    mirror_append(d, &r);
  }
  b->items[b->n++] = *item;
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

/*
 * Start-up's disk and store work, as one pool item: the models directory is
 * made and opened, the store opened (migrated), this node's entries and the
 * newest journal records read. The loop thread waits for it with
 * mesh_pool_flush before it serves anything, then takes everything over.
 */
typedef struct start_job {
  mesh_work work;               /* the pool item; first */
  const char *models_dir;       /* borrowed from the caller, read-only */
  const char *db_path;          /* likewise */
  mesh_store_settings set;      /* the journal's bounds */
  size_t journal_cap;           /* journal records to read */
  mesh_diskexec *disk;          /* out: opened */
  mesh_store *store;            /* out: opened */
  mesh_coord_entry *entries;    /* out: allocated, own entries of earlier epochs */
  size_t n;                     /* out */
  uint64_t version;             /* out: the last document version */
  mesh_store_journal_rec *recs; /* out: allocated, newest first */
  size_t n_recs;                /* out */
  int64_t last_id;              /* out: the highest journal id given */
  mesh_store_stats stats;       /* out: the store's counters after opening */
  int rc;                       /* out: 0 or the first failure */
  char err[512];                /* out: what failed */
} start_job;

static void start_work(mesh_work *w)
{
  start_job *j = (start_job *)w;
  int rc;
  if ((rc = mkdir_p(j->models_dir)) != 0 ||
      (rc = mesh_diskexec_open(j->models_dir, &j->disk)) != 0) {
    snprintf(j->err, sizeof j->err, "models directory %s: %s", j->models_dir, mesh_strerror(rc));
    j->rc = rc;
    return;
  }
  if ((rc = mesh_store_open(j->db_path, &j->set, &j->store, j->err, sizeof j->err)) != 0) {
    j->rc = rc;
    return;
  }
  if ((rc = mesh_store_load(j->store, &j->entries, &j->n, &j->version)) != 0 ||
      (rc = mesh_store_journal_read(j->store, j->journal_cap, &j->recs, &j->n_recs)) != 0 ||
      (rc = mesh_store_journal_last_id(j->store, &j->last_id)) != 0) {
    snprintf(j->err, sizeof j->err, "store %s: %s", j->db_path, mesh_strerror(rc));
    j->rc = rc;
    return;
  }
  j->stats = *mesh_store_get_stats(j->store);
}

static void start_done(mesh_work *w)
{
  (void)w; /* the caller reads the results after its flush */
}

/* Test-only fault injection: MESHD_TEST_STORE_FAIL=N makes the store's Nth
 * statement step from the start fail as a disk error would (the store's own
 * hook), so that a test can watch a refused batch on a running node. Called
 * while no store item is in flight. */
static void store_test_fault(mesh_downloads *d)
{
  const char *v = getenv("MESHD_TEST_STORE_FAIL");
  if (v == NULL || v[0] == '\0')
    return;
  char *end = NULL;
  long n = strtol(v, &end, 10);
  if (end == v || *end != '\0' || n < 1 || n > INT32_MAX) {
    LOG_WARN("downloads", "MESHD_TEST_STORE_FAIL=%s is not a step count; ignored", v);
    return;
  }
  LOG_WARN("downloads", "test fault injection: store step %ld from now fails", n);
  mesh_store_fail_after(d->store, (int)n, -EIO);
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
  d->pool = mesh_node_pool(node);
  mesh_rng_seed_os(&d->rng);
  if (strlen(cfg->models_dir) >= sizeof d->models_dir) {
    snprintf(err, errlen, "models directory path too long");
    rc = -ENAMETOOLONG;
    goto fail;
  }
  snprintf(d->models_dir, sizeof d->models_dir, "%s", cfg->models_dir);
  if ((rc = mesh_strand_new(d->pool, &d->store_strand)) != 0 ||
      (rc = mesh_strand_new(d->pool, &d->disk_strand)) != 0) {
    snprintf(err, errlen, "work pool: %s", mesh_strerror(rc));
    goto fail;
  }

  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/mesh.db", cfg->home);
  d->journal_set = (mesh_store_settings){.journal_max_records = (uint32_t)cfg->journal_max_records,
                                         .journal_max_age_ms = cfg->journal_max_age_ms};
  d->journal.cap = d->journal_set.journal_max_records < MESH_API_JOURNAL_MAX
                       ? d->journal_set.journal_max_records
                       : MESH_API_JOURNAL_MAX;
  if (d->journal.cap == 0)
    d->journal.cap = 1;
  d->journal.recs = calloc(d->journal.cap, sizeof *d->journal.recs);
  if (d->journal.recs == NULL) {
    rc = -ENOMEM;
    goto fail;
  }

  /* Directory and store work at start runs on the pool like the rest; the
   * loop is not serving yet, so it simply waits for it here. */
  start_job *sj = calloc(1, sizeof *sj);
  if (sj == NULL) {
    rc = -ENOMEM;
    goto fail;
  }
  sj->models_dir = d->models_dir;
  sj->db_path = path;
  sj->set = d->journal_set;
  sj->journal_cap = d->journal.cap;
  mesh_pool_submit(d->pool, &sj->work, d->store_strand, start_work, start_done);
  mesh_pool_flush(d->pool);
  d->disk = sj->disk;
  d->store = sj->store;
  d->store_stats = sj->stats;
  for (size_t i = sj->n_recs; i > 0; i--)
    d->journal.recs[d->journal.n++] = sj->recs[i - 1];
  d->journal_next_id = sj->last_id + 1;
  mesh_coord_entry *entries = sj->entries;
  size_t n = sj->n;
  uint64_t version = sj->version;
  free(sj->recs);
  rc = sj->rc;
  if (rc != 0)
    snprintf(err, errlen, "%s", sj->err);
  free(sj);
  if (rc != 0) {
    free(entries);
    goto fail;
  }
  store_test_fault(d);

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
    free(entries);
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

/*
 * Shutdown: inputs stop first (messages, peer events, the timer, the
 * download client), then every batch still waiting is handed to the strand
 * and the pool is flushed: the last transactions commit, delete slices and
 * inspections in flight end without reporting (the store keeps those
 * entries as they were and the next start carries them on). Only then is the
 * store closed, on this thread: nothing of the pool uses it any more.
 */
void mesh_downloads_free(mesh_downloads *d)
{
  if (d == NULL)
    return;
  d->stopping = true;
  if (d->node != NULL)
    mesh_node_on_message(d->node, MESH_CH_COORD, NULL, NULL);
  if (d->mem != NULL)
    mesh_membership_on_peer_up(d->mem, NULL, NULL);
  if (d->timer != NULL)
    mesh_timer_free(d->timer);
  for (size_t i = 0; i < HELD_PEERS; i++)
    held_clear(d, &d->held[i]);
  mesh_hf_client_free(d->hf);
  if (d->store_strand != NULL)
    flush_batch(d);
  if (d->pool != NULL)
    mesh_pool_flush(d->pool);
  /* Inspections that never got their turn. */
  while (d->jobs != NULL)
    disk_forget(d, d->jobs);
  mesh_coord_free(d->coord);
  mesh_store_close(d->store);
  mesh_diskexec_close(d->disk);
  mesh_strand_free(d->store_strand);
  mesh_strand_free(d->disk_strand);
  while (d->spare != NULL) {
    store_batch *b = d->spare;
    d->spare = b->next;
    free(b);
  }
  free(d->journal.recs);
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

void mesh_downloads_store_stats(const mesh_downloads *d, mesh_store_stats *out)
{
  *out = d->store_stats;
}

void mesh_downloads_journal(const mesh_downloads *d, size_t limit, mesh_downloads_journal_fn fn,
                            void *arg)
{
  const journal_mirror *m = &d->journal;
  for (size_t k = 0; k < m->n && k < limit; k++) {
    const mesh_store_journal_rec *r = &m->recs[(m->head + m->n - 1 - k) % m->cap];
    if (fn(arg, r) != 0)
      break;
  }
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
  drain(d);
  return rc;
}
