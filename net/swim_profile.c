/*
 * Membership profiles: named sets of defaults. Any field of mesh_swim_config
 * left 0 takes its profile's value.
 *
 *   field                lan      thunderbolt  wan
 *   probe_interval_ms    1000     200          5000
 *   probe_timeout_ms     500      100          3000
 *   suspicion_mult       3        3            6
 *   suspicion_max_mult   8        8            6
 *   suspicion_confirm    2        2            4
 *   indirect_checks      3        3            3
 *   retransmit_mult      4        4            4
 *   gossip_interval_ms   200      50           500
 *   gossip_nodes         3        3            4
 *   push_pull_interval   30000    10000        60000
 *   gossip_to_dead_ms    30000    6000         60000
 *   tombstone_ttl_ms     60000    12000        120000
 *   awareness_max        8        8            8
 *   join_retry_ms        2000     500          10000
 *   max_datagram         1400     1400         1400
 *   reaped_history       1024     1024         1024
 *   max_members          16384    16384        16384
 *   max_intro_sync       256      256          256
 *   max_intro_rate       64       64           64
 *   max_bad_sigs         16       16           16
 *   bad_sig_window_ms    10000    10000        10000
 *   push_pull_burst      4        4            4
 *   push_pull_refill_ms  500      500          500
 *
 * lan and wan are hashicorp/memberlist's DefaultLANConfig and
 * DefaultWANConfig, but for the suspicion timeouts of lan and thunderbolt.
 * thunderbolt is for peers on direct RDMA links, where a round trip takes
 * microseconds: probing five times as often detects a failure five times
 * sooner at the same relative load.
 *
 * Suspicion (Lifeguard): memberlist's lan has min = 4 log10(n) intervals,
 * max = 6 min, and 2 independent accusers bring a suspicion to its min.
 * Here the min is 3 log10(n) intervals, the max 8 min (the same longest
 * suspicion, 24 intervals), and it takes 3 accusers: a crashed member,
 * which every prober finds silent, is declared dead a quarter sooner
 * (measured with real processes: detection p50 0.71x memberlist's at 8
 * members, 0.63x at 32), while a healthy member suspected by one or two
 * unlucky probers keeps most of the longest timeout to refute in (no
 * false death at 0-20% loss in the same runs, nor in the simulator's
 * heavy-loss, stall and partition tests).
 *
 * max_members, max_intro_sync and max_intro_rate bound what one peer can
 * make us hold. A push-pull from a single peer may introduce at most
 * max_intro_sync members we did not know: 256 covers a cluster of tens to
 * hundreds in one exchange, and a joiner learns a larger mesh over several
 * syncs (the first come every few probe intervals) and from gossip. Gossip
 * from one peer may introduce at most max_intro_rate new members per probe
 * interval; the view never holds more than max_members. Beyond them records
 * are refused and counted.
 *
 * The last four bound what one peer can make us spend. An honest peer
 * relays only records it verified, so it sends no bad signature at all:
 * 16 in 10 s is a margin for nothing but a hostile or broken sender, and
 * caps the Ed25519 work one connection costs. Push-pulls come every
 * push_pull_interval, plus one per join, reconnect or new epoch: a burst of
 * 4 and two a second are ample for those.
 */
#include "net/swim_internal.h"

#include <errno.h>
#include <string.h>

