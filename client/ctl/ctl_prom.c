/* SPDX-License-Identifier: MIT */
/*
 * `shmallocctl stats --prometheus`: one StatsReply in the Prometheus text
 * exposition format (version 0.0.4), for node_exporter's textfile collector
 * or any scraper that reads a file.
 *
 * Guarantees: every metric is named shmalloc_*, is preceded once by its
 * # HELP and # TYPE lines, and has its samples together; counters end in
 * _total; sizes are in bytes and times in seconds (base units); label values
 * are escaped (backslash, double quote, newline).  Per-arena, per-class and
 * per-client metrics carry arena="ID", class="ID" (with size="BYTES"), and
 * pid, uid, name labels (clients and former clients: no per-connection id,
 * whose every reconnect would start a new series; rows of one pid are one
 * series).  The metrics, their names, types and help are
 * proto/stats_fields.h's; the request histogram has cumulative le buckets,
 * _sum and _count.
 */
#include "config.h"

#include "ctl.h"

#include "stats_fields.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_BYTES 8192u /* SHMA_PAGE_SIZE: arena stats count pages */

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP shmalloc_%s %s\n# TYPE shmalloc_%s %s\n", name, help, name, type);
}

static void scalar(FILE *f, const char *name, const char *type, const char *help,
		   unsigned long long v)
{
	family(f, name, type, help);
	fprintf(f, "shmalloc_%s %llu\n", name, v);
}

