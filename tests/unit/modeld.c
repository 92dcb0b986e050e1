/* SPDX-License-Identifier: MIT */
/*
 * The model daemon of modeld.h.
 */
#include "modeld.h"

#include "frame.h"
#include "shmalloc.h"
#include "shmalloc.pb-c.h"
#include "sizeclass.h"
#include "wire.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define HEAP_BASE 0x330000000000ull
#define LARGE_PREMADE ((uint64_t)2 << 20)

/* The model's process: its heap and where the next span and large block go. */
struct model {
	struct modeld *m;
	char *meta;
	uint64_t meta_size;
	struct page_entry *pm0; /* arena 0's page map */
	uint32_t next_page;     /* spans grow up from the metadata */
	uint32_t large_top;     /* large blocks grow down from the arena's end */
	uint64_t span_first[SIZECLASS_COUNT];
	uint32_t span_used[SIZECLASS_COUNT]; /* objects of it handed out */
	int has_span[SIZECLASS_COUNT];
};

static void segment_name(char *name, size_t n, const char *instance, char kind)
{
	snprintf(name, n, "/shmalloc.%s.%c%s", instance, kind, kind == 'c' ? "1" : "");
}

static int make_segment(const char *instance, char kind, uint64_t size)
{
	char name[96];
	segment_name(name, sizeof name, instance, kind);
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	return fd;
}

void modeld_unlink_segments(const char *instance)
{
	char name[96];
	const char kinds[] = {'M', 'p', 'c'};
	for (unsigned i = 0; i < 3; i++) {
		segment_name(name, sizeof name, instance, kinds[i]);
		shm_unlink(name);
	}
}

char *modeld_map_meta(const char *instance, const struct arena_geometry *g, uint32_t arenas,
		      uint64_t *size)
{
	char name[96];
	segment_name(name, sizeof name, instance, 'M');
	*size = layout_meta_size(g->meta_bytes, arenas);
	int fd = shm_open(name, O_RDWR, 0);
	ck_assert_int_ge(fd, 0);
	char *p = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	close(fd);
	return p;
}

struct page_entry *modeld_page_map(char *meta, const struct arena_geometry *g, uint32_t arena)
{
	return layout_page_map(meta + layout_meta_offset(g->meta_bytes, arena), g);
}

int modeld_make_segments(const char *instance, uint64_t arena_size, uint32_t arenas,
			 uint64_t base, struct arena_geometry *g)
{
	ck_assert_int_eq(layout_geometry(arena_size, g), 0);
	uint64_t msize = layout_meta_size(g->meta_bytes, arenas);
	close(make_segment(instance, 'M', msize));
	char *meta = modeld_map_meta(instance, g, arenas, &msize);
	struct heap_header *hh = (struct heap_header *)meta;
	hh->layout_version = SHMA_LAYOUT_VERSION;
	hh->page_shift = SHMA_PAGE_SHIFT;
	strcpy(hh->instance, instance);
	hh->base = base;
	hh->range = arena_size * arenas;
	hh->arena_size = arena_size;
	hh->meta_bytes = g->meta_bytes;
	hh->max_arenas = arenas;
	hh->narenas = 1;
	hh->magic = SHMA_HEAP_MAGIC;
	struct page_entry *pm = modeld_page_map(meta, g, 0);
	for (uint32_t p = 0; p < g->meta_pages; p++)
		pm[p].kind = PAGE_META;
	munmap(meta, msize);
	close(make_segment(instance, 'p', arena_size * arenas));
	int ctl_fd = make_segment(instance, 'c', sizeof(struct control_block));
	struct control_header ch = {.magic = SHMA_CONTROL_MAGIC, .layout_version = SHMA_LAYOUT_VERSION,
				    .nslots = SHMA_CONTROL_SLOTS, .client_id = 1,
				    .nclasses = SIZECLASS_COUNT};
	ck_assert_int_eq(pwrite(ctl_fd, &ch, sizeof ch, 0), (ssize_t)sizeof ch);
	return ctl_fd;
}

/* A large block of npages pages at the top of arena 0: its ref. */
static uint64_t make_large(struct model *d, uint32_t npages)
{
	if (npages == 0 || d->large_top < d->next_page + npages)
		return 0;
	d->large_top -= npages;
	uint32_t head = d->large_top;
	for (uint32_t p = head + 1; p < head + npages; p++)
		d->pm0[p] = (struct page_entry){.kind = PAGE_LARGE_CONT, .span_start = head};
	__atomic_store_n(&d->pm0[head].span_start, npages, __ATOMIC_RELAXED);
	__atomic_store_n(&d->pm0[head].kind, PAGE_LARGE, __ATOMIC_RELEASE);
	return (uint64_t)head << SHMA_PAGE_SHIFT;
}

