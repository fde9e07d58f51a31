"""Helpers for tests that run real meshd processes.

A Node is one meshd with its own home folder, talking to the test through its
control API on a Unix socket (so a node inside a network namespace is reached
the same way as one on loopback). Waiting is always for a condition with a
deadline (wait_until), never a bare sleep.
"""

import hashlib
import http.client
import json
import os
import re
import sys
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest
import time

MESHD = os.environ.get("MESHD", "meshd")
MESHCTL = os.environ.get("MESHCTL", "meshctl")
BUILD = os.environ.get("MESH_BUILD", "")
SRCDIR = os.environ.get("MESH_TEST_SRCDIR", os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


class Timeout(AssertionError):
    pass


def wait_until(pred, timeout, what, interval=0.05):
    """Polls pred() until it returns a true value; returns that value.

    Fails with a message naming `what` and the last value seen when the
    deadline passes. Exceptions from pred count as "not yet".
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
            if last:
                return last
        except (OSError, ValueError, KeyError, http.client.HTTPException) as e:
            last = e
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=5):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except OSError:
            s.close()
            raise
        self.sock = s


def api_request(api, method, path, body=None, token=None, timeout=5):
    """One HTTP request to a control API given as 'unix:PATH' or 'host:port'.

    Sends what meshctl sends: a JSON body type on anything but a GET (meshd
    refuses other types there), and the bearer token when one is given.
    Returns (status, parsed JSON or text).
    """
    if api.startswith("unix:"):
        conn = UnixHTTPConnection(api[5:], timeout=timeout)
    else:
        host, port = api.rsplit(":", 1)
        conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
    headers = {}
    data = None
    if method != "GET":
        headers["Content-Type"] = "application/json"
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    if token:
        headers["Authorization"] = "Bearer " + token
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read().decode("utf-8", "replace")
        ctype = resp.getheader("Content-Type", "")
        if "json" in ctype:
            return resp.status, json.loads(raw)
        return resp.status, raw
    finally:
        conn.close()


def keygen_psk(path):
    subprocess.run([MESHD, "keygen-psk", "--out", path], check=True,
                   stdout=subprocess.DEVNULL)


def make_home(path):
    """A node home as meshd wants it: 0700 whatever the umask (meshd refuses
    a home that group or others may write)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


class Node:
    """One meshd process with its own home.

    netns: run inside this network namespace (ip netns exec).
    listen: the address it listens on, e.g. '127.0.0.1:PORT'.
    """

    def __init__(self, name, root, listen, join=(), psk=None, netns=None, args=(), env=None):
        self.name = name
        self.home = os.path.join(root, name)
        make_home(self.home)
        self.listen = listen
        self.join = list(join)
        self.netns = netns
        self.args = list(args)
        self.env = dict(env or {})
        self.api = "unix:" + os.path.join(self.home, "api.sock")
        self.log_path = os.path.join(self.home, "meshd.log")
        self.proc = None
        self.starts = 0
        if psk:
            shutil.copyfile(psk, os.path.join(self.home, "swarm.key"))
            os.chmod(os.path.join(self.home, "swarm.key"), 0o600)

    def command(self):
        cmd = [MESHD, "--home", self.home, "--listen", self.listen, "--api", self.api,
               "--log-level", "debug"]
        for j in self.join:
            cmd += ["--join", j]
        cmd += self.args
        # wrap: a command prefix run inside the namespace (unshare, faketime).
        cmd = list(getattr(self, "wrap", ())) + cmd
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        return cmd

    def start(self, wait=True):
        env = dict(os.environ)
        env.update(self.env)
        log = open(self.log_path, "ab")
        log.write(f"--- start {self.starts} ---\n".encode())
        log.flush()
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        log.close()
        self.starts += 1
        if wait:
            wait_until(lambda: self.alive() and self.get("/node_id")[0] == 200, 20,
                       f"{self.name}'s API")
        return self

    def alive(self):
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc and self.proc.returncode}; "
                                 f"log tail:\n{self.log_tail()}")
        return True

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    @property
    def pid(self):
        return self.proc.pid

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout=10):
        """SIGTERM (a graceful leave), then SIGKILL if it does not exit."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode if self.proc else None

    def wipe(self):
        """Removes the node's home except its swarm key: a new peer ID next start."""
        psk = os.path.join(self.home, "swarm.key")
        keep = None
        if os.path.exists(psk):
            with open(psk, "rb") as f:
                keep = f.read()
        shutil.rmtree(self.home)
        make_home(self.home)
        if keep is not None:
            with open(psk, "wb") as f:
                f.write(keep)
            os.chmod(psk, 0o600)

    def api_token(self):
        """The token meshd keeps in the home (None before its first start).
        A TCP API needs it; the Unix socket the tests use does not."""
        try:
            with open(os.path.join(self.home, "api.token")) as f:
                return f.read().strip()
        except FileNotFoundError:
            return None

    def get(self, path):
        return api_request(self.api, "GET", path, token=self.api_token())

    def post(self, path, body=None):
        return api_request(self.api, "POST", path, body if body is not None else {},
                           token=self.api_token())

    def delete(self, path):
        return api_request(self.api, "DELETE", path, token=self.api_token())

    def node_id(self):
        status, body = self.get("/node_id")
        assert status == 200, body
        return body["nodeId"] if isinstance(body, dict) else body.strip().strip('"')

    def members(self):
        status, body = self.get("/members")
        assert status == 200, body
        return body["members"] if isinstance(body, dict) else body

    def member_states(self):
        """{peer ID: (state, epoch)} as this node sees its members."""
        return {m["nodeId"]: (m["state"], m["epoch"]) for m in self.members()}

    def state(self):
        status, body = self.get("/state")
        assert status == 200, body
        return body

    def metrics(self):
        status, text = self.get("/metrics")
        assert status == 200, text
        out = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                pass
        return out

    def cpu_seconds(self):
        """User + system CPU time of the process so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def store_rows(self, table):
        """The rows of one table of the node's store, read-only (SQLite in
        WAL mode lets a reader in while meshd writes)."""
        import sqlite3
        uri = "file:" + os.path.join(self.home, "mesh.db") + "?mode=ro"
        db = sqlite3.connect(uri, uri=True, timeout=5)
        try:
            return db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
        finally:
            db.close()

    def file_size(self, rel):
        total = 0
        base = os.path.join(self.home, rel)
        for p in (base, base + "-wal", base + "-shm"):
            if os.path.exists(p):
                total += os.path.getsize(p)
        return total


def metric_sum(metrics, name, **labels):
    """Sums the samples of one metric whose labels include `labels`."""
    total = 0.0
    for key, value in metrics.items():
        mname, _, rest = key.partition("{")
        if mname != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


class LocalMesh:
    """N meshd nodes on loopback sharing one swarm key, under one temp folder."""

    def __init__(self, n, args=(), root=None):
        self.root = root or tempfile.mkdtemp(prefix="meshtest-")
        self.psk = os.path.join(self.root, "swarm.key")
        keygen_psk(self.psk)
        self.ports = [free_port() for _ in range(n)]
        self.nodes = []
        for i in range(n):
            join = [f"127.0.0.1:{self.ports[0]}"] if i > 0 else []
            self.nodes.append(Node(f"n{i}", self.root, f"127.0.0.1:{self.ports[i]}", join,
                                   psk=self.psk, args=args))

    def start(self):
        for n in self.nodes:
            n.start()
        return self

    def live(self):
        return [n for n in self.nodes if n.proc and n.proc.poll() is None]

    def wait_converged(self, timeout=30):
        """Every live node sees every live node alive at its current epoch."""
        def converged():
            live = self.live()
            want = {n.node_id(): n.epoch() for n in live}
            for n in live:
                seen = {pid: ep for pid, (st, ep) in n.member_states().items() if st == "alive"}
                for pid, ep in want.items():
                    if seen.get(pid) != ep:
                        return False
            return True
        return wait_until(converged, timeout, "the view to converge")

    def close(self, keep_on_failure=False):
        for n in self.nodes:
            n.kill9()
        if not keep_on_failure:
            shutil.rmtree(self.root, ignore_errors=True)


def node_epoch(node):
    status, body = node.get("/node_id")
    assert status == 200, body
    return body["epoch"]


Node.epoch = node_epoch


class Hub:
    """The stand-in Hugging Face Hub (tests/tools/hfhub.c) on loopback or in
    a namespace. Serves one repository."""

    def __init__(self, repo="acme/tiny", weights=2, weight_size=65536, netns=None, host="127.0.0.1",
                 args=()):
        self.repo = repo
        binary = os.path.join(BUILD, "tests", "hfhub")
        cmd = [binary, "--host", host, "--port", "0", "--repo", repo, "--weights", str(weights),
               "--weight-size", str(weight_size)] + list(args)
        if BUILD:
            # GiB weights are hashed once per build tree, not at every start
            # (MESH_HFHUB_CACHE elsewhere: the rxe VM sees the tree read-only).
            cmd += ["--cache", os.environ.get("MESH_HFHUB_CACHE") or
                    os.path.join(BUILD, "tests", "hfhub-cache")]
        if netns:
            cmd = ["ip", "netns", "exec", netns] + cmd
        self.host = host
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        line = self.proc.stdout.readline().decode().strip()
        if not line.isdigit():
            err = self.proc.stderr.read().decode()
            raise AssertionError(f"hfhub did not start: {line!r} {err}")
        self.port = int(line)
        self.url = f"http://{host}:{self.port}"
        self.netns = netns

    def _request(self, method, path, body=None):
        if self.netns:
            # The hub lives in another namespace: ask through curl inside it.
            cmd = ["ip", "netns", "exec", self.netns, "curl", "-s", "-X", method,
                   self.url + path]
            if body is not None:
                cmd += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            return json.loads(out) if out.strip() else None
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None)
            raw = conn.getresponse().read()
            return json.loads(raw) if raw.strip() else None
        finally:
            conn.close()

    def stats(self):
        return self._request("GET", "/_stats")

    def fault(self, rule):
        return self._request("POST", "/_faults", rule)

    def reset(self):
        return self._request("POST", "/_reset")

    def requests_matching(self, text):
        return sum(n for p, n in self.stats().get("requests", {}).items() if text in p)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()
        self.proc.stderr.close()


def downloads_of(node, owner=None):
    """[(status name, body)] of the entries node shows, for one owner or all."""
    status, body = node.get("/downloads")
    assert status == 200, body
    out = []
    for nid, entries in body["downloads"].items():
        if owner is not None and nid != owner:
            continue
        for wrapped in entries:
            (name, inner), = wrapped.items()
            out.append((name, inner))
    return out


def first_entry(node, owner):
    """(status name, body) of the first entry node shows for owner, or
    (None, None) when it shows none."""
    ents = downloads_of(node, owner)
    return ents[0] if ents else (None, None)


def start_download(node, model, target=None, revision="main"):
    """Asks node to download model@revision for target (node itself by
    default); the API must accept it."""
    st, body = node.post("/download/start", {"targetNodeId": target or node.node_id(),
                                             "modelId": model, "revision": revision})
    assert st == 200, body


def own_completed(node):
    """Whether node's first own entry is completed."""
    return first_entry(node, node.node_id())[0] == "DownloadCompleted"


