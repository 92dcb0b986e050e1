/*
 * The dispatcher: one decoded request in, one response (or none) out, and
 * whether the connection must close after it.  It decides; the server writes.
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

void dispatch_done(struct dispatch_scratch *s);

#endif
