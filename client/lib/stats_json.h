/*
 * Stats for the library and the CLI: fetch the daemon's StatsReply, write it
 * as JSON.
 */
#ifndef SHMA_CLIENT_STATS_JSON_H
#define SHMA_CLIENT_STATS_JSON_H

#include <stdio.h>

#include "client.h"

/* With the connection's lock held; *resp valid until conn_done(). */
SHMA_HIDDEN int stats_fetch(Shma__Response **resp);
SHMA_HIDDEN void stats_json_write(FILE *f, const Shma__StatsReply *r);

#endif
