/* SPDX-License-Identifier: MIT */
/*
 * The transport: one connection per process, shared by its threads under a
 * mutex (conn_lock()).  Frames out and in, request ids, and the deadline of
 * every wait; what the requests mean is the call layer's (call.c), how a
 * connection is made and remade the handshake's (handshake.c).
 *
 * Requests carry ids; a thread that sent a request ahead of need (a refill
 * it will want soon) collects the answer later with conn_wait(), and a
 * thread that reads an answer meant for another parks it for its owner.
 * Requests sent on a lost connection are never answered: waiting for one
 * fails at once.
 *
 * The daemon is believed only so far: every wait for an answer ends after
 * SHMALLOC_REPLY_TIMEOUT_MS (default 10 s; a header and then silence, or
 * answers that never carry our id) with -ETIMEDOUT and the connection
 * dropped; an answer with an id we never sent is dropped.
 */
#include "config.h"

#include "call.h"
#include "conn.h"
#include "frame.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PARKED_START 64
#define RBUF_SLACK 65536
#define CONN_UNANSWERED_MAX 64
/* How long a wait for one answer may take, unless SHMALLOC_REPLY_TIMEOUT_MS
 * says otherwise. */
#define REPLY_TIMEOUT_MS 10000u

struct parked {
	uint64_t id;
	uint8_t *bytes; /* prim_alloc'd copy of the frame's body */
	uint32_t len;
	size_t maplen;
};

static struct {
	pthread_mutex_t lock;
	int fd;
	uint64_t next_id;
	uint64_t first_id;   /* of the current connection's requests */
	uint32_t max_frame;
	int passed_fd;       /* a descriptor the daemon sent (SCM_RIGHTS), not yet used */
	int passed_fd2;      /* the second (the uid's transfer area), not yet used */
	/* Requests whose answer nobody waits for (conn_send_unanswered()):
	 * dropped when read, never parked. */
	uint64_t unanswered[CONN_UNANSWERED_MAX];
	unsigned nunanswered;
	uint8_t *rbuf;
	size_t rlen, rcap;
	/* Answers read for another thread, waiting for it: at most one refill
	 * asked ahead of need per thread and class is out, so the table grows
	 * (never shrinks) to what the process needs. */
	struct parked *parked;
	unsigned nparked_cap;
	unsigned timeout_ms; /* of a wait for an answer; 0: not read yet */
	/* Where frames past the stack buffer are put together (a Flush of a
	 * few thousand refs), kept and grown: with the lock held. */
	uint8_t *wbuf;
	size_t wcap;
} conn = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1, .passed_fd = -1,
	.passed_fd2 = -1};

void conn_lock(void)
{
	pthread_mutex_lock(&conn.lock);
}

void conn_unlock(void)
{
	pthread_mutex_unlock(&conn.lock);
}

void conn_lock_reinit(void)
{
	pthread_mutex_init(&conn.lock, NULL);
}

int conn_connected(void)
{
	return conn.fd >= 0;
}

int conn_id_current(uint64_t id)
{
	return conn.fd >= 0 && id >= conn.first_id;
}

void tp_attach(int fd)
{
	conn.fd = fd;
	conn.max_frame = FRAME_DEFAULT_MAX;
	conn.first_id = conn.next_id + 1;
}

void tp_set_max_frame(uint32_t max_frame)
{
	conn.max_frame = max_frame;
}

int tp_take_passed_fd(void)
{
	int fd = conn.passed_fd;
	conn.passed_fd = -1;
	return fd;
}

int tp_take_passed_fd2(void)
{
	int fd = conn.passed_fd2;
	conn.passed_fd2 = -1;
	return fd;
}

static void drop_parked(void)
{
	for (unsigned i = 0; i < conn.nparked_cap; i++) {
		prim_free(conn.parked[i].bytes, conn.parked[i].maplen);
		conn.parked[i].bytes = NULL;
	}
}

void tp_detach(void)
{
	if (conn.fd >= 0)
		close(conn.fd);
	conn.fd = -1;
	conn.rlen = 0;
	conn.nunanswered = 0;
	if (conn.passed_fd >= 0)
		close(conn.passed_fd);
	conn.passed_fd = -1;
	if (conn.passed_fd2 >= 0)
		close(conn.passed_fd2);
	conn.passed_fd2 = -1;
	drop_parked();
}

static uint64_t response_id(const uint8_t *p, uint32_t len);

/* 1 if id may be an answer to a request of this connection. */
static int id_of_connection(uint64_t id)
{
	return id != 0 && id >= conn.first_id && id <= conn.next_id;
}

