"""A node serves only the files its download verified.

- A completes a download from the stand-in Hub: its model folder holds
  `.meshd-files`, every file listed with the size and the hash it was
  verified with.
- A's manifest loses one weight file's line, and another weight file grows
  by a byte on A's disk: when B downloads, A refuses both
  (`meshd_uploads_refused_total{reason="not_verified"}`), B takes them from
  the Hub, and B's files are verified.
"""
import hashlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

MODEL = "acme/verified"
MODEL_DIR = "acme--verified"
WEIGHTS = 3
SIZE = 2 * 1024 * 1024


def start(node):
    meshtest.start_download(node, MODEL)


completed = meshtest.own_completed


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class ServeVerified(meshtest.HubMeshCase):
    MODEL, WEIGHTS, SIZE = MODEL, WEIGHTS, SIZE

    def test_only_verified_files_served(self):
        a, b = self.make_mesh(2)
        start(a)
        meshtest.wait_until(lambda: completed(a), 30, "A's download")
        folder = os.path.join(a.home, "models", MODEL_DIR)
        with open(os.path.join(folder, ".meshd-files")) as f:
            lines = f.read().split("\n")
        self.assertEqual(lines[0], "meshd-files 1")
        listed = {}
        for line in lines[1:]:
            if line:
                size, digest, path = line.split(" ", 2)
                listed[path] = (int(size), digest)
        weights = sorted(p for p in listed if p.endswith(".safetensors"))
        self.assertEqual(len(weights), WEIGHTS)
        for p in weights:
            self.assertEqual(listed[p], (SIZE, sha256(os.path.join(folder, p))))
        # One file drops out of the manifest, another changes size on disk.
        unlisted, grown = weights[0], weights[1]
        with open(os.path.join(folder, ".meshd-files"), "w") as f:
            f.write("\n".join(l for l in lines if not l.endswith(" " + unlisted)))
        with open(os.path.join(folder, grown), "ab") as f:
            f.write(b"x")
        meshtest.wait_until(lambda: any(n == "DownloadCompleted" for n, _ in
                                        meshtest.downloads_of(b, a.node_id())), 10,
                            "B to see A's completed entry")
        self.hub.reset()
        start(b)
        meshtest.wait_until(lambda: completed(b), 30, "B's download")
        refused = meshtest.metric_sum(a.metrics(), "meshd_uploads_refused_total",
                                      reason="not_verified")
        self.assertGreaterEqual(refused, 1)
        reqs = self.hub.stats().get("requests", {})
        hub_weights = {p.rsplit("/", 1)[1] for p in reqs if p.endswith(".safetensors")}
        # Neither came from A (a refusal drops A as a source for the rest of
        # B's download, so later files may come from the Hub as well).
        self.assertLessEqual({unlisted, grown}, hub_weights, reqs)
        self.assertIn("not_verified", b.log_tail(2000))
        bfolder = os.path.join(b.home, "models", MODEL_DIR)
        for p in weights:
            self.assertEqual(sha256(os.path.join(bfolder, p)), listed[p][1])
        print(f"figure: requests_refused_not_verified = {refused:.0f}")
        self.ok = True


if __name__ == "__main__":
    meshtest.main()
