/*
 * transport_peer: a small program around meshd's peer transport, for tests
 * and benchmarks that need peers in separate processes.
 *
 *   transport_peer keygen PSKFILE
 *   transport_peer serve --psk F [--listen ADDR] [--max-connections N]
 *                        [--handshake-timeout MS] [--frame-max BYTES]
 *       Echoes every message back to its sender on the same channel and
 *       class. Prints "listening MULTIADDR/p2p/ID" first; on SIGUSR1 prints
 *       its counters as one JSON line; exits 0 on SIGTERM/SIGINT.
 *   transport_peer ping --psk F --connect ADDR [--count N] [--max-size S]
 *                       [--seed X] [--timeout MS]
 *       Sends N stream messages (sizes 1..S, S included) and N datagrams,
 *       checks every echo byte for byte and in order; prints "ok N" and
 *       exits 0, or prints why and exits 1. Prints its counters last.
 *   transport_peer hold --psk F --connect ADDR --count N
 *       N peers, each under an identity made for the run, dial ADDR, finish
 *       their handshakes and then say nothing but keepalives: a key
 *       holder's throwaway identities that never join a view. Prints
 *       "holding N" once they are dialling; on SIGUSR1 prints
 *       {"up":U,"ups":X,"downs":Y} (connections up now, ever up, ended);
 *       exits 0 on SIGTERM/SIGINT.
 *   transport_peer bench --psk F --connect ADDR --size S --count N
 *                        --mode rtt|tput [--window W]
 *   transport_peer plain-serve --listen HOST:PORT
 *   transport_peer plain-bench --connect HOST:PORT --size S --count N
 *                              --mode rtt|tput [--window W]
 *       The same measurement over meshd's transport and over plain TCP
 *       (blocking sockets, 4-byte length prefix, no encryption): prints
 *       "p50_us P p99_us Q" (rtt) or "mbps M cpu_ms C" (tput: payload
 *       megabytes per second echoed, and the CPU milliseconds this client
 *       spent while measuring).
 *   transport_peer aead-speed --size S --count N
 *   transport_peer aead-roundtrip --size S --count N
 *       Speed of the frame cipher (XChaCha20-Poly1305 frames as
 *       net/frame.c seals them, on OpenSSL's ChaCha20-Poly1305): sealing
 *       S-byte frames, or sealing and opening them ("mbps M", payload
 *       megabytes per CPU second). Each echoed byte is sealed and opened twice,
 *       so this bounds any encrypted transport here.
 */
#include "net/frame.h"
#include "net/transport.h"
#include "src/base/clock.h"
#include "src/base/err.h"
#include "src/base/log.h"
#include "src/base/rng.h"
#include "src/daemon/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

typedef struct args {
  const char *psk, *listen, *connect, *mode;
  int max_connections;
  uint64_t handshake_timeout_ms, frame_max, timeout_ms;
  long count, max_size, size, window;
  uint64_t seed;
} args;

static int usage(void)
{
  fprintf(stderr,
          "usage: transport_peer keygen|serve|ping|hold|bench|plain-serve|plain-bench ...\n");
  return 2;
}

