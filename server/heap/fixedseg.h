/* SPDX-License-Identifier: MIT */
/*
 * A segment of the daemon's own, of a fixed size, that outlives it: a
 * header and a table of entries from its second page -- the roots manifest
 * (roots.c) and the named heaps' registry (heaps.c).
 */
#ifndef SHMA_SERVER_FIXEDSEG_H
#define SHMA_SERVER_FIXEDSEG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layout.h"

/* The header's start, as both kinds lay it out (roots' since layout 1). */
struct fixedseg_header {
	uint64_t magic;       /* written last */
	uint32_t version;
	uint32_t capacity;
	uint32_t entry_size;
	uint32_t reserved;
	uint64_t entries_off; /* SHMA_PAGE_SIZE */
	char instance[SHMA_INSTANCE_MAX];
};

/* What the header must say. */
struct fixedseg_shape {
	uint64_t magic;
	uint32_t version, capacity, entry_size;
	const char *instance;
};

/* Creates segment name (size bytes, reserved, mode) or adopts the one there
 * if it is ours and of that size; maps it writable; writes a fresh header
 * (or one its creator died before finishing) and checks it.  0 with *fd,
 * *base and *fresh (1: the header was written now, the entries are zeros);
 * else -errno: -EINVAL (another size, magic, shape or instance), -EPROTO
 * (another version); *fd then -1 or a descriptor the caller closes. */
int fixedseg_open(const char *name, size_t size, mode_t mode, const struct fixedseg_shape *want,
		  int *fd, void **base, int *fresh);

#endif
