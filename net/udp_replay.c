/* The UDP path's sliding replay window over a 64-bit packet counter (net/udp_wire.h). */
#include "net/udp_wire.h"

#define WORDS (MESH_UDP_REPLAY_BITS / 64)

bool mesh_udp_replay_check(const mesh_udp_replay *w, uint64_t counter)
{
  if (counter >= MESH_UDP_COUNTER_LIMIT)
    return false;
  if (counter > w->top)
    return true;
  if (w->top - counter > MESH_UDP_REPLAY_WINDOW)
    return false;
  uint64_t word = (counter / 64) % WORDS;
  return (w->bits[word] & (UINT64_C(1) << (counter % 64))) == 0;
}

bool mesh_udp_replay_accept(mesh_udp_replay *w, uint64_t counter)
{
  if (!mesh_udp_replay_check(w, counter))
    return false;
  if (counter > w->top) {
    /* The bitmap is a ring of words: the words between the old top's and
     * the new one's hold counters that are now too old or not seen yet,
     * so they start empty. A jump of a whole ring or more clears it all.
     * The window keeps one word less than the ring (WINDOW), so the word
     * being reused never still holds a counter inside the window. */
    uint64_t from = w->top / 64, to = counter / 64;
    uint64_t n = to - from < WORDS ? to - from : WORDS;
    for (uint64_t i = 1; i <= n; i++)
      w->bits[(from + i) % WORDS] = 0;
    w->top = counter;
  }
  w->bits[(counter / 64) % WORDS] |= UINT64_C(1) << (counter % 64);
  return true;
}
