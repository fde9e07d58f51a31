/*
 * The journal end to end: what the coordinator core records for its own
 * entries lands in the store, reads back newest first, stays within its
 * bound however busy the node was, and never mentions others' entries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_coord_harness.h"

#include "coord/store.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
/* mkdtemp: glibc declares it in stdlib.h, macOS in unistd.h. */
#include <unistd.h>

typedef struct fixture {
  char dir[512];
  char path[600];
  mesh_store *store;
} fixture;

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  const char *base = getenv("MESH_TEST_TMP");
  if (base == NULL)
    base = "/tmp";
  mkdir(base, 0755);
  snprintf(f->dir, sizeof f->dir, "%s/journal.XXXXXX", base);
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof f->path, "%s/mesh.db", f->dir);
  mesh_store_settings set = {.journal_max_records = 50, .journal_max_age_ms = 0};
  char err[256];
  assert_int_equal(mesh_store_open(f->path, &set, &f->store, err, sizeof err), 0);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture *f = *state;
  mesh_store_close(f->store);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not clean %s\n", f->dir);
  free(f);
  return 0;
}

/* What a daemon does after every input: store items of the drain in one
 * batch. */
static void persist(fixture *f, tnode *t, uint64_t wall)
{
  tnode_clear(t);
  tnode_drain(t);
  assert_int_equal(mesh_store_apply(f->store, t->out, t->n, wall, t->epoch), 0);
}

static void test_records_newest_first(void **state)
{
  fixture *f = *state;
  tnode a;
  tnode_init(&a, 1, 3, NULL);
  mesh_coord_cmd start = {.kind = MESH_COORD_CMD_START, .model_id = "org/m"};
  assert_int_equal(mesh_coord_command(a.c, &start, 0, NULL, NULL, 0), 0);
  persist(f, &a, 1000);
  mesh_coord_space(a.c, "org/m", "main", 10, 100, 10);
  persist(f, &a, 2000);
  mesh_coord_completed(a.c, "org/m", "main", 10, 20);
  persist(f, &a, 3000);
  mesh_coord_cmd del = {.kind = MESH_COORD_CMD_DELETE, .model_id = "org/m"};
  assert_int_equal(mesh_coord_command(a.c, &del, 30, NULL, NULL, 0), 0);
  persist(f, &a, 4000);
  mesh_coord_delete_result(a.c, "org/m", "main", -ENOTEMPTY, 40);
  persist(f, &a, 5000);

  mesh_store_journal_rec *j;
  size_t n;
  assert_int_equal(mesh_store_journal_read(f->store, 100, &j, &n), 0);
  assert_true(n >= 6);
  /* Newest first: the failed delete, with its reason and the retry. */
  assert_int_equal(j[0].kind, MESH_COORD_J_STATE);
  assert_non_null(strstr(j[0].text, "deleting -> failed"));
  assert_non_null(strstr(j[0].text, "org--m"));
  assert_non_null(strstr(j[0].text, "retry in"));
  assert_int_equal(j[0].at_ms, 5000);
  assert_int_equal(j[0].epoch, 3);
  /* Oldest last: the start command. */
  assert_int_equal(j[n - 1].kind, MESH_COORD_J_COMMAND);
  assert_non_null(strstr(j[n - 1].text, "start org/m@main from local"));
  for (size_t i = 1; i < n; i++)
    assert_true(j[i - 1].id > j[i].id);
  free(j);
  /* The store holds the failed entry as the snapshot. */
  mesh_coord_entry *e;
  uint64_t version;
  assert_int_equal(mesh_store_load(f->store, &e, &n, &version), 0);
  assert_int_equal(n, 1);
  assert_int_equal(e[0].status, MESH_COORD_FAILED);
  assert_true(e[0].failed_delete);
  assert_true(version >= 1);
  free(e);
  tnode_free(&a);
}

static void test_busy_node_stays_bounded(void **state)
{
  fixture *f = *state;
  tnode a;
  tnode_init(&a, 1, 1, NULL);
  for (int round = 0; round < 200; round++) {
    char model[32];
    snprintf(model, sizeof model, "org/m%d", round);
    mesh_coord_cmd del = {.kind = MESH_COORD_CMD_DELETE, .model_id = model};
    mesh_time_ms now = (mesh_time_ms)round * 1000;
    assert_int_equal(mesh_coord_command(a.c, &del, now, NULL, NULL, 0), 0);
    mesh_coord_delete_result(a.c, model, "main", 0, now);
    persist(f, &a, now);
  }
  size_t n;
  assert_int_equal(mesh_store_journal_count(f->store, &n), 0);
  assert_int_equal(n, 50);
  mesh_store_journal_rec *j;
  assert_int_equal(mesh_store_journal_read(f->store, 1, &j, &n), 0);
  assert_int_equal(n, 1);
  assert_non_null(strstr(j[0].text, "org/m199"));
  free(j);
  mesh_coord_entry *e;
  uint64_t version;
  assert_int_equal(mesh_store_load(f->store, &e, &n, &version), 0);
  assert_int_equal(n, 0);
  free(e);
  tnode_free(&a);
}

static void test_others_never_journaled(void **state)
{
  fixture *f = *state;
  tnode a, b;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  tnode *all[] = {&a, &b};
  view_event(&a, MESH_VIEW_JOINED, &b, 1, 1, 0);
  view_event(&b, MESH_VIEW_JOINED, &a, 1, 1, 0);
  start_model(&a, "org/x", true, 0);
  exchange(all, 2, 0);
  view_event(&b, MESH_VIEW_DEAD, &a, 1, 1, 100);
  for (mesh_time_ms t = 100; t < 20 * 60000; t += 1000)
    mesh_coord_tick(b.c, t);
  persist(f, &b, 5000);
  /* Nothing about A's entries was ever handed to a store, here or before. */
  assert_int_equal(b.total[MESH_COORD_OUT_JOURNAL], 0);
  assert_int_equal(b.total[MESH_COORD_OUT_STORE_PUT], 0);
  assert_int_equal(b.total[MESH_COORD_OUT_STORE_META], 0);
  size_t n;
  assert_int_equal(mesh_store_journal_count(f->store, &n), 0);
  assert_int_equal(n, 0);
  mesh_coord_entry *e;
  uint64_t version;
  assert_int_equal(mesh_store_load(f->store, &e, &n, &version), 0);
  assert_int_equal(n, 0);
  free(e);
  assert_int_equal(mesh_store_get_stats(f->store)->transactions, 0);
  tnode_free(&a);
  tnode_free(&b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_records_newest_first, setup, teardown),
      cmocka_unit_test_setup_teardown(test_busy_node_stays_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_others_never_journaled, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