void tp_each_unread(void (*fn)(const uint8_t *body, uint32_t len))
{
	if (conn.fd < 0 || conn.rbuf == NULL)
		return;
	for (;;) {
		const uint8_t *body;
		uint32_t len;
		size_t used;
		if (frame_next(conn.rbuf, conn.rlen, WIRE_RESPONSE_MAX, &body, &len, &used) ==
		    FRAME_OK) {
			if (id_of_connection(response_id(body, len)))
				fn(body, len);
			memmove(conn.rbuf, conn.rbuf + used, conn.rlen - used);
			conn.rlen -= used;
			continue;
		}
		if (conn.rlen == conn.rcap)
			break;
		ssize_t r = recv(conn.fd, conn.rbuf + conn.rlen, conn.rcap - conn.rlen, MSG_DONTWAIT);
		if (r <= 0)
			break;
		conn.rlen += (size_t)r;
	}
	for (unsigned i = 0; i < conn.nparked_cap; i++)
		if (conn.parked[i].bytes != NULL &&
		    id_of_connection(response_id(conn.parked[i].bytes, conn.parked[i].len)))
			fn(conn.parked[i].bytes, conn.parked[i].len);
}

static int write_all(const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(conn.fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -EPIPE;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int tp_send_all(Shma__Request *const *reqs, unsigned nreq)
{
	for (unsigned i = 0; i < nreq; i++)
		reqs[i]->id = ++conn.next_id;
	size_t total = 0;
	for (unsigned i = 0; i < nreq; i++) {
		size_t n = shma__request__get_packed_size(reqs[i]);
		if (n > conn.max_frame)
			return -EMSGSIZE;
		total += n + FRAME_HEADER;
	}
	uint8_t stackbuf[4096];
	uint8_t *buf = stackbuf;
	if (total > sizeof stackbuf) {
		if (total > conn.wcap) {
			/* Grown in 64 KiB steps, never shrunk: a busy process's
			 * flushes made an mmap and a munmap each before. */
			size_t cap = (total + 65535) & ~(size_t)65535;
			uint8_t *b = prim_alloc(cap);
			if (b == NULL)
				return -ENOMEM;
			prim_free(conn.wbuf, conn.wcap);
			conn.wbuf = b;
			conn.wcap = cap;
		}
		buf = conn.wbuf;
	}
	size_t at = 0;
	for (unsigned i = 0; i < nreq; i++) {
		size_t n = shma__request__get_packed_size(reqs[i]);
		frame_put_header(buf + at, (uint32_t)n);
		shma__request__pack(reqs[i], buf + at + FRAME_HEADER);
		at += n + FRAME_HEADER;
	}
	return write_all(buf, total);
}

ssize_t conn_recv(int sock, void *buf, size_t cap, int *keep, int *keep2)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} ctl;
	struct iovec iov = {buf, cap};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			   .msg_controllen = sizeof ctl.buf};
	ssize_t r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	if (r < 0)
		return r;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm != NULL; cm = CMSG_NXTHDR(&m, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof fd, sizeof fd);
			/* Two are all we take: the first two; the rest are closed. */
			if (i == 0 && keep != NULL && *keep < 0)
				*keep = fd;
			else if (i == 1 && keep2 != NULL && *keep2 < 0)
				*keep2 = fd;
			else
				close(fd);
		}
	}
	return r;
}

/* Reads what the socket has; a descriptor the daemon attached (the control
 * block's, with the Hello reply) is kept for ctl_map(). */
static ssize_t recv_some(uint8_t *buf, size_t cap)
{
	return conn_recv(conn.fd, buf, cap, &conn.passed_fd, &conn.passed_fd2);
}

/* Reads until one whole frame is in rbuf; body and len name it.  Waits
 * until deadline (monotonic_ms()) at most: -ETIMEDOUT. */
static int read_frame(const uint8_t **body, uint32_t *len, size_t *used, uint64_t deadline)
{
	for (;;) {
		enum frame_status st = frame_next(conn.rbuf, conn.rlen, WIRE_RESPONSE_MAX, body,
						  len, used);
		if (st == FRAME_OK)
			return 0;
		if (st != FRAME_NEED_MORE)
			return -EPROTO;
		uint64_t now = monotonic_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd pfd = {.fd = conn.fd, .events = POLLIN};
		int pr = poll(&pfd, 1, (int)(deadline - now));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0)
			return -ETIMEDOUT;
		ssize_t r = recv_some(conn.rbuf + conn.rlen, conn.rcap - conn.rlen);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -ECONNRESET;
		conn.rlen += (size_t)r;
	}
}

static void consume(size_t used)
{
	memmove(conn.rbuf, conn.rbuf + used, conn.rlen - used);
	conn.rlen -= used;
}

/* Peeks at a Response's id without unpacking it all: field 1, varint. */
static uint64_t response_id(const uint8_t *p, uint32_t len)
{
	if (len < 2 || p[0] != 0x08)
		return 0;
	uint64_t v = 0;
	for (uint32_t i = 1, shift = 0; i < len && shift < 64; i++, shift += 7) {
		v |= (uint64_t)(p[i] & 0x7f) << shift;
		if (!(p[i] & 0x80))
			return v;
	}
	return 0;
}

static int grow_parked(void)
{
	unsigned ncap = conn.nparked_cap ? conn.nparked_cap * 2 : PARKED_START;
	struct parked *n = prim_alloc(ncap * sizeof *n);
	if (n == NULL)
		return -ENOMEM;
	if (conn.parked) {
		memcpy(n, conn.parked, conn.nparked_cap * sizeof *n);
		prim_free(conn.parked, conn.nparked_cap * sizeof *n);
	}
	conn.parked = n;
	conn.nparked_cap = ncap;
	return 0;
}

