/* SPDX-License-Identifier: MIT */
/*
 * The dispatcher: every request's validation and effect, in one place.
 *
 * Every field a client sends is checked before it is used: a class index, a
 * count, a size, a name, every ref of a flush.  Errors that leave the
 * connection usable (ENOMEM, ENOENT, a bad ref in a flush) are answered and
 * the connection goes on; errors that say the peer does not speak our
 * protocol (no Hello first, a version or size-class mismatch, an unknown
 * request) are answered and the connection is closed.
 *
 * dispatch_frame() is the whole path from a frame's bytes to the response's
 * bytes, so that everything a peer can make the daemon do is reachable
 * without a socket (tests/fuzz/fuzz_dispatch.c feeds it arbitrary bytes,
 * tests/unit/check_dispatch.c decoded requests).  Layer: session (no libuv).
 */
#include "dispatch.h"
#include "access.h"
#include "control.h"
#include "ctlcap.h"
#include "lookupwait.h"
#include "frame.h"
#include "heaps_req.h"
#include "log.h"
#include "ref.h"
#include "requests.h"
#include "stats.h"
#include "uidarea.h"
#include "wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *dispatch_scratch_alloc(struct dispatch_scratch *s, size_t n)
{
	if (s->nblocks == sizeof s->blocks / sizeof s->blocks[0])
		return NULL;
	void *p = calloc(1, n ? n : 1);
	if (p != NULL)
		s->blocks[s->nblocks++] = p;
	return p;
}

void dispatch_done(struct dispatch_scratch *s)
{
	for (unsigned i = 0; i < s->nblocks; i++)
		free(s->blocks[i]);
	s->nblocks = 0;
}

void dispatch_error(Shma__Response *resp, struct dispatch_scratch *s, uint64_t id,
		    int code, const char *fmt, ...)
{
	Shma__Error *e = dispatch_scratch_alloc(s, sizeof *e);
	shma__response__init(resp);
	resp->id = id;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->message, sizeof s->message, fmt, ap);
	va_end(ap);
	if (e == NULL)
		return; /* an empty response: the client treats it as EPROTO */
	shma__error__init(e);
	e->code = wire_error_code(code);
	e->message = s->message;
	resp->body_case = SHMA__RESPONSE__BODY_ERROR;
	resp->error = e;
}

/* An Error the connection survives; logged once, counted. */
static enum dispatch_action refuse(struct daemon *d, struct client *c, Shma__Response *resp,
				   struct dispatch_scratch *s, uint64_t id, int code,
				   const char *what)
{
	c->rejected++;
	d->rejected++;
	log_msg(SLOG_INFO, "pid %ld: %s: %s", (long)c->pid, what, wire_strerror(code));
	dispatch_error(resp, s, id, code, "%s: %s", what, wire_strerror(code));
	return DISPATCH_REPLY;
}

enum dispatch_action dispatch_refuse(struct daemon *d, struct client *c, Shma__Response *resp,
				     struct dispatch_scratch *s, uint64_t id, int code,
				     const char *what)
{
	return refuse(d, c, resp, s, id, code, what);
}

/* An Error after which the connection closes. */
static enum dispatch_action refuse_close(struct daemon *d, struct client *c,
					 Shma__Response *resp, struct dispatch_scratch *s,
					 uint64_t id, int code, const char *what)
{
	refuse(d, c, resp, s, id, code, what);
	return DISPATCH_REPLY_CLOSE;
}

/*
 * Reply builders, one per response body: each points resp (id set) at a
 * zeroed, initialised body in the scratch and returns it, or NULL when out
 * of scratch -- resp is then an empty response, which the client treats as
 * EPROTO.
 */
static void reply_empty(Shma__Response *resp, uint64_t id)
{
	shma__response__init(resp);
	resp->id = id;
}

static void *reply_body(Shma__Response *resp, struct dispatch_scratch *s, uint64_t id,
			size_t size)
{
	reply_empty(resp, id);
	return dispatch_scratch_alloc(s, size);
}

