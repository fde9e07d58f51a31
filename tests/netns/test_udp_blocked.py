"""UDP dropped by a firewall: four nodes in their own namespaces carry their
datagrams over UDP; then nftables on one host drops every UDP packet to
meshd's port (`udp dport PORT drop`). Every peer of that host, and the host
itself, falls back to TCP datagrams by itself (counted), no member is
declared dead, and the view stays whole. With the rule gone, UDP is tried
again after the backoff and every path is up once more."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from scenario import NetMesh, figure  # noqa: E402
import meshtest  # noqa: E402


def metric(node, name, **labels):
    return meshtest.metric_sum(node.metrics(), name, **labels)


def deaths(nodes):
    return sum(metric(n, "meshd_swim_deaths_declared_total") for n in nodes)


class UdpBlocked(unittest.TestCase):
    def test_fallback_and_back(self):
        with NetMesh(4, args=["--profile", "lan"]) as m:
            m.start()
            m.wait_converged(timeout=60)
            n = len(m.nodes)
            meshtest.wait_until(
                lambda: all(metric(x, "meshd_udp_peers", path="up") == n - 1 for x in m.nodes),
                30, "every UDP path up")
            walled, others = m.nodes[3], m.nodes[:3]
            host = m.host_of(walled)
            port = walled.listen.rsplit(":", 1)[1]
            base_deaths = deaths(m.nodes)
            host.exec("nft", "add", "rule", "inet", "meshfault", "in", "udp", "dport", port,
                      "counter", "drop")
            # Each side stops hearing the other over UDP and falls back.
            meshtest.wait_until(
                lambda: metric(walled, "meshd_udp_peers", path="fallback") == n - 1 and
                all(metric(o, "meshd_udp_peers", path="fallback") >= 1 for o in others),
                30, "the walled node and its peers on TCP datagrams")
            figure("udp_fallbacks_walled", metric(walled, "meshd_udp_fallbacks_total"))
            for o in others:
                self.assertGreaterEqual(metric(o, "meshd_udp_fallbacks_total"), 1)
                # Between the others, UDP stays up.
                self.assertEqual(metric(o, "meshd_udp_peers", path="up"), n - 2)
            self.assertGreater(m.cluster.dropped(host), 0, "the rule dropped nothing")
            # Membership goes on over TCP: probes of and by the walled node
            # are answered, nobody is declared dead.
            tcp_dg = metric(walled, "meshd_transport_frames_total", transport="tcp", dir="out")
            meshtest.wait_until(
                lambda: metric(walled, "meshd_transport_frames_total", transport="tcp",
                               dir="out") >= tcp_dg + 20, 30, "datagrams over TCP")
            m.wait_converged(timeout=30)
            self.assertEqual(deaths(m.nodes) - base_deaths, 0, "a member was declared dead")

            # The firewall opens again: the retry after the backoff finds UDP.
            m.cluster.heal()
            meshtest.wait_until(
                lambda: all(metric(x, "meshd_udp_peers", path="up") == n - 1 for x in m.nodes),
                40, "every UDP path up again")
            self.assertGreaterEqual(metric(walled, "meshd_udp_retries_total"), 1)
            self.assertEqual(deaths(m.nodes) - base_deaths, 0, "a member was declared dead")
            m.wait_converged(timeout=30)


if __name__ == "__main__":
    meshtest.main()
