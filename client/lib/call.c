/* SPDX-License-Identifier: MIT */
/*
 * The typed daemon calls (call.h): each builds its request (proto/wire.h),
 * sends it over the transport and turns the answer into refs, sizes and
 * errnos.  What comes back is believed only so far: a refill's refs and a
 * large block's ref only once the page map (read-only to us) says they are
 * what the daemon says they are.
 */
#include "config.h"

#include "call.h"
#include "conn.h"
#include "requests.h"
#include "sizeclass.h"

#include <errno.h>

/* Requests that may be sent again when the answer was lost with the
 * connection: at worst the first one's block is out and nobody has it,
 * which is what a daemon killed with a request in flight costs anyway.
 * A Flush, FreeLarge, Publish, Unpublish or Goodbye twice would not be. */
static int may_repeat(const Shma__Request *req)
{
	return shma_request_may_repeat(req->body_case); /* proto/requests.h's table */
}

int conn_call(Shma__Request *req, Shma__Response **resp)
{
	*resp = NULL;
	int rc = conn_ensure();
	if (rc != 0)
		return rc;
	uint64_t id = conn_send(req);
	if (id == 0 && conn_ensure() == 0)
		id = conn_send(req); /* the daemon restarted: nothing was sent yet */
	if (id == 0)
		return -ECONNRESET;
	rc = conn_wait(id, resp);
	if (rc != 0 && *resp == NULL && !conn_connected() && may_repeat(req) &&
	    conn_ensure() == 0) {
		/* The daemon died with our request: ask its successor. */
		id = conn_send(req);
		rc = id ? conn_wait(id, resp) : -ECONNRESET;
	}
	return rc;
}

/* conn_call() for an answer of body case want: 0, -EPROTO for another, or
 * conn_call()'s error; conn_done() is the caller's either way. */
static int call_for(Shma__Request *req, Shma__Response__BodyCase want, Shma__Response **resp)
{
	int rc = conn_call(req, resp);
	if (rc == 0 && (*resp)->body_case != want)
		rc = -EPROTO;
	return rc;
}

/* ---- refills ---- */

/* A ref the daemon sent for an object of size bytes: in the heap's range
 * (its boundary is the daemon's to know; the range is ours to check). */
static int ref_ok(uint64_t ref, uint64_t size)
{
	return ref != 0 && ref < map_view.range && map_view.range - ref >= size;
}

/* A refill's ref, believed only if the page map says it is the start of an
 * object of class cls: not in an arena's metadata pages, past the heap,
 * inside an object or in another class's span.  A divide a ref. */
static int refill_ref_ok(uint64_t ref, unsigned cls)
{
	unsigned c;
	return ref_ok(ref, sizeclass_size(cls)) && map_small_ref(map_ptr(ref), &c, 1) == ref &&
	       c == cls;
}

/* A refill's run of count objects of class cls from first: its first and
 * last objects are objects of one span of the class (count is bounded by
 * the caller). */
static int refill_run_ok(uint64_t first, uint32_t count, unsigned cls)
{
	uint64_t size = sizeclass_size(cls), last = first + (uint64_t)(count - 1) * size;
	if (!refill_ref_ok(first, cls) || !refill_ref_ok(last, cls))
		return 0;
	const struct page_entry *pe = map_page(first);
	if (pe == NULL)
		return 0;
	uint64_t start = (first & ~(map_view.arena_size - 1)) +
			 ((uint64_t)pe->span_start << SHMA_PAGE_SHIFT);
	return last < start + (uint64_t)sizeclass_table[cls].objects * size;
}

/* Where a refill's objects go: to put while it takes them, the rest (all
 * of them when put is NULL) back to the daemon in Flushes. */
struct refill_sink {
	call_put_fn put;
	void *arg;
	size_t nback;
	uint64_t back[WIRE_FLUSH_CHUNK];
};

static void sink_put(struct refill_sink *k, uint64_t ref)
{
	if (k->put != NULL && k->put(k->arg, ref))
		return;
	k->back[k->nback++] = ref;
	if (k->nback == WIRE_FLUSH_CHUNK)
		call_flush(k->back, k->nback), k->nback = 0;
}

