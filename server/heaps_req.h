/* SPDX-License-Identifier: MIT */
/*
 * The named heaps' requests (proto/requests.h: HeapCreate, HeapOpen,
 * HeapClose, HeapDestroy, Heaps) and the heap side of Refill and AllocLarge.
 * Layer: session.
 */
#ifndef SHMA_SERVER_HEAPS_REQ_H
#define SHMA_SERVER_HEAPS_REQ_H

#include "dispatch.h"

#define HEAPS_REQ_HANDLER(field)                                                           \
	enum dispatch_action do_##field(struct daemon *d, struct client *c,                 \
					const Shma__Request *req, Shma__Response *resp,     \
					struct dispatch_scratch *s)
HEAPS_REQ_HANDLER(heap_create);
HEAPS_REQ_HANDLER(heap_open);
HEAPS_REQ_HANDLER(heap_close);
HEAPS_REQ_HANDLER(heap_destroy);
HEAPS_REQ_HANDLER(heaps);

/* The region a Refill or AllocLarge of heap_id takes from (c's own region
 * for heap 0), and *room how many of size bytes it may take (UINT64_MAX: no
 * limit of the heap's).  0, or -ENOENT when c does not have heap_id open. */
int heaps_req_region(struct daemon *d, const struct client *c, uint64_t heap_id, uint64_t size,
		     struct heap_region **rg, uint64_t *room);

/* What c took of heap_id (bytes, and large blocks: 1 or 0) is charged to
 * it apart, and what it gives back of it (a Flush of the heap, a FreeLarge
 * of one of its blocks) comes off; heap_id 0 is no heap's: nothing.  Past
 * DAEMON_HEAP_CHARGES heaps at once a client's further ones are not kept
 * apart (their bytes stay on it when they end, as before). */
void heaps_req_charge(struct client *c, uint64_t heap_id, uint64_t bytes, uint32_t large);
void heaps_req_uncharge(struct client *c, uint64_t heap_id, uint64_t bytes, uint32_t large);
/* The heap a block's owner word names (SHMA_OWNER_HEAP), or 0. */
uint64_t heaps_req_owner_heap(uint64_t owner);

/* Client id is gone for good (control.c): its heaps closed, the heaps of
 * its process lifetime destroyed. */
void heaps_req_client_gone(struct daemon *d, uint64_t id);

#endif
