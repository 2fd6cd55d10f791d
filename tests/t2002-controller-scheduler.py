"""flynn-controller's scheduler against a real flynn-host: formations become
jobs, crashed jobs restart with backoff, deployments replace releases.

Jobs are real containers on the host's default stack; web processes are
`python3 -m http.server` and count as up once a TCP connect to
internal_ip:port succeeds.
"""
import base64
import json
import os
import re
import signal
import socket
import time
import urllib.request
import uuid

from harness import (TestCase, HostClient, Daemon, binpath, cleanup_bridge, host_args, request,
                     wait_for)

KEY = "sched-key"
A = {"Authorization": "Basic " + base64.b64encode((":" + KEY).encode()).decode()}
WEB = {"args": ["/usr/bin/python3", "-m", "http.server", "8080"], "ports": [{"port": 8080, "proto": "tcp"}]}


class SchedulerTest(TestCase):
    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("flynn-host needs root")
        if not os.path.exists(binpath("flynn-host")):
            self.skipTest("flynn-host is not built")
        self.bridge, hargs = host_args(self.dir)
        # managed here, not by TestCase.start: see kill_jobs about its leak check
        self.hostd = Daemon("flynn-host", hargs, self.dir)
        self.host = HostClient(self.hostd.url)
        self.host_id = request("GET", self.hostd.url + "/host/status").json()["id"]
        self.cleanups_first.append(self.kill_jobs)
        self.ctl = self.start_ctl()

    def start_ctl(self):
        return self.start("flynn-controller", ["--listen", "127.0.0.1:0", "--data-dir",
                                               os.path.join(self.dir, "data"), "--key", KEY,
                                               "--host", self.hostd.url])

    def kill_jobs(self):
        """Stops what the host still runs, then kills leftovers of this host by pid."""
        for d in self.daemons:
            if d.name == "flynn-controller" and d.alive():
                d.stop()
        try:
            if self.hostd.alive():
                self.host.stop_all(timeout=10)
        except Exception as e:
            print("stop_all:", e)
        marker = ("FLYNN_JOB_ID=%s-" % self.host_id).encode()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/environ" % pid, "rb") as f:
                    if marker in f.read():
                        os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        self.hostd.stop()
        cleanup_bridge(self.bridge)
        log = self.hostd.read_log()
        for bad in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
            self.assertNotIn(bad, log, "sanitizer report in flynn-host log:\n" + log)

    def api(self, method, path, body=None):
        r = request(method, self.ctl.url + path, body, headers=A)
        self.assertEqual(r.status, 200, (method, path, r))
        return r.json() if r.body.strip() else None

    def app_with_release(self, name, procs, **app_fields):
        app = self.api("POST", "/apps", dict({"name": name}, **app_fields))
        rel = self.api("POST", "/releases", {"app_id": app["id"], "env": {"REL": "1"},
                                             "processes": procs})
        self.api("POST", "/apps/%s/deploy" % name, {"id": rel["id"]})
        return app, rel

    def jobs(self, app, release=None, state=None):
        js = self.api("GET", "/apps/%s/jobs" % app)
        return [j for j in js if (release is None or j["release"] == release)
                and (state is None or j["state"] == state)]

    def wait_jobs(self, app, n, release=None, state="up", timeout=60):
        return wait_for(lambda: (lambda js: (js or True) if len(js) == n else None)(
            self.jobs(app, release, state)), timeout=timeout, what="%d %s jobs of %s" % (n, state, app))

    def http_ok(self, ip, port=8080):
        try:
            with urllib.request.urlopen("http://%s:%d/" % (ip, port), timeout=3) as r:
                return r.status == 200
        except OSError:
            return False

    def host_job(self, job_id):
        return self.host.job(job_id)


