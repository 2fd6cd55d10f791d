"""flynn-router: sticky sessions, TCP routes, worker processes."""
import json
import os
import socket
import socketserver
import threading
import time

from t3router_util import RouterTestCase, free_port, http_route, wait_for


class EchoServer:
    def __init__(self):
        class H(socketserver.BaseRequestHandler):
            def handle(self):
                while True:
                    d = self.request.recv(65536)
                    if not d:
                        break
                    self.request.sendall(d)
                self.request.shutdown(socket.SHUT_WR)

        class S(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = S(("127.0.0.1", 0), H)
        self.addr = "127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class TestSticky(RouterTestCase):
    def setUp(self):
        super().setUp()
        self.a = self.backend("a")
        self.b = self.backend("b")
        self.start_router([http_route("s.test", [self.a, self.b], sticky=True),
                           http_route("rr.test", [self.a, self.b])])

    def name_cookie(self, host, cookie=None):
        h = {"Cookie": cookie} if cookie else {}
        st, hd, body = self.get(host, "/", h)
        self.assertEqual(st, 200)
        return json.loads(body)["name"], hd.get("set-cookie")

    def test_sticky_cookie(self):
        name, sc = self.name_cookie("s.test")
        self.assertIsNotNone(sc)
        self.assertTrue(sc.startswith("_backend="), sc)
        self.assertIn("HttpOnly", sc)
        self.assertNotIn("127.0.0.1", sc)  # the address is not shown in clear
        cookie = sc.split(";")[0]
        for i in range(8):
            n, sc2 = self.name_cookie("s.test", "other=1; " + cookie)
            self.assertEqual(n, name)
            self.assertIsNone(sc2)  # a valid cookie is not set again
        # a forged cookie is ignored and replaced
        val = cookie.split("=", 1)[1]
        forged = "_backend=" + val[:-4] + ("0000" if not val.endswith("0000") else "1111")
        n, sc3 = self.name_cookie("s.test", forged)
        self.assertIsNotNone(sc3)
        # the other backend's cookie works too
        names = {name}
        for i in range(6):
            n, sc4 = self.name_cookie("s.test")
            names.add(n)
        self.assertEqual(names, {"a", "b"})

    def test_round_robin_without_sticky(self):
        seen = [self.name_cookie("rr.test")[0] for _ in range(6)]
        self.assertEqual(set(seen), {"a", "b"})
        self.assertIsNone(self.name_cookie("rr.test")[1])

    def test_sticky_backend_gone(self):
        name, sc = self.name_cookie("s.test")
        cookie = sc.split(";")[0]
        keep = self.b if name == "a" else self.a
        self.reload([http_route("s.test", [keep], sticky=True)])
        n, sc2 = self.name_cookie("s.test", cookie)
        self.assertEqual(n, keep.name)
        self.assertIsNotNone(sc2)


class TestTCP(RouterTestCase):
    def test_tcp_route_echo_and_removal(self):
        echo = EchoServer()
        self.cleanups_first.append(echo.close)
        port = free_port()
        a = self.backend("a")
        self.start_router([{"type": "tcp", "id": "t1", "port": port, "service": "echo",
                            "backends": ["127.0.0.1:%d" % free_port(), echo.addr]},
                           http_route("a.test", [a])],
                          extra=["--tcp-range", "1024-65535"])
        for i in range(4):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            data = os.urandom(300000)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)  # half close: the echo still comes back
            got = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
            s.close()
            self.assertEqual(got, data)
        m = self.metrics()
        self.assertEqual(m["flynn_router_tcp_connections_total"], 4)
        self.reload([http_route("a.test", [a])])

        def refused():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                return False
            except ConnectionRefusedError:
                return True
        wait_for(refused, what="tcp listener closed")


    def test_tcp_route_streams_with_a_slow_reader(self):
        # 48 MiB each way through the route while the client first reads
        # nothing, then slowly: the router's reads stop at its high-water
        # mark and resume, and every byte arrives in order.
        import hashlib
        echo = EchoServer()
        self.cleanups_first.append(echo.close)
        port = free_port()
        self.start_router([{"type": "tcp", "id": "t1", "port": port, "service": "echo",
                            "backends": [echo.addr]}],
                          extra=["--tcp-range", "1024-65535"])
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        block = os.urandom(1 << 20)
        sent = hashlib.sha256()

        def send():
            for i in range(48):
                b = block[i:] + block[:i]
                sent.update(b)
                s.sendall(b)
            s.shutdown(socket.SHUT_WR)
        th = threading.Thread(target=send, daemon=True)
        th.start()
        time.sleep(1)  # every buffer on the way fills up
        got, n = hashlib.sha256(), 0
        while True:
            d = s.recv(16384 if n < (4 << 20) else 1 << 20)
            if not d:
                break
            got.update(d)
            n += len(d)
        th.join(30)
        s.close()
        self.assertEqual(n, 48 << 20)
        self.assertEqual(got.hexdigest(), sent.hexdigest())


class TestWorkersFixedPort(RouterTestCase):
    def test_two_workers_share_the_port(self):
        from harness import binpath
        import subprocess
        a = self.backend("a")
        port = free_port()
        mport = free_port()
        self.write_routes([http_route("a.test", [a])])
        lf = os.path.join(self.dir, "listen.txt")
        d = self.start("flynn-router", ["--http-listen", "127.0.0.1:%d" % port,
                                        "--metrics-listen", "127.0.0.1:%d" % mport,
                                        "--routes-file", self.routes_path,
                                        "--access-log", "off", "--workers", "2",
                                        "--listen-file", lf])
        self.router = d
        self.host, self.port = "127.0.0.1", port
        self.addrs = {"metrics": "127.0.0.1:%d" % mport}
        with open("/proc/%d/task/%d/children" % (d.proc.pid, d.proc.pid)) as f:
            kids = [int(x) for x in f.read().split()]
        self.assertEqual(len(kids), 1)
        conns = []
        n = 100
        for i in range(n):
            c = self.conn()
            c.request("GET", "/w%d" % i, headers={"Host": "a.test"})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
            conns.append(c)
        # the kernel spreads connections over both workers; each counts its own
        m = self.metrics()
        per = [m['flynn_router_worker_connections_active{worker="%d"}' % w] for w in (0, 1)]
        self.assertEqual(sum(per), n, m)
        self.assertEqual(m["flynn_router_connections_active"], n)
        self.assertTrue(all(p > 0 for p in per), per)
        # every connection serves a second request
        for i, c in enumerate(conns):
            c.request("GET", "/again%d" % i, headers={"Host": "a.test"})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
        for c in conns:
            c.close()
        m = self.metrics()
        self.assertEqual(m["flynn_router_requests_total"], 2 * n)
        d.stop()
        time.sleep(0.2)
        for k in kids:
            self.assertFalse(os.path.exists("/proc/%d/status" % k) and
                             "zombie" not in open("/proc/%d/status" % k).read(), k)
        r = subprocess.run([binpath("flynn-router"), "--workers", "2", "--http-listen",
                            "127.0.0.1:0"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("fixed ports", r.stderr)
