/*
 * rdma_net_bench: datagram round trips through meshd's peer network
 * (net/transport.h) with the RDMA transport attached (net/rdma.h), or TCP
 * alone, for the RDMA column of the transport benchmark (run in the rxe VM
 * by scripts/bench-transport-rdma).
 *
 *   rdma_net_bench serve --psk F --listen ADDR [--transport rdma|tcp]
 *                  [--rdma-device D] [--poll-us U] [--poll-budget-ms B]
 *       Echoes every message back on its channel and class. Prints
 *       "listening MULTIADDR/p2p/ID" first; exits on SIGTERM/SIGINT.
 *   rdma_net_bench bench --psk F --listen ADDR --connect ADDR --size S
 *                  --count N [--transport rdma|tcp] [--rdma-device D]
 *                  [--poll-us U] [--poll-budget-ms B]
 *       Waits until datagrams to the server take the wanted transport, then
 *       sends N datagrams of S bytes one at a time, each after the echo of
 *       the last (a lost one is sent again after a second, and counted).
 *       Prints "p50_us P avg_us A via T resent R" and exits 0, or why and 1.
 *
 * --poll-us and --poll-budget-ms set the RDMA transport's adaptive
 * completion polling (mesh_rdma_config poll_us, poll_budget_ms; the
 * defaults when not given). The bench side also prints "poll_us X
 * poll_completions Y budget_hits Z": how much it spun and what it found.
 */
#include "net/rdma.h"
#include "net/transport.h"
#include "src/base/err.h"
#include "src/base/log.h"
#include "src/daemon/loop.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

typedef struct bench {
  const char *psk, *listen, *connect, *transport, *device;
  long size, count;
  long poll_us, poll_budget_ms; /* -1: the transport's defaults */
  mesh_loop *loop;
  mesh_identity id;
  mesh_net *net;
  bool have_peer, running;
  mesh_peer_id other;
  uint8_t *buf;
  uint64_t *rtts;
  uint64_t t0;
  long done, resent;
  const char *via;
  int exit_code;
  const char *why;
  mesh_timer *timer;    /* route polling, then the resend timer */
  mesh_timer *deadline; /* the whole run */
} bench;

static uint64_t now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static mesh_time_ms bench_now(void *arg)
{
  return mesh_loop_now(arg);
}

static void finish(bench *b, int code, const char *why)
{
  b->exit_code = code;
  b->why = why;
  mesh_loop_stop(b->loop);
}

static void send_one(bench *b)
{
  b->t0 = now_us();
  int rc =
      mesh_net_send(b->net, &b->other, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, b->buf, (size_t)b->size);
  if (rc != 0 && rc != -ENOBUFS) {
    finish(b, 1, "send failed");
    return;
  }
  mesh_timer_arm(b->timer, 1000);
}

static void on_serve_msg(void *arg, const mesh_peer_id *from, uint64_t epoch, mesh_channel ch,
                         mesh_class cls, const uint8_t *buf, size_t len)
{
  bench *b = arg;
  int rc = mesh_net_send(b->net, from, ch, cls, buf, len);
  if (rc != 0)
    MESH_LOG_RL(MESH_LOG_WARN, "bench", "echo: %s", mesh_strerror(rc));
}

static void on_bench_msg(void *arg, const mesh_peer_id *from, uint64_t epoch, mesh_channel ch,
                         mesh_class cls, const uint8_t *buf, size_t len)
{
  bench *b = arg;
  if (!b->running || cls != MESH_CLASS_DATAGRAM || len != (size_t)b->size)
    return;
  b->rtts[b->done++] = now_us() - b->t0;
  const char *route = mesh_net_route(b->net, &b->other, MESH_CLASS_DATAGRAM);
  if (route == NULL || strcmp(route, b->via) != 0) {
    finish(b, 1, "the route changed during the run");
    return;
  }
  if (b->done == b->count) {
    finish(b, 0, NULL);
    return;
  }
  send_one(b);
}

/* Before the run: polls the route until datagrams take the wanted
 * transport. During it: a lost datagram is sent again. */
