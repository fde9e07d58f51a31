"""Downloads from the stand-in Hub (tests/tools/hfhub) with hfget, one fault at
a time: each case ends in the right state with the right error, never renames
an unverified file into place, and makes the expected number of requests
(read from the hub's /_stats), so retry storms fail the test."""

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import meshtest
import urllib.request

BUILD = os.environ.get("MESH_BUILD", os.path.join(os.path.dirname(__file__), "../../build"))
HFHUB = os.path.join(BUILD, "tests", "hfhub")
HFGET = os.path.join(BUILD, "tests", "hfget")
REPO = "meshd-test/tiny-model"
W1 = "model-00001-of-00002.safetensors"
W2 = "model-00002-of-00002.safetensors"
WEIGHT_SIZE = 1 << 20
# tokenizer (directory) + config.json, README.md, tokenizer/vocab.txt + 2 weights
ENTRIES = 6


class Hub:
    """One hfhub process on a free loopback port."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([HFHUB, "--page-size", "2", "--weight-size",
                                      str(WEIGHT_SIZE), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            raise RuntimeError("hfhub did not start")
        self.port = int(line)
        self.url = "http://127.0.0.1:%d" % self.port

    def _req(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(r, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def faults(self, *rules):
        self._req("POST", "/_faults", list(rules))

    def stats(self):
        return self._req("GET", "/_stats")

    def requests(self, what):
        """Requests made for a file path, or 'tree' for file list pages."""
        reqs = self.stats()["requests"]
        if what == "tree":
            return reqs.get("/api/models/%s/tree/main" % REPO, 0)
        return reqs.get("/%s/resolve/main/%s" % (REPO, what), 0)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


class Result:
    def __init__(self, proc_rc, out):
        self.rc = proc_rc
        self.out = out
        self.lines = out.splitlines()
        self.counters = {}
        for line in self.lines:
            if line.startswith("counters "):
                self.counters = {k: int(v) for k, v in
                                 (kv.split("=") for kv in line.split()[1:])}

    def line(self, kind):
        for line in self.lines:
            if line.startswith(kind + " "):
                return line
        return None

    @property
    def err(self):
        failed = self.line("failed")
        return int(failed.split()[1].split("=")[1]) if failed else 0


class HfDownloadTest(unittest.TestCase):
    hub_args = ()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hfdl-")
        self.dir = os.path.join(self.tmp, "meshd-test--tiny-model")
        self.hub = Hub(*self.hub_args)
        self.files = self.tree()
        self.hub._req("POST", "/_reset")  # count only what the downloader asks

    def tearDown(self):
        self.hub.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def hfget(self, *args, env=None, timeout=60, endpoint=True, dir=None):
        cmd = [HFGET, "--repo", REPO, "--dir", dir or self.dir, "--backoff-ms", "50",
               "--backoff-cap-ms", "400", "--progress-ms", "200", "--no-sync", *args]
        if endpoint:
            cmd += ["--endpoint", self.hub.url]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        full_env.update(env or {})
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
        return Result(p.returncode, p.stdout)

    def tree(self):
        """The hub's file list, all pages (read once, in setUp)."""
        files, url = [], self.hub.url + "/api/models/%s/tree/main?recursive=true" % REPO
        while url:
            with urllib.request.urlopen(url, timeout=10) as r:
                files += [e for e in json.load(r) if e["type"] == "file"]
                link = r.headers.get("Link")
            url = link[1:link.index(">")] if link else None
        return files

    def assert_all_verified(self):
        for e in self.files:
            path = os.path.join(self.dir, e["path"])
            with open(path, "rb") as f:
                data = f.read()
            self.assertEqual(len(data), e["size"], e["path"])
            if "lfs" in e:
                self.assertEqual(hashlib.sha256(data).hexdigest(), e["lfs"]["oid"], e["path"])
            else:
                blob = b"blob %d\0" % len(data) + data
                self.assertEqual(hashlib.sha1(blob).hexdigest(), e["oid"], e["path"])
        self.assertEqual(self.partials(), [])

    def present(self):
        """Bytes on disk: files in place and partial files."""
        n = sum(os.path.getsize(p) for p in self.partials())
        for e in self.files:
            path = os.path.join(self.dir, e["path"])
            if os.path.exists(path):
                n += os.path.getsize(path)
        return n

    def partials(self):
        out = []
        for root, _, names in os.walk(self.dir):
            out += [os.path.join(root, n) for n in names if n.endswith(".partial")]
        return out

    def assert_failed(self, r, err, *words):
        self.assertEqual(r.rc, 1, r.out)
        self.assertEqual(r.err, -err, r.out)
        for w in words:
            self.assertIn(w, r.line("failed"))

    # ---- clean runs -------------------------------------------------------

    def test_clean_download_over_pages(self):
        r = self.hfget()
        self.assertEqual(r.rc, 0, r.out)
        self.assertIn("listed files=5 total=%d" % (2 * WEIGHT_SIZE + 159), r.out)
        self.assert_all_verified()
        self.assertEqual(self.hub.requests("tree"), 3)  # 6 entries, 2 per page
        for f in ("config.json", "README.md", "tokenizer/vocab.txt", W1, W2):
            self.assertEqual(self.hub.requests(f), 1, f)
        self.assertEqual(r.counters["retries"], 0)
        # A second run finds every file in place and fetches nothing.
        r = self.hfget()
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual(self.hub.requests(W1), 1)
        self.assertEqual(r.counters["bytes"], 0)

    def test_progress_reports(self):
        self.hub.faults({"path": W1, "kind": "slow", "rate": 1 << 20})
        r = self.hfget("--files-at-once", "1")
        self.assertEqual(r.rc, 0, r.out)
        progress = [l for l in r.lines if l.startswith("progress ")]
        self.assertGreater(len(progress), 0)
        done = [int(l.split()[1].split("=")[1]) for l in progress]
        self.assertEqual(done, sorted(done))  # never goes backward
        self.assertTrue(any("eta_ms=-1" not in l and "speed=0" not in l for l in progress))

    # ---- retried faults ---------------------------------------------------

    def test_500_is_retried(self):
        self.hub.faults({"path": W1, "kind": "status", "code": 500, "count": 2})
        r = self.hfget()
        self.assertEqual(r.rc, 0, r.out)
        self.assert_all_verified()
        self.assertEqual(self.hub.requests(W1), 3)
        self.assertEqual(r.counters["retries"], 2)

    def test_500_for_ever_gives_up_after_attempts(self):
        self.hub.faults({"path": W1, "kind": "status", "code": 503, "count": -1})
        r = self.hfget("--attempts", "3")
        self.assert_failed(r, errno.EIO, W1, "gave up after 3 attempts", "HTTP 503")
        self.assertEqual(self.hub.requests(W1), 3)
        self.assertFalse(os.path.exists(os.path.join(self.dir, W1)))

    def test_429_honours_retry_after(self):
        self.hub.faults({"path": "tree", "kind": "status", "code": 429, "retry_after": "1"})
        start = time.monotonic()
        r = self.hfget()
        elapsed = time.monotonic() - start
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual(self.hub.requests("tree"), 4)
        # The backoff alone would be 50 ms: the wait is the server's second.
        self.assertGreaterEqual(elapsed, 1.0)
        self.assert_all_verified()

    def test_cut_mid_body_resumes_with_range(self):
        self.hub.faults({"path": W1, "kind": "cut", "after": 300000})
        r = self.hfget()
        self.assertEqual(r.rc, 0, r.out)
        self.assert_all_verified()
        self.assertEqual(self.hub.requests(W1), 2)
        self.assertEqual(self.hub.stats()["range_requests"], 1)
        self.assertEqual(r.counters["retries"], 1)
        self.assertEqual(r.counters["bytes"], 2 * WEIGHT_SIZE + 159)  # nothing fetched twice

    def test_cuts_that_make_progress_do_not_use_up_attempts(self):
        self.hub.stop()
        self.hub = Hub("--weights", "1", "--weight-size", str(8 << 20))
        w = "model-00001-of-00001.safetensors"
        self.hub.faults({"path": w, "kind": "cut", "after": 3 << 19, "count": 4})
        r = self.hfget("--attempts", "3")
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual(self.hub.requests(w), 5)  # four cuts of 1.5 MiB, then the rest
        self.assertEqual(r.counters["retries"], 4)
        # Cuts without progress still count: three in a row fail the download.
        shutil.rmtree(self.dir)
        self.hub.faults({"path": w, "kind": "cut", "after": 1000, "count": -1})
        r = self.hfget("--attempts", "3")
        self.assert_failed(r, errno.EIO, "gave up after 3 attempts")

    def test_slow_trickle_is_cut_by_low_speed_limit_and_resumed(self):
        self.hub.faults({"path": W2, "kind": "slow", "rate": 20000})
        r = self.hfget("--low-speed-bytes", "100000", "--low-speed-time-ms", "1000")
        self.assertEqual(r.rc, 0, r.out)
        self.assert_all_verified()
        self.assertEqual(self.hub.requests(W2), 2)
        self.assertEqual(self.hub.stats()["range_requests"], 1)

    def test_redirect_to_same_host_is_followed(self):
        self.hub.faults({"path": W1, "kind": "redirect"})
        r = self.hfget()
        self.assertEqual(r.rc, 0, r.out)
        self.assert_all_verified()
        self.assertEqual(self.hub.stats()["requests"].get("/_cdn/" + W1), 1)
        self.assertEqual(r.counters["redirects"], 1)

    def test_range_ignored_starts_over(self):
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, W1 + ".partial"), "wb") as f:
            f.write(b"\xff" * 1000)  # not the file's first bytes
        self.hub.faults({"path": W1, "kind": "norange"})
        r = self.hfget()
        self.assertEqual(r.rc, 0, r.out)
        self.assert_all_verified()
        self.assertEqual(r.counters["restarts"], 1)
        self.assertEqual(self.hub.requests(W1), 1)

    # ---- faults that fail at once ------------------------------------------

    def test_wrong_byte_fails_with_both_hashes_and_deletes_partial(self):
        self.hub.faults({"path": W1, "kind": "corrupt", "at": 12345})
        r = self.hfget("--files-at-once", "1")
        want = [e["lfs"]["oid"] for e in self.files if e["path"] == W1][0]
        self.assert_failed(r, errno.EBADMSG, W1, "sha256 mismatch", "expected " + want, "got ")
        self.assertFalse(os.path.exists(os.path.join(self.dir, W1)))
        self.assertFalse(os.path.exists(os.path.join(self.dir, W1 + ".partial")))
        self.assertEqual(self.hub.requests(W1), 1)
        self.assertEqual(r.counters["mismatches"], 1)

    def test_corrupt_partial_from_earlier_run_is_caught(self):
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, W1 + ".partial"), "wb") as f:
            f.write(b"\xff" * 1000)
        r = self.hfget()
        self.assert_failed(r, errno.EBADMSG, W1, "mismatch")
        self.assertFalse(os.path.exists(os.path.join(self.dir, W1 + ".partial")))
        # The next run starts the file over and completes.
        r = self.hfget()
        self.assertEqual(r.rc, 0, r.out)
        self.assert_all_verified()

    def test_404_file_fails_at_once(self):
        self.hub.faults({"path": "config.json", "kind": "status", "code": 404})
        r = self.hfget()
        self.assert_failed(r, errno.ENOENT, "config.json", "no such file")
        self.assertEqual(self.hub.requests("config.json"), 1)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "config.json")))

    def test_unknown_repo_and_revision(self):
        r = self.hfget("--repo", "nobody/nothing")
        self.assert_failed(r, errno.ENOENT, "no such repository 'nobody/nothing'")
        r = self.hfget("--revision", "v9")
        self.assert_failed(r, errno.ENOENT, "no such revision 'v9'")
        self.assertEqual(self.hub.stats()["total"], 2)

    def test_redirect_to_other_plain_http_host_is_refused(self):
        target = "http://127.0.0.2:%d/_cdn/%s" % (self.hub.port, W1)
        self.hub.faults({"path": W1, "kind": "redirect", "to": target})
        r = self.hfget()
        self.assert_failed(r, errno.EPERM, "redirect to " + target + " refused")
        self.assertNotIn("/_cdn/" + W1, self.hub.stats()["requests"])
        self.assertEqual(r.counters["redirects_refused"], 1)
        self.assertFalse(os.path.exists(os.path.join(self.dir, W1)))

    def test_bad_file_list_is_refused(self):
        evil = json.dumps([{"type": "file", "path": "../evil", "size": 1,
                            "oid": "0" * 40}])
        self.hub.faults({"path": "tree", "kind": "body", "body": evil})
        r = self.hfget()
        self.assert_failed(r, errno.EBADMSG, "bad path: '..' path component")
        self.assertEqual(r.counters["list_errors"], 1)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "evil")))
        self.assertEqual(self.hub.stats()["total"], 1)

    def test_next_page_on_other_plain_http_host_is_refused(self):
        to = "http://127.0.0.2:%d/api/models/%s/tree/main?cursor=2" % (self.hub.port, REPO)
        self.hub.faults({"path": "tree", "kind": "link", "to": to})
        r = self.hfget()
        self.assert_failed(r, errno.EPERM, "next page " + to + " refused")
        self.assertEqual(self.hub.stats()["total"], 1)

    def test_endless_pages_are_bounded(self):
        # Every page points back to the first one: the list never ends.
        to = "%s/api/models/%s/tree/main?recursive=true" % (self.hub.url, REPO)
        self.hub.faults({"path": "tree", "kind": "link", "to": to, "count": -1})
        r = self.hfget("--max-list-pages", "5")
        self.assert_failed(r, errno.EMSGSIZE, "more than 5 pages")
        self.assertEqual(self.hub.requests("tree"), 5)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "config.json")))

    def test_symlink_inside_model_dir_is_not_followed(self):
        outside = os.path.join(self.tmp, "outside")
        os.makedirs(outside)
        os.makedirs(self.dir)
        os.symlink(outside, os.path.join(self.dir, "tokenizer"))
        r = self.hfget()
        self.assertEqual(r.rc, 1, r.out)
        self.assertIn("tokenizer/vocab.txt", r.line("failed"))
        self.assertEqual(os.listdir(outside), [])

    # ---- concurrency --------------------------------------------------------

    def events(self, r):
        """(kind, id) of listed/completed lines in output order."""
        out = []
        for line in r.lines:
            kind = line.split(" ", 1)[0]
            if kind in ("listed", "completed"):
                out.append((kind, int(line.rsplit("id=", 1)[1].split()[0])))
        return out

    def test_downloads_at_once_one_runs_them_in_turn(self):
        self.hub.faults({"path": W1, "kind": "slow", "rate": 4 << 20})
        r = self.hfget("--copies", "2", "--downloads-at-once", "1")
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual(self.events(r), [("listed", 1), ("completed", 1),
                                          ("listed", 2), ("completed", 2)])
        self.assertEqual(self.hub.requests(W1), 2)

    def test_downloads_at_once_two_overlap(self):
        self.hub.faults({"path": W1, "kind": "slow", "rate": 512 << 10, "count": 2})
        r = self.hfget("--copies", "2", "--downloads-at-once", "2")
        self.assertEqual(r.rc, 0, r.out)
        ev = self.events(r)
        # Both lists arrive while the first slow file is still coming.
        self.assertEqual(sorted(ev[:2]), [("listed", 1), ("listed", 2)])
        self.assertEqual(self.hub.requests("tree"), 6)
        self.assertEqual(self.hub.requests(W1), 2)

    def test_files_at_once_bounds_open_transfers(self):
        # With one file at a time, a stalled first file holds back all others:
        # when the slow file is cut by the low-speed limit, nothing else has
        # been asked for yet.
        self.hub.faults({"path": "README.md", "kind": "slow", "rate": 10})
        r = self.hfget("--files-at-once", "1", "--attempts", "1",
                       "--low-speed-bytes", "1000", "--low-speed-time-ms", "1000")
        self.assert_failed(r, errno.EIO, "README.md")
        reqs = self.hub.stats()["requests"]
        self.assertEqual(sorted(k.rsplit("/", 1)[1] for k in reqs if "/resolve/" in k),
                         ["README.md"])

    # ---- the size guard and cancel ------------------------------------------

    def test_size_guard_refuses_before_any_file(self):
        r = self.hfget("--max-bytes", "100000")
        self.assert_failed(r, errno.EFBIG, "over the limit of 100000 bytes")
        self.assertEqual(self.hub.stats()["total"], 3)  # the list pages only
        self.assertEqual(os.listdir(self.dir), [])  # not even a sub-directory

    def test_list_only_is_a_space_check_that_creates_nothing(self):
        r = self.hfget("--list-only")
        self.assertEqual(r.rc, 0, r.out)
        listed = r.line("listed")
        self.assertIn("total=%d" % (2 * WEIGHT_SIZE + 159), listed)
        self.assertIn("present=0", listed)
        self.assertGreater(int(listed.split("free=")[1].split()[0]), 0)
        self.assertFalse(os.path.exists(self.dir))
        self.assertEqual(self.hub.stats()["total"], 3)
        # Bytes already there are counted: a whole file and a partial one.
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "config.json"), "wb") as f:
            f.write(b"x" * 69)
        with open(os.path.join(self.dir, W1 + ".partial"), "wb") as f:
            f.write(b"x" * 1000)
        r = self.hfget("--list-only")
        self.assertIn("present=1069", r.line("listed"))

    def test_cancel_on_list_fetches_nothing(self):
        r = self.hfget("--cancel-on-list")
        self.assertEqual(r.rc, 3, r.out)
        self.assertEqual(self.hub.stats()["total"], 3)

    def test_cancel_keeps_partial_and_next_run_resumes(self):
        self.hub.faults({"path": W1, "kind": "slow", "rate": 400000},
                        {"path": W2, "kind": "slow", "rate": 400000})
        r = self.hfget("--cancel-after-bytes", "100000")
        self.assertEqual(r.rc, 3, r.out)
        self.assertGreater(sum(os.path.getsize(p) for p in self.partials()), 0)
        kept = self.present()
        self.assertFalse(os.path.exists(os.path.join(self.dir, W1)))
        self.hub._req("DELETE", "/_faults")
        r = self.hfget()
        self.assertEqual(r.rc, 0, r.out)
        self.assert_all_verified()
        self.assertGreaterEqual(self.hub.stats()["range_requests"], 1)
        self.assertEqual(r.counters["bytes"], 2 * WEIGHT_SIZE + 159 - kept)

    def test_kill_9_then_rerun_resumes_from_partials(self):
        self.hub.faults({"path": W1, "kind": "slow", "rate": 200000},
                        {"path": W2, "kind": "slow", "rate": 200000})
        cmd = [HFGET, "--endpoint", self.hub.url, "--repo", REPO, "--dir", self.dir, "--no-sync"]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if sum(os.path.getsize(f) for f in self.partials()) >= 100000:
                break
            time.sleep(0.02)
        else:
            p.kill()
            self.fail("no partial file grew")
        p.send_signal(signal.SIGKILL)
        p.wait()
        kept = self.present()
        self.assertFalse(os.path.exists(os.path.join(self.dir, W1)))
        self.hub._req("DELETE", "/_faults")
        r = self.hfget()
        self.assertEqual(r.rc, 0, r.out)
        self.assert_all_verified()
        self.assertGreaterEqual(self.hub.stats()["range_requests"], 1)
        self.assertLessEqual(r.counters["bytes"], 2 * WEIGHT_SIZE + 159 - kept)

    def test_disk_full_fails_and_keeps_partial(self):
        if os.geteuid() != 0 or shutil.which("unshare") is None or subprocess.run(
                ["unshare", "-m", "true"], capture_output=True).returncode != 0:
            self.skipTest("needs root and mount namespaces for a private tmpfs")
        mnt = os.path.join(self.tmp, "small")
        os.makedirs(mnt)
        base = [HFGET, "--endpoint", self.hub.url, "--repo", REPO, "--dir", mnt + "/m",
                "--no-sync", "--files-at-once", "1"]
        script = ('mount -t tmpfs -o size=1536k tmpfs "$0" || exit 99; "$@"; rc=$?; '
                  'ls -l "$0/m"; exit $rc')
        # The guard first: 2 MiB does not fit in 1.5 MiB.
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, mnt,
                            *base], capture_output=True, text=True, timeout=60)
        if p.returncode == 99:
            self.skipTest("cannot mount tmpfs here")
        r = Result(p.returncode, p.stdout)
        self.assert_failed(r, errno.ENOSPC, "bytes are free")
        # Without the guard the write fails, and what was written stays.
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, mnt,
                            *base, "--skip-space-check"], capture_output=True, text=True,
                           timeout=60)
        r = Result(p.returncode, p.stdout)
        self.assert_failed(r, errno.ENOSPC, "No space left on device", "partial file kept")
        self.assertIn(".partial", p.stdout)
        self.assertEqual(r.counters["io_errors"], 1)  # the write failed on the work pool


class HfTokenTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hftok-")
        self.hub = Hub("--token", "s3cret")

    def tearDown(self):
        self.hub.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_get(self, env):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        full_env.update(env)
        p = subprocess.run([HFGET, "--repo", REPO, "--dir", os.path.join(self.tmp, "m"),
                            "--no-sync"], capture_output=True, text=True, timeout=60,
                           env=full_env)
        return Result(p.returncode, p.stdout)

    def test_no_token_wrong_token_right_token(self):
        r = self.run_get({"HF_ENDPOINT": self.hub.url})
        self.assertEqual(r.err, -errno.EACCES, r.out)
        self.assertIn("no token", r.line("failed"))
        r = self.run_get({"HF_ENDPOINT": self.hub.url, "HF_TOKEN": "wrong"})
        self.assertEqual(r.err, -errno.EPERM, r.out)
        self.assertIn("gated model", r.line("failed"))
        self.assertEqual(self.hub.stats()["total"], 2)  # no retries of a refusal
        r = self.run_get({"HF_ENDPOINT": self.hub.url, "HF_TOKEN": "s3cret"})
        self.assertEqual(r.rc, 0, r.out)


if __name__ == "__main__":
    meshtest.main()
