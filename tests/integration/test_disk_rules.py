"""The coordinator's disk rules on a real node:

- deleting a model whose directory is already gone succeeds once and ends;
- a directory that cannot be emptied (a read-only subdirectory: a read-only
  bind mount, which stops root too) gives a failed entry retried with capped
  backoff: the process stays up and the attempts stay few; once the cause is
  gone the delete completes;
- model IDs such as ../../etc or /abs are refused and nothing outside the
  models directory is touched;
- a download larger than the free space is refused before any file byte is
  fetched, with both numbers in the error.
Needs root for mount (tmpfs, read-only bind mounts).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

MODEL = "acme/tiny"
MODEL_DIR = "acme--tiny"


def entry(node, nid):
    ents = meshtest.downloads_of(node, nid)
    return ents[0] if ents else None


def mount(*args):
    subprocess.run(["mount", *args], check=True)


def umount(path):
    subprocess.run(["umount", "-l", path], check=False)


class DiskRules(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.fail("test_disk_rules needs root (tmpfs and read-only bind mounts): run as root")
        self.hub = meshtest.Hub(repo=MODEL, weights=2, weight_size=64 * 1024)
        self.mounts = []

    def tearDown(self):
        for m in reversed(self.mounts):
            umount(m)
        self.hub.close()

    def one_node(self, *args):
        mesh = meshtest.LocalMesh(1, args=["--hf-endpoint", self.hub.url, *args])
        mesh.start()
        return mesh, mesh.nodes[0]

    def download(self, n, nid):
        status, body = n.post("/download/start",
                              {"targetNodeId": nid, "modelId": MODEL, "revision": "main"})
        self.assertIn(status, (200, 202), body)
        meshtest.wait_until(lambda: (entry(n, nid) or ("",))[0] == "DownloadCompleted", 30,
                            "the download to complete")

    def test_delete_missing_dir_and_undeletable_dir(self):
        mesh, n = self.one_node()
        ok = False
        try:
            nid = n.node_id()
            models = os.path.join(n.home, "models")
            self.download(n, nid)
            self.assertTrue(os.path.isfile(os.path.join(models, MODEL_DIR, "config.json")))

            # 1. The directory is already gone: the delete succeeds, once.
            shutil.rmtree(os.path.join(models, MODEL_DIR))
            status, body = n.delete(f"/download/{nid}/{MODEL}")
            self.assertIn(status, (200, 202), body)
            meshtest.wait_until(lambda: entry(n, nid) is None, 10, "the entry to go")
            j = meshtest.journal_of(n)
            self.assertEqual(sum(1 for e in j if "deleted" in e["message"]), 1, j)
            self.assertFalse(any("delete of" in e["message"] and "failed" in e["message"]
                                 for e in j), j)

            # 2. A read-only subdirectory: the delete fails, retried with backoff.
            self.download(n, nid)
            sub = os.path.join(models, MODEL_DIR, "tokenizer")
            mount("--bind", sub, sub)
            self.mounts.append(sub)
            mount("-o", "remount,bind,ro", sub)
            status, body = n.delete(f"/download/{nid}/{MODEL}")
            self.assertIn(status, (200, 202), body)
            meshtest.wait_until(lambda: (entry(n, nid) or ("",))[0] == "DownloadFailed", 10,
                                "the delete to fail")
            name, e = entry(n, nid)
            self.assertRegex(e["errorMessage"], "Read-only|read-only")
            window = 12.0
            time.sleep(window)  # the observation window itself: attempts are counted over it
            n.alive()
            attempts = sum(1 for x in meshtest.journal_of(n)
                           if re.search(r"delete of .* failed", x["message"]))
            # 1 s doubling, capped: at most ~log2(window) + 2 attempts.
            print(f"figure: delete_attempts_in_{window:.0f}s = {attempts}")
            self.assertGreaterEqual(attempts, 2, "the failed delete was never retried")
            self.assertLessEqual(attempts, 6, "the failed delete is retried too often")
            # The cause goes away: the next retry completes the delete.
            umount(sub)
            self.mounts.remove(sub)
            meshtest.wait_until(lambda: entry(n, nid) is None, 40,
                                "the delete to complete after the mount is gone")
            self.assertFalse(os.path.exists(os.path.join(models, MODEL_DIR)))
            ok = True
        finally:
            mesh.close(keep_on_failure=not ok)

    def test_bad_model_ids_touch_nothing(self):
        mesh, n = self.one_node()
        ok = False
        try:
            nid = n.node_id()
            outside = tempfile.mkdtemp(prefix="outside-")
            marker = os.path.join(outside, "keep")
            open(marker, "w").close()
            for bad in ("../../etc", "/abs", "a/../b", "..", "org/name/extra", "a" * 300):
                status, body = n.post("/download/start",
                                      {"targetNodeId": nid, "modelId": bad, "revision": "main"})
                self.assertEqual(status, 400, (bad, body))
                self.assertIn("error", body)
            status, body = n.delete(f"/download/{nid}/..%2F..%2Fetc")
            self.assertIn(status, (400, 404), body)
            self.assertTrue(os.path.exists(marker))
            self.assertEqual(meshtest.downloads_of(n, nid), [])
            self.assertEqual(self.hub.stats()["total"], 0)
            shutil.rmtree(outside)
            ok = True
        finally:
            mesh.close(keep_on_failure=not ok)

    def test_download_bigger_than_free_space(self):
        root = tempfile.mkdtemp(prefix="smalldisk-")
        mount("-t", "tmpfs", "-o", "size=96k", "tmpfs", root)
        self.mounts.append(root)
        hub = meshtest.Hub(repo="acme/big", weights=2, weight_size=1024 * 1024)
        mesh = meshtest.LocalMesh(1, args=["--hf-endpoint", hub.url, "--models-dir", root])
        mesh.start()
        n = mesh.nodes[0]
        ok = False
        try:
            nid = n.node_id()
            status, body = n.post("/download/start",
                                  {"targetNodeId": nid, "modelId": "acme/big", "revision": "main"})
            self.assertIn(status, (200, 202), body)
            meshtest.wait_until(lambda: (entry(n, nid) or ("",))[0] == "DownloadFailed", 20,
                                "the oversized download to fail")
            _, e = entry(n, nid)
            msg = e["errorMessage"]
            numbers = re.findall(r"\d[\d.,]*\s*(?:[KMGT]i?B|bytes|B)", msg)
            self.assertGreaterEqual(len(numbers), 2, f"both sizes should be named: {msg}")
            # Not one byte of a file was fetched: only the file list.
            files = [p for p in hub.stats()["requests"] if "/resolve/" in p]
            self.assertEqual(files, [], hub.stats())
            print(f"figure: size_guard_message = {msg}")
            ok = True
        finally:
            mesh.close(keep_on_failure=not ok)
            hub.close()


if __name__ == "__main__":
    meshtest.main()
