/*
 * The peer network: how meshd moves messages between peers, whatever
 * carries them.
 *
 * A mesh_net, owned by the node, holds the transports (TCP always; RDMA
 * where it works) and is the only thing the membership core and the
 * coordinator talk to. A message is (peer ID, channel, class, bytes):
 *
 *   channel  MESH_CH_SWIM (membership), MESH_CH_COORD (coordinator),
 *            MESH_CH_BULK (model bytes between peers, stream class only)
 *   class    MESH_CLASS_DATAGRAM: probes, acks, gossip. Droppable, never
 *            waits behind bulk traffic; a full queue drops it (counted).
 *            MESH_CLASS_STREAM: push-pull sync, documents. Ordered and
 *            reliable while the connection lives; a full queue refuses it
 *            with -EAGAIN (back-pressure) and the writable callback says
 *            when to try again.
 *
 * Bulk messages wait in their own per-peer queue, bounded by
 * bulk_queue_max, and go out only when no datagram and no other stream
 * message waits (one bulk message already started is finished first, as
 * the receiver reassembles one stream message at a time): model bytes
 * never hold up membership, and coordinator messages wait behind at most
 * one bulk message. A full bulk queue refuses with -EAGAIN like a stream.
 *
 * Datagrams go through the first transport that says it can carry them to
 * that peer (RDMA, when registered and its queue pair works; then UDP, when
 * its path to the peer works, net/udp.h), else TCP. One too big for that
 * transport (-EMSGSIZE) tries the next.
 * Streams go over TCP, except bulk messages to a peer with an RDMA link:
 * the RDMA transport takes those (net/rdma_bulk.h) and sends them as UC
 * frames, or, sequenced, over TCP on MESH_CH_BULK_SEQ when RDMA cannot
 * carry them or lost a frame; the receiver's RDMA transport delivers them
 * as MESH_CH_BULK stream messages, in order, once. Every arriving message
 * is delivered with the sender's peer ID and epoch, as proven by the handshake (net/handshake.h).
 *
 * A transport is an ops table registered by scheme ("tcp", "rdma"). Each
 * member's comment says whether it blocks and who owns buffers. A transport
 * reports back through mesh_net_deliver, mesh_net_emit_peer,
 * mesh_net_writable and its counters (mesh_net_counters_of).
 *
 * Everything runs on the loop's thread: nothing here is thread-safe and
 * nothing blocks (a dial's /dns names are looked up asynchronously,
 * net/resolve.h).
 */
#ifndef MESH_NET_TRANSPORT_H
#define MESH_NET_TRANSPORT_H

#include "net/frame_cipher.h"
#include "net/multiaddr.h"
#include "src/base/clock.h"
#include "src/identity/identity.h"
#include "src/identity/psk.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef enum mesh_channel {
  MESH_CH_SWIM = 1,  /* membership */
  MESH_CH_COORD = 2, /* coordinator documents and commands */
  MESH_CH_BULK = 3,  /* model file bytes between peers (coord/bulk_wire.h) */
  /* Internal to the net: sequenced bulk messages, acknowledgements and gap
   * reports of the RDMA transport over TCP (net/rdma_bulk.h). Never sent
   * through mesh_net_send nor delivered to the node. */
  MESH_CH_BULK_SEQ = 4,
} mesh_channel;
#define MESH_CH_MAX 4

typedef enum mesh_class {
  MESH_CLASS_DATAGRAM = 0,
  MESH_CLASS_STREAM = 1,
} mesh_class;
#define MESH_CLASS_COUNT 2

/* Largest handshake extension (signed bytes another transport adds). */
#define MESH_HANDSHAKE_EXT_MAX 1024
#define MESH_NET_MAX_TRANSPORTS 4
/* Decorators a net takes (mesh_net_wrap). */
#define MESH_NET_MAX_WRAPS 2

