/*
 * The RDMA transport (net/rdma.h, net/transport.h): datagrams to peers whose
 * UC queue pair works; TCP carries everything else.
 *
 * It never listens or dials: it rides on TCP's handshake. When a handshake
 * starts, the extension hook makes a queue pair for that connection (while
 * fewer than the cap are open) and offers its attributes; when TCP raises
 * the peer's up event with the peer's attributes, the queue pair goes to
 * RTS and the path is probed. A peer's path:
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
 *
 * Adaptive completion polling: a datagram sent or received over RDMA makes
 * the completion queue "hot" for poll_us; while hot, the loop busy-polls it
 * in slices (a zero-delay timer between slices lets every other event run)
 * instead of sleeping until the completion channel wakes it, which on an
 * idle CPU costs a wake-up far longer than the round trip itself. While it
 * polls, the queue is left unarmed, as a polling-only program (perftest)
 * leaves it: an armed queue makes the kernel schedule notification work
 * (rxe: a tasklet) for every completion, which then competes with the
 * polling process for the CPU. It is armed again, and drained once more,
 * when the polling ends. The time spent is capped per second
 * (poll_budget_ms); keepalives alone never heat the queue, so an idle node
 * does not spin.
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
 * Everything runs on the loop thread; nothing blocks.
 */
#include "net/rdma.h"
#include "net/rdma_bulk.h"

#include "net/multiaddr.h"
#include "src/base/err.h"
#include "src/base/log.h"

#include <errno.h>
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_NETS 8
#define SPIN_SLICE_US 200   /* busy-poll at most this long per turn of the loop */
#define SPIN_CLOCK_EVERY 16 /* polls between clock reads within a slice */

typedef struct rpeer {
  bool used;
  uint64_t conn_id; /* the TCP connection whose handshake offered our queue pair */
  bool have_peer;   /* its up event came: peer, epoch and link are set */
  mesh_peer_id peer;
  uint64_t epoch;
  mesh_rdma_qp *qp;      /* NULL after a reset, until the retry makes a new one */
  mesh_rdma_attr remote; /* the peer's attributes (qpn, psn: its queue pair now) */
  bool repoint;          /* the peer announced a new queue pair: follow it after the poll */
  uint32_t repoint_qpn;  /* ... this one */
  uint32_t repoint_psn;
  uint8_t ours[MESH_RDMA_ATTR_MAX]; /* our encoded attributes */
  size_t ours_len;
  uint8_t kx_pk[MESH_RDMA_KX_LEN];
  uint8_t kx_sk[MESH_RDMA_KX_LEN];
  mesh_rdma_link link;
  mesh_rdma_path path;
  mesh_time_ms created;     /* queue pair made (a pending one expires) */
  mesh_time_ms probe_start; /* PROBING since */
  mesh_time_ms heard;       /* last authenticated RDMA frame from the peer */
  mesh_time_ms heard_us;    /* last keepalive saying the peer hears us */
  bool ever_heard;
  bool ever_heard_us;
  mesh_time_ms ka_sent;  /* last keepalive sent */
  mesh_time_ms retry_at; /* FALLBACK: when to try RDMA again */
  mesh_time_ms backoff;  /* the next retry's delay */
  /* Bulk (net/rdma_bulk.h), set up at the up event: */
  bool bulk_ready;
  mesh_rbulk_tx btx;
  mesh_rbulk_rx brx;
  uint8_t tag_tx[8];       /* names this link in our MESH_CH_BULK_SEQ messages */
  uint8_t tag_rx[8];       /* ... and in the peer's */
  bool bulk_want_writable; /* a send was refused: tell the node when there is room */
  bool bulk_ack_due;       /* an acknowledgement could not be queued yet */
  uint64_t rep_fallbacks;  /* btx counters already added to the stats */
  uint64_t rep_timeouts;
  uint64_t rep_resent;
} rpeer;

