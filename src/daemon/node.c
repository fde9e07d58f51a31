/* The node: home lock, identity, epoch, swarm key and the peer network of one meshd. */
#include "src/daemon/node.h"
#include "src/daemon/membership.h"

#include "net/frame_cipher.h"
#include "net/frame_speed.h"
#include "net/rdma.h"
#include "net/udp.h"
#include "src/base/config.h"
#include "src/base/err.h"
#include "src/base/fileperm.h"
#include "src/base/log.h"
#include "src/base/pool.h"
#include "src/identity/epoch.h"
#include "src/identity/homelock.h"

#include <errno.h>
#include <sodium.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct mesh_node {
  const mesh_config *cfg; /* borrowed */
  mesh_home_lock lock;    /* one daemon per home, held for the node's life */
  mesh_loop *loop;
  mesh_pool *pool; /* workers for disk, hashing and store work (src/base/pool.h) */
  mesh_identity identity;
  mesh_psk psk;
  uint64_t epoch; /* the current epoch: advanced durably at start, renewed in place */
  mesh_net *net;
  struct {
    mesh_node_message_fn fn;
    void *arg;
  } handlers[MESH_CH_MAX + 1]; /* indexed by channel */
  mesh_node_peer_fn peer_fn;
  void *peer_arg;
  mesh_loop_fn stop_fn; /* replaces the plain stop on SIGINT/SIGTERM */
  void *stop_arg;
  uint64_t unhandled;           /* messages on a channel nobody handles */
  const mesh_node_hooks *hooks; /* the identity in production (node_no_hooks) */
};

static void node_on_message(void *arg, const mesh_peer_id *from, uint64_t epoch, mesh_channel ch,
                            mesh_class cls, const uint8_t *buf, size_t len)
{
  mesh_node *n = arg;
  if ((int)ch < 1 || (int)ch > MESH_CH_MAX || n->handlers[ch].fn == NULL) {
    n->unhandled++;
    return;
  }
  n->handlers[ch].fn(n->handlers[ch].arg, from, epoch, cls, buf, len);
}

