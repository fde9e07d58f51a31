"""Scenario 9: a node restarted without --join finds its cluster from its
store. Three nodes: A without --join, B and C with --join A. C is stopped
gracefully (SIGTERM: it leaves) and started again with the same home but no
--join at all. The last members it knew, kept in its store, are dialled at
start because its view is empty: within 5 s C sees A and B alive at their
current epochs, and the three are in one view again.

While C is down and after, C's namespace drops every new connection to its
port (nftables, `ct state new`): A and B may keep redialling C (a left
member may come back under a new epoch), but only C's own dials can bring
it back here, so what is tested is that C finds its old members, not that
they find C."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))
from scenario import PORT, NetMesh, figure  # noqa: E402
from test_graceful_restart import BOUND, describe, graceful_restart  # noqa: E402
import meshtest  # noqa: E402


class StoreRejoin(unittest.TestCase):
    def test_rejoin_without_join(self):
        with NetMesh(3, multiaddr=True) as m:
            m.start()
            a, b, c = m.nodes
            self.assertEqual(c.join, [m.addr_of(m.host_of(a))])
            m.wait_converged(timeout=30)
            before = c.epoch()
            # The restart drops --join: nothing on the command line names
            # a member any more.
            c.join = []
            self.assertNotIn("--join", c.command())
            hc = m.host_of(c)
            hc.exec("nft", "add", "rule", "inet", "meshfault", "in", "iifname", hc.veth,
                    "tcp", "dport", str(PORT), "ct", "state", "new", "counter", "drop")
            t0 = graceful_restart([c])
            self.assertGreater(c.epoch(), before)
            want = {a.node_id(): a.epoch(), b.node_id(): b.epoch()}

            def c_sees_both():
                seen = c.member_states()
                return all(seen.get(pid) == ("alive", ep) for pid, ep in want.items())
            try:
                meshtest.wait_until(c_sees_both, BOUND, "C to see A and B alive")
                seen_after = time.monotonic() - t0
                figure("store_rejoin_c_sees_members_seconds", seen_after, "s")
                meshtest.wait_until(lambda: m.converged(m.nodes), BOUND - seen_after,
                                    "one view of A, B and C")
            except meshtest.Timeout as e:
                figure("store_rejoin_inbound_dials_dropped", m.cluster.dropped(hc))
                self.fail(f"{e}: {describe(m, m.nodes)}")
            took = time.monotonic() - t0
            figure("store_rejoin_one_view_seconds", took, "s")
            figure("store_rejoin_inbound_dials_dropped", m.cluster.dropped(hc))
            self.assertLessEqual(took, BOUND)


if __name__ == "__main__":
    unittest.main()