static int park(uint64_t id, const uint8_t *body, uint32_t len)
{
	for (unsigned i = 0;; i++) {
		if (i == conn.nparked_cap && grow_parked() != 0)
			return -ENOMEM;
		struct parked *pk = &conn.parked[i];
		if (pk->bytes)
			continue;
		pk->maplen = len;
		pk->bytes = prim_alloc(len);
		if (pk->bytes == NULL)
			return -ENOMEM;
		memcpy(pk->bytes, body, len);
		pk->len = len;
		pk->id = id;
		return 0;
	}
}

static int unpack(const uint8_t *body, uint32_t len, Shma__Response **resp)
{
	*resp = shma__response__unpack(pballoc_get(), len, body);
	if (*resp == NULL)
		return -EPROTO;
	if ((*resp)->body_case == SHMA__RESPONSE__BODY_ERROR) {
		return -wire_error_code((*resp)->error->code);
	}
	if ((*resp)->body_case == SHMA__RESPONSE__BODY__NOT_SET)
		return -EPROTO;
	return 0;
}

static int unpark(uint64_t id, Shma__Response **resp, int *rc)
{
	for (unsigned i = 0; i < conn.nparked_cap; i++) {
		struct parked *pk = &conn.parked[i];
		if (pk->bytes == NULL || pk->id != id)
			continue;
		*rc = unpack(pk->bytes, pk->len, resp);
		prim_free(pk->bytes, pk->maplen);
		pk->bytes = NULL;
		return 1;
	}
	return 0;
}

static unsigned conn_timeout_ms(void)
{
	if (conn.timeout_ms == 0) {
		const char *env = getenv("SHMALLOC_REPLY_TIMEOUT_MS");
		unsigned long v = env != NULL ? strtoul(env, NULL, 10) : 0;
		conn.timeout_ms = v > 0 && v <= 3600000ul ? (unsigned)v : REPLY_TIMEOUT_MS;
	}
	return conn.timeout_ms;
}

/* 1 if id is a request whose answer nobody waits for (now forgotten). */
static int take_unanswered(uint64_t id)
{
	for (unsigned i = 0; i < conn.nunanswered; i++)
		if (conn.unanswered[i] == id) {
			conn.unanswered[i] = conn.unanswered[--conn.nunanswered];
			return 1;
		}
	return 0;
}

int conn_send_unanswered(Shma__Request *req)
{
	if (conn.fd < 0 || conn.nunanswered == CONN_UNANSWERED_MAX)
		return -EAGAIN;
	uint64_t id = conn_send(req);
	if (id == 0)
		return -ECONNRESET;
	conn.unanswered[conn.nunanswered++] = id;
	return 0;
}

int conn_wait(uint64_t id, Shma__Response **resp)
{
	int rc;
	*resp = NULL;
	if (!conn_id_current(id))
		return -ECONNRESET; /* sent on a connection that is gone */
	if (unpark(id, resp, &rc))
		return rc;
	uint64_t deadline = monotonic_ms() + conn_timeout_ms();
	for (;;) {
		const uint8_t *body;
		uint32_t len;
		size_t used;
		rc = read_frame(&body, &len, &used, deadline);
		if (rc != 0) {
			conn_drop(1);
			return rc;
		}
		uint64_t got = response_id(body, len);
		if (got != 0 && !id_of_connection(got)) {
			consume(used); /* we never asked this on this connection */
			continue;
		}
		if (got == id || got == 0) {
			/* Id 0: the daemon's error about the connection itself. */
			rc = unpack(body, len, resp);
			consume(used);
			return rc;
		}
		if (take_unanswered(got)) {
			consume(used);
			continue;
		}
		rc = park(got, body, len);
		consume(used);
		if (rc != 0)
			return rc;
	}
}

uint64_t conn_send(Shma__Request *req)
{
	if (conn.fd < 0)
		return 0;
	if (tp_send_all(&req, 1) != 0) {
		conn_drop(1);
		return 0;
	}
	return req->id;
}

void conn_done(void)
{
	pballoc_reset();
}

int tp_buffers(void)
{
	/* Room for the longest frame the daemon may send us, and slack. */
	size_t need = (size_t)WIRE_RESPONSE_MAX + FRAME_HEADER;
	if (conn.rbuf != NULL)
		return 0;
	void *p = prim_alloc(need + RBUF_SLACK);
	if (p == NULL)
		return -ENOMEM;
	conn.rbuf = p;
	conn.rcap = need + RBUF_SLACK;
	return 0;
}

int conn_readable(void)
{
	for (unsigned i = 0; i < conn.nparked_cap; i++)
		if (conn.parked[i].bytes)
			return 1;
	if (conn.fd < 0)
		return 0;
	const uint8_t *body;
	uint32_t len;
	size_t used;
	if (frame_next(conn.rbuf, conn.rlen, WIRE_RESPONSE_MAX, &body, &len, &used) == FRAME_OK)
		return 1;
	struct pollfd p = {.fd = conn.fd, .events = POLLIN};
	return poll(&p, 1, 0) > 0;
}
