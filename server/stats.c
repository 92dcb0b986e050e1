/* SPDX-License-Identifier: MIT */
/*
 * Stats: see stats.h.  Everything comes from counters the daemon keeps,
 * except what a client's caches hold: that is read from its control block
 * (the counts of each thread's bins), which the client writes.  Those counts
 * are only believed up to what the client holds, so a client scribbling on
 * its control block can make its own line wrong, never the totals.  The
 * fields are proto/stats_fields.h's: those whose source is the heap's stats
 * struct, the daemon or the client (same name) are copied by expanding the
 * list; the rest (source SELF) are written out here.
 * Layer: session (no libuv).
 */
#include "stats.h"
#include "stats_fields.h"

#include "control.h"
#include "guard.h"
#include "quota.h"
#include "uidarea.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Copies field m from src when the list says it comes from there. */
#define COPY_HEAP(dst, hs, d, c, m) (dst)->m = (hs)->m;
#define COPY_DAEMON(dst, hs, d, c, m) (dst)->m = (d)->m;
#define COPY_CLIENT(dst, hs, d, c, m) (dst)->m = (c)->m;
#define COPY_SELF(dst, hs, d, c, m)
#define COPY(m, kind, src, json, label, line, prom, help) COPY_##src(dst, hs, d, c, m)

static void copy_arena(Shma__ArenaStats *dst, const struct heap_arena_stats *hs)
{
	const void *d = NULL, *c = NULL;
	(void)d, (void)c;
	ARENA_STATS_FIELDS(COPY)
}

static void copy_class(Shma__ClassStats *dst, const struct heap_class_stats *hs)
{
	const void *d = NULL, *c = NULL;
	(void)d, (void)c;
	CLASS_STATS_FIELDS(COPY)
}

static void copy_client(Shma__ClientStats *dst, struct client *c)
{
	const void *d = NULL, *hs = NULL;
	(void)d, (void)hs;
	CLIENT_STATS_FIELDS(COPY)
}

/* Adds, per class, the allocations and bytes asked for that c's slots
 * counted (every slot ever taken: a slot's counts outlive its threads). */
static void client_class_counts(const struct client *c, uint64_t *mallocs,
				uint64_t *requested)
{
	if (c->ctl == NULL)
		return;
	uint32_t nslots = guard_slots_readable(c->ctl_fd, c->ctl);
	for (unsigned i = 0; i < nslots; i++) {
		const struct control_slot *sl = &c->ctl->slots[i];
		for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
			mallocs[cls] += __atomic_load_n(&sl->class_mallocs[cls], __ATOMIC_RELAXED);
			requested[cls] += __atomic_load_n(&sl->class_requested[cls], __ATOMIC_RELAXED);
		}
	}
}

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
		copy_arena(&a[i], &hs);
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
	uint64_t m[SIZECLASS_COUNT], req[SIZECLASS_COUNT];
	memcpy(m, d->retired_class_mallocs, sizeof m);
	memcpy(req, d->retired_class_requested, sizeof req);
	for (struct client *c = d->clients; c != NULL; c = c->next)
		if (c->hello_done)
			client_class_counts(c, m, req);
	unsigned k = 0;
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		struct heap_class_stats hs;
		heap_class_stats(d->heap, cls, &hs);
		r->malloc_requested_bytes += req[cls];
		r->malloc_granted_bytes += m[cls] * sizeclass_size(cls);
		if (hs.spans == 0 && hs.refills == 0 && hs.flushes == 0 && m[cls] == 0)
			continue; /* a class never used says nothing */
		shma__class_stats__init(&a[k]);
		a[k].size_class = cls;
		a[k].size = sizeclass_size(cls);
		copy_class(&a[k], &hs);
		a[k].malloc_calls = m[cls];
		a[k].malloc_requested_bytes = req[cls];
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
	uint32_t nslots = guard_slots_readable(c->ctl_fd, c->ctl);
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
	uint32_t nslots = guard_slots_readable(c->ctl_fd, c->ctl);
	for (unsigned i = 0; i < nslots; i++) {
		const struct control_slot *sl = &c->ctl->slots[i];
		if (!__atomic_load_n(&sl->in_use, __ATOMIC_RELAXED))
			continue;
		*mallocs += __atomic_load_n(&sl->mallocs, __ATOMIC_RELAXED);
		*waits += __atomic_load_n(&sl->waits, __ATOMIC_RELAXED);
	}
	/* Small allocations are counted per class in the bins. */
	uint64_t m[SIZECLASS_COUNT] = {0}, req[SIZECLASS_COUNT] = {0};
	client_class_counts(c, m, req);
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++)
		*mallocs += m[cls];
}