static void on_timer(void *arg, mesh_time_ms now)
{
  bench *b = arg;
  if (b->running) {
    b->resent++;
    send_one(b);
    return;
  }
  const char *route = b->have_peer ? mesh_net_route(b->net, &b->other, MESH_CLASS_DATAGRAM) : NULL;
  if (route != NULL && strcmp(route, b->via) == 0) {
    b->running = true;
    /* A few round trips first so that both sides are warm. */
    send_one(b);
    return;
  }
  mesh_timer_arm(b->timer, 20);
}

static void on_deadline(void *arg, mesh_time_ms now)
{
  bench *b = arg;
  finish(b, 1, b->running ? "timed out" : "the wanted transport never came up");
}

static void on_peer(void *arg, const mesh_net_peer_event *ev)
{
  bench *b = arg;
  if (!ev->up || b->connect == NULL || b->have_peer)
    return;
  b->have_peer = true;
  b->other = ev->peer;
}

static int cmp_u64(const void *x, const void *y)
{
  uint64_t a = *(const uint64_t *)x, c = *(const uint64_t *)y;
  return a < c ? -1 : a > c;
}

static int usage(void)
{
  fprintf(stderr,
          "usage: rdma_net_bench serve --psk F --listen ADDR [--transport rdma|tcp] "
          "[--rdma-device D]\n"
          "                      [--poll-us U] [--poll-budget-ms B]\n"
          "       rdma_net_bench bench --psk F --listen ADDR --connect ADDR --size S --count N\n"
          "                      [--transport rdma|tcp] [--rdma-device D]\n"
          "                      [--poll-us U] [--poll-budget-ms B]\n");
  return 2;
}

