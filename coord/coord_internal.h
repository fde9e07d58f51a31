/*
 * The coordinator core's private state, shared by its files:
 *   coord_core.c   lifecycle, outbox, own entries, commands, executor results,
 *                  rate limits, publishing
 *   coord_peers.c  the mirror of the view, others' documents, abandonment and
 *                  bounded garbage collection
 *   coord_due.c    due-time queues (min-heaps) of collection and forgetting
 *   coord_wire.c   protobuf encoding and decoding, signatures, dispatch of
 *                  received messages
 * Nothing here is used outside coord/.
 */
#ifndef MESH_COORD_COORD_INTERNAL_H
#define MESH_COORD_COORD_INTERNAL_H

#include "coord/coord.h"

/* An entry of another node, stored compactly: its strings follow the struct
 * in the same allocation, so that collecting it is one free. */
typedef struct coord_rentry {
  mesh_coord_status status;
  uint32_t files_done;
  uint32_t files_total;
  uint32_t attempts;
  uint64_t total_bytes;
  uint64_t done_bytes;
  uint64_t speed_bps;
  uint64_t eta_ms;
  uint64_t retry_in_ms;
  uint16_t rev_off; /* offset of the revision in strs */
  uint16_t dir_off; /* offset of the model directory in strs */
  uint16_t err_off; /* offset of the error text in strs */
  char strs[];      /* model ID, revision, directory, error; each NUL-ended */
} coord_rentry;

/* The last accepted document of one owner. */
typedef struct coord_doc {
  uint64_t epoch;
  uint64_t version;
  coord_rentry **entries; /* owned, n of them */
  size_t n;
  char *models_dir; /* owned; the owner's published models directory, NULL if none */
  uint8_t *raw; /* the signed envelope as received, for relaying */
  size_t raw_len;
  uint64_t bytes; /* what it costs in memory: raw, entries and this struct */
} coord_doc;

typedef enum coord_peer_state {
  PEER_ALIVE = 1,
  PEER_SUSPECT = 2,
  PEER_GONE = 3, /* dead or left: out of the view */
} coord_peer_state;

/* What the coordinator knows of one peer: its place in the view and the
 * document it holds for it. */
typedef struct coord_peer {
  mesh_peer_id id;
  uint64_t epoch; /* current (or, when gone, last) epoch */
  coord_peer_state state;
  mesh_time_ms gone_at;              /* when it left the view */
  bool reaped;                       /* membership dropped its record */
  coord_doc *doc;                    /* NULL when none held */
  mesh_time_ms collect_at;           /* abandoned doc: when it is collected */
  size_t collect_pos;                /* place in the collect queue, 1-based; 0: not in it */
  mesh_time_ms forget_at;            /* gone peer: when its record is dropped */
  size_t forget_pos;                 /* place in the forget queue, 1-based; 0: not in it */
  uint64_t last_cmd_seq;             /* highest command seq accepted from it */
  uint64_t last_cmd_epoch;           /* the sender epoch that seq belongs to */
  uint64_t sync_gen;                 /* the last resync that found it in the view source */
  bool req_seeded;                   /* its request bucket was filled once */
  uint64_t req_tokens;               /* document requests it may still make, in thousandths */
  mesh_time_ms req_at;               /* when the bucket was last refilled */
  uint64_t refused_epoch;            /* the last document refused for a budget: epoch */
  uint64_t refused_version;          /* ...and version (a digest of it is not asked for) */
  bool answered;                     /* answered a ping of this node's in its current epoch:
                                        only then are its documents asked for and taken */
} coord_peer;

/* A due-time queue of peers (coord_due.c): a min-heap on collect_at or
 * forget_at; the peer holds its place, so a moved deadline moves it. */
