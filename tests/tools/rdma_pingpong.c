/*
 * rdma_pingpong: exercises net/rdma.h between two processes, each on its own
 * RDMA device (run inside the rxe VM, tests/rxe/).
 *
 *   rdma_pingpong server --dev rxe1 --addr 10.88.0.1 --port 7000 [--buf N]
 *   rdma_pingpong client --dev rxe2 --addr 10.88.0.2 --server 10.88.0.1:7000
 *                 [--buf N] [--test sizes|attack|break|bench|all]
 *                 [--sizes 64,4096] [--iters N] [--step N] [--spin]
 *                 [--expect-frame N] [--cipher aes-256-gcm|chacha20-poly1305]
 *
 * The two exchange their queue-pair attributes (proto/rdma.proto) over a TCP
 * connection, derive the frame keys from them (mesh_rdma_link_init), move
 * their UC queue pairs to RTS, and the server echoes every data frame it can
 * open. The TCP connection stays open for control: at the end the client
 * asks for the server's counters and checks them against what it did.
 *
 *   sizes   every payload size (every --step-th) from 0 to the largest frame
 *           arrives intact
 *           (content checked both ways, the largest always tried); one
 *           byte more is refused locally; with --expect-frame, the frame
 *           size agreed from both sides' --buf must be N (the smaller)
 *
 * --cipher seals the frames with that cipher (both sides must name the
 * same one, as meshd's handshake makes them).
 *   attack  a replayed frame, a flipped ciphertext byte, a changed counter
 *           and a truncated frame are dropped and counted by the server;
 *           two frames sent out of order are both accepted
 *   break   the client's queue pair is forced into the error state: the
 *           error handler fires (the signal to fall back to TCP); after a
 *           reset the path works again
 *   bench   round-trip time per size (median and mean over --iters), waiting
 *           on the completion channel as meshd does (--spin: busy-polling)
 *
 * Exit status 0 when every check held; every failure prints one line.
 */
#include "net/rdma.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 3000 /* longest wait for one echo (emulated machines are slow) */
#define MAX_RETRIES 3

/* --cipher: the frame cipher of the link (meshd's handshake agrees one). */
static mesh_frame_cipher link_cipher = MESH_FRAME_CHACHA20_POLY1305;

typedef struct pp {
  mesh_rdma_dev *dev;
  mesh_rdma_qp *qp;
  mesh_rdma_link link;
  int tcp;
  bool spin;
  /* What the handler saw. */
  uint8_t *rx; /* last opened payload (copied) */
  size_t rx_len;
  int rx_pending; /* echoes arrived and not yet taken (rx holds the last) */
  uint64_t ok, replay, auth, malformed, errors, other;
  bool echo;     /* server: echo data frames */
  uint8_t *wire; /* sealing buffer */
  size_t wire_cap;
} pp;

static int failures;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      failures++;                                                                                  \
      fprintf(stderr, "rdma_pingpong: FAIL %s:%d: ", __func__, __LINE__);                          \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
    }                                                                                              \
  } while (0)

static double now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static const mesh_psk test_psk = {.key = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                          12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                          23, 24, 25, 26, 27, 28, 29, 30, 31, 32}};

static int send_frame(pp *p, uint8_t type, const uint8_t *payload, size_t len)
{
  mesh_frame f = {.type = type,
                  .channel = 1,
                  .cls = 0,
                  .flags = MESH_FRAME_FIRST | MESH_FRAME_LAST,
                  .total = (uint32_t)len,
                  .payload = payload,
                  .len = len};
  size_t n;
  int rc = mesh_rdma_link_seal(&p->link, &f, p->wire, p->wire_cap, &n);
  if (rc != 0)
    return rc;
  return mesh_rdma_qp_send(p->qp, p->wire, n);
}

