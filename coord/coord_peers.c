/*
 * Others' state: the coordinator's mirror of the membership view, the last
 * document accepted from each owner, abandonment of departed owners'
 * documents, and garbage collection in bounded steps.
 *
 * Three queues keep every tick's work bounded and independent of how much is
 * held:
 *   abandoned  owners that left the view with a document, oldest first; the
 *              head is due at its collect_at (gone_at + gc_grace, constant
 *              grace, so the queue is in due order).
 *   garbage    detached documents; tick frees at most gc_budget entries.
 *   forget     departed peers without a document, dropped after
 *              tombstone_ttl (until then a document or command that names
 *              them is refused as from a departed owner, not an unknown one).
 * Entries leave these queues lazily: a peer that came back is skipped when it
 * reaches the head.
 *
 * The mirror follows view events one by one; when some were missed, a resync
 * compares it with the whole view (a mesh_view_source) and makes, for each
 * peer that differs, the change its events would have made, through the same
 * functions. Every peer the source lists is marked with the resync's
 * generation, so that a second walk finds those it no longer lists.
 */
#include "coord/coord_internal.h"

#include "src/base/err.h"

#include <stdlib.h>
#include <string.h>

/* ---- the peer table ---------------------------------------------------- */

static uint64_t peer_hash(const mesh_peer_id *id)
{
  /* The key bytes of a peer ID are an Ed25519 public key: already uniform
   * for honest peers; mixing keeps crafted keys from lining up trivially. */
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 6; i < MESH_PEER_ID_LEN; i++) {
    h ^= id->b[i];
    h *= 0x100000001b3ull;
  }
  h ^= h >> 29;
  return h;
}

coord_peer *coord_peer_find(const mesh_coord *c, const mesh_peer_id *id)
{
  if (c->peers_cap == 0)
    return NULL;
  size_t mask = c->peers_cap - 1;
  for (size_t i = peer_hash(id) & mask, n = 0; n < c->peers_cap; i = (i + 1) & mask, n++) {
    coord_peer *p = c->peers[i];
    if (p == NULL)
      return NULL;
    if (p != COORD_PEER_TOMB && mesh_peer_id_eq(&p->id, id))
      return p;
  }
  return NULL;
}

static void table_insert(coord_peer **slots, size_t cap, coord_peer *p)
{
  size_t mask = cap - 1;
  size_t i = peer_hash(&p->id) & mask;
  while (coord_slot_live(slots[i]))
    i = (i + 1) & mask;
  slots[i] = p;
}

static int table_grow(mesh_coord *c)
{
  size_t ncap = c->peers_cap ? c->peers_cap : 64;
  while ((c->peers_live + 1) * 10 > ncap * 5)
    ncap *= 2;
  coord_peer **n = calloc(ncap, sizeof *n);
  if (n == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < c->peers_cap; i++) {
    if (coord_slot_live(c->peers[i]))
      table_insert(n, ncap, c->peers[i]);
  }
  free(c->peers);
  c->peers = n;
  c->peers_cap = ncap;
  c->peers_used = c->peers_live;
  return 0;
}

coord_peer *coord_peer_get(mesh_coord *c, const mesh_peer_id *id)
{
  coord_peer *p = coord_peer_find(c, id);
  if (p != NULL)
    return p;
  if ((c->peers_used + 1) * 10 > c->peers_cap * 7 && table_grow(c) != 0)
    return NULL;
  p = calloc(1, sizeof *p);
  if (p == NULL)
    return NULL;
  p->id = *id;
  size_t mask = c->peers_cap - 1;
  size_t i = peer_hash(id) & mask;
  while (coord_slot_live(c->peers[i]))
    i = (i + 1) & mask;
  if (c->peers[i] == NULL)
    c->peers_used++;
  c->peers[i] = p;
  c->peers_live++;
  return p;
}

static void peer_remove(mesh_coord *c, coord_peer *p)
{
  coord_due_remove(&c->collect, p);
  coord_due_remove(&c->forget, p);
  size_t mask = c->peers_cap - 1;
  for (size_t i = peer_hash(&p->id) & mask;; i = (i + 1) & mask) {
    if (c->peers[i] == p) {
      c->peers[i] = COORD_PEER_TOMB;
      break;
    }
  }
  c->peers_live--;
  free(p);
}

