/*
 * The coordinator core: lifecycle, names and settings, the outbox, time
 * and what is shown. This node's own entries are in coord_own.c, commands
 * in coord_commands.c, the own document in coord_publish.c, others' in
 * coord_peers.c and coord_wire.c. See coord.h for the rules.
 */
#include "coord/coord_internal.h"

#include "src/base/err.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void coord_strlcpy(char *dst, const char *src, size_t cap)
{
  size_t n = strnlen(src, cap - 1);
  memcpy(dst, src, n);
  dst[n] = '\0';
}

const char *mesh_coord_status_name(mesh_coord_status s)
{
  switch (s) {
  case MESH_COORD_PENDING:
    return "pending";
  case MESH_COORD_ONGOING:
    return "ongoing";
  case MESH_COORD_COMPLETED:
    return "completed";
  case MESH_COORD_FAILED:
    return "failed";
  case MESH_COORD_DELETING:
    return "deleting";
  }
  return "unknown";
}

const char *mesh_coord_action_name(mesh_coord_action_kind k)
{
  switch (k) {
  case MESH_COORD_ACT_CHECK_SPACE:
    return "check-space";
  case MESH_COORD_ACT_DOWNLOAD:
    return "download";
  case MESH_COORD_ACT_CANCEL:
    return "cancel";
  case MESH_COORD_ACT_DELETE:
    return "delete";
  case MESH_COORD_ACT_VERIFY:
    return "verify";
  }
  return "unknown";
}

void mesh_coord_settings_default(mesh_coord_settings *s)
{
  memset(s, 0, sizeof *s);
  s->gc_grace = 5 * 60 * 1000;
  s->tombstone_ttl = 60 * 60 * 1000;
  s->journal_max_records = 10000;
  s->journal_max_age = 7ull * 24 * 3600 * 1000;
  s->max_download_bytes = 0;
  s->models_dir = NULL;
  s->actions_per_sec = 20;
  s->entry_action_interval = 1000;
  s->gc_budget = 4096;
  s->retry_base = 1000;
  s->retry_cap = 10 * 60 * 1000;
  s->download_max_attempts = 5;
  s->publish_interval = 200;
  s->progress_publish_interval = 5000;
  s->outbox_max = 65536;
  s->docs_max_bytes = 64ull << 20;
  s->docs_max_entries = 65536;
  s->doc_max_bytes = 2u << 20;
  s->doc_max_entries = MESH_COORD_MAX_OWN_ENTRIES;
  s->accept = MESH_COORD_ACCEPT_ANY_MEMBER;
  s->remote_quota = 64;
}

/* ---- outbox ---------------------------------------------------------- */

bool coord_push(mesh_coord *c, const mesh_coord_out *item)
{
  if (c->out_len == c->out_cap) {
    size_t ncap = c->out_cap ? c->out_cap * 2 : 64;
    if (ncap > c->set.outbox_max)
      ncap = c->set.outbox_max;
    if (ncap <= c->out_cap)
      goto full;
    mesh_coord_out *n = malloc(ncap * sizeof *n);
    if (n == NULL)
      goto full;
    for (size_t i = 0; i < c->out_len; i++)
      n[i] = c->out[(c->out_head + i) % c->out_cap];
    free(c->out);
    c->out = n;
    c->out_cap = ncap;
    c->out_head = 0;
  }
  c->out[(c->out_head + c->out_len) % c->out_cap] = *item;
  c->out_len++;
  return true;
full:
  c->st.outbox_dropped++;
  return false;
}

/* Queues bytes (owned, taken over) for a peer; dropped and counted when the
 * outbox is full. */
void coord_send(mesh_coord *c, const mesh_peer_id *to, uint8_t *bytes, size_t len)
{
  mesh_coord_out o = {.kind = MESH_COORD_OUT_SEND};
  o.u.send.to = *to;
  o.u.send.bytes = bytes;
  o.u.send.len = len;
  if (!coord_push(c, &o))
    free(bytes);
}

bool mesh_coord_pop(mesh_coord *c, mesh_coord_out *out)
{
  if (c->out_len == 0)
    return false;
  *out = c->out[c->out_head];
  c->out_head = (c->out_head + 1) % c->out_cap;
  c->out_len--;
  return true;
}

size_t mesh_coord_outbox_len(const mesh_coord *c)
{
  return c->out_len;
}

void mesh_coord_out_release(mesh_coord_out *o)
{
  if (o->kind == MESH_COORD_OUT_SEND) {
    free(o->u.send.bytes);
    o->u.send.bytes = NULL;
  } else if (o->kind == MESH_COORD_OUT_APP_STATE) {
    free(o->u.app_state.bytes);
    o->u.app_state.bytes = NULL;
  }
}

const mesh_coord_stats *mesh_coord_get_stats(const mesh_coord *c)
{
  return &c->st;
}

/* ---- lifecycle -------------------------------------------------------- */

/*
 * Where the command sequence numbers of an epoch start. epoch << 32 keeps
 * them apart across the epochs of one node (four billion commands per
 * epoch), so that an answer to a command of an earlier epoch can never
 * match one of this epoch. An epoch too large to shift (they are counters,
 * so only a hand-edited epoch file gets there) starts at a random point
 * of the upper half instead. Never 0: 0 means "no command".
 */
uint64_t coord_seq_base(uint64_t epoch, mesh_rng *rng)
{
  if (epoch != 0 && epoch < (1ull << 31))
    return epoch << 32;
  return (1ull << 63) | (mesh_rng_next(rng) >> 2);
}

