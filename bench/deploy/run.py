#!/usr/bin/env python3
"""Time from `git push` to the new code answering through the router, on a private
single-host cluster bootstrapped like `make up` (scripts/bootstrap) from build/bin.

For each app: one cold push (new app), then N warm pushes (a one-line change).
Phases come from the time each line of the push's output arrives:
  receive  push start -> "-----> Building"        (git transfer, hook start, checkout)
  build    -> "-----> Uploading slug"              (build job start, buildpack, tar)
  upload   -> "-----> Creating release"            (blobstore PUT, artifact)
  release  -> "Deploying release" / "Scaling"      (release)
  deploy   -> "=====> Application deployed"        (jobs up, old ones drained)
  answer   -> the router serves the new text       (router table update)

usage: bench/deploy/run.py [-n WARM_RUNS] [APP...]   (root; apps from ../shared/apps)
"""
import argparse
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("FLYNN_BIN_DIR", os.path.join(ROOT, "build", "bin"))
import harness  # noqa: E402
from harness import BIN, Cluster, Daemon, HostClient, cleanup_bridge, host_args  # noqa: E402

APPS = harness.sample_apps()
# what to change for a warm push, per app: (file, old, new-with-{n})
EDITS = {
    "static-site": ("index.html", "</body>", "<!-- {n} --></body>"),
    "python-http": ("app.py", "Hello from python-http", "Hello from python-http {n}"),
    "go-http": ("main.go", "Hello from go-http", "Hello from go-http {n}"),
    "c-make": ("hello.c", "Hello from c-make", "Hello from c-make {n}"),
}
PHASES = [("receive", "-----> Building"), ("build", "-----> Uploading slug"),
          ("upload", "-----> Creating release"), ("release", ("Deploying release", "Scaling initial")),
          ("deploy", "=====> Application deployed")]


class Bench:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="flynn-bench-deploy-")
        self.bridge, hargs = host_args(self.dir, 1)
        self.hostd = Daemon("flynn-host", hargs, self.dir)
        c = Cluster(self.dir, self.hostd.url, "bench")
        self.env, self.domain, self.tls_port = c.env, c.domain, c.tls_port
        self.ctx = ssl.create_default_context(cafile=c.ca)

    def get(self, name):
        host = "%s.%s" % (name, self.domain)
        try:
            sock = socket.create_connection(("127.0.0.1", self.tls_port), timeout=5)
            s = self.ctx.wrap_socket(sock, server_hostname=host)
            s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode())
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            s.close()
            return data.decode(errors="replace")
        except OSError:
            return ""

    def close(self):
        try:
            HostClient(self.hostd.url).stop_all(timeout=30)
        finally:
            self.hostd.stop()
            cleanup_bridge(self.bridge)
            shutil.rmtree(self.dir, ignore_errors=True)


def run(cmd, cwd, env):
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def timed_push(c, repo, name, expect):
    t0 = time.monotonic()
    marks, lines = {}, []
    p = subprocess.Popen(["git", "push", "--force", "flynn", "main"], cwd=repo, env=c.env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for raw in p.stderr:
        line = raw.decode(errors="replace")
        lines.append(line)
        now = time.monotonic() - t0
        for ph, pat in PHASES:
            pats = pat if isinstance(pat, tuple) else (pat,)
            if ph not in marks and any(x in line for x in pats):
                marks[ph] = now
    if p.wait() != 0:
        raise RuntimeError("push of %s failed:\n%s" % (name, "".join(lines)))
    while expect not in c.get(name):
        if time.monotonic() - t0 > 120:
            raise RuntimeError("%s never served the new code" % name)
        time.sleep(0.005)
    marks["answer"] = time.monotonic() - t0
    out, prev = {}, 0.0
    for ph in [p for p, _ in PHASES] + ["answer"]:
        if ph in marks:
            out[ph] = marks[ph] - prev
            prev = marks[ph]
    out["total"] = marks["answer"]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("apps", nargs="*", default=["static-site", "python-http"])
    a = ap.parse_args()
    c = Bench()
    try:
        print("%-12s %-5s %8s %8s %8s %8s %8s %8s %8s" % ("app", "push", "receive", "build", "upload",
                                                        "release", "deploy", "answer", "total"))
        for app in a.apps:
            repo = os.path.join(c.dir, "repos", app)
            shutil.copytree(os.path.join(APPS, app), repo)
            run(["chmod", "-R", "u+w", repo], None, c.env)
            run(["git", "init", "-q", "-b", "main"], repo, c.env)
            run(["git", "add", "-A"], repo, c.env)
            run(["git", "commit", "-qm", "0"], repo, c.env)
            name = "b" + app.replace("-", "")[:20]
            run([os.path.join(BIN, "flynn"), "create", name], repo, c.env)
            f, old, new = EDITS[app]
            first = open(os.path.join(APPS, app, f)).read()
            expect0 = old if app != "static-site" else "</body>"
            rows = [("cold", timed_push(c, repo, name, expect0))]
            for i in range(1, a.n + 1):
                with open(os.path.join(repo, f), "w") as fh:
                    fh.write(first.replace(old, new.format(n=i)))
                run(["git", "commit", "-qam", str(i)], repo, c.env)
                rows.append(("warm", timed_push(c, repo, name, new.format(n=i))))
            for kind, r in rows:
                print("%-12s %-5s %s" % (app, kind, " ".join("%8.3f" % r.get(k, 0) for k in
                      ("receive", "build", "upload", "release", "deploy", "answer", "total"))))
            warm = [r["total"] for k, r in rows if k == "warm"]
            print("%-12s median warm total: %.3f s (cold %.3f s)" % (app, statistics.median(warm),
                                                                    rows[0][1]["total"]))
            sys.stdout.flush()
    finally:
        c.close()


if __name__ == "__main__":
    main()
