"""Multi-host scenarios: meshd nodes in network namespaces (tests/lib/netns.py)
driven through their control APIs (tests/lib/meshtest.py).

Durations scale with MESH_SCENARIO_SCALE (default 1.0 = the CI length; the
full-length runs of scripts/netns-suite --full set it higher). Each scenario
prints its figures at the end as `figure: NAME = VALUE UNIT` lines.
"""

import fcntl
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import meshtest  # noqa: E402
import netns  # noqa: E402

PORT = 52416
SCALE = float(os.environ.get("MESH_SCENARIO_SCALE", "1.0"))


def scaled(seconds):
    return max(1.0, seconds * SCALE)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# SIGTERM (ctest's timeout, a CI runner stopping) unwinds like SIGINT, so the
# context managers below remove what they made.
signal.signal(signal.SIGTERM, _raise_interrupt)
# Also when started with SIGINT ignored (a background job of a script).
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGHUP, _raise_interrupt)


class _Lock:
    """One scenario at a time on this machine (ctest may start several): they
    measure timing and CPU, and two meshes would share the two cores."""

    def __init__(self):
        os.makedirs(netns.STATE_DIR, exist_ok=True)
        self.f = open(os.path.join(netns.STATE_DIR, "scenario.lock"), "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)

    def release(self):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def figure(name, value, unit=""):
    if isinstance(value, float):
        value = f"{value:.3f}"
    print(f"figure: {name} = {value} {unit}".rstrip(), flush=True)


class NetMesh:
    """n meshd nodes, one per namespace, all joining the first.

    extra_hosts: namespaces on the same bridge with no meshd (for the
    stand-in Hub or a hostile process).
    """

    def __init__(self, n, args=(), extra_hosts=0, env=None, hub=None, multiaddr=False):
        """hub: keyword arguments of meshtest.Hub; the Hub then runs on the
        first extra host and every node gets --hf-endpoint for it.
        multiaddr: --listen and --join as /ip4/IP/tcp/PORT, as the operations
        guide writes them, instead of IP:PORT."""
        self.multiaddr = multiaddr
        netns.require_root()
        self.hub_args = hub
        if hub is not None:
            extra_hosts = max(1, extra_hosts)
        self.lock = _Lock()
        self.cluster = netns.Cluster(n + extra_hosts)
        self.root = tempfile.mkdtemp(prefix="meshns-")
        os.chmod(self.root, 0o755)
        self.psk = os.path.join(self.root, "swarm.key")
        meshtest.keygen_psk(self.psk)
        self.args = list(args)
        self.env = env
        self.n = n
        self.nodes = []
        self.extra = []
        self.procs = []
        self.hubs = []
        self.mounts = []

    def __enter__(self):
        try:
            self.cluster.create()
            hosts = self.cluster.hosts
            seed = self.addr_of(hosts[0])
            self.extra = hosts[self.n:]
            self.the_hub = None
            if self.hub_args is not None:
                self.the_hub = self.hub(self.extra[0], **self.hub_args)
                self.args += ["--hf-endpoint", self.the_hub.url]
            for i in range(self.n):
                h = hosts[i]
                join = [seed] if i > 0 else []
                self.nodes.append(meshtest.Node(f"n{i}", self.root, self.addr_of(h), join,
                                                psk=self.psk, netns=h.ns, args=self.args,
                                                env=self.env))
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc):
        # Nothing below may be cut short by a second signal.
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for h in self.hubs:
                h.close()
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(5)
            for n in self.nodes:
                if n.proc and n.proc.poll() is None:
                    n.signal(signal.SIGCONT)
                n.kill9()
            for path in self.mounts:
                netns.run("umount", "-l", path, check=False)
            self.cluster.cleanup()
            if exc[0] is None or issubclass(exc[0], KeyboardInterrupt):
                shutil.rmtree(self.root, ignore_errors=True)
            else:
                for n in self.nodes:
                    print(f"--- {n.name} log tail\n{n.log_tail(15)}", file=sys.stderr)
                print(f"kept {self.root} for inspection", file=sys.stderr)
        finally:
            self.lock.release()
            signal.signal(signal.SIGINT, old)
        return False

    def addr_of(self, host):
        """The address a node on host listens on, in this mesh's form."""
        if self.multiaddr:
            return f"/ip4/{host.ip}/tcp/{PORT}"
        return f"{host.ip}:{PORT}"

    def hub(self, host, **kw):
        """The stand-in Hub on an extra host (its own namespace)."""
        h = meshtest.Hub(netns=host.ns, host=host.ip, **kw)
        self.hubs.append(h)
        return h

    def mount_tmpfs(self, path, size):
        """A small tmpfs at path (a full disk), unmounted at exit."""
        os.makedirs(path, exist_ok=True)
        self.cluster.record_mount(path)
        netns.run("mount", "-t", "tmpfs", "-o", f"size={size}", "meshtest", path)
        self.mounts.append(path)

    def host_of(self, node):
        return self.cluster.hosts[self.nodes.index(node)]

    def start(self):
        for n in self.nodes:
            n.start()
        return self

    def live(self):
        return [n for n in self.nodes if n.proc and n.proc.poll() is None]

    def views(self, nodes=None):
        """{observer name: {peer ID: (state, epoch)}}."""
        return {n.name: n.member_states() for n in (nodes or self.live())}

    def converged(self, nodes):
        """True when every node in `nodes` sees every node of `nodes` alive at
        its latest epoch (a node declared dead in its epoch renews it in
        place, so epochs may have grown)."""
        want = {n.node_id(): n.epoch() for n in nodes}
        for n in nodes:
            seen = n.member_states()
            for pid, ep in want.items():
                st = seen.get(pid)
                if st is None or st[0] != "alive" or st[1] != ep:
                    return False
        return True

    def download_everywhere(self, model, timeout=60):
        """Every node downloads model for itself (from the Hub), and every
        node shows every node's entry completed. Returns {name: peer ID}."""
        ids = {n.name: n.node_id() for n in self.nodes}
        for n in self.nodes:
            status, body = n.post("/download/start", {"targetNodeId": ids[n.name],
                                                      "modelId": model, "revision": "main"})
            if status not in (200, 202):
                raise AssertionError(f"{n.name}: /download/start answered {status}: {body}")
        wait_downloads(self.nodes, ids.values(), model, "DownloadCompleted", timeout)
        return ids

    def wait_converged(self, nodes=None, timeout=60):
        nodes = nodes or self.live()
        start = time.monotonic()
        meshtest.wait_until(lambda: self.converged(nodes), timeout,
                            f"view of {[n.name for n in nodes]} to converge")
        return time.monotonic() - start

    def wait_seen_as(self, observers, target_id, states, timeout, epoch=None):
        """Waits until every observer sees target_id in one of `states`
        (and at `epoch` when given); returns seconds taken."""
        start = time.monotonic()

        def ok():
            for o in observers:
                st = o.member_states().get(target_id)
                if st is None:
                    if "absent" not in states:
                        return False
                    continue
                if st[0] not in states or (epoch is not None and st[1] != epoch):
                    return False
            return True

        meshtest.wait_until(ok, timeout, f"{target_id[-8:]} to be {states} for all")
        return time.monotonic() - start


def cpu_of(nodes):
    return {n.name: n.cpu_seconds() for n in nodes}


def wait_downloads(nodes, owner_ids, model, status, timeout):
    """Every node shows, for each owner, exactly one entry of model in status
    (no duplicates, none missing)."""
    def ok():
        bad = []
        for n in nodes:
            for oid in owner_ids:
                ents = [s for s, b in meshtest.downloads_of(n, oid) if b.get("modelId") == model]
                if ents != [status]:
                    bad.append(f"{n.name} shows {oid[-8:]}: {ents}")
        if bad:
            raise ValueError("; ".join(bad))
        return True
    start = time.monotonic()
    meshtest.wait_until(ok, timeout, f"every node to show {model} {status} for each owner")
    return time.monotonic() - start
