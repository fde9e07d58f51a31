"""Scenario 1: the departed-owner regression, across namespaces.

A node starts a download of a large model (two weights of 1.5 GB declared;
the Hub, in its own namespace, trickles so the entry stays ongoing), is
killed with -9 and its home, models included, deleted: its peer ID never
returns. The survivors show its entry abandoned, never attempt a download or
a delete for it (no journal record, no coordinator action, no request at the
Hub), collect it after gc-grace, and meanwhile their journals, stores and
CPU stay flat."""
import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from scenario import NetMesh, figure  # noqa: E402
import meshtest  # noqa: E402

GC_GRACE = 6.0
MODEL = "acme/huge"
WEIGHT = 1500 * 1000 * 1000


def actions(n):
    mt = n.metrics()
    return (meshtest.metric_sum(mt, "meshd_coord_actions_total")
            + meshtest.metric_sum(mt, "meshd_download_requests_total"))


class DepartedOwner(unittest.TestCase):
    def test_departed_owner(self):
        args = ["--profile", "thunderbolt", "--gc-grace", f"{int(GC_GRACE * 1000)}ms"]
        with NetMesh(3, args=args, hub=dict(repo=MODEL, weights=2, weight_size=WEIGHT)) as m:
            hub = m.the_hub
            hub.fault({"kind": "slow", "rate": 8192, "path": "*", "count": -1})
            m.start()
            m.wait_converged(timeout=60)
            a, b, c = m.nodes
            cid = c.node_id()
            status, body = c.post("/download/start",
                                  {"targetNodeId": cid, "modelId": MODEL, "revision": "main"})
            self.assertIn(status, (200, 202), body)

            def ongoing(n):
                ents = meshtest.downloads_of(n, cid)
                return ents and all(s == "DownloadOngoing" for s, _ in ents)
            for n in (a, b):
                meshtest.wait_until(lambda n=n: ongoing(n), 30, f"{n.name} to see it ongoing")
            total = max(body["total"]["inBytes"] for _, body in meshtest.downloads_of(a, cid))
            c.kill9()
            shutil.rmtree(c.home)
            t_kill = time.monotonic()
            hub_at_kill = hub.stats()["total"]
            act0 = {n.name: actions(n) for n in (a, b)}

            def abandoned(n):
                ents = meshtest.downloads_of(n, cid)
                return ents and all(body.get("abandoned") for _, body in ents)
            for n in (a, b):
                meshtest.wait_until(lambda n=n: abandoned(n), 30,
                                    f"{n.name} to show the entries abandoned")
            t_abandoned = time.monotonic()
            detect = t_abandoned - t_kill
            journals = {n.name: len(meshtest.journal_of(n)) for n in (a, b)}
            stores = {n.name: n.file_size("mesh.db") for n in (a, b)}
            cpu = {n.name: n.cpu_seconds() for n in (a, b)}

            def collected():
                gone = all(not meshtest.downloads_of(n, cid) for n in (a, b))
                for n in (a, b):
                    n.alive()
                return gone
            meshtest.wait_until(collected, GC_GRACE + 20, "the entries to be collected")
            t_collected = time.monotonic()
            self.assertGreaterEqual(t_collected - t_kill, GC_GRACE - 0.5,
                                    "collected before gc-grace")
            hub_requests = hub.stats()["total"] - hub_at_kill
            self.assertEqual(hub_requests, 0, "a survivor talked to the Hub for the departed node")
            growth = {}
            for n in (a, b):
                self.assertEqual(actions(n), act0[n.name], f"{n.name} acted for the departed node")
                entries = meshtest.journal_of(n)
                growth[n.name] = len(entries) - journals[n.name]
                for e in entries[:growth[n.name]]:
                    self.assertEqual(e.get("kind"), "collect", f"{n.name} journaled {e}")
                for e in entries:
                    if e.get("modelId") == MODEL:
                        self.assertIn(e.get("kind"), ("collect",), e)
                self.assertLessEqual(growth[n.name], 1)
                self.assertLessEqual(n.file_size("mesh.db") - stores[n.name], 64 * 1024,
                                     f"{n.name}'s store grew")
            window = time.monotonic() - t_abandoned
            cpu_pct = {n.name: 100 * (n.cpu_seconds() - cpu[n.name]) / window for n in (a, b)}
            for n in (a, b):
                self.assertLess(cpu_pct[n.name], 5.0, f"{n.name} was busy")
                self.assertGreaterEqual(
                    meshtest.metric_sum(n.metrics(), "meshd_gc_collected_total"), 1)
            figure("departed_declared_bytes", int(total), "B")
            figure("departed_detect_seconds", detect, "s")
            figure("departed_collected_after_kill_seconds", t_collected - t_kill, "s")
            figure("departed_hub_requests_after_departure", hub_requests)
            for n in (a, b):
                figure(f"departed_{n.name}_journal_growth", growth[n.name])
                figure(f"departed_{n.name}_store_growth_bytes",
                       n.file_size("mesh.db") - stores[n.name], "B")
                figure(f"departed_{n.name}_cpu_percent", cpu_pct[n.name], "%")


if __name__ == "__main__":
    meshtest.main()
