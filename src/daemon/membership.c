/* Runs the SWIM core over the node's network and timers, and hands view changes on. */
#include "src/daemon/membership.h"

#include "net/multiaddr.h"
#include "src/daemon/connections.h"
#include "src/daemon/sendhold.h"
#include "src/base/config.h"
#include "src/base/err.h"
#include "src/base/log.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct subscriber {
  mesh_membership_event_fn ev;
  mesh_membership_app_fn app;
  void *arg;
} subscriber;

struct mesh_membership {
  mesh_node *node;             /* borrowed */
  const mesh_config *cfg;      /* borrowed */
  mesh_net *net;               /* the node's */
  mesh_loop *loop;             /* the node's */
  mesh_swim *swim;             /* the core */
  mesh_rng rng;                /* the core's random source */
  mesh_swim_outbox out;        /* drained after every input */
  mesh_timer *timer;           /* the core's one timer */
  uint64_t timer_token;        /* token of the armed timer */
  mesh_connections *conns;     /* who to connect to */
  mesh_sendhold hold;          /* sends waiting for their peer's connection */
  subscriber subs[MESH_MEMBERSHIP_MAX_SUBSCRIBERS];
  size_t n_subs;
  char addrs[MESH_SWIM_MAX_ADDRS][MESH_SWIM_MAX_ADDR_LEN]; /* advertised */
  const char *addr_ptrs[MESH_SWIM_MAX_ADDRS];
  size_t n_addrs;
  char host[MESH_SWIM_MAX_HOST + 1];
  bool leaving;                   /* a leave is under way */
  mesh_time_ms leave_deadline;    /* give up waiting for broadcasts */
  mesh_timer *leave_timer;        /* polls the broadcasts of a leave */
  mesh_membership_done_fn leave_done;
  void *leave_arg;
  mesh_membership_epoch_over_fn over_fn; /* told when this node's epoch is over */
  void *over_arg;
  mesh_membership_peer_up_fn peer_up_fn; /* told of every finished handshake */
  void *peer_up_arg;
  mesh_membership_view_gap_fn view_gap_fn; /* told when view events were lost */
  void *view_gap_arg;
  mesh_membership_counters counters;
};

