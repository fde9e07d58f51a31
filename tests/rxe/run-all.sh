#!/bin/sh
# Guest side (inside scripts/rxe-vm): makes three rxe nodes and runs every
# tests/rxe/test_* in name order, each under a time limit. Prints one line
# per test and exits non-zero when any failed. Needs MESH_BUILD, MESHD and
# MESH_TEST_SRCDIR.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export MESH_TEST_SRCDIR="${MESH_TEST_SRCDIR:-$top}"
"$top/scripts/rxe/setup-net" 3 || { echo "rxe: network setup failed"; exit 1; }
ibv_devices
failed=0
passed=0
for t in "$here"/test_*; do
  name=$(basename "$t")
  case "$t" in
    *.py) cmd="python3 $t" ;;
    *.sh) cmd="sh $t" ;;
    *) continue ;;
  esac
  echo "=== $name"
  if timeout 600 $cmd; then
    passed=$((passed + 1)); echo "rxe: $name: ok"
  else
    failed=$((failed + 1)); echo "rxe: $name: FAILED"
  fi
done
echo "rxe: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