typedef struct rstate {
  mesh_net *net;
  mesh_transport_counters *c;
  mesh_rdma_stats stats;
  mesh_rdma_config cfg;
  mesh_psk psk;
  size_t frame_max;         /* the net's bound on a message */
  mesh_time_ms pending_ttl; /* a queue pair whose handshake never finished */
  mesh_rdma_dev *dev;
  bool dev_failed; /* the device went away: no more RDMA */
  struct event *cq_ev;
  struct event *async_ev;
  struct event *tick;
  struct event *spin_ev;    /* zero-delay timer: the next busy-poll slice */
  bool spin_armed;          /* spin_ev is pending */
  bool polling;             /* busy-polling: the completion queue is left unarmed */
  bool kicked;              /* datagram traffic since the last clock reading */
  uint64_t hot_until_us;    /* busy-poll until then (monotonic microseconds) */
  uint64_t budget_start_us; /* start of the current budget second */
  uint64_t budget_used_us;  /* busy-polled within it */
  rpeer *peers;             /* cfg.dev.max_qps slots */
  uint8_t *wire;            /* sealing buffer: one frame */
  size_t wire_cap;
  uint8_t *bulk_plain;    /* a bulk frame's plaintext: header and bytes (wire_cap) */
  uint8_t *bulk_tcp;      /* a MESH_CH_BULK_SEQ message (frame_max + BULK_TCP_HDR) */
  bool bulk_pumping;      /* inside bulk_pump: TCP's writable callback must not re-enter */
  uint64_t bulk_frame_no; /* bulk frames handed to the hook (test drops) */
} rstate;

/* A MESH_CH_BULK_SEQ message's header: kind, seq, and the sender's link tag. */
#define BULK_TCP_HDR (MESH_RBULK_TCP_HDR + 8)

/* mesh_rdma_attach hands the opened device to init through this (one
 * registration at a time, on the loop thread). */
static struct {
  mesh_rdma_dev *dev;
  const mesh_rdma_config *cfg;
} pending;

/* Which net has which RDMA state, for mesh_rdma_stats_of. */
static struct {
  const mesh_net *net;
  rstate *s;
} nets[MAX_NETS];

void mesh_rdma_config_default(mesh_rdma_config *c)
{
  memset(c, 0, sizeof *c);
  mesh_rdma_dev_options_default(&c->dev);
  c->keepalive_ms = 250;
  c->dead_ms = 1500;
  c->backoff_min_ms = 1000;
  c->backoff_max_ms = 60000;
  c->poll_us = 1000;
  c->poll_budget_ms = 100;
  c->bulk = true;
  c->bulk_rto_ms = 1000;
}

