#!/bin/sh
# SPDX-License-Identifier: MIT
# daemon-cpu.sh BUILD_DIR [TEST...]: the daemon's CPU time (utime + stime, in
# ticks of 10 ms) and requests served while bench (c) and (cp) -- or the
# tests named, e.g. ct ctp, the flow between two threads -- run against it
# five times each: what the flow costs the daemon, beside what it costs the
# programs.  Compare two builds in one sitting:
#   sh bench/daemon-cpu.sh build; sh bench/daemon-cpu.sh /path/to/other/build
set -u
b=$1
shift
tests=${*:-cp c}
d=$(mktemp -d "${TMPDIR:-/tmp}/shmalloc-dcpu.XXXXXX") || exit 1
inst=dcpu$$
"$b/shmallocd" --socket "$d/s/sock" --name "$inst" --decay 1 --cleanup >/dev/null 2>&1 &
pid=$!
i=0
while [ ! -S "$d/s/sock" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
out=$(cd "$b" && SHMALLOC_SOCKET="$d/s/sock" SHMALLOC_BENCH_INSTANCE=$inst \
	bench/bench_shmalloc --runs 5 $tests 2>/dev/null | awk -F '\t' '$1 == "result" { printf "%s %s %s; ", $3, $5, $4 }')
req=$("$b/shmallocctl" --socket "$d/s/sock" stats --json 2>/dev/null |
	python3 -c 'import json, sys; print(json.load(sys.stdin).get("requests"))' 2>/dev/null)
t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
kill "$pid"
wait "$pid" 2>/dev/null
rm -rf "$d"
echo "$b: daemon CPU $((t1 - t0)) ticks, $req requests; $out"
