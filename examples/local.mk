# ---- examples/: runnable demos (built by make, not installed) ----
noinst_PROGRAMS += examples/queue
examples_queue_SOURCES = examples/queue.c
examples_queue_LDADD = libshmalloc.la
examples_queue_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/client/lib
