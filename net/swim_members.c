/* The member table: adding and removing members, their transitions between
 * alive, suspect, dead and left (each raising its view event), suspicions
 * and the newcomers still to be pinged. */
#include "net/swim_core.h"

void swim_free_member(swim_member *m)
{
  free(m->rec);
  free(m->acc);
  free(m->addrs);
  free(m->agent);
  free(m->host);
  free(m->susp);
  free(m);
}

void swim_susp_remove(mesh_swim *s, swim_member *m)
{
  if (m->susp_slot >= 0) {
    size_t i = (size_t)m->susp_slot;
    s->susp[i] = s->susp[--s->n_susp];
    s->susp[i]->susp_slot = (int32_t)i;
    m->susp_slot = -1;
  }
  free(m->susp);
  m->susp = NULL;
}

/*
 * The one place a member's state changes: keeps the view count and the
 * suspect list right and raises the view event (ev 0: none).
 */
static void newcomer_add(mesh_swim *s, const swim_member *m)
{
  for (size_t i = 0; i < s->n_newcomers; i++) {
    if (swim_id_eq(&s->newcomers[i].id, &m->id)) {
      s->newcomers[i] = (swim_newcomer){.id = m->id, .epoch = m->epoch};
      return;
    }
  }
  if (s->n_newcomers == NEWCOMERS_MAX) {
    s->c.newcomers_deferred++;
    return;
  }
  s->newcomers[s->n_newcomers++] = (swim_newcomer){.id = m->id, .epoch = m->epoch};
}

void swim_view_event(mesh_swim *s, const swim_member *m, mesh_view_event_type type,
                     uint64_t old_epoch, mesh_time_ms now, mesh_swim_outbox *out)
{
  /* Numbered before it is queued: an event the outbox cannot hold still
   * takes its number, so that subscribers see the gap. */
  mesh_view_event e = {.type = type,
                       .peer = m->id,
                       .epoch = m->epoch,
                       .old_epoch = old_epoch,
                       .at = now,
                       .seq = ++s->view_seq};
  swim_outbox_event(out, &e);
}

/* m answered a ping of ours: once per epoch, the view hears of it. */
void swim_mark_answered(mesh_swim *s, swim_member *m, mesh_time_ms now, mesh_swim_outbox *out)
{
  if (m->answered || !swim_in_view(m->state))
    return;
  m->answered = true;
  swim_view_event(s, m, MESH_VIEW_ANSWERED, m->epoch, now, out);
}

void swim_transition(mesh_swim *s, swim_member *m, mesh_swim_state st, mesh_view_event_type ev,
                     uint64_t old_epoch, mesh_time_ms now, mesh_swim_outbox *out)
{
  bool was = swim_in_view(m->state), is = swim_in_view(st);
  if (was && !is)
    s->n_view--;
  if (!was && is)
    s->n_view++;
  if (m->state == MESH_SWIM_SUSPECT && st != MESH_SWIM_SUSPECT)
    swim_susp_remove(s, m);
  m->state = st;
  m->since = now;
  if (ev == MESH_VIEW_JOINED || ev == MESH_VIEW_EPOCH_CHANGED) {
    m->answered = false;
    newcomer_add(s, m);
  }
  if (ev != 0)
    swim_view_event(s, m, ev, old_epoch, now, out);
}

int swim_start_suspicion(mesh_swim *s, swim_member *m, const mesh_peer_id *accuser,
                         mesh_time_ms now)
{
  size_t n = s->n_view + 1;
  uint32_t k = s->cfg.suspicion_confirm;
  if (n < 2 || n - 2 < k)
    k = 0;
  mesh_time_ms min = swim_suspicion_timeout(s->cfg.suspicion_mult, n, s->cfg.probe_interval_ms);
  mesh_time_ms max = min * s->cfg.suspicion_max_mult;
  m->susp = malloc(sizeof *m->susp);
  if (m->susp == NULL)
    return -ENOMEM;
  swim_suspicion_init(m->susp, k, min, max, now, accuser);
  if (s->n_susp == s->cap_susp) {
    size_t cap = s->cap_susp ? s->cap_susp * 2 : 16;
    swim_member **p = realloc(s->susp, cap * sizeof *p);
    if (p == NULL) {
      free(m->susp);
      m->susp = NULL;
      return -ENOMEM;
    }
    s->susp = p;
    s->cap_susp = cap;
  }
  m->susp_slot = (int32_t)s->n_susp;
  s->susp[s->n_susp++] = m;
  return 0;
}

