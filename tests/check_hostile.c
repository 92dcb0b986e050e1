/*
 * Hostile input, end to end: a real daemon and peers that lie.
 *
 * Every field of every request is sent wrong in every way we could think
 * of -- refs outside any segment, of the wrong kind, misaligned, freed
 * twice; sizes of 0, 2^63 and just past the cap; size classes and counts
 * out of range; names empty, too long or with odd bytes -- and each must
 * get a clear Error (or a counted rejection) and exactly one log line,
 * while the connection and the daemon carry on.  Then the peers that do
 * not lie but misbehave: thousands of connections at once, the process out
 * of file descriptors, connections that never say Hello, a frame sent in
 * halves with a sleep between, a client that never reads its answers.
 * Every test ends by showing that a well-behaved client is still served.
 */
#include "e2e.h"
#include "frame.h"
#include "instance.h"
#include "shmalloc.h"
#include "shmalloc.pb-c.h"
#include "sizeclass.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define ARENA ((uint64_t)1 << 62)
#define LARGE ((uint64_t)2 << 62)

/* ---- a raw peer ---- */

static uint64_t next_id = 100;

static void send_all(int fd, const void *p, size_t n)
{
	ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
}

static void send_req(int fd, Shma__Request *req)
{
	static uint8_t buf[1 << 18];
	req->id = ++next_id;
	size_t n = shma__request__get_packed_size(req);
	ck_assert_uint_le(n + FRAME_HEADER, sizeof buf);
	frame_put_header(buf, (uint32_t)n);
	shma__request__pack(req, buf + FRAME_HEADER);
	send_all(fd, buf, n + FRAME_HEADER);
}

static Shma__Response *recv_resp(int fd)
{
	static uint8_t buf[1 << 20];
	int n = e2e_raw_read_frame(fd, buf, sizeof buf);
	ck_assert_int_gt(n, 0);
	Shma__Response *r = shma__response__unpack(NULL, (size_t)n, buf);
	ck_assert_ptr_nonnull(r);
	return r;
}

static Shma__Response *call(int fd, Shma__Request *req)
{
	send_req(fd, req);
	Shma__Response *r = recv_resp(fd);
	ck_assert_uint_eq(r->id, req->id);
	return r;
}

static void hello_req(Shma__Request *req, Shma__Hello *h)
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
static int peer(const char *socket)
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
static void expect_error(Shma__Response *r, int code)
{
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_ERROR);
	ck_assert_msg(r->error->code == code, "error %d (%s), wanted %d", r->error->code,
		      r->error->message, code);
	ck_assert_ptr_nonnull(r->error->message);
	ck_assert_int_gt(strlen(r->error->message), 0);
	shma__response__free_unpacked(r, NULL);
}

static void expect_ok(Shma__Response *r)
{
	ck_assert_msg(r->body_case == SHMA__RESPONSE__BODY_OK, "body %d: %s", r->body_case,
		      r->body_case == SHMA__RESPONSE__BODY_ERROR ? r->error->message : "");
	shma__response__free_unpacked(r, NULL);
}

static Shma__Response *refill(int fd, uint32_t cls, uint32_t count)
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
static size_t refill_refs(int fd, uint32_t cls, uint32_t count, uint64_t *out)
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
static void flush(int fd, uint64_t *refs, size_t n, uint32_t accepted, uint32_t rejected)
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

static Shma__Response *alloc_large(int fd, uint64_t size)
{
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__AllocLarge a = SHMA__ALLOC_LARGE__INIT;
	a.size = size;
	req.body_case = SHMA__REQUEST__BODY_ALLOC_LARGE;
	req.alloc_large = &a;
	return call(fd, &req);
}

static Shma__Response *free_large(int fd, uint64_t ref)
{
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__FreeLarge f = SHMA__FREE_LARGE__INIT;
	f.ref = ref;
	req.body_case = SHMA__REQUEST__BODY_FREE_LARGE;
	req.free_large = &f;
	return call(fd, &req);
}

static Shma__Response *publish(int fd, const char *name, uint64_t ref)
{
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__Publish p = SHMA__PUBLISH__INIT;
	p.name = (char *)name;
	p.ref = ref;
	req.body_case = SHMA__REQUEST__BODY_PUBLISH;
	req.publish = &p;
	return call(fd, &req);
}

