/* SPDX-License-Identifier: MIT */
/*
 * Bad frees: the slow path's judgement (freecheck.h says what the fast path
 * tests and why).
 *
 * check_free() takes a pointer the fast path would not place, or whose
 * test failed, and says what it is:
 *   - not in the heap's range, or on a page that holds no live block (free,
 *     metadata, an arena not made): "invalid pointer";
 *   - inside a small object, or inside a large block (anything but its first
 *     byte, or an address aligned above it as aligned_alloc gives out):
 *     "invalid pointer", naming the block it is in;
 *   - a small object whose bit in the daemon's bitmap (segment 'M', read
 *     only) is clear: it is not out, so it is free already: "double free";
 *   - a large block in this process's large-block cache: "double free";
 *   - a block carrying the freed mark: found in a bin of this process, or
 *     of another process of the instance (its control block read with
 *     pread(), where the file system lets us: a regular file of the
 *     daemon's uid, the owner of our own block), or in another process's
 *     large-block cache: "double free"; found nowhere: refused with a line,
 *     never an abort (the mark may be the program's own data).
 * It calls no malloc: the directory of /dev/shm is read with getdents64.
 */
#include "config.h"

#include "distrust.h"
#include "freecheck.h"
#include "debug.h"
#include "seg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

enum check_mode { MODE_SILENT, MODE_WARN, MODE_ABORT };

uint64_t check_key;
uint64_t check_recip[256];
uint32_t check_span[256];

static pthread_once_t once = PTHREAD_ONCE_INIT;
static uint32_t bin_first[SIZECLASS_COUNT];
static uint64_t bitmap_off; /* in an arena's metadata */

/* Where a freed block was found, for the message. */
struct found {
	int where;    /* FOUND_* */
	long pid;     /* of the process whose cache holds it */
	uint64_t client;
};

enum { FOUND_NOWHERE, FOUND_OWN_CACHE, FOUND_OTHER_CACHE, FOUND_FREE, FOUND_OWN_LARGE,
       FOUND_OTHER_LARGE };

/* SHMALLOC_CHECK, read when a bad free is found (so a program may set it
 * any time before). */
static enum check_mode mode_now(void)
{
	const char *m = getenv("SHMALLOC_CHECK");
	if (m != NULL && strcmp(m, "warn") == 0)
		return MODE_WARN;
	if (m != NULL && (strcmp(m, "0") == 0 || strcmp(m, "off") == 0))
		return MODE_SILENT;
	return MODE_ABORT;
}

static void init(void)
{
	layout_bin_firsts(bin_first);
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		__atomic_store_n(&check_span[cls],
				 (uint32_t)sizeclass_table[cls].span_pages << SHMA_PAGE_SHIFT,
				 __ATOMIC_RELAXED);
		__atomic_store_n(&check_recip[cls], UINT64_MAX / sizeclass_size(cls) + 1,
				 __ATOMIC_RELAXED);
	}
}

/* The freed mark of the heap mapped here: the same in every process of the
 * instance, and across restarts (the header's fields are fixed at the first
 * start); never 0.  A mixer of splitmix64's. */
static void key_init(void)
{
	const struct heap_header *h = map_view.hdr;
	struct arena_geometry g;
	if (h == NULL || layout_geometry(map_view.arena_size, &g) != 0)
		return;
	bitmap_off = g.bitmap_off;
	uint64_t z = (uint64_t)h->created ^ h->base * 31 ^ h->class_checksum;
	for (const char *s = h->instance; *s && s < h->instance + SHMA_INSTANCE_MAX; s++)
		z = z * 131 + (unsigned char)*s;
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	z ^= z >> 31;
	__atomic_store_n(&check_key, z | 1, __ATOMIC_RELAXED);
}

static void report(void *p, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* One line on stderr, then abort() or return (refused). */
static void report(void *p, const char *what, const char *fmt, ...)
{
	enum check_mode mode = mode_now();
	if (mode == MODE_SILENT)
		return;
	char line[400];
	int n = snprintf(line, sizeof line, "shmalloc[%ld]: %s(): ", (long)getpid(), what);
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof line - 40)
		n = (int)sizeof line - 40;
	n += snprintf(line + n, sizeof line - (size_t)n, "%s\n",
		      mode == MODE_ABORT ? "; aborting" : "; ignored (SHMALLOC_CHECK=warn)");
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
	(void)p;
	if (mode == MODE_ABORT)
		abort();
}

