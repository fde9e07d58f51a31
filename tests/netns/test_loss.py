"""Scenario 4: 10% and 20% packet loss on all links (nftables numgen random
drop on every host's input) with the lan profile. At 10% no member is
declared dead; at 20% the deaths are counted and printed. The rules' own
counters show how many packets were dropped. Datagrams travel over UDP here
(no RDMA; --udp on by default), so a lost packet is a lost probe or ack,
which indirect probes and the fallback ping over TCP cover. Afterwards the
view reconverges at every node's latest epoch. Each phase lasts 40 s at CI
length (MESH_SCENARIO_SCALE=7.5 gives the five minutes of the full run)."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from scenario import NetMesh, figure, scaled  # noqa: E402
import meshtest  # noqa: E402


def deaths(nodes):
    return sum(meshtest.metric_sum(n.metrics(), "meshd_swim_deaths_declared_total")
               for n in nodes)


def suspicions(nodes):
    return sum(meshtest.metric_sum(n.metrics(), "meshd_swim_suspicions_total") for n in nodes)


class Loss(unittest.TestCase):
    def run_loss(self, m, pct, seconds):
        base, sbase = deaths(m.nodes), suspicions(m.nodes)
        m.cluster.loss(pct)
        end = time.monotonic() + seconds
        dead_seen = 0
        dropped = 0
        try:
            while time.monotonic() < end:
                for n in m.nodes:
                    n.alive()
                views = m.views(m.nodes)
                dead_seen = max(dead_seen, sum(1 for v in views.values()
                                               for st, _ in v.values() if st == "dead"))
                time.sleep(1)
            dropped = sum(m.cluster.dropped(m.host_of(n)) for n in m.nodes)
        finally:
            m.cluster.loss(0)
        # The fault was there: the rules dropped packets.
        self.assertGreater(dropped, 0, f"no packet dropped at {pct}% loss")
        figure(f"loss{pct}_packets_dropped", dropped)
        return deaths(m.nodes) - base, suspicions(m.nodes) - sbase, dead_seen

    def test_loss(self):
        with NetMesh(5, args=["--profile", "lan"]) as m:
            m.start()
            m.wait_converged(timeout=60)
            seconds = scaled(40)
            d10, s10, seen10 = self.run_loss(m, 10, seconds)
            figure("loss_phase_seconds", seconds, "s")
            figure("loss10_deaths_declared", int(d10))
            figure("loss10_suspicions", int(s10))
            c10 = m.wait_converged(m.nodes, timeout=120)
            figure("loss10_reconverge_seconds", c10, "s")
            d20, s20, seen20 = self.run_loss(m, 20, seconds)
            figure("loss20_deaths_declared", int(d20))
            figure("loss20_suspicions", int(s20))
            figure("loss20_dead_in_view_max", seen20)
            c20 = m.wait_converged(m.nodes, timeout=120)
            figure("loss20_reconverge_seconds", c20, "s")
            self.assertEqual(d10, 0, "a member was declared dead at 10% loss")
            self.assertEqual(seen10, 0)


if __name__ == "__main__":
    meshtest.main()
