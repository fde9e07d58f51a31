/*
 * Bulk streams over a peer's RDMA link: frames within the peer's credit,
 * sequenced TCP copies, acknowledgements and gap reports.
 *
 * Bulk: MESH_CH_BULK stream messages to a peer with an RDMA link (its up
 * event carried both sides' attributes and this node runs with bulk on) are
 * taken here for the link's whole life, so that they keep one order: as UC
 * frames while the path is UP, else sequenced over TCP (MESH_CH_BULK_SEQ),
 * under the rules of net/rdma_bulk.h (per-peer sequence numbers, credits of
 * the peer's posted receives, acknowledgements and gap reports over TCP,
 * TCP for every message from a gap or a timeout on). Bulk frames may use
 * the send buffers only while more than a quarter of them stay free, and
 * the peer's receives only up to three quarters of them: datagrams and
 * keepalives always find room. Every frame is sealed with the link's keys
 * and the frame cipher the TCP handshake agreed; a TCP message of the
 * channel names its link by a tag derived from the sender's key, so one of
 * an older link of the same peer is refused, never taken as this one's.
 *
 * Bulk frames never start the busy-poll of net/rdma_poll.c: nothing waits
 * on one frame's round trip, the completion channel wakes the loop for
 * their completions, and spinning beside a transfer only takes CPU from the
 * transfer (and its sealing, writing and hashing). A frame's header is
 * sealed ahead of its bytes straight into the send buffer (mesh_frame's
 * head), so the bytes are copied once on their way out.
 */
#include "net/rdma_internal.h"

#include "src/base/err.h"
#include "src/base/log.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

/* Send buffers bulk leaves free for datagrams and keepalives. */
static uint32_t bulk_send_reserve(const mesh_rdma_qp *qp)
{
  uint32_t d = mesh_rdma_qp_send_depth(qp);
  return d / 4 > 2 ? d / 4 : 2;
}

void rdma_bulk_setup(rstate *s, rpeer *p)
{
  uint32_t frame = mesh_rdma_frame_size(s->cfg.dev.buf_size, p->remote.buf_size);
  size_t room = frame > mesh_frame_wire_size(MESH_RBULK_FRAME_HDR)
                    ? frame - mesh_frame_wire_size(MESH_RBULK_FRAME_HDR)
                    : 0;
  /* The peer's receives, less a quarter (at least 2) for datagrams and
   * keepalives, bound the bulk frames unacknowledged. */
  uint32_t depth = p->remote.depth;
  uint32_t reserve = depth / 4 > 2 ? depth / 4 : 2;
  uint32_t credit = depth > reserve ? depth - reserve : 0;
  mesh_rbulk_tx_init(&p->btx, room, room > 0 ? credit : 0, s->cfg.bulk_rto_ms);
  mesh_rbulk_rx_init(&p->brx, s->frame_max);
  static const uint8_t what[] = "meshd-rdma-bulk-link";
  crypto_generichash(p->tag_tx, sizeof p->tag_tx, what, sizeof what - 1, p->link.tx.key,
                     sizeof p->link.tx.key);
  crypto_generichash(p->tag_rx, sizeof p->tag_rx, what, sizeof what - 1, p->link.rx.key,
                     sizeof p->link.rx.key);
  p->bulk_ready = true;
}

/* Whether bulk frames may go to p now: the path is UP and not in doubt
 * (the rule datagrams follow). */
static bool bulk_rdma_usable(rstate *s, const rpeer *p)
{
  return p->path == MESH_RDMA_PATH_UP && p->qp != NULL && !s->dev_failed &&
         mesh_net_now(s->net) - p->heard_us <= 3 * s->cfg.keepalive_ms;
}

static void bulk_sync_stats(rstate *s, rpeer *p)
{
  s->stats.bulk_fallbacks += p->btx.fallbacks - p->rep_fallbacks;
  s->stats.bulk_timeouts += p->btx.timeouts - p->rep_timeouts;
  s->stats.bulk_resent += p->btx.resent - p->rep_resent;
  p->rep_fallbacks = p->btx.fallbacks;
  p->rep_timeouts = p->btx.timeouts;
  p->rep_resent = p->btx.resent;
}

