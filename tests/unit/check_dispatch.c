/* SPDX-License-Identifier: MIT */
/*
 * The dispatcher alone: decoded requests in, replies out, on a real heap and
 * real roots but no socket and no event loop (the session layer links
 * without libuv).  Each test opens a daemon state with the daemon's own
 * option defaults and one session, as a connection would, and asserts the
 * reply, the action (answer, answer and close, nothing) and what was
 * counted: a Hello and its control block, refills, a flush holding bad
 * refs (rejected and counted, the rest taken), the errors of publish,
 * lookup and unpublish, a request before Hello, stats, and a frame that
 * does not decode.
 */
#include <check.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "daemon.h"
#include "dispatch.h"
#include "frame.h"
#include "instance.h"
#include "log.h"
#include "ref.h"
#include "seg.h"
#include "session.h"
#include "shmalloc.pb-c.h"
#include "sizeclass.h"
#include "wire.h"

#define CLS 2 /* a small class; its objects are sizeclass_size(CLS) bytes */

static char inst[32];
static struct daemon d;
static struct client *c;
static Shma__Response resp;
static struct dispatch_scratch scratch;
static uint64_t next_id;

static void open_daemon(void)
{
	char *argv[] = {(char *)"shmallocd", (char *)"--name", inst, (char *)"--arena-size",
			(char *)"1M", (char *)"--max-memory", (char *)"8M", NULL};
	log_set_level(SLOG_ERROR);
	test_instance(inst, sizeof inst);
	/* /dev/shm is shared: a run that died may have left segments of this
	 * name (its pid is ours now, so it is gone), which recovery would refuse. */
	ck_assert_int_ge(seg_instance_segments(inst, 1), 0);
	memset(&d, 0, sizeof d);
	ck_assert_int_eq(options_parse(&d.opt, 7, argv, stdout, stderr), OPTIONS_RUN);
	struct heap_config hc = {
		.instance = d.opt.instance, .arena_size = d.opt.arena_size,
		.max_memory = d.opt.max_memory, .mode = 0600, .decay_ms = d.opt.decay_ms,
	};
	ck_assert_int_eq(heap_open(&d.heap, &hc), 0);
	ck_assert_int_eq(roots_open(&d.roots, inst, 0600), 0);
	c = session_open(&d, getpid(), getuid());
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(d.nclients, 1);
	next_id = 0;
}

/* Ends the session as a lost connection would (this process lives on, so
 * its control block becomes an orphan), then removes every segment. */
static void close_daemon(void)
{
	dispatch_done(&scratch);
	session_close(&d, c);
	ck_assert_uint_eq(d.nclients, 0);
	ck_assert_ptr_null(d.clients);
	daemon_control_close(&d, 1);
	roots_close(d.roots, 1);
	heap_close(d.heap, 1);
	ck_assert_int_eq(test_segments_left(inst), 0);
}

/* Dispatches req under a fresh id; resp holds the reply until the next. */
static enum dispatch_action ask(Shma__Request *req)
{
	dispatch_done(&scratch);
	memset(&resp, 0, sizeof resp);
	req->id = ++next_id;
	enum dispatch_action act = dispatch_request(&d, c, req, &resp, &scratch);
	if (act != DISPATCH_NONE)
		ck_assert_uint_eq(resp.id, req->id);
	return act;
}

/* The reply is an Error with this code. */
static void assert_error(int code)
{
	ck_assert_int_eq(resp.body_case, SHMA__RESPONSE__BODY_ERROR);
	ck_assert_int_eq(resp.error->code, code);
	ck_assert_ptr_nonnull(resp.error->message);
}

static enum dispatch_action hello_with(uint32_t version, uint64_t checksum, const char *name)
{
	Shma__Request r;
	Shma__Hello h;
	wire_hello(&r, &h, name, 0);
	h.version = version;
	h.class_checksum = checksum;
	return ask(&r);
}

static void hello(void)
{
	ck_assert_int_eq(hello_with(SHMA_PROTOCOL_VERSION, sizeclass_checksum(), "unit"),
			 DISPATCH_REPLY);
	ck_assert_int_eq(resp.body_case, SHMA__RESPONSE__BODY_HELLO);
}

static enum dispatch_action refill(uint32_t cls, uint32_t count)
{
	Shma__Request r;
	Shma__Refill f;
	wire_refill(&r, &f, cls, count, 0);
	return ask(&r);
}

