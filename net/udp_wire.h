/*
 * The UDP datagram path's sans-IO parts: its keys, its packet format, its
 * replay window and the per-peer path state (net/udp.h moves the bytes).
 *
 * Keys. The TCP handshake leaves both ends an export secret
 * (net/handshake.h, mesh_hs.export_secret) that no frame key is made from.
 * Each direction's UDP key and receiver index come from it, with labels of
 * their own, so a UDP packet never shares a key or a nonce with a TCP frame:
 *
 *   key(dir)   = BLAKE2b-256(key = export secret, "meshd-udp-key-1" || dir)
 *   index(dir) = first 4 bytes (little-endian) of
 *                BLAKE2b-256(key = export secret, "meshd-udp-index-1" || dir)
 *   dir        = "d2l" (dialer to listener) or "l2d"
 *
 * A receiver looks its peer up by the index in the header (an integer
 * compare, no trial decryption) and opens the packet with that peer's key.
 *
 *   wire form of a packet
 *   OFFSET SIZE  FIELD
 *   0      1     type: 1 data, 2 ping (answer wanted), 3 pong
 *   1      1     channel (data: MESH_CH_*), else 0
 *   2      2     reserved, 0
 *   4      4     receiver index, little-endian
 *   8      8     counter, little-endian (per direction, from 0, never reused)
 *   16     N     ChaCha20-Poly1305 (IETF) ciphertext of the payload;
 *                nonce = 4 zero bytes || counter (little-endian);
 *                associated data = bytes 0..15
 *   16+N   16    tag
 *
 * The replay window keeps the highest counter accepted and a bitmap of the
 * MESH_UDP_REPLAY_BITS counters below it (as WireGuard does): a counter
 * more than MESH_UDP_REPLAY_WINDOW below the highest, or one seen already,
 * is refused. A packet is checked before its tag and recorded only after,
 * so a forgery cannot move the window.
 *
 * Nothing here allocates, reads a clock or touches a socket.
 */
#ifndef MESH_NET_UDP_WIRE_H
#define MESH_NET_UDP_WIRE_H

#include "src/base/clock.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESH_UDP_SECRET_LEN 32
#define MESH_UDP_KEY_LEN 32
#define MESH_UDP_HEADER_LEN 16
#define MESH_UDP_TAG_LEN 16
#define MESH_UDP_OVERHEAD (MESH_UDP_HEADER_LEN + MESH_UDP_TAG_LEN)
/* Largest payload the format allows; the configured maximum is lower. */
#define MESH_UDP_PAYLOAD_LIMIT 65000
#define MESH_UDP_REPLAY_BITS 2048
#define MESH_UDP_REPLAY_WINDOW (MESH_UDP_REPLAY_BITS - 64)
/* Counters from here on are refused and never sent: the key is worn out
 * long before (a new TCP handshake makes a new one). */
#define MESH_UDP_COUNTER_LIMIT (UINT64_MAX - MESH_UDP_REPLAY_BITS)

typedef enum mesh_udp_type {
  MESH_UDP_DATA = 1,
  MESH_UDP_PING = 2,
  MESH_UDP_PONG = 3,
} mesh_udp_type;

/* One end's keys for one link. */
typedef struct mesh_udp_keys {
  uint8_t tx[MESH_UDP_KEY_LEN]; /* seals what we send */
  uint8_t rx[MESH_UDP_KEY_LEN]; /* opens what the peer sends */
  uint32_t tx_index;            /* the peer's receiver index: put in what we send */
  uint32_t rx_index;            /* ours: what the peer's packets carry */
} mesh_udp_keys;

/* Derives our keys from the handshake's export secret; dialer: we dialled
 * the TCP connection. Both ends of a link derive mirrored keys. */
void mesh_udp_keys_derive(const uint8_t secret[MESH_UDP_SECRET_LEN], bool dialer,
                          mesh_udp_keys *out);

/* A decoded header. */
typedef struct mesh_udp_header {
  uint8_t type;    /* mesh_udp_type */
  uint8_t channel; /* data: the channel */
  uint32_t index;  /* receiver index */
  uint64_t counter;
} mesh_udp_header;

/* Reads the clear header of a packet of len bytes: 0, or -EBADMSG for a
 * packet too short to be one, a reserved field not 0, an unknown type, a
 * channel on a non-data packet or a data packet without one. */
int mesh_udp_peek(const uint8_t *pkt, size_t len, mesh_udp_header *h);

/* Seals one packet: header h (its index and counter the caller's) and
 * payload (len bytes, may be NULL when 0) into out, whose cap must hold
 * MESH_UDP_OVERHEAD + len; *out_len the packet length. -EMSGSIZE over
 * MESH_UDP_PAYLOAD_LIMIT or cap. buf and out stay the caller's. */
int mesh_udp_seal(const uint8_t key[MESH_UDP_KEY_LEN], const mesh_udp_header *h,
                  const uint8_t *payload, size_t len, uint8_t *out, size_t cap, size_t *out_len);

