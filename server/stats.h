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

/* Adds a departing client's counters to the daemon's totals. */
void stats_retire_client(struct daemon *d, const struct client *c);

#endif
