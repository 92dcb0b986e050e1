/* SPDX-License-Identifier: MIT */
/*
 * The SIGBUS guard of control-block mappings and the residency check of
 * client-reserved ranges: see guard.h.
 */
#include "guard.h"
#include "layout.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096u

struct range {
	uintptr_t base;
	size_t len;
	int broken;
};

static struct range *ranges;
static size_t nranges, cap;
static volatile sig_atomic_t installed;
static volatile unsigned long faults;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	uintptr_t a = (uintptr_t)si->si_addr;
	for (size_t i = 0; i < nranges; i++) {
		struct range *r = &ranges[i];
		if (a < r->base || a - r->base >= r->len)
			continue;
		uintptr_t page = a & ~(uintptr_t)(PAGE - 1);
		size_t rest = r->len - (page - r->base);
		/* mmap is a plain system call here: safe in a handler.  The whole
		 * tail, one mapping more; under strict overcommit (which ignores
		 * MAP_NORESERVE) the faulting page alone. */
		int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE;
		if (mmap((void *)page, rest, PROT_READ | PROT_WRITE, flags, -1, 0) == MAP_FAILED &&
		    mmap((void *)page, PAGE, PROT_READ | PROT_WRITE, flags, -1, 0) == MAP_FAILED)
			break;
		r->broken = 1;
		faults++;
		return;
	}
	/* Not a guarded mapping: the fault is what it was, fatal, with its core. */
	signal(sig, SIG_DFL);
}

static int install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) != 0)
		return -errno;
	installed = 1;
	return 0;
}

int guard_add(void *base, size_t len)
{
	if (!installed) {
		int rc = install();
		if (rc != 0)
			return rc;
	}
	if (nranges == cap) {
		size_t ncap = cap ? cap * 2 : 64;
		struct range *n = realloc(ranges, ncap * sizeof *n);
		if (n == NULL)
			return -ENOMEM;
		ranges = n;
		cap = ncap;
	}
	ranges[nranges++] = (struct range){.base = (uintptr_t)base, .len = len};
	return 0;
}

static struct range *find(const void *base)
{
	for (size_t i = 0; i < nranges; i++)
		if (ranges[i].base == (uintptr_t)base)
			return &ranges[i];
	return NULL;
}

void guard_remove(const void *base)
{
	struct range *r = find(base);
	if (r != NULL)
		*r = ranges[--nranges];
}

int guard_broken(const void *base)
{
	struct range *r = find(base);
	return r != NULL && r->broken;
}

unsigned long guard_faults(void)
{
	return faults;
}

/* The bytes of [p, p + len) before its first page not resident. */
static size_t resident_prefix(const void *p, size_t len)
{
	uintptr_t first = (uintptr_t)p & ~(uintptr_t)(PAGE - 1);
	uintptr_t end = ((uintptr_t)p + len + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
	unsigned char vec[64];
	for (uintptr_t at = first; at < end;) {
		size_t pages = (end - at) / PAGE;
		if (pages > sizeof vec)
			pages = sizeof vec;
		if (mincore((void *)at, pages * PAGE, vec) != 0)
			return at > (uintptr_t)p ? at - (uintptr_t)p : 0;
		for (size_t i = 0; i < pages; i++)
			if (!(vec[i] & 1)) {
				uintptr_t hole = at + i * PAGE;
				return hole > (uintptr_t)p ? hole - (uintptr_t)p : 0;
			}
		at += pages * PAGE;
	}
	return len;
}

/* The bytes of [off, off + len) of the mapping at base (of segment fd, or
 * -1) before the first page that is neither in memory (mincore(), which
 * sees a page fallocate() made and nobody touched yet, and which lseek
 * SEEK_HOLE takes for a hole) nor swapped out (lseek SEEK_DATA at it). */
static uint64_t there_prefix(int fd, const char *base, uint64_t off, uint64_t len)
{
	uint64_t at = off & ~(uint64_t)(PAGE - 1), end = off + len;
	int e = errno;
	while (at < end) {
		at += resident_prefix(base + at, end - at);
		if (at >= end)
			break;
		if (fd < 0 || lseek(fd, (off_t)at, SEEK_DATA) != (off_t)at)
			break;
		at += PAGE;
	}
	errno = e;
	if (at >= end)
		return len;
	return at > off ? at - off : 0;
}

int guard_reserved(int fd, const void *base, const void *p, size_t len)
{
	uint64_t off = (uint64_t)((const char *)p - (const char *)base);
	return len == 0 || there_prefix(fd, base, off, len) >= len;
}

uint32_t guard_slots_readable(int fd, const struct control_block *cb)
{
	uint32_t n = layout_slots_taken(&cb->hdr);
	if (n <= SHMA_CONTROL_SLOTS_RESERVED)
		return n;
	uint64_t first = layout_slot_headers_end(SHMA_CONTROL_SLOTS_RESERVED);
	uint64_t end = layout_slot_headers_end(n);
	uint64_t there = first + there_prefix(fd, (const char *)cb, first, end - first);
	if (there >= end)
		return n;
	/* Every slot whose header starts before the first page not there: a
	 * slot in use wrote its first bytes, and the rest of its header may
	 * lie on a page reserved but never touched, which mincore() and
	 * SEEK_DATA both take for a hole (reading it makes no page: it is the
	 * segment's already).  A liar's true hole there costs one page. */
	uint64_t sz = sizeof(struct control_slot);
	uint64_t started = (there - offsetof(struct control_block, slots) + sz - 1) / sz;
	if (started < SHMA_CONTROL_SLOTS_RESERVED)
		started = SHMA_CONTROL_SLOTS_RESERVED;
	if (started >= n)
		return n;
	/* The last of them straddles the cut: read only if it says it is in
	 * use (its first bytes, before the cut). */
	uint32_t last = (uint32_t)started - 1;
	if (last >= SHMA_CONTROL_SLOTS_RESERVED &&
	    (uint64_t)offsetof(struct control_block, slots) + (uint64_t)last * sz + sz > there &&
	    __atomic_load_n(&cb->slots[last].in_use, __ATOMIC_ACQUIRE) == 0)
		started = last;
	return (uint32_t)started;
}
