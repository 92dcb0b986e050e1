#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make bench-programs`: wall time of real programs under shmalloc-run beside
# the same programs with glibc's malloc and with jemalloc, mimalloc and
# tcmalloc preloaded (the Debian libraries), as a table of seconds (best of
# RUNS) and the ratio to the best peer.  A program or allocator that is not
# installed is left out, and said so.  Beside the Debian programs, redis-server
# under redis-benchmark (both under the allocator), and bench/mtalloc's
# multi-threaded workloads (random sizes in many threads; producers freeing
# nothing, consumers freeing all; a thread pool's tasks).  Debian's
# redis-server links jemalloc: its "glibc" column is that jemalloc.
# Usage: bench/programs.sh BUILDDIR [RUNS]   (BUILDDIR holds shmalloc-run,
# shmallocd, .libs/libshmalloc-preload.so and bench/mtalloc)
# BENCH_PROGRAMS="bash git" runs only those rows; BENCH_PRELOAD=FILE times
# another build of libshmalloc-preload.so; BENCH_BASE=BUILDDIR adds a column
# "base", another build's shmalloc-run, preload library and daemon (its own),
# in the same run (before and after a change); BENCH_STAT=median reports the
# median of RUNS instead of the best.  glibc-simple and glibc-thread are
# bench/mtalloc's simple and thread workloads, the shapes of glibc's
# bench-malloc-simple and bench-malloc-thread (the field's benchmark suite).
set -uo pipefail
build=$(cd "${1:?usage: programs.sh BUILDDIR [RUNS]}" && pwd)
runs=${2:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/shmalloc-bench-programs.XXXXXX")
daemon_pid=
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -n "${base_pid:-}" ] && kill "$base_pid" 2>/dev/null && wait "$base_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# ---- the allocators ----
libdir=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
declare -A preload=([jemalloc]=$libdir/libjemalloc.so.2 [mimalloc]=$libdir/libmimalloc.so.2
                    [tcmalloc]=$libdir/libtcmalloc_minimal.so.4)
allocs=(glibc)
for a in jemalloc mimalloc tcmalloc; do
  if [ -f "${preload[$a]}" ]; then allocs+=("$a"); else echo "skipped $a: no ${preload[$a]}" >&2; fi
done
allocs+=(shmalloc)
base=${BENCH_BASE:+$(cd "$BENCH_BASE" && pwd)}
[ -n "$base" ] && allocs+=(base)

export SHMALLOC_PRELOAD=${BENCH_PRELOAD:-$build/.libs/libshmalloc-preload.so}
sock=$work/shmallocd.sock
"$build/shmallocd" --socket "$sock" --cleanup --log-level warn 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
base_pid=
if [ -n "$base" ]; then
  "$base/shmallocd" --socket "$work/base.sock" --cleanup --log-level warn 2>"$work/base.log" &
  base_pid=$!
  for _ in $(seq 100); do [ -S "$work/base.sock" ] && break; sleep 0.05; done
fi

# ---- the workloads, each a command run in $work/w ----
mkdir -p "$work/w" && cd "$work/w" || exit 1
python3 -c "
import random; r = random.Random(7)
with open('lines.txt', 'w') as f:
    for i in range(1000000): f.write('%08x %s\n' % (r.getrandbits(32), 'x' * r.randrange(40)))
"
cat > t.sql <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000)
INSERT INTO t SELECT x, 'name' || (x * 7919 % 100003), x * 0.5 FROM c;
COMMIT;
CREATE INDEX ti ON t(name);
SELECT count(*) FROM t a JOIN t b ON a.name = b.name WHERE a.id < 50000;
SELECT substr(name, 1, 6), count(*) FROM t GROUP BY 1 ORDER BY 2 DESC LIMIT 3;
SQL
cat > t.sh <<'SH'
for i in $(seq 1 200); do x=$(echo "$i" | tr 0-9 a-j); y=$( (echo "$x"; echo "$i") | sort | head -1 ); a[$i]=$x$y; done
declare -A h; for k in $(seq 1 5000); do h[k$k]=$((k * k)); done; echo "${#a[@]} ${#h[@]}"
SH
for i in 1 2 3 4 5 6; do
  printf '#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\nint f%d(int x) { char b[64]; snprintf(b, sizeof b, "%%d", x); return (int)strlen(b) + %d; }\n' $i $i > f$i.c
done
printf 'int f1(int);int f2(int);int f3(int);int f4(int);int f5(int);int f6(int);\nint main(void){return f1(1)+f2(2)+f3(3)+f4(4)+f5(5)+f6(6) == 0;}\n' > main.c
cat > git.sh <<'SH'
set -e; rm -rf repo; mkdir repo; cd repo
g() { git -c user.name=b -c user.email=b@example.org -c init.defaultBranch=main "$@"; }
g init -q .; for i in $(seq 400); do seq $i > f$i.txt; done
g add .; g commit -qm one; for i in $(seq 1 2 400); do echo x >> f$i.txt; done
g commit -qam two; g log --oneline >/dev/null; g fsck 2>/dev/null; g gc -q
SH

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > redis.sh <<SH
redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no >/dev/null & p=\$!
for i in \$(seq 500); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.01; done
redis-benchmark -p $port -q -n 200000 -P 16 -r 100000 -d 64 -t set,get,incr,lpush,lpop,sadd,hset,zadd
redis-cli -p $port shutdown nosave; wait \$p
SH
mt=$build/bench/mtalloc

