/* SPDX-License-Identifier: MIT */
/*
 * Lookups that wait for a name: see lookupwait.h.
 *
 * A program that waits for another to publish a root ("the ring is up")
 * had to poll shma_lookup, and could not tell "not yet" from "no daemon".
 * With Lookup.wait_ms the daemon keeps the lookup instead: the connection
 * gets no answer until the name is published (then the ref) or the wait
 * ends (then ETIMEDOUT), and in between costs the daemon an entry here and
 * nothing per tick.  Entries are few (LOOKUPWAIT_MAX, LOOKUPWAIT_PER_CLIENT)
 * and kept in one array, scanned at each publish and each expiry: bounded
 * work, as every request's must be.
 *
 * The array is the process's (one daemon a process; unit tests that make
 * several keep them apart by the daemon pointer).  An entry's client is
 * read only while it parks (its id, for the log); later it is only
 * compared and handed to the deliver function, never read here, so
 * that a harness which drops sessions without lookupwait_forget() (the fuzz
 * target) cannot make this file touch freed memory.
 */
#include "lookupwait.h"
#include "log.h"
#include "rootname.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct waiting {
	struct daemon *d;
	struct client *c;
	uint64_t id;
	uint64_t deadline_ms;
	char name[ROOT_NAME_MAX + 1];
};

static struct waiting *waits;
static unsigned nwaits;
static lookupwait_deliver_fn *deliver;
static void *deliver_ctx;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void lookupwait_set_deliver(lookupwait_deliver_fn *fn, void *ctx)
{
	deliver = fn;
	deliver_ctx = ctx;
}

enum dispatch_action lookupwait_park(struct daemon *d, struct client *c, uint64_t id,
				     const char *name, uint32_t wait_ms, Shma__Response *resp,
				     struct dispatch_scratch *s)
{
	unsigned mine = 0;
	for (unsigned i = 0; i < nwaits; i++)
		mine += waits[i].c == c;
	if (waits == NULL)
		waits = calloc(LOOKUPWAIT_MAX, sizeof *waits);
	if (waits == NULL || nwaits == LOOKUPWAIT_MAX || mine >= LOOKUPWAIT_PER_CLIENT) {
		dispatch_error(resp, s, id, EAGAIN, "lookup: too many lookups waiting (at most %u "
			       "a client)", LOOKUPWAIT_PER_CLIENT);
		return DISPATCH_REPLY;
	}
	struct waiting *w = &waits[nwaits++];
	w->d = d;
	w->c = c;
	w->id = id;
	w->deadline_ms = now_ms() + wait_ms;
	snprintf(w->name, sizeof w->name, "%s", name);
	log_msg(SLOG_DEBUG, "client %llu: its lookup of \"%s\" waits up to %u ms",
		(unsigned long long)c->id, w->name, wait_ms);
	return DISPATCH_NONE;
}

/* Sends resp to w's client and removes w (the last entry takes its place). */
static void answer(unsigned i, Shma__Response *resp)
{
	uint8_t *frame;
	size_t len;
	if (dispatch_pack(resp, &frame, &len) == 0) {
		if (deliver != NULL)
			deliver(deliver_ctx, waits[i].c, frame, len);
		else
			free(frame);
	}
	waits[i] = waits[--nwaits];
}

void lookupwait_published(struct daemon *d, const char *name, uint64_t ref)
{
	for (unsigned i = 0; i < nwaits;) {
		if (waits[i].d != d || strcmp(waits[i].name, name) != 0) {
			i++;
			continue;
		}
		Shma__Response resp;
		Shma__LookupReply r;
		shma__response__init(&resp);
		shma__lookup_reply__init(&r);
		r.ref = ref;
		resp.id = waits[i].id;
		resp.body_case = SHMA__RESPONSE__BODY_LOOKUP;
		resp.lookup = &r;
		answer(i, &resp);
	}
}

void lookupwait_expire(struct daemon *d)
{
	uint64_t now = now_ms();
	for (unsigned i = 0; i < nwaits;) {
		if (waits[i].d != d || waits[i].deadline_ms > now) {
			i++;
			continue;
		}
		Shma__Response resp;
		struct dispatch_scratch s = {0};
		dispatch_error(&resp, &s, waits[i].id, ETIMEDOUT,
			       "lookup: not published within the wait");
		answer(i, &resp);
		dispatch_done(&s);
	}
}

int64_t lookupwait_next_ms(const struct daemon *d)
{
	uint64_t now = now_ms(), next = UINT64_MAX;
	for (unsigned i = 0; i < nwaits; i++)
		if (waits[i].d == d && waits[i].deadline_ms < next)
			next = waits[i].deadline_ms;
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (int64_t)(next - now);
}

void lookupwait_forget(struct daemon *d, struct client *c)
{
	for (unsigned i = 0; i < nwaits;)
		if (waits[i].d == d && waits[i].c == c)
			waits[i] = waits[--nwaits];
		else
			i++;
}
