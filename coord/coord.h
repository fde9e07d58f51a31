/*
 * The download coordinator core.
 *
 * A pure state machine: it is fed view events, messages from peers, local
 * commands, executor results and ticks, each with the caller's "now", and it
 * answers through an outbox the daemon drains (actions for the executors,
 * messages to send, the membership application state to set, store writes
 * and journal records). It never reads a clock, does IO or logs; it counts
 * (mesh_coord_stats) and the daemon logs what it reports. Signing and
 * verifying documents is done here (a computation with the node's key).
 *
 * Every entry is keyed by (owner peer ID, owner epoch, model ID, revision).
 * The rules it enforces (DESIGN.md, "Download coordinator"):
 *
 *  1. Actions (download, delete, cancel, disk checks) are only ever emitted
 *     for this node's own entries in its current epoch. A command for another
 *     node is signed and sent to it; a command for a node that is not in the
 *     view, or that names an epoch other than the target's current one, is
 *     refused with a message that says so.
 *  2. Others' entries are soft state, held per owner as the last signed
 *     document accepted from that owner. Owner epoch superseded: detached at
 *     once. Owner dead or left: shown as abandoned at once, with the time
 *     left, and detached after gc_grace. Owner unknown: the document is
 *     refused. They never reach the store. Detached documents are freed by
 *     mesh_coord_tick with at most gc_budget entries of work per tick.
 *  3. Deletes are idempotent: the executor reports ENOENT as success. A
 *     failure (ENOTEMPTY, EBUSY, EACCES, EROFS, ...) makes a failed entry
 *     with the error, retried with capped exponential backoff and jitter. A
 *     finished delete removes the entry.
 *  4. An entry exists only because a command asked for it; a delete acts on
 *     the model directory named by the model ID, never on a file list, and
 *     only when that directory carries meshd's ownership marker (the
 *     executor answers -EPERM otherwise: a failure for good, no retry).
 *  5. A download starts only after a space check answered by the executor:
 *     total size against free space and max_download_bytes; too big is a
 *     failed entry that gives both numbers.
 *  6. Idle means silent: without a command, a view change, a message or an
 *     executor result, mesh_coord_tick emits nothing (no sends, no writes).
 *  7. The journal is bounded by the store (count and age); own entries are
 *     kept as a snapshot in the store.
 *  8. mesh_coord_restore hands the entries of an earlier epoch back: completed
 *     models are re-checked on disk (a VERIFY action) and re-published under
 *     the new epoch; unfinished downloads are resumed. A renewal in place
 *     (mesh_coord_set_epoch) moves the entries to the new epoch as they are:
 *     what runs keeps running.
 *
 * Who may command whom: a command from another node is carried out only
 * when settings.accept allows its sender (refused otherwise with an answer,
 * counted, and nothing journaled or stored), and an entry it makes counts
 * against that sender's remote_quota; all senders together never take the
 * last MESH_COORD_LOCAL_RESERVED entries, which only the operator's own
 * commands (mesh_coord_command) use.
 *
 * Rate limits: actions go through a global token bucket (actions_per_sec) and
 * a per-entry minimum interval between two actions of the same kind
 * (entry_action_interval: an entry can only spin by repeating itself); an
 * action that does not fit waits for a later tick and is counted as
 * deferred. Publishing is
 * coalesced (publish_interval), progress-only changes more so
 * (progress_publish_interval).
 *
 * Budgets: what other nodes' documents may cost this node is bounded. A
 * document is accepted only from an owner in the view (the view source does
 * not say which members answered a probe, so membership of the view is the
 * test), only within its owner's caps (doc_max_entries, doc_max_bytes:
 * honest owners never hold more than MESH_COORD_MAX_OWN_ENTRIES), and only
 * when the documents held, with the owner's older one replaced, stay within
 * docs_max_entries and docs_max_bytes. Detached documents still count until
 * the collector has freed them: new ones are refused while the held ones
 * and those awaiting freeing together pass twice the budget. A document's
 * bytes are what it costs in memory (its signed envelope, kept for relaying,
 * plus its decoded entries). Refusals are counted (docs_refused_owner_cap,
 * docs_refused_budget); a refused (epoch, version) is not asked for again,
 * a later version is.
 *
 * Ownership: buffers handed in are borrowed for the call. Items taken out of
 * the outbox (mesh_coord_pop) belong to the caller, who releases them with
 * mesh_coord_out_release. Not thread-safe: one coordinator per event loop.
 */
