/*
 * Membership: SWIM with Lifeguard, as a sans-IO state machine.
 *
 * A mesh_swim keeps the membership view of one node. It never reads a clock,
 * a socket or a global random source: the caller feeds it packets
 * (mesh_swim_handle_packet), timer expiries (mesh_swim_handle_timer) and
 * local requests (join, leave, peer connected), each with the caller's cached
 * "now", and drains a mesh_swim_outbox after every call: messages to send,
 * addresses to dial, at most one timer request, view events, and application
 * state received from peers. The random source is handed in. Many instances
 * live side by side in one process (the simulator runs thousands); an
 * instance is not thread-safe and never blocks.
 *
 * Protocol (net/swim_state.c):
 *   - Randomized round-robin probing: every probe interval one member gets a
 *     PING; without an ACK within the probe timeout, k helpers are asked to
 *     ping it (PING_REQ) and send a NACK if it stays silent; without any ACK
 *     by the end of the (health-scaled) probe interval the member becomes
 *     suspect. Along with the PING_REQs the member gets the same PING over
 *     the stream class (memberlist's TCP ping): a member whose datagrams are
 *     lost but whose stream still works is not accused.
 *   - Last chance: a dead claim ends the member's epoch (see below), so
 *     before making one, a probe timeout ahead of the suspicion's deadline,
 *     the accuser pings the suspect once more on both classes with the
 *     accusation attached. A live suspect refutes and its ACK carries the
 *     refutation; an ACK alone restarts the suspicion. Only silence until
 *     the deadline (and a probe timeout after the ping) makes a dead claim.
 *   - Lifeguard: the local health score (net/swim_awareness.c) stretches the
 *     probe interval when our own probes fail without NACKs or when we have
 *     to refute; suspicion timeouts start at max and shrink toward min as
 *     independent accusers confirm (net/swim_suspicion.c); a ping to a
 *     suspect carries the accusation first so it can refute at once (buddy
 *     system).
 *   - Updates (alive, left, suspect, dead) ride piggybacked on every datagram
 *     and on gossip rounds, each retransmitted at most
 *     retransmit_mult * ceil(log10(n + 1)) times (net/swim_broadcast.c).
 *   - Push-pull anti-entropy: periodically a full state exchange with one
 *     random member over a stream; joining is a push-pull with a seed.
 *
 * Records and precedence: a member is known at (epoch, incarnation). A record
 * of a higher epoch replaces the older epoch at once (EPOCH_CHANGED; the old
 * epoch is over, never suspect). Within one epoch SWIM's incarnation rules
 * apply. Alive and left records are signed by the member itself, suspect and
 * dead claims by their accuser; a record whose signature does not verify is
 * dropped and counted. Dead and left members stay as tombstones for
 * tombstone_ttl, then are reaped into a bounded history; records of a
 * tombstoned or reaped (peer, epoch) or older are refused (no zombies). A
 * node declared dead in its own epoch cannot come back in that epoch: the
 * outbox says so (epoch_over, with the accuser), the core falls silent in
 * that epoch (it stops probing and accusing), and the caller renews the
 * epoch in place: it makes epoch + 1 durable, then hands it to
 * mesh_swim_set_epoch, which announces this node alive at the new epoch.
 * The daemon and the simulator both take this one path; only the daemon
 * has a disk to persist to.
 *
 * Who may accuse: a suspect or dead claim counts only when its accuser is a
 * member of this node's view (alive or suspect), whoever relays it (the
 * accuser's signature is checked). Holding the swarm key is not enough: a
 * claim by a key that never joined the view is dropped (accuser-not-member),
 * as is a claim about another member by one held dead or left
 * (accuser-departed). A claim about this node itself is also taken from a
 * member it holds dead or left, or has reaped: after a partition the two
 * sides hold each other dead, and each must learn that it was declared dead
 * to come back under a new epoch. A dead claim about a member held alive is
 * not applied at once (Lifeguard, memberlist's push-pull merge): this node
 * raises its own suspicion, which the member can refute, and declares it
 * dead only when that suspicion times out (or on a dead claim by another
 * member while it is suspect). The exception is a member first learned in
 * the same push-pull that says it is dead: that is how a joiner learns the
 * sender's tombstones. A suspicion about this node is refuted with a higher
 * incarnation; a dead claim about it by a member ends its epoch (above).
 *
 * Records carry no timestamp, and no age check is made on them: the clocks
 * of two nodes are not comparable by design (an epoch is a counter, not a
 * time; wall clocks jump, and monotonic clocks have no common origin), so
 * any bound on a record's signed time relative to ours would refuse good
 * records after a clock step or a long partition. Freshness comes from
 * (epoch, incarnation) precedence, tombstones and the reaped history; every
 * time limit the core applies is measured on the receiver's own `now`.
 *
 * Bounds on what peers can make us hold: a push-pull introduces at most
 * max_intro_sync members we did not know, gossip from one peer at most
 * max_intro_rate per probe interval, and the view holds at most max_members;
 * beyond them records are refused and counted (intro-limit, view-full).
 *
 * Bounds on what peers can make us spend (net/swim_budget.c): a record is
 * checked against what we hold before its signature is (who, epoch,
 * incarnation, kind; identical bytes), so that records that could not change
 * the view, and claims by non-members, cost no Ed25519 verification; the
 * signature cache makes one seen again cost a hash. A peer whose records
 * fail verification max_bad_sigs times in bad_sig_window_ms is named in the
 * outbox's disconnects (the caller closes its connection) and its records
 * are refused unverified until the window ends (sig-budget). Push-pulls from
 * one peer pass a token bucket (push_pull_burst, then one per
 * push_pull_refill_ms); beyond it the packet is dropped (push-pull-rate).
 *
 * Joining: the daemon dials seed addresses (outbox dials); when the
 * transport's handshake reveals who answered, the daemon calls
 * mesh_swim_peer_connected and the core sends its push-pull join there. Dials
 * are retried every join_retry until one push-pull answer arrives.
 *
 * Ownership: every buffer passed in is borrowed for the call only. Everything
 * in the outbox is owned by the outbox until mesh_swim_outbox_clear.
 */
