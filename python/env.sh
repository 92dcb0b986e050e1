# SPDX-License-Identifier: MIT
# Sourced by scripts/test-python.sh and bench/python/run.sh, from the top of
# the tree, after scripts/build.sh: installs the built library into a
# temporary DESTDIR and pip-installs python/ against it into a venv of
# Debian's /usr/bin/python3 (--system-site-packages: NumPy and pytest are
# Debian's).  Sets tmp (removed on exit), py (the venv's python) and
# exports SHMALLOCD (the daemon installed there).
tmp=$(mktemp -d /tmp/shmalloc-py.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

make -C build -j2 install DESTDIR="$tmp/root" >"$tmp/install.log" 2>&1 ||
  { tail -30 "$tmp/install.log"; exit 1; }
prefix=$(sed -n 's/^prefix=//p' build/shmalloc.pc)
export PKG_CONFIG_PATH="$tmp/root$prefix/lib/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
export SHMALLOCD="$tmp/root$prefix/sbin/shmallocd"

/usr/bin/python3 -m venv --system-site-packages "$tmp/venv"
py="$tmp/venv/bin/python"
# From a copy: pip builds in the tree it is given.  --no-index: everything
# it needs is installed already (Debian's setuptools and wheel).
mkdir "$tmp/src"
cp -r python/setup.py python/shmalloc python/src "$tmp/src/"
"$tmp/venv/bin/pip" install -v --no-index "$tmp/src" >"$tmp/pip.log" 2>&1 ||
  { cat "$tmp/pip.log"; exit 1; }
grep -o 'shmalloc: shma_lookup_wait.*' "$tmp/pip.log" | head -1 || true
