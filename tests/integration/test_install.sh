#!/usr/bin/env bash
# `cmake --install` into a temporary root installs the programs, their man
# pages, the systemd unit (which passes systemd-analyze verify where that
# exists), the sysusers entry, the launchd property list (well-formed: a
# plist parser reads it and finds the keys launchd needs), and an example
# config documenting every option that meshd itself accepts.
set -euo pipefail
build=${MESH_BUILD:?}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

DESTDIR=$root cmake --install "$build" >/dev/null
prefix=$(cmake -L -N "$build" 2>/dev/null | sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p')
p=$root$prefix

for f in bin/meshd bin/meshctl share/man/man1/meshd.1 share/man/man1/meshctl.1 \
         lib/systemd/system/meshd.service lib/sysusers.d/meshd.conf \
         share/meshd/launchd/org.meshd.meshd.plist share/doc/meshd/meshd.conf.example; do
  [[ -e $p/$f ]] || fail "not installed: $f"
done
[[ -x $p/bin/meshd && -x $p/bin/meshctl ]] || fail "programs not executable"
"$p/bin/meshd" --version | grep -q '^meshd ' || fail "installed meshd does not run"

unit=$p/lib/systemd/system/meshd.service
grep -q "^ExecStart=$prefix/bin/meshd run" "$unit" || fail "unit does not start the installed meshd"
grep -q '^User=meshd' "$unit" || fail "unit does not run as its own user"
grep -q '^Environment=MESH_HOME=/var/lib/meshd' "$unit" || fail "unit home is not /var/lib/meshd"
grep -q '^Restart=on-failure' "$unit" || fail "unit does not restart on failure"
grep -q '^NoNewPrivileges=yes' "$unit" || fail "unit hardening missing"
grep -q '^LimitNOFILE=65536' "$unit" || fail "unit does not raise the limit on open files"
conf=$(sed -n 's/^ExecStart=.*--config \([^ ]*\).*/\1/p' "$unit")
[[ -f $root$conf ]] || fail "the config file the unit names ($conf) is not installed"
if command -v systemd-analyze >/dev/null 2>&1; then
  # verify resolves the binary path, so check a copy that points into the root.
  tmpunit=$(mktemp -d)/meshd.service
  sed "s#$prefix/bin/meshd#$p/bin/meshd#; s#--config $conf#--config $root$conf#" "$unit" >"$tmpunit"
  out=$(systemd-analyze verify "$tmpunit" 2>&1 || true)
  if grep -v -E 'Failed to create .*/init.scope|not running|No such file or directory.*dbus|Unknown user|System has not been booted|Command .man ' <<<"$out" | grep -q .; then
    echo "$out" >&2; fail "systemd-analyze verify found problems"
  fi
  echo "systemd-analyze verify: ok"
else
  echo "systemd-analyze not available: unit checked by its keys only"
fi

python3 - "$p/share/meshd/launchd/org.meshd.meshd.plist" "$prefix" <<'PY'
import plistlib, sys
with open(sys.argv[1], "rb") as f:
    pl = plistlib.load(f)
assert pl["Label"] == "org.meshd.meshd", pl
assert pl["ProgramArguments"][0] == sys.argv[2] + "/bin/meshd", pl["ProgramArguments"]
assert pl["KeepAlive"] is True and pl["RunAtLoad"] is True
assert pl["StandardErrorPath"].endswith(".log")
# Above launchd's default of 256 open files, which the connection caps exceed.
for k in ("SoftResourceLimits", "HardResourceLimits"):
    assert pl[k]["NumberOfFiles"] >= 1024, pl.get(k)
print("launchd plist: ok")
PY

# Every option of `meshd --help` is documented in the example config
# (that the example loads is tests/integration/test_cli.sh's business).
ex=$p/share/doc/meshd/meshd.conf.example
for opt in $("$p/bin/meshd" --help | sed -n '/^Options/,$ s/^  --\([a-z][a-z-]*\) .*/\1/p' | sort -u); do
  case $opt in help|version|config) continue ;; esac
  key=${opt//-/_}
  grep -q -E "^#? *$key *=" "$ex" || fail "option $opt missing from the example config"
done
echo "install: ok ($p)"
