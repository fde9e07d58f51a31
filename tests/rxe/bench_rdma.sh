#!/bin/sh
# Inside the rxe VM (scripts/bench-transport-rdma boots it): round-trip
# latency of 64 B and 4 KiB messages between rxe1 (10.88.0.1) and rxe2
# (10.88.0.2), all in the same run:
#   ib_send_lat   perftest, UC SEND, busy-polling; it reports half the round
#                 trip, so its figure is doubled here
#   ib_send_lat -e  the same sleeping on completion events (the completion
#                 channel): what a wake-up costs in this guest
#   pingpong      tests/tools/rdma_pingpong: net/rdma.h's verbs layer and
#                 sealed frames, waiting on the completion channel (and
#                 busy-polling, as ib_send_lat does: pingpong_spin)
#   meshd rdma    tests/tools/rdma_net_bench: a datagram through meshd's peer
#                 network with the RDMA transport (event loop, sealing,
#                 completion channel, adaptive completion polling with its
#                 default budget: 100 ms of polling per second)
#   meshd rdma poll  the same with the polling budget at 1000 ms per second,
#                 as ib_send_lat, which polls all the time
#   meshd tcp     the same over meshd's TCP transport
# The columns that sleep between messages (ib_send_lat -e, pingpong, meshd
# rdma, meshd tcp) run both peers on one virtual CPU: under TCG a wake-up
# sent to the other virtual CPU is taken at that CPU's next timer tick
# (reschedule IPIs are handled together with local_timer_entry), about 3.5
# ms, twice per round trip, whatever the layer or size. The busy-polling
# columns need a CPU per peer and keep two.
# Prints one line per size:
#   rdma size=64 ib_send_lat_rtt_us=.. pingpong_us=.. meshd_rdma_us=.. meshd_tcp_us=..
#        pingpong_spin_us=.. ib_send_lat_ev_rtt_us=.. meshd_rdma_poll_us=..
# Needs MESH_BUILD; makes its own two nodes unless MESH_RXE_NET_READY=1.
set -eu
tools="$MESH_BUILD/tests"
iters=${MESH_BENCH_ITERS:-1000}
sizes=${MESH_BENCH_SIZES:-64 4096}
here=$(cd "$(dirname "$0")" && pwd)
if [ "${MESH_RXE_NET_READY:-0}" != 1 ]; then
  "$here/../../scripts/rxe/setup-net" 2 >/dev/null
fi
psk=/tmp/bench.key
"$tools/transport_peer" keygen "$psk" 2>/dev/null || "$MESH_BUILD/src/meshd/meshd" keygen-psk --out "$psk" >/dev/null

wait_listen() { # port: wait until something listens on it (ib_send_lat does not retry)
  i=0
  while ! grep -q ":$(printf '%04X' "$1") 00000000:0000 0A" /proc/net/tcp 2>/dev/null; do
    i=$((i + 1)); [ "$i" -lt 300 ] || { echo "bench: nothing listens on $1" >&2; return 1; }
    sleep 0.1
  done
}

one_cpu="taskset -c 1" # the sleeping columns' peers share this virtual CPU
tsc_mhz=$(awk -F: '/^cpu MHz/ { print $2 + 0; exit }' /proc/cpuinfo)

net_bench() { # cpus transport size port [options of both sides]
  cpus=$1 t=$2 sz=$3 p=$4
  shift 4
  $cpus "$tools/rdma_net_bench" serve --psk "$psk" --listen "10.88.0.1:$p" --transport "$t" \
    --rdma-device rxe1 "$@" >/tmp/nb-serve.log 2>&1 &
  spid=$!
  wait_listen "$p"
  out=$(timeout 300 $cpus "$tools/rdma_net_bench" bench --psk "$psk" --listen "10.88.0.2:$((p + 1))" \
        --connect "10.88.0.1:$p" --transport "$t" --rdma-device rxe2 --size "$sz" --count "$iters" "$@")
  kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true
  echo "$out" | sed -n "s/^p50_us \([0-9.]*\) .* via $t .*/\1/p"
}

