"""flynn-blobstore: PUT/GET/HEAD/DELETE of arbitrary paths, streamed to and
from disk with flat memory; uploads appear whole or not at all; hostile
input gets clear errors and never hurts the daemon."""
import hashlib
import http.client
import json
import os
import socket
import subprocess
import threading
import time

from harness import TestCase, binpath, raw_http, wait_for

MB = 1 << 20
EMPTY_SHA = hashlib.sha256(b"").hexdigest()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def rss_limit_kb():
    """What 'flat' means: the release daemon stays far below this whatever
    the body size. Sanitizer runtimes add fixed overhead (shadow memory,
    allocator caches), not per-byte growth: the tests also check growth."""
    return 40 * 1024


class Conn:
    """One client connection that speaks just enough HTTP/1.1 to check
    keep-alive and pipelining byte by byte."""

    def __init__(self, addr, timeout=10):
        host, port = addr.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        d = self.s.recv(1 << 16)
        if not d:
            raise EOFError("server closed the connection")
        self.buf += d

    def response(self, head_only=False):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for l in lines[1:]:
            k, v = l.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        n = 0 if head_only or status in (100, 204, 304) else int(headers.get("content-length", 0))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed_by_server(self, timeout=5):
        self.s.settimeout(timeout)
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def req(method, path, body=None, headers=None, length=True):
    h = "%s %s HTTP/1.1\r\nHost: blobstore\r\n" % (method, path)
    for k, v in (headers or {}).items():
        h += "%s: %s\r\n" % (k, v)
    if body is not None and length:
        h += "Content-Length: %d\r\n" % len(body)
    return h.encode("latin-1") + b"\r\n" + (body or b"")


def chunked(pieces, trailer=b""):
    out = b""
    for p in pieces:
        out += b"%x\r\n" % len(p) + p + b"\r\n"
    return out + b"0\r\n" + trailer + b"\r\n"


class BlobstoreCase(TestCase):
    extra = []

    def setUp(self):
        super().setUp()
        self.store = os.path.join(self.dir, "store")
        self.bs = self.start("flynn-blobstore", ["--dir", self.store, "--listen", "127.0.0.1:0"] +
                             self.extra)
        host, port = self.bs.listen.rsplit(":", 1)
        self.host, self.port = host, int(port)

    def conn(self):
        c = Conn(self.bs.listen)
        self.cleanups_first.append(c.close)
        return c

    def call(self, method, path, body=None, headers=None):
        c = Conn(self.bs.listen)
        try:
            c.send(req(method, path, body, headers))
            return c.response(head_only=method == "HEAD")
        finally:
            c.close()

    def raw(self, payload, timeout=5):
        return raw_http(self.host, self.port, payload, timeout=timeout)

    def status_of(self, payload, timeout=5):
        out = self.raw(payload, timeout)
        self.assertTrue(out.startswith(b"HTTP/1.1 "), (payload[:80], out[:200]))
        return int(out[9:12]), out

    def data_files(self):
        out = []
        for d, _, files in os.walk(os.path.join(self.store, "data")):
            out += [os.path.relpath(os.path.join(d, f), os.path.join(self.store, "data")) for f in files]
        return sorted(out)

    def tmp_files(self):
        return os.listdir(os.path.join(self.store, "tmp"))

    def assert_serving(self):
        self.assertTrue(self.bs.alive(), self.bs.read_log())
        st, _, body = self.call("GET", "/_status")
        self.assertEqual((st, json.loads(body)), (200, {"status": "ok"}))


