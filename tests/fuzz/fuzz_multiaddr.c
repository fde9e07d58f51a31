/* Address parsing: anything parsed formats to text that parses to the same
 * address. */
#include "net/multiaddr.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char text[MESH_MULTIADDR_TEXT_MAX + 64];
  if (size >= sizeof text)
    size = sizeof text - 1;
  memcpy(text, data, size);
  text[size] = '\0';
  mesh_multiaddr a, b;
  if (mesh_multiaddr_parse(text, &a, NULL) != 0)
    return 0;
  char out[MESH_MULTIADDR_TEXT_MAX + MESH_PEER_ID_TEXT_MAX];
  if (mesh_multiaddr_format(&a, out, sizeof out) != 0)
    abort();
  if (mesh_multiaddr_parse(out, &b, NULL) != 0)
    abort();
  if (a.kind != b.kind || a.port != b.port || strcmp(a.host, b.host) != 0 ||
      a.has_peer != b.has_peer || (a.has_peer && !mesh_peer_id_eq(&a.peer, &b.peer)))
    abort();
  return 0;
}