static int parse_args(int argc, char **argv, args *a)
{
  memset(a, 0, sizeof *a);
  a->listen = "/ip4/127.0.0.1/tcp/0";
  a->count = 100;
  a->max_size = 1 << 20;
  a->size = 64;
  a->window = 8;
  a->timeout_ms = 30000;
  a->mode = "rtt";
  for (int i = 2; i < argc; i++) {
    const char *k = argv[i];
    if (i + 1 >= argc)
      return -1;
    const char *v = argv[++i];
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    bool num = *v != '\0' && *end == '\0';
    if (strcmp(k, "--psk") == 0)
      a->psk = v;
    else if (strcmp(k, "--listen") == 0)
      a->listen = v;
    else if (strcmp(k, "--connect") == 0)
      a->connect = v;
    else if (strcmp(k, "--mode") == 0)
      a->mode = v;
    else if (!num)
      return -1;
    else if (strcmp(k, "--max-connections") == 0)
      a->max_connections = (int)n;
    else if (strcmp(k, "--handshake-timeout") == 0)
      a->handshake_timeout_ms = n;
    else if (strcmp(k, "--frame-max") == 0)
      a->frame_max = n;
    else if (strcmp(k, "--timeout") == 0)
      a->timeout_ms = n;
    else if (strcmp(k, "--count") == 0)
      a->count = (long)n;
    else if (strcmp(k, "--max-size") == 0)
      a->max_size = (long)n;
    else if (strcmp(k, "--size") == 0)
      a->size = (long)n;
    else if (strcmp(k, "--window") == 0)
      a->window = (long)n;
    else if (strcmp(k, "--seed") == 0)
      a->seed = n;
    else
      return -1;
  }
  return 0;
}

/* ---- the meshd side ---- */

typedef struct peer {
  args a;
  mesh_loop *loop;
  mesh_identity id;
  mesh_net *net;
  bool have_peer;
  mesh_peer_id other;
  int exit_code;
  /* ping */
  mesh_rng rng;
  long sent, echoed, dgrams_echoed;
  size_t cur_len;
  uint8_t *cur;
  /* bench */
  uint64_t *rtts;
  uint64_t t0, started_at, cpu_at; /* cpu_at: CPU time when the measurement began */
  long inflight, done;
  struct event *deadline, *usr1, *redial;
  bool failed;
  const char *why;
} peer;

static void print_counters(peer *p)
{
  const mesh_transport_counters *c = mesh_net_counters_of(p->net, "tcp");
  printf("{\"frames_sent\":%" PRIu64 ",\"bytes_sent\":%" PRIu64 ",\"frames_received\":%" PRIu64
         ",\"bytes_received\":%" PRIu64 ",\"connections_in\":%" PRIu64
         ",\"connections_open\":%" PRIu64 ",\"peers_up\":%" PRIu64 ",\"handshakes_ok\":%" PRIu64
         ",\"dropped\":{",
         c->frames_sent, c->bytes_sent, c->frames_received, c->bytes_received, c->connections_in,
         c->connections_open, c->peers_up, c->handshakes_ok);
  for (int i = 0; i < MESH_DROP__COUNT; i++)
    printf("%s\"%s\":%" PRIu64, i ? "," : "", mesh_net_drop_name((mesh_net_drop)i), c->dropped[i]);
  printf("}}\n");
  fflush(stdout);
}

static mesh_time_ms peer_now(void *arg)
{
  return mesh_loop_now(arg);
}

static uint64_t now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t cpu_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void finish(peer *p, int code, const char *why)
{
  p->exit_code = code;
  p->why = why;
  mesh_loop_stop(p->loop);
}

static void on_serve_msg(void *arg, const mesh_peer_id *from, uint64_t epoch, mesh_channel ch,
                         mesh_class cls, const uint8_t *buf, size_t len)
{
  peer *p = arg;
  int rc = mesh_net_send(p->net, from, ch, cls, buf, len);
  if (rc != 0)
    MESH_LOG_RL(MESH_LOG_WARN, "peer", "echo: %s", mesh_strerror(rc));
}

static void ping_next(peer *p)
{
  if (p->sent == p->a.count) {
    finish(p, 0, NULL);
    return;
  }
  /* Sizes: the largest first, then 1, then random. */
  size_t n = p->sent == 0   ? (size_t)p->a.max_size
             : p->sent == 1 ? 1
                            : 1 + (size_t)mesh_rng_below(&p->rng, (uint64_t)p->a.max_size);
  p->cur_len = n;
  for (size_t i = 0; i < n; i++)
    p->cur[i] = (uint8_t)mesh_rng_next(&p->rng);
  int rc = mesh_net_send(p->net, &p->other, MESH_CH_COORD, MESH_CLASS_STREAM, p->cur, n);
  if (rc == 0)
    rc = mesh_net_send(p->net, &p->other, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, p->cur,
                       n < 64 ? n : 64);
  if (rc != 0) {
    finish(p, 1, "send failed");
    return;
  }
  p->sent++;
}

