"""meshctl and the control API on a real 3-node mesh with downloads.

GET /state of every node parses as the EXO shape (topology.nodes, downloads
keyed by node ID with entries wrapped in their status name, camelCase keys,
members and self); meshctl's commands work against meshd in both output
forms, with peer IDs given by prefix. The stand-in Hub serves the model.
"""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import meshtest  # noqa: E402

MODEL = "acme/tiny"
WRAPS = {"DownloadPending", "DownloadOngoing", "DownloadCompleted", "DownloadFailed",
         "DownloadDeleting"}


def check_exo_state(tc, state, view_ids):
    """Asserts the keys of the EXO shape on one GET /state answer."""
    tc.assertTrue(set(state) >= {"topology", "downloads", "members", "self"}, state.keys())
    nodes = state["topology"]["nodes"]
    tc.assertEqual({n["nodeId"] for n in nodes}, set(view_ids))
    for owner, entries in state["downloads"].items():
        tc.assertIsInstance(entries, list)
        for wrapped in entries:
            (wrap, body), = wrapped.items()
            tc.assertIn(wrap, WRAPS)
            tc.assertEqual(body["nodeId"], owner)
            for key in ("epoch", "modelId", "revision", "modelDirectory"):
                tc.assertIn(key, body)
            tc.assertIsInstance(body["downloaded"]["inBytes"], int)
            tc.assertIsInstance(body["total"]["inBytes"], int)
            if wrap == "DownloadOngoing":
                tc.assertIn("downloadProgress", body)
            if wrap == "DownloadFailed":
                tc.assertIn("errorMessage", body)
            if body.get("abandoned"):
                tc.assertIn("abandonedCollectInMs", body)
    for m in state["members"]:
        for key in ("nodeId", "addresses", "epoch", "incarnation", "state", "timeInStateMs",
                    "transport"):
            tc.assertIn(key, m)
    tc.assertIn("nodeId", state["self"])
    tc.assertIn("epoch", state["self"])


class MeshctlOnMesh(unittest.TestCase):
    def ctl(self, node, *args):
        env = dict(os.environ, MESH_API=node.api, MESH_HOME=node.home)
        env.pop("MESH_API_TOKEN", None)
        p = subprocess.run([meshtest.MESHCTL] + list(args), capture_output=True, text=True,
                           env=env, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def test_state_shape_and_commands(self):
        hub = meshtest.Hub(repo=MODEL, weights=2, weight_size=64 * 1024)
        self.addCleanup(hub.close)
        mesh = meshtest.LocalMesh(3, args=["--profile", "thunderbolt", "--hf-endpoint", hub.url])
        self.addCleanup(mesh.close)
        mesh.start()
        mesh.wait_converged(timeout=30)
        a, b, c = mesh.nodes
        ids = [n.node_id() for n in mesh.nodes]

        # Download on b, asked through a with a prefix of b's ID.
        prefix = ids[1][:14]
        if sum(i.startswith(prefix) for i in ids) > 1:
            prefix = ids[1]
        rc, out, err = self.ctl(a, "download", MODEL, "--node", prefix)
        self.assertEqual(rc, 0, err)
        self.assertIn(ids[1], out)

        def completed_everywhere():
            return all(any(s == "DownloadCompleted" and body["modelId"] == MODEL
                           for s, body in meshtest.downloads_of(n, ids[1]))
                       for n in mesh.nodes)
        meshtest.wait_until(completed_everywhere, 60, "b's download to show completed on all")
        for n in mesh.nodes:
            check_exo_state(self, n.state(), ids)

        # Both output forms of each read command against meshd.
        for cmd in (["members"], ["downloads"], ["journal", "-n", "5"], ["state"], ["id"]):
            rc, out, err = self.ctl(c, *cmd)
            self.assertEqual(rc, 0, "%s: %s" % (cmd, err))
            rc, out, err = self.ctl(c, "--json", *cmd)
            self.assertEqual(rc, 0, "%s: %s" % (cmd, err))
            json.loads(out)
        rc, out, err = self.ctl(c, "id")
        self.assertEqual(out.strip(), ids[2])
        rc, out, err = self.ctl(c, "members")
        for i in ids:
            self.assertIn(i[:16], out)
        check_exo_state(self, json.loads(self.ctl(c, "--json", "state")[1]), ids)

        # Errors: a node nobody knows, a bad model ID (exit 1, the API's word).
        stranger = os.path.join(mesh.root, "stranger")
        unknown = subprocess.run([meshtest.MESHD, "id", "--home", stranger], check=True,
                                 capture_output=True, text=True, timeout=30).stdout.strip()
        rc, out, err = self.ctl(a, "download", MODEL, "--node", unknown)
        self.assertEqual(rc, 1, out)
        self.assertRegex(err, r"HTTP (404|409)")
        rc, out, err = self.ctl(a, "download", "../x", "--node", ids[1])
        self.assertEqual(rc, 1, out)
        self.assertIn("HTTP 400", err)

        # Delete through meshctl on c; the entry goes from every node.
        rc, out, err = self.ctl(c, "delete", MODEL, "--node", prefix)
        self.assertEqual(rc, 0, err)
        meshtest.wait_until(
            lambda: all(not [1 for s, body in meshtest.downloads_of(n, ids[1])
                             if body["modelId"] == MODEL] for n in mesh.nodes),
            60, "the deleted entry to go from every node")


if __name__ == "__main__":
    meshtest.main()
