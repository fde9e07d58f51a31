/*
 * The TCP transport: listening, one-shot dial attempts (who to redial, and
 * when, is the connection manager's business: net/connmgr.h), the set of
 * connections, who keeps a connection slot (members first, see
 * net/transport.h), and the rule that keeps one connection per peer pair.
 * One connection's protocol is in tcp_conn.c.
 */
#include "net/tcp_internal.h"
#include "src/base/platform.h"

#include "src/base/err.h"
#include "src/base/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Connections accepted per listener callback, so one flood cannot starve
 * the rest of the loop. */
#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_MS 100

static void target_end(tcp_target *g, int rc, const mesh_peer_id *peer);
static bool admit_authenticated(tcp_state *t, tcp_conn *c);
static int source_count(tcp_state *t, const tcp_source *src, bool authenticated);
static void log_source_refused(tcp_state *t, const tcp_source *src, bool handshakes);

static void set_sockopts(const tcp_state *t, int fd)
{
  int one = 1;
  /* Data unacknowledged for the idle timeout ends the connection: this is
   * what finds a half-open connection that sends no keepalives (a member
   * heard over UDP or RDMA, tcp_conn.c). */
#if defined(TCP_USER_TIMEOUT)
  unsigned int user_ms = (unsigned int)t->opt.idle_timeout_ms;
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_ms, sizeof user_ms);
#elif defined(TCP_RXT_CONNDROPTIME)
  int user_s = (int)((t->opt.idle_timeout_ms + 999) / 1000);
  setsockopt(fd, IPPROTO_TCP, TCP_RXT_CONNDROPTIME, &user_s, sizeof user_s);
#endif
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  /* What the kernel has swallowed cannot be overtaken: a bounded send
   * buffer keeps bulk stream data in our queue, where a datagram queued
   * later still goes first. */
  int sndbuf = TCP_SNDBUF;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
}

tcp_conn *tcp_find_up(tcp_state *t, const mesh_peer_id *peer)
{
  for (tcp_conn *c = t->conns; c != NULL; c = c->next)
    if (c->state == TCP_UP && mesh_peer_id_eq(&c->peer, peer))
      return c;
  return NULL;
}

/* Of two connections to the same peer at the same epoch, the one to keep:
 * the one dialled by the lower peer ID; when one side dialled both, the
 * newer (the older is likely dead on the other side). Both ends decide the
 * same way. */
static bool prefer_new(tcp_state *t, const tcp_conn *old, const tcp_conn *nw)
{
  if (old->outbound == nw->outbound)
    return true;
  bool we_are_lower = mesh_peer_id_cmp(&t->opt.identity->id, &nw->peer) < 0;
  /* Keep the connection the lower ID dialled. */
  return nw->outbound == we_are_lower;
}

static void emit_up(tcp_state *t, tcp_conn *c, bool silent)
{
  mesh_net_peer_event ev = {.up = true,
                            .peer = c->peer,
                            .epoch = c->epoch,
                            .conn_id = c->id,
                            .outbound = c->outbound,
                            .extension = c->ext,
                            .extension_len = c->ext_len,
                            .secret = c->export_secret,
                            .remote =
                                c->remote_len > 0 ? (const struct sockaddr *)&c->remote : NULL,
                            .remote_len = c->remote_len,
                            .scheme = "tcp",
                            .frame_cipher = c->tx.cipher};
  /* A swap is news all the same: to the other transports (the RDMA queue
   * pair to use is the one offered on the new connection) and to the node
   * (a request sent on the old connection may never be answered). */
  ev.replaced = silent;
  mesh_net_emit_peer(t->net, &ev);
}

