/*
 * The membership protocol: probing, alive / suspect / dead / left, record
 * precedence, dissemination, push-pull and joining. See net/swim.h for the
 * protocol and the caller's contract.
 *
 * Timers: the core keeps its own deadlines (next probe, probe timeout, end of
 * probe, gossip, push-pull, reap, join retry, relayed pings, suspicions) and
 * asks the caller for one wake-up at the earliest of them. Every new request
 * carries a new generation token; a timer with an older token is ignored.
 *
 * Verification cost: an update is checked against what we hold before its
 * signature is: identical bytes, older incarnations, claims that would
 * change nothing and claims by non-members are settled without Ed25519.
 * Only an update that would change the view is verified, and the signature
 * cache makes a record seen again cost a hash. Bad signatures count against
 * the sender's budget (net/swim_budget.c).
 *
 * A packet's updates are applied in two passes, member records first, then
 * claims: a push-pull lists members in no particular order, and a claim
 * counts only when its accuser is already a member of our view.
 */
#include "net/swim_internal.h"

#include "src/identity/signed.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RELAYS 64    /* pings in flight for others' PING_REQs */
#define MAX_PIGGYBACK 64 /* updates considered per datagram */
#define MAX_HELPERS 16   /* indirect checks per probe */
#define REAP_PERIOD_MS 1000
#define NEWCOMERS_MAX 256      /* members waiting for a first ping of their own */
#define NEWCOMERS_PER_PROBE 8  /* of those, pinged per probe interval */
#define NEVER UINT64_MAX

typedef struct swim_relay {
  uint32_t seq;           /* our ping to the target */
  mesh_peer_id requester; /* who asked */
  uint32_t req_seq;       /* the requester's probe seq, echoed in ACK / NACK */
  mesh_time_ms deadline;  /* NACK after this */
  bool nack;
} swim_relay;

/* Where the updates of one packet come from, for the introduction caps,
 * the sender's budgets and the push-pull tombstone rule. */
typedef struct swim_intake {
  const mesh_peer_id *from; /* the packet's sender (authenticated by the transport) */
  swim_peer *peer;          /* its budgets */
  uint64_t no;              /* the packet's number (swim_member.intake) */
  bool full;                /* a push-pull (full state) */
  uint32_t sync_new;        /* new members it introduced so far */
} swim_intake;

/* A member new to the view (or at a new epoch), waiting for a ping of its
 * own: seq is 0 until that ping is sent. */
typedef struct swim_newcomer {
  mesh_peer_id id;
  uint64_t epoch;
  bool sent;
  uint32_t seq;           /* our ping (when sent) */
  mesh_time_ms sent_at;
} swim_newcomer;

typedef struct swim_reaped {
  mesh_peer_id id;
  uint64_t epoch;
} swim_reaped;

struct mesh_swim {
  mesh_swim_config cfg; /* resolved; strings point at the copies below */
  char **addrs;         /* copies of cfg addresses */
  mesh_swim_transport *transports;
  char *agent, *host;
  const mesh_identity *self;
  mesh_rng *rng;
  uint64_t epoch;
  uint64_t inc;
  bool started;      /* join called */
  bool joined;       /* a push-pull answered, or first node */
  bool leaving;      /* left record signed */
  bool epoch_dead;   /* declared dead in this epoch: waiting for a new one */
  bool late_noted;   /* a lateness report raised health at late_at */
  mesh_time_ms late_at;
  uint8_t *self_upd; /* our own signed Update (alive or left) */
  size_t self_upd_len;

  swim_member **m; /* members other than self */
  size_t n, cap;
  swim_index ix;
  size_t probe_idx;
  size_t n_view;      /* alive + suspect */
  uint64_t view_seq;  /* number of the last view change (net/view.h), queued or not */
  swim_member **susp; /* members with a running suspicion */
  size_t n_susp, cap_susp;

  struct {
    bool active;
    mesh_peer_id target;
    uint64_t epoch;
    uint32_t seq;
    mesh_time_ms started;    /* when it began (also after it ended) */
    mesh_time_ms timeout_at; /* direct ping's wait ends */
    mesh_time_ms end_at;     /* whole probe ends (health-scaled interval) */
    bool indirect;           /* PING_REQs sent */
    uint32_t expected_nacks, nacks;
  } probe;
  uint32_t seq;
  /* A member someone else suspects: probed next, out of turn, so that our
   * own confirmation (or its refutation) comes within a probe interval. */
  bool urgent;
  mesh_peer_id urgent_id;
  swim_relay relays[MAX_RELAYS];
  size_t n_relays;
  /* Newcomers get a ping of their own within a probe interval or two, not
   * when their turn in the round comes (minutes, in a large view at the wan
   * profile's interval): until a member answered one of our pings, the
   * coordinator takes no document from it. Those that do not fit wait for
   * their turn in the round. */
  swim_newcomer newcomers[NEWCOMERS_MAX];
  size_t n_newcomers;

  mesh_time_ms next_probe, next_gossip, next_push_pull, next_reap, next_join;
  mesh_time_ms last_gossip; /* when the last gossip round went out */
  bool news;                /* an update that changed the view was queued since */
  mesh_time_ms
      early_push_pull; /* push-pull period after joining: doubles up to the configured one */
  char **seeds;
  size_t n_seeds;

  swim_awareness aw;
  swim_bqueue bq;
  swim_peers peers;   /* per-peer budgets */
  uint64_t intake_no; /* packets handled: numbers swim_intake.no */
  swim_reaped *hist; /* ring of reaped (peer, epoch) */
  size_t hist_n, hist_head;

  uint8_t app[MESH_SWIM_MAX_APP_STATE];
  size_t app_len;

  mesh_swim_sigcache *cache;
  bool own_cache;
  uint64_t timer_gen;
  mesh_time_ms armed_at; /* deadline of the outstanding timer request, NEVER if none */
  mesh_swim_counters c;
};

static bool id_eq(const mesh_peer_id *a, const mesh_peer_id *b)
{
  return memcmp(a->b, b->b, MESH_PEER_ID_LEN) == 0;
}

static bool in_view(mesh_swim_state st)
{
  return st == MESH_SWIM_ALIVE || st == MESH_SWIM_SUSPECT;
}

static swim_member *find(const mesh_swim *s, const mesh_peer_id *id)
{
  int v = swim_index_get(&s->ix, id, s->m);
  return v < 0 ? NULL : s->m[v];
}

static void drop(mesh_swim *s, mesh_swim_drop why)
{
  s->c.dropped[why]++;
}

/* ---- lifecycle ---- */

static void free_member(swim_member *m)
{
  free(m->rec);
  free(m->acc);
  free(m->addrs);
  free(m->agent);
  free(m->host);
  free(m->susp);
  free(m);
}

static int sign_self(mesh_swim *s)
{
  uint8_t *body = NULL, *upd = NULL;
  size_t blen, ulen;
  uint8_t sig[MESH_SIG_LEN];
  int rc = swim_member_body_encode(&s->self->id, s->epoch, s->inc, s->leaving,
                                   (const char *const *)s->addrs, s->cfg.n_addrs, s->transports,
                                   s->cfg.n_transports, s->agent, s->host, &body, &blen);
  if (rc != 0)
    return rc;
  rc = mesh_sign(s->self, MESH_DOMAIN_MEMBER, (const uint8_t *)SWIM_TYPE_MEMBER,
                 strlen(SWIM_TYPE_MEMBER), body, blen, sig);
  if (rc == 0)
    rc = swim_update_encode(&s->self->id, false, body, blen, sig, &upd, &ulen);
  free(body);
  if (rc != 0)
    return rc;
  free(s->self_upd);
  s->self_upd = upd;
  s->self_upd_len = ulen;
  return swim_bq_push(&s->bq, &s->self->id, upd, ulen);
}

static char *dup_str(const char *x)
{
  return strdup(x != NULL ? x : "");
}

int mesh_swim_new(const mesh_swim_config *cfg, const mesh_identity *self, uint64_t epoch,
                  mesh_rng *rng, mesh_swim **out)
{
  mesh_swim_config rc_cfg = *cfg;
  int rc = mesh_swim_config_resolve(&rc_cfg);
  if (rc != 0)
    return rc;
  if (rc_cfg.n_addrs > MESH_SWIM_MAX_ADDRS || rc_cfg.n_transports > MESH_SWIM_MAX_TRANSPORTS)
    return -EINVAL;
  mesh_swim *s = calloc(1, sizeof *s);
  if (s == NULL)
    return -ENOMEM;
  s->cfg = rc_cfg;
  s->self = self;
  s->rng = rng;
  s->epoch = epoch;
  s->armed_at = NEVER;
  rc = -ENOMEM;
  s->addrs = calloc(rc_cfg.n_addrs + 1, sizeof *s->addrs);
  s->transports = calloc(rc_cfg.n_transports + 1, sizeof *s->transports);
  s->agent = dup_str(cfg->agent);
  s->host = dup_str(cfg->host);
  s->hist = calloc(rc_cfg.reaped_history, sizeof *s->hist);
  if (s->addrs == NULL || s->transports == NULL || s->agent == NULL || s->host == NULL ||
      s->hist == NULL)
    goto fail;
  for (size_t i = 0; i < rc_cfg.n_addrs; i++) {
    s->addrs[i] = dup_str(cfg->addrs[i]);
    if (s->addrs[i] == NULL)
      goto fail;
  }
  for (size_t i = 0; i < rc_cfg.n_transports; i++) {
    const mesh_swim_transport *t = &cfg->transports[i];
    s->transports[i].name = dup_str(t->name);
    uint8_t *attrs = malloc(t->attrs_len + 1);
    if (s->transports[i].name == NULL || attrs == NULL) {
      free(attrs);
      goto fail;
    }
    if (t->attrs_len > 0)
      memcpy(attrs, t->attrs, t->attrs_len);
    s->transports[i].attrs = attrs;
    s->transports[i].attrs_len = t->attrs_len;
  }
  if (swim_index_init(&s->ix, 64) != 0)
    goto fail;
  swim_awareness_init(&s->aw, (int)rc_cfg.awareness_max);
  swim_bq_init(&s->bq);
  swim_peers_init(&s->peers);
  if (rc_cfg.sigcache != NULL) {
    s->cache = rc_cfg.sigcache;
  } else {
    if (mesh_swim_sigcache_new(4096, &s->cache) != 0)
      goto fail;
    s->own_cache = true;
  }
  s->seq = (uint32_t)mesh_rng_next(rng);
  rc = sign_self(s);
  if (rc != 0)
    goto fail;
  *out = s;
  return 0;
fail:
  mesh_swim_free(s);
  return rc;
}

