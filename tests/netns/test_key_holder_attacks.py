"""Scenario 11: what a swarm-key holder can try against a 3-node mesh, and
what it gets (issue 16: accusations, budgets, commands, answers, files).

Three nodes (n0, n1 the victim, n2), each in its own namespace; the attacks
come from tests/tools/hostile_peer on a host of its own, holding the key,
and from n0, a member (remote commands are what members send). Numbered as
the items of the issue's "What to build":

 1. accuse: rounds of suspect and dead claims about all three nodes, each at
    its epoch, signed by a key that never joined, sent to each node. Each
    is dropped as accuser-not-member (none deferred into a suspicion, none
    refuted); nobody's epoch changes.
 3. bad-sig-flood: gossip with member records for n0 signed by the wrong
    key, as fast as the tool can send, for FLOOD_S seconds. n1 verifies at
    most its budget of them, disconnects the sender (meshd_swim_disconnects_
    total) and drops the rest unverified (sig-budget); n1's CPU over the
    flood is printed and bounded.
    sybil-docs: SYBILS identities join n1's view (answering its probes) and
    each publishes a document of 1,024 entries of the largest kind, a new
    version every second; one publishes more entries than an owner may
    hold. At every sample the bytes a node holds for other owners stay
    within twice its --docs-budget (DOCS_BUDGET, set small; the coordinator
    keeps the live documents within it, and those awaiting freeing within
    as much again), refusals are counted (owner_cap, budget), and every
    node's RSS is printed and bounded (RSS_GROWTH_MAX).
    push-pull-flood: state exchanges to n2 as fast as they go for PP_S
    seconds, the first carrying INTRO fresh members: n2 takes a burst and
    then two a second (the rest counted as push-pull-rate), and at most
    MAX_INTRO_SYNC members from the one exchange (the rest intro-limit).
 4. commands from n0: n1 runs --accept-commands-from none (a start is
    refused: not_allowed, and so is a delete); n2 runs any-member with
    --command-quota QUOTA: n0's delete of a directory on n2 that meshd did
    not create is refused (deletes_refused_unowned) and the directory
    survives, and n0's starts past the quota (the delete's entry counts
    too) are refused (quota), n2 holding at most QUOTA entries for n0.
 5. forged answers: hostile_peer --forge-result sends n0 answers for its
    commands in n2's name; n0 drops them (results_unmatched).
 6. files: meshd started in the attacker's namespace with a swarm.key at
    0644 and with a group-writable home is refused with the fix in the
    message (the full set of file rules is tests/integration/test_file_rules.py).

At the end every node still sees the other two alive at the epochs they had
before the attacks, and no node renewed its epoch."""
import json
import os
import shutil
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from scenario import PORT, NetMesh, figure  # noqa: E402
import meshtest  # noqa: E402

HOSTILE = os.path.join(meshtest.BUILD, "tests", "hostile_peer")
MIB = 1 << 20
DOCS_BUDGET = 4 * MIB   # every node's --docs-budget: small, so that Sybils overrun it
SYBILS = 12             # identities joining with full documents (about 0.7 MiB held each)
SYBIL_HOLD_S = 10
ACCUSE_ROUNDS = 5
FLOOD_S = 8
QUOTA = 2               # n2's --command-quota
PP_S = 5                # the push-pull flood's length
INTRO = 300             # fresh members its first exchange introduces
# The profile's bounds (net/swim_profile.c, lan): new members one exchange
# may introduce, and a peer's exchanges (a burst of 4, then 2 a second).
MAX_INTRO_SYNC = 256
PP_BURST = 4
PP_PER_S = 2
# The most a bad-signature flood may cost the victim: its share of one CPU
# over the flood. Before the budget it was all of it (issue 16, item 5);
# what remains is the transport's decryption of each frame and a decode.
FLOOD_CPU_SHARE_MAX = 0.5
# RSS a node may gain while Sybils publish: the documents it holds (twice
# the budget with those awaiting freeing) and the decoding of what it
# refuses, with room for the allocator's slack.
RSS_GROWTH_MAX = 2 * DOCS_BUDGET + 48 * MIB
# An unroutable endpoint: remote starts make entries that fail at once,
# and no request leaves the namespaces.
HF_NOWHERE = "http://10.99.0.1:1"


def rss_kib(node):
    with open(f"/proc/{node.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {node.name}")


def swim_drops(mt, reason):
    return meshtest.metric_sum(mt, "meshd_swim_dropped_total", reason=reason)


def metric(node, name, **labels):
    return meshtest.metric_sum(node.metrics(), name, **labels)


