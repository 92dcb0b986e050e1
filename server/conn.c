/* SPDX-License-Identifier: MIT */
/*
 * Connections: see conn.h.  Layer: loop (libuv); the session layer
 * (session.c, dispatch.c) decides, this file reads and writes.
 *
 * Each connection keeps a buffer of bytes read; the read callback takes
 * every whole frame out of it, hands each to the dispatcher and writes what
 * the dispatcher decided, then compacts the buffer.  A frame over the limit,
 * a message that does not decode, or a request the dispatcher refuses with
 * "close" gets an Error, one log line, and the connection is closed once the
 * Error is written; nothing else notices.
 *
 * A client that reads nothing while sending requests makes its write queue
 * grow: past a cap we stop taking frames from its buffer and stop reading
 * from it until the queue drains, so one slow client costs memory bounded
 * by the cap (plus its read buffer), and others nothing.
 *
 * A connection that has not said Hello within --handshake-timeout gets an
 * ETIMEDOUT Error and is closed, so that idle or half-open peers cannot sit
 * on file descriptors and client slots; one whose answers stay unread past
 * the cap for --write-timeout is closed too, so the memory it pins is freed.
 * A client that said Hello may stay idle as long as it likes.
 */
#include "config.h"

#include "backing.h"
#include "conn.h"
#include "dispatch.h"
#include "list.h"
#include "frame.h"
#include "log.h"
#include "session.h"
#include "uidarea.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#define WRITE_QUEUE_CAP ((size_t)8 << 20)
/* Before Hello a peer has not shown it speaks our protocol: its frames are
 * held to this (a Hello is well under it) and its buffer to about twice
 * that, so thousands of silent connections cost little until they time out. */
#define PREHELLO_FRAME_MAX 4096u

struct conn {
	uv_pipe_t pipe;          /* first: the handle's address is the connection's */
	struct conn_list *list;
	struct conn *prev, *next;
	struct client *client;   /* its session; NULL until the peer is known */
	uint8_t *buf;            /* bytes read, not yet a whole frame */
	size_t len, cap;
	uint64_t accepted_ms;    /* uv_now() at accept: the handshake timeout's start */
	uint64_t stalled_ms;     /* uv_now() when its unread answers passed the cap; 0: not */
	int closing;             /* no more reads; close once the writes are out */
	int reading;
};

struct write_req {
	uv_write_t req;
	uv_buf_t buf;
};

static void start_reading(struct conn *cn);
static void take_frames(struct conn *cn);

static size_t queued(const struct conn *cn)
{
	return uv_stream_get_write_queue_size((const uv_stream_t *)&cn->pipe);
}

/* Its own cap, or its user's (quota.h: --uid-max-buffers) while answers of
 * its own wait, whose writing wakes it. */
static int queue_full(const struct conn *cn)
{
	return queued(cn) > WRITE_QUEUE_CAP ||
	       (queued(cn) > 0 && quota_buffers_full(cn->list->d, cn->client));
}

static void on_closed(uv_handle_t *h)
{
	struct conn *cn = (struct conn *)h;
	struct conn_list *l = cn->list;
	if (cn->client != NULL)
		session_close(l->d, cn->client);
	DLIST_REMOVE(&l->head, cn, prev, next);
	free(cn->buf);
	free(cn);
}

static void close_conn(struct conn *cn)
{
	if (uv_is_closing((uv_handle_t *)&cn->pipe))
		return;
	cn->closing = 1;
	uv_close((uv_handle_t *)&cn->pipe, on_closed);
}

static void on_written(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct conn *cn = req->handle->data;
	quota_buffer(cn->client, -(int64_t)w->buf.len);
	free(w->buf.base);
	free(w);
	if (status < 0 && status != UV_ECANCELED) {
		close_conn(cn);
		return;
	}
	if (cn->closing) {
		if (queued(cn) == 0)
			close_conn(cn);
		return;
	}
	if (!cn->reading && queued(cn) < WRITE_QUEUE_CAP / 2) {
		/* Frames already read wait in the buffer: take them first. */
		cn->stalled_ms = 0;
		take_frames(cn);
		if (!cn->closing && !queue_full(cn))
			start_reading(cn);
	}
}

/* Queues a frame the caller malloc'ed; takes it over.  0 or a negative errno. */
static int send_frame(struct conn *cn, uint8_t *frame, size_t len)
{
	struct write_req *w = malloc(sizeof *w);
	if (w == NULL) {
		free(frame);
		return -ENOMEM;
	}
	w->buf = uv_buf_init((char *)frame, (unsigned)len);
	int rc = uv_write(&w->req, (uv_stream_t *)&cn->pipe, &w->buf, 1, on_written);
	if (rc != 0) {
		free(frame);
		free(w);
	} else {
		quota_buffer(cn->client, (int64_t)len);
	}
	return rc;
}

static void close_after_writes(struct conn *cn);

