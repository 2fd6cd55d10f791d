#!/usr/bin/env python3
"""Job start latency: flynn-host (PUT /host/jobs -> "start" event) against bare
`crun run --detach` of an equivalent config.json, interleaved in one run.

usage: bench/job_start.py [N]   (root; uses build/bin; prints a table with ratios)
Peak daemon RSS and the shims' PSS with N jobs running are printed too.
"""
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
from harness import Daemon, HostClient, cleanup_bridge, host_args, request  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    os.environ.setdefault("FLYNN_BIN_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "bin"))
    work = tempfile.mkdtemp(prefix="flynn-bench-")
    bridge, args = host_args(work, stop_timeout=1)
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
    bundle = os.path.join(work, "bare")
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
    crun_root = os.path.join(work, "crunroot")

    ours, bare = [], []
    ids = []
    for i in range(N):
        jid = "%s-%08x-0000-4000-8000-%012x" % (hid, os.getpid(), i)
        t0 = time.perf_counter()
        r = host.put_job(jid, {"config": {"args": ["sleep", "1000"]}})
        assert r.status == 200, r
        with cond:
            cond.wait_for(lambda: jid in starts, timeout=30)
        ours.append((starts[jid] - t0) * 1000)
        ids.append(jid)
        cid = "bare%d" % i
        cfg["linux"]["cgroupsPath"] = "/flynn-bench/" + cid
        t0 = time.perf_counter()
        subprocess.check_call(["crun", "--root", crun_root, "run", "--detach", "--bundle", bundle, cid],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        bare.append((time.perf_counter() - t0) * 1000)
    rss = int([l for l in open("/proc/%d/status" % d.proc.pid) if l.startswith("VmRSS")][0].split()[1])
    pss = 0
    for pid in subprocess.check_output(["pgrep", "-f", "flynn-shim " + work]).split():
        try:
            pss += int([l for l in open("/proc/%s/smaps_rollup" % pid.decode()) if l.startswith("Pss:")][0].split()[1])
        except OSError:
            pass
    nshims = len(subprocess.check_output(["pgrep", "-f", "flynn-shim " + work]).split())
    print("job start, %d jobs each, interleaved (ms)" % N)
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
    cleanup_bridge(bridge)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
