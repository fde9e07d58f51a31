/*
 * Fuzzes the key-file decoder (a libp2p PrivateKey protobuf). A key that
 * decodes must encode to a file that decodes to the same identity, and its
 * peer ID must be the one its public key derives.
 */
#include "src/identity/identity.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  mesh_identity id, again;
  if (mesh_identity_decode(data, size, &id) != 0)
    return 0;
  uint8_t enc[128];
  size_t n;
  if (mesh_identity_encode(&id, enc, sizeof enc, &n) != 0)
    abort();
  if (mesh_identity_decode(enc, n, &again) != 0 || memcmp(&id, &again, sizeof id) != 0)
    abort();
  mesh_peer_id expect;
  mesh_peer_id_from_pubkey(id.pk, &expect);
  if (!mesh_peer_id_eq(&expect, &id.id))
    abort();
  return 0;
}
