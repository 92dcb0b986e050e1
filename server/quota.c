/* SPDX-License-Identifier: MIT */
/*
 * Limits per uid and per process (doc/architecture.md, Security).
 *
 * A cap per connection is no cap: a process opens as many connections as it
 * likes, and a user runs as many processes.  So what a client takes is
 * counted on accounts: one per process (SO_PEERCRED pid) for bytes, the
 * --client-max-memory cap applying to the sum over all the process's
 * connections; one per uid for connections, orphaned control blocks, roots
 * and large blocks.  Past a limit the request that would cross it gets
 * EAGAIN (ENOMEM for bytes), with one log line (dispatch's refusal), and
 * nothing else changes: the user's other requests, and every other user,
 * are served as before.
 *
 * What is counted on whom: bytes on the process that took them, given back
 * by whichever of its connections frees them (a block passed to another
 * process and freed there leaves that process's count, never below zero);
 * a large block on the uid that took it, off the uid that frees it (never
 * below zero); a root on its publisher's uid until anyone removes it; an
 * orphan on the uid of the connection that left it; the bytes the daemon
 * buffers for a connection (answers it has not read, frames it sent) on its
 * uid, so that many connections that never read cost one bound.
 *
 * A process is its pid and the pid's start time (/proc/<pid>/stat), so a
 * recycled pid is a new account.  Its account outlives its connections
 * while it lives: a connection that ends leaves what it took counted (the
 * blocks are still out, the process may hold them), so that a new
 * connection each time one reaches --client-max-memory gains nothing
 * (issue 21 case 5: one pid held 249 MiB of --max-memory 256M).  The
 * account goes when the process does (quota_sweep(), on the decay timer).
 *
 * Across a restart (issue 21 case 6): roots carry their publisher's uid in
 * the manifest (roots_publish_as()), and an orphan adopted at recovery is
 * counted on the uid that owns its live process (quota_pid_uid()), so a
 * user's counts come back with the daemon: quota_recount().  Large blocks
 * and bytes of an earlier run are no one's (their owners are client ids).
 */
#include "quota.h"
#include "daemon.h"
#include "heaps.h"
#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct quota_account {
	struct quota_account *next;
	int is_process;
	uint64_t key;            /* the uid, or the pid */
	uint64_t start;          /* process: the pid's start time (0: unknown) */
	unsigned refs;           /* connections */
	uint64_t bytes;          /* process: held over all its connections, past and present */
	uint64_t buffered;       /* uid: bytes the daemon buffers for its connections */
	uint32_t conns, orphans, roots, large; /* uid */
};

struct quota_root {
	struct quota_root *next;
	uid_t uid;
	char name[];
};

/* The start time of process pid (clock ticks since boot), 0 if it cannot be
 * read (gone, or /proc hidden). */
static uint64_t pid_start(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Field 22; the name (field 2) may hold anything but ends at the last ')'. */
	const char *p = strrchr(buf, ')');
	for (int field = 2; p != NULL && field < 22; field++)
		p = strchr(p + 1, ' ');
	return p != NULL ? strtoull(p + 1, NULL, 10) : 0;
}

static struct quota_account *find_at(struct daemon *d, int is_process, uint64_t key,
				     uint64_t start, int make)
{
	for (struct quota_account *a = d->accounts; a != NULL; a = a->next)
		if (a->is_process == is_process && a->key == key && a->start == start)
			return a;
	if (!make)
		return NULL;
	struct quota_account *a = calloc(1, sizeof *a);
	if (a == NULL)
		return NULL;
	a->is_process = is_process;
	a->key = key;
	a->start = start;
	a->next = d->accounts;
	d->accounts = a;
	return a;
}

static struct quota_account *find(struct daemon *d, int is_process, uint64_t key, int make)
{
	return find_at(d, is_process, key, 0, make);
}

static void unlink_account(struct daemon *d, struct quota_account *gone)
{
	for (struct quota_account **p = &d->accounts; *p != NULL; p = &(*p)->next)
		if (*p == gone) {
			*p = gone->next;
			free(gone);
			return;
		}
}