static Shma__Response *lookup(int fd, const char *name)
{
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__Lookup l = SHMA__LOOKUP__INIT;
	l.name = (char *)name;
	req.body_case = SHMA__REQUEST__BODY_LOOKUP;
	req.lookup = &l;
	return call(fd, &req);
}

static Shma__Response *unpublish(int fd, const char *name)
{
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__Unpublish u = SHMA__UNPUBLISH__INIT;
	u.name = (char *)name;
	req.body_case = SHMA__REQUEST__BODY_UNPUBLISH;
	req.unpublish = &u;
	return call(fd, &req);
}

static void stats_ok(int fd)
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
static int log_lines(const struct e2e_daemon *d, const char *needle)
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
static int refusals_logged(const struct e2e_daemon *d)
{
	char needle[32];
	snprintf(needle, sizeof needle, "pid %ld:", (long)getpid());
	return log_lines(d, needle);
}

/* The daemon logs asynchronously to us: wait until the count settles. */
static void expect_logged(const struct e2e_daemon *d, int want)
{
	int n = 0;
	for (int i = 0; i < 100 && (n = refusals_logged(d)) < want; i++)
		usleep(10000);
	ck_assert_int_eq(n, want);
}

static long daemon_rss_kib(const struct e2e_daemon *d)
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
static long daemon_cpu_ticks(const struct e2e_daemon *d)
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
static void still_serves(const struct e2e_daemon *d)
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

/* ---- refs ---- */

START_TEST(refs_outside_any_segment_are_rejected)
{
	int fd = peer(e2e.socket);
	uint64_t bad[] = {
		0,                                  /* the null ref */
		ARENA | ((uint64_t)4000 << 40) | 65536, /* an arena that does not exist */
		ARENA | (((uint64_t)1 << 40) - 16), /* past the end of arena 0 */
		ARENA | 0,                          /* arena 0's header */
		ARENA | 8192,                       /* its page map */
		((uint64_t)3 << 62) | 65536,        /* kind 3: no such kind */
		LARGE | ((uint64_t)77 << 40),       /* a large block that does not exist */
		UINT64_MAX,
	};
	int before = refusals_logged(&e2e);
	flush(fd, bad, sizeof bad / sizeof bad[0], 0, sizeof bad / sizeof bad[0]);
	expect_logged(&e2e, before + 1); /* one line for the whole flush */
	stats_ok(fd);
	close(fd);
	still_serves(&e2e);
}
END_TEST

START_TEST(double_free_is_rejected_and_the_rest_taken)
{
	int fd = peer(e2e.socket);
	uint64_t refs[8];
	ck_assert_uint_eq(refill_refs(fd, 3, 8, refs), 8);
	int before = refusals_logged(&e2e);
	flush(fd, refs, 4, 4, 0);
	flush(fd, refs, 4, 0, 4);       /* all four again */
	flush(fd, refs + 2, 4, 2, 2);   /* two again, two fresh */
	expect_logged(&e2e, before + 2);
	/* The objects freed twice were not handed out twice. */
	uint64_t again[64];
	size_t n = refill_refs(fd, 3, 64, again);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			ck_assert_uint_ne(again[i], again[j]);
	flush(fd, again, n, (uint32_t)n, 0);
	flush(fd, refs + 6, 2, 2, 0);
	close(fd);
	still_serves(&e2e);
}
END_TEST

START_TEST(misaligned_refs_are_rejected)
{
	int fd = peer(e2e.socket);
	uint64_t ref;
	ck_assert_uint_eq(refill_refs(fd, 10, 1, &ref), 1);
	uint64_t off[] = {ref + 1, ref + 8, ref + sizeclass_size(10) - 1, ref - 1};
	int before = refusals_logged(&e2e);
	flush(fd, off, 4, 0, 4);
	expect_logged(&e2e, before + 1);
	flush(fd, &ref, 1, 1, 0); /* still out: the right ref frees it */
	close(fd);
	still_serves(&e2e);
}
END_TEST

