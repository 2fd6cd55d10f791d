"""Logs: every job's output reaches the log aggregator (flynn-logaggregator) from
flynn-host, and `GET /apps/:app/log` (our CLI's and Flynn's `flynn log`) reads it
from there; log sinks (syslog over TCP, HTTP) get every line in order.

LogsTest runs the pieces directly: one flynn-host, one aggregator on a fixed
port, one controller with --log-aggregator; jobs are put on the host with an
app's metadata, as the scheduler does. ClusterLogsTest bootstraps a cluster
(scripts/bootstrap) and drives `flynn log` and `flynn cluster log-sink`.
"""
import base64
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

from harness import (BIN, Cluster, hosts_entry, Daemon, HostClient, HostTestCase, free_port, request,
                     wait_for)

KEY = "t7000-key"
AUTH = {"Authorization": "Basic " + base64.b64encode((":" + KEY).encode()).decode()}
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
GO_CLI = os.environ.get("FLYNN_GO_CLI", "/work/shared/tools/flynn-go-cli")


class Follower:
    """Reads an NDJSON (or SSE) stream in a thread; keeps (arrival time, line).
    HTTP/1.0 on a socket of its own, so close() ends the read at once."""

    def __init__(self, url, headers=None):
        self.lines = []
        self.cond = threading.Condition()
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=60)
        h = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        self.sock.sendall(("GET %s?%s HTTP/1.0\r\nHost: %s\r\n%s\r\n" % (u.path, u.query, u.netloc, h)).encode())
        self.f = self.sock.makefile("rb")
        status = self.f.readline()
        assert b" 200 " in status, status
        while self.f.readline() not in (b"\r\n", b"\n", b""):
            pass
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            for raw in self.f:
                with self.cond:
                    self.lines.append((time.time(), raw.decode().rstrip("\n")))
                    self.cond.notify_all()
        except Exception:
            pass

    def messages(self):
        with self.cond:
            return [json.loads(l) for _, l in self.lines if l.startswith("{")]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(5)
        self.sock.close()


