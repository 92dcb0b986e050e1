/* SPDX-License-Identifier: MIT */
/*
 * The end-to-end fixture: a real shmallocd on a temporary socket, with a
 * unique instance name, started for one test and stopped after it; and
 * helpers to fork client processes.  Speaking raw bytes to the daemon is
 * raw.h's.
 */
#ifndef SHMA_TESTS_E2E_H
#define SHMA_TESTS_E2E_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct e2e_daemon {
	char dir[64];
	char socket[128];
	char instance[48];
	char log[128];
	pid_t pid;
};

/* Starts a daemon with the given extra options (NULL-terminated list). */
void e2e_start_daemon(struct e2e_daemon *d, const char *const *extra);
/* SIGTERM; asserts it exits 0 and left its socket and (with --cleanup) no
 * segments behind. */
void e2e_stop_daemon(struct e2e_daemon *d);

/* For restart tests: a daemon that keeps its segments when it stops or is
 * killed (no --cleanup); e2e_cleanup_daemon() removes them at the end. */
void e2e_start_daemon_kept(struct e2e_daemon *d, const char *const *extra);
/* SIGKILL and reap. */
void e2e_kill_daemon(struct e2e_daemon *d);
/* Starts the daemon again on d's socket and instance (no --cleanup): 0 once
 * it listens, else the status it exited with. */
int e2e_restart_daemon(struct e2e_daemon *d, const char *const *extra);
/* Stops d if it runs, removes every segment of its instance, its directory. */
void e2e_cleanup_daemon(struct e2e_daemon *d);
/* 1 if d's log holds text; how many times it does. */
int e2e_log_has(const struct e2e_daemon *d, const char *text);
int e2e_log_count(const struct e2e_daemon *d, const char *text);
/* Waits (up to 10 s) until d's log holds text: 1 once it does, 0 if not. */
int e2e_wait_log(const struct e2e_daemon *d, const char *text);

/* The default daemon of a test using the checked fixture below. */
extern struct e2e_daemon e2e;
void e2e_setup(void);
void e2e_teardown(void);
/* e2e_setup(), plus a directory of the test's own (e2e.dir/name, into work)
 * and the environment for programs run under shmalloc-run: its library and
 * daemon from the build tree, no LD_PRELOAD or SHMALLOC_SHARE_FORK of the
 * caller's.  The teardown removes the directory. */
void e2e_preload_setup(char *work, size_t cap, const char *name);
/* 1 in a build with AddressSanitizer, where the preload library cannot be
 * preloaded into other programs (the preload and redis suites skip). */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

void e2e_preload_teardown(const char *work);

/* Runs fn(arg) in a forked child that connects to e2e's daemon first;
 * returns the child's pid. fn returns the child's exit status. */
pid_t e2e_fork(int (*fn)(void *), void *arg);
/* Waits for pid; returns its exit status, or 128 + signal. */
int e2e_wait(pid_t pid);
/* Waits (up to 10 s) until process pid sleeps in poll(2) -- for a client
 * of the library, one that has sent its request and waits for the answer
 * (the wait is the library's one poll) -- as /proc/pid/syscall says: 1
 * once it does, 0 if it did not. */
int e2e_wait_blocked_in_poll(pid_t pid);
/* Runs argv (exec'd, found on PATH) with SHMALLOC_SOCKET naming e2e's
 * daemon, its stdout and stderr into out (cap bytes, NUL-terminated).
 * Returns its exit status, or 128 + signal. */
int e2e_run(const char *const *argv, char *out, size_t cap);

/* The number after the first key (e.g. "\"in_use_bytes\":") in the stats
 * of the daemon this process is connected to; asserts it is there. */
uint64_t e2e_stat(const char *key);
/* The same, in this process's own entry of the client list. */
uint64_t e2e_my_stat(const char *key);
/* Waits (up to 5 s: orphaned caches are swept on a timer) for in_use_bytes
 * to fall to at most want; returns the last value seen. */
uint64_t e2e_wait_in_use_at_most(uint64_t want);

/* A ring of refs in shared memory, one producer and one consumer process. */
#define E2E_RING 1024
struct e2e_ring {
	uint64_t head, tail;
	uint64_t slot[E2E_RING];
};
/* 1 if ref went in, 0 if the ring is full. */
int e2e_ring_put(struct e2e_ring *r, uint64_t ref);
/* The oldest ref, or 0 if the ring is empty. */
uint64_t e2e_ring_get(struct e2e_ring *r);

/* A pattern that names the block (seed) and the byte: a block handed out
 * twice, overlapping another or recycled while live shows the wrong byte. */
void e2e_fill(void *p, size_t n, uint64_t seed);
int e2e_check_fill(const void *p, size_t n, uint64_t seed);

/* Allocates 64 blocks of 16 B to 2.5 KiB on the process's connection and
 * frees them: 0, or 1 when one is refused (the daemon still serves).  Its
 * argument is unused (for run_as()). */
int e2e_allocate_a_little(void *unused);

#endif
