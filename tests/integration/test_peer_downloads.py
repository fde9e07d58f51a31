"""Download once per cluster: model files come from peers in the view.

- Three nodes. A downloads from the stand-in Hub; then B and C download the
  same model at once: the Hub's request log shows no weight file request
  after A's, their files hash like A's, and each entry says where its
  bytes came from.
- A source serving corrupt bytes (MESHD_TEST_CORRUPT_UPLOADS, test only) is
  detected by the hash, dropped for that download, and the download
  completes from the other source, without the Hub's weights.
- A source killed (kill -9) in the middle of a file: the download goes on
  from another source at the byte it had reached (no byte fetched twice, no
  file started over).
- A member that left is never asked: after A leaves, a new download takes
  its bytes from B alone, with no failed source.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

MODEL = "acme/shared"
MODEL_DIR = "acme--shared"
WEIGHTS = 3
SIZE = 24 * 1024 * 1024  # larger than the request window: credit is granted as it goes


def weight_requests(hub):
    return hub.requests_matching(".safetensors")


def start(node, nid=None):
    meshtest.start_download(node, MODEL, nid)


completed = meshtest.own_completed


def entry(node):
    return meshtest.first_entry(node, node.node_id())[1]


def src_bytes(node, source):
    return meshtest.metric_sum(node.metrics(), "meshd_download_source_bytes_total", source=source)


class PeerDownloads(meshtest.HubMeshCase):
    MODEL, WEIGHTS, SIZE = MODEL, WEIGHTS, SIZE

    def test_once_per_cluster_then_a_departed_member_is_never_asked(self):
        a, b, c = self.make_mesh(3)
        start(a)
        meshtest.wait_until(lambda: completed(a), 30, "A's download from the Hub")
        self.assertEqual(weight_requests(self.hub), WEIGHTS)
        want = meshtest.digests(os.path.join(a.home, "models", MODEL_DIR))
        aid = a.node_id()
        # B and C at once, after A's document says completed.
        meshtest.wait_until(lambda: any(n == "DownloadCompleted" for n, _ in
                                        meshtest.downloads_of(b, aid)) and
                            any(n == "DownloadCompleted" for n, _ in meshtest.downloads_of(c, aid)),
                            10, "B and C to see A's completed entry")
        self.hub.reset()
        start(b)
        start(c)
        meshtest.wait_until(lambda: completed(b) and completed(c), 30, "B's and C's downloads")
        stats = self.hub.stats()
        self.assertEqual(weight_requests(self.hub), 0, stats)
        for n in (b, c):
            self.assertEqual(meshtest.digests(os.path.join(n.home, "models", MODEL_DIR)), want)
            e = entry(n)
            self.assertIn("sources", e, e)
            self.assertIn(aid, e["sources"]["peerIds"], e)
            self.assertEqual(e["sources"]["hub"]["inBytes"], 0, e)
            self.assertGreaterEqual(e["sources"]["peers"]["inBytes"], WEIGHTS * SIZE, e)
            self.assertEqual(src_bytes(n, "hub"), 0)
            # The log says how long the download and its transfer took.
            done = [d for d in meshtest.completed_downloads(n) if d["model"] == MODEL]
            self.assertEqual(len(done), 1, done)
            d = done[0]
            self.assertEqual(d["bytes"], e["total"]["inBytes"], d)
            self.assertGreaterEqual(d["from_peers"], WEIGHTS * SIZE, d)
            self.assertEqual(d["received"], d["from_peers"], d)
            self.assertLessEqual(d["span_ms"], d["ms"], d)
            self.assertGreater(d["span_ms"], 0, d)
        served = meshtest.metric_sum(a.metrics(), "meshd_upload_bytes_total")
        self.assertGreaterEqual(served, 2 * WEIGHTS * SIZE)
        print(f"figure: hub_weight_requests_after_first_copy = {weight_requests(self.hub)}")
        print(f"figure: bytes_served_by_first_node = {served:.0f}")

        # A leaves; C deletes its copy and downloads again: B alone serves,
        # and no request ever went to the departed A.
        a.stop()
        cid = c.node_id()
        meshtest.wait_until(lambda: aid not in {p for p, (st, _) in c.member_states().items()
                                                if st == "alive"}, 15, "C to see A gone")
        failures = meshtest.metric_sum(c.metrics(), "meshd_peer_sources_dropped_total")
        st, body = c.delete(f"/download/{cid}/{MODEL}")
        self.assertEqual(st, 200, body)
        meshtest.wait_until(lambda: meshtest.first_entry(c, cid)[0] is None, 10, "C's entry to go")
        start(c)
        meshtest.wait_until(lambda: completed(c), 30, "C's second download")
        e = entry(c)
        self.assertEqual(e["sources"]["peerIds"], [b.node_id()], e)
        self.assertEqual(meshtest.metric_sum(c.metrics(), "meshd_peer_sources_dropped_total"),
                         failures)
        self.assertEqual(weight_requests(self.hub), 0)
        self.ok = True

    def test_corrupt_source_dropped(self):
        a, b, c = self.make_mesh(3, env_of={0: {"MESHD_TEST_CORRUPT_UPLOADS": "1"}})
        # A and B from the Hub (B may take some files from A: those fail
        # their hash and come from the Hub again).
        start(a)
        meshtest.wait_until(lambda: completed(a), 30, "A's download")
        start(b)
        meshtest.wait_until(lambda: completed(b), 30, "B's download")
        aid, bid = a.node_id(), b.node_id()
        meshtest.wait_until(lambda: sum(n == "DownloadCompleted" for n, _ in
                                        meshtest.downloads_of(c)) >= 2, 10,
                            "C to see both completed entries")
        want = meshtest.digests(os.path.join(a.home, "models", MODEL_DIR))
        self.assertEqual(meshtest.digests(os.path.join(b.home, "models", MODEL_DIR)), want)
        self.hub.reset()
        start(c)
        meshtest.wait_until(lambda: completed(c), 30, "C's download")
        self.assertEqual(meshtest.digests(os.path.join(c.home, "models", MODEL_DIR)), want)
        m = c.metrics()
        bad = meshtest.metric_sum(m, "meshd_peer_sources_dropped_total", reason="bad_bytes")
        self.assertGreaterEqual(bad, 1)
        self.assertGreaterEqual(meshtest.metric_sum(m, "meshd_peer_mismatches_total"), 1)
        # Everything came from B in the end: the Hub served no weight to C.
        self.assertEqual(weight_requests(self.hub), 0, self.hub.stats())
        self.assertIn(bid, entry(c)["sources"]["peerIds"])
        self.assertIn("dropped for this download", c.log_tail(400))
        meshtest.wait_until(lambda: any(e["kind"] == "source" and aid in e["message"]
                                        for e in meshtest.journal_of(c)), 10,
                            "the journal to name the corrupt source")
        print(f"figure: corrupt_sources_dropped = {bad:.0f}")
        self.ok = True

    def test_source_killed_mid_file_resumes_elsewhere(self):
        slow = {"MESHD_TEST_SLOW_UPLOADS_MS": "20"}
        a, b, c = self.make_mesh(3, env_of={0: slow, 1: slow})
        start(a)
        meshtest.wait_until(lambda: completed(a), 30, "A's download")
        start(b)
        meshtest.wait_until(lambda: completed(b), 60, "B's download")
        meshtest.wait_until(lambda: sum(n == "DownloadCompleted" for n, _ in
                                        meshtest.downloads_of(c)) >= 2, 10,
                            "C to see both completed entries")
        self.hub.reset()
        folder = os.path.join(c.home, "models", MODEL_DIR)
        start(c)
        meshtest.wait_until(lambda: meshtest.partial_bytes(folder) > 4 * 1024 * 1024, 30,
                            "C's partial files to grow")
        at_kill = meshtest.partial_bytes(folder)
        a.kill9()
        meshtest.wait_until(lambda: completed(c), 60, "C's download to finish without A")
        e = entry(c)
        total = e["total"]["inBytes"]
        m = c.metrics()
        fetched = src_bytes(c, "hub") + src_bytes(c, "peer")
        # Every file went on from where it was: no byte fetched twice.
        self.assertEqual(fetched, total, e)
        self.assertGreaterEqual(meshtest.metric_sum(m, "meshd_peer_failovers_total"), 1)
        self.assertEqual(self.hub.stats().get("from_zero", 0), 0, self.hub.stats())
        self.assertEqual(meshtest.digests(folder),
                         meshtest.digests(os.path.join(b.home, "models", MODEL_DIR)))
        print(f"figure: partial_bytes_at_kill = {at_kill}")
        print(f"figure: bytes_fetched_of_total = {fetched:.0f} of {total}")
        self.ok = True


if __name__ == "__main__":
    meshtest.main()