class KeyHolderAttacks(unittest.TestCase):
    def hostile(self, m, target, *args, timeout=60):
        """Runs hostile_peer on the attacker's host against target; returns
        its JSON line."""
        p = subprocess.run(["ip", "netns", "exec", self.hh.ns, HOSTILE, "--psk", m.psk,
                            "--connect", f"{m.host_of(target).ip}:{PORT}"] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        self.assertEqual(p.returncode, 0, f"hostile_peer {args[:2]}: {p.stdout} {p.stderr}")
        return json.loads(p.stdout.strip().splitlines()[-1])

    def views_intact(self, m, epochs):
        for n in m.nodes:
            seen = n.member_states()
            for other in m.nodes:
                if other is n:
                    continue
                oid = other.node_id()
                self.assertEqual(seen.get(oid), ("alive", epochs[oid]),
                                 f"{n.name} sees {other.name} as {seen.get(oid)}")

    def test_attacks(self):
        if not os.path.exists(HOSTILE):
            self.skipTest(f"key-holder attacks skipped: {HOSTILE} not built")
        args = ["--docs-budget", str(DOCS_BUDGET), "--hf-endpoint", HF_NOWHERE]
        with NetMesh(3, args=args, extra_hosts=1) as m:
            n0, n1, n2 = m.nodes
            n1.args += ["--accept-commands-from", "none"]
            n2.args += ["--accept-commands-from", "any-member", "--command-quota", str(QUOTA)]
            self.hh = m.extra[0]
            m.start()
            m.wait_converged(timeout=30)
            ids = {n.name: n.node_id() for n in m.nodes}
            epochs = {n.node_id(): n.epoch() for n in m.nodes}
            renewals0 = {n.name: metric(n, "meshd_epoch_renewals_total") for n in m.nodes}
            rss0 = {n.name: rss_kib(n) for n in m.nodes}
            for n in m.nodes:
                figure(f"rss_start_{n.name}", rss0[n.name], "KiB")

            # 1. Claims by a key that never joined, to every node: about
            # itself and about the other two.
            claims = [f"{ids[n.name]}@{epochs[ids[n.name]]}" for n in m.nodes]
            want = ACCUSE_ROUNDS * 2 * len(claims)
            for n in m.nodes:
                mt = n.metrics()
                out = self.hostile(m, n, "--mode", "accuse", "--rounds", str(ACCUSE_ROUNDS),
                                   *sum((["--claim", c] for c in claims), []))
                self.assertEqual(out["claims_sent"], want, out)
                meshtest.wait_until(
                    lambda: swim_drops(n.metrics(), "accuser-not-member")
                    - swim_drops(mt, "accuser-not-member") >= want, 10,
                    f"{n.name} to drop {want} claims as accuser-not-member")
                mt_after = n.metrics()
                figure(f"accuse_claims_sent_to_{n.name}", out["claims_sent"])
                figure(f"accuse_dropped_not_member_{n.name}",
                       int(swim_drops(mt_after, "accuser-not-member")
                           - swim_drops(mt, "accuser-not-member")))
                for c in ("meshd_swim_dead_claims_deferred_total", "meshd_swim_refutations_total"):
                    self.assertEqual(meshtest.metric_sum(mt_after, c), meshtest.metric_sum(mt, c),
                                     f"{n.name}: a non-member's claim was taken ({c})")
            self.assertEqual({n.node_id(): n.epoch() for n in m.nodes}, epochs)
            self.views_intact(m, epochs)

            # 3a. Bad signatures as fast as they go.
            mt = n1.metrics()
            cpu0, t0 = n1.cpu_seconds(), time.monotonic()
            out = self.hostile(m, n1, "--mode", "bad-sig-flood", "--seconds", str(FLOOD_S),
                               "--claim", claims[0])
            cpu_s, wall_s = n1.cpu_seconds() - cpu0, time.monotonic() - t0
            mt_after = n1.metrics()

            def d(name, **labels):
                return int(meshtest.metric_sum(mt_after, name, **labels)
                           - meshtest.metric_sum(mt, name, **labels))
            verified = d("meshd_swim_dropped_total", reason="bad-signature")
            figure("sigflood_records_sent", out["records_sent"])
            figure("sigflood_packets_sent", out["packets_sent"])
            figure("sigflood_sender_downs", out["downs"])
            figure("sigflood_bad_signature_verified", verified)
            figure("sigflood_sig_budget_drops", d("meshd_swim_dropped_total", reason="sig-budget"))
            figure("sigflood_disconnects", d("meshd_swim_disconnects_total"))
            figure("sigflood_victim_cpu", cpu_s, "s")
            figure("sigflood_wall", wall_s, "s")
            figure("sigflood_victim_cpu_share", cpu_s / wall_s)
            self.assertGreaterEqual(d("meshd_swim_disconnects_total"), 1,
                                    "the sender was never disconnected")
            self.assertGreater(d("meshd_swim_dropped_total", reason="sig-budget"), 0)
            # 16 verifications per 10 s window: at most two windows' worth.
            self.assertLessEqual(verified, 2 * 16 + 16, "signatures verified past the budget")
            self.assertLess(verified, out["records_sent"])
            self.assertLessEqual(cpu_s / wall_s, FLOOD_CPU_SHARE_MAX,
                                 "the flood still costs the victim most of a CPU")

            # 3b. Sybils with full documents.
            mt = {n.name: n.metrics() for n in m.nodes}
            sybils = subprocess.Popen(
                ["ip", "netns", "exec", self.hh.ns, HOSTILE, "--psk", m.psk, "--connect",
                 f"{m.host_of(n1).ip}:{PORT}", "--mode", "sybil-docs", "--count", str(SYBILS),
                 "--over-cap", "1", "--hold", str(SYBIL_HOLD_S)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            m.procs.append(sybils)
            held_max = {n.name: 0 for n in m.nodes}
            rss_max = dict(rss0)
            members_max = 0
            while sybils.poll() is None:
                for n in m.nodes:
                    held = metric(n, "meshd_coord_held_bytes")
                    held_max[n.name] = max(held_max[n.name], held)
                    rss_max[n.name] = max(rss_max[n.name], rss_kib(n))
                    self.assertLessEqual(held, 2 * DOCS_BUDGET,
                                         f"{n.name} holds more than its documents' budget")
                members_max = max(members_max, len(n1.members()))
                time.sleep(0.5)
            so, se = sybils.communicate()
            self.assertEqual(sybils.returncode, 0, f"sybil-docs: {so} {se}")
            out = json.loads(so.strip().splitlines()[-1])
            refused = {r: int(metric(n1, "meshd_coord_docs_refused_total", reason=r)
                              - meshtest.metric_sum(mt["n1"], "meshd_coord_docs_refused_total",
                                                    reason=r))
                       for r in ("budget", "owner_cap", "unknown_owner", "unanswered_owner",
                                 "future_epoch")}
            accepted = int(metric(n1, "meshd_coord_docs_accepted_total")
                           - meshtest.metric_sum(mt["n1"], "meshd_coord_docs_accepted_total"))
            figure("sybil_identities", out["count"])
            figure("sybil_docs_sent", out["docs_sent"])
            figure("sybil_doc_bytes_max", out["doc_bytes_max"], "B")
            figure("sybil_pings_answered", out["pings_answered"])
            figure("sybil_n1_members_max", members_max)
            figure("sybil_n1_docs_accepted", accepted)
            for r, v in refused.items():
                figure(f"sybil_n1_docs_refused_{r}", v)
            for n in m.nodes:
                figure(f"sybil_held_bytes_max_{n.name}", int(held_max[n.name]), "B")
                figure(f"sybil_rss_max_{n.name}", rss_max[n.name], "KiB")
                figure(f"sybil_rss_growth_{n.name}", rss_max[n.name] - rss0[n.name], "KiB")
            self.assertGreater(accepted, 0, "no Sybil document was taken at all: nothing tested")
            self.assertGreater(refused["budget"], 0, "the budget never refused a document")
            self.assertGreater(refused["owner_cap"], 0, "an over-cap document was not refused")
            self.assertLessEqual(held_max["n1"], 2 * DOCS_BUDGET)
            for n in m.nodes:
                self.assertLessEqual((rss_max[n.name] - rss0[n.name]) * 1024, RSS_GROWTH_MAX,
                                     f"{n.name}'s memory grew past its documents' budget")

            # 4. Commands from a member, n0.
            def start(target, model):
                return n0.post("/download/start", {"targetNodeId": ids[target.name],
                                                   "modelId": model, "revision": "main"})

            def refused_cmds(node, reason):
                return metric(node, "meshd_coord_commands_refused_by_reason_total", reason=reason)
            na0 = refused_cmds(n1, "not_allowed")
            status, body = start(n1, "acme/one")
            figure("cmd_start_on_n1_status", status)
            self.assertNotIn(status, (200, 202), body)
            self.assertEqual(refused_cmds(n1, "not_allowed"), na0 + 1)
            status, body = n0.delete(f"/download/{ids['n1']}/acme%2Fone")
            self.assertNotIn(status, (200, 202), body)
            self.assertEqual(refused_cmds(n1, "not_allowed"), na0 + 2)
            self.assertEqual(meshtest.downloads_of(n1, ids["n1"]), [])

            theirs = os.path.join(n2.home, "models", "acme--handmade")
            os.makedirs(theirs)
            with open(os.path.join(theirs, "weights.bin"), "wb") as f:
                f.write(b"x" * 4096)
            unowned0 = metric(n2, "meshd_coord_deletes_refused_unowned_total")
            status, body = n0.delete(f"/download/{ids['n2']}/"
                                     + urllib.parse.quote("acme/handmade", safe=""))
            figure("cmd_delete_unowned_status", status)
            meshtest.wait_until(
                lambda: metric(n2, "meshd_coord_deletes_refused_unowned_total") > unowned0, 20,
                "n2 to refuse the delete of a directory it did not create")
            self.assertTrue(os.path.exists(os.path.join(theirs, "weights.bin")))

            q0 = refused_cmds(n2, "quota")
            statuses = [start(n2, f"acme/q{i}")[0] for i in range(QUOTA + 2)]
            figure("cmd_quota_statuses", ",".join(str(s) for s in statuses))
            self.assertGreaterEqual(refused_cmds(n2, "quota"), q0 + 1,
                                    "no start refused for the quota")
            own = [b for s, b in meshtest.downloads_of(n2, ids["n2"])]
            self.assertLessEqual(len(own), QUOTA, f"n2 holds {len(own)} entries for n0")
            figure("cmd_quota_refused", int(refused_cmds(n2, "quota") - q0))

            # 5. Forged answers to n0's commands, in n2's name.
            u0 = metric(n0, "meshd_coord_results_unmatched_total")
            first = (epochs[ids["n0"]] << 32) + 1
            self.hostile(m, n0, "--victim", ids["n2"], "--witness", ids["n1"],
                         "--victim-epoch", str(epochs[ids["n2"]]),
                         "--forge-result", str(first), "--forge-count", "8",
                         "--result-epoch", str(epochs[ids["n2"]]))
            meshtest.wait_until(
                lambda: metric(n0, "meshd_coord_results_unmatched_total") >= u0 + 8, 10,
                "n0 to drop the 8 forged answers")
            figure("forged_answers_unmatched",
                   int(metric(n0, "meshd_coord_results_unmatched_total") - u0))

            # 3c. State exchanges as fast as they go, the first introducing
            # more members than one exchange may.
            mt = n2.metrics()
            out = self.hostile(m, n2, "--mode", "push-pull-flood", "--intro", str(INTRO),
                               "--seconds", str(PP_S))
            mt_after = n2.metrics()

            def d2(name, **labels):
                return int(meshtest.metric_sum(mt_after, name, **labels)
                           - meshtest.metric_sum(mt, name, **labels))
            received = d2("meshd_swim_messages_received_total", kind="push_pull")
            rate_drops = d2("meshd_swim_dropped_total", reason="push-pull-rate")
            taken = received - rate_drops - d2("meshd_swim_dropped_total", reason="sig-budget")
            intro_drops = d2("meshd_swim_dropped_total", reason="intro-limit")
            figure("pushpull_sent", out["sent"])
            figure("pushpull_received", received)
            figure("pushpull_taken", taken)
            figure("pushpull_rate_drops", rate_drops)
            figure("pushpull_intro_limit_drops", intro_drops)
            self.assertGreater(rate_drops, 0, "no state exchange refused for its rate")
            self.assertLessEqual(taken, PP_BURST + PP_PER_S * PP_S + 2,
                                 "state exchanges taken past the sender's rate")
            self.assertGreaterEqual(intro_drops, INTRO - MAX_INTRO_SYNC,
                                    "more members introduced by one exchange than allowed")

            # 6. Files: refused before anything starts, with the fix.
            home = os.path.join(m.root, "badfiles")
            meshtest.make_home(home)
            key = os.path.join(home, "swarm.key")
            shutil.copyfile(m.psk, key)
            os.chmod(key, 0o644)
            cmd = ["ip", "netns", "exec", self.hh.ns, meshtest.MESHD, "--home", home,
                   "--listen", f"{self.hh.ip}:{PORT}",
                   "--api", "unix:" + os.path.join(home, "api.sock")]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(f"run: chmod 600 {key}", r.stderr)
            os.chmod(key, 0o600)
            os.chmod(home, 0o770)
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(f"run: chmod 700 {home}", r.stderr)
            figure("files_refused", 2)

            # Nobody's epoch moved; every node still holds the other two.
            self.assertEqual({n.node_id(): n.epoch() for n in m.nodes}, epochs)
            for n in m.nodes:
                self.assertEqual(metric(n, "meshd_epoch_renewals_total"), renewals0[n.name],
                                 f"{n.name} renewed its epoch")
            self.views_intact(m, epochs)
            for n in m.nodes:
                rss = rss_kib(n)
                figure(f"rss_end_{n.name}", rss, "KiB")
                self.assertLessEqual((rss - rss0[n.name]) * 1024, RSS_GROWTH_MAX,
                                     f"{n.name}'s memory grew past its documents' budget")


if __name__ == "__main__":
    meshtest.main()
