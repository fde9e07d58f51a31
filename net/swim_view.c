/*
 * The membership core as a view source (net/view.h): what a subscriber that
 * found a gap in the view events reads to start again. Only the core's
 * public queries are used, so the source sees exactly what /members shows.
 */
#include "net/swim.h"

#include <errno.h>

static uint64_t source_seq(const void *ctx)
{
  return mesh_swim_view_seq(ctx);
}

static size_t source_count(const void *ctx)
{
  return mesh_swim_member_count(ctx);
}

static mesh_view_state view_state(mesh_swim_state st)
{
  switch (st) {
  case MESH_SWIM_SUSPECT:
    return MESH_VIEW_STATE_SUSPECT;
  case MESH_SWIM_DEAD:
    return MESH_VIEW_STATE_DEAD;
  case MESH_SWIM_LEFT:
    return MESH_VIEW_STATE_LEFT;
  case MESH_SWIM_ALIVE:
    break;
  }
  return MESH_VIEW_STATE_ALIVE;
}

static int source_member_at(const void *ctx, size_t i, mesh_view_member *out)
{
  mesh_swim_member_info info;
  int rc = mesh_swim_member_at(ctx, i, &info);
  if (rc != 0)
    return rc;
  *out = (mesh_view_member){.peer = info.id, .epoch = info.epoch, .state = view_state(info.state),
                             .answered = info.answered};
  return 0;
}

void mesh_swim_view_source(const mesh_swim *s, mesh_view_source *out)
{
  *out = (mesh_view_source){
      .ctx = s, .seq = source_seq, .count = source_count, .member_at = source_member_at};
}
