/* SPDX-License-Identifier: MIT */
/*
 * Named heaps (doc/architecture.md, "Named heaps"; issue 17): exec'd
 * programs (tests/e2e/heapprog.c) make, fill, open, close, destroy heaps and
 * die, against a real daemon, killed and restarted where it matters.  The
 * test process watches from outside: the daemon's heap list (a Heaps
 * request) and its in-use bytes.
 */
#include "call.h"
#include "exec.h"
#include "shmalloc.h"
#include "skip.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OUT 8192

/* A program running with pipes to its stdin and from its stdout. */
struct prog {
	pid_t pid;
	int in, out;
	char buf[OUT];
	size_t n;
};

static void prog_start(struct prog *p, const struct e2e_daemon *d, const char *const *argv)
{
	int to[2], from[2];
	ck_assert_int_eq(pipe(to), 0);
	ck_assert_int_eq(pipe(from), 0);
	memset(p, 0, sizeof *p);
	p->pid = fork();
	ck_assert_int_ge(p->pid, 0);
	if (p->pid == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		dup2(from[1], 2);
		close(to[0]), close(to[1]), close(from[0]), close(from[1]);
		setenv("SHMALLOC_SOCKET", d->socket, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	p->in = to[1];
	p->out = from[0];
}

/* Reads p's output until it holds text (1) or p closed it (0). */
static int prog_until(struct prog *p, const char *text)
{
	while (strstr(p->buf, text) == NULL) {
		if (p->n + 1 >= sizeof p->buf)
			return 0;
		ssize_t r = read(p->out, p->buf + p->n, sizeof p->buf - 1 - p->n);
		if (r <= 0)
			return 0;
		p->n += (size_t)r;
		p->buf[p->n] = '\0';
	}
	return 1;
}

/* Tells a program waiting in wait_line() to go on. */
static void prog_go(struct prog *p)
{
	ck_assert_int_eq(write(p->in, "go\n", 3), 3);
}

/* Its exit status, everything it said in p->buf. */
static int prog_end(struct prog *p)
{
	close(p->in);
	prog_until(p, "\x01never");
	close(p->out);
	return e2e_wait(p->pid);
}

/* Runs heapprog with args against d: its status, its output in out. */
static int heapprog(const struct e2e_daemon *d, char *out, const char *const *args)
{
	const char *argv[16] = {HEAPPROG_PATH};
	for (int i = 0; args[i] != NULL && i < 14; i++)
		argv[i + 1] = args[i];
	char env[200];
	snprintf(env, sizeof env, "SHMALLOC_SOCKET=%s", d->socket);
	const char *const envv[] = {env, NULL};
	return exec_capture(NULL, EXEC_ALL_GROUPS, envv, argv, out, OUT);
}

#define HEAPPROG(d, out, ...) heapprog((d), (out), (const char *const[]){__VA_ARGS__, NULL})

/* The daemon's word on heap name: how many processes have it open, or -1
 * if it is not there (this process asks, over its own connection). */
static int heap_processes(const char *name)
{
	Shma__Request req;
	Shma__Heaps hs;
	shma__request__init(&req);
	shma__heaps__init(&hs);
	req.body_case = SHMA__REQUEST__BODY_HEAPS;
	req.heaps = &hs;
	Shma__Response *resp;
	conn_lock();
	int rc = conn_call(&req, &resp);
	int found = -1;
	if (rc == 0 && resp->body_case == SHMA__RESPONSE__BODY_HEAPS)
		for (size_t i = 0; i < resp->heaps->n_heaps; i++)
			if (strcmp(resp->heaps->heaps[i]->name, name) == 0)
				found = (int)resp->heaps->heaps[i]->processes;
	if (resp != NULL)
		conn_done();
	conn_unlock();
	ck_assert_int_eq(rc, 0);
	return found;
}

/* Waits (up to 10 s: a dead client is settled at the connection's end or
 * the next sweep) until heap_processes(name) is want. */
static int wait_processes(const char *name, int want)
{
	int v = heap_processes(name);
	for (int i = 0; i < 200 && v != want; i++) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
		v = heap_processes(name);
	}
	return v;
}

static uint64_t in_use(void)
{
	return e2e_stat("\"in_use_bytes\":");
}

/* ---- a persistent heap ---- */

/* Made and filled (100 000 blocks, 16 B to 1 MiB) by two programs, the
 * creator gone, the daemon SIGKILLed and restarted; a third checks every
 * block and destroys it, while a fourth holds 3 000 default blocks and has
 * blocks of the heap in its cache.  After: in use back, the fourth's heap
 * cache refused, and its 30 000 fresh default blocks overlap none of its
 * 3 000.  Planted bugs it catches: the registry kept in the daemon's memory
 * only (open after the restart: ENOENT); a destroy that frees only the
 * blocks of one program, or misses the large blocks (in use not back); the
 * library taking from a destroyed heap's cache (heap malloc after destroy
 * gives a block, which overlaps fresh default blocks); a destroy that
 * frees default-heap spans (overlaps). */
START_TEST(a_persistent_heap_survives_its_creator_and_a_daemon_kill)
{
	struct e2e_daemon d;
	char out[OUT];
	e2e_start_daemon_kept(&d, NULL);
	ck_assert_int_eq(shma_connect(d.socket), 0);
	uint64_t before = in_use();
	ck_assert_msg(HEAPPROG(&d, out, "create-fill", "kept", "0", "50000", "kept.1") == 0, "%s",
		      out);
	ck_assert_msg(HEAPPROG(&d, out, "fill", "kept", "50000", "50000", "kept.2") == 0, "%s",
		      out);
	ck_assert_int_eq(wait_processes("kept", 0), 0); /* both gone, the heap lives */
	e2e_kill_daemon(&d);
	ck_assert_int_eq(e2e_restart_daemon(&d, NULL), 0);
	ck_assert(e2e_wait_log(&d, "named heaps: 1 live"));
	ck_assert_int_eq(heap_processes("kept"), 0);

	struct prog fourth;
	prog_start(&fourth, &d, (const char *const[]){HEAPPROG_PATH, "hold4", "kept", NULL});
	ck_assert_msg(prog_until(&fourth, "ready"), "%s", fourth.buf);
	uint64_t held = in_use();
	ck_assert_msg(HEAPPROG(&d, out, "verify-destroy", "kept", "kept.1", "kept.2") == 0, "%s",
		      out);
	ck_assert_msg(strstr(out, "checked: 100000 bad: 0") != NULL, "%s", out);
	unsigned long long heap_bytes = 0;
	const char *b = strstr(out, "heap in use: ");
	ck_assert(b != NULL && sscanf(b, "heap in use: %llu", &heap_bytes) == 1);
	ck_assert_uint_gt(heap_bytes, (uint64_t)100 << 20);
	/* What the heap held is back at once: the destroy is one request (the
	 * third program's own caches went back with it too). */
	ck_assert_uint_le(in_use(), held - heap_bytes);
	ck_assert_int_eq(heap_processes("kept"), -1);

	prog_go(&fourth);
	int st = prog_end(&fourth);
	ck_assert_msg(st == 0, "%s", fourth.buf);
	ck_assert_msg(strstr(fourth.buf, "heap malloc after destroy: ENOENT") != NULL, "%s",
		      fourth.buf);
	ck_assert_msg(strstr(fourth.buf, "overlaps: 0 damaged: 0") != NULL, "%s", fourth.buf);
	ck_assert_uint_le(e2e_wait_in_use_at_most(before), before);
	shma_disconnect();
	e2e_cleanup_daemon(&d);
}
END_TEST

/* ---- lifetimes ---- */

/* A heap of process lifetime goes when its creator is SIGKILLed, with every
 * block in it.  Planted bug: heaps_client_gone() not called when a client
 * is settled (the heap stays listed, its bytes in use). */
START_TEST(a_process_heap_goes_with_its_killed_creator)
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t before = in_use();
	struct prog p;
	prog_start(&p, &e2e, (const char *const[]){HEAPPROG_PATH, "create-hold", "mine", "c", NULL});
	ck_assert_msg(prog_until(&p, "ready"), "%s", p.buf);
	ck_assert_int_eq(heap_processes("mine"), 1);
	ck_assert_uint_gt(in_use(), before);
	kill(p.pid, SIGKILL);
	ck_assert_int_eq(prog_end(&p), 128 + SIGKILL);
	ck_assert_int_eq(wait_processes("mine", -1), -1);
	ck_assert_uint_le(e2e_wait_in_use_at_most(before), before);
	/* Gone, not hidden: the name is free again. */
	char out[OUT];
	ck_assert_msg(HEAPPROG(&e2e, out, "open", "mine") == 1 && strstr(out, "ENOENT"), "%s", out);
	ck_assert_msg(HEAPPROG(&e2e, out, "create", "mine", "p", "0") == 0, "%s", out);
}
END_TEST