static void node_on_peer(void *arg, const mesh_net_peer_event *ev)
{
  mesh_node *n = arg;
  char id[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(&ev->peer, id, sizeof id);
  if (ev->up && ev->replaced)
    LOG_DEBUG("node", "peer %s: connection replaced (%s)", id,
              ev->outbound ? "dialled" : "accepted");
  else if (ev->up)
    LOG_INFO("node", "peer %s up (epoch %llu, %s, %s)", id, (unsigned long long)ev->epoch,
             ev->scheme, ev->outbound ? "dialled" : "accepted");
  else
    LOG_INFO("node", "peer %s down (%s)", id,
             ev->reason == 0 ? "closed" : mesh_strerror(ev->reason));
  if (n->peer_fn != NULL)
    n->peer_fn(n->peer_arg, ev);
}

static void node_on_stop(void *arg)
{
  mesh_node *n = arg;
  if (n->stop_fn != NULL) {
    n->stop_fn(n->stop_arg);
    return;
  }
  LOG_INFO("node", "stopping");
  mesh_loop_stop(n->loop);
}

/*
 * The frame ciphers this node offers (--frame-cipher). auto measures both
 * on 64 KiB frames first and offers the faster one first; the log line
 * gives the figures, so that the choice explains itself.
 */
static void node_frame_offer(const mesh_config *cfg, mesh_frame_offer *offer)
{
  mesh_frame_cipher_pref pref = MESH_FRAME_PREF_AUTO;
  if (cfg->frame_cipher == MESH_FRAME_CIPHER_AES)
    pref = MESH_FRAME_PREF_AES_256_GCM;
  else if (cfg->frame_cipher == MESH_FRAME_CIPHER_CHACHA)
    pref = MESH_FRAME_PREF_CHACHA20_POLY1305;
  char text[64];
  if (pref != MESH_FRAME_PREF_AUTO) {
    mesh_frame_offer_make(offer, pref, false);
    mesh_frame_offer_text(offer, text, sizeof text);
    MESH_LOG(MESH_LOG_INFO, "node", "frame cipher: %s only (--frame-cipher)", text);
    return;
  }
  mesh_frame_speed sp;
  int rc = mesh_frame_speed_measure(MESH_FRAME_SPEED_FRAME, MESH_FRAME_SPEED_BYTES,
                                    MESH_FRAME_SPEED_ROUNDS, &sp);
  if (rc != 0) {
    mesh_frame_offer_default(offer);
    MESH_LOG(MESH_LOG_WARN, "node", "frame cipher self-test: %s; offering the default",
             mesh_strerror(rc));
    return;
  }
  mesh_frame_offer_make(offer, pref, mesh_frame_speed_aes_faster(&sp));
  mesh_frame_offer_text(offer, text, sizeof text);
  MESH_LOG(MESH_LOG_INFO, "node",
           "frame cipher self-test (64 KiB frames, sealed and opened per CPU second): "
           "aes-256-gcm %.2f GB/s, chacha20-poly1305 %.2f GB/s; offering %s",
           sp.gbps[MESH_FRAME_AES_256_GCM], sp.gbps[MESH_FRAME_CHACHA20_POLY1305], text);
}

/* The hooks of a node nobody hooked: every one changes nothing. */
static void no_rdma_config(void *arg, struct mesh_rdma_config *c)
{
  (void)arg;
  (void)c;
}

static int no_net_ready(void *arg, mesh_net *net, mesh_loop *loop, size_t frame_max, char *err,
                        size_t errlen)
{
  (void)arg;
  (void)net;
  (void)loop;
  (void)frame_max;
  (void)err;
  (void)errlen;
  return 0;
}

static void no_reload(void *arg, const char *home)
{
  (void)arg;
  (void)home;
}

static const mesh_node_hooks node_no_hooks = {
    .rdma_config = no_rdma_config, .net_ready = no_net_ready, .reload = no_reload};

static void node_on_reload(void *arg)
{
  mesh_node *n = arg;
  LOG_INFO("node", "reload requested");
  n->hooks->reload(n->hooks->arg, n->cfg->home);
}

/* RDMA as the configuration asks: off (--transport tcp), tried with TCP as
 * the fallback (auto), or required (rdma: failing to attach stops meshd). */
static int node_attach_rdma(mesh_node *n, const mesh_config *cfg, char *err, size_t errlen)
{
  if (cfg->transport == MESH_TRANSPORT_TCP) {
    LOG_INFO("rdma", "RDMA off (--transport tcp): datagrams go over TCP");
    return 0;
  }
  mesh_rdma_config c;
  mesh_rdma_config_default(&c);
  c.required = cfg->transport == MESH_TRANSPORT_RDMA;
  c.dev.device = cfg->rdma_device;
  c.poll_us = (uint32_t)(cfg->rdma_poll_ms * 1000);
  c.poll_budget_ms = (uint32_t)cfg->rdma_poll_budget_ms;
  c.bulk = cfg->rdma_bulk != 0;
  n->hooks->rdma_config(n->hooks->arg, &c);
  /* The GID to use is the IPv4-mapped one of the address we listen on;
   * listening on every address leaves the choice to the device. */
  mesh_multiaddr la;
  if (cfg->listen != NULL && mesh_multiaddr_parse(cfg->listen, &la, NULL) == 0 &&
      la.kind == MESH_MA_IP4 && strcmp(la.host, "0.0.0.0") != 0)
    c.dev.addr = la.host;
  char why[256] = "";
  int rc = mesh_rdma_attach(n->net, &c, why, sizeof why);
  if (rc != 0 && c.required) {
    snprintf(err, errlen, "--transport rdma: %s", why);
    return rc;
  }
  return 0;
}

static mesh_time_ms node_now(void *arg)
{
  return mesh_loop_now(arg);
}

static int path_join(char *buf, size_t len, const char *dir, const char *name)
{
  int w = snprintf(buf, len, "%s/%s", dir, name);
  return (w < 0 || (size_t)w >= len) ? -ENAMETOOLONG : 0;
}

int mesh_node_new(const mesh_config *cfg, const mesh_node_hooks *hooks, mesh_node **out, char *err,
                  size_t errlen)
{
  char path[PATH_MAX];
  int rc;
  if (cfg->home == NULL) {
    snprintf(err, errlen, "no home directory (--home)");
    return -EINVAL;
  }
  /* A first start makes the home (0700: it holds the identity key); one
   * that another user owns or may write is refused with the fix. */
  if ((rc = mesh_home_prepare(cfg->home, err, errlen)) != 0)
    return rc;
  mesh_node *n = calloc(1, sizeof *n);
  if (n == NULL)
    return -ENOMEM;
  n->cfg = cfg;
  n->hooks = hooks != NULL ? hooks : &node_no_hooks;
  n->lock.fd = -1;

  /* Before anything in the home is touched, the epoch above all: a second
   * daemon on this home would take an epoch and then run beside us. */
  if ((rc = mesh_home_lock_take(cfg->home, &n->lock, err, errlen)) != 0)
    goto fail;

  if ((rc = path_join(path, sizeof path, cfg->home, "identity.key")) != 0 ||
      (rc = mesh_identity_load_or_create(path, &n->identity, err, errlen)) != 0)
    goto fail;

  if (cfg->swarm_key != NULL)
    snprintf(path, sizeof path, "%s", cfg->swarm_key);
  else if ((rc = path_join(path, sizeof path, cfg->home, "swarm.key")) != 0)
    goto fail;
  rc = mesh_psk_load(path, &n->psk, err, errlen);
  if (rc == -ENOENT) {
    snprintf(err, errlen,
             "no swarm key at %s: run `meshd keygen-psk` on one node and copy the file to "
             "every node of the cluster",
             path);
    goto fail;
  }
  if (rc != 0)
    goto fail;

  /* The epoch must be durable before this node says anything to anyone. */
  if ((rc = mesh_epoch_advance(cfg->home, &n->epoch, err, errlen)) != 0)
    goto fail;

  if ((rc = mesh_loop_new(&n->loop)) != 0) {
    snprintf(err, errlen, "event loop: %s", mesh_strerror(rc));
    goto fail;
  }
  unsigned threads = cfg->io_threads > 0 ? (unsigned)cfg->io_threads : mesh_pool_default_threads();
  if ((rc = mesh_pool_new(mesh_loop_base(n->loop), threads, &n->pool)) != 0) {
    snprintf(err, errlen, "work pool of %u threads: %s", threads, mesh_strerror(rc));
    goto fail;
  }
  /* How late the loop runs is measured for the node's whole life
   * (meshd_loop_lag_seconds; membership feeds it to Lifeguard). */
  if ((rc = mesh_loop_lag_start(n->loop, MESH_LOOP_LAG_PERIOD_MS)) != 0) {
    snprintf(err, errlen, "loop lag timer: %s", mesh_strerror(rc));
    goto fail;
  }
  if ((rc = mesh_loop_handle_signals(n->loop, node_on_stop, node_on_reload, n)) != 0) {
    snprintf(err, errlen, "signals: %s", mesh_strerror(rc));
    goto fail;
  }

  mesh_net_options opt;
  mesh_net_options_default(&opt);
  opt.identity = &n->identity;
  opt.epoch = n->epoch;
  opt.psk = n->psk;
  opt.base = mesh_loop_base(n->loop);
  opt.now = node_now;
  opt.now_arg = n->loop;
  if (cfg->max_connections > 0)
    opt.max_connections = cfg->max_connections;
  /* Slots for members (net/transport.h); the daemon tells the net who the
   * members are once membership exists (src/daemon/daemon.c). */
  if (cfg->member_reserve >= 0 && cfg->member_reserve <= 90)
    opt.member_reserve_pct = cfg->member_reserve;
  if (cfg->max_connections_per_source > 0)
    opt.max_per_source = cfg->max_connections_per_source;
  if (cfg->unjoined_grace_ms > 0)
    opt.unjoined_grace_ms = cfg->unjoined_grace_ms;
  if (cfg->frame_max > 0)
    opt.frame_max = (size_t)cfg->frame_max;
  if (cfg->handshake_timeout_ms > 0)
    opt.handshake_timeout_ms = cfg->handshake_timeout_ms;
  node_frame_offer(cfg, &opt.frame_offer);
  /* Keepalives as rare as the membership timing allows (net/swim.h,
   * mesh_swim_link_timing); a timing membership refuses keeps the
   * defaults, and membership then says what is wrong with it. */
  mesh_time_ms keepalive_ms, idle_ms;
  if (mesh_membership_link_timing(cfg, &keepalive_ms, &idle_ms) == 0) {
    opt.keepalive_ms = keepalive_ms;
    opt.idle_timeout_ms = idle_ms;
  }
  if ((rc = mesh_net_new(&opt, &n->net)) != 0) {
    snprintf(err, errlen, "network: %s", mesh_strerror(rc));
    goto fail;
  }
  mesh_net_on_message(n->net, node_on_message, n);
  mesh_net_on_peer(n->net, node_on_peer, n);
  /* UDP for datagrams where RDMA does not carry them (--udp, net/udp.h);
   * registered before RDMA, so RDMA is tried first. */
  if (cfg->udp == MESH_UDP_ON) {
    mesh_udp_options uo;
    mesh_udp_options_default(&uo);
    if (cfg->udp_payload_max > 0)
      uo.payload_max = (size_t)cfg->udp_payload_max;
    if ((rc = mesh_udp_attach(n->net, &uo)) != 0) {
      snprintf(err, errlen, "UDP datagrams: %s", mesh_strerror(rc));
      goto fail;
    }
  }
  /* RDMA for datagrams where it works (--transport, net/rdma.h). */
  if ((rc = node_attach_rdma(n, cfg, err, errlen)) != 0)
    goto fail;
  /* Around every transport, those registered after this one too. */
  rc = n->hooks->net_ready(n->hooks->arg, n->net, n->loop, opt.frame_max, err, errlen);
  if (rc != 0)
    goto fail;

  if (cfg->listen != NULL && cfg->listen[0] != '\0') {
    mesh_multiaddr bound;
    if ((rc = mesh_net_listen(n->net, cfg->listen, &bound)) != 0) {
      snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen, mesh_strerror(rc));
      goto fail;
    }
    char text[MESH_MULTIADDR_TEXT_MAX], id[MESH_PEER_ID_TEXT_MAX];
    mesh_peer_id_to_text(&n->identity.id, id, sizeof id);
    if (mesh_multiaddr_format(&bound, text, sizeof text) == 0)
      LOG_INFO("node", "listening on %s/p2p/%s (epoch %llu)", text, id,
               (unsigned long long)n->epoch);
  }
  /* Joining (dialling cfg->join) is membership's: it dials the seeds and
   * retries until one answers (src/daemon/membership.c). */
  *out = n;
  return 0;

fail:
  mesh_node_free(n);
  return rc;
}

