/*
 * What the files of the download part (downloads.h) share and nobody else
 * uses: the part's state, the records of its pool work and the functions one
 * file calls in another. The files, by concern:
 *   - downloads.c: the coordinator's outbox drain and its actions, the
 *     inputs (timer, membership, MESH_CH_COORD, download client reports)
 *     and the control API's commands, renewal and read-outs.
 *   - downloads_store.c: store batches on the store strand and the
 *     in-memory journal mirror.
 *   - downloads_disk.c: DELETE and VERIFY jobs on the disk strand.
 *   - downloads_held.c: messages held for peers without a connection.
 *   - downloads_lifecycle.c: start-up (store and models directory opened on
 *     the pool) and shutdown.
 *   - downloads_peers.c: peer sources of the download client (file bytes
 *     asked of members on MESH_CH_BULK) and where each entry's bytes came
 *     from.
 *   - downloads_lists.c: file lists asked of members when the Hub cannot
 *     be reached (--file-lists-from-members), checked on the pool.
 *   - downloads_serve.c: serving this node's completed files (and their
 *     signed file lists) to members on MESH_CH_BULK, reads on the pool.
 * Threads: everything declared here runs on the loop thread. The pool's work
 * functions (store_work, disk_work, start_work, check_work) are static in
 * their files and touch only what their item carries (a store_batch, a
 * disk_job, a start_job, a list_fetch), never the mesh_downloads itself.
 */
#ifndef MESH_DAEMON_DOWNLOADS_INTERNAL_H
#define MESH_DAEMON_DOWNLOADS_INTERNAL_H

#include "src/daemon/connections.h"
#include "src/daemon/downloads.h"

