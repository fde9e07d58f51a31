/*
 * Due-time queues of peers: a binary min-heap per queue (abandoned
 * documents by collect_at, departed peers by forget_at). Each peer knows
 * its place in each heap, so a deadline that moves (an owner that departs,
 * returns and departs again) moves the peer with it, and the head is always
 * the earliest due: no owner waits behind another.
 */
#include "coord/coord_internal.h"

#include "src/base/err.h"

#include <stdlib.h>

static mesh_time_ms key(const coord_due *q, const coord_peer *p)
{
  return q->which == COORD_DUE_COLLECT ? p->collect_at : p->forget_at;
}

/* The peer's 1-based place in q (0: not in it). */
static size_t *slot(const coord_due *q, coord_peer *p)
{
  return q->which == COORD_DUE_COLLECT ? &p->collect_pos : &p->forget_pos;
}

static void put(coord_due *q, size_t i, coord_peer *p)
{
  q->v[i] = p;
  *slot(q, p) = i + 1;
}

static void sift_up(coord_due *q, size_t i)
{
  coord_peer *p = q->v[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (key(q, q->v[parent]) <= key(q, p))
      break;
    put(q, i, q->v[parent]);
    i = parent;
  }
  put(q, i, p);
}

static void sift_down(coord_due *q, size_t i)
{
  coord_peer *p = q->v[i];
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    mesh_time_ms best = key(q, p);
    if (l < q->n && key(q, q->v[l]) < best) {
      m = l;
      best = key(q, q->v[l]);
    }
    if (l + 1 < q->n && key(q, q->v[l + 1]) < best)
      m = l + 1;
    if (m == i)
      break;
    put(q, i, q->v[m]);
    i = m;
  }
  put(q, i, p);
}

void coord_due_init(coord_due *q, coord_due_which which)
{
  q->v = NULL;
  q->n = q->cap = 0;
  q->which = which;
}

void coord_due_free(coord_due *q)
{
  free(q->v);
  q->v = NULL;
  q->n = q->cap = 0;
}

bool coord_due_has(const coord_due *q, const coord_peer *p)
{
  return *slot(q, (coord_peer *)p) != 0;
}

int coord_due_set(coord_due *q, coord_peer *p)
{
  size_t pos = *slot(q, p);
  if (pos != 0) {
    sift_up(q, pos - 1);
    sift_down(q, *slot(q, p) - 1);
    return 0;
  }
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 16;
    coord_peer **v = realloc(q->v, cap * sizeof *v);
    if (v == NULL)
      return -ENOMEM;
    q->v = v;
    q->cap = cap;
  }
  q->v[q->n++] = p;
  sift_up(q, q->n - 1);
  return 0;
}

void coord_due_remove(coord_due *q, coord_peer *p)
{
  size_t pos = *slot(q, p);
  if (pos == 0)
    return;
  *slot(q, p) = 0;
  size_t i = pos - 1;
  coord_peer *last = q->v[--q->n];
  if (i == q->n)
    return;
  put(q, i, last);
  sift_up(q, i);
  sift_down(q, *slot(q, last) - 1);
}

coord_peer *coord_due_top(const coord_due *q)
{
  return q->n > 0 ? q->v[0] : NULL;
}