#define REPLY_BUILDER(CASE, field, type, init)                                              \
	static type *reply_##field(Shma__Response *resp, struct dispatch_scratch *s,          \
				   uint64_t id)                                             \
	{                                                                                   \
		type *body = reply_body(resp, s, id, sizeof *body);                         \
		if (body == NULL)                                                           \
			return NULL;                                                        \
		init(body);                                                                 \
		resp->body_case = SHMA__RESPONSE__BODY_##CASE;                              \
		resp->field = body;                                                         \
		return body;                                                                \
	}
REPLY_BUILDER(HELLO, hello, Shma__HelloReply, shma__hello_reply__init)
REPLY_BUILDER(REFILL, refill, Shma__RefillReply, shma__refill_reply__init)
REPLY_BUILDER(FLUSH, flush, Shma__FlushReply, shma__flush_reply__init)
REPLY_BUILDER(ALLOC_LARGE, alloc_large, Shma__AllocLargeReply, shma__alloc_large_reply__init)
REPLY_BUILDER(OK, ok, Shma__Ok, shma__ok__init)
REPLY_BUILDER(LOOKUP, lookup, Shma__LookupReply, shma__lookup_reply__init)
REPLY_BUILDER(ROOTS, roots, Shma__RootsReply, shma__roots_reply__init)
#undef REPLY_BUILDER

static enum dispatch_action answer_ok(Shma__Response *resp, struct dispatch_scratch *s,
				      uint64_t id)
{
	reply_ok(resp, s, id);
	return DISPATCH_REPLY;
}

/* A client's name is only for logs and listings: odd bytes become '?'. */
static void copy_printable(char *out, size_t size, const char *in)
{
	size_t i = 0;
	for (; in[i] != '\0' && i + 1 < size; i++)
		out[i] = (unsigned char)in[i] < 0x20 || (unsigned char)in[i] >= 0x7f ? '?' : in[i];
	out[i] = '\0';
}

static enum dispatch_action do_hello(struct daemon *d, struct client *c, const Shma__Request *req,
				     Shma__Response *resp, struct dispatch_scratch *s)
{
	const Shma__Hello *h = req->hello;
	if (c->hello_done)
		return refuse_close(d, c, resp, s, req->id, EPROTO, "hello: said twice");
	if (h->version != SHMA_PROTOCOL_VERSION)
		return refuse_close(d, c, resp, s, req->id, EPROTONOSUPPORT,
				    "hello: another protocol version");
	if (h->class_checksum != sizeclass_checksum())
		return refuse_close(d, c, resp, s, req->id, EPROTO,
				    "hello: another size-class table");
	if (h->name != NULL)
		copy_printable(c->name, sizeof c->name, h->name);
	ctlcap_heal_pages(d); /* a client maps 'p' next: whole (ctlcap.h) */
	int adopted = h->previous_client_id != 0 &&
		      daemon_control_adopt(d, c, h->previous_client_id) == 0;
	if (!adopted && quota_orphans_check(d, c) != 0)
		return refuse_close(d, c, resp, s, req->id, EAGAIN,
				    "hello: this user's orphaned control blocks (--uid-max-orphans)");
	if (!adopted) {
		int rc = daemon_control_create(d, c);
		if (rc != 0)
			return refuse_close(d, c, resp, s, req->id, -rc, "hello: control block");
	}
	if (h->region) {
		/* Its own heap, which dies with it (heap.h: Regions); without
		 * one (no memory for it) it is served as a library client. */
		c->region = heap_region(d->heap, c->id, 1);
		if (c->region == NULL)
			log_msg(SLOG_WARN, "client %llu: no region (out of memory): its blocks "
				"outlive it", (unsigned long long)c->id);
	}
	if (!adopted && h->first_batches && !c->observer) /* an observer allocates nothing */
		daemon_control_prefill(d, c); /* its first batches, in the block */
	uidarea_join(d, c); /* its uid's transfer area, passed with the reply */
	c->hello_done = 1;
	Shma__HelloReply *r = reply_hello(resp, s, req->id);
	if (r == NULL)
		return refuse_close(d, c, resp, s, req->id, ENOMEM, "hello");
	const struct arena_geometry *g = heap_geometry(d->heap);
	const struct heap_header *hh = heap_header(d->heap);
	r->version = SHMA_PROTOCOL_VERSION;
	r->instance = d->opt.instance;
	r->arena_size = g->arena_size;
	r->max_arenas = hh->max_arenas;
	r->heap_base = __atomic_load_n(&hh->base, __ATOMIC_ACQUIRE);
	r->heap_range = hh->range;
	r->decay_ms = d->opt.decay_ms;
	r->daemon_life = d->life;
	r->large_threshold = d->opt.large_threshold;
	r->nclasses = SIZECLASS_COUNT;
	r->client_id = c->id;
	r->control_slots = SHMA_CONTROL_SLOTS;
	r->max_frame = d->opt.max_frame;
	r->meta_bytes = (uint32_t)g->meta_bytes;
	log_msg(SLOG_DEBUG, "client %llu %s: pid %ld uid %lu%s%s%s", (unsigned long long)c->id,
		adopted ? "reconnected, its control block re-adopted" : "connected",
		(long)c->pid, (unsigned long)c->uid, c->name[0] ? " name " : "", c->name,
		c->region ? ", a region" : "");
	return DISPATCH_REPLY;
}

