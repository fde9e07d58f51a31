/*
 * The loop's side of a set of write buffers (hf_wset): taking a buffer,
 * filling it, handing it to the job's strand, counting it out once written.
 */
#include "coord/hf_internal.h"

#include <stdlib.h>
#include <string.h>

void hf_wset_init(hf_wset *s, hf_wbuf *bufs, int n, hf_lane *lane, mesh_work_fn work,
                  mesh_done_fn done)
{
  *s = (hf_wset){.bufs = bufs, .n = n, .cur = -1, .lane = lane, .work = work, .done = done};
}

size_t hf_wset_room(const hf_job *j, const hf_wset *s)
{
  size_t room = 0;
  for (int i = 0; i < s->n; i++) {
    const hf_wbuf *b = &s->bufs[i];
    if (i == s->cur)
      room += j->buf_cap - b->len;
    else if (!b->w.busy)
      room += j->buf_cap;
  }
  return room;
}

void hf_wset_flush(hf_job *j, hf_wset *s)
{
  if (s->cur < 0)
    return;
  hf_wbuf *b = &s->bufs[s->cur];
  s->cur = -1;
  if (b->len == 0 && !b->restart)
    return;
  s->in_flight++;
  j->in_flight++;
  mesh_pool_submit(j->dl->c->pool, &b->w, j->strand, s->work, s->done);
}

/* A free buffer made current (allocated on first use), or -1. */
static int take(hf_job *j, hf_wset *s, uint64_t off)
{
  for (int i = 0; i < s->n; i++) {
    hf_wbuf *b = &s->bufs[i];
    if (b->w.busy)
      continue;
    if (b->data == NULL && (b->data = malloc(j->buf_cap)) == NULL)
      return -1;
    b->j = j;
    b->lane = s->lane;
    b->len = 0;
    b->off = off;
    b->restart = s->restart_next;
    s->restart_next = false;
    s->cur = i;
    return i;
  }
  return -1;
}

bool hf_wset_fill(hf_job *j, hf_wset *s, uint64_t at, const void *p, size_t n)
{
  const unsigned char *src = p;
  size_t off = 0;
  while (off < n) {
    if (s->cur < 0 && take(j, s, at + off) < 0)
      return false;
    hf_wbuf *b = &s->bufs[s->cur];
    size_t k = j->buf_cap - b->len;
    if (k > n - off)
      k = n - off;
    memcpy(b->data + b->len, src + off, k);
    b->len += k;
    off += k;
    if (b->len == j->buf_cap)
      hf_wset_flush(j, s);
  }
  /* When the strand has nothing of this set to do, the bytes go to the disk
   * now rather than when the buffer is full: a slow transfer keeps its
   * partial file current (a kill loses little), and a fast one still
   * batches, since buffers fill while a write is in flight. */
  if (s->in_flight == 0)
    hf_wset_flush(j, s);
  return true;
}

void hf_wset_written(hf_job *j, hf_wset *s, const hf_wbuf *b)
{
  s->in_flight--;
  j->in_flight--;
  j->dl->c->counters.buffered_bytes -= b->len;
}
