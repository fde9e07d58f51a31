/* Messages held for a peer until its connection is up (src/daemon/sendhold.h). */
#include "src/daemon/sendhold.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

typedef struct seen {
  int n;
  uint8_t first[8]; /* first byte of each message, in order */
} seen;

static void record(void *arg, const mesh_peer_id *to, mesh_class cls, const uint8_t *buf,
                   size_t len)
{
  (void)to;
  (void)cls;
  seen *s = arg;
  assert_true(len > 0);
  if (s->n < 8)
    s->first[s->n] = buf[0];
  s->n++;
}

static mesh_peer_id peer(uint8_t b)
{
  mesh_peer_id p;
  memset(&p, b, sizeof p);
  return p;
}

static void test_release_in_order_per_peer(void **st)
{
  (void)st;
  mesh_sendhold h;
  mesh_sendhold_init(&h);
  mesh_peer_id a = peer(1), b = peer(2);
  uint8_t m1[] = {1}, m2[] = {2}, m3[] = {3};
  assert_int_equal(mesh_sendhold_put(&h, &a, MESH_CLASS_DATAGRAM, m1, 1, 1000), 0);
  assert_int_equal(mesh_sendhold_put(&h, &b, MESH_CLASS_DATAGRAM, m2, 1, 1000), 0);
  assert_int_equal(mesh_sendhold_put(&h, &a, MESH_CLASS_STREAM, m3, 1, 1000), 0);
  seen s = {0};
  mesh_sendhold_take(&h, &a, 500, record, &s);
  assert_int_equal(s.n, 2);
  assert_int_equal(s.first[0], 1);
  assert_int_equal(s.first[1], 3);
  assert_int_equal(h.n, 1); /* b's stays */
  assert_int_equal(h.c.held, 3);
  assert_int_equal(h.c.released, 2);
  mesh_sendhold_clear(&h);
}

static void test_expired_are_dropped(void **st)
{
  (void)st;
  mesh_sendhold h;
  mesh_sendhold_init(&h);
  mesh_peer_id a = peer(1), b = peer(2);
  uint8_t m[] = {9};
  assert_int_equal(mesh_sendhold_put(&h, &a, MESH_CLASS_DATAGRAM, m, 1, 100), 0);
  assert_int_equal(mesh_sendhold_put(&h, &b, MESH_CLASS_DATAGRAM, m, 1, 100), 0);
  seen s = {0};
  mesh_sendhold_take(&h, &a, 101, record, &s);
  assert_int_equal(s.n, 0);
  assert_int_equal(h.n, 0); /* b's expired too */
  assert_int_equal(h.bytes, 0);
  assert_int_equal(h.c.expired, 2);
  mesh_sendhold_clear(&h);
}

static void test_bounded(void **st)
{
  (void)st;
  mesh_sendhold h;
  mesh_sendhold_init(&h);
  mesh_peer_id a = peer(1);
  uint8_t m[] = {7};
  for (int i = 0; i < MESH_SENDHOLD_MAX + 10; i++)
    assert_int_equal(mesh_sendhold_put(&h, &a, MESH_CLASS_DATAGRAM, m, 1, 1000), 0);
  assert_int_equal(h.n, MESH_SENDHOLD_MAX);
  assert_int_equal(h.c.evicted, 10);
  /* Bytes: one message of the whole budget pushes every other out. */
  static uint8_t big[MESH_SENDHOLD_BYTES];
  big[0] = 5;
  assert_int_equal(mesh_sendhold_put(&h, &a, MESH_CLASS_STREAM, big, sizeof big, 1000), 0);
  assert_int_equal(h.n, 1);
  assert_int_equal(h.bytes, sizeof big);
  assert_int_equal(mesh_sendhold_put(&h, &a, MESH_CLASS_STREAM, big, sizeof big + 1, 1000),
                   -EMSGSIZE);
  seen s = {0};
  mesh_sendhold_take(&h, &a, 0, record, &s);
  assert_int_equal(s.n, 1);
  assert_int_equal(s.first[0], 5);
  mesh_sendhold_clear(&h);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_release_in_order_per_peer),
      cmocka_unit_test(test_expired_are_dropped),
      cmocka_unit_test(test_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
