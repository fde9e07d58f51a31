/*
 * A peer's RDMA path: its slot from the handshake extension to its down
 * event, the keepalives that decide whether the path is UP, and the timers.
 *
 * A peer's path:
 *
 *   PROBING   keepalives go over RDMA; datagrams over TCP
 *   UP        the peer said (in its keepalives) that it hears us over RDMA:
 *             datagrams go over RDMA, except while in doubt (no such
 *             keepalive for 3 periods), when they take TCP without a
 *             fallback being declared
 *   FALLBACK  a completion error, a failed transition, or nothing heard
 *             over RDMA for dead_ms: datagrams over TCP (one log line and a
 *             counter); after a backoff the queue pair is reset and probed
 *             again (PROBING), the backoff doubling up to its cap; a frame
 *             from the peer (its own retry) also starts probing at once
 *
 * A keepalive frame (net/frame.h type keepalive) carries proto/rdma.proto's
 * RdmaKeepalive: whether the sender has heard the receiver over RDMA within
 * dead_ms, and the sender's queue pair number. A path is UP only while
 * keepalives that say "I hear you" arrive, so a path broken in either
 * direction falls back on both sides.
 *
 * A queue pair destroyed on request (mesh_rdma_reset_peer) is made anew at
 * the retry; the peer learns its number from the first keepalive it sends
 * (authenticated by the link's keys, which stay as they were) and points its
 * own queue pair at it, so no new TCP handshake is needed. The peer itself
 * sees only silence on the old one and falls back as for any broken path.
 */
#include "net/rdma_internal.h"

#include "src/base/err.h"
#include "src/base/log.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

