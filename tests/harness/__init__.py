"""Integration-test harness: real daemons in a per-test trash directory.

Daemons are started with NOTIFY_SOCKET pointing at a datagram socket owned by
the harness and must send READY=1 and LISTEN=HOST:PORT (src/lib/notify.h);
the harness never sleeps to guess when a daemon is up. Every child is stopped
with SIGTERM, then SIGKILL, at teardown.
"""
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(os.environ.get("FLYNN_BIN_DIR", os.path.join(ROOT, "build", "bin")))


def binpath(name):
    return os.path.join(BIN, name)


class Daemon:
    """A daemon under test. args: argv without the binary path."""

    def __init__(self, name, args, workdir, env=None, timeout=20):
        self.name = name
        self.workdir = workdir
        self.log_path = os.path.join(workdir, name + ".log")
        sock_path = os.path.join(workdir, name + ".notify")
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        sock.settimeout(0.2)
        e = dict(os.environ)
        e.update(env or {})
        e["NOTIFY_SOCKET"] = sock_path
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binpath(name)] + list(args), stdout=self.log,
                                     stderr=subprocess.STDOUT, env=e, cwd=workdir)
        self.listen = None
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError("%s exited with %s before READY; log:\n%s"
                                       % (name, self.proc.returncode, self.read_log()))
                try:
                    msg = sock.recv(4096).decode()
                except socket.timeout:
                    continue
                fields = dict(l.split("=", 1) for l in msg.splitlines() if "=" in l)
                if fields.get("READY") == "1":
                    self.listen = fields.get("LISTEN")
                    break
            else:
                self.stop()
                raise RuntimeError("%s not ready in %ss; log:\n%s" % (name, timeout, self.read_log()))
        finally:
            sock.close()
            os.unlink(sock_path)
        self.url = "http://" + self.listen if self.listen else None

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-8000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def alive(self):
        return self.proc.poll() is None


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:300])


def request(method, url, body=None, headers=None, timeout=30, raw=False):
    """One HTTP request; returns a Response for any status (never raises on 4xx/5xx)."""
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    data = None
    if body is not None:
        data = body if raw or isinstance(body, bytes) else json.dumps(body).encode()
        if isinstance(data, str):
            data = data.encode()
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


def raw_http(host, port, payload, timeout=5):
    """Sends raw bytes, returns everything the server answers until it closes or times out."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before it read everything
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not d:
                break
            out += d
        return out
    finally:
        s.close()


def wait_for(fn, timeout=20, interval=0.05, what="condition"):
    """Polls fn until it returns a truthy value; returns it, or fails after timeout."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


def mounts_under(path):
    """Mount points at or below path, deepest first (from /proc/self/mountinfo)."""
    path = os.path.realpath(path)
    out = []
    for line in open("/proc/self/mountinfo"):
        mp = line.split()[4].replace("\\040", " ")
        if mp == path or mp.startswith(path + "/"):
            out.append(mp)
    return sorted(out, key=len, reverse=True)


def unmount_under(path):
    """Detaches what a killed daemon left mounted below path (job roots, netns
    pins), so that removing a test's directory leaves the machine's mount table
    as it was. Returns the mount points it detached."""
    left = mounts_under(path)
    for mp in left:
        subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
    return left


def cgroup2_mount():
    """(mount point, mount options, superblock options) of the cgroup2
    hierarchy, or None."""
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        sep = f.index("-")
        if f[sep + 1] == "cgroup2":
            return f[4], f[5], f[sep + 3]
    return None


def set_cgroup2_favordynmods(on):
    """Remounts the cgroup2 hierarchy with or without favordynmods, keeping its
    other options (a remount replaces them all). Returns its superblock options
    after, or None without cgroup2."""
    m = cgroup2_mount()
    if not m:
        return None
    path, mopts, sopts = m
    flags = 32  # MS_REMOUNT
    for name, bit in (("ro", 1), ("nosuid", 2), ("nodev", 4), ("noexec", 8), ("noatime", 1024),
                      ("nodiratime", 2048), ("relatime", 1 << 21), ("strictatime", 1 << 24)):
        if name in mopts.split(","):
            flags |= bit
    data = [o for o in sopts.split(",") if o not in ("rw", "ro", "favordynmods")]
    if on:
        data.append("favordynmods")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"cgroup2", path.encode(), b"cgroup2", ctypes.c_ulong(flags), ",".join(data).encode()) < 0:
        raise OSError(ctypes.get_errno(), "remount " + path)
    return cgroup2_mount()[2]