class TestFormations(SchedulerTest):
    def test_scale_up_runs_jobs_with_env_and_metadata(self):
        app, rel = self.app_with_release("web", {"web": dict(WEB, env={"PROC": "p"})})
        sr = self.api("PUT", "/apps/web/scale/" + rel["id"],
                      {"state": "pending", "new_processes": {"web": 2}})
        up = self.wait_jobs("web", 2)
        for j in up:
            self.assertEqual((j["type"], j["host_id"], j["release"]), ("web", self.host_id, rel["id"]))
            self.assertEqual(j["id"], "%s-%s" % (self.host_id, j["uuid"]))
            hj = self.host_job(j["id"])
            self.assertIsNotNone(hj)
            spec = hj["job"]
            env = spec["config"]["env"]
            self.assertEqual((env["REL"], env["PROC"], env["FLYNN_APP_ID"], env["FLYNN_APP_NAME"],
                              env["FLYNN_RELEASE_ID"], env["FLYNN_PROCESS_TYPE"], env["FLYNN_JOB_ID"]),
                             ("1", "p", app["id"], "web", rel["id"], "web", j["id"]))
            md = spec["metadata"]
            self.assertEqual((md["flynn-controller.app"], md["flynn-controller.app_name"],
                              md["flynn-controller.release"], md["flynn-controller.type"],
                              md["flynn-controller.formation"]),
                             (app["id"], "web", rel["id"], "web", "true"))
            self.assertEqual(spec["root"], {"stack": "default"})
            self.assertTrue(self.http_ok(hj["internal_ip"]))
        # the scale request completes once the jobs are up
        wait_for(lambda: self.done(sr["id"]), what="scale request complete")
        ev = [e["data"]["state"] for e in self.events("job")]
        self.assertIn("starting", ev)
        self.assertIn("up", ev)

    def done(self, sr_id):
        r = request("GET", self.ctl.url + "/events?object_types=scale_request&object_id=" + sr_id,
                    headers=dict(A, Accept="application/json"))
        return any(e["data"]["state"] == "complete" for e in r.json())

    def events(self, types):
        r = request("GET", self.ctl.url + "/events?object_types=" + types,
                    headers=dict(A, Accept="application/json"))
        return r.json()

    def test_scale_down_stops_jobs(self):
        app, rel = self.app_with_release("down", {"web": WEB})
        self.api("PUT", "/apps/down/formations/" + rel["id"], {"processes": {"web": 3}})
        self.wait_jobs("down", 3)
        self.api("PUT", "/apps/down/formations/" + rel["id"], {"processes": {"web": 1}})
        self.wait_jobs("down", 1)
        gone = self.wait_jobs("down", 2, state="down")
        for j in gone:
            wait_for(lambda: self.host_job(j["id"])["status"] >= 2, what="host stopped " + j["id"])
        self.api("DELETE", "/apps/down/formations/" + rel["id"])
        self.wait_jobs("down", 0)
        self.wait_jobs("down", 3, state="down")

    def test_app_delete_stops_its_jobs(self):
        app, rel = self.app_with_release("gone", {"web": WEB})
        self.api("PUT", "/apps/gone/formations/" + rel["id"], {"processes": {"web": 2}})
        up = self.wait_jobs("gone", 2)
        self.api("DELETE", "/apps/gone")
        for j in up:
            self.host.wait_status(j["id"], (2, 3), timeout=20)

    def test_crashed_jobs_restart_with_backoff(self):
        app, rel = self.app_with_release("crash", {"worker": {"args": ["sh", "-c", "exit 3"]}})
        self.api("PUT", "/apps/crash/formations/" + rel["id"], {"processes": {"worker": 1}})
        crashed = wait_for(lambda: (lambda js: js if len(js) >= 4 else None)(
            [j for j in self.jobs("crash") if j["state"] == "crashed"]), timeout=90,
            what="4 crashed jobs")  # backoff 0.5+1+2 s plus four container starts
        self.assertTrue(all(j["exit_status"] == 3 for j in crashed))
        # starts are spaced further and further apart
        times = sorted(j["created_at"] for j in self.jobs("crash"))
        ts = [time.mktime(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + t[19:-1]) for t in times]
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        # each restart waits at least its backoff (0.5 s, 1 s, 2 s, ...) after the crash
        self.assertGreaterEqual(gaps[0], 0.5)
        self.assertGreaterEqual(gaps[1], 1.0)
        self.assertGreaterEqual(gaps[2], 2.0)

    def test_killed_job_is_replaced_and_restart_adopts(self):
        app, rel = self.app_with_release("kill", {"web": WEB})
        self.api("PUT", "/apps/kill/formations/" + rel["id"], {"processes": {"web": 1}})
        j = self.wait_jobs("kill", 1)[0]
        self.assertEqual(request("DELETE", self.ctl.url + "/apps/kill/jobs/" + j["id"], headers=A).status, 200)
        wait_for(lambda: [x for x in self.jobs("kill", state="up") if x["uuid"] != j["uuid"]], what="replacement")
        self.wait_jobs("kill", 1)
        # a controller restart adopts the running job instead of starting another
        self.ctl.stop()
        self.ctl = self.start_ctl()
        time.sleep(2)
        active = [x for x in self.host.jobs().values() if x["status"] <= 1 and not x["force_stop"]]
        self.assertEqual(len(active), 1, active)
        self.assertEqual(len(self.jobs("kill", state="up")), 1)