static void on_ping_msg(void *arg, const mesh_peer_id *from, uint64_t epoch, mesh_channel ch,
                        mesh_class cls, const uint8_t *buf, size_t len)
{
  peer *p = arg;
  if (cls == MESH_CLASS_DATAGRAM) {
    p->dgrams_echoed++;
    return;
  }
  if (len != p->cur_len || memcmp(buf, p->cur, len) != 0) {
    finish(p, 1, "echo differs from what was sent");
    return;
  }
  p->echoed++;
  ping_next(p);
}

static void on_bench_msg(void *arg, const mesh_peer_id *from, uint64_t epoch, mesh_channel ch,
                         mesh_class cls, const uint8_t *buf, size_t len)
{
  peer *p = arg;
  if (len != (size_t)p->a.size) {
    finish(p, 1, "echo of the wrong size");
    return;
  }
  uint64_t t = now_us();
  if (strcmp(p->a.mode, "rtt") == 0)
    p->rtts[p->done] = t - p->t0;
  p->done++;
  p->inflight--;
  if (p->done == p->a.count) {
    finish(p, 0, NULL);
    return;
  }
  long want = strcmp(p->a.mode, "rtt") == 0 ? 1 : p->a.window;
  while (p->inflight < want && p->done + p->inflight < p->a.count) {
    p->t0 = now_us();
    if (mesh_net_send(p->net, &p->other, MESH_CH_COORD, MESH_CLASS_STREAM, p->cur,
                      (size_t)p->a.size) != 0) {
      finish(p, 1, "send failed");
      return;
    }
    p->inflight++;
  }
}

static void bench_start(peer *p)
{
  p->started_at = now_us();
  p->cpu_at = cpu_us();
  long want = strcmp(p->a.mode, "rtt") == 0 ? 1 : p->a.window;
  while (p->inflight < want && p->inflight < p->a.count) {
    p->t0 = now_us();
    mesh_net_send(p->net, &p->other, MESH_CH_COORD, MESH_CLASS_STREAM, p->cur, (size_t)p->a.size);
    p->inflight++;
  }
}

static bool bench_mode;

static void on_peer(void *arg, const mesh_net_peer_event *ev)
{
  peer *p = arg;
  if (!ev->up) {
    if (p->a.connect != NULL && p->have_peer)
      finish(p, 1, "peer disconnected");
    return;
  }
  if (p->a.connect == NULL || p->have_peer)
    return;
  p->have_peer = true;
  p->other = ev->peer;
  if (bench_mode)
    bench_start(p);
  else
    ping_next(p);
}

/* The transport makes one attempt per dial: until the deadline, a failed
 * one is tried again a moment later (the other side may still be starting). */
static void on_redial(evutil_socket_t fd, short what, void *arg)
{
  peer *p = arg;
  int rc = mesh_net_dial(p->net, p->a.connect, NULL, 1);
  if (rc != 0)
    finish(p, 1, "dial failed");
}