static enum dispatch_action do_refill(struct daemon *d, struct client *c, const Shma__Request *req,
				      Shma__Response *resp, struct dispatch_scratch *s)
{
	const Shma__Refill *rf = req->refill;
	/* Requests below --large-threshold are small: a class serves them if
	 * the smallest request it takes is below the threshold. */
	if (rf->size_class >= SIZECLASS_COUNT ||
	    (rf->size_class > 0 && sizeclass_size(rf->size_class - 1) + 1 >= d->opt.large_threshold))
		return refuse(d, c, resp, s, req->id, EINVAL, "refill: no such size class");
	if (rf->count == 0)
		return refuse(d, c, resp, s, req->id, EINVAL, "refill: count 0");
	uint64_t size = sizeclass_size(rf->size_class);
	uint64_t want = rf->count < WIRE_REFILL_MAX ? rf->count : WIRE_REFILL_MAX;
	if (want * size > WIRE_REFILL_BYTES_MAX)
		want = WIRE_REFILL_BYTES_MAX / size ? WIRE_REFILL_BYTES_MAX / size : 1;
	uint64_t room = quota_room(d, c, size), heap_room;
	if (want > room)
		want = room;
	if (want == 0)
		return refuse(d, c, resp, s, req->id, ENOMEM, "refill: --client-max-memory");
	struct heap_region *rg;
	int hrc = heaps_req_region(d, c, rf->heap_id, size, &rg, &heap_room);
	if (hrc != 0)
		return refuse(d, c, resp, s, req->id, -hrc, "refill: heap");
	if (want > heap_room)
		want = heap_room;
	if (want == 0)
		return refuse(d, c, resp, s, req->id, ENOMEM, "refill: the heap's max_bytes");
	struct heap_batch b = {0};
	b.refs_cap = (uint32_t)want;
	b.runs_cap = WIRE_RUNS_MAX;
	b.refs = dispatch_scratch_alloc(s, want * sizeof *b.refs);
	b.runs = dispatch_scratch_alloc(s, WIRE_RUNS_MAX * sizeof *b.runs);
	Shma__RefillReply *r = reply_refill(resp, s, req->id);
	Shma__Run *runs = dispatch_scratch_alloc(s, WIRE_RUNS_MAX * sizeof *runs);
	Shma__Run **run_ptrs = dispatch_scratch_alloc(s, WIRE_RUNS_MAX * sizeof *run_ptrs);
	if (!b.refs || !b.runs || !r || !runs || !run_ptrs)
		return refuse(d, c, resp, s, req->id, ENOMEM, "refill");
	int n = heap_refill(d->heap, rg, rf->size_class, (uint32_t)want, &b);
	if (n < 0)
		return refuse(d, c, resp, s, req->id, -n, "refill");
	if (rf->slot != 0)
		inflight_note(&c->inflight, rf->slot - 1, rf->size_class, req->id, &b);
	quota_held(c, (int64_t)((uint64_t)n * size));
	heaps_req_charge(c, rf->heap_id, (uint64_t)n * size, 0);
	r->size_class = rf->size_class;
	r->n_refs = b.nrefs;
	r->refs = b.refs;
	for (uint32_t i = 0; i < b.nruns; i++) {
		shma__run__init(&runs[i]);
		runs[i].first = b.runs[i].first;
		runs[i].count = b.runs[i].count;
		run_ptrs[i] = &runs[i];
	}
	r->n_runs = b.nruns;
	r->runs = run_ptrs;
	return DISPATCH_REPLY;
}

