/* SPDX-License-Identifier: MIT */
/*
 * End to end, shmallocctl: the real binary against a real daemon, after a
 * known workload held by a live client process.  The numbers must add up
 * (in use, per class, per client; cached at least what a client caches),
 * --json must parse, every --prometheus line must match the text exposition
 * format, every field of the StatsReply schema must be in every view, and
 * each failure must exit with the status doc/shmallocctl.1 gives it.
 */
#include "e2e.h"
#include "frame.h"
#include "raw.h"
#include "shmalloc.h"
#include "shmalloc.pb-c.h"
#include "sizeclass.h"
#include "stats_fields.h"
#include "wire.h"

#include <check.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SHMALLOCCTL_PATH
#error "SHMALLOCCTL_PATH must name the shmallocctl under test"
#endif

#define OUT_CAP (256 * 1024)
#define SMALL_N 20 /* objects of each of two small classes the workload holds */
#define SMALL_A 100
#define SMALL_B 3000
#define LARGE_SIZE (320 * 1024) /* a multiple of the page: granted as asked */

static char out[OUT_CAP];

/* Runs shmallocctl with args (shell words) on socket sock; its stdout and
 * stderr go to out.  Returns its exit status. */
static int ctl_on(const char *sock, const char *args)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s --socket %s %s 2>&1", SHMALLOCCTL_PATH, sock, args);
	FILE *p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	size_t n = fread(out, 1, OUT_CAP - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The same on e2e's daemon. */
static int ctl(const char *args)
{
	return ctl_on(e2e.socket, args);
}

/* The number after "key": in json, searching from from. */
static unsigned long long json_num(const char *from, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(from, pat);
	ck_assert_msg(p != NULL, "no %s in %s", key, from);
	return strtoull(p + strlen(pat), NULL, 10);
}

/* ---- the workload: a child that allocates, says so, and holds ---- */

static int ready[2], go[2];

static int hold_blocks(void *arg)
{
	(void)arg;
	void *a[SMALL_N], *b[SMALL_N];
	for (int i = 0; i < SMALL_N; i++) {
		a[i] = shma_malloc(SMALL_A);
		b[i] = shma_malloc(SMALL_B);
		if (a[i] == NULL || b[i] == NULL)
			return 1;
	}
	void *big = shma_malloc(LARGE_SIZE);
	if (big == NULL || write(ready[1], "r", 1) != 1)
		return 2;
	char c;
	if (read(go[0], &c, 1) != 1)
		return 3;
	for (int i = 0; i < SMALL_N; i++) {
		shma_free(a[i]);
		shma_free(b[i]);
	}
	shma_free(big);
	return 0;
}

/* A second workload: CACHED_N objects of each of the two classes, freed
 * and so sitting in its thread cache (too few for it to flush any: a bin of
 * 3 KiB objects holds 20 at most, two batches of 32 KiB, and a first batch
 * leaves at most 10 - CACHED_N in it). */
#define CACHED_N 8

static int cache_blocks(void *arg)
{
	(void)arg;
	void *a[CACHED_N], *b[CACHED_N];
	for (int i = 0; i < CACHED_N; i++) {
		a[i] = shma_malloc(SMALL_A);
		b[i] = shma_malloc(SMALL_B);
		if (a[i] == NULL || b[i] == NULL)
			return 1;
	}
	for (int i = 0; i < CACHED_N; i++) {
		shma_free(a[i]);
		shma_free(b[i]);
	}
	char c;
	if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
		return 2;
	return 0;
}

/* A third: a region besides, on a raw connection of its own (as a
 * shmalloc-run process has), with REGION_N objects and a large block, then
 * the first workload's blocks; its region ends when it exits. */
#define REGION_N 30
#define REGION_SIZE 64

static int hold_region(void *arg)
{
	int fd = raw_region_peer(e2e.socket);
	if (fd < 0)
		return 11;
	uint64_t refs[REGION_N];
	for (size_t n = 0; n < REGION_N;) {
		size_t got = raw_refill_refs(fd, sizeclass_of(REGION_SIZE),
					     (uint32_t)(REGION_N - n), refs + n);
		if (got == 0)
			return 13;
		n += got;
	}
	Shma__Response *r = raw_alloc_large(fd, LARGE_SIZE);
	if (r->body_case != SHMA__RESPONSE__BODY_ALLOC_LARGE)
		return 14;
	shma__response__free_unpacked(r, NULL);
	return hold_blocks(arg);
}

/* Starts workload fn in a child and waits until it says it is ready. */
static pid_t start_workload_of(int (*fn)(void *))
{
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid_t pid = e2e_fork(fn, NULL);
	char c;
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	return pid;
}

static pid_t start_workload(void)
{
	return start_workload_of(hold_blocks);
}

static void stop_workload(pid_t pid)
{
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(e2e_wait(pid), 0);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
}

/* What the workload's own pointers hold, at class size. */
static unsigned long long workload_bytes(void)
{
	return SMALL_N * (sizeclass_size(sizeclass_of(SMALL_A)) +
			  sizeclass_size(sizeclass_of(SMALL_B))) + LARGE_SIZE;
}

/* The client object of pid in the JSON. */
static const char *json_client(pid_t pid)
{
	char pat[48];
	snprintf(pat, sizeof pat, "\"pid\":%d,", (int)pid);
	const char *c = strstr(strstr(out, "\"clients\":["), pat);
	ck_assert_msg(c != NULL, "client %d not listed: %s", (int)pid, out);
	return c;
}

/* Sum of objects_out * size over the classes, and the workload's classes'
 * objects_out. */
static unsigned long long json_classes(unsigned long long *out_a, unsigned long long *out_b)
{
	unsigned long long sum = 0;
	const char *end = strstr(out, "\"clients\":[");
	for (const char *p = strstr(out, "{\"class\":"); p && p < end;
	     p = strstr(p + 1, "{\"class\":")) {
		unsigned long long cls = json_num(p, "class"), n = json_num(p, "objects_out");
		sum += n * json_num(p, "size");
		if (cls == sizeclass_of(SMALL_A))
			*out_a = n;
		if (cls == sizeclass_of(SMALL_B))
			*out_b = n;
	}
	return sum;
}

START_TEST(stats_add_up)
{
	pid_t pid = start_workload();
	ck_assert_int_eq(ctl("stats --json"), 0);
	unsigned long long in_use = json_num(out, "in_use_bytes");
	unsigned long long cached = json_num(out, "cached_bytes");
	unsigned long long a = 0, b = 0, classes = json_classes(&a, &b);
	ck_assert_uint_eq(json_num(out, "large_count"), 1);
	ck_assert_uint_eq(json_num(out, "large_bytes"), LARGE_SIZE);
	ck_assert_uint_eq(classes + LARGE_SIZE, in_use);
	ck_assert_uint_ge(a, SMALL_N);
	ck_assert_uint_ge(b, SMALL_N);
	/* Everything out is the workload's: its pointers, its caches, and the
	 * refills it asked for ahead and has not collected yet (which neither
	 * side counts as cached: the daemon cannot know they were not read). */
	const char *c = json_client(pid);
	ck_assert_uint_eq(json_num(c, "bytes_held"), in_use);
	ck_assert_uint_eq(json_num(c, "cached_bytes"), cached);
	ck_assert_uint_ge(in_use - cached, workload_bytes());
	ck_assert_uint_ge(json_num(c, "requests"), 3);
	stop_workload(pid);
}
END_TEST

/* What a client knows it has cached is a floor for what the daemon reports
 * it caches, for the client and in the totals. */
START_TEST(stats_count_at_least_what_a_client_caches)
{
	pid_t pid = start_workload_of(cache_blocks);
	unsigned long long floor = CACHED_N * (sizeclass_size(sizeclass_of(SMALL_A)) +
					       sizeclass_size(sizeclass_of(SMALL_B)));
	ck_assert_int_eq(ctl("stats --json"), 0);
	const char *c = json_client(pid);
	unsigned long long mine = json_num(c, "cached_bytes");
	ck_assert_msg(mine >= floor, "client caches %llu bytes, stats say %llu", floor, mine);
	ck_assert_uint_le(mine, json_num(c, "bytes_held"));
	ck_assert_uint_ge(json_num(out, "cached_bytes"), mine);
	ck_assert_uint_le(json_num(out, "cached_bytes"), json_num(out, "in_use_bytes"));
	stop_workload(pid);
}
END_TEST

START_TEST(table_and_clients)
{
	pid_t pid = start_workload();
	char pidtext[32];
	snprintf(pidtext, sizeof pidtext, " %d ", (int)pid);
	ck_assert_int_eq(ctl("stats"), 0);
	ck_assert_ptr_nonnull(strstr(out, "in use"));
	ck_assert_ptr_nonnull(strstr(out, "external"));
	ck_assert_ptr_nonnull(strstr(out, "p99"));
	ck_assert_ptr_nonnull(strstr(out, "large      blocks 1   bytes 320.0 KiB"));
	ck_assert_ptr_nonnull(strstr(out, pidtext));
	ck_assert_int_eq(ctl("clients"), 0);
	ck_assert_ptr_nonnull(strstr(out, pidtext));
	ck_assert_int_eq(ctl("stats --watch 0.05 --count 3"), 0);
	ck_assert_int_eq(ctl("roots"), 0);
	ck_assert_ptr_nonnull(strstr(out, "name"));
	stop_workload(pid);
}
END_TEST

START_TEST(json_parses)
{
	pid_t pid = start_workload();
	ck_assert_int_eq(ctl("stats --json | python3 -c 'import json,sys; json.load(sys.stdin)' "
			     "&& echo parsed"), 0);
	ck_assert_str_eq(out, "parsed\n");
	stop_workload(pid);
}
END_TEST

static regex_t re_comment, re_sample;

static void compile_prometheus(void)
{
	static const char *const comment =
		"^# (HELP shmalloc_[a-zA-Z0-9_]+ [^\n]+|"
		"TYPE shmalloc_[a-zA-Z0-9_]+ (counter|gauge|histogram|summary|untyped))$";
	static const char *const sample =
		"^shmalloc_[a-zA-Z_:][a-zA-Z0-9_:]*"
		"(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
		"(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\")*\\})?"
		" ([-+]?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|[-+]Inf|NaN)$";
	ck_assert_int_eq(regcomp(&re_comment, comment, REG_EXTENDED | REG_NOSUB), 0);
	ck_assert_int_eq(regcomp(&re_sample, sample, REG_EXTENDED | REG_NOSUB), 0);
}

/* A counter's name ends in _total (the TYPE line says which are counters). */
static void check_counter_name(const char *line)
{
	if (strncmp(line, "# TYPE ", 7) != 0 || strstr(line, " counter") == NULL)
		return;
	const char *end = strchr(line + 7, ' ');
	ck_assert_msg(end - (line + 7) > 6 && strncmp(end - 6, "_total", 6) == 0,
		      "counter without _total: %s", line);
}

START_TEST(prometheus_format)
{
	pid_t pid = start_workload();
	ck_assert_int_eq(ctl("stats --prometheus"), 0);
	compile_prometheus();
	unsigned samples = 0;
	for (char *save, *line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		int ok = line[0] == '#' ? regexec(&re_comment, line, 0, NULL, 0) == 0
					: regexec(&re_sample, line, 0, NULL, 0) == 0;
		ck_assert_msg(ok, "not in the exposition format: '%s'", line);
		check_counter_name(line);
		samples += line[0] != '#';
	}
	ck_assert_uint_gt(samples, 20);
	regfree(&re_comment);
	regfree(&re_sample);
	stop_workload(pid);
}
END_TEST

START_TEST(prometheus_labels)
{
	pid_t pid = start_workload();
	char want[96];
	ck_assert_int_eq(ctl("stats --prometheus"), 0);
	snprintf(want, sizeof want, "shmalloc_client_held_bytes{pid=\"%d\",uid=\"", (int)pid);
	ck_assert_ptr_nonnull(strstr(out, want));
	snprintf(want, sizeof want, "shmalloc_class_objects_out{class=\"%u\"",
		 sizeclass_of(SMALL_A));
	ck_assert_ptr_nonnull(strstr(out, want));
	ck_assert_ptr_nonnull(strstr(out, "shmalloc_arena_free_bytes{arena=\"0\"}"));
	ck_assert_ptr_nonnull(strstr(out, "shmalloc_large_blocks 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "le=\"+Inf\"}"));
	stop_workload(pid);
}
END_TEST


/* ---- every field in every view ---- */

static const struct stats_field reply_fields[] = {STATS_REPLY_FIELDS(STATS_FIELD_ENTRY)};
static const struct stats_field arena_fields[] = {ARENA_STATS_FIELDS(STATS_FIELD_ENTRY)};
static const struct stats_field class_fields[] = {CLASS_STATS_FIELDS(STATS_FIELD_ENTRY)};
static const struct stats_field client_fields[] = {CLIENT_STATS_FIELDS(STATS_FIELD_ENTRY)};
static const struct stats_field former_fields[] = {
	FORMER_CLIENT_STATS_FIELDS(STATS_FIELD_ENTRY)};
static const struct stats_field heap_fields[] = {HEAP_STATS_FIELDS(STATS_FIELD_ENTRY)};

/* A message of the schema, its list in proto/stats_fields.h, and (for the
 * lists of StatsReply) the member of StatsReply that holds its rows. */
struct scope {
	const ProtobufCMessageDescriptor *desc;
	const struct stats_field *fields;
	size_t n;
	const char *list; /* NULL: StatsReply itself */
};

static const struct scope scopes[] = {
	{&shma__stats_reply__descriptor, reply_fields, sizeof reply_fields / sizeof *reply_fields,
	 NULL},
	{&shma__arena_stats__descriptor, arena_fields, sizeof arena_fields / sizeof *arena_fields,
	 "arenas"},
	{&shma__class_stats__descriptor, class_fields, sizeof class_fields / sizeof *class_fields,
	 "classes"},
	{&shma__client_stats__descriptor, client_fields,
	 sizeof client_fields / sizeof *client_fields, "clients"},
	{&shma__former_client_stats__descriptor, former_fields,
	 sizeof former_fields / sizeof *former_fields, "former_clients"},
	{&shma__heap_stats__descriptor, heap_fields, sizeof heap_fields / sizeof *heap_fields,
	 "heaps"},
};

/* The only fields a view may leave out, and why (the list's help says so
 * too): a per-connection id is no Prometheus label (series would churn),
 * and requested_bytes is never set. */
static int may_skip_prometheus(const struct scope *sc, const struct stats_field *f)
{
	return f->kind == STATS_RETIRED ||
	       (sc->list != NULL && strstr(sc->list, "clients") != NULL &&
		strcmp(f->member, "client_id") == 0);
}

static const struct stats_field *field_of(const struct scope *sc, const char *member)
{
	for (size_t i = 0; i < sc->n; i++)
		if (strcmp(sc->fields[i].member, member) == 0)
			return &sc->fields[i];
	return NULL;
}

/* Each scope's list names every field of its message, and nothing else;
 * only requested_bytes is retired. */
static void check_lists_match_schema(void)
{
	for (size_t s = 0; s < sizeof scopes / sizeof *scopes; s++) {
		const struct scope *sc = &scopes[s];
		for (unsigned i = 0; i < sc->desc->n_fields; i++)
			ck_assert_msg(field_of(sc, sc->desc->fields[i].name) != NULL,
				      "%s.%s is not in proto/stats_fields.h", sc->desc->name,
				      sc->desc->fields[i].name);
		ck_assert_msg(sc->n == sc->desc->n_fields, "%s: %zu fields listed, %u in the schema",
			      sc->desc->name, sc->n, sc->desc->n_fields);
		for (size_t i = 0; i < sc->n; i++)
			ck_assert_msg(sc->fields[i].kind != STATS_RETIRED ||
					      strcmp(sc->fields[i].member, "requested_bytes") == 0,
				      "%s.%s is retired", sc->desc->name, sc->fields[i].member);
	}
}

/* The text of JSON array "list":[...] (its rows), or for list NULL the
 * JSON with every list's rows blanked out (so that only top-level keys
 * are left).  Returns a malloc'd copy. */
static char *json_part(const char *json, const char *list)
{
	char pat[64];
	if (list == NULL) {
		char *top = strdup(json);
		for (char *p = strstr(top, "[{"); p != NULL; p = strstr(p, "[{")) {
			char *end = strstr(p, "}]");
			ck_assert_ptr_nonnull(end);
			memset(p + 1, ' ', (size_t)(end - p));
			p = end + 1;
		}
		return top;
	}
	snprintf(pat, sizeof pat, "\"%s\":[{", list);
	const char *p = strstr(json, pat);
	ck_assert_msg(p != NULL, "no rows of %s in the JSON: %s", list, json);
	const char *end = strstr(p, "}]");
	ck_assert_ptr_nonnull(end);
	return strndup(p, (size_t)(end - p + 2));
}

static void check_json(const char *json, const char *what)
{
	for (size_t s = 0; s < sizeof scopes / sizeof *scopes; s++) {
		const struct scope *sc = &scopes[s];
		char *part = json_part(json, sc->list);
		for (size_t i = 0; i < sc->n; i++) {
			const struct stats_field *f = &sc->fields[i];
			char key[96];
			snprintf(key, sizeof key, "\"%s\":", f->json);
			if (f->kind == STATS_RETIRED)
				ck_assert_msg(strstr(part, key) == NULL, "%s: retired %s shown", what,
					      f->member);
			else
				ck_assert_msg(strstr(part, key) != NULL, "%s: %s.%s (%s) missing",
					      what, sc->desc->name, f->member, key);
		}
		free(part);
	}
}

/* The table: a totals field's "label " on the lines above the lists; a
 * list's title, then each of its fields' labels in the column heads. */
static void check_table(const char *table, int clients_only)
{
	const char *lists = clients_only ? table : strstr(table, "\n\n");
	ck_assert_ptr_nonnull(lists);
	for (size_t s = 0; s < sizeof scopes / sizeof *scopes; s++) {
		const struct scope *sc = &scopes[s];
		if (sc->list == NULL) {
			if (clients_only)
				continue;
			char *totals = strndup(table, (size_t)(lists - table));
			for (size_t i = 0; i < sc->n; i++) {
				const struct stats_field *f = &sc->fields[i];
				char word[96];
				snprintf(word, sizeof word, "%s ", f->label);
				if (f->kind == STATS_LIST || f->kind == STATS_RETIRED)
					continue;
				ck_assert_msg(strstr(totals, word) != NULL, "table: %s ('%s') missing",
					      f->member, f->label);
			}
			free(totals);
			continue;
		}
		if (clients_only && strstr(sc->list, "clients") == NULL)
			continue;
		const struct stats_field *lf = field_of(&scopes[0], sc->list);
		ck_assert_ptr_nonnull(lf);
		char title[96];
		snprintf(title, sizeof title, "\n%s (", lf->label);
		const char *t = strstr(lists, title);
		ck_assert_msg(t != NULL, "table: no list '%s' in %s", lf->label, table);
		const char *head = strchr(t + 1, '\n') + 1, *eol = strchr(head, '\n');
		char *heads = strndup(head, (size_t)(eol - head));
		for (size_t i = 0; i < sc->n; i++) {
			const struct stats_field *f = &sc->fields[i];
			if (f->kind != STATS_RETIRED)
				ck_assert_msg(strstr(heads, f->label) != NULL,
					      "table: column %s ('%s') of %s missing", f->member, f->label,
					      lf->label);
		}
		free(heads);
	}
}

static void check_prometheus(const char *text)
{
	for (size_t s = 0; s < sizeof scopes / sizeof *scopes; s++) {
		const struct scope *sc = &scopes[s];
		for (size_t i = 0; i < sc->n; i++) {
			const struct stats_field *f = &sc->fields[i];
			char want[128];
			if (f->prom == NULL) {
				ck_assert_msg(may_skip_prometheus(sc, f), "prometheus: %s.%s has no name",
					      sc->desc->name, f->member);
				continue;
			}
			if (f->kind == STATS_ID || f->kind == STATS_TEXT || f->kind == STATS_LIFETIME)
				snprintf(want, sizeof want, "%s=\"", f->prom);
			else if (f->kind == STATS_NS)
				snprintf(want, sizeof want, "\nshmalloc_%s ", f->prom);
			else
				snprintf(want, sizeof want, "# TYPE shmalloc_%s ", f->prom);
			ck_assert_msg(strstr(text, want) != NULL, "prometheus: %s.%s ('%s') missing",
				      sc->desc->name, f->member, want);
		}
	}
}

/* A client that takes blocks and exits without freeing them: a former
 * client, with a small object and a large block still out. */
static int leave_blocks(void *arg)
{
	(void)arg;
	return shma_malloc(SMALL_A) != NULL && shma_malloc(LARGE_SIZE) != NULL ? 0 : 1;
}

/* The daemon has seen the leaver's connection end: its former client is
 * listed (polling the state, bounded: the end is the daemon's next read). */
static void wait_former(pid_t pid)
{
	char want[48];
	snprintf(want, sizeof want, "\"pid\":%d,", (int)pid);
	for (int i = 0; i < 2000; i++) {
		ck_assert_int_eq(ctl("stats --json"), 0);
		const char *f = strstr(out, "\"former_clients\":[{");
		if (f != NULL && strstr(f, want) != NULL)
			return;
	}
	ck_abort_msg("client %d never listed as gone: %s", (int)pid, out);
}

/* shma_stats_json() itself, in a child connected to the daemon. */
static int library_json(void *arg)
{
	char *json;
	FILE *f = fopen(arg, "w");
	if (f == NULL || shma_stats_json(&json) != 0)
		return 1;
	fputs(json, f);
	free(json);
	return fclose(f) != 0;
}

START_TEST(stats_fields_in_every_view)
{
	check_lists_match_schema();
	pid_t leaver = e2e_fork(leave_blocks, NULL);
	ck_assert_int_eq(e2e_wait(leaver), 0);
	wait_former(leaver);
	pid_t pid = start_workload_of(hold_region); /* a heap row: its region */
	char path[512];
	snprintf(path, sizeof path, "%s/stats.json", e2e.dir);
	ck_assert_int_eq(e2e_wait(e2e_fork(library_json, path)), 0);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(out, 1, OUT_CAP - 1, f);
	out[n] = '\0';
	fclose(f);
	unlink(path);
	check_json(out, "shma_stats_json");
	ck_assert_int_eq(ctl("stats --json"), 0);
	check_json(out, "shmallocctl stats --json");
	ck_assert_int_eq(ctl("stats"), 0);
	check_table(out, 0);
	ck_assert_int_eq(ctl("clients"), 0);
	check_table(out, 1);
	ck_assert_int_eq(ctl("stats --prometheus"), 0);
	check_prometheus(out);
	stop_workload(pid);
}
END_TEST


/* ---- heaps ---- */

/* A shmalloc-run process's region is a heap of process lifetime in
 * `shmallocctl heaps` (table and --json): named run:<pid>, its blocks and
 * bytes what the process took in it, its creator the process; gone with
 * the process. */
START_TEST(heaps_lists_regions)
{
	pid_t pid = start_workload_of(hold_region);
	char name[48];
	snprintf(name, sizeof name, "run:%d", (int)pid);
	ck_assert_int_eq(ctl("heaps"), 0);
	ck_assert_msg(strstr(out, "heaps (1)\n") != NULL, "%s", out);
	const char *row = strstr(out, name);
	ck_assert_msg(row != NULL && strstr(row, "process") != NULL, "%s", out);
	for (const char *const *h = (const char *const[]){"name", "lifetime", "bytes", "blocks",
							   "processes", NULL};
	     *h != NULL; h++)
		ck_assert_msg(strstr(out, *h) != NULL, "no column %s: %s", *h, out);
	ck_assert_int_eq(ctl("heaps --json"), 0);
	ck_assert_msg(strncmp(out, "{\"heaps\":[{", 10) == 0, "%s", out);
	char want[64];
	snprintf(want, sizeof want, "\"name\":\"%s\"", name);
	row = strstr(out, want);
	ck_assert_msg(row != NULL, "%s", out);
	ck_assert_ptr_nonnull(strstr(row, "\"lifetime\":\"process\""));
	ck_assert_uint_eq(json_num(row, "blocks"), REGION_N + 1);
	ck_assert_uint_eq(json_num(row, "bytes"),
			  REGION_N * sizeclass_size(sizeclass_of(REGION_SIZE)) + LARGE_SIZE);
	ck_assert_uint_eq(json_num(row, "large_count"), 1);
	ck_assert_uint_eq(json_num(row, "processes"), 1);
	ck_assert_uint_eq(json_num(row, "creator_pid"), (unsigned long long)pid);
	ck_assert_int_eq(ctl("heaps --prometheus"), WIRE_EXIT_USAGE);
	stop_workload(pid);
	int gone = 0;
	for (int i = 0; i < 2000 && !gone; i++) {
		ck_assert_int_eq(ctl("heaps --json"), 0);
		gone = strstr(out, want) == NULL;
	}
	ck_assert_msg(gone, "the region of %d outlived it: %s", (int)pid, out);
}
END_TEST

/* Many regions at once (a shell pipeline under shmalloc-run has dozens):
 * every one is a row, and the stats are still answered (planted: a
 * scratch block per row's name, which ran the daemon's reply scratch out
 * of blocks past a few rows -- an empty reply, EPROTO in the library). */
#define MANY_REGIONS 24

static int hold_many_regions(void *arg)
{
	(void)arg;
	uint64_t ref;
	for (int i = 0; i < MANY_REGIONS; i++) {
		int fd = raw_region_peer(e2e.socket);
		if (fd < 0 || raw_refill_refs(fd, sizeclass_of(REGION_SIZE), 1, &ref) != 1)
			return 21;
	}
	char c;
	if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
		return 22;
	return 0;
}

START_TEST(heaps_lists_many_regions)
{
	pid_t pid = start_workload_of(hold_many_regions);
	ck_assert_int_eq(ctl("heaps --json"), 0);
	char want[48];
	snprintf(want, sizeof want, "\"name\":\"run:%d\"", (int)pid);
	int rows = 0;
	for (const char *p = strstr(out, want); p != NULL; p = strstr(p + 1, want))
		rows++;
	ck_assert_msg(rows == MANY_REGIONS, "%d rows of %d: %s", rows, MANY_REGIONS, out);
	ck_assert_int_eq(ctl("stats --json"), 0);
	stop_workload(pid);
}
END_TEST

/* A named heap is a row of `shmallocctl heaps`, its numbers the registry's
 * (what shma_heap_in_use() says), and goes when destroyed. */
START_TEST(heaps_lists_named_heaps)
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	shma_heap_opts_t opts = {SHMA_HEAP_PROCESS, 1 << 20};
	shma_heap_t *h;
	ck_assert_int_eq(shma_heap_create("ctl.named", &opts, &h), 0);
	for (int i = 0; i < 10; i++)
		ck_assert_ptr_nonnull(shma_heap_malloc(h, 1000));
	size_t bytes, blocks;
	ck_assert_int_eq(shma_heap_in_use(h, &bytes, &blocks), 0);
	ck_assert_int_eq(ctl("heaps --json"), 0);
	const char *row = strstr(out, "\"name\":\"ctl.named\"");
	ck_assert_msg(row != NULL, "%s", out);
	ck_assert_uint_eq(json_num(row, "id"), shma_heap_id(h));
	ck_assert_ptr_nonnull(strstr(row, "\"lifetime\":\"process\""));
	ck_assert_uint_eq(json_num(row, "max_bytes"), 1 << 20);
	ck_assert_uint_eq(json_num(row, "bytes"), bytes);
	ck_assert_uint_eq(json_num(row, "blocks"), blocks);
	ck_assert_uint_ge(blocks, 10);
	ck_assert_uint_eq(json_num(row, "processes"), 1);
	ck_assert_uint_eq(json_num(row, "creator_pid"), (unsigned long long)getpid());
	ck_assert_int_eq(ctl("heaps"), 0);
	ck_assert_msg(strstr(out, "ctl.named") != NULL, "%s", out);
	ck_assert_int_eq(ctl("stats --prometheus"), 0);
	ck_assert_msg(strstr(out, "shmalloc_heap_bytes{heap=\"ctl.named\"") != NULL, "%s", out);
	ck_assert_int_eq(shma_heap_destroy(h), 0);
	ck_assert_int_eq(ctl("heaps --json"), 0);
	ck_assert_msg(strstr(out, "ctl.named") == NULL, "%s", out);
	shma_disconnect();
}
END_TEST

