/*
 * The membership simulator (see support_sim.h).
 */
#include "support_sim.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EV_TIMER = 1, EV_DELIVER = 2, EV_CONNECT = 3, EV_JOIN = 4 };

#define MAX_GROUPS 8

typedef struct sim_ev {
  mesh_time_ms t;
  uint64_t seq;  /* insertion order breaks ties: runs are reproducible */
  uint32_t node; /* receiver */
  uint32_t from; /* sender (DELIVER) or dialed node (CONNECT) */
  uint8_t type;
  uint8_t cls;
  uint32_t life;  /* TIMER / CONNECT / JOIN: the receiver's life it belongs to */
  uint64_t token; /* TIMER */
  uint8_t *buf;   /* DELIVER: owned by the event */
  size_t len;
} sim_ev;

typedef struct sim_node {
  mesh_identity id;
  mesh_rng rng;
  mesh_swim *core; /* NULL while crashed */
  uint64_t epoch;
  uint32_t life; /* bumped at every crash, so old timers die */
  mesh_time_ms stall_until;
  uint64_t timer_token;
  unsigned group;
  char addr[32];
} sim_node;

struct sim {
  sim_config cfg;
  sim_node *nodes;
  mesh_rng rng; /* the network's choices */
  mesh_time_ms now;
  sim_ev *heap;
  size_t heap_n, heap_cap;
  uint64_t seq;
  int32_t *ix; /* peer ID -> node, open addressing */
  size_t ix_cap;
  bool blocked[MAX_GROUPS][MAX_GROUPS];
  mesh_swim_sigcache *cache;
  mesh_swim_outbox out;
  sim_event_fn on_event;
  void *on_event_ctx;
  sim_stats st;
};

/* ---- event heap ---- */

static bool ev_less(const sim_ev *a, const sim_ev *b)
{
  return a->t != b->t ? a->t < b->t : a->seq < b->seq;
}

static void push(sim *s, sim_ev e)
{
  if (s->heap_n == s->heap_cap) {
    size_t cap = s->heap_cap ? s->heap_cap * 2 : 1024;
    sim_ev *h = realloc(s->heap, cap * sizeof *h);
    if (h == NULL) {
      fprintf(stderr, "sim: out of memory\n");
      abort();
    }
    s->heap = h;
    s->heap_cap = cap;
  }
  e.seq = s->seq++;
  size_t i = s->heap_n++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!ev_less(&e, &s->heap[p]))
      break;
    s->heap[i] = s->heap[p];
    i = p;
  }
  s->heap[i] = e;
}

static sim_ev pop(sim *s)
{
  sim_ev top = s->heap[0];
  sim_ev last = s->heap[--s->heap_n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const sim_ev *best = &last;
    if (l < s->heap_n && ev_less(&s->heap[l], best)) {
      m = l;
      best = &s->heap[l];
    }
    if (r < s->heap_n && ev_less(&s->heap[r], best))
      m = r;
    if (m == i)
      break;
    s->heap[i] = s->heap[m];
    i = m;
  }
  if (s->heap_n > 0)
    s->heap[i] = last;
  return top;
}

/* ---- peer ID index ---- */

static size_t id_hash(const mesh_peer_id *id)
{
  uint64_t h;
  memcpy(&h, id->b + MESH_PEER_ID_LEN - 8, 8);
  return (size_t)h;
}

static int lookup(const sim *s, const mesh_peer_id *id)
{
  size_t mask = s->ix_cap - 1;
  for (size_t i = id_hash(id) & mask;; i = (i + 1) & mask) {
    int32_t v = s->ix[i];
    if (v < 0)
      return -1;
    if (memcmp(s->nodes[v].id.id.b, id->b, MESH_PEER_ID_LEN) == 0)
      return v;
  }
}

/* ---- nodes ---- */