void rdma_peer_text(const mesh_peer_id *p, char *buf, size_t len)
{
  char full[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(p, full, sizeof full);
  snprintf(buf, len, "%s", full);
}

void rdma_count_paths(rstate *s)
{
  uint64_t up = 0, open = 0;
  for (int i = 0; i < s->cfg.dev.max_qps; i++) {
    if (!s->peers[i].used)
      continue;
    open++;
    if (s->peers[i].path == MESH_RDMA_PATH_UP)
      up++;
  }
  s->stats.paths_up = up;
  s->stats.qps_open = open;
  s->c->peers_up = up;
  s->c->connections_open = open;
}

/* The one place a path changes; it logs the changes a user cares about. */
void rdma_set_path(rstate *s, rpeer *p, mesh_rdma_path to, mesh_time_ms now, const char *why)
{
  mesh_rdma_path from = p->path;
  if (from == to)
    return;
  p->path = to;
  char id[MESH_PEER_ID_TEXT_MAX];
  rdma_peer_text(&p->peer, id, sizeof id);
  if (to == MESH_RDMA_PATH_UP) {
    LOG_INFO("rdma",
             "peer %s: datagrams over RDMA (%s, frames of %u bytes: this node posts %u, "
             "the peer %u)",
             id, mesh_rdma_dev_name(s->dev),
             mesh_rdma_frame_size(s->cfg.dev.buf_size, p->remote.buf_size), s->cfg.dev.buf_size,
             p->remote.buf_size);
  } else if (to == MESH_RDMA_PATH_FALLBACK) {
    s->stats.fallbacks++;
    p->retry_at = now + p->backoff;
    MESH_LOG_RL(MESH_LOG_WARN, "rdma",
                "peer %s: RDMA failed (%s): datagrams over TCP, retry in %llu ms", id, why,
                (unsigned long long)p->backoff);
    p->backoff = p->backoff * 2 > s->cfg.backoff_max_ms ? s->cfg.backoff_max_ms : p->backoff * 2;
  } else if (to == MESH_RDMA_PATH_PROBING) {
    p->probe_start = now;
    p->ever_heard_us = false;
  }
  rdma_count_paths(s);
}

void rdma_slot_free(rstate *s, rpeer *p)
{
  mesh_rbulk_tx_clear(&p->btx);
  mesh_rbulk_rx_clear(&p->brx);
  mesh_rdma_qp_free(p->qp);
  mesh_rdma_link_clear(&p->link);
  sodium_memzero(p, sizeof *p);
  rdma_count_paths(s);
}

static rpeer *find_conn(rstate *s, uint64_t conn_id)
{
  for (int i = 0; i < s->cfg.dev.max_qps; i++)
    if (s->peers[i].used && s->peers[i].conn_id == conn_id)
      return &s->peers[i];
  return NULL;
}

rpeer *rdma_find_peer(const rstate *s, const mesh_peer_id *peer)
{
  for (int i = 0; i < s->cfg.dev.max_qps; i++)
    if (s->peers[i].used && s->peers[i].have_peer && mesh_peer_id_eq(&s->peers[i].peer, peer))
      return &s->peers[i];
  return NULL;
}

int rdma_send_frame(rstate *s, rpeer *p, const mesh_frame *f)
{
  /* Sealed straight into the registered send buffer: no copy after it. */
  uint8_t *slot;
  size_t cap, n;
  int rc = mesh_rdma_qp_send_slot(p->qp, &slot, &cap);
  if (rc != 0)
    return rc;
  rc = mesh_rdma_link_seal(&p->link, f, slot, cap, &n);
  if (rc != 0)
    return rc == -ENOSPC ? -EMSGSIZE : rc;
  rc = mesh_rdma_qp_post(p->qp, n);
  if (rc == 0) {
    s->c->frames_sent++;
    s->c->bytes_sent += n;
  }
  return rc;
}

static void send_keepalive(rstate *s, rpeer *p, mesh_time_ms now)
{
  if (p->qp == NULL)
    return;
  mesh_rdma_keepalive k = {.hears = p->ever_heard && now - p->heard <= s->cfg.dead_ms};
  mesh_rdma_qp_local(p->qp, &k.qpn, &k.psn);
  uint8_t payload[MESH_RDMA_KEEPALIVE_MAX];
  size_t len;
  if (mesh_rdma_keepalive_encode(&k, payload, sizeof payload, &len) != 0)
    return;
  mesh_frame f = {.type = MESH_FRAME_KEEPALIVE, .payload = payload, .len = len};
  p->ka_sent = now;
  if (rdma_send_frame(s, p, &f) == 0) {
    s->stats.keepalives_sent++;
    s->c->keepalives_sent++;
  }
}

void rdma_on_recv(void *arg, mesh_rdma_qp *qp, void *qp_arg, uint8_t *buf, size_t len)
{
  (void)qp;
  rstate *s = arg;
  rpeer *p = qp_arg;
  if (!p->have_peer)
    return; /* no keys yet: nothing the peer sends can be opened */
  s->c->bytes_received += len;
  mesh_frame f;
  switch (mesh_rdma_link_open(&p->link, buf, len, &f)) {
  case MESH_RDMA_OK:
    break;
  case MESH_RDMA_REPLAY:
    s->c->dropped[MESH_DROP_REPLAY]++;
    MESH_LOG_RL(MESH_LOG_WARN, "rdma", "dropped a replayed RDMA frame");
    return;
  case MESH_RDMA_AUTH:
    s->c->dropped[MESH_DROP_AUTH]++;
    MESH_LOG_RL(MESH_LOG_WARN, "rdma", "dropped an RDMA frame that failed authentication");
    return;
  case MESH_RDMA_MALFORMED:
    s->c->dropped[MESH_DROP_MALFORMED]++;
    MESH_LOG_RL(MESH_LOG_WARN, "rdma", "dropped a malformed RDMA frame");
    return;
  }
  mesh_time_ms now = mesh_net_now(s->net);
  s->c->frames_received++;
  p->heard = now;
  p->ever_heard = true;
  /* The peer is probing (its retry came before ours): our queue pair
   * receives, so probe back now rather than wait for our own retry. */
  if (p->path == MESH_RDMA_PATH_FALLBACK && mesh_rdma_qp_can_send(p->qp)) {
    s->stats.retries++;
    rdma_set_path(s, p, MESH_RDMA_PATH_PROBING, now, "");
  }
  if (f.type == MESH_FRAME_KEEPALIVE) {
    s->stats.keepalives_received++;
    mesh_rdma_keepalive k;
    if (mesh_rdma_keepalive_decode(f.payload, f.len, &k) != 0) {
      s->c->dropped[MESH_DROP_MALFORMED]++;
      MESH_LOG_RL(MESH_LOG_WARN, "rdma", "dropped a malformed RDMA keepalive");
      return;
    }
    if (k.qpn != p->remote.qpn || k.psn != p->remote.psn) {
      /* The peer made a new queue pair: ours must follow it before
       * anything else, which cannot happen inside this completion's
       * handler (a reset re-posts the buffer being handled). */
      p->repoint = true;
      p->repoint_qpn = k.qpn;
      p->repoint_psn = k.psn;
      return;
    }
    if (k.hears) {
      p->heard_us = now;
      p->ever_heard_us = true;
      if (p->path == MESH_RDMA_PATH_PROBING)
        rdma_set_path(s, p, MESH_RDMA_PATH_UP, now, "");
    } else if (p->path == MESH_RDMA_PATH_PROBING || p->path == MESH_RDMA_PATH_UP) {
      /* The peer does not know yet that we hear it: say so now rather
       * than at the next period. A keepalive that says so is never
       * answered, so this cannot loop. */
      send_keepalive(s, p, now);
    }
    return;
  }
  if (f.type == MESH_FRAME_DATA && f.cls == MESH_CLASS_STREAM && f.channel == MESH_CH_BULK) {
    rdma_bulk_frame(s, p, &f);
    return;
  }
  /* Otherwise only single-frame datagrams travel over RDMA. */
  if (f.type != MESH_FRAME_DATA || f.cls != MESH_CLASS_DATAGRAM || f.channel < 1 ||
      f.channel > MESH_CH_MAX || f.flags != (MESH_FRAME_FIRST | MESH_FRAME_LAST) ||
      f.total != f.len) {
    s->c->dropped[MESH_DROP_MALFORMED]++;
    return;
  }
  s->c->messages_received[MESH_CLASS_DATAGRAM]++;
  rdma_spin_kick(s);
  mesh_net_deliver(s->net, &p->peer, p->epoch, (mesh_channel)f.channel, MESH_CLASS_DATAGRAM,
                   f.payload, f.len);
}

void rdma_on_qp_error(void *arg, mesh_rdma_qp *qp, void *qp_arg, int err, const char *what)
{
  (void)qp;
  (void)err;
  rstate *s = arg;
  rpeer *p = qp_arg;
  if (p->have_peer && p->path != MESH_RDMA_PATH_FALLBACK)
    rdma_set_path(s, p, MESH_RDMA_PATH_FALLBACK, mesh_net_now(s->net), what);
}

void rdma_on_port(void *arg, bool up, const char *what)
{
  rstate *s = arg;
  mesh_time_ms now = mesh_net_now(s->net);
  if (!up) {
    /* The queue pairs were failed one by one (rdma_on_qp_error): say why once. */
    s->stats.device_events++;
    LOG_WARN("rdma", "RDMA port of %s down (%s): datagrams over TCP until it is back",
             mesh_rdma_dev_name(s->dev), what);
    return;
  }
  LOG_INFO("rdma", "RDMA port of %s active again (%s): retrying RDMA", mesh_rdma_dev_name(s->dev),
           what);
  for (int i = 0; i < s->cfg.dev.max_qps; i++) {
    rpeer *p = &s->peers[i];
    if (p->used && p->have_peer && p->path == MESH_RDMA_PATH_FALLBACK)
      p->retry_at = now;
  }
}

/* Follows the queue pairs peers announced as new during the last poll. */
void rdma_apply_repoints(rstate *s)
{
  for (int i = 0; i < s->cfg.dev.max_qps; i++) {
    rpeer *p = &s->peers[i];
    if (!p->used || !p->repoint)
      continue;
    p->repoint = false;
    if (p->qp == NULL)
      continue; /* ours is gone too: the retry makes one towards p->remote */
    mesh_time_ms now = mesh_net_now(s->net);
    char id[MESH_PEER_ID_TEXT_MAX];
    rdma_peer_text(&p->peer, id, sizeof id);
    LOG_INFO("rdma", "peer %s: its queue pair is now %u: following it", id,
             (unsigned)p->repoint_qpn);
    s->stats.repoints++;
    p->remote.qpn = p->repoint_qpn;
    p->remote.psn = p->repoint_psn;
    int rc = mesh_rdma_qp_repoint(p->qp, p->repoint_qpn, p->repoint_psn);
    if (rc != 0) {
      if (p->path != MESH_RDMA_PATH_FALLBACK)
        rdma_set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, mesh_strerror(rc));
      continue;
    }
    if (p->path != MESH_RDMA_PATH_PROBING) {
      if (p->path == MESH_RDMA_PATH_FALLBACK)
        s->stats.retries++;
      rdma_set_path(s, p, MESH_RDMA_PATH_PROBING, now, "");
    } else {
      p->probe_start = now;
    }
    send_keepalive(s, p, now);
  }
}

