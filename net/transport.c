/* The peer network: transports registered by scheme, which one carries each message, and the
 * callbacks they share (net/transport.h). */
#include "net/transport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct mesh_net {
  mesh_net_options opt;
  struct {
    const mesh_transport_ops *ops; /* the outermost layer: what the net calls */
    void *state;
    mesh_transport_counters counters;
    /* layer[0] is the transport itself, then each decorator around it
     * (mesh_net_wrap), innermost first. */
    struct {
      const mesh_transport_ops *ops;
      void *state;
    } layer[1 + MESH_NET_MAX_WRAPS];
    int nlayer;
  } t[MESH_NET_MAX_TRANSPORTS];
  int nt;
  struct {
    mesh_net_wrap_fn fn;
    void (*release)(void *arg);
    void *arg; /* owned by the net when release is set */
  } wrap[MESH_NET_MAX_WRAPS];
  int nwrap;
  mesh_net_message_fn msg_fn;
  void *msg_arg;
  mesh_net_peer_fn peer_fn;
  void *peer_arg;
  mesh_net_dial_fn dial_fn;
  void *dial_arg;
  mesh_net_writable_fn writable_fn;
  void *writable_arg;
  mesh_net_extension_fn ext_fn;
  void *ext_arg;
  mesh_net_member_fn member_fn; /* who holds a member's slot; NULL: every authenticated peer */
  void *member_arg;
};

static const char *const drop_names[MESH_DROP__COUNT] = {
    [MESH_DROP_QUEUE_FULL] = "queue_full",
    [MESH_DROP_NO_ROUTE] = "no_route",
    [MESH_DROP_BAD_PSK] = "bad_psk",
    [MESH_DROP_BAD_SIGNATURE] = "bad_signature",
    [MESH_DROP_PEER_ID_MISMATCH] = "peer_id_mismatch",
    [MESH_DROP_HANDSHAKE_MALFORMED] = "handshake_malformed",
    [MESH_DROP_HANDSHAKE_TIMEOUT] = "handshake_timeout",
    [MESH_DROP_SELF] = "self",
    [MESH_DROP_REPLAY] = "replay",
    [MESH_DROP_REORDER] = "reorder",
    [MESH_DROP_AUTH] = "auth",
    [MESH_DROP_MALFORMED] = "malformed",
    [MESH_DROP_OVERSIZE] = "oversize",
    [MESH_DROP_TRUNCATED] = "truncated",
    [MESH_DROP_IDLE_TIMEOUT] = "idle_timeout",
    [MESH_DROP_CONN_LIMIT] = "conn_limit",
    [MESH_DROP_DUPLICATE] = "duplicate",
    [MESH_DROP_STALE_EPOCH] = "stale_epoch",
    [MESH_DROP_UNJOINED] = "unjoined",
    [MESH_DROP_SOURCE_LIMIT] = "source_limit",
    [MESH_DROP_MEMBER_RESERVE] = "member_reserve",
    [MESH_DROP_NO_CIPHER] = "no_cipher",
};

const char *mesh_net_drop_name(mesh_net_drop d)
{
  if ((int)d < 0 || d >= MESH_DROP__COUNT)
    return "unknown";
  return drop_names[d];
}

void mesh_net_options_default(mesh_net_options *o)
{
  memset(o, 0, sizeof *o);
  o->max_connections = 256;
  o->frame_max = 1u << 20;
  o->handshake_timeout_ms = 5000;
  o->keepalive_ms = 2000;
  o->idle_timeout_ms = 10000;
  o->datagram_queue_max = 256u << 10;
  o->stream_queue_max = 4u << 20;
  o->chunk_size = 16u << 10;
  o->bulk_queue_max = 1u << 20;
  o->member_reserve_pct = 25;
  o->max_per_source = 16;
  o->unjoined_grace_ms = 10000;
  mesh_frame_offer_default(&o->frame_offer);
}