class TestDeployments(SchedulerTest):
    def deploy_and_wait(self, app, rel_id, timeout=90):
        d = self.api("POST", "/apps/%s/deploy" % app, {"id": rel_id})
        return wait_for(lambda: (lambda x: x if x.get("finished_at") else None)(
            self.api("GET", "/deployments/" + d["id"])), timeout=timeout, what="deployment done")

    def check_deploy(self, strategy):
        app, r1 = self.app_with_release("dep", {"web": WEB}, strategy=strategy)
        self.api("PUT", "/apps/dep/formations/" + r1["id"], {"processes": {"web": 2}})
        old = self.wait_jobs("dep", 2, release=r1["id"])
        r2 = self.api("POST", "/releases", {"app_id": app["id"], "env": {"REL": "2"},
                                            "processes": {"web": WEB}})
        d = self.deploy_and_wait("dep", r2["id"])
        self.assertEqual((d["status"], d["old_release"], d["new_release"], d["strategy"]),
                         ("complete", r1["id"], r2["id"], strategy))
        self.assertEqual(self.api("GET", "/apps/dep")["release"], r2["id"])
        new = self.wait_jobs("dep", 2, release=r2["id"])
        for j in new:
            self.assertEqual(self.host_job(j["id"])["job"]["config"]["env"]["REL"], "2")
        self.wait_jobs("dep", 0, release=r1["id"])
        self.assertEqual(self.api("GET", "/apps/dep/formations/" + r1["id"])["processes"], {"web": 0})
        self.assertEqual(self.api("GET", "/apps/dep/formations/" + r2["id"])["processes"], {"web": 2})
        r = request("GET", self.ctl.url + "/events?object_types=deployment&object_id=" + d["id"],
                    headers=dict(A, Accept="application/json"))
        self.assertEqual([e["data"]["status"] for e in reversed(r.json())], ["pending", "running", "complete"])
        return old, new

    def test_all_at_once(self):
        self.check_deploy("all-at-once")

    def up_range(self):
        """(lowest, highest) number of up jobs once the first two were up."""
        running, low, high, started = set(), 99, 0, False
        for e in reversed(request("GET", self.ctl.url + "/events?object_types=job",
                                  headers=dict(A, Accept="application/json")).json()):
            u, st = e["data"]["uuid"], e["data"]["state"]
            if st == "up":
                running.add(u)
            else:
                running.discard(u)
            started = started or len(running) >= 2
            if started:
                low, high = min(low, len(running)), max(high, len(running))
        return low, high

    def test_one_by_one_never_drops_below_count(self):
        self.check_deploy("one-by-one")
        low, high = self.up_range()
        self.assertGreaterEqual(low, 2)
        self.assertLessEqual(high, 3)

    def test_one_down_one_up(self):
        self.check_deploy("one-down-one-up")
        low, high = self.up_range()
        self.assertGreaterEqual(low, 1)
        self.assertLessEqual(high, 2)

    def test_in_batches(self):
        self.check_deploy("in-batches")
        low, high = self.up_range()
        self.assertGreaterEqual(low, 2)

    def test_timeout_fails_and_restores(self):
        app, r1 = self.app_with_release("slow", {"web": WEB}, deploy_timeout=4)
        self.api("PUT", "/apps/slow/formations/" + r1["id"], {"processes": {"web": 1}})
        old = self.wait_jobs("slow", 1, release=r1["id"])
        # never opens its port: never healthy
        r2 = self.api("POST", "/releases", {"app_id": app["id"], "processes": {
            "web": {"args": ["sleep", "1000"], "ports": [{"port": 8080, "proto": "tcp"}]}}})
        d = self.deploy_and_wait("slow", r2["id"])
        self.assertEqual(d["status"], "failed")
        self.assertEqual(self.api("GET", "/apps/slow")["release"], r1["id"])
        self.assertEqual(request("GET", self.ctl.url + "/apps/slow/formations/" + r2["id"], headers=A).status, 404)
        self.assertEqual([j["uuid"] for j in self.jobs("slow", release=r1["id"], state="up")], [old[0]["uuid"]])
        self.wait_jobs("slow", 0, release=r2["id"], state="starting")
        r = request("GET", self.ctl.url + "/events?object_types=deployment&object_id=" + d["id"],
                    headers=dict(A, Accept="application/json")).json()
        self.assertEqual(r[0]["data"]["status"], "failed")
        self.assertIn("timed out", r[0]["data"]["error"])


