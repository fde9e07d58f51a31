"""Scenario 6: hostile peers inside the mesh network.

A meshd with a different swarm key joins: every handshake with it is refused
(counted as bad_psk) and it never enters a view. Then a peer with the key
(tests/tools/hostile_peer) sends a member record for a live node signed by
the wrong key, a dead claim for a live node in another node's name, a
download document for another owner, a document with a flipped signature,
random bytes on both channels, and replays its captured session raw on a new
TCP connection. Nothing changes in any view, download list or store, and
every drop is counted in /metrics."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from scenario import NetMesh, PORT, figure  # noqa: E402
import meshtest  # noqa: E402

MODEL = "acme/tiny"
HOSTILE = os.path.join(meshtest.BUILD, "tests", "hostile_peer")
HANDSHAKE_REFUSALS = ("bad_psk", "bad_signature", "handshake_malformed", "handshake_timeout",
                      "replay", "auth", "malformed", "truncated")


def counters(n):
    mt = n.metrics()
    out = {}
    for r in HANDSHAKE_REFUSALS:
        out["net." + r] = meshtest.metric_sum(mt, "meshd_drops_total", reason=r)
    for r in ("bad-signature", "malformed", "wrong-subject", "unknown-peer"):
        out["swim." + r] = meshtest.metric_sum(mt, "meshd_swim_dropped_total", reason=r)
    for r in ("malformed", "forged", "unknown_owner"):
        out["coord." + r] = meshtest.metric_sum(mt, "meshd_coord_docs_refused_total", reason=r)
    # A coordinator message that does not decode: counted in whichever
    # meshd_coord_* family carries reason="malformed".
    out["coord.any_malformed"] = sum(v for k, v in mt.items()
                                     if k.startswith("meshd_coord_") and 'reason="malformed"' in k)
    out["store_rows"] = meshtest.metric_sum(mt, "meshd_store_rows_written_total")
    return out


def delta(after, before):
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


class Hostile(unittest.TestCase):
    def snapshot(self, m):
        views = {n.name: n.member_states() for n in m.nodes}
        dls = {n.name: sorted((s, b["nodeId"], b["modelId"]) for s, b in meshtest.downloads_of(n))
               for n in m.nodes}
        return views, dls

    def test_hostile(self):
        with NetMesh(3, hub=dict(repo=MODEL, weights=2, weight_size=64 * 1024),
                     extra_hosts=3) as m:
            m.start()
            m.wait_converged(timeout=60)
            ids = [n.node_id() for n in m.nodes]
            for n, nid in zip(m.nodes, ids):
                n.post("/download/start", {"targetNodeId": nid, "modelId": MODEL,
                                           "revision": "main"})
            from scenario import wait_downloads
            wait_downloads(m.nodes, ids, MODEL, "DownloadCompleted", 60)
            views0, dls0 = self.snapshot(m)
            c0 = {n.name: counters(n) for n in m.nodes}

            # 1. A meshd with another swarm key.
            rogue_host = m.extra[1]
            other_key = os.path.join(m.root, "other.key")
            meshtest.keygen_psk(other_key)
            rogue = meshtest.Node("rogue", m.root, f"{rogue_host.ip}:{PORT}",
                                  [f"{m.host_of(m.nodes[0]).ip}:{PORT}"], psk=other_key,
                                  netns=rogue_host.ns)
            m.nodes_extra = [rogue]
            rogue.start()
            try:
                meshtest.wait_until(
                    lambda: counters(m.nodes[0])["net.bad_psk"] > c0["n0"]["net.bad_psk"], 30,
                    "n0 to count the rogue's handshakes as bad_psk")
                rogue_ids = set(rogue.member_states()) - {rogue.node_id()}
                self.assertEqual(rogue_ids, set(), "the rogue learned members without the key")
                rid = rogue.node_id()
            finally:
                rogue.kill9()
            for n in m.nodes:
                self.assertNotIn(rid, n.member_states())

            # 2. A peer with the key, sending forgeries, garbage and a replay.
            target, victim, witness = m.nodes[0], m.nodes[1], m.nodes[2]
            hh = m.extra[2]
            c1 = counters(target)
            p = subprocess.run(["ip", "netns", "exec", hh.ns, HOSTILE, "--psk", m.psk,
                                "--connect", f"{m.host_of(target).ip}:{PORT}",
                                "--victim", ids[1], "--witness", ids[2],
                                "--victim-epoch", str(victim.epoch())],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            sent = json.loads(p.stdout.strip().splitlines()[-1])
            self.assertEqual(sent["sends_failed"], 0, sent)
            self.assertGreater(sent["recorded_bytes"], 0)

            def counted():
                d = delta(counters(target), c1)
                ok = (d.get("swim.bad-signature", 0) >= 2 and d.get("swim.malformed", 0) >= 2
                      and d.get("coord.forged", 0) >= 2 and d.get("coord.any_malformed", 0) >= 1
                      and sum(d.get("net." + r, 0) for r in HANDSHAKE_REFUSALS) >= 1)
                if not ok:
                    raise ValueError(f"drops so far: {d}")
                return d
            d = meshtest.wait_until(counted, 20, "every hostile message to be counted as a drop")

            # Nothing changed: views, download lists, stores.
            views1, dls1 = self.snapshot(m)
            self.assertEqual(views1, views0)
            self.assertEqual(dls1, dls0)
            for n in m.nodes:
                self.assertEqual(counters(n)["store_rows"], c0[n.name]["store_rows"],
                                 f"{n.name}'s store was written")
            for k, v in sorted(d.items()):
                figure(f"hostile_drops_{k.replace('.', '_').replace('-', '_')}", int(v))
            figure("hostile_rogue_bad_psk",
                   int(counters(target)["net.bad_psk"] - c0["n0"]["net.bad_psk"]))
            figure("hostile_replay_answer_bytes", sent["replay_answer_bytes"])


if __name__ == "__main__":
    meshtest.main()
