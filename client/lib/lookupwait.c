/* SPDX-License-Identifier: MIT */
/*
 * shma_lookup_wait(): a lookup that waits until the name is published.
 *
 * The daemon parks such a lookup (Lookup.wait_ms; server/lookupwait.c) and
 * answers it at the name's Publish or at the end of the wait, so nobody
 * polls.  The wait does not go over the process's connection: that one is
 * shared by its threads under a lock held while an answer is awaited, and a
 * wait of seconds there would stall every other thread's refills.  So a
 * waiter opens a connection of its own for the wait -- the same checks as
 * the main one (peer_check(), the Hello's version), then Lookup, Goodbye --
 * and holds no lock meanwhile.  What it costs is a connect and a Hello per
 * wait that does not find the name at once; a name already there is
 * answered over the main connection as shma_lookup() does.
 *
 * The daemon is believed no further than elsewhere: each Lookup asks for
 * at most WAIT_CHUNK_MS, and an answer later than that plus the reply
 * timeout ends the wait with -ETIMEDOUT, so a daemon that stopped
 * answering cannot hang the program for longer; a wait longer than a chunk
 * (or for ever, timeout -1) asks again.  Nothing here calls malloc: frames
 * are built and read on the stack and unpacked into a bump arena there.
 */
#include "config.h"

#include "client.h"
#include "connerr.h"
#include "frame.h"
#include "shmalloc.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_CHUNK_MS 60000u
#define REPLY_TIMEOUT_MS 10000u
#define WAITER_BUF 16384u

struct waiter {
	int fd;
	uint64_t next_id;
	uint8_t buf[WAITER_BUF];  /* bytes read, not yet a whole frame */
	size_t len;
	char arena[WAITER_BUF];   /* what an answer unpacks into */
	size_t arena_used;
	ProtobufCAllocator alloc;
	int silent;               /* the daemon did not answer in time */
};

static unsigned reply_timeout_ms(void)
{
	const char *env = getenv("SHMALLOC_REPLY_TIMEOUT_MS");
	unsigned long v = env != NULL ? strtoul(env, NULL, 10) : 0;
	return v > 0 && v <= 3600000ul ? (unsigned)v : REPLY_TIMEOUT_MS;
}

static void *bump(void *data, size_t size)
{
	struct waiter *w = data;
	size = (size + 15) & ~(size_t)15;
	if (size > sizeof w->arena - w->arena_used)
		return NULL;
	void *p = w->arena + w->arena_used;
	w->arena_used += size;
	return p;
}

static void nofree(void *data, void *p)
{
	(void)data;
	(void)p;
}

static int send_request(struct waiter *w, Shma__Request *req)
{
	uint8_t out[1024];
	req->id = ++w->next_id;
	size_t n = shma__request__get_packed_size(req);
	if (n + FRAME_HEADER > sizeof out)
		return -ENAMETOOLONG;
	frame_put_header(out, (uint32_t)n);
	shma__request__pack(req, out + FRAME_HEADER);
	for (size_t at = 0; at < n + FRAME_HEADER;) {
		ssize_t s = send(w->fd, out + at, n + FRAME_HEADER - at, MSG_NOSIGNAL);
		if (s < 0 && errno == EINTR)
			continue;
		if (s <= 0)
			return -ECONNRESET;
		at += (size_t)s;
	}
	return 0;
}

/* Reads what the socket has; descriptors the daemon passes (the control
 * block's, with the Hello reply) are closed: this connection maps nothing. */
static int read_some(struct waiter *w)
{
	ssize_t r = conn_recv(w->fd, w->buf + w->len, sizeof w->buf - w->len, NULL, NULL);
	if (r < 0 && errno == EINTR)
		return 0;
	if (r <= 0)
		return -ECONNRESET;
	w->len += (size_t)r;
	return 0;
}

/* The answer to request id, unpacked into w's arena (valid until the next
 * call): 0, the daemon's Error as a negative errno, -ETIMEDOUT past
 * deadline, -ECONNRESET, -EPROTO. */
