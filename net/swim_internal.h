/*
 * Pieces of the membership core shared between its files; not a public API.
 *
 *   swim_util.c       pure math (timeouts, limits), the peer-ID hash index
 *   swim_awareness.c  Lifeguard local health score
 *   swim_budget.c     per-peer budgets: introductions, bad signatures,
 *                     push-pull requests
 *   swim_suspicion.c  one suspicion: confirmations and its shrinking deadline
 *   swim_broadcast.c  the retransmit-limited update queue
 *   swim_profile.c    profile defaults
 *   swim_codec.c      Packet / Update / bodies to and from protobuf, signing,
 *                     the verified-signature cache
 *   swim_outbox.c     the outbox
 *   swim_state.c      the protocol
 *   swim_view.c       the core as a view source (net/view.h)
 */
#ifndef MESH_NET_SWIM_INTERNAL_H
#define MESH_NET_SWIM_INTERNAL_H

#include "net/swim.h"

typedef struct swim_suspicion swim_suspicion;

/* ---- util ---- */

/* memberlist's suspicionTimeout: mult * max(1, log10(max(1, n))) * interval. */
mesh_time_ms swim_suspicion_timeout(uint32_t mult, size_t n, uint32_t interval_ms);
/* memberlist's remainingSuspicionTime: the timeout after `confirm` of `k`
 * expected confirmations, minus elapsed (may be negative: overdue). */
int64_t swim_suspicion_remaining(uint32_t confirm, uint32_t k, int64_t elapsed_ms, int64_t min_ms,
                                 int64_t max_ms);
/* mult * ceil(log10(n + 1)). */
uint32_t swim_retransmit_limit(uint32_t mult, size_t n);
/* memberlist's pushPullScale: the interval grows with log2(n) above 32. */
mesh_time_ms swim_push_pull_scale(uint32_t interval_ms, size_t n);

/* Open-addressing index from peer ID to a small integer (the member slot). */
typedef struct swim_index {
  int32_t *slots; /* -1 empty, else a member slot */
  size_t cap;     /* power of two */
  size_t n;
} swim_index;

/* What the core knows of one member (other than itself). */
typedef struct swim_member {
  mesh_peer_id id;
  uint64_t epoch;
  uint64_t inc; /* incarnation */
  mesh_swim_state state;
  mesh_time_ms since; /* when state last changed */
  int32_t slot;       /* index in the core's member array */
  uint8_t *rec;       /* the verified Update (alive or left) in force, as received */
  size_t rec_len;
  uint8_t *acc; /* the verified accusation Update (suspect or dead) in force, or NULL */
  size_t acc_len;
  char *addrs; /* listen addresses from rec, NUL-terminated, back to back */
  size_t addrs_bytes;
  size_t n_addrs;
  char *agent, *host;   /* from rec; never NULL once known */
  swim_suspicion *susp; /* while suspect */
  int32_t susp_slot;    /* index in the core's suspect list, or -1 */
  uint64_t intake;      /* number of the packet that introduced it */
  bool answered;        /* answered a ping of ours in this epoch (MESH_VIEW_ANSWERED) */
} swim_member;

int swim_index_init(swim_index *ix, size_t cap);
void swim_index_free(swim_index *ix);
/* keys[v] gives the peer ID of value v. */
int swim_index_get(const swim_index *ix, const mesh_peer_id *id, swim_member *const *keys);
int swim_index_put(swim_index *ix, const mesh_peer_id *id, int32_t v, swim_member *const *keys);
void swim_index_del(swim_index *ix, const mesh_peer_id *id, swim_member *const *keys);
/* Exchanges the values of a and b (call before swapping them in keys). */
void swim_index_swap(swim_index *ix, const mesh_peer_id *a, const mesh_peer_id *b,
                     swim_member *const *keys);
/* Re-indexes keys[0..n) after a reordering (capacity is kept). */
void swim_index_rebuild(swim_index *ix, swim_member *const *keys, size_t n);
/* Replaces the value stored for id (the member moved to another slot). */
void swim_index_set(swim_index *ix, const mesh_peer_id *id, int32_t v, swim_member *const *keys);

