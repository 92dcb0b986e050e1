#!/bin/sh
# SPDX-License-Identifier: MIT
# run-bench.sh RESULTS_DIR: runs every benchmark driver, prints the medians
# side by side with shmalloc's ratios to each peer, and writes
#   RESULTS_DIR/latest.tsv      one row per figure, one column per allocator
#   RESULTS_DIR/latest-raw.tsv  every line the drivers printed (min, max, runs)
# Run from the build directory (`make bench` does).  Environment:
#   BENCH_DRIVERS  peers configure found (glibc jemalloc mimalloc tcmalloc boost)
#   BENCH_SKIPPED  peers configure did not find
#   BENCH_RUNS (5), BENCH_IDLE_RUNS (3), BENCH_SCALE (1), BENCH_TESTS (all),
#   BENCH_TIMEOUT (seconds per driver and test, 60), BENCH_IDLE_WAIT (ms, 3000)
# shmalloc runs against a fresh shmallocd per test (--decay 1), on a socket in
# a temporary directory; the daemon gets SIGTERM after the test and its
# segments are removed.  Whatever fails there is reported, never fatal.
set -u

results=${1:-bench/results}
drivers=${BENCH_DRIVERS:-glibc}
skipped=${BENCH_SKIPPED:-}
tests=${BENCH_TESTS:-a s b1 b2 b4 b8 c cp ct ctp d e fm t f}
limit=${BENCH_TIMEOUT:-60}
opts="--runs ${BENCH_RUNS:-5} --idle-runs ${BENCH_IDLE_RUNS:-3}"
opts="$opts --scale ${BENCH_SCALE:-1} --idle-wait ${BENCH_IDLE_WAIT:-3000}"
columns="glibc jemalloc mimalloc tcmalloc boost shmalloc"

mkdir -p "$results" || exit 1
raw=$results/latest-raw.tsv
errlog=$results/drivers.log
: >"$raw"
: >"$errlog"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmalloc-bench.XXXXXX") || exit 1
daemon_pid=
instance=

stop_daemon() {
	[ -n "$daemon_pid" ] || return 0
	kill -TERM "$daemon_pid" 2>/dev/null
	i=0
	while kill -0 "$daemon_pid" 2>/dev/null && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$daemon_pid" 2>/dev/null
	wait "$daemon_pid" 2>/dev/null
	daemon_pid=
	rm -f /dev/shm/shmalloc."$instance".*
}

