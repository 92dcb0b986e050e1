# ---- tests/: Check suites, one runner ----
if HAVE_CHECK
check_PROGRAMS += tests/check_shmalloc
TESTS += tests/check_shmalloc
tests_check_shmalloc_SOURCES = tests/check_main.c tests/suites.h tests/e2e.c tests/e2e.h
tests_check_shmalloc_CPPFLAGS = $(AM_CPPFLAGS) -DSHMALLOCD_PATH='"$(abs_top_builddir)/shmallocd"' \
	-DSHMALLOCCTL_PATH='"$(abs_top_builddir)/shmallocctl"'
tests_check_shmalloc_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_check_shmalloc_LDADD = libshmclient.la libshmheap.la libshmproto.la libshmcore.la \
	$(CHECK_LIBS) $(PROTOBUF_C_LIBS)
include tests/suites.mk
endif
