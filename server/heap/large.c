/*
 * Large blocks: see large.h.  The index is an open-addressing table of
 * (id, size) with linear probing and backward-shift deletion, so it never
 * fills with tombstones; it doubles when half full.
 */
#include "large.h"
#include "layout.h"
#include "ref.h"
#include "seg.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

struct slot {
	uint32_t id;   /* id + 1; 0 is empty */
	uint64_t size;
};

struct kept {
	uint32_t id;
	uint64_t size;
	uint64_t since_ms; /* freed then */
};

struct large_set {
	struct slot *slots;
	uint32_t mask;     /* slots - 1 */
	uint64_t count, bytes;
	uint32_t next_id;  /* ids [0, next_id) were tried already */
	struct kept keep[LARGE_KEEP_MAX];
	unsigned nkeep;
	uint64_t keep_bytes;
};

static uint32_t hash(uint32_t id)
{
	return id * UINT32_C(2654435761);
}

int large_set_create(struct large_set **out)
{
	struct large_set *ls = calloc(1, sizeof *ls);
	if (ls == NULL)
		return -ENOMEM;
	ls->mask = 63;
	ls->slots = calloc(ls->mask + 1, sizeof *ls->slots);
	if (ls->slots == NULL) {
		free(ls);
		return -ENOMEM;
	}
	*out = ls;
	return 0;
}

static void unlink_block(const char *instance, uint32_t id)
{
	char name[SEG_NAME_MAX];
	if (seg_name(name, sizeof name, instance, 'l', id) == 0)
		seg_unlink(name);
}

void large_set_destroy(struct large_set *ls, const char *instance, int unlink)
{
	/* Kept blocks are free memory: never left behind. */
	large_set_release_kept(ls, instance, UINT64_MAX, 0);
	for (uint32_t i = 0; unlink && i <= ls->mask; i++)
		if (ls->slots[i].id != 0)
			unlink_block(instance, ls->slots[i].id - 1);
	free(ls->slots);
	free(ls);
}

static struct slot *find(const struct large_set *ls, uint32_t id)
{
	for (uint32_t i = hash(id) & ls->mask;; i = (i + 1) & ls->mask) {
		struct slot *s = &ls->slots[i];
		if (s->id == 0 || s->id == id + 1)
			return s;
	}
}

static int grow(struct large_set *ls)
{
	if ((ls->count + 1) * 2 <= (uint64_t)ls->mask + 1)
		return 0;
	struct large_set n = *ls;
	n.mask = ls->mask * 2 + 1;
	n.slots = calloc((size_t)n.mask + 1, sizeof *n.slots);
	if (n.slots == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i <= ls->mask; i++)
		if (ls->slots[i].id != 0)
			*find(&n, ls->slots[i].id - 1) = ls->slots[i];
	free(ls->slots);
	*ls = n;
	return 0;
}

/* Creates the segment of the next unused id, reserved; returns its id. */
static int create_segment(struct large_set *ls, const char *instance, mode_t mode,
			  uint64_t size, uint32_t *id)
{
	char name[SEG_NAME_MAX];
	int fd = -EEXIST;
	while (fd == -EEXIST) {
		if (ls->next_id > REF_ID_MAX)
			return -ENOMEM;
		*id = ls->next_id++;
		int rc = seg_name(name, sizeof name, instance, 'l', *id);
		if (rc < 0)
			return rc;
		fd = seg_create(name, size, mode);
	}
	if (fd < 0)
		return fd;
	int rc = seg_reserve(fd, 0, size);
	close(fd);
	if (rc < 0)
		seg_unlink(name);
	return rc;
}

static void punch_block(const char *instance, uint32_t id, uint64_t size)
{
	char name[SEG_NAME_MAX];
	if (seg_name(name, sizeof name, instance, 'l', id) < 0)
		return;
	/* Unlinked first: a daemon killed before the punch leaves no segment a
	 * successor would take for a live block; the memory goes when the last
	 * mapping does. */
	int fd = seg_open(name, 1);
	seg_unlink(name);
	if (fd >= 0) {
		seg_punch(fd, 0, size);
		close(fd);
	}
}

/* Sets the size of segment id: size + 1 marks it kept, size makes it a
 * block again.  0 or -errno. */
static int set_size(const char *instance, uint32_t id, uint64_t size)
{
	char name[SEG_NAME_MAX];
	int rc = seg_name(name, sizeof name, instance, 'l', id);
	int fd = rc < 0 ? rc : seg_open(name, 1);
	if (fd < 0)
		return fd;
	rc = seg_resize(fd, size);
	close(fd);
	return rc;
}

/* The smallest kept block of size to size * 5/4 bytes, taken out of the
 * pool and made a block again: 0 with id and got set, or -ENOENT. */
static int take_kept(struct large_set *ls, const char *instance, uint64_t size, uint32_t *id,
		     uint64_t *got)
{
	int best = -1;
	for (unsigned i = 0; i < ls->nkeep; i++) {
		uint64_t k = ls->keep[i].size;
		if (k >= size && k <= size + size / 4 && (best < 0 || k < ls->keep[best].size))
			best = (int)i;
	}
	if (best < 0)
		return -ENOENT;
	struct kept k = ls->keep[best];
	ls->keep[best] = ls->keep[--ls->nkeep];
	ls->keep_bytes -= k.size;
	if (set_size(instance, k.id, k.size) != 0) {
		punch_block(instance, k.id, k.size);
		return -ENOENT;
	}
	*id = k.id;
	*got = k.size;
	return 0;
}

