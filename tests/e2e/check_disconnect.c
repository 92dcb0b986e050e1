/* SPDX-License-Identifier: MIT */
/*
 * shma_disconnect() while other threads allocate: four threads allocate,
 * stamp and check blocks while the main thread disconnects and connects
 * again in a loop.  No crash, and no block in two threads' hands at once
 * (each block carries its owner's stamp until it frees it).
 */
#include "e2e.h"
#include "shmalloc.h"

#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define THREADS 4
#define LIVE 64

struct worker {
	unsigned id;
	unsigned long bad, failed, done;
};

static volatile int stop;

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t *live[LIVE] = {0};
	uint64_t stamp[LIVE] = {0};
	for (unsigned r = 0; !stop; r++) {
		w->done++;
		unsigned k = r % LIVE;
		if (live[k] != NULL) {
			if (live[k][0] != stamp[k] || live[k][1] != ~stamp[k])
				w->bad++;
			shma_free(live[k]);
			live[k] = NULL;
		}
		uint64_t *p = shma_malloc(16 + (r % 4) * 16);
		if (p == NULL) {
			w->failed++;
			continue;
		}
		stamp[k] = (uint64_t)w->id << 32 | r;
		p[0] = stamp[k];
		p[1] = ~stamp[k];
		live[k] = p;
	}
	for (unsigned k = 0; k < LIVE; k++) {
		if (live[k] != NULL && (live[k][0] != stamp[k] || live[k][1] != ~stamp[k]))
			w->bad++;
		shma_free(live[k]);
	}
	return NULL;
}

static int disconnect_under_allocators(void *arg)
{
	const char *socket = arg;
	pthread_t t[THREADS];
	struct worker w[THREADS];
	for (unsigned i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.id = i + 1};
		if (pthread_create(&t[i], NULL, work, &w[i]) != 0)
			return 10;
	}
	for (unsigned i = 0; i < 200; i++) {
		shma_disconnect();
		usleep(500);
		if (shma_connect(socket) != 0)
			return 11;
		usleep(500);
	}
	stop = 1;
	unsigned long bad = 0, done = 0, failed = 0;
	for (unsigned i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		bad += w[i].bad;
		done += w[i].done;
		failed += w[i].failed;
	}
	fprintf(stderr, "disconnect: %lu allocations, %lu failed, %lu blocks in two hands\n", done,
		failed, bad);
	return bad != 0 ? 12 : done < 10000 ? 13 : 0;
}

START_TEST(disconnect_while_four_threads_allocate)
{
	ck_assert_int_eq(e2e_wait(e2e_fork(disconnect_under_allocators, e2e.socket)), 0);
}
END_TEST

Suite *make_disconnect_suite(void);
Suite *make_disconnect_suite(void)
{
	Suite *s = suite_create("disconnect");
	TCase *tc = tcase_create("disconnect");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, disconnect_while_four_threads_allocate);
	suite_add_tcase(s, tc);
	return s;
}
