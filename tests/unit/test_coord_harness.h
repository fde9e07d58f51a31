/*
 * Shared by the coordinator's tests: nodes made of an identity and a
 * coordinator core, an outbox drained into a list the tests inspect, and a
 * loopback "network" that delivers the coordinator's sends between nodes.
 * Everything is deterministic: seeded random sources and time passed in.
 */
#ifndef MESH_TEST_COORD_HARNESS_H
#define MESH_TEST_COORD_HARNESS_H

#include "coord/coord.h"
#include "proto/coord.pb-c.h"
#include "src/identity/signed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tnode {
  mesh_identity id;
  uint64_t epoch;
  mesh_rng rng;
  mesh_coord_settings set;
  mesh_coord *c;
  mesh_coord_out *out; /* drained items, owned */
  size_t n;
  size_t cap;
  size_t total[16];           /* items drained so far, by mesh_coord_out_kind */
  size_t act_total[16];       /* actions drained so far, by mesh_coord_action_kind */
  mesh_coord_out last_result; /* the last MESH_COORD_OUT_RESULT drained */
} tnode;

static inline void tnode_init(tnode *t, uint64_t seed, uint64_t epoch,
                              const mesh_coord_settings *set)
{
  memset(t, 0, sizeof *t);
  assert_int_equal(mesh_identity_generate(&t->id), 0);
  t->epoch = epoch;
  mesh_rng_seed(&t->rng, seed);
  if (set != NULL)
    t->set = *set;
  else
    mesh_coord_settings_default(&t->set);
  assert_int_equal(mesh_coord_new(&t->id, epoch, &t->set, &t->rng, &t->c), 0);
}

static inline void tnode_clear(tnode *t)
{
  for (size_t i = 0; i < t->n; i++)
    mesh_coord_out_release(&t->out[i]);
  t->n = 0;
}

/* A restart: same identity, a new epoch, a fresh core. */
static inline void tnode_restart(tnode *t, uint64_t epoch)
{
  tnode_clear(t);
  mesh_coord_free(t->c);
  memset(t->total, 0, sizeof t->total);
  memset(t->act_total, 0, sizeof t->act_total);
  t->epoch = epoch;
  assert_int_equal(mesh_coord_new(&t->id, epoch, &t->set, &t->rng, &t->c), 0);
}

static inline void tnode_free(tnode *t)
{
  tnode_clear(t);
  free(t->out);
  mesh_coord_free(t->c);
}

/* Moves everything from the outbox to t->out. Returns how many. */
static inline size_t tnode_drain(tnode *t)
{
  size_t got = 0;
  mesh_coord_out o;
  while (mesh_coord_pop(t->c, &o)) {
    if (t->n == t->cap) {
      t->cap = t->cap ? t->cap * 2 : 64;
      t->out = realloc(t->out, t->cap * sizeof *t->out);
      assert_non_null(t->out);
    }
    t->out[t->n++] = o;
    t->total[o.kind]++;
    if (o.kind == MESH_COORD_OUT_ACTION)
      t->act_total[o.u.action.kind]++;
    if (o.kind == MESH_COORD_OUT_RESULT)
      t->last_result = o;
    got++;
  }
  return got;
}

static inline size_t tnode_count(const tnode *t, mesh_coord_out_kind kind)
{
  size_t k = 0;
  for (size_t i = 0; i < t->n; i++)
    k += t->out[i].kind == kind;
  return k;
}

static inline size_t tnode_count_action(const tnode *t, mesh_coord_action_kind kind)
{
  size_t k = 0;
  for (size_t i = 0; i < t->n; i++)
    k += t->out[i].kind == MESH_COORD_OUT_ACTION && t->out[i].u.action.kind == kind;
  return k;
}

static inline const mesh_coord_out *tnode_find_action(const tnode *t, mesh_coord_action_kind kind)
{
  for (size_t i = 0; i < t->n; i++) {
    if (t->out[i].kind == MESH_COORD_OUT_ACTION && t->out[i].u.action.kind == kind)
      return &t->out[i];
  }
  return NULL;
}

/* A view change as membership raises it, without the answer that follows
 * a newcomer's first ping. */
