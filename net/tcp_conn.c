/*
 * One TCP connection of the peer transport: its lifecycle, the datagram and
 * stream queues, chunking and sending, and keepalive (what it reads is in
 * net/tcp_recv.c). See net/tcp_internal.h for states and ownership.
 */
#include "net/tcp_internal.h"

#include "src/base/err.h"
#include "src/base/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* Fill the output buffer up to this much before waiting for the socket, so
 * that a datagram queued later waits behind at most this much stream data. */
#define HIGH_WATER(t) (2 * (t)->opt.chunk_size)

static const char *const state_names[] = {"connecting", "hello", "finish", "up", "closed"};

static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);

void tcp_conn_set_state(tcp_conn *c, tcp_conn_state st)
{
  LOG_DEBUG("tcp", "conn %llu: %s -> %s", (unsigned long long)c->id, state_names[c->state],
            state_names[st]);
  c->state = st;
}

static void queue_clear(tcp_queue *q)
{
  tcp_msg *m = q->head;
  while (m != NULL) {
    tcp_msg *n = m->next;
    free(m);
    m = n;
  }
  q->head = q->tail = NULL;
  q->bytes = 0;
}

static void queue_push(tcp_queue *q, tcp_msg *m)
{
  m->next = NULL;
  if (q->tail != NULL)
    q->tail->next = m;
  else
    q->head = m;
  q->tail = m;
  q->bytes += m->len;
}

static tcp_msg *queue_pop(tcp_queue *q)
{
  tcp_msg *m = q->head;
  q->head = m->next;
  if (q->head == NULL)
    q->tail = NULL;
  q->bytes -= m->len;
  return m;
}

static void arm_timer(tcp_conn *c, mesh_time_ms ms)
{
  struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
  evtimer_add(c->timer, &tv);
}

