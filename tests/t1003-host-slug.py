"""flynn-host: jobs that run a slug (root.slug), fetched once per host into a cache.

Slugs are served over real HTTP by a small server in a thread of the test, which
counts the requests per path; the runner (/runner/init, src/slugrunner) is a
stand-in script passed with --runner-dir.
"""
import hashlib
import http.server
import io
import os
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid

from harness import BIN, Daemon, HostClient, HostTestCase, host_args, request, wait_for

RUNNER_INIT = """#!/bin/sh
# stand-in for src/slugrunner/init: run the command in /app
cd /app && exec "$@"
"""


class SlugServer:
    """Serves slugs from memory on 127.0.0.1; counts GETs per path."""

    def __init__(self):
        self.files = {}
        self.delay = {}
        self.hits = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with outer.lock:
                    outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                    body = outer.files.get(self.path)
                    delay = outer.delay.get(self.path, 0)
                time.sleep(delay)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, files, delay=0):
        """Serves a new slug holding files {path: (mode, text)}; returns root.slug."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            d = tarfile.TarInfo(".")
            d.type, d.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(d)
            for name, (mode, text) in sorted(files.items()):
                parts = name.split("/")
                for i in range(1, len(parts)):
                    sub = tarfile.TarInfo("./" + "/".join(parts[:i]))
                    sub.type, sub.mode = tarfile.DIRTYPE, 0o755
                    tf.addfile(sub)
                data = text.encode()
                ti = tarfile.TarInfo("./" + name)
                ti.size, ti.mode = len(data), mode
                tf.addfile(ti, io.BytesIO(data))
        body = buf.getvalue()
        path = "/slugs/%s.tgz" % uuid.uuid4()
        with self.lock:
            self.files[path] = body
            self.delay[path] = delay
        return {"url": self.url + path, "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}

    def count(self, slug):
        with self.lock:
            return self.hits.get(slug["url"][len(self.url):], 0)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class SlugTestCase(HostTestCase):
    """A flynn-host daemon with a stand-in runner, and a slug server."""

    extra_args = []

    @classmethod
    def setUpClass(cls):
        cls.cdir = tempfile.mkdtemp(prefix="flynn-host-")
        cls.runner = os.path.join(cls.cdir, "runner")
        os.makedirs(cls.runner)
        with open(os.path.join(cls.runner, "init"), "w") as f:
            f.write(RUNNER_INIT)
        os.chmod(os.path.join(cls.runner, "init"), 0o755)
        cls.bridge, cls.hargs = host_args(cls.cdir, cls.stop_timeout)
        cls.hargs += ["--runner-dir", cls.runner] + cls.extra_args
        cls.cache = os.path.join(cls.hargs[cls.hargs.index("--state-dir") + 1], "slugs")
        cls.slugs = SlugServer()
        cls.start_daemon()
        cls.seq = 0

    @classmethod
    def start_daemon(cls):
        cls.hostd = Daemon("flynn-host", cls.hargs, cls.cdir)
        cls.host = HostClient(cls.hostd.url)
        cls.host_id = request("GET", cls.hostd.url + "/host/status").json()["id"]

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.slugs.close()

    def app(self, nonce=None):
        """A new slug with a few files; returns (root.slug, nonce)."""
        nonce = nonce or uuid.uuid4().hex
        return self.slugs.add({
            "Procfile": (0o644, "web: bin/web\n"),
            "hello.txt": (0o644, "hello %s\n" % nonce),
            "bin/web": (0o755, "#!/bin/sh\necho web running in $(pwd)\n"),
        }), nonce

    def cached(self, slug, *path):
        return os.path.join(self.cache, slug["sha256"], *path)

    def run_slug(self, slug, script, **spec):
        return self.run_job(["sh", "-c", script], root={"stack": "default", "slug": slug}, **spec)


class TestSlugJobs(SlugTestCase):
    def test_app_tree_is_visible_and_writable_without_touching_the_cache(self):
        slug, nonce = self.app()
        j, out = self.run_slug(slug, "cat /app/hello.txt; /app/bin/web; cd /app && bin/web; "
                                     "echo changed > /app/hello.txt; touch /app/new; mkdir /app/d; "
                                     "cat /app/hello.txt; ls /app")
        self.assertEqual(j["status"], 2, j)
        self.assertEqual(out.splitlines(), ["hello " + nonce, "web running in /", "web running in /app",
                                            "changed", "Procfile", "bin", "d", "hello.txt", "new"])
        # the cache is pristine: writes went to the job's overlay
        with open(self.cached(slug, "root", "app", "hello.txt")) as f:
            self.assertEqual(f.read(), "hello %s\n" % nonce)
        self.assertEqual(sorted(os.listdir(self.cached(slug, "root", "app"))), ["Procfile", "bin", "hello.txt"])
        self.assertTrue(os.path.exists(self.cached(slug)))
        self.assertTrue(os.path.exists(self.cached(slug, "ready")))
        # the next job of the slug starts from the archive again, without a download
        j, out = self.run_slug(slug, "cat /app/hello.txt; test -e /app/new && echo leaked || echo clean")
        self.assertEqual(out.split(), ["hello", nonce, "clean"])
        self.assertEqual(self.slugs.count(slug), 1)
        # a job that is not root reads it too (the cache directory is 0700)
        j, out = self.run_slug(slug, "id -u; cat /app/hello.txt", config={"uid": 65534, "gid": 65534})
        self.assertEqual(out.split(), ["65534", "hello", nonce])
        # the stack is still below the slug
        j, out = self.run_slug(slug, "/usr/bin/python3 -c 'print(6*7)'; test -e /etc/shadow || echo no-shadow")
        self.assertEqual(out.split(), ["42", "no-shadow"])

    def test_two_jobs_of_one_slug_download_it_once(self):
        slug, nonce = self.app()
        # a slow server: the second job arrives while the first one downloads
        self.slugs.delay[slug["url"][len(self.slugs.url):]] = 1.0
        ids = []
        for _ in range(3):
            jid = self.new_id()
            r = self.host.put_job(jid, {"config": {"args": ["cat", "/app/hello.txt"]},
                                        "root": {"stack": "default", "slug": slug}})
            self.assertEqual(r.status, 200, r)
            ids.append(jid)
        for jid in ids:
            j = self.host.wait_status(jid, (2, 3, 4))
            self.assertEqual(j["status"], 2, j)
            self.assertEqual(self.host.log(jid), "hello %s\n" % nonce)
        self.assertEqual(self.slugs.count(slug), 1)

    def test_wrong_sha256_fails_the_job(self):
        slug, _ = self.app()
        bad = dict(slug, sha256=hashlib.sha256(b"something else").hexdigest())
        j, out = self.run_slug(bad, "echo ran")
        self.assertEqual(j["status"], 4, j)
        self.assertIn(slug["url"], j["error"])
        self.assertIn("checksum mismatch", j["error"])
        self.assertIn(bad["sha256"], j["error"])
        self.assertEqual(out, "")
        self.assertFalse(os.path.exists(self.cached(bad)))
        # a wrong size is caught as well
        j, _ = self.run_slug(dict(slug, size=slug["size"] + 1), "echo ran")
        self.assertEqual(j["status"], 4, j)
        self.assertIn("size mismatch", j["error"])
        j, _ = self.run_slug(dict(slug, size=slug["size"] - 1), "echo ran")
        self.assertEqual(j["status"], 4, j)
        self.assertIn("larger than its declared size", j["error"])
        self.assertFalse([n for n in os.listdir(self.cache) if n.startswith(".tmp-")])
        # the right spec still works afterwards
        j, _ = self.run_slug(slug, "true")
        self.assertEqual(j["status"], 2, j)

    def test_missing_slug_fails_the_job(self):
        slug, _ = self.app()
        gone = dict(slug, url=self.slugs.url + "/slugs/nope.tgz")
        j, out = self.run_slug(gone, "echo ran")
        self.assertEqual(j["status"], 4, j)
        self.assertIn(gone["url"], j["error"])
        self.assertIn("HTTP status 404", j["error"])
        self.assertFalse(os.path.exists(self.cached(gone)))
        # nothing listens: the reason says so
        port_free = dict(slug, url="http://127.0.0.1:1/slugs/x.tgz")
        j, out = self.run_slug(port_free, "echo ran")
        self.assertEqual(j["status"], 4, j)
        self.assertIn("http://127.0.0.1:1/slugs/x.tgz", j["error"])

    def test_runner_is_bound_read_only(self):
        slug, nonce = self.app()
        j, out = self.run_job(["/runner/init", "sh", "-c",
                               "pwd; cat hello.txt; touch /runner/x 2>/dev/null && echo rw || echo ro; "
                               "grep ' /runner ' /proc/mounts | cut -d' ' -f4 | tr , '\\n' | grep -x ro"],
                              root={"stack": "default", "slug": slug})
        self.assertEqual(j["status"], 2, j)
        self.assertEqual(out.split(), ["/app", "hello", nonce, "ro", "ro"])
        self.assertFalse(os.path.exists(os.path.join(self.runner, "x")))
        # jobs without a slug get no runner
        j, out = self.run_job(["sh", "-c", "test -e /runner && echo runner || echo none"])
        self.assertEqual(out.strip(), "none")

    def test_bad_slug_spec_is_400(self):
        slug, _ = self.app()
        cases = [
            ({"url": "ftp://x/y.tgz", "sha256": slug["sha256"]}, "root.slug.url"),
            ({"url": slug["url"]}, "root.slug.sha256"),
            ({"url": slug["url"], "sha256": "abc"}, "root.slug.sha256"),
            ({"url": slug["url"], "sha256": slug["sha256"], "size": -5}, "root.slug.size"),
            ({"url": slug["url"], "sha256": slug["sha256"], "extra": 1}, "unknown field 'root.slug.extra'"),
            ("http://x/y.tgz", "root.slug must be an object"),
        ]
        for spec, want in cases:
            r = self.host.put_job(self.new_id(), {"config": {"args": ["true"]},
                                                  "root": {"stack": "default", "slug": spec}})
            self.assertEqual(r.status, 400, (spec, r))
            self.assertIn(want, r.json()["message"], spec)
        r = self.host.put_job(self.new_id(), {"config": {"args": ["true"]}, "root": {"slugs": {}}})
        self.assertEqual(r.status, 400, r)
        self.assertIn("unknown field 'root.slugs'", r.json()["message"])
        self.assertEqual(self.slugs.count(slug), 0)

    def test_cli_run_with_slug(self):
        slug, nonce = self.app()
        env = dict(os.environ, FLYNN_HOST_URL=self.hostd.url)
        p = subprocess.run([os.path.join(BIN, "flynn-host"), "run", "--slug", slug["url"],
                            "--slug-sha256", slug["sha256"], "--", "cat", "/app/hello.txt"],
                           env=env, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(p.stdout.decode(), "hello %s\n" % nonce)
        p = subprocess.run([os.path.join(BIN, "flynn-host"), "run", "--slug", slug["url"], "--", "true"],
                           env=env, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"--slug-sha256", p.stderr)

    def test_restart_reuses_the_cached_slug(self):
        slug, nonce = self.app()
        j, out = self.run_slug(slug, "cat /app/hello.txt")
        self.assertEqual(out, "hello %s\n" % nonce)
        self.assertEqual(self.slugs.count(slug), 1)
        self.hostd.stop()
        type(self).start_daemon()
        j, out = self.run_slug(slug, "cat /app/hello.txt")
        self.assertEqual(j["status"], 2, j)
        self.assertEqual(out, "hello %s\n" % nonce)
        self.assertEqual(self.slugs.count(slug), 1)


class TestSlugEviction(SlugTestCase):
    extra_args = ["--slug-cache-keep", "1"]

    def test_unused_slugs_beyond_the_bound_are_evicted(self):
        a, _ = self.app()
        b, _ = self.app()
        c, _ = self.app()
        j, _ = self.run_slug(a, "true")
        self.assertEqual(j["status"], 2, j)
        self.assertTrue(os.path.exists(self.cached(a)))
        running, _ = self.start_job(["sleep", "1000"], root={"stack": "default", "slug": c})
        j, _ = self.run_slug(b, "true")
        self.assertEqual(j["status"], 2, j)
        # b's shim evicts after its job: a is old and unused; c is older than b but in use
        wait_for(lambda: not os.path.exists(self.cached(a)), what="slug a evicted")
        self.assertTrue(os.path.exists(self.cached(c, "root", "app", "hello.txt")))
        self.assertEqual(self.host.job(running)["status"], 1)
        self.host.stop(running)
        self.host.wait_status(running, (2, 3))
        # c was used last: b goes
        wait_for(lambda: not os.path.exists(self.cached(b)), what="slug b evicted")
        # a slug that was evicted is fetched again
        j, _ = self.run_slug(a, "cat /app/Procfile")
        self.assertEqual(j["status"], 2, j)
        self.assertEqual(self.slugs.count(a), 2)
        # the daemon evicts when it starts too
        self.hostd.stop()
        type(self).hargs = self.hargs[:-1] + ["0"]
        type(self).start_daemon()
        self.assertFalse([n for n in os.listdir(self.cache) if n in (a["sha256"], b["sha256"], c["sha256"])])