static inline void view_event_only(tnode *t, mesh_view_event_type type, const tnode *peer,
                                   uint64_t epoch, uint64_t old_epoch, mesh_time_ms now)
{
  mesh_view_event ev = {
      .type = type, .peer = peer->id.id, .epoch = epoch, .old_epoch = old_epoch, .at = now};
  mesh_coord_view_event(t->c, &ev, now);
}

/* A view change; a member that enters the view (or a new epoch) also
 * answers the ping membership sends it at once (MESH_VIEW_ANSWERED), as a
 * live peer does. */
static inline void view_event(tnode *t, mesh_view_event_type type, const tnode *peer,
                              uint64_t epoch, uint64_t old_epoch, mesh_time_ms now)
{
  view_event_only(t, type, peer, epoch, old_epoch, now);
  if (type == MESH_VIEW_JOINED || type == MESH_VIEW_EPOCH_CHANGED)
    view_event_only(t, MESH_VIEW_ANSWERED, peer, epoch, epoch, now);
}

/* Delivers every drained send of from to the nodes of nodes[] it names;
 * sends to others are dropped. Returns the number delivered. */
static inline size_t deliver(tnode *from, tnode **nodes, size_t count, mesh_time_ms now)
{
  size_t k = 0;
  for (size_t i = 0; i < from->n; i++) {
    mesh_coord_out *o = &from->out[i];
    if (o->kind != MESH_COORD_OUT_SEND)
      continue;
    for (size_t j = 0; j < count; j++) {
      if (mesh_peer_id_eq(&nodes[j]->id.id, &o->u.send.to)) {
        mesh_coord_receive(nodes[j]->c, &from->id.id, o->u.send.bytes, o->u.send.len, now);
        k++;
      }
    }
  }
  return k;
}

/* Drains and delivers among nodes until nobody has anything to send. */
static inline void exchange(tnode **nodes, size_t count, mesh_time_ms now)
{
  for (int round = 0; round < 16; round++) {
    size_t moved = 0;
    for (size_t i = 0; i < count; i++) {
      tnode_clear(nodes[i]);
      tnode_drain(nodes[i]);
    }
    for (size_t i = 0; i < count; i++)
      moved += deliver(nodes[i], nodes, count, now);
    if (moved == 0)
      return;
  }
  fail_msg("the nodes kept talking after 16 rounds");
}

/* Counting visitor. */
typedef struct visit_count {
  size_t own;
  size_t others;
  size_t abandoned;
  mesh_time_ms min_collect_in;
  mesh_coord_status last_status;
  char last_model[MESH_MODEL_ID_MAX];
  uint64_t last_epoch;
} visit_count;

static inline void count_visit(void *arg, const mesh_coord_view_entry *ve)
{
  visit_count *v = arg;
  if (ve->own)
    v->own++;
  else
    v->others++;
  if (ve->abandoned) {
    v->abandoned++;
    if (v->min_collect_in == 0 || ve->collect_in < v->min_collect_in)
      v->min_collect_in = ve->collect_in;
  }
  v->last_status = ve->e->status;
  v->last_epoch = ve->e->owner_epoch;
  snprintf(v->last_model, sizeof v->last_model, "%s", ve->e->model_id);
}

static inline visit_count visit(const tnode *t, mesh_time_ms now)
{
  visit_count v;
  memset(&v, 0, sizeof v);
  mesh_coord_visit(t->c, now, count_visit, &v);
  return v;
}

/* Starts model on t and answers the executor until it is downloading (and,
 * when complete is true, completed). */
static inline void start_model(tnode *t, const char *model, bool complete, mesh_time_ms now)
{
  mesh_coord_cmd cmd = {.kind = MESH_COORD_CMD_START, .model_id = model};
  char msg[256];
  assert_int_equal(mesh_coord_command(t->c, &cmd, now, NULL, msg, sizeof msg), 0);
  mesh_coord_space(t->c, model, "main", 1000, 1u << 30, now);
  if (complete) {
    mesh_coord_progress(t->c, model, "main", 500, 1000, 1, 2, 100, 5000, now);
    mesh_coord_completed(t->c, model, "main", 1000, now);
  }
}