START_TEST(refs_of_another_kind_are_refused)
{
	int fd = peer(e2e.socket);
	uint64_t small;
	ck_assert_uint_eq(refill_refs(fd, 0, 1, &small), 1);
	Shma__Response *r = alloc_large(fd, 300000);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_ALLOC_LARGE);
	uint64_t large = r->alloc_large->ref;
	shma__response__free_unpacked(r, NULL);
	int before = refusals_logged(&e2e);
	expect_error(free_large(fd, small), EINVAL);     /* a small object as large */
	expect_error(free_large(fd, large + 8192), EINVAL); /* inside the block */
	expect_error(free_large(fd, 0), EINVAL);
	flush(fd, &large, 1, 0, 1);                      /* a large block as small */
	expect_error(publish(fd, "k3", ((uint64_t)3 << 62) | 8192), EINVAL);
	expect_error(publish(fd, "nothing", ARENA | ((uint64_t)9 << 40) | 65536), EINVAL);
	expect_error(publish(fd, "null", 0), EINVAL);
	expect_error(publish(fd, "no-large", LARGE | ((uint64_t)77 << 40)), EINVAL);
	expect_error(publish(fd, "past-large", large + ((uint64_t)1 << 30)), EINVAL);
	expect_ok(publish(fd, "inside-large", large + 4096));
	expect_ok(unpublish(fd, "inside-large"));
	expect_logged(&e2e, before + 9);
	expect_ok(free_large(fd, large));
	expect_error(free_large(fd, large), EINVAL);     /* twice */
	flush(fd, &small, 1, 1, 0);
	close(fd);
	still_serves(&e2e);
}
END_TEST

/* ---- sizes and counts ---- */

START_TEST(absurd_sizes_are_refused)
{
	struct e2e_daemon d;
	const char *const extra[] = {"--arena-size", "1M", "--max-memory", "8M", NULL};
	e2e_start_daemon(&d, extra);
	int fd = peer(d.socket);
	int before = refusals_logged(&d);
	expect_error(alloc_large(fd, 0), EINVAL);
	expect_error(alloc_large(fd, (uint64_t)1 << 63), ENOMEM);
	expect_error(alloc_large(fd, UINT64_MAX), ENOMEM);
	expect_error(alloc_large(fd, (8u << 20) + 1), ENOMEM); /* just over --max-memory */
	expect_logged(&d, before + 4);
	Shma__Response *r = alloc_large(fd, 1u << 20); /* and a fair one still works */
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_ALLOC_LARGE);
	expect_ok(free_large(fd, r->alloc_large->ref));
	shma__response__free_unpacked(r, NULL);
	close(fd);
	still_serves(&d);
	e2e_stop_daemon(&d);
}
END_TEST

START_TEST(refill_class_and_count_out_of_range)
{
	int fd = peer(e2e.socket);
	int before = refusals_logged(&e2e);
	expect_error(refill(fd, SIZECLASS_COUNT, 1), EINVAL);
	expect_error(refill(fd, SIZECLASS_COUNT + 1, 1), EINVAL);
	expect_error(refill(fd, UINT32_MAX, 1), EINVAL);
	expect_error(refill(fd, 0, 0), EINVAL);
	expect_logged(&e2e, before + 4);
	/* A huge count is capped, not refused, and not more than asked. */
	static uint64_t refs[1 << 16];
	size_t n = refill_refs(fd, 0, UINT32_MAX, refs);
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_le(n, 16384);
	flush(fd, refs, n, (uint32_t)n, 0);
	/* Nor in bytes: the largest small class gives 4 MiB at most, not 2 GiB. */
	unsigned big = 0;
	while (big + 1 < SIZECLASS_COUNT && sizeclass_size(big) < (128u << 10))
		big++;
	n = refill_refs(fd, big, UINT32_MAX, refs);
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_le(n * sizeclass_size(big), 4u << 20);
	flush(fd, refs, n, (uint32_t)n, 0);
	close(fd);
	still_serves(&e2e);
}
END_TEST

/* ---- names ---- */

