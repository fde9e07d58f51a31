/* Ed25519 identities and their libp2p peer IDs: making, loading, printing, parsing. */
#include "src/identity/identity.h"

#include "src/base/err.h"
#include "src/identity/multiformats.h"

#include <stdio.h>
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

void mesh_peer_id_to_text(const mesh_peer_id *id, char *buf, size_t len)
{
  if (mesh_base58_encode(id->b, MESH_PEER_ID_LEN, buf, len) != 0 && len > 0)
    buf[0] = '\0';
}

void mesh_peer_id_to_cid(const mesh_peer_id *id, char *buf, size_t len)
{
  if (mesh_cid_format(MESH_MULTICODEC_LIBP2P_KEY, id->b, MESH_PEER_ID_LEN, buf, len) != 0 &&
      len > 0)
    buf[0] = '\0';
}

void mesh_peer_id_short(const mesh_peer_id *id, char *buf, size_t len)
{
  char text[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(id, text, sizeof text);
  size_t n = strlen(text);
  const char *tail =
      n > MESH_PEER_ID_SHORT_MAX - 1 ? text + n - (MESH_PEER_ID_SHORT_MAX - 1) : text;
  snprintf(buf, len, "%s", tail);
}

/* Writes a reason into err (may be NULL) and returns -EBADMSG. */
static int parse_fail(char *err, size_t errlen, const char *why)
{
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "%s", why);
  return -EBADMSG;
}

/* Explains why a well-formed multihash is still not an Ed25519 peer ID. */
static int explain_multihash(const uint8_t *mh, size_t n, char *err, size_t errlen)
{
  uint64_t code;
  size_t dl;
  if (mesh_multihash_check(mh, n, &code, &dl) != 0)
    return parse_fail(err, errlen, "not a multihash");
  if (code == MESH_MULTIHASH_SHA2_256)
    return parse_fail(err, errlen,
                      "a sha2-256 peer ID (an RSA or other large key); only Ed25519 peer IDs "
                      "are accepted");
  if (code != MESH_MULTIHASH_IDENTITY)
    return parse_fail(err, errlen, "not an identity multihash");
  return parse_fail(err, errlen, "not an Ed25519 public key");
}

int mesh_peer_id_parse_err(const char *text, mesh_peer_id *out, char *err, size_t errlen)
{
  if (text == NULL)
    return parse_fail(err, errlen, "empty peer ID");
  size_t len = strnlen(text, MESH_PEER_ID_TEXT_MAX);
  if (len == 0)
    return parse_fail(err, errlen, "empty peer ID");
  if (len >= MESH_PEER_ID_TEXT_MAX)
    return parse_fail(err, errlen, "peer ID text too long");

  uint8_t mh[MESH_PEER_ID_TEXT_MAX];
  size_t n = 0;
  if (text[0] == '1' || (text[0] == 'Q' && text[1] == 'm')) {
    /* A bare base58btc multihash (the legacy form, libp2p's default). */
    if (mesh_base58_decode(text, len, mh, sizeof mh, &n) != 0)
      return parse_fail(err, errlen, "bad base58btc text");
  } else if (text[0] == 'b') {
    uint64_t codec;
    if (mesh_cid_parse(text, len, &codec, mh, sizeof mh, &n) != 0)
      return parse_fail(err, errlen, "bad CIDv1 text");
    if (codec != MESH_MULTICODEC_LIBP2P_KEY)
      return parse_fail(err, errlen, "CID codec is not libp2p-key");
  } else {
    return parse_fail(err, errlen,
                      "not a peer ID: expected base58btc (\"12D3KooW...\") or CIDv1 (\"b...\")");
  }
  if (mesh_peer_id_from_bytes(mh, n, out) != 0)
    return explain_multihash(mh, n, err, errlen);
  return 0;
}

int mesh_peer_id_parse(const char *text, mesh_peer_id *out)
{
  return mesh_peer_id_parse_err(text, out, NULL, 0);
}
