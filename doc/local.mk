# ---- doc/ and the files a release carries ----
EXTRA_DIST += README.md doc/architecture.md scripts/deps.sh scripts/build.sh scripts/run.sh \
	scripts/test.sh tests/valgrind.supp

# ---- man pages and the systemd unit (installed by make install) ----
dist_man_MANS += doc/shmallocd.8 doc/shmallocctl.1 doc/shmalloc.3
systemdsystemunit_DATA = doc/shmallocd.service
EXTRA_DIST += doc/shmallocd.service.in
CLEANFILES += doc/shmallocd.service
# Substituted at make time, so that `make install prefix=...` is followed.
doc/shmallocd.service: $(top_srcdir)/doc/shmallocd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) doc && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' $(top_srcdir)/doc/shmallocd.service.in > $@

# The trace reader (SHMALLOC_TRACE), installed beside the CLI.
dist_bin_SCRIPTS = scripts/shmalloc-trace