/* ---- former clients: memory held for clients that are gone ---- */

/* One client whose connection ended with bytes out, oldest first; past
 * FORMER_MAX the oldest are summed into one of pid 0 (d->formers' head). */
struct former {
	struct former *next;
	uint64_t id;
	pid_t pid;
	uid_t uid;
	char name[64];
	int64_t connected_since, ended;
	uint64_t bytes;
	int unsettled;
};

#define FORMER_MAX 64

static struct former *former_find(struct daemon *d, uint64_t id)
{
	for (struct former *f = d->formers; f != NULL; f = f->next)
		if (f->id == id && f->pid != 0)
			return f;
	return NULL;
}

int stats_former_of(const struct daemon *d, uint64_t id, pid_t *pid, uid_t *uid,
		    int64_t *connected_since)
{
	const struct former *f = former_find((struct daemon *)d, id);
	if (f == NULL)
		return -ENOENT;
	*pid = f->pid;
	*uid = f->uid;
	*connected_since = f->connected_since;
	return 0;
}

static void former_unlink(struct daemon *d, struct former *gone)
{
	for (struct former **p = &d->formers; *p != NULL; p = &(*p)->next)
		if (*p == gone) {
			*p = gone->next;
			free(gone);
			return;
		}
}

/* Past FORMER_MAX, the two oldest become one of pid 0 ("others"). */
static void former_trim(struct daemon *d)
{
	unsigned n = 0;
	for (struct former *f = d->formers; f != NULL; f = f->next)
		n++;
	if (n <= FORMER_MAX)
		return;
	struct former *a = d->formers, *b = a->next;
	/* Summed, they are no one's to settle: their caches, if any, still
	 * come off in_use when taken back, not off this line. */
	b->bytes += a->bytes;
	b->unsettled = 0;
	b->id = 0;
	b->pid = 0;
	b->uid = 0;
	snprintf(b->name, sizeof b->name, "(older clients)");
	if (a->connected_since < b->connected_since)
		b->connected_since = a->connected_since;
	d->formers = b;
	free(a);
}

static void former_add(struct daemon *d, const struct client *c)
{
	struct former *f = calloc(1, sizeof *f);
	if (f == NULL)
		return; /* only stats: its bytes are then shown nowhere */
	*f = (struct former){.id = c->id, .pid = c->pid, .uid = c->uid,
			     .connected_since = c->connected_since,
			     .ended = (int64_t)time(NULL), .bytes = c->bytes_held, .unsettled = 1};
	snprintf(f->name, sizeof f->name, "%s", c->name);
	struct former **p = &d->formers;
	while (*p != NULL)
		p = &(*p)->next;
	*p = f;
	former_trim(d);
}

void stats_retire_client(struct daemon *d, const struct client *c)
{
	uint64_t m, w;
	stats_client_counters(c, &m, &w);
	d->retired_mallocs += m;
	d->retired_waits += w;
	client_class_counts(c, d->retired_class_mallocs, d->retired_class_requested);
	if (c->hello_done && c->bytes_held > 0)
		former_add(d, c);
}

uint64_t stats_in_use(const struct daemon *d)
{
	return heap_in_use(d->heap);
}

/* bytes of f are no longer out: f goes once it holds none. */
static void former_less(struct daemon *d, struct former *f, uint64_t bytes)
{
	f->bytes = f->bytes > bytes ? f->bytes - bytes : 0;
	if (f->bytes == 0 && !f->unsettled)
		former_unlink(d, f);
}

void stats_former_settled(struct daemon *d, uint64_t id, uint64_t in_use_before)
{
	struct former *f = former_find(d, id);
	if (f == NULL)
		return;
	uint64_t now = stats_in_use(d);
	f->unsettled = 0;
	former_less(d, f, in_use_before > now ? in_use_before - now : 0);
}