int mesh_net_new(const mesh_net_options *opt, mesh_net **out)
{
  if (opt->identity == NULL || opt->base == NULL || opt->max_connections < 1 ||
      opt->frame_max < 1 || opt->chunk_size < 1 || opt->frame_max > (64u << 20) ||
      opt->member_reserve_pct < 0 || opt->member_reserve_pct > 90 || opt->max_per_source < 1)
    return -EINVAL;
  mesh_net *net = calloc(1, sizeof *net);
  if (net == NULL)
    return -ENOMEM;
  net->opt = *opt;
  int rc = mesh_net_register(net, &mesh_tcp_transport);
  if (rc != 0) {
    free(net);
    return rc;
  }
  *out = net;
  return 0;
}

/* Puts decorator w around transport i. */
static int wrap_one(mesh_net *net, int i, int w)
{
  const mesh_transport_ops *ops = NULL;
  void *state = NULL;
  int rc = net->wrap[w].fn(net->wrap[w].arg, net->t[i].ops, net->t[i].state, &ops, &state);
  if (rc != 0)
    return rc;
  int k = net->t[i].nlayer++;
  net->t[i].layer[k].ops = ops;
  net->t[i].layer[k].state = state;
  net->t[i].ops = ops;
  net->t[i].state = state;
  return 0;
}

/* Frees transport i's layers down to keep (0: the transport itself too),
 * outermost first. */
static void unwrap(mesh_net *net, int i, int keep)
{
  while (net->t[i].nlayer > keep) {
    int k = --net->t[i].nlayer;
    net->t[i].layer[k].ops->fini(net->t[i].layer[k].state);
    if (k > 0) {
      net->t[i].ops = net->t[i].layer[k - 1].ops;
      net->t[i].state = net->t[i].layer[k - 1].state;
    }
  }
}

void mesh_net_free(mesh_net *net)
{
  if (net == NULL)
    return;
  for (int i = net->nt - 1; i >= 0; i--)
    unwrap(net, i, 0);
  /* After the transports: a decorator's own state may point into arg. */
  for (int w = net->nwrap - 1; w >= 0; w--)
    if (net->wrap[w].release != NULL)
      net->wrap[w].release(net->wrap[w].arg);
  memset(&net->opt.psk, 0, sizeof net->opt.psk);
  free(net);
}

int mesh_net_register(mesh_net *net, const mesh_transport_ops *ops)
{
  for (int i = 0; i < net->nt; i++)
    if (strcmp(net->t[i].ops->scheme, ops->scheme) == 0)
      return -EEXIST;
  if (net->nt == MESH_NET_MAX_TRANSPORTS)
    return -ENOSPC;
  /* One connection transport, first; paths after it, never dialling. */
  bool first = net->nt == 0;
  if ((ops->role == MESH_TRANSPORT_CONNECTIONS) != first)
    return -EINVAL;
  if (ops->role == MESH_TRANSPORT_PATH && (ops->listen != NULL || ops->dial != NULL))
    return -EINVAL;
  int i = net->nt;
  memset(&net->t[i].counters, 0, sizeof net->t[i].counters);
  void *state = NULL;
  int rc = ops->init(net, &net->opt, &net->t[i].counters, &state);
  if (rc != 0)
    return rc;
  net->t[i].layer[0].ops = net->t[i].ops = ops;
  net->t[i].layer[0].state = net->t[i].state = state;
  net->t[i].nlayer = 1;
  for (int w = 0; w < net->nwrap; w++) {
    rc = wrap_one(net, i, w);
    if (rc != 0) {
      unwrap(net, i, 0);
      return rc;
    }
  }
  net->nt++;
  return 0;
}

int mesh_net_wrap(mesh_net *net, mesh_net_wrap_fn fn, void (*release)(void *arg), void *arg)
{
  if (net->nwrap == MESH_NET_MAX_WRAPS)
    return -ENOSPC;
  int w = net->nwrap;
  net->wrap[w].fn = fn;
  net->wrap[w].release = release;
  net->wrap[w].arg = arg;
  for (int i = 0; i < net->nt; i++) {
    int rc = wrap_one(net, i, w);
    if (rc != 0) {
      for (int k = 0; k < i; k++)
        unwrap(net, k, net->t[k].nlayer - 1);
      return rc;
    }
  }
  net->nwrap++;
  return 0;
}