START_TEST(bad_names_are_refused)
{
	int fd = peer(e2e.socket);
	uint64_t ref;
	ck_assert_uint_eq(refill_refs(fd, 0, 1, &ref), 1);
	char longest[256], too_long[257];
	memset(longest, 'n', 255);
	longest[255] = '\0';
	memset(too_long, 'n', 256);
	too_long[256] = '\0';
	static const char *const odd[] = {"a\nb", "tab\there", "\x01", "del\x7f",
					  "bad utf-8 \xff", "cut \xc3", "esc \x1b[2J"};
	int before = refusals_logged(&e2e);
	expect_error(publish(fd, "", ref), EINVAL);
	expect_error(publish(fd, too_long, ref), ENAMETOOLONG);
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
		expect_error(publish(fd, odd[i], ref), EINVAL);
	expect_logged(&e2e, before + 2 + (int)(sizeof odd / sizeof odd[0]));
	expect_error(lookup(fd, ""), EINVAL);
	expect_error(lookup(fd, too_long), ENAMETOOLONG);
	expect_error(lookup(fd, "a\nb"), EINVAL);
	expect_error(unpublish(fd, ""), EINVAL);
	expect_error(unpublish(fd, "\x01"), EINVAL);
	/* The longest name, and one in UTF-8, are fine. */
	expect_ok(publish(fd, longest, ref));
	expect_ok(publish(fd, "caf\xc3\xa9", ref));
	Shma__Response *r = lookup(fd, longest);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_LOOKUP);
	ck_assert_uint_eq(r->lookup->ref, ref);
	shma__response__free_unpacked(r, NULL);
	expect_ok(unpublish(fd, longest));
	expect_ok(unpublish(fd, "caf\xc3\xa9"));
	flush(fd, &ref, 1, 1, 0);
	close(fd);
	still_serves(&e2e);
}
END_TEST

START_TEST(name_with_an_embedded_nul_is_refused)
{
	/* "ab\0cd": a string field of 5 bytes that C would read as "ab". */
	int fd = peer(e2e.socket);
	uint8_t frame[] = {0, 0, 0, 0, 0x08, 0x7f,          /* id 127 */
			   0x42, 7, 0x0a, 5, 'a', 'b', 0, 'c', 'd'}; /* lookup { name } */
	frame_put_header(frame, sizeof frame - FRAME_HEADER);
	send_all(fd, frame, sizeof frame);
	expect_error(recv_resp(fd), EINVAL);
	stats_ok(fd);
	close(fd);
	still_serves(&e2e);
}
END_TEST

START_TEST(a_hello_name_cannot_forge_log_lines)
{
	int fd = e2e_raw_connect(e2e.socket);
	Shma__Request req;
	Shma__Hello h;
	hello_req(&req, &h);
	h.name = (char *)"x\nshmallocd[1]: error: forged line\x1b[2J";
	Shma__Response *r = call(fd, &req);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_HELLO);
	shma__response__free_unpacked(r, NULL);
	stats_ok(fd);
	close(fd);
	ck_assert_int_eq(log_lines(&e2e, "x?shmallocd[1]: error: forged line?[2J"), 1);
	FILE *f = fopen(e2e.log, "r");
	ck_assert_ptr_nonnull(f);
	char line[1024];
	while (fgets(line, sizeof line, f) != NULL)
		ck_assert_msg(strncmp(line, "shmallocd[1]", 12) != 0, "forged: %s", line);
	fclose(f);
}
END_TEST

/* ---- peers that misbehave ---- */

static void raise_fd_limit(rlim_t want)
{
	struct rlimit rl;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < want)
		rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* Starts a daemon whose descriptor limit is soft:hard.  Lowering the hard
 * limit cannot be undone, so a helper process does it and starts the
 * daemon; we adopt the daemon as a subreaper, to wait for it as usual. */
static void start_limited_daemon(struct e2e_daemon *d, rlim_t soft, rlim_t hard)
{
	int p[2];
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	ck_assert_int_eq(pipe(p), 0);
	pid_t helper = fork();
	ck_assert_int_ge(helper, 0);
	if (helper == 0) {
		struct rlimit rl = {soft, hard};
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			_exit(1);
		e2e_start_daemon(d, NULL);
		_exit(write(p[1], d, sizeof *d) == (ssize_t)sizeof *d ? 0 : 1);
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], d, sizeof *d), (ssize_t)sizeof *d);
	close(p[0]);
	ck_assert_int_eq(e2e_wait(helper), 0);
}

