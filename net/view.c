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
  }
  return "unknown";
}
