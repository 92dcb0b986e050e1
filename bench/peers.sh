# SPDX-License-Identifier: MIT
# Sourced by the bench scripts that run programs under each allocator: the
# Debian peers' libraries for LD_PRELOAD, by name (bench/programs.sh holds the
# same table; it can source this one).
peer_libdir=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
declare -A preload=([jemalloc]=$peer_libdir/libjemalloc.so.2 [mimalloc]=$peer_libdir/libmimalloc.so.2
                    [tcmalloc]=$peer_libdir/libtcmalloc_minimal.so.4)