void mesh_swim_free(mesh_swim *s)
{
  if (s == NULL)
    return;
  for (size_t i = 0; i < s->n; i++)
    free_member(s->m[i]);
  free(s->m);
  free(s->susp);
  swim_index_free(&s->ix);
  swim_bq_free(&s->bq);
  if (s->addrs != NULL)
    for (size_t i = 0; i < s->cfg.n_addrs; i++)
      free(s->addrs[i]);
  free(s->addrs);
  if (s->transports != NULL) {
    for (size_t i = 0; i < s->cfg.n_transports; i++) {
      free((char *)s->transports[i].name);
      free((uint8_t *)s->transports[i].attrs);
    }
  }
  free(s->transports);
  free(s->agent);
  free(s->host);
  free(s->hist);
  for (size_t i = 0; i < s->n_seeds; i++)
    free(s->seeds[i]);
  free(s->seeds);
  free(s->self_upd);
  if (s->own_cache)
    mesh_swim_sigcache_free(s->cache);
  free(s);
}

/* ---- state transitions ---- */

static void susp_remove(mesh_swim *s, swim_member *m)
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
    if (id_eq(&s->newcomers[i].id, &m->id)) {
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

/* m answered a ping of ours: once per epoch, the view hears of it. */
static void mark_answered(mesh_swim *s, swim_member *m, mesh_time_ms now, mesh_swim_outbox *out)
{
  if (m->answered || !in_view(m->state))
    return;
  m->answered = true;
  mesh_view_event e = {.type = MESH_VIEW_ANSWERED,
                       .peer = m->id,
                       .epoch = m->epoch,
                       .old_epoch = m->epoch,
                       .at = now,
                       .seq = ++s->view_seq};
  swim_outbox_event(out, &e);
}

static void transition(mesh_swim *s, swim_member *m, mesh_swim_state st, mesh_view_event_type ev,
                       uint64_t old_epoch, mesh_time_ms now, mesh_swim_outbox *out)
{
  bool was = in_view(m->state), is = in_view(st);
  if (was && !is)
    s->n_view--;
  if (!was && is)
    s->n_view++;
  if (m->state == MESH_SWIM_SUSPECT && st != MESH_SWIM_SUSPECT)
    susp_remove(s, m);
  m->state = st;
  m->since = now;
  if (ev == MESH_VIEW_JOINED || ev == MESH_VIEW_EPOCH_CHANGED) {
    m->answered = false;
    newcomer_add(s, m);
  }
  if (ev != 0) {
    /* Numbered before it is queued: an event the outbox cannot hold still
     * takes its number, so that subscribers see the gap. */
    mesh_view_event e = {.type = ev,
                         .peer = m->id,
                         .epoch = m->epoch,
                         .old_epoch = old_epoch,
                         .at = now,
                         .seq = ++s->view_seq};
    swim_outbox_event(out, &e);
  }
}

static int start_suspicion(mesh_swim *s, swim_member *m, const mesh_peer_id *accuser,
                           mesh_time_ms now)
{
  size_t n = s->n_view + 1;
  uint32_t k = s->cfg.suspicion_mult > 2 ? s->cfg.suspicion_mult - 2 : 0;
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

static int set_bytes(uint8_t **dst, size_t *dlen, const uint8_t *src, size_t len)
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
static int set_info(swim_member *m, const swim_member_body *b)
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

static swim_member *add_member(mesh_swim *s, const mesh_peer_id *id)
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

static void remove_member(mesh_swim *s, swim_member *m)
{
  if (m->state == MESH_SWIM_SUSPECT)
    susp_remove(s, m);
  if (in_view(m->state))
    s->n_view--;
  swim_index_del(&s->ix, &m->id, s->m);
  size_t i = (size_t)m->slot;
  s->m[i] = s->m[--s->n];
  s->m[i]->slot = (int32_t)i;
  if (i != s->n)
    swim_index_set(&s->ix, &s->m[i]->id, (int32_t)i, s->m);
  free_member(m);
}

static bool reaped_refuses(const mesh_swim *s, const mesh_peer_id *id, uint64_t epoch)
{
  for (size_t i = 0; i < s->hist_n; i++)
    if (id_eq(&s->hist[i].id, id) && epoch <= s->hist[i].epoch)
      return true;
  return false;
}

/* ---- sending ---- */

static uint32_t retransmit_limit(const mesh_swim *s)
{
  return swim_retransmit_limit(s->cfg.retransmit_mult, s->n_view + 1);
}

/*
 * Encodes p, fills the rest of a datagram with queued updates (first the
 * optional `first` update, for the buddy system), and queues it for `to`.
 */
static void send_packet(mesh_swim *s, const mesh_peer_id *to, mesh_swim_class cls,
                        swim_packet_out *p, const uint8_t *first, size_t first_len,
                        mesh_swim_outbox *out)
{
  const uint8_t *ups[MAX_PIGGYBACK + 1];
  size_t lens[MAX_PIGGYBACK + 1];
  size_t idx[MAX_PIGGYBACK];
  size_t n_idx = 0;
  /* Pings and acks carry updates on either class (the stream ones are the
   * fallback and last-chance probes, whose ACK brings a refutation back). */
  if (p->kind != MESH_SWIM_MSG_PUSH_PULL && p->n_updates == 0) {
    size_t n = 0;
    size_t budget = s->cfg.max_datagram;
    size_t base = swim_packet_base_size(p);
    budget = budget > base ? budget - base : 0;
    if (first != NULL && swim_update_overhead(first_len) <= budget) {
      ups[n] = first;
      lens[n++] = first_len;
      budget -= swim_update_overhead(first_len);
    }
    /* swim_update_overhead(len) = len + 2 or 3: pass the framing as overhead. */
    n_idx = swim_bq_select(&s->bq, budget, 3, idx, MAX_PIGGYBACK);
    for (size_t i = 0; i < n_idx; i++) {
      ups[n] = s->bq.items[idx[i]].buf;
      lens[n++] = s->bq.items[idx[i]].len;
    }
    p->updates = ups;
    p->update_lens = lens;
    p->n_updates = n;
  }
  const swim_member *m = find(s, to);
  size_t abytes = m != NULL ? m->addrs_bytes : 0;
  uint8_t *buf;
  size_t len;
  if (swim_packet_encode(p, abytes, &buf, &len) != 0) {
    out->alloc_failed = -ENOMEM;
    return;
  }
  if (n_idx > 0)
    swim_bq_commit(&s->bq, idx, n_idx, retransmit_limit(s));
  s->c.msgs_sent[p->kind]++;
  s->c.bytes_sent[p->kind] += len;
  swim_outbox_send(out, to, cls, p->kind, buf, len, m != NULL ? m->addrs : NULL, abytes,
                   m != NULL ? m->n_addrs : 0);
}

/*
 * What a probe costs on the wire. Pings, acks and nacks carry a kind and a
 * sequence number, nothing else (8 bytes): the transport authenticates both
 * ends of every datagram (a connection's handshake, or keys derived from
 * it), so the receiver knows who sent it and the sender knows who gets it.
 * Neither a signature nor the receiver's ID nor the sender's epoch would
 * tell either side anything; the epoch travels in push-pulls only, where
 * it names the epoch of the application state they carry. Records that
 * are relayed (member records, accusations) keep their signatures: a
 * relay cannot vouch for someone else. A PING_REQ names its target, whom
 * the helper does not otherwise know to ping.
 */
static void send_simple(mesh_swim *s, const mesh_peer_id *to, mesh_swim_class cls, int kind,
                        uint32_t seq, mesh_swim_outbox *out)
{
  swim_packet_out p = {.kind = kind, .seq = seq};
  send_packet(s, to, cls, &p, NULL, 0, out);
}

/* A PING to member m on class cls, with the accusation we hold about it
 * first when it is suspect (buddy system). */
static void send_ping(mesh_swim *s, const swim_member *m, mesh_swim_class cls, uint32_t seq,
                      mesh_swim_outbox *out)
{
  swim_packet_out p = {.kind = MESH_SWIM_MSG_PING, .seq = seq};
  bool buddy = m->state == MESH_SWIM_SUSPECT && m->acc != NULL;
  send_packet(s, &m->id, cls, &p, buddy ? m->acc : NULL, buddy ? m->acc_len : 0, out);
}

/* The updates of a received push-pull, sorted by hash, so that an answer
 * can leave out the records its asker holds already. */
typedef struct swim_seen_key {
  uint64_t hash; /* of the update's bytes */
  uint32_t idx;  /* which update of the packet */
} swim_seen_key;

typedef struct swim_seen {
  const swim_packet *p; /* the push-pull answered (borrowed) */
  swim_seen_key *keys;  /* one per update, sorted by hash */
  size_t n;
} swim_seen;

static uint64_t bytes_hash(const uint8_t *b, size_t len)
{
  uint64_t h = UINT64_C(1469598103934665603); /* FNV-1a: a filter, then memcmp decides */
  for (size_t i = 0; i < len; i++)
    h = (h ^ b[i]) * UINT64_C(1099511628211);
  return h;
}

static int cmp_seen(const void *x, const void *y)
{
  uint64_t a = ((const swim_seen_key *)x)->hash, b = ((const swim_seen_key *)y)->hash;
  return a < b ? -1 : a > b;
}

/* Fills seen from p; false (and seen empty) when memory ran out, and the
 * answer then carries everything, as it always could. */
static bool seen_init(swim_seen *seen, const swim_packet *p)
{
  memset(seen, 0, sizeof *seen);
  if (p->n_updates == 0 || p->n_updates > UINT32_MAX)
    return false;
  swim_seen_key *keys = malloc(p->n_updates * sizeof *keys);
  if (keys == NULL)
    return false;
  for (size_t i = 0; i < p->n_updates; i++)
    keys[i] = (swim_seen_key){.hash = bytes_hash(p->updates[i], p->update_lens[i]),
                              .idx = (uint32_t)i};
  qsort(keys, p->n_updates, sizeof *keys, cmp_seen);
  *seen = (swim_seen){.p = p, .keys = keys, .n = p->n_updates};
  return true;
}

static void seen_free(swim_seen *seen)
{
  free(seen->keys);
  memset(seen, 0, sizeof *seen);
}

/* Whether the asker sent exactly these bytes. */
static bool seen_has(const swim_seen *seen, const uint8_t *b, size_t len)
{
  if (seen == NULL || seen->n == 0)
    return false;
  uint64_t k = bytes_hash(b, len);
  size_t lo = 0, hi = seen->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (seen->keys[mid].hash < k)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (size_t i = lo; i < seen->n && seen->keys[i].hash == k; i++) {
    uint32_t u = seen->keys[i].idx;
    if (seen->p->update_lens[u] == len && memcmp(seen->p->updates[u], b, len) == 0)
      return true;
  }
  return false;
}

/* Our full state for a push-pull: every member's record and accusation.
 * An answer (seen not NULL) leaves out the records its asker sent us
 * byte for byte: it holds them already, and in a settled mesh that is
 * nearly all of them, so an exchange costs one full state, not two. */
static void send_push_pull(mesh_swim *s, const mesh_peer_id *to, const char *addr, bool join,
                           bool reply, const swim_seen *seen, mesh_swim_outbox *out)
{
  size_t max = 1 + 2 * s->n;
  const uint8_t **ups = malloc(max * sizeof *ups);
  size_t *lens = malloc(max * sizeof *lens);
  if (ups == NULL || lens == NULL) {
    free(ups);
    free(lens);
    out->alloc_failed = -ENOMEM;
    return;
  }
  size_t n = 0;
  if (!seen_has(seen, s->self_upd, s->self_upd_len)) {
    ups[n] = s->self_upd;
    lens[n++] = s->self_upd_len;
  }
  for (size_t i = 0; i < s->n; i++) {
    const swim_member *m = s->m[i];
    if (m->rec != NULL && !seen_has(seen, m->rec, m->rec_len)) {
      ups[n] = m->rec;
      lens[n++] = m->rec_len;
    }
    if (m->acc != NULL && !seen_has(seen, m->acc, m->acc_len)) {
      ups[n] = m->acc;
      lens[n++] = m->acc_len;
    }
  }
  swim_packet_out p = {.kind = MESH_SWIM_MSG_PUSH_PULL,
                       .join = join,
                       .reply = reply,
                       .epoch = s->epoch,
                       .updates = ups,
                       .update_lens = lens,
                       .n_updates = n,
                       .app = s->app,
                       .app_len = s->app_len};
  if (addr != NULL && find(s, to) == NULL) {
    /* A seed we know only by the address we dialed. */
    uint8_t *buf;
    size_t len;
    size_t abytes = strlen(addr) + 1;
    if (swim_packet_encode(&p, abytes, &buf, &len) == 0) {
      s->c.msgs_sent[p.kind]++;
      s->c.bytes_sent[p.kind] += len;
      swim_outbox_send(out, to, MESH_SWIM_STREAM, p.kind, buf, len, addr, abytes, 1);
    } else {
      out->alloc_failed = -ENOMEM;
    }
  } else {
    send_packet(s, to, MESH_SWIM_STREAM, &p, NULL, 0, out);
  }
  free(ups);
  free(lens);
}

/* Picks up to k distinct random members passing ok(), other than `not`. */
static size_t pick_random(mesh_swim *s, size_t k,
                          bool (*ok)(const mesh_swim *, const swim_member *, mesh_time_ms),
                          const mesh_peer_id * not, mesh_time_ms now, swim_member **out)
{
  size_t got = 0;
  if (s->n == 0)
    return 0;
  for (size_t tries = 0; tries < 3 * s->n + 3 && got < k; tries++) {
    swim_member *m = s->m[mesh_rng_below(s->rng, s->n)];
    if (!ok(s, m, now) || (not != NULL && id_eq(&m->id, not )))
      continue;
    bool dup = false;
    for (size_t j = 0; j < got && !dup; j++)
      dup = out[j] == m;
    if (!dup)
      out[got++] = m;
  }
  return got;
}

static bool ok_alive(const mesh_swim *s, const swim_member *m, mesh_time_ms now)
{
  return m->state == MESH_SWIM_ALIVE;
}

static bool ok_view(const mesh_swim *s, const swim_member *m, mesh_time_ms now)
{
  return in_view(m->state);
}

static bool ok_gossip(const mesh_swim *s, const swim_member *m, mesh_time_ms now)
{
  /* Keep telling the recently dead, so a falsely accused member learns it. */
  return in_view(m->state) || now - m->since < s->cfg.gossip_to_dead_ms;
}

static bool ok_dead(const mesh_swim *s, const swim_member *m, mesh_time_ms now)
{
  return m->state == MESH_SWIM_DEAD;
}

/* ---- applying updates ---- */

static void rebroadcast(mesh_swim *s, const mesh_peer_id *subject, const uint8_t *buf, size_t len)
{
  if (swim_bq_push(&s->bq, subject, buf, len) == 0)
    s->news = true;
}

/* A record from in's sender failed verification: counted, and against the
 * sender's budget; the first time it is spent in a window, the caller is
 * asked to disconnect the sender. */
static void bad_signature(mesh_swim *s, swim_intake *in, mesh_time_ms now, mesh_swim_outbox *out)
{
  drop(s, MESH_SWIM_DROP_BAD_SIGNATURE);
  if (in == NULL || in->peer == NULL)
    return;
  if (swim_peer_bad_sig(in->peer, s->cfg.max_bad_sigs, s->cfg.bad_sig_window_ms, now)) {
    s->c.disconnects_requested++;
    swim_outbox_disconnect(out, in->from);
  }
}

/*
 * Whether one more member we do not know may come in through this packet:
 * the view's size cap, then the sender's cap (per push-pull, or per probe
 * interval for datagrams). A refusal is counted; the record may come again
 * later, through anti-entropy, when there is room.
 */
static bool intro_allowed(mesh_swim *s, const swim_intake *in, mesh_time_ms now)
{
  if (s->n >= s->cfg.max_members) {
    drop(s, MESH_SWIM_DROP_VIEW_FULL);
    return false;
  }
  uint32_t used =
      in->full ? in->sync_new : *swim_peer_intro(in->peer, s->cfg.probe_interval_ms, now);
  uint32_t cap = in->full ? s->cfg.max_intro_sync : s->cfg.max_intro_rate;
  if (used >= cap) {
    drop(s, MESH_SWIM_DROP_INTRO_LIMIT);
    return false;
  }
  return true;
}

static void intro_count(mesh_swim *s, swim_intake *in, mesh_time_ms now)
{
  if (in->full)
    in->sync_new++;
  else
    (*swim_peer_intro(in->peer, s->cfg.probe_interval_ms, now))++;
}

/* An alive or left record about another member. */
static void apply_member(mesh_swim *s, swim_intake *in, const swim_update *u, const uint8_t *raw,
                         size_t raw_len, mesh_time_ms now, mesh_swim_outbox *out)
{
  /* A member first seen in someone else's full state is spread by
   * anti-entropy; queueing a whole cluster's records would crowd out real
   * news. */
  bool quiet_fresh = in->full && !id_eq(in->from, &u->subject);
  swim_member_body b;
  if (swim_member_body_decode(u->body, u->body_len, &b) != 0) {
    drop(s, MESH_SWIM_DROP_MALFORMED);
    return;
  }
  if (!id_eq(&b.id, &u->subject)) {
    drop(s, MESH_SWIM_DROP_WRONG_SUBJECT);
    goto done;
  }
  swim_member *m = find(s, &b.id);
  if (m == NULL) {
    if (reaped_refuses(s, &b.id, b.epoch)) {
      drop(s, MESH_SWIM_DROP_ZOMBIE);
      goto done;
    }
    if (b.left) {
      /* A member we never saw leaving: nothing to change. */
      s->c.updates_ignored++;
      goto done;
    }
    if (!intro_allowed(s, in, now))
      goto done;
  } else if (!in_view(m->state)) {
    if (b.epoch < m->epoch || (b.epoch == m->epoch && b.left)) {
      s->c.updates_ignored++;
      goto done;
    }
    if (b.epoch == m->epoch) {
      drop(s, MESH_SWIM_DROP_ZOMBIE);
      goto done;
    }
  } else {
    if (b.epoch < m->epoch) {
      drop(s, MESH_SWIM_DROP_STALE_EPOCH);
      goto done;
    }
    if (b.epoch == m->epoch && (b.left ? b.incarnation < m->inc : b.incarnation <= m->inc)) {
      s->c.updates_ignored++;
      goto done;
    }
  }
  if (swim_verify(s->cache, &b.id, MESH_DOMAIN_MEMBER, SWIM_TYPE_MEMBER, u->body, u->body_len,
                  u->sig, &s->c) != 0) {
    bad_signature(s, in, now, out);
    goto done;
  }
  bool fresh = m == NULL;
  if (fresh) {
    m = add_member(s, &b.id);
    if (m == NULL) {
      out->alloc_failed = -ENOMEM;
      goto done;
    }
    m->intake = in->no;
    intro_count(s, in, now);
  }
  if (set_bytes(&m->rec, &m->rec_len, raw, raw_len) != 0 || set_info(m, &b) != 0) {
    out->alloc_failed = -ENOMEM;
    if (fresh)
      remove_member(s, m);
    goto done;
  }
  uint64_t old_epoch = m->epoch;
  mesh_swim_state old = m->state;
  bool new_epoch = !fresh && b.epoch > m->epoch;
  m->epoch = b.epoch;
  m->inc = b.incarnation;
  if (new_epoch || b.left) {
    free(m->acc);
    m->acc = NULL;
    m->acc_len = 0;
  }
  s->c.updates_applied++;
  if (fresh) {
    transition(s, m, MESH_SWIM_ALIVE, MESH_VIEW_JOINED, b.epoch, now, out);
  } else if (new_epoch && in_view(old)) {
    transition(s, m, MESH_SWIM_ALIVE, MESH_VIEW_EPOCH_CHANGED, old_epoch, now, out);
    if (b.left)
      transition(s, m, MESH_SWIM_LEFT, MESH_VIEW_LEFT, b.epoch, now, out);
  } else if (new_epoch) {
    transition(s, m, b.left ? MESH_SWIM_LEFT : MESH_SWIM_ALIVE, b.left ? 0 : MESH_VIEW_JOINED,
               old_epoch, now, out);
  } else if (b.left) {
    transition(s, m, MESH_SWIM_LEFT, MESH_VIEW_LEFT, b.epoch, now, out);
  } else if (old == MESH_SWIM_SUSPECT) {
    if (m->susp != NULL && m->susp->lc_sent)
      s->c.last_chance_saves++;
    free(m->acc);
    m->acc = NULL;
    m->acc_len = 0;
    transition(s, m, MESH_SWIM_ALIVE, MESH_VIEW_ALIVE_AGAIN, b.epoch, now, out);
  }
  if (!(fresh && quiet_fresh))
    rebroadcast(s, &m->id, raw, raw_len);
done:
  swim_member_body_release(&b);
}

/* Signs an accusation by us about m and returns its Update bytes. */
static int make_accusation(mesh_swim *s, const swim_member *m, bool dead, uint8_t **upd,
                           size_t *len)
{
  swim_accuse_body a = {.target = m->id,
                        .accuser = s->self->id,
                        .epoch = m->epoch,
                        .incarnation = m->inc,
                        .dead = dead};
  uint8_t *body;
  size_t blen;
  uint8_t sig[MESH_SIG_LEN];
  int rc = swim_accuse_body_encode(&a, &body, &blen);
  if (rc != 0)
    return rc;
  rc = mesh_sign(s->self, MESH_DOMAIN_ACCUSE, (const uint8_t *)SWIM_TYPE_ACCUSE,
                 strlen(SWIM_TYPE_ACCUSE), body, blen, sig);
  if (rc == 0)
    rc = swim_update_encode(&m->id, true, body, blen, sig, upd, len);
  free(body);
  return rc;
}

/* Where a claim's accuser stands in our view. */
typedef enum accuser_standing {
  ACCUSER_MEMBER,   /* this node, or a member alive or suspect */
  ACCUSER_DEPARTED, /* a member held dead or left, or one reaped since */
  ACCUSER_UNKNOWN,  /* never a member of our view, as far as we remember */
} accuser_standing;

static accuser_standing standing_of(const mesh_swim *s, const mesh_peer_id *accuser)
{
  if (id_eq(accuser, &s->self->id))
    return ACCUSER_MEMBER;
  const swim_member *a = find(s, accuser);
  if (a != NULL)
    return in_view(a->state) ? ACCUSER_MEMBER : ACCUSER_DEPARTED;
  for (size_t i = 0; i < s->hist_n; i++)
    if (id_eq(&s->hist[i].id, accuser))
      return ACCUSER_DEPARTED;
  return ACCUSER_UNKNOWN;
}

static void accuse(mesh_swim *s, swim_member *m, bool dead, mesh_time_ms now,
                   mesh_swim_outbox *out);
static void probe_soon(mesh_swim *s, const swim_member *m, mesh_time_ms now);

/*
 * A member's dead claim about m, which we hold alive: not applied, but
 * turned into a suspicion of our own (signed by us, so that m hears of it
 * with our pings and can refute), which the accuser's claim confirms. m is
 * declared dead when that suspicion times out, or on a dead claim by
 * another member meanwhile; the same accuser's claim, relayed back to us,
 * changes nothing.
 */
static void defer_dead(mesh_swim *s, swim_member *m, const swim_accuse_body *a, mesh_time_ms now,
                       mesh_swim_outbox *out)
{
  s->c.dead_claims_deferred++;
  s->c.updates_applied++;
  m->inc = a->incarnation;
  accuse(s, m, false, now, out);
  if (m->state != MESH_SWIM_SUSPECT || m->susp == NULL)
    return; /* could not sign or allocate: counted in alloc_failed */
  m->susp->from_dead = true;
  m->susp->dead_by = a->accuser;
  if (swim_suspicion_confirm(m->susp, &a->accuser))
    s->c.suspicion_confirmations++;
}

/*
 * A suspect or dead claim about another member, already checked to concern
 * m's current epoch. trusted: made by us (in is NULL then); otherwise in
 * tells where it came from.
 */
static void apply_claim(mesh_swim *s, swim_intake *in, swim_member *m, const swim_accuse_body *a,
                        const swim_update *u, const uint8_t *raw, size_t raw_len, bool trusted,
                        mesh_time_ms now, mesh_swim_outbox *out)
{
  bool confirm = false;
  if (!in_view(m->state) || a->incarnation < m->inc) {
    s->c.updates_ignored++;
    return;
  }
  if (a->dead && m->state == MESH_SWIM_SUSPECT && m->susp != NULL && m->susp->from_dead &&
      id_eq(&m->susp->dead_by, &a->accuser)) {
    s->c.updates_ignored++;
    return;
  }
  if (!a->dead && m->state == MESH_SWIM_SUSPECT) {
    if (m->susp == NULL || !swim_suspicion_wants(m->susp, &a->accuser)) {
      s->c.updates_ignored++;
      return;
    }
    confirm = true;
  }
  bool defer = false;
  if (!trusted) {
    accuser_standing st = standing_of(s, &a->accuser);
    if (st != ACCUSER_MEMBER) {
      drop(s, st == ACCUSER_DEPARTED ? MESH_SWIM_DROP_DEPARTED : MESH_SWIM_DROP_NOT_MEMBER);
      return;
    }
    /* A member first learned in this very push-pull, with its sender's
     * dead claim: the sender's tombstone, taken as it is (we never held
     * it alive ourselves). */
    bool tombstone = in->full && m->intake == in->no;
    defer = a->dead && m->state == MESH_SWIM_ALIVE && !tombstone;
    if (swim_verify(s->cache, &a->accuser, MESH_DOMAIN_ACCUSE, SWIM_TYPE_ACCUSE, u->body,
                    u->body_len, u->sig, &s->c) != 0) {
      bad_signature(s, in, now, out);
      return;
    }
  }
  if (defer) {
    defer_dead(s, m, a, now, out);
    return;
  }
  s->c.updates_applied++;
  if (confirm) {
    swim_suspicion_confirm(m->susp, &a->accuser);
    s->c.suspicion_confirmations++;
    rebroadcast(s, &m->id, raw, raw_len);
    return;
  }
  if (set_bytes(&m->acc, &m->acc_len, raw, raw_len) != 0) {
    out->alloc_failed = -ENOMEM;
    return;
  }
  m->inc = a->incarnation;
  if (a->dead) {
    transition(s, m, MESH_SWIM_DEAD, MESH_VIEW_DEAD, m->epoch, now, out);
  } else {
    transition(s, m, MESH_SWIM_SUSPECT, MESH_VIEW_SUSPECT, m->epoch, now, out);
    if (start_suspicion(s, m, &a->accuser, now) != 0)
      out->alloc_failed = -ENOMEM;
    if (!trusted)
      probe_soon(s, m, now);
  }
  rebroadcast(s, &m->id, raw, raw_len);
}

/*
 * Someone else suspects m: our next probe goes to m, and comes now when no
 * probe is running. Lifeguard shortens a suspicion with each independent
 * confirmation, and in round-robin order our turn to probe m may be n
 * intervals away: asked at once, a crashed member is confirmed within a
 * probe interval, and a live one answers the buddy ping (which carries the
 * accusation) and refutes. One probe at a time as always: this moves one
 * probe earlier, it adds none while no suspicion is news.
 */
static void probe_soon(mesh_swim *s, const swim_member *m, mesh_time_ms now)
{
  if (s->leaving || s->epoch_dead || !s->started)
    return;
  s->urgent = true;
  s->urgent_id = m->id;
  /* At most one probe out of turn per probe timeout, whatever asks. */
  mesh_time_ms at = s->probe.started + s->cfg.probe_timeout_ms;
  if (at < now)
    at = now;
  if (!s->probe.active && s->next_probe > at)
    s->next_probe = at;
}

/* Raises our own claim about m (probe failed, or suspicion expired). */
static void accuse(mesh_swim *s, swim_member *m, bool dead, mesh_time_ms now, mesh_swim_outbox *out)
{
  uint8_t *upd;
  size_t len;
  if (make_accusation(s, m, dead, &upd, &len) != 0) {
    out->alloc_failed = -ENOMEM;
    return;
  }
  swim_update u = {.subject = m->id, .accuse = true};
  swim_accuse_body a = {.target = m->id,
                        .accuser = s->self->id,
                        .epoch = m->epoch,
                        .incarnation = m->inc,
                        .dead = dead};
  apply_claim(s, NULL, m, &a, &u, upd, len, true, now, out);
  free(upd);
}

/* A record about ourselves. */
static void apply_self(mesh_swim *s, swim_intake *in, const swim_update *u, mesh_time_ms now,
                       mesh_swim_outbox *out)
{
  if (!u->accuse) {
    /* Only we sign our records: anything newer than ours is not ours. */
    swim_member_body b;
    if (swim_member_body_decode(u->body, u->body_len, &b) != 0) {
      drop(s, MESH_SWIM_DROP_MALFORMED);
      return;
    }
    if (b.epoch > s->epoch || (b.epoch == s->epoch && b.incarnation > s->inc))
      drop(s, MESH_SWIM_DROP_SELF);
    else
      s->c.updates_ignored++;
    swim_member_body_release(&b);
    return;
  }
  swim_accuse_body a;
  if (swim_accuse_body_decode(u->body, u->body_len, &a) != 0) {
    drop(s, MESH_SWIM_DROP_MALFORMED);
    return;
  }
  if (!id_eq(&a.target, &s->self->id)) {
    drop(s, MESH_SWIM_DROP_WRONG_SUBJECT);
    return;
  }
  /* A dead claim ends our epoch whatever incarnation it names: holders of
   * its tombstone refuse every record of this epoch. A suspicion older than
   * our incarnation is already refuted. */
  if (a.epoch != s->epoch || s->leaving || s->epoch_dead) {
    s->c.updates_ignored++;
    return;
  }
  /* Only a member may accuse us. One we hold dead or left, or reaped, still
   * may: after a partition each side holds the other dead, and this claim
   * is how we learn that we must come back under a new epoch. A key that
   * never was a member of our view may not: neither a suspicion (which
   * would cost us a refutation and health) nor a dead claim (our epoch). */
  if (standing_of(s, &a.accuser) == ACCUSER_UNKNOWN) {
    drop(s, MESH_SWIM_DROP_NOT_MEMBER);
    return;
  }
  if (!a.dead && a.incarnation < s->inc) {
    /* Already refuted, but whoever still spreads this missed our refutation:
     * send our current record again (it rides on our next messages, the ack
     * to a buddy ping first). */
    s->c.updates_ignored++;
    swim_bq_push(&s->bq, &s->self->id, s->self_upd, s->self_upd_len);
    return;
  }
  if (swim_verify(s->cache, &a.accuser, MESH_DOMAIN_ACCUSE, SWIM_TYPE_ACCUSE, u->body, u->body_len,
                  u->sig, &s->c) != 0) {
    bad_signature(s, in, now, out);
    return;
  }
  if (a.dead) {
    /* Tombstones refuse this epoch from now on: only a new epoch brings us
     * back. */
    s->epoch_dead = true;
    out->epoch_over = true;
    out->epoch_over_by = a.accuser;
    out->epoch_over_epoch = s->epoch;
    return;
  }
  /* Refute: a higher incarnation, and we are probably the slow one. */
  s->inc = a.incarnation + 1;
  s->c.refutations++;
  swim_awareness_apply(&s->aw, 1);
  if (sign_self(s) != 0)
    out->alloc_failed = -ENOMEM;
  else
    s->news = true;
}

/* in: who sent the packet, whether it carried a full state, and what it
 * introduced so far. claims: this pass applies the suspect and dead claims
 * (the first pass applies member records, and counts undecodable updates). */
static void apply_update(mesh_swim *s, swim_intake *in, bool claims, const uint8_t *raw, size_t len,
                         mesh_time_ms now, mesh_swim_outbox *out)
{
  swim_update u;
  int rc = swim_update_decode(raw, len, &u);
  if (rc != 0) {
    if (!claims)
      drop(s, rc == -EMSGSIZE ? MESH_SWIM_DROP_TOO_BIG : MESH_SWIM_DROP_MALFORMED);
    return;
  }
  if (u.accuse != claims)
    goto done;
  if (id_eq(&u.subject, &s->self->id)) {
    apply_self(s, in, &u, now, out);
    goto done;
  }
  swim_member *m = find(s, &u.subject);
  /* Identical bytes to what we hold change nothing. */
  if (m != NULL && !u.accuse && m->rec_len == len && memcmp(m->rec, raw, len) == 0) {
    s->c.updates_ignored++;
    goto done;
  }
  if (m != NULL && u.accuse && m->acc != NULL && m->acc_len == len &&
      memcmp(m->acc, raw, len) == 0) {
    s->c.updates_ignored++;
    goto done;
  }
  if (!u.accuse) {
    apply_member(s, in, &u, raw, len, now, out);
    goto done;
  }
  swim_accuse_body a;
  if (swim_accuse_body_decode(u.body, u.body_len, &a) != 0) {
    drop(s, MESH_SWIM_DROP_MALFORMED);
    goto done;
  }
  if (!id_eq(&a.target, &u.subject)) {
    drop(s, MESH_SWIM_DROP_WRONG_SUBJECT);
    goto done;
  }
  if (m == NULL) {
    drop(s, reaped_refuses(s, &a.target, a.epoch) ? MESH_SWIM_DROP_ZOMBIE : MESH_SWIM_DROP_UNKNOWN);
    goto done;
  }
  if (a.epoch < m->epoch) {
    drop(s, MESH_SWIM_DROP_STALE_EPOCH);
    goto done;
  }
  if (a.epoch > m->epoch) {
    /* About an epoch we have no record of yet: its alive record will come. */
    s->c.updates_ignored++;
    goto done;
  }
  apply_claim(s, in, m, &a, &u, raw, len, false, now, out);
done:
  swim_update_release(&u);
}

/* ---- probing ---- */

static void shuffle(mesh_swim *s)
{
  for (size_t i = s->n; i > 1; i--) {
    size_t j = (size_t)mesh_rng_below(s->rng, i);
    swim_member *t = s->m[i - 1];
    s->m[i - 1] = s->m[j];
    s->m[j] = t;
    s->m[i - 1]->slot = (int32_t)(i - 1);
    s->m[j]->slot = (int32_t)j;
  }
  swim_index_rebuild(&s->ix, s->m, s->n);
}

static void probe_start(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out)
{
  swim_member *m = NULL;
  if (s->urgent) {
    s->urgent = false;
    swim_member *u = find(s, &s->urgent_id);
    if (u != NULL && (u->state == MESH_SWIM_ALIVE ||
                      (u->state == MESH_SWIM_SUSPECT && u->susp != NULL &&
                       swim_suspicion_wants(u->susp, &s->self->id))))
      m = u;
  }
  for (size_t tries = 0; tries <= s->n && m == NULL; tries++) {
    if (s->probe_idx >= s->n) {
      shuffle(s);
      s->probe_idx = 0;
      if (s->n == 0)
        break;
    }
    swim_member *c = s->m[s->probe_idx++];
    if (in_view(c->state))
      m = c;
  }
  if (m == NULL)
    return;
  s->probe.active = true;
  s->probe.started = now;
  s->probe.target = m->id;
  s->probe.epoch = m->epoch;
  s->probe.seq = ++s->seq;
  s->probe.timeout_at = now + s->cfg.probe_timeout_ms;
  s->probe.end_at = now + swim_awareness_scale(&s->aw, s->cfg.probe_interval_ms);
  s->probe.indirect = false;
  s->probe.expected_nacks = s->probe.nacks = 0;
  /* Buddy system: a suspect hears of the accusation with our ping. */
  send_ping(s, m, MESH_SWIM_DATAGRAM, s->probe.seq, out);
  s->c.probes_sent++;
}

/*
 * One ping each for the newcomers that wait, at most NEWCOMERS_PER_PROBE per
 * probe interval, in the order they came. One only: a newcomer that does not
 * answer within a probe interval waits for its turn in the round, and failing
 * to answer here costs it nothing else (no suspicion).
 */
static void newcomers_ping(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out)
{
  uint32_t sent = 0;
  size_t keep = 0;
  for (size_t i = 0; i < s->n_newcomers; i++) {
    swim_newcomer nc = s->newcomers[i];
    swim_member *m = find(s, &nc.id);
    if (m == NULL || !in_view(m->state) || m->epoch != nc.epoch || m->answered)
      continue;
    if (nc.sent && now - nc.sent_at >= s->cfg.probe_interval_ms)
      continue;
    if (!nc.sent && sent < NEWCOMERS_PER_PROBE) {
      nc.sent = true;
      nc.seq = ++s->seq;
      nc.sent_at = now;
      send_ping(s, m, MESH_SWIM_DATAGRAM, nc.seq, out);
      s->c.newcomer_pings++;
      sent++;
    }
    s->newcomers[keep++] = nc;
  }
  s->n_newcomers = keep;
}

static void probe_indirect(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out)
{
  s->probe.indirect = true;
  swim_member *t = find(s, &s->probe.target);
  swim_member *helpers[MAX_HELPERS];
  size_t k = s->cfg.indirect_checks > MAX_HELPERS ? MAX_HELPERS : s->cfg.indirect_checks;
  size_t n = pick_random(s, k, ok_alive, &s->probe.target, now, helpers);
  for (size_t i = 0; i < n; i++) {
    swim_packet_out p = {.kind = MESH_SWIM_MSG_PING_REQ,
                         .seq = s->probe.seq,
                         .target = &s->probe.target,
                         .target_addrs = t != NULL ? t->addrs : NULL,
                         .n_target_addrs = t != NULL ? t->n_addrs : 0,
                         .nack = true};
    send_packet(s, &helpers[i]->id, MESH_SWIM_DATAGRAM, &p, NULL, 0, out);
    s->c.indirect_probes_sent++;
  }
  s->probe.expected_nacks = (uint32_t)n;
  /* And the same ping over the stream class, as memberlist's TCP ping: its
   * retransmissions get through datagram loss that defeats the direct and
   * indirect pings. Without it, every member's probes turn independent loss
   * into a steady stream of suspicions of live members, each of which costs
   * a cluster-wide broadcast, and a large mesh under heavy loss spends its
   * whole gossip budget on them until refutations stop getting through. */
  if (t != NULL && in_view(t->state) && t->epoch == s->probe.epoch) {
    send_ping(s, t, MESH_SWIM_STREAM, s->probe.seq, out);
    s->c.stream_probes_sent++;
  }
}

static void probe_failed(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out)
{
  s->probe.active = false;
  s->c.probes_failed++;
  /* Missing NACKs mean our own network is the likely problem. */
  if (s->probe.expected_nacks > 0) {
    if (s->probe.nacks < s->probe.expected_nacks)
      swim_awareness_apply(&s->aw, (int)(s->probe.expected_nacks - s->probe.nacks));
  } else {
    swim_awareness_apply(&s->aw, 1);
  }
  swim_member *m = find(s, &s->probe.target);
  if (m == NULL || m->epoch != s->probe.epoch)
    return;
  if (m->state == MESH_SWIM_ALIVE) {
    s->c.suspicions_raised++;
    accuse(s, m, false, now, out);
  } else if (m->state == MESH_SWIM_SUSPECT && m->susp != NULL &&
             swim_suspicion_wants(m->susp, &s->self->id)) {
    accuse(s, m, false, now, out);
  }
}

/* ---- last chance ---- */

static mesh_time_ms min_t(mesh_time_ms a, mesh_time_ms b)
{
  return a < b ? a : b;
}

/*
 * When the (next) last-chance ping is due, NEVER if none is. The first goes
 * out a probe timeout before the earliest the deadline can come (start +
 * min, where independent confirmations take it), so that a suspicion cut
 * short by them does not wait for the ping: a crashed member is declared
 * dead no later than without it. When the deadline then lies more than a
 * probe interval beyond that ping's answer, the answer is stale: another
 * goes out a probe timeout before the deadline.
 */
static mesh_time_ms last_chance_at(const mesh_swim *s, const swim_suspicion *sp)
{
  /* The wait for its answer, so that it ends with the deadline. */
  mesh_time_ms lead = swim_awareness_scale(&s->aw, s->cfg.probe_timeout_ms);
  mesh_time_ms last = sp->deadline > lead ? sp->deadline - lead : 0;
  if (!sp->lc_sent) {
    mesh_time_ms first = sp->start + sp->min > lead ? sp->start + sp->min - lead : 0;
    return min_t(first, last);
  }
  return last > sp->lc_end + s->cfg.probe_interval_ms ? last : NEVER;
}

/*
 * Before our dead claim ends m's epoch, ping m once more on both classes
 * with the accusation attached. The accusers that make dead claims about a
 * live member are those that missed its refutation: gossip under loss does
 * not reach everyone within the suspicion timeout. Asking the suspect itself
 * brings the refutation back in its ACK (it re-sends its current record when
 * it hears an accusation it already refuted).
 */
static void last_chance(mesh_swim *s, swim_member *m, mesh_time_ms now, mesh_swim_outbox *out)
{
  swim_suspicion *sp = m->susp;
  sp->lc_sent = true;
  sp->lc_seq = ++s->seq;
  sp->lc_end = now + swim_awareness_scale(&s->aw, s->cfg.probe_timeout_ms);
  send_ping(s, m, MESH_SWIM_DATAGRAM, sp->lc_seq, out);
  send_ping(s, m, MESH_SWIM_STREAM, sp->lc_seq, out);
  s->c.last_chance_probes++;
}

/* ---- timers ---- */

static mesh_time_ms next_deadline(const mesh_swim *s)
{
  if (!s->started)
    return NEVER;
  mesh_time_ms d = min_t(s->next_gossip, min_t(s->next_push_pull, s->next_reap));
  if (!s->joined && s->n_seeds > 0)
    d = min_t(d, s->next_join);
  if (s->probe.active) {
    if (!s->probe.indirect)
      d = min_t(d, s->probe.timeout_at);
    d = min_t(d, s->probe.end_at);
  } else {
    d = min_t(d, s->next_probe);
  }
  for (size_t i = 0; i < s->n_relays; i++)
    d = min_t(d, s->relays[i].deadline);
  for (size_t i = 0; i < s->n_susp; i++) {
    const swim_suspicion *sp = s->susp[i]->susp;
    d = min_t(d, last_chance_at(s, sp));
    if (sp->lc_sent)
      d = min_t(d, sp->deadline > sp->lc_end ? sp->deadline : sp->lc_end);
  }
  return d;
}

static void arm(mesh_swim *s, mesh_swim_outbox *out)
{
  mesh_time_ms d = next_deadline(s);
  if (d == s->armed_at || d == NEVER)
    return;
  s->armed_at = d;
  s->timer_gen++;
  out->timer_set = true;
  out->timer_token = s->timer_gen;
  out->timer_at = d;
}

/*
 * News (an update that changed our view, or our own refutation) goes out
 * in a gossip round now rather than at the next tick of the gossip
 * interval: each hop of an epidemic otherwise waits half an interval on
 * average, and a join or a new epoch crossing three hops took most of a
 * second where a round trip takes a millisecond. Early rounds come at most
 * four per gossip interval, so a burst of news costs no more than that;
 * the regular rounds go on from the early one.
 */
static void news_due(mesh_swim *s, mesh_time_ms now)
{
  if (!s->news || !s->started)
    return;
  s->news = false;
  mesh_time_ms early = s->last_gossip + s->cfg.gossip_interval_ms / 4;
  if (early < now)
    early = now;
  if (early < s->next_gossip)
    s->next_gossip = early;
}

static void dial_seeds(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out)
{
  for (size_t i = 0; i < s->n_seeds; i++) {
    swim_outbox_dial(out, s->seeds[i]);
    s->c.join_dials++;
  }
  s->next_join = now + s->cfg.join_retry_ms;
}

static void gossip(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out)
{
  s->last_gossip = now;
  if (s->bq.n == 0)
    return;
  swim_member *t[MAX_HELPERS];
  size_t k = s->cfg.gossip_nodes > MAX_HELPERS ? MAX_HELPERS : s->cfg.gossip_nodes;
  size_t n = pick_random(s, k, ok_gossip, NULL, now, t);
  for (size_t i = 0; i < n && s->bq.n > 0; i++) {
    swim_packet_out p = {.kind = MESH_SWIM_MSG_GOSSIP};
    send_packet(s, &t[i]->id, MESH_SWIM_DATAGRAM, &p, NULL, 0, out);
  }
}

static void reap(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out)
{
  for (size_t i = 0; i < s->n;) {
    swim_member *m = s->m[i];
    if (!in_view(m->state) && now - m->since >= s->cfg.tombstone_ttl_ms) {
      mesh_view_event e = {.type = MESH_VIEW_REAPED,
                           .peer = m->id,
                           .epoch = m->epoch,
                           .old_epoch = m->epoch,
                           .at = now,
                           .seq = ++s->view_seq};
      swim_outbox_event(out, &e);
      size_t cap = s->cfg.reaped_history;
      s->hist[s->hist_head] = (swim_reaped){.id = m->id, .epoch = m->epoch};
      s->hist_head = (s->hist_head + 1) % cap;
      if (s->hist_n < cap)
        s->hist_n++;
      remove_member(s, m);
      continue; /* slot i now holds another member */
    }
    i++;
  }
}

static void run_due(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out)
{
  if (!s->started)
    return;
  if (!s->joined && s->n_seeds > 0 && now >= s->next_join)
    dial_seeds(s, now, out);
  /* Relayed pings that got no answer: tell the requester. */
  for (size_t i = 0; i < s->n_relays;) {
    swim_relay *r = &s->relays[i];
    if (now >= r->deadline) {
      if (r->nack) {
        send_simple(s, &r->requester, MESH_SWIM_DATAGRAM, MESH_SWIM_MSG_NACK, r->req_seq, out);
        s->c.nacks_sent++;
      }
      s->relays[i] = s->relays[--s->n_relays];
      continue;
    }
    i++;
  }
  if (s->probe.active && !s->probe.indirect && now >= s->probe.timeout_at)
    probe_indirect(s, now, out);
  if (s->probe.active && now >= s->probe.end_at)
    probe_failed(s, now, out);
  if (!s->probe.active && now >= s->next_probe) {
    s->next_probe = now + s->cfg.probe_interval_ms;
    if (!s->leaving && !s->epoch_dead) {
      probe_start(s, now, out);
      newcomers_ping(s, now, out);
    }
  }
  for (size_t i = 0; i < s->n_susp;) {
    swim_member *m = s->susp[i];
    if (now >= last_chance_at(s, m->susp))
      last_chance(s, m, now, out);
    if (m->susp->lc_sent && now >= m->susp->deadline && now >= m->susp->lc_end) {
      s->c.deaths_declared++;
      accuse(s, m, true, now, out); /* removes m from the suspect list */
      if (i < s->n_susp && s->susp[i] == m) {
        /* Could not sign: drop the suspicion rather than loop. */
        susp_remove(s, m);
      }
      continue;
    }
    i++;
  }
  if (now >= s->next_gossip) {
    s->next_gossip = now + s->cfg.gossip_interval_ms;
    gossip(s, now, out);
  }
  if (now >= s->next_push_pull) {
    mesh_time_ms period = swim_push_pull_scale(s->cfg.push_pull_interval_ms, s->n_view + 1);
    if (s->early_push_pull < period) {
      period = s->early_push_pull;
      s->early_push_pull *= 2;
    }
    s->next_push_pull = now + period;
    swim_member *t;
    if (!s->leaving && pick_random(s, 1, ok_view, NULL, now, &t) == 1)
      send_push_pull(s, &t->id, NULL, false, false, NULL, out);
    /* Reconnect: also sync with one member we hold dead, so that the two
     * sides of a healed partition find each other again (as Serf's
     * reconnect does); a member that is really gone costs one failed send. */
    if (!s->leaving && pick_random(s, 1, ok_dead, NULL, now, &t) == 1)
      send_push_pull(s, &t->id, NULL, false, false, NULL, out);
  }
  if (now >= s->next_reap) {
    s->next_reap = now + REAP_PERIOD_MS;
    reap(s, now, out);
  }
}

/* ---- public entry points ---- */

int mesh_swim_join(mesh_swim *s, const char *const *seeds, size_t n, mesh_time_ms now,
                   mesh_swim_outbox *out)
{
  char **copy = calloc(n + 1, sizeof *copy);
  if (copy == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    copy[i] = strdup(seeds[i]);
    if (copy[i] == NULL) {
      for (size_t j = 0; j < i; j++)
        free(copy[j]);
      free(copy);
      return -ENOMEM;
    }
  }
  for (size_t i = 0; i < s->n_seeds; i++)
    free(s->seeds[i]);
  free(s->seeds);
  s->seeds = copy;
  s->n_seeds = n;
  if (!s->started) {
    s->started = true;
    /* Spread the first rounds so that nodes started together do not beat in
     * step. */
    s->next_probe = now + mesh_rng_below(s->rng, s->cfg.probe_interval_ms);
    s->next_gossip = now + mesh_rng_below(s->rng, s->cfg.gossip_interval_ms);
    /* The first anti-entropy rounds come early (after 2-6 probe intervals,
     * then a period doubling from 4 intervals up to the configured one): a
     * view is most likely incomplete while members are joining at the same
     * time, and gossip alone may run out of retransmits before news about
     * one joiner reaches another. */
    s->next_push_pull = now + 2 * (mesh_time_ms)s->cfg.probe_interval_ms +
                        mesh_rng_below(s->rng, 4 * (mesh_time_ms)s->cfg.probe_interval_ms);
    s->early_push_pull = 4 * (mesh_time_ms)s->cfg.probe_interval_ms;
    s->next_reap = now + REAP_PERIOD_MS;
  }
  s->joined = n == 0;
  if (n > 0)
    dial_seeds(s, now, out);
  arm(s, out);
  return 0;
}

int mesh_swim_peer_connected(mesh_swim *s, const mesh_peer_id *peer, const char *addr,
                             uint64_t epoch, mesh_time_ms now, mesh_swim_outbox *out)
{
  if (id_eq(peer, &s->self->id))
    return 0;
  if (s->started && !s->joined) {
    send_push_pull(s, peer, addr, true, false, NULL, out);
  } else if (s->started && !s->leaving) {
    /* Reconnect at once: a connection to a member held dead, or one back
     * under a newer epoch, is a healed partition or a restart; syncing now
     * beats waiting for the periodic reconnect push-pull. */
    const swim_member *m = find(s, peer);
    if (m != NULL && (m->state == MESH_SWIM_DEAD || epoch > m->epoch))
      send_push_pull(s, peer, addr, false, false, NULL, out);
  }
  arm(s, out);
  return 0;
}

int mesh_swim_peer_lost(mesh_swim *s, const mesh_peer_id *peer, mesh_time_ms now,
                        mesh_swim_outbox *out)
{
  const swim_member *m = find(s, peer);
  if (m != NULL && in_view(m->state)) {
    probe_soon(s, m, now);
    arm(s, out);
  }
  return 0;
}

int mesh_swim_sync_with(mesh_swim *s, const mesh_peer_id *peer, mesh_time_ms now,
                        mesh_swim_outbox *out)
{
  (void)now;
  if (id_eq(peer, &s->self->id) || !s->started || !s->joined || s->leaving)
    return 0;
  if (find(s, peer) != NULL)
    return 0;
  send_push_pull(s, peer, NULL, false, false, NULL, out);
  arm(s, out);
  return 0;
}

static void handle_ping_req(mesh_swim *s, const mesh_peer_id *from, const swim_packet *p,
                            mesh_time_ms now, mesh_swim_outbox *out)
{
  if (!p->has_target || id_eq(&p->target, &s->self->id))
    return;
  if (s->n_relays == MAX_RELAYS) {
    /* Full: forget the oldest-deadline relay rather than grow. */
    size_t o = 0;
    for (size_t i = 1; i < s->n_relays; i++)
      if (s->relays[i].deadline < s->relays[o].deadline)
        o = i;
    s->relays[o] = s->relays[--s->n_relays];
  }
  uint32_t seq = ++s->seq;
  s->relays[s->n_relays++] = (swim_relay){.seq = seq,
                                          .requester = *from,
                                          .req_seq = p->seq,
                                          .deadline = now + s->cfg.probe_timeout_ms,
                                          .nack = p->nack};
  swim_packet_out q = {.kind = MESH_SWIM_MSG_PING, .seq = seq};
  const swim_member *t = find(s, &p->target);
  if (t == NULL && p->n_target_addrs > 0) {
    /* Unknown to us: use the addresses the requester gave. */
    size_t bytes = 0;
    for (size_t i = 0; i < p->n_target_addrs; i++)
      bytes += strlen(p->target_addrs[i]) + 1;
    q.n_updates = 0;
    uint8_t *buf;
    size_t len;
    if (swim_packet_encode(&q, bytes, &buf, &len) != 0)
      return;
    size_t off = len;
    for (size_t i = 0; i < p->n_target_addrs; i++) {
      size_t l = strlen(p->target_addrs[i]) + 1;
      memcpy(buf + off, p->target_addrs[i], l);
      off += l;
    }
    s->c.msgs_sent[q.kind]++;
    s->c.bytes_sent[q.kind] += len;
    /* The addresses are already in place after the packet: pass none to copy. */
    swim_outbox_send(out, &p->target, MESH_SWIM_DATAGRAM, q.kind, buf, len, NULL, 0,
                     p->n_target_addrs);
  } else {
    send_packet(s, &p->target, MESH_SWIM_DATAGRAM, &q, NULL, 0, out);
  }
  s->c.indirect_pings_relayed++;
}

static void handle_ack(mesh_swim *s, const mesh_peer_id *from, uint32_t seq, mesh_time_ms now,
                       mesh_swim_outbox *out)
{
  if (s->probe.active && seq == s->probe.seq) {
    s->probe.active = false;
    s->c.acks_received++;
    swim_awareness_apply(&s->aw, -1);
    /* Only the target's own answer counts as answered, not one relayed
     * through a helper of an indirect probe. */
    swim_member *t = id_eq(from, &s->probe.target) ? find(s, from) : NULL;
    if (t != NULL && t->epoch == s->probe.epoch)
      mark_answered(s, t, now, out);
    return;
  }
  for (size_t i = 0; i < s->n_newcomers; i++) {
    swim_newcomer *nc = &s->newcomers[i];
    if (!nc->sent || nc->seq != seq || !id_eq(&nc->id, from))
      continue;
    swim_member *m = find(s, from);
    if (m != NULL && m->epoch == nc->epoch)
      mark_answered(s, m, now, out);
    memmove(nc, nc + 1, (s->n_newcomers - i - 1) * sizeof *nc);
    s->n_newcomers--;
    return;
  }
  for (size_t i = 0; i < s->n_relays; i++) {
    if (s->relays[i].seq == seq) {
      send_simple(s, &s->relays[i].requester, MESH_SWIM_DATAGRAM, MESH_SWIM_MSG_ACK,
                  s->relays[i].req_seq, out);
      s->relays[i] = s->relays[--s->n_relays];
      return;
    }
  }
  /* The suspect answered our last-chance ping, yet no refutation came with
   * it (an ACK that overtook it, or one cut to fit): it is up in this
   * epoch, so no dead claim now; the suspicion runs again from here. */
  swim_member *m = find(s, from);
  if (m != NULL && m->state == MESH_SWIM_SUSPECT && m->susp != NULL && m->susp->lc_sent &&
      m->susp->lc_seq == seq) {
    s->c.last_chance_saves++;
    swim_suspicion_restart(m->susp, now);
  }
}

int mesh_swim_handle_packet(mesh_swim *s, const mesh_peer_id *from, mesh_swim_class cls,
                            const uint8_t *buf, size_t len, mesh_time_ms now, mesh_swim_outbox *out)
{
  size_t max = cls == MESH_SWIM_STREAM ? MESH_SWIM_MAX_STREAM : MESH_SWIM_MAX_DATAGRAM;
  bool peeked_push_pull = false; /* its token was taken before the decode */
  if (len > max) {
    drop(s, MESH_SWIM_DROP_TOO_BIG);
    return -EMSGSIZE;
  }
  /* A full state over its sender's rate is refused before it is decoded:
   * the decode alone is a pass over up to MESH_SWIM_MAX_STREAM bytes. */
  if (cls == MESH_SWIM_STREAM && swim_packet_is_push_pull(buf, len)) {
    swim_peer *pp = swim_peers_get(&s->peers, from, s->cfg.push_pull_burst, now);
    bool pcut = swim_peer_is_cut(pp, s->cfg.bad_sig_window_ms, now);
    if (pcut ||
        !swim_peer_take_push_pull(pp, s->cfg.push_pull_burst, s->cfg.push_pull_refill_ms, now)) {
      drop(s, pcut ? MESH_SWIM_DROP_SIG_BUDGET : MESH_SWIM_DROP_PUSH_PULL_RATE);
      arm(s, out);
      return -EAGAIN;
    }
    peeked_push_pull = true;
  }
  swim_packet p;
  int rc = swim_packet_decode(buf, len, &p);
  if (rc != 0) {
    drop(s, rc == -EMSGSIZE ? MESH_SWIM_DROP_TOO_BIG : MESH_SWIM_DROP_MALFORMED);
    return rc == -ENOMEM ? rc : -EBADMSG;
  }
  /* Full state travels on streams only; pings and acks on either class
   * (fallback and last-chance probes use the stream); the rest on datagrams. */
  bool class_ok = p.kind == MESH_SWIM_MSG_PUSH_PULL
                      ? cls == MESH_SWIM_STREAM
                      : cls == MESH_SWIM_DATAGRAM || p.kind == MESH_SWIM_MSG_PING ||
                            p.kind == MESH_SWIM_MSG_ACK;
  if (!class_ok) {
    swim_packet_release(&p);
    drop(s, MESH_SWIM_DROP_MALFORMED);
    return -EBADMSG;
  }
  s->c.msgs_received[p.kind]++;
  s->c.bytes_received[p.kind] += len;
  swim_peer *peer = swim_peers_get(&s->peers, from, s->cfg.push_pull_burst, now);
  bool cut = swim_peer_is_cut(peer, s->cfg.bad_sig_window_ms, now);
  if (p.kind == MESH_SWIM_MSG_PUSH_PULL && !peeked_push_pull &&
      (cut ||
       !swim_peer_take_push_pull(peer, s->cfg.push_pull_burst, s->cfg.push_pull_refill_ms, now))) {
    /* A full state costs a pass over every record and an answer of ours
     * just as large: refused whole, before any of it is looked at. */
    drop(s, cut ? MESH_SWIM_DROP_SIG_BUDGET : MESH_SWIM_DROP_PUSH_PULL_RATE);
    swim_packet_release(&p);
    arm(s, out);
    return -EAGAIN;
  }
  swim_intake in = {
      .from = from, .peer = peer, .no = ++s->intake_no, .full = p.kind == MESH_SWIM_MSG_PUSH_PULL};
  /* Member records first, then claims (whose accusers must be members). A
   * sender that spends its bad-signature budget midway gets no more
   * verification: the rest of its records are refused, counted once. */
  for (int pass = 0; pass < 2 && !cut; pass++) {
    for (size_t i = 0; i < p.n_updates; i++) {
      if (peer->cut) {
        cut = true;
        break;
      }
      apply_update(s, &in, pass == 1, p.updates[i], p.update_lens[i], now, out);
    }
  }
  if (cut && p.n_updates > 0)
    drop(s, MESH_SWIM_DROP_SIG_BUDGET);
  switch (p.kind) {
  case MESH_SWIM_MSG_PING:
    if (p.has_target && !id_eq(&p.target, &s->self->id)) {
      drop(s, MESH_SWIM_DROP_NOT_FOR_US);
      break;
    }
    send_simple(s, from, cls, MESH_SWIM_MSG_ACK, p.seq, out);
    break;
  case MESH_SWIM_MSG_ACK:
    handle_ack(s, from, p.seq, now, out);
    break;
  case MESH_SWIM_MSG_NACK:
    if (s->probe.active && p.seq == s->probe.seq && s->probe.nacks < s->probe.expected_nacks) {
      s->probe.nacks++;
      s->c.nacks_received++;
    }
    break;
  case MESH_SWIM_MSG_PING_REQ:
    handle_ping_req(s, from, &p, now, out);
    break;
  case MESH_SWIM_MSG_GOSSIP:
    break;
  case MESH_SWIM_MSG_PUSH_PULL:
    if (p.app_len > 0 && !id_eq(from, &s->self->id))
      swim_outbox_app(out, from, p.epoch, p.app, p.app_len);
    if (!p.reply) {
      swim_seen seen;
      bool have = seen_init(&seen, &p);
      send_push_pull(s, from, NULL, false, true, have ? &seen : NULL, out);
      seen_free(&seen);
    }
    s->joined = true;
    break;
  }
  swim_packet_release(&p);
  news_due(s, now);
  arm(s, out);
  return 0;
}

int mesh_swim_handle_timer(mesh_swim *s, uint64_t token, mesh_time_ms now, mesh_swim_outbox *out)
{
  if (token != s->timer_gen) {
    s->c.timers_stale++;
    return 0;
  }
  s->armed_at = NEVER; /* consumed: always ask again */
  run_due(s, now, out);
  news_due(s, now);
  arm(s, out);
  return 0;
}

int mesh_swim_leave(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out)
{
  if (s->leaving)
    return 0;
  s->leaving = true;
  s->inc++;
  int rc = sign_self(s);
  if (rc != 0)
    return rc;
  s->probe.active = false;
  gossip(s, now, out);
  arm(s, out);
  return 0;
}

int mesh_swim_set_epoch(mesh_swim *s, uint64_t epoch, mesh_time_ms now, mesh_swim_outbox *out)
{
  if (epoch <= s->epoch)
    return -ESTALE;
  if (s->epoch_dead)
    s->c.epoch_renewals++;
  s->epoch = epoch;
  s->inc = 0;
  s->epoch_dead = false;
  s->leaving = false;
  int rc = sign_self(s);
  if (rc != 0)
    return rc;
  swim_member *t;
  if (pick_random(s, 1, ok_view, NULL, now, &t) == 1)
    send_push_pull(s, &t->id, NULL, false, false, NULL, out);
  gossip(s, now, out);
  arm(s, out);
  return 0;
}

int mesh_swim_note_lateness(mesh_swim *s, mesh_time_ms late_ms, mesh_time_ms now,
                            mesh_swim_outbox *out)
{
  int delta =
      swim_awareness_lateness_delta(late_ms, s->cfg.probe_timeout_ms, s->cfg.probe_interval_ms);
  if (delta == 0)
    return 0;
  /* One raise per probe interval, as failed probes come at most that often:
   * a loop that stays slow is reported many times per interval. */
  if (s->late_noted && now - s->late_at < s->cfg.probe_interval_ms)
    return 0;
  s->late_noted = true;
  s->late_at = now;
  swim_awareness_apply(&s->aw, delta);
  s->c.lateness_reports++;
  arm(s, out);
  return 0;
}

int mesh_swim_set_app_state(mesh_swim *s, const uint8_t *buf, size_t len)
{
  if (len > MESH_SWIM_MAX_APP_STATE)
    return -EMSGSIZE;
  if (len > 0)
    memcpy(s->app, buf, len);
  s->app_len = len;
  return 0;
}

/* ---- queries ---- */

static void info(const swim_member *m, mesh_swim_member_info *o)
{
  *o = (mesh_swim_member_info){.id = m->id,
                               .epoch = m->epoch,
                               .incarnation = m->inc,
                               .state = m->state,
                               .since = m->since,
                               .addrs = m->addrs != NULL ? m->addrs : "",
                               .n_addrs = m->n_addrs,
                               .agent = m->agent != NULL ? m->agent : "",
                               .host = m->host != NULL ? m->host : "",
                               .answered = m->answered};
}

size_t mesh_swim_member_count(const mesh_swim *s)
{
  return s->n;
}

int mesh_swim_member_at(const mesh_swim *s, size_t i, mesh_swim_member_info *out)
{
  if (i >= s->n)
    return -ENOENT;
  info(s->m[i], out);
  return 0;
}

int mesh_swim_member_find(const mesh_swim *s, const mesh_peer_id *peer, mesh_swim_member_info *out)
{
  const swim_member *m = find(s, peer);
  if (m == NULL)
    return -ENOENT;
  info(m, out);
  return 0;
}

size_t mesh_swim_view_size(const mesh_swim *s)
{
  return s->n_view;
}

uint64_t mesh_swim_view_seq(const mesh_swim *s)
{
  return s->view_seq;
}

uint64_t mesh_swim_epoch(const mesh_swim *s)
{
  return s->epoch;
}

uint64_t mesh_swim_incarnation(const mesh_swim *s)
{
  return s->inc;
}

int mesh_swim_health(const mesh_swim *s)
{
  return s->aw.score;
}

bool mesh_swim_joined(const mesh_swim *s)
{
  return s->joined;
}

size_t mesh_swim_broadcasts_pending(const mesh_swim *s)
{
  return s->bq.n;
}

const mesh_swim_counters *mesh_swim_counters_get(const mesh_swim *s)
{
  return &s->c;
}

const mesh_swim_config *mesh_swim_config_get(const mesh_swim *s)
{
  return &s->cfg;
}

const char *mesh_swim_state_name(mesh_swim_state st)
{
  switch (st) {
  case MESH_SWIM_ALIVE:
    return "alive";
  case MESH_SWIM_SUSPECT:
    return "suspect";
  case MESH_SWIM_DEAD:
    return "dead";
  case MESH_SWIM_LEFT:
    return "left";
  }
  return "unknown";
}

const char *mesh_swim_drop_name(mesh_swim_drop d)
{
  static const char *const names[MESH_SWIM_DROP__COUNT] = {
      [MESH_SWIM_DROP_MALFORMED] = "malformed",
      [MESH_SWIM_DROP_TOO_BIG] = "too-big",
      [MESH_SWIM_DROP_BAD_SIGNATURE] = "bad-signature",
      [MESH_SWIM_DROP_WRONG_SUBJECT] = "wrong-subject",
      [MESH_SWIM_DROP_ZOMBIE] = "zombie",
      [MESH_SWIM_DROP_STALE_EPOCH] = "stale-epoch",
      [MESH_SWIM_DROP_UNKNOWN] = "unknown-peer",
      [MESH_SWIM_DROP_SELF] = "self",
      [MESH_SWIM_DROP_NOT_FOR_US] = "not-for-us",
      [MESH_SWIM_DROP_INTRO_LIMIT] = "intro-limit",
      [MESH_SWIM_DROP_VIEW_FULL] = "view-full",
      [MESH_SWIM_DROP_NOT_MEMBER] = "accuser-not-member",
      [MESH_SWIM_DROP_DEPARTED] = "accuser-departed",
      [MESH_SWIM_DROP_SIG_BUDGET] = "sig-budget",
      [MESH_SWIM_DROP_PUSH_PULL_RATE] = "push-pull-rate",
  };
  return (unsigned)d < MESH_SWIM_DROP__COUNT ? names[d] : "unknown";
}