#ifndef MESH_COORD_COORD_H
#define MESH_COORD_COORD_H

#include "coord/model_id.h"
#include "net/view.h"
#include "src/base/clock.h"
#include "src/base/rng.h"
#include "src/identity/identity.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The coordinator's messages travel on the peer network's coordinator
 * channel (MESH_CH_COORD); the daemon carries them. */

/* Bounds of what a document may carry. */
#define MESH_COORD_MAX_DOC_ENTRIES 4096
#define MESH_COORD_ERROR_MAX 256
/* Own entries this node keeps at most (a start beyond it is refused). */
#define MESH_COORD_MAX_OWN_ENTRIES 1024
/* Own entries that only the operator's commands (the control API) may use:
 * entries made at other nodes' request never take more than
 * MESH_COORD_MAX_OWN_ENTRIES - MESH_COORD_LOCAL_RESERVED, however many
 * peers ask. */
#define MESH_COORD_LOCAL_RESERVED 256
/* Peer IDs an accept list (mesh_coord_settings.accept_from) holds at most. */
#define MESH_COORD_ACCEPT_MAX 64
/* Commands sent to other nodes whose answers are awaited at once; beyond,
 * the oldest is forgotten (its answer, should it still come, is dropped). */
#define MESH_COORD_PENDING_MAX 256
/* Bytes (without the NUL) of the absolute models directory path an owner
 * publishes in its document; a longer one is not published. */
#define MESH_COORD_MODELS_DIR_MAX 1024
/* Payload type of signed documents and commands. */
#define MESH_COORD_DOC_TYPE "meshd/downloads/1"
#define MESH_COORD_CMD_TYPE "meshd/command/1"

typedef enum mesh_coord_status {
  MESH_COORD_PENDING = 1,
  MESH_COORD_ONGOING = 2,
  MESH_COORD_COMPLETED = 3,
  MESH_COORD_FAILED = 4,
  MESH_COORD_DELETING = 5,
} mesh_coord_status;

const char *mesh_coord_status_name(mesh_coord_status s);

/* One entry, own or replicated. Strings are NUL-terminated. */
typedef struct mesh_coord_entry {
  mesh_peer_id owner;
  uint64_t owner_epoch;
  char model_id[MESH_MODEL_ID_MAX];
  char revision[MESH_REVISION_MAX + 1];
  char model_dir[MESH_MODEL_DIR_MAX]; /* relative to the models directory */
  mesh_coord_status status;
  uint64_t total_bytes; /* declared or measured, 0 = unknown */
  uint64_t done_bytes;  /* bytes on disk so far */
  uint32_t files_done;
  uint32_t files_total;
  uint64_t speed_bps;               /* last reported speed */
  uint64_t eta_ms;                  /* last reported time left */
  char error[MESH_COORD_ERROR_MAX]; /* FAILED: what went wrong */
  uint32_t attempts;                /* FAILED: attempts so far */
  mesh_time_ms retry_at;            /* FAILED: next attempt (own), 0 = none */
  uint64_t retry_in_ms;             /* replicated: time to next attempt as published */
  bool failed_delete;               /* FAILED: the failed operation was a delete */
  bool by_peer;                     /* own: made at another node's request (requester) */
  mesh_peer_id requester;           /* own, by_peer: the node whose command made it */
  bool list_by_member;              /* own: the last run's file list came from a member */
  mesh_peer_id list_from;           /* own, list_by_member: that member, who signed it */
} mesh_coord_entry;

/* Whose commands this node carries out (--accept-commands-from). The
 * operator's own commands (the control API) are always carried out. */
typedef enum mesh_coord_accept {
  MESH_COORD_ACCEPT_ANY_MEMBER = 0, /* any current member of the view */
  MESH_COORD_ACCEPT_NONE = 1,       /* no other node */
  MESH_COORD_ACCEPT_LISTED = 2,     /* only the members named in accept_from */
} mesh_coord_accept;

