/*
 * Lifeguard's local health multiplier (LHA-Probe).
 *
 * The score rises when our own probes fail without the helpers' NACKs
 * arriving, when we have to refute a suspicion of ourselves, or when our own
 * event loop runs late: all three mean we are probably the slow one. It falls with every successful
 * probe. Timeouts are stretched by (score + 1), so a starved node waits longer before it accuses
 * anyone, as memberlist's awareness.go does.
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

/*
 * A loop that runs late by half a probe timeout or more misses the deadline
 * of an ack (ours to send, or theirs to read) as surely as a failed probe
 * does, so it counts as one; a stall of several probe intervals counts as
 * the probes that could not run in it. Below half a probe timeout the loop
 * still keeps every deadline, and nothing changes: scheduling noise must not
 * slow a healthy node down.
 */
int swim_awareness_lateness_delta(mesh_time_ms late_ms, mesh_time_ms probe_timeout_ms,
                                  mesh_time_ms probe_interval_ms)
{
  mesh_time_ms threshold = probe_timeout_ms / 2 > 0 ? probe_timeout_ms / 2 : 1;
  if (late_ms < threshold)
    return 0;
  mesh_time_ms missed = probe_interval_ms > 0 ? late_ms / probe_interval_ms : 0;
  /* The caller clamps to the score's cap; keep the int small. */
  return missed >= 64 ? 64 : (int)missed + 1;
}
