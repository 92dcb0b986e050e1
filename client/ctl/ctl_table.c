/* SPDX-License-Identifier: MIT */
/*
 * The readable table of `shmallocctl stats` and `shmallocctl clients`.
 *
 * One StatsReply, drawn in sections that answer the questions users ask
 * first: how much memory the heap holds and where it is (totals, arenas), who
 * holds it (clients, large blocks), how well it is used (size classes,
 * fragmentation) and how fast the daemon answers (service-time quantiles).
 * Sizes are humanized in powers of 1024; counts are exact.  Nothing here
 * talks to the daemon, and nothing names a field: the totals' lines and the
 * lists' columns are proto/stats_fields.h's (label, line, kind), the only
 * figures of this file's own being the service-time quantiles and the
 * largest free run.
 */
#include "config.h"

#include "ctl.h"

#include "stats_fields.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define PAGE_BYTES 8192u /* SHMA_PAGE_SIZE: arena stats count pages */

void ctl_bytes(char *buf, size_t n, uint64_t bytes)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	unsigned u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, n, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, n, "%.1f %s", v, units[u]);
}

void ctl_drop_pid(Shma__StatsReply *r, uint32_t pid)
{
	size_t k = 0;
	for (size_t i = 0; i < r->n_clients; i++)
		if (r->clients[i]->pid != pid)
			r->clients[k++] = r->clients[i];
	r->n_clients = k;
}

uint64_t ctl_bucket_ns(unsigned b)
{
	return b < 64 ? (uint64_t)1 << b : UINT64_MAX;
}

int ctl_quantile_bucket(const uint64_t *hist, size_t n, double p)
{
	uint64_t total = 0, seen = 0;
	for (size_t i = 0; i < n; i++)
		total += hist[i];
	if (total == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		seen += hist[i];
		if ((double)seen >= p * (double)total)
			return (int)i;
	}
	return (int)n - 1;
}

static void duration(char *buf, size_t n, uint64_t ns)
{
	if (ns < 1000)
		snprintf(buf, n, "%llu ns", (unsigned long long)ns);
	else if (ns < 1000000)
		snprintf(buf, n, "%.1f us", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, n, "%.1f ms", (double)ns / 1e6);
	else
		snprintf(buf, n, "%.2f s", (double)ns / 1e9);
}

static void uptime(char *buf, size_t n, int64_t secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 3600)
		snprintf(buf, n, "%lldm %llds", (long long)secs / 60, (long long)secs % 60);
	else if (secs < 86400)
		snprintf(buf, n, "%lldh %lldm", (long long)secs / 3600, (long long)secs / 60 % 60);
	else
		snprintf(buf, n, "%lldd %lldh", (long long)secs / 86400, (long long)secs / 3600 % 24);
}

static void quantile(char *buf, size_t n, const uint64_t *hist, size_t nh, double p)
{
	int b = ctl_quantile_bucket(hist, nh, p);
	char d[24];
	if (b < 0) {
		snprintf(buf, n, "-");
		return;
	}
	if ((size_t)b + 1 == nh) {
		duration(d, sizeof d, ctl_bucket_ns((unsigned)b - 1));
		snprintf(buf, n, ">= %s", d);
		return;
	}
	duration(d, sizeof d, ctl_bucket_ns((unsigned)b));
	snprintf(buf, n, "< %s", d);
}

/* ---- one value, by its kind (proto/stats_fields.h) ---- */

/* Where a value is drawn: on a line of the totals (TIME: an uptime) or in
 * a row of a list (TIME: a date). */
enum where { ON_LINE, IN_ROW };

static void v_uint(char *b, size_t n, unsigned long long v)
{
	snprintf(b, n, "%llu", v);
}