static void log_event(const mesh_view_event *ev)
{
  char id[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(&ev->peer, id, sizeof id);
  if (ev->type == MESH_VIEW_ANSWERED)
    LOG_DEBUG("membership", "answered: %s (epoch %llu)", id, (unsigned long long)ev->epoch);
  else if (ev->type == MESH_VIEW_EPOCH_CHANGED)
    LOG_INFO("membership", "%s: %s epoch %llu -> %llu", mesh_view_event_name(ev->type), id,
             (unsigned long long)ev->old_epoch, (unsigned long long)ev->epoch);
  else
    LOG_INFO("membership", "%s: %s (epoch %llu)", mesh_view_event_name(ev->type), id,
             (unsigned long long)ev->epoch);
}

/* The connection manager follows every member's record: in the view,
 * departed (still redialled: it may come back), or reaped (forgotten, and
 * what the transport holds for it closed). */
static void tell_connections(mesh_membership *m, const mesh_view_event *ev)
{
  if (ev->type == MESH_VIEW_ANSWERED)
    return; /* no change of place in the view */
  if (ev->type == MESH_VIEW_REAPED) {
    mesh_connections_member(m->conns, &ev->peer, MESH_CM_GONE, NULL, 0);
    mesh_net_disconnect(m->net, &ev->peer);
    return;
  }
  mesh_cm_member_state st =
      ev->type == MESH_VIEW_DEAD || ev->type == MESH_VIEW_LEFT ? MESH_CM_DEPARTED : MESH_CM_IN_VIEW;
  mesh_swim_member_info info;
  if (mesh_swim_member_find(m->swim, &ev->peer, &info) != 0)
    info.addrs = NULL, info.n_addrs = 0;
  mesh_connections_member(m->conns, &ev->peer, st, info.addrs, info.n_addrs);
}

static void drain(mesh_membership *m)
{
  mesh_swim_outbox *o = &m->out;
  mesh_time_ms now = mesh_loop_now(m->loop);
  for (size_t i = 0; i < o->n_sends; i++) {
    const mesh_swim_send *s = &o->sends[i];
    mesh_class cls = s->cls == MESH_SWIM_STREAM ? MESH_CLASS_STREAM : MESH_CLASS_DATAGRAM;
    int rc = mesh_net_send(m->net, &s->to, MESH_CH_SWIM, cls, s->buf, s->len);
    if (rc == -ENOTCONN) {
      /* No connection yet: the connection manager dials (a member from its
       * record, a stranger once), and the message waits for it for one
       * probe interval (src/daemon/sendhold.h); SWIM's own retries carry
       * on. */
      m->counters.sends_no_route++;
      const mesh_swim_config *sc = mesh_swim_config_get(m->swim);
      if (mesh_sendhold_put(&m->hold, &s->to, cls, s->buf, s->len, now + sc->probe_interval_ms) != 0)
        m->counters.sends_failed++;
      const char *addrs[MESH_SWIM_MAX_ADDRS];
      size_t n = 0;
      for (size_t a = 0; a < s->n_addrs && n < MESH_SWIM_MAX_ADDRS; a++)
        addrs[n++] = mesh_swim_send_addr(s, a);
      mesh_connections_no_route(m->conns, &s->to, addrs, n);
    } else if (rc != 0) {
      m->counters.sends_failed++;
    }
  }
  for (size_t i = 0; i < o->n_dials; i++)
    mesh_connections_seed(m->conns, o->dials[i]);
  /* Peers over their bad-signature budget: the core refuses their records
   * for the rest of the window; closing the connection makes them pay a
   * handshake before they can send more. */
  for (size_t i = 0; i < o->n_disconnects; i++) {
    char id[MESH_PEER_ID_TEXT_MAX];
    mesh_peer_id_to_text(&o->disconnects[i], id, sizeof id);
    MESH_LOG_RL(MESH_LOG_WARN, "membership", "disconnecting %s: too many bad signatures", id);
    mesh_net_disconnect(m->net, &o->disconnects[i]);
  }
  for (size_t i = 0; i < o->n_events; i++) {
    const mesh_view_event *ev = &o->events[i];
    log_event(ev);
    tell_connections(m, ev);
    for (size_t k = 0; k < m->n_subs; k++)
      if (m->subs[k].ev != NULL)
        m->subs[k].ev(m->subs[k].arg, ev);
  }
  /* Lost events leave a gap that only a later event would reveal. */
  if (o->alloc_failed != 0 && m->view_gap_fn != NULL)
    m->view_gap_fn(m->view_gap_arg);
  for (size_t i = 0; i < o->n_apps; i++) {
    const mesh_swim_app_state *a = &o->apps[i];
    for (size_t k = 0; k < m->n_subs; k++)
      if (m->subs[k].app != NULL)
        m->subs[k].app(m->subs[k].arg, &a->from, a->epoch, a->buf, a->len);
  }
  if (o->timer_set) {
    m->timer_token = o->timer_token;
    mesh_timer_arm(m->timer, o->timer_at > now ? o->timer_at - now : 0);
  }
  bool over = o->epoch_over;
  mesh_peer_id accuser = o->epoch_over_by;
  uint64_t over_epoch = o->epoch_over_epoch;
  if (o->alloc_failed != 0)
    LOG_ERROR("membership", "outbox: %s", mesh_strerror(o->alloc_failed));
  mesh_swim_outbox_clear(o);
  /* After the clear: the listener may feed the core again (it renews). */
  if (over) {
    m->counters.epochs_over++;
    if (m->over_fn != NULL)
      m->over_fn(m->over_arg, &accuser, over_epoch);
  }
}

static void on_timer(void *arg, mesh_time_ms now)
{
  mesh_membership *m = arg;
  mesh_swim_handle_timer(m->swim, m->timer_token, now, &m->out);
  drain(m);
}

static void on_message(void *arg, const mesh_peer_id *from, uint64_t epoch, mesh_class cls,
                       const uint8_t *buf, size_t len)
{
  mesh_membership *m = arg;
  mesh_swim_class c = cls == MESH_CLASS_STREAM ? MESH_SWIM_STREAM : MESH_SWIM_DATAGRAM;
  int rc = mesh_swim_handle_packet(m->swim, from, c, buf, len, mesh_loop_now(m->loop), &m->out);
  if (rc != 0) {
    char id[MESH_PEER_ID_TEXT_MAX];
    mesh_peer_id_to_text(from, id, sizeof id);
    MESH_LOG_RL(MESH_LOG_WARN, "membership", "dropped a packet from %s: %s", id,
                mesh_strerror(rc));
  }
  drain(m);
}

/* A held message's peer came up: it goes out now. */
static void send_held(void *arg, const mesh_peer_id *to, mesh_class cls, const uint8_t *buf,
                      size_t len)
{
  mesh_membership *m = arg;
  if (mesh_net_send(m->net, to, MESH_CH_SWIM, cls, buf, len) != 0)
    m->counters.sends_failed++;
}

static void on_peer(void *arg, const mesh_net_peer_event *ev)
{
  mesh_membership *m = arg;
  mesh_connections_peer(m->conns, &ev->peer, ev->up);
  mesh_time_ms now = mesh_loop_now(m->loop);
  if (!ev->up) {
    mesh_swim_peer_lost(m->swim, &ev->peer, now, &m->out);
    drain(m);
    return;
  }
  /* What the core sent before the connection was there goes first. */
  mesh_sendhold_take(&m->hold, &ev->peer, now, send_held, m);
  mesh_swim_peer_connected(m->swim, &ev->peer, NULL, ev->epoch, now, &m->out);
  /* A connection this node made to someone not in its view (a seed after
   * a restart, a member kept in the store): exchange state now. */
  if (ev->outbound)
    mesh_swim_sync_with(m->swim, &ev->peer, now, &m->out);
  drain(m);
  if (m->peer_up_fn != NULL)
    m->peer_up_fn(m->peer_up_arg, &ev->peer);
}

/* The loop's lag timer measured a sample: the core decides whether this
 * node is the slow one (Lifeguard's health score). */
static void on_lag(void *arg, mesh_time_ms late_ms, mesh_time_ms now)
{
  mesh_membership *m = arg;
  mesh_swim_note_lateness(m->swim, late_ms, now, &m->out);
  drain(m);
}

void mesh_membership_on_peer_up(mesh_membership *m, mesh_membership_peer_up_fn fn, void *arg)
{
  m->peer_up_fn = fn;
  m->peer_up_arg = arg;
}

void mesh_membership_on_view_gap(mesh_membership *m, mesh_membership_view_gap_fn fn, void *arg)
{
  m->view_gap_fn = fn;
  m->view_gap_arg = arg;
}

static void on_leave_poll(void *arg, mesh_time_ms now)
{
  mesh_membership *m = arg;
  if (mesh_swim_broadcasts_pending(m->swim) == 0 || now >= m->leave_deadline) {
    LOG_INFO("membership", "left the mesh (%zu broadcasts still pending)",
             mesh_swim_broadcasts_pending(m->swim));
    if (m->leave_done != NULL)
      m->leave_done(m->leave_arg);
    return;
  }
  mesh_timer_arm(m->leave_timer, 50);
}

/* Fills the advertised addresses: the listen address itself when it names a
 * host, else every up, non-loopback IPv4/IPv6 address of this machine with
 * the listen port (and loopback when there is nothing else). */
static int advertise(mesh_membership *m, const mesh_config *cfg, char *err, size_t errlen)
{
  mesh_multiaddr a;
  const char *why = NULL;
  const char *listen = cfg->listen;
  if (cfg->advertise.len > 0) {
    /* The operator's word: exactly these, in multiaddr form. */
    for (size_t i = 0; i < cfg->advertise.len && m->n_addrs < MESH_SWIM_MAX_ADDRS; i++) {
      const char *text = cfg->advertise.items[i];
      if (mesh_multiaddr_parse(text, &a, &why) != 0) {
        snprintf(err, errlen, "--advertise %s: %s", text, why ? why : "malformed");
        return -EINVAL;
      }
      a.has_peer = false;
      if (mesh_multiaddr_format(&a, m->addrs[m->n_addrs], sizeof m->addrs[0]) != 0) {
        snprintf(err, errlen, "--advertise %s: too long", text);
        return -EINVAL;
      }
      m->n_addrs++;
    }
    if (cfg->advertise.len > MESH_SWIM_MAX_ADDRS)
      LOG_WARN("membership", "only the first %d --advertise addresses are used",
               MESH_SWIM_MAX_ADDRS);
    return 0;
  }
  if (listen == NULL || listen[0] == '\0')
    return 0;
  if (mesh_multiaddr_parse(listen, &a, &why) != 0) {
    snprintf(err, errlen, "listen address %s: %s", listen, why ? why : "malformed");
    return -EINVAL;
  }
  a.has_peer = false;
  bool any = (a.kind == MESH_MA_IP4 && strcmp(a.host, "0.0.0.0") == 0) ||
             (a.kind == MESH_MA_IP6 && strcmp(a.host, "::") == 0);
  if (!any) {
    if (mesh_multiaddr_format(&a, m->addrs[0], sizeof m->addrs[0]) == 0)
      m->n_addrs = 1;
    return 0;
  }
  struct ifaddrs *ifs = NULL;
  if (getifaddrs(&ifs) == 0) {
    for (struct ifaddrs *i = ifs; i != NULL && m->n_addrs < MESH_SWIM_MAX_ADDRS; i = i->ifa_next) {
      if (i->ifa_addr == NULL || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
        continue;
      int fam = i->ifa_addr->sa_family;
      if (!((fam == AF_INET && a.kind == MESH_MA_IP4) || (fam == AF_INET6 && a.kind == MESH_MA_IP6)))
        continue;
      if (fam == AF_INET6 &&
          IN6_IS_ADDR_LINKLOCAL(&((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr))
        continue;
      mesh_multiaddr b;
      socklen_t len = fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
      if (mesh_multiaddr_from_sockaddr(i->ifa_addr, len, "tcp", &b) != 0)
        continue;
      b.port = a.port;
      if (mesh_multiaddr_format(&b, m->addrs[m->n_addrs], sizeof m->addrs[0]) == 0)
        m->n_addrs++;
    }
    freeifaddrs(ifs);
  }
  if (m->n_addrs == 0) {
    snprintf(a.host, sizeof a.host, "%s", a.kind == MESH_MA_IP4 ? "127.0.0.1" : "::1");
    if (mesh_multiaddr_format(&a, m->addrs[0], sizeof m->addrs[0]) == 0)
      m->n_addrs = 1;
  }
  return 0;
}

static mesh_swim_profile profile_of(mesh_profile p)
{
  switch (p) {
  case MESH_PROFILE_THUNDERBOLT:
    return MESH_SWIM_PROFILE_THUNDERBOLT;
  case MESH_PROFILE_WAN:
    return MESH_SWIM_PROFILE_WAN;
  case MESH_PROFILE_LAN:
    break;
  }
  return MESH_SWIM_PROFILE_LAN;
}

/* The profile and the timing overrides of cfg (the rest left 0). */
static void timing_config(const mesh_config *cfg, mesh_swim_config *sc)
{
  memset(sc, 0, sizeof *sc);
  sc->profile = profile_of(cfg->profile);
  sc->probe_interval_ms = (uint32_t)cfg->probe_interval_ms;
  sc->probe_timeout_ms = (uint32_t)cfg->probe_timeout_ms;
  sc->suspicion_mult = (uint32_t)cfg->suspicion_mult;
  sc->suspicion_max_mult = (uint32_t)cfg->suspicion_max_mult;
  sc->indirect_checks = (uint32_t)cfg->indirect_checks;
  sc->retransmit_mult = (uint32_t)cfg->retransmit_mult;
  sc->gossip_interval_ms = (uint32_t)cfg->gossip_interval_ms;
  sc->gossip_nodes = (uint32_t)cfg->gossip_nodes;
  sc->push_pull_interval_ms = (uint32_t)cfg->push_pull_interval_ms;
}

int mesh_membership_link_timing(const mesh_config *cfg, mesh_time_ms *keepalive_ms,
                                mesh_time_ms *idle_ms)
{
  mesh_swim_config sc;
  timing_config(cfg, &sc);
  int rc = mesh_swim_config_resolve(&sc);
  if (rc != 0)
    return rc;
  mesh_swim_link_timing(&sc, keepalive_ms, idle_ms);
  return 0;
}

int mesh_membership_new(mesh_node *node, const mesh_config *cfg, mesh_membership **out, char *err,
                        size_t errlen)
{
  int rc;
  mesh_membership *m = calloc(1, sizeof *m);
  if (m == NULL)
    return -ENOMEM;
  m->node = node;
  m->cfg = cfg;
  m->net = mesh_node_net(node);
  m->loop = mesh_node_loop(node);
  mesh_swim_outbox_init(&m->out);
  mesh_sendhold_init(&m->hold);
  mesh_rng_seed_os(&m->rng);
  if ((rc = mesh_connections_new(node, &m->conns)) != 0) {
    snprintf(err, errlen, "connection manager: %s", mesh_strerror(rc));
    goto fail;
  }
  if ((rc = advertise(m, cfg, err, errlen)) != 0)
    goto fail;
  for (size_t i = 0; i < m->n_addrs; i++)
    m->addr_ptrs[i] = m->addrs[i];
  if (gethostname(m->host, sizeof m->host - 1) != 0)
    m->host[0] = '\0';

  mesh_swim_config sc;
  timing_config(cfg, &sc);
  sc.max_members = (uint32_t)cfg->max_members;
  sc.max_intro_sync = (uint32_t)cfg->max_introductions;
  if (cfg->dead_member_ttl_ms > 0)
    sc.tombstone_ttl_ms =
        cfg->dead_member_ttl_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)cfg->dead_member_ttl_ms;
  sc.addrs = m->addr_ptrs;
  sc.n_addrs = m->n_addrs;
  /* What this node offers; the RDMA attributes themselves travel in each
   * connection's signed handshake, per queue pair. */
  static const mesh_swim_transport offered[] = {{.name = "tcp"}, {.name = "rdma"}};
  sc.transports = offered;
  sc.n_transports = mesh_net_counters_of(m->net, "rdma") != NULL ? 2 : 1;
  sc.agent = "meshd/" MESH_VERSION;
  sc.host = m->host[0] != '\0' ? m->host : NULL;
  if ((rc = mesh_swim_config_resolve(&sc)) != 0) {
    snprintf(err, errlen, "membership settings: probe-timeout must be below probe-interval");
    goto fail;
  }
  if ((rc = mesh_swim_new(&sc, mesh_node_identity(node), mesh_node_epoch(node), &m->rng,
                          &m->swim)) != 0) {
    snprintf(err, errlen, "membership: %s", mesh_strerror(rc));
    goto fail;
  }
  if ((rc = mesh_timer_new(m->loop, on_timer, m, &m->timer)) != 0 ||
      (rc = mesh_timer_new(m->loop, on_leave_poll, m, &m->leave_timer)) != 0) {
    snprintf(err, errlen, "membership timers: %s", mesh_strerror(rc));
    goto fail;
  }
  if ((rc = mesh_node_on_message(node, MESH_CH_SWIM, on_message, m)) != 0)
    goto fail;
  mesh_node_on_peer(node, on_peer, m);
  mesh_loop_on_lag(m->loop, on_lag, m);
  *out = m;
  return 0;

fail:
  mesh_membership_free(m);
  return rc;
}

void mesh_membership_free(mesh_membership *m)
{
  if (m == NULL)
    return;
  if (m->node != NULL) {
    mesh_node_on_message(m->node, MESH_CH_SWIM, NULL, NULL);
    mesh_node_on_peer(m->node, NULL, NULL);
    mesh_loop_on_lag(m->loop, NULL, NULL);
  }
  if (m->timer != NULL)
    mesh_timer_free(m->timer);
  if (m->leave_timer != NULL)
    mesh_timer_free(m->leave_timer);
  mesh_swim_free(m->swim);
  mesh_swim_outbox_free(&m->out);
  mesh_sendhold_clear(&m->hold);
  mesh_connections_free(m->conns);
  free(m);
}

int mesh_membership_subscribe(mesh_membership *m, mesh_membership_event_fn ev,
                              mesh_membership_app_fn app, void *arg)
{
  if (m->n_subs == MESH_MEMBERSHIP_MAX_SUBSCRIBERS)
    return -ENOSPC;
  m->subs[m->n_subs++] = (subscriber){.ev = ev, .app = app, .arg = arg};
  return 0;
}

int mesh_membership_start(mesh_membership *m)
{
  const mesh_strlist *j = &m->cfg->join;
  for (size_t i = 0; i < j->len; i++)
    mesh_connections_seed(m->conns, j->items[i]);
  int rc = mesh_swim_join(m->swim, (const char *const *)j->items, j->len, mesh_loop_now(m->loop),
                          &m->out);
  drain(m);
  return rc;
}

int mesh_membership_leave(mesh_membership *m, mesh_time_ms deadline_ms,
                          mesh_membership_done_fn done, void *arg)
{
  if (m->leaving)
    return -EALREADY;
  mesh_time_ms now = mesh_loop_now(m->loop);
  int rc = mesh_swim_leave(m->swim, now, &m->out);
  drain(m);
  /* The members as they are now are the ones a restart should find. */
  mesh_connections_save_now(m->conns);
  if (rc != 0)
    return rc;
  m->leaving = true;
  m->leave_deadline = now + deadline_ms;
  m->leave_done = done;
  m->leave_arg = arg;
  mesh_timer_arm(m->leave_timer, 0);
  return 0;
}

bool mesh_membership_leaving(const mesh_membership *m)
{
  return m->leaving;
}

int mesh_membership_set_app_state(mesh_membership *m, const uint8_t *buf, size_t len)
{
  return mesh_swim_set_app_state(m->swim, buf, len);
}

void mesh_membership_on_epoch_over(mesh_membership *m, mesh_membership_epoch_over_fn fn, void *arg)
{
  m->over_fn = fn;
  m->over_arg = arg;
}

int mesh_membership_renew(mesh_membership *m, uint64_t epoch)
{
  int rc = mesh_swim_set_epoch(m->swim, epoch, mesh_loop_now(m->loop), &m->out);
  drain(m);
  return rc;
}

const mesh_swim *mesh_membership_core(const mesh_membership *m)
{
  return m->swim;
}

size_t mesh_membership_addrs(const mesh_membership *m, const char *const **addrs)
{
  *addrs = m->addr_ptrs;
  return m->n_addrs;
}

mesh_connections *mesh_membership_connections(mesh_membership *m)
{
  return m->conns;
}

const mesh_membership_counters *mesh_membership_counters_get(const mesh_membership *m)
{
  return &m->counters;
}

const mesh_sendhold_counters *mesh_membership_hold_counters(const mesh_membership *m)
{
  return &m->hold.c;
}