class TestCase(unittest.TestCase):
    """Gives each test a trash directory and stops its daemons at teardown."""

    keep = os.environ.get("FLYNN_TEST_KEEP") == "1"

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="flynn-test-")
        self.daemons = []
        self.cleanups_first = []

    def start(self, name, args, env=None, timeout=20):
        d = Daemon(name, args, self.dir, env=env, timeout=timeout)
        self.daemons.append(d)
        return d

    def tearDown(self):
        for fn in reversed(self.cleanups_first):
            try:
                fn()
            except Exception as e:  # keep tearing down
                print("cleanup error:", e)
        failed = False
        for d in reversed(self.daemons):
            rc = d.stop()
            # a sanitizer report makes the daemon exit non-zero (or leaves text in its log)
            log = d.read_log()
            if "ERROR: AddressSanitizer" in log or "runtime error:" in log or "ERROR: LeakSanitizer" in log:
                print("sanitizer report in %s log:\n%s" % (d.name, log))
                failed = True
            del rc
        if not self.keep:
            unmount_under(self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)
        if failed:
            raise AssertionError("a daemon reported a sanitizer error")


_net_locks = {}


def _claim_net_slot():
    """A slot (bridge flt<n>, subnet 100.101.<n>.0/24) that no other test
    process holds: a flock on /tmp/flynn-test-net-<n>.lock, held until exit."""
    import fcntl
    start = (os.getpid() * 7) % 200
    for k in range(200):
        n = (start + k) % 200 + 20
        if n in _net_locks:
            continue
        fd = os.open("/tmp/flynn-test-net-%d.lock" % n, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if os.path.exists("/sys/class/net/flt%d" % n):
            cleanup_bridge("flt%d" % n)  # left behind by a killed run
        _net_locks[n] = fd
        return n
    raise RuntimeError("no free test network slot")


def host_args(workdir, stop_timeout=2):
    """Flags for a flynn-host daemon of its own: own dirs, bridge and subnet,
    so tests never touch a cluster running on the same machine."""
    n = _claim_net_slot()
    bridge = "flt%d" % n
    return bridge, ["daemon", "--listen", "127.0.0.1:0", "--id", "test%d" % n,
                    "--run-dir", os.path.join(workdir, "run"),
                    "--state-dir", os.environ.get("FLYNN_TEST_STATE_DIR", os.path.join(workdir, "state")),
                    "--bridge", bridge, "--subnet", "100.101.%d.0/24" % n,
                    "--stop-timeout", str(stop_timeout),
                    "--runner-dir", os.path.join(ROOT, "src", "slugrunner")]


def cleanup_bridge(bridge):
    subprocess.run(["ip", "link", "del", bridge], stderr=subprocess.DEVNULL)
    subprocess.run(["nft", "delete", "table", "ip", "flynn_" + bridge.replace("-", "_").replace(".", "_")],
                   stderr=subprocess.DEVNULL)


class HostClient:
    """Calls a flynn-host daemon's API."""

    def __init__(self, url):
        self.url = url

    def put_job(self, job_id, spec):
        return request("PUT", self.url + "/host/jobs/" + job_id, spec)

    def job(self, job_id):
        r = request("GET", self.url + "/host/jobs/" + job_id)
        return r.json() if r.status == 200 else None

    def jobs(self, active=False):
        return request("GET", self.url + "/host/jobs" + ("?active=true" if active else "")).json()

    def stop(self, job_id):
        return request("DELETE", self.url + "/host/jobs/" + job_id)

    def log(self, job_id, query=""):
        r = request("GET", self.url + "/host/jobs/%s/log%s" % (job_id, query))
        return r.body.decode()

    def wait_status(self, job_id, statuses, timeout=30):
        return wait_for(lambda: (lambda j: j if j and j["status"] in statuses else None)(self.job(job_id)),
                        timeout=timeout, what="job %s status in %s" % (job_id, statuses))

    def stop_all(self, timeout=30):
        for jid, j in self.jobs().items():
            if j["status"] <= 1:
                self.stop(jid)
        wait_for(lambda: all(j["status"] >= 2 for j in self.jobs().values()), timeout=timeout,
                 what="every job stopped")


class HostTestCase(TestCase):
    """A test class with one flynn-host daemon shared by its tests."""

    stop_timeout = 2

    @classmethod
    def setUpClass(cls):
        cls.cdir = tempfile.mkdtemp(prefix="flynn-host-")
        cls.bridge, cls.hargs = host_args(cls.cdir, cls.stop_timeout)
        cls.hostd = Daemon("flynn-host", cls.hargs, cls.cdir)
        cls.host = HostClient(cls.hostd.url)
        cls.host_id = request("GET", cls.hostd.url + "/host/status").json()["id"]
        cls.seq = 0

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.hostd.alive():
                cls.host.stop_all()
        finally:
            cls.hostd.stop()
            cleanup_bridge(cls.bridge)
            log = cls.hostd.read_log()
            if not TestCase.keep:
                unmount_under(cls.cdir)
                shutil.rmtree(cls.cdir, ignore_errors=True)
            for bad in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
                if bad in log:
                    raise AssertionError("sanitizer report in flynn-host log:\n" + log)

    def new_id(self):
        type(self).seq += 1
        return "%s-%08x-0000-4000-8000-%012x" % (self.host_id, os.getpid(), type(self).seq)

    def run_job(self, args, timeout=30, **spec):
        """Runs a job to completion; returns (ActiveJob, output)."""
        jid = self.new_id()
        body = {"config": dict({"args": args}, **spec.pop("config", {}))}
        body.update(spec)
        r = self.host.put_job(jid, body)
        self.assertEqual(r.status, 200, r)
        j = self.host.wait_status(jid, (2, 3, 4), timeout=timeout)
        return j, self.host.log(jid)

    def start_job(self, args, **spec):
        jid = self.new_id()
        body = {"config": dict({"args": args}, **spec.pop("config", {}))}
        body.update(spec)
        r = self.host.put_job(jid, body)
        self.assertEqual(r.status, 200, r)
        return jid, self.host.wait_status(jid, (1, 2, 3, 4))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Cluster:
    """A private single-host cluster made by scripts/bootstrap (as `make up` does) on
    the flynn-host at host_url: own conf/data/state dirs under cdir, own ports on
    127.0.0.1, own HOME (the CLI's config and git's), domain PREFIX<port>.localhost.
    Attributes: env (for flynn, git and the bootstrap), domain, key, ca, ctl (the
    controller's plain-HTTP URL), tls_port, http_port, home, bootstrap_out."""

    def __init__(self, cdir, host_url, prefix="c", extra_env=None):
        self.ctl_port, self.tls_port, self.http_port = free_port(), free_port(), free_port()
        self.domain = "%s%d.localhost" % (prefix, self.tls_port)
        self.home = os.path.join(cdir, "home")
        os.makedirs(self.home, exist_ok=True)
        self.env = dict(os.environ, FLYNN_BIN=BIN, FLYNN_CONF_DIR=os.path.join(cdir, "conf"),
                        FLYNN_DATA_DIR=os.path.join(cdir, "data"), FLYNN_HOST_URL=host_url,
                        CONTROLLER_LISTEN="127.0.0.1:%d" % self.ctl_port,
                        ROUTER_HTTPS_PORT=str(self.tls_port), ROUTER_HTTP_PORT=str(self.http_port),
                        ROUTER_HOST="127.0.0.1", FLYNN_STATE_DIR=os.path.join(cdir, "state"),
                        BLOBSTORE_LISTEN="127.0.0.1:%d" % free_port(),
                        GITRECEIVE_LISTEN="127.0.0.1:%d" % free_port(),
                        LOGAGGREGATOR_LISTEN="127.0.0.1:%d" % free_port(),
                        FLYNN_EDIT_ETC_HOSTS="0", CLUSTER_DOMAIN=self.domain, HOME=self.home,
                        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
                        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org",
                        GIT_TERMINAL_PROMPT="0")
        for k in ("FLYNNRC", "GIT_SSL_CAINFO", "GIT_DIR", "GIT_WORK_TREE"):
            self.env.pop(k, None)
        self.env.update(extra_env or {})
        out = subprocess.run([os.path.join(ROOT, "scripts", "bootstrap")], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180)
        self.bootstrap_out = out.stdout.decode()
        if out.returncode != 0:
            raise AssertionError("bootstrap failed:\n" + self.bootstrap_out)
        self.key = open(os.path.join(cdir, "conf", "key")).read().strip()
        self.ca = os.path.join(cdir, "conf", "ca.pem")
        self.ctl = "http://127.0.0.1:%d" % self.ctl_port


def sample_apps():
    """The sample apps deploy tests push (../shared/apps beside the project, or
    $FLYNN_SAMPLE_APPS, or /work/shared/apps); None when none is found."""
    for d in (os.environ.get("FLYNN_SAMPLE_APPS"),
              os.path.join(os.path.dirname(ROOT), "shared", "apps"), "/work/shared/apps"):
        if d and os.path.isdir(os.path.join(d, "python-http")):
            return d
    return None


def go_cli():
    """Flynn's own Go CLI (../shared/tools/flynn-go-cli beside the project, or
    /work/shared/tools); None when it is not here."""
    for p in (os.environ.get("FLYNN_GO_CLI"),
              os.path.join(os.path.dirname(ROOT), "shared", "tools", "flynn-go-cli"),
              "/work/shared/tools/flynn-go-cli"):
        if p and os.path.exists(p):
            return p
    return None


def hosts_entry(test, *names):
    """Lists names at 127.0.0.1 in /etc/hosts for the test (Go's resolver, unlike
    curl and git, does not map *.localhost); removed at cleanup. Skips the test when
    /etc/hosts is not writable."""
    if not os.access("/etc/hosts", os.W_OK):
        test.skipTest("/etc/hosts is not writable: the Go CLI needs %s to resolve" % names[0])
    line = "127.0.0.1 %s\n" % " ".join(names)
    with open("/etc/hosts", "a") as f:
        f.write(line)

    def remove():
        with open("/etc/hosts") as f:
            lines = f.readlines()
        with open("/etc/hosts", "w") as f:
            f.writelines(l for l in lines if l != line)
    test.addCleanup(remove)