/* Why something was dropped or refused. Every one is counted. */
typedef enum mesh_net_drop {
  MESH_DROP_QUEUE_FULL = 0,      /* a datagram did not fit its peer's queue */
  MESH_DROP_NO_ROUTE,            /* no connection to the peer */
  MESH_DROP_BAD_PSK,             /* handshake without the swarm key */
  MESH_DROP_BAD_SIGNATURE,       /* handshake signature did not verify */
  MESH_DROP_PEER_ID_MISMATCH,    /* the dialled /p2p/ ID is not the peer's */
  MESH_DROP_HANDSHAKE_MALFORMED, /* undecodable or out-of-bounds handshake */
  MESH_DROP_HANDSHAKE_TIMEOUT,   /* handshake not finished in time */
  MESH_DROP_SELF,                /* a connection to ourselves */
  MESH_DROP_REPLAY,              /* frame counter below the expected one */
  MESH_DROP_REORDER,             /* frame counter above the expected one */
  MESH_DROP_AUTH,                /* frame failed authentication (forged, flipped) */
  MESH_DROP_MALFORMED,           /* frame decoded but its content is invalid */
  MESH_DROP_OVERSIZE,            /* frame or message length over frame-max */
  MESH_DROP_TRUNCATED,           /* connection ended in the middle of a frame */
  MESH_DROP_IDLE_TIMEOUT,        /* nothing heard for the idle timeout */
  MESH_DROP_CONN_LIMIT,          /* over max-connections */
  MESH_DROP_DUPLICATE,           /* lost a simultaneous dial, or superseded */
  MESH_DROP_STALE_EPOCH,         /* a peer connected with an older epoch */
  MESH_DROP_UNJOINED,            /* evicted: authenticated, not in the view after the grace */
  MESH_DROP_SOURCE_LIMIT,        /* refused: one address's non-member connections at the cap */
  MESH_DROP_MEMBER_RESERVE,      /* refused: the slots left are kept for members */
  MESH_DROP_NO_CIPHER,           /* handshake: no frame cipher both ends accept */
  MESH_DROP__COUNT
} mesh_net_drop;

const char *mesh_net_drop_name(mesh_net_drop d);

/* One transport's counters (read by the control API). */
typedef struct mesh_transport_counters {
  uint64_t frames_sent;                         /* wire frames written */
  uint64_t bytes_sent;                          /* wire bytes written, headers and tags included */
  uint64_t frames_received;                     /* wire frames that authenticated */
  uint64_t bytes_received;                      /* wire bytes read */
  uint64_t messages_sent[MESH_CLASS_COUNT];     /* messages queued, by class */
  uint64_t messages_received[MESH_CLASS_COUNT]; /* messages delivered, by class */
  uint64_t connections_in;                      /* accepted */
  uint64_t connections_out;                     /* dials started */
  uint64_t handshakes_ok;                       /* peers that completed a handshake */
  uint64_t disconnects;                         /* established connections that ended */
  uint64_t keepalives_sent;                     /* idle keepalive frames */
  uint64_t quiet_links;               /* times a connection left keepalives to a path beside it */
  uint64_t dial_failures;             /* connect() errors and refusals */
  uint64_t resolve_failures;          /* dial_failures whose DNS name did not resolve */
  uint64_t dropped[MESH_DROP__COUNT]; /* refused or dropped, by reason */
  uint64_t connections_open;          /* gauge: sockets open now */
  uint64_t peers_up;                  /* gauge: peers with a finished handshake */
  uint64_t cipher_handshakes[MESH_FRAME_CIPHER_COUNT]; /* handshakes_ok by frame cipher */
} mesh_transport_counters;

typedef struct mesh_net mesh_net;

/* A peer connected (up) or disconnected. Borrowed for the callback. */
typedef struct mesh_net_peer_event {
  bool up;
  mesh_peer_id peer;
  uint64_t epoch;           /* the peer's epoch from its handshake */
  uint64_t conn_id;         /* the connection (see mesh_net_extension_fn) */
  bool outbound;            /* we dialled */
  const uint8_t *extension; /* the peer's signed handshake extension (up) */
  size_t extension_len;
  const uint8_t *secret;         /* up: the link's 32-byte export secret (net/handshake.h),
                                    NULL when the transport has none */
  const struct sockaddr *remote; /* up: the peer's address on that link, or NULL */
  socklen_t remote_len;
  const char *scheme;   /* transport that raised it */
  bool replaced;        /* up: the peer was up already, and this connection of the
                           same run replaced the one it had. What was sent on the
                           old one just before may be lost: a listener that waits
                           for an answer may ask again. */
  int reason;           /* down: 0 for a clean close, else a negative errno */
  uint8_t frame_cipher; /* up: the connection's mesh_frame_cipher, agreed in its handshake */
} mesh_net_peer_event;

/* A message arrived; buf is borrowed for the duration of the call. */
typedef void (*mesh_net_message_fn)(void *arg, const mesh_peer_id *from, uint64_t epoch,
                                    mesh_channel ch, mesh_class cls, const uint8_t *buf,
                                    size_t len);