/* ---- the wire, the model's side ---- */

static int read_full(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* One request, or NULL when the library hung up. */
static Shma__Request *read_request(int fd)
{
	static uint8_t buf[1 << 20];
	uint8_t hdr[FRAME_HEADER];
	if (read_full(fd, hdr, sizeof hdr) != 0)
		return NULL;
	uint32_t n = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
		     (uint32_t)hdr[3] << 24;
	if (n > sizeof buf || read_full(fd, buf, n) != 0)
		return NULL;
	return shma__request__unpack(NULL, n, buf);
}

static void send_response(int fd, const Shma__Response *resp, int pass_fd)
{
	static uint8_t buf[1 << 20];
	size_t n = shma__response__get_packed_size(resp);
	if (n + FRAME_HEADER > sizeof buf)
		_exit(4);
	frame_put_header(buf, (uint32_t)n);
	shma__response__pack(resp, buf + FRAME_HEADER);
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct iovec iov = {buf, n + FRAME_HEADER};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (pass_fd >= 0) {
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof ctl.buf;
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pass_fd, sizeof pass_fd);
	}
	if (sendmsg(fd, &msg, MSG_NOSIGNAL) != (ssize_t)(n + FRAME_HEADER))
		_exit(5);
}

static void answer_hello(struct model *d, int fd, uint64_t id, uint64_t decay_ms)
{
	Shma__Response resp = SHMA__RESPONSE__INIT;
	Shma__HelloReply h = SHMA__HELLO_REPLY__INIT;
	resp.id = id;
	resp.body_case = SHMA__RESPONSE__BODY_HELLO;
	resp.hello = &h;
	h.version = SHMA_PROTOCOL_VERSION;
	h.instance = d->m->instance;
	h.arena_size = MODELD_ARENA;
	h.max_arenas = MODELD_ARENAS;
	h.meta_bytes = (uint32_t)d->m->g.meta_bytes;
	h.heap_range = MODELD_ARENA * MODELD_ARENAS;
	h.large_threshold = MODELD_LARGE_THRESHOLD;
	h.nclasses = SIZECLASS_COUNT;
	h.client_id = 1;
	h.control_slots = SHMA_CONTROL_SLOTS;
	h.max_frame = 1u << 20;
	h.heap_base = HEAP_BASE;
	h.decay_ms = decay_ms;
	h.daemon_life = 42;
	send_response(fd, &resp, d->m->ctl_fd);
}

/* A new span of class cls at the next pages of arena 0. */
static int new_span(struct model *d, unsigned cls)
{
	uint32_t n = sizeclass_table[cls].span_pages, first = d->next_page;
	if (first + n > d->large_top)
		return -1;
	for (uint32_t p = first; p < first + n; p++)
		d->pm0[p] = (struct page_entry){.kind = PAGE_SPAN, .cls = (uint8_t)cls,
						.span_start = first};
	d->next_page += n;
	d->span_first[cls] = (uint64_t)first << SHMA_PAGE_SHIFT;
	d->span_used[cls] = 0;
	d->has_span[cls] = 1;
	return 0;
}

/* Objects [from, from + n) of the span of class cls at page first are out:
 * their bits set in arena 0's bitmaps, as the daemon's heap sets them (the
 * library's bad-free check reads them: a free of an object whose bit is
 * clear is a double free). */
static void mark_out(struct model *d, uint32_t first, uint32_t from, uint32_t n)
{
	uint64_t *bm = (uint64_t *)(d->meta + layout_meta_offset(d->m->g.meta_bytes, 0) +
				    d->m->g.bitmap_off + (uint64_t)first * SHMA_BITMAP_BYTES_PER_PAGE);
	for (uint32_t i = from; i < from + n; i++)
		__atomic_fetch_or(&bm[i / 64], (uint64_t)1 << (i % 64), __ATOMIC_RELEASE);
}