bool tcp_established(tcp_conn *c)
{
  tcp_state *t = c->t;
  if (!admit_authenticated(t, c))
    return false;
  tcp_conn *old = tcp_find_up(t, &c->peer);
  /* The dial attempt, if c is one, ends here whatever follows. */
  tcp_target *g = c->target;
  /* A replacement keeps the grace its peer started with: a fresh handshake
   * under the same identity buys no more time to join. */
  mesh_time_ms up_at = old != NULL ? old->up_at : mesh_net_now(t->net);
  bool silent = false; /* the peer was up already: no new up event */
  if (old != NULL) {
    /* The newer epochs win, the peer's first, then ours: when this node
     * renewed its epoch in place (mesh_net_set_epoch), its connections made
     * before stay up at the old epoch; a new one carries the new epoch.
     * The peer sees its epoch grow and keeps the new connection; we see
     * the same peer epoch, and must decide the same way, which the
     * epoch our own Hello carried tells us. Both ends agree, so a
     * reconnect after a renewal never closes both connections. */
    if (c->epoch < old->epoch || (c->epoch == old->epoch && c->local_epoch < old->local_epoch)) {
      tcp_conn_close(c, MESH_DROP_STALE_EPOCH, -ESTALE, true);
      return false;
    }
    if (c->epoch == old->epoch && c->local_epoch == old->local_epoch && !prefer_new(t, old, c)) {
      /* The peer is connected already, over the other connection: the
       * attempt reached it. */
      if (g != NULL) {
        mesh_peer_id peer = c->peer;
        c->target = NULL;
        g->conn = NULL;
        tcp_conn_close(c, MESH_DROP_DUPLICATE, -EEXIST, true);
        target_end(g, 0, &peer);
      } else {
        tcp_conn_close(c, MESH_DROP_DUPLICATE, -EEXIST, true);
      }
      return false;
    }
    if (c->epoch == old->epoch) {
      /* Same peer, same run: swap connections without telling anyone. */
      tcp_conn_take_queues(c, old);
      silent = true;
    }
    tcp_conn_close(old, MESH_DROP_DUPLICATE, -EEXIST, !silent);
  }
  if (g != NULL) {
    c->target = NULL;
    g->conn = NULL;
  }
  mesh_peer_id peer = c->peer;
  t->c->handshakes_ok++;
  if (c->tx.cipher < MESH_FRAME_CIPHER_COUNT)
    t->c->cipher_handshakes[c->tx.cipher]++;
  t->c->peers_up++;
  c->up_at = up_at;
  tcp_conn_up(c);
  bool up = c->state == TCP_UP;
  if (up) {
    /* Which cipher this peer got, and why, is an operator's question
     * (mixed clusters, --frame-cipher): a line per new peer answers it. */
    char id[MESH_PEER_ID_TEXT_MAX];
    mesh_peer_id_to_text(&peer, id, sizeof id);
    MESH_LOG(silent ? MESH_LOG_DEBUG : MESH_LOG_INFO, "tcp", "peer %s: frame cipher %s", id,
             mesh_frame_cipher_name((mesh_frame_cipher)c->tx.cipher));
    emit_up(t, c, silent);
  }
  /* After the up event, so whoever dialled sees the peer up first. */
  if (g != NULL)
    target_end(g, up ? 0 : -ECONNRESET, up ? &peer : NULL);
  return up && c->state == TCP_UP;
}

void tcp_closed(tcp_conn *c, bool was_up, int err)
{
  (void)was_up;
  tcp_target *g = c->target;
  if (g == NULL)
    return;
  g->conn = NULL;
  c->target = NULL;
  target_end(g, err != 0 ? err : -ECONNRESET, NULL);
}

/* --- Connection slots (net/transport.h, "Connection slots") --- */

/* Whether c holds a member's slot: authenticated, its peer in the view. */
static bool conn_member(tcp_state *t, const tcp_conn *c)
{
  return c->state == TCP_UP && mesh_net_is_member(t->net, &c->peer);
}

/* Whether c is authenticated, and its peer has not joined the view within
 * the grace after its handshake. */
static bool conn_unjoined(tcp_state *t, const tcp_conn *c, mesh_time_ms now)
{
  return c->state == TCP_UP && now >= c->up_at && now - c->up_at >= t->opt.unjoined_grace_ms &&
         !mesh_net_is_member(t->net, &c->peer);
}