static void v_time(char *b, size_t n, int64_t v, enum where w, time_t now)
{
	if (w == ON_LINE) {
		uptime(b, n, (int64_t)now - v);
		return;
	}
	time_t t = (time_t)v;
	struct tm tm;
	strftime(b, n, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
}

static void v_hist(char *b, size_t n, const uint64_t *h, size_t nh)
{
	char p50[32], p99[32], max[32];
	quantile(p50, sizeof p50, h, nh, 0.50);
	quantile(p99, sizeof p99, h, nh, 0.99);
	quantile(max, sizeof max, h, nh, 1.0);
	snprintf(b, n, "p50 %s  p99 %s  max %s", p50, p99, max);
}

#define T_COUNT(b, n, r, m) v_uint(b, n, (unsigned long long)(r)->m)
#define T_TOTAL T_COUNT
#define T_ID T_COUNT
#define T_BYTES(b, n, r, m) ctl_bytes(b, n, (r)->m)
#define T_TOTAL_BYTES T_BYTES
#define T_PAGES(b, n, r, m) ctl_bytes(b, n, (r)->m * PAGE_BYTES)
#define T_NS(b, n, r, m) duration(b, n, (r)->m)
#define T_TIME(b, n, r, m) v_time(b, n, (r)->m, w, now)
#define T_RATIO(b, n, r, m) snprintf(b, n, "%.1f%%", (r)->m * 100)
#define T_FLAG(b, n, r, m) snprintf(b, n, "%s", (r)->m ? "yes" : "no")
#define T_TEXT(b, n, r, m) snprintf(b, n, "%s", (r)->m ? (r)->m : "")
#define T_HIST(b, n, r, m) v_hist(b, n, (r)->m, (r)->n_##m)
#define T_LIST(b, n, r, m) v_uint(b, n, (unsigned long long)(r)->n_##m)
#define T_RETIRED(b, n, r, m) (b[0] = '\0')
#define T_LIFETIME(b, n, r, m) snprintf(b, n, "%s", stats_lifetime_name((r)->m))

/* The least width of a column, by kind; text and dates are left-aligned. */
#define WIDTH_TEXT 16
#define WIDTH_TIME 19
#define WIDTH_FLAG 3
#define WIDTH_ID 6
#define WIDTH_OTHER 10

static int kind_left(enum stats_kind k)
{
	return k == STATS_TEXT || k == STATS_TIME || k == STATS_LIFETIME;
}

static int kind_width(enum stats_kind k)
{
	return k == STATS_TEXT ? WIDTH_TEXT : k == STATS_TIME ? WIDTH_TIME
	       : k == STATS_FLAG ? WIDTH_FLAG : k == STATS_ID ? WIDTH_ID : WIDTH_OTHER;
}

/* ---- the totals: a few lines of "label value" ---- */

enum line { L_HEAD, L_MEMORY, L_LARGE, L_FRAG, L_REQUESTS, L_CLIENTS, L_REGIONS, L_NONE,
	    L_COL };

static const char *const line_title[] = {
	[L_HEAD] = "shmallocd", [L_MEMORY] = "memory", [L_LARGE] = "large",
	[L_FRAG] = "fragment.", [L_REQUESTS] = "requests", [L_CLIENTS] = "clients",
	[L_REGIONS] = "regions",
};

#define LINE_WIDTH 100

struct line_out {
	FILE *f;
	int col; /* where the line is; 0: nothing on it yet */
};

static void put(struct line_out *o, enum line l, const char *label, const char *value)
{
	int len = (int)(strlen(label) + 1 + strlen(value));
	if (o->col == 0)
		o->col = fprintf(o->f, "%-11s", line_title[l]);
	else if (o->col + 3 + len > LINE_WIDTH)
		o->col = fprintf(o->f, "\n%-11s", "") - 1;
	else
		o->col += fprintf(o->f, "   ");
	o->col += fprintf(o->f, "%s %s", label, value);
}

/* The largest free run and the free pages, over all arenas. */
static void free_runs(struct line_out *o, const Shma__StatsReply *r)
{
	uint64_t free_pages = 0, largest = 0;
	for (size_t i = 0; i < r->n_arenas; i++) {
		free_pages += r->arenas[i]->free_pages;
		if (r->arenas[i]->largest_free_run > largest)
			largest = r->arenas[i]->largest_free_run;
	}
	char a[32], b[32], v[80];
	ctl_bytes(a, sizeof a, largest * PAGE_BYTES);
	ctl_bytes(b, sizeof b, free_pages * PAGE_BYTES);
	snprintf(v, sizeof v, "%s of %s free", a, b);
	put(o, L_FRAG, "largest free run", v);
}

/* Internal fragmentation of the allocations made: 1 - asked / granted,
 * small and large together. */
static void internal(struct line_out *o, const Shma__StatsReply *r)
{
	uint64_t asked = r->malloc_requested_bytes + r->large_requested_bytes;
	uint64_t granted = r->malloc_granted_bytes + r->large_granted_bytes;
	char v[32];
	if (granted == 0 || asked > granted)
		snprintf(v, sizeof v, "-");
	else
		snprintf(v, sizeof v, "%.1f%%", 100.0 * (1.0 - (double)asked / (double)granted));
	put(o, L_FRAG, "internal", v);
}

#define T_ON_LINE(m, kind, src, json, label, ln, prom, help) \
	if (L_##ln == l && STATS_##kind != STATS_RETIRED && STATS_##kind != STATS_LIST) { \
		char v[160]; \
		T_##kind(v, sizeof v, r, m); \
		if (strcmp(#m, "max_memory") == 0 && r->max_memory == 0) \
			snprintf(v, sizeof v, "none"); \
		put(&o, l, label, v); \
	}

static void print_totals(FILE *f, const Shma__StatsReply *r, time_t now)
{
	enum where w = ON_LINE;
	for (enum line l = L_HEAD; l < L_NONE; l++) {
		struct line_out o = {f, 0};
		STATS_REPLY_FIELDS(T_ON_LINE)
		if (l == L_FRAG) {
			free_runs(&o, r);
			internal(&o, r);
		}
		if (o.col != 0)
			fputc('\n', f);
	}
}

/* ---- the lists: a table each, a column per field ---- */

#define T_HEAD(m, kind, src, json, label, ln, prom, help) \
	if (STATS_##kind != STATS_RETIRED) { \
		int wd = kind_width(STATS_##kind); \
		wd = (int)strlen(label) > wd ? (int)strlen(label) : wd; \
		fprintf(f, kind_left(STATS_##kind) ? " %-*s" : " %*s", wd, label); \
	}

#define T_CELL(m, kind, src, json, label, ln, prom, help) \
	if (STATS_##kind != STATS_RETIRED) { \
		char v[160]; \
		int wd = kind_width(STATS_##kind); \
		wd = (int)strlen(label) > wd ? (int)strlen(label) : wd; \
		T_##kind(v, sizeof v, r, m); \
		fprintf(f, kind_left(STATS_##kind) ? " %-*.*s" : " %*.*s", wd, wd, v); \
	}

#define T_LIST_PRINTER(fn, type, FIELDS) \
	static void fn(FILE *f, const char *title, type *const *rows, size_t n, time_t now) \
	{ \
		enum where w = IN_ROW; \
		(void)w, (void)now; \
		fprintf(f, "\n%s (%zu)\n", title, n); \
		FIELDS(T_HEAD) \
		fputc('\n', f); \
		for (size_t i = 0; i < n; i++) { \
			const type *r = rows[i]; \
			FIELDS(T_CELL) \
			fputc('\n', f); \
		} \
	}

T_LIST_PRINTER(print_arenas, Shma__ArenaStats, ARENA_STATS_FIELDS)
T_LIST_PRINTER(print_classes, Shma__ClassStats, CLASS_STATS_FIELDS)
T_LIST_PRINTER(print_clients, Shma__ClientStats, CLIENT_STATS_FIELDS)
T_LIST_PRINTER(print_former_clients, Shma__FormerClientStats, FORMER_CLIENT_STATS_FIELDS)
T_LIST_PRINTER(print_heaps, Shma__HeapStats, HEAP_STATS_FIELDS)

#define T_A_LIST(m, kind, src, json, label, ln, prom, help) T_LIST_##kind(label, m)
#define T_LIST_COUNT(label, m)
#define T_LIST_BYTES(label, m)
#define T_LIST_PAGES(label, m)
#define T_LIST_TOTAL(label, m)
#define T_LIST_TOTAL_BYTES(label, m)
#define T_LIST_TIME(label, m)
#define T_LIST_RATIO(label, m)
#define T_LIST_FLAG(label, m)
#define T_LIST_TEXT(label, m)
#define T_LIST_ID(label, m)
#define T_LIST_HIST(label, m)
#define T_LIST_NS(label, m)
#define T_LIST_RETIRED(label, m)
#define T_LIST_LIFETIME(label, m)
#define T_LIST_LIST(label, m) \
	if (!clients_only || strcmp(#m, "clients") == 0 || strcmp(#m, "former_clients") == 0) \
		print_##m(f, label, r->m, r->n_##m, now);

static void print_lists(FILE *f, const Shma__StatsReply *r, time_t now, int clients_only)
{
	STATS_REPLY_FIELDS(T_A_LIST)
}

void ctl_print_clients(FILE *f, const Shma__StatsReply *r, time_t now)
{
	print_lists(f, r, now, 1);
}

void ctl_print_heaps(FILE *f, const Shma__StatsReply *r, time_t now)
{
	const struct stats_field heaps[] = {STATS_REPLY_FIELDS(STATS_FIELD_ENTRY)};
	for (size_t i = 0; i < sizeof heaps / sizeof *heaps; i++)
		if (strcmp(heaps[i].member, "heaps") == 0)
			print_heaps(f, heaps[i].label, r->heaps, r->n_heaps, now);
}

void ctl_print_stats(FILE *f, const Shma__StatsReply *r, time_t now)
{
	print_totals(f, r, now);
	print_lists(f, r, now, 0);
}
