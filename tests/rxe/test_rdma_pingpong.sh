#!/bin/sh
# Inside the rxe VM: the verbs layer and RDMA frames between two processes
# on two rxe devices (tests/tools/rdma_pingpong.c): every payload size up to
# the cap intact, replayed/forged/truncated frames dropped and counted, a
# broken queue pair reported and recovered. Needs MESH_BUILD and two nodes
# from scripts/rxe/setup-net.
set -eu
pp="$MESH_BUILD/tests/rdma_pingpong"
fail=0

run_pair() { # port, server args..., then -- client args...
  port=$1; shift
  sargs=""
  while [ "$1" != "--" ]; do sargs="$sargs $1"; shift; done
  shift
  # shellcheck disable=SC2086
  "$pp" server --dev rxe1 --addr 10.88.0.1 --port "$port" $sargs >"/tmp/pp-server-$port.log" 2>&1 &
  spid=$!
  if ! timeout 300 "$pp" client --dev rxe2 --addr 10.88.0.2 --server "10.88.0.1:$port" "$@"; then
    echo "test_rdma_pingpong: client $* failed"
    fail=1
  fi
  if ! wait "$spid"; then
    echo "test_rdma_pingpong: server failed:"; cat "/tmp/pp-server-$port.log"
    fail=1
  fi
}

# Every size up to a 4 KiB frame, then the attacks and the break.
run_pair 7001 --buf 4096 -- --buf 4096 --test all
# The default 64 KiB frame: sizes in steps, the largest included.
run_pair 7002 -- --test sizes --step 997
# A peer that posts 4 KiB buffers (older macOS) against one posting 64 KiB:
# both send 4 KiB frames, and every size up to that arrives, under AES-256-GCM.
run_pair 7003 --buf 4096 --cipher aes-256-gcm -- --cipher aes-256-gcm --test sizes --step 251 \
  --expect-frame 4096
# One that says it can take 16 KiB against 64 KiB: 16 KiB frames.
run_pair 7004 --buf 16384 -- --test sizes --step 1999 --expect-frame 16384
exit "$fail"