int large_set_alloc(struct large_set *ls, const char *instance, mode_t mode,
		    uint64_t size, uint32_t *id, uint64_t *got)
{
	int rc = grow(ls);
	if (rc < 0)
		return rc;
	*got = size;
	if (take_kept(ls, instance, size, id, got) != 0) {
		rc = create_segment(ls, instance, mode, size, id);
		if (rc < 0)
			return rc;
	}
	struct slot *s = find(ls, *id);
	s->id = *id + 1;
	s->size = *got;
	ls->count++;
	ls->bytes += *got;
	return 0;
}

struct recover_ctx {
	struct large_set *ls;
	const char *instance;
	mode_t mode;
};

static int recover_one(void *arg, uint64_t id)
{
	struct recover_ctx *x = arg;
	char name[SEG_NAME_MAX];
	if (id > REF_ID_MAX || seg_name(name, sizeof name, x->instance, 'l', id) < 0)
		return 0;
	int fd = seg_adopt(name, x->mode, NULL);
	if (fd < 0)
		return 0; /* gone, or someone else's: never a block of ours */
	int64_t size = seg_size(fd);
	close(fd);
	if (size <= 0 || size % SHMA_PAGE_SIZE != 0) {
		seg_unlink(name); /* never handed out: its size comes before its ref */
		return 0;
	}
	int rc = grow(x->ls);
	if (rc < 0)
		return rc;
	struct slot *s = find(x->ls, (uint32_t)id);
	s->id = (uint32_t)id + 1;
	s->size = (uint64_t)size;
	x->ls->count++;
	x->ls->bytes += (uint64_t)size;
	if (id >= x->ls->next_id)
		x->ls->next_id = (uint32_t)id + 1;
	return 0;
}

int large_set_recover(struct large_set *ls, const char *instance, mode_t mode)
{
	struct recover_ctx x = {ls, instance, mode};
	int rc = seg_instance_list(instance, 'l', recover_one, &x);
	return rc < 0 ? rc : (int)ls->count;
}

/* Empties slot i, moving later entries of its probe chain back into it. */
static void remove_slot(struct large_set *ls, uint32_t i)
{
	for (uint32_t j = (i + 1) & ls->mask; ls->slots[j].id != 0; j = (j + 1) & ls->mask) {
		uint32_t home = hash(ls->slots[j].id - 1) & ls->mask;
		/* j may move to i if its home is not in (i, j], cyclically. */
		if (((j - home) & ls->mask) >= ((j - i) & ls->mask)) {
			ls->slots[i] = ls->slots[j];
			i = j;
		}
	}
	ls->slots[i].id = 0;
	ls->slots[i].size = 0;
}


/* Keeps block id in the pool if there is room; 1 if kept. */
static int keep(struct large_set *ls, const char *instance, uint32_t id, uint64_t size,
		uint64_t now_ms)
{
	if (ls->nkeep == LARGE_KEEP_MAX || ls->keep_bytes + size > LARGE_KEEP_BYTES)
		return 0;
	/* Marked before it counts as kept: a daemon killed now leaves a segment
	 * recovery removes, never a block it would think live. */
	if (set_size(instance, id, size + 1) != 0)
		return 0;
	ls->keep[ls->nkeep++] = (struct kept){id, size, now_ms};
	ls->keep_bytes += size;
	return 1;
}

uint64_t large_set_release_kept(struct large_set *ls, const char *instance, uint64_t now_ms,
				uint64_t decay_ms)
{
	uint64_t bytes = 0;
	for (unsigned i = 0; i < ls->nkeep;) {
		struct kept k = ls->keep[i];
		if (now_ms - k.since_ms < decay_ms) {
			i++;
			continue;
		}
		punch_block(instance, k.id, k.size + 1);
		ls->keep[i] = ls->keep[--ls->nkeep];
		ls->keep_bytes -= k.size;
		bytes += k.size;
	}
	return bytes;
}

uint64_t large_set_kept_bytes(const struct large_set *ls)
{
	return ls->keep_bytes;
}

int large_set_free(struct large_set *ls, const char *instance, uint32_t id, uint64_t *size,
		   uint64_t now_ms)
{
	struct slot *s = find(ls, id);
	if (s->id == 0)
		return -EINVAL;
	uint64_t sz = s->size;
	if (!keep(ls, instance, id, sz, now_ms))
		punch_block(instance, id, sz);
	remove_slot(ls, (uint32_t)(s - ls->slots));
	ls->count--;
	ls->bytes -= sz;
	if (size != NULL)
		*size = sz;
	return 0;
}

uint64_t large_set_size(const struct large_set *ls, uint32_t id)
{
	return find(ls, id)->size;
}

uint64_t large_set_count(const struct large_set *ls)
{
	return ls->count;
}

uint64_t large_set_bytes(const struct large_set *ls)
{
	return ls->bytes;
}
