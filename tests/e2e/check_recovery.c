/*
 * Nothing lost: clients killed at random instants of a churn loop, and the
 * daemon killed under its clients and restarted on the same socket.  The
 * checks are on the daemon's own accounting (in_use_bytes, rejected frees)
 * against what the surviving processes provably hold, and on the contents
 * of every block that must have survived.
 */
#include "e2e.h"
#include "instance.h"
#include "layout.h"
#include "shmalloc.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>


/* The daemon's count of rejected requests and refs (the totals', printed
 * just before "roots"). */
static uint64_t stat_rejected(void)
{
	char *json;
	ck_assert_int_eq(shma_stats_json(&json), 0);
	char *at = strstr(json, ",\"roots\":");
	ck_assert_ptr_nonnull(at);
	while (at > json && at[-1] != ':')
		at--;
	uint64_t v = strtoull(at, NULL, 10);
	free(json);
	return v;
}

/* ---- (a) clients killed in a churn loop ---- */

#define WINDOW 128
#define THREADS 2

/* What one churning thread holds, in memory its parent sees after the kill.
 * pending is the size of the one malloc or free under way, whose block may
 * or may not be the application's at the instant of the kill. */
struct churn {
	volatile uint64_t refs[WINDOW];
	volatile uint32_t sizes[WINDOW];
	volatile uint64_t pending;
	uint64_t seed;
};

static size_t churn_size(uint64_t r)
{
	if (r % 97 == 0)
		return 150000 + r % 50000; /* now and then a large block */
	return 1 + r % 2000;
}

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *churn_thread(void *arg)
{
	struct churn *t = arg;
	for (;;) {
		uint64_t r = next_rand(&t->seed);
		unsigned i = (unsigned)(r % WINDOW);
		if (t->refs[i] != 0) {
			uint64_t ref = t->refs[i];
			void *p = shma_ptr(ref);
			if (p == NULL || !e2e_check_fill(p, t->sizes[i], ref))
				_exit(3);
			t->pending = t->sizes[i];
			t->refs[i] = 0;
			shma_free(p);
			t->pending = 0;
			continue;
		}
		size_t n = churn_size(r >> 8);
		t->sizes[i] = (uint32_t)n;
		t->pending = n;
		void *p = shma_malloc(n);
		if (p == NULL) {
			fprintf(stderr, "churn: malloc(%zu): %s\n", n, strerror(errno));
			_exit(4); /* only a kill may end us: say why we stopped */
		}
		uint64_t ref = shma_ref(p);
		e2e_fill(p, n, ref);
		t->refs[i] = ref;
		t->pending = 0;
	}
	return NULL;
}

static int churn_child(void *arg)
{
	struct churn *t = arg;
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, churn_thread, &t[i]);
	pthread_join(th[0], NULL); /* never: the parent kills us */
	return 5;
}

/* The bytes a pending operation may have left out: its block rounded up to
 * its class (12.5% and 16 B) or to pages. */
static uint64_t slack_of(uint64_t pending)
{
	return pending ? pending + pending / 8 + 8192 : 0;
}

/* Checks and frees every block the dead children's applications held;
 * returns the slack their pending operations allow. */
static uint64_t free_what_they_held(struct churn *t, unsigned n)
{
	uint64_t slack = 0;
	for (unsigned k = 0; k < n; k++) {
		for (unsigned i = 0; i < WINDOW; i++) {
			uint64_t ref = t[k].refs[i];
			if (ref == 0)
				continue;
			void *p = shma_ptr(ref);
			ck_assert_ptr_nonnull(p);
			ck_assert_msg(e2e_check_fill(p, t[k].sizes[i], ref),
				      "block %#llx of a killed client was overwritten",
				      (unsigned long long)ref);
			shma_free(p);
		}
		slack += slack_of(t[k].pending);
	}
	return slack;
}