/* A heap of last-user lifetime lives while one process has it open: its
 * creator dies (SIGKILL), a second process still has it; when that one
 * closes it, it is gone.  Planted bugs: a last-user heap destroyed with
 * its creator (as a process heap); one that outlives its last close. */
START_TEST(a_last_user_heap_lives_while_one_process_has_it_open)
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t before = in_use();
	struct prog a, b;
	prog_start(&a, &e2e, (const char *const[]){HEAPPROG_PATH, "create-hold", "shared", "l", NULL});
	ck_assert_msg(prog_until(&a, "ready"), "%s", a.buf);
	prog_start(&b, &e2e, (const char *const[]){HEAPPROG_PATH, "open-hold", "shared", "1", NULL});
	ck_assert_msg(prog_until(&b, "ready"), "%s", b.buf);
	ck_assert_int_eq(heap_processes("shared"), 2);
	kill(a.pid, SIGKILL);
	ck_assert_int_eq(prog_end(&a), 128 + SIGKILL);
	ck_assert_int_eq(wait_processes("shared", 1), 1);
	/* b closes it: the last user. */
	prog_go(&b);
	b.buf[0] = '\0', b.n = 0;
	ck_assert_msg(prog_until(&b, "ready"), "%s", b.buf);
	ck_assert_int_eq(heap_processes("shared"), -1);
	prog_go(&b);
	ck_assert_int_eq(prog_end(&b), 0);
	ck_assert_uint_le(e2e_wait_in_use_at_most(before), before);
}
END_TEST

