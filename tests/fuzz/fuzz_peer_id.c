/*
 * Fuzzes peer-ID text parsing (base58btc and CIDv1) and the multiformats
 * decoders under it. Whatever parses must print back to a text that parses
 * to the same ID, and base58 / base32 text that decodes must encode back to
 * itself (both are canonical), so a decoder that accepts two spellings of one
 * value is caught.
 */
#include "src/identity/identity.h"
#include "src/identity/multiformats.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_canonical(const char *text, size_t len)
{
  uint8_t bytes[256];
  size_t n;
  char back[512];
  if (mesh_base58_decode(text, len, bytes, sizeof bytes, &n) == 0) {
    if (mesh_base58_encode(bytes, n, back, sizeof back) != 0 || strlen(back) != len ||
        memcmp(back, text, len) != 0)
      abort();
  }
  if (mesh_base32_decode(text, len, bytes, sizeof bytes, &n) == 0) {
    if (mesh_base32_encode(bytes, n, back, sizeof back) != 0 || strlen(back) != len ||
        memcmp(back, text, len) != 0)
      abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char text[256];
  if (size >= sizeof text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  check_canonical(text, size);

  mesh_peer_id id, again;
  char err[128];
  if (mesh_peer_id_parse_err(text, &id, err, sizeof err) == 0) {
    char out[MESH_PEER_ID_TEXT_MAX];
    mesh_peer_id_to_text(&id, out, sizeof out);
    if (mesh_peer_id_parse(out, &again) != 0 || !mesh_peer_id_eq(&id, &again))
      abort();
    mesh_peer_id_to_cid(&id, out, sizeof out);
    if (mesh_peer_id_parse(out, &again) != 0 || !mesh_peer_id_eq(&id, &again))
      abort();
  }
  if (mesh_peer_id_from_bytes(data, size, &id) == 0 && memcmp(id.b, data, size) != 0)
    abort();
  return 0;
}
