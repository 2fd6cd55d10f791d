#!/usr/bin/env python3
"""Router benchmark: wrk against the backend directly, flynn-router, nginx and
HAProxy as equivalent keep-alive reverse proxies, interleaved in one run.

Method (docs: /work/shared/docs/router-bench.md, bench/router/README.md):
backend nginx (1 worker) on 127.0.0.1:9001 serving "hello\\n" at / and a 1 MiB
file at /1m; proxies keep connections alive to clients and to the backend,
no access logs; wrk -t2 -c64 --latency; for each workload, REPEATS rounds,
each round runs every target once, in an order that rotates from round to
round, 2 s pause between runs; also reports per-round ratios (router/peer).
Reports medians of req/s and p99, ratios to nginx and HAProxy, and the
proxy's own CPU microseconds per request from /proc/PID/stat.

Workloads (e) and (f) go through a TCP route (the router's `tcp` route, nginx's
stream module, HAProxy's `mode tcp`): the proxy only relays bytes.

Environment: DURATION (s, default 10), REPEATS (default 3), WORKLOADS
(comma list of a,b,c,d,e,f; default all), ROUTER (path of flynn-router).
Everything listens on 127.0.0.1 only.
"""
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ROUTER = os.environ.get("ROUTER", os.path.join(ROOT, "build", "bin", "flynn-router"))
DURATION = int(os.environ.get("DURATION", "10"))
REPEATS = int(os.environ.get("REPEATS", "3"))
WORKLOADS = os.environ.get("WORKLOADS", "a,b,c,d,e,f").split(",")
TICK = os.sysconf("SC_CLK_TCK")

PORTS = {"direct": 9001, "nginx": 9080, "haproxy": 9081, "flynn-router": 9082}
TLS_PORTS = {"direct": 9441, "nginx": 9443, "haproxy": 9444, "flynn-router": 9445}
TCP_PORTS = {"direct": 9001, "nginx": 9090, "haproxy": 9091, "flynn-router": 9092}
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
TARGETS = ["direct", "flynn-router", "nginx", "haproxy"]


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def setup(d):
    for sub in ("backend/tmp", "nginx/tmp", "nginx/ptmp", "www", "logs", "haproxy", "router"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    with open(os.path.join(d, "www", "1m"), "wb") as f:
        f.write(os.urandom(1 << 20))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-keyout", d + "/key.pem", "-out", d + "/cert.pem"],
                   check=True, capture_output=True)
    with open(d + "/both.pem", "w") as f:
        f.write(open(d + "/cert.pem").read() + open(d + "/key.pem").read())
    write(d + "/backend/nginx.conf", """
daemon off;
worker_processes 1;
pid %(d)s/backend/nginx.pid;
error_log %(d)s/logs/backend-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    client_body_temp_path %(d)s/backend/tmp;
    server {
        listen 127.0.0.1:9001 backlog=4096;
        listen 127.0.0.1:9441 ssl backlog=4096;
        ssl_certificate %(d)s/cert.pem;
        ssl_certificate_key %(d)s/key.pem;
        location = / { default_type text/plain; return 200 "hello\\n"; }
        location = /1m { default_type application/octet-stream; alias %(d)s/www/1m; }
    }
}
""" % {"d": d})
    write(d + "/nginx/nginx.conf", """
load_module %(stream)s;
daemon off;
worker_processes 2;
pid %(d)s/nginx/nginx.pid;
error_log %(d)s/logs/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    client_body_temp_path %(d)s/nginx/tmp;
    proxy_temp_path %(d)s/nginx/ptmp;
    upstream backend {
        server 127.0.0.1:9001;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:9080 backlog=4096;
        listen 127.0.0.1:9443 ssl backlog=4096;
        ssl_certificate %(d)s/cert.pem;
        ssl_certificate_key %(d)s/key.pem;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
stream {
    upstream tcpbackend { server 127.0.0.1:9001; }
    server {
        listen 127.0.0.1:9090 backlog=4096;
        proxy_pass tcpbackend;
    }
}
""" % {"d": d, "stream": STREAM_MODULE})
    write(d + "/haproxy/haproxy.cfg", """
global
    nbthread 2
    maxconn 4096
    pidfile %(d)s/haproxy/haproxy.pid
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 65s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:9081
    bind 127.0.0.1:9444 ssl crt %(d)s/both.pem
    default_backend be
backend be
    server s1 127.0.0.1:9001 maxconn 1000
listen tcpfe
    mode tcp
    bind 127.0.0.1:9091
    server s1 127.0.0.1:9001
""" % {"d": d})
    write(d + "/router/routes.json",
          '[{"type":"http","id":"bench","domain":"127.0.0.1","path":"/","service":"bench",'
          '"backends":["127.0.0.1:9001"]},'
          '{"type":"tcp","id":"benchtcp","port":9092,"service":"benchtcp",'
          '"backends":["127.0.0.1:9001"]}]')