/* The last user dying (not closing) ends it too. */
START_TEST(a_last_user_heap_goes_with_its_last_user_killed)
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	struct prog a;
	prog_start(&a, &e2e, (const char *const[]){HEAPPROG_PATH, "create-hold", "alone", "l", NULL});
	ck_assert_msg(prog_until(&a, "ready"), "%s", a.buf);
	ck_assert_int_eq(heap_processes("alone"), 1);
	kill(a.pid, SIGKILL);
	ck_assert_int_eq(prog_end(&a), 128 + SIGKILL);
	ck_assert_int_eq(wait_processes("alone", -1), -1);
}
END_TEST

/* ---- limits ---- */

/* max_bytes: blocks fit until the next would pass it, then ENOMEM; one
 * freed, exactly one fits again (small objects by their class's size,
 * large blocks by whole pages).  Planted bugs: max_bytes not checked on a
 * refill, or checked against the bytes asked for rather than the class's;
 * the thread cache's blocks counted so that fewer fit. */
START_TEST(max_bytes_gives_enomem_exactly_past_the_limit)
{
	char out[OUT];
	ck_assert_msg(HEAPPROG(&e2e, out, "limit", "small", "1048576", "1000") == 0, "%s", out);
	ck_assert_msg(strstr(out, "fit: 1024 of 1024 want 1024 errno: ENOMEM") != NULL, "%s", out);
	ck_assert_msg(HEAPPROG(&e2e, out, "limit", "big", "4194304", "300000") == 0, "%s", out);
	ck_assert_msg(HEAPPROG(&e2e, out, "limit", "odd", "100000", "48") == 0, "%s", out);
}
END_TEST

/* Names follow the roots' rules (EINVAL for the empty name, control bytes,
 * bad UTF-8, 256 bytes and more).  Planted bug: the daemon's rootname_check
 * skipped (a name with a newline made). */
START_TEST(names_follow_the_roots_rules)
{
	char out[OUT];
	ck_assert_msg(HEAPPROG(&e2e, out, "names") == 0, "%s", out);
	/* The daemon refuses them too, whatever the library sends. */
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	Shma__Request req;
	Shma__HeapCreate hc;
	shma__request__init(&req);
	shma__heap_create__init(&hc);
	hc.name = (char *)"bad\nname";
	req.body_case = SHMA__REQUEST__BODY_HEAP_CREATE;
	req.heap_create = &hc;
	Shma__Response *resp;
	conn_lock();
	int rc = conn_call(&req, &resp);
	if (resp != NULL)
		conn_done();
	conn_unlock();
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_int_eq(heap_processes("bad\nname"), -1);
}
END_TEST

/* Per-uid limits count heaps: with --uid-max-roots 3, three heaps, then
 * EAGAIN for a fourth and for a root; one destroyed, one more fits.
 * Planted bug: heaps not counted (the fourth is made). */
