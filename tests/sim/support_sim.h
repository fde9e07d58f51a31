/*
 * A deterministic simulator for the membership core.
 *
 * N cores (net/swim.h) run in one process over a simulated network with
 * per-link delay and jitter, independent loss, duplicated and reordered
 * datagrams, one-way and two-way partitions; nodes crash, stall (stop
 * processing for a while, as a CPU-starved process does: what arrives waits)
 * and restart under a new epoch with the same identity. Time is virtual,
 * driven by an event queue (a binary heap ordered by time, then by insertion);
 * every random choice comes from one seeded source, so a seed reproduces a run
 * exactly.
 *
 * Transport model: datagrams may be lost, duplicated or reordered; streams
 * are reliable and ordered (fixed delay) but do not cross partitions or reach
 * crashed nodes. A dial of "sim:<i>" succeeds after one round trip when node
 * i is up and reachable both ways, and then reports the peer ID and epoch to
 * the dialer as the transport's handshake would.
 *
 * Signature verification: all cores share one verified-signature cache, so
 * that a record is verified with Ed25519 once per process instead of once per
 * node; the protocol's behaviour does not depend on it.
 */
#ifndef MESH_TESTS_SIM_SUPPORT_SIM_H
#define MESH_TESTS_SIM_SUPPORT_SIM_H

#include "net/swim.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sim sim;

typedef struct sim_config {
  size_t n;                /* nodes */
  uint64_t seed;           /* everything random derives from it */
  mesh_swim_config swim;   /* core configuration (addresses are set per node) */
  uint32_t delay_ms;       /* one-way base delay (default 1 when 0) */
  uint32_t jitter_ms;      /* added uniformly in [0, jitter] */
  double loss;             /* independent datagram loss in [0, 1] */
  double dup;              /* probability a datagram is delivered twice */
  double reorder;          /* probability a datagram gets extra delay (up to 4x delay) */
  uint32_t join_spread_ms; /* nodes join spread over this time (default n ms) */
} sim_config;

typedef void (*sim_event_fn)(sim *s, size_t observer, const mesh_view_event *ev, void *ctx);

int sim_new(const sim_config *cfg, sim **out);
void sim_free(sim *s);

/* Node 0 starts alone; node i joins through a random earlier node. */
void sim_start(sim *s);
void sim_run_until(sim *s, mesh_time_ms t);
/* Runs until pred is true (checked every `every` ms) or deadline. Returns
 * whether pred became true; sim_now() tells when. */
bool sim_run_until_cond(sim *s, mesh_time_ms deadline, mesh_time_ms every,
                        bool (*pred)(sim *s, void *ctx), void *ctx);
mesh_time_ms sim_now(const sim *s);

/* Faults. */
void sim_crash(sim *s, size_t i);
/* Comes back under epoch + 1 with the same identity, joining through up to
 * three random live nodes. */
void sim_restart(sim *s, size_t i);
/* The node continues under epoch + 1 without restarting (a new record to
 * spread). */
void sim_bump_epoch(sim *s, size_t i);
void sim_stall(sim *s, size_t i, mesh_time_ms duration);
void sim_set_loss(sim *s, double loss);
/* Puts node i in partition group g (0..7); all start in group 0. */
void sim_set_group(sim *s, size_t i, unsigned g);
/* Blocks (or unblocks) traffic from group a to group b (one way). */
void sim_block(sim *s, unsigned a, unsigned b, bool blocked);
/* Unblocks everything and puts every node back in group 0. */
void sim_heal(sim *s);
/* Delivers one datagram from node `from` to node `to` as if sent now. */
void sim_inject(sim *s, size_t from, size_t to, mesh_swim_class cls, const uint8_t *buf,
                size_t len);

/* Observation. */
size_t sim_n(const sim *s);
mesh_swim *sim_core(sim *s, size_t i); /* NULL while crashed */
const mesh_identity *sim_identity(const sim *s, size_t i);
uint64_t sim_epoch(const sim *s, size_t i);
bool sim_up(const sim *s, size_t i);
size_t sim_up_count(const sim *s);
void sim_on_event(sim *s, sim_event_fn fn, void *ctx);
/* The one outbox every core of the simulator fills (for its fault hooks,
 * such as test_refuse_events). */
mesh_swim_outbox *sim_outbox(sim *s);
/* true when every live node sees every other live node alive at its current
 * epoch and nothing else in its view. */
bool sim_converged(sim *s, void *unused);
/* Per-node view of one peer: state (0 = unknown) and epoch. */
int sim_view_of(sim *s, size_t observer, size_t target, mesh_swim_state *state, uint64_t *epoch);

typedef struct sim_stats {
  uint64_t msgs_sent; /* messages handed to the network */
  uint64_t bytes_sent;
  uint64_t msgs_by_kind[MESH_SWIM_MSG__COUNT];
  uint64_t bytes_by_kind[MESH_SWIM_MSG__COUNT];
  uint64_t datagrams_lost;
  uint64_t false_deaths;   /* DEAD events about a node that was up in that epoch */
  uint64_t false_suspects; /* SUSPECT events about a node up in that epoch */
  uint64_t epoch_overs;    /* nodes that learned they were declared dead */
  uint64_t events;         /* simulator events processed */
} sim_stats;

const sim_stats *sim_get_stats(const sim *s);
void sim_reset_stats(sim *s);

/* MESH_SIM_SCALE (environment, default 1.0) scales test sizes down under
 * sanitizers: returns max(min, n * scale). */
size_t sim_scaled(size_t n, size_t min);

#endif
