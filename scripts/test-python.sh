#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Python module's tests: the library and the module installed as
# python/env.sh does it, then pytest on python/tests, which starts a real
# shmallocd (the one installed there) on a temporary socket.
# Ends with a Check-style line "Checks: N, Failures: F, Errors: E" and one
# "SKIP: <test>: <why>" line per skipped test, which scripts/test.sh counts;
# a step that fails before pytest prints no such line (test.sh counts that
# as a failure), and so does a missing NumPy: its tests fail, not skip.
# Usage: scripts/test-python.sh [pytest args...]   (after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
. python/env.sh

# From the temporary directory, so that python/shmalloc (the source, not
# built) does not shadow the installed module.
cd "$tmp"
rc=0
"$py" -m pytest -p no:cacheprovider -rs --junitxml="$tmp/junit.xml" \
  "$@" "$top/python/tests" || rc=$?
"$py" - "$tmp/junit.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suite = root if root.tag == "testsuite" else root.find("testsuite")
n, f, e = (int(suite.get(k)) for k in ("tests", "failures", "errors"))
for case in suite.iter("testcase"):
    s = case.find("skipped")
    if s is not None:
        print("SKIP: %s: %s" % (case.get("name"), s.get("message", "")))
print("Checks: %d, Failures: %d, Errors: %d" % (n, f, e))
EOF
exit "$rc"
