/*
 * Tests of src/daemon/loop: libevent's own messages reach meshd's log
 * through the rate limiter, so that a message libevent repeats on every
 * turn (a failing accept, a bad descriptor) can never flood the log.
 */
#include "src/daemon/loop.h"
#include "src/base/log.h"

#include <event2/event.h>
#include <event2/util.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static uint64_t fake_now;

static uint64_t now_fn(void)
{
  return fake_now;
}

static uint64_t wall_fn(void)
{
  return 1700000000000ull;
}

static char *buf;
static size_t len;
static FILE *out;

static int setup(void **state)
{
  buf = NULL;
  len = 0;
  out = open_memstream(&buf, &len);
  assert_non_null(out);
  mesh_log_set_output(out);
  mesh_log_set_clock(now_fn, wall_fn);
  mesh_log_set_level(MESH_LOG_INFO);
  fake_now = 1000000;
  return 0;
}

static int teardown(void **state)
{
  mesh_log_set_output(NULL);
  mesh_log_set_clock(NULL, NULL);
  fclose(out);
  free(buf);
  return 0;
}

static size_t lines_with(const char *needle)
{
  fflush(out);
  size_t n = 0;
  for (const char *p = buf; p != NULL && (p = strstr(p, needle)) != NULL; p += strlen(needle))
    n++;
  return n;
}

/* libevent's own warning, raised by libevent itself, many times in one
 * window: at most MESH_LOG_RL_BURST lines, then one summary in the next. */
static void test_libevent_warnings_are_rate_limited(void **state)
{
  mesh_loop *l = NULL;
  assert_int_equal(mesh_loop_new(&l), 0);
  for (int i = 0; i < 100000; i++)
    assert_int_equal(evutil_make_socket_nonblocking(-1), -1);
  assert_int_equal(lines_with("fcntl(-1, F_GETFL)"), MESH_LOG_RL_BURST);
  assert_int_equal(lines_with(" warn  libevent "), MESH_LOG_RL_BURST);
  fake_now += MESH_LOG_RL_WINDOW_MS;
  assert_int_equal(evutil_make_socket_nonblocking(-1), -1);
  assert_int_equal(lines_with("similar lines suppressed"), 1);
  assert_int_equal(lines_with("fcntl(-1, F_GETFL)"), MESH_LOG_RL_BURST + 1);
  mesh_loop_free(l);
}

/* Each severity has its own limit: a flood of warnings does not hide an
 * error; debug messages stay below the default level. */
static void test_severities(void **state)
{
  for (int i = 0; i < 50; i++)
    mesh_loop_libevent_log(EVENT_LOG_WARN, "flood");
  mesh_loop_libevent_log(EVENT_LOG_ERR, "the error");
  mesh_loop_libevent_log(EVENT_LOG_MSG, "a message");
  mesh_loop_libevent_log(EVENT_LOG_DEBUG, "a debug line");
  assert_int_equal(lines_with("flood"), MESH_LOG_RL_BURST);
  assert_int_equal(lines_with(" error libevent "), 1);
  assert_int_equal(lines_with("the error"), 1);
  assert_int_equal(lines_with(" info  libevent "), 1);
  assert_int_equal(lines_with("a debug line"), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_libevent_warnings_are_rate_limited, setup, teardown),
      cmocka_unit_test_setup_teardown(test_severities, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