/* ---- awareness ---- */

typedef struct swim_awareness {
  int score; /* 0 healthy .. max - 1 */
  int max;
} swim_awareness;

void swim_awareness_init(swim_awareness *a, int max);
void swim_awareness_apply(swim_awareness *a, int delta);
mesh_time_ms swim_awareness_scale(const swim_awareness *a, mesh_time_ms t);
/* How much a loop lateness of late_ms raises the score (0: not at all). */
int swim_awareness_lateness_delta(mesh_time_ms late_ms, mesh_time_ms probe_timeout_ms,
                                  mesh_time_ms probe_interval_ms);

/* ---- suspicion ---- */

#define SWIM_SUSPICION_MAX_K 16

struct swim_suspicion {
  uint32_t k;         /* confirmations expected */
  uint32_t n;         /* confirmations so far */
  mesh_time_ms start; /* when the suspicion began */
  mesh_time_ms min, max;
  mesh_time_ms deadline;                       /* when the member is declared dead */
  mesh_peer_id seen[SWIM_SUSPICION_MAX_K + 1]; /* the first accuser, then confirmers */
  uint32_t n_seen;
  /* Last-chance check before a dead claim (net/swim_state.c): one ping to
   * the suspect carrying the accusation, on both classes, shortly before the
   * deadline. */
  bool lc_sent;        /* sent for this suspicion */
  uint32_t lc_seq;     /* its seq: an ACK with it means the suspect answered */
  mesh_time_ms lc_end; /* no ACK by then (and past the deadline): dead */
  /* The suspicion is ours, raised on a member's dead claim about a member
   * we held alive (net/swim_state.c): that accuser's dead claim, seen again,
   * is not a second opinion. */
  bool from_dead;
  mesh_peer_id dead_by; /* the accuser of that dead claim (valid with from_dead) */
};

void swim_suspicion_init(swim_suspicion *sp, uint32_t k, mesh_time_ms min, mesh_time_ms max,
                         mesh_time_ms now, const mesh_peer_id *from);
/* true when from is a new independent accuser (deadline recomputed). */
bool swim_suspicion_confirm(swim_suspicion *sp, const mesh_peer_id *from);
/* The suspect answered: the timeout runs again from now (confirmations
 * kept), and a new last-chance check will be due. */
void swim_suspicion_restart(swim_suspicion *sp, mesh_time_ms now);
/* Whether another confirmation can still shorten the timeout. */
bool swim_suspicion_wants(const swim_suspicion *sp, const mesh_peer_id *from);

/* ---- per-peer budgets ---- */

#define SWIM_PEER_SLOTS 64

/* What one peer (a packet's authenticated sender) spent of its budgets. */
typedef struct swim_peer {
  mesh_peer_id id;
  bool used;
  mesh_time_ms seen;         /* last packet from it: the least recent is replaced */
  mesh_time_ms intro_window; /* start of the probe interval intro_n counts */
  uint32_t intro_n;          /* new members it introduced by datagram in it */
  mesh_time_ms bad_window;   /* its first bad signature in the window bad_n counts */
  uint32_t bad_n;            /* records with a bad signature in it */
  bool cut;                  /* over budget in this window: disconnect asked */
  mesh_time_ms pp_at;        /* pp_tokens is up to date as of then */
  uint32_t pp_tokens;        /* push-pulls it may send now */
} swim_peer;

typedef struct swim_peers {
  swim_peer slot[SWIM_PEER_SLOTS];
} swim_peers;

void swim_peers_init(swim_peers *t);
/* The slot of id, taken over from the least recently heard peer when id has
 * none (its push-pull bucket starts full). Never NULL. The pointer stays
 * valid until the next call for another peer. */
swim_peer *swim_peers_get(swim_peers *t, const mesh_peer_id *id, uint32_t push_pull_burst,
                          mesh_time_ms now);
/* The count of new members p introduced by datagram in the current probe
 * interval (a new interval starts at zero). */