static const char *free_error(int rc)
{
	return rc == -ESTALE    ? "not an object of the named heap (destroyed?)"
	       : rc == -EALREADY ? "double free (object is not out)"
	       : rc == -EUCLEAN ? "its arena is quarantined (the object stays out)"
				: "not an object of this heap";
}

static enum dispatch_action do_flush(struct daemon *d, struct client *c, const Shma__Request *req,
				     Shma__Response *resp, struct dispatch_scratch *s)
{
	const Shma__Flush *f = req->flush;
	uint32_t accepted = 0, rejected = 0;
	int first_rc = 0;
	uint64_t first_ref = 0;
	for (size_t i = 0; i < f->n_refs; i++) {
		unsigned cls;
		int rc = f->heap_id == 0 || heap_object_owner(d->heap, f->refs[i]) ==
						    (SHMA_OWNER_REGION | SHMA_OWNER_HEAP | f->heap_id)
				 ? heap_free_object(d->heap, f->refs[i], &cls)
				 : -ESTALE;
		if (rc == 0) {
			uint64_t size = sizeclass_size(cls);
			stats_freed_by(d, c, size, 0);
			quota_held(c, -(int64_t)size);
			heaps_req_uncharge(c, f->heap_id, size, 0);
			accepted++;
			continue;
		}
		if (rejected++ == 0) {
			first_rc = rc;
			first_ref = f->refs[i];
		}
	}
	if (f->in_flight)
		d->inflight_returned += accepted;
	if (rejected) {
		c->rejected += rejected;
		d->rejected += rejected;
		log_msg(SLOG_WARN, "pid %ld: flush: %u of %zu refs rejected (first 0x%llx: %s)",
			(long)c->pid, rejected, f->n_refs, (unsigned long long)first_ref,
			free_error(first_rc));
	}
	if (!f->want_reply)
		return DISPATCH_NONE;
	Shma__FlushReply *r = reply_flush(resp, s, req->id);
	if (r != NULL) {
		r->accepted = accepted;
		r->rejected = rejected;
	}
	return DISPATCH_REPLY;
}

static enum dispatch_action do_alloc_large(struct daemon *d, struct client *c,
					   const Shma__Request *req, Shma__Response *resp,
					   struct dispatch_scratch *s)
{
	uint64_t size = req->alloc_large->size;
	if (size == 0 || size > REF_RANGE_MAX)
		return refuse(d, c, resp, s, req->id, size ? ENOMEM : EINVAL, "alloc large");
	if (d->opt.client_max_memory && quota_room(d, c, size) == 0)
		return refuse(d, c, resp, s, req->id, ENOMEM, "alloc large: --client-max-memory");
	if (quota_large_take(d, c) != 0)
		return refuse(d, c, resp, s, req->id, EAGAIN, "alloc large: --uid-max-large");
	uint64_t ref, seg_size, heap_room;
	struct heap_region *rg;
	int rc = heaps_req_region(d, c, req->alloc_large->heap_id,
				  (size + SHMA_PAGE_SIZE - 1) & ~(uint64_t)(SHMA_PAGE_SIZE - 1), &rg,
				  &heap_room);
	if (rc == 0 && heap_room == 0)
		rc = -ENOMEM;
	if (rc == 0)
		rc = heap_alloc_large(d->heap, rg, size, c->id, &ref, &seg_size);
	if (rc != 0) {
		quota_large_give(c);
		return refuse(d, c, resp, s, req->id, -rc, "alloc large");
	}
	quota_held(c, (int64_t)seg_size);
	heaps_req_charge(c, req->alloc_large->heap_id, seg_size, 1);
	d->large_requested_bytes += size;
	d->large_granted_bytes += seg_size;
	inflight_note_large(&c->inflight, req->id, ref);
	Shma__AllocLargeReply *r = reply_alloc_large(resp, s, req->id);
	if (r == NULL) {
		heap_free_large(d->heap, ref, NULL);
		quota_held(c, -(int64_t)seg_size);
		heaps_req_uncharge(c, req->alloc_large->heap_id, seg_size, 1);
		quota_large_give(c);
		return refuse(d, c, resp, s, req->id, ENOMEM, "alloc large");
	}
	r->ref = ref;
	r->size = seg_size;
	return DISPATCH_REPLY;
}

