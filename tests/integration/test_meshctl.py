"""meshctl against a control API served over real HTTP.

The API is tests/tools/api_fake (the real server code over a fake node with
members and downloads in every state, which records the commands it gets), so
every command's effect can be checked. Covered: each one-shot command in both
output forms, the exit statuses, peer-ID prefix resolution, the token, the
Unix socket, `watch`, `--help`, and the interactive shell through a
pseudo-terminal (completion, a prefix resolved, history kept across runs).
"""

import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import meshtest  # noqa: E402

MESHCTL = os.environ.get("MESHCTL", "meshctl")
API_FAKE = os.path.join(os.environ.get("MESH_BUILD", "."), "tests", "api_fake")

SELF = "12D3KooWSe1fMASi45ub7Qe4ZE36UT5G6cU4ud8Fhhe4deS4F3cw"
PEER_A = "12D3KooWAbc9KTAb8dLcukC7edhDQ7cn5d4gEYkbUrMWeWQLGsCm"
PEER_B = "12D3KooWAbdrG6dLaYyNoVKf58ZTBqNAYT3j5qcdsyuMNmPfYetW"
DEAD = "12D3KooWDead6BVScJy9uUxcJnTPkyRFA6CAFjF1YveCHK1ATbQg"
LEFT = "12D3KooWLeftdM9mwZgikp4WzxrxktcSSSS7XhS4D5EVB8Nf471d"
ALL_IDS = [SELF, PEER_A, PEER_B, "12D3KooWSus5v6JXmj54omLidkuVKnRyjP2WPBg8Y4ErK9pGSSxY", DEAD, LEFT]


class FakeAPI:
    """One api_fake process; `api` is its address once it said READY."""

    def __init__(self, tmp, addr="127.0.0.1:0", token=None):
        self.record = os.path.join(tmp, "record-%d.txt" % time.monotonic_ns())
        args = [API_FAKE, "--api", addr, "--record", self.record]
        if token:
            args += ["--token", token]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise AssertionError("api_fake did not get ready; got %r" % line)
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                ch = os.read(self.proc.stdout.fileno(), 256)
                if not ch:
                    raise AssertionError("api_fake exited: %r" % line)
                line += ch
        word, self.api = line.decode().split()
        assert word == "READY", line

    def commands(self):
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            return [l.split() for l in f.read().splitlines()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc.stdout.close()


class MeshctlCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="meshctl-test.")
        self.fake = FakeAPI(self.tmp)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.addCleanup(self.fake.stop)

    def run_ctl(self, *args, env=None, api=None):
        e = dict(os.environ)
        e.pop("MESH_API_TOKEN", None)
        e["MESH_API"] = api or self.fake.api
        e["MESH_HOME"] = os.path.join(self.tmp, "home")
        if env:
            e.update(env)
        p = subprocess.run([MESHCTL] + list(args), capture_output=True, text=True, env=e,
                           timeout=30)
        return p.returncode, p.stdout, p.stderr

    def ok(self, *args, **kw):
        rc, out, err = self.run_ctl(*args, **kw)
        self.assertEqual(rc, 0, "meshctl %s: %s" % (" ".join(args), err))
        return out

    def ok_json(self, *args):
        return json.loads(self.ok("--json", *args))


