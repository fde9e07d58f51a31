"""Downloads on a real node:

- a download interrupted by kill -9 of meshd resumes from its .partial files
  after the restart (Range requests, no byte fetched twice beyond the resume
  points) and completes with verified files under the new epoch;
- a delete never asks the Hub for a file list.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

MODEL = "acme/resume"
MODEL_DIR = "acme--resume"
SIZE = 2 * 1024 * 1024


class DownloadResume(unittest.TestCase):
    def test_kill9_resume_and_delete_without_file_list(self):
        hub = meshtest.Hub(repo=MODEL, weights=2, weight_size=SIZE)
        hub.fault({"kind": "slow", "rate": 200000, "path": "*", "count": -1})
        mesh = meshtest.LocalMesh(1, args=["--hf-endpoint", hub.url])
        ok = False
        try:
            mesh.start()
            n = mesh.nodes[0]
            nid = n.node_id()
            epoch = n.epoch()
            model_dir = os.path.join(n.home, "models", MODEL_DIR)
            st, body = n.post("/download/start",
                              {"targetNodeId": nid, "modelId": MODEL, "revision": "main"})
            self.assertEqual(st, 200, body)
            meshtest.wait_until(lambda: meshtest.partial_bytes(model_dir) > 256 * 1024, 30,
                                "partial files to grow")
            n.kill9()
            have = meshtest.partial_bytes(model_dir)
            self.assertGreater(have, 0)
            hub.reset()  # full speed from here on
            n.start()
            self.assertEqual(n.epoch(), epoch + 1)
            meshtest.wait_until(lambda: meshtest.first_entry(n, nid)[0] == "DownloadCompleted", 60,
                                "the resumed download to complete")
            name, e = meshtest.first_entry(n, nid)
            self.assertEqual(e["epoch"], epoch + 1)
            stats = hub.stats()
            self.assertGreaterEqual(stats["range_requests"], 1, stats)
            # Every file is in place, none left partial, and the weights hash
            # to what the Hub lists.
            self.assertEqual(meshtest.partial_bytes(model_dir), 0)
            files = sorted(f for f in os.listdir(model_dir) if f.endswith(".safetensors"))
            self.assertEqual(len(files), 2, os.listdir(model_dir))
            for f in files:
                self.assertEqual(os.path.getsize(os.path.join(model_dir, f)), SIZE)
            self.assertEqual(e["downloaded"]["inBytes"], e["total"]["inBytes"])
            # The bytes fetched after the restart are about what was missing:
            # the partial files were resumed, not fetched again.
            after = meshtest.metric_sum(n.metrics(), "meshd_download_bytes_total")
            total = e["total"]["inBytes"]
            self.assertLessEqual(after, total - have + 64 * 1024,
                                 f"fetched {after} after the restart; {have} were on disk")
            print(f"figure: resumed_from_bytes = {have}")
            print(f"figure: fetched_after_restart_bytes = {after:.0f} of {total}")

            # A delete acts on the directory and never asks for a file list.
            trees = hub.requests_matching("/tree/")
            st, body = n.delete(f"/download/{nid}/{MODEL}")
            self.assertEqual(st, 200, body)
            meshtest.wait_until(lambda: meshtest.first_entry(n, nid)[0] is None, 10, "the entry to go")
            self.assertFalse(os.path.exists(model_dir))
            self.assertEqual(hub.requests_matching("/tree/"), trees)
            ok = True
        finally:
            mesh.close(keep_on_failure=not ok)
            hub.close()


if __name__ == "__main__":
    meshtest.main()
