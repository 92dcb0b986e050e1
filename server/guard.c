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
		/* mmap is a plain system call here: safe in a handler. */
		if (mmap((void *)page, rest, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) ==
		    MAP_FAILED)
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

int guard_reserved(int fd, const void *base, const void *p, size_t len)
{
	if (len == 0)
		return 1;
	if (fd < 0)
		return resident_prefix(p, len) >= len;
	off_t off = (off_t)((const char *)p - (const char *)base);
	int e = errno;
	off_t hole = lseek(fd, off, SEEK_HOLE);
	errno = e;
	/* ENXIO: off is at or past the end (truncated). */
	return hole >= 0 && hole >= off + (off_t)len;
}

uint32_t guard_slots_readable(int fd, const struct control_block *cb)
{
	uint32_t n = layout_slots_taken(&cb->hdr);
	if (n <= SHMA_CONTROL_SLOTS_RESERVED)
		return n;
	uint64_t first = layout_slot_headers_end(SHMA_CONTROL_SLOTS_RESERVED);
	uint64_t end = layout_slot_headers_end(n);
	uint64_t there;
	if (fd >= 0) {
		int e = errno;
		off_t hole = lseek(fd, (off_t)first, SEEK_HOLE);
		errno = e;
		there = hole < 0 ? first : (uint64_t)hole;
	} else {
		there = first + resident_prefix((const char *)cb + first, end - first);
	}
	if (there >= end)
		return n;
	uint64_t whole = (there - offsetof(struct control_block, slots)) / sizeof(struct control_slot);
	return whole < SHMA_CONTROL_SLOTS_RESERVED ? SHMA_CONTROL_SLOTS_RESERVED : (uint32_t)whole;
}
