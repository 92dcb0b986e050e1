/* SPDX-License-Identifier: MIT */
/*
 * The requests of the protocol as one table: for each body case of a
 * Request (shmalloc.proto), the daemon's handler, whether a client may send
 * it again to a restarted daemon when the first one died with it unanswered,
 * and whether it carries a root's name (which the daemon checks was not cut
 * short by a NUL: server/dispatch.c).
 *
 * A request may be resent when doing it twice does no harm the caller can
 * see: a refill or a large block the dead daemon handed out is the new
 * daemon's to find again (its recovery), a lookup, a listing or the stats
 * change nothing.  A flush, a free or a publish done twice would free or
 * publish twice; a Hello and a Goodbye belong to one connection.
 *
 * Adding a request: a line here, its handler do_<field>() in
 * server/dispatch.c, its builder in wire.[ch].
 */
#ifndef SHMA_REQUESTS_H
#define SHMA_REQUESTS_H

#include "shmalloc.pb-c.h"

/* XX(CASE, field, may_repeat, name_checked): CASE of
 * SHMA__REQUEST__BODY_<CASE>, field of Shma__Request (and the handler's
 * name), then two 0/1 flags. */
#define SHMA_REQUESTS(XX)                  \
	XX(HELLO, hello, 0, 0)             \
	XX(REFILL, refill, 1, 0)           \
	XX(FLUSH, flush, 0, 0)             \
	XX(ALLOC_LARGE, alloc_large, 1, 0) \
	XX(FREE_LARGE, free_large, 0, 0)   \
	XX(PUBLISH, publish, 0, 1)         \
	XX(LOOKUP, lookup, 1, 1)           \
	XX(UNPUBLISH, unpublish, 0, 1)     \
	XX(STATS, stats, 1, 0)             \
	XX(GOODBYE, goodbye, 0, 0)         \
	XX(ROOTS, roots, 1, 0)             \
	XX(HEAP_CREATE, heap_create, 0, 1) \
	XX(HEAP_OPEN, heap_open, 1, 1)     \
	XX(HEAP_CLOSE, heap_close, 0, 0)   \
	XX(HEAP_DESTROY, heap_destroy, 0, 0) \
	XX(HEAPS, heaps, 1, 0)

/* 1 if a request of this body case may be sent again to a daemon that
 * restarted without answering it (see above), else 0 (an unknown case: 0). */
int shma_request_may_repeat(Shma__Request__BodyCase body_case);

/* 1 if a request of this body case carries a root's name, else 0. */
int shma_request_name_checked(Shma__Request__BodyCase body_case);

/* 1 if body_case is a request of the table, else 0. */
int shma_request_known(Shma__Request__BodyCase body_case);

#endif
