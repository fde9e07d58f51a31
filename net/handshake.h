/*
 * The peer handshake: who is on the other end, proven, and the keys of the
 * connection.
 *
 * The dialer (D) and the listener (L) each send one Hello
 * (proto/handshake.proto) carrying their Ed25519 public key, their epoch, an
 * ephemeral X25519 key, an extension (another transport's attributes) and
 * their frame cipher offer (net/frame_cipher.h).
 * The body is signed with the identity key (mesh_sign, MESH_DOMAIN_HANDSHAKE)
 * and the signed body is MACed with the swarm key, so a peer without the key
 * is refused before any signature work. L's body also carries D's ephemeral
 * key, so L's Hello cannot be replayed to another dialer.
 *
 *   D -> L   Hello(D)
 *   L -> D   Hello(L, D's kx key)   then a finish frame
 *   D -> L   finish frame           (then data)
 *
 * Session keys: libsodium's crypto_kx (D is the client, L the server) gives
 * one key per direction; each is mixed with the swarm key and the transcript:
 *
 *   key(dir) = BLAKE2b-256(key = PSK,
 *                          "meshd-session-1" || dir || kx key(dir) || H)
 *   H        = BLAKE2b-256(Hello(D) bytes || Hello(L) bytes)
 *   dir      = "d2l" or "l2d"
 *
 * Both ends agree the connection's frame cipher from the two offers
 * (mesh_frame_agree) once they have read the other's Hello: the listener
 * before it answers, the dialer on the answer. The offers are signed and
 * hashed into H with the rest, so an attacker who rewrites one fails the
 * signature, and one who could get past it would still not share the keys.
 * No common cipher: -ENOPROTOOPT on both ends (the listener still answers,
 * so that the dialer can tell why).
 * An export secret, from which no frame key is made, is left for other
 * paths of the same link to derive their own keys from (net/udp_wire.h):
 *
 *   export   = BLAKE2b-256(key = PSK,
 *                          "meshd-export-1" || kx key(d2l) || kx key(l2d) || H)
 *
 * The finish frame (net/frame.h, type finish, counter 0) proves that its
 * sender holds the ephemeral secret its signed Hello named, so a replayed
 * Hello never becomes a connection.
 *
 *   wire form of a Hello
 *   OFFSET SIZE  FIELD
 *   0      2     length N of the Hello protobuf, big-endian, 1..MESH_HS_MSG_MAX
 *   2      N     Hello protobuf
 *
 * This module is sans-IO: the caller moves bytes. It does not allocate
 * beyond protobuf-c's decoding of one bounded message.
 */
#ifndef MESH_NET_HANDSHAKE_H
#define MESH_NET_HANDSHAKE_H

#include "net/frame.h"
#include "net/frame_cipher.h"
#include "src/identity/identity.h"
#include "src/identity/psk.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESH_HS_VERSION 1
/* Largest Hello accepted (keys, signature, MAC, extension and framing). */
#define MESH_HS_EXT_MAX 1024
#define MESH_HS_MSG_MAX 1536
#define MESH_HS_LEN_SIZE 2
#define MESH_HS_KX_LEN 32

typedef struct mesh_hs {
  bool listener;                 /* we accepted the connection */
  const mesh_identity *identity; /* borrowed */
  mesh_psk psk;
  uint64_t epoch;  /* our epoch */
  bool has_expect; /* the dialler named the peer ID it wants */
  mesh_peer_id expect;
  bool has_kx;                   /* kx_pk/kx_sk made (see mesh_hs_write_hello) */
  uint8_t kx_pk[MESH_HS_KX_LEN]; /* our ephemeral X25519 key pair */
  uint8_t kx_sk[MESH_HS_KX_LEN];
  uint8_t ext[MESH_HS_EXT_MAX]; /* our extension */
  size_t ext_len;
  mesh_frame_offer offer; /* our frame ciphers (mesh_frame_offer_default at init) */
  uint8_t hello_d[MESH_HS_MSG_MAX]; /* D's Hello protobuf, for the transcript */
  size_t hello_d_len;
  uint8_t peer_kx[MESH_HS_KX_LEN];
  bool done; /* keys derived */

  /* Results, valid once done. */
  mesh_peer_id peer; /* the peer's ID, from its key */
  uint64_t peer_epoch;
  uint8_t peer_ext[MESH_HS_EXT_MAX]; /* the peer's extension */
  size_t peer_ext_len;
  mesh_frame_offer peer_offer; /* the peer's frame ciphers */
  bool agreed;                 /* cipher is both ends' choice (else no common one) */
  mesh_frame_cipher cipher;    /* the connection's frame cipher, also in tx and rx */
  mesh_frame_dir tx; /* our sending key and counter */
  mesh_frame_dir rx; /* the peer's */
  uint8_t export_secret[32]; /* the same at both ends; for other paths' keys */
} mesh_hs;

/* Starts a handshake. expect (may be NULL) is the peer ID a dialer requires.
 * ext (may be NULL) is copied. -EMSGSIZE when ext is too long. */
int mesh_hs_init(mesh_hs *hs, bool listener, const mesh_identity *id, const mesh_psk *psk,
                 uint64_t epoch, const mesh_peer_id *expect, const uint8_t *ext, size_t ext_len);
/* Replaces our extension (copied; -EMSGSIZE when too long). A listener sets
 * it after mesh_hs_read_hello succeeded, so that what the extension costs
 * (an RDMA queue pair, a key pair) is spent only on a peer that holds the
 * swarm key. */
int mesh_hs_set_extension(mesh_hs *hs, const uint8_t *ext, size_t ext_len);
/* Sets the frame ciphers we offer (copied; an empty one keeps the
 * default), before our Hello is written. */
void mesh_hs_set_offer(mesh_hs *hs, const mesh_frame_offer *offer);
/* Wipes the secrets. */
void mesh_hs_clear(mesh_hs *hs);

/*
 * Writes our Hello, length prefix included, into out (cap bytes). A dialer
 * calls it first; a listener after mesh_hs_read_hello succeeded (its Hello
 * names the dialer's kx key) and then has its keys (hs->done). The ephemeral
 * key pair is made here, not at init: a listener makes none for a dialer
 * whose Hello failed the swarm-key MAC or the signature.
 */
int mesh_hs_write_hello(mesh_hs *hs, uint8_t *out, size_t cap, size_t *len);

/*
 * Reads the peer's Hello protobuf (without the 2-byte prefix). Checks, in
 * order: size and decoding (-EBADMSG; -EMSGSIZE too big), the swarm-key MAC
 * (-EACCES), the body's fields (-EBADMSG; -EPROTONOSUPPORT for another
 * version), the signature (-MESH_EAUTH), the expected peer ID (-EPERM),
 * that the peer is not ourselves (-ELOOP), and that the two offers have a
 * frame cipher in common (-ENOPROTOOPT; the peer's offer is then in
 * hs->peer_offer, and a listener may still write its Hello so that the
 * dialer learns it too). A dialer has its keys (hs->done) after this.
 */
int mesh_hs_read_hello(mesh_hs *hs, const uint8_t *msg, size_t len);

/* Ephemeral key pairs made by this process so far (tests, benchmarks). */
uint64_t mesh_hs_kx_made(void);

/* Length of a prefixed Hello at buf: 0 with *msg_len 0 when fewer than 2
 * bytes are there; -EMSGSIZE over MESH_HS_MSG_MAX; -EBADMSG for 0. */
int mesh_hs_peek(const uint8_t *buf, size_t avail, size_t *msg_len);

#endif
