#!/usr/bin/env bash
# The meshd command line: id, epoch, keygen-psk, config-example, --help,
# --version and the handling of bad commands, options and values. Checks
# outputs, files and exit status (0 success, 1 failure, 2 usage error) and
# that every error is one line starting with "meshd: ". No node is started.
set -u

: "${MESHD:?MESHD must name the meshd binary}"
T=$(mktemp -d "${TMPDIR:-/tmp}/test_cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
export HOME="$T/home"
mkdir -p "$HOME"
unset MESH_HOME MESH_CONFIG HF_ENDPOINT HF_TOKEN
for v in $(env | sed -n 's/^\(MESH_[A-Z_]*\)=.*/\1/p'); do
  case "$v" in MESH_TEST_SRCDIR|MESH_BUILD) ;; *) unset "$v" ;; esac
done

failures=0
checks=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# run NAME EXPECTED_STATUS CMD... : runs CMD, keeps stdout in $out and
# stderr in $err, and checks the exit status.
run() {
  local name=$1 want=$2
  shift 2
  checks=$((checks + 1))
  "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  out=$(cat "$T/out")
  err=$(cat "$T/err")
  if [ "$rc" -ne "$want" ]; then
    fail "$name: exit $rc, want $want (stdout: $out) (stderr: $err)"
    return 1
  fi
  return 0
}

# expect_error NAME PATTERN: stderr is exactly one line, "meshd: ...", and
# matches PATTERN (grep -E).
expect_error() {
  local name=$1 pattern=$2
  checks=$((checks + 1))
  if [ "$(wc -l <"$T/err")" -ne 1 ]; then
    fail "$name: want one error line, got: $err"
  elif ! grep -Eq "^meshd: " "$T/err"; then
    fail "$name: error does not start with 'meshd: ': $err"
  elif ! grep -Eq -- "$pattern" "$T/err"; then
    fail "$name: error '$err' does not match /$pattern/"
  fi
}

expect_out() {
  local name=$1 pattern=$2
  checks=$((checks + 1))
  if ! grep -Eq -- "$pattern" "$T/out"; then
    fail "$name: output does not match /$pattern/: $(head -c 400 "$T/out")"
  fi
}

mode_of() { stat -c %a "$1"; }

# --help, --version, config-example
run help 0 "$MESHD" --help && expect_out help '^usage: meshd'
expect_out help-listen '--listen ADDR'
expect_out help-env 'MESH_DEAD_MEMBER_TTL'
expect_out help-id 'meshd id'
run help-run 0 "$MESHD" run --help && expect_out help-run '--join ADDR'
run version 0 "$MESHD" --version && expect_out version '^meshd [0-9]+\.[0-9]+\.[0-9]+$'
run example 0 "$MESHD" config-example && expect_out example '^#ended_epoch_ttl = 1h$'
expect_out example-join '^#join =$'
cp "$T/out" "$T/example.conf"
run example-args 2 "$MESHD" config-example extra && expect_error example-args 'no arguments'

# The example, with its settings uncommented, is a valid config file.
mkdir -p "$T/ex"
sed -E 's/^#([a-z_]+ = .+)$/\1/' "$T/example.conf" >"$T/ex/meshd.conf"
run example-loads 0 "$MESHD" config-show --home "$T/ex" && expect_out example-loads '^ended_epoch_ttl = 1h  ; file$'

# Precedence: flag over environment over file over default.
printf 'gc_grace = 1m\nfiles_at_once = 7\nmax_connections = 9\n' >"$T/ex/meshd.conf"
run precedence 0 env MESH_GC_GRACE=2m MESH_FILES_AT_ONCE=8 "$MESHD" config-show --home "$T/ex" --gc-grace 3m
expect_out prec-flag '^gc_grace = 3m  ; flag$'
expect_out prec-env '^files_at_once = 8  ; environment$'
expect_out prec-file '^max_connections = 9  ; file$'
expect_out prec-default '^downloads_at_once = 2  ; default$'
run hf-env 0 env HF_ENDPOINT=http://127.0.0.1:9/ HF_TOKEN=secret "$MESHD" config-show --home "$T/ex"
expect_out hf-env '^hf_endpoint = http://127.0.0.1:9  ; default$'
expect_out hf-token '^; hf_token is set \(not shown\)'
grep -q secret "$T/out" && fail "config-show printed a token"

# Bad commands, options and values: usage errors, exit 2.
run unknown-command 2 "$MESHD" frobnicate && expect_error unknown-command 'unknown command "frobnicate"'
run unknown-option 2 "$MESHD" --bogus && expect_error unknown-option 'unknown option --bogus'
run missing-value 2 "$MESHD" run --listen && expect_error missing-value '--listen needs a value'
run bad-duration 2 "$MESHD" --probe-interval 5x &&
  expect_error bad-duration '^meshd: --probe-interval: invalid value "5x": unknown unit'
run bad-size 2 "$MESHD" --max-download-bytes 2GB5 && expect_error bad-size '--max-download-bytes'
run bad-env 2 env MESH_PROFILE=fast "$MESHD" &&
  expect_error bad-env 'MESH_PROFILE \(profile\): invalid value "fast": expected one of lan, thunderbolt, wan'
