"""flynn-controller HTTP API: auth, validation, CRUD round trips, events, restart.

Drives a real controller (no hosts) over loopback; shapes and rules are
docs/flynn-api.md (§1.2 auth, §1.6 conventions, §3 routes, §4 types, §5 events).
"""
import base64
import json
import os
import re
import socket
import time
import uuid

from harness import TestCase, request, raw_http

KEY = "s3cr3t"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


def auth(key=KEY):
    return {"Authorization": "Basic " + base64.b64encode((":" + key).encode()).decode()}


class ControllerTest(TestCase):
    def setUp(self):
        super().setUp()
        self.data = os.path.join(self.dir, "data")
        self.ctl = self.start_ctl()

    def start_ctl(self, extra=()):
        return self.start("flynn-controller", ["--listen", "127.0.0.1:0", "--data-dir", self.data,
                                               "--key", KEY + ",other", "--domain", "example.test"]
                          + list(extra))

    def api(self, method, path, body=None, key=KEY, headers=None, raw=False):
        h = dict(auth(key)) if key is not None else {}
        h.update(headers or {})
        return request(method, self.ctl.url + path, body, headers=h, raw=raw)

    def ok(self, method, path, body=None, **kw):
        r = self.api(method, path, body, **kw)
        self.assertEqual(r.status, 200, r)
        return r.json() if r.body.strip() else None

    def create_app(self, name=None, **fields):
        body = {"meta": None}
        if name:
            body["name"] = name
        body.update(fields)
        return self.ok("POST", "/apps", body)

    def create_release(self, app, **fields):
        art = self.ok("POST", "/artifacts", {"type": "flynn", "uri": "http://blob/%s.json" % uuid.uuid4()})
        body = {"app_id": app["id"], "artifacts": [art["id"]], "env": {"A": "1"},
                "processes": {"web": {"args": ["python3", "-m", "http.server"],
                                      "ports": [{"port": 8080, "proto": "tcp"}]},
                              "worker": {"cmd": ["sleep", "1000"]}}}
        body.update(fields)
        return self.ok("POST", "/releases", body)

    def assert_error(self, r, status, code, field=None):
        self.assertEqual(r.status, status, r)
        self.assertIn("application/json", r.headers.get("Content-Type", ""))
        j = r.json()
        self.assertEqual(j["code"], code, j)
        self.assertIsInstance(j["message"], str)
        self.assertIn("retry", j)
        if field:
            self.assertEqual(j.get("detail", {}).get("field"), field, j)


class TestAuth(ControllerTest):
    PATHS = [("GET", "/apps"), ("POST", "/apps"), ("GET", "/apps/x"), ("POST", "/apps/x"),
             ("DELETE", "/apps/x"), ("POST", "/artifacts"), ("GET", "/artifacts"),
             ("POST", "/releases"), ("GET", "/releases"), ("GET", "/apps/x/release"),
             ("PUT", "/apps/x/release"), ("GET", "/apps/x/releases"),
             ("PUT", "/apps/x/formations/r"), ("GET", "/apps/x/formations"),
             ("PUT", "/apps/x/scale/r"), ("GET", "/apps/x/jobs"), ("GET", "/apps/x/jobs/j"),
             ("GET", "/events"), ("POST", "/apps/x/deploy"), ("GET", "/deployments/d"),
             ("GET", "/apps/x/routes"), ("POST", "/apps/x/routes"), ("GET", "/routes"),
             ("GET", "/status"), ("GET", "/.well-known/status"), ("GET", "/formations"),
             ("GET", "/active-jobs"), ("POST", "/apps/x/jobs"), ("DELETE", "/apps/x/jobs/j"),
             ("PUT", "/apps/x/jobs/j"), ("GET", "/events/1"), ("GET", "/apps/x/deployments"),
             ("DELETE", "/apps/x/releases/r"), ("POST", "/apps/x/meta"),
             ("GET", "/apps/x/routes/http/r"), ("PUT", "/apps/x/routes/http/r"),
             ("DELETE", "/apps/x/routes/http/r"), ("DELETE", "/apps/x/formations/r"),
             ("GET", "/apps/x/formations/r"), ("GET", "/artifacts/a"), ("GET", "/releases/r"),
             ("GET", "/apps/x/log"), ("POST", "/providers"), ("GET", "/providers"),
             ("GET", "/providers/p"), ("POST", "/providers/p/resources"),
             ("GET", "/providers/p/resources"), ("GET", "/providers/p/resources/r"),
             ("PUT", "/providers/p/resources/r"), ("DELETE", "/providers/p/resources/r"),
             ("PUT", "/providers/p/resources/r/apps/a"), ("DELETE", "/providers/p/resources/r/apps/a"),
             ("GET", "/resources"), ("GET", "/apps/x/resources"), ("POST", "/sinks"),
             ("GET", "/sinks"), ("GET", "/sinks/s"), ("DELETE", "/sinks/s"), ("POST", "/apps/x/gc"),
             ("GET", "/volumes"), ("GET", "/apps/x/volumes"), ("GET", "/apps/x/volumes/v")]

    def test_every_route_rejects_missing_and_wrong_key(self):
        for method, path in self.PATHS:
            for key in (None, "wrong", "", KEY + "x", KEY[:-1]):
                r = self.api(method, path, {} if method in ("POST", "PUT") else None, key=key)
                self.assertEqual(r.status, 401, (method, path, key, r))
                self.assertEqual(r.body, b"", (method, path))

    def test_bad_authorization_headers(self):
        for h in ("Basic", "Basic !!!!", "Basic " + base64.b64encode(KEY.encode()).decode(),
                  "Digest abc", "Basic " + base64.b64encode(b"user:nope").decode()):
            r = request("GET", self.ctl.url + "/apps", headers={"Authorization": h})
            self.assertEqual(r.status, 401, h)

    def test_user_name_ignored_and_second_key_and_bearer(self):
        h = {"Authorization": "Basic " + base64.b64encode(("user:" + KEY).encode()).decode()}
        self.assertEqual(request("GET", self.ctl.url + "/apps", headers=h).status, 200)
        self.assertEqual(self.api("GET", "/apps", key="other").status, 200)
        h = {"Authorization": "Bearer " + KEY}
        self.assertEqual(request("GET", self.ctl.url + "/apps", headers=h).status, 200)

    def test_exempt_paths(self):
        r = request("GET", self.ctl.url + "/ping")
        self.assertEqual((r.status, r.body), (200, b""))
        # no CA configured: 404, but never 401 without a password
        self.assertEqual(request("GET", self.ctl.url + "/ca-cert").status, 404)
        self.assertEqual(self.api("GET", "/ca-cert", key="bad").status, 401)

    def test_auth_key_from_env(self):
        d = self.start("flynn-controller", ["--listen", "127.0.0.1:0", "--data-dir",
                                            os.path.join(self.dir, "d2")],
                       env={"AUTH_KEY": "a,b"})
        self.assertEqual(request("GET", d.url + "/apps", headers=auth("b")).status, 200)
        self.assertEqual(request("GET", d.url + "/apps", headers=auth("c")).status, 401)


