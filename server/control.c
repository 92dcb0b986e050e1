/* SPDX-License-Identifier: MIT */
/*
 * Control blocks: one shared segment per client that holds its thread
 * caches -- per slot and class, a bounded array of the refs of its free
 * blocks (shm/layout.h).  The daemon creates it at the
 * handshake, so that the daemon -- not the client -- knows where a client's
 * cached blocks are when the client dies.
 *
 * A control block outlives its connection while its process lives: a
 * connection can end while the process goes on (the daemon was restarted,
 * or a goodbye from one thread while others still hold caches), and the
 * process's threads keep popping from and pushing to their bins without a
 * word to the daemon.  Taking those blocks back then would hand them out
 * twice.  So a block whose connection ended becomes an orphan: when its
 * process is gone (checked at once, then on a timer) the daemon walks its
 * caches and takes the blocks back; until then the same process may re-adopt
 * it by saying its previous client id in Hello (same id, same block, caches
 * intact).  A restarted daemon finds the blocks its predecessor made and
 * treats each as an orphan.
 *
 * The walk covers the transfer cache too (the batches between the
 * process's threads, in the same block): a batch caught between a bin and
 * an entry is taken from whichever the entry's word and the bin's count
 * say holds it (shm/layout.h), once.
 *
 * The walk reads the control block only, never a block's memory, and
 * believes none of it: a bin is read for at most its class's capacity
 * whatever its count says, and every ref must name an object of the bin's
 * class that is out -- a ref seen twice is not out the second time, a ref of
 * a block another process holds is of no bin at all or was never this
 * client's to give (see below) -- or it is rejected and counted.  Blocks the
 * application held are in no bin and stay allocated.
 *
 * What a client cannot forge: the refs of blocks that are out but not its
 * own.  Those it could only name if they were in its bins, and a bin holds
 * what the daemon handed it or what it freed; a program that writes the ref
 * of a live block of another process into its own bin frees that block when
 * it dies, as it would by calling free() on it.  Nothing written into freed
 * blocks matters: the walk never reads them.
 *
 * Making a block costs the Hello a tenth of a millisecond (shm_open,
 * ftruncate, the reservation of its header and slots, mmap): so the daemon
 * keeps DAEMON_CONTROL_SPARES made ahead, off the Hello's path (the loop
 * makes one, daemon_control_spare_make(), 2 ms after a Hello took one), and
 * a Hello only writes the pid into one.  A spare is a block like any
 * other -- the daemon's, mode 0600, its header and first slot headers reserved, named by the client id it
 * will have (taken when it is made, so ids stay unique) -- whose header says
 * pid 0: a restarted daemon that finds one takes it for a dead client's, with
 * nothing cached, and removes it.  The spares go when no Hello came for a
 * tick of the decay timer, so an idle daemon holds none.
 *
 * Layer: session (no libuv).
 */
#include "clock.h"
#include "control.h"
#include "ctlcap.h"
#include "daemon.h"
#include "guard.h"
#include "heaps_req.h"
#include "log.h"
#include "seg.h"
#include "stats.h"
#include "uidarea.h"

#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Names taken (by an orphan of ours, or by a squatter in /dev/shm) are
 * skipped by a random jump of the ids (ctlcap.h), which nobody can squat
 * ahead of; past this many in one Hello, the Hello fails. */
#define CREATE_TRIES 16

struct orphan {
	struct orphan *next;
	uint64_t id;
	pid_t pid;
	uid_t uid;                /* of the connection that left it; -1: an earlier run's */
	int adoptable;            /* 0 after a goodbye: the process starts afresh */
	struct control_block *ctl;
	struct inflight_set *inflight; /* refills of the ended connection */
};

/* 1 if the task whose stat file is path is a zombie or dead; 0 if it runs
 * (or cannot be read: then it may). */