/* Refills count objects of CLS and writes their refs, runs unrolled. */
static void take(uint64_t *refs, uint32_t count)
{
	ck_assert_int_eq(refill(CLS, count), DISPATCH_REPLY);
	ck_assert_int_eq(resp.body_case, SHMA__RESPONSE__BODY_REFILL);
	const Shma__RefillReply *r = resp.refill;
	ck_assert_uint_eq(r->size_class, CLS);
	uint32_t n = 0;
	for (size_t i = 0; i < r->n_refs; i++) {
		ck_assert_uint_lt(n, count);
		refs[n++] = r->refs[i];
	}
	for (size_t i = 0; i < r->n_runs; i++)
		for (uint32_t k = 0; k < r->runs[i]->count; k++) {
			ck_assert_uint_lt(n, count);
			refs[n++] = r->runs[i]->first + (uint64_t)k * sizeclass_size(CLS);
		}
	ck_assert_uint_eq(n, count);
}

static enum dispatch_action flush(uint64_t *refs, size_t n, int want_reply)
{
	Shma__Request r;
	Shma__Flush f;
	wire_flush(&r, &f, refs, n, want_reply);
	return ask(&r);
}

static enum dispatch_action publish(const char *name, uint64_t ref)
{
	Shma__Request r;
	Shma__Publish p;
	wire_publish(&r, &p, name, ref);
	return ask(&r);
}

static enum dispatch_action lookup(const char *name)
{
	Shma__Request r;
	Shma__Lookup l;
	wire_lookup(&r, &l, name);
	return ask(&r);
}

static enum dispatch_action unpublish(const char *name)
{
	Shma__Request r;
	Shma__Unpublish u;
	wire_unpublish(&r, &u, name);
	return ask(&r);
}

static enum dispatch_action stats(void)
{
	Shma__Request r;
	Shma__Stats st;
	wire_stats(&r, &st);
	return ask(&r);
}

START_TEST(hello_makes_the_control_block)
{
	open_daemon();
	ck_assert_int_eq(hello_with(SHMA_PROTOCOL_VERSION, sizeclass_checksum(), "a\tb"),
			 DISPATCH_REPLY);
	ck_assert_int_eq(resp.body_case, SHMA__RESPONSE__BODY_HELLO);
	const Shma__HelloReply *h = resp.hello;
	ck_assert_uint_eq(h->version, SHMA_PROTOCOL_VERSION);
	ck_assert_str_eq(h->instance, inst);
	ck_assert_uint_eq(h->arena_size, 1 << 20);
	ck_assert_uint_eq(h->nclasses, SIZECLASS_COUNT);
	ck_assert_uint_eq(h->large_threshold, d.opt.large_threshold);
	ck_assert_uint_eq(h->max_frame, d.opt.max_frame);
	ck_assert_uint_eq(h->control_slots, SHMA_CONTROL_SLOTS);
	ck_assert_uint_ne(h->client_id, 0);
	ck_assert_uint_eq(h->client_id, c->id);
	ck_assert(c->hello_done);
	ck_assert_str_eq(c->name, "a?b"); /* a control character, for logs: replaced */
	/* The control block exists, whole, and names its client and process. */
	ck_assert_ptr_nonnull(c->ctl);
	ck_assert_uint_eq(c->ctl->hdr.magic, SHMA_CONTROL_MAGIC);
	ck_assert_uint_eq(c->ctl->hdr.client_id, c->id);
	ck_assert_uint_eq(c->ctl->hdr.pid, (uint32_t)getpid());
	ck_assert_uint_eq(c->rejected, 0);
	/* Said twice: the peer does not speak our protocol; closed. */
	ck_assert_int_eq(hello_with(SHMA_PROTOCOL_VERSION, sizeclass_checksum(), "unit"),
			 DISPATCH_REPLY_CLOSE);
	assert_error(EPROTO);
	ck_assert_uint_eq(c->rejected, 1);
	ck_assert_uint_eq(d.rejected, 1);
	close_daemon();
}
END_TEST