typedef enum coord_due_which {
  COORD_DUE_COLLECT = 0,
  COORD_DUE_FORGET = 1,
} coord_due_which;
typedef struct coord_due {
  coord_peer **v; /* heap, owned; the peers are the table's */
  size_t n, cap;
  coord_due_which which;
} coord_due;
void coord_due_init(coord_due *q, coord_due_which which);
void coord_due_free(coord_due *q);
bool coord_due_has(const coord_due *q, const coord_peer *p);
/* Adds p, or moves it after its deadline changed. -ENOMEM. */
int coord_due_set(coord_due *q, coord_peer *p);
void coord_due_remove(coord_due *q, coord_peer *p);
/* The earliest due, or NULL. */
coord_peer *coord_due_top(const coord_due *q);

/* Marks a freed slot of the peer table (open addressing). */
#define COORD_PEER_TOMB ((coord_peer *)(uintptr_t)1)

static inline bool coord_slot_live(const coord_peer *p)
{
  return p != NULL && p != COORD_PEER_TOMB;
}

/* A detached document awaiting freeing. */
typedef struct coord_garbage {
  coord_doc *doc;
  size_t cursor; /* entries freed so far */
  struct coord_garbage *next;
} coord_garbage;

/* An own entry with the bookkeeping the rules need. */
typedef struct coord_own {
  mesh_coord_entry e;
  bool verifying;                     /* restored completed entry awaiting VERIFY */
  bool want;                          /* an action is due as soon as limits allow */
  mesh_coord_action_kind next_action; /* which one */
  bool in_flight;                     /* an action was emitted and awaits its answer */
  mesh_time_ms last_action;           /* for the per-entry interval */
  mesh_coord_action_kind last_kind;   /* the kind of that action */
  bool acted;                         /* last_action is meaningful */
  bool restored;                      /* taken over from the store (mesh_coord_restore) */
} coord_own;

/* A command sent to another node whose answer is awaited: the answer must
 * come from target (the peer authenticated on the connection), name
 * target_epoch and carry seq. */
typedef struct coord_pending {
  mesh_peer_id target;
  uint64_t target_epoch;
  uint64_t seq; /* 0: the slot is free */
} coord_pending;

struct mesh_coord {
  const mesh_identity *id;
  uint64_t epoch;
  mesh_coord_settings set;
  mesh_rng *rng;
  mesh_coord_stats st;

  /* Outbox: a ring of items. */
  mesh_coord_out *out;
  size_t out_cap;
  size_t out_head;
  size_t out_len;

  /* Own entries. */
  coord_own *own;
  size_t own_n;
  uint64_t version;         /* version of the last published document */
  bool dirty;               /* own document changed since last publish */
  bool dirty_progress_only; /* ...and only by progress reports */
  mesh_time_ms last_publish;
  /* The models directory published in own documents: settings.models_dir
   * when mesh_coord_models_dir_check accepts it, else "" (none). */
  char pub_models_dir[MESH_COORD_MODELS_DIR_MAX + 1];
  uint8_t *own_raw; /* last sealed own document, for requests */
  size_t own_raw_len;
  uint64_t cmd_seq; /* last seq of a command we sent */
  coord_pending pending[MESH_COORD_PENDING_MAX];   /* ring of awaited answers */
  size_t pending_next;                             /* the slot the next command takes */
  mesh_peer_id accept_from[MESH_COORD_ACCEPT_MAX]; /* copy of settings.accept_from */

  /* Global action bucket. */
  double tokens;
  mesh_time_ms tokens_at;
  size_t wanting; /* own entries with want set */

  /* Peers: open-addressing hash table of pointers (NULL free, or the
   * tombstone marker of coord_peers.c). */
  coord_peer **peers;
  size_t peers_cap;
  size_t peers_used;   /* slots in use or tombstoned */
  size_t peers_live;   /* slots in use */
  coord_due collect;   /* abandoned docs, earliest collect_at first */
  coord_due forget;    /* gone peers, earliest forget_at first */
  coord_garbage *gc_head; /* detached docs to free */
  coord_garbage *gc_tail;
  size_t held_entries; /* entries of others in memory */
  uint64_t held_bytes; /* bytes of others' documents in memory (shown or awaiting freeing) */
  size_t live_entries; /* entries of the documents shown (installed) */
  uint64_t live_bytes; /* bytes of the documents shown */
  uint64_t sync_gen;   /* resyncs so far: marks the peers the current one found */
};