/* ---- memory held for clients that are gone ---- */

static int leave_published(void *arg)
{
	(void)arg;
	for (int i = 0; i < SMALL_N; i++)
		if (shma_malloc(SMALL_A) == NULL)
			return 1;
	void *big = shma_malloc(LARGE_SIZE);
	/* Gone without shma_disconnect, as a program that returns from main:
	 * its caches still hold the rest of its refills. */
	_exit(big != NULL && shma_publish("left", shma_ref(big)) == 0 ? 0 : 2);
}

static int free_published(void *arg)
{
	(void)arg;
	shma_ref_t ref;
	if (shma_lookup("left", &ref) != 0 || shma_unpublish("left") != 0)
		return 1;
	shma_free(shma_ptr(ref));
	return 0;
}

/* The JSON row of former client pid once it is settled (its caches taken
 * back: at once if its process was gone when its connection ended, else at
 * the next sweep), polling the state. */
static const char *settled_former(pid_t pid)
{
	char want[48];
	snprintf(want, sizeof want, "\"pid\":%d,", (int)pid);
	for (int i = 0; i < 5000; i++) {
		ck_assert_int_eq(ctl("stats --json"), 0);
		const char *f = strstr(out, "\"former_clients\":[{");
		const char *row = f ? strstr(f, want) : NULL;
		if (row != NULL && strstr(row, "\"unsettled\":false") != NULL)
			return row;
	}
	ck_abort_msg("client %d never settled: %s", (int)pid, out);
	return NULL;
}

