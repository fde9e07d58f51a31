/*
 * RDMA: the accelerator for datagram traffic between directly linked peers.
 *
 * It uses only what both Apple's RDMA over Thunderbolt 5 and Linux soft-RoCE
 * (rxe) offer: unreliable-connected (UC) queue pairs, two-sided IBV_WR_SEND,
 * memory registered with IBV_ACCESS_LOCAL_WRITE only, every receive buffer
 * of one size (the largest frame), few queue pairs per node (about 10:
 * beyond the cap peers stay on TCP), and queue depths the device really
 * accepts (creation and posting are retried with less).
 *
 * Three layers, each usable alone:
 *
 *   attributes  mesh_rdma_attr: what one side tells the other about its
 *               queue pair (GID, QPN, PSN, MTU, buffer size, depth, and an
 *               ephemeral X25519 key), encoded as proto/rdma.proto and sent
 *               as the signed TCP handshake extension.
 *   frames      mesh_rdma_link: the keys and counters of one peer's RDMA
 *               path. RDMA frames are net/frame.h frames (sealed and opened
 *               by mesh_frame_seal / mesh_frame_open) under keys of their
 *               own, so their counters never share a nonce with TCP's. UC
 *               loses frames without telling anyone, so the receiver keeps
 *               a sliding window (as IPsec does) instead of demanding the
 *               next counter: a replayed or too old frame is refused, a gap
 *               is not an error.
 *   verbs       mesh_rdma_dev / mesh_rdma_qp: one device, one completion
 *               channel (its fd is what the event loop watches), one UC
 *               queue pair per peer. Built from net/rdma_verbs.c when
 *               libibverbs is there (HAVE_IBVERBS), else from net/rdma_none.c
 *               where every call reports that RDMA is not available.
 *
 * The transport (mesh_rdma_transport, net/rdma_transport.c) ties them to
 * net/transport.h. Nothing here blocks; everything runs on the loop thread.
 *
 * The frame keys: each side puts a fresh X25519 key in its attributes, so
 * the keys are bound to the identities that signed the handshake. With D
 * the dialer (crypto_kx client) and L the listener (server):
 *
 *   key(dir) = BLAKE2b-256(key = PSK, "meshd-rdma-1" || dir || kx key(dir)
 *                          || attr(D) || attr(L))
 *   dir      = "d2l" or "l2d"; attr(x) the encoded attributes x sent
 */
#ifndef MESH_NET_RDMA_H
#define MESH_NET_RDMA_H

#include "net/frame.h"
#include "net/transport.h"
#include "src/identity/psk.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESH_RDMA_ATTR_VERSION 1
#define MESH_RDMA_GID_LEN 16
#define MESH_RDMA_KX_LEN 32
/*
 * Apple's RDMA over Thunderbolt 5, the strictest device meshd runs on:
 * UC queue pairs and two-sided SEND only, at most 10 queue pairs per
 * device, about 63 receives posted and 63 sends in flight per queue pair,
 * and receive buffers (so frames) of 4 KiB on older macOS, larger where the
 * system allows. The device options are held within these everywhere, so a
 * setting that works on Linux rxe works there too.
 */
#define MESH_RDMA_APPLE_MAX_QPS 10    /* queue pairs per device */
#define MESH_RDMA_APPLE_RECV_DEPTH 63 /* receives posted per queue pair */
#define MESH_RDMA_APPLE_SEND_DEPTH 63 /* sends in flight per queue pair */
/*
 * Frame size: each side's attributes carry buf_size, the largest receive
 * buffer it posts; both sides then send frames of at most the smaller of
 * the two (mesh_rdma_frame_size), so a Mac that can post only 4 KiB and a
 * node posting 64 KiB still share a path. 4 KiB is the floor every peer
 * must reach (older macOS): attributes below it are refused.
 */