class OneShot(MeshctlCase):
    def test_id(self):
        self.assertEqual(self.ok("id").strip(), SELF)
        j = self.ok_json("id")
        self.assertEqual(j["nodeId"], SELF)
        self.assertEqual(j["epoch"], 3)

    def test_members(self):
        out = self.ok("members")
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["PEER", "STATE", "EPOCH", "FOR", "TRANSPORT", "INC",
                                            "ADDRESS"])
        self.assertEqual(len(lines), 1 + len(ALL_IDS))
        # Shortened IDs, the node itself marked, ages as 2h/5m/3s.
        self.assertIn(SELF[:16] + " *", out)
        self.assertNotIn(PEER_A, out)
        row = next(l for l in lines if l.startswith(PEER_A[:16]))
        self.assertEqual(row.split()[1:6], ["alive", "4", "5m", "rdma", "1"])
        self.assertIn("2h", out)
        self.assertIn("suspect", out)
        # Columns line up: every row has STATE where the head has it.
        col = lines[0].index("STATE")
        for l in lines[1:]:
            self.assertNotEqual(l[col], " ", l)
            self.assertEqual(l[col - 1], " ", l)
        j = self.ok_json("members")
        self.assertEqual([m["nodeId"] for m in j["members"]], ALL_IDS)
        self.assertEqual({m["state"] for m in j["members"]}, {"alive", "suspect", "dead", "left"})

    def test_downloads(self):
        out = self.ok("downloads")
        self.assertIn("6.9 GB / 17.2 GB (40%)", out)
        self.assertIn("52.0 MB/s", out)
        self.assertIn("Directory not empty", out)
        self.assertIn("abandoned, collected in 2m", out)
        for word in ("pending", "ongoing", "completed", "failed", "deleting"):
            self.assertIn(word, out)
        j = self.ok_json("downloads")
        wraps = {next(iter(e)) for lst in j["downloads"].values() for e in lst}
        self.assertEqual(wraps, {"DownloadPending", "DownloadOngoing", "DownloadCompleted",
                                 "DownloadFailed", "DownloadDeleting"})

    def test_journal(self):
        out = self.ok("journal", "-n", "2")
        lines = out.splitlines()
        self.assertEqual(len(lines), 3)
        self.assertIn("complete", lines[1])
        j = self.ok_json("journal", "-n", "1")
        self.assertEqual(len(j["entries"]), 1)
        self.assertEqual(j["entries"][0]["kind"], "complete")

    def test_state_is_exo_shape(self):
        j = self.ok_json("state")
        self.assertEqual(set(j), {"topology", "downloads", "members", "self"})
        nodes = j["topology"]["nodes"]
        # The view: alive and suspect members only.
        self.assertEqual({n["nodeId"] for n in nodes}, set(ALL_IDS[:4]))
        for owner, entries in j["downloads"].items():
            for e in entries:
                (wrap, body), = e.items()
                self.assertTrue(wrap.startswith("Download"), wrap)
                for key in ("nodeId", "epoch", "modelId", "revision", "modelDirectory",
                            "downloaded", "total", "abandoned"):
                    self.assertIn(key, body, wrap)
                self.assertEqual(body["nodeId"], owner)
                self.assertIsInstance(body["downloaded"]["inBytes"], int)
                self.assertIsInstance(body["total"]["inBytes"], int)
                if wrap == "DownloadOngoing":
                    p = body["downloadProgress"]
                    for key in ("downloaded", "total", "speed", "etaMs", "filesDone",
                                "filesTotal"):
                        self.assertIn(key, p)
                if wrap == "DownloadFailed":
                    self.assertIn("errorMessage", body)
                if body["abandoned"]:
                    self.assertEqual(owner, DEAD)
                    self.assertEqual(body["abandonedCollectInMs"], 120000)
        for m in j["members"]:
            for key in ("nodeId", "addresses", "epoch", "incarnation", "state",
                        "timeInStateMs", "transport"):
                self.assertIn(key, m)
        self.assertEqual(j["self"]["nodeId"], SELF)
        out = self.ok("state")
        self.assertIn("MEMBERS", out)
        self.assertIn("DOWNLOADS", out)
        self.assertIn("view: 4 nodes", out)

    def test_download_delete_cancel_gc_leave(self):
        out = self.ok("download", "org/new-model", "--node", PEER_A[:12], "--revision", "v1")
        self.assertIn("requested on " + PEER_A, out)
        self.assertEqual(self.fake.commands()[-1], ["start", PEER_A, "org/new-model", "v1"])
        # Without --node the node itself is the target; --json prints the answer.
        j = self.ok_json("download", "org/mine")
        self.assertEqual(j, {"ok": True, "targetNodeId": SELF, "modelId": "org/mine",
                             "revision": "main"})
        self.ok("cancel", "org/mine")
        self.assertEqual(self.fake.commands()[-1], ["cancel", SELF, "org/mine"])
        # The slash of the model ID travels encoded and arrives whole.
        self.ok("delete", "org/failed-model", "--node", PEER_A[:11])
        self.assertEqual(self.fake.commands()[-1], ["delete", PEER_A, "org/failed-model"])
        downloads = self.ok_json("downloads")["downloads"]
        self.assertIn({"DownloadDeleting": "org/failed-model"},
                      [{k: v["modelId"]} for e in downloads[PEER_A] for k, v in e.items()])
        self.assertEqual(self.ok("gc").strip(), "collected 1 entries")
        self.assertEqual(self.ok_json("gc")["collected"], 0)
        self.assertEqual(self.ok("leave").strip(), "leaving the mesh")
        self.assertEqual([c[0] for c in self.fake.commands()],
                         ["start", "start", "cancel", "delete", "gc", "gc", "leave"])

    def test_exit_statuses(self):
        # 2: usage errors, nothing sent.
        for args in (["bogus"], ["members", "--frob"], ["download"], ["journal", "-n", "0"],
                     ["journal", "-n"], ["delete", "a/b", "c/d"], ["--api"]):
            rc, out, err = self.run_ctl(*args)
            self.assertEqual(rc, 2, "%s: %s" % (args, err))
            self.assertTrue(err.startswith("meshctl"), err)
        # 1: the API refused, with its message.
        rc, out, err = self.run_ctl("cancel", "org/nothing")
        self.assertEqual(rc, 1)
        self.assertIn("no download of org/nothing", err)
        self.assertIn("HTTP 404", err)
        rc, out, err = self.run_ctl("download", "org/x", "--node", DEAD[:12])
        self.assertEqual(rc, 1)
        self.assertIn("not in the view", err)
        self.assertIn("HTTP 409", err)
        rc, out, err = self.run_ctl("download", "../bad", "--node", PEER_A)
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 400", err)
        rc, out, err = self.run_ctl("leave")
        self.assertEqual(rc, 0)
        rc, out, err = self.run_ctl("leave")
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 409", err)
        # 1: nobody listening.
        rc, out, err = self.run_ctl("members", api="127.0.0.1:%d" % meshtest.free_port())
        self.assertEqual(rc, 1)
        self.assertIn("cannot reach the API", err)
        self.assertEqual([c[0] for c in self.fake.commands()], ["leave"])

    def test_prefix_resolution(self):
        rc, out, err = self.run_ctl("download", "org/x", "--node", "12D3KooWAb")
        self.assertEqual(rc, 2)
        self.assertIn("ambiguous", err)
        self.assertIn(PEER_A, err)
        self.assertIn(PEER_B, err)
        rc, out, err = self.run_ctl("download", "org/x", "--node", "12D3KooWZzz")
        self.assertEqual(rc, 2)
        self.assertIn("no member", err)
        self.ok("download", "org/x", "--node", "12D3KooWAbd")
        self.assertEqual(self.fake.commands()[-1][1], PEER_B)
        # A full ID that no member has goes to the API, which says 404.
        unknown = "12D3KooWUnknAb7Qg25xEgRAhHPfQX88wYWXXL6A7pNpHXvmBa2E"
        rc, out, err = self.run_ctl("download", "org/x", "--node", unknown)
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 404", err)

    def test_help(self):
        out = self.ok("--help")
        for cmd in ("members", "downloads", "journal", "state", "download", "delete", "cancel",
                    "gc", "leave", "id", "metrics", "watch", "help"):
            self.assertIn("\n  " + cmd + " ", out)
        for opt in ("--api", "--token", "--json", "--home"):
            self.assertIn(opt, out)
        out = self.ok("help", "download")
        self.assertIn("usage: meshctl download MODEL [--node ID] [--revision R]", out)
        self.assertEqual(self.ok("download", "--help"), out)
        rc, _, _ = self.run_ctl("help", "nope")
        self.assertEqual(rc, 2)

    def test_watch(self):
        out = self.ok("watch", "--count", "3", "--interval", "0.05")
        self.assertEqual(out.count("\x1b[H\x1b[2J"), 3)
        self.assertIn("[########............]  40%", out)
        self.assertIn("Ongoing (abandoned)", out)
        self.assertIn("suspect", out)
        out = self.ok("watch", "--once")
        self.assertNotIn("\x1b[", out)
        self.assertEqual(out.count("MEMBERS"), 1)
        rc, out, err = self.run_ctl("watch", "--once", api="127.0.0.1:%d" % meshtest.free_port())
        self.assertEqual(rc, 1)
        self.assertIn("cannot reach", out + err)