static int answer(struct waiter *w, uint64_t id, uint64_t deadline, Shma__Response **resp)
{
	for (;;) {
		const uint8_t *body;
		uint32_t n;
		size_t used;
		enum frame_status st = frame_next(w->buf, w->len, WAITER_BUF - FRAME_HEADER, &body,
						  &n, &used);
		if (st == FRAME_OK) {
			w->arena_used = 0;
			Shma__Response *r = shma__response__unpack(&w->alloc, n, body);
			memmove(w->buf, w->buf + used, w->len - used);
			w->len -= used;
			if (r == NULL)
				return -EPROTO;
			if (r->id != id && r->id != 0)
				continue; /* not ours (nothing else is asked here) */
			*resp = r;
			if (r->body_case == SHMA__RESPONSE__BODY_ERROR)
				return -wire_error_code(r->error->code);
			return r->body_case == SHMA__RESPONSE__BODY__NOT_SET ? -EPROTO : 0;
		}
		if (st != FRAME_NEED_MORE)
			return -EPROTO;
		uint64_t now = monotonic_ms();
		if (now >= deadline) {
			w->silent = 1;
			return -ETIMEDOUT;
		}
		struct pollfd p = {.fd = w->fd, .events = POLLIN};
		int pr = poll(&p, 1, (int)(deadline - now));
		if (pr < 0 && errno != EINTR)
			return -ECONNRESET;
		int rc = pr > 0 ? read_some(w) : 0;
		if (rc != 0)
			return rc;
	}
}

/* Connects to path, checks the daemon and says Hello: 0 or -errno. */
static int waiter_open(struct waiter *w, const char *path)
{
	w->len = 0;
	w->next_id = 0;
	w->silent = 0;
	w->alloc = (ProtobufCAllocator){bump, nofree, w};
	w->fd = conn_open_socket(path);
	if (w->fd < 0)
		return connerr_note(path, w->fd);
	int rc = peer_check(w->fd, path);
	Shma__Request req;
	Shma__Hello hello;
	extern char *program_invocation_short_name;
	wire_hello(&req, &hello, program_invocation_short_name, 0);
	if (rc == 0)
		rc = send_request(w, &req);
	Shma__Response *resp = NULL;
	if (rc == 0)
		rc = answer(w, req.id, monotonic_ms() + reply_timeout_ms(), &resp);
	if (rc == 0 && (resp->body_case != SHMA__RESPONSE__BODY_HELLO ||
			resp->hello->version != SHMA_PROTOCOL_VERSION))
		rc = -EPROTONOSUPPORT;
	if (rc != 0) {
		close(w->fd);
		w->fd = -1;
		return connerr_note(path, rc);
	}
	return 0;
}

static void waiter_close(struct waiter *w)
{
	Shma__Request req;
	Shma__Goodbye bye;
	wire_goodbye(&req, &bye);
	send_request(w, &req); /* the daemon reads it before our end */
	close(w->fd);
}

/* One Lookup waiting up to wait_ms: 0 and *ref, -ETIMEDOUT, or -errno. */
static int waiter_lookup(struct waiter *w, const char *name, uint32_t wait_ms, shma_ref_t *ref)
{
	Shma__Request req;
	Shma__Lookup l;
	wire_lookup(&req, &l, name);
	l.wait_ms = wait_ms;
	int rc = send_request(w, &req);
	Shma__Response *resp = NULL;
	if (rc == 0)
		rc = answer(w, req.id, monotonic_ms() + wait_ms + reply_timeout_ms(), &resp);
	if (rc == 0 && resp->body_case != SHMA__RESPONSE__BODY_LOOKUP)
		rc = -EPROTO;
	if (rc == 0)
		*ref = resp->lookup->ref;
	return rc;
}

SHMA_EXPORT int shma_lookup_wait(const char *name, shma_ref_t *ref, int timeout_ms)
{
	if (timeout_ms < -1 || ref == NULL)
		return -EINVAL;
	int rc = shma_lookup(name, ref);
	if (rc != -ENOENT)
		return rc;
	if (timeout_ms == 0)
		return -ETIMEDOUT;
	char path[108];
	conn_lock();
	snprintf(path, sizeof path, "%s", conn_socket_path());
	conn_unlock();
	struct waiter *w = prim_alloc(sizeof *w);
	if (w == NULL)
		return -ENOMEM;
	rc = waiter_open(w, path);
	uint64_t start = monotonic_ms();
	while (rc == 0) {
		uint64_t spent = monotonic_ms() - start;
		uint64_t left = timeout_ms < 0 ? WAIT_CHUNK_MS
				: spent >= (uint64_t)timeout_ms ? 0 : (uint64_t)timeout_ms - spent;
		if (left == 0) {
			rc = -ETIMEDOUT;
			break;
		}
		rc = waiter_lookup(w, name, left < WAIT_CHUNK_MS ? (uint32_t)left : WAIT_CHUNK_MS, ref);
		if (rc != -ETIMEDOUT || w->silent)
			break;
		rc = 0; /* that chunk ended: ask again for what is left */
	}
	if (w->fd >= 0)
		waiter_close(w);
	prim_free(w, sizeof *w);
	return rc;
}