typedef void (*mesh_net_peer_fn)(void *arg, const mesh_net_peer_event *ev);
/* A peer's stream queue has room again after an -EAGAIN. */
typedef void (*mesh_net_writable_fn)(void *arg, const mesh_peer_id *peer);
/*
 * Fills this node's handshake extension for connection conn_id (e.g. the
 * RDMA attributes of the queue pair made for it): at most cap bytes into
 * buf, *len the length. Called on the loop thread when a handshake starts;
 * the bytes are signed with the rest of the handshake. Return 0, or a
 * negative errno to send no extension.
 */
typedef int (*mesh_net_extension_fn)(void *arg, uint64_t conn_id, uint8_t *buf, size_t cap,
                                     size_t *len);
/* Whether peer is a member of the view now (alive or suspect). Called on
 * the loop thread whenever a connection slot is weighed; must not block or
 * call back into the net. */
typedef bool (*mesh_net_member_fn)(void *arg, const mesh_peer_id *peer);

/*
 * Connection slots. max_connections sockets are held at once, and a peer
 * holding the swarm key can make as many identities as it likes, so
 * authenticated is not enough to keep a slot: members of the view keep
 * theirs before anyone else.
 *
 * - A slot is needed (an accept or a dial) and all are taken: the oldest
 *   connection still handshaking is closed (conn_limit); failing that, the
 *   oldest authenticated connection whose peer has not joined the view
 *   within unjoined_grace_ms of its handshake (unjoined); failing that,
 *   the newcomer is refused (conn_limit). A member's connection is never
 *   closed for a slot.
 * - Authenticated non-members may hold at most max_connections minus
 *   member_reserve_pct percent. An inbound connection finishing its
 *   handshake as a non-member past that share takes the slot of the oldest
 *   non-member past the grace (unjoined), or is closed (member_reserve).
 *   The share is weighed when a handshake ends, since only then is the
 *   peer known; a handshake in progress may use any free slot, reserved
 *   ones included, because it is the first to go when a slot is needed.
 *   Connections this node dialled are counted but never refused for the
 *   share: who to dial is this node's own choice.
 * - One source address may have at most max_per_source inbound handshakes
 *   under way (an accept past that is closed at once), and at most
 *   max_per_source inbound authenticated non-members: one past that, when
 *   its handshake ends, takes the place of the oldest of them past its
 *   grace (unjoined), else is closed (source_limit either way). Members
 *   never count, so a member may share an address (loopback tests, NAT)
 *   with a key holder's throwaway identities and still get in.
 *
 * Non-members past the grace are not closed while no slot is wanted: that
 * would only hand their slots to fresh identities, each of them protected
 * by a new grace, where an old one is the first to give way.
 * Without a member check every authenticated peer counts as a member:
 * only handshakes are ever evicted, or counted against their source.
 */

typedef struct mesh_net_options {
  const mesh_identity *identity;  /* borrowed; outlives the net */
  uint64_t epoch;                 /* this run's epoch, sent in handshakes */
  mesh_psk psk;                   /* the swarm key */
  struct event_base *base;        /* the loop's libevent base (borrowed) */
  mesh_time_ms (*now)(void *arg); /* cached "now" of the turn; NULL: mesh_clock_now_ms */
  void *now_arg;
  int max_connections;               /* sockets held at once, handshaking included (256) */
  size_t frame_max;                  /* largest message and frame accepted (1 MiB) */
  mesh_time_ms handshake_timeout_ms; /* (5 s) */
  mesh_time_ms keepalive_ms;         /* keepalive after this much send silence to the peer,
                                        on any transport (2 s; the daemon derives it from
                                        the membership timing, mesh_swim_link_timing) */
  mesh_time_ms idle_timeout_ms;      /* close after this much receive silence from the peer,
                                        on any transport (10 s; derived likewise); also
                                        the longest data may go unacknowledged on a TCP
                                        connection (TCP_USER_TIMEOUT). A member whose
                                        datagrams go beside TCP (UDP, RDMA) gets neither
                                        keepalives nor the idle close on TCP (net/tcp.c) */
  size_t datagram_queue_max;         /* per-peer bytes of queued datagrams (256 KiB) */
  size_t stream_queue_max;           /* per-peer bytes of queued stream messages (4 MiB) */
  size_t chunk_size;                 /* stream chunk between datagram turns (16 KiB) */
  size_t bulk_queue_max;             /* per-peer bytes of queued MESH_CH_BULK messages (1 MiB) */
  uint64_t rng_seed;                 /* random seed for the transports; 0 seeds from the OS */
  /* Slots for members (see "Connection slots" above; they apply once
   * mesh_net_set_member_check says who the members are): */
  int member_reserve_pct;         /* share of max_connections kept for members, 0-90 (25) */
  int max_per_source;             /* inbound non-member connections from one address (16) */
  mesh_time_ms unjoined_grace_ms; /* an authenticated peer's time to join the view (10 s) */
  /* Frame ciphers offered in handshakes, most preferred first
   * (net/frame_cipher.h; mesh_frame_offer_default: ChaCha first, AES-GCM
   * accepted). */
  mesh_frame_offer frame_offer;
} mesh_net_options;