class TestApi(BlobstoreCase):
    def test_status(self):
        for p in ("/", "/_status", "/?x=1"):
            st, h, body = self.call("GET", p)
            self.assertEqual(st, 200)
            self.assertEqual(json.loads(body), {"status": "ok"})
            self.assertEqual(h["content-type"], "application/json")
        st, h, body = self.call("HEAD", "/_status")
        self.assertEqual((st, body), (200, b""))
        st, h, body = self.call("PUT", "/_status", b"x")
        self.assertEqual(st, 405)
        self.assertEqual(h["allow"], "GET, HEAD")
        self.assertEqual(json.loads(body)["code"], "method_not_allowed")

    def test_put_get_head_delete(self):
        data = os.urandom(100000)
        sha = hashlib.sha256(data).hexdigest()
        st, h, body = self.call("PUT", "/slugs/app/v1.tgz", data)
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body), {"path": "/slugs/app/v1.tgz", "size": len(data), "sha256": sha})
        with open(os.path.join(self.store, "data/slugs/app/v1.tgz"), "rb") as f:
            self.assertEqual(f.read(), data)  # a plain file with exactly the bytes PUT
        st, h, body = self.call("GET", "/slugs/app/v1.tgz")
        self.assertEqual((st, body), (200, data))
        self.assertEqual(h["content-type"], "application/octet-stream")
        self.assertEqual(h["content-length"], str(len(data)))
        self.assertEqual(h["x-checksum-sha256"], sha)
        self.assertEqual(h["etag"], '"%s"' % sha)
        st, h, body = self.call("HEAD", "/slugs/app/v1.tgz")
        self.assertEqual((st, body), (200, b""))
        self.assertEqual(h["content-length"], str(len(data)))
        self.assertEqual(h["x-checksum-sha256"], sha)
        st, h, body = self.call("DELETE", "/slugs/app/v1.tgz")
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body), {"path": "/slugs/app/v1.tgz", "deleted": True})
        for m in ("GET", "HEAD", "DELETE"):
            st, h, body = self.call(m, "/slugs/app/v1.tgz")
            self.assertEqual(st, 404, m)
            if m != "HEAD":
                self.assertEqual(json.loads(body)["code"], "not_found")
        # the directories left empty are gone
        self.assertEqual(os.listdir(os.path.join(self.store, "data")), [])
        self.assertEqual(os.listdir(os.path.join(self.store, "meta")), [])

    def test_overwrite_empty_and_odd_names(self):
        self.assertEqual(self.call("PUT", "/k", b"first")[0], 200)
        self.assertEqual(self.call("PUT", "/k", b"second!")[0], 200)
        st, h, body = self.call("GET", "/k")
        self.assertEqual((body, h["x-checksum-sha256"]), (b"second!", hashlib.sha256(b"second!").hexdigest()))
        st, h, body = self.call("PUT", "/empty", b"")
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body)["sha256"], EMPTY_SHA)
        st, h, body = self.call("GET", "/empty")
        self.assertEqual((st, body, h["etag"]), (200, b"", '"%s"' % EMPTY_SHA))
        # escapes decode once; the query is ignored; UTF-8 names work
        self.assertEqual(self.call("PUT", "/dir/a%20b%3Fc?ignored=1", b"q")[0], 200)
        self.assertIn("dir/a b?c", self.data_files())
        self.assertEqual(self.call("GET", "/dir/a%20b%3Fc")[2], b"q")
        self.assertEqual(self.call("PUT", "/caf%C3%A9/.hidden/x..y", b"u")[0], 200)
        self.assertEqual(self.call("GET", "/caf%C3%A9/.hidden/x..y")[2], b"u")

    def test_put_needs_a_length(self):
        st, h, body = self.call("PUT", "/nolen", None)
        self.assertEqual(st, 411)
        self.assertEqual(json.loads(body)["code"], "length_required")

    def test_conflicts(self):
        self.assertEqual(self.call("PUT", "/x/y", b"1")[0], 200)
        for p in ("/x/y/z", "/x"):
            st, h, body = self.call("PUT", p, b"2")
            self.assertEqual(st, 400, p)
            self.assertEqual(json.loads(body)["code"], "path_conflict")
        # a directory is not a blob
        self.assertEqual(self.call("GET", "/x")[0], 404)
        self.assertEqual(self.call("GET", "/x/")[0], 404)
        self.assertEqual(self.call("DELETE", "/x")[0], 404)
        self.assertEqual(self.call("GET", "/x/y/z")[0], 404)
        self.assertEqual(self.data_files(), ["x/y"])

    def test_ranges_and_conditionals(self):
        data = bytes(range(256)) * 40
        sha = hashlib.sha256(data).hexdigest()
        self.call("PUT", "/r", data)
        for rng, first, last in (("bytes=0-9", 0, 9), ("bytes=10000-", 10000, 10239),
                                 ("bytes=-5", 10235, 10239), ("bytes=100-99999", 100, 10239)):
            st, h, body = self.call("GET", "/r", headers={"Range": rng})
            self.assertEqual(st, 206, rng)
            self.assertEqual(body, data[first:last + 1], rng)
            self.assertEqual(h["content-range"], "bytes %d-%d/%d" % (first, last, len(data)))
        st, h, body = self.call("GET", "/r", headers={"Range": "bytes=20000-"})
        self.assertEqual(st, 416)
        self.assertEqual(h["content-range"], "bytes */%d" % len(data))
        # several ranges, or an If-Range for another version: the whole blob
        self.assertEqual(self.call("GET", "/r", headers={"Range": "bytes=0-1,5-6"})[:3:2], (200, data))
        self.assertEqual(self.call("GET", "/r", headers={"Range": "bytes=0-1", "If-Range": '"old"'})[0], 200)
        self.assertEqual(self.call("GET", "/r", headers={"Range": "bytes=0-1", "If-Range": '"%s"' % sha})[0], 206)
        st, h, body = self.call("GET", "/r", headers={"If-None-Match": '"%s"' % sha})
        self.assertEqual((st, body), (304, b""))
        self.assertEqual(self.call("GET", "/r", headers={"If-None-Match": '"other"'})[0], 200)

    def test_checksum(self):
        data = b"payload" * 1000
        sha = hashlib.sha256(data).hexdigest()
        st, h, body = self.call("PUT", "/c", data, {"X-Checksum-Sha256": sha.upper()})
        self.assertEqual(st, 200, body)
        # a mismatch stores nothing, and leaves the blob already there alone
        for path in ("/c", "/new"):
            st, h, body = self.call("PUT", path, b"other bytes", {"X-Checksum-Sha256": sha})
            self.assertEqual(st, 400)
            self.assertEqual(json.loads(body)["code"], "checksum_mismatch")
        self.assertEqual(self.call("GET", "/c")[2], data)
        self.assertEqual(self.call("GET", "/new")[0], 404)
        self.assertEqual(self.data_files(), ["c"])
        self.assertEqual(self.tmp_files(), [])
        for bad in ("abc", "z" * 64, sha + "0"):
            st, h, body = self.call("PUT", "/d", b"x", {"X-Checksum-Sha256": bad})
            self.assertEqual(st, 400, bad)
            self.assertEqual(json.loads(body)["code"], "bad_checksum")
        self.assertEqual(self.data_files(), ["c"])

    def test_short_body_stores_nothing(self):
        self.call("PUT", "/keep", b"original")
        for path in ("/short", "/keep"):
            s = socket.create_connection((self.host, self.port))
            s.sendall(req("PUT", path, headers={"Content-Length": "100000"}) + b"x" * 5000)
            time.sleep(0.1)
            s.close()
            s = socket.create_connection((self.host, self.port))
            s.sendall(req("PUT", path, headers={"Transfer-Encoding": "chunked"}) + b"1000\r\n" + b"y" * 100)
            time.sleep(0.1)
            s.close()
        wait_for(lambda: self.tmp_files() == [], what="temp files removed")
        self.assertEqual(self.call("GET", "/short")[0], 404)
        self.assertEqual(self.call("GET", "/keep")[2], b"original")
        self.assertEqual(self.data_files(), ["keep"])
        self.assertIn("nothing stored", self.bs.read_log())

    def test_chunked_upload(self):
        pieces = [os.urandom(n) for n in (1, 4096, 70000, 3)]
        data = b"".join(pieces)
        # a chunk extension, several chunks and a trailer
        body = b"1;name=v\r\n" + pieces[0] + b"\r\n" + chunked(pieces[1:], b"X-Trailer: t\r\n")
        c = self.conn()
        c.send(req("PUT", "/ch", headers={"Transfer-Encoding": "chunked"}) + body)
        st, h, resp = c.response()
        self.assertEqual(st, 200, resp)
        self.assertEqual(json.loads(resp)["sha256"], hashlib.sha256(data).hexdigest())
        self.assertEqual(self.call("GET", "/ch")[2], data)
        # http.client's chunked encoding, from a generator
        hc = http.client.HTTPConnection(self.host, self.port, timeout=10)
        hc.request("PUT", "/ch2", body=iter(pieces), encode_chunked=True)
        r = hc.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(json.loads(r.read())["size"], len(data))
        hc.close()
        # bad framing: 400, nothing stored
        st, out = self.status_of(req("PUT", "/bad", headers={"Transfer-Encoding": "chunked"}) +
                                 b"5\r\nhelloXX0\r\n\r\n")
        self.assertEqual(st, 400)
        self.assertEqual(self.call("GET", "/bad")[0], 404)
        self.assertEqual(self.tmp_files(), [])

    def test_expect_continue(self):
        c = self.conn()
        c.send(req("PUT", "/e", headers={"Content-Length": "5", "Expect": "100-continue"}))
        st, h, body = c.response()
        self.assertEqual(st, 100)
        c.send(b"hello")
        st, h, body = c.response()
        self.assertEqual(st, 200)
        self.assertEqual(self.call("GET", "/e")[2], b"hello")

    def test_keep_alive_and_pipelining(self):
        c = self.conn()
        steps = [
            (req("PUT", "/ka/one", b"1111"), "PUT", 200),
            (req("GET", "/ka/one"), "GET", 200),
            (req("HEAD", "/ka/one"), "HEAD", 200),
            (req("GET", "/ka/one", headers={"Range": "bytes=1-2"}), "GET", 206),
            (req("GET", "/ka/none"), "GET", 404),
            (req("GET", "/ka/%2e%2e/x"), "GET", 400),
            (req("DELETE", "/ka/one"), "DELETE", 200),
            (req("GET", "/ka/one"), "GET", 404),
        ]
        for payload, method, want in steps:
            c.send(payload)
            st, h, body = c.response(head_only=method == "HEAD")
            self.assertEqual(st, want, payload)
            self.assertNotIn("connection", h)
        # pipelined: all requests in one write, answers in order
        c.send(req("PUT", "/p/a", b"A" * 1000) + req("PUT", "/p/b", b"B" * 2000) +
               req("GET", "/p/a") + req("GET", "/p/b") + req("DELETE", "/p/a") + req("GET", "/p/a"))
        got = [c.response() for _ in range(6)]
        self.assertEqual([g[0] for g in got], [200, 200, 200, 200, 200, 404])
        self.assertEqual(got[2][2], b"A" * 1000)
        self.assertEqual(got[3][2], b"B" * 2000)
        # Connection: close is honoured
        c.send(req("GET", "/p/b", headers={"Connection": "close"}))
        st, h, body = c.response()
        self.assertEqual((st, h["connection"]), (200, "close"))
        self.assertTrue(c.closed_by_server())

    def test_path_traversal_rejected(self):
        outside = sorted(os.listdir(self.dir))
        bad = ["/..", "/../x", "/a/../../x", "/%2e%2e/x", "/%2E%2E/%2e%2e/etc/passwd",
               "/a/%2e/b", "/a/./b", "/.", "//a", "/a//b", "/a%2F%2Fb", "/a%2F..%2F..%2Fx",
               "/a%00b", "/a%0ab", "/a%0d%0aX-Injected:%201", "/a%7f", "/%", "/a%2", "/a%zz",
               "/%ff%fe", "/%C0%AE%C0%AE/x", "/" + "a" * 1100, "/" + "b" * 256,
               "/" + "%61" * 300]
        for p in bad:
            for m in ("PUT", "GET", "DELETE"):
                st, h, body = self.call(m, p, b"evil" if m == "PUT" else None)
                self.assertEqual(st, 400, (m, p, body))
                self.assertEqual(json.loads(body)["code"], "bad_path", (m, p))
        # a trailing slash names a directory: 404 to readers, 400 to writers
        self.assertEqual(self.call("GET", "/a/")[0], 404)
        self.assertEqual(self.call("PUT", "/a/", b"x")[0], 400)
        # raw bytes a client library would refuse to send
        for p in (b"/a\x01b", b"/a\tb", b"/\xff", b"/a b"):
            st, out = self.status_of(b"PUT " + p + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
            self.assertEqual(st, 400, p)
        # a symlink planted in the store is never followed
        os.symlink("/etc", os.path.join(self.store, "data", "etc"))
        self.assertEqual(self.call("GET", "/etc/passwd")[0], 404)
        self.assertEqual(self.call("GET", "/etc")[0], 404)
        self.assertEqual(self.call("PUT", "/etc/evil", b"x")[0], 400)
        self.assertFalse(os.path.exists("/etc/evil"))
        os.unlink(os.path.join(self.store, "data", "etc"))
        self.assertEqual(self.data_files(), [])
        self.assertEqual(sorted(os.listdir(self.dir)), outside)
        self.assert_serving()

    def test_delete_prunes_but_keeps_siblings(self):
        self.call("PUT", "/t/a/1", b"1")
        self.call("PUT", "/t/b/2", b"2")
        self.assertEqual(self.call("DELETE", "/t/a/1")[0], 200)
        self.assertFalse(os.path.exists(os.path.join(self.store, "data/t/a")))
        self.assertTrue(os.path.exists(os.path.join(self.store, "data/t/b/2")))
        # the freed name can now be a blob itself
        self.assertEqual(self.call("PUT", "/t/a", b"now a file")[0], 200)
        self.assertEqual(self.call("GET", "/t/a")[2], b"now a file")


class TestLimits(BlobstoreCase):
    extra = ["--max-size", "1000", "--header-timeout", "1", "--max-head", "4096"]

    def test_max_size(self):
        self.assertEqual(self.call("PUT", "/fits", b"x" * 1000)[0], 200)
        # announced too large: refused before any body byte is read
        st, out = self.status_of(req("PUT", "/big", headers={"Content-Length": "1001"}))
        self.assertEqual(st, 413)
        self.assertIn(b"Connection: close", out)
        self.assertEqual(json.loads(out.split(b"\r\n\r\n", 1)[1])["code"], "too_large")
        # a client that sends the body anyway still reads the 413
        st, out = self.status_of(req("PUT", "/big", b"y" * 300000))
        self.assertEqual(st, 413)
        # chunked: found out while streaming
        st, out = self.status_of(req("PUT", "/big", headers={"Transfer-Encoding": "chunked"}) +
                                 chunked([b"z" * 600, b"z" * 600]))
        self.assertEqual(st, 413)
        self.assertEqual(self.call("GET", "/big")[0], 404)
        self.assertEqual(self.data_files(), ["fits"])
        wait_for(lambda: self.tmp_files() == [], what="temp files removed")

    def test_head_limits(self):
        st, out = self.status_of(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 5000 + b"\r\n\r\n")
        self.assertEqual(st, 431)
        many = b"".join(b"X-%d: y\r\n" % i for i in range(150))
        st, out = self.status_of(b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        self.assertEqual(st, 431)
        self.assert_serving()

    def test_slowloris_timed_out(self):
        t0 = time.time()
        socks = []
        for i in range(10):
            s = socket.create_connection((self.host, self.port), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        for k in range(4):
            for s in socks:
                try:
                    s.sendall(b"X")
                except OSError:
                    pass
            time.sleep(0.25)
        for s in socks:
            out = b""
            while True:
                try:
                    d = s.recv(4096)
                except (ConnectionResetError, socket.timeout):
                    break
                if not d:
                    break
                out += d
            self.assertTrue(out.startswith(b"HTTP/1.1 408"), out)
            s.close()
        self.assertLess(time.time() - t0, 8)
        # a connection that never sends a byte is closed quietly
        s = socket.create_connection((self.host, self.port), timeout=10)
        self.assertEqual(s.recv(100), b"")
        s.close()
        self.assert_serving()


class TestHostile(BlobstoreCase):
    def test_bad_requests(self):
        cases = [
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET\r\n\r\n", 400),
            (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505),
            (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX: 1\r\n folded\r\n\r\n", 400),
            (b"FOO /x HTTP/1.1\r\nHost: x\r\n\r\n", 405),
            (b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx", 405),
            (b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
            (b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
            (b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
            (b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
            (b"PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (b"PUT /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
            (b"PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
        ]
        for payload, want in cases:
            st, out = self.status_of(payload)
            self.assertEqual(st, want, (payload, out))
            body = json.loads(out.split(b"\r\n\r\n", 1)[1])
            self.assertTrue(body["code"] and body["message"], out)
            self.assertIn(b"Connection: close", out)
        self.assertEqual(self.data_files(), [])
        self.assertEqual(self.tmp_files(), [])
        # a refused request without a body keeps the connection
        c = self.conn()
        c.send(req("PATCH", "/x"))
        st, h, body = c.response()
        self.assertEqual((st, h["allow"]), (405, "GET, HEAD, PUT, DELETE"))
        c.send(req("GET", "/_status"))
        self.assertEqual(c.response()[0], 200)
        self.assert_serving()

    def test_garbage_and_disconnects(self):
        for i in range(30):
            st, out = self.status_of(os.urandom(3000) + b"\r\n\r\n")
            self.assertEqual(st, 400)
        for i in range(3):  # no end of head: the daemon waits for more, then 408
            try:
                self.raw(os.urandom(1000).replace(b"\n", b"_"), timeout=0.5)
            except OSError:
                pass
        for i in range(20):
            s = socket.create_connection((self.host, self.port), timeout=10)
            s.sendall(req("PUT", "/gone/%d" % i, headers={"Content-Length": "1000000"}) + b"x" * 1000)
            s.close()
        s = socket.create_connection((self.host, self.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 50)  # then go away without reading
        s.close()
        wait_for(lambda: self.tmp_files() == [], what="temp files removed")
        self.assertEqual(self.data_files(), [])
        self.assert_serving()


class TestBig(BlobstoreCase):
    SIZE = 200 * MB

    def sampler(self, pid, out, stop):
        while not stop.is_set():
            try:
                out.append(rss_kb(pid))
            except (OSError, AssertionError):
                return
            time.sleep(0.02)

    def test_200mb_round_trip_with_flat_memory(self):
        pid = self.bs.proc.pid
        self.call("PUT", "/warm", b"w" * 100000)  # first-use allocations
        self.call("GET", "/warm")
        base = rss_kb(pid)
        samples, stop = [], threading.Event()
        t = threading.Thread(target=self.sampler, args=(pid, samples, stop))
        t.start()
        try:
            block = os.urandom(MB)
            h = hashlib.sha256()
            hc = http.client.HTTPConnection(self.host, self.port, timeout=60)
            # the checksum is given up front, so the daemon verifies it as it streams
            for i in range(self.SIZE // MB):
                h.update(block[i:] + block[:i])
            sha = h.hexdigest()
            hc.putrequest("PUT", "/big/blob.bin")
            hc.putheader("Content-Length", str(self.SIZE))
            hc.putheader("X-Checksum-Sha256", sha)
            hc.endheaders()
            for i in range(self.SIZE // MB):
                hc.send(block[i:] + block[:i])
            r = hc.getresponse()
            body = r.read()
            self.assertEqual(r.status, 200, body)
            self.assertEqual(json.loads(body), {"path": "/big/blob.bin", "size": self.SIZE, "sha256": sha})
            up_peak = max(samples)
            self.assertEqual(os.path.getsize(os.path.join(self.store, "data/big/blob.bin")), self.SIZE)

            samples.clear()
            hc.request("GET", "/big/blob.bin")
            r = hc.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.getheader("X-Checksum-Sha256"), sha)
            self.assertEqual(int(r.getheader("Content-Length")), self.SIZE)
            h2, n = hashlib.sha256(), 0
            while True:
                d = r.read(MB)
                if not d:
                    break
                h2.update(d)
                n += len(d)
            self.assertEqual((n, h2.hexdigest()), (self.SIZE, sha))
            down_peak = max(samples)

            # a slow reader: the daemon stops queueing file data, it does not buffer it
            samples.clear()
            slow = socket.create_connection((self.host, self.port), timeout=10)
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            slow.sendall(req("GET", "/big/blob.bin"))
            slow.recv(65536)
            time.sleep(1)
            self.assert_serving()  # and others are served meanwhile
            slow_peak = max(samples)
            slow.close()
            hc.close()
        finally:
            stop.set()
            t.join()
        if os.environ.get("T6100_VERBOSE"):
            print("rss base %d upload %d download %d slow %d kB" % (base, up_peak, down_peak, slow_peak))
        for what, peak in (("upload", up_peak), ("download", down_peak), ("slow reader", slow_peak)):
            self.assertLess(peak, rss_limit_kb(), "%s: RSS %d kB (base %d kB)" % (what, peak, base))
            self.assertLess(peak - base, 16 * 1024, "%s: RSS grew %d kB" % (what, peak - base))


class TestDaemon(TestCase):
    def test_wildcard_and_bad_listen_refused(self):
        store = os.path.join(self.dir, "store")
        for addr, word in (("0.0.0.0:0", "wildcard"), ("[::]:0", "wildcard"), (":5002", "bad listen"),
                           ("localhost:0", "not a name"), ("[::ffff:0.0.0.0]:0", "wildcard")):
            p = subprocess.run([binpath("flynn-blobstore"), "--dir", store, "--listen", addr],
                               capture_output=True, timeout=10)
            self.assertNotEqual(p.returncode, 0, addr)
            self.assertIn(word, p.stderr.decode(), addr)
        p = subprocess.run([binpath("flynn-blobstore"), "--listen", "127.0.0.1:0"], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--dir", p.stderr.decode())

    def test_restart_keeps_blobs_and_one_daemon_per_dir(self):
        store = os.path.join(self.dir, "store")
        args = ["--dir", store, "--listen", "127.0.0.1:0", "--listen", "127.0.0.2:0"]
        d = self.start("flynn-blobstore", args)
        self.assertTrue(d.listen.startswith("127.0.0.1:"))
        c = Conn(d.listen)
        c.send(req("PUT", "/persist/me", b"durable"))
        st, h, body = c.response()
        c.close()
        self.assertEqual(st, 200)
        sha = json.loads(body)["sha256"]
        # a second daemon on the same directory is refused
        p = subprocess.run([binpath("flynn-blobstore"), "--dir", store, "--listen", "127.0.0.1:0"],
                           capture_output=True, timeout=10)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("in use", p.stderr.decode())
        # a clean stop on SIGTERM, with an upload in flight
        host, port = d.listen.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
        s.sendall(req("PUT", "/inflight", headers={"Content-Length": "100"}) + b"x" * 10)
        time.sleep(0.2)
        self.assertEqual(d.stop(), 0)
        s.close()
        self.assertEqual(os.listdir(os.path.join(store, "tmp")), [])
        with open(os.path.join(store, "tmp", "put.99"), "wb") as f:
            f.write(b"left by a crash")
        d2 = self.start("flynn-blobstore", args)
        c = Conn(d2.listen)
        c.send(req("GET", "/persist/me"))
        st, h, body = c.response()
        c.close()
        self.assertEqual((st, body, h["x-checksum-sha256"]), (200, b"durable", sha))
        self.assertEqual(os.listdir(os.path.join(store, "tmp")), [])
        self.assertFalse(os.path.exists(os.path.join(store, "data", "inflight")))
