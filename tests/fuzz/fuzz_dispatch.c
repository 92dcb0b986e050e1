/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the daemon's request handler, fed what a hostile peer
 * could send on one connection.
 *
 * Each input is the byte stream of one connection.  It is cut into frames
 * as the server does and each frame goes through dispatch_frame() -- the
 * same decode, validation and effect the server runs, minus the socket --
 * until the input ends or the dispatcher decides to close.  Then the
 * connection ends as a crash would (no goodbye), from a peer whose process
 * is gone, so whatever its control block holds is taken back.  Every input starts from a
 * fresh heap and fresh roots on an instance of this process ("fz<pid>"), so
 * a finding replays from its input alone.
 *
 * What must hold: no crash, no sanitizer report, no leak, and every
 * response packs into one frame the client would read (responses may pass
 * --max-frame, which bounds requests: libshmalloc reads up to 64 MiB) that
 * decodes again as a Response.
 */
#include "control.h"
#include "daemon.h"
#include "dispatch.h"
#include "frame.h"
#include "fuzz_daemon.h"
#include "log.h"
#include "shmalloc.pb-c.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct daemon d;

static void open_daemon(void)
{
	memset(&d, 0, sizeof d);
	snprintf(d.opt.instance, sizeof d.opt.instance, "fz%ld", (long)getpid());
	d.opt.arena_size = FUZZ_ARENA_SIZE;
	d.opt.max_memory = FUZZ_MAX_MEMORY;
	d.opt.client_max_memory = FUZZ_CLIENT_MAX_MEMORY;
	d.opt.large_threshold = FUZZ_LARGE_THRESHOLD;
	d.opt.decay_ms = 0;
	d.opt.max_frame = FRAME_DEFAULT_MAX;
	d.opt.segment_mode = 0600;
	struct heap_config hc = {
		.instance = d.opt.instance,
		.arena_size = d.opt.arena_size,
		.max_memory = d.opt.max_memory,
		.mode = 0600,
		.decay_ms = 0,
	};
	if (heap_open(&d.heap, &hc) != 0 || roots_open(&d.roots, d.opt.instance, 0600) != 0)
		abort();
}

static void close_daemon(void)
{
	roots_close(d.roots, 1);
	heap_close(d.heap, 1);
}

/* The response must be one well-formed frame the client can read. */
static void check_response(const uint8_t *frame, size_t len)
{
	const uint8_t *body;
	uint32_t n;
	size_t used;
	if (frame_next(frame, len, WIRE_RESPONSE_MAX, &body, &n, &used) != FRAME_OK || used != len)
		abort();
	Shma__Response *r = shma__response__unpack(NULL, n, body);
	if (r == NULL)
		abort();
	shma__response__free_unpacked(r, NULL);
}

static void one_connection(struct client *c, const uint8_t *data, size_t size)
{
	size_t off = 0;
	for (;;) {
		const uint8_t *body;
		uint32_t n;
		size_t used;
		if (frame_next(data + off, size - off, d.opt.max_frame, &body, &n, &used) != FRAME_OK)
			return;
		off += used;
		uint8_t *frame;
		size_t flen;
		enum dispatch_action act = dispatch_frame(&d, c, body, n, &frame, &flen);
		if (frame != NULL)
			check_response(frame, flen);
		free(frame);
		if (act == DISPATCH_REPLY_CLOSE)
			return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int quiet;
	if (!quiet) {
		log_set_level(getenv("FUZZ_LOG") ? SLOG_DEBUG : SLOG_ERROR);
		quiet = 1;
	}
	open_daemon();
	struct client c;
	memset(&c, 0, sizeof c);
	c.ctl_fd = -1;
	c.pid = 0x7ffffff0; /* past any pid_max: the peer is gone when the connection ends */
	d.clients = &c;
	d.nclients = 1;
	one_connection(&c, data, size);
	daemon_control_release(&d, &c, !c.said_goodbye);
	close_daemon();
	return 0;
}
