/* SPDX-License-Identifier: MIT */
/*
 * The heap's segments as the daemon hands them over.  The Hello reply
 * carries, by SCM_RIGHTS, the control block's descriptor, then the pages'
 * (read-write) and the metadata's (read-only) -- and, for a library client,
 * its uid's transfer area (xfer.c) -- whatever the daemon's
 * backing (/dev/shm, files in a directory, or memfds, which have no name at
 * all: server/backing.c).  transport.c gives the second and third to
 * backing_keep() as they arrive; maps.c takes them in place of opening the
 * segments by name (which it still does for a daemon that sends none), and
 * whatever the handshake did not use is closed after it (backing_drop()).
 *
 * A reconnection must find the heap we mapped: the same instance and shape
 * (maps.c) is not enough when a new daemon made a new heap under the old
 * name -- a memfd daemon restarted without a descriptor store, or a shm one
 * started with --discard.  So the pages' device and inode, noted at the
 * first map, must be those of the pages passed again (backing_same_heap()).
 */
#include "config.h"

#include "client.h"
#include "distrust.h"
#include "seg.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

/* control block (transport.c keeps it), pages, metadata, the uid's
 * transfer area (xfer.c) */
#define BACKING_SLOTS 4
#define AREA_SLOT 3

static struct {
	int fd[BACKING_SLOTS];
	int noted;         /* dev and ino are the pages we mapped */
	dev_t dev;
	ino_t ino;
} bk = {.fd = {-1, -1, -1, -1}};

int backing_keep(size_t i, int fd)
{
	if (i == 0 || i >= BACKING_SLOTS || bk.fd[i] >= 0)
		return 0;
	bk.fd[i] = fd;
	return 1;
}

int backing_take(int kind)
{
	size_t i = kind == SEG_PAGES ? 1 : kind == SEG_META ? 2 : 0;
	int fd = i ? bk.fd[i] : -1;
	if (i)
		bk.fd[i] = -1;
	return fd;
}

int backing_take_area(void)
{
	int fd = bk.fd[AREA_SLOT];
	bk.fd[AREA_SLOT] = -1;
	return fd;
}

void backing_note_pages(int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return;
	bk.dev = st.st_dev;
	bk.ino = st.st_ino;
	bk.noted = 1;
}

int backing_same_heap(void)
{
	int fd = backing_take(SEG_PAGES);
	if (fd < 0 || !bk.noted)
		goto same; /* a daemon that passes nothing: maps.c's checks alone */
	struct stat st;
	int rc = fstat(fd, &st) == 0 && st.st_dev == bk.dev && st.st_ino == bk.ino ? 0 : -ESTALE;
	if (rc == 0 && !distrust_size_ok(fd, map_view.range))
		rc = -EPROTO; /* cut short since we mapped it: a SIGBUS past the cut */
	close(fd);
	return rc;
same:
	if (fd >= 0)
		close(fd);
	return 0;
}

void backing_drop(void)
{
	for (size_t i = 1; i < BACKING_SLOTS; i++)
		if (bk.fd[i] >= 0) {
			close(bk.fd[i]);
			bk.fd[i] = -1;
		}
}