#define MESH_RDMA_FRAME_FLOOR 4096
/* Bounds checked on every decoded attribute. */
#define MESH_RDMA_BUF_MIN MESH_RDMA_FRAME_FLOOR /* smallest receive buffer accepted */
#define MESH_RDMA_BUF_MAX (1u << 20)            /* largest: 1 MiB */
#define MESH_RDMA_DEPTH_MAX 1024                /* most receives a peer may claim */
#define MESH_RDMA_ATTR_MAX 128                  /* longest encoded attributes */
/* Defaults of the device layer (within the Apple limits above). */
#define MESH_RDMA_BUF_DEFAULT 65536               /* receive buffer (and frame) size */
#define MESH_RDMA_DEPTH_DEFAULT 32                /* receives posted per queue pair */
#define MESH_RDMA_SEND_DEPTH 16                   /* sends in flight per queue pair */
#define MESH_RDMA_MAX_QPS MESH_RDMA_APPLE_MAX_QPS /* queue pairs per node */
/* Frames older than this many counters below the newest are refused. */
#define MESH_RDMA_WINDOW 64

typedef struct mesh_rdma_attr {
  uint8_t gid[MESH_RDMA_GID_LEN];      /* IPv4-mapped GID of the link address */
  uint32_t qpn;                        /* queue pair number (24 bits) */
  uint32_t psn;                        /* first packet sequence number (24 bits) */
  uint32_t mtu;                        /* active path MTU in bytes: 256, 512, ... 4096 */
  uint32_t buf_size;                   /* every posted receive buffer's size: the largest
                                          frame this side takes (>= MESH_RDMA_FRAME_FLOOR) */
  uint32_t depth;                      /* receives kept posted */
  uint8_t kx_public[MESH_RDMA_KX_LEN]; /* ephemeral X25519 key */
} mesh_rdma_attr;

/* Encodes a into buf (cap bytes). -ENOSPC when it does not fit. */
int mesh_rdma_attr_encode(const mesh_rdma_attr *a, uint8_t *buf, size_t cap, size_t *len);
/* Decodes and bounds-checks. -EBADMSG undecodable or a field out of range
 * (buf_size below MESH_RDMA_FRAME_FLOOR included); -EMSGSIZE longer than
 * MESH_RDMA_ATTR_MAX; -EPROTONOSUPPORT other version. */
int mesh_rdma_attr_decode(const uint8_t *buf, size_t len, mesh_rdma_attr *a);
/* The frame size of a path whose sides post receive buffers of ours and
 * theirs bytes: the smaller, the same at both ends. 0 when either is below
 * MESH_RDMA_FRAME_FLOOR (no path). */
uint32_t mesh_rdma_frame_size(uint32_t ours, uint32_t theirs);

/* A keepalive's payload (proto/rdma.proto RdmaKeepalive). */
#define MESH_RDMA_KEEPALIVE_MAX 32 /* longest encoded keepalive */
typedef struct mesh_rdma_keepalive {
  bool hears;   /* the sender heard the receiver over RDMA within dead_ms */
  uint32_t qpn; /* the sender's queue pair now (24 bits) */
  uint32_t psn; /* its first sequence number (24 bits) */
} mesh_rdma_keepalive;

/* Encodes k into buf (cap bytes). -ENOSPC when it does not fit. */
int mesh_rdma_keepalive_encode(const mesh_rdma_keepalive *k, uint8_t *buf, size_t cap, size_t *len);
/* Decodes and bounds-checks. -EBADMSG undecodable or qpn/psn out of range;
 * -EMSGSIZE longer than MESH_RDMA_KEEPALIVE_MAX. */
int mesh_rdma_keepalive_decode(const uint8_t *buf, size_t len, mesh_rdma_keepalive *k);

/* --- Frames over one peer's RDMA path --- */

/* Result of opening an RDMA frame, each counted by the transport. */
typedef enum mesh_rdma_verdict {
  MESH_RDMA_OK = 0,
  MESH_RDMA_REPLAY,    /* counter already seen or below the window */
  MESH_RDMA_AUTH,      /* tag did not verify (forged, corrupted) */
  MESH_RDMA_MALFORMED, /* length or fields invalid */
} mesh_rdma_verdict;

typedef struct mesh_rdma_link {
  mesh_frame_dir tx; /* our key and next counter */
  mesh_frame_dir rx; /* the peer's key; counter set per frame from its header */
  uint64_t rx_top;   /* highest counter accepted + 1 (0: none yet) */
  uint64_t rx_seen;  /* bit i: counter rx_top - 1 - i was accepted */
} mesh_rdma_link;

