"""Disk faults under a running download, on a node that must stay a member:

- the models folder's file system turns read-only in the middle of a
  download (an ext4 image mounted with errors=remount-ro, and an error
  triggered through /sys/fs/ext4/DEV/trigger_fs_error, as root: the way a
  failing disk goes read-only): the entry fails with the file system's error
  naming the file, meshd_download_io_errors_total counts it, the node keeps
  its epoch and its peers hold it alive;
- a worker stuck in a slow sync (MESHD_TEST_SLOW_SYNC_MS holds each sync
  before a rename for 6 s, as a slow F_FULLFSYNC would) on a node of a
  three-node thunderbolt mesh: no peer ever holds it dead or suspect for
  long enough to kill it, its epoch does not change, its API answers every
  request within a second, and the download completes.
"""
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

MODEL = "acme/faults"
MODEL_DIR = "acme--faults"


def watch_peers(mesh, target_id, api_times, deaths):
    """One sample: the target's API latency, and any peer holding it dead."""
    t0 = time.monotonic()
    st, _ = mesh.nodes[0].get("/node_id")
    api_times.append((time.monotonic() - t0, st))
    for peer in mesh.nodes[1:]:
        state = peer.member_states().get(target_id)
        if state is not None and state[0] in ("dead", "left"):
            deaths.append(state)


class DiskFaults(unittest.TestCase):
    def test_read_only_models_folder_mid_download(self):
        name = "test_read_only_models_folder_mid_download"
        hub = meshtest.Hub(repo=MODEL, weights=2, weight_size=8 * 1024 * 1024)
        hub.fault({"kind": "slow", "rate": 400000, "path": "*", "count": -1})
        mesh = meshtest.LocalMesh(2, args=["--hf-endpoint", hub.url])
        n = mesh.nodes[0]
        models = os.path.join(n.home, "models")
        mounted = False
        ok = False
        try:
            meshtest.mount_small_ext4(self, name, os.path.join(mesh.root, "models.img"), models,
                                      128 * 1024 * 1024, options="loop,errors=remount-ro")
            mounted = True
            dev = subprocess.run(["findmnt", "-n", "-o", "SOURCE", models], check=True,
                                 capture_output=True, text=True).stdout.strip()
            trigger = f"/sys/fs/ext4/{os.path.basename(dev)}/trigger_fs_error"
            if not os.path.exists(trigger):
                self.skipTest(f"skipped: {name}: this kernel has no {trigger}")
            mesh.start()
            mesh.wait_converged()
            nid = n.node_id()
            epoch = n.epoch()
            st, body = n.post("/download/start",
                              {"targetNodeId": nid, "modelId": MODEL, "revision": "main"})
            self.assertEqual(st, 200, body)
            meshtest.wait_until(
                lambda: meshtest.partial_bytes(os.path.join(models, MODEL_DIR)) > 256 * 1024, 30,
                "partial files to grow")
            with open(trigger, "w") as f:
                f.write("1")
            meshtest.wait_until(lambda: meshtest.first_entry(n, nid)[0] == "DownloadFailed", 30,
                                "the download to fail on the read-only file system")
            _, e = meshtest.first_entry(n, nid)
            print(f"figure: error = {e['errorMessage']}")
            self.assertIn("Read-only file system", e["errorMessage"])
            self.assertIn(".partial", e["errorMessage"])
            m = n.metrics()
            self.assertEqual(meshtest.metric_sum(m, "meshd_download_io_errors_total"), 1)
            self.assertEqual(n.epoch(), epoch)
            self.assertEqual(mesh.nodes[1].member_states().get(nid), ("alive", epoch))
            st, _ = n.get("/node_id")
            self.assertEqual(st, 200)
            ok = True
        finally:
            for node in mesh.nodes:
                node.kill9()
            if mounted:
                subprocess.run(["umount", models], check=False)
            mesh.close(keep_on_failure=not ok)
            hub.close()

    def test_worker_stuck_in_slow_sync(self):
        hub = meshtest.Hub(repo=MODEL, weights=2, weight_size=16 * 1024 * 1024)
        mesh = meshtest.LocalMesh(3, args=["--profile", "thunderbolt", "--hf-endpoint", hub.url,
                                           "--io-threads", "2"])
        mesh.nodes[0].env["MESHD_TEST_SLOW_SYNC_MS"] = "6000"
        ok = False
        try:
            mesh.start()
            mesh.wait_converged()
            n = mesh.nodes[0]
            nid = n.node_id()
            epoch = n.epoch()
            st, body = n.post("/download/start",
                              {"targetNodeId": nid, "modelId": MODEL, "revision": "main"})
            self.assertEqual(st, 200, body)
            api_times, deaths = [], []
            start = time.monotonic()
            while meshtest.first_entry(n, nid)[0] != "DownloadCompleted":
                watch_peers(mesh, nid, api_times, deaths)
                self.assertLess(time.monotonic() - start, 90,
                                "the download did not complete within 90 s")
                time.sleep(0.05)
            took = time.monotonic() - start
            slowest = max(t for t, _ in api_times)
            print(f"figure: download_with_6s_syncs_seconds = {took:.1f}")
            print(f"figure: api_requests = {len(api_times)} slowest = {slowest:.4f}")
            # Three weights and the small files each sync for 6 s on two
            # workers: the download cannot have finished sooner.
            self.assertGreaterEqual(took, 6.0)
            self.assertEqual(deaths, [])
            self.assertTrue(all(st == 200 for _, st in api_times))
            self.assertLess(slowest, 1.0)
            self.assertEqual(n.epoch(), epoch)
            m = n.metrics()
            self.assertEqual(meshtest.metric_sum(m, "meshd_epoch_renewals_total"), 0)
            self.assertGreaterEqual(meshtest.metric_sum(m, "meshd_pool_longest_item_seconds"), 6.0)
            for peer in mesh.nodes[1:]:
                self.assertEqual(peer.member_states().get(nid), ("alive", epoch))
            ok = True
        finally:
            mesh.close(keep_on_failure=not ok)
            hub.close()


if __name__ == "__main__":
    meshtest.main()