typedef struct mesh_coord_settings {
  mesh_time_ms gc_grace;                  /* departed owner -> collected after */
  mesh_time_ms tombstone_ttl;             /* departed (peer, epoch) remembered */
  uint32_t journal_max_records;           /* passed to the store */
  mesh_time_ms journal_max_age;           /* passed to the store */
  uint64_t max_download_bytes;            /* 0 = only free space limits */
  const char *models_dir;                 /* absolute; published in the document when
                                             mesh_coord_models_dir_check accepts it */
  uint32_t actions_per_sec;               /* global action cap */
  mesh_time_ms entry_action_interval;     /* least time between same-kind actions of an entry */
  uint32_t gc_budget;                     /* entries freed per tick at most */
  mesh_time_ms retry_base;                /* first retry delay */
  mesh_time_ms retry_cap;                 /* retry delay never exceeds this */
  uint32_t download_max_attempts;         /* failed downloads retried up to this */
  mesh_time_ms publish_interval;          /* least time between two documents */
  mesh_time_ms progress_publish_interval; /* same, when only progress changed */
  uint32_t outbox_max;                    /* outbox items at most; beyond, sends are dropped */
  /* What others' documents may cost this node (see "Budgets" above). */
  uint64_t docs_max_bytes;         /* all held documents together, bytes */
  uint32_t docs_max_entries;       /* all held documents together, entries */
  uint64_t doc_max_bytes;          /* one owner's document, bytes */
  uint32_t doc_max_entries;        /* one owner's document, entries */
  mesh_coord_accept accept;        /* whose commands are carried out */
  const mesh_peer_id *accept_from; /* LISTED: accept_n IDs, copied by mesh_coord_new */
  size_t accept_n;                 /* at most MESH_COORD_ACCEPT_MAX */
  uint32_t remote_quota;           /* own entries one other node may have made, at most */
} mesh_coord_settings;

/* Fills in the defaults (gc_grace 5 min, tombstone_ttl 1 h, journal 10,000
 * records / 7 days, no size cap, 20 actions/s, 1 s per entry, 4,096 entries
 * of GC work per tick, retries 1 s doubling to 10 min, 5 download attempts,
 * documents at most every 200 ms, progress every 5 s; others' documents:
 * 64 MiB and 65,536 entries in all, 2 MiB and MESH_COORD_MAX_OWN_ENTRIES
 * entries per owner; commands accepted from any member, 64 own entries per
 * requesting node). */
void mesh_coord_settings_default(mesh_coord_settings *s);

/* What the executors are asked to do. */
typedef enum mesh_coord_action_kind {
  MESH_COORD_ACT_CHECK_SPACE = 1, /* learn total size and free space -> mesh_coord_space */
  MESH_COORD_ACT_DOWNLOAD = 2,    /* start or resume -> progress / completed / failed */
  MESH_COORD_ACT_CANCEL = 3,      /* stop a download; no answer expected */
  MESH_COORD_ACT_DELETE = 4,      /* delete model_dir -> mesh_coord_delete_result */
  MESH_COORD_ACT_VERIFY = 5,      /* is a completed model still there? -> mesh_coord_verified */
} mesh_coord_action_kind;

const char *mesh_coord_action_name(mesh_coord_action_kind k);

typedef struct mesh_coord_action {
  mesh_coord_action_kind kind;
  char model_id[MESH_MODEL_ID_MAX];
  char revision[MESH_REVISION_MAX + 1];
  char model_dir[MESH_MODEL_DIR_MAX];
  uint64_t total_bytes; /* declared size when known, else 0 */
  bool adopt;           /* the store's record says this node made the model's
                           directory: a directory without the ownership marker
                           (made by an earlier version) is marked as its own */
} mesh_coord_action;

/* Journal record kinds (stable numbers: they are stored). */
typedef enum mesh_coord_journal_kind {
  MESH_COORD_J_COMMAND = 1, /* a command was accepted */
  MESH_COORD_J_REFUSED = 2, /* a local command was refused (remote refusals are only counted) */
  MESH_COORD_J_STATE = 3,   /* an own entry changed status */
  MESH_COORD_J_RESTORE = 4, /* entries of an earlier epoch taken over */
  MESH_COORD_J_REMOVED = 5, /* an own entry is gone (deleted, cancelled) */
  MESH_COORD_J_SOURCE = 6,  /* a member was dropped as a source of an own download */
} mesh_coord_journal_kind;

#define MESH_COORD_JOURNAL_TEXT_MAX 384