static int stat_dead(const char *path)
{
	char buf[512];
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return errno == ENOENT || errno == ESRCH;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *paren = strrchr(buf, ')');
	return paren != NULL && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

/* 1 if process pid is gone: no such process, or every one of its threads a
 * zombie (its memory is gone with the last).  0 while any thread may still
 * touch its caches -- a main thread that called pthread_exit() is a zombie
 * while its workers run on. */
static int pid_gone(pid_t pid)
{
	if (pid <= 0)
		return 1;
	if (kill(pid, 0) != 0 && errno == ESRCH)
		return 1;
	char path[96];
	snprintf(path, sizeof path, "/proc/%ld/task", (long)pid);
	DIR *dir = opendir(path);
	if (dir == NULL) {
		snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
		return stat_dead(path);
	}
	int gone = 1;
	struct dirent *e;
	while (gone && (e = readdir(dir)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%ld/task/%.20s/stat", (long)pid, e->d_name);
		gone = stat_dead(path);
	}
	closedir(dir);
	return gone;
}


/* A client is gone for good: its region (if it had one) ends, with every
 * block still in it -- after its caches went back, so those count as taken
 * back.  A region client's blocks die with it; a library client has none. */
static void end_region(struct daemon *d, uint64_t id)
{
	heaps_req_client_gone(d, id);
	uint64_t bytes = heap_region_end(d->heap, id);
	if (bytes != 0)
		log_msg(SLOG_DEBUG, "client %llu: its region ended, %llu bytes it still held freed",
			(unsigned long long)id, (unsigned long long)bytes);
}

static void unmap_and_unlink(struct daemon *d, uint64_t id, int fd, struct control_block *cb,
			     int unlink)
{
	char name[SEG_NAME_MAX];
	uidarea_leave(d, id, cb); /* its place in its uid's transfer area */
	if (cb != NULL) {
		guard_remove(cb);
		munmap(cb, sizeof *cb);
	}
	if (fd >= 0)
		close(fd);
	if (unlink && seg_name(name, sizeof name, d->opt.instance, SEG_CONTROL, id) == 0)
		seg_unlink(name);
}

/* Creates segment c<id>, reserved and mapped; -EEXIST if it exists (an
 * orphan's). */
static int create_segment(struct daemon *d, uint64_t id, int *fdp, struct control_block **ctl)
{
	char name[SEG_NAME_MAX];
	int rc = seg_name(name, sizeof name, d->opt.instance, SEG_CONTROL, id);
	if (rc != 0)
		return rc;
	/* The daemon's alone: its client gets the descriptor with the Hello
	 * reply (server.c), no other uid can open it. */
	int fd = seg_create(name, sizeof(struct control_block), 0600);
	if (fd < 0)
		return fd;
	/* The header and the first slots' headers; later slots' headers and
	 * every bin's refs are the client's to reserve as its threads need
	 * them (shm/layout.h). */
	rc = seg_reserve(fd, 0, layout_slot_headers_end(SHMA_CONTROL_SLOTS_RESERVED));
	for (unsigned cls = 0; cls < SIZECLASS_COUNT && rc == 0; cls++)
		if (layout_prefilled(cls))
			rc = seg_reserve(fd, offsetof(struct control_block, xfer_refs[cls][0]),
					 SHMA_PREFILL_OBJECTS * sizeof(uint64_t));
	void *p = rc == 0 ? seg_map(fd, 0, sizeof(struct control_block), 1, NULL) : NULL;
	if (p != NULL && guard_add(p, sizeof(struct control_block)) != 0) {
		munmap(p, sizeof(struct control_block));
		p = NULL;
		errno = ENOMEM;
	}
	if (p == NULL) {
		rc = rc ? rc : -errno;
		close(fd);
		seg_unlink(name);
		return rc;
	}
	*fdp = fd;
	*ctl = p;
	return 0;
}

/* The header of a new block of client id, of process pid (0: a spare). */
static void write_header(struct control_block *cb, uint64_t id, pid_t pid)
{
	cb->hdr.layout_version = SHMA_CONTROL_VERSION;
	cb->hdr.nslots = SHMA_CONTROL_SLOTS;
	cb->hdr.client_id = id;
	cb->hdr.pid = (uint32_t)pid;
	cb->hdr.nclasses = SIZECLASS_COUNT;
	/* The magic last: a block with it is whole. */
	__atomic_store_n(&cb->hdr.magic, SHMA_CONTROL_MAGIC, __ATOMIC_RELEASE);
}

/* Makes a block under the next free id (*id): a name someone else took is
 * skipped (ids are never reused while a block of that id exists, ours or
 * not), and said once.  0 or -errno. */
static int make_block(struct daemon *d, uint64_t *id, int *fd, struct control_block **ctl)
{
	uint64_t first = d->next_client_id + 1;
	*id = ++d->next_client_id;
	int rc = create_segment(d, *id, fd, ctl);
	int tries = 0;
	for (; rc == -EEXIST && tries < CREATE_TRIES; tries++) {
		*id = d->next_client_id += ctlcap_id_jump();
		rc = create_segment(d, *id, fd, ctl);
	}
	if (rc == 0)
		heap_note_client_id(d->heap, *id);
	if (rc == 0 && *id != first)
		log_msg(SLOG_WARN, "control block name c%llu of instance %s was taken: ids jumped "
			"to c%llu (%d tries)", (unsigned long long)first, d->opt.instance,
			(unsigned long long)*id, tries);
	return rc;
}

int daemon_control_create(struct daemon *d, struct client *c)
{
	d->spares_wanted = d->spares_used = 1;
	if (d->nspares > 0) {
		struct control_spare sp = d->spares[0];
		memmove(d->spares, d->spares + 1, --d->nspares * sizeof sp);
		c->id = sp.id;
		c->ctl_fd = sp.fd;
		c->ctl = sp.ctl;
		__atomic_store_n(&c->ctl->hdr.pid, (uint32_t)c->pid, __ATOMIC_RELEASE);
		return 0;
	}
	int rc = make_block(d, &c->id, &c->ctl_fd, &c->ctl);
	if (rc == -ENOMEM && heap_release_free(d->heap) > 0)
		rc = make_block(d, &c->id, &c->ctl_fd, &c->ctl); /* /dev/shm was full of free pages */
	if (rc != 0) {
		c->ctl_fd = -1;
		c->ctl = NULL;
		return rc;
	}
	write_header(c->ctl, c->id, c->pid);
	return 0;
}

/* Hands out up to SHMA_PREFILL_OBJECTS objects of class cls to c into
 * entry 0 of its transfer cache; the bytes given. */
static uint64_t prefill_class(struct daemon *d, struct client *c, unsigned cls)
{
	uint64_t size = sizeclass_size(cls), want = quota_room(d, c, size);
	uint64_t refs[SHMA_PREFILL_OBJECTS];
	struct heap_run runs[8];
	struct heap_batch b = {.refs = refs, .refs_cap = SHMA_PREFILL_OBJECTS, .runs = runs,
			       .runs_cap = 8};
	if (want > SHMA_PREFILL_OBJECTS)
		want = SHMA_PREFILL_OBJECTS;
	int n = want == 0 ? 0 : heap_refill(d->heap, c->region, cls, (uint32_t)want, &b);
	if (n <= 0)
		return 0; /* no memory: the client asks the daemon as before */
	uint64_t *entry = c->ctl->xfer_refs[cls][0];
	uint32_t k = 0;
	for (uint32_t i = 0; i < b.nrefs; i++)
		entry[k++] = b.refs[i];
	for (uint32_t r = 0; r < b.nruns; r++)
		for (uint32_t j = 0; j < b.runs[r].count && k < SHMA_PREFILL_OBJECTS; j++)
			entry[k++] = b.runs[r].first + (uint64_t)j * size;
	quota_held(c, (int64_t)((uint64_t)k * size));
	__atomic_store_n(&c->ctl->hdr.xfer[cls].state[0],
			 layout_xfer_word(SHMA_XFER_FULL, k, 0, SHMA_XFER_NO_SLOT), __ATOMIC_RELEASE);
	return (uint64_t)k * size;
}

void daemon_control_prefill(struct daemon *d, struct client *c)
{
	if (c->ctl == NULL)
		return;
	uint64_t bytes = 0;
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++)
		if (layout_prefilled(cls) && (cls == 0 || sizeclass_size(cls - 1) + 1 <
						       d->opt.large_threshold))
			bytes += prefill_class(d, c, cls);
	/* The client's budget word: what it holds in its transfer cache. */
	__atomic_store_n(&c->ctl->hdr.xfer_bytes, bytes, __ATOMIC_RELEASE);
}

int daemon_control_spares_wanted(const struct daemon *d)
{
	return d->spares_wanted && d->nspares < DAEMON_CONTROL_SPARES;
}

int daemon_control_spare_make(struct daemon *d)
{
	if (!daemon_control_spares_wanted(d))
		return 0;
	struct control_spare sp;
	/* No room (or names taken by others): the Hellos make their own, and
	 * say why if they cannot; no more tries until one does. */
	if (make_block(d, &sp.id, &sp.fd, &sp.ctl) != 0) {
		d->spares_wanted = 0;
		return 0;
	}
	write_header(sp.ctl, sp.id, 0);
	d->spares[d->nspares++] = sp;
	return daemon_control_spares_wanted(d);
}

static void drop_spares(struct daemon *d)
{
	while (d->nspares > 0) {
		struct control_spare *sp = &d->spares[--d->nspares];
		unmap_and_unlink(d, sp->id, sp->fd, sp->ctl, 1);
	}
}

void daemon_control_spares_trim(struct daemon *d)
{
	if (!d->spares_used) {
		d->spares_wanted = 0;
		drop_spares(d);
	}
	d->spares_used = 0;
}

static void add_orphan(struct daemon *d, uint64_t id, pid_t pid, uid_t uid, int adoptable,
		       int fd, struct control_block *cb, struct inflight_set *inflight)
{
	struct orphan *o = calloc(1, sizeof *o);
	if (o == NULL) {
		inflight_forget(&inflight);
		/* Cannot remember it: keep it in /dev/shm for a later daemon. */
		unmap_and_unlink(d, id, fd, cb, 0);
		return;
	}
	/* Its name is all it needs: orphans may pile up, descriptors and
	 * 6.8 GiB mappings must not (ctlcap.h: mapped again when used). */
	if (fd >= 0)
		close(fd);
	ctlcap_unmap(cb);
	*o = (struct orphan){.next = d->orphans, .id = id, .pid = pid, .uid = uid,
			     .adoptable = adoptable, .ctl = NULL, .inflight = inflight};
	d->orphans = o;
	quota_orphan(d, uid, 1);
}

/* A read-only descriptor of block id, to tell its holes (-1 if none). */
static int open_block(struct daemon *d, uint64_t id)
{
	char name[SEG_NAME_MAX];
	if (seg_name(name, sizeof name, d->opt.instance, SEG_CONTROL, id) != 0)
		return -1;
	int fd = seg_open(name, 0);
	return fd < 0 ? -1 : fd;
}

/* 1 if cb was never a cache: no thread took a slot, its transfer cache and
 * its kept large blocks are empty.  The client's word, and enough: a client
 * that lies about it only loses its own caches (the daemon forgets a block
 * the client goes on using; what it held stays out). */
static int control_unused(const struct control_block *cb)
{
	if (layout_slots_taken(&cb->hdr) != 0)
		return 0;
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++)
		for (unsigned e = 0; e < SHMA_XFER_ENTRIES; e++)
			if (layout_xfer_kind(__atomic_load_n(&cb->hdr.xfer[cls].state[e],
							     __ATOMIC_ACQUIRE)) != SHMA_XFER_EMPTY)
				return 0;
	for (unsigned i = 0; i < SHMA_LARGE_KEEP; i++)
		if (__atomic_load_n(&cb->hdr.large[i].ref, __ATOMIC_ACQUIRE) != 0)
			return 0;
	return 1;
}

