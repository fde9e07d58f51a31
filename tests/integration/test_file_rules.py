"""Files and the home: meshd refuses to start on a file or home that someone
else could have written or read, says how to fix it, and exits with status 1;
what it creates itself is private whatever the umask.

Refused (each: exit status 1, the message names the path and the fix):
  swarm.key at 0644 and 0666, owned by another user, or a symbolic link;
  identity.key as a symbolic link (even to a good key);
  meshd.conf at 0666, or one that sets api_token and others can read;
  a home at 0777, or owned by another user.
Accepted: meshd.conf at 0644 without a token, a home at 0755. A node started
under umask 0 makes its home 0700 and identity.key, epoch, the locks and
mesh.db (with -wal and -shm) 0600; model folders follow the umask (they hold
public weights other programs read: docs/operations.md, "Files").
Cases that need another user (chown) say "skipped" when not run as root.
"""
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import meshtest  # noqa: E402

OTHER_UID = 1  # "daemon" on Debian and macOS alike; any uid but ours will do


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


class FileRules(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="meshfiles-")
        self.psk = os.path.join(self.tmp, "good.key")
        meshtest.keygen_psk(self.psk)
        self.home = os.path.join(self.tmp, "home")
        meshtest.make_home(self.home)
        shutil.copyfile(self.psk, os.path.join(self.home, "swarm.key"))
        os.chmod(os.path.join(self.home, "swarm.key"), 0o600)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_meshd(self, *extra):
        """Starts meshd on self.home; a refusal ends it at once."""
        cmd = [meshtest.MESHD, "--home", self.home, "--listen", "127.0.0.1:0",
               "--api", "unix:" + os.path.join(self.tmp, "api.sock"), *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20)

    def refused(self, want, *extra):
        r = self.run_meshd(*extra)
        self.assertEqual(r.returncode, 1, f"stdout {r.stdout!r} stderr {r.stderr!r}")
        self.assertIn(want, r.stderr)
        print(f"  refused with status 1: {r.stderr.strip().splitlines()[-1]}")
        return r

    def need_root(self, what):
        if os.geteuid() != 0:
            print(f"skipped: {what} (needs root to chown)")
            return False
        return True

    def test_swarm_key_too_open(self):
        key = os.path.join(self.home, "swarm.key")
        for m in (0o644, 0o666):
            os.chmod(key, m)
            self.refused(f"Permissions {m:04o} for '{key}' are too open; run: chmod 600 {key}")

    def test_swarm_key_other_owner(self):
        if not self.need_root("swarm.key owned by another user"):
            return
        key = os.path.join(self.home, "swarm.key")
        os.chown(key, OTHER_UID, OTHER_UID)
        self.refused(f"swarm key '{key}' is owned by uid {OTHER_UID}, but meshd runs as uid 0; "
                     f"run: chown 0 {key}")

    def test_swarm_key_symlink(self):
        key = os.path.join(self.home, "swarm.key")
        os.unlink(key)
        os.symlink(self.psk, key)
        self.refused(f"swarm key '{key}' is a symbolic link")
        # --swarm-key naming a link is refused the same way.
        link = os.path.join(self.tmp, "link.key")
        os.symlink(self.psk, link)
        self.refused(f"swarm key '{link}' is a symbolic link", "--swarm-key", link)

    def test_identity_key_symlink(self):
        real = os.path.join(self.tmp, "real-identity.key")
        subprocess.run([meshtest.MESHD, "id", "--home", self.tmp + "/idhome"], check=True,
                       capture_output=True)
        shutil.copyfile(os.path.join(self.tmp, "idhome", "identity.key"), real)
        os.chmod(real, 0o600)
        os.symlink(real, os.path.join(self.home, "identity.key"))
        self.refused("identity.key' is a symbolic link")

    def test_config_writable_by_others(self):
        conf = os.path.join(self.home, "meshd.conf")
        with open(conf, "w") as f:
            f.write("log_level = debug\n")
        os.chmod(conf, 0o666)
        self.refused(f"config file '{conf}' is writable by group or others (mode 0666); "
                     f"run: chmod go-w {conf}")
        os.chmod(conf, 0o644)
        with open(conf, "w") as f:
            f.write("api_token = s3cret-token\n")
        self.refused(f"config file {conf} sets api-token but others can read it (mode 0644); "
                     f"run: chmod o-rwx {conf}")

    def test_home_writable_by_others(self):
        os.chmod(self.home, 0o777)
        self.refused(f"home {self.home} is writable by group or others (mode 0777), so they could "
                     f"replace its keys; run: chmod 700 {self.home}")
        # Nothing was created in a refused home.
        self.assertEqual(sorted(os.listdir(self.home)), ["swarm.key"])

    def test_home_other_owner(self):
        if not self.need_root("home owned by another user"):
            return
        os.chown(self.home, OTHER_UID, OTHER_UID)
        self.refused(f"home {self.home} is owned by uid {OTHER_UID}, but meshd runs as uid 0; "
                     f"run: chown 0 {self.home}")

    def test_created_files_private_under_umask_0(self):
        conf = os.path.join(self.home, "meshd.conf")
        with open(conf, "w") as f:
            f.write("log_level = debug\n")
        os.chmod(conf, 0o644)
        os.chmod(self.home, 0o755)  # readable by others is not refused
        old = os.umask(0)
        try:
            # A home meshd makes itself: 0700 even under umask 0.
            made = os.path.join(self.tmp, "made-by-meshd")
            subprocess.run([meshtest.MESHD, "id", "--home", made], check=True,
                           capture_output=True)
            self.assertEqual(mode(made), 0o700)
            self.assertEqual(mode(os.path.join(made, "identity.key")), 0o600)
            node = meshtest.Node("fresh", self.tmp, f"127.0.0.1:{meshtest.free_port()}",
                                 psk=self.psk)
            node.start()
            models = os.path.join(node.home, "models")
            meshtest.wait_until(lambda: os.path.exists(os.path.join(node.home, "mesh.db-wal")),
                                20, "the store's WAL")
            node.stop()
        finally:
            os.umask(old)
        created = ["identity.key", "epoch", "epoch.lock", "meshd.lock", "mesh.db"]
        for name in created + ["mesh.db-wal", "mesh.db-shm"]:
            p = os.path.join(node.home, name)
            if name in created or os.path.exists(p):
                self.assertEqual(mode(p), 0o600, name)
        listing = {n: f"{mode(os.path.join(node.home, n)):04o}" for n in os.listdir(node.home)}
        print(f"  files of a node started under umask 0: {listing}")
        if os.path.isdir(models):
            print(f"  models folder (follows the umask): {mode(models):04o}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
