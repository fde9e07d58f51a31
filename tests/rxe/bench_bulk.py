"""Inside the rxe VM (scripts/bench-rdma-bulk): the same model moved between
two meshd peers with bulk over RDMA and over TCP, and perftest's
ib_send_bw -c UC between the same two rxe devices, in one run. Prints one
figure line each and the ratios. A benchmark: exits 0 when it measured.

meshd's speed is given two ways: the whole download, from the API call to
the entry completed (the file list from the Hub, the last rename and this
script's polling included), and its transfer, from the first byte received
to the last, as meshd's log states it at completion.

The VM's two CPUs are busy through a meshd transfer, so its speed is set by
the CPU time each byte costs. Besides the speeds it prints that cost (the
whole VM's busy CPU time per MB), the kernel CPU time per MB of
ib_send_bw's run (rxe's own work: its user time is busy-polling), and a
ceiling: the speed of a peer that does nothing but rxe's work plus what
meshd must do to every byte and ib_send_bw does not (read it from the
file, seal and open it, hash it against the Hub's SHA-256, write it), at
the speeds measured in this VM, with both CPUs busy all the time.

Node 1 (--rdma-bulk on) downloads from the stand-in Hub; node 2 then
downloads from node 1 (bulk over RDMA), deletes its copy and downloads it
again, once a round, each round followed by ib_send_bw and the per-byte
cost measures (MESH_BENCH_BULK_ROUNDS, 3). Node 1 leaves, and node 3
(--rdma-bulk on, so it takes RDMA frames) downloads from node 2, which runs
with --rdma-bulk off: the same bytes over TCP on the same links.
"""
import hashlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("MESH_TEST_SRCDIR",
                                               os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "lib"))
import meshtest  # noqa: E402

PORT = 52436
TIMINGS = ["--profile", "thunderbolt", "--probe-interval", "400ms", "--probe-timeout", "250ms"]
MODEL = "acme/bench"
WEIGHTS = 2
SIZE = int(os.environ.get("MESH_BENCH_BULK_MB", "32")) * 1024 * 1024
ROUNDS = int(os.environ.get("MESH_BENCH_BULK_ROUNDS", "3"))


def cpu_ticks():
    """(busy, kernel) CPU ticks of the whole VM so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = v
    return (user + nice + system + irq + softirq + steal, system + irq + softirq)


def cpu_seconds_since(t0):
    hz = os.sysconf("SC_CLK_TCK")
    t1 = cpu_ticks()
    return (t1[0] - t0[0]) / hz, (t1[1] - t0[1]) / hz


def sha256_speed():
    """MB hashed per CPU second with SHA-256 (OpenSSL's, as meshd's
    verification uses), in slices of 1 MiB."""
    data = os.urandom(1 << 20)
    h = hashlib.sha256()
    t0 = time.process_time()
    for _ in range(32):
        h.update(data)
    return 32 * len(data) / 1e6 / (time.process_time() - t0)


def file_io_speed(folder):
    """MB written to a file and read back per CPU second, in 1 MiB calls
    (what the serving peer's read and the downloader's write cost)."""
    data = os.urandom(1 << 20)
    path = os.path.join(folder, "io-probe")
    t0 = time.process_time()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for i in range(32):
            os.pwrite(fd, data, i << 20)
        for i in range(32):
            os.pread(fd, 1 << 20, i << 20)
    finally:
        os.close(fd)
        os.unlink(path)
    return 32 * len(data) / 1e6 / (time.process_time() - t0)


def counter(node, name):
    return meshtest.metric_sum(node.metrics(), name)


def download(node, timeout=600):
    t0 = time.monotonic()
    st, body = node.post("/download/start", {"targetNodeId": node.node_id(),
                                             "modelId": MODEL, "revision": "main"})
    assert st == 200, body
    meshtest.wait_until(lambda: meshtest.first_entry(node, node.node_id())[0] ==
                        "DownloadCompleted", timeout, f"{node.name}'s download", interval=0.2)
    return time.monotonic() - t0


IB_SIZE = 65536
IB_ITERS = 2000
IB_PORT = 18515


def listening(port):
    """Whether a TCP socket listens on port (any address), from /proc."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for line in f.readlines()[1:]:
                    local, state = line.split()[1], line.split()[3]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


