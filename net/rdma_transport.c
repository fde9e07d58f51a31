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
 * A keepalive frame (net/frame.h type keepalive) carries one byte: bit 0 set
 * when the sender has heard the receiver over RDMA within dead_ms. A path
 * is UP only while such keepalives arrive, so a path broken in either
 * direction falls back on both sides.
 *
 * Everything runs on the loop thread; nothing blocks.
 */
#include "net/rdma.h"

#include "net/multiaddr.h"
#include "src/base/config.h"
#include "src/base/err.h"
#include "src/base/log.h"

#include <errno.h>
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KA_HEAR 1
#define MAX_NETS 8

typedef struct rpeer {
  bool used;
  uint64_t conn_id; /* the TCP connection whose handshake offered our queue pair */
  bool have_peer;   /* its up event came: peer, epoch and link are set */
  mesh_peer_id peer;
  uint64_t epoch;
  mesh_rdma_qp *qp;
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
  rpeer *peers;  /* cfg.dev.max_qps slots */
  uint8_t *wire; /* sealing buffer: one frame */
  size_t wire_cap;
} rstate;

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
    LOG_INFO("rdma", "peer %s: datagrams over RDMA (%s)", id, mesh_rdma_dev_name(s->dev));
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
  uint8_t flags = p->ever_heard && now - p->heard <= s->cfg.dead_ms ? KA_HEAR : 0;
  mesh_frame f = {.type = MESH_FRAME_KEEPALIVE, .payload = &flags, .len = 1};
  p->ka_sent = now;
  if (send_frame(s, p, &f) == 0) {
    s->stats.keepalives_sent++;
    s->c->keepalives_sent++;
  }
}

/* --- Completions --- */

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
    if (f.len >= 1 && (f.payload[0] & KA_HEAR) != 0) {
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
  /* Only single-frame datagrams travel over RDMA. */
  if (f.type != MESH_FRAME_DATA || f.cls != MESH_CLASS_DATAGRAM || f.channel < 1 ||
      f.channel > MESH_CH_MAX || f.flags != (MESH_FRAME_FIRST | MESH_FRAME_LAST) ||
      f.total != f.len) {
    s->c->dropped[MESH_DROP_MALFORMED]++;
    return;
  }
  s->c->messages_received[MESH_CLASS_DATAGRAM]++;
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

static void on_cq(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  (void)what;
  rstate *s = arg;
  mesh_rdma_handler h = {.recv = on_recv, .error = on_qp_error, .arg = s};
  int rc = mesh_rdma_dev_poll(s->dev, &h);
  if (rc >= 0 || s->dev_failed)
    return;
  /* The device itself is gone (its link deleted, the driver unloaded): stop
   * watching its fds, which would stay readable, and put every peer on TCP
   * for good. */
  s->dev_failed = true;
  event_del(s->cq_ev);
  event_del(s->async_ev);
  LOG_WARN("rdma", "RDMA device %s failed (%s): every peer on TCP from now on",
           mesh_rdma_dev_name(s->dev), mesh_strerror(rc));
  mesh_time_ms now = mesh_net_now(s->net);
  for (int i = 0; i < s->cfg.dev.max_qps; i++) {
    rpeer *p = &s->peers[i];
    if (p->used && p->have_peer && p->path != MESH_RDMA_PATH_FALLBACK)
      set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, "device failed");
  }
}

/* --- Timers: keepalives, silence, retries, expiry --- */

static void tick_arm(rstate *s)
{
  mesh_time_ms period = s->cfg.keepalive_ms / 2 > 0 ? s->cfg.keepalive_ms / 2 : 1;
  struct timeval tv = {.tv_sec = (time_t)(period / 1000),
                       .tv_usec = (suseconds_t)((period % 1000) * 1000)};
  evtimer_add(s->tick, &tv);
}

static void retry(rstate *s, rpeer *p, mesh_time_ms now)
{
  s->stats.retries++;
  int rc = mesh_rdma_qp_reset(p->qp);
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
  for (int i = 0; s->peers != NULL && i < s->cfg.dev.max_qps; i++)
    if (s->peers[i].used)
      slot_free(s, &s->peers[i]);
  mesh_rdma_dev_close(s->dev);
  sodium_memzero(&s->psk, sizeof s->psk);
  free(s->peers);
  free(s->wire);
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
  s->peers = calloc((size_t)s->cfg.dev.max_qps, sizeof *s->peers);
  s->cq_ev = event_new(opt->base, mesh_rdma_dev_fd(s->dev), EV_READ | EV_PERSIST, on_cq, s);
  s->async_ev =
      event_new(opt->base, mesh_rdma_dev_async_fd(s->dev), EV_READ | EV_PERSIST, on_cq, s);
  s->tick = evtimer_new(opt->base, on_tick, s);
  if (s->wire == NULL || s->peers == NULL || s->cq_ev == NULL || s->async_ev == NULL ||
      s->tick == NULL || event_add(s->cq_ev, NULL) != 0 || event_add(s->async_ev, NULL) != 0) {
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
  if (cls != MESH_CLASS_DATAGRAM)
    return false;
  rpeer *p = find_peer(s, peer);
  if (p == NULL || p->path != MESH_RDMA_PATH_UP || !mesh_rdma_qp_can_send(p->qp))
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
  rpeer *p = find_peer(s, peer);
  if (p == NULL || p->path != MESH_RDMA_PATH_UP || cls != MESH_CLASS_DATAGRAM)
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
    .init = rdma_init,
    .fini = rdma_fini,
    .listen = NULL,
    .dial = NULL,
    .can_send = rdma_can_send,
    .send = rdma_send,
    .disconnect = rdma_disconnect,
    .peer_event = rdma_peer_event,
};

int mesh_rdma_attach(mesh_net *net, const mesh_rdma_config *cfg, char *why, size_t whylen)
{
  mesh_rdma_config c;
  if (cfg != NULL)
    c = *cfg;
  else
    mesh_rdma_config_default(&c);
  if (c.keepalive_ms == 0 || c.dead_ms <= c.keepalive_ms || c.backoff_min_ms == 0 ||
      c.backoff_max_ms < c.backoff_min_ms) {
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

int mesh_rdma_attach_config(mesh_net *net, const struct mesh_config *cfg, char *err, size_t errlen)
{
  if (cfg->transport == MESH_TRANSPORT_TCP) {
    LOG_INFO("rdma", "RDMA off (--transport tcp): datagrams go over TCP");
    return 0;
  }
  mesh_rdma_config c;
  mesh_rdma_config_default(&c);
  c.required = cfg->transport == MESH_TRANSPORT_RDMA;
  c.dev.device = cfg->rdma_device;
  /* The GID to use is the IPv4-mapped one of the address we listen on;
   * listening on every address leaves the choice to the device. */
  mesh_multiaddr la;
  if (cfg->listen != NULL && mesh_multiaddr_parse(cfg->listen, &la, NULL) == 0 &&
      la.kind == MESH_MA_IP4 && strcmp(la.host, "0.0.0.0") != 0)
    c.dev.addr = la.host;
  char why[256] = "";
  int rc = mesh_rdma_attach(net, &c, why, sizeof why);
  if (rc != 0 && c.required) {
    snprintf(err, errlen, "--transport rdma: %s", why);
    return rc;
  }
  return 0;
}
