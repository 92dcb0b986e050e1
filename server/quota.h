/* SPDX-License-Identifier: MIT */
/*
 * Limits per uid and per process (quota.c): what one user, or one process
 * however many connections it opens, may take of the daemon.
 */
#ifndef SHMA_SERVER_QUOTA_H
#define SHMA_SERVER_QUOTA_H

#include <stdint.h>
#include <sys/types.h>

struct daemon;
struct client;
struct quota_account;

/* The limits per uid, each an option (--uid-max-<name>, options.c's table);
 * 0 lifts one.  A new limit is a field here, a line of that table, its check
 * in quota.c, its paragraph in shmallocd(8) and its test. */
struct quota_limits {
	uint32_t connections; /* connections open at once */
	uint32_t orphans;     /* control blocks of live processes whose connection ended */
	uint32_t roots;       /* roots published */
	uint32_t large;       /* large blocks held */
};

/* At accept, after SO_PEERCRED: c joins the accounts of its uid and its
 * process.  0, -EAGAIN past --uid-max-connections, or -ENOMEM. */
int quota_connect(struct daemon *d, struct client *c);
/* At close: c's bytes leave its process's account, its connection its
 * uid's.  Safe on a client quota_connect() refused or never saw. */
void quota_disconnect(struct daemon *d, struct client *c);

/* Objects of size bytes c's process may still take under
 * --client-max-memory (UINT64_MAX without a cap). */
uint64_t quota_room(const struct daemon *d, const struct client *c, uint64_t size);
/* c took (delta > 0) or gave back bytes: c->bytes_held and its process's
 * account follow, neither below zero. */
void quota_held(struct client *c, int64_t delta);

/* A large block for c's uid: 0, or -EAGAIN past --uid-max-large. */
int quota_large_take(const struct daemon *d, struct client *c);
void quota_large_give(struct client *c);

/* At Hello, before a control block is made: -EAGAIN when c's uid has
 * --uid-max-orphans orphaned control blocks already. */
int quota_orphans_check(const struct daemon *d, const struct client *c);
/* An orphan of uid appears or goes ((uid_t)-1: of an earlier run, no one's). */
void quota_orphan(struct daemon *d, uid_t uid, int delta);

/* Publishing name for c: 0 or -EAGAIN past --uid-max-roots; then, once it
 * is published, quota_root_published(); when any client unpublishes it,
 * quota_root_gone() (the publisher's count goes down). */
int quota_root_check(const struct daemon *d, const struct client *c);
void quota_root_published(struct daemon *d, struct client *c, const char *name);
void quota_root_gone(struct daemon *d, const char *name);
/* -EAGAIN if c's uid has as many roots and named heaps as --uid-max-roots. */
int quota_heap_check(const struct daemon *d, const struct client *c);

/* At exit: frees the accounts. */
void quota_close(struct daemon *d);

#endif