#ifndef MESH_NET_SWIM_H
#define MESH_NET_SWIM_H

#include "net/view.h"
#include "src/base/clock.h"
#include "src/base/rng.h"
#include "src/identity/identity.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on member records (refused when exceeded, locally and from peers). */
#define MESH_SWIM_MAX_ADDRS 8
#define MESH_SWIM_MAX_ADDR_LEN 256
#define MESH_SWIM_MAX_TRANSPORTS 4
#define MESH_SWIM_MAX_TRANSPORT_NAME 32
#define MESH_SWIM_MAX_TRANSPORT_ATTRS 256
#define MESH_SWIM_MAX_AGENT 64
#define MESH_SWIM_MAX_HOST 255
#define MESH_SWIM_MAX_BODY 4096
/* This node's application digest carried in push-pull exchanges. */
#define MESH_SWIM_MAX_APP_STATE 4096
/* Largest packet accepted on the stream class (push-pull). */
#define MESH_SWIM_MAX_STREAM (16u << 20)
/* A push-pull digest: its key's bytes, and the most hashes in a digest or a
 * want list (two updates per member of the largest view, and more). */
#define MESH_SWIM_DIGEST_KEY 16
#define MESH_SWIM_MAX_DIGEST 65536
/* Largest datagram accepted; the configured send size is max_datagram. */
#define MESH_SWIM_MAX_DATAGRAM 65507

typedef struct mesh_swim mesh_swim;

typedef enum mesh_swim_class {
  MESH_SWIM_DATAGRAM = 0, /* droppable, unordered: probes, acks, gossip */
  MESH_SWIM_STREAM = 1,   /* reliable, ordered: push-pull */
} mesh_swim_class;