/* --- Timers: keepalives, silence, retries, expiry --- */

void rdma_tick_arm(rstate *s)
{
  mesh_time_ms period = s->cfg.keepalive_ms / 2 > 0 ? s->cfg.keepalive_ms / 2 : 1;
  struct timeval tv = {.tv_sec = (time_t)(period / 1000),
                       .tv_usec = (suseconds_t)((period % 1000) * 1000)};
  evtimer_add(s->tick, &tv);
}

/* A new queue pair for p after a reset destroyed the old one, connected to
 * the peer's; its keepalives then tell the peer its number. */
static int qp_remake(rstate *s, rpeer *p)
{
  mesh_rdma_attr local;
  int rc = mesh_rdma_qp_new(s->dev, randombytes_uniform(1u << 24), p, &p->qp, &local);
  if (rc != 0) {
    p->qp = NULL;
    s->stats.qp_errors++;
    return rc;
  }
  return mesh_rdma_qp_connect(p->qp, &p->remote);
}

/* After p's queue pair was made ready (rc 0): probe the path at once;
 * after it failed (rc a negative errno): fall back, logged and counted. */
static void start_probing(rstate *s, rpeer *p, int rc, mesh_time_ms now)
{
  if (rc != 0) {
    p->path = MESH_RDMA_PATH_UP; /* so that rdma_set_path counts and logs */
    rdma_set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, mesh_strerror(rc));
    return;
  }
  rdma_set_path(s, p, MESH_RDMA_PATH_PROBING, now, "");
  send_keepalive(s, p, now);
}

