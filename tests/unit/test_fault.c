/*
 * The test-only delay line (net/fault.h). The core runs on an injected
 * clock (a plain counter) and a seeded rng: delays stay within their bounds,
 * stream messages to a peer never overtake each other while datagrams do,
 * the bounds drop datagrams and refuse streams (counted), and refused peers
 * hear when there is room. One test drives the line on a real event loop
 * between two TCP endpoints on loopback; another wraps it around fake
 * transports registered after it, to see a release go to the transport
 * chosen at send time (or on down, when too big for it).
 */
#include "net/fault.h"
#include "net/transport.h"
#include "src/daemon/loop.h"

#include <errno.h>
#include <event2/event.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

static mesh_peer_id peer_a, peer_b;

static int setup_peers(void **state)
{
  (void)state;
  mesh_identity a, b;
  assert_int_equal(mesh_identity_generate(&a), 0);
  assert_int_equal(mesh_identity_generate(&b), 0);
  peer_a = a.id;
  peer_b = b.id;
  return 0;
}

static mesh_fault *make(const char *text, uint64_t seed)
{
  mesh_fault_spec s;
  char err[128] = "";
  if (mesh_fault_spec_parse(text, &s, err, sizeof err) != 0)
    fail_msg("spec %s: %s", text, err);
  mesh_fault *f = NULL;
  assert_int_equal(mesh_fault_new(&s, seed, &f), 0);
  return f;
}

