"""Helpers for the router tests (t3NNN): scripted backends, a router under
test, a minimal websocket client and server. Python standard library only;
everything listens on 127.0.0.1.

Not a test file itself (tests/run.py runs only tNNNN-*.py)."""
import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import socketserver
import struct
import threading
import time

from harness import TestCase, free_port, raw_http, wait_for  # noqa: F401 (free_port: re-exported)

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def pattern(n):
    """n deterministic bytes (what /stream serves)."""
    block = bytes(range(256)) * 256  # 64 KiB
    out = bytearray()
    while len(out) < n:
        out += block[:n - len(out)]
    return bytes(out)


def read_line(f):
    line = f.readline(65537)
    if not line:
        raise EOFError
    return line


def read_body(f, headers, sink):
    """Reads a request body (Content-Length or chunked) into sink(bytes)."""
    te = headers.get("transfer-encoding", "").lower()
    if te == "chunked":
        while True:
            size = int(read_line(f).split(b";")[0].strip(), 16)
            if size == 0:
                while read_line(f) not in (b"\r\n", b"\n"):
                    pass
                return
            left = size
            while left:
                d = f.read(min(left, 1 << 16))
                if not d:
                    raise EOFError
                sink(d)
                left -= len(d)
            read_line(f)
    n = int(headers.get("content-length", "0") or 0)
    while n:
        d = f.read(min(n, 1 << 16))
        if not d:
            raise EOFError
        sink(d)
        n -= len(d)


class Backend:
    """A scripted HTTP/1.1 backend on 127.0.0.1 (a thread per connection).

    Every request gets JSON describing what arrived (name, method, path,
    headers, body length and sha256, the router's source port), except:
      /stream?n=N      a chunked response of pattern(N)
      /close?n=N       pattern(N) without a length, then the close
      /ws              websocket echo
      /status/NNN      that status, tiny body
      /sleep?s=S       answers after S seconds
    It counts connections (self.conns) and requests (self.requests)."""

    def __init__(self, name="b"):
        self.name = name
        self.conns = 0
        self.requests = []
        self.lock = threading.Lock()
        backend = self

        class Handler(socketserver.StreamRequestHandler):
            rbufsize = 1 << 16

            def handle(self):
                with backend.lock:
                    backend.conns += 1
                try:
                    while backend.one(self.rfile, self.connection, self.client_address):
                        pass
                except (EOFError, ConnectionError, ValueError, OSError):
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def one(self, f, sock, peer):
        line = f.readline(65537)
        if not line:
            return False
        method, target, version = line.decode("latin-1").split()
        headers = {}
        raw_headers = []
        while True:
            h = read_line(f)
            if h in (b"\r\n", b"\n"):
                break
            k, v = h.decode("latin-1").split(":", 1)
            raw_headers.append((k, v.strip()))
            headers[k.strip().lower()] = v.strip()
        if headers.get("expect", "").lower() == "100-continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        sha = hashlib.sha256()
        n = [0]

        def sink(d):
            sha.update(d)
            n[0] += len(d)

        read_body(f, headers, sink)
        info = {"name": self.name, "method": method, "path": target, "version": version,
                "headers": headers, "raw_headers": raw_headers, "body_len": n[0],
                "body_sha": sha.hexdigest(), "peer_port": peer[1]}
        with self.lock:
            self.requests.append(info)
        keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        conn_hdr = b"" if keep else b"Connection: close\r\n"
        if target == "/ws":
            key = headers.get("sec-websocket-key", "")
            acc = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest())
            sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
            ws_echo(f, sock)
            return False
        if target.startswith("/stream"):
            total = int(target.split("n=")[1])
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Transfer-Encoding: chunked\r\n" + conn_hdr + b"\r\n")
            data = pattern(total)
            for i in range(0, total, 1 << 16):
                c = data[i:i + (1 << 16)]
                sock.sendall(b"%x\r\n" % len(c) + c + b"\r\n")
            sock.sendall(b"0\r\nX-Trailer: done\r\n\r\n")
            return keep
        if target.startswith("/close"):
            total = int(target.split("n=")[1])
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Connection: close\r\n\r\n" + pattern(total))
            return False
        if target.startswith("/sleep"):
            time.sleep(float(target.split("s=")[1]))
        status = 200
        if target.startswith("/status/"):
            status = int(target.split("/")[2])
        body = json.dumps(info).encode()
        if method == "HEAD":
            body_out = b""
        else:
            body_out = body
        sock.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"X-Backend: %s\r\n%s\r\n" % (status, len(body), self.name.encode(), conn_hdr)
                     + body_out)
        return keep


