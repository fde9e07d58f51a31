/*
 * Applying records: member records by (epoch, incarnation) precedence, claims
 * (suspect, dead) by members, and records about this node itself.
 */
#include "net/swim_core.h"

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
  swim_drop(s, MESH_SWIM_DROP_BAD_SIGNATURE);
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
    swim_drop(s, MESH_SWIM_DROP_VIEW_FULL);
    return false;
  }
  uint32_t used =
      in->full ? in->sync_new : *swim_peer_intro(in->peer, s->cfg.probe_interval_ms, now);
  uint32_t cap = in->full ? s->cfg.max_intro_sync : s->cfg.max_intro_rate;
  if (used >= cap) {
    swim_drop(s, MESH_SWIM_DROP_INTRO_LIMIT);
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
  bool quiet_fresh = in->full && !swim_id_eq(in->from, &u->subject);
  swim_member_body b;
  if (swim_member_body_decode(u->body, u->body_len, &b) != 0) {
    swim_drop(s, MESH_SWIM_DROP_MALFORMED);
    return;
  }
  if (!swim_id_eq(&b.id, &u->subject)) {
    swim_drop(s, MESH_SWIM_DROP_WRONG_SUBJECT);
    goto done;
  }
  swim_member *m = swim_find(s, &b.id);
  if (m == NULL) {
    if (swim_reaped_refuses(s, &b.id, b.epoch)) {
      swim_drop(s, MESH_SWIM_DROP_ZOMBIE);
      goto done;
    }
    if (b.left) {
      /* A member we never saw leaving: nothing to change. */
      s->c.updates_ignored++;
      goto done;
    }
    if (!intro_allowed(s, in, now))
      goto done;
  } else if (!swim_in_view(m->state)) {
    if (b.epoch < m->epoch || (b.epoch == m->epoch && b.left)) {
      s->c.updates_ignored++;
      goto done;
    }
    if (b.epoch == m->epoch) {
      swim_drop(s, MESH_SWIM_DROP_ZOMBIE);
      goto done;
    }
  } else {
    if (b.epoch < m->epoch) {
      swim_drop(s, MESH_SWIM_DROP_STALE_EPOCH);
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
    m = swim_add_member(s, &b.id);
    if (m == NULL) {
      out->alloc_failed = -ENOMEM;
      goto done;
    }
    m->intake = in->no;
    intro_count(s, in, now);
  }
  if (swim_set_bytes(&m->rec, &m->rec_len, raw, raw_len) != 0 || swim_set_info(m, &b) != 0) {
    out->alloc_failed = -ENOMEM;
    if (fresh)
      swim_remove_member(s, m);
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
    swim_transition(s, m, MESH_SWIM_ALIVE, MESH_VIEW_JOINED, b.epoch, now, out);
  } else if (new_epoch && swim_in_view(old)) {
    swim_transition(s, m, MESH_SWIM_ALIVE, MESH_VIEW_EPOCH_CHANGED, old_epoch, now, out);
    if (b.left)
      swim_transition(s, m, MESH_SWIM_LEFT, MESH_VIEW_LEFT, b.epoch, now, out);
  } else if (new_epoch) {
    swim_transition(s, m, b.left ? MESH_SWIM_LEFT : MESH_SWIM_ALIVE, b.left ? 0 : MESH_VIEW_JOINED,
                    old_epoch, now, out);
  } else if (b.left) {
    swim_transition(s, m, MESH_SWIM_LEFT, MESH_VIEW_LEFT, b.epoch, now, out);
  } else if (old == MESH_SWIM_SUSPECT) {
    if (m->susp != NULL && m->susp->lc_sent)
      s->c.last_chance_saves++;
    free(m->acc);
    m->acc = NULL;
    m->acc_len = 0;
    swim_transition(s, m, MESH_SWIM_ALIVE, MESH_VIEW_ALIVE_AGAIN, b.epoch, now, out);
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
  if (swim_id_eq(accuser, &s->self->id))
    return ACCUSER_MEMBER;
  const swim_member *a = swim_find(s, accuser);
  if (a != NULL)
    return swim_in_view(a->state) ? ACCUSER_MEMBER : ACCUSER_DEPARTED;
  for (size_t i = 0; i < s->hist_n; i++)
    if (swim_id_eq(&s->hist[i].id, accuser))
      return ACCUSER_DEPARTED;
  return ACCUSER_UNKNOWN;
}

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
  swim_accuse(s, m, false, now, out);
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
  if (!swim_in_view(m->state) || a->incarnation < m->inc) {
    s->c.updates_ignored++;
    return;
  }
  if (a->dead && m->state == MESH_SWIM_SUSPECT && m->susp != NULL && m->susp->from_dead &&
      swim_id_eq(&m->susp->dead_by, &a->accuser)) {
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
      swim_drop(s, st == ACCUSER_DEPARTED ? MESH_SWIM_DROP_DEPARTED : MESH_SWIM_DROP_NOT_MEMBER);
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
  if (swim_set_bytes(&m->acc, &m->acc_len, raw, raw_len) != 0) {
    out->alloc_failed = -ENOMEM;
    return;
  }
  m->inc = a->incarnation;
  if (a->dead) {
    swim_transition(s, m, MESH_SWIM_DEAD, MESH_VIEW_DEAD, m->epoch, now, out);
  } else {
    swim_transition(s, m, MESH_SWIM_SUSPECT, MESH_VIEW_SUSPECT, m->epoch, now, out);
    if (swim_start_suspicion(s, m, &a->accuser, now) != 0)
      out->alloc_failed = -ENOMEM;
    if (!trusted)
      swim_probe_soon(s, m, now);
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
void swim_probe_soon(mesh_swim *s, const swim_member *m, mesh_time_ms now)
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
void swim_accuse(mesh_swim *s, swim_member *m, bool dead, mesh_time_ms now, mesh_swim_outbox *out)
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
      swim_drop(s, MESH_SWIM_DROP_MALFORMED);
      return;
    }
    if (b.epoch > s->epoch || (b.epoch == s->epoch && b.incarnation > s->inc))
      swim_drop(s, MESH_SWIM_DROP_SELF);
    else
      s->c.updates_ignored++;
    swim_member_body_release(&b);
    return;
  }
  swim_accuse_body a;
  if (swim_accuse_body_decode(u->body, u->body_len, &a) != 0) {
    swim_drop(s, MESH_SWIM_DROP_MALFORMED);
    return;
  }
  if (!swim_id_eq(&a.target, &s->self->id)) {
    swim_drop(s, MESH_SWIM_DROP_WRONG_SUBJECT);
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
    swim_drop(s, MESH_SWIM_DROP_NOT_MEMBER);
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
  if (swim_sign_self(s) != 0)
    out->alloc_failed = -ENOMEM;
  else
    s->news = true;
}

/* in: who sent the packet, whether it carried a full state, and what it
 * introduced so far. claims: this pass applies the suspect and dead claims
 * (the first pass applies member records, and counts undecodable updates). */
void swim_apply_update(mesh_swim *s, swim_intake *in, bool claims, const uint8_t *raw, size_t len,
                       mesh_time_ms now, mesh_swim_outbox *out)
{
  swim_update u;
  int rc = swim_update_decode(raw, len, &u);
  if (rc != 0) {
    if (!claims)
      swim_drop(s, rc == -EMSGSIZE ? MESH_SWIM_DROP_TOO_BIG : MESH_SWIM_DROP_MALFORMED);
    return;
  }
  if (u.accuse != claims)
    goto done;
  if (swim_id_eq(&u.subject, &s->self->id)) {
    apply_self(s, in, &u, now, out);
    goto done;
  }
  swim_member *m = swim_find(s, &u.subject);
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
    swim_drop(s, MESH_SWIM_DROP_MALFORMED);
    goto done;
  }
  if (!swim_id_eq(&a.target, &u.subject)) {
    swim_drop(s, MESH_SWIM_DROP_WRONG_SUBJECT);
    goto done;
  }
  if (m == NULL) {
    swim_drop(s, swim_reaped_refuses(s, &a.target, a.epoch) ? MESH_SWIM_DROP_ZOMBIE
                                                            : MESH_SWIM_DROP_UNKNOWN);
    goto done;
  }
  if (a.epoch < m->epoch) {
    swim_drop(s, MESH_SWIM_DROP_STALE_EPOCH);
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
