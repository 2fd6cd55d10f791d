#!/usr/bin/env python3
"""How long `flynn run true` takes to return, on a private single-host cluster
bootstrapped like `make up` (scripts/bootstrap) from build/bin (or $FLYNN_BIN_DIR).

For scale, the same number of runs of `flynn apps` (CLI start, TLS through the router,
one API call: the floor of any command) and `flynn run -d true` (the job placed, not
waited for), interleaved with the attached runs. With hyperfine installed it does the
timing (--warmup 3), else a loop of N runs each. Target (issue 7): under 150 ms.

usage: bench/run.py [-n N]   (root; default N=30)
"""
import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("FLYNN_BIN_DIR", os.path.join(ROOT, "build", "bin"))
from harness import BIN, Cluster, Daemon, HostClient, cleanup_bridge, host_args, request  # noqa: E402

APP = "benchrun"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="flynn-bench-run-")
    bridge, hargs = host_args(work, 1)
    hostd = Daemon("flynn-host", hargs, work)
    try:
        c = Cluster(work, hostd.url, "benchrun")
        flynn = os.path.join(BIN, "flynn")
        auth = {"Authorization": "Basic " + base64.b64encode((":" + c.key).encode()).decode()}

        def api(method, path, body=None):
            r = request(method, c.ctl + path, body, headers=auth)
            assert r.status == 200, r
            return r.json() if r.body.strip() else None

        subprocess.run([flynn, "create", APP], env=c.env, cwd=c.home, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        art = api("POST", "/artifacts", {"type": "docker", "uri": "https://example.invalid/bench-run"})
        app = api("GET", "/apps/" + APP)
        rel = api("POST", "/releases", {"app_id": app["id"], "artifacts": [art["id"]], "processes": {}})
        api("POST", "/apps/%s/deploy" % APP, {"id": rel["id"]})

        cmds = [("flynn apps", [flynn, "apps"]),
                ("flynn run -d true", [flynn, "-a", APP, "run", "-d", "true"]),
                ("flynn run true", [flynn, "-a", APP, "run", "true"])]
        results = {}
        if shutil.which("hyperfine"):
            out = os.path.join(work, "hyperfine.json")
            argv = ["hyperfine", "-N", "--warmup", "3", "--runs", str(a.n), "--export-json", out]
            for _, cmd in cmds:
                argv.append(" ".join(cmd))
            subprocess.run(argv, env=c.env, cwd=c.home, check=True, stdout=subprocess.DEVNULL)
            for (name, _), r in zip(cmds, json.load(open(out))["results"]):
                results[name] = [t * 1000 for t in r["times"]]
            tool = "hyperfine"
        else:
            for _, cmd in cmds * 3:  # warm-up
                subprocess.run(cmd, env=c.env, cwd=c.home, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            for i in range(a.n):
                for name, cmd in cmds:
                    t0 = time.perf_counter()
                    r = subprocess.run(cmd, env=c.env, cwd=c.home, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
                    dt = (time.perf_counter() - t0) * 1000
                    if r.returncode != 0:
                        raise RuntimeError("%s failed: %s" % (name, r.stderr.decode()))
                    results.setdefault(name, []).append(dt)
            tool = "a loop of %d runs each, interleaved" % a.n
        print("time to return (ms), %s; bin %s" % (tool, BIN))
        print("%-20s %8s %8s %8s" % ("", "median", "p90", "max"))
        for name, _ in cmds:
            xs = results[name]
            print("%-20s %8.1f %8.1f %8.1f" % (name, statistics.median(xs), pct(xs, 90), max(xs)))
        med = statistics.median(results["flynn run true"])
        print("target: flynn run true under 150 ms: %s" % ("met" if med < 150 else "NOT met"))
    finally:
        try:
            HostClient(hostd.url).stop_all(timeout=30)
        finally:
            hostd.stop()
            cleanup_bridge(bridge)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
