"""flynn-router: the HTTP/1 parser (src/router/h1.c) under libFuzzer for a
bounded time (FLYNN_FUZZ_SECS, default 20). Skipped, with the reason, when
clang or its fuzzer runtime (Debian: libclang-rt-14-dev) is missing."""
import os
import shutil
import subprocess
import unittest

from harness import ROOT, TestCase

SEEDS = [
    b"\x05GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\x03POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n",
    b"\x07PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n",
    b"\x01HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"\x02HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
    b"\x04HTTP/1.0 200 OK\r\n\r\nuntil the end",
    b"\x09GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
]


class TestFuzz(TestCase):
    def test_h1_parser_fuzz(self):
        clang = shutil.which("clang")
        if not clang:
            raise unittest.SkipTest("clang not installed")
        exe = os.path.join(self.dir, "router-fuzz")
        src = os.path.join(ROOT, "src", "router")
        r = subprocess.run([clang, "-std=gnu17", "-D_GNU_SOURCE", "-O1", "-g",
                            "-fsanitize=fuzzer,address,undefined", "-fno-omit-frame-pointer",
                            "-I" + os.path.join(ROOT, "src", "lib"), "-o", exe,
                            os.path.join(src, "main_fuzz.c"), os.path.join(src, "h1.c"),
                            os.path.join(ROOT, "src", "lib", "h1body.c"),
                            "-lhttp_parser"], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            if "fuzzer" in r.stderr and ("cannot find" in r.stderr or "No such file" in r.stderr):
                raise unittest.SkipTest("clang's libFuzzer runtime is missing "
                                        "(Debian: libclang-rt-14-dev)")
            self.fail("building the fuzz target failed:\n" + r.stderr[-3000:])
        corpus = os.path.join(self.dir, "corpus")
        os.makedirs(corpus)
        for i, s in enumerate(SEEDS):
            with open(os.path.join(corpus, "seed%d" % i), "wb") as f:
                f.write(s)
        secs = os.environ.get("FLYNN_FUZZ_SECS", "20")
        env = dict(os.environ)
        env.pop("ASAN_OPTIONS", None)
        r = subprocess.run([exe, "-max_total_time=" + secs, "-timeout=10", "-rss_limit_mb=1024",
                            "-artifact_prefix=" + self.dir + "/", corpus],
                           capture_output=True, text=True, timeout=int(secs) + 120, env=env,
                           cwd=self.dir)
        tail = r.stderr[-4000:]
        self.assertEqual(r.returncode, 0, "the fuzzer found a failure:\n" + tail)
        self.assertIn("Done", tail)
