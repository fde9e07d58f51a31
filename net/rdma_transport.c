/*
 * The RDMA transport (net/rdma.h, net/transport.h): datagrams to peers whose
 * UC queue pair works; TCP carries everything else.
 *
 * It never listens or dials: it rides on TCP's handshake. When a handshake
 * starts, the extension hook makes a queue pair for that connection (while
 * fewer than the cap are open) and offers its attributes; when TCP raises
 * the peer's up event with the peer's attributes, the queue pair goes to
 * RTS and the path is probed.
 *
 * The transport is in four files sharing net/rdma_internal.h: this one (the
 * ops table, attach and the configuration), rdma_path.c (a peer's path and
 * its keepalives), rdma_poll.c (completions and busy-polling) and
 * rdma_bulk_link.c (bulk streams over the link).
 *
 * Everything runs on the loop thread; nothing blocks.
 */
#include "net/rdma_internal.h"

#include "net/multiaddr.h"
#include "src/base/err.h"
#include "src/base/log.h"

#include <errno.h>
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NETS 8

/* The bulk_lose hook of a configuration without one: every frame is posted. */
static bool keep_every_frame(void *arg)
{
  (void)arg;
  return false;
}

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
      rdma_slot_free(s, &s->peers[i]);
  mesh_rdma_dev_close(s->dev);
  sodium_memzero(&s->psk, sizeof s->psk);
  free(s->peers);
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
  if (s->cfg.bulk_lose == NULL)
    s->cfg.bulk_lose = keep_every_frame;
  s->psk = opt->psk;
  s->frame_max = opt->frame_max;
  s->pending_ttl = 3 * opt->handshake_timeout_ms;
  s->dev = pending.dev;
  s->bulk_tcp = malloc(s->frame_max + BULK_TCP_HDR);
  s->peers = calloc((size_t)s->cfg.dev.max_qps, sizeof *s->peers);
  s->cq_ev = event_new(opt->base, mesh_rdma_dev_fd(s->dev), EV_READ | EV_PERSIST, rdma_on_cq, s);
  s->async_ev =
      event_new(opt->base, mesh_rdma_dev_async_fd(s->dev), EV_READ | EV_PERSIST, rdma_on_cq, s);
  s->tick = evtimer_new(opt->base, rdma_on_tick, s);
  s->spin_ev = evtimer_new(opt->base, rdma_on_spin, s);
  if (s->bulk_tcp == NULL || s->peers == NULL || s->cq_ev == NULL || s->async_ev == NULL ||
      s->tick == NULL || s->spin_ev == NULL || event_add(s->cq_ev, NULL) != 0 ||
      event_add(s->async_ev, NULL) != 0) {
    s->dev = NULL; /* the caller still owns it */
    rdma_fini(s);
    return -ENOMEM;
  }
  rdma_tick_arm(s);
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
    rpeer *b = rdma_find_peer(s, peer);
    return s->cfg.bulk && b != NULL && b->bulk_ready;
  }
  if (cls != MESH_CLASS_DATAGRAM)
    return false;
  rpeer *p = rdma_find_peer(s, peer);
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
    return rdma_bulk_send(s, peer, ch, buf, len);
  rpeer *p = rdma_find_peer(s, peer);
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
  int rc = rdma_send_frame(s, p, &f);
  if (rc == -ENOBUFS) {
    s->c->dropped[MESH_DROP_QUEUE_FULL]++;
    return -ENOBUFS;
  }
  if (rc != 0) {
    rdma_set_path(s, p, MESH_RDMA_PATH_FALLBACK, mesh_net_now(s->net), mesh_strerror(rc));
    s->c->dropped[MESH_DROP_NO_ROUTE]++;
    return -ENOTCONN;
  }
  s->c->messages_sent[MESH_CLASS_DATAGRAM]++;
  rdma_spin_kick(s);
  return 0;
}

static int rdma_disconnect(void *state, const mesh_peer_id *peer)
{
  rstate *s = state;
  rpeer *p = rdma_find_peer(s, peer);
  if (p == NULL)
    return -ENOTCONN;
  rdma_slot_free(s, p);
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
    mesh_net_set_extension(net, rdma_on_extension, s);
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
  rpeer *p = s != NULL ? rdma_find_peer(s, peer) : NULL;
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
    rdma_count_paths(s);
  } else {
    rdma_set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, "queue pair destroyed on request");
  }
  return 0;
}

mesh_rdma_path mesh_rdma_peer_path(const mesh_net *net, const mesh_peer_id *peer)
{
  for (int i = 0; i < MAX_NETS; i++) {
    if (nets[i].net == net && nets[i].s != NULL) {
      rpeer *p = rdma_find_peer(nets[i].s, peer);
      return p != NULL ? p->path : MESH_RDMA_PATH_NONE;
    }
  }
  return MESH_RDMA_PATH_NONE;
}