START_TEST(clients_killed_at_random_leave_exact_accounting)
{
	enum { ROUNDS = 10, CHILDREN = 4 };
	size_t bytes = sizeof(struct churn) * THREADS * CHILDREN * ROUNDS;
	struct churn *all = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(all, MAP_FAILED);
	srand((unsigned)getpid());
	for (unsigned r = 0; r < ROUNDS; r++) {
		pid_t pid[CHILDREN];
		for (unsigned c = 0; c < CHILDREN; c++) {
			struct churn *t = &all[(r * CHILDREN + c) * THREADS];
			for (unsigned k = 0; k < THREADS; k++)
				t[k].seed = (uint64_t)rand() << 20 | (r * 16 + c * 2 + k + 1);
			pid[c] = e2e_fork(churn_child, t);
		}
		for (unsigned c = 0; c < CHILDREN; c++) {
			usleep(2000 + (useconds_t)(rand() % 40000));
			kill(pid[c], SIGKILL);
		}
		for (unsigned c = 0; c < CHILDREN; c++)
			ck_assert_int_eq(e2e_wait(pid[c]), 128 + SIGKILL);
	}
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t slack = free_what_they_held(all, THREADS * CHILDREN * ROUNDS);
	/* Our own cache goes back with the goodbye; then ask again. */
	shma_disconnect();
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t in_use = e2e_wait_in_use_at_most(0);
	ck_assert_msg(in_use <= slack, "in_use_bytes %llu after every block was freed "
		      "(pending operations at the kills allow %llu)",
		      (unsigned long long)in_use, (unsigned long long)slack);
	if (slack == 0)
		ck_assert_uint_eq(in_use, 0);
	ck_assert_uint_gt(e2e_stat("\"reclaimed_objects\":"), 0);
	ck_assert_uint_eq(stat_rejected(), 0);
	munmap(all, bytes);
}
END_TEST

/* The control block the daemon made for this process: the one of e2e's
 * instance whose header names our pid. */
static struct control_block *my_control_block(void)
{
	char prefix[96], name[400];
	snprintf(prefix, sizeof prefix, "shmalloc.%s.c", e2e.instance);
	DIR *dir = opendir("/dev/shm");
	struct control_block *found = NULL;
	for (struct dirent *e; dir && found == NULL && (e = readdir(dir)) != NULL;) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(name, sizeof name, "/%s", e->d_name);
		int fd = shm_open(name, O_RDWR, 0);
		if (fd < 0)
			continue;
		struct control_block *cb = mmap(NULL, sizeof *cb, PROT_READ | PROT_WRITE,
						MAP_SHARED, fd, 0);
		close(fd);
		if (cb != MAP_FAILED && cb->hdr.pid == (uint32_t)getpid())
			found = cb;
		else if (cb != MAP_FAILED)
			munmap(cb, sizeof *cb);
	}
	if (dir)
		closedir(dir);
	return found;
}

/* Warms its caches, then scribbles on its control block -- counts past the
 * end of a bin, refs that name nothing, a ref twice, a slot of noise -- and
 * dies. */
static int scribble_and_die(void *arg)
{
	(void)arg;
	static void *p[3000];
	for (unsigned i = 0; i < 3000; i++)
		if ((p[i] = shma_malloc(16 + (i % 12) * 16)) == NULL)
			return 40;
	for (unsigned i = 0; i < 3000; i++)
		shma_free(p[i]);
	struct control_block *cb = my_control_block();
	if (cb == NULL)
		return 41;
	struct control_slot *s = &cb->slots[0];
	for (unsigned i = 0; i < SHMA_CONTROL_SLOTS && !s->in_use; i++)
		s = &cb->slots[i];
	unsigned k = 0, slot = (unsigned)(s - cb->slots);
	uint32_t first[SIZECLASS_COUNT];
	layout_bin_firsts(first);
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		struct tcache_bin *b = &s->bins[cls];
		uint64_t *refs = &cb->refs[slot][first[cls]];
		if (b->count == 0)
			continue;
		switch (k++ % 3) {
		case 0: b->count = UINT32_MAX; break;
		case 1: refs[0] ^= 0x5a5a5a; break;
		default:
			refs[b->count - 1] = refs[0]; /* the first ref twice */
			b->count = UINT32_MAX;
		}
	}
	struct control_slot *noise = &cb->slots[SHMA_CONTROL_SLOTS - 1];
	noise->in_use = 1;
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		noise->bins[cls].count = (uint32_t)random();
		for (unsigned i = 0; i < 4; i++)
			cb->refs[SHMA_CONTROL_SLOTS - 1][first[cls] + i] =
				(uint64_t)random() << 33 ^ (uint64_t)random();
	}
	kill(getpid(), SIGKILL);
	return 42;
}

