# The heap's sources (kept apart so server/local.mk stays the daemon's).
libshmheap_la_SOURCES += server/heap.c \
	server/arena.c server/arena.h \
	server/pageheap.c server/pageheap.h \
	server/span.c server/span.h \
	server/large.c server/large.h \
	server/roots.c server/roots.h
