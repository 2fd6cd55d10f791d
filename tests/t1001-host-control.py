"""flynn-host: stopping, signals, events, and restart of the daemon."""
import json
import os
import socket
import threading
import time
import urllib.request

from harness import (Daemon, HostClient, HostTestCase, TestCase, cgroup2_mount, cleanup_bridge,
                     host_args, request, set_cgroup2_favordynmods, wait_for)


def read_events(url, n, timeout=30, ready=None):
    """Reads n SSE events from url; returns the decoded list."""
    req = urllib.request.Request(url, headers={"Accept": "text/event-stream"})
    out = []
    with urllib.request.urlopen(req, timeout=timeout) as r:
        if ready:
            ready.set()
        for line in r:
            line = line.decode().strip()
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
                if len(out) >= n:
                    break
    return out


class TestStopAndSignals(HostTestCase):
    stop_timeout = 1

    def test_stop_term_then_kill(self):
        # PID 1 without a TERM handler ignores TERM: KILL follows the grace period
        jid, _ = self.start_job(["sleep", "1000"])
        t0 = time.time()
        self.assertEqual(self.host.stop(jid).status, 200)
        j = self.host.wait_status(jid, (2, 3), timeout=15)
        self.assertGreaterEqual(time.time() - t0, 0.9)
        self.assertEqual(j["signal"], 9)
        self.assertTrue(j["force_stop"])
        self.assertEqual(j["status"], 2)

    def test_stop_graceful(self):
        jid, _ = self.start_job(["sh", "-c", "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"])
        time.sleep(0.3)
        self.host.stop(jid)
        j = self.host.wait_status(jid, (2, 3), timeout=15)
        self.assertEqual(j["exit_status"], 0)
        self.assertEqual(j["signal"], 0)
        self.assertIn("bye", self.host.log(jid))

    def test_signal(self):
        jid, _ = self.start_job(["sh", "-c", "trap 'echo got-usr1' USR1; while true; do sleep 0.1; done"])
        time.sleep(0.3)
        r = request("PUT", self.hostd.url + "/host/jobs/%s/signal/USR1" % jid)
        self.assertEqual(r.status, 200, r)
        wait_for(lambda: "got-usr1" in self.host.log(jid), what="USR1 handled")
        r = request("PUT", self.hostd.url + "/host/jobs/%s/signal/NOPE" % jid)
        self.assertEqual(r.status, 400)
        self.assertIn("unknown signal", r.json()["message"])
        r = request("PUT", self.hostd.url + "/host/jobs/nosuchjob/signal/TERM")
        self.assertEqual(r.status, 404)
        self.host.stop(jid)
        self.host.wait_status(jid, (2, 3))

    def test_events_stream(self):
        ready = threading.Event()
        result = {}
        t = threading.Thread(target=lambda: result.update(ev=read_events(self.hostd.url + "/host/jobs", 3, ready=ready)))
        t.start()
        ready.wait(10)
        time.sleep(0.2)
        jid = self.new_id()
        self.host.put_job(jid, {"config": {"args": ["sh", "-c", "exit 7"]}})
        t.join(30)
        evs = [e for e in result.get("ev", []) if e["job_id"] == jid]
        self.assertEqual([e["event"] for e in evs], ["create", "start", "stop"])
        self.assertEqual(evs[-1]["job"]["exit_status"], 7)
        self.assertEqual(evs[-1]["job"]["status"], 3)

    def test_job_events_stream(self):
        jid, _ = self.start_job(["sleep", "1000"])
        ready = threading.Event()
        result = {}
        t = threading.Thread(target=lambda: result.update(ev=read_events(self.hostd.url + "/host/jobs/" + jid, 1, ready=ready)))
        t.start()
        ready.wait(10)
        time.sleep(0.2)
        self.host.put_job(self.new_id(), {"config": {"args": ["true"]}})  # other job's events are filtered
        self.host.stop(jid)
        t.join(30)
        self.assertEqual([(e["event"], e["job_id"]) for e in result["ev"]], [("stop", jid)])


