"""Busy node: three nodes on loopback; one downloads a model of several GiB
from the stand-in Hub at full speed (meshd fsyncs every file), then deletes
it. Throughout, sampled every ~100 ms: its control API answers every
GET /node_id within a second, its epoch never changes, and no peer ever
holds it dead. Prints the suspicions its peers raised and its loop lag
p50/p99/max (meshd_loop_lag_seconds, which must be exported).

Once with --profile thunderbolt (probes every 200 ms, 100 ms timeout) and
once with --profile lan.

Size: MESH_BUSY_WEIGHTS files of MESH_BUSY_WEIGHT_SIZE each (default
2 x 1GiB, sized for CI; run by hand with more, e.g.
MESH_BUSY_WEIGHTS=8 MESH_BUSY_WEIGHT_SIZE=4GiB). The data goes to
MESH_BUSY_DIR (default: the system's temp folder) and is removed.
"""
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import busy  # noqa: E402
import meshtest  # noqa: E402

MODEL = "acme/busy"
MODEL_DIR = "acme--busy"
WEIGHTS = int(os.environ.get("MESH_BUSY_WEIGHTS", "2"))
WEIGHT_SIZE = busy.env_size("MESH_BUSY_WEIGHT_SIZE", 1 << 30)
TMP = os.environ.get("MESH_BUSY_DIR") or None


class BusyNode(unittest.TestCase):
    def run_profile(self, profile):
        total = WEIGHTS * WEIGHT_SIZE
        free = shutil.disk_usage(TMP or tempfile.gettempdir()).free
        if free < total + (1 << 30):
            self.skipTest(f"test_busy_node skipped: {total} bytes needed, {free} free")
        hub = meshtest.Hub(repo=MODEL, weights=WEIGHTS, weight_size=WEIGHT_SIZE)
        root = tempfile.mkdtemp(prefix="meshbusy-", dir=TMP)
        mesh = meshtest.LocalMesh(3, args=["--profile", profile, "--hf-endpoint", hub.url],
                                  root=root)
        ok = False
        try:
            mesh.start()
            mesh.wait_converged(timeout=30)
            node = mesh.nodes[1]
            peers = [mesh.nodes[0], mesh.nodes[2]]
            # At 20 MB/s (a slow disk, a sanitizer build) and then some.
            problems = busy.run_and_judge(node, peers, MODEL,
                                          os.path.join(node.home, "models", MODEL_DIR), total,
                                          f"busy_{profile}", busy.figure,
                                          60 + total / 20e6)
            self.assertEqual(problems, [], "\n".join(problems))
            ok = True
        finally:
            if not ok:
                for n in mesh.nodes:
                    print(f"--- {n.name} log tail\n{n.log_tail(20)}", file=sys.stderr)
            # The model's GiB go whatever happened; a failed run keeps the
            # logs only.
            if not ok:
                for n in mesh.nodes:
                    shutil.rmtree(os.path.join(n.home, "models"), ignore_errors=True)
                print(f"kept logs in {root}", file=sys.stderr)
            mesh.close(keep_on_failure=not ok)
            hub.close()

    def test_thunderbolt(self):
        self.run_profile("thunderbolt")

    def test_lan(self):
        self.run_profile("lan")


if __name__ == "__main__":
    meshtest.main()
