#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs each fuzz target for SECONDS on its seed corpus; fails on the first
# finding.  Usage: run.sh SECONDS CORPUS_DIR TARGET...
# New inputs go to tests/fuzz/work/<target> (not the seed corpus in the
# tree); a crashing input to tests/fuzz/crash-<hash>.  Segments left by a
# target that died (instance fz<pid>) are removed afterwards.
seconds=$1
corpus=$2
shift 2
status=0
for t in "$@"; do
	name=$(basename "$t")
	mkdir -p "tests/fuzz/work/$name"
	echo "fuzz: $name for ${seconds}s"
	if ! "$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix=tests/fuzz/ \
		"tests/fuzz/work/$name" "$corpus/$name"; then
		echo "fuzz: $name found a crash (see tests/fuzz/crash-*)"
		status=1
	fi
done
for f in /dev/shm/shmalloc.fz*; do
	[ -e "$f" ] || continue
	pid=${f#/dev/shm/shmalloc.fz}
	pid=${pid%%.*}
	kill -0 "$pid" 2>/dev/null || rm -f "$f"
done
exit $status