class TestConventions(ControllerTest):
    def test_unknown_path_bare_404(self):
        for p in ("/nope", "/apps/a/b/c/d/e/f", "/apps/missing", "/apps/missing/release",
                  "/releases/" + str(uuid.uuid4()), "/artifacts/zzz", "/deployments/x",
                  "/apps/missing/routes"):
            r = self.api("GET", p)
            self.assertEqual(r.status, 404, p)
            self.assertNotIn(b"{", r.body, p)

    def test_status(self):
        self.assertEqual(self.ok("GET", "/status")["data"]["status"], "healthy")
        self.assertEqual(self.ok("GET", "/.well-known/status")["data"]["version"], "dev")

    def test_content_type_required(self):
        r = self.api("POST", "/apps", {"name": "x"}, headers={"Content-Type": "text/plain"})
        self.assert_error(r, 400, "validation_error")
        r = self.api("POST", "/apps", b'{"name":"x"}', headers={"Content-Type": ""})
        self.assertEqual(r.status, 400)

    def test_malformed_json(self):
        for body in (b"{", b"[]", b'"x"', b"nul", b'{"name": "a",}', b'{"name":"a","name":"b"}'):
            r = self.api("POST", "/apps", body)
            self.assert_error(r, 400, "syntax_error")
        self.assertEqual(self.ok("GET", "/apps"), [])

    def test_huge_body(self):
        port = int(self.ctl.url.rsplit(":", 1)[1])
        body = b'{"name":"' + b"a" * (9 << 20) + b'"}'
        hdr = ("POST /apps HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Authorization: %s\r\nContent-Length: %d\r\n\r\n" % (auth()["Authorization"], len(body)))
        try:
            out = raw_http("127.0.0.1", port, hdr.encode() + body)
        except OSError:  # the server may close before reading it all
            out = b""
        self.assertNotIn(b" 200 ", out[:20])
        self.assertTrue(self.ctl.alive())
        self.assertEqual(self.ok("GET", "/apps"), [])

    def test_unicode_escapes_accepted(self):
        app = self.create_app("esc", meta={"k": "\u003cb\u003e \u0026 caf\u00e9"})
        r = self.api("POST", "/apps/esc", b'{"meta":{"x":"\\u003ctag\\u003e\\u0026"}}')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["meta"], {"x": "<tag>&"})
        self.assertEqual(app["name"], "esc")

    def test_empty_lists_are_arrays(self):
        for p in ("/apps", "/artifacts", "/releases", "/routes", "/active-jobs"):
            self.assertEqual(self.ok("GET", p), [], p)
        self.create_app("e")
        for p in ("/apps/e/releases", "/apps/e/formations", "/apps/e/jobs", "/apps/e/deployments"):
            self.assertEqual(self.ok("GET", p), [], p)
        self.assertEqual(self.ok("GET", "/events?object_types=nothing",
                                 headers={"Accept": "application/json"}), [])

    def test_wrong_method_is_not_200(self):
        r = self.api("PATCH", "/apps")
        self.assertIn(r.status, (404, 405))


