/* SPDX-License-Identifier: MIT */
/*
 * The library's one memory primitive: private anonymous pages from the
 * kernel, for its own bookkeeping (buffers, parked answers, tables).
 *
 * The library may stand in for the process's malloc, so it never calls
 * malloc(3); everything it needs for itself comes from here.  The contract
 * (client.h): prim_alloc(len) gives len bytes (len > 0) of zeroed memory,
 * page-aligned, or NULL with errno ENOMEM (whatever mmap said); the pages
 * are committed only as they are touched (MAP_NORESERVE), so reserving a
 * large buffer costs nothing until it is used.  prim_free(p, len) gives back
 * what prim_alloc(len) gave, with the same len; NULL is ignored.  Neither
 * changes errno on success, and prim_free never does.
 */
#include "client.h"

#include <errno.h>
#include <sys/mman.h>

void *prim_alloc(size_t len)
{
	if (len == 0) {
		errno = EINVAL;
		return NULL;
	}
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

void prim_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	int e = errno;
	munmap(p, len);
	errno = e;
}