static void on_dial(void *arg, uint64_t token, int rc, const mesh_peer_id *who)
{
  peer *p = arg;
  if (rc == 0 || p->redial == NULL)
    return;
  struct timeval tv = {0, 100000};
  evtimer_add(p->redial, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
  finish(arg, 1, "timed out");
}

static void on_usr1(evutil_socket_t fd, short what, void *arg)
{
  print_counters(arg);
}

static int cmp_u64(const void *x, const void *y)
{
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return a < b ? -1 : a > b;
}

static int run_peer(const char *cmd, args *a)
{
  /* A client stopped by a signal before finishing has failed. */
  peer p = {.a = *a, .exit_code = strcmp(cmd, "serve") == 0 ? 0 : 1, .why = "stopped"};
  char err[256];
  mesh_psk psk;
  if (a->psk == NULL || mesh_psk_load(a->psk, &psk, err, sizeof err) != 0) {
    fprintf(stderr, "transport_peer: swarm key: %s\n", a->psk ? err : "--psk is required");
    return 2;
  }
  if (mesh_identity_generate(&p.id) != 0 || mesh_loop_new(&p.loop) != 0)
    return 1;
  mesh_loop_handle_signals(p.loop, NULL, NULL, NULL);
  mesh_net_options opt;
  mesh_net_options_default(&opt);
  opt.identity = &p.id;
  opt.epoch = 1;
  opt.psk = psk;
  opt.base = mesh_loop_base(p.loop);
  opt.now = peer_now;
  opt.now_arg = p.loop;
  if (a->max_connections > 0)
    opt.max_connections = a->max_connections;
  if (a->handshake_timeout_ms > 0)
    opt.handshake_timeout_ms = a->handshake_timeout_ms;
  if (a->frame_max > 0)
    opt.frame_max = (size_t)a->frame_max;
  int rc = mesh_net_new(&opt, &p.net);
  if (rc != 0) {
    fprintf(stderr, "transport_peer: %s\n", mesh_strerror(rc));
    return 1;
  }
  mesh_net_on_peer(p.net, on_peer, &p);
  p.usr1 = evsignal_new(mesh_loop_base(p.loop), SIGUSR1, on_usr1, &p);
  evsignal_add(p.usr1, NULL);
  if (strcmp(cmd, "serve") == 0) {
    mesh_multiaddr bound;
    mesh_net_on_message(p.net, on_serve_msg, &p);
    rc = mesh_net_listen(p.net, a->listen, &bound);
    if (rc != 0) {
      fprintf(stderr, "transport_peer: listen %s: %s\n", a->listen, mesh_strerror(rc));
      return 1;
    }
    char text[MESH_MULTIADDR_TEXT_MAX], id[MESH_PEER_ID_TEXT_MAX];
    mesh_multiaddr_format(&bound, text, sizeof text);
    mesh_peer_id_to_text(&p.id.id, id, sizeof id);
    printf("listening %s/p2p/%s\n", text, id);
    fflush(stdout);
  } else {
    if (a->connect == NULL)
      return usage();
    bench_mode = strcmp(cmd, "bench") == 0;
    size_t buf_len = bench_mode ? (size_t)a->size : (size_t)a->max_size;
    p.cur = calloc(1, buf_len > 0 ? buf_len : 1);
    p.rtts = calloc((size_t)a->count + 1, sizeof *p.rtts);
    if (p.cur == NULL || p.rtts == NULL)
      return 1;
    mesh_rng_seed(&p.rng, a->seed);
    mesh_net_on_message(p.net, bench_mode ? on_bench_msg : on_ping_msg, &p);
    p.redial = evtimer_new(mesh_loop_base(p.loop), on_redial, &p);
    mesh_net_on_dial(p.net, on_dial, &p);
    rc = p.redial == NULL ? -ENOMEM : mesh_net_dial(p.net, a->connect, NULL, 1);
    if (rc != 0) {
      fprintf(stderr, "transport_peer: dial %s: %s\n", a->connect, mesh_strerror(rc));
      return 1;
    }
    p.deadline = evtimer_new(mesh_loop_base(p.loop), on_deadline, &p);
    struct timeval tv = {(time_t)(a->timeout_ms / 1000),
                         (suseconds_t)(a->timeout_ms % 1000) * 1000};
    evtimer_add(p.deadline, &tv);
  }
  rc = mesh_loop_run(p.loop);
  if (strcmp(cmd, "ping") == 0) {
    if (p.exit_code == 0)
      printf("ok %ld\n", p.echoed);
    else
      printf("failed: %s (%ld of %ld echoed)\n", p.why, p.echoed, a->count);
  } else if (bench_mode && p.exit_code == 0) {
    if (strcmp(a->mode, "rtt") == 0) {
      qsort(p.rtts, (size_t)a->count, sizeof *p.rtts, cmp_u64);
      printf("p50_us %.1f p99_us %.1f\n", (double)p.rtts[a->count / 2],
             (double)p.rtts[(a->count * 99) / 100]);
    } else {
      double secs = (double)(now_us() - p.started_at) / 1e6;
      printf("mbps %.1f cpu_ms %.1f\n", (double)a->count * (double)a->size / secs / 1e6,
             (double)(cpu_us() - p.cpu_at) / 1e3);
    }
  } else if (bench_mode) {
    printf("failed: %s\n", p.why);
  }
  print_counters(&p);
  if (p.deadline != NULL)
    event_free(p.deadline);
  if (p.redial != NULL)
    event_free(p.redial);
  event_free(p.usr1);
  mesh_net_free(p.net);
  mesh_loop_free(p.loop);
  free(p.cur);
  free(p.rtts);
  return rc != 0 ? 1 : p.exit_code;
}

/* ---- hold: throwaway identities ---- */

typedef struct hold {
  long up, ups, downs; /* connections up now, ever up, ended */
} hold;

typedef struct holder {
  mesh_identity id;
  mesh_net *net;
  hold *h;
  bool busy; /* a dial under way, or connected: no new dial */
} holder;

/* A holder whose connection is refused or closed dials again (on the next
 * tick of the redial timer), as a flooding key holder would. */
static void on_hold_peer(void *arg, const mesh_net_peer_event *ev)
{
  holder *o = arg;
  if (ev->replaced)
    return;
  if (ev->up) {
    o->h->up++;
    o->h->ups++;
  } else {
    o->h->up--;
    o->h->downs++;
    o->busy = false;
  }
}

static void on_hold_dial(void *arg, uint64_t token, int rc, const mesh_peer_id *who)
{
  holder *o = arg;
  if (rc != 0)
    o->busy = false;
}

typedef struct hold_run {
  holder *hs;
  long n;
  const char *connect;
  struct event *tick;
} hold_run;

static void on_hold_tick(evutil_socket_t fd, short what, void *arg)
{
  hold_run *r = arg;
  for (long i = 0; i < r->n; i++) {
    if (r->hs[i].busy)
      continue;
    r->hs[i].busy = mesh_net_dial(r->hs[i].net, r->connect, NULL, 1) == 0;
  }
  struct timeval tv = {0, 100000};
  evtimer_add(r->tick, &tv);
}

static void on_hold_usr1(evutil_socket_t fd, short what, void *arg)
{
  const hold *h = arg;
  printf("{\"up\":%ld,\"ups\":%ld,\"downs\":%ld}\n", h->up, h->ups, h->downs);
  fflush(stdout);
}

/* Every holder is a mesh_net of its own (its own identity) on one loop. */
static int run_hold(const args *a)
{
  char err[256];
  mesh_psk psk;
  if (a->psk == NULL || a->connect == NULL || a->count < 1 ||
      mesh_psk_load(a->psk, &psk, err, sizeof err) != 0) {
    fprintf(stderr, "transport_peer hold: --psk, --connect and --count are required\n");
    return 2;
  }
  hold h = {0};
  mesh_loop *loop = NULL;
  struct event *usr1 = NULL;
  holder *hs = calloc((size_t)a->count, sizeof *hs);
  hold_run run = {.hs = hs, .n = a->count, .connect = a->connect};
  int rc = 1;
  if (hs == NULL || mesh_loop_new(&loop) != 0)
    goto out;
  mesh_loop_handle_signals(loop, NULL, NULL, NULL);
  for (long i = 0; i < a->count; i++) {
    mesh_net_options opt;
    mesh_net_options_default(&opt);
    if (mesh_identity_generate(&hs[i].id) != 0)
      goto out;
    opt.identity = &hs[i].id;
    opt.epoch = 1;
    opt.psk = psk;
    opt.base = mesh_loop_base(loop);
    opt.now = peer_now;
    opt.now_arg = loop;
    int e = mesh_net_new(&opt, &hs[i].net);
    hs[i].h = &h;
    if (e == 0) {
      mesh_net_on_peer(hs[i].net, on_hold_peer, &hs[i]);
      mesh_net_on_dial(hs[i].net, on_hold_dial, &hs[i]);
    }
    if (e != 0) {
      fprintf(stderr, "transport_peer hold: %s\n", mesh_strerror(e));
      goto out;
    }
  }
  run.tick = evtimer_new(mesh_loop_base(loop), on_hold_tick, &run);
  if (run.tick == NULL)
    goto out;
  on_hold_tick(-1, 0, &run);
  usr1 = evsignal_new(mesh_loop_base(loop), SIGUSR1, on_hold_usr1, &h);
  if (usr1 == NULL || evsignal_add(usr1, NULL) != 0)
    goto out;
  printf("holding %ld\n", a->count);
  fflush(stdout);
  rc = mesh_loop_run(loop) != 0;
out:
  if (usr1 != NULL)
    event_free(usr1);
  if (run.tick != NULL)
    event_free(run.tick);
  if (hs != NULL)
    for (long i = 0; i < a->count; i++)
      mesh_net_free(hs[i].net);
  free(hs);
  if (loop != NULL)
    mesh_loop_free(loop);
  sodium_memzero(&psk, sizeof psk);
  return rc;
}

/* ---- plain TCP baseline ---- */

static int parse_hostport(const char *s, struct sockaddr_in *sa)
{
  char host[64];
  const char *colon = strrchr(s, ':');
  if (colon == NULL || (size_t)(colon - s) >= sizeof host)
    return -1;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)strtoul(colon + 1, NULL, 10));
  return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static int io_all(int fd, void *buf, size_t n, bool rd)
{
  uint8_t *p = buf;
  while (n > 0) {
    ssize_t k = rd ? read(fd, p, n) : write(fd, p, n);
    if (k <= 0) {
      if (k < 0 && errno == EINTR)
        continue;
      return -1;
    }
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

static int plain_serve(args *a)
{
  struct sockaddr_in sa;
  const char *listen_at = a->listen[0] == '/' ? "127.0.0.1:0" : a->listen;
  if (parse_hostport(listen_at, &sa) != 0)
    return usage();
  int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 16) != 0)
    return 1;
  socklen_t sl = sizeof sa;
  getsockname(lfd, (struct sockaddr *)&sa, &sl);
  printf("listening 127.0.0.1:%u\n", (unsigned)ntohs(sa.sin_port));
  fflush(stdout);
  uint8_t *buf = malloc(64u << 20);
  if (buf == NULL)
    return 1;
  for (;;) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
      continue;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (;;) {
      uint8_t h[4];
      if (io_all(fd, h, 4, true) != 0)
        break;
      uint32_t n = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
      if (n > (64u << 20) - 4)
        break;
      memcpy(buf, h, 4);
      if (io_all(fd, buf + 4, n, true) != 0 || io_all(fd, buf, n + 4, false) != 0)
        break;
    }
    close(fd);
  }
}