def ws_frame(payload, opcode=1, mask=True):
    hdr = bytes([0x80 | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr += bytes([mbit | n])
    elif n < 65536:
        hdr += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        hdr += bytes([mbit | 127]) + struct.pack(">Q", n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_read(f):
    """Returns (opcode, payload) of the next frame from a file object."""
    b0, b1 = f.read(2)
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack(">H", f.read(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", f.read(8))[0]
    key = f.read(4) if b1 & 0x80 else None
    data = f.read(n)
    if key:
        data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return b0 & 0x0f, data


def ws_open(addr, host, path="/ws", timeout=10):
    """Opens a websocket to host (the Host header) at addr (ip, port):
    returns (socket, its file, the 101's status line, its headers lowercased,
    the Sec-WebSocket-Accept a correct server sends)."""
    s = socket.create_connection(addr, timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" % (path, host, key)).encode())
    f = s.makefile("rb")
    status = f.readline()
    hdrs = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, v = line.decode().split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    return s, f, status, hdrs, want


def ws_echo(f, sock):
    while True:
        op, data = ws_read(f)
        if op == 8:
            sock.sendall(ws_frame(data, 8, mask=False))
            return
        sock.sendall(ws_frame(data, op, mask=False))


class RouterTestCase(TestCase):
    """Starts backends and a flynn-router wired to them."""

    def setUp(self):
        super().setUp()
        self.backends = []
        self.cleanups_first.append(self._close_backends)

    def _close_backends(self):
        for b in self.backends:
            b.close()

    def backend(self, name):
        b = Backend(name)
        self.backends.append(b)
        return b

    def write_routes(self, routes):
        self.routes_path = os.path.join(self.dir, "routes.json")
        tmp = self.routes_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(routes, f)
        os.rename(tmp, self.routes_path)

    def start_router(self, routes, extra=(), https=False):
        self.write_routes(routes)
        self.access_log = os.path.join(self.dir, "access.log")
        lf = os.path.join(self.dir, "listen.txt")
        args = ["--http-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                "--routes-file", self.routes_path, "--access-log", self.access_log,
                "--listen-file", lf] + list(extra)
        if https:
            args += ["--https-listen", "127.0.0.1:0"]
        # ASan's quarantine (256 MiB by default) would hide whether the router's
        # memory stays flat; keep it small so RSS checks mean the same in all builds
        asan = os.environ.get("ASAN_OPTIONS", "")
        env = {"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=8"}
        self.router = self.start("flynn-router", args, env=env)
        with open(lf) as f:
            self.addrs = dict(l.strip().split("=", 1) for l in f if "=" in l)
        h, p = self.addrs["http"].rsplit(":", 1)
        self.host, self.port = h, int(p)
        return self.router

    def conn(self, timeout=30):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def get(self, host, path, headers=None, method="GET", body=None):
        c = self.conn()
        try:
            h = {"Host": host}
            h.update(headers or {})
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
        finally:
            c.close()

    def metrics(self):
        c = http.client.HTTPConnection(*self.addrs["metrics"].rsplit(":", 1), timeout=10)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = int(v)
        return out

    def rss_kb(self):
        with open("/proc/%d/status" % self.router.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def reload(self, routes):
        self.write_routes(routes)
        before = self.metrics()["flynn_router_reloads_total"]
        self.router.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.metrics()["flynn_router_reloads_total"] > before, what="reload")

    def access_lines(self):
        try:
            with open(self.access_log) as f:
                return f.read().splitlines()
        except OSError:
            return []

    def raw(self, payload, timeout=5):
        return raw_http(self.host, self.port, payload, timeout)


def http_route(domain, backends, path="/", **kw):
    r = {"type": "http", "id": "%s%s" % (domain, path), "domain": domain, "path": path,
         "service": domain.split(".")[0], "backends": [b.addr if hasattr(b, "addr") else b
                                                      for b in backends]}
    r.update(kw)
    return r


__all__ = ["Backend", "RouterTestCase", "http_route", "free_port", "pattern", "ws_frame",
           "ws_read", "wait_for", "time"]