int swim_set_bytes(uint8_t **dst, size_t *dlen, const uint8_t *src, size_t len)
{
  uint8_t *p = malloc(len);
  if (p == NULL)
    return -ENOMEM;
  memcpy(p, src, len);
  free(*dst);
  *dst = p;
  *dlen = len;
  return 0;
}

/* Copies what the member says of itself into m (addresses, agent, host). */
int swim_set_info(swim_member *m, const swim_member_body *b)
{
  size_t bytes = 0;
  for (size_t i = 0; i < b->n_addrs; i++)
    bytes += strlen(b->addrs[i]) + 1;
  char *addrs = malloc(bytes + 1);
  char *agent = strdup(b->agent);
  char *host = strdup(b->host);
  if (addrs == NULL || agent == NULL || host == NULL) {
    free(addrs);
    free(agent);
    free(host);
    return -ENOMEM;
  }
  size_t off = 0;
  for (size_t i = 0; i < b->n_addrs; i++) {
    size_t l = strlen(b->addrs[i]) + 1;
    memcpy(addrs + off, b->addrs[i], l);
    off += l;
  }
  free(m->addrs);
  free(m->agent);
  free(m->host);
  m->addrs = addrs;
  m->addrs_bytes = bytes;
  m->n_addrs = b->n_addrs;
  m->agent = agent;
  m->host = host;
  return 0;
}

swim_member *swim_add_member(mesh_swim *s, const mesh_peer_id *id)
{
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    swim_member **p = realloc(s->m, cap * sizeof *p);
    if (p == NULL)
      return NULL;
    s->m = p;
    s->cap = cap;
  }
  swim_member *m = calloc(1, sizeof *m);
  if (m == NULL)
    return NULL;
  m->id = *id;
  m->susp_slot = -1;
  m->slot = (int32_t)s->n;
  s->m[s->n++] = m;
  if (swim_index_put(&s->ix, &m->id, m->slot, s->m) != 0) {
    s->n--;
    free(m);
    return NULL;
  }
  /* Move to a random place so that probe order stays random (memberlist does
   * the same). The index swaps first, while it still matches the array. */
  size_t at = (size_t)mesh_rng_below(s->rng, s->n);
  if (at != (size_t)m->slot) {
    swim_member *o = s->m[at];
    swim_index_swap(&s->ix, &m->id, &o->id, s->m);
    s->m[at] = m;
    s->m[m->slot] = o;
    o->slot = m->slot;
    m->slot = (int32_t)at;
  }
  return m;
}

void swim_remove_member(mesh_swim *s, swim_member *m)
{
  if (m->state == MESH_SWIM_SUSPECT)
    swim_susp_remove(s, m);
  if (swim_in_view(m->state))
    s->n_view--;
  swim_index_del(&s->ix, &m->id, s->m);
  size_t i = (size_t)m->slot;
  s->m[i] = s->m[--s->n];
  s->m[i]->slot = (int32_t)i;
  if (i != s->n)
    swim_index_set(&s->ix, &s->m[i]->id, (int32_t)i, s->m);
  swim_free_member(m);
}

bool swim_reaped_refuses(const mesh_swim *s, const mesh_peer_id *id, uint64_t epoch)
{
  for (size_t i = 0; i < s->hist_n; i++)
    if (swim_id_eq(&s->hist[i].id, id) && epoch <= s->hist[i].epoch)
      return true;
  return false;
}