uint64_t daemon_control_release(struct daemon *d, struct client *c, int reclaim)
{
	if (c->ctl == NULL) {
		inflight_forget(&c->inflight);
		return 0;
	}
	uint64_t back = 0;
	uidarea_disconnected(d, c->id, c->ctl); /* no longer a taker of its uid's batches */
	if (pid_gone(c->pid)) {
		uint64_t in_use = stats_in_use(d);
		/* An adopted block's descriptor was closed: its holes are told by
		 * a new one. */
		int fd = c->ctl_fd >= 0 ? c->ctl_fd : open_block(d, c->id);
		heap_region_closing(d->heap, c->id);
		back = daemon_control_reclaim(d, c->ctl, fd, c->id);
		if (fd != c->ctl_fd && fd >= 0)
			close(fd);
		back += inflight_settle(&c->inflight, d->heap, c->ctl);
		d->reclaimed_objects += back;
		end_region(d, c->id);
		stats_former_settled(d, c->id, in_use);
		c->region = NULL;
		unmap_and_unlink(d, c->id, c->ctl_fd, c->ctl, 1);
	} else if (!reclaim && c->region == NULL && c->inflight == NULL && control_unused(c->ctl)) {
		/* A goodbye from a connection that never cached (a lookup
		 * waiting on a connection of its own, a shma_connect() with no
		 * malloc): no thread can touch the block, so it goes now
		 * instead of as an orphan counted against --uid-max-orphans
		 * until the process exits. */
		unmap_and_unlink(d, c->id, c->ctl_fd, c->ctl, 1);
	} else {
		add_orphan(d, c->id, c->pid, c->uid, reclaim, c->ctl_fd, c->ctl, c->inflight);
		c->inflight = NULL;
	}
	c->ctl = NULL;
	c->ctl_fd = -1;
	return back;
}

