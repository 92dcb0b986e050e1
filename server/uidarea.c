/* SPDX-License-Identifier: MIT */
/*
 * The uids' transfer areas: between the processes of one uid, the tier under
 * each process's transfer cache (doc/architecture.md, "The uid's transfer
 * area").  The daemon makes the segment, names each member, takes back what
 * a dead member was moving, and drains the area when the uid's last member
 * is gone; the moves themselves are the members' (client/lib/xfer.c).
 *
 * The segment is an unlinked memfd, sealed at its size (no member can
 * shrink it under the daemon's reads; the mapping is registered with the
 * guard all the same), passed only to clients of its uid: so another uid's
 * client can neither read nor write it, and what it frees goes to the daemon
 * as before, checked ref by ref (DESIGN §7 as it is).
 *
 * What the daemon believes of it: nothing beyond bounds.  A word's n is
 * capped at the class's cap, its member index is looked up in the daemon's
 * own table (the member's control block names it, but that copy is the
 * client's), and every ref taken back is checked as a bin's
 * (heap_object_class() and heap_free_object(): an object of the class that
 * is out; a ref seen twice is not out the second time).
 */
#include "config.h"

#include "uidarea.h"

#include "control.h"
#include "daemon.h"
#include "guard.h"
#include "heap.h"
#include "layout.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct uid_areas {
	struct uid_areas *next;
	uid_t uid;
	int fd;
	struct uid_area *area;
	uint32_t members;   /* indices held: by connected clients and orphans */
	uint32_t connected; /* of them, connected now */
	uint64_t member_id[SHMA_UID_MEMBERS + 1]; /* [m]: client id of member m, 0: free */
	uint8_t live[SHMA_UID_MEMBERS + 1];       /* [m]: member m is connected */
	/* Per entry, the full word seen at the last sweeps and since when
	 * (monotonic ms): a batch that sat there that long goes back. */
	uint64_t seen[SIZECLASS_COUNT][SHMA_UID_ENTRIES];
	uint64_t since[SIZECLASS_COUNT][SHMA_UID_ENTRIES];
};

/* The daemon's areas: few (one per uid with clients), a list. */
static struct uid_areas *areas;
static const struct daemon *areas_of; /* the daemon they are of */

static struct uid_areas *find_uid(uid_t uid)
{
	for (struct uid_areas *a = areas; a != NULL; a = a->next)
		if (a->uid == uid)
			return a;
	return NULL;
}

/* The area and member index of client id; NULL if it is no member.  hint:
 * the index its control block says, the client's word, believed only if
 * our table says the same (a block that lies about it loses its place: the
 * daemon takes back none of its half moves, and its index stays taken, so
 * its uid's area is drained only when the daemon goes). */
static struct uid_areas *find_member(uint64_t id, uint32_t hint, uint32_t *m)
{
	if (id == 0 || hint < 1 || hint > SHMA_UID_MEMBERS)
		return NULL;
	for (struct uid_areas *a = areas; a != NULL; a = a->next)
		if (a->member_id[hint] == id) {
			*m = hint;
			return a;
		}
	return NULL;
}

static uint32_t hint_of(const struct control_block *cb)
{
	return cb != NULL ? __atomic_load_n(&cb->hdr.uid_member, __ATOMIC_RELAXED) : 0;
}