class TestApps(ControllerTest):
    def test_create_get_list_update_delete(self):
        app = self.create_app("my-app")
        self.assertTrue(uuid.UUID(app["id"]))
        self.assertEqual(app["name"], "my-app")
        self.assertEqual(app["strategy"], "all-at-once")
        self.assertEqual(app["deploy_timeout"], 120)
        self.assertEqual(app["meta"], {"gc.max_inactive_slug_releases": "10"})
        self.assertRegex(app["created_at"], TS)
        self.assertNotIn("release", app)
        self.assertEqual(self.ok("GET", "/apps/my-app"), app)
        self.assertEqual(self.ok("GET", "/apps/" + app["id"]), app)
        self.assertEqual(self.ok("GET", "/apps/" + app["id"].replace("-", "")), app)
        self.assertEqual(self.ok("GET", "/apps/" + app["id"].upper())["id"], app["id"])
        self.assertEqual([a["name"] for a in self.ok("GET", "/apps")], ["my-app"])
        # update: meta replaces, null meta ignored, strategy and timeout applied
        up = self.ok("POST", "/apps/my-app", {"meta": {"a": "b"}, "strategy": "one-by-one",
                                              "deploy_timeout": 30, "name": "ignored"})
        self.assertEqual((up["meta"], up["strategy"], up["deploy_timeout"], up["name"]),
                         ({"a": "b"}, "one-by-one", 30, "my-app"))
        up2 = self.ok("POST", "/apps/my-app/meta", dict(up, meta=None))
        self.assertEqual(up2["meta"], {"a": "b"})
        self.assertEqual(self.api("DELETE", "/apps/my-app").status, 200)
        self.assertEqual(self.api("GET", "/apps/my-app").status, 404)
        self.assertEqual(self.api("DELETE", "/apps/my-app").status, 404)

    def test_newest_first(self):
        for n in ("a1", "a2", "a3"):
            self.create_app(n)
        self.assertEqual([a["name"] for a in self.ok("GET", "/apps")], ["a3", "a2", "a1"])

    def test_generated_name_and_client_id(self):
        a = self.create_app()
        self.assertRegex(a["name"], r"^[a-z\d]+(-[a-z\d]+)*$")
        b = self.create_app()
        self.assertNotEqual(a["name"], b["name"])
        i = str(uuid.uuid4())
        c = self.create_app("withid", id=i)
        self.assertEqual(c["id"], i)

    def test_name_validation(self):
        for bad in ("UPPER", "-a", "a-", "a--b", "a_b", "a b", "a" * 101, "ü", 5, ["x"], {"a": 1}):
            r = self.api("POST", "/apps", {"name": bad})
            self.assert_error(r, 400, "validation_error", "name")
        self.assertEqual(self.create_app("a" * 100)["name"], "a" * 100)

    def test_field_type_validation(self):
        for body, field in (({"meta": {"a": 1}}, "meta"), ({"meta": "x"}, "meta"),
                            ({"strategy": "nope"}, "strategy"), ({"deploy_timeout": "5"}, "deploy_timeout"),
                            ({"deploy_timeout": -1}, "deploy_timeout"), ({"id": "not-a-uuid"}, "id")):
            self.assert_error(self.api("POST", "/apps", body), 400, "validation_error", field)
        self.create_app("v")
        self.assert_error(self.api("POST", "/apps/v", {"strategy": 7}), 400, "validation_error",
                          "strategy")

    def test_duplicate(self):
        self.create_app("dup")
        r = self.api("POST", "/apps", {"name": "dup"})
        self.assert_error(r, 409, "object_exists")
        self.assertIn("dup", r.json()["message"])

    def test_default_route_unless_system_app(self):
        self.create_app("web1")
        routes = self.ok("GET", "/apps/web1/routes")
        self.assertEqual(len(routes), 1)
        self.assertEqual((routes[0]["domain"], routes[0]["service"], routes[0]["drain_backends"]),
                         ("web1.example.test", "web1-web", True))
        self.create_app("sys1", meta={"flynn-system-app": "true"})
        self.assertEqual(self.ok("GET", "/apps/sys1/routes"), [])


