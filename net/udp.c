/* The UDP transport (net/udp.h): sockets, links and the path timer around the sans-IO parts of
 * net/udp_wire.h. */
#include "net/udp.h"

#include "src/base/err.h"
#include "src/base/log.h"
#include "src/base/platform.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define UDP_MAX_SOCKETS 4
/* Packets read per readable callback at most, so one busy socket cannot
 * keep the loop from everything else. */
#define UDP_READ_BURST 64
/* The receive buffer holds any UDP datagram. */
#define UDP_RECV_MAX 65536
#define UDP_TICK_MS 250

/* One peer's link: keys from its TCP handshake, where it is, its path. */
typedef struct ulink {
  bool used;
  mesh_peer_id peer;
  uint64_t epoch;   /* the peer's, from its handshake: delivered with its datagrams */
  uint64_t conn_id; /* the TCP connection whose secret the keys came from */
  mesh_udp_keys keys;
  uint64_t tx_counter;    /* the next counter we send */
  mesh_udp_replay replay; /* what the peer's packets carried */
  mesh_udp_path path;
  bool fell_back;             /* the path fell back since the link came up: its return is news */
  int sock;                   /* socket to send from (index), -1 until ep is known */
  struct sockaddr_storage ep; /* where the peer's UDP packets go (ep_len 0: not known) */
  socklen_t ep_len;
} ulink;

typedef struct ustate {
  mesh_net *net;
  mesh_transport_counters *c; /* owned by the net */
  mesh_udp_options o;
  mesh_udp_stats st;
  struct event_base *base;
  struct {
    int fd;
    int family;
    struct event *ev;
  } socks[UDP_MAX_SOCKETS];
  int nsocks;
  ulink *links; /* nlinks slots (the net's max_connections) */
  int nlinks;
  struct event *tick;
  uint8_t *rbuf; /* UDP_RECV_MAX: a packet as read */
  uint8_t *pbuf; /* UDP_RECV_MAX: its payload, opened */
  uint8_t *sbuf; /* a packet being sealed: payload_max + overhead */
} ustate;

void mesh_udp_options_default(mesh_udp_options *o)
{
  memset(o, 0, sizeof *o);
  o->payload_max = MESH_UDP_PAYLOAD_DEFAULT;
  mesh_udp_path_cfg_default(&o->path);
}

static ulink *find_link(ustate *s, const mesh_peer_id *peer)
{
  for (int i = 0; i < s->nlinks; i++)
    if (s->links[i].used && mesh_peer_id_eq(&s->links[i].peer, peer))
      return &s->links[i];
  return NULL;
}

/* An integer compare per link: no key is tried on a packet. */
static ulink *find_index(ustate *s, uint32_t index)
{
  for (int i = 0; i < s->nlinks; i++)
    if (s->links[i].used && s->links[i].keys.rx_index == index)
      return &s->links[i];
  return NULL;
}

static void count_paths(ustate *s)
{
  uint64_t n[3] = {0, 0, 0};
  for (int i = 0; i < s->nlinks; i++)
    if (s->links[i].used)
      n[s->links[i].path.state]++;
  s->st.peers_probing = n[MESH_UDP_PATH_PROBING];
  s->st.peers_up = n[MESH_UDP_PATH_UP];
  s->st.peers_fallback = n[MESH_UDP_PATH_FALLBACK];
  s->c->peers_up = s->st.peers_up;
}

/* Logs and counts what a path step changed (the path changes its state in
 * one function, net/udp_path.c; this is where it is told). */
