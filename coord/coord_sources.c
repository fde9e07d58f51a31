/*
 * Who may serve model files to whom: the peers this node may take a model's
 * bytes from, and whether this node may serve one of its own models. Pure
 * (part of the sans-IO coordinator core): it reads the mirror of the view
 * and the documents held, and nothing else.
 */
#include "coord/coord_internal.h"

#include <errno.h>
#include <string.h>

/* The entry of (model, rev) in p's document when it says completed. */
static const coord_rentry *completed_in(const coord_peer *p, const char *model, const char *rev)
{
  const coord_doc *d = p->doc;
  /* A document of another epoch than the peer's current one is over: its
   * files may be gone or half-deleted by the owner's new run. */
  if (d == NULL || d->epoch != p->epoch)
    return NULL;
  for (size_t i = 0; i < d->n; i++) {
    const coord_rentry *r = d->entries[i];
    if (r == NULL || r->status != MESH_COORD_COMPLETED)
      continue;
    if (strcmp(r->strs, model) == 0 && strcmp(r->strs + r->rev_off, rev) == 0)
      return r;
  }
  return NULL;
}

bool mesh_coord_source_ok(const mesh_coord *c, const mesh_peer_id *peer, const char *model_id,
                          const char *revision)
{
  const coord_peer *p = coord_peer_find(c, peer);
  /* Alive only: a suspect may be dead, and its answers would stall. */
  return p != NULL && p->state == PEER_ALIVE && completed_in(p, model_id, revision) != NULL;
}

size_t mesh_coord_sources(const mesh_coord *c, const char *model_id, const char *revision,
                          mesh_peer_id *out, size_t cap)
{
  size_t n = 0;
  for (size_t i = 0; i < c->peers_cap && n < cap; i++) {
    const coord_peer *p = c->peers[i];
    if (!coord_slot_live(p) || p->state != PEER_ALIVE)
      continue;
    if (completed_in(p, model_id, revision) != NULL)
      out[n++] = p->id;
  }
  return n;
}

int mesh_coord_pick_source(const mesh_coord *c, const char *model_id, const char *revision,
                           const mesh_coord_source_use *use, size_t n_use, unsigned per_source_max,
                           mesh_peer_id *out)
{
  mesh_peer_id cand[MESH_COORD_SOURCES_MAX];
  size_t n = mesh_coord_sources(c, model_id, revision, cand, MESH_COORD_SOURCES_MAX);
  bool busy = false;
  /* A suspect that has the revision is not asked, but may be alive again in
   * a moment (a slow loop, a lost probe): the caller waits rather than go to
   * the Hub, unless that suspect failed this download already. Dead, it
   * leaves the view and the answer becomes -ENOENT. */
  for (size_t i = 0; i < c->peers_cap && !busy; i++) {
    const coord_peer *p = c->peers[i];
    if (!coord_slot_live(p) || p->state != PEER_SUSPECT ||
        completed_in(p, model_id, revision) == NULL)
      continue;
    bool failed = false;
    for (size_t k = 0; k < n_use; k++)
      if (memcmp(&use[k].peer, &p->id, sizeof p->id) == 0)
        failed = use[k].failed;
    busy = !failed;
  }
  unsigned best_load = UINT32_MAX;
  const mesh_peer_id *best = NULL;
  for (size_t i = 0; i < n; i++) {
    unsigned load = 0;
    bool bad = false;
    for (size_t k = 0; k < n_use; k++) {
      if (memcmp(&use[k].peer, &cand[i], sizeof cand[i]) != 0)
        continue;
      load = use[k].active;
      bad = use[k].failed;
    }
    if (bad)
      continue;
    if (load >= per_source_max) {
      busy = true;
      continue;
    }
    if (load < best_load) {
      best_load = load;
      best = &cand[i];
    }
  }
  if (best != NULL) {
    *out = *best;
    return 0;
  }
  return busy ? -EBUSY : -ENOENT;
}

int mesh_coord_own_completed(const mesh_coord *c, const char *model_id, const char *revision,
                             char *model_dir, size_t cap)
{
  for (size_t i = 0; i < c->own_n; i++) {
    const coord_own *o = &c->own[i];
    if (strcmp(o->e.model_id, model_id) != 0 || strcmp(o->e.revision, revision) != 0)
      continue;
    /* A restored entry is served only once its directory was inspected. */
    if (o->e.status != MESH_COORD_COMPLETED || o->verifying)
      return -ENOENT;
    if (strlen(o->e.model_dir) >= cap)
      return -ENAMETOOLONG;
    coord_strlcpy(model_dir, o->e.model_dir, cap);
    return 0;
  }
  return -ENOENT;
}
