/*
 * The download part of the daemon: the coordinator core (coord/coord.h)
 * with the IO it asks for.
 *
 * It owns the store (coord/store.h, $MESH_HOME/mesh.db), the disk executor
 * (coord/diskexec.h, the models directory) and the Hugging Face client
 * (coord/hf_client.h), and carries out the core's outbox after every input:
 * actions go to the executors and their results back into the core,
 * documents and commands go to peers on MESH_CH_COORD, the application digest
 * goes to membership, and store items of one drain are written as one
 * transaction. A single timer is armed for the core's next deadline, so an
 * idle node does no work at all (rule 6).
 *
 * A size check (CHECK_SPACE) is answered by starting the download: the
 * client lists the files and reports the total before fetching any byte; the
 * core then either accepts (the transfer goes on) or fails the entry (the
 * transfer is cancelled before its first byte).
 *
 * Threads. Everything here runs on the loop thread and never waits on the
 * disk or SQLite; that work goes to the node's work pool (src/base/pool.h)
 * as items whose done functions run on the loop:
 *   - Store: the store items of a drain are taken over into a batch (at
 *     most BATCH_MAX items; a longer drain fills several). At the end of the
 *     drain the batch goes to the store strand, whose worker runs the
 *     transaction (mesh_store_apply_numbered) and copies the store's
 *     counters; the done function counts and logs a failure, releases the
 *     items and reuses the batch. The strand runs transactions one at a
 *     time in drain order. At most 2 batches are on the strand; when the
 *     store falls behind, further batches wait on the loop (a later drain
 *     adds to the newest while it has room) up to 16 batches in all, shown
 *     as meshd_store_backlog_batches and its deepest value. Past that no
 *     entry state is lost: a write of an entry (or of the meta) replaces
 *     the newest waiting write of the same row, or takes a place in a few
 *     overflow batches sized for one write per own entry, so the backlog
 *     stays bounded (meshd_store_coalesced_total); only journal records are
 *     then dropped and counted (meshd_store_dropped_items_total). The loop
 *     never blocks on it.
 *   - Journal: the newest records (min(journal_max_records,
 *     MESH_API_JOURNAL_MAX)) are mirrored in memory with the ids, times and
 *     epochs the store gets (the mirror numbers them and the store writes
 *     those ids); read once at start, appended as the core emits records,
 *     pruned as the store prunes, and a refused batch's records leave it
 *     again. /journal and the journal gauge read only memory.
 *   - DELETE and VERIFY actions run on a disk strand in slices (each
 *     bounded by 4,096 entries and by ~50 ms, see coord/diskexec.h), the
 *     next slice submitted from the done of the last, the core told the
 *     final result in the done with the loop's now. Inspections run one at
 *     a time (a scan holds its directories open between slices); one that
 *     a delete of its entry overtakes reports nothing. A delete first
 *     cancels the entry's download and starts only after mesh_hf_cancel
 *     returned.
 *   - Start-up: making and opening the models directory, opening the store
 *     and reading entries and journal run as one pool item; the loop thread
 *     waits for it (mesh_pool_flush) before it serves anything.
 *   - Shutdown (mesh_downloads_free): inputs stop, waiting batches are
 *     handed over, the pool is flushed (the last transactions commit; disk
 *     jobs end without reporting), then the store is closed.
 * Free space is not checked here: the download client reports it with the
 * file list (CHECK_SPACE above).
 */
#ifndef MESH_DAEMON_DOWNLOADS_H
#define MESH_DAEMON_DOWNLOADS_H

#include "coord/coord.h"
#include "coord/hf_client.h"
#include "coord/store.h"
#include "src/daemon/membership.h"
#include "src/daemon/node.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mesh_config;
typedef struct mesh_downloads mesh_downloads;

/*
 * Where a test may change what the download part does (src/daemon/
 * test_faults.h fills these). Production passes NULL: the part then calls
 * the identity. Each hook gets arg; the comment says on which thread.
 */
typedef struct mesh_downloads_hooks {
  void *arg;
  /* Loop, at start: the store is open and no store item is in flight. */
  void (*store_opened)(void *arg, mesh_store *store);
  /* Loop, at start: the download client's options before it is made
   * (range sizes, a hook before each file sync). */
  void (*hf_options)(void *arg, mesh_hf_options *o);
  /* A worker of the store strand, before each transaction. */
  void (*before_store_txn)(void *arg);
  /* Loop, for each view event: false withholds it from the coordinator, as
   * if membership could not queue it. */
  bool (*pass_view_event)(void *arg);
  /* A worker, when a file list was sealed (blob, len: the upload's, may be
   * changed in place). */
  void (*list_sealed)(void *arg, uint8_t *blob, size_t len);
  /* A worker, before each chunk of a model file or list is read. */
  void (*before_chunk_read)(void *arg);
  /* A worker, after a chunk was read and before it is encoded (buf, len:
   * the upload's, may be changed in place). true when it changed the chunk
   * (counted by the loop). */
  bool (*chunk_out)(void *arg, uint8_t *buf, size_t len);
} mesh_downloads_hooks;

/*
 * Opens the store and the models directory (on the pool, waiting for it:
 * call before the loop runs), restores this node's entries of earlier
 * epochs into a new coordinator, and subscribes to membership's view events
 * and application state and to MESH_CH_COORD. View events reach the
 * coordinator in the order of their numbers; when some were lost it is
 * resynced from the membership core's view (net/view.h). hooks (NULL in
 * production) must outlive the part.
 */
int mesh_downloads_new(mesh_node *node, mesh_membership *mem, const struct mesh_config *cfg,
                       const mesh_downloads_hooks *hooks, mesh_downloads **out, char *err,
                       size_t errlen);