int daemon_control_adopt(struct daemon *d, struct client *c, uint64_t id)
{
	for (struct orphan **p = &d->orphans; *p != NULL; p = &(*p)->next) {
		struct orphan *o = *p;
		if (o->id != id)
			continue;
		if (!o->adoptable || o->pid != c->pid)
			return -EPERM;
		o->ctl = ctlcap_map(d, o->id);
		if (o->ctl == NULL || o->ctl->hdr.pid != (uint32_t)c->pid) {
			ctlcap_unmap(o->ctl);
			o->ctl = NULL;
			return -EPERM;
		}
		*p = o->next;
		quota_orphan(d, o->uid, -1);
		c->id = o->id;
		c->ctl = o->ctl;
		/* The answers to refills asked on the lost connection never came:
		 * those not collected are taken back now, while the client waits
		 * for its Hello reply and so touches no bin. */
		d->reclaimed_objects += inflight_settle(&o->inflight, d->heap, o->ctl);
		stats_former_adopted(d, c);
		free(o);
		return 0;
	}
	return -ENOENT;
}

static uint64_t reclaim_orphan(struct daemon *d, struct orphan *o)
{
	/* The caches first: a refill collected just before the end is in a
	 * bin, and the walk takes it; settling then skips what is free. */
	uint64_t in_use = stats_in_use(d);
	o->ctl = ctlcap_map(d, o->id);
	if (o->ctl == NULL)
		inflight_forget(&o->inflight); /* unread, it could free collected refills */
	int fd = open_block(d, o->id);
	heap_region_closing(d->heap, o->id);
	uint64_t back = o->ctl != NULL ? daemon_control_reclaim(d, o->ctl, fd, o->id) : 0;
	if (fd >= 0)
		close(fd);
	back += inflight_settle(&o->inflight, d->heap, o->ctl);
	d->reclaimed_objects += back;
	log_msg(SLOG_DEBUG, "client %llu (pid %ld) is gone: took back %llu cached objects",
		(unsigned long long)o->id, (long)o->pid, (unsigned long long)back);
	end_region(d, o->id);
	stats_former_settled(d, o->id, in_use);
	unmap_and_unlink(d, o->id, -1, o->ctl, 1);
	return back;
}

