# SPDX-License-Identifier: MIT
# ---- server/: shmallocd ----
# Two layers.  The session layer (options, logging, access, sessions, the
# dispatcher, control blocks, refills in flight, stats) decides everything a
# peer can make the daemon do and holds no libuv type: it is a library,
# libshmsession.la, that the daemon, the dispatch unit suite and the fuzz
# target (tests/fuzz/local.mk, from SESSION_SOURCES) all use.  The loop
# (server.c: the libuv loop, listening socket, signals and timers; conn.c:
# connections; main.c) is the only part that includes libuv's header and links
# libuv.  Both use the heap library (server/heap/), shm/ and proto/.
SESSION_SOURCES = server/options.c server/log.c server/access.c server/session.c \
	server/dispatch.c server/heaps_req.c server/control.c server/cachewalk.c server/inflight.c server/stats.c server/quota.c \
	server/heaps_stats.c \
	server/lookupwait.c server/guard.c server/ctlcap.c server/kept.c server/uidarea.c
noinst_LTLIBRARIES += libshmsession.la
libshmsession_la_SOURCES = $(SESSION_SOURCES) server/options.h server/log.h \
	server/access.h server/session.h server/daemon.h server/dispatch.h server/heaps_req.h \
	server/inflight.h server/stats.h server/quota.h server/control.h server/lookupwait.h \
	server/guard.h server/ctlcap.h server/kept.h server/uidarea.h
libshmsession_la_CPPFLAGS = $(AM_CPPFLAGS) $(SERVER_CPPFLAGS)
libshmsession_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)

sbin_PROGRAMS += shmallocd
shmallocd_SOURCES = server/main.c server/server.c server/server.h server/conn.c server/conn.h \
	server/perimeter.c server/perimeter.h server/activation.c server/activation.h \
	server/pick.c server/pick.h server/backing.c server/backing.h
shmallocd_CPPFLAGS = $(AM_CPPFLAGS) $(SERVER_CPPFLAGS)
shmallocd_CFLAGS = $(AM_CFLAGS) $(LIBUV_CFLAGS) $(PROTOBUF_C_CFLAGS) $(LIBSYSTEMD_CFLAGS)
shmallocd_LDADD = libshmsession.la libshmheap.la libshmproto.la libshmcore.la $(LIBUV_LIBS) \
	$(PROTOBUF_C_LIBS) $(LIBSYSTEMD_LIBS)
EXTRA_DIST += server/README.md
