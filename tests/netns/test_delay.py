"""Delay and jitter: 100 ms +/- 50 ms on every node's sends, and one slow
node at 400 ms +/- 200 ms on its own sends (an asymmetric link: the others
reach it at the usual delay), with the lan profile. The delay comes from the
test-only delay line in the transport (net/fault.h, MESHD_TEST_FAULTS),
since this kernel has no sch_netem.

What must hold while it runs: no member is ever declared dead or shown dead,
no node restarts under a new epoch, every suspicion raised is refuted (the
views end with everyone alive), and download state converges: every node's
model is shown completed, once, at every node. A command sent to another
node comes back as that node's entry one round trip later; those round
trips are printed. Then the slow node is made slower at run time (900 ms
+/- 100 ms, through its home's test-faults file re-read on SIGHUP): its
round trips reach the probe interval, suspicions are raised, and every one
must be refuted with no death. At the end the faults are switched off the
same way and the lines are seen to stop holding messages. The holds last
25 s and 10 s at CI length (MESH_SCENARIO_SCALE=7.5 gives about four
minutes)."""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from scenario import NetMesh, cpu_of, figure, scaled, wait_downloads  # noqa: E402
import meshtest  # noqa: E402

MODEL = "acme/tiny"
FAST = "delay=100ms,jitter=50ms"
SLOW = "delay=400ms,jitter=200ms"
VERY_SLOW = "delay=900ms,jitter=100ms"


def total(nodes, name, **labels):
    return sum(meshtest.metric_sum(n.metrics(), name, **labels) for n in nodes)


def fault_metric(node, name, **labels):
    return meshtest.metric_sum(node.metrics(), name, **labels)


