/*
 * Fuzzes the test fault spec parser (MESHD_TEST_FAULTS and the home's
 * test-faults file). A refusal comes with a reason; an accepted spec is
 * within its bounds, and its description parses back to the same spec.
 */
#include "net/fault.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int same(const mesh_fault_spec *a, const mesh_fault_spec *b)
{
  return a->active == b->active && a->delay_ms == b->delay_ms && a->jitter_ms == b->jitter_ms &&
         a->dist == b->dist && a->has_peer == b->has_peer &&
         (!a->has_peer || mesh_peer_id_eq(&a->peer, &b->peer)) && a->max_bytes == b->max_bytes &&
         a->max_messages == b->max_messages;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char text[MESH_FAULT_SPEC_MAX + 64];
  if (size >= sizeof text)
    size = sizeof text - 1;
  memcpy(text, data, size);
  text[size] = '\0';
  mesh_fault_spec s, again;
  char err[160] = "";
  int rc = mesh_fault_spec_parse(text, &s, err, sizeof err);
  if (rc != 0) {
    if (rc != -EINVAL || err[0] == '\0')
      abort();
    return 0;
  }
  if (s.delay_ms > MESH_FAULT_DELAY_MAX || s.jitter_ms > MESH_FAULT_DELAY_MAX || s.max_bytes < 1 ||
      s.max_bytes > MESH_FAULT_BYTES_MAX || s.max_messages < 1 ||
      s.max_messages > MESH_FAULT_MESSAGES_MAX)
    abort();
  char desc[MESH_FAULT_SPEC_MAX];
  mesh_fault_spec_describe(&s, desc, sizeof desc);
  if (mesh_fault_spec_parse(desc, &again, err, sizeof err) != 0 || !same(&s, &again))
    abort();
  /* A core made from it accepts it. */
  mesh_fault *f = NULL;
  if (mesh_fault_new(&s, 1, &f) != 0)
    abort();
  mesh_fault_free(f);
  return 0;
}
