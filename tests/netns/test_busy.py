"""Scenario: a busy node. Three nodes in their own network namespaces, the
stand-in Hub in a fourth, all over veth links; one node downloads a model
of several GiB from the Hub at full speed (meshd fsyncs every file),
then deletes it. Throughout, sampled every ~100 ms: its control API answers
every GET /node_id within a second, its epoch never changes, no peer ever
holds it dead. Prints the suspicions its peers raised and its loop lag
p50/p99/max (meshd_loop_lag_seconds, which must be exported). Once with the
thunderbolt profile, once with lan.

Size: MESH_BUSY_WEIGHTS files of MESH_BUSY_WEIGHT_SIZE (default 2 x 1GiB, as
tests/integration/test_busy_node.py on loopback).
"""
import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import busy  # noqa: E402
import meshtest  # noqa: E402
from scenario import NetMesh, figure  # noqa: E402

MODEL = "acme/busy"
MODEL_DIR = "acme--busy"
WEIGHTS = int(os.environ.get("MESH_BUSY_WEIGHTS", "2"))
WEIGHT_SIZE = busy.env_size("MESH_BUSY_WEIGHT_SIZE", 1 << 30)


class Busy(unittest.TestCase):
    def run_profile(self, profile):
        total = WEIGHTS * WEIGHT_SIZE
        hub = dict(repo=MODEL, weights=WEIGHTS, weight_size=WEIGHT_SIZE)
        with NetMesh(3, args=["--profile", profile], hub=hub) as m:
            try:
                self.busy_run(m, profile, total)
            finally:
                # A failed run keeps the homes for inspection, not the GiBs.
                for n in m.nodes:
                    shutil.rmtree(os.path.join(n.home, "models"), ignore_errors=True)

    def busy_run(self, m, profile, total):
        m.start()
        m.wait_converged(timeout=60)
        node = m.nodes[1]
        peers = [m.nodes[0], m.nodes[2]]
        problems = busy.run_and_judge(node, peers, MODEL,
                                      os.path.join(node.home, "models", MODEL_DIR), total,
                                      f"busy_{profile}", figure, 60 + total / 20e6)
        self.assertEqual(problems, [], "\n".join(problems))

    def test_thunderbolt(self):
        self.run_profile("thunderbolt")

    def test_lan(self):
        self.run_profile("lan")


if __name__ == "__main__":
    meshtest.main()