/* count fresh objects of class cls, as runs (one per span they come from). */
static void answer_refill(struct model *d, int fd, uint64_t id, unsigned cls, uint32_t count)
{
	Shma__Response resp = SHMA__RESPONSE__INIT;
	Shma__RefillReply r = SHMA__REFILL_REPLY__INIT;
	Shma__Run run[WIRE_RUNS_MAX], *runs[WIRE_RUNS_MAX];
	uint64_t size = sizeclass_table[cls].size;
	uint32_t given = 0;
	r.size_class = cls;
	r.runs = runs;
	while (given < count && r.n_runs < WIRE_RUNS_MAX) {
		if ((!d->has_span[cls] || d->span_used[cls] == sizeclass_table[cls].objects) &&
		    new_span(d, cls) != 0)
			break;
		uint32_t k = sizeclass_table[cls].objects - d->span_used[cls];
		if (k > count - given)
			k = count - given;
		shma__run__init(&run[r.n_runs]);
		run[r.n_runs].first = d->span_first[cls] + d->span_used[cls] * size;
		run[r.n_runs].count = k;
		runs[r.n_runs] = &run[r.n_runs];
		mark_out(d, (uint32_t)(d->span_first[cls] >> SHMA_PAGE_SHIFT), d->span_used[cls], k);
		r.n_runs++;
		d->span_used[cls] += k;
		given += k;
	}
	resp.id = id;
	resp.body_case = SHMA__RESPONSE__BODY_REFILL;
	resp.refill = &r;
	struct modeld_log *log = d->m->log;
	if (log->refills == 0)
		log->first_refill_id = id;
	log->refills++;
	log->refill_objects += given;
	send_response(fd, &resp, -1);
}

static void answer_alloc_large(struct model *d, int fd, uint64_t id, uint64_t size)
{
	Shma__Response resp = SHMA__RESPONSE__INIT;
	Shma__AllocLargeReply a = SHMA__ALLOC_LARGE_REPLY__INIT;
	uint32_t npages = (uint32_t)((size + SHMA_PAGE_SIZE - 1) >> SHMA_PAGE_SHIFT);
	a.ref = make_large(d, npages);
	a.size = (uint64_t)npages << SHMA_PAGE_SHIFT;
	resp.id = id;
	resp.body_case = SHMA__RESPONSE__BODY_ALLOC_LARGE;
	resp.alloc_large = &a;
	d->m->log->alloc_large++;
	d->m->log->last_large_id = id;
	send_response(fd, &resp, -1);
}

static void answer_kind(int fd, uint64_t id, Shma__Response__BodyCase kind)
{
	Shma__Response resp = SHMA__RESPONSE__INIT;
	Shma__Ok ok = SHMA__OK__INIT;
	Shma__LookupReply l = SHMA__LOOKUP_REPLY__INIT;
	Shma__FlushReply f = SHMA__FLUSH_REPLY__INIT;
	resp.id = id;
	resp.body_case = kind;
	if (kind == SHMA__RESPONSE__BODY_OK)
		resp.ok = &ok;
	else if (kind == SHMA__RESPONSE__BODY_LOOKUP)
		resp.lookup = &l;
	else
		resp.flush = &f;
	send_response(fd, &resp, -1);
}

/* One request answered; 0 when the connection ends with it. */
static int serve_one(struct model *d, int fd, const Shma__Request *q, uint64_t decay_ms)
{
	struct modeld_log *log = d->m->log;
	log->requests++;
	switch (q->body_case) {
	case SHMA__REQUEST__BODY_HELLO:
		answer_hello(d, fd, q->id, decay_ms);
		break;
	case SHMA__REQUEST__BODY_REFILL:
		answer_refill(d, fd, q->id, q->refill->size_class, q->refill->count);
		break;
	case SHMA__REQUEST__BODY_FLUSH:
		log->flushes++;
		log->flushed_refs += q->flush->n_refs;
		if (q->flush->want_reply)
			answer_kind(fd, q->id, SHMA__RESPONSE__BODY_FLUSH);
		break;
	case SHMA__REQUEST__BODY_ALLOC_LARGE:
		answer_alloc_large(d, fd, q->id, q->alloc_large->size);
		break;
	case SHMA__REQUEST__BODY_FREE_LARGE: {
		uint64_t page = q->free_large->ref >> SHMA_PAGE_SHIFT;
		log->free_large++;
		if (page < MODELD_ARENA >> SHMA_PAGE_SHIFT && d->pm0[page].kind == PAGE_LARGE)
			log->free_large_bytes += (uint64_t)d->pm0[page].span_start << SHMA_PAGE_SHIFT;
		answer_kind(fd, q->id, SHMA__RESPONSE__BODY_OK);
		break;
	}
	case SHMA__REQUEST__BODY_LOOKUP:
		answer_kind(fd, q->id, SHMA__RESPONSE__BODY_LOOKUP);
		break;
	case SHMA__REQUEST__BODY_GOODBYE:
		log->goodbyes++;
		answer_kind(fd, q->id, SHMA__RESPONSE__BODY_OK);
		return 0;
	default:
		answer_kind(fd, q->id, SHMA__RESPONSE__BODY_OK);
		break;
	}
	return 1;
}

