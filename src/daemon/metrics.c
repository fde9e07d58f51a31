/*
 * /metrics for a running node: every counter of the parts, in Prometheus
 * names (meshd_<part>_<what>[_total]) with labels for states, transports,
 * directions and reasons.
 */
#include "src/daemon/daemon_internal.h"

#include "net/fault.h"
#include "src/daemon/connections.h"
#include "src/daemon/sendhold.h"
#include "net/rdma.h"
#include "net/udp.h"
#include "src/base/log.h"

#include <stdio.h>

#define C MESH_API_COUNTER
#define G MESH_API_GAUGE

static void metric(mesh_api_metrics *m, const char *name, mesh_api_metric_type t, const char *help,
                   double v)
{
  mesh_api_metric(m, name, t, help, NULL, v);
}

static void metric1(mesh_api_metrics *m, const char *name, mesh_api_metric_type t, const char *help,
                    const char *label, const char *value, double v)
{
  const char *labels[] = {label, value, NULL};
  mesh_api_metric(m, name, t, help, labels, v);
}

static void membership_metrics(mesh_daemon *d, mesh_api_metrics *m)
{
  const mesh_swim *s = mesh_membership_core(d->mem);
  size_t by_state[5] = {0};
  size_t n = mesh_swim_member_count(s);
  for (size_t i = 0; i < n; i++) {
    mesh_swim_member_info info;
    if (mesh_swim_member_at(s, i, &info) == 0 && info.state >= 1 && info.state <= 4)
      by_state[info.state]++;
  }
  by_state[MESH_SWIM_ALIVE]++; /* this node */
  for (int st = MESH_SWIM_ALIVE; st <= MESH_SWIM_LEFT; st++)
    metric1(m, "meshd_members", G, "Members known, this node included, by state", "state",
            mesh_swim_state_name((mesh_swim_state)st), (double)by_state[st]);
  metric(m, "meshd_epoch", G, "This node's epoch", (double)mesh_node_epoch(d->node));
  metric(m, "meshd_swim_incarnation", G, "This node's incarnation in its epoch",
         (double)mesh_swim_incarnation(s));
  metric(m, "meshd_swim_health", G, "Lifeguard local health score (0 is healthy)",
         (double)mesh_swim_health(s));

  const mesh_swim_counters *c = mesh_swim_counters_get(s);
  metric(m, "meshd_epoch_renewals_total", C,
         "Times this node, declared dead in its epoch, renewed its epoch in place",
         (double)c->epoch_renewals);
  metric(m, "meshd_swim_lateness_raises_total", C,
         "Times this node's own loop lateness raised its Lifeguard health score",
         (double)c->lateness_reports);
  metric(m, "meshd_swim_probes_total", C, "Direct probes sent", (double)c->probes_sent);
  metric(m, "meshd_swim_acks_total", C, "Acks that completed a probe", (double)c->acks_received);
  metric(m, "meshd_swim_nacks_total", C, "Nacks received", (double)c->nacks_received);
  metric(m, "meshd_swim_newcomer_pings_total", C, "Pings of their own to members new to the view",
         (double)c->newcomer_pings);
  metric(m, "meshd_swim_newcomers_deferred_total", C,
         "Newcomers left to their turn in the probe round (queue full)",
         (double)c->newcomers_deferred);
  metric(m, "meshd_swim_indirect_probes_total", C, "Indirect probe requests sent",
         (double)c->indirect_probes_sent);
  metric(m, "meshd_swim_probes_failed_total", C, "Probes that ended without an ack",
         (double)c->probes_failed);
  metric(m, "meshd_swim_suspicions_total", C, "Suspicions raised by this node's probes",
         (double)c->suspicions_raised);
  metric(m, "meshd_swim_refutations_total", C, "Times this node refuted a suspicion",
         (double)c->refutations);
  metric(m, "meshd_swim_deaths_declared_total", C, "Members this node declared dead",
         (double)c->deaths_declared);
  metric(m, "meshd_swim_stream_probes_total", C,
         "Probe pings repeated on the stream class after a datagram probe failed",
         (double)c->stream_probes_sent);
  metric(m, "meshd_swim_last_chance_probes_total", C,
         "Pings to a suspect just before this node would declare it dead",
         (double)c->last_chance_probes);
  metric(m, "meshd_swim_last_chance_saves_total", C,
         "Suspects that answered or refuted after a last-chance ping",
         (double)c->last_chance_saves);
  metric(m, "meshd_swim_dead_claims_deferred_total", C,
         "Dead claims about members held alive, turned into a suspicion of this node's own",
         (double)c->dead_claims_deferred);
  metric(m, "meshd_swim_push_pull_digests_total", C,
         "Push-pulls asked by digest (hashes of the updates held, not the updates)",
         (double)c->push_pull_digests);
  metric(m, "meshd_swim_push_pull_settled_total", C,
         "Early push-pull rounds after a join ended by an answer with nothing new",
         (double)c->push_pull_settled);
  metric(m, "meshd_swim_push_pull_pushes_total", C,
         "Messages sent back with the updates a digest's answerer lacked",
         (double)c->push_pull_pushes);
  metric(m, "meshd_swim_disconnects_total", C,
         "Peers disconnected for sending more bad signatures than their budget",
         (double)c->disconnects_requested);
  for (int r = 0; r < MESH_SWIM_DROP__COUNT; r++)
    metric1(m, "meshd_swim_dropped_total", C, "Membership packets or records dropped, by reason",
            "reason", mesh_swim_drop_name((mesh_swim_drop)r), (double)c->dropped[r]);
  const mesh_sendhold_counters *h = mesh_membership_hold_counters(d->mem);
  const char *const held_help = "Membership sends that found no connection and waited for it, "
                                "by outcome";
  metric1(m, "meshd_swim_sends_held_total", C, held_help, "outcome", "held", (double)h->held);
  metric1(m, "meshd_swim_sends_held_total", C, held_help, "outcome", "released",
          (double)h->released);
  metric1(m, "meshd_swim_sends_held_total", C, held_help, "outcome", "expired", (double)h->expired);
  metric1(m, "meshd_swim_sends_held_total", C, held_help, "outcome", "evicted", (double)h->evicted);
  static const char *const kinds[MESH_SWIM_MSG__COUNT] = {NULL,       "ping",   "ack",      "nack",
                                                          "ping_req", "gossip", "push_pull"};
  for (int k = 1; k < MESH_SWIM_MSG__COUNT; k++) {
    metric1(m, "meshd_swim_messages_sent_total", C, "Membership messages sent, by kind", "kind",
            kinds[k], (double)c->msgs_sent[k]);
    metric1(m, "meshd_swim_bytes_sent_total", C, "Membership bytes sent, by kind", "kind", kinds[k],
            (double)c->bytes_sent[k]);
    metric1(m, "meshd_swim_messages_received_total", C, "Membership messages received, by kind",
            "kind", kinds[k], (double)c->msgs_received[k]);
  }
}

