#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite from a fresh machine: install what is missing, build
# with warnings as errors, run the Check suites; then the same suites under
# AddressSanitizer + UBSan, the end-to-end suite under Valgrind, and
# `make distcheck`; then 60 s of fuzzing (`make fuzz`).  Ends with one line:
# "N passed, N failed, N skipped".  A test that cannot run here says so with
# a line "SKIP: <test>: <why>" on stderr (tests/skip.h): Check counts it
# passed, this script counts it skipped.
#
# The totals are this run's only: every log it reads is removed before the
# run that writes it, a build that fails (the library or a test program)
# counts as a failure, and so does a run that exits non-zero without a
# failure in its log (a runner that crashed) or leaves no Check summary.
# Usage: scripts/test.sh [--quick]   (--quick: the plain build's suites only)
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
passed=0
failed=0
skipped=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
totals() { # the last line of the output, on a line of its own
  echo
  echo "$passed passed, $failed failed, $skipped skipped"
}
fail() { # one failure, said with the tail of the log that shows it
  failed=$((failed + 1))
  echo "FAILED: $1"
  [ -z "${2:-}" ] || tail -40 "$2"
}
scripts/deps.sh || { fail "scripts/deps.sh"; totals; exit 1; }

count() { # LOG LABEL: sums Check's "Checks: N, Failures: F, Errors: E" line of LOG
  local line
  line=$(grep -Eo 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$1" 2>/dev/null | tail -1)
  if [ -z "$line" ]; then fail "$2: no Check summary in $1"; return; fi
  local n f e s
  read -r n f e < <(echo "$line" | grep -Eo '[0-9]+' | tr '\n' ' ')
  s=$(grep -c '^SKIP: ' "$1")
  [ "$s" -le $((n - f - e)) ] || s=$((n - f - e)) # a skip that failed is a failure
  passed=$((passed + n - f - e - s))
  failed=$((failed + f + e))
  skipped=$((skipped + s))
  echo "$2: $line, $s skipped"
  grep '^SKIP: ' "$1" | sed 's/^/  /'
}

# DIR LABEL: builds DIR's test programs, then runs `make check` there and
# counts its log.  Returns non-zero when the programs did not build.
check_tree() {
  local dir=$1 label=$2 log=$1/tests/check_shmalloc.log
  rm -f "$log" "${log%.log}.trs" "$dir/test-suite.log"
  if ! make -C "$dir" -j"$jobs" check TESTS= >"$tmp/build.log" 2>&1; then
    fail "$label: the test programs do not build"
    grep -E -m 20 'error|Error' "$tmp/build.log"
    return 1
  fi
  local before=$failed rc=0
  make -C "$dir" check >"$tmp/check.log" 2>&1 || rc=$?
  count "$log" "$label"
  if [ "$rc" -ne 0 ] && [ "$failed" -eq "$before" ]; then
    fail "$label: make check exited $rc with no failure in its log" "$tmp/check.log"
  fi
  [ "$failed" -eq "$before" ] || cat "$log"
  return 0
}

step() { # a step that is not a Check run counts as one test; a SKIP: line makes it a skip
  if ! "$@" >"$tmp/step.log" 2>&1; then fail "$*" "$tmp/step.log"
  elif grep -q '^SKIP: ' "$tmp/step.log"; then
    skipped=$((skipped + 1)); echo "skipped: $*"; grep '^SKIP: ' "$tmp/step.log" | sed 's/^/  /'
  else passed=$((passed + 1)); echo "ok: $*"; fi
}

scripts/build.sh || { fail "scripts/build.sh (the plain build)"; totals; exit 1; }
plain_built=0
check_tree build "plain build" && plain_built=1
# The Python module (python/): built against this tree's library, pytest
# against a real daemon; a failed build or run counts even without a summary.
rm -f build/python-tests.log
python_rc=0
scripts/test-python.sh >build/python-tests.log 2>&1 || python_rc=$?
before=$failed
count build/python-tests.log "Python (pytest)"
if [ "$python_rc" -ne 0 ] && [ "$failed" -eq "$before" ]; then
  fail "Python: scripts/test-python.sh exited $python_rc with no failure counted" build/python-tests.log
elif [ "$failed" -ne "$before" ]; then
  tail -60 build/python-tests.log
fi

if [ "${1:-}" != "--quick" ]; then
  # Sanitizers: a separate build tree, so the plain build stays as it is.
  if BUILD_DIR=build-asan scripts/build.sh --enable-sanitizers; then
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 check_tree build-asan "ASan+UBSan"
  else
    fail "scripts/build.sh --enable-sanitizers (the ASan build)"
  fi
  # Valgrind: the client and the tests run under memcheck.  CK_FORK=yes, as
  # everywhere: each test runs in a fork() of the runner, which Valgrind
  # follows without being asked (it is --trace-children for exec), so every
  # test's errors and leaks are reported, prefixed by its pid, in the log;
  # and a test that crashes fails alone instead of ending the suite.  The
  # daemons the tests exec are not traced.  Only this run's runner: after a
  # failed build the one in build/ is an older one.  Memcheck runs the
  # tests 20-50 times slower: their Check timeouts are 4 times longer here
  # (on a loaded 2-core machine the alloc suite lost one to four tests to
  # the 60 s timeout, with or without this branch's changes).
  for suite in e2e alloc; do
    [ -n "$(grep -w "XX($suite)" tests/suites.h)" ] || continue
    if [ "$plain_built" -ne 1 ]; then fail "Valgrind ($suite): the runner did not build"; continue; fi
    log=build/tests/valgrind-$suite.log
    rm -f "$log"
    before=$failed rc=0
    CK_FORK=yes CK_TIMEOUT_MULTIPLIER=4 valgrind -q --leak-check=full --errors-for-leak-kinds=definite \
      --suppressions=tests/valgrind.supp \
      build/tests/check_shmalloc "$suite" >"$log" 2>&1 || rc=$?
    count "$log" "Valgrind ($suite)"
    if [ "$rc" -ne 0 ] && [ "$failed" -eq "$before" ]; then
      fail "Valgrind ($suite): the runner exited $rc with no failure in its log" "$log"
    fi
    if grep -q "==[0-9]*==" "$log"; then
      fail "Valgrind ($suite) reported errors:"; grep "==[0-9]*==" "$log" | head -30
    fi
  done
  step make -C build -j"$jobs" distcheck
  # The hardened unit's exposure, and the Debian packages built, linted,
  # installed and serving the demo (scripts/test-packages.sh).
  step systemd/check-security.sh
  step scripts/test-packages.sh
  # A bounded fuzz run (tests/fuzz/local.mk): 30 s per target, one step;
  # without clang's libFuzzer it prints a SKIP: line and counts as skipped.
  step make -C build fuzz FUZZ_SECONDS=30
fi

totals
[ "$failed" -eq 0 ]