int mesh_net_set_epoch(mesh_net *net, uint64_t epoch)
{
  if (epoch <= net->opt.epoch)
    return -ESTALE;
  net->opt.epoch = epoch;
  for (int i = 0; i < net->nt; i++)
    if (net->t[i].ops->set_epoch != NULL)
      net->t[i].ops->set_epoch(net->t[i].state, epoch);
  return 0;
}

uint64_t mesh_net_epoch(const mesh_net *net)
{
  return net->opt.epoch;
}

void mesh_net_on_message(mesh_net *net, mesh_net_message_fn fn, void *arg)
{
  net->msg_fn = fn;
  net->msg_arg = arg;
}

void mesh_net_on_peer(mesh_net *net, mesh_net_peer_fn fn, void *arg)
{
  net->peer_fn = fn;
  net->peer_arg = arg;
}

void mesh_net_on_writable(mesh_net *net, mesh_net_writable_fn fn, void *arg)
{
  net->writable_fn = fn;
  net->writable_arg = arg;
}

void mesh_net_set_extension(mesh_net *net, mesh_net_extension_fn fn, void *arg)
{
  net->ext_fn = fn;
  net->ext_arg = arg;
}

void mesh_net_set_member_check(mesh_net *net, mesh_net_member_fn fn, void *arg)
{
  net->member_fn = fn;
  net->member_arg = arg;
}

static int find_scheme(const mesh_net *net, const char *scheme)
{
  for (int i = 0; i < net->nt; i++)
    if (strcmp(net->t[i].ops->scheme, scheme) == 0)
      return i;
  return -1;
}

int mesh_net_listen(mesh_net *net, const char *addr, mesh_multiaddr *bound)
{
  mesh_multiaddr a;
  int rc = mesh_multiaddr_parse(addr, &a, NULL);
  if (rc != 0)
    return rc;
  int i = find_scheme(net, a.scheme);
  if (i < 0 || net->t[i].ops->listen == NULL)
    return -EPROTONOSUPPORT;
  mesh_multiaddr got = a;
  rc = net->t[i].ops->listen(net->t[i].state, &a, &got);
  if (rc != 0)
    return rc;
  for (int k = 0; k < net->nt; k++)
    if (k != i && net->t[k].ops->listened != NULL)
      net->t[k].ops->listened(net->t[k].state, &got);
  if (bound != NULL)
    *bound = got;
  return 0;
}

void mesh_net_on_dial(mesh_net *net, mesh_net_dial_fn fn, void *arg)
{
  net->dial_fn = fn;
  net->dial_arg = arg;
}

void mesh_net_dial_done(mesh_net *net, uint64_t token, int rc, const mesh_peer_id *peer)
{
  if (net->dial_fn != NULL)
    net->dial_fn(net->dial_arg, token, rc, peer);
}

int mesh_net_dial(mesh_net *net, const char *addr, const mesh_peer_id *expect, uint64_t token)
{
  mesh_multiaddr a;
  int rc = mesh_multiaddr_parse(addr, &a, NULL);
  if (rc != 0)
    return rc;
  if (expect != NULL) {
    if (a.has_peer && !mesh_peer_id_eq(&a.peer, expect))
      return -EINVAL;
    a.peer = *expect;
    a.has_peer = true;
  }
  int i = find_scheme(net, a.scheme);
  if (i < 0 || net->t[i].ops->dial == NULL)
    return -EPROTONOSUPPORT;
  return net->t[i].ops->dial(net->t[i].state, &a, a.has_peer ? &a.peer : NULL, token);
}

/* Tells the transports other than the i-th that a message went to or came
 * from peer through it (see the traffic op). */
static void note_traffic(mesh_net *net, int i, const mesh_peer_id *peer, bool sent)
{
  for (int k = 0; k < net->nt; k++)
    if (k != i && net->t[k].ops->traffic != NULL)
      net->t[k].ops->traffic(net->t[k].state, peer, sent);
}

