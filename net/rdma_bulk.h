/*
 * Sequenced bulk over RDMA: what keeps MESH_CH_BULK stream messages whole
 * and in order when they travel as UC frames that may be lost.
 *
 * UC has no acknowledgement: a frame can vanish (no receive posted, a bit
 * error, a reset queue pair) and nobody is told. A stream needs every
 * message once and in order, so each peer's bulk messages carry a sequence
 * number of their own (one per message, per direction, from 0 at each new
 * RDMA link), and the two ends run this protocol:
 *
 *   sender    Keeps a copy of every message until the receiver acknowledges
 *             it. A message goes over RDMA, split into frames, only when
 *             the frames of all unacknowledged messages plus its own stay
 *             within the credit: the receives the peer keeps posted minus a
 *             share left for datagrams and keepalives, so the sender never
 *             outruns the peer's receive buffers. Otherwise it waits (the
 *             user gets -EAGAIN and a writable callback later).
 *   receiver  Takes frames of the message it expects next (seq == next) in
 *             order of their offset and delivers the message when whole. A
 *             frame of a later message, or a later part of the expected one,
 *             is a gap: the partial message is dropped and a NACK(next) goes
 *             to the sender over TCP, once per expected message. Frames of
 *             messages already delivered are duplicates, dropped. Every
 *             delivered message is acknowledged (ACK(next), cumulative) over
 *             TCP, which is reliable, so credits never leak with lost acks.
 *   fallback  On a NACK, or when the oldest unacknowledged message was sent
 *             over RDMA longer than rto ago (a lost last frame leaves no gap
 *             to see), the sender goes to TCP mode: every unacknowledged
 *             message from the receiver's next is sent again over TCP, in
 *             order, with its sequence number; new messages wait until
 *             all of those are acknowledged, then go over RDMA again (only
 *             while RDMA cannot carry them do new ones follow over TCP). TCP
 *             is ordered and reliable, so after a fallback the receiver gets
 *             exactly the messages it lacks, in order; a copy that reaches
 *             it twice (once over each path) is dropped by its number.
 *             A message is switched to TCP only when nothing earlier is in
 *             flight over RDMA, or in TCP mode, so the two paths never
 *             overtake each other inside the sequence.
 *
 * Messages too large for the credit (many frames of a small frame size)
 * and messages to a peer whose RDMA path is not up take the TCP mode too.
 *
 * Pure: no IO, no clock (times are passed in), the caller owns both
 * structs and frees them with the _clear functions. Loop thread only.
 */
#ifndef MESH_NET_RDMA_BULK_H
#define MESH_NET_RDMA_BULK_H

#include "src/base/clock.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Header in front of each bulk frame's bytes over RDMA: seq (8) and the
 * offset of these bytes in the message (4), big-endian. */
#define MESH_RBULK_FRAME_HDR 12
/* Header of a sequenced message over TCP (MESH_CH_BULK_SEQ): kind (1) and
 * seq (8). DATA carries the message after it; ACK and NACK nothing. */
#define MESH_RBULK_TCP_HDR 9
/* Unacknowledged messages a sender keeps at most, and their bytes. */
#define MESH_RBULK_RING 64
#define MESH_RBULK_BYTES_MAX ((size_t)4 << 20)

enum { MESH_RBULK_DATA = 1, MESH_RBULK_ACK = 2, MESH_RBULK_NACK = 3 };

typedef struct mesh_rbulk_msg {
  uint64_t seq;
  uint8_t *buf; /* owned copy */
  size_t len;
  uint32_t frames;      /* frames it takes over RDMA (0: sent over TCP) */
  size_t off;           /* RDMA: bytes framed and posted so far */
  mesh_time_ms sent_at; /* RDMA: when its last frame was posted */
} mesh_rbulk_msg;

typedef struct mesh_rbulk_tx {
  size_t frame_bytes; /* message bytes per RDMA frame */
  uint32_t credit;    /* RDMA frames unacknowledged at most */
  mesh_time_ms rto;   /* oldest RDMA message unacknowledged this long: TCP */
  uint64_t next;      /* seq of the next new message */
  uint64_t acked;     /* every seq below was delivered */
  bool tcp_mode;      /* messages go (again) over TCP until acked == next */
  uint64_t tcp_next;  /* TCP mode: next seq to put on TCP */
  uint32_t frames_out; /* RDMA frames of unacknowledged messages */
  size_t bytes_out;    /* bytes of the copies held */
  size_t bytes_max;    /* copies held at most (a message alone may exceed it);
                          MESH_RBULK_BYTES_MAX after init */
  mesh_rbulk_msg ring[MESH_RBULK_RING]; /* seq % MESH_RBULK_RING, seqs [acked, next) */
  /* counters */
  uint64_t fallbacks; /* times TCP mode was entered for a NACK or a timeout */
  uint64_t timeouts;  /* ... of which timeouts */
  uint64_t resent;    /* messages sent again over TCP */
} mesh_rbulk_tx;

void mesh_rbulk_tx_init(mesh_rbulk_tx *tx, size_t frame_bytes, uint32_t credit, mesh_time_ms rto);
void mesh_rbulk_tx_clear(mesh_rbulk_tx *tx);