uint32_t *swim_peer_intro(swim_peer *p, mesh_time_ms interval_ms, mesh_time_ms now);
/* Counts one bad signature; true exactly once per window, when the count
 * reaches budget (the caller then asks for a disconnect). */
bool swim_peer_bad_sig(swim_peer *p, uint32_t budget, mesh_time_ms window_ms, mesh_time_ms now);
/* Whether p is over its bad-signature budget in the current window. */
bool swim_peer_is_cut(swim_peer *p, mesh_time_ms window_ms, mesh_time_ms now);
/* Takes one push-pull token (burst, then one per refill_ms); false when
 * none is left. */
bool swim_peer_take_push_pull(swim_peer *p, uint32_t burst, uint32_t refill_ms, mesh_time_ms now);

/* ---- broadcast queue ---- */

typedef struct swim_bcast {
  mesh_peer_id subject; /* one queued update per subject: newer replaces older */
  uint8_t *buf;         /* an encoded Update; NULL: free slot */
  size_t len;
  uint32_t transmits;
  int32_t prev, next; /* neighbours in the list of its transmit count */
} swim_bcast;

/*
 * Items live in a slab (indices stay valid until removed); each transmit
 * count has a list, newest first, so that picking the least-sent, newest
 * updates costs the picks, not the queue length.
 */
typedef struct swim_bqueue {
  swim_bcast *items; /* slab */
  size_t cap;
  int32_t free_head; /* free slots, linked through next */
  int32_t *heads;    /* heads[t]: first item sent t times, -1 if none */
  size_t n_heads;
  size_t n; /* queued updates */
} swim_bqueue;

void swim_bq_init(swim_bqueue *q);
void swim_bq_free(swim_bqueue *q);
/* Queues a copy of buf about subject, replacing any queued update about it. */
int swim_bq_push(swim_bqueue *q, const mesh_peer_id *subject, const uint8_t *buf, size_t len);
/* Picks up to max updates that fit budget bytes (each costs its length plus
 * overhead), fewest transmits first, newer first. Fills idx, returns count. */
size_t swim_bq_select(const swim_bqueue *q, size_t budget, size_t overhead, size_t *idx,
                      size_t max);
/* Counts one transmission of each selected update and drops those that
 * reached limit. idx as returned by swim_bq_select (it is reordered). */
void swim_bq_commit(swim_bqueue *q, size_t *idx, size_t n, uint32_t limit);

/* ---- codec ---- */

#define SWIM_TYPE_MEMBER "swim-member"
#define SWIM_TYPE_ACCUSE "swim-accuse"

/* A decoded MemberBody, pointing into protobuf-owned memory. */
typedef struct swim_member_body {
  mesh_peer_id id;
  uint64_t epoch, incarnation;
  bool left;
  size_t n_addrs;
  const char *addrs[MESH_SWIM_MAX_ADDRS];
  const char *agent, *host;
  void *pb; /* the unpacked message; swim_member_body_release frees it */
} swim_member_body;

typedef struct swim_accuse_body {
  mesh_peer_id target, accuser;
  uint64_t epoch, incarnation;
  bool dead;
} swim_accuse_body;

/* A decoded Update; body and sig point into pb. */
typedef struct swim_update {
  mesh_peer_id subject;
  bool accuse;
  const uint8_t *body;
  size_t body_len;
  const uint8_t *sig; /* MESH_SIG_LEN bytes */
  void *pb;
} swim_update;

/* A decoded Packet; updates[i] point into pb. */
typedef struct swim_packet {
  int kind;
  uint32_t seq;
  bool has_target;
  mesh_peer_id target;
  size_t n_target_addrs;
  const char *target_addrs[MESH_SWIM_MAX_ADDRS];
  bool nack, join, reply;
  uint64_t epoch;
  size_t n_updates;
  const uint8_t **updates;
  const size_t *update_lens;
  const uint8_t *app;
  size_t app_len;
  const uint8_t *digest_key; /* MESH_SWIM_DIGEST_KEY bytes, or NULL */
  const uint64_t *digest;    /* push-pull ask: hashes of the sender's updates */
  size_t n_digest;
  const uint64_t *want; /* push-pull answer: hashes of the ask the answerer lacks */
  size_t n_want;
  void *pb;
} swim_packet;