int main(int argc, char **argv)
{
  if (argc < 2 || sodium_init() < 0)
    return usage();
  const char *cmd = argv[1];
  bench b = {.transport = "rdma",
             .size = 64,
             .count = 1000,
             .poll_us = -1,
             .poll_budget_ms = -1,
             .exit_code = 1,
             .why = "stopped"};
  for (int i = 2; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (strcmp(k, "--psk") == 0)
      b.psk = v;
    else if (strcmp(k, "--listen") == 0)
      b.listen = v;
    else if (strcmp(k, "--connect") == 0)
      b.connect = v;
    else if (strcmp(k, "--transport") == 0)
      b.transport = v;
    else if (strcmp(k, "--rdma-device") == 0)
      b.device = v;
    else if (strcmp(k, "--size") == 0)
      b.size = strtol(v, NULL, 10);
    else if (strcmp(k, "--count") == 0)
      b.count = strtol(v, NULL, 10);
    else if (strcmp(k, "--poll-us") == 0)
      b.poll_us = strtol(v, NULL, 10);
    else if (strcmp(k, "--poll-budget-ms") == 0)
      b.poll_budget_ms = strtol(v, NULL, 10);
    else
      return usage();
  }
  bool serve = strcmp(cmd, "serve") == 0;
  if ((!serve && strcmp(cmd, "bench") != 0) || b.psk == NULL || b.listen == NULL ||
      (!serve && b.connect == NULL) || b.size < 1 || b.count < 1 || b.poll_us < -1 ||
      b.poll_us > 1000000 || b.poll_budget_ms < -1 || b.poll_budget_ms > 1000 ||
      (strcmp(b.transport, "rdma") != 0 && strcmp(b.transport, "tcp") != 0))
    return usage();
  b.via = b.transport;
  mesh_log_set_level(MESH_LOG_WARN);

  char err[256];
  mesh_psk psk;
  if (mesh_psk_load(b.psk, &psk, err, sizeof err) != 0) {
    fprintf(stderr, "rdma_net_bench: swarm key: %s\n", err);
    return 2;
  }
  if (mesh_identity_generate(&b.id) != 0 || mesh_loop_new(&b.loop) != 0)
    return 1;
  mesh_loop_handle_signals(b.loop, NULL, NULL, NULL);
  mesh_net_options opt;
  mesh_net_options_default(&opt);
  opt.identity = &b.id;
  opt.epoch = 1;
  opt.psk = psk;
  opt.base = mesh_loop_base(b.loop);
  opt.now = bench_now;
  opt.now_arg = b.loop;
  int rc = mesh_net_new(&opt, &b.net);
  if (rc != 0) {
    fprintf(stderr, "rdma_net_bench: %s\n", mesh_strerror(rc));
    return 1;
  }
  if (strcmp(b.transport, "rdma") == 0) {
    mesh_rdma_config rc_cfg;
    mesh_rdma_config_default(&rc_cfg);
    rc_cfg.required = true;
    rc_cfg.dev.device = b.device;
    if (b.poll_us >= 0)
      rc_cfg.poll_us = (uint32_t)b.poll_us;
    if (b.poll_budget_ms >= 0)
      rc_cfg.poll_budget_ms = (uint32_t)b.poll_budget_ms;
    mesh_multiaddr la;
    if (mesh_multiaddr_parse(b.listen, &la, NULL) == 0 && la.kind == MESH_MA_IP4)
      rc_cfg.dev.addr = la.host;
    rc = mesh_rdma_attach(b.net, &rc_cfg, err, sizeof err);
    if (rc != 0) {
      fprintf(stderr, "rdma_net_bench: %s\n", err);
      return 1;
    }
  }
  mesh_net_on_peer(b.net, on_peer, &b);
  mesh_net_on_message(b.net, serve ? on_serve_msg : on_bench_msg, &b);
  mesh_multiaddr bound;
  rc = mesh_net_listen(b.net, b.listen, &bound);
  if (rc != 0) {
    fprintf(stderr, "rdma_net_bench: listen %s: %s\n", b.listen, mesh_strerror(rc));
    return 1;
  }
  if (serve) {
    char text[MESH_MULTIADDR_TEXT_MAX], id[MESH_PEER_ID_TEXT_MAX];
    mesh_multiaddr_format(&bound, text, sizeof text);
    mesh_peer_id_to_text(&b.id.id, id, sizeof id);
    printf("listening %s/p2p/%s\n", text, id);
    fflush(stdout);
    b.exit_code = 0;
  } else {
    b.buf = calloc(1, (size_t)b.size);
    b.rtts = calloc((size_t)b.count, sizeof *b.rtts);
    if (b.buf == NULL || b.rtts == NULL || mesh_timer_new(b.loop, on_timer, &b, &b.timer) != 0 ||
        mesh_timer_new(b.loop, on_deadline, &b, &b.deadline) != 0)
      return 1;
    randombytes_buf(b.buf, (size_t)b.size);
    rc = mesh_net_dial(b.net, b.connect, NULL, 1);
    if (rc != 0) {
      fprintf(stderr, "rdma_net_bench: dial %s: %s\n", b.connect, mesh_strerror(rc));
      return 1;
    }
    mesh_timer_arm(b.timer, 20);
    mesh_timer_arm(b.deadline, 300000);
  }
  rc = mesh_loop_run(b.loop);
  if (!serve) {
    if (b.exit_code == 0) {
      uint64_t sum = 0;
      for (long i = 0; i < b.count; i++)
        sum += b.rtts[i];
      qsort(b.rtts, (size_t)b.count, sizeof *b.rtts, cmp_u64);
      printf("p50_us %.1f avg_us %.1f via %s resent %ld\n", (double)b.rtts[b.count / 2],
             (double)sum / (double)b.count, b.via, b.resent);
      mesh_rdma_stats st;
      if (mesh_rdma_stats_of(b.net, &st) == 0)
        printf("poll_us %" PRIu64 " poll_completions %" PRIu64 " budget_hits %" PRIu64 "\n",
               st.poll_us, st.poll_completions, st.poll_budget_hits);
    } else {
      printf("failed: %s (%ld of %ld)\n", b.why, b.done, b.count);
    }
    mesh_timer_free(b.timer);
    mesh_timer_free(b.deadline);
  }
  mesh_net_free(b.net);
  mesh_loop_free(b.loop);
  free(b.buf);
  free(b.rtts);
  return rc != 0 ? 1 : b.exit_code;
}
