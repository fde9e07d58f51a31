#!/usr/bin/env python3
"""The layers hold: the build refuses a sans-IO core that reaches out, and no
file includes a header of a layer above its own.

1. Poison. A core file (one of each core) is compiled with the command the
   build uses for it (compile_commands.json), once as it is (it must build:
   otherwise the check below proves nothing) and once with one forbidden call
   appended per try: a socket, a file, a clock, the event loop, the
   environment. Each must fail, naming the poisoned identifier.
2. Includes. Every #include "..." of the project's own files is checked
   against the layer rules below (sources and headers alike).
"""
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("MESH_TEST_SRCDIR") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("MESH_BUILD", os.path.join(SRC, "build"))

# What a core may not call, and a snippet that calls it.
FORBIDDEN = {
    "socket": "int f_(void) { return socket(2, 1, 0); }",
    "clock_gettime": "int f_(void) { struct timespec t; return clock_gettime(1, &t); }",
    "time": "long f_(void) { return (long)time(NULL); }",
    "fopen": "void *f_(void) { return fopen(\"x\", \"r\"); }",
    "read": "long f_(int fd, char *b) { return (long)read(fd, b, 1); }",
    "send": "long f_(int fd) { return (long)send(fd, \"\", 0, 0); }",
    "getenv": "char *f_(void) { return getenv(\"HOME\"); }",
    "event_base_new": ("struct event_base *event_base_new(void);\n"
                       "void *f_(void) { return event_base_new(); }"),
}
CORE_FILES = ["net/swim_util.c", "net/connmgr.c", "coord/coord_due.c", "coord/model_id.c"]

# Layer of a project file, by path; and the layers each may include.
LAYERS = [
    ("base", re.compile(r"^src/base/")),
    ("identity", re.compile(r"^src/identity/")),
    ("proto", re.compile(r"^proto/")),
    ("swim_core", re.compile(r"^net/(swim[a-z_]*|view|connmgr)\.[ch]$")),
    ("coord_core", re.compile(r"^coord/(coord[a-z_]*|model_id)\.[ch]$")),
    ("net", re.compile(r"^net/")),
    ("coord", re.compile(r"^coord/")),
    ("daemon", re.compile(r"^src/daemon/")),
    ("programs", re.compile(r"^src/(meshd|meshctl)/")),
]
ALLOWED = {
    "base": {"base"},
    "identity": {"base", "identity", "proto"},
    "proto": {"proto"},
    "swim_core": {"base", "identity", "proto", "swim_core"},
    "coord_core": {"base", "identity", "proto", "coord_core", "swim_core"},
    "net": {"base", "identity", "proto", "swim_core", "net"},
    "coord": {"base", "identity", "proto", "swim_core", "coord_core", "coord"},
    "daemon": {"base", "identity", "proto", "swim_core", "net", "coord_core", "coord", "daemon"},
    "programs": {"base", "identity", "proto", "swim_core", "net", "coord_core", "coord",
                 "daemon", "programs"},
}
# The daemon's option table: settings reach net/ and coord/ as their own
# structs, never as this.
OPTION_TABLE = re.compile(r"^src/base/(config|cfg_internal)\.h$")
OPTION_TABLE_USERS = {"daemon", "programs"}
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path):
    for name, rx in LAYERS:
        if rx.search(path):
            return name
    return None


def compile_command(rel):
    with open(os.path.join(BUILD, "compile_commands.json")) as f:
        for entry in json.load(f):
            if os.path.realpath(entry["file"]) == os.path.realpath(os.path.join(SRC, rel)):
                return entry
    return None


class Poison(unittest.TestCase):
    def run_cc(self, entry, src_path):
        args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
        out = []
        skip = False
        for a in args:
            if skip:
                skip = False
                continue
            if a == "-o":
                skip = True
                continue
            if a == "-c" or os.path.realpath(a) == os.path.realpath(entry["file"]):
                continue
            out.append(a)
        out += ["-fsyntax-only", src_path]
        return subprocess.run(out, cwd=entry["directory"], capture_output=True, text=True)

    def test_cores_refuse_io(self):
        for rel in CORE_FILES:
            entry = compile_command(rel)
            self.assertIsNotNone(entry, f"{rel}: not in compile_commands.json")
            cmd = entry.get("command", " ".join(entry.get("arguments", [])))
            self.assertIn("sans_io.h", cmd, f"{rel} is not built as a sans-IO core")
            with open(os.path.join(SRC, rel)) as f:
                text = f.read()
            with tempfile.TemporaryDirectory() as d:
                clean = os.path.join(d, os.path.basename(rel))
                with open(clean, "w") as f:
                    f.write(text)
                r = self.run_cc(entry, clean)
                self.assertEqual(r.returncode, 0, f"{rel} as it is does not build:\n{r.stderr}")
                for name, snippet in FORBIDDEN.items():
                    bad = os.path.join(d, "bad_" + os.path.basename(rel))
                    with open(bad, "w") as f:
                        f.write(text + "\n" + snippet + "\n")
                    r = self.run_cc(entry, bad)
                    self.assertNotEqual(r.returncode, 0,
                                        f"{rel} calling {name} built: the poison did not hold")
                    self.assertTrue(f'poisoned "{name}"' in r.stderr or
                                    f"mesh_sans_io_core_calls_{name}" in r.stderr,
                                    f"{rel} calling {name} failed for another reason:\n{r.stderr}")


class Includes(unittest.TestCase):
    def test_no_include_reaches_up(self):
        files = subprocess.run(["git", "-C", SRC, "ls-files", "*.c", "*.h"], capture_output=True,
                               text=True, check=True).stdout.split()
        bad = []
        checked = 0
        for rel in files:
            lay = layer_of(rel)
            if lay is None:
                continue  # tests, tools, scripts
            with open(os.path.join(SRC, rel), errors="replace") as f:
                text = f.read()
            for inc in INCLUDE_RE.findall(text):
                target = layer_of(inc)
                if target is None:
                    continue  # generated protobuf headers ("swim.pb-c.h") and local ones
                checked += 1
                if target not in ALLOWED[lay]:
                    bad.append(f"{rel} ({lay}) includes {inc} ({target})")
                elif (OPTION_TABLE.search(inc) and lay not in OPTION_TABLE_USERS
                      and not re.match(r"^src/base/(cfg_[a-z]+|config)\.[ch]$", rel)):
                    bad.append(f"{rel} ({lay}) includes the option table {inc}")
        self.assertGreater(checked, 100, "the include scan found almost nothing: paths changed?")
        self.assertEqual(bad, [], "includes that reach up a layer:\n  " + "\n  ".join(bad))


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
    import meshtest
    meshtest.main()
