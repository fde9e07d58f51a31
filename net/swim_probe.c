/*
 * Probing: the round of direct pings, indirect checks through helpers,
 * newcomers' first pings, the last chance of a suspect, and the answers to
 * others' pings and indirect requests.
 */
#include "net/swim_core.h"

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

void swim_probe_start(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out)
{
  swim_member *m = NULL;
  if (s->urgent) {
    s->urgent = false;
    swim_member *u = swim_find(s, &s->urgent_id);
    if (u != NULL &&
        (u->state == MESH_SWIM_ALIVE || (u->state == MESH_SWIM_SUSPECT && u->susp != NULL &&
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
    if (swim_in_view(c->state))
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
  swim_send_ping(s, m, MESH_SWIM_DATAGRAM, s->probe.seq, out);
  s->c.probes_sent++;
}

/*
 * One ping each for the newcomers that wait, at most NEWCOMERS_PER_PROBE per
 * probe interval, in the order they came. One only: a newcomer that does not
 * answer within a probe interval waits for its turn in the round, and failing
 * to answer here costs it nothing else (no suspicion).
 */
void swim_newcomers_ping(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out)
{
  uint32_t sent = 0;
  size_t keep = 0;
  for (size_t i = 0; i < s->n_newcomers; i++) {
    swim_newcomer nc = s->newcomers[i];
    swim_member *m = swim_find(s, &nc.id);
    if (m == NULL || !swim_in_view(m->state) || m->epoch != nc.epoch || m->answered)
      continue;
    if (nc.sent && now - nc.sent_at >= s->cfg.probe_interval_ms)
      continue;
    if (!nc.sent && sent < NEWCOMERS_PER_PROBE) {
      nc.sent = true;
      nc.seq = ++s->seq;
      nc.sent_at = now;
      /* Bare: the queued news goes with the round's probes. Carried here
       * too, it spent its few transmissions on newcomers (which hear it by
       * their join's push-pull anyway), and the rest of the view missed it. */
      swim_packet_out p = {.kind = MESH_SWIM_MSG_PING, .seq = nc.seq, .bare = true};
      swim_send_packet(s, &m->id, MESH_SWIM_DATAGRAM, &p, NULL, 0, out);
      s->c.newcomer_pings++;
      sent++;
    }
    s->newcomers[keep++] = nc;
  }
  s->n_newcomers = keep;
}

void swim_probe_indirect(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out)
{
  s->probe.indirect = true;
  swim_member *t = swim_find(s, &s->probe.target);
  swim_member *helpers[MAX_HELPERS];
  size_t k = s->cfg.indirect_checks > MAX_HELPERS ? MAX_HELPERS : s->cfg.indirect_checks;
  size_t n = swim_pick_random(s, k, swim_ok_alive, &s->probe.target, now, helpers);
  for (size_t i = 0; i < n; i++) {
    swim_packet_out p = {.kind = MESH_SWIM_MSG_PING_REQ,
                         .seq = s->probe.seq,
                         .target = &s->probe.target,
                         .target_addrs = t != NULL ? t->addrs : NULL,
                         .n_target_addrs = t != NULL ? t->n_addrs : 0,
                         .nack = true};
    swim_send_packet(s, &helpers[i]->id, MESH_SWIM_DATAGRAM, &p, NULL, 0, out);
    s->c.indirect_probes_sent++;
  }
  s->probe.expected_nacks = (uint32_t)n;
  /* And the same ping over the stream class, as memberlist's TCP ping: its
   * retransmissions get through datagram loss that defeats the direct and
   * indirect pings. Without it, every member's probes turn independent loss
   * into a steady stream of suspicions of live members, each of which costs
   * a cluster-wide broadcast, and a large mesh under heavy loss spends its
   * whole gossip budget on them until refutations stop getting through. */
  if (t != NULL && swim_in_view(t->state) && t->epoch == s->probe.epoch) {
    swim_send_ping(s, t, MESH_SWIM_STREAM, s->probe.seq, out);
    s->c.stream_probes_sent++;
  }
}

void swim_probe_failed(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out)
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
  swim_member *m = swim_find(s, &s->probe.target);
  if (m == NULL || m->epoch != s->probe.epoch)
    return;
  if (m->state == MESH_SWIM_ALIVE) {
    s->c.suspicions_raised++;
    swim_accuse(s, m, false, now, out);
  } else if (m->state == MESH_SWIM_SUSPECT && m->susp != NULL &&
             swim_suspicion_wants(m->susp, &s->self->id)) {
    swim_accuse(s, m, false, now, out);
  }
}

/* ---- last chance ---- */

/*
 * When the (next) last-chance ping is due, NEVER if none is. The first goes
 * out a probe timeout before the earliest the deadline can come (start +
 * min, where independent confirmations take it), so that a suspicion cut
 * short by them does not wait for the ping: a crashed member is declared
 * dead no later than without it. When the deadline then lies more than a
 * probe interval beyond that ping's answer, the answer is stale: another
 * goes out a probe timeout before the deadline.
 */
mesh_time_ms swim_last_chance_at(const mesh_swim *s, const swim_suspicion *sp)
{
  /* The wait for its answer, so that it ends with the deadline. */
  mesh_time_ms lead = swim_awareness_scale(&s->aw, s->cfg.probe_timeout_ms);
  mesh_time_ms last = sp->deadline > lead ? sp->deadline - lead : 0;
  if (!sp->lc_sent) {
    mesh_time_ms first = sp->start + sp->min > lead ? sp->start + sp->min - lead : 0;
    return swim_min_t(first, last);
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
void swim_last_chance(mesh_swim *s, swim_member *m, mesh_time_ms now, mesh_swim_outbox *out)
{
  swim_suspicion *sp = m->susp;
  sp->lc_sent = true;
  sp->lc_seq = ++s->seq;
  sp->lc_end = now + swim_awareness_scale(&s->aw, s->cfg.probe_timeout_ms);
  swim_send_ping(s, m, MESH_SWIM_DATAGRAM, sp->lc_seq, out);
  swim_send_ping(s, m, MESH_SWIM_STREAM, sp->lc_seq, out);
  s->c.last_chance_probes++;
}

void swim_handle_ping_req(mesh_swim *s, const mesh_peer_id *from, const swim_packet *p,
                          mesh_time_ms now, mesh_swim_outbox *out)
{
  if (!p->has_target || swim_id_eq(&p->target, &s->self->id))
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
  const swim_member *t = swim_find(s, &p->target);
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
    swim_send_packet(s, &p->target, MESH_SWIM_DATAGRAM, &q, NULL, 0, out);
  }
  s->c.indirect_pings_relayed++;
}

void swim_handle_ack(mesh_swim *s, const mesh_peer_id *from, uint32_t seq, mesh_time_ms now,
                     mesh_swim_outbox *out)
{
  if (s->probe.active && seq == s->probe.seq) {
    s->probe.active = false;
    s->c.acks_received++;
    swim_awareness_apply(&s->aw, -1);
    /* Only the target's own answer counts as answered, not one relayed
     * through a helper of an indirect probe. */
    swim_member *t = swim_id_eq(from, &s->probe.target) ? swim_find(s, from) : NULL;
    if (t != NULL && t->epoch == s->probe.epoch)
      swim_mark_answered(s, t, now, out);
    return;
  }
  for (size_t i = 0; i < s->n_newcomers; i++) {
    swim_newcomer *nc = &s->newcomers[i];
    if (!nc->sent || nc->seq != seq || !swim_id_eq(&nc->id, from))
      continue;
    swim_member *m = swim_find(s, from);
    if (m != NULL && m->epoch == nc->epoch)
      swim_mark_answered(s, m, now, out);
    memmove(nc, nc + 1, (s->n_newcomers - i - 1) * sizeof *nc);
    s->n_newcomers--;
    return;
  }
  for (size_t i = 0; i < s->n_relays; i++) {
    if (s->relays[i].seq == seq) {
      swim_send_simple(s, &s->relays[i].requester, MESH_SWIM_DATAGRAM, MESH_SWIM_MSG_ACK,
                       s->relays[i].req_seq, out);
      s->relays[i] = s->relays[--s->n_relays];
      return;
    }
  }
  /* The suspect answered our last-chance ping, yet no refutation came with
   * it (an ACK that overtook it, or one cut to fit): it is up in this
   * epoch, so no dead claim now; the suspicion runs again from here. */
  swim_member *m = swim_find(s, from);
  if (m != NULL && m->state == MESH_SWIM_SUSPECT && m->susp != NULL && m->susp->lc_sent &&
      m->susp->lc_seq == seq) {
    s->c.last_chance_saves++;
    swim_suspicion_restart(m->susp, now);
  }
}
