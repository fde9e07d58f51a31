/*
 * The store: schema migrations, all-or-nothing batches under injected
 * failures and a killed writer, the journal's bounds by count and age, and
 * reading it back newest first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "coord/store.h"

#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct fixture {
  char dir[512];
  char path[600];
} fixture;

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  const char *base = getenv("MESH_TEST_TMP");
  if (base == NULL)
    base = "/tmp";
  mkdir(base, 0755);
  snprintf(f->dir, sizeof f->dir, "%s/store.XXXXXX", base);
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof f->path, "%s/mesh.db", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture *f = *state;
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not clean %s\n", f->dir);
  free(f);
  return 0;
}

static const mesh_store_settings default_set = {.journal_max_records = 1000,
                                                .journal_max_age_ms = 0};

static mesh_coord_out put(const char *model, mesh_coord_status status, uint64_t total)
{
  mesh_coord_out o = {.kind = MESH_COORD_OUT_STORE_PUT};
  snprintf(o.u.entry.model_id, sizeof o.u.entry.model_id, "%s", model);
  snprintf(o.u.entry.revision, sizeof o.u.entry.revision, "main");
  assert_int_equal(
      mesh_model_dir_name(model, "main", o.u.entry.model_dir, sizeof o.u.entry.model_dir), 0);
  o.u.entry.status = status;
  o.u.entry.total_bytes = total;
  return o;
}

static mesh_coord_out del(const char *model)
{
  mesh_coord_out o = put(model, MESH_COORD_DELETING, 0);
  o.kind = MESH_COORD_OUT_STORE_DEL;
  return o;
}

static mesh_coord_out meta(uint64_t version)
{
  mesh_coord_out o = {.kind = MESH_COORD_OUT_STORE_META};
  o.u.meta.epoch = 7;
  o.u.meta.version = version;
  return o;
}

static mesh_coord_out jrec(const char *text)
{
  mesh_coord_out o = {.kind = MESH_COORD_OUT_JOURNAL};
  o.u.journal.kind = MESH_COORD_J_STATE;
  snprintf(o.u.journal.model_id, sizeof o.u.journal.model_id, "org/m");
  snprintf(o.u.journal.text, sizeof o.u.journal.text, "%s", text);
  return o;
}

static int user_version(const char *path)
{
  sqlite3 *db;
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static void raw_exec(const char *path, const char *sql)
{
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

static void test_fresh_and_reopen(void **state)
{
  fixture *f = *state;
  mesh_store *s;
  char err[256];
  assert_int_equal(mesh_store_open(f->path, &default_set, &s, err, sizeof err), 0);
  mesh_coord_out batch[] = {put("org/a", MESH_COORD_COMPLETED, 100),
                            put("org/b", MESH_COORD_ONGOING, 200), meta(3), jrec("one")};
  assert_int_equal(mesh_store_apply(s, batch, 4, 1000, 7), 0);
  mesh_store_close(s);
  assert_int_equal(user_version(f->path), MESH_STORE_SCHEMA_VERSION);

  assert_int_equal(mesh_store_open(f->path, &default_set, &s, err, sizeof err), 0);
  mesh_coord_entry *e;
  size_t n;
  uint64_t v;
  assert_int_equal(mesh_store_load(s, &e, &n, &v), 0);
  assert_int_equal(n, 2);
  assert_int_equal(v, 3);
  assert_string_equal(e[0].model_id, "org/a");
  assert_int_equal(e[0].status, MESH_COORD_COMPLETED);
  assert_int_equal(e[0].total_bytes, 100);
  assert_string_equal(e[1].model_dir, "org--b");
  assert_false(e[0].by_peer);
  free(e);
  mesh_store_close(s);
}

/* Applies batch to a new store, closes it and opens it again: what a
 * restart finds (*e and the returned store are the caller's to free). */