static bool source_eq(const tcp_source *a, const tcp_source *b)
{
  return a->family == b->family && memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

/* The connection that has been unjoined longest, other than except and,
 * when src is not NULL, from src; NULL when there is none. */
static tcp_conn *oldest_unjoined(tcp_state *t, const tcp_conn *except, const tcp_source *src)
{
  mesh_time_ms now = mesh_net_now(t->net);
  tcp_conn *victim = NULL;
  for (tcp_conn *c = t->conns; c != NULL; c = c->next) {
    if (c == except || (src != NULL && (c->outbound || !source_eq(&c->src, src))))
      continue;
    /* The list runs newest first: on a tie, the later one opened first. */
    if ((victim == NULL || c->up_at <= victim->up_at) && conn_unjoined(t, c, now))
      victim = c;
  }
  return victim;
}

/* Makes room for one more connection: evicts the oldest connection still
 * handshaking (an honest handshake takes one round trip, so a flood of
 * silent sockets cannot lock honest peers out), else the oldest one whose
 * peer authenticated but never joined the view (holding the swarm key is
 * not enough to keep a slot). False when every slot holds a member or a
 * peer still within its grace. */
static bool make_room(tcp_state *t)
{
  if (t->nconns < t->opt.max_connections)
    return true;
  tcp_conn *victim = NULL;
  for (tcp_conn *c = t->conns; c != NULL; c = c->next)
    if (c->state != TCP_UP && (victim == NULL || c->opened <= victim->opened))
      victim = c;
  if (victim != NULL) {
    tcp_conn_close(victim, MESH_DROP_CONN_LIMIT, -EMFILE, true);
    return true;
  }
  victim = oldest_unjoined(t, NULL, NULL);
  if (victim == NULL)
    return false;
  tcp_conn_close(victim, MESH_DROP_UNJOINED, -EMFILE, true);
  /* Its down event ran the node's callbacks, which may have dialled into
   * the slot just freed. */
  return t->nconns < t->opt.max_connections;
}

/* An inbound connection finished its handshake: a member, or a peer that
 * has a connection already (this one replaces it), goes on. A non-member
 * stays while authenticated non-members from its address are fewer than
 * the per-source cap, and all of them hold less than their share of the
 * slots; past either, it takes the place of the oldest one past its grace
 * (from its address, or from anywhere), else is closed. False when c was
 * closed. */
static bool admit_authenticated(tcp_state *t, tcp_conn *c)
{
  if (c->outbound || tcp_find_up(t, &c->peer) != NULL || mesh_net_is_member(t->net, &c->peer))
    return true;
  if (c->src.family != 0 && source_count(t, &c->src, true) >= t->opt.max_per_source) {
    tcp_conn *victim = oldest_unjoined(t, c, &c->src);
    if (victim == NULL) {
      log_source_refused(t, &c->src, false);
      tcp_conn_close(c, MESH_DROP_SOURCE_LIMIT, -EMFILE, true);
      return false;
    }
    tcp_conn_close(victim, MESH_DROP_UNJOINED, -EMFILE, true);
    if (c->state == TCP_CLOSED)
      return false;
  }
  int max = t->opt.max_connections;
  int share = max - (int)((int64_t)max * t->opt.member_reserve_pct / 100);
  int held = 0;
  for (tcp_conn *x = t->conns; x != NULL; x = x->next)
    if (x != c && x->state == TCP_UP && !mesh_net_is_member(t->net, &x->peer))
      held++;
  if (held < share)
    return true;
  tcp_conn *victim = oldest_unjoined(t, c, NULL);
  if (victim == NULL) {
    tcp_conn_close(c, MESH_DROP_MEMBER_RESERVE, -EMFILE, true);
    return false;
  }
  tcp_conn_close(victim, MESH_DROP_UNJOINED, -EMFILE, true);
  /* The victim's down event ran the node's callbacks, which may have
   * closed c too (a disconnect of its peer). */
  return c->state != TCP_CLOSED;
}

/* Where an accepted connection came from; family 0 when not IP. */
static void source_of(const struct sockaddr_storage *ss, tcp_source *out)
{
  memset(out, 0, sizeof *out);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
    out->family = AF_INET;
    memcpy(out->addr, &in->sin_addr, 4);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    /* A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d: one
     * address either way. */
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      out->family = AF_INET;
      memcpy(out->addr, in6->sin6_addr.s6_addr + 12, 4);
    } else {
      out->family = AF_INET6;
      memcpy(out->addr, in6->sin6_addr.s6_addr, 16);
    }
  }
}