/* A library client that exits holding 20 small objects and a large block:
 * stats show them as its own (pid, uid, name), its caches not counted, in
 * the JSON, `shmallocctl clients` and Prometheus; when another client frees
 * its large block, that comes off. */
START_TEST(former_client_holds_what_it_left)
{
	unsigned long long small = SMALL_N * sizeclass_size(sizeclass_of(SMALL_A));
	pid_t pid = e2e_fork(leave_published, NULL);
	ck_assert_int_eq(e2e_wait(pid), 0);
	const char *row = settled_former(pid);
	ck_assert_uint_eq(json_num(row, "uid"), getuid());
	ck_assert_ptr_nonnull(strstr(row, "\"name\":\"check_shmalloc\""));
	ck_assert_uint_eq(json_num(row, "bytes_held"), small + LARGE_SIZE);
	ck_assert_uint_eq(json_num(out, "former_bytes"), small + LARGE_SIZE);
	ck_assert_uint_eq(json_num(out, "in_use_bytes"), small + LARGE_SIZE);
	char want[160];
	ck_assert_int_eq(ctl("clients"), 0);
	const char *gone = strstr(out, "clients gone");
	snprintf(want, sizeof want, " %d ", (int)pid);
	ck_assert_msg(gone != NULL && strstr(gone, want) != NULL, "not in clients: %s", out);
	ck_assert_int_eq(ctl("stats --prometheus"), 0);
	snprintf(want, sizeof want,
		 "shmalloc_former_client_held_bytes{pid=\"%d\",uid=\"%u\",name=\"check_shmalloc\"} "
		 "%llu\n", (int)pid, (unsigned)getuid(), small + LARGE_SIZE);
	ck_assert_msg(strstr(out, want) != NULL, "no '%s' in %s", want, out);
	ck_assert_int_eq(e2e_wait(e2e_fork(free_published, NULL)), 0);
	row = settled_former(pid);
	ck_assert_uint_eq(json_num(row, "bytes_held"), small);
}
END_TEST


