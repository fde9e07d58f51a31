/*
 * Range bookkeeping of a file fetched from several sources at once: how a
 * file is cut, which range is claimed next, what a restart keeps, and the
 * sidecar text refused when it is anything but what was written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "coord/hf_ranges.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void test_cut(void **state)
{
  (void)state;
  mesh_hf_ranges r;
  assert_int_equal(mesh_hf_ranges_init(&r, 10 * 1000 + 1, 1000), 0);
  assert_int_equal(r.n, 11);
  assert_int_equal(mesh_hf_range_start(&r, 10), 10000);
  assert_int_equal(mesh_hf_range_end(&r, 10), 10001);
  assert_int_equal(mesh_hf_range_end(&r, 3), 4000);
  assert_int_equal(mesh_hf_range_of(&r, 3999), 3);
  assert_int_equal(mesh_hf_range_of(&r, 4000), 4);
  assert_false(mesh_hf_ranges_complete(&r));
  mesh_hf_ranges_free(&r);
  assert_int_equal(mesh_hf_ranges_init(&r, 0, 1000), -EINVAL);
  assert_int_equal(mesh_hf_ranges_init(&r, 1000, 0), -EINVAL);
  assert_int_equal(mesh_hf_ranges_init(&r, (uint64_t)MESH_HF_RANGES_MAX + 1, 1), -EINVAL);
}

static void test_claims_spread_and_wrap(void **state)
{
  (void)state;
  mesh_hf_ranges r;
  assert_int_equal(mesh_hf_ranges_init(&r, 4000, 1000), 0);
  assert_int_equal(mesh_hf_ranges_next_missing(&r, 0), 0);
  r.state[0] = MESH_HF_RANGE_CLAIMED;
  assert_int_equal(mesh_hf_ranges_next_missing(&r, 0), 1);
  r.state[3] = MESH_HF_RANGE_DONE;
  assert_int_equal(mesh_hf_ranges_next_missing(&r, 3), 1); /* wraps past the end */
  r.state[1] = r.state[2] = MESH_HF_RANGE_CLAIMED;
  assert_int_equal(mesh_hf_ranges_next_missing(&r, 0), -1);
  /* A lane hands back range 2 after 300 bytes: they count, and stay. */
  r.state[2] = MESH_HF_RANGE_MISSING;
  r.got[2] = 300;
  assert_int_equal(mesh_hf_ranges_have(&r), 1000 + 300);
  assert_int_equal(mesh_hf_ranges_done(&r), 1);
  for (uint32_t i = 0; i < r.n; i++)
    r.state[i] = MESH_HF_RANGE_DONE;
  assert_true(mesh_hf_ranges_complete(&r));
  assert_int_equal(mesh_hf_ranges_have(&r), 4000);
  mesh_hf_ranges_free(&r);
}

static void test_prefix_of_an_in_order_partial(void **state)
{
  (void)state;
  mesh_hf_ranges r;
  assert_int_equal(mesh_hf_ranges_init(&r, 4500, 1000), 0);
  mesh_hf_ranges_take_prefix(&r, 2999); /* range 2 is one byte short */
  assert_int_equal(mesh_hf_ranges_done(&r), 2);
  assert_int_equal(r.state[2], MESH_HF_RANGE_MISSING);
  mesh_hf_ranges_take_prefix(&r, 4500);
  assert_true(mesh_hf_ranges_complete(&r));
  mesh_hf_ranges_free(&r);
}

static void test_sidecar_round_trip(void **state)
{
  (void)state;
  mesh_hf_ranges r, back;
  char text[MESH_HF_RANGES_TEXT_MAX];
  assert_int_equal(mesh_hf_ranges_init(&r, 20500, 1000), 0);
  r.state[0] = r.state[9] = r.state[20] = MESH_HF_RANGE_DONE;
  r.state[5] = MESH_HF_RANGE_CLAIMED; /* only DONE survives a restart */
  r.got[5] = 10;
  int len = mesh_hf_ranges_encode(&r, text, sizeof text);
  assert_true(len > 0);
  assert_string_equal(text, "meshd-ranges 1 20500 1000 21\n010210\n");
  assert_int_equal(mesh_hf_ranges_init(&back, 20500, 1000), 0);
  assert_int_equal(mesh_hf_ranges_decode(&back, text, (size_t)len), 0);
  for (uint32_t i = 0; i < r.n; i++)
    assert_int_equal(back.state[i] == MESH_HF_RANGE_DONE, i == 0 || i == 9 || i == 20);
  assert_int_equal(mesh_hf_ranges_have(&back), 1000 + 1000 + 500);
  mesh_hf_ranges_free(&back);
  /* Another size or range size: not this file's table. */
  assert_int_equal(mesh_hf_ranges_init(&back, 20500, 2000), 0);
  assert_int_equal(mesh_hf_ranges_decode(&back, text, (size_t)len), -ESTALE);
  assert_int_equal(mesh_hf_ranges_done(&back), 0);
  mesh_hf_ranges_free(&back);
  assert_int_equal(mesh_hf_ranges_encode(&r, text, 10), -ENOSPC);
  mesh_hf_ranges_free(&r);
}

static void test_sidecar_refused(void **state)
{
  (void)state;
  static const char *bad[] = {
      "",
      "meshd-ranges 2 20500 1000 21\n010210\n",           /* version */
      "meshd-ranges 1 20500 1000 22\n010210\n",           /* count does not fit */
      "meshd-ranges 1 20500 1000 21\n01021\n",            /* short bitmap */
      "meshd-ranges 1 20500 1000 21\n0102100\n",          /* long bitmap */
      "meshd-ranges 1 20500 1000 21\n01021g\n",           /* not hex */
      "meshd-ranges 1 20500 1000 21\n0102F0\n",           /* upper case */
      "meshd-ranges 1 20500 1000 21\n0102f0\n",           /* bits past the last range */
      "meshd-ranges 1 20500 1000 21\n010210",             /* no final newline */
      "meshd-ranges 1 20500 0 21\n010210\n",              /* range size 0 */
      "meshd-ranges 1 -20500 1000 21\n010210\n",          /* sign */
      "meshd-ranges 1 99999999999999999999999 1 1\n01\n", /* overflow */
      "meshd-ranges 1 20500 1000 021\n010210\n",          /* leading zero */
      "meshd-ranges 1 020500 1000 21\n010210\n",          /* leading zero */
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    mesh_hf_ranges r;
    assert_int_equal(mesh_hf_ranges_init(&r, 20500, 1000), 0);
    int rc = mesh_hf_ranges_decode(&r, bad[k], strlen(bad[k]));
    if (rc != -EBADMSG)
      fail_msg("sidecar %zu taken (%d): %s", k, rc, bad[k]);
    assert_int_equal(mesh_hf_ranges_done(&r), 0);
    mesh_hf_ranges_free(&r);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cut),
      cmocka_unit_test(test_claims_spread_and_wrap),
      cmocka_unit_test(test_prefix_of_an_in_order_partial),
      cmocka_unit_test(test_sidecar_round_trip),
      cmocka_unit_test(test_sidecar_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
