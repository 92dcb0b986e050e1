# The heap's sources (kept apart so server/local.mk stays the daemon's).
libshmheap_la_SOURCES +=