COMPLETED_LOG = re.compile(
    r"download \d+ (?P<model>\S+)@(?P<rev>\S+) completed: (?P<files>\d+) files, "
    r"(?P<bytes>\d+) bytes in (?P<ms>\d+) ms; (?:(?P<received>\d+) bytes received "
    r"\((?P<from_peers>\d+) from peers\) in (?P<span_ms>\d+) ms from the first to the last"
    r"|nothing to receive)")


def completed_downloads(node):
    """The downloads node's log says completed, oldest first: dicts of the
    line's fields as ints (model and rev as text; received, from_peers and
    span_ms None when nothing was received)."""
    out = []
    with open(node.log_path, errors="replace") as f:
        for line in f:
            m = COMPLETED_LOG.search(line)
            if m:
                out.append({k: (v if k in ("model", "rev") or v is None else int(v))
                            for k, v in m.groupdict().items()})
    return out


class HubMeshCase(unittest.TestCase):
    """A stand-in Hub serving MODEL (WEIGHTS files of SIZE bytes) and a
    LocalMesh pointed at it (make_mesh). The mesh's homes are kept when a
    test fails: a test sets self.ok = True as its last step."""
    MODEL = None
    WEIGHTS = 2
    SIZE = 1024 * 1024

    def setUp(self):
        self.hub = Hub(repo=self.MODEL, weights=self.WEIGHTS, weight_size=self.SIZE)
        self.mesh = None
        self.ok = False

    def tearDown(self):
        if self.mesh is not None:
            self.mesh.close(keep_on_failure=not self.ok)
        self.hub.close()

    def make_mesh(self, n, args_of=None, env_of=None):
        """Starts n nodes using the Hub, node i with the extra arguments
        args_of[i] and environment env_of[i]; returns them once converged."""
        self.mesh = LocalMesh(n, args=["--hf-endpoint", self.hub.url])
        for i, extra in (args_of or {}).items():
            self.mesh.nodes[i].args += extra
        for i, e in (env_of or {}).items():
            self.mesh.nodes[i].env.update(e)
        self.mesh.start()
        self.mesh.wait_converged()
        return self.mesh.nodes