static void path_changed(ustate *s, ulink *l, const mesh_udp_path_out *out)
{
  if (!out->changed)
    return;
  char id[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(&l->peer, id, sizeof id);
  switch (l->path.state) {
  case MESH_UDP_PATH_FALLBACK:
    s->st.fallbacks++;
    l->fell_back = true;
    LOG_INFO("udp", "peer %s: %s over UDP, datagrams go over TCP (UDP again in %llu ms)", id,
             out->from == MESH_UDP_PATH_PROBING ? "no answer" : "no longer heard",
             (unsigned long long)(l->path.retry_at - l->path.since));
    break;
  case MESH_UDP_PATH_PROBING:
    if (out->from == MESH_UDP_PATH_FALLBACK)
      s->st.retries++;
    break;
  case MESH_UDP_PATH_UP:
    if (l->fell_back)
      LOG_INFO("udp", "peer %s: datagrams over UDP again", id);
    else
      LOG_DEBUG("udp", "peer %s: datagrams over UDP", id);
    break;
  }
  count_paths(s);
}

/* Seals and sends one packet to l. 0, -EAGAIN (socket buffer full, nothing
 * sent), -ENOTCONN (no address yet) or another negative errno. payload
 * stays the caller's. */
static int send_packet(ustate *s, ulink *l, mesh_udp_type type, uint8_t channel,
                       const uint8_t *payload, size_t len)
{
  if (l->ep_len == 0 || l->sock < 0)
    return -ENOTCONN;
  if (l->tx_counter >= MESH_UDP_COUNTER_LIMIT)
    return -EOVERFLOW;
  mesh_udp_header h = {.type = (uint8_t)type,
                       .channel = channel,
                       .index = l->keys.tx_index,
                       .counter = l->tx_counter};
  size_t n;
  int rc = mesh_udp_seal(l->keys.tx, &h, payload, len, s->sbuf,
                         s->o.payload_max + MESH_UDP_OVERHEAD, &n);
  if (rc != 0)
    return rc;
  l->tx_counter++;
  ssize_t w =
      sendto(s->socks[l->sock].fd, s->sbuf, n, 0, (const struct sockaddr *)&l->ep, l->ep_len);
  if (w < 0)
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) ? -EAGAIN : -errno;
  s->c->frames_sent++;
  s->c->bytes_sent += n;
  return 0;
}

static void send_ping(ustate *s, ulink *l)
{
  if (send_packet(s, l, MESH_UDP_PING, 0, NULL, 0) == 0)
    s->st.pings_sent++;
}

/* The socket to reach sa from: one of its family, else an IPv6 one (which
 * reaches IPv4 through a mapped address, written into sa). -1: none. */
static int sock_for(ustate *s, struct sockaddr_storage *sa, socklen_t *len)
{
  for (int i = 0; i < s->nsocks; i++)
    if (s->socks[i].family == sa->ss_family)
      return i;
  if (sa->ss_family != AF_INET)
    return -1;
  for (int i = 0; i < s->nsocks; i++) {
    if (s->socks[i].family != AF_INET6)
      continue;
    struct sockaddr_in in4;
    memcpy(&in4, sa, sizeof in4);
    struct sockaddr_in6 in6;
    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = in4.sin_port;
    in6.sin6_addr.s6_addr[10] = 0xff;
    in6.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&in6.sin6_addr.s6_addr[12], &in4.sin_addr, 4);
    memset(sa, 0, sizeof *sa);
    memcpy(sa, &in6, sizeof in6);
    *len = sizeof in6;
    return i;
  }
  return -1;
}

static void link_free(ustate *s, ulink *l)
{
  sodium_memzero(l, sizeof *l);
  count_paths(s);
}

/* TCP raised an up event: a new link (or a new connection of a known
 * peer, whose secret replaces the old keys). */
