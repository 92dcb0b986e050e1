# ---- server/: shmallocd ----
# Options and logging, the session layer (dispatch, control blocks, stats,
# access) and the libuv loop (server.c, main.c).  It uses the heap library,
# shm/ and proto/.
sbin_PROGRAMS += shmallocd
shmallocd_SOURCES = server/main.c server/access.c server/access.h server/perimeter.c \
	server/perimeter.h server/quota.c server/quota.h server/options.c \
	server/options.h server/log.c server/log.h \
	server/server.c server/server.h server/dispatch.c server/dispatch.h server/daemon.h \
	server/stats.c server/stats.h server/control.c server/inflight.c server/inflight.h
shmallocd_CPPFLAGS = $(AM_CPPFLAGS) $(SERVER_CPPFLAGS)
shmallocd_CFLAGS = $(AM_CFLAGS) $(LIBUV_CFLAGS) $(PROTOBUF_C_CFLAGS)
shmallocd_LDADD = libshmheap.la libshmproto.la libshmcore.la $(LIBUV_LIBS) $(PROTOBUF_C_LIBS)