START_TEST(hello_of_another_protocol_is_refused_and_closes)
{
	open_daemon();
	ck_assert_int_eq(hello_with(SHMA_PROTOCOL_VERSION + 1, sizeclass_checksum(), "x"),
			 DISPATCH_REPLY_CLOSE);
	assert_error(EPROTONOSUPPORT);
	ck_assert(!c->hello_done);
	ck_assert_ptr_null(c->ctl);
	ck_assert_int_eq(hello_with(SHMA_PROTOCOL_VERSION, sizeclass_checksum() ^ 1, "x"),
			 DISPATCH_REPLY_CLOSE);
	assert_error(EPROTO);
	ck_assert(!c->hello_done);
	ck_assert_uint_eq(c->rejected, 2);
	ck_assert_uint_eq(d.rejected, 2);
	close_daemon();
}
END_TEST

START_TEST(a_request_before_hello_is_refused_and_closes)
{
	open_daemon();
	ck_assert_int_eq(refill(CLS, 8), DISPATCH_REPLY_CLOSE);
	assert_error(EPROTO);
	ck_assert_int_eq(stats(), DISPATCH_REPLY_CLOSE);
	assert_error(EPROTO);
	ck_assert_int_eq(lookup("x"), DISPATCH_REPLY_CLOSE);
	assert_error(EPROTO);
	ck_assert_uint_eq(c->rejected, 3);
	ck_assert_uint_eq(d.rejected, 3);
	/* Nothing was handed out. */
	struct heap_totals t;
	heap_totals(d.heap, &t);
	ck_assert_uint_eq(t.in_use_bytes, 0);
	ck_assert_uint_eq(c->bytes_held, 0);
	close_daemon();
}
END_TEST

START_TEST(refill_hands_out_objects_of_the_class)
{
	uint64_t refs[8];
	open_daemon();
	hello();
	take(refs, 8);
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(heap_object_class(d.heap, refs[i]), CLS);
		for (int k = 0; k < i; k++)
			ck_assert_uint_ne(refs[i], refs[k]);
	}
	ck_assert_uint_eq(c->bytes_held, 8 * sizeclass_size(CLS));
	/* Bad requests are answered and the connection goes on. */
	ck_assert_int_eq(refill(SIZECLASS_COUNT, 8), DISPATCH_REPLY);
	assert_error(EINVAL);
	ck_assert_int_eq(refill(CLS, 0), DISPATCH_REPLY);
	assert_error(EINVAL);
	unsigned big = SIZECLASS_COUNT - 1; /* far above the 128 KiB large threshold */
	ck_assert_uint_ge(sizeclass_size(big - 1), d.opt.large_threshold);
	ck_assert_int_eq(refill(big, 1), DISPATCH_REPLY);
	assert_error(EINVAL);
	ck_assert_uint_eq(c->rejected, 3);
	ck_assert_uint_eq(c->bytes_held, 8 * sizeclass_size(CLS));
	close_daemon();
}
END_TEST

START_TEST(flush_rejects_bad_refs_counts_them_and_takes_the_rest)
{
	uint64_t refs[4];
	open_daemon();
	hello();
	take(refs, 4);
	uint64_t batch[] = {
		refs[0],
		refs[1] + 1,                        /* not at an object's start */
		refs[1],
		refs[0],                            /* a double free */
		(UINT64_C(200) << 26) + (1 << 16),   /* no such arena */
		refs[2],
	};
	ck_assert_int_eq(flush(batch, 6, 1), DISPATCH_REPLY);
	ck_assert_int_eq(resp.body_case, SHMA__RESPONSE__BODY_FLUSH);
	ck_assert_uint_eq(resp.flush->accepted, 3);
	ck_assert_uint_eq(resp.flush->rejected, 3);
	ck_assert_uint_eq(c->rejected, 3);
	ck_assert_uint_eq(d.rejected, 3);
	ck_assert_uint_eq(c->bytes_held, sizeclass_size(CLS));
	/* The three good ones are free again; the fourth is still out. */
	struct heap_class_stats cs;
	heap_class_stats(d.heap, CLS, &cs);
	ck_assert_uint_eq(cs.objects_out, 1);
	/* A flush nobody waits for gets no answer, and is still taken. */
	ck_assert_int_eq(flush(&refs[3], 1, 0), DISPATCH_NONE);
	heap_class_stats(d.heap, CLS, &cs);
	ck_assert_uint_eq(cs.objects_out, 0);
	ck_assert_uint_eq(c->bytes_held, 0);
	close_daemon();
}
END_TEST

