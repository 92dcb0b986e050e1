/*
 * Stats: see stats.h.  Everything comes from counters the daemon keeps,
 * except what a client's caches hold: that is read from its control block
 * (the counts of each thread's bins), which the client writes.  Those counts
 * are only believed up to what the client holds, so a client scribbling on
 * its control block can make its own line wrong, never the totals.
 * Layer: session (no libuv).
 */
#include "stats.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>


static int fill_arenas(struct daemon *d, Shma__StatsReply *r, struct dispatch_scratch *s)
{
	unsigned n = heap_arena_count(d->heap);
	Shma__ArenaStats *a = dispatch_scratch_alloc(s, n * sizeof *a);
	Shma__ArenaStats **p = dispatch_scratch_alloc(s, n * sizeof *p);
	if (!a || !p)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		struct heap_arena_stats hs;
		heap_arena_stats(d->heap, i, &hs);
		shma__arena_stats__init(&a[i]);
		a[i].id = hs.id;
		a[i].size = hs.size;
		a[i].pages = hs.pages;
		a[i].free_pages = hs.free_pages;
		a[i].span_pages = hs.span_pages;
		a[i].largest_free_run = hs.largest_free_run;
		a[i].resident_bytes = hs.resident_bytes;
		a[i].quarantined = hs.quarantined != 0;
		p[i] = &a[i];
	}
	r->n_arenas = n;
	r->arenas = p;
	return 0;
}

static int fill_classes(struct daemon *d, Shma__StatsReply *r, struct dispatch_scratch *s)
{
	Shma__ClassStats *a = dispatch_scratch_alloc(s, SIZECLASS_COUNT * sizeof *a);
	Shma__ClassStats **p = dispatch_scratch_alloc(s, SIZECLASS_COUNT * sizeof *p);
	if (!a || !p)
		return -ENOMEM;
	unsigned k = 0;
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		struct heap_class_stats hs;
		heap_class_stats(d->heap, cls, &hs);
		if (hs.spans == 0 && hs.refills == 0 && hs.flushes == 0)
			continue; /* a class never used says nothing */
		shma__class_stats__init(&a[k]);
		a[k].size_class = cls;
		a[k].size = sizeclass_size(cls);
		a[k].spans = hs.spans;
		a[k].objects_out = hs.objects_out;
		a[k].objects_total = hs.objects_total;
		a[k].refills = hs.refills;
		a[k].flushes = hs.flushes;
		p[k] = &a[k];
		k++;
	}
	r->n_classes = k;
	r->classes = p;
	return 0;
}

/* Bytes sitting in c's thread caches: each in-use slot's bins, count times
 * class size.  At most slots taken * SIZECLASS_COUNT loads. */
static uint64_t client_cached(const struct client *c)
{
	if (c->ctl == NULL)
		return 0;
	uint64_t bytes = 0;
	uint32_t nslots = layout_slots_readable(c->ctl);
	for (unsigned i = 0; i < nslots; i++) {
		const struct control_slot *sl = &c->ctl->slots[i];
		if (!__atomic_load_n(&sl->in_use, __ATOMIC_RELAXED))
			continue;
		for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
			uint32_t n = __atomic_load_n(&sl->bins[cls].count, __ATOMIC_RELAXED);
			bytes += (uint64_t)n * sizeclass_size(cls);
		}
	}
	bytes += daemon_control_xfer_bytes(c->ctl); /* its threads' transfer cache */
	return bytes < c->bytes_held ? bytes : c->bytes_held;
}

void stats_client_counters(const struct client *c, uint64_t *mallocs, uint64_t *waits)
{
	*mallocs = *waits = 0;
	if (c->ctl == NULL)
		return;
	*mallocs = __atomic_load_n(&c->ctl->hdr.retired_mallocs, __ATOMIC_RELAXED);
	*waits = __atomic_load_n(&c->ctl->hdr.retired_waits, __ATOMIC_RELAXED);
	uint32_t nslots = layout_slots_readable(c->ctl);
	for (unsigned i = 0; i < nslots; i++) {
		const struct control_slot *sl = &c->ctl->slots[i];
		if (!__atomic_load_n(&sl->in_use, __ATOMIC_RELAXED))
			continue;
		*mallocs += __atomic_load_n(&sl->mallocs, __ATOMIC_RELAXED);
		*waits += __atomic_load_n(&sl->waits, __ATOMIC_RELAXED);
	}
}

