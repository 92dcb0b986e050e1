/* SPDX-License-Identifier: MIT */
/*
 * The named heaps' requests: see heaps_req.h, server/heap/heaps.h and
 * doc/architecture.md ("Named heaps").
 */
#include "heaps_req.h"
#include "heaps.h"
#include "log.h"
#include "wire.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* A miss or a name refused: an answer, not a misbehaving client. */
static enum dispatch_action heap_answer_error(Shma__Response *resp, struct dispatch_scratch *s,
					      uint64_t id, int code, const char *what)
{
	dispatch_error(resp, s, id, code, "%s: %s", what, wire_strerror(code));
	return DISPATCH_REPLY;
}

static enum dispatch_action heap_reply(struct daemon *d, Shma__Response *resp,
				       struct dispatch_scratch *s, uint64_t req_id, uint64_t heap)
{
	struct heaps_info info;
	Shma__HeapReply *r = dispatch_scratch_alloc(s, sizeof *r);
	shma__response__init(resp);
	resp->id = req_id;
	if (r == NULL || heaps_info(d->heaps, heap, &info) != 0)
		return DISPATCH_REPLY; /* empty: EPROTO for the client */
	shma__heap_reply__init(r);
	r->heap_id = info.id;
	r->lifetime = info.lifetime;
	r->max_bytes = info.max_bytes;
	r->name = (char *)info.name;
	resp->body_case = SHMA__RESPONSE__BODY_HEAP;
	resp->heap = r;
	return DISPATCH_REPLY;
}

static enum dispatch_action answer_ok(Shma__Response *resp, struct dispatch_scratch *s,
				      uint64_t id)
{
	Shma__Ok *ok = dispatch_scratch_alloc(s, sizeof *ok);
	shma__response__init(resp);
	resp->id = id;
	if (ok == NULL)
		return DISPATCH_REPLY;
	shma__ok__init(ok);
	resp->body_case = SHMA__RESPONSE__BODY_OK;
	resp->ok = ok;
	return DISPATCH_REPLY;
}

/* ---- what each client holds of each heap ---- */

void heaps_req_charge(struct client *c, uint64_t heap_id, uint64_t bytes, uint32_t large)
{
	if (heap_id == 0)
		return;
	int empty = -1;
	for (int i = 0; i < DAEMON_HEAP_CHARGES; i++) {
		if (c->heap_charge[i].heap_id == heap_id) {
			c->heap_charge[i].bytes += bytes;
			c->heap_charge[i].large += large;
			return;
		}
		if (c->heap_charge[i].heap_id == 0 && empty < 0)
			empty = i;
	}
	if (empty >= 0) {
		c->heap_charge[empty].heap_id = heap_id;
		c->heap_charge[empty].bytes = bytes;
		c->heap_charge[empty].large = large;
	}
}

void heaps_req_uncharge(struct client *c, uint64_t heap_id, uint64_t bytes, uint32_t large)
{
	for (int i = 0; heap_id != 0 && i < DAEMON_HEAP_CHARGES; i++) {
		if (c->heap_charge[i].heap_id != heap_id)
			continue;
		c->heap_charge[i].bytes -= bytes < c->heap_charge[i].bytes ? bytes
									  : c->heap_charge[i].bytes;
		c->heap_charge[i].large -= large < c->heap_charge[i].large ? large
									  : c->heap_charge[i].large;
		return;
	}
}

uint64_t heaps_req_owner_heap(uint64_t owner)
{
	const uint64_t tag = SHMA_OWNER_REGION | SHMA_OWNER_HEAP;
	return (owner & tag) == tag ? owner & ~tag : 0;
}

/* After a heap ended (destroyed, its last user gone, its creator dead):
 * every live client's charge of a heap that no longer is comes off it --
 * its bytes and its large blocks, as if it had freed them. */
static void settle_charges(struct daemon *d)
{
	struct heaps_info info;
	for (struct client *c = d->clients; c != NULL; c = c->next) {
		for (int i = 0; i < DAEMON_HEAP_CHARGES; i++) {
			uint64_t id = c->heap_charge[i].heap_id;
			if (id == 0 || heaps_info(d->heaps, id, &info) == 0)
				continue;
			quota_held(c, -(int64_t)c->heap_charge[i].bytes);
			for (uint32_t k = 0; k < c->heap_charge[i].large; k++)
				quota_large_give(c);
			c->heap_charge[i].heap_id = 0;
			c->heap_charge[i].bytes = 0;
			c->heap_charge[i].large = 0;
		}
	}
}

HEAPS_REQ_HANDLER(heap_create)
{
	if (d->heaps == NULL)
		return heap_answer_error(resp, s, req->id, ENOTSUP, "named heaps");
	const Shma__HeapCreate *hc = req->heap_create;
	if (quota_heap_check(d, c) != 0)
		return dispatch_refuse(d, c, resp, s, req->id, EAGAIN,
				   "heap create: --uid-max-roots (heaps and roots count)");
	uint64_t id;
	int rc = heaps_create(d->heaps, hc->name, hc->lifetime, hc->max_bytes, c->id, c->uid,
			      c->pid, (int64_t)time(NULL), &id);
	if (rc != 0)
		return heap_answer_error(resp, s, req->id, -rc, "heap create");
	log_msg(SLOG_DEBUG, "pid %ld: heap %llu made", (long)c->pid, (unsigned long long)id);
	return heap_reply(d, resp, s, req->id, id);
}

