"""The transport across processes: streams from 1 byte to frame-max arrive
intact and in order; a wrong swarm key and a mismatched /p2p/ ID are refused
and counted; the server keeps serving honest peers throughout."""

import os
import shutil
import sys
import unittest

import meshtest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import transport_peer as tc  # noqa: E402


class TransportCrossProcess(unittest.TestCase):
    def setUp(self):
        self.dir = tc.tmpdir()
        self.psk = tc.keygen(self.dir)
        self.other_psk = tc.keygen(self.dir, "other.key")
        self.server = tc.Server(self.psk)
        self.addCleanup(self.cleanup)

    def cleanup(self):
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def ping(self, addr, count=20, psk=None, timeout_ms=20000):
        return tc.client("ping", "--psk", psk or self.psk, "--connect", addr,
                         "--count", str(count), "--max-size", str(1 << 20),
                         "--seed", "7", "--timeout", str(timeout_ms))

    def test_streams_intact_and_in_order(self):
        # The first message is exactly frame-max, the second 1 byte; the
        # client checks every echo byte for byte and in order.
        rc, out = self.ping(self.server.addr, count=30)
        self.assertEqual(rc, 0, out)
        self.assertIn("ok 30", out)
        c = self.server.counters()
        self.assertEqual(c["handshakes_ok"], 1)
        self.assertEqual(sum(c["dropped"].values()), 0, c)

    def test_wrong_swarm_key_refused_and_counted(self):
        rc, out = self.ping(self.server.addr, count=1, psk=self.other_psk, timeout_ms=1500)
        self.assertNotEqual(rc, 0)
        self.assertTrue(any(l.startswith("failed") for l in out), out)
        c = self.server.counters()
        self.assertGreaterEqual(c["dropped"]["bad_psk"], 1, c)
        self.assertEqual(c["handshakes_ok"], 0)
        rc, out = self.ping(self.server.addr, count=5)
        self.assertEqual(rc, 0, out)

    def test_mismatched_peer_id_refused_and_counted(self):
        other = tc.Server(self.psk)
        try:
            wrong = self.server.plain_addr + "/p2p/" + other.addr.split("/p2p/")[1]
            rc, out = self.ping(wrong, count=1, timeout_ms=1500)
            self.assertNotEqual(rc, 0)
            mine = tc.client_counters(out)
            self.assertGreaterEqual(mine["dropped"]["peer_id_mismatch"], 1, mine)
            self.assertEqual(mine["handshakes_ok"], 0)
        finally:
            other.stop()
        rc, out = self.ping(self.server.addr, count=5)
        self.assertEqual(rc, 0, out)

    def test_clean_stop(self):
        rc, out = self.ping(self.server.addr, count=2)
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.server.stop(), 0)


if __name__ == "__main__":
    meshtest.main()