/* Who this node connects to (net/connmgr.h). */
static void connection_metrics(mesh_daemon *d, mesh_api_metrics *m)
{
  const mesh_connmgr *cm = mesh_connections_core(mesh_membership_connections(d->mem));
  const mesh_connmgr_counters *c = mesh_connmgr_counters_get(cm);
  for (int r = 0; r < MESH_CM_ROLE_COUNT; r++) {
    const char *role = mesh_cm_role_name((mesh_cm_role)r);
    metric1(m, "meshd_connmgr_entries", G,
            "Addresses and members the connection manager keeps, by role", "role", role,
            (double)c->entries[r]);
    metric1(m, "meshd_connmgr_dials_total", C, "Dials started for kept entries, by role", "role",
            role, (double)c->dials[r]);
  }
  metric(m, "meshd_connmgr_dial_failures_total", C, "Dials that reached no peer",
         (double)c->dial_failures);
  metric(m, "meshd_connmgr_mention_dials_total", C,
         "One-shot dials of addresses a peer mentioned (never kept)", (double)c->mention_dials);
  static const char *const why[] = {"rate", "recent", "table_full", "bad_address"};
  const uint64_t refused[] = {c->mentions_refused_rate, c->mentions_refused_recent, c->refused_full,
                              c->refused_bad};
  for (size_t i = 0; i < sizeof why / sizeof why[0]; i++)
    metric1(m, "meshd_connmgr_refused_total", C,
            "Dials and entries the connection manager refused, by reason", "reason", why[i],
            (double)refused[i]);
  metric(m, "meshd_connmgr_evicted_total", C, "Entries evicted to make room", (double)c->evicted);
  metric(m, "meshd_connmgr_addresses_dropped_total", C,
         "Advertised addresses dropped after failing without ever reaching their member",
         (double)c->addrs_dropped);
  metric(m, "meshd_connmgr_wrong_peer_total", C, "Dials of a member that reached another peer",
         (double)c->wrong_peer);
}

