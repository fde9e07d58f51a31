"""The man pages list everything the programs take.

docs/meshd.1 must describe every option of meshd's option table
(src/base/cfg_table.c, from which `meshd --help` is generated), and
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
