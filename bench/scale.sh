#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make bench-scale` (issue 22 item 5): N processes at once, each bench/scale's
# mixed workload (OPS malloc+free pairs of 16 B - 32 KiB, a quarter of each
# batch kept across batches), on glibc, jemalloc, mimalloc and tcmalloc
# (LD_PRELOAD, as bench/programs.sh does), on shmalloc under shmalloc-run
# (each process a region client of one daemon) and as library clients
# (bench/scale_shmalloc: shma_malloc/shma_free).  Each allocator is run RUNS
# times, the rounds interleaved; the table gives the median wall time, ops/s
# (mallocs + frees a second, all processes), the ratio to the best peer, and
# for shmalloc the daemon's CPU seconds and the requests it served (medians).
# Usage: bench/scale.sh BUILDDIR
# Environment: SCALE_N (64), SCALE_OPS (1000000 pairs a process), SCALE_RUNS
# (3), SCALE_BIN (where bench/scale is, if not BUILDDIR/bench), SCALE_ALLOCS (the columns, e.g. "tcmalloc shmalloc-run"), BENCH_PRELOAD
# (another build's libshmalloc-preload.so).  SCALE_N=8 SCALE_OPS=200000 is a
# quick run.
set -uo pipefail
build=$(cd "${1:?usage: scale.sh BUILDDIR}" && pwd)
n=${SCALE_N:-64}
ops=${SCALE_OPS:-1000000}
runs=${SCALE_RUNS:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/shmalloc-bench-scale.XXXXXX")
daemon_pid=
trap 'stop_daemon; rm -rf "$work"' EXIT

. "$(dirname "$0")/peers.sh"
allocs=()
for a in ${SCALE_ALLOCS:-glibc jemalloc mimalloc tcmalloc shmalloc-run shmalloc-lib}; do
  case $a in
    glibc|shmalloc-run|shmalloc-lib) allocs+=("$a") ;;
    *) if [ -f "${preload[$a]:-/nonexistent}" ]; then allocs+=("$a")
       else echo "skipped $a: no ${preload[$a]:-library}" >&2; fi ;;
  esac
done
export SHMALLOC_PRELOAD=${BENCH_PRELOAD:-$build/.libs/libshmalloc-preload.so}
# The workload's programs: this build's, or SCALE_BIN's (to time another
# build's daemon and libraries with the same programs).
bin=$(cd "${SCALE_BIN:-$build/bench}" && pwd)
scale=$bin/scale
scale_lib=$bin/scale_shmalloc
[ -x "$bin/.libs/scale_shmalloc" ] && scale_lib=$bin/.libs/scale_shmalloc
sock=$work/s/sock

start_daemon() {
  "$build/shmallocd" --socket "$sock" --name "scale$$" --cleanup --log-level warn \
    2>>"$work/daemon.log" &
  daemon_pid=$!
  for _ in $(seq 400); do [ -S "$sock" ] && return 0; sleep 0.05; done
  echo "scale.sh: the daemon did not start" >&2
  return 1
}

stop_daemon() {
  [ -n "$daemon_pid" ] || return 0
  kill "$daemon_pid" 2>/dev/null
  wait "$daemon_pid" 2>/dev/null
  daemon_pid=
}

ticks() { awk '{print $14 + $15}' "/proc/$daemon_pid/stat"; }

requests() {
  "$build/shmallocctl" --socket "$sock" stats --json 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin).get("requests", 0))' 2>/dev/null
}

# One run of allocator $1: "SECONDS DAEMON_CPU_S REQUESTS" (0 0 for peers),
# or FAILED.
run_one() {
  local out t0 t1 r
  case $1 in
    glibc) out=$("$scale" "$n" "$ops" 2>>"$work/errors") ;;
    shmalloc-run|shmalloc-lib)
      start_daemon || { echo FAILED; return; }
      t0=$(ticks)
      if [ "$1" = shmalloc-run ]; then
        out=$("$build/shmalloc-run" --socket "$sock" "$scale" "$n" "$ops" 2>>"$work/errors")
      else
        out=$(SHMALLOC_SOCKET=$sock LD_LIBRARY_PATH=$build/.libs "$scale_lib" "$n" "$ops" \
          2>>"$work/errors")
      fi
      t1=$(ticks)
      r=$(requests)
      stop_daemon ;;
    *) out=$(LD_PRELOAD=${preload[$1]} "$scale" "$n" "$ops" 2>>"$work/errors") ;;
  esac
  [ $? -eq 0 ] || { echo FAILED; return; }
  case $1 in
    shmalloc-*) echo "$(echo "$out" | awk '{print $4}') $(( t1 - t0 ))e-2 ${r:-0}" ;;
    *) echo "$(echo "$out" | awk '{print $4}') 0 0" ;;
  esac
}

median() { sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]; else print "FAILED"}'; }

declare -A res
for round in $(seq "$runs"); do
  for a in "${allocs[@]}"; do
    res[$a]+="$(run_one "$a")"$'\n'
  done
done

echo "bench-scale: $n processes at once, $ops malloc+free pairs each, median of $runs"
printf '%-13s %9s %12s %7s %11s %10s\n' allocator wall_s Mops/s ratio daemon_cpu_s requests
best=
for a in "${allocs[@]}"; do
  case $a in shmalloc-*) continue ;; esac
  w=$(printf '%s' "${res[$a]}" | awk '{print $1}' | median)
  [ "$w" = FAILED ] && continue
  best=$(echo "$w ${best:-inf}" | awk '{if ($2 == "inf" || $1 < $2) print $1; else print $2}')
done
for a in "${allocs[@]}"; do
  w=$(printf '%s' "${res[$a]}" | awk '{print $1}' | median)
  c=$(printf '%s' "${res[$a]}" | awk '{print $2}' | median)
  q=$(printf '%s' "${res[$a]}" | awk '{print $3}' | median)
  if [ "$w" = FAILED ] || printf '%s' "${res[$a]}" | grep -q FAILED; then
    printf '%-13s %9s\n' "$a" FAILED
    continue
  fi
  awk -v a="$a" -v w="$w" -v b="${best:-0}" -v c="$c" -v q="$q" -v n="$n" -v ops="$ops" 'BEGIN {
    r = b > 0 ? sprintf("%.2fx", w / b) : "-";
    if (a ~ /^shmalloc/) printf "%-13s %9.3f %12.1f %7s %11.2f %10d\n", a, w, 2 * n * ops / w / 1e6, r, c, q;
    else printf "%-13s %9.3f %12.1f %7s %11s %10s\n", a, w, 2 * n * ops / w / 1e6, r, "-", "-" }'
done
if [ -s "$work/errors" ]; then
  echo "errors:" >&2
  sort "$work/errors" | uniq -c | head -20 >&2
fi