uint64_t daemon_control_sweep(struct daemon *d)
{
	uint64_t back = 0;
	struct orphan **p = &d->orphans;
	while (*p != NULL) {
		struct orphan *o = *p;
		if (!pid_gone(o->pid)) {
			p = &o->next;
			continue;
		}
		*p = o->next;
		quota_orphan(d, o->uid, -1);
		back += reclaim_orphan(d, o);
		free(o);
	}
	return back + uidarea_decay(d, monotonic_ms()); /* batches of a uid nobody took */
}

/* ---- blocks a previous daemon left ---- */

/* A block this daemon can believe: whole, of this layout, named as it says. */
static const char *control_check(const struct control_block *cb, uint64_t id)
{
	if (__atomic_load_n(&cb->hdr.magic, __ATOMIC_ACQUIRE) != SHMA_CONTROL_MAGIC)
		return "no magic (creation cut short, or not a control block)";
	if (cb->hdr.layout_version != SHMA_CONTROL_VERSION || cb->hdr.nslots != SHMA_CONTROL_SLOTS ||
	    cb->hdr.nclasses != SIZECLASS_COUNT)
		return "another layout version";
	if (cb->hdr.client_id != id)
		return "its client id is not its name's";
	return NULL;
}

/* Files of others under control block names at recovery: the first few are
 * named in the log, the rest counted (140 000 of them took 12 s of lines). */