cleanup() {
	stop_daemon
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

unavailable() { # ALLOC TEST REASON
	printf 'unavailable\t%s\t%s\t%s\n' "$1" "$2" "$3" >>"$raw"
}

# Runs one driver; a timeout or a crash becomes an "unavailable" line.
run_driver() { # ALLOC TEST...
	alloc=$1
	shift
	timeout "$limit" "bench/bench_$alloc" $opts "$@" >>"$raw" 2>>"$errlog"
	rc=$?
	[ $rc -eq 124 ] && unavailable "$alloc" "$*" "timed out after ${limit}s"
	[ $rc -gt 128 ] && [ $rc -ne 124 ] && unavailable "$alloc" "$*" "driver died (status $rc)"
	return 0
}

# Starts shmallocd on a socket of its own; 0 once the socket is there.
start_daemon() { # TEST
	instance=bench$$-$1
	sock=$tmp/$1.sock
	./shmallocd --socket "$sock" --name "$instance" --decay 1 --cleanup \
		>"$tmp/daemon.log" 2>&1 &
	daemon_pid=$!
	i=0
	while [ $i -lt 50 ]; do
		[ -S "$sock" ] && return 0
		kill -0 "$daemon_pid" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$daemon_pid" 2>/dev/null; then
		why="shmallocd did not listen within 5 s"
	else
		wait "$daemon_pid" 2>/dev/null
		why="shmallocd exited with status $? before listening"
	fi
	last=$(tail -n 1 "$tmp/daemon.log")
	unavailable shmalloc "$1" "$why${last:+: $last}"
	stop_daemon
	return 1
}

run_shmalloc() {
	if [ -f "$results/shmalloc-build.failed" ] || [ ! -x bench/bench_shmalloc ]; then
		last=$(grep -m 1 -E 'error|undefined' "$results/shmalloc-build.log" 2>/dev/null)
		unavailable shmalloc all "did not build${last:+: $last} (see $results/shmalloc-build.log)"
		return
	fi
	for t in $tests; do
		start_daemon "$t" || continue
		SHMALLOC_SOCKET=$sock SHMALLOC_BENCH_INSTANCE=$instance run_driver shmalloc "$t"
		stop_daemon
	done
}

for d in $drivers; do
	echo "running $d..." >&2
	run_driver "$d" $tests
done
echo "running shmalloc..." >&2
run_shmalloc

# ---- report: the table, the ratios, latest.tsv ----
awk -F '\t' -v columns="$columns" -v skipped="$skipped" -v out="$results/latest.tsv" \
	-v ncpu="$(nproc 2>/dev/null || echo '?')" -f - "$raw" <<'AWK'
BEGIN { na = split(columns, alloc, " "); nm = 0 }
$1 == "metric" && !($2 in unit) { order[++nm] = $2; unit[$2] = $3; label[$2] = $4 }
$1 == "result" { runs[$3] = $8; got[$2] = 1 }
$1 == "result" && $5 !~ /nan/ { med[$2, $3] = $5 }
$1 == "waits" { waits[$3] = waits[$3] sprintf(" %s=%.1f%%", $3, 100 * $4) }
$1 == "info" && $3 == "version" { version[$2] = $4 }
$1 == "unavailable" { why[$2] = why[$2] sprintf("\n    %s: %s", $3, $4) }
function fmt(v) {
	if (v == "") return "-"
	return v >= 1000 ? sprintf("%.0f", v) : v >= 10 ? sprintf("%.1f", v) : sprintf("%.2f", v)
}
function table(   i, j, m, line) {
	printf "%-8s %-4s", "figure", "unit"
	for (j = 1; j <= na; j++) printf " %10s", alloc[j]
	printf "  runs\n"
	for (i = 1; i <= nm; i++) {
		m = order[i]
		printf "%-8s %-4s", m, unit[m]
		for (j = 1; j <= na; j++) printf " %10s", fmt(med[alloc[j], m])
		printf "  %4s\n", runs[m]
	}
}
function ratios(ref,   i, j, m, r) {
	printf "\nratios %s/peer (below 1 means %s uses less):\n%-8s", ref, ref, "figure"
	for (j = 1; j <= na; j++) if (alloc[j] != ref) printf " %17s", ref "/" alloc[j]
	printf "\n"
	for (i = 1; i <= nm; i++) {
		m = order[i]
		printf "%-8s", m
		for (j = 1; j <= na; j++) {
			if (alloc[j] == ref) continue
			r = (med[ref, m] > 0 && med[alloc[j], m] > 0) ? \
				sprintf("%.2fx", med[ref, m] / med[alloc[j], m]) : "-"
			printf " %17s", r
		}
		printf "\n"
	}
}
# Each figure against the best peer of the same run (the lowest, as every row
# is lower-is-better): the figure the targets are stated in.
function best_peer(ref,   i, j, m, b, bn, r) {
	printf "\n%s against the best peer of this run (below 1: %s is better):\n", ref, ref
	printf "%-8s %12s %10s %12s %8s\n", "figure", ref, "best peer", "", "ratio"
	for (i = 1; i <= nm; i++) {
		m = order[i]
		b = ""; bn = "-"
		for (j = 1; j <= na; j++) {
			if (alloc[j] == ref || !((alloc[j], m) in med) || med[alloc[j], m] <= 0) continue
			if (b == "" || med[alloc[j], m] < b) { b = med[alloc[j], m]; bn = alloc[j] }
		}
		r = (b != "" && ((ref, m) in med) && med[ref, m] > 0) ? sprintf("%.2fx", med[ref, m] / b) : "-"
		printf "%-8s %12s %10s %12s %8s\n", m, fmt(med[ref, m]), fmt(b), bn, r
	}
}
function legend(   i, m) {
	printf "\n"
	for (i = 1; i <= nm; i++) { m = order[i]; printf "%-8s %s\n", m, label[m] }
}
function status(   j, a, n, s) {
	printf "\n"
	n = split(skipped, s, " ")
	for (j = 1; j <= n; j++) printf "%s: skipped (not found by configure)\n", s[j]
	for (j = 1; j <= na; j++) {
		a = alloc[j]
		if (a in why) printf "%s: unavailable%s\n", a, why[a]
		else if (a in got && a in version) printf "%s: version %s\n", a, version[a]
	}
	if ("shmalloc" in got) {
		printf "shmalloc mallocs that waited on the daemon:"
		w = 0
		for (i = 1; i <= nm; i++) if (order[i] in waits) { printf "%s", waits[order[i]]; w = 1 }
		printf "%s\n", w ? "" : " not reported by the daemon's stats (yet)"
	}
}
function write_tsv(   i, j, m, v) {
	printf "metric\tunit" > out
	for (j = 1; j <= na; j++) printf "\t%s", alloc[j] > out
	printf "\tlabel\n" > out
	for (i = 1; i <= nm; i++) {
		m = order[i]
		printf "%s\t%s", m, unit[m] > out
		for (j = 1; j <= na; j++) {
			v = med[alloc[j], m]
			printf "\t%s", v == "" ? "NaN" : v > out
		}
		printf "\t%s\n", label[m] > out
	}
	close(out)
}
END {
	printf "\nshmalloc benchmarks: medians, %s CPUs; lower is better in every row\n\n", ncpu
	table()
	if ("shmalloc" in got) { ratios("shmalloc"); best_peer("shmalloc") }
	else if ("boost" in got) {
		printf "\nshmalloc has no figures; the shared-memory peer's ratios instead:"
		ratios("boost")
	}
	legend()
	status()
	write_tsv()
}
AWK
echo
echo "results: $results/latest.tsv (raw: $raw; driver errors: $errlog)"
# shmalloc on each backing store, side by side (BENCH_BACKINGS=0: not).
[ "${BENCH_BACKINGS:-1}" = 0 ] || sh "$(dirname "$0")/backings.sh" "$results"