/* A CoordMessage carrying a document of n entries for owner (claimed),
 * sealed by signer. With n == 1 the entry's model is model; otherwise the
 * models are "{model}{i}" (model must then be "org/prefix"). */
/* The same with the document's models_dir set (NULL: none). */
static inline void craft_doc_dir(const mesh_identity *signer, const mesh_peer_id *owner,
                                 uint64_t epoch, uint64_t version, const char *model, size_t n,
                                 const char *models_dir, uint8_t **out, size_t *len)
{
  Mesh__Coord__Entry *e = calloc(n, sizeof *e);
  Mesh__Coord__Entry **ep = calloc(n, sizeof *ep);
  char(*names)[MESH_MODEL_ID_MAX] = calloc(n, MESH_MODEL_ID_MAX);
  assert_true(e != NULL && ep != NULL && names != NULL);
  for (size_t i = 0; i < n; i++) {
    mesh__coord__entry__init(&e[i]);
    if (n == 1)
      snprintf(names[i], MESH_MODEL_ID_MAX, "%s", model);
    else
      snprintf(names[i], MESH_MODEL_ID_MAX, "%s%zu", model, i);
    e[i].model_id = names[i];
    e[i].revision = (char *)"main";
    e[i].status = MESH__COORD__STATUS__COMPLETED;
    e[i].model_dir = (char *)"whatever";
    ep[i] = &e[i];
  }
  Mesh__Coord__Document d;
  mesh__coord__document__init(&d);
  d.owner.data = (uint8_t *)owner->b;
  d.owner.len = MESH_PEER_ID_LEN;
  d.epoch = epoch;
  d.version = version;
  d.n_entries = n;
  d.entries = ep;
  if (models_dir != NULL)
    d.models_dir = (char *)models_dir;
  size_t plen = mesh__coord__document__get_packed_size(&d);
  uint8_t *payload = malloc(plen + 1);
  mesh__coord__document__pack(&d, payload);
  free(names);
  free(ep);
  free(e);
  uint8_t *env;
  size_t env_len;
  assert_int_equal(mesh_envelope_seal(signer, MESH_DOMAIN_DOWNLOADS,
                                      (const uint8_t *)MESH_COORD_DOC_TYPE,
                                      strlen(MESH_COORD_DOC_TYPE), payload, plen, &env, &env_len),
                   0);
  free(payload);
  Mesh__Coord__CoordMessage m;
  mesh__coord__coord_message__init(&m);
  m.body_case = MESH__COORD__COORD_MESSAGE__BODY_DOCUMENT;
  m.document.data = env;
  m.document.len = env_len;
  *len = mesh__coord__coord_message__get_packed_size(&m);
  *out = malloc(*len);
  mesh__coord__coord_message__pack(&m, *out);
  free(env);
}

static inline void craft_doc_n(const mesh_identity *signer, const mesh_peer_id *owner,
                               uint64_t epoch, uint64_t version, const char *model, size_t n,
                               uint8_t **out, size_t *len)
{
  craft_doc_dir(signer, owner, epoch, version, model, n, NULL, out, len);
}

/* A CoordMessage carrying a command result (unsigned, as on the wire). */
static inline void craft_result(uint64_t seq, uint64_t target_epoch, int32_t code,
                                const char *message, uint8_t **out, size_t *len)
{
  Mesh__Coord__CommandResult r;
  mesh__coord__command_result__init(&r);
  r.seq = seq;
  r.target_epoch = target_epoch;
  r.code = code;
  r.message = (char *)message;
  Mesh__Coord__CoordMessage m;
  mesh__coord__coord_message__init(&m);
  m.body_case = MESH__COORD__COORD_MESSAGE__BODY_RESULT;
  m.result = &r;
  *len = mesh__coord__coord_message__get_packed_size(&m);
  *out = malloc(*len);
  assert_non_null(*out);
  mesh__coord__coord_message__pack(&m, *out);
}

static inline void craft_doc(const mesh_identity *signer, const mesh_peer_id *owner, uint64_t epoch,
                             uint64_t version, const char *model, uint8_t **out, size_t *len)
{
  craft_doc_n(signer, owner, epoch, version, model, 1, out, len);
}

#endif
