/*
 * Lifeguard's local health multiplier (LHA-Probe).
 *
 * The score rises when our own probes fail without the helpers' NACKs
 * arriving, or when we have to refute a suspicion of ourselves: both mean we
 * are probably the slow one. It falls with every successful probe. Timeouts
 * are stretched by (score + 1), so a starved node waits longer before it
 * accuses anyone, as memberlist's awareness.go does.
 */
#include "net/swim_internal.h"

void swim_awareness_init(swim_awareness *a, int max)
{
  a->score = 0;
  a->max = max < 1 ? 1 : max;
}

void swim_awareness_apply(swim_awareness *a, int delta)
{
  int s = a->score + delta;
  if (s < 0)
    s = 0;
  if (s > a->max - 1)
    s = a->max - 1;
  a->score = s;
}

mesh_time_ms swim_awareness_scale(const swim_awareness *a, mesh_time_ms t)
{
  return t * (mesh_time_ms)(a->score + 1);
}
