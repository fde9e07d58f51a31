"""File lists from members when the Hub cannot be reached (issue 18).

- Three nodes. A downloads from the stand-in Hub; the Hub is then stopped
  (connection refused). B, started with --file-lists-from-members, downloads
  the same model: its file list is A's, signed by A, its files hash like
  A's, and its entry (/state, meshctl downloads, the journal) names A as the
  list's source, still after B is stopped (SIGTERM) and started again. C,
  without the option, fails with an error that names it.
- A member that serves a tampered list (MESHD_TEST_TAMPER_FILE_LISTS, test
  only: a byte changed after signing) is refused and counted, and with no
  other member the download fails saying why.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

MODEL = "acme/listed"
MODEL_DIR = "acme--listed"
FLAG = "--file-lists-from-members"


def start(node):
    meshtest.start_download(node, MODEL)


def own(node):
    return meshtest.first_entry(node, node.node_id())


def meshctl_downloads(node):
    out = subprocess.run([meshtest.MESHCTL, "--api", node.api, "downloads"], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return out.stdout


class MemberFileLists(meshtest.HubMeshCase):
    MODEL, WEIGHTS, SIZE = MODEL, 2, 3 * 1024 * 1024

    def first_copy_then_hub_gone(self, a, others):
        start(a)
        meshtest.wait_until(lambda: own(a)[0] == "DownloadCompleted", 30, "A's download")
        aid = a.node_id()
        meshtest.wait_until(lambda: all(any(n == "DownloadCompleted" for n, _ in
                                            meshtest.downloads_of(o, aid)) for o in others),
                            10, "the others to see A's completed entry")
        self.hub.close()  # connection refused from here on

    def test_list_from_member_only_with_the_option(self):
        a, b, c = self.make_mesh(3, args_of={1: [FLAG]})
        self.first_copy_then_hub_gone(a, (b, c))
        aid = a.node_id()
        start(b)
        start(c)
        # The Hub's retries take about 15 s before a member is asked.
        meshtest.wait_until(lambda: own(b)[0] == "DownloadCompleted", 90, "B's download")
        meshtest.wait_until(lambda: own(c)[0] == "DownloadFailed", 90, "C's failure")
        want = meshtest.digests(os.path.join(a.home, "models", MODEL_DIR))
        self.assertEqual(meshtest.digests(os.path.join(b.home, "models", MODEL_DIR)), want)
        # B's own manifest is the list it verified against: it may serve too.
        with open(os.path.join(a.home, "models", MODEL_DIR, ".meshd-files")) as f:
            a_list = f.read()
        with open(os.path.join(b.home, "models", MODEL_DIR, ".meshd-files")) as f:
            self.assertEqual(f.read(), a_list)
        e = own(b)[1]
        self.assertEqual(e["fileListSource"], aid, e)
        self.assertEqual(e["sources"]["hub"]["inBytes"], 0, e)
        self.assertIn(aid, e["sources"]["peerIds"], e)
        st, state = b.get("/state")
        self.assertEqual(st, 200)
        entries = [v for w in state["downloads"][b.node_id()] for v in w.values()]
        self.assertEqual(entries[0]["fileListSource"], aid)
        table = meshctl_downloads(b)
        self.assertIn("file list from member", table)
        meshtest.wait_until(lambda: any("file list taken from member " + aid in j["message"]
                                        for j in meshtest.journal_of(b)), 10,
                            "B's journal to name A as the list's source")
        m = b.metrics()
        self.assertEqual(meshtest.metric_sum(m, "meshd_file_lists_from_members_total"), 1)
        self.assertEqual(meshtest.metric_sum(m, "meshd_file_lists_refused_total"), 0)
        self.assertGreaterEqual(
            meshtest.metric_sum(a.metrics(), "meshd_file_lists_served_total"), 1)

        err = own(c)[1].get("errorMessage", "")
        self.assertIn("cannot be reached", err)
        self.assertIn(FLAG, err)
        self.assertEqual(meshtest.metric_sum(c.metrics(), "meshd_file_lists_from_members_total"),
                         0)
        self.assertEqual(meshtest.metric_sum(a.metrics(), "meshd_file_lists_served_total"), 1)

        # The list's source is kept with the entry: a restart keeps it.
        self.assertEqual(b.stop(), 0, "B did not stop cleanly")
        b.start()
        meshtest.wait_until(lambda: own(b)[0] == "DownloadCompleted", 30, "B's entry after restart")
        st, state = b.get("/state")
        self.assertEqual(st, 200)
        entries = [v for w in state["downloads"][b.node_id()] for v in w.values()]
        self.assertEqual(len(entries), 1, entries)
        self.assertEqual(entries[0]["fileListSource"], aid, entries[0])
        self.assertIn("file list from member", meshctl_downloads(b))
        self.ok = True

    def test_tampered_list_refused(self):
        a, b, _ = self.make_mesh(3, args_of={1: [FLAG]},
                                 env_of={0: {"MESHD_TEST_TAMPER_FILE_LISTS": "1"}})
        self.first_copy_then_hub_gone(a, (b,))
        aid = a.node_id()
        start(b)
        meshtest.wait_until(lambda: own(b)[0] == "DownloadFailed", 90, "B's failure")
        err = own(b)[1].get("errorMessage", "")
        self.assertIn("no member gave one", err)
        self.assertIn(aid, err)
        self.assertIn("not the one signed", err)
        m = b.metrics()
        self.assertEqual(meshtest.metric_sum(m, "meshd_file_lists_refused_total"), 1)
        self.assertEqual(meshtest.metric_sum(m, "meshd_file_lists_from_members_total"), 0)
        meshtest.wait_until(lambda: any(j["kind"] == "source" and aid in j["message"] and
                                        "file list was refused" in j["message"]
                                        for j in meshtest.journal_of(b)), 10,
                            "the journal to name the member whose list was refused")
        # Nothing was taken on its word: no model file is in place.
        folder = os.path.join(b.home, "models", MODEL_DIR)
        self.assertEqual(meshtest.digests(folder) if os.path.isdir(folder) else {}, {})
        self.ok = True


if __name__ == "__main__":
    meshtest.main()
