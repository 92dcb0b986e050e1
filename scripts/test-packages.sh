#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Debian packages as a user gets them: builds them with
# `dpkg-buildpackage -us -uc -b` from a copy of the tree, checks them with
# lintian (no error allowed), installs them on this machine, and runs the
# demo (examples/queue, compiled against the installed libshmalloc-dev
# through pkg-config) and shmalloc-run as a user who joined group
# "shmalloc" with usermod -aG, against the installed daemon run as the
# system user the package made, on /run/shmalloc/shmallocd.sock -- the
# unit's command line.  Removes the packages and the user after.
# Needs root (dpkg -i, useradd).  Prints "packages: ok" or what failed.
# Usage: scripts/test-packages.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive
[ "$(id -u)" -eq 0 ] || { echo "scripts/test-packages.sh: needs root" >&2; exit 1; }
work=$(mktemp -d /tmp/shmalloc-pkg.XXXXXX)
user=shmdemo$$
daemon=
cleanup() {
  [ -z "$daemon" ] || { kill -TERM "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true; }
  dpkg -r shmalloc-tools libshmalloc-dev shmallocd libshmalloc0 >/dev/null 2>&1 || true
  userdel "$user" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== build"
mkdir "$work/shmalloc"
(cd "$here" && git ls-files -co --exclude-standard | grep -v '^build' | tar -cf - -T -) |
  tar -xf - -C "$work/shmalloc"
(cd "$work/shmalloc" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log"; echo "dpkg-buildpackage failed"; exit 1; }
ls "$work"/*.deb | sed 's|.*/||'

echo "== lintian"
lint=$(cd "$work" && lintian --tag-display-limit 0 ./*.changes 2>&1 | grep -v 'running with root' || true)
printf '%s\n' "${lint:-(nothing)}"
! printf '%s\n' "$lint" | grep -q '^E:' || { echo "lintian reported errors"; exit 1; }

echo "== install"
debs=()
for p in libshmalloc0 libshmalloc-dev shmallocd shmalloc-tools; do debs+=("$work/${p}_"*_*.deb); done
dpkg -i "${debs[@]}" >"$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
getent passwd shmalloc >/dev/null || { echo "the package made no user shmalloc"; exit 1; }
mkdir -p /run/shmalloc && chown shmalloc:shmalloc /run/shmalloc && chmod 2750 /run/shmalloc
[ "$(stat -c '%U:%G %a' /run/shmalloc)" = "shmalloc:shmalloc 2750" ] ||
  { echo "/run/shmalloc is $(stat -c '%U:%G %a' /run/shmalloc)"; exit 1; }
[ -x /usr/lib/"$(dpkg-architecture -qDEB_HOST_MULTIARCH)"/shmalloc/libshmalloc-preload.so ] ||
  [ -f /usr/lib/"$(dpkg-architecture -qDEB_HOST_MULTIARCH)"/shmalloc/libshmalloc-preload.so ]

echo "== the installed daemon, as the unit runs it"
useradd --no-create-home --shell /bin/sh "$user"
usermod -aG shmalloc "$user"
sock=/run/shmalloc/shmallocd.sock
setpriv --reuid shmalloc --regid shmalloc --init-groups \
  /usr/sbin/shmallocd --socket "$sock" --allow-gid shmalloc --cleanup 2>"$work/daemon.log" &
daemon=$!
as_daemon() { setpriv --reuid shmalloc --regid shmalloc --init-groups "$@"; }
for _ in $(seq 200); do as_daemon shmallocctl --socket "$sock" ping >/dev/null 2>&1 && break; sleep 0.05; done
as_daemon shmallocctl --socket "$sock" ping

echo "== the demo, built against the installed library, as a member of the group"
cc -o "$work/queue" "$here/examples/queue.c" $(pkg-config --cflags --libs shmalloc)
chmod 755 "$work" "$work/queue"
as_user() { setpriv --reuid "$user" --regid "$user" --init-groups env SHMALLOC_SOCKET="$sock" "$@"; }
as_user "$work/queue" consumer 20000 &
consumer=$!
as_user "$work/queue" producer 20000
wait "$consumer"
echo "== shmalloc-run, its preload module from the package's private directory"
out=$(printf 'b\na\nc\n' | as_user shmalloc-run -- sort | tr '\n' ' ')
[ "$out" = "a b c " ] || { echo "shmalloc-run sort printed: $out"; cat "$work/daemon.log"; exit 1; }
echo "sorted: $out"
as_user shmallocctl --socket "$sock" stats | head -5
echo "packages: ok"