/* Every object of refill r of class cls that the page map says is one (runs
 * from the last, so the first ends on top of the bin) into the sink; what
 * is not ours is neither used nor given back. */
static void refill_drain(const Shma__RefillReply *r, unsigned cls, struct refill_sink *k)
{
	uint64_t size = sizeclass_size(cls);
	for (size_t i = r->n_runs; i-- > 0;) {
		const Shma__Run *run = r->runs[i];
		if (run->count == 0 || run->count > WIRE_REFILL_MAX ||
		    !ref_ok(run->first, (uint64_t)run->count * size) ||
		    !refill_run_ok(run->first, run->count, cls))
			continue;
		for (uint32_t j = run->count; j-- > 0;)
			sink_put(k, run->first + (uint64_t)j * size);
	}
	for (size_t i = r->n_refs; i-- > 0;)
		if (refill_ref_ok(r->refs[i], cls))
			sink_put(k, r->refs[i]);
	if (k->nback)
		call_flush(k->back, k->nback);
}

call_ticket call_refill_ask(unsigned slot, unsigned cls, uint32_t count)
{
	Shma__Request req;
	Shma__Refill rf;
	wire_refill(&req, &rf, cls, count, slot + 1);
	return conn_send(&req);
}

int call_connect_refill(unsigned cls, uint32_t count, call_ticket *ticket)
{
	Shma__Request req;
	Shma__Refill rf;
	wire_refill(&req, &rf, cls, count, 1);
	return conn_ensure_behind(&req, ticket);
}

int call_ticket_live(call_ticket ticket)
{
	return conn_id_current(ticket);
}

int call_ticket_ready(call_ticket ticket)
{
	return ticket != 0 && conn_id_current(ticket) && conn_readable();
}

int call_refill_take(call_ticket ticket, unsigned cls, call_put_fn put, void *arg,
		     uint64_t *collected)
{
	struct refill_sink k = {.put = put, .arg = arg};
	Shma__Response *resp;
	int rc = conn_wait(ticket, &resp);
	if (rc == 0 && put == NULL && resp->body_case == SHMA__RESPONSE__BODY_REFILL &&
	    resp->refill->size_class < SIZECLASS_COUNT)
		cls = resp->refill->size_class; /* all goes back: its own class */
	if (rc == 0 && (resp->body_case != SHMA__RESPONSE__BODY_REFILL ||
			resp->refill->size_class != cls))
		rc = -EPROTO;
	if (rc == 0) {
		/* What put does not take (its bin filled with frees since the
		 * refill was asked for) goes back at once. */
		refill_drain(resp->refill, cls, &k);
		/* Taken in now: tell the daemon, before any can be popped
		 * (server/inflight.h). */
		if (collected != NULL)
			__atomic_store_n(collected, ticket, __ATOMIC_RELEASE);
	}
	conn_done();
	return rc;
}

uint64_t call_object(unsigned cls)
{
	Shma__Request req;
	Shma__Refill rf;
	wire_refill(&req, &rf, cls, 1, 0);
	Shma__Response *resp;
	int rc = conn_call(&req, &resp);
	uint64_t ref = 0;
	if (rc == 0 && resp->body_case == SHMA__RESPONSE__BODY_REFILL) {
		const Shma__RefillReply *r = resp->refill;
		ref = r->n_refs ? r->refs[0] : r->n_runs ? r->runs[0]->first : 0;
	}
	if (resp)
		conn_done();
	if (!refill_ref_ok(ref, cls)) {
		errno = rc == 0 ? EPROTO : -rc;
		return 0;
	}
	return ref;
}

/* ---- frees ---- */

static void flush(uint64_t *refs, size_t n, int in_flight)
{
	Shma__Request req;
	Shma__Flush f;
	wire_flush(&req, &f, refs, n, 0);
	f.in_flight = in_flight;
	conn_send(&req);
}

void call_flush(uint64_t *refs, size_t n)
{
	flush(refs, n, 0);
}

void call_flush_heap(uint64_t heap_id, uint64_t *refs, size_t n)
{
	Shma__Request req;
	Shma__Flush f;
	wire_flush(&req, &f, refs, n, 0);
	f.heap_id = heap_id;
	conn_send(&req);
}