static const mesh_swim_config profiles[] = {
    [MESH_SWIM_PROFILE_LAN] =
        {
            .probe_interval_ms = 1000,
            .probe_timeout_ms = 500,
            .suspicion_mult = 3,
            .suspicion_max_mult = 8,
            .suspicion_confirm = 3,
            .indirect_checks = 3,
            .retransmit_mult = 4,
            .gossip_interval_ms = 200,
            .gossip_nodes = 3,
            .push_pull_interval_ms = 30000,
            .gossip_to_dead_ms = 30000,
            .tombstone_ttl_ms = 60000,
            .awareness_max = 8,
            .join_retry_ms = 2000,
            .max_datagram = 1400,
            .reaped_history = 1024,
            .max_members = 16384,
            .max_intro_sync = 256,
            .max_intro_rate = 64,
            .max_bad_sigs = 16,
            .bad_sig_window_ms = 10000,
            .push_pull_burst = 4,
            .push_pull_refill_ms = 500,
        },
    [MESH_SWIM_PROFILE_THUNDERBOLT] =
        {
            .probe_interval_ms = 200,
            .probe_timeout_ms = 100,
            .suspicion_mult = 3,
            .suspicion_max_mult = 8,
            .suspicion_confirm = 3,
            .indirect_checks = 3,
            .retransmit_mult = 4,
            .gossip_interval_ms = 50,
            .gossip_nodes = 3,
            .push_pull_interval_ms = 10000,
            .gossip_to_dead_ms = 6000,
            .tombstone_ttl_ms = 12000,
            .awareness_max = 8,
            .join_retry_ms = 500,
            .max_datagram = 1400,
            .reaped_history = 1024,
            .max_members = 16384,
            .max_intro_sync = 256,
            .max_intro_rate = 64,
            .max_bad_sigs = 16,
            .bad_sig_window_ms = 10000,
            .push_pull_burst = 4,
            .push_pull_refill_ms = 500,
        },
    [MESH_SWIM_PROFILE_WAN] =
        {
            .probe_interval_ms = 5000,
            .probe_timeout_ms = 3000,
            .suspicion_mult = 6,
            .suspicion_max_mult = 6,
            .suspicion_confirm = 4,
            .indirect_checks = 3,
            .retransmit_mult = 4,
            .gossip_interval_ms = 500,
            .gossip_nodes = 4,
            .push_pull_interval_ms = 60000,
            .gossip_to_dead_ms = 60000,
            .tombstone_ttl_ms = 120000,
            .awareness_max = 8,
            .join_retry_ms = 10000,
            .max_datagram = 1400,
            .reaped_history = 1024,
            .max_members = 16384,
            .max_intro_sync = 256,
            .max_intro_rate = 64,
            .max_bad_sigs = 16,
            .bad_sig_window_ms = 10000,
            .push_pull_burst = 4,
            .push_pull_refill_ms = 500,
        },
};

#define DEFAULT(field)                                                                             \
  do {                                                                                             \
    if (cfg->field == 0)                                                                           \
      cfg->field = d->field;                                                                       \
  } while (0)

int mesh_swim_config_resolve(mesh_swim_config *cfg)
{
  if ((unsigned)cfg->profile > MESH_SWIM_PROFILE_WAN)
    return -EINVAL;
  const mesh_swim_config *d = &profiles[cfg->profile];
  DEFAULT(probe_interval_ms);
  DEFAULT(probe_timeout_ms);
  DEFAULT(suspicion_mult);
  DEFAULT(suspicion_max_mult);
  DEFAULT(suspicion_confirm);
  DEFAULT(indirect_checks);
  DEFAULT(retransmit_mult);
  DEFAULT(gossip_interval_ms);
  DEFAULT(gossip_nodes);
  DEFAULT(push_pull_interval_ms);
  DEFAULT(gossip_to_dead_ms);
  DEFAULT(tombstone_ttl_ms);
  DEFAULT(awareness_max);
  DEFAULT(join_retry_ms);
  DEFAULT(max_datagram);
  DEFAULT(reaped_history);
  DEFAULT(max_members);
  DEFAULT(max_intro_sync);
  DEFAULT(max_intro_rate);
  DEFAULT(max_bad_sigs);
  DEFAULT(bad_sig_window_ms);
  DEFAULT(push_pull_burst);
  DEFAULT(push_pull_refill_ms);
  if (cfg->probe_timeout_ms >= cfg->probe_interval_ms)
    return -EINVAL;
  if (cfg->max_datagram < 512 || cfg->max_datagram > MESH_SWIM_MAX_DATAGRAM)
    return -EINVAL;
  if (cfg->suspicion_mult < 1 || cfg->suspicion_max_mult < 1)
    return -EINVAL;
  return 0;
}

const char *mesh_swim_profile_name(mesh_swim_profile p)
{
  switch (p) {
  case MESH_SWIM_PROFILE_LAN:
    return "lan";
  case MESH_SWIM_PROFILE_THUNDERBOLT:
    return "thunderbolt";
  case MESH_SWIM_PROFILE_WAN:
    return "wan";
  }
  return "unknown";
}

int mesh_swim_profile_parse(const char *name, mesh_swim_profile *out)
{
  for (int p = MESH_SWIM_PROFILE_LAN; p <= MESH_SWIM_PROFILE_WAN; p++) {
    if (strcmp(name, mesh_swim_profile_name((mesh_swim_profile)p)) == 0) {
      *out = (mesh_swim_profile)p;
      return 0;
    }
  }
  return -EINVAL;
}

void mesh_swim_link_timing(const mesh_swim_config *cfg, mesh_time_ms *keepalive_ms,
                           mesh_time_ms *idle_ms)
{
  mesh_time_ms idle =
      (mesh_time_ms)cfg->suspicion_max_mult * cfg->suspicion_mult * cfg->probe_interval_ms;
  *idle_ms = idle;
  *keepalive_ms = idle / 2 > 0 ? idle / 2 : 1;
}