/* The series of a scrape (sample lines without their values), sorted, one
 * per line, into buf. */
static void series_of(const char *text, char *buf, size_t cap)
{
	static char lines[4096][256];
	size_t n = 0, at = 0;
	char *copy = strdup(text);
	for (char *save, *l = strtok_r(copy, "\n", &save); l && n < 4096;
	     l = strtok_r(NULL, "\n", &save)) {
		if (l[0] == '#')
			continue;
		char *sp = strrchr(l, ' ');
		ck_assert_ptr_nonnull(sp);
		snprintf(lines[n++], sizeof lines[0], "%.*s", (int)(sp - l), l);
	}
	free(copy);
	qsort(lines, n, sizeof lines[0], (int (*)(const void *, const void *))strcmp);
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		at += (size_t)snprintf(buf + at, at < cap ? cap - at : 0, "%s\n", lines[i]);
	ck_assert_uint_lt(at, cap);
}

/* Two scrapes of a heap whose clients stay show the same series: the
 * scraping shmallocctl (a new pid and connection each time) is not one,
 * and no label is per connection.  The histogram has cumulative buckets,
 * _sum and _count. */
START_TEST(prometheus_series_do_not_churn)
{
	static char first[OUT_CAP], second[OUT_CAP];
	pid_t pid = start_workload();
	ck_assert_int_eq(ctl("stats --prometheus"), 0);
	series_of(out, first, sizeof first);
	ck_assert_int_eq(ctl("stats --prometheus"), 0);
	series_of(out, second, sizeof second);
	size_t d = 0;
	while (first[d] && first[d] == second[d])
		d++;
	while (d > 0 && first[d - 1] != '\n')
		d--;
	ck_assert_msg(strcmp(first, second) == 0, "series changed at '%.200s' / '%.200s'",
		      first + d, second + d);
	ck_assert_ptr_null(strstr(out, "client=\""));
	ck_assert_ptr_nonnull(strstr(out, "\nshmalloc_request_duration_seconds_sum "));
	unsigned long long last = 0, inf = 0, count = 0;
	for (const char *p = strstr(out, "shmalloc_request_duration_seconds_bucket{le=\""); p;
	     p = strstr(p + 1, "shmalloc_request_duration_seconds_bucket{le=\"")) {
		unsigned long long v = strtoull(strstr(p, "} ") + 2, NULL, 10);
		ck_assert_uint_ge(v, last);
		last = v;
		if (strncmp(p + 45, "+Inf", 4) == 0)
			inf = v;
	}
	const char *c = strstr(out, "\nshmalloc_request_duration_seconds_count ");
	ck_assert_ptr_nonnull(c);
	count = strtoull(c + 41, NULL, 10);
	ck_assert_uint_eq(count, inf);
	ck_assert_uint_gt(count, 0);
	stop_workload(pid);
}
END_TEST


