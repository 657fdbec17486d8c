#!/usr/bin/env python3
"""Tests tools/sum_results.py (issue 12: honest counts) on fabricated Bazel
console logs and bazel-testlogs trees that hold stale test.log files from an
earlier run: a target that did not run this time must count 0 passed and 1
failed, whatever its old log says.  Runs the script as tests/run.sh does and
prints "N passed, N failed" (one check per case)."""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "sum_results.py")
STALE = "==== an earlier run ====\n5000 passed, 0 failed\n"


def run_case(console, logs, expected=None):
    """Writes CONSOLE as the console log and LOGS ({target: text}) as
    test.log files, runs sum_results.py, returns (passed, failed)."""
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "console.log")
        with open(log, "w") as f:
            f.write(console)
        testlogs = os.path.join(d, "testlogs")
        for target, text in logs.items():
            pkg, name = target[2:].split(":")
            os.makedirs(os.path.join(testlogs, pkg, name))
            with open(os.path.join(testlogs, pkg, name, "test.log"), "w") as f:
                f.write(text)
        args = [sys.executable, SCRIPT, log, testlogs]
        if expected is not None:
            exp = os.path.join(d, "expected.txt")
            with open(exp, "w") as f:
                f.write("".join(t + "\n" for t in expected))
            args.append(exp)
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()
        return int(out[0]), int(out[1])


HEAD = "INFO: Analyzed 36 targets (23 packages loaded, 198 targets configured).\n"

CASES = [
    # (name, console, logs, expected tests or None, (passed, failed))
    ("a failing build counts no stale passes",
     HEAD + "INFO: Found 15 targets and 3 test targets...\n"
     "ERROR: /w/bench/BUILD:40:11: Compiling bench/peers.c failed: (Exit 1): clang failed\n"
     "//tests:test_core                                  NO STATUS\n"
     "//tests:test_slab                                  FAILED TO BUILD\n"
     "//stress:churn                                     NO STATUS\n"
     "FAILED: Build did NOT complete successfully\n",
     {"//tests:test_core": STALE, "//tests:test_slab": STALE, "//stress:churn": STALE},
     None, (0, 4)),
    ("runs read their test.log, cached ones too",
     HEAD + "INFO: Found 15 targets and 5 test targets...\n"
     "//tests:test_core                                  PASSED in 0.8s\n"
     "//tests:test_slab                         (cached) PASSED in 0.1s\n"
     "//tests:test_page                                  FAILED in 0.2s\n"
     "//stress:churn                                     FLAKY, failed in 1 out of 2 in 1.2s\n"
     "//stress:fault                                     TIMEOUT in 300.0s\n"
     "Executed 4 out of 5 tests: 3 tests pass and 2 fail locally.\n",
     {"//tests:test_core": "10 passed, 0 failed\n", "//tests:test_slab": "7 passed, 0 failed\n",
      "//tests:test_page": "3 passed, 2 failed\n", "//stress:churn": "churn: 4 passed, 0 failed\n",
      "//stress:fault": "started\n"},
     None, (24, 3)),
    ("a failed target whose log says 0 failed still fails",
     HEAD + "INFO: Found 15 targets and 1 test target...\n"
     "//tests:test_core                                  FAILED in 0.8s\n",
     {"//tests:test_core": "10 passed, 0 failed\nAborted\n"}, None, (10, 1)),
    ("NO STATUS and INCOMPLETE beside a good run",
     HEAD + "INFO: Found 15 targets and 3 test targets...\n"
     "//tests:test_core                                  PASSED in 0.8s\n"
     "//tests:test_slab                                  NO STATUS\n"
     "//tests:test_page                                  INCOMPLETE\n",
     {"//tests:test_core": "10 passed, 0 failed\n", "//tests:test_slab": STALE, "//tests:test_page": STALE},
     None, (10, 2)),
    ("a test Bazel found but did not report fails",
     HEAD + "INFO: Found 15 targets and 3 test targets...\n"
     "//tests:test_core                                  PASSED in 0.8s\n"
     "//tests:test_slab                                  PASSED in 0.8s\n",
     {"//tests:test_core": "10 passed, 0 failed\n", "//tests:test_slab": "2 passed, 0 failed\n",
      "//tests:test_page": STALE},
     ["//tests:test_core", "//tests:test_slab", "//tests:test_page"], (12, 1)),
    ("tag-filtered tests in the expected list are not missing",
     HEAD + "INFO: Found 15 targets and 1 test target...\n"
     "//tests:test_core                                  PASSED in 0.8s\n",
     {"//tests:test_core": "10 passed, 0 failed\n", "//tests:test_notsan": STALE},
     ["//tests:test_core", "//tests:test_notsan"], (10, 0)),
    ("a run that died before analysis fails every expected test",
     "ERROR: /w/tests/BUILD:3:1: syntax error at 'newline'\n"
     "ERROR: Skipping '//...': Error evaluating '//...': error loading package 'tests'\n"
     "FAILED: Build did NOT complete successfully (0 packages loaded)\n",
     {"//tests:test_core": STALE, "//tests:test_slab": STALE},
     ["//tests:test_core", "//tests:test_slab"], (0, 3)),
    ("nothing at all is a failure",
     "", {"//tests:test_core": STALE}, None, (0, 1)),
]


def main():
    passed = failed = 0
    for name, console, logs, expected, want in CASES:
        got = run_case(console, logs, expected)
        if got == want:
            passed += 1
            print(f"ok   {name}: {got[0]} passed, {got[1]} failed")
        else:
            failed += 1
            print(f"FAIL {name}: got {got}, want {want}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
