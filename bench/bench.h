/* SPDX-License-Identifier: MIT */
/*
 * Benchmarks: the seam between the workloads and the allocators.
 *
 * One driver program is built per allocator.  The workloads (bench_tests.c)
 * and the harness (bench_main.c) are the same in every driver; only the
 * backend differs: be_process.c (glibc, jemalloc, mimalloc, tcmalloc, chosen
 * at compile time), be_boost.cc (Boost.Interprocess managed_shared_memory)
 * and be_shmalloc.c.  The backend functions are plain extern functions, so
 * every allocator pays the same single call of indirection.
 *
 * A backend is "shared" when one heap serves every process of a run (Boost,
 * shmalloc): then the multi-process workloads fork processes that share it.
 * A process-local backend gets one heap per process, and the
 * producer/consumer workload runs as two threads of one process instead.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the backend: one implementation per driver ---- */

/* The allocator's name as the tables show it, e.g. "jemalloc". */
const char *be_name(void);

/* 1 when one heap is shared by every process of a run, else 0. */
int be_shared(void);

/* Prepares a fresh heap for one run, before any worker is forked.  Returns 0,
 * or a negative errno with a reason written into why. */
int be_setup(char *why, size_t len);

/* Releases what be_setup made (a shared segment, say). */
void be_teardown(void);
/* In a program the driver exec'd during a run ((fm)): joins the heap that
 * run's be_setup made, as a new process of the run would, allocating
 * nothing.  Nothing to do for a process-local heap, nor for shmalloc, which
 * connects on the first malloc.  0, or a negative errno. */
int be_attach(void);

void *be_malloc(size_t size);
void be_free(void *p);

/* Turns a block into a word another process (or thread) can pass on, and
 * back: a pointer, an offset in a segment, or a shma_ref_t. */
uint64_t be_to_msg(void *p);
void *be_from_msg(uint64_t msg);

/* Bytes of memory that back the heap now: the process's resident set for a
 * process-local heap, the st_blocks of the shared segments otherwise.
 * Negative errno when it cannot be measured. */
int64_t be_footprint(void);

/* Lets go of the heap as a process that exits would, yet keeps the process:
 * shmalloc disconnects (flushing its caches), Boost keeps its segment.
 * -ENOTSUP for a process-local heap, which dies with its process. */
int be_detach(void);

/* Extra facts about the allocator for the report, as "key\tvalue" lines
 * written to out (version, counters...).  May write nothing. */
void be_describe(char *out, size_t len);

/* Called in a worker around one measured workload.  The shmalloc backend
 * uses it to sample the daemon's wait counters; the others do nothing.
 * bench_counters holds what be_counters_end adds up. */
struct bench_counters {
	double mallocs;
	double waits;
};
void be_counters_begin(void);
void be_counters_end(struct bench_counters *c);

/* ---- helpers every backend may use (bench_main.c) ---- */

/* Resident set of this process in bytes, from /proc/self/statm. */
int64_t bench_rss(void);

/* Bytes of backing store of the /dev/shm files whose names begin with
 * prefix (sum of st_blocks * 512), or a negative errno. */
int64_t bench_shm_bytes(const char *prefix);

#ifdef __cplusplus
}
#endif

#endif
