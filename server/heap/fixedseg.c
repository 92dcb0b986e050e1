/* SPDX-License-Identifier: MIT */
/* See fixedseg.h. */
#include "fixedseg.h"
#include "seg.h"

#include <errno.h>
#include <string.h>

static int header_check(const struct fixedseg_header *h, const struct fixedseg_shape *w)
{
	if (h->magic != w->magic)
		return -EINVAL;
	if (h->version != w->version)
		return -EPROTO;
	if (h->capacity != w->capacity || h->entry_size != w->entry_size ||
	    h->entries_off != SHMA_PAGE_SIZE ||
	    strncmp(h->instance, w->instance, sizeof h->instance) != 0)
		return -EINVAL;
	return 0;
}

int fixedseg_open(const char *name, size_t size, mode_t mode, const struct fixedseg_shape *want,
		  int *fd, void **base, int *fresh)
{
	*base = NULL;
	*fd = seg_create(name, size, mode);
	*fresh = *fd >= 0;
	if (*fd == -EEXIST)
		*fd = seg_adopt(name, mode, NULL); /* -EPERM: not ours */
	if (*fd < 0) {
		int rc = *fd;
		*fd = -1;
		return rc;
	}
	int rc = 0;
	if (*fresh) {
		rc = seg_reserve(*fd, 0, size);
	} else {
		int64_t have = seg_size(*fd);
		rc = have < 0 ? (int)have : (uint64_t)have == size ? 0 : -EINVAL;
	}
	if (rc < 0)
		return rc;
	*base = seg_map(*fd, 0, size, 1, NULL);
	if (*base == NULL)
		return -errno;
	struct fixedseg_header *h = *base;
	/* A header never finished (its creator died first) holds nothing. */
	if (*fresh || h->magic == 0) {
		*fresh = 1;
		h->version = want->version;
		h->capacity = want->capacity;
		h->entry_size = want->entry_size;
		h->entries_off = SHMA_PAGE_SIZE;
		strncpy(h->instance, want->instance, sizeof h->instance - 1);
		__atomic_store_n(&h->magic, want->magic, __ATOMIC_RELEASE);
	}
	return header_check(h, want);
}