int mesh_net_send(mesh_net *net, const mesh_peer_id *peer, mesh_channel ch, mesh_class cls,
                  const uint8_t *buf, size_t len)
{
  if ((int)ch < 1 || (int)ch > MESH_CH_MAX || (int)cls < 0 || (int)cls >= MESH_CLASS_COUNT)
    return -EINVAL;
  /* Bulk is a stream class only: a dropped datagram would leave a hole. */
  if ((ch == MESH_CH_BULK && cls != MESH_CLASS_STREAM) || ch == MESH_CH_BULK_SEQ)
    return -EINVAL;
  /* Datagrams take the last registered transport that can carry them (the
   * accelerators register after TCP: UDP, then RDMA), and the next one down
   * when it is too big for that one; streams take the first (TCP). */
  if (cls == MESH_CLASS_DATAGRAM) {
    for (int i = net->nt - 1; i >= 0; i--) {
      if (!net->t[i].ops->can_send(net->t[i].state, peer, cls))
        continue;
      int rc = net->t[i].ops->send(net->t[i].state, peer, ch, cls, buf, len);
      if (rc == -EMSGSIZE && i > 0)
        continue;
      if (rc == 0)
        note_traffic(net, i, peer, true);
      return rc;
    }
  } else if (ch == MESH_CH_BULK) {
    /* Bulk streams take the last transport that can carry them: RDMA says
     * it can only where it keeps them whole and in order (net/rdma_bulk.h),
     * else TCP. */
    for (int i = net->nt - 1; i >= 0; i--)
      if (net->t[i].ops->can_send(net->t[i].state, peer, cls)) {
        int rc = net->t[i].ops->send(net->t[i].state, peer, ch, cls, buf, len);
        if (rc == 0)
          note_traffic(net, i, peer, true);
        return rc;
      }
  } else {
    for (int i = 0; i < net->nt; i++)
      if (net->t[i].ops->can_send(net->t[i].state, peer, cls))
        return net->t[i].ops->send(net->t[i].state, peer, ch, cls, buf, len);
  }
  net->t[0].counters.dropped[MESH_DROP_NO_ROUTE]++;
  return -ENOTCONN;
}

int mesh_net_disconnect(mesh_net *net, const mesh_peer_id *peer)
{
  int rc = -ENOTCONN;
  for (int i = net->nt - 1; i >= 0; i--)
    if (net->t[i].ops->disconnect != NULL && net->t[i].ops->disconnect(net->t[i].state, peer) == 0)
      rc = 0;
  return rc;
}

void *mesh_net_state_of(const mesh_net *net, const char *scheme)
{
  int i = find_scheme(net, scheme);
  return i < 0 ? NULL : net->t[i].layer[0].state;
}

const mesh_transport_counters *mesh_net_counters_of(const mesh_net *net, const char *scheme)
{
  int i = find_scheme(net, scheme);
  return i < 0 ? NULL : &net->t[i].counters;
}

void mesh_net_counters_total(const mesh_net *net, mesh_transport_counters *out)
{
  memset(out, 0, sizeof *out);
  /* The struct is all uint64_t: add field by field through an array view. */
  uint64_t *o = (uint64_t *)out;
  size_t n = sizeof *out / sizeof(uint64_t);
  for (int i = 0; i < net->nt; i++) {
    const uint64_t *c = (const uint64_t *)&net->t[i].counters;
    for (size_t k = 0; k < n; k++)
      o[k] += c[k];
  }
}

const char *mesh_net_scheme(const mesh_net *net, int i)
{
  return (i < 0 || i >= net->nt) ? NULL : net->t[i].ops->scheme;
}

int mesh_net_transport_count(const mesh_net *net)
{
  return net->nt;
}

int mesh_net_send_via(mesh_net *net, const char *scheme, const mesh_peer_id *peer, mesh_channel ch,
                      mesh_class cls, const uint8_t *buf, size_t len)
{
  int i = find_scheme(net, scheme);
  if (i < 0 || !net->t[i].ops->can_send(net->t[i].state, peer, cls))
    return -ENOTCONN;
  return net->t[i].ops->send(net->t[i].state, peer, ch, cls, buf, len);
}