/* ---- where freed blocks are ---- */

/* 1 if ref is in bin cls of one of the slots of cb (this process's own). */
static int in_own_bins(const struct control_block *cb, unsigned cls, uint64_t ref)
{
	uint32_t n = layout_slots_taken(&cb->hdr);
	for (uint32_t i = 0; i < n; i++) {
		if (!__atomic_load_n(&cb->slots[i].in_use, __ATOMIC_RELAXED))
			continue;
		uint32_t count = __atomic_load_n(&cb->slots[i].bins[cls].count, __ATOMIC_ACQUIRE);
		const uint64_t *stack = &cb->refs[i][bin_first[cls]];
		for (uint32_t k = 0; k < count && k < layout_bin_capacity(cls); k++)
			if (stack[k] == ref)
				return 1;
	}
	return 0;
}

static int in_large(const struct control_header *h, uint64_t ref)
{
	for (unsigned i = 0; i < SHMA_LARGE_KEEP; i++)
		if (__atomic_load_n(&h->large[i].ref, __ATOMIC_RELAXED) == ref)
			return 1;
	return 0;
}

/* pread of exactly len bytes at off: 0 or -1. */
static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	return pread(fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -1;
}

/* 1 if another process's control block (fd) holds ref: in bin cls of one of
 * its slots (cls < SIZECLASS_COUNT), or in its large-block cache. */
static int in_block(int fd, unsigned cls, uint64_t ref, struct found *f)
{
	struct control_header h;
	if (read_at(fd, &h, sizeof h, 0) != 0 || h.magic != SHMA_CONTROL_MAGIC)
		return 0;
	f->pid = h.pid;
	f->client = h.client_id;
	if (cls >= SIZECLASS_COUNT)
		return in_large(&h, ref);
	uint32_t n = layout_slots_taken(&h);
	for (uint32_t i = 0; i < n; i++) {
		struct control_slot s;
		if (read_at(fd, &s, sizeof s, offsetof(struct control_block, slots) + i * sizeof s))
			return 0;
		uint32_t count = s.bins[cls].count;
		if (!s.in_use || count == 0)
			continue;
		if (count > layout_bin_capacity(cls))
			count = layout_bin_capacity(cls);
		uint64_t refs[256];
		uint64_t at = offsetof(struct control_block, refs) +
			      ((uint64_t)i * SHMA_SLOT_REFS + bin_first[cls]) * sizeof(uint64_t);
		for (uint32_t k = 0; k < count;) {
			uint32_t m = count - k < 256 ? count - k : 256;
			if (read_at(fd, refs, m * sizeof *refs, at + k * sizeof *refs) != 0)
				return 0;
			for (uint32_t j = 0; j < m; j++)
				if (refs[j] == ref)
					return 1;
			k += m;
		}
	}
	return 0;
}

/* 1 if the control block named name in /dev/shm (dir) holds ref: a regular
 * file of the daemon's uid (a FIFO or another user's file under the name is
 * neither waited on nor believed). */
