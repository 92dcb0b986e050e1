/* SPDX-License-Identifier: MIT */
/*
 * The heaps of a StatsReply (stats.h: stats_fill_heaps): every named heap
 * of the registry (server/heap/heaps.h), and every region of a shmalloc-run process as a heap of process lifetime
 * named "run:<pid>" -- the region is the heap of that process, and goes when
 * it exits (server/heap/region.c).  A region is keyed by its client's id:
 * its pid, uid and start are the connected client's, or while its process
 * lives on after its connection ended, the former client's.  Bounded work:
 * per heap, per span of a region.  Layer: session (no libuv).
 */
#include "stats.h"

#include "heaps.h"
#include "region_list.h"
#include "stats_fields.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define HEAP_NAME_CAP 24 /* "run:" and a pid */

/* Who client id is (connected, or gone with its region still there): 0,
 * or -ENOENT when no client is (the region is a named heap's: its key is
 * no client's id). */
static int region_owner(const struct daemon *d, uint64_t id, Shma__HeapStats *h)
{
	for (const struct client *c = d->clients; c != NULL; c = c->next)
		if (c->id == id && c->hello_done) {
			h->creator_pid = (uint32_t)c->pid;
			h->creator_uid = (uint32_t)c->uid;
			h->created = c->connected_since;
			return 0;
		}
	pid_t pid;
	uid_t uid;
	if (stats_former_of(d, id, &pid, &uid, &h->created) != 0)
		return -ENOENT;
	h->creator_pid = (uint32_t)pid;
	h->creator_uid = (uint32_t)uid;
	return 0;
}

/* Region ri as heap row h, named in name (HEAP_NAME_CAP bytes): 1 if it is
 * a process's, 0 if not (skipped). */
static int region_row(const struct daemon *d, const struct heap_region_info *ri,
		      Shma__HeapStats *h, char *name)
{
	shma__heap_stats__init(h);
	if (region_owner(d, ri->id, h) != 0)
		return 0;
	snprintf(name, HEAP_NAME_CAP, "run:%u", (unsigned)h->creator_pid);
	h->name = name;
	h->lifetime = 1; /* SHMA_HEAP_PROCESS */
	h->bytes = ri->bytes;
	h->blocks = ri->blocks;
	h->spans = ri->spans;
	h->large_count = ri->large_count;
	h->processes = 1; /* the one whose region it is: it ends with it */
	return 1;
}

/* The fields the registry's heaps_info has under the same name (source
 * HEAP in proto/stats_fields.h), copied by expanding the list. */
#define COPY_HEAP(dst, info, m) (dst)->m = (info)->m;
#define COPY_SELF(dst, info, m)
#define COPY(m, kind, src, json, label, line, prom, help) COPY_##src(dst, info, m)

static void named_row(Shma__HeapStats *dst, const struct heaps_info *info)
{
	shma__heap_stats__init(dst);
	HEAP_STATS_FIELDS(COPY)
	dst->name = (char *)info->name; /* the registry's, alive while the reply is built */
	dst->heap_id = info->id;
	dst->processes = info->nusers;
}

/* The named heaps, into a[0..max): how many. */
static size_t named_rows(const struct daemon *d, Shma__HeapStats *a, Shma__HeapStats **p,
			 size_t max)
{
	size_t k = 0;
	uint32_t pos = 0;
	struct heaps_info info;
	for (uint64_t id; k < max && d->heaps != NULL && (id = heaps_next(d->heaps, &pos)) != 0;)
		if (heaps_info(d->heaps, id, &info) == 0) {
			named_row(&a[k], &info);
			p[k] = &a[k];
			k++;
		}
	return k;
}

static size_t named_count(const struct daemon *d)
{
	size_t n = 0;
	uint32_t pos = 0;
	while (d->heaps != NULL && heaps_next(d->heaps, &pos) != 0)
		n++;
	return n;
}

int stats_fill_heaps(struct daemon *d, Shma__StatsReply *r, struct dispatch_scratch *s)
{
	size_t n = heap_region_list(d->heap, NULL, 0), named = named_count(d);
	size_t rows = n + named ? n + named : 1;
	/* A few blocks whatever the count: the scratch holds a bounded number. */
	struct heap_region_info *ri = dispatch_scratch_alloc(s, (n ? n : 1) * sizeof *ri);
	char *names = dispatch_scratch_alloc(s, (n ? n : 1) * HEAP_NAME_CAP);
	Shma__HeapStats *a = dispatch_scratch_alloc(s, rows * sizeof *a);
	Shma__HeapStats **p = dispatch_scratch_alloc(s, rows * sizeof *p);
	if (!ri || !names || !a || !p)
		return -ENOMEM;
	n = heap_region_list(d->heap, ri, n);
	size_t k = named_rows(d, a, p, named);
	for (size_t i = 0; i < n; i++) {
		if (region_row(d, &ri[i], &a[k], names + i * HEAP_NAME_CAP) > 0) {
			p[k] = &a[k];
			k++;
		}
	}
	r->n_heaps = k;
	r->heaps = p;
	return 0;
}