static uint64_t mono_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void peer_text(const mesh_peer_id *p, char *buf, size_t len)
{
  char full[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(p, full, sizeof full);
  snprintf(buf, len, "%s", full);
}

static void count_paths(rstate *s)
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
static void set_path(rstate *s, rpeer *p, mesh_rdma_path to, mesh_time_ms now, const char *why)
{
  mesh_rdma_path from = p->path;
  if (from == to)
    return;
  p->path = to;
  char id[MESH_PEER_ID_TEXT_MAX];
  peer_text(&p->peer, id, sizeof id);
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
  count_paths(s);
}

static void slot_free(rstate *s, rpeer *p)
{
  mesh_rbulk_tx_clear(&p->btx);
  mesh_rbulk_rx_clear(&p->brx);
  mesh_rdma_qp_free(p->qp);
  mesh_rdma_link_clear(&p->link);
  sodium_memzero(p, sizeof *p);
  count_paths(s);
}

static rpeer *find_conn(rstate *s, uint64_t conn_id)
{
  for (int i = 0; i < s->cfg.dev.max_qps; i++)
    if (s->peers[i].used && s->peers[i].conn_id == conn_id)
      return &s->peers[i];
  return NULL;
}

static rpeer *find_peer(const rstate *s, const mesh_peer_id *peer)
{
  for (int i = 0; i < s->cfg.dev.max_qps; i++)
    if (s->peers[i].used && s->peers[i].have_peer && mesh_peer_id_eq(&s->peers[i].peer, peer))
      return &s->peers[i];
  return NULL;
}

static int send_frame(rstate *s, rpeer *p, const mesh_frame *f)
{
  size_t n;
  int rc = mesh_rdma_link_seal(&p->link, f, s->wire, s->wire_cap, &n);
  if (rc != 0)
    return rc;
  rc = mesh_rdma_qp_send(p->qp, s->wire, n);
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
  if (send_frame(s, p, &f) == 0) {
    s->stats.keepalives_sent++;
    s->c->keepalives_sent++;
  }
}

/* --- Completions --- */

static void spin_arm(rstate *s)
{
  static const struct timeval zero = {0, 0};
  if (!s->spin_armed && evtimer_add(s->spin_ev, &zero) == 0)
    s->spin_armed = true;
}

/* Datagram traffic over RDMA: an answer may follow, so keep polling. The
 * window starts at the busy-poll's next clock reading (clock reads are not
 * free on every machine, and this runs for every datagram). */
static void spin_kick(rstate *s)
{
  if (s->cfg.poll_us == 0 || s->cfg.poll_budget_ms == 0 || s->dev_failed)
    return;
  s->kicked = true;
  spin_arm(s);
}

static void take_kick(rstate *s, uint64_t now_us)
{
  if (!s->kicked)
    return;
  s->kicked = false;
  s->hot_until_us = now_us + s->cfg.poll_us;
}

/* --- Bulk (net/rdma_bulk.h) --- */

/* Send buffers bulk leaves free for datagrams and keepalives. */
static uint32_t bulk_send_reserve(const mesh_rdma_qp *qp)
{
  uint32_t d = mesh_rdma_qp_send_depth(qp);
  return d / 4 > 2 ? d / 4 : 2;
}

static void bulk_setup(rstate *s, rpeer *p)
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
    peer_text(&p->peer, id, sizeof id);
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
static void bulk_pump(rstate *s, rpeer *p, bool progress, bool notify)
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
  bool posted = false;
  while (mesh_rbulk_tx_frame(&p->btx, &seq, &off, &total, &data, &n)) {
    if (!bulk_rdma_usable(s, p)) {
      /* The path went away under messages given to it: they and all after
       * them go over TCP, from the first the peer lacks. */
      mesh_rbulk_tx_nack(&p->btx, p->btx.acked);
      break;
    }
    if (mesh_rdma_qp_send_free(p->qp) <= bulk_send_reserve(p->qp))
      break; /* the next send completion brings us back */
    mesh_rbulk_put_frame_hdr(s->bulk_plain, seq, (uint32_t)off);
    memcpy(s->bulk_plain + MESH_RBULK_FRAME_HDR, data, n);
    mesh_frame f = {.type = MESH_FRAME_DATA,
                    .channel = MESH_CH_BULK,
                    .cls = MESH_CLASS_STREAM,
                    .flags = MESH_FRAME_FIRST | MESH_FRAME_LAST,
                    .total = (uint32_t)total,
                    .payload = s->bulk_plain,
                    .len = n + MESH_RBULK_FRAME_HDR};
    s->bulk_frame_no++;
    if (s->cfg.bulk_drop_every != 0 && s->bulk_frame_no % s->cfg.bulk_drop_every == 0) {
      s->stats.bulk_test_drops++; /* as if UC had lost it on the way */
    } else {
      int rc = send_frame(s, p, &f);
      if (rc == -ENOBUFS)
        break;
      if (rc != 0) {
        set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, mesh_strerror(rc));
        mesh_rbulk_tx_nack(&p->btx, p->btx.acked);
        break;
      }
    }
    mesh_rbulk_tx_frame_sent(&p->btx, now);
    s->stats.bulk_frames_sent++;
    s->stats.bulk_bytes_sent += n;
    posted = progress = true;
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
  if (posted)
    spin_kick(s); /* their send completions free the buffers for the next */
  if (notify && progress && p->bulk_want_writable) {
    p->bulk_want_writable = false;
    mesh_peer_id peer = p->peer;
    mesh_net_writable(s->net, &peer);
  }
}