static void retry(rstate *s, rpeer *p, mesh_time_ms now)
{
  s->stats.retries++;
  int rc = p->qp == NULL ? qp_remake(s, p) : mesh_rdma_qp_reset(p->qp);
  start_probing(s, p, rc, now);
}

void rdma_on_tick(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  (void)what;
  rstate *s = arg;
  mesh_time_ms now = mesh_net_now(s->net);
  for (int i = 0; i < s->cfg.dev.max_qps; i++) {
    rpeer *p = &s->peers[i];
    if (!p->used)
      continue;
    if (!p->have_peer) {
      if (now - p->created > s->pending_ttl)
        rdma_slot_free(s, p); /* its handshake never finished */
      continue;
    }
    switch (p->path) {
    case MESH_RDMA_PATH_PROBING:
      /* Twice the silence bound: the peer's side may come up later. */
      if (now - p->probe_start > 2 * s->cfg.dead_ms)
        rdma_set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, "the peer did not answer over RDMA");
      break;
    case MESH_RDMA_PATH_UP:
      if (now - p->heard_us > s->cfg.dead_ms)
        rdma_set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, "nothing heard over RDMA");
      break;
    case MESH_RDMA_PATH_FALLBACK:
      if (now >= p->retry_at && !s->dev_failed)
        retry(s, p, now);
      break;
    case MESH_RDMA_PATH_NONE:
      break;
    }
    if ((p->path == MESH_RDMA_PATH_PROBING || p->path == MESH_RDMA_PATH_UP) &&
        now - p->ka_sent >= s->cfg.keepalive_ms)
      send_keepalive(s, p, now);
    if (p->bulk_ready) {
      if (mesh_rbulk_tx_tick(&p->btx, now)) {
        char id[MESH_PEER_ID_TEXT_MAX];
        rdma_peer_text(&p->peer, id, sizeof id);
        MESH_LOG_RL(MESH_LOG_INFO, "rdma",
                    "peer %s: a bulk message over RDMA unacknowledged "
                    "for %llu ms: again over TCP",
                    id, (unsigned long long)s->cfg.bulk_rto_ms);
      }
      /* A refused sender is told at least once a tick, whatever happened. */
      rdma_bulk_pump(s, p, p->bulk_want_writable, true);
    }
  }
  rdma_tick_arm(s);
}

