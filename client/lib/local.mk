# SPDX-License-Identifier: MIT
# ---- client/lib/: libshmalloc ----
# The library's code is a convenience library so that shmallocctl and the
# tests can use its internal (hidden) functions; libshmalloc.so exports only
# the shma_* names of shmalloc.h (-fvisibility=hidden, SHMA_EXPORT, and the
# version script libshmalloc.map).  It uses
# shm/ and proto/, never libuv and never a server header.
include_HEADERS += client/lib/shmalloc.h
include_HEADERS += client/lib/shmalloc.hpp
noinst_LTLIBRARIES += libshmclient.la
libshmclient_la_SOURCES = client/lib/client.h client/lib/api.c client/lib/call.h client/lib/call.c \
	client/lib/conn.h client/lib/transport.c client/lib/handshake.c client/lib/control.c \
	client/lib/peer.c client/lib/maps.c client/lib/tcache.c client/lib/tslots.c client/lib/tslots.h client/lib/xfer.c client/lib/xfer.h \
	client/lib/largecache.c client/lib/pballoc.c client/lib/heap.c client/lib/heapfast.h \
	client/lib/call_heap.c client/lib/prim.c client/lib/stats_json.c client/lib/call_stats.c \
	client/lib/debug.c client/lib/debug.h client/lib/freecheck.c client/lib/freecheck.h \
	client/lib/connerr.c client/lib/connerr.h client/lib/lookupwait.c \
	client/lib/sideconn.c client/lib/backing.c client/lib/distrust.c client/lib/distrust.h
libshmclient_la_CPPFLAGS = $(AM_CPPFLAGS) $(LIB_CPPFLAGS)
libshmclient_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
libshmclient_la_LIBADD = libshmproto.la libshmcore.la $(PROTOBUF_C_LIBS)

lib_LTLIBRARIES += libshmalloc.la
libshmalloc_la_SOURCES =
libshmalloc_la_LIBADD = libshmclient.la
libshmalloc_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(SHMALLOC_LT_VERSION)
# Exports fixed by a version script too, where the linker takes one
# (configure probes it): shma_* global, everything else local.
if HAVE_LD_VERSION_SCRIPT
libshmalloc_la_LDFLAGS += -Wl,--version-script=$(top_srcdir)/client/lib/libshmalloc.map
endif
libshmalloc_la_DEPENDENCIES = libshmclient.la $(top_srcdir)/client/lib/libshmalloc.map
EXTRA_DIST += client/lib/libshmalloc.map
