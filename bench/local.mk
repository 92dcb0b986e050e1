# SPDX-License-Identifier: MIT
# ---- bench/: `make bench` measures shmalloc beside its peers ----
# One driver per allocator, all built from the same harness and workloads
# (bench/bench.h says how they fit).  They are EXTRA_PROGRAMS: neither
# `make all` nor `make check` builds them; `make bench` does, then runs
# bench/run-bench.sh, which prints the table and writes bench/results/.
# The shmalloc driver is built apart and may fail to build or run without
# stopping the peers' run: the script then reports it unavailable.
EXTRA_PROGRAMS = bench/bench_glibc bench/bench_jemalloc bench/bench_mimalloc \
	bench/bench_tcmalloc bench/bench_boost bench/bench_shmalloc
CLEANFILES += $(EXTRA_PROGRAMS)
EXTRA_DIST += bench/heaps.sh bench/run-bench.sh bench/plot.gp bench/footprint.sh bench/daemon-cpu.sh

BENCH_COMMON = bench/main.c bench/bench.h bench/tests.c bench/tests.h \
	bench/workers.c bench/workers.h bench/ring.h bench/sizes.h

bench_bench_glibc_SOURCES = $(BENCH_COMMON) bench/be_process.c
bench_bench_glibc_CPPFLAGS = $(AM_CPPFLAGS) -DBE_GLIBC

bench_bench_jemalloc_SOURCES = $(BENCH_COMMON) bench/be_process.c
bench_bench_jemalloc_CPPFLAGS = $(AM_CPPFLAGS) -DBE_JEMALLOC
bench_bench_jemalloc_LDADD = -ljemalloc

bench_bench_mimalloc_SOURCES = $(BENCH_COMMON) bench/be_process.c
bench_bench_mimalloc_CPPFLAGS = $(AM_CPPFLAGS) -DBE_MIMALLOC
bench_bench_mimalloc_LDADD = -lmimalloc

bench_bench_tcmalloc_SOURCES = $(BENCH_COMMON) bench/be_process.c
bench_bench_tcmalloc_CPPFLAGS = $(AM_CPPFLAGS) -DBE_TCMALLOC
bench_bench_tcmalloc_LDADD = -ltcmalloc_minimal

# The C-only warnings of WARN_CFLAGS would only make g++ complain.
bench_bench_boost_SOURCES = $(BENCH_COMMON) bench/be_boost.cc
bench_bench_boost_CXXFLAGS = $(SAN_CFLAGS) -Wall -Wextra -Wshadow -Wpointer-arith \
	$(BENCH_CXX_WERROR)
BENCH_CXX_WERROR = `case ' $(WARN_CFLAGS) ' in *' -Werror '*) echo -Werror;; esac`

bench_bench_shmalloc_SOURCES = $(BENCH_COMMON) bench/be_shmalloc.c
bench_bench_shmalloc_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/client/lib
bench_bench_shmalloc_LDADD = libshmalloc.la

BENCH_DRIVERS = glibc
BENCH_SKIPPED =
if HAVE_JEMALLOC
BENCH_DRIVERS += jemalloc
else
BENCH_SKIPPED += jemalloc
endif
if HAVE_MIMALLOC
BENCH_DRIVERS += mimalloc
else
BENCH_SKIPPED += mimalloc
endif
if HAVE_TCMALLOC
BENCH_DRIVERS += tcmalloc
else
BENCH_SKIPPED += tcmalloc
endif
if HAVE_BOOST
BENCH_DRIVERS += boost
else
BENCH_SKIPPED += boost
endif

BENCH_RESULTS = bench/results

# The peers must build; shmalloc's driver and daemon are tried, and a failure
# is left in $(BENCH_RESULTS)/shmalloc-build.log for the script to report.
bench:
	@$(MKDIR_P) $(BENCH_RESULTS)
	$(AM_V_at)$(MAKE) $(AM_MAKEFLAGS) \
		`for d in $(BENCH_DRIVERS); do echo bench/bench_$$d$(EXEEXT); done`
	$(AM_V_at)rm -f $(BENCH_RESULTS)/shmalloc-build.failed; \
	$(MAKE) $(AM_MAKEFLAGS) shmallocd$(EXEEXT) bench/bench_shmalloc$(EXEEXT) \
		>$(BENCH_RESULTS)/shmalloc-build.log 2>&1 || \
		touch $(BENCH_RESULTS)/shmalloc-build.failed
	$(AM_V_at)BENCH_DRIVERS="$(BENCH_DRIVERS)" BENCH_SKIPPED="$(BENCH_SKIPPED)" \
		$(SHELL) $(srcdir)/bench/run-bench.sh $(BENCH_RESULTS)
	$(AM_V_at)$(MAKE) $(AM_MAKEFLAGS) bench/heapbench$(EXEEXT) >/dev/null 2>&1 && \
		$(SHELL) $(srcdir)/bench/heaps.sh $(BENCH_RESULTS)

bench-plot:
	@test -f $(BENCH_RESULTS)/latest.tsv || $(MAKE) $(AM_MAKEFLAGS) bench
	$(AM_V_GEN)gnuplot -e "datafile='$(BENCH_RESULTS)/latest.tsv'" \
		-e "outfile='$(BENCH_RESULTS)/bench.png'" $(srcdir)/bench/plot.gp
	@echo "wrote $(BENCH_RESULTS)/bench.png"

# Results are kept by `make clean` (they are what a run is for).
clean-bench:
	-rm -rf $(BENCH_RESULTS)

.PHONY: bench bench-plot clean-bench bench-footprint

# bench/footprint: the accounting of (e)'s footprint, byte by byte, against a
# running shmallocd ($SHMALLOC_SOCKET).  Built by `make bench-footprint`.
EXTRA_PROGRAMS += bench/footprint
bench_footprint_SOURCES = bench/footprint.c
bench_footprint_CPPFLAGS = $(AM_CPPFLAGS) $(LIB_CPPFLAGS)
bench_footprint_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
bench_footprint_LDADD = libshmclient.la

bench-footprint: bench/footprint$(EXEEXT) shmallocd$(EXEEXT)
	$(AM_V_at)$(SHELL) $(srcdir)/bench/footprint.sh

# Named heaps beside the default heap, and a destroy (bench/heaps.sh).
EXTRA_PROGRAMS += bench/heapbench
bench_heapbench_SOURCES = bench/heapbench.c
bench_heapbench_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/client/lib
bench_heapbench_LDADD = libshmalloc.la
