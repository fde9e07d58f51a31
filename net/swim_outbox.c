/*
 * The outbox a core fills and its caller drains. Items are appended in the
 * order the core produced them; everything they point to is owned by the
 * outbox until mesh_swim_outbox_clear. An item that cannot be allocated is
 * dropped and recorded in alloc_failed (membership tolerates a lost message;
 * the caller can log it).
 */
#include "net/swim_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void mesh_swim_outbox_init(mesh_swim_outbox *o)
{
  memset(o, 0, sizeof *o);
}

void mesh_swim_outbox_clear(mesh_swim_outbox *o)
{
  for (size_t i = 0; i < o->n_sends; i++)
    free(o->sends[i].buf);
  for (size_t i = 0; i < o->n_dials; i++)
    free(o->dials[i]);
  for (size_t i = 0; i < o->n_apps; i++)
    free(o->apps[i].buf);
  o->n_sends = o->n_dials = o->n_events = o->n_apps = o->n_disconnects = 0;
  o->timer_set = false;
  o->epoch_over = false;
  memset(&o->epoch_over_by, 0, sizeof o->epoch_over_by);
  o->epoch_over_epoch = 0;
  o->alloc_failed = 0;
}

void mesh_swim_outbox_free(mesh_swim_outbox *o)
{
  mesh_swim_outbox_clear(o);
  free(o->sends);
  free(o->dials);
  free(o->events);
  free(o->apps);
  free(o->disconnects);
  memset(o, 0, sizeof *o);
}

const char *mesh_swim_send_addr(const mesh_swim_send *s, size_t i)
{
  const char *a = s->addrs;
  if (i >= s->n_addrs)
    return NULL;
  while (i-- > 0)
    a += strlen(a) + 1;
  return a;
}

/* Makes room for one more item of size sz in *arr (count n, capacity cap). */
static int reserve(void **arr, size_t *cap, size_t n, size_t sz)
{
  if (n < *cap)
    return 0;
  size_t c = *cap ? *cap * 2 : 8;
  void *p = realloc(*arr, c * sz);
  if (p == NULL)
    return -ENOMEM;
  *arr = p;
  *cap = c;
  return 0;
}

int swim_outbox_send(mesh_swim_outbox *o, const mesh_peer_id *to, mesh_swim_class cls, int kind,
                     uint8_t *buf, size_t len, const char *addrs, size_t addrs_bytes,
                     size_t n_addrs)
{
  if (reserve((void **)&o->sends, &o->cap_sends, o->n_sends, sizeof *o->sends) != 0) {
    free(buf);
    o->alloc_failed = -ENOMEM;
    return -ENOMEM;
  }
  /* buf was allocated with addrs_bytes spare after len: addresses go there. */
  if (addrs_bytes > 0)
    memcpy(buf + len, addrs, addrs_bytes);
  o->sends[o->n_sends++] = (mesh_swim_send){.to = *to,
                                            .cls = cls,
                                            .kind = kind,
                                            .buf = buf,
                                            .len = len,
                                            .addrs = (const char *)buf + len,
                                            .n_addrs = n_addrs};
  return 0;
}

int swim_outbox_dial(mesh_swim_outbox *o, const char *addr)
{
  char *copy = strdup(addr);
  if (copy == NULL ||
      reserve((void **)&o->dials, &o->cap_dials, o->n_dials, sizeof *o->dials) != 0) {
    free(copy);
    o->alloc_failed = -ENOMEM;
    return -ENOMEM;
  }
  o->dials[o->n_dials++] = copy;
  return 0;
}

int swim_outbox_event(mesh_swim_outbox *o, const mesh_view_event *ev)
{
  if (o->test_refuse_events > 0) {
    o->test_refuse_events--;
    o->alloc_failed = -ENOMEM;
    return -ENOMEM;
  }
  if (reserve((void **)&o->events, &o->cap_events, o->n_events, sizeof *o->events) != 0) {
    o->alloc_failed = -ENOMEM;
    return -ENOMEM;
  }
  o->events[o->n_events++] = *ev;
  return 0;
}

int swim_outbox_app(mesh_swim_outbox *o, const mesh_peer_id *from, uint64_t epoch,
                    const uint8_t *buf, size_t len)
{
  uint8_t *copy = malloc(len ? len : 1);
  if (copy == NULL || reserve((void **)&o->apps, &o->cap_apps, o->n_apps, sizeof *o->apps) != 0) {
    free(copy);
    o->alloc_failed = -ENOMEM;
    return -ENOMEM;
  }
  if (len > 0)
    memcpy(copy, buf, len);
  o->apps[o->n_apps++] =
      (mesh_swim_app_state){.from = *from, .epoch = epoch, .buf = copy, .len = len};
  return 0;
}

int swim_outbox_disconnect(mesh_swim_outbox *o, const mesh_peer_id *peer)
{
  if (reserve((void **)&o->disconnects, &o->cap_disconnects, o->n_disconnects,
              sizeof *o->disconnects) != 0) {
    o->alloc_failed = -ENOMEM;
    return -ENOMEM;
  }
  o->disconnects[o->n_disconnects++] = *peer;
  return 0;
}
