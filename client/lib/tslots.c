/* SPDX-License-Identifier: MIT */
/*
 * The control block's thread slots as this process sees them (tcache.c's
 * header says what a slot is): which a live thread of ours holds, which
 * threads left parked for the next thread -- stocked with their blocks or
 * emptied -- and the taking of a slot for a new thread.  Everything here
 * runs with the connection's lock held.
 */
#include "config.h"

#include "call.h"
#include "tslots.h"

#include <string.h>

/* Slots a thread left, parked for the next thread to take: at most
 * PARK_STOCKED keep their cached blocks (and refills asked ahead of need),
 * the rest are emptied; every one keeps its reserved bins. */
#define PARK_STOCKED 8u

/* This process's side of the slots, SHMA_CONTROL_SLOTS of each, from
 * prim_alloc() at the first slot taken (its pages are made as slots are
 * used: a process with 4 threads touches a few of its 59 MiB).
 *
 * owned[i]: 1 while locals[i] is a live thread's cache, with the lock held.
 * After shma_disconnect() and a new connection, slot i of the new control
 * block may be free while a thread still pops from and pushes to slot i of
 * the old one through locals[i] (its fast path does not look at the
 * generation): take_slot() must not hand locals[i] to another thread then.
 * It did: two threads shared one cache (blocks handed to both) or one zeroed
 * the other's under it (SIGSEGV in the fast path).
 *
 * parked[0, nparked): slots threads left, the last left on top, of the
 * control block of generation park_generation; stocked[i] 1 if slot i kept
 * its blocks (it is in use still, for the daemon: it takes them back if we
 * die).  A thread's start then takes a slot whose bins are reserved and
 * often full, and its exit makes no system call: no fallocate per bin, no
 * refill per class, no flush. */
struct slot_side {
	uint64_t park_generation;
	uint32_t nparked;
	uint32_t nstocked;
	uint8_t owned[SHMA_CONTROL_SLOTS];
	uint8_t stocked[SHMA_CONTROL_SLOTS];
	uint32_t parked[SHMA_CONTROL_SLOTS];
	struct tcache locals[SHMA_CONTROL_SLOTS];
};
static struct slot_side *sides;

/* Drops the parked slots if they are of an older control block (their
 * blocks are the daemon's to take back when this process is gone); with the
 * lock held. */
static void park_check(void)
{
	if (sides->park_generation != conn_generation()) {
		sides->nparked = sides->nstocked = 0;
		sides->park_generation = conn_generation();
	}
}

/* Leaves slot t to the next thread: stocked (bins and pending refills kept,
 * the slot in use still) while fewer than PARK_STOCKED are, else emptied.
 * With the lock held and the connection current. */
void tslots_park(struct tcache *t)
{
	park_check();
	unsigned i = t->index;
	sides->stocked[i] = sides->nstocked < PARK_STOCKED;
	if (sides->stocked[i]) {
		sides->nstocked++;
	} else {
		tcache_flush_everything(t);
		__atomic_store_n(&t->slot->in_use, 0, __ATOMIC_RELEASE);
	}
	sides->parked[sides->nparked++] = i;
}

/* Takes slot i (free, not owned) of cb; NULL if another took it first. */
static struct tcache *claim(struct control_block *cb, unsigned i, int reserved)
{
	uint32_t zero = 0;
	if (!__atomic_compare_exchange_n(&cb->slots[i].in_use, &zero, 1, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return NULL;
	sides->owned[i] = 1;
	return tcache_fresh(&sides->locals[i], cb, i, reserved);
}

/* Takes a slot of the control block: the last one a thread left, else one
 * never used, else any free one; with the lock held.  NULL when there is
 * none (or no memory for our side of them). */
struct tcache *tslots_take(void)
{
	struct control_block *cb = conn_control();
	if (cb == NULL)
		return NULL;
	if (sides == NULL && (sides = prim_alloc(sizeof *sides)) == NULL)
		return NULL;
	park_check();
	while (sides->nparked > 0) {
		unsigned i = sides->parked[--sides->nparked];
		struct tcache *t = &sides->locals[i];
		int stocked = sides->stocked[i];
		if (stocked) {
			sides->stocked[i] = 0;
			sides->nstocked--;
		}
		if (sides->owned[i] || t->generation != conn_generation())
			continue;
		if (stocked) {
			/* Ours still, its bins as the last thread left them. */
			sides->owned[i] = 1;
			return t;
		}
		if ((t = claim(cb, i, 1)) != NULL)
			return t;
	}
	/* A slot never used: its header reserved, then slots_taken raised past
	 * it (the daemon reads no further), then the slot taken.  We hold the
	 * lock: no other thread of ours writes slots_taken. */
	for (uint32_t i = cb->hdr.slots_taken; i < SHMA_CONTROL_SLOTS; i++) {
		if (sides->owned[i])
			continue; /* a thread's cache still, on an older block */
		if (conn_reserve_slot_headers(cb->hdr.slots_taken, i + 1) != 0)
			return NULL; /* no room in /dev/shm: this thread goes uncached */
		__atomic_store_n(&cb->hdr.slots_taken, i + 1, __ATOMIC_RELEASE);
		struct tcache *t = claim(cb, i, 0);
		if (t != NULL)
			return t;
	}
	/* All taken once: one a thread left that is not parked (its block was
	 * replaced under it), if any. */
	for (unsigned i = 0; i < SHMA_CONTROL_SLOTS; i++) {
		if (sides->owned[i])
			continue;
		struct tcache *t = claim(cb, i, 0);
		if (t != NULL)
			return t;
	}
	return NULL; /* more threads than slots: this one goes uncached */
}

/* 1 if no thread of ours holds a slot of any control block, old or new. */
int tslots_none_owned(void)
{
	if (sides == NULL)
		return 1;
	for (unsigned i = 0; i < SHMA_CONTROL_SLOTS; i++)
		if (sides->owned[i])
			return 0;
	return 1;
}

void tslots_leave(unsigned i)
{
	if (sides != NULL)
		sides->owned[i] = 0;
}

void tslots_flush_parked(void)
{
	if (sides == NULL)
		return;
	/* The slots parked with their blocks: no thread will take them from
	 * the block we are leaving. */
	park_check();
	for (uint32_t k = 0; k < sides->nparked; k++) {
		unsigned i = sides->parked[k];
		struct tcache *t = &sides->locals[i];
		if (!sides->stocked[i] || sides->owned[i] || t->generation != conn_generation())
			continue;
		tcache_flush_everything(t);
		sides->stocked[i] = 0;
		__atomic_store_n(&t->slot->in_use, 0, __ATOMIC_RELEASE);
	}
	sides->nstocked = 0;
}

void tslots_forget(void)
{
	if (sides != NULL) {
		memset(sides->owned, 0, sizeof sides->owned);
		sides->nparked = sides->nstocked = 0;
	}
}
