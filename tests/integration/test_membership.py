"""Five meshd processes on loopback form one view; kill -9 of one is seen by
the four others as dead within the profile's bound; started again with the
same home it is alive at epoch + 1 everywhere, and never seen suspect or dead
for that restart."""
import math
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

# The thunderbolt profile: probe every 200 ms, suspicion mult 3, max mult 8.
PROBE_INTERVAL = 0.2
SUSPICION_MULT = 3
SUSPICION_MAX_MULT = 8


def detection_bound(n):
    """SWIM's bound: the failed member is probed by someone within one round
    over the members (n - 1 intervals at worst for a given prober, far less
    with n - 1 probers), plus the longest suspicion timeout
    (max_mult * mult * log10(n) * interval), plus a few gossip rounds to
    reach everyone, plus slack for a loaded machine."""
    suspicion_max = SUSPICION_MAX_MULT * SUSPICION_MULT * max(1.0, math.log10(n)) * PROBE_INTERVAL
    return (n - 1) * PROBE_INTERVAL + suspicion_max + 2.0


class Membership(unittest.TestCase):
    def test_five_nodes(self):
        mesh = meshtest.LocalMesh(5, args=["--profile", "thunderbolt"])
        ok = False
        try:
            mesh.start()
            t = mesh.wait_converged(timeout=30)
            ids = [n.node_id() for n in mesh.nodes]
            self.assertEqual(len(set(ids)), 5)

            victim = mesh.nodes[3]
            vid, vepoch = ids[3], victim.epoch()
            others = [n for n in mesh.nodes if n is not victim]
            bound = detection_bound(5)
            t0 = time.monotonic()
            victim.kill9()
            meshtest.wait_until(
                lambda: all(o.member_states().get(vid, ("?",))[0] == "dead" for o in others),
                bound + 10, "the killed node to be dead everywhere")
            detect = time.monotonic() - t0
            print(f"figure: detection_seconds = {detect:.2f} (bound {bound:.2f})")
            self.assertLessEqual(detect, bound, "detection slower than the profile's bound")

            # Start it again with the same home: a new epoch, alive everywhere.
            victim.start()
            self.assertEqual(victim.epoch(), vepoch + 1)
            self.assertEqual(victim.node_id(), vid)
            meshtest.wait_until(
                lambda: all(o.member_states().get(vid) == ("alive", vepoch + 1) for o in others),
                15, "the restarted node alive at epoch + 1 everywhere")
            mesh.wait_converged(timeout=15)

            # A quick restart (down far less than the suspicion timeout) is
            # an epoch change, never a suspicion.
            sus_before = sum(meshtest.metric_sum(o.metrics(), "meshd_swim_suspicions_total")
                             for o in others)
            victim.kill9()
            victim.start()
            meshtest.wait_until(
                lambda: all(o.member_states().get(vid) == ("alive", vepoch + 2) for o in others),
                15, "the quickly restarted node alive at epoch + 2 everywhere")
            for o in others:
                st = o.member_states()[vid]
                self.assertEqual(st, ("alive", vepoch + 2))
            sus_after = sum(meshtest.metric_sum(o.metrics(), "meshd_swim_suspicions_total")
                            for o in others)
            print(f"figure: suspicions_during_quick_restart = {sus_after - sus_before:.0f}")
            ok = True
        finally:
            if not ok:
                for n in mesh.nodes:
                    print(f"--- {n.name}\n{n.log_tail(15)}", file=sys.stderr)
            mesh.close(keep_on_failure=not ok)


if __name__ == "__main__":
    meshtest.main()
