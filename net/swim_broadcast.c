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
  q->free_head = -1;
}

void swim_bq_free(swim_bqueue *q)
{
  for (size_t i = 0; i < q->cap; i++)
    free(q->items[i].buf);
  free(q->items);
  free(q->heads);
  swim_bq_init(q);
}

static void unlink_item(swim_bqueue *q, int32_t i)
{
  swim_bcast *c = &q->items[i];
  if (c->prev >= 0)
    q->items[c->prev].next = c->next;
  else
    q->heads[c->transmits] = c->next;
  if (c->next >= 0)
    q->items[c->next].prev = c->prev;
}

static int link_front(swim_bqueue *q, int32_t i)
{
  swim_bcast *c = &q->items[i];
  if (c->transmits >= q->n_heads) {
    size_t n = q->n_heads ? q->n_heads * 2 : 8;
    while (n <= c->transmits)
      n *= 2;
    int32_t *h = realloc(q->heads, n * sizeof *h);
    if (h == NULL)
      return -ENOMEM;
    for (size_t t = q->n_heads; t < n; t++)
      h[t] = -1;
    q->heads = h;
    q->n_heads = n;
  }
  c->prev = -1;
  c->next = q->heads[c->transmits];
  if (c->next >= 0)
    q->items[c->next].prev = i;
  q->heads[c->transmits] = i;
  return 0;
}

static void release(swim_bqueue *q, int32_t i)
{
  unlink_item(q, i);
  free(q->items[i].buf);
  q->items[i].buf = NULL;
  q->items[i].next = q->free_head;
  q->free_head = i;
  q->n--;
}

int swim_bq_push(swim_bqueue *q, const mesh_peer_id *subject, const uint8_t *buf, size_t len)
{
  uint8_t *copy = malloc(len ? len : 1);
  if (copy == NULL)
    return -ENOMEM;
  memcpy(copy, buf, len);
  /* Drop the queued update about the same subject. */
  for (size_t t = 0; t < q->n_heads; t++) {
    for (int32_t i = q->heads[t]; i >= 0; i = q->items[i].next) {
      if (memcmp(q->items[i].subject.b, subject->b, MESH_PEER_ID_LEN) == 0) {
        release(q, i);
        goto place;
      }
    }
  }
place:
  if (q->free_head < 0) {
    size_t cap = q->cap ? q->cap * 2 : 16;
    swim_bcast *items = realloc(q->items, cap * sizeof *items);
    if (items == NULL) {
      free(copy);
      return -ENOMEM;
    }
    for (size_t i = q->cap; i < cap; i++) {
      items[i].buf = NULL;
      items[i].next = i + 1 < cap ? (int32_t)(i + 1) : q->free_head;
    }
    q->free_head = (int32_t)q->cap;
    q->items = items;
    q->cap = cap;
  }
  int32_t i = q->free_head;
  q->free_head = q->items[i].next;
  q->items[i] = (swim_bcast){.subject = *subject, .buf = copy, .len = len, .transmits = 0};
  if (link_front(q, i) != 0) {
    free(copy);
    q->items[i].buf = NULL;
    q->items[i].next = q->free_head;
    q->free_head = i;
    return -ENOMEM;
  }
  q->n++;
  return 0;
}

size_t swim_bq_select(const swim_bqueue *q, size_t budget, size_t overhead, size_t *idx, size_t max)
{
  size_t n = 0;
  size_t used = 0;
  for (size_t t = 0; t < q->n_heads && n < max; t++) {
    for (int32_t i = q->heads[t]; i >= 0 && n < max; i = q->items[i].next) {
      size_t cost = q->items[i].len + overhead;
      if (used + cost > budget)
        continue;
      idx[n++] = (size_t)i;
      used += cost;
      /* Nothing smaller than an overhead fits any more: stop looking. */
      if (budget - used <= overhead)
        return n;
    }
  }
  return n;
}

void swim_bq_commit(swim_bqueue *q, size_t *idx, size_t n, uint32_t limit)
{
  for (size_t j = 0; j < n; j++) {
    int32_t i = (int32_t)idx[j];
    swim_bcast *c = &q->items[i];
    if (c->buf == NULL)
      continue;
    if (c->transmits + 1 >= limit) {
      release(q, i);
      continue;
    }
    unlink_item(q, i);
    c->transmits++;
    if (link_front(q, i) != 0) {
      /* Cannot grow the lists: stop sending this one. */
      free(c->buf);
      c->buf = NULL;
      c->next = q->free_head;
      q->free_head = i;
      q->n--;
    }
  }
}