static void link_up(ustate *s, const mesh_net_peer_event *ev)
{
  ulink *l = find_link(s, &ev->peer);
  if (ev->secret == NULL || s->nsocks == 0) {
    if (l != NULL)
      link_free(s, l);
    return;
  }
  if (l == NULL) {
    for (int i = 0; i < s->nlinks && l == NULL; i++)
      if (!s->links[i].used)
        l = &s->links[i];
    if (l == NULL)
      return; /* more peers than TCP connections: cannot happen, stay on TCP */
  }
  mesh_udp_keys keys;
  mesh_udp_keys_derive(ev->secret, ev->outbound, &keys);
  ulink *other = find_index(s, keys.rx_index);
  if (other != NULL && other != l) {
    /* Two links' indices collide (about one in 2^32 per pair): this one
     * stays on TCP, which is always correct. */
    s->st.index_clashes++;
    sodium_memzero(&keys, sizeof keys);
    link_free(s, l);
    return;
  }
  /* A connection replacing another of the same peer: where the peer's UDP
   * packets came from is still the best guess until it says otherwise. */
  struct sockaddr_storage old_ep;
  memset(&old_ep, 0, sizeof old_ep);
  socklen_t old_len = 0;
  int old_sock = -1;
  if (l->used && mesh_peer_id_eq(&l->peer, &ev->peer) && l->ep_len > 0) {
    old_ep = l->ep;
    old_len = l->ep_len;
    old_sock = l->sock;
  }
  sodium_memzero(l, sizeof *l);
  l->used = true;
  l->sock = -1;
  if (old_len > 0) {
    l->ep = old_ep;
    l->ep_len = old_len;
    l->sock = old_sock;
  }
  l->peer = ev->peer;
  l->epoch = ev->epoch;
  l->conn_id = ev->conn_id;
  l->keys = keys;
  sodium_memzero(&keys, sizeof keys);
  /* The dialer knows where the listener's UDP socket is: where it dialled
   * (same address, same port). The listener waits for the dialer's ping. */
  if (ev->outbound && ev->remote != NULL && ev->remote_len <= sizeof l->ep) {
    memcpy(&l->ep, ev->remote, ev->remote_len);
    l->ep_len = ev->remote_len;
    l->sock = sock_for(s, &l->ep, &l->ep_len);
    if (l->sock < 0)
      l->ep_len = 0;
  }
  mesh_udp_path_out out;
  mesh_udp_path_start(&l->path, &s->o.path, mesh_net_now(s->net), &out);
  if (out.ping)
    send_ping(s, l);
  count_paths(s);
  if (s->tick != NULL && !event_pending(s->tick, EV_TIMEOUT, NULL)) {
    struct timeval tv = {.tv_sec = 0, .tv_usec = UDP_TICK_MS * 1000};
    event_add(s->tick, &tv);
  }
}

static void udp_peer_event(void *state, const mesh_net_peer_event *ev)
{
  ustate *s = state;
  if (strcmp(ev->scheme, "tcp") != 0)
    return;
  if (ev->up) {
    link_up(s, ev);
    return;
  }
  ulink *l = find_link(s, &ev->peer);
  if (l != NULL && l->conn_id == ev->conn_id)
    link_free(s, l);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  (void)what;
  ustate *s = arg;
  mesh_time_ms now = mesh_net_now(s->net);
  bool any = false;
  for (int i = 0; i < s->nlinks; i++) {
    ulink *l = &s->links[i];
    if (!l->used)
      continue;
    any = true;
    mesh_udp_path_out out;
    mesh_udp_path_tick(&l->path, &s->o.path, now, &out);
    if (out.ping)
      send_ping(s, l);
    path_changed(s, l, &out);
  }
  if (any) {
    struct timeval tv = {.tv_sec = 0, .tv_usec = UDP_TICK_MS * 1000};
    event_add(s->tick, &tv);
  }
}

/* Handles one packet of len bytes in s->rbuf from (sa, sl) on socket k. */
static void one_packet(ustate *s, int k, size_t len, const struct sockaddr_storage *sa,
                       socklen_t sl)
{
  s->c->bytes_received += len;
  mesh_udp_header h;
  if (mesh_udp_peek(s->rbuf, len, &h) != 0) {
    s->st.malformed++;
    s->c->dropped[MESH_DROP_MALFORMED]++;
    return;
  }
  ulink *l = find_index(s, h.index);
  if (l == NULL) {
    s->st.unknown_index++;
    return;
  }
  if (!mesh_udp_replay_check(&l->replay, h.counter)) {
    s->st.replays++;
    s->c->dropped[MESH_DROP_REPLAY]++;
    return;
  }
  size_t plen;
  if (mesh_udp_open(l->keys.rx, s->rbuf, len, s->pbuf, UDP_RECV_MAX, &plen) != 0) {
    s->st.auth_failures++;
    s->c->dropped[MESH_DROP_AUTH]++;
    MESH_LOG_RL(MESH_LOG_WARN, "udp", "dropped a UDP packet that failed authentication");
    return;
  }
  if ((h.type == MESH_UDP_DATA && (h.channel < 1 || h.channel > MESH_CH_MAX)) ||
      (h.type != MESH_UDP_DATA && plen != 0)) {
    s->st.malformed++;
    s->c->dropped[MESH_DROP_MALFORMED]++;
    MESH_LOG_RL(MESH_LOG_WARN, "udp", "dropped an authenticated UDP packet with bad content");
    return;
  }
  mesh_udp_replay_accept(&l->replay, h.counter);
  s->c->frames_received++;
  /* The peer is where its authenticated packets come from. */
  memcpy(&l->ep, sa, sl);
  l->ep_len = sl;
  l->sock = k;
  mesh_time_ms now = mesh_net_now(s->net);
  mesh_udp_path_out out;
  mesh_udp_path_on_rx(&l->path, &s->o.path, now, (mesh_udp_type)h.type, &out);
  if (h.type == MESH_UDP_PING && send_packet(s, l, MESH_UDP_PONG, 0, NULL, 0) == 0)
    s->st.pongs_sent++;
  if (out.ping)
    send_ping(s, l);
  path_changed(s, l, &out);
  if (h.type == MESH_UDP_DATA) {
    s->c->messages_received[MESH_CLASS_DATAGRAM]++;
    mesh_net_deliver(s->net, &l->peer, l->epoch, (mesh_channel)h.channel, MESH_CLASS_DATAGRAM,
                     s->pbuf, plen);
  }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
  (void)what;
  ustate *s = arg;
  int k = 0;
  while (k < s->nsocks && s->socks[k].fd != fd)
    k++;
  if (k == s->nsocks)
    return;
  for (int n = 0; n < UDP_READ_BURST; n++) {
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    ssize_t r = recvfrom(fd, s->rbuf, UDP_RECV_MAX, 0, (struct sockaddr *)&sa, &sl);
    if (r < 0)
      return; /* EAGAIN: drained; anything else (an ICMP error) says nothing we act on */
    one_packet(s, k, (size_t)r, &sa, sl);
  }
}

