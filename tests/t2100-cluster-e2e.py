"""End to end on a bootstrapped single-host cluster (scripts/bootstrap, as `make up`
runs it), driven by our `flynn` CLI: apps, releases, scale, kill, env, rollback,
delete, a one-by-one deploy under load, and restarts of the controller and the host."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

from harness import (BIN, ROOT, Cluster, Daemon, HostClient, HostTestCase, request, wait_for)


# a web process that serves $FOO, so a test sees which env a job runs with
WEB = ["sh", "-c", "mkdir -p /tmp/w && echo \"foo=$FOO\" > /tmp/w/index.html && "
                   "exec python3 -m http.server --directory /tmp/w $PORT"]


class TestCluster(HostTestCase):
    stop_timeout = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        c = Cluster(cls.cdir, cls.hostd.url, "e2e")
        cls.cluster = c
        cls.env, cls.domain, cls.home, cls.key, cls.ctl = c.env, c.domain, c.home, c.key, c.ctl
        cls.ctl_port, cls.tls_port, cls.bootstrap_out = c.ctl_port, c.tls_port, c.bootstrap_out

    @classmethod
    def tearDownClass(cls):
        # the controller job resurrects itself: stop it through the host API first
        super().tearDownClass()

    def flynn(self, *args, check=True, timeout=90):
        r = subprocess.run([os.path.join(BIN, "flynn")] + list(args), env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, cwd=self.home)
        if check and r.returncode != 0:
            raise AssertionError("flynn %s: exit %d\n%s%s" % (" ".join(args), r.returncode,
                                                                r.stdout.decode(), r.stderr.decode()))
        return r.stdout.decode()

    def api(self, method, path, body=None):
        import base64
        h = {"Authorization": "Basic " + base64.b64encode((":" + self.key).encode()).decode()}
        return request(method, self.ctl + path, body, headers=h)

    def app_jobs(self, app, typ=None):
        """The app's running jobs on the host (not what the controller believes)."""
        out = []
        for jid, j in self.host.jobs(active=True).items():
            md = j["job"].get("metadata", {})
            if md.get("flynn-controller.app_name") == app and (typ is None or md.get("flynn-controller.type") == typ):
                out.append(j)
        return out

    def web_values(self, app):
        vals = []
        for j in self.app_jobs(app, "web"):
            try:
                vals.append(request("GET", "http://%s:8080/" % j["internal_ip"], timeout=2).body.decode().strip())
            except OSError:
                vals.append("")
        return sorted(vals)

    def test_1_bootstrap_output_and_system_app(self):
        for what in ("Cluster domain:  " + self.domain, "Cluster key:     " + self.key, "TLS pin:",
                     "flynn cluster add -p"):
            self.assertIn(what, self.bootstrap_out)
        self.assertIn("controller", self.flynn("apps"))
        ps = self.flynn("-a", "controller", "ps")
        self.assertEqual(len([l for l in ps.splitlines() if " web " in l and " up " in l]), 1, ps)

    def test_2_app_lifecycle(self):
        self.flynn("create", "e2eapp")
        app = self.api("GET", "/apps/e2eapp").json()
        rel = self.api("POST", "/releases", {"app_id": app["id"], "env": {"FOO": "one"}, "processes": {
            "web": {"args": WEB, "ports": [{"port": 8080, "proto": "tcp"}]},
            "worker": {"args": ["sleep", "100000"]}}}).json()
        self.assertEqual(self.api("POST", "/apps/e2eapp/deploy", {"id": rel["id"]}).status, 200)
        self.flynn("-a", "e2eapp", "scale", "web=3", "worker=1")
        ps = self.flynn("-a", "e2eapp", "ps")
        self.assertEqual(len([l for l in ps.splitlines() if " web " in l and " up " in l]), 3, ps)
        self.assertEqual(len([l for l in ps.splitlines() if " worker " in l and " up " in l]), 1, ps)
        self.assertEqual(len(self.app_jobs("e2eapp")), 4)
        wait_for(lambda: self.web_values("e2eapp") == ["foo=one"] * 3, what="web jobs serving")

        # kill a job: it is replaced
        victim = self.app_jobs("e2eapp", "web")[0]["id"]
        self.flynn("-a", "e2eapp", "kill", victim)
        wait_for(lambda: len([j for j in self.app_jobs("e2eapp", "web") if j["id"] != victim]) == 3,
                 what="killed job replaced")

        # env set: a new release, and the jobs restart with the new value
        self.flynn("-a", "e2eapp", "env", "set", "FOO=two")
        self.assertEqual(self.flynn("-a", "e2eapp", "env", "get", "FOO").strip(), "two")
        wait_for(lambda: self.web_values("e2eapp") == ["foo=two"] * 3, timeout=60, what="jobs on the new env")

        # roll back to the first release
        self.flynn("-a", "e2eapp", "release", "rollback", "-y", rel["id"])
        wait_for(lambda: self.web_values("e2eapp") == ["foo=one"] * 3, timeout=60, what="rolled back")

        # scale to zero, then delete: nothing of it is left running
        self.flynn("-a", "e2eapp", "scale", "web=0", "worker=0")
        wait_for(lambda: self.app_jobs("e2eapp") == [], what="scaled to zero")
        self.flynn("-a", "e2eapp", "scale", "web=1")
        self.flynn("-a", "e2eapp", "delete", "-y")
        wait_for(lambda: self.app_jobs("e2eapp") == [], what="deleted app's jobs gone")
        self.assertNotIn("e2eapp", self.flynn("apps"))

    def test_3_one_by_one_deploy_without_failed_requests(self):
        self.flynn("create", "e2edeploy")
        app = self.api("GET", "/apps/e2edeploy").json()
        self.api("POST", "/apps/e2edeploy", {"strategy": "one-by-one"})
        rel = self.api("POST", "/releases", {"app_id": app["id"], "env": {"FOO": "a"}, "processes": {
            "web": {"args": WEB, "ports": [{"port": 8080, "proto": "tcp"}]}}}).json()
        self.api("POST", "/apps/e2edeploy/deploy", {"id": rel["id"]})
        self.flynn("-a", "e2edeploy", "scale", "web=2")
        # a client requests every backend in a loop, as the router will: the jobs the
        # controller reports up (health check passed), at their addresses on the host
        stop = threading.Event()
        results = {"ok": 0, "failed": []}

        def loop():
            while not stop.is_set():
                up = set(j["id"] for j in self.api("GET", "/apps/e2edeploy/jobs").json() if j["state"] == "up")
                jobs = self.app_jobs("e2edeploy", "web")
                for j in jobs:
                    if j["status"] != 1 or j["id"] not in up:
                        continue
                    try:
                        r = request("GET", "http://%s:8080/" % j["internal_ip"], timeout=3)
                        if r.status == 200:
                            results["ok"] += 1
                        else:
                            results["failed"].append(r.status)
                    except OSError as e:
                        # a job that the deploy is stopping right now may refuse; count only
                        # failures of jobs that are still listed as running afterwards
                        still = self.host.job(j["id"])
                        if still and still["status"] == 1 and not still["force_stop"]:
                            results["failed"].append(str(e))
                time.sleep(0.02)

        t = threading.Thread(target=loop)
        t.start()
        try:
            time.sleep(1)
            self.flynn("-a", "e2edeploy", "env", "set", "FOO=b")
            wait_for(lambda: self.web_values("e2edeploy") == ["foo=b"] * 2, timeout=60, what="deploy done")
            time.sleep(1)
        finally:
            stop.set()
            t.join()
        self.assertGreater(results["ok"], 20)
        self.assertEqual(results["failed"], [])
        self.flynn("-a", "e2edeploy", "delete", "-y")

    def tls_get(self, host, path="/"):
        """GET through the cluster's router over TLS with SNI host; (status, body, peer cert)."""
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = socket.create_connection(("127.0.0.1", self.tls_port), timeout=10)
        s = ctx.wrap_socket(sock, server_hostname=host)
        der = s.getpeercert(binary_form=True)
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host)).encode())
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        self.last_head = head.decode(errors="replace")
        return int(head.split()[1]), body.decode(errors="replace"), der

    def test_3b_routes_through_the_router(self):
        """flynn route end to end: the default route, an added domain with its own
        certificate, an update, a removal, all through the router bootstrap started."""
        import ssl
        self.flynn("create", "e2eroute")
        app = self.api("GET", "/apps/e2eroute").json()
        rel = self.api("POST", "/releases", {"app_id": app["id"], "env": {"FOO": "routed"}, "processes": {
            "web": {"args": WEB, "ports": [{"port": 8080, "proto": "tcp"}]}}}).json()
        self.api("POST", "/apps/e2eroute/deploy", {"id": rel["id"]})
        self.flynn("-a", "e2eroute", "scale", "web=1")
        host = "e2eroute." + self.domain
        wait_for(lambda: self.tls_get(host)[:2] == (200, "foo=routed\n"), timeout=30,
                 what="default route serving")
        self.assertIn(host, self.flynn("-a", "e2eroute", "route"))
        # a domain of the app's own with its own certificate (SNI picks it)
        cdir = os.path.join(self.cdir, "routecert")
        os.makedirs(cdir, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", os.path.join(cdir, "k.pem"), "-out", os.path.join(cdir, "c.pem"),
                        "-subj", "/CN=shop.example.org", "-addext", "subjectAltName=DNS:shop.example.org"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = self.flynn("-a", "e2eroute", "route", "add", "http", "-c", os.path.join(cdir, "c.pem"),
                         "-k", os.path.join(cdir, "k.pem"), "shop.example.org")
        route_id = out.strip().split()[-1]
        wait_for(lambda: self.tls_get("shop.example.org")[0] == 200, timeout=5, what="new route")
        st, body, der = self.tls_get("shop.example.org")
        self.assertEqual(body, "foo=routed\n")
        self.assertEqual(der, ssl.PEM_cert_to_DER_cert(open(os.path.join(cdir, "c.pem")).read()),
                         "the route's own certificate is served")
        # the cluster certificate for the default domain
        self.assertNotEqual(self.tls_get(host)[2], der)
        # sticky on, then removal: the domain is unknown again (404 page of the router)
        self.flynn("-a", "e2eroute", "route", "update", route_id, "--sticky")
        self.assertNotIn("_backend=", self.last_head)
        wait_for(lambda: self.tls_get("shop.example.org")[0] == 200 and "Set-Cookie: _backend=" in self.last_head,
                 timeout=5, what="sticky cookie after the update")
        self.flynn("-a", "e2eroute", "route", "remove", route_id)
        wait_for(lambda: self.tls_get("shop.example.org")[0] == 404, timeout=5, what="route removed")
        self.flynn("-a", "e2eroute", "delete", "-y")
        wait_for(lambda: self.tls_get(host)[0] == 404, timeout=10, what="deleted app's route gone")

    def test_4_controller_killed_is_resurrected_and_loses_nothing(self):
        self.flynn("create", "e2esurvivor")
        ctl = [j for j in self.host.jobs(active=True).values()
               if j["job"]["metadata"].get("flynn-controller.app_name") == "controller"]
        self.assertEqual(len(ctl), 1)
        os.kill(ctl[0]["pid"], signal.SIGKILL)
        wait_for(lambda: request("GET", self.ctl + "/ping", timeout=1).status == 200 if self._up() else False,
                 timeout=30, what="controller back")
        self.assertIn("e2esurvivor", self.flynn("apps"))
        ctl2 = [j for j in self.host.jobs(active=True).values()
                if j["job"]["metadata"].get("flynn-controller.app_name") == "controller"]
        self.assertEqual(len(ctl2), 1)
        self.assertNotEqual(ctl2[0]["id"], ctl[0]["id"])
        self.flynn("-a", "e2esurvivor", "delete", "-y")

    def _up(self):
        try:
            request("GET", self.ctl + "/ping", timeout=1)
            return True
        except OSError:
            return False

    def test_5_host_restart_brings_the_cluster_back(self):
        self.flynn("create", "e2ehost")
        app = self.api("GET", "/apps/e2ehost").json()
        rel = self.api("POST", "/releases", {"app_id": app["id"], "processes": {
            "worker": {"args": ["sleep", "100000"]}}}).json()
        self.api("POST", "/apps/e2ehost/deploy", {"id": rel["id"]})
        self.flynn("-a", "e2ehost", "scale", "worker=2")
        before = sorted(j["id"] for j in self.app_jobs("e2ehost"))
        listen = self.hostd.listen
        self.hostd.stop()
        # same address: the controller knows its host by URL, as with port 1113
        args = [listen if a == "127.0.0.1:0" else a for a in self.hargs]
        type(self).hostd = Daemon("flynn-host", args, self.cdir)
        type(self).host = HostClient(self.hostd.url)
        # jobs are re-adopted, and the controller (which lost its host stream) resyncs
        self.assertEqual(sorted(j["id"] for j in self.app_jobs("e2ehost")), before)
        wait_for(self._up, what="controller up")
        # a job killed now is replaced: the scheduler follows the new daemon
        victim = before[0]
        os.kill(self.host.job(victim)["pid"], signal.SIGKILL)
        wait_for(lambda: len([j for j in self.app_jobs("e2ehost") if j["id"] != victim]) == 2, timeout=60,
                 what="formation met again after the host restart")
        self.flynn("-a", "e2ehost", "delete", "-y")
