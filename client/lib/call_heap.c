/* SPDX-License-Identifier: MIT */
/*
 * The typed calls of named heaps (call.h): HeapCreate, HeapOpen,
 * HeapClose, HeapDestroy and Heaps of one heap, turned into ids, sizes and
 * errnos for heap.c, which knows no wire type.
 */
#include "config.h"

#include "call.h"
#include "conn.h"

#include <errno.h>
#include <string.h>

/* Sends req and copies the HeapReply into *out: 0 or -errno. */
static int heap_reply(Shma__Request *req, struct call_heap *out)
{
	Shma__Response *resp;
	int rc = conn_call(req, &resp);
	if (rc == 0 && (resp->body_case != SHMA__RESPONSE__BODY_HEAP || resp->heap->heap_id == 0))
		rc = -EPROTO;
	if (rc == 0) {
		out->id = resp->heap->heap_id;
		out->lifetime = resp->heap->lifetime;
		out->max_bytes = resp->heap->max_bytes;
		strncpy(out->name, resp->heap->name != NULL ? resp->heap->name : "",
			sizeof out->name - 1);
		out->name[sizeof out->name - 1] = '\0';
	}
	if (resp != NULL)
		conn_done();
	return rc;
}

int call_heap_create(const char *name, uint32_t lifetime, uint64_t max_bytes,
		     struct call_heap *out)
{
	Shma__Request req;
	Shma__HeapCreate hc;
	shma__request__init(&req);
	shma__heap_create__init(&hc);
	hc.name = (char *)name;
	hc.lifetime = lifetime;
	hc.max_bytes = max_bytes;
	req.body_case = SHMA__REQUEST__BODY_HEAP_CREATE;
	req.heap_create = &hc;
	return heap_reply(&req, out);
}

int call_heap_open(const char *name, struct call_heap *out)
{
	Shma__Request req;
	Shma__HeapOpen ho;
	shma__request__init(&req);
	shma__heap_open__init(&ho);
	ho.name = (char *)name;
	req.body_case = SHMA__REQUEST__BODY_HEAP_OPEN;
	req.heap_open = &ho;
	return heap_reply(&req, out);
}

int call_heap_end(uint64_t id, int destroy)
{
	Shma__Request req;
	Shma__HeapClose hc;
	Shma__HeapDestroy hd;
	shma__request__init(&req);
	if (destroy) {
		shma__heap_destroy__init(&hd);
		hd.heap_id = id;
		req.body_case = SHMA__REQUEST__BODY_HEAP_DESTROY;
		req.heap_destroy = &hd;
	} else {
		shma__heap_close__init(&hc);
		hc.heap_id = id;
		req.body_case = SHMA__REQUEST__BODY_HEAP_CLOSE;
		req.heap_close = &hc;
	}
	Shma__Response *resp;
	int rc = conn_call(&req, &resp);
	if (resp != NULL)
		conn_done();
	return rc;
}

int call_heap_stats(uint64_t id, uint64_t *bytes, uint64_t *blocks, char *name, size_t size)
{
	Shma__Request req;
	Shma__Heaps hs;
	shma__request__init(&req);
	shma__heaps__init(&hs);
	hs.heap_id = id;
	req.body_case = SHMA__REQUEST__BODY_HEAPS;
	req.heaps = &hs;
	Shma__Response *resp;
	int rc = conn_call(&req, &resp);
	if (rc == 0 && (resp->body_case != SHMA__RESPONSE__BODY_HEAPS || resp->heaps->n_heaps != 1 ||
			resp->heaps->heaps[0]->heap_id != id))
		rc = -EPROTO;
	if (rc == 0) {
		const Shma__HeapStats *st = resp->heaps->heaps[0];
		if (bytes != NULL)
			*bytes = st->bytes;
		if (blocks != NULL)
			*blocks = st->blocks;
		if (name != NULL && size > 0) {
			strncpy(name, st->name != NULL ? st->name : "", size - 1);
			name[size - 1] = '\0';
		}
	}
	if (resp != NULL)
		conn_done();
	return rc;
}