void stats_retire_client(struct daemon *d, const struct client *c)
{
	uint64_t m, w;
	stats_client_counters(c, &m, &w);
	d->retired_mallocs += m;
	d->retired_waits += w;
}

static int fill_clients(struct daemon *d, Shma__StatsReply *r, struct dispatch_scratch *s)
{
	Shma__ClientStats *a = dispatch_scratch_alloc(s, d->nclients * sizeof *a);
	Shma__ClientStats **p = dispatch_scratch_alloc(s, d->nclients * sizeof *p);
	if (!a || !p)
		return -ENOMEM;
	unsigned k = 0;
	for (struct client *c = d->clients; c && k < d->nclients; c = c->next) {
		if (!c->hello_done)
			continue;
		shma__client_stats__init(&a[k]);
		a[k].client_id = c->id;
		a[k].pid = (uint32_t)c->pid;
		a[k].uid = (uint32_t)c->uid;
		a[k].connected_since = c->connected_since;
		a[k].bytes_held = c->bytes_held;
		a[k].requests = c->requests;
		a[k].rejected = c->rejected;
		a[k].name = c->name;
		a[k].cached_bytes = client_cached(c);
		r->cached_bytes += a[k].cached_bytes;
		stats_client_counters(c, &a[k].malloc_calls, &a[k].malloc_waits);
		a[k].region = c->region != NULL;
		a[k].region_bytes = c->region != NULL ? heap_region_bytes(c->region) : 0;
		a[k].same_address = c->ctl != NULL &&
				    __atomic_load_n(&c->ctl->hdr.same_address, __ATOMIC_RELAXED) == 1;
		r->malloc_calls += a[k].malloc_calls;
		r->malloc_waits += a[k].malloc_waits;
		p[k] = &a[k];
		k++;
	}
	r->n_clients = k;
	r->clients = p;
	return 0;
}

int stats_build(struct daemon *d, Shma__Response *resp, struct dispatch_scratch *s)
{
	Shma__StatsReply *r = dispatch_scratch_alloc(s, sizeof *r);
	if (r == NULL)
		return -ENOMEM;
	shma__stats_reply__init(r);
	struct heap_totals t;
	heap_totals(d->heap, &t);
	r->instance = d->opt.instance;
	r->pid = (uint32_t)getpid();
	r->started = d->started;
	r->arena_size = heap_geometry(d->heap)->arena_size;
	r->mapped_bytes = t.mapped_bytes;
	r->resident_bytes = t.resident_bytes;
	r->in_use_bytes = t.in_use_bytes;
	r->peak_in_use_bytes = t.peak_in_use_bytes;
	r->returned_bytes = t.returned_bytes;
	r->max_memory = d->opt.max_memory;
	r->large_count = t.large_count;
	r->large_bytes = t.large_bytes;
	r->requests = d->requests;
	r->rejected = d->rejected;
	r->roots = roots_count(d->roots);
	r->reclaimed_objects = d->reclaimed_objects;
	r->inflight_returned = d->inflight_returned;
	heap_region_totals(d->heap, &r->regions, &r->region_in_use_bytes);
	r->external_fragmentation =
		t.free_pages ? 1.0 - (double)t.largest_free_run / (double)t.free_pages : 0.0;
	r->n_service_ns_histogram = DAEMON_HIST_BUCKETS;
	r->service_ns_histogram = d->hist;
	r->malloc_calls = d->retired_mallocs;
	r->malloc_waits = d->retired_waits;
	if (fill_arenas(d, r, s) || fill_classes(d, r, s) || fill_clients(d, r, s))
		return -ENOMEM;
	resp->body_case = SHMA__RESPONSE__BODY_STATS;
	resp->stats = r;
	return 0;
}
