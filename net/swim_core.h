/*
 * The membership core's own state, shared by the files of the protocol:
 * swim_state.c (lifecycle, sending, timers, entry points), swim_records.c
 * (applying records: precedence, claims, this node's own) and swim_probe.c
 * (probing, indirect checks, last chances), swim_sync.c (push-pull
 * anti-entropy), swim_members.c (the member table and its transitions) and
 * swim_query.c (what the caller reads). Nothing outside them includes it.
 */
#ifndef MESH_NET_SWIM_CORE_H
#define MESH_NET_SWIM_CORE_H
#include "net/swim_internal.h"

#include "src/identity/signed.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RELAYS 64    /* pings in flight for others' PING_REQs */
#define MAX_PIGGYBACK 64 /* updates considered per datagram */
#define MAX_HELPERS 16   /* indirect checks per probe */
#define REAP_PERIOD_MS 1000
#define NEWCOMERS_MAX 256     /* members waiting for a first ping of their own */
#define NEWCOMERS_PER_PROBE 8 /* of those, pinged per probe interval */
#define NEVER UINT64_MAX

typedef struct swim_relay {
  uint32_t seq;           /* our ping to the target */
  mesh_peer_id requester; /* who asked */
  uint32_t req_seq;       /* the requester's probe seq, echoed in ACK / NACK */
  mesh_time_ms deadline;  /* NACK after this */
  bool nack;
} swim_relay;

/* Where the updates of one packet come from, for the introduction caps,
 * the sender's budgets and the push-pull tombstone rule. */
typedef struct swim_intake {
  const mesh_peer_id *from; /* the packet's sender (authenticated by the transport) */
  swim_peer *peer;          /* its budgets */
  uint64_t no;              /* the packet's number (swim_member.intake) */
  bool full;                /* a push-pull (full state) */
  uint32_t sync_new;        /* new members it introduced so far */
} swim_intake;

/* A member new to the view (or at a new epoch), waiting for a ping of its
 * own: seq is 0 until that ping is sent. */
typedef struct swim_newcomer {
  mesh_peer_id id;
  uint64_t epoch;
  bool sent;
  uint32_t seq; /* our ping (when sent) */
  mesh_time_ms sent_at;
} swim_newcomer;

typedef struct swim_reaped {
  mesh_peer_id id;
  uint64_t epoch;
} swim_reaped;

struct mesh_swim {
  mesh_swim_config cfg; /* resolved; strings point at the copies below */
  char **addrs;         /* copies of cfg addresses */
  mesh_swim_transport *transports;
  char *agent, *host;
  const mesh_identity *self;
  mesh_rng *rng;
  uint64_t epoch;
  uint64_t inc;
  bool started;    /* join called */
  bool joined;     /* a push-pull answered, or first node */
  bool leaving;    /* left record signed */
  bool epoch_dead; /* declared dead in this epoch: waiting for a new one */
  bool late_noted; /* a lateness report raised health at late_at */
  mesh_time_ms late_at;
  uint8_t *self_upd; /* our own signed Update (alive or left) */
  size_t self_upd_len;

  swim_member **m; /* members other than self */
  size_t n, cap;
  swim_index ix;
  size_t probe_idx;
  size_t n_view;      /* alive + suspect */
  uint64_t view_seq;  /* number of the last view change (net/view.h), queued or not */
  swim_member **susp; /* members with a running suspicion */
  size_t n_susp, cap_susp;

  struct {
    bool active;
    mesh_peer_id target;
    uint64_t epoch;
    uint32_t seq;
    mesh_time_ms started;    /* when it began (also after it ended) */
    mesh_time_ms timeout_at; /* direct ping's wait ends */
    mesh_time_ms end_at;     /* whole probe ends (health-scaled interval) */
    bool indirect;           /* PING_REQs sent */
    uint32_t expected_nacks, nacks;
  } probe;
  uint32_t seq;
  /* A member someone else suspects: probed next, out of turn, so that our
   * own confirmation (or its refutation) comes within a probe interval. */
  bool urgent;
  mesh_peer_id urgent_id;
  swim_relay relays[MAX_RELAYS];
  size_t n_relays;
  /* Newcomers get a ping of their own within a probe interval or two, not
   * when their turn in the round comes (minutes, in a large view at the wan
   * profile's interval): until a member answered one of our pings, the
   * coordinator takes no document from it. Those that do not fit wait for
   * their turn in the round. */
  swim_newcomer newcomers[NEWCOMERS_MAX];
  size_t n_newcomers;

