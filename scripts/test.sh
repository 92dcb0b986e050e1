#!/usr/bin/env bash
# The whole test suite from a fresh machine: install what is missing, build
# with warnings as errors, run the Check suites; then the same suites under
# AddressSanitizer + UBSan, the end-to-end suite under Valgrind, and
# `make distcheck`; then 60 s of fuzzing (`make fuzz`).  Ends with one line:
# "N passed, N failed".
# Usage: scripts/test.sh [--quick]   (--quick: the plain build's suites only)
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh || exit 1

passed=0
failed=0
count() { # sums Check's "Checks: N, Failures: F, Errors: E" lines of a log
  local line
  line=$(grep -Eo 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$1" | tail -1)
  if [ -z "$line" ]; then failed=$((failed + 1)); echo "no Check summary in $1"; return; fi
  local n f e
  read -r n f e < <(echo "$line" | grep -Eo '[0-9]+' | tr '\n' ' ')
  passed=$((passed + n - f - e))
  failed=$((failed + f + e))
  echo "$2: $line"
}
step() { # a step that is not a Check run counts as one test
  if "$@" >/tmp/shmalloc-step.log 2>&1; then passed=$((passed + 1)); echo "ok: $*"
  else failed=$((failed + 1)); echo "FAILED: $*"; tail -40 /tmp/shmalloc-step.log; fi
}

scripts/build.sh || { echo "0 passed, 1 failed"; exit 1; }
make -C build -j"$(nproc)" check >/dev/null 2>&1
count build/tests/check_shmalloc.log "plain build"
[ "$failed" -eq 0 ] || cat build/tests/check_shmalloc.log

if [ "${1:-}" != "--quick" ]; then
  # Sanitizers: a separate build tree, so the plain build stays as it is.
  BUILD_DIR=build-asan scripts/build.sh --enable-sanitizers
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    make -C build-asan -j"$(nproc)" check >/dev/null 2>&1
  count build-asan/tests/check_shmalloc.log "ASan+UBSan"
  # Valgrind: the client and the tests run under memcheck (CK_FORK=no keeps
  # one process per suite, so errors are not lost in forks it cannot follow).
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
  # A bounded fuzz run (tests/fuzz/local.mk): 30 s per target, one step.
  step make -C build fuzz FUZZ_SECONDS=30
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
