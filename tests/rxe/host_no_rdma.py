"""On a machine without RDMA (the build host: no rdma_rxe, no device): the
same meshd binary runs on TCP and says why in one line; with --transport rdma
it refuses to start and says why; with --transport tcp it says RDMA is off.

Needs MESHD (and MESH_TEST_SRCDIR for tests/lib). Runs on the host, not in
the VM (scripts/rxe-test runs it before booting).
"""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.environ.get("MESH_TEST_SRCDIR",
                                               os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "lib"))
import meshtest  # noqa: E402


def lines_with(path, text):
    with open(path, encoding="utf-8", errors="replace") as f:
        return [ln for ln in f if text in ln]


class NoRdma(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="no-rdma-")
        self.psk = os.path.join(self.root, "swarm.key")
        meshtest.keygen_psk(self.psk)

    def node(self, name, *args):
        return meshtest.Node(name, self.root, f"127.0.0.1:{meshtest.free_port()}", psk=self.psk,
                             args=list(args))

    def test_auto_runs_on_tcp_and_says_why_once(self):
        a = self.node("a")
        b = self.node("b")
        b.join = [a.listen]
        try:
            a.start()
            b.start()
            meshtest.wait_until(
                lambda: a.member_states().get(b.node_id(), ("?",))[0] == "alive", 30,
                "b alive in a's view")
            # Datagrams over UDP beside TCP, or TCP alone: never RDMA.
            used = {m.get("transport") for m in a.members() if not m.get("self")}
            self.assertTrue(used and used <= {"tcp", "udp"}, used)
            for n in (a, b):
                found = lines_with(n.log_path, "RDMA not used")
                self.assertEqual(len(found), 1, found)
        finally:
            a.kill9()
            b.kill9()

    def test_tcp_says_rdma_is_off(self):
        a = self.node("t", "--transport", "tcp")
        try:
            a.start()
            self.assertEqual(len(lines_with(a.log_path, "RDMA off (--transport tcp)")), 1)
            self.assertEqual(lines_with(a.log_path, "RDMA not used"), [])
        finally:
            a.kill9()

    def test_rdma_required_refuses_to_start(self):
        a = self.node("r", "--transport", "rdma")
        p = subprocess.run(a.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
        out = p.stdout.decode("utf-8", "replace")
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn("--transport rdma:", out)
        self.assertRegex(out, r"no RDMA (support|device)|cannot list RDMA devices")


if __name__ == "__main__":
    unittest.main(verbosity=2)
