"""The "busy node" check shared by tests/integration/test_busy_node.py,
tests/netns/test_busy.py and scripts/bench-busy.

One node of a mesh downloads a large model from the stand-in Hub (with
fsync, as meshd always does) and then deletes it. A Watch samples, every
~100 ms from a thread of its own, what the issue says must hold throughout:

  - the busy node's control API answers GET /node_id within a second;
  - its epoch never changes (neither its own nor the one its peers see);
  - no peer ever holds it dead (GET /members on every peer).

It also counts the samples in which a peer held it suspect. The figures
that are printed, not asserted: suspicions raised by the peers (their
meshd_swim_suspicions_total over the window) and the busy node's loop lag
p50/p99/max from its meshd_loop_lag_seconds histogram.
"""

import http.client
import math
import os
import threading
import time

import meshtest

API_LIMIT = 1.0  # seconds: the bound for one control API answer
INTERVAL = 0.1

LAG = "meshd_loop_lag_seconds"


def parse_size(text):
    """'1GiB', '512MiB', '65536' -> bytes."""
    text = text.strip()
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
    for u, mult in units.items():
        if text.endswith(u):
            return int(float(text[:-len(u)]) * mult)
    return int(text)


def env_size(name, default):
    v = os.environ.get(name)
    return parse_size(v) if v else default


class Watch:
    """Samples busy and its peers until stop(); see the module comment."""

    def __init__(self, busy, peers, interval=INTERVAL, api_limit=API_LIMIT):
        self.busy = busy
        self.peers = list(peers)
        self.interval = interval
        self.api_limit = api_limit
        self.busy_id = busy.node_id()
        self.epoch = busy.epoch()
        self.samples = 0              # GET /node_id asked of the busy node
        self.peer_samples = 0         # rounds of GET /members asked of every peer
        self.api_worst = 0.0          # slowest answer of the busy node's API
        self.api_late = []            # (t, seconds) answers over api_limit
        self.api_errors = []          # (t, text) requests that failed outright
        self.epochs_seen = set()      # the busy node's own epoch, every sample
        self.peer_epochs_seen = set() # the epoch its peers hold it at
        self.dead_seen = []           # (t, peer name) a peer held it dead
        self.absent_seen = []         # (t, peer name) a peer did not list it
        self.suspect_samples = 0      # samples in which some peer held it suspect
        self.suspect_episodes = 0     # alive -> suspect transitions seen, all peers
        self.peer_errors = []         # (t, peer name, text) a peer's API failed
        self._last_state = {}
        self._stop = threading.Event()
        self._threads = []
        self.t0 = None

    def start(self):
        self.t0 = time.monotonic()
        # Two threads: a stalled busy node must not slow the sampling of how
        # its peers see it.
        self._threads = [
            threading.Thread(target=self._every, args=(self._busy_tick,), name="busy-api",
                             daemon=True),
            threading.Thread(target=self._every, args=(self._peers_tick,), name="busy-peers",
                             daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(30)
        self.seconds = time.monotonic() - self.t0
        return self

    def _now(self):
        return round(time.monotonic() - self.t0, 2)

    def _sample_busy(self):
        t = self._now()
        start = time.monotonic()
        try:
            status, body = meshtest.api_request(self.busy.api, "GET", "/node_id", timeout=10)
        except (OSError, http.client.HTTPException) as e:
            self.api_errors.append((t, f"{type(e).__name__}: {e}"))
            return
        took = time.monotonic() - start
        self.api_worst = max(self.api_worst, took)
        if took > self.api_limit:
            self.api_late.append((t, round(took, 3)))
        if status != 200 or not isinstance(body, dict):
            self.api_errors.append((t, f"status {status}: {body!r}"[:200]))
            return
        self.epochs_seen.add(body["epoch"])

    def _sample_peer(self, p):
        t = self._now()
        try:
            status, body = meshtest.api_request(p.api, "GET", "/members", timeout=10)
        except (OSError, http.client.HTTPException) as e:
            self.peer_errors.append((t, p.name, f"{type(e).__name__}: {e}"))
            return False
        if status != 200:
            self.peer_errors.append((t, p.name, f"status {status}"))
            return False
        mine = [m for m in body["members"] if m["nodeId"] == self.busy_id]
        if not mine:
            self.absent_seen.append((t, p.name))
            self._last_state[p.name] = "absent"
            return False
        st = mine[0]["state"]
        self.peer_epochs_seen.add(mine[0]["epoch"])
        if st == "dead":
            self.dead_seen.append((t, p.name))
        if st == "suspect" and self._last_state.get(p.name) != "suspect":
            self.suspect_episodes += 1
        self._last_state[p.name] = st
        return st == "suspect"

    def _every(self, fn):
        while not self._stop.is_set():
            start = time.monotonic()
            fn()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - start)))

    def _busy_tick(self):
        self._sample_busy()
        self.samples += 1

    def _peers_tick(self):
        suspect = False
        for p in self.peers:
            suspect = self._sample_peer(p) or suspect
        if suspect:
            self.suspect_samples += 1
        self.peer_samples += 1

    def problems(self):
        """What broke the rules, as lines (empty when all held)."""
        out = []
        if self.api_late:
            out.append(f"busy node's API answered later than {self.api_limit}s "
                       f"{len(self.api_late)} times (t, s): {self.api_late[:10]}")
        if self.api_errors:
            out.append(f"busy node's API failed {len(self.api_errors)} times: "
                       f"{self.api_errors[:5]}")
        if self.epochs_seen - {self.epoch}:
            out.append(f"busy node's epoch changed: started at {self.epoch}, "
                       f"seen {sorted(self.epochs_seen)}")
        if self.peer_epochs_seen - {self.epoch}:
            out.append(f"peers held the busy node at epochs {sorted(self.peer_epochs_seen)}, "
                       f"not only {self.epoch}")
        if self.dead_seen:
            out.append(f"peers held the busy node dead {len(self.dead_seen)} times "
                       f"(t, peer): {self.dead_seen[:10]}")
        if self.absent_seen:
            out.append(f"peers did not list the busy node {len(self.absent_seen)} times: "
                       f"{self.absent_seen[:10]}")
        if self.peer_errors:
            out.append(f"peers' APIs failed {len(self.peer_errors)} times: "
                       f"{self.peer_errors[:5]}")
        if self.samples < 10 or self.peer_samples < 10:
            out.append(f"too few samples: {self.samples} of the busy node's API, "
                       f"{self.peer_samples} of its peers' views")
        return out


