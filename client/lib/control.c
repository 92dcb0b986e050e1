/* SPDX-License-Identifier: MIT */
/*
 * The control block: the segment the daemon made for this process (its
 * thread slots, their bins of cached refs, the large blocks kept), mapped
 * from the descriptor the Hello reply passed, checked to be a regular file
 * of its size and to name our client id before anything reads it.
 *
 * After a lost connection the daemon gives our block back when it still
 * exists (the Hello names our client id): it stays mapped, the generation
 * does not change, and every thread keeps its slot and its cached blocks.
 * Only when we get a new block does the generation change: threads then
 * leave their old slots to the daemon, which takes them back when this
 * process is gone.  Slots and bins are reserved (fallocate) as they are
 * first used, so a full /dev/shm is an error here, never a SIGBUS later.
 */
#include "config.h"

#include "conn.h"
#include "distrust.h"
#include "seg.h"

#include <errno.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/memcheck.h>
#endif

static struct {
	uint64_t generation;
	uint64_t client_id;  /* of the control block ctl maps */
	struct control_block *ctl;
	int ctl_fd;          /* of ctl: slots are reserved through it */
} cb = {.ctl_fd = -1};

/* Under Valgrind, memcheck's leak search reads every accessible byte, and a
 * read of a hole of the sparse control block (6.8 GiB) makes a page: so the
 * block is no-access past what the daemon reserved, and a range becomes
 * accessible once this process reserved it (as maps.c does for the heap). */
static void control_accessible(uint64_t off, uint64_t len)
{
#ifdef HAVE_VALGRIND_MEMCHECK_H
	if (map_view.valgrind && cb.ctl != NULL && len > 0)
		VALGRIND_MAKE_MEM_DEFINED((char *)cb.ctl + off, len);
#else
	(void)off;
	(void)len;
#endif
}

struct control_block *conn_control(void)
{
	return cb.ctl;
}

uint64_t ctl_client_id(void)
{
	return cb.ctl != NULL ? cb.client_id : 0;
}

uint64_t conn_generation(void)
{
	return __atomic_load_n(&cb.generation, __ATOMIC_ACQUIRE);
}

int conn_reserve_refs(unsigned i, uint32_t first, uint32_t n)
{
	if (cb.ctl_fd < 0 || i >= SHMA_CONTROL_SLOTS || first > SHMA_SLOT_REFS ||
	    n > SHMA_SLOT_REFS - first)
		return -EINVAL;
	uint64_t off = offsetof(struct control_block, refs[i][first]);
	int rc = seg_reserve(cb.ctl_fd, off, (uint64_t)n * sizeof cb.ctl->refs[i][0]);
	if (rc == 0)
		control_accessible(off, (uint64_t)n * sizeof cb.ctl->refs[i][0]);
	return rc;
}

int conn_reserve_control(uint64_t off, uint64_t len)
{
	if (cb.ctl_fd < 0 || off > sizeof(struct control_block) ||
	    len > sizeof(struct control_block) - off)
		return -EINVAL;
	int rc = seg_reserve(cb.ctl_fd, off, len);
	if (rc == 0)
		control_accessible(off, len);
	return rc;
}

int conn_reserve_slot_headers(uint32_t from, uint32_t to)
{
	if (cb.ctl_fd < 0 || from > to || to > SHMA_CONTROL_SLOTS)
		return -EINVAL;
	/* Slots [0, from) are reserved already, and the daemon reserved the
	 * first SHMA_CONTROL_SLOTS_RESERVED; only the pages past both are left. */
	if (from < SHMA_CONTROL_SLOTS_RESERVED)
		from = SHMA_CONTROL_SLOTS_RESERVED;
	uint64_t start = layout_slot_headers_end(from), end = layout_slot_headers_end(to);
	int rc = end > start ? seg_reserve(cb.ctl_fd, start, end - start) : 0;
	if (rc == 0 && end > start)
		control_accessible(start, end - start);
	return rc;
}

void ctl_forget(void)
{
	/* The old control block stays mapped: a thread may still be using its
	 * slot there until it notices the new generation. */
	cb.ctl = NULL;
	cb.client_id = 0;
	__atomic_add_fetch(&cb.generation, 1, __ATOMIC_RELEASE);
}

int ctl_map(const char *instance, uint64_t client_id, int fd, int readopt)
{
	if (cb.ctl != NULL && readopt && client_id == cb.client_id) {
		if (fd >= 0)
			close(fd);
		/* Re-adopted: the block we map already, caches intact -- if it is
		 * still whole (a block cut short would SIGBUS us past the cut). */
		return distrust_size_ok(cb.ctl_fd, sizeof(struct control_block)) ? 0 : -EPROTO;
	}
	if (cb.ctl != NULL) {
		/* A new block: threads leave their slots in the old one. */
		cb.ctl = NULL;
		__atomic_add_fetch(&cb.generation, 1, __ATOMIC_RELEASE);
	}
	/* The descriptor the daemon passed with its reply (the block is the
	 * daemon's, mode 0600); by name only if none came. */
	int rc;
	if (fd < 0) {
		char name[SEG_NAME_MAX];
		rc = seg_name(name, sizeof name, instance, SEG_CONTROL, client_id);
		if (rc != 0)
			return rc;
		fd = seg_open(name, 1);
		if (fd < 0)
			return fd;
	}
	void *p = NULL;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size == (off_t)sizeof(struct control_block))
		p = seg_map(fd, 0, sizeof(struct control_block), 1, NULL);
	rc = p ? 0 : -EPROTO;
	if (rc != 0) {
		close(fd);
		return rc;
	}
	struct control_block *b = p;
	if (b->hdr.magic != SHMA_CONTROL_MAGIC || b->hdr.client_id != client_id) {
		seg_unmap(p, sizeof *b);
		close(fd);
		return -EPROTO;
	}
	/* The old block stays mapped (a thread may still use its slot there
	 * until it sees the new generation); its descriptor is not needed. */
	if (cb.ctl_fd >= 0)
		close(cb.ctl_fd);
	cb.ctl_fd = fd;
	cb.ctl = b;
#ifdef HAVE_VALGRIND_MEMCHECK_H
	if (map_view.valgrind) {
		uint64_t ours = layout_slot_headers_end(SHMA_CONTROL_SLOTS_RESERVED);
		VALGRIND_MAKE_MEM_NOACCESS((char *)b + ours, sizeof *b - ours);
	}
#endif
	cb.client_id = client_id;
	__atomic_store_n(&b->hdr.same_address, map_view.same_address ? 1u : 2u,
			 __ATOMIC_RELAXED);
	return 0;
}