/* Opens a packet whose header mesh_udp_peek read, decrypting into out
 * (cap bytes, at least len - MESH_UDP_OVERHEAD); *out_len the payload
 * length. -MESH_EAUTH when the tag does not verify. */
int mesh_udp_open(const uint8_t key[MESH_UDP_KEY_LEN], const uint8_t *pkt, size_t len, uint8_t *out,
                  size_t cap, size_t *out_len);

/* The replay window of one receiving direction; all zero is a fresh one. */
typedef struct mesh_udp_replay {
  uint64_t top;                             /* highest counter accepted */
  uint64_t bits[MESH_UDP_REPLAY_BITS / 64]; /* seen, counter % BITS */
} mesh_udp_replay;

/* Whether counter may be accepted (not too old, not seen, not past the
 * limit). Changes nothing. */
bool mesh_udp_replay_check(const mesh_udp_replay *w, uint64_t counter);
/* Records an authenticated counter; false (nothing changed) when check
 * says no. */
bool mesh_udp_replay_accept(mesh_udp_replay *w, uint64_t counter);

/*
 * One peer's UDP path:
 *
 *   PROBING   after the handshake (and at each retry): pings every ping_ms;
 *             datagrams go over TCP. A pong, or data (the peer sends data
 *             only once it heard us), makes it UP; nothing for probe_ms
 *             makes it FALLBACK.
 *   UP        datagrams go over UDP. Sending after quiet_ms without hearing
 *             the peer puts the path in doubt; in doubt for doubt_ms, pings
 *             go out and datagrams take TCP (no fallback declared yet);
 *             anything heard ends the doubt; in doubt for dead_ms, FALLBACK.
 *   FALLBACK  datagrams over TCP; at retry_at PROBING again, the backoff
 *             doubling from backoff_min_ms to backoff_max_ms. A ping from
 *             the peer (its own retry) starts probing at once.
 */
typedef enum mesh_udp_path_state {
  MESH_UDP_PATH_PROBING = 0,
  MESH_UDP_PATH_UP = 1,
  MESH_UDP_PATH_FALLBACK = 2,
} mesh_udp_path_state;

typedef struct mesh_udp_path_cfg {
  mesh_time_ms ping_ms;        /* between pings while probing or in doubt (500) */
  mesh_time_ms probe_ms;       /* PROBING gives up after this (3 s) */
  mesh_time_ms quiet_ms;       /* sending after this much silence starts a doubt (1 s) */
  mesh_time_ms doubt_ms;       /* in doubt this long: ping, route over TCP (1 s) */
  mesh_time_ms dead_ms;        /* in doubt this long: FALLBACK (4 s) */
  mesh_time_ms backoff_min_ms; /* first retry after a fallback (5 s) */
  mesh_time_ms backoff_max_ms; /* longest wait between retries (5 min) */
} mesh_udp_path_cfg;

void mesh_udp_path_cfg_default(mesh_udp_path_cfg *c);

typedef struct mesh_udp_path {
  mesh_udp_path_state state;
  mesh_time_ms since;       /* in this state since */
  mesh_time_ms last_rx;     /* last authenticated packet from the peer */
  mesh_time_ms doubt_since; /* UP: in doubt since (0: not in doubt) */
  mesh_time_ms last_ping;   /* last ping sent (0: none) */
  mesh_time_ms retry_at;    /* FALLBACK: when to probe again */
  mesh_time_ms backoff;     /* the next fallback's wait */
} mesh_udp_path;

/* What a step of the path asks of its caller. */
typedef struct mesh_udp_path_out {
  bool ping;                /* send a ping now */
  bool changed;             /* the state changed (log it, count it) */
  mesh_udp_path_state from; /* ... from this one */
} mesh_udp_path_out;

/* Starts probing a fresh link at now. */
void mesh_udp_path_start(mesh_udp_path *p, const mesh_udp_path_cfg *c, mesh_time_ms now,
                         mesh_udp_path_out *out);
/* An authenticated packet of type arrived (a ping's pong is the caller's). */
void mesh_udp_path_on_rx(mesh_udp_path *p, const mesh_udp_path_cfg *c, mesh_time_ms now,
                         mesh_udp_type type, mesh_udp_path_out *out);
/* A datagram went out over UDP. */
void mesh_udp_path_on_tx(mesh_udp_path *p, const mesh_udp_path_cfg *c, mesh_time_ms now);
/* Sending failed locally (an error other than a full buffer): FALLBACK at
 * once. */
void mesh_udp_path_fail(mesh_udp_path *p, const mesh_udp_path_cfg *c, mesh_time_ms now,
                        mesh_udp_path_out *out);
/* The timer: pings due, timeouts, retries. */
void mesh_udp_path_tick(mesh_udp_path *p, const mesh_udp_path_cfg *c, mesh_time_ms now,
                        mesh_udp_path_out *out);
/* Whether datagrams should take UDP now. */
bool mesh_udp_path_usable(const mesh_udp_path *p, const mesh_udp_path_cfg *c, mesh_time_ms now);
const char *mesh_udp_path_name(mesh_udp_path_state s);

#endif
