"""The regression this project exists for.

Two nodes; a third creates download entries, is killed with -9 and its home
deleted, so its peer ID never returns. The survivors show its entries as
abandoned, never download or delete anything for the departed owner (the Hub
sees no request, their journals no action), collect the entries after
gc-grace, and meanwhile their journals and stores do not grow and their CPU
stays idle.
"""
import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

GC_GRACE = 6.0
MODEL = "acme/tiny"


class DepartedOwner(unittest.TestCase):
    def test_departed_owner_is_collected_never_acted_upon(self):
        hub = meshtest.Hub(repo=MODEL, weights=2, weight_size=256 * 1024)
        # Slow every transfer so the departed node's download is still
        # running (an "ongoing" entry) when it dies.
        hub.fault({"kind": "slow", "rate": 8192, "path": "*", "count": -1})
        mesh = meshtest.LocalMesh(3, args=["--profile", "thunderbolt",
                                           "--gc-grace", f"{int(GC_GRACE * 1000)}ms",
                                           "--hf-endpoint", hub.url])
        ok = False
        try:
            mesh.start()
            mesh.wait_converged(timeout=30)
            a, b, c = mesh.nodes
            cid = c.node_id()
            status, body = c.post("/download/start",
                                  {"targetNodeId": cid, "modelId": MODEL, "revision": "main"})
            self.assertIn(status, (200, 202), body)
            # The survivors see the entry, replicated from its owner.
            for n in (a, b):
                meshtest.wait_until(lambda n=n: meshtest.downloads_of(n, cid), 15,
                                    f"{n.name} to see {c.name}'s entry")
            meshtest.wait_until(
                lambda: any(s == "DownloadOngoing" for s, _ in meshtest.downloads_of(a, cid)),
                20, "the entry to be ongoing")

            c.kill9()
            shutil.rmtree(c.home)
            t_kill = time.monotonic()
            hub_at_kill = hub.stats()["total"]

            def abandoned(n):
                ents = meshtest.downloads_of(n, cid)
                return ents and all(body.get("abandoned") for _, body in ents)
            for n in (a, b):
                meshtest.wait_until(lambda n=n: abandoned(n), 15,
                                    f"{n.name} to show the entries abandoned")
            t_abandoned = time.monotonic()
            # Baselines once the departure is known.
            journals = {n.name: len(meshtest.journal_of(n)) for n in (a, b)}
            # What the survivors' stores say of downloads: their own entries
            # and the journal. (The store also keeps the last known members,
            # which changes when the view does; that is not acting for the
            # owner.)
            stores = {n.name: (n.store_rows("entries"), n.store_rows("journal")) for n in (a, b)}
            cpu = {n.name: n.cpu_seconds() for n in (a, b)}

            # Until collection: shown, never acted upon.
            while True:
                gone = [not meshtest.downloads_of(n, cid) for n in (a, b)]
                if all(gone):
                    break
                self.assertLess(time.monotonic() - t_abandoned, GC_GRACE + 15,
                                "entries not collected after gc-grace")
                time.sleep(0.2)
            t_collected = time.monotonic()
            collected_after = t_collected - t_abandoned
            # Not before the grace period (allowing for detection lag).
            self.assertGreaterEqual(t_collected - t_kill, GC_GRACE - 0.5)

            # The Hub saw nothing after the owner died.
            hub_requests = hub.stats()["total"] - hub_at_kill
            self.assertEqual(hub_requests, 0, "a survivor talked to the Hub for the departed node")
            for n in (a, b):
                # No journal record: the survivors did nothing for the owner.
                self.assertEqual(len(meshtest.journal_of(n)), journals[n.name])
                for e in meshtest.journal_of(n):
                    self.assertNotEqual(e.get("modelId"), MODEL, e)
                self.assertEqual((n.store_rows("entries"), n.store_rows("journal")),
                                 stores[n.name], f"{n.name}'s store changed")
            # And they stayed idle: CPU over the whole grace period.
            idle_window = time.monotonic() - t_abandoned
            for n in (a, b):
                used = n.cpu_seconds() - cpu[n.name]
                print(f"figure: {n.name}_cpu_percent_while_abandoned = "
                      f"{100 * used / idle_window:.2f}")
                self.assertLess(used / idle_window, 0.05, f"{n.name} was busy")
            print(f"figure: collected_after_abandoned_seconds = {collected_after:.2f}")
            print(f"figure: hub_requests_after_departure = {hub_requests}")
            # The metrics agree.
            for n in (a, b):
                self.assertGreaterEqual(
                    meshtest.metric_sum(n.metrics(), "meshd_gc_collected_total"), 1)
            ok = True
        finally:
            if not ok:
                for n in mesh.nodes:
                    print(f"--- {n.name}\n{n.log_tail(20)}", file=sys.stderr)
            mesh.close(keep_on_failure=not ok)
            hub.close()


if __name__ == "__main__":
    meshtest.main()