/* Fills the defaults above (identity, psk and base left empty). */
void mesh_net_options_default(mesh_net_options *o);

/*
 * What a transport is to the net. The connection transport (TCP, always the
 * first registered) listens, dials, authenticates peers and carries
 * streams; a path beside it (UDP, RDMA) neither listens for peers nor dials
 * them: it learns of each peer from the connection transport's events
 * (peer_event: keys, addresses, the handshake's extensions) and carries
 * what it can (datagrams; RDMA bulk too) while the connection is up.
 */
typedef enum mesh_transport_role {
  MESH_TRANSPORT_CONNECTIONS = 0,
  MESH_TRANSPORT_PATH,
} mesh_transport_role;

/*
 * The ops table of a transport. state is what init returned.
 */
typedef struct mesh_transport_ops {
  const char *scheme; /* "tcp", "rdma": the multiaddr protocol it serves */
  /* Exactly one connection transport, registered first; every other one is
   * a path, with listen and dial NULL (mesh_net_register refuses others). */
  mesh_transport_role role;
  /* Creates the transport's state. Non-blocking. counters is owned by the
   * net and lives as long as the transport. */
  int (*init)(mesh_net *net, const mesh_net_options *opt, mesh_transport_counters *counters,
              void **state);
  /* Closes every connection (peers get no down events) and frees state. */
  void (*fini)(void *state);
  /* Starts listening (bind + listen, non-blocking). NULL for transports
   * that do not listen (RDMA rides on TCP's handshake). bound (may be
   * NULL) receives the address actually bound (port 0 picks one). */
  int (*listen)(void *state, const mesh_multiaddr *addr, mesh_multiaddr *bound);
  /* Starts one dial attempt (non-blocking); it is never retried here (the
   * connection manager decides who to redial, net/connmgr.h). expect (may
   * be NULL) is the peer ID the peer must prove. A 0 return promises
   * exactly one mesh_net_dial_done with token: 0 and the peer reached (its
   * up event raised first, or the peer was connected already), or why it
   * failed (-ELOOP: the address led to this node). NULL for transports
   * that do not dial. */
  int (*dial)(void *state, const mesh_multiaddr *addr, const mesh_peer_id *expect, uint64_t token);
  /* Whether this transport can carry cls to peer right now. */
  bool (*can_send)(void *state, const mesh_peer_id *peer, mesh_class cls);
  /* Queues one message; never blocks. buf stays the caller's (copied here).
   * 0 queued; -ENOTCONN no connection; -EMSGSIZE over frame-max;
   * -ENOBUFS datagram dropped (queue full, counted); -EAGAIN stream queue
   * full (nothing queued; wait for the writable callback). */
  int (*send)(void *state, const mesh_peer_id *peer, mesh_channel ch, mesh_class cls,
              const uint8_t *buf, size_t len);
  /* Closes the connection to peer (a down event follows) and cancels the
   * attempts dialling it (-ECANCELED). Non-blocking. */
  int (*disconnect)(void *state, const mesh_peer_id *peer);
  /* Optional: told of every other transport's peer events, so that RDMA
   * can read the handshake extension TCP carried. */
  void (*peer_event)(void *state, const mesh_net_peer_event *ev);
  /* Optional: this node's epoch grew (renewed in place, see
   * mesh_net_set_epoch). Handshakes started from now on carry it;
   * established connections stay. Non-blocking. NULL for transports whose
   * handshake another one carries (RDMA rides on TCP's). */
  void (*set_epoch)(void *state, uint64_t epoch);
  /* Optional: the frame cipher of peer's connection (a mesh_frame_cipher),
   * or -ENOTCONN. NULL for transports whose keys another one agrees. */
  int (*frame_cipher)(void *state, const mesh_peer_id *peer);
  /* Optional: a MESH_CH_BULK_SEQ message arrived over another transport
   * (buf borrowed for the call). The transport that has it owns that
   * channel. */
  void (*bulk_seq)(void *state, const mesh_peer_id *from, const uint8_t *buf, size_t len);
  /* Optional: another transport has room for peer's stream messages again
   * (told before the node is). */
  void (*writable)(void *state, const mesh_peer_id *peer);
  /* Optional: another transport now listens at bound (the address it got),
   * so a datagram path beside it (UDP) can bind the same port. Non-blocking;
   * a failure is the transport's to log and count. */
  void (*listened)(void *state, const mesh_multiaddr *bound);
  /* Optional: a message to (sent) or from (!sent) peer went through
   * another transport. Authenticated traffic on any path proves the peer
   * alive as well as the transport's own frames do, so a connection whose
   * peer is heard over RDMA or UDP needs no keepalive of its own
   * (net/tcp.c). Non-blocking. */
  void (*traffic)(void *state, const mesh_peer_id *peer, bool sent);
} mesh_transport_ops;

