"""A small cluster of hosts on one machine, for multi-host fault tests.

Each host is a network namespace with one veth into a bridge that lives in a
namespace of its own, so nothing is created in the caller's namespace and
nothing there is touched. Every name carries a prefix and the run's ID, and
the set of names is written to a state file before anything is created:
cleanup() removes exactly those, and cleanup_stale() removes what runs that
died left behind (their owner process is gone). No interface that this module
did not create is ever modified.

Faults: nftables rules inside a host's namespace (loss with numgen random,
one-way and two-way partitions), and link down/up of a host's veth.
"""

import json
import os
import subprocess

STATE_DIR = "/run/meshd-netns"
PREFIX = "mshd"


def run(*cmd, check=True, capture=False):
    r = subprocess.run(cmd, check=False, text=True,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout if capture else r.returncode


def require_root():
    if os.geteuid() != 0:
        raise SystemExit("netns tests need root (ip netns, nftables): run as root")
    if run("ip", "netns", "list", check=False) != 0:
        raise SystemExit("netns tests need 'ip netns' (iproute2) and network namespaces")
    if run("nft", "--version", check=False) != 0:
        raise SystemExit("netns tests need nftables (nft)")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _delete_names(names):
    existing = set(run("ip", "netns", "list", capture=True, check=False).split())
    for ns in names:
        if ns in existing:
            # Killing what runs inside first lets the namespace go at once.
            pids = run("ip", "netns", "pids", ns, capture=True, check=False).split()
            for p in pids:
                try:
                    os.kill(int(p), 9)
                except (ProcessLookupError, ValueError):
                    pass
            run("ip", "netns", "del", ns, check=False)


def cleanup_stale():
    """Removes namespaces recorded by runs whose process no longer exists."""
    if not os.path.isdir(STATE_DIR):
        return 0
    removed = 0
    for fn in os.listdir(STATE_DIR):
        path = os.path.join(STATE_DIR, fn)
        try:
            with open(path) as f:
                st = json.load(f)
        except (OSError, ValueError):
            continue
        if _pid_alive(st.get("pid", -1)):
            continue
        _delete_names(st.get("namespaces", []))
        for m in st.get("mounts", []):
            run("umount", "-l", m, check=False)
        os.unlink(path)
        removed += 1
    return removed


class Host:
    def __init__(self, cluster, index):
        self.cluster = cluster
        self.index = index
        self.ns = f"{cluster.tag}-h{index}"
        self.veth = f"{cluster.tag}-v{index}"  # our end, inside the host namespace
        self.peer = f"{cluster.tag}-p{index}"  # the bridge's end
        self.ip = f"{cluster.subnet}.{index + 10}"

    def exec(self, *cmd, check=True, capture=False):
        return run("ip", "netns", "exec", self.ns, *cmd, check=check, capture=capture)


class Cluster:
    """n hosts on one bridge. Use as a context manager: cleanup always runs."""

    def __init__(self, n, subnet_id=None):
        require_root()
        cleanup_stale()
        self.run_id = f"{os.getpid() % 100000}"
        self.tag = f"{PREFIX}{self.run_id}"
        octet = subnet_id if subnet_id is not None else 100 + os.getpid() % 100
        self.subnet = f"10.213.{octet}"
        self.bridge_ns = f"{self.tag}-br"
        self.hosts = [Host(self, i) for i in range(n)]
        self.state_path = os.path.join(STATE_DIR, f"{self.tag}.json")
        self.mounts = []
        self._created = False

    def names(self):
        return [self.bridge_ns] + [h.ns for h in self.hosts]

    def __enter__(self):
        self.create()
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def create(self):
        os.makedirs(STATE_DIR, exist_ok=True)
        existing = set(run("ip", "netns", "list", capture=True, check=False).split())
        clash = [n for n in self.names() if n in existing]
        if clash:
            raise RuntimeError(f"namespaces already exist, not ours to touch: {clash}")
        self._write_state()
        self._created = True
        run("ip", "netns", "add", self.bridge_ns)
        br = "ip", "netns", "exec", self.bridge_ns
        run(*br, "ip", "link", "add", "br0", "type", "bridge")
        run(*br, "ip", "link", "set", "br0", "up")
        for h in self.hosts:
            run("ip", "netns", "add", h.ns)
            # Created directly inside the bridge namespace: the caller's
            # namespace never holds either end.
            run(*br, "ip", "link", "add", h.peer, "type", "veth", "peer", "name", h.veth)
            run(*br, "ip", "link", "set", h.veth, "netns", h.ns)
            run(*br, "ip", "link", "set", h.peer, "master", "br0")
            run(*br, "ip", "link", "set", h.peer, "up")
            h.exec("ip", "link", "set", "lo", "up")
            h.exec("ip", "addr", "add", f"{h.ip}/24", "dev", h.veth)
            h.exec("ip", "link", "set", h.veth, "up")
            h.exec("nft", "add", "table", "inet", "meshfault")
            h.exec("nft", "add", "chain", "inet", "meshfault", "in",
                   "{ type filter hook input priority 0; policy accept; }")
            h.exec("nft", "add", "chain", "inet", "meshfault", "out",
                   "{ type filter hook output priority 0; policy accept; }")

    def _write_state(self):
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"pid": os.getpid(), "namespaces": self.names(), "mounts": self.mounts}, f)
        os.replace(tmp, self.state_path)

    def record_mount(self, path):
        """Notes a mount made for this run, so that a run that died leaves
        nothing mounted (cleanup_stale unmounts it)."""
        self.mounts.append(path)
        self._write_state()

    def cleanup(self):
        if not self._created:
            return
        _delete_names(self.names())
        for m in self.mounts:
            run("umount", "-l", m, check=False)
        try:
            os.unlink(self.state_path)
        except FileNotFoundError:
            pass
        self._created = False

    # Faults -----------------------------------------------------------------

    def loss(self, percent, hosts=None):
        """Drops percent% of packets arriving at each host (both directions
        of every link see loss, since every host filters its input)."""
        for h in hosts or self.hosts:
            h.exec("nft", "flush", "chain", "inet", "meshfault", "in")
            if percent > 0:
                h.exec("nft", "add", "rule", "inet", "meshfault", "in", "iifname", h.veth,
                       "numgen", "random", "mod", "100", "<", str(int(percent)), "counter",
                       "drop")

    def partition(self, side_a, side_b, oneway=False):
        """Cuts traffic from side_a to side_b (and back unless oneway)."""
        for a in side_a:
            for b in side_b:
                a.exec("nft", "add", "rule", "inet", "meshfault", "out",
                       "ip", "daddr", b.ip, "drop")
                if not oneway:
                    b.exec("nft", "add", "rule", "inet", "meshfault", "out",
                           "ip", "daddr", a.ip, "drop")

    def heal(self):
        for h in self.hosts:
            h.exec("nft", "flush", "chain", "inet", "meshfault", "in")
            h.exec("nft", "flush", "chain", "inet", "meshfault", "out")

    def dropped(self, host):
        """Packets host's current fault rules dropped so far (their counters)."""
        out = host.exec("nft", "list", "table", "inet", "meshfault", capture=True)
        total = 0
        words = out.split()
        for i, w in enumerate(words[:-1]):
            if w == "packets":
                total += int(words[i + 1])
        return total
