/*
 * Signed records: one helper that signs and verifies a payload under a
 * domain-separation string, as libp2p signed envelopes do. The signed bytes
 * are
 *
 *   uvarint(len(domain)) || domain || uvarint(len(type)) || type ||
 *   uvarint(len(payload)) || payload
 *
 * so a signature made for one domain or payload type never verifies for
 * another. Every part of meshd that signs (handshakes, member records,
 * accusations, download documents, commands) goes through here, each with its
 * own domain string (MESH_DOMAIN_*).
 *
 * The envelope form (proto/envelope.proto) carries the signer's public key,
 * the payload type, the payload and the signature. Decoding bounds every
 * field before use.
 */
#ifndef MESH_IDENTITY_SIGNED_H
#define MESH_IDENTITY_SIGNED_H

#include "src/identity/identity.h"

#include <stddef.h>
#include <stdint.h>

#define MESH_DOMAIN_HANDSHAKE "meshd-handshake"
#define MESH_DOMAIN_MEMBER "meshd-member"
#define MESH_DOMAIN_ACCUSE "meshd-accuse"
#define MESH_DOMAIN_DOWNLOADS "meshd-downloads"
#define MESH_DOMAIN_COMMAND "meshd-command"

/* Bounds for envelope fields; anything larger is refused. */
#define MESH_ENVELOPE_MAX_TYPE 64
#define MESH_ENVELOPE_MAX_PAYLOAD (1u << 20)

/* Signs; sig receives MESH_SIG_LEN bytes. */
int mesh_sign(const mesh_identity *id, const char *domain, const uint8_t *type, size_t type_len,
              const uint8_t *payload, size_t payload_len, uint8_t sig[MESH_SIG_LEN]);
/* 0 when sig is pk's signature over these bytes, -MESH_EAUTH otherwise. */
int mesh_verify(const uint8_t pk[MESH_PUBKEY_LEN], const char *domain, const uint8_t *type,
                size_t type_len, const uint8_t *payload, size_t payload_len,
                const uint8_t sig[MESH_SIG_LEN]);

/* A decoded envelope. payload and type point into the buffer given to
 * mesh_envelope_open, which must outlive this struct. */
typedef struct mesh_envelope {
  mesh_peer_id signer;    /* derived from the envelope's public key */
  const uint8_t *type;    /* payload type bytes */
  size_t type_len;        /* <= MESH_ENVELOPE_MAX_TYPE */
  const uint8_t *payload; /* the signed payload */
  size_t payload_len;     /* <= MESH_ENVELOPE_MAX_PAYLOAD */
} mesh_envelope;

/* Encodes and signs an envelope into a newly allocated buffer (*out, caller
 * frees with free()). -EMSGSIZE when type or payload exceed their bounds. */
int mesh_envelope_seal(const mesh_identity *id, const char *domain, const uint8_t *type,
                       size_t type_len, const uint8_t *payload, size_t payload_len, uint8_t **out,
                       size_t *out_len);
/* Decodes buf and verifies its signature under domain. -EBADMSG when the
 * bytes are malformed or a field is out of bounds, -MESH_EAUTH when the
 * signature does not verify. */
int mesh_envelope_open(const char *domain, const uint8_t *buf, size_t len, mesh_envelope *out);

#endif
