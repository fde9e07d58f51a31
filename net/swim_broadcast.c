/*
 * The retransmit-limited update queue (memberlist's TransmitLimitedQueue).
 *
 * Each queued update (an encoded Update message) is piggybacked on outgoing
 * datagrams until it has been sent `limit` times, where limit is
 * retransmit_mult * ceil(log10(n + 1)): enough for epidemic spread to reach
 * every member with high probability, no more. Updates sent fewer times go
 * first, and among those the newest. A new update about a peer replaces the
 * queued one about the same peer, since the newer record supersedes it.
 */
#include "net/swim_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void swim_bq_init(swim_bqueue *q)
{
  memset(q, 0, sizeof *q);
}

void swim_bq_free(swim_bqueue *q)
{
  for (size_t i = 0; i < q->n; i++)
    free(q->items[i].buf);
  free(q->items);
  memset(q, 0, sizeof *q);
}

static void remove_at(swim_bqueue *q, size_t i)
{
  free(q->items[i].buf);
  q->items[i] = q->items[q->n - 1];
  q->n--;
}

int swim_bq_push(swim_bqueue *q, const mesh_peer_id *subject, const uint8_t *buf, size_t len)
{
  uint8_t *copy = malloc(len);
  if (copy == NULL)
    return -ENOMEM;
  memcpy(copy, buf, len);
  for (size_t i = 0; i < q->n; i++) {
    if (memcmp(q->items[i].subject.b, subject->b, MESH_PEER_ID_LEN) == 0) {
      remove_at(q, i);
      break;
    }
  }
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 16;
    swim_bcast *items = realloc(q->items, cap * sizeof *items);
    if (items == NULL) {
      free(copy);
      return -ENOMEM;
    }
    q->items = items;
    q->cap = cap;
  }
  q->items[q->n++] = (swim_bcast){
      .subject = *subject, .buf = copy, .len = len, .transmits = 0, .id = q->next_id++};
  return 0;
}

static bool better(const swim_bcast *a, const swim_bcast *b)
{
  if (a->transmits != b->transmits)
    return a->transmits < b->transmits;
  return a->id > b->id;
}

size_t swim_bq_select(const swim_bqueue *q, size_t budget, size_t overhead, size_t *idx, size_t max)
{
  size_t n = 0;
  size_t used = 0;
  while (n < max) {
    size_t best = (size_t)-1;
    for (size_t i = 0; i < q->n; i++) {
      const swim_bcast *c = &q->items[i];
      if (used + c->len + overhead > budget)
        continue;
      bool taken = false;
      for (size_t j = 0; j < n && !taken; j++)
        taken = idx[j] == i;
      if (taken)
        continue;
      if (best == (size_t)-1 || better(c, &q->items[best]))
        best = i;
    }
    if (best == (size_t)-1)
      break;
    idx[n++] = best;
    used += q->items[best].len + overhead;
  }
  return n;
}

static int cmp_desc(const void *a, const void *b)
{
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? 1 : (x > y ? -1 : 0);
}

void swim_bq_commit(swim_bqueue *q, size_t *idx, size_t n, uint32_t limit)
{
  /* Remove from the highest index down so lower indices stay valid. */
  qsort(idx, n, sizeof *idx, cmp_desc);
  for (size_t j = 0; j < n; j++) {
    swim_bcast *c = &q->items[idx[j]];
    c->transmits++;
    if (c->transmits >= limit)
      remove_at(q, idx[j]);
  }
}