bool coord_peer_in_view(const coord_peer *p)
{
  return p->state == PEER_ALIVE || p->state == PEER_SUSPECT;
}

/* ---- documents ---------------------------------------------------------- */

void coord_doc_free(coord_doc *d)
{
  if (d == NULL)
    return;
  for (size_t i = 0; i < d->n; i++)
    free(d->entries[i]);
  free(d->entries);
  free(d->models_dir);
  free(d->raw);
  free(d);
}

void coord_rentry_to_entry(const coord_peer *p, const coord_rentry *r, mesh_coord_entry *e)
{
  memset(e, 0, sizeof *e);
  e->owner = p->id;
  e->owner_epoch = p->doc != NULL ? p->doc->epoch : p->epoch;
  coord_strlcpy(e->model_id, r->strs, sizeof e->model_id);
  coord_strlcpy(e->revision, r->strs + r->rev_off, sizeof e->revision);
  coord_strlcpy(e->model_dir, r->strs + r->dir_off, sizeof e->model_dir);
  coord_strlcpy(e->error, r->strs + r->err_off, sizeof e->error);
  e->status = r->status;
  e->total_bytes = r->total_bytes;
  e->done_bytes = r->done_bytes;
  e->files_done = r->files_done;
  e->files_total = r->files_total;
  e->speed_bps = r->speed_bps;
  e->eta_ms = r->eta_ms;
  e->attempts = r->attempts;
  e->retry_in_ms = r->retry_in_ms;
}

/* Takes p's document out of sight at once; its memory is freed by the
 * garbage queue in bounded steps. */
void coord_doc_detach(mesh_coord *c, coord_peer *p)
{
  coord_doc *d = p->doc;
  if (d == NULL)
    return;
  p->doc = NULL;
  c->st.docs_collected++;
  c->live_entries -= d->n;
  c->live_bytes -= d->bytes;
  coord_garbage *g = malloc(sizeof *g);
  if (g == NULL) {
    /* No memory for the queue item: free now rather than leak. */
    c->held_entries -= d->n;
    c->held_bytes -= d->bytes;
    c->st.entries_collected += d->n;
    coord_doc_free(d);
    return;
  }
  g->doc = d;
  g->cursor = 0;
  g->next = NULL;
  if (c->gc_tail != NULL)
    c->gc_tail->next = g;
  else
    c->gc_head = g;
  c->gc_tail = g;
}

void coord_doc_install(mesh_coord *c, coord_peer *p, coord_doc *d)
{
  if (p->doc != NULL) {
    coord_doc_detach(c, p);
    c->st.docs_collected--; /* a replacement is not a collection */
  }
  p->doc = d;
  c->held_entries += d->n;
  c->held_bytes += d->bytes;
  c->live_entries += d->n;
  c->live_bytes += d->bytes;
}

int coord_doc_admit(mesh_coord *c, const coord_peer *p, const coord_doc *d)
{
  const mesh_coord_settings *s = &c->set;
  if (d->n > s->doc_max_entries || d->bytes > s->doc_max_bytes) {
    c->st.docs_refused_owner_cap++;
    return -EMSGSIZE;
  }
  /* The owner's older document makes room: it leaves the live set (and
   * waits for the collector). */
  size_t old_n = p->doc != NULL ? p->doc->n : 0;
  uint64_t old_bytes = p->doc != NULL ? p->doc->bytes : 0;
  bool live_fits = c->live_entries - old_n + d->n <= s->docs_max_entries &&
                   c->live_bytes - old_bytes + d->bytes <= s->docs_max_bytes;
  /* What awaits freeing still takes memory: together with the live set it
   * stays under twice the budget, however fast documents are replaced. */
  bool held_fits = c->held_entries + d->n <= 2 * (uint64_t)s->docs_max_entries &&
                   c->held_bytes + d->bytes <= 2 * s->docs_max_bytes;
  if (!live_fits || !held_fits) {
    c->st.docs_refused_budget++;
    return -ENOBUFS;
  }
  return 0;
}

uint64_t mesh_coord_held_bytes(const mesh_coord *c)
{
  return c->held_bytes;
}

/* Queues p to be forgotten at its deadline (moving it when queued). Without
 * memory for the queue the record stays (counted): it holds no document,
 * and the next departure of the peer queues it again. */