void mesh_net_deliver(mesh_net *net, const mesh_peer_id *from, uint64_t epoch, mesh_channel ch,
                      mesh_class cls, const uint8_t *buf, size_t len)
{
  if (ch == MESH_CH_BULK_SEQ) {
    /* The net's own channel: the transport that sequences bulk takes it;
     * without one (no RDMA here) the message has nowhere to go. */
    for (int i = 0; i < net->nt; i++) {
      if (net->t[i].ops->bulk_seq != NULL) {
        net->t[i].ops->bulk_seq(net->t[i].state, from, buf, len);
        return;
      }
    }
    net->t[0].counters.dropped[MESH_DROP_MALFORMED]++;
    return;
  }
  /* Datagrams may come over any transport: the others hear of it (a
   * connection's own frames already count for itself, where the op finds
   * them current). */
  if (cls == MESH_CLASS_DATAGRAM)
    note_traffic(net, -1, from, false);
  if (net->msg_fn != NULL)
    net->msg_fn(net->msg_arg, from, epoch, ch, cls, buf, len);
}

void mesh_net_emit_peer(mesh_net *net, const mesh_net_peer_event *ev)
{
  for (int i = 0; i < net->nt; i++)
    if (net->t[i].ops->peer_event != NULL && strcmp(net->t[i].ops->scheme, ev->scheme) != 0)
      net->t[i].ops->peer_event(net->t[i].state, ev);
  if (net->peer_fn != NULL)
    net->peer_fn(net->peer_arg, ev);
}

void mesh_net_emit_transport_peer(mesh_net *net, const mesh_net_peer_event *ev)
{
  for (int i = 0; i < net->nt; i++)
    if (net->t[i].ops->peer_event != NULL && strcmp(net->t[i].ops->scheme, ev->scheme) != 0)
      net->t[i].ops->peer_event(net->t[i].state, ev);
}

void mesh_net_writable(mesh_net *net, const mesh_peer_id *peer)
{
  for (int i = 0; i < net->nt; i++)
    if (net->t[i].ops->writable != NULL)
      net->t[i].ops->writable(net->t[i].state, peer);
  if (net->writable_fn != NULL)
    net->writable_fn(net->writable_arg, peer);
}

bool mesh_net_datagrams_beside(mesh_net *net, const mesh_peer_id *peer)
{
  for (int i = 1; i < net->nt; i++)
    if (net->t[i].ops->can_send(net->t[i].state, peer, MESH_CLASS_DATAGRAM))
      return true;
  return false;
}

bool mesh_net_is_member(mesh_net *net, const mesh_peer_id *peer)
{
  return net->member_fn == NULL || net->member_fn(net->member_arg, peer);
}

int mesh_net_extension(mesh_net *net, uint64_t conn_id, uint8_t *buf, size_t cap, size_t *len)
{
  *len = 0;
  if (net->ext_fn == NULL)
    return 0;
  return net->ext_fn(net->ext_arg, conn_id, buf, cap, len);
}

mesh_time_ms mesh_net_now(mesh_net *net)
{
  return net->opt.now != NULL ? net->opt.now(net->opt.now_arg) : mesh_clock_now_ms();
}

int mesh_net_frame_cipher(const mesh_net *net, const mesh_peer_id *peer)
{
  for (int i = 0; i < net->nt; i++) {
    if (net->t[i].ops->frame_cipher == NULL)
      continue;
    int c = net->t[i].ops->frame_cipher(net->t[i].state, peer);
    if (c >= 0)
      return c;
  }
  return -ENOTCONN;
}

const char *mesh_net_route(const mesh_net *net, const mesh_peer_id *peer, mesh_class cls)
{
  if (cls == MESH_CLASS_DATAGRAM) {
    for (int i = net->nt - 1; i >= 0; i--)
      if (net->t[i].ops->can_send(net->t[i].state, peer, cls))
        return net->t[i].ops->scheme;
  } else {
    for (int i = 0; i < net->nt; i++)
      if (net->t[i].ops->can_send(net->t[i].state, peer, cls))
        return net->t[i].ops->scheme;
  }
  return NULL;
}