START_TEST(a_flood_of_connections)
{
	/* Started with a soft limit of 256 descriptors, the daemon raises it:
	 * 1000 clients with control blocks take 2000. */
	enum { FLOOD = 2000 };
	struct e2e_daemon d;
	struct rlimit rl;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < FLOOD * 2 + 512) {
		fprintf(stderr, "hostile: a_flood_of_connections skipped: hard limit of %llu "
			"descriptors\n", (unsigned long long)rl.rlim_max);
		return;
	}
	start_limited_daemon(&d, 256, rl.rlim_max);
	raise_fd_limit(FLOOD + 256);
	static int fds[FLOOD];
	int n = 0;
	for (; n < FLOOD; n++) {
		fds[n] = e2e_raw_connect(d.socket);
		if (fds[n] < 0)
			break;
	}
	ck_assert_int_eq(n, FLOOD);
	/* Half of them say Hello: the daemon answers every one. */
	for (int i = 0; i < n; i += 2) {
		Shma__Request req;
		Shma__Hello h;
		hello_req(&req, &h);
		send_req(fds[i], &req);
	}
	for (int i = 0; i < n; i += 2) {
		Shma__Response *r = recv_resp(fds[i]);
		ck_assert_msg(r->body_case == SHMA__RESPONSE__BODY_HELLO, "hello %d: %s", i,
			      r->body_case == SHMA__RESPONSE__BODY_ERROR ? r->error->message : "?");
		shma__response__free_unpacked(r, NULL);
	}
	still_serves(&d);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	still_serves(&d);
	e2e_stop_daemon(&d);
}
END_TEST

START_TEST(out_of_file_descriptors_does_not_spin)
{
	/* 64 descriptors, hard: the daemon cannot raise it. */
	struct e2e_daemon d;
	start_limited_daemon(&d, 64, 64);
	raise_fd_limit(1024);
	enum { N = 200 };
	int fds[N];
	for (int i = 0; i < N; i++)
		fds[i] = e2e_raw_connect(d.socket);
	usleep(200000);
	long t0 = daemon_cpu_ticks(&d);
	usleep(1000000);
	long spent = daemon_cpu_ticks(&d) - t0;
	ck_assert_msg(spent < sysconf(_SC_CLK_TCK) / 5, "the daemon used %ld ticks in 1 s", spent);
	for (int i = 0; i < N; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	usleep(200000);
	still_serves(&d);
	e2e_stop_daemon(&d);
}
END_TEST

START_TEST(no_hello_in_time_is_closed)
{
	struct e2e_daemon d;
	const char *const extra[] = {"--handshake-timeout", "0.5", NULL};
	e2e_start_daemon(&d, extra);
	int silent = e2e_raw_connect(d.socket);
	int half = e2e_raw_connect(d.socket);
	uint8_t part[4 + 2];
	frame_put_header(part, 40);
	send_all(half, part, sizeof part);
	int greeted = peer(d.socket);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	expect_error(recv_resp(silent), ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert(e2e_raw_closed(silent));
	expect_error(recv_resp(half), ETIMEDOUT);
	ck_assert(e2e_raw_closed(half));
	double waited = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_msg(waited < 2.0, "closed after %.2f s", waited);
	ck_assert_int_eq(log_lines(&d, "no hello within"), 2);
	/* Idle after Hello is allowed, however long. */
	usleep(1200000);
	stats_ok(greeted);
	close(silent);
	close(half);
	close(greeted);
	still_serves(&d);
	e2e_stop_daemon(&d);
}
END_TEST

START_TEST(before_hello_frames_are_small)
{
	/* A Hello is tiny: before it, 4 KiB is the limit, not --max-frame. */
	int fd = e2e_raw_connect(e2e.socket);
	uint8_t hdr[FRAME_HEADER];
	frame_put_header(hdr, 4097);
	send_all(fd, hdr, sizeof hdr);
	expect_error(recv_resp(fd), EMSGSIZE);
	ck_assert(e2e_raw_closed(fd));
	close(fd);
	/* After it, the limit is --max-frame: a 128 KiB flush is fine. */
	fd = peer(e2e.socket);
	static uint64_t refs[16384];
	size_t n = refill_refs(fd, 0, 16384, refs);
	ck_assert_uint_gt(n, 8192);
	flush(fd, refs, n, (uint32_t)n, 0);
	close(fd);
	still_serves(&e2e);
}
END_TEST

START_TEST(half_a_frame_blocks_nobody)
{
	int slow = peer(e2e.socket);
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__Stats st = SHMA__STATS__INIT;
	req.body_case = SHMA__REQUEST__BODY_STATS;
	req.stats = &st;
	req.id = 4242;
	uint8_t frame[64];
	size_t n = shma__request__get_packed_size(&req);
	frame_put_header(frame, (uint32_t)n);
	shma__request__pack(&req, frame + FRAME_HEADER);
	send_all(slow, frame, 3); /* half the header */
	still_serves(&e2e);
	send_all(slow, frame + 3, 3);
	still_serves(&e2e);
	send_all(slow, frame + 6, n + FRAME_HEADER - 6);
	Shma__Response *r = recv_resp(slow);
	ck_assert_uint_eq(r->id, 4242);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_STATS);
	shma__response__free_unpacked(r, NULL);
	close(slow);
}
END_TEST

/* A client that sends Roots requests for a second and never reads: 64
 * roots of the longest names make an answer of some 17 KiB for a request of
 * 8 bytes, so one read of 64 KiB holds 8192 of them. */
static int start_hog(const struct e2e_daemon *d)
{
	int hog = peer(d->socket);
	uint64_t ref;
	ck_assert_uint_eq(refill_refs(hog, 0, 1, &ref), 1);
	char name[256];
	memset(name, 'r', 255);
	name[255] = '\0';
	for (int i = 0; i < 64; i++) {
		snprintf(name, sizeof name, "%02d", i);
		name[2] = 'r';
		expect_ok(publish(hog, name, ref));
	}
	return hog;
}

static void hog_for_a_second(int hog)
{
	static uint8_t batch[8 * 8192];
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__Roots ro = SHMA__ROOTS__INIT;
	req.body_case = SHMA__REQUEST__BODY_ROOTS;
	req.roots = &ro;
	req.id = 1;
	size_t n = shma__request__get_packed_size(&req);
	ck_assert_uint_eq(n + FRAME_HEADER, 8);
	for (size_t i = 0; i < sizeof batch; i += 8) {
		frame_put_header(batch + i, (uint32_t)n);
		shma__request__pack(&req, batch + i + FRAME_HEADER);
	}
	ck_assert_int_eq(fcntl(hog, F_SETFL, O_NONBLOCK), 0);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		if (write(hog, batch, sizeof batch) <= 0)
			usleep(1000);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec < 1);
}