/* The JSON class object of class cls. */
static const char *json_class(unsigned cls)
{
	char pat[48];
	snprintf(pat, sizeof pat, "{\"class\":%u,", cls);
	const char *c = strstr(out, pat);
	ck_assert_msg(c != NULL, "class %u not listed: %s", cls, out);
	return c;
}

/* What the workload asked for, per class and in all, against what it was
 * granted: the internal fragmentation of the allocations made, counted by
 * the client in its bins (the first malloc of each class goes by the slow
 * path, the others by the fast one) and by the daemon for large blocks. */
/* MANY_N objects of 99 bytes (the class of SMALL_A): most of them from
 * the fast path. */
#define MANY_N 1000
#define MANY_SIZE 99

static int ask_many(void *arg)
{
	(void)arg;
	for (int i = 0; i < MANY_N; i++)
		if (shma_malloc(MANY_SIZE) == NULL)
			return 1;
	char c;
	if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
		return 2;
	return 0;
}

START_TEST(allocations_count_what_was_asked)
{
	unsigned a = sizeclass_of(SMALL_A), b = sizeclass_of(SMALL_B);
	ck_assert_uint_eq(sizeclass_of(MANY_SIZE), a);
	pid_t many = start_workload_of(ask_many);
	ck_assert_int_eq(ctl("stats --json"), 0);
	ck_assert_uint_eq(json_num(json_class(a), "mallocs"), MANY_N);
	ck_assert_uint_eq(json_num(json_class(a), "requested_bytes_total"), MANY_N * MANY_SIZE);
	stop_workload(many);
	/* Gone, its counts stay in the totals; and the next workload's add. */
	pid_t pid = start_workload();
	ck_assert_int_eq(ctl("stats --json"), 0);
	unsigned long long asked_a = MANY_N * MANY_SIZE + SMALL_N * SMALL_A;
	ck_assert_uint_eq(json_num(json_class(a), "mallocs"), MANY_N + SMALL_N);
	ck_assert_uint_eq(json_num(json_class(a), "requested_bytes_total"), asked_a);
	ck_assert_uint_eq(json_num(json_class(b), "mallocs"), SMALL_N);
	ck_assert_uint_eq(json_num(json_class(b), "requested_bytes_total"), SMALL_N * SMALL_B);
	ck_assert_uint_eq(json_num(out, "malloc_requested_bytes"), asked_a + SMALL_N * SMALL_B);
	ck_assert_uint_eq(json_num(out, "malloc_granted_bytes"),
			  (MANY_N + SMALL_N) * sizeclass_size(a) + SMALL_N * sizeclass_size(b));
	ck_assert_uint_eq(json_num(out, "large_requested_bytes"), LARGE_SIZE);
	ck_assert_uint_eq(json_num(out, "large_granted_bytes"), LARGE_SIZE);
	ck_assert_uint_eq(json_num(out, "malloc_calls"), MANY_N + 2 * SMALL_N + 1);
	ck_assert_int_eq(ctl("stats"), 0);
	double asked = (double)asked_a + SMALL_N * SMALL_B + LARGE_SIZE;
	double granted = (double)(MANY_N + SMALL_N) * sizeclass_size(a) +
			 SMALL_N * sizeclass_size(b) + LARGE_SIZE;
	char want[64];
	snprintf(want, sizeof want, "internal %.1f%%", 100.0 * (1.0 - asked / granted));
	ck_assert_msg(strstr(out, want) != NULL, "no '%s' in %s", want, out);
	stop_workload(pid);
}
END_TEST

