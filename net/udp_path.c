/* Whether a peer's datagrams take UDP or fall back to TCP: the path state machine of
 * net/udp_wire.h. */
#include "net/udp_wire.h"

#include <string.h>

void mesh_udp_path_cfg_default(mesh_udp_path_cfg *c)
{
  c->ping_ms = 500;
  c->probe_ms = 3000;
  c->quiet_ms = 1000;
  c->doubt_ms = 1000;
  c->dead_ms = 4000;
  c->backoff_min_ms = 5000;
  c->backoff_max_ms = 300000;
}

const char *mesh_udp_path_name(mesh_udp_path_state s)
{
  switch (s) {
  case MESH_UDP_PATH_PROBING:
    return "probing";
  case MESH_UDP_PATH_UP:
    return "up";
  case MESH_UDP_PATH_FALLBACK:
    return "fallback";
  }
  return "unknown";
}

/* The one place a path changes state; the caller logs what out says. */
static void set_state(mesh_udp_path *p, const mesh_udp_path_cfg *c, mesh_udp_path_state st,
                      mesh_time_ms now, mesh_udp_path_out *out)
{
  if (p->state == st)
    return;
  out->changed = true;
  out->from = p->state;
  p->state = st;
  p->since = now;
  p->doubt_since = 0;
  switch (st) {
  case MESH_UDP_PATH_PROBING:
    out->ping = true;
    p->last_ping = now;
    break;
  case MESH_UDP_PATH_UP:
    p->backoff = c->backoff_min_ms;
    break;
  case MESH_UDP_PATH_FALLBACK:
    p->retry_at = now + p->backoff;
    p->backoff = p->backoff * 2 < c->backoff_max_ms ? p->backoff * 2 : c->backoff_max_ms;
    break;
  }
}

void mesh_udp_path_start(mesh_udp_path *p, const mesh_udp_path_cfg *c, mesh_time_ms now,
                         mesh_udp_path_out *out)
{
  memset(out, 0, sizeof *out);
  memset(p, 0, sizeof *p);
  p->state = MESH_UDP_PATH_PROBING;
  p->since = now;
  p->backoff = c->backoff_min_ms;
  p->last_ping = now;
  out->ping = true;
}

void mesh_udp_path_on_rx(mesh_udp_path *p, const mesh_udp_path_cfg *c, mesh_time_ms now,
                         mesh_udp_type type, mesh_udp_path_out *out)
{
  memset(out, 0, sizeof *out);
  p->last_rx = now;
  p->doubt_since = 0;
  if (type == MESH_UDP_PING) {
    /* The peer is probing: it hears us only once we answer (the caller
     * pongs), and we know our packets reach it only from its answer to a
     * ping of ours, so ask at once rather than at our own next turn. */
    if (p->state == MESH_UDP_PATH_FALLBACK)
      set_state(p, c, MESH_UDP_PATH_PROBING, now, out);
    else if (p->state == MESH_UDP_PATH_PROBING && now - p->last_ping >= c->ping_ms / 4) {
      out->ping = true;
      p->last_ping = now;
    }
    return;
  }
  /* A pong answers our ping; data comes only from a peer whose own ping we
   * answered: either way both directions carry packets. */
  set_state(p, c, MESH_UDP_PATH_UP, now, out);
}

void mesh_udp_path_on_tx(mesh_udp_path *p, const mesh_udp_path_cfg *c, mesh_time_ms now)
{
  if (p->state == MESH_UDP_PATH_UP && p->doubt_since == 0 && now - p->last_rx >= c->quiet_ms)
    p->doubt_since = now;
}

void mesh_udp_path_fail(mesh_udp_path *p, const mesh_udp_path_cfg *c, mesh_time_ms now,
                        mesh_udp_path_out *out)
{
  memset(out, 0, sizeof *out);
  set_state(p, c, MESH_UDP_PATH_FALLBACK, now, out);
}

void mesh_udp_path_tick(mesh_udp_path *p, const mesh_udp_path_cfg *c, mesh_time_ms now,
                        mesh_udp_path_out *out)
{
  memset(out, 0, sizeof *out);
  switch (p->state) {
  case MESH_UDP_PATH_PROBING:
    if (now - p->since >= c->probe_ms) {
      set_state(p, c, MESH_UDP_PATH_FALLBACK, now, out);
      return;
    }
    break;
  case MESH_UDP_PATH_UP:
    if (p->doubt_since == 0 || now - p->doubt_since < c->doubt_ms)
      return;
    if (now - p->doubt_since >= c->dead_ms) {
      set_state(p, c, MESH_UDP_PATH_FALLBACK, now, out);
      return;
    }
    break;
  case MESH_UDP_PATH_FALLBACK:
    if (now >= p->retry_at)
      set_state(p, c, MESH_UDP_PATH_PROBING, now, out);
    return;
  }
  if (now - p->last_ping >= c->ping_ms) {
    out->ping = true;
    p->last_ping = now;
  }
}

bool mesh_udp_path_usable(const mesh_udp_path *p, const mesh_udp_path_cfg *c, mesh_time_ms now)
{
  if (p->state != MESH_UDP_PATH_UP)
    return false;
  /* In doubt past doubt_ms: the membership protocol must not lose probes to
   * a path that may be dead while the pings find out. */
  return p->doubt_since == 0 || now - p->doubt_since < c->doubt_ms;
}
