/* SPDX-License-Identifier: MIT */
/*
 * Stats as JSON: shma_stats_json() asks the daemon for its stats and writes
 * them out, as the call layer hands them over value by value (call.h,
 * call_stats.c: nothing here sees a protobuf-c type).  The result is the
 * caller's, freed with free(3), so this is the one place of the library that
 * uses the process's malloc (through open_memstream); shma_malloc never
 * reaches it.  The fields, their keys and
 * their order are proto/stats_fields.h's: nothing here names one.
 */
#include "config.h"

#include "call.h"
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

/* The comma before all but the first member of the object open. */
static void key(struct stats_json *j, const char *k)
{
	fprintf(j->f, "%s\"%s\":", j->n[j->depth]++ ? "," : "", k);
}

static void hist(FILE *f, const uint64_t *v, size_t n)
{
	fputc('[', f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%llu", i ? "," : "", (unsigned long long)v[i]);
	fputc(']', f);
}

/* One value, by its kind (proto/stats_fields.h). */
static void value(struct stats_json *j, const struct stats_value *v)
{
	key(j, v->key);
	switch (v->kind) {
	case STATS_TIME:
		fprintf(j->f, "%lld", (long long)v->i);
		break;
	case STATS_RATIO:
		fprintf(j->f, "%.4f", v->d);
		break;
	case STATS_FLAG:
		fputs(v->u ? "true" : "false", j->f);
		break;
	case STATS_TEXT:
		json_string(j->f, v->s);
		break;
	case STATS_HIST:
		hist(j->f, v->hist, v->n);
		break;
	case STATS_LIFETIME:
		json_string(j->f, stats_lifetime_name(v->u));
		break;
	default:
		fprintf(j->f, "%llu", (unsigned long long)v->u);
		break;
	}
}

void stats_json_init(struct stats_json *j, FILE *f)
{
	*j = (struct stats_json){.f = f};
}

/* Per client the allocation counters are "mallocs" and "waits", only the
 * totals "malloc_calls" and "malloc_waits", so a reader that sums every
 * occurrence of a key is right. */
void stats_json_sink(void *arg, const struct stats_value *v)
{
	struct stats_json *j = arg;
	switch (v->event) {
	case STATS_EV_VALUE:
		value(j, v);
		break;
	case STATS_EV_OBJECT: /* the reply, or a row of the list open */
		if (j->depth > 0)
			fputs(j->rows++ ? ",{" : "{", j->f);
		else
			fputc('{', j->f);
		if (j->depth + 1 < sizeof j->n / sizeof *j->n)
			j->n[++j->depth] = 0;
		break;
	case STATS_EV_OBJECT_END:
		j->depth--;
		fputs(j->depth == 0 ? "}\n" : "}", j->f);
		break;
	case STATS_EV_LIST:
		key(j, v->key);
		fputc('[', j->f);
		j->rows = 0;
		break;
	case STATS_EV_LIST_END:
		fputc(']', j->f);
		break;
	}
}

SHMA_EXPORT int shma_stats_json(char **json)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = -ENOMEM;
	FILE *f = open_memstream(&buf, &len);
	if (f != NULL) {
		struct stats_json j;
		stats_json_init(&j, f);
		conn_lock();
		rc = call_stats(stats_json_sink, &j);
		conn_unlock();
		if (fclose(f) != 0 && rc == 0)
			rc = -ENOMEM;
	}
	if (rc != 0) {
		free(buf);
		return rc;
	}
	*json = buf;
	return 0;
}
