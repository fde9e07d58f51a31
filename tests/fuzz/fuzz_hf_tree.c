/*
 * Fuzz target for the Hub's file list parser (and the Link header and path
 * checks that ride with it). The first byte picks the decoder: even bytes
 * feed the rest to the tree parser as one or two pages (split at the first
 * NUL), odd bytes to the Link header parser and the path check.
 */
#include "coord/hf_tree.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  const char *p = (const char *)data + 1;
  size_t n = size - 1;
  char err[256];
  if ((data[0] & 1) == 0) {
    mesh_hf_tree_limits lim = {.max_entries = 1000, .max_file_size = UINT64_C(1) << 40};
    mesh_hf_tree t;
    mesh_hf_tree_init(&t);
    const char *nul = memchr(p, '\0', n);
    size_t first = nul != NULL ? (size_t)(nul - p) : n;
    int rc = mesh_hf_tree_parse_page(&t, p, first, &lim, err, sizeof err);
    if (rc == 0 && nul != NULL)
      rc = mesh_hf_tree_parse_page(&t, nul + 1, n - first - 1, &lim, err, sizeof err);
    if (rc == 0 && mesh_hf_tree_finish(&t, err, sizeof err) == 0) {
      /* Whatever was accepted must pass the path check on its own. */
      uint64_t total = 0;
      for (size_t i = 0; i < t.len; i++) {
        if (mesh_hf_path_check(t.files[i].path, strlen(t.files[i].path), NULL) != 0)
          abort();
        total += t.files[i].size;
      }
      if (total != t.total_bytes)
        abort();
    }
    mesh_hf_tree_free(&t);
    return 0;
  }
  char *s = malloc(n + 1);
  if (s == NULL)
    return 0;
  memcpy(s, p, n);
  s[n] = '\0';
  char out[512];
  if (mesh_hf_link_next(s, out, sizeof out) == 0 && strlen(out) >= sizeof out)
    abort();
  mesh_hf_path_check(p, n, NULL);
  free(s);
  return 0;
}
