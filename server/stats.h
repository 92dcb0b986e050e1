/* SPDX-License-Identifier: MIT */
/*
 * Stats: the daemon's counters as a StatsReply.  Bounded work: per arena, per
 * class, per client; never a scan of user memory.  Layer: session (no libuv).
 */
#ifndef SHMA_SERVER_STATS_H
#define SHMA_SERVER_STATS_H

#include "daemon.h"
#include "dispatch.h"

/* Fills resp with a StatsReply whose storage lives in s.  0 or -ENOMEM. */
int stats_build(struct daemon *d, Shma__Response *resp, struct dispatch_scratch *s);

/* The allocation counters c's threads keep in its control block: what the
 * client says, believed only as statistics. */
void stats_client_counters(const struct client *c, uint64_t *mallocs, uint64_t *waits);

/* Adds a departing client's counters to the daemon's totals; if it holds
 * bytes, it becomes a former client (FormerClientStats) until they are back. */
void stats_retire_client(struct daemon *d, const struct client *c);

/* The heap's in_use_bytes now: taken before a control block is settled. */
uint64_t stats_in_use(const struct daemon *d);

/* Client id's control block was settled (its caches, refills in flight and
 * region taken back), which made in_use_bytes fall from in_use_before: that
 * much comes off the former client id, which is settled. */
void stats_former_settled(struct daemon *d, uint64_t id, uint64_t in_use_before);

/* c re-adopted its control block (the same process, reconnected): the
 * former client of its id is c again, its bytes c's. */
void stats_former_adopted(struct daemon *d, struct client *c);

/* c gives back bytes (before they come off c->bytes_held): a large block
 * of client owner (0: a small object, owner unknown).  What is not c's
 * comes off the former client that took it -- the owner, or for a small
 * object, what c gives back beyond what it took, off the oldest. */
void stats_freed_by(struct daemon *d, const struct client *c, uint64_t bytes, uint64_t owner);

/* The former client of id, if there is one (a region's owner whose
 * connection ended): 0 with its pid, uid and start, or -ENOENT. */
int stats_former_of(const struct daemon *d, uint64_t id, pid_t *pid, uid_t *uid,
		    int64_t *connected_since);

/* heaps_stats.c: r's heaps, the named heaps and the regions of shmalloc-run
 * processes (heaps of process lifetime), their storage in s.  0 or -ENOMEM. */
int stats_fill_heaps(struct daemon *d, Shma__StatsReply *r, struct dispatch_scratch *s);

/* At exit: forgets the former clients. */
void stats_close(struct daemon *d);

#endif