tcp_conn *tcp_conn_new(tcp_state *t, int fd, bool outbound, tcp_conn_state st)
{
  tcp_conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->t = t;
  c->fd = fd;
  c->id = ++t->next_id;
  c->outbound = outbound;
  c->state = st;
  c->in = evbuffer_new();
  c->out = evbuffer_new();
  c->rev = event_new(t->base, fd, EV_READ | EV_PERSIST, tcp_conn_on_read, c);
  c->wev = event_new(t->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
  c->timer = evtimer_new(t->base, on_timer, c);
  if (c->in == NULL || c->out == NULL || c->rev == NULL || c->wev == NULL || c->timer == NULL) {
    c->fd = -1; /* the caller still owns fd on failure */
    tcp_conn_free(c);
    return NULL;
  }
  mesh_frame_reasm_init(&c->reasm, t->opt.frame_max);
  c->opened = c->last_rx = c->last_tx = mesh_net_now(t->net);
  c->next = t->conns;
  if (t->conns != NULL)
    t->conns->prev = c;
  t->conns = c;
  t->nconns++;
  t->c->connections_open++;
  arm_timer(c, t->opt.handshake_timeout_ms);
  if (st == TCP_CONNECTING)
    event_add(c->wev, NULL);
  else
    event_add(c->rev, NULL);
  return c;
}

void tcp_conn_free(tcp_conn *c)
{
  if (c->rev != NULL)
    event_free(c->rev);
  if (c->wev != NULL)
    event_free(c->wev);
  if (c->timer != NULL)
    event_free(c->timer);
  if (c->in != NULL)
    evbuffer_free(c->in);
  if (c->out != NULL)
    evbuffer_free(c->out);
  if (c->fd >= 0)
    close(c->fd);
  if (c->hs != NULL) {
    mesh_hs_clear(c->hs);
    free(c->hs);
  }
  queue_clear(&c->dq);
  queue_clear(&c->sq);
  queue_clear(&c->bq);
  mesh_frame_reasm_free(&c->reasm);
  free(c->ext);
  memset(&c->tx, 0, sizeof c->tx);
  memset(&c->rx, 0, sizeof c->rx);
  memset(c->export_secret, 0, sizeof c->export_secret);
  free(c);
}

static void reap(evutil_socket_t fd, short what, void *arg)
{
  tcp_state *t = arg;
  while (t->dead != NULL) {
    tcp_conn *c = t->dead;
    t->dead = c->next;
    tcp_conn_free(c);
  }
}

void tcp_conn_close(tcp_conn *c, int drop, int err, bool emit)
{
  tcp_state *t = c->t;
  if (c->state == TCP_CLOSED)
    return;
  bool was_up = c->state == TCP_UP;
  if (drop >= 0) {
    t->c->dropped[drop]++;
    if (drop != MESH_DROP_DUPLICATE)
      MESH_LOG_RL(MESH_LOG_INFO, "tcp", "conn %llu (%s): closed: %s", (unsigned long long)c->id,
                  state_names[c->state], mesh_net_drop_name((mesh_net_drop)drop));
  }
  tcp_conn_set_state(c, TCP_CLOSED);
  event_del(c->rev);
  event_del(c->wev);
  evtimer_del(c->timer);
  if (c->fd >= 0) {
    close(c->fd);
    c->fd = -1;
  }
  /* Unlink now; free from a deferred event (a callback may be running on
   * behalf of c further up the stack). */
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    t->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  t->nconns--;
  t->c->connections_open--;
  c->prev = NULL;
  c->next = t->dead;
  t->dead = c;
  if (t->reaper == NULL)
    t->reaper = evtimer_new(t->base, reap, t);
  if (t->reaper != NULL) {
    struct timeval zero = {0, 0};
    evtimer_add(t->reaper, &zero);
  }
  if (was_up) {
    t->c->disconnects++;
    t->c->peers_up--;
  }
  if (was_up && emit) {
    mesh_net_peer_event ev = {.up = false,
                              .peer = c->peer,
                              .epoch = c->epoch,
                              .conn_id = c->id,
                              .outbound = c->outbound,
                              .scheme = "tcp",
                              .reason = err};
    mesh_net_emit_peer(t->net, &ev);
  }
  tcp_closed(c, was_up, err);
}

/* Encrypts one frame straight into the output buffer. */
static int put_frame(tcp_conn *c, const mesh_frame *f)
{
  size_t wire = mesh_frame_wire_size(f->len);
  struct evbuffer_iovec v;
  if (evbuffer_reserve_space(c->out, (ev_ssize_t)wire, &v, 1) != 1)
    return -ENOMEM;
  size_t n;
  int rc = mesh_frame_seal(&c->tx, f, v.iov_base, v.iov_len, &n);
  if (rc != 0)
    return rc;
  v.iov_len = n;
  if (evbuffer_commit_space(c->out, &v, 1) != 0)
    return -ENOMEM;
  c->t->c->frames_sent++;
  c->t->c->bytes_sent += n;
  c->last_tx = mesh_net_now(c->t->net);
  return 0;
}

int tcp_conn_flush(tcp_conn *c)
{
  while (evbuffer_get_length(c->out) > 0) {
    int n = evbuffer_write(c->out, c->fd);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        break;
      return -errno;
    }
    if (n == 0)
      break;
  }
  return 0;
}

/* Seals the next chunk of a stream message (len bytes at data, *off of
 * them sent) into the output buffer and advances *off. */
static int put_chunk(tcp_conn *c, uint8_t ch, const uint8_t *data, size_t len, size_t *off)
{
  size_t n = len - *off;
  if (n > c->t->opt.chunk_size)
    n = c->t->opt.chunk_size;
  mesh_frame f = {.type = MESH_FRAME_DATA,
                  .channel = ch,
                  .cls = MESH_CLASS_STREAM,
                  .flags = (uint8_t)((*off == 0 ? MESH_FRAME_FIRST : 0) |
                                     (*off + n == len ? MESH_FRAME_LAST : 0)),
                  .total = *off == 0 ? (uint32_t)len : 0,
                  .payload = data + *off,
                  .len = n};
  int rc = put_frame(c, &f);
  if (rc == 0)
    *off += n;
  return rc;
}

/* Watches the socket for writability while output waits. */
static void watch_output(tcp_conn *c)
{
  if (evbuffer_get_length(c->out) > 0)
    event_add(c->wev, NULL);
  else
    event_del(c->wev);
}

