#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Configures (once) and builds shmalloc out of tree, in build/ (or $BUILD_DIR).
# Usage: scripts/build.sh [configure options...]
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${BUILD_DIR:-build}
if [ -f config.status ]; then
  echo "scripts/build.sh: the source tree is configured in place; run 'make distclean' first" >&2
  exit 1
fi
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
  autoreconf -fi >/dev/null
fi
mkdir -p "$build"
cd "$build"
if [ ! -f Makefile ] || [ "$top/configure" -nt config.status ] || [ $# -gt 0 ]; then
  "$top/configure" --enable-werror "$@" >/dev/null
fi
make -j"$(nproc)" >/dev/null
