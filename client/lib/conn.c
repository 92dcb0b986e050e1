/*
 * The connection: one per process, shared by its threads under a mutex.
 *
 * Requests carry ids; a thread that sent a request ahead of need (a refill
 * it will want soon) collects the answer later with conn_wait(), and a
 * thread that reads an answer meant for another parks it for its owner.
 * After fork() the child drops the inherited connection without a word (the
 * socket is its parent's) and connects anew on first use.
 *
 * A new connection asks for its first thread's first refill right behind the
 * Hello, in the same write (conn_want_first_refill()): a program's first
 * malloc then waits for one round trip to the daemon, not two.
 *
 * A connection lost without a goodbye (the daemon was killed or restarted)
 * is made anew on the next request, retrying with growing sleeps for a few
 * seconds while nobody listens.  The Hello then names the client id we had,
 * and the daemon gives us our control block back when it still exists: the
 * generation does not change, so every thread keeps its slot and its cached
 * blocks.  Only when we get a new block does the generation change (threads
 * then leave their old slots to the daemon, which takes them back when this
 * process is gone).  Requests sent on a lost connection are never answered:
 * waiting for one fails at once.
 *
 * The daemon is believed only so far: every wait for an answer ends after
 * SHMALLOC_REPLY_TIMEOUT_MS (default 10 s; a header and then silence, or
 * answers that never carry our id) with -ETIMEDOUT and the connection
 * dropped; an answer with an id we never sent is dropped; a Hello reply's
 * geometry, size classes and large threshold are checked before anything is
 * mapped, and the control block's descriptor must be a regular file of its
 * size.
 */
#include "config.h"

#include "client.h"
#include "connerr.h"
#include "debug.h"
#include "frame.h"
#include "seg.h"
#include "sizeclass.h"

#include <errno.h>
#include <time.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/memcheck.h>
#endif

#define PARKED_START 64
#define RBUF_SLACK 65536
#define CONN_UNANSWERED_MAX 64
#define RECONNECT_MS 4000u
/* After a reconnection that failed for RECONNECT_MS, the next attempts are
 * single tries, at most one per RETRY_GAP_MS: a program whose daemon is gone
 * waits once, not on every free that would have flushed. */
#define RETRY_GAP_MS 1000u
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
	uint64_t generation;
	uint64_t client_id;  /* of the control block ctl maps */
	int lost;            /* the last connection ended without a goodbye */
	int gave_up;         /* a reconnection failed for RECONNECT_MS since */
	uint64_t failed_ms;  /* when the last reconnection attempt failed */
	int failed_rc;
	char path[108];
	uint32_t max_frame;
	struct control_block *ctl;
	int ctl_fd;          /* of ctl: slots are reserved through it */
	int passed_fd;       /* a descriptor the daemon sent (SCM_RIGHTS), not yet used */
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
	int atfork_done;
	unsigned timeout_ms; /* of a wait for an answer; 0: not read yet */
	uint64_t life;       /* HelloReply.daemon_life of the current (or last) daemon */
	/* The refill to ask for behind the Hello (count 0: none), and the id
	 * of the one asked, until conn_first_refill() takes it. */
	unsigned first_cls;
	uint32_t first_count;
	uint64_t early_id;
	unsigned early_cls;
	/* Where frames past the stack buffer are put together (a Flush of a
	 * few thousand refs), kept and grown: with the lock held. */
	uint8_t *wbuf;
	size_t wcap;
} conn = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1, .ctl_fd = -1, .passed_fd = -1};

/* Under Valgrind, memcheck's leak search reads every accessible byte, and a
 * read of a hole of the sparse control block (6.8 GiB) makes a page: so the
 * block is no-access past what the daemon reserved, and a range becomes
 * accessible once this process reserved it (as maps.c does for the heap). */
static void control_accessible(uint64_t off, uint64_t len)
{
#ifdef HAVE_VALGRIND_MEMCHECK_H
	if (map_view.valgrind && conn.ctl != NULL && len > 0)
		VALGRIND_MAKE_MEM_DEFINED((char *)conn.ctl + off, len);
#else
	(void)off;
	(void)len;
#endif
}

