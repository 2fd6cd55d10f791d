"""`git push` end to end on a bootstrapped cluster (scripts/bootstrap, as `make up`
runs it): the real git client pushes the sample apps (../shared/apps) to
gitreceive through the router over TLS, with the credentials and CA that
`flynn cluster add` configured; each is built by a slugbuilder job, stored in the
blobstore, released and deployed, and answers through the router. Bad pushes are
refused with clear messages and change nothing."""
import os
import shutil
import socket
import ssl
import subprocess
import http.client

from harness import BIN, ROOT, Cluster, HostTestCase, wait_for

APPS = os.environ.get("FLYNN_SAMPLE_APPS",
                      os.path.join(os.path.dirname(ROOT), "shared", "apps"))


class TestGitPush(HostTestCase):
    stop_timeout = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # LeakSanitizer cannot stop the world inside a container: the receiver would
        # fail every push at exit in the sanitized build
        c = Cluster(cls.cdir, cls.hostd.url, "push", {"ASAN_OPTIONS": "detect_leaks=0"})
        cls.env, cls.domain, cls.home, cls.key, cls.ca = c.env, c.domain, c.home, c.key, c.ca
        cls.tls_port = c.tls_port

    def flynn(self, *args, cwd=None, check=True):
        r = subprocess.run([os.path.join(BIN, "flynn")] + list(args), env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90,
                           cwd=cwd or self.home)
        if check and r.returncode != 0:
            raise AssertionError("flynn %s: exit %d\n%s%s" % (" ".join(args), r.returncode,
                                                                r.stdout.decode(), r.stderr.decode()))
        return r.stdout.decode()

    def git(self, repo, *args, check=True, timeout=300):
        r = subprocess.run(["git"] + list(args), cwd=repo, env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        out = r.stdout.decode(errors="replace")
        if check and r.returncode != 0:
            raise AssertionError("git %s: exit %d\n%s" % (" ".join(args), r.returncode, out))
        return r.returncode, out

    def new_repo(self, app_dir, name, create=True):
        """A fresh git repository with a copy of a sample app, and the app created."""
        repo = os.path.join(self.cdir, "repos", name)
        shutil.copytree(app_dir, repo)
        for root, dirs, files in os.walk(repo):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o644)
        self.git(repo, "init", "-q", "-b", "main")
        self.git(repo, "add", "-A")
        self.git(repo, "commit", "-q", "-m", "first")
        if create:
            self.flynn("create", name, cwd=repo)
        return repo

    def get(self, name, path="/"):
        """GET through the router over TLS, by the app's default domain."""
        ctx = ssl.create_default_context(cafile=self.ca)
        host = "%s.%s" % (name, self.domain)
        c = http.client.HTTPSConnection("127.0.0.1", self.tls_port, context=ctx, timeout=10)
        c.sock = None
        c._tunnel_host = None
        # SNI and Host must name the app; connect to 127.0.0.1
        sock = socket.create_connection(("127.0.0.1", self.tls_port), timeout=10)
        c.sock = ctx.wrap_socket(sock, server_hostname=host)
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        body = r.read().decode(errors="replace")
        c.close()
        return r.status, body

    def push(self, repo, *extra, check=True):
        return self.git(repo, "push", "flynn", "main", *extra, check=check)

    def test_01_python_push_and_update(self):
        repo = self.new_repo(os.path.join(APPS, "python-http"), "pyapp")
        remotes = self.git(repo, "remote", "-v")[1]
        self.assertIn("https://git.%s" % self.domain, remotes)
        rc, out = self.push(repo)
        self.assertIn("-----> Building pyapp...", out)
        self.assertIn("Procfile declares types", out)
        self.assertIn("=====> Application deployed", out)
        self.assertEqual(self.get("pyapp"), (200, "Hello from python-http\n"))
        # second push with a change serves the new code
        with open(os.path.join(repo, "app.py")) as f:
            src = f.read()
        with open(os.path.join(repo, "app.py"), "w") as f:
            f.write(src.replace("Hello from python-http", "Hello again from python-http"))
        self.git(repo, "commit", "-qam", "second")
        rc, out = self.push(repo)
        self.assertIn("=====> Application deployed", out)
        self.assertEqual(self.get("pyapp"), (200, "Hello again from python-http\n"))
        # env reaches the app
        self.flynn("-a", "pyapp", "env", "set", "GREETING=hi")
        wait_for(lambda: self.get("pyapp", "/env/GREETING") == (200, "hi\n"), timeout=60,
                 what="env through a new release")
        # a broken build fails the push; the old release keeps serving
        with open(os.path.join(repo, "Procfile"), "w") as f:
            f.write("this is not a procfile\n")
        self.git(repo, "commit", "-qam", "broken")
        rc, out = self.push(repo, check=False)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("Procfile", out)
        self.assertIn("pre-receive hook declined", out)
        self.assertEqual(self.get("pyapp"), (200, "Hello again from python-http\n"))
        # force push of an older commit deploys it
        self.git(repo, "reset", "-q", "--hard", "HEAD~2")
        rc, out = self.push(repo, "--force")
        self.assertIn("=====> Application deployed", out)
        self.assertEqual(self.get("pyapp"), (200, "Hello from python-http\n"))

    def test_02_static_site(self):
        repo = self.new_repo(os.path.join(APPS, "static-site"), "site")
        rc, out = self.push(repo)
        self.assertIn("=====> Application deployed", out)
        st, body = self.get("site")
        self.assertEqual(st, 200)
        with open(os.path.join(APPS, "static-site", "index.html")) as f:
            self.assertEqual(body, f.read())

    def test_03_bad_pushes(self):
        # unknown app: the remote points at an app that does not exist
        repo = self.new_repo(os.path.join(APPS, "static-site"), "nosuchapp", create=False)
        url = "https://git.%s:%d/nosuchapp.git" % (self.domain, self.tls_port)
        self.git(repo, "remote", "add", "flynn", url)
        rc, out = self.push(repo, check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("not found", out.lower() + "")
        # bad key: refused
        self.flynn("create", "keyapp", cwd=repo)
        bad = "https://user:wrong@git.%s:%d/keyapp.git" % (self.domain, self.tls_port)
        r = subprocess.run(["git", "-c", "credential.helper=", "push", bad, "main"], cwd=repo,
                           env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Authentication failed", r.stdout.decode())
        # nothing detects the app
        repo2 = os.path.join(self.cdir, "repos", "empty")
        os.makedirs(repo2)
        with open(os.path.join(repo2, "README"), "w") as f:
            f.write("nothing to run\n")
        self.git(repo2, "init", "-q", "-b", "main")
        self.git(repo2, "add", "-A")
        self.git(repo2, "commit", "-q", "-m", "x")
        self.flynn("create", "emptyapp", cwd=repo2)
        rc, out = self.push(repo2, check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("No buildpack detected", out)
        self.assertIn("pre-receive hook declined", out)
        rels = self.flynn("-a", "emptyapp", "release")
        self.assertNotIn("git", rels)


if __name__ == "__main__":
    import unittest
    unittest.main()
