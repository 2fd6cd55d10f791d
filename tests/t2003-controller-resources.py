"""Providers and resources: the controller provisions through a provider's
HTTP API (a fake one here, on loopback) and links resources to apps; Flynn's
Go CLI `resource add/remove` works on top (docs/flynn-api.md §3.6, §9)."""
import base64
import http.server
import importlib.util
import json
import os
import subprocess
import tempfile
import threading
import urllib.parse
import uuid

from harness import TestCase, request, wait_for

KEY = "res-key"
A = {"Authorization": "Basic " + base64.b64encode((":" + KEY).encode()).decode()}
HERE = os.path.dirname(os.path.abspath(__file__))


class FakeProvider:
    """POST / → a new database; DELETE /?id=X → gone. Records every call."""

    def __init__(self, fail=False):
        self.calls = []
        self.fail = fail
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                outer.calls.append(("POST", self.path, self.headers.get("Content-Type"), body))
                if outer.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                db = "db%d" % len(outer.calls)
                out = json.dumps({"id": "/databases/user:%s" % db,
                                  "env": {"DATABASE_URL": "postgres://user:pw@pg:5432/" + db,
                                          "PGDATABASE": db}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_DELETE(self):
                outer.calls.append(("DELETE", self.path, None, b""))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/databases" % self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class ResourcesTest(TestCase):
    def setUp(self):
        super().setUp()
        self.prov = FakeProvider()
        self.cleanups_first.append(self.prov.close)
        self.ctl = self.start_ctl()

    def start_ctl(self, extra=()):
        return self.start("flynn-controller", ["--listen", "127.0.0.1:0", "--data-dir",
                                               os.path.join(self.dir, "data"), "--key", KEY] + list(extra))

    def api(self, method, path, body=None, status=200):
        r = request(method, self.ctl.url + path, body, headers=A)
        self.assertEqual(r.status, status, (method, path, r))
        return r.json() if r.body.strip() and r.headers.get("Content-Type", "").startswith("application/json") else r


class TestResourcesAPI(ResourcesTest):
    def test_provider_and_resource_round_trip(self):
        p = self.api("POST", "/providers", {"name": "postgres", "url": self.prov.url})
        self.assertEqual((p["name"], p["url"]), ("postgres", self.prov.url))
        self.assertTrue(uuid.UUID(p["id"]))
        self.assertEqual(self.api("GET", "/providers/postgres"), p)
        self.assertEqual(self.api("GET", "/providers/" + p["id"]), p)
        self.assertEqual(self.api("GET", "/providers"), [p])
        r = request("POST", self.ctl.url + "/providers", {"name": "postgres", "url": self.prov.url}, headers=A)
        self.assertEqual((r.status, r.json()["code"]), (409, "object_exists"))
        for bad in ({"name": "Bad Name", "url": self.prov.url}, {"name": "x", "url": "ftp://x"}, {"name": "x"}):
            r = request("POST", self.ctl.url + "/providers", bad, headers=A)
            self.assertEqual((r.status, r.json()["code"]), (400, "validation_error"), bad)
        self.assertEqual(request("GET", self.ctl.url + "/providers/nope", headers=A).status, 404)

        app = self.api("POST", "/apps", {"name": "dbapp"})
        res = self.api("POST", "/providers/postgres/resources", {"apps": ["dbapp"], "config": None})
        self.assertEqual((res["provider"], res["external_id"], res["apps"]),
                         (p["id"], "/databases/user:db1", [app["id"]]))
        self.assertEqual(res["env"]["PGDATABASE"], "db1")
        method, path, ctype, body = self.prov.calls[0]
        self.assertEqual((method, path, ctype, json.loads(body)), ("POST", "/databases", "application/json", {}))
        self.assertEqual(self.api("GET", "/providers/postgres/resources/" + res["id"]), res)
        self.assertEqual(self.api("GET", "/providers/postgres/resources"), [res])
        self.assertEqual(self.api("GET", "/apps/dbapp/resources"), [res])
        self.assertEqual(self.api("GET", "/resources"), [res])
        ev = request("GET", self.ctl.url + "/events?object_types=resource&app_id=dbapp",
                     headers=dict(A, Accept="application/json")).json()
        self.assertEqual([e["object_id"] for e in ev], [res["id"]])

        # link another app, unlink it again
        other = self.api("POST", "/apps", {"name": "other"})
        linked = self.api("PUT", "/providers/postgres/resources/%s/apps/other" % res["id"])
        self.assertEqual(linked["apps"], [app["id"], other["id"]])
        self.assertEqual([x["id"] for x in self.api("GET", "/apps/other/resources")], [res["id"]])
        unlinked = self.api("DELETE", "/providers/postgres/resources/%s/apps/other" % res["id"])
        self.assertEqual(unlinked["apps"], [app["id"]])
        self.assertEqual(self.api("GET", "/apps/other/resources"), [])

        # config is passed through; bad app names and types are refused
        self.api("POST", "/providers/postgres/resources", {"apps": [], "config": {"size": "small"}})
        self.assertEqual(json.loads(self.prov.calls[-1][3]), {"size": "small"})
        for bad in ({"apps": ["nope"]}, {"apps": "dbapp"}, {"apps": [], "config": "x"}):
            r = request("POST", self.ctl.url + "/providers/postgres/resources", bad, headers=A)
            self.assertEqual((r.status, r.json()["code"]), (400, "validation_error"), bad)

        # delete deprovisions with the external id
        gone = self.api("DELETE", "/providers/postgres/resources/" + res["id"])
        self.assertEqual(gone["id"], res["id"])
        self.assertEqual(self.prov.calls[-1][:2],
                         ("DELETE", "/databases?id=" + urllib.parse.quote("/databases/user:db1", safe="")))
        self.assertEqual(request("GET", self.ctl.url + "/providers/postgres/resources/" + res["id"],
                                 headers=A).status, 404)
        ev = request("GET", self.ctl.url + "/events?object_types=resource_deletion",
                     headers=dict(A, Accept="application/json")).json()
        self.assertEqual(len(ev), 1)

        # restart keeps providers and resources
        self.ctl.stop()
        self.ctl = self.start_ctl()
        self.assertEqual(self.api("GET", "/providers"), [p])
        self.assertEqual(len(self.api("GET", "/resources")), 1)

    def test_provider_failures(self):
        bad = FakeProvider(fail=True)
        self.cleanups_first.append(bad.close)
        self.api("POST", "/providers", {"name": "broken", "url": bad.url})
        r = request("POST", self.ctl.url + "/providers/broken/resources", {"apps": []}, headers=A)
        self.assertEqual((r.status, r.json()["code"]), (500, "unknown_error"))
        self.assertEqual(self.api("GET", "/resources"), [])
        # nobody listening
        s = __import__("socket").socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        self.api("POST", "/providers", {"name": "dead", "url": "http://127.0.0.1:%d/x" % port})
        r = request("POST", self.ctl.url + "/providers/dead/resources", {"apps": []}, headers=A)
        self.assertEqual(r.status, 500)
        self.assertTrue(self.ctl.alive())


class TestResourceGoCLI(ResourcesTest):
    def test_resource_add_remove(self):
        go = "/work/shared/tools/flynn-go-cli"
        if not os.path.exists(go):
            self.skipTest("Flynn's Go CLI (shared/tools/flynn-go-cli) is not here")
        if not os.access("/etc/hosts", os.W_OK):
            self.skipTest("/etc/hosts is not writable")
        spec = importlib.util.spec_from_file_location("t2001", os.path.join(HERE, "t2001-controller-tls-cli.py"))
        t2001 = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(t2001)
        domain = "t2003-%s.test" % uuid.uuid4().hex[:8]
        pin = t2001.make_certs(self.dir, domain)
        self.ctl.stop()
        self.ctl = self.start_ctl(["--tls-listen", "127.0.0.1:0", "--tls-cert", os.path.join(self.dir, "tls.pem"),
                                   "--tls-key", os.path.join(self.dir, "tls.key"),
                                   "--ca-cert", os.path.join(self.dir, "ca.pem")])
        import re
        port = int(wait_for(lambda: re.search(r"tls: listening on [\d.]+:(\d+)", self.ctl.read_log()),
                            what="tls port").group(1))
        line = "127.0.0.1 controller.%s\n" % domain
        with open("/etc/hosts", "a") as f:
            f.write(line)

        def unhost():
            with open("/etc/hosts") as f:
                lines = f.readlines()
            with open("/etc/hosts", "w") as f:
                f.writelines(l for l in lines if l != line)
        self.cleanups_first.append(unhost)
        home = tempfile.mkdtemp(dir=self.dir)
        env = {k: v for k, v in os.environ.items() if k not in ("GIT_SSL_CAINFO", "FLYNN_APP", "FLYNN_CLUSTER")}
        env.update({"HOME": home, "FLYNNRC": os.path.join(home, ".flynnrc")})

        def flynn(*args):
            p = subprocess.run([go] + list(args), env=env, cwd=home, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            self.assertEqual(p.returncode, 0, (args, p.stdout, p.stderr))
            return p.stdout.decode() + p.stderr.decode()

        flynn("cluster", "add", "-p", pin, "default", "%s:%d" % (domain, port), KEY)
        self.api("POST", "/providers", {"name": "postgres", "url": self.prov.url})
        flynn("create", "pgapp")
        flynn("-a", "pgapp", "env", "set", "KEEP=1")
        out = flynn("-a", "pgapp", "resource", "add", "postgres")
        self.assertRegex(out, r"Created resource [0-9a-f-]{36} and release [0-9a-f-]{36}")
        out = flynn("-a", "pgapp", "env")
        self.assertIn("DATABASE_URL=postgres://user:pw@pg:5432/db1", out)
        self.assertIn("KEEP=1", out)
        out = flynn("-a", "pgapp", "resource")
        self.assertIn("postgres", out)
        flynn("-a", "pgapp", "resource", "remove", "postgres")
        out = flynn("-a", "pgapp", "env")
        self.assertNotIn("DATABASE_URL", out)
        self.assertIn("KEEP=1", out)
        self.assertEqual(self.prov.calls[-1][0], "DELETE")