static void add(uint64_t *v, int64_t delta)
{
	if (delta >= 0)
		*v += (uint64_t)delta;
	else
		*v = *v > (uint64_t)-delta ? *v - (uint64_t)-delta : 0;
}

int quota_connect(struct daemon *d, struct client *c)
{
	struct quota_account *u = find(d, 0, c->uid, 1);
	if (u == NULL)
		return -ENOMEM;
	if (d->opt.uid_max.connections != 0 && u->conns >= d->opt.uid_max.connections)
		return -EAGAIN;
	struct quota_account *p = find_at(d, 1, (uint64_t)c->pid, pid_start(c->pid), 1);
	if (p == NULL)
		return -ENOMEM;
	u->conns++;
	p->refs++;
	c->user = u;
	c->proc = p;
	return 0;
}

void quota_disconnect(struct daemon *d, struct client *c)
{
	if (c->user != NULL) {
		c->user->conns--;
		add(&c->user->buffered, -(int64_t)c->buffered);
	}
	c->buffered = 0;
	/* What it took stays on its process (see the top): the account goes
	 * now only if it holds nothing, else when the process is gone. */
	if (c->proc != NULL && --c->proc->refs == 0 && c->proc->bytes == 0)
		unlink_account(d, c->proc);
	c->user = c->proc = NULL;
}

/* 1 if the process of account a is gone: no such pid, or another process
 * under it (another start time). */
static int process_gone(const struct quota_account *a)
{
	pid_t pid = (pid_t)a->key;
	if (kill(pid, 0) != 0 && errno == ESRCH)
		return 1;
	uint64_t start = pid_start(pid);
	return start != 0 && a->start != 0 && start != a->start;
}

unsigned quota_sweep(struct daemon *d)
{
	unsigned gone = 0;
	struct quota_account **p = &d->accounts;
	while (*p != NULL) {
		struct quota_account *a = *p;
		if (a->is_process && a->refs == 0 && process_gone(a)) {
			*p = a->next;
			free(a);
			gone++;
		} else {
			p = &a->next;
		}
	}
	return gone;
}

uint64_t quota_room(const struct daemon *d, const struct client *c, uint64_t size)
{
	uint64_t cap = d->opt.client_max_memory;
	if (cap == 0)
		return UINT64_MAX;
	uint64_t held = c->proc != NULL ? c->proc->bytes : c->bytes_held;
	return held >= cap ? 0 : (cap - held) / size;
}

void quota_held(struct client *c, int64_t delta)
{
	/* Each count stops at zero on its own: a connection frees what an
	 * earlier connection of its process took, and the process's count
	 * goes down with it. */
	add(&c->bytes_held, delta);
	if (c->proc != NULL)
		add(&c->proc->bytes, delta);
}

int quota_large_take(const struct daemon *d, struct client *c)
{
	if (c->user == NULL)
		return 0;
	if (d->opt.uid_max.large != 0 && c->user->large >= d->opt.uid_max.large)
		return -EAGAIN;
	c->user->large++;
	return 0;
}

void quota_large_give(struct client *c)
{
	if (c->user != NULL && c->user->large > 0)
		c->user->large--;
}

int quota_orphans_check(const struct daemon *d, const struct client *c)
{
	if (c->user == NULL || d->opt.uid_max.orphans == 0)
		return 0;
	return c->user->orphans >= d->opt.uid_max.orphans ? -EAGAIN : 0;
}

void quota_orphan(struct daemon *d, uid_t uid, int delta)
{
	if (uid == (uid_t)-1)
		return;
	struct quota_account *u = find(d, 0, uid, delta > 0);
	if (u == NULL)
		return;
	if (delta > 0)
		u->orphans++;
	else if (u->orphans > 0)
		u->orphans--;
}

/* Roots and named heaps count together against --uid-max-roots (a heap's
 * count is the registry's, so it holds across restarts). */
