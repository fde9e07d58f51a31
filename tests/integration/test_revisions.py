"""Revisions of one model on a real node, against a Hub that serves several
revisions with the same file names and sizes and other bytes:

- two revisions downloaded one after the other, and two at once, each end in
  its own directory holding exactly its own bytes;
- a delete of one revision leaves the others intact, across a restart, and
  the restart takes the files in place by their hashes (nothing fetched);
- a non-main revision is cancelled by naming it (API and meshctl), and a
  cancel naming main does not touch it;
- a file already in place with the listed size and other bytes is downloaded
  again (counted), while a right one is kept.
"""
import hashlib
import http.client
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)) + "/../lib")
import meshtest  # noqa: E402

MODEL = "acme/revs"
SIZE = 256 * 1024
REVS = ["main", "v2", "v3", "refs/pr/1"]


def dir_name(rev):
    base = "acme--revs"
    return base if rev == "main" else base + "@" + rev.replace("/", "%2F")


def hub_list(hub, rev):
    """{path: (lfs, digest)} of the Hub's file list for rev."""
    conn = http.client.HTTPConnection(hub.host, hub.port, timeout=5)
    try:
        conn.request("GET", f"/api/models/{MODEL}/tree/{rev.replace('/', '%2F')}?recursive=true")
        body = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    out = {}
    for e in body:
        if e["type"] != "file":
            continue
        if "lfs" in e:
            out[e["path"]] = (True, e["lfs"]["oid"])
        else:
            out[e["path"]] = (False, e["oid"])
    return out


def hub_file(hub, rev, path):
    conn = http.client.HTTPConnection(hub.host, hub.port, timeout=5)
    try:
        conn.request("GET", f"/{MODEL}/resolve/{rev}/{path}")
        r = conn.getresponse()
        assert r.status == 200, r.status
        return r.read()
    finally:
        conn.close()