class TestReleases(ControllerTest):
    def test_artifacts(self):
        a = self.ok("POST", "/artifacts", {"type": "flynn", "uri": "http://b/x.json",
                                           "meta": {"blobstore": "true"}, "size": 12,
                                           "hashes": {"sha512_256": "ab"}})
        self.assertEqual((a["type"], a["uri"], a["meta"], a["size"]),
                         ("flynn", "http://b/x.json", {"blobstore": "true"}, 12))
        self.assertRegex(a["created_at"], TS)
        again = self.ok("POST", "/artifacts", {"type": "flynn", "uri": "http://b/x.json"})
        self.assertEqual(again["id"], a["id"])
        i = str(uuid.uuid4())
        b = self.ok("POST", "/artifacts", {"id": i, "type": "docker", "uri": "http://b/y"})
        self.assertEqual(b["id"], i)
        self.assertEqual(self.ok("GET", "/artifacts/" + i), b)
        self.assertEqual([x["id"] for x in self.ok("GET", "/artifacts")], [i, a["id"]])
        for body, field in (({"uri": "u"}, "type"), ({"type": "bad", "uri": "u"}, "type"),
                            ({"type": "flynn"}, "uri"), ({"type": "flynn", "uri": 3}, "uri"),
                            ({"type": "flynn", "uri": "u", "meta": []}, "meta"),
                            ({"type": "flynn", "uri": "u", "size": "big"}, "size")):
            self.assert_error(self.api("POST", "/artifacts", body), 400, "validation_error", field)

    def test_release_round_trip_and_normalisation(self):
        app = self.create_app("rel")
        art = self.ok("POST", "/artifacts", {"type": "flynn", "uri": "http://b/a"})
        rel = self.ok("POST", "/releases", {
            "app_id": "rel", "artifact": art["id"], "env": {"K": "<v>"}, "meta": {"git": "true"},
            "created_at": "2001-01-01T00:00:00Z",
            "processes": {"web": {"cmd": ["b", "c"], "entrypoint": ["a"], "data": True,
                                  "ports": [{"port": 8080}],
                                  "resources": {"memory": {"limit": 100}}}}})
        self.assertEqual(rel["app_id"], app["id"])
        self.assertEqual(rel["artifacts"], [art["id"]])
        self.assertNotEqual(rel["created_at"], "2001-01-01T00:00:00Z")
        web = rel["processes"]["web"]
        self.assertEqual(web["args"], ["a", "b", "c"])
        self.assertNotIn("cmd", web)
        self.assertEqual(web["volumes"], [{"path": "/data"}])
        self.assertEqual(web["ports"], [{"port": 8080, "proto": "tcp"}])
        self.assertEqual(web["resources"]["memory"], {"limit": 100, "request": 100})
        self.assertEqual(web["resources"]["cpu"], {"limit": 1000, "request": 1000})
        self.assertEqual(web["resources"]["max_fd"]["limit"], 10000)
        self.assertEqual(self.ok("GET", "/releases/" + rel["id"]), rel)
        self.assertEqual(self.ok("GET", "/apps/rel/releases"), [rel])
        # client-chosen id is kept
        i = str(uuid.uuid4())
        self.assertEqual(self.ok("POST", "/releases", {"id": i, "app_id": app["id"]})["id"], i)
        self.assertEqual([r["id"] for r in self.ok("GET", "/apps/rel/releases")], [i, rel["id"]])

    def test_release_validation(self):
        self.create_app("rv")
        cases = [({}, "app_id"), ({"app_id": "nope"}, "app_id"),
                 ({"app_id": "rv", "env": {"": "x"}}, "env"),
                 ({"app_id": "rv", "env": {"A=B": "x"}}, "env"),
                 ({"app_id": "rv", "env": {"A": 1}}, "env"),
                 ({"app_id": "rv", "env": []}, "env"),
                 ({"app_id": "rv", "artifacts": [str(uuid.uuid4())]}, "artifacts"),
                 ({"app_id": "rv", "artifacts": ["x"]}, "artifacts"),
                 ({"app_id": "rv", "artifacts": "x"}, "artifacts"),
                 ({"app_id": "rv", "processes": {"bad type!": {}}}, "processes"),
                 ({"app_id": "rv", "processes": {"web": {"args": "ls"}}}, "processes"),
                 ({"app_id": "rv", "processes": {"web": {"ports": [{"port": 70000}]}}}, "processes"),
                 ({"app_id": "rv", "processes": []}, "processes"),
                 ({"app_id": "rv", "meta": {"a": False}}, "meta")]
        for body, field in cases:
            self.assert_error(self.api("POST", "/releases", body), 400, "validation_error", field)
        self.assertEqual(self.ok("GET", "/releases"), [])

    def test_current_release(self):
        app = self.create_app("cur")
        self.assertEqual(self.api("GET", "/apps/cur/release").status, 404)
        self.assertEqual(self.api("GET", "/apps/cur/release").body, b"")
        r1 = self.create_release(app)
        r2 = self.create_release(app)
        self.assertEqual(self.ok("PUT", "/apps/cur/release", {"id": r1["id"]}), r1)
        self.assertEqual(self.ok("GET", "/apps/cur/release"), r1)
        self.assertEqual(self.ok("GET", "/apps/cur")["release"], r1["id"])
        self.assert_error(self.api("PUT", "/apps/cur/release", {"id": str(uuid.uuid4())}), 400,
                          "validation_error")
        self.assert_error(self.api("PUT", "/apps/cur/release", {"id": 5}), 400, "validation_error")
        # delete: current release refused, another one goes
        self.assert_error(self.api("DELETE", "/apps/cur/releases/" + r1["id"]), 400,
                          "validation_error")
        self.assertEqual(self.api("DELETE", "/apps/cur/releases/" + r2["id"]).status, 200)
        self.assertEqual(self.api("GET", "/releases/" + r2["id"]).status, 404)
        ev = self.ok("GET", "/events?object_types=release_deletion,app_release",
                     headers={"Accept": "application/json"})
        self.assertEqual([e["object_type"] for e in ev], ["release_deletion", "app_release"])
        self.assertEqual(ev[0]["data"]["release_deletion"]["release"], r2["id"])
        self.assertEqual(ev[1]["data"]["release"]["id"], r1["id"])