static void on_recv(void *arg, mesh_rdma_qp *qp, void *qp_arg, uint8_t *buf, size_t len)
{
  (void)qp;
  (void)qp_arg;
  pp *p = arg;
  mesh_frame f;
  switch (mesh_rdma_link_open(&p->link, buf, len, &f)) {
  case MESH_RDMA_OK:
    break;
  case MESH_RDMA_REPLAY:
    p->replay++;
    return;
  case MESH_RDMA_AUTH:
    p->auth++;
    return;
  case MESH_RDMA_MALFORMED:
    p->malformed++;
    return;
  }
  if (f.type != MESH_FRAME_DATA) {
    p->other++;
    return;
  }
  p->ok++;
  if (p->echo) {
    int rc = send_frame(p, MESH_FRAME_DATA, f.payload, f.len);
    if (rc != 0)
      fprintf(stderr, "rdma_pingpong: echo of %zu bytes: %s\n", f.len, strerror(-rc));
    return;
  }
  memcpy(p->rx, f.payload, f.len);
  p->rx_len = f.len;
  p->rx_pending++;
}

static void on_error(void *arg, mesh_rdma_qp *qp, void *qp_arg, int err, const char *what)
{
  (void)qp;
  (void)qp_arg;
  pp *p = arg;
  p->errors++;
  fprintf(stderr, "rdma_pingpong: queue pair failed: %s (%s)\n", what, strerror(-err));
}

static int pump(pp *p, int timeout_ms)
{
  mesh_rdma_handler h = {.recv = on_recv, .error = on_error, .arg = p};
  if (!p->spin) {
    struct pollfd fds[2] = {{.fd = mesh_rdma_dev_fd(p->dev), .events = POLLIN},
                            {.fd = mesh_rdma_dev_async_fd(p->dev), .events = POLLIN}};
    int n = poll(fds, 2, timeout_ms);
    if (n < 0)
      return -errno;
    if (n == 0)
      return 0;
    return mesh_rdma_dev_poll(p->dev, &h);
  }
  /* Busy-polling leaves the queue unarmed, as perftest does (and meshd
   * while it polls): no notification work in the kernel per completion. */
  return mesh_rdma_dev_spin(p->dev, &h);
}

/* Waits for the next echoed payload, up to ms. true when one came. */
static bool wait_echo(pp *p, int ms)
{
  double deadline = now_us() + ms * 1000.0;
  while (p->rx_pending == 0) {
    double left = (deadline - now_us()) / 1000.0;
    if (left <= 0)
      return false;
    if (pump(p, left < 1 ? 1 : (int)left) < 0)
      return false;
  }
  p->rx_pending--;
  return true;
}

static void fill(uint8_t *b, size_t len, uint32_t seed)
{
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b[i] = (uint8_t)x;
  }
}

/* One round trip of len bytes; retries a lost one. -1 when it never came
 * back, 1 when it came back different, 0 intact. *lost counts retries. */
static int roundtrip(pp *p, uint8_t *buf, size_t len, uint32_t seed, uint64_t *lost)
{
  fill(buf, len, seed);
  for (int t = 0; t <= MAX_RETRIES; t++) {
    int rc = send_frame(p, MESH_FRAME_DATA, buf, len);
    while (rc == -ENOBUFS) { /* sends still completing */
      pump(p, 10);
      rc = send_frame(p, MESH_FRAME_DATA, buf, len);
    }
    if (rc != 0) {
      fprintf(stderr, "rdma_pingpong: send of %zu bytes: %s\n", len, strerror(-rc));
      return -1;
    }
    if (wait_echo(p, WAIT_MS))
      return p->rx_len == len && memcmp(p->rx, buf, len) == 0 ? 0 : 1;
    (*lost)++;
  }
  return -1;
}

/* --- TCP bootstrap and control --- */