START_TEST(a_client_that_never_reads_costs_bounded_memory)
{
	int hog = start_hog(&e2e);
	long rss0 = daemon_rss_kib(&e2e);
	hog_for_a_second(hog);
	still_serves(&e2e);
	long grown = daemon_rss_kib(&e2e) - rss0;
	ck_assert_msg(grown < 48 * 1024, "the daemon grew by %ld KiB", grown);
	close(hog);
	still_serves(&e2e);
}
END_TEST

START_TEST(a_client_that_never_reads_is_closed_after_the_write_timeout)
{
	struct e2e_daemon d;
	const char *const extra[] = {"--write-timeout", "1", NULL};
	e2e_start_daemon(&d, extra);
	int hog = start_hog(&d);
	int reader = peer(d.socket); /* idle, but reads what it asks for */
	hog_for_a_second(hog);
	int n = 0;
	for (int i = 0; i < 300 && (n = log_lines(&d, "past --write-timeout: closed")) == 0; i++)
		usleep(10000);
	ck_assert_int_eq(n, 1);
	stats_ok(reader);
	close(reader);
	close(hog);
	still_serves(&d);
	e2e_stop_daemon(&d);
}
END_TEST

/* ---- limits under load ---- */

#define HOLDERS 4
#define HELD_MAX 4096

/* A process that allocates mixed sizes until the daemon says ENOMEM,
 * writing every byte it got; tells the parent how much on `report`, waits
 * for a byte on `go`, frees everything and exits 0 (else a code saying
 * what went wrong). */
struct holder {
	const char *socket;
	int report, go;
};

