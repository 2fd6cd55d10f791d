#!/usr/bin/env python3
"""Syscalls per request of each proxy's processes, counted with `strace -c -f`
while wrk runs, for the workloads of run.py (same set-up and ports).

    python3 bench/router/syscalls.py [TARGETS] [WORKLOADS]
    e.g. python3 bench/router/syscalls.py flynn-router,nginx a,c,d

strace slows the traced proxy a lot: read the counts per request, never the
request rates. Needs strace, nginx, haproxy and wrk (bench/router/run.sh
installs the last three).
"""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

PATHS = {"a": "/", "b": "/1m", "c": "/", "d": "/", "e": "/", "f": "/1m"}


def main():
    targets = (sys.argv[1] if len(sys.argv) > 1 else "flynn-router,nginx,haproxy").split(",")
    workloads = (sys.argv[2] if len(sys.argv) > 2 else "a,c,d").split(",")
    d = tempfile.mkdtemp(prefix="router-syscalls-")
    os.chmod(d, 0o755)
    run.setup(d)
    os.chmod(os.path.join(d, "www", "1m"), 0o644)
    procs = run.start_all(d)
    try:
        for w in workloads:
            for t in targets:
                tls = w == "d"
                tcp = w in ("e", "f")
                port = (run.TLS_PORTS if tls else run.TCP_PORTS if tcp else run.PORTS)[t]
                url = "%s://127.0.0.1:%d%s" % ("https" if tls else "http", port, PATHS[w])
                extra = ["-H", "Connection: close"] if w == "c" else []
                subprocess.run(["wrk", "-t2", "-c64", "-d2s"] + extra + [url], capture_output=True)
                out = os.path.join(d, "strace.%s.%s" % (t, w))
                cmd = ["strace", "-c", "-f", "-o", out]
                for p in run.tree_pids(procs[t].pid):
                    cmd += ["-p", str(p)]
                st = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
                r = subprocess.run(["wrk", "-t2", "-c64", "-d4s"] + extra + [url],
                                   capture_output=True, text=True).stdout
                st.terminate()
                st.wait()
                reqs = int(re.search(r"(\d+) requests in", r).group(1))
                calls = {}
                with open(out) as f:
                    for line in f:
                        fl = line.split()
                        if len(fl) >= 5 and fl[0][0].isdigit() and fl[-1] != "total":
                            calls[fl[-1]] = int(fl[3])
                top = sorted(calls.items(), key=lambda x: -x[1])
                print("%s %-13s %6.2f syscalls/request  %s" % (
                    run.WORKLOAD_DEF[w][0][:3], t, sum(calls.values()) / reqs,
                    " ".join("%s %.2f" % (k, v / reqs) for k, v in top if v / reqs >= 0.05)),
                    flush=True)
    finally:
        run.stop_all(procs)


if __name__ == "__main__":
    main()