static int churn_a_little(void *arg)
{
	(void)arg;
	static void *p[5000];
	for (int r = 0; r < 3; r++) {
		for (unsigned i = 0; i < 5000; i++) {
			if ((p[i] = shma_malloc(16 + (i % 12) * 16)) == NULL)
				return 50;
			e2e_fill(p[i], 16, i);
		}
		for (unsigned i = 0; i < 5000; i++)
			if (!e2e_check_fill(p[i], 16, i))
				return 51;
		for (unsigned i = 0; i < 5000; i++)
			shma_free(p[i]);
	}
	return 0;
}

START_TEST(a_scribbled_control_block_is_walked_safely)
{
	ck_assert_int_eq(e2e_wait(e2e_fork(scribble_and_die, NULL)), 128 + SIGKILL);
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	for (int i = 0; i < 100 && e2e_stat("\"reclaimed_objects\":") == 0; i++)
		usleep(50000);
	/* The good links were taken back, the bad ones ended their bin. */
	ck_assert_uint_gt(e2e_stat("\"reclaimed_objects\":"), 0);
	ck_assert_uint_le(e2e_stat("\"in_use_bytes\":"), 3000 * 208);
	ck_assert_int_eq(kill(e2e.pid, 0), 0);
	/* And the heap is whole: others allocate and free as before. */
	ck_assert_int_eq(e2e_wait(e2e_fork(churn_a_little, NULL)), 0);
	ck_assert_uint_eq(stat_rejected(), 0);
}
END_TEST

/* ---- (b), (d): the daemon killed and restarted ---- */

/* Runs fn(arg) in a child connected to socket; returns its pid. */
static pid_t fork_client(const char *socket, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int rc = shma_connect(socket);
		if (rc != 0) {
			fprintf(stderr, "child: connect: %s\n", shma_strerror(rc));
			_exit(100);
		}
		_exit(fn(arg));
	}
	return pid;
}

#define HELD 300
/* The batches in flight at the kill leak (a refill asked ahead of need and
 * not yet taken in, a flush not yet read): at most one refill per class the
 * holder used (a batch is at most 512 KiB) and one flush. */
#define IN_FLIGHT_MAX ((uint64_t)24 << 20)

/* What the first life's client left: the blocks it holds, and the exact
 * in_use_bytes of them alone. */
struct held {
	uint64_t refs[HELD];
	uint32_t sizes[HELD];
	uint64_t live_bytes;
	uint64_t leaked_bytes; /* in flight at the kill: counted, bounded */
	int go[2];    /* the parent tells the holder to die */
	int ready[2]; /* the holder tells the parent it holds */
};

static size_t held_size(unsigned i)
{
	static const size_t sizes[] = {8, 24, 100, 700, 1500, 5000, 30000, 200000, 1 << 20};
	return sizes[i % (sizeof sizes / sizeof sizes[0])];
}

static int hold_blocks(void *arg)
{
	struct held *h = arg;
	for (unsigned i = 0; i < HELD; i++) {
		void *p = shma_malloc(held_size(i));
		if (p == NULL)
			return 10;
		h->sizes[i] = (uint32_t)held_size(i);
		h->refs[i] = shma_ref(p);
		e2e_fill(p, h->sizes[i], h->refs[i]);
	}
	for (unsigned i = 0; i < HELD; i += 3) {
		shma_free(shma_ptr(h->refs[i]));
		h->refs[i] = 0;
	}
	if (shma_publish("recovery-first", h->refs[1]) != 0)
		return 11;
	/* Measured with our caches flushed: the live blocks alone. */
	shma_disconnect();
	h->live_bytes = e2e_stat("\"in_use_bytes\":");
	/* Warm caches again, then hold them across the kill. */
	void *tmp[500];
	for (unsigned i = 0; i < 500; i++)
		tmp[i] = shma_malloc(16 + i % 300);
	for (unsigned i = 0; i < 500; i++)
		shma_free(tmp[i]);
	char c = 1;
	if (write(h->ready[1], &c, 1) != 1 || read(h->go[0], &c, 1) != 1)
		return 12;
	_exit(0); /* no goodbye: the new daemon must reclaim our caches */
}

struct span_of {
	uintptr_t start, end;
};

/* After the restart: everything the holder left is there, and new blocks
 * never overlap it. */