static void transport_metrics(mesh_daemon *d, mesh_api_metrics *m)
{
  mesh_net *net = mesh_node_net(d->node);
  for (int i = 0; i < mesh_net_transport_count(net); i++) {
    const char *scheme = mesh_net_scheme(net, i);
    const mesh_transport_counters *c = mesh_net_counters_of(net, scheme);
    if (c == NULL)
      continue;
    const char *out[] = {"transport", scheme, "dir", "out", NULL};
    const char *in[] = {"transport", scheme, "dir", "in", NULL};
    mesh_api_metric(m, "meshd_transport_frames_total", C, "Frames by transport and direction", out,
                    (double)c->frames_sent);
    mesh_api_metric(m, "meshd_transport_frames_total", C, "Frames by transport and direction", in,
                    (double)c->frames_received);
    mesh_api_metric(m, "meshd_transport_bytes_total", C, "Bytes by transport and direction", out,
                    (double)c->bytes_sent);
    mesh_api_metric(m, "meshd_transport_bytes_total", C, "Bytes by transport and direction", in,
                    (double)c->bytes_received);
    metric1(m, "meshd_transport_peers", G, "Peers with a finished handshake", "transport", scheme,
            (double)c->peers_up);
    metric1(m, "meshd_transport_handshakes_total", C, "Handshakes completed", "transport", scheme,
            (double)c->handshakes_ok);
    for (int k = 0; k < MESH_FRAME_CIPHER_COUNT; k++) {
      const char *labels[] = {"transport", scheme, "cipher",
                              mesh_frame_cipher_name((mesh_frame_cipher)k), NULL};
      mesh_api_metric(m, "meshd_transport_cipher_handshakes_total", C,
                      "Handshakes completed, by the frame cipher the two ends agreed", labels,
                      (double)c->cipher_handshakes[k]);
    }
    metric1(m, "meshd_transport_connections_open", G, "Sockets open now", "transport", scheme,
            (double)c->connections_open);
    metric1(m, "meshd_transport_keepalives_total", C, "Idle keepalive frames sent", "transport",
            scheme, (double)c->keepalives_sent);
    metric1(m, "meshd_transport_quiet_links_total", C,
            "Times a connection left keepalives and the idle close to the membership "
            "protocol on a path beside it (UDP, RDMA)",
            "transport", scheme, (double)c->quiet_links);
    metric1(m, "meshd_transport_dials_total", C,
            "Dial attempts started (each redial counts), failed ones included", "transport", scheme,
            (double)c->connections_out);
    metric1(m, "meshd_transport_accepts_total", C,
            "Connections accepted, those refused at once for want of a slot included", "transport",
            scheme, (double)c->connections_in);
    metric1(m, "meshd_transport_dial_failures_total", C,
            "Dials that failed (connect errors, refusals, names that did not resolve)", "transport",
            scheme, (double)c->dial_failures);
    metric1(m, "meshd_transport_resolve_failures_total", C,
            "Dials whose DNS name did not resolve (also in dial failures)", "transport", scheme,
            (double)c->resolve_failures);
    for (int r = 0; r < MESH_DROP__COUNT; r++) {
      const char *labels[] = {"transport", scheme, "reason", mesh_net_drop_name((mesh_net_drop)r),
                              NULL};
      mesh_api_metric(m, "meshd_drops_total", C,
                      "Frames, connections and handshakes dropped or refused, by reason", labels,
                      (double)c->dropped[r]);
    }
  }
}

