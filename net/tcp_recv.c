/*
 * What a TCP connection reads: the peer's Hello and finish frame, bounded
 * before the handshake ends, then frames opened and delivered (stream
 * messages reassembled from their chunks). See net/tcp_internal.h.
 */
#include "net/tcp_internal.h"

#include "src/base/err.h"
#include "src/base/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int hs_drop(int rc)
{
  switch (rc) {
  case -EACCES:
    return MESH_DROP_BAD_PSK;
  case -MESH_EAUTH:
    return MESH_DROP_BAD_SIGNATURE;
  case -EPERM:
    return MESH_DROP_PEER_ID_MISMATCH;
  case -ELOOP:
    return MESH_DROP_SELF;
  case -ENOPROTOOPT:
    return MESH_DROP_NO_CIPHER;
  default:
    return MESH_DROP_HANDSHAKE_MALFORMED;
  }
}

/*
 * An inbound connection whose Hello is our own: this node dialled itself
 * (a --join list that names every node, this one too). The dialling end
 * would only see the connection close, so find it here, by its socket's
 * local address, and end it with -ELOOP: its dial attempt then says so, and
 * the connection manager stops dialling that address.
 */
static void close_self_dial(tcp_conn *in)
{
  struct sockaddr_storage peer;
  socklen_t pl = sizeof peer;
  if (getpeername(in->fd, (struct sockaddr *)&peer, &pl) != 0)
    return;
  for (tcp_conn *o = in->t->conns; o != NULL; o = o->next) {
    if (!o->outbound || o->state == TCP_UP || o->fd < 0)
      continue;
    struct sockaddr_storage local;
    socklen_t ll = sizeof local;
    if (getsockname(o->fd, (struct sockaddr *)&local, &ll) == 0 && ll == pl &&
        memcmp(&local, &peer, pl) == 0) {
      tcp_conn_close(o, MESH_DROP_SELF, -ELOOP, true);
      return;
    }
  }
}

/*
 * The peer's Hello was sound but the two ends accept no frame cipher in
 * common (--frame-cipher forced differently, or an older node against a
 * forced AES-256-GCM). Says so with both offers; a listener first answers
 * with its Hello, so that the dialer can name the cause too, then both
 * close with no_cipher.
 */
static void no_common_cipher(tcp_conn *c)
{
  char ours[64], theirs[64], id[MESH_PEER_ID_TEXT_MAX];
  mesh_frame_offer_text(&c->hs->offer, ours, sizeof ours);
  mesh_frame_offer_text(&c->hs->peer_offer, theirs, sizeof theirs);
  mesh_peer_id_to_text(&c->hs->peer, id, sizeof id);
  MESH_LOG_RL(MESH_LOG_WARN, "tcp",
              "conn %llu: peer %s accepts frame ciphers %s, this node %s: no cipher in common "
              "(see --frame-cipher)",
              (unsigned long long)c->id, id, theirs, ours);
  if (!c->outbound) {
    uint8_t buf[MESH_HS_LEN_SIZE + MESH_HS_MSG_MAX];
    size_t len;
    if (mesh_hs_write_hello(c->hs, buf, sizeof buf, &len) == 0) {
      evbuffer_add(c->out, buf, len);
      (void)tcp_conn_flush(c); /* best effort: the connection closes either way */
    }
  }
  tcp_conn_close(c, MESH_DROP_NO_CIPHER, -ENOPROTOOPT, true);
}

/* Handles the peer's Hello. Returns false when c was closed. */
static bool read_hello(tcp_conn *c)
{
  uint8_t head[MESH_HS_LEN_SIZE];
  size_t avail = evbuffer_get_length(c->in);
  if (avail < MESH_HS_LEN_SIZE)
    return true;
  evbuffer_copyout(c->in, head, sizeof head);
  size_t n;
  int rc = mesh_hs_peek(head, sizeof head, &n);
  if (rc != 0) {
    tcp_conn_close(c, MESH_DROP_HANDSHAKE_MALFORMED, rc, true);
    return false;
  }
  if (avail < MESH_HS_LEN_SIZE + n)
    return true;
  uint8_t *msg = evbuffer_pullup(c->in, (ev_ssize_t)(MESH_HS_LEN_SIZE + n));
  rc = mesh_hs_read_hello(c->hs, msg + MESH_HS_LEN_SIZE, n);
  evbuffer_drain(c->in, MESH_HS_LEN_SIZE + n);
  if (rc == -ENOPROTOOPT) {
    no_common_cipher(c);
    return false;
  }
  if (rc != 0) {
    if (rc == -ELOOP && !c->outbound)
      close_self_dial(c);
    tcp_conn_close(c, hs_drop(rc), rc, true);
    return false;
  }
  if (!c->outbound) {
    uint8_t buf[MESH_HS_LEN_SIZE + MESH_HS_MSG_MAX];
    size_t len;
    size_t ext_len = 0;
    /* buf lends its room to the extension before it holds our Hello. */
    if (mesh_net_extension(c->t->net, c->id, buf, MESH_HS_EXT_MAX, &ext_len) != 0 ||
        ext_len > MESH_HS_EXT_MAX)
      ext_len = 0;
    if ((rc = mesh_hs_set_extension(c->hs, buf, ext_len)) != 0 ||
        (rc = mesh_hs_write_hello(c->hs, buf, sizeof buf, &len)) != 0) {
      tcp_conn_close(c, MESH_DROP_HANDSHAKE_MALFORMED, rc, true);
      return false;
    }
    evbuffer_add(c->out, buf, len);
  }
  c->tx = c->hs->tx;
  c->rx = c->hs->rx;
  c->peer = c->hs->peer;
  c->epoch = c->hs->peer_epoch;
  tcp_conn_set_state(c, TCP_FINISH);
  if (!c->outbound) {
    tcp_conn_send_control(c, MESH_FRAME_FINISH);
    return c->state != TCP_CLOSED;
  }
  return true;
}