/* The TCP transport (net/tcp.c). */
extern const mesh_transport_ops mesh_tcp_transport;

/* Creates the net with the TCP transport registered. opt is copied. */
int mesh_net_new(const mesh_net_options *opt, mesh_net **out);
/* Closes everything and frees. */
void mesh_net_free(mesh_net *net);
/* Registers another transport (ops is borrowed and static). -EEXIST for a
 * scheme already registered, -ENOSPC past MESH_NET_MAX_TRANSPORTS, -EINVAL
 * for a second connection transport or a path that listens or dials. */
int mesh_net_register(mesh_net *net, const mesh_transport_ops *ops);

/*
 * A decorator around a transport: given the transport as the net calls it
 * now (inner and its state), fills *ops and *state with its own, which the
 * net calls from then on for every member. *ops (owned by the decorator,
 * alive until its fini) carries inner's scheme; init is never called; each
 * other member forwards to inner's (and is NULL where inner's is), except
 * where the decorator changes what the transport does, e.g. a send that
 * holds a message and later calls inner's send. fini frees only the
 * decorator's state: the net finishes the layers outermost first. Called
 * on the loop thread; 0, or a negative errno (nothing made).
 */
typedef int (*mesh_net_wrap_fn)(void *arg, const mesh_transport_ops *inner, void *inner_state,
                                const mesh_transport_ops **ops, void **state);
/*
 * Puts a decorator around every transport registered, and around each one
 * registered later. The net owns arg once this returns 0 and calls
 * release(arg) (may be NULL) when it is freed, after the transports. What
 * only tests want in the send path (the delay line, net/fault.h) is
 * inserted this way; a net without decorators calls the transports
 * directly. -ENOSPC past MESH_NET_MAX_WRAPS, or what fn returned (nothing
 * is wrapped then, and arg is still the caller's).
 */
int mesh_net_wrap(mesh_net *net, mesh_net_wrap_fn fn, void (*release)(void *arg), void *arg);

void mesh_net_on_message(mesh_net *net, mesh_net_message_fn fn, void *arg);
void mesh_net_on_peer(mesh_net *net, mesh_net_peer_fn fn, void *arg);
void mesh_net_on_writable(mesh_net *net, mesh_net_writable_fn fn, void *arg);
void mesh_net_set_extension(mesh_net *net, mesh_net_extension_fn fn, void *arg);
/* Tells the transports who the members are (see "Connection slots"); fn
 * NULL removes the check (every authenticated peer then counts as a
 * member). arg is borrowed: remove the check before freeing it. */
void mesh_net_set_member_check(mesh_net *net, mesh_net_member_fn fn, void *arg);

/* Listens on a multiaddr or host:port; bound (may be NULL) receives the
 * address bound. -EBADMSG for bad text, -EPROTONOSUPPORT for an unknown
 * scheme, or the socket error. */
int mesh_net_listen(mesh_net *net, const char *addr, mesh_multiaddr *bound);
/* Dials a multiaddr or host:port (its /p2p/ part, or expect when not NULL,
 * is the peer ID required). */
/* A dial attempt ended: rc 0 and the peer reached, or a negative errno
 * (peer NULL). The listener may dial again from the callback. */
typedef void (*mesh_net_dial_fn)(void *arg, uint64_t token, int rc, const mesh_peer_id *peer);
void mesh_net_on_dial(mesh_net *net, mesh_net_dial_fn fn, void *arg);
/* One dial attempt at addr (a multiaddr, or host:port); see the dial op. A
 * /p2p/ part of addr is the peer to expect. */
