"""Scenario 8: a rolling upgrade. Five nodes (the first without --join, the
others with --join to it, as the operations guide writes them) each complete
a download from the stand-in Hub; then every node in turn is restarted
gracefully (SIGTERM, wait for the exit, start again with the same home and
arguments). After each restart the five are in one view again (all alive,
each at the others' current epochs) within 5 s, and every node shows every
node's completed entry, once, within the same 5 s (a member in /members
with its entries missing from /downloads is an entry lost to its readers).
After the roll no entry is lost for good (60 s at most) and nothing was
fetched from the Hub again."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))
from scenario import NetMesh, figure, wait_downloads  # noqa: E402
from test_graceful_restart import BOUND, describe, graceful_restart  # noqa: E402
import meshtest  # noqa: E402

MODEL = "acme/tiny"


class RollingUpgrade(unittest.TestCase):
    def test_roll(self):
        with NetMesh(5, multiaddr=True,
                     hub=dict(repo=MODEL, weights=2, weight_size=64 * 1024)) as m:
            m.start()
            m.wait_converged(timeout=60)
            ids = m.download_everywhere(MODEL)
            hub_before = m.the_hub.stats()["total"]
            worst = worst_dl = 0.0
            missing = []  # restarts after which an entry stayed missing past the bound
            for n in m.nodes:
                with self.subTest(restart=n.name):
                    before = n.epoch()
                    t0 = graceful_restart([n])
                    self.assertGreater(n.epoch(), before)
                    self.assertEqual(n.node_id(), ids[n.name])
                    try:
                        meshtest.wait_until(lambda: m.converged(m.nodes), BOUND,
                                            f"one view after restarting {n.name}")
                    except meshtest.Timeout:
                        self.fail(f"no single view {BOUND:.0f} s after restarting {n.name}: "
                                  f"{describe(m, m.nodes)}")
                    took = time.monotonic() - t0
                    worst = max(worst, took)
                    figure(f"rolling_{n.name}_one_view_seconds", took, "s")
                    self.assertLessEqual(took, BOUND)
                # /members and /downloads agree: a member in the view shows
                # its entries, within the same bound.
                with self.subTest(entries_after=n.name):
                    try:
                        wait_downloads(m.nodes, ids.values(), MODEL, "DownloadCompleted",
                                       BOUND)
                        took = time.monotonic() - t0
                        worst_dl = max(worst_dl, took)
                        figure(f"rolling_{n.name}_all_entries_seconds", took, "s")
                    except meshtest.Timeout as e:
                        figure(f"rolling_{n.name}_all_entries_seconds", -1, "s")
                        missing.append(n.name)
                        self.fail(f"{BOUND:.0f} s after restarting {n.name}: {e}")
            # Whatever the roll did, no entry is lost for good.
            m.wait_converged(timeout=30)
            settle = wait_downloads(m.nodes, ids.values(), MODEL, "DownloadCompleted", 60)
            refetched = m.the_hub.stats()["total"] - hub_before
            figure("rolling_one_view_worst_seconds", worst, "s")
            figure("rolling_all_entries_worst_seconds", worst_dl if not missing else -1, "s")
            figure("rolling_downloads_settle_after_roll_seconds", settle, "s")
            figure("rolling_hub_requests_after_roll", refetched)
            self.assertEqual(refetched, 0, "a completed download was fetched again")


if __name__ == "__main__":
    unittest.main()
