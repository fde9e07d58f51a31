#include "src/identity/identity.h"

#include "src/base/err.h"

#include <string.h>

/* The fixed 6-byte head of every Ed25519 peer ID (see identity.h). */
static const uint8_t peer_id_head[6] = {0x00, 0x24, 0x08, 0x01, 0x12, 0x20};

void mesh_peer_id_from_pubkey(const uint8_t pk[MESH_PUBKEY_LEN], mesh_peer_id *out)
{
  memcpy(out->b, peer_id_head, sizeof peer_id_head);
  memcpy(out->b + sizeof peer_id_head, pk, MESH_PUBKEY_LEN);
}

int mesh_peer_id_from_bytes(const uint8_t *buf, size_t len, mesh_peer_id *out)
{
  if (len != MESH_PEER_ID_LEN || memcmp(buf, peer_id_head, sizeof peer_id_head) != 0)
    return -EBADMSG;
  memcpy(out->b, buf, MESH_PEER_ID_LEN);
  return 0;
}

void mesh_peer_id_pubkey(const mesh_peer_id *id, uint8_t pk[MESH_PUBKEY_LEN])
{
  memcpy(pk, id->b + sizeof peer_id_head, MESH_PUBKEY_LEN);
}

int mesh_peer_id_cmp(const mesh_peer_id *a, const mesh_peer_id *b)
{
  return memcmp(a->b, b->b, MESH_PEER_ID_LEN);
}

int mesh_peer_id_eq(const mesh_peer_id *a, const mesh_peer_id *b)
{
  return memcmp(a->b, b->b, MESH_PEER_ID_LEN) == 0;
}
