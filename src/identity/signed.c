#include "src/identity/signed.h"

#include "src/base/err.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Appends x as an unsigned LEB128 varint; returns the bytes written (<= 10). */
static size_t put_uvarint(uint8_t *p, uint64_t x)
{
  size_t n = 0;
  while (x >= 0x80) {
    p[n++] = (uint8_t)(x | 0x80);
    x >>= 7;
  }
  p[n++] = (uint8_t)x;
  return n;
}

/*
 * Builds the signed bytes exactly as libp2p's signed envelope does:
 * uvarint(len) || domain || uvarint(len) || type || uvarint(len) || payload.
 * Returns a malloc'd buffer (caller frees) or NULL when out of memory.
 */
static uint8_t *signed_bytes(const char *domain, const uint8_t *type, size_t type_len,
                             const uint8_t *payload, size_t payload_len, size_t *out_len)
{
  size_t dlen = strlen(domain);
  size_t cap = 30 + dlen + type_len + payload_len;
  uint8_t *buf = malloc(cap);
  if (buf == NULL)
    return NULL;
  size_t n = 0;
  n += put_uvarint(buf + n, dlen);
  memcpy(buf + n, domain, dlen);
  n += dlen;
  n += put_uvarint(buf + n, type_len);
  if (type_len > 0)
    memcpy(buf + n, type, type_len);
  n += type_len;
  n += put_uvarint(buf + n, payload_len);
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
  int rc = crypto_sign_verify_detached(sig, m, n, pk) == 0 ? 0 : -EKEYREJECTED;
  free(m);
  return rc;
}
