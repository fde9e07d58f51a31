/*
 * Messages to peers that had no connection when the drain sent them (a
 * document, a command), kept bounded and sent when the peer's connection
 * comes up. Everything in this file runs on the loop thread.
 */
#include "src/daemon/downloads_internal.h"

#include <stdlib.h>
#include <string.h>

static void held_drop_first(mesh_downloads *d, held_peer *h)
{
  d->held_bytes -= h->msgs[0].len;
  free(h->msgs[0].buf);
  memmove(&h->msgs[0], &h->msgs[1], (h->n - 1) * sizeof h->msgs[0]);
  h->n--;
}

void dl_held_clear(mesh_downloads *d, held_peer *h)
{
  while (h->n > 0)
    held_drop_first(d, h);
  h->used = false;
}

/* Keeps a copy of a message the peer could not be sent yet (bounded: the
 * oldest go first; anti-entropy repairs whatever is dropped). */
void dl_held_add(mesh_downloads *d, const mesh_peer_id *to, const uint8_t *buf, size_t len)
{
  if (len > HELD_BYTES_MAX)
    return;
  held_peer *h = NULL, *oldest = &d->held[0];
  for (size_t i = 0; i < HELD_PEERS && h == NULL; i++) {
    if (d->held[i].used && mesh_peer_id_eq(&d->held[i].peer, to))
      h = &d->held[i];
    else if (!d->held[i].used || (oldest->used && d->held[i].at < oldest->at))
      oldest = &d->held[i];
  }
  if (h == NULL) {
    h = oldest;
    dl_held_clear(d, h);
    h->used = true;
    h->peer = *to;
  }
  if (h->n == HELD_PER_PEER)
    held_drop_first(d, h);
  while (d->held_bytes + len > HELD_BYTES_MAX) {
    held_peer *victim = NULL;
    for (size_t i = 0; i < HELD_PEERS; i++)
      if (d->held[i].used && d->held[i].n > 0 && (victim == NULL || d->held[i].at < victim->at))
        victim = &d->held[i];
    if (victim == NULL)
      return;
    held_drop_first(d, victim);
  }
  uint8_t *copy = malloc(len);
  if (copy == NULL)
    return;
  memcpy(copy, buf, len);
  h->msgs[h->n++] = (held_msg){.buf = copy, .len = len};
  h->at = mesh_loop_now(d->loop);
  d->held_bytes += len;
}

void dl_held_on_peer_up(void *arg, const mesh_peer_id *peer)
{
  mesh_downloads *d = arg;
  mesh_coord_peer_connected(d->coord, peer, mesh_loop_now(d->loop));
  for (size_t i = 0; i < HELD_PEERS; i++) {
    held_peer *h = &d->held[i];
    if (!h->used || !mesh_peer_id_eq(&h->peer, peer))
      continue;
    for (size_t k = 0; k < h->n; k++)
      if (mesh_net_send(d->net, peer, MESH_CH_COORD, MESH_CLASS_STREAM, h->msgs[k].buf,
                        h->msgs[k].len) == 0)
        d->counters.held_sent++;
    dl_held_clear(d, h);
  }
  dl_drain(d);
}
