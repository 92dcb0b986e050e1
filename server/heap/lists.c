/* SPDX-License-Identifier: MIT */
/*
 * The partial lists checked, and rebuilt when they are not what they must be.
 *
 * Every refill walks a partial list (take_partial() in heap.c) until it has
 * what it wants or the list is empty; it trusts that a span at a list's
 * head is listed there, so that taking it off empties the head.  A span
 * pushed on the wrong list breaks that: a region's span put on the heap's
 * list and later taken off its region's (which DLIST_REMOVE does by its
 * links, whatever list they are in) leaves a head naming a span that says
 * it is on no list, and the refill spins on it forever (issue 21, case 8:
 * recovery once pushed a region's partial spans on the shared list).
 *
 * So after recovery, and whenever a refill finds such a head, every list is
 * walked with a bound (no more steps than the heap has spans) and each span
 * checked: listed, in the bucket and on the list it says, its links agreeing
 * with its neighbours'.  When anything disagrees, all lists are rebuilt from
 * the arenas' spans (the private truth: span_of_page), which costs a walk of
 * the page maps but is only done when a list was found broken.
 */
#include "heap_internal.h"

#include <string.h>

/* Every span of every arena, in page order. */
static struct span *next_span(struct heap *h, uint32_t *arena, uint32_t *page)
{
	for (; *arena < h->narenas; (*arena)++, *page = 0) {
		struct arena *a = h->arenas[*arena];
		while (*page < h->g.npages) {
			struct span *s = a->span_of_page[(*page)++];
			if (s != NULL)
				return s;
		}
	}
	return NULL;
}

static uint64_t span_count(const struct heap *h)
{
	uint64_t n = 0;
	for (unsigned c = 0; c < SIZECLASS_COUNT; c++)
		n += h->counters[c].spans;
	return n;
}

/* 0 if list l of class cls is whole, walked at most *budget steps. */
static int list_whole(struct heap *h, const struct span_list *l, unsigned cls,
		      uint64_t *budget)
{
	for (unsigned b = 0; b < SPAN_LIST_BUCKETS; b++) {
		const struct span *prev = NULL;
		for (struct span *s = l->head[b]; s != NULL; prev = s, s = s->next) {
			if ((*budget)-- == 0)
				return -1; /* longer than the heap has spans: a cycle */
			if (!s->listed || s->bucket != b || s->cls != cls || s->prev != prev ||
			    heap_partial(h, s) != l)
				return -1;
		}
	}
	return 0;
}

int heap_lists_check(struct heap *h)
{
	uint64_t budget = span_count(h) + 1;
	for (unsigned c = 0; c < SIZECLASS_COUNT; c++)
		if (list_whole(h, &h->partial[c], c, &budget) < 0)
			return -1;
	if (h->regions.alloc == NULL)
		return 0;
	size_t i = 0;
	struct table_entry *e;
	while ((e = table_next(&h->regions, &i)) != NULL) {
		struct heap_region *r = (struct heap_region *)(uintptr_t)e->value;
		for (unsigned c = 0; c < SIZECLASS_COUNT; c++)
			if (list_whole(h, &r->partial[c], c, &budget) < 0)
				return -1;
	}
	return 0;
}

void heap_lists_rebuild(struct heap *h)
{
	memset(h->partial, 0, sizeof h->partial);
	size_t i = 0;
	struct table_entry *e;
	while (h->regions.alloc != NULL && (e = table_next(&h->regions, &i)) != NULL) {
		struct heap_region *r = (struct heap_region *)(uintptr_t)e->value;
		memset(r->partial, 0, sizeof r->partial);
	}
	uint32_t arena = 0, page = 0;
	struct span *s;
	while ((s = next_span(h, &arena, &page)) != NULL) {
		/* Every span unlinked, a quarantined arena's too (nothing of it
		 * is handed out again, but its links must not name the lists). */
		s->listed = 0;
		s->prev = s->next = NULL;
		if (s->arena->quarantined == NULL && s->nout > 0 && s->nout < s->objects)
			span_list_push(heap_partial(h, s), s);
	}
	h->rec.lists_rebuilt++;
}

int heap_lists_mend(struct heap *h)
{
	if (heap_lists_check(h) == 0)
		return 0;
	heap_say(h, "a partial list of the heap was broken: rebuilt from the spans");
	heap_lists_rebuild(h);
	return 1;
}
