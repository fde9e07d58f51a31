"""One view: /downloads never disagrees with /members about who is in it.

The download coordinator keeps its own copy of the membership view, fed by
view events; an event membership could not deliver is injected here with
MESHD_TEST_LOSE_VIEW_EVENTS=N (the first N events are withheld from the
coordinator). Four nodes:
  n0  the seed, nothing withheld;
  n1  loses its first two events: the third one's number shows the gap, and
      the coordinator resyncs from membership at once (counted once);
  n2  loses every event: its coordinator only learns the view through the
      resync /state and /downloads run when it lags;
  n3  owns a download, then is killed with -9.
Throughout, every /state answer (members and downloads read in one turn of
the loop) must agree: an owner's entries are shown abandoned exactly when the
owner is not alive or suspect at that epoch in the members list. n3's
entries reach n1 and n2 (which would refuse them from an owner they do not
know), are shown abandoned once it dies, and are collected after gc-grace.
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

GC_GRACE = 6.0
MODEL = "acme/tiny"
ALL_EVENTS = 1000000


def disagreements(node):
    """What one /state answer of node gets wrong: entries shown abandoned
    for an owner in the view, or shown live for one out of it."""
    st = node.state()
    self_id = st["self"]["nodeId"]
    in_view = {(m["nodeId"], m["epoch"]) for m in st["members"]
               if m["state"] in ("alive", "suspect")}
    wrong = []
    for owner, entries in st["downloads"].items():
        if owner == self_id:
            continue
        for wrapped in entries:
            (_, e), = wrapped.items()
            member = (owner, e["epoch"]) in in_view
            if e["abandoned"] == member:
                wrong.append((owner[-8:], e["epoch"], e["abandoned"], sorted(in_view)))
    return wrong


class ViewResync(unittest.TestCase):
    def test_lost_view_events_are_resynced(self):
        hub = meshtest.Hub(repo=MODEL, weights=2, weight_size=64 * 1024)
        mesh = meshtest.LocalMesh(4, args=["--profile", "thunderbolt",
                                           "--gc-grace", f"{int(GC_GRACE * 1000)}ms",
                                           "--hf-endpoint", hub.url])
        seed, gap, blind, owner = mesh.nodes
        gap.env["MESHD_TEST_LOSE_VIEW_EVENTS"] = "2"
        blind.env["MESHD_TEST_LOSE_VIEW_EVENTS"] = str(ALL_EVENTS)
        watched = (seed, gap, blind)
        checks = [0]

        def agree():
            for n in watched:
                wrong = disagreements(n)
                self.assertEqual(wrong, [], f"{n.name}: /downloads disagrees with /members")
            checks[0] += 1

        ok = False
        try:
            mesh.start()
            mesh.wait_converged(timeout=30)
            # n1 found the gap in the event numbers by itself; nobody read its
            # downloads yet, so that resync came from the events alone.
            resyncs = meshtest.metric_sum(gap.metrics(), "meshd_coord_view_resyncs_total")
            self.assertEqual(resyncs, 1, "n1 resyncs on the gap, once")
            self.assertEqual(
                meshtest.metric_sum(seed.metrics(), "meshd_coord_view_resyncs_total"), 0)
            self.assertIn("a gap in the event numbers", gap.log_tail(400))

            oid = owner.node_id()
            status, body = owner.post("/download/start",
                                      {"targetNodeId": oid, "modelId": MODEL, "revision": "main"})
            self.assertIn(status, (200, 202), body)

            def completed_everywhere():
                agree()
                return all(any(s == "DownloadCompleted" for s, _ in meshtest.downloads_of(n, oid))
                           for n in watched)
            meshtest.wait_until(completed_everywhere, 30, "every node to show n3's entry")

            owner.kill9()

            def abandoned_everywhere():
                agree()
                return all(meshtest.downloads_of(n, oid) and
                           all(e.get("abandoned") for _, e in meshtest.downloads_of(n, oid))
                           for n in watched)
            meshtest.wait_until(abandoned_everywhere, 20, "n3's entries to be shown abandoned")
            t_abandoned = time.monotonic()

            def collected_everywhere():
                agree()
                return all(not meshtest.downloads_of(n, oid) for n in watched)
            meshtest.wait_until(collected_everywhere, GC_GRACE + 15, "n3's entries collected")
            self.assertGreaterEqual(time.monotonic() - t_abandoned, GC_GRACE - 1.0)
            agree()

            blind_resyncs = meshtest.metric_sum(blind.metrics(), "meshd_coord_view_resyncs_total")
            gap_resyncs = meshtest.metric_sum(gap.metrics(), "meshd_coord_view_resyncs_total")
            fixes = meshtest.metric_sum(blind.metrics(), "meshd_coord_view_resync_fixes_total")
            self.assertGreaterEqual(blind_resyncs, 2, "n2 resynced on join and on the death")
            self.assertEqual(gap_resyncs, 1, "after its resync n1 followed the events")
            self.assertGreaterEqual(fixes, 3)
            # Logged, but not once per read: the warning is rate-limited.
            with open(blind.log_path, errors="replace") as f:
                lines = [ln for ln in f if "reached the coordinator incompletely" in ln]
            self.assertGreaterEqual(len(lines), 1)
            self.assertLessEqual(len(lines), blind_resyncs)
            print(f"figure: state_answers_checked = {checks[0]}")
            print(f"figure: n1_resyncs = {gap_resyncs:.0f}")
            print(f"figure: n2_resyncs = {blind_resyncs:.0f}, peers_corrected = {fixes:.0f}")
            print(f"figure: n2_resync_log_lines = {len(lines)}")
            ok = True
        finally:
            if not ok:
                for n in mesh.nodes:
                    print(f"--- {n.name}\n{n.log_tail(30)}", file=sys.stderr)
            mesh.close(keep_on_failure=not ok)
            hub.close()


if __name__ == "__main__":
    meshtest.main()