int mesh_coord_new(const mesh_identity *id, uint64_t epoch, const mesh_coord_settings *settings,
                   mesh_rng *rng, mesh_coord **out)
{
  mesh_coord *c = calloc(1, sizeof *c);
  if (c == NULL)
    return -ENOMEM;
  c->own = calloc(MESH_COORD_MAX_OWN_ENTRIES, sizeof *c->own);
  if (c->own == NULL) {
    free(c);
    return -ENOMEM;
  }
  c->id = id;
  c->epoch = epoch;
  c->set = *settings;
  coord_due_init(&c->collect, COORD_DUE_COLLECT);
  coord_due_init(&c->forget, COORD_DUE_FORGET);
  if (c->set.accept == MESH_COORD_ACCEPT_LISTED) {
    if (c->set.accept_n > MESH_COORD_ACCEPT_MAX ||
        (c->set.accept_n > 0 && c->set.accept_from == NULL)) {
      free(c->own);
      free(c);
      return -EINVAL;
    }
    for (size_t i = 0; i < c->set.accept_n; i++)
      c->accept_from[i] = c->set.accept_from[i];
    c->set.accept_from = c->accept_from;
  } else {
    c->set.accept_from = NULL;
    c->set.accept_n = 0;
  }
  c->cmd_seq = coord_seq_base(epoch, rng);
  if (c->set.actions_per_sec == 0)
    c->set.actions_per_sec = 1;
  if (c->set.gc_budget == 0)
    c->set.gc_budget = 1;
  if (c->set.outbox_max < 64)
    c->set.outbox_max = 64;
  if (c->set.retry_base == 0)
    c->set.retry_base = 1;
  if (c->set.retry_cap < c->set.retry_base)
    c->set.retry_cap = c->set.retry_base;
  /* A models directory that others could not take (relative, too long) is
   * not published: their /state then shows no directory for these entries,
   * instead of refusing the whole document. */
  if (c->set.models_dir != NULL &&
      mesh_coord_models_dir_check(c->set.models_dir,
                                  strnlen(c->set.models_dir, MESH_COORD_MODELS_DIR_MAX + 1)) == 0)
    coord_strlcpy(c->pub_models_dir, c->set.models_dir, sizeof c->pub_models_dir);
  c->rng = rng;
  c->tokens = c->set.actions_per_sec;
  *out = c;
  return 0;
}

void mesh_coord_free(mesh_coord *c)
{
  if (c == NULL)
    return;
  mesh_coord_out o;
  while (mesh_coord_pop(c, &o))
    mesh_coord_out_release(&o);
  free(c->out);
  coord_peers_free(c);
  free(c->own_raw);
  free(c->own);
  free(c);
}

uint64_t mesh_coord_epoch(const mesh_coord *c)
{
  return c->epoch;
}

/* ---- time -------------------------------------------------------------- */

void mesh_coord_tick(mesh_coord *c, mesh_time_ms now)
{
  coord_retries(c, now);
  coord_gc_step(c, now);
  coord_settle(c, now);
}

mesh_time_ms mesh_coord_next_deadline(const mesh_coord *c)
{
  mesh_time_ms t = coord_gc_deadline(c);
  for (size_t i = 0; i < c->own_n; i++) {
    const coord_own *o = &c->own[i];
    if (o->e.status == MESH_COORD_FAILED && o->e.retry_at != 0 && o->e.retry_at < t)
      t = o->e.retry_at;
    if (o->want) {
      mesh_time_ms at = (o->acted && o->last_kind == o->next_action)
                            ? o->last_action + c->set.entry_action_interval
                            : 0;
      if (c->tokens < 1.0) {
        mesh_time_ms tok =
            c->tokens_at + (mesh_time_ms)((1.0 - c->tokens) * 1000.0 / c->set.actions_per_sec) + 1;
        if (tok > at)
          at = tok;
      }
      if (at < t)
        t = at;
    }
  }
  if (c->dirty) {
    mesh_time_ms gap =
        c->dirty_progress_only ? c->set.progress_publish_interval : c->set.publish_interval;
    mesh_time_ms at = c->last_publish + gap;
    if (at < t)
      t = at;
  }
  return t;
}

/* ---- display ----------------------------------------------------------- */

void mesh_coord_visit(const mesh_coord *c, mesh_time_ms now, mesh_coord_visit_fn fn, void *arg)
{
  for (size_t i = 0; i < c->own_n; i++) {
    mesh_coord_view_entry ve = {.e = &c->own[i].e, .models_dir = c->set.models_dir, .own = true};
    fn(arg, &ve);
  }
  for (size_t i = 0; i < c->peers_cap; i++) {
    coord_peer *p = c->peers[i];
    if (!coord_slot_live(p) || p->doc == NULL)
      continue;
    bool abandoned = !coord_peer_in_view(p);
    for (size_t k = 0; k < p->doc->n; k++) {
      mesh_coord_entry e;
      coord_rentry_to_entry(p, p->doc->entries[k], &e);
      mesh_coord_view_entry ve = {
          .e = &e, .models_dir = p->doc->models_dir, .own = false, .abandoned = abandoned};
      if (abandoned)
        ve.collect_in = p->collect_at > now ? p->collect_at - now : 0;
      fn(arg, &ve);
    }
  }
}

size_t mesh_coord_held_entries(const mesh_coord *c)
{
  return c->held_entries;
}

size_t mesh_coord_own_count(const mesh_coord *c)
{
  return c->own_n;
}

uint64_t mesh_coord_doc_version(const mesh_coord *c)
{
  return c->version;
}
