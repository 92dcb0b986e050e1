/* SPDX-License-Identifier: MIT */
/*
 * The regions, listed (region_list.h): read-only, from the region table and
 * each region's list of spans, for stats alone.
 */
#include "region_list.h"

#include "heap_internal.h"

static void region_info(const struct heap_region *r, struct heap_region_info *out)
{
	*out = (struct heap_region_info){.id = r->id, .bytes = r->bytes,
					 .large_count = r->large.used};
	for (const struct span *s = r->spans; s != NULL; s = s->rnext) {
		out->spans++;
		out->blocks += s->nout;
	}
	out->blocks += r->large.used;
}

size_t heap_region_list(const struct heap *h, struct heap_region_info *out, size_t max)
{
	if (h->regions.alloc == NULL)
		return 0; /* no region was ever asked for */
	size_t i = 0, n = 0;
	struct table_entry *e;
	while ((e = table_next(&h->regions, &i)) != NULL) {
		if (n < max)
			region_info((const struct heap_region *)(uintptr_t)e->value, &out[n]);
		n++;
	}
	return n;
}
