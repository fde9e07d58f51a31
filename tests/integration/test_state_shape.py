"""GET /state of a real 3-node mesh with downloads in several states parses
as the shape EXO users know: topology.nodes, downloads keyed by node ID with
each entry wrapped in its status name and camelCase keys, members and self.
meshctl reads the same node in both output forms."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

MODEL = "acme/tiny"


class StateShape(unittest.TestCase):
    def test_state_of_three_nodes(self):
        hub = meshtest.Hub(repo=MODEL, weights=2, weight_size=32 * 1024)
        mesh = meshtest.LocalMesh(3, args=["--profile", "thunderbolt", "--hf-endpoint", hub.url])
        ok = False
        try:
            mesh.start()
            mesh.wait_converged(timeout=30)
            a, b, c = mesh.nodes
            ids = [n.node_id() for n in mesh.nodes]
            # a: completed; b: failed (no such repository); c: nothing.
            st, body = a.post("/download/start", {"targetNodeId": ids[0], "modelId": MODEL,
                                                 "revision": "main"})
            self.assertIn(st, (200, 202), body)
            # A command for another node travels to it and is carried out
            # there; the API answers with the target's own answer.
            st, body = a.post("/download/start", {"targetNodeId": ids[1],
                                                 "modelId": "acme/missing", "revision": "main"})
            self.assertEqual(st, 200, body)
            self.assertTrue(body["ok"])
            self.assertRegex(body["message"], "pending")
            # A refusal by the target comes back as an error with its reason.
            st, body = a.post("/download/cancel", {"targetNodeId": ids[2],
                                                  "modelId": "acme/other"})
            self.assertEqual(st, 404, body)
            self.assertRegex(body["error"], "no download of acme/other")

            def settled():
                s = c.state()["downloads"]
                mine = [next(iter(e)) for e in s.get(ids[0], [])]
                theirs = [next(iter(e)) for e in s.get(ids[1], [])]
                return mine == ["DownloadCompleted"] and theirs == ["DownloadFailed"]
            meshtest.wait_until(settled, 30, "c to see a's completed and b's failed download")

            # Only owners asked the Hub for file lists: one each, none from
            # the nodes that merely hold the replicated entries.
            self.assertEqual(hub.requests_matching("/tree/"), 2, hub.stats())

            state = c.state()
            self.assertEqual(set(state), {"topology", "downloads", "members", "self"})
            nodes = state["topology"]["nodes"]
            self.assertEqual({n["nodeId"] for n in nodes}, set(ids))
            self.assertEqual(state["self"]["nodeId"], ids[2])
            self.assertIsInstance(state["self"]["epoch"], int)
            for m in state["members"]:
                for key in ("nodeId", "addresses", "epoch", "incarnation", "state",
                            "timeInStateMs", "transport", "frameCipher"):
                    self.assertIn(key, m)
            done = state["downloads"][ids[0]][0]["DownloadCompleted"]
            for key in ("nodeId", "epoch", "modelId", "revision", "modelDirectory"):
                self.assertIn(key, done)
            self.assertEqual(done["nodeId"], ids[0])
            self.assertEqual(done["modelId"], MODEL)
            self.assertGreater(done["total"]["inBytes"], 0)
            self.assertEqual(done["downloaded"]["inBytes"], done["total"]["inBytes"])
            # modelDirectory is where the files are on the owner (a), as an
            # absolute path, the same on every node that shows the entry.
            md = done["modelDirectory"]
            self.assertTrue(os.path.isabs(md), md)
            self.assertTrue(md.startswith(os.path.realpath(os.path.join(a.home, "models")) + "/"),
                            md)
            self.assertTrue(os.path.isfile(os.path.join(md, "config.json")), md)
            self.assertTrue(os.path.isfile(os.path.join(md, "tokenizer", "vocab.txt")), md)
            own = a.state()["downloads"][ids[0]][0]["DownloadCompleted"]
            self.assertEqual(own["modelDirectory"], md)
            failed = state["downloads"][ids[1]][0]["DownloadFailed"]
            self.assertIn("errorMessage", failed)
            self.assertRegex(failed["errorMessage"], "404|no such|not found")
            # No snake_case key anywhere in the document.
            def keys(o):
                if isinstance(o, dict):
                    for k, v in o.items():
                        yield k
                        yield from keys(v)
                elif isinstance(o, list):
                    for v in o:
                        yield from keys(v)
            for k in keys(state):
                if k in state["downloads"]:
                    continue  # node IDs
                self.assertNotIn("_", k, f"snake_case key {k}")

            # meshctl against the real node: a table and the raw JSON.
            env = dict(os.environ)
            out = subprocess.run([meshtest.MESHCTL, "--api", c.api, "downloads"], env=env,
                                 capture_output=True, text=True, timeout=10)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("completed", out.stdout)
            self.assertIn("failed", out.stdout)
            out = subprocess.run([meshtest.MESHCTL, "--api", c.api, "--json", "members"],
                                 capture_output=True, text=True, timeout=10)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(len(json.loads(out.stdout)["members"]), 3)
            # An unknown node is refused by the API with a clear error.
            out = subprocess.run([meshtest.MESHCTL, "--api", c.api, "download", MODEL, "--node",
                                  "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"],
                                 capture_output=True, text=True, timeout=10)
            self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
            self.assertRegex(out.stderr + out.stdout, "not in the view|not a member|unknown")
            ok = True
        finally:
            if not ok:
                for n in mesh.nodes:
                    print(f"--- {n.name}\n{n.log_tail(15)}", file=sys.stderr)
            mesh.close(keep_on_failure=not ok)
            hub.close()


if __name__ == "__main__":
    meshtest.main()