/* An ephemeral key pair for the attributes (pk goes in kx_public). */
void mesh_rdma_kx_keypair(uint8_t pk[MESH_RDMA_KX_LEN], uint8_t sk[MESH_RDMA_KX_LEN]);

/*
 * Derives the link's keys (see the top of this file). dialer: we dialled.
 * ours/theirs: the encoded attributes each side sent. -MESH_EAUTH when the
 * peer's key is unusable.
 */
int mesh_rdma_link_init(mesh_rdma_link *l, bool dialer, const mesh_psk *psk,
                        const uint8_t our_sk[MESH_RDMA_KX_LEN],
                        const uint8_t our_pk[MESH_RDMA_KX_LEN],
                        const uint8_t their_pk[MESH_RDMA_KX_LEN], const uint8_t *ours,
                        size_t ours_len, const uint8_t *theirs, size_t theirs_len);
void mesh_rdma_link_clear(mesh_rdma_link *l);

/* Seals one frame (net/frame.h) into out; see mesh_frame_seal. */
int mesh_rdma_link_seal(mesh_rdma_link *l, const mesh_frame *f, uint8_t *out, size_t cap,
                        size_t *out_len);
/* Opens a received frame in place (buf is the caller's and is modified);
 * out->payload points into buf. Accepts each counter once, in any order
 * within MESH_RDMA_WINDOW of the newest. */
mesh_rdma_verdict mesh_rdma_link_open(mesh_rdma_link *l, uint8_t *buf, size_t len, mesh_frame *out);

/* --- Verbs: device and queue pairs --- */

typedef struct mesh_rdma_dev mesh_rdma_dev;
typedef struct mesh_rdma_qp mesh_rdma_qp;

typedef struct mesh_rdma_dev_options {
  const char *device;  /* device name (NULL: the one that has addr's GID, else the first) */
  const char *addr;    /* IPv4 address of the link, dotted (NULL: the first IPv4-mapped GID) */
  uint32_t buf_size;   /* receive and send buffer size (MESH_RDMA_BUF_DEFAULT), at least
                          MESH_RDMA_FRAME_FLOOR: the largest frame this node takes */
  uint32_t depth;      /* receives wanted per queue pair (MESH_RDMA_DEPTH_DEFAULT),
                          at most MESH_RDMA_APPLE_RECV_DEPTH */
  uint32_t send_depth; /* sends in flight per queue pair (MESH_RDMA_SEND_DEPTH),
                          at most MESH_RDMA_APPLE_SEND_DEPTH */
  int max_qps;         /* queue pairs at most (MESH_RDMA_MAX_QPS), at most
                          MESH_RDMA_APPLE_MAX_QPS */
} mesh_rdma_dev_options;

void mesh_rdma_dev_options_default(mesh_rdma_dev_options *o);
/* -EINVAL with a reason in why when an option is out of range (the Apple
 * limits above included) or addr is not an IPv4 address (checked before
 * any device is touched). */
int mesh_rdma_dev_options_check(const mesh_rdma_dev_options *o, char *why, size_t whylen);

/*
 * Opens a device, its protection domain, completion channel (non-blocking
 * fd) and completion queue. why (whylen bytes) receives a one-line reason
 * on failure: -ENOSYS no verbs support (no library, no kernel module),
 * -ENODEV no device or none with the address's GID, else the verbs errno.
 */
int mesh_rdma_dev_open(const mesh_rdma_dev_options *o, mesh_rdma_dev **out, char *why,
                       size_t whylen);
/* Frees the device; every queue pair must be freed before. */
void mesh_rdma_dev_close(mesh_rdma_dev *d);
/* The completion channel's fd (owned by the device): readable when
 * completions wait; then call mesh_rdma_dev_poll. */
int mesh_rdma_dev_fd(const mesh_rdma_dev *d);
/* The device's asynchronous event fd (non-blocking, owned by the device):
 * readable when a queue pair or the port failed; then call
 * mesh_rdma_dev_poll, which reports the failures through the handler. */