static int start_core(sim *s, size_t i)
{
  sim_node *n = &s->nodes[i];
  mesh_swim_config c = s->cfg.swim;
  const char *addrs[1] = {n->addr};
  c.addrs = addrs;
  c.n_addrs = 1;
  c.agent = "meshd-sim/1";
  c.host = "sim";
  c.sigcache = s->cache;
  mesh_rng_seed(&n->rng, s->cfg.seed * 1000003u + i * 7919u + n->life);
  return mesh_swim_new(&c, &n->id, n->epoch, &n->rng, &n->core);
}

static void drain(sim *s, size_t i);

int sim_new(const sim_config *cfg, sim **out)
{
  sim *s = calloc(1, sizeof *s);
  if (s == NULL)
    return -ENOMEM;
  s->cfg = *cfg;
  if (s->cfg.delay_ms == 0)
    s->cfg.delay_ms = 1;
  if (s->cfg.join_spread_ms == 0)
    s->cfg.join_spread_ms = (uint32_t)cfg->n;
  mesh_rng_seed(&s->rng, cfg->seed);
  mesh_swim_outbox_init(&s->out);
  size_t cache = 65536;
  while (cache < cfg->n * 16)
    cache <<= 1;
  s->ix_cap = 16;
  while (s->ix_cap < cfg->n * 2)
    s->ix_cap <<= 1;
  s->nodes = calloc(cfg->n, sizeof *s->nodes);
  s->ix = malloc(s->ix_cap * sizeof *s->ix);
  if (s->nodes == NULL || s->ix == NULL || mesh_swim_sigcache_new(cache, &s->cache) != 0) {
    sim_free(s);
    return -ENOMEM;
  }
  for (size_t i = 0; i < s->ix_cap; i++)
    s->ix[i] = -1;
  for (size_t i = 0; i < cfg->n; i++) {
    sim_node *n = &s->nodes[i];
    /* Keys from the seed, so that a seed reproduces peer IDs as well. */
    uint8_t seed[crypto_sign_SEEDBYTES] = {0};
    uint64_t x = cfg->seed ^ (0x9e3779b97f4a7c15ull * (i + 1));
    memcpy(seed, &x, sizeof x);
    memcpy(seed + 8, &i, sizeof i);
    crypto_sign_seed_keypair(n->id.pk, n->id.sk, seed);
    mesh_peer_id_from_pubkey(n->id.pk, &n->id.id);
    n->epoch = 1;
    snprintf(n->addr, sizeof n->addr, "sim:%zu", i);
    size_t mask = s->ix_cap - 1, k = id_hash(&n->id.id) & mask;
    while (s->ix[k] >= 0)
      k = (k + 1) & mask;
    s->ix[k] = (int32_t)i;
    if (start_core(s, i) != 0) {
      sim_free(s);
      return -EINVAL;
    }
  }
  *out = s;
  return 0;
}

void sim_free(sim *s)
{
  if (s == NULL)
    return;
  for (size_t i = 0; s->nodes != NULL && i < s->cfg.n; i++)
    mesh_swim_free(s->nodes[i].core);
  for (size_t i = 0; i < s->heap_n; i++)
    free(s->heap[i].buf);
  free(s->heap);
  free(s->nodes);
  free(s->ix);
  mesh_swim_sigcache_free(s->cache);
  mesh_swim_outbox_free(&s->out);
  free(s);
}

static mesh_time_ms link_delay(sim *s)
{
  mesh_time_ms d = s->cfg.delay_ms;
  if (s->cfg.jitter_ms > 0)
    d += mesh_rng_below(&s->rng, s->cfg.jitter_ms + 1);
  return d;
}

static bool reachable(const sim *s, size_t a, size_t b)
{
  return !s->blocked[s->nodes[a].group][s->nodes[b].group];
}