def digest(path, lfs):
    with open(path, "rb") as f:
        data = f.read()
    if lfs:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Revisions(unittest.TestCase):
    def setUp(self):
        self.hub = meshtest.Hub(repo=MODEL, weights=2, weight_size=SIZE,
                                args=sum((["--revision", r] for r in REVS), []))
        self.lists = {r: hub_list(self.hub, r) for r in REVS}
        self.mesh = meshtest.LocalMesh(1, args=["--hf-endpoint", self.hub.url])
        self.ok = False
        self.mesh.start()
        self.n = self.mesh.nodes[0]
        self.nid = self.n.node_id()
        self.models = os.path.join(self.n.home, "models")

    def tearDown(self):
        self.mesh.close(keep_on_failure=not self.ok)
        self.hub.close()

    def ctl(self, *args):
        env = dict(os.environ, MESH_API=self.n.api, MESH_HOME=self.n.home)
        env.pop("MESH_API_TOKEN", None)
        return subprocess.run([meshtest.MESHCTL] + list(args), capture_output=True, text=True,
                              env=env, timeout=30)

    def entry(self, rev):
        for name, e in meshtest.downloads_of(self.n, self.nid):
            if e["modelId"] == MODEL and e["revision"] == rev:
                return name, e
        return None, None

    def start(self, rev):
        st, body = self.n.post("/download/start",
                               {"targetNodeId": self.nid, "modelId": MODEL, "revision": rev})
        self.assertEqual(st, 200, body)
        self.assertEqual(body["revision"], rev)

    def wait_completed(self, rev, timeout=60):
        meshtest.wait_until(lambda: self.entry(rev)[0] == "DownloadCompleted", timeout,
                            f"{rev} to complete")

    def assert_own_bytes(self, rev):
        """The revision's directory holds exactly its file list's bytes."""
        d = os.path.join(self.models, dir_name(rev))
        want = self.lists[rev]
        for path, (lfs, dig) in want.items():
            self.assertEqual(digest(os.path.join(d, path), lfs), dig, f"{rev}: {path}")
        _, e = self.entry(rev)
        self.assertTrue(e["modelDirectory"].endswith(dir_name(rev)), e["modelDirectory"])

    def test_revisions_apart_delete_and_restart(self):
        # The revisions really differ: same names, other bytes.
        self.assertEqual(self.lists["main"].keys(), self.lists["v2"].keys())
        w = "model-00001-of-00002.safetensors"
        self.assertNotEqual(self.lists["main"][w], self.lists["v2"][w])
        # One after the other.
        self.start("main")
        self.wait_completed("main")
        self.start("v2")
        self.wait_completed("v2")
        # Two at once.
        self.start("v3")
        self.start("refs/pr/1")
        self.wait_completed("v3")
        self.wait_completed("refs/pr/1")
        for r in REVS:
            self.assertEqual(meshtest.partial_bytes(os.path.join(self.models, dir_name(r))), 0)
            self.assert_own_bytes(r)
        # Delete one revision (meshctl, by name): only its directory goes.
        out = self.ctl("delete", MODEL, "--revision", "v2")
        self.assertEqual(out.returncode, 0, out.stderr)
        meshtest.wait_until(lambda: self.entry("v2")[0] is None, 20, "v2's entry to go")
        self.assertFalse(os.path.exists(os.path.join(self.models, dir_name("v2"))))
        for r in ("main", "v3", "refs/pr/1"):
            self.assertEqual(self.entry(r)[0], "DownloadCompleted", r)
            self.assert_own_bytes(r)
        # Across a restart: the others are still completed with their bytes,
        # v2 stays gone, and nothing was fetched again.
        self.n.stop()
        self.n.start()
        for r in ("main", "v3", "refs/pr/1"):
            self.wait_completed(r, 30)
            self.assert_own_bytes(r)
        self.assertIsNone(self.entry("v2")[0])
        self.assertFalse(os.path.exists(os.path.join(self.models, dir_name("v2"))))
        self.assertEqual(meshtest.metric_sum(self.n.metrics(), "meshd_download_bytes_total"), 0)
        self.ok = True

    def test_cancel_names_a_revision(self):
        self.hub.fault({"kind": "slow", "rate": 50000, "path": "*", "count": -1})
        self.start("v2")
        meshtest.wait_until(lambda: self.entry("v2")[0] == "DownloadOngoing", 20, "v2 to start")
        # A cancel without a revision means main, which has no download.
        st, body = self.n.post("/download/cancel", {"targetNodeId": self.nid, "modelId": MODEL})
        self.assertEqual(st, 404, body)
        self.assertEqual(self.entry("v2")[0], "DownloadOngoing")
        out = self.ctl("cancel", MODEL, "--revision", "v2")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("(v2)", out.stdout)
        meshtest.wait_until(lambda: self.entry("v2")[0] is None, 10, "v2's entry to go")
        # main downloads afterwards at full speed, into its own directory.
        self.hub.reset()
        self.start("main")
        self.wait_completed("main")
        self.assert_own_bytes("main")
        self.assertIsNone(self.entry("v2")[0])
        self.ok = True

    def test_wrong_bytes_of_the_listed_size_are_fetched_again(self):
        d = os.path.join(self.models, dir_name("main"))
        os.makedirs(d)
        # One weight with the listed size and main's bytes: kept. The other
        # weight and config.json with the listed size and v2's bytes: fetched.
        w1, w2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
        with open(os.path.join(d, w1), "wb") as f:
            f.write(hub_file(self.hub, "main", w1))
        with open(os.path.join(d, w2), "wb") as f:
            f.write(hub_file(self.hub, "v2", w2))
        cfg = hub_file(self.hub, "v2", "config.json")
        self.assertEqual(len(cfg), len(hub_file(self.hub, "main", "config.json")))
        with open(os.path.join(d, "config.json"), "wb") as f:
            f.write(cfg)
        self.hub.reset()
        self.start("main")
        self.wait_completed("main")
        self.assert_own_bytes("main")
        m = self.n.metrics()
        self.assertEqual(meshtest.metric_sum(m, "meshd_download_in_place_mismatches_total"), 2)
        self.assertEqual(self.hub.requests_matching(w1), 0)
        self.assertEqual(self.hub.requests_matching(w2), 1)
        self.assertEqual(self.hub.requests_matching("config.json"), 1)
        self.ok = True


if __name__ == "__main__":
    meshtest.main()
