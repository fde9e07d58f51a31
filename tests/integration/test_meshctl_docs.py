"""The man pages list everything the programs take and answer.

docs/meshd.1 must describe every option of meshd's option table
(src/base/cfg_table.c, from which `meshd --help` is generated), every
command `meshd --help` lists, every endpoint of the control API's routing
table (src/daemon/api_route.c) and every status code it can answer with
(src/daemon/api_answer.c), and the files meshd keeps in its home;
docs/meshctl.1 every command and option that `meshctl --help` lists.
"""

import os
import re
import subprocess
import unittest

import meshtest

SRC = os.environ.get("MESH_TEST_SRCDIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MESHCTL = os.environ.get("MESHCTL", "meshctl")
MESHD = os.environ.get("MESHD", "meshd")


def read(*parts):
    with open(os.path.join(SRC, *parts)) as f:
        return f.read()


def roff_words(text):
    """The man page's text with font escapes gone and \\- made '-'."""
    text = re.sub(r"\\f[BIRP]", "", text)
    return text.replace("\\-", "-")


class ManPages(unittest.TestCase):
    def test_meshd_options(self):
        names = re.findall(r'\{\.name = "([a-z0-9-]+)"', read("src", "base", "cfg_table.c"))
        self.assertGreater(len(names), 20)
        page = roff_words(read("docs", "meshd.1"))
        missing = [n for n in names if not re.search(r"--%s\b" % re.escape(n), page)]
        self.assertEqual(missing, [], "options missing from docs/meshd.1")
        for n in names:
            env = "MESH_" + n.upper().replace("-", "_")
            self.assertIn(env, page)

    def test_meshd_commands(self):
        out = subprocess.run([MESHD, "--help"], capture_output=True, text=True,
                             check=True, timeout=30).stdout
        cmds = re.findall(r"^  ([a-z][a-z-]+) ", out.split("Commands:", 1)[1].split("\n\n")[0],
                          re.M)
        self.assertIn("config-show", cmds)
        page = roff_words(read("docs", "meshd.1"))
        section = page.split(".SH COMMANDS", 1)[1].split(".SH ", 1)[0]
        for c in cmds:
            self.assertRegex(section, r"(?m)^\.B[RI]? %s\b" % re.escape(c), "command %s" % c)

    def test_meshd_endpoints_and_codes(self):
        api = read("src", "daemon", "api_route.c") + read("src", "daemon", "api_answer.c")
        page = roff_words(read("docs", "meshd.1"))
        section = page.split(".SH CONTROL API", 1)[1].split(".SH ", 1)[0]
        section = re.sub(r"\s+", " ", section)
        paths = re.findall(r'\{"(/[a-z_/]+)", EP_[A-Z_]+, EVHTTP_REQ_([A-Z]+)\}', api)
        prefixes = re.findall(r'strncmp\(path, "(/[a-z_/]+)", \d+\)', api)
        self.assertGreater(len(paths), 5)
        self.assertGreater(len(prefixes), 1)
        for path, method in paths:
            self.assertIn(f"{method} {path}", section, f"endpoint {method} {path}")
        for prefix in prefixes:
            self.assertIn(prefix, section, f"endpoint {prefix}...")
        codes = set(re.findall(r"^  case (\d{3}):", api, re.M)) | {"500"}
        for code in sorted(codes):
            if code == "200":
                continue
            self.assertRegex(section, r"\b%s\b" % code, f"status {code}")

    def test_meshd_files(self):
        page = roff_words(read("docs", "meshd.1"))
        section = page.split(".SH FILES", 1)[1].split(".SH ", 1)[0]
        for f in ("identity.key", "epoch", "meshd.lock", "swarm.key", "meshd.conf", "mesh.db",
                  "models/"):
            self.assertIn("$MESH_HOME/" + f, section, f"file {f}")

    def test_meshctl_commands_and_options(self):
        out = subprocess.run([MESHCTL, "--help"], capture_output=True, text=True,
                             check=True, timeout=30).stdout
        cmds = re.findall(r"^  ([a-z]+) ", out.split("commands:", 1)[1], re.M)
        self.assertIn("watch", cmds)
        opts = set(re.findall(r"(--[a-z]+)", out.split("commands:", 1)[0]))
        page = roff_words(read("docs", "meshctl.1"))
        for c in cmds:
            self.assertRegex(page, r"(?m)^(\.B[RI]? )?%s\b" % c, "command %s" % c)
            # The page shows the synopsis `meshctl help CMD` prints.
            usage = subprocess.run([MESHCTL, "help", c], capture_output=True, text=True,
                                   check=True, timeout=30).stdout
            synopsis = usage.splitlines()[0][len("usage: meshctl "):]
            self.assertIn(synopsis, page)
        for o in opts:
            self.assertIn(o, page)


if __name__ == "__main__":
    meshtest.main()