/* An ACK or NACK to the peer over TCP. */
static int bulk_ctl(rstate *s, rpeer *p, uint8_t kind, uint64_t seq)
{
  uint8_t m[BULK_TCP_HDR];
  mesh_rbulk_put_tcp_hdr(m, kind, seq);
  memcpy(m + MESH_RBULK_TCP_HDR, p->tag_tx, sizeof p->tag_tx);
  int rc =
      mesh_net_send_via(s->net, "tcp", &p->peer, MESH_CH_BULK_SEQ, MESH_CLASS_STREAM, m, sizeof m);
  if (rc == 0) {
    if (kind == MESH_RBULK_ACK)
      s->stats.bulk_acks++;
    else
      s->stats.bulk_nacks++;
  }
  return rc;
}

static void bulk_ack(rstate *s, rpeer *p)
{
  /* Cumulative: a later one covers one that could not be queued. */
  p->bulk_ack_due = bulk_ctl(s, p, MESH_RBULK_ACK, p->brx.next) != 0;
}

static void bulk_nack(rstate *s, rpeer *p)
{
  uint64_t seq;
  if (mesh_rbulk_rx_take_nack(&p->brx, &seq)) {
    char id[MESH_PEER_ID_TEXT_MAX];
    rdma_peer_text(&p->peer, id, sizeof id);
    MESH_LOG_RL(MESH_LOG_INFO, "rdma",
                "peer %s: bulk frame lost before message %llu: asking for "
                "it over TCP",
                id, (unsigned long long)seq);
    /* A report that cannot be queued is covered by the sender's timeout. */
    bulk_ctl(s, p, MESH_RBULK_NACK, seq);
  }
}

/*
 * Moves what waits: bulk frames while send buffers beyond the reserve are
 * free, then sequenced TCP copies while TCP takes them. notify: tell the
 * node (mesh_net_writable) when a refused send may now be taken; never
 * from within a send.
 */
void rdma_bulk_pump(rstate *s, rpeer *p, bool progress, bool notify)
{
  if (!p->bulk_ready || s->bulk_pumping)
    return;
  s->bulk_pumping = true;
  mesh_time_ms now = mesh_net_now(s->net);
  if (p->bulk_ack_due)
    bulk_ack(s, p);
  uint64_t seq;
  size_t off, total, n;
  const uint8_t *data;
  while (mesh_rbulk_tx_frame(&p->btx, &seq, &off, &total, &data, &n)) {
    if (!bulk_rdma_usable(s, p)) {
      /* The path went away under messages given to it: they and all after
       * them go over TCP, from the first the peer lacks. */
      mesh_rbulk_tx_nack(&p->btx, p->btx.acked);
      break;
    }
    if (mesh_rdma_qp_send_free(p->qp) <= bulk_send_reserve(p->qp))
      break; /* the next send completion brings us back */
    uint8_t hdr[MESH_RBULK_FRAME_HDR];
    mesh_rbulk_put_frame_hdr(hdr, seq, (uint32_t)off);
    mesh_frame f = {.type = MESH_FRAME_DATA,
                    .channel = MESH_CH_BULK,
                    .cls = MESH_CLASS_STREAM,
                    .flags = MESH_FRAME_FIRST | MESH_FRAME_LAST,
                    .total = (uint32_t)total,
                    .head = hdr,
                    .head_len = sizeof hdr,
                    .payload = data,
                    .len = n};
    if (s->cfg.bulk_lose(s->cfg.bulk_lose_arg)) {
      s->stats.bulk_test_drops++; /* as if UC had lost it on the way */
    } else {
      int rc = rdma_send_frame(s, p, &f);
      if (rc == -ENOBUFS)
        break;
      if (rc != 0) {
        rdma_set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, mesh_strerror(rc));
        mesh_rbulk_tx_nack(&p->btx, p->btx.acked);
        break;
      }
    }
    mesh_rbulk_tx_frame_sent(&p->btx, now);
    s->stats.bulk_frames_sent++;
    s->stats.bulk_bytes_sent += n;
    progress = true;
  }
  const uint8_t *msg;
  while (mesh_rbulk_tx_tcp(&p->btx, &seq, &msg, &n)) {
    mesh_rbulk_put_tcp_hdr(s->bulk_tcp, MESH_RBULK_DATA, seq);
    memcpy(s->bulk_tcp + MESH_RBULK_TCP_HDR, p->tag_tx, sizeof p->tag_tx);
    if (n > 0)
      memcpy(s->bulk_tcp + BULK_TCP_HDR, msg, n);
    int rc = mesh_net_send_via(s->net, "tcp", &p->peer, MESH_CH_BULK_SEQ, MESH_CLASS_STREAM,
                               s->bulk_tcp, n + BULK_TCP_HDR);
    if (rc != 0)
      break; /* -EAGAIN: TCP's writable callback brings us back; else the link goes */
    mesh_rbulk_tx_tcp_sent(&p->btx);
    s->stats.bulk_tcp_bytes_sent += n;
    progress = true;
  }
  bulk_sync_stats(s, p);
  s->bulk_pumping = false;
  if (notify && progress && p->bulk_want_writable) {
    p->bulk_want_writable = false;
    mesh_peer_id peer = p->peer;
    mesh_net_writable(s->net, &peer);
  }
}

