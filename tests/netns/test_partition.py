"""Scenario 3: a 2|3 split for longer than the suspicion timeout, then healed.

Both sides carry on (each sees its own side alive and keeps working: a
deletion is made on one side during the split), the view reconverges to all
five at every node's latest epoch after the heal (a node the other side
declared dead comes back under a new epoch), and the download state
reconverges: every entry made before the split is shown once, completed,
the one deleted during the split is gone everywhere, nothing is duplicated.
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from scenario import NetMesh, figure, scaled, wait_downloads  # noqa: E402
import meshtest  # noqa: E402

MODEL = "acme/tiny"


class Partition(unittest.TestCase):
    def test_split_and_heal(self):
        with NetMesh(5, hub=dict(repo=MODEL, weights=2, weight_size=64 * 1024)) as m:
            hub = m.the_hub
            m.start()
            m.wait_converged(timeout=60)
            ids = m.download_everywhere(MODEL)
            epochs = {n.name: n.epoch() for n in m.nodes}
            a, b = m.nodes[:2], m.nodes[2:]
            ha = [m.host_of(n) for n in a]
            hb = [m.host_of(n) for n in b]
            t0 = time.monotonic()
            m.cluster.partition(ha, hb)
            # Each side declares the other side out of its view.
            for side, other in ((a, b), (b, a)):
                for o in other:
                    m.wait_seen_as(side, ids[o.name], {"dead", "absent"}, timeout=60)
            split_detect = time.monotonic() - t0
            # Both sides carry on: inside each side, all alive, and work goes on.
            m.wait_converged(a, timeout=30)
            m.wait_converged(b, timeout=30)
            status, body = a[0].delete(f"/download/{ids[a[0].name]}/{MODEL}")
            self.assertIn(status, (200, 202), body)
            meshtest.wait_until(lambda: not meshtest.downloads_of(a[1], ids[a[0].name]), 30,
                                "the deletion to reach the other node of its side")
            hold_until = time.monotonic() + scaled(10)
            while time.monotonic() < hold_until:
                for n in m.nodes:
                    n.alive()
                time.sleep(0.5)
            m.cluster.heal()
            t1 = time.monotonic()
            m.wait_converged(m.nodes, timeout=120)
            heal_converge = time.monotonic() - t1
            # Epochs only ever grow.
            for n in m.nodes:
                self.assertGreaterEqual(n.epoch(), epochs[n.name])
            # Download state: the deletion reached the far side; everything
            # else completed, exactly once per owner, at every node.
            others = [ids[n.name] for n in m.nodes[1:]]
            state_converge = wait_downloads(m.nodes, others, MODEL, "DownloadCompleted", 60)
            meshtest.wait_until(
                lambda: all(not meshtest.downloads_of(n, ids[a[0].name]) for n in m.nodes), 30,
                "the entry deleted during the split to be gone everywhere")
            restarted = sum(1 for n in m.nodes if n.epoch() > epochs[n.name])
            figure("partition_detect_seconds", split_detect, "s")
            figure("partition_heal_converge_seconds", heal_converge, "s")
            figure("partition_downloads_converge_seconds", state_converge, "s")
            figure("partition_nodes_under_new_epoch", restarted)
            figure("partition_hub_requests", hub.stats()["total"])


if __name__ == "__main__":
    meshtest.main()