GO_CLI = "/work/shared/tools/flynn-go-cli"


class TestGoCLIScale(SchedulerTest):
    """`flynn scale` (waiting for the scale request), `ps` and `kill` with real jobs."""

    def start_ctl(self):
        import importlib.util
        import shutil
        import tempfile
        if not os.path.exists(GO_CLI):
            self.skipTest("Flynn's Go CLI (shared/tools/flynn-go-cli) is not here")
        if not os.access("/etc/hosts", os.W_OK) or not shutil.which("openssl"):
            self.skipTest("needs a writable /etc/hosts and the openssl CLI")
        here = os.path.dirname(os.path.abspath(__file__))
        spec = importlib.util.spec_from_file_location("t2001", os.path.join(here, "t2001-controller-tls-cli.py"))
        t2001 = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(t2001)
        self.domain = "t2002-%s.test" % uuid.uuid4().hex[:8]
        self.pin = t2001.make_certs(self.dir, self.domain)
        ctl = self.start("flynn-controller", [
            "--listen", "127.0.0.1:0", "--data-dir", os.path.join(self.dir, "data"), "--key", KEY,
            "--host", self.hostd.url, "--tls-listen", "127.0.0.1:0",
            "--tls-cert", os.path.join(self.dir, "tls.pem"), "--tls-key", os.path.join(self.dir, "tls.key"),
            "--ca-cert", os.path.join(self.dir, "ca.pem")])
        m = wait_for(lambda: re.search(r"tls: listening on [\d.]+:(\d+)", ctl.read_log()), what="tls port")
        self.tls_port = int(m.group(1))
        self.hosts_line = "127.0.0.1 controller.%s\n" % self.domain
        with open("/etc/hosts", "a") as f:
            f.write(self.hosts_line)
        self.cleanups_first.append(self.remove_hosts_line)
        self.home = tempfile.mkdtemp(dir=self.dir)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("GIT_SSL_CAINFO", "FLYNN_APP", "FLYNN_CLUSTER")}
        self.env.update({"HOME": self.home, "FLYNNRC": os.path.join(self.home, ".flynnrc")})
        return ctl

    def remove_hosts_line(self):
        with open("/etc/hosts") as f:
            lines = f.readlines()
        with open("/etc/hosts", "w") as f:
            f.writelines(l for l in lines if l != self.hosts_line)

    def flynn(self, *args, timeout=60):
        import subprocess
        p = subprocess.run([GO_CLI] + list(args), env=self.env, cwd=self.home, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        self.assertEqual(p.returncode, 0, (args, p.stdout, p.stderr))
        return p.stdout.decode() + p.stderr.decode()

    def test_scale_ps_kill(self):
        self.flynn("cluster", "add", "-p", self.pin, "default", "%s:%d" % (self.domain, self.tls_port), KEY)
        app, rel = self.app_with_release("goweb", {"web": WEB})
        out = self.flynn("-a", "goweb", "scale", "web=2")
        self.assertIn("scaling web: 0=>2", out)
        self.assertEqual(len(re.findall(r"==> web \S+ up", out)), 2, out)
        self.assertIn("scale completed", out)
        out = self.flynn("-a", "goweb", "ps")
        ups = [l for l in out.splitlines() if " up " in l]
        self.assertEqual(len(ups), 2, out)
        jid = ups[0].split()[0]
        self.assertTrue(jid.startswith(self.host_id + "-"), jid)
        self.flynn("-a", "goweb", "kill", jid)
        wait_for(lambda: jid not in [j["id"] for j in self.jobs("goweb", state="up")] and
                 len(self.jobs("goweb", state="up")) == 2, what="killed job replaced")
        # env set deploys a new release: the running jobs are replaced
        out = self.flynn("-a", "goweb", "env", "set", "FOO=bar")
        self.assertIn("Created release", out)
        cur = self.api("GET", "/apps/goweb/release")
        self.assertEqual(cur["env"]["FOO"], "bar")
        new = self.wait_jobs("goweb", 2, release=cur["id"])
        for j in new:
            self.assertEqual(self.host_job(j["id"])["job"]["config"]["env"]["FOO"], "bar")
        self.wait_jobs("goweb", 0, release=rel["id"])
        deps = self.api("GET", "/apps/goweb/deployments")
        self.assertEqual(deps[0]["status"], "complete")
        out = self.flynn("-a", "goweb", "scale", "web=0")
        self.assertIn("scaling web: 2=>0", out)
        self.wait_jobs("goweb", 0)

    def test_run_detached(self):
        self.flynn("cluster", "add", "-p", self.pin, "default", "%s:%d" % (self.domain, self.tls_port), KEY)
        app = self.api("POST", "/apps", {"name": "gorun"})
        art = self.api("POST", "/artifacts", {"type": "flynn", "uri": "http://blob/gorun.json"})
        rel = self.api("POST", "/releases", {"app_id": app["id"], "artifacts": [art["id"]],
                                             "env": {"GREETING": "hello"}, "processes": {}})
        self.api("PUT", "/apps/gorun/release", {"id": rel["id"]})
        out = self.flynn("-a", "gorun", "run", "-d", "sh", "-c", "echo $GREETING from run")
        jid = out.split()[0]
        self.assertTrue(jid.startswith(self.host_id + "-"), out)
        done = wait_for(lambda: (lambda j: j if j["state"] == "down" else None)(
            self.api("GET", "/apps/gorun/jobs/" + jid)), what="run -d job done")
        self.assertEqual(done["exit_status"], 0)
        self.assertEqual(self.host.log(jid).strip(), "hello from run")
        out = self.flynn("-a", "gorun", "run", "-d", "sh", "-c", "echo second >&2")
        jid2 = out.split()[0]
        wait_for(lambda: self.api("GET", "/apps/gorun/jobs/" + jid2)["state"] == "down", what="second job")
        out = self.flynn("-a", "gorun", "log")
        self.assertRegex(out, r"app\[\.%s\]: hello from run" % re.escape(jid))
        self.assertRegex(out, r"app\[\.%s\]: second" % re.escape(jid2))
        self.assertLess(out.index("hello from run"), out.index("second"))
        out = self.flynn("-a", "gorun", "log", "-n", "1")
        self.assertNotIn("hello from run", out)
        self.assertIn("second", out)



class TestOneOffJobs(SchedulerTest):
    def test_detached_run(self):
        app, rel = self.app_with_release("run", {"web": WEB})
        body = {"release": rel["id"], "release_env": True, "args": ["sh", "-c", "echo $REL $X; exit 4"],
                "env": {"X": "y"}, "disable_log": True, "entrypoint": ["sh"], "cmd": ["-c", "ignored"]}
        j = self.api("POST", "/apps/run/jobs", body)
        self.assertEqual((j["release"], j["args"][0], j["host_id"]), (rel["id"], "sh", self.host_id))
        self.assertEqual(j["id"], "%s-%s" % (self.host_id, j["uuid"]))
        done = wait_for(lambda: (lambda x: x if x["state"] in ("down", "crashed") else None)(
            self.api("GET", "/apps/run/jobs/" + j["id"])), what="one-off job done")
        self.assertEqual((done["state"], done["exit_status"], done["type"]), ("crashed", 4, ""))
        self.assertEqual(self.host.log(j["id"]).strip(), "1 y")
        # the app log merges the jobs' output in Flynn's NDJSON form, and the host's
        # line saying why the job crashed (source "host")
        r = request("GET", self.ctl.url + "/apps/run/log?stream_types=stdout,stderr", headers=A)
        self.assertEqual(r.status, 200, r)
        lines = [json.loads(l) for l in r.body.decode().splitlines()]
        self.assertEqual([(l["msg"], l["job_id"], l["stream"], l["source"]) for l in lines],
                         [("1 y", j["id"], "stdout", "app"),
                          ("job exited with status 4", j["id"], "stderr", "host")])
        self.assertEqual(lines[0]["host_id"], self.host_id)
        self.assertNotIn("process_type", lines[0])
        self.assertTrue(lines[0]["timestamp"].endswith("Z"))
        r = request("GET", self.ctl.url + "/apps/run/log", headers=dict(A, Accept="text/event-stream"))
        self.assertTrue(r.headers["Content-Type"].startswith("text/event-stream"))
        chunks = [json.loads(x[6:]) for x in r.body.decode().split("\n\n") if x.startswith("data: ")]
        self.assertEqual([(c["event"], c.get("data", {}).get("msg")) for c in chunks],
                         [("message", "1 y"), ("message", "job exited with status 4"), ("eof", None)])
        r = request("GET", self.ctl.url + "/apps/run/log?stream_types=stdout", headers=A)
        self.assertEqual([json.loads(l)["msg"] for l in r.body.decode().splitlines()], ["1 y"])
        self.assertEqual(request("GET", self.ctl.url + "/apps/run/log?lines=x", headers=A).status, 400)
        time.sleep(1.5)  # never restarted
        self.assertEqual(len(self.jobs("run")), 1)
        # entrypoint + cmd alone still make a command; only flynn-attach/0 upgrades
        j2 = self.api("POST", "/apps/run/jobs", {"release": rel["id"], "entrypoint": ["true"]})
        self.assertEqual(j2["args"], ["true"])
        r = request("POST", self.ctl.url + "/apps/run/jobs", {"release": rel["id"], "args": ["true"]},
                    headers=dict(A, Upgrade="websocket", Connection="upgrade"))
        self.assertEqual(r.status, 400)
        for bad in ({"args": ["true"]}, {"release": str(uuid.uuid4()), "args": ["true"]},
                    {"release": rel["id"], "args": [1]}, {"release": rel["id"], "args": ["x"], "env": {"a": 1}},
                    {"release": rel["id"]}):
            r = request("POST", self.ctl.url + "/apps/run/jobs", bad, headers=A)
            self.assertEqual(r.status, 400, (bad, r))
            self.assertEqual(r.json()["code"], "validation_error")

    def attach(self, body, stdin=b""):
        """POST /apps/run/jobs with Upgrade: flynn-attach/0 on a raw connection, as the
        CLI does (flynn-api.md §7.2); sends stdin and its EOF, returns (status line,
        frames until the last)."""
        host, port = self.ctl.listen.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=30)
        data = json.dumps(body).encode()
        s.sendall(b"POST /apps/run/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
                  b"Connection: upgrade\r\nContent-Type: application/json\r\nUpgrade: flynn-attach/0\r\n"
                  b"Content-Length: %d\r\n\r\n" % (A["Authorization"].encode(), len(data)) + data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, buf = buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n")[0]
        if b" 101 " not in status:
            return status, head + b"\r\n\r\n" + buf
        if stdin:
            s.sendall(b"\x03\x00" + len(stdin).to_bytes(4, "big") + stdin)
        s.sendall(b"\x03\x00\x00\x00\x00\x00")
        frames = []
        while True:
            if buf[:1] == b"\x03" and len(buf) >= 6 and len(buf) >= 6 + int.from_bytes(buf[2:6], "big"):
                n = int.from_bytes(buf[2:6], "big")
                frames.append(("data", buf[1], buf[6:6 + n]))
                buf = buf[6 + n:]
            elif buf[:1] == b"\x05" and len(buf) >= 5:
                frames.append(("exit", int.from_bytes(buf[1:5], "big")))
                s.close()
                return status, frames
            else:
                d = s.recv(65536)
                if not d:
                    frames.append(("eof",))
                    s.close()
                    return status, frames
                buf += d

    def test_attached_run(self):
        app, rel = self.app_with_release("run", {})
        status, frames = self.attach({"release": rel["id"], "release_env": True,
                                      "args": ["sh", "-c", "cat; echo $REL >&2; exit 3"]}, b"hi\n")
        self.assertIn(b"101", status)
        self.assertEqual(frames, [("data", 1, b"hi\n"), ("data", 2, b"1\n"), ("exit", 3)])
        [job] = self.jobs("run")
        self.assertEqual(job["type"], "")
        host_job = self.host.job(job["id"])["job"]["config"]
        self.assertEqual((host_job["stdin"], host_job["tty"]), (True, False))
        wait_for(lambda: self.api("GET", "/apps/run/jobs/" + job["id"])["state"] == "crashed",
                 what="attached job recorded")
        # a command that does not exist is a shell's 127
        status, frames = self.attach({"release": rel["id"], "args": ["no-such-cmd"]})
        self.assertEqual(frames, [("data", 2, b"no-such-cmd: command not found\n"), ("exit", 127)])
        # a release that does not exist is refused before any upgrade
        status, rest = self.attach({"release": str(uuid.uuid4()), "args": ["true"]})
        self.assertIn(b"400", status)


class TestTwoHosts(SchedulerTest):
    def setUp(self):
        TestCase.setUp(self)
        if os.geteuid() != 0 or not os.path.exists(binpath("flynn-host")):
            self.skipTest("flynn-host needs root and a build")
        self.hosts = []
        for i in range(2):
            bridge, hargs = host_args(os.path.join(self.dir, "h%d" % i))
            os.makedirs(os.path.join(self.dir, "h%d" % i), exist_ok=True)
            d = Daemon("flynn-host", hargs, os.path.join(self.dir, "h%d" % i))
            hid = request("GET", d.url + "/host/status").json()["id"]
            self.hosts.append((d, HostClient(d.url), bridge, hid))
        self.cleanups_first.append(self.stop_hosts)
        self.ctl = self.start("flynn-controller", ["--listen", "127.0.0.1:0", "--data-dir",
                                                   os.path.join(self.dir, "data"), "--key", KEY,
                                                   "--host", self.hosts[0][0].url,
                                                   "--host", self.hosts[1][0].url])

    def stop_hosts(self):
        for d in self.daemons:
            if d.name == "flynn-controller" and d.alive():
                d.stop()
        for d, hc, bridge, hid in self.hosts:
            if d.alive():
                try:
                    hc.stop_all(timeout=10)
                except Exception as e:
                    print("stop_all:", e)
                d.stop()
            marker = ("FLYNN_JOB_ID=%s-" % hid).encode()
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open("/proc/%s/environ" % pid, "rb") as f:
                            if marker in f.read():
                                os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
            cleanup_bridge(bridge)
            log = d.read_log()
            for bad in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
                self.assertNotIn(bad, log)

    def test_omni_runs_on_every_host(self):
        agent = {"args": ["sh", "-c", "exec sleep 1000"], "omni": True}
        app, rel = self.app_with_release("omni", {"agent": agent, "web": WEB})
        self.api("PUT", "/apps/omni/formations/" + rel["id"], {"processes": {"agent": 1, "web": 1}})
        up = self.wait_jobs("omni", 3)
        agents = sorted(j["host_id"] for j in up if j["type"] == "agent")
        self.assertEqual(agents, sorted([self.hosts[0][3], self.hosts[1][3]]))
        self.api("PUT", "/apps/omni/formations/" + rel["id"], {"processes": {"agent": 2, "web": 1}})
        up = self.wait_jobs("omni", 5)
        for hid in (self.hosts[0][3], self.hosts[1][3]):
            self.assertEqual(len([j for j in up if j["type"] == "agent" and j["host_id"] == hid]), 2)

    def test_spread_and_host_loss(self):
        app, rel = self.app_with_release("spread", {"web": WEB})
        self.api("PUT", "/apps/spread/formations/" + rel["id"], {"processes": {"web": 4}})
        up = self.wait_jobs("spread", 4)
        per_host = {}
        for j in up:
            per_host[j["host_id"]] = per_host.get(j["host_id"], 0) + 1
        self.assertEqual(per_host, {self.hosts[0][3]: 2, self.hosts[1][3]: 2})
        # host 1 goes away (its daemon stops; say the machine died)
        self.hosts[1][0].proc.send_signal(signal.SIGKILL)
        self.hosts[1][0].proc.wait()
        survivors = self.hosts[0][3]
        wait_for(lambda: [j["host_id"] for j in self.jobs("spread", state="up")] == [survivors] * 4,
                 timeout=60, what="all 4 jobs on the surviving host")
        lost = [j for j in self.jobs("spread") if j["host_id"] == self.hosts[1][3]]
        self.assertEqual(len(lost), 2)
        self.assertTrue(all(j["state"] == "crashed" and j["host_error"] == "host unreachable" for j in lost))


class TestControllerDown(SchedulerTest):
    def test_exits_while_down_are_recorded_after_restart(self):
        app, rel = self.app_with_release("away", {"web": WEB})
        j = self.api("POST", "/apps/away/jobs", {"release": rel["id"], "args": ["sh", "-c", "sleep 1; exit 0"]})
        wait_for(lambda: self.host_job(j["id"]) is not None, what="job placed")
        self.ctl.stop()
        hj = self.host.wait_status(j["id"], (2, 3, 4), timeout=60)
        want = {2: "down", 3: "crashed", 4: "failed"}[hj["status"]]  # 2 unless the host is in trouble
        self.ctl = self.start_ctl()
        done = wait_for(lambda: (lambda x: x if x["state"] == want else None)(
            self.api("GET", "/apps/away/jobs/" + j["id"])), what="exit recorded after restart")
        self.assertEqual(done.get("exit_status"), hj.get("exit_status"))


class TestLogFollow(SchedulerTest):
    def read_until(self, s, pred, timeout=15):
        buf = b""
        deadline = time.time() + timeout
        s.settimeout(0.5)
        while time.time() < deadline:
            try:
                d = s.recv(65536)
            except socket.timeout:
                d = None
            if d == b"":
                break
            if d:
                buf += d
                if pred(buf):
                    return buf
        raise AssertionError("log stream did not deliver; got %r" % buf[-2000:])

    def test_follow_includes_jobs_started_later(self):
        tick = {"args": ["sh", "-c", "i=0; while true; do echo $FLYNN_PROCESS_TYPE-$i; i=$((i+1)); sleep 0.2; done"]}
        app, rel = self.app_with_release("tail", {"a": tick, "b": tick})
        self.api("PUT", "/apps/tail/formations/" + rel["id"], {"processes": {"a": 1}})
        self.wait_jobs("tail", 1)
        port = int(self.ctl.url.rsplit(":", 1)[1])
        s = socket.create_connection(("127.0.0.1", port))
        try:
            s.sendall(("GET /apps/tail/log?follow=true&stream_types=stdout HTTP/1.1\r\nHost: x\r\n"
                       "Authorization: %s\r\n\r\n" % A["Authorization"]).encode())
            buf = self.read_until(s, lambda b: b.count(b'"msg":"a-') >= 3)
            self.assertIn(b"200 OK", buf)
            self.assertIn(b'"process_type":"a"', buf)
            self.api("PUT", "/apps/tail/formations/" + rel["id"], {"processes": {"a": 1, "b": 1}})
            buf = self.read_until(s, lambda b: b'"msg":"b-' in b)
            line = [l for l in buf.split(b"\n") if b'"msg":"b-' in l][0]
            # chunked framing may split lines; take the JSON part
            obj = json.loads(line[line.index(b"{"):])
            self.assertEqual((obj["process_type"], obj["stream"], obj["source"]), ("b", "stdout", "app"))
        finally:
            s.close()
        # the controller is fine after the client left
        time.sleep(1.2)
        self.assertEqual(len(self.jobs("tail", state="up")), 2)
