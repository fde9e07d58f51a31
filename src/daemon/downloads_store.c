/*
 * The download part's store writes and its journal mirror. The loop thread
 * takes over the store items of each drain into batches and hands them to
 * the store strand, one transaction per batch; store_work runs on a pool
 * worker and touches only its batch (and the store it carries); every other
 * function here runs on the loop thread, including store_done. The mirror of
 * the newest journal records is the loop's alone, so that /journal never
 * reads SQLite.
 */
#include "src/daemon/downloads_internal.h"

#include "src/base/clock.h"
#include "src/base/err.h"
#include "src/base/log.h"
#include "src/base/pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Store batches that exist at once (each holds up to BATCH_MAX items, about
 * 200 KiB): on the strand or waiting for it. Made when first needed, kept
 * for reuse. When all are taken and the newest is full, the state an item
 * carries is still never lost (see store_coalesce). */
#define STORE_BATCHES_MAX 16
/* Past STORE_BATCHES_MAX, room for one item per own entry and the
 * document's meta item: after coalescing, that is all a backed-up store can
 * be owed, so these few batches bound the backlog for good. */
#define STORE_OVERFLOW_BATCHES ((MESH_COORD_MAX_OWN_ENTRIES + 1 + BATCH_MAX - 1) / BATCH_MAX)
/* Of those, handed to the strand at once: one running and one queued behind
 * it, so that the worker goes on without waiting for the loop; the rest wait
 * on the loop, where a later drain can still add to the newest. */
#define STORE_INFLIGHT 2

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
  b->d->hooks->before_store_txn(b->d->hooks->arg);
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
void dl_store_flush(mesh_downloads *d)
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
 * them since dl_store_add) and keeps the batch for reuse. */
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
  dl_store_flush(d);
}

/* The batch this drain's next item goes into: the newest waiting one while
 * it has room and the epoch is the same (drains that wait behind a slow
 * store share a transaction, and its journal records share the time the
 * batch was opened), else a new one. NULL when all STORE_BATCHES_MAX are
 * taken. */
static store_batch *batch_for_item(mesh_downloads *d, size_t limit)
{
  uint64_t epoch = mesh_node_epoch(d->node);
  store_batch *t = d->waiting_tail;
  if (t != NULL && t->n < BATCH_MAX && t->epoch == epoch)
    return t;
  store_batch *b = d->spare;
  if (b != NULL) {
    d->spare = b->next;
  } else {
    if (d->n_batches >= limit)
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

/* True when a and b set the same row: the same own entry, or the meta. */
static bool same_row(const mesh_coord_out *a, const mesh_coord_out *b)
{
  if (a->kind == MESH_COORD_OUT_STORE_META || b->kind == MESH_COORD_OUT_STORE_META)
    return a->kind == b->kind;
  if (a->kind == MESH_COORD_OUT_JOURNAL || b->kind == MESH_COORD_OUT_JOURNAL)
    return false;
  return strcmp(a->u.entry.model_id, b->u.entry.model_id) == 0 &&
         strcmp(a->u.entry.revision, b->u.entry.revision) == 0;
}

/* The store is STORE_BATCHES_MAX batches behind. A PUT, DEL or META takes
 * the place of the newest waiting item that sets the same row: every item
 * after that one sets other rows, so writing the new one there leaves the
 * store exactly as appending it would, one write fewer. Batches on the
 * strand are the worker's and are not looked at. True when item was taken
 * over (the item it replaced is released). */
static bool store_coalesce(mesh_downloads *d, mesh_coord_out *item)
{
  store_batch *last_b = NULL;
  size_t last_i = 0;
  for (store_batch *b = d->waiting; b != NULL; b = b->next)
    for (size_t i = 0; i < b->n; i++)
      if (same_row(&b->items[i], item)) {
        last_b = b;
        last_i = i;
      }
  if (last_b == NULL)
    return false;
  mesh_coord_out_release(&last_b->items[last_i]);
  last_b->items[last_i] = *item;
  d->counters.store_coalesced++;
  return true;
}

/* Takes over a store item; it is written with the rest of this drain. A
 * journal record gets its id here and enters the mirror at once. */
void dl_store_add(mesh_downloads *d, mesh_coord_out *item)
{
  store_batch *b = batch_for_item(d, STORE_BATCHES_MAX);
  if (b == NULL && item->kind != MESH_COORD_OUT_JOURNAL) {
    /* Entry state is never dropped: it replaces a waiting write of the
     * same row, or takes one of the overflow batches, which one item per
     * row can never fill. */
    if (store_coalesce(d, item))
      return;
    b = batch_for_item(d, STORE_BATCHES_MAX + STORE_OVERFLOW_BATCHES);
  }
  if (b == NULL) {
    /* A journal record while the store is this far behind (or no memory
     * for an overflow batch): the record is lost, counted and logged; the
     * journal is a bounded log and the entries' state is unaffected. */
    d->counters.store_dropped++;
    MESH_LOG_RL(MESH_LOG_ERROR, "downloads",
                "store is behind (%zu batches waiting): a %s was dropped",
                d->n_waiting + d->n_submitted,
                item->kind == MESH_COORD_OUT_JOURNAL ? "journal record" : "store item");
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

/* Saving the last known members: one transaction on the store strand, so
 * it queues behind the entries' batches and never overlaps them. */
typedef struct members_job {
  mesh_work work;            /* the pool item; first */
  mesh_downloads *d;         /* for the counters, on the loop */
  mesh_store *store;         /* borrowed: outlives the strand's items */
  mesh_store_member *list;   /* owned */
  size_t n;
  int rc;                    /* out */
} members_job;

static void members_work(mesh_work *w)
{
  members_job *j = (members_job *)w;
  j->rc = mesh_store_members_save(j->store, j->list, j->n);
}

static void members_done(mesh_work *w)
{
  members_job *j = (members_job *)w;
  if (j->rc != 0) {
    j->d->counters.members_save_failures++;
    MESH_LOG_RL(MESH_LOG_WARN, "downloads", "cannot keep the members in the store: %s",
                mesh_strerror(j->rc));
  } else {
    j->d->counters.members_saved++;
  }
  free(j->list);
  free(j);
}

void dl_save_members(void *arg, const mesh_store_member *members, size_t n)
{
  mesh_downloads *d = arg;
  members_job *j = calloc(1, sizeof *j);
  mesh_store_member *list = n > 0 ? malloc(n * sizeof *list) : NULL;
  if (j == NULL || (n > 0 && list == NULL)) {
    free(j);
    free(list);
    d->counters.members_save_failures++;
    return;
  }
  if (n > 0)
    memcpy(list, members, n * sizeof *list);
  j->d = d;
  j->store = d->store;
  j->list = list;
  j->n = n;
  mesh_pool_submit(d->pool, &j->work, d->store_strand, members_work, members_done);
}
