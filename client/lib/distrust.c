/* SPDX-License-Identifier: MIT */
/*
 * The checks of what a broken daemon could change under the library
 * (distrust.h).  The fast path does the two compares it can afford
 * (fast.h: a bin's count within its room, its top ref within the heap's
 * range) and sends anything else here; a ref's class and alignment are
 * checked against the page map where refs enter a bin.
 */
#include "config.h"

#include "distrust.h"
#include "sizeclass.h"

#include "seg.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t seen[DISTRUST_KINDS];

static const char *const what[DISTRUST_KINDS] = {
	[DISTRUST_COUNT] = "a bin's count past its reserved refs (emptied, its blocks leaked)",
	[DISTRUST_BIN_REF] = "a ref in a bin outside the heap (dropped)",
	[DISTRUST_XFER_REF] = "a ref in the transfer cache that is no object of its class "
			      "(dropped)",
	[DISTRUST_PAGE_MAP] = "a page map entry whose span does not hold its page (the block "
			      "handed straight back)",
};

void distrust_note(enum distrust_kind kind)
{
	if (__atomic_fetch_add(&seen[kind], 1, __ATOMIC_RELAXED) != 0)
		return;
	char line[256];
	int n = snprintf(line, sizeof line,
			 "shmalloc[%ld]: the daemon's shared memory is inconsistent: %s; "
			 "said once\n",
			 (long)getpid(), what[kind]);
	if (n > 0) {
		ssize_t w = write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n
									  : sizeof line - 1);
		(void)w;
	}
}

uint64_t distrust_seen(enum distrust_kind kind)
{
	return __atomic_load_n(&seen[kind], __ATOMIC_RELAXED);
}

uint32_t distrust_bin(struct tcache *t, unsigned cls)
{
	uint32_t *count = &t->slot->bins[cls].count;
	const struct tcache_hot *h = &t->hot[cls];
	uint32_t n = __atomic_load_n(count, __ATOMIC_RELAXED);
	if (n > h->room) {
		distrust_note(DISTRUST_COUNT);
		n = 0;
		__atomic_store_n(count, 0, __ATOMIC_RELEASE);
	}
	while (n > 0 && h->stack[n - 1] - 1 >= map_view.pop_limit) {
		distrust_note(DISTRUST_BIN_REF);
		__atomic_store_n(count, --n, __ATOMIC_RELEASE);
	}
	return n;
}

int distrust_ref_ok(uint64_t ref, unsigned cls)
{
	unsigned c;
	return ref != 0 && ref < map_view.range && map_view.range - ref >= sizeclass_size(cls) &&
	       map_small_ref(map_ptr(ref), &c, 1) == ref && c == cls;
}

int distrust_segments_whole(void)
{
	int fd = backing_take(SEG_META); /* passed with this Hello; -1 if none */
	int ok = distrust_size_ok(fd, map_view.meta_size);
	if (fd >= 0)
		close(fd);
	return ok;
}

int distrust_size_ok(int fd, uint64_t len)
{
	struct stat st;
	return fd < 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_size >= len;
}