typedef enum mesh_swim_profile {
  MESH_SWIM_PROFILE_LAN = 0,         /* memberlist's DefaultLANConfig */
  MESH_SWIM_PROFILE_THUNDERBOLT = 1, /* direct RDMA links: 5x faster probing */
  MESH_SWIM_PROFILE_WAN = 2,         /* memberlist's DefaultWANConfig */
} mesh_swim_profile;

typedef struct mesh_swim_transport {
  const char *name;     /* "tcp", "rdma", ... (<= 32 bytes) */
  const uint8_t *attrs; /* opaque attributes (RDMA: GID, QPN, ...) */
  size_t attrs_len;     /* <= MESH_SWIM_MAX_TRANSPORT_ATTRS */
} mesh_swim_transport;

/*
 * Configuration. Every numeric field left 0 takes the profile's default
 * (net/swim_profile.c has the table). Strings and arrays are copied by
 * mesh_swim_new.
 */
typedef struct mesh_swim_config {
  mesh_swim_profile profile;
  uint32_t probe_interval_ms;     /* one probe per interval (lan 1000) */
  uint32_t probe_timeout_ms;      /* wait for a direct ACK (lan 500) */
  uint32_t suspicion_mult;        /* min suspicion = mult * log10(n) * interval (lan 4) */
  uint32_t suspicion_max_mult;    /* max suspicion = this * min (lan 6) */
  uint32_t suspicion_confirm;     /* independent accusers that bring a suspicion down to
                                     the min (Lifeguard's K; lan 2) */
  uint32_t indirect_checks;       /* helpers per failed probe (lan 3) */
  uint32_t retransmit_mult;       /* lambda in lambda * log(n + 1) (lan 4) */
  uint32_t gossip_interval_ms;    /* gossip round period (lan 200) */
  uint32_t gossip_nodes;          /* members per gossip round (lan 3) */
  uint32_t push_pull_interval_ms; /* anti-entropy period (lan 30000) */
  uint32_t gossip_to_dead_ms;     /* keep gossiping to the dead this long (lan 30000) */
  uint32_t tombstone_ttl_ms;      /* keep dead/left records this long (lan 60000) */
  uint32_t awareness_max;         /* Lifeguard health score cap (8) */
  uint32_t join_retry_ms;         /* re-dial seeds until one answers (lan 2000) */
  uint32_t max_datagram;          /* bytes per datagram sent (1400) */
  uint32_t reaped_history;        /* reaped (peer, epoch) remembered (1024) */
  /* Bounds on what peers can make us hold (refused and counted beyond). */
  uint32_t max_members;    /* members held, tombstones included (16384) */
  uint32_t max_intro_sync; /* new members one push-pull may introduce (256) */
  uint32_t max_intro_rate; /* new members one peer may introduce by datagram
                            * per probe interval (64) */
  /* Bounds on what one connected peer can make us spend (net/swim_budget.c). */
  uint32_t max_bad_sigs;        /* bad signatures per window before a disconnect (16) */
  uint32_t bad_sig_window_ms;   /* that window (10000) */
  uint32_t push_pull_burst;     /* push-pulls a peer may send at once (4) */
  uint32_t push_pull_refill_ms; /* then one more per this period (500) */
  /* What this node says about itself in its member record. */
  const char *const *addrs; /* listen addresses (<= 8) */
  size_t n_addrs;
  const mesh_swim_transport *transports; /* <= 4 */
  size_t n_transports;
  const char *agent; /* agent version, may be NULL */
  const char *host;  /* host name, may be NULL */
  /* Optional verified-signature cache shared by several instances of one
   * thread (the simulator); NULL makes the instance keep its own. */
  struct mesh_swim_sigcache *sigcache;
} mesh_swim_config;

/* Fills every 0 field of *cfg from its profile. -EINVAL on an unknown profile
 * or an impossible combination (timeout >= interval). */
