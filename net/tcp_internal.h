/*
 * Internals of the TCP transport, shared by tcp.c (the ops table, listening,
 * dialling, the set of connections) and tcp_conn.c (one connection: the
 * handshake, frames, queues, keepalive). Not for use outside net/tcp*.c.
 *
 * Ownership: the transport (tcp_state) owns every connection and dial
 * target. A connection owns its socket, its events, its handshake state and
 * its queues. A closed connection is unlinked at once and freed from a
 * deferred event, so a callback running on its behalf never touches freed
 * memory.
 *
 * Connection states (changed only in tcp_conn_set_state, which logs):
 *   CONNECTING  outbound connect() in progress
 *   HELLO       waiting for the peer's Hello
 *   FINISH      keys derived, waiting for the peer's finish frame
 *   UP          authenticated; data flows
 *   CLOSED      unlinked, waiting to be freed
 */
#ifndef MESH_NET_TCP_INTERNAL_H
#define MESH_NET_TCP_INTERNAL_H

#include "net/handshake.h"
#include "net/resolve.h"
#include "net/transport.h"
#include "src/base/rng.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <sys/socket.h>

typedef enum tcp_conn_state {
  TCP_CONNECTING = 0,
  TCP_HELLO = 1,
  TCP_FINISH = 2,
  TCP_UP = 3,
  TCP_CLOSED = 4,
} tcp_conn_state;

typedef struct tcp_state tcp_state;
typedef struct tcp_target tcp_target;

/* A queued message: the caller's bytes, copied. */
typedef struct tcp_msg {
  struct tcp_msg *next;
  uint8_t channel;
  uint8_t cls;
  size_t len;
  size_t off;     /* bytes already sent (stream chunks) */
  uint8_t data[]; /* len bytes */
} tcp_msg;

typedef struct tcp_queue {
  tcp_msg *head, *tail;
  size_t bytes; /* payload bytes queued */
} tcp_queue;

/* The address an inbound connection came from, for the per-source cap:
 * IPv4 (also when mapped into IPv6) or IPv6, port left out. */
typedef struct tcp_source {
  int family;       /* AF_INET, AF_INET6; 0: unknown (outbound, or not IP) */
  uint8_t addr[16]; /* the first 4 bytes for AF_INET */
} tcp_source;

typedef struct tcp_conn {
  struct tcp_conn *next, *prev; /* in tcp_state's list of open connections */
  tcp_state *t;
  uint64_t id; /* connection id, unique per transport */
  int fd;
  tcp_conn_state state;
  bool outbound;      /* we dialled */
  tcp_target *target; /* the dial attempt making it, until it is UP or closed */
  struct event *rev, *wev, *timer;
  struct evbuffer *in, *out;
  mesh_hs *hs; /* while handshaking; freed when UP */
  mesh_frame_dir tx, rx;
  mesh_peer_id peer;    /* valid from FINISH on */
  uint64_t epoch;       /* the peer's epoch */
  uint64_t local_epoch; /* ours, as our Hello on this connection carried it */
  uint8_t *ext;         /* the peer's handshake extension (heap) */
  size_t ext_len;
  mesh_time_ms opened, last_rx, last_tx;
  bool quiet;                /* no keepalives, no idle close: the peer's datagrams go beside TCP */
  mesh_time_ms up_at;        /* handshake finished (kept from a connection it replaced) */
  tcp_source src;            /* inbound: where it came from */
  tcp_queue dq, sq;          /* datagrams (sent first), stream messages */
  tcp_queue bq;              /* MESH_CH_BULK stream messages: sent when dq and sq are empty */
  bool want_writable;        /* a stream send got -EAGAIN */
  bool pumping;              /* inside tcp_conn_pump */
  mesh_frame_reasm reasm;    /* stream messages arriving in chunks */
  uint8_t export_secret[32]; /* the handshake's, for the UDP path's keys (from UP on) */
  struct sockaddr_storage remote; /* the peer's address, from UP on (remote_len 0: unknown) */
  socklen_t remote_len;
} tcp_conn;

/* One dial attempt, from its start to its outcome (reported once with
 * mesh_net_dial_done, then freed). Redialling is the caller's business. */
struct tcp_target {
  tcp_target *next;
  tcp_state *t;
  mesh_multiaddr addr;
  bool has_expect; /* the peer ID must be expect */
  mesh_peer_id expect;
  uint64_t token;              /* the caller's, reported with the outcome */
  tcp_conn *conn;              /* the connection being made, or NULL */
  mesh_resolve_req *resolving; /* the lookup of a DNS name under way, or NULL */
};

#define TCP_MAX_LISTENERS 4
/* Socket send buffer (the kernel doubles it): bounds how much stream data
 * a datagram can find ahead of it in the kernel; enough for full speed on
 * a LAN (it covers 2 ms of 1 GB/s). */
#define TCP_SNDBUF (256 << 10)
/* Most bytes read from a socket in one callback. */
#define READ_CHUNK (256u << 10)

struct tcp_state {
  mesh_net *net;
  mesh_net_options opt;
  mesh_transport_counters *c; /* owned by the net */
  mesh_rng rng;               /* backoff jitter */
  struct event_base *base;
  struct {
    int fd;
    struct event *ev;
  } listeners[TCP_MAX_LISTENERS];
  int nlisteners;
  struct event *accept_pause; /* re-enables accepting after EMFILE */
  tcp_conn *conns;            /* open connections */
  int nconns;
  tcp_conn *dead; /* closed, to be freed */
  struct event *reaper;
  tcp_target *targets; /* dial attempts under way */
  uint64_t next_id;
  uint8_t *scratch;        /* READ_CHUNK bytes: every read lands here first */
  mesh_resolver *resolver; /* made on the first dial of a DNS name */
};

/* tcp_conn.c */
tcp_conn *tcp_conn_new(tcp_state *t, int fd, bool outbound, tcp_conn_state st);
int tcp_conn_start_handshake(tcp_conn *c);
void tcp_conn_set_state(tcp_conn *c, tcp_conn_state st);
/* Closes c. drop < 0: a clean close, else the reason counted. err is the
 * down event's reason. emit: raise a down event if c was UP. */
void tcp_conn_close(tcp_conn *c, int drop, int err, bool emit);
int tcp_conn_send(tcp_conn *c, mesh_channel ch, mesh_class cls, const uint8_t *buf, size_t len);
void tcp_conn_free(tcp_conn *c);
/* c finished its handshake and won any duplicate contest: it goes UP. */
void tcp_conn_up(tcp_conn *c);
/* Moves old's queues into c (a duplicate connection replaced). */
void tcp_conn_take_queues(tcp_conn *c, tcp_conn *old);
/* Writes what c's output buffer holds; 0, or a negative errno (c is then
 * to be closed by the caller). */
int tcp_conn_flush(tcp_conn *c);
/* Sends a frame of type (finish, keepalive) with no payload; closes c when
 * it cannot. */
void tcp_conn_send_control(tcp_conn *c, uint8_t type);

/* tcp_recv.c */
/* c's socket is readable (libevent's read callback of c->rev). */
void tcp_conn_on_read(evutil_socket_t fd, short what, void *arg);

/* tcp.c */
tcp_conn *tcp_find_up(tcp_state *t, const mesh_peer_id *peer);
/* A connection finished its handshake: resolve duplicates, raise events.
 * Returns false when c was closed instead. */
bool tcp_established(tcp_conn *c);
/* A connection closed (err: why): a dial attempt making it has failed. */
void tcp_closed(tcp_conn *c, bool was_up, int err);

#endif
