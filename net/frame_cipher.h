/*
 * Which frame cipher a connection uses: the names, a node's offer, and how two offers agree.
 *
 * Each side of a handshake sends an offer: the frame ciphers it accepts,
 * most preferred first, one byte each (MESH_FRAME_OFFER_*), inside the
 * signed Hello body (net/handshake.h). A Hello without one comes from a
 * node older than the choice, which speaks XChaCha20-Poly1305 only.
 *
 * Agreement (mesh_frame_agree), the same on both ends whoever dialled:
 *   - the common ciphers are those in both offers; none: no connection;
 *   - AES-256-GCM when it is the only common one, or when both offers put
 *     it first (both ends have it fast);
 *   - else XChaCha20-Poly1305.
 * So a node whose CPU lacks AES instructions, which puts ChaCha first,
 * never gets AES-GCM unless it offers nothing else. An attacker on the
 * path cannot move the result: the offers are in the signed, swarm-key
 * MACed bodies, and both bodies are hashed into the session keys.
 *
 * Pure: no clock, no IO; net/frame_speed.c measures the ciphers.
 */
#ifndef MESH_NET_FRAME_CIPHER_H
#define MESH_NET_FRAME_CIPHER_H

#include "net/frame.h"

#include <stddef.h>
#include <stdint.h>

/* Wire codes of the ciphers in an offer; 0 and others are never sent and
 * are skipped when read (a later cipher an older node does not know). */
#define MESH_FRAME_OFFER_CHACHA20_POLY1305 1
#define MESH_FRAME_OFFER_AES_256_GCM 2
/* Longest offer accepted on the wire, in codes. */
#define MESH_FRAME_OFFER_WIRE_MAX 16

/* What the operator asked for (--frame-cipher). */
typedef enum mesh_frame_cipher_pref {
  MESH_FRAME_PREF_AUTO = 0, /* the faster on this machine first, the other accepted */
  MESH_FRAME_PREF_CHACHA20_POLY1305,
  MESH_FRAME_PREF_AES_256_GCM,
} mesh_frame_cipher_pref;

/* A node's offer: known ciphers, most preferred first, no repeats. */
typedef struct mesh_frame_offer {
  uint8_t n;
  uint8_t ciphers[MESH_FRAME_CIPHER_COUNT]; /* mesh_frame_cipher values */
} mesh_frame_offer;

/* "chacha20-poly1305", "aes-256-gcm"; "unknown" otherwise. */
const char *mesh_frame_cipher_name(mesh_frame_cipher c);
/* Parses "auto", "aes-256-gcm" or "chacha20-poly1305". -EINVAL otherwise. */
int mesh_frame_cipher_pref_parse(const char *text, mesh_frame_cipher_pref *out);
const char *mesh_frame_cipher_pref_name(mesh_frame_cipher_pref p);

/* The offer of an older node, and of a handshake nobody configured:
 * XChaCha20-Poly1305 first, AES-256-GCM accepted. */
void mesh_frame_offer_default(mesh_frame_offer *o);
/* The offer for pref: a forced cipher alone; auto, the one first that
 * aes_faster says (measured, see net/frame_speed.h), the other after it. */
void mesh_frame_offer_make(mesh_frame_offer *o, mesh_frame_cipher_pref pref, bool aes_faster);
/* Writes the offer's codes into buf (cap bytes); -ENOSPC when too small. */
int mesh_frame_offer_encode(const mesh_frame_offer *o, uint8_t *buf, size_t cap, size_t *len);
/*
 * Reads a peer's offer. len 0 (an older node) reads as XChaCha20-Poly1305
 * alone. Unknown codes are skipped, repeats read once. -EMSGSIZE over
 * MESH_FRAME_OFFER_WIRE_MAX codes; -EBADMSG when codes were sent but none
 * is known (nothing could ever agree).
 */
int mesh_frame_offer_decode(const uint8_t *buf, size_t len, mesh_frame_offer *o);
/* Writes "a,b" (the names, in order) into buf; always terminated. */
void mesh_frame_offer_text(const mesh_frame_offer *o, char *buf, size_t len);

/* The agreed cipher of two offers (rules above; symmetric in its
 * arguments; an empty offer counts as an older node's). -ENOPROTOOPT when
 * they have no cipher in common. */
int mesh_frame_agree(const mesh_frame_offer *a, const mesh_frame_offer *b, mesh_frame_cipher *out);

#endif
