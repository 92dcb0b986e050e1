/* SPDX-License-Identifier: MIT */
/*
 * shma_lookup_wait(): a lookup that waits until the name is published.
 *
 * The daemon parks such a lookup (Lookup.wait_ms; server/lookupwait.c) and
 * answers it at the name's Publish or at the end of the wait, so nobody
 * polls.  The wait does not go over the process's connection: that one is
 * shared by its threads under a lock held while an answer is awaited, and a
 * wait of seconds there would stall every other thread's refills.  So a
 * waiter opens a connection of its own for the wait -- the same checks as
 * the main one (peer_check(), the Hello's version), then Lookup, Goodbye --
 * and holds no lock meanwhile.  What it costs is a connect and a Hello per
 * wait that does not find the name at once; a name already there is
 * answered over the main connection as shma_lookup() does.
 *
 * The daemon is believed no further than elsewhere: each Lookup asks for
 * at most WAIT_CHUNK_MS, and an answer later than that plus the reply
 * timeout ends the wait with -ETIMEDOUT, so a daemon that stopped
 * answering cannot hang the program for longer; a wait longer than a chunk
 * (or for ever, timeout -1) asks again.  The connection of its own is
 * the side connection of the transport (sideconn.c) and the call layer
 * (call_side_*()).
 */
#include "config.h"

#include "call.h"
#include "connerr.h"
#include "shmalloc.h"

#include <errno.h>
#include <stdio.h>

#define WAIT_CHUNK_MS 60000u

SHMA_EXPORT int shma_lookup_wait(const char *name, shma_ref_t *ref, int timeout_ms)
{
	if (timeout_ms < -1 || ref == NULL)
		return -EINVAL;
	int rc = shma_lookup(name, ref);
	if (rc != -ENOENT)
		return rc;
	if (timeout_ms == 0)
		return -ETIMEDOUT;
	char path[108];
	conn_lock();
	snprintf(path, sizeof path, "%s", conn_socket_path());
	conn_unlock();
	struct side_conn *w;
	rc = call_side_open(path, &w);
	if (rc != 0)
		rc = connerr_note(path, rc);
	uint64_t start = monotonic_ms();
	while (rc == 0) {
		uint64_t spent = monotonic_ms() - start;
		uint64_t left = timeout_ms < 0 ? WAIT_CHUNK_MS
				: spent >= (uint64_t)timeout_ms ? 0 : (uint64_t)timeout_ms - spent;
		if (left == 0) {
			rc = -ETIMEDOUT;
			break;
		}
		rc = call_side_lookup(w, name, left < WAIT_CHUNK_MS ? (uint32_t)left : WAIT_CHUNK_MS,
				      ref);
		if (rc != -ETIMEDOUT || call_side_silent(w))
			break;
		rc = 0; /* that chunk ended: ask again for what is left */
	}
	call_side_close(w);
	return rc;
}