void conn_lock(void)
{
	pthread_mutex_lock(&conn.lock);
}

void conn_unlock(void)
{
	pthread_mutex_unlock(&conn.lock);
}

struct control_block *conn_control(void)
{
	return conn.ctl;
}

int conn_reserve_refs(unsigned i, uint32_t first, uint32_t n)
{
	if (conn.ctl_fd < 0 || i >= SHMA_CONTROL_SLOTS || first > SHMA_SLOT_REFS ||
	    n > SHMA_SLOT_REFS - first)
		return -EINVAL;
	uint64_t off = offsetof(struct control_block, refs[i][first]);
	int rc = seg_reserve(conn.ctl_fd, off, (uint64_t)n * sizeof conn.ctl->refs[i][0]);
	if (rc == 0)
		control_accessible(off, (uint64_t)n * sizeof conn.ctl->refs[i][0]);
	return rc;
}

int conn_reserve_control(uint64_t off, uint64_t len)
{
	if (conn.ctl_fd < 0 || off > sizeof(struct control_block) ||
	    len > sizeof(struct control_block) - off)
		return -EINVAL;
	int rc = seg_reserve(conn.ctl_fd, off, len);
	if (rc == 0)
		control_accessible(off, len);
	return rc;
}

int conn_reserve_slot_headers(uint32_t from, uint32_t to)
{
	if (conn.ctl_fd < 0 || from > to || to > SHMA_CONTROL_SLOTS)
		return -EINVAL;
	/* Slots [0, from) are reserved already, and the daemon reserved the
	 * first SHMA_CONTROL_SLOTS_RESERVED; only the pages past both are left. */
	if (from < SHMA_CONTROL_SLOTS_RESERVED)
		from = SHMA_CONTROL_SLOTS_RESERVED;
	uint64_t start = layout_slot_headers_end(from), end = layout_slot_headers_end(to);
	int rc = end > start ? seg_reserve(conn.ctl_fd, start, end - start) : 0;
	if (rc == 0 && end > start)
		control_accessible(start, end - start);
	return rc;
}

uint64_t conn_generation(void)
{
	return __atomic_load_n(&conn.generation, __ATOMIC_ACQUIRE);
}

int conn_connected(void)
{
	return conn.fd >= 0;
}

static void drop_parked(void)
{
	for (unsigned i = 0; i < conn.nparked_cap; i++) {
		prim_free(conn.parked[i].bytes, conn.parked[i].maplen);
		conn.parked[i].bytes = NULL;
	}
}

/* Closes the connection.  lost: it broke under us, and the control block
 * stays ours to re-adopt; else (goodbye, fork) it is given up. */
/*
 * Refills in flight when the daemon died.  A thread asks for a refill ahead
 * of need; if the daemon is killed after sending the answer and before the
 * thread took it in, the objects are out in the heap's bitmaps yet in no
 * cache.  A daemon we merely lost (a timeout) takes such refills back itself
 * when we re-adopt our control block (server/inflight.h); a NEW daemon -- a
 * restart -- cannot know them.  So when a connection is lost, the refill
 * answers already read, parked or waiting in the socket are kept here, and
 * flushed back once we are connected again, if and only if the daemon there
 * is another life (HelloReply.daemon_life).  No thread can take them in
 * meanwhile: their ids belong to a connection that is gone.  At most
 * SALVAGE_MAX refs; past that they leak, as before.
 */
#define SALVAGE_MAX ((size_t)1 << 20)

static struct {
	uint64_t *refs;
	size_t n, cap, maplen;
	uint64_t life; /* of the daemon that sent them */
	uint64_t returned; /* objects flushed back, over the process's life */
} salvage;

static void salvage_add(uint64_t ref)
{
	if (salvage.n == salvage.cap) {
		size_t cap = salvage.cap ? salvage.cap * 2 : 4096;
		if (cap > SALVAGE_MAX)
			return;
		uint64_t *p = prim_alloc(cap * sizeof *p);
		if (p == NULL)
			return;
		if (salvage.refs != NULL) {
			memcpy(p, salvage.refs, salvage.n * sizeof *p);
			prim_free(salvage.refs, salvage.maplen);
		}
		salvage.refs = p;
		salvage.cap = cap;
		salvage.maplen = cap * sizeof *p;
	}
	salvage.refs[salvage.n++] = ref;
}

