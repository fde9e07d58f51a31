/*
 * The frame decoder: the length check, authentication and decryption, and
 * the reassembly of chunks into messages.
 *
 * Input: the first byte picks a mode and a cipher (bit 1: AES-256-GCM,
 * else XChaCha20-Poly1305; both ciphers share the decoder but not the
 * code that checks the tag).
 *   even: the rest is a wire stream; frames are peeked and opened under a
 *         fixed key until one is refused (random bytes almost never pass
 *         the tag, which is what is being checked: no crash on the way).
 *   odd:  the rest is a list of plaintext frames, each a 8-byte header as
 *         in net/frame.h followed by a 2-byte payload length and the
 *         payload; each is sealed, opened again (must round-trip), and fed
 *         to the reassembler, whose output is bounded by its max.
 */
#include "net/frame.h"
#include "src/base/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_MSG 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  mesh_frame_dir tx = {.counter = 0}, rx;
  memset(tx.key, 0x42, sizeof tx.key);
  uint8_t mode = data[0];
  tx.cipher = (mode & 2) ? MESH_FRAME_AES_256_GCM : MESH_FRAME_CHACHA20_POLY1305;
  rx = tx;
  data++;
  size--;
  if ((mode & 1) == 0) {
    uint8_t *buf = malloc(size > 0 ? size : 1);
    if (buf == NULL)
      return 0;
    memcpy(buf, data, size);
    size_t off = 0;
    while (off < size) {
      size_t flen;
      if (mesh_frame_peek(buf + off, size - off, FUZZ_MAX_MSG + MESH_FRAME_MIN_BODY, &flen) != 0 ||
          flen == 0 || flen > size - off)
        break;
      mesh_frame f;
      if (mesh_frame_open(&rx, buf + off, flen, &f) != 0)
        break;
      off += flen;
    }
    free(buf);
    return 0;
  }
  mesh_frame_reasm r;
  mesh_frame_reasm_init(&r, FUZZ_MAX_MSG);
  static uint8_t wire[MESH_FRAME_OVERHEAD + 65536];
  while (size >= 10) {
    mesh_frame f = {.type = data[0], .channel = data[1], .cls = data[2], .flags = data[3]};
    f.total =
        ((uint32_t)data[4] << 24) | ((uint32_t)data[5] << 16) | ((uint32_t)data[6] << 8) | data[7];
    size_t n = ((size_t)data[8] << 8) | data[9];
    data += 10;
    size -= 10;
    if (n > size)
      n = size;
    f.payload = data;
    f.len = n;
    data += n;
    size -= n;
    size_t wlen;
    if (mesh_frame_seal(&tx, &f, wire, sizeof wire, &wlen) != 0)
      abort();
    mesh_frame g;
    int rc = mesh_frame_open(&rx, wire, wlen, &g);
    if (rc == -MESH_EAUTH || rc == -ESTALE || rc == -EPROTO)
      abort(); /* an honest frame must authenticate */
    if (rc != 0)
      continue;
    if (g.len != n || memcmp(g.payload, f.payload, n) != 0)
      abort();
    mesh_frame_msg m;
    rc = mesh_frame_reasm_add(&r, &g, &m);
    if (rc == 1 && m.len > FUZZ_MAX_MSG)
      abort();
    if (rc < 0)
      mesh_frame_reasm_free(&r);
  }
  mesh_frame_reasm_free(&r);
  return 0;
}