int mesh_net_dial(mesh_net *net, const char *addr, const mesh_peer_id *expect, uint64_t token);
/* Sends one message (see the send op for the results). MESH_CH_BULK_SEQ
 * is refused (-EINVAL): it is the net's own. */
int mesh_net_send(mesh_net *net, const mesh_peer_id *peer, mesh_channel ch, mesh_class cls,
                  const uint8_t *buf, size_t len);
int mesh_net_disconnect(mesh_net *net, const mesh_peer_id *peer);
/*
 * This node renewed its epoch in place (declared dead, it took epoch + 1,
 * already durable). Handshakes from now on carry the new epoch; connections
 * already up are kept, not re-established. -ESTALE when epoch is not higher.
 *
 * Why keeping them is right: the epoch a connection's handshake proved is
 * only a hint to the layers above. Membership learns a member's epoch from
 * its signed alive record (which the renewal spreads at once, and which
 * supersedes the older epoch at every receiver), and the coordinator from
 * its signed documents and commands, each of which names its epoch; neither
 * believes the connection's epoch. Closing every connection instead would
 * cost each peer a handshake, drop queued stream messages and any transfer
 * running over them, and start a burst of redials just when the node is
 * trying to look healthy. What the connection's epoch does decide is which
 * of two connections to one peer survives (net/tcp.c): a connection made at
 * the newer epoch replaces one made at an older epoch on both ends, so a
 * later reconnect settles on the new epoch without a contest.
 */
int mesh_net_set_epoch(mesh_net *net, uint64_t epoch);
/* The epoch handshakes carry now. */
uint64_t mesh_net_epoch(const mesh_net *net);
/* The scheme of the transport that would carry cls to peer now ("rdma",
 * "tcp"), or NULL when no transport can (not connected). */
const char *mesh_net_route(const mesh_net *net, const mesh_peer_id *peer, mesh_class cls);
/* The frame cipher agreed with peer (a mesh_frame_cipher), or -ENOTCONN
 * when no transport has a connection to it. */
int mesh_net_frame_cipher(const mesh_net *net, const mesh_peer_id *peer);

/* The state init returned for the transport with this scheme (for that
 * transport's own accessors); NULL when not registered. */
void *mesh_net_state_of(const mesh_net *net, const char *scheme);
/* Counters of the transport with this scheme; NULL when not registered. */
const mesh_transport_counters *mesh_net_counters_of(const mesh_net *net, const char *scheme);
/* Sum of every transport's counters. */
void mesh_net_counters_total(const mesh_net *net, mesh_transport_counters *out);
/* Registered schemes: *n receives the count. */
const char *mesh_net_scheme(const mesh_net *net, int i);
int mesh_net_transport_count(const mesh_net *net);

/* --- Called by transports --- */
void mesh_net_deliver(mesh_net *net, const mesh_peer_id *from, uint64_t epoch, mesh_channel ch,
                      mesh_class cls, const uint8_t *buf, size_t len);
void mesh_net_emit_peer(mesh_net *net, const mesh_net_peer_event *ev);
/* A transport's dial attempt ended (see the dial op). */
void mesh_net_dial_done(mesh_net *net, uint64_t token, int rc, const mesh_peer_id *peer);
/* Tells the other transports only (not the node) of an up event the node
 * does not see: a peer's connection replaced by a newer one of the same
 * epoch, whose conn_id and extension the RDMA transport must pair with. */
void mesh_net_emit_transport_peer(mesh_net *net, const mesh_net_peer_event *ev);
void mesh_net_writable(mesh_net *net, const mesh_peer_id *peer);
/* Sends one message through the transport with this scheme only (a
 * transport handing its MESH_CH_BULK_SEQ messages to TCP). -ENOTCONN when
 * it cannot carry cls to peer now; else as the send op. */
int mesh_net_send_via(mesh_net *net, const char *scheme, const mesh_peer_id *peer, mesh_channel ch,
                      mesh_class cls, const uint8_t *buf, size_t len);
/* Asks the registered extension hook for this node's extension bytes. */
int mesh_net_extension(mesh_net *net, uint64_t conn_id, uint8_t *buf, size_t cap, size_t *len);
/* Whether a transport beside the connection transport (UDP, RDMA) carries
 * datagrams to peer now. */
bool mesh_net_datagrams_beside(mesh_net *net, const mesh_peer_id *peer);
/* Whether peer is a member, as the member check says (true without one). */
bool mesh_net_is_member(mesh_net *net, const mesh_peer_id *peer);
mesh_time_ms mesh_net_now(mesh_net *net);

#endif