HEAPS_REQ_HANDLER(heap_open)
{
	if (d->heaps == NULL)
		return heap_answer_error(resp, s, req->id, ENOTSUP, "named heaps");
	uint64_t id;
	int rc = heaps_find(d->heaps, req->heap_open->name, &id);
	if (rc == 0)
		rc = heaps_user_add(d->heaps, id, c->id);
	if (rc != 0)
		return heap_answer_error(resp, s, req->id, -rc, "heap open");
	return heap_reply(d, resp, s, req->id, id);
}

HEAPS_REQ_HANDLER(heap_close)
{
	if (d->heaps == NULL)
		return heap_answer_error(resp, s, req->id, ENOTSUP, "named heaps");
	uint64_t freed;
	int rc = heaps_user_remove(d->heaps, req->heap_close->heap_id, c->id, &freed);
	if (rc < 0)
		return heap_answer_error(resp, s, req->id, -rc, "heap close");
	if (freed != 0)
		log_msg(SLOG_DEBUG, "heap %llu: its last user closed it, %llu bytes freed",
			(unsigned long long)req->heap_close->heap_id, (unsigned long long)freed);
	settle_charges(d);
	return answer_ok(resp, s, req->id);
}

HEAPS_REQ_HANDLER(heap_destroy)
{
	if (d->heaps == NULL)
		return heap_answer_error(resp, s, req->id, ENOTSUP, "named heaps");
	uint64_t freed;
	int rc = heaps_destroy(d->heaps, req->heap_destroy->heap_id, &freed);
	if (rc < 0)
		return heap_answer_error(resp, s, req->id, -rc, "heap destroy");
	log_msg(SLOG_DEBUG, "pid %ld: heap %llu destroyed, %llu bytes freed", (long)c->pid,
		(unsigned long long)req->heap_destroy->heap_id, (unsigned long long)freed);
	settle_charges(d);
	return answer_ok(resp, s, req->id);
}

static void fill_stats(Shma__HeapStats *hs, const struct heaps_info *info)
{
	shma__heap_stats__init(hs);
	hs->name = (char *)info->name;
	hs->heap_id = info->id;
	hs->lifetime = info->lifetime;
	hs->max_bytes = info->max_bytes;
	hs->bytes = info->bytes;
	hs->blocks = info->blocks;
	hs->processes = info->nusers;
	hs->creator_pid = info->creator_pid;
	hs->creator_uid = info->creator_uid;
	hs->created = info->created;
	hs->spans = info->spans;
	hs->large_count = info->large_count;
}

HEAPS_REQ_HANDLER(heaps)
{
	if (d->heaps == NULL)
		return heap_answer_error(resp, s, req->id, ENOTSUP, "named heaps");
	(void)c;
	uint64_t want = req->heaps->heap_id;
	size_t n = 0;
	uint32_t pos = 0;
	if (want != 0)
		n = 1;
	else
		while (heaps_next(d->heaps, &pos) != 0)
			n++;
	Shma__HeapsReply *r = dispatch_scratch_alloc(s, sizeof *r);
	Shma__HeapStats *hs = dispatch_scratch_alloc(s, n * sizeof *hs);
	Shma__HeapStats **ptrs = dispatch_scratch_alloc(s, n * sizeof *ptrs);
	shma__response__init(resp);
	resp->id = req->id;
	if (r == NULL || hs == NULL || ptrs == NULL)
		return DISPATCH_REPLY;
	shma__heaps_reply__init(r);
	size_t k = 0;
	struct heaps_info info;
	if (want != 0) {
		if (heaps_info(d->heaps, want, &info) != 0)
			return heap_answer_error(resp, s, req->id, ENOENT, "heaps");
		fill_stats(&hs[k], &info);
		ptrs[k] = &hs[k];
		k++;
	} else {
		pos = 0;
		uint64_t id;
		while (k < n && (id = heaps_next(d->heaps, &pos)) != 0) {
			if (heaps_info(d->heaps, id, &info) != 0)
				continue;
			fill_stats(&hs[k], &info);
			ptrs[k] = &hs[k];
			k++;
		}
	}
	r->n_heaps = k;
	r->heaps = ptrs;
	resp->body_case = SHMA__RESPONSE__BODY_HEAPS;
	resp->heaps = r;
	return DISPATCH_REPLY;
}

int heaps_req_region(struct daemon *d, const struct client *c, uint64_t heap_id, uint64_t size,
		     struct heap_region **rg, uint64_t *room)
{
	*rg = c->region;
	*room = UINT64_MAX;
	if (heap_id == 0)
		return 0;
	if (d->heaps == NULL || !heaps_user_has(d->heaps, heap_id, c->id))
		return -ENOENT;
	*rg = heaps_region(d->heaps, heap_id);
	if (*rg == NULL)
		return -ENOMEM;
	*room = heaps_room(d->heaps, heap_id, size);
	return 0;
}

void heaps_req_client_gone(struct daemon *d, uint64_t id)
{
	if (d->heaps == NULL)
		return;
	uint64_t freed;
	unsigned n = heaps_client_gone(d->heaps, id, &freed);
	if (n != 0)
		settle_charges(d);
	if (n != 0)
		log_msg(SLOG_DEBUG, "client %llu: %u heap(s) of its lifetime destroyed, %llu bytes",
			(unsigned long long)id, n, (unsigned long long)freed);
}