static void transmit(sim *s, size_t from, size_t to, mesh_swim_class cls, const uint8_t *buf,
                     size_t len)
{
  if (!reachable(s, from, to))
    return;
  int copies = 1;
  if (cls == MESH_SWIM_DATAGRAM) {
    if (s->cfg.loss > 0 && mesh_rng_unit(&s->rng) < s->cfg.loss) {
      s->st.datagrams_lost++;
      return;
    }
    if (s->cfg.dup > 0 && mesh_rng_unit(&s->rng) < s->cfg.dup)
      copies = 2;
  }
  for (int c = 0; c < copies; c++) {
    mesh_time_ms d = cls == MESH_SWIM_STREAM ? s->cfg.delay_ms : link_delay(s);
    if (cls == MESH_SWIM_DATAGRAM && s->cfg.reorder > 0 && mesh_rng_unit(&s->rng) < s->cfg.reorder)
      d += mesh_rng_below(&s->rng, 4 * (mesh_time_ms)s->cfg.delay_ms + 1);
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL)
      abort();
    memcpy(copy, buf, len);
    push(s, (sim_ev){.t = s->now + d,
                     .type = EV_DELIVER,
                     .node = (uint32_t)to,
                     .from = (uint32_t)from,
                     .cls = (uint8_t)cls,
                     .buf = copy,
                     .len = len});
  }
}

static void note_event(sim *s, size_t obs, const mesh_view_event *ev)
{
  int t = lookup(s, &ev->peer);
  if (t >= 0 && s->nodes[t].core != NULL && s->nodes[t].epoch == ev->epoch) {
    if (ev->type == MESH_VIEW_DEAD)
      s->st.false_deaths++;
    if (ev->type == MESH_VIEW_SUSPECT)
      s->st.false_suspects++;
  }
  if (s->on_event != NULL)
    s->on_event(s, obs, ev, s->on_event_ctx);
}

/* Hands node i's outbox to the network and the observers. */
static void drain(sim *s, size_t i)
{
  sim_node *n = &s->nodes[i];
  mesh_swim_outbox *o = &s->out;
  for (size_t k = 0; k < o->n_sends; k++) {
    const mesh_swim_send *snd = &o->sends[k];
    s->st.msgs_sent++;
    s->st.bytes_sent += snd->len;
    if (snd->kind > 0 && snd->kind < MESH_SWIM_MSG__COUNT) {
      s->st.msgs_by_kind[snd->kind]++;
      s->st.bytes_by_kind[snd->kind] += snd->len;
    }
    int to = lookup(s, &snd->to);
    if (to >= 0)
      transmit(s, i, (size_t)to, snd->cls, snd->buf, snd->len);
  }
  for (size_t k = 0; k < o->n_dials; k++) {
    unsigned long to;
    if (sscanf(o->dials[k], "sim:%lu", &to) != 1 || to >= s->cfg.n || to == i)
      continue;
    /* One round trip for the handshake, which needs both directions. */
    if (s->nodes[to].core == NULL || !reachable(s, i, to) || !reachable(s, to, i))
      continue;
    push(s, (sim_ev){.t = s->now + 2 * (mesh_time_ms)s->cfg.delay_ms,
                     .type = EV_CONNECT,
                     .node = (uint32_t)i,
                     .from = (uint32_t)to,
                     .life = n->life});
  }
  for (size_t k = 0; k < o->n_events; k++)
    note_event(s, i, &o->events[k]);
  if (o->timer_set) {
    n->timer_token = o->timer_token;
    push(s, (sim_ev){.t = o->timer_at < s->now ? s->now : o->timer_at,
                     .type = EV_TIMER,
                     .node = (uint32_t)i,
                     .life = n->life,
                     .token = o->timer_token});
  }
  bool over = o->epoch_over;
  mesh_swim_outbox_clear(o);
  if (over && n->core != NULL) {
    /* Declared dead in its epoch: renew in place, the path the daemon takes
     * (src/daemon/renew.c) once epoch + 1 is durable; there is no disk here. */
    s->st.epoch_overs++;
    n->epoch++;
    mesh_swim_set_epoch(n->core, n->epoch, s->now, o);
    drain(s, i);
  }
}

