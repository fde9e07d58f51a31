/*
 * The sequencing, credit and gap rules of bulk messages over RDMA
 * (net/rdma_bulk.h), without IO or a clock.
 */
#include "net/rdma_bulk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static mesh_rbulk_msg *slot(mesh_rbulk_tx *tx, uint64_t seq)
{
  return &tx->ring[seq % MESH_RBULK_RING];
}

static const mesh_rbulk_msg *cslot(const mesh_rbulk_tx *tx, uint64_t seq)
{
  return &tx->ring[seq % MESH_RBULK_RING];
}

void mesh_rbulk_tx_init(mesh_rbulk_tx *tx, size_t frame_bytes, uint32_t credit, mesh_time_ms rto)
{
  memset(tx, 0, sizeof *tx);
  tx->frame_bytes = frame_bytes > 0 ? frame_bytes : 1;
  tx->credit = credit;
  tx->rto = rto;
  tx->bytes_max = MESH_RBULK_BYTES_MAX;
}

void mesh_rbulk_tx_clear(mesh_rbulk_tx *tx)
{
  for (uint64_t s = tx->acked; s < tx->next; s++)
    free(slot(tx, s)->buf);
  memset(tx, 0, sizeof *tx);
}

static void enter_tcp(mesh_rbulk_tx *tx)
{
  tx->tcp_mode = true;
  tx->tcp_next = tx->acked;
  tx->fallbacks++;
}

int mesh_rbulk_tx_submit(mesh_rbulk_tx *tx, const uint8_t *buf, size_t len, bool rdma,
                         bool *via_rdma)
{
  if (tx->next - tx->acked >= MESH_RBULK_RING ||
      (tx->bytes_out > 0 && tx->bytes_out + len > tx->bytes_max))
    return -EAGAIN;
  if (tx->tcp_mode && tx->acked == tx->next)
    tx->tcp_mode = false;
  /* TCP mode: the earlier copies go on TCP first (this bounds what waits
   * here to one message beyond TCP's own queue). */
  if (tx->tcp_mode && tx->tcp_next != tx->next)
    return -EAGAIN;
  uint64_t frames = (len + tx->frame_bytes - 1) / tx->frame_bytes;
  /* An empty message has no frame to carry its number: TCP. */
  bool fits = rdma && len > 0 && frames <= tx->credit;
  /* After a loss, while RDMA works again: let the copies on TCP be
   * acknowledged, then go back to RDMA, rather than stay on TCP for as
   * long as the sender keeps sending. */
  if (tx->tcp_mode && fits)
    return -EAGAIN;
  bool use_rdma = fits && !tx->tcp_mode;
  if (use_rdma) {
    if (tx->frames_out + frames > tx->credit)
      return -EAGAIN;
  } else if (!tx->tcp_mode) {
    /* Switching to TCP overtakes nothing only when nothing is in flight. */
    if (tx->acked != tx->next)
      return -EAGAIN;
    tx->tcp_mode = true;
    tx->tcp_next = tx->next;
  }
  uint8_t *copy = malloc(len > 0 ? len : 1);
  if (copy == NULL)
    return -ENOMEM;
  if (len > 0)
    memcpy(copy, buf, len);
  mesh_rbulk_msg *m = slot(tx, tx->next);
  *m = (mesh_rbulk_msg){.seq = tx->next, .buf = copy, .len = len};
  if (use_rdma) {
    m->frames = (uint32_t)frames;
    tx->frames_out += (uint32_t)frames;
  }
  tx->next++;
  tx->bytes_out += len;
  *via_rdma = use_rdma;
  return 0;
}

/* The oldest RDMA message with frames left to post. */
static const mesh_rbulk_msg *framing(const mesh_rbulk_tx *tx)
{
  if (tx->tcp_mode)
    return NULL;
  for (uint64_t s = tx->acked; s < tx->next; s++) {
    const mesh_rbulk_msg *m = cslot(tx, s);
    if (m->frames > 0 && m->off < m->len)
      return m;
  }
  return NULL;
}

bool mesh_rbulk_tx_frame(const mesh_rbulk_tx *tx, uint64_t *seq, size_t *off, size_t *total,
                         const uint8_t **data, size_t *len)
{
  const mesh_rbulk_msg *m = framing(tx);
  if (m == NULL)
    return false;
  size_t n = m->len - m->off;
  if (n > tx->frame_bytes)
    n = tx->frame_bytes;
  *seq = m->seq;
  *off = m->off;
  *total = m->len;
  *data = m->buf + m->off;
  *len = n;
  return true;
}

void mesh_rbulk_tx_frame_sent(mesh_rbulk_tx *tx, mesh_time_ms now)
{
  mesh_rbulk_msg *m = (mesh_rbulk_msg *)framing(tx);
  if (m == NULL)
    return;
  size_t n = m->len - m->off;
  if (n > tx->frame_bytes)
    n = tx->frame_bytes;
  m->off += n;
  m->sent_at = now;
}

bool mesh_rbulk_tx_tcp(const mesh_rbulk_tx *tx, uint64_t *seq, const uint8_t **data, size_t *len)
{
  if (!tx->tcp_mode || tx->tcp_next >= tx->next)
    return false;
  const mesh_rbulk_msg *m = cslot(tx, tx->tcp_next);
  *seq = m->seq;
  *data = m->buf;
  *len = m->len;
  return true;
}

void mesh_rbulk_tx_tcp_sent(mesh_rbulk_tx *tx)
{
  if (!tx->tcp_mode || tx->tcp_next >= tx->next)
    return;
  if (slot(tx, tx->tcp_next)->frames > 0)
    tx->resent++;
  tx->tcp_next++;
}