def stop_rxe_nodes(case, nodes, log_prefix):
    """tearDown of the tests inside the rxe VM: kills nodes, prints each log's
    tail when case failed, and copies the logs to $MESH_RXE_RESULTS (as
    log_prefix-NAME.log) when it is set."""
    outcome = getattr(case, "_outcome", None)
    failed = any(e for _, e in getattr(outcome, "errors", []) if e) or \
        bool(getattr(getattr(outcome, "result", None), "failures", []))
    keep = os.environ.get("MESH_RXE_RESULTS")
    for n in nodes:
        if failed:
            print(f"--- {n.name} log tail ---\n{n.log_tail(40)}")
        n.kill9()
        if keep:
            subprocess.run(["cp", n.log_path, os.path.join(keep, f"{log_prefix}-{n.name}.log")],
                           check=False)


def digests(folder):
    """{relative path: SHA-256 hex} of the model files below folder (hidden
    files, such as the ownership marker and the manifest, left out)."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            if f.startswith("."):
                continue
            p = os.path.join(root, f)
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            out[os.path.relpath(p, folder)] = h.hexdigest()
    return out


def partial_bytes(folder):
    """Bytes in the .partial files below folder."""
    total = 0
    for root, _, files in os.walk(folder):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files
                     if f.endswith(".partial"))
    return total


def silent_endpoint(testcase):
    """An HTTP endpoint on loopback that takes connections and never answers
    (closed when the test case ends): downloads from it wait."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    testcase.addCleanup(s.close)
    return f"http://127.0.0.1:{s.getsockname()[1]}"


