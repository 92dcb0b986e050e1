/*
 * Test helpers for speaking the protocol by hand: a raw peer that sends
 * exactly the requests a test builds (valid or not) and reads the answers,
 * and a look at the daemon's side (its log, memory and CPU time).  Used by
 * the suites that play hostile or greedy clients.
 */
#ifndef SHMA_TESTS_RAW_H
#define SHMA_TESTS_RAW_H

#include "e2e.h"
#include "frame.h"
#include "shmalloc.h"
#include "shmalloc.pb-c.h"
#include "sizeclass.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARENA ((uint64_t)1 << 62)
#define LARGE ((uint64_t)2 << 62)

/* ---- a raw peer ---- */

static uint64_t next_id = 100;

static inline void send_all(int fd, const void *p, size_t n)
{
	ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
}

static inline void send_req(int fd, Shma__Request *req)
{
	static uint8_t buf[1 << 18];
	req->id = ++next_id;
	size_t n = shma__request__get_packed_size(req);
	ck_assert_uint_le(n + FRAME_HEADER, sizeof buf);
	frame_put_header(buf, (uint32_t)n);
	shma__request__pack(req, buf + FRAME_HEADER);
	send_all(fd, buf, n + FRAME_HEADER);
}

static inline Shma__Response *recv_resp(int fd)
{
	static uint8_t buf[1 << 20];
	int n = e2e_raw_read_frame(fd, buf, sizeof buf);
	ck_assert_int_gt(n, 0);
	Shma__Response *r = shma__response__unpack(NULL, (size_t)n, buf);
	ck_assert_ptr_nonnull(r);
	return r;
}

static inline Shma__Response *call(int fd, Shma__Request *req)
{
	send_req(fd, req);
	Shma__Response *r = recv_resp(fd);
	ck_assert_uint_eq(r->id, req->id);
	return r;
}

static inline void hello_req(Shma__Request *req, Shma__Hello *h)
{
	shma__request__init(req);
	shma__hello__init(h);
	h->version = SHMA_PROTOCOL_VERSION;
	h->pid = (uint32_t)getpid();
	h->class_checksum = sizeclass_checksum();
	req->body_case = SHMA__REQUEST__BODY_HELLO;
	req->hello = h;
}

/* A connection that said Hello. */
static inline int peer(const char *socket)
{
	int fd = e2e_raw_connect(socket);
	ck_assert_int_ge(fd, 0);
	Shma__Request req;
	Shma__Hello h;
	hello_req(&req, &h);
	Shma__Response *r = call(fd, &req);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_HELLO);
	shma__response__free_unpacked(r, NULL);
	return fd;
}

/* The answer must be an Error with code; the connection stays usable. */
static inline void expect_error(Shma__Response *r, int code)
{
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_ERROR);
	ck_assert_msg(r->error->code == code, "error %d (%s), wanted %d", r->error->code,
		      r->error->message, code);
	ck_assert_ptr_nonnull(r->error->message);
	ck_assert_int_gt(strlen(r->error->message), 0);
	shma__response__free_unpacked(r, NULL);
}

static inline void expect_ok(Shma__Response *r)
{
	ck_assert_msg(r->body_case == SHMA__RESPONSE__BODY_OK, "body %d: %s", r->body_case,
		      r->body_case == SHMA__RESPONSE__BODY_ERROR ? r->error->message : "");
	shma__response__free_unpacked(r, NULL);
}

static inline Shma__Response *refill(int fd, uint32_t cls, uint32_t count)
{
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__Refill f = SHMA__REFILL__INIT;
	f.size_class = cls;
	f.count = count;
	req.body_case = SHMA__REQUEST__BODY_REFILL;
	req.refill = &f;
	return call(fd, &req);
}

/* Refills class cls and returns the refs (runs spelt out), n of them. */
static inline size_t refill_refs(int fd, uint32_t cls, uint32_t count, uint64_t *out)
{
	Shma__Response *r = refill(fd, cls, count);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_REFILL);
	size_t n = 0;
	for (size_t i = 0; i < r->refill->n_refs && n < count; i++)
		out[n++] = r->refill->refs[i];
	for (size_t i = 0; i < r->refill->n_runs; i++)
		for (uint32_t k = 0; k < r->refill->runs[i]->count && n < count; k++)
			out[n++] = r->refill->runs[i]->first + (uint64_t)k * sizeclass_size(cls);
	shma__response__free_unpacked(r, NULL);
	return n;
}

