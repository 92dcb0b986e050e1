# SPDX-License-Identifier: MIT
# ---- client/lib/preload.c: libshmalloc-preload.so (shmalloc-run(1)) ----
# A module put in unmodified programs with LD_PRELOAD: the library's insides
# (libshmclient.la) and the malloc family on top, exporting only that family
# (preload.sym).  Installed in $(pkglibdir) ($(libdir)/shmalloc), where
# shmalloc-run looks for it: a module, not a library to link against.
pkglib_LTLIBRARIES += libshmalloc-preload.la
libshmalloc_preload_la_SOURCES = client/lib/preload.c client/lib/preload_fork.c \
	client/lib/preload.h client/lib/fast.h
libshmalloc_preload_la_CPPFLAGS = $(AM_CPPFLAGS) $(LIB_CPPFLAGS)
libshmalloc_preload_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
libshmalloc_preload_la_LIBADD = libshmclient.la -ldl
libshmalloc_preload_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-Wl,--version-script=$(top_srcdir)/client/lib/preload.sym
EXTRA_libshmalloc_preload_la_DEPENDENCIES = client/lib/preload.sym
EXTRA_DIST += client/lib/preload.sym