typedef enum mesh_coord_out_kind {
  MESH_COORD_OUT_ACTION = 1,     /* .action */
  MESH_COORD_OUT_SEND = 2,       /* .send: bytes to a peer on MESH_CH_COORD, stream class */
  MESH_COORD_OUT_APP_STATE = 3,  /* .app_state: set as membership application state */
  MESH_COORD_OUT_STORE_PUT = 4,  /* .entry: upsert an own entry */
  MESH_COORD_OUT_STORE_DEL = 5,  /* .entry: remove an own entry (model_id, revision) */
  MESH_COORD_OUT_STORE_META = 6, /* .meta: persist epoch and document version */
  MESH_COORD_OUT_JOURNAL = 7,    /* .journal: append a record */
  MESH_COORD_OUT_RESULT = 8,     /* .result: answer to a remote command we sent */
} mesh_coord_out_kind;

typedef struct mesh_coord_out {
  mesh_coord_out_kind kind;
  union {
    mesh_coord_action action;
    struct {
      mesh_peer_id to;
      uint8_t *bytes; /* owned by the holder of the item */
      size_t len;
    } send;
    struct {
      uint8_t *bytes; /* owned by the holder of the item */
      size_t len;
    } app_state;
    mesh_coord_entry entry;
    struct {
      uint64_t epoch;
      uint64_t version;
    } meta;
    struct {
      mesh_coord_journal_kind kind;
      char model_id[MESH_MODEL_ID_MAX];
      char text[MESH_COORD_JOURNAL_TEXT_MAX];
    } journal;
    struct {
      mesh_peer_id from;                  /* the node that executed (or refused) the command */
      uint64_t seq;                       /* as returned by mesh_coord_command */
      int code;                           /* 0 or a negative errno in [-4095, -1] */
      char message[MESH_COORD_ERROR_MAX]; /* the target's text, control bytes escaped */
    } result;
  } u;
} mesh_coord_out;

/* Counters. Reasons a document or command was refused are counted apart. */
typedef struct mesh_coord_stats {
  uint64_t docs_accepted;
  uint64_t docs_refused_malformed;    /* undecodable, out of bounds, bad model ID */
  uint64_t docs_refused_forged;       /* signature bad or signer is not the owner */
  uint64_t docs_refused_unknown;      /* owner not in the view */
  uint64_t docs_refused_unanswered;   /* owner has not answered a ping of ours in its epoch yet */
  uint64_t docs_refused_old_epoch;    /* owner epoch older than the view's */
  uint64_t docs_refused_future_epoch; /* newer than the view's: wait for membership */
  uint64_t docs_refused_old_version;  /* not newer than the one held */
  uint64_t docs_refused_owner_cap;    /* over one owner's entry or byte cap */
  uint64_t docs_refused_budget;       /* would take the held documents over their budget */
  uint64_t docs_refused_models_dir;   /* models_dir not absolute, too long, "..", control bytes */
  uint64_t docs_sent;
  uint64_t requests_sent;
  uint64_t requests_answered;
  uint64_t cmds_sent; /* commands sent to other nodes */
  uint64_t cmds_accepted;
  uint64_t cmds_refused; /* all reasons */
  uint64_t cmds_refused_forged;
  uint64_t cmds_refused_epoch;
  uint64_t cmds_refused_replay;
  uint64_t cmds_refused_policy; /* sender not allowed by --accept-commands-from */
  uint64_t cmds_refused_quota;  /* the requester's (or all peers') share of own entries is full */
  uint64_t results_unmatched;   /* answers from a peer that no pending command awaits */
  uint64_t deletes_refused_unowned; /* deletes of a directory without meshd's marker */
  uint64_t msgs_malformed;          /* undecodable CoordMessage */
  uint64_t actions_emitted;
  uint64_t actions_deferred_global;   /* held back by the global cap */
  uint64_t actions_deferred_entry;    /* held back by the per-entry interval */
  uint64_t results_ignored;           /* executor results for no matching entry */
  uint64_t docs_abandoned;            /* owners marked abandoned */
  uint64_t docs_collected;            /* documents detached for collection */
  uint64_t entries_collected;         /* entries freed */
  uint64_t gc_max_work;               /* most entries freed in one tick */
  uint64_t queue_failures;            /* collection or forgetting queued late: no memory */
  uint64_t reconnect_syncs;           /* documents exchanged again on a new connection */
  uint64_t requests_refused_stranger; /* document requests from a peer not in the view */
  uint64_t requests_refused_rate;     /* ... from a member over its budget */
  uint64_t outbox_dropped;            /* items dropped because the outbox was full */
  uint64_t store_writes;              /* store items emitted */
  uint64_t journal_records;           /* journal items emitted */
  uint64_t publish_failures;          /* own documents that could not be made (memory) */
  uint64_t view_resyncs;              /* mirrors of the view rebuilt from the view source */
  uint64_t view_resync_fixes;         /* peers whose place in the mirror a resync corrected */
} mesh_coord_stats;