static int write_all(int fd, const void *buf, size_t len)
{
  const uint8_t *b = buf;
  while (len > 0) {
    ssize_t n = write(fd, b, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    b += n;
    len -= (size_t)n;
  }
  return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
  uint8_t *b = buf;
  while (len > 0) {
    ssize_t n = read(fd, b, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    b += n;
    len -= (size_t)n;
  }
  return 0;
}

static int exchange(pp *p, bool dialer, const mesh_rdma_attr *local, const uint8_t sk[32])
{
  uint8_t ours[MESH_RDMA_ATTR_MAX], theirs[MESH_RDMA_ATTR_MAX];
  size_t ours_len;
  if (mesh_rdma_attr_encode(local, ours, sizeof ours, &ours_len) != 0)
    return -1;
  uint8_t hdr[2] = {(uint8_t)(ours_len >> 8), (uint8_t)ours_len};
  if (write_all(p->tcp, hdr, 2) != 0 || write_all(p->tcp, ours, ours_len) != 0)
    return -1;
  if (read_all(p->tcp, hdr, 2) != 0)
    return -1;
  size_t theirs_len = ((size_t)hdr[0] << 8) | hdr[1];
  if (theirs_len > sizeof theirs || read_all(p->tcp, theirs, theirs_len) != 0)
    return -1;
  mesh_rdma_attr remote;
  int rc = mesh_rdma_attr_decode(theirs, theirs_len, &remote);
  if (rc != 0) {
    fprintf(stderr, "rdma_pingpong: peer attributes: %s\n", strerror(-rc));
    return -1;
  }
  rc = mesh_rdma_link_init(&p->link, dialer, &test_psk, sk, local->kx_public, remote.kx_public,
                           ours, ours_len, theirs, theirs_len);
  if (rc != 0)
    return -1;
  p->link.tx.cipher = (uint8_t)link_cipher;
  p->link.rx.cipher = (uint8_t)link_cipher;
  rc = mesh_rdma_qp_connect(p->qp, &remote);
  if (rc != 0) {
    fprintf(stderr, "rdma_pingpong: connecting the queue pair: %s\n", strerror(-rc));
    return -1;
  }
  /* Both sides are at RTS before either sends: a frame sent to a queue
   * pair still in INIT would be dropped. */
  uint8_t go = 'g';
  if (write_all(p->tcp, &go, 1) != 0 || read_all(p->tcp, &go, 1) != 0)
    return -1;
  return 0;
}

static int setup(pp *p, const char *dev, const char *addr, uint32_t buf_size)
{
  mesh_rdma_dev_options o;
  mesh_rdma_dev_options_default(&o);
  o.device = dev;
  o.addr = addr;
  if (buf_size != 0)
    o.buf_size = buf_size;
  char why[256];
  int rc = mesh_rdma_dev_open(&o, &p->dev, why, sizeof why);
  if (rc != 0) {
    fprintf(stderr, "rdma_pingpong: %s\n", why);
    return rc;
  }
  p->wire_cap = o.buf_size + MESH_FRAME_OVERHEAD + 64;
  p->wire = malloc(p->wire_cap);
  p->rx = malloc(p->wire_cap);
  if (p->wire == NULL || p->rx == NULL)
    return -ENOMEM;
  return 0;
}

__attribute__((noreturn)) static void usage(void)
{
  fprintf(stderr, "usage: rdma_pingpong server --dev D --addr A --port P [--buf N]\n"
                  "       rdma_pingpong client --dev D --addr A --server HOST:PORT [--buf N]\n"
                  "                     [--test sizes|attack|break|bench|all] [--sizes 64,4096]\n"
                  "                     [--iters N] [--step N] [--spin] [--expect-frame N]\n"
                  "       (either) [--cipher aes-256-gcm|chacha20-poly1305]\n");
  exit(2);
}

static void stats_line(pp *p, char *out, size_t cap)
{
  snprintf(out, cap, "ok=%llu replay=%llu auth=%llu malformed=%llu errors=%llu\n",
           (unsigned long long)p->ok, (unsigned long long)p->replay, (unsigned long long)p->auth,
           (unsigned long long)p->malformed, (unsigned long long)p->errors);
}

static int run_server(pp *p, const char *addr, int port)
{
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, addr, &sa.sin_addr);
  if (bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 1) != 0) {
    perror("rdma_pingpong: listen");
    return 1;
  }
  printf("listening %s:%d\n", addr, port);
  fflush(stdout);
  p->tcp = accept(ls, NULL, NULL);
  close(ls);
  if (p->tcp < 0)
    return 1;
  mesh_rdma_attr local;
  uint8_t sk[32];
  if (mesh_rdma_qp_new(p->dev, 0x123456, NULL, &p->qp, &local) != 0)
    return 1;
  mesh_rdma_kx_keypair(local.kx_public, sk);
  if (exchange(p, false, &local, sk) != 0)
    return 1;
  p->echo = true;
  unsigned spins = 0;
  for (;;) {
    mesh_rdma_handler h = {.recv = on_recv, .error = on_error, .arg = p};
    struct pollfd fds[3] = {{.fd = mesh_rdma_dev_fd(p->dev), .events = POLLIN},
                            {.fd = mesh_rdma_dev_async_fd(p->dev), .events = POLLIN},
                            {.fd = p->tcp, .events = POLLIN}};
    if (p->spin) {
      mesh_rdma_dev_spin(p->dev, &h);
      /* The control connection is looked at now and then: a system call
       * per poll would cost more than the poll. */
      if (++spins % 256 != 0 || poll(&fds[2], 1, 0) <= 0)
        continue;
    } else if (poll(fds, 3, -1) < 0) {
      continue;
    }
    if (fds[0].revents || fds[1].revents)
      mesh_rdma_dev_poll(p->dev, &h);
    if (fds[2].revents) {
      uint8_t cmd;
      if (read_all(p->tcp, &cmd, 1) != 0)
        break;
      if (cmd == 'q') {
        mesh_rdma_dev_poll(p->dev, &h);
        char line[200];
        stats_line(p, line, sizeof line);
        write_all(p->tcp, line, strlen(line));
        break;
      }
    }
  }
  return 0;
}

