# ---- client/lib/: libshmalloc ----
# The library's code is a convenience library so that shmallocctl and the
# tests can use its internal (hidden) functions; libshmalloc.so exports only
# the shma_* names of shmalloc.h (-fvisibility=hidden, SHMA_EXPORT).  It uses
# shm/ and proto/, never libuv and never a server header.
include_HEADERS += client/lib/shmalloc.h
include_HEADERS += client/lib/shmalloc.hpp
noinst_LTLIBRARIES += libshmclient.la
libshmclient_la_SOURCES = client/lib/client.h client/lib/api.c client/lib/conn.c \
	client/lib/maps.c client/lib/tcache.c client/lib/pballoc.c \
	client/lib/stats_json.c client/lib/stats_json.h \
	client/lib/debug.c client/lib/debug.h
libshmclient_la_CPPFLAGS = $(AM_CPPFLAGS) $(LIB_CPPFLAGS)
libshmclient_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
libshmclient_la_LIBADD = libshmproto.la libshmcore.la $(PROTOBUF_C_LIBS)

lib_LTLIBRARIES += libshmalloc.la
libshmalloc_la_SOURCES =
libshmalloc_la_LIBADD = libshmclient.la
libshmalloc_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(SHMALLOC_LT_VERSION)