int mesh_swim_config_resolve(mesh_swim_config *cfg);
const char *mesh_swim_profile_name(mesh_swim_profile p);
/*
 * How often a connection to a member must carry something, for a resolved
 * cfg: idle_ms is the longest a suspicion of one accuser runs (Lifeguard's
 * maximum, suspicion_max_mult * suspicion_mult * probe_interval), so that a
 * half-open connection is found and redialled before a suspicion it caused
 * could end in a dead claim; keepalive_ms is half of it: keepalives ride a
 * reliable connection, so one is delayed by retransmission, never lost, and
 * half the idle timeout leaves room for five doublings of a 200 ms
 * retransmission timeout at lan timing. Membership
 * traffic counts (net/transport.h): a keepalive goes only on a connection
 * that carried nothing else for keepalive_ms.
 */
void mesh_swim_link_timing(const mesh_swim_config *cfg, mesh_time_ms *keepalive_ms,
                           mesh_time_ms *idle_ms);
/* "lan", "thunderbolt", "wan" -> profile; -EINVAL otherwise. */
int mesh_swim_profile_parse(const char *name, mesh_swim_profile *out);

/* Message kinds, for accounting (values of proto Kind). */
enum {
  MESH_SWIM_MSG_PING = 1,
  MESH_SWIM_MSG_ACK = 2,
  MESH_SWIM_MSG_NACK = 3,
  MESH_SWIM_MSG_PING_REQ = 4,
  MESH_SWIM_MSG_GOSSIP = 5,
  MESH_SWIM_MSG_PUSH_PULL = 6,
  MESH_SWIM_MSG__COUNT = 7,
};

/* Why a packet or record was dropped. */
typedef enum mesh_swim_drop {
  MESH_SWIM_DROP_MALFORMED = 0,  /* did not decode, or a field out of bounds */
  MESH_SWIM_DROP_TOO_BIG,        /* larger than the class allows */
  MESH_SWIM_DROP_BAD_SIGNATURE,  /* signature missing or wrong */
  MESH_SWIM_DROP_WRONG_SUBJECT,  /* hint and signed body disagree */
  MESH_SWIM_DROP_ZOMBIE,         /* tombstoned or reaped (peer, epoch) */
  MESH_SWIM_DROP_STALE_EPOCH,    /* older epoch than known */
  MESH_SWIM_DROP_UNKNOWN,        /* accusation about a peer we do not know */
  MESH_SWIM_DROP_SELF,           /* a record in our name we did not make */
  MESH_SWIM_DROP_NOT_FOR_US,     /* a ping meant for another peer */
  MESH_SWIM_DROP_INTRO_LIMIT,    /* a peer introduced more new members than allowed */
  MESH_SWIM_DROP_VIEW_FULL,      /* max_members reached */
  MESH_SWIM_DROP_NOT_MEMBER,     /* a claim by a key that is not a member of the view */
  MESH_SWIM_DROP_DEPARTED,       /* a claim about another member by one held dead or left */
  MESH_SWIM_DROP_SIG_BUDGET,     /* records from a peer over its bad-signature budget */
  MESH_SWIM_DROP_PUSH_PULL_RATE, /* a push-pull beyond the sender's token bucket */
  MESH_SWIM_DROP__COUNT,
} mesh_swim_drop;

const char *mesh_swim_drop_name(mesh_swim_drop d);

