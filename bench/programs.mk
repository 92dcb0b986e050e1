# ---- `make bench-programs`: real programs under shmalloc-run and its peers ----
EXTRA_DIST += bench/programs.sh
bench-programs: shmalloc-run$(EXEEXT) shmallocd$(EXEEXT) shmallocctl$(EXEEXT) libshmalloc-preload.la
	$(AM_V_at)$(SHELL) $(srcdir)/bench/programs.sh $(abs_top_builddir)
.PHONY: bench-programs