static int plain_bench(args *a)
{
  struct sockaddr_in sa;
  if (a->connect == NULL || parse_hostport(a->connect, &sa) != 0)
    return usage();
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
    return 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  size_t n = (size_t)a->size;
  uint8_t *msg = calloc(1, n + 4), *in = malloc(n + 4);
  uint64_t *rtts = calloc((size_t)a->count + 1, sizeof *rtts);
  if (msg == NULL || in == NULL || rtts == NULL)
    return 1;
  msg[0] = (uint8_t)(n >> 24);
  msg[1] = (uint8_t)(n >> 16);
  msg[2] = (uint8_t)(n >> 8);
  msg[3] = (uint8_t)n;
  bool rtt = strcmp(a->mode, "rtt") == 0;
  long window = rtt ? 1 : a->window;
  uint64_t start = now_us(), cpu_start = cpu_us();
  long sent = 0, done = 0;
  while (done < a->count) {
    /* Keep the window full, then take one echo. A window of messages fits
     * the socket buffers for the sizes measured, so this cannot deadlock. */
    while (sent - done < window && sent < a->count) {
      if (rtt)
        rtts[sent] = now_us();
      if (io_all(fd, msg, n + 4, false) != 0)
        return 1;
      sent++;
    }
    if (io_all(fd, in, n + 4, true) != 0)
      return 1;
    if (rtt)
      rtts[done] = now_us() - rtts[done];
    done++;
  }
  if (rtt) {
    qsort(rtts, (size_t)a->count, sizeof *rtts, cmp_u64);
    printf("p50_us %.1f p99_us %.1f\n", (double)rtts[a->count / 2],
           (double)rtts[(a->count * 99) / 100]);
  } else {
    double secs = (double)(now_us() - start) / 1e6;
    printf("mbps %.1f cpu_ms %.1f\n", (double)a->count * (double)n / secs / 1e6,
           (double)(cpu_us() - cpu_start) / 1e3);
  }
  close(fd);
  free(msg);
  free(in);
  free(rtts);
  return 0;
}

