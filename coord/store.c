/*
 * The node's SQLite store. See store.h for the schema and the durability
 * argument.
 */
#include "coord/store.h"

#include "src/base/err.h"
#include "src/base/fileperm.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mesh_store {
  sqlite3 *db;
  mesh_store_settings set;
  mesh_store_stats st;
  int fail_in;  /* steps left before an injected failure, 0 = off */
  int fail_err; /* the injected error */
};

/* Migrations: entry i brings the schema from version i to i + 1. */
static const char *const migrations[MESH_STORE_SCHEMA_VERSION] = {
    "CREATE TABLE entries ("
    " model_id TEXT NOT NULL, revision TEXT NOT NULL, status INTEGER NOT NULL,"
    " model_dir TEXT NOT NULL, total_bytes INTEGER NOT NULL DEFAULT 0,"
    " done_bytes INTEGER NOT NULL DEFAULT 0, files_done INTEGER NOT NULL DEFAULT 0,"
    " files_total INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '',"
    " attempts INTEGER NOT NULL DEFAULT 0, failed_delete INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (model_id, revision));"
    "CREATE TABLE journal ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,"
    " epoch INTEGER NOT NULL, kind INTEGER NOT NULL, model_id TEXT NOT NULL DEFAULT '',"
    " text TEXT NOT NULL);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    "CREATE INDEX journal_at ON journal (at_ms);",
    "CREATE TABLE members (peer TEXT PRIMARY KEY, addrs TEXT NOT NULL);",
    "ALTER TABLE entries ADD COLUMN requester BLOB NOT NULL DEFAULT x'';",
    "ALTER TABLE entries ADD COLUMN list_source BLOB NOT NULL DEFAULT x'';",
};

static int sql_err(mesh_store *s, char *err, size_t errlen, const char *what)
{
  if (err != NULL)
    snprintf(err, errlen, "%s: %s", what, sqlite3_errmsg(s->db));
  return -EIO;
}

static int exec(mesh_store *s, const char *sql)
{
  return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

/* sqlite3_step with the fault injection hook. */
static int step(mesh_store *s, sqlite3_stmt *st)
{
  if (s->fail_in > 0 && --s->fail_in == 0)
    return SQLITE_IOERR;
  return sqlite3_step(st);
}

static int migrate(mesh_store *s, char *err, size_t errlen)
{
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
    return sql_err(s, err, errlen, "reading the schema version");
  int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
  sqlite3_finalize(st);
  if (version > MESH_STORE_SCHEMA_VERSION) {
    if (err != NULL)
      snprintf(err, errlen, "schema version %d is newer than this meshd knows (%d)", version,
               MESH_STORE_SCHEMA_VERSION);
    return -ENOTSUP;
  }
  if (version == MESH_STORE_SCHEMA_VERSION)
    return 0;
  if (exec(s, "BEGIN IMMEDIATE") != 0)
    return sql_err(s, err, errlen, "starting the migration");
  for (int v = version; v < MESH_STORE_SCHEMA_VERSION; v++) {
    if (exec(s, migrations[v]) != 0) {
      int rc = sql_err(s, err, errlen, "migrating the schema");
      exec(s, "ROLLBACK");
      return rc;
    }
  }
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d", MESH_STORE_SCHEMA_VERSION);
  if (exec(s, sql) != 0 || exec(s, "COMMIT") != 0) {
    int rc = sql_err(s, err, errlen, "finishing the migration");
    exec(s, "ROLLBACK");
    return rc;
  }
  return 0;
}

/*
 * SQLite creates the database 0644 less the umask, and makes its -wal and
 * -shm files with the database file's mode. Creating the file 0600 first
 * (and narrowing one an older meshd made) makes all three private whatever
 * the umask. A -wal or -shm left by an older meshd is narrowed too.
 */
static int private_file(const char *path, char *err, size_t errlen)
{
  int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd < 0) {
    int rc = -errno;
    snprintf(err, errlen, "opening the store %s: %s", path, mesh_strerror(rc));
    return rc;
  }
  int rc = mesh_file_set_mode(fd, NULL, 0600);
  close(fd);
  if (rc != 0) {
    snprintf(err, errlen, "making the store %s private: %s", path, mesh_strerror(rc));
    return rc;
  }
  static const char *const side[] = {"-wal", "-shm"};
  for (size_t i = 0; i < sizeof side / sizeof side[0]; i++) {
    char p[4096];
    int n = snprintf(p, sizeof p, "%s%s", path, side[i]);
    if (n < 0 || (size_t)n >= sizeof p)
      continue; /* SQLite cannot open a name that long either */
    rc = mesh_file_set_mode(-1, p, 0600);
    if (rc != 0 && rc != -ENOENT) {
      snprintf(err, errlen, "making %s private: %s", p, mesh_strerror(rc));
      return rc;
    }
  }
  return 0;
}

