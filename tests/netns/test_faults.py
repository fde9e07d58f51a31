"""The faults the other scenarios do not cover, each with what must hold:

- restart with a wiped home: the node comes back under a new peer ID; the
  old ID never returns to any view, its entries are abandoned and collected
  after gc-grace, and the new ID converges with an empty list of its own;
- a full disk (a small tmpfs as models directory, filled during a download)
  and a read-only models directory (its tmpfs remounted read-only while the
  node runs, before a download: the kernel refuses it while a file there is
  open for writing): the node stays up, the failure is shown in the entry and
  counted, and once the cause is gone the download completes;
- clock jumps: one node's wall clock jumps two days forward, then three days
  back (libfaketime), another runs in a time namespace whose monotonic and
  boot clocks are 30 days ahead: nobody is suspected or declared dead, views
  stay converged, and gc-grace is still measured on the monotonic clock at
  every node (collection neither early nor late).
"""
import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from scenario import NetMesh, figure, scaled, wait_downloads  # noqa: E402
import meshtest  # noqa: E402
import netns  # noqa: E402

GC_GRACE = 6.0
MODEL = "acme/tiny"
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def deaths(nodes):
    return sum(meshtest.metric_sum(n.metrics(), "meshd_swim_deaths_declared_total")
               + meshtest.metric_sum(n.metrics(), "meshd_swim_suspicions_total") for n in nodes)


def start_download(tc, node, nid, model=MODEL):
    status, body = node.post("/download/start",
                             {"targetNodeId": nid, "modelId": model, "revision": "main"})
    tc.assertIn(status, (200, 202), body)


def entry(node, owner):
    ents = [(s, b) for s, b in meshtest.downloads_of(node, owner) if b["modelId"] == MODEL]
    return ents[0] if ents else (None, None)


def wait_collected(tc, nodes, owner, t_kill, what):
    def gone():
        return all(not meshtest.downloads_of(n, owner) for n in nodes)
    meshtest.wait_until(gone, GC_GRACE + 30, f"{what}: entries of the departed ID collected")
    after = time.monotonic() - t_kill
    tc.assertGreaterEqual(after, GC_GRACE - 0.5, f"{what}: collected before gc-grace")
    return after


