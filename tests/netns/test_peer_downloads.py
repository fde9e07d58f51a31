"""Scenario: download once per cluster, across namespaces.

Five nodes, one per namespace, the stand-in Hub on its own host. The first
node downloads a model from the Hub; then the four others download it at
the same time. The Hub serves one copy of the weights in all (each weight
file requested once, by the first node): the four others take every byte
from members (at first only the first node, then also whoever completed),
and their files are verified against the Hub's hashes. Prints each node's
time."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from scenario import NetMesh, figure  # noqa: E402
import meshtest  # noqa: E402

MODEL = "acme/cluster"
WEIGHTS = 3
SIZE = 32 * 1024 * 1024


def completed(n):
    ents = meshtest.downloads_of(n, n.node_id())
    return bool(ents) and ents[0][0] == "DownloadCompleted"


class PeerDownloads(unittest.TestCase):
    def test_once_per_cluster(self):
        with NetMesh(5, hub=dict(repo=MODEL, weights=WEIGHTS, weight_size=SIZE)) as m:
            hub = m.the_hub
            m.start()
            m.wait_converged(timeout=60)
            first, others = m.nodes[0], m.nodes[1:]
            fid = first.node_id()
            t0 = time.monotonic()
            st, body = first.post("/download/start",
                                  {"targetNodeId": fid, "modelId": MODEL, "revision": "main"})
            self.assertEqual(st, 200, body)
            meshtest.wait_until(lambda: completed(first), 60, "the first node's download")
            figure("peer_downloads_first_from_hub_seconds", time.monotonic() - t0, "s")
            # Everyone sees the first node's entry completed before asking.
            meshtest.wait_until(lambda: all(
                any(s == "DownloadCompleted" for s, _ in meshtest.downloads_of(n, fid))
                for n in others), 20, "the others to see the completed entry")
            t1 = time.monotonic()
            for n in others:
                st, body = n.post("/download/start", {"targetNodeId": n.node_id(),
                                                      "modelId": MODEL, "revision": "main"})
                self.assertEqual(st, 200, body)
            took = {}
            while len(took) < len(others):
                for n in others:
                    if n.name not in took and completed(n):
                        took[n.name] = time.monotonic() - t1
                if time.monotonic() - t1 > 90:
                    self.fail(f"not completed after 90 s: {sorted(set(x.name for x in others) - set(took))}")
                time.sleep(0.1)
            for name, s in sorted(took.items()):
                figure(f"peer_downloads_{name}_seconds", s, "s")
            stats = hub.stats()
            weights = sum(c for p, c in stats["requests"].items() if ".safetensors" in p)
            self.assertEqual(weights, WEIGHTS, stats)
            total = meshtest.downloads_of(first, fid)[0][1]["total"]["inBytes"]
            hub_bytes = sum(meshtest.metric_sum(n.metrics(), "meshd_download_source_bytes_total",
                                                source="hub") for n in m.nodes)
            peer_bytes = sum(meshtest.metric_sum(n.metrics(), "meshd_download_source_bytes_total",
                                                 source="peer") for n in others)
            # One copy from the Hub; four copies between members.
            self.assertEqual(hub_bytes, total)
            self.assertEqual(peer_bytes, 4 * total)
            figure("peer_downloads_hub_bytes", int(hub_bytes))
            figure("peer_downloads_peer_bytes", int(peer_bytes))
            figure("peer_downloads_model_bytes", total)
            for n in others:
                e = meshtest.downloads_of(n, n.node_id())[0][1]
                self.assertEqual(e["sources"]["hub"]["inBytes"], 0, e)


if __name__ == "__main__":
    unittest.main()
