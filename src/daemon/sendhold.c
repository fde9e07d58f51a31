/* Membership messages held until their peer's connection is up (sendhold.h). */
#include "src/daemon/sendhold.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void mesh_sendhold_init(mesh_sendhold *h)
{
  memset(h, 0, sizeof *h);
}

void mesh_sendhold_clear(mesh_sendhold *h)
{
  for (size_t i = 0; i < h->n; i++)
    free(h->msgs[i].buf);
  h->n = 0;
  h->bytes = 0;
}

/* Drops the i-th message, keeping the order of the rest. */
static void drop_at(mesh_sendhold *h, size_t i)
{
  h->bytes -= h->msgs[i].len;
  free(h->msgs[i].buf);
  memmove(&h->msgs[i], &h->msgs[i + 1], (h->n - i - 1) * sizeof h->msgs[0]);
  h->n--;
}

int mesh_sendhold_put(mesh_sendhold *h, const mesh_peer_id *to, mesh_class cls, const uint8_t *buf,
                      size_t len, mesh_time_ms until)
{
  if (len > MESH_SENDHOLD_BYTES)
    return -EMSGSIZE;
  uint8_t *copy = malloc(len > 0 ? len : 1);
  if (copy == NULL)
    return -ENOMEM;
  if (len > 0)
    memcpy(copy, buf, len);
  while (h->n > 0 && (h->n == MESH_SENDHOLD_MAX || h->bytes + len > MESH_SENDHOLD_BYTES)) {
    drop_at(h, 0);
    h->c.evicted++;
  }
  h->msgs[h->n++] =
      (mesh_sendhold_msg){.to = *to, .cls = cls, .until = until, .buf = copy, .len = len};
  h->bytes += len;
  h->c.held++;
  return 0;
}

void mesh_sendhold_take(mesh_sendhold *h, const mesh_peer_id *peer, mesh_time_ms now,
                        mesh_sendhold_fn fn, void *arg)
{
  size_t i = 0;
  while (i < h->n) {
    mesh_sendhold_msg *m = &h->msgs[i];
    bool mine = mesh_peer_id_eq(&m->to, peer);
    if (m->until < now) {
      h->c.expired++;
      drop_at(h, i);
      continue;
    }
    if (!mine) {
      i++;
      continue;
    }
    /* Out of the hold before the call: fn may send, and a send that finds
     * no connection again puts a new copy in. */
    mesh_sendhold_msg taken = *m;
    memmove(&h->msgs[i], &h->msgs[i + 1], (h->n - i - 1) * sizeof h->msgs[0]);
    h->n--;
    h->bytes -= taken.len;
    h->c.released++;
    fn(arg, &taken.to, taken.cls, taken.buf, taken.len);
    free(taken.buf);
  }
}
