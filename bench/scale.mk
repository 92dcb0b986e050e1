# SPDX-License-Identifier: MIT
# ---- `make bench-scale`: many processes at once on one daemon (issue 22 item 5) ----
# bench/scale is a plain program on the C library's malloc, run under each
# allocator and under shmalloc-run; bench/scale_shmalloc is the same workload
# as a library client (shma_malloc).  bench/scale.sh runs them and prints the
# table (SCALE_N, SCALE_OPS, SCALE_RUNS scale it down).
EXTRA_PROGRAMS += bench/scale bench/scale_shmalloc
bench_scale_SOURCES = bench/scale.c bench/sizes.h
bench_scale_shmalloc_SOURCES = bench/scale.c bench/sizes.h
bench_scale_shmalloc_CPPFLAGS = $(AM_CPPFLAGS) -DSCALE_SHMALLOC -I$(top_srcdir)/client/lib
bench_scale_shmalloc_LDADD = libshmalloc.la
EXTRA_DIST += bench/scale.sh bench/peers.sh
bench-scale: shmalloc-run$(EXEEXT) shmallocd$(EXEEXT) shmallocctl$(EXEEXT) libshmalloc-preload.la \
		bench/scale$(EXEEXT) bench/scale_shmalloc$(EXEEXT)
	$(AM_V_at)$(SHELL) $(srcdir)/bench/scale.sh $(abs_top_builddir)
.PHONY: bench-scale