def ib_send_bw():
    """MB/s of ib_send_bw -c UC, 64 KiB messages, rxe1 -> rxe2."""
    args = ["-c", "UC", "-x", "1", "-s", str(IB_SIZE), "-n", str(IB_ITERS), "-p", str(IB_PORT)]
    srv = subprocess.Popen(["ib_send_bw", "-d", "rxe1"] + args, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    # ib_send_bw's client does not retry its connection: wait for the
    # server's listening socket first.
    meshtest.wait_until(lambda: listening(IB_PORT) or srv.poll() is not None, 60,
                        "ib_send_bw's server listening")
    out = subprocess.run(["ib_send_bw", "-d", "rxe2"] + args + ["10.88.0.1"],
                         capture_output=True, text=True, timeout=300).stdout
    srv.wait(timeout=60)
    # The result line: bytes, iterations, BW peak, BW average (MB/s), rate.
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0] == "65536" and re.match(r"^[0-9.]+$", f[3]):
            return float(f[3]) * 1.048576  # perftest's MB is MiB
    return None


def cipher_speed():
    """Payload MB sealed and opened per CPU second on one thread, 64 KiB
    frames, with the faster of the two frame ciphers in this VM (what a
    byte of meshd's bulk costs the two ends; ib_send_bw encrypts nothing)."""
    tool = os.path.join(os.environ["MESH_BUILD"], "tests", "frame_bench")
    try:
        out = subprocess.run([tool, "--sizes", "65536", "--bytes", str(16 << 20), "--rounds", "1"],
                             capture_output=True, text=True, timeout=300).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    for line in out.splitlines():
        f = line.split()
        if len(f) == 6 and f[0] == "size" and f[1] == "65536":
            aes, chacha = float(f[3]), float(f[5])
            return (aes * 1000, "aes-256-gcm") if aes >= chacha else (chacha * 1000,
                                                                        "chacha20-poly1305")
    return None, None


