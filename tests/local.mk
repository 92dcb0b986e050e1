# SPDX-License-Identifier: MIT
# ---- tests/: Check suites, one runner ----
if HAVE_CHECK
check_PROGRAMS += tests/check_shmalloc
TESTS += tests/check_shmalloc
tests_check_shmalloc_SOURCES = tests/check_main.c tests/suites.h tests/instance.c tests/instance.h \
	tests/skip.c tests/skip.h tests/seed.c tests/seed.h \
	tests/e2e/e2e.c tests/e2e/e2e.h tests/e2e/raw.c tests/e2e/users.c tests/e2e/users.h
tests_check_shmalloc_CPPFLAGS = $(AM_CPPFLAGS) $(SERVER_CPPFLAGS) $(LIB_CPPFLAGS) \
	-I$(top_srcdir)/tests -I$(top_srcdir)/tests/unit -I$(top_srcdir)/tests/e2e \
	-DSHMALLOCD_PATH='"$(abs_top_builddir)/shmallocd"' \
	-DSRCDIR='"$(abs_top_srcdir)"' -DUAF_PATH='"$(abs_top_builddir)/tests/uaf"' \
	-DUAF_ASAN_PATH='"$(abs_top_builddir)/tests/uaf_asan"' \
	-DSHMALLOCCTL_PATH='"$(abs_top_builddir)/shmallocctl"' \
	-DLISTWALK_PATH='"$(abs_top_builddir)/tests/listwalk"' \
	-DBADFREE_PATH='"$(abs_top_builddir)/tests/badfree"' \
	-DCXX_CONTAINERS_PATH='"$(abs_top_builddir)/tests/cxx_containers"' \
	-DCXX_HEAPMAP_PATH='"$(abs_top_builddir)/tests/cxx_heapmap"' \
	-DHEAPPROG_PATH='"$(abs_top_builddir)/tests/heapprog"' -DPROBE_PATH='"$(abs_top_builddir)/tests/probe"' -DABS_BUILDDIR='"$(abs_top_builddir)"'
tests_check_shmalloc_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_check_shmalloc_LDADD = libshmclient.la libshmsession.la libshmheap.la libshmproto.la \
	libshmcore.la $(CHECK_LIBS) $(PROTOBUF_C_LIBS)
include tests/suites.mk

# One heap, one address: two exec'd programs share a list by raw pointers.
check_PROGRAMS += tests/listwalk
tests_listwalk_SOURCES = tests/e2e/listwalk.c
tests_listwalk_CPPFLAGS = $(AM_CPPFLAGS) $(LIB_CPPFLAGS)
tests_listwalk_LDADD = libshmclient.la

# One bad free a program, exec'd by the badfree suite (a bad free aborts).
check_PROGRAMS += tests/badfree
tests_badfree_SOURCES = tests/e2e/badfree.c
tests_badfree_CPPFLAGS = $(AM_CPPFLAGS) $(LIB_CPPFLAGS)
tests_badfree_LDADD = libshmclient.la

# Standard containers in the shared heap (shmalloc.hpp), exec'd by the cxx suite.
check_PROGRAMS += tests/cxx_containers
tests_cxx_containers_SOURCES = tests/e2e/cxx_containers.cc
tests_cxx_containers_CPPFLAGS = $(AM_CPPFLAGS) $(LIB_CPPFLAGS)
tests_cxx_containers_LDADD = libshmclient.la
# A std::map in a named heap (shma::heap_allocator), exec'd by the cxx suite.
check_PROGRAMS += tests/cxx_heapmap
tests_cxx_heapmap_SOURCES = tests/e2e/cxx_heapmap.cc
tests_cxx_heapmap_CPPFLAGS = $(AM_CPPFLAGS) $(LIB_CPPFLAGS)
tests_cxx_heapmap_LDADD = libshmclient.la

# One call of the library, its outcome on one line (the errors and setup suites);
# install.sh is the setup suite's make install.
EXTRA_DIST += tests/e2e/install.sh
check_PROGRAMS += tests/probe
tests_probe_SOURCES = tests/e2e/probe.c
tests_probe_CPPFLAGS = $(AM_CPPFLAGS) $(LIB_CPPFLAGS)
tests_probe_LDADD = libshmclient.la

# A deliberate use after free, run under Valgrind and built with ASan by the
# debug suite: the user's own tools must see shared blocks.
check_PROGRAMS += tests/uaf
tests_uaf_SOURCES = tests/e2e/uaf.c
tests_uaf_CPPFLAGS = $(AM_CPPFLAGS) $(LIB_CPPFLAGS)
tests_uaf_LDADD = libshmclient.la
if HAVE_ASAN
check_PROGRAMS += tests/uaf_asan
tests_uaf_asan_SOURCES = tests/e2e/uaf.c
tests_uaf_asan_CPPFLAGS = $(AM_CPPFLAGS) $(LIB_CPPFLAGS)
tests_uaf_asan_CFLAGS = $(AM_CFLAGS) -fsanitize=address -fno-omit-frame-pointer
tests_uaf_asan_LDFLAGS = $(AM_LDFLAGS) -fsanitize=address
tests_uaf_asan_LDADD = libshmclient.la
endif
endif

# Named heaps from exec'd programs (the heaps suite).
if HAVE_CHECK
check_PROGRAMS += tests/heapprog
tests_heapprog_SOURCES = tests/e2e/heapprog.c
tests_heapprog_CPPFLAGS = $(AM_CPPFLAGS) $(LIB_CPPFLAGS)
tests_heapprog_LDADD = libshmclient.la
endif