static uint64_t response_id(const uint8_t *p, uint32_t len);

/* Keeps the objects of body if it is a refill answer of this connection. */
static void salvage_frame(const uint8_t *body, uint32_t len)
{
	uint64_t id = response_id(body, len);
	if (id == 0 || id < conn.first_id || id > conn.next_id)
		return;
	Shma__Response *r = shma__response__unpack(pballoc_get(), len, body);
	if (r == NULL || r->body_case != SHMA__RESPONSE__BODY_REFILL ||
	    r->refill->size_class >= SIZECLASS_COUNT)
		return;
	const Shma__RefillReply *f = r->refill;
	uint64_t size = sizeclass_size(f->size_class);
	for (size_t i = 0; i < f->n_refs; i++)
		salvage_add(f->refs[i]);
	for (size_t i = 0; i < f->n_runs; i++)
		for (uint32_t k = 0; k < f->runs[i]->count && k < WIRE_REFILL_MAX; k++)
			salvage_add(f->runs[i]->first + k * size);
}

/* The connection is lost: what it brought that nobody took in. */
static void salvage_connection(void)
{
	salvage.n = 0;
	salvage.life = conn.life;
	for (;;) {
		const uint8_t *body;
		uint32_t len;
		size_t used;
		if (frame_next(conn.rbuf, conn.rlen, WIRE_RESPONSE_MAX, &body, &len, &used) ==
		    FRAME_OK) {
			salvage_frame(body, len);
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
		if (conn.parked[i].bytes != NULL)
			salvage_frame(conn.parked[i].bytes, conn.parked[i].len);
}

/* Connected again: a new daemon gets the salvaged objects back. */
static void salvage_return(void)
{
	if (salvage.n > 0 && salvage.life != 0 && salvage.life != conn.life) {
		for (size_t at = 0; at < salvage.n; at += WIRE_FLUSH_CHUNK) {
			size_t k = salvage.n - at < WIRE_FLUSH_CHUNK ? salvage.n - at : WIRE_FLUSH_CHUNK;
			Shma__Request req;
			Shma__Flush f;
			wire_flush(&req, &f, salvage.refs + at, k, 0);
			f.in_flight = 1;
			conn_send(&req);
		}
		salvage.returned += salvage.n;
	}
	salvage.n = 0;
}

uint64_t conn_salvaged(void)
{
	return salvage.returned;
}

static void drop_connection(int lost)
{
	if (lost && conn.fd >= 0 && conn.rbuf != NULL)
		salvage_connection();
	if (conn.fd >= 0)
		close(conn.fd);
	conn.fd = -1;
	conn.rlen = 0;
	conn.nunanswered = 0;
	if (conn.passed_fd >= 0)
		close(conn.passed_fd);
	conn.passed_fd = -1;
	drop_parked();
	if (lost && conn.ctl != NULL) {
		conn.lost = 1;
		return;
	}
	/* The old control block stays mapped: a thread may still be using its
	 * slot there until it notices the new generation. */
	conn.ctl = NULL;
	conn.client_id = 0;
	conn.lost = 0;
	__atomic_add_fetch(&conn.generation, 1, __ATOMIC_RELEASE);
}

int conn_id_current(uint64_t id)
{
	return conn.fd >= 0 && id >= conn.first_id;
}

static void atfork_prepare(void)
{
	pthread_mutex_lock(&conn.lock);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&conn.lock);
}

static void atfork_child(void)
{
	pthread_mutex_init(&conn.lock, NULL);
	drop_connection(0);
	tcache_forget();
	lcache_forget();
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

/* Frames nreq requests and writes them in one go. */
static int send_requests(Shma__Request *const *reqs, unsigned nreq)
{
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

static int send_request(Shma__Request *req)
{
	return send_requests(&req, 1);
}

/* Reads what the socket has; a descriptor the daemon attached (the control
 * block's, with the Hello reply) is kept for map_control(). */
static ssize_t recv_some(uint8_t *buf, size_t cap)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} ctl;
	struct iovec iov = {buf, cap};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			   .msg_controllen = sizeof ctl.buf};
	ssize_t r = recvmsg(conn.fd, &m, MSG_CMSG_CLOEXEC);
	if (r < 0)
		return r;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm != NULL; cm = CMSG_NXTHDR(&m, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof fd, sizeof fd);
			/* One is all we take: the first; the rest are closed. */
			if (i == 0 && conn.passed_fd < 0)
				conn.passed_fd = fd;
			else
				close(fd);
		}
	}
	return r;
}