class Delay(unittest.TestCase):
    def check_no_death(self, m, epochs):
        """Every node is up, sees nobody dead, and runs in its first epoch."""
        for n in m.nodes:
            n.alive()
        for observer, view in m.views(m.nodes).items():
            for pid, (st, _) in view.items():
                self.assertNotEqual(st, "dead", f"{observer} shows {pid[-8:]} dead")
        for n in m.nodes:
            self.assertEqual(n.epoch(), epochs[n.name], f"{n.name} restarted under a new epoch")

    def test_delay_and_jitter(self):
        with NetMesh(5, args=["--profile", "lan"], env={"MESHD_TEST_FAULTS": FAST},
                     hub=dict(repo=MODEL, weights=2, weight_size=64 * 1024)) as m:
            slow = m.nodes[4]
            slow.env["MESHD_TEST_FAULTS"] = SLOW
            t0 = time.monotonic()
            m.start()
            m.wait_converged(timeout=90)
            join_seconds = time.monotonic() - t0
            ids = {n.name: n.node_id() for n in m.nodes}
            epochs = {n.name: n.epoch() for n in m.nodes}
            cpu0 = cpu_of(m.nodes)

            # The line is on, and says so loudly.
            for n in m.nodes:
                self.assertEqual(fault_metric(n, "meshd_test_faults_active"), 1)
                self.assertIn("TEST FAULT INJECTION IS ON", open(n.log_path).read())
            self.assertEqual(fault_metric(slow, "meshd_test_faults_delay_ms"), 400)
            self.assertEqual(fault_metric(m.nodes[0], "meshd_test_faults_delay_ms"), 100)

            # Commands from n0 to each other node: the owner's entry comes
            # back to n0 one round trip (plus handling) later.
            origin = m.nodes[0]
            rtts = {}
            for n in m.nodes[1:]:
                t = time.monotonic()
                status, body = origin.post("/download/start", {
                    "targetNodeId": ids[n.name], "modelId": MODEL, "revision": "main"})
                self.assertIn(status, (200, 202), body)
                meshtest.wait_until(
                    lambda: any(b.get("modelId") == MODEL
                                for _, b in meshtest.downloads_of(origin, ids[n.name])),
                    30, f"{n.name}'s entry to reach n0")
                rtts[n.name] = time.monotonic() - t
            status, body = origin.post("/download/start", {
                "targetNodeId": ids[origin.name], "modelId": MODEL, "revision": "main"})
            self.assertIn(status, (200, 202), body)
            state_converge = wait_downloads(m.nodes, ids.values(), MODEL, "DownloadCompleted",
                                            90)

            sus0 = total(m.nodes, "meshd_swim_suspicions_total")
            ref0 = total(m.nodes, "meshd_swim_refutations_total")
            hold = scaled(25)
            until = time.monotonic() + hold
            while time.monotonic() < until:
                self.check_no_death(m, epochs)
                time.sleep(1)
            self.check_no_death(m, epochs)
            # Whatever was suspected was refuted: everyone alive everywhere.
            settle = m.wait_converged(m.nodes, timeout=30)
            deaths = total(m.nodes, "meshd_swim_deaths_declared_total")
            suspicions = total(m.nodes, "meshd_swim_suspicions_total")
            refutations = total(m.nodes, "meshd_swim_refutations_total")
            self.assertEqual(deaths, 0, "a member was declared dead under delay")
            if suspicions > 0:
                self.assertGreater(refutations, 0, "suspicions were never refuted")
            wait_downloads(m.nodes, ids.values(), MODEL, "DownloadCompleted", 30)
            cpu1 = cpu_of(m.nodes)
            indirect = total(m.nodes, "meshd_swim_indirect_probes_total")
            failed = total(m.nodes, "meshd_swim_probes_failed_total")
            health = {n.name: fault_metric(n, "meshd_swim_health") for n in m.nodes}

            # The delay really was there, within its bounds.
            held = {n.name: fault_metric(n, "meshd_test_faults_messages_total", what="held")
                    for n in m.nodes}
            for n in m.nodes:
                self.assertGreater(held[n.name], 0, f"{n.name} held nothing")
                self.assertEqual(fault_metric(n, "meshd_test_faults_messages_total",
                                              what="dropped"), 0)
            self.assertLessEqual(fault_metric(m.nodes[0], "meshd_test_faults_max_delay_ms"), 150)
            self.assertLessEqual(fault_metric(slow, "meshd_test_faults_max_delay_ms"), 600)
            self.assertGreater(fault_metric(slow, "meshd_test_faults_max_delay_ms"), 150)

            # Slower still, changed at run time: the slow node's round trips
            # now reach the probe interval, so probes to and from it fail and
            # suspicions are raised. Each must be refuted; none may become a
            # death or a restart.
            sus1, ref1 = suspicions, refutations
            with open(os.path.join(slow.home, "test-faults"), "w") as f:
                f.write(VERY_SLOW + "\n")
            slow.signal(signal.SIGHUP)
            meshtest.wait_until(lambda: fault_metric(slow, "meshd_test_faults_delay_ms") == 900,
                                10, "the slow node's new delay")
            hold2 = scaled(10)
            until = time.monotonic() + hold2
            while time.monotonic() < until:
                self.check_no_death(m, epochs)
                time.sleep(1)
            self.check_no_death(m, epochs)
            settle2 = m.wait_converged(m.nodes, timeout=30)
            self.assertEqual(total(m.nodes, "meshd_swim_deaths_declared_total"), 0,
                             "a member was declared dead with a 900 ms slow node")
            self.assertGreater(fault_metric(slow, "meshd_test_faults_max_delay_ms"), 600)
            sus2 = total(m.nodes, "meshd_swim_suspicions_total") - sus1
            ref2 = total(m.nodes, "meshd_swim_refutations_total") - ref1
            failed2 = total(m.nodes, "meshd_swim_probes_failed_total") - failed
            health2 = fault_metric(slow, "meshd_swim_health")

            # Switched off at run time: the lines stop holding messages.
            for n in m.nodes:
                with open(os.path.join(n.home, "test-faults"), "w") as f:
                    f.write("off\n")
                n.signal(signal.SIGHUP)
            meshtest.wait_until(
                lambda: all(fault_metric(n, "meshd_test_faults_delay_ms") == 0 and
                            fault_metric(n, "meshd_test_faults_held") == 0 for n in m.nodes),
                10, "every line to be off and empty")
            before = {n.name: fault_metric(n, "meshd_test_faults_messages_total", what="held")
                      for n in m.nodes}
            sent_before = total(m.nodes, "meshd_swim_messages_sent_total")
            time.sleep(3)
            self.assertGreater(total(m.nodes, "meshd_swim_messages_sent_total"), sent_before)
            for n in m.nodes:
                self.assertEqual(fault_metric(n, "meshd_test_faults_messages_total",
                                              what="held"), before[n.name])
            m.wait_converged(m.nodes, timeout=30)

            cpu = {k: cpu1[k] - cpu0[k] for k in cpu1}
            figure("delay_join_converge_seconds", join_seconds, "s")
            for name, rtt in rtts.items():
                figure(f"delay_command_roundtrip_n0_to_{name}"
                       f"{'_slow' if name == slow.name else ''}_seconds", rtt, "s")
            figure("delay_downloads_converge_seconds", state_converge, "s")
            figure("delay_hold_seconds", hold, "s")
            figure("delay_suspicions", int(suspicions - sus0))
            figure("delay_suspicions_total", int(suspicions))
            figure("delay_refutations", int(refutations - ref0))
            figure("delay_refutations_total", int(refutations))
            figure("delay_deaths_declared", int(deaths))
            figure("delay_indirect_probes", int(indirect))
            figure("delay_probes_failed", int(failed))
            figure("delay_health_score_max", int(max(health.values())))
            figure("delay_settle_seconds", settle, "s")
            figure("delay_very_slow_hold_seconds", hold2, "s")
            figure("delay_very_slow_suspicions", int(sus2))
            figure("delay_very_slow_refutations", int(ref2))
            figure("delay_very_slow_probes_failed", int(failed2))
            figure("delay_very_slow_node_health", int(health2))
            figure("delay_very_slow_settle_seconds", settle2, "s")
            figure("delay_messages_held", int(sum(held.values())))
            figure("delay_slow_node_max_delay_ms",
                   int(fault_metric(slow, "meshd_test_faults_max_delay_ms")), "ms")
            figure("delay_cpu_seconds_max_node", max(cpu.values()), "s")
            figure("delay_cpu_seconds_slow_node", cpu[slow.name], "s")


if __name__ == "__main__":
    meshtest.main()