def start_all(d):
    procs = {}
    log = open(d + "/logs/stdout.log", "ab")
    procs["backend"] = subprocess.Popen(["nginx", "-c", d + "/backend/nginx.conf", "-p",
                                         d + "/backend/"], stdout=log, stderr=log)
    procs["nginx"] = subprocess.Popen(["nginx", "-c", d + "/nginx/nginx.conf", "-p",
                                       d + "/nginx/"], stdout=log, stderr=log)
    procs["haproxy"] = subprocess.Popen(["haproxy", "-f", d + "/haproxy/haproxy.cfg"],
                                        stdout=log, stderr=log)
    procs["flynn-router"] = subprocess.Popen(
        [ROUTER, "--http-listen", "127.0.0.1:9082", "--https-listen", "127.0.0.1:9445",
         "--cert", d + "/cert.pem", "--key", d + "/key.pem", "--routes-file",
         d + "/router/routes.json", "--tcp-range", "9092-9092", "--access-log", "off",
         "--log-level", "warn", "--workers", os.environ.get("ROUTER_WORKERS", "2")],
        stdout=log, stderr=log)
    time.sleep(1.5)
    for name, p in procs.items():
        if p.poll() is not None:
            stop_all(procs)
            sys.exit("%s exited at start; see %s/logs" % (name, d))
    return procs


def stop_all(procs):
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM if p.args[0] != "nginx" else signal.SIGQUIT)
    for p in procs.values():
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def tree_pids(pid):
    """pid and its children (nginx workers)."""
    out = [pid]
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def cpu_ticks(pids):
    t = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return t


def parse_latency(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]