/* Connections one after the other, until killed. */
static void serve(struct model *d, int lfd, uint64_t decay_ms)
{
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			_exit(1);
		Shma__Request *q;
		while ((q = read_request(fd)) != NULL) {
			int more = serve_one(d, fd, q, decay_ms);
			shma__request__free_unpacked(q, NULL);
			if (!more)
				break;
		}
		close(fd);
	}
}

void modeld_start(struct modeld *m, uint64_t decay_ms)
{
	memset(m, 0, sizeof *m);
	strcpy(m->dir, "/tmp/shma-model-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(m->dir));
	snprintf(m->socket, sizeof m->socket, "%s/sock", m->dir);
	snprintf(m->instance, sizeof m->instance, "model%ld", (long)getpid());
	modeld_unlink_segments(m->instance);
	m->ctl_fd = modeld_make_segments(m->instance, MODELD_ARENA, MODELD_ARENAS, HEAP_BASE, &m->g);
	m->log = mmap(NULL, sizeof *m->log, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		      -1, 0);
	ck_assert_ptr_ne(m->log, MAP_FAILED);
	struct model d = {.m = m};
	d.meta = modeld_map_meta(m->instance, &m->g, MODELD_ARENAS, &d.meta_size);
	d.pm0 = modeld_page_map(d.meta, &m->g, 0);
	d.next_page = m->g.meta_pages;
	d.large_top = (uint32_t)(MODELD_ARENA >> SHMA_PAGE_SHIFT);
	m->premade_size = LARGE_PREMADE;
	m->premade_large = make_large(&d, (uint32_t)(LARGE_PREMADE >> SHMA_PAGE_SHIFT));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, m->socket);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	m->pid = fork();
	ck_assert_int_ge(m->pid, 0);
	if (m->pid == 0)
		serve(&d, lfd, decay_ms);
	close(lfd);
	munmap(d.meta, d.meta_size);
	ck_assert_int_eq(shma_connect(m->socket), 0);
}

void modeld_stop(struct modeld *m)
{
	kill(m->pid, SIGKILL);
	waitpid(m->pid, NULL, 0);
	unlink(m->socket);
	rmdir(m->dir);
	close(m->ctl_fd);
	modeld_unlink_segments(m->instance);
	munmap(m->log, sizeof *m->log);
}

void modeld_sync(struct modeld *m)
{
	(void)m;
	shma_ref_t ref;
	ck_assert_int_eq(shma_lookup("modeld.sync", &ref), 0);
}

uint64_t modeld_make_arena1(struct modeld *m, unsigned cls)
{
	uint64_t size;
	char *meta = modeld_map_meta(m->instance, &m->g, MODELD_ARENAS, &size);
	struct page_entry *pm = modeld_page_map(meta, &m->g, 1);
	for (uint32_t p = 0; p < m->g.meta_pages; p++)
		pm[p].kind = PAGE_META;
	uint32_t first = m->g.meta_pages;
	for (uint32_t p = first; p < first + sizeclass_table[cls].span_pages; p++)
		pm[p] = (struct page_entry){.kind = PAGE_SPAN, .cls = (uint8_t)cls,
					    .span_start = first};
	/* Its first object is out (someone allocated it): its bitmap bit. */
	uint64_t *bm = (uint64_t *)(meta + layout_meta_offset(m->g.meta_bytes, 1) + m->g.bitmap_off +
				    (uint64_t)first * SHMA_BITMAP_BYTES_PER_PAGE);
	__atomic_fetch_or(&bm[0], 1, __ATOMIC_RELEASE);
	struct heap_header *hh = (struct heap_header *)meta;
	__atomic_store_n(&hh->narenas, 2, __ATOMIC_RELEASE);
	munmap(meta, size);
	return MODELD_ARENA + ((uint64_t)first << SHMA_PAGE_SHIFT);
}