static void bulk_pump_all(rstate *s)
{
  for (int i = 0; i < s->cfg.dev.max_qps; i++) {
    rpeer *p = &s->peers[i];
    if (p->used && p->bulk_ready && !mesh_rbulk_tx_idle(&p->btx))
      bulk_pump(s, p, false, true);
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

static void bulk_frame(rstate *s, rpeer *p, const mesh_frame *f)
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
  spin_kick(s);
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
static void rdma_bulk_seq(void *state, const mesh_peer_id *from, const uint8_t *buf, size_t len)
{
  rstate *s = state;
  rpeer *p = find_peer(s, from);
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
    bulk_pump(s, p, true, true);
    break;
  case MESH_RBULK_NACK: {
    uint64_t before = p->btx.fallbacks;
    if (mesh_rbulk_tx_nack(&p->btx, seq) != 0) {
      s->stats.bulk_bad++;
      break;
    }
    if (p->btx.fallbacks != before) {
      char id[MESH_PEER_ID_TEXT_MAX];
      peer_text(&p->peer, id, sizeof id);
      MESH_LOG_RL(MESH_LOG_INFO, "rdma",
                  "peer %s lost a bulk frame: messages from %llu again "
                  "over TCP",
                  id, (unsigned long long)seq);
    }
    bulk_pump(s, p, true, true);
    break;
  }
  default:
    break;
  }
}

/* TCP has room again for peer (the writable op). */
static void rdma_writable(void *state, const mesh_peer_id *peer)
{
  rstate *s = state;
  rpeer *p = find_peer(s, peer);
  if (p != NULL)
    bulk_pump(s, p, false, true);
}

static int bulk_send(rstate *s, const mesh_peer_id *peer, mesh_channel ch, const uint8_t *buf,
                     size_t len)
{
  rpeer *p = find_peer(s, peer);
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
    bulk_pump(s, p, false, false);
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
  bulk_pump(s, p, false, false);
  return 0;
}

static void on_recv(void *arg, mesh_rdma_qp *qp, void *qp_arg, uint8_t *buf, size_t len)
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
    set_path(s, p, MESH_RDMA_PATH_PROBING, now, "");
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
        set_path(s, p, MESH_RDMA_PATH_UP, now, "");
    } else if (p->path == MESH_RDMA_PATH_PROBING || p->path == MESH_RDMA_PATH_UP) {
      /* The peer does not know yet that we hear it: say so now rather
       * than at the next period. A keepalive that says so is never
       * answered, so this cannot loop. */
      send_keepalive(s, p, now);
    }
    return;
  }
  if (f.type == MESH_FRAME_DATA && f.cls == MESH_CLASS_STREAM && f.channel == MESH_CH_BULK) {
    bulk_frame(s, p, &f);
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
  spin_kick(s);
  mesh_net_deliver(s->net, &p->peer, p->epoch, (mesh_channel)f.channel, MESH_CLASS_DATAGRAM,
                   f.payload, f.len);
}

static void on_qp_error(void *arg, mesh_rdma_qp *qp, void *qp_arg, int err, const char *what)
{
  (void)qp;
  (void)err;
  rstate *s = arg;
  rpeer *p = qp_arg;
  if (p->have_peer && p->path != MESH_RDMA_PATH_FALLBACK)
    set_path(s, p, MESH_RDMA_PATH_FALLBACK, mesh_net_now(s->net), what);
}

static void on_port(void *arg, bool up, const char *what)
{
  rstate *s = arg;
  mesh_time_ms now = mesh_net_now(s->net);
  if (!up) {
    /* The queue pairs were failed one by one (on_qp_error): say why once. */
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
static void apply_repoints(rstate *s)
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
    peer_text(&p->peer, id, sizeof id);
    LOG_INFO("rdma", "peer %s: its queue pair is now %u: following it", id,
             (unsigned)p->repoint_qpn);
    s->stats.repoints++;
    p->remote.qpn = p->repoint_qpn;
    p->remote.psn = p->repoint_psn;
    int rc = mesh_rdma_qp_repoint(p->qp, p->repoint_qpn, p->repoint_psn);
    if (rc != 0) {
      if (p->path != MESH_RDMA_PATH_FALLBACK)
        set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, mesh_strerror(rc));
      continue;
    }
    if (p->path != MESH_RDMA_PATH_PROBING) {
      if (p->path == MESH_RDMA_PATH_FALLBACK)
        s->stats.retries++;
      set_path(s, p, MESH_RDMA_PATH_PROBING, now, "");
    } else {
      p->probe_start = now;
    }
    send_keepalive(s, p, now);
  }
}

/* A full poll: notifications taken, the queue armed again and drained,
 * asynchronous events read. What the loop does whenever it is not
 * busy-polling. */