  mesh_time_ms next_probe, next_gossip, next_push_pull, next_reap, next_join;
  mesh_time_ms last_gossip; /* when the last gossip round went out */
  bool news;                /* an update that changed the view was queued since */
  mesh_time_ms
      early_push_pull;   /* push-pull period after joining: doubles up to the configured one */
  bool pp_waiting;       /* our periodic push-pull waits for its answer ... */
  mesh_peer_id pp_asked; /* ... from this member */
  char **seeds;
  size_t n_seeds;

  swim_awareness aw;
  swim_bqueue bq;
  swim_peers peers;   /* per-peer budgets */
  uint64_t intake_no; /* packets handled: numbers swim_intake.no */
  swim_reaped *hist;  /* ring of reaped (peer, epoch) */
  size_t hist_n, hist_head;

  uint8_t app[MESH_SWIM_MAX_APP_STATE];
  size_t app_len;

  mesh_swim_sigcache *cache;
  bool own_cache;
  uint64_t timer_gen;
  mesh_time_ms armed_at; /* deadline of the outstanding timer request, NEVER if none */
  mesh_swim_counters c;
};

static inline bool swim_id_eq(const mesh_peer_id *a, const mesh_peer_id *b)
{
  return memcmp(a->b, b->b, MESH_PEER_ID_LEN) == 0;
}

static inline bool swim_in_view(mesh_swim_state st)
{
  return st == MESH_SWIM_ALIVE || st == MESH_SWIM_SUSPECT;
}

static inline swim_member *swim_find(const mesh_swim *s, const mesh_peer_id *id)
{
  int v = swim_index_get(&s->ix, id, s->m);
  return v < 0 ? NULL : s->m[v];
}

static inline void swim_drop(mesh_swim *s, mesh_swim_drop why)
{
  s->c.dropped[why]++;
}

static inline mesh_time_ms swim_min_t(mesh_time_ms a, mesh_time_ms b)
{
  return a < b ? a : b;
}

int swim_sign_self(mesh_swim *s);
/* Frees a member and what it holds (net/swim_members.c). */
void swim_free_member(swim_member *m);
/* Queues a view event about m, numbered in the view's sequence. */
void swim_view_event(mesh_swim *s, const swim_member *m, mesh_view_event_type type,
                     uint64_t old_epoch, mesh_time_ms now, mesh_swim_outbox *out);
/* Takes m off the suspect list and frees its suspicion. */
void swim_susp_remove(mesh_swim *s, swim_member *m);

/* m answered a ping of ours: once per epoch, the view hears of it. */
void swim_mark_answered(mesh_swim *s, swim_member *m, mesh_time_ms now, mesh_swim_outbox *out);

void swim_transition(mesh_swim *s, swim_member *m, mesh_swim_state st, mesh_view_event_type ev,
                     uint64_t old_epoch, mesh_time_ms now, mesh_swim_outbox *out);

int swim_start_suspicion(mesh_swim *s, swim_member *m, const mesh_peer_id *accuser,
                         mesh_time_ms now);

int swim_set_bytes(uint8_t **dst, size_t *dlen, const uint8_t *src, size_t len);

/* Copies what the member says of itself into m (addresses, agent, host). */
int swim_set_info(swim_member *m, const swim_member_body *b);

swim_member *swim_add_member(mesh_swim *s, const mesh_peer_id *id);

void swim_remove_member(mesh_swim *s, swim_member *m);

bool swim_reaped_refuses(const mesh_swim *s, const mesh_peer_id *id, uint64_t epoch);

/*
 * Encodes p, fills the rest of a datagram with queued updates (first the
 * optional `first` update, for the buddy system), and queues it for `to`.
 */
void swim_send_packet(mesh_swim *s, const mesh_peer_id *to, mesh_swim_class cls, swim_packet_out *p,
                      const uint8_t *first, size_t first_len, mesh_swim_outbox *out);

/*
 * What a probe costs on the wire. Pings, acks and nacks carry a kind and a
 * sequence number, nothing else (8 bytes): the transport authenticates both
 * ends of every datagram (a connection's handshake, or keys derived from
 * it), so the receiver knows who sent it and the sender knows who gets it.
 * Neither a signature nor the receiver's ID nor the sender's epoch would
 * tell either side anything; the epoch travels in push-pulls only, where
 * it names the epoch of the application state they carry. Records that
 * are relayed (member records, accusations) keep their signatures: a
 * relay cannot vouch for someone else. A PING_REQ names its target, whom
 * the helper does not otherwise know to ping.
 */