static void dispatch(sim *s, sim_ev *e)
{
  sim_node *n = &s->nodes[e->node];
  s->st.events++;
  if (e->type != EV_DELIVER && e->life != n->life)
    return;
  if (n->core == NULL)
    return;
  if (e->type == EV_TIMER && e->token != n->timer_token)
    return; /* superseded: the core would ignore it too */
  if (n->stall_until > s->now) {
    /* A stalled process handles nothing; what arrives waits in its queue. */
    sim_ev again = *e;
    again.t = n->stall_until;
    push(s, again);
    e->buf = NULL;
    return;
  }
  switch (e->type) {
  case EV_TIMER:
    mesh_swim_handle_timer(n->core, e->token, s->now, &s->out);
    break;
  case EV_DELIVER:
    mesh_swim_handle_packet(n->core, &s->nodes[e->from].id.id, (mesh_swim_class)e->cls, e->buf,
                            e->len, s->now, &s->out);
    break;
  case EV_CONNECT: {
    const sim_node *p = &s->nodes[e->from];
    if (p->core == NULL)
      break;
    mesh_swim_peer_connected(n->core, &p->id.id, p->addr, p->epoch, s->now, &s->out);
    break;
  }
  case EV_JOIN: {
    const char *seeds[3];
    size_t ns = 0;
    if (e->from != e->node)
      seeds[ns++] = s->nodes[e->from].addr;
    mesh_swim_join(n->core, seeds, ns, s->now, &s->out);
    break;
  }
  }
  drain(s, e->node);
}

void sim_start(sim *s)
{
  for (size_t i = 0; i < s->cfg.n; i++) {
    size_t seed = i == 0 ? 0 : (size_t)mesh_rng_below(&s->rng, i);
    mesh_time_ms at = s->now + (mesh_time_ms)((double)s->cfg.join_spread_ms * (double)i /
                                              (double)(s->cfg.n ? s->cfg.n : 1));
    push(s, (sim_ev){.t = at,
                     .type = EV_JOIN,
                     .node = (uint32_t)i,
                     .from = (uint32_t)(i == 0 ? 0 : seed),
                     .life = s->nodes[i].life});
  }
}

void sim_run_until(sim *s, mesh_time_ms t)
{
  while (s->heap_n > 0 && s->heap[0].t <= t) {
    sim_ev e = pop(s);
    s->now = e.t;
    dispatch(s, &e);
    free(e.buf);
  }
  if (t > s->now)
    s->now = t;
}

bool sim_run_until_cond(sim *s, mesh_time_ms deadline, mesh_time_ms every,
                        bool (*pred)(sim *s, void *ctx), void *ctx)
{
  if (every == 0)
    every = 100;
  for (;;) {
    if (pred(s, ctx))
      return true;
    if (s->now >= deadline)
      return false;
    mesh_time_ms next = s->now + every;
    sim_run_until(s, next < deadline ? next : deadline);
  }
}

mesh_time_ms sim_now(const sim *s)
{
  return s->now;
}

void sim_crash(sim *s, size_t i)
{
  sim_node *n = &s->nodes[i];
  mesh_swim_free(n->core);
  n->core = NULL;
  n->life++;
  n->stall_until = 0;
}

void sim_restart(sim *s, size_t i)
{
  sim_node *n = &s->nodes[i];
  if (n->core != NULL)
    sim_crash(s, i);
  n->epoch++;
  if (start_core(s, i) != 0) {
    fprintf(stderr, "sim: restart of node %zu failed\n", i);
    abort();
  }
  const char *seeds[3];
  size_t ns = 0;
  for (size_t tries = 0; tries < 64 && ns < 3; tries++) {
    size_t j = (size_t)mesh_rng_below(&s->rng, s->cfg.n);
    if (j == i || s->nodes[j].core == NULL)
      continue;
    bool dup = false;
    for (size_t k = 0; k < ns; k++)
      dup = dup || strcmp(seeds[k], s->nodes[j].addr) == 0;
    if (!dup)
      seeds[ns++] = s->nodes[j].addr;
  }
  mesh_swim_join(n->core, seeds, ns, s->now, &s->out);
  drain(s, i);
}

void sim_bump_epoch(sim *s, size_t i)
{
  sim_node *n = &s->nodes[i];
  if (n->core == NULL)
    return;
  n->epoch++;
  mesh_swim_set_epoch(n->core, n->epoch, s->now, &s->out);
  drain(s, i);
}