static mesh_store *apply_and_reload(fixture *f, mesh_coord_out *batch, size_t n_batch,
                                    mesh_coord_entry **e, size_t *n)
{
  mesh_store *s;
  char err[256];
  assert_int_equal(mesh_store_open(f->path, &default_set, &s, err, sizeof err), 0);
  assert_int_equal(mesh_store_apply(s, batch, n_batch, 1000, 7), 0);
  mesh_store_close(s);
  assert_int_equal(mesh_store_open(f->path, &default_set, &s, err, sizeof err), 0);
  uint64_t v;
  assert_int_equal(mesh_store_load(s, e, n, &v), 0);
  return s;
}

/* The node whose command made an entry is kept, so that its quota still
 * holds after a restart; the operator's entries have none. */
static void test_requester_kept(void **state)
{
  fixture *f = *state;
  mesh_coord_out batch[] = {put("org/peer", MESH_COORD_PENDING, 1),
                            put("org/op", MESH_COORD_PENDING, 2)};
  batch[0].u.entry.by_peer = true;
  for (size_t i = 0; i < MESH_PEER_ID_LEN; i++)
    batch[0].u.entry.requester.b[i] = (uint8_t)(i * 7 + 1);
  mesh_coord_entry *e;
  size_t n;
  mesh_store *s = apply_and_reload(f, batch, 2, &e, &n);
  assert_int_equal(n, 2);
  assert_true(e[0].by_peer);
  assert_memory_equal(e[0].requester.b, batch[0].u.entry.requester.b, MESH_PEER_ID_LEN);
  assert_false(e[1].by_peer);
  free(e);
  mesh_store_close(s);
}

/* The member whose file list an entry's download used is kept, so that
 * /state names it after a restart; an entry listed by the Hub has none. */
static void test_list_source_kept(void **state)
{
  fixture *f = *state;
  mesh_coord_out batch[] = {put("org/member", MESH_COORD_COMPLETED, 1),
                            put("org/hub", MESH_COORD_COMPLETED, 2)};
  batch[0].u.entry.list_by_member = true;
  for (size_t i = 0; i < MESH_PEER_ID_LEN; i++)
    batch[0].u.entry.list_from.b[i] = (uint8_t)(i * 5 + 3);
  mesh_coord_entry *e;
  size_t n;
  mesh_store *s = apply_and_reload(f, batch, 2, &e, &n);
  assert_int_equal(n, 2);
  assert_true(e[0].list_by_member);
  assert_memory_equal(e[0].list_from.b, batch[0].u.entry.list_from.b, MESH_PEER_ID_LEN);
  assert_false(e[0].by_peer);
  assert_false(e[1].list_by_member);
  free(e);
  mesh_store_close(s);
}

