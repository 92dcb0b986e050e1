/* SPDX-License-Identifier: MIT */
/*
 * The dispatcher: one decoded request in, one response (or none) out, and
 * whether the connection must close after it.  It decides; the connection
 * (conn.c) writes.  Layer: session (no libuv).
 */
#ifndef SHMA_SERVER_DISPATCH_H
#define SHMA_SERVER_DISPATCH_H

#include "daemon.h"
#include "shmalloc.pb-c.h"

enum dispatch_action {
	DISPATCH_REPLY = 0,       /* send *resp */
	DISPATCH_REPLY_CLOSE = 1, /* send *resp, then close the connection */
	DISPATCH_NONE = 2,        /* nothing to send (a flush nobody waits for) */
};

/* Scratch that a response points into, freed by dispatch_done(). */
struct dispatch_scratch {
	void *blocks[16];
	unsigned nblocks;
	char message[256];
};

enum dispatch_action dispatch_request(struct daemon *d, struct client *c,
				      const Shma__Request *req, Shma__Response *resp,
				      struct dispatch_scratch *s);

/* An Error response with code (positive errno) and a message. */
void dispatch_error(Shma__Response *resp, struct dispatch_scratch *s, uint64_t id,
		    int code, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* An Error the connection survives, logged and counted against c. */
enum dispatch_action dispatch_refuse(struct daemon *d, struct client *c, Shma__Response *resp,
				     struct dispatch_scratch *s, uint64_t id, int code,
				     const char *what);

/* n zeroed bytes that live until dispatch_done(); NULL when out of memory
 * or out of scratch blocks. */
void *dispatch_scratch_alloc(struct dispatch_scratch *s, size_t n);

void dispatch_done(struct dispatch_scratch *s);

/*
 * Packs resp into one frame (header included) in a buffer of malloc(3)'s
 * that the caller frees.  0 or -ENOMEM.
 */
int dispatch_pack(const Shma__Response *resp, uint8_t **frame, size_t *frame_len);

/*
 * One frame's body, as it came off the socket: decodes it as a Request,
 * dispatches it and packs the answer.  *frame (freed by the caller with
 * free(3)) is the response frame to write, or NULL when there is nothing to
 * send.  A body that does not decode is answered with an EPROTO Error,
 * logged and counted, and the action is DISPATCH_REPLY_CLOSE; so is a
 * response that cannot be packed for want of memory (then *frame is NULL).
 * Needs no event loop: the server and the fuzz target share it.
 */
enum dispatch_action dispatch_frame(struct daemon *d, struct client *c, const uint8_t *body,
				    uint32_t len, uint8_t **frame, size_t *frame_len);

#endif