static void label_value(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

/* ---- the lists: one family per field, one sample per row ---- */

/* Rows with the same key are one series (their values summed, the earliest
 * time kept): for clients and former clients the key is the pid, since a
 * per-connection id would make a new series at every reconnect. */
static int row_key_arenas(const void *row)
{
	(void)row;
	return -1;
}
#define row_key_classes row_key_arenas
#define row_key_heaps row_key_arenas
static int row_key_clients(const void *row)
{
	return (int)((const Shma__ClientStats *)row)->pid;
}
static int row_key_former_clients(const void *row)
{
	return (int)((const Shma__FormerClientStats *)row)->pid;
}

/* Labels: the ID and TEXT fields that have a Prometheus name. */
#define P_LABEL(m, kind, src, json, label, line, prom, help) P_LABEL_##kind(prom, m)
#define P_LABEL_ID(prom, m) \
	if (prom != NULL) \
		fprintf(f, "%s%s=\"%llu\"", n++ ? "," : "", (const char *)prom, \
			(unsigned long long)r->m);
#define P_LABEL_TEXT(prom, m) \
	if (prom != NULL) { \
		fprintf(f, "%s%s=", n++ ? "," : "", (const char *)prom); \
		label_value(f, r->m); \
	}
#define P_LABEL_LIFETIME(prom, m) \
	if (prom != NULL) { \
		fprintf(f, "%s%s=", n++ ? "," : "", (const char *)prom); \
		label_value(f, stats_lifetime_name(r->m)); \
	}
#define P_LABEL_COUNT(prom, m)
#define P_LABEL_BYTES(prom, m)
#define P_LABEL_PAGES(prom, m)
#define P_LABEL_TOTAL(prom, m)
#define P_LABEL_TOTAL_BYTES(prom, m)
#define P_LABEL_TIME(prom, m)
#define P_LABEL_RATIO(prom, m)
#define P_LABEL_FLAG(prom, m)
#define P_LABEL_HIST(prom, m)
#define P_LABEL_NS(prom, m)
#define P_LABEL_LIST(prom, m)
#define P_LABEL_RETIRED(prom, m)

/* A row group's value of a field, by kind; 0: not a metric of its own. */
#define P_TYPE_COUNT "gauge"
#define P_TYPE_BYTES "gauge"
#define P_TYPE_PAGES "gauge"
#define P_TYPE_FLAG "gauge"
#define P_TYPE_TIME "gauge"
#define P_TYPE_TOTAL "counter"
#define P_TYPE_TOTAL_BYTES "counter"
#define P_ROWS_COUNT(v, r, m) v += (long long)(r)->m
#define P_ROWS_BYTES P_ROWS_COUNT
#define P_ROWS_TOTAL P_ROWS_COUNT
#define P_ROWS_TOTAL_BYTES P_ROWS_COUNT
#define P_ROWS_FLAG(v, r, m) v = (r)->m || v
#define P_ROWS_PAGES(v, r, m) v += (long long)((r)->m * PAGE_BYTES)
#define P_ROWS_TIME(v, r, m) v = (k == i || (long long)(r)->m < v) ? (long long)(r)->m : v

#define P_ROW_METRIC(m, kind, src, json, label, line, prom, help) P_ROW_##kind(m, kind, prom, help)
#define P_ROW_METRIC_OF(m, kind, prom, help) \
	family(f, prom, P_TYPE_##kind, help); \
	for (size_t i = 0, j; i < n; i = j) { \
		long long v = 0; \
		for (j = i + 1; j < n && key(rows[i]) >= 0 && key(rows[j]) == key(rows[i]); j++) \
			; \
		for (size_t k = i; k < j; k++) { \
			const TYPE *r = rows[k]; \
			P_ROWS_##kind(v, r, m); \
		} \
		labels(f, rows[i], prom); \
		fprintf(f, " %lld\n", v); \
	}
#define P_ROW_COUNT P_ROW_METRIC_OF
#define P_ROW_BYTES P_ROW_METRIC_OF
#define P_ROW_PAGES P_ROW_METRIC_OF
#define P_ROW_TOTAL P_ROW_METRIC_OF
#define P_ROW_TOTAL_BYTES P_ROW_METRIC_OF
#define P_ROW_TIME P_ROW_METRIC_OF
#define P_ROW_FLAG P_ROW_METRIC_OF
#define P_ROW_ID(m, kind, prom, help)
#define P_ROW_TEXT(m, kind, prom, help)
#define P_ROW_RETIRED(m, kind, prom, help)
#define P_ROW_LIFETIME(m, kind, prom, help)

static int by_key(const void *a, const void *b, int (*key)(const void *))
{
	int x = key(*(const void *const *)a), y = key(*(const void *const *)b);
	return (x > y) - (x < y);
}

#define P_LIST_WRITER(fn, T, FIELDS) \
	static int cmp_##fn(const void *a, const void *b) \
	{ \
		return by_key(a, b, row_key_##fn); \
	} \
	static void labels_##fn(FILE *f, const T *r, const char *name) \
	{ \
		unsigned n = 0; \
		fprintf(f, "shmalloc_%s{", name); \
		FIELDS(P_LABEL) \
		fputc('}', f); \
	} \
	static void write_##fn(FILE *f, T *const *in, size_t n) \
	{ \
		typedef T TYPE; \
		int (*key)(const void *) = row_key_##fn; \
		void (*labels)(FILE *, const T *, const char *) = labels_##fn; \
		const T **rows = malloc((n ? n : 1) * sizeof *rows); \
		if (rows == NULL) \
			return; \
		if (n > 0) { /* in is NULL for an empty list */ \
			memcpy(rows, in, n * sizeof *rows); \
			qsort(rows, n, sizeof *rows, cmp_##fn); \
		} \
		FIELDS(P_ROW_METRIC) \
		free(rows); \
	}

P_LIST_WRITER(arenas, Shma__ArenaStats, ARENA_STATS_FIELDS)
P_LIST_WRITER(classes, Shma__ClassStats, CLASS_STATS_FIELDS)
P_LIST_WRITER(clients, Shma__ClientStats, CLIENT_STATS_FIELDS)
P_LIST_WRITER(former_clients, Shma__FormerClientStats, FORMER_CLIENT_STATS_FIELDS)
P_LIST_WRITER(heaps, Shma__HeapStats, HEAP_STATS_FIELDS)

/* ---- the totals ---- */

/* The histogram's buckets are cumulative, as the format wants; its _sum is
 * service_ns_total (the NS field), in seconds. */
static void histogram(FILE *f, const char *name, const char *help, const uint64_t *h,
		      size_t n, uint64_t sum_ns)
{
	uint64_t seen = 0;
	if (n == 0)
		return;
	family(f, name, "histogram", help);
	for (size_t b = 0; b + 1 < n; b++) {
		seen += h[b];
		fprintf(f, "shmalloc_%s_bucket{le=\"%.9g\"} %llu\n", name,
			(double)ctl_bucket_ns((unsigned)b) / 1e9, (unsigned long long)seen);
	}
	seen += h[n - 1];
	fprintf(f, "shmalloc_%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)seen);
	fprintf(f, "shmalloc_%s_sum %.9f\n", name, (double)sum_ns / 1e9);
	fprintf(f, "shmalloc_%s_count %llu\n", name, (unsigned long long)seen);
}

#define P_TOTAL_FIELD(m, kind, src, json, label, line, prom, help) P_TOT_##kind(prom, help, m)
#define P_TOT_SCALAR(prom, type, help, v) scalar(f, prom, type, help, (unsigned long long)(v))
#define P_TOT_COUNT(prom, help, m) P_TOT_SCALAR(prom, "gauge", help, r->m);
#define P_TOT_BYTES P_TOT_COUNT
#define P_TOT_FLAG P_TOT_COUNT
#define P_TOT_TIME P_TOT_COUNT
#define P_TOT_PAGES(prom, help, m) P_TOT_SCALAR(prom, "gauge", help, r->m * PAGE_BYTES);
#define P_TOT_TOTAL(prom, help, m) P_TOT_SCALAR(prom, "counter", help, r->m);
#define P_TOT_TOTAL_BYTES P_TOT_TOTAL
#define P_TOT_RATIO(prom, help, m) \
	family(f, prom, "gauge", help); \
	fprintf(f, "shmalloc_%s %.6f\n", (const char *)prom, r->m);
#define P_TOT_HIST(prom, help, m) \
	histogram(f, prom, help, r->m, r->n_##m, r->service_ns_total);
#define P_TOT_LIST(prom, help, m) \
	P_TOT_SCALAR(prom, "gauge", help, r->n_##m); \
	write_##m(f, r->m, r->n_##m);
#define P_TOT_NS(prom, help, m)      /* the histogram's _sum */
#define P_TOT_ID(prom, help, m)      /* a label of shmalloc_info */
#define P_TOT_TEXT(prom, help, m)    /* a label of shmalloc_info */
#define P_TOT_RETIRED(prom, help, m) /* never set */
#define P_TOT_LIFETIME(prom, help, m) /* only heaps have one: a label */

#define P_INFO_LABEL(m, kind, src, json, label, line, prom, help) P_LABEL_##kind(prom, m)

void ctl_print_prometheus(FILE *f, const Shma__StatsReply *r)
{
	unsigned n = 0;
	family(f, "info", "gauge", "The daemon answering: its instance and pid.");
	fputs("shmalloc_info{", f);
	STATS_REPLY_FIELDS(P_INFO_LABEL)
	fputs("} 1\n", f);
	STATS_REPLY_FIELDS(P_TOTAL_FIELD)
}