int mesh_store_open(const char *path, const mesh_store_settings *set, mesh_store **out, char *err,
                    size_t errlen)
{
  mesh_store *s = calloc(1, sizeof *s);
  if (s == NULL)
    return -ENOMEM;
  s->set = *set;
  int rc = private_file(path, err, errlen);
  if (rc != 0) {
    free(s);
    return rc;
  }
  rc = -EIO;
  if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
      SQLITE_OK) {
    rc = sql_err(s, err, errlen, "opening the store");
    goto fail;
  }
  sqlite3_busy_timeout(s->db, 2000);
  if (exec(s, "PRAGMA journal_mode = WAL") != 0 || exec(s, "PRAGMA synchronous = NORMAL") != 0 ||
      exec(s, "PRAGMA foreign_keys = ON") != 0) {
    rc = sql_err(s, err, errlen, "configuring the store");
    goto fail;
  }
  rc = migrate(s, err, errlen);
  if (rc != 0)
    goto fail;
  /* Counted once here; every apply keeps the count from then on. */
  size_t rows = 0;
  if ((rc = mesh_store_journal_count(s, &rows)) != 0) {
    sql_err(s, err, errlen, "counting the journal");
    goto fail;
  }
  s->st.journal_rows = rows;
  *out = s;
  return 0;
fail:
  sqlite3_close(s->db);
  free(s);
  return rc;
}

void mesh_store_close(mesh_store *s)
{
  if (s == NULL)
    return;
  sqlite3_close(s->db);
  free(s);
}

static void copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
  const unsigned char *t = sqlite3_column_text(st, col);
  size_t n = t != NULL ? strnlen((const char *)t, cap - 1) : 0;
  if (n > 0)
    memcpy(dst, t, n);
  dst[n] = '\0';
}