static int server_stats(pp *p, uint64_t *ok, uint64_t *replay, uint64_t *auth, uint64_t *malformed)
{
  uint8_t q = 'q';
  if (write_all(p->tcp, &q, 1) != 0)
    return -1;
  char line[200];
  size_t n = 0;
  while (n < sizeof line - 1) {
    ssize_t r = read(p->tcp, line + n, 1);
    if (r <= 0)
      break;
    if (line[n++] == '\n')
      break;
  }
  line[n] = 0;
  unsigned long long a, b, c, d, e;
  if (sscanf(line, "ok=%llu replay=%llu auth=%llu malformed=%llu errors=%llu", &a, &b, &c, &d,
             &e) != 5)
    return -1;
  *ok = a;
  *replay = b;
  *auth = c;
  *malformed = d;
  printf("server counters: %s", line);
  return 0;
}

static uint64_t sent_ok; /* data frames the server should have accepted */

static size_t size_step = 1; /* --step: payload sizes tried go up by this */
static size_t expect_frame;  /* --expect-frame: the frame size the sides must agree */

static void test_sizes(pp *p)
{
  if (expect_frame != 0)
    CHECK(mesh_rdma_qp_max_frame(p->qp) == expect_frame, "agreed frame size %zu, want %zu",
          mesh_rdma_qp_max_frame(p->qp), expect_frame);
  size_t max_payload = mesh_rdma_qp_max_frame(p->qp) - MESH_FRAME_OVERHEAD;
  uint8_t *buf = malloc(max_payload + 1);
  uint64_t lost = 0, bad = 0, missing = 0;
  size_t len = 0;
  for (;;) {
    int rc = roundtrip(p, buf, len, (uint32_t)len, &lost);
    sent_ok += 1 + lost;
    if (rc > 0)
      bad++;
    if (rc < 0)
      missing++;
    CHECK(rc == 0, "payload of %zu bytes: %s", len, rc > 0 ? "came back different" : "lost");
    if (missing > 3 || len == max_payload)
      break;
    /* The largest is always tried, whatever the step. */
    len = max_payload - len > size_step ? len + size_step : max_payload;
  }
  int rc = send_frame(p, MESH_FRAME_DATA, buf, max_payload + 1);
  CHECK(rc == -EMSGSIZE, "a payload one byte over the cap was not refused (%d)", rc);
  printf("sizes: 0..%zu bytes, %llu different, %llu missing, %llu resent\n", max_payload,
         (unsigned long long)bad, (unsigned long long)missing, (unsigned long long)lost);
  free(buf);
}

