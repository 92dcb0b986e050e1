#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Python hand-over benchmark (bench/python/handover.py) from the tree:
# the library and the module installed as python/env.sh does it, a
# shmallocd on a temporary socket, then the three hand-overs side by side.
# Usage: bench/python/run.sh [--rounds N] [--mb N]   (after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
. python/env.sh
cd "$tmp"
"$py" "$top/bench/python/handover.py" "$@"