#include "coord/diskexec.h"
#include "coord/bulk_wire.h"
#include "coord/hf_filelist.h"
#include "src/base/pool.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Downloads handed to the client, at most one per (model, revision): one
 * slot for every own entry the core may hold, so that an accepted entry
 * always finds one. The client runs downloads_at_once of them and keeps the
 * rest queued; a smaller table failed every entry past it ("too many
 * downloads running at once"), and those entries were retried and failed
 * again, writing and logging for as long as they waited. */
#define ACTIVE_MAX MESH_COORD_MAX_OWN_ENTRIES
/* Store items written in one transaction at most; a longer drain is split. */
#define BATCH_MAX 256
/* Room for the models directory, so that it and a model directory name
 * always fit in a path. */
#define MODELS_DIR_MAX (PATH_MAX - MESH_MODEL_DIR_MAX - 2)

/* Messages to peers that had no connection when sent (a document, a command)
 * are kept, bounded, and sent when the peer's connection comes up, instead
 * of waiting for the next anti-entropy round. */
#define HELD_PEERS 16
#define HELD_PER_PEER 4
#define HELD_BYTES_MAX (8u << 20)

typedef struct held_msg {
  uint8_t *buf; /* owned */
  size_t len;
} held_msg;

typedef struct held_peer {
  bool used;
  mesh_peer_id peer;
  held_msg msgs[HELD_PER_PEER]; /* oldest first */
  size_t n;
  mesh_time_ms at; /* when the last one was kept: the oldest slot is reused */
} held_peer;

/*
 * One transaction's worth of store items. Ownership: the loop fills it (the
 * items are taken over from the drain); at mesh_pool_submit it passes to the
 * store strand, whose worker runs the transaction and copies the store's
 * counters into it; from the first line of store_done it is the loop's
 * again, which releases the items and keeps it for reuse.
 */
typedef struct store_batch {
  mesh_work work;           /* the pool item; first, so that the item is the batch */
  mesh_downloads *d;        /* for store_done only (the worker never reads it) */
  mesh_store *store;        /* handed over with the item */
  uint64_t wall_ms;         /* stamps its journal records */
  uint64_t epoch;           /* the node's epoch when it was opened */
  int64_t first_id;         /* id of its first journal record, 0 when it has none */
  size_t n_journal;         /* its journal records: first_id .. first_id + n_journal - 1 */
  int rc;                   /* the transaction's result (written by the worker) */
  mesh_store_stats stats;   /* the store's counters after it (written by the worker) */
  struct store_batch *next; /* waiting list or free list */
  size_t n;                 /* items used */
  mesh_coord_out items[BATCH_MAX];
} store_batch;

/*
 * A DELETE or VERIFY action on the pool, on the disk strand (so that a
 * delete and an inspection never overlap; a job's next slice goes to the
 * back of the strand, so other models' work runs between slices). The loop
 * fills it; from mesh_pool_submit to disk_done the worker owns the result
 * fields and the scan; the rest is read-only meanwhile.
 */
typedef struct disk_job {
  mesh_work work;              /* the pool item; first */
  mesh_downloads *d;           /* for disk_done only */
  mesh_diskexec *disk;         /* shared with other jobs; its calls are thread-safe */
  mesh_coord_action_kind kind; /* DELETE or VERIFY */
  char model_id[MESH_MODEL_ID_MAX];
  char revision[MESH_REVISION_MAX + 1];
  char model_dir[MESH_MODEL_DIR_MAX];
  int rc;            /* worker: the call's result */
  bool present;      /* worker, VERIFY: the directory is there */
  uint64_t bytes;    /* worker, VERIFY: bytes of its regular files */
  uint32_t partials; /* worker, VERIFY: ".partial" files */
  bool adopt;        /* VERIFY: mark the directory as this node's when it is there */
  bool adopted;      /* worker, VERIFY: a marker was written */
  char mark[MESH_DISKEXEC_MARKER_MAX]; /* VERIFY with adopt: the marker's text */
  uint32_t slices;                     /* slices run so far */
  bool stale;                          /* VERIFY overtaken by a DELETE: its result is dropped */
  mesh_diskexec_scan *scan;   /* VERIFY: the inspection's place (the worker's while submitted) */
  struct disk_job *next;      /* d->jobs: every job not yet done */
  struct disk_job *wait_next; /* d->verify_waiting */
} disk_job;

/* The newest journal records, as the store holds them (same ids, times and
 * epochs), oldest first in a ring, so that /journal never reads SQLite. */
typedef struct journal_mirror {
  mesh_store_journal_rec *recs; /* cap records, owned */
  size_t cap;                   /* min(journal_max_records, MESH_API_JOURNAL_MAX) */
  size_t head;                  /* index of the oldest */
  size_t n;                     /* records held */
} journal_mirror;

typedef struct active {
  bool used;
  char model_id[MESH_MODEL_ID_MAX];
  char revision[MESH_REVISION_MAX + 1];
  uint64_t hf_id; /* the client's id */
  bool accepted;  /* the core asked for the download (not only a size check) */
  bool listed;    /* the file list arrived */
} active;

/* ---- peer transfers (downloads_peers.c, downloads_serve.c) ------------- */

/* Bytes a downloader lets a source send ahead of what its write buffers
 * took (the request's credit); it grants more every PEER_CREDIT_STEP taken.
 * Also the bound on chunks held for a job whose buffers are full. */
#define PEER_WINDOW ((uint64_t)2 << 20)
#define PEER_CREDIT_STEP ((uint64_t)512 << 10)
/* Transfers from peers at once (all downloads), and to one source. */
#define PEER_XFERS_MAX 64
#define PEER_PER_SOURCE_MAX 4
/* Downloads whose source use is remembered, and sources per download. */
#define PEER_DLS_MAX ACTIVE_MAX
#define PEER_USE_MAX 16
/* A source that sends nothing for this long while owed bytes is dropped. */
#define PEER_STALL_MS 5000
/* A source that said it is busy is not asked again for this long. */
#define PEER_BUSY_MS 500
/* The peer transfers' check of sources and uploads, while any runs. */
#define PEER_TICK_MS 250
/* Entries whose byte sources are remembered for display. */
#define PROV_MAX (2 * ACTIVE_MAX)
#define PROV_SOURCES_MAX 512

/* A chunk received for a job whose write buffers were full. Owned by its
 * transfer. */
typedef struct peer_chunk {
  struct peer_chunk *next;
  uint64_t off;
  size_t len;
  uint8_t data[];
} peer_chunk;

/* One file transfer from a peer source, for one job of the client. */
typedef struct peer_xfer {
  bool used;
  uint64_t id;    /* the request's id on the wire */
  uint64_t dl_id; /* the client's download */
  mesh_peer_id peer;
  uint64_t epoch; /* the source's epoch when asked: a new one ends the transfer */
  char model_id[MESH_MODEL_ID_MAX];
  char revision[MESH_REVISION_MAX + 1];
  void *job;        /* the client's job (mesh_hf_source_data) */
  uint64_t rx_next; /* offset of the next chunk expected */
  uint64_t end;     /* one past the last byte asked for */
  uint64_t granted; /* bytes the source may have sent so far (offset bound) */
  uint64_t owed;    /* bytes taken since the last credit sent */
  peer_chunk *held; /* chunks the job had no room for, oldest first */
  peer_chunk *held_tail;
  bool ended;           /* the source said END 0 (every byte sent) */
  bool paused;          /* the job said -EAGAIN; resume() comes */
  mesh_time_ms last_rx; /* when the source last sent, or the job last resumed */
} peer_xfer;

/* What one download did with each source. */
typedef struct peer_dl {
  bool used;
  uint64_t dl_id;
  char model_id[MESH_MODEL_ID_MAX]; /* for the journal */
  char revision[MESH_REVISION_MAX + 1];
  mesh_coord_source_use use[PEER_USE_MAX];
  mesh_time_ms busy_until[PEER_USE_MAX];
  size_t n_use;
} peer_dl;

/* Where an own entry's bytes came from, kept after it completes. */
typedef struct prov_rec {
  bool used;
  char model_id[MESH_MODEL_ID_MAX];
  char revision[MESH_REVISION_MAX + 1];
  uint64_t hub_bytes;
  uint64_t peer_bytes;
  uint64_t speed_bps;             /* the last progress report's */
  char sources[PROV_SOURCES_MAX]; /* peer IDs, comma-separated */
  mesh_time_ms at;                /* last update, for reuse of the oldest */
} prov_rec;

/* One upload: a file range served to a member. While its item is on the
 * pool (w.busy) the worker owns fd, buf and the result fields. */
typedef struct upload {
  mesh_work w;       /* the pool item; first */
  mesh_downloads *d; /* for the done function */
  bool used;
  mesh_peer_id peer;
  uint64_t id;          /* the requester's id */
  char rel[PATH_MAX];   /* OPEN input: models dir + "/" + model dir + "/" + path */
  size_t base_len;      /* OPEN input: the models directory's length in rel */
  size_t dir_len;       /* OPEN input: the model directory's length in rel */
  bool unverified;      /* OPEN result: the file is not in the manifest at its size */
  bool opening;         /* the item is OPEN (else READ) */
  int fd;               /* the open file, or -1 */
  uint64_t off, end;    /* next byte to read, one past the last asked */
  uint64_t credit;      /* bytes the requester lets us send now (the worker's while busy) */
  uint64_t credit_more; /* credit that arrived while an item ran (the loop's) */
  uint8_t *buf;         /* a chunk's message (downloads_serve.c), owned */
  size_t len;           /* READ result */
  int err;              /* result: negative errno */
  bool corrupted;       /* READ result: a test hook changed the chunk (chunk_out) */
  /* The encoded chunk: made by READ on the worker (the loop copies no file
   * bytes), then the loop's until the queue takes it (it may refuse it,
   * -EAGAIN, and take it later). Owned. */
  uint8_t *pending; /* the next message: in buf, or its own (pending_owned) */
  size_t pending_len;
  bool pending_owned;
  uint64_t pending_n;       /* its payload bytes */
  bool cancelled;           /* the requester cancelled while an item ran */
  mesh_time_ms last_credit; /* when credit last arrived (a silent requester is dropped) */
  /* A signed file list (coord/hf_filelist.h) instead of a file: OPEN reads
   * the manifest of rel (the model directory) and seals it into blob, which
   * READ copies from. */
  bool list;
  const mesh_identity *ident; /* OPEN input: the node's key (never changes) */
  mesh_hf_filelist_meta meta; /* OPEN input: what the list is signed for */
  uint8_t *blob;              /* OPEN result: the signed list, owned */
  size_t blob_len;
} upload;

/* File lists asked of members at once (one per download waiting for one). */
#define LIST_FETCH_MAX 8

/*
 * A file list asked of a member for a download whose Hub cannot be
 * reached. The loop's, except while its CHECK item is on the pool (busy):
 * then the worker owns buf, tree and the result fields, and the loop only
 * sets `dropped`.
 */
typedef struct list_fetch {
  mesh_work w;       /* CHECK: signature, then the manifest parsed; first */
  mesh_downloads *d; /* for the done function */
  bool used;
  uint64_t id;       /* the request's id on the wire; 0 while no source is asked */
  uint64_t dl_id;    /* the client's download */
  mesh_peer_id peer; /* the source asked */
  uint64_t epoch;    /* its epoch when asked: the list must be signed in it */
  char model_id[MESH_MODEL_ID_MAX];
  char revision[MESH_REVISION_MAX + 1];
  uint8_t *buf; /* received, at most MESH_HF_FILELIST_MAX bytes, owned */
  size_t len, cap;
  uint64_t granted; /* bytes the source may have sent so far */
  uint64_t owed;    /* taken since the last credit */
  mesh_time_ms last_rx;
  bool dropped;      /* the download went away while CHECK ran */
  int err;           /* CHECK result: negative errno */
  char why[160];     /* CHECK result: why it was refused */
  mesh_hf_tree tree; /* CHECK result: the files */
} list_fetch;

typedef enum serve_refusal {
  SERVE_REFUSED_OFF = 0,       /* --serve-models off */
  SERVE_REFUSED_NOT_MEMBER,    /* requester not in the view */
  SERVE_REFUSED_NOT_COMPLETED, /* no completed own entry of this epoch for it */
  SERVE_REFUSED_PATH,          /* not a plain file inside the entry's directory */
  SERVE_REFUSED_BUSY,          /* --max-uploads reached */
  SERVE_REFUSED_PEER_SHARE,    /* that member holds its share of the uploads */
  SERVE_REFUSED_RANGE,         /* past the end of the file */
  SERVE_REFUSED_IO,            /* the file could not be opened or read */
  SERVE_REFUSED_NOT_VERIFIED,  /* not listed, or not at its size, in the download's manifest */
  SERVE_REFUSED_NO_LIST,       /* a file list asked for, and the download left no manifest */
  SERVE_REFUSED__COUNT
} serve_refusal;

typedef struct peers_counters {
  uint64_t bad_sources;     /* sources dropped from a download for bad bytes */
  uint64_t source_failures; /* transfers from peers that failed (error, stall, left) */
  uint64_t protocol_errors; /* bulk messages out of order, past credit, or malformed */
  uint64_t uploads;         /* uploads begun */
  uint64_t upload_bytes;    /* file bytes sent to members */
  uint64_t uploads_active;  /* gauge */
  uint64_t refused[SERVE_REFUSED__COUNT];
  uint64_t corrupted_chunks; /* chunks a test hook changed on purpose (chunk_out) */
  uint64_t lists_served;     /* signed file lists sent to members */
  uint64_t lists_taken;      /* file lists taken from members (the Hub unreachable) */
  uint64_t lists_refused;    /* file lists of members refused (signature, model, size, form) */
} peers_counters;

const char *dl_serve_refusal_name(serve_refusal r);

struct mesh_downloads {
  mesh_node *node;                   /* borrowed */
  mesh_membership *mem;              /* borrowed */
  mesh_loop *loop;                   /* the node's */
  mesh_net *net;                     /* the node's */
  mesh_pool *pool;                   /* the node's */
  mesh_coord *coord;                 /* the core */
  mesh_store *store;                 /* own entries and journal; used on store_strand only */
  mesh_strand *store_strand;         /* orders the store's transactions as the drains */
  mesh_strand *disk_strand;          /* orders deletes and inspections */
  mesh_diskexec *disk;               /* the models directory; used by disk jobs */
  mesh_hf_client *hf;                /* downloads */
  mesh_rng rng;                      /* retry jitter */
  const mesh_downloads_hooks *hooks; /* the identity in production (dl_no_hooks) */
  mesh_timer *timer;                 /* the core's next deadline */
  char models_dir[MODELS_DIR_MAX];
  active active[ACTIVE_MAX];
  store_batch *waiting;               /* batches not yet handed to the strand, oldest first */
  store_batch *waiting_tail;          /* the newest of them: a drain adds to it while not full */
  store_batch *spare;                 /* batches written, kept for reuse */
  size_t n_batches;                   /* made so far (STORE_BATCHES_MAX, then overflow) */
  size_t n_waiting;                   /* on the waiting list */
  size_t n_submitted;                 /* on the strand (at most STORE_INFLIGHT) */
  mesh_store_settings journal_set;    /* the store's journal bounds, which the mirror keeps too */
  mesh_store_stats store_stats;       /* the store's counters, copied after each transaction */
  journal_mirror journal;             /* the newest records, served to /journal */
  int64_t journal_next_id;            /* the id the next journal record gets */
  disk_job *jobs;                     /* disk jobs not yet done (waiting or submitted) */
  disk_job *verify_waiting;           /* inspections waiting for the one running, oldest first */
  disk_job *verify_running;           /* the inspection on the strand, or NULL */
  bool stopping;                      /* mesh_downloads_free began: done functions report nothing */
  bool draining;                      /* re-entry guard: results fed back while draining */
  mesh_downloads_result_fn result_fn; /* answers of other nodes to our commands */
  void *result_arg;
  held_peer held[HELD_PEERS]; /* messages waiting for a connection */
  size_t held_bytes;          /* their total size */
  mesh_view_follower view;    /* the last view change the coordinator's mirror reflects */
  mesh_downloads_counters counters;
  /* Peer transfers. */
  peer_xfer xfers[PEER_XFERS_MAX];
  peer_dl peer_dls[PEER_DLS_MAX];
  uint64_t next_xfer_id;
  prov_rec prov[PROV_MAX];
  upload *uploads; /* max_uploads of them, owned */
  int max_uploads;
  bool serve_models;
  bool lists_from_members; /* --file-lists-from-members */
  list_fetch lists[LIST_FETCH_MAX];
  mesh_timer *peer_timer; /* PEER_TICK_MS while a transfer or upload runs */
  bool serve_sending;     /* inside a bulk send: the writable callback waits */
  peers_counters peers;
};

/* ---- downloads.c -------------------------------------------------------- */

/* The ownership marker's text for model at rev on this node into buf (cap
 * bytes): 0 or -ENAMETOOLONG. */
int dl_marker_text(mesh_downloads *d, const char *model, const char *rev, char *buf, size_t cap);

/* Carries out the core's outbox: actions, sends, the application digest,
 * command results and store items (handed to the store strand at the end),
 * then arms the timer for the core's next deadline. Called after every
 * input; a call while one runs returns at once (the outer one picks up what
 * the inner input produced). */
void dl_drain(mesh_downloads *d);
/* The inputs, registered by mesh_downloads_new; arg (ctx) is the part. */
void dl_on_timer(void *arg, mesh_time_ms now);
void dl_on_hf_report(const mesh_hf_report *r, void *ctx);
/* A view event: applied in order; a gap in the numbers (or an event the
 * coordinator could not apply) makes the coordinator resync from the
 * membership core (mesh_coord_view_resync). */
void dl_on_view_event(void *arg, const mesh_view_event *ev);
/* Membership lost view events it could not queue: resync if behind. */
void dl_on_view_gap(void *arg);
void dl_on_app_state(void *arg, const mesh_peer_id *from, uint64_t epoch, const uint8_t *buf,
                     size_t len);
void dl_on_message(void *arg, const mesh_peer_id *from, uint64_t epoch, mesh_class cls,
                   const uint8_t *buf, size_t len);

/* ---- downloads_store.c -------------------------------------------------- */

/* Takes over a store item (the caller no longer releases it); it is written
 * with the rest of this drain. A journal record gets its id here and enters
 * the mirror at once. */
void dl_store_add(mesh_downloads *d, mesh_coord_out *item);
/* Hands waiting batches to the store strand, at most STORE_INFLIGHT at once. */
void dl_store_flush(mesh_downloads *d);
/* Keeps the last known members in the store (mesh_connections_save_fn). */
void dl_save_members(void *arg, const mesh_store_member *members, size_t n);

/* ---- downloads_disk.c --------------------------------------------------- */

/* Hands a DELETE or VERIFY action to the disk strand; the core hears the
 * result in the job's done function. */
void dl_disk_start(mesh_downloads *d, const mesh_coord_action *act);
/* Unlinks the job from d->jobs and frees it (with a scan left unfinished). */
void dl_disk_forget(mesh_downloads *d, disk_job *j);

/* ---- downloads_peers.c ------------------------------------------------- */

/* The client's peer sources (mesh_hf_source_ops), ctx the part. */
extern const mesh_hf_source_ops dl_peer_sources;
/* A chunk or an end from a source (decoded; m borrowed). */
void dl_peers_on_bulk(mesh_downloads *d, const mesh_peer_id *from, const mesh_bulk_msg *m);
/* Checks transfers (source still eligible, connected, not stalled). */
void dl_peers_tick(mesh_downloads *d, mesh_time_ms now);
bool dl_peers_running(const mesh_downloads *d);
/* Records where an own entry's bytes came from (a client report). */
void dl_prov_update(mesh_downloads *d, const char *model, const char *rev,
                    const mesh_hf_progress *p, uint64_t hf_id, bool final);
/* Stops every transfer (shutdown: no calls into the client). */
void dl_peers_close(mesh_downloads *d);
/* Leaves peer out of download dl_id from now on. */
void dl_source_failed(mesh_downloads *d, uint64_t dl_id, const mesh_peer_id *peer);
/* The source download dl_id of (model, rev) asks next: 0 and *out, -EBUSY
 * (a suspect has it: ask again shortly) or -ENOENT (none left). */
int dl_pick_source(mesh_downloads *d, uint64_t dl_id, const char *model, const char *rev,
                   mesh_peer_id *out);
/* The MESH_CH_BULK handler (arg is the part). */
void dl_on_bulk(void *arg, const mesh_peer_id *from, uint64_t epoch, mesh_class cls,
                const uint8_t *buf, size_t len);
/* The net's writable callback (arg is the part): uploads waiting for room. */
void dl_on_writable(void *arg, const mesh_peer_id *peer);
/* Arms the peer timer when something runs. */
void dl_peers_arm(mesh_downloads *d);

/* ---- downloads_lists.c -------------------------------------------------- */

/* The client's ops->list (ctx the part): asks a source for its list. */
int dl_lists_start(void *ctx, const mesh_hf_source_req *req, char *why, size_t why_cap);
/* A chunk or an end: true when it answers a file list request. */
bool dl_lists_on_bulk(mesh_downloads *d, const mesh_peer_id *from, const mesh_bulk_msg *m);
/* Download dl_id is gone: its list request too. */
void dl_lists_finished(mesh_downloads *d, uint64_t dl_id);
/* Drops sources that left, went silent or lost their connection; asks
 * again after a busy answer. */
void dl_lists_tick(mesh_downloads *d, mesh_time_ms now);
bool dl_lists_running(const mesh_downloads *d);
/* Shutdown: frees every request (the pool was not flushed yet: one being
 * checked is left to its done function). */
void dl_lists_close(mesh_downloads *d);

/* ---- downloads_serve.c -------------------------------------------------- */

/* A request, credit or cancel from a member (m borrowed). */
void dl_serve_on_bulk(mesh_downloads *d, const mesh_peer_id *from, const mesh_bulk_msg *m);
/* Drops uploads to peers that left the view or went silent. */
void dl_serve_tick(mesh_downloads *d, mesh_time_ms now);
bool dl_serve_running(const mesh_downloads *d);
/* Retries chunks the bulk queue refused, for peer. */
void dl_serve_on_writable(mesh_downloads *d, const mesh_peer_id *peer);
/* Encodes m and sends it on the bulk channel to `to` (a stream message):
 * the mesh_net_send code, or an encoding error. */
int dl_bulk_send(mesh_downloads *d, const mesh_peer_id *to, const mesh_bulk_msg *m);
/* Sets up the upload slots (cfg's bounds): 0 or -ENOMEM. */
int dl_serve_init(mesh_downloads *d, bool serve, int max_uploads);
/* Waits for no upload item (the caller flushed the pool) and frees them. */
void dl_serve_close(mesh_downloads *d);

/* ---- downloads_held.c --------------------------------------------------- */

/* Keeps a copy of buf (borrowed) for the peer, bounded by HELD_PER_PEER and HELD_BYTES_MAX. */
void dl_held_add(mesh_downloads *d, const mesh_peer_id *to, const uint8_t *buf, size_t len);
/* Frees what h holds and gives the slot up. */
void dl_held_clear(mesh_downloads *d, held_peer *h);
/* Membership's peer-up callback (arg is the part): sends what is held for
 * the peer. */
void dl_held_on_peer_up(void *arg, const mesh_peer_id *peer);

#endif