static void test_migration_from_v1(void **state)
{
  fixture *f = *state;
  /* A database as version 1 of the schema left it. */
  raw_exec(f->path,
           "CREATE TABLE entries (model_id TEXT NOT NULL, revision TEXT NOT NULL, status INTEGER "
           "NOT NULL, model_dir TEXT NOT NULL, total_bytes INTEGER NOT NULL DEFAULT 0, done_bytes "
           "INTEGER NOT NULL DEFAULT 0, files_done INTEGER NOT NULL DEFAULT 0, files_total "
           "INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL "
           "DEFAULT 0, failed_delete INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (model_id, "
           "revision));"
           "CREATE TABLE journal (id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, "
           "epoch INTEGER NOT NULL, kind INTEGER NOT NULL, model_id TEXT NOT NULL DEFAULT '', "
           "text TEXT NOT NULL);"
           "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
           "INSERT INTO entries (model_id, revision, status, model_dir) VALUES ('org/old', "
           "'main', 3, 'org--old');"
           "INSERT INTO journal (at_ms, epoch, kind, text) VALUES (5, 1, 3, 'kept');"
           "INSERT INTO meta VALUES ('doc_version', 9);"
           "PRAGMA user_version = 1;");
  mesh_store *s;
  char err[256];
  assert_int_equal(mesh_store_open(f->path, &default_set, &s, err, sizeof err), 0);
  mesh_coord_entry *e;
  size_t n;
  uint64_t v;
  assert_int_equal(mesh_store_load(s, &e, &n, &v), 0);
  assert_int_equal(n, 1);
  assert_string_equal(e[0].model_id, "org/old");
  assert_false(e[0].list_by_member);
  assert_int_equal(v, 9);
  free(e);
  mesh_store_journal_rec *j;
  assert_int_equal(mesh_store_journal_read(s, 10, &j, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(j[0].text, "kept");
  free(j);
  mesh_store_close(s);
  assert_int_equal(user_version(f->path), MESH_STORE_SCHEMA_VERSION);
  /* The index version 2 adds exists. */
  sqlite3 *db;
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' "
                                      "AND name = 'journal_at'",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(st, 0), 1);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

static void test_newer_schema_refused(void **state)
{
  fixture *f = *state;
  raw_exec(f->path, "CREATE TABLE x (a); PRAGMA user_version = 99;");
  mesh_store *s = NULL;
  char err[256] = "";
  assert_int_equal(mesh_store_open(f->path, &default_set, &s, err, sizeof err), -ENOTSUP);
  assert_non_null(strstr(err, "99"));
  assert_null(s);
}

/* The state a batch leaves, as a short string ("org/a:3,org/c:1|v=2"). */
static void snapshot(const char *path, char *out, size_t cap, size_t *journal)
{
  mesh_store *s;
  char err[256];
  assert_int_equal(mesh_store_open(path, &default_set, &s, err, sizeof err), 0);
  mesh_coord_entry *e;
  size_t n;
  uint64_t v;
  assert_int_equal(mesh_store_load(s, &e, &n, &v), 0);
  size_t len = 0;
  out[0] = '\0';
  for (size_t i = 0; i < n; i++)
    len += (size_t)snprintf(out + len, cap - len, "%s:%d,", e[i].model_id, (int)e[i].status);
  snprintf(out + len, cap - len, "|v=%llu", (unsigned long long)v);
  free(e);
  assert_int_equal(mesh_store_journal_count(s, journal), 0);
  mesh_store_close(s);
}

static void test_injected_failures_all_or_nothing(void **state)
{
  fixture *f = *state;
  int failed = 0, succeeded = 0;
  for (int nth = 1; nth <= 12; nth++) {
    unlink(f->path);
    char wal[700];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    unlink(wal);
    mesh_store *s;
    char err[256];
    assert_int_equal(mesh_store_open(f->path, &default_set, &s, err, sizeof err), 0);
    mesh_coord_out a[] = {put("org/a", MESH_COORD_ONGOING, 1), meta(1), jrec("a")};
    assert_int_equal(mesh_store_apply(s, a, 3, 10, 7), 0);
    mesh_coord_out b[] = {put("org/a", MESH_COORD_COMPLETED, 1),
                          put("org/c", MESH_COORD_PENDING, 1),
                          del("org/x"),
                          meta(2),
                          jrec("b1"),
                          jrec("b2")};
    mesh_store_fail_after(s, nth, -EIO);
    int rc = mesh_store_apply(s, b, 6, 20, 7);
    mesh_store_fail_after(s, 0, 0);
    mesh_store_close(s);
    char snap[256];
    size_t journal;
    snapshot(f->path, snap, sizeof snap, &journal);
    if (rc == 0) {
      succeeded++;
      assert_string_equal(snap, "org/a:3,org/c:1,|v=2");
      assert_int_equal(journal, 3);
    } else {
      failed++;
      assert_int_equal(rc, -EIO);
      assert_string_equal(snap, "org/a:2,|v=1");
      assert_int_equal(journal, 1);
    }
  }
  /* Seven statements (five items, meta is two, plus the journal prune):
   * every earlier step failed the batch, later ones let it through. */
  assert_true(failed >= 6);
  assert_true(succeeded >= 1);
}

/* A writer killed with SIGKILL at an arbitrary point leaves a database whose
 * entries and version agree (they are written in one transaction). */
static void test_killed_writer_consistent(void **state)
{
  fixture *f = *state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    mesh_store *s;
    char err[256];
    if (mesh_store_open(f->path, &default_set, &s, err, sizeof err) != 0)
      _exit(1);
    for (uint64_t i = 1;; i++) {
      char model[64];
      snprintf(model, sizeof model, "org/m%llu", (unsigned long long)i);
      mesh_coord_out b[] = {put(model, MESH_COORD_COMPLETED, i), meta(i), jrec(model)};
      if (mesh_store_apply(s, b, 3, i, 7) != 0)
        _exit(2);
      char c = 'x';
      if (write(fds[1], &c, 1) != 1)
        _exit(3);
    }
  }
  close(fds[1]);
  char buf[64];
  size_t got = 0;
  while (got < 200) {
    ssize_t r = read(fds[0], buf, sizeof buf);
    assert_true(r > 0);
    got += (size_t)r;
  }
  kill(pid, SIGKILL);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  close(fds[0]);

  mesh_store *s;
  char err[256];
  assert_int_equal(mesh_store_open(f->path, &default_set, &s, err, sizeof err), 0);
  mesh_coord_entry *e;
  size_t n;
  uint64_t v;
  assert_int_equal(mesh_store_load(s, &e, &n, &v), 0);
  assert_true(n >= 200);
  assert_int_equal(n, v);
  free(e);
  size_t journal;
  assert_int_equal(mesh_store_journal_count(s, &journal), 0);
  assert_int_equal(journal, v);
  mesh_store_close(s);
}

static void test_journal_bounded_by_count_newest_first(void **state)
{
  fixture *f = *state;
  mesh_store_settings set = {.journal_max_records = 100, .journal_max_age_ms = 0};
  mesh_store *s;
  char err[256];
  assert_int_equal(mesh_store_open(f->path, &set, &s, err, sizeof err), 0);
  for (int i = 0; i < 250; i++) {
    char t[32];
    snprintf(t, sizeof t, "record %d", i);
    mesh_coord_out o = jrec(t);
    assert_int_equal(mesh_store_apply(s, &o, 1, (uint64_t)i, 7), 0);
  }
  size_t n;
  assert_int_equal(mesh_store_journal_count(s, &n), 0);
  assert_int_equal(n, 100);
  mesh_store_journal_rec *j;
  assert_int_equal(mesh_store_journal_read(s, 5, &j, &n), 0);
  assert_int_equal(n, 5);
  assert_string_equal(j[0].text, "record 249");
  assert_string_equal(j[4].text, "record 245");
  assert_true(j[0].id > j[1].id);
  assert_int_equal(j[0].epoch, 7);
  free(j);
  assert_true(mesh_store_get_stats(s)->journal_pruned == 150);
  mesh_store_close(s);
}

static void test_journal_bounded_by_age(void **state)
{
  fixture *f = *state;
  mesh_store_settings set = {.journal_max_records = 1000, .journal_max_age_ms = 1000};
  mesh_store *s;
  char err[256];
  assert_int_equal(mesh_store_open(f->path, &set, &s, err, sizeof err), 0);
  for (uint64_t t = 0; t <= 5000; t += 100) {
    mesh_coord_out o = jrec("tick");
    assert_int_equal(mesh_store_apply(s, &o, 1, 10000 + t, 7), 0);
  }
  size_t n;
  assert_int_equal(mesh_store_journal_count(s, &n), 0);
  /* Records from 14000 to 15000 remain: 11 of them. */
  assert_int_equal(n, 11);
  mesh_store_journal_rec *j;
  assert_int_equal(mesh_store_journal_read(s, 100, &j, &n), 0);
  assert_int_equal(j[0].at_ms, 15000);
  assert_int_equal(j[n - 1].at_ms, 14000);
  free(j);
  /* Time passing alone prunes when asked. */
  assert_int_equal(mesh_store_journal_prune(s, 20000), 0);
  assert_int_equal(mesh_store_journal_count(s, &n), 0);
  assert_int_equal(n, 0);
  mesh_store_close(s);
}

static void test_idle_batch_writes_nothing(void **state)
{
  fixture *f = *state;
  mesh_store *s;
  char err[256];
  assert_int_equal(mesh_store_open(f->path, &default_set, &s, err, sizeof err), 0);
  mesh_coord_out o = {.kind = MESH_COORD_OUT_ACTION};
  assert_int_equal(mesh_store_apply(s, &o, 1, 1, 7), 0);
  assert_int_equal(mesh_store_apply(s, NULL, 0, 1, 7), 0);
  assert_int_equal(mesh_store_get_stats(s)->transactions, 0);
  assert_int_equal(mesh_store_get_stats(s)->rows_written, 0);
  mesh_store_close(s);
}

/* A daemon numbers journal records itself to keep a copy in memory: the
 * store writes exactly those ids, a rolled-back batch takes its rows back
 * from the count, the numbering goes on above pruned ids, and the count is
 * right again after a reopen. */
static void test_numbered_journal_and_row_count(void **state)
{
  fixture *f = *state;
  mesh_store_settings set = {.journal_max_records = 3, .journal_max_age_ms = 0};
  mesh_store *s;
  char err[256];
  assert_int_equal(mesh_store_open(f->path, &set, &s, err, sizeof err), 0);
  int64_t last = -1;
  assert_int_equal(mesh_store_journal_last_id(s, &last), 0);
  assert_int_equal(last, 0);
  assert_int_equal(mesh_store_get_stats(s)->journal_rows, 0);
  mesh_coord_out a[] = {jrec("a1"), put("org/a", MESH_COORD_PENDING, 1), jrec("a2")};
  assert_int_equal(mesh_store_apply_numbered(s, a, 3, 10, 7, 1), 0);
  assert_int_equal(mesh_store_get_stats(s)->journal_rows, 2);
  /* A failed batch: nothing of it stays, the count is as before. */
  mesh_coord_out b[] = {jrec("b1"), jrec("b2")};
  mesh_store_fail_after(s, 2, -EIO);
  assert_int_equal(mesh_store_apply_numbered(s, b, 2, 20, 7, 3), -EIO);
  mesh_store_fail_after(s, 0, 0);
  assert_int_equal(mesh_store_get_stats(s)->journal_rows, 2);
  /* The caller's numbering skips the failed ids; pruning by count keeps the
   * records within 3 ids of the newest, as it would have without the gap. */
  mesh_coord_out c[] = {jrec("c1"), jrec("c2")};
  assert_int_equal(mesh_store_apply_numbered(s, c, 2, 30, 7, 5), 0);
  mesh_store_journal_rec *j;
  size_t n;
  assert_int_equal(mesh_store_journal_read(s, 10, &j, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(j[0].id, 6);
  assert_string_equal(j[0].text, "c2");
  assert_int_equal(j[1].id, 5);
  free(j);
  assert_int_equal(mesh_store_get_stats(s)->journal_rows, 2);
  /* An id at or below one already given is refused as a whole batch. */
  mesh_coord_out d[] = {jrec("again")};
  assert_int_equal(mesh_store_apply_numbered(s, d, 1, 40, 7, 6), -EIO);
  assert_int_equal(mesh_store_get_stats(s)->journal_rows, 2);
  assert_int_equal(mesh_store_journal_last_id(s, &last), 0);
  assert_int_equal(last, 6);
  mesh_store_close(s);
  assert_int_equal(mesh_store_open(f->path, &set, &s, err, sizeof err), 0);
  assert_int_equal(mesh_store_get_stats(s)->journal_rows, 2);
  assert_int_equal(mesh_store_journal_last_id(s, &last), 0);
  assert_int_equal(last, 6);
  /* Store-given ids follow on. */
  mesh_coord_out e[] = {jrec("auto")};
  assert_int_equal(mesh_store_apply(s, e, 1, 50, 7), 0);
  assert_int_equal(mesh_store_journal_read(s, 1, &j, &n), 0);
  assert_int_equal(j[0].id, 7);
  free(j);
  mesh_store_close(s);
}

/* The last known members: replaced whole, read back, and a row that does
 * not decode skipped and counted instead of failing the start. */
static void test_members_kept(void **state)
{
  fixture *f = *state;
  char err[256];
  mesh_store *s;
  assert_int_equal(mesh_store_open(f->path, &default_set, &s, err, sizeof err), 0);
  mesh_store_member *got;
  size_t n, bad;
  assert_int_equal(mesh_store_members_load(s, &got, &n, &bad), 0);
  assert_int_equal(n, 0);
  free(got);
  mesh_store_member m[3];
  memset(m, 0, sizeof m);
  for (int i = 0; i < 3; i++) {
    memset(&m[i].peer, 0, sizeof m[i].peer);
    mesh_identity id;
    assert_int_equal(mesh_identity_generate(&id), 0);
    m[i].peer = id.id;
    snprintf(m[i].addrs, sizeof m[i].addrs, "/ip4/10.0.0.%d/tcp/52416\n/ip4/10.1.0.%d/tcp/1\n",
             i + 1, i + 1);
  }
  assert_int_equal(mesh_store_members_save(s, m, 3), 0);
  assert_int_equal(mesh_store_members_save(s, m + 1, 2), 0);
  mesh_store_close(s);

  sqlite3 *db;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "INSERT INTO members (peer, addrs) VALUES ('not-a-peer', 'x')",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);

  assert_int_equal(mesh_store_open(f->path, &default_set, &s, err, sizeof err), 0);
  assert_int_equal(mesh_store_members_load(s, &got, &n, &bad), 0);
  assert_int_equal(n, 2);
  assert_int_equal(bad, 1);
  for (size_t i = 0; i < 2; i++) {
    assert_true(mesh_peer_id_eq(&got[i].peer, &m[i + 1].peer));
    assert_string_equal(got[i].addrs, m[i + 1].addrs);
  }
  free(got);
  assert_int_equal(mesh_store_members_save(s, m, MESH_STORE_MEMBERS_MAX + 1), -E2BIG);
  mesh_store_close(s);
}

/* mesh.db and its -wal and -shm are 0600 whatever the umask, and a store an
 * older meshd left 0644 is narrowed when opened. */
static void test_files_private(void **state)
{
  fixture *f = *state;
  char side[1200], err[256];
  struct stat st;
  mesh_store *s;
  mode_t old = umask(0);
  assert_int_equal(mesh_store_open(f->path, &default_set, &s, err, sizeof err), 0);
  mesh_coord_out batch[] = {put("org/a", MESH_COORD_COMPLETED, 100), meta(1)};
  assert_int_equal(mesh_store_apply(s, batch, 2, 1000, 7), 0);
  umask(old);
  static const char *const names[] = {"", "-wal", "-shm"};
  for (size_t i = 0; i < 3; i++) {
    snprintf(side, sizeof side, "%s%s", f->path, names[i]);
    assert_int_equal(stat(side, &st), 0); /* WAL and shm exist while open */
    assert_int_equal(st.st_mode & 07777, 0600);
  }
  mesh_store_close(s);
  assert_int_equal(chmod(f->path, 0644), 0);
  assert_int_equal(mesh_store_open(f->path, &default_set, &s, err, sizeof err), 0);
  assert_int_equal(stat(f->path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  mesh_store_close(s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_fresh_and_reopen, setup, teardown),
      cmocka_unit_test_setup_teardown(test_requester_kept, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list_source_kept, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migration_from_v1, setup, teardown),
      cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_injected_failures_all_or_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_killed_writer_consistent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_journal_bounded_by_count_newest_first, setup, teardown),
      cmocka_unit_test_setup_teardown(test_journal_bounded_by_age, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idle_batch_writes_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_numbered_journal_and_row_count, setup, teardown),
      cmocka_unit_test_setup_teardown(test_members_kept, setup, teardown),
      cmocka_unit_test_setup_teardown(test_files_private, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
