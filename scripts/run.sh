#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job: build, start shmallocd with its defaults, and run the demo --
# a producer process and a consumer process passing messages through the
# shared heap by ref -- then show what the heap did, and stop the daemon.
# Usage: scripts/run.sh [MESSAGES]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh

n=${1:-1000000}
dir=$(mktemp -d /tmp/shmalloc-demo.XXXXXX)
sock=$dir/shmallocd.sock
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$dir"' EXIT

b=build
$b/shmallocd --socket "$sock" --cleanup &
daemon=$!
for _ in $(seq 100); do $b/shmallocctl --socket "$sock" ping >/dev/null 2>&1 && break; sleep 0.05; done
export SHMALLOC_SOCKET=$sock

echo "== demo: two processes share one heap ($n messages passed by ref)"
$b/examples/queue consumer "$n" &
consumer=$!
$b/examples/queue producer "$n"
wait $consumer
echo
echo "== shmallocctl stats"
$b/shmallocctl stats