int mesh_rbulk_tx_ack(mesh_rbulk_tx *tx, uint64_t upto)
{
  if (upto > tx->next)
    return -EPROTO;
  while (tx->acked < upto) {
    mesh_rbulk_msg *m = slot(tx, tx->acked);
    tx->frames_out -= m->frames;
    tx->bytes_out -= m->len;
    free(m->buf);
    memset(m, 0, sizeof *m);
    tx->acked++;
  }
  if (tx->tcp_next < tx->acked)
    tx->tcp_next = tx->acked;
  if (tx->tcp_mode && tx->acked == tx->next)
    tx->tcp_mode = false;
  return 0;
}

int mesh_rbulk_tx_nack(mesh_rbulk_tx *tx, uint64_t seq)
{
  if (seq > tx->next)
    return -EPROTO;
  mesh_rbulk_tx_ack(tx, seq);
  /* Already sending over TCP (reliable, in order): a repeat changes nothing. */
  if (tx->acked == tx->next || tx->tcp_mode)
    return 0;
  enter_tcp(tx);
  return 0;
}

bool mesh_rbulk_tx_tick(mesh_rbulk_tx *tx, mesh_time_ms now)
{
  if (tx->tcp_mode || tx->acked == tx->next)
    return false;
  const mesh_rbulk_msg *m = cslot(tx, tx->acked);
  bool posted = m->frames > 0 && m->off == m->len && m->sent_at != 0;
  if (!posted || now - m->sent_at <= tx->rto)
    return false;
  tx->timeouts++;
  enter_tcp(tx);
  return true;
}

bool mesh_rbulk_tx_idle(const mesh_rbulk_tx *tx)
{
  return tx->acked == tx->next;
}

/* --- Receiver --- */

void mesh_rbulk_rx_init(mesh_rbulk_rx *rx, size_t max_msg)
{
  memset(rx, 0, sizeof *rx);
  rx->max_msg = max_msg;
}

void mesh_rbulk_rx_clear(mesh_rbulk_rx *rx)
{
  free(rx->asm_buf);
  memset(rx, 0, sizeof *rx);
}

static mesh_rbulk_verdict gap(mesh_rbulk_rx *rx)
{
  rx->have = 0;
  rx->gaps++;
  if (rx->nacked != rx->next + 1)
    rx->nack_due = true;
  return MESH_RBULK_GAP;
}

mesh_rbulk_verdict mesh_rbulk_rx_frame(mesh_rbulk_rx *rx, uint64_t seq, size_t off, size_t total,
                                       const uint8_t *data, size_t len, const uint8_t **msg,
                                       size_t *msg_len)
{
  if (total > rx->max_msg || off > total || len > total - off || len == 0 ||
      seq == UINT64_MAX)
    return MESH_RBULK_BAD;
  if (seq < rx->next) {
    rx->dups++;
    return MESH_RBULK_DUP;
  }
  if (seq > rx->next || off != rx->have)
    return gap(rx);
  if (off == 0) {
    rx->total = total;
    if (total > rx->asm_cap) {
      uint8_t *b = realloc(rx->asm_buf, total);
      if (b == NULL)
        return MESH_RBULK_BAD;
      rx->asm_buf = b;
      rx->asm_cap = total;
    }
  } else if (total != rx->total) {
    rx->have = 0;
    return MESH_RBULK_BAD;
  }
  if (len > 0)
    memcpy(rx->asm_buf + off, data, len);
  rx->have += len;
  if (rx->have < rx->total)
    return MESH_RBULK_PARTIAL;
  *msg = rx->asm_buf;
  *msg_len = rx->total;
  rx->have = 0;
  rx->next++;
  rx->nack_due = false;
  return MESH_RBULK_DELIVER;
}

mesh_rbulk_verdict mesh_rbulk_rx_tcp(mesh_rbulk_rx *rx, uint64_t seq)
{
  if (seq < rx->next) {
    rx->dups++;
    return MESH_RBULK_DUP;
  }
  if (seq > rx->next)
    return gap(rx);
  rx->have = 0;
  rx->next++;
  rx->nack_due = false;
  return MESH_RBULK_DELIVER;
}

bool mesh_rbulk_rx_take_nack(mesh_rbulk_rx *rx, uint64_t *seq)
{
  if (!rx->nack_due)
    return false;
  rx->nack_due = false;
  rx->nacked = rx->next + 1;
  *seq = rx->next;
  return true;
}

/* --- Headers --- */

static void put_be(uint8_t *p, uint64_t v, int n)
{
  for (int i = n - 1; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}

static uint64_t get_be(const uint8_t *p, int n)
{
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

void mesh_rbulk_put_frame_hdr(uint8_t *p, uint64_t seq, uint32_t off)
{
  put_be(p, seq, 8);
  put_be(p + 8, off, 4);
}

void mesh_rbulk_get_frame_hdr(const uint8_t *p, uint64_t *seq, uint32_t *off)
{
  *seq = get_be(p, 8);
  *off = (uint32_t)get_be(p + 8, 4);
}

void mesh_rbulk_put_tcp_hdr(uint8_t *p, uint8_t kind, uint64_t seq)
{
  p[0] = kind;
  put_be(p + 1, seq, 8);
}

int mesh_rbulk_get_tcp_hdr(const uint8_t *p, size_t len, uint8_t *kind, uint64_t *seq)
{
  if (len < MESH_RBULK_TCP_HDR || p[0] < MESH_RBULK_DATA || p[0] > MESH_RBULK_NACK)
    return -EBADMSG;
  *kind = p[0];
  *seq = get_be(p + 1, 8);
  return 0;
}
