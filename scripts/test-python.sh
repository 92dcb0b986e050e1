#!/usr/bin/env bash
# The Python module's tests: installs the built library into a temporary
# DESTDIR, pip-installs python/ against it into a venv of Debian's
# /usr/bin/python3 (--system-site-packages: NumPy and pytest are Debian's),
# and runs pytest on python/tests, which starts a real shmallocd (the one
# installed here) on a temporary socket.
# Ends with a Check-style line "Checks: N, Failures: F, Errors: E" and one
# "SKIP: <test>: <why>" line per skipped test, which scripts/test.sh counts;
# a step that fails before pytest prints no such line (test.sh counts that
# as a failure), and so does a missing NumPy: its tests fail, not skip.
# Usage: scripts/test-python.sh [pytest args...]   (after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
tmp=$(mktemp -d /tmp/shmalloc-py.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

make -C build -j2 install DESTDIR="$tmp/root" >"$tmp/install.log" 2>&1 ||
  { tail -30 "$tmp/install.log"; exit 1; }
prefix=$(sed -n 's/^prefix=//p' build/shmalloc.pc)
export PKG_CONFIG_PATH="$tmp/root$prefix/lib/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
export SHMALLOCD="$tmp/root$prefix/sbin/shmallocd"

/usr/bin/python3 -m venv --system-site-packages "$tmp/venv"
# From a copy: pip builds in the tree it is given.  --no-index: everything
# it needs is installed already (Debian's setuptools and wheel).
mkdir "$tmp/src"
cp -r python/setup.py python/shmalloc python/src "$tmp/src/"
"$tmp/venv/bin/pip" install -v --no-index "$tmp/src" >"$tmp/pip.log" 2>&1 ||
  { cat "$tmp/pip.log"; exit 1; }
grep -o 'shmalloc: shma_lookup_wait.*' "$tmp/pip.log" | head -1 || true

# From the temporary directory, so that python/shmalloc (the source, not
# built) does not shadow the installed module.
cd "$tmp"
rc=0
"$tmp/venv/bin/python" -m pytest -p no:cacheprovider -rs --junitxml="$tmp/junit.xml" \
  "$@" "$top/python/tests" || rc=$?
"$tmp/venv/bin/python" - "$tmp/junit.xml" <<'EOF'
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
