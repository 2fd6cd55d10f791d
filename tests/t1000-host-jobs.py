"""flynn-host: jobs run in real crun containers with the isolation we promise."""
import json
import os
import time

from harness import HostTestCase, request, wait_for

# Docker's default capability set, as bits of CapEff
DOCKER_CAPS = 0x00000000a80425fb


class TestJobBasics(HostTestCase):
    def test_output_and_exit_status(self):
        j, out = self.run_job(["sh", "-c", "echo hello; echo oops >&2; exit 3"])
        self.assertEqual(j["status"], 3)  # crashed: non-zero exit
        self.assertEqual(j["exit_status"], 3)
        self.assertEqual(out, "hello\noops\n")
        j, out = self.run_job(["true"])
        self.assertEqual(j["status"], 2)
        self.assertEqual(j["exit_status"], 0)
        self.assertTrue(j["started_at"] and j["ended_at"] and j["created_at"])

    def test_log_json_and_lines(self):
        j, _ = self.run_job(["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; echo e >&2"])
        raw = self.host.log(j["id"], "?format=json")
        lines = [json.loads(l) for l in raw.splitlines()]
        self.assertEqual([l["msg"] for l in lines], ["line1", "line2", "line3", "line4", "line5", "e"])
        self.assertEqual(lines[-1]["stream"], "stderr")
        self.assertEqual(lines[0]["stream"], "stdout")
        self.assertTrue(lines[0]["time"].endswith("Z"))
        self.assertEqual(self.host.log(j["id"], "?lines=2"), "line5\ne\n")
        r = request("GET", self.hostd.url + "/host/jobs/%s/log?lines=x" % j["id"])
        self.assertEqual(r.status, 400)

    def test_log_follow_streams_until_exit(self):
        jid, _ = self.start_job(["sh", "-c", "echo a; sleep 1; echo b"])
        t0 = time.time()
        out = self.host.log(jid, "?follow=true")
        self.assertEqual(out, "a\nb\n")
        self.assertGreater(time.time() - t0, 0.5)

    def test_env_and_port(self):
        j, out = self.run_job(["sh", "-c", 'echo "$FOO|$PORT|$PORT_0|$FLYNN_JOB_ID|$EXTERNAL_IP"'],
                              config={"env": {"FOO": "bar baz"}, "ports": [{"port": 5555, "proto": "tcp"}]})
        foo, port, port0, jid, ip = out.strip().split("|")
        self.assertEqual((foo, port, port0, jid), ("bar baz", "5555", "5555", j["id"]))
        self.assertEqual(ip, j["internal_ip"])
        j, out = self.run_job(["sh", "-c", 'echo $PORT'])
        self.assertEqual(out.strip(), "8080")

    def test_pid1_and_namespaces(self):
        j, out = self.run_job(["sh", "-c", "echo $$; hostname; readlink /proc/self/ns/net /proc/self/ns/mnt /proc/self/ns/ipc /proc/self/ns/uts"])
        lines = out.split()
        self.assertEqual(lines[0], "1")
        self.assertEqual(lines[1], j["id"].split("-", 1)[1])
        host_ns = [os.readlink("/proc/self/ns/" + n) for n in ("net", "mnt", "ipc", "uts")]
        for mine, theirs in zip(host_ns, lines[2:]):
            self.assertNotEqual(mine, theirs)

    def test_capabilities_seccomp_nonewprivs(self):
        j, out = self.run_job(["sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"])
        st = dict(l.split(":\t") for l in out.splitlines())
        self.assertEqual(int(st["CapEff"], 16), DOCKER_CAPS)
        self.assertEqual(int(st["CapBnd"], 16), DOCKER_CAPS)
        self.assertEqual(st["NoNewPrivs"], "1")
        self.assertEqual(st["Seccomp"], "2")
        # denied syscalls: unshare and mount fail even for root in the job
        j, out = self.run_job(["sh", "-c", "unshare -n true; echo rc=$?; mount -t tmpfs x /mnt; echo rc=$?"])
        self.assertIn("rc=1", out)
        self.assertNotIn("rc=0", out)
        self.assertIn("Operation not permitted", out)

    def test_filesystem(self):
        script = ("touch /usr/x 2>/dev/null && echo usr-writable || echo usr-ro; "
                  "echo hi > /rootfile && cat /rootfile; "
                  "grep ' /tmp ' /proc/mounts | cut -d' ' -f3; "
                  "test -e /etc/shadow && echo shadow-present || echo no-shadow; "
                  "ls /app >/dev/null && echo app-dir; "
                  "/usr/bin/python3 -c 'print(6*7)'")
        j, out = self.run_job(["sh", "-c", script])
        self.assertEqual(out.split(), ["usr-ro", "hi", "tmpfs", "no-shadow", "app-dir", "42"])
        # the writable layer belongs to one job: another job does not see /rootfile
        j, out = self.run_job(["sh", "-c", "test -e /rootfile && echo seen || echo fresh"])
        self.assertEqual(out.strip(), "fresh")

    def test_missing_command_fails_with_reason(self):
        j, out = self.run_job(["/no/such/binary"])
        self.assertEqual(j["status"], 4)
        self.assertIn("/no/such/binary", j["error"])

    def test_working_dir_and_user(self):
        j, out = self.run_job(["sh", "-c", "pwd; id -u; id -g"], config={"working_dir": "/tmp", "uid": 65534, "gid": 65534})
        self.assertEqual(out.split(), ["/tmp", "65534", "65534"])

    def test_bind_mount(self):
        src = os.path.join(self.dir, "data")
        os.makedirs(src)
        with open(os.path.join(src, "f"), "w") as f:
            f.write("from-host\n")
        j, out = self.run_job(["sh", "-c", "cat /data/f; touch /data/g 2>/dev/null && echo rw || echo ro"],
                              config={"mounts": [{"location": "/data", "target": src}]})
        self.assertEqual(out.split(), ["from-host", "ro"])


