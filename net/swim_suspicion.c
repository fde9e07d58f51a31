/*
 * One suspicion (Lifeguard LHA-Suspicion).
 *
 * A suspicion starts with the maximum timeout and shrinks toward the minimum
 * as independent accusers confirm it: after n of the k expected
 * confirmations the timeout is max - log(n + 1) / log(k + 1) * (max - min)
 * (memberlist's remainingSuspicionTime). The first accuser does not count as
 * a confirmation, and each accuser counts once.
 */
#include "net/swim_internal.h"

#include <string.h>

static void recompute(swim_suspicion *sp)
{
  int64_t rem = swim_suspicion_remaining(sp->n, sp->k, 0, (int64_t)sp->min, (int64_t)sp->max);
  sp->deadline = sp->start + (mesh_time_ms)(rem < 0 ? 0 : rem);
}

void swim_suspicion_init(swim_suspicion *sp, uint32_t k, mesh_time_ms min, mesh_time_ms max,
                         mesh_time_ms now, const mesh_peer_id *from)
{
  memset(sp, 0, sizeof *sp);
  sp->k = k > SWIM_SUSPICION_MAX_K ? SWIM_SUSPICION_MAX_K : k;
  sp->min = min;
  sp->max = max < min ? min : max;
  sp->start = now;
  sp->seen[0] = *from;
  sp->n_seen = 1;
  recompute(sp);
}

static bool seen(const swim_suspicion *sp, const mesh_peer_id *from)
{
  for (uint32_t i = 0; i < sp->n_seen; i++)
    if (memcmp(sp->seen[i].b, from->b, MESH_PEER_ID_LEN) == 0)
      return true;
  return false;
}

bool swim_suspicion_wants(const swim_suspicion *sp, const mesh_peer_id *from)
{
  return sp->n < sp->k && !seen(sp, from);
}

bool swim_suspicion_confirm(swim_suspicion *sp, const mesh_peer_id *from)
{
  if (!swim_suspicion_wants(sp, from))
    return false;
  sp->seen[sp->n_seen++] = *from;
  sp->n++;
  recompute(sp);
  return true;
}

void swim_suspicion_restart(swim_suspicion *sp, mesh_time_ms now)
{
  sp->start = now;
  sp->lc_sent = false;
  recompute(sp);
}
