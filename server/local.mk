# ---- server/: shmallocd ----
# The heap (arenas, page heap, spans, large blocks, roots) is a library of its
# own so that unit tests link it without the event loop.
noinst_LTLIBRARIES += libshmheap.la
libshmheap_la_SOURCES = server/heap.h
include server/heap.mk
libshmheap_la_LIBADD = libshmcore.la

sbin_PROGRAMS += shmallocd
shmallocd_SOURCES = server/main.c server/access.c server/access.h server/options.c \
	server/options.h server/log.c server/log.h \
	server/server.c server/server.h server/dispatch.c server/dispatch.h server/daemon.h \
	server/stats.c server/stats.h server/control.c server/inflight.c server/inflight.h
shmallocd_CFLAGS = $(AM_CFLAGS) $(LIBUV_CFLAGS) $(PROTOBUF_C_CFLAGS)
shmallocd_LDADD = libshmheap.la libshmproto.la libshmcore.la $(LIBUV_LIBS) $(PROTOBUF_C_LIBS)