static int verify_after_restart(void *arg)
{
	struct held *h = arg;
	shma_ref_t root;
	if (shma_lookup("recovery-first", &root) != 0 || root != h->refs[1])
		return 20;
	static struct span_of live[HELD];
	unsigned n = 0;
	for (unsigned i = 0; i < HELD; i++) {
		if (h->refs[i] == 0)
			continue;
		uint8_t *p = shma_ptr(h->refs[i]);
		if (p == NULL || !e2e_check_fill(p, h->sizes[i], h->refs[i]))
			return 21;
		live[n++] = (struct span_of){(uintptr_t)p, (uintptr_t)p + h->sizes[i]};
	}
	static void *fresh[2000];
	for (unsigned i = 0; i < 2000; i++) {
		size_t sz = held_size(i) > 100000 ? 64 : held_size(i);
		uint8_t *p = fresh[i] = shma_malloc(sz);
		if (p == NULL)
			return 22;
		for (unsigned k = 0; k < n; k++)
			if ((uintptr_t)p < live[k].end && live[k].start < (uintptr_t)p + sz)
				return 23;
		memset(p, 0xee, sz);
	}
	for (unsigned i = 0; i < HELD; i++)
		if (h->refs[i] != 0 && !e2e_check_fill(shma_ptr(h->refs[i]), h->sizes[i], h->refs[i]))
			return 24;
	for (unsigned i = 0; i < 2000; i++)
		shma_free(fresh[i]);
	shma_disconnect();
	/* Only the holder's live blocks are out: its caches were taken back. */
	uint64_t v = e2e_wait_in_use_at_most(h->live_bytes + IN_FLIGHT_MAX);
	if (v < h->live_bytes || v > h->live_bytes + IN_FLIGHT_MAX)
		return 25;
	h->leaked_bytes = v - h->live_bytes;
	for (unsigned i = 0; i < HELD; i++)
		if (h->refs[i] != 0)
			shma_free(shma_ptr(h->refs[i]));
	return shma_unpublish("recovery-first") == 0 ? 0 : 27;
}

START_TEST(daemon_killed_and_restarted_keeps_every_live_block)
{
	struct e2e_daemon d;
	e2e_start_daemon_kept(&d, NULL);
	struct held *h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_int_eq(pipe(h->go), 0);
	ck_assert_int_eq(pipe(h->ready), 0);
	pid_t holder = fork_client(d.socket, hold_blocks, h);
	char c;
	ck_assert_int_eq(read(h->ready[0], &c, 1), 1);
	ck_assert_uint_gt(h->live_bytes, 0);
	e2e_kill_daemon(&d);
	ck_assert_int_eq(e2e_restart_daemon(&d, NULL), 0);
	/* The holder is alive: its control block waits for it. */
	ck_assert_int_eq(write(h->go[1], &c, 1), 1);
	ck_assert_int_eq(e2e_wait(holder), 0);
	/* Its two control blocks (before and after its goodbye) are reclaimed
	 * once the daemon sees it gone. */
	char gone[64];
	snprintf(gone, sizeof gone, "(pid %ld) is gone", (long)holder);
	for (int i = 0; i < 100 && e2e_log_count(&d, gone) < 2; i++)
		usleep(50000);
	ck_assert_int_eq(e2e_log_count(&d, gone), 2);
	ck_assert_int_eq(e2e_wait(fork_client(d.socket, verify_after_restart, h)), 0);
	ck_assert(e2e_log_has(&d, "recovered instance"));
	/* Everything is free again once the verifier is gone (what its caches
	 * held is taken back then), but for what was in flight at the kill. */
	ck_assert_int_eq(shma_connect(d.socket), 0);
	ck_assert_uint_eq(e2e_wait_in_use_at_most(h->leaked_bytes), h->leaked_bytes);
	shma_disconnect();
	e2e_cleanup_daemon(&d);
	ck_assert_int_eq(test_segments_left(d.instance), 0);
	munmap(h, sizeof *h);
}
END_TEST

/* Writes len bytes at off of arena 0's metadata (in segment 'M', after the
 * heap header's page) of d's instance. */
static void scribble_arena(const struct e2e_daemon *d, off_t off, const void *bytes, size_t len)
{
	char path[128];
	snprintf(path, sizeof path, "/dev/shm/shmalloc.%s.M", d->instance);
	FILE *f = fopen(path, "r+");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseeko(f, (off_t)SHMA_PAGE_SIZE + off, SEEK_SET), 0);
	ck_assert_uint_eq(fwrite(bytes, 1, len, f), len);
	fclose(f);
}

