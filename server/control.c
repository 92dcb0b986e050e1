/*
 * Control blocks: one shared segment per connected client that holds the
 * heads and counts of its thread caches (shm/layout.h).  The daemon creates
 * it at the handshake, so that the daemon -- not the client -- knows where a
 * client's cached blocks are when the client dies without a goodbye.
 */
#include "daemon.h"
#include "log.h"
#include "seg.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int daemon_control_create(struct daemon *d, struct client *c)
{
	char name[SEG_NAME_MAX];
	int rc = seg_name(name, sizeof name, d->opt.instance, 'c', c->id);
	if (rc != 0)
		return rc;
	seg_unlink(name); /* left over from a daemon that died: ids restart */
	int fd = seg_create(name, sizeof(struct control_block), d->opt.segment_mode);
	if (fd < 0)
		return fd;
	rc = seg_reserve(fd, 0, sizeof(struct control_block));
	void *p = rc == 0 ? seg_map(fd, 0, sizeof(struct control_block), 1, NULL) : NULL;
	if (p == NULL) {
		rc = rc ? rc : -errno;
		close(fd);
		seg_unlink(name);
		return rc;
	}
	struct control_block *cb = p;
	cb->hdr.layout_version = SHMA_LAYOUT_VERSION;
	cb->hdr.nslots = SHMA_CONTROL_SLOTS;
	cb->hdr.client_id = c->id;
	cb->hdr.pid = (uint32_t)c->pid;
	cb->hdr.nclasses = SIZECLASS_COUNT;
	__atomic_store_n(&cb->hdr.magic, SHMA_CONTROL_MAGIC, __ATOMIC_RELEASE);
	c->ctl_fd = fd;
	c->ctl = cb;
	return 0;
}

uint64_t daemon_control_release(struct daemon *d, struct client *c, int reclaim)
{
	if (c->ctl == NULL)
		return 0;
	uint64_t back = 0;
	(void)reclaim; /* taking back a dead client's caches: see issue "recovery" */
	char name[SEG_NAME_MAX];
	munmap(c->ctl, sizeof(struct control_block));
	close(c->ctl_fd);
	if (seg_name(name, sizeof name, d->opt.instance, 'c', c->id) == 0)
		seg_unlink(name);
	c->ctl = NULL;
	c->ctl_fd = -1;
	d->reclaimed_objects += back;
	return back;
}