START_TEST(ping_answers)
{
	ck_assert_int_eq(ctl("ping"), 0);
	ck_assert_str_eq(out, "ok\n");
}
END_TEST

/* Exit status 4 when the daemon refuses the user.  Root, which a daemon
 * that does not list it serves as an observer (it may read the stats:
 * server/access.c), runs shmallocctl as nobody for this, the way to the
 * socket opened so that the daemon is what refuses. */
START_TEST(permission_denied)
{
	static const char *const extra[] = {"--allow-uid", "54321", "--socket-mode", "0666", NULL};
	struct e2e_daemon other;
	e2e_start_daemon(&other, extra);
	int rc;
	if (geteuid() == 0) {
		/* Root itself may look. */
		ck_assert_int_eq(ctl_on(other.socket, "ping"), 0);
		char dir[160], args[256];
		snprintf(dir, sizeof dir, "%s/sock", other.dir);
		ck_assert_int_eq(chmod(other.dir, 0711), 0);
		ck_assert_int_eq(chmod(dir, 0711), 0);
		snprintf(args, sizeof args, "--reuid=65534 --regid=65534 --clear-groups %s --socket %s ping",
			 SHMALLOCCTL_PATH, other.socket);
		char cmd[512];
		snprintf(cmd, sizeof cmd, "setpriv %s 2>&1", args);
		FILE *p = popen(cmd, "r");
		ck_assert_ptr_nonnull(p);
		size_t n = fread(out, 1, OUT_CAP - 1, p);
		out[n] = '\0';
		int st = pclose(p);
		rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		ck_assert_msg(e2e_log_has(&other, "uid 65534: this user may not use"), "%s", out);
	} else {
		rc = ctl_on(other.socket, "ping");
	}
	e2e_stop_daemon(&other);
	ck_assert_msg(rc == 4, "exit %d: %s", rc, out);
	ck_assert_ptr_nonnull(strstr(out, "permission denied on "));
}
END_TEST