int quota_root_check(const struct daemon *d, const struct client *c)
{
	if (c->user == NULL || d->opt.uid_max.roots == 0)
		return 0;
	unsigned heaps = d->heaps != NULL ? heaps_count_uid(d->heaps, c->uid) : 0;
	return c->user->roots + heaps >= d->opt.uid_max.roots ? -EAGAIN : 0;
}

int quota_heap_check(const struct daemon *d, const struct client *c)
{
	if (d->opt.uid_max.roots == 0 || d->heaps == NULL)
		return 0;
	unsigned roots = c->user != NULL ? c->user->roots : 0;
	return roots + heaps_count_uid(d->heaps, c->uid) >= d->opt.uid_max.roots ? -EAGAIN : 0;
}

void quota_root_published(struct daemon *d, struct client *c, const char *name)
{
	if (c->user == NULL)
		return;
	size_t n = strlen(name);
	struct quota_root *r = malloc(sizeof *r + n + 1);
	if (r == NULL)
		return; /* not counted: the limit errs on the user's side */
	r->uid = c->uid;
	memcpy(r->name, name, n + 1);
	r->next = d->root_owners;
	d->root_owners = r;
	c->user->roots++;
}

void quota_root_gone(struct daemon *d, const char *name)
{
	for (struct quota_root **p = &d->root_owners; *p != NULL; p = &(*p)->next) {
		struct quota_root *r = *p;
		if (strcmp(r->name, name) != 0)
			continue;
		struct quota_account *u = find(d, 0, r->uid, 0);
		if (u != NULL && u->roots > 0)
			u->roots--;
		*p = r->next;
		free(r);
		return;
	}
}

/* ---- buffers per uid ---- */

void quota_buffer(struct client *c, int64_t delta)
{
	if (c == NULL)
		return;
	add(&c->buffered, delta);
	if (c->user != NULL)
		add(&c->user->buffered, delta);
}

int quota_buffers_full(const struct daemon *d, const struct client *c)
{
	uint64_t cap = d->opt.uid_max.buffers;
	return c != NULL && c->user != NULL && cap != 0 && c->user->buffered >= cap;
}

int quota_buffers_over(const struct daemon *d, const struct client *c)
{
	uint64_t cap = d->opt.uid_max.buffers;
	return c != NULL && c->user != NULL && cap != 0 && c->user->buffered >= 2 * cap;
}

void quota_buffers_closed(struct daemon *d, struct client *c)
{
	c->rejected++;
	d->rejected++;
	log_msg(SLOG_WARN, "pid %ld uid %lu: its user's connections hold %llu bytes of answers "
		"unread and buffers, past twice --uid-max-buffers: this connection is closed",
		(long)c->pid, (unsigned long)c->uid,
		(unsigned long long)(c->user != NULL ? c->user->buffered : c->buffered));
}

/* ---- counts that come back at a restart ---- */

uid_t quota_pid_uid(pid_t pid)
{
	char path[64];
	struct stat st;
	snprintf(path, sizeof path, "/proc/%ld", (long)pid);
	return pid > 0 && stat(path, &st) == 0 ? st.st_uid : (uid_t)-1;
}

unsigned quota_recount(struct daemon *d)
{
	unsigned n = 0;
	for (unsigned i = 0; i < roots_count(d->roots); i++) {
		const char *name;
		uint64_t ref;
		uid_t uid;
		if (roots_get(d->roots, i, &name, &ref) != 0 ||
		    roots_get_owner(d->roots, i, &uid) != 0)
			continue;
		struct quota_account *u = find(d, 0, uid, 1);
		struct client c = {.uid = uid, .user = u};
		if (u == NULL)
			break;
		quota_root_published(d, &c, name);
		n++;
	}
	return n;
}

void quota_close(struct daemon *d)
{
	while (d->accounts != NULL) {
		struct quota_account *a = d->accounts;
		d->accounts = a->next;
		free(a);
	}
	while (d->root_owners != NULL) {
		struct quota_root *r = d->root_owners;
		d->root_owners = r->next;
		free(r);
	}
}
