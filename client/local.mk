# ---- client/: libshmalloc and shmallocctl ----
# The library's code is a convenience library so that shmallocctl and the
# tests can use its internal (hidden) functions; libshmalloc.so exports only
# the shma_* names of shmalloc.h (-fvisibility=hidden, SHMA_EXPORT).
include_HEADERS += client/shmalloc.h
noinst_LTLIBRARIES += libshmclient.la
libshmclient_la_SOURCES = client/client.h client/api.c client/conn.c client/maps.c \
	client/tcache.c client/pballoc.c client/stats_json.c client/stats_json.h \
	client/debug.c client/debug.h
libshmclient_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
libshmclient_la_LIBADD = libshmproto.la libshmcore.la $(PROTOBUF_C_LIBS)

lib_LTLIBRARIES += libshmalloc.la
libshmalloc_la_SOURCES =
libshmalloc_la_LIBADD = libshmclient.la
libshmalloc_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(SHMALLOC_LT_VERSION)

bin_PROGRAMS += shmallocctl
shmallocctl_SOURCES = client/shmallocctl.c client/ctl.h client/ctl_table.c client/ctl_prom.c
shmallocctl_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
shmallocctl_LDADD = libshmclient.la
