# SPDX-License-Identifier: MIT
# ---- examples/: runnable demos (built by make, not installed) ----
noinst_PROGRAMS += examples/queue
examples_queue_SOURCES = examples/queue.c
examples_queue_LDADD = libshmalloc.la
examples_queue_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/client/lib

# Standard C++ containers shared by two programs (shmalloc.hpp).
noinst_PROGRAMS += examples/containers
examples_containers_SOURCES = examples/containers.cc
examples_containers_LDADD = libshmalloc.la
examples_containers_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/client/lib

# A std::map in a named heap, shared by two programs (shma::heap_allocator).
noinst_PROGRAMS += examples/heapmap
examples_heapmap_SOURCES = examples/heapmap.cc
examples_heapmap_LDADD = libshmalloc.la
examples_heapmap_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/client/lib