int mesh_store_load(mesh_store *s, mesh_coord_entry **entries, size_t *n, uint64_t *doc_version)
{
  sqlite3_stmt *st = NULL;
  mesh_coord_entry *v = NULL;
  size_t len = 0, cap = 0;
  int rc = -EIO;
  *entries = NULL;
  *n = 0;
  *doc_version = 0;
  if (sqlite3_prepare_v2(s->db,
                         "SELECT model_id, revision, status, model_dir, total_bytes, done_bytes,"
                         " files_done, files_total, error, attempts, failed_delete, requester,"
                         " list_source FROM entries ORDER BY rowid LIMIT ?",
                         -1, &st, NULL) != SQLITE_OK)
    goto out;
  sqlite3_bind_int(st, 1, MESH_COORD_MAX_OWN_ENTRIES);
  int r;
  while ((r = step(s, st)) == SQLITE_ROW) {
    if (len == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      mesh_coord_entry *nv = realloc(v, ncap * sizeof *nv);
      if (nv == NULL) {
        rc = -ENOMEM;
        goto out;
      }
      v = nv;
      cap = ncap;
    }
    mesh_coord_entry *e = &v[len++];
    memset(e, 0, sizeof *e);
    copy_text(e->model_id, sizeof e->model_id, st, 0);
    copy_text(e->revision, sizeof e->revision, st, 1);
    e->status = (mesh_coord_status)sqlite3_column_int(st, 2);
    copy_text(e->model_dir, sizeof e->model_dir, st, 3);
    e->total_bytes = (uint64_t)sqlite3_column_int64(st, 4);
    e->done_bytes = (uint64_t)sqlite3_column_int64(st, 5);
    e->files_done = (uint32_t)sqlite3_column_int64(st, 6);
    e->files_total = (uint32_t)sqlite3_column_int64(st, 7);
    copy_text(e->error, sizeof e->error, st, 8);
    e->attempts = (uint32_t)sqlite3_column_int64(st, 9);
    e->failed_delete = sqlite3_column_int(st, 10) != 0;
    /* Anything but a whole peer ID (an empty blob: the operator's) reads
     * as the operator's: a damaged row never charges a peer's quota. */
    const void *req = sqlite3_column_blob(st, 11);
    if (req != NULL && sqlite3_column_bytes(st, 11) == MESH_PEER_ID_LEN) {
      memcpy(e->requester.b, req, MESH_PEER_ID_LEN);
      e->by_peer = true;
    }
    /* The same for the list's source: anything else reads as the Hub. */
    const void *ls = sqlite3_column_blob(st, 12);
    if (ls != NULL && sqlite3_column_bytes(st, 12) == MESH_PEER_ID_LEN) {
      memcpy(e->list_from.b, ls, MESH_PEER_ID_LEN);
      e->list_by_member = true;
    }
  }
  if (r != SQLITE_DONE)
    goto out;
  sqlite3_finalize(st);
  st = NULL;
  if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = 'doc_version'", -1, &st,
                         NULL) != SQLITE_OK)
    goto out;
  r = step(s, st);
  if (r == SQLITE_ROW)
    *doc_version = (uint64_t)sqlite3_column_int64(st, 0);
  else if (r != SQLITE_DONE)
    goto out;
  rc = 0;
out:
  sqlite3_finalize(st);
  if (rc != 0) {
    free(v);
    return rc;
  }
  *entries = v;
  *n = len;
  return 0;
}

/* Runs one prepared statement to completion; 0 or -EIO / the injected error. */
static int run(mesh_store *s, sqlite3_stmt *st)
{
  int r = step(s, st);
  if (r == SQLITE_IOERR && s->fail_in == 0 && s->fail_err != 0) {
    int e = s->fail_err;
    s->fail_err = 0;
    return e;
  }
  if (r != SQLITE_DONE && r != SQLITE_ROW)
    return -EIO;
  s->st.rows_written += (uint64_t)sqlite3_changes(s->db);
  return 0;
}

static int put_entry(mesh_store *s, const mesh_coord_entry *e)
{
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db,
                         "INSERT OR REPLACE INTO entries (model_id, revision, status, model_dir,"
                         " total_bytes, done_bytes, files_done, files_total, error, attempts,"
                         " failed_delete, requester, list_source)"
                         " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         -1, &st, NULL) != SQLITE_OK)
    return -EIO;
  sqlite3_bind_text(st, 1, e->model_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, e->revision, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, (int)e->status);
  sqlite3_bind_text(st, 4, e->model_dir, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, (sqlite3_int64)e->total_bytes);
  sqlite3_bind_int64(st, 6, (sqlite3_int64)e->done_bytes);
  sqlite3_bind_int64(st, 7, e->files_done);
  sqlite3_bind_int64(st, 8, e->files_total);
  sqlite3_bind_text(st, 9, e->error, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 10, e->attempts);
  sqlite3_bind_int(st, 11, e->failed_delete ? 1 : 0);
  if (e->by_peer)
    sqlite3_bind_blob(st, 12, e->requester.b, MESH_PEER_ID_LEN, SQLITE_STATIC);
  else
    sqlite3_bind_zeroblob(st, 12, 0);
  if (e->list_by_member)
    sqlite3_bind_blob(st, 13, e->list_from.b, MESH_PEER_ID_LEN, SQLITE_STATIC);
  else
    sqlite3_bind_zeroblob(st, 13, 0);
  int rc = run(s, st);
  sqlite3_finalize(st);
  return rc;
}