static int udp_init(mesh_net *net, const mesh_net_options *opt, mesh_transport_counters *counters,
                    void **state)
{
  ustate *s = calloc(1, sizeof *s);
  if (s == NULL)
    return -ENOMEM;
  s->net = net;
  s->c = counters;
  s->base = opt->base;
  mesh_udp_options_default(&s->o);
  s->nlinks = opt->max_connections;
  s->links = calloc((size_t)s->nlinks, sizeof *s->links);
  s->rbuf = malloc(UDP_RECV_MAX);
  s->pbuf = malloc(UDP_RECV_MAX);
  s->sbuf = malloc(MESH_UDP_PAYLOAD_LIMIT + MESH_UDP_OVERHEAD);
  s->tick = event_new(s->base, -1, 0, on_tick, s);
  if (s->links == NULL || s->rbuf == NULL || s->pbuf == NULL || s->sbuf == NULL ||
      s->tick == NULL) {
    if (s->tick != NULL)
      event_free(s->tick);
    free(s->links);
    free(s->rbuf);
    free(s->pbuf);
    free(s->sbuf);
    free(s);
    return -ENOMEM;
  }
  *state = s;
  return 0;
}

static void udp_fini(void *state)
{
  ustate *s = state;
  for (int i = s->nsocks - 1; i >= 0; i--) {
    event_free(s->socks[i].ev);
    close(s->socks[i].fd);
  }
  event_free(s->tick);
  sodium_memzero(s->links, (size_t)s->nlinks * sizeof *s->links);
  free(s->links);
  free(s->rbuf);
  free(s->pbuf);
  free(s->sbuf);
  free(s);
}

static void udp_listened(void *state, const mesh_multiaddr *bound)
{
  ustate *s = state;
  if (strcmp(bound->scheme, "tcp") != 0)
    return;
  char text[MESH_MULTIADDR_TEXT_MAX] = "";
  mesh_multiaddr_format(bound, text, sizeof text);
  struct sockaddr_storage ss;
  socklen_t sl;
  int rc = s->nsocks == UDP_MAX_SOCKETS ? -ENOSPC : mesh_multiaddr_resolve(bound, &ss, &sl);
  int fd = -1;
  if (rc == 0) {
    fd = mesh_socket_nb(ss.ss_family, SOCK_DGRAM, 0);
    if (fd < 0)
      rc = fd;
  }
  if (rc == 0 && bind(fd, (struct sockaddr *)&ss, sl) != 0)
    rc = -errno;
  struct event *ev = NULL;
  if (rc == 0) {
    ev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_readable, s);
    if (ev == NULL || event_add(ev, NULL) != 0)
      rc = -ENOMEM;
  }
  if (rc != 0) {
    if (ev != NULL)
      event_free(ev);
    if (fd >= 0)
      close(fd);
    s->st.bind_failures++;
    LOG_WARN("udp", "no UDP socket beside %s (%s): datagrams go over TCP", text, mesh_strerror(rc));
    return;
  }
  s->socks[s->nsocks].fd = fd;
  s->socks[s->nsocks].family = ss.ss_family;
  s->socks[s->nsocks].ev = ev;
  s->nsocks++;
  s->st.sockets = (uint64_t)s->nsocks;
  s->c->connections_open = (uint64_t)s->nsocks;
  LOG_DEBUG("udp", "UDP datagrams on %s", text);
}

