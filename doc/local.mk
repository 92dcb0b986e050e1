# SPDX-License-Identifier: MIT
# ---- doc/ and the files a release carries ----
EXTRA_DIST += README.md doc/architecture.md doc/bench.png scripts/deps.sh scripts/build.sh scripts/run.sh \
	scripts/test.sh tests/valgrind.supp

# ---- man pages and the systemd unit (installed by make install) ----
dist_man_MANS += doc/shmallocd.8 doc/shmallocctl.1 doc/shmalloc.3 doc/shmalloc-run.1 \
	doc/shmalloc-trace.1
dist_man_MANS += doc/shmalloc.hpp.3
systemdsystemunit_DATA = doc/shmallocd.service
EXTRA_DIST += doc/shmallocd.service.in
CLEANFILES += doc/shmallocd.service
# The unit names $(sbindir) and shmalloc.pc $(libdir) and $(includedir):
# both are written each time make runs (FORCE), with the directories of that
# make, so that `make install prefix=DIR` after a plain `make` installs
# files that name DIR, not configure's prefix.  DESTDIR is never in them:
# it is where a package is staged, not where it runs.
doc/shmallocd.service: $(top_srcdir)/doc/shmallocd.service.in FORCE
	$(AM_V_GEN)$(MKDIR_P) doc && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' $(top_srcdir)/doc/shmallocd.service.in > $@

# The trace reader (SHMALLOC_TRACE), installed beside the CLI.
dist_bin_SCRIPTS = scripts/shmalloc-trace

# One page per function of shmalloc(3), each a link to it, so `man shma_malloc` works.
dist_man_MANS +=doc/shma_connect.3 \
	doc/shma_disconnect.3 \
	doc/shma_malloc.3 \
	doc/shma_calloc.3 \
	doc/shma_realloc.3 \
	doc/shma_aligned_alloc.3 \
	doc/shma_free.3 \
	doc/shma_usable_size.3 \
	doc/shma_ref.3 \
	doc/shma_ptr.3 \
	doc/shma_same_address.3 \
	doc/shma_publish.3 \
	doc/shma_lookup.3 \
	doc/shma_lookup_wait.3 \
	doc/shma_unpublish.3 \
	doc/shma_stats_json.3 \
	doc/shma_strerror.3

# Named heaps: one page, and a link to it per function.
dist_man_MANS += doc/shma_heap_create.3 \
	doc/shma_heap_open.3 \
	doc/shma_heap_close.3 \
	doc/shma_heap_destroy.3 \
	doc/shma_heap_malloc.3 \
	doc/shma_heap_calloc.3 \
	doc/shma_heap_realloc.3 \
	doc/shma_heap_aligned_alloc.3 \
	doc/shma_heap_of.3 \
	doc/shma_heap_in_use.3 \
	doc/shma_heap_id.3 \
	doc/shma_heap_from_id.3
