"""Datagrams between meshd processes go over UDP: three nodes on loopback
converge with every peer's UDP path up, and the membership traffic shows in
the UDP transport's packet and byte counters. A fourth node with --udp off
still joins: the others' pings to it go unanswered, and they fall back to
TCP datagrams for it by themselves (counted)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402


def udp(node, name, **labels):
    return meshtest.metric_sum(node.metrics(), name, **labels)


class UdpDatagrams(unittest.TestCase):
    def test_over_udp_and_fallback(self):
        mesh = meshtest.LocalMesh(4, args=["--profile", "thunderbolt"])
        off = mesh.nodes[3]
        off.args = list(off.args) + ["--udp", "off"]
        ok = False
        try:
            for n in mesh.nodes[:3]:
                n.start()
            mesh.nodes = mesh.nodes[:3]
            mesh.wait_converged(timeout=30)
            on = list(mesh.nodes)
            meshtest.wait_until(
                lambda: all(udp(n, "meshd_udp_peers", path="up") == 2 for n in on), 15,
                "every UDP path up")
            before = [(udp(n, "meshd_transport_frames_total", transport="udp", dir="out"),
                       udp(n, "meshd_transport_bytes_total", transport="udp", dir="in"))
                      for n in on]
            meshtest.wait_until(
                lambda: all(udp(n, "meshd_transport_frames_total", transport="udp", dir="out")
                            >= before[i][0] + 10 for i, n in enumerate(on)), 20,
                "probes and acks sent over UDP")
            for i, n in enumerate(on):
                self.assertGreater(
                    udp(n, "meshd_transport_bytes_total", transport="udp", dir="in"), before[i][1])
                self.assertEqual(udp(n, "meshd_udp_fallbacks_total"), 0)
                # A packet sealed for a connection that lost the race of two
                # simultaneous dials arrives with an index the receiver no
                # longer knows: dropped as unknown_index, which is not a fault.
                # Nothing may fail authentication, be replayed or malformed.
                for reason in ("auth", "replay", "malformed"):
                    self.assertEqual(udp(n, "meshd_udp_drops_total", reason=reason), 0, reason)
                self.assertEqual(udp(n, "meshd_udp_sockets"), 1)
            print("figure: udp_frames_out_node0 = %.0f" %
                  udp(on[0], "meshd_transport_frames_total", transport="udp", dir="out"))

            # A node without UDP: the others fall back to TCP for it, and it
            # is a member all the same.
            off.start()
            mesh.nodes.append(off)
            mesh.wait_converged(timeout=30)
            self.assertEqual(off.metrics().get("meshd_udp_sockets"), None)
            meshtest.wait_until(
                lambda: all(udp(n, "meshd_udp_peers", path="fallback") == 1 and
                            udp(n, "meshd_udp_fallbacks_total") >= 1 for n in on), 20,
                "the others on TCP datagrams for the node without UDP")
            for n in on:
                self.assertEqual(udp(n, "meshd_udp_peers", path="up"), 2)
            mesh.wait_converged(timeout=10)
            ok = True
        finally:
            if not ok:
                for n in mesh.nodes:
                    print(f"--- {n.name}\n{n.log_tail(15)}", file=sys.stderr)
            for n in [*mesh.nodes, off]:
                n.kill9()


if __name__ == "__main__":
    meshtest.main()