int mesh_rdma_dev_async_fd(const mesh_rdma_dev *d);
const char *mesh_rdma_dev_name(const mesh_rdma_dev *d);
/* Queue pairs open now. */
int mesh_rdma_dev_qp_count(const mesh_rdma_dev *d);

/* What a poll reports. Buffers are borrowed for the call. */
typedef struct mesh_rdma_handler {
  /* A frame of len bytes arrived on qp; buf may be modified in place and is
   * re-posted after the call. */
  void (*recv)(void *arg, mesh_rdma_qp *qp, void *qp_arg, uint8_t *buf, size_t len);
  /* qp failed (a completion error, or the device went away): it takes no
   * more sends; the owner frees or resets it. err is a negative errno and
   * what names the cause. Called once per failure. */
  void (*error)(void *arg, mesh_rdma_qp *qp, void *qp_arg, int err, const char *what);
  /* Optional: the port went down (up false: every queue pair has just been
   * failed through error) or became active again (up true). what names the
   * device's event. */
  void (*port)(void *arg, bool up, const char *what);
  void *arg;
} mesh_rdma_handler;

/* Drains completions in batches until none is left, re-posts receives,
 * re-arms the channel, and reads the asynchronous events. The handler may
 * free the queue pair it is called for. Returns the completions handled,
 * or a negative errno when the device itself failed. Non-blocking. */
int mesh_rdma_dev_poll(mesh_rdma_dev *d, const mesh_rdma_handler *h);
/* One busy-poll of the completion queue: handles at most one batch of
 * completions (re-posting receives) without a system call, leaving the
 * completion channel alone (a completion found here may still make its fd
 * readable; the next mesh_rdma_dev_poll then finds nothing). Returns the
 * completions handled or -EIO. Non-blocking. */
int mesh_rdma_dev_spin(mesh_rdma_dev *d, const mesh_rdma_handler *h);
/* Takes the completion channel's pending notifications and reads the
 * asynchronous events, without arming the queue again: for a caller that
 * busy-polls with mesh_rdma_dev_spin and arms later with
 * mesh_rdma_dev_poll. Non-blocking. */
void mesh_rdma_dev_events(mesh_rdma_dev *d, const mesh_rdma_handler *h);

/*
 * Makes a UC queue pair (moved to INIT, receives posted) with psn as its
 * first sequence number; local receives its attributes (kx_public left
 * zero). arg is handed back in the handler. -ENOSPC past max_qps; else the
 * verbs errno.
 */
int mesh_rdma_qp_new(mesh_rdma_dev *d, uint32_t psn, void *arg, mesh_rdma_qp **out,
                     mesh_rdma_attr *local);
/* Moves qp to RTR then RTS towards remote (path MTU: the smaller of both
 * ports'). On failure the queue pair is left in error: -EINVAL attributes
 * refused, else the verbs errno. */
int mesh_rdma_qp_connect(mesh_rdma_qp *qp, const mesh_rdma_attr *remote);
/* This queue pair's number and first sequence number (what the peer must
 * send to). */
void mesh_rdma_qp_local(const mesh_rdma_qp *qp, uint32_t *qpn, uint32_t *psn);
/* Points a connected qp at another remote queue pair of the same peer (it
 * made a new one: qpn, psn), through RESET, INIT, RTR and RTS; receives are
 * re-posted. Must not be called from within a handler of this qp. */
int mesh_rdma_qp_repoint(mesh_rdma_qp *qp, uint32_t qpn, uint32_t psn);
/* Puts an errored or connected qp back through RESET, INIT (re-posting its
 * receives) and, towards the same remote, RTR and RTS. */
int mesh_rdma_qp_reset(mesh_rdma_qp *qp);
/* Copies len bytes into a free registered send buffer and posts a SEND.
 * buf stays the caller's. -EMSGSIZE over the path's frame size
 * (mesh_rdma_frame_size of both buffer sizes);
 * -ENOBUFS all send buffers in flight; -ENOTCONN not connected; -EIO the
 * post failed (the qp is then failed: the error handler is not called). */
int mesh_rdma_qp_send(mesh_rdma_qp *qp, const uint8_t *buf, size_t len);
/* The same in two steps, for a sender that builds the frame in place (no
 * copy): the next send buffer and its size (the agreed frame size), valid
 * until the next post; then post the first len bytes written there. The
 * errors are mesh_rdma_qp_send's. */
