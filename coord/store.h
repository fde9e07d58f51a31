/*
 * The node's store: $MESH_HOME/mesh.db, SQLite in WAL mode.
 *
 * It holds this node's own download entries (a snapshot, never rebuilt by
 * replay), the coordinator's journal and the document version counter.
 * Others' entries never come here (rule 2 of the coordinator).
 *
 * Every batch of coordinator outbox items is applied in one transaction
 * (mesh_store_apply), so a crash at any point leaves the entries, the
 * version and the journal as they were before or after a whole batch.
 *
 * Durability: synchronous=NORMAL. In WAL mode that never corrupts the
 * database; a power loss may roll back the last transactions. That is safe
 * here: the epoch (kept apart, fsynced) changes on every start, peers compare
 * document versions only within one epoch, and a restarted node re-checks
 * its completed models on disk and re-runs unfinished deletes, so an entry
 * that lost its last update converges again. FULL would add an fsync per
 * batch for no gain in what the node does after a restart.
 *
 * Schema (PRAGMA user_version is the schema version; migrations run in
 * order inside one transaction at open):
 *
 *   entries   one row per own entry
 *     model_id TEXT, revision TEXT   primary key
 *     status INTEGER                 mesh_coord_status
 *     model_dir TEXT                 relative to the models directory
 *     total_bytes, done_bytes INTEGER
 *     files_done, files_total INTEGER
 *     error TEXT, attempts INTEGER, failed_delete INTEGER
 *     requester BLOB                 the peer ID whose command made the entry,
 *                                    empty for the operator's (quotas, issue 16)
 *     list_source BLOB               the peer ID of the member whose signed file
 *                                    list the last run used, empty for the Hub's
 *   journal   the bounded log, newest has the highest id
 *     id INTEGER PRIMARY KEY AUTOINCREMENT
 *     at_ms INTEGER                  wall-clock ms (ages survive restarts)
 *     epoch INTEGER                  the node's epoch when written
 *     kind INTEGER                   mesh_coord_journal_kind
 *     model_id TEXT, text TEXT
 *   meta      key TEXT PRIMARY KEY, value INTEGER
 *     "doc_version", "doc_epoch"
 *   members   the last known members, so that a node restarted without
 *             --join finds its cluster (src/daemon/connections.c)
 *     peer TEXT PRIMARY KEY          peer ID text
 *     addrs TEXT                     addresses, one per line, reached first
 *
 *   version 1: the three tables; version 2: index journal(at_ms) for
 *   pruning by age; version 3: members; version 4: entries.requester;
 *   version 5: entries.list_source.
 *
 * Blocking: every call does synchronous disk IO (and may wait up to 2 s for
 * SQLite's lock), so none is made on the event loop thread. The daemon
 * (src/daemon/downloads_store.c, and downloads_lifecycle.c at start) calls
 * the store only from work items of one strand of the work pool
 * (src/base/pool.h): open, load and the journal read at start, every apply
 * while running. The strand runs them one at a time,
 * so a store is never used by two threads at once; close comes after the
 * pool was flushed. mesh_store_get_stats points into the store: a caller on
 * another thread copies it inside a work item (the daemon does so after
 * every apply) instead of reading it while the next item runs. Tests call
 * everything directly on their one thread.
 */
#ifndef MESH_COORD_STORE_H
#define MESH_COORD_STORE_H

#include "coord/coord.h"

#include <stddef.h>
#include <stdint.h>

#define MESH_STORE_SCHEMA_VERSION 5

typedef struct mesh_store mesh_store;

typedef struct mesh_store_settings {
  uint32_t journal_max_records; /* 0 = keep none */
  uint64_t journal_max_age_ms;  /* 0 = no age bound */
} mesh_store_settings;

typedef struct mesh_store_journal_rec {
  int64_t id;
  uint64_t at_ms;
  uint64_t epoch;
  mesh_coord_journal_kind kind;
  char model_id[MESH_MODEL_ID_MAX];
  char text[MESH_COORD_JOURNAL_TEXT_MAX];
} mesh_store_journal_rec;