static enum dispatch_action do_free_large(struct daemon *d, struct client *c,
					  const Shma__Request *req, Shma__Response *resp,
					  struct dispatch_scratch *s)
{
	uint64_t size, owner = heap_large_owner(d->heap, req->free_large->ref);
	int rc = heap_free_large(d->heap, req->free_large->ref, &size);
	if (rc != 0)
		return refuse(d, c, resp, s, req->id, -rc, "free large");
	stats_freed_by(d, c, size, owner);
	quota_held(c, -(int64_t)size);
	heaps_req_uncharge(c, heaps_req_owner_heap(owner), size, 1);
	quota_large_give(c);
	return answer_ok(resp, s, req->id);
}

static enum dispatch_action do_publish(struct daemon *d, struct client *c, const Shma__Request *req,
				       Shma__Response *resp, struct dispatch_scratch *s)
{
	const Shma__Publish *p = req->publish;
	int rc = rootname_check(p->name);
	/* A root names a live block: a small object (its start) or any byte of
	 * a large block. */
	if (rc == 0 && heap_object_class(d->heap, p->ref) < 0 &&
	    heap_large_size(d->heap, p->ref, NULL) == 0)
		rc = -EINVAL;
	if (rc == 0 && quota_root_check(d, c) != 0)
		return refuse(d, c, resp, s, req->id, EAGAIN, "publish: --uid-max-roots");
	if (rc == 0)
		rc = roots_publish_as(d->roots, p->name, p->ref, c->uid);
	if (rc != 0)
		return refuse(d, c, resp, s, req->id, -rc, "publish");
	quota_root_published(d, c, p->name);
	lookupwait_published(d, p->name, p->ref);
	return answer_ok(resp, s, req->id);
}

static enum dispatch_action do_lookup(struct daemon *d, struct client *c, const Shma__Request *req,
				      Shma__Response *resp, struct dispatch_scratch *s)
{
	uint64_t ref = 0;
	(void)c;
	int rc = rootname_check(req->lookup->name);
	if (rc == 0)
		rc = roots_lookup(d->roots, req->lookup->name, &ref);
	if (rc == -ENOENT && req->lookup->wait_ms != 0)
		return lookupwait_park(d, c, req->id, req->lookup->name, req->lookup->wait_ms, resp, s);
	if (rc != 0) {
		/* A miss is an answer, not a misbehaving client: not counted. */
		dispatch_error(resp, s, req->id, -rc, "lookup: %s", wire_strerror(rc));
		return DISPATCH_REPLY;
	}
	Shma__LookupReply *r = reply_lookup(resp, s, req->id);
	if (r != NULL)
		r->ref = ref;
	return DISPATCH_REPLY;
}

