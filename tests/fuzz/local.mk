# SPDX-License-Identifier: MIT
# ---- tests/fuzz/: libFuzzer targets, built with clang; `make fuzz` ----
# The targets are compiled from the sources directly (not from the libtool
# objects, which gcc built without coverage instrumentation), with ASan and
# UBSan.  `make fuzz` runs each for FUZZ_SECONDS on the seed corpus in the
# tree; new inputs go to tests/fuzz/work/<target> in the build tree, a crash
# to tests/fuzz/crash-* there.  Without clang and libFuzzer it prints
# "SKIP: fuzz: ..." and succeeds: scripts/test.sh counts that line as a skip,
# never as a pass (scripts/deps.sh installs clang and libclang-rt-dev, which
# hold libFuzzer, so a machine it set up runs the targets).
# `make fuzz-corpus` rewrites the seed corpus (gen_corpus.c).
FUZZ_CC = clang
FUZZ_SECONDS = 30
FUZZ_SANITIZE = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
# The session layer is the one list of server/local.mk (the library's), so a
# file added there is fuzzed too; it needs no libuv.
FUZZ_CPPFLAGS = $(AM_CPPFLAGS) $(SERVER_CPPFLAGS) -I$(top_srcdir)/tests/fuzz \
	$(PROTOBUF_C_CFLAGS)
FUZZ_PROTO = $(top_srcdir)/proto/frame.c $(top_srcdir)/proto/wire.c $(top_srcdir)/proto/requests.c \
	$(top_builddir)/proto/shmalloc.pb-c.c
# The libraries' own lists (Makefile.am, server/local.mk, server/heap/local.mk):
# a file added to one is compiled here too.
FUZZ_SHM = $(CORE_SOURCES:%=$(top_srcdir)/%)
FUZZ_SESSION = $(SESSION_SOURCES:%=$(top_srcdir)/%)
FUZZ_HEAP = $(HEAP_SOURCES:%=$(top_srcdir)/%)
FUZZ_SERVER = $(FUZZ_SESSION) $(FUZZ_HEAP)
FUZZ_TARGETS = tests/fuzz/fuzz_frame tests/fuzz/fuzz_dispatch
CLEANFILES += $(FUZZ_TARGETS)
EXTRA_DIST += tests/fuzz/fuzz_frame.c tests/fuzz/fuzz_dispatch.c tests/fuzz/fuzz_daemon.h \
	tests/fuzz/run.sh tests/fuzz/corpus

tests/fuzz/fuzz_frame: $(top_srcdir)/tests/fuzz/fuzz_frame.c $(FUZZ_PROTO) $(PROTO_GEN)
	$(AM_V_CCLD)$(MKDIR_P) tests/fuzz && $(FUZZ_CC) -g -O1 $(FUZZ_SANITIZE) $(FUZZ_CPPFLAGS) \
		-o $@ $(top_srcdir)/tests/fuzz/fuzz_frame.c $(FUZZ_PROTO) \
		$(top_srcdir)/shm/sizeclass.c $(PROTOBUF_C_LIBS)

tests/fuzz/fuzz_dispatch: $(top_srcdir)/tests/fuzz/fuzz_dispatch.c $(FUZZ_PROTO) $(FUZZ_SHM) \
		$(FUZZ_SERVER) $(PROTO_GEN) $(top_srcdir)/server/dispatch.h $(top_srcdir)/server/daemon.h
	$(AM_V_CCLD)$(MKDIR_P) tests/fuzz && $(FUZZ_CC) -g -O1 $(FUZZ_SANITIZE) $(FUZZ_CPPFLAGS) \
		-o $@ $(top_srcdir)/tests/fuzz/fuzz_dispatch.c $(FUZZ_PROTO) $(FUZZ_SHM) \
		$(FUZZ_SERVER) $(PROTOBUF_C_LIBS)

fuzz:
	@if ! printf 'int LLVMFuzzerTestOneInput(const char *d, long n) { return d[0] + n; }\n' | \
		$(FUZZ_CC) $(FUZZ_SANITIZE) -x c -o /dev/null - >/dev/null 2>&1; then \
		echo "SKIP: fuzz: no $(FUZZ_CC) with libFuzzer here" \
			"(scripts/deps.sh installs clang and libclang-rt-dev)"; \
	else \
		$(MAKE) $(AM_MAKEFLAGS) $(FUZZ_TARGETS) && \
		$(SHELL) $(top_srcdir)/tests/fuzz/run.sh $(FUZZ_SECONDS) $(top_srcdir)/tests/fuzz/corpus \
			$(FUZZ_TARGETS); \
	fi

EXTRA_PROGRAMS += tests/fuzz/gen_corpus
tests_fuzz_gen_corpus_SOURCES = tests/fuzz/gen_corpus.c tests/fuzz/fuzz_daemon.h
tests_fuzz_gen_corpus_CPPFLAGS = $(AM_CPPFLAGS) $(SERVER_CPPFLAGS) -I$(top_srcdir)/tests/fuzz
tests_fuzz_gen_corpus_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_fuzz_gen_corpus_LDADD = libshmheap.la libshmproto.la libshmcore.la $(PROTOBUF_C_LIBS)

fuzz-corpus: tests/fuzz/gen_corpus
	rm -rf $(top_srcdir)/tests/fuzz/corpus
	./tests/fuzz/gen_corpus $(top_srcdir)/tests/fuzz/corpus

.PHONY: fuzz fuzz-corpus
