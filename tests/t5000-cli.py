"""flynn (the C client): commands, config files, TLS pin, errors.

TestCliLocal needs no server: help texts, usage errors, ~/.flynnrc editing
(byte for byte against Flynn's Go CLI when /work/shared/tools/flynn-go-cli
or $FLYNN_GO_CLI exists), git-credentials, how app and cluster are chosen,
connection failures.

TestCliController drives our `flynn` against the real flynn-controller
(no hosts) behind its TLS listener, with a pinned self-signed certificate
for flynn.localhost (curl resolves *.localhost to loopback itself). Every
run gets a private HOME and FLYNNRC, so global git config stays private.
"""
import base64
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import http.server
import unittest
import uuid

from harness import TestCase, binpath, request, wait_for

KEY = "s3cr3t"
GO_CLI = os.environ.get("FLYNN_GO_CLI", "/work/shared/tools/flynn-go-cli")
HELP_COMMANDS = ["", "cluster", "git-credentials", "create", "delete", "apps", "info", "ps",
                 "kill", "scale", "env", "meta", "limit", "release", "deployment", "version",
                 "log", "run", "route", "remote", "pg", "mysql", "mongodb", "provider",
                 "resource", "volume", "redis", "docker", "export", "import",
                 # hidden upstream and not implemented here, but `help` knows them
                 "login", "install"]


def have_flynn():
    return os.path.exists(binpath("flynn"))


