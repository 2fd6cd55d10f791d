"""flynn-router fed by flynn-controller (--controller): routes made through
the API and the backends of the jobs the scheduler starts on a real
flynn-host reach the router without a reload; jobs leaving take their
backend away; the controller going away keeps the last table.
"""
import base64
import http.client
import os
import shutil
import signal
import socket
import subprocess
import time

from t3router_util import ws_frame, ws_open, ws_read
from harness import (TestCase, HostClient, Daemon, binpath, cleanup_bridge, free_port, host_args, request,
                     wait_for)

KEY = "feed-key"
A = {"Authorization": "Basic " + base64.b64encode((":" + KEY).encode()).decode()}
WEB = {"args": ["/usr/bin/python3", "-c",
                "import http.server,os\n"
                "class H(http.server.BaseHTTPRequestHandler):\n"
                "  def do_GET(s):\n"
                "    b=('job '+os.environ['FLYNN_JOB_ID']+' rel '+os.environ['REL']+'\\n').encode()\n"
                "    s.send_response(200);s.send_header('Content-Length',str(len(b)));s.end_headers();s.wfile.write(b)\n"
                "  def log_message(s,*a): pass\n"
                "http.server.ThreadingHTTPServer(('',int(os.environ['PORT'])),H).serve_forever()\n"],
       "ports": [{"port": 8080, "proto": "tcp"}]}


def parse_time(t):
    """Seconds of an RFC 3339 UTC time as the controller writes them."""
    import calendar
    base, _, frac = t.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))


# a job that answers GETs with its id and echoes websocket frames
WSAPP = {"args": ["/usr/bin/python3", "-c",
                  "import base64,hashlib,http.server,os,struct\n"
                  "G='258EAFA5-E914-47DA-95CA-C5AB0DC85B11'\n"
                  "class H(http.server.BaseHTTPRequestHandler):\n"
                  "  protocol_version='HTTP/1.1'\n"
                  "  def do_GET(s):\n"
                  "    if s.headers.get('Upgrade','').lower()!='websocket':\n"
                  "      b=('job '+os.environ['FLYNN_JOB_ID']+' '+s.path+'\\n').encode()\n"
                  "      s.send_response(200);s.send_header('Content-Length',str(len(b)));s.end_headers();s.wfile.write(b);return\n"
                  "    a=base64.b64encode(hashlib.sha1((s.headers['Sec-WebSocket-Key']+G).encode()).digest()).decode()\n"
                  "    s.send_response(101);s.send_header('Upgrade','websocket');s.send_header('Connection','Upgrade')\n"
                  "    s.send_header('Sec-WebSocket-Accept',a);s.end_headers();s.wfile.flush()\n"
                  "    while True:\n"
                  "      h=s.rfile.read(2)\n"
                  "      if len(h)<2: return\n"
                  "      n=h[1]&127\n"
                  "      if n==126: n=struct.unpack('>H',s.rfile.read(2))[0]\n"
                  "      elif n==127: n=struct.unpack('>Q',s.rfile.read(8))[0]\n"
                  "      k=s.rfile.read(4);d=bytes(c^k[i%4] for i,c in enumerate(s.rfile.read(n)))\n"
                  "      op=h[0]&15\n"
                  "      hd=bytes([128|op])+(bytes([len(d)]) if len(d)<126 else bytes([126])+struct.pack('>H',len(d)))\n"
                  "      s.wfile.write(hd+d);s.wfile.flush()\n"
                  "      if op==8: return\n"
                  "  def log_message(s,*a): pass\n"
                  "http.server.ThreadingHTTPServer(('',int(os.environ['PORT'])),H).serve_forever()\n"],
         "ports": [{"port": 8080, "proto": "tcp"}]}


