/*
 * Pure helpers of the membership core: the timeout and limit formulas (the
 * same as hashicorp/memberlist's util.go and suspicion.go, so that figures
 * compare), and the peer-ID hash index.
 */
#include "net/swim_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

mesh_time_ms swim_suspicion_timeout(uint32_t mult, size_t n, uint32_t interval_ms)
{
  double scale = log10(n < 1 ? 1.0 : (double)n);
  if (scale < 1.0)
    scale = 1.0;
  return (mesh_time_ms)((double)mult * scale * (double)interval_ms);
}

int64_t swim_suspicion_remaining(uint32_t confirm, uint32_t k, int64_t elapsed_ms, int64_t min_ms,
                                 int64_t max_ms)
{
  /* With no confirmations expected the minimum applies at once. */
  if (k < 1)
    return min_ms - elapsed_ms;
  double frac = log((double)confirm + 1.0) / log((double)k + 1.0);
  double raw = (double)max_ms - frac * (double)(max_ms - min_ms);
  int64_t timeout = (int64_t)floor(raw);
  if (timeout < min_ms)
    timeout = min_ms;
  return timeout - elapsed_ms;
}

uint32_t swim_retransmit_limit(uint32_t mult, size_t n)
{
  double scale = ceil(log10((double)n + 1.0));
  return mult * (uint32_t)scale;
}

mesh_time_ms swim_push_pull_scale(uint32_t interval_ms, size_t n)
{
  /* memberlist: below 32 members the interval stays; above, it is multiplied
   * by ceil(log2(n) - log2(32)) + 1 so that push-pull load stays flat. */
  if (n <= 32)
    return interval_ms;
  double mult = ceil(log2((double)n) - log2(32.0)) + 1.0;
  return (mesh_time_ms)(mult * (double)interval_ms);
}

/* Peer IDs end with 32 bytes of an Ed25519 public key: already uniform. */
static size_t id_hash(const mesh_peer_id *id)
{
  uint64_t h;
  memcpy(&h, id->b + MESH_PEER_ID_LEN - 8, 8);
  return (size_t)(h ^ (h >> 29));
}

int swim_index_init(swim_index *ix, size_t cap)
{
  size_t c = 16;
  while (c < cap)
    c <<= 1;
  ix->slots = malloc(c * sizeof *ix->slots);
  if (ix->slots == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < c; i++)
    ix->slots[i] = -1;
  ix->cap = c;
  ix->n = 0;
  return 0;
}

void swim_index_free(swim_index *ix)
{
  free(ix->slots);
  ix->slots = NULL;
  ix->cap = ix->n = 0;
}

static size_t find_slot(const swim_index *ix, const mesh_peer_id *id, swim_member *const *keys)
{
  size_t mask = ix->cap - 1;
  size_t i = id_hash(id) & mask;
  while (ix->slots[i] >= 0 && memcmp(keys[ix->slots[i]]->id.b, id->b, MESH_PEER_ID_LEN) != 0)
    i = (i + 1) & mask;
  return i;
}

int swim_index_get(const swim_index *ix, const mesh_peer_id *id, swim_member *const *keys)
{
  return ix->slots[find_slot(ix, id, keys)];
}

static int grow(swim_index *ix, swim_member *const *keys)
{
  swim_index big;
  int rc = swim_index_init(&big, ix->cap * 2);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < ix->cap; i++) {
    if (ix->slots[i] >= 0) {
      big.slots[find_slot(&big, &keys[ix->slots[i]]->id, keys)] = ix->slots[i];
      big.n++;
    }
  }
  free(ix->slots);
  *ix = big;
  return 0;
}

int swim_index_put(swim_index *ix, const mesh_peer_id *id, int32_t v, swim_member *const *keys)
{
  if ((ix->n + 1) * 2 > ix->cap) {
    int rc = grow(ix, keys);
    if (rc != 0)
      return rc;
  }
  size_t i = find_slot(ix, id, keys);
  if (ix->slots[i] < 0)
    ix->n++;
  ix->slots[i] = v;
  return 0;
}

void swim_index_set(swim_index *ix, const mesh_peer_id *id, int32_t v, swim_member *const *keys)
{
  size_t i = find_slot(ix, id, keys);
  if (ix->slots[i] >= 0)
    ix->slots[i] = v;
}

void swim_index_swap(swim_index *ix, const mesh_peer_id *a, const mesh_peer_id *b,
                     swim_member *const *keys)
{
  size_t pa = find_slot(ix, a, keys), pb = find_slot(ix, b, keys);
  int32_t t = ix->slots[pa];
  ix->slots[pa] = ix->slots[pb];
  ix->slots[pb] = t;
}

void swim_index_rebuild(swim_index *ix, swim_member *const *keys, size_t n)
{
  for (size_t i = 0; i < ix->cap; i++)
    ix->slots[i] = -1;
  ix->n = 0;
  for (size_t i = 0; i < n; i++) {
    ix->slots[find_slot(ix, &keys[i]->id, keys)] = (int32_t)i;
    ix->n++;
  }
}

void swim_index_del(swim_index *ix, const mesh_peer_id *id, swim_member *const *keys)
{
  size_t mask = ix->cap - 1;
  size_t i = find_slot(ix, id, keys);
  if (ix->slots[i] < 0)
    return;
  ix->slots[i] = -1;
  ix->n--;
  /* Backward-shift deletion keeps probe chains intact without tombstones. */
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (ix->slots[j] < 0)
      return;
    size_t home = id_hash(&keys[ix->slots[j]]->id) & mask;
    /* Move slot j into the hole when its home is not in (i, j]. */
    bool between = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
    if (!between) {
      ix->slots[i] = ix->slots[j];
      ix->slots[j] = -1;
      i = j;
    }
  }
}