def mount_small_ext4(testcase, name, image, folder, size, options="loop"):
    """Mounts a fresh ext4 image of size bytes on folder (made if missing),
    or skips the test by name when this machine cannot: not root, no
    mkfs.ext4, no loop device. The caller unmounts (umount folder)."""
    if os.geteuid() != 0:
        testcase.skipTest(f"skipped: {name} needs root (loop-mounted ext4 image)")
    if shutil.which("mkfs.ext4") is None:
        testcase.skipTest(f"skipped: {name} needs mkfs.ext4 (e2fsprogs)")
    os.makedirs(folder, exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(size)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", image], check=True)
    r = subprocess.run(["mount", "-o", options, image, folder], capture_output=True, text=True)
    if r.returncode != 0:
        testcase.skipTest(f"skipped: {name}: no loop device here ({r.stderr.strip()})")


def journal_of(node, limit=1000):
    status, body = node.get(f"/journal?limit={limit}")
    assert status == 200, body
    return body["entries"]


def loop_lag(metrics, since=None):
    """p50, p99 (upper bounds of the histogram buckets holding them, in ms)
    and max (ms) of a node's loop lag, from its metrics (Node.metrics()).

    With since (an earlier metrics dict of the same node), p50 and p99 are
    of the samples taken in between, and max is the largest bucket bound
    reached in between (the max gauge covers the node's whole life).
    """
    def buckets(m):
        out = {}
        for key, value in m.items():
            if key.startswith("meshd_loop_lag_seconds_bucket{"):
                le = key.split('le="', 1)[1].split('"', 1)[0]
                out[float("inf") if le == "+Inf" else float(le)] = value
        return out
    now = buckets(metrics)
    if since is not None:
        before = buckets(since)
        now = {le: v - before.get(le, 0) for le, v in now.items()}
    bounds = sorted(now)
    count = now.get(float("inf"), 0)

    def quantile(q):
        if count == 0:
            return 0.0
        want = max(1, -(-q * count // 1))
        for le in bounds:
            if now[le] >= want:
                return le * 1000.0
        return float("inf")
    if since is None:
        worst = metrics.get("meshd_loop_lag_max_seconds", 0.0) * 1000.0
    else:
        worst = 0.0
        prev = 0
        for le in bounds:
            if now[le] > prev:
                worst = le * 1000.0
            prev = now[le]
    return {"p50": quantile(0.5), "p99": quantile(0.99), "max": worst, "samples": count}


# ctest's code for a test that could not run (SKIP_RETURN_CODE in
# tests/CMakeLists.txt): a skip is reported as such, never as a pass.
SKIP_EXIT = 77


def main():
    """Runs the calling test module's unittest cases and exits 0 when all
    passed, 1 when any failed, and SKIP_EXIT when none failed but some were
    skipped (each named, with its reason, on stderr)."""
    import unittest
    prog = unittest.main(module="__main__", exit=False, verbosity=2)
    result = prog.result
    for case, reason in result.skipped:
        print(f"skipped: {case.id()}: {reason}", file=sys.stderr)
    if not result.wasSuccessful():
        sys.exit(1)
    if result.testsRun == 0:
        print("no test ran", file=sys.stderr)
        sys.exit(1)
    sys.exit(SKIP_EXIT if result.skipped else 0)