static int in_client(int dir, const char *name, uid_t daemon_uid, unsigned cls, uint64_t ref,
		     struct found *f)
{
	int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0; /* gone, or another user's: the file system says no */
	struct stat st;
	int hit = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == daemon_uid &&
		  in_block(fd, cls, ref, f);
	close(fd);
	return hit;
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* 1 if the control block of some other client of the instance holds ref
 * (their names in /dev/shm: shmalloc.<instance>.c<id>). */
static int in_other_blocks(unsigned cls, uint64_t ref, uint64_t own, struct found *f)
{
	char prefix[SEG_NAME_MAX];
	int plen = snprintf(prefix, sizeof prefix, "shmalloc.%s.c", map_view.instance);
	if (plen < 0 || plen >= (int)sizeof prefix)
		return 0;
	int dir = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return 0;
	/* The daemon's uid: our own control block's owner. */
	char mine[SEG_NAME_MAX + 24];
	struct stat st;
	snprintf(mine, sizeof mine, "%s%llu", prefix, (unsigned long long)own);
	if (own == 0 || fstatat(dir, mine, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		close(dir);
		return 0;
	}
	char buf[4096] __attribute__((aligned(8)));
	int hit = 0;
	long len;
	while (!hit && (len = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
		for (long at = 0; at < len && !hit;) {
			const struct linux_dirent64 *e = (const void *)(buf + at);
			at += e->d_reclen;
			if (strncmp(e->d_name, prefix, (size_t)plen) != 0)
				continue;
			char *end;
			unsigned long long id = strtoull(e->d_name + plen, &end, 10);
			if (*end == '\0' && end != e->d_name + plen && id != own)
				hit = in_client(dir, e->d_name, st.st_uid, cls, ref, f);
		}
	}
	close(dir);
	return hit;
}

/* 1 if the daemon's bitmap says object idx of the span at span_start (a
 * page of the arena of off) is out. */
static int bit_out(uint64_t off, uint32_t span_start, uint64_t idx)
{
	uint32_t id = (uint32_t)(off >> map_view.arena_shift);
	const uint64_t *bm = (const uint64_t *)(map_view.meta + layout_meta_offset(map_view.meta_bytes, id) +
						bitmap_off + (uint64_t)span_start * SHMA_BITMAP_BYTES_PER_PAGE);
	return (int)(__atomic_load_n(&bm[idx / 64], __ATOMIC_ACQUIRE) >> (idx % 64) & 1);
}

/* Where the small object ref (class cls), which carries the freed mark, is
 * free: FOUND_NOWHERE when no cache we can see holds it. */
static void find_small(uint64_t ref, unsigned cls, struct found *f)
{
	struct control_block *cb = conn_control();
	if (cb != NULL && in_own_bins(cb, cls, ref)) {
		f->where = FOUND_OWN_CACHE;
		return;
	}
	if (in_other_blocks(cls, ref, cb ? cb->hdr.client_id : 0, f))
		f->where = FOUND_OTHER_CACHE;
}

static void find_large(uint64_t ref, int marked, struct found *f)
{
	struct control_block *cb = conn_control();
	if (cb != NULL && in_large(&cb->hdr, ref))
		f->where = FOUND_OWN_LARGE;
	else if (marked && in_other_blocks(SIZECLASS_COUNT, ref, cb ? cb->hdr.client_id : 0, f))
		f->where = FOUND_OTHER_LARGE;
}

/* ---- the verdicts ---- */

/* A free of a block the freed mark or a cache says is free: 0 (refused). */
static int double_free(void *p, const char *what, size_t size, const struct found *f)
{
	const char *why = "";
	char buf[96];
	switch (f->where) {
	case FOUND_OWN_CACHE: why = "it is in this process's cache"; break;
	case FOUND_OWN_LARGE: why = "it is in this process's large-block cache"; break;
	case FOUND_FREE: why = "the heap has it free"; break;
	case FOUND_OTHER_CACHE:
	case FOUND_OTHER_LARGE:
		snprintf(buf, sizeof buf, "it is in the cache of pid %ld (client %llu), which freed it",
			 f->pid, (unsigned long long)f->client);
		why = buf;
		break;
	default:
		/* The mark may be the program's data: refused, never aborted on. */
		if (mode_now() == MODE_SILENT)
			return 0;
		char line[300];
		int n = snprintf(line, sizeof line,
				 "shmalloc[%ld]: %s(): %p (a %zu-byte block) carries the freed mark "
				 "but no cache holds it: a double free, or a use after free; ignored\n",
				 (long)getpid(), what, p, size);
		ssize_t w = write(STDERR_FILENO, line, (size_t)n);
		(void)w;
		return 0;
	}
	report(p, what, "double free detected: %p (a %zu-byte block, ref %#llx): %s", p, size,
	       (unsigned long long)((char *)p - map_view.base), why);
	return 0;
}

/* A small object's free: p on a page of a span of class e.cls. */
static int judge_small(void *p, const char *what, uint64_t off, struct page_entry e, int flags)
{
	uint64_t size = sizeclass_size(e.cls);
	uint64_t page = (off & (map_view.arena_size - 1)) >> SHMA_PAGE_SHIFT;
	if (page < e.span_start || page - e.span_start >= sizeclass_table[e.cls].span_pages ||
	    (uint64_t)e.span_start + sizeclass_table[e.cls].span_pages >
		    map_view.arena_size >> SHMA_PAGE_SHIFT) {
		/* The page map contradicts itself (a broken daemon): not the
		 * program's fault, but nothing to put in a bin either -- the
		 * block goes straight back to the daemon, whose to judge it is
		 * (it quarantines the arena), said once. */
		distrust_note(DISTRUST_PAGE_MAP);
		tcache_free_direct(off);
		return 0;
	}
	uint64_t start = (off & ~(map_view.arena_size - 1)) + ((uint64_t)e.span_start << SHMA_PAGE_SHIFT);
	uint64_t idx = (off - start) / size;
	if (idx >= sizeclass_table[e.cls].objects) {
		report(p, what, "invalid pointer %p: in a span's tail, no block starts there", p);
		return 0;
	}
	uint64_t obj = start + idx * size;
	if (obj != off) {
		report(p, what, "invalid pointer %p: %llu bytes inside the %llu-byte block at %p", p,
		       (unsigned long long)(off - obj), (unsigned long long)size, map_ptr(obj));
		return 0;
	}
	struct found f = {FOUND_NOWHERE, 0, 0};
	if (!bit_out(off, e.span_start, idx)) {
		f.where = FOUND_FREE;
		return double_free(p, what, size, &f);
	}
	if ((flags & CHECK_READ_MARK) && ((uint64_t *)p)[CHECK_MARK_WORD] == check_key) {
		/* Refused whatever the search finds: it only says why. */
		if (mode_now() != MODE_SILENT)
			find_small(off, e.cls, &f);
		return double_free(p, what, size, &f);
	}
	if (flags & CHECK_WRITE_MARK)
		check_mark(p);
	return 1;
}

/* A large block's free: p must be its start, or above it at an address
 * aligned more than the start is (aligned_alloc moves the start up). */
static int judge_large(void *p, const char *what, int flags)
{
	uint64_t ref;
	char *start;
	size_t size;
	if (!map_large_block(p, &ref, &start, &size)) {
		report(p, what, "invalid pointer %p: no live block there (freed already, or never "
		       "allocated)", p);
		return 0;
	}
	uintptr_t u = (uintptr_t)p, s = (uintptr_t)start;
	if (u != s && (__builtin_ctzll(u) <= __builtin_ctzll(s) ||
		       u - s >= ((uintptr_t)1 << __builtin_ctzll(u)))) {
		report(p, what, "invalid pointer %p: %llu bytes inside the %zu-byte block at %p", p,
		       (unsigned long long)(u - s), size, (void *)start);
		return 0;
	}
	int marked = (flags & CHECK_READ_MARK) && ((uint64_t *)p)[CHECK_MARK_WORD] == check_key;
	struct found f = {FOUND_NOWHERE, 0, 0};
	conn_lock();
	find_large(ref, marked && mode_now() != MODE_SILENT, &f);
	conn_unlock();
	if (f.where != FOUND_NOWHERE || marked)
		return double_free(p, what, size, &f);
	if (flags & CHECK_WRITE_MARK)
		check_mark(p);
	return 1;
}

int check_free(void *p, const char *what, int flags)
{
	pthread_once(&once, init);
	char *base = __atomic_load_n(&map_view.base, __ATOMIC_ACQUIRE);
	uint64_t off = (uint64_t)((char *)p - base);
	if (base == NULL || off >= map_view.range) {
		report(p, what, "invalid pointer %p: not in the shared heap", p);
		return 0;
	}
	if (__atomic_load_n(&check_key, __ATOMIC_RELAXED) == 0)
		key_init();
	const struct page_entry *pe = map_page(off);
	struct page_entry e = {0, 0, 0, 0};
	if (pe != NULL)
		e = *pe;
	if (e.kind == PAGE_SPAN && e.cls < SIZECLASS_COUNT)
		return judge_small(p, what, off, e, flags);
	if (e.kind == PAGE_LARGE || e.kind == PAGE_LARGE_CONT)
		return judge_large(p, what, flags);
	report(p, what, "invalid pointer %p: no live block there (freed already, or never allocated)",
	       p);
	return 0;
}