def main():
    root = tempfile.mkdtemp(prefix="rxe-bench-bulk-")
    psk = os.path.join(root, "swarm.key")
    meshtest.keygen_psk(psk)
    os.environ["MESH_HFHUB_CACHE"] = os.path.join(root, "hfhub-cache")
    hub = meshtest.Hub(repo=MODEL, weights=WEIGHTS, weight_size=SIZE)
    nodes = []

    def add(i, bulk):
        join = [f"10.88.0.1:{PORT}"] if i > 1 else []
        n = meshtest.Node(f"n{i}", root, f"10.88.0.{i}:{PORT}", join, psk=psk,
                          args=TIMINGS + ["--transport", "rdma", "--rdma-device", f"rxe{i}",
                                          "--hf-endpoint", hub.url, "--rdma-bulk", bulk])
        n.start()
        nodes.append(n)
        return n

    try:
        n1, n2, n3 = add(1, "on"), add(2, "off"), add(3, "on")
        meshtest.wait_until(lambda: all(len([m for m in n.members() if m.get("transport") ==
                                             "rdma"]) == 2 for n in nodes), 90, "RDMA paths")
        download(n1)
        meshtest.wait_until(lambda: any(x == "DownloadCompleted" for x, _ in
                                        meshtest.downloads_of(n2, n1.node_id())), 30, "n1's entry")
        total = WEIGHTS * SIZE
        ratios, xfer_ratios, of_ceiling = [], [], []
        rdma_bytes = 0.0
        for r in range(1, ROUNDS + 1):
            # This machine's speed drifts from one minute to the next: each
            # round measures meshd, ib_send_bw and the per-byte costs
            # together, and the ratios are taken within the round.
            sent0 = counter(n1, "meshd_rdma_bulk_bytes_sent_total")
            c0 = cpu_ticks()
            t_rdma = download(n2)
            rdma_cpu, _ = cpu_seconds_since(c0)
            rdma_bytes = counter(n1, "meshd_rdma_bulk_bytes_sent_total") - sent0
            rdma_mbs = total / t_rdma / 1e6
            print(f"figure: round {r} bulk_rdma model {total} B in {t_rdma:.2f} s = "
                  f"{rdma_mbs:.1f} MB/s (bytes over RDMA frames {rdma_bytes:.0f})")
            # meshd's own account: the whole download, and its transfer from
            # the first byte received to the last (without the file list,
            # the last file's rename and this script's polling).
            log = [d for d in meshtest.completed_downloads(n2) if d["model"] == MODEL][-1]
            xfer_mbs = log["received"] / (log["span_ms"] / 1000) / 1e6 if log["span_ms"] else 0
            print(f"figure: round {r} meshd's log: download {log['ms']} ms, its transfer "
                  f"{log['received']} B in {log['span_ms']} ms = {xfer_mbs:.1f} MB/s")
            if r < ROUNDS:
                st, body = n2.delete(f"/download/{n2.node_id()}/{MODEL}")
                assert st == 200, body
                meshtest.wait_until(lambda: not meshtest.downloads_of(n2, n2.node_id()), 60,
                                    "n2's copy deleted")
            c0 = cpu_ticks()
            bw = ib_send_bw()
            _, rxe_cpu = cpu_seconds_since(c0)
            if not bw:
                print(f"figure: round {r} ib_send_bw gave no result")
                continue
            ratios.append(rdma_mbs / bw)
            xfer_ratios.append(xfer_mbs / bw)
            print(f"figure: round {r} ib_send_bw -c UC 64 KiB = {bw:.1f} MB/s; "
                  f"meshd bulk over RDMA / ib_send_bw = {rdma_mbs / bw:.2f} (the whole "
                  f"download), {xfer_mbs / bw:.2f} (its transfer)")
            rxe_per_mb = rxe_cpu / (IB_ITERS * IB_SIZE / 1e6)
            print(f"figure: round {r} CPU per MB moved: meshd over RDMA "
                  f"{rdma_cpu / (total / 1e6) * 1000:.1f} ms (the whole VM, busy); "
                  f"ib_send_bw's kernel (rxe) {rxe_per_mb * 1000:.1f} ms")
            cipher, name = cipher_speed()
            sha = sha256_speed()
            io = file_io_speed(root)
            if not cipher:
                continue
            ncpu = os.cpu_count() or 1
            ceiling = ncpu / (rxe_per_mb + 1 / cipher + 1 / sha + 1 / io)
            of_ceiling.append(xfer_mbs / ceiling)
            print(f"figure: round {r} per CPU second in this VM: frame cipher {name} "
                  f"{cipher:.1f} MB sealed and opened (64 KiB frames), SHA-256 {sha:.1f} MB, "
                  f"a file written and read back {io:.1f} MB")
            print(f"figure: round {r} ceiling on {ncpu} CPUs (rxe's work, seal and open, "
                  f"SHA-256, file read and write, nothing else) = {ceiling:.1f} MB/s = "
                  f"{ceiling / bw:.2f} x ib_send_bw; meshd's transfer / ceiling = "
                  f"{xfer_mbs / ceiling:.2f}")
        if ratios:
            print(f"figure: median over {len(ratios)} rounds: meshd bulk over RDMA / "
                  f"ib_send_bw = {statistics.median(ratios):.2f} (the whole download), "
                  f"{statistics.median(xfer_ratios):.2f} (its transfer)")
        if of_ceiling:
            print(f"figure: median over {len(of_ceiling)} rounds: meshd's transfer / "
                  f"ceiling = {statistics.median(of_ceiling):.2f}")
        # The same bytes over TCP: n3 takes them from n2 (bulk off).
        id1 = n1.node_id()
        n1.stop()
        nodes.remove(n1)
        meshtest.wait_until(lambda: id1 not in
                            {p for p, (st, _) in n3.member_states().items() if st == "alive"},
                            30, "n1 gone")
        meshtest.wait_until(lambda: any(x == "DownloadCompleted" for x, _ in
                                        meshtest.downloads_of(n3, n2.node_id())), 30, "n2's entry")
        t_tcp = download(n3)
        tcp_rdma_bytes = counter(n2, "meshd_rdma_bulk_bytes_sent_total")
        tcp_mbs = total / t_tcp / 1e6
        print(f"figure: bulk_tcp  model {total} B in {t_tcp:.2f} s = {tcp_mbs:.1f} MB/s "
              f"(bytes over RDMA frames {tcp_rdma_bytes:.0f}); last round's rdma/tcp = "
              f"{rdma_mbs / tcp_mbs:.2f}")
    finally:
        for n in nodes:
            n.kill9()
        hub.close()


if __name__ == "__main__":
    main()