void mesh_downloads_free(mesh_downloads *d);

/* A command from the control API. node_text is the target's peer ID text
 * (NULL or this node's ID: this node). Returns 0 or a negative errno with
 * msg set (see mesh_coord_command). *seq (may be NULL) receives the number
 * the target's answer will carry when the command was sent to another node,
 * else 0. */
int mesh_downloads_command(mesh_downloads *d, mesh_coord_cmd_kind kind, const char *node_text,
                           const char *model, const char *revision, uint64_t *seq, char *msg,
                           size_t msglen);

/* The answer of another node to a command this node sent it. */
typedef void (*mesh_downloads_result_fn)(void *arg, uint64_t seq, int code, const char *message);
void mesh_downloads_on_result(mesh_downloads *d, mesh_downloads_result_fn fn, void *arg);
/* Runs a collection pass now; *collected receives the entries freed. */
int mesh_downloads_gc(mesh_downloads *d, uint64_t *collected);

/* This node renewed its epoch in place (epoch already durable): its own
 * entries move to the new epoch and are published at once; running
 * transfers are not touched (mesh_coord_set_epoch). */
int mesh_downloads_renew(mesh_downloads *d, uint64_t epoch);

/* Brings the coordinator's mirror of the view up to membership's view when
 * it lags (view events were lost and no later event revealed the gap): a
 * resync, counted in the coordinator's view_resyncs. Costs a comparison of
 * two numbers when it does not lag. The control API calls it before it
 * shows downloads, so that /downloads and /members agree on who is in the
 * view. */
void mesh_downloads_view_sync(mesh_downloads *d);

const mesh_coord *mesh_downloads_core(const mesh_downloads *d);
/* The store's counters as of its last transaction (a copy kept on the loop:
 * the store itself is the strand's). journal_rows is the journal's size. */
void mesh_downloads_store_stats(const mesh_downloads *d, mesh_store_stats *out);
/* Visits up to limit journal records, newest first, from the in-memory
 * mirror (at most MESH_API_JOURNAL_MAX). fn returns nonzero to stop; the
 * record is valid during the call only. */
typedef int (*mesh_downloads_journal_fn)(void *arg, const mesh_store_journal_rec *r);
void mesh_downloads_journal(const mesh_downloads *d, size_t limit, mesh_downloads_journal_fn fn,
                            void *arg);
void mesh_downloads_hf_counters(const mesh_downloads *d, mesh_hf_counters *out);

/* Where an own entry's bytes came from (the Hub, peers), as of the client's
 * last report; kept after the entry completes. sources (peer IDs,
 * comma-separated; "" for none) is valid until the next loop turn. */
typedef struct mesh_downloads_prov {
  uint64_t hub_bytes;
  uint64_t peer_bytes;
  uint64_t speed_bps;
  const char *sources;
} mesh_downloads_prov;
/* 0 and *out, or -ENOENT when this node fetched no byte of it in this run. */
int mesh_downloads_provenance(const mesh_downloads *d, const char *model, const char *rev,
                              mesh_downloads_prov *out);

/* Peer transfers: sources and serving (downloads_peers.c, downloads_serve.c). */
#define MESH_DOWNLOADS_REFUSALS_MAX 16 /* room for the refusal reasons */
typedef struct mesh_downloads_peer_stats {
  uint64_t bad_sources;     /* sources dropped from a download for bytes that failed the hash */
  uint64_t source_failures; /* transfers from peers that failed (refusal, error, stall, left) */
  uint64_t protocol_errors; /* bulk messages malformed, out of order or past their credit */
  uint64_t uploads;         /* uploads begun */
  uint64_t upload_bytes;    /* file bytes sent to members */
  uint64_t uploads_active;  /* uploads running now */
  uint64_t lists_served;    /* signed file lists sent to members */
  uint64_t lists_taken;     /* file lists taken from members (the Hub unreachable) */
  uint64_t lists_refused;   /* file lists of members refused (signature, model, form, size) */
  uint64_t refused[MESH_DOWNLOADS_REFUSALS_MAX]; /* requests refused, by
                                                    mesh_downloads_refusal_name(i) */
} mesh_downloads_peer_stats;
void mesh_downloads_peer_stats_get(const mesh_downloads *d, mesh_downloads_peer_stats *out);
/* The name of refusal reason i, NULL past the last. */
const char *mesh_downloads_refusal_name(int i);

typedef struct mesh_downloads_counters {
  uint64_t store_failures;        /* batches the store refused (logged) */
  uint64_t store_dropped;         /* journal records dropped: the store was too far behind */
  uint64_t store_coalesced;       /* entry writes that replaced an older waiting write of the row */
  uint64_t store_backlog;         /* batches not yet written (waiting or on the strand) */
  uint64_t store_backlog_max;     /* the deepest that backlog has been */
  uint64_t members_saved;         /* the last known members written to the store */
  uint64_t members_save_failures; /* ... writes that failed */
  uint64_t disk_slices;           /* delete and inspection slices run on the pool */
  uint64_t verify_dropped;        /* inspections whose entry began a delete meanwhile */
  uint64_t sends_failed;          /* documents or commands that found no connection */
  uint64_t held_sent;             /* of those, sent once the peer's connection came up */
  uint64_t results;               /* answers to commands sent to other nodes */
  uint64_t dirs_adopted;          /* model directories of earlier versions marked as this node's */
} mesh_downloads_counters;
const mesh_downloads_counters *mesh_downloads_counters_get(const mesh_downloads *d);

#endif
