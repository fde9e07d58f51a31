#!/usr/bin/env bash
# The README's first command, run non-interactively to its end: it tells the
# whole story (downloads, a departure collected, an epoch change, a completed
# download), and afterwards nothing it started is still running and its
# folder is gone.
set -euo pipefail
src=${MESH_TEST_SRCDIR:?}
build=${MESH_BUILD:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; echo "--- demo output"; cat "$tmp/out" >&2; exit 1; }

dir=$tmp/demo
if ! timeout 240 "$src/scripts/demo" --no-watch --fast --dir "$dir" --build-dir "$build" >"$tmp/out" 2>&1; then
  fail "the demo failed"
fi
for line in "three nodes up" "downloads of demo/tiny-llm started on n0 and n2" \
            "killing n2 for good" "restarting n1" "n0 sees n1 alive at its new epoch" \
            "n2's entries were collected on n0" "download of demo/tiny-llm completed" \
            "story complete" "stopped everything it started"; do
  grep -q "$line" "$tmp/out" || fail "the demo did not say: $line"
done
[[ ! -e $dir ]] || fail "the demo left its folder $dir"
if pgrep -f -- "$dir" >/dev/null; then
  pgrep -af -- "$dir" >&2
  fail "processes of the demo are still running"
fi
if grep -q -- "$dir" /proc/mounts; then fail "the demo left a mount"; fi
echo "demo: ok"
