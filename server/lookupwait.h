/* SPDX-License-Identifier: MIT */
/*
 * Lookups that wait for a name (Lookup.wait_ms, shma_lookup_wait()): parked
 * until the name's Publish or their deadline, answered then.  Layer: session
 * (no libuv): the loop gives the function that writes an answer to a
 * client's connection (lookupwait_set_deliver()) and calls
 * lookupwait_expire() when lookupwait_next_ms() says.
 */
#ifndef SHMA_SERVER_LOOKUPWAIT_H
#define SHMA_SERVER_LOOKUPWAIT_H

#include <stddef.h>
#include <stdint.h>

#include "daemon.h"
#include "dispatch.h"

/* Waits parked at most, over all clients, and per client. */
#define LOOKUPWAIT_MAX 4096u
#define LOOKUPWAIT_PER_CLIENT 16u

/* Writes frame (malloc'ed; the callee frees it) to c's connection. */
typedef void lookupwait_deliver_fn(void *ctx, struct client *c, uint8_t *frame, size_t len);
void lookupwait_set_deliver(lookupwait_deliver_fn *fn, void *ctx);

/* c's Lookup id for name (checked, not published) waits up to wait_ms:
 * DISPATCH_NONE (answered later), or an EAGAIN Error in resp when c or the
 * daemon has too many waiting. */
enum dispatch_action lookupwait_park(struct daemon *d, struct client *c, uint64_t id,
				     const char *name, uint32_t wait_ms, Shma__Response *resp,
				     struct dispatch_scratch *s);

/* name was just published as ref: every lookup waiting for it is answered. */
void lookupwait_published(struct daemon *d, const char *name, uint64_t ref);

/* Answers the lookups whose deadline has passed with ETIMEDOUT. */
void lookupwait_expire(struct daemon *d);

/* Milliseconds until the next deadline (0: one is due), or -1 with none. */
int64_t lookupwait_next_ms(const struct daemon *d);

/* c's connection ended: its waits go, unanswered. */
void lookupwait_forget(struct daemon *d, struct client *c);

#endif
