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
 * process and freed there leaves the taker's count when that connection
 * ends); a large block on the uid that took it, off the uid that frees it
 * (never below zero); a root on its publisher's uid until anyone removes
 * it; an orphan on the uid of the connection that left it.  Roots and
 * orphans an earlier run left are no one's.
 */
#include "quota.h"
#include "daemon.h"
#include "heaps.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct quota_account {
	struct quota_account *next;
	int is_process;
	uint64_t key;            /* the uid, or the pid */
	unsigned refs;           /* connections (process accounts are freed at 0) */
	uint64_t bytes;          /* process: held over all its connections */
	uint32_t conns, orphans, roots, large; /* uid */
};

struct quota_root {
	struct quota_root *next;
	uid_t uid;
	char name[];
};

static struct quota_account *find(struct daemon *d, int is_process, uint64_t key, int make)
{
	for (struct quota_account *a = d->accounts; a != NULL; a = a->next)
		if (a->is_process == is_process && a->key == key)
			return a;
	if (!make)
		return NULL;
	struct quota_account *a = calloc(1, sizeof *a);
	if (a == NULL)
		return NULL;
	a->is_process = is_process;
	a->key = key;
	a->next = d->accounts;
	d->accounts = a;
	return a;
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

int quota_connect(struct daemon *d, struct client *c)
{
	struct quota_account *u = find(d, 0, c->uid, 1);
	if (u == NULL)
		return -ENOMEM;
	if (d->opt.uid_max.connections != 0 && u->conns >= d->opt.uid_max.connections)
		return -EAGAIN;
	struct quota_account *p = find(d, 1, (uint64_t)c->pid, 1);
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
	if (c->user != NULL)
		c->user->conns--;
	if (c->proc != NULL) {
		struct quota_account *p = c->proc;
		p->bytes = p->bytes > c->bytes_held ? p->bytes - c->bytes_held : 0;
		if (--p->refs == 0)
			unlink_account(d, p);
	}
	c->user = c->proc = NULL;
}

uint64_t quota_room(const struct daemon *d, const struct client *c, uint64_t size)
{
	uint64_t cap = d->opt.client_max_memory;
	if (cap == 0)
		return UINT64_MAX;
	uint64_t held = c->proc != NULL ? c->proc->bytes : c->bytes_held;
	return held >= cap ? 0 : (cap - held) / size;
}

static void add(uint64_t *v, int64_t delta)
{
	if (delta >= 0)
		*v += (uint64_t)delta;
	else
		*v = *v > (uint64_t)-delta ? *v - (uint64_t)-delta : 0;
}

void quota_held(struct client *c, int64_t delta)
{
	/* What this connection gives back beyond what it took is not taken
	 * off its process either: another connection's bytes stay counted. */
	if (delta < 0 && (uint64_t)-delta > c->bytes_held)
		delta = -(int64_t)c->bytes_held;
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
