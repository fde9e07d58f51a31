/*
 * Fault injection for tests: a delay line wrapped around the peer
 * network's transports, holding outgoing messages for delay +/- jitter
 * before they are handed to the transport. The kernels the fault scenarios
 * run on have no sch_netem, so this is how they get latency and jitter.
 *
 * How it is inserted: the line is a transport decorator (mesh_net_wrap,
 * net/transport.h). A test, or the daemon when MESHD_TEST_FAULTS is set,
 * calls mesh_net_wrap(net, mesh_fault_line_wrap, mesh_fault_line_release,
 * line): every transport, and each one registered later, is then called
 * through the line, whose send holds the message and later calls the send
 * of the transport the net chose for it. mesh_net_send itself knows
 * nothing of it: a net nobody wrapped calls the transports directly.
 *
 * It is never on in production: only the MESHD_TEST_FAULTS environment
 * variable, read once at start (src/daemon/test_faults.c), makes the daemon wrap
 * its net; a node with a line logs a warning at start and shows
 * meshd_test_faults_active 1 in /metrics. There is no flag, INI key or API
 * call that creates one.
 *
 * Why outgoing: a held outgoing message can be refused to its local
 * producer (-EAGAIN, the transport's own back-pressure contract) when the
 * line is full, whereas a received message has already left the sender's
 * TCP window and could only be dropped, which would break streams. Holding
 * before the transport also delays the message before it is framed, so the
 * frame counters (replay protection) stay in order, and one node's setting
 * changes only what that node sends: a slow node is slow on its own sends.
 * What the transports send on their own (handshakes, keepalives) is not
 * delayed. A held message goes to the transport the net chose when it was
 * sent (RDMA, UDP or TCP), as if sent at release: if that transport can no
 * longer carry it then (its connection or path went down meanwhile), that
 * is a release failure, as a datagram in flight on a path that fails is
 * lost; a datagram too big for it goes, undelayed, to the next transport
 * down, as the net does with one sent directly.
 *
 * Ordering: a datagram gets its own delay and may overtake others, as on a
 * real network. A stream message is never released before an earlier stream
 * message to the same peer: its due time is at least the latest due time of
 * the stream messages already held for that peer, and ties go by arrival.
 *
 * Bounds: at most max_bytes and max_messages are held at once. Over the
 * bound a datagram is dropped (counted, -ENOBUFS, as a full transport queue
 * does) and a stream message is refused with -EAGAIN (nothing held, counted);
 * the peer gets a writable callback (mesh_net_writable) once there is room.
 * A released message meets its transport as if sent then: if the
 * connection went down meanwhile, or the transport's queue is full, it is
 * counted as a release failure.
 *
 * Two layers:
 *   mesh_fault       the sans-IO core: push with "now", pop what is due,
 *                    ask for the next due time. Seeded rng, no clock, no IO.
 *   mesh_fault_line  the driver: the core plus one libevent timer on the
 *                    loop's base, and the decorator around each transport;
 *                    due messages go to the inner transport's send. The
 *                    net owns it once wrapped.
 *
 * Spec text (MESHD_TEST_FAULTS, and $MESH_HOME/test-faults on SIGHUP):
 *   "off"  armed, holding nothing; or comma-separated key=value:
 *   delay=DURATION      mean delay (required; 0 allowed), at most 60 s
 *   jitter=DURATION     spread (default 0), at most 60 s
 *   dist=uniform|normal uniform in [delay-jitter, delay+jitter], or normal
 *                       with mean delay and standard deviation jitter cut
 *                       at +/- 3 jitter; both clamped at 0 (default uniform)
 *   peer=PEER_ID        only messages to this peer (default: every peer)
 *   max-bytes=SIZE      bound on bytes held (default 4 MiB, at most 64 MiB)
 *   max-messages=N      bound on messages held (default 4096, at most 65536)
 *   seed=N              random seed (default: from the OS)
 *
 * Everything runs on the loop's thread; nothing blocks.
 */
