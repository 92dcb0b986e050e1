/*
 * shmallocd: reads the options, opens the heap and the roots, runs the loop.
 */
#include "daemon.h"
#include "log.h"
#include "seg.h"
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Segments an earlier run left: this version cannot yet rebuild a heap from
 * them, so it refuses to start over them unless told to discard them. */
static int check_leftovers(const struct options *o)
{
	int n = seg_instance_segments(o->instance, o->discard);
	if (n < 0) {
		log_msg(LOG_ERROR, "cannot list /dev/shm: %s", strerror(-n));
		return n;
	}
	if (n > 0 && o->discard) {
		log_msg(LOG_WARN, "discarded %d segments of instance %s left by an earlier run",
			n, o->instance);
		return 0;
	}
	if (n > 0) {
		log_msg(LOG_ERROR,
			"%d segments of instance %s exist (/dev/shm/shmalloc.%s.*), left by an "
			"earlier run; start with --discard to remove them", n, o->instance,
			o->instance);
		return -EEXIST;
	}
	return 0;
}

static int open_state(struct daemon *d)
{
	if (check_leftovers(&d->opt) != 0)
		return -EEXIST;
	struct heap_config hc = {
		.instance = d->opt.instance,
		.arena_size = d->opt.arena_size,
		.max_memory = d->opt.max_memory,
		.mode = d->opt.segment_mode,
		.decay_ms = d->opt.decay_ms,
	};
	int rc = heap_open(&d->heap, &hc);
	if (rc != 0) {
		log_msg(LOG_ERROR, "cannot create the heap: %s", strerror(-rc));
		return rc;
	}
	rc = roots_open(&d->roots, d->opt.instance, d->opt.segment_mode);
	if (rc != 0) {
		log_msg(LOG_ERROR, "cannot open the roots: %s", strerror(-rc));
		heap_close(d->heap, d->opt.cleanup);
	}
	return rc;
}

int main(int argc, char **argv)
{
	static struct daemon d;
	switch (options_parse(&d.opt, argc, argv, stdout, stderr)) {
	case OPTIONS_EXIT_OK: return 0;
	case OPTIONS_ERROR: return 2;
	case OPTIONS_RUN: break;
	}
	log_set_level((enum log_level)d.opt.log_level);
	signal(SIGPIPE, SIG_IGN);
	if (d.opt.daemonize && daemon(1, 0) != 0) {
		perror("shmallocd: daemon");
		return 1;
	}
	if (open_state(&d) != 0)
		return 1;
	int rc = server_run(&d);
	roots_close(d.roots, d.opt.cleanup);
	heap_close(d.heap, d.opt.cleanup);
	return rc;
}