/* --- The handshake extension and TCP's peer events --- */

int rdma_on_extension(void *arg, uint64_t conn_id, uint8_t *buf, size_t cap, size_t *len)
{
  rstate *s = arg;
  *len = 0;
  if (s->dev_failed)
    return 0;
  rpeer *p = NULL;
  for (int i = 0; i < s->cfg.dev.max_qps; i++) {
    if (!s->peers[i].used) {
      p = &s->peers[i];
      break;
    }
  }
  if (p == NULL) {
    s->stats.qp_limit++;
    return 0; /* at the cap: this peer stays on TCP */
  }
  mesh_rdma_attr a;
  int rc = mesh_rdma_qp_new(s->dev, randombytes_uniform(1u << 24), p, &p->qp, &a);
  if (rc != 0) {
    s->stats.qp_errors++;
    MESH_LOG_RL(MESH_LOG_WARN, "rdma", "no queue pair for a new connection: %s", mesh_strerror(rc));
    return 0;
  }
  mesh_rdma_kx_keypair(p->kx_pk, p->kx_sk);
  memcpy(a.kx_public, p->kx_pk, sizeof a.kx_public);
  rc = mesh_rdma_attr_encode(&a, p->ours, sizeof p->ours, &p->ours_len);
  if (rc != 0 || p->ours_len > cap) {
    mesh_rdma_qp_free(p->qp);
    sodium_memzero(p, sizeof *p);
    return 0;
  }
  memcpy(buf, p->ours, p->ours_len);
  *len = p->ours_len;
  p->used = true;
  p->conn_id = conn_id;
  p->created = mesh_net_now(s->net);
  p->backoff = s->cfg.backoff_min_ms;
  rdma_count_paths(s);
  return 0;
}

static void peer_up(rstate *s, rpeer *p, const mesh_net_peer_event *ev)
{
  mesh_time_ms now = mesh_net_now(s->net);
  mesh_rdma_attr remote;
  if (ev->extension_len == 0) {
    rdma_slot_free(s, p); /* the peer offers no RDMA */
    return;
  }
  int rc = mesh_rdma_attr_decode(ev->extension, ev->extension_len, &remote);
  if (rc == 0)
    rc = mesh_rdma_link_init(&p->link, ev->outbound, &s->psk, p->kx_sk, p->kx_pk, remote.kx_public,
                             p->ours, p->ours_len, ev->extension, ev->extension_len);
  sodium_memzero(p->kx_sk, sizeof p->kx_sk);
  if (rc == 0 && ev->frame_cipher < MESH_FRAME_CIPHER_COUNT) {
    /* RDMA frames use the cipher the TCP handshake agreed, under their own
     * keys: the bulk bytes are where the faster one pays. */
    p->link.tx.cipher = ev->frame_cipher;
    p->link.rx.cipher = ev->frame_cipher;
  }
  if (rc != 0) {
    s->stats.bad_attributes++;
    MESH_LOG_RL(MESH_LOG_WARN, "rdma", "a peer's RDMA attributes were refused: %s",
                mesh_strerror(rc));
    rdma_slot_free(s, p);
    return;
  }
  /* A newer connection to the same peer replaces the older one's path. */
  rpeer *old = rdma_find_peer(s, &ev->peer);
  if (old != NULL && old != p)
    rdma_slot_free(s, old);
  p->have_peer = true;
  p->peer = ev->peer;
  p->epoch = ev->epoch;
  p->remote = remote;
  rdma_bulk_setup(s, p);
  rc = mesh_rdma_qp_connect(p->qp, &remote);
  start_probing(s, p, rc, now);
}

void rdma_peer_event(void *state, const mesh_net_peer_event *ev)
{
  rstate *s = state;
  rpeer *p = find_conn(s, ev->conn_id);
  if (p == NULL)
    return;
  if (ev->up)
    peer_up(s, p, ev);
  else
    rdma_slot_free(s, p);
}
