"""flynn-router: HTTPS with SNI (route certificate, else the cluster's
wildcard), TLS 1.2 and 1.3 only, HTTP/2 over ALPN."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import unittest

from t3router_util import RouterTestCase, http_route


def make_cert(d, name, sans):
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=" + sans[0], "-addext",
                    "subjectAltName=" + ",".join("DNS:" + s for s in sans),
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    return crt, key


class TestTLS(RouterTestCase):
    def setUp(self):
        super().setUp()
        self.wild_crt, self.wild_key = make_cert(self.dir, "wild", ["*.cluster.test"])
        self.own_crt, self.own_key = make_cert(self.dir, "own", ["own.test"])
        self.a = self.backend("a")
        self.b = self.backend("b")
        with open(self.own_crt) as f:
            crt = f.read()
        with open(self.own_key) as f:
            key = f.read()
        self.start_router([http_route("app.cluster.test", [self.a]),
                           http_route("own.test", [self.b], certificate={"cert": crt, "key": key})],
                          extra=["--cert", self.wild_crt, "--key", self.wild_key], https=True)
        h, p = self.addrs["https"].rsplit(":", 1)
        self.tls_port = int(p)

    def ctx(self, minv=None, maxv=None, alpn=None):
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        if minv:
            c.minimum_version = minv
        if maxv:
            c.maximum_version = maxv
        if alpn:
            c.set_alpn_protocols(alpn)
        return c

    def handshake(self, sni, **kw):
        s = socket.create_connection(("127.0.0.1", self.tls_port), timeout=10)
        return self.ctx(**kw).wrap_socket(s, server_hostname=sni)

    def der(self, path):
        with open(path) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    def https_get(self, sni, host, path="/", **kw):
        s = self.handshake(sni, **kw)
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host))
                  .encode())
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        s.close()
        head, _, body = out.partition(b"\r\n\r\n")
        return int(head[9:12]), body

    def test_sni_picks_certificate(self):
        s = self.handshake("own.test")
        self.assertEqual(s.getpeercert(binary_form=True), self.der(self.own_crt))
        s.close()
        s = self.handshake("app.cluster.test")
        self.assertEqual(s.getpeercert(binary_form=True), self.der(self.wild_crt))
        s.close()
        s = self.handshake("unknown.test")  # no route: the wildcard, then a 404
        self.assertEqual(s.getpeercert(binary_form=True), self.der(self.wild_crt))
        s.close()

    def test_https_proxying_and_headers(self):
        st, body = self.https_get("own.test", "own.test", "/x")
        self.assertEqual(st, 200)
        info = json.loads(body)
        self.assertEqual(info["name"], "b")
        self.assertEqual(info["headers"]["x-forwarded-proto"], "https")
        self.assertEqual(info["headers"]["x-forwarded-port"], str(self.tls_port))
        st, body = self.https_get("app.cluster.test", "app.cluster.test")
        self.assertEqual(json.loads(body)["name"], "a")
        st, body = self.https_get("app.cluster.test", "nothing.test")
        self.assertEqual(st, 404)

    def test_tls_versions(self):
        s = self.handshake("own.test", maxv=ssl.TLSVersion.TLSv1_2)
        self.assertEqual(s.version(), "TLSv1.2")
        s.close()
        s = self.handshake("own.test", minv=ssl.TLSVersion.TLSv1_3)
        self.assertEqual(s.version(), "TLSv1.3")
        s.close()
        old = shutil.which("openssl")
        r = subprocess.run([old, "s_client", "-connect", "127.0.0.1:%d" % self.tls_port,
                            "-servername", "own.test", "-tls1_1"], input=b"",
                           capture_output=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertGreaterEqual(self.metrics()["flynn_router_tls_handshakes_total"], 2)

    def test_alpn(self):
        s = self.handshake("own.test", alpn=["http/1.1"])
        self.assertEqual(s.selected_alpn_protocol(), "http/1.1")
        s.close()

    def test_records_that_arrive_together(self):
        """The router reads TLS with read-ahead: records that came in one
        segment with the handshake's end or with each other are all served
        (none waits in OpenSSL's buffer for a socket wakeup that never
        comes)."""
        raw = socket.create_connection(("127.0.0.1", self.tls_port), timeout=10)
        inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = self.ctx(minv=ssl.TLSVersion.TLSv1_3).wrap_bio(inc, outg, server_hostname="own.test")
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(outg.read())
                d = raw.recv(65536)
                self.assertTrue(d, "EOF during the handshake")
                inc.write(d)
        req = "GET /%s HTTP/1.1\r\nHost: own.test\r\n%s\r\n"
        # the client's Finished and the first request in one segment
        obj.write((req % ("one", "")).encode())
        raw.sendall(outg.read())
        # then two pipelined requests, two records, one segment
        obj.write((req % ("two", "")).encode())
        obj.write((req % ("three", "Connection: close\r\n")).encode())
        raw.sendall(outg.read())
        out = b""
        while True:
            try:
                out += obj.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            d = raw.recv(65536)
            if not d:
                break
            inc.write(d)
        raw.close()
        self.assertEqual(out.count(b"HTTP/1.1 200 "), 3, out[:400])
        paths = [json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1 ")[0])["path"]
                 for part in out.split(b"HTTP/1.1 200 ")[1:]]
        self.assertEqual(paths, ["/one", "/two", "/three"])

    def test_http2_with_curl(self):
        curl = shutil.which("curl")
        if not curl:
            raise unittest.SkipTest("curl not installed")
        v = subprocess.run([curl, "-V"], capture_output=True, text=True).stdout
        if "HTTP2" not in v:
            raise unittest.SkipTest("curl without HTTP/2")
        out = os.path.join(self.dir, "body")
        big = os.path.join(self.dir, "up")
        with open(big, "wb") as f:
            f.write(os.urandom(3 * 1024 * 1024))
        r = subprocess.run([curl, "-sk", "--http2", "--resolve",
                            "own.test:%d:127.0.0.1" % self.tls_port,
                            "-o", out, "-w", "%{http_version} %{http_code}",
                            "https://own.test:%d/h2?x=1" % self.tls_port,
                            "-H", "X-Request-Id: h2-test"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.stdout, "2 200", r.stderr)
        with open(out) as f:
            info = json.load(f)
        self.assertEqual(info["path"], "/h2?x=1")
        self.assertEqual(info["headers"]["host"], "own.test:%d" % self.tls_port)
        self.assertEqual(info["headers"]["x-request-id"], "h2-test")
        self.assertEqual(info["headers"]["x-forwarded-proto"], "https")
        # an upload and several streams on one connection
        r = subprocess.run([curl, "-sk", "--http2", "--resolve",
                            "own.test:%d:127.0.0.1" % self.tls_port,
                            "--data-binary", "@" + big, "-o", out,
                            "https://own.test:%d/up" % self.tls_port,
                            "-w", "%{http_version} %{http_code}"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.stdout, "2 200", r.stderr)
        with open(out) as f:
            info = json.load(f)
        self.assertEqual(info["body_len"], 3 * 1024 * 1024)
        urls = ["https://own.test:%d/s%d" % (self.tls_port, i) for i in range(8)]
        r = subprocess.run([curl, "-sk", "--http2", "--resolve",
                            "own.test:%d:127.0.0.1" % self.tls_port, "-Z",
                            "-w", "%{http_version} %{http_code}\n"] +
                           sum([[u, "-o", os.devnull] for u in urls], []),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.stdout.split("\n")[:8], ["2 200"] * 8, r.stderr)
        st = self.metrics()
        self.assertGreaterEqual(st["flynn_router_requests_h2_total"], 10)
        # unknown host over h2: the 404 page
        r = subprocess.run([curl, "-sk", "--http2", "--resolve",
                            "nope.test:%d:127.0.0.1" % self.tls_port,
                            "-o", out, "-w", "%{http_version} %{http_code}",
                            "https://nope.test:%d/" % self.tls_port],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.stdout, "2 404", r.stderr)

    def test_http2_large_upload_memory_bounded(self):
        curl = shutil.which("curl")
        if not curl or "HTTP2" not in subprocess.run([curl, "-V"], capture_output=True,
                                                      text=True).stdout:
            raise unittest.SkipTest("curl without HTTP/2")
        big = os.path.join(self.dir, "big")
        with open(big, "wb") as f:
            block = os.urandom(1 << 20)
            for i in range(100):
                f.write(block)
        rss0 = self.rss_kb()
        p = subprocess.Popen([curl, "-sk", "--http2", "--resolve",
                              "own.test:%d:127.0.0.1" % self.tls_port, "-T", big,
                              "-o", os.path.join(self.dir, "out"), "-w", "%{http_version} %{http_code}",
                              "https://own.test:%d/up" % self.tls_port],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = rss0
        while p.poll() is None:
            peak = max(peak, self.rss_kb())
            time.sleep(0.05)
        outp, err = p.communicate()
        self.assertEqual(outp, "2 200", err)
        with open(os.path.join(self.dir, "out")) as f:
            self.assertEqual(json.load(f)["body_len"], 100 << 20)
        self.assertLess((peak - rss0) / 1024, 40, "router RSS grew by %.1f MiB" % ((peak - rss0) / 1024))
