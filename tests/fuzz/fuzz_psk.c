/*
 * Fuzzes the swarm-key parser. A key that parses must format to a file that
 * parses to the same key, and a refusal must come with a message.
 */
#include "src/base/err.h"
#include "src/identity/psk.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  mesh_psk psk, again;
  char err[256] = "";
  int rc = mesh_psk_parse(data, size, &psk, err, sizeof err);
  if (rc != 0) {
    if (rc != -EBADMSG || err[0] == '\0')
      abort();
    return 0;
  }
  char text[128];
  if (mesh_psk_format(&psk, text, sizeof text) != 0)
    abort();
  if (mesh_psk_parse((const uint8_t *)text, strlen(text), &again, err, sizeof err) != 0 ||
      memcmp(psk.key, again.key, MESH_PSK_LEN) != 0)
    abort();
  return 0;
}