static void poll_and_arm(rstate *s)
{
  mesh_rdma_handler h = {.recv = on_recv, .error = on_qp_error, .port = on_port, .arg = s};
  int rc = mesh_rdma_dev_poll(s->dev, &h);
  apply_repoints(s);
  if (rc >= 0 || s->dev_failed) {
    bulk_pump_all(s); /* send completions freed buffers */
    return;
  }
  /* The device itself is gone (its link deleted, the driver unloaded): stop
   * watching its fds, which would stay readable, and put every peer on TCP
   * for good. */
  s->dev_failed = true;
  event_del(s->cq_ev);
  event_del(s->async_ev);
  event_del(s->spin_ev);
  s->spin_armed = false;
  LOG_WARN("rdma", "RDMA device %s failed (%s): every peer on TCP from now on",
           mesh_rdma_dev_name(s->dev), mesh_strerror(rc));
  mesh_time_ms now = mesh_net_now(s->net);
  for (int i = 0; i < s->cfg.dev.max_qps; i++) {
    rpeer *p = &s->peers[i];
    if (p->used && p->have_peer && p->path != MESH_RDMA_PATH_FALLBACK)
      set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, "device failed");
  }
}

static void on_cq(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  (void)what;
  rstate *s = arg;
  if (s->polling) {
    /* The busy-poll handles the completions; it arms the queue when done. */
    mesh_rdma_handler h = {.recv = on_recv, .error = on_qp_error, .port = on_port, .arg = s};
    mesh_rdma_dev_events(s->dev, &h);
    return;
  }
  poll_and_arm(s);
}

/* One slice of busy-polling; schedules the next while the queue is hot and
 * the second's budget lasts. */
static void on_spin(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  (void)what;
  rstate *s = arg;
  s->spin_armed = false;
  if (s->dev_failed)
    return;
  s->polling = true;
  uint64_t start = mono_us();
  take_kick(s, start);
  if (start - s->budget_start_us >= 1000000u) {
    s->budget_start_us = start;
    s->budget_used_us = 0;
  }
  uint64_t budget = (uint64_t)s->cfg.poll_budget_ms * 1000u;
  if (s->budget_used_us >= budget) {
    s->stats.poll_budget_hits++;
    s->polling = false;
    poll_and_arm(s); /* the completion channel wakes the loop as before */
    return;
  }
  uint64_t end = start + SPIN_SLICE_US;
  if (end > start + (budget - s->budget_used_us))
    end = start + (budget - s->budget_used_us);
  mesh_rdma_handler h = {.recv = on_recv, .error = on_qp_error, .port = on_port, .arg = s};
  uint64_t t = start;
  for (unsigned i = 1;; i++) {
    int n = mesh_rdma_dev_spin(s->dev, &h);
    if (n < 0)
      break; /* the completion channel's poll reports the failure */
    if (n > 0) {
      s->stats.poll_completions += (uint64_t)n;
      apply_repoints(s);
      if (s->dev_failed)
        return;
      bulk_pump_all(s);
    }
    if (i % SPIN_CLOCK_EVERY == 0) {
      t = mono_us();
      /* A datagram handled above may have made the queue hot again. */
      take_kick(s, t);
      if (t >= end || t >= s->hot_until_us)
        break;
    }
  }
  s->budget_used_us += t - start;
  s->stats.poll_us += t - start;
  take_kick(s, t);
  if (t < s->hot_until_us) {
    spin_arm(s);
    return;
  }
  /* Cold again: back to sleeping on the channel (a completion that landed
   * since the last poll is found by the drain after arming). */
  s->polling = false;
  poll_and_arm(s);
}

/* --- Timers: keepalives, silence, retries, expiry --- */

static void tick_arm(rstate *s)
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

static void retry(rstate *s, rpeer *p, mesh_time_ms now)
{
  s->stats.retries++;
  int rc = p->qp == NULL ? qp_remake(s, p) : mesh_rdma_qp_reset(p->qp);
  if (rc != 0) {
    p->path = MESH_RDMA_PATH_UP; /* so that set_path counts and logs */
    set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, mesh_strerror(rc));
    return;
  }
  set_path(s, p, MESH_RDMA_PATH_PROBING, now, "");
  send_keepalive(s, p, now);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
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
        slot_free(s, p); /* its handshake never finished */
      continue;
    }
    switch (p->path) {
    case MESH_RDMA_PATH_PROBING:
      /* Twice the silence bound: the peer's side may come up later. */
      if (now - p->probe_start > 2 * s->cfg.dead_ms)
        set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, "the peer did not answer over RDMA");
      break;
    case MESH_RDMA_PATH_UP:
      if (now - p->heard_us > s->cfg.dead_ms)
        set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, "nothing heard over RDMA");
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
        peer_text(&p->peer, id, sizeof id);
        MESH_LOG_RL(MESH_LOG_INFO, "rdma",
                    "peer %s: a bulk message over RDMA unacknowledged "
                    "for %llu ms: again over TCP",
                    id, (unsigned long long)s->cfg.bulk_rto_ms);
      }
      /* A refused sender is told at least once a tick, whatever happened. */
      bulk_pump(s, p, p->bulk_want_writable, true);
    }
  }
  tick_arm(s);
}