class TestFormations(ControllerTest):
    def test_put_get_list_delete(self):
        app = self.create_app("fm")
        rel = self.create_release(app)
        path = "/apps/fm/formations/" + rel["id"]
        self.assertEqual(self.api("GET", path).status, 404)
        self.assertEqual(self.api("GET", path).body, b"")
        f = self.ok("PUT", path, {"processes": {"web": 2, "worker": 0}, "tags": {"web": {"a": "b"}}})
        self.assertEqual((f["app"], f["release"], f["processes"], f["tags"]),
                         (app["id"], rel["id"], {"web": 2, "worker": 0}, {"web": {"a": "b"}}))
        self.assertRegex(f["updated_at"], TS)
        self.assertEqual(self.ok("GET", path), f)
        self.assertEqual(self.ok("GET", "/apps/fm/formations"), [f])
        x = self.ok("GET", path + "?expand=true")
        self.assertEqual((x["app"]["name"], x["release"]["id"], len(x["artifacts"]), x["processes"]),
                         ("fm", rel["id"], 1, {"web": 2, "worker": 0}))
        active = self.ok("GET", "/formations?active=true")
        self.assertEqual([a["release"]["id"] for a in active], [rel["id"]])
        self.assertEqual(self.api("DELETE", path).status, 200)
        self.assertEqual(self.api("GET", path).status, 404)
        self.assertEqual(self.ok("GET", "/formations?active=true"), [])
        self.assertEqual(self.api("GET", "/formations").status, 400)

    def test_validation(self):
        app = self.create_app("fv")
        rel = self.create_release(app)
        path = "/apps/fv/formations/" + rel["id"]
        for procs in ({"web": -1}, {"web": 10 ** 12}, {"web": "2"}, {"web": 1.5}, {"nope": 1},
                      {"web": None}, [1], "web=1"):
            self.assert_error(self.api("PUT", path, {"processes": procs}), 400, "validation_error",
                              "processes")
        self.assert_error(self.api("PUT", path, {"processes": {}, "tags": {"web": "x"}}), 400,
                          "validation_error", "tags")
        self.assert_error(self.api("PUT", "/apps/fv/formations/" + str(uuid.uuid4()),
                                   {"processes": {}}), 400, "validation_error")
        self.assertEqual(self.api("PUT", "/apps/nope/formations/" + rel["id"], {}).status, 404)

    def test_scale_request(self):
        app = self.create_app("sc")
        rel = self.create_release(app)
        body = {"id": "", "app": "sc", "release": rel["id"], "state": "pending",
                "new_processes": {"web": 2, "worker": 1}, "new_tags": {"worker": {"active": "true"}},
                "created_at": None, "updated_at": None}
        sr = self.ok("PUT", "/apps/sc/scale/" + rel["id"], body)
        self.assertTrue(uuid.UUID(sr["id"]))
        self.assertEqual((sr["app"], sr["release"], sr["state"], sr["old_processes"],
                          sr["new_processes"]),
                         (app["id"], rel["id"], "pending", {}, {"web": 2, "worker": 1}))
        f = self.ok("GET", "/apps/sc/formations/" + rel["id"])
        self.assertEqual(f["processes"], {"web": 2, "worker": 1})
        sr2 = self.ok("PUT", "/apps/sc/scale/" + rel["id"], dict(body, new_processes={"web": 3}))
        self.assertEqual(sr2["old_processes"], {"web": 2, "worker": 1})
        ev = self.ok("GET", "/events?app_id=sc&object_types=scale_request,scale_request_cancelation",
                     headers={"Accept": "application/json"})
        self.assertEqual([(e["object_type"], e["data"]["state"]) for e in ev],
                         [("scale_request", "pending"), ("scale_request_cancelation", "cancelled"),
                          ("scale_request", "pending")])
        done = self.ok("PUT", "/apps/sc/scale/" + rel["id"], dict(sr2, state="complete"))
        self.assertEqual(done["state"], "complete")
        self.assert_error(self.api("PUT", "/apps/sc/scale/" + rel["id"], dict(body, new_processes=None,
                                                                                new_tags=None)),
                          400, "validation_error")
        self.assert_error(self.api("PUT", "/apps/sc/scale/" + rel["id"],
                                   dict(body, new_processes={"db": 1})), 400, "validation_error")


class TestDeployments(ControllerTest):
    def test_first_deploy_completes_at_once(self):
        app = self.create_app("dep")
        rel = self.create_release(app)
        d = self.ok("POST", "/apps/dep/deploy", {"id": rel["id"]})
        self.assertEqual((d["status"], d["new_release"], d["app"]), ("complete", rel["id"], app["id"]))
        self.assertNotIn("old_release", d)
        self.assertRegex(d["finished_at"], TS)
        self.assertEqual(self.ok("GET", "/apps/dep/release")["id"], rel["id"])
        self.assertEqual(self.ok("GET", "/deployments/" + d["id"]), d)
        self.assertEqual(self.ok("GET", "/apps/dep/deployments"), [d])
        ev = self.ok("GET", "/events?app_id=%s&object_id=%s&object_types=deployment" % (app["id"], d["id"]),
                     headers={"Accept": "application/json"})
        self.assertEqual([e["data"]["status"] for e in ev], ["complete"])

    def test_deploy_moves_formation_without_hosts(self):
        app = self.create_app("dep2")
        r1 = self.create_release(app)
        self.ok("POST", "/apps/dep2/deploy", {"id": r1["id"]})
        self.ok("PUT", "/apps/dep2/formations/" + r1["id"], {"processes": {"web": 1}})
        r2 = self.create_release(app)
        d = self.ok("POST", "/apps/dep2/deploy", {"id": r2["id"]})
        self.assertEqual((d["status"], d["old_release"], d["processes"]), ("complete", r1["id"], {"web": 1}))
        self.assertEqual(self.ok("GET", "/apps/dep2/formations/" + r2["id"])["processes"], {"web": 1})
        self.assertEqual(self.ok("GET", "/apps/dep2/formations/" + r1["id"])["processes"], {"web": 0})
        self.assert_error(self.api("POST", "/apps/dep2/deploy", {"id": str(uuid.uuid4())}), 400,
                          "validation_error")
        self.assertEqual(self.api("POST", "/apps/nope/deploy", {"id": r2["id"]}).status, 404)
        other = self.create_app("dep3")
        self.assert_error(self.api("POST", "/apps/dep3/deploy", {"id": r2["id"]}), 400, "validation_error", "id")
        self.assertNotIn("release", self.ok("GET", "/apps/dep3"))
        del other


