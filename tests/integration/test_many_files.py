"""A model of 10,000 files on a real node: it downloads, is inspected at the
next start as complete (no request reaches the Hub: neither a file list nor
a file), and deletes completely. No entry count makes a model look
incomplete, and deletes and inspections of any size finish in slices.
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

MODEL = "acme/many"
SMALL = 10000
# config.json, README.md, tokenizer/vocab.txt, one weight file, the small ones.
FILES = 3 + 1 + SMALL


def entry(node, nid):
    ents = meshtest.downloads_of(node, nid)
    return ents[0] if ents else None


def count_files(path):
    n = 0
    for _, _, files in os.walk(path):
        n += sum(1 for f in files if f not in (".meshd-owned", ".meshd-files"))
    return n


class ManyFiles(unittest.TestCase):
    def test_ten_thousand_files(self):
        hub = meshtest.Hub(repo=MODEL, weights=1, weight_size=4096,
                           args=["--small-files", str(SMALL), "--page-size", "1000"])
        mesh = meshtest.LocalMesh(1, args=["--hf-endpoint", hub.url, "--files-at-once", "16"])
        ok = False
        try:
            mesh.start()
            n = mesh.nodes[0]
            nid = n.node_id()
            t0 = time.monotonic()
            status, body = n.post("/download/start",
                                  {"targetNodeId": nid, "modelId": MODEL, "revision": "main"})
            self.assertIn(status, (200, 202), body)
            meshtest.wait_until(lambda: (entry(n, nid) or ("",))[0] == "DownloadCompleted", 90,
                                "the download of 10,000 files to complete")
            print(f"figure: download_{FILES}_files_s = {time.monotonic() - t0:.1f}")
            done = n.state()["downloads"][nid][0]["DownloadCompleted"]
            path = done["modelDirectory"]
            self.assertTrue(os.path.isabs(path), path)
            self.assertEqual(count_files(path), FILES)

            # Restart: the completed entry is inspected on disk and found
            # complete, without asking the Hub for anything.
            n.stop()
            hub.reset()
            t0 = time.monotonic()
            n.start()
            meshtest.wait_until(
                lambda: any("verified on disk after restart" in e["message"]
                            for e in meshtest.journal_of(n)), 30,
                "the inspection after the restart")
            print(f"figure: inspect_{FILES}_files_s = {time.monotonic() - t0:.1f}")
            self.assertEqual(entry(n, nid)[0], "DownloadCompleted")
            slices = meshtest.metric_sum(n.metrics(), "meshd_disk_slices_total")
            print(f"figure: inspect_{FILES}_files_slices = {slices:.0f}")
            self.assertGreaterEqual(slices, 3, "the inspection ran in one piece")
            j = meshtest.journal_of(n)
            self.assertFalse(any("incomplete on disk" in e["message"] for e in j), j[-5:])
            self.assertEqual(hub.stats().get("total", 0), 0, "the Hub was asked again")

            # Delete: every entry goes, in as many slices as it takes.
            slices0 = meshtest.metric_sum(n.metrics(), "meshd_disk_slices_total")
            t0 = time.monotonic()
            status, body = n.delete(f"/download/{nid}/{MODEL}")
            self.assertIn(status, (200, 202), body)
            meshtest.wait_until(lambda: entry(n, nid) is None, 60, "the delete to complete")
            print(f"figure: delete_{FILES}_files_s = {time.monotonic() - t0:.1f}")
            slices = meshtest.metric_sum(n.metrics(), "meshd_disk_slices_total") - slices0
            print(f"figure: delete_{FILES}_files_slices = {slices:.0f}")
            # More entries than one slice's budget (4,096): several slices.
            self.assertGreaterEqual(slices, 3)
            self.assertFalse(os.path.exists(path))
            self.assertEqual(hub.stats().get("total", 0), 0)
            ok = True
        finally:
            mesh.close(keep_on_failure=not ok)
            hub.close()


if __name__ == "__main__":
    unittest.main()
