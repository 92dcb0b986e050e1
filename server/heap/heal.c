/* SPDX-License-Identifier: MIT */
/*
 * The pages segment ('p') is open read-write to every client of the
 * segment mode's group: it must be, they write their blocks there through
 * their own mapping.  So any of them can ftruncate it; and a named tmpfs
 * segment cannot be sealed against that (only a memfd can).  What the
 * daemon can do is put the size back as soon as it sees the cut: on its
 * timer and at a restart, so that new clients map a whole heap again and a
 * restart does not refuse it.  What lay past the cut is gone (it reads as
 * zeros), and a client that touched it before the size came back took a
 * SIGBUS: the heap's pages hold no structure of the daemon's (heap.h), so
 * the heap itself stays consistent.
 */
#include "heap_internal.h"
#include "seg.h"

int heap_pages_heal(struct heap *h, int64_t *was)
{
	int64_t size = seg_size(h->pages_fd);
	*was = size;
	if (size < 0)
		return (int)size;
	if (size == (int64_t)h->range)
		return 0;
	int rc = seg_resize(h->pages_fd, h->range);
	if (rc == 0) {
		h->rec.pages_cut++;
		h->rec.pages_cut_to = size;
	}
	return rc != 0 ? rc : 1;
}