/* Inbound connections from src: with authenticated false, those still
 * handshaking; with it true, those of authenticated non-members. */
static int source_count(tcp_state *t, const tcp_source *src, bool authenticated)
{
  int n = 0;
  for (tcp_conn *c = t->conns; c != NULL; c = c->next)
    if (!c->outbound && source_eq(&c->src, src) && (c->state == TCP_UP) == authenticated &&
        (!authenticated || !conn_member(t, c)))
      n++;
  return n;
}

/* Whether an accept from src may go on: src holds fewer than its cap of
 * handshakes. Whose a handshake is shows only at its end, where the rest
 * of the per-source cap is weighed (admit_authenticated). */
static bool source_admits(tcp_state *t, const tcp_source *src)
{
  return src->family == 0 || source_count(t, src, false) < t->opt.max_per_source;
}

/* handshakes: refused at accept, src having its cap of handshakes under
 * way; else refused at the end of a handshake, src having its cap of
 * authenticated non-members. */
static void log_source_refused(tcp_state *t, const tcp_source *src, bool handshakes)
{
  char text[INET6_ADDRSTRLEN] = "?";
  if (inet_ntop(src->family, src->addr, text, sizeof text) == NULL)
    snprintf(text, sizeof text, "?");
  MESH_LOG_RL(MESH_LOG_INFO, "tcp",
              "connection from %s refused: that address has %d %s already "
              "(max-connections-per-source)",
              text, t->opt.max_per_source,
              handshakes ? "handshakes under way" : "connections of peers not in the view");
}

/* Unlinks and frees g. Its connection, if any, is left alone. */
static void target_free(tcp_target *g)
{
  tcp_state *t = g->t;
  for (tcp_target **pp = &t->targets; *pp != NULL; pp = &(*pp)->next)
    if (*pp == g) {
      *pp = g->next;
      break;
    }
  if (g->conn != NULL)
    g->conn->target = NULL;
  if (g->resolving != NULL)
    mesh_resolve_cancel(g->resolving);
  free(g);
}

/* The attempt is over: freed, then its outcome reported (the listener may
 * dial again from the callback). */
static void target_end(tcp_target *g, int rc, const mesh_peer_id *peer)
{
  tcp_state *t = g->t;
  uint64_t token = g->token;
  if (rc != 0)
    t->c->dial_failures++;
  target_free(g);
  mesh_net_dial_done(t->net, token, rc, peer);
}

/* Connects g to the resolved address ss. */
static void target_connect_to(tcp_state *t, tcp_target *g, const struct sockaddr *sa, socklen_t sl)
{
  if (!make_room(t)) {
    t->c->dropped[MESH_DROP_CONN_LIMIT]++;
    target_end(g, -EMFILE, NULL);
    return;
  }
  int fd = mesh_socket_nb(sa->sa_family, SOCK_STREAM, 0);
  if (fd < 0) {
    target_end(g, fd, NULL);
    return;
  }
  set_sockopts(t, fd);
  tcp_conn_state st = TCP_CONNECTING;
  if (connect(fd, sa, sl) == 0)
    st = TCP_HELLO;
  else if (errno != EINPROGRESS) {
    int rc = -errno;
    close(fd);
    target_end(g, rc, NULL);
    return;
  }
  tcp_conn *c = tcp_conn_new(t, fd, true, st);
  if (c == NULL) {
    close(fd);
    target_end(g, -ENOMEM, NULL);
    return;
  }
  c->target = g;
  g->conn = c;
  if (st == TCP_HELLO) {
    int rc = tcp_conn_start_handshake(c);
    if (rc != 0)
      tcp_conn_close(c, -1, rc, true);
  }
}