static enum dispatch_action do_unpublish(struct daemon *d, struct client *c,
					 const Shma__Request *req, Shma__Response *resp,
					 struct dispatch_scratch *s)
{
	int rc = rootname_check(req->unpublish->name);
	if (rc == 0)
		rc = roots_unpublish(d->roots, req->unpublish->name);
	if (rc == 0)
		quota_root_gone(d, req->unpublish->name);
	if (rc != 0) {
		(void)c;
		dispatch_error(resp, s, req->id, -rc, "unpublish: %s", wire_strerror(rc));
		return DISPATCH_REPLY;
	}
	return answer_ok(resp, s, req->id);
}

static enum dispatch_action do_roots(struct daemon *d, struct client *c,
				     const Shma__Request *req, Shma__Response *resp,
				     struct dispatch_scratch *s)
{
	(void)c;
	unsigned n = roots_count(d->roots);
	Shma__Root *roots = dispatch_scratch_alloc(s, n * sizeof *roots);
	Shma__Root **ptrs = dispatch_scratch_alloc(s, n * sizeof *ptrs);
	Shma__RootsReply *r = roots && ptrs ? reply_roots(resp, s, req->id) : NULL;
	if (r == NULL) {
		reply_empty(resp, req->id);
		return DISPATCH_REPLY;
	}
	unsigned k = 0;
	for (unsigned i = 0; k < n && i < roots_capacity(d->roots); i++) {
		const char *name;
		uint64_t ref;
		if (roots_get(d->roots, i, &name, &ref) != 0)
			continue;
		shma__root__init(&roots[k]);
		roots[k].name = (char *)name;
		roots[k].ref = ref;
		ptrs[k] = &roots[k];
		k++;
	}
	r->n_roots = k;
	r->roots = ptrs;
	return DISPATCH_REPLY;
}

static enum dispatch_action do_stats(struct daemon *d, struct client *c,
				     const Shma__Request *req, Shma__Response *resp,
				     struct dispatch_scratch *s)
{
	reply_empty(resp, req->id);
	if (stats_build(d, resp, s) != 0)
		return refuse(d, c, resp, s, req->id, ENOMEM, "stats");
	return DISPATCH_REPLY;
}

static enum dispatch_action do_goodbye(struct daemon *d, struct client *c,
				       const Shma__Request *req, Shma__Response *resp,
				       struct dispatch_scratch *s)
{
	(void)d;
	c->said_goodbye = 1;
	reply_ok(resp, s, req->id);
	return DISPATCH_REPLY_CLOSE;
}

typedef enum dispatch_action handler_fn(struct daemon *d, struct client *c,
					const Shma__Request *req, Shma__Response *resp,
					struct dispatch_scratch *s);

/* The handler of each request (proto/requests.h), by body case. */
static handler_fn *const handlers[] = {
#define XX(CASE, field, may_repeat, name_checked) [SHMA__REQUEST__BODY_##CASE] = do_##field,
	SHMA_REQUESTS(XX)
#undef XX
};

/* The client says where it mapped the heap once it has: logged at its first
 * request after that (its word: display only). */
static void log_mapping(struct client *c)
{
	if (c->mapping_logged || c->ctl == NULL)
		return;
	uint32_t at = __atomic_load_n(&c->ctl->hdr.same_address, __ATOMIC_RELAXED);
	if (at == 2)
		log_msg(SLOG_WARN, "client %llu (pid %ld) could not map the heap at its base: "
			"refs work there, raw pointers of other processes do not",
			(unsigned long long)c->id, (long)c->pid);
	c->mapping_logged = at != 0;
}

enum dispatch_action dispatch_request(struct daemon *d, struct client *c,
				      const Shma__Request *req, Shma__Response *resp,
				      struct dispatch_scratch *s)
{
	Shma__Request__BodyCase bc = req->body_case;
	handler_fn *h = shma_request_known(bc) && (size_t)bc < sizeof handlers / sizeof handlers[0]
				? handlers[bc] : NULL;
	if (bc == SHMA__REQUEST__BODY_HELLO)
		return do_hello(d, c, req, resp, s);
	if (!c->hello_done)
		return refuse_close(d, c, resp, s, req->id, EPROTO, "request before hello");
	if (c->observer && !access_observer_may(req->body_case))
		return refuse(d, c, resp, s, req->id, EACCES,
			      "root is not in --allow-uid: it may only read stats and roots");
	log_mapping(c);
	if (h == NULL)
		return refuse_close(d, c, resp, s, req->id, EPROTO, "unknown request");
	return h(d, c, req, resp, s);
}