typedef struct mesh_coord mesh_coord;

/*
 * Creates a coordinator for identity id (borrowed; must outlive it) in epoch
 * epoch. rng (borrowed) supplies retry jitter. settings are copied.
 */
int mesh_coord_new(const mesh_identity *id, uint64_t epoch, const mesh_coord_settings *settings,
                   mesh_rng *rng, mesh_coord **out);
void mesh_coord_free(mesh_coord *c);

/*
 * Takes over this node's entries of an earlier epoch, as read from the store
 * (n entries, borrowed), and the last document version. Completed entries
 * are verified on disk before they are published again; pending, ongoing
 * and failed downloads are resumed; deleting entries are deleted again.
 * Call once, before any other input.
 */
int mesh_coord_restore(mesh_coord *c, const mesh_coord_entry *entries, size_t n,
                       uint64_t doc_version, mesh_time_ms now);

/*
 * This node renewed its epoch in place: declared dead in its epoch, it made
 * a new, higher epoch durable and goes on in the same process, with its
 * executors and transfers running. Unlike mesh_coord_restore nothing is
 * re-checked or restarted: the process watched its own entries the whole
 * time, actions in flight stay in flight and their results still match
 * (entries are found by model and revision). Every own entry moves to the
 * new epoch (a store write each, and a journal record), the document of the
 * old epoch is never served again, and the document is re-signed under the
 * new epoch and sent at once to every member in the view, with the new
 * digest. -ESTALE when epoch is not higher than the current one.
 */
int mesh_coord_set_epoch(mesh_coord *c, uint64_t epoch, mesh_time_ms now);
uint64_t mesh_coord_epoch(const mesh_coord *c);

/*
 * The coordinator's mirror of the membership view. It learns the view only
 * from these two calls, never from the membership core itself (net/view.h).
 *
 * mesh_coord_view_event applies one change. Its seq is not checked here: the
 * caller follows the sequence (mesh_view_follow) and resyncs on a gap. 0, or
 * -ENOMEM when a new peer could not be recorded (the mirror then lags the
 * view: the caller resyncs later).
 *
 * mesh_coord_view_resync makes the mirror equal to the view src lists now
 * (src and its core borrowed for the call), with the changes the missed
 * events would have made: a peer no longer in the view is departed (its
 * entries abandoned, collected after gc_grace), one no longer listed at all
 * was also reaped, a newcomer joins (documents exchanged), a higher epoch
 * supersedes the old one (its entries detached at once), suspicion follows.
 * A mirror already equal is left alone: nothing is sent or changed. Counted
 * in view_resyncs, the peers it corrected in view_resync_fixes. 0, -ENOMEM
 * when a newcomer could not be recorded (the rest is applied), or the
 * source's error when it could not list a member (nothing is departed).
 */
int mesh_coord_view_event(mesh_coord *c, const mesh_view_event *ev, mesh_time_ms now);
/* A connection to peer came up (new, or replacing another): a member of
 * the view gets this node's document again and is asked for its own, since
 * what was sent on the old connection may never have arrived. */
void mesh_coord_peer_connected(mesh_coord *c, const mesh_peer_id *peer, mesh_time_ms now);
int mesh_coord_view_resync(mesh_coord *c, const mesh_view_source *src, mesh_time_ms now);

/* A message received on MESH_CH_COORD from peer from (authenticated by the
 * transport). Returns 0, or a negative errno saying why it was dropped (the
 * matching counter is incremented). */
int mesh_coord_receive(mesh_coord *c, const mesh_peer_id *from, const uint8_t *buf, size_t len,
                       mesh_time_ms now);

/* A peer's membership application state (its Digest) changed. */
int mesh_coord_app_state(mesh_coord *c, const mesh_peer_id *peer, const uint8_t *buf, size_t len,
                         mesh_time_ms now);