typedef struct mesh_store_stats {
  uint64_t transactions; /* committed batches */
  uint64_t rows_written; /* inserts, updates and deletes */
  uint64_t journal_pruned;
  uint64_t failures;     /* batches rolled back */
  uint64_t journal_rows; /* records in the journal now (counted at open, then kept) */
} mesh_store_stats;

/*
 * Opens (creating when missing) the database at path and migrates it to
 * MESH_STORE_SCHEMA_VERSION. -ENOTSUP when the file has a newer schema than
 * this build knows, -EIO (and err) for SQLite errors.
 */
int mesh_store_open(const char *path, const mesh_store_settings *set, mesh_store **out, char *err,
                    size_t errlen);
void mesh_store_close(mesh_store *s);

/* Reads the own entries and the document version. *entries is allocated
 * (free()); owner fields are left zero for the coordinator to fill. */
int mesh_store_load(mesh_store *s, mesh_coord_entry **entries, size_t *n, uint64_t *doc_version);

/*
 * Applies the store items among items[0..n) (STORE_PUT, STORE_DEL,
 * STORE_META, JOURNAL; others are skipped) in one transaction, then prunes
 * the journal to its bounds. wall_ms stamps journal records; epoch is the
 * node's epoch. On failure nothing of the batch remains and the error is
 * returned.
 */
int mesh_store_apply(mesh_store *s, const mesh_coord_out *items, size_t n, uint64_t wall_ms,
                     uint64_t epoch);
/*
 * The same, with the journal records numbered by the caller: the batch's
 * JOURNAL items get the ids first_journal_id, first_journal_id + 1, ... in
 * order (0: the store numbers them). A caller that keeps the newest records
 * in memory numbers them itself, from mesh_store_journal_last_id + 1, so
 * that its copy and the store agree on every id. The ids must be above every
 * id the journal ever held, else the insert fails (-EIO) and the batch is
 * rolled back.
 */
int mesh_store_apply_numbered(mesh_store *s, const mesh_coord_out *items, size_t n,
                              uint64_t wall_ms, uint64_t epoch, int64_t first_journal_id);
/* The highest journal id ever given (pruned records included), 0 when none:
 * the next record must be numbered above it. */
int mesh_store_journal_last_id(mesh_store *s, int64_t *id);

/* Prunes the journal by count and age (also done by every apply). */
int mesh_store_journal_prune(mesh_store *s, uint64_t wall_ms);
/* Reads up to limit records, newest first. *out is allocated (free()). */
int mesh_store_journal_read(mesh_store *s, size_t limit, mesh_store_journal_rec **out, size_t *n);
int mesh_store_journal_count(mesh_store *s, size_t *n);

const mesh_store_stats *mesh_store_get_stats(const mesh_store *s);

/* One last known member. */
#define MESH_STORE_MEMBER_ADDRS_MAX 2048
typedef struct mesh_store_member {
  mesh_peer_id peer;
  char addrs[MESH_STORE_MEMBER_ADDRS_MAX]; /* one per line, reached first */
} mesh_store_member;
/* Most members kept. */
#define MESH_STORE_MEMBERS_MAX 256

/* Replaces the members kept with members[0..n) (n at most
 * MESH_STORE_MEMBERS_MAX), in one transaction. */
int mesh_store_members_save(mesh_store *s, const mesh_store_member *members, size_t n);
/* Reads the members kept. *out is allocated (free()). Rows that do not
 * decode (a peer ID that does not parse) are skipped and counted in
 * *bad (may be NULL). */
int mesh_store_members_load(mesh_store *s, mesh_store_member **out, size_t *n, size_t *bad);

/* Fault injection for tests, after SQLite's I/O-error injection: the nth
 * statement step from now (1 = the next) fails with err (a negative errno),
 * as if the disk had failed. 0 turns it off. */
void mesh_store_fail_after(mesh_store *s, int nth, int err);

#endif