void sim_stall(sim *s, size_t i, mesh_time_ms duration)
{
  s->nodes[i].stall_until = s->now + duration;
}

void sim_set_loss(sim *s, double loss)
{
  s->cfg.loss = loss;
}

void sim_set_group(sim *s, size_t i, unsigned g)
{
  s->nodes[i].group = g % MAX_GROUPS;
}

void sim_block(sim *s, unsigned a, unsigned b, bool blocked)
{
  s->blocked[a % MAX_GROUPS][b % MAX_GROUPS] = blocked;
}

void sim_heal(sim *s)
{
  memset(s->blocked, 0, sizeof s->blocked);
  for (size_t i = 0; i < s->cfg.n; i++)
    s->nodes[i].group = 0;
}

void sim_inject(sim *s, size_t from, size_t to, mesh_swim_class cls, const uint8_t *buf, size_t len)
{
  uint8_t *copy = malloc(len ? len : 1);
  if (copy == NULL)
    abort();
  memcpy(copy, buf, len);
  push(s, (sim_ev){.t = s->now,
                   .type = EV_DELIVER,
                   .node = (uint32_t)to,
                   .from = (uint32_t)from,
                   .cls = (uint8_t)cls,
                   .buf = copy,
                   .len = len});
}

size_t sim_n(const sim *s)
{
  return s->cfg.n;
}

mesh_swim_outbox *sim_outbox(sim *s)
{
  return &s->out;
}

mesh_swim *sim_core(sim *s, size_t i)
{
  return s->nodes[i].core;
}

const mesh_identity *sim_identity(const sim *s, size_t i)
{
  return &s->nodes[i].id;
}

uint64_t sim_epoch(const sim *s, size_t i)
{
  return s->nodes[i].epoch;
}

bool sim_up(const sim *s, size_t i)
{
  return s->nodes[i].core != NULL;
}

size_t sim_up_count(const sim *s)
{
  size_t c = 0;
  for (size_t i = 0; i < s->cfg.n; i++)
    c += s->nodes[i].core != NULL;
  return c;
}

void sim_on_event(sim *s, sim_event_fn fn, void *ctx)
{
  s->on_event = fn;
  s->on_event_ctx = ctx;
}

int sim_view_of(sim *s, size_t observer, size_t target, mesh_swim_state *state, uint64_t *epoch)
{
  *state = 0;
  *epoch = 0;
  if (s->nodes[observer].core == NULL)
    return -ENOENT;
  mesh_swim_member_info mi;
  if (mesh_swim_member_find(s->nodes[observer].core, &s->nodes[target].id.id, &mi) != 0)
    return -ENOENT;
  *state = mi.state;
  *epoch = mi.epoch;
  return 0;
}

bool sim_converged(sim *s, void *unused)
{
  size_t up = sim_up_count(s);
  for (size_t i = 0; i < s->cfg.n; i++) {
    mesh_swim *c = s->nodes[i].core;
    if (c == NULL)
      continue;
    if (mesh_swim_view_size(c) != up - 1)
      return false;
    for (size_t j = 0; j < s->cfg.n; j++) {
      if (j == i || s->nodes[j].core == NULL)
        continue;
      mesh_swim_state st;
      uint64_t ep;
      if (sim_view_of(s, i, j, &st, &ep) != 0 || st != MESH_SWIM_ALIVE || ep != s->nodes[j].epoch)
        return false;
    }
  }
  return true;
}

const sim_stats *sim_get_stats(const sim *s)
{
  return &s->st;
}

void sim_reset_stats(sim *s)
{
  memset(&s->st, 0, sizeof s->st);
}

size_t sim_scaled(size_t n, size_t min)
{
  const char *e = getenv("MESH_SIM_SCALE");
  double scale = 1.0;
  if (e != NULL) {
    char *end;
    double v = strtod(e, &end);
    if (end != e && v > 0.0 && v <= 1.0)
      scale = v;
  }
  size_t r = (size_t)((double)n * scale);
  return r < min ? min : r;
}
