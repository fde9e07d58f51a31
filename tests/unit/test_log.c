/*
 * Tests of src/base/log: the text and JSON line formats, level filtering,
 * the rate limiter (driven by a virtual clock), and the level and format
 * parsers. Output goes to a memory stream through mesh_log_set_output.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/base/log.h"

static uint64_t fake_now;
/* 2023-11-14T22:13:20.123Z */
static const uint64_t fake_wall = 1700000000123ull;

static uint64_t now_fn(void)
{
  return fake_now;
}

static uint64_t wall_fn(void)
{
  return fake_wall;
}

struct capture {
  char *buf;
  size_t len;
  FILE *f;
};

static struct capture cap;

static int setup(void **state)
{
  cap.buf = NULL;
  cap.len = 0;
  cap.f = open_memstream(&cap.buf, &cap.len);
  assert_non_null(cap.f);
  mesh_log_set_output(cap.f);
  mesh_log_set_clock(now_fn, wall_fn);
  mesh_log_set_level(MESH_LOG_INFO);
  mesh_log_set_format(MESH_LOG_TEXT);
  fake_now = 50000;
  return 0;
}

static int teardown(void **state)
{
  mesh_log_set_output(NULL);
  mesh_log_set_clock(NULL, NULL);
  mesh_log_set_format(MESH_LOG_TEXT);
  mesh_log_set_level(MESH_LOG_INFO);
  fclose(cap.f);
  free(cap.buf);
  return 0;
}

/* The captured text so far. */
static const char *text(void)
{
  fflush(cap.f);
  return cap.buf != NULL ? cap.buf : "";
}

