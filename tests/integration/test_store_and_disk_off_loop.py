"""Store and disk work off the event loop, on a real node:

- checking a completed model of 5,000 files in nested directories after a
  restart, and deleting it, each take several slices on the work pool
  (meshd_disk_slices_total) while the control API keeps answering: every
  GET /node_id made during the delete returns within a second;
- a store failure (injected with MESHD_TEST_STORE_FAIL) is counted
  (meshd_store_failures_total), the node keeps running and writing, and the
  journal it served from memory is exactly what the store holds: after a
  restart the same records come back with the same ids;
- a store far behind (every transaction held a second with
  MESHD_TEST_SLOW_STORE_MS) while sixty entries are started and cancelled
  twenty times over:
  writes of the same entry are coalesced, the backlog stays bounded, and
  once the store has caught up the database holds exactly the entries the
  node shows: no entry state is lost.
"""
import os
import sqlite3
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

MODEL = "acme/many"
MODEL_DIR = "acme--many"


def metric(node, name):
    return meshtest.metric_sum(node.metrics(), name)


class StoreAndDiskOffLoop(unittest.TestCase):
    def setUp(self):
        self.hub = meshtest.Hub(repo=MODEL, weights=2, weight_size=64 * 1024)

    def tearDown(self):
        self.hub.close()

    def download(self, n, nid):
        st, body = n.post("/download/start",
                          {"targetNodeId": nid, "modelId": MODEL, "revision": "main"})
        self.assertIn(st, (200, 202), body)
        meshtest.wait_until(lambda: meshtest.first_entry(n, nid)[0] == "DownloadCompleted", 30,
                            "the download to complete")

    def test_big_delete_in_slices_api_answers(self):
        mesh = meshtest.LocalMesh(1, args=["--hf-endpoint", self.hub.url])
        ok = False
        try:
            mesh.start()
            n = mesh.nodes[0]
            nid = n.node_id()
            self.download(n, nid)
            # 5,000 more files in 10 x 10 nested directories.
            top = os.path.join(n.home, "models", MODEL_DIR, "extra")
            files = 0
            for a in range(10):
                for b in range(10):
                    d = os.path.join(top, f"a{a}", f"b{b}")
                    os.makedirs(d)
                    for c in range(50):
                        with open(os.path.join(d, f"f{c}"), "wb") as f:
                            f.write(b"x")
                        files += 1
            self.assertEqual(files, 5000)
            # A restart checks the completed model on disk: that inspection
            # of 5,000 files goes in slices too, and finds it whole.
            n.stop()
            n.start()
            meshtest.wait_until(lambda: any("verified on disk" in e["message"]
                                            for e in meshtest.journal_of(n, 20)), 30,
                                "the model to be verified after the restart")
            self.assertEqual(meshtest.first_entry(n, nid)[0], "DownloadCompleted")
            verify_slices = metric(n, "meshd_disk_slices_total")
            print(f"figure: verify_slices = {verify_slices:.0f}")
            self.assertGreaterEqual(verify_slices, 2)
            slices_before = metric(n, "meshd_disk_slices_total")

            st, body = n.delete(f"/download/{nid}/{MODEL}")
            self.assertIn(st, (200, 202), body)
            times = []
            start = time.monotonic()
            while True:
                t0 = time.monotonic()
                st, _ = n.get("/node_id")
                times.append(time.monotonic() - t0)
                self.assertEqual(st, 200)
                if meshtest.first_entry(n, nid)[0] is None:
                    break
                if time.monotonic() - start > 60:
                    self.fail("the delete did not end within 60 s")
            took = time.monotonic() - start
            slices = metric(n, "meshd_disk_slices_total") - slices_before
            self.assertFalse(os.path.exists(os.path.join(n.home, "models", MODEL_DIR)))
            times.sort()
            print(f"figure: delete_5000_files_seconds = {took:.3f}")
            print(f"figure: delete_slices = {slices:.0f}")
            print(f"figure: node_id_requests_during_delete = {len(times)}")
            print(f"figure: node_id_seconds_max = {times[-1]:.4f} "
                  f"p50 = {times[len(times) // 2]:.4f}")
            # 5,000 files and 101 directories are more than one slice's
            # 4,096 entries, whatever the disk's speed.
            self.assertGreaterEqual(slices, 2)
            self.assertLess(times[-1], 1.0)
            # The slices ran as pool items: the pool counted them, and
            # nothing is left waiting once the delete reported.
            m = n.metrics()
            self.assertGreaterEqual(meshtest.metric_sum(m, "meshd_pool_items_total"), slices)
            self.assertEqual(meshtest.metric_sum(m, "meshd_pool_queued"), 0)
            self.assertGreater(meshtest.metric_sum(m, "meshd_pool_threads"), 0)
            j = meshtest.journal_of(n)
            self.assertEqual(sum(1 for e in j if "deleted" in e["message"]), 1, j)
            ok = True
        finally:
            mesh.close(keep_on_failure=not ok)

    def test_store_failure_counted_node_goes_on(self):
        # A short journal, so that the in-memory copy must prune by count as
        # the store does.
        mesh = meshtest.LocalMesh(1, args=["--hf-endpoint", self.hub.url,
                                           "--journal-max-records", "6"])
        n = mesh.nodes[0]
        # The first statement of the first transaction fails, as a disk error.
        n.env["MESHD_TEST_STORE_FAIL"] = "1"
        ok = False
        try:
            mesh.start()
            nid = n.node_id()
            self.download(n, nid)
            meshtest.wait_until(lambda: metric(n, "meshd_store_failures_total") >= 1, 10,
                                "the injected store failure to be counted")
            self.assertGreater(metric(n, "meshd_store_transactions_total"), 0)
            self.assertEqual(n.get("/node_id")[0], 200)
            # More records than the bound: delete and download again.
            st, body = n.delete(f"/download/{nid}/{MODEL}")
            self.assertIn(st, (200, 202), body)
            meshtest.wait_until(lambda: meshtest.first_entry(n, nid)[0] is None, 20, "the entry to go")
            self.download(n, nid)
            self.assertIn("store write of", open(n.log_path, encoding="utf-8",
                                                  errors="replace").read())
            before = meshtest.journal_of(n)
            self.assertTrue(before, "the journal is empty")
            ids = [e["seq"] for e in before]
            self.assertEqual(ids, sorted(ids, reverse=True))
            self.assertEqual(len(set(ids)), len(ids))
            self.assertLessEqual(len(before), 6)
            # The served journal is the store's: once the node has stopped,
            # the database holds exactly those records (ids, times, messages).
            meshtest.wait_until(lambda: metric(n, "meshd_store_backlog_batches") == 0, 10,
                                "the store to catch up")
            self.assertEqual(metric(n, "meshd_journal_records"), len(before))
            n.stop()
            db = sqlite3.connect(os.path.join(n.home, "mesh.db"))
            rows = db.execute("SELECT id, text, at_ms FROM journal ORDER BY id DESC").fetchall()
            db.close()
            self.assertEqual(rows, [(e["seq"], e["message"], e["time"]) for e in before])
            # And a restart reads them back (the newest of them: the
            # restart's own records push the oldest out of the bound).
            n.env.pop("MESHD_TEST_STORE_FAIL")
            n.start()
            after = [e for e in meshtest.journal_of(n) if e["seq"] <= ids[0]]
            self.assertTrue(after)
            self.assertEqual([(e["seq"], e["message"], e["time"]) for e in after],
                             [(e["seq"], e["message"], e["time"]) for e in before[:len(after)]])
            self.assertEqual(metric(n, "meshd_store_failures_total"), 0)
            meshtest.wait_until(lambda: meshtest.first_entry(n, nid)[0] == "DownloadCompleted", 30,
                                "the entry to be verified again after the restart")
            print(f"figure: journal_records_kept_across_restart = {len(after)}")
            ok = True
        finally:
            mesh.close(keep_on_failure=not ok)

    def test_store_far_behind_loses_no_entry_state(self):
        # A Hub that takes connections and never answers: the entries stay
        # pending (the first two waiting for their file lists), so the only
        # writes are the commands' own.
        mesh = meshtest.LocalMesh(1, args=["--hf-endpoint", meshtest.silent_endpoint(self)])
        n = mesh.nodes[0]
        n.env["MESHD_TEST_SLOW_STORE_MS"] = "1000"
        # Fewer models than downloads the daemon runs at once (64), so that
        # none is refused for want of a slot and the state holds still.
        models = [f"acme/held{i:02d}" for i in range(60)]
        ok = False
        try:
            mesh.start()
            nid = n.node_id()
            start = time.monotonic()
            # Start and cancel twenty times, and start once more: dozens of
            # writes of every row (and journal records) while the store takes
            # a second a transaction, far more than 16 batches of 256 items.
            rounds = [("/download/start", "/download/cancel")] * 20 + [("/download/start",)]
            for paths in rounds:
                for path in paths:
                    for model in models:
                        st, body = n.post(path, {"targetNodeId": nid, "modelId": model,
                                                 "revision": "main"})
                        self.assertEqual(st, 200, (path, model, body))
            posted = time.monotonic() - start
            meshtest.wait_until(lambda: metric(n, "meshd_store_backlog_batches") == 0, 120,
                                "the store to catch up")
            m = n.metrics()
            coalesced = meshtest.metric_sum(m, "meshd_store_coalesced_total")
            deepest = meshtest.metric_sum(m, "meshd_store_backlog_max_batches")
            dropped = meshtest.metric_sum(m, "meshd_store_dropped_items_total")
            print(f"figure: posted_2460_commands_seconds = {posted:.1f}")
            print(f"figure: store_coalesced = {coalesced:.0f} backlog_max = {deepest:.0f} "
                  f"journal_records_dropped = {dropped:.0f}")
            self.assertGreater(coalesced, 0)
            # 16 batches, and the overflow ones that hold one write per own
            # entry (1,024) and the meta: bounded whatever the store's speed.
            self.assertLessEqual(deepest, 16 + 5)
            names = {1: "DownloadPending", 2: "DownloadOngoing", 3: "DownloadCompleted",
                     4: "DownloadFailed", 5: "DownloadDeleting"}  # coord/coord.h
            shown = {(e["modelId"], name) for name, e in meshtest.downloads_of(n, nid)}
            self.assertEqual({model for model, _ in shown}, set(models))
            n.stop()
            db = sqlite3.connect(os.path.join(n.home, "mesh.db"))
            rows = db.execute("SELECT model_id, status FROM entries").fetchall()
            db.close()
            self.assertEqual({(model, names[status]) for model, status in rows}, shown)
            ok = True
        finally:
            mesh.close(keep_on_failure=not ok)
    def test_many_waiting_downloads_stay_quiet(self):
        # 200 entries, far more than downloads at once, behind a Hub that
        # never answers: each waits its turn as pending; none is failed for
        # want of a slot, and once commanded the node writes nothing more.
        mesh = meshtest.LocalMesh(1, args=["--hf-endpoint", meshtest.silent_endpoint(self)])
        n = mesh.nodes[0]
        models = [f"acme/wait{i:03d}" for i in range(200)]
        ok = False
        try:
            mesh.start()
            nid = n.node_id()
            for model in models:
                st, body = n.post("/download/start",
                                  {"targetNodeId": nid, "modelId": model, "revision": "main"})
                self.assertEqual(st, 200, body)
            # The core hands out its actions at a bounded rate: wait until
            # every entry's size check has gone to the client.
            meshtest.wait_until(lambda: metric(n, "meshd_coord_actions_total") >= len(models),
                                60, "a size check for every entry")
            meshtest.wait_until(lambda: metric(n, "meshd_store_backlog_batches") == 0, 30,
                                "the store to catch up")
            before = metric(n, "meshd_store_transactions_total")
            journal = metric(n, "meshd_journal_records")
            time.sleep(3)  # a window in which nothing may be written
            self.assertEqual(metric(n, "meshd_store_transactions_total"), before)
            self.assertEqual(metric(n, "meshd_journal_records"), journal)
            states = {name for name, _ in meshtest.downloads_of(n, nid)}
            self.assertLessEqual(states, {"DownloadPending", "DownloadOngoing"}, states)
            log = open(n.log_path, encoding="utf-8", errors="replace").read()
            self.assertNotIn("too many downloads", log)
            ok = True
        finally:
            mesh.close(keep_on_failure=not ok)


if __name__ == "__main__":
    meshtest.main()
