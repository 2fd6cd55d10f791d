"""flynn-controller over HTTPS, and driven by Flynn's own Go CLI.

A CA and a leaf certificate are made with the openssl CLI in the test's trash
directory. The Go CLI dials https://controller.DOMAIN:PORT, so each test adds
a line for its own random DOMAIN to /etc/hosts and removes it afterwards.
"""
import base64
import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import urllib.request
import uuid

from harness import TestCase, request, wait_for

KEY = "t2001-key"
GO_CLI = os.environ.get("FLYNN_GO_CLI",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                     "shared", "tools", "flynn-go-cli"))
if not os.path.exists(GO_CLI):
    GO_CLI = "/work/shared/tools/flynn-go-cli"


def auth(key=KEY):
    return {"Authorization": "Basic " + base64.b64encode((":" + key).encode()).decode()}


def make_certs(d, domain):
    def run(*args):
        subprocess.run(args, cwd=d, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
        "ca.pem", "-days", "2", "-subj", "/O=Flynn/OU=Flynn Ephemeral CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr",
        "-subj", "/CN=" + domain)
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:%s,DNS:*.%s\n" % (domain, domain))
    run("openssl", "x509", "-req", "-in", "tls.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "tls.pem", "-days", "2", "-extfile", "ext")
    der = subprocess.run(["openssl", "x509", "-in", "tls.pem", "-outform", "der"], cwd=d,
                         check=True, stdout=subprocess.PIPE).stdout
    import hashlib
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class TLSTest(TestCase):
    def setUp(self):
        super().setUp()
        if not shutil.which("openssl"):
            self.skipTest("openssl CLI not installed")
        self.domain = "t2001-%s.test" % uuid.uuid4().hex[:8]
        self.pin = make_certs(self.dir, self.domain)
        self.ctl = self.start("flynn-controller", [
            "--listen", "127.0.0.1:0", "--data-dir", os.path.join(self.dir, "data"), "--key", KEY,
            "--domain", self.domain, "--tls-listen", "127.0.0.1:0",
            "--tls-cert", os.path.join(self.dir, "tls.pem"),
            "--tls-key", os.path.join(self.dir, "tls.key"),
            "--ca-cert", os.path.join(self.dir, "ca.pem")])
        m = wait_for(lambda: re.search(r"tls: listening on [\d.]+:(\d+)", self.ctl.read_log()),
                     what="tls listen line")
        self.tls_port = int(m.group(1))
        self.https = "https://127.0.0.1:%d" % self.tls_port

    def ctx(self):
        c = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.pem"))
        c.check_hostname = False
        return c

    def get(self, path, key=KEY, method="GET", body=None):
        h = {"Content-Type": "application/json"}
        if key is not None:
            h.update(auth(key))
        req = urllib.request.Request(self.https + path, method=method, headers=h,
                                     data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(req, context=self.ctx(), timeout=10) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()


class TestHTTPS(TLSTest):
    def test_https_api_and_ca_cert(self):
        st, h, body = self.get("/ca-cert", key=None)
        self.assertEqual(st, 200)
        self.assertEqual(h["Content-Type"], "application/x-x509-ca-cert")
        with open(os.path.join(self.dir, "ca.pem"), "rb") as f:
            self.assertEqual(body, f.read())
        self.assertEqual(self.get("/ca-cert", key="wrong")[0], 401)
        self.assertEqual(self.get("/apps", key=None)[0], 401)
        st, _, body = self.get("/apps", method="POST", body={"name": "tlsapp"})
        self.assertEqual(st, 200, body)
        st, _, body = self.get("/apps")
        self.assertEqual([a["name"] for a in json.loads(body)], ["tlsapp"])
        # the same state is visible over plain HTTP
        r = request("GET", self.ctl.url + "/apps/tlsapp", headers=auth())
        self.assertEqual(r.status, 200)
        # many requests on fresh connections do not leak or wedge the relay
        for _ in range(30):
            self.assertEqual(self.get("/ping", key=None)[0], 200)

    def test_route_certificates(self):
        with open(os.path.join(self.dir, "tls.pem")) as f:
            cert = f.read()
        with open(os.path.join(self.dir, "tls.key")) as f:
            key = f.read()
        st, _, body = self.get("/apps", method="POST", body={"name": "certapp"})
        self.assertEqual(st, 200, body)
        st, _, body = self.get("/apps/certapp/routes", method="POST", body={
            "type": "http", "service": "certapp-web", "domain": "secure." + self.domain,
            "tls_cert": cert, "tls_key": key})
        self.assertEqual(st, 200, body)
        rt = json.loads(body)
        self.assertEqual((rt["certificate"]["cert"], rt["certificate"]["key"]), (cert, key))
        self.assertNotIn("tls_cert", rt)
        self.assertTrue(uuid.UUID(rt["certificate"]["id"]))
        # a key that does not parse or match, or a cert without its key, is refused
        with open(os.path.join(self.dir, "ca.key")) as f:
            other_key = f.read()
        for extra in ({"tls_cert": cert, "tls_key": "nope"}, {"tls_cert": cert},
                      {"tls_cert": cert, "tls_key": other_key}):
            st, _, body = self.get("/apps/certapp/routes", method="POST", body=dict(
                {"type": "http", "service": "s", "domain": "other." + self.domain}, **extra))
            self.assertEqual(st, 400, body)
            self.assertEqual(json.loads(body)["code"], "validation_error")

    def test_leaf_pin_matches_served_certificate(self):
        import hashlib
        c = ssl.create_default_context()
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        import socket
        with socket.create_connection(("127.0.0.1", self.tls_port)) as s:
            with c.wrap_socket(s, server_hostname="controller." + self.domain) as t:
                der = t.getpeercert(binary_form=True)
        self.assertEqual(base64.b64encode(hashlib.sha256(der).digest()).decode(), self.pin)

    def test_bad_tls_flags_fail_startup(self):
        import subprocess as sp
        from harness import binpath
        p = sp.run([binpath("flynn-controller"), "--listen", "127.0.0.1:0", "--data-dir",
                    os.path.join(self.dir, "d2"), "--tls-listen", "127.0.0.1:0", "--tls-cert",
                    os.path.join(self.dir, "ca.key"), "--tls-key", os.path.join(self.dir, "tls.key")],
                   stdout=sp.PIPE, stderr=sp.STDOUT, timeout=20)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"certificate", p.stdout)


class TestGoCLI(TLSTest):
    def setUp(self):
        if not os.path.exists(GO_CLI):
            self.skipTest("Flynn's Go CLI (shared/tools/flynn-go-cli) is not here")
        if not os.access("/etc/hosts", os.W_OK):
            self.skipTest("/etc/hosts is not writable: the Go CLI needs controller.DOMAIN to resolve")
        super().setUp()
        self.hosts_line = "127.0.0.1 controller.%s\n" % self.domain
        with open("/etc/hosts", "a") as f:
            f.write(self.hosts_line)
        self.cleanups_first.append(self.remove_hosts_line)
        self.home = tempfile.mkdtemp(dir=self.dir)
        self.env = {k: v for k, v in os.environ.items() if k != "GIT_SSL_CAINFO"}
        self.env.update({"HOME": self.home, "FLYNNRC": os.path.join(self.home, ".flynnrc")})
        self.env.pop("FLYNN_APP", None)
        self.env.pop("FLYNN_CLUSTER", None)

    def remove_hosts_line(self):
        with open("/etc/hosts") as f:
            lines = f.readlines()
        with open("/etc/hosts", "w") as f:
            f.writelines(l for l in lines if l != self.hosts_line)

    def flynn(self, *args, check=True):
        p = subprocess.run([GO_CLI] + list(args), env=self.env, cwd=self.home, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if check:
            self.assertEqual(p.returncode, 0, (args, p.stdout, p.stderr))
        return p.stdout.decode(), p.stderr.decode(), p.returncode

    def api(self, method, path, body=None):
        r = request(method, self.ctl.url + path, body, headers=auth())
        self.assertEqual(r.status, 200, r)
        return r.json() if r.body.strip() else None

    def test_cluster_add_and_app_commands(self):
        d = "%s:%d" % (self.domain, self.tls_port)
        # a wrong pin fails before anything is written
        _, err, rc = self.flynn("cluster", "add", "-p", base64.b64encode(b"x" * 32).decode(),
                                "bad", d, KEY, check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("pin", err)
        self.flynn("cluster", "add", "-p", self.pin, "default", d, KEY)
        with open(os.path.join(self.home, ".flynn", "ca-certs", "default.pem"), "rb") as f:
            with open(os.path.join(self.dir, "ca.pem"), "rb") as g:
                self.assertEqual(f.read(), g.read())
        out, err, _ = self.flynn("create", "cliapp")
        self.assertIn("Created cliapp", out + err)
        out, _, _ = self.flynn("apps")
        self.assertIn("cliapp", out)
        # a duplicate name is Flynn's object_exists error
        _, err, rc = self.flynn("create", "cliapp", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("object_exists", err)
        # env with no release prints nothing
        out, _, _ = self.flynn("-a", "cliapp", "env")
        self.assertEqual(out.strip(), "")
        out, err, _ = self.flynn("-a", "cliapp", "env", "set", "A=1", "B=two words")
        self.assertIn("Created release", out + err)
        out, _, _ = self.flynn("-a", "cliapp", "env", "get", "B")
        self.assertEqual(out.strip(), "two words")
        out, _, _ = self.flynn("-a", "cliapp", "env")
        self.assertEqual(out.split(), ["A=1", "B=two", "words"])
        self.flynn("-a", "cliapp", "env", "unset", "A")
        out, _, _ = self.flynn("-a", "cliapp", "env")
        self.assertNotIn("A=1", out)
        out, _, _ = self.flynn("-a", "cliapp", "release")
        self.assertEqual(len([l for l in out.splitlines()[1:] if l.strip()]), 2)
        self.flynn("-a", "cliapp", "meta", "set", "owner=me")
        out, _, _ = self.flynn("-a", "cliapp", "meta")
        self.assertRegex(out, r"owner\s+me")
        out, _, _ = self.flynn("-a", "cliapp", "route")
        self.assertIn("cliapp." + self.domain, out)
        # scale needs a release with process types: make one over the API and deploy it
        app = self.api("GET", "/apps/cliapp")
        cur = self.api("GET", "/apps/cliapp/release")
        rel = self.api("POST", "/releases", {"app_id": app["id"], "env": cur.get("env", {}),
                                             "processes": {"web": {"args": ["sleep", "100"]},
                                                           "worker": {"args": ["sleep", "100"]}}})
        self.api("POST", "/apps/cliapp/deploy", {"id": rel["id"]})
        out, err, _ = self.flynn("-a", "cliapp", "scale", "--no-wait", "web=2", "worker=1")
        self.assertIn("web: 0=>2", out + err)
        self.assertIn("worker: 0=>1", out + err)
        out, _, _ = self.flynn("-a", "cliapp", "scale")
        self.assertIn("web=2", out)
        self.assertIn("worker=1", out)
        f = self.api("GET", "/apps/cliapp/formations/" + rel["id"])
        self.assertEqual(f["processes"], {"web": 2, "worker": 1})
        out, _, _ = self.flynn("-a", "cliapp", "ps")
        self.assertIn("ID", out)
        out, _, _ = self.flynn("-a", "cliapp", "deployment")
        deps = self.api("GET", "/apps/cliapp/deployments")
        self.assertEqual(len(deps), 3)
        for dep in deps:
            self.assertRegex(out, dep["id"] + r"\s+complete")
        _, _, _ = self.flynn("-a", "cliapp", "delete", "-y")
        r = request("GET", self.ctl.url + "/apps/cliapp", headers=auth())
        self.assertEqual(r.status, 404)

    def test_routes_releases_limits(self):
        d = "%s:%d" % (self.domain, self.tls_port)
        self.flynn("cluster", "add", "-p", self.pin, "default", d, KEY)
        self.flynn("create", "rapp")
        out, err, _ = self.flynn("-a", "rapp", "route", "add", "http", "-s", "rapp-web", "www.example.org")
        m = re.search(r"http/([0-9a-f-]{36})", out + err)
        self.assertTrue(m, out + err)
        out, err, _ = self.flynn("-a", "rapp", "route", "add", "http", "www.example.org/api")
        out, err, _ = self.flynn("-a", "rapp", "route", "add", "tcp", "-s", "rapp-db")
        mt = re.search(r"tcp/([0-9a-f-]{36}) listening on port (\d+)", out + err)
        self.assertTrue(mt, out + err)
        self.assertEqual(mt.group(2), "3000")
        out, _, _ = self.flynn("-a", "rapp", "route")
        self.assertIn("www.example.org", out)
        self.assertIn("rapp." + self.domain, out)
        self.assertRegex(out, r"tcp:3000\s+rapp-db")
        # removing the / route while a path route needs it is refused
        _, err, rc = self.flynn("-a", "rapp", "route", "remove", "http/" + m.group(1), check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("dependent", err)
        self.flynn("-a", "rapp", "route", "remove", "tcp/" + mt.group(1))
        out, _, _ = self.flynn("-a", "rapp", "info")
        self.assertIn("rapp", out)
        # releases: env set twice, rollback to the first
        self.flynn("-a", "rapp", "env", "set", "V=1")
        self.flynn("-a", "rapp", "env", "set", "V=2")
        out, _, _ = self.flynn("-a", "rapp", "release", "show", "--json")
        self.assertEqual(json.loads(out)["env"]["V"], "2")
        p = subprocess.run([GO_CLI, "-a", "rapp", "release", "rollback"], env=self.env, cwd=self.home,
                           input=b"y\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, (p.stdout, p.stderr))
        out, _, _ = self.flynn("-a", "rapp", "env", "get", "V")
        self.assertEqual(out.strip(), "1")
        # limits and deployment timeout
        self.flynn("-a", "rapp", "deployment", "timeout", "45")
        out, _, _ = self.flynn("-a", "rapp", "deployment", "timeout")
        self.assertIn("45", out)
        r = request("GET", self.ctl.url + "/apps/rapp", headers=auth())
        self.assertEqual(r.json()["deploy_timeout"], 45)
        out, _, _ = self.flynn("-a", "rapp", "volume")
        self.assertEqual(len(out.strip().splitlines()), 1, out)  # the header only
        out, _, _ = self.flynn("-a", "rapp", "limit")
        self.flynn("-a", "rapp", "delete", "-y")
        self.assertEqual(request("GET", self.ctl.url + "/apps/rapp", headers=auth()).status, 404)
        self.assertEqual([x for x in json.loads(self.get("/routes")[2]) if "rapp" in x.get("service", "")], [])

    def test_log_sinks(self):
        self.flynn("cluster", "add", "-p", self.pin, "default", "%s:%d" % (self.domain, self.tls_port), KEY)
        out, err, _ = self.flynn("cluster", "log-sink", "add", "syslog", "--format", "newline",
                                 "syslog+tls://logs.example.org:6514/", "myprefix")
        sinks = json.loads(self.get("/sinks")[2])
        self.assertEqual(len(sinks), 1)
        sk = sinks[0]
        self.assertIn(sk["id"], out + err)
        self.assertEqual((sk["kind"], sk["config"]["url"], sk["config"]["format"], sk["config"]["template"]),
                         ("syslog", "syslog+tls://logs.example.org:6514/", "newline", "myprefix"))
        out, _, _ = self.flynn("cluster", "log-sink")
        self.assertIn(sk["id"], out)
        self.flynn("cluster", "log-sink", "remove", sk["id"])
        self.assertEqual(json.loads(self.get("/sinks")[2]), [])
