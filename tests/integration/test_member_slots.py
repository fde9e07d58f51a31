"""Throwaway identities that hold the swarm key fill a node's connection
slots and never join its view; members still join it and keep their slots.

meshd tells its transport who the members are (the view: alive and suspect),
so this runs real meshd processes: a seed with 12 slots, a quarter of them
kept for members and a 1 s grace to join, and 16 throwaway identities
(`transport_peer hold`) dialling it. 9 of them fit the non-members' share;
the rest are closed as their handshakes end (member_reserve). Two nodes then
join through the seed: the first past the grace takes the slot of the oldest
throwaway (unjoined), and all three form one view that stays whole while the
throwaways keep trying.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import meshtest  # noqa: E402

PEER = os.path.join(meshtest.BUILD, "tests", "transport_peer")
MAX = 12
SHARE = MAX - MAX // 4  # non-members' share with --member-reserve 25
THROWAWAYS = 16
SLOTS = ["--max-connections", str(MAX), "--member-reserve", "25", "--unjoined-grace", "1s",
         # Everyone here is 127.0.0.1: the per-source cap is not what is tested.
         "--max-connections-per-source", "64", "--profile", "thunderbolt"]


def drops(node, reason):
    return meshtest.metric_sum(node.metrics(), "meshd_drops_total", reason=reason)


class MemberSlots(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(PEER):
            self.skipTest("transport_peer not built")
        self.root = tempfile.mkdtemp(prefix="meshtest-slots-")
        self.psk = os.path.join(self.root, "swarm.key")
        meshtest.keygen_psk(self.psk)
        self.nodes = []
        self.hold = None
        self.addCleanup(self.cleanup)

    def cleanup(self):
        if self.hold is not None and self.hold.poll() is None:
            self.hold.send_signal(signal.SIGTERM)
            try:
                self.hold.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.hold.kill()
                self.hold.wait()
        if self.hold is not None:
            self.hold.stdout.close()
        for n in self.nodes:
            n.kill9()
        shutil.rmtree(self.root, ignore_errors=True)

    def node(self, name, join=()):
        n = meshtest.Node(name, self.root, f"127.0.0.1:{meshtest.free_port()}", join=join,
                          psk=self.psk, args=SLOTS)
        self.nodes.append(n)
        return n.start()

    def test_throwaways_do_not_lock_members_out(self):
        seed = self.node("seed")
        port = seed.listen.rsplit(":", 1)[1]
        self.hold = subprocess.Popen(
            [PEER, "hold", "--psk", self.psk, "--connect", f"/ip4/127.0.0.1/tcp/{port}",
             "--count", str(THROWAWAYS)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.assertEqual(self.hold.stdout.readline().decode().strip(), f"holding {THROWAWAYS}")
        # The share fills; the rest are refused as their handshakes end.
        meshtest.wait_until(
            lambda: drops(seed, "member_reserve") >= THROWAWAYS - SHARE, 15,
            "throwaways past the share refused")
        m = seed.metrics()
        self.assertLessEqual(meshtest.metric_sum(m, "meshd_transport_connections_open"), MAX)
        # Nobody joined: the seed alone is alive in its view.
        self.assertEqual(meshtest.metric_sum(m, "meshd_members", state="alive"), 1)

        # Members join all the same.
        t0 = time.monotonic()
        join = [f"127.0.0.1:{port}"]
        a = self.node("a", join)
        b = self.node("b", join)
        ids = {n.node_id() for n in self.nodes}

        def one_view():
            for n in self.nodes:
                alive = {p for p, (st, _) in n.member_states().items() if st == "alive"}
                if alive != ids:
                    return False
            return True

        meshtest.wait_until(one_view, 20, "seed, a and b in one view")
        print(f"figure: join_seconds_with_slots_full = {time.monotonic() - t0:.2f}")
        self.assertGreaterEqual(drops(seed, "unjoined"), 1)

        # And they keep their slots while the throwaways keep trying: the
        # view stays whole over several graces.
        until = time.monotonic() + 4
        while time.monotonic() < until:
            self.assertTrue(one_view(), "a member lost its place in the view")
            time.sleep(0.2)
        m = seed.metrics()
        self.assertLessEqual(meshtest.metric_sum(m, "meshd_transport_connections_open"), MAX)
        print("figure: seed drops member_reserve = %d, unjoined = %d, conn_limit = %d" % (
            drops(seed, "member_reserve"), drops(seed, "unjoined"), drops(seed, "conn_limit")))
        self.assertEqual(seed.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