int mesh_node_run_loop(mesh_node *n)
{
  return mesh_loop_run(n->loop);
}

void mesh_node_stop(mesh_node *n)
{
  mesh_loop_stop(n->loop);
}

void mesh_node_free(mesh_node *n)
{
  if (n == NULL)
    return;
  mesh_net_free(n->net);
  /* The parts built on the node flushed their own work when freed; the
   * pool's free drains whatever is left and joins the workers. */
  mesh_pool_free(n->pool);
  mesh_loop_free(n->loop);
  /* Secrets do not outlive the node in freed memory. */
  sodium_memzero(&n->identity, sizeof n->identity);
  sodium_memzero(&n->psk, sizeof n->psk);
  /* Last: the home is ours until everything that writes to it is closed. */
  mesh_home_lock_release(&n->lock);
  free(n);
}

int mesh_node_on_message(mesh_node *n, mesh_channel ch, mesh_node_message_fn fn, void *arg)
{
  if ((int)ch < 1 || (int)ch > MESH_CH_MAX)
    return -EINVAL;
  n->handlers[ch].fn = fn;
  n->handlers[ch].arg = arg;
  return 0;
}

void mesh_node_on_peer(mesh_node *n, mesh_node_peer_fn fn, void *arg)
{
  n->peer_fn = fn;
  n->peer_arg = arg;
}

void mesh_node_on_stop(mesh_node *n, mesh_loop_fn fn, void *arg)
{
  n->stop_fn = fn;
  n->stop_arg = arg;
}

mesh_loop *mesh_node_loop(mesh_node *n)
{
  return n->loop;
}

mesh_pool *mesh_node_pool(mesh_node *n)
{
  return n->pool;
}

mesh_net *mesh_node_net(mesh_node *n)
{
  return n->net;
}

const mesh_identity *mesh_node_identity(const mesh_node *n)
{
  return &n->identity;
}

uint64_t mesh_node_epoch(const mesh_node *n)
{
  return n->epoch;
}

int mesh_node_set_epoch(mesh_node *n, uint64_t epoch)
{
  if (epoch <= n->epoch)
    return -ESTALE;
  int rc = mesh_net_set_epoch(n->net, epoch);
  if (rc != 0)
    return rc;
  n->epoch = epoch;
  return 0;
}