static uint64_t monotonic_ms(void);

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
			drop_connection(1);
			return rc;
		}
		uint64_t got = response_id(body, len);
		if (got != 0 && (got < conn.first_id || got > conn.next_id)) {
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
	req->id = ++conn.next_id;
	if (send_request(req) != 0) {
		drop_connection(1);
		return 0;
	}
	return req->id;
}

/* Requests that may be sent again when the answer was lost with the
 * connection: at worst the first one's block is out and nobody has it,
 * which is what a daemon killed with a request in flight costs anyway.
 * A Flush, FreeLarge, Publish, Unpublish or Goodbye twice would not be. */
static int may_repeat(const Shma__Request *req)
{
	switch (req->body_case) {
	case SHMA__REQUEST__BODY_REFILL:
	case SHMA__REQUEST__BODY_ALLOC_LARGE:
	case SHMA__REQUEST__BODY_STATS:
	case SHMA__REQUEST__BODY_LOOKUP:
	case SHMA__REQUEST__BODY_ROOTS:
		return 1;
	default:
		return 0;
	}
}

int conn_call(Shma__Request *req, Shma__Response **resp)
{
	*resp = NULL;
	int rc = conn_ensure();
	if (rc != 0)
		return rc;
	uint64_t id = conn_send(req);
	if (id == 0 && conn_ensure() == 0)
		id = conn_send(req); /* the daemon restarted: nothing was sent yet */
	if (id == 0)
		return -ECONNRESET;
	rc = conn_wait(id, resp);
	if (rc != 0 && *resp == NULL && conn.fd < 0 && may_repeat(req) && conn_ensure() == 0) {
		/* The daemon died with our request: ask its successor. */
		id = conn_send(req);
		rc = id ? conn_wait(id, resp) : -ECONNRESET;
	}
	return rc;
}

void conn_done(void)
{
	pballoc_reset();
}

static const char *socket_path(void)
{
	if (conn.path[0])
		return conn.path;
	const char *env = getenv("SHMALLOC_SOCKET");
	if (env && env[0] && strlen(env) < sizeof conn.path)
		strcpy(conn.path, env);
	else if (seg_default_socket(conn.path, sizeof conn.path) != 0)
		conn.path[0] = '\0';
	return conn.path;
}