/*
 * The Hello reply goes out with the client's control block descriptor
 * attached (SCM_RIGHTS): the segment is the daemon's alone (mode 0600), so
 * the client gets it from us and nobody else can open it.  Only on an empty
 * write queue, straight on the socket (libuv keeps no ancillary data); what
 * the socket does not take at once is queued as usual.  0 if the frame is
 * taken care of (and freed), -1 to send it the ordinary way.  Behind the
 * control block go the heap's pages and its metadata (read-only): whatever
 * the backing, the client maps what it is given (server/backing.c); then,
 * for a library client, its uid's transfer area (server/uidarea.h).
 */
static int send_frame_with_fd(struct conn *cn, uint8_t *frame, size_t len, const int *pass,
			      unsigned npass)
{
	uv_os_fd_t fd;
	if (queued(cn) != 0 || uv_fileno((uv_handle_t *)&cn->pipe, &fd) != 0)
		return -1;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * BACKING_HELLO_FDS)];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct iovec iov = {frame, len};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			   .msg_controllen = CMSG_SPACE(sizeof(int) * npass)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * npass);
	memcpy(CMSG_DATA(cm), pass, sizeof(int) * npass);
	ssize_t w;
	do
		w = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	if (w <= 0)
		return -1;
	if ((size_t)w == len) {
		free(frame);
		return 0;
	}
	uint8_t *rest = malloc(len - (size_t)w);
	if (rest != NULL)
		memcpy(rest, frame + w, len - (size_t)w);
	free(frame);
	if (rest == NULL || send_frame(cn, rest, len - (size_t)w) != 0)
		close_after_writes(cn); /* half a frame out: the stream is broken */
	return 0;
}

static void stop_reading(struct conn *cn)
{
	uv_read_stop((uv_stream_t *)&cn->pipe);
	cn->reading = 0;
	cn->closing = 1;
}

/* The session refuses the peer (counted, logged); we write its Error and
 * close once it is out. */
static void refuse_and_close(struct conn *cn, int code, const char *what)
{
	uint8_t *frame;
	size_t n;
	session_refuse(cn->list->d, cn->client, code, what, &frame, &n);
	stop_reading(cn);
	if (frame == NULL || send_frame(cn, frame, n) != 0)
		close_conn(cn);
}

/* Stops reading and closes once what is queued is written. */
static void close_after_writes(struct conn *cn)
{
	stop_reading(cn);
	if (queued(cn) == 0)
		close_conn(cn);
}

static unsigned hist_bucket(uint64_t ns)
{
	unsigned b = ns ? 64u - (unsigned)__builtin_clzll(ns) : 0;
	return b < DAEMON_HIST_BUCKETS ? b : DAEMON_HIST_BUCKETS - 1;
}

/* One frame's body: the dispatcher decides, we write.  0 to go on, -1 to stop. */
static int handle_frame(struct conn *cn, const uint8_t *body, uint32_t len)
{
	struct daemon *d = cn->list->d;
	uint64_t t0 = uv_hrtime();
	uint8_t *frame;
	size_t n;
	struct client *c = cn->client;
	int greeted = c->hello_done;
	enum dispatch_action act = dispatch_frame(d, c, body, len, &frame, &n);
	int pass[BACKING_HELLO_FDS];
	if (frame != NULL && !greeted && c->hello_done && c->ctl_fd >= 0 &&
	    send_frame_with_fd(cn, frame, n, pass,
			       backing_hello_fds(d, c->ctl_fd, uidarea_fd(d, c), pass)) == 0)
		frame = NULL;
	if (frame != NULL && send_frame(cn, frame, n) != 0)
		act = DISPATCH_REPLY_CLOSE;
	uint64_t ns = uv_hrtime() - t0;
	d->hist[hist_bucket(ns)]++;
	d->service_ns_total += ns;
	if (act == DISPATCH_REPLY_CLOSE) {
		close_after_writes(cn);
		return -1;
	}
	if (quota_buffers_over(d, c)) {
		quota_buffers_closed(d, c); /* counted, logged */
		close_conn(cn);             /* its unwritten answers are freed */
		return -1;
	}
	return 0;
}

/* The longest frame the peer may send now. */
static uint32_t frame_limit(const struct conn *cn)
{
	return cn->client->hello_done ? cn->list->d->opt.max_frame : PREHELLO_FRAME_MAX;
}