static void forget_later(mesh_coord *c, coord_peer *p, mesh_time_ms now)
{
  p->forget_at = now + c->set.tombstone_ttl;
  if (coord_due_set(&c->forget, p) != 0)
    c->st.queue_failures++;
}

static bool on_abandoned(const mesh_coord *c, const coord_peer *p)
{
  return coord_due_has(&c->collect, p);
}

/* Queues p's document for collection after the grace period (moving it when
 * queued: an owner that departs again is collected a grace period after its
 * last departure, without delaying anyone else). */
static void abandon(mesh_coord *c, coord_peer *p, mesh_time_ms now)
{
  p->collect_at = now + c->set.gc_grace;
  c->st.docs_abandoned++;
  if (coord_due_set(&c->collect, p) != 0) {
    /* No memory for the queue: collect now rather than never. */
    c->st.queue_failures++;
    coord_doc_detach(c, p);
    forget_later(c, p, now);
  }
}

/* Asks peer for its document when we hold none, or an older one. */
static void request_doc(mesh_coord *c, coord_peer *p)
{
  uint8_t *msg;
  size_t len;
  uint64_t have = (p->doc != NULL && p->doc->epoch == p->epoch) ? p->doc->version : 0;
  if (coord_wire_request(&p->id, p->epoch, have, &msg, &len) != 0)
    return;
  coord_send(c, &p->id, msg, len);
  c->st.requests_sent++;
}

/* p enters the view, or stays in it, at epoch (suspected or not). fresh: p
 * was just made for this change. */
static void peer_enter(mesh_coord *c, coord_peer *p, bool fresh, uint64_t epoch, bool suspect)
{
  bool was_in = !fresh && coord_peer_in_view(p);
  bool new_epoch = !fresh && epoch > p->epoch;
  if (fresh || new_epoch)
    p->answered = false; /* an answer counts for the epoch that gave it */
  /* Owner epoch superseded: its entries are collected at once. */
  if (p->doc != NULL && p->doc->epoch < epoch)
    coord_doc_detach(c, p);
  p->epoch = epoch;
  p->state = suspect ? PEER_SUSPECT : PEER_ALIVE;
  p->reaped = false;
  if (!was_in || new_epoch) {
    /* A newcomer (or a restarted node) holds nothing of ours, and we
     * hold nothing of its current epoch. */
    coord_send_own_doc(c, &p->id);
    if (p->answered)
      request_doc(c, p);
  }
}

/* p answered a ping of ours in epoch: its document is worth asking for. */
static int peer_answered(mesh_coord *c, coord_peer *p, uint64_t epoch)
{
  if (!coord_peer_in_view(p) || epoch != p->epoch || p->answered)
    return 0;
  p->answered = true;
  request_doc(c, p);
  return 1;
}

/* p left the view (dead or left) in epoch: its document is abandoned. */
static void peer_depart(mesh_coord *c, coord_peer *p, bool fresh, uint64_t epoch, mesh_time_ms now)
{
  if (!fresh && !coord_peer_in_view(p))
    return;
  p->epoch = epoch;
  p->state = PEER_GONE;
  p->gone_at = now;
  if (p->doc != NULL && p->doc->epoch < epoch)
    coord_doc_detach(c, p);
  if (p->doc != NULL)
    abandon(c, p, now);
  else
    forget_later(c, p, now);
}

/* Membership dropped p's record. */
static void peer_reaped(mesh_coord *c, coord_peer *p, bool fresh, mesh_time_ms now)
{
  p->reaped = true;
  if (fresh) {
    p->state = PEER_GONE;
    p->gone_at = now;
    forget_later(c, p, now);
  }
}

void mesh_coord_peer_connected(mesh_coord *c, const mesh_peer_id *peer, mesh_time_ms now)
{
  (void)now;
  coord_peer *p = coord_peer_find(c, peer);
  if (p == NULL || !coord_peer_in_view(p))
    return;
  /* What went out on the connection before may be lost (it closed, or the
   * other end kept the other of two simultaneous connections): both
   * documents again, each a small message when nothing changed. */
  c->st.reconnect_syncs++;
  coord_send_own_doc(c, &p->id);
  if (p->answered)
    request_doc(c, p);
}