static int del_entry(mesh_store *s, const mesh_coord_entry *e)
{
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "DELETE FROM entries WHERE model_id = ? AND revision = ?", -1, &st,
                         NULL) != SQLITE_OK)
    return -EIO;
  sqlite3_bind_text(st, 1, e->model_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, e->revision, -1, SQLITE_STATIC);
  int rc = run(s, st);
  sqlite3_finalize(st);
  return rc;
}

static int put_meta(mesh_store *s, const char *key, uint64_t value)
{
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", -1, &st,
                         NULL) != SQLITE_OK)
    return -EIO;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)value);
  int rc = run(s, st);
  sqlite3_finalize(st);
  return rc;
}

/* id 0: the next AUTOINCREMENT id; else exactly id (the caller numbers the
 * records so that a copy kept in memory carries the same ids). */
static int add_journal(mesh_store *s, int64_t id, uint64_t wall_ms, uint64_t epoch,
                       mesh_coord_journal_kind kind, const char *model, const char *text)
{
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db,
                         "INSERT INTO journal (id, at_ms, epoch, kind, model_id, text)"
                         " VALUES (?,?,?,?,?,?)",
                         -1, &st, NULL) != SQLITE_OK)
    return -EIO;
  if (id > 0)
    sqlite3_bind_int64(st, 1, id);
  else
    sqlite3_bind_null(st, 1);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)wall_ms);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)epoch);
  sqlite3_bind_int(st, 4, (int)kind);
  sqlite3_bind_text(st, 5, model, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, text, -1, SQLITE_STATIC);
  int rc = run(s, st);
  sqlite3_finalize(st);
  if (rc == 0)
    s->st.journal_rows++;
  return rc;
}

static int prune(mesh_store *s, uint64_t wall_ms)
{
  sqlite3_stmt *st;
  int rc;
  uint64_t before = s->st.rows_written;
  if (s->set.journal_max_age_ms != 0 && wall_ms > s->set.journal_max_age_ms) {
    if (sqlite3_prepare_v2(s->db, "DELETE FROM journal WHERE at_ms < ?", -1, &st, NULL) !=
        SQLITE_OK)
      return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(wall_ms - s->set.journal_max_age_ms));
    rc = run(s, st);
    sqlite3_finalize(st);
    if (rc != 0)
      return rc;
  }
  /* Ids grow without reuse (AUTOINCREMENT), so the newest max_records rows
   * are those within max_records of the highest id. */
  if (sqlite3_prepare_v2(s->db, "DELETE FROM journal WHERE id <= (SELECT MAX(id) FROM journal) - ?",
                         -1, &st, NULL) != SQLITE_OK)
    return -EIO;
  sqlite3_bind_int64(st, 1, s->set.journal_max_records);
  rc = run(s, st);
  sqlite3_finalize(st);
  uint64_t pruned = s->st.rows_written - before;
  s->st.journal_pruned += pruned;
  s->st.journal_rows = s->st.journal_rows > pruned ? s->st.journal_rows - pruned : 0;
  return rc;
}

int mesh_store_apply(mesh_store *s, const mesh_coord_out *items, size_t n, uint64_t wall_ms,
                     uint64_t epoch)
{
  return mesh_store_apply_numbered(s, items, n, wall_ms, epoch, 0);
}

