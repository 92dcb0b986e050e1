#!/bin/sh
# SPDX-License-Identifier: MIT
# footprint.sh [ARGS...]: runs bench/footprint (the accounting of bench (e))
# against a fresh shmallocd --decay 1 on a temporary socket, as
# run-bench.sh runs (e); ARGS go to bench/footprint (--classes: per class).
# Run from the build directory (`make bench-footprint` does).
set -u
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmalloc-footprint.XXXXXX") || exit 1
instance=footprint$$
sock=$tmp/d.sock
./shmallocd --socket "$sock" --name "$instance" --decay 1 --cleanup >"$tmp/daemon.log" 2>&1 &
pid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
SHMALLOC_SOCKET=$sock bench/footprint "$@"
rc=$?
kill -TERM "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rm -f /dev/shm/shmalloc."$instance".*
rm -rf "$tmp"
exit $rc