/* Seals size-byte frames (one frame each, as a chunk of that size would
 * travel) with the frame cipher the transport uses, and opens them again
 * when open is set. Timed in CPU time, so that a busy machine shows the
 * cipher's speed rather than its share of the CPUs. */
static int aead_speed(args *a, bool open)
{
  size_t n = (size_t)a->size;
  uint8_t *src = calloc(1, n + 1), *wire = malloc(mesh_frame_wire_size(n));
  if (src == NULL || wire == NULL)
    return 1;
  mesh_frame_dir tx = {.counter = 0}, rx;
  randombytes_buf(tx.key, sizeof tx.key);
  rx = tx;
  uint64_t start = cpu_us();
  for (long i = 0; i < a->count; i++) {
    mesh_frame f = {.type = MESH_FRAME_DATA,
                    .channel = MESH_CH_COORD,
                    .cls = MESH_CLASS_STREAM,
                    .flags = MESH_FRAME_FIRST | MESH_FRAME_LAST,
                    .total = (uint32_t)n,
                    .payload = src,
                    .len = n};
    size_t wlen;
    mesh_frame g;
    if (mesh_frame_seal(&tx, &f, wire, mesh_frame_wire_size(n), &wlen) != 0 ||
        (open && mesh_frame_open(&rx, wire, wlen, &g) != 0))
      return 1;
  }
  double secs = (double)(cpu_us() - start) / 1e6;
  printf("mbps %.1f\n", (double)a->count * (double)n / secs / 1e6);
  free(src);
  free(wire);
  return 0;
}

int main(int argc, char **argv)
{
  if (argc < 2 || sodium_init() < 0)
    return usage();
  mesh_log_set_level(MESH_LOG_WARN);
  const char *cmd = argv[1];
  if (strcmp(cmd, "keygen") == 0) {
    char err[256];
    if (argc != 3)
      return usage();
    if (mesh_psk_generate_file(argv[2], err, sizeof err) != 0) {
      fprintf(stderr, "transport_peer: %s\n", err);
      return 1;
    }
    return 0;
  }
  args a;
  if (parse_args(argc, argv, &a) != 0)
    return usage();
  if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "ping") == 0 || strcmp(cmd, "bench") == 0)
    return run_peer(cmd, &a);
  if (strcmp(cmd, "hold") == 0)
    return run_hold(&a);
  if (strcmp(cmd, "plain-serve") == 0)
    return plain_serve(&a);
  if (strcmp(cmd, "plain-bench") == 0)
    return plain_bench(&a);
  if (strcmp(cmd, "aead-speed") == 0)
    return aead_speed(&a, false);
  if (strcmp(cmd, "aead-roundtrip") == 0)
    return aead_speed(&a, true);
  return usage();
}