static unsigned foreign_seen;
#define FOREIGN_LOGGED 4

static int recover_one(void *arg, uint64_t id)
{
	struct daemon *d = arg;
	char name[SEG_NAME_MAX];
	if (seg_name(name, sizeof name, d->opt.instance, SEG_CONTROL, id) != 0)
		return 0;
	/* Only a block we made: a file someone else dropped under the name
	 * (while we were down, say, forging the caches of a live process to
	 * make us free its blocks) is left alone, never believed. */
	const char *foreign;
	int fd = seg_adopt(name, seg_kind_mode(SEG_CONTROL, d->opt.segment_mode), &foreign);
	if (fd == -EPERM && seg_drop_stillborn(name)) {
		log_msg(SLOG_INFO, "control block %s: empty, its creation cut short: removed", name);
		return 0;
	}
	if (fd == -EPERM) {
		if (foreign_seen++ < FOREIGN_LOGGED)
			log_msg(SLOG_WARN, "control block %s is not ours (%s): left alone, not "
				"adopted", name, foreign);
		return 0;
	}
	if (fd < 0)
		return 0;
	/* Past our own ids; a name of another's is skipped when met (ctlcap.h),
	 * and his c<2^63-1> does not push our ids where no listing finds them. */
	if (id > d->next_client_id)
		d->next_client_id = id;
	struct control_block *cb = NULL;
	const char *why = "its size is not a control block's";
	if (seg_size(fd) == (int64_t)sizeof *cb)
		cb = seg_map(fd, 0, sizeof *cb, 1, NULL);
	if (cb != NULL && guard_add(cb, sizeof *cb) != 0) {
		munmap(cb, sizeof *cb);
		cb = NULL;
		why = "no memory to guard it";
	}
	if (cb != NULL)
		why = control_check(cb, id);
	if (why != NULL) {
		log_msg(SLOG_WARN, "control block %s not trusted (%s): removed, its caches leak",
			name, why);
		unmap_and_unlink(d, id, fd, cb, 1);
		return 0;
	}
	pid_t pid = (pid_t)cb->hdr.pid;
	/* Counted on its live process's owner (quota.h), as before the restart. */
	add_orphan(d, id, pid, quota_pid_uid(pid), 1, fd, cb, NULL);
	return 0;
}

int daemon_control_recover(struct daemon *d)
{
	/* Past every id of this heap's life, not only those whose blocks are
	 * still here: a dead client's large blocks are known by its id. */
	if (heap_client_ids(d->heap) > d->next_client_id)
		d->next_client_id = heap_client_ids(d->heap);
	foreign_seen = 0;
	int n = seg_instance_list(d->opt.instance, SEG_CONTROL, recover_one, d);
	if (n < 0)
		return n;
	if (foreign_seen > FOREIGN_LOGGED)
		log_msg(SLOG_WARN, "%u more files of other users under control block names: "
			"left alone", foreign_seen - FOREIGN_LOGGED);
	uint64_t back = daemon_control_sweep(d);
	unsigned kept = 0;
	for (struct orphan *o = d->orphans; o != NULL; o = o->next)
		kept++;
	if (n > 0)
		log_msg(SLOG_INFO, "%d control blocks of an earlier run: %u of live processes kept "
			"for them to re-adopt; %llu cached objects of the dead taken back",
			n, kept, (unsigned long long)back);
	return 0;
}

void daemon_control_close(struct daemon *d, int unlink)
{
	drop_spares(d);
	stats_close(d);
	while (d->orphans != NULL) {
		struct orphan *o = d->orphans;
		d->orphans = o->next;
		inflight_forget(&o->inflight);
		unmap_and_unlink(d, o->id, -1, o->ctl, unlink);
		free(o);
	}
	uidarea_close(d);
}