/* --- The handshake extension and TCP's peer events --- */

static int on_extension(void *arg, uint64_t conn_id, uint8_t *buf, size_t cap, size_t *len)
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
  count_paths(s);
  return 0;
}

static void peer_up(rstate *s, rpeer *p, const mesh_net_peer_event *ev)
{
  mesh_time_ms now = mesh_net_now(s->net);
  mesh_rdma_attr remote;
  if (ev->extension_len == 0) {
    slot_free(s, p); /* the peer offers no RDMA */
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
    slot_free(s, p);
    return;
  }
  /* A newer connection to the same peer replaces the older one's path. */
  rpeer *old = find_peer(s, &ev->peer);
  if (old != NULL && old != p)
    slot_free(s, old);
  p->have_peer = true;
  p->peer = ev->peer;
  p->epoch = ev->epoch;
  p->remote = remote;
  bulk_setup(s, p);
  rc = mesh_rdma_qp_connect(p->qp, &remote);
  if (rc != 0) {
    p->path = MESH_RDMA_PATH_UP; /* so that set_path counts and logs */
    set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, mesh_strerror(rc));
    return;
  }
  set_path(s, p, MESH_RDMA_PATH_PROBING, now, "");
  send_keepalive(s, p, now);
}

static void rdma_peer_event(void *state, const mesh_net_peer_event *ev)
{
  rstate *s = state;
  rpeer *p = find_conn(s, ev->conn_id);
  if (p == NULL)
    return;
  if (ev->up)
    peer_up(s, p, ev);
  else
    slot_free(s, p);
}

/* --- The ops --- */

static void rdma_fini(void *state)
{
  rstate *s = state;
  if (s == NULL)
    return;
  for (int i = 0; i < MAX_NETS; i++)
    if (nets[i].s == s) {
      nets[i].net = NULL;
      nets[i].s = NULL;
    }
  if (s->tick != NULL)
    event_free(s->tick);
  if (s->cq_ev != NULL)
    event_free(s->cq_ev);
  if (s->async_ev != NULL)
    event_free(s->async_ev);
  if (s->spin_ev != NULL)
    event_free(s->spin_ev);
  for (int i = 0; s->peers != NULL && i < s->cfg.dev.max_qps; i++)
    if (s->peers[i].used)
      slot_free(s, &s->peers[i]);
  mesh_rdma_dev_close(s->dev);
  sodium_memzero(&s->psk, sizeof s->psk);
  free(s->peers);
  free(s->wire);
  free(s->bulk_plain);
  free(s->bulk_tcp);
  free(s);
}

