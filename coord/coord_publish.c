/*
 * Publishing this node's own document: signed, versioned, its digest gossiped
 * through membership, and sent to members that ask or reconnect.
 */
#include "coord/coord_internal.h"

#include "src/base/err.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* ---- publishing ------------------------------------------------------- */

void coord_send_own_doc(mesh_coord *c, const mesh_peer_id *to)
{
  if (c->own_raw == NULL)
    return;
  uint8_t *msg;
  size_t len;
  if (coord_wire_wrap_doc(c->own_raw, c->own_raw_len, &msg, &len) != 0)
    return;
  coord_send(c, to, msg, len);
  c->st.docs_sent++;
}

static void publish(mesh_coord *c, mesh_time_ms now)
{
  if (!c->dirty)
    return;
  mesh_time_ms gap =
      c->dirty_progress_only ? c->set.progress_publish_interval : c->set.publish_interval;
  if ((c->own_raw != NULL || c->st.publish_failures > 0) && now < c->last_publish + gap)
    return;
  uint64_t prev = c->version;
  c->version++;
  uint8_t *raw;
  size_t raw_len;
  if (coord_wire_doc_encode(c, now, &raw, &raw_len) != 0) {
    /* Out of memory: try again after the gap, not on every tick. */
    c->version = prev;
    c->last_publish = now;
    c->st.publish_failures++;
    return;
  }
  free(c->own_raw);
  c->own_raw = raw;
  c->own_raw_len = raw_len;
  c->dirty = false;
  c->dirty_progress_only = false;
  c->last_publish = now;

  for (size_t i = 0; i < c->peers_cap; i++) {
    coord_peer *p = c->peers[i];
    if (coord_slot_live(p) && coord_peer_in_view(p))
      coord_send_own_doc(c, &p->id);
  }
  uint32_t shown = 0;
  for (size_t i = 0; i < c->own_n; i++)
    shown += c->own[i].verifying ? 0 : 1;
  mesh_coord_out it = {.kind = MESH_COORD_OUT_APP_STATE};
  if (coord_wire_digest(c->epoch, c->version, shown, &it.u.app_state.bytes, &it.u.app_state.len) ==
      0) {
    if (!coord_push(c, &it))
      free(it.u.app_state.bytes);
  }
  mesh_coord_out m = {.kind = MESH_COORD_OUT_STORE_META};
  m.u.meta.epoch = c->epoch;
  m.u.meta.version = c->version;
  if (coord_push(c, &m))
    c->st.store_writes++;
}

/* After every input: act on what became due and publish what changed. */
void coord_settle(mesh_coord *c, mesh_time_ms now)
{
  coord_drive(c, now);
  publish(c, now);
}
