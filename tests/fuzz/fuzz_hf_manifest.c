/*
 * Fuzz target for the verified-files manifest reader (coord/hf_manifest.h):
 * any text is looked up without reading past it, and a path found is one
 * that ends a line of the text.
 */
#include "coord/hf_manifest.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const char *paths[] = {"config.json", "a b", "x"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    uint64_t got = 0;
    if (mesh_hf_manifest_find((const char *)data, size, paths[i], &got) != 0)
      continue;
    size_t n = strlen(paths[i]);
    const char *hit = NULL;
    for (size_t k = 0; k + n + 1 <= size && hit == NULL; k++)
      if (data[k] == ' ' && memcmp(data + k + 1, paths[i], n) == 0 &&
          (k + 1 + n == size || data[k + 1 + n] == '\n'))
        hit = (const char *)data + k;
    if (hit == NULL)
      abort();
  }
  return 0;
}