class LogsTest(HostTestCase):
    stop_timeout = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.agg_port = free_port()
        cls.agg_addr = "127.0.0.1:%d" % cls.agg_port
        cls.snapshot = os.path.join(cls.cdir, "agg.snapshot")
        cls.ctl = Daemon("flynn-controller", ["--listen", "127.0.0.1:0", "--data-dir",
                                              os.path.join(cls.cdir, "data"), "--key", KEY,
                                              "--host", cls.hostd.url, "--log-aggregator",
                                              cls.agg_addr], cls.cdir)
        cls.agg = None
        cls.aggs = []  # every aggregator started, for the sanitizer check
        cls.start_agg()
        r = request("PUT", cls.hostd.url + "/host/config", {"log_aggregator": cls.agg_addr})
        assert r.status == 200, r
        r = request("POST", cls.ctl.url + "/apps", {"name": "logapp"}, headers=AUTH)
        assert r.status == 200, r
        cls.app_id = r.json()["id"]

    @classmethod
    def start_agg(cls, *extra):
        cls.agg = Daemon("flynn-logaggregator", ["--listen", cls.agg_addr, "--snapshot", cls.snapshot,
                                                 "--controller", cls.ctl.url] + list(extra),
                         cls.cdir, env={"CONTROLLER_KEY": KEY})
        cls.aggs.append(cls.agg)

    @classmethod
    def tearDownClass(cls):
        bad = []
        for d in cls.aggs + [cls.ctl]:
            if d.proc.poll() is None:
                d.stop()
            log = d.read_log()
            for s in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
                if s in log:
                    bad.append("%s:\n%s" % (d.name, log))
        super().tearDownClass()
        if bad:
            raise AssertionError("sanitizer report:\n" + "\n".join(bad))

    # ---- helpers ----

    def put_job(self, script, typ="web", resources=None, app_id=None):
        jid = self.new_id()
        spec = {"metadata": {"flynn-controller.app": app_id or self.app_id,
                             "flynn-controller.app_name": "logapp",
                             "flynn-controller.release": "rel-1",
                             "flynn-controller.type": typ},
                "config": {"args": ["sh", "-c", script]}}
        if resources:
            spec["resources"] = resources
        r = self.host.put_job(jid, spec)
        self.assertEqual(r.status, 200, r)
        return jid

    def wait_done(self, jid, timeout=60):
        return self.host.wait_status(jid, (2, 3, 4), timeout=timeout)

    def log(self, query="", headers=None):
        h = dict(AUTH)
        h.update(headers or {})
        r = request("GET", self.ctl.url + "/apps/logapp/log" + query, headers=h)
        self.assertEqual(r.status, 200, r)
        return r

    def messages(self, query=""):
        body = self.log(query).body.decode()
        return [json.loads(l) for l in body.splitlines() if l.strip()]

    def job_msgs(self, jid, query="?job_id="):
        return [m["msg"] for m in self.messages(query + jid)]

    # ---- tests ----

    def test_01_lines_fields_and_order(self):
        jid = self.put_job("for i in $(seq 1 300); do echo out $i; done; echo oops >&2")
        self.wait_done(jid)
        msgs = wait_for(lambda: (lambda m: m if len(m) == 301 else None)(self.messages("?job_id=" + jid)),
                        what="301 lines of the job")
        self.assertEqual([m["msg"] for m in msgs[:300]], ["out %d" % i for i in range(1, 301)])
        self.assertEqual(msgs[300]["msg"], "oops")
        m = msgs[0]
        self.assertEqual(sorted(m), ["host_id", "job_id", "msg", "process_type", "source", "stream",
                                     "timestamp"])
        self.assertEqual((m["host_id"], m["job_id"], m["process_type"], m["source"], m["stream"]),
                         (self.host_id, jid, "web", "app", "stdout"))
        self.assertEqual(msgs[300]["stream"], "stderr")
        self.assertRegex(m["timestamp"], TS_RE)
        r = self.log("?job_id=" + jid)
        self.assertTrue(r.headers["Content-Type"].startswith("text/plain"), r.headers)

    def test_02_filters(self):
        web = self.put_job("echo web-out; echo web-err >&2", typ="web")
        worker = self.put_job("echo worker-out; echo worker-err >&2", typ="worker")
        self.wait_done(web)
        self.wait_done(worker)
        wait_for(lambda: len(self.job_msgs(web)) == 2 and len(self.job_msgs(worker)) == 2,
                 what="both jobs' lines")
        self.assertEqual(self.job_msgs(web), ["web-out", "web-err"])
        by_type = self.messages("?process_type=worker")
        self.assertTrue(by_type and all(m["process_type"] == "worker" for m in by_type), by_type)
        self.assertIn("worker-err", [m["msg"] for m in by_type])
        errs = self.messages("?stream_types=stderr&job_id=" + web)
        self.assertEqual([m["msg"] for m in errs], ["web-err"])
        last = self.messages("?lines=1&job_id=" + worker)
        self.assertEqual([m["msg"] for m in last], ["worker-err"])
        last3 = self.messages("?lines=3")
        self.assertEqual(len(last3), 3)
        self.assertEqual(request("GET", self.ctl.url + "/apps/logapp/log?lines=10001",
                             headers=AUTH).status, 400)
        self.assertEqual(request("GET", self.ctl.url + "/apps/nosuchapp/log", headers=AUTH).status, 404)

    def test_03_follow_shows_new_lines_within_half_a_second(self):
        f = Follower(self.ctl.url + "/apps/logapp/log?follow=true&process_type=ticker", AUTH)
        try:
            jid = self.put_job("for i in $(seq 1 12); do echo tick $(date +%s.%N); sleep 0.25; done",
                               typ="ticker")
            wait_for(lambda: len(f.messages()) >= 12, timeout=30, what="12 ticks followed")
            delays = []
            with f.cond:
                got = list(f.lines)
            for arrived, line in got:
                m = json.loads(line)
                printed = float(m["msg"].split()[1])
                delays.append(arrived - printed)
            print("follow delays (s): max %.3f, median %.3f" % (max(delays), sorted(delays)[len(delays) // 2]))
            self.assertLess(max(delays), 0.5, delays)
            self.wait_done(jid)
            self.assertEqual([m["msg"].split()[0] for m in f.messages()[:12]], ["tick"] * 12)
        finally:
            f.close()

    def test_04_follow_with_history_and_sse(self):
        jid = self.put_job("echo one; echo two", typ="sse")
        self.wait_done(jid)
        wait_for(lambda: len(self.job_msgs(jid)) == 2, what="history")
        r = self.log("?job_id=" + jid, headers={"Accept": "text/event-stream"})
        self.assertTrue(r.headers["Content-Type"].startswith("text/event-stream"), r.headers)
        events = [json.loads(l[6:]) for l in r.body.decode().split("\n\n") if l.startswith("data: ")]
        self.assertEqual([e["event"] for e in events], ["message", "message", "eof"])
        self.assertEqual(events[1]["data"]["msg"], "two")
        # follow=true&lines=1: the last line first, then new ones
        f = Follower(self.ctl.url + "/apps/logapp/log?follow=true&lines=1&process_type=sse", AUTH)
        try:
            wait_for(lambda: [m["msg"] for m in f.messages()] == ["two"], what="history line")
            jid2 = self.put_job("echo three", typ="sse")
            wait_for(lambda: [m["msg"] for m in f.messages()] == ["two", "three"], what="new line")
            self.wait_done(jid2)
        finally:
            f.close()

    def test_05_crash_reasons(self):
        cases = [("exit 3", None, "job exited with status 3"),
                 # the job's init ignores its own SIGKILL (PID 1): the host sends it
                 ("echo ready; exec sleep 1000", None, "job killed by signal 9 (SIGKILL)"),
                 ("python3 -c 'x = bytearray(200 << 20); print(len(x))'",
                  {"memory": {"limit": 32 << 20}}, "out of memory (limit 32 MB)")]
        for script, res, want in cases:
            jid = self.put_job(script, typ="crash", resources=res)
            if "sleep" in script:
                wait_for(lambda: self.job_msgs(jid) == ["ready"], what="job running")
                r = request("PUT", self.hostd.url + "/host/jobs/%s/signal/KILL" % jid)
                self.assertEqual(r.status, 200, r)
            j = self.wait_done(jid)
            self.assertEqual(j["status"], 3, j)
            msgs = wait_for(lambda: [m for m in self.messages("?job_id=" + jid) if m["source"] == "host"],
                            what="the host's line for %r" % script)
            self.assertEqual(len(msgs), 1, msgs)
            self.assertTrue(msgs[0]["msg"].startswith(want), msgs)
            self.assertEqual(msgs[0]["stream"], "stderr")
            # the host's log API has it in its JSON form, not in the raw output
            self.assertIn(want, self.host.log(jid, "?format=json"))
            self.assertNotIn(want, self.host.log(jid))
        # a clean exit says nothing
        jid = self.put_job("echo fine", typ="crash")
        self.wait_done(jid)
        wait_for(lambda: self.job_msgs(jid) == ["fine"], what="clean exit: only its line")

    def test_06_slugbuilder_lines_show_under_the_app(self):
        jid = self.put_job("echo '-----> Building logapp...'; echo '-----> Compiled slug'", typ="slugbuilder")
        self.wait_done(jid)
        msgs = wait_for(lambda: (lambda m: m if len(m) >= 2 else None)(
            [m for m in self.messages("?process_type=slugbuilder") if m["job_id"] == jid]), what="build lines")
        self.assertEqual([m["msg"] for m in msgs], ["-----> Building logapp...", "-----> Compiled slug"])

    def writer(self, n, every="0.005", typ="writer"):
        return self.put_job("i=0; while [ $i -lt %d ]; do echo line $i; i=$((i+1)); sleep %s; done" % (n, every),
                            typ=typ)

    def assert_all_lines(self, jid, n):
        def complete():
            got = self.job_msgs(jid)
            return got if len(got) >= n else None
        got = wait_for(complete, timeout=60, what="%d lines of %s" % (n, jid))
        self.assertEqual(got, ["line %d" % i for i in range(n)])

    def test_07_aggregator_restart_keeps_every_line(self):
        n = 600
        jid = self.writer(n)
        time.sleep(1)
        type(self).agg.stop()  # SIGTERM: the snapshot keeps what it had
        time.sleep(1.5)        # lines written now wait in the job's log file
        type(self).start_agg()
        self.wait_done(jid)
        self.assert_all_lines(jid, n)

    def test_08_aggregator_crash_keeps_what_was_written_while_it_was_away(self):
        n = 600
        jid = self.writer(n, typ="crashy")
        time.sleep(1)
        type(self).agg.stop(sig=signal.SIGKILL)  # no snapshot: what it held is gone
        if os.path.exists(self.snapshot):
            os.unlink(self.snapshot)
        time.sleep(1)
        before = 0
        for l in self.host.log(jid).splitlines():  # written so far
            before += 1
        type(self).start_agg()
        self.wait_done(jid)

        def tail():
            got = self.job_msgs(jid)
            return got if got and got[-1] == "line %d" % (n - 1) else None
        got = wait_for(tail, timeout=60, what="the job's last line")
        first = int(got[0].split()[1])
        self.assertLessEqual(first, before, "lines written while the aggregator was away are there")
        self.assertEqual(got, ["line %d" % i for i in range(first, n)])

    def test_09_host_daemon_restart_resumes_shipping(self):
        n = 500
        jid = self.writer(n, typ="hostrestart")
        time.sleep(0.8)
        listen = self.hostd.listen
        self.hostd.stop()
        time.sleep(1)
        args = [listen if a == "127.0.0.1:0" else a for a in self.hargs]
        type(self).hostd = Daemon("flynn-host", args, self.cdir)
        type(self).host = HostClient(self.hostd.url)
        # the address was remembered in the state directory
        self.assertEqual(request("GET", self.hostd.url + "/host/config").json()["log_aggregator"],
                         self.agg_addr)
        self.wait_done(jid)
        self.assert_all_lines(jid, n)

    def test_10_fallback_to_hosts_when_the_aggregator_is_down(self):
        jid = self.put_job("echo from-host-fallback", typ="fallback")
        self.wait_done(jid)
        wait_for(lambda: self.job_msgs(jid) == ["from-host-fallback"], what="via the aggregator")
        type(self).agg.stop()
        try:
            # the controller's own job table does not know host-put jobs, so ask for
            # the app's log and expect a 200 answer rather than an error
            r = self.log("?process_type=fallback")
            self.assertEqual(r.status, 200)
        finally:
            type(self).start_agg()

    def sink(self, kind, url, **cfg):
        c = {"url": url}
        c.update(cfg)
        r = request("POST", self.ctl.url + "/sinks", {"kind": kind, "config": c}, headers=AUTH)
        self.assertEqual(r.status, 200, r)
        sid = r.json()["id"]
        self.addCleanup(lambda: request("DELETE", self.ctl.url + "/sinks/" + sid, headers=AUTH))
        wait_for(lambda: any(s["id"] == sid for s in request("GET", self.agg.url + "/status").json()["sinks"]),
                 what="the aggregator has the sink")
        return sid

    def test_11_syslog_sink_gets_rfc5424_in_order_with_retry(self):
        port = free_port()
        self.sink("syslog", "syslog://127.0.0.1:%d" % port)
        # nothing listens yet: the sink retries; lines wait in the buffer
        jid = self.put_job("for i in $(seq 1 200); do echo sys $i; done; echo bad >&2", typ="syslogged")
        self.wait_done(jid)
        time.sleep(1)
        frames = []
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(4)
        srv.settimeout(30)
        conn, _ = srv.accept()
        conn.settimeout(10)
        buf = b""
        deadline = time.time() + 30
        try:
            while time.time() < deadline:
                while True:  # octet-counted frames: "LEN SP MSG"
                    sp = buf.find(b" ")
                    if sp < 0 or len(buf) < sp + 1 + int(buf[:sp]):
                        break
                    ln = int(buf[:sp])
                    frames.append(buf[sp + 1:sp + 1 + ln].decode())
                    buf = buf[sp + 1 + ln:]
                mine = [f for f in frames if jid in f]
                if len(mine) >= 201:
                    break
                d = conn.recv(65536)
                if not d:
                    break
                buf += d
        finally:
            conn.close()
            srv.close()
        mine = [f for f in frames if jid in f]
        self.assertEqual(len(mine), 201, frames[-3:])
        rx = re.compile(r"^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) - - (.*)$")
        parsed = [rx.match(f) for f in mine]
        self.assertTrue(all(parsed), mine[:3])
        self.assertEqual([p.group(6) for p in parsed], ["sys %d" % i for i in range(1, 201)] + ["bad"])
        p = parsed[0]
        self.assertEqual(p.group(1), "14")  # user.info
        self.assertEqual(parsed[-1].group(1), "11")  # user.err
        self.assertRegex(p.group(2), TS_RE)
        self.assertEqual(p.group(3), self.host_id)
        self.assertEqual(p.group(4), "logapp")
        self.assertEqual(p.group(5), "syslogged." + jid)

    def test_12_http_sink_retries_and_keeps_order(self):
        got, fails = [], [2]

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if fails[0] > 0:
                    fails[0] -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                got.extend(json.loads(l) for l in body.decode().splitlines() if l)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            self.sink("http", "http://127.0.0.1:%d/ingest" % srv.server_address[1])
            jid = self.put_job("for i in $(seq 1 2500); do echo h $i; done", typ="httpsunk")
            self.wait_done(jid)
            wait_for(lambda: len([m for m in got if m["job_id"] == jid]) >= 2500, timeout=60,
                     what="2500 lines at the HTTP sink")
            self.assertEqual([m["msg"] for m in got if m["job_id"] == jid], ["h %d" % i for i in range(1, 2501)])
            self.assertEqual(fails[0], 0)
        finally:
            srv.shutdown()

    def test_13_status_counts(self):
        st = request("GET", self.agg.url + "/status").json()
        self.assertIn(self.app_id, st["per_app"])
        for k in ("lines", "bytes", "received", "evicted", "duplicates", "malformed", "limits"):
            self.assertIn(k, st)
        cfg = request("GET", self.hostd.url + "/host/config").json()
        self.assertEqual(cfg["log_aggregator"], self.agg_addr)
        self.assertGreater(cfg["log_shipping"]["lines_shipped"], 0)
        self.assertEqual(request("PUT", self.hostd.url + "/host/config", {"log_aggregator": "nope"}).status, 400)


class ClusterLogsTest(HostTestCase):
    """`flynn log` end to end on a bootstrapped cluster (router, TLS, our CLI)."""
    stop_timeout = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        c = Cluster(cls.cdir, cls.hostd.url, "logs")
        cls.cluster = c
        cls.env, cls.home, cls.key, cls.ctl = c.env, c.home, c.key, c.ctl
        cls.agg_url = "http://" + c.env["LOGAGGREGATOR_LISTEN"]

    def flynn(self, *args, check=True, timeout=60):
        r = subprocess.run([os.path.join(BIN, "flynn")] + list(args), env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, cwd=self.home)
        if check and r.returncode != 0:
            raise AssertionError("flynn %s: exit %d\n%s%s" % (" ".join(args), r.returncode,
                                                                r.stdout.decode(), r.stderr.decode()))
        return r

    def api(self, method, path, body=None):
        h = {"Authorization": "Basic " + base64.b64encode((":" + self.key).encode()).decode()}
        return request(method, self.ctl + path, body, headers=h)

    def test_1_flynn_log_options(self):
        self.flynn("create", "clog")
        app = self.api("GET", "/apps/clog").json()
        rel = self.api("POST", "/releases", {"app_id": app["id"], "processes": {
            "web": {"args": ["sh", "-c", "echo web says hi; echo web warns >&2; exec sleep 100000"]},
            "worker": {"args": ["sh", "-c", "for i in 1 2 3; do echo work $i; done; exec sleep 100000"]},
            "once": {"args": ["sh", "-c", "echo followed $(date +%s.%N); exec sleep 100000"]}}}).json()
        self.api("POST", "/apps/clog/deploy", {"id": rel["id"]})
        self.flynn("-a", "clog", "scale", "web=1", "worker=1")

        def out(*a):
            return self.flynn("-a", "clog", "log", *a).stdout.decode()
        wait_for(lambda: "work 3" in out() and "web warns" in out(), timeout=60, what="both types logged")
        lines = out().splitlines()
        rx = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z app\[(\w+)\.(%s-[0-9a-f-]+)\]: (.*)$"
                        % self.host_id)
        self.assertTrue(all(rx.match(l) for l in lines), lines)
        self.assertEqual(sorted(set(rx.match(l).group(1) for l in lines)), ["web", "worker"])
        # -t, -n, --raw-output
        self.assertEqual(out("-t", "worker", "--raw-output").splitlines(), ["work 1", "work 2", "work 3"])
        self.assertEqual(out("-t", "worker", "-n", "1", "-r").splitlines(), ["work 3"])
        # -j
        wjob = rx.match([l for l in lines if "[worker." in l][0]).group(2)
        self.assertEqual(out("-j", wjob, "-r").splitlines(), ["work 1", "work 2", "work 3"])
        # -s: stderr lines go to stderr
        r = self.flynn("-a", "clog", "log", "-t", "web", "-s", "-r")
        self.assertEqual(r.stdout.decode().splitlines(), ["web says hi"])
        self.assertIn("web warns", r.stderr.decode())
        # -f: history with -n, then new lines
        p = subprocess.Popen([os.path.join(BIN, "flynn"), "-a", "clog", "log", "-f", "-n", "1", "-t", "once", "-r"],
                             env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.home)
        try:
            time.sleep(1)
            self.flynn("-a", "clog", "scale", "web=1", "worker=1", "once=1")
            line = p.stdout.readline().decode()
            self.assertTrue(line.startswith("followed "), line)
            delay = time.time() - float(line.split()[1])
            print("flynn log -f: a new line after %.3f s" % delay)
            self.assertLess(delay, 2.0)  # includes container start-up jitter of the reader thread
        finally:
            p.kill()
            p.wait()
        self.flynn("-a", "clog", "scale", "web=0", "worker=0", "once=0")

    def test_2_system_apps_and_crash_line(self):
        # the controller's own output is shipped too (bootstrap configured the host)
        out = self.flynn("-a", "controller", "log", "-n", "5").stdout.decode()
        self.assertTrue(out.strip(), "the controller app has log lines")
        self.flynn("create", "ccrash")
        app = self.api("GET", "/apps/ccrash").json()
        rel = self.api("POST", "/releases", {"app_id": app["id"], "processes": {
            "boom": {"args": ["sh", "-c", "echo about to fail; sleep 0.2; exit 7"]}}}).json()
        self.api("POST", "/apps/ccrash/deploy", {"id": rel["id"]})
        self.flynn("-a", "ccrash", "scale", "boom=1")
        wait_for(lambda: "job exited with status 7" in self.flynn("-a", "ccrash", "log").stdout.decode(),
                 timeout=60, what="the crash line")
        out = self.flynn("-a", "ccrash", "log").stdout.decode()
        self.assertRegex(out, r"host\[boom\.[^\]]+\]: job exited with status 7")
        self.flynn("-a", "ccrash", "scale", "boom=0")

    def test_3_log_sink_via_cli(self):
        port = free_port()
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(4)
        srv.settimeout(30)
        try:
            r = self.flynn("cluster", "log-sink", "add", "syslog", "--format", "newline",
                           "syslog://127.0.0.1:%d" % port)
            self.assertIn("Created sink", r.stderr.decode())
            self.assertIn("syslog://127.0.0.1:%d" % port, self.flynn("cluster", "log-sink").stdout.decode())
            self.flynn("create", "csink")
            app = self.api("GET", "/apps/csink").json()
            rel = self.api("POST", "/releases", {"app_id": app["id"], "processes": {
                "p": {"args": ["sh", "-c", "for i in 1 2 3; do echo sunk $i; done; exec sleep 100000"]}}}).json()
            self.api("POST", "/apps/csink/deploy", {"id": rel["id"]})
            wait_for(lambda: request("GET", self.agg_url + "/status").json()["sinks"], what="sink active")
            self.flynn("-a", "csink", "scale", "p=1")
            conn, _ = srv.accept()
            conn.settimeout(20)
            buf = b""
            while buf.count(b"sunk ") < 3:
                d = conn.recv(65536)
                if not d:
                    break
                buf += d
            conn.close()
            mine = [l for l in buf.decode().splitlines() if " csink " in l]
            self.assertEqual([l.rsplit(" ", 2)[-2:] for l in mine], [["sunk", "1"], ["sunk", "2"], ["sunk", "3"]])
            self.flynn("-a", "csink", "scale", "p=0")
            # ours: an http sink (not in Flynn's help text)
            r = self.flynn("cluster", "log-sink", "add", "http", "http://127.0.0.1:9/logs")
            sid = re.search(r"Created sink (\S+)\.", r.stderr.decode()).group(1)
            self.assertIn("http://127.0.0.1:9/logs", self.flynn("cluster", "log-sink").stdout.decode())
            self.flynn("cluster", "log-sink", "remove", sid)
            self.assertEqual(self.flynn("cluster", "log-sink", "add", "http", "ftp://x", check=False).returncode, 1)
        finally:
            srv.close()

    def test_4_go_cli_log(self):
        if not os.path.exists(GO_CLI):
            self.skipTest("Flynn's Go CLI (shared/tools/flynn-go-cli) is not here")
        hosts_entry(self, "controller." + self.cluster.domain)
        home = os.path.join(self.cdir, "gohome")
        os.makedirs(home, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("GIT_SSL_CAINFO", "FLYNN_APP", "FLYNNRC")}
        env["HOME"] = home
        pin = re.search(r"TLS pin:\s+(\S+)", self.cluster.bootstrap_out).group(1)

        def go(*a):
            return subprocess.run([GO_CLI] + list(a), env=env, cwd=home, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, timeout=60)
        r = go("cluster", "add", "-p", pin, "default", "%s:%d" % (self.cluster.domain, self.cluster.tls_port),
               self.key)
        self.assertEqual(r.returncode, 0, r)
        self.flynn("create", "golog")
        app = self.api("GET", "/apps/golog").json()
        rel = self.api("POST", "/releases", {"app_id": app["id"], "processes": {
            "web": {"args": ["sh", "-c", "echo go one; echo go two >&2; exec sleep 100000"]}}}).json()
        self.api("POST", "/apps/golog/deploy", {"id": rel["id"]})
        self.flynn("-a", "golog", "scale", "web=1")
        wait_for(lambda: "go two" in go("-a", "golog", "log").stdout.decode(), timeout=60, what="Go CLI log")
        r = go("-a", "golog", "log", "--raw-output", "-s")
        self.assertEqual(r.stdout.decode().splitlines(), ["go one"])
        self.assertIn("go two", r.stderr.decode())
        out = go("-a", "golog", "log").stdout.decode()
        self.assertRegex(out, r"\d\.\d{6}Z app\[web\.%s-[0-9a-f-]+\]: go one" % self.host_id)
        self.flynn("-a", "golog", "scale", "web=0")