#ifndef MESH_NET_FAULT_H
#define MESH_NET_FAULT_H

#include "net/transport.h"
#include "src/base/clock.h"
#include "src/identity/identity.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

#define MESH_FAULT_ENV "MESHD_TEST_FAULTS"
#define MESH_FAULT_FILE "test-faults" /* in the node's home, read on SIGHUP */
#define MESH_FAULT_SPEC_MAX 512       /* longest spec text accepted */
#define MESH_FAULT_DELAY_MAX 60000    /* ms, for delay and jitter */
#define MESH_FAULT_BYTES_MAX (64u << 20)
#define MESH_FAULT_MESSAGES_MAX 65536
/* Peers remembered as refused, to be told when there is room again. */
#define MESH_FAULT_BLOCKED_MAX 64

typedef enum mesh_fault_dist {
  MESH_FAULT_UNIFORM = 0,
  MESH_FAULT_NORMAL = 1,
} mesh_fault_dist;

typedef struct mesh_fault_spec {
  bool active;            /* false: "off", nothing is held */
  mesh_time_ms delay_ms;  /* mean delay */
  mesh_time_ms jitter_ms; /* half-width (uniform) or standard deviation (normal) */
  mesh_fault_dist dist;
  bool has_peer;       /* only messages to peer are held */
  mesh_peer_id peer;   /* meaningful when has_peer */
  size_t max_bytes;    /* bytes held at once */
  size_t max_messages; /* messages held at once */
  bool has_seed;       /* seed given in the spec */
  uint64_t seed;       /* meaningful when has_seed */
} mesh_fault_spec;

/* An inactive spec with the default bounds. */
void mesh_fault_spec_default(mesh_fault_spec *s);
/* Parses spec text (grammar above). 0, or -EINVAL with a one-line reason in
 * err; every number is range-checked, text longer than MESH_FAULT_SPEC_MAX
 * is refused. */
int mesh_fault_spec_parse(const char *text, mesh_fault_spec *out, char *err, size_t errlen);
/* The spec as text that parses back to it, the seed left out ("off", or
 * "delay=100ms,jitter=50ms,dist=uniform,max-bytes=4MiB,..."); buf of
 * MESH_FAULT_SPEC_MAX bytes holds any. */
void mesh_fault_spec_describe(const mesh_fault_spec *s, char *buf, size_t len);

typedef struct mesh_fault_counters {
  uint64_t held;             /* messages taken into the line */
  uint64_t released;         /* messages handed out again */
  uint64_t dropped;          /* datagrams dropped: over the bound */
  uint64_t refused;          /* stream messages refused (-EAGAIN): over the bound */
  uint64_t release_failed;   /* released, but the transport refused them (driver) */
  uint64_t held_now;         /* gauge: messages held */
  uint64_t held_bytes_now;   /* gauge: bytes held */
  mesh_time_ms max_delay_ms; /* largest delay given to a message */
} mesh_fault_counters;

/* A held message; owned by whoever popped it (mesh_fault_msg_free). */
typedef struct mesh_fault_msg {
  mesh_time_ms due;  /* when it is to be released */
  uint64_t seq;      /* arrival order, the tie-break */
  mesh_peer_id peer; /* destination */
  mesh_channel ch;
  mesh_class cls;
  void *tag; /* the pusher's, carried untouched (the driver: which transport) */
  size_t len;
  uint8_t buf[]; /* the message bytes (a copy) */
} mesh_fault_msg;

typedef struct mesh_fault mesh_fault;

/* The core. spec is copied; seed feeds the delay rng (spec's seed, when it
 * has one, wins). -EINVAL for bounds out of range, -ENOMEM. */
int mesh_fault_new(const mesh_fault_spec *spec, uint64_t seed, mesh_fault **out);
/* Frees the core and every message still held. */
void mesh_fault_free(mesh_fault *f);
/* Replaces the spec; held messages keep their due times (and stream order
 * holds across the change). A new seed in the spec reseeds the rng. */
