#!/bin/sh
# SPDX-License-Identifier: MIT
# `make bench`'s named heaps lines (issue 17): bench/heapbench against a
# shmallocd of its own.  Usage: bench/heaps.sh RESULTS_DIR
set -u
results=${1:-bench/results}
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
chmod 700 "$tmp"
./shmallocd --socket "$tmp/s.sock" --name "benchheaps$$" --cleanup >"$tmp/daemon.log" 2>&1 &
pid=$!
i=0
while [ ! -S "$tmp/s.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
echo
echo "named heaps (issue 17): lower is better; ratio goal 1.2"
if SHMALLOC_SOCKET=$tmp/s.sock bench/heapbench >"$tmp/out" 2>"$tmp/err"; then
	awk -F '\t' '{ printf "  %-13s %10s %-3s %s\n", $1, $2, $3, $4 }' "$tmp/out"
	cp "$tmp/out" "$results/heaps.tsv"
else
	echo "  unavailable: $(tail -n 1 "$tmp/err")"
fi