/* Flushes refs with a reply; checks how many were accepted and rejected. */
static inline void flush(int fd, uint64_t *refs, size_t n, uint32_t accepted, uint32_t rejected)
{
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__Flush f = SHMA__FLUSH__INIT;
	f.refs = refs;
	f.n_refs = n;
	f.want_reply = 1;
	req.body_case = SHMA__REQUEST__BODY_FLUSH;
	req.flush = &f;
	Shma__Response *r = call(fd, &req);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_FLUSH);
	ck_assert_uint_eq(r->flush->accepted, accepted);
	ck_assert_uint_eq(r->flush->rejected, rejected);
	shma__response__free_unpacked(r, NULL);
}

static inline Shma__Response *alloc_large(int fd, uint64_t size)
{
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__AllocLarge a = SHMA__ALLOC_LARGE__INIT;
	a.size = size;
	req.body_case = SHMA__REQUEST__BODY_ALLOC_LARGE;
	req.alloc_large = &a;
	return call(fd, &req);
}

static inline Shma__Response *free_large(int fd, uint64_t ref)
{
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__FreeLarge f = SHMA__FREE_LARGE__INIT;
	f.ref = ref;
	req.body_case = SHMA__REQUEST__BODY_FREE_LARGE;
	req.free_large = &f;
	return call(fd, &req);
}

static inline Shma__Response *publish(int fd, const char *name, uint64_t ref)
{
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__Publish p = SHMA__PUBLISH__INIT;
	p.name = (char *)name;
	p.ref = ref;
	req.body_case = SHMA__REQUEST__BODY_PUBLISH;
	req.publish = &p;
	return call(fd, &req);
}

static inline Shma__Response *lookup(int fd, const char *name)
{
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__Lookup l = SHMA__LOOKUP__INIT;
	l.name = (char *)name;
	req.body_case = SHMA__REQUEST__BODY_LOOKUP;
	req.lookup = &l;
	return call(fd, &req);
}

static inline Shma__Response *unpublish(int fd, const char *name)
{
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__Unpublish u = SHMA__UNPUBLISH__INIT;
	u.name = (char *)name;
	req.body_case = SHMA__REQUEST__BODY_UNPUBLISH;
	req.unpublish = &u;
	return call(fd, &req);
}

static inline void stats_ok(int fd)
{
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__Stats st = SHMA__STATS__INIT;
	req.body_case = SHMA__REQUEST__BODY_STATS;
	req.stats = &st;
	Shma__Response *r = call(fd, &req);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_STATS);
	shma__response__free_unpacked(r, NULL);
}

/* ---- the daemon's side ---- */

/* Lines of d's log that contain needle. */
static inline int log_lines(const struct e2e_daemon *d, const char *needle)
{
	FILE *f = fopen(d->log, "r");
	ck_assert_ptr_nonnull(f);
	char line[1024];
	int n = 0;
	while (fgets(line, sizeof line, f) != NULL)
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* Refusals logged for this process so far ("pid N: ..."). */
static inline int refusals_logged(const struct e2e_daemon *d)
{
	char needle[32];
	snprintf(needle, sizeof needle, "pid %ld:", (long)getpid());
	return log_lines(d, needle);
}

/* The daemon logs asynchronously to us: wait until the count settles. */
static inline void expect_logged(const struct e2e_daemon *d, int want)
{
	int n = 0;
	for (int i = 0; i < 100 && (n = refusals_logged(d)) < want; i++)
		usleep(10000);
	ck_assert_int_eq(n, want);
}

static inline long daemon_rss_kib(const struct e2e_daemon *d)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof path, "/proc/%ld/status", (long)d->pid);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "RssAnon: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* The daemon's CPU time (user + system), in clock ticks. */
static inline long daemon_cpu_ticks(const struct e2e_daemon *d)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)d->pid);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	ck_assert_ptr_nonnull(p);
	unsigned long ut = 0, st = 0;
	ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
				&ut, &st), 2);
	return (long)(ut + st);
}

/* The end of every test: a new client is served, by the raw protocol and
 * by the library. */
static inline void still_serves(const struct e2e_daemon *d)
{
	int fd = peer(d->socket);
	stats_ok(fd);
	close(fd);
	ck_assert_int_eq(shma_connect(d->socket), 0);
	void *p = shma_malloc(100);
	ck_assert_ptr_nonnull(p);
	shma_free(p);
	shma_disconnect();
}

#endif
