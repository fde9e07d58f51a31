/*
 * Fuzz target for the bulk channel's decoder (coord/bulk_wire.h). Whatever
 * decodes must hold only what the bounds allow: a path that passes the path
 * check (a file list request: no path at all), a chunk within its bound, an END code in [-4095, 0]
 * with printable text; and it must encode again. The decoder that reads a
 * chunk in place must answer exactly as the general one.
 */
#include "coord/bulk_wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The chunk read in place and the general decoder agree on everything. */
static void same_as_general(const uint8_t *data, size_t size, int rc, const mesh_bulk_msg *m)
{
  mesh_bulk_msg g;
  int rg = mesh_bulk_decode_general(data, size, &g);
  if (rg != rc)
    abort();
  if (rg != 0)
    return;
  if (g.kind != m->kind || g.id != m->id || g.offset != m->offset || g.data_len != m->data_len ||
      g.length != m->length || g.credit != m->credit || g.code != m->code ||
      g.file_list != m->file_list || strcmp(g.path, m->path) != 0 ||
      strcmp(g.reason, m->reason) != 0 ||
      (g.data_len > 0 && memcmp(g.data, m->data, g.data_len) != 0))
    abort();
  mesh_bulk_msg_clear(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  mesh_bulk_msg m;
  int rc = mesh_bulk_decode(data, size, &m);
  same_as_general(data, size, rc, &m);
  if (rc != 0)
    return 0;
  const char *why;
  if (m.id == 0)
    abort();
  switch (m.kind) {
  case MESH_BULK_REQUEST:
    if ((m.file_list ? m.path[0] != '\0' : mesh_hf_path_check(m.path, strlen(m.path), &why) != 0) ||
        m.length == 0 || m.credit == 0 || m.credit > MESH_BULK_CREDIT_MAX)
      abort();
    break;
  case MESH_BULK_CHUNK:
    if (m.data_len == 0 || m.data_len > MESH_BULK_CHUNK_MAX)
      abort();
    break;
  case MESH_BULK_END:
    if (m.code > 0 || m.code < -4095)
      abort();
    for (const char *c = m.reason; *c != '\0'; c++)
      if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
        abort();
    break;
  default:
    break;
  }
  uint8_t *out;
  size_t len;
  if (mesh_bulk_encode(&m, &out, &len) != 0)
    abort();
  free(out);
  mesh_bulk_msg_clear(&m);
  return 0;
}
