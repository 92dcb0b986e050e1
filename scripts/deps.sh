#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what building and testing shmalloc needs, if it is missing.
# Usage: scripts/deps.sh [--bench]   (--bench adds the benchmark peers)
# Runs apt-get as root, or through sudo; does nothing when all is there.
set -euo pipefail

pkgs=(autoconf automake libtool pkg-config make gcc protobuf-c-compiler
      libprotobuf-c-dev libuv1-dev check valgrind python3 clang libclang-rt-dev
      sqlite3 git redis-server redis-tools
      libsystemd-dev systemd debhelper dpkg-dev lintian) # socket activation; the packages
# python/: Debian's Python, NumPy and pytest
pkgs+=(python3-dev python3-venv python3-pip python3-setuptools python3-wheel python3-numpy python3-pytest)
if [ "${1:-}" = "--bench" ]; then
  pkgs+=(g++ libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev libboost-dev gnuplot-nox)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "scripts/deps.sh: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "scripts/deps.sh: run as root, or install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
