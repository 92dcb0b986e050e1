/* SPDX-License-Identifier: MIT */
/*
 * Workers: n processes or threads released together by one barrier.
 *
 * The barrier, the timestamps and each worker's status live in one shared
 * anonymous mapping, so threads and forked processes are handled by the same
 * code.  A forked worker leaves with _exit(), never running the parent's
 * atexit handlers or flushing its stdio buffers twice.
 */
#include "config.h"

#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct board {
	_Atomic int ready;
	_Atomic int go;
	int64_t start[WORKERS_MAX];
	int64_t end[WORKERS_MAX];
	int status[WORKERS_MAX];
	char why[WORKERS_MAX][160];
	worker_fn fn;
	void *arg;
};

struct thread_arg {
	struct board *board;
	int index;
};

int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void worker_body(struct board *b, int i)
{
	atomic_fetch_add(&b->ready, 1);
	while (!atomic_load(&b->go))
		sched_yield();
	b->start[i] = now_ns();
	b->status[i] = b->fn(i, b->arg, b->why[i], sizeof b->why[i]);
	b->end[i] = now_ns();
}

static void *thread_main(void *p)
{
	struct thread_arg *ta = p;

	worker_body(ta->board, ta->index);
	return NULL;
}

/* Both starters return how many workers they started. */
static int start_procs(struct board *b, int n, pid_t *pid)
{
	for (int i = 0; i < n; i++) {
		pid[i] = fork();
		if (pid[i] < 0)
			return i;
		if (pid[i] == 0) {
			worker_body(b, i);
			_exit(b->status[i] == 0 ? 0 : 1);
		}
	}
	return n;
}

static void join_procs(struct board *b, int n, const pid_t *pid)
{
	for (int i = 0; i < n; i++) {
		int st;

		if (pid[i] <= 0 || waitpid(pid[i], &st, 0) < 0)
			continue;
		if (WIFSIGNALED(st)) {
			b->status[i] = -1;
			snprintf(b->why[i], sizeof b->why[i], "worker %d killed by signal %d",
				 i, WTERMSIG(st));
		} else if (WEXITSTATUS(st) != 0 && b->status[i] == 0) {
			b->status[i] = -1;
			snprintf(b->why[i], sizeof b->why[i], "worker %d exited %d", i,
				 WEXITSTATUS(st));
		}
	}
}

static int start_threads(struct board *b, int n, pthread_t *tid, struct thread_arg *ta)
{
	for (int i = 0; i < n; i++) {
		ta[i].board = b;
		ta[i].index = i;
		if (pthread_create(&tid[i], NULL, thread_main, &ta[i]) != 0)
			return i;
	}
	return n;
}

static int64_t wall_time(const struct board *b, int n)
{
	int64_t first = b->start[0], last = b->end[0];

	for (int i = 1; i < n; i++) {
		if (b->start[i] < first)
			first = b->start[i];
		if (b->end[i] > last)
			last = b->end[i];
	}
	return last - first;
}

static int verdict(const struct board *b, int n, char *why, size_t len)
{
	for (int i = 0; i < n; i++) {
		if (b->status[i] != 0) {
			snprintf(why, len, "%s", b->why[i][0] ? b->why[i] : "worker failed");
			return -1;
		}
	}
	return 0;
}

static void release_when_ready(struct board *b, int started)
{
	while (atomic_load(&b->ready) < started)
		sched_yield();
	atomic_store(&b->go, 1);
}

int workers_run(int n, int as_procs, worker_fn fn, void *arg, int64_t *wall_ns,
		char *why, size_t len)
{
	pid_t pid[WORKERS_MAX] = { 0 };
	pthread_t tid[WORKERS_MAX];
	struct thread_arg ta[WORKERS_MAX];
	struct board *b;
	int started, rc;

	if (n < 1 || n > WORKERS_MAX)
		return snprintf(why, len, "bad worker count %d", n), -1;
	b = mmap(NULL, sizeof *b, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		return snprintf(why, len, "mmap: %s", strerror(errno)), -1;
	memset(b, 0, sizeof *b);
	b->fn = fn;
	b->arg = arg;
	started = as_procs ? start_procs(b, n, pid) : start_threads(b, n, tid, ta);
	rc = started == n ? 0 : -1;
	if (rc != 0)
		snprintf(why, len, "started %d of %d workers: %s", started, n,
			 strerror(errno));
	release_when_ready(b, started);
	if (as_procs)
		join_procs(b, started, pid);
	else
		for (int i = 0; i < started; i++)
			pthread_join(tid[i], NULL);
	if (rc == 0)
		rc = verdict(b, n, why, len);
	*wall_ns = wall_time(b, n);
	munmap(b, sizeof *b);
	return rc;
}
