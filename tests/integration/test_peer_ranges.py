"""One large file from several peers at once, in ranges.

- Three nodes, files fetched in 1 MiB ranges from 2 MiB up (the test
  setting MESHD_TEST_RANGE_KIB: production cuts 64 MiB files in 16 MiB
  ranges). A and B download from the stand-in Hub; then C downloads: each
  of its files takes ranges from A and from B at once (both served bytes,
  both named as sources), and the files hash like A's.
- A serves corrupt bytes (MESHD_TEST_CORRUPT_UPLOADS, test only): C's
  whole-file hash fails, every member the file took bytes from is dropped
  for the download (counted, named in the journal), and the file is fetched
  again (from the Hub) and verified.
- C is killed (kill -9) in the middle of its files and started again: it
  resumes only the ranges its sidecar did not list as written (counted as
  resumed), fetches fewer bytes than the model holds, and the files are
  verified.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

MODEL = "acme/ranged"
MODEL_DIR = "acme--ranged"
WEIGHTS = 2
SIZE = 12 * 1024 * 1024
RANGE = 1024 * 1024
ENV = {"MESHD_TEST_RANGE_KIB": str(RANGE // 1024)}


def start(node):
    meshtest.start_download(node, MODEL)


completed = meshtest.own_completed


def entry(node):
    return meshtest.first_entry(node, node.node_id())[1]


def metric(node, name, **labels):
    return meshtest.metric_sum(node.metrics(), name, **labels)


def sidecar_done(folder):
    """Ranges the sidecars below folder list as written."""
    done = 0
    for root, _, files in os.walk(folder):
        for f in files:
            if not f.endswith(".partial.ranges"):
                continue
            try:
                with open(os.path.join(root, f)) as fh:
                    lines = fh.read().split("\n")
            except OSError:
                continue
            if len(lines) >= 2 and lines[0].startswith("meshd-ranges 1 "):
                done += sum(bin(int(lines[1][i:i + 2], 16)).count("1")
                            for i in range(0, len(lines[1]), 2))
    return done


class PeerRanges(meshtest.HubMeshCase):
    MODEL, WEIGHTS, SIZE = MODEL, WEIGHTS, SIZE

    def two_sources(self, a, b, c):
        start(a)
        meshtest.wait_until(lambda: completed(a), 30, "A's download")
        start(b)
        meshtest.wait_until(lambda: completed(b), 60, "B's download")
        want = meshtest.digests(os.path.join(a.home, "models", MODEL_DIR))
        self.assertEqual(meshtest.digests(os.path.join(b.home, "models", MODEL_DIR)), want)
        meshtest.wait_until(lambda: sum(n == "DownloadCompleted" for n, _ in
                                        meshtest.downloads_of(c)) >= 2, 10,
                            "C to see both completed entries")
        self.hub.reset()
        return want

    def test_one_file_from_two_peers(self):
        a, b, c = self.make_mesh(3, env_of={0: ENV, 1: ENV, 2: ENV})
        want = self.two_sources(a, b, c)
        served_a = metric(a, "meshd_upload_bytes_total")
        served_b = metric(b, "meshd_upload_bytes_total")
        start(c)
        meshtest.wait_until(lambda: completed(c), 60, "C's download")
        self.assertEqual(meshtest.digests(os.path.join(c.home, "models", MODEL_DIR)), want)
        self.assertEqual(self.hub.requests_matching(".safetensors"), 0, self.hub.stats())
        from_a = metric(a, "meshd_upload_bytes_total") - served_a
        from_b = metric(b, "meshd_upload_bytes_total") - served_b
        e = entry(c)
        self.assertEqual(sorted(e["sources"]["peerIds"]), sorted([a.node_id(), b.node_id()]), e)
        # Both sources served ranges of C's files, and together the model.
        self.assertGreater(from_a, 0)
        self.assertGreater(from_b, 0)
        self.assertGreaterEqual(from_a + from_b, WEIGHTS * SIZE)
        self.assertGreaterEqual(metric(c, "meshd_ranged_files_total"), WEIGHTS)
        self.assertGreaterEqual(metric(c, "meshd_ranges_done_total"), WEIGHTS * SIZE // RANGE)
        leftovers = [f for _, _, fs in os.walk(os.path.join(c.home, "models", MODEL_DIR))
                     for f in fs if ".partial" in f]
        self.assertEqual(leftovers, [])
        print(f"figure: bytes_from_a = {from_a:.0f}")
        print(f"figure: bytes_from_b = {from_b:.0f}")
        self.ok = True

    def test_corrupt_ranges_dropped_and_refetched(self):
        a, b, c = self.make_mesh(3, env_of={0: dict(ENV, MESHD_TEST_CORRUPT_UPLOADS="1"), 1: ENV, 2: ENV})
        start(a)
        meshtest.wait_until(lambda: completed(a), 30, "A's download")
        start(b)
        meshtest.wait_until(lambda: completed(b), 60, "B's download")
        want = meshtest.digests(os.path.join(a.home, "models", MODEL_DIR))
        self.assertEqual(meshtest.digests(os.path.join(b.home, "models", MODEL_DIR)), want)
        meshtest.wait_until(lambda: sum(n == "DownloadCompleted" for n, _ in
                                        meshtest.downloads_of(c)) >= 2, 10,
                            "C to see both completed entries")
        start(c)
        meshtest.wait_until(lambda: completed(c), 60, "C's download")
        self.assertEqual(meshtest.digests(os.path.join(c.home, "models", MODEL_DIR)), want)
        self.assertGreaterEqual(metric(c, "meshd_peer_mismatches_total"), 1)
        self.assertGreaterEqual(metric(c, "meshd_peer_sources_dropped_total", reason="bad_bytes"), 1)
        aid = a.node_id()
        meshtest.wait_until(lambda: any(e["kind"] == "source" and aid in e["message"]
                                        for e in meshtest.journal_of(c)), 10,
                            "the journal to name the corrupt source")
        self.ok = True

    def test_kill_resumes_missing_ranges_only(self):
        slow = dict(ENV, MESHD_TEST_SLOW_UPLOADS_MS="15")
        a, b, c = self.make_mesh(3, env_of={0: slow, 1: slow, 2: ENV})
        want = self.two_sources(a, b, c)
        folder = os.path.join(c.home, "models", MODEL_DIR)
        start(c)
        meshtest.wait_until(lambda: sidecar_done(folder) >= 4, 60,
                            "C's sidecars to list written ranges")
        c.kill9()
        done_at_kill = sidecar_done(folder)
        c.start()
        meshtest.wait_until(lambda: completed(c), 90, "C's download after the restart")
        self.assertEqual(meshtest.digests(folder), want)
        fetched = metric(c, "meshd_download_source_bytes_total")
        resumed = metric(c, "meshd_ranges_resumed_total")
        self.assertGreaterEqual(resumed, done_at_kill)
        # The ranges listed as written were not fetched again.
        self.assertLessEqual(fetched, WEIGHTS * SIZE - done_at_kill * RANGE + 2 * 1024 * 1024)
        # (The restarted node may ask the Hub for missing ranges before it
        # has the members' documents again: the bound above counts them.)
        print(f"figure: ranges_done_at_kill = {done_at_kill}")
        print(f"figure: ranges_resumed = {resumed:.0f}")
        print(f"figure: bytes_fetched_after_restart = {fetched:.0f} of {WEIGHTS * SIZE}")
        self.ok = True


if __name__ == "__main__":
    meshtest.main()
