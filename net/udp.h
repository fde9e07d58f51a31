/*
 * The UDP transport: datagrams (probes, acks, gossip) in UDP packets sealed
 * with keys of the TCP link, for peers without a working RDMA path.
 *
 * It never dials and has no handshake of its own: it rides beside TCP. It
 * binds a UDP socket to each address TCP listens at (same address, same
 * port), and when TCP raises a peer's up event it derives that link's UDP
 * keys and receiver indices from the handshake's export secret
 * (net/udp_wire.h). The dialer knows the listener's UDP address (the one it
 * dialled) and pings it; the listener learns the dialer's from the first
 * authenticated packet (the dialer sends from its own listening socket),
 * pongs, and pings back; every authenticated packet moves a peer's address
 * to where it came from, as WireGuard roams.
 *
 * A peer's datagrams take UDP only while its path is UP (the path state
 * machine, net/udp_wire.h): a peer that cannot be reached over UDP (a
 * firewall) stays on TCP or falls back to it by itself, with one log line
 * and a counter, and UDP is tried again later with backoff. A datagram
 * larger than payload_max, or one that cannot be sent (an error other than
 * a full socket buffer), takes TCP as well. Streams always take TCP.
 *
 * A packet that names no link, fails its tag, is a replay or is malformed
 * is dropped and counted (the transport's counters, mesh_udp_stats), with a
 * rate-limited log line at most.
 *
 * Everything runs on the loop thread; nothing blocks.
 */
#ifndef MESH_NET_UDP_H
#define MESH_NET_UDP_H

#include "net/transport.h"
#include "net/udp_wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Default largest datagram payload sent over UDP: SWIM's datagrams
 * (max_datagram 1400) fit, and with the 32 bytes of header and tag and
 * the IPv6 and UDP headers a packet stays within a 1500-byte MTU. */
#define MESH_UDP_PAYLOAD_DEFAULT 1400
#define MESH_UDP_PAYLOAD_MIN 256

typedef struct mesh_udp_options {
  size_t payload_max;     /* largest payload sent over UDP; bigger ones take TCP */
  mesh_udp_path_cfg path; /* probing, doubt and fallback timings */
} mesh_udp_options;

void mesh_udp_options_default(mesh_udp_options *o);

/* The transport's own figures (the rest are its mesh_transport_counters). */
typedef struct mesh_udp_stats {
  uint64_t pings_sent;     /* path probes */
  uint64_t pongs_sent;     /* answers to the peers' */
  uint64_t fallbacks;      /* peers moved to TCP datagrams */
  uint64_t retries;        /* UDP tried again after a fallback */
  uint64_t too_big;        /* datagrams over payload_max or the path MTU, sent over TCP */
  uint64_t send_errors;    /* sends that failed (the datagram took TCP) */
  uint64_t unknown_index;  /* packets naming no link */
  uint64_t auth_failures;  /* packets whose tag did not verify */
  uint64_t replays;        /* packets refused by the replay window */
  uint64_t malformed;      /* packets too short or with bad header fields */
  uint64_t index_clashes;  /* links left on TCP: their receiver index was taken */
  uint64_t bind_failures;  /* addresses where no UDP socket could be bound */
  uint64_t peers_up;       /* gauge: peers whose datagrams take UDP */
  uint64_t peers_probing;  /* gauge: peers being probed */
  uint64_t peers_fallback; /* gauge: peers on TCP datagrams after a fallback */
  uint64_t sockets;        /* gauge: UDP sockets bound */
} mesh_udp_stats;

/* The ops table (scheme "udp"). Registered by mesh_udp_attach. */
extern const mesh_transport_ops mesh_udp_transport;

/* Registers the UDP transport on net with o (copied). It must be
 * registered after TCP and before RDMA, so RDMA is tried first for
 * datagrams, then UDP, then TCP. Listen with mesh_net_listen afterwards. */
int mesh_udp_attach(mesh_net *net, const mesh_udp_options *o);
/* The figures; -ENOENT when UDP is not registered on net. */
int mesh_udp_stats_of(const mesh_net *net, mesh_udp_stats *out);
/* The path state toward peer; -ENOENT when the peer has no UDP link. */
int mesh_udp_path_of(const mesh_net *net, const mesh_peer_id *peer, mesh_udp_path_state *out);

#endif