class TestRestart(HostTestCase):
    def test_restart_readopts_running_jobs(self):
        jid, _ = self.start_job(["sh", "-c", "echo before; sleep 2; echo after; exit 5"])
        ended_while_down, _ = self.start_job(["sh", "-c", "sleep 0.5; exit 4"])
        runner, rj = self.start_job(["sleep", "1000"])
        self.hostd.stop()
        time.sleep(1.0)  # the second job ends while the daemon is down
        type(self).hostd = Daemon("flynn-host", self.hargs, self.cdir)
        type(self).host = HostClient(self.hostd.url)
        j = self.host.job(ended_while_down)
        self.assertEqual((j["status"], j["exit_status"]), (3, 4))
        j = self.host.job(runner)
        self.assertEqual(j["status"], 1, j)
        self.assertEqual(j["internal_ip"], rj["internal_ip"])
        j = self.host.wait_status(jid, (2, 3), timeout=20)
        self.assertEqual(j["exit_status"], 5)
        self.assertEqual(self.host.log(jid), "before\nafter\n")
        self.host.stop(runner)
        j = self.host.wait_status(runner, (2, 3), timeout=20)
        self.assertEqual(j["signal"], 9)
        # a new job does not get an address that is still in use
        j2, aj = self.start_job(["true"])
        self.assertNotEqual(aj["internal_ip"], rj["internal_ip"])


class TestResurrect(HostTestCase):
    def test_resurrect_after_crash_and_restart(self):
        jid, aj = self.start_job(["sh", "-c", "sleep 0.3; exit 1"], resurrect=True)
        # it crashes, and comes back under a new ID
        def resurrected():
            js = self.host.jobs()
            return [i for i, j in js.items() if i != jid and j["job"].get("resurrect") and j["status"] <= 1]
        again = wait_for(resurrected, timeout=20, what="a resurrected job")
        self.assertTrue(again)
        # stopped on purpose: it stays down
        for i, j in self.host.jobs().items():
            if j["status"] <= 1:
                self.host.stop(i)
        time.sleep(3)
        live = [i for i, j in self.host.jobs().items() if j["status"] <= 1]
        self.assertEqual(live, [])
        # a machine restart: the run directory is gone, the durable record remains
        keep, _ = self.start_job(["sleep", "1000"], resurrect=True)
        self.hostd.stop()
        import shutil, subprocess
        subprocess.call(["crun", "--root", os.path.join(self.cdir, "run", "crun"), "kill", keep, "KILL"])
        time.sleep(0.5)
        subprocess.call(["sh", "-c", "for m in $(grep %s /proc/mounts | cut -d' ' -f2); do umount -l $m; done" % self.cdir])
        shutil.rmtree(os.path.join(self.cdir, "run"), ignore_errors=True)
        type(self).hostd = Daemon("flynn-host", self.hargs, self.cdir)
        type(self).host = HostClient(self.hostd.url)
        js = wait_for(lambda: [j for j in self.host.jobs().values() if j["status"] == 1], what="job back after reboot")
        self.assertEqual(js[0]["job"]["config"]["args"], ["sleep", "1000"])
        self.assertNotEqual(js[0]["id"], keep)


class TestCgroupFavorDynmods(TestCase):
    """The daemon remounts cgroup2 with favordynmods (a job's cgroup move then
    skips an RCU grace period), keeps the mount's other options, and leaves it
    alone with --no-favordynmods."""

    def daemon(self, *extra):
        bridge, args = host_args(self.dir)
        self.addCleanup(cleanup_bridge, bridge)
        return self.start("flynn-host", args + list(extra))

    def test_remount(self):
        before = cgroup2_mount()
        if not before:
            self.skipTest("no cgroup2 hierarchy on this machine")
        try:
            set_cgroup2_favordynmods(False)
            off = cgroup2_mount()
            d = self.daemon("--no-favordynmods")
            self.assertEqual(cgroup2_mount(), off, "--no-favordynmods changed the mount")
            d.stop()
            d = self.daemon()
            path, mopts, sopts = cgroup2_mount()
            self.assertIn("favordynmods", sopts.split(","))
            self.assertEqual((path, mopts), off[:2], "mount options kept")
            self.assertEqual([o for o in sopts.split(",") if o != "favordynmods"], off[2].split(","),
                             "superblock options kept")
            self.assertIn("favordynmods", d.read_log())
            # a job still starts and runs in its cgroup
            host = HostClient(d.url)
            hid = request("GET", d.url + "/host/status").json()["id"]
            jid = "%s-%08x-0000-4000-8000-%012x" % (hid, os.getpid(), 1)
            self.assertEqual(host.put_job(jid, {"config": {"args": ["cat", "/proc/self/cgroup"]}}).status, 200)
            self.assertEqual(host.wait_status(jid, (2, 3, 4))["exit_status"], 0)
            self.assertIn(jid, host.log(jid))
        finally:
            set_cgroup2_favordynmods(True)
