"""Scenario 7: graceful restarts of the operations guide's two-node setup.

The first node starts without --join, the second with --join to it (each in
its own namespace), both written as the guide writes them
(`--listen /ip4/IP/tcp/PORT --join /ip4/IP/tcp/PORT`: the seed then reads the
same as the first node's advertised address), and once more as IP:PORT.
Each node is restarted the way `systemctl restart` does it: SIGTERM (a
graceful leave), wait for the exit, start again with the same home and the
same arguments. First the first node, then the second, then
both at once. After each, both must be in one view again (both alive, each
at the other's current epoch) within 5 s of the restart.

The first restart is the one that used to split the pair for good: the
second node marked the first `left`, forgot its address and never dialled it
again, and the first had no seed to dial."""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from scenario import NetMesh, figure  # noqa: E402
import meshtest  # noqa: E402

BOUND = 5.0  # seconds from the restart to one view (the bound)


def graceful_restart(nodes):
    """SIGTERM to every node in nodes, wait for every exit, start them again
    with the same home and arguments. Returns the monotonic time just before
    the first start (the clock the bound runs from)."""
    for n in nodes:
        n.signal(signal.SIGTERM)
    for n in nodes:
        rc = n.proc.wait(15)
        if rc != 0:
            raise AssertionError(f"{n.name} exited with {rc} on SIGTERM:\n{n.log_tail()}")
    t0 = time.monotonic()
    for n in nodes:
        n.start(wait=False)
    for n in nodes:
        meshtest.wait_until(lambda: n.alive() and n.get("/node_id")[0] == 200, 20,
                            f"{n.name}'s API")
    return t0


def describe(m, nodes):
    """What each node sees of the others, for a failure message."""
    ids = {n.node_id(): n.name for n in nodes}
    out = []
    for n in nodes:
        seen = {ids.get(pid, pid[-8:]): st for pid, st in n.member_states().items()
                if pid != n.node_id()}
        out.append(f"{n.name} (epoch {n.epoch()}) sees {seen}")
    return "; ".join(out)


class GracefulRestart(unittest.TestCase):
    def test_graceful_restarts(self):
        # The guide's form first (the one that split the pair), then
        # IP:PORT, where the seed reads differently from the address the
        # first node advertises.
        for multiaddr in (True, False):
            with self.subTest(form="multiaddr" if multiaddr else "ip:port"):
                self.restarts(multiaddr)

    def restarts(self, multiaddr):
        form = "" if multiaddr else "_hostport"
        with NetMesh(2, multiaddr=multiaddr) as m:
            m.start()
            first, second = m.nodes
            self.assertEqual(first.join, [])
            self.assertEqual(len(second.join), 1)
            m.wait_converged(timeout=30)
            steps = [("first", [first]), ("second", [second]), ("both", [first, second])]
            for name, which in steps:
                with self.subTest(restart=name):
                    before = {n.name: n.epoch() for n in which}
                    t0 = graceful_restart(which)
                    for n in which:
                        self.assertGreater(n.epoch(), before[n.name],
                                           f"{n.name} came back under its old epoch")
                    try:
                        meshtest.wait_until(lambda: m.converged(m.nodes), BOUND,
                                            f"one view after restarting {name}")
                    except meshtest.Timeout:
                        for n in m.nodes:
                            print(f"--- {n.name} log tail\n{n.log_tail(20)}", file=sys.stderr)
                        self.fail(f"no single view {BOUND:.0f} s after restarting {name}: "
                                  f"{describe(m, m.nodes)}")
                    took = time.monotonic() - t0
                    figure(f"graceful_restart{form}_{name}_one_view_seconds", took, "s")
                    self.assertLessEqual(took, BOUND)


if __name__ == "__main__":
    unittest.main()