port=7100
for size in $sizes; do
  port=$((port + 20))
  timeout 120 ib_send_lat -c UC -d rxe1 -x 1 -s "$size" -n "$iters" -p "$port" >/dev/null 2>&1 &
  spid=$!
  wait_listen "$port"
  lat=$(timeout 120 ib_send_lat -c UC -d rxe2 -x 1 -s "$size" -n "$iters" -p "$port" 10.88.0.1 |
        awk -v s="$size" '$1 == s && NF >= 5 { print $5 }')
  wait "$spid" || true

  # Sharing one virtual CPU, perftest's calibration of its cycle counter
  # fails ("Correlation coefficient r^2 < 0.9") and it prints inf: it
  # reports cycles here (-C), turned into us at the kernel's TSC rate.
  timeout 120 $one_cpu ib_send_lat -c UC -e -C -d rxe1 -x 1 -s "$size" -n "$iters" \
    -p "$((port + 8))" >/dev/null 2>&1 &
  spid=$!
  wait_listen "$((port + 8))"
  lev=$(timeout 120 $one_cpu ib_send_lat -c UC -e -C -d rxe2 -x 1 -s "$size" -n "$iters" \
        -p "$((port + 8))" 10.88.0.1 |
        awk -v s="$size" -v mhz="$tsc_mhz" '$1 == s && NF >= 5 && $5 ~ /^[0-9.]+$/ && mhz > 0 {
          printf "%.2f\n", $5 / mhz }')
  wait "$spid" || true

  $one_cpu "$tools/rdma_pingpong" server --dev rxe1 --addr 10.88.0.1 --port "$((port + 1))" --buf 8192 \
    >/dev/null 2>&1 &
  spid=$!
  pp=$(timeout 300 $one_cpu "$tools/rdma_pingpong" client --dev rxe2 --addr 10.88.0.2 \
       --server "10.88.0.1:$((port + 1))" --buf 8192 --test bench --sizes "$size" --iters "$iters" |
       sed -n 's/^bench .*p50_us=\([0-9.]*\).*/\1/p')
  wait "$spid" || true

  # The same layer busy-polling, as ib_send_lat does: what is left once the
  # guest's wake-up on a completion is taken out.
  "$tools/rdma_pingpong" server --dev rxe1 --addr 10.88.0.1 --port "$((port + 6))" --buf 8192 \
    --spin >/dev/null 2>&1 &
  spid=$!
  psl=$(timeout 300 "$tools/rdma_pingpong" client --dev rxe2 --addr 10.88.0.2 \
       --server "10.88.0.1:$((port + 6))" --buf 8192 --test bench --sizes "$size" --iters "$iters" \
       --spin | grep '^bench ' || true)
  ps=$(echo "$psl" | sed -n 's/.* p50_us=\([0-9.]*\).*/\1/p')
  # What sealing plus opening one frame (as net/frame.c picks, and through
  # libsodium alone) and one clock reading cost here.
  so=$(echo "$psl" | sed -n 's/.* seal_open_us=\([0-9.-]*\).*/\1/p')
  sn=$(echo "$psl" | sed -n 's/.* seal_open_sodium_us=\([0-9.-]*\).*/\1/p')
  ck=$(echo "$psl" | sed -n 's/.* clock_us=\([0-9.-]*\).*/\1/p')
  kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true

  mr=$(net_bench "$one_cpu" rdma "$size" "$((port + 2))")
  mp=$(net_bench "" rdma "$size" "$((port + 10))" --poll-budget-ms 1000)
  mt=$(net_bench "$one_cpu" tcp "$size" "$((port + 4))")
  if [ -z "$lat" ] || [ -z "$lev" ] || [ -z "$pp" ] || [ -z "$ps" ] || [ -z "$mr" ] || [ -z "$mp" ] ||
     [ -z "$mt" ]; then
    echo "bench: size $size: missing figure (ib_send_lat '$lat' -e '$lev' pingpong '$pp' spin '$ps' meshd rdma '$mr' poll '$mp' meshd tcp '$mt')"
    exit 1
  fi
  awk -v s="$size" -v l="$lat" -v p="$pp" -v q="$ps" -v r="$mr" -v t="$mt" -v e="$lev" -v m="$mp" 'BEGIN {
    printf "rdma size=%d ib_send_lat_rtt_us=%.1f pingpong_us=%.1f meshd_rdma_us=%.1f meshd_tcp_us=%.1f pingpong_spin_us=%.1f ib_send_lat_ev_rtt_us=%.1f meshd_rdma_poll_us=%.1f\n",
      s, 2 * l, p, r, t, q, 2 * e, m }'
  echo "rdma-cost size=$size seal_open_us=${so:-?} seal_open_sodium_us=${sn:-?} clock_us=${ck:-?}"
done
