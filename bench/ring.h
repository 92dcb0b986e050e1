/* SPDX-License-Identifier: MIT */
/*
 * A single-producer single-consumer ring of 64-bit words.
 *
 * It lives in a MAP_SHARED anonymous mapping made before the fork, so the
 * same code passes words between two threads of one process or between two
 * processes.  The producer owns head, the consumer owns tail, each on a cache
 * line of its own; a release store publishes a slot and the acquire load on
 * the other side sees it.  No lock, no system call: when the ring is full or
 * empty the waiting side spins, yielding the CPU now and then so that a run
 * with more runnable processes than cores still moves.
 */
#ifndef BENCH_RING_H
#define BENCH_RING_H

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#define RING_SLOTS 1024 /* a power of two */

struct ring {
	_Alignas(64) _Atomic uint64_t head;
	_Alignas(64) _Atomic uint64_t tail;
	_Alignas(64) uint64_t slot[RING_SLOTS];
};

static inline void ring_pause(unsigned *spins)
{
	if (++*spins % 128 == 0)
		sched_yield();
#if defined(__x86_64__) || defined(__i386__)
	else
		__builtin_ia32_pause();
#endif
}

static inline void ring_push(struct ring *r, uint64_t word)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	unsigned spins = 0;

	while (head - atomic_load_explicit(&r->tail, memory_order_acquire) == RING_SLOTS)
		ring_pause(&spins);
	r->slot[head % RING_SLOTS] = word;
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
}

static inline uint64_t ring_pop(struct ring *r)
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	unsigned spins = 0;
	uint64_t word;

	while (atomic_load_explicit(&r->head, memory_order_acquire) == tail)
		ring_pause(&spins);
	word = r->slot[tail % RING_SLOTS];
	atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
	return word;
}

#endif
