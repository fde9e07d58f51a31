/*
 * Transport decorators (mesh_net_wrap, net/transport.h): a decorator wraps
 * the transports registered before it and after it, sees every send the
 * net routes to them, leaves each transport's own state reachable, is
 * finished outermost first with its argument released after the
 * transports, and a decorator that fails leaves nothing wrapped.
 */
#include "net/transport.h"
#include "src/daemon/loop.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

/* What happened, in order: one letter per event (a log of at most 63). */
static char events[64];

static void note(char c)
{
  size_t n = strlen(events);
  if (n + 1 < sizeof events) {
    events[n] = c;
    events[n + 1] = '\0';
  }
}

/* --- A fake datagram transport: carries datagrams to every peer. --- */

typedef struct fake {
  int sends; /* messages it was handed */
} fake;

static int fake_init(mesh_net *net, const mesh_net_options *opt, mesh_transport_counters *c,
                     void **state)
{
  (void)net;
  (void)opt;
  (void)c;
  fake *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -ENOMEM;
  *state = f;
  return 0;
}

static void fake_fini(void *state)
{
  note('F');
  free(state);
}

static bool fake_can_send(void *state, const mesh_peer_id *peer, mesh_class cls)
{
  (void)state;
  (void)peer;
  return cls == MESH_CLASS_DATAGRAM;
}

static int fake_send(void *state, const mesh_peer_id *peer, mesh_channel ch, mesh_class cls,
                     const uint8_t *buf, size_t len)
{
  (void)peer;
  (void)ch;
  (void)cls;
  (void)buf;
  (void)len;
  ((fake *)state)->sends++;
  return 0;
}

static const mesh_transport_ops fake_transport = {
    .scheme = "fake",
    .role = MESH_TRANSPORT_PATH,
    .init = fake_init,
    .fini = fake_fini,
    .can_send = fake_can_send,
    .send = fake_send,
};

/* --- A counting decorator --- */

typedef struct counter {
  int wrapped;   /* transports it wraps */
  int sends;     /* sends it saw */
  int fail_at;   /* the wrap call that fails (1-based); 0: none */
  int calls;     /* wrap calls */
  bool released; /* its release ran */
} counter;

typedef struct cwrap {
  mesh_transport_ops ops;
  counter *c;
  const mesh_transport_ops *inner;
  void *inner_state;
} cwrap;

static bool cw_can_send(void *state, const mesh_peer_id *peer, mesh_class cls)
{
  cwrap *w = state;
  return w->inner->can_send(w->inner_state, peer, cls);
}

static int cw_send(void *state, const mesh_peer_id *peer, mesh_channel ch, mesh_class cls,
                   const uint8_t *buf, size_t len)
{
  cwrap *w = state;
  w->c->sends++;
  return w->inner->send(w->inner_state, peer, ch, cls, buf, len);
}

static void cw_fini(void *state)
{
  cwrap *w = state;
  w->c->wrapped--;
  note('W');
  free(w);
}

