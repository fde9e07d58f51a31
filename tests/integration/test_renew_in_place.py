"""A node declared dead renews its epoch in place, and a home holds one daemon.

- Three nodes on the thunderbolt profile (fast probing: suspicion timeout
  under a second in a mesh of three). One is stopped (SIGSTOP) longer than
  its suspicion timeout, while it downloads from a slow stand-in Hub, and
  continued (SIGCONT). It is the same process (same PID); its epoch is the
  old one plus one; its peers see it alive at that epoch; it counts one
  renewal; its control API answered every request while it renewed; and the
  download that was running completes without starting over: at most one
  more file list, and no file fetched from byte 0 a second time.
- A node declared dead that cannot make its new epoch durable (here the
  epoch's temp file is blocked by a directory of that name) stops with exit
  status 1 and says why; it never runs on under an epoch it did not persist.
- A second meshd on the home of a running one exits 1 naming the lock file
  and the PID holding it; the first keeps running (same PID, same epoch,
  its API answers).
"""
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

MODEL = "acme/renew"
SIZE = 1024 * 1024
RATE = 160 * 1024  # bytes per second per request: about 6.5 s a weight file


def own_entry(node, nid):
    ents = meshtest.downloads_of(node, nid)
    return ents[0] if ents else (None, None)


class ApiPoller(threading.Thread):
    """Asks a node's API for /node_id every 20 ms; records each answer's
    status, its time, and the epoch it named."""

    def __init__(self, node):
        super().__init__(daemon=True)
        self.node = node
        self.stop_flag = threading.Event()
        self.answers = []  # (seconds taken, status, epoch or None)
        self.failures = []

    def run(self):
        while not self.stop_flag.is_set():
            t0 = time.monotonic()
            try:
                status, body = meshtest.api_request(self.node.api, "GET", "/node_id", timeout=2)
                took = time.monotonic() - t0
                epoch = body.get("epoch") if isinstance(body, dict) else None
                self.answers.append((took, status, epoch))
                if status != 200:
                    self.failures.append(f"status {status}")
            except Exception as e:  # noqa: BLE001 - every failure is the finding
                self.failures.append(repr(e))
            time.sleep(0.02)

    def stop(self):
        self.stop_flag.set()
        self.join(10)