static void rdma_metrics(mesh_daemon *d, mesh_api_metrics *m)
{
  mesh_rdma_stats r;
  if (mesh_rdma_stats_of(mesh_node_net(d->node), &r) != 0)
    return; /* no RDMA transport attached */
  metric(m, "meshd_rdma_fallbacks_total", C, "Peers moved from RDMA to TCP", (double)r.fallbacks);
  metric(m, "meshd_rdma_retries_total", C, "RDMA tried again after a backoff", (double)r.retries);
  metric(m, "meshd_rdma_qp_limit_total", C, "Handshakes that got no queue pair (cap reached)",
         (double)r.qp_limit);
  metric(m, "meshd_rdma_qp_errors_total", C, "Queue pairs that could not be made",
         (double)r.qp_errors);
  metric(m, "meshd_rdma_bad_attributes_total", C, "Peers' RDMA attributes refused",
         (double)r.bad_attributes);
  metric(m, "meshd_rdma_resets_total", C, "Queue pairs destroyed on request (transport reset)",
         (double)r.resets);
  metric(m, "meshd_rdma_repoints_total", C, "Queue pairs re-pointed at a peer's new one",
         (double)r.repoints);
  metric(m, "meshd_rdma_port_events_total", C, "RDMA port or device failures reported",
         (double)r.device_events);
  metric(m, "meshd_rdma_poll_seconds_total", C, "Time spent busy-polling completions",
         (double)r.poll_us / 1e6);
  metric(m, "meshd_rdma_poll_completions_total", C, "Completions found by busy-polling",
         (double)r.poll_completions);
  /* Model bytes over RDMA (net/rdma_bulk.h). */
  metric(m, "meshd_rdma_bulk_frames_sent_total", C, "Bulk frames posted over RDMA",
         (double)r.bulk_frames_sent);
  metric(m, "meshd_rdma_bulk_frames_received_total", C, "Bulk frames received over RDMA",
         (double)r.bulk_frames_received);
  metric(m, "meshd_rdma_bulk_bytes_sent_total", C, "Bulk message bytes sent in RDMA frames",
         (double)r.bulk_bytes_sent);
  metric(m, "meshd_rdma_bulk_bytes_received_total", C,
         "Bulk message bytes delivered from RDMA frames", (double)r.bulk_bytes_received);
  metric(m, "meshd_rdma_bulk_tcp_bytes_sent_total", C,
         "Bulk message bytes sent sequenced over TCP (no RDMA path, or a loss)",
         (double)r.bulk_tcp_bytes_sent);
  metric(m, "meshd_rdma_bulk_messages_rdma_total", C, "Bulk messages given to RDMA",
         (double)r.bulk_msgs_rdma);
  metric(m, "meshd_rdma_bulk_messages_tcp_total", C,
         "Bulk messages of RDMA links sent over TCP from the start", (double)r.bulk_msgs_tcp);
  metric(m, "meshd_rdma_bulk_messages_received_total", C,
         "Sequenced bulk messages delivered (either path)", (double)r.bulk_msgs_received);
  metric(m, "meshd_rdma_bulk_gaps_total", C,
         "Bulk frames or messages dropped for a missing one before them", (double)r.bulk_gaps);
  metric(m, "meshd_rdma_bulk_duplicates_total", C, "Copies of delivered bulk messages dropped",
         (double)r.bulk_dups);
  metric(m, "meshd_rdma_bulk_fallbacks_total", C,
         "Times bulk to a peer went to TCP for a lost frame (gap report or timeout)",
         (double)r.bulk_fallbacks);
  metric(m, "meshd_rdma_bulk_timeouts_total", C, "Bulk fallbacks caused by a timeout",
         (double)r.bulk_timeouts);
  metric(m, "meshd_rdma_bulk_resent_total", C, "Bulk messages sent again over TCP",
         (double)r.bulk_resent);
  metric(m, "meshd_rdma_bulk_acks_total", C, "Bulk acknowledgements sent", (double)r.bulk_acks);
  metric(m, "meshd_rdma_bulk_nacks_total", C, "Bulk gap reports sent", (double)r.bulk_nacks);
  metric(m, "meshd_rdma_bulk_waits_total", C, "Bulk sends refused until credit returned",
         (double)r.bulk_waits);
  metric(m, "meshd_rdma_bulk_bad_total", C,
         "Sequenced bulk frames or messages refused (malformed, unknown link)", (double)r.bulk_bad);
  metric(m, "meshd_rdma_bulk_test_drops_total", C,
         "Bulk frames not posted by the test-only loss hook", (double)r.bulk_test_drops);
  metric(m, "meshd_rdma_paths_up", G, "Peers whose datagrams go over RDMA", (double)r.paths_up);
  metric(m, "meshd_rdma_qps_open", G, "Queue pairs open", (double)r.qps_open);
}

/* The UDP datagram path (net/udp.h); its packets and bytes are the
 * transport figures labelled transport="udp". */
static void udp_metrics(mesh_daemon *d, mesh_api_metrics *m)
{
  mesh_udp_stats u;
  if (mesh_udp_stats_of(mesh_node_net(d->node), &u) != 0)
    return; /* --udp off */
  metric(m, "meshd_udp_fallbacks_total", C, "Peers moved from UDP to TCP datagrams",
         (double)u.fallbacks);
  metric(m, "meshd_udp_retries_total", C, "UDP tried again after a fallback", (double)u.retries);
  metric(m, "meshd_udp_pings_total", C, "UDP path probes sent", (double)u.pings_sent);
  metric(m, "meshd_udp_pongs_total", C, "Answers to peers' UDP path probes", (double)u.pongs_sent);
  metric(m, "meshd_udp_too_big_total", C,
         "Datagrams over --udp-payload-max or the path MTU, sent over TCP", (double)u.too_big);
  metric(m, "meshd_udp_send_errors_total", C, "UDP sends refused by the system (sent over TCP)",
         (double)u.send_errors);
  metric(m, "meshd_udp_index_clashes_total", C, "Links left on TCP: receiver index taken",
         (double)u.index_clashes);
  metric(m, "meshd_udp_bind_failures_total", C, "Listen addresses without a UDP socket",
         (double)u.bind_failures);
  static const char *const reasons[] = {"unknown_index", "auth", "replay", "malformed"};
  const uint64_t drops[] = {u.unknown_index, u.auth_failures, u.replays, u.malformed};
  for (size_t i = 0; i < sizeof drops / sizeof drops[0]; i++)
    metric1(m, "meshd_udp_drops_total", C, "UDP packets dropped, by reason", "reason", reasons[i],
            (double)drops[i]);
  static const char *const paths[] = {"up", "probing", "fallback"};
  const uint64_t peers[] = {u.peers_up, u.peers_probing, u.peers_fallback};
  for (size_t i = 0; i < sizeof peers / sizeof peers[0]; i++)
    metric1(m, "meshd_udp_peers", G,
            "Peers by UDP path: up (datagrams over UDP), probing or fallback (over TCP)", "path",
            paths[i], (double)peers[i]);
  metric(m, "meshd_udp_sockets", G, "UDP sockets bound", (double)u.sockets);
}

