#!/bin/sh
# Inside the rxe VM: round-trip latency of 64 B and 4 KiB messages over
# rdma_pingpong (net/rdma.h: UC SEND, sealed frames, completion channel)
# against perftest's ib_send_lat -c UC, same devices, same run. ib_send_lat
# reports one-way latency (half the round trip), so its figure is doubled.
# Prints one line per size:
#   rdma size=64 ib_send_lat_rtt_us=.. pingpong_rtt_us=.. ratio=..
# Needs MESH_BUILD and two nodes from scripts/rxe/setup-net.
set -eu
pp="$MESH_BUILD/tests/rdma_pingpong"
iters=${MESH_BENCH_ITERS:-2000}
port=7100
for size in ${MESH_BENCH_SIZES:-64 4096}; do
  port=$((port + 1))
  timeout 120 ib_send_lat -c UC -d rxe1 -x 1 -s "$size" -n "$iters" -p "$port" >/tmp/lat-server.log 2>&1 &
  spid=$!
  # ib_send_lat's client does not retry its connect: wait for the listener.
  i=0
  while ! grep -q ":$(printf '%04X' "$port") 00000000:0000 0A" /proc/net/tcp 2>/dev/null; do
    i=$((i + 1)); [ "$i" -lt 300 ] || { echo "bench: ib_send_lat server did not start"; exit 1; }
    sleep 0.1
  done
  lat=$(timeout 120 ib_send_lat -c UC -d rxe2 -x 1 -s "$size" -n "$iters" -p "$port" 10.88.0.1 |
        awk -v s="$size" '$1 == s && NF >= 5 { print $5 }')
  wait "$spid" || true
  port=$((port + 1))
  "$pp" server --dev rxe1 --addr 10.88.0.1 --port "$port" --buf 8192 >/tmp/pp-bench-server.log 2>&1 &
  spid=$!
  pp_rtt=$(timeout 300 "$pp" client --dev rxe2 --addr 10.88.0.2 --server "10.88.0.1:$port" --buf 8192 \
           --test bench --sizes "$size" --iters "$iters" | sed -n 's/^bench .*p50_us=\([0-9.]*\).*/\1/p')
  wait "$spid" || true
  if [ -z "$lat" ] || [ -z "$pp_rtt" ]; then
    echo "bench: size $size: no figure (ib_send_lat '$lat', pingpong '$pp_rtt')"
    exit 1
  fi
  awk -v s="$size" -v l="$lat" -v p="$pp_rtt" 'BEGIN {
    printf "rdma size=%d ib_send_lat_rtt_us=%.1f pingpong_rtt_us=%.1f ratio=%.2f\n", s, 2 * l, p, p / (2 * l) }'
done
