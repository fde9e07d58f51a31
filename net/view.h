/*
 * The membership view as the rest of meshd sees it.
 *
 * The view is the set of alive and suspect members at their current epoch.
 * The membership core raises one mesh_view_event per change, in order; the
 * daemon hands them to subscribers (the coordinator first). A subscriber may
 * keep its own mirror of the view from these events alone.
 */
#ifndef MESH_NET_VIEW_H
#define MESH_NET_VIEW_H

#include "src/base/clock.h"
#include "src/identity/identity.h"

#include <stdint.h>

typedef enum mesh_view_event_type {
  MESH_VIEW_JOINED = 1,        /* a peer entered the view (alive) */
  MESH_VIEW_SUSPECT = 2,       /* still in the view, suspected */
  MESH_VIEW_ALIVE_AGAIN = 3,   /* a suspect refuted */
  MESH_VIEW_EPOCH_CHANGED = 4, /* same peer ID, higher epoch: the old epoch is over */
  MESH_VIEW_DEAD = 5,          /* declared dead: out of the view */
  MESH_VIEW_LEFT = 6,          /* left gracefully: out of the view */
  MESH_VIEW_REAPED = 7,        /* a dead or left member's record was dropped */
} mesh_view_event_type;

typedef struct mesh_view_event {
  mesh_view_event_type type;
  mesh_peer_id peer;
  uint64_t epoch;     /* the peer's epoch after the change */
  uint64_t old_epoch; /* for EPOCH_CHANGED: the epoch that ended; else == epoch */
  mesh_time_ms at;    /* the core's "now" when the change happened */
} mesh_view_event;

const char *mesh_view_event_name(mesh_view_event_type t);

#endif