/* Test-only switches (src/daemon/test_faults.h): always shows whether one
 * is on, so that a production node with one on stands out; the delay line's
 * figures when it is there. */
static void test_fault_metrics(mesh_daemon *d, mesh_api_metrics *m)
{
  metric(m, "meshd_test_faults_active", G,
         "1 when a test-only switch (MESHD_TEST_*) was set at start",
         mesh_test_faults_active(d->faults) ? 1 : 0);
  const mesh_fault_line *l = mesh_test_faults_line(d->faults);
  if (l == NULL)
    return;
  const mesh_fault *f = mesh_fault_line_core(l);
  const mesh_fault_spec *s = mesh_fault_get_spec(f);
  const mesh_fault_counters *c = mesh_fault_counters_get(f);
  metric(m, "meshd_test_faults_delay_ms", G, "Test fault injection: mean delay of sends",
         s->active ? (double)s->delay_ms : 0);
  metric(m, "meshd_test_faults_jitter_ms", G, "Test fault injection: jitter of sends",
         s->active ? (double)s->jitter_ms : 0);
  metric(m, "meshd_test_faults_held", G, "Test fault injection: messages held now",
         (double)c->held_now);
  metric(m, "meshd_test_faults_max_delay_ms", G, "Test fault injection: largest delay given",
         (double)c->max_delay_ms);
  static const char *const name = "meshd_test_faults_messages_total";
  static const char *const help = "Test fault injection: messages by what became of them";
  metric1(m, name, C, help, "what", "held", (double)c->held);
  metric1(m, name, C, help, "what", "released", (double)c->released);
  metric1(m, name, C, help, "what", "dropped", (double)c->dropped);
  metric1(m, name, C, help, "what", "refused", (double)c->refused);
  metric1(m, name, C, help, "what", "release_failed", (double)c->release_failed);
}

static void peer_metrics(mesh_daemon *d, mesh_api_metrics *m, const mesh_hf_counters *hf);