class Metrics(MeshctlCase):
    def test_metrics_text(self):
        self.ok("members")
        status, text = meshtest.api_request(self.fake.api, "GET", "/metrics")
        self.assertEqual(status, 200)
        families = re.findall(r"^# TYPE (\S+) (counter|gauge)$", text, re.M)
        names = [f[0] for f in families]
        self.assertEqual(len(names), len(set(names)), "a family's TYPE appears twice")
        for name in ("meshd_members", "meshd_swim_probes_total", "meshd_swim_suspicions_total",
                     "meshd_swim_refutations_total", "meshd_transport_bytes_total",
                     "meshd_transport_frames_total", "meshd_drops_total",
                     "meshd_gc_collected_total", "meshd_journal_records",
                     "meshd_download_bytes_total", "meshd_api_requests_total"):
            self.assertIn(name, names)
            self.assertRegex(text, r"(?m)^# HELP %s \S" % name)
        # Every sample belongs to the family declared last before it.
        current = None
        for line in text.splitlines():
            m = re.match(r"# TYPE (\S+) ", line)
            if m:
                current = m.group(1)
            elif not line.startswith("#"):
                self.assertTrue(line.startswith(current), line)
                self.assertRegex(line, r"^[a-z_:]+(\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\})? "
                                       r"-?[0-9.e+]+$")
        self.assertIn('meshd_api_requests_total{endpoint="members",code="200"} 1\n', text)
        self.assertIn('meshd_members{state="suspect"} 1\n', text)
        # meshctl metrics prints the same text.
        out = self.ok("metrics")
        self.assertIn('meshd_members{state="suspect"} 1\n', out)
        self.assertIn('meshd_api_requests_total{endpoint="metrics",code="200"} 2\n', out)