static int keep_one_free_one(void *arg)
{
	shma_ref_t *live = arg;
	char *a = shma_malloc(1 << 20), *b = shma_malloc(2 << 20);
	if (a == NULL || b == NULL)
		return 1;
	memset(a, 0x5c, 1 << 20);
	*live = shma_ref(a);
	shma_free(b); /* kept by the daemon, still reserved, for reuse */
	return 0;
}

static int read_the_live_one(void *arg)
{
	const unsigned char *a = shma_ptr(*(shma_ref_t *)arg);
	if (a == NULL)
		return 1;
	for (size_t i = 0; i < (1 << 20); i += 4096)
		if (a[i] != 0x5c)
			return 2;
	return 0;
}

START_TEST(a_kept_large_block_is_not_taken_for_live_after_a_kill)
{
	struct e2e_daemon d;
	e2e_start_daemon_kept(&d, NULL);
	shma_ref_t *live = mmap(NULL, sizeof *live, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_int_eq(e2e_wait(fork_client(d.socket, keep_one_free_one, live)), 0);
	e2e_kill_daemon(&d);
	ck_assert_int_eq(e2e_restart_daemon(&d, NULL), 0);
	ck_assert_int_eq(shma_connect(d.socket), 0);
	/* One large block is live, 1 MiB; the freed 2 MiB one is gone. */
	ck_assert_uint_eq(e2e_stat("\"large_count\":"), 1);
	ck_assert_uint_eq(e2e_stat("\"large_bytes\":"), 1 << 20);
	ck_assert_int_eq(e2e_wait(fork_client(d.socket, read_the_live_one, live)), 0);
	shma_disconnect();
	e2e_cleanup_daemon(&d);
	munmap(live, sizeof *live);
}
END_TEST

struct handover {
	int ready[2], go[2];
};

static int allocate_across_the_handover(void *arg)
{
	struct handover *h = arg;
	char c = 'r';
	void *warm = shma_malloc(300000);
	if (warm == NULL || write(h->ready[1], &c, 1) != 1 || read(h->go[0], &c, 1) != 1)
		return 1;
	/* The daemon is gone now: this reconnects, first to a peer that resets
	 * the connection, then to the new daemon. */
	void *p = shma_malloc(300000);
	if (p == NULL) {
		fprintf(stderr, "child: malloc: %s\n", strerror(errno));
		return 2;
	}
	memset(p, 1, 300000);
	shma_free(p);
	shma_free(warm);
	return 0;
}

/* Listens on path, takes one connection and resets it (as a daemon dying
 * under SIGKILL does to a connection it accepted), then goes away. */
static void reset_one_connection(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, path);
	unlink(path);
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(l, 8), 0);
	int c = accept(l, NULL, NULL);
	ck_assert_int_ge(c, 0);
	struct linger lg = {1, 0}; /* close with a reset */
	setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(c);
	close(l);
	unlink(path);
}

START_TEST(a_reconnect_reset_by_a_dying_daemon_tries_again)
{
	struct e2e_daemon d;
	struct handover h;
	char c = 'g';
	e2e_start_daemon_kept(&d, NULL);
	ck_assert_int_eq(pipe(h.ready), 0);
	ck_assert_int_eq(pipe(h.go), 0);
	pid_t client = fork_client(d.socket, allocate_across_the_handover, &h);
	ck_assert_int_eq(read(h.ready[0], &c, 1), 1);
	e2e_kill_daemon(&d);
	ck_assert_int_eq(write(h.go[1], &c, 1), 1);
	reset_one_connection(d.socket);
	ck_assert_int_eq(e2e_restart_daemon(&d, NULL), 0);
	ck_assert_int_eq(e2e_wait(client), 0);
	e2e_cleanup_daemon(&d);
}
END_TEST