int mesh_fault_set_spec(mesh_fault *f, const mesh_fault_spec *spec);
const mesh_fault_spec *mesh_fault_get_spec(const mesh_fault *f);
/* Whether messages to peer get a delay (active, and peer selected). */
bool mesh_fault_selects(const mesh_fault *f, const mesh_peer_id *peer);
/* Whether a stream message to peer is held now. A later stream message to
 * that peer must then go through the line too, even when the peer is no
 * longer selected (the spec changed), so as not to overtake it. */
bool mesh_fault_holds_stream(const mesh_fault *f, const mesh_peer_id *peer);
/*
 * Holds a copy of buf (the caller keeps buf) until now + a sampled delay
 * (no delay for a peer not selected: only the order keeps it).
 * 0 held (*due, may be NULL, receives the release time); -ENOBUFS datagram
 * dropped; -EAGAIN stream refused (peer remembered for mesh_fault_take_room);
 * -ENOMEM. The caller checks mesh_fault_selects first.
 */
int mesh_fault_push(mesh_fault *f, mesh_time_ms now, const mesh_peer_id *peer, mesh_channel ch,
                    mesh_class cls, const uint8_t *buf, size_t len, mesh_time_ms *due);
/* As mesh_fault_push, the message carrying tag (mesh_fault_msg.tag). */
int mesh_fault_push_tagged(mesh_fault *f, mesh_time_ms now, const mesh_peer_id *peer,
                           mesh_channel ch, mesh_class cls, const uint8_t *buf, size_t len,
                           void *tag, mesh_time_ms *due);
/* The earliest due time held; false when nothing is held. */
bool mesh_fault_next_due(const mesh_fault *f, mesh_time_ms *due);
/* Pops the message due first if it is due at now, else NULL. The caller
 * owns it. Messages come out by (due, arrival). */
mesh_fault_msg *mesh_fault_pop(mesh_fault *f, mesh_time_ms now);
void mesh_fault_msg_free(mesh_fault_msg *m);
/* Once the line is below both bounds, hands out (and forgets) the peers
 * whose stream messages were refused: up to cap into out; returns how many. */
size_t mesh_fault_take_room(mesh_fault *f, mesh_peer_id *out, size_t cap);
const mesh_fault_counters *mesh_fault_counters_get(const mesh_fault *f);

/* --- The driver --- */

typedef struct mesh_fault_line mesh_fault_line;

/* A line for net, timed on base (the loop's); frame_max is the net's
 * (larger messages pass straight through, to get the transport's
 * -EMSGSIZE). Insert it with mesh_net_wrap (above); until then it holds
 * nothing. */
int mesh_fault_line_new(mesh_net *net, struct event_base *base, const mesh_fault_spec *spec,
                        uint64_t seed, size_t frame_max, mesh_fault_line **out);
/* Frees the line; messages still held are discarded (a stopping node).
 * Once wrapped, the net does this (after its transports). */
void mesh_fault_line_free(mesh_fault_line *l);
/*
 * The decorator (a mesh_net_wrap_fn; arg is the line): its send holds a
 * message when the spec selects its peer, or when a stream message to that
 * peer is held already (so as not to overtake it); everything else goes
 * straight to the transport inside, as do messages larger than frame_max.
 * The net calls send only when can_send said yes, so -ENOTCONN stays
 * immediate. -ENOMEM.
 */
int mesh_fault_line_wrap(void *arg, const mesh_transport_ops *inner, void *inner_state,
                         const mesh_transport_ops **ops, void **state);
/* mesh_fault_line_free for mesh_net_wrap's release (arg is the line). */
void mesh_fault_line_release(void *line);
int mesh_fault_line_set_spec(mesh_fault_line *l, const mesh_fault_spec *spec);
const mesh_fault *mesh_fault_line_core(const mesh_fault_line *l);

#endif
