"""Two downloads that together do not fit: the second fails at once.

The models folder is a 96 MiB ext4 image. Two revisions of one model, each
48 MiB, are started together (the default runs two downloads at once).
Each fits the free space alone, both do not: the second's check subtracts
what the first still has to write, and it fails before its first byte,
with the numbers (needed, free, reserved). The first completes.
"""
import os
import re
import subprocess
import unittest

import meshtest

MODEL = "acme/big"
WEIGHT = 24 * 1024 * 1024  # two weights: 48 MiB a revision


class SpaceReserved(unittest.TestCase):
    def test_second_download_fails_at_once_with_the_numbers(self):
        name = "test_second_download_fails_at_once_with_the_numbers"
        hub = meshtest.Hub(repo=MODEL, weights=2, weight_size=WEIGHT,
                           args=["--revision", "main", "--revision", "v2"])
        # Slow enough that the first is still running when the second is checked.
        hub.fault({"kind": "slow", "rate": 8 * 1024 * 1024, "path": "*", "count": -1})
        mesh = meshtest.LocalMesh(1, args=["--hf-endpoint", hub.url])
        n = mesh.nodes[0]
        models = os.path.join(n.home, "models")
        mounted = False
        ok = False
        try:
            meshtest.mount_small_ext4(self, name, os.path.join(mesh.root, "models.img"), models,
                                      96 * 1024 * 1024)
            mounted = True
            free = os.statvfs(models)
            free_bytes = free.f_bavail * free.f_frsize
            self.assertGreater(free_bytes, 2 * WEIGHT + 1024 * 1024)  # one fits
            self.assertLess(free_bytes, 4 * WEIGHT)  # two do not
            mesh.start()
            nid = n.node_id()
            for rev in ("main", "v2"):
                st, body = n.post("/download/start",
                                  {"targetNodeId": nid, "modelId": MODEL, "revision": rev})
                self.assertEqual(st, 200, body)

            def by_rev():
                return {e.get("revision"): (kind, e) for kind, e in meshtest.downloads_of(n, nid)}

            meshtest.wait_until(
                lambda: any(k == "DownloadFailed" for k, _ in by_rev().values()), 30,
                "one download to fail on space")
            states = by_rev()
            failed = [(r, e) for r, (k, e) in states.items() if k == "DownloadFailed"]
            self.assertEqual(len(failed), 1, states)
            rev, e = failed[0]
            msg = e["errorMessage"]
            print(f"figure: error = {msg}")
            m = re.search(r"needs (\d+) bytes .*; (\d+) bytes are free, of which (\d+) are "
                          r"reserved for downloads under way: (\d+) usable", msg)
            self.assertIsNotNone(m, msg)
            need, free_now, reserved, usable = (int(x) for x in m.groups())
            self.assertGreaterEqual(need, 2 * WEIGHT)
            self.assertGreaterEqual(reserved, 2 * WEIGHT)  # the other revision, all of it
            self.assertEqual(usable, free_now - reserved)
            self.assertLess(usable, need)
            self.assertGreater(free_now, need)  # alone, it would have fitted
            # Failed before its first byte: nothing of it on disk.
            self.assertEqual(e["downloaded"]["inBytes"], 0)
            other = "v2" if rev == "main" else "main"
            meshtest.wait_until(lambda: by_rev()[other][0] == "DownloadCompleted", 60,
                                f"{other} to complete")
            ok = True
        finally:
            n.kill9()
            if mounted:
                subprocess.run(["umount", models], check=False)
            hub.close()
            mesh.close(keep_on_failure=not ok)


if __name__ == "__main__":
    meshtest.main()