static void download_metrics(mesh_daemon *d, mesh_api_metrics *m)
{
  const mesh_coord *co = mesh_downloads_core(d->dl);
  const mesh_coord_stats *s = mesh_coord_get_stats(co);
  metric(m, "meshd_coord_own_entries", G, "This node's own download entries",
         (double)mesh_coord_own_count(co));
  metric(m, "meshd_coord_held_entries", G, "Entries of other nodes held (soft state)",
         (double)mesh_coord_held_entries(co));
  metric(m, "meshd_coord_held_bytes", G,
         "Bytes of other nodes' documents held (shown or awaiting collection)",
         (double)mesh_coord_held_bytes(co));
  metric(m, "meshd_coord_docs_accepted_total", C, "Download documents accepted from owners",
         (double)s->docs_accepted);
  static const char *const name = "meshd_coord_docs_refused_total";
  static const char *const help = "Download documents refused, by reason";
  metric1(m, name, C, help, "reason", "malformed", (double)s->docs_refused_malformed);
  metric1(m, name, C, help, "reason", "forged", (double)s->docs_refused_forged);
  metric1(m, name, C, help, "reason", "unknown_owner", (double)s->docs_refused_unknown);
  metric1(m, name, C, help, "reason", "unanswered_owner", (double)s->docs_refused_unanswered);
  metric1(m, name, C, help, "reason", "old_epoch", (double)s->docs_refused_old_epoch);
  metric1(m, name, C, help, "reason", "future_epoch", (double)s->docs_refused_future_epoch);
  metric1(m, name, C, help, "reason", "old_version", (double)s->docs_refused_old_version);
  metric1(m, name, C, help, "reason", "owner_cap", (double)s->docs_refused_owner_cap);
  metric1(m, name, C, help, "reason", "budget", (double)s->docs_refused_budget);
  metric1(m, "meshd_coord_requests_refused_total", C,
          "Document requests left unanswered: from a peer not in the view, or a member over its "
          "budget (256 at once, then 16 a second)",
          "reason", "stranger", (double)s->requests_refused_stranger);
  metric1(m, "meshd_coord_requests_refused_total", C,
          "Document requests left unanswered: from a peer not in the view, or a member over its "
          "budget (256 at once, then 16 a second)",
          "reason", "rate", (double)s->requests_refused_rate);
  metric(m, "meshd_coord_reconnect_syncs_total", C,
         "Documents exchanged again because a connection to a member came up",
         (double)s->reconnect_syncs);
  metric1(m, name, C, help, "reason", "models_dir", (double)s->docs_refused_models_dir);
  metric1(m, "meshd_coord_messages_refused_total", C,
          "Coordinator messages refused before their content was read, by reason", "reason",
          "malformed", (double)s->msgs_malformed);
  metric(m, "meshd_coord_commands_accepted_total", C, "Commands accepted",
         (double)s->cmds_accepted);
  static const char *const cname = "meshd_coord_commands_refused_by_reason_total";
  static const char *const chelp = "Commands from other nodes refused, by reason";
  metric1(m, cname, C, chelp, "reason", "forged", (double)s->cmds_refused_forged);
  metric1(m, cname, C, chelp, "reason", "epoch", (double)s->cmds_refused_epoch);
  metric1(m, cname, C, chelp, "reason", "replay", (double)s->cmds_refused_replay);
  metric1(m, cname, C, chelp, "reason", "not_allowed", (double)s->cmds_refused_policy);
  metric1(m, cname, C, chelp, "reason", "quota", (double)s->cmds_refused_quota);
  metric(m, "meshd_coord_commands_sent_total", C, "Commands sent to other nodes",
         (double)s->cmds_sent);
  metric(m, "meshd_coord_results_unmatched_total", C,
         "Command answers dropped: not from the command's target, or for no command awaited",
         (double)s->results_unmatched);
  metric(m, "meshd_coord_deletes_refused_unowned_total", C,
         "Deletes refused because the model directory has no .meshd-owned marker",
         (double)s->deletes_refused_unowned);
  metric(m, "meshd_coord_dirs_adopted_total", C,
         "Model directories of earlier versions marked as this node's at their first check",
         (double)mesh_downloads_counters_get(d->dl)->dirs_adopted);
  metric(m, "meshd_coord_commands_refused_total", C, "Commands refused", (double)s->cmds_refused);
  metric(m, "meshd_coord_actions_total", C, "Actions handed to the executors",
         (double)s->actions_emitted);
  metric1(m, "meshd_coord_actions_deferred_total", C, "Actions held back by a rate limit", "limit",
          "global", (double)s->actions_deferred_global);
  metric1(m, "meshd_coord_actions_deferred_total", C, "Actions held back by a rate limit", "limit",
          "entry", (double)s->actions_deferred_entry);
  metric(m, "meshd_coord_abandoned_total", C, "Owners whose entries were marked abandoned",
         (double)s->docs_abandoned);
  metric(m, "meshd_coord_view_resyncs_total", C,
         "Times the coordinator's mirror of the view was rebuilt from membership after "
         "view events were lost",
         (double)s->view_resyncs);
  metric(m, "meshd_coord_view_resync_fixes_total", C,
         "Peers whose place in the coordinator's view a resync corrected",
         (double)s->view_resync_fixes);
  metric(m, "meshd_gc_collected_total", C, "Entries of departed owners or ended epochs collected",
         (double)s->entries_collected);

  /* The store's counters as copied after its last transaction: reading
   * them costs no SQLite step on the loop. */
  mesh_store_stats st;
  mesh_downloads_store_stats(d->dl, &st);
  metric(m, "meshd_journal_records", G, "Records in the journal", (double)st.journal_rows);
  metric(m, "meshd_store_transactions_total", C, "Store transactions committed",
         (double)st.transactions);
  metric(m, "meshd_store_rows_written_total", C, "Store rows written", (double)st.rows_written);
  metric(m, "meshd_store_failures_total", C, "Store batches rolled back", (double)st.failures);
  const mesh_downloads_counters *dc = mesh_downloads_counters_get(d->dl);
  metric(m, "meshd_store_backlog_batches", G,
         "Store batches not yet written (waiting for or on the store's worker)",
         (double)dc->store_backlog);
  metric(m, "meshd_store_backlog_max_batches", G, "The deepest the store backlog has been",
         (double)dc->store_backlog_max);
  metric(m, "meshd_members_saved_total", C,
         "Times the last known members were written to the store", (double)dc->members_saved);
  metric(m, "meshd_members_save_failures_total", C, "Writes of the last known members that failed",
         (double)dc->members_save_failures);
  metric(m, "meshd_store_dropped_items_total", C,
         "Journal records dropped because the store was too far behind", (double)dc->store_dropped);
  metric(m, "meshd_store_coalesced_total", C,
         "Entry writes that replaced an older write of the same row waiting for the store",
         (double)dc->store_coalesced);
  metric(m, "meshd_disk_slices_total", C, "Delete and inspection slices run on the work pool",
         (double)dc->disk_slices);

  mesh_hf_counters hf;
  mesh_downloads_hf_counters(d->dl, &hf);
  metric(m, "meshd_download_bytes_total", C, "Model bytes downloaded", (double)hf.bytes_received);
  metric(m, "meshd_download_requests_total", C, "HTTP requests to the Hub", (double)hf.requests);
  metric(m, "meshd_download_retries_total", C, "HTTP requests retried", (double)hf.retries);
  metric(m, "meshd_download_hash_mismatches_total", C, "Files deleted for a wrong hash",
         (double)hf.hash_mismatches);
  metric(m, "meshd_download_in_place_mismatches_total", C,
         "Files found in place with the listed size and a wrong hash, downloaded again",
         (double)hf.in_place_mismatches);
  metric(m, "meshd_downloads_completed_total", C, "Downloads completed", (double)hf.completed);
  metric(m, "meshd_downloads_failed_total", C, "Downloads failed", (double)hf.failed);
  metric(m, "meshd_download_write_pauses_total", C,
         "Transfers paused because every write buffer waited for the disk",
         (double)hf.write_pauses);
  metric(m, "meshd_download_io_errors_total", C, "Downloads failed by a file system error",
         (double)hf.io_errors);
  metric(m, "meshd_download_buffered_bytes", G, "Received bytes waiting for the disk",
         (double)hf.buffered_bytes);
  peer_metrics(d, m, &hf);
}

