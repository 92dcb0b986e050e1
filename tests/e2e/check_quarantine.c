/* SPDX-License-Identifier: MIT */
/*
 * Quarantine, end to end: the daemon's own uid scribbles on segment 'M'
 * (arena 0's page map) of a real daemon, while it runs and between a kill
 * and a restart, and the daemon must go on serving: the arena is
 * quarantined (one log line, "quarantined":true in the stats), nothing new
 * comes from it, what is out of it stays out -- no block is handed out
 * twice -- and the other arenas serve.  Each scribble is one a test once
 * showed to crash the daemon, stop its restarts, or hand blocks out again.
 */
#include "e2e.h"
#include "instance.h"
#include "layout.h"
#include "recovery.h"
#include "shmalloc.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define HELD 200
#define FRESH 3000
#define OBJ_SIZE 64

/* Shared between the test and its forked clients. */
struct board {
	uint64_t held[HELD];
	volatile int ready, go;
	uint64_t arena_size;
};

static struct board *board_new(void)
{
	struct board *b = mmap(NULL, sizeof *b, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			       -1, 0);
	ck_assert_ptr_ne(b, MAP_FAILED);
	memset(b, 0, sizeof *b);
	return b;
}

static FILE *open_meta(const struct e2e_daemon *d)
{
	char path[128];
	snprintf(path, sizeof path, "/dev/shm/shmalloc.%s.M", d->instance);
	FILE *f = fopen(path, "r+");
	ck_assert_ptr_nonnull(f);
	return f;
}

/* Where the page map entry of the page ref lies in 'M' (ref in arena 0). */
static off_t entry_offset(FILE *f, uint64_t ref, uint64_t *arena_size)
{
	struct heap_header hh;
	ck_assert_int_eq(fseeko(f, 0, SEEK_SET), 0);
	ck_assert_uint_eq(fread(&hh, sizeof hh, 1, f), 1);
	struct arena_geometry g;
	ck_assert_int_eq(layout_geometry(hh.arena_size, &g), 0);
	*arena_size = hh.arena_size;
	ck_assert_uint_lt(ref, hh.arena_size); /* arena 0 */
	uint64_t page = ref >> SHMA_PAGE_SHIFT;
	return (off_t)(layout_meta_offset(hh.meta_bytes, 0) + g.page_map_off +
		       page * sizeof(struct page_entry));
}

/* Rewrites the page map entry of ref's page with fn. */
static void scribble(const struct e2e_daemon *d, uint64_t ref,
		     void (*fn)(struct page_entry *, uint64_t arena_size), uint64_t *arena_size)
{
	FILE *f = open_meta(d);
	off_t off = entry_offset(f, ref, arena_size);
	struct page_entry pe;
	ck_assert_int_eq(fseeko(f, off, SEEK_SET), 0);
	ck_assert_uint_eq(fread(&pe, sizeof pe, 1, f), 1);
	ck_assert_uint_eq(pe.kind, PAGE_SPAN);
	fn(&pe, *arena_size);
	ck_assert_int_eq(fseeko(f, off, SEEK_SET), 0);
	ck_assert_uint_eq(fwrite(&pe, sizeof pe, 1, f), 1);
	fclose(f);
}

static void span_start_past_the_arena(struct page_entry *pe, uint64_t arena_size)
{
	pe->span_start = (uint32_t)(arena_size >> SHMA_PAGE_SHIFT) + 1000000u;
}

static void unknown_kind(struct page_entry *pe, uint64_t arena_size)
{
	(void)arena_size;
	pe->kind = 9;
}

/* Holds HELD objects (stamped) and publishes their refs; with wait_go,
 * waits for the test's go, then frees them all and disconnects (a flush of
 * every ref of its cache). */
static int hold(struct board *b, int wait_go)
{
	void *p[HELD];
	for (unsigned i = 0; i < HELD; i++) {
		p[i] = shma_malloc(OBJ_SIZE);
		if (p[i] == NULL)
			return 1;
		memset(p[i], 0xa5, OBJ_SIZE);
		b->held[i] = shma_ref(p[i]);
	}
	__atomic_store_n(&b->ready, 1, __ATOMIC_RELEASE);
	if (!wait_go)
		return 0; /* exits holding them: they stay out */
	while (!__atomic_load_n(&b->go, __ATOMIC_ACQUIRE))
		usleep(1000);
	for (unsigned i = 0; i < HELD; i++)
		shma_free(p[i]);
	shma_disconnect();
	return 0;
}

static int hold_and_wait(void *arg)
{
	return hold(arg, 1);
}