static int rdma_init(mesh_net *net, const mesh_net_options *opt, mesh_transport_counters *counters,
                     void **state)
{
  if (pending.dev == NULL || pending.cfg == NULL || opt->base == NULL)
    return -EINVAL; /* registered by mesh_rdma_attach only */
  rstate *s = calloc(1, sizeof *s);
  if (s == NULL)
    return -ENOMEM;
  s->net = net;
  s->c = counters;
  s->cfg = *pending.cfg;
  s->cfg.dev.device = NULL; /* borrowed strings are not kept */
  s->cfg.dev.addr = NULL;
  s->psk = opt->psk;
  s->frame_max = opt->frame_max;
  s->pending_ttl = 3 * opt->handshake_timeout_ms;
  s->dev = pending.dev;
  s->wire_cap = s->cfg.dev.buf_size;
  s->wire = malloc(s->wire_cap);
  s->bulk_plain = malloc(s->wire_cap);
  s->bulk_tcp = malloc(s->frame_max + BULK_TCP_HDR);
  s->peers = calloc((size_t)s->cfg.dev.max_qps, sizeof *s->peers);
  s->cq_ev = event_new(opt->base, mesh_rdma_dev_fd(s->dev), EV_READ | EV_PERSIST, on_cq, s);
  s->async_ev =
      event_new(opt->base, mesh_rdma_dev_async_fd(s->dev), EV_READ | EV_PERSIST, on_cq, s);
  s->tick = evtimer_new(opt->base, on_tick, s);
  s->spin_ev = evtimer_new(opt->base, on_spin, s);
  if (s->wire == NULL || s->bulk_plain == NULL || s->bulk_tcp == NULL || s->peers == NULL ||
      s->cq_ev == NULL || s->async_ev == NULL || s->tick == NULL || s->spin_ev == NULL ||
      event_add(s->cq_ev, NULL) != 0 || event_add(s->async_ev, NULL) != 0) {
    s->dev = NULL; /* the caller still owns it */
    rdma_fini(s);
    return -ENOMEM;
  }
  tick_arm(s);
  for (int i = 0; i < MAX_NETS; i++) {
    if (nets[i].net == NULL) {
      nets[i].net = net;
      nets[i].s = s;
      break;
    }
  }
  *state = s;
  return 0;
}

static bool rdma_can_send(void *state, const mesh_peer_id *peer, mesh_class cls)
{
  rstate *s = state;
  if (cls == MESH_CLASS_STREAM) {
    /* Bulk streams to a peer with an RDMA link, for the link's whole life
     * (one order for all of them; net/rdma_bulk.h). */
    rpeer *b = find_peer(s, peer);
    return s->cfg.bulk && b != NULL && b->bulk_ready;
  }
  if (cls != MESH_CLASS_DATAGRAM)
    return false;
  rpeer *p = find_peer(s, peer);
  if (p == NULL || p->path != MESH_RDMA_PATH_UP || p->qp == NULL || !mesh_rdma_qp_can_send(p->qp))
    return false;
  /* In doubt (a few keepalives missed, not yet dead_ms), datagrams take TCP
   * without a fallback: the membership protocol must not lose probes to a
   * path that may be dead while the silence bound runs. */
  return mesh_net_now(s->net) - p->heard_us <= 3 * s->cfg.keepalive_ms;
}

static int rdma_send(void *state, const mesh_peer_id *peer, mesh_channel ch, mesh_class cls,
                     const uint8_t *buf, size_t len)
{
  rstate *s = state;
  if (cls == MESH_CLASS_STREAM)
    return bulk_send(s, peer, ch, buf, len);
  rpeer *p = find_peer(s, peer);
  if (p == NULL || p->path != MESH_RDMA_PATH_UP || p->qp == NULL || cls != MESH_CLASS_DATAGRAM)
    return -ENOTCONN; /* can_send said no: the net does not call this then */
  if (len > s->frame_max || mesh_frame_wire_size(len) > mesh_rdma_qp_max_frame(p->qp)) {
    s->c->dropped[MESH_DROP_OVERSIZE]++;
    return -EMSGSIZE;
  }
  mesh_frame f = {.type = MESH_FRAME_DATA,
                  .channel = (uint8_t)ch,
                  .cls = MESH_CLASS_DATAGRAM,
                  .flags = MESH_FRAME_FIRST | MESH_FRAME_LAST,
                  .total = (uint32_t)len,
                  .payload = buf,
                  .len = len};
  int rc = send_frame(s, p, &f);
  if (rc == -ENOBUFS) {
    s->c->dropped[MESH_DROP_QUEUE_FULL]++;
    return -ENOBUFS;
  }
  if (rc != 0) {
    set_path(s, p, MESH_RDMA_PATH_FALLBACK, mesh_net_now(s->net), mesh_strerror(rc));
    s->c->dropped[MESH_DROP_NO_ROUTE]++;
    return -ENOTCONN;
  }
  s->c->messages_sent[MESH_CLASS_DATAGRAM]++;
  spin_kick(s);
  return 0;
}

static int rdma_disconnect(void *state, const mesh_peer_id *peer)
{
  rstate *s = state;
  rpeer *p = find_peer(s, peer);
  if (p == NULL)
    return -ENOTCONN;
  slot_free(s, p);
  return 0;
}