int mesh_coord_view_event(mesh_coord *c, const mesh_view_event *ev, mesh_time_ms now)
{
  if (mesh_peer_id_eq(&ev->peer, &c->id->id))
    return 0;
  if (ev->type == MESH_VIEW_ANSWERED) {
    /* Says nothing of who is in the view: a peer we hold no record of
     * (which a gap would have made) gets none from it. */
    coord_peer *known = coord_peer_find(c, &ev->peer);
    if (known != NULL)
      peer_answered(c, known, ev->epoch);
    return 0;
  }
  coord_peer *p = coord_peer_get(c, &ev->peer);
  if (p == NULL)
    return -ENOMEM;
  bool fresh = p->state == 0;
  if (!fresh && ev->epoch < p->epoch)
    return 0; /* an event about an epoch already over */
  switch (ev->type) {
  case MESH_VIEW_JOINED:
  case MESH_VIEW_EPOCH_CHANGED:
  case MESH_VIEW_ALIVE_AGAIN:
  case MESH_VIEW_SUSPECT:
    peer_enter(c, p, fresh, ev->epoch, ev->type == MESH_VIEW_SUSPECT);
    break;
  case MESH_VIEW_DEAD:
  case MESH_VIEW_LEFT:
    peer_depart(c, p, fresh, ev->epoch, now);
    break;
  case MESH_VIEW_REAPED:
    peer_reaped(c, p, fresh, now);
    break;
  case MESH_VIEW_ANSWERED:
    break; /* handled above */
  }
  return 0;
}

/*
 * One member of the source against the mirror: the change an event would
 * have made, made the same way. Returns whether the mirror changed, or
 * -ENOMEM when a newcomer could not be recorded.
 */
static int resync_one(mesh_coord *c, const mesh_view_member *vm, uint64_t gen, mesh_time_ms now)
{
  bool in = vm->state == MESH_VIEW_STATE_ALIVE || vm->state == MESH_VIEW_STATE_SUSPECT;
  bool suspect = vm->state == MESH_VIEW_STATE_SUSPECT;
  coord_peer *p = coord_peer_find(c, &vm->peer);
  if (p == NULL) {
    /* A dead or left member we never knew needs no record: a document
     * naming it is refused either way. */
    if (!in)
      return 0;
    p = coord_peer_get(c, &vm->peer);
    if (p == NULL)
      return -ENOMEM;
    p->sync_gen = gen;
    peer_enter(c, p, true, vm->epoch, suspect);
    if (vm->answered)
      peer_answered(c, p, vm->epoch);
    return 1;
  }
  p->sync_gen = gen;
  bool rolled = vm->epoch < p->epoch;
  if (rolled) {
    /* The mirror is at a later epoch than membership, which events alone
     * never lead to (they are refused for an epoch already over); the view
     * wins, and what was held for the later epoch goes with it. */
    if (p->doc != NULL && p->doc->epoch > vm->epoch)
      coord_doc_detach(c, p);
    p->epoch = vm->epoch;
  }
  bool was_in = coord_peer_in_view(p);
  if (in) {
    bool same = was_in && p->epoch == vm->epoch && (p->state == PEER_SUSPECT) == suspect;
    if (same && !rolled)
      return vm->answered ? peer_answered(c, p, vm->epoch) : 0;
    /* Rolled back: documents are exchanged again, as with a newcomer. */
    peer_enter(c, p, rolled || p->state == 0, vm->epoch, suspect);
    if (vm->answered)
      peer_answered(c, p, vm->epoch);
    return 1;
  }
  if (!was_in)
    return rolled ? 1 : 0; /* gone in both; an epoch that ended unseen changes nothing held */
  peer_depart(c, p, false, vm->epoch, now);
  return 1;
}