class RenewInPlace(unittest.TestCase):
    def test_stopped_node_renews_in_place(self):
        hub = meshtest.Hub(repo=MODEL, weights=2, weight_size=SIZE)
        hub.fault({"kind": "slow", "rate": RATE, "path": "*", "count": -1})
        mesh = meshtest.LocalMesh(3, args=["--profile", "thunderbolt", "--hf-endpoint", hub.url])
        ok = False
        try:
            mesh.start()
            mesh.wait_converged(timeout=30)
            victim = mesh.nodes[2]
            others = mesh.nodes[:2]
            vid = victim.node_id()
            pid = victim.pid
            epoch = victim.epoch()

            st, body = victim.post("/download/start",
                                   {"targetNodeId": vid, "modelId": MODEL, "revision": "main"})
            self.assertEqual(st, 200, body)
            meshtest.wait_until(lambda: own_entry(victim, vid)[0] == "DownloadOngoing"
                                and own_entry(victim, vid)[1]["downloaded"]["inBytes"] > 0,
                                30, "the download to be under way")
            trees_before = hub.requests_matching("/tree/")

            victim.signal(signal.SIGSTOP)
            t0 = time.monotonic()
            try:
                meshtest.wait_until(
                    lambda: all(n.member_states().get(vid, ("", 0))[0] == "dead"
                                and n.member_states()[vid][1] == epoch for n in others),
                    30, "both peers to hold the stopped node dead")
                detected = time.monotonic() - t0
                # Stay stopped a while longer: well past any suspicion timeout.
                time.sleep(1.0)
            finally:
                victim.signal(signal.SIGCONT)
            stopped_for = time.monotonic() - t0

            poller = ApiPoller(victim)
            poller.start()
            try:
                meshtest.wait_until(lambda: victim.epoch() == epoch + 1, 30,
                                    "the node to renew its epoch")
                meshtest.wait_until(
                    lambda: all(n.member_states().get(vid) == ("alive", epoch + 1)
                                for n in others),
                    30, "the peers to see it alive at the new epoch")
            finally:
                poller.stop()

            self.assertEqual(victim.pid, pid)
            victim.alive()
            self.assertEqual(victim.epoch(), epoch + 1)
            out = subprocess.run([meshtest.MESHD, "epoch", "--home", victim.home],
                                 capture_output=True, text=True, check=True)
            self.assertEqual(out.stdout.strip(), str(epoch + 1))
            m = victim.metrics()
            self.assertEqual(meshtest.metric_sum(m, "meshd_epoch_renewals_total"), 1)
            self.assertEqual(poller.failures, [], "the API failed during the renewal")
            self.assertGreater(len(poller.answers), 0)
            slowest = max(a[0] for a in poller.answers)
            self.assertLess(slowest, 2.0)
            # The stop itself is on record as loop lag.
            self.assertGreaterEqual(meshtest.metric_sum(m, "meshd_loop_lag_max_seconds"), 1.0)
            lag = meshtest.loop_lag(m)

            meshtest.wait_until(lambda: own_entry(victim, vid)[0] == "DownloadCompleted", 90,
                                "the download to complete")
            name, e = own_entry(victim, vid)
            self.assertEqual(e["epoch"], epoch + 1)
            for n in others:
                meshtest.wait_until(
                    lambda n=n: own_entry(n, vid)[0] == "DownloadCompleted"
                    and own_entry(n, vid)[1]["epoch"] == epoch + 1,
                    30, f"{n.name} to see the completed download under the new epoch")
            stats = hub.stats()
            files = [p for p in stats["requests"] if "/resolve/" in p]
            self.assertLessEqual(hub.requests_matching("/tree/"), trees_before + 1, stats)
            # Each file was fetched from its start once: nothing started over.
            self.assertEqual(stats["from_zero"], len(files), stats)
            self.assertEqual(meshtest.metric_sum(m, "meshd_epoch_renewals_total"), 1)

            print(f"figure: renew_detect_seconds = {detected:.2f}")
            print(f"figure: renew_stopped_seconds = {stopped_for:.2f}")
            print(f"figure: renew_api_requests = {len(poller.answers)}")
            print(f"figure: renew_api_slowest_seconds = {slowest:.3f}")
            print(f"figure: renew_range_requests = {stats['range_requests']}")
            print(f"figure: renew_loop_lag_ms p50 = {lag['p50']} p99 = {lag['p99']} "
                  f"max = {lag['max']:.1f}")
            ok = True
        finally:
            mesh.close(keep_on_failure=not ok)
            hub.close()
            if not ok:
                print(f"kept {mesh.root}")

    def test_unpersistable_epoch_stops_the_node(self):
        mesh = meshtest.LocalMesh(3, args=["--profile", "thunderbolt"])
        ok = False
        try:
            mesh.start()
            mesh.wait_converged(timeout=30)
            victim = mesh.nodes[2]
            others = mesh.nodes[:2]
            vid = victim.node_id()
            epoch = victim.epoch()
            # The epoch file is written through epoch.tmp: a directory there
            # (not empty) makes every write fail, even for root.
            blocker = os.path.join(victim.home, "epoch.tmp")
            os.makedirs(os.path.join(blocker, "in-the-way"))
            victim.signal(signal.SIGSTOP)
            try:
                meshtest.wait_until(
                    lambda: all(n.member_states().get(vid, ("", 0))[0] == "dead" for n in others),
                    30, "both peers to hold the stopped node dead")
            finally:
                victim.signal(signal.SIGCONT)
            rc = victim.proc.wait(30)
            self.assertEqual(rc, 1, victim.log_tail())
            log = victim.log_tail(200)
            self.assertIn(f"meshd: declared dead in epoch {epoch} and cannot persist a new epoch",
                          log)
            self.assertIn("must not continue", log)
            out = subprocess.run([meshtest.MESHD, "epoch", "--home", victim.home],
                                 capture_output=True, text=True, check=True)
            self.assertEqual(out.stdout.strip(), str(epoch))
            ok = True
        finally:
            mesh.close(keep_on_failure=not ok)

    def test_second_daemon_on_a_home_refused(self):
        mesh = meshtest.LocalMesh(1)
        ok = False
        try:
            mesh.start()
            first = mesh.nodes[0]
            pid = first.pid
            epoch = first.epoch()
            port = meshtest.free_port()
            cmd = [meshtest.MESHD, "--home", first.home, "--listen", f"127.0.0.1:{port}",
                   "--api", "unix:" + os.path.join(first.home, "second.sock")]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1, r.stderr)
            lock = os.path.join(first.home, "meshd.lock")
            want = f"meshd: home {first.home} is in use by meshd PID {pid} (lock {lock})"
            self.assertIn(want, r.stderr.splitlines(), r.stderr)
            # The first is unaffected.
            first.alive()
            self.assertEqual(first.pid, pid)
            self.assertEqual(first.epoch(), epoch)
            st, _ = first.get("/node_id")
            self.assertEqual(st, 200)
            out = subprocess.run([meshtest.MESHD, "epoch", "--home", first.home],
                                 capture_output=True, text=True, check=True)
            self.assertEqual(out.stdout.strip(), str(epoch))
            out = subprocess.run([meshtest.MESHD, "id", "--home", first.home],
                                 capture_output=True, text=True, check=True)
            self.assertEqual(out.stdout.strip(), first.node_id())
            self.assertFalse(os.path.exists(os.path.join(first.home, "second.sock")))
            ok = True
        finally:
            mesh.close(keep_on_failure=not ok)


if __name__ == "__main__":
    meshtest.main()
