/*
 * The test-only switches (src/daemon/test_faults.h): nothing set gives no
 * hooks at all (the production case); each switch's value is checked once,
 * a bad one refused with the variable's name; and each hook does what its
 * switch says, counted where the switch counts (view events, bulk frames).
 */
#include "src/daemon/test_faults.h"

#include "net/rdma.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char *const all[] = {
    "MESHD_TEST_FAULTS",          "MESHD_TEST_RDMA_BULK_DROP",    "MESHD_TEST_STORE_FAIL",
    "MESHD_TEST_SLOW_STORE_MS",   "MESHD_TEST_SLOW_SYNC_MS",      "MESHD_TEST_LOSE_VIEW_EVENTS",
    "MESHD_TEST_RANGE_KIB",       "MESHD_TEST_TAMPER_FILE_LISTS", "MESHD_TEST_CORRUPT_UPLOADS",
    "MESHD_TEST_SLOW_UPLOADS_MS",
};

static int clear_all(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    unsetenv(all[i]);
  return 0;
}

static void test_none_set_is_production(void **state)
{
  (void)state;
  setenv("MESHD_TEST_CORRUPT_UPLOADS", "", 1); /* empty: unset */
  mesh_test_faults *tf = (mesh_test_faults *)1;
  char err[200] = "";
  assert_int_equal(mesh_test_faults_read(&tf, err, sizeof err), 0);
  assert_null(tf);
  assert_null(mesh_test_faults_node_hooks(tf));
  assert_null(mesh_test_faults_downloads_hooks(tf));
  assert_false(mesh_test_faults_active(tf));
  assert_null(mesh_test_faults_line(tf));
  mesh_test_faults_free(tf);
}

static void test_bad_values_refused(void **state)
{
  (void)state;
  static const struct {
    const char *name, *value;
  } bad[] = {
      {"MESHD_TEST_SLOW_SYNC_MS", "abc"},
      {"MESHD_TEST_SLOW_SYNC_MS", "600001"},
      {"MESHD_TEST_STORE_FAIL", "0"},
      {"MESHD_TEST_STORE_FAIL", "-1"},
      {"MESHD_TEST_CORRUPT_UPLOADS", "2"},
      {"MESHD_TEST_TAMPER_FILE_LISTS", "yes"},
      {"MESHD_TEST_RANGE_KIB", "1048577"},
      {"MESHD_TEST_LOSE_VIEW_EVENTS", "3x"},
      {"MESHD_TEST_RDMA_BULK_DROP", "4294967296"},
      {"MESHD_TEST_SLOW_UPLOADS_MS", " 5"},
      {"MESHD_TEST_FAULTS", "delay=banana"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    clear_all(NULL);
    setenv(bad[i].name, bad[i].value, 1);
    mesh_test_faults *tf = NULL;
    char err[200] = "";
    assert_int_equal(mesh_test_faults_read(&tf, err, sizeof err), -EINVAL);
    assert_null(tf);
    assert_non_null(strstr(err, bad[i].name));
  }
}

static void test_hooks_do_what_the_switches_say(void **state)
{
  (void)state;
  setenv("MESHD_TEST_LOSE_VIEW_EVENTS", "2", 1);
  setenv("MESHD_TEST_CORRUPT_UPLOADS", "1", 1);
  setenv("MESHD_TEST_TAMPER_FILE_LISTS", "1", 1);
  setenv("MESHD_TEST_RANGE_KIB", "64", 1);
  setenv("MESHD_TEST_SLOW_SYNC_MS", "1", 1);
  setenv("MESHD_TEST_RDMA_BULK_DROP", "3", 1);
  mesh_test_faults *tf = NULL;
  char err[200] = "";
  assert_int_equal(mesh_test_faults_read(&tf, err, sizeof err), 0);
  assert_non_null(tf);
  assert_true(mesh_test_faults_active(tf));
  const mesh_downloads_hooks *h = mesh_test_faults_downloads_hooks(tf);
  assert_non_null(h);

  /* The first two view events are withheld, then every one passes. */
  int passed = 0;
  for (int i = 0; i < 5; i++)
    passed += h->pass_view_event(h->arg) ? 1 : 0;
  assert_int_equal(passed, 3);

  uint8_t chunk[8] = {0};
  assert_true(h->chunk_out(h->arg, chunk, sizeof chunk));
  assert_int_equal(chunk[4], 0xff);
  assert_false(h->chunk_out(h->arg, chunk, 0));

  uint8_t list[4] = {'a', 'b', 'c', '\n'};
  h->list_sealed(h->arg, list, sizeof list);
  assert_int_equal(list[2], 'c' ^ 0x01);

  mesh_hf_options o;
  memset(&o, 0, sizeof o);
  h->hf_options(h->arg, &o);
  assert_int_equal(o.range_bytes, 64 << 10);
  assert_int_equal(o.range_threshold, 128 << 10);
  assert_non_null(o.before_sync);
  o.before_sync(o.before_sync_arg); /* waits 1 ms */

  /* Every third bulk frame over RDMA is lost. */
  const mesh_node_hooks *nh = mesh_test_faults_node_hooks(tf);
  assert_non_null(nh);
  mesh_rdma_config c;
  mesh_rdma_config_default(&c);
  nh->rdma_config(nh->arg, &c);
  assert_non_null(c.bulk_lose);
  int lost = 0;
  for (int i = 0; i < 9; i++)
    lost += c.bulk_lose(c.bulk_lose_arg) ? 1 : 0;
  assert_int_equal(lost, 3);
  assert_null(mesh_test_faults_line(tf)); /* no MESHD_TEST_FAULTS: no delay line */
  mesh_test_faults_free(tf);
}

static void test_unset_switches_change_nothing(void **state)
{
  (void)state;
  setenv("MESHD_TEST_SLOW_STORE_MS", "1", 1); /* one switch: the others stay off */
  mesh_test_faults *tf = NULL;
  char err[200] = "";
  assert_int_equal(mesh_test_faults_read(&tf, err, sizeof err), 0);
  const mesh_downloads_hooks *h = mesh_test_faults_downloads_hooks(tf);
  assert_true(h->pass_view_event(h->arg));
  uint8_t chunk[4] = {1, 2, 3, 4};
  assert_false(h->chunk_out(h->arg, chunk, sizeof chunk));
  h->list_sealed(h->arg, chunk, sizeof chunk);
  assert_memory_equal(chunk, ((uint8_t[]){1, 2, 3, 4}), 4);
  mesh_hf_options o;
  memset(&o, 0, sizeof o);
  h->hf_options(h->arg, &o);
  assert_int_equal(o.range_bytes, 0);
  assert_null(o.before_sync);
  const mesh_node_hooks *nh = mesh_test_faults_node_hooks(tf);
  mesh_rdma_config c;
  mesh_rdma_config_default(&c);
  nh->rdma_config(nh->arg, &c);
  assert_null(c.bulk_lose);
  mesh_test_faults_free(tf);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_none_set_is_production, clear_all),
      cmocka_unit_test_setup(test_bad_values_refused, clear_all),
      cmocka_unit_test_setup(test_hooks_do_what_the_switches_say, clear_all),
      cmocka_unit_test_setup(test_unset_switches_change_nothing, clear_all),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
