#!/usr/bin/env python3
"""Sum the results of one `bazel test` invocation.

    sum_results.py CONSOLE_LOG TESTLOGS_DIR [EXPECTED_TESTS]

Reads the invocation's console log for the per-target status lines and, for
the targets that ran this time, each target's test.log under bazel-testlogs
for its final "N passed, N failed" line.  Prints "PASSED FAILED" and a line
per failing target on stderr.

Only a target whose status says it ran (PASSED, FAILED, FLAKY, TIMEOUT, with
or without "(cached)") has its test.log read: bazel-testlogs keeps the logs
of earlier runs, so a target that did not run this time (NO STATUS, FAILED TO
BUILD, INCOMPLETE) would otherwise count an old run's passes.  Such a target
counts 0 passed, 1 failed, whatever lies in its directory.  So does a test
target Bazel should have reported and did not: the console's "Found N targets
and M test targets" says how many (after --test_tag_filters), and
EXPECTED_TESTS (optional, one label a line: `bazel query 'tests(//...)'`)
names them, and covers a run that died before analysis said anything.  A
target that failed without saying how many checks failed counts as one
failure; one that passed without a line counts as one pass; a build failure
counts one failure more.
"""
import os
import re
import sys

STATUS = re.compile(r"^(//\S+)\s+(?:\(cached\)\s+)?(PASSED|FAILED TO BUILD|FAILED|TIMEOUT|FLAKY|NO STATUS|INCOMPLETE)\b")
RAN = ("PASSED", "FAILED", "TIMEOUT", "FLAKY")
FOUND = re.compile(r"^INFO: Found \d+ (?:targets? and )?(\d+) test targets?\b")
COUNTS = re.compile(r"^(?:\w+:\s*)?(\d+) passed, (\d+) failed")


def log_counts(path):
    """The last "N passed, N failed" line of a test.log, or (None, None)."""
    p = fl = None
    if os.path.exists(path):
        with open(path, errors="replace") as t:
            for tl in t:
                c = COUNTS.match(tl.strip())
                if c:
                    p, fl = int(c.group(1)), int(c.group(2))
    return p, fl


def summarize(log, testlogs, expected_file=None, err=sys.stderr):
    passed = failed = 0
    build_failed = False
    found = None
    statuses = {}  # target -> status, in order of appearance
    with open(log, errors="replace") as f:
        lines = f.read().splitlines()
    for line in lines:
        if "FAILED: Build did NOT complete successfully" in line or line.startswith("ERROR: ") and "Build" in line:
            build_failed = True
        m = FOUND.match(line.strip())
        if m:
            found = int(m.group(1))
        m = STATUS.match(line.strip())
        if m:
            statuses[m.group(1)] = m.group(2)
    expected = []
    if expected_file and os.path.exists(expected_file):
        with open(expected_file, errors="replace") as f:
            expected = [l.strip() for l in f if l.strip().startswith("//")]

    for target, status in statuses.items():
        ok = status in ("PASSED", "FLAKY")
        if status in RAN:
            pkg, name = target[2:].split(":")
            p, fl = log_counts(os.path.join(testlogs, pkg, name, "test.log"))
        else:
            p = fl = None  # did not run this time: an old test.log says nothing
        if p is None:
            p, fl = (1, 0) if ok else (0, 1)
        elif not ok and fl == 0:
            fl = 1
        passed += p
        failed += fl
        if not ok:
            print(f"  {target}: {status} ({p} passed, {fl} failed)", file=err)

    # Tests that should have been reported and were not.
    unreported = [t for t in expected if t not in statuses]
    if found is None:
        # Analysis said nothing (the run died before it): every expected test.
        missing = len(unreported)
    else:
        # Analysis said how many tests this invocation selects, tag filters
        # applied; the expected list (unfiltered) only names candidates.
        missing = max(0, found - len(statuses))
    if missing:
        names = ", ".join(unreported) if len(unreported) == missing else "of " + (", ".join(unreported) or "?")
        print(f"  {missing} test target(s) not reported, 0 passed, 1 failed each ({names})", file=err)
    failed += missing

    if build_failed or not statuses:
        print("  build failed or no test ran", file=err)
        failed += 1
    return passed, failed


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: sum_results.py CONSOLE_LOG TESTLOGS_DIR [EXPECTED_TESTS]")
    p, f = summarize(*sys.argv[1:])
    print(p, f)


if __name__ == "__main__":
    main()