names=(${BENCH_PROGRAMS:-python3 sqlite3 sort bash gcc git redis mt-random mt-prodcons mt-pool
        glibc-simple glibc-thread})
declare -A cmd=(
  [python3]="python3 -c 'd = {i: str(i) * 3 for i in range(1000000)}; l = sorted(str(x) for x in range(1000000)); print(len(d), len(l))'"
  [sqlite3]="sqlite3 :memory: < t.sql"
  [sort]="sort -S 256M lines.txt"
  [bash]="bash t.sh"
  [gcc]="gcc -O2 -o prog f1.c f2.c f3.c f4.c f5.c f6.c main.c"
  [git]="bash git.sh"
  [redis]="bash redis.sh"
  [mt-random]="$mt random 4 10000000"
  [mt-prodcons]="$mt prodcons 2 1000000"
  [mt-pool]="$mt pool 4 40000"
  [glibc-simple]="$mt simple 1 2000"
  [glibc-thread]="$mt thread 2 40000000"
)
declare -A need=([python3]=python3 [sqlite3]=sqlite3 [sort]=sort [bash]=bash [gcc]=gcc [git]=git
                 [redis]=redis-benchmark [mt-random]=$mt [mt-prodcons]=$mt [mt-pool]=$mt
                 [glibc-simple]=$mt [glibc-thread]=$mt)

# Best (or median) wall time of $runs runs of "$2" with allocator $1, in s.
time_it() {
  local best= t0 t1 s all=
  for _ in $(seq "$runs"); do
    t0=$(date +%s.%N)
    case $1 in
      glibc) bash -c "$2" >/dev/null 2>>"$work/errors" ;;
      shmalloc) "$build/shmalloc-run" --socket "$sock" bash -c "$2" >/dev/null 2>>"$work/errors" ;;
      base) SHMALLOC_PRELOAD=$base/.libs/libshmalloc-preload.so \
              "$base/shmalloc-run" --socket "$work/base.sock" bash -c "$2" >/dev/null 2>>"$work/errors" ;;
      *) LD_PRELOAD=${preload[$1]} bash -c "$2" >/dev/null 2>>"$work/errors" ;;
    esac
    s=$?
    t1=$(date +%s.%N)
    [ $s -eq 0 ] || { echo "FAILED"; return; }
    best=$(echo "$t0 $t1 ${best:-inf}" | awk '{d = $2 - $1; if ($3 == "inf" || d < $3) print d; else print $3}')
    all="$all $(echo "$t0 $t1" | awk '{print $2 - $1}')"
  done
  if [ "${BENCH_STAT:-best}" = median ]; then
    echo $all | tr ' ' '\n' | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
  else
    echo "$best"
  fi
}

printf '%-11s' program; for a in "${allocs[@]}"; do printf ' %14s' "$a"; done; echo
for n in "${names[@]}"; do
  command -v "${need[$n]}" >/dev/null || { echo "skipped $n: no ${need[$n]}" >&2; continue; }
  [ -n "${cmd[$n]:-}" ] || { echo "skipped $n: no such program" >&2; continue; }
  declare -A t=()
  for a in "${allocs[@]}"; do t[$a]=$(time_it "$a" "${cmd[$n]}"); done
  best=
  for a in "${allocs[@]}"; do
    [ "$a" = shmalloc ] || [ "$a" = base ] && continue
    [ "${t[$a]}" = FAILED ] && continue
    best=$(echo "${t[$a]} ${best:-inf}" | awk '{if ($2 == "inf" || $1 < $2) print $1; else print $2}')
  done
  printf '%-11s' "$n"
  for a in "${allocs[@]}"; do
    if [ "${t[$a]}" = FAILED ]; then printf ' %14s' FAILED
    else printf ' %6.2fs %5.2fx' "${t[$a]}" "$(echo "${t[$a]} $best" | awk '{print $1 / $2}')"; fi
  done
  echo
  unset t
done
if [ -s "$work/errors" ]; then echo "stderr of the runs:" >&2; sort "$work/errors" | uniq -c | head -20 >&2; fi
echo "(${BENCH_STAT:-best} of $runs runs; ratio to the fastest of glibc and the preloaded peers; daemon in use after: $("$build/shmallocctl" --socket "$sock" stats 2>/dev/null | sed -n 's/.*in use \([0-9.]* [KMG]*i*B\).*/\1/p'))"
