/* SPDX-License-Identifier: MIT */
/*
 * The cap on a control block's tmpfs: see ctlcap.h.
 */
#include "ctlcap.h"
#include "daemon.h"
#include "guard.h"
#include "log.h"
#include "seg.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

/* What the header, the reserved slots' headers and those slots' every ref
 * take: no honest client with SHMA_CONTROL_SLOTS_RESERVED threads needs more. */
#define CTLCAP_FREE                                                                  \
	(layout_slot_headers_end(SHMA_CONTROL_SLOTS_RESERVED) +                          \
	 (uint64_t)SHMA_CONTROL_SLOTS_RESERVED * SHMA_SLOT_REFS * sizeof(uint64_t))

unsigned ctlcap_check(struct daemon *d)
{
	uint64_t cap = d->opt.client_max_memory;
	if (cap == 0)
		return 0;
	unsigned emptied = 0;
	for (struct client *c = d->clients; c != NULL; c = c->next) {
		if (c->ctl_fd < 0)
			continue;
		int64_t r = seg_resident(c->ctl_fd);
		if (r < 0 || (uint64_t)r <= CTLCAP_FREE + cap)
			continue;
		int rc = fallocate(c->ctl_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
				   (off_t)sizeof(struct control_block));
		log_msg(SLOG_WARN, "client %llu (pid %ld, uid %ld): its control block holds %lld "
			"bytes of /dev/shm, past --client-max-memory %llu and the %llu its caches "
			"may take: %s", (unsigned long long)c->id, (long)c->pid, (long)c->uid,
			(long long)r, (unsigned long long)cap, (unsigned long long)CTLCAP_FREE,
			rc == 0 ? "emptied, its caches lost" : strerror(errno));
		emptied += rc == 0;
	}
	return emptied;
}

int ctlcap_heal_pages(struct daemon *d)
{
	int64_t was;
	if (d->heap == NULL)
		return 0;
	int rc = heap_pages_heal(d->heap, &was);
	if (rc > 0)
		log_msg(SLOG_ERROR, "the pages segment of instance %s was cut to %lld bytes by a "
			"client: its size is back, what lay past the cut reads as zeros",
			d->opt.instance, (long long)was);
	else if (rc < 0)
		log_msg(SLOG_ERROR, "the pages segment of instance %s was cut by a client and "
			"cannot be made whole: %s", d->opt.instance, strerror(-rc));
	return rc > 0;
}

void ctlcap_unmap(struct control_block *cb)
{
	if (cb == NULL)
		return;
	guard_remove(cb);
	munmap(cb, sizeof *cb);
}

struct control_block *ctlcap_map(struct daemon *d, uint64_t id)
{
	char name[SEG_NAME_MAX];
	if (seg_name(name, sizeof name, d->opt.instance, SEG_CONTROL, id) != 0)
		return NULL;
	/* Ours (seg_adopt checks the owner and mode): only our uid may remove
	 * or replace a name in /dev/shm, which is sticky. */
	int fd = seg_adopt(name, seg_kind_mode(SEG_CONTROL, d->opt.segment_mode), NULL);
	if (fd < 0)
		return NULL;
	struct control_block *cb = NULL;
	int64_t size = seg_size(fd);
	if (size == (int64_t)sizeof *cb)
		cb = seg_map(fd, 0, sizeof *cb, 1, NULL);
	close(fd);
	if (cb != NULL && guard_add(cb, sizeof *cb) != 0) {
		munmap(cb, sizeof *cb);
		cb = NULL;
	}
	if (cb == NULL && size != (int64_t)sizeof *cb)
		log_msg(SLOG_WARN, "client %llu: its control block was cut short under the daemon "
			"(truncated to %lld bytes): not read, its caches leak",
			(unsigned long long)id, (long long)size);
	else if (cb == NULL)
		log_msg(SLOG_WARN, "control block %s of an orphan cannot be mapped again: "
			"its caches leak", name);
	return cb;
}

uint64_t ctlcap_id_jump(void)
{
	uint32_t r = 0;
	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		r = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid() << 12;
	}
	return (uint64_t)r + 1;
}