void swim_send_simple(mesh_swim *s, const mesh_peer_id *to, mesh_swim_class cls, int kind,
                      uint32_t seq, mesh_swim_outbox *out);

/* A PING to member m on class cls, with the accusation we hold about it
 * first when it is suspect (buddy system). */
void swim_send_ping(mesh_swim *s, const swim_member *m, mesh_swim_class cls, uint32_t seq,
                    mesh_swim_outbox *out);

/* Picks up to k distinct random members passing ok(), other than `not`. */
/* How a push-pull asks (net/swim_sync.c). */
typedef enum swim_push_pull_mode {
  SWIM_PP_FULL,   /* every update we hold */
  SWIM_PP_JOIN,   /* in full, and the sender is joining */
  SWIM_PP_DIGEST, /* by digest (in full to a seed known only by address) */
} swim_push_pull_mode;

/* Asks to (at addr when it is not in the view yet) for a push-pull. */
void swim_push_pull_send(mesh_swim *s, const mesh_peer_id *to, const char *addr,
                         swim_push_pull_mode mode, mesh_swim_outbox *out);
/* Answers or ends an exchange after p's updates were applied. */
void swim_push_pull_received(mesh_swim *s, const mesh_peer_id *from, const swim_packet *p,
                             mesh_time_ms now, mesh_swim_outbox *out);

size_t swim_pick_random(mesh_swim *s, size_t k,
                        bool (*ok)(const mesh_swim *, const swim_member *, mesh_time_ms),
                        const mesh_peer_id * not, mesh_time_ms now, swim_member **out);

/* swim_pick_random's filter for members believed alive. */
bool swim_ok_alive(const mesh_swim *s, const swim_member *m, mesh_time_ms now);

/*
 * Someone else suspects m: our next probe goes to m, and comes now when no
 * probe is running. Lifeguard shortens a suspicion with each independent
 * confirmation, and in round-robin order our turn to probe m may be n
 * intervals away: asked at once, a crashed member is confirmed within a
 * probe interval, and a live one answers the buddy ping (which carries the
 * accusation) and refutes. One probe at a time as always: this moves one
 * probe earlier, it adds none while no suspicion is news.
 */
void swim_probe_soon(mesh_swim *s, const swim_member *m, mesh_time_ms now);

/* Raises our own claim about m (probe failed, or suspicion expired). */
void swim_accuse(mesh_swim *s, swim_member *m, bool dead, mesh_time_ms now, mesh_swim_outbox *out);

/* in: who sent the packet, whether it carried a full state, and what it
 * introduced so far. claims: this pass applies the suspect and dead claims
 * (the first pass applies member records, and counts undecodable updates). */
void swim_apply_update(mesh_swim *s, swim_intake *in, bool claims, const uint8_t *raw, size_t len,
                       mesh_time_ms now, mesh_swim_outbox *out);

void swim_probe_start(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out);

/*
 * One ping each for the newcomers that wait, at most NEWCOMERS_PER_PROBE per
 * probe interval, in the order they came. One only: a newcomer that does not
 * answer within a probe interval waits for its turn in the round, and failing
 * to answer here costs it nothing else (no suspicion).
 */
void swim_newcomers_ping(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out);

void swim_probe_indirect(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out);

void swim_probe_failed(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out);

/*
 * When the (next) last-chance ping is due, NEVER if none is. The first goes
 * out a probe timeout before the earliest the deadline can come (start +
 * min, where independent confirmations take it), so that a suspicion cut
 * short by them does not wait for the ping: a crashed member is declared
 * dead no later than without it. When the deadline then lies more than a
 * probe interval beyond that ping's answer, the answer is stale: another
 * goes out a probe timeout before the deadline.
 */
mesh_time_ms swim_last_chance_at(const mesh_swim *s, const swim_suspicion *sp);

/*
 * Before our dead claim ends m's epoch, ping m once more on both classes
 * with the accusation attached. The accusers that make dead claims about a
 * live member are those that missed its refutation: gossip under loss does
 * not reach everyone within the suspicion timeout. Asking the suspect itself
 * brings the refutation back in its ACK (it re-sends its current record when
 * it hears an accusation it already refuted).
 */
void swim_last_chance(mesh_swim *s, swim_member *m, mesh_time_ms now, mesh_swim_outbox *out);

void swim_handle_ping_req(mesh_swim *s, const mesh_peer_id *from, const swim_packet *p,
                          mesh_time_ms now, mesh_swim_outbox *out);

void swim_handle_ack(mesh_swim *s, const mesh_peer_id *from, uint32_t seq, mesh_time_ms now,
                     mesh_swim_outbox *out);

#endif
