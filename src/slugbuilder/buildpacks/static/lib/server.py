#!/usr/bin/python3
"""Static file server of the Flynn static buildpack (python3 standard library).

Serves the app directory (cwd, /app in a slug) on 0.0.0.0:$PORT (default 8080)
following static.json:
  root         directory to serve, relative to the app (default ".")
  clean_urls   true: /about serves about.html
  routes       {"/pattern/**": "file.html"}: fallbacks for paths with no file
               (single-page apps); '*' matches within a segment, '**' across
  redirects    {"/old": {"url": "/new", "status": 301}}
  headers      {"/pattern/**": {"Header": "value"}}
  error_page   file served with 404 for missing paths (default 404.html if present)
Files and directories whose name starts with '.' are never served, nor are
Procfile and static.json when the root is the app directory itself.
"""
import email.utils
import json
import mimetypes
import os
import re
import shutil
import signal
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

APP = os.getcwd()


def glob_rx(pat):
    out = []
    i = 0
    while i < len(pat):
        if pat.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        c = pat[i]
        out.append("[^/]*" if c == "*" else re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def load_config():
    p = os.environ.get("STATIC_JSON", os.path.join(APP, "static.json"))
    if os.path.exists(p):
        with open(p, encoding="utf-8") as f:
            return json.load(f)
    return {}


CFG = load_config()
ROOT = os.path.realpath(os.path.join(APP, CFG.get("root", ".")))
CLEAN = bool(CFG.get("clean_urls"))
ROUTES = [(glob_rx(k), v) for k, v in (CFG.get("routes") or {}).items()]
REDIRECTS = CFG.get("redirects") or {}
HEADERS = [(glob_rx(k), v) for k, v in (CFG.get("headers") or {}).items()]
ERROR_PAGE = CFG.get("error_page") or ("404.html" if os.path.isfile(os.path.join(ROOT, "404.html")) else None)
HIDDEN = {"Procfile", "static.json"} if ROOT == os.path.realpath(APP) else set()


class Handler(BaseHTTPRequestHandler):
    server_version = "flynn-static"
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.serve(True)

    def do_HEAD(self):
        self.serve(False)

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()

    def resolve(self, path):
        """File for a URL path, a redirect target ('/x/'), or None."""
        segs = [s for s in path.split("/") if s]
        if any(s.startswith(".") for s in segs) or (segs and segs[0] in HIDDEN and len(segs) == 1):
            return None, None
        full = os.path.join(ROOT, *segs)
        real = os.path.realpath(full)
        if real != ROOT and not real.startswith(ROOT + os.sep):
            return None, None
        if os.path.isdir(full):
            if not path.endswith("/"):
                return None, path + "/"
            idx = os.path.join(full, "index.html")
            return (idx, None) if os.path.isfile(idx) else (None, None)
        if os.path.isfile(full):
            return full, None
        if CLEAN and segs and os.path.isfile(full + ".html"):
            return full + ".html", None
        return None, None

    def serve(self, body):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path) or "/"
        if "\0" in path:
            return self.send_error(400)
        r = REDIRECTS.get(path)
        if r:
            url = r.get("url") if isinstance(r, dict) else r
            status = int(r.get("status", 301)) if isinstance(r, dict) else 301
            return self.reply(status, None, {"Location": url}, body)
        f, redirect = self.resolve(path)
        if redirect:
            q = urllib.parse.urlsplit(self.path).query
            return self.reply(301, None, {"Location": redirect + ("?" + q if q else "")}, body)
        status = 200
        if f is None:
            for rx, target in ROUTES:
                if rx.match(path):
                    f, _ = self.resolve("/" + target.lstrip("/"))
                    break
        if f is None:
            status = 404
            if ERROR_PAGE:
                f, _ = self.resolve("/" + ERROR_PAGE.lstrip("/"))
        if f is None:
            return self.reply(404, b"Not Found\n", {"Content-Type": "text/plain"}, body)
        headers = {"Content-Type": mimetypes.guess_type(f)[0] or "application/octet-stream"}
        st = os.stat(f)
        headers["Last-Modified"] = email.utils.formatdate(st.st_mtime, usegmt=True)
        for rx, hs in HEADERS:
            if rx.match(path):
                headers.update(hs)
        ims = self.headers.get("If-Modified-Since")
        if status == 200 and ims:
            try:
                if int(st.st_mtime) <= email.utils.parsedate_to_datetime(ims).timestamp():
                    return self.reply(304, None, headers, False)
            except (TypeError, ValueError, OverflowError):
                pass
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(st.st_size))
        self.end_headers()
        if body:
            with open(f, "rb") as fh:
                shutil.copyfileobj(fh, self.wfile)

    def reply(self, status, data, headers, body):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        if body and data:
            self.wfile.write(data)


def main():
    port = int(os.environ.get("PORT") or 8080)
    srv = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    print("static: serving %s on port %d" % (os.path.relpath(ROOT, APP), port), flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
