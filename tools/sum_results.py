#!/usr/bin/env python3
"""Sum the results of one `bazel test` invocation.

Reads the invocation's console log (argv[1]) for the per-target status lines
and each target's test.log under bazel-testlogs (argv[2]) for its final
"N passed, N failed" line.  A target that failed without saying how many
checks failed counts as one failure; one that passed without a line counts as
one pass; a build failure counts as one failure.  Prints "PASSED FAILED" and a
line per failing target on stderr.
"""
import os
import re
import sys

STATUS = re.compile(r"^(//\S+)\s+(?:\(cached\)\s+)?(PASSED|FAILED|TIMEOUT|FLAKY|NO STATUS|FAILED TO BUILD|INCOMPLETE)\b")
COUNTS = re.compile(r"^(?:\w+:\s*)?(\d+) passed, (\d+) failed")


def main():
    log, testlogs = sys.argv[1], sys.argv[2]
    passed = failed = 0
    seen = 0
    build_failed = False
    with open(log, errors="replace") as f:
        lines = f.read().splitlines()
    for line in lines:
        if "FAILED: Build did NOT complete successfully" in line or line.startswith("ERROR: ") and "Build" in line:
            build_failed = True
        m = STATUS.match(line.strip())
        if not m:
            continue
        seen += 1
        target, status = m.group(1), m.group(2)
        pkg, name = target[2:].split(":")
        path = os.path.join(testlogs, pkg, name, "test.log")
        p = fl = None
        if os.path.exists(path):
            with open(path, errors="replace") as t:
                for tl in t:
                    c = COUNTS.match(tl.strip())
                    if c:
                        p, fl = int(c.group(1)), int(c.group(2))
        ok = status in ("PASSED", "FLAKY")
        if p is None:
            p, fl = (1, 0) if ok else (0, 1)
        elif not ok and fl == 0:
            fl = 1
        passed += p
        failed += fl
        if not ok:
            print(f"  {target}: {status} ({p} passed, {fl} failed)", file=sys.stderr)
    if build_failed or seen == 0:
        print("  build failed or no test ran", file=sys.stderr)
        failed += 1
    print(passed, failed)


if __name__ == "__main__":
    main()