int mesh_store_apply_numbered(mesh_store *s, const mesh_coord_out *items, size_t n,
                              uint64_t wall_ms, uint64_t epoch, int64_t first_journal_id)
{
  bool any = false;
  bool journaled = false;
  for (size_t i = 0; i < n; i++) {
    mesh_coord_out_kind k = items[i].kind;
    if (k == MESH_COORD_OUT_STORE_PUT || k == MESH_COORD_OUT_STORE_DEL ||
        k == MESH_COORD_OUT_STORE_META || k == MESH_COORD_OUT_JOURNAL)
      any = true;
  }
  if (!any)
    return 0; /* idle: no transaction, no write */
  if (exec(s, "BEGIN IMMEDIATE") != 0) {
    s->st.failures++;
    return -EIO;
  }
  /* A rollback takes back the rows this batch added and pruned. */
  uint64_t journal_rows = s->st.journal_rows;
  int64_t next_id = first_journal_id;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const mesh_coord_out *o = &items[i];
    switch (o->kind) {
    case MESH_COORD_OUT_STORE_PUT:
      rc = put_entry(s, &o->u.entry);
      break;
    case MESH_COORD_OUT_STORE_DEL:
      rc = del_entry(s, &o->u.entry);
      break;
    case MESH_COORD_OUT_STORE_META:
      rc = put_meta(s, "doc_version", o->u.meta.version);
      if (rc == 0)
        rc = put_meta(s, "doc_epoch", o->u.meta.epoch);
      break;
    case MESH_COORD_OUT_JOURNAL:
      rc = add_journal(s, next_id, wall_ms, epoch, o->u.journal.kind, o->u.journal.model_id,
                       o->u.journal.text);
      if (next_id > 0)
        next_id++;
      journaled = true;
      break;
    default:
      break;
    }
  }
  if (rc == 0 && journaled)
    rc = prune(s, wall_ms);
  if (rc == 0 && exec(s, "COMMIT") != 0)
    rc = -EIO;
  if (rc != 0) {
    exec(s, "ROLLBACK");
    s->st.journal_rows = journal_rows;
    s->st.failures++;
    return rc;
  }
  s->st.transactions++;
  return 0;
}

int mesh_store_journal_prune(mesh_store *s, uint64_t wall_ms)
{
  if (exec(s, "BEGIN IMMEDIATE") != 0)
    return -EIO;
  uint64_t journal_rows = s->st.journal_rows;
  int rc = prune(s, wall_ms);
  if (rc == 0 && exec(s, "COMMIT") != 0)
    rc = -EIO;
  if (rc != 0) {
    exec(s, "ROLLBACK");
    s->st.journal_rows = journal_rows;
  }
  return rc;
}

int mesh_store_journal_last_id(mesh_store *s, int64_t *id)
{
  sqlite3_stmt *st;
  /* AUTOINCREMENT never hands out an id at or below sqlite_sequence's, even
   * after the rows holding it were pruned. */
  if (sqlite3_prepare_v2(
          s->db,
          "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence"
          " WHERE name = 'journal'), 0), COALESCE((SELECT MAX(id) FROM journal), 0))",
          -1, &st, NULL) != SQLITE_OK)
    return -EIO;
  int rc = step(s, st) == SQLITE_ROW ? 0 : -EIO;
  if (rc == 0)
    *id = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return rc;
}

int mesh_store_journal_read(mesh_store *s, size_t limit, mesh_store_journal_rec **out, size_t *n)
{
  sqlite3_stmt *st;
  *out = NULL;
  *n = 0;
  if (limit == 0)
    return 0;
  if (sqlite3_prepare_v2(s->db,
                         "SELECT id, at_ms, epoch, kind, model_id, text FROM journal"
                         " ORDER BY id DESC LIMIT ?",
                         -1, &st, NULL) != SQLITE_OK)
    return -EIO;
  sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
  mesh_store_journal_rec *v = NULL;
  size_t len = 0, cap = 0;
  int r, rc = 0;
  while ((r = step(s, st)) == SQLITE_ROW) {
    if (len == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      mesh_store_journal_rec *nv = realloc(v, ncap * sizeof *nv);
      if (nv == NULL) {
        rc = -ENOMEM;
        break;
      }
      v = nv;
      cap = ncap;
    }
    mesh_store_journal_rec *j = &v[len++];
    j->id = sqlite3_column_int64(st, 0);
    j->at_ms = (uint64_t)sqlite3_column_int64(st, 1);
    j->epoch = (uint64_t)sqlite3_column_int64(st, 2);
    j->kind = (mesh_coord_journal_kind)sqlite3_column_int(st, 3);
    copy_text(j->model_id, sizeof j->model_id, st, 4);
    copy_text(j->text, sizeof j->text, st, 5);
  }
  if (rc == 0 && r != SQLITE_DONE)
    rc = -EIO;
  sqlite3_finalize(st);
  if (rc != 0) {
    free(v);
    return rc;
  }
  *out = v;
  *n = len;
  return 0;
}

