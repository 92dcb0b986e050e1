/* SPDX-License-Identifier: MIT */
/*
 * protobuf-c's allocator: a bump arena in memory of our own.
 *
 * The library must never call the process's malloc (it may *be* the
 * process's malloc).  Every message we unpack is used and dropped while the
 * connection's lock is held, so one arena per process, reset after each
 * response, is enough.  The arena is address space reserved once; the kernel
 * gives it pages only as a large reply touches them.
 */
#include "client.h"

#define PBALLOC_SIZE ((size_t)16 << 20)

static char *arena_base;
static size_t arena_used;

static void *bump(void *data, size_t size)
{
	(void)data;
	if (arena_base == NULL) {
		arena_base = prim_alloc(PBALLOC_SIZE);
		if (arena_base == NULL)
			return NULL;
	}
	size = (size + 15) & ~(size_t)15;
	if (size > PBALLOC_SIZE - arena_used)
		return NULL;
	void *p = arena_base + arena_used;
	arena_used += size;
	return p;
}

static void nofree(void *data, void *p)
{
	(void)data;
	(void)p;
}

static ProtobufCAllocator allocator = {bump, nofree, NULL};

ProtobufCAllocator *pballoc_get(void)
{
	return &allocator;
}

void pballoc_reset(void)
{
	arena_used = 0;
}