/* The answer of a DNS lookup for g's address. */
static void on_resolved(void *arg, int rc, const struct sockaddr *sa, socklen_t sl)
{
  tcp_target *g = arg;
  tcp_state *t = g->t;
  g->resolving = NULL;
  if (rc != 0) {
    t->c->resolve_failures++;
    MESH_LOG_RL(MESH_LOG_WARN, "tcp", "dial /%s/%s: cannot resolve: %s (dial failed)",
                g->addr.kind == MESH_MA_DNS4   ? "dns4"
                : g->addr.kind == MESH_MA_DNS6 ? "dns6"
                                               : "dns",
                g->addr.host, mesh_resolve_strerror(rc));
    target_end(g, -EHOSTUNREACH, NULL);
    return;
  }
  target_connect_to(t, g, sa, sl);
}

/* Starts one dial attempt: IP addresses connect at once; DNS names are
 * looked up first, off the loop's critical path (net/resolve.h). */
static void target_connect(tcp_state *t, tcp_target *g)
{
  t->c->connections_out++;
  if (g->addr.kind == MESH_MA_IP4 || g->addr.kind == MESH_MA_IP6) {
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc = mesh_multiaddr_resolve(&g->addr, &ss, &sl);
    if (rc != 0) {
      target_end(g, rc, NULL);
      return;
    }
    target_connect_to(t, g, (struct sockaddr *)&ss, sl);
    return;
  }
  int rc = t->resolver != NULL ? 0 : mesh_resolver_new(t->base, NULL, &t->resolver);
  if (rc == 0)
    rc = mesh_resolve_start(t->resolver, &g->addr, on_resolved, g, &g->resolving);
  if (rc != 0) {
    t->c->resolve_failures++;
    MESH_LOG_RL(MESH_LOG_WARN, "tcp", "dial %s: cannot start a lookup: %s", g->addr.host,
                mesh_strerror(rc));
    target_end(g, rc, NULL);
  }
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
  tcp_state *t = arg;
  for (int i = 0; i < t->nlisteners; i++)
    event_add(t->listeners[i].ev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
  tcp_state *t = arg;
  for (int k = 0; k < ACCEPT_BATCH; k++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    int fd = mesh_accept_nb(lfd, (struct sockaddr *)&ss, &sl);
    if (fd < 0) {
      errno = -fd;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        /* Out of descriptors: stop accepting for a moment instead of
         * spinning on a listener that stays readable. */
        MESH_LOG_RL(MESH_LOG_WARN, "tcp", "accept: %s; pausing", mesh_strerror(-errno));
        t->c->dropped[MESH_DROP_CONN_LIMIT]++;
        for (int i = 0; i < t->nlisteners; i++)
          event_del(t->listeners[i].ev);
        struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
        evtimer_add(t->accept_pause, &tv);
      }
      return;
    }
    t->c->connections_in++;
    tcp_source src;
    source_of(&ss, &src);
    if (!source_admits(t, &src)) {
      t->c->dropped[MESH_DROP_SOURCE_LIMIT]++;
      log_source_refused(t, &src, true);
      close(fd);
      continue;
    }
    if (!make_room(t)) {
      t->c->dropped[MESH_DROP_CONN_LIMIT]++;
      close(fd);
      continue;
    }
    set_sockopts(t, fd);
    tcp_conn *c = tcp_conn_new(t, fd, false, TCP_HELLO);
    if (c == NULL) {
      close(fd);
      continue;
    }
    c->src = src;
    int rc = tcp_conn_start_handshake(c);
    if (rc != 0)
      tcp_conn_close(c, -1, rc, true);
  }
}