typedef enum mesh_coord_cmd_kind {
  MESH_COORD_CMD_START = 1,
  MESH_COORD_CMD_CANCEL = 2,
  MESH_COORD_CMD_DELETE = 3,
} mesh_coord_cmd_kind;

typedef struct mesh_coord_cmd {
  mesh_coord_cmd_kind kind;
  const char *model_id;
  const char *revision;       /* NULL means "main" */
  uint64_t total_bytes;       /* START: declared size, 0 = unknown */
  const mesh_peer_id *target; /* NULL = this node */
  uint64_t target_epoch;      /* 0 = the target's current epoch */
} mesh_coord_cmd;

/*
 * A local command (from the control API). For this node it is applied at
 * once; for another node of the view it is signed and queued for sending and
 * *seq receives the number its answer (MESH_COORD_OUT_RESULT) will carry.
 * Sequence numbers are unique for the life of the process and across its
 * epochs (they start at epoch << 32). An answer is taken only when it comes
 * from the target itself (the peer authenticated on the connection), names
 * the target epoch the command named and a sequence number still awaited;
 * anything else is dropped and counted (results_unmatched).
 * Errors: -EINVAL bad model ID or revision (msg says which), -EHOSTUNREACH
 * target not in the view, -ESTALE target epoch is not the current one,
 * -ENOSPC too many entries, -ENOENT cancel of an unknown entry. msg (may be
 * NULL) receives a one-line message.
 */
int mesh_coord_command(mesh_coord *c, const mesh_coord_cmd *cmd, mesh_time_ms now, uint64_t *seq,
                       char *msg, size_t msglen);

/* Executor results, all for own entries (model_id, revision). Results that
 * match no entry in a matching state are ignored and counted. */
void mesh_coord_space(mesh_coord *c, const char *model_id, const char *revision,
                      uint64_t total_bytes, uint64_t free_bytes, mesh_time_ms now);
/* A space check that could not be done (e.g. the file list failed). */
void mesh_coord_space_failed(mesh_coord *c, const char *model_id, const char *revision,
                             const char *message, mesh_time_ms now);
void mesh_coord_progress(mesh_coord *c, const char *model_id, const char *revision,
                         uint64_t done_bytes, uint64_t total_bytes, uint32_t files_done,
                         uint32_t files_total, uint64_t speed_bps, uint64_t eta_ms,
                         mesh_time_ms now);
void mesh_coord_completed(mesh_coord *c, const char *model_id, const char *revision,
                          uint64_t total_bytes, mesh_time_ms now);
void mesh_coord_download_failed(mesh_coord *c, const char *model_id, const char *revision,
                                const char *message, mesh_time_ms now);
/* err: 0 (done; ENOENT is reported as 0), -EAGAIN (more to do), -EPERM
 * (the directory is not meshd's: no ownership marker; nothing was removed,
 * the entry fails for good and it is counted in deletes_refused_unowned) or
 * another negative errno (retried). */
void mesh_coord_delete_result(mesh_coord *c, const char *model_id, const char *revision, int err,
                              mesh_time_ms now);
void mesh_coord_verified(mesh_coord *c, const char *model_id, const char *revision, bool present,
                         uint64_t bytes, mesh_time_ms now);

/* Time passes: retries fall due, rate limits refill, abandoned documents
 * reach their grace, collection proceeds. Emits nothing when nothing is due. */
void mesh_coord_tick(mesh_coord *c, mesh_time_ms now);

/* The earliest time a tick has work to do, or UINT64_MAX when none (so the
 * daemon can arm one timer instead of ticking an idle node). */
mesh_time_ms mesh_coord_next_deadline(const mesh_coord *c);

/* Outbox. pop returns true and moves the oldest item into *out. */
bool mesh_coord_pop(mesh_coord *c, mesh_coord_out *out);
size_t mesh_coord_outbox_len(const mesh_coord *c);
void mesh_coord_out_release(mesh_coord_out *out);

const mesh_coord_stats *mesh_coord_get_stats(const mesh_coord *c);

/* Visiting the entries for display. abandoned is true for a departed owner's
 * entries, with collect_in the time left before they are collected. */