static void test_attack(pp *p, uint64_t *want_replay, uint64_t *want_auth, uint64_t *want_malformed)
{
  uint8_t payload[100];
  fill(payload, sizeof payload, 7);
  mesh_frame f = {.type = MESH_FRAME_DATA,
                  .channel = 1,
                  .flags = 3,
                  .total = 100,
                  .payload = payload,
                  .len = sizeof payload};
  uint8_t a[256], b[256];
  size_t an, bn;
  uint64_t lost = 0;
  uint8_t buf[128];

  /* Replay: the same bytes twice; only the first is echoed. */
  mesh_rdma_link_seal(&p->link, &f, a, sizeof a, &an);
  CHECK(mesh_rdma_qp_send(p->qp, a, an) == 0, "send");
  CHECK(wait_echo(p, WAIT_MS), "the original of the replayed frame was not echoed");
  sent_ok++;
  CHECK(mesh_rdma_qp_send(p->qp, a, an) == 0, "send");
  (*want_replay)++;
  /* A valid frame after it: UC keeps order on one queue pair, so its echo
   * means the server has handled the replay. */
  CHECK(roundtrip(p, buf, 64, 1, &lost) == 0, "frame after the replay");
  sent_ok += 1 + lost;

  /* A flipped ciphertext byte. */
  mesh_rdma_link_seal(&p->link, &f, a, sizeof a, &an);
  a[MESH_FRAME_PREFIX + 20] ^= 0x40;
  CHECK(mesh_rdma_qp_send(p->qp, a, an) == 0, "send");
  (*want_auth)++;
  /* A changed counter (the nonce): the tag no longer verifies either. */
  mesh_rdma_link_seal(&p->link, &f, a, sizeof a, &an);
  a[MESH_FRAME_LEN_SIZE + 7] ^= 0x01;
  a[MESH_FRAME_LEN_SIZE + 6] ^= 0x10;
  CHECK(mesh_rdma_qp_send(p->qp, a, an) == 0, "send");
  (*want_auth)++;
  /* A truncated frame. */
  mesh_rdma_link_seal(&p->link, &f, a, sizeof a, &an);
  CHECK(mesh_rdma_qp_send(p->qp, a, an - 5) == 0, "send");
  (*want_malformed)++;
  CHECK(roundtrip(p, buf, 64, 2, &lost) == 0, "frame after the forgeries");
  sent_ok += 1 + lost;

  /* Out of order: b (counter n+1) before a (counter n); both accepted. */
  mesh_rdma_link_seal(&p->link, &f, a, sizeof a, &an);
  mesh_rdma_link_seal(&p->link, &f, b, sizeof b, &bn);
  CHECK(mesh_rdma_qp_send(p->qp, b, bn) == 0, "send");
  CHECK(mesh_rdma_qp_send(p->qp, a, an) == 0, "send");
  CHECK(wait_echo(p, WAIT_MS) && wait_echo(p, WAIT_MS), "reordered frames were not both echoed");
  sent_ok += 2;
  printf("attack: replay, 2 forgeries, truncation sent; reordered pair echoed\n");
}

