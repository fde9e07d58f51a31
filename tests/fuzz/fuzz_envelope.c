/*
 * Fuzzes envelope decoding and verification. Only -EBADMSG and -MESH_EAUTH
 * are acceptable refusals; an envelope that opens must keep its fields within
 * their bounds and point into the input. The seed corpus holds envelopes
 * sealed under MESH_DOMAIN_MEMBER and near misses of them.
 */
#include "src/base/err.h"
#include "src/identity/signed.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  mesh_envelope env;
  int rc = mesh_envelope_open(MESH_DOMAIN_MEMBER, data, size, &env);
  if (rc == -EBADMSG || rc == -MESH_EAUTH)
    return 0;
  if (rc != 0)
    abort();
  if (env.type_len > MESH_ENVELOPE_MAX_TYPE || env.payload_len > MESH_ENVELOPE_MAX_PAYLOAD)
    abort();
  if (env.type < data || env.type + env.type_len > data + size)
    abort();
  if (env.payload < data || env.payload + env.payload_len > data + size)
    abort();
  return 0;
}