static int frame_drop(int rc)
{
  switch (rc) {
  case -ESTALE:
    return MESH_DROP_REPLAY;
  case -EPROTO:
    return MESH_DROP_REORDER;
  case -MESH_EAUTH:
    return MESH_DROP_AUTH;
  case -EMSGSIZE:
    return MESH_DROP_OVERSIZE;
  default:
    return MESH_DROP_MALFORMED;
  }
}

/* Handles one authenticated data frame. Returns 0 or a drop reason + 1. */
static int data_frame(tcp_conn *c, const mesh_frame *f)
{
  tcp_state *t = c->t;
  if (f->channel < 1 || f->channel > MESH_CH_MAX)
    return MESH_DROP_MALFORMED + 1;
  /* Give back a big buffer left from the last message before the next. */
  if (!c->reasm.busy && c->reasm.cap > (64u << 10))
    mesh_frame_reasm_free(&c->reasm);
  mesh_frame_msg m;
  int rc = mesh_frame_reasm_add(&c->reasm, f, &m);
  if (rc == -EMSGSIZE || rc == -ENOMEM)
    return MESH_DROP_OVERSIZE + 1;
  if (rc < 0)
    return MESH_DROP_MALFORMED + 1;
  if (rc == 0)
    return 0;
  t->c->messages_received[m.cls]++;
  mesh_net_deliver(t->net, &c->peer, c->epoch, m.channel, m.cls, m.data, m.len);
  return 0;
}

/* Handles one whole frame of flen bytes at p, decrypting it in place.
 * Returns false when c was closed. */
static bool one_frame(tcp_conn *c, uint8_t *p, size_t flen)
{
  tcp_state *t = c->t;
  mesh_frame f;
  int rc = mesh_frame_open(&c->rx, p, flen, &f);
  if (rc != 0) {
    tcp_conn_close(c, frame_drop(rc), rc, true);
    return false;
  }
  t->c->frames_received++;
  t->c->bytes_received += flen;
  c->last_rx = mesh_net_now(t->net);
  int drop = 0;
  if (c->state == TCP_FINISH) {
    if (f.type != MESH_FRAME_FINISH || f.len != 0) {
      drop = MESH_DROP_HANDSHAKE_MALFORMED + 1;
    } else {
      if (c->outbound) {
        tcp_conn_send_control(c, MESH_FRAME_FINISH);
        if (c->state == TCP_CLOSED)
          return false;
      }
      return tcp_established(c);
    }
  } else if (f.type == MESH_FRAME_DATA) {
    drop = data_frame(c, &f);
  } else if (f.type != MESH_FRAME_KEEPALIVE) {
    drop = MESH_DROP_MALFORMED + 1;
  }
  if (c->state == TCP_CLOSED)
    return false; /* closed by a callback during delivery */
  if (drop != 0) {
    tcp_conn_close(c, drop - 1, -EBADMSG, true);
    return false;
  }
  return true;
}

/* The whole frame length at p (avail bytes): 0 with *flen 0 when the
 * length is not there yet; false when c was closed for a bad length. */
static bool frame_len(tcp_conn *c, const uint8_t *p, size_t avail, size_t *flen)
{
  size_t max_body = c->t->opt.frame_max + MESH_FRAME_MIN_BODY;
  int rc = mesh_frame_peek(p, avail, max_body, flen);
  if (rc != 0) {
    tcp_conn_close(c, frame_drop(rc), rc, true);
    return false;
  }
  return true;
}

/* Handles every whole frame in the input buffer. Returns false when c was
 * closed. */
static bool read_frames(tcp_conn *c)
{
  while (c->state == TCP_FINISH || c->state == TCP_UP) {
    size_t avail = evbuffer_get_length(c->in);
    uint8_t head[MESH_FRAME_LEN_SIZE];
    if (avail < sizeof head)
      return true;
    evbuffer_copyout(c->in, head, sizeof head);
    size_t flen;
    if (!frame_len(c, head, sizeof head, &flen))
      return false;
    if (avail < flen)
      return true;
    if (!one_frame(c, evbuffer_pullup(c->in, (ev_ssize_t)flen), flen))
      return false;
    evbuffer_drain(c->in, flen);
  }
  return c->state != TCP_CLOSED;
}