printf '[meshd]\nlisten = 127.0.0.1:1\nbogus_key = 1\n' >"$T/bad.conf"
run bad-file-key 2 "$MESHD" --config "$T/bad.conf" && expect_error bad-file-key "bad.conf:3: unknown key \"bogus_key\""
printf 'gc_grace = soon\n' >"$T/bad2.conf"
run bad-file-value 2 "$MESHD" --config "$T/bad2.conf" && expect_error bad-file-value 'bad2.conf:1: gc_grace: invalid value "soon"'
run missing-config 1 "$MESHD" --config "$T/nope.conf" && expect_error missing-config 'nope.conf'
run id-bad-arg 2 "$MESHD" id --bogus && expect_error id-bad-arg 'unknown argument "--bogus"'
run id-key-novalue 2 "$MESHD" id --key && expect_error id-key-novalue '--key needs a value'
run epoch-bad-arg 2 "$MESHD" epoch extra && expect_error epoch-bad-arg 'unknown argument "extra"'

# meshd id: creates the key once (mode 0600, home 0700), same ID after.
run id-create 0 "$MESHD" id --home "$T/a" && expect_out id-create '^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$'
id1=$out
[ "$(mode_of "$T/a/identity.key")" = 600 ] || fail "identity.key mode $(mode_of "$T/a/identity.key"), want 600"
[ "$(mode_of "$T/a")" = 700 ] || fail "home mode $(mode_of "$T/a"), want 700"
run id-again 0 "$MESHD" id --home "$T/a"
[ "$out" = "$id1" ] || fail "id changed between runs: $id1 then $out"
run id-env-home 0 env MESH_HOME="$T/a" "$MESHD" id
[ "$out" = "$id1" ] || fail "MESH_HOME not honoured: $out"
run id-cid 0 "$MESHD" id --home "$T/a" --cid && expect_out id-cid '^b[a-z2-7]+$'
run id-default-home 0 "$MESHD" id
[ -f "$HOME/.meshd/identity.key" ] || fail "meshd id did not create \$HOME/.meshd/identity.key"

# The libp2p peer-ID spec's vector.
vector_hex=080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e
printf '%s' "$vector_hex" | sed 's/../\\x&/g' | xargs -0 printf '%b' >"$T/vector.key"
[ "$(stat -c %s "$T/vector.key")" = 68 ] || fail "vector key file is not 68 bytes"
chmod 600 "$T/vector.key"
run id-vector 0 "$MESHD" id --key "$T/vector.key"
[ "$out" = 12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq ] || fail "vector gave '$out'"
run id-vector-cid 0 "$MESHD" id --key "$T/vector.key" --cid && expect_out id-vector-cid '^b'
chmod 644 "$T/vector.key"
run id-0644 1 "$MESHD" id --key "$T/vector.key" && expect_error id-0644 'vector.key'
[ -z "$out" ] || fail "a refused key still printed: $out"
run id-missing-key 1 "$MESHD" id --key "$T/none.key" && expect_error id-missing-key 'none.key'
[ -e "$T/none.key" ] && fail "meshd id --key created a key file"
printf 'garbage' >"$T/bad.key"
chmod 600 "$T/bad.key"
run id-bad-key 1 "$MESHD" id --key "$T/bad.key" && expect_error id-bad-key 'bad.key'

# meshd epoch: prints without changing.
run epoch-fresh 0 "$MESHD" epoch --home "$T/e"
[ "$out" = 0 ] || fail "epoch of a fresh home is '$out', want 0"
[ -e "$T/e/epoch" ] && fail "meshd epoch created an epoch file"
mkdir -p "$T/e"
printf '41\n' >"$T/e/epoch"
run epoch-read 0 "$MESHD" epoch --home "$T/e"
[ "$out" = 41 ] || fail "epoch is '$out', want 41"
run epoch-read-again 0 "$MESHD" epoch --home "$T/e"
[ "$out" = 41 ] || fail "meshd epoch changed the epoch to '$out'"
[ "$(cat "$T/e/epoch")" = 41 ] || fail "epoch file changed"
printf 'forty-two\n' >"$T/e/epoch"
run epoch-corrupt 1 "$MESHD" epoch --home "$T/e" && expect_error epoch-corrupt "$T/e/epoch"

# meshd keygen-psk
run psk-home 0 "$MESHD" keygen-psk --home "$T/p"
[ "$(mode_of "$T/p/swarm.key")" = 600 ] || fail "swarm.key mode $(mode_of "$T/p/swarm.key"), want 600"
[ "$(sed -n 1p "$T/p/swarm.key")" = /key/swarm/psk/1.0.0/ ] || fail "swarm.key line 1: $(sed -n 1p "$T/p/swarm.key")"
[ "$(sed -n 2p "$T/p/swarm.key")" = /base16/ ] || fail "swarm.key line 2"
sed -n 3p "$T/p/swarm.key" | grep -Eqx '[0-9a-f]{64}' || fail "swarm.key line 3 is not 64 hex digits"
key1=$(cat "$T/p/swarm.key")
run psk-exists 1 "$MESHD" keygen-psk --home "$T/p" && expect_error psk-exists 'swarm.key'
[ "$(cat "$T/p/swarm.key")" = "$key1" ] || fail "keygen-psk overwrote an existing key"
run psk-out 0 "$MESHD" keygen-psk --out "$T/other.key"
[ -f "$T/other.key" ] || fail "--out FILE did not write the file"
[ "$(cat "$T/other.key")" != "$key1" ] || fail "two keys are equal"
run psk-stdout 0 "$MESHD" keygen-psk --out - && expect_out psk-stdout '^/key/swarm/psk/1\.0\.0/$'
expect_out psk-stdout-hex '^[0-9a-f]{64}$'
s1=$out
run psk-stdout2 0 "$MESHD" keygen-psk --out -
[ "$out" != "$s1" ] || fail "two keys printed to stdout are equal"
run psk-default 0 "$MESHD" keygen-psk
[ -f "$HOME/.meshd/swarm.key" ] || fail "keygen-psk did not write \$HOME/.meshd/swarm.key"

echo "test_cli: $checks checks, $failures failures"
[ "$failures" -eq 0 ]
