#!/usr/bin/env python3
"""Runs the integration tests (tests/tNNNN-*.py) and prints 'N passed, N failed, N skipped'.

usage: tests/run.py [PATTERN...]   (substring filters on file names)
"""
import importlib.util
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


class Result(unittest.TextTestResult):
    passed = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        Result.passed += 1

    def startTest(self, test):
        self._t0 = time.time()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self.stream.write("    (%.1fs)\n" % (time.time() - self._t0))
        self.stream.flush()


def main():
    pats = sys.argv[1:]
    suite = unittest.TestSuite()
    for f in sorted(os.listdir(HERE)):
        if not (f.startswith("t") and f.endswith(".py") and f[1:5].isdigit()):
            continue
        if pats and not any(p in f for p in pats):
            continue
        spec = importlib.util.spec_from_file_location(f[:-3].replace("-", "_"), os.path.join(HERE, f))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        suite.addTests(unittest.defaultTestLoader.loadTestsFromModule(mod))
    runner = unittest.TextTestRunner(verbosity=2, resultclass=Result, stream=sys.stdout)
    res = runner.run(suite)
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    skipped = len(res.skipped)
    passed = Result.passed
    print("integration: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
