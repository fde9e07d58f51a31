/*
 * Fuzz target for the ranges sidecar decoder (coord/hf_ranges.h): a text
 * that decodes for a file encodes back to the same bytes, and marks only
 * whole ranges DONE.
 */
#include "coord/hf_ranges.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  mesh_hf_ranges r;
  if (mesh_hf_ranges_init(&r, 20500, 1000) != 0)
    return 0;
  if (mesh_hf_ranges_decode(&r, (const char *)data, size) == 0) {
    static char text[MESH_HF_RANGES_TEXT_MAX];
    int len = mesh_hf_ranges_encode(&r, text, sizeof text);
    if (len < 0 || (size_t)len != size || memcmp(text, data, size) != 0)
      abort();
    if (mesh_hf_ranges_have(&r) != (uint64_t)mesh_hf_ranges_done(&r) * 1000 -
                                       (r.state[r.n - 1] == MESH_HF_RANGE_DONE ? 500 : 0))
      abort();
  }
  mesh_hf_ranges_free(&r);
  return 0;
}
