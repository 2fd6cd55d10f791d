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
import unittest

from harness import BIN, ROOT, Cluster, HostTestCase, hosts_entry, request, sample_apps, wait_for
from harness import go_cli as harness_go_cli

APPS = sample_apps()


class TestGitPush(HostTestCase):
    stop_timeout = 1

    @classmethod
    def setUpClass(cls):
        if not APPS:
            raise unittest.SkipTest("the sample apps (../shared/apps) are not here")
        super().setUpClass()
        # LeakSanitizer cannot stop the world inside a container: the receiver would
        # fail every push at exit in the sanitized build
        # small build limits, so the runaway-build tests are quick
        c = Cluster(cls.cdir, cls.hostd.url, "push", {"ASAN_OPTIONS": "detect_leaks=0",
                                                      "FLYNN_BUILD_TIMEOUT": "15",
                                                      "FLYNN_BUILD_MAX_OUTPUT": str(4 << 20)})
        cls.ctl = c.ctl
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
        # the build's output is in the app's log too, as process type slugbuilder
        wait_for(lambda: "-----> Compiled slug size is" in self.flynn("-a", "site", "log", "-t", "slugbuilder", "-r"),
                 timeout=30, what="the build output in `flynn log -t slugbuilder`")
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
        # a commit with no files at all
        repo3 = os.path.join(self.cdir, "repos", "nofiles")
        os.makedirs(repo3)
        self.git(repo3, "init", "-q", "-b", "main")
        self.git(repo3, "commit", "-q", "--allow-empty", "-m", "nothing")
        self.flynn("create", "nofiles", cwd=repo3)
        rc, out = self.push(repo3, check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("No buildpack detected", out)
        self.assertEqual(self.api("GET", "/apps/nofiles/release").status, 404)
        # dependencies that cannot be fetched: the message names the package and the
        # setting for a mirror (tests have no network: the registry here refuses)
        repo4 = self.new_repo(os.path.join(APPS, "node-express"), "nodeapp")
        self.flynn("-a", "nodeapp", "env", "set", "npm_config_registry=http://127.0.0.1:9/")
        rc, out = self.push(repo4, check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("express", out)
        self.assertIn("npm_config_registry", out)
        self.assertIn("pre-receive hook declined", out)


    def api(self, method, path, body=None):
        import base64
        h = {"Authorization": "Basic " + base64.b64encode((":" + self.key).encode()).decode()}
        return request(method, self.ctl + path, body, headers=h)

    def test_04_every_language(self):
        for app in ("go-http", "c-make", "ruby-http", "php-hello", "java-maven", "multi-process"):
            name = app.replace("-", "")
            repo = self.new_repo(os.path.join(APPS, app), name)
            rc, out = self.push(repo)
            self.assertIn("=====> Application deployed", out, app)
            st, body = self.get(name)
            self.assertEqual(st, 200, (app, body))
            # each sample names itself; multi-process's web answers with its process type
            self.assertEqual(body, "web web\n" if app == "multi-process" else body, app)
            if app != "multi-process":
                self.assertIn("Hello from %s" % app, body)
        # multi-process: web runs; worker and clock scale separately from the same slug
        self.flynn("-a", "multiprocess", "scale", "worker=1", "clock=1")
        ps = self.flynn("-a", "multiprocess", "ps")
        for t in ("web", "worker", "clock"):
            self.assertEqual(len([l for l in ps.splitlines() if " %s " % t in l and " up " in l]), 1,
                             (t, ps))

    def custom_buildpack_app(self, name, compile_body):
        """An app whose own buildpack (in the repo, named by BUILDPACK_URL) runs compile_body."""
        repo = os.path.join(self.cdir, "repos", name)
        os.makedirs(os.path.join(repo, "bp", "bin"))
        for f, body in (("detect", "echo Custom"), ("compile", compile_body),
                        ("release", "echo '--- {default_process_types: {web: sleep 1000}}'")):
            path = os.path.join(repo, "bp", "bin", f)
            with open(path, "w") as fh:
                fh.write("#!/bin/sh\n" + body + "\n")
            os.chmod(path, 0o755)
        self.git(repo, "init", "-q", "-b", "main")
        self.git(repo, "add", "-A")
        self.git(repo, "commit", "-q", "-m", "x")
        self.flynn("create", name, cwd=repo)
        self.flynn("-a", name, "env", "set", "BUILDPACK_URL=/app/bp")
        return repo

    def test_05_runaway_builds_are_cut_off(self):
        repo = self.custom_buildpack_app("chatty", "yes 'spam spam spam spam spam'")
        rc, out = self.push(repo, check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("more than %d bytes of output" % (4 << 20), out)
        self.assertIn("FLYNN_BUILD_MAX_OUTPUT", out)
        self.assertLess(len(out), 8 << 20)  # cut near the limit (plus git's "remote: " prefixes)
        repo = self.custom_buildpack_app("forever", "echo building forever; sleep 1000")
        rc, out = self.push(repo, check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("ran longer than 15 s", out)
        # the build jobs are gone from the host
        wait_for(lambda: not [j for j in self.host.jobs(active=True).values()
                              if j["job"]["metadata"].get("flynn-controller.type") == "slugbuilder"],
                 timeout=30, what="build jobs stopped")

    def test_06_procfile_without_web(self):
        repo = self.new_repo(os.path.join(APPS, "python-http"), "noweb")
        with open(os.path.join(repo, "Procfile"), "w") as f:
            f.write("worker: python3 app.py\n")
        self.git(repo, "commit", "-qam", "worker only")
        rc, out = self.push(repo, check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("no web process type", out)
        self.assertEqual(self.api("GET", "/apps/noweb/release").status, 404)

    def test_07_old_slugs_are_collected(self):
        repo = self.new_repo(os.path.join(APPS, "static-site"), "gcapp")
        self.assertEqual(self.api("POST", "/apps/gcapp", {"meta": {"gc.max_inactive_slug_releases": "1"}}).status, 200)
        uris = []
        for i in range(4):
            with open(os.path.join(repo, "index.html"), "a") as f:
                f.write("<!-- %d -->\n" % i)
            self.git(repo, "commit", "-qam", str(i))
            rc, out = self.push(repo)
            rel = self.api("GET", "/apps/gcapp/release").json()
            art = self.api("GET", "/artifacts/" + rel["artifacts"][0]).json()
            uris.append(art["uri"])
        self.assertIn("Removed", out)
        rels = [r for r in self.api("GET", "/apps/gcapp/releases").json() if r.get("meta", {}).get("git")]
        self.assertEqual(len(rels), 2, rels)  # current + 1 inactive
        # the blobs of the two oldest slugs are gone, the newest two remain
        self.assertEqual([request("GET", u).status for u in uris], [404, 404, 200, 200])


    def test_09_gitreceive_http(self):
        """Clone what was pushed; hostile requests to gitreceive get clear 4xx."""
        repo = self.new_repo(os.path.join(APPS, "static-site"), "cloneme")
        self.push(repo)
        dest = os.path.join(self.cdir, "repos", "cloned")
        rc, out = self.git(self.cdir, "clone", "-q",
                           "https://git.%s:%d/cloneme.git" % (self.domain, self.tls_port), dest)
        self.assertEqual(self.git(dest, "rev-parse", "HEAD")[1], self.git(repo, "rev-parse", "HEAD")[1])
        import base64
        base = "http://" + self.env["GITRECEIVE_LISTEN"]
        good = {"Authorization": "Basic " + base64.b64encode((":" + self.key).encode()).decode()}
        bad = {"Authorization": "Basic " + base64.b64encode(b"user:nope").decode()}
        r = request("GET", base + "/cloneme.git/info/refs?service=git-receive-pack")
        self.assertEqual(r.status, 401)
        self.assertIn("Basic", r.headers.get("WWW-Authenticate", ""))
        self.assertEqual(request("GET", base + "/cloneme.git/info/refs?service=git-receive-pack",
                                 headers=bad).status, 401)
        r = request("GET", base + "/cloneme.git/info/refs?service=git-receive-pack", headers=good)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.body.startswith(b"001f# service=git-receive-pack\n0000"), r.body[:60])
        self.assertEqual(r.headers.get("Content-Type"), "application/x-git-receive-pack-advertisement")
        self.assertEqual(request("GET", base + "/cloneme.git/info/refs?service=git-shell",
                                 headers=good).status, 403)
        self.assertEqual(request("GET", base + "/cloneme.git/info/refs", headers=good).status, 403)
        for name in ("nope", "../etc.git", "UPPER.git", "a%2f..%2fb.git"):
            self.assertEqual(request("GET", base + "/%s/info/refs?service=git-upload-pack" % name,
                                     headers=good).status, 404, name)
        r = request("GET", base + "/nosuch.git/info/refs?service=git-upload-pack", headers=good)
        self.assertEqual(r.status, 404)
        self.assertIn(b"flynn create nosuch", r.body)
        h = dict(good, **{"Content-Encoding": "gzip",
                          "Content-Type": "application/x-git-receive-pack-request"})
        self.assertEqual(request("POST", base + "/cloneme.git/git-receive-pack", b"not gzip",
                                 headers=h).status, 400)
        h["Content-Encoding"] = "br"
        self.assertEqual(request("POST", base + "/cloneme.git/git-receive-pack", b"x",
                                 headers=h).status, 415)
        # garbage to git itself: git answers (an error), the service stays up
        h.pop("Content-Encoding")
        request("POST", base + "/cloneme.git/git-receive-pack", b"0000garbage", headers=h)
        self.assertEqual(request("GET", base + "/").status, 200)
        self.assertEqual(self.get("cloneme")[0], 200)

    def test_08_flynn_go_cli_push(self):
        """Flynn's own CLI configures git its way (its own CA file and credential
        helper) and the push goes through the same path."""
        go_cli = harness_go_cli()
        if not go_cli:
            self.skipTest("Flynn's Go CLI (shared/tools/flynn-go-cli) is not here")
        hosts_entry(self, "controller." + self.domain, "git." + self.domain)
        home = os.path.join(self.cdir, "gohome")
        os.makedirs(home, exist_ok=True)
        env = dict(self.env, HOME=home, FLYNNRC=os.path.join(home, ".flynnrc"))
        pin = [l.split(":", 1)[1].strip() for l in open(os.path.join(self.cdir, "conf", "cluster.txt"))
               if l.startswith("TLS pin:")][0]

        def go(*args, cwd=home):
            p = subprocess.run([go_cli] + list(args), env=env, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=120)
            self.assertEqual(p.returncode, 0, (args, p.stdout, p.stderr))
            return p.stdout.decode()
        go("cluster", "add", "-p", pin, "default", "%s:%d" % (self.domain, self.tls_port), self.key)
        repo = self.new_repo(os.path.join(APPS, "static-site"), "goclisite", create=False)
        go("create", "goclisite", cwd=repo)
        r = subprocess.run(["git", "push", "flynn", "main"], cwd=repo, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=300)
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("=====> Application deployed", out)
        self.assertEqual(self.get("goclisite")[0], 200)
        self.assertIn("web", go("-a", "goclisite", "ps"))


if __name__ == "__main__":
    import unittest
    unittest.main()
