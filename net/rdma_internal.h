/*
 * Internals of the RDMA transport, shared by its files (not for use outside
 * net/rdma_*.c): a peer's slot (rpeer) and the transport's state (rstate).
 *
 *   rdma_transport.c  the ops table, mesh_rdma_attach and the configuration,
 *                     which net has which state
 *   rdma_path.c       a peer's path (PROBING, UP, FALLBACK): the handshake
 *                     extension, up and down events, keepalives, received
 *                     frames, timers
 *   rdma_poll.c       completions: the completion channel and the adaptive
 *                     busy-polling of the completion queue
 *   rdma_bulk_link.c  MESH_CH_BULK streams over a peer's link: frames within
 *                     credit, sequenced TCP copies, acknowledgements
 *
 * Ownership: rstate owns every slot, the device and the events; a slot owns
 * its queue pair, link keys and bulk state, and is wiped by rdma_slot_free.
 * Everything runs on the loop thread; nothing blocks.
 */
#ifndef MESH_NET_RDMA_INTERNAL_H
#define MESH_NET_RDMA_INTERNAL_H

#include "net/rdma.h"
#include "net/rdma_bulk.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rpeer {
  bool used;
  uint64_t conn_id; /* the TCP connection whose handshake offered our queue pair */
  bool have_peer;   /* its up event came: peer, epoch and link are set */
  mesh_peer_id peer;
  uint64_t epoch;
  mesh_rdma_qp *qp;      /* NULL after a reset, until the retry makes a new one */
  mesh_rdma_attr remote; /* the peer's attributes (qpn, psn: its queue pair now) */
  bool repoint;          /* the peer announced a new queue pair: follow it after the poll */
  uint32_t repoint_qpn;  /* ... this one */
  uint32_t repoint_psn;
  uint8_t ours[MESH_RDMA_ATTR_MAX]; /* our encoded attributes */
  size_t ours_len;
  uint8_t kx_pk[MESH_RDMA_KX_LEN];
  uint8_t kx_sk[MESH_RDMA_KX_LEN];
  mesh_rdma_link link;
  mesh_rdma_path path;
  mesh_time_ms created;     /* queue pair made (a pending one expires) */
  mesh_time_ms probe_start; /* PROBING since */
  mesh_time_ms heard;       /* last authenticated RDMA frame from the peer */
  mesh_time_ms heard_us;    /* last keepalive saying the peer hears us */
  bool ever_heard;
  bool ever_heard_us;
  mesh_time_ms ka_sent;  /* last keepalive sent */
  mesh_time_ms retry_at; /* FALLBACK: when to try RDMA again */
  mesh_time_ms backoff;  /* the next retry's delay */
  /* Bulk (net/rdma_bulk.h), set up at the up event: */
  bool bulk_ready;
  mesh_rbulk_tx btx;
  mesh_rbulk_rx brx;
  uint8_t tag_tx[8];       /* names this link in our MESH_CH_BULK_SEQ messages */
  uint8_t tag_rx[8];       /* ... and in the peer's */
  bool bulk_want_writable; /* a send was refused: tell the node when there is room */
  bool bulk_ack_due;       /* an acknowledgement could not be queued yet */
  uint64_t rep_fallbacks;  /* btx counters already added to the stats */
  uint64_t rep_timeouts;
  uint64_t rep_resent;
} rpeer;

typedef struct rstate {
  mesh_net *net;
  mesh_transport_counters *c;
  mesh_rdma_stats stats;
  mesh_rdma_config cfg;
  mesh_psk psk;
  size_t frame_max;         /* the net's bound on a message */
  mesh_time_ms pending_ttl; /* a queue pair whose handshake never finished */
  mesh_rdma_dev *dev;
  bool dev_failed; /* the device went away: no more RDMA */
  struct event *cq_ev;
  struct event *async_ev;
  struct event *tick;
  struct event *spin_ev;    /* zero-delay timer: the next busy-poll slice */
  bool spin_armed;          /* spin_ev is pending */
  bool polling;             /* busy-polling: the completion queue is left unarmed */
  bool kicked;              /* datagram traffic since the last clock reading */
  uint64_t hot_until_us;    /* busy-poll until then (monotonic microseconds) */
  uint64_t budget_start_us; /* start of the current budget second */
  uint64_t budget_used_us;  /* busy-polled within it */
  rpeer *peers;             /* cfg.dev.max_qps slots */
  uint8_t *bulk_tcp;        /* a MESH_CH_BULK_SEQ message (frame_max + BULK_TCP_HDR) */
  bool bulk_pumping;        /* inside rdma_bulk_pump: TCP's writable callback must not re-enter */
} rstate;

