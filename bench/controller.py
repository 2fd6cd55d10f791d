#!/usr/bin/env python3
"""Controller request latency under a steady load (wrk), and the idle memory of a
single-host control plane (flynn-host + controller + the controller's shim).

usage: bench/controller.py   (root; uses build/bin; needs wrk)
"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
os.environ.setdefault("FLYNN_BIN_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "bin"))
from harness import Daemon, request  # noqa: E402

KEY = "benchkey"
AUTH = "Basic " + base64.b64encode((":" + KEY).encode()).decode()


def wrk(url, script=None, secs=5):
    cmd = ["wrk", "-t1", "-c4", "-d%ds" % secs, "--latency", "-H", "Authorization: " + AUTH,
           "-H", "Content-Type: application/json"]
    if script:
        cmd += ["-s", script]
    out = subprocess.check_output(cmd + [url]).decode()
    lat = dict(re.findall(r"^\s+(50|90|99)%\s+([\d.]+\w+)", out, re.M))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return lat, float(rps), int(non2xx.group(1)) if non2xx else 0


def rss_kb(pid):
    for l in open("/proc/%d/status" % pid):
        if l.startswith("VmRSS"):
            return int(l.split()[1])
    return 0


def main():
    work = tempfile.mkdtemp(prefix="flynn-bench-ctl-")
    d = Daemon("flynn-controller", ["--listen", "127.0.0.1:0", "--data-dir", work, "--key", KEY], work)
    h = {"Authorization": AUTH}
    apps = [request("POST", d.url + "/apps", {"name": "bench-%d" % i}, headers=h).json() for i in range(20)]
    art = request("POST", d.url + "/artifacts", {"type": "flynn", "uri": "https://example.invalid/slug.tgz"}, headers=h).json()
    lua = os.path.join(work, "post.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\nwrk.body = %s\n' % json.dumps(json.dumps(
            {"app_id": apps[0]["id"], "artifacts": [art["id"]], "env": {"A": "b"}, "processes": {"web": {"args": ["sleep", "1"]}}})))
    print("controller latency (wrk -t1 -c4, 5 s each, 20 apps)")
    print("%-18s %9s %9s %9s %10s" % ("", "p50", "p90", "p99", "req/s"))
    for name, url, script in (("GET /apps", d.url + "/apps", None), ("POST /releases", d.url + "/releases", lua)):
        lat, rps, bad = wrk(url, script)
        print("%-18s %9s %9s %9s %10.0f%s" % (name, lat.get("50"), lat.get("90"), lat.get("99"), rps,
                                              "  (%d non-2xx!)" % bad if bad else ""))
    time.sleep(1)
    print("controller RSS after the load: %.1f MB" % (rss_kb(d.proc.pid) / 1024.0))
    d.stop()
    shutil.rmtree(work, ignore_errors=True)
    # the running cluster's control plane, if `make up` brought one up here
    try:
        pids = subprocess.check_output(["pgrep", "-x", "flynn-host"]).split()
        pids += subprocess.check_output(["pgrep", "-f", "^/usr/local/bin/flynn-controller"]).split()
        total = sum(rss_kb(int(p)) for p in pids)
        shims = subprocess.check_output(["pgrep", "-x", "flynn-shim"]).split()
        total += sum(rss_kb(int(p)) for p in shims)
        print("idle control plane of this machine's cluster (flynn-host, controller, %d shims): %.1f MB RSS"
              % (len(shims), total / 1024.0))
    except subprocess.CalledProcessError:
        print("no cluster running here (make up) to measure the idle control plane")


if __name__ == "__main__":
    main()