def lag_figures(before, after):
    """Loop lag over a window, from two /metrics snapshots of one node:
    {"count", "p50", "p99", "max", "max_is_bound"} in seconds, or None when
    the node does not export meshd_loop_lag_seconds.

    p50 and p99 are the upper bounds of the buckets that hold them
    (meshtest.loop_lag). max is the node's running maximum
    (meshd_loop_lag_max_seconds, a gauge since start) when it grew in the
    window, so it is the window's own; else the bound of the highest bucket
    that counted anything in the window (max_is_bound: "at most that").
    """
    if not any(k.startswith(LAG + "_bucket{") for k in after):
        return None
    lag = meshtest.loop_lag(after, since=before)
    out = {"count": int(lag["samples"]), "p50": lag["p50"] / 1000.0,
           "p99": lag["p99"] / 1000.0, "max": lag["max"] / 1000.0, "max_is_bound": True}
    g0 = before.get("meshd_loop_lag_max_seconds")
    g1 = after.get("meshd_loop_lag_max_seconds")
    if g1 is not None and (g0 is None or g1 > g0):
        out["max"] = g1
        out["max_is_bound"] = False
        # No quantile lies above the maximum; the bucket bound may.
        out["p50"] = min(out["p50"], g1)
        out["p99"] = min(out["p99"], g1)
    return out


def figure(name, value, unit=""):
    """One `figure: NAME = VALUE UNIT` line, as the netns scenarios print."""
    if isinstance(value, float):
        value = f"{value:.3f}"
    print(f"figure: {name} = {value} {unit}".rstrip(), flush=True)


def fmt_ms(v):
    """Seconds as milliseconds; inf (beyond the last bucket) as such."""
    if v is None:
        return "n/a"
    if math.isinf(v):
        return "inf"
    return f"{v * 1000:.2f}"


def suspicions(before, after, peers):
    """Suspicions and deaths the peers raised over the window (every one of
    their probes' accusations: with three nodes and only one busy, they are
    about the busy node unless the machine starved the peers too)."""
    s = d = 0.0
    for p in peers:
        s += (meshtest.metric_sum(after[p.name], "meshd_swim_suspicions_total") -
              meshtest.metric_sum(before[p.name], "meshd_swim_suspicions_total"))
        d += (meshtest.metric_sum(after[p.name], "meshd_swim_deaths_declared_total") -
              meshtest.metric_sum(before[p.name], "meshd_swim_deaths_declared_total"))
    return int(s), int(d)


