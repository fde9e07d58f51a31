/*
 * Asynchronous name resolution: localhost from /etc/hosts, literals, and
 * names that fail (a loopback nameserver of the test's own that answers
 * "no such name", or never answers) failing cleanly while the loop keeps
 * turning. No query ever leaves loopback: every resolver that could send
 * one is pointed at the test's server.
 */
#include "net/resolve.h"
#include "src/base/clock.h"
#include "src/daemon/loop.h"
#include "support_dns.h"
#include "support_loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static mesh_loop *loop;

typedef struct answer {
  int calls;
  int rc;
  struct sockaddr_storage ss;
  socklen_t len;
} answer;

static void on_answer(void *arg, int rc, const struct sockaddr *sa, socklen_t len)
{
  answer *a = arg;
  a->calls++;
  a->rc = rc;
  a->len = len;
  if (sa != NULL)
    memcpy(&a->ss, sa, len);
}

/* A timer ticking every 5 ms: the loop turned while a lookup waited. */
static int ticks;
static struct event *ticker;

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
  ticks++;
}

static void turn(void)
{
  loop_test_turn(loop);
}

#define WAIT(cond, ms) LOOP_TEST_WAIT(loop, cond, ms)

static mesh_multiaddr addr(const char *text)
{
  mesh_multiaddr a;
  assert_int_equal(mesh_multiaddr_parse(text, &a, NULL), 0);
  return a;
}

/* A resolver that asks only the test's server at ns. */
static mesh_resolver *resolver_on(const char *ns, uint32_t timeout_ms, unsigned max_pending)
{
  mesh_resolver_options o;
  mesh_resolver_options_default(&o);
  o.nameserver = ns;
  if (timeout_ms > 0)
    o.timeout_ms = timeout_ms;
  if (max_pending > 0)
    o.max_pending = max_pending;
  mesh_resolver *r;
  assert_int_equal(mesh_resolver_new(mesh_loop_base(loop), &o, &r), 0);
  return r;
}

static int setup(void **state)
{
  if (loop == NULL) {
    assert_int_equal(mesh_loop_new(&loop), 0);
    ticker = event_new(mesh_loop_base(loop), -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 5000};
    event_add(ticker, &tv);
  }
  ticks = 0;
  return 0;
}