/* Moves queued messages into the output buffer, datagrams first, one stream
 * chunk at a time; then writes what the socket takes. */
static void pump(tcp_conn *c)
{
  tcp_state *t = c->t;
  if (c->state != TCP_UP || c->pumping)
    return;
  c->pumping = true;
  int rc = 0;
  for (;;) {
    while (rc == 0 && evbuffer_get_length(c->out) < HIGH_WATER(t)) {
      if (c->dq.head != NULL) {
        tcp_msg *m = queue_pop(&c->dq);
        mesh_frame f = {.type = MESH_FRAME_DATA,
                        .channel = m->channel,
                        .cls = MESH_CLASS_DATAGRAM,
                        .flags = MESH_FRAME_FIRST | MESH_FRAME_LAST,
                        .total = (uint32_t)m->len,
                        .payload = m->data,
                        .len = m->len};
        rc = put_frame(c, &f);
        free(m);
      } else if (c->sq.head != NULL && (c->bq.head == NULL || c->bq.head->off == 0)) {
        tcp_msg *m = c->sq.head;
        rc = put_chunk(c, m->channel, m->data, m->len, &m->off);
        if (rc == 0 && m->off == m->len)
          free(queue_pop(&c->sq));
      } else if (c->bq.head != NULL) {
        /* Bulk only when nothing else waits, or to finish the bulk message
         * already started (the receiver reassembles one at a time). */
        tcp_msg *m = c->bq.head;
        rc = put_chunk(c, m->channel, m->data, m->len, &m->off);
        if (rc == 0 && m->off == m->len)
          free(queue_pop(&c->bq));
      } else {
        break;
      }
    }
    if (rc == 0)
      rc = tcp_conn_flush(c);
    if (rc != 0 || evbuffer_get_length(c->out) >= HIGH_WATER(t) ||
        (c->dq.head == NULL && c->sq.head == NULL && c->bq.head == NULL))
      break;
  }
  c->pumping = false;
  if (rc != 0) {
    tcp_conn_close(c, -1, rc, true);
    return;
  }
  watch_output(c);
  if (c->want_writable && c->sq.bytes <= t->opt.stream_queue_max / 2 &&
      c->bq.bytes <= t->opt.bulk_queue_max / 2) {
    c->want_writable = false;
    mesh_peer_id p = c->peer;
    mesh_net_writable(t->net, &p);
  }
}

/*
 * A stream message sent while nothing is queued goes straight from the
 * caller's buffer into frames, chunk by chunk, as long as the socket takes
 * them (the same frames pump would make, with the same bound on what waits
 * in the output buffer), without first being copied into the queue.
 * Returns true when the whole message went; *off receives the bytes
 * sealed, the rest being for the queue.
 */
static bool send_direct(tcp_conn *c, uint8_t ch, const uint8_t *buf, size_t len, size_t *off,
                        int *rc)
{
  tcp_state *t = c->t;
  bool done = false;
  *off = 0;
  *rc = 0;
  for (;;) {
    while (*rc == 0 && !done && evbuffer_get_length(c->out) < HIGH_WATER(t)) {
      *rc = put_chunk(c, ch, buf, len, off);
      done = *rc == 0 && *off == len;
    }
    if (*rc == 0)
      *rc = tcp_conn_flush(c);
    if (*rc != 0 || done || evbuffer_get_length(c->out) >= HIGH_WATER(t))
      return done;
  }
}