def wrk(url, extra):
    cmd = ["wrk", "-t2", "-c64", "-d%ds" % DURATION, "--latency"] + extra + [url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=DURATION + 60)
    out = r.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = parse_latency(re.search(r"\s99%\s+(\S+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p99, total, (errors.group(1) if errors else ""), (
        int(non2xx.group(1)) if non2xx else 0)


WORKLOAD_DEF = {
    "a": ("(a) GET / keep-alive", "http", "/", []),
    "b": ("(b) GET /1m keep-alive", "http", "/1m", []),
    "c": ("(c) GET / Connection: close", "http", "/", ["-H", "Connection: close"]),
    "d": ("(d) HTTPS GET / keep-alive", "https", "/", []),
    "e": ("(e) TCP route, GET / keep-alive", "tcp", "/", []),
    "f": ("(f) TCP route, GET /1m keep-alive", "tcp", "/1m", []),
}


def main():
    for tool in ("nginx", "haproxy", "wrk", "openssl"):
        if not shutil.which(tool):
            sys.exit("missing %s: run bench/router/run.sh (installs Debian's nginx, haproxy, wrk)"
                     % tool)
    if not os.path.exists(STREAM_MODULE):
        sys.exit("missing %s: run bench/router/run.sh (installs libnginx-mod-stream)"
                 % STREAM_MODULE)
    if not os.path.exists(ROUTER):
        sys.exit("missing %s: run make first" % ROUTER)
    d = tempfile.mkdtemp(prefix="router-bench-")
    os.chmod(d, 0o755)  # nginx workers (www-data) read the 1 MiB file
    setup(d)
    os.chmod(os.path.join(d, "www", "1m"), 0o644)
    procs = start_all(d)
    results = {}
    try:
        pids = {t: tree_pids(procs["backend" if t == "direct" else t].pid) for t in TARGETS}
        for t in TARGETS:  # warm-up, not recorded
            subprocess.run(["wrk", "-t2", "-c64", "-d2s", "http://127.0.0.1:%d/" % PORTS[t]],
                           capture_output=True)
        for w in WORKLOADS:
            title, scheme, path, extra = WORKLOAD_DEF[w]
            for rep in range(REPEATS):
                # the order rotates from round to round: a machine that speeds
                # up or slows down during a round favours no target
                for t in TARGETS[rep % len(TARGETS):] + TARGETS[:rep % len(TARGETS)]:
                    port = {"https": TLS_PORTS, "tcp": TCP_PORTS}.get(scheme, PORTS)[t]
                    url = "%s://127.0.0.1:%d%s" % ("http" if scheme == "tcp" else scheme,
                                                   port, path)
                    c0 = cpu_ticks(pids[t])
                    rps, p99, total, errs, non2xx = wrk(url, extra)
                    c1 = cpu_ticks(pids[t])
                    us_req = (c1 - c0) / TICK * 1e6 / max(total, 1)
                    results.setdefault((w, t), []).append((rps, p99, us_req, errs, non2xx))
                    print("%-30s %-13s run %d: %10.0f req/s  p99 %8.2f ms  cpu %7.1f us/req%s"
                          % (title, t, rep + 1, rps, p99, us_req,
                             ("  errors: " + errs if errs else "") +
                             ("  non-2xx: %d" % non2xx if non2xx else "")), flush=True)
                    time.sleep(2)
    finally:
        stop_all(procs)
    print()
    print("Medians of %d interleaved runs, %d s each (wrk -t2 -c64):" % (REPEATS, DURATION))
    print()
    print("| workload | target | req/s | p99 ms | proxy CPU µs/req | req/s vs nginx | req/s vs HAProxy "
          "| p99 vs nginx | p99 vs HAProxy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for w in WORKLOADS:
        title = WORKLOAD_DEF[w][0]
        med = {}
        for t in TARGETS:
            rs = results.get((w, t), [])
            if rs:
                med[t] = (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs),
                          statistics.median(r[2] for r in rs))
        for t in TARGETS:
            if t not in med:
                continue
            rps, p99, cpu = med[t]
            rn = rps / med["nginx"][0] if "nginx" in med else 0
            rh = rps / med["haproxy"][0] if "haproxy" in med else 0
            pn = p99 / med["nginx"][1] if "nginx" in med else 0
            ph = p99 / med["haproxy"][1] if "haproxy" in med else 0
            print("| %s | %s | %.0f | %.2f | %s | %.2f | %.2f | %.2f | %.2f |"
                  % (title, t, rps, p99, "-" if t == "direct" else "%.1f" % cpu, rn, rh, pn, ph))
    print()
    print("flynn-router against each proxy round by round (the two ran within the same")
    print("round, so a machine that drifts between rounds moves both): median of the")
    print("per-round ratios, and in how many rounds the router was ahead.")
    print()
    print("| workload | vs | req/s ratio | rounds ahead in req/s | p99 ratio | rounds with lower p99 "
          "| CPU/req ratio |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for w in WORKLOADS:
        mine = results.get((w, "flynn-router"), [])
        for peer in ("nginx", "haproxy"):
            theirs = results.get((w, peer), [])
            pairs = list(zip(mine, theirs))
            if not pairs:
                continue
            rr = [a[0] / b[0] for a, b in pairs]
            pr = [a[1] / b[1] for a, b in pairs]
            cr = [a[2] / b[2] for a, b in pairs if b[2] > 0]
            print("| %s | %s | %.2f | %d of %d | %.2f | %d of %d | %s |"
                  % (WORKLOAD_DEF[w][0], peer, statistics.median(rr),
                     sum(1 for x in rr if x > 1), len(rr), statistics.median(pr),
                     sum(1 for x in pr if x < 1), len(pr),
                     "%.2f" % statistics.median(cr) if cr else "-"))
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
