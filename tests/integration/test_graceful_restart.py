"""Graceful restarts never split a cluster.

The operations guide's two-node setup: n0 started without --join, n1 with
--join n0. A graceful restart (SIGTERM: a leave, then a start) of n0, then
of n1, then of both at once: one view again within 5 s each time. Then n1 is
restarted with no --join at all and finds n0 from the members kept in its
store; and a node whose own address is in its --join list (one list shared
by every node) stops dialling itself.
"""
import os
import sys
import time
import unittest

import meshtest

VIEW_WITHIN = 5.0


class GracefulRestart(unittest.TestCase):
    def setUp(self):
        self.mesh = meshtest.LocalMesh(2)
        self.addCleanup(self.mesh.close)
        self.mesh.start()
        self.mesh.wait_converged(15)

    def restart(self, *nodes):
        for n in nodes:
            self.assertEqual(n.stop(), 0, f"{n.name} did not stop cleanly")
        t0 = time.monotonic()
        for n in nodes:
            n.start()
        self.mesh.wait_converged(VIEW_WITHIN + 5)
        took = time.monotonic() - t0
        names = "+".join(n.name for n in nodes)
        print(f"figure: one_view_after_restart_of_{names}_seconds = {took:.2f}")
        self.assertLess(took, VIEW_WITHIN, f"one view took {took:.2f} s after restarting {names}")

    def test_restarts_never_split(self):
        n0, n1 = self.mesh.nodes
        self.restart(n0)
        self.restart(n1)
        self.restart(n0, n1)
        # The members are kept in the store: n1 comes back without --join.
        n1.join = []
        self.restart(n1)
        m = n1.metrics()
        self.assertGreaterEqual(
            meshtest.metric_sum(m, "meshd_connmgr_entries", role="remembered")
            + meshtest.metric_sum(m, "meshd_connmgr_entries", role="member"), 1)
        # And n0, never given --join, finds n1 the same way after both stop.
        self.restart(n0, n1)

    def test_join_list_naming_self(self):
        n0, n1 = self.mesh.nodes
        # One list for every node, as configuration management writes it.
        n0.join = [f"127.0.0.1:{self.mesh.ports[0]}", f"127.0.0.1:{self.mesh.ports[1]}"]
        n0.stop()
        n0.start()
        self.mesh.wait_converged(VIEW_WITHIN + 5)

        def self_dials():
            return meshtest.metric_sum(n0.metrics(), "meshd_connmgr_dials_total", role="seed")
        # The seed naming n0 itself is tried once, then never again.
        meshtest.wait_until(lambda: self_dials() >= 2, 5, "both seeds dialled")
        before = self_dials()
        time.sleep(1.5)  # a window for redials that must not happen
        self.assertEqual(self_dials(), before, "a seed was redialled while its peer was up")


if __name__ == "__main__":
    meshtest.main()
