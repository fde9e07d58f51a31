/*
 * Fuzzes the API token file decoder. A token that decodes is printable
 * ASCII without spaces, of a bounded length, and decodes to itself again.
 */
#include "src/identity/apitoken.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char tok[MESH_APITOKEN_MAX + 1], again[MESH_APITOKEN_MAX + 1], err[256];
  if (mesh_apitoken_parse("fuzz", data, size, tok, sizeof tok, err, sizeof err) != 0) {
    if (err[0] == '\0')
      abort(); /* a refusal always says why */
    return 0;
  }
  size_t n = strlen(tok);
  if (n < MESH_APITOKEN_MIN || n > MESH_APITOKEN_MAX)
    abort();
  for (size_t i = 0; i < n; i++)
    if (tok[i] <= 0x20 || tok[i] >= 0x7f)
      abort();
  if (mesh_apitoken_parse("fuzz", (const uint8_t *)tok, n, again, sizeof again, err, sizeof err) !=
          0 ||
      strcmp(tok, again) != 0)
    abort();
  return 0;
}