static int hold_until_enomem(const struct holder *h)
{
	static const size_t sizes[] = {64, 1000, 9000, 100000, 300000};
	static void *held[HELD_MAX];
	unsigned n = 0;
	uint64_t bytes = 0;
	if (shma_connect(h->socket) != 0)
		return 10;
	for (;;) {
		size_t size = sizes[n % (sizeof sizes / sizeof sizes[0])];
		void *p = n < HELD_MAX ? shma_malloc(size) : NULL;
		if (p == NULL)
			break;
		memset(p, 0xa5, size);
		held[n++] = p;
		bytes += size;
	}
	if (n == HELD_MAX)
		return 11; /* the cap never came */
	if (errno != ENOMEM)
		return 12;
	if (write(h->report, &bytes, sizeof bytes) != (ssize_t)sizeof bytes)
		return 13;
	char b;
	if (read(h->go, &b, 1) != 1)
		return 14;
	for (unsigned i = 0; i < n; i++)
		shma_free(held[i]);
	shma_disconnect();
	return 0;
}

/* Starts HOLDERS holders on d, waits until each is at its cap, and fills
 * got[] with what each holds. */
static void start_holders(const struct e2e_daemon *d, pid_t *pids, uint64_t *got, int *go_w)
{
	int rep[2], go[2];
	ck_assert_int_eq(pipe(rep), 0);
	ck_assert_int_eq(pipe(go), 0);
	for (int i = 0; i < HOLDERS; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			close(rep[0]);
			close(go[1]);
			struct holder h = {d->socket, rep[1], go[0]};
			_exit(hold_until_enomem(&h));
		}
	}
	close(rep[1]);
	close(go[0]);
	for (int i = 0; i < HOLDERS; i++)
		ck_assert_int_eq(read(rep[0], &got[i], sizeof got[i]), (ssize_t)sizeof got[i]);
	close(rep[0]);
	*go_w = go[1];
}

static void release_holders(pid_t *pids, int go_w)
{
	char b[HOLDERS] = {0};
	ck_assert_int_eq(write(go_w, b, HOLDERS), HOLDERS);
	close(go_w);
	for (int i = 0; i < HOLDERS; i++)
		ck_assert_int_eq(e2e_wait(pids[i]), 0);
}

START_TEST(max_memory_holds_under_load)
{
	struct e2e_daemon d;
	const char *const extra[] = {"--arena-size", "1M", "--max-memory", "16M", NULL};
	e2e_start_daemon(&d, extra);
	pid_t pids[HOLDERS];
	uint64_t got[HOLDERS], total = 0;
	int go;
	start_holders(&d, pids, got, &go);
	for (int i = 0; i < HOLDERS; i++)
		total += got[i];
	ck_assert_uint_le(total, 16u << 20);
	ck_assert_uint_ge(total, 8u << 20);
	/* Everyone is at the cap: a newcomer is refused cleanly and served. */
	int fd = peer(d.socket);
	expect_error(alloc_large(fd, 1u << 20), ENOMEM);
	stats_ok(fd);
	close(fd);
	release_holders(pids, go);
	/* What they gave back can be had again.  (Small blocks: an arena, once
	 * created, counts against --max-memory even when empty, so whether a
	 * large block fits again depends on how the holders' load fell.) */
	ck_assert_int_eq(shma_connect(d.socket), 0);
	void *blocks[64];
	for (int i = 0; i < 64; i++) {
		/* The holders' last flushes may still be on their way. */
		for (int tries = 0; (blocks[i] = shma_malloc(65536)) == NULL && tries < 100; tries++)
			usleep(20000);
		ck_assert_ptr_nonnull(blocks[i]);
	}
	for (int i = 0; i < 64; i++)
		shma_free(blocks[i]);
	shma_disconnect();
	e2e_stop_daemon(&d);
}
END_TEST

START_TEST(client_max_memory_holds_under_load)
{
	struct e2e_daemon d;
	const char *const extra[] = {"--client-max-memory", "3M", NULL};
	e2e_start_daemon(&d, extra);
	pid_t pids[HOLDERS];
	uint64_t got[HOLDERS];
	int go;
	start_holders(&d, pids, got, &go);
	for (int i = 0; i < HOLDERS; i++) {
		ck_assert_uint_le(got[i], 3u << 20);
		ck_assert_uint_ge(got[i], 1u << 20);
	}
	/* Each is at its own cap, not the daemon's: another client is served. */
	still_serves(&d);
	release_holders(pids, go);
	e2e_stop_daemon(&d);
}
END_TEST