int mesh_coord_view_resync(mesh_coord *c, const mesh_view_source *src, mesh_time_ms now)
{
  c->st.view_resyncs++;
  uint64_t gen = ++c->sync_gen;
  int rc = 0;
  size_t n = src->count(src->ctx);
  for (size_t i = 0; i < n; i++) {
    mesh_view_member vm;
    int r = src->member_at(src->ctx, i, &vm);
    if (r != 0)
      return r; /* a partial listing must not make the rest look departed */
    if (mesh_peer_id_eq(&vm.peer, &c->id->id))
      continue;
    r = resync_one(c, &vm, gen, now);
    if (r < 0)
      rc = r;
    else
      c->st.view_resync_fixes += (uint64_t)r;
  }
  /* Peers the source no longer lists were reaped by membership: one still
   * in the mirror's view departed unseen (as a DEAD would), then its record
   * went. Only existing peers change here, so the table is not resized
   * under the walk. */
  for (size_t i = 0; i < c->peers_cap; i++) {
    coord_peer *p = c->peers[i];
    if (!coord_slot_live(p) || p->sync_gen == gen || p->state == 0)
      continue;
    bool fixed = false;
    if (coord_peer_in_view(p)) {
      peer_depart(c, p, false, p->epoch, now);
      fixed = true;
    }
    if (!p->reaped) {
      peer_reaped(c, p, false, now);
      fixed = true;
    }
    c->st.view_resync_fixes += fixed;
  }
  return rc;
}

int mesh_coord_view_of(const mesh_coord *c, const mesh_peer_id *peer, uint64_t *epoch)
{
  const coord_peer *p = coord_peer_find(c, peer);
  if (p == NULL || p->state == 0)
    return -ENOENT;
  if (epoch != NULL)
    *epoch = p->epoch;
  return coord_peer_in_view(p) ? 1 : 0;
}

/* ---- collection ---------------------------------------------------------- */

void coord_gc_step(mesh_coord *c, mesh_time_ms now)
{
  uint64_t work = 0;
  uint32_t budget = c->set.gc_budget;

  /* Abandoned documents whose grace is over, earliest first: detach (O(1)
   * each). */
  coord_peer *p;
  while ((p = coord_due_top(&c->collect)) != NULL && work < budget) {
    if (p->state == PEER_GONE && p->doc != NULL && now < p->collect_at)
      break;
    coord_due_remove(&c->collect, p);
    work++;
    if (p->state != PEER_GONE || p->doc == NULL)
      continue; /* came back, or already collected */
    coord_doc_detach(c, p);
    forget_later(c, p, p->gone_at);
  }

  /* Free detached entries, at most budget of them. */
  while (c->gc_head != NULL && work < budget) {
    coord_garbage *g = c->gc_head;
    coord_doc *d = g->doc;
    while (g->cursor < d->n && work < budget) {
      free(d->entries[g->cursor]);
      d->entries[g->cursor] = NULL;
      g->cursor++;
      work++;
      c->held_entries--;
      c->st.entries_collected++;
    }
    if (g->cursor < d->n)
      break;
    d->n = 0;
    c->held_bytes -= d->bytes;
    coord_doc_free(d);
    c->gc_head = g->next;
    if (c->gc_head == NULL)
      c->gc_tail = NULL;
    free(g);
  }

  /* Departed peers past their tombstone time, earliest first. */
  while ((p = coord_due_top(&c->forget)) != NULL && work < budget) {
    if (p->state == PEER_GONE && p->doc == NULL && now < p->forget_at)
      break;
    coord_due_remove(&c->forget, p);
    work++;
    if (p->state == PEER_GONE && p->doc == NULL && !on_abandoned(c, p))
      peer_remove(c, p);
  }
  if (work > c->st.gc_max_work)
    c->st.gc_max_work = work;
}

mesh_time_ms coord_gc_deadline(const mesh_coord *c)
{
  mesh_time_ms t = UINT64_MAX;
  if (c->gc_head != NULL)
    return 0;
  const coord_peer *a = coord_due_top(&c->collect);
  const coord_peer *f = coord_due_top(&c->forget);
  if (a != NULL)
    t = a->collect_at;
  if (f != NULL && f->forget_at < t)
    t = f->forget_at;
  return t;
}

void coord_peers_free(mesh_coord *c)
{
  while (c->gc_head != NULL) {
    coord_garbage *g = c->gc_head;
    for (size_t i = g->cursor; i < g->doc->n; i++)
      free(g->doc->entries[i]);
    g->doc->n = 0;
    coord_doc_free(g->doc);
    c->gc_head = g->next;
    free(g);
  }
  for (size_t i = 0; i < c->peers_cap; i++) {
    coord_peer *p = c->peers[i];
    if (!coord_slot_live(p))
      continue;
    coord_doc_free(p->doc);
    free(p);
  }
  free(c->peers);
  coord_due_free(&c->collect);
  coord_due_free(&c->forget);
}