int mesh_rdma_qp_send_slot(mesh_rdma_qp *qp, uint8_t **buf, size_t *cap);
int mesh_rdma_qp_post(mesh_rdma_qp *qp, size_t len);
/* Whether a send would be taken now: connected, not failed, a send buffer
 * free. */
bool mesh_rdma_qp_can_send(const mesh_rdma_qp *qp);
/* Send buffers free now (0 when not connected or failed), and all of them:
 * bulk traffic leaves some free for datagrams. */
uint32_t mesh_rdma_qp_send_free(const mesh_rdma_qp *qp);
uint32_t mesh_rdma_qp_send_depth(const mesh_rdma_qp *qp);
/* Largest frame this qp can send: the frame size agreed with the peer
 * (mesh_rdma_frame_size), 0 before connect. */
size_t mesh_rdma_qp_max_frame(const mesh_rdma_qp *qp);
/* Moves qp to the error state (fault injection and tests: as if the
 * device had failed it). Its next completions are flushed with errors. */
int mesh_rdma_qp_break(mesh_rdma_qp *qp);
void mesh_rdma_qp_free(mesh_rdma_qp *qp);

/* --- The transport (net/rdma_transport.c) --- */

/* Per-peer transport choice for the control API. */
typedef enum mesh_rdma_path {
  MESH_RDMA_PATH_NONE = 0, /* no RDMA offered by either side: TCP */
  MESH_RDMA_PATH_PROBING,  /* connected, waiting to hear the peer over RDMA */
  MESH_RDMA_PATH_UP,       /* datagrams go over RDMA */
  MESH_RDMA_PATH_FALLBACK, /* failed: TCP, RDMA retried after a backoff */
} mesh_rdma_path;

const char *mesh_rdma_path_name(mesh_rdma_path p);

typedef struct mesh_rdma_config {
  bool required;               /* --transport rdma: no RDMA is an error */
  mesh_rdma_dev_options dev;   /* device, link address, sizes, queue pair cap */
  mesh_time_ms keepalive_ms;   /* RDMA keepalive period per peer (250) */
  mesh_time_ms dead_ms;        /* peer not heard over RDMA this long: TCP (1500) */
  mesh_time_ms backoff_min_ms; /* first RDMA retry after a fallback (1000) */
  mesh_time_ms backoff_max_ms; /* cap on the retry delay (60000) */
  /* Adaptive completion polling: after a datagram went out or came in over
   * RDMA, the completion queue is busy-polled (no system call, no sleep)
   * for poll_us before the loop waits on the completion channel again, so
   * an answer is picked up without a wake-up. The loop gets a turn between
   * slices of it. Spinning stops for the rest of a second once it used
   * poll_budget_ms of that second; 0 in either turns polling off. Idle (no
   * datagrams; keepalives do not count) never spins. */
  uint32_t poll_us;        /* spin this long after datagram traffic (1000) */
  uint32_t poll_budget_ms; /* spinning per second at most (100: 10% of a core) */
  /* Bulk over RDMA (net/rdma_bulk.h): this node sends its MESH_CH_BULK
   * messages to peers with an RDMA link as sequenced UC frames (true); off,
   * they go over TCP as before. Sequenced bulk from peers is taken either
   * way. */
  bool bulk;
  mesh_time_ms bulk_rto_ms; /* a bulk message over RDMA unacknowledged this long: TCP (1000) */
  /* Called with bulk_lose_arg before each bulk frame is posted; true: the
   * frame is not posted, as if UC had lost it (counted in bulk_test_drops).
   * NULL in production: every frame is posted. A test loses frames with it
   * (MESHD_TEST_RDMA_BULK_DROP, src/daemon/test_faults.h). */
  bool (*bulk_lose)(void *arg);
  void *bulk_lose_arg;
} mesh_rdma_config;

void mesh_rdma_config_default(mesh_rdma_config *c);

