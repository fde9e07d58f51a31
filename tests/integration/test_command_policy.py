"""Who may command whom, on a real 3-node mesh (issue 16, items 4 and 5).

a drives; b runs with --accept-commands-from none; c accepts a's peer ID.
- a's start on b is refused with b's reason, counted on b, and leaves
  nothing on b (no entry, no journal record, no store row);
- a's start on c is carried out, and the directory c made holds the
  .meshd-owned marker naming c;
- a's delete of a directory on c that meshd did not make is refused: the
  entry fails saying so, counted, and every file survives; a's delete of the
  model c downloaded removes it;
- answers forged by a third peer (a hostile_peer holding the swarm key) for
  a's pending command are dropped and counted, and a still gets the real
  answer from the target.
"""
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import meshtest  # noqa: E402

MODEL = "acme/tiny"
HOSTILE = os.path.join(os.environ.get("MESH_BUILD", ""), "tests", "hostile_peer")


class CommandPolicy(unittest.TestCase):
    def ctl(self, node, *args, timeout=60):
        env = dict(os.environ, MESH_API=node.api, MESH_HOME=node.home)
        env.pop("MESH_API_TOKEN", None)
        p = subprocess.run([meshtest.MESHCTL] + list(args), capture_output=True, text=True,
                           env=env, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def refused(self, node, reason):
        return meshtest.metric_sum(node.metrics(), "meshd_coord_commands_refused_by_reason_total",
                                   reason=reason)

    def test_policy_quota_marker_and_answers(self):
        hub = meshtest.Hub(repo=MODEL, weights=2, weight_size=64 * 1024)
        self.addCleanup(hub.close)
        mesh = meshtest.LocalMesh(3, args=["--profile", "lan", "--hf-endpoint", hub.url])
        self.addCleanup(mesh.close)
        a, b, c = mesh.nodes
        a_id = subprocess.run([meshtest.MESHD, "id", "--home", a.home], check=True,
                              capture_output=True, text=True, timeout=30).stdout.strip()
        b.args += ["--accept-commands-from", "none"]
        c.args += ["--accept-commands-from", a_id]
        mesh.start()
        mesh.wait_converged(timeout=30)
        self.assertEqual(a.node_id(), a_id)
        b_id, c_id = b.node_id(), c.node_id()

        # b refuses: the answer says why, b counts it, and b keeps nothing.
        rc, out, err = self.ctl(a, "download", MODEL, "--node", b_id)
        self.assertEqual(rc, 1, out)
        self.assertIn("carries out no other node's commands", out + err)
        self.assertEqual(self.refused(b, "not_allowed"), 1)
        self.assertEqual(meshtest.downloads_of(b, b_id), [])
        self.assertFalse([e for e in meshtest.journal_of(b) if MODEL in str(e)])
        self.assertEqual(b.store_rows("entries"), [])
        self.assertFalse(os.path.exists(os.path.join(b.home, "models", "acme--tiny")))

        # c accepts a: the model comes down, in a directory marked as c's.
        rc, out, err = self.ctl(a, "download", MODEL, "--node", c_id)
        self.assertEqual(rc, 0, err)
        meshtest.wait_until(
            lambda: any(s == "DownloadCompleted" and body["modelId"] == MODEL
                        for s, body in meshtest.downloads_of(c, c_id)),
            60, "c's download to complete")
        marker = os.path.join(c.home, "models", "acme--tiny", ".meshd-owned")
        with open(marker) as f:
            text = f.read()
        self.assertTrue(text.startswith("meshd-owned 1\n"), text)
        self.assertIn("peer " + c_id, text)
        self.assertIn("model " + MODEL, text)
        self.assertEqual(self.refused(c, "not_allowed"), 0)

        # A directory c's meshd did not make: the delete is refused, it stays.
        theirs = os.path.join(c.home, "models", "acme--handmade")
        os.makedirs(theirs)
        with open(os.path.join(theirs, "weights.bin"), "wb") as f:
            f.write(b"x" * 4096)
        rc, out, err = self.ctl(a, "delete", "acme/handmade", "--node", c_id)
        self.assertEqual(rc, 0, err)  # the command is accepted; the executor refuses

        def refused_delete():
            return [body for s, body in meshtest.downloads_of(c, c_id)
                    if s == "DownloadFailed" and body["modelId"] == "acme/handmade"]
        meshtest.wait_until(refused_delete, 30, "the delete of acme--handmade to fail")
        self.assertIn("meshd did not create it", refused_delete()[0]["errorMessage"])
        self.assertTrue(os.path.exists(os.path.join(theirs, "weights.bin")))
        self.assertEqual(meshtest.metric_sum(c.metrics(),
                                             "meshd_coord_deletes_refused_unowned_total"), 1)
        # ... and it is not retried: still there, still one refusal, later.
        time.sleep(3)
        self.assertTrue(os.path.exists(os.path.join(theirs, "weights.bin")))
        self.assertEqual(meshtest.metric_sum(c.metrics(),
                                             "meshd_coord_deletes_refused_unowned_total"), 1)

        # The model c made goes on a delete from a.
        rc, out, err = self.ctl(a, "delete", MODEL, "--node", c_id)
        self.assertEqual(rc, 0, err)
        meshtest.wait_until(
            lambda: not os.path.exists(os.path.join(c.home, "models", "acme--tiny")),
            30, "c's model directory to go")

        # Forged answers. b is stopped so that a's command to b stays
        # pending; a third peer holding the swarm key sends answers for every
        # sequence number a has used in this epoch, naming b's epoch.
        if not os.path.exists(HOSTILE):
            self.skipTest("forged answers skipped: %s not built" % HOSTILE)
        a_epoch, b_epoch = a.epoch(), b.epoch()
        unmatched0 = meshtest.metric_sum(a.metrics(), "meshd_coord_results_unmatched_total")
        sent0 = meshtest.metric_sum(a.metrics(), "meshd_coord_commands_sent_total")
        self.assertEqual(sent0, 4)  # seq (epoch << 32) + 1 .. + 4 so far
        b.signal(signal.SIGSTOP)
        resumed = False
        try:
            env = dict(os.environ, MESH_API=a.api, MESH_HOME=a.home)
            env.pop("MESH_API_TOKEN", None)
            pending = subprocess.Popen([meshtest.MESHCTL, "download", MODEL, "--node", b_id],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       env=env)
            self.addCleanup(pending.kill)
            meshtest.wait_until(
                lambda: meshtest.metric_sum(a.metrics(), "meshd_coord_commands_sent_total")
                >= sent0 + 1, 5, "a to send its command")
            first = (a_epoch << 32) + 1
            h = subprocess.run([HOSTILE, "--psk", mesh.psk, "--connect", a.listen,
                                "--victim", b_id, "--witness", c_id,
                                "--forge-result", str(first), "--forge-count", "8",
                                "--result-epoch", str(b_epoch)],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(h.returncode, 0, h.stderr)
            meshtest.wait_until(
                lambda: meshtest.metric_sum(a.metrics(), "meshd_coord_results_unmatched_total")
                >= unmatched0 + 8, 10, "a to drop the 8 forged answers")
            # The forged success did not end the request: it still waits.
            self.assertIsNone(pending.poll())
            b.signal(signal.SIGCONT)
            resumed = True
            out, err = pending.communicate(timeout=30)
            # The answer is b's own: a refusal.
            self.assertEqual(pending.returncode, 1, out)
            self.assertIn("carries out no other node's commands", out + err)
            self.assertNotIn("forged", out + err)
        finally:
            if not resumed:
                b.signal(signal.SIGCONT)
        dropped = meshtest.metric_sum(a.metrics(), "meshd_coord_results_unmatched_total")
        print("forged answers dropped by a: %d" % (dropped - unmatched0))


if __name__ == "__main__":
    unittest.main(verbosity=2)