int tcp_conn_send(tcp_conn *c, mesh_channel ch, mesh_class cls, const uint8_t *buf, size_t len)
{
  tcp_state *t = c->t;
  size_t sent = 0;
  /* Sequenced bulk (net/rdma_bulk.h) is bulk too, in the same queue so that
   * its messages keep their order. */
  bool bulk = ch == MESH_CH_BULK || ch == MESH_CH_BULK_SEQ;
  if (cls == MESH_CLASS_DATAGRAM) {
    if (c->dq.bytes + len > t->opt.datagram_queue_max) {
      t->c->dropped[MESH_DROP_QUEUE_FULL]++;
      return -ENOBUFS;
    }
  } else if (bulk && c->bq.bytes > 0 && c->bq.bytes + len > t->opt.bulk_queue_max) {
    /* Bulk has its own, smaller bound: it never fills the stream queue
     * that coordinator messages need. */
    c->want_writable = true;
    return -EAGAIN;
  } else if (!bulk && c->sq.bytes > 0 && c->sq.bytes + len > t->opt.stream_queue_max) {
    /* An empty queue takes any message up to frame-max. */
    c->want_writable = true;
    return -EAGAIN;
  } else if (c->state == TCP_UP && !c->pumping && c->dq.head == NULL && c->sq.head == NULL &&
             c->bq.head == NULL) {
    int rc;
    bool done = send_direct(c, (uint8_t)ch, buf, len, &sent, &rc);
    if (rc != 0) {
      /* As when pump fails: the connection ends, and the message with it. */
      tcp_conn_close(c, -1, rc, true);
      return 0;
    }
    if (done) {
      t->c->messages_sent[cls]++;
      watch_output(c);
      return 0;
    }
  }
  tcp_msg *m = malloc(sizeof *m + len);
  if (m == NULL)
    return -ENOMEM;
  m->channel = (uint8_t)ch;
  m->cls = (uint8_t)cls;
  m->len = len;
  m->off = sent;
  if (len > 0)
    memcpy(m->data, buf, len);
  queue_push(cls == MESH_CLASS_DATAGRAM ? &c->dq : bulk ? &c->bq : &c->sq, m);
  t->c->messages_sent[cls]++;
  pump(c);
  return 0;
}

void tcp_conn_send_control(tcp_conn *c, uint8_t type)
{
  mesh_frame f = {.type = type};
  int rc = put_frame(c, &f);
  if (rc == 0)
    rc = tcp_conn_flush(c);
  if (rc != 0) {
    tcp_conn_close(c, -1, rc, true);
    return;
  }
  if (evbuffer_get_length(c->out) > 0)
    event_add(c->wev, NULL);
}

int tcp_conn_start_handshake(tcp_conn *c)
{
  tcp_state *t = c->t;
  uint8_t ext[MESH_HS_EXT_MAX];
  size_t ext_len = 0;
  /* An accepted socket gets its extension only once the dialer's Hello has
   * passed the swarm-key and signature checks (read_hello): a stranger must
   * not cost a queue pair or a key pair. */
  if (c->outbound &&
      (mesh_net_extension(t->net, c->id, ext, sizeof ext, &ext_len) != 0 || ext_len > sizeof ext))
    ext_len = 0;
  c->hs = malloc(sizeof *c->hs);
  if (c->hs == NULL)
    return -ENOMEM;
  const mesh_peer_id *expect =
      (c->target != NULL && c->target->has_expect) ? &c->target->expect : NULL;
  c->local_epoch = t->opt.epoch;
  int rc = mesh_hs_init(c->hs, !c->outbound, t->opt.identity, &t->opt.psk, t->opt.epoch, expect,
                        ext, ext_len);
  if (rc != 0)
    return rc;
  mesh_hs_set_offer(c->hs, &t->opt.frame_offer);
  if (c->outbound) {
    uint8_t buf[MESH_HS_LEN_SIZE + MESH_HS_MSG_MAX];
    size_t n;
    if ((rc = mesh_hs_write_hello(c->hs, buf, sizeof buf, &n)) != 0)
      return rc;
    evbuffer_add(c->out, buf, n);
    if ((rc = tcp_conn_flush(c)) != 0)
      return rc;
    if (evbuffer_get_length(c->out) > 0)
      event_add(c->wev, NULL);
  }
  return 0;
}