/* --- ops --- */

static int tcp_init(mesh_net *net, const mesh_net_options *opt, mesh_transport_counters *counters,
                    void **state)
{
  tcp_state *t = calloc(1, sizeof *t);
  if (t == NULL)
    return -ENOMEM;
  t->net = net;
  t->opt = *opt;
  t->c = counters;
  t->base = opt->base;
  /* A chunk never exceeds frame-max: any message a peer with the same or a
   * larger frame-max accepts then travels in frames it accepts too. */
  if (t->opt.chunk_size > t->opt.frame_max)
    t->opt.chunk_size = t->opt.frame_max;
  if (t->opt.bulk_queue_max == 0)
    t->opt.bulk_queue_max = 1u << 20; /* options filled before the field existed */
  if (opt->rng_seed != 0)
    mesh_rng_seed(&t->rng, opt->rng_seed);
  else
    mesh_rng_seed_os(&t->rng);
  t->accept_pause = evtimer_new(t->base, on_accept_resume, t);
  t->scratch = malloc(READ_CHUNK);
  if (t->accept_pause == NULL || t->scratch == NULL) {
    if (t->accept_pause != NULL)
      event_free(t->accept_pause);
    free(t->scratch);
    free(t);
    return -ENOMEM;
  }
  *state = t;
  return 0;
}

static void tcp_fini(void *state)
{
  tcp_state *t = state;
  /* Attempts end unreported: nobody is listening any more. */
  while (t->targets != NULL)
    target_free(t->targets);
  mesh_resolver_free(t->resolver);
  while (t->conns != NULL)
    tcp_conn_close(t->conns, -1, 0, false);
  while (t->dead != NULL) {
    tcp_conn *c = t->dead;
    t->dead = c->next;
    tcp_conn_free(c);
  }
  for (int i = 0; i < t->nlisteners; i++) {
    event_free(t->listeners[i].ev);
    close(t->listeners[i].fd);
  }
  if (t->reaper != NULL)
    event_free(t->reaper);
  event_free(t->accept_pause);
  free(t->scratch);
  memset(&t->opt.psk, 0, sizeof t->opt.psk);
  free(t);
}

static int tcp_listen(void *state, const mesh_multiaddr *addr, mesh_multiaddr *bound)
{
  tcp_state *t = state;
  if (t->nlisteners == TCP_MAX_LISTENERS)
    return -ENOSPC;
  struct sockaddr_storage ss;
  socklen_t sl;
  int rc = mesh_multiaddr_resolve(addr, &ss, &sl);
  if (rc != 0)
    return rc;
  int fd = mesh_socket_nb(ss.ss_family, SOCK_STREAM, 0);
  if (fd < 0)
    return fd;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 1024) != 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  if (bound != NULL) {
    sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
      mesh_multiaddr_from_sockaddr((struct sockaddr *)&ss, sl, "tcp", bound);
  }
  struct event *ev = event_new(t->base, fd, EV_READ | EV_PERSIST, on_accept, t);
  if (ev == NULL || event_add(ev, NULL) != 0) {
    if (ev != NULL)
      event_free(ev);
    close(fd);
    return -ENOMEM;
  }
  t->listeners[t->nlisteners].fd = fd;
  t->listeners[t->nlisteners].ev = ev;
  t->nlisteners++;
  return 0;
}

static int tcp_dial(void *state, const mesh_multiaddr *addr, const mesh_peer_id *expect,
                    uint64_t token)
{
  tcp_state *t = state;
  if (expect != NULL && mesh_peer_id_eq(expect, &t->opt.identity->id))
    return -ELOOP;
  tcp_target *g = calloc(1, sizeof *g);
  if (g == NULL)
    return -ENOMEM;
  g->t = t;
  g->addr = *addr;
  g->token = token;
  if (expect != NULL) {
    g->has_expect = true;
    g->expect = *expect;
  }
  g->next = t->targets;
  t->targets = g;
  target_connect(t, g);
  return 0;
}

