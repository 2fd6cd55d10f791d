#!/usr/bin/env python3
"""Job start latency: flynn-host (PUT /host/jobs -> "start" event) against bare
`crun run --detach` of an equivalent config.json, interleaved in one run.

usage: bench/job_start.py [N] [--gap SECS] [--favordynmods on|off]
  (root; uses build/bin; prints a table with ratios)
Peak daemon RSS and the shims' PSS with N jobs running are printed too.

Every start, ours or bare, follows the same idle gap (default 0.1 s) and the
two alternate which goes first: a `crun run` that comes within a few ms of
another one skips a wait for an RCU grace period (its cgroup move finds the
kernel's cgroup lock still in its slow mode) and would make a floor that
nobody gets on a host that starts a job now and then.

--favordynmods sets the machine's cgroup2 mount option before the run (the
daemon remounts with it by default; "off" clears it and passes
--no-favordynmods): both sides are measured in the same state.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import (Daemon, HostClient, cgroup2_mount, cleanup_bridge, host_args, request,  # noqa: E402
                     set_cgroup2_favordynmods)

ap = argparse.ArgumentParser()
ap.add_argument("n", nargs="?", type=int, default=50)
ap.add_argument("--gap", type=float, default=0.1)
ap.add_argument("--favordynmods", choices=("on", "off"), default="on")
ap.add_argument("--run-tmpfs", action="store_true",
                help="the daemon's run dir and the bare bundle on a tmpfs (as /run is on most hosts)")
ARGS = ap.parse_args()
N = ARGS.n


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    os.environ.setdefault("FLYNN_BIN_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "bin"))
    work = tempfile.mkdtemp(prefix="flynn-bench-")
    set_cgroup2_favordynmods(ARGS.favordynmods == "on")
    m = cgroup2_mount()
    state = "%s: %s" % (m[0], m[2]) if m else "not mounted"
    if ARGS.run_tmpfs:
        os.makedirs(os.path.join(work, "run"))
        subprocess.check_call(["mount", "-t", "tmpfs", "tmpfs", os.path.join(work, "run")])
    bridge, args = host_args(work, stop_timeout=1)
    if ARGS.favordynmods == "off":
        args.append("--no-favordynmods")
    d = Daemon("flynn-host", args, work)
    host = HostClient(d.url)
    hid = request("GET", d.url + "/host/status").json()["id"]
    starts = {}
    cond = threading.Condition()

    def events():
        req = urllib.request.Request(d.url + "/host/jobs", headers={"Accept": "text/event-stream"})
        with urllib.request.urlopen(req) as r:
            for line in r:
                if line.startswith(b"data: "):
                    ev = json.loads(line[6:])
                    if ev["event"] == "start":
                        with cond:
                            starts[ev["job_id"]] = time.perf_counter()
                            cond.notify_all()

    threading.Thread(target=events, daemon=True).start()
    time.sleep(0.3)

    # a bare crun bundle with the same runtime config as one of our jobs
    jid0 = "%s-00000000-0000-4000-8000-000000000000" % hid
    host.put_job(jid0, {"config": {"args": ["sleep", "1"]}})
    host.wait_status(jid0, (1, 2))
    cfg = json.load(open(os.path.join(work, "run", "jobs", jid0, "config.json")))
    host.wait_status(jid0, (2, 3))
    bundle = os.path.join(work, "run" if ARGS.run_tmpfs else "", "bare")
    rootfs = os.path.join(bundle, "rootfs")
    for sub in ("rootfs", "upper", "work"):
        os.makedirs(os.path.join(bundle, sub))
    stack = os.path.join(work, "state", "stacks", "default")
    subprocess.check_call(["mount", "-t", "overlay", "overlay", "-o",
                           "lowerdir=%s,upperdir=%s/upper,workdir=%s/work" % (stack, bundle, bundle), rootfs])
    cfg["root"]["path"] = rootfs
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"] + [{"type": "network"}]
    cfg["mounts"] = [m for m in cfg["mounts"] if not m["destination"].startswith("/etc/")]
    cfg["process"]["args"] = ["sleep", "1000"]
    json.dump(cfg, open(os.path.join(bundle, "config.json"), "w"))
    crun_root = os.path.join(work, "run" if ARGS.run_tmpfs else "", "crunroot")

    ours, bare = [], []
    ids = []
    def start_ours(i):
        jid = "%s-%08x-0000-4000-8000-%012x" % (hid, os.getpid(), i)
        t0 = time.perf_counter()
        r = host.put_job(jid, {"config": {"args": ["sleep", "1000"]}})
        assert r.status == 200, r
        with cond:
            cond.wait_for(lambda: jid in starts, timeout=30)
        ours.append((starts[jid] - t0) * 1000)
        ids.append(jid)

    def start_bare(i):
        cid = "bare%d" % i
        cfg["linux"]["cgroupsPath"] = "/flynn-bench/" + cid
        json.dump(cfg, open(os.path.join(bundle, "config.json"), "w"))
        t0 = time.perf_counter()
        subprocess.check_call(["crun", "--root", crun_root, "run", "--detach", "--bundle", bundle, cid],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bare.append((time.perf_counter() - t0) * 1000)

    for i in range(N):
        for f in ((start_ours, start_bare) if i % 2 == 0 else (start_bare, start_ours)):
            time.sleep(ARGS.gap)
            f(i)
    rss = int([l for l in open("/proc/%d/status" % d.proc.pid) if l.startswith("VmRSS")][0].split()[1])
    pss = 0
    for pid in subprocess.check_output(["pgrep", "-f", "flynn-shim " + work]).split():
        try:
            pss += int([l for l in open("/proc/%s/smaps_rollup" % pid.decode()) if l.startswith("Pss:")][0].split()[1])
        except OSError:
            pass
    nshims = len(subprocess.check_output(["pgrep", "-f", "flynn-shim " + work]).split())
    print("job start, %d jobs each, interleaved, %.0f ms idle before each (ms); cgroup2 %s" % (N, ARGS.gap * 1000, state))
    print("%-28s %8s %8s %8s" % ("", "median", "p90", "p99"))
    for name, xs in (("flynn-host (PUT -> start)", ours), ("bare crun run --detach", bare)):
        print("%-28s %8.1f %8.1f %8.1f" % (name, statistics.median(xs), pct(xs, 90), pct(xs, 99)))
    print("%-28s %8.2fx %7.2fx %7.2fx" % ("ratio", statistics.median(ours) / statistics.median(bare),
                                         pct(ours, 90) / pct(bare, 90), pct(ours, 99) / pct(bare, 99)))
    print("with %d jobs running: daemon RSS %.1f MB; %d shims, PSS %.0f KB each" % (N, rss / 1024.0, nshims, pss / max(nshims, 1)))

    for i in range(N):
        subprocess.call(["crun", "--root", crun_root, "delete", "-f", "bare%d" % i], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host.stop_all(timeout=60)
    d.stop()
    subprocess.call(["umount", rootfs])
    if ARGS.run_tmpfs:
        subprocess.call(["umount", "-l", os.path.join(work, "run")])
    cleanup_bridge(bridge)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
