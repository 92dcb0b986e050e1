/* SPDX-License-Identifier: MIT */
/*
 * shmallocd: reads the options, opens (or recovers) the heap, the roots and
 * the control blocks an earlier run left, runs the loop.  Layer: loop (it
 * starts server.c's); it sees no libuv type itself.
 */
#include "access.h"
#include "control.h"
#include "daemon.h"
#include "heaps.h"
#include "log.h"
#include "seg.h"
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <sys/random.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --discard: start afresh, whatever an earlier run left. */
static void discard_leftovers(const struct options *o)
{
	int n = seg_instance_segments(o->instance, 1);
	if (n < 0)
		log_msg(SLOG_ERROR, "cannot list /dev/shm: %s", strerror(-n));
	else if (n > 0)
		log_msg(SLOG_WARN, "discarded %d segments of instance %s left by an earlier run",
			n, o->instance);
}

/* One line when an arena is quarantined (heap.h), in recovery or later. */
static void log_quarantine(void *arg, unsigned arena, const char *why)
{
	(void)arg;
	log_msg(SLOG_ERROR, "arena %u quarantined: %s; nothing new is handed out from it, "
		"what is out of it stays out, the other arenas serve on", arena, why);
}

static void log_recovery(const struct heap *h)
{
	struct heap_recovery r;
	heap_recovery(h, &r);
	const struct heap_header *hh = heap_header(h);
	log_msg(SLOG_INFO, "heap at 0x%llx, %llu bytes of address space", (unsigned long long)hh->base,
		(unsigned long long)hh->range);
	if (r.old_base != 0)
		log_msg(SLOG_WARN, "--base moved the heap from 0x%llx: pointers stored in it by "
			"earlier processes no longer hold", (unsigned long long)r.old_base);
	if (r.pages_cut != 0)
		log_msg(SLOG_ERROR, "the pages segment was cut to %lld bytes while the daemon was "
			"down: its size is back, what lay past the cut reads as zeros",
			(long long)r.pages_cut_to);
	if (r.arenas == 0 && r.large_blocks == 0)
		return;
	log_msg(SLOG_INFO, "recovered instance: %u arenas, %u spans with %llu objects out, "
		"%llu large blocks, %u page map entries of spans cut short repaired",
		r.arenas, r.spans, (unsigned long long)r.objects_out,
		(unsigned long long)r.large_blocks, r.repaired_pages);
}

/* Opens the heap: what an earlier run left is recovered, or, when it is not
 * ours to trust, the daemon refuses to start. */
static int open_heap(struct daemon *d)
{
	char why[256] = "";
	struct heap_config hc = {
		.instance = d->opt.instance,
		.arena_size = d->opt.arena_size,
		.max_memory = d->opt.max_memory,
		.base = d->opt.base,
		.mode = d->opt.segment_mode,
		.decay_ms = d->opt.decay_ms,
		.why = why,
		.why_size = sizeof why,
		.on_quarantine = log_quarantine,
	};
	int rc = heap_open(&d->heap, &hc);
	if (rc == 0) {
		log_recovery(d->heap);
		return 0;
	}
	if (rc == -EBUSY)
		log_msg(SLOG_ERROR, "refusing to start: %s", why);
	else if (why[0] != '\0')
		log_msg(SLOG_ERROR, "refusing to start: %s; start with --discard to remove every "
			"segment of instance %s (/dev/shm/shmalloc.%s.*)", why, d->opt.instance,
			d->opt.instance);
	else if (rc == -EINVAL && d->opt.max_memory != 0 && d->opt.max_memory < d->opt.arena_size)
		log_msg(SLOG_ERROR, "--max-memory %llu bytes is less than one arena: the least is "
			"--arena-size, %llu MiB (--arena-size goes down to 1M)",
			(unsigned long long)d->opt.max_memory,
			(unsigned long long)(d->opt.arena_size >> 20));
	else
		log_msg(SLOG_ERROR, "cannot open the heap: %s", strerror(-rc));
	return rc;
}

