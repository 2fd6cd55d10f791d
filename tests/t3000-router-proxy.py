"""flynn-router: HTTP/1.1 proxying against scripted backends."""
import hashlib
import http.client
import json
import os
import socket
import time

from t3router_util import (RouterTestCase, free_port, http_route, pattern, wait_for, ws_frame,
                           ws_open, ws_read)


class TestRouting(RouterTestCase):
    def setUp(self):
        super().setUp()
        self.a = self.backend("a")
        self.api = self.backend("api")
        self.b = self.backend("b")
        self.w = self.backend("wild")
        self.start_router([
            http_route("a.test", [self.a]),
            http_route("a.test", [self.api], path="/api/"),
            http_route("a.test", [self.api], path="/api/v2/deep"),
            http_route("b.test", [self.b]),
            http_route("*.wild.test", [self.w]),
        ])

    def name(self, host, path):
        st, h, body = self.get(host, path)
        self.assertEqual(st, 200, (host, path, body))
        return json.loads(body)["name"]

    def test_host_and_longest_prefix(self):
        self.assertEqual(self.name("a.test", "/"), "a")
        self.assertEqual(self.name("a.test", "/apiary"), "a")
        self.assertEqual(self.name("a.test", "/api"), "api")
        self.assertEqual(self.name("a.test", "/api/"), "api")
        self.assertEqual(self.name("a.test", "/api/x?q=1"), "api")
        self.assertEqual(self.name("a.test", "/api/v2/deep/er"), "api")
        self.assertEqual(self.name("b.test", "/api/"), "b")
        self.assertEqual(self.name("A.TEST:8080", "/api/x"), "api")
        self.assertEqual(self.name("x.wild.test", "/"), "wild")
        self.assertEqual(self.name("y.x.wild.test", "/"), "wild")

    def test_unknown_host_404_page(self):
        st, h, body = self.get("nobody.test", "/secret")
        self.assertEqual(st, 404)
        self.assertIn(b"404 Not Found", body)
        self.assertIn("text/html", h["content-type"])
        for leak in (b"127.0.0.1", b"a.test", str(self.a.port).encode(), b"nobody"):
            self.assertNotIn(leak, body)
        self.assertEqual(self.a.requests, [])
        # the connection stays usable after a 404
        c = self.conn()
        c.request("GET", "/", headers={"Host": "nobody.test"})
        self.assertEqual(c.getresponse().read() and 404, 404)
        c.request("GET", "/", headers={"Host": "a.test"})
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        r.read()
        c.close()
        wait_for(lambda: any("status=404" in l for l in self.access_lines()), what="access log")
        self.assertEqual(self.metrics()["flynn_router_no_route_total"], 2)

    def test_forwarded_headers(self):
        t0 = int(time.time() * 1000)
        st, h, body = self.get("a.test", "/h", {"X-Forwarded-For": "10.1.2.3",
                                                "X-Forwarded-Proto": "https",
                                                "X-Request-Id": "req-123"})
        info = json.loads(body)
        hd = info["headers"]
        self.assertEqual(hd["x-forwarded-for"], "10.1.2.3, 127.0.0.1")
        self.assertEqual(hd["x-forwarded-proto"], "http")
        self.assertEqual(hd["x-forwarded-port"], str(self.port))
        self.assertEqual(hd["x-request-id"], "req-123")
        start = int(hd["x-request-start"])
        self.assertTrue(t0 - 5000 <= start <= int(time.time() * 1000) + 1000, start)
        # one of each, no duplicates
        names = [k.lower() for k, v in info["raw_headers"]]
        for n in ("x-forwarded-for", "x-forwarded-proto", "x-request-id", "host"):
            self.assertEqual(names.count(n), 1, n)
        # hop-by-hop headers do not reach the backend
        st, h, body = self.get("a.test", "/h", {"Connection": "keep-alive, X-Secret",
                                                "X-Secret": "1", "Keep-Alive": "timeout=5"})
        hd = json.loads(body)["headers"]
        self.assertNotIn("x-secret", hd)
        self.assertNotIn("keep-alive", hd)
        # a request id is made when there is none (or a bad one)
        st, h, body = self.get("a.test", "/h", {"X-Request-Id": "bad id <script>"})
        rid = json.loads(body)["headers"]["x-request-id"]
        self.assertRegex(rid, r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        self.assertEqual(h["x-backend"], "a")

    def test_keepalive_both_sides(self):
        c = self.conn()
        ports = set()
        for i in range(20):
            c.request("GET", "/k%d" % i, headers={"Host": "a.test"})
            r = c.getresponse()
            info = json.loads(r.read())
            ports.add(info["peer_port"])
        c.close()
        self.assertEqual(len(ports), 1, "one upstream connection reused")
        self.assertEqual(self.a.conns, 1)
        m = self.metrics()
        self.assertEqual(m["flynn_router_connections_total"], 1)
        self.assertGreaterEqual(m["flynn_router_upstream_reuses_total"], 19)

    def test_pipelined_requests(self):
        out = self.raw(b"GET /p1 HTTP/1.1\r\nHost: a.test\r\n\r\n"
                       b"GET /p2 HTTP/1.1\r\nHost: nobody\r\n\r\n"
                       b"GET /p3 HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n")
        self.assertEqual(out.count(b"HTTP/1.1 200"), 2, out)
        self.assertEqual(out.count(b"HTTP/1.1 404"), 1, out)
        self.assertLess(out.index(b"/p1"), out.index(b"404 Not Found"))
        self.assertLess(out.index(b"404 Not Found"), out.index(b"/p3"))

    def test_head_and_http10(self):
        st, h, body = self.get("a.test", "/x", method="HEAD")
        self.assertEqual((st, body), (200, b""))
        out = self.raw(b"GET /ten HTTP/1.0\r\nHost: a.test\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.0 200"), out)
        self.assertIn(b'"/ten"', out)

    def test_status_passthrough(self):
        st, h, body = self.get("a.test", "/status/503")
        self.assertEqual(st, 503)
        self.assertEqual(json.loads(body)["name"], "a")