typedef struct mesh_swim_counters {
  uint64_t probes_sent;   /* direct pings of our own probes */
  uint64_t acks_received; /* acks that completed one of our probes */
  uint64_t newcomer_pings;    /* pings of their own to members new to the view */
  uint64_t newcomers_deferred; /* newcomers left to their turn in the round (queue full) */
  uint64_t nacks_received;
  uint64_t nacks_sent;
  uint64_t indirect_probes_sent;    /* PING_REQs sent */
  uint64_t indirect_pings_relayed;  /* pings sent on behalf of a PING_REQ */
  uint64_t probes_failed;           /* probes that ended without any ack */
  uint64_t suspicions_raised;       /* by our own failed probes */
  uint64_t suspicion_confirmations; /* independent accusers counted */
  uint64_t refutations;             /* our incarnation bumped to refute */
  uint64_t deaths_declared;         /* suspicion timeouts that we turned into dead */
  uint64_t stream_probes_sent;      /* probe pings repeated on the stream class */
  uint64_t last_chance_probes;      /* pings to a suspect just before our dead claim */
  uint64_t last_chance_saves;       /* suspicions refuted or answered after one */
  uint64_t updates_applied;         /* records that changed our view */
  uint64_t updates_ignored;         /* records that were already known or older */
  uint64_t sig_verified;            /* signatures checked with Ed25519 */
  uint64_t sig_cache_hits;          /* signatures found already verified */
  uint64_t timers_stale;            /* timer tokens of an older generation */
  uint64_t join_dials;              /* seed dials requested */
  uint64_t epoch_renewals;          /* new epochs taken after being declared dead */
  uint64_t lateness_reports;        /* caller's loop-lateness reports that raised health */
  uint64_t dead_claims_deferred;    /* dead claims about members held alive, made suspicions */
  uint64_t disconnects_requested;   /* peers over their bad-signature budget */
  uint64_t push_pull_digests;       /* push-pulls asked by digest (net/swim_sync.c) */
  uint64_t push_pull_settled; /* early push-pull rounds ended by an answer with nothing new */
  uint64_t push_pull_pushes;        /* messages sent back with updates a digest's answerer lacked */
  uint64_t dropped[MESH_SWIM_DROP__COUNT];
  uint64_t msgs_sent[MESH_SWIM_MSG__COUNT];
  uint64_t bytes_sent[MESH_SWIM_MSG__COUNT];
  uint64_t msgs_received[MESH_SWIM_MSG__COUNT];
  uint64_t bytes_received[MESH_SWIM_MSG__COUNT];
} mesh_swim_counters;

/* One message to send. buf and addrs are owned by the outbox. */
typedef struct mesh_swim_send {
  mesh_peer_id to;     /* the receiver */
  mesh_swim_class cls; /* datagram or stream */
  int kind;            /* MESH_SWIM_MSG_* */
  uint8_t *buf;        /* encoded Packet (proto/swim.proto) */
  size_t len;
  const char *addrs; /* the receiver's known addresses, each NUL-terminated, back to back */
  size_t n_addrs;    /* 0 when unknown: send over the existing connection */
} mesh_swim_send;

/* Application state a peer carried in a push-pull. buf owned by the outbox. */
typedef struct mesh_swim_app_state {
  mesh_peer_id from;
  uint64_t epoch; /* the sender's epoch */
  uint8_t *buf;
  size_t len;
} mesh_swim_app_state;

typedef struct mesh_swim_outbox {
  mesh_swim_send *sends;
  size_t n_sends, cap_sends;
  char **dials; /* seed addresses to dial, NUL-terminated */
  size_t n_dials, cap_dials;
  mesh_view_event *events; /* in the order they happened */
  size_t n_events, cap_events;
  mesh_swim_app_state *apps;
  size_t n_apps, cap_apps;
  /* Peers to disconnect: each sent more records with bad signatures than
   * its budget allows (max_bad_sigs per bad_sig_window_ms). */
  mesh_peer_id *disconnects;
  size_t n_disconnects, cap_disconnects;
  bool timer_set;        /* a (new) timer request: replaces any earlier one */
  uint64_t timer_token;  /* hand back to mesh_swim_handle_timer */
  mesh_time_ms timer_at; /* when */
  bool epoch_over;       /* this node was declared dead in its epoch */
  mesh_peer_id epoch_over_by; /* who made that dead claim (valid with epoch_over) */
  uint64_t epoch_over_epoch;  /* the epoch it ended (valid with epoch_over) */
  int alloc_failed;      /* -ENOMEM when an item could not be added */
  /* Test only (fault injection, as SQLite's malloc failures): the next this
   * many view events are refused as if memory had run out. Kept by clear. */
  uint32_t test_refuse_events;
} mesh_swim_outbox;