/* The registry of named heaps, after the heap's recovery (heaps.h). */
static int daemon_heaps_open(struct daemon *d)
{
	struct heaps_recovered rec;
	int rc = heaps_open(&d->heaps, d->heap, d->opt.instance,
			    seg_kind_mode(SEG_HEAPS, d->opt.segment_mode), &rec);
	if (rc != 0) {
		log_msg(SLOG_ERROR, "refusing to start: cannot open the named heaps "
			"(/dev/shm/shmalloc.%s.h0): %s; start with --discard to remove every "
			"segment of the instance", d->opt.instance, strerror(-rc));
		return rc;
	}
	if (rec.heaps || rec.destroys_done || rec.orphans_ended)
		log_msg(SLOG_INFO, "named heaps: %u live, %u destroys finished, %u left "
			"regions ended, %llu bytes freed", rec.heaps, rec.destroys_done,
			rec.orphans_ended, (unsigned long long)rec.bytes_freed);
	return 0;
}

static int open_state(struct daemon *d)
{
	if (d->opt.discard)
		discard_leftovers(&d->opt);
	int rc = open_heap(d);
	if (rc != 0)
		return rc;
	/* Metadata: no client writes it, whatever the segment mode. */
	rc = roots_open(&d->roots, d->opt.instance,
			seg_kind_mode(SEG_MANIFEST, d->opt.segment_mode));
	if (rc != 0) {
		log_msg(SLOG_ERROR, "refusing to start: cannot open the roots "
			"(/dev/shm/shmalloc.%s.m): %s; start with --discard to remove every "
			"segment of the instance",
			d->opt.instance, strerror(-rc));
		heap_close(d->heap, 0);
		return rc;
	}
	rc = daemon_heaps_open(d);
	if (rc != 0) {
		roots_close(d->roots, 0);
		heap_close(d->heap, 0);
		return rc;
	}
	rc = daemon_control_recover(d);
	if (rc != 0)
		log_msg(SLOG_WARN, "cannot list control blocks: %s", strerror(-rc));
	return 0;
}

/* Opens the state under the instance name perimeter_pick_instance() gives;
 * when a name is taken under us between its look and our open (-EEXIST) or
 * a file not ours is found (-EPERM), the next name is tried. */
static int open_instance(struct daemon *d)
{
	char base[sizeof d->opt.instance];
	strcpy(base, d->opt.instance);
	unsigned from = 0;
	for (int tries = 0;; tries++) {
		int n = perimeter_pick_instance(&d->opt, base, from);
		if (n < 0)
			return n;
		int rc = open_state(d);
		if (rc == 0 || (rc != -EEXIST && rc != -EPERM) || tries == 3)
			return rc;
		from = (unsigned)n + 1;
	}
}

int main(int argc, char **argv)
{
	static struct daemon d;
	/* The socket's directory, checked and held: the loop's, not the
	 * session layer's (it is no part of struct daemon). */
	static struct perimeter perimeter;
	switch (options_parse(&d.opt, argc, argv, stdout, stderr)) {
	case OPTIONS_EXIT_OK: return 0;
	case OPTIONS_ERROR: return 2;
	case OPTIONS_RUN: break;
	}
	log_set_level((enum log_level)d.opt.log_level);
	signal(SIGPIPE, SIG_IGN);
	if (getrandom(&d.life, sizeof d.life, 0) != (ssize_t)sizeof d.life)
		d.life = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
	if (d.opt.daemonize && daemon(1, 0) != 0) {
		perror("shmallocd: daemon");
		return 1;
	}
	/* The perimeter first: a daemon that will not listen opens nothing. */
	if (perimeter_open_dir(&perimeter, &d.opt) != 0)
		return 1;
	if (access_prepare(&d.opt) != 0 || open_instance(&d) != 0) {
		perimeter_close(&perimeter);
		return 1;
	}
	int rc = server_run(&d, &perimeter);
	daemon_control_close(&d, d.opt.cleanup);
	heaps_close(d.heaps, d.opt.cleanup);
	roots_close(d.roots, d.opt.cleanup);
	heap_close(d.heap, d.opt.cleanup);
	quota_close(&d);
	perimeter_close(&perimeter);
	return rc;
}
