/*
 * Per-peer budgets of the membership core: what one connected peer may make
 * this node spend, measured on the receiver's own `now`.
 *
 *   budget              unit                       beyond it
 *   introductions       new members by datagram    records refused (intro-limit)
 *                       per probe interval
 *   bad signatures      records whose signature    the caller is asked to
 *                       did not verify, per window  disconnect the peer; its
 *                                                   records are refused unverified
 *                                                   until the window ends (sig-budget)
 *   push-pull           a token bucket: burst,     the packet is dropped
 *                       then one per refill period  (push-pull-rate)
 *
 * The table is small and fixed (no allocation, no growth a peer can cause):
 * a peer not in it takes the slot of the peer heard from least recently,
 * preferring one that is not over its bad-signature budget. A peer that
 * churns identities to get fresh budgets needs a new connection and
 * handshake for each (disconnected, it cannot send more), so its cost is
 * bounded by what the transport lets strangers connect, times the budget.
 */
#include "net/swim_internal.h"

#include <string.h>

static bool peer_eq(const mesh_peer_id *a, const mesh_peer_id *b)
{
  return memcmp(a->b, b->b, MESH_PEER_ID_LEN) == 0;
}

void swim_peers_init(swim_peers *t)
{
  memset(t, 0, sizeof *t);
}

swim_peer *swim_peers_get(swim_peers *t, const mesh_peer_id *id, uint32_t push_pull_burst,
                          mesh_time_ms now)
{
  swim_peer *victim = NULL;
  for (size_t i = 0; i < SWIM_PEER_SLOTS; i++) {
    swim_peer *p = &t->slot[i];
    if (p->used && peer_eq(&p->id, id)) {
      p->seen = now;
      return p;
    }
    /* Free slots first, then the least recently heard, cut peers last. */
    if (victim == NULL || !p->used ||
        (victim->used &&
         (victim->cut > p->cut || (victim->cut == p->cut && p->seen < victim->seen))))
      victim = p;
  }
  *victim = (swim_peer){.id = *id,
                        .used = true,
                        .seen = now,
                        .intro_window = now,
                        .pp_at = now,
                        .pp_tokens = push_pull_burst};
  return victim;
}

uint32_t *swim_peer_intro(swim_peer *p, mesh_time_ms interval_ms, mesh_time_ms now)
{
  if (now - p->intro_window >= interval_ms) {
    p->intro_window = now;
    p->intro_n = 0;
  }
  return &p->intro_n;
}

/* Ends the bad-signature window when it is over: it runs for window_ms
 * from the first bad signature counted in it. */
static void bad_window(swim_peer *p, mesh_time_ms window_ms, mesh_time_ms now)
{
  if (p->bad_n > 0 && now - p->bad_window >= window_ms) {
    p->bad_n = 0;
    p->cut = false;
  }
}

bool swim_peer_bad_sig(swim_peer *p, uint32_t budget, mesh_time_ms window_ms, mesh_time_ms now)
{
  bad_window(p, window_ms, now);
  if (p->cut)
    return false;
  if (p->bad_n == 0)
    p->bad_window = now;
  p->bad_n++;
  if (p->bad_n < budget)
    return false;
  p->cut = true;
  return true;
}

bool swim_peer_is_cut(swim_peer *p, mesh_time_ms window_ms, mesh_time_ms now)
{
  bad_window(p, window_ms, now);
  return p->cut;
}

bool swim_peer_take_push_pull(swim_peer *p, uint32_t burst, uint32_t refill_ms, mesh_time_ms now)
{
  if (now > p->pp_at && refill_ms > 0) {
    mesh_time_ms add = (now - p->pp_at) / refill_ms;
    if (p->pp_tokens + add >= burst) {
      p->pp_tokens = burst;
      p->pp_at = now;
    } else {
      /* Keep the part of a period already earned. */
      p->pp_tokens += (uint32_t)add;
      p->pp_at += add * refill_ms;
    }
  }
  if (p->pp_tokens == 0)
    return false;
  p->pp_tokens--;
  return true;
}
