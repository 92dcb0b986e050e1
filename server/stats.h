/*
 * Stats: the daemon's counters as a StatsReply.  Bounded work: per arena, per
 * class, per client; never a scan of user memory.
 */
#ifndef SHMA_SERVER_STATS_H
#define SHMA_SERVER_STATS_H

#include "daemon.h"
#include "dispatch.h"

/* Fills resp with a StatsReply whose storage lives in s.  0 or -ENOMEM. */
int stats_build(struct daemon *d, Shma__Response *resp, struct dispatch_scratch *s);

#endif
