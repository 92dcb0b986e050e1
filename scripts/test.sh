#!/usr/bin/env bash
# The whole test suite from a fresh machine: install what is missing, build
# with warnings as errors, run the Check suites; then the same suites under
# AddressSanitizer + UBSan, the end-to-end suite under Valgrind, and
# `make distcheck`; then 60 s of fuzzing (`make fuzz`).  Ends with one line:
# "N passed, N failed, N skipped".  A test that cannot run here says so with
# a line "SKIP: <test>: <why>" on stderr (tests/skip.h): Check counts it
# passed, this script counts it skipped.
# Usage: scripts/test.sh [--quick]   (--quick: the plain build's suites only)
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0
failed=0
skipped=0
totals() { # the last line of the output, on a line of its own
  echo
  echo "$passed passed, $failed failed, $skipped skipped"
}
scripts/deps.sh || { failed=1; totals; exit 1; }

count() { # sums Check's "Checks: N, Failures: F, Errors: E" lines of a log
  local line
  line=$(grep -Eo 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$1" | tail -1)
  if [ -z "$line" ]; then failed=$((failed + 1)); echo "no Check summary in $1"; return; fi
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
step() { # a step that is not a Check run counts as one test
  if "$@" >/tmp/shmalloc-step.log 2>&1; then passed=$((passed + 1)); echo "ok: $*"
  else failed=$((failed + 1)); echo "FAILED: $*"; tail -40 /tmp/shmalloc-step.log; fi
}

scripts/build.sh || { failed=1; totals; exit 1; }
make -C build -j"$(nproc)" check >/dev/null 2>&1
count build/tests/check_shmalloc.log "plain build"
[ "$failed" -eq 0 ] || cat build/tests/check_shmalloc.log
scripts/test-python.sh >build/python-tests.log 2>&1 || tail -60 build/python-tests.log; count build/python-tests.log "Python (pytest)"

if [ "${1:-}" != "--quick" ]; then
  # Sanitizers: a separate build tree, so the plain build stays as it is.
  BUILD_DIR=build-asan scripts/build.sh --enable-sanitizers
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    make -C build-asan -j"$(nproc)" check >/dev/null 2>&1
  count build-asan/tests/check_shmalloc.log "ASan+UBSan"
  # Valgrind: the client and the tests run under memcheck.  CK_FORK=yes, as
  # everywhere: each test runs in a fork() of the runner, which Valgrind
  # follows without being asked (it is --trace-children for exec), so every
  # test's errors and leaks are reported, prefixed by its pid, in the log;
  # and a test that crashes fails alone instead of ending the suite.  The
  # daemons the tests exec are not traced.
  for suite in e2e alloc; do
    [ -n "$(grep -w "XX($suite)" tests/suites.h)" ] || continue
    log=build/tests/valgrind-$suite.log
    CK_FORK=yes valgrind -q --leak-check=full --errors-for-leak-kinds=definite \
      --suppressions=tests/valgrind.supp \
      build/tests/check_shmalloc "$suite" >"$log" 2>&1
    count "$log" "Valgrind ($suite)"
    if grep -q "==[0-9]*==" "$log"; then
      failed=$((failed + 1)); echo "Valgrind reported errors:"; grep "==[0-9]*==" "$log" | head -30
    fi
  done
  step make -C build -j"$(nproc)" distcheck
  # The hardened unit's exposure, and the Debian packages built, linted,
  # installed and serving the demo (scripts/test-packages.sh).
  step systemd/check-security.sh
  step scripts/test-packages.sh
  # A bounded fuzz run (tests/fuzz/local.mk): 30 s per target, one step.
  step make -C build fuzz FUZZ_SECONDS=30
fi

totals
[ "$failed" -eq 0 ]
