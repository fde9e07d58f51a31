"""Helpers for the transport's cross-process tests: a transport_peer echo
server whose counters can be read at any time, and a client run to its end.
Every wait has a deadline."""

import json
import os
import select
import signal
import subprocess
import tempfile
import time

BUILD = os.environ.get("MESH_BUILD", "")
PEER = os.path.join(BUILD, "tests", "transport_peer")


def keygen(dirname, name="swarm.key"):
    path = os.path.join(dirname, name)
    subprocess.run([PEER, "keygen", path], check=True, timeout=30)
    return path


class Server:
    def __init__(self, psk, *extra):
        self.proc = subprocess.Popen([PEER, "serve", "--psk", psk, *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self._line(10)
        if not line.startswith("listening "):
            raise AssertionError("transport_peer serve said %r" % line)
        self.addr = line.split()[1]
        self.plain_addr = self.addr.split("/p2p/")[0]

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no line from transport_peer within %ss" % timeout)
            r, _, _ = select.select([fd], [], [], left)
            if r:
                c = os.read(fd, 1)
                if not c:
                    raise AssertionError("transport_peer closed its output")
                buf += c
        return buf.decode().strip()

    def counters(self):
        self.proc.send_signal(signal.SIGUSR1)
        return json.loads(self._line(10))

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return -9
        return self.proc.returncode


def client(*args, timeout=60):
    """Runs transport_peer with args; returns (exit code, output lines)."""
    p = subprocess.run([PEER, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       timeout=timeout)
    return p.returncode, p.stdout.decode().splitlines()


def client_counters(lines):
    for line in reversed(lines):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError("no counters in %r" % lines)


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))
        time.sleep(interval)


def tmpdir():
    return tempfile.mkdtemp(prefix="mesh-transport-")