/* In a mount namespace of its own with a 16 MiB tmpfs on /dev/shm: a daemon
 * without --max-memory and a client that allocates and writes until ENOMEM.
 * 0, 77 when the namespace or the mount is not permitted, else a failure
 * (128 + signal if the client died of one: SIGBUS is what must not be). */
static int full_tmpfs_child(void)
{
	if (unshare(CLONE_NEWNS) != 0)
		return 77;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("shma-test", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=1777") != 0)
		return 77;
	struct statfs fs;
	if (statfs("/dev/shm", &fs) != 0 || (uint64_t)fs.f_blocks * fs.f_bsize != 16u << 20)
		return 30;
	struct e2e_daemon d;
	const char *const extra[] = {"--arena-size", "4M", NULL};
	e2e_start_daemon(&d, extra);
	int rep[2], go[2];
	if (pipe(rep) != 0 || pipe(go) != 0)
		return 31;
	pid_t pid = fork();
	if (pid == 0) {
		struct holder h = {d.socket, rep[1], go[0]};
		_exit(hold_until_enomem(&h));
	}
	uint64_t bytes = 0;
	if (read(rep[0], &bytes, sizeof bytes) != (ssize_t)sizeof bytes)
		return e2e_wait(pid);
	/* Most of the 16 MiB, never more. */
	if (bytes < (6u << 20) || bytes > (16u << 20))
		return 32;
	/* Full: a newcomer cannot have a control block; it is told so. */
	int fd = e2e_raw_connect(d.socket);
	Shma__Request req;
	Shma__Hello hh;
	hello_req(&req, &hh);
	Shma__Response *r = call(fd, &req);
	if (r->body_case != SHMA__RESPONSE__BODY_ERROR ||
	    (r->error->code != ENOMEM && r->error->code != ENOSPC))
		return 34;
	shma__response__free_unpacked(r, NULL);
	close(fd);
	if (write(go[1], "g", 1) != 1)
		return 33;
	int rc = e2e_wait(pid);
	if (rc != 0)
		return rc;
	still_serves(&d);
	e2e_stop_daemon(&d);
	return 0;
}

START_TEST(full_tmpfs_is_enomem_not_sigbus)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(full_tmpfs_child());
	int rc = e2e_wait(pid);
	if (rc == 77) {
		fprintf(stderr, "hostile: full_tmpfs_is_enomem_not_sigbus skipped: cannot mount a "
			"tmpfs in a mount namespace here (needs CAP_SYS_ADMIN)\n");
		return;
	}
	ck_assert_msg(rc == 0, "the tmpfs run ended with %d (135 is SIGBUS)", rc);
}
END_TEST

Suite *make_hostile_suite(void);
Suite *make_hostile_suite(void)
{
	Suite *s = suite_create("hostile");
	TCase *tc = tcase_create("requests");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, refs_outside_any_segment_are_rejected);
	tcase_add_test(tc, double_free_is_rejected_and_the_rest_taken);
	tcase_add_test(tc, misaligned_refs_are_rejected);
	tcase_add_test(tc, refs_of_another_kind_are_refused);
	tcase_add_test(tc, absurd_sizes_are_refused);
	tcase_add_test(tc, refill_class_and_count_out_of_range);
	tcase_add_test(tc, bad_names_are_refused);
	tcase_add_test(tc, name_with_an_embedded_nul_is_refused);
	tcase_add_test(tc, a_hello_name_cannot_forge_log_lines);
	suite_add_tcase(s, tc);
	tc = tcase_create("peers");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_flood_of_connections);
	tcase_add_test(tc, out_of_file_descriptors_does_not_spin);
	tcase_add_test(tc, no_hello_in_time_is_closed);
	tcase_add_test(tc, before_hello_frames_are_small);
	tcase_add_test(tc, half_a_frame_blocks_nobody);
	tcase_add_test(tc, a_client_that_never_reads_costs_bounded_memory);
	tcase_add_test(tc, a_client_that_never_reads_is_closed_after_the_write_timeout);
	suite_add_tcase(s, tc);
	tc = tcase_create("limits");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, max_memory_holds_under_load);
	tcase_add_test(tc, client_max_memory_holds_under_load);
	tcase_add_test(tc, full_tmpfs_is_enomem_not_sigbus);
	suite_add_tcase(s, tc);
	return s;
}