static void on_connected(tcp_conn *c)
{
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    err = errno;
  if (err != 0) {
    /* Counted as a dial failure where the attempt ends (tcp.c). */
    tcp_conn_close(c, -1, -err, true);
    return;
  }
  event_del(c->wev);
  tcp_conn_set_state(c, TCP_HELLO);
  event_add(c->rev, NULL);
  int rc = tcp_conn_start_handshake(c);
  if (rc != 0)
    tcp_conn_close(c, -1, rc, true);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
  tcp_conn *c = arg;
  if (c->state == TCP_CONNECTING) {
    on_connected(c);
    return;
  }
  int rc = tcp_conn_flush(c);
  if (rc != 0) {
    tcp_conn_close(c, -1, rc, true);
    return;
  }
  if (c->state == TCP_UP)
    pump(c);
  else if (evbuffer_get_length(c->out) == 0)
    event_del(c->wev);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
  tcp_conn *c = arg;
  tcp_state *t = c->t;
  if (c->state != TCP_UP) {
    tcp_conn_close(c, MESH_DROP_HANDSHAKE_TIMEOUT, -ETIMEDOUT, true);
    return;
  }
  mesh_time_ms now = mesh_net_now(t->net);
  /* A member whose datagrams go over UDP or RDMA is watched by the
   * membership protocol over that path: keepalives here would only repeat
   * what its probes say, and closing the connection for silence would cost
   * a handshake to open it again. A half-open connection is found when it
   * is next used (TCP_USER_TIMEOUT, net/tcp.c), or once the peer leaves
   * the view or the other path. Back from that, the peer gets a whole idle
   * timeout before this connection is judged idle. */
  if (mesh_net_is_member(t->net, &c->peer) && mesh_net_datagrams_beside(t->net, &c->peer)) {
    if (!c->quiet)
      t->c->quiet_links++;
    c->quiet = true;
    mesh_time_ms next = t->opt.keepalive_ms / 2;
    arm_timer(c, next > 0 ? next : 1);
    return;
  }
  if (c->quiet) {
    c->quiet = false;
    if (c->last_rx < now)
      c->last_rx = now;
  }
  if (now - c->last_rx >= t->opt.idle_timeout_ms) {
    /* Bytes waiting in the socket mean the loop, not the peer, was slow
     * (the timer ran first in a late turn): read them before judging. */
    int pending = 0;
    if (ioctl(c->fd, FIONREAD, &pending) == 0 && pending > 0) {
      arm_timer(c, 1);
      return;
    }
    tcp_conn_close(c, MESH_DROP_IDLE_TIMEOUT, -ETIMEDOUT, true);
    return;
  }
  if (now - c->last_tx >= t->opt.keepalive_ms && evbuffer_get_length(c->out) == 0) {
    t->c->keepalives_sent++;
    tcp_conn_send_control(c, MESH_FRAME_KEEPALIVE);
    if (c->state == TCP_CLOSED)
      return;
  }
  mesh_time_ms next = t->opt.keepalive_ms / 2;
  arm_timer(c, next > 0 ? next : 1);
}

void tcp_conn_up(tcp_conn *c)
{
  tcp_state *t = c->t;
  if (c->hs->peer_ext_len > 0) {
    c->ext = malloc(c->hs->peer_ext_len);
    if (c->ext != NULL) {
      memcpy(c->ext, c->hs->peer_ext, c->hs->peer_ext_len);
      c->ext_len = c->hs->peer_ext_len;
    }
  }
  /* What the UDP path needs of this link: its export secret and where the
   * peer is (net/udp.h). */
  memcpy(c->export_secret, c->hs->export_secret, sizeof c->export_secret);
  c->remote_len = sizeof c->remote;
  if (getpeername(c->fd, (struct sockaddr *)&c->remote, &c->remote_len) != 0)
    c->remote_len = 0;
  mesh_hs_clear(c->hs);
  free(c->hs);
  c->hs = NULL;
  tcp_conn_set_state(c, TCP_UP);
  mesh_time_ms next = t->opt.keepalive_ms / 2;
  arm_timer(c, next > 0 ? next : 1);
  pump(c);
}

void tcp_conn_take_queues(tcp_conn *c, tcp_conn *old)
{
  c->dq = old->dq;
  c->sq = old->sq;
  c->bq = old->bq;
  /* A stream message half sent on old starts again from its beginning. */
  if (c->sq.head != NULL)
    c->sq.head->off = 0;
  if (c->bq.head != NULL)
    c->bq.head->off = 0;
  c->want_writable = old->want_writable;
  memset(&old->dq, 0, sizeof old->dq);
  memset(&old->sq, 0, sizeof old->sq);
  memset(&old->bq, 0, sizeof old->bq);
}
