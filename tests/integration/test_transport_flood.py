"""1,000 connections sending random bytes at one transport endpoint: the
process stays alive, its memory stays bounded, every hostile connection is
refused and counted, and an honest peer is served during and after."""

import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import time
import unittest

import meshtest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import transport_peer as tc  # noqa: E402

FLOOD = 1000
# Memory the server may grow by while flooded: the cap of 256 connections
# times a handshake's bounded buffers is far below this.
RSS_GROWTH_MAX_KIB = 64 * 1024
REFUSALS = ("handshake_malformed", "bad_psk", "handshake_timeout", "truncated",
            "conn_limit", "bad_signature", "source_limit")


class TransportFlood(unittest.TestCase):
    def setUp(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = FLOOD + 256
        if soft < want:
            if hard != resource.RLIM_INFINITY and hard < want:
                self.skipTest("RLIMIT_NOFILE hard limit %d is below %d" % (hard, want))
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        self.dir = tc.tmpdir()
        self.psk = tc.keygen(self.dir)
        self.server = tc.Server(self.psk, "--handshake-timeout", "1000")
        self.socks = []
        self.addCleanup(self.cleanup)

    def cleanup(self):
        for s in self.socks:
            s.close()
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def honest(self, count=10):
        return subprocess.Popen(
            [tc.PEER, "ping", "--psk", self.psk, "--connect", self.server.addr, "--count",
             str(count), "--max-size", "65536", "--seed", "3", "--timeout", "30000"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def refused(self):
        c = self.server.counters()
        return sum(c["dropped"][k] for k in REFUSALS), c

    def test_flood_of_random_bytes(self):
        rng = random.Random(1234)
        host, port = self.server.plain_addr.split("/")[2], int(self.server.plain_addr.split("/")[4])
        rss_before = self.server.rss_kib()
        before, _ = self.refused()
        honest = self.honest(count=20)
        for i in range(FLOOD):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((host, port))
            except BlockingIOError:
                pass
            self.socks.append(s)
        # Three rounds of random bytes on every socket still open.
        for _ in range(3):
            for s in self.socks:
                try:
                    s.send(rng.randbytes(rng.randint(1, 2048)))
                except OSError:
                    pass
            time.sleep(0.05)
        # The honest peer, dialling in the middle of the flood, is served.
        out, _ = honest.communicate(timeout=60)
        self.assertEqual(honest.returncode, 0, out)
        self.assertTrue(self.server.alive())
        # Every hostile connection ends refused and counted.
        tc.wait_until(lambda: self.refused()[0] - before >= FLOOD, 30,
                      "%d refusals" % FLOOD, interval=0.2)
        _, c = self.refused()
        self.assertGreaterEqual(c["connections_in"], FLOOD)
        self.assertLessEqual(c["connections_open"], 256 + 1)
        rss_after = self.server.rss_kib()
        self.assertLess(rss_after - rss_before, RSS_GROWTH_MAX_KIB,
                        "RSS grew from %d to %d KiB" % (rss_before, rss_after))
        for s in self.socks:
            s.close()
        self.socks = []
        # And after it, too.
        again = self.honest(count=5)
        out, _ = again.communicate(timeout=60)
        self.assertEqual(again.returncode, 0, out)
        self.assertEqual(self.server.stop(), 0)


if __name__ == "__main__":
    meshtest.main()