/* A Packet to encode; updates are borrowed. */
typedef struct swim_packet_out {
  int kind;
  uint32_t seq;
  const mesh_peer_id *target;
  const char *target_addrs; /* back-to-back NUL-terminated */
  size_t n_target_addrs;
  bool nack, join, reply;
  bool bare; /* a ping or ack that carries no queued updates */
  uint64_t epoch;
  const uint8_t *const *updates;
  const size_t *update_lens;
  size_t n_updates;
  const uint8_t *app;
  size_t app_len;
  const uint8_t *digest_key; /* MESH_SWIM_DIGEST_KEY bytes, or NULL */
  const uint64_t *digest;
  size_t n_digest;
  const uint64_t *want;
  size_t n_want;
} swim_packet_out;

/* Bytes a Packet takes for one update of len bytes (tag, length, payload). */
size_t swim_update_overhead(size_t len);
/* Encodes into a new buffer of *len bytes, with extra bytes of spare room
 * after it (the outbox appends addresses there). */
int swim_packet_encode(const swim_packet_out *p, size_t extra, uint8_t **buf, size_t *len);
/* Bytes a packet with no updates takes (an upper bound). */
size_t swim_packet_base_size(const swim_packet_out *p);
int swim_packet_decode(const uint8_t *buf, size_t len, swim_packet *out);
/* Whether buf is a push-pull, told without decoding it: the top-level
 * fields are walked and skipped by their lengths (no copy), so a full state
 * over its sender's rate is refused before it costs a decode. false when
 * the kind is not found (decode then says why). */
bool swim_packet_is_push_pull(const uint8_t *buf, size_t len);
void swim_packet_release(swim_packet *p);

int swim_update_encode(const mesh_peer_id *subject, bool accuse, const uint8_t *body,
                       size_t body_len, const uint8_t sig[MESH_SIG_LEN], uint8_t **buf,
                       size_t *len);
int swim_update_decode(const uint8_t *buf, size_t len, swim_update *out);
void swim_update_release(swim_update *u);

/* Encodes a MemberBody (bounds checked: -EINVAL). */
int swim_member_body_encode(const mesh_peer_id *id, uint64_t epoch, uint64_t inc, bool left,
                            const char *const *addrs, size_t n_addrs, const mesh_swim_transport *tr,
                            size_t n_tr, const char *agent, const char *host, uint8_t **buf,
                            size_t *len);
int swim_member_body_decode(const uint8_t *buf, size_t len, swim_member_body *out);
void swim_member_body_release(swim_member_body *b);

int swim_accuse_body_encode(const swim_accuse_body *a, uint8_t **buf, size_t *len);
int swim_accuse_body_decode(const uint8_t *buf, size_t len, swim_accuse_body *out);

/* Verifies sig over body under domain/type, signed by signer's key; consults
 * and fills the cache. Counts into c. 0 or -MESH_EAUTH. */
int swim_verify(mesh_swim_sigcache *cache, const mesh_peer_id *signer, const char *domain,
                const char *type, const uint8_t *body, size_t len, const uint8_t *sig,
                mesh_swim_counters *c);

/* ---- outbox ---- */

/* Adds a send; takes buf (allocated with room for the addresses after len). */
int swim_outbox_send(mesh_swim_outbox *o, const mesh_peer_id *to, mesh_swim_class cls, int kind,
                     uint8_t *buf, size_t len, const char *addrs, size_t addrs_bytes,
                     size_t n_addrs);
int swim_outbox_dial(mesh_swim_outbox *o, const char *addr);
int swim_outbox_event(mesh_swim_outbox *o, const mesh_view_event *ev);
int swim_outbox_app(mesh_swim_outbox *o, const mesh_peer_id *from, uint64_t epoch,
                    const uint8_t *buf, size_t len);
int swim_outbox_disconnect(mesh_swim_outbox *o, const mesh_peer_id *peer);

#endif