class Faults(unittest.TestCase):
    ARGS = ["--profile", "thunderbolt", "--gc-grace", f"{int(GC_GRACE * 1000)}ms"]

    def test_wiped_home(self):
        with NetMesh(3, args=self.ARGS, hub=dict(repo=MODEL, weights=2,
                                                  weight_size=64 * 1024)) as m:
            m.start()
            m.wait_converged(timeout=60)
            a, b, c = m.nodes
            old = c.node_id()
            start_download(self, c, old)
            wait_downloads(m.nodes, [old], MODEL, "DownloadCompleted", 60)
            c.kill9()
            c.wipe()
            t_kill = time.monotonic()
            c.start()
            new = c.node_id()
            self.assertNotEqual(new, old)
            converge = m.wait_converged(m.nodes, timeout=60)
            collected = wait_collected(self, [a, b], old, t_kill, "wiped home")
            for n in m.nodes:
                st = n.member_states().get(old)
                self.assertTrue(st is None or st[0] in ("dead", "left"),
                                f"{n.name} sees the wiped ID as {st}")
                self.assertEqual(meshtest.downloads_of(n, new), [])
            figure("wiped_converge_seconds", converge, "s")
            figure("wiped_old_entries_collected_seconds", collected, "s")

    def failing_then_recovers(self, m, node, cause, remedy, what, during=True):
        nid = node.node_id()
        hub = m.the_hub
        hub.fault({"kind": "slow", "rate": 128 * 1024, "path": "*", "count": -1})
        failed0 = meshtest.metric_sum(node.metrics(), "meshd_downloads_failed_total")
        if not during:
            cause()
        start_download(self, node, nid)
        meshtest.wait_until(lambda: (entry(node, nid)[0] in ("DownloadOngoing", "DownloadFailed")
                                     and (not during
                                          or entry(node, nid)[1]["downloaded"]["inBytes"] > 0)),
                            30, f"{what}: the download to be under way")
        if during:
            cause()
        t0 = time.monotonic()

        def failed():
            node.alive()
            return entry(node, nid)[0] == "DownloadFailed"
        meshtest.wait_until(failed, 60, f"{what}: the entry to show the failure")
        shown = time.monotonic() - t0
        err = entry(node, nid)[1].get("errorMessage", "")
        self.assertTrue(err, f"{what}: a failed entry without an error message")
        # The others see it too.
        for n in m.nodes:
            meshtest.wait_until(lambda n=n: entry(n, nid)[0] == "DownloadFailed", 20,
                                f"{what}: {n.name} to see the failure")
        self.assertGreater(meshtest.metric_sum(node.metrics(), "meshd_downloads_failed_total"),
                           failed0, f"{what}: failure not counted")
        remedy()
        hub._request("DELETE", "/_faults")
        t1 = time.monotonic()
        meshtest.wait_until(lambda: entry(node, nid)[0] == "DownloadCompleted", 120,
                            f"{what}: the download to complete once the cause is gone")
        recovered = time.monotonic() - t1
        node.alive()
        return shown, recovered, err

    def test_disk_full_and_read_only(self):
        with NetMesh(3, args=self.ARGS, hub=dict(repo=MODEL, weights=4,
                                                  weight_size=512 * 1024)) as m:
            full_dir = os.path.join(m.root, "full-models")
            ro_dir = os.path.join(m.root, "ro-models")
            m.mount_tmpfs(full_dir, "4m")
            # Its own mount, so that making it read-only reaches every path
            # the node holds open into it (a bind mount over a directory
            # would leave the node's directory descriptors writable).
            m.mount_tmpfs(ro_dir, "64m")
            m.nodes[1].args += ["--models-dir", full_dir]
            m.nodes[2].args += ["--models-dir", ro_dir]
            m.start()
            m.wait_converged(timeout=60)
            filler = os.path.join(full_dir, "filler")

            def fill():
                with open(filler, "wb") as f:
                    try:
                        while True:
                            f.write(b"\0" * 65536)
                            f.flush()
                    except OSError:
                        pass

            def unfill():
                os.unlink(filler)
            shown, rec, err = self.failing_then_recovers(m, m.nodes[1], fill, unfill, "disk full")
            figure("disk_full_failure_shown_seconds", shown, "s")
            figure("disk_full_recovered_seconds", rec, "s")
            print(f"disk full error: {err}")

            # ip netns exec gives the node a mount namespace of its own: the
            # remount is made there, where the node sees the directory.
            def in_node_ns(*cmd):
                netns.run("nsenter", "-t", str(m.nodes[2].pid), "-m", *cmd)

            def ro():
                in_node_ns("mount", "-o", "remount,bind,ro", ro_dir)

            def rw():
                in_node_ns("mount", "-o", "remount,bind,rw", ro_dir)
            # The kernel refuses to make a mount read-only while a file on it
            # is open for writing ("mount point is busy"), so the directory
            # turns read-only while the node runs, between two downloads.
            shown, rec, err = self.failing_then_recovers(m, m.nodes[2], ro, rw, "read-only",
                                                         during=False)
            figure("read_only_failure_shown_seconds", shown, "s")
            figure("read_only_recovered_seconds", rec, "s")
            print(f"read-only error: {err}")

    def test_clock_jumps(self):
        # Suspicions and deaths are counted while no node is down: the
        # victim's own departure is outside both windows.
        if not os.path.exists(FAKETIME):
            self.fail(f"{FAKETIME} missing: install the faketime package (scripts/install-deps)")
        with NetMesh(4, args=self.ARGS, hub=dict(repo=MODEL, weights=2,
                                                  weight_size=64 * 1024)) as m:
            stamp = os.path.join(m.root, "faketime")
            with open(stamp, "w") as f:
                f.write("+0\n")
            jumper, ahead, other, victim = m.nodes[1], m.nodes[2], m.nodes[0], m.nodes[3]
            jumper.env.update({"LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": stamp,
                               "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
            month = str(30 * 86400)
            ahead.wrap = ["unshare", "--fork", "--kill-child", "--time",
                          "--monotonic", month, "--boottime", month, "--"]
            m.start()
            m.wait_converged(timeout=60)
            survivors = [other, jumper, ahead]
            d0 = deaths(m.nodes)
            died = 0
            vid = victim.node_id()
            start_download(self, victim, vid)
            wait_downloads(m.nodes, [vid], MODEL, "DownloadCompleted", 60)
            # Forward two days.
            with open(stamp, "w") as f:
                f.write("+2d\n")
            hold = time.monotonic() + scaled(5)
            while time.monotonic() < hold:
                self.assertTrue(m.converged(m.nodes), "views diverged after a clock jump")
                time.sleep(0.5)
            died += deaths(m.nodes) - d0
            # A departure while the jumper's wall clock is two days ahead:
            # gc-grace still runs on the monotonic clock everywhere.
            victim.kill9()
            t_kill = time.monotonic()
            collected = wait_collected(self, survivors, vid, t_kill, "clock jump")
            d1 = deaths(survivors)
            # Back three days.
            with open(stamp, "w") as f:
                f.write("-1d\n")
            hold = time.monotonic() + scaled(5)
            while time.monotonic() < hold:
                self.assertTrue(m.converged(survivors), "views diverged after a clock jump")
                time.sleep(0.5)
            died += deaths(survivors) - d1
            self.assertEqual(died, 0, "a suspicion or death during the clock jumps")
            status, body = jumper.get("/node_id")
            self.assertEqual(status, 200, body)
            figure("clock_jump_suspicions_and_deaths", int(died))
            figure("clock_jump_collected_after_kill_seconds", collected, "s")


if __name__ == "__main__":
    meshtest.main()