void stats_former_adopted(struct daemon *d, struct client *c)
{
	struct former *f = former_find(d, c->id);
	if (f == NULL)
		return;
	quota_held(c, (int64_t)f->bytes);
	former_unlink(d, f);
}

void stats_freed_by(struct daemon *d, const struct client *c, uint64_t bytes, uint64_t owner)
{
	if (owner != 0) {
		struct former *f = owner != c->id ? former_find(d, owner) : NULL;
		if (f != NULL)
			former_less(d, f, bytes);
		return;
	}
	/* A small object: whose it was is not known, only that this client
	 * gives back more than it took -- the rest was taken by others, and
	 * comes off the clients gone, oldest first. */
	uint64_t beyond = bytes > c->bytes_held ? bytes - c->bytes_held : 0;
	while (beyond > 0 && d->formers != NULL) {
		struct former *f = d->formers;
		uint64_t take = f->bytes < beyond ? f->bytes : beyond;
		beyond -= take;
		f->bytes -= take;
		if (f->bytes != 0 || f->unsettled)
			break;
		former_unlink(d, f);
	}
}

void stats_close(struct daemon *d)
{
	while (d->formers != NULL)
		former_unlink(d, d->formers);
}

static int fill_formers(struct daemon *d, Shma__StatsReply *r, struct dispatch_scratch *s)
{
	unsigned n = 0;
	for (struct former *f = d->formers; f != NULL; f = f->next)
		n++;
	Shma__FormerClientStats *a = dispatch_scratch_alloc(s, (n ? n : 1) * sizeof *a);
	Shma__FormerClientStats **p = dispatch_scratch_alloc(s, (n ? n : 1) * sizeof *p);
	if (!a || !p)
		return -ENOMEM;
	unsigned k = 0;
	for (struct former *f = d->formers; f != NULL; f = f->next, k++) {
		shma__former_client_stats__init(&a[k]);
		a[k].client_id = f->id;
		a[k].pid = (uint32_t)f->pid;
		a[k].uid = (uint32_t)f->uid;
		a[k].name = f->name;
		a[k].connected_since = f->connected_since;
		a[k].ended = f->ended;
		a[k].bytes_held = f->bytes;
		a[k].unsettled = f->unsettled != 0;
		r->former_bytes += f->bytes;
		p[k] = &a[k];
	}
	r->n_former_clients = k;
	r->former_clients = p;
	return 0;
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
		copy_client(&a[k], c);
		a[k].client_id = c->id;
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
	r->cached_bytes += uidarea_cached_bytes(d); /* batches between a uid's processes */
	return 0;
}

static void copy_totals(Shma__StatsReply *dst, const struct heap_totals *hs,
			const struct daemon *d)
{
	const void *c = NULL;
	(void)c;
	STATS_REPLY_FIELDS(COPY)
}

int stats_build(struct daemon *d, Shma__Response *resp, struct dispatch_scratch *s)
{
	Shma__StatsReply *r = dispatch_scratch_alloc(s, sizeof *r);
	if (r == NULL)
		return -ENOMEM;
	shma__stats_reply__init(r);
	struct heap_totals t;
	heap_totals(d->heap, &t);
	copy_totals(r, &t, d);
	r->instance = d->opt.instance;
	r->pid = (uint32_t)getpid();
	r->backing = d->opt.backing_name;
	r->huge_pages = d->opt.huge_got;
	r->arena_size = heap_geometry(d->heap)->arena_size;
	r->max_memory = d->opt.max_memory;
	r->roots = roots_count(d->roots);
	heap_region_totals(d->heap, &r->regions, &r->region_in_use_bytes);
	r->external_fragmentation =
		t.free_pages ? 1.0 - (double)t.largest_free_run / (double)t.free_pages : 0.0;
	r->n_service_ns_histogram = DAEMON_HIST_BUCKETS;
	r->service_ns_histogram = d->hist;
	r->malloc_calls = d->retired_mallocs;
	r->malloc_waits = d->retired_waits;
	if (fill_arenas(d, r, s) || fill_classes(d, r, s) || fill_clients(d, r, s) ||
	    fill_formers(d, r, s) || stats_fill_heaps(d, r, s))
		return -ENOMEM;
	resp->body_case = SHMA__RESPONSE__BODY_STATS;
	resp->stats = r;
	return 0;
}
