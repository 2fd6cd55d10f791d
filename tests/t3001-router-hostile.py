"""flynn-router: hostile input gets clear errors, never reaches a backend
ambiguously, and never hurts the router."""
import socket
import time

from t3router_util import RouterTestCase, http_route


class TestHostile(RouterTestCase):
    def setUp(self):
        super().setUp()
        self.a = self.backend("a")
        self.start_router([http_route("a.test", [self.a])],
                          extra=["--header-timeout", "1", "--max-head", "8192"])

    def status_of(self, payload):
        out = self.raw(payload)
        self.assertTrue(out.startswith(b"HTTP/1.1 "), (payload[:80], out[:200]))
        return int(out[9:12]), out

    def test_bad_request_lines(self):
        for p in [b"GARBAGE\r\n\r\n",
                  b"GET\r\n\r\n",
                  b"GET / HTTP/9.9\r\nHost: a.test\r\n\r\n",
                  b"GET  / HTTP/1.1\r\nHost: a.test\r\n\r\n",
                  b"GET /\x00 HTTP/1.1\r\nHost: a.test\r\n\r\n",
                  b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
                  b"G@T / HTTP/1.1\r\nHost: a.test\r\n\r\n",
                  b"GET / HTTP/1.1\r\nHost a.test\r\n\r\n",
                  b"GET / HTTP/1.1\r\nHost: a.test\r\nBad Name: x\r\n\r\n",
                  b"GET / HTTP/1.1\r\nHost: a.test\r\nX: a\x00b\r\n\r\n",
                  b"GET / HTTP/1.1\r\nHost: a.test\r\nX: a\rb\r\n\r\n",
                  b"GET / HTTP/1.1\r\nHost: a.test\r\nX: 1\r\n folded\r\n\r\n",
                  b"GET / HTTP/1.1\r\n\r\n",
                  b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
                  b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test\r\n\r\n"]:
            st, out = self.status_of(p)
            self.assertIn(st, (400, 405, 505), (p, out))
            self.assertIn(b"Connection: close", out)
        self.assertEqual(self.a.requests, [])
        self.assertGreater(self.metrics()["flynn_router_bad_requests_total"], 10)

    def test_smuggling_rejected(self):
        for p in [b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                  b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Length: 5\r\n\r\n0\r\n\r\n",
                  b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                  b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                  b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5, 5\r\n\r\nhello",
                  b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: -1\r\n\r\n",
                  b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: +5\r\n\r\nhello",
                  b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
                  b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: xchunked\r\n\r\n",
                  b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                  b"POST / HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                  b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
                  b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"zz\r\nhello\r\n0\r\n\r\n",
                  b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhelloXX0\r\n\r\n"]:
            st, out = self.status_of(p)
            self.assertEqual(st, 400, (p, out))
        # the chunk errors are caught after the head went on: never a second request
        for r in self.a.requests:
            self.assertEqual(r["method"], "POST")
        self.assertEqual(len(self.a.requests), 0)

    def test_huge_headers(self):
        st, out = self.status_of(b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: " + b"x" * 20000 +
                                 b"\r\n\r\n")
        self.assertEqual(st, 431)
        many = b"".join(b"X-%d: y\r\n" % i for i in range(150))
        st, out = self.status_of(b"GET / HTTP/1.1\r\nHost: a.test\r\n" + many + b"\r\n")
        self.assertEqual(st, 431)
        st, out = self.status_of(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertEqual(st, 431)
        self.assertEqual(self.a.requests, [])

    def test_slowloris_timed_out(self):
        socks = []
        t0 = time.time()
        for i in range(20):
            s = socket.create_connection((self.host, self.port), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
            socks.append(s)
        # keep dribbling a header byte at a time; the head deadline still holds
        for k in range(6):
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
        self.assertLess(time.time() - t0, 15)  # bounded by the 1 s head deadline
        self.assertGreaterEqual(self.metrics()["flynn_router_timeouts_total"], 20)
        # the router still serves
        st, h, body = self.get("a.test", "/")
        self.assertEqual(st, 200)

    def test_idle_connection_before_any_byte_closes_quietly(self):
        s = socket.create_connection((self.host, self.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        out = b""
        while b"}" not in out:
            out += s.recv(65536)
        self.assertTrue(out.startswith(b"HTTP/1.1 200"))
        s.close()

    def test_client_gone_mid_body(self):
        for i in range(20):
            s = socket.create_connection((self.host, self.port), timeout=10)
            s.sendall(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000000\r\n\r\n" +
                      b"x" * 1000)
            s.close()
        st, h, body = self.get("a.test", "/")
        self.assertEqual(st, 200)
        self.assertTrue(self.router.alive())

    def test_garbage_flood(self):
        import os
        for i in range(30):
            try:
                self.raw(os.urandom(2000), timeout=2)
            except OSError:
                pass
        self.assertTrue(self.router.alive())
        self.assertEqual(self.get("a.test", "/")[0], 200)
