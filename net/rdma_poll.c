/*
 * Completions of the RDMA transport: the completion channel, and busy-polling
 * the completion queue while datagrams flow.
 *
 * Adaptive completion polling: a datagram (not a bulk frame) sent or
 * received over RDMA makes
 * the completion queue "hot" for poll_us; while hot, the loop busy-polls it
 * in slices (a zero-delay timer between slices lets every other event run)
 * instead of sleeping until the completion channel wakes it, which on an
 * idle CPU costs a wake-up far longer than the round trip itself. While it
 * polls, the queue is left unarmed, as a polling-only program (perftest)
 * leaves it: an armed queue makes the kernel schedule notification work
 * (rxe: a tasklet) for every completion, which then competes with the
 * polling process for the CPU. It is armed again, and drained once more,
 * when the polling ends. The time spent is capped per second
 * (poll_budget_ms); keepalives alone never heat the queue, so an idle node
 * does not spin.
 */
#include "net/rdma_internal.h"

#include "src/base/err.h"
#include "src/base/log.h"

#include <time.h>

#define SPIN_SLICE_US 200   /* busy-poll at most this long per turn of the loop */
#define SPIN_CLOCK_EVERY 16 /* polls between clock reads within a slice */

static uint64_t mono_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void spin_arm(rstate *s)
{
  static const struct timeval zero = {0, 0};
  if (!s->spin_armed && evtimer_add(s->spin_ev, &zero) == 0)
    s->spin_armed = true;
}

/* Datagram traffic over RDMA: an answer may follow, so keep polling. The
 * window starts at the busy-poll's next clock reading (clock reads are not
 * free on every machine, and this runs for every datagram). */
void rdma_spin_kick(rstate *s)
{
  if (s->cfg.poll_us == 0 || s->cfg.poll_budget_ms == 0 || s->dev_failed)
    return;
  s->kicked = true;
  spin_arm(s);
}

static void take_kick(rstate *s, uint64_t now_us)
{
  if (!s->kicked)
    return;
  s->kicked = false;
  s->hot_until_us = now_us + s->cfg.poll_us;
}

/* A full poll: notifications taken, the queue armed again and drained,
 * asynchronous events read. What the loop does whenever it is not
 * busy-polling. */
static void poll_and_arm(rstate *s)
{
  mesh_rdma_handler h = {
      .recv = rdma_on_recv, .error = rdma_on_qp_error, .port = rdma_on_port, .arg = s};
  int rc = mesh_rdma_dev_poll(s->dev, &h);
  rdma_apply_repoints(s);
  if (rc >= 0 || s->dev_failed) {
    rdma_bulk_pump_all(s); /* send completions freed buffers */
    return;
  }
  /* The device itself is gone (its link deleted, the driver unloaded): stop
   * watching its fds, which would stay readable, and put every peer on TCP
   * for good. */
  s->dev_failed = true;
  event_del(s->cq_ev);
  event_del(s->async_ev);
  event_del(s->spin_ev);
  s->spin_armed = false;
  LOG_WARN("rdma", "RDMA device %s failed (%s): every peer on TCP from now on",
           mesh_rdma_dev_name(s->dev), mesh_strerror(rc));
  mesh_time_ms now = mesh_net_now(s->net);
  for (int i = 0; i < s->cfg.dev.max_qps; i++) {
    rpeer *p = &s->peers[i];
    if (p->used && p->have_peer && p->path != MESH_RDMA_PATH_FALLBACK)
      rdma_set_path(s, p, MESH_RDMA_PATH_FALLBACK, now, "device failed");
  }
}

void rdma_on_cq(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  (void)what;
  rstate *s = arg;
  if (s->polling) {
    /* The busy-poll handles the completions; it arms the queue when done. */
    mesh_rdma_handler h = {
        .recv = rdma_on_recv, .error = rdma_on_qp_error, .port = rdma_on_port, .arg = s};
    mesh_rdma_dev_events(s->dev, &h);
    return;
  }
  poll_and_arm(s);
}

/* One slice of busy-polling; schedules the next while the queue is hot and
 * the second's budget lasts. */
void rdma_on_spin(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  (void)what;
  rstate *s = arg;
  s->spin_armed = false;
  if (s->dev_failed)
    return;
  s->polling = true;
  uint64_t start = mono_us();
  take_kick(s, start);
  if (start - s->budget_start_us >= 1000000u) {
    s->budget_start_us = start;
    s->budget_used_us = 0;
  }
  uint64_t budget = (uint64_t)s->cfg.poll_budget_ms * 1000u;
  if (s->budget_used_us >= budget) {
    s->stats.poll_budget_hits++;
    s->polling = false;
    poll_and_arm(s); /* the completion channel wakes the loop as before */
    return;
  }
  uint64_t end = start + SPIN_SLICE_US;
  if (end > start + (budget - s->budget_used_us))
    end = start + (budget - s->budget_used_us);
  mesh_rdma_handler h = {
      .recv = rdma_on_recv, .error = rdma_on_qp_error, .port = rdma_on_port, .arg = s};
  uint64_t t = start;
  for (unsigned i = 1;; i++) {
    int n = mesh_rdma_dev_spin(s->dev, &h);
    if (n < 0)
      break; /* the completion channel's poll reports the failure */
    if (n > 0) {
      s->stats.poll_completions += (uint64_t)n;
      rdma_apply_repoints(s);
      if (s->dev_failed)
        return;
      rdma_bulk_pump_all(s);
    }
    if (i % SPIN_CLOCK_EVERY == 0) {
      t = mono_us();
      /* A datagram handled above may have made the queue hot again. */
      take_kick(s, t);
      if (t >= end || t >= s->hot_until_us)
        break;
    }
  }
  s->budget_used_us += t - start;
  s->stats.poll_us += t - start;
  take_kick(s, t);
  if (t < s->hot_until_us) {
    spin_arm(s);
    return;
  }
  /* Cold again: back to sleeping on the channel (a completion that landed
   * since the last poll is found by the drain after arming). */
  s->polling = false;
  poll_and_arm(s);
}