static void test_break(pp *p)
{
  uint64_t lost = 0;
  uint8_t buf[128];
  uint64_t errors = p->errors;
  CHECK(mesh_rdma_qp_break(p->qp) == 0, "break");
  /* The posted receives are flushed with errors: the handler must say so. */
  double deadline = now_us() + WAIT_MS * 1000.0;
  while (p->errors == errors && now_us() < deadline)
    pump(p, 50);
  CHECK(p->errors == errors + 1, "a broken queue pair raised %llu errors, not one",
        (unsigned long long)(p->errors - errors));
  CHECK(send_frame(p, MESH_FRAME_DATA, buf, 10) == -ENOTCONN,
        "a failed queue pair still took a send");
  int rc = mesh_rdma_qp_reset(p->qp);
  CHECK(rc == 0, "reset: %s", strerror(-rc));
  CHECK(roundtrip(p, buf, 64, 3, &lost) == 0, "no round trip after the reset");
  sent_ok += 1 + lost;
  printf("break: error reported, reset, path works again\n");
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Where a round trip's time goes besides the wire: the median cost of
 * sealing and opening one frame of len bytes on a local link pair (a round
 * trip does each twice) as net/frame.c picks the implementation, the same
 * through libsodium alone (net/frame.c's portable path; the two differ
 * only from 768 bytes on, where OpenSSL takes over), and of one clock
 * reading. */
static void bench_local_costs(size_t len, int iters, double *seal_open_us,
                              double *seal_open_sodium_us, double *clock_us)
{
  mesh_rdma_link a, b;
  uint8_t pka[32], ska[32], pkb[32], skb[32];
  mesh_rdma_kx_keypair(pka, ska);
  mesh_rdma_kx_keypair(pkb, skb);
  static const uint8_t attrs[2] = {1, 2};
  *seal_open_us = -1;
  *seal_open_sodium_us = -1;
  *clock_us = -1;
  if (mesh_rdma_link_init(&a, true, &test_psk, ska, pka, pkb, attrs, 1, attrs + 1, 1) != 0 ||
      mesh_rdma_link_init(&b, false, &test_psk, skb, pkb, pka, attrs + 1, 1, attrs, 1) != 0)
    return;
  size_t cap = mesh_frame_wire_size(len);
  uint8_t *payload = calloc(1, len + 1), *wire = malloc(cap);
  double *t = calloc((size_t)iters, sizeof *t);
  if (payload == NULL || wire == NULL || t == NULL)
    goto out;
  for (int portable = 0; portable < 2; portable++) {
    mesh_frame_test_portable(portable == 1);
    int n = 0;
    for (int i = 0; i < iters; i++) {
      mesh_frame f = {.type = MESH_FRAME_DATA,
                      .channel = 1,
                      .flags = MESH_FRAME_FIRST | MESH_FRAME_LAST,
                      .total = (uint32_t)len,
                      .payload = payload,
                      .len = len},
                 out;
      size_t wlen;
      double t0 = now_us();
      if (mesh_rdma_link_seal(&a, &f, wire, cap, &wlen) != 0 ||
          mesh_rdma_link_open(&b, wire, wlen, &out) != MESH_RDMA_OK)
        continue;
      t[n++] = now_us() - t0;
    }
    if (n > 0) {
      qsort(t, (size_t)n, sizeof *t, cmp_double);
      *(portable ? seal_open_sodium_us : seal_open_us) = t[n / 2];
    }
  }
  mesh_frame_test_portable(false);
  double t0 = now_us();
  for (int i = 0; i < iters; i++)
    (void)now_us();
  *clock_us = (now_us() - t0) / iters;
out:
  mesh_rdma_link_clear(&a);
  mesh_rdma_link_clear(&b);
  free(payload);
  free(wire);
  free(t);
}

static void test_bench(pp *p, const char *sizes, int iters)
{
  char *list = strdup(sizes);
  char *save = NULL;
  for (char *tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
    size_t len = strtoul(tok, NULL, 10);
    uint8_t *buf = malloc(len + 1);
    double *t = calloc((size_t)iters, sizeof *t);
    uint64_t lost = 0;
    int done = 0;
    for (int i = 0; i < 20; i++) /* warm-up */
      roundtrip(p, buf, len, (uint32_t)i, &lost);
    for (int i = 0; i < iters; i++) {
      double t0 = now_us();
      if (roundtrip(p, buf, len, (uint32_t)i, &lost) != 0)
        continue;
      t[done++] = now_us() - t0;
    }
    sent_ok += (uint64_t)(20 + iters) + lost;
    double sum = 0;
    for (int i = 0; i < done; i++)
      sum += t[i];
    qsort(t, (size_t)done, sizeof *t, cmp_double);
    CHECK(done == iters, "bench %zu: %d of %d round trips", len, done, iters);
    double seal_open, seal_open_sodium, clock;
    bench_local_costs(len, iters, &seal_open, &seal_open_sodium, &clock);
    if (done > 0)
      printf("bench size=%zu iters=%d p50_us=%.2f avg_us=%.2f seal_open_us=%.2f "
             "seal_open_sodium_us=%.2f clock_us=%.2f\n",
             len, done, t[done / 2], sum / done, seal_open, seal_open_sodium, clock);
    free(t);
    free(buf);
  }
  free(list);
}

static int run_client(pp *p, const char *server, const char *test, const char *sizes, int iters)
{
  char host[64];
  const char *colon = strrchr(server, ':');
  if (colon == NULL || (size_t)(colon - server) >= sizeof host)
    usage();
  memcpy(host, server, (size_t)(colon - server));
  host[colon - server] = 0;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
  inet_pton(AF_INET, host, &sa.sin_addr);
  p->tcp = socket(AF_INET, SOCK_STREAM, 0);
  /* The server may still be starting: try for a while. */
  double deadline = now_us() + 30e6;
  while (connect(p->tcp, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (now_us() > deadline) {
      perror("rdma_pingpong: connect");
      return 1;
    }
    close(p->tcp);
    p->tcp = socket(AF_INET, SOCK_STREAM, 0);
    usleep(100000);
  }
  int one = 1;
  setsockopt(p->tcp, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  mesh_rdma_attr local;
  uint8_t sk[32];
  if (mesh_rdma_qp_new(p->dev, 0x654321, NULL, &p->qp, &local) != 0)
    return 1;
  mesh_rdma_kx_keypair(local.kx_public, sk);
  if (exchange(p, true, &local, sk) != 0)
    return 1;
  printf("connected: %s, max frame %zu\n", mesh_rdma_dev_name(p->dev),
         mesh_rdma_qp_max_frame(p->qp));
  bool all = strcmp(test, "all") == 0;
  uint64_t want_replay = 0, want_auth = 0, want_malformed = 0;
  if (all || strcmp(test, "sizes") == 0)
    test_sizes(p);
  if (all || strcmp(test, "attack") == 0)
    test_attack(p, &want_replay, &want_auth, &want_malformed);
  if (all || strcmp(test, "break") == 0)
    test_break(p);
  if (strcmp(test, "bench") == 0)
    test_bench(p, sizes, iters);
  uint64_t ok = 0, replay = 0, auth = 0, malformed = 0;
  CHECK(server_stats(p, &ok, &replay, &auth, &malformed) == 0, "no counters from the server");
  CHECK(replay == want_replay, "server counted %llu replays, expected %llu",
        (unsigned long long)replay, (unsigned long long)want_replay);
  CHECK(auth == want_auth, "server counted %llu forgeries, expected %llu", (unsigned long long)auth,
        (unsigned long long)want_auth);
  CHECK(malformed == want_malformed, "server counted %llu malformed, expected %llu",
        (unsigned long long)malformed, (unsigned long long)want_malformed);
  CHECK(ok == sent_ok, "server accepted %llu frames, expected %llu", (unsigned long long)ok,
        (unsigned long long)sent_ok);
  CHECK(p->replay == 0 && p->auth == 0 && p->malformed == 0,
        "the client refused echoed frames (%llu/%llu/%llu)", (unsigned long long)p->replay,
        (unsigned long long)p->auth, (unsigned long long)p->malformed);
  printf("%s\n", failures == 0 ? "PASS" : "FAIL");
  return failures == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
  if (argc < 2)
    usage();
  const char *mode = argv[1], *dev = NULL, *addr = NULL, *server = NULL, *test = "all";
  const char *sizes = "64,4096";
  int port = 7000, iters = 1000;
  uint32_t buf = 0;
  pp p = {.tcp = -1};
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--spin") == 0) {
      p.spin = true;
      continue;
    }
    if (v == NULL)
      usage();
    i++;
    if (strcmp(a, "--dev") == 0)
      dev = v;
    else if (strcmp(a, "--addr") == 0)
      addr = v;
    else if (strcmp(a, "--port") == 0)
      port = atoi(v);
    else if (strcmp(a, "--server") == 0)
      server = v;
    else if (strcmp(a, "--buf") == 0)
      buf = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(a, "--test") == 0)
      test = v;
    else if (strcmp(a, "--sizes") == 0)
      sizes = v;
    else if (strcmp(a, "--step") == 0)
      size_step = strtoul(v, NULL, 10) > 0 ? strtoul(v, NULL, 10) : 1;
    else if (strcmp(a, "--iters") == 0)
      iters = atoi(v);
    else if (strcmp(a, "--expect-frame") == 0)
      expect_frame = strtoul(v, NULL, 10);
    else if (strcmp(a, "--cipher") == 0) {
      mesh_frame_cipher_pref pref;
      if (mesh_frame_cipher_pref_parse(v, &pref) != 0 || pref == MESH_FRAME_PREF_AUTO)
        usage();
      link_cipher = pref == MESH_FRAME_PREF_AES_256_GCM ? MESH_FRAME_AES_256_GCM
                                                        : MESH_FRAME_CHACHA20_POLY1305;
    }
    else
      usage();
  }
  if (addr == NULL || iters < 1)
    usage();
  if (setup(&p, dev, addr, buf) != 0)
    return 1;
  int rc;
  if (strcmp(mode, "server") == 0)
    rc = run_server(&p, addr, port);
  else if (strcmp(mode, "client") == 0 && server != NULL)
    rc = run_client(&p, server, test, sizes, iters);
  else
    usage();
  mesh_rdma_qp_free(p.qp);
  mesh_rdma_dev_close(p.dev);
  mesh_rdma_link_clear(&p.link);
  free(p.wire);
  free(p.rx);
  if (p.tcp >= 0)
    close(p.tcp);
  return rc;
}
