"""Scenario 5: a stalled node (SIGSTOP for longer than the suspicion
timeout) is declared dead by the others; after SIGCONT it comes back, by
refutation at its epoch or, once it learns it was declared dead, under a new
epoch (the daemon renews its epoch in place, same process). Views converge to every node at
its latest epoch and its download state returns: the model it completed
before the stall is shown completed, once, at every node."""
import os
import signal
import sys
import time
import unittest

import meshtest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from scenario import NetMesh, figure, scaled, wait_downloads  # noqa: E402

MODEL = "acme/tiny"


class Stall(unittest.TestCase):
    def test_stop_cont(self):
        with NetMesh(4, hub=dict(repo=MODEL, weights=2, weight_size=64 * 1024)) as m:
            m.start()
            m.wait_converged(timeout=60)
            victim = m.nodes[3]
            others = m.nodes[:3]
            vid = victim.node_id()
            vepoch = victim.epoch()
            vpid = victim.pid
            status, body = victim.post("/download/start", {"targetNodeId": vid,
                                                           "modelId": MODEL, "revision": "main"})
            self.assertIn(status, (200, 202), body)
            wait_downloads(m.nodes, [vid], MODEL, "DownloadCompleted", 60)
            t0 = time.monotonic()
            victim.signal(signal.SIGSTOP)
            m.wait_seen_as(others, vid, {"dead"}, timeout=60)
            detect = time.monotonic() - t0
            stalled = time.monotonic() + scaled(3)
            while time.monotonic() < stalled:
                for n in others:
                    n.alive()
                time.sleep(0.2)
            victim.signal(signal.SIGCONT)
            t1 = time.monotonic()
            m.wait_converged(m.nodes, timeout=120)
            back = time.monotonic() - t1
            self.assertEqual(victim.node_id(), vid)
            self.assertEqual(victim.pid, vpid, "the stalled node must renew in place, not restart")
            self.assertGreaterEqual(victim.epoch(), vepoch)
            state_back = wait_downloads(m.nodes, [vid], MODEL, "DownloadCompleted", 60)
            figure("stall_detect_seconds", detect, "s")
            figure("stall_recover_seconds", back, "s")
            figure("stall_download_state_back_seconds", state_back, "s")
            figure("stall_victim_epoch_change", victim.epoch() - vepoch)


if __name__ == "__main__":
    meshtest.main()