/* Model bytes by source, and the bulk channel's transfers both ways: sources
 * dropped or refused, uploads served and refused by reason. */
static void peer_metrics(mesh_daemon *d, mesh_api_metrics *m, const mesh_hf_counters *hf)
{
  static const char *const src_help = "Model file bytes received, by source (hub or peer)";
  metric1(m, "meshd_download_source_bytes_total", C, src_help, "source", "hub",
          (double)hf->bytes_received);
  metric1(m, "meshd_download_source_bytes_total", C, src_help, "source", "peer",
          (double)hf->peer_bytes);
  mesh_downloads_peer_stats ps;
  mesh_downloads_peer_stats_get(d->dl, &ps);
  static const char *const drop_help =
      "Peer sources dropped from a download: bytes that failed the Hub's hash, or a transfer "
      "that failed (refusal, error, stall, left the view)";
  metric1(m, "meshd_peer_sources_dropped_total", C, drop_help, "reason", "bad_bytes",
          (double)ps.bad_sources);
  metric1(m, "meshd_peer_sources_dropped_total", C, drop_help, "reason", "failed",
          (double)ps.source_failures);
  metric(m, "meshd_peer_transfers_total", C, "File transfers begun from peer sources",
         (double)hf->peer_transfers);
  metric(m, "meshd_peer_failovers_total", C,
         "Peer transfers that ended early: the file went on from another source or the Hub",
         (double)hf->peer_failovers);
  metric(m, "meshd_peer_mismatches_total", C,
         "Files holding bytes of peers whose hash was wrong, fetched again",
         (double)hf->peer_mismatches);
  metric(m, "meshd_ranged_files_total", C,
         "Large files fetched in ranges from several sources at once", (double)hf->ranged_files);
  metric(m, "meshd_ranges_done_total", C, "Ranges of such files written whole",
         (double)hf->ranges_done);
  metric(m, "meshd_ranges_resumed_total", C,
         "Ranges found written whole by an earlier run (not fetched again)",
         (double)hf->ranges_resumed);
  metric(m, "meshd_bulk_protocol_errors_total", C,
         "Bulk channel messages malformed, out of order or past their credit",
         (double)ps.protocol_errors);
  metric(m, "meshd_uploads_total", C, "Model file transfers served to members", (double)ps.uploads);
  metric(m, "meshd_uploads_active", G, "Model file transfers being served now",
         (double)ps.uploads_active);
  metric(m, "meshd_upload_bytes_total", C, "Model file bytes sent to members",
         (double)ps.upload_bytes);
  metric(m, "meshd_file_lists_from_members_total", C,
         "File lists taken from members, signed by them, because the Hub could not be reached",
         (double)ps.lists_taken);
  metric(m, "meshd_file_lists_refused_total", C,
         "File lists of members refused (bad signature, another model, malformed, too large)",
         (double)ps.lists_refused);
  metric(m, "meshd_file_lists_served_total", C, "Signed file lists sent to members",
         (double)ps.lists_served);
  static const char *const ref_help = "Requests for model files refused, by reason";
  for (int i = 0; mesh_downloads_refusal_name(i) != NULL; i++)
    metric1(m, "meshd_uploads_refused_total", C, ref_help, "reason", mesh_downloads_refusal_name(i),
            (double)ps.refused[i]);
}