static struct uid_areas *make_area(uid_t uid)
{
	struct uid_areas *a = calloc(1, sizeof *a);
	if (a == NULL)
		return NULL;
	a->uid = uid;
	a->fd = memfd_create("shmalloc-uid", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (a->fd < 0)
		goto fail;
	if (ftruncate(a->fd, sizeof(struct uid_area)) != 0 ||
	    fcntl(a->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
		goto fail;
	void *p = mmap(NULL, sizeof(struct uid_area), PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
	if (p == MAP_FAILED)
		goto fail;
	if (guard_add(p, sizeof(struct uid_area)) != 0) {
		munmap(p, sizeof(struct uid_area));
		goto fail;
	}
	a->area = p;
	a->area->hdr.version = SHMA_UID_VERSION;
	a->area->hdr.uid = (uint32_t)uid;
	a->area->hdr.nclasses = SIZECLASS_COUNT;
	__atomic_store_n(&a->area->hdr.magic, SHMA_UID_MAGIC, __ATOMIC_RELEASE);
	a->next = areas;
	areas = a;
	return a;
fail:
	log_msg(SLOG_WARN, "uid %ld: no transfer area (%s): its processes exchange batches "
		"through the daemon", (long)uid, strerror(errno));
	if (a->fd >= 0)
		close(a->fd);
	free(a);
	return NULL;
}

/* Takes back refs [0, n) of entry e of class cls, where the members wrote
 * them (a page no member wrote is a hole: not read); counts refusals. */
static uint64_t take_entry(struct daemon *d, struct uid_areas *a, unsigned cls, unsigned e,
			   uint32_t n, uint64_t *refused)
{
	const volatile uint64_t *refs = a->area->refs[cls][e];
	if (!guard_reserved(a->fd, a->area, (const void *)refs, n * sizeof *refs)) {
		*refused += n;
		return 0;
	}
	uint64_t got = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint64_t ref = refs[k];
		if (heap_object_class(d->heap, ref) == (int)cls &&
		    heap_free_object(d->heap, ref, NULL) == 0)
			got++;
		else
			(*refused)++;
	}
	return got;
}

/* The members' budget word (their bytes in the area, shm/layout.h): a batch
 * the daemon took off the area, or a move it settled, is off it too (the
 * putter counted it before its move, the taker had not yet uncounted it).
 * Never below zero: a lie there costs the liars' own puts. */
static void budget_back(struct uid_areas *a, unsigned cls, uint32_t n)
{
	uint64_t bytes = (uint64_t)n * sizeclass_size(cls);
	uint64_t old = __atomic_load_n(&a->area->hdr.bytes, __ATOMIC_RELAXED), now;
	do
		now = old > bytes ? old - bytes : 0;
	while (!__atomic_compare_exchange_n(&a->area->hdr.bytes, &old, now, 1, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED));
}

/* Every full entry of a back to the heap (no member left, or the daemon
 * going), or (idle_ms != 0) those that held the same batch for idle_ms:
 * each claimed first, so a member still running loses the race. */
static uint64_t drain_idle(struct daemon *d, struct uid_areas *a, uint64_t now,
			   uint64_t idle_ms, uint64_t *refused)
{
	uint64_t got = 0;
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		for (unsigned e = 0; e < SHMA_UID_ENTRIES; e++) {
			uint64_t *st = &a->area->cls[cls].state[e];
			uint64_t w = __atomic_load_n(st, __ATOMIC_ACQUIRE);
			if (layout_xfer_kind(w) != SHMA_XFER_FULL) {
				a->seen[cls][e] = 0;
				continue;
			}
			if (idle_ms != 0 && w != a->seen[cls][e]) {
				/* Another batch (the putter's stamp is in the word):
				 * its age starts now. */
				a->seen[cls][e] = w;
				a->since[cls][e] = now;
				continue;
			}
			if (idle_ms != 0 && now - a->since[cls][e] < idle_ms)
				continue;
			a->seen[cls][e] = 0;
			uint32_t n = layout_xfer_n(w), cap = layout_xfer_cap(cls);
			uint64_t mine = layout_uid_word(SHMA_XFER_TAKING, n, 0, SHMA_XFER_NO_SLOT, 0);
			if (!__atomic_compare_exchange_n(st, &w, mine, 0, __ATOMIC_ACQUIRE,
							 __ATOMIC_RELAXED))
				continue;
			if (n > cap) {
				*refused += n - cap;
				n = cap;
			}
			got += take_entry(d, a, cls, e, n, refused);
			budget_back(a, cls, n);
			__atomic_store_n(st, SHMA_XFER_EMPTY, __ATOMIC_RELEASE);
		}
	}
	return got;
}

static uint64_t drain(struct daemon *d, struct uid_areas *a, uint64_t *refused)
{
	return drain_idle(d, a, 0, 0, refused);
}

static void say_refused(const struct uid_areas *a, uint64_t refused)
{
	if (refused != 0)
		log_msg(SLOG_WARN, "uid %ld: %llu refs of its transfer area refused (not objects "
			"of their entry's class that are out)", (long)a->uid,
			(unsigned long long)refused);
}

uint64_t uidarea_decay(struct daemon *d, uint64_t now_ms)
{
	uint64_t idle = d->opt.decay_ms > 1000 ? d->opt.decay_ms : 1000, got = 0;
	if (areas_of != d)
		return 0;
	for (struct uid_areas *a = areas; a != NULL; a = a->next) {
		uint64_t refused = 0;
		got += drain_idle(d, a, now_ms, idle, &refused);
		say_refused(a, refused);
	}
	return got;
}

static void drop_area(struct daemon *d, struct uid_areas *a)
{
	uint64_t refused = 0, got = drain(d, a, &refused);
	if (got != 0 || refused != 0)
		log_msg(SLOG_DEBUG, "uid %ld: its transfer area gave back %llu objects (%llu refs "
			"refused)", (long)a->uid, (unsigned long long)got,
			(unsigned long long)refused);
	say_refused(a, refused);
	d->reclaimed_objects += got;
	for (struct uid_areas **p = &areas; *p != NULL; p = &(*p)->next)
		if (*p == a) {
			*p = a->next;
			break;
		}
	guard_remove(a->area);
	munmap(a->area, sizeof(struct uid_area));
	close(a->fd);
	free(a);
}

void uidarea_join(struct daemon *d, struct client *c)
{
	if (areas_of != d) {
		areas = NULL; /* another daemon's (a test's): not ours to touch */
		areas_of = d;
	}
	if (c->ctl == NULL || c->region != NULL || c->observer)
		return;
	uint32_t m;
	struct uid_areas *a = find_member(c->id, hint_of(c->ctl), &m);
	if (a == NULL) {
		a = find_uid(c->uid);
		if (a == NULL && (a = make_area(c->uid)) == NULL)
			return;
		for (m = 1; m <= SHMA_UID_MEMBERS && a->member_id[m] != 0; m++)
			;
		if (m > SHMA_UID_MEMBERS) {
			if (a->members == 0)
				drop_area(d, a);
			return; /* 16383 processes of one uid: the rest as before */
		}
		a->member_id[m] = c->id;
		a->members++;
	}
	if (!a->live[m]) {
		a->live[m] = 1;
		a->connected++;
		__atomic_store_n(&a->area->hdr.members, a->connected, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&c->ctl->hdr.uid_member, m, __ATOMIC_RELEASE);
}

int uidarea_fd(const struct daemon *d, const struct client *c)
{
	uint32_t m;
	if (areas_of != d)
		return -1;
	struct uid_areas *a = find_member(c->id, hint_of(c->ctl), &m);
	return a != NULL && a->uid == c->uid ? a->fd : -1;
}

uint64_t uidarea_reclaim(struct daemon *d, uint64_t id, struct control_block *cb, int fd,
			 uint32_t nslots, uint64_t *refused)
{
	(void)fd;
	uint32_t m;
	struct uid_areas *a = areas_of == d ? find_member(id, hint_of(cb), &m) : NULL;
	if (a == NULL)
		return 0;
	uint64_t got = 0;
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		for (unsigned e = 0; e < SHMA_UID_ENTRIES; e++) {
			uint64_t *st = &a->area->cls[cls].state[e];
			uint64_t w = __atomic_load_n(st, __ATOMIC_ACQUIRE);
			unsigned kind = layout_xfer_kind(w);
			if ((kind != SHMA_XFER_PUTTING && kind != SHMA_XFER_TAKING) ||
			    layout_uid_member(w) != m)
				continue;
			uint32_t n = layout_xfer_n(w), cap = layout_xfer_cap(cls);
			if (n > cap) {
				*refused += n - cap;
				n = cap;
			}
			/* Its word: no live member moves it (they skip what is not
			 * EMPTY or FULL), the dead one is gone. */
			if (!daemon_control_batch_in_bin(cb, nslots, cls, w, n))
				got += take_entry(d, a, cls, e, n, refused);
			budget_back(a, cls, n);
			__atomic_compare_exchange_n(st, &w, SHMA_XFER_EMPTY, 0, __ATOMIC_RELEASE,
						    __ATOMIC_RELAXED);
		}
	}
	return got;
}

void uidarea_leave(struct daemon *d, uint64_t id, const struct control_block *cb)
{
	uint32_t m;
	struct uid_areas *a = areas_of == d ? find_member(id, hint_of(cb), &m) : NULL;
	if (a == NULL)
		return;
	uidarea_disconnected(d, id, cb);
	a->member_id[m] = 0;
	a->members--;
	if (a->members == 0)
		drop_area(d, a);
}

void uidarea_disconnected(struct daemon *d, uint64_t id, const struct control_block *cb)
{
	uint32_t m;
	struct uid_areas *a = areas_of == d ? find_member(id, hint_of(cb), &m) : NULL;
	if (a == NULL || !a->live[m])
		return;
	a->live[m] = 0;
	a->connected--;
	__atomic_store_n(&a->area->hdr.members, a->connected, __ATOMIC_RELEASE);
	/* A process of the uid is done: what waits goes back now.  The batches
	 * were likely its (a consumer's), and a member that stays connected
	 * does not hold the pages of those who left (in use falls back as it
	 * did, decay returns them); the members still running refill from the
	 * daemon once.  An orphan's thread that still finishes a put after
	 * this leaves a batch for the next drain. */
	uint64_t refused = 0;
	d->reclaimed_objects += drain(d, a, &refused);
	say_refused(a, refused);
	/* Nobody connected: what a member killed between its budget and its
	 * move had counted is forgotten with the rest. */
	if (a->connected == 0)
		__atomic_store_n(&a->area->hdr.bytes, 0, __ATOMIC_RELAXED);
}

uint64_t uidarea_cached_bytes(const struct daemon *d)
{
	uint64_t bytes = 0;
	if (areas_of != d)
		return 0;
	for (const struct uid_areas *a = areas; a != NULL; a = a->next)
		for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++)
			for (unsigned e = 0; e < SHMA_UID_ENTRIES; e++) {
				uint64_t w = __atomic_load_n(&a->area->cls[cls].state[e],
							     __ATOMIC_RELAXED);
				uint32_t n = layout_xfer_n(w), cap = layout_xfer_cap(cls);
				if (layout_xfer_kind(w) == SHMA_XFER_FULL)
					bytes += (uint64_t)(n < cap ? n : cap) * sizeclass_size(cls);
			}
	return bytes;
}

void uidarea_close(struct daemon *d)
{
	if (areas_of != d)
		return;
	while (areas != NULL)
		drop_area(d, areas);
	areas_of = NULL;
}
