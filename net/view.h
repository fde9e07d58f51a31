/*
 * The membership view as the rest of meshd sees it.
 *
 * The view is the set of alive and suspect members at their current epoch.
 * The membership core raises one mesh_view_event per change, in order; the
 * daemon hands them to subscribers (the coordinator first). A subscriber may
 * keep its own mirror of the view from these events.
 *
 * Events can be lost (the core could not queue one when memory was short),
 * so a mirror built from events alone could drift from the view for good.
 * Every change therefore has a sequence number, counted by the core whether
 * or not its event could be queued: 1 for the first change, then one more
 * per change, without holes. A subscriber follows the numbers
 * (mesh_view_follow); a gap means it missed changes, and it then starts again
 * from the whole view as the core holds it now, read through a
 * mesh_view_source tagged with the number of the last change. The source is
 * the one interface through which a subscriber reads membership: it does not
 * depend on the core behind it (SWIM in the daemon and the simulator, an
 * array in unit tests).
 */
#ifndef MESH_NET_VIEW_H
#define MESH_NET_VIEW_H

#include "src/base/clock.h"
#include "src/identity/identity.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum mesh_view_event_type {
  MESH_VIEW_JOINED = 1,        /* a peer entered the view (alive) */
  MESH_VIEW_SUSPECT = 2,       /* still in the view, suspected */
  MESH_VIEW_ALIVE_AGAIN = 3,   /* a suspect refuted */
  MESH_VIEW_EPOCH_CHANGED = 4, /* same peer ID, higher epoch: the old epoch is over */
  MESH_VIEW_DEAD = 5,          /* declared dead: out of the view */
  MESH_VIEW_LEFT = 6,          /* left gracefully: out of the view */
  MESH_VIEW_REAPED = 7,        /* a dead or left member's record was dropped */
  MESH_VIEW_ANSWERED = 8,      /* a member answered this node's own ping for the
                                  first time in its epoch: it is reachable and
                                  speaks for itself, not only through others */
} mesh_view_event_type;
#define MESH_VIEW_EVENT_MAX 8

typedef struct mesh_view_event {
  mesh_view_event_type type;
  mesh_peer_id peer;
  uint64_t epoch;     /* the peer's epoch after the change */
  uint64_t old_epoch; /* for EPOCH_CHANGED: the epoch that ended; else == epoch */
  mesh_time_ms at;    /* the core's "now" when the change happened */
  uint64_t seq;       /* the change's number: the previous one's + 1 (first: 1) */
} mesh_view_event;

const char *mesh_view_event_name(mesh_view_event_type t);

/* A member's place as a view source lists it. */
typedef enum mesh_view_state {
  MESH_VIEW_STATE_ALIVE = 1,   /* in the view */
  MESH_VIEW_STATE_SUSPECT = 2, /* in the view, suspected */
  MESH_VIEW_STATE_DEAD = 3,    /* out of the view; its record not yet reaped */
  MESH_VIEW_STATE_LEFT = 4,    /* out of the view; its record not yet reaped */
} mesh_view_state;

typedef struct mesh_view_member {
  mesh_peer_id peer;
  uint64_t epoch; /* its current epoch (for dead and left: the one that ended) */
  mesh_view_state state;
  bool answered; /* it answered this node's own ping in this epoch (MESH_VIEW_ANSWERED) */
} mesh_view_member;

/*
 * Read access to the whole view of one core, at one moment: the members it
 * holds (in the view, and dead or left ones not yet reaped; this node itself
 * is not listed) and the number of the last change it made. ctx is the
 * core's, borrowed; what the functions return stays true until the core is
 * next fed an input, so a reader lists the members within one turn of the
 * loop. None of them blocks or allocates.
 */
typedef struct mesh_view_source {
  const void *ctx;
  /* The sequence number of the core's last change (0: none yet). */
  uint64_t (*seq)(const void *ctx);
  /* How many members member_at lists. */
  size_t (*count)(const void *ctx);
  /* The i-th member (i < count): 0, or -ENOENT past the end. */
  int (*member_at)(const void *ctx, size_t i, mesh_view_member *out);
} mesh_view_source;

/* Where a subscriber stands in the sequence of changes. */
typedef struct mesh_view_follower {
  uint64_t seq; /* the last change its mirror reflects (0: none) */
} mesh_view_follower;

typedef enum mesh_view_step {
  MESH_VIEW_APPLY = 1,  /* the next change: apply the event, then mesh_view_applied */
  MESH_VIEW_SKIP = 2,   /* already reflected (a resync read past it): drop it */
  MESH_VIEW_RESYNC = 3, /* changes were missed: read the whole view again */
} mesh_view_step;

/* What a subscriber at f does with ev. Changes nothing. */
mesh_view_step mesh_view_follow(const mesh_view_follower *f, const mesh_view_event *ev);
/* The event ev was applied to the mirror. */
void mesh_view_applied(mesh_view_follower *f, const mesh_view_event *ev);
/* The mirror was made equal to the view of a source whose seq was seq. */
void mesh_view_resynced(mesh_view_follower *f, uint64_t seq);
/* Whether the mirror lags the source (changes it has not seen, such as
 * events lost at the end of a batch, which no later event reveals yet). */
bool mesh_view_behind(const mesh_view_follower *f, const mesh_view_source *src);

#endif
