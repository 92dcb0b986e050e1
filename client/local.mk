# ---- client/: libshmalloc and shmallocctl ----
include_HEADERS += client/shmalloc.h
lib_LTLIBRARIES += libshmalloc.la
libshmalloc_la_SOURCES =
libshmalloc_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
libshmalloc_la_LIBADD = libshmproto.la libshmcore.la $(PROTOBUF_C_LIBS)
libshmalloc_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(SHMALLOC_LT_VERSION)
