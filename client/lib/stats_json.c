/* SPDX-License-Identifier: MIT */
/*
 * Stats as JSON: shma_stats_json() asks the daemon for its StatsReply and
 * writes it out.  The result is the caller's, freed with free(3), so this is
 * the one place of the library that uses the process's malloc (through
 * open_memstream); shma_malloc never reaches it.  The fields, their keys and
 * their order are proto/stats_fields.h's: nothing here names one.
 */
#include "config.h"

#include "client.h"
#include "shmalloc.h"
#include "stats_fields.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* One JSON object or array being written: the comma before all but its
 * first member. */
struct jw {
	FILE *f;
	unsigned n;
};

static void key(struct jw *w, const char *k)
{
	fprintf(w->f, "%s\"%s\":", w->n++ ? "," : "", k);
}

static void j_uint(struct jw *w, const char *k, unsigned long long v)
{
	key(w, k);
	fprintf(w->f, "%llu", v);
}

static void j_int(struct jw *w, const char *k, long long v)
{
	key(w, k);
	fprintf(w->f, "%lld", v);
}

static void j_ratio(struct jw *w, const char *k, double v)
{
	key(w, k);
	fprintf(w->f, "%.4f", v);
}

static void j_flag(struct jw *w, const char *k, int v)
{
	key(w, k);
	fputs(v ? "true" : "false", w->f);
}

static void j_text(struct jw *w, const char *k, const char *v)
{
	key(w, k);
	json_string(w->f, v);
}

static void j_hist(struct jw *w, const char *k, const uint64_t *v, size_t n)
{
	key(w, k);
	fputc('[', w->f);
	for (size_t i = 0; i < n; i++)
		fprintf(w->f, "%s%llu", i ? "," : "", (unsigned long long)v[i]);
	fputc(']', w->f);
}

/* A field of kind K, member m of *r, under key k (proto/stats_fields.h). */
#define J_COUNT(w, k, r, m) j_uint(w, k, (unsigned long long)(r)->m)
#define J_BYTES J_COUNT
#define J_PAGES J_COUNT
#define J_TOTAL J_COUNT
#define J_TOTAL_BYTES J_COUNT
#define J_NS J_COUNT
#define J_ID J_COUNT
#define J_TIME(w, k, r, m) j_int(w, k, (long long)(r)->m)
#define J_RATIO(w, k, r, m) j_ratio(w, k, (r)->m)
#define J_FLAG(w, k, r, m) j_flag(w, k, (r)->m != 0)
#define J_TEXT(w, k, r, m) j_text(w, k, (r)->m)
#define J_HIST(w, k, r, m) j_hist(w, k, (r)->m, (r)->n_##m)
#define J_LIST(w, k, r, m) write_##m(w, k, (r)->m, (r)->n_##m)
#define J_RETIRED(w, k, r, m) ((void)0)
#define J_FIELD(m, kind, src, json, label, line, prom, help) J_##kind(&o, json, r, m);

/* One array of a list field, each element an object of its fields. */
#define J_LIST_WRITER(fn, type, FIELDS) \
	static void fn(struct jw *w, const char *k, type *const *rows, size_t n) \
	{ \
		key(w, k); \
		fputc('[', w->f); \
		for (size_t i = 0; i < n; i++) { \
			const type *r = rows[i]; \
			struct jw o = {w->f, 0}; \
			fputs(i ? ",{" : "{", w->f); \
			FIELDS(J_FIELD) \
			fputc('}', w->f); \
		} \
		fputc(']', w->f); \
	}

J_LIST_WRITER(write_arenas, Shma__ArenaStats, ARENA_STATS_FIELDS)
J_LIST_WRITER(write_classes, Shma__ClassStats, CLASS_STATS_FIELDS)
J_LIST_WRITER(write_clients, Shma__ClientStats, CLIENT_STATS_FIELDS)
J_LIST_WRITER(write_former_clients, Shma__FormerClientStats, FORMER_CLIENT_STATS_FIELDS)

/* Per client the allocation counters are "mallocs" and "waits", only the
 * totals "malloc_calls" and "malloc_waits", so a reader that sums every
 * occurrence of a key is right. */
void stats_json_write(FILE *f, const Shma__StatsReply *r)
{
	struct jw o = {f, 0};
	fputc('{', f);
	STATS_REPLY_FIELDS(J_FIELD)
	fputs("}\n", f);
}

SHMA_EXPORT int shma_stats_json(char **json)
{
	char *buf = NULL;
	size_t len = 0;
	Shma__Response *resp;
	conn_lock();
	int rc = stats_fetch(&resp);
	if (rc == 0) {
		FILE *f = open_memstream(&buf, &len);
		if (f == NULL)
			rc = -ENOMEM;
		else {
			stats_json_write(f, resp->stats);
			if (fclose(f) != 0)
				rc = -ENOMEM;
		}
	}
	if (resp)
		conn_done();
	conn_unlock();
	if (rc != 0) {
		free(buf);
		return rc;
	}
	*json = buf;
	return 0;
}