START_TEST(publish_lookup_unpublish_errors)
{
	uint64_t refs[1];
	char long_name[300];
	open_daemon();
	hello();
	take(refs, 1);
	memset(long_name, 'n', 256);
	long_name[256] = '\0';
	/* Bad names and bad refs: answered, counted, the connection goes on. */
	ck_assert_int_eq(publish("", refs[0]), DISPATCH_REPLY);
	assert_error(EINVAL);
	ck_assert_int_eq(publish(long_name, refs[0]), DISPATCH_REPLY);
	assert_error(ENAMETOOLONG);
	ck_assert_int_eq(publish("a\nb", refs[0]), DISPATCH_REPLY);
	assert_error(EINVAL);
	ck_assert_int_eq(publish("\xc0\xaf", refs[0]), DISPATCH_REPLY); /* overlong UTF-8 */
	assert_error(EINVAL);
	ck_assert_int_eq(publish("odd", refs[0] + 8), DISPATCH_REPLY);
	assert_error(EINVAL);
	ck_assert_int_eq(publish("none", 0), DISPATCH_REPLY);
	assert_error(EINVAL);
	ck_assert_uint_eq(c->rejected, 6);
	ck_assert_int_eq(publish("queue", refs[0]), DISPATCH_REPLY);
	ck_assert_int_eq(resp.body_case, SHMA__RESPONSE__BODY_OK);
	ck_assert_int_eq(publish("queue", refs[0]), DISPATCH_REPLY);
	assert_error(EEXIST);
	ck_assert_uint_eq(c->rejected, 7);
	/* A miss is an answer, not a misbehaving client: not counted. */
	ck_assert_int_eq(lookup("missing"), DISPATCH_REPLY);
	assert_error(ENOENT);
	ck_assert_int_eq(unpublish("missing"), DISPATCH_REPLY);
	assert_error(ENOENT);
	ck_assert_int_eq(lookup(""), DISPATCH_REPLY);
	assert_error(EINVAL);
	ck_assert_uint_eq(c->rejected, 7);
	ck_assert_int_eq(lookup("queue"), DISPATCH_REPLY);
	ck_assert_int_eq(resp.body_case, SHMA__RESPONSE__BODY_LOOKUP);
	ck_assert_uint_eq(resp.lookup->ref, refs[0]);
	ck_assert_int_eq(unpublish("queue"), DISPATCH_REPLY);
	ck_assert_int_eq(resp.body_case, SHMA__RESPONSE__BODY_OK);
	ck_assert_int_eq(lookup("queue"), DISPATCH_REPLY);
	assert_error(ENOENT);
	ck_assert_uint_eq(roots_count(d.roots), 0);
	close_daemon();
}
END_TEST

START_TEST(stats_count_what_was_asked_and_handed_out)
{
	uint64_t refs[8];
	open_daemon();
	hello();
	take(refs, 8);
	ck_assert_int_eq(refill(CLS, 0), DISPATCH_REPLY);
	d.requests = 3; /* dispatch_frame() counts requests; dispatch_request() does not */
	c->requests = 3;
	ck_assert_int_eq(stats(), DISPATCH_REPLY);
	ck_assert_int_eq(resp.body_case, SHMA__RESPONSE__BODY_STATS);
	const Shma__StatsReply *r = resp.stats;
	ck_assert_str_eq(r->instance, inst);
	ck_assert_uint_eq(r->pid, (uint32_t)getpid());
	ck_assert_uint_eq(r->arena_size, 1 << 20);
	ck_assert_uint_eq(r->max_memory, 8 << 20);
	ck_assert_uint_eq(r->requests, 3);
	ck_assert_uint_eq(r->rejected, 1);
	ck_assert_uint_ge(r->in_use_bytes, 8 * sizeclass_size(CLS));
	ck_assert_uint_ge(r->n_arenas, 1);
	ck_assert_uint_eq(r->n_service_ns_histogram, DAEMON_HIST_BUCKETS);
	int found = 0;
	for (size_t i = 0; i < r->n_classes; i++)
		if (r->classes[i]->size_class == CLS) {
			ck_assert_uint_eq(r->classes[i]->objects_out, 8);
			ck_assert_uint_eq(r->classes[i]->refills, 1);
			found = 1;
		}
	ck_assert(found);
	ck_assert_uint_eq(r->n_clients, 1);
	const Shma__ClientStats *cl = r->clients[0];
	ck_assert_uint_eq(cl->client_id, c->id);
	ck_assert_uint_eq(cl->pid, (uint32_t)getpid());
	ck_assert_uint_eq(cl->uid, (uint32_t)getuid());
	ck_assert_str_eq(cl->name, "unit");
	ck_assert_uint_eq(cl->bytes_held, 8 * sizeclass_size(CLS));
	ck_assert_uint_eq(cl->requests, 3);
	ck_assert_uint_eq(cl->rejected, 1);
	close_daemon();
}
END_TEST

