"""flynn-host: bad requests get clear errors and never hurt the daemon."""
import json

from harness import HostTestCase, raw_http, request


class TestHostile(HostTestCase):
    def host_port(self):
        h, p = self.hostd.listen.rsplit(":", 1)
        return h, int(p)

    def put(self, jid, body, raw=False):
        return request("PUT", self.hostd.url + "/host/jobs/" + jid, body, raw=raw)

    def test_bad_bodies(self):
        jid = self.new_id()
        cases = [
            (b"{not json", 400, "invalid JSON"),
            (b"", 400, "empty"),
            (b"[1,2]", 400, "JSON object"),
            (b'{"config": {}}', 400, "config.args"),
            (b'{"config": {"args": []}}', 400, "config.args"),
            (b'{"config": {"args": [1]}}', 400, "config.args"),
            (b'{"config": {"args": ["x"], "env": {"A": 1}}}', 400, "config.env.A"),
            (b'{"config": {"args": ["x"], "env": {"A=B": "1"}}}', 400, "config.env key"),
            (b'{"config": {"args": ["x"], "ports": [{"port": 70000}]}}', 400, "config.ports"),
            (b'{"config": {"args": ["x"], "working_dir": "rel"}}', 400, "working_dir"),
            (b'{"config": {"args": ["x"], "mounts": [{"location": "/a", "target": "/../etc"}]}}', 400, "mounts"),
            (b'{"config": {"args": ["x"]}, "resources": {"memory": {"limit": -1}}}', 400, "memory"),
            (b'{"config": {"args": ["x"]}, "mountspecs": [{"type": "squashfs"}]}', 400, "mountspecs"),
            (b'{"config": {"args": ["x"]}, "root": {"stack": "../../etc"}}', 400, "stack"),
            (b'{"config": {"args": ["x"]}, "root": {"stack": "nosuch"}}', 404, "stack"),
            (b'{"id": "other", "config": {"args": ["x"]}}', 400, "id"),
            (b'{"a": 1, "a": 2, "config": {"args": ["x"]}}', 400, "duplicate"),
            (b'{"config": {"args": ["x"]}, "surprise": 1}', 400, "unknown field 'surprise'"),
            (b'{"config": {"args": ["x"], "privileged": true}}', 400, "unknown field 'config.privileged'"),
        ]
        for body, status, word in cases:
            r = self.put(jid, body, raw=True)
            self.assertEqual(r.status, status, (body, r))
            self.assertIn(word, r.json()["message"], (body, r))
            self.assertIn("code", r.json())
        self.assertIsNone(self.host.job(jid))  # nothing was created

    def test_bad_ids_and_routes(self):
        for jid in ("..", "a%2Fb", "a%20b", "x" * 200):
            r = self.put(jid, {"config": {"args": ["true"]}})
            self.assertEqual(r.status, 400, (jid, r))
        self.assertEqual(request("GET", self.hostd.url + "/host/nothing").status, 404)
        self.assertEqual(request("POST", self.hostd.url + "/host/jobs").status, 405)
        self.assertEqual(request("GET", self.hostd.url + "/host/jobs/nope").status, 404)
        self.assertEqual(request("DELETE", self.hostd.url + "/host/jobs/nope").status, 404)

    def test_duplicate_id(self):
        jid, _ = self.start_job(["sleep", "100"])
        r = self.put(jid, {"config": {"args": ["true"]}})
        self.assertEqual(r.status, 409)
        self.host.stop(jid)

    def test_huge_body_and_headers(self):
        h, p = self.host_port()
        # the daemon answers 413 from the headers alone, before any of the body
        out = raw_http(h, p, b"PUT /host/jobs/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n{" % (self.new_id().encode(), 2 << 20))
        self.assertIn(b" 413 ", out.split(b"\r\n")[0])
        # a chunked body that grows past the limit is cut off too
        out = raw_http(h, p, b"PUT /host/jobs/%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       % self.new_id().encode() + (b"100000\r\n" + b"a" * 0x100000 + b"\r\n") * 2)
        self.assertIn(b" 413 ", out.split(b"\r\n")[0])
        out = raw_http(h, p, b"GET /host/status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n")
        self.assertTrue(out == b"" or b" 400 " in out.split(b"\r\n")[0] or b" 431 " in out.split(b"\r\n")[0], out[:200])

    def test_malformed_http(self):
        h, p = self.host_port()
        for payload in (b"GARBAGE\r\n\r\n",
                        b"GET\r\n\r\n",
                        b"PUT /host/jobs/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
                        b"PUT /host/jobs/x HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                        b"\x00\x01\x02\x03\r\n\r\n"):
            out = raw_http(h, p, payload, timeout=3)
            first = out.split(b"\r\n")[0]
            self.assertRegex(first.decode(errors="replace"), r"^($|HTTP/1.1 (400|405|413|501) )", (payload, out[:200]))
        # and the daemon still answers
        r = request("GET", self.hostd.url + "/host/status")
        self.assertEqual(r.status, 200)
        st = r.json()
        self.assertEqual(st["id"], self.host_id)
        self.assertIn(st["cgroup_mode"], ("v1", "v2", "hybrid"))
        self.assertTrue(st["network"]["subnet"].startswith("100.101."))
