/* SPDX-License-Identifier: MIT */
/*
 * Liveness: when the daemon takes a client process for gone.  A process is
 * gone only when all its threads are; a main thread that called
 * pthread_exit() is a zombie while its workers run on, and a daemon that
 * looked only at the main thread took such a process for dead, took its
 * caches back and handed them out while the worker still used them.
 */
#include "e2e.h"
#include "shmalloc.h"

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct shared {
	uint64_t rounds;   /* the worker's, so far */
	int stop;          /* the test's word to the worker */
	int result;        /* the worker's: 0 good, else what went wrong */
	int done;
};

static struct shared *sh;
static struct e2e_daemon d;

#define HELD 256

/* Allocates HELD blocks, stamps them, frees half (into its caches), checks
 * the rest, frees them; over and over until told to stop.  A block of its
 * caches handed to someone else shows in another's stamp. */
static void *worker(void *arg)
{
	(void)arg;
	static void *p[HELD];
	int result = 0;
	for (uint64_t round = 1; !__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE); round++) {
		for (unsigned i = 0; i < HELD && result == 0; i++) {
			p[i] = shma_malloc(64);
			if (p[i] == NULL)
				result = 1;
			else
				e2e_fill(p[i], 64, round * HELD + i);
		}
		usleep(2000);
		for (unsigned i = 0; i < HELD && result == 0; i++)
			if (!e2e_check_fill(p[i], 64, round * HELD + i))
				result = 2;
		for (unsigned i = 0; i < HELD; i++)
			if (p[i] != NULL)
				shma_free(p[i]);
		__atomic_store_n(&sh->rounds, round, __ATOMIC_RELEASE);
		if (result != 0)
			break;
	}
	sh->result = result;
	__atomic_store_n(&sh->done, 1, __ATOMIC_RELEASE);
	/* The process ends with its last thread; without exit handlers, which
	 * would see the forked runner's memory of a main thread long gone as
	 * a leak (LeakSanitizer). */
	_exit(0);
}

/* Its main thread leaves, the worker goes on. */
static void client(void)
{
	if (shma_connect(d.socket) != 0)
		_exit(60);
	pthread_t t;
	if (pthread_create(&t, NULL, worker, NULL) != 0)
		_exit(61);
	pthread_exit(NULL);
}

/* Another client: takes many 64-byte blocks, stamps and holds them, so that
 * any block of the worker's caches handed out again gets its stamp. */
static int other(void *arg)
{
	(void)arg;
	if (shma_connect(d.socket) != 0)
		return 70;
	for (unsigned i = 0; i < 8192; i++) {
		void *p = shma_malloc(64);
		if (p == NULL)
			return 71;
		e2e_fill(p, 64, 0xabc000 + i);
	}
	return 0;
}

static void wait_rounds(uint64_t more)
{
	uint64_t want = __atomic_load_n(&sh->rounds, __ATOMIC_ACQUIRE) + more;
	for (int i = 0; i < 1000 && __atomic_load_n(&sh->rounds, __ATOMIC_ACQUIRE) < want &&
			!__atomic_load_n(&sh->done, __ATOMIC_ACQUIRE);
	     i++)
		usleep(10000);
}

/* The daemon is restarted while the worker runs: the control block it finds
 * belongs to a process whose main thread is a zombie.  It must be kept for
 * the worker, not taken back. */
START_TEST(a_process_lives_while_any_thread_does)
{
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(sh, MAP_FAILED);
	memset(sh, 0, sizeof *sh);
	e2e_start_daemon_kept(&d, NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		client();
	wait_rounds(3);
	ck_assert_int_eq(sh->done, 0);
	e2e_kill_daemon(&d);
	ck_assert_int_eq(e2e_restart_daemon(&d, NULL), 0);
	ck_assert_msg(e2e_log_has(&d, "1 of live processes kept"),
		      "the restarted daemon took the worker's process for dead; see %s", d.log);
	pid_t o = fork();
	ck_assert_int_ge(o, 0);
	if (o == 0)
		_exit(other(NULL));
	wait_rounds(5);
	ck_assert_int_eq(e2e_wait(o), 0);
	wait_rounds(3);
	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);
	ck_assert_int_eq(e2e_wait(pid), 0);
	ck_assert_int_eq(sh->result, 0);
	e2e_cleanup_daemon(&d);
	munmap(sh, sizeof *sh);
}
END_TEST

Suite *make_liveness_suite(void);
Suite *make_liveness_suite(void)
{
	Suite *s = suite_create("liveness");
	TCase *tc = tcase_create("liveness");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, a_process_lives_while_any_thread_does);
	suite_add_tcase(s, tc);
	return s;
}