/* A MESH_CH_BULK_SEQ message's header: kind, seq, and the sender's link tag. */
#define BULK_TCP_HDR (MESH_RBULK_TCP_HDR + 8)

/* ---- rdma_path.c ---------------------------------------------------------- */

/* The peer ID's text into buf, for log lines. */
void rdma_peer_text(const mesh_peer_id *p, char *buf, size_t len);
/* Recounts the open queue pairs and paths UP into the stats and counters. */
void rdma_count_paths(rstate *s);
/* The one place a path changes; it logs the changes a user cares about. */
void rdma_set_path(rstate *s, rpeer *p, mesh_rdma_path to, mesh_time_ms now, const char *why);
/* Frees p's queue pair, keys and bulk state and wipes the slot. */
void rdma_slot_free(rstate *s, rpeer *p);
/* The slot of an up peer, or NULL. */
rpeer *rdma_find_peer(const rstate *s, const mesh_peer_id *peer);
/* Seals f with p's link keys and posts it: 0, -ENOBUFS (no send buffer
 * free) or another negative errno. */
int rdma_send_frame(rstate *s, rpeer *p, const mesh_frame *f);
/* The device's handlers (mesh_rdma_handler): a received buffer (borrowed
 * for the call), a queue pair's error, the port going down or up. */
void rdma_on_recv(void *arg, mesh_rdma_qp *qp, void *qp_arg, uint8_t *buf, size_t len);
void rdma_on_qp_error(void *arg, mesh_rdma_qp *qp, void *qp_arg, int err, const char *what);
void rdma_on_port(void *arg, bool up, const char *what);
/* Follows the queue pairs peers announced as new during the last poll. */
void rdma_apply_repoints(rstate *s);
/* The timer of keepalives, silence, retries and expiry. */
void rdma_tick_arm(rstate *s);
void rdma_on_tick(evutil_socket_t fd, short what, void *arg);
/* The handshake extension (mesh_net_set_extension) and the peer event op. */
int rdma_on_extension(void *arg, uint64_t conn_id, uint8_t *buf, size_t cap, size_t *len);
void rdma_peer_event(void *state, const mesh_net_peer_event *ev);

/* ---- rdma_poll.c ---------------------------------------------------------- */

/* Datagram traffic over RDMA: keep polling for a while. */
void rdma_spin_kick(rstate *s);
/* The completion and asynchronous fds became readable (arg: rstate). */
void rdma_on_cq(evutil_socket_t fd, short what, void *arg);
/* One slice of busy-polling (arg: rstate). */
void rdma_on_spin(evutil_socket_t fd, short what, void *arg);

/* ---- rdma_bulk_link.c ----------------------------------------------------- */

/* Sets up p's bulk state at its up event (credits, link tags). */
void rdma_bulk_setup(rstate *s, rpeer *p);
/* Moves what waits for p (see the definition). */
void rdma_bulk_pump(rstate *s, rpeer *p, bool progress, bool notify);
void rdma_bulk_pump_all(rstate *s);
/* A bulk frame received over RDMA from p. */
void rdma_bulk_frame(rstate *s, rpeer *p, const mesh_frame *f);
/* The bulk_seq and writable ops (net/transport.h). */
void rdma_bulk_seq(void *state, const mesh_peer_id *from, const uint8_t *buf, size_t len);
void rdma_writable(void *state, const mesh_peer_id *peer);
/* A MESH_CH_BULK message to peer (the send op for streams); buf is
 * borrowed for the call. 0, -EAGAIN (the writable op says when to try
 * again), -EMSGSIZE or -ENOTCONN. */
int rdma_bulk_send(rstate *s, const mesh_peer_id *peer, mesh_channel ch, const uint8_t *buf,
                   size_t len);

#endif
