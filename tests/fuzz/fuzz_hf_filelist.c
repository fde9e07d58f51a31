/*
 * Fuzz target for a member's signed file list (coord/hf_filelist.h): any
 * bytes are checked without reading past them or crashing; a list that
 * opens must hold the manifest inside the buffer. The first byte flips
 * whether the input is taken as is, or as the manifest of a list sealed by
 * a fixed key (so that the check gets past the signature and the manifest
 * parser sees what follows).
 */
#include "coord/hf_filelist.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  static mesh_identity id;
  static int have_id;
  if (!have_id) {
    uint8_t seed[MESH_SEED_LEN];
    memset(seed, 7, sizeof seed);
    if (mesh_identity_from_seed(seed, &id) != 0)
      abort();
    have_id = 1;
  }
  mesh_hf_filelist_meta want;
  memset(&want, 0, sizeof want);
  memcpy(want.model_id, "acme/tiny", 10);
  memcpy(want.revision, "main", 5);
  want.owner = id.id;
  want.epoch = 3;
  const uint8_t *buf = data + 1;
  size_t len = size - 1;
  uint8_t *sealed = NULL;
  if (data[0] & 1) {
    if (mesh_hf_filelist_seal(&id, &want, (const char *)buf, len, &sealed, &len) != 0)
      return 0;
    buf = sealed;
  }
  const char *m = NULL;
  size_t mlen = 0;
  char err[160];
  if (mesh_hf_filelist_open(buf, len, &want, &m, &mlen, err, sizeof err) == 0) {
    if (m < (const char *)buf || m + mlen != (const char *)buf + len)
      abort();
    mesh_hf_tree t;
    mesh_hf_tree_init(&t);
    mesh_hf_tree_limits lim = {.max_entries = 1000};
    (void)mesh_hf_manifest_parse(m, mlen, &lim, &t, err, sizeof err);
    mesh_hf_tree_free(&t);
  } else if (sealed != NULL) {
    abort(); /* what was just sealed must open */
  }
  free(sealed);
  return 0;
}
