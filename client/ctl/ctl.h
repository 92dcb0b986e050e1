/* SPDX-License-Identifier: MIT */
/*
 * shmallocctl's views of one StatsReply: the readable table (ctl_table.c) and
 * the Prometheus text exposition format (ctl_prom.c).  Each writes what the
 * reply says and nothing else: no request, no state, so that a view can be
 * redrawn (--watch) or tested from any reply.
 */
#ifndef SHMA_CLIENT_CTL_H
#define SHMA_CLIENT_CTL_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "shmalloc.pb-c.h"

/* Leaves the clients of pid (the asking shmallocctl) out of r, in place:
 * a view of the heap should not show the one looking at it. */
void ctl_drop_pid(Shma__StatsReply *r, uint32_t pid);

/* "812.0 KiB", "64.0 MiB", "17 B": powers of 1024. */
void ctl_bytes(char *buf, size_t n, uint64_t bytes);

/* The upper bound, in ns, of service-time bucket b (bucket b counts
 * requests that took less than 2^b ns; the last one counts the rest). */
uint64_t ctl_bucket_ns(unsigned b);

/* The bucket holding the p-quantile (0 < p <= 1) of the histogram, or -1
 * if it is empty. */
int ctl_quantile_bucket(const uint64_t *hist, size_t n, double p);

/* The whole table of `shmallocctl stats`; now is the time it is drawn at. */
void ctl_print_stats(FILE *f, const Shma__StatsReply *r, time_t now);

/* The tables of `shmallocctl clients`: clients connected, and clients gone
 * whose blocks are still out. */
void ctl_print_clients(FILE *f, const Shma__StatsReply *r, time_t now);

/* The table of `shmallocctl heaps`: the named heaps, and the regions of
 * shmalloc-run processes as heaps of process lifetime. */
void ctl_print_heaps(FILE *f, const Shma__StatsReply *r, time_t now);

/* `shmallocctl stats --prometheus`: every metric named shmalloc_*, with its
 * # HELP and # TYPE lines, counters ending in _total; clients and former
 * clients labelled by pid, uid and name (rows of one pid summed). */
void ctl_print_prometheus(FILE *f, const Shma__StatsReply *r);

#endif
