#!/bin/sh
# SPDX-License-Identifier: MIT
# backings.sh RESULTS_DIR: shmalloc's fast loop and large-block workloads on
# each backing store (shmallocd --backing), side by side:
#   (a) 1 thread, 100 malloc + 100 free of 16 B-32 KiB: the thread caches,
#       where the backing should not matter;
#   (d) 256 KiB-8 MiB malloc + touch + free and (f) 8 live large blocks
#       replaced and touched: page faults and reservations in the backing.
# Writes RESULTS_DIR/backings.tsv (one row per figure, one column per backing).
# Run from the build directory (run-bench.sh calls it).  Environment:
# BENCH_BACKING_TESTS (a d f), BENCH_RUNS (5), BENCH_TIMEOUT (60),
# BENCH_BACKING_DIR (where file: puts its heap; default a temporary directory
# under $TMPDIR or /var/tmp -- a real filesystem, not tmpfs, where there is one).
set -u

results=${1:-bench/results}
tests=${BENCH_BACKING_TESTS:-a d f}
limit=${BENCH_TIMEOUT:-60}
opts="--runs ${BENCH_RUNS:-5} --idle-runs 1 --scale ${BENCH_SCALE:-1} --idle-wait 100"
[ -x bench/bench_shmalloc ] && [ -x ./shmallocd ] || {
	echo "backings: bench/bench_shmalloc or shmallocd not built" >&2
	exit 0
}
mkdir -p "$results" || exit 1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmalloc-backings.XXXXXX") || exit 1
filedir=${BENCH_BACKING_DIR:-$(mktemp -d "${TMPDIR:-/var/tmp}/shmalloc-filebk.XXXXXX")}
raw=$results/backings-raw.tsv
: >"$raw"
pid=
stop() {
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	pid=
}
trap 'stop; rm -rf "$tmp" "$filedir"' EXIT
trap 'exit 130' INT TERM

for backing in shm memfd "file:$filedir/heap"; do
	label=${backing%%:*}
	for t in $tests; do
		inst=bk$$-$label-$t
		sock=$tmp/$label-$t.sock
		./shmallocd --socket "$sock" --name "$inst" --decay 1 --cleanup --backing "$backing" \
			>>"$tmp/daemon.log" 2>&1 &
		pid=$!
		i=0
		while [ ! -S "$sock" ] && [ $i -lt 50 ] && kill -0 "$pid" 2>/dev/null; do
			sleep 0.1
			i=$((i + 1))
		done
		if [ -S "$sock" ]; then
			SHMALLOC_SOCKET=$sock SHMALLOC_BENCH_INSTANCE=$inst \
				timeout "$limit" bench/bench_shmalloc $opts "$t" 2>>"$tmp/driver.log" |
				awk -F '\t' -v b="$label" 'BEGIN { OFS = "\t" }
					$1 == "result" { $2 = b; print }
					$1 == "metric" { print }' >>"$raw"
		else
			printf 'unavailable\t%s\t%s\tshmallocd did not start: %s\n' "$label" "$t" \
				"$(tail -n 1 "$tmp/daemon.log")" >>"$raw"
		fi
		stop
	done
done

awk -F '\t' -v out="$results/backings.tsv" '
BEGIN { nb = split("shm memfd file", b, " ") }
$1 == "metric" && !($2 in unit) { order[++nm] = $2; unit[$2] = $3; label[$2] = $4 }
$1 == "result" && $5 !~ /nan/ { med[$2, $3] = $5 }
$1 == "unavailable" { why = why sprintf("\n  %s %s: %s", $2, $3, $4) }
function fmt(v) { return v == "" ? "-" : v >= 1000 ? sprintf("%.0f", v) : sprintf("%.1f", v) }
END {
	printf "\nshmalloc on each backing (shmallocd --backing): medians, lower is better\n\n"
	printf "%-8s %-4s", "figure", "unit"
	for (j = 1; j <= nb; j++) printf " %10s", b[j]
	printf "  %s\n", "memfd/shm"
	printf "metric\tunit\tshm\tmemfd\tfile\tlabel\n" > out
	for (i = 1; i <= nm; i++) {
		m = order[i]
		printf "%-8s %-4s", m, unit[m]
		for (j = 1; j <= nb; j++) printf " %10s", fmt(med[b[j], m])
		r = med["shm", m] > 0 && med["memfd", m] > 0 ? sprintf("%.2fx", med["memfd", m] / med["shm", m]) : "-"
		printf "  %s\n", r
		printf "%s\t%s\t%s\t%s\t%s\t%s\n", m, unit[m], med["shm", m], med["memfd", m], med["file", m], label[m] > out
	}
	for (i = 1; i <= nm; i++) printf "%-8s %s\n", order[i], label[order[i]]
	if (why != "") printf "unavailable:%s\n", why
}' "$raw"
echo "results: $results/backings.tsv (raw: $raw)"