def report(prefix, watch, lag, susp, deaths, download_s, delete_s, total_bytes, figure):
    """Prints the figures of one busy-node run through figure(name, value, unit)."""
    figure(f"{prefix}_download_seconds", download_s, "s")
    figure(f"{prefix}_download_mb_per_s", total_bytes / download_s / 1e6 if download_s else 0.0,
           "MB/s")
    figure(f"{prefix}_delete_seconds", delete_s, "s")
    figure(f"{prefix}_samples", watch.samples)
    figure(f"{prefix}_peer_samples", watch.peer_samples)
    figure(f"{prefix}_api_worst_seconds", watch.api_worst, "s")
    figure(f"{prefix}_suspicions_raised_by_peers", susp)
    figure(f"{prefix}_deaths_declared_by_peers", deaths)
    figure(f"{prefix}_suspect_samples", watch.suspect_samples)
    figure(f"{prefix}_suspect_episodes", watch.suspect_episodes)
    figure(f"{prefix}_epochs_seen", ",".join(str(e) for e in sorted(watch.epochs_seen)))
    if lag is None:
        figure(f"{prefix}_loop_lag", "not exported (no meshd_loop_lag_seconds)")
        return
    figure(f"{prefix}_loop_lag_count", lag["count"])
    figure(f"{prefix}_loop_lag_p50_ms", fmt_ms(lag["p50"]), "(at most: a bucket bound)")
    figure(f"{prefix}_loop_lag_p99_ms", fmt_ms(lag["p99"]), "(at most: a bucket bound)")
    figure(f"{prefix}_loop_lag_max_ms", fmt_ms(lag["max"]),
           "(at most: a bucket bound)" if lag["max_is_bound"] else "")


def own_entry(node, nid, model):
    ents = [(s, b) for s, b in meshtest.downloads_of(node, nid) if b.get("modelId") == model]
    return ents[0] if ents else (None, None)


def metrics_when_up(node, timeout=30):
    """node.metrics(), waiting while its API does not answer (a node that
    restarted itself)."""
    def get():
        try:
            return node.metrics()
        except AssertionError:  # an answer other than 200
            return None
    return meshtest.wait_until(get, timeout, f"{node.name}'s /metrics")


def download_and_delete(busy, model, model_dir, timeout, on_completed=None):
    """Starts the download of model on busy (its own entry), waits for it to
    complete, then deletes it and waits for the entry and the directory to
    go. Returns (download seconds, delete seconds). A failed entry or a node
    that exited fails at once. on_completed() runs as soon as the download
    is seen completed, before the delete (to take figures of the download
    alone)."""
    nid = busy.node_id()
    t0 = time.monotonic()
    status, body = busy.post("/download/start",
                             {"targetNodeId": nid, "modelId": model, "revision": "main"})
    if status not in (200, 202):
        raise AssertionError(f"download/start: {status} {body}")

    def completed():
        busy.alive()
        name, e = own_entry(busy, nid, model)
        if name == "DownloadFailed":
            raise AssertionError(f"the download failed: {e}")
        return name == "DownloadCompleted"

    meshtest.wait_until(completed, timeout, f"{model} to complete on {busy.name}", interval=0.2)
    download_s = time.monotonic() - t0
    if on_completed is not None:
        on_completed()
    t1 = time.monotonic()

    def delete():
        # A node that restarted itself refuses connections for a while: that
        # is the watch's to report; the delete is asked again until it lands.
        status, body = busy.delete(f"/download/{nid}/{model}")
        if status in (200, 202):
            return True
        if status >= 500:
            return False
        raise AssertionError(f"delete: {status} {body}")

    meshtest.wait_until(delete, timeout, f"{busy.name} to take the delete", interval=0.2)

    def gone():
        busy.alive()
        return own_entry(busy, nid, model)[0] is None and not os.path.exists(model_dir)

    meshtest.wait_until(gone, timeout, f"{model} to be deleted on {busy.name}", interval=0.2)
    return download_s, time.monotonic() - t1


def run_and_judge(node, peers, model, model_dir, total_bytes, prefix, figure_fn, timeout):
    """The busy-node scenario on a running mesh: watch node and its peers
    while node downloads model into model_dir and deletes it, wait until
    every peer holds it alive again, print the figures (whatever happened)
    and return the list of problems found (empty when the node held up)."""
    before = {p.name: p.metrics() for p in peers}
    node_before = node.metrics()
    watch = Watch(node, peers).start()
    failure = None
    dl_s = del_s = 0.0
    try:
        dl_s, del_s = download_and_delete(node, model, model_dir, timeout)
        # A suspicion raised near the end is settled before the watch
        # stops: every peer holds the node alive again.
        meshtest.wait_until(
            lambda: all(p.member_states().get(watch.busy_id, ("",))[0] == "alive"
                        for p in peers), 60, "peers to hold the busy node alive")
    except AssertionError as e:
        failure = f"{type(e).__name__}: {e}"
    finally:
        watch.stop()
    after = {p.name: p.metrics() for p in peers}
    lag = lag_figures(node_before, node.metrics())
    susp, deaths = suspicions(before, after, peers)
    report(prefix, watch, lag, susp, deaths, dl_s, del_s, total_bytes, figure_fn)
    problems = watch.problems()
    if failure is not None:
        problems.append(failure)
    if lag is None:
        problems.append("the busy node does not export meshd_loop_lag_seconds")
    elif lag["count"] == 0:
        problems.append("meshd_loop_lag_seconds counted nothing during the run")
    return problems
