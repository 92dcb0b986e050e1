/* SPDX-License-Identifier: MIT */
/*
 * The transport of a side connection: one a caller opens for itself beside
 * the process's connection, holds no lock on, and closes when done
 * (shma_lookup_wait(), whose wait of seconds on the shared connection would
 * stall every other thread's refills).  Frames out and in and the deadline
 * of each wait, as transport.c does for the process's connection, with
 * nothing parked: a side connection has one request out at a time.
 *
 * Nothing here calls malloc: a frame is built on the stack and an answer
 * unpacked into a bump arena in the side's own buffer.
 */
#include "config.h"

#include "conn.h"
#include "connerr.h"
#include "frame.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void *bump(void *data, size_t size)
{
	struct side_conn *s = data;
	size = (size + 15) & ~(size_t)15;
	if (size > sizeof s->arena - s->arena_used)
		return NULL;
	void *p = s->arena + s->arena_used;
	s->arena_used += size;
	return p;
}

static void nofree(void *data, void *p)
{
	(void)data;
	(void)p;
}

int side_open(struct side_conn *s, const char *path)
{
	s->len = 0;
	s->next_id = 0;
	s->silent = 0;
	s->alloc = (ProtobufCAllocator){bump, nofree, s};
	s->fd = conn_open_socket(path);
	if (s->fd < 0)
		return s->fd;
	int rc = peer_check(s->fd, path);
	if (rc != 0) {
		close(s->fd);
		s->fd = -1;
	}
	return rc;
}

void side_close(struct side_conn *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

uint64_t side_send(struct side_conn *s, Shma__Request *req)
{
	uint8_t out[1024];
	req->id = ++s->next_id;
	size_t n = shma__request__get_packed_size(req);
	if (n + FRAME_HEADER > sizeof out) {
		errno = ENAMETOOLONG;
		return 0;
	}
	frame_put_header(out, (uint32_t)n);
	shma__request__pack(req, out + FRAME_HEADER);
	for (size_t at = 0; at < n + FRAME_HEADER;) {
		ssize_t w = send(s->fd, out + at, n + FRAME_HEADER - at, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			errno = ECONNRESET;
			return 0;
		}
		at += (size_t)w;
	}
	return req->id;
}

/* Reads what the socket has; descriptors the daemon passes (the control
 * block's, with the Hello reply) are closed: a side connection maps
 * nothing. */
static int read_some(struct side_conn *s)
{
	ssize_t r = conn_recv(s->fd, s->buf + s->len, sizeof s->buf - s->len, NULL);
	if (r < 0 && errno == EINTR)
		return 0;
	if (r <= 0)
		return -ECONNRESET;
	s->len += (size_t)r;
	return 0;
}

int side_wait(struct side_conn *s, uint64_t id, uint64_t deadline, Shma__Response **resp)
{
	for (;;) {
		const uint8_t *body;
		uint32_t n;
		size_t used;
		enum frame_status st = frame_next(s->buf, s->len, SIDE_BUF - FRAME_HEADER, &body,
						  &n, &used);
		if (st == FRAME_OK) {
			s->arena_used = 0;
			Shma__Response *r = shma__response__unpack(&s->alloc, n, body);
			memmove(s->buf, s->buf + used, s->len - used);
			s->len -= used;
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
			s->silent = 1;
			return -ETIMEDOUT;
		}
		struct pollfd p = {.fd = s->fd, .events = POLLIN};
		int pr = poll(&p, 1, (int)(deadline - now));
		if (pr < 0 && errno != EINTR)
			return -ECONNRESET;
		int rc = pr > 0 ? read_some(s) : 0;
		if (rc != 0)
			return rc;
	}
}