int conn_open_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (path[0] == '\0' || strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* After a lost connection: the daemon may be restarting, so nobody listens
 * (ECONNREFUSED) or the socket is not there yet (ENOENT) for a while.
 * Retries with growing sleeps, about RECONNECT_MS in all. */
static int open_socket_retrying(const char *path)
{
	unsigned slept = 0, sleep_ms = 10;
	for (;;) {
		int fd = conn_open_socket(path);
		if (fd >= 0 || (fd != -ECONNREFUSED && fd != -ENOENT) || slept >= RECONNECT_MS)
			return fd;
		usleep(sleep_ms * 1000);
		slept += sleep_ms;
		sleep_ms = sleep_ms * 2 > 500 ? 500 : sleep_ms * 2;
	}
}

static int map_control(const Shma__HelloReply *h)
{
	if (conn.ctl != NULL && conn.lost && h->client_id == conn.client_id) {
		if (conn.passed_fd >= 0)
			close(conn.passed_fd);
		conn.passed_fd = -1;
		return 0; /* re-adopted: the block we map already, caches intact */
	}
	if (conn.ctl != NULL) {
		/* A new block: threads leave their slots in the old one. */
		conn.ctl = NULL;
		__atomic_add_fetch(&conn.generation, 1, __ATOMIC_RELEASE);
	}
	/* The descriptor the daemon passed with its reply (the block is the
	 * daemon's, mode 0600); by name only if none came. */
	int fd = conn.passed_fd, rc;
	conn.passed_fd = -1;
	if (fd < 0) {
		char name[SEG_NAME_MAX];
		rc = seg_name(name, sizeof name, h->instance, 'c', h->client_id);
		if (rc != 0)
			return rc;
		fd = seg_open(name, 1);
		if (fd < 0)
			return fd;
	}
	void *p = NULL;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size == (off_t)sizeof(struct control_block))
		p = seg_map(fd, 0, sizeof(struct control_block), 1, NULL);
	rc = p ? 0 : -EPROTO;
	if (rc != 0) {
		close(fd);
		return rc;
	}
	struct control_block *cb = p;
	if (cb->hdr.magic != SHMA_CONTROL_MAGIC || cb->hdr.client_id != h->client_id) {
		seg_unmap(p, sizeof *cb);
		close(fd);
		return -EPROTO;
	}
	/* The old block stays mapped (a thread may still use its slot there
	 * until it sees the new generation); its descriptor is not needed. */
	if (conn.ctl_fd >= 0)
		close(conn.ctl_fd);
	conn.ctl_fd = fd;
	conn.ctl = cb;
#ifdef HAVE_VALGRIND_MEMCHECK_H
	if (map_view.valgrind) {
		uint64_t ours = layout_slot_headers_end(SHMA_CONTROL_SLOTS_RESERVED);
		VALGRIND_MAKE_MEM_NOACCESS((char *)cb + ours, sizeof *cb - ours);
	}
#endif
	conn.client_id = h->client_id;
	__atomic_store_n(&cb->hdr.same_address, map_view.same_address ? 1u : 2u,
			 __ATOMIC_RELAXED);
	return 0;
}

static int want_region, want_batches;

void conn_want_first_batches(int on)
{
	want_batches = on;
}

void conn_set_region(void)
{
	want_region = 1;
	map_view.region_flags = SHMA_PAGE_REGION;
}

static int handshake(void)
{
	Shma__Request req;
	Shma__Hello hello;
	extern char *program_invocation_short_name;
	wire_hello(&req, &hello, program_invocation_short_name,
		   conn.lost ? conn.client_id : 0);
	if (want_region)
		wire_hello_region(&req);
	if (want_batches && !conn.lost)
		wire_hello_first_batches(&req);
	Shma__Response *resp;
	req.id = ++conn.next_id;
	/* The first refill behind the Hello, for slot 0 of the block the reply
	 * brings: only with a new block (not when re-adopting ours) the caller
	 * asked for (tcache.c: no thread of ours holds a slot, so its thread
	 * takes slot 0).  Answered after the Hello reply, read with it. */
	Shma__Request rreq;
	Shma__Refill rf;
	Shma__Request *reqs[2] = {&req, &rreq};
	unsigned nreq = 1;
	conn.early_id = 0;
	if (conn.first_count != 0 && !conn.lost) {
		wire_refill(&rreq, &rf, conn.first_cls, conn.first_count, 1);
		rreq.id = ++conn.next_id;
		conn.early_id = rreq.id;
		conn.early_cls = conn.first_cls;
		nreq = 2;
	}
	/* A daemon that refuses us says why before we speak, then hangs up:
	 * read its answer even when our Hello could not be written. */
	send_requests(reqs, nreq);
	int rc = conn_wait(req.id, &resp);
	if (rc == 0 && resp->body_case != SHMA__RESPONSE__BODY_HELLO)
		rc = -EPROTO;
	if (rc == 0 && resp->hello->version != SHMA_PROTOCOL_VERSION)
		rc = -EPROTONOSUPPORT;
	if (rc == 0 && (resp->hello->max_frame < WIRE_MIN_MAX_FRAME || resp->hello->control_slots != SHMA_CONTROL_SLOTS))
		rc = -EPROTO;
	/* The size classes are ours (the daemon checked the table's checksum
	 * in our Hello): a threshold past the largest class would take sizes
	 * no class has to the small path, 0 every size to the large one. */
	if (rc == 0 && (resp->hello->nclasses != SIZECLASS_COUNT || resp->hello->large_threshold < 16 ||
			resp->hello->large_threshold > SIZECLASS_MAX_SIZE))
		rc = -EPROTO;
	if (rc == 0) {
		conn.max_frame = resp->hello->max_frame;
		lcache_set_decay(resp->hello->decay_ms);
		rc = map_setup(resp->hello);
	}
	if (rc == 0)
		rc = map_control(resp->hello);
	if (rc == 0) {
		conn.lost = 0;
		conn.life = resp->hello->daemon_life;
	}
	conn_done();
	if (rc == 0)
		salvage_return();
	else
		conn.early_id = 0;
	return rc;
}