START_TEST(per_uid_limits_count_heaps)
{
	struct e2e_daemon d;
	char out[OUT];
	static const char *const limit[] = {"--uid-max-roots", "3", NULL};
	e2e_start_daemon(&d, limit);
	ck_assert_msg(HEAPPROG(&d, out, "create", "h1", "p", "0") == 0, "%s", out);
	ck_assert_msg(HEAPPROG(&d, out, "create", "h2", "p", "0") == 0, "%s", out);
	ck_assert_msg(HEAPPROG(&d, out, "create", "h3", "p", "0") == 0, "%s", out);
	ck_assert_int_eq(shma_connect(d.socket), 0);
	ck_assert_msg(HEAPPROG(&d, out, "create", "h4", "p", "0") == 1 && strstr(out, "EAGAIN"),
		      "%s", out);
	void *p = shma_malloc(64);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(shma_publish("a root", shma_ref(p)), -EAGAIN);
	ck_assert_msg(HEAPPROG(&d, out, "try", "h1") == 0 && strstr(out, "destroy: OK"), "%s", out);
	ck_assert_msg(HEAPPROG(&d, out, "create", "h4", "p", "0") == 0, "%s", out);
	shma_free(p);
	shma_disconnect();
	e2e_stop_daemon(&d);
}
END_TEST

/* A program that fills a heap to 12 MiB and destroys it, four times over,
 * under --client-max-memory 16M and --uid-max-large 4: the destroy gives
 * back, with the blocks, what they counted against the client (bytes, large
 * blocks).  Planted bug: the destroy freeing the blocks but not settling
 * the clients' charges (heaps_req.c: settle_charges()) -- the second round
 * gets ENOMEM (its 12 MiB still held), or EAGAIN (three large blocks still
 * counted on the uid). */
START_TEST(a_destroyed_heap_gives_back_what_it_counted_against_its_users)
{
	struct e2e_daemon d;
	static const char *const limits[] = {"--client-max-memory", "16M", "--uid-max-large",
					     "4", NULL};
	e2e_start_daemon(&d, limits);
	ck_assert_int_eq(shma_connect(d.socket), 0);
	for (int round = 0; round < 4; round++) {
		shma_heap_t *h;
		ck_assert_int_eq(shma_heap_create("filled", NULL, &h), 0);
		for (int i = 0; i < 3; i++)
			ck_assert_msg(shma_heap_malloc(h, (size_t)3 << 20) != NULL,
				      "round %d: large block %d: %s", round, i, strerror(errno));
		for (int i = 0; i < 3000; i++)
			ck_assert_msg(shma_heap_malloc(h, 1024) != NULL, "round %d: block %d: %s",
				      round, i, strerror(errno));
		ck_assert_int_eq(shma_heap_destroy(h), 0);
	}
	void *p = shma_malloc((size_t)12 << 20);
	ck_assert_msg(p != NULL, "a default block after the rounds: %s", strerror(errno));
	shma_free(p);
	shma_disconnect();
	e2e_stop_daemon(&d);
}
END_TEST

/* A uid that may not use the instance can neither create, open nor destroy
 * a heap: root not in --allow-uid (an observer: EACCES per request), and an
 * unlisted uid (EACCES at connect).  Planted bug: the heap requests let
 * through for observers (access_observer_may()). */