void mesh_swim_outbox_init(mesh_swim_outbox *o);
/* Frees the items, keeps the arrays for reuse. */
void mesh_swim_outbox_clear(mesh_swim_outbox *o);
void mesh_swim_outbox_free(mesh_swim_outbox *o);
/* The i-th address of a send (i < n_addrs). */
const char *mesh_swim_send_addr(const mesh_swim_send *s, size_t i);

/* A verified-signature cache (net/swim_codec.c). Not thread-safe. */
typedef struct mesh_swim_sigcache mesh_swim_sigcache;
int mesh_swim_sigcache_new(size_t entries, mesh_swim_sigcache **out);
void mesh_swim_sigcache_free(mesh_swim_sigcache *c);

/*
 * Creates a core. self and rng are borrowed and must outlive it. epoch is
 * this node's current epoch (made durable by the caller before this call).
 * Nothing happens until mesh_swim_join. Errors: -EINVAL (bad config or record
 * too large for its bounds), -ENOMEM.
 */
int mesh_swim_new(const mesh_swim_config *cfg, const mesh_identity *self, uint64_t epoch,
                  mesh_rng *rng, mesh_swim **out);
void mesh_swim_free(mesh_swim *s);

/*
 * Starts the protocol and joins through seed addresses (n may be 0 for the
 * first node). The outbox gets the dials; they are repeated every join_retry
 * until a push-pull answer arrives.
 */
int mesh_swim_join(mesh_swim *s, const char *const *seeds, size_t n, mesh_time_ms now,
                   mesh_swim_outbox *out);
/* The transport connected to peer (handshake done) at addr with epoch: the
 * core sends its join push-pull when it has not joined yet. */
int mesh_swim_peer_connected(mesh_swim *s, const mesh_peer_id *peer, const char *addr,
                             uint64_t epoch, mesh_time_ms now, mesh_swim_outbox *out);
/* This node dialled peer on its own (a seed, or a member kept from before
 * a restart) and it is not in the view: exchange state with it now, as a
 * join does, rather than wait for it to speak first. Strangers that dial
 * us get no such push: they join if they mean to. */
int mesh_swim_sync_with(mesh_swim *s, const mesh_peer_id *peer, mesh_time_ms now,
                        mesh_swim_outbox *out);
/* The transport lost its connection to peer. A member's process that
 * died closes its connections with it, so this is often the first sign of
 * a crash: the member is probed next, out of turn (at most one such probe
 * per probe timeout). Nothing else changes: only a failed probe raises a
 * suspicion, so a connection that merely closed (replaced, idle) costs one
 * ping. */
int mesh_swim_peer_lost(mesh_swim *s, const mesh_peer_id *peer, mesh_time_ms now,
                        mesh_swim_outbox *out);
/* A packet from peer on MESH_CH_SWIM. Malformed input returns -EBADMSG or
 * -EMSGSIZE and is counted; the core is unchanged. */
int mesh_swim_handle_packet(mesh_swim *s, const mesh_peer_id *from, mesh_swim_class cls,
                            const uint8_t *buf, size_t len, mesh_time_ms now,
                            mesh_swim_outbox *out);
/* The timer requested with token fired. A stale token is ignored. */
int mesh_swim_handle_timer(mesh_swim *s, uint64_t token, mesh_time_ms now, mesh_swim_outbox *out);
/* Leaves gracefully: signs a left record and starts spreading it. Keep
 * feeding timers until mesh_swim_broadcasts_pending is 0 (or a deadline). */