static void take_frames(struct conn *cn)
{
	size_t off = 0;
	while (!cn->closing && !queue_full(cn)) {
		const uint8_t *body;
		uint32_t n;
		size_t used;
		enum frame_status st = frame_next(cn->buf + off, cn->len - off, frame_limit(cn),
						  &body, &n, &used);
		if (st == FRAME_NEED_MORE)
			break;
		if (st != FRAME_OK) {
			refuse_and_close(cn, st == FRAME_TOO_BIG ? EMSGSIZE : EPROTO,
					 frame_status_str(st));
			return;
		}
		off += used;
		if (handle_frame(cn, body, n) != 0)
			return;
	}
	memmove(cn->buf, cn->buf + off, cn->len - off);
	cn->len -= off;
	if (!cn->closing && queue_full(cn)) {
		uv_read_stop((uv_stream_t *)&cn->pipe);
		cn->reading = 0;
		if (cn->stalled_ms == 0)
			cn->stalled_ms = uv_now(cn->list->loop) | 1;
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *cn = (struct conn *)h;
	size_t slack = cn->client->hello_done ? 65536 : 4096;
	size_t limit = (size_t)frame_limit(cn) + FRAME_HEADER + slack;
	(void)suggested;
	/* Past its first size only while its user's buffers leave room: else
	 * a full buffer reads nothing (ENOBUFS) and the connection closes. */
	if (cn->cap - cn->len < 4096 && cn->cap < limit &&
	    (cn->cap < slack || !quota_buffers_full(cn->list->d, cn->client))) {
		size_t ncap = cn->cap ? cn->cap * 2 : slack;
		if (ncap > limit)
			ncap = limit;
		uint8_t *nb = realloc(cn->buf, ncap);
		if (nb != NULL) {
			quota_buffer(cn->client, (int64_t)(ncap - cn->cap));
			cn->buf = nb;
			cn->cap = ncap;
		}
	}
	*buf = uv_buf_init((char *)cn->buf + cn->len, (unsigned)(cn->cap - cn->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *cn = (struct conn *)s;
	(void)buf;
	if (nread < 0) {
		close_conn(cn);
		return;
	}
	if (cn->closing)
		return;
	cn->len += (size_t)nread;
	take_frames(cn);
	if (!cn->closing && cn->reading && cn->len == cn->cap &&
	    cn->cap >= (size_t)frame_limit(cn) + FRAME_HEADER) {
		/* Full buffer at its largest and still no whole frame: cannot
		 * happen within the limit.  (Below its largest, a full buffer
		 * only means on_alloc() grows it next time.) */
		refuse_and_close(cn, EMSGSIZE, "frame does not fit the read buffer");
	}
}

static void start_reading(struct conn *cn)
{
	if (uv_read_start((uv_stream_t *)&cn->pipe, on_alloc, on_read) == 0)
		cn->reading = 1;
}

void conn_accept(struct conn_list *l, uv_stream_t *listener)
{
	struct conn *cn = calloc(1, sizeof *cn);
	if (cn == NULL)
		return;
	cn->list = l;
	cn->accepted_ms = uv_now(l->loop);
	uv_pipe_init(l->loop, &cn->pipe, 0);
	cn->pipe.data = cn;
	DLIST_PUSH(&l->head, cn, prev, next);
	if (uv_accept(listener, (uv_stream_t *)&cn->pipe) != 0) {
		close_conn(cn);
		return;
	}
	uv_os_fd_t fd;
	struct access_creds cr;
	if (uv_fileno((uv_handle_t *)&cn->pipe, &fd) != 0 || access_creds_read(fd, &cr) != 0) {
		log_msg(SLOG_WARN, "cannot read the peer's credentials: %s", strerror(errno));
		close_conn(cn);
		return;
	}
	cn->client = session_open(l->d, cr.pid, cr.uid);
	if (cn->client == NULL) {
		access_creds_free(&cr);
		close_conn(cn);
		return;
	}
	const char *why;
	int rc = session_admit(l->d, cn->client, &cr, &why);
	access_creds_free(&cr);
	if (rc != 0) {
		refuse_and_close(cn, -rc, why);
		return;
	}
	start_reading(cn);
}

void conn_deliver(void *ctx, struct client *c, uint8_t *frame, size_t len)
{
	struct conn_list *l = ctx;
	for (struct conn *cn = l->head; cn; cn = cn->next) {
		if (cn->client != c)
			continue;
		if (cn->closing)
			break;
		if (send_frame(cn, frame, len) != 0)
			close_after_writes(cn);
		return;
	}
	free(frame);
}

void conn_close_all(struct conn_list *l)
{
	for (struct conn *cn = l->head; cn; cn = cn->next)
		close_after_writes(cn);
}

/* No Hello within --handshake-timeout: told so, and closed. */
static int handshake_overdue(const struct conn *cn, uint64_t now)
{
	uint64_t limit = cn->list->d->opt.handshake_timeout_ms;
	return !cn->client->hello_done && limit != 0 && now - cn->accepted_ms >= limit;
}

/* Answers unread past the cap for --write-timeout: closed without a word
 * (it would not read one), which frees what its queue pins. */
static int write_overdue(const struct conn *cn, uint64_t now)
{
	uint64_t limit = cn->list->d->opt.write_timeout_ms;
	return cn->stalled_ms != 0 && limit != 0 && now - cn->stalled_ms >= limit;
}

void conn_check_timeouts(struct conn_list *l)
{
	uint64_t now = uv_now(l->loop);
	for (struct conn *cn = l->head; cn; cn = cn->next) {
		if (cn->closing || cn->client == NULL)
			continue;
		if (handshake_overdue(cn, now)) {
			refuse_and_close(cn, ETIMEDOUT, "no hello within --handshake-timeout");
		} else if (write_overdue(cn, now)) {
			cn->client->rejected++;
			l->d->rejected++;
			log_msg(SLOG_WARN,
				"pid %ld: its answers stayed unread past --write-timeout: closed",
				(long)cn->client->pid);
			close_conn(cn);
		}
	}
}
