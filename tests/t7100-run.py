"""`flynn run` on a bootstrapped single-host cluster (flynn-api.md §7): our CLI under
a real pseudo-terminal (an interactive sh, Ctrl-C, the window size and its changes),
stdin piped without a terminal, exit statuses, a missing command (127), detached
jobs in `flynn ps`, a client killed mid-run, bad input, an attach that outlives a
restart of the host daemon, a pushed app (commands through /runner/init); then the same
with Flynn's Go CLI when it is present."""
import base64
import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import termios
import time

from harness import BIN, ROOT, Cluster, Daemon, HostClient, HostTestCase, request, sample_apps, wait_for

GO_CLI = os.environ.get("FLYNN_GO_CLI", "/work/shared/tools/flynn-go-cli")
APP = "runapp"


class PtyProc:
    """A command whose stdin, stdout and stderr are a new pseudo-terminal, which is
    also its controlling terminal (so a window change sends it SIGWINCH)."""

    def __init__(self, argv, env, cwd, rows=24, cols=80):
        self.master, slave = pty.openpty()
        self.resize(rows, cols)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                     start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.out = b""

    def resize(self, rows, cols):
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data):
        os.write(self.master, data)

    def _read(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return False
        try:
            d = os.read(self.master, 65536)
        except OSError:  # EIO: the command and its terminal are gone
            return None
        if not d:
            return None
        self.out += d
        return True

    def expect(self, pattern, timeout=20):
        """Waits until the output (since the last match) matches the regex pattern."""
        deadline = time.time() + timeout
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        while True:
            m = rx.search(self.out)
            if m:
                self.out = self.out[m.end():]
                return m
            left = deadline - time.time()
            if left <= 0 or self._read(left) is None and not rx.search(self.out):
                raise AssertionError("no %r in the output: %r" % (pattern, self.out[-2000:]))

    def wait(self, timeout=20):
        deadline = time.time() + timeout
        while self.proc.poll() is None and time.time() < deadline:
            self._read(0.05)
        return self.proc.wait(max(0.1, deadline - time.time()))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


class TestRun(HostTestCase):
    stop_timeout = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # LeakSanitizer cannot stop the world inside a container: the system apps (the git
        # receiver's exit fails a push) run without it in the sanitized build; our CLI keeps it
        c = Cluster(cls.cdir, cls.hostd.url, "run", {"ASAN_OPTIONS": "detect_leaks=0"})
        cls.cluster = c
        cls.env, cls.domain, cls.home, cls.key, cls.ctl = dict(c.env), c.domain, c.home, c.key, c.ctl
        cls.env.pop("ASAN_OPTIONS")
        if "ASAN_OPTIONS" in os.environ:
            cls.env["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"]
        m = re.search(r"flynn cluster add -p (\S+) default (\S+) (\S+)", c.bootstrap_out)
        cls.pin, cls.domain_arg = m.group(1), m.group(2)
        cls._flynn("create", APP)
        # `flynn run` wants a release with an artifact; this one runs on the default stack
        art = cls._api("POST", "/artifacts", {"type": "docker", "uri": "https://example.invalid/run-test"})
        app = cls._api("GET", "/apps/" + APP)
        rel = cls._api("POST", "/releases", {"app_id": app["id"], "artifacts": [art["id"]],
                                             "env": {"FROM_RELEASE": "yes"}, "processes": {}})
        cls._api("POST", "/apps/%s/deploy" % APP, {"id": rel["id"]})

    @classmethod
    def _api(cls, method, path, body=None):
        h = {"Authorization": "Basic " + base64.b64encode((":" + cls.key).encode()).decode()}
        r = request(method, cls.ctl + path, body, headers=h)
        assert r.status == 200, (method, path, r)
        return r.json() if r.body.strip() else None

    @classmethod
    def _flynn(cls, *args, check=True, timeout=90, input=None):
        r = subprocess.run([os.path.join(BIN, "flynn")] + list(args), env=cls.env, input=input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, cwd=cls.home)
        if check and r.returncode != 0:
            raise AssertionError("flynn %s: exit %d\n%s%s" % (" ".join(args), r.returncode,
                                                                r.stdout.decode(), r.stderr.decode()))
        return r

    def flynn(self, *args, **kw):
        return self._flynn(*args, **kw)

    def run_pty(self, *args, rows=24, cols=80, argv0=None):
        p = PtyProc((argv0 or [os.path.join(BIN, "flynn")]) + list(args), self.env, self.home, rows, cols)
        self.addCleanup(p.close)
        return p

    def one_off_jobs(self, active=True):
        """The app's one-off jobs on the host."""
        out = []
        for jid, j in self.host.jobs(active=active).items():
            md = j["job"].get("metadata", {})
            if md.get("flynn-controller.app_name") == APP and "flynn-controller.type" not in md:
                out.append(j)
        return out

    def wait_no_jobs(self, timeout=20):
        wait_for(lambda: self.one_off_jobs() == [], timeout=timeout, what="no one-off job running")

    # ---- under a terminal ----

    def test_01_interactive_shell(self):
        p = self.run_pty("-a", APP, "run", "sh")
        p.send(b"echo hi-$((1+2)) $FROM_RELEASE; tty\n")
        p.expect(r"hi-3 yes\r\n/dev/pts/\d+")
        p.send(b"exit 3\n")
        self.assertEqual(p.wait(), 3)
        self.wait_no_jobs()

    def test_02_ctrl_c_interrupts(self):
        p = self.run_pty("-a", APP, "run", "sh", "-c", "echo ready; exec sleep 100")
        p.expect("ready")
        t0 = time.time()
        p.send(b"\x03")
        self.assertEqual(p.wait(timeout=10), 130)
        self.assertLess(time.time() - t0, 3)
        self.wait_no_jobs()

    def test_03_window_size(self):
        p = self.run_pty("-a", APP, "run", "sh", rows=30, cols=100)
        p.send(b"stty size\n")
        p.expect(r"\b30 100\r\n")
        p.resize(40, 120)
        # the CLI sends the new size when SIGWINCH reaches it: ask until it shows
        deadline = time.time() + 10
        while True:
            time.sleep(0.2)
            p.send(b"stty size\n")
            if p.expect(r"\b(\d+ \d+)\r\n").group(1) == b"40 120":
                break
            self.assertLess(time.time(), deadline, "the job never saw the new size")
        p.send(b"exit\n")
        self.assertEqual(p.wait(), 0)

    # ---- without a terminal ----

    def test_10_piped_stdin(self):
        r = self.flynn("-a", APP, "run", "--", "cat", input=b"data\nmore data\n")
        self.assertEqual(r.stdout, b"data\nmore data\n")
        big = os.urandom(3 << 20).hex().encode()  # 6 MiB through stdin and back
        r = self.flynn("-a", APP, "run", "--", "sh", "-c", "cat | sha256sum", input=big)
        import hashlib
        self.assertEqual(r.stdout.split()[0].decode(), hashlib.sha256(big).hexdigest())

    def test_11_exit_status_and_streams(self):
        r = self.flynn("-a", APP, "run", "--", "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
        self.assertEqual(r.returncode, 7, r)
        self.assertEqual(r.stdout, b"out\n")
        self.assertEqual(r.stderr, b"err\n")
        self.assertEqual(self.flynn("-a", APP, "run", "true").returncode, 0)

    def test_12_missing_command(self):
        r = self.flynn("-a", APP, "run", "no-such-command", "arg", check=False)
        self.assertEqual(r.returncode, 127, r)
        self.assertIn(b"no-such-command: command not found", r.stderr)
        r = self.flynn("-a", APP, "run", "/no/such/file", check=False)
        self.assertEqual(r.returncode, 127, r)
        self.assertIn(b"/no/such/file", r.stderr)

    def test_13_signal_without_terminal(self):
        p = subprocess.Popen([os.path.join(BIN, "flynn"), "-a", APP, "run", "sh", "-c",
                              "echo ready; exec sleep 100"], env=self.env, cwd=self.home,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        self.assertEqual(p.stdout.readline(), b"ready\n")
        t0 = time.time()
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(10), 130)
        self.assertLess(time.time() - t0, 3)

    def test_20_detached_and_ps(self):
        r = self.flynn("-a", APP, "run", "-d", "sleep", "100")
        jid = r.stderr.decode().strip()
        self.assertRegex(jid, r"^[A-Za-z0-9]+-[0-9a-f-]{36}$")
        wait_for(lambda: jid in self.flynn("-a", APP, "ps").stdout.decode(), what="job in flynn ps")
        ps = self.flynn("-a", APP, "ps").stdout.decode()
        self.assertRegex(ps, r"%s\s+run\s+up" % re.escape(jid))
        self.flynn("-a", APP, "kill", jid)
        wait_for(lambda: (self.host.job(jid) or {}).get("status", 0) >= 2, what="killed job gone")
        wait_for(lambda: jid not in self.flynn("-a", APP, "ps").stdout.decode(), what="job out of ps")

    def test_21_client_killed_mid_run(self):
        p = subprocess.Popen([os.path.join(BIN, "flynn"), "-a", APP, "run", "sh", "-c",
                              "echo ready; exec sleep 100"], env=self.env, cwd=self.home,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.stdout.readline(), b"ready\n")
        [job] = self.one_off_jobs()
        p.kill()
        p.wait()
        t0 = time.time()
        wait_for(lambda: (self.host.job(job["id"]) or {}).get("status", 0) >= 2, timeout=15,
                 what="the job stopped after its client went away")
        self.assertLess(time.time() - t0, 10)

    def test_23_kill_attached_job(self):
        p = subprocess.Popen([os.path.join(BIN, "flynn"), "-a", APP, "run", "sh", "-c",
                              "echo ready; exec sleep 100"], env=self.env, cwd=self.home,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        self.assertEqual(p.stdout.readline(), b"ready\n")
        [job] = self.one_off_jobs()
        wait_for(lambda: re.search(r"%s\s+run\s+up" % re.escape(job["id"]),
                                   self.flynn("-a", APP, "ps").stdout.decode()), what="attached job in ps")
        self.flynn("-a", APP, "kill", job["id"])
        self.assertEqual(p.wait(15), 128 + signal.SIGTERM)

    def test_22_enable_log(self):
        r = self.flynn("-a", APP, "run", "-l", "sh", "-c", "echo to-the-log")
        self.assertEqual(r.stdout, b"to-the-log\n")
        # the output is in the job's log on the host too, as every job's is
        logs = [self.host.log(j["id"]) for j in self.one_off_jobs(active=False)]
        self.assertTrue(any("to-the-log" in l for l in logs), logs)
        # and in the app's log (the aggregator); a plain `flynn run` stays out of it,
        # as in Flynn (the CLI asks for disable_log unless -d or -l)
        r = self.flynn("-a", APP, "run", "sh", "-c", "echo not-in-the-log")
        self.assertEqual(r.stdout, b"not-in-the-log\n")
        wait_for(lambda: b"to-the-log" in self.flynn("-a", APP, "log").stdout, timeout=10,
                 what="-l output in flynn log")
        self.assertNotIn(b"not-in-the-log", self.flynn("-a", APP, "log").stdout)

    def test_30_bad_input(self):
        r = self.flynn("-a", "no-such-app", "run", "true", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, b"app 'no-such-app' not found\n")
        self.flynn("create", "norelease")
        r = self.flynn("-a", "norelease", "run", "true", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"No app release", r.stderr)
        # the API refuses an upgrade it does not know, and a missing release
        h = {"Authorization": "Basic " + base64.b64encode((":" + self.key).encode()).decode(),
             "Upgrade": "websocket", "Connection": "Upgrade"}
        r = request("POST", self.ctl + "/apps/%s/jobs" % APP, {"release": "x", "args": ["true"]}, headers=h)
        self.assertEqual(r.status, 400, r)
        h["Upgrade"] = "flynn-attach/0"
        r = request("POST", self.ctl + "/apps/%s/jobs" % APP, {"release": "nope", "args": ["true"]}, headers=h)
        self.assertEqual(r.status, 400, r)

    # ---- Flynn's Go CLI ----

    def go(self, *args, pty_rows=None, input=None):
        """Runs Flynn's Go CLI with a home of its own and a private /etc/hosts (Go does
        not resolve *.localhost itself)."""
        argv = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                'mount --bind "$0" /etc/hosts && exec "$@"', self.go_hosts, GO_CLI] + list(args)
        env = dict(self.env, HOME=self.go_home)
        if pty_rows:
            p = PtyProc(argv, env, self.go_home, pty_rows[0], pty_rows[1])
            self.addCleanup(p.close)
            return p
        return subprocess.run(argv, env=env, cwd=self.go_home, input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=90)

    def go_setup(self):
        if not os.path.exists(GO_CLI):
            self.skipTest("Flynn's Go CLI is not present (%s)" % GO_CLI)
        self.go_home = os.path.join(self.cdir, "gohome")
        os.makedirs(self.go_home, exist_ok=True)
        self.go_hosts = os.path.join(self.cdir, "gohosts")
        with open(self.go_hosts, "w") as f:
            f.write("127.0.0.1 localhost controller.%s\n" % self.domain)
        r = self.go("version")
        if r.returncode != 0:
            self.skipTest("cannot give Flynn's Go CLI a private /etc/hosts here (unshare): %r" % r.stderr)
        r = self.go("cluster", "add", "--no-git", "-p", self.pin, "default", self.domain_arg, self.key)
        self.assertEqual(r.returncode, 0, r)

    def test_50_go_cli(self):
        self.go_setup()
        r = self.go("-a", APP, "run", "sh", "-c", "echo hi from go; echo oops >&2; exit 4")
        self.assertEqual(r.returncode, 4, r)
        self.assertEqual(r.stdout, b"hi from go\n")
        self.assertIn(b"oops\n", r.stderr)
        r = self.go("-a", APP, "run", "cat", input=b"piped\n")
        self.assertEqual((r.returncode, r.stdout), (0, b"piped\n"), r)
        r = self.go("-a", APP, "run", "no-such-command")
        self.assertEqual(r.returncode, 127, r)
        p = self.go("-a", APP, "run", "sh", pty_rows=(33, 99))
        p.send(b"stty size; exit 6\n")
        p.expect(r"33 99")
        self.assertEqual(p.wait(), 6)
        r = self.go("-a", APP, "run", "-d", "sleep", "100")
        jid = r.stderr.decode().splitlines()[0].strip()
        self.assertRegex(jid, r"^[A-Za-z0-9]+-[0-9a-f-]{36}$")
        wait_for(lambda: jid in self.go("-a", APP, "ps").stdout.decode(), what="job in the Go CLI's ps")
        self.assertEqual(self.go("-a", APP, "kill", jid).returncode, 0)
        wait_for(lambda: (self.host.job(jid) or {}).get("status", 0) >= 2, what="killed job gone")

    # ---- the host's attach API itself ----

    def host_attach(self, job_id, send=b"", height=0, width=0):
        """POST /attach on the host; returns (status line, state byte, frames until the
        last one or the close)."""
        host, port = self.hostd.listen.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=20)
        body = json.dumps({"job_id": job_id, "flags": 23, "height": height, "width": width}).encode()
        s.sendall(b"POST /attach HTTP/1.1\r\nHost: x\r\nUpgrade: flynn-attach/0\r\nConnection: Upgrade\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body + send)
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        head, _, buf = buf.partition(b"\r\n\r\n")
        status = head.split(b"\r\n")[0]
        if b" 101 " not in status:
            s.close()
            return status, None, []
        while not buf:
            buf += s.recv(65536)
        state, buf = buf[0], buf[1:]
        frames = []
        while True:
            t = buf[:1]
            if t == b"\x03" and len(buf) >= 6 and len(buf) >= 6 + int.from_bytes(buf[2:6], "big"):
                n = int.from_bytes(buf[2:6], "big")
                frames.append(("data", buf[1], buf[6:6 + n]))
                buf = buf[6 + n:]
                continue
            if t == b"\x05" and len(buf) >= 5:
                frames.append(("exit", int.from_bytes(buf[1:5], "big")))
                break
            if t == b"\x02" and len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[1:5], "big"):
                frames.append(("error", buf[5:5 + int.from_bytes(buf[1:5], "big")]))
                break
            d = s.recv(65536)
            if not d:
                frames.append(("eof",))
                break
            buf += d
        s.close()
        return status, state, frames

    def test_70_host_attach_api(self):
        status, _, _ = self.host_attach("%s-00000000-0000-4000-8000-000000000000" % self.host_id)
        self.assertIn(b" 404 ", status)
        r = request("POST", self.hostd.url + "/attach", {"job_id": "x"})
        self.assertEqual(r.status, 400, r)
        # an ended job: its output, then its status (not the host's own log lines)
        j, _ = self.run_job(["sh", "-c", "echo out; echo err >&2; exit 5"])
        status, state, frames = self.host_attach(j["id"])
        self.assertEqual((state, frames), (0, [("data", 1, b"out\n"), ("data", 2, b"err\n"), ("exit", 5)]))
        # a running job without stdin: its output from now on, and its end
        jid, _ = self.start_job(["sh", "-c", "sleep 0.5; echo late"])
        status, state, frames = self.host_attach(jid)
        self.assertEqual((state, frames), (0, [("data", 1, b"late\n"), ("exit", 0)]))
        # an attached job takes one client at a time; stdin and the size go through
        jid = self.new_id()
        self.assertEqual(self.host.put_job(jid, {"config": {"args": ["sh", "-c", "read l; stty size; echo $l"],
                                                            "stdin": True, "tty": True}}).status, 200)
        host, port = self.hostd.listen.rsplit(":", 1)
        first = socket.create_connection((host, int(port)), timeout=20)
        body = json.dumps({"job_id": jid, "height": 12, "width": 34}).encode()
        first.sendall(b"POST /attach HTTP/1.1\r\nHost: x\r\nUpgrade: flynn-attach/0\r\n"
                      b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        self.assertIn(b" 101 ", first.recv(4096))
        status, state, frames = self.host_attach(jid)
        self.assertEqual(frames, [("error", b"another client is attached to this job")])
        first.sendall(b"\x03\x00\x00\x00\x00\x06hello\n")
        out = b""
        while b"\x05\x00\x00\x00\x00" not in out:
            d = first.recv(65536)
            if not d:
                break
            out += d
        first.close()
        self.assertIn(b"12 34\r\n", out)
        self.assertIn(b"hello\r\n", out)

    # ---- a pushed app (slug): commands run through /runner/init ----

    def test_60_slug_app(self):
        if not sample_apps():
            self.skipTest("the sample apps (../shared/apps) are not here")
        apps = os.path.join(sample_apps(), "static-site")
        repo = os.path.join(self.cdir, "slugrepo")
        shutil.copytree(apps, repo)
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "first"]):
            subprocess.run(["git"] + args, cwd=repo, env=self.env, check=True, capture_output=True)
        self._flynn_in(repo, "create", "slugrun")
        r = subprocess.run(["git", "push", "flynn", "main"], cwd=repo, env=self.env, capture_output=True,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-3000:])
        r = self._flynn_in(repo, "run", "--", "sh", "-c", "pwd; echo $HOME; ls index.html")
        self.assertEqual(r.stdout, b"/app\n/app\nindex.html\n")
        p = PtyProc([os.path.join(BIN, "flynn"), "run", "bash"], self.env, repo)
        self.addCleanup(p.close)
        p.send(b"echo in-$PWD; exit 9\n")
        p.expect(r"in-/app")
        self.assertEqual(p.wait(), 9)
        r = self._flynn_in(repo, "run", "no-such-command", check=False)
        self.assertEqual(r.returncode, 127, r)

    def _flynn_in(self, cwd, *args, check=True):
        r = subprocess.run([os.path.join(BIN, "flynn")] + list(args), env=self.env, cwd=cwd,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90)
        if check and r.returncode != 0:
            raise AssertionError("flynn %s: exit %d\n%s" % (" ".join(args), r.returncode, r.stderr.decode()))
        return r

    def test_90_attach_survives_host_restart(self):
        p = subprocess.Popen([os.path.join(BIN, "flynn"), "-a", APP, "run", "--", "sh", "-c",
                              "while read l; do echo got $l; done; exit 5"], env=self.env, cwd=self.home,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        p.stdin.write(b"one\n")
        p.stdin.flush()
        self.assertEqual(p.stdout.readline(), b"got one\n")
        listen = self.hostd.listen
        self.hostd.stop()
        args = [listen if a == "127.0.0.1:0" else a for a in self.hargs]
        type(self).hostd = Daemon("flynn-host", args, self.cdir)
        type(self).host = HostClient(self.hostd.url)
        p.stdin.write(b"two\n")
        p.stdin.close()
        self.assertEqual(p.stdout.readline(), b"got two\n")
        self.assertEqual(p.wait(20), 5)
        # the scheduler follows the new daemon: jobs start again
        wait_for(lambda: self.flynn("-a", APP, "run", "true", check=False).returncode == 0, timeout=30,
                 interval=0.2, what="flynn run after the host restart")