int mesh_swim_leave(mesh_swim *s, mesh_time_ms now, mesh_swim_outbox *out);
/* After epoch_over (or any other new epoch taken in place): continue under a new, higher
 * epoch, which the caller has made durable. Signs an alive record at the new
 * epoch (incarnation 0), sends it with a push-pull to one member and gossips
 * it; probing resumes. Counted in epoch_renewals when it follows an
 * epoch_over. -ESTALE when epoch is not higher. */
int mesh_swim_set_epoch(mesh_swim *s, uint64_t epoch, mesh_time_ms now, mesh_swim_outbox *out);
/*
 * The caller's own event loop ran late_ms late (a timer fired that much after
 * its deadline). A node whose loop is starved answers probes late and sees
 * acks late, so it is likely the slow one: Lifeguard's health score rises as
 * for a failed probe of its own (net/swim_awareness.c decides by how much),
 * at most once per probe interval, which stretches its probe timeouts and
 * backs off its accusations. Small lateness changes nothing. The core reads
 * no clock: the caller measures, the core decides.
 */
int mesh_swim_note_lateness(mesh_swim *s, mesh_time_ms late_ms, mesh_time_ms now,
                            mesh_swim_outbox *out);
/* Sets this node's application digest (<= MESH_SWIM_MAX_APP_STATE, copied),
 * sent in every push-pull. -EMSGSIZE when too large. */
int mesh_swim_set_app_state(mesh_swim *s, const uint8_t *buf, size_t len);

typedef enum mesh_swim_state {
  MESH_SWIM_ALIVE = 1,
  MESH_SWIM_SUSPECT = 2,
  MESH_SWIM_DEAD = 3,
  MESH_SWIM_LEFT = 4,
} mesh_swim_state;

const char *mesh_swim_state_name(mesh_swim_state s);

/* A member as the core knows it. Pointers stay valid until the next call
 * that changes the core. */
typedef struct mesh_swim_member_info {
  mesh_peer_id id;
  uint64_t epoch;
  uint64_t incarnation;
  mesh_swim_state state;
  mesh_time_ms since; /* when the state last changed */
  const char *addrs;  /* NUL-terminated addresses, back to back */
  size_t n_addrs;
  const char *agent;
  const char *host;
  bool answered; /* answered a ping of this node's in its epoch */
} mesh_swim_member_info;

/* Members other than self, alive, suspect, dead or left (tombstones). */
size_t mesh_swim_member_count(const mesh_swim *s);
int mesh_swim_member_at(const mesh_swim *s, size_t i, mesh_swim_member_info *out);
/* -ENOENT when peer is unknown (or self). */
int mesh_swim_member_find(const mesh_swim *s, const mesh_peer_id *peer, mesh_swim_member_info *out);
/* Members in the view (alive or suspect), self not included. */
size_t mesh_swim_view_size(const mesh_swim *s);
/* The sequence number of the last view change (net/view.h): every change
 * that raises a view event counts, whether or not the outbox could hold the
 * event. 0 before the first. */
uint64_t mesh_swim_view_seq(const mesh_swim *s);
/* Fills *out with a view source reading s (borrowed; it must outlive every
 * use of *out): members from mesh_swim_member_at, seq from
 * mesh_swim_view_seq (net/swim_view.c). */
void mesh_swim_view_source(const mesh_swim *s, mesh_view_source *out);
uint64_t mesh_swim_epoch(const mesh_swim *s);
uint64_t mesh_swim_incarnation(const mesh_swim *s);
int mesh_swim_health(const mesh_swim *s); /* Lifeguard score, 0 = healthy */
bool mesh_swim_joined(const mesh_swim *s);
size_t mesh_swim_broadcasts_pending(const mesh_swim *s);
const mesh_swim_counters *mesh_swim_counters_get(const mesh_swim *s);
/* The resolved configuration in use. */
const mesh_swim_config *mesh_swim_config_get(const mesh_swim *s);

#endif