/*
 * Takes a copy of a new message. rdma: the RDMA path can carry it now.
 * 0 taken (*via_rdma says which path it was given to: frames come from
 * mesh_rbulk_tx_frame, a TCP copy from mesh_rbulk_tx_tcp); -EAGAIN not now
 * (credit, ring or bytes_max full, or TCP copies still to send: try again
 * after an ack or a sent copy); -ENOMEM.
 */
int mesh_rbulk_tx_submit(mesh_rbulk_tx *tx, const uint8_t *buf, size_t len, bool rdma,
                         bool *via_rdma);

/* The next RDMA frame to post: its seq, offset, total length and bytes
 * (borrowed from the copy). false when none waits. */
bool mesh_rbulk_tx_frame(const mesh_rbulk_tx *tx, uint64_t *seq, size_t *off, size_t *total,
                         const uint8_t **data, size_t *len);
/* The frame mesh_rbulk_tx_frame returned was posted at now. */
void mesh_rbulk_tx_frame_sent(mesh_rbulk_tx *tx, mesh_time_ms now);

/* The next message to put on TCP (TCP mode): seq and bytes. false when
 * none waits. */
bool mesh_rbulk_tx_tcp(const mesh_rbulk_tx *tx, uint64_t *seq, const uint8_t **data, size_t *len);
/* The copy mesh_rbulk_tx_tcp returned was queued on TCP. */
void mesh_rbulk_tx_tcp_sent(mesh_rbulk_tx *tx);

/* The receiver delivered every seq below upto. -EPROTO when upto is past
 * what was sent (nothing changed). */
int mesh_rbulk_tx_ack(mesh_rbulk_tx *tx, uint64_t upto);
/* The receiver saw a gap while expecting seq (everything below delivered):
 * TCP mode from seq. -EPROTO when seq is past what was sent. */
int mesh_rbulk_tx_nack(mesh_rbulk_tx *tx, uint64_t seq);
/* Checks the oldest RDMA message's age; true when it timed out and TCP
 * mode began. */
bool mesh_rbulk_tx_tick(mesh_rbulk_tx *tx, mesh_time_ms now);
/* Nothing is left to send or acknowledge. */
bool mesh_rbulk_tx_idle(const mesh_rbulk_tx *tx);

typedef enum mesh_rbulk_verdict {
  MESH_RBULK_PARTIAL = 0, /* taken; the message is not whole yet */
  MESH_RBULK_DELIVER,     /* a whole message: deliver *msg, *msg_len, then ACK(next) */
  MESH_RBULK_DUP,         /* already delivered: dropped */
  MESH_RBULK_GAP,         /* a frame or message is missing: dropped */
  MESH_RBULK_BAD,         /* fields out of range: dropped */
} mesh_rbulk_verdict;

typedef struct mesh_rbulk_rx {
  size_t max_msg;   /* largest message accepted */
  uint64_t next;    /* seq expected */
  uint8_t *asm_buf; /* the expected message's bytes so far (owned) */
  size_t asm_cap;
  size_t have;  /* bytes of it taken */
  size_t total; /* its length (valid while have > 0) */
  bool nack_due;      /* a gap at next was seen and not yet reported */
  uint64_t nacked;    /* next + 1 when a NACK for it went out, 0 none */
  /* counters */
  uint64_t gaps;
  uint64_t dups;
} mesh_rbulk_rx;

void mesh_rbulk_rx_init(mesh_rbulk_rx *rx, size_t max_msg);
void mesh_rbulk_rx_clear(mesh_rbulk_rx *rx);
/* One RDMA frame's bytes of message seq (total bytes long) at off. On
 * DELIVER *msg points into rx's buffer until the next call. -ENOMEM is
 * reported as BAD. */
mesh_rbulk_verdict mesh_rbulk_rx_frame(mesh_rbulk_rx *rx, uint64_t seq, size_t off, size_t total,
                                       const uint8_t *data, size_t len, const uint8_t **msg,
                                       size_t *msg_len);
/* A whole message seq that came over TCP: DELIVER (deliver the caller's
 * own bytes), DUP, or GAP (later than expected: a NACK is due). */
mesh_rbulk_verdict mesh_rbulk_rx_tcp(mesh_rbulk_rx *rx, uint64_t seq);
/* Whether a NACK should go out now, and for which seq; marks it sent. */
bool mesh_rbulk_rx_take_nack(mesh_rbulk_rx *rx, uint64_t *seq);

/* Header coding (big-endian). */
void mesh_rbulk_put_frame_hdr(uint8_t *p, uint64_t seq, uint32_t off);
void mesh_rbulk_get_frame_hdr(const uint8_t *p, uint64_t *seq, uint32_t *off);
void mesh_rbulk_put_tcp_hdr(uint8_t *p, uint8_t kind, uint64_t seq);
/* -EBADMSG shorter than the header or an unknown kind. */
int mesh_rbulk_get_tcp_hdr(const uint8_t *p, size_t len, uint8_t *kind, uint64_t *seq);

#endif