/* A frame's body through dispatch_frame(): the reply decoded again. */
static Shma__Response *frame_reply(const uint8_t *body, uint32_t len, enum dispatch_action *act)
{
	uint8_t *frame;
	size_t n;
	*act = dispatch_frame(&d, c, body, len, &frame, &n);
	if (frame == NULL)
		return NULL;
	const uint8_t *rbody;
	uint32_t rlen;
	size_t used;
	ck_assert_int_eq(frame_next(frame, n, UINT32_MAX, &rbody, &rlen, &used), FRAME_OK);
	ck_assert_uint_eq(used, n);
	Shma__Response *r = shma__response__unpack(NULL, rlen, rbody);
	free(frame);
	ck_assert_ptr_nonnull(r);
	return r;
}

START_TEST(frames_are_counted_and_garbage_closes)
{
	open_daemon();
	uint8_t body[256];
	Shma__Request r;
	Shma__Hello h;
	wire_hello(&r, &h, NULL, 0);
	r.id = 7;
	uint32_t len = (uint32_t)shma__request__pack(&r, body);
	enum dispatch_action act;
	Shma__Response *reply = frame_reply(body, len, &act);
	ck_assert_int_eq(act, DISPATCH_REPLY);
	ck_assert_ptr_nonnull(reply);
	ck_assert_uint_eq(reply->id, 7);
	ck_assert_int_eq(reply->body_case, SHMA__RESPONSE__BODY_HELLO);
	shma__response__free_unpacked(reply, NULL);
	ck_assert_uint_eq(c->requests, 1);
	ck_assert_uint_eq(d.requests, 1);
	/* Bytes that do not decode as a Request: EPROTO, counted, closed. */
	static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff};
	reply = frame_reply(garbage, sizeof garbage, &act);
	ck_assert_int_eq(act, DISPATCH_REPLY_CLOSE);
	ck_assert_ptr_nonnull(reply);
	ck_assert_int_eq(reply->body_case, SHMA__RESPONSE__BODY_ERROR);
	ck_assert_int_eq(reply->error->code, EPROTO);
	shma__response__free_unpacked(reply, NULL);
	ck_assert_uint_eq(c->rejected, 1);
	ck_assert_uint_eq(d.rejected, 1);
	ck_assert_uint_eq(c->requests, 1);
	close_daemon();
}
END_TEST

START_TEST(goodbye_is_answered_and_closes)
{
	open_daemon();
	hello();
	Shma__Request r;
	Shma__Goodbye g;
	wire_goodbye(&r, &g);
	ck_assert_int_eq(ask(&r), DISPATCH_REPLY_CLOSE);
	ck_assert_int_eq(resp.body_case, SHMA__RESPONSE__BODY_OK);
	ck_assert(c->said_goodbye);
	close_daemon();
}
END_TEST
/* 1 if control block segment c<id> of the instance is in /dev/shm; then
 * *st is its stat. */
static int control_exists(uint64_t id, struct stat *st)
{
	char path[128];
	snprintf(path, sizeof path, "/dev/shm/shmalloc.%s.c%llu", inst, (unsigned long long)id);
	return stat(path, st) == 0;
}

/* A Hello takes a spare control block made ahead (off its path) when there
 * is one: the spare's id becomes the client's, the Hello only writes the
 * pid; the spares are the daemon's alone (0600), made while Hellos come,
 * and go when none came for a tick, or at exit. */
