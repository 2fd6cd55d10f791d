"""Slug builder, bundled buildpacks and slug runner in real build and app jobs.

Each sample app of /work/shared/apps (or $FLYNN_SAMPLE_APPS) is copied, built
by /builder/build (src/slugbuilder) in a job with /app, /cache, /env, /out
mounted, its slug.tgz unpacked into a fresh directory, and that directory run
as /app with src/slugrunner at /runner (`/runner/init start web`); GET / must
answer the app's greeting. Dependency downloads are proven against small local
mirrors the test makes: a wheel directory (PIP_FIND_LINKS), an npm registry
and a gem repository served over HTTP on the bridge address, a Go module proxy.
"""
import base64
import hashlib
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import tarfile
import threading
import time
import unittest
import urllib.parse
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from harness import ROOT, HostTestCase, request, sample_apps, wait_for

APPS = sample_apps() or "/work/shared/apps"
BUILDER = os.path.join(ROOT, "src", "slugbuilder")
RUNNER = os.path.join(ROOT, "src", "slugrunner")
TIMES = {}


def have(cmd):
    return shutil.which(cmd, path="/usr/bin:/bin") is not None


def write(path, text, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    if mode:
        os.chmod(path, mode)


class MirrorHandler(SimpleHTTPRequestHandler):
    """Static files (a directory: its index.html, else a listing); a directory
    holding index.json is served as that JSON (npm packuments live at /npm/NAME
    while tarballs are under /npm/NAME/-/)."""

    def send_head(self):
        path = self.translate_path(self.path)
        idx = os.path.join(path, "index.json")
        if os.path.isdir(path) and os.path.isfile(idx):
            data = open(idx, "rb").read()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return io.BytesIO(data)
        return super().send_head()

    def log_message(self, fmt, *args):
        self.server.requests.append(self.path)


class TestBuildpacks(HostTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        st = request("GET", cls.hostd.url + "/host/status").json()
        cls.gateway = st["network"]["gateway"]
        cls.mirror_dir = os.path.join(cls.cdir, "mirror")
        os.makedirs(cls.mirror_dir)
        handler = lambda *a, **kw: MirrorHandler(*a, directory=cls.mirror_dir, **kw)  # noqa: E731
        cls.mirror = ThreadingHTTPServer((cls.gateway, 0), handler)
        cls.mirror.requests = []
        cls.mirror_url = "http://%s:%d" % (cls.gateway, cls.mirror.server_address[1])
        threading.Thread(target=cls.mirror.serve_forever, daemon=True).start()
        # a port on the bridge address where nothing listens: a registry that is
        # down. The socket stays bound (never listening) for the whole class, so
        # connections are refused and no other process can take the port (a
        # closed one was once reused by a server answering 401).
        cls.dead_sock = socket.socket()
        cls.dead_sock.bind((cls.gateway, 0))
        cls.dead_url = "http://%s:%d" % (cls.gateway, cls.dead_sock.getsockname()[1])

    @classmethod
    def tearDownClass(cls):
        cls.mirror.shutdown()
        cls.mirror.server_close()
        cls.dead_sock.close()
        super().tearDownClass()
        if TIMES:
            print("\nbuild times: " + ", ".join("%s %.1fs" % kv for kv in sorted(TIMES.items())))

    # ---- helpers --------------------------------------------------------------

    def app(self, name, files=None, remove=()):
        """A writable copy of sample app NAME (None: an empty app) plus files."""
        d = os.path.join(self.dir, "src-%d" % len(os.listdir(self.dir)))
        if name:
            src = os.path.join(APPS, name)
            if not os.path.isdir(src):
                self.skipTest("sample app %s not found in %s" % (name, APPS))
            shutil.copytree(src, d)
        else:
            os.makedirs(d)
        for root, dirs, fs in os.walk(d):
            for x in dirs + fs:
                p = os.path.join(root, x)
                os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR | stat.S_IRUSR | (stat.S_IXUSR if x in dirs else 0))
        os.chmod(d, 0o755)
        for r in remove:
            os.unlink(os.path.join(d, r))
        for path, text in (files or {}).items():
            write(os.path.join(d, path), text, 0o755 if path.startswith("bin/") else None)
        return d

    def build(self, app_dir, env=None, cache=None, job_env=None, mounts=(), timeout=240, label=None):
        """Runs /builder/build on app_dir; returns (job, output, out_dir, cache_dir)."""
        base = app_dir + ".b%d" % time.monotonic_ns()
        out, envdir = base + "-out", base + "-env"
        cache = cache or base + "-cache"
        for d in (out, envdir, cache):
            os.makedirs(d, exist_ok=True)
        for k, v in (env or {}).items():
            write(os.path.join(envdir, k), v)
        e = {"SOURCE_VERSION": "0123456789abcdef0123456789abcdef01234567", "STACK": "flynn-debian-12"}
        e.update(job_env or {})
        m = [{"location": "/app", "target": app_dir, "writeable": True},
             {"location": "/cache", "target": cache, "writeable": True},
             {"location": "/env", "target": envdir},
             {"location": "/out", "target": out, "writeable": True},
             {"location": "/builder", "target": BUILDER}] + list(mounts)
        t0 = time.time()
        j, log = self.run_job(["/builder/build"], timeout=timeout, config={"env": e, "mounts": m})
        if label:
            TIMES[label] = time.time() - t0
        return j, log, out, cache

    def build_ok(self, app_dir, **kw):
        j, log, out, cache = self.build(app_dir, **kw)
        self.assertEqual(j["exit_status"], 0, log)
        self.assertEqual(j["status"], 2, log)
        self.assertIn("-----> Discovering process types", log)
        self.assertRegex(log, r"-----> Compiled slug size is [0-9.]+[BKMG]\n")
        with open(os.path.join(out, "process_types.json")) as f:
            types = json.load(f)
        self.assertTrue(os.path.getsize(os.path.join(out, "slug.tgz")) > 0)
        return log, types, out, cache

    def build_fails(self, app_dir, within=None, **kw):
        t0 = time.time()
        j, log, out, cache = self.build(app_dir, **kw)
        took = time.time() - t0
        self.assertNotEqual(j["exit_status"], 0, log)
        self.assertFalse(os.path.exists(os.path.join(out, "slug.tgz")), log)
        if within:
            self.assertLess(took, within, log)
        return log

    def unpack(self, out):
        """The slug as a job sees it: slug.tgz unpacked into a fresh directory."""
        d = out + "-slug"
        os.makedirs(d)
        with tarfile.open(os.path.join(out, "slug.tgz")) as t:
            t.extractall(d, filter="fully_trusted") if hasattr(tarfile, "data_filter") else t.extractall(d)
        return d

    def run_slug(self, slug, args, env=None, mounts=(), timeout=60):
        m = [{"location": "/app", "target": slug, "writeable": True},
             {"location": "/runner", "target": RUNNER}] + list(mounts)
        return self.run_job(["/runner/init"] + list(args), timeout=timeout,
                            config={"env": env or {}, "mounts": m})

    def serve_slug(self, slug, expect, env=None, path="/", ptype="web"):
        """Starts `/runner/init start web` and waits for GET path to contain expect."""
        m = [{"location": "/app", "target": slug},  # read-only: a slug must not need writes
             {"location": "/runner", "target": RUNNER}]
        e = {"PORT": "8080", "FLYNN_PROCESS_TYPE": ptype}
        e.update(env or {})
        jid, aj = self.start_job(["/runner/init", "start", ptype],
                                 config={"env": e, "mounts": m, "ports": [{"port": 8080, "proto": "tcp"}]})
        try:
            self.assertEqual(aj["status"], 1, (aj, self.host.log(jid)))
            url = "http://%s:8080%s" % (aj["internal_ip"], path)

            def get():
                j = self.host.job(jid)
                if j["status"] >= 2:
                    raise AssertionError("web job ended: %r\n%s" % (j, self.host.log(jid)))
                try:
                    r = request("GET", url, timeout=3)
                except OSError:
                    return None
                return r
            r = wait_for(get, timeout=60, interval=0.2, what="GET %s" % url)
            self.assertIn(expect, r.body.decode(), self.host.log(jid))
            return jid, aj, r
        finally:
            self.host.stop(jid)

    def job_reaches(self, host, port):
        """Whether a job can open a TCP connection to host:port (outbound network)."""
        code = ("import socket,sys\ntry:\n socket.create_connection((%r,%d),3).close(); print('up')\n"
                "except Exception as e: print('down', e)" % (host, port))
        _, out = self.run_job(["/usr/bin/python3", "-c", code], timeout=30)
        return out.startswith("up")

    # ---- sample apps ------------------------------------------------------------

    def test_static_site(self):
        log, types, out, _ = self.build_ok(self.app("static-site"), label="static-site")
        self.assertIn("-----> Static HTML app detected", log)
        self.assertIn("Default types for buildpack -> web", log)
        self.assertEqual(list(types), ["web"])
        with open(os.path.join(out, "buildpack")) as f:
            self.assertEqual(f.read().strip(), "Static HTML")
        slug = self.unpack(out)
        self.assertTrue(os.path.isfile(os.path.join(slug, ".release")))
        jid, aj, r = self.serve_slug(slug, "Hello from static-site")
        self.assertEqual(r.status, 200)

    def test_static_server_features(self):
        app = self.app(None, {
            "static.json": json.dumps({"root": "public", "clean_urls": True,
                                       "routes": {"/app/**": "index.html"},
                                       "headers": {"/**": {"X-Test": "yes"}}}),
            "public/index.html": "<h1>Hello from static root</h1>\n",
            "public/about.html": "about page\n",
            "public/.secret": "hidden\n",
            "secret.txt": "outside the root\n"})
        log, types, out, _ = self.build_ok(app)
        self.assertIn("root: public, clean_urls: True", log)
        slug = self.unpack(out)
        m = [{"location": "/app", "target": slug}, {"location": "/runner", "target": RUNNER}]
        jid, aj = self.start_job(["/runner/init", "start", "web"],
                                 config={"mounts": m, "ports": [{"port": 8080, "proto": "tcp"}]})
        try:
            base = "http://%s:8080" % aj["internal_ip"]
            r = wait_for(lambda: self._get(base + "/"), timeout=30, what="static server")
            self.assertIn("Hello from static root", r.body.decode())
            self.assertEqual(r.headers["X-Test"], "yes")
            self.assertEqual(self._get(base + "/about").body, b"about page\n")
            self.assertIn(b"static root", self._get(base + "/app/deep/link").body)
            self.assertEqual(request("GET", base + "/.secret").status, 404)
            self.assertEqual(request("GET", base + "/secret.txt").status, 404)
            self.assertEqual(request("GET", base + "/nothing").status, 404)
        finally:
            self.host.stop(jid)

    def _get(self, url):
        try:
            r = request("GET", url, timeout=3)
        except OSError:
            return None
        return r if r.status == 200 else None

    def test_python_http(self):
        log, types, out, _ = self.build_ok(self.app("python-http"), label="python-http")
        self.assertIn("-----> Python app detected", log)
        self.assertIn("Procfile declares types -> web", log)
        self.assertEqual(types, {"web": "python3 app.py"})
        slug = self.unpack(out)
        self.assertTrue(os.path.isfile(os.path.join(slug, ".profile.d", "python.sh")))
        self.serve_slug(slug, "Hello from python-http")
        # the venv is first on PATH in the slug's jobs
        j, o = self.run_slug(slug, ["sh", "-c", "command -v python3; echo $VIRTUAL_ENV"])
        self.assertEqual(o.split(), ["/app/.venv/bin/python3", "/app/.venv"])
        # the web process sees the job's env
        _, _, r = self.serve_slug(slug, "from-env", env={"GREETING": "from-env"}, path="/env/GREETING")

    def test_multi_process(self):
        log, types, out, _ = self.build_ok(self.app("multi-process"), label="multi-process")
        self.assertIn("Procfile declares types -> web, worker, clock", log)
        self.assertEqual(list(types), ["web", "worker", "clock"])
        slug = self.unpack(out)
        self.serve_slug(slug, "web web")
        m = [{"location": "/app", "target": slug}, {"location": "/runner", "target": RUNNER}]
        jid, aj = self.start_job(["/runner/init", "start", "worker"], config={"mounts": m})
        try:
            wait_for(lambda: "worker processed job 1" in self.host.log(jid), timeout=20, what="worker output")
        finally:
            self.host.stop(jid)
        # a process type that does not handle SIGTERM stops promptly: init passes it on
        jid, aj = self.start_job(["/runner/init", "start", "clock"], config={"mounts": m}, stop_timeout=30)
        wait_for(lambda: "tick" in self.host.log(jid), timeout=20, what="clock output")
        t0 = time.time()
        self.host.stop(jid)
        self.host.wait_status(jid, (2, 3), timeout=25)
        self.assertLess(time.time() - t0, 10)

    def test_c_make(self):
        log, types, out, _ = self.build_ok(self.app("c-make"), label="c-make")
        self.assertIn("-----> C app detected", log)
        self.assertIn("cc -O2 -Wall -o hello hello.c", log)
        self.assertEqual(types, {"web": "./hello"})
        self.serve_slug(self.unpack(out), "Hello from c-make")

    def test_go_http(self):
        app = self.app("go-http")
        log, types, out, cache = self.build_ok(app, label="go-http")
        self.assertIn("-----> Go app detected", log)
        self.assertIn("Default types for buildpack -> web", log)
        self.assertEqual(types, {"web": "bin/go-http"})
        self.serve_slug(self.unpack(out), "Hello from go-http")
        # the second build uses the compile cache
        t0 = time.time()
        log, types, out, _ = self.build_ok(self.app("go-http"), cache=cache)
        TIMES["go-http (cached)"] = time.time() - t0
        self.assertIn("Using the Go build cache of earlier builds", log)

    def test_ruby_http(self):
        log, types, out, _ = self.build_ok(self.app("ruby-http"), label="ruby-http")
        self.assertIn("-----> Ruby app detected", log)
        self.assertIn("Bundle complete!", log)
        self.assertEqual(types, {"web": "ruby app.rb"})
        self.serve_slug(self.unpack(out), "Hello from ruby-http")

    def test_php_hello(self):
        log, types, out, _ = self.build_ok(self.app("php-hello"), label="php-hello")
        self.assertIn("-----> PHP app detected", log)
        self.assertIn("Procfile declares types -> (none)", log)
        self.assertIn("Default types for buildpack -> web", log)
        self.assertIn("php -S 0.0.0.0:", types["web"])
        slug = self.unpack(out)
        self.serve_slug(slug, "Hello from php-hello")
        self.serve_slug(slug, "hi-php", env={"X": "hi-php"}, path="/env/X")

    def test_java_maven(self):
        log, types, out, _ = self.build_ok(self.app("java-maven"), label="java-maven")
        self.assertIn("-----> Java app detected", log)
        self.assertEqual(types, {"web": "java -cp target/classes example.Main"})
        slug = self.unpack(out)
        self.assertTrue(os.path.isfile(os.path.join(slug, "target", "classes", "example", "Main.class")))
        self.serve_slug(slug, "Hello from java-maven")

    def test_java_dependency_offline_then_from_a_mirror(self):
        app = self.app("java-maven")
        with open(os.path.join(app, "pom.xml")) as f:
            pom = f.read()
        pom = pom.replace("</properties>", "</properties>\n  <dependencies><dependency><groupId>com.example"
                          "</groupId><artifactId>nothere</artifactId><version>1.0</version></dependency>"
                          "</dependencies>")
        write(os.path.join(app, "pom.xml"), pom)
        log = self.build_fails(app, env={"MAVEN_MIRROR_URL": self.dead_url + "/maven2"}, within=90)
        self.assertIn("Could not fetch 'com.example:nothere:1.0'", log)
        self.assertIn("MAVEN_MIRROR_URL", log)
        # the same artifact from a Maven repository over HTTP (MAVEN_MIRROR_URL)
        d = os.path.join(self.mirror_dir, "maven2", "com", "example", "nothere", "1.0")
        write(os.path.join(d, "nothere-1.0.pom"),
              '<project><modelVersion>4.0.0</modelVersion><groupId>com.example</groupId>'
              '<artifactId>nothere</artifactId><version>1.0</version></project>\n')
        with zipfile.ZipFile(os.path.join(d, "nothere-1.0.jar"), "w") as z:
            z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        log, types, out, cache = self.build_ok(app, env={"MAVEN_MIRROR_URL": self.mirror_url + "/maven2"},
                                               label="java (maven mirror)")
        self.assertIn("Using the Maven mirror %s/maven2 (MAVEN_MIRROR_URL)" % self.mirror_url, log)
        self.assertIn("/maven2/com/example/nothere/1.0/nothere-1.0.jar", self.mirror.requests)
        self.assertTrue(os.path.isfile(os.path.join(cache, "java", "repository", "com", "example", "nothere",
                                                    "1.0", "nothere-1.0.jar")))

    # ---- dependencies: offline failures and local mirrors ------------------------

    def test_node_express_registry_unreachable(self):
        app = self.app("node-express")
        log = self.build_fails(app, env={"npm_config_registry": self.dead_url + "/"}, within=40,
                               label="node-express (registry down)")
        self.assertIn("-----> Node.js app detected", log)
        self.assertIn("Could not install 'express' from the npm registry %s/: no network?" % self.dead_url, log)
        self.assertIn("npm_config_registry", log)
        if self.job_reaches("registry.npmjs.org", 443):
            return  # this machine's jobs have network: the default registry would work
        log = self.build_fails(self.app("node-express"), within=60)
        self.assertIn("Could not install 'express'", log)
        self.assertIn("Set npm_config_registry in the app's env", log)

    def make_npm_package(self, name, version, files):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            for p, text in files.items():
                data = text.encode()
                ti = tarfile.TarInfo("package/" + p)
                ti.size = len(data)
                ti.mode = 0o644
                ti.mtime = 1700000000
                t.addfile(ti, io.BytesIO(data))
        tgz = buf.getvalue()
        d = os.path.join(self.mirror_dir, "npm", name)
        os.makedirs(os.path.join(d, "-"), exist_ok=True)
        with open(os.path.join(d, "-", "%s-%s.tgz" % (name, version)), "wb") as f:
            f.write(tgz)
        manifest = json.loads(files["package.json"])
        manifest["dist"] = {
            "tarball": "%s/npm/%s/-/%s-%s.tgz" % (self.mirror_url, name, name, version),
            "shasum": hashlib.sha1(tgz).hexdigest(),
            "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()}
        write(os.path.join(d, "index.json"), json.dumps(
            {"name": name, "dist-tags": {"latest": version}, "versions": {version: manifest}}))

    def test_node_express_from_a_local_registry(self):
        # a stand-in for express 4.19.2 with just what the sample app uses
        express_js = """
const http = require('http');
module.exports = function express() {
  const routes = [];
  const app = function (req, res) {
    const path = new URL(req.url, 'http://x').pathname;
    for (const [pat, fn] of routes) {
      const names = [];
      const rx = new RegExp('^' + pat.replace(/:(\\w+)/g, (_, n) => { names.push(n); return '([^/]+)'; }) + '$');
      const m = path.match(rx);
      if (!m) continue;
      req.params = {};
      names.forEach((n, i) => { req.params[n] = decodeURIComponent(m[i + 1]); });
      res.type = (t) => { res.setHeader('Content-Type', t); return res; };
      res.send = (b) => { res.end(b); return res; };
      return fn(req, res);
    }
    res.statusCode = 404; res.end('not found\\n');
  };
  app.get = (p, fn) => { routes.push([p, fn]); return app; };
  app.listen = (port, cb) => http.createServer(app).listen(port, cb);
  return app;
};
"""
        self.make_npm_package("express", "4.19.2", {
            "package.json": json.dumps({"name": "express", "version": "4.19.2", "main": "index.js"}),
            "index.js": express_js})
        app = self.app("node-express")
        log, types, out, cache = self.build_ok(app, env={"npm_config_registry": self.mirror_url + "/npm/"},
                                               label="node-express (local registry)")
        self.assertIn("added 1 package", log)
        self.assertEqual(types, {"web": "npm start"})
        self.assertIn("/npm/express", self.mirror.requests)
        slug = self.unpack(out)
        self.assertTrue(os.path.isfile(os.path.join(slug, "node_modules", "express", "index.js")))
        self.serve_slug(slug, "Hello from node-express")
        # with the lock file npm wrote: npm ci, and npm's cache of the last build
        with open(os.path.join(slug, "package-lock.json")) as f:
            lock = f.read()
        log, _, out, _ = self.build_ok(self.app("node-express", {"package-lock.json": lock}), cache=cache,
                                       env={"npm_config_registry": self.mirror_url + "/npm/"})
        self.assertIn("Using the npm cache of earlier builds", log)
        self.assertIn("-----> Installing dependencies with npm ci (package-lock.json)", log)
        self.serve_slug(self.unpack(out), "Hello from node-express")

    def make_wheel(self, d, name, version, module_text):
        files = {
            "%s/__init__.py" % name: module_text,
            "%s-%s.dist-info/METADATA" % (name, version): "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version),
            "%s-%s.dist-info/WHEEL" % (name, version): "Wheel-Version: 1.0\nGenerator: t6000\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        }
        record = []
        os.makedirs(d, exist_ok=True)
        with zipfile.ZipFile(os.path.join(d, "%s-%s-py3-none-any.whl" % (name, version)), "w") as z:
            for p, text in files.items():
                b = text.encode()
                z.writestr(p, b)
                h = base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
                record.append("%s,sha256=%s,%d" % (p, h, len(b)))
            record.append("%s-%s.dist-info/RECORD,," % (name, version))
            z.writestr("%s-%s.dist-info/RECORD" % (name, version), "\n".join(record) + "\n")

    def test_python_requirements_offline_then_find_links_then_cache(self):
        files = {"requirements.txt": "flynnhello==1.0\n"}
        # 1. the index is down: fails fast, names the package and the settings
        log = self.build_fails(self.app("python-http", files), within=60,
                               env={"PIP_INDEX_URL": self.dead_url + "/simple"}, label="python (index down)")
        self.assertIn("Could not install 'flynnhello' from PIP_INDEX_URL=%s/simple: no network? "
                      "Set PIP_INDEX_URL or PIP_FIND_LINKS in the app's env (flynn env set PIP_INDEX_URL=...)"
                      % self.dead_url, log)
        if not self.job_reaches("pypi.org", 443):
            log = self.build_fails(self.app("python-http", {"requirements.txt": "flask\n"}), within=60)
            self.assertIn("Could not install 'flask' from PyPI: no network? Set PIP_INDEX_URL or PIP_FIND_LINKS",
                          log)
        # 2. a wheel directory mounted into the build job (PIP_FIND_LINKS)
        wheels = os.path.join(self.dir, "wheels")
        self.make_wheel(wheels, "flynnhello", "1.0", "GREETING = 'hello from a local wheel'\n")
        log, types, out, cache = self.build_ok(
            self.app("python-http", files), env={"PIP_FIND_LINKS": "/wheels"},
            mounts=[{"location": "/wheels", "target": wheels}], label="python (find-links)")
        self.assertIn("Successfully installed flynnhello-1.0", log)
        slug = self.unpack(out)
        j, o = self.run_slug(slug, ["python3", "-c", "import flynnhello; print(flynnhello.GREETING)"])
        self.assertEqual(o.strip(), "hello from a local wheel", o)
        self.serve_slug(slug, "Hello from python-http")
        # 3. same requirements, no mirror at all: the cached virtualenv is reused
        log, types, out, _ = self.build_ok(self.app("python-http", files), cache=cache, label="python (cached)")
        self.assertIn("Requirements unchanged since the last build: reusing the cached virtualenv", log)
        j, o = self.run_slug(self.unpack(out), ["python3", "-c", "import flynnhello; print(flynnhello.GREETING)"])
        self.assertEqual(o.strip(), "hello from a local wheel", o)
        # 4. a PEP 503 index over plain HTTP (PIP_INDEX_URL; the host is trusted for the app)
        self.make_wheel(os.path.join(self.mirror_dir, "wheels"), "flynnhello", "1.0",
                        "GREETING = 'hello from a local index'\n")
        write(os.path.join(self.mirror_dir, "simple", "flynnhello", "index.html"),
              '<a href="../../wheels/flynnhello-1.0-py3-none-any.whl">flynnhello-1.0-py3-none-any.whl</a>\n')
        log, types, out, _ = self.build_ok(self.app("python-http", files), label="python (http index)",
                                           env={"PIP_INDEX_URL": self.mirror_url + "/simple"})
        self.assertIn("/simple/flynnhello/", self.mirror.requests)
        j, o = self.run_slug(self.unpack(out), ["python3", "-c", "import flynnhello; print(flynnhello.GREETING)"])
        self.assertEqual(o.strip(), "hello from a local index", o)

    def test_php_composer_from_a_local_repository(self):
        d = os.path.join(self.mirror_dir, "composer")
        os.makedirs(d)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            for p, text in {"composer.json": json.dumps({"name": "acme/hello", "version": "1.0.0",
                                                          "autoload": {"psr-4": {"Acme\\": "src/"}}}),
                            "src/Hello.php": "<?php\nnamespace Acme;\nclass Hello { public static function "
                                             "greet() { return \"Hello from php via a Composer repository\"; } }\n"
                            }.items():
                data = text.encode()
                ti = tarfile.TarInfo(p)
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
        with open(os.path.join(d, "acme-hello-1.0.0.tar"), "wb") as f:
            f.write(buf.getvalue())
        write(os.path.join(d, "packages.json"), json.dumps({"packages": {"acme/hello": {"1.0.0": {
            "name": "acme/hello", "version": "1.0.0", "autoload": {"psr-4": {"Acme\\": "src/"}},
            "dist": {"type": "tar", "url": self.mirror_url + "/composer/acme-hello-1.0.0.tar"}}}}}))
        files = {"composer.json": json.dumps({"require": {"php": ">=8.1", "ext-json": "*", "acme/hello": "^1.0"}}),
                 "index.php": "<?php\nrequire __DIR__ . '/vendor/autoload.php';\necho Acme\\Hello::greet(), \"\\n\";\n"}
        log = self.build_fails(self.app("php-hello", files), within=60,
                               env={"COMPOSER_REPO_PACKAGIST": self.dead_url})
        self.assertIn("Could not install 'acme/hello' from %s: no network?" % self.dead_url, log)
        self.assertIn("COMPOSER_REPO_PACKAGIST", log)
        log, types, out, _ = self.build_ok(self.app("php-hello", files), label="php (composer repository)",
                                           env={"COMPOSER_REPO_PACKAGIST": self.mirror_url + "/composer"})
        self.assertIn("Installing acme/hello (1.0.0)", log)
        self.serve_slug(self.unpack(out), "Hello from php via a Composer repository")

    @unittest.skipUnless(have("gem"), "rubygems not installed")
    def test_ruby_gem_from_a_local_mirror(self):
        src = os.path.join(self.dir, "gemsrc")
        write(os.path.join(src, "lib", "flynnhello.rb"), "module Flynnhello\n  GREETING = 'hello from a local gem'\nend\n")
        write(os.path.join(src, "flynnhello.gemspec"),
              'Gem::Specification.new do |s|\n  s.name = "flynnhello"; s.version = "1.0.0"; s.summary = "t"\n'
              '  s.authors = ["t"]; s.files = ["lib/flynnhello.rb"]; s.license = "MIT"\nend\n')
        subprocess.run(["gem", "build", "flynnhello.gemspec"], cwd=src, check=True, capture_output=True)
        repo = os.path.join(self.mirror_dir, "gems")
        os.makedirs(os.path.join(repo, "gems"), exist_ok=True)
        shutil.copy(os.path.join(src, "flynnhello-1.0.0.gem"), os.path.join(repo, "gems"))
        subprocess.run(["gem", "generate_index", "--directory", repo], check=True, capture_output=True)
        files = {"Gemfile": 'source "https://rubygems.org"\ngem "flynnhello"\n'}
        log = self.build_fails(self.app("ruby-http", files, remove=["Gemfile.lock"]), within=60,
                               env={"BUNDLE_MIRROR__RUBYGEMS__ORG": self.dead_url})
        self.assertIn("Could not install 'flynnhello' from https://rubygems.org (mirror %s): no network?"
                      % self.dead_url, log)
        self.assertIn("BUNDLE_MIRROR__ALL", log)
        log, types, out, _ = self.build_ok(self.app("ruby-http", files, remove=["Gemfile.lock"]),
                                           env={"BUNDLE_MIRROR__RUBYGEMS__ORG": self.mirror_url + "/gems"},
                                           label="ruby (gem mirror)")
        self.assertIn("Installing flynnhello 1.0.0", log)
        slug = self.unpack(out)
        j, o = self.run_slug(slug, ["ruby", "-e", 'require "flynnhello"; puts Flynnhello::GREETING'])
        self.assertEqual(o.strip(), "hello from a local gem", o)
        self.serve_slug(slug, "Hello from ruby-http")

    def test_go_module_from_a_local_proxy(self):
        mod, ver = "example.com/greet", "v1.0.0"
        d = os.path.join(self.mirror_dir, "goproxy", mod, "@v")
        os.makedirs(d)
        gomod = "module %s\n\ngo 1.19\n" % mod
        write(os.path.join(d, "list"), ver + "\n")
        write(os.path.join(d, ver + ".info"), json.dumps({"Version": ver, "Time": "2024-01-01T00:00:00Z"}))
        write(os.path.join(d, ver + ".mod"), gomod)
        with zipfile.ZipFile(os.path.join(d, ver + ".zip"), "w") as z:
            z.writestr("%s@%s/go.mod" % (mod, ver), gomod)
            z.writestr("%s@%s/greet.go" % (mod, ver),
                       'package greet\n\nfunc Hello() string { return "Hello from go-http via a module proxy" }\n')
        main = ('package main\n\nimport (\n\t"fmt"\n\t"net/http"\n\t"os"\n\n\t"example.com/greet"\n)\n\n'
                'func main() {\n\thttp.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) '
                '{ fmt.Fprintln(w, greet.Hello()) })\n\thttp.ListenAndServe(":"+os.Getenv("PORT"), nil)\n}\n')
        files = {"main.go": main,
                 "go.mod": "module example.com/go-http\n\ngo 1.19\n\nrequire example.com/greet v1.0.0\n"}
        log = self.build_fails(self.app("go-http", files), within=60, env={"GOPROXY": self.dead_url})
        self.assertIn("Could not download Go module(s) 'example.com/greet' from GOPROXY=%s: no network?"
                      % self.dead_url, log)
        log, types, out, _ = self.build_ok(
            self.app("go-http", files), label="go (module proxy)",
            env={"GOPROXY": self.mirror_url + "/goproxy", "GONOSUMDB": "example.com", "GOFLAGS": "-mod=mod"})
        self.assertEqual(types, {"web": "bin/go-http"})
        self.serve_slug(self.unpack(out), "Hello from go-http via a module proxy")

    # ---- buildpack selection -------------------------------------------------------

    def make_buildpack_repo(self):
        bp = os.path.join(self.dir, "custom-bp")
        write(os.path.join(bp, "bin", "detect"), "#!/bin/sh\necho 'Custom Thing'\n", 0o755)
        write(os.path.join(bp, "bin", "compile"),
              '#!/bin/sh\nset -e\necho "-----> Custom compile in $1 (cache $2, env $3)"\n'
              'echo "built by the custom buildpack $(cat $3/FLAVOUR)" > "$1/custom.txt"\n', 0o755)
        write(os.path.join(bp, "bin", "release"),
              "#!/bin/sh\ncat <<'EOF'\n---\ndefault_process_types:\n"
              "  web: \"/usr/bin/python3 -m http.server $PORT\"\nEOF\n", 0o755)
        git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "init.defaultBranch=main"]
        subprocess.run(git + ["init", "-q", bp], check=True)
        subprocess.run(git + ["-C", bp, "add", "-A"], check=True)
        subprocess.run(git + ["-C", bp, "commit", "-qm", "v1"], check=True)
        subprocess.run(git + ["-C", bp, "tag", "v1"], check=True)
        bare = bp + ".git"
        subprocess.run(git + ["clone", "-q", "--bare", bp, bare], check=True)
        return bare

    def test_buildpack_url_local_git_repo(self):
        bare = self.make_buildpack_repo()
        mounts = [{"location": "/bp/custom.git", "target": bare}]
        for url in ("file:///bp/custom.git", "file:///bp/custom.git#v1", "/bp/custom.git"):
            log, types, out, _ = self.build_ok(self.app("static-site"), env={"FLAVOUR": "vanilla"},
                                               job_env={"BUILDPACK_URL": url}, mounts=mounts)
            self.assertIn("-----> Fetching buildpack " + url, log)
            self.assertIn("-----> Custom Thing app detected", log)
            self.assertIn("-----> Custom compile in /app (cache /cache/custom, env /env)", log)
            self.assertEqual(types, {"web": "/usr/bin/python3 -m http.server $PORT"})
            with open(os.path.join(out, "buildpack")) as f:
                self.assertEqual(f.read().strip(), "Custom Thing")
        slug = self.unpack(out)
        with open(os.path.join(slug, "custom.txt")) as f:
            self.assertEqual(f.read(), "built by the custom buildpack vanilla\n")
        self.serve_slug(slug, "Hello from static-site")
        # BUILDPACK_URL from the app env, naming a bundled buildpack
        log, types, out, _ = self.build_ok(self.app("php-hello", {"index.html": "<p>hi</p>"}),
                                           env={"BUILDPACK_URL": "static"})
        self.assertIn("-----> Static HTML app detected", log)
        self.assertNotIn("PHP", log)
        log = self.build_fails(self.app("static-site"), job_env={"BUILDPACK_URL": "file:///bp/nothere.git"})
        self.assertIn("Buildpack path /bp/nothere.git does not exist", log)

    def test_dot_buildpacks_applies_each(self):
        app = self.app("static-site", {"requirements.txt": "# none\n", ".buildpacks": "python\n\n# then\nstatic\n"})
        log, types, out, _ = self.build_ok(app)
        self.assertLess(log.index("-----> Python app detected"), log.index("-----> Static HTML app detected"))
        self.assertEqual(types, {"web": "/usr/bin/python3 .flynn/static/server.py"})
        with open(os.path.join(out, "buildpack")) as f:
            self.assertEqual(f.read().strip(), "Python, Static HTML")
        slug = self.unpack(out)
        self.assertTrue(os.path.isfile(os.path.join(slug, ".profile.d", "python.sh")))
        self.serve_slug(slug, "Hello from static-site")

    def test_no_buildpack_detected(self):
        log = self.build_fails(self.app(None, {"README": "nothing to run\n"}), within=30)
        self.assertIn("!     No buildpack detected this app: add one of: Gemfile (Ruby), package.json (Node.js)", log)
        self.assertIn("BUILDPACK_URL", log)

    # ---- slug contents, process types ----------------------------------------------

    def test_slugignore(self):
        app = self.app("python-http", {
            ".slugignore": "# comment\n*.psd\n/docs\ntmp/\nspec/fixtures\n!keep.psd\n",
            "art/logo.psd": "x", "keep.psd": "x", "docs/a.md": "x", "src/docs/b.md": "kept",
            "a/tmp/c": "x", "tmp": "a file named tmp is kept", "spec/fixtures/d": "x", "spec/e": "kept"})
        log, types, out, _ = self.build_ok(app)
        self.assertIn("-----> Deleting files matching .slugignore patterns", log)
        self.assertIn("negation ('!') is not supported", log)
        with tarfile.open(os.path.join(out, "slug.tgz")) as t:
            names = {n[2:] if n.startswith("./") else n for n in t.getnames()}
        for gone in ("art/logo.psd", "keep.psd", "docs/a.md", "a/tmp/c", "spec/fixtures/d"):
            self.assertNotIn(gone, names)
        for kept in ("src/docs/b.md", "tmp", "spec/e", "app.py", "Procfile", ".release", ".slugignore"):
            self.assertIn(kept, names)

    def test_procfile_errors(self):
        log = self.build_fails(self.app("python-http", {"Procfile": "web: python3 app.py\nnot a process line\n"}))
        self.assertIn("Procfile line 2 is malformed: 'not a process line'", log)
        log = self.build_fails(self.app("python-http", {"Procfile": "web: a\n# c\nweb: b\n"}))
        self.assertIn("Procfile line 3 declares the process type 'web' again (first on line 1)", log)
        log = self.build_fails(self.app("c-make", remove=["Procfile"]))
        self.assertIn("No process types: the app has no Procfile", log)
        log = self.build_fails(self.app("python-http", {"Procfile": "# nothing\n"}))
        self.assertIn("No process types", log)

    def test_slug_max_bytes(self):
        log = self.build_fails(self.app("static-site"), job_env={"SLUG_MAX_BYTES": "100"})
        self.assertRegex(log, r"Compiled slug is \d+ bytes, more than the limit of 100 bytes \(SLUG_MAX_BYTES\)")

    def test_runner_profile_and_commands(self):
        app = self.app(None, {
            "Procfile": "hello: echo \"$GREETING|$OTHER|$HOME|$PORT|$(pwd)\"\nfail: exit 7\n",
            ".profile.d/a.sh": "export GREETING=from-profile-d\n",
            ".profile": "export OTHER=from-profile\n",
            ".release": "---\ndefault_process_types:\n  quoted: %s\n  plain: echo plain\n"
                        % json.dumps("printf '%s|' \"a \\\"b\\\"\" 'c\\d' \"$PORT\"")})
        slug = app  # the runner does not need a build
        j, o = self.run_slug(slug, ["start", "hello"])
        self.assertEqual(o.strip(), "from-profile-d|from-profile|/app|8080|/app")
        j, o = self.run_slug(slug, ["start", "quoted"])
        self.assertEqual(o.strip(), 'a "b"|c\\d|8080|')
        j, o = self.run_slug(slug, ["start", "plain"])
        self.assertEqual(o.strip(), "plain")
        j, o = self.run_slug(slug, ["start", "fail"])
        self.assertEqual(j["exit_status"], 7)
        j, o = self.run_slug(slug, ["start", "nope"])
        self.assertEqual(j["exit_status"], 1)
        self.assertIn("unknown process type nope; known: hello, fail, quoted, plain", o)
        j, o = self.run_slug(slug, ["sh", "-c", "echo $GREETING; exit 3"], env={"PORT": "5000"})
        self.assertEqual((o.strip(), j["exit_status"]), ("from-profile-d", 3))
        j, o = self.run_slug(slug, ["echo $OTHER && echo two"])
        self.assertEqual(o.split(), ["from-profile", "two"])
        j, o = self.run_slug(slug, ["no-such-command"])
        self.assertEqual(j["exit_status"], 127)
        j, o = self.run_slug(slug, [], env={})
        self.assertEqual(j["exit_status"], 0)  # bash with no input