call_ticket call_heap_refill_ask(uint64_t heap_id, unsigned cls, uint32_t count)
{
	Shma__Request req;
	Shma__Refill rf;
	wire_refill(&req, &rf, cls, count, 0);
	rf.heap_id = heap_id;
	return conn_send(&req);
}

void call_flush_in_flight(uint64_t *refs, size_t n)
{
	flush(refs, n, 1);
}

/* ---- large blocks ---- */

int call_alloc_large(uint64_t size, uint64_t *ref)
{
	return call_alloc_large_in(0, size, ref);
}

int call_alloc_large_in(uint64_t heap_id, uint64_t size, uint64_t *ref)
{
	Shma__Request req;
	Shma__AllocLarge al;
	wire_alloc_large(&req, &al, size);
	al.heap_id = heap_id;
	Shma__Response *resp;
	int rc = call_for(&req, SHMA__RESPONSE__BODY_ALLOC_LARGE, &resp);
	uint64_t got = 0;
	*ref = 0;
	if (rc == 0) {
		/* Read: the daemon need not take it back if we die now, since the
		 * program may have it soon (server/inflight.h). */
		struct control_block *cb = conn_control();
		if (cb != NULL)
			__atomic_store_n(&cb->hdr.large_collected, req.id, __ATOMIC_RELEASE);
		*ref = resp->alloc_large->ref;
		got = resp->alloc_large->size;
	}
	conn_done();
	if (rc != 0)
		return rc;
	/* Believed once the page map (read-only to us) says it is a block of
	 * that size starting there. */
	uint64_t bref = 0;
	char *start = NULL;
	size_t bsize = 0;
	if (*ref >= map_view.range || !map_large_block(map_ptr(*ref), &bref, &start, &bsize) ||
	    bref != *ref || bsize != got || got < size) {
		if (*ref != 0)
			call_free_large(*ref);
		*ref = 0;
		return -EPROTO;
	}
	return 0;
}

void call_free_large(uint64_t ref)
{
	Shma__Request req;
	Shma__FreeLarge fl;
	wire_free_large(&req, &fl, ref);
	Shma__Response *resp;
	if (conn_call(&req, &resp) == 0 || resp)
		conn_done();
}

void call_free_large_unanswered(uint64_t ref)
{
	Shma__Request req;
	Shma__FreeLarge fl;
	wire_free_large(&req, &fl, ref);
	if (conn_send_unanswered(&req) == 0)
		return;
	Shma__Response *resp;
	if (conn_call(&req, &resp) == 0 || resp)
		conn_done();
}

/* ---- roots, goodbye, stats ---- */

/* Sends a roots request and returns the daemon's verdict (and a ref). */
static int roots_call(Shma__Request *req, uint64_t *ref)
{
	Shma__Response *resp;
	int rc = conn_call(req, &resp);
	if (rc == 0 && ref != NULL) {
		if (resp->body_case == SHMA__RESPONSE__BODY_LOOKUP)
			*ref = resp->lookup->ref;
		else
			rc = -EPROTO;
	}
	if (resp)
		conn_done();
	return rc;
}

int call_publish(const char *name, uint64_t ref)
{
	Shma__Request req;
	Shma__Publish p;
	wire_publish(&req, &p, name, ref);
	return roots_call(&req, NULL);
}

int call_lookup(const char *name, uint64_t *ref)
{
	Shma__Request req;
	Shma__Lookup l;
	wire_lookup(&req, &l, name);
	return roots_call(&req, ref);
}

int call_unpublish(const char *name)
{
	Shma__Request req;
	Shma__Unpublish u;
	wire_unpublish(&req, &u, name);
	return roots_call(&req, NULL);
}

void call_goodbye(void)
{
	Shma__Request req;
	Shma__Goodbye bye;
	wire_goodbye(&req, &bye);
	Shma__Response *resp;
	uint64_t id = conn_send(&req);
	if (id && conn_wait(id, &resp) == 0)
		conn_done();
}

int stats_fetch(Shma__Response **resp)
{
	Shma__Request req;
	Shma__Stats st;
	wire_stats(&req, &st);
	return call_for(&req, SHMA__RESPONSE__BODY_STATS, resp);
}