static int hold_and_exit(void *arg)
{
	return hold(arg, 0);
}

/* A fresh client: FRESH objects of the held size, none in arena 0 (it is
 * quarantined) and none one of the held ones; the stats say arena 0 is
 * quarantined. */
static int fresh_client(void *arg)
{
	const struct board *b = arg;
	for (unsigned i = 0; i < FRESH; i++) {
		char *p = shma_malloc(OBJ_SIZE);
		if (p == NULL)
			return 1;
		uint64_t ref = shma_ref(p);
		if (ref < b->arena_size)
			return 2; /* from the quarantined arena */
		for (unsigned k = 0; k < HELD; k++)
			if (ref == b->held[k])
				return 3; /* handed out twice */
		memset(p, 0x11, OBJ_SIZE);
	}
	char *json;
	if (shma_stats_json(&json) != 0)
		return 4;
	int ok = strstr(json, "\"id\":0,") != NULL &&
		 strstr(strstr(json, "\"id\":0,"), "\"quarantined\":true") != NULL;
	free(json);
	return ok ? 0 : 5;
}

/* 1 if d's daemon runs (a dead one is our unreaped child: kill(pid, 0)
 * would still succeed). */
static int daemon_alive(const struct e2e_daemon *d)
{
	int st;
	return waitpid(d->pid, &st, WNOHANG) == 0;
}

START_TEST(a_span_start_past_the_arena_quarantines_at_the_flush)
{
	struct e2e_daemon d;
	e2e_start_daemon(&d, NULL);
	struct board *b = board_new();
	pid_t holder = recovery_fork_client(d.socket, hold_and_wait, b);
	for (int i = 0; i < 5000 && !__atomic_load_n(&b->ready, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	ck_assert(b->ready);
	/* Before: span_of_page[span_start] read far past the array, SIGSEGV
	 * at this flush. */
	scribble(&d, b->held[0], span_start_past_the_arena, &b->arena_size);
	__atomic_store_n(&b->go, 1, __ATOMIC_RELEASE);
	ck_assert_int_eq(e2e_wait(holder), 0);
	ck_assert_int_eq(e2e_wait(recovery_fork_client(d.socket, fresh_client, b)), 0);
	ck_assert(daemon_alive(&d));
	ck_assert_int_eq(e2e_log_count(&d, "arena 0 quarantined"), 1);
	e2e_stop_daemon(&d);
	munmap(b, sizeof *b);
}
END_TEST

/* Objects held, the daemon killed, arena 0's page map scribbled with fn,
 * the daemon restarted: it must start, quarantine arena 0 and serve from
 * other arenas only. */
static void across_a_restart(void (*fn)(struct page_entry *, uint64_t))
{
	struct e2e_daemon d;
	e2e_start_daemon_kept(&d, NULL);
	struct board *b = board_new();
	ck_assert_int_eq(e2e_wait(recovery_fork_client(d.socket, hold_and_exit, b)), 0);
	e2e_kill_daemon(&d);
	scribble(&d, b->held[0], fn, &b->arena_size);
	ck_assert_int_eq(e2e_restart_daemon(&d, NULL), 0);
	ck_assert_int_eq(e2e_wait(recovery_fork_client(d.socket, fresh_client, b)), 0);
	ck_assert(daemon_alive(&d));
	ck_assert(!e2e_log_has(&d, "refusing to start"));
	ck_assert_int_eq(e2e_log_count(&d, "arena 0 quarantined"), 1);
	e2e_cleanup_daemon(&d);
	ck_assert_int_eq(test_segments_left(d.instance), 0);
	munmap(b, sizeof *b);
}

/* Before: "page N of unknown kind 9", every restart refused. */
START_TEST(an_unknown_page_kind_quarantines_at_the_restart)
{
	across_a_restart(unknown_kind);
}
END_TEST

/* Before: the span's pages disagreed, so recovery took it for one cut
 * short, wrote its pages back to free and handed its objects out again
 * while the bitmap said they were out. */
START_TEST(a_span_start_past_the_arena_quarantines_at_the_restart)
{
	across_a_restart(span_start_past_the_arena);
}
END_TEST

Suite *make_quarantine_suite(void);
Suite *make_quarantine_suite(void)
{
	Suite *s = suite_create("quarantine");
	TCase *tc = tcase_create("quarantine");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, a_span_start_past_the_arena_quarantines_at_the_flush);
	tcase_add_test(tc, an_unknown_page_kind_quarantines_at_the_restart);
	tcase_add_test(tc, a_span_start_past_the_arena_quarantines_at_the_restart);
	suite_add_tcase(s, tc);
	return s;
}