START_TEST(an_unlisted_uid_cannot_create_open_or_destroy)
{
	struct e2e_daemon d;
	char out[OUT];
	static const char *const only_nobody[] = {"--allow-uid", "65534", "--socket-mode", "0666",
						  NULL};
	e2e_start_daemon(&d, only_nobody);
	ck_assert_int_eq(chmod(d.dir, 0711), 0);
	ck_assert_msg(HEAPPROG(&d, out, "try", "x") == 0, "%s", out);
	ck_assert_msg(strstr(out, "create: EACCES") && strstr(out, "open: EACCES"), "%s", out);
	e2e_stop_daemon(&d);

	static const char *const only_root[] = {"--allow-uid", "0", "--socket-mode", "0666", NULL};
	e2e_start_daemon(&d, only_root);
	ck_assert_int_eq(chmod(d.dir, 0711), 0);
	ck_assert_msg(HEAPPROG(&d, out, "create", "rooted", "p", "0") == 0, "%s", out);
	struct user nobody = {"nobody", 65534, 65534};
	const char *argv[] = {HEAPPROG_PATH, "try", "rooted", NULL};
	char env[200];
	snprintf(env, sizeof env, "SHMALLOC_SOCKET=%s", d.socket);
	const char *const envv[] = {env, NULL};
	int st = geteuid() == 0 ? exec_capture(&nobody, EXEC_PRIMARY_ONLY, envv, argv, out, OUT)
				: CANNOT_SWITCH;
	if (st == CANNOT_SWITCH) {
		e2e_stop_daemon(&d);
		TEST_SKIP("this process may not change its uid (not root?)");
		return;
	}
	ck_assert_msg(st == 0 && strstr(out, "create: EACCES") && strstr(out, "open: EACCES") &&
			      strstr(out, "destroy: ENOENT"),
		      "%s", out);
	/* Still there: nobody destroyed it. */
	ck_assert_int_eq(shma_connect(d.socket), 0);
	ck_assert_int_eq(wait_processes("rooted", 0), 0);
	shma_disconnect();
	e2e_stop_daemon(&d);
}
END_TEST

/* A block freed by a thread that has its heap open goes back to that heap:
 * into this thread's cache of it (the next shma_heap_malloc of the class
 * hands it out again), never to the default heap's cache nor to another
 * heap's, for heaps of neighbouring handles and registry slots and for
 * several classes.  Planted bug: heap_free_fast() (heapfast.h) pushing on
 * the cache of handle 0 without the owner word's test (B's block comes out
 * of A). */
START_TEST(a_heap_block_freed_goes_back_to_its_heap)
{
	struct e2e_daemon d;
	e2e_start_daemon(&d, NULL);
	ck_assert_int_eq(shma_connect(d.socket), 0);
	shma_heap_t *a, *b;
	ck_assert_int_eq(shma_heap_create("back.a", NULL, &a), 0);
	ck_assert_int_eq(shma_heap_create("back.b", NULL, &b), 0);
	ck_assert_uint_ne(shma_heap_id(a), shma_heap_id(b));
	static const size_t sizes[] = {16, 64, 100, 1000, 4000};
	for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t n = sizes[i];
		for (int round = 0; round < 3; round++) {
			void *pa = shma_heap_malloc(a, n), *pb = shma_heap_malloc(b, n);
			void *pd = shma_malloc(n);
			ck_assert(pa != NULL && pb != NULL && pd != NULL);
			ck_assert_ptr_eq(shma_heap_of(pa), a);
			ck_assert_ptr_eq(shma_heap_of(pb), b);
			ck_assert_ptr_null(shma_heap_of(pd));
			/* Freed in an order that a cache by "last used" would mix. */
			shma_free(pb);
			shma_free(pa);
			shma_free(pd);
			void *qd = shma_malloc(n), *qb = shma_heap_malloc(b, n);
			void *qa = shma_heap_malloc(a, n);
			ck_assert_msg(qa == pa && qb == pb && qd == pd,
				      "size %zu: a %p->%p b %p->%p default %p->%p", n, pa, qa, pb, qb,
				      pd, qd);
			shma_free(qa);
			shma_free(qb);
			shma_free(qd);
		}
	}
	ck_assert_int_eq(shma_heap_destroy(a), 0);
	ck_assert_int_eq(shma_heap_destroy(b), 0);
	shma_disconnect();
	e2e_stop_daemon(&d);
}
END_TEST

Suite *make_heaps_suite(void);
Suite *make_heaps_suite(void)
{
	Suite *s = suite_create("heaps");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, a_persistent_heap_survives_its_creator_and_a_daemon_kill);
	tcase_add_test(tc, a_process_heap_goes_with_its_killed_creator);
	tcase_add_test(tc, a_last_user_heap_lives_while_one_process_has_it_open);
	tcase_add_test(tc, a_last_user_heap_goes_with_its_last_user_killed);
	tcase_add_test(tc, max_bytes_gives_enomem_exactly_past_the_limit);
	tcase_add_test(tc, names_follow_the_roots_rules);
	tcase_add_test(tc, per_uid_limits_count_heaps);
	tcase_add_test(tc, a_destroyed_heap_gives_back_what_it_counted_against_its_users);
	tcase_add_test(tc, an_unlisted_uid_cannot_create_open_or_destroy);
	tcase_add_test(tc, a_heap_block_freed_goes_back_to_its_heap);
	suite_add_tcase(s, tc);
	return s;
}
