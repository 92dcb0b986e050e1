# SPDX-License-Identifier: MIT
# ---- client/ctl/: shmallocctl ----
# The CLI: its views of the daemon's stats.  It uses the library (through
# client/lib/client.h), shm/ and proto/.
bin_PROGRAMS += shmallocctl
shmallocctl_SOURCES = client/ctl/shmallocctl.c client/ctl/ctl.h client/ctl/ctl_table.c \
	client/ctl/ctl_prom.c
shmallocctl_CPPFLAGS = $(AM_CPPFLAGS) $(LIB_CPPFLAGS)
shmallocctl_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
shmallocctl_LDADD = libshmclient.la