static void test_localhost_and_literals(void **state)
{
  /* The test's silent server is the only one configured: localhost must
   * come from /etc/hosts without a query. */
  char ns[32];
  int sfd = dns_test_server(ns, sizeof ns);
  mesh_resolver *r = resolver_on(ns, 0, 0);

  answer a = {0}, b = {0}, c = {0};
  mesh_multiaddr ma = addr("/dns4/localhost/tcp/4242");
  assert_int_equal(mesh_resolve_start(r, &ma, on_answer, &a, NULL), 0);
  mesh_multiaddr mb = addr("/ip6/::1/tcp/7");
  assert_int_equal(mesh_resolve_start(r, &mb, on_answer, &b, NULL), 0);
  mesh_multiaddr mc = addr("localhost:80");
  assert_int_equal(mesh_resolve_start(r, &mc, on_answer, &c, NULL), 0);
  /* Answers come from the loop, never from inside the start call. */
  assert_int_equal(a.calls + b.calls + c.calls, 0);
  WAIT(a.calls == 1 && b.calls == 1 && c.calls == 1, 2000);

  assert_int_equal(a.rc, 0);
  assert_int_equal(a.ss.ss_family, AF_INET);
  const struct sockaddr_in *in = (const struct sockaddr_in *)&a.ss;
  assert_int_equal(ntohs(in->sin_port), 4242);
  assert_int_equal(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
  assert_int_equal(b.rc, 0);
  assert_int_equal(b.ss.ss_family, AF_INET6);
  assert_int_equal(ntohs(((const struct sockaddr_in6 *)&b.ss)->sin6_port), 7);
  assert_int_equal(c.rc, 0);
  assert_int_equal(ntohs(((const struct sockaddr_in *)&c.ss)->sin_port), 80);

  const mesh_resolver_counters *k = mesh_resolver_counters_of(r);
  assert_int_equal(k->lookups, 3);
  assert_int_equal(k->resolved, 3);
  assert_int_equal(k->failed + k->timed_out + k->cancelled, 0);
  uint8_t q[512];
  assert_true(recv(sfd, q, sizeof q, MSG_DONTWAIT) < 0); /* nothing asked */
  mesh_resolver_free(r);
  close(sfd);
}

static void test_no_such_name_fails_cleanly(void **state)
{
  char ns[32];
  int sfd = dns_test_server(ns, sizeof ns);
  mesh_resolver *r = resolver_on(ns, 3000, 0);
  answer a = {0};
  mesh_multiaddr ma = addr("/dns4/no-such-node.invalid/tcp/1");
  assert_int_equal(mesh_resolve_start(r, &ma, on_answer, &a, NULL), 0);
  int asked = 0;
  mesh_time_ms until = mesh_clock_now_ms() + 2000;
  while (a.calls == 0 && mesh_clock_now_ms() < until) {
    asked += dns_test_answer_nxdomain(sfd);
    turn();
  }
  assert_int_equal(a.calls, 1);
  assert_true(asked >= 1);
  assert_int_equal(a.rc, -EHOSTUNREACH);
  assert_int_equal(mesh_resolver_counters_of(r)->failed, 1);
  assert_int_equal(mesh_resolver_counters_of(r)->resolved, 0);
  mesh_resolver_free(r);
  close(sfd);
}

static void test_silent_server_times_out_loop_runs(void **state)
{
  char ns[32];
  int sfd = dns_test_server(ns, sizeof ns);
  mesh_resolver *r = resolver_on(ns, 300, 0);
  answer a = {0};
  mesh_multiaddr ma = addr("/dns/silent.invalid/tcp/1");
  mesh_time_ms t0 = mesh_clock_now_ms();
  assert_int_equal(mesh_resolve_start(r, &ma, on_answer, &a, NULL), 0);
  /* The start call returned without waiting for the server. */
  assert_true(mesh_clock_now_ms() - t0 < 100);
  WAIT(a.calls == 1, 3000);
  mesh_time_ms took = mesh_clock_now_ms() - t0;
  assert_int_equal(a.rc, -ETIMEDOUT);
  assert_true(took >= 250); /* at the deadline (timer granularity aside), not at once */
  /* The loop kept turning while the lookup waited: the 5 ms ticker ran. */
  assert_true(ticks >= 20);
  uint8_t q[512];
  assert_true(recv(sfd, q, sizeof q, MSG_DONTWAIT) > 12); /* it was asked */
  assert_int_equal(mesh_resolver_counters_of(r)->timed_out, 1);
  mesh_resolver_free(r);
  close(sfd);
}

static void test_cancel_bounds_and_free(void **state)
{
  char ns[32];
  int sfd = dns_test_server(ns, sizeof ns);
  mesh_resolver *r = resolver_on(ns, 0, 2);
  answer a = {0}, b = {0}, c = {0};
  mesh_resolve_req *qa;
  mesh_multiaddr m1 = addr("/dns4/one.invalid/tcp/1");
  mesh_multiaddr m2 = addr("/dns6/two.invalid/tcp/2");
  assert_int_equal(mesh_resolve_start(r, &m1, on_answer, &a, &qa), 0);
  assert_int_equal(mesh_resolve_start(r, &m2, on_answer, &b, NULL), 0);
  assert_int_equal(mesh_resolve_start(r, &m1, on_answer, &c, NULL), -EBUSY);
  mesh_resolve_cancel(qa);
  /* A slot is free again. */
  assert_int_equal(mesh_resolve_start(r, &m1, on_answer, &c, NULL), 0);
  for (int i = 0; i < 10; i++)
    turn();
  /* Freeing with lookups running cancels them: no callback, then or later. */
  mesh_resolver_free(r);
  mesh_time_ms until = mesh_clock_now_ms() + 50;
  while (mesh_clock_now_ms() < until)
    turn();
  assert_int_equal(a.calls + b.calls + c.calls, 0);

  /* Either family (two queries each), freed at once, while answers for
   * some of the queries come in, and freed after a few turns. */
  for (int round = 0; round < 2; round++) {
    r = resolver_on(ns, 0, 0);
    answer d[8] = {0};
    mesh_multiaddr m3 = addr("/dns/both.invalid/tcp/3");
    for (int i = 0; i < 8; i++)
      assert_int_equal(mesh_resolve_start(r, &m3, on_answer, &d[i], NULL), 0);
    for (int i = 0; i < 3 * round; i++) {
      turn();
      dns_test_answer_nxdomain(sfd);
    }
    /* Lookups answered before the free have had their callback; the rest
     * never get one. */
    int before[8];
    for (int i = 0; i < 8; i++)
      before[i] = d[i].calls;
    mesh_resolver_free(r);
    until = mesh_clock_now_ms() + 50;
    while (mesh_clock_now_ms() < until) {
      dns_test_answer_nxdomain(sfd);
      turn();
    }
    for (int i = 0; i < 8; i++)
      assert_int_equal(d[i].calls, before[i]);
  }
  assert_int_equal(mesh_resolver_new(mesh_loop_base(loop),
                                     &(mesh_resolver_options){.nameserver = "not an address"}, &r),
                   -EINVAL);
  close(sfd);
}

static void test_hook_sets_default_nameserver(void **state)
{
  mesh_resolver_options o;
  mesh_resolver_test_nameserver("127.0.0.1:53535");
  mesh_resolver_options_default(&o);
  assert_string_equal(o.nameserver, "127.0.0.1:53535");
  mesh_resolver_test_nameserver(NULL);
  mesh_resolver_options_default(&o);
  assert_null(o.nameserver);
  assert_int_equal(o.timeout_ms, 5000);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_localhost_and_literals, setup),
      cmocka_unit_test_setup(test_no_such_name_fails_cleanly, setup),
      cmocka_unit_test_setup(test_silent_server_times_out_loop_runs, setup),
      cmocka_unit_test_setup(test_cancel_bounds_and_free, setup),
      cmocka_unit_test_setup(test_hook_sets_default_nameserver, setup),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  if (ticker != NULL)
    event_free(ticker);
  mesh_loop_free(loop);
  return rc;
}
