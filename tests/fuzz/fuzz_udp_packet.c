/*
 * The UDP packet decoder (net/udp_wire.h): header, tag and replay window on
 * whatever arrives; no crash, and what it accepts is within its bounds. The
 * key is fixed, so an input sealed with it (the corpus has some) reaches the
 * payload and the window.
 */
#include "net/udp_wire.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const uint8_t key[MESH_UDP_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
  static mesh_udp_replay w;
  static uint8_t out[MESH_UDP_PAYLOAD_LIMIT];
  mesh_udp_header h;
  if (mesh_udp_peek(data, size, &h) != 0)
    return 0;
  if (size < MESH_UDP_OVERHEAD || h.type < MESH_UDP_DATA || h.type > MESH_UDP_PONG ||
      (h.type == MESH_UDP_DATA) != (h.channel != 0))
    abort(); /* the header's bounds are the decoder's promise */
  bool fresh = mesh_udp_replay_check(&w, h.counter);
  size_t n = 0;
  if (size - MESH_UDP_OVERHEAD > sizeof out)
    return 0;
  if (mesh_udp_open(key, data, size, out, sizeof out, &n) != 0)
    return 0;
  if (n != size - MESH_UDP_OVERHEAD)
    abort();
  if (fresh != mesh_udp_replay_accept(&w, h.counter))
    abort();
  if (mesh_udp_replay_check(&w, h.counter))
    abort(); /* accepted once, never again */
  return 0;
}