void rdma_bulk_pump_all(rstate *s)
{
  for (int i = 0; i < s->cfg.dev.max_qps; i++) {
    rpeer *p = &s->peers[i];
    if (p->used && p->bulk_ready && !mesh_rbulk_tx_idle(&p->btx))
      rdma_bulk_pump(s, p, false, true);
  }
}

static void bulk_deliver(rstate *s, rpeer *p, const uint8_t *m, size_t len, bool rdma)
{
  s->stats.bulk_msgs_received++;
  if (rdma)
    s->stats.bulk_bytes_received += len;
  s->c->messages_received[MESH_CLASS_STREAM]++;
  mesh_peer_id peer = p->peer;
  uint64_t conn = p->conn_id;
  mesh_net_deliver(s->net, &peer, p->epoch, MESH_CH_BULK, MESH_CLASS_STREAM, m, len);
  /* The node may have closed the peer from its handler. */
  if (!p->used || p->conn_id != conn || !p->bulk_ready)
    return;
  bulk_ack(s, p);
}

void rdma_bulk_frame(rstate *s, rpeer *p, const mesh_frame *f)
{
  if (!p->bulk_ready || f->len <= MESH_RBULK_FRAME_HDR) {
    s->stats.bulk_bad++;
    s->c->dropped[MESH_DROP_MALFORMED]++;
    return;
  }
  uint64_t seq;
  uint32_t off;
  mesh_rbulk_get_frame_hdr(f->payload, &seq, &off);
  s->stats.bulk_frames_received++;
  const uint8_t *m;
  size_t ml;
  switch (mesh_rbulk_rx_frame(&p->brx, seq, off, f->total, f->payload + MESH_RBULK_FRAME_HDR,
                              f->len - MESH_RBULK_FRAME_HDR, &m, &ml)) {
  case MESH_RBULK_PARTIAL:
    break;
  case MESH_RBULK_DELIVER:
    bulk_deliver(s, p, m, ml, true);
    break;
  case MESH_RBULK_DUP:
    s->stats.bulk_dups++;
    break;
  case MESH_RBULK_GAP:
    s->stats.bulk_gaps++;
    bulk_nack(s, p);
    break;
  case MESH_RBULK_BAD:
    s->stats.bulk_bad++;
    s->c->dropped[MESH_DROP_MALFORMED]++;
    MESH_LOG_RL(MESH_LOG_WARN, "rdma", "dropped a bulk frame with fields out of range");
    break;
  }
}

