/* SPDX-License-Identifier: MIT */
/*
 * Roots: a small directory of names -> refs that outlives the daemon.
 *
 * The directory is kept in the instance's manifest segment ('m'), so that a
 * restarted daemon finds every root its predecessor published.  Each entry is
 * written whole before its "used" word is set, and unpublishing clears only
 * that word, so a daemon killed at any instant leaves each root either
 * published or not, never half.  The lookup index (a hash of the names) and
 * the list order live in the daemon's private memory and are rebuilt when the
 * segment is reopened.
 *
 * Every function is bounded work: a lookup hashes the name and compares a
 * few entries, never all of them.
 */
#ifndef SHMA_SERVER_ROOTS_H
#define SHMA_SERVER_ROOTS_H

#include <stdint.h>
#include <sys/types.h>

#include "rootname.h" /* ROOT_NAME_MAX and the rule a name follows */

#define ROOTS_CAPACITY 4096 /* roots one instance can hold */

struct roots;

/*
 * Opens the roots of instance: reopens the manifest segment if it exists
 * (checking its magic, version and instance), else creates it with mode.
 * 0 and *out; -EINVAL for a segment that is not a roots manifest of this
 * instance, -EPROTO for another layout version, -ENOMEM when /dev/shm cannot
 * hold it, or another negative errno from the system.
 */
int roots_open(struct roots **out, const char *instance, mode_t mode);

/* Unmaps and frees; with unlink, removes the manifest segment too (every
 * root is lost). */
void roots_close(struct roots *r, int unlink);

/* Publishes name -> ref.  0; -EINVAL for the null ref or a name that
 * rootname_check() refuses (-ENAMETOOLONG one over ROOT_NAME_MAX bytes),
 * -EEXIST if the name is published already, -ENOSPC when the directory is
 * full.  The ref is not checked against the heap: the caller does that. */
int roots_publish(struct roots *r, const char *name, uint64_t ref);
/* roots_publish(), the entry naming owner as its publisher (kept across a
 * restart: roots_get_owner()); (uid_t)-1: no one. */
int roots_publish_as(struct roots *r, const char *name, uint64_t ref, uid_t owner);

/* 0 and *ref; -ENOENT if the name is not published (-EINVAL,
 * -ENAMETOOLONG for names that could never be). */
int roots_lookup(const struct roots *r, const char *name, uint64_t *ref);

/* 0, or -ENOENT if the name is not published (errors as roots_lookup). */
int roots_unpublish(struct roots *r, const char *name);

/* Roots published. */
unsigned roots_count(const struct roots *r);

/* Roots the directory can hold (ROOTS_CAPACITY). */
unsigned roots_capacity(const struct roots *r);

/* The i-th root, 0 <= i < roots_count(): its name (in the segment: valid
 * until that root is unpublished; not to be freed) and ref.  0, or -ENOENT if i is past
 * the end.  The order is unspecified and changes when a root goes. */
int roots_get(const struct roots *r, unsigned i, const char **name, uint64_t *ref);

/* The publisher of the i-th root: 0 and *owner, or -ENOENT if i is past the
 * end or the root names none (published without one, or by a daemon of
 * before issue 21 case 6). */
int roots_get_owner(const struct roots *r, unsigned i, uid_t *owner);

#endif