START_TEST(hello_takes_a_spare_control_block)
{
	open_daemon();
	struct stat st;
	/* Nothing wanted until a Hello comes (the loop also asks at start). */
	ck_assert(!daemon_control_spares_wanted(&d));
	ck_assert_int_eq(daemon_control_spare_make(&d), 0);
	ck_assert_uint_eq(d.nspares, 0);
	hello();
	uint64_t first = c->id;
	ck_assert(daemon_control_spares_wanted(&d));
	ck_assert_int_eq(daemon_control_spare_make(&d), DAEMON_CONTROL_SPARES > 1);
	while (daemon_control_spare_make(&d))
		;
	ck_assert_uint_eq(d.nspares, DAEMON_CONTROL_SPARES);
	ck_assert(!daemon_control_spares_wanted(&d));
	uint64_t spare = d.spares[0].id;
	ck_assert_uint_gt(spare, first);
	ck_assert(control_exists(spare, &st));
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_uint_eq(st.st_uid, geteuid());
	ck_assert_uint_ge((uint64_t)st.st_blocks * 512, offsetof(struct control_block, slots));
	const struct control_block *sb = d.spares[0].ctl;
	ck_assert_uint_eq(sb->hdr.magic, SHMA_CONTROL_MAGIC);
	ck_assert_uint_eq(sb->hdr.client_id, spare);
	ck_assert_uint_eq(sb->hdr.pid, 0); /* nobody's yet */
	/* A second connection's Hello gets the oldest spare. */
	struct client *one = c;
	c = session_open(&d, getpid(), getuid());
	ck_assert_ptr_nonnull(c);
	hello();
	ck_assert_uint_eq(resp.hello->client_id, spare);
	ck_assert_uint_eq(c->id, spare);
	ck_assert_ptr_eq(c->ctl, sb);
	ck_assert_uint_eq(c->ctl->hdr.pid, (uint32_t)getpid());
	ck_assert_uint_eq(d.nspares, DAEMON_CONTROL_SPARES - 1);
	ck_assert(daemon_control_spares_wanted(&d));
	dispatch_done(&scratch);
	session_close(&d, c);
	c = one;
	/* A tick after that Hello keeps the spares; the next, with none, drops them. */
	uint64_t left = DAEMON_CONTROL_SPARES > 1 ? d.spares[0].id : 0;
	daemon_control_spares_trim(&d);
	ck_assert_uint_eq(d.nspares, DAEMON_CONTROL_SPARES - 1);
	daemon_control_spares_trim(&d);
	ck_assert_uint_eq(d.nspares, 0);
	ck_assert(!daemon_control_spares_wanted(&d));
	if (left != 0)
		ck_assert(!control_exists(left, &st));
	/* Made again, they are removed at exit with everything else. */
	d.spares_wanted = 1;
	ck_assert_int_eq(daemon_control_spare_make(&d), DAEMON_CONTROL_SPARES > 1);
	close_daemon(); /* asserts no segment is left */
}
END_TEST

/* A spare left by a daemon that died is nobody's: the next daemon removes
 * it at recovery (it says pid 0, a process that is gone), adopting nothing. */
START_TEST(a_spare_left_by_a_dead_daemon_is_removed_at_recovery)
{
	open_daemon();
	d.spares_wanted = 1;
	daemon_control_spare_make(&d);
	ck_assert_uint_ge(d.nspares, 1);
	uint64_t id = d.spares[0].id;
	struct stat st;
	ck_assert(control_exists(id, &st));
	/* Forgotten as by a SIGKILL (the mapping stays ours, harmlessly). */
	for (unsigned i = 0; i < d.nspares; i++)
		close(d.spares[i].fd);
	d.nspares = 0;
	d.spares_wanted = 0;
	uint64_t next = d.next_client_id;
	d.next_client_id = 0;
	ck_assert_int_eq(daemon_control_recover(&d), 0);
	ck_assert(!control_exists(id, &st));
	ck_assert_ptr_null(d.orphans);
	ck_assert_uint_ge(d.next_client_id, next); /* its id is not given again */
	close_daemon();
}
END_TEST

Suite *make_dispatch_suite(void);
Suite *make_dispatch_suite(void)
{
	Suite *s = suite_create("dispatch");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, hello_makes_the_control_block);
	tcase_add_test(tc, hello_of_another_protocol_is_refused_and_closes);
	tcase_add_test(tc, a_request_before_hello_is_refused_and_closes);
	tcase_add_test(tc, refill_hands_out_objects_of_the_class);
	tcase_add_test(tc, flush_rejects_bad_refs_counts_them_and_takes_the_rest);
	tcase_add_test(tc, publish_lookup_unpublish_errors);
	tcase_add_test(tc, stats_count_what_was_asked_and_handed_out);
	tcase_add_test(tc, frames_are_counted_and_garbage_closes);
	tcase_add_test(tc, goodbye_is_answered_and_closes);
	tcase_add_test(tc, hello_takes_a_spare_control_block);
	tcase_add_test(tc, a_spare_left_by_a_dead_daemon_is_removed_at_recovery);
	suite_add_tcase(s, tc);
	return s;
}