/* A MESH_CH_BULK_SEQ message from TCP (the bulk_seq op). */
void rdma_bulk_seq(void *state, const mesh_peer_id *from, const uint8_t *buf, size_t len)
{
  rstate *s = state;
  rpeer *p = rdma_find_peer(s, from);
  uint8_t kind;
  uint64_t seq;
  if (p == NULL || !p->bulk_ready || mesh_rbulk_get_tcp_hdr(buf, len, &kind, &seq) != 0 ||
      len < BULK_TCP_HDR || memcmp(buf + MESH_RBULK_TCP_HDR, p->tag_rx, sizeof p->tag_rx) != 0) {
    s->stats.bulk_bad++;
    s->c->dropped[MESH_DROP_MALFORMED]++;
    MESH_LOG_RL(MESH_LOG_WARN, "rdma",
                "dropped a sequenced bulk message: no such link, or "
                "malformed");
    return;
  }
  switch (kind) {
  case MESH_RBULK_DATA:
    switch (mesh_rbulk_rx_tcp(&p->brx, seq)) {
    case MESH_RBULK_DELIVER:
      bulk_deliver(s, p, buf + BULK_TCP_HDR, len - BULK_TCP_HDR, false);
      break;
    case MESH_RBULK_DUP:
      /* The sender went to TCP although we had it: its acknowledgement
       * may be what it lacks. */
      s->stats.bulk_dups++;
      bulk_ack(s, p);
      break;
    default:
      s->stats.bulk_gaps++;
      bulk_nack(s, p);
      break;
    }
    break;
  case MESH_RBULK_ACK:
    if (mesh_rbulk_tx_ack(&p->btx, seq) != 0) {
      s->stats.bulk_bad++;
      break;
    }
    rdma_bulk_pump(s, p, true, true);
    break;
  case MESH_RBULK_NACK: {
    uint64_t before = p->btx.fallbacks;
    if (mesh_rbulk_tx_nack(&p->btx, seq) != 0) {
      s->stats.bulk_bad++;
      break;
    }
    if (p->btx.fallbacks != before) {
      char id[MESH_PEER_ID_TEXT_MAX];
      rdma_peer_text(&p->peer, id, sizeof id);
      MESH_LOG_RL(MESH_LOG_INFO, "rdma",
                  "peer %s lost a bulk frame: messages from %llu again "
                  "over TCP",
                  id, (unsigned long long)seq);
    }
    rdma_bulk_pump(s, p, true, true);
    break;
  }
  default:
    break;
  }
}

/* TCP has room again for peer (the writable op). */
void rdma_writable(void *state, const mesh_peer_id *peer)
{
  rstate *s = state;
  rpeer *p = rdma_find_peer(s, peer);
  if (p != NULL)
    rdma_bulk_pump(s, p, false, true);
}

int rdma_bulk_send(rstate *s, const mesh_peer_id *peer, mesh_channel ch, const uint8_t *buf,
                   size_t len)
{
  rpeer *p = rdma_find_peer(s, peer);
  if (ch != MESH_CH_BULK || p == NULL || !p->bulk_ready || !s->cfg.bulk)
    return -ENOTCONN;
  if (len > s->frame_max || len + BULK_TCP_HDR > s->frame_max) {
    s->c->dropped[MESH_DROP_OVERSIZE]++;
    return -EMSGSIZE;
  }
  bool via = false;
  int rc = mesh_rbulk_tx_submit(&p->btx, buf, len, bulk_rdma_usable(s, p), &via);
  if (rc == -EAGAIN) {
    /* What waits may go now and make room (no callback from within a send). */
    rdma_bulk_pump(s, p, false, false);
    rc = mesh_rbulk_tx_submit(&p->btx, buf, len, bulk_rdma_usable(s, p), &via);
  }
  if (rc == -EAGAIN) {
    s->stats.bulk_waits++;
    p->bulk_want_writable = true;
    return -EAGAIN;
  }
  if (rc != 0)
    return rc;
  if (via)
    s->stats.bulk_msgs_rdma++;
  else
    s->stats.bulk_msgs_tcp++;
  s->c->messages_sent[MESH_CLASS_STREAM]++;
  rdma_bulk_pump(s, p, false, false);
  return 0;
}