static bool udp_can_send(void *state, const mesh_peer_id *peer, mesh_class cls)
{
  ustate *s = state;
  if (cls != MESH_CLASS_DATAGRAM)
    return false;
  ulink *l = find_link(s, peer);
  return l != NULL && l->ep_len > 0 &&
         mesh_udp_path_usable(&l->path, &s->o.path, mesh_net_now(s->net));
}

static int udp_send(void *state, const mesh_peer_id *peer, mesh_channel ch, mesh_class cls,
                    const uint8_t *buf, size_t len)
{
  ustate *s = state;
  ulink *l = find_link(s, peer);
  if (l == NULL || cls != MESH_CLASS_DATAGRAM)
    return -ENOTCONN; /* can_send said no: the net does not call this then */
  if (len > s->o.payload_max) {
    s->st.too_big++;
    return -EMSGSIZE; /* the net hands it to TCP */
  }
  int rc = send_packet(s, l, MESH_UDP_DATA, (uint8_t)ch, buf, len);
  if (rc == -EAGAIN) {
    s->c->dropped[MESH_DROP_QUEUE_FULL]++;
    return -ENOBUFS;
  }
  if (rc == -EMSGSIZE) {
    /* Over the path MTU the kernel knows of (Linux sets DF on UDP): this
     * one datagram takes TCP, the path stays. */
    s->st.too_big++;
    return -EMSGSIZE;
  }
  mesh_time_ms now = mesh_net_now(s->net);
  if (rc != 0) {
    /* The system refused the packet (no route, a local firewall): this
     * peer falls back now, and this datagram takes TCP. */
    s->st.send_errors++;
    MESH_LOG_RL(MESH_LOG_WARN, "udp", "UDP send failed: %s", mesh_strerror(rc));
    mesh_udp_path_out out;
    mesh_udp_path_fail(&l->path, &s->o.path, now, &out);
    path_changed(s, l, &out);
    return mesh_net_send(s->net, peer, ch, cls, buf, len);
  }
  s->c->messages_sent[MESH_CLASS_DATAGRAM]++;
  mesh_udp_path_on_tx(&l->path, &s->o.path, now);
  return 0;
}

const mesh_transport_ops mesh_udp_transport = {
    .scheme = "udp",
    .role = MESH_TRANSPORT_PATH,
    .init = udp_init,
    .fini = udp_fini,
    .listen = NULL,
    .dial = NULL,
    .can_send = udp_can_send,
    .send = udp_send,
    .disconnect = NULL,
    .peer_event = udp_peer_event,
    .set_epoch = NULL,
    .listened = udp_listened,
};

int mesh_udp_attach(mesh_net *net, const mesh_udp_options *o)
{
  if (o->payload_max < MESH_UDP_PAYLOAD_MIN || o->payload_max > MESH_UDP_PAYLOAD_LIMIT ||
      o->path.ping_ms < 1 || o->path.backoff_min_ms < 1 ||
      o->path.backoff_max_ms < o->path.backoff_min_ms)
    return -EINVAL;
  int rc = mesh_net_register(net, &mesh_udp_transport);
  if (rc != 0)
    return rc;
  ustate *s = mesh_net_state_of(net, "udp");
  s->o = *o;
  return 0;
}

int mesh_udp_stats_of(const mesh_net *net, mesh_udp_stats *out)
{
  const ustate *s = mesh_net_state_of(net, "udp");
  if (s == NULL)
    return -ENOENT;
  *out = s->st;
  return 0;
}

int mesh_udp_path_of(const mesh_net *net, const mesh_peer_id *peer, mesh_udp_path_state *out)
{
  ustate *s = mesh_net_state_of(net, "udp");
  if (s == NULL)
    return -ENOENT;
  ulink *l = find_link(s, peer);
  if (l == NULL)
    return -ENOENT;
  *out = l->path.state;
  return 0;
}