class TestLimits(HostTestCase):
    def test_memory_limit_kills_and_reports_oom(self):
        j, out = self.run_job(["/usr/bin/python3", "-c", "a = bytearray(400 * 1024 * 1024); print('survived')"],
                              resources={"memory": {"limit": 64 * 1024 * 1024}})
        self.assertEqual(j["status"], 3, j)
        self.assertTrue(j["oom_killed"], j)
        self.assertEqual(j["signal"], 9)
        self.assertNotIn("survived", out)
        self.assertIn("out of memory", j["error"])

    def test_pids_limit(self):
        script = "for i in $(seq 1 40); do sleep 5 & done 2>&1 | head -1; echo done"
        j, out = self.run_job(["sh", "-c", script], resources={"max_procs": {"limit": 10}})
        self.assertIn("fork", out.lower() + str(j.get("error")))

    def test_cpu_and_nofile(self):
        j, out = self.run_job(["sh", "-c", "ulimit -n"], resources={"max_fd": {"limit": 4242}, "cpu": {"limit": 500}})
        self.assertEqual(out.strip(), "4242")
        self.assertEqual(j["exit_status"], 0)


class TestNetwork(HostTestCase):
    def test_jobs_reach_each_other(self):
        srv, aj = self.start_job(["/usr/bin/python3", "-m", "http.server", "8080", "--bind", "0.0.0.0"],
                                 config={"ports": [{"port": 8080, "proto": "tcp"}]})
        self.assertEqual(aj["status"], 1, aj)
        ip = aj["internal_ip"]
        self.assertTrue(ip.startswith("100.101."), ip)
        # the host reaches the job at its address
        body = wait_for(lambda: self._get("http://%s:8080/" % ip), timeout=20, what="job's server")
        self.assertIn("Directory listing", body)
        # another job reaches it too
        client = "import urllib.request; print(urllib.request.urlopen('http://%s:8080/').status)" % ip
        j, out = self.run_job(["/usr/bin/python3", "-c", client])
        self.assertEqual(out.strip(), "200")
        self.host.stop(srv)
        j = self.host.wait_status(srv, (2, 3))
        self.assertEqual(j["status"], 2)  # stopped on request counts as done

    def _get(self, url):
        try:
            r = request("GET", url, timeout=2)
            return r.body.decode() if r.status == 200 else None
        except OSError:
            return None

    def test_distinct_addresses(self):
        a, aj = self.start_job(["sleep", "30"])
        br = "/sys/class/net/%s/" % self.bridge
        mac = open(br + "address").read()
        # set, not derived from the ports: jobs joining or leaving never move it
        self.assertEqual(open(br + "addr_assign_type").read().strip(), "3")
        self.assertTrue(mac.startswith("02:46:"), mac)
        b, bj = self.start_job(["sleep", "30"])
        self.assertNotEqual(aj["internal_ip"], bj["internal_ip"])
        self.assertEqual(open(br + "address").read(), mac)
        self.host.stop(a)
        self.host.stop(b)

    def test_host_network_job(self):
        j, out = self.run_job(["sh", "-c", "readlink /proc/self/ns/net"], config={"host_network": True})
        self.assertEqual(out.strip(), os.readlink("/proc/self/ns/net"))
        self.assertIsNone(j["internal_ip"])