/* A daemon of another protocol version: a listener that answers any Hello
 * with a HelloReply of version 99. */
static void fake_daemon(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	uint8_t in[4096], buf[256];
	if (fd < 0 || read(fd, in, sizeof in) <= 0)
		_exit(1);
	Shma__Response resp = SHMA__RESPONSE__INIT;
	Shma__HelloReply h = SHMA__HELLO_REPLY__INIT;
	h.version = 99;
	resp.id = 1;
	resp.body_case = SHMA__RESPONSE__BODY_HELLO;
	resp.hello = &h;
	size_t n = shma__response__pack(&resp, buf + FRAME_HEADER);
	frame_put_header(buf, (uint32_t)n);
	if (write(fd, buf, FRAME_HEADER + n) < 0)
		_exit(1);
	ssize_t r = read(fd, in, sizeof in); /* until shmallocctl hangs up */
	(void)r;
	_exit(0);
}

START_TEST(version_mismatch)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/old.sock", e2e.dir);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(lfd, 1), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		fake_daemon(lfd);
	close(lfd);
	int rc = ctl_on(sa.sun_path, "ping");
	e2e_wait(pid);
	unlink(sa.sun_path);
	ck_assert_msg(rc == 5, "exit %d: %s", rc, out);
	ck_assert_ptr_nonnull(strstr(out, "speaks another protocol"));
}
END_TEST