/*
 * Opens the RDMA device and registers the "rdma" transport on net (which
 * must have been made with an event base). It also installs the handshake
 * extension hook (mesh_net_set_extension): every TCP handshake then offers
 * a queue pair while fewer than the cap are open. Returns 0 when attached;
 * else a negative errno with a one-line reason in why. Without RDMA and
 * not required, it logs once that datagrams use TCP, and the caller goes on
 * with TCP alone.
 */
int mesh_rdma_attach(mesh_net *net, const mesh_rdma_config *cfg, char *why, size_t whylen);

/* Counters of the RDMA transport beyond mesh_transport_counters. */
typedef struct mesh_rdma_stats {
  uint64_t fallbacks;      /* peers moved to TCP (completion error, failed transition, silence) */
  uint64_t retries;        /* RDMA tried again after a backoff */
  uint64_t qp_limit;       /* handshakes offered no queue pair: the cap was reached */
  uint64_t qp_errors;      /* queue pairs that could not be made */
  uint64_t bad_attributes; /* peers' attributes refused */
  uint64_t keepalives_sent;
  uint64_t keepalives_received;
  uint64_t resets;           /* queue pairs destroyed on request (mesh_rdma_reset_peer) */
  uint64_t repoints;         /* our queue pair re-pointed at a peer's new one */
  uint64_t device_events;    /* port or device failures reported by the device */
  uint64_t poll_us;          /* time spent busy-polling the completion queue */
  uint64_t poll_completions; /* completions found by busy-polling (no wake-up needed) */
  uint64_t poll_budget_hits; /* spins cut short: the per-second budget was used up */
  /* Bulk (net/rdma_bulk.h), this node's side of it: */
  uint64_t bulk_frames_sent;     /* bulk frames posted */
  uint64_t bulk_frames_received; /* bulk frames opened */
  uint64_t bulk_bytes_sent;      /* message bytes sent in bulk frames */
  uint64_t bulk_bytes_received;  /* message bytes delivered from bulk frames */
  uint64_t bulk_msgs_rdma;       /* messages given to RDMA */
  uint64_t bulk_msgs_tcp;        /* messages sent sequenced over TCP (first time) */
  uint64_t bulk_tcp_bytes_sent;  /* message bytes of every sequenced TCP copy */
  uint64_t bulk_msgs_received;   /* messages delivered, over either path */
  uint64_t bulk_gaps;            /* frames or messages found missing */
  uint64_t bulk_dups;            /* copies of delivered messages dropped */
  uint64_t bulk_fallbacks;       /* times this sender went to TCP for a gap or a timeout */
  uint64_t bulk_timeouts;        /* ... of which timeouts */
  uint64_t bulk_resent;          /* messages sent again over TCP */
  uint64_t bulk_acks;            /* acknowledgements sent */
  uint64_t bulk_nacks;           /* gap reports sent */
  uint64_t bulk_waits;           /* sends refused for credit (-EAGAIN) */
  uint64_t bulk_bad;             /* sequenced messages or frames refused (malformed, other link) */
  uint64_t bulk_test_drops;      /* frames not posted by the test hook */
  uint64_t paths_up;             /* gauge: peers whose datagrams go over RDMA */
  uint64_t qps_open;             /* gauge: queue pairs open */
} mesh_rdma_stats;

/* The RDMA stats of net; -ENOENT when no RDMA transport is attached. */
int mesh_rdma_stats_of(const mesh_net *net, mesh_rdma_stats *out);
/*
 * Destroys peer's queue pair (an operator's "transport reset", or a test
 * breaking a live path): its datagrams go over TCP at once (one log line,
 * counted as a fallback and a reset), and after the backoff a new queue
 * pair is made, connected to the peer's, and announced in its keepalives,
 * which re-point the peer's side to it. -ENOENT when the peer has no RDMA
 * path (unknown, on TCP only, or no RDMA transport attached).
 */
int mesh_rdma_reset_peer(mesh_net *net, const mesh_peer_id *peer);
/* The RDMA path of one peer (MESH_RDMA_PATH_NONE when unknown). */
mesh_rdma_path mesh_rdma_peer_path(const mesh_net *net, const mesh_peer_id *peer);

/* The ops table (net/rdma_transport.c); registered by mesh_rdma_attach. */
extern const mesh_transport_ops mesh_rdma_transport;

#endif