void conn_want_first_refill(unsigned cls, uint32_t count)
{
	conn.first_cls = cls;
	conn.first_count = count;
}

uint64_t conn_first_refill(unsigned *cls)
{
	uint64_t id = conn.early_id;
	conn.early_id = 0;
	if (id == 0 || !conn_id_current(id))
		return 0;
	*cls = conn.early_cls;
	return id;
}

static int alloc_rbuf(void)
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

/* One attempt: connect (retrying while nobody listens, when reconnecting)
 * and say Hello.  0 or -errno. */
static int connect_and_greet(int retrying)
{
	int fd = retrying ? open_socket_retrying(socket_path()) : conn_open_socket(socket_path());
	if (fd < 0)
		return connerr_note(socket_path(), fd);
	/* Before a byte goes out or a segment is mapped: is it our daemon? */
	int rc = peer_check(fd, socket_path());
	if (rc != 0) {
		close(fd);
		return connerr_note(socket_path(), rc);
	}
	conn.fd = fd;
	conn.max_frame = FRAME_DEFAULT_MAX;
	conn.first_id = conn.next_id + 1;
	rc = handshake();
	if (rc != 0) {
		drop_connection(1);
		rc = connerr_note(socket_path(), rc);
	}
	return rc;
}

/* With the lock held. */
int conn_ensure(void)
{
	if (conn.fd >= 0)
		return 0;
	if (!conn.atfork_done) {
		pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
		conn.atfork_done = 1;
	}
	debug_init();
	int rc = alloc_rbuf();
	if (rc != 0)
		return rc;
	if (!conn.lost)
		return connect_and_greet(0);
	/* The daemon went away: a new one may take a moment to listen, and the
	 * dying one may still take a connection and reset it before our Hello
	 * is answered.  Either way, try again, for about RECONNECT_MS -- once:
	 * after that, one quick try per RETRY_GAP_MS. */
	uint64_t now = monotonic_ms();
	if (conn.gave_up && now - conn.failed_ms < RETRY_GAP_MS)
		return conn.failed_rc;
	unsigned slept = 0, sleep_ms = 10;
	for (;;) {
		rc = connect_and_greet(!conn.gave_up);
		if (rc == 0) {
			conn.gave_up = 0;
			return 0;
		}
		if ((rc != -ECONNRESET && rc != -EPIPE) || slept >= RECONNECT_MS || conn.gave_up) {
			conn.gave_up = 1;
			conn.failed_ms = monotonic_ms();
			conn.failed_rc = rc;
			return rc;
		}
		usleep(sleep_ms * 1000);
		slept += sleep_ms;
		sleep_ms = sleep_ms * 2 > 500 ? 500 : sleep_ms * 2;
	}
}

const char *conn_socket_path(void)
{
	return socket_path();
}

int conn_set_path(const char *path)
{
	if (path == NULL) {
		conn.path[0] = '\0';
		return 0;
	}
	if (strlen(path) >= sizeof conn.path)
		return -ENAMETOOLONG;
	strcpy(conn.path, path);
	return 0;
}

/* With the lock held. */
void conn_close(int goodbye)
{
	if (conn.fd >= 0 && goodbye) {
		Shma__Request req;
		Shma__Goodbye bye;
		wire_goodbye(&req, &bye);
		Shma__Response *resp;
		uint64_t id = conn_send(&req);
		if (id && conn_wait(id, &resp) == 0)
			conn_done();
	}
	drop_connection(0);
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
