/*
 * The membership protocol's lifecycle, sending, timers and entry points:
 * what happens when, and which file does it (swim_members.c: the member
 * table and its transitions; swim_records.c: records; swim_probe.c:
 * probing; swim_sync.c: push-pull; swim_query.c: what the caller reads).
 * See net/swim.h for the protocol and the caller's contract.
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
#include "net/swim_core.h"

/* ---- lifecycle ---- */

int swim_sign_self(mesh_swim *s)
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
  rc = swim_sign_self(s);
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
    swim_free_member(s->m[i]);
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

/* ---- sending ---- */

static uint32_t retransmit_limit(const mesh_swim *s)
{
  return swim_retransmit_limit(s->cfg.retransmit_mult, s->n_view + 1);
}

/*
 * Encodes p, fills the rest of a datagram with queued updates (first the
 * optional `first` update, for the buddy system), and queues it for `to`.
 */
void swim_send_packet(mesh_swim *s, const mesh_peer_id *to, mesh_swim_class cls, swim_packet_out *p,
                      const uint8_t *first, size_t first_len, mesh_swim_outbox *out)
{
  const uint8_t *ups[MAX_PIGGYBACK + 1];
  size_t lens[MAX_PIGGYBACK + 1];
  size_t idx[MAX_PIGGYBACK];
  size_t n_idx = 0;
  /* Pings and acks carry updates on either class (the stream ones are the
   * fallback and last-chance probes, whose ACK brings a refutation back). */
  if (p->kind != MESH_SWIM_MSG_PUSH_PULL && p->n_updates == 0 && !p->bare) {
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
  const swim_member *m = swim_find(s, to);
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
void swim_send_simple(mesh_swim *s, const mesh_peer_id *to, mesh_swim_class cls, int kind,
                      uint32_t seq, mesh_swim_outbox *out)
{
  swim_packet_out p = {.kind = kind, .seq = seq};
  swim_send_packet(s, to, cls, &p, NULL, 0, out);
}

/* A PING to member m on class cls, with the accusation we hold about it
 * first when it is suspect (buddy system). */
void swim_send_ping(mesh_swim *s, const swim_member *m, mesh_swim_class cls, uint32_t seq,
                    mesh_swim_outbox *out)
{
  swim_packet_out p = {.kind = MESH_SWIM_MSG_PING, .seq = seq};
  bool buddy = m->state == MESH_SWIM_SUSPECT && m->acc != NULL;
  swim_send_packet(s, &m->id, cls, &p, buddy ? m->acc : NULL, buddy ? m->acc_len : 0, out);
}

/* Picks up to k distinct random members passing ok(), other than `not`. */
size_t swim_pick_random(mesh_swim *s, size_t k,
                        bool (*ok)(const mesh_swim *, const swim_member *, mesh_time_ms),
                        const mesh_peer_id * not, mesh_time_ms now, swim_member **out)
{
  size_t got = 0;
  if (s->n == 0)
    return 0;
  for (size_t tries = 0; tries < 3 * s->n + 3 && got < k; tries++) {
    swim_member *m = s->m[mesh_rng_below(s->rng, s->n)];
    if (!ok(s, m, now) || (not != NULL && swim_id_eq(&m->id, not )))
      continue;
    bool dup = false;
    for (size_t j = 0; j < got && !dup; j++)
      dup = out[j] == m;
    if (!dup)
      out[got++] = m;
  }
  return got;
}

bool swim_ok_alive(const mesh_swim *s, const swim_member *m, mesh_time_ms now)
{
  return m->state == MESH_SWIM_ALIVE;
}

static bool ok_view(const mesh_swim *s, const swim_member *m, mesh_time_ms now)
{
  return swim_in_view(m->state);
}

static bool ok_gossip(const mesh_swim *s, const swim_member *m, mesh_time_ms now)
{
  /* Keep telling the recently dead, so a falsely accused member learns it. */
  return swim_in_view(m->state) || now - m->since < s->cfg.gossip_to_dead_ms;
}

static bool ok_dead(const mesh_swim *s, const swim_member *m, mesh_time_ms now)
{
  return m->state == MESH_SWIM_DEAD;
}

/* ---- timers ---- */

static mesh_time_ms next_deadline(const mesh_swim *s)
{
  if (!s->started)
    return NEVER;
  mesh_time_ms d = swim_min_t(s->next_gossip, swim_min_t(s->next_push_pull, s->next_reap));
  if (!s->joined && s->n_seeds > 0)
    d = swim_min_t(d, s->next_join);
  if (s->probe.active) {
    if (!s->probe.indirect)
      d = swim_min_t(d, s->probe.timeout_at);
    d = swim_min_t(d, s->probe.end_at);
  } else {
    d = swim_min_t(d, s->next_probe);
  }
  for (size_t i = 0; i < s->n_relays; i++)
    d = swim_min_t(d, s->relays[i].deadline);
  for (size_t i = 0; i < s->n_susp; i++) {
    const swim_suspicion *sp = s->susp[i]->susp;
    d = swim_min_t(d, swim_last_chance_at(s, sp));
    if (sp->lc_sent)
      d = swim_min_t(d, sp->deadline > sp->lc_end ? sp->deadline : sp->lc_end);
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
  size_t n = swim_pick_random(s, k, ok_gossip, NULL, now, t);
  for (size_t i = 0; i < n && s->bq.n > 0; i++) {
    swim_packet_out p = {.kind = MESH_SWIM_MSG_GOSSIP};
    swim_send_packet(s, &t[i]->id, MESH_SWIM_DATAGRAM, &p, NULL, 0, out);
  }
}

static void reap(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out)
{
  for (size_t i = 0; i < s->n;) {
    swim_member *m = s->m[i];
    if (!swim_in_view(m->state) && now - m->since >= s->cfg.tombstone_ttl_ms) {
      swim_view_event(s, m, MESH_VIEW_REAPED, m->epoch, now, out);
      size_t cap = s->cfg.reaped_history;
      s->hist[s->hist_head] = (swim_reaped){.id = m->id, .epoch = m->epoch};
      s->hist_head = (s->hist_head + 1) % cap;
      if (s->hist_n < cap)
        s->hist_n++;
      swim_remove_member(s, m);
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
        swim_send_simple(s, &r->requester, MESH_SWIM_DATAGRAM, MESH_SWIM_MSG_NACK, r->req_seq, out);
        s->c.nacks_sent++;
      }
      s->relays[i] = s->relays[--s->n_relays];
      continue;
    }
    i++;
  }
  if (s->probe.active && !s->probe.indirect && now >= s->probe.timeout_at)
    swim_probe_indirect(s, now, out);
  if (s->probe.active && now >= s->probe.end_at)
    swim_probe_failed(s, now, out);
  if (!s->probe.active && now >= s->next_probe) {
    s->next_probe = now + s->cfg.probe_interval_ms;
    if (!s->leaving && !s->epoch_dead) {
      swim_probe_start(s, now, out);
      swim_newcomers_ping(s, now, out);
    }
  }
  for (size_t i = 0; i < s->n_susp;) {
    swim_member *m = s->susp[i];
    if (now >= swim_last_chance_at(s, m->susp))
      swim_last_chance(s, m, now, out);
    if (m->susp->lc_sent && now >= m->susp->deadline && now >= m->susp->lc_end) {
      s->c.deaths_declared++;
      swim_accuse(s, m, true, now, out); /* removes m from the suspect list */
      if (i < s->n_susp && s->susp[i] == m) {
        /* Could not sign: drop the suspicion rather than loop. */
        swim_susp_remove(s, m);
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
    if (!s->leaving && swim_pick_random(s, 1, ok_view, NULL, now, &t) == 1)
      swim_push_pull_send(s, &t->id, NULL, SWIM_PP_DIGEST, out);
    /* Reconnect: also sync with one member we hold dead, so that the two
     * sides of a healed partition find each other again (as Serf's
     * reconnect does); a member that is really gone costs one failed send. */
    if (!s->leaving && swim_pick_random(s, 1, ok_dead, NULL, now, &t) == 1)
      swim_push_pull_send(s, &t->id, NULL, SWIM_PP_FULL, out);
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
  if (swim_id_eq(peer, &s->self->id))
    return 0;
  if (s->started && !s->joined) {
    swim_push_pull_send(s, peer, addr, SWIM_PP_JOIN, out);
  } else if (s->started && !s->leaving) {
    /* Reconnect at once: a connection to a member held dead, or one back
     * under a newer epoch, is a healed partition or a restart; syncing now
     * beats waiting for the periodic reconnect push-pull. */
    const swim_member *m = swim_find(s, peer);
    if (m != NULL && (m->state == MESH_SWIM_DEAD || epoch > m->epoch))
      swim_push_pull_send(s, peer, addr, SWIM_PP_FULL, out);
  }
  arm(s, out);
  return 0;
}

int mesh_swim_peer_lost(mesh_swim *s, const mesh_peer_id *peer, mesh_time_ms now,
                        mesh_swim_outbox *out)
{
  const swim_member *m = swim_find(s, peer);
  if (m != NULL && swim_in_view(m->state)) {
    swim_probe_soon(s, m, now);
    arm(s, out);
  }
  return 0;
}

int mesh_swim_sync_with(mesh_swim *s, const mesh_peer_id *peer, mesh_time_ms now,
                        mesh_swim_outbox *out)
{
  (void)now;
  if (swim_id_eq(peer, &s->self->id) || !s->started || !s->joined || s->leaving)
    return 0;
  if (swim_find(s, peer) != NULL)
    return 0;
  swim_push_pull_send(s, peer, NULL, SWIM_PP_FULL, out);
  arm(s, out);
  return 0;
}

int mesh_swim_handle_packet(mesh_swim *s, const mesh_peer_id *from, mesh_swim_class cls,
                            const uint8_t *buf, size_t len, mesh_time_ms now, mesh_swim_outbox *out)
{
  size_t max = cls == MESH_SWIM_STREAM ? MESH_SWIM_MAX_STREAM : MESH_SWIM_MAX_DATAGRAM;
  bool peeked_push_pull = false; /* its token was taken before the decode */
  if (len > max) {
    swim_drop(s, MESH_SWIM_DROP_TOO_BIG);
    return -EMSGSIZE;
  }
  /* A full state over its sender's rate is refused before it is decoded:
   * the decode alone is a pass over up to MESH_SWIM_MAX_STREAM bytes. */
  if (cls == MESH_SWIM_STREAM && swim_packet_is_push_pull(buf, len)) {
    swim_peer *pp = swim_peers_get(&s->peers, from, s->cfg.push_pull_burst, now);
    bool pcut = swim_peer_is_cut(pp, s->cfg.bad_sig_window_ms, now);
    if (pcut ||
        !swim_peer_take_push_pull(pp, s->cfg.push_pull_burst, s->cfg.push_pull_refill_ms, now)) {
      swim_drop(s, pcut ? MESH_SWIM_DROP_SIG_BUDGET : MESH_SWIM_DROP_PUSH_PULL_RATE);
      arm(s, out);
      return -EAGAIN;
    }
    peeked_push_pull = true;
  }
  swim_packet p;
  int rc = swim_packet_decode(buf, len, &p);
  if (rc != 0) {
    swim_drop(s, rc == -EMSGSIZE ? MESH_SWIM_DROP_TOO_BIG : MESH_SWIM_DROP_MALFORMED);
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
    swim_drop(s, MESH_SWIM_DROP_MALFORMED);
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
    swim_drop(s, cut ? MESH_SWIM_DROP_SIG_BUDGET : MESH_SWIM_DROP_PUSH_PULL_RATE);
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
      swim_apply_update(s, &in, pass == 1, p.updates[i], p.update_lens[i], now, out);
    }
  }
  if (cut && p.n_updates > 0)
    swim_drop(s, MESH_SWIM_DROP_SIG_BUDGET);
  switch (p.kind) {
  case MESH_SWIM_MSG_PING:
    if (p.has_target && !swim_id_eq(&p.target, &s->self->id)) {
      swim_drop(s, MESH_SWIM_DROP_NOT_FOR_US);
      break;
    }
    swim_send_simple(s, from, cls, MESH_SWIM_MSG_ACK, p.seq, out);
    break;
  case MESH_SWIM_MSG_ACK:
    swim_handle_ack(s, from, p.seq, now, out);
    break;
  case MESH_SWIM_MSG_NACK:
    if (s->probe.active && p.seq == s->probe.seq && s->probe.nacks < s->probe.expected_nacks) {
      s->probe.nacks++;
      s->c.nacks_received++;
    }
    break;
  case MESH_SWIM_MSG_PING_REQ:
    swim_handle_ping_req(s, from, &p, now, out);
    break;
  case MESH_SWIM_MSG_GOSSIP:
    break;
  case MESH_SWIM_MSG_PUSH_PULL:
    if (p.app_len > 0 && !swim_id_eq(from, &s->self->id))
      swim_outbox_app(out, from, p.epoch, p.app, p.app_len);
    swim_push_pull_received(s, from, &p, now, out);
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
  int rc = swim_sign_self(s);
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
  int rc = swim_sign_self(s);
  if (rc != 0)
    return rc;
  swim_member *t;
  if (swim_pick_random(s, 1, ok_view, NULL, now, &t) == 1)
    swim_push_pull_send(s, &t->id, NULL, SWIM_PP_FULL, out);
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