class TestRoutes(ControllerTest):
    def test_http_and_tcp_routes(self):
        self.create_app("rt", meta={"flynn-system-app": "true"})
        zero = "0001-01-01T00:00:00Z"
        body = {"type": "http", "service": "rt-web", "leader": False, "created_at": zero,
                "updated_at": zero, "domain": "rt.example.com", "drain_backends": True}
        r = self.ok("POST", "/apps/rt/routes", body)
        self.assertEqual((r["type"], r["path"], r["service"], r["domain"], r["drain_backends"],
                          r["leader"], r["sticky"]),
                         ("http", "/", "rt-web", "rt.example.com", True, False, False))
        self.assertTrue(r["parent_ref"].startswith("controller/apps/"))
        self.assertRegex(r["created_at"], TS)
        self.assertNotIn("port", r)
        self.assert_error(self.api("POST", "/apps/rt/routes", body), 409, "conflict")
        p = self.ok("POST", "/apps/rt/routes", dict(body, path="api"))
        self.assertEqual(p["path"], "/api/")
        self.assert_error(self.api("POST", "/apps/rt/routes", dict(body, domain="o.com", path="/x")),
                          400, "validation_error")
        t = self.ok("POST", "/apps/rt/routes", {"type": "tcp", "service": "rt-db", "leader": True,
                                                "drain_backends": True})
        self.assertEqual(t["port"], 3000)
        self.assertNotIn("domain", t)
        t2 = self.ok("POST", "/apps/rt/routes", {"type": "tcp", "service": "rt-db"})
        self.assertEqual(t2["port"], 3001)
        self.assert_error(self.api("POST", "/apps/rt/routes", {"type": "tcp", "service": "s", "port": 443}),
                          409, "conflict")
        self.assert_error(self.api("POST", "/apps/rt/routes", {"type": "tcp", "service": "s", "port": 3000}),
                          409, "conflict")
        for bad in ({"type": "udp", "service": "s"}, {"type": "http", "domain": "d"},
                    {"type": "http", "service": "s"}, {"type": "http", "service": "s", "domain": "d", "port": 80},
                    {"type": "http", "service": "s", "domain": "d", "sticky": "yes"},
                    {"type": "http", "service": "s", "domain": "d2", "tls_cert": "junk", "tls_key": "junk"}):
            self.assert_error(self.api("POST", "/apps/rt/routes", bad), 400, "validation_error")
        got = self.ok("GET", "/apps/rt/routes/http/" + r["id"])
        self.assertEqual(got, r)
        self.assertEqual(self.api("GET", "/apps/rt/routes/tcp/" + r["id"]).status, 404)
        up = self.ok("PUT", "/apps/rt/routes/http/" + r["id"], dict(got, sticky=True))
        self.assertEqual((up["sticky"], up["id"], up["created_at"]), (True, r["id"], r["created_at"]))
        self.assert_error(self.api("DELETE", "/apps/rt/routes/http/" + r["id"]), 400, "validation_error")
        self.assertEqual(self.api("DELETE", "/apps/rt/routes/http/" + p["id"]).status, 200)
        self.assertEqual(self.api("DELETE", "/apps/rt/routes/http/" + r["id"]).status, 200)
        self.assertEqual(len(self.ok("GET", "/routes")), 2)
        self.create_app("other")
        self.assertEqual(self.api("GET", "/apps/other/routes/tcp/" + t["id"]).status, 404)
        types = [e["object_type"] for e in self.ok("GET", "/events?app_id=rt&object_types=route,route_deletion",
                                                   headers={"Accept": "application/json"})]
        self.assertEqual(types.count("route_deletion"), 2)


class TestEvents(ControllerTest):
    def sse(self, path, last_id=None, timeout=5):
        s = socket.create_connection(("127.0.0.1", int(self.ctl.url.rsplit(":", 1)[1])), timeout=timeout)
        hdr = "GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nAuthorization: %s\r\n" % (
            path, auth()["Authorization"])
        if last_id is not None:
            hdr += "Last-Event-Id: %d\r\n" % last_id
        s.sendall((hdr + "\r\n").encode())
        return s

    def read_events(self, s, n, timeout=5):
        buf = b""
        deadline = time.time() + timeout
        evs = []
        while len(evs) < n and time.time() < deadline:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            buf += d
            evs = [json.loads(m.group(1)) for m in re.finditer(rb"data: (\{.*?\})\n\n", buf)]
        return evs, buf

    def test_list_filters(self):
        a = self.create_app("ev1", meta={"flynn-system-app": "true"})
        b = self.create_app("ev2", meta={"flynn-system-app": "true"})
        self.ok("POST", "/apps/ev1", {"meta": {"x": "y"}})
        acc = {"Accept": "application/json"}
        allev = self.ok("GET", "/events", headers=acc)
        self.assertEqual([e["object_type"] for e in allev], ["app", "app", "app"])
        ids = [e["id"] for e in allev]
        self.assertEqual(ids, sorted(ids, reverse=True))
        e0 = allev[0]
        self.assertEqual((e0["app"], e0["object_id"], e0["data"]["meta"]), (a["id"], a["id"], {"x": "y"}))
        self.assertRegex(e0["created_at"], TS)
        self.assertEqual(len(self.ok("GET", "/events?app_id=ev1", headers=acc)), 2)
        self.assertEqual(len(self.ok("GET", "/events?app_id=" + b["id"], headers=acc)), 1)
        self.assertEqual(len(self.ok("GET", "/events?object_id=" + b["id"], headers=acc)), 1)
        self.assertEqual(len(self.ok("GET", "/events?count=2", headers=acc)), 2)
        self.assertEqual([e["id"] for e in self.ok("GET", "/events?before_id=%d" % ids[0], headers=acc)], ids[1:])
        self.assertEqual([e["id"] for e in self.ok("GET", "/events?since_id=%d" % ids[2], headers=acc)], ids[:2])
        self.assertEqual(self.ok("GET", "/events?object_types=release", headers=acc), [])
        self.assertEqual(self.api("GET", "/events?app_id=nope", headers=acc).status, 404)
        self.assertEqual(self.api("GET", "/events?count=x", headers=acc).status, 400)
        one = self.ok("GET", "/events/%d" % ids[0])
        self.assertEqual(one, allev[0])
        self.assertEqual(self.api("GET", "/events/99999").status, 404)

    def test_stream_live_past_and_resume(self):
        self.create_app("s1", meta={"flynn-system-app": "true"})
        s = self.sse("/events?app_id=s1&object_types=app,release&past=true")
        try:
            evs, buf = self.read_events(s, 1)
            self.assertIn(b"200 OK", buf)
            self.assertIn(b"text/event-stream", buf)
            self.assertEqual([e["object_type"] for e in evs], ["app"])
            self.create_app("s2", meta={"flynn-system-app": "true"})  # other app: filtered out
            self.ok("POST", "/apps/s1", {"meta": {"n": "1"}})
            app = self.ok("GET", "/apps/s1")
            self.create_release(app)
            evs2, buf = self.read_events(s, 2)
            self.assertEqual([e["object_type"] for e in evs2], ["app", "release"])
            self.assertEqual(evs2[0]["data"]["meta"], {"n": "1"})
            evs += evs2
        finally:
            s.close()
        first_id = evs[0]["id"]
        # resume: only newer events, oldest first
        s = self.sse("/events?app_id=s1&object_types=app,release", last_id=first_id)
        try:
            evs2, _ = self.read_events(s, 2)
            self.assertEqual([e["id"] for e in evs2], [e["id"] for e in evs[1:]])
        finally:
            s.close()
        # no past, no Last-Event-Id: nothing replayed
        s = self.sse("/events?app_id=s1")
        try:
            evs3, _ = self.read_events(s, 1, timeout=0.5)
            self.assertEqual(evs3, [])
            self.ok("POST", "/apps/s1", {"meta": {"n": "2"}})
            evs3, _ = self.read_events(s, 1)
            self.assertEqual(evs3[0]["data"]["meta"], {"n": "2"})
        finally:
            s.close()
        self.assertEqual(self.api("GET", "/events?app_id=missing",
                                  headers={"Accept": "text/event-stream"}).status, 404)

    def test_every_mutation_writes_an_event(self):
        app = self.create_app("all")
        rel = self.create_release(app)
        self.ok("PUT", "/apps/all/formations/" + rel["id"], {"processes": {"web": 1}})
        self.ok("POST", "/apps/all/deploy", {"id": rel["id"]})
        self.ok("DELETE", "/apps/all")
        types = [e["object_type"] for e in self.ok("GET", "/events", headers={"Accept": "application/json"})]
        for t in ("app", "route", "release", "artifact", "scale", "deployment", "app_release", "app_deletion"):
            self.assertIn(t, types)
        ev = self.ok("GET", "/events?object_types=app_deletion", headers={"Accept": "application/json"})[0]
        self.assertEqual(ev["data"]["app_deletion"]["app"], app["id"])
        self.assertEqual([r["id"] for r in ev["data"]["app_deletion"]["deleted_releases"]], [rel["id"]])