/* Handles the whole frames among n bytes at p (the scratch buffer, when
 * nothing was left over from earlier reads), so that bulk data is
 * decrypted where it was read, without a copy. Returns the bytes used, or
 * -1 when c was closed. */
static long scratch_frames(tcp_conn *c, uint8_t *p, size_t n)
{
  size_t off = 0;
  while ((c->state == TCP_FINISH || c->state == TCP_UP) && n - off >= MESH_FRAME_LEN_SIZE) {
    size_t flen;
    if (!frame_len(c, p + off, n - off, &flen))
      return -1;
    if (n - off < flen)
      break;
    if (!one_frame(c, p + off, flen))
      return -1;
    off += flen;
  }
  return (long)off;
}

/* Closes c after a failed or ended read (n <= 0). Mid-frame or
 * mid-handshake, an end is a truncation. */
static void read_ended(tcp_conn *c, ssize_t n, bool mid)
{
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
      return;
    int err = -errno;
    tcp_conn_close(c, mid ? MESH_DROP_TRUNCATED : -1, err, true);
    return;
  }
  tcp_conn_close(c, mid ? MESH_DROP_TRUNCATED : -1, 0, true);
}

/* Reads at most want bytes (through the scratch buffer) onto the end of
 * c->in, which holds a partial frame or handshake message. Returns false
 * when nothing came or c was closed. */
static bool read_to_input(tcp_conn *c, size_t want)
{
  ssize_t n = read(c->fd, c->t->scratch, want);
  if (n <= 0) {
    read_ended(c, n, true);
    return false;
  }
  if (evbuffer_add(c->in, c->t->scratch, (size_t)n) != 0) {
    tcp_conn_close(c, -1, -ENOMEM, true);
    return false;
  }
  return true;
}

/*
 * Reads of an authenticated connection. Every read lands in the
 * transport's scratch buffer (libevent 2.1's evbuffer_read reads at most
 * 4 KiB per call, a loop turn per 4 KiB of bulk traffic) and whole frames
 * are decrypted there, in place, without a copy. The partial frame a read
 * ends with is carried in c->in and moved back to the front of the scratch
 * buffer before the next read, so the frames after it are handled in place
 * too: one copy of at most one frame per read. A frame too large for that
 * (over half the scratch buffer; peers with a big chunk size) is gathered
 * in c->in instead. The scratch buffer is only used within one on_read:
 * callbacks made from here never read a socket.
 */
static void read_up(tcp_conn *c)
{
  tcp_state *t = c->t;
  size_t carry = evbuffer_get_length(c->in);
  if (carry >= MESH_FRAME_LEN_SIZE) {
    uint8_t head[MESH_FRAME_LEN_SIZE];
    evbuffer_copyout(c->in, head, sizeof head);
    size_t flen;
    if (!frame_len(c, head, sizeof head, &flen))
      return;
    if (flen > READ_CHUNK / 2) {
      /* A big frame: gather it in c->in. */
      if (read_to_input(c, READ_CHUNK))
        read_frames(c);
      return;
    }
  }
  if (carry > 0)
    evbuffer_remove(c->in, t->scratch, carry);
  ssize_t n = read(c->fd, t->scratch + carry, READ_CHUNK - carry);
  if (n <= 0) {
    /* Put the carried bytes back: a read that would block ends nothing. */
    if (carry > 0 && evbuffer_add(c->in, t->scratch, carry) != 0) {
      tcp_conn_close(c, -1, -ENOMEM, true);
      return;
    }
    read_ended(c, n, carry > 0);
    return;
  }
  size_t have = carry + (size_t)n;
  long used = scratch_frames(c, t->scratch, have);
  if (used < 0)
    return;
  if ((size_t)used < have && evbuffer_add(c->in, t->scratch + used, have - (size_t)used) != 0)
    tcp_conn_close(c, -1, -ENOMEM, true);
}

void tcp_conn_on_read(evutil_socket_t fd, short what, void *arg)
{
  tcp_conn *c = arg;
  if (c->state == TCP_UP) {
    read_up(c);
    return;
  }
  /* Before the handshake ends, read no more than a Hello and a finish frame
   * can need, so that an unauthenticated peer costs bounded memory. */
  size_t cap = MESH_HS_LEN_SIZE + MESH_HS_MSG_MAX + MESH_FRAME_OVERHEAD;
  size_t have = evbuffer_get_length(c->in);
  size_t want = have < cap ? cap - have : 0;
  if (want == 0) {
    tcp_conn_close(c, MESH_DROP_HANDSHAKE_MALFORMED, -EBADMSG, true);
    return;
  }
  if (!read_to_input(c, want))
    return;
  if (c->state == TCP_HELLO && !read_hello(c))
    return;
  if (c->state == TCP_FINISH || c->state == TCP_UP)
    read_frames(c);
}
