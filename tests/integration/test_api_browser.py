"""What a web page could make a browser send to a node's control API, against
a real meshd on loopback TCP, and meshctl with no flags beside it.

A page in any browser on the machine may send a "simple" cross-origin
request to 127.0.0.1:52417 without asking first: a POST with a form,
multipart or text/plain body. With DNS rebinding its own name comes to point
at 127.0.0.1, so the request carries that name in Host and the page may read
the answer. A page's fetch() with a JSON body carries an Origin and needs a
preflight (OPTIONS). Each such request is sent here without the token (a
page cannot read the token file) and must be refused with 403 before the
token is looked at, counted in meshd_api_refused_total{reason}, and leave
nothing done: no download entry, no journal record, meshd still running.

Then meshctl, with no flags and no MESH_* variables (HOME pointing at a
scratch folder whose .meshd is the node's home), reads the token meshd made
in HOME/.meshd/api.token and runs a read, a POST without a body (gc), a
DELETE and finally `leave`, which stops meshd with status 0. When the
default port 52417 is taken on this machine the API listens elsewhere and
meshctl gets it from MESH_API (still no flags); the test says so.
"""
import http.client
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

DEFAULT_PORT = 52417


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def raw(port, method, path, headers, body=None):
    """One request as a browser would send it: exactly these headers (Host
    included, never added by the client library), no token."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        data = body.encode() if isinstance(body, str) else body
        conn.putheader("Content-Length", str(len(data or b"")))
        conn.endheaders(data)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), text
    finally:
        conn.close()


class ApiBrowser(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="test_api_browser.")
        os.chmod(self.root, 0o700)
        self.psk = os.path.join(self.root, "swarm.key")
        meshtest.keygen_psk(self.psk)
        # The node's home is HOME/.meshd, meshctl's default.
        self.node = meshtest.Node(".meshd", self.root, f"127.0.0.1:{meshtest.free_port()}",
                                  psk=self.psk)
        self.default_port = port_free(DEFAULT_PORT)
        self.port = DEFAULT_PORT if self.default_port else meshtest.free_port()
        self.node.api = f"127.0.0.1:{self.port}"
        self.ok = False

    def tearDown(self):
        self.node.stop()
        if self.ok:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            print(f"kept {self.root}; log tail:\n{self.node.log_tail()}")

    def meshctl(self, *args, env_extra=None):
        # Only what a login shell would have: no MESH_* variables.
        env = {"HOME": self.root, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        if not self.default_port:
            env["MESH_API"] = self.node.api
        env.update(env_extra or {})
        r = subprocess.run([meshtest.MESHCTL] + list(args), env=env, capture_output=True,
                           text=True, timeout=30)
        return r.returncode, r.stdout, r.stderr

    def refused(self):
        m = self.node.metrics()
        return {r: int(meshtest.metric_sum(m, "meshd_api_refused_total", reason=r))
                for r in ("host", "origin", "content_type", "preflight")}

    def test_browser_refused_meshctl_works(self):
        self.node.start()
        if not self.default_port:
            print(f"note: port {DEFAULT_PORT} is taken here; meshctl gets the API from MESH_API")
        node_id = self.node.node_id()
        token_path = os.path.join(self.node.home, "api.token")
        st = os.lstat(token_path)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        with open(token_path) as f:
            token = f.read().strip()
        self.assertRegex(token, r"^[0-9a-f]{64}$")

        host = f"127.0.0.1:{self.port}"
        evil = f"evil.example:{self.port}"
        start = json.dumps({"targetNodeId": node_id, "modelId": "org/model"})
        cases = [
            # <form method=post> to the API, and fetch(..., {mode: "no-cors"}).
            ("form POST /download/start", "POST", "/download/start",
             [("Host", host), ("Origin", "https://evil.example"),
              ("Content-Type", "application/x-www-form-urlencoded")],
             f"targetNodeId={node_id}&modelId=org%2Fmodel", "origin"),
            ("form POST without Origin", "POST", "/download/start",
             [("Host", host), ("Content-Type", "application/x-www-form-urlencoded")],
             f"targetNodeId={node_id}&modelId=org%2Fmodel", "content_type"),
            ("text/plain POST /download/start", "POST", "/download/start",
             [("Host", host), ("Content-Type", "text/plain;charset=UTF-8")], start,
             "content_type"),
            ("text/plain POST /leave", "POST", "/leave",
             [("Host", host), ("Content-Type", "text/plain;charset=UTF-8")], "{}",
             "content_type"),
            ("multipart POST /leave", "POST", "/leave",
             [("Host", host), ("Content-Type", "multipart/form-data; boundary=----b")],
             "------b--\r\n", "content_type"),
            # DNS rebinding: the page's own name in Host, its origin is "same".
            ("rebound GET /state", "GET", "/state", [("Host", evil)], None, "host"),
            ("rebound JSON POST /leave", "POST", "/leave",
             [("Host", evil), ("Origin", f"http://{evil}"), ("Content-Type", "application/json")],
             "{}", "host"),
            ("rebound DELETE", "DELETE", f"/download/{node_id}/org%2Fmodel",
             [("Host", evil), ("Content-Type", "application/json")], None, "host"),
            ("foreign Origin JSON POST", "POST", "/download/start",
             [("Host", host), ("Origin", "https://evil.example"),
              ("Content-Type", "application/json")], start, "origin"),
            ("sandboxed page (Origin null)", "GET", "/state",
             [("Host", host), ("Origin", "null")], None, "origin"),
            ("cross-site GET", "GET", "/state",
             [("Host", host), ("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Mode", "no-cors")],
             None, "origin"),
            ("preflight", "OPTIONS", "/download/start",
             [("Host", host), ("Origin", "https://evil.example"),
              ("Access-Control-Request-Method", "POST"),
              ("Access-Control-Request-Headers", "content-type")], None, "preflight"),
        ]
        want = {"host": 0, "origin": 0, "content_type": 0, "preflight": 0}
        for name, method, path, headers, body, reason in cases:
            status, hdrs, text = raw(self.port, method, path, headers, body)
            self.assertEqual(status, 403, f"{name}: {status} {text}")
            self.assertIn("error", json.loads(text), name)
            self.assertFalse([h for h in hdrs if h.startswith("access-control-")], name)
            want[reason] += 1
            self.assertEqual(self.refused(), want, name)
            self.node.alive()
            print(f"refused: {name}: {json.loads(text)['error']}")
        print("figure: refused_by_reason = " + json.dumps(want, sort_keys=True))

        # A client on this machine without the token (another local user):
        # 401, and nothing is done either.
        status, _, text = raw(self.port, "POST", "/leave",
                              [("Host", host), ("Content-Type", "application/json")], "{}")
        self.assertEqual(status, 401, text)
        # Nothing was done: no entry, no record, still running.
        status, downloads = self.node.get("/downloads")
        self.assertEqual(status, 200)
        self.assertEqual(downloads["downloads"], {}, downloads)
        status, journal = self.node.get("/journal?limit=1000")
        self.assertEqual(status, 200)
        kinds = [e.get("kind") for e in journal["entries"]]
        self.assertNotIn("start", kinds, journal)
        self.node.alive()

        # meshctl with no flags: the token comes from HOME/.meshd/api.token.
        rc, out, err = self.meshctl("id")
        self.assertEqual(rc, 0, err)
        self.assertIn(node_id, out)
        rc, out, err = self.meshctl("--json", "members")
        self.assertEqual(rc, 0, err)
        self.assertIn(node_id, out)
        rc, out, err = self.meshctl("gc")
        self.assertEqual(rc, 0, err)
        rc, out, err = self.meshctl("delete", "org/absent")
        self.assertEqual(rc, 0, err)
        # Another home's token (or none) is refused, and the message says
        # where meshctl looked.
        other = os.path.join(self.root, "elsewhere")
        os.makedirs(other)
        rc, out, err = self.meshctl("--home", other, "id")
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 401", err)
        self.assertIn(os.path.join(other, "api.token"), err)
        # --token still wins over the file.
        rc, out, err = self.meshctl("--token", "0" * 64, "id")
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 401", err)
        rc, out, err = self.meshctl("--token", token, "--home", other, "id")
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.refused(), want)

        rc, out, err = self.meshctl("leave")
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.node.proc.wait(15), 0)
        print(f"figure: meshctl_no_flags_default_port = {int(self.default_port)}")
        self.ok = True


if __name__ == "__main__":
    unittest.main(verbosity=2)
