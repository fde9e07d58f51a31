"""Inside the rxe VM (scripts/bench-rdma-bulk): the same model moved between
two meshd peers with bulk over RDMA and over TCP, and perftest's
ib_send_bw -c UC between the same two rxe devices, in one run. Prints one
figure line each and the ratios. A benchmark: exits 0 when it measured.

Node 1 (--rdma-bulk on) downloads from the stand-in Hub; node 2 then
downloads from node 1 (bulk over RDMA). Node 1 leaves, and node 3
(--rdma-bulk on, so it takes RDMA frames) downloads from node 2, which runs
with --rdma-bulk off: the same bytes over TCP on the same links.
"""
import os
import re
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


def ib_send_bw():
    """MB/s of ib_send_bw -c UC, 64 KiB messages, rxe1 -> rxe2."""
    srv = subprocess.Popen(["ib_send_bw", "-c", "UC", "-d", "rxe1", "-x", "1", "-s", "65536",
                            "-n", "2000", "-p", "18515"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    time.sleep(1)  # ib_send_bw's client does not retry its connection
    out = subprocess.run(["ib_send_bw", "-c", "UC", "-d", "rxe2", "-x", "1", "-s", "65536",
                          "-n", "2000", "-p", "18515", "10.88.0.1"], capture_output=True,
                         text=True, timeout=300).stdout
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
        t_rdma = download(n2)
        rdma_bytes = counter(n1, "meshd_rdma_bulk_bytes_sent_total")
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
        total = WEIGHTS * SIZE
        rdma_mbs, tcp_mbs = total / t_rdma / 1e6, total / t_tcp / 1e6
        print(f"figure: bulk_rdma model {total} B in {t_rdma:.2f} s = {rdma_mbs:.1f} MB/s "
              f"(bytes over RDMA frames {rdma_bytes:.0f})")
        print(f"figure: bulk_tcp  model {total} B in {t_tcp:.2f} s = {tcp_mbs:.1f} MB/s "
              f"(bytes over RDMA frames {tcp_rdma_bytes:.0f})")
        print(f"figure: ratio rdma/tcp = {rdma_mbs / tcp_mbs:.2f}")
        for n in nodes:
            n.kill9()
        nodes.clear()
        bw = ib_send_bw()
        if bw:
            print(f"figure: ib_send_bw -c UC 64 KiB = {bw:.1f} MB/s; "
                  f"meshd bulk over RDMA / ib_send_bw = {rdma_mbs / bw:.2f}")
        else:
            print("figure: ib_send_bw gave no result")
        cipher, name = cipher_speed()
        if cipher:
            print(f"figure: frame cipher {name} in this VM, 64 KiB frames: {cipher:.1f} MB "
                  f"sealed and opened per CPU second; meshd bulk over RDMA / that = "
                  f"{rdma_mbs / cipher:.2f}")
    finally:
        for n in nodes:
            n.kill9()
        hub.close()


if __name__ == "__main__":
    main()