START_TEST(untrusted_segments_refuse_the_start_until_discarded)
{
	struct e2e_daemon d;
	e2e_start_daemon_kept(&d, NULL);
	e2e_kill_daemon(&d);
	/* Another layout version (offset 8: layout_version). */
	uint32_t version = 99;
	scribble_arena(&d, 8, &version, sizeof version);
	ck_assert_int_ne(e2e_restart_daemon(&d, NULL), 0);
	ck_assert(e2e_log_has(&d, "another layout version"));
	ck_assert(e2e_log_has(&d, "refusing to start"));
	/* A corrupt header (offset 0: the magic). */
	uint64_t junk = 0x0123456789abcdefu;
	scribble_arena(&d, 0, &junk, sizeof junk);
	ck_assert_int_ne(e2e_restart_daemon(&d, NULL), 0);
	ck_assert(e2e_log_has(&d, "bad magic"));
	/* --discard removes them and starts afresh. */
	static const char *const discard[] = {"--discard", NULL};
	ck_assert_int_eq(e2e_restart_daemon(&d, discard), 0);
	ck_assert(e2e_log_has(&d, "discarded"));
	e2e_cleanup_daemon(&d);
	ck_assert_int_eq(test_segments_left(d.instance), 0);
}
END_TEST

/* ---- (c) a client alive across the restart ---- */

#define KEEP 400

struct survivor {
	int go[2], ready[2];
};

/* Allocates n blocks, filled, into refs/sizes. */
static int allocate_filled(uint64_t *refs, uint32_t *sizes, unsigned n, unsigned salt)
{
	for (unsigned i = 0; i < n; i++) {
		size_t sz = held_size(i + salt) > 100000 && i % 5 ? 40 : held_size(i + salt);
		void *p = shma_malloc(sz);
		if (p == NULL)
			return -1;
		refs[i] = shma_ref(p);
		sizes[i] = (uint32_t)sz;
		e2e_fill(p, sz, refs[i]);
	}
	return 0;
}

static int all_intact(const uint64_t *refs, const uint32_t *sizes, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (refs[i] == 0)
			continue;
		void *p = shma_ptr(refs[i]);
		if (p == NULL || !e2e_check_fill(p, sizes[i], refs[i]))
			return 0;
	}
	return 1;
}

static void free_all(uint64_t *refs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (refs[i] != 0)
			shma_free(shma_ptr(refs[i]));
}

static pthread_barrier_t restarted;

/* A second thread with a warm cache of its own that sleeps through the
 * restart, then allocates again: its slot must still be its own. */
static void *second_thread(void *arg)
{
	static uint64_t refs[KEEP];
	static uint32_t sizes[KEEP];
	(void)arg;
	void *tmp[300];
	for (unsigned i = 0; i < 300; i++)
		tmp[i] = shma_malloc(48);
	for (unsigned i = 0; i < 300; i++)
		shma_free(tmp[i]);
	pthread_barrier_wait(&restarted); /* before the kill */
	pthread_barrier_wait(&restarted); /* after the restart */
	if (allocate_filled(refs, sizes, KEEP, 3) != 0 || !all_intact(refs, sizes, KEEP))
		return (void *)1;
	free_all(refs, KEEP);
	return NULL;
}

static int survive_restart(void *arg)
{
	struct survivor *sv = arg;
	static uint64_t old_refs[KEEP], new_refs[KEEP];
	static uint32_t old_sizes[KEEP], new_sizes[KEEP];
	pthread_t th;
	pthread_barrier_init(&restarted, NULL, 2);
	pthread_create(&th, NULL, second_thread, NULL);
	if (allocate_filled(old_refs, old_sizes, KEEP, 0) != 0)
		return 30;
	for (unsigned i = 0; i < KEEP; i += 4) { /* warm caches */
		shma_free(shma_ptr(old_refs[i]));
		old_refs[i] = 0;
	}
	pthread_barrier_wait(&restarted);
	char c = 1;
	if (write(sv->ready[1], &c, 1) != 1 || read(sv->go[0], &c, 1) != 1)
		return 31;
	/* The daemon was killed and restarted: carry on as if nothing happened. */
	pthread_barrier_wait(&restarted);
	if (!all_intact(old_refs, old_sizes, KEEP))
		return 32;
	for (int round = 0; round < 4; round++) {
		if (allocate_filled(new_refs, new_sizes, KEEP, (unsigned)round) != 0)
			return 33;
		if (!all_intact(old_refs, old_sizes, KEEP) || !all_intact(new_refs, new_sizes, KEEP))
			return 34;
		free_all(new_refs, KEEP);
	}
	void *rc;
	pthread_join(th, &rc);
	if (rc != NULL)
		return 35;
	if (!all_intact(old_refs, old_sizes, KEEP))
		return 36;
	free_all(old_refs, KEEP);
	shma_disconnect();
	return 0;
}

