# SPDX-License-Identifier: MIT
# ---- `make bench-programs`: real programs under shmalloc-run and its peers ----
# bench/mtalloc is a plain program on the C library's malloc (the
# multi-threaded workloads), run under each allocator like the programs.
EXTRA_PROGRAMS += bench/mtalloc
bench_mtalloc_SOURCES = bench/mtalloc.c
bench_mtalloc_LDADD = -lpthread
EXTRA_DIST += bench/programs.sh
bench-programs: shmalloc-run$(EXEEXT) shmallocd$(EXEEXT) shmallocctl$(EXEEXT) libshmalloc-preload.la \
		bench/mtalloc$(EXEEXT)
	$(AM_V_at)$(SHELL) $(srcdir)/bench/programs.sh $(abs_top_builddir)
.PHONY: bench-programs