class TestRestart(ControllerTest):
    def test_restart_loses_nothing(self):
        app = self.create_app("keep")
        rel = self.create_release(app)
        self.ok("PUT", "/apps/keep/release", {"id": rel["id"]})
        f = self.ok("PUT", "/apps/keep/formations/" + rel["id"], {"processes": {"web": 3}})
        rt = self.ok("GET", "/apps/keep/routes")
        before = self.ok("GET", "/events", headers={"Accept": "application/json"})
        self.ctl.stop()
        self.ctl = self.start_ctl()
        self.assertEqual(self.ok("GET", "/apps/keep")["release"], rel["id"])
        self.assertEqual(self.ok("GET", "/apps/keep/release"), rel)
        self.assertEqual(self.ok("GET", "/apps/keep/formations/" + rel["id"]), f)
        self.assertEqual(self.ok("GET", "/apps/keep/routes"), rt)
        self.assertEqual(self.ok("GET", "/events", headers={"Accept": "application/json"}), before)
        self.create_app("after")
        ids = [e["id"] for e in self.ok("GET", "/events", headers={"Accept": "application/json"})]
        self.assertGreater(ids[0], before[0]["id"])
        # schema migrations recorded once
        import sqlite3
        db = sqlite3.connect(os.path.join(self.data, "controller.db"))
        self.assertEqual(db.execute("SELECT version FROM schema_migrations").fetchall(), [(1,), (2,), (3,)])
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        db.close()


class TestJobs(ControllerTest):
    def test_job_put_get_list(self):
        app = self.create_app("jb")
        rel = self.create_release(app)
        u = str(uuid.uuid4())
        j = self.ok("PUT", "/apps/jb/jobs/" + u, {"id": "host0-" + u, "host_id": "host0",
                                                  "release": rel["id"], "type": "web", "state": "up"})
        self.assertEqual((j["uuid"], j["app"], j["state"]), (u, app["id"], "up"))
        self.assertEqual(self.ok("GET", "/apps/jb/jobs/host0-" + u)["uuid"], u)
        self.assertEqual(self.ok("GET", "/apps/jb/jobs/" + u)["id"], "host0-" + u)
        self.assertEqual([x["uuid"] for x in self.ok("GET", "/apps/jb/jobs")], [u])
        self.assertEqual([x["uuid"] for x in self.ok("GET", "/active-jobs")], [u])
        self.assertEqual(self.api("GET", "/apps/jb/jobs/host0-" + str(uuid.uuid4())).status, 404)
        self.assert_error(self.api("PUT", "/apps/jb/jobs/" + u, {"state": "weird"}), 400,
                          "validation_error")
        self.ok("PUT", "/apps/jb/jobs/" + u, dict(j, state="up"))
        self.ok("PUT", "/apps/jb/jobs/" + u, dict(j, state="down"))
        ev = self.ok("GET", "/events?object_types=job", headers={"Accept": "application/json"})
        self.assertEqual([e["data"]["state"] for e in ev], ["down", "up"])
        self.assertEqual(self.ok("GET", "/active-jobs"), [])
        self.assert_error(self.api("DELETE", "/apps/jb/jobs/" + u), 400, "validation_error")
        # one-off jobs need a host
        self.assert_error(self.api("POST", "/apps/jb/jobs", {"release": rel["id"], "args": ["true"]}),
                          503, "service_unavailable")
        self.assert_error(self.api("POST", "/apps/jb/jobs", {"args": ["true"]}), 400,
                          "validation_error", "release")