static void test_spec_parse(void **state)
{
  (void)state;
  mesh_fault_spec s;
  char err[160];
  char text[MESH_FAULT_SPEC_MAX + 200];
  char id[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(&peer_a, id, sizeof id);

  snprintf(text, sizeof text, " delay=80ms,jitter=40ms,peer=%s,dist=normal,seed=7\n", id);
  assert_int_equal(mesh_fault_spec_parse(text, &s, err, sizeof err), 0);
  assert_true(s.active);
  assert_int_equal(s.delay_ms, 80);
  assert_int_equal(s.jitter_ms, 40);
  assert_int_equal(s.dist, MESH_FAULT_NORMAL);
  assert_true(s.has_peer && mesh_peer_id_eq(&s.peer, &peer_a));
  assert_true(s.has_seed && s.seed == 7);
  assert_int_equal(s.max_bytes, 4u << 20);
  assert_int_equal(s.max_messages, 4096);

  assert_int_equal(mesh_fault_spec_parse("off\n", &s, err, sizeof err), 0);
  assert_false(s.active);
  assert_int_equal(
      mesh_fault_spec_parse("delay=1s,max-bytes=64KiB,max-messages=9", &s, err, sizeof err), 0);
  assert_int_equal(s.delay_ms, 1000);
  assert_int_equal(s.max_bytes, 64u << 10);
  assert_int_equal(s.max_messages, 9);

  static const char *const bad[] = {
      "",                    /* empty */
      "jitter=5ms",          /* no delay */
      "delay=5",             /* no unit */
      "delay=61s",           /* over 60 s */
      "delay=1ms,jitter=2m", /* over 60 s */
      "delay=1ms,delay=2ms", /* twice */
      "delay=1ms,color=red", /* unknown key */
      "delay=1ms,dist=pareto",
      "delay=1ms,peer=12D3KooWnotapeer",
      "delay=1ms,max-bytes=0",
      "delay=1ms,max-bytes=65MiB",
      "delay=1ms,max-messages=65537",
      "delay=1ms,seed=-1",
      "delay=1ms,", /* an empty item */
      "delay=",     /* an empty value */
      "delay=1ms off",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    if (mesh_fault_spec_parse(bad[i], &s, err, sizeof err) != -EINVAL)
      fail_msg("accepted \"%s\"", bad[i]);
    if (err[0] == '\0')
      fail_msg("no reason for \"%s\"", bad[i]);
  }
  memset(text, 'x', sizeof text - 1);
  text[sizeof text - 1] = '\0';
  memcpy(text, "delay=1ms,peer=", 15);
  assert_int_equal(mesh_fault_spec_parse(text, &s, err, sizeof err), -EINVAL);
}

/* Pushes n datagrams at now, then returns their delays (due - now). */
static void delays(mesh_fault *f, mesh_time_ms now, mesh_time_ms *out, size_t n)
{
  uint8_t b = 0;
  for (size_t i = 0; i < n; i++) {
    mesh_time_ms due;
    assert_int_equal(
        mesh_fault_push(f, now, &peer_a, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, &b, 1, &due), 0);
    out[i] = due - now;
  }
}

static void test_uniform_within_bounds(void **state)
{
  (void)state;
  mesh_fault *f = make("delay=100ms,jitter=50ms", 1);
  enum { N = 4000 };
  static mesh_time_ms d[N];
  delays(f, 5000, d, N);
  mesh_time_ms lo = ~0ull, hi = 0;
  double sum = 0;
  for (size_t i = 0; i < N; i++) {
    assert_in_range(d[i], 50, 150);
    lo = d[i] < lo ? d[i] : lo;
    hi = d[i] > hi ? d[i] : hi;
    sum += (double)d[i];
  }
  /* The whole range is used, centred on the delay. */
  assert_in_range(lo, 50, 52);
  assert_in_range(hi, 148, 150);
  assert_in_range((uint64_t)llround(sum / N), 97, 103);
  assert_int_equal(mesh_fault_counters_get(f)->max_delay_ms, hi);
  mesh_fault_free(f);

  /* Jitter wider than the delay is clamped at zero, never negative. */
  f = make("delay=10ms,jitter=30ms", 2);
  delays(f, 0, d, N);
  size_t zeros = 0;
  for (size_t i = 0; i < N; i++) {
    assert_in_range(d[i], 0, 40);
    zeros += d[i] == 0;
  }
  assert_true(zeros > N / 4);
  mesh_fault_free(f);
}

static void test_normal_within_bounds(void **state)
{
  (void)state;
  mesh_fault *f = make("delay=400ms,jitter=100ms,dist=normal", 3);
  enum { N = 4000 };
  static mesh_time_ms d[N];
  delays(f, 0, d, N);
  double sum = 0, sq = 0;
  size_t within_sd = 0;
  for (size_t i = 0; i < N; i++) {
    assert_in_range(d[i], 100, 700); /* cut at three standard deviations */
    sum += (double)d[i];
    within_sd += d[i] >= 300 && d[i] <= 500;
  }
  double mean = sum / N;
  for (size_t i = 0; i < N; i++)
    sq += ((double)d[i] - mean) * ((double)d[i] - mean);
  double sd = sqrt(sq / N);
  assert_in_range((uint64_t)llround(mean), 390, 410);
  assert_in_range((uint64_t)llround(sd), 90, 110);
  /* About 68% within one standard deviation, as a normal distribution. */
  assert_in_range(within_sd * 100 / N, 64, 72);
  mesh_fault_free(f);
}

static void test_same_seed_same_delays(void **state)
{
  (void)state;
  mesh_time_ms d1[64], d2[64], d3[64];
  mesh_fault *f = make("delay=100ms,jitter=50ms", 9);
  delays(f, 0, d1, 64);
  mesh_fault_free(f);
  f = make("delay=100ms,jitter=50ms", 9);
  delays(f, 0, d2, 64);
  mesh_fault_free(f);
  f = make("delay=100ms,jitter=50ms,seed=9", 12345); /* the spec's seed wins */
  delays(f, 0, d3, 64);
  mesh_fault_free(f);
  assert_memory_equal(d1, d2, sizeof d1);
  assert_memory_equal(d1, d3, sizeof d1);
}

/* Streams to one peer come out in the order they went in; datagrams
 * overtake one another. Every message is released at or after its due time
 * and within its delay bound of when it was pushed. */
static void test_stream_order_kept(void **state)
{
  (void)state;
  mesh_fault *f = make("delay=100ms,jitter=80ms", 4);
  enum { N = 3000 };
  mesh_time_ms pushed_at[N];
  mesh_time_ms now = 1000;
  uint32_t next_in[2] = {0, 0}; /* per peer, stream sequence numbers */
  for (uint32_t i = 0; i < N; i++) {
    const mesh_peer_id *p = (i % 3 == 0) ? &peer_b : &peer_a;
    mesh_class cls = (i % 2 == 0) ? MESH_CLASS_STREAM : MESH_CLASS_DATAGRAM;
    uint8_t msg[8];
    uint32_t seq = i;
    if (cls == MESH_CLASS_STREAM)
      seq = next_in[p == &peer_b]++;
    memcpy(msg, &i, 4);
    memcpy(msg + 4, &seq, 4);
    pushed_at[i] = now;
    assert_int_equal(mesh_fault_push(f, now, p, MESH_CH_COORD, cls, msg, sizeof msg, NULL), 0);
    now += 1 + (i % 7 == 0 ? 5 : 0);
  }
  assert_int_equal(mesh_fault_counters_get(f)->held_now, N);
  uint32_t next_out[2] = {0, 0};
  uint32_t last_dgram = 0, dgram_overtaken = 0, released = 0;
  mesh_time_ms t = 0;
  for (;;) {
    mesh_time_ms due;
    if (!mesh_fault_next_due(f, &due))
      break;
    /* Nothing comes out before it is due. */
    assert_null(mesh_fault_pop(f, due - 1 < t ? t : due - 1));
    t = due;
    mesh_fault_msg *m;
    while ((m = mesh_fault_pop(f, t)) != NULL) {
      uint32_t i, seq;
      memcpy(&i, m->buf, 4);
      memcpy(&seq, m->buf + 4, 4);
      assert_true(m->due <= t);
      if (m->cls == MESH_CLASS_STREAM) {
        int b = mesh_peer_id_eq(&m->peer, &peer_b);
        assert_int_equal(seq, next_out[b]);
        next_out[b]++;
        /* Held at least the shortest delay; order may hold it longer. */
        assert_true(t >= pushed_at[i] + 20);
      } else {
        assert_in_range(t - pushed_at[i], 20, 180);
        if (i < last_dgram)
          dgram_overtaken++;
        last_dgram = i > last_dgram ? i : last_dgram;
      }
      released++;
      mesh_fault_msg_free(m);
    }
  }
  assert_int_equal(released, N);
  assert_int_equal(next_out[0] + next_out[1], N / 2);
  assert_true(dgram_overtaken > 100); /* jitter reorders datagrams */
  const mesh_fault_counters *c = mesh_fault_counters_get(f);
  assert_int_equal(c->held, N);
  assert_int_equal(c->released, N);
  assert_int_equal(c->held_now, 0);
  assert_int_equal(c->held_bytes_now, 0);
  mesh_fault_free(f);
}

/* A shorter delay set while streams are held does not let a later stream
 * message overtake them. */
static void test_order_across_spec_change(void **state)
{
  (void)state;
  mesh_fault *f = make("delay=1s", 5);
  uint8_t one = 1, two = 2, three = 3;
  mesh_time_ms d1, d2, d3;
  assert_int_equal(mesh_fault_push(f, 0, &peer_a, MESH_CH_COORD, MESH_CLASS_STREAM, &one, 1, &d1),
                   0);
  mesh_fault_spec s;
  assert_int_equal(mesh_fault_spec_parse("delay=0", &s, NULL, 0), 0);
  assert_int_equal(mesh_fault_set_spec(f, &s), 0);
  assert_int_equal(mesh_fault_push(f, 10, &peer_a, MESH_CH_COORD, MESH_CLASS_STREAM, &two, 1, &d2),
                   0);
  assert_int_equal(
      mesh_fault_push(f, 10, &peer_b, MESH_CH_COORD, MESH_CLASS_STREAM, &three, 1, &d3), 0);
  assert_int_equal(d1, 1000);
  assert_int_equal(d2, 1000); /* waits for the one before it */
  assert_int_equal(d3, 10);   /* another peer's stream does not wait */
  mesh_fault_msg *m = mesh_fault_pop(f, 10);
  assert_non_null(m);
  assert_int_equal(m->buf[0], 3);
  mesh_fault_msg_free(m);
  assert_null(mesh_fault_pop(f, 999));
  m = mesh_fault_pop(f, 1000);
  assert_int_equal(m->buf[0], 1);
  mesh_fault_msg_free(m);
  m = mesh_fault_pop(f, 1000);
  assert_int_equal(m->buf[0], 2);
  mesh_fault_msg_free(m);

  /* Switched off with a stream message held: the next one to that peer
   * still waits behind it (with no delay of its own), a datagram does not
   * concern the line, and another peer has nothing held. */
  assert_int_equal(mesh_fault_spec_parse("delay=1s", &s, NULL, 0), 0);
  assert_int_equal(mesh_fault_set_spec(f, &s), 0);
  assert_int_equal(
      mesh_fault_push(f, 2000, &peer_a, MESH_CH_COORD, MESH_CLASS_STREAM, &one, 1, &d1), 0);
  assert_int_equal(mesh_fault_spec_parse("off", &s, NULL, 0), 0);
  assert_int_equal(mesh_fault_set_spec(f, &s), 0);
  assert_false(mesh_fault_selects(f, &peer_a));
  assert_true(mesh_fault_holds_stream(f, &peer_a));
  assert_false(mesh_fault_holds_stream(f, &peer_b));
  assert_int_equal(
      mesh_fault_push(f, 2001, &peer_a, MESH_CH_COORD, MESH_CLASS_STREAM, &two, 1, &d2), 0);
  assert_int_equal(d1, 3000);
  assert_int_equal(d2, 3000);
  assert_int_equal(
      mesh_fault_push(f, 2001, &peer_b, MESH_CH_COORD, MESH_CLASS_STREAM, &three, 1, &d3), 0);
  assert_int_equal(d3, 2001); /* not selected, nothing to wait for: no delay */
  m = mesh_fault_pop(f, 3000);
  assert_int_equal(m->buf[0], 3);
  mesh_fault_msg_free(m);
  m = mesh_fault_pop(f, 3000);
  assert_int_equal(m->buf[0], 1);
  mesh_fault_msg_free(m);
  m = mesh_fault_pop(f, 3000);
  assert_int_equal(m->buf[0], 2);
  mesh_fault_msg_free(m);
  assert_false(mesh_fault_holds_stream(f, &peer_a));

  /* "off" selects nobody; a peer= spec selects that peer only. */
  char text[200], id[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(&peer_b, id, sizeof id);
  snprintf(text, sizeof text, "delay=5ms,peer=%s", id);
  assert_int_equal(mesh_fault_spec_parse(text, &s, NULL, 0), 0);
  assert_int_equal(mesh_fault_set_spec(f, &s), 0);
  assert_false(mesh_fault_selects(f, &peer_a));
  assert_true(mesh_fault_selects(f, &peer_b));
  mesh_fault_free(f);
}

static void test_bounds_enforced(void **state)
{
  (void)state;
  mesh_fault *f = make("delay=50ms,max-messages=4,max-bytes=1000", 6);
  uint8_t buf[600] = {0};
  mesh_peer_id room[4];
  /* The message bound. */
  for (int i = 0; i < 4; i++)
    assert_int_equal(
        mesh_fault_push(f, 0, &peer_a, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, buf, 10, NULL), 0);
  assert_int_equal(mesh_fault_push(f, 0, &peer_a, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, buf, 10, NULL),
                   -ENOBUFS);
  assert_int_equal(mesh_fault_push(f, 0, &peer_b, MESH_CH_COORD, MESH_CLASS_STREAM, buf, 10, NULL),
                   -EAGAIN);
  assert_int_equal(mesh_fault_push(f, 0, &peer_b, MESH_CH_COORD, MESH_CLASS_STREAM, buf, 10, NULL),
                   -EAGAIN);
  const mesh_fault_counters *c = mesh_fault_counters_get(f);
  assert_int_equal(c->dropped, 1);
  assert_int_equal(c->refused, 2);
  assert_int_equal(c->held, 4);
  assert_int_equal(c->held_now, 4);
  assert_int_equal(c->held_bytes_now, 40);
  /* Still full: nobody hears of room. */
  assert_int_equal(mesh_fault_take_room(f, room, 4), 0);
  mesh_fault_msg *m = mesh_fault_pop(f, 50);
  assert_non_null(m);
  mesh_fault_msg_free(m);
  /* Room again: the refused peer is told once. */
  assert_int_equal(mesh_fault_take_room(f, room, 4), 1);
  assert_true(mesh_peer_id_eq(&room[0], &peer_b));
  assert_int_equal(mesh_fault_take_room(f, room, 4), 0);
  while ((m = mesh_fault_pop(f, 50)) != NULL)
    mesh_fault_msg_free(m);

  /* The byte bound. */
  assert_int_equal(
      mesh_fault_push(f, 100, &peer_a, MESH_CH_COORD, MESH_CLASS_STREAM, buf, 600, NULL), 0);
  assert_int_equal(
      mesh_fault_push(f, 100, &peer_a, MESH_CH_COORD, MESH_CLASS_STREAM, buf, 600, NULL), -EAGAIN);
  assert_int_equal(
      mesh_fault_push(f, 100, &peer_a, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, buf, 401, NULL),
      -ENOBUFS);
  assert_int_equal(
      mesh_fault_push(f, 100, &peer_a, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, buf, 400, NULL), 0);
  assert_int_equal(c->held_bytes_now, 1000);
  assert_int_equal(c->dropped, 2);
  assert_int_equal(c->refused, 3);
  assert_int_equal(c->held, 6);
  assert_int_equal(c->released, 4);
  /* Freeing with messages held releases their memory (the sanitizer build
   * checks). */
  mesh_fault_free(f);
}

/* --- The driver, between two TCP endpoints on one loop --- */

typedef struct endpoint {
  mesh_identity id;
  mesh_net *net;
  char addr[MESH_MULTIADDR_TEXT_MAX + MESH_PEER_ID_TEXT_MAX + 8];
  uint32_t got[64];      /* stream sequence numbers in arrival order */
  mesh_time_ms when[64]; /* arrival times */
  size_t n;
  int ups;
} endpoint;

static mesh_loop *loop;

static mesh_time_ms loop_now(void *arg)
{
  return mesh_loop_now(arg);
}

static void ep_msg(void *arg, const mesh_peer_id *from, uint64_t epoch, mesh_channel ch,
                   mesh_class cls, const uint8_t *buf, size_t len)
{
  (void)from, (void)epoch, (void)ch, (void)cls;
  endpoint *e = arg;
  if (e->n < 64 && len == 4) {
    memcpy(&e->got[e->n], buf, 4);
    e->when[e->n++] = mesh_loop_now(loop);
  }
}

static void ep_peer(void *arg, const mesh_net_peer_event *ev)
{
  if (ev->up)
    ((endpoint *)arg)->ups++;
}

static void ep_open(endpoint *e, const mesh_psk *psk)
{
  memset(e, 0, sizeof *e);
  assert_int_equal(mesh_identity_generate(&e->id), 0);
  mesh_net_options o;
  mesh_net_options_default(&o);
  o.identity = &e->id;
  o.epoch = 1;
  o.psk = *psk;
  o.base = mesh_loop_base(loop);
  o.now = loop_now;
  o.now_arg = loop;
  o.rng_seed = 3;
  assert_int_equal(mesh_net_new(&o, &e->net), 0);
  mesh_net_on_message(e->net, ep_msg, e);
  mesh_net_on_peer(e->net, ep_peer, e);
  mesh_multiaddr bound;
  assert_int_equal(mesh_net_listen(e->net, "/ip4/127.0.0.1/tcp/0", &bound), 0);
  char a[MESH_MULTIADDR_TEXT_MAX], id[MESH_PEER_ID_TEXT_MAX];
  assert_int_equal(mesh_multiaddr_format(&bound, a, sizeof a), 0);
  mesh_peer_id_to_text(&e->id.id, id, sizeof id);
  snprintf(e->addr, sizeof e->addr, "%s/p2p/%s", a, id);
}

static void turn(void)
{
  struct timeval tv = {0, 2000};
  event_base_loopexit(mesh_loop_base(loop), &tv);
  assert_true(mesh_loop_run_once(loop, false) >= 0);
}

#define WAIT(cond, ms)                                                                             \
  do {                                                                                             \
    mesh_time_ms until_ = mesh_clock_now_ms() + (ms);                                              \
    while (!(cond) && mesh_clock_now_ms() < until_)                                                \
      turn();                                                                                      \
    if (!(cond))                                                                                   \
      fail_msg("timed out after %d ms waiting for: %s", (int)(ms), #cond);                         \
  } while (0)

static void test_line_on_the_loop(void **state)
{
  (void)state;
  assert_int_equal(mesh_loop_new(&loop), 0);
  mesh_psk psk;
  randombytes_buf(psk.key, sizeof psk.key);
  endpoint a, b;
  ep_open(&a, &psk);
  ep_open(&b, &psk);

  mesh_fault_spec s;
  assert_int_equal(mesh_fault_spec_parse("delay=60ms,jitter=40ms,seed=1", &s, NULL, 0), 0);
  mesh_fault_line *line;
  assert_int_equal(mesh_fault_line_new(a.net, mesh_loop_base(loop), &s, 1, (size_t)1 << 20, &line),
                   0);
  assert_int_equal(mesh_net_wrap(a.net, mesh_fault_line_wrap, mesh_fault_line_release, line), 0);
  const mesh_fault *core = mesh_fault_line_core(line);

  /* No connection yet: -ENOTCONN at once, nothing held (callers dial on it). */
  uint32_t x = 0;
  assert_int_equal(
      mesh_net_send(a.net, &b.id.id, MESH_CH_COORD, MESH_CLASS_STREAM, (uint8_t *)&x, 4),
      -ENOTCONN);
  assert_int_equal(mesh_fault_counters_get(core)->held, 0);

  assert_int_equal(mesh_net_dial(a.net, b.addr, NULL, 1), 0);
  WAIT(a.ups == 1 && b.ups == 1, 3000);

  /* 40 stream messages sent a few ms apart arrive all, in order, each at
   * least the shortest delay after it was sent. */
  mesh_time_ms sent[40];
  for (uint32_t i = 0; i < 40; i++) {
    sent[i] = mesh_loop_now(loop);
    assert_int_equal(
        mesh_net_send(a.net, &b.id.id, MESH_CH_COORD, MESH_CLASS_STREAM, (uint8_t *)&i, 4), 0);
    turn();
  }
  WAIT(b.n == 40, 5000);
  for (uint32_t i = 0; i < 40; i++) {
    assert_int_equal(b.got[i], i);
    assert_true(b.when[i] >= sent[i] + 20);
  }
  const mesh_fault_counters *c = mesh_fault_counters_get(core);
  assert_int_equal(c->held, 40);
  assert_int_equal(c->released, 40);
  assert_int_equal(c->release_failed, 0);
  assert_int_equal(c->held_now, 0);

  /* Messages still held when the net closes are freed with it. */
  assert_int_equal(
      mesh_net_send(a.net, &b.id.id, MESH_CH_COORD, MESH_CLASS_STREAM, (uint8_t *)&x, 4), 0);
  assert_int_equal(c->held_now, 1);
  mesh_net_free(a.net);
  mesh_net_free(b.net);
  mesh_loop_free(loop);
  loop = NULL;
}

/* --- The driver around transports registered after it: two fake datagram
 * paths, "wide" (registered first) and "narrow" (last, so preferred, and
 * carrying at most 100 bytes). --- */

typedef struct fake_path {
  bool up;     /* can_send answers this */
  size_t max;  /* larger: -EMSGSIZE */
  int sent;    /* messages it carried */
  int too_big; /* -EMSGSIZE answers */
  int told[3]; /* calls of the optional ops: bulk_seq, writable, traffic */
} fake_path;

static int fake_init(mesh_net *net, const mesh_net_options *opt, mesh_transport_counters *c,
                     void **state)
{
  (void)net, (void)opt, (void)c;
  fake_path *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -ENOMEM;
  f->up = true;
  f->max = SIZE_MAX;
  *state = f;
  return 0;
}

static void fake_fini(void *state)
{
  free(state);
}

static bool fake_can_send(void *state, const mesh_peer_id *peer, mesh_class cls)
{
  (void)peer;
  return cls == MESH_CLASS_DATAGRAM && ((fake_path *)state)->up;
}

static int fake_send(void *state, const mesh_peer_id *peer, mesh_channel ch, mesh_class cls,
                     const uint8_t *buf, size_t len)
{
  (void)peer, (void)ch, (void)cls, (void)buf;
  fake_path *f = state;
  if (len > f->max) {
    f->too_big++;
    return -EMSGSIZE;
  }
  f->sent++;
  return 0;
}

static void fake_bulk_seq(void *state, const mesh_peer_id *from, const uint8_t *buf, size_t len)
{
  (void)from, (void)buf, (void)len;
  ((fake_path *)state)->told[0]++;
}

static void fake_writable(void *state, const mesh_peer_id *peer)
{
  (void)peer;
  ((fake_path *)state)->told[1]++;
}

static void fake_traffic(void *state, const mesh_peer_id *peer, bool sent)
{
  (void)peer, (void)sent;
  ((fake_path *)state)->told[2]++;
}

static const mesh_transport_ops fake_wide = {.scheme = "wide",
                                             .role = MESH_TRANSPORT_PATH,
                                             .init = fake_init,
                                             .fini = fake_fini,
                                             .can_send = fake_can_send,
                                             .send = fake_send,
                                             .bulk_seq = fake_bulk_seq,
                                             .writable = fake_writable,
                                             .traffic = fake_traffic};
static const mesh_transport_ops fake_narrow = {.scheme = "narrow",
                                               .role = MESH_TRANSPORT_PATH,
                                               .init = fake_init,
                                               .fini = fake_fini,
                                               .can_send = fake_can_send,
                                               .send = fake_send};

static void test_line_releases_to_the_chosen_transport(void **state)
{
  (void)state;
  assert_int_equal(mesh_loop_new(&loop), 0);
  mesh_identity self;
  assert_int_equal(mesh_identity_generate(&self), 0);
  mesh_net_options o;
  mesh_net_options_default(&o);
  o.identity = &self;
  o.epoch = 1;
  randombytes_buf(o.psk.key, sizeof o.psk.key);
  o.base = mesh_loop_base(loop);
  o.now = loop_now;
  o.now_arg = loop;
  mesh_net *net;
  assert_int_equal(mesh_net_new(&o, &net), 0);

  mesh_fault_spec s;
  assert_int_equal(mesh_fault_spec_parse("delay=20ms,seed=1", &s, NULL, 0), 0);
  mesh_fault_line *line;
  assert_int_equal(mesh_fault_line_new(net, mesh_loop_base(loop), &s, 1, o.frame_max, &line), 0);
  assert_int_equal(mesh_net_wrap(net, mesh_fault_line_wrap, mesh_fault_line_release, line), 0);
  assert_int_equal(mesh_net_register(net, &fake_wide), 0);
  assert_int_equal(mesh_net_register(net, &fake_narrow), 0);
  fake_path *wide = mesh_net_state_of(net, "wide");
  fake_path *narrow = mesh_net_state_of(net, "narrow");
  narrow->max = 100;
  const mesh_fault_counters *c = mesh_fault_counters_get(mesh_fault_line_core(line));

  mesh_peer_id peer;
  memset(&peer, 9, sizeof peer);
  uint8_t small[50] = {0}, big[200] = {0};

  /* Held, then carried by the transport chosen at send time. */
  assert_int_equal(
      mesh_net_send(net, &peer, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, small, sizeof small), 0);
  assert_int_equal(c->held_now, 1);
  assert_int_equal(narrow->sent, 0);
  WAIT(c->released == 1, 2000);
  assert_int_equal(narrow->sent, 1);
  assert_int_equal(wide->sent, 0);
  assert_int_equal(c->release_failed, 0);

  /* Too big for it: on to the next transport down, at release. */
  assert_int_equal(mesh_net_send(net, &peer, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, big, sizeof big),
                   0);
  WAIT(c->released == 2, 2000);
  assert_int_equal(narrow->too_big, 2); /* at release, and again as the net routes it */
  assert_int_equal(wide->sent, 1);
  assert_int_equal(c->held, 2);
  assert_int_equal(c->release_failed, 0);

  /* Its path went down meanwhile: a release failure, not another path. */
  assert_int_equal(
      mesh_net_send(net, &peer, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, small, sizeof small), 0);
  narrow->up = false;
  WAIT(c->released == 3, 2000);
  assert_int_equal(c->release_failed, 1);
  assert_int_equal(narrow->sent, 1);
  assert_int_equal(wide->sent, 1);

  /* Now the net chooses "wide" at once. */
  assert_int_equal(
      mesh_net_send(net, &peer, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, small, sizeof small), 0);
  WAIT(c->released == 4, 2000);
  assert_int_equal(wide->sent, 2);
  assert_int_equal(c->release_failed, 1);

  /* The transport's optional ops reach it through the line: the channel it
   * owns, room for a peer, another path's traffic (from "narrow" above). */
  int heard = wide->told[2];
  assert_true(heard >= 1);
  mesh_net_deliver(net, &peer, 1, MESH_CH_BULK_SEQ, MESH_CLASS_STREAM, small, sizeof small);
  assert_int_equal(wide->told[0], 1);
  mesh_net_writable(net, &peer);
  assert_int_equal(wide->told[1], 1);
  mesh_net_deliver(net, &peer, 1, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, small, sizeof small);
  assert_int_equal(wide->told[2], heard + 1);

  /* No path at all: -ENOTCONN at once, nothing held. */
  wide->up = false;
  assert_int_equal(
      mesh_net_send(net, &peer, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, small, sizeof small), -ENOTCONN);
  assert_int_equal(c->held, 4);

  mesh_net_free(net);
  mesh_loop_free(loop);
  loop = NULL;
}

int main(void)
{
  if (sodium_init() < 0)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spec_parse),
      cmocka_unit_test(test_uniform_within_bounds),
      cmocka_unit_test(test_normal_within_bounds),
      cmocka_unit_test(test_same_seed_same_delays),
      cmocka_unit_test(test_stream_order_kept),
      cmocka_unit_test(test_order_across_spec_change),
      cmocka_unit_test(test_bounds_enforced),
      cmocka_unit_test(test_line_on_the_loop),
      cmocka_unit_test(test_line_releases_to_the_chosen_transport),
  };
  return cmocka_run_group_tests(tests, setup_peers, NULL);
}