static int count_lines(const char *s)
{
  int n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

static int count_substr(const char *s, const char *sub)
{
  int n = 0;
  for (const char *p = strstr(s, sub); p != NULL; p = strstr(p + 1, sub))
    n++;
  return n;
}

static void test_text_line(void **state)
{
  int line = __LINE__ + 1;
  LOG_INFO("swim", "probe of %s failed after %d ms", "peer-a", 500);
  char want[256];
  snprintf(want, sizeof want,
           "2023-11-14T22:13:20.123Z info  swim test_text_line:%d probe of peer-a failed after "
           "500 ms\n",
           line);
  assert_string_equal(text(), want);
}

static void test_json_line(void **state)
{
  mesh_log_set_format(MESH_LOG_JSON);
  int line = __LINE__ + 1;
  LOG_WARN("net", "bad frame from \"%s\"\n\tdropped", "x\\y");
  char want[512];
  snprintf(want, sizeof want,
           "{\"time\":\"2023-11-14T22:13:20.123Z\",\"level\":\"warn\",\"module\":\"net\","
           "\"func\":\"test_json_line\",\"line\":%d,"
           "\"msg\":\"bad frame from \\\"x\\\\y\\\"\\n\\u0009dropped\"}\n",
           line);
  assert_string_equal(text(), want);
}

static void test_level_filtering(void **state)
{
  uint64_t debug_before = mesh_log_count(MESH_LOG_DEBUG);
  uint64_t warn_before = mesh_log_count(MESH_LOG_WARN);
  mesh_log_set_level(MESH_LOG_WARN);
  LOG_DEBUG("t", "debug line");
  LOG_INFO("t", "info line");
  LOG_WARN("t", "warn line");
  LOG_ERROR("t", "error line");
  const char *s = text();
  assert_int_equal(count_lines(s), 2);
  assert_null(strstr(s, "info line"));
  assert_null(strstr(s, "debug line"));
  assert_non_null(strstr(s, "warn line"));
  assert_non_null(strstr(s, "error line"));
  assert_int_equal(mesh_log_count(MESH_LOG_DEBUG), debug_before);
  assert_int_equal(mesh_log_count(MESH_LOG_WARN), warn_before + 1);

  mesh_log_set_level(MESH_LOG_DEBUG);
  LOG_DEBUG("t", "debug now");
  assert_int_equal(count_lines(text()), 3);
  assert_int_equal(mesh_log_count(MESH_LOG_DEBUG), debug_before + 1);
}

static void test_rate_limit_burst_then_summary(void **state)
{
  mesh_log_rl rl = {0};
  /* 20 lines inside one window: the first MESH_LOG_RL_BURST are printed. */
  for (int i = 0; i < 20; i++) {
    fake_now = 50000 + (uint64_t)i * 10;
    mesh_log_write_rl(&rl, MESH_LOG_WARN, "net", "recv", 7, "bad packet %d", i);
  }
  assert_int_equal(count_lines(text()), MESH_LOG_RL_BURST);
  assert_non_null(strstr(text(), "bad packet 4"));
  assert_null(strstr(text(), "bad packet 5"));
  assert_int_equal(rl.suppressed, 20 - MESH_LOG_RL_BURST);

  /* Just before the window ends: still suppressed. */
  fake_now = 50000 + MESH_LOG_RL_WINDOW_MS - 1;
  mesh_log_write_rl(&rl, MESH_LOG_WARN, "net", "recv", 7, "bad packet %d", 20);
  assert_int_equal(count_lines(text()), MESH_LOG_RL_BURST);

  /* After the window: one summary of the 16 dropped lines, then the line. */
  fake_now = 50000 + MESH_LOG_RL_WINDOW_MS;
  mesh_log_write_rl(&rl, MESH_LOG_WARN, "net", "recv", 7, "bad packet %d", 21);
  const char *s = text();
  assert_int_equal(count_lines(s), MESH_LOG_RL_BURST + 2);
  assert_int_equal(count_substr(s, "16 similar lines suppressed"), 1);
  assert_non_null(strstr(s, "bad packet 21"));
  const char *summary = strstr(s, "suppressed");
  assert_true(summary < strstr(s, "bad packet 21"));
  assert_int_equal(rl.suppressed, 0);
  assert_int_equal(rl.printed, 1);
}

static void test_rate_limit_quiet_window_no_summary(void **state)
{
  mesh_log_rl rl = {0};
  /* A virtual clock starting at 0 must also start a window at the first line. */
  fake_now = 0;
  for (int i = 0; i < 3; i++)
    mesh_log_write_rl(&rl, MESH_LOG_INFO, "net", "recv", 1, "line %d", i);
  fake_now = 3 * MESH_LOG_RL_WINDOW_MS;
  mesh_log_write_rl(&rl, MESH_LOG_INFO, "net", "recv", 1, "line %d", 3);
  assert_int_equal(count_lines(text()), 4);
  assert_null(strstr(text(), "suppressed"));
}

static void test_rate_limit_macro_per_site(void **state)
{
  for (int i = 0; i < 12; i++) {
    MESH_LOG_RL(MESH_LOG_WARN, "site", "first site %d", i);
    MESH_LOG_RL(MESH_LOG_WARN, "site", "second site %d", i);
  }
  assert_int_equal(count_substr(text(), "first site"), MESH_LOG_RL_BURST);
  assert_int_equal(count_substr(text(), "second site"), MESH_LOG_RL_BURST);
}

static void test_parse_level_and_format(void **state)
{
  static const struct {
    const char *s;
    mesh_log_level l;
  } levels[] = {{"error", MESH_LOG_ERROR},
                {"warn", MESH_LOG_WARN},
                {"info", MESH_LOG_INFO},
                {"debug", MESH_LOG_DEBUG}};
  for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
    mesh_log_level l = MESH_LOG_ERROR;
    assert_int_equal(mesh_log_parse_level(levels[i].s, &l), 0);
    assert_int_equal(l, levels[i].l);
  }
  mesh_log_level l = MESH_LOG_DEBUG;
  assert_int_equal(mesh_log_parse_level("verbose", &l), -EINVAL);
  assert_int_equal(mesh_log_parse_level("", &l), -EINVAL);
  assert_int_equal(mesh_log_parse_level("INFO ", &l), -EINVAL);
  assert_int_equal(l, MESH_LOG_DEBUG);

  mesh_log_format f = MESH_LOG_TEXT;
  assert_int_equal(mesh_log_parse_format("json", &f), 0);
  assert_int_equal(f, MESH_LOG_JSON);
  assert_int_equal(mesh_log_parse_format("text", &f), 0);
  assert_int_equal(f, MESH_LOG_TEXT);
  assert_int_equal(mesh_log_parse_format("xml", &f), -EINVAL);
}

static void test_long_message_truncated(void **state)
{
  char big[3000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  LOG_INFO("t", "%s", big);
  const char *s = text();
  assert_int_equal(count_lines(s), 1);
  assert_true(strlen(s) < 1200);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_text_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_json_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_level_filtering, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rate_limit_burst_then_summary, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rate_limit_quiet_window_no_summary, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rate_limit_macro_per_site, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parse_level_and_format, setup, teardown),
      cmocka_unit_test_setup_teardown(test_long_message_truncated, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