class TestSinks(ControllerTest):
    def test_sink_round_trip_and_validation(self):
        s = self.ok("POST", "/sinks", {"id": "", "kind": "syslog", "config": {"url": "syslog://h:514", "use_ids": True}})
        self.assertTrue(uuid.UUID(s["id"]))
        self.assertEqual((s["kind"], s["host_managed"], s["config"]["use_ids"]), ("syslog", False, True))
        self.assertRegex(s["updated_at"], TS)
        self.assertEqual(self.ok("GET", "/sinks/" + s["id"]), s)
        self.assertEqual(self.ok("GET", "/sinks"), [s])
        for bad, field in (({"kind": "x", "config": {}}, "kind"), ({"kind": "syslog", "config": {"url": "http://x"}}, "config"),
                           ({"kind": "syslog"}, "config"), ({"kind": "logaggregator", "config": {}}, "config"),
                           ({"kind": "syslog", "config": {"url": "syslog://h", "format": "x"}}, "config"),
                           ({"kind": "syslog", "host_managed": "yes", "config": {"url": "syslog://h"}}, "host_managed")):
            self.assert_error(self.api("POST", "/sinks", bad), 400, "validation_error", field)
        self.assertEqual(self.ok("DELETE", "/sinks/" + s["id"]), s)
        self.assertEqual(self.api("GET", "/sinks/" + s["id"]).status, 404)
        types = [e["object_type"] for e in self.ok("GET", "/events", headers={"Accept": "application/json"})]
        self.assertEqual(types, ["sink_deletion", "sink"])

    def test_volumes_are_empty(self):
        self.create_app("vol")
        self.assertEqual(self.ok("GET", "/volumes"), [])
        self.assertEqual(self.ok("GET", "/apps/vol/volumes"), [])
        self.assertEqual(self.api("GET", "/apps/vol/volumes/" + str(uuid.uuid4())).status, 404)
        self.assertEqual(self.api("GET", "/apps/nope/volumes").status, 404)

    def test_gc_is_accepted(self):
        self.create_app("g")
        self.assertEqual(self.api("POST", "/apps/g/gc").status, 200)
        self.assertEqual(self.api("POST", "/apps/nope/gc").status, 404)


class TestFormationStream(ControllerTest):
    def test_since_then_caught_up_then_live(self):
        app = self.create_app("fs", meta={"flynn-system-app": "true"})
        r1 = self.create_release(app)
        self.ok("PUT", "/apps/fs/formations/" + r1["id"], {"processes": {"web": 1}})
        port = int(self.ctl.url.rsplit(":", 1)[1])
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s.sendall(("GET /formations?since=1970-01-01T00:00:00Z HTTP/1.1\r\nHost: x\r\n"
                       "Accept: text/event-stream\r\nAuthorization: %s\r\n\r\n" % auth()["Authorization"]).encode())
            buf = b""
            while b"data: {}" not in buf:
                buf += s.recv(65536)
            first = [json.loads(m) for m in re.findall(rb"data: (\{.*?\})\n\n", buf)]
            self.assertEqual(first[0]["release"]["id"], r1["id"])
            self.assertEqual(first[0]["processes"], {"web": 1})
            self.assertEqual(first[-1], {})
            self.ok("PUT", "/apps/fs/formations/" + r1["id"], {"processes": {"web": 3}})
            self.ok("DELETE", "/apps/fs/formations/" + r1["id"])
            buf = b""
            while buf.count(b"data: ") < 2:
                buf += s.recv(65536)
            live = [json.loads(m) for m in re.findall(rb"data: (\{.*?\})\n\n", buf)]
            self.assertEqual(live[0]["processes"], {"web": 3})
            self.assertEqual((live[1]["deleted"], live[1]["release"]["id"]), (True, r1["id"]))
        finally:
            s.close()
        # a future since: only the caught-up marker
        self.assertEqual(self.api("GET", "/formations?since=bad", headers={"Accept": "text/event-stream"}).status, 400)


class TestConcurrency(ControllerTest):
    def test_many_clients_and_streams(self):
        import threading
        port = int(self.ctl.url.rsplit(":", 1)[1])
        streams = []
        for i in range(6):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(("GET /events?object_types=app HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                       "Authorization: %s\r\n\r\n" % auth()["Authorization"]).encode())
            streams.append(s)
        errors = []

        def worker(n):
            try:
                for k in range(8):
                    r = self.api("POST", "/apps", {"name": "c%d-%d" % (n, k), "meta": {"flynn-system-app": "true"}})
                    if r.status != 200:
                        errors.append(r)
                    self.api("GET", "/apps")
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        ts = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in ts:
            t.start()
        # half the streams hang up in the middle of it
        for s in streams[:3]:
            s.close()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(self.ok("GET", "/apps")), 64)
        for s in streams[3:]:
            buf = b""
            s.settimeout(5)
            while buf.count(b"data: ") < 64:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
            self.assertEqual(buf.count(b'"object_type":"app"'), 64)
            s.close()
        self.assertTrue(self.ctl.alive())
