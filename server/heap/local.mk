# SPDX-License-Identifier: MIT
# ---- server/heap/: the allocator core, a library with no I/O loop ----
# Page heap, spans, arenas, large blocks, roots and recovery.  It may use
# shm/ and libc only: no libuv, no protocol (its include path has neither).
# HEAP_SOURCES is the one list of its files that the fuzz target
# (tests/fuzz/local.mk) compiles too.
noinst_LTLIBRARIES += libshmheap.la
HEAP_SOURCES = server/heap/heap.c server/heap/segments.c server/heap/counters.c \
	server/heap/arena.c server/heap/pageheap.c server/heap/span.c server/heap/large.c \
	server/heap/region.c server/heap/regionkeep.c server/heap/heal.c server/heap/lists.c \
	server/heap/region_list.c server/heap/recovery.c server/heap/roots.c \
	server/heap/heaps.c server/heap/fixedseg.c
libshmheap_la_SOURCES = $(HEAP_SOURCES) server/heap/heap.h server/heap/arena.h \
	server/heap/pageheap.h server/heap/span.h server/heap/large.h server/heap/region_list.h \
	server/heap/heap_internal.h server/heap/roots.h server/heap/heaps.h server/heap/fixedseg.h
libshmheap_la_CPPFLAGS = $(AM_CPPFLAGS) $(HEAP_CPPFLAGS)
libshmheap_la_LIBADD = libshmcore.la