def make_certs(d, domain):
    """A CA and a leaf for DOMAIN and *.DOMAIN (openssl CLI); returns paths and the pin."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/O=Flynn/OU=Flynn Ephemeral CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
        "-subj", "/CN=" + domain)
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:%s,DNS:*.%s\n" % (domain, domain))
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "ext")
    with open(os.path.join(d, "leaf.pem")) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    pin = base64.b64encode(hashlib.sha256(der).digest()).decode()
    return {"ca": os.path.join(d, "ca.pem"), "cert": os.path.join(d, "leaf.pem"),
            "key": os.path.join(d, "leaf.key"), "pin": pin}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@unittest.skipUnless(have_flynn(), "build/bin/flynn not built (make)")
class CliBase(TestCase):
    def setUp(self):
        super().setUp()
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home)
        self.rc = os.path.join(self.home, ".flynnrc")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GIT_", "FLYNN_")) or k == "FLYNN_BIN_DIR"}
        env.update({"HOME": self.home, "FLYNNRC": self.rc, "GIT_CONFIG_NOSYSTEM": "1",
                    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.test",
                    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.test",
                    "TZ": "UTC"})
        self.env = env

    def run_bin(self, argv, cwd=None, input=None, env=None, timeout=60):
        e = dict(self.env)
        e.update(env or {})
        p = subprocess.run(argv, cwd=cwd or self.dir, input=input, env=e, timeout=timeout,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
            self.assertNotIn(marker, p.stderr, "sanitizer report from %r:\n%s" % (argv, p.stderr))
        return p

    def flynn(self, *args, **kw):
        return self.run_bin([binpath("flynn")] + list(args), **kw)

    def ok(self, *args, **kw):
        p = self.flynn(*args, **kw)
        self.assertEqual(p.returncode, 0, "flynn %s: rc %d\nstdout: %s\nstderr: %s"
                         % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def fails(self, *args, **kw):
        p = self.flynn(*args, **kw)
        self.assertEqual(p.returncode, 1, "flynn %s should fail: %r %r"
                         % (" ".join(args), p.stdout, p.stderr))
        return p

    go_hosts = None  # an /etc/hosts to run Flynn's Go CLI with (its resolver skips *.localhost)

    def go(self, *args, **kw):
        argv = [GO_CLI] + list(args)
        if self.go_hosts:
            argv = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                    'mount --bind "$0" /etc/hosts && exec "$@"', self.go_hosts] + argv
        return self.run_bin(argv, **kw)

    def use_go_hosts(self, *names):
        """Makes NAMES resolve to 127.0.0.1 for the Go CLI; False when that is impossible
        here (no Go CLI, or no unshare)."""
        if not os.path.exists(GO_CLI):
            return False
        path = os.path.join(self.dir, "hosts")
        with open(path, "w") as f:
            f.write("127.0.0.1 localhost %s\n" % " ".join(names))
        self.go_hosts = path
        return self.go("version").returncode == 0

    def git(self, *args, cwd=None):
        p = self.run_bin(["git"] + list(args), cwd=cwd)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.strip()

    def read_rc(self):
        with open(self.rc) as f:
            return f.read()

    def git_repo(self, name="repo"):
        d = os.path.join(self.dir, name)
        os.makedirs(d)
        self.git("init", "-q", d)
        return d


class TestCliLocal(CliBase):
    def test_help_texts(self):
        for c in HELP_COMMANDS:
            p = self.ok("help", *([c] if c else []))
            self.assertTrue(p.stdout.startswith("usage: flynn"), c)
            if c:
                self.assertEqual(self.ok(c, "--help").stdout, p.stdout, c)
        self.assertEqual(self.ok("-h").stdout, self.ok("help").stdout.rstrip("\n") + "\n")
        if not os.path.exists(GO_CLI):
            self.skipTest("Flynn's Go CLI not present (%s): texts not compared" % GO_CLI)
        for c in HELP_COMMANDS:
            args = ["help"] + ([c] if c else [])
            self.assertEqual(self.ok(*args).stdout, self.go(*args).stdout, "help " + c)
        self.assertEqual(self.ok("help", "--json").stdout, self.go("help", "--json").stdout)

    def test_usage_errors(self):
        p = self.fails("env", "set")
        self.assertTrue(p.stdout.startswith("usage: flynn env [-t <proc>]\n"), p.stdout)
        self.assertTrue(self.fails("scale", "--bogus").stdout.startswith("usage: flynn scale"))
        self.assertTrue(self.fails("kill").stdout.startswith("usage: flynn kill <job>..."))
        self.assertTrue(self.fails("cluster", "add", "x").stdout.startswith("usage: flynn cluster"))
        self.assertTrue(self.fails().stdout.startswith("usage: flynn [-a <app>]"))
        self.assertTrue(self.fails("-x", "apps").stdout.startswith("usage: flynn [-a <app>]"))
        p = self.fails("frob")
        self.assertEqual(p.stderr, "frob is not a flynn command. See 'flynn help'\n")
        p = self.fails("login")
        self.assertIn("not implemented", p.stderr)
        self.assertEqual(self.ok("version").stdout, "dev\n")

    def test_no_clusters(self):
        p = self.fails("apps")
        self.assertEqual(p.stderr, "no clusters configured\n")
        p = self.fails("-a", "x", "env")
        self.assertEqual(p.stderr, "no clusters configured\n")

    def cluster_script(self, bin_run):
        """The same cluster edits through one CLI; returns outputs and file states."""
        out = []
        for args in (["cluster", "add", "--no-git", "a", "b.test", "k"],
                     ["cluster", "add", "--no-git", "-p", "AAAA", "c", "x.test:9443", "k2"],
                     ["cluster", "add", "--no-git", "--image-url", "https://img", "-d", "d",
                      "https://controller.y.test", 'q"\\'],
                     ["cluster", "add", "--no-git", "e", "b.test", "k"],
                     ["cluster", "add", "--no-git", "-f", "e", "b.test", "k"],
                     ["cluster"], ["cluster", "default"], ["cluster", "default", "a"],
                     ["cluster", "default", "zz"],
                     ["cluster", "remove", "a"], ["cluster"], ["cluster", "remove", "nope"],
                     ["cluster", "remove", "c"], ["cluster", "remove", "d"],
                     ["cluster", "remove", "e"]):
            p = bin_run(*args)
            with open(self.rc) if os.path.exists(self.rc) else open(os.devnull) as f:
                rc = f.read()
            lines = [l for l in p.stderr.splitlines() if not l.startswith("WARNING: Flynn is")]
            out.append((args, p.returncode, p.stdout, lines, rc))
        return out

    def test_cluster_config_like_flynn(self):
        ours = self.cluster_script(self.flynn)
        byargs = {tuple(a): (rc, so, se, f) for a, rc, so, se, f in ours}
        rc, so, se, f = byargs[("cluster", "add", "--no-git", "a", "b.test", "k")]
        self.assertEqual(se, ['Cluster "a" added and set as default.'])
        self.assertEqual(f, 'default = "a"\n\n[[cluster]]\n  Name = "a"\n  Key = "k"\n'
                            '  ControllerURL = "https://controller.b.test"\n  GitURL = ""\n'
                            '  ImageURL = "https://images.b.test"\n\n')
        rc, so, se, f = byargs[("cluster",)]
        self.assertEqual(so.splitlines()[0].split(), ["NAME", "CONTROLLER", "URL", "GIT", "URL",
                                                      "IMAGE", "URL"])
        self.assertEqual(byargs[("cluster", "remove", "e")][3], "")  # empty file at the end
        rc, so, se, f = byargs[("cluster", "add", "--no-git", "e", "b.test", "k")]
        self.assertEqual((rc, se), (1, ['A cluster with the URL "https://controller.b.test" '
                                        'already exists in ~/.flynnrc']))
        if not os.path.exists(GO_CLI):
            self.skipTest("Flynn's Go CLI not present (%s): files not compared" % GO_CLI)
        os.unlink(self.rc)
        theirs = self.cluster_script(self.go)
        for o, t in zip(ours, theirs):
            self.assertEqual(o, t, "differs from Flynn after %r" % (o[0],))

    def test_git_credentials(self):
        with open(self.rc, "w") as f:
            f.write('default = "c"\n\n[[cluster]]\n  Name = "c"\n  Key = "kk"\n'
                    '  ControllerURL = "https://controller.d.test"\n'
                    '  GitURL = "https://git.d.test"\n  ImageURL = ""\n\n')
        p = self.ok("git-credentials", "get", input="protocol=https\nhost=git.d.test\n\n")
        self.assertEqual(p.stdout, "protocol=https\nusername=user\nhost=git.d.test\npassword=kk\n")
        p = self.ok("git-credentials", "get", input="protocol=https\nhost=other.test\n")
        self.assertEqual(p.stdout, "")
        p = self.ok("git-credentials", "store", input="protocol=https\nhost=git.d.test\n")
        self.assertEqual(p.stdout, "")

    def two_clusters(self, port):
        with open(self.rc, "w") as f:
            for n in ("one", "two"):
                f.write('[[cluster]]\n  Name = "%s"\n  Key = "k"\n'
                        '  ControllerURL = "https://controller.%s.localhost:%d"\n'
                        '  GitURL = "https://git.%s.localhost"\n  ImageURL = ""\n\n'
                        % (n, n, port, n))

    def test_app_and_cluster_selection(self):
        port = free_port()  # nothing listens: every call fails after choosing
        self.two_clusters(port)
        # no app anywhere
        p = self.fails("info")
        self.assertEqual(p.stderr, "no app found, run from a repo with a flynn remote or "
                                   "specify one with -a\n")
        # $FLYNN_APP, -a over it; default cluster
        p = self.fails("info", env={"FLYNN_APP": "envapp"})
        self.assertEqual(p.stdout, "=== envapp\n")
        self.assertIn('"https://controller.one.localhost:%d/apps/envapp/release"' % port,
                      p.stderr)
        p = self.fails("-a", "flagapp", "info", env={"FLYNN_APP": "envapp"})
        self.assertEqual(p.stdout, "=== flagapp\n")
        # -c over $FLYNN_CLUSTER over default
        p = self.fails("-a", "x", "info", env={"FLYNN_CLUSTER": "two"})
        self.assertIn("controller.two.localhost", p.stderr)
        p = self.fails("-c", "one", "-a", "x", "info", env={"FLYNN_CLUSTER": "two"})
        self.assertIn("controller.one.localhost", p.stderr)
        p = self.fails("-c", "nope", "-a", "x", "info")
        self.assertEqual(p.stderr, 'unknown cluster "nope"\n')
        # git remote: app and cluster from the remote's URL
        repo = self.git_repo()
        self.git("remote", "add", "flynn", "https://git.two.localhost/remoteapp.git", cwd=repo)
        p = self.fails("info", cwd=repo)
        self.assertEqual(p.stdout, "=== remoteapp\n")
        self.assertIn("controller.two.localhost", p.stderr)
        # -a naming a remote
        p = self.fails("-a", "flynn", "info", cwd=repo)
        self.assertEqual(p.stdout, "=== remoteapp\n")
        # several remotes: an error, unless flynn.remote picks one
        self.git("remote", "add", "other", "https://git.two.localhost/otherapp.git", cwd=repo)
        p = self.fails("info", cwd=repo)
        self.assertIn("Multiple apps listed in git remotes", p.stderr)
        self.git("config", "flynn.remote", "other", cwd=repo)
        self.assertEqual(self.fails("info", cwd=repo).stdout, "=== otherapp\n")

    def test_connection_refused_says_what_to_check(self):
        port = free_port()
        self.ok("cluster", "add", "--no-git", "c", "flynn.localhost:%d" % port, "k")
        p = self.fails("apps")
        self.assertTrue(p.stderr.startswith(
            'Get "https://controller.flynn.localhost:%d/apps": ' % port), p.stderr)
        self.assertIn("check that the controller is running", p.stderr)
        self.ok("cluster", "add", "--no-git", "d", "nosuch.invalid", "k")
        p = self.fails("-c", "d", "apps")
        self.assertIn("does not resolve", p.stderr)
        p = self.fails("cluster", "add", "-p", "AAAA", "e", "other.localhost:%d" % port, "k")
        self.assertIn("Error writing CA certificate: Get \"https://controller.other.localhost",
                      p.stderr)
        self.assertNotIn('Name = "e"', self.read_rc())


@unittest.skipUnless(have_flynn() and os.path.exists(binpath("flynn-controller")),
                     "build/bin/flynn or build/bin/flynn-controller not built")
class TestCliController(CliBase):
    certs = None

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="flynn-certs-")
        cls.certs = make_certs(cls.certdir, "flynn.localhost")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certdir, ignore_errors=True)

    def setUp(self):
        super().setUp()
        c = self.certs
        self.ctl = self.start("flynn-controller", [
            "--listen", "127.0.0.1:0", "--data-dir", os.path.join(self.dir, "data"),
            "--key", KEY, "--domain", "flynn.localhost", "--tls-listen", "127.0.0.1:0",
            "--tls-cert", c["cert"], "--tls-key", c["key"], "--ca-cert", c["ca"]])
        m = wait_for(lambda: re.search(r"tls: listening on [0-9.]+:(\d+)", self.ctl.read_log()),
                     what="the controller's TLS port in its log")
        self.domain = "flynn.localhost:%s" % m.group(1)

    def api(self, method, path, body=None):
        h = {"Authorization": "Basic " + base64.b64encode((":" + KEY).encode()).decode()}
        r = request(method, self.ctl.url + path, body, headers=h)
        self.assertEqual(r.status, 200, r)
        return r.json() if r.body.strip() else None

    def require_route(self, method, path):
        """Skips the test when the controller does not serve METHOD PATH yet (bare 404/405)."""
        h = {"Authorization": "Basic " + base64.b64encode((":" + KEY).encode()).decode()}
        r = request(method, self.ctl.url + path, headers=h)
        if r.status in (404, 405) and "json" not in (r.headers.get("Content-Type") or ""):
            self.skipTest("flynn-controller has no %s %s route yet" % (method, path))

    def add_cluster(self, name="default"):
        return self.ok("cluster", "add", "-p", self.certs["pin"], name, self.domain, KEY)

    def test_cluster_add_with_pin(self):
        p = self.add_cluster()
        self.assertEqual(p.stderr, 'Cluster "default" added and set as default.\n')
        self.assertEqual(self.read_rc(), (
            'default = "default"\n\n[[cluster]]\n  Name = "default"\n  Key = "%s"\n'
            '  TLSPin = "%s"\n  ControllerURL = "https://controller.%s"\n'
            '  GitURL = "https://git.%s"\n  ImageURL = "https://images.%s"\n\n'
            % (KEY, self.certs["pin"], self.domain, self.domain, self.domain)))
        ca_path = os.path.join(self.home, ".flynn", "ca-certs", "default.pem")
        with open(ca_path) as a, open(self.certs["ca"]) as b:
            self.assertEqual(a.read(), b.read())
        git_url = "https://git." + self.domain
        self.assertEqual(self.git("config", "--global", "http.%s.sslCAInfo" % git_url), ca_path)
        self.assertEqual(self.git("config", "--global", "credential.%s.helper" % git_url),
                         os.path.realpath(binpath("flynn")) + " git-credentials")
        # git asks the helper the configured way
        p = self.ok("git-credentials", "get",
                    input="protocol=https\nhost=git.%s\n\n" % self.domain)
        self.assertIn("password=%s\n" % KEY, p.stdout)
        self.ok("cluster", "remove", "default")
        p = self.run_bin(["git", "config", "--global", "--get-regexp", "flynn|git\\."])
        self.assertEqual(p.stdout, "")
        self.assertEqual(self.read_rc(), "")

    def test_wrong_pin_fails_before_writing(self):
        bad = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
        p = self.fails("cluster", "add", "-p", bad, "default", self.domain, KEY)
        self.assertIn("pinned: the peer leaf certificate did not match the provided pin",
                      p.stderr)
        self.assertIn('"https://controller.%s/ca-cert"' % self.domain, p.stderr)
        self.assertFalse(os.path.exists(self.rc))
        p = self.fails("cluster", "add", "-p", "abc", "default", self.domain, KEY)
        self.assertIn("error decoding tls pin", p.stderr)

    def test_no_pin_means_normal_verification(self):
        self.ok("cluster", "add", "--no-git", "c", self.domain, KEY)
        p = self.fails("apps")  # self-signed: no system root trusts it
        self.assertIn("check TLS", p.stderr)

    def test_wrong_key(self):
        self.add_cluster()
        self.ok("cluster", "add", "--no-git", "-p", self.certs["pin"], "bad",
                "https://controller." + self.domain.replace("flynn.", "x.flynn."), "wrong")
        p = self.fails("-c", "bad", "apps")
        self.assertIn("unexpected status 401", p.stderr)
        self.assertIn("key", p.stderr)

    def test_app_lifecycle(self):
        self.add_cluster()
        repo = self.git_repo()
        p = self.ok("create", "myapp", cwd=repo)
        self.assertEqual(p.stderr, "Created myapp\n")
        self.assertEqual(self.git("remote", "get-url", "flynn", cwd=repo),
                         "https://git.%s/myapp.git" % self.domain)
        # an existing remote: asked, and "no" keeps it
        p = self.ok("create", "second", cwd=repo, input="no\n")
        self.assertIn("There is already a git remote called flynn", p.stdout)
        self.assertIn("The remote was not created.", p.stderr)
        p = self.ok("create", "-r", "", "third", cwd=repo)
        self.assertEqual(self.git("remote", cwd=repo), "flynn")
        p = self.fails("create", "myapp")
        self.assertTrue(p.stderr.startswith("object_exists: "), p.stderr)
        p = self.fails("create", "Bad_Name")
        self.assertTrue(p.stderr.startswith("validation_error: "), p.stderr)

        apps = self.ok("apps").stdout.splitlines()
        self.assertEqual(apps[0].split(), ["ID", "NAME"])
        self.assertIn("myapp", [l.split()[1] for l in apps[1:]])

        info = self.ok("info", cwd=repo).stdout
        self.assertEqual(info, "=== myapp\nGit URL:  https://git.%s/myapp.git\n"
                               "Web URL:  http://myapp.flynn.localhost\n" % self.domain)

        self.assertEqual(self.ok("env", cwd=repo).stdout, "")
        p = self.ok("env", "set", "FOO=bar", "BAZ=a=b", cwd=repo)
        rel1 = re.match(r"^Created release ([0-9a-f-]{36})\.\n$", p.stderr).group(1)
        self.assertEqual(self.ok("env", cwd=repo).stdout, "BAZ=a=b\nFOO=bar\n")
        self.assertEqual(self.ok("env", "get", "FOO", cwd=repo).stdout, "bar\n")
        p = self.ok("env", "unset", "FOO", cwd=repo)
        rel2 = re.match(r"^Created release ([0-9a-f-]{36})\.\n$", p.stderr).group(1)
        p = self.fails("env", "get", "FOO", cwd=repo)
        self.assertEqual(p.stderr, 'var "FOO" not found in release "%s"\n' % rel2)
        p = self.fails("env", "set", "NOEQUALS", cwd=repo)
        self.assertEqual(p.stderr, 'invalid var format: "NOEQUALS"\n')

        self.ok("meta", "set", "owner=me", "team=core", cwd=repo)
        meta = self.ok("meta", cwd=repo).stdout.splitlines()
        self.assertEqual(meta[0].split(), ["KEY", "VALUE"])
        self.assertIn(["owner", "me"], [l.split() for l in meta])
        self.ok("meta", "unset", "owner", cwd=repo)
        self.assertNotIn("owner", self.ok("meta", cwd=repo).stdout)

        rels = self.ok("release", cwd=repo).stdout.splitlines()
        self.assertEqual(rels[0].split(), ["ID", "Created"])
        self.assertEqual([l.split()[0] for l in rels[1:]], [rel2, rel1])
        self.assertEqual(self.ok("release", "-q", cwd=repo).stdout, "%s\n%s\n" % (rel2, rel1))
        show = self.ok("release", "show", cwd=repo).stdout
        self.assertTrue(show.startswith("ID:             %s\n" % rel2), show)
        self.assertIn("ENV[BAZ]", show)
        self.assertRegex(show, r"Created At:\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC")
        j = json.loads(self.ok("release", "show", "--json", rel1, cwd=repo).stdout)
        self.assertEqual(j["env"], {"FOO": "bar", "BAZ": "a=b"})

        p = self.ok("release", "rollback", "-y", cwd=repo)
        self.assertIn("Rolling back to release %s from %s." % (rel1, rel2), p.stderr)
        self.assertIn("Successfully rolled back to release %s." % rel1, p.stderr)
        self.assertEqual(self.ok("env", "get", "FOO", cwd=repo).stdout, "bar\n")
        p = self.fails("release", "rollback", "-y", rel1, cwd=repo)
        self.assertEqual(p.stderr, "Release id given is the current release.\n")

        deps = self.ok("deployment", cwd=repo).stdout.splitlines()
        self.assertEqual(deps[0].split(), ["ID", "STATUS", "CREATED", "FINISHED"])
        self.assertEqual(len(deps), 4)
        self.ok("deployment", "timeout", "150", cwd=repo)
        self.assertEqual(self.ok("deployment", "timeout", cwd=repo).stdout, "150\n")
        self.assertEqual(self.ok("deployment", "batch-size", cwd=repo).stdout, "not set\n")
        self.ok("deployment", "batch-size", "3", cwd=repo)
        self.assertEqual(self.ok("deployment", "batch-size", cwd=repo).stdout, "3\n")
        self.assertIn("team", self.ok("meta", cwd=repo).stdout)  # batch-size kept the meta

        p = self.ok("limit", "set", "web", "memory=512MB", "cpu=500", cwd=repo)
        self.assertRegex(p.stdout, r"^Created release [0-9a-f-]{36}\n$")
        self.assertIn('Warning: "web" is not an existing process type', p.stderr)
        self.assertEqual(self.ok("limit", cwd=repo).stdout,
                         "web:  cpu=500  max_fd=10000  memory=512MB  temp_disk=100MB\n")
        p = self.fails("limit", "set", "web", "disk=1", cwd=repo)
        self.assertIn("invalid resource limit type", p.stderr)

        self.assertEqual(self.ok("ps", cwd=repo).stdout.split(),
                         ["ID", "TYPE", "STATE", "CREATED", "RELEASE"])
        p = self.fails("kill", "host0-nosuch", cwd=repo)
        self.assertIn("ERROR: could not kill job host0-nosuch: ", p.stderr)
        self.assertTrue(p.stderr.endswith("Could not kill all jobs.\n"), p.stderr)

        p = self.ok("delete", "-y", cwd=repo)
        self.assertRegex(p.stderr, r"^Deleted myapp \(removed 1 routes, deleted \d+ releases, "
                                   r"deprovisioned 0 resources\)\n$")
        self.assertEqual(self.git("remote", cwd=repo), "")
        p = self.fails("-a", "myapp", "meta")
        self.assertEqual(p.stderr, "controller: resource not found\n")

    def test_release_update_and_delete(self):
        self.add_cluster()
        self.ok("create", "rel")
        first = re.search(r"release (\S+)\.", self.ok("-a", "rel", "env", "set", "A=1").stderr).group(1)
        upd = os.path.join(self.dir, "update.json")
        with open(upd, "w") as f:
            json.dump({"env": {"B": "2"}, "meta": {"m": "x"},
                       "processes": {"web": {"args": ["run", "web"], "env": {"P": "1"}}}}, f)
        p = self.ok("-a", "rel", "release", "update", upd)
        second = re.match(r"^Created release (\S+)\.\n$", p.stderr).group(1)
        j = json.loads(self.ok("-a", "rel", "release", "show", "--json").stdout)
        self.assertEqual(j["id"], second)
        self.assertEqual(j["env"], {"A": "1", "B": "2"})
        self.assertEqual(j["meta"].get("m"), "x")
        self.assertEqual(j["processes"]["web"]["args"], ["run", "web"])
        self.assertEqual(self.ok("-a", "rel", "env", "-t", "web").stdout, "A=1\nB=2\nP=1\n")
        self.assertEqual(self.ok("-a", "rel", "env", "get", "-t", "web", "P").stdout, "1\n")
        p = self.ok("-a", "rel", "release", "update", "--clean", upd, first)
        j = json.loads(self.ok("-a", "rel", "release", "show", "--json").stdout)
        self.assertEqual(j["env"], {"B": "2"})
        p = self.fails("-a", "rel", "release", "update", os.path.join(self.dir, "nope.json"))
        self.assertIn("nope.json", p.stderr)
        p = self.fails("-a", "rel", "release", "delete", "-y", j["id"])
        self.assertTrue(p.stderr.startswith("validation_error: "), p.stderr)
        p = self.ok("-a", "rel", "release", "delete", "-y", first)
        self.assertRegex(p.stderr, r"^Deleted release %s \(deleted \d+ files\)\n$" % first)
        self.assertNotIn(first, self.ok("-a", "rel", "release", "-q").stdout)

    def test_remote_add(self):
        self.add_cluster()
        self.ok("create", "remoted")
        self.assertEqual(self.ok("-a", "remoted", "remote", "add").stderr,
                         "Must be executed within a git repository.\n")
        repo = self.git_repo()
        p = self.ok("-a", "remoted", "remote", "add", "staging", cwd=repo)
        url = "https://git.%s/remoted.git" % self.domain
        self.assertEqual(p.stderr, "Created remote staging with url %s.\n" % url)
        self.assertEqual(self.git("remote", "get-url", "staging", cwd=repo), url)
        self.assertEqual(self.ok("info", cwd=repo).stdout.splitlines()[0], "=== remoted")
        p = self.ok("-a", "remoted", "remote", "add", "staging", cwd=repo, input="n\n")
        self.assertIn("There is already a git remote called staging", p.stdout)
        p = self.fails("-a", "nosuch", "remote", "add", cwd=repo)
        self.assertEqual(p.stderr, "controller: resource not found\n")
        # a GIT_SSL_CAINFO in the environment would hide the cluster's CA from git:
        # said when the remote is made, unless that file holds the cluster's CA
        other = os.path.join(self.dir, "other.pem")
        with open(other, "w") as f:
            f.write("")
        p = self.ok("-a", "remoted", "remote", "add", "-y", "prod", cwd=repo,
                    env={"GIT_SSL_CAINFO": other})
        self.assertIn("WARNING: GIT_SSL_CAINFO is set (%s)" % other, p.stderr)
        ca_path = os.path.join(self.home, ".flynn", "ca-certs", "default.pem")
        self.assertIn("add %s to %s" % (ca_path, other), p.stderr)
        with open(other, "w") as f, open(ca_path) as ca:
            f.write("# system roots\n" + ca.read())
        p = self.ok("-a", "remoted", "remote", "add", "-y", "prod2", cwd=repo,
                    env={"GIT_SSL_CAINFO": other})
        self.assertNotIn("GIT_SSL_CAINFO", p.stderr)

    def test_routes(self):
        self.add_cluster()
        self.ok("create", "routed")
        self.ok("-a", "routed", "route", "add", "http", "-s", "svc", "www.example.test")
        p = self.ok("-a", "routed", "route", "add", "http", "--sticky", "-s", "svc",
                    "www.example.test/api/")
        http_id = p.stdout.strip()
        self.assertRegex(http_id, r"^http/[0-9a-f-]{36}$")
        p = self.ok("-a", "routed", "route", "add", "tcp", "--leader")
        m = re.match(r"^(tcp/[0-9a-f-]{36}) listening on port (\d+)\n$", p.stdout)
        self.assertIsNotNone(m, p.stdout)
        tcp_id, port = m.group(1), m.group(2)
        lines = self.ok("-a", "routed", "route").stdout.splitlines()
        self.assertEqual(lines[0].split(), ["ROUTE", "SERVICE", "ID", "STICKY", "LEADER", "PATH"])
        rows = {l.split()[2]: l.split() for l in lines[1:]}
        self.assertEqual(rows[http_id], ["http:www.example.test", "svc", http_id, "true",
                                         "false", "/api/"])
        self.assertEqual(rows[tcp_id][:3], ["tcp:" + port, "routed-web", tcp_id])
        self.assertIn("true", rows[tcp_id][3:])  # leader (sticky/path carry over, as in Flynn)
        p = self.ok("-a", "routed", "route", "update", http_id, "--no-sticky", "--leader")
        self.assertEqual(p.stdout, "updated %s\n" % http_id)
        p = self.fails("-a", "routed", "route", "update", tcp_id)
        self.assertEqual(p.stderr, "No service name given\n")
        p = self.fails("-a", "routed", "route", "add", "http", "-c", "x.pem", "www2.example.test")
        self.assertEqual(p.stderr, "Both the TLS certificate AND private key need to be specified\n")
        if self.use_go_hosts("controller.flynn.localhost"):
            ours, theirs = self.flynn("-a", "routed", "route"), self.go("-a", "routed", "route")
            self.assertEqual(ours.stdout, theirs.stdout)
        self.assertEqual(self.ok("-a", "routed", "route", "remove", tcp_id).stdout,
                         "Route %s removed.\n" % tcp_id)
        self.assertNotIn(tcp_id, self.ok("-a", "routed", "route").stdout)

    def test_providers_and_resources(self):
        calls = []

        class Provider(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                calls.append(("POST", self.path))
                data = json.dumps({"id": "/databases/u:db%d" % len(calls),
                                   "env": {"DATABASE_URL": "postgres://u:p@h/db", "PGUSER": "u"}})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data.encode())

            def do_DELETE(self):
                calls.append(("DELETE", self.path))
                self.send_response(200)
                self.end_headers()

        self.require_route("GET", "/providers")
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Provider)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.cleanups_first.append(lambda: (srv.shutdown(), srv.server_close()))
        self.add_cluster()
        self.assertEqual(self.ok("provider").stdout, "")
        p = self.ok("provider", "add", "pg", "http://127.0.0.1:%d/databases" % srv.server_port)
        self.assertEqual(p.stderr, "Created provider pg.\n")
        rows = [l.split() for l in self.ok("provider").stdout.splitlines()]
        self.assertEqual(rows[0], ["ID", "NAME", "URL"])
        self.assertEqual(rows[1][1:], ["pg", "http://127.0.0.1:%d/databases" % srv.server_port])
        self.ok("create", "db")
        self.ok("-a", "db", "env", "set", "PGUSER=mine")
        p = self.ok("-a", "db", "resource", "add", "pg")
        m = re.match(r"^Created resource ([0-9a-f-]{36}) and release ([0-9a-f-]{36})\.\n$", p.stderr)
        self.assertIsNotNone(m, p.stderr)
        self.assertEqual(self.ok("-a", "db", "env").stdout,
                         "DATABASE_URL=postgres://u:p@h/db\nPGUSER=u\n")
        rows = [l.split() for l in self.ok("-a", "db", "resource").stdout.splitlines()]
        self.assertEqual(rows, [["ID", "Provider", "ID", "Provider", "Name"],
                                [m.group(1), rows[1][1], "pg"]])
        if self.use_go_hosts("controller.flynn.localhost"):
            for args in (["provider"], ["-a", "db", "resource"]):
                self.assertEqual(self.flynn(*args).stdout, self.go(*args).stdout, args)
        self.ok("-a", "db", "env", "set", "PGUSER=changed")
        p = self.ok("-a", "db", "resource", "remove", "pg")
        self.assertRegex(p.stderr, r"^Deleted resource %s, created release [0-9a-f-]{36}\.\n$"
                         % m.group(1))
        self.assertEqual(self.ok("-a", "db", "env").stdout, "PGUSER=changed\n")
        self.assertEqual(calls[-1][0], "DELETE")
        p = self.fails("-a", "db", "resource", "remove", "pg")
        self.assertEqual(p.stderr, "App has more than one resource for pg, specify resource ID\n")

    def test_delete_prompt(self):
        self.add_cluster()
        self.ok("create", "keepme")
        p = self.ok("-a", "keepme", "delete", input="no\n")
        self.assertIn('Are you sure you want to delete the app "keepme"? (yes/no): ', p.stdout)
        self.assertIn("keepme", self.ok("apps").stdout)

    def test_scale(self):
        self.add_cluster()
        self.ok("create", "scaled")
        p = self.fails("-a", "scaled", "scale", "web=1")
        self.assertEqual(p.stderr, "No app release, specify a release with --release\n")
        app = self.api("GET", "/apps/scaled")
        art = self.api("POST", "/artifacts", {"type": "flynn", "uri": "http://b/%s" % uuid.uuid4()})
        rel = self.api("POST", "/releases", {
            "app_id": app["id"], "artifacts": [art["id"]],
            "processes": {"web": {"args": ["web"]}, "worker": {"args": ["w"]}}})
        self.api("PUT", "/apps/scaled/release", {"id": rel["id"]})
        self.assertEqual(self.ok("-a", "scaled", "scale").stdout, "")
        p = self.ok("-a", "scaled", "scale", "--no-wait", "web=2", "worker=1,disk=ssd")
        self.assertEqual(p.stdout, "scaling web: 0=>2, worker: 0=>1\n\n")
        self.assertEqual(self.ok("-a", "scaled", "scale").stdout, "web=2 worker=1\n")
        p = self.ok("-a", "scaled", "scale", "--all")
        self.assertEqual(p.stdout, "%s (current)\nweb=2 worker=1\n" % rel["id"])
        p = self.fails("-a", "scaled", "scale", "bogus=1", "web=x")
        self.assertEqual(p.stderr, 'ERROR: could not parse quantity in "web=x"\n')
        p = self.fails("-a", "scaled", "scale", "bogus=1", "nope=2")
        self.assertEqual(p.stderr, 'ERROR: unknown process types: "bogus", "nope"\n')
        p = self.fails("-a", "scaled", "scale", "--all", "web=1")
        self.assertEqual(p.stderr, "ERROR: Can't use --all when scaling\n")

    def test_same_output_as_flynn_go_cli(self):
        """Both clients on one cluster and one ~/.flynnrc: same stdout, stderr, exit codes."""
        if not os.path.exists(GO_CLI):
            self.skipTest("Flynn's Go CLI not present (%s)" % GO_CLI)
        if not self.use_go_hosts("controller.flynn.localhost", "git.flynn.localhost"):
            self.skipTest("cannot give Flynn's Go CLI a private /etc/hosts (unshare)")
        self.add_cluster()  # written by us, read by Flynn's CLI
        repo = self.git_repo()
        self.ok("create", "same", cwd=repo)
        p = self.go("env", "set", "A=1", "B=x y", cwd=repo)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.ok("meta", "set", "k=v", cwd=repo)
        self.ok("limit", "set", "web", "memory=256MB", cwd=repo)
        app = self.api("GET", "/apps/same")
        rel = self.api("GET", "/apps/same/release")
        self.api("PUT", "/apps/same/scale/%s" % rel["id"],
                 {"id": "", "app": app["id"], "release": rel["id"], "state": "pending",
                  "new_processes": {"web": 0}, "created_at": None, "updated_at": None})
        age = re.compile(r"(Less than a second|\d+ seconds?|About a minute) ago")

        def norm(text):
            return [l.split() for l in age.sub("AGO", text).splitlines()
                    if not l.startswith("WARNING: Flynn is unmaintained")]
        for args in (["apps"], ["info"], ["env"], ["env", "get", "B"], ["env", "get", "NOPE"],
                     ["env", "-t", "web"], ["meta"], ["limit"], ["limit", "-t", "web"],
                     ["limit", "-t", "nope"], ["scale"], ["scale", "bogus=1"],
                     ["scale", "web=x"], ["release", "-q"], ["release"],
                     ["release", "show", rel["id"]], ["release", "rollback", "-y", rel["id"]],
                     ["deployment"], ["deployment", "timeout"], ["deployment", "batch-size"],
                     ["ps"], ["ps", "-a", "-c"], ["kill", "host0-nope"], ["cluster"],
                     ["cluster", "default"], ["-a", "nosuch", "meta"], ["-a", "nosuch", "env"],
                     ["-a", "nosuch", "info"], ["env", "set"], ["frob"]):
            ours, theirs = self.flynn(*args, cwd=repo), self.go(*args, cwd=repo)
            if args[:2] == ["release", "show"] or args == ["meta"]:  # Go's map order is random
                ours.stdout = "\n".join(sorted(ours.stdout.splitlines()))
                theirs.stdout = "\n".join(sorted(theirs.stdout.splitlines()))
            self.assertEqual((ours.returncode, norm(ours.stdout), norm(ours.stderr)),
                             (theirs.returncode, norm(theirs.stdout), norm(theirs.stderr)),
                             "flynn %s differs from Flynn's" % " ".join(args))