int mesh_store_journal_count(mesh_store *s, size_t *n)
{
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT COUNT(*) FROM journal", -1, &st, NULL) != SQLITE_OK)
    return -EIO;
  int rc = step(s, st) == SQLITE_ROW ? 0 : -EIO;
  if (rc == 0)
    *n = (size_t)sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return rc;
}

const mesh_store_stats *mesh_store_get_stats(const mesh_store *s)
{
  return &s->st;
}

void mesh_store_fail_after(mesh_store *s, int nth, int err)
{
  s->fail_in = nth > 0 ? nth : 0;
  s->fail_err = nth > 0 ? err : 0;
}

int mesh_store_members_save(mesh_store *s, const mesh_store_member *members, size_t n)
{
  if (n > MESH_STORE_MEMBERS_MAX)
    return -E2BIG;
  sqlite3_stmt *st = NULL;
  if (exec(s, "BEGIN IMMEDIATE") != 0)
    return -EIO;
  int rc = exec(s, "DELETE FROM members");
  if (rc == 0 &&
      sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO members (peer, addrs) VALUES (?, ?)", -1,
                         &st, NULL) != SQLITE_OK)
    rc = -EIO;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    char id[MESH_PEER_ID_TEXT_MAX];
    mesh_peer_id_to_text(&members[i].peer, id, sizeof id);
    size_t alen = strnlen(members[i].addrs, sizeof members[i].addrs);
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, members[i].addrs, (int)alen, SQLITE_TRANSIENT);
    rc = run(s, st);
  }
  sqlite3_finalize(st);
  if (rc == 0 && exec(s, "COMMIT") != 0)
    rc = -EIO;
  if (rc != 0) {
    exec(s, "ROLLBACK");
    s->st.failures++;
    return rc;
  }
  s->st.transactions++;
  return 0;
}

int mesh_store_members_load(mesh_store *s, mesh_store_member **out, size_t *n, size_t *bad)
{
  sqlite3_stmt *st = NULL;
  mesh_store_member *v = NULL;
  size_t len = 0, skipped = 0;
  int rc = -EIO;
  *out = NULL;
  *n = 0;
  if (sqlite3_prepare_v2(s->db, "SELECT peer, addrs FROM members ORDER BY rowid LIMIT ?", -1, &st,
                         NULL) != SQLITE_OK)
    goto done;
  sqlite3_bind_int(st, 1, MESH_STORE_MEMBERS_MAX);
  v = calloc(MESH_STORE_MEMBERS_MAX, sizeof *v);
  if (v == NULL) {
    rc = -ENOMEM;
    goto done;
  }
  int r;
  while ((r = step(s, st)) == SQLITE_ROW) {
    char id[MESH_PEER_ID_TEXT_MAX];
    copy_text(id, sizeof id, st, 0);
    mesh_store_member *m = &v[len];
    if (mesh_peer_id_parse(id, &m->peer) != 0) {
      skipped++;
      continue;
    }
    copy_text(m->addrs, sizeof m->addrs, st, 1);
    len++;
  }
  if (r != SQLITE_DONE)
    goto done;
  rc = 0;
done:
  sqlite3_finalize(st);
  if (bad != NULL)
    *bad = skipped;
  if (rc != 0) {
    free(v);
    return rc;
  }
  *out = v;
  *n = len;
  return 0;
}