/* How late the loop's timers fire (src/daemon/loop.h): the histogram, and
 * the worst and latest samples as gauges. Quantiles are read from the
 * buckets (histogram_quantile, or tests/lib/meshtest.py's loop_lag), whose
 * bounds include the 10 ms and 100 ms targets. */
static void loop_metrics(mesh_daemon *d, mesh_api_metrics *m)
{
  const mesh_loop_lag *lag = mesh_loop_lag_get(mesh_node_loop(d->node));
  double bounds[MESH_LOOP_LAG_BUCKETS];
  for (int i = 0; i < MESH_LOOP_LAG_BUCKETS; i++)
    bounds[i] = mesh_loop_lag_bounds_ms[i] / 1000.0;
  mesh_api_histogram(m, "meshd_loop_lag_seconds",
                     "How late the event loop's timers fire, sampled every 100 ms", NULL, bounds,
                     lag->buckets, MESH_LOOP_LAG_BUCKETS, (double)lag->sum_us / 1e6, lag->count);
  metric(m, "meshd_loop_lag_max_seconds", G, "The latest the event loop has run since start",
         (double)lag->max_us / 1e6);
  metric(m, "meshd_loop_lag_last_seconds", G, "The loop's lateness at the latest sample",
         (double)lag->last_us / 1e6);
}

/* The work pool (src/base/pool.h): how much waits for a worker and how long
 * workers are busy. A queue that stays deep means --io-threads is too low
 * for the disk; the loop's lag is unaffected either way. */
static void pool_metrics(mesh_daemon *d, mesh_api_metrics *m)
{
  mesh_pool_stats st;
  mesh_pool_get_stats(mesh_node_pool(d->node), &st);
  metric(m, "meshd_pool_threads", G, "Worker threads of the work pool", (double)st.threads);
  metric(m, "meshd_pool_items_total", C, "Work items completed by the pool", (double)st.completed);
  metric(m, "meshd_pool_queued", G, "Work items waiting for a worker", (double)st.queued);
  metric(m, "meshd_pool_running", G, "Work items running now", (double)st.running);
  metric(m, "meshd_pool_busy_seconds_total", C, "Time workers spent running items, all workers",
         (double)st.busy_ns / 1e9);
  metric(m, "meshd_pool_wait_seconds_total", C,
         "Time items waited for a worker after they were submitted, summed",
         (double)st.wait_ns / 1e9);
  metric(m, "meshd_pool_longest_item_seconds", G, "The longest single work item since start",
         (double)st.longest_ns / 1e9);
}

void mesh_daemon_metrics(void *ctx, mesh_api_metrics *m)
{
  mesh_daemon *d = ctx;
  loop_metrics(d, m);
  pool_metrics(d, m);
  membership_metrics(d, m);
  connection_metrics(d, m);
  transport_metrics(d, m);
  rdma_metrics(d, m);
  udp_metrics(d, m);
  test_fault_metrics(d, m);
  download_metrics(d, m);
  metric1(m, "meshd_log_lines_total", C, "Log lines written, by level", "level", "error",
          (double)mesh_log_count(MESH_LOG_ERROR));
  metric1(m, "meshd_log_lines_total", C, "Log lines written, by level", "level", "warn",
          (double)mesh_log_count(MESH_LOG_WARN));
  mesh_api_metric(m, "meshd_open_files_limit", MESH_API_GAUGE,
                  "The soft limit on open files in force (RLIMIT_NOFILE, raised at start).", NULL,
                  (double)d->nofile.soft);
  mesh_api_metric(m, "meshd_open_files_needed", MESH_API_GAUGE,
                  "Open files the configuration needs: max-connections, api-max-connections, "
                  "downloads in flight and a margin.",
                  NULL, (double)mesh_daemon_files_needed(d->cfg));
}