class RouterControllerTest(TestCase):
    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("flynn-host needs root")
        self.bridge, hargs = host_args(self.dir)
        self.hostd = Daemon("flynn-host", hargs, self.dir)
        self.host = HostClient(self.hostd.url)
        self.cleanups_first.append(self.stop_host)
        self.ctl_args = ["--listen", "127.0.0.1:0", "--data-dir", os.path.join(self.dir, "data"),
                         "--key", KEY, "--domain", "feed.test", "--host", self.hostd.url]
        self.ctl = self.start("flynn-controller", self.ctl_args)
        keyfile = os.path.join(self.dir, "key")
        with open(keyfile, "w") as f:
            f.write(KEY + "\n")
        # a certificate for *.feed.test, for HTTPS and HTTP/2
        self.cert, self.certkey = os.path.join(self.dir, "c.pem"), os.path.join(self.dir, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-keyout",
                        self.certkey, "-out", self.cert, "-subj", "/CN=feed.test",
                        "-addext", "subjectAltName=DNS:*.feed.test"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lf = os.path.join(self.dir, "listen.txt")
        self.router = self.start("flynn-router", [
            "--http-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0", "--cert", self.cert,
            "--key", self.certkey, "--listen-file", lf, "--controller", self.ctl.url,
            "--controller-key-file", keyfile, "--access-log", os.path.join(self.dir, "access.log"),
            # TCP routes get ports of their own (free_port), not the controller's
            # default 3000-3500, which a cluster on this machine may be using
            "--tcp-range", "1024-65535"])
        self.rport = int(self.router.listen.rsplit(":", 1)[1])
        with open(lf) as f:
            addrs = dict(l.strip().split("=", 1) for l in f if "=" in l)
        self.tls_port = int(addrs["https"].rsplit(":", 1)[1])

    def stop_host(self):
        for d in self.daemons:
            if d.name == "flynn-controller" and d.alive():
                d.stop()
        try:
            if self.hostd.alive():
                self.host.stop_all(timeout=10)
        except Exception as e:
            print("stop_all:", e)
        self.hostd.stop()
        cleanup_bridge(self.bridge)

    def api(self, method, path, body=None, status=200):
        r = request(method, self.ctl.url + path, body, headers=A)
        self.assertEqual(r.status, status, (method, path, r))
        return r.json() if r.body.strip() else None

    def get(self, host, path="/"):
        c = http.client.HTTPConnection("127.0.0.1", self.rport, timeout=10)
        try:
            c.request("GET", path, headers={"Host": host})
            r = c.getresponse()
            return r.status, r.read().decode(errors="replace")
        finally:
            c.close()

    def deploy_app(self, name, rel_env="1", count=1):
        app = self.api("POST", "/apps", {"name": name})
        rel = self.api("POST", "/releases", {"app_id": app["id"], "env": {"REL": rel_env},
                                             "processes": {"web": WEB}})
        self.api("PUT", "/apps/%s/release" % app["id"], {"id": rel["id"]})
        self.api("PUT", "/apps/%s/formations/%s" % (app["id"], rel["id"]),
                 {"app": app["id"], "release": rel["id"], "processes": {"web": count}})
        return app, rel

    def test_default_route_follows_jobs(self):
        # before any job: the app's default route exists, no backend -> 503
        app, rel = self.deploy_app("feedapp", count=0)
        wait_for(lambda: self.get("feedapp.feed.test")[0] == 503, timeout=5,
                 what="default route known to the router")
        self.assertEqual(self.get("unknown.feed.test")[0], 404)
        # scale up: the job's address becomes the backend
        self.api("PUT", "/apps/%s/formations/%s" % (app["id"], rel["id"]),
                 {"app": app["id"], "release": rel["id"], "processes": {"web": 2}})
        wait_for(lambda: self.get("feedapp.feed.test")[0] == 200, timeout=30,
                 what="app answering through the router")
        # both jobs up and in the router's table (the second may pass its check later)
        wait_for(lambda: len({self.get("feedapp.feed.test")[1] for _ in range(6)}) == 2,
                 timeout=30, what="both jobs serving")
        seen = set()
        for _ in range(20):
            st, body = self.get("feedapp.feed.test")
            self.assertEqual(st, 200, body)
            self.assertIn("rel 1", body)
            seen.add(body.split()[1])
        self.assertEqual(len(seen), 2, "requests spread over both jobs: %s" % seen)
        table = self.api("GET", "/router/table")
        rt = [r for r in table["routes"] if r.get("domain") == "feedapp.feed.test"]
        self.assertEqual(len(rt), 1, table)
        self.assertEqual(len(rt[0]["backends"]), 2, rt)
        # a new route through the API works within a second
        self.api("POST", "/apps/%s/routes" % app["id"],
                 {"type": "http", "domain": "other.example.org", "service": "feedapp-web"})
        t0 = time.time()
        wait_for(lambda: self.get("other.example.org")[0] == 200, timeout=5, what="new route")
        self.assertLess(time.time() - t0, 1.5, "a new route is served within a second")
        # scale to zero: backends leave, the route answers 503
        self.api("PUT", "/apps/%s/formations/%s" % (app["id"], rel["id"]),
                 {"app": app["id"], "release": rel["id"], "processes": {"web": 0}})
        wait_for(lambda: self.get("feedapp.feed.test")[0] == 503, timeout=30,
                 what="backends gone after scale down")

    def test_leader_route_goes_to_the_job_up_longest(self):
        app, rel = self.deploy_app("lead", count=1)
        wait_for(lambda: self.get("lead.feed.test")[0] == 200, timeout=30, what="first job up")
        first = self.get("lead.feed.test")[1].split()[1]
        self.api("POST", "/apps/%s/routes" % app["id"],
                 {"type": "http", "domain": "leader.example.org", "service": "lead-web",
                  "leader": True})
        self.api("PUT", "/apps/%s/formations/%s" % (app["id"], rel["id"]),
                 {"app": app["id"], "release": rel["id"], "processes": {"web": 3}})
        wait_for(lambda: len({self.get("lead.feed.test")[1] for _ in range(12)}) == 3,
                 timeout=30, what="three jobs serving the plain route")

        def leaders():
            return {self.get("leader.example.org")[1].split()[1] for _ in range(12)}

        self.assertEqual(leaders(), {first}, "the leader route goes to the job up longest alone")

        def up_jobs():
            return [j for j in self.api("GET", "/apps/%s/jobs" % app["id"])
                    if j.get("state") == "up" and j.get("type") == "web"]

        others = [j for j in up_jobs() if j["id"] != first and not first.endswith(j["uuid"])]
        self.assertEqual(len(others), 2, up_jobs())
        # the record of an up job was last written when it came up
        expected = min(others, key=lambda j: (parse_time(j["updated_at"]), j["uuid"]))
        r = request("DELETE", self.ctl.url + "/apps/%s/jobs/%s" % (app["id"], first), headers=A)
        self.assertEqual(r.status, 200, r)
        wait_for(lambda: first not in leaders(), timeout=30, what="a new leader")
        self.assertEqual(leaders(), {expected["id"]},
                         "the next job up longest leads, not the replacement")
        # a leader TCP route follows the same leader
        t = self.api("POST", "/apps/%s/routes" % app["id"],
                     {"type": "tcp", "service": "lead-web", "leader": True,
                      "port": free_port()})
        port = t["port"]

        def tcp_get():
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/")
                return c.getresponse().read().decode().split()[1]
            except OSError:
                return None

        wait_for(lambda: tcp_get() is not None, timeout=5, what="the TCP route listening")
        self.assertEqual({tcp_get() for _ in range(8)}, {expected["id"]})

        # a restarted controller names the same leader (jobs keep their age)
        def lead_backends():
            table = self.api("GET", "/router/table")
            return [x["backends"] for x in table["routes"] if x.get("domain") == "lead.feed.test"][0]

        wait_for(lambda: len(lead_backends()) == 3, timeout=30, what="the replacement up")
        before = lead_backends()
        self.ctl.stop()
        self.ctl = self.start("flynn-controller", self.ctl_args)
        wait_for(lambda: len(lead_backends()) == 3, timeout=30, what="jobs up again after the restart")
        self.assertEqual(lead_backends(), before, "same order, same leader, after a restart")

    def test_websocket_http2_and_tcp_to_a_job(self):
        app = self.api("POST", "/apps", {"name": "wsapp"})
        rel = self.api("POST", "/releases", {"app_id": app["id"], "processes": {"web": WSAPP}})
        self.api("PUT", "/apps/%s/release" % app["id"], {"id": rel["id"]})
        self.api("PUT", "/apps/%s/formations/%s" % (app["id"], rel["id"]),
                 {"app": app["id"], "release": rel["id"], "processes": {"web": 1}})
        wait_for(lambda: self.get("wsapp.feed.test")[0] == 200, timeout=30, what="app up")
        job = self.get("wsapp.feed.test")[1].split()[1]
        # a websocket through the router to the job, both ways
        s, f, status, hdrs, want = ws_open(("127.0.0.1", self.rport), "wsapp.feed.test")
        self.assertIn(b" 101 ", status)
        self.assertEqual(hdrs.get("sec-websocket-accept"), want, hdrs)
        for payload in (b"hello", os.urandom(3000)):
            s.sendall(ws_frame(payload, opcode=2))
            self.assertEqual(ws_read(f), (2, payload))
        s.sendall(ws_frame(b"", opcode=8))
        self.assertEqual(ws_read(f)[0], 8)
        s.close()
        # HTTP/2 over TLS (curl), proxied to the job as HTTP/1.1
        curl = shutil.which("curl")
        if curl and "HTTP2" in subprocess.run([curl, "-V"], capture_output=True, text=True).stdout:
            p = subprocess.run([curl, "-sk", "--http2", "--resolve",
                                "wsapp.feed.test:%d:127.0.0.1" % self.tls_port, "-w",
                                "%{http_version}", "https://wsapp.feed.test:%d/h2" % self.tls_port],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(p.stdout, "job %s /h2\n2" % job, p.stderr)
        # a TCP route to the same service: bytes straight to the job
        t = self.api("POST", "/apps/%s/routes" % app["id"], {"type": "tcp", "service": "wsapp-web",
                                                              "port": free_port()})

        def tcp_get():
            try:
                c = http.client.HTTPConnection("127.0.0.1", t["port"], timeout=5)
                c.request("GET", "/tcp")
                return c.getresponse().read().decode()
            except OSError:
                return None

        wait_for(lambda: tcp_get() is not None, timeout=5, what="the TCP route listening")
        self.assertEqual(tcp_get(), "job %s /tcp\n" % job)

    def under_load(self, host, action):
        """Runs action() while 3 threads send GETs to host; returns their
        results, (status, body) or (0, error)."""
        import threading
        stop = threading.Event()
        results = []

        def load():
            while not stop.is_set():
                try:
                    results.append(self.get(host))
                except OSError as e:
                    results.append((0, str(e)))

        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            action()
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        return results

    def test_kill_under_load_fails_no_request(self):
        # `flynn kill` of a routed job: it leaves the table before it gets SIGTERM
        app, rel = self.deploy_app("killed", count=2)
        wait_for(lambda: len({self.get("killed.feed.test")[1] for _ in range(8)}) == 2,
                 timeout=30, what="both jobs serving")

        def kill():
            time.sleep(0.3)
            victim = self.get("killed.feed.test")[1].split()[1]
            r = request("DELETE", self.ctl.url + "/apps/%s/jobs/%s" % (app["id"], victim), headers=A)
            self.assertEqual(r.status, 200, r)
            wait_for(lambda: victim not in {self.get("killed.feed.test")[1].split()[1]
                                            for _ in range(8)}, timeout=30, what="victim gone")

        results = self.under_load("killed.feed.test", kill)
        bad = [r for r in results if r[0] != 200]
        self.assertGreater(len(results), 30)
        self.assertEqual(bad, [], "failed requests around the kill (%d of %d)" % (len(bad), len(results)))

    def test_deploy_drains_without_failed_requests(self):
        app, rel = self.deploy_app("drain", count=2)
        wait_for(lambda: self.get("drain.feed.test")[0] == 200, timeout=30, what="app up")

        def deploy():
            rel2 = self.api("POST", "/releases", {"app_id": app["id"], "env": {"REL": "2"},
                                                  "processes": {"web": WEB}})
            self.api("POST", "/apps/%s/deploy" % app["id"], {"id": rel2["id"]})
            wait_for(lambda: all("rel 2" in self.get("drain.feed.test")[1] for _ in range(6)),
                     timeout=60, what="the new release serving alone")

        results = self.under_load("drain.feed.test", deploy)
        bad = [r for r in results if r[0] != 200]
        self.assertGreater(len(results), 50)
        self.assertEqual(bad, [], "failed requests during the deploy (%d of %d)" % (len(bad), len(results)))
        self.assertTrue(any("rel 1" in r[1] for r in results))
        self.assertTrue(any("rel 2" in r[1] for r in results))

    def test_long_poll_and_bad_input(self):
        t = self.api("GET", "/router/table")
        g = t["generation"]
        r = request("GET", self.ctl.url + "/router/table?wait=abc", headers=A)
        self.assertEqual(r.status, 400)
        r = request("GET", self.ctl.url + "/router/table")
        self.assertEqual(r.status, 401)
        # a stale generation answers at once
        t0 = time.time()
        self.api("GET", "/router/table?wait=%d" % (g + 100))
        self.assertLess(time.time() - t0, 5)
        # creating an app (default route) wakes a waiter on the current one
        import threading
        out = {}

        def waiter():
            out["t"] = self.api("GET", "/router/table?wait=%d" % g)

        th = threading.Thread(target=waiter)
        th.start()
        time.sleep(0.3)
        self.assertTrue(th.is_alive(), "the waiter parks while nothing changes")
        self.api("POST", "/apps", {"name": "wakeup"})
        th.join(10)
        self.assertFalse(th.is_alive())
        self.assertGreater(out["t"]["generation"], g)
        self.assertTrue(any(r.get("domain") == "wakeup.feed.test" for r in out["t"]["routes"]))

    def test_controller_restart_keeps_table(self):
        app, rel = self.deploy_app("keep")
        wait_for(lambda: self.get("keep.feed.test")[0] == 200, timeout=30, what="app up")
        self.ctl.stop()
        # the router keeps serving with the last table while the controller is away
        for _ in range(5):
            self.assertEqual(self.get("keep.feed.test")[0], 200)
            time.sleep(0.2)
        self.assertTrue(self.router.alive())
        log = self.router.read_log()
        self.assertNotIn("AddressSanitizer", log)


if __name__ == "__main__":
    import unittest
    unittest.main()