static bool tcp_can_send(void *state, const mesh_peer_id *peer, mesh_class cls)
{
  return tcp_find_up(state, peer) != NULL;
}

static int tcp_frame_cipher(void *state, const mesh_peer_id *peer)
{
  tcp_conn *c = tcp_find_up(state, peer);
  return c != NULL ? c->tx.cipher : -ENOTCONN;
}

static int tcp_send(void *state, const mesh_peer_id *peer, mesh_channel ch, mesh_class cls,
                    const uint8_t *buf, size_t len)
{
  tcp_state *t = state;
  if (len > t->opt.frame_max)
    return -EMSGSIZE;
  tcp_conn *c = tcp_find_up(t, peer);
  if (c == NULL) {
    t->c->dropped[MESH_DROP_NO_ROUTE]++;
    return -ENOTCONN;
  }
  return tcp_conn_send(c, ch, cls, buf, len);
}

/* Closes c cleanly, its dial attempt (if any) detached first so that the
 * caller reports it. */
static void close_quietly(tcp_conn *c)
{
  if (c->target != NULL) {
    c->target->conn = NULL;
    c->target = NULL;
  }
  tcp_conn_close(c, -1, 0, true);
}

/*
 * Disconnecting a peer ends everything that leads to it: a dial of it
 * still connecting or handshaking (reported as -ECANCELED), an inbound
 * connection whose handshake has named it and waits for the finish frame,
 * and its established connection (a down event follows). A handshake left
 * running would otherwise bring the peer back up a round trip later.
 */
static int tcp_disconnect(void *state, const mesh_peer_id *peer)
{
  tcp_state *t = state;
  int rc = -ENOTCONN;
  tcp_target *g = t->targets;
  while (g != NULL) {
    if (!(g->has_expect && mesh_peer_id_eq(&g->expect, peer))) {
      g = g->next;
      continue;
    }
    tcp_conn *c = g->conn;
    if (c != NULL)
      close_quietly(c); /* detaches g first */
    target_end(g, -ECANCELED, NULL);
    rc = 0;
    g = t->targets; /* the report may have changed the list: start over */
  }
  tcp_conn *next;
  for (tcp_conn *c = t->conns; c != NULL; c = next) {
    next = c->next; /* closing c unlinks it */
    bool named = c->state == TCP_FINISH || c->state == TCP_UP;
    if (named && mesh_peer_id_eq(&c->peer, peer)) {
      close_quietly(c);
      rc = 0;
    }
  }
  return rc;
}

static void tcp_set_epoch(void *state, uint64_t epoch)
{
  tcp_state *t = state;
  t->opt.epoch = epoch;
}

/* Traffic with peer over another transport (RDMA, UDP) counts as this
 * connection's: received, the peer is alive and no idle timeout is due;
 * sent, the peer hears from us and no keepalive is due. */
static void tcp_traffic(void *state, const mesh_peer_id *peer, bool sent)
{
  tcp_state *t = state;
  tcp_conn *c = tcp_find_up(t, peer);
  if (c == NULL)
    return;
  if (sent)
    c->last_tx = mesh_net_now(t->net);
  else
    c->last_rx = mesh_net_now(t->net);
}

const mesh_transport_ops mesh_tcp_transport = {
    .scheme = "tcp",
    .role = MESH_TRANSPORT_CONNECTIONS,
    .init = tcp_init,
    .fini = tcp_fini,
    .listen = tcp_listen,
    .dial = tcp_dial,
    .can_send = tcp_can_send,
    .send = tcp_send,
    .disconnect = tcp_disconnect,
    .peer_event = NULL,
    .set_epoch = tcp_set_epoch,
    .frame_cipher = tcp_frame_cipher,
    .traffic = tcp_traffic,
};
