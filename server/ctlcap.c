/* SPDX-License-Identifier: MIT */
/*
 * The cap on a control block's tmpfs: see ctlcap.h.
 */
#include "ctlcap.h"
#include "daemon.h"
#include "log.h"
#include "seg.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

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