START_TEST(client_alive_across_a_restart_carries_on)
{
	struct e2e_daemon d;
	e2e_start_daemon_kept(&d, NULL);
	struct survivor *sv = mmap(NULL, sizeof *sv, PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_int_eq(pipe(sv->go), 0);
	ck_assert_int_eq(pipe(sv->ready), 0);
	pid_t pid = fork_client(d.socket, survive_restart, sv);
	char c;
	ck_assert_int_eq(read(sv->ready[0], &c, 1), 1);
	e2e_kill_daemon(&d);
	ck_assert_int_eq(e2e_restart_daemon(&d, NULL), 0);
	ck_assert_int_eq(write(sv->go[1], &c, 1), 1);
	ck_assert_int_eq(e2e_wait(pid), 0);
	ck_assert(e2e_log_has(&d, "re-adopted"));
	/* All it held went back; only batches in flight at the kill may leak. */
	ck_assert_int_eq(shma_connect(d.socket), 0);
	uint64_t left = e2e_wait_in_use_at_most(0);
	ck_assert_msg(left <= IN_FLIGHT_MAX, "in_use_bytes %llu", (unsigned long long)left);
	ck_assert_uint_eq(stat_rejected(), 0);
	shma_disconnect();
	e2e_cleanup_daemon(&d);
	ck_assert_int_eq(test_segments_left(d.instance), 0);
	munmap(sv, sizeof *sv);
}
END_TEST

/* ---- (e) a request whose answer the killed daemon never sent ---- */

static int alloc_large_across_the_kill(void *arg)
{
	int *pipes = arg; /* ready, then go */
	char c = 1;
	if (write(pipes[1], &c, 1) != 1 || read(pipes[2], &c, 1) != 1)
		return 60;
	/* The daemon is stopped: this waits, then loses its connection. */
	uint8_t *p = shma_malloc(300000);
	if (p == NULL) {
		fprintf(stderr, "alloc_large_across_the_kill: %s\n", strerror(errno));
		return 61;
	}
	e2e_fill(p, 300000, 7);
	int ok = e2e_check_fill(p, 300000, 7);
	shma_free(p);
	shma_disconnect();
	return ok ? 0 : 62;
}

START_TEST(a_large_allocation_asked_as_the_daemon_dies_is_asked_again)
{
	struct e2e_daemon d;
	e2e_start_daemon_kept(&d, NULL);
	int pipes[4];
	ck_assert_int_eq(pipe(pipes), 0);
	ck_assert_int_eq(pipe(pipes + 2), 0);
	pid_t pid = fork_client(d.socket, alloc_large_across_the_kill, pipes);
	char c;
	ck_assert_int_eq(read(pipes[0], &c, 1), 1);
	ck_assert_int_eq(kill(d.pid, SIGSTOP), 0);
	ck_assert_int_eq(write(pipes[3], &c, 1), 1);
	usleep(200000); /* the AllocLarge is in the daemon's socket, unread */
	e2e_kill_daemon(&d);
	ck_assert_int_eq(e2e_restart_daemon(&d, NULL), 0);
	ck_assert_int_eq(e2e_wait(pid), 0);
	e2e_cleanup_daemon(&d);
	ck_assert_int_eq(test_segments_left(d.instance), 0);
}
END_TEST

Suite *make_recovery_suite(void);
Suite *make_recovery_suite(void)
{
	Suite *s = suite_create("recovery");
	TCase *tc = tcase_create("client-crash");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, clients_killed_at_random_leave_exact_accounting);
	tcase_add_test(tc, a_scribbled_control_block_is_walked_safely);
	suite_add_tcase(s, tc);
	tc = tcase_create("daemon-restart");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, daemon_killed_and_restarted_keeps_every_live_block);
	tcase_add_test(tc, untrusted_segments_refuse_the_start_until_discarded);
	tcase_add_test(tc, a_kept_large_block_is_not_taken_for_live_after_a_kill);
	tcase_add_test(tc, a_reconnect_reset_by_a_dying_daemon_tries_again);
	tcase_add_test(tc, client_alive_across_a_restart_carries_on);
	tcase_add_test(tc, a_large_allocation_asked_as_the_daemon_dies_is_asked_again);
	suite_add_tcase(s, tc);
	return s;
}