/* Exit status 3 and a message naming the socket when no daemon listens:
 * no socket (ENOENT), or a socket nobody accepts on (ECONNREFUSED). */
START_TEST(no_daemon)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char want[256];
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/none.sock", e2e.dir);
	ck_assert_int_eq(ctl_on(sa.sun_path, "ping"), 3);
	snprintf(want, sizeof want, "no shmallocd listens on %s", sa.sun_path);
	ck_assert_msg(strstr(out, want) != NULL, "message: %s", out);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd); /* the file stays; nobody listens */
	ck_assert_int_eq(ctl_on(sa.sun_path, "stats"), 3);
	ck_assert_msg(strstr(out, want) != NULL, "message: %s", out);
	unlink(sa.sun_path);
}
END_TEST

START_TEST(bad_usage)
{
	static const char *const bad[] = {
		"",                       "bogus",
		"stats --nope",           "stats extra",
		"ping --json",            "roots --prometheus",
		"stats --watch 0",        "stats --watch abc",
		"stats --count 2",        "stats --watch 1 --count 0",
		"stats --watch 1 --json", "roots --watch 1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(ctl(bad[i]) == 2, "'shmallocctl %s' exited %d", bad[i], ctl(bad[i]));
		ck_assert_msg(strstr(out, "shmallocctl: ") != NULL, "no message for '%s'", bad[i]);
	}
	ck_assert_int_eq(ctl("--help"), 0);
}
END_TEST

Suite *make_ctl_suite(void);
Suite *make_ctl_suite(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc = tcase_create("ctl");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, stats_add_up);
	tcase_add_test(tc, stats_count_at_least_what_a_client_caches);
	tcase_add_test(tc, table_and_clients);
	tcase_add_test(tc, json_parses);
	tcase_add_test(tc, prometheus_format);
	tcase_add_test(tc, prometheus_labels);
	tcase_add_test(tc, prometheus_series_do_not_churn);
	tcase_add_test(tc, stats_fields_in_every_view);
	tcase_add_test(tc, heaps_lists_regions);
	tcase_add_test(tc, heaps_lists_named_heaps);
	tcase_add_test(tc, heaps_lists_many_regions);
	tcase_add_test(tc, allocations_count_what_was_asked);
	tcase_add_test(tc, former_client_holds_what_it_left);
	tcase_add_test(tc, ping_answers);
	tcase_add_test(tc, no_daemon);
	tcase_add_test(tc, permission_denied);
	tcase_add_test(tc, version_mismatch);
	tcase_add_test(tc, bad_usage);
	suite_add_tcase(s, tc);
	return s;
}
