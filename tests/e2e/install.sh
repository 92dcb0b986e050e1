#!/bin/sh
# SPDX-License-Identifier: MIT
# The documented install, done twice from a built tree and used as a user
# would: `make install DESTDIR=D` (a package's staging) and `make install
# prefix=P` (a prefix other than configure's, given only at install time).
# Each time the installed shmalloc-run must run a program with the installed
# preload library (not configure's $(libdir)), the unit must start the
# installed daemon, shmalloc.pc must name the installed library, and a
# program built as the README says (pkg-config) must run against the
# installed daemon.
# Usage: install.sh BUILDDIR SRCDIR; exit 0, 1 on a failure, 77 to skip.
set -u
build=$1
src=$2
fail() { echo "install.sh: $*" >&2; exit 1; }
command -v make >/dev/null 2>&1 || { echo "install.sh: no make" >&2; exit 77; }
command -v pkg-config >/dev/null 2>&1 || { echo "install.sh: no pkg-config" >&2; exit 77; }
work=$(mktemp -d /tmp/shma-install-XXXXXX) || exit 1
daemon=
cleanup() {
	[ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# configure's directories, as the Makefile has them expanded.
dirs=$(make -s -C "$build" --no-print-directory -f Makefile -f - print-dirs <<'MK'
print-dirs:
	@echo "$(prefix) $(bindir) $(sbindir) $(libdir) $(systemdsystemunitdir)"
MK
) || fail "cannot read the build's directories"
set -- $dirs
conf_prefix=$1 conf_bindir=$2 conf_sbindir=$3 conf_libdir=$4 conf_unitdir=$5
rel() { echo "${1#"$conf_prefix"}"; } # a configured directory below the prefix

# A program as the README's first example builds it.
cat > "$work/prog.c" <<'C'
#include <shmalloc.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
	char *msg = shma_malloc(64);
	if (msg == NULL) {
		perror("shma_malloc");
		return 1;
	}
	strcpy(msg, "installed");
	puts(msg);
	shma_free(msg);
	return 0;
}
C

# check ROOT PREFIX: what `make install` put under ROOT (the DESTDIR, or
# empty), configured (or overridden) for PREFIX.
check() {
	root=$1 pfx=$2
	bin=$root$pfx$(rel "$conf_bindir") sbin=$root$pfx$(rel "$conf_sbindir")
	lib=$root$pfx$(rel "$conf_libdir") unitdir=$root$pfx$(rel "$conf_unitdir")
	[ -x "$bin/shmalloc-run" ] || fail "no $bin/shmalloc-run"
	# The preload module is in a directory of its own, $(pkglibdir).
	[ -f "$lib/shmalloc/libshmalloc-preload.so" ] || fail "no $lib/shmalloc/libshmalloc-preload.so"
	out=$(env -u SHMALLOC_PRELOAD -u SHMALLOC_DAEMON -u LD_PRELOAD \
		SHMALLOC_SOCKET= TMPDIR="$work" "$bin/shmalloc-run" -- sh -c 'echo "$LD_PRELOAD"' 2>"$work/run.err")
	rc=$?
	[ $rc -eq 0 ] || fail "$bin/shmalloc-run exited $rc: $(cat "$work/run.err")"
	case $out in
	"$bin/../"*shmalloc/libshmalloc-preload.so|"$lib/shmalloc/libshmalloc-preload.so") ;;
	*) fail "shmalloc-run under $root$pfx preloaded '$out'" ;;
	esac
	grep -q "^ExecStart=$pfx$(rel "$conf_sbindir")/shmallocd " "$unitdir/shmallocd.service" ||
		fail "the unit under $root$pfx says $(grep ExecStart "$unitdir/shmallocd.service")"
	grep -q "^libdir=$pfx$(rel "$conf_libdir")\$" "$lib/pkgconfig/shmalloc.pc" ||
		fail "shmalloc.pc under $root$pfx says $(grep libdir= "$lib/pkgconfig/shmalloc.pc")"
}

make -s -C "$build" install DESTDIR="$work/dest" >"$work/install.log" 2>&1 ||
	fail "make install DESTDIR failed: $(tail -5 "$work/install.log")"
check "$work/dest" "$conf_prefix"

make -s -C "$build" install prefix="$work/pfx" >"$work/install.log" 2>&1 ||
	fail "make install prefix= failed: $(tail -5 "$work/install.log")"
check "" "$work/pfx"

# The README's way to build a program against an install in a prefix.
lib=$work/pfx$(rel "$conf_libdir")
flags=$(PKG_CONFIG_PATH="$lib/pkgconfig" pkg-config --cflags --libs shmalloc) ||
	fail "pkg-config does not find shmalloc in $lib/pkgconfig"
cc "$work/prog.c" $flags -o "$work/prog" 2>"$work/cc.err" || fail "cc: $(cat "$work/cc.err")"
mkdir -m 0700 "$work/run"
"$work/pfx$(rel "$conf_sbindir")/shmallocd" --socket "$work/run/s.sock" --cleanup \
	--name "inst$$" --log-level warn 2>"$work/daemon.log" &
daemon=$!
bin=$work/pfx$(rel "$conf_bindir")
i=0
until "$bin/shmallocctl" --socket "$work/run/s.sock" ping >/dev/null 2>&1; do
	kill -0 "$daemon" 2>/dev/null || fail "the installed shmallocd exited: $(cat "$work/daemon.log")"
	[ $i -lt 500 ] || fail "the installed shmallocd did not answer within 5 s"
	sleep 0.01
	i=$((i + 1))
done
out=$(SHMALLOC_SOCKET="$work/run/s.sock" LD_LIBRARY_PATH="$lib" "$work/prog" 2>&1) ||
	fail "the program built with pkg-config failed: $out"
[ "$out" = installed ] || fail "the program said '$out'"
exit 0
