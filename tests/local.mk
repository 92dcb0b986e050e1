# ---- tests/: Check suites, one runner ----
if HAVE_CHECK
check_PROGRAMS += tests/check_shmalloc
TESTS += tests/check_shmalloc
tests_check_shmalloc_SOURCES = tests/check_main.c tests/suites.h
tests_check_shmalloc_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_check_shmalloc_LDADD = libshmheap.la libshmproto.la libshmcore.la $(CHECK_LIBS) $(PROTOBUF_C_LIBS)
include tests/suites.mk
endif