static int cw_wrap(void *arg, const mesh_transport_ops *inner, void *inner_state,
                   const mesh_transport_ops **ops, void **state)
{
  counter *c = arg;
  if (++c->calls == c->fail_at)
    return -EIO;
  cwrap *w = calloc(1, sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  /* The members this test uses; a real decorator forwards every one. */
  w->ops = (mesh_transport_ops){.scheme = inner->scheme,
                                .role = inner->role,
                                .fini = cw_fini,
                                .can_send = cw_can_send,
                                .send = cw_send};
  w->c = c;
  w->inner = inner;
  w->inner_state = inner_state;
  c->wrapped++;
  *ops = &w->ops;
  *state = w;
  return 0;
}

static void cw_release(void *arg)
{
  ((counter *)arg)->released = true;
  note('R');
}

static mesh_loop *loop;
static mesh_identity self;

static mesh_net *net_open(void)
{
  mesh_net_options o;
  mesh_net_options_default(&o);
  o.identity = &self;
  o.epoch = 1;
  randombytes_buf(o.psk.key, sizeof o.psk.key);
  o.base = mesh_loop_base(loop);
  o.rng_seed = 5;
  mesh_net *net;
  assert_int_equal(mesh_net_new(&o, &net), 0);
  return net;
}

static int setup(void **state)
{
  (void)state;
  events[0] = '\0';
  if (loop == NULL) {
    assert_int_equal(mesh_loop_new(&loop), 0);
    assert_int_equal(mesh_identity_generate(&self), 0);
  }
  return 0;
}

static void test_wraps_before_and_after(void **state)
{
  (void)state;
  mesh_net *net = net_open();
  counter c = {0};
  assert_int_equal(mesh_net_wrap(net, cw_wrap, cw_release, &c), 0);
  assert_int_equal(c.wrapped, 1); /* TCP, registered by mesh_net_new */
  assert_int_equal(mesh_net_register(net, &fake_transport), 0);
  assert_int_equal(c.wrapped, 2);

  /* Still the same transports to the net, under their own schemes. */
  assert_int_equal(mesh_net_transport_count(net), 2);
  assert_string_equal(mesh_net_scheme(net, 1), "fake");
  /* A transport's own accessors get its own state, not the decorator's. */
  fake *f = mesh_net_state_of(net, "fake");
  assert_non_null(f);

  mesh_peer_id peer;
  memset(&peer, 7, sizeof peer);
  uint8_t msg[8] = {1};
  assert_string_equal(mesh_net_route(net, &peer, MESH_CLASS_DATAGRAM), "fake");
  assert_int_equal(mesh_net_send(net, &peer, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, msg, sizeof msg),
                   0);
  assert_int_equal(c.sends, 1);
  assert_int_equal(f->sends, 1);
  /* No route for a stream: the net answers, no decorator is asked. */
  assert_int_equal(mesh_net_send(net, &peer, MESH_CH_COORD, MESH_CLASS_STREAM, msg, sizeof msg),
                   -ENOTCONN);
  assert_int_equal(c.sends, 1);

  /* Decorators go before their transport, the argument after them all. */
  mesh_net_free(net);
  assert_int_equal(c.wrapped, 0);
  assert_true(c.released);
  assert_string_equal(events, "WFWR");
}

static void test_failed_wrap_leaves_nothing(void **state)
{
  (void)state;
  mesh_net *net = net_open();
  assert_int_equal(mesh_net_register(net, &fake_transport), 0);
  counter c = {.fail_at = 2};
  assert_int_equal(mesh_net_wrap(net, cw_wrap, cw_release, &c), -EIO);
  assert_int_equal(c.wrapped, 0); /* the first transport's decorator undone */
  mesh_peer_id peer;
  memset(&peer, 7, sizeof peer);
  uint8_t msg[4] = {0};
  assert_int_equal(mesh_net_send(net, &peer, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, msg, sizeof msg),
                   0);
  assert_int_equal(c.sends, 0);
  assert_int_equal(((fake *)mesh_net_state_of(net, "fake"))->sends, 1);

  /* A decorator that fails for a transport registered later: that
   * transport is refused, and finished. */
  counter d = {.fail_at = 3};
  mesh_net_free(net);
  assert_false(c.released); /* still the caller's */
  events[0] = '\0';
  net = net_open();
  assert_int_equal(mesh_net_wrap(net, cw_wrap, cw_release, &d), 0);
  assert_int_equal(mesh_net_wrap(net, cw_wrap, cw_release, &d), 0);
  assert_int_equal(d.wrapped, 2);
  assert_int_equal(mesh_net_register(net, &fake_transport), -EIO);
  assert_int_equal(d.wrapped, 2);
  assert_int_equal(mesh_net_transport_count(net), 1);
  assert_null(mesh_net_state_of(net, "fake"));
  assert_string_equal(events, "F");
  /* Room for MESH_NET_MAX_WRAPS decorators. */
  assert_int_equal(mesh_net_wrap(net, cw_wrap, cw_release, &d), -ENOSPC);
  mesh_net_free(net);
  assert_int_equal(d.wrapped, 0);
}

static int teardown_all(void **state)
{
  (void)state;
  mesh_loop_free(loop);
  loop = NULL;
  return 0;
}

static int fake_listen(void *state, const mesh_multiaddr *addr, mesh_multiaddr *bound)
{
  (void)state, (void)addr, (void)bound;
  return 0;
}

/* One connection transport, first; a path may neither listen nor dial. */
static void test_roles(void **state)
{
  (void)state;
  mesh_net *net = net_open();
  mesh_transport_ops second = fake_transport;
  second.scheme = "second";
  second.role = MESH_TRANSPORT_CONNECTIONS;
  assert_int_equal(mesh_net_register(net, &second), -EINVAL);
  mesh_transport_ops listening = fake_transport;
  listening.scheme = "listening";
  listening.listen = fake_listen;
  assert_int_equal(mesh_net_register(net, &listening), -EINVAL);
  assert_int_equal(mesh_net_transport_count(net), 1);
  assert_int_equal(mesh_net_register(net, &fake_transport), 0);
  assert_int_equal(mesh_net_transport_count(net), 2);
  mesh_net_free(net);
}

int main(void)
{
  if (sodium_init() < 0)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_wraps_before_and_after, setup),
      cmocka_unit_test_setup(test_failed_wrap_leaves_nothing, setup),
      cmocka_unit_test_setup(test_roles, setup),
  };
  return cmocka_run_group_tests(tests, NULL, teardown_all);
}
