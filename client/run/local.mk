# SPDX-License-Identifier: MIT
# ---- client/run/: shmalloc-run, unmodified programs in the shared heap ----
# It finds the preload library and the daemon where `make install` puts them
# (beside itself first, so another prefix or a DESTDIR works: installed.c);
# $SHMALLOC_PRELOAD and $SHMALLOC_DAEMON override both (the tests use the
# build tree's).  It uses shm/ (the default socket's path) and the library
# (trust.c: a daemon is used once the library connected to it).
bin_PROGRAMS += shmalloc-run
shmalloc_run_SOURCES = client/run/shmalloc-run.c client/run/installed.c client/run/installed.h \
	client/run/trust.c client/run/trust.h
shmalloc_run_CPPFLAGS = $(AM_CPPFLAGS) $(LIB_CPPFLAGS) \
	-DPRELOAD_PATH='"$(pkglibdir)/libshmalloc-preload.so"' \
	-DSHMALLOCD_PATH='"$(sbindir)/shmallocd"' -DBINDIR='"$(bindir)"'
shmalloc_run_LDADD = libshmclient.la libshmcore.la
