#!/usr/bin/env bash
# Configures (once) and builds shmalloc in the source tree.
# Usage: scripts/build.sh [configure options...]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x configure ] || [ configure.ac -nt configure ]; then
  autoreconf -fi >/dev/null
fi
if [ ! -f Makefile ] || [ configure -nt config.status ] || [ $# -gt 0 ]; then
  ./configure --enable-werror "$@" >/dev/null
fi
make -j"$(nproc)" >/dev/null