typedef struct mesh_coord_view_entry {
  const mesh_coord_entry *e;
  /* Absolute path of the owner's models directory (e->model_dir is relative
   * to it); NULL when the owner did not publish one. Valid during the call. */
  const char *models_dir;
  bool own;
  bool abandoned;
  mesh_time_ms collect_in;
} mesh_coord_view_entry;
typedef void (*mesh_coord_visit_fn)(void *arg, const mesh_coord_view_entry *ve);
/* Calls fn for every own entry, then every held entry of others. */
void mesh_coord_visit(const mesh_coord *c, mesh_time_ms now, mesh_coord_visit_fn fn, void *arg);
/* The coordinator's mirror of the view about peer: 1 in the view (alive or
 * suspect), 0 departed (dead or left, not yet forgotten), -ENOENT not known;
 * *epoch (may be NULL) receives its current or last epoch when known. For
 * comparing the mirror with membership's view. */
int mesh_coord_view_of(const mesh_coord *c, const mesh_peer_id *peer, uint64_t *epoch);
/* Whether path (len bytes, not necessarily NUL-terminated) may be published
 * or taken as an owner's models directory: 1..MESH_COORD_MODELS_DIR_MAX
 * bytes, starting with "/", no ".." component, no byte below 0x20 nor 0x7f.
 * 0 or -EINVAL. */
int mesh_coord_models_dir_check(const char *path, size_t len);
/* Number of entries of others held (shown or awaiting collection). */
size_t mesh_coord_held_entries(const mesh_coord *c);
/* Bytes of others' documents held (shown or awaiting collection). */
uint64_t mesh_coord_held_bytes(const mesh_coord *c);
size_t mesh_coord_own_count(const mesh_coord *c);
uint64_t mesh_coord_doc_version(const mesh_coord *c);

/* ---- sources of model files (coord_sources.c) ----------------------------
 * Rule 10: bytes come only from members alive in the view at their current
 * epoch whose document of that epoch says the revision is completed. */

/* Most candidate sources looked at for one file. */
#define MESH_COORD_SOURCES_MAX 64

/* Whether peer may serve (model_id, revision) now. */
bool mesh_coord_source_ok(const mesh_coord *c, const mesh_peer_id *peer, const char *model_id,
                          const char *revision);
/* The peers that may serve (model_id, revision): at most cap into out.
 * Returns how many. */
size_t mesh_coord_sources(const mesh_coord *c, const char *model_id, const char *revision,
                          mesh_peer_id *out, size_t cap);
/* What one download does with a source: transfers running, and whether it
 * failed it (bad bytes, an error, a refusal) so that it is not asked again. */
typedef struct mesh_coord_source_use {
  mesh_peer_id peer;
  unsigned active;
  bool failed;
} mesh_coord_source_use;
/* Picks the eligible source with the fewest transfers of use[] (n_use of
 * them), leaving out failed ones and those at per_source_max: 0 and *out,
 * -EBUSY (eligible sources, all at their bound, or a suspect that has the
 * revision and did not fail: wait and ask again) or -ENOENT (none). */
int mesh_coord_pick_source(const mesh_coord *c, const char *model_id, const char *revision,
                           const mesh_coord_source_use *use, size_t n_use, unsigned per_source_max,
                           mesh_peer_id *out);
/* The executor dropped peer as a source of the own download of
 * (model_id, revision): why (its bytes failed the Hub's hash...). Journals
 * it, naming the peer. */
void mesh_coord_source_dropped(mesh_coord *c, const char *model_id, const char *revision,
                               const mesh_peer_id *peer, const char *why);
/* The executor took the file list of the own download of (model_id,
 * revision) from member peer, the Hub being unreachable (the operator
 * allowed it). Journals it, naming the peer, and keeps the peer in the
 * entry (list_from, stored, so it outlives a restart) until the next run
 * of the download starts. */
void mesh_coord_list_from_member(mesh_coord *c, const char *model_id, const char *revision,
                                 const mesh_peer_id *peer);
/* Whether this node may serve its own (model_id, revision): 0 and the model
 * directory (relative to the models directory) into model_dir (cap bytes)
 * when its entry is completed (and inspected, after a restart); -ENOENT
 * otherwise, -ENAMETOOLONG. */
int mesh_coord_own_completed(const mesh_coord *c, const char *model_id, const char *revision,
                             char *model_dir, size_t cap);

/* Decodes a document envelope without a view (the fuzz target's entry
 * point): 0 when it is well-formed and signed by its owner. */
int mesh_coord_doc_check(const uint8_t *buf, size_t len, uint64_t *epoch, uint64_t *version,
                         size_t *entries);

#endif