/* coord_core.c */
bool coord_push(mesh_coord *c, const mesh_coord_out *item);
void coord_send(mesh_coord *c, const mesh_peer_id *to, uint8_t *bytes, size_t len);
/* The first command sequence number of an epoch: numbers never repeat
 * across a node's epochs (coord_core.c says how). */
uint64_t coord_seq_base(uint64_t epoch, mesh_rng *rng);

/* coord_publish.c */
/* Hands out due actions and publishes the own document if it changed. */
void coord_settle(mesh_coord *c, mesh_time_ms now);
void coord_send_own_doc(mesh_coord *c, const mesh_peer_id *to);

/* coord_own.c */
void coord_journal_refused(mesh_coord *c, const char *model, const char *why);
/* Applies a command to this node's entries; requester is the node whose
 * command it is, NULL for the operator's own (the control API). Entries a
 * requester makes count against its quota. */
int coord_apply_local(mesh_coord *c, mesh_coord_cmd_kind kind, const char *model, const char *rev,
                      uint64_t total, const mesh_peer_id *requester, mesh_time_ms now, char *msg,
                      size_t msglen);
/* Failed entries whose retry time came: wanted again. */
void coord_retries(mesh_coord *c, mesh_time_ms now);
/* Hands wanted actions to the executors, within the rate limits. */
void coord_drive(mesh_coord *c, mesh_time_ms now);

/* coord_commands.c */
/* Whether settings allow commands from peer (a member of the view). */
bool coord_accepts_from(const mesh_coord *c, const mesh_peer_id *peer);
/* Finds and frees the pending command answered by (from, target_epoch,
 * seq); false when none awaits it. */
bool coord_pending_take(mesh_coord *c, const mesh_peer_id *from, uint64_t target_epoch,
                        uint64_t seq);

/* coord_peers.c */
coord_peer *coord_peer_find(const mesh_coord *c, const mesh_peer_id *id);
coord_peer *coord_peer_get(mesh_coord *c, const mesh_peer_id *id);
bool coord_peer_in_view(const coord_peer *p);
void coord_doc_detach(mesh_coord *c, coord_peer *p);
void coord_doc_install(mesh_coord *c, coord_peer *p, coord_doc *d);
/* Whether d (p's new document) fits the owner's caps and the budget of
 * held documents: 0, or -EMSGSIZE (owner cap) / -ENOBUFS (budget), counted. */
int coord_doc_admit(mesh_coord *c, const coord_peer *p, const coord_doc *d);
void coord_doc_free(coord_doc *d);
void coord_peers_free(mesh_coord *c);
void coord_gc_step(mesh_coord *c, mesh_time_ms now);
mesh_time_ms coord_gc_deadline(const mesh_coord *c);
void coord_rentry_to_entry(const coord_peer *p, const coord_rentry *r, mesh_coord_entry *e);

/* coord_wire.c */
int coord_wire_doc_encode(mesh_coord *c, mesh_time_ms now, uint8_t **out, size_t *len);
int coord_wire_wrap_doc(const uint8_t *env, size_t env_len, uint8_t **out, size_t *len);
int coord_wire_request(const mesh_peer_id *owner, uint64_t epoch, uint64_t version, uint8_t **out,
                       size_t *len);
int coord_wire_command(mesh_coord *c, const mesh_coord_cmd *cmd, uint64_t target_epoch,
                       uint64_t seq, uint8_t **out, size_t *len);
int coord_wire_result(uint64_t seq, uint64_t target_epoch, int code, const char *message,
                      uint8_t **out, size_t *len);
int coord_wire_digest(uint64_t epoch, uint64_t version, uint32_t entries, uint8_t **out,
                      size_t *len);
int coord_wire_decode_digest(const uint8_t *buf, size_t len, uint64_t *epoch, uint64_t *version);
/* Opens and decodes a document envelope: *d (allocated) on success. */
int coord_wire_doc_open(const uint8_t *buf, size_t len, mesh_peer_id *owner, coord_doc **d);

/* Small helpers. */
void coord_strlcpy(char *dst, const char *src, size_t cap);

#endif