/*
 * A string field holding a NUL decodes as a C string cut at the NUL, so
 * "ab\0cd" would name the root "ab".  Such a request packs again shorter
 * than it came: for the requests that carry a root's name
 * (proto/requests.h), a different size is refused.  (protobuf-c keeps
 * unknown fields, so a newer client's extra fields do not trip this; only a
 * NUL, a field sent twice or an overlong varint do, and no encoder sends
 * those.)
 */
static int name_cut_short(const Shma__Request *req, uint32_t len)
{
	return shma_request_name_checked(req->body_case) &&
	       shma__request__get_packed_size(req) != len;
}

/* protobuf-c's allocations while a frame is decoded: a bump arena the
 * daemon's one thread reuses frame after frame (rewound once the request is
 * freed), so a Refill or a Flush costs no malloc and free per field; what
 * does not fit (a Flush past 32k refs) goes to malloc.  Issue 22 item 5: the
 * allocator's malloc and free were 5% of the daemon under 64 clients. */
#define UNPACK_ARENA_BYTES ((size_t)256 << 10)
static _Alignas(16) uint8_t unpack_arena[UNPACK_ARENA_BYTES];
static size_t unpack_used;

static int in_unpack_arena(const void *p)
{
	uintptr_t a = (uintptr_t)p, lo = (uintptr_t)unpack_arena;
	return a >= lo && a < lo + UNPACK_ARENA_BYTES;
}

static void *unpack_alloc(void *ctx, size_t n)
{
	(void)ctx;
	size_t need = (n + 15) & ~(size_t)15;
	if (need >= n && need <= UNPACK_ARENA_BYTES - unpack_used) {
		void *p = unpack_arena + unpack_used;
		unpack_used += need;
		return p;
	}
	return malloc(n);
}

static void unpack_free(void *ctx, void *p)
{
	(void)ctx;
	if (!in_unpack_arena(p))
		free(p);
}

static ProtobufCAllocator unpack_allocator = {unpack_alloc, unpack_free, NULL};

static void request_free(Shma__Request *req)
{
	shma__request__free_unpacked(req, &unpack_allocator);
	unpack_used = 0;
}

int dispatch_pack(const Shma__Response *resp, uint8_t **frame, size_t *frame_len)
{
	size_t n = shma__response__get_packed_size(resp);
	uint8_t *f = malloc(FRAME_HEADER + n);
	if (f == NULL)
		return -ENOMEM;
	frame_put_header(f, (uint32_t)n);
	shma__response__pack(resp, f + FRAME_HEADER);
	*frame = f;
	*frame_len = FRAME_HEADER + n;
	return 0;
}

enum dispatch_action dispatch_frame(struct daemon *d, struct client *c, const uint8_t *body,
				    uint32_t len, uint8_t **frame, size_t *frame_len)
{
	Shma__Response resp;
	struct dispatch_scratch s = {0};
	enum dispatch_action act;
	*frame = NULL;
	*frame_len = 0;
	Shma__Request *req = shma__request__unpack(&unpack_allocator, len, body);
	if (req == NULL) {
		unpack_used = 0;
		act = refuse_close(d, c, &resp, &s, 0, EPROTO, "message does not decode as a Request");
	} else if (name_cut_short(req, len)) {
		act = refuse(d, c, &resp, &s, req->id, EINVAL,
			     "name holds a NUL byte (or the request is not canonically encoded)");
		request_free(req);
	} else {
		act = dispatch_request(d, c, req, &resp, &s);
		request_free(req);
		c->requests++;
		d->requests++;
	}
	if (act != DISPATCH_NONE && dispatch_pack(&resp, frame, frame_len) != 0)
		act = DISPATCH_REPLY_CLOSE;
	dispatch_done(&s);
	return act;
}
