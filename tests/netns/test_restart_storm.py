"""Scenario 2: restart storms. Every node is killed (-9) and restarted with
the same home in turn, several times, including two at once. Each restart
comes back under a higher epoch; views converge to every node at its latest
epoch; once converged no node shows any member at an older epoch (no stale
entry survives a dissemination round); and no own entry is lost: the model
each node completed before the storm is still completed, once, everywhere."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from scenario import NetMesh, figure, SCALE, wait_downloads  # noqa: E402
import meshtest  # noqa: E402

MODEL = "acme/tiny"


class RestartStorm(unittest.TestCase):
    def test_storm(self):
        rounds = max(2, min(6, int(2 * SCALE)))
        with NetMesh(5, hub=dict(repo=MODEL, weights=2, weight_size=64 * 1024)) as m:
            m.start()
            m.wait_converged(timeout=60)
            ids = m.download_everywhere(MODEL)
            hub_before = m.the_hub.stats()["total"]
            worst = 0.0
            restarts = 0
            for r in range(rounds):
                for i, n in enumerate(m.nodes):
                    before = n.epoch()
                    # Two at once: the next node goes down too on odd steps.
                    pair = m.nodes[(i + 1) % len(m.nodes)] if i % 2 else None
                    pair_before = pair.epoch() if pair else None
                    n.kill9()
                    if pair:
                        pair.kill9()
                    n.start()
                    if pair:
                        pair.start()
                    restarts += 2 if pair else 1
                    self.assertGreater(n.epoch(), before)
                    if pair:
                        self.assertGreater(pair.epoch(), pair_before)
                    self.assertEqual(n.node_id(), ids[n.name])
                    worst = max(worst, m.wait_converged(m.nodes, timeout=90))
                    final = {x.node_id(): x.epoch() for x in m.nodes}
                    for x in m.nodes:
                        for pid, (st, ep) in x.member_states().items():
                            if pid in final:
                                self.assertEqual(ep, final[pid],
                                                 f"{x.name} sees {pid[-8:]} at an old epoch")
            settle = wait_downloads(m.nodes, ids.values(), MODEL, "DownloadCompleted", 120)
            # Nothing was downloaded again: completed entries stayed completed.
            refetched = m.the_hub.stats()["total"] - hub_before
            figure("restart_rounds", rounds)
            figure("restart_count", restarts)
            figure("restart_converge_worst_seconds", worst, "s")
            figure("restart_downloads_settle_seconds", settle, "s")
            figure("restart_hub_requests_after_storm", refetched)


if __name__ == "__main__":
    meshtest.main()