class TokenAndSocket(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="meshctl-test.")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def ctl(self, *args, env=None):
        e = dict(os.environ)
        e.pop("MESH_API_TOKEN", None)
        e.update(env or {})
        p = subprocess.run([MESHCTL] + list(args), capture_output=True, text=True, env=e,
                           timeout=30)
        return p.returncode, p.stdout, p.stderr

    def test_token(self):
        fake = FakeAPI(self.tmp, token="tok-123")
        self.addCleanup(fake.stop)
        rc, out, err = self.ctl("--api", fake.api, "members")
        self.assertEqual(rc, 1)
        self.assertIn("token", err)
        self.assertIn("HTTP 401", err)
        rc, out, err = self.ctl("--api", fake.api, "--token", "wrong", "id")
        self.assertEqual(rc, 1)
        rc, out, err = self.ctl("--api", fake.api, "--token", "tok-123", "id")
        self.assertEqual((rc, out.strip()), (0, SELF))
        rc, out, err = self.ctl("--api", fake.api, "id", env={"MESH_API_TOKEN": "tok-123"})
        self.assertEqual((rc, out.strip()), (0, SELF))

    def test_unix_socket(self):
        path = os.path.join(self.tmp, "api.sock")
        fake = FakeAPI(self.tmp, addr="unix:" + path)
        self.addCleanup(fake.stop)
        self.assertEqual(fake.api, "unix:" + path)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        rc, out, err = self.ctl("--api", "unix:" + path, "id")
        self.assertEqual((rc, out.strip()), (0, SELF))
        rc, out, err = self.ctl("delete", "org/deleting-model", "--node", PEER_B[:12],
                                env={"MESH_API": "unix:" + path})
        self.assertEqual(rc, 0, err)
        self.assertEqual(fake.commands()[-1], ["delete", PEER_B, "org/deleting-model"])
        fake.stop()
        self.assertFalse(os.path.exists(path))


