/* Names of view events, and the follower that keeps a subscriber's place in their numbering. */
#include "net/view.h"

const char *mesh_view_event_name(mesh_view_event_type t)
{
  switch (t) {
  case MESH_VIEW_JOINED:
    return "joined";
  case MESH_VIEW_SUSPECT:
    return "suspect";
  case MESH_VIEW_ALIVE_AGAIN:
    return "alive-again";
  case MESH_VIEW_EPOCH_CHANGED:
    return "epoch-changed";
  case MESH_VIEW_DEAD:
    return "dead";
  case MESH_VIEW_LEFT:
    return "left";
  case MESH_VIEW_REAPED:
    return "reaped";
  case MESH_VIEW_ANSWERED:
    return "answered";
  }
  return "unknown";
}

mesh_view_step mesh_view_follow(const mesh_view_follower *f, const mesh_view_event *ev)
{
  if (ev->seq <= f->seq)
    return MESH_VIEW_SKIP;
  if (ev->seq == f->seq + 1)
    return MESH_VIEW_APPLY;
  return MESH_VIEW_RESYNC;
}

void mesh_view_applied(mesh_view_follower *f, const mesh_view_event *ev)
{
  f->seq = ev->seq;
}

void mesh_view_resynced(mesh_view_follower *f, uint64_t seq)
{
  f->seq = seq;
}

bool mesh_view_behind(const mesh_view_follower *f, const mesh_view_source *src)
{
  return src->seq(src->ctx) != f->seq;
}
