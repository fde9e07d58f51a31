/* Signing and verifying payloads under a domain-separation string. */
#include "src/identity/signed.h"

#include "src/base/err.h"
#include "src/identity/multiformats.h"

#include "proto/envelope.pb-c.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/*
 * Builds the signed bytes exactly as libp2p's signed envelope does:
 * uvarint(len) || domain || uvarint(len) || type || uvarint(len) || payload.
 * Returns a malloc'd buffer (caller frees) or NULL when out of memory.
 */
static uint8_t *signed_bytes(const char *domain, const uint8_t *type, size_t type_len,
                             const uint8_t *payload, size_t payload_len, size_t *out_len)
{
  size_t dlen = strlen(domain);
  /* Lengths this large cannot be signed; refusing them keeps the sum below
   * from wrapping. */
  if (dlen > SIZE_MAX / 4 || type_len > SIZE_MAX / 4 || payload_len > SIZE_MAX / 4)
    return NULL;
  size_t cap = 3 * MESH_UVARINT_MAX + dlen + type_len + payload_len;
  uint8_t *buf = malloc(cap);
  if (buf == NULL)
    return NULL;
  size_t n = 0;
  n += mesh_uvarint_put(buf + n, dlen);
  memcpy(buf + n, domain, dlen);
  n += dlen;
  n += mesh_uvarint_put(buf + n, type_len);
  if (type_len > 0)
    memcpy(buf + n, type, type_len);
  n += type_len;
  n += mesh_uvarint_put(buf + n, payload_len);
  if (payload_len > 0)
    memcpy(buf + n, payload, payload_len);
  n += payload_len;
  *out_len = n;
  return buf;
}

int mesh_sign(const mesh_identity *id, const char *domain, const uint8_t *type, size_t type_len,
              const uint8_t *payload, size_t payload_len, uint8_t sig[MESH_SIG_LEN])
{
  size_t n;
  uint8_t *m = signed_bytes(domain, type, type_len, payload, payload_len, &n);
  if (m == NULL)
    return -ENOMEM;
  int rc = crypto_sign_detached(sig, NULL, m, n, id->sk) == 0 ? 0 : -EINVAL;
  free(m);
  return rc;
}

int mesh_verify(const uint8_t pk[MESH_PUBKEY_LEN], const char *domain, const uint8_t *type,
                size_t type_len, const uint8_t *payload, size_t payload_len,
                const uint8_t sig[MESH_SIG_LEN])
{
  size_t n;
  uint8_t *m = signed_bytes(domain, type, type_len, payload, payload_len, &n);
  if (m == NULL)
    return -ENOMEM;
  int rc = crypto_sign_verify_detached(sig, m, n, pk) == 0 ? 0 : -MESH_EAUTH;
  free(m);
  return rc;
}

/* The largest envelope mesh_envelope_open decodes: every field at its bound
 * plus the protobuf framing (tags and length prefixes). */
#define ENVELOPE_MAX_WIRE                                                                          \
  (MESH_ENVELOPE_MAX_PAYLOAD + MESH_ENVELOPE_MAX_TYPE + MESH_PUBKEY_LEN + MESH_SIG_LEN + 64)

int mesh_envelope_seal(const mesh_identity *id, const char *domain, const uint8_t *type,
                       size_t type_len, const uint8_t *payload, size_t payload_len, uint8_t **out,
                       size_t *out_len)
{
  if (type_len > MESH_ENVELOPE_MAX_TYPE || payload_len > MESH_ENVELOPE_MAX_PAYLOAD)
    return -EMSGSIZE;
  uint8_t sig[MESH_SIG_LEN];
  int rc = mesh_sign(id, domain, type, type_len, payload, payload_len, sig);
  if (rc != 0)
    return rc;

  /* protobuf-c takes non-const pointers but only reads them when packing. */
  Mesh__Crypto__PublicKey pk = MESH__CRYPTO__PUBLIC_KEY__INIT;
  pk.type = MESH__CRYPTO__KEY_TYPE__Ed25519;
  pk.data.len = MESH_PUBKEY_LEN;
  pk.data.data = (uint8_t *)id->pk;
  Mesh__Envelope__Envelope env = MESH__ENVELOPE__ENVELOPE__INIT;
  env.public_key = &pk;
  env.payload_type.len = type_len;
  env.payload_type.data = (uint8_t *)type;
  env.payload.len = payload_len;
  env.payload.data = (uint8_t *)payload;
  env.signature.len = MESH_SIG_LEN;
  env.signature.data = sig;

  size_t need = mesh__envelope__envelope__get_packed_size(&env);
  uint8_t *buf = malloc(need > 0 ? need : 1);
  if (buf == NULL)
    return -ENOMEM;
  *out_len = mesh__envelope__envelope__pack(&env, buf);
  *out = buf;
  return 0;
}

/*
 * protobuf-c hands out copies of bytes fields, but mesh_envelope points into
 * the caller's buffer. A bytes field is a contiguous run of buf, so the copy's
 * bytes occur in buf: any occurrence has the same content, and memmem finds
 * one in linear time.
 */
static const uint8_t *locate(const uint8_t *buf, size_t len, const ProtobufCBinaryData *field)
{
  if (field->len == 0)
    return buf;
  return memmem(buf, len, field->data, field->len);
}

int mesh_envelope_open(const char *domain, const uint8_t *buf, size_t len, mesh_envelope *out)
{
  /* Bound the whole input before the decoder allocates anything for it. */
  if (len > ENVELOPE_MAX_WIRE)
    return -EBADMSG;
  Mesh__Envelope__Envelope *env = mesh__envelope__envelope__unpack(NULL, len, buf);
  if (env == NULL)
    return -EBADMSG;

  int rc = -EBADMSG;
  const Mesh__Crypto__PublicKey *pk = env->public_key;
  if (pk == NULL || (int)pk->type != MESH__CRYPTO__KEY_TYPE__Ed25519 ||
      pk->data.len != MESH_PUBKEY_LEN)
    goto done;
  if (env->payload_type.len > MESH_ENVELOPE_MAX_TYPE ||
      env->payload.len > MESH_ENVELOPE_MAX_PAYLOAD || env->signature.len != MESH_SIG_LEN)
    goto done;
  rc = mesh_verify(pk->data.data, domain, env->payload_type.data, env->payload_type.len,
                   env->payload.data, env->payload.len, env->signature.data);
  if (rc != 0)
    goto done;

  const uint8_t *type = locate(buf, len, &env->payload_type);
  const uint8_t *payload = locate(buf, len, &env->payload);
  if (type == NULL || payload == NULL) {
    rc = -EBADMSG;
    goto done;
  }
  mesh_peer_id_from_pubkey(pk->data.data, &out->signer);
  out->type = type;
  out->type_len = env->payload_type.len;
  out->payload = payload;
  out->payload_len = env->payload.len;

done:
  mesh__envelope__envelope__free_unpacked(env, NULL);
  return rc;
}