const mesh_transport_ops mesh_rdma_transport = {
    .scheme = "rdma",
    .role = MESH_TRANSPORT_PATH,
    .init = rdma_init,
    .fini = rdma_fini,
    .listen = NULL,
    .dial = NULL,
    .can_send = rdma_can_send,
    .send = rdma_send,
    .disconnect = rdma_disconnect,
    .peer_event = rdma_peer_event,
    .bulk_seq = rdma_bulk_seq,
    .writable = rdma_writable,
};

int mesh_rdma_attach(mesh_net *net, const mesh_rdma_config *cfg, char *why, size_t whylen)
{
  mesh_rdma_config c;
  if (cfg != NULL)
    c = *cfg;
  else
    mesh_rdma_config_default(&c);
  if (c.keepalive_ms == 0 || c.dead_ms <= c.keepalive_ms || c.backoff_min_ms == 0 ||
      c.backoff_max_ms < c.backoff_min_ms || c.poll_us > 1000000 || c.poll_budget_ms > 1000) {
    snprintf(why, whylen, "RDMA timings out of range");
    return -EINVAL;
  }
  mesh_rdma_dev *dev;
  int rc = mesh_rdma_dev_open(&c.dev, &dev, why, whylen);
  if (rc != 0) {
    if (!c.required)
      LOG_INFO("rdma", "RDMA not used (%s): datagrams go over TCP", why);
    return rc;
  }
  pending.dev = dev;
  pending.cfg = &c;
  rc = mesh_net_register(net, &mesh_rdma_transport);
  pending.dev = NULL;
  pending.cfg = NULL;
  if (rc != 0) {
    mesh_rdma_dev_close(dev);
    snprintf(why, whylen, "cannot register the RDMA transport: %s", mesh_strerror(rc));
    if (!c.required)
      LOG_INFO("rdma", "RDMA not used (%s): datagrams go over TCP", why);
    return rc;
  }
  rstate *s = NULL;
  for (int i = 0; i < MAX_NETS; i++)
    if (nets[i].net == net)
      s = nets[i].s;
  if (s != NULL)
    mesh_net_set_extension(net, on_extension, s);
  LOG_INFO("rdma", "RDMA on %s: datagrams to peers with a working queue pair (at most %d)",
           mesh_rdma_dev_name(dev), c.dev.max_qps);
  return 0;
}

int mesh_rdma_stats_of(const mesh_net *net, mesh_rdma_stats *out)
{
  for (int i = 0; i < MAX_NETS; i++) {
    if (nets[i].net == net && nets[i].s != NULL) {
      *out = nets[i].s->stats;
      return 0;
    }
  }
  return -ENOENT;
}

static rstate *state_of(const mesh_net *net)
{
  for (int i = 0; i < MAX_NETS; i++)
    if (nets[i].net == net && nets[i].s != NULL)
      return nets[i].s;
  return NULL;
}

int mesh_rdma_reset_peer(mesh_net *net, const mesh_peer_id *peer)
{
  rstate *s = state_of(net);
  rpeer *p = s != NULL ? find_peer(s, peer) : NULL;
  if (p == NULL || p->qp == NULL)
    return -ENOENT;
  mesh_time_ms now = mesh_net_now(s->net);
  s->stats.resets++;
  mesh_rdma_qp_free(p->qp);
  p->qp = NULL;
  p->repoint = false;
  p->ever_heard = false; /* what we heard came to the queue pair now gone */
  p->backoff = s->cfg.backoff_min_ms;
  if (p->path == MESH_RDMA_PATH_FALLBACK) {
    p->retry_at = now + p->backoff; /* already on TCP: just retry later */
    count_paths(s);
  } else {
    set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, "queue pair destroyed on request");
  }
  return 0;
}

mesh_rdma_path mesh_rdma_peer_path(const mesh_net *net, const mesh_peer_id *peer)
{
  for (int i = 0; i < MAX_NETS; i++) {
    if (nets[i].net == net && nets[i].s != NULL) {
      rpeer *p = find_peer(nets[i].s, peer);
      return p != NULL ? p->path : MESH_RDMA_PATH_NONE;
    }
  }
  return MESH_RDMA_PATH_NONE;
}
