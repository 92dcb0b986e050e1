/*
 * Refills in flight: see inflight.h.  A set is a small open-addressing table
 * keyed by slot and class, in the daemon's private memory.  Layer: session
 * (no libuv).
 */
#include "inflight.h"

#include <stdlib.h>
#include <string.h>

#include "ref.h"

struct record {
	uint32_t key; /* slot * SIZECLASS_COUNT + cls, plus 1; 0: empty */
	uint32_t nrefs, nruns;
	uint64_t id;
	uint64_t *refs;
	struct heap_run *runs;
};

struct inflight_set {
	struct record *slots;
	uint32_t cap, used;
};

/* The key of the large-block record: past every slot and class. */
#define LARGE_KEY (SHMA_CONTROL_SLOTS * SIZECLASS_COUNT + 1)

static uint32_t home(uint32_t key, uint32_t cap)
{
	return (key * 2654435761u) & (cap - 1);
}

static void drop(struct record *r)
{
	free(r->refs);
	free(r->runs);
	memset(r, 0, sizeof *r);
}

static int grow(struct inflight_set *s)
{
	uint32_t ncap = s->cap ? s->cap * 2 : 16;
	struct record *n = calloc(ncap, sizeof *n);
	if (n == NULL)
		return -1;
	for (uint32_t i = 0; i < s->cap; i++) {
		if (s->slots[i].key == 0)
			continue;
		uint32_t j = home(s->slots[i].key, ncap);
		while (n[j].key)
			j = (j + 1) & (ncap - 1);
		n[j] = s->slots[i];
	}
	free(s->slots);
	s->slots = n;
	s->cap = ncap;
	return 0;
}

static struct record *find_or_add(struct inflight_set *s, uint32_t key)
{
	if ((s->used + 1) * 2 > s->cap && grow(s) != 0)
		return NULL;
	uint32_t j = home(key, s->cap);
	while (s->slots[j].key != 0 && s->slots[j].key != key)
		j = (j + 1) & (s->cap - 1);
	if (s->slots[j].key == 0) {
		s->slots[j].key = key;
		s->used++;
	}
	return &s->slots[j];
}

void inflight_note(struct inflight_set **set, uint32_t slot, uint32_t cls, uint64_t req_id,
		   const struct heap_batch *b)
{
	if (slot >= SHMA_CONTROL_SLOTS || cls >= SIZECLASS_COUNT)
		return;
	if (*set == NULL && (*set = calloc(1, sizeof **set)) == NULL)
		return;
	uint32_t key = slot * SIZECLASS_COUNT + cls + 1;
	struct record *r = find_or_add(*set, key);
	if (r == NULL)
		return;
	free(r->refs);
	free(r->runs);
	r->id = req_id;
	r->nrefs = r->nruns = 0;
	r->refs = b->nrefs ? malloc(b->nrefs * sizeof *r->refs) : NULL;
	r->runs = b->nruns ? malloc(b->nruns * sizeof *r->runs) : NULL;
	if (r->refs)
		memcpy(r->refs, b->refs, b->nrefs * sizeof *r->refs), r->nrefs = b->nrefs;
	if (r->runs)
		memcpy(r->runs, b->runs, b->nruns * sizeof *r->runs), r->nruns = b->nruns;
}

void inflight_note_large(struct inflight_set **set, uint64_t req_id, uint64_t ref)
{
	if (*set == NULL && (*set = calloc(1, sizeof **set)) == NULL)
		return;
	struct record *r = find_or_add(*set, LARGE_KEY);
	if (r == NULL)
		return;
	free(r->refs);
	r->refs = malloc(sizeof *r->refs);
	r->nrefs = r->refs ? 1 : 0;
	if (r->refs)
		r->refs[0] = ref;
	r->id = req_id;
}

static int collected(const struct record *r, const struct control_block *ctl)
{
	if (ctl == NULL)
		return 0;
	if (r->key == LARGE_KEY)
		return __atomic_load_n(&ctl->hdr.large_collected, __ATOMIC_ACQUIRE) >= r->id;
	uint32_t slot = (r->key - 1) / SIZECLASS_COUNT, cls = (r->key - 1) % SIZECLASS_COUNT;
	uint32_t mark = __atomic_load_n(&ctl->slots[slot].bins[cls].collected, __ATOMIC_ACQUIRE);
	/* Ids grow on a connection; the mark is their low 32 bits. */
	return (int32_t)(mark - (uint32_t)r->id) >= 0 && mark != 0;
}

static uint64_t take_back(const struct record *r, struct heap *h)
{
	uint64_t back = 0;
	if (r->key == LARGE_KEY) {
		for (uint32_t i = 0; i < r->nrefs; i++)
			back += heap_free_large(h, r->refs[i], NULL) == 0;
		return back;
	}
	for (uint32_t i = 0; i < r->nrefs; i++)
		back += heap_free_object(h, r->refs[i], NULL) == 0;
	for (uint32_t i = 0; i < r->nruns; i++) {
		int cls = heap_object_class(h, r->runs[i].first);
		uint64_t size = cls >= 0 ? sizeclass_size((unsigned)cls) : 0;
		for (uint32_t k = 0; size && k < r->runs[i].count; k++)
			back += heap_free_object(h, r->runs[i].first + k * size, NULL) == 0;
	}
	return back;
}

uint64_t inflight_settle(struct inflight_set **set, struct heap *h,
			 const struct control_block *ctl)
{
	struct inflight_set *s = *set;
	uint64_t back = 0;
	if (s == NULL)
		return 0;
	for (uint32_t i = 0; i < s->cap; i++) {
		struct record *r = &s->slots[i];
		if (r->key != 0 && !collected(r, ctl))
			back += take_back(r, h);
		if (r->key != 0)
			drop(r);
	}
	inflight_forget(set);
	return back;
}

void inflight_forget(struct inflight_set **set)
{
	struct inflight_set *s = *set;
	if (s == NULL)
		return;
	for (uint32_t i = 0; i < s->cap; i++)
		if (s->slots[i].key != 0)
			drop(&s->slots[i]);
	free(s->slots);
	free(s);
	*set = NULL;
}