class TestBodies(RouterTestCase):
    def setUp(self):
        super().setUp()
        self.a = self.backend("a")
        self.start_router([http_route("a.test", [self.a])])

    def test_chunked_upload_and_download(self):
        data = os.urandom(3 * 1024 * 1024 + 17)

        def gen():
            for i in range(0, len(data), 100000):
                yield data[i:i + 100000]

        c = self.conn()
        c.request("POST", "/up", body=gen(), headers={"Host": "a.test"}, encode_chunked=True)
        r = c.getresponse()
        info = json.loads(r.read())
        self.assertEqual(info["headers"]["transfer-encoding"], "chunked")
        self.assertEqual(info["body_len"], len(data))
        self.assertEqual(info["body_sha"], hashlib.sha256(data).hexdigest())
        # chunked download, then the same connection again
        n = 5 * 1024 * 1024 + 3
        c.request("GET", "/stream?n=%d" % n, headers={"Host": "a.test"})
        r = c.getresponse()
        self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
        got = r.read()
        self.assertEqual(len(got), n)
        self.assertEqual(got, pattern(n))
        c.request("PUT", "/cl", body=b"x" * 1000, headers={"Host": "a.test"})
        info = json.loads(c.getresponse().read())
        self.assertEqual((info["method"], info["body_len"]), ("PUT", 1000))
        c.close()

    def test_body_until_close(self):
        st, h, body = self.get("a.test", "/close?n=300000")
        self.assertEqual(st, 200)
        self.assertEqual(body, pattern(300000))
        self.assertEqual(h.get("connection"), "close")

    def test_expect_100_continue(self):
        s = socket.create_connection((self.host, self.port), timeout=10)
        s.sendall(b"POST /e HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        first = s.recv(100)
        self.assertTrue(first.startswith(b"HTTP/1.1 100"), first)
        s.sendall(b"hello")
        out = b""
        while b"body_len" not in out:
            out += s.recv(65536)
        s.close()
        self.assertIn(b'"body_len": 5', out)

    def test_large_upload_memory_flat(self):
        total = 1024 * 1024 * 1024  # 1 GiB, as issue 5 asks
        block = os.urandom(1 << 20)
        # warm up, then measure
        self.get("a.test", "/warm", method="POST", body=block)
        rss0 = self.rss_kb()
        peak = [rss0]

        def gen():
            for i in range(total // len(block)):
                if i % 16 == 0:
                    peak[0] = max(peak[0], self.rss_kb())
                yield block

        c = self.conn(timeout=300)
        c.request("POST", "/big", body=gen(), headers={"Host": "a.test"}, encode_chunked=True)
        info = json.loads(c.getresponse().read())
        c.close()
        self.assertEqual(info["body_len"], total)
        peak[0] = max(peak[0], self.rss_kb())
        grown_mb = (peak[0] - rss0) / 1024
        self.assertLess(grown_mb, 40, "router RSS grew by %.1f MiB for a 1 GiB upload" % grown_mb)

    def test_slow_reader_download(self):
        # a client that reads slowly: the router must not buffer the whole body
        n = 64 * 1024 * 1024
        s = socket.create_connection((self.host, self.port), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /stream?n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % n)
        rss0 = self.rss_kb()
        time.sleep(1.0)  # the backend writes as fast as it can meanwhile
        rss1 = self.rss_kb()
        got = 0
        tail = b""  # the end may arrive split across two reads
        while True:
            try:
                d = s.recv(1 << 20)
            except socket.timeout:
                self.fail("stalled after %d of about %d bytes; last bytes %r; router metrics %s;"
                          " router log ends:\n%s" % (got, n, tail, self.metrics(),
                                                     self.router.read_log()[-3000:]))
            if not d:
                break
            got += len(d)
            tail = (tail + d)[-64:]
            if tail.endswith(b"\r\n0\r\nX-Trailer: done\r\n\r\n"):
                break
        s.close()
        self.assertGreater(got, n)
        self.assertLess((rss1 - rss0) / 1024, 16, "router buffered a slow reader's body")


class TestUpgradeRetry(RouterTestCase):
    def test_websocket_echo(self):
        a = self.backend("a")
        self.start_router([http_route("ws.test", [a])])
        s, f, status, hdrs, want = ws_open((self.host, self.port), "ws.test")
        self.assertIn(b"101", status)
        self.assertEqual(hdrs["sec-websocket-accept"], want)
        self.assertEqual(hdrs["upgrade"].lower(), "websocket")
        for msg in (b"hello", b"x" * 300, os.urandom(100000)):
            s.sendall(ws_frame(msg, 2))
            op, data = ws_read(f)
            self.assertEqual((op, data), (2, msg))
        s.sendall(ws_frame(b"\x03\xe8", 8))
        op, data = ws_read(f)
        self.assertEqual(op, 8)
        self.assertEqual(f.read(), b"")  # both sides close
        s.close()
        self.assertEqual(self.metrics()["flynn_router_upgrades_total"], 1)

    def test_retry_on_refused_backend(self):
        a = self.backend("a")
        dead = "127.0.0.1:%d" % free_port()
        self.start_router([http_route("r.test", [dead, a])])
        for i in range(6):
            st, h, body = self.get("r.test", "/r%d" % i)
            self.assertEqual(st, 200, body)
        m = self.metrics()
        self.assertGreaterEqual(m["flynn_router_retries_total"], 3)
        self.assertGreaterEqual(m["flynn_router_upstream_errors_total"], 3)

    def test_backend_that_never_answers_a_connect(self):
        # a listener whose accept queue is full drops SYNs, like a host that is
        # gone: the connect gets --connect-timeout, then the next backend
        stuck = socket.socket()
        stuck.bind(("127.0.0.1", 0))
        stuck.listen(0)
        fillers = []
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(stuck.getsockname())
            fillers.append(f)
        self.addCleanup(lambda: [x.close() for x in fillers + [stuck]])
        time.sleep(0.2)
        dead = "127.0.0.1:%d" % stuck.getsockname()[1]
        a = self.backend("a")
        self.start_router([http_route("n.test", [dead, a]), http_route("only.test", [dead]),
                           {"type": "tcp", "id": "t", "port": self.tcp_port(), "service": "s",
                            "backends": [dead, a.addr]}],
                          extra=["--connect-timeout", "0.3", "--tcp-range",
                                 "%d-%d" % (self._tcp_port, self._tcp_port)])
        t0 = time.time()
        for i in range(4):
            st, h, body = self.get("n.test", "/n%d" % i)
            self.assertEqual(st, 200, body)
        self.assertLess(time.time() - t0, 10)
        t0 = time.time()
        st, h, body = self.get("only.test", "/")
        self.assertEqual(st, 504, body)
        self.assertNotIn(dead.encode(), body)
        self.assertLess(time.time() - t0, 10, "a 504 after the connect timeout, not a hang")
        m = self.metrics()
        self.assertGreaterEqual(m["flynn_router_retries_total"], 2)
        # a TCP route moves on to the next backend the same way
        for i in range(2):
            c = http.client.HTTPConnection("127.0.0.1", self._tcp_port, timeout=10)
            c.request("GET", "/tcp%d" % i, headers={"Host": "x"})
            self.assertEqual(c.getresponse().status, 200)
            c.close()

    def tcp_port(self):
        self._tcp_port = free_port()
        return self._tcp_port

    def test_all_backends_down_502(self):
        dead = ["127.0.0.1:%d" % free_port() for _ in range(2)]
        self.start_router([http_route("d.test", dead), http_route("e.test", [])])
        st, h, body = self.get("d.test", "/")
        self.assertEqual(st, 502)
        self.assertNotIn(b"127.0.0.1", body)
        st, h, body = self.get("e.test", "/")
        self.assertEqual(st, 503)

    def test_stale_pooled_connection_retried(self):
        a = self.backend("a")
        self.start_router([http_route("s.test", [a])])
        self.assertEqual(self.get("s.test", "/1")[0], 200)
        # the backend closes its idle keep-alive connections
        a.close()
        b = self.backend("a2")
        self.reload([http_route("s.test", [b])])
        self.assertEqual(self.get("s.test", "/2")[0], 200)

    def test_reload_and_drain(self):
        a = self.backend("a")
        b = self.backend("b")
        self.start_router([http_route("x.test", [a])])
        self.assertEqual(json.loads(self.get("x.test", "/")[2])["name"], "a")
        self.reload([http_route("x.test", [b]), http_route("y.test", [a])])
        self.assertEqual(json.loads(self.get("x.test", "/")[2])["name"], "b")
        self.assertEqual(json.loads(self.get("y.test", "/")[2])["name"], "a")
        # a bad file keeps the old table
        with open(self.routes_path, "w") as f:
            f.write("{not json")
        import signal
        self.router.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.metrics()["flynn_router_reload_errors_total"] == 1, what="error")
        self.assertEqual(json.loads(self.get("x.test", "/")[2])["name"], "b")
        self.assertTrue(self.router.alive())


class TestTimeouts(RouterTestCase):
    def test_slow_backend_outlives_client_idle_timeout(self):
        a = self.backend("a")
        self.start_router([http_route("a.test", [a])], extra=["--idle-timeout", "1"])
        st, h, body = self.get("a.test", "/sleep?s=2.5")
        self.assertEqual(st, 200, body)

    def test_idle_keepalive_connection_closed(self):
        a = self.backend("a")
        self.start_router([http_route("a.test", [a])], extra=["--idle-timeout", "1"])
        s = socket.create_connection((self.host, self.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        out = b""
        t0 = time.time()
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        s.close()
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out)
        self.assertLess(time.time() - t0, 5)


class TestDrain(RouterTestCase):
    def test_request_in_flight_finishes_on_removed_backend(self):
        import threading
        a = self.backend("a")
        b = self.backend("b")
        self.start_router([http_route("d.test", [a])])
        out = {}

        def slow():
            out["r"] = self.get("d.test", "/sleep?s=1.5")

        t = threading.Thread(target=slow)
        t.start()
        wait_for(lambda: any(r["path"].startswith("/sleep") for r in a.requests), what="start")
        self.reload([http_route("d.test", [b])])
        self.assertEqual(json.loads(self.get("d.test", "/new")[2])["name"], "b")
        t.join(10)
        st, h, body = out["r"]
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body)["name"], "a")
        # the drained backend's connections are not reused
        n = len(a.requests)
        for i in range(3):
            self.assertEqual(json.loads(self.get("d.test", "/n%d" % i)[2])["name"], "b")
        self.assertEqual(len(a.requests), n)