class Shell(MeshctlCase):
    """The interactive shell, driven through a pseudo-terminal."""

    def spawn(self, *args):
        pid, fd = pty.fork()
        if pid == 0:
            # Wide enough that no line wraps in the redraws read below.
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 250, 0, 0))
            os.environ["MESH_API"] = self.fake.api
            os.environ["MESH_HOME"] = os.path.join(self.tmp, "home")
            os.environ["TERM"] = "xterm"
            os.execv(MESHCTL, [MESHCTL] + list(args))
        self.addCleanup(self.reap, pid, fd)
        self.buf = b""
        if not args:
            self.expect(fd, b"meshctl> ")
        return pid, fd

    def reap(self, pid, fd):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        os.close(fd)

    def expect(self, fd, needle, timeout=10):
        """Reads the terminal until needle shows; returns what came before it."""
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r on the terminal; got %r" % (needle, self.buf[-600:]))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError("shell closed; got %r" % self.buf[-600:])
                self.buf += data
        before, _, self.buf = self.buf.partition(needle)
        return before

    def quit(self, pid, fd, keys=b"quit\r"):
        os.write(fd, keys)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                self.assertEqual(os.waitstatus_to_exitcode(status), 0)
                return
            select.select([fd], [], [], 0.05)
            try:
                os.read(fd, 4096)
            except OSError:
                pass
        raise AssertionError("the shell did not quit")

    def test_shell(self):
        pid, fd = self.spawn()
        # Completion of a command name, then run it.
        # (libedit redraws with cursor moves, so the rest of the word is what
        # shows; the history file below has the whole line.)
        os.write(fd, b"mem\t")
        self.expect(fd, b"bers ")
        os.write(fd, b"\r")
        table = self.expect(fd, b"meshctl> ")
        self.assertIn(b"suspect", table)
        self.assertIn(SELF[:16].encode() + b" *", table)
        # Completion of a peer-ID prefix to the whole ID.
        os.write(fd, b"download org/shell-model --node 12D3KooWAbc\t")
        self.expect(fd, PEER_A[len("12D3KooWAbc"):].encode() + b" ")
        os.write(fd, b"\r")
        out = self.expect(fd, b"meshctl> ")
        self.assertIn(b"requested on " + PEER_A.encode(), out)
        # A prefix resolved without completion; an ambiguous one explained.
        os.write(fd, b"cancel org/shell-model --node 12D3KooWAbc9K\r")
        out = self.expect(fd, b"meshctl> ")
        self.assertIn(b"cancelled on " + PEER_A.encode(), out)
        os.write(fd, b"delete org/x --node 12D3KooWAb\r")
        out = self.expect(fd, b"meshctl> ")
        self.assertIn(b"ambiguous", out)
        # An API error does not end the shell; --json applies to one line only.
        os.write(fd, b"id --json\r")
        out = self.expect(fd, b"meshctl> ")
        self.assertIn(b'"nodeId"', out)
        os.write(fd, b"id\r")
        out = self.expect(fd, b"meshctl> ")
        self.assertNotIn(b'"nodeId"', out)
        self.assertIn(SELF.encode(), out)
        # Completion of a command's argument: a command name after help, an
        # option, a model ID the mesh has.
        os.write(fd, b"help wat\t")
        self.expect(fd, b"ch ")
        os.write(fd, b"\r")
        out = self.expect(fd, b"meshctl> ")
        self.assertIn(b"usage: meshctl watch", out)
        os.write(fd, b"delete org/fai\t")
        self.expect(fd, b"led-model ")
        os.write(fd, b"--no\t")
        self.expect(fd, b"de ")
        os.write(fd, b"12D3KooWAbd\t")
        self.expect(fd, PEER_B[len("12D3KooWAbd"):].encode() + b" ")
        os.write(fd, b"\x15")
        os.write(fd, b"help\r")
        out = self.expect(fd, b"meshctl> ")
        self.assertIn(b"watch", out)
        self.quit(pid, fd)
        self.assertEqual(self.fake.commands(),
                         [["start", PEER_A, "org/shell-model", "main"],
                          ["cancel", PEER_A, "org/shell-model"]])
        hist = os.path.join(self.tmp, "home", "meshctl_history")
        with open(hist) as f:
            text = f.read()
        # libedit's format: a _HiStOrY_V2_ line, then one vis(3)-encoded line each.
        self.assertTrue(text.startswith("_HiStOrY_V2_\n"))
        lines = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), l)
                 for l in text.splitlines()[1:]]
        self.assertIn("members", lines)
        self.assertIn("download org/shell-model --node %s" % PEER_A, lines)
        self.assertEqual(os.stat(hist).st_mode & 0o777, 0o600)
        # A second shell recalls the first one's lines (^P is previous-history).
        pid, fd = self.spawn()
        os.write(fd, b"\x10\x10")
        self.expect(fd, b"help")
        os.write(fd, b"\x10")
        self.expect(fd, b"watch")  # libedit redraws only what differs from "help"
        os.write(fd, b"\x15")
        self.quit(pid, fd)

    def test_watch_keys(self):
        # q ends the live view, and so does Ctrl-C, with status 0.
        for key in (b"q", b"\x03"):
            pid, fd = self.spawn("watch", "--interval", "0.1")
            self.expect(fd, b"\x1b[H\x1b[2J")
            self.expect(fd, b"MEMBERS")
            self.expect(fd, b"\x1b[H\x1b[2J")
            self.expect(fd, b"[########............]  40%")
            self.quit(pid, fd, keys=key)


if __name__ == "__main__":
    meshtest.main()
