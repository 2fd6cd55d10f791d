#!/usr/bin/env python3
"""Log throughput: one job writes N lines as fast as it can; a follower counts
them as they arrive. Two followers, in two runs:

  aggregator   GET /log/APP?follow=true on flynn-logaggregator itself
  flynn log -f our CLI, through the router (TLS) and the controller's proxy

The path is job -> flynn-shim (log file) -> flynn-host shipper (POST batches)
-> flynn-logaggregator -> follower. Reported: lines/s at the follower (first to
last line received), lines missing or out of order, the job's own run time,
and the aggregator's RSS (VmRSS now, VmHWM peak) from /proc.

usage: bench/logs.py [N]   (root; bootstraps a private cluster with build/bin)
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
os.environ.setdefault("FLYNN_BIN_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                    "build", "bin"))
from harness import BIN, Cluster, Daemon, HostClient, cleanup_bridge, host_args, request  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
WRITER = ("import sys\nw = sys.stdout.write\nfor i in range(%d):\n"
          "    w('%%d the quick brown fox jumps over the lazy dog\\n' %% i)\n" % N)


def cpu(pid):
    """CPU seconds (user + system) a process used so far."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def rss(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith(("VmRSS", "VmHWM")):
                k, v = l.split(":")
                out[k] = int(v.split()[0]) / 1024.0
    return out


class Counter:
    """Counts numbered lines from an iterator of text lines."""

    def __init__(self):
        self.n = 0
        self.first = self.last = None
        self.expect = 0
        self.bad = 0
        self.done = threading.Event()

    def feed(self, msg):
        try:
            i = int(msg[:msg.index(b" ")])
        except ValueError:
            return
        now = time.time()
        if self.first is None:
            self.first = now
        self.last = now
        if i != self.expect:
            self.bad += 1
        self.expect = i + 1
        self.n += 1
        if i == N - 1:
            self.done.set()


def follow_aggregator(agg, app_id, c):
    s = socket.create_connection(agg.split(":"), timeout=600)
    s.sendall(("GET /log/%s?follow=true&process_type=bench HTTP/1.0\r\nHost: x\r\n\r\n" % app_id).encode())
    f = s.makefile("rb", buffering=1 << 20)
    while f.readline() not in (b"\r\n", b""):
        pass
    for raw in f:  # the message starts after "msg":" (no JSON decoding: the reader must keep up)
        k = raw.find(b'"msg":"')
        c.feed(raw[k + 7:] if k >= 0 else b"")
        if c.done.is_set():
            break
    s.close()


def follow_cli(env, home, c):
    c.cli = p = subprocess.Popen([os.path.join(BIN, "flynn"), "-a", "bench", "log", "-f", "-t", "bench"], env=env, cwd=home,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=1 << 20)
    try:
        for raw in p.stdout:  # TIMESTAMP app[bench.JOB]: MSG
            k = raw.find(b"]: ")
            c.feed(raw[k + 3:] if k >= 0 else b"")
            if c.done.is_set():
                break
    finally:
        c.cli_cpu = cpu(p.pid)
        p.kill()
        p.wait()


def run(cluster, host, pids, app_id, how):
    agg_pid = pids["logaggregator"]
    c = Counter()
    c.cli_cpu = 0.0
    before = {k: cpu(p) for k, p in pids.items()}
    if how == "aggregator":
        t = threading.Thread(target=follow_aggregator, args=(cluster.env["LOGAGGREGATOR_LISTEN"], app_id, c))
    else:
        t = threading.Thread(target=follow_cli, args=(cluster.env, cluster.home, c))
    t.daemon = True
    t.start()
    time.sleep(2)  # the follower is connected
    hid = request("GET", host.url + "/host/status").json()["id"]
    jid = "%s-%s" % (hid, open("/proc/sys/kernel/random/uuid").read().strip())
    t0 = time.time()
    host.put_job(jid, {"metadata": {"flynn-controller.app": app_id, "flynn-controller.app_name": "bench",
                                    "flynn-controller.type": "bench"},
                       "config": {"args": ["python3", "-c", WRITER]}})
    j = host.wait_status(jid, (2, 3, 4), timeout=600)
    job_secs = time.time() - t0
    c.done.wait(120)
    t.join(10)
    used = {k: cpu(p) - before[k] for k, p in pids.items()}
    if how != "aggregator":
        used["flynn log"] = c.cli_cpu
    mem = rss(agg_pid)
    span = (c.last - c.first) if c.first and c.last and c.last > c.first else float("nan")
    print("%-12s %9d lines  %8.0f lines/s  missing %d  out of order %d  job ran %.2f s (status %d)  "
          "aggregator RSS %.1f MB (peak %.1f MB)" % (how, c.n, c.n / span, N - c.n, c.bad, job_secs, j["status"],
                                                      mem["VmRSS"], mem["VmHWM"]))
    print("%-12s CPU seconds: %s" % ("", ", ".join("%s %.2f" % kv for kv in sorted(used.items()) if kv[1] > 0.005)))
    return c


def main():
    work = tempfile.mkdtemp(prefix="flynn-bench-")
    bridge, args = host_args(work, stop_timeout=1)
    d = Daemon("flynn-host", args, work)
    host = HostClient(d.url)
    try:
        cluster = Cluster(work, d.url, "bench")
        key = cluster.key
        import base64
        auth = {"Authorization": "Basic " + base64.b64encode((":" + key).encode()).decode()}
        app = request("POST", cluster.ctl + "/apps", {"name": "bench"}, headers=auth).json()
        pids = {"flynn-host": d.proc.pid}
        for jid, j in host.jobs(active=True).items():
            name = j["job"].get("metadata", {}).get("flynn-controller.app_name")
            if name in ("logaggregator", "controller", "router"):
                pids[name] = j["pid"]
        agg_pid = pids["logaggregator"]
        print("log throughput, %d lines of ~50 bytes from one job (python3 writing as fast as it can)" % N)
        print("commit %s, %d CPUs" % (subprocess.run(["git", "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                                                     cwd=os.path.dirname(os.path.abspath(__file__))).stdout.decode().strip(),
                                      os.cpu_count()))
        print("aggregator RSS before: %.1f MB" % rss(agg_pid)["VmRSS"])
        run(cluster, host, pids, app["id"], "aggregator")
        run(cluster, host, pids, app["id"], "flynn log -f")
        st = request("GET", "http://%s/status" % cluster.env["LOGAGGREGATOR_LISTEN"]).json()
        print("aggregator: %d lines (%.1f MB) kept of %d received, %d evicted by the bounds" %
              (st["lines"], st["bytes"] / 1048576.0, st["received"], st["evicted"]))
    finally:
        try:
            host.stop_all(timeout=30)
        except Exception as e:
            print("stop:", e)
        d.stop()
        cleanup_bridge(bridge)


if __name__ == "__main__":
    main()
