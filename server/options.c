/* SPDX-License-Identifier: MIT */
/*
 * Options: see options.h.  One table below says everything about each
 * option; getopt_long (libc) reads the command line through a struct option
 * array made from it, the config file is read line by line and each
 * "name = value" goes through the same parser as "--name value" would, the
 * defaults are set by giving each option its default through its parser,
 * and --help is printed from it.  So the ways in can never disagree on what
 * an option means.  Layer: session (no libuv).
 */
#include "options.h"
#include "layout.h"
#include "log.h"
#include "seg.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stddef.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int options_parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (s[0] == '-' || s[0] == '\0')
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0)
		return -ERANGE;
	if (end == s)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (shift != 0 && *end == 'i')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0')
		return -EINVAL;
	if (shift != 0 && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_mode(const char *s, mode_t *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 8);
	if (end == s || *end != '\0' || v > 0777)
		return -EINVAL;
	*out = (mode_t)v;
	return 0;
}

static int parse_id(const char *s, int group, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (end != s && *end == '\0' && errno == 0 && v < UINT_MAX) {
		*out = v;
		return 0;
	}
	if (group) {
		struct group *g = getgrnam(s);
		if (g == NULL)
			return -EINVAL;
		*out = g->gr_gid;
	} else {
		struct passwd *p = getpwnam(s);
		if (p == NULL)
			return -EINVAL;
		*out = p->pw_uid;
	}
	return 0;
}

/* The field def sets in o. */
static void *field(const struct options_def *def, struct options *o)
{
	return (char *)o + def->offset;
}

static int parse_size(const struct options_def *def, struct options *o, const char *arg,
		      FILE *err)
{
	int rc = options_parse_size(arg, field(def, o));
	if (rc != 0)
		fprintf(err, "shmallocd: --%s: '%s' is not a size (try 64M)\n", def->name, arg);
	return rc;
}

/* A limit: a count from 0 (no limit) to 2^31. */
static int parse_count(const struct options_def *def, struct options *o, const char *arg,
		       FILE *err)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(arg, &end, 10);
	if (arg[0] == '-' || end == arg || *end != '\0' || errno != 0 || v > (1ul << 31)) {
		fprintf(err, "shmallocd: --%s: '%s' is not a count (0: no limit)\n", def->name,
			arg);
		return -EINVAL;
	}
	*(uint32_t *)field(def, o) = (uint32_t)v;
	return 0;
}

static int parse_id_into(struct options *o, int group, const char *arg, FILE *err)
{
	unsigned long id;
	unsigned *n = group ? &o->nallow_gid : &o->nallow_uid;
	if (parse_id(arg, group, &id) != 0) {
		fprintf(err, "shmallocd: --allow-%s: no such %s '%s'\n", group ? "gid" : "uid",
			group ? "group" : "user", arg);
		return -EINVAL;
	}
	if (*n == OPTIONS_MAX_IDS) {
		fprintf(err, "shmallocd: at most %d --allow-%s\n", OPTIONS_MAX_IDS,
			group ? "gid" : "uid");
		return -E2BIG;
	}
	if (group)
		o->allow_gid[(*n)++] = (gid_t)id;
	else
		o->allow_uid[(*n)++] = (uid_t)id;
	return 0;
}

static int parse_uid(const struct options_def *def, struct options *o, const char *arg,
		     FILE *err)
{
	(void)def;
	return parse_id_into(o, 0, arg, err);
}

static int parse_gid(const struct options_def *def, struct options *o, const char *arg,
		     FILE *err)
{
	(void)def;
	return parse_id_into(o, 1, arg, err);
}

static int parse_string(const struct options_def *def, struct options *o, const char *arg,
			FILE *err)
{
	if (strlen(arg) >= def->size) {
		fprintf(err, "shmallocd: --%s: longer than %zu bytes\n", def->name, def->size - 1);
		return -ENAMETOOLONG;
	}
	strcpy(field(def, o), arg);
	return 0;
}

/* Seconds (fractions allowed) up to max, into milliseconds; message says
 * what the value must be. */
static int parse_seconds(const struct options_def *def, struct options *o, const char *arg,
			 double max, const char *message, FILE *err)
{
	char *end;
	double s = strtod(arg, &end);
	if (end == arg || *end != '\0' || !(s >= 0) || s > max) {
		fprintf(err, "shmallocd: --%s: '%s' is not %s\n", def->name, arg, message);
		return -EINVAL;
	}
	*(uint64_t *)field(def, o) = (uint64_t)(s * 1000);
	return 0;
}

static int parse_decay(const struct options_def *def, struct options *o, const char *arg,
		       FILE *err)
{
	return parse_seconds(def, o, arg, 86400 * 365, "a number of seconds", err);
}

/* A timeout, at most a day; 0 is "never". */
static int parse_timeout(const struct options_def *def, struct options *o, const char *arg,
			 FILE *err)
{
	return parse_seconds(def, o, arg, 86400, "a number of seconds (at most 86400)", err);
}

static int parse_octal_mode(const struct options_def *def, struct options *o, const char *arg,
			    FILE *err)
{
	if (parse_mode(arg, field(def, o)) == 0)
		return 0;
	fprintf(err, "shmallocd: --%s: '%s' is not an octal mode\n", def->name, arg);
	return -EINVAL;
}

static int parse_log_level(const struct options_def *def, struct options *o, const char *arg,
			   FILE *err)
{
	int level = log_level_parse(arg);
	if (level >= 0) {
		*(int *)field(def, o) = level;
		return 0;
	}
	fprintf(err, "shmallocd: --log-level: '%s' is not error, warn, info or debug\n", arg);
	return -EINVAL;
}

static int parse_max_frame(const struct options_def *def, struct options *o, const char *arg,
			   FILE *err)
{
	uint64_t v;
	if (options_parse_size(arg, &v) != 0) {
		fprintf(err, "shmallocd: --%s: '%s' is not a size (try 64M)\n", def->name, arg);
		return -EINVAL;
	}
	if (v < 4096 || v > (64u << 20)) {
		fprintf(err, "shmallocd: --max-frame: between 4K and 64M\n");
		return -ERANGE;
	}
	*(uint32_t *)field(def, o) = (uint32_t)v;
	return 0;
}

/* --base: a page-aligned address in user space, where the heap fits. */
static int parse_base(const struct options_def *def, struct options *o, const char *arg,
		      FILE *err)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 16);
	if (end == arg || *end != '\0' || errno != 0 || v == 0 || v % 8192 != 0 ||
	    v >= (UINT64_C(1) << 47)) {
		fprintf(err, "shmallocd: --base: '%s' is not a page-aligned (8 KiB) user-space "
			"address in hex\n", arg);
		return -EINVAL;
	}
	*(uint64_t *)field(def, o) = v;
	return 0;
}

/* --backing shm|memfd|file:PATH (an absolute directory). */
static int parse_backing(const struct options_def *def, struct options *o, const char *arg,
			 FILE *err)
{
	(void)def;
	o->backing_dir[0] = '\0';
	if (strlen(arg) < sizeof o->backing_name)
		strcpy(o->backing_name, arg);
	if (strcmp(arg, "shm") == 0) {
		o->backing = SEG_BACKING_SHM;
		return 0;
	}
	if (strcmp(arg, "memfd") == 0) {
		o->backing = SEG_BACKING_MEMFD;
		return 0;
	}
	if (strncmp(arg, "file:", 5) == 0 && arg[5] == '/' &&
	    strlen(arg + 5) < sizeof o->backing_dir) {
		o->backing = SEG_BACKING_FILE;
		strcpy(o->backing_dir, arg + 5);
		return 0;
	}
	fprintf(err, "shmallocd: --backing: '%s' is not shm, memfd or file:/ABSOLUTE/DIR\n", arg);
	return -EINVAL;
}

/* A switch: no value, sets its int to 1. */
static int parse_flag(const struct options_def *def, struct options *o, const char *arg,
		      FILE *err)
{
	(void)arg;
	(void)err;
	*(int *)field(def, o) = 1;
	return 0;
}

#define FIELD(f) offsetof(struct options, f), sizeof(((struct options *)0)->f)
#define VALUE(name, short_name, arg, parse, f, dflt, help) \
	{name, short_name, arg, OPTIONS_VALUE, parse, FIELD(f), dflt, help}
#define ACTION(name, short_name, arg, kind, help) \
	{name, short_name, arg, kind, NULL, 0, 0, NULL, help}

/*
 * Every option, in --help's order.  The uid limits' defaults: half the
 * connections the daemon takes (DAEMON_MAX_CLIENTS), a quarter of the roots
 * (ROOTS_CAPACITY), a few thousand large blocks: one user's runaway program
 * stops there, and the others are served.
 */
static const struct options_def table[] = {
	VALUE("socket", 's', "PATH", parse_string, socket_path, NULL,
	      "listen here (default $XDG_RUNTIME_DIR/shmalloc/\n"
	      "shmallocd.sock, else /tmp/shmalloc-$UID/shmallocd.sock)"),
	VALUE("name", 'n', "NAME", parse_string, instance, NULL,
	      "instance name in segment names (default: a hash\nof the socket path)"),
	ACTION("config", 'c', "FILE", OPTIONS_CONFIG,
	       "read \"option = value\" lines from FILE first"),
	VALUE("arena-size", 0, "SIZE", parse_size, arena_size, "64M",
	      "bytes per arena, a power of two (default 64M)"),
	VALUE("max-memory", 0, "SIZE", parse_size, max_memory, NULL,
	      "cap on the heap, arenas made on demand; it is\n"
	      "also the address space every client maps\n"
	      "(default: no cap, 64G of address space)"),
	VALUE("base", 0, "ADDRESS", parse_base, base, NULL,
	      "map the heap at this address in every process\n"
	      "(hex; default: chosen at the first start, kept)"),
	VALUE("client-max-memory", 0, "SIZE", parse_size, client_max_memory, NULL,
	      "cap on what one client process holds, over all\nits connections (default: none)"),
	VALUE("uid-max-connections", 0, "N", parse_count, uid_max.connections, "2048",
	      "connections one user may have open (default 2048)"),
	VALUE("uid-max-orphans", 0, "N", parse_count, uid_max.orphans, "1024",
	      "control blocks of one user's live processes whose\n"
	      "connection ended (default 1024)"),
	VALUE("uid-max-roots", 0, "N", parse_count, uid_max.roots, "1024",
	      "roots one user may publish (default 1024)"),
	VALUE("uid-max-large", 0, "N", parse_count, uid_max.large, "4096",
	      "large blocks one user may hold (default 4096)"),
	VALUE("uid-max-buffers", 0, "SIZE", parse_size, uid_max.buffers, "64M",
	      "answers one user's connections leave unread, and\n"
	      "their read buffers, the daemon holds (default 64M)"),
	VALUE("large-threshold", 0, "SIZE", parse_size, large_threshold, "128K",
	      "blocks this big are page runs of their own\n(default 128K, at most 1M)"),
	VALUE("decay", 0, "SECONDS", parse_decay, decay_ms, "10",
	      "give free pages idle this long back to the OS\n"
	      "(default 10; 0 gives them back at once)"),
	VALUE("allow-uid", 0, "UID", parse_uid, allow_uid, NULL,
	      "let this user connect (repeatable; default: ours)"),
	VALUE("allow-gid", 0, "GID", parse_gid, allow_gid, NULL,
	      "let members of this group connect (repeatable)"),
	VALUE("socket-mode", 0, "MODE", parse_octal_mode, socket_mode, "0600",
	      "mode of the socket (default 0600; 0660 with\n--allow-gid)"),
	VALUE("segment-mode", 0, "MODE", parse_octal_mode, segment_mode, NULL,
	      "mode of shared memory segments (default: as socket)"),
	VALUE("max-frame", 0, "SIZE", parse_max_frame, max_frame, "1M",
	      "longest message accepted (default 1M)"),
	VALUE("handshake-timeout", 0, "SECONDS", parse_timeout, handshake_timeout_ms, "10",
	      "close a connection that has not said Hello\n"
	      "within this time (default 10; 0: never)"),
	VALUE("write-timeout", 0, "SECONDS", parse_timeout, write_timeout_ms, "60",
	      "close a client that has left 8M of answers\n"
	      "unread this long (default 60; 0: never)"),
	VALUE("backing", 0, "KIND", parse_backing, backing, "shm",
	      "where the heap lives: shm (/dev/shm, default),\n"
	      "memfd (no name, no /dev/shm limit) or file:DIR\n"
	      "(files in DIR: the heap outlives a reboot)"),
	VALUE("huge-pages", 0, NULL, parse_flag, huge_pages, NULL,
	      "back the pages with huge pages where the system\n"
	      "has them (hugetlb with memfd, else shmem THP)"),
	VALUE("log-level", 0, "LEVEL", parse_log_level, log_level, "info",
	      "error, warn, info (default) or debug"),
	VALUE("daemonize", 'd', NULL, parse_flag, daemonize, NULL, "detach from the terminal"),
	VALUE("cleanup", 0, NULL, parse_flag, cleanup, NULL,
	      "remove the instance's segments on exit"),
	VALUE("discard", 0, NULL, parse_flag, discard, NULL,
	      "remove segments an earlier run of this instance\n"
	      "left, instead of refusing to start"),
	ACTION("help", 'h', NULL, OPTIONS_HELP, "show this help and exit"),
	ACTION("version", 'V', NULL, OPTIONS_VERSION, "show the version and exit"),
};

#define NOPTIONS (sizeof table / sizeof table[0])

const struct options_def *options_table(size_t *n)
{
	*n = NOPTIONS;
	return table;
}

/* getopt_long's val for table[i]: its short name, else past every char. */
static int val_of(size_t i)
{
	return table[i].short_name ? table[i].short_name : 256 + (int)i;
}

static const struct options_def *def_of_val(int val)
{
	for (size_t i = 0; i < NOPTIONS; i++)
		if (val_of(i) == val)
			return &table[i];
	return NULL;
}

static const struct options_def *def_of_name(const char *name)
{
	for (size_t i = 0; i < NOPTIONS; i++)
		if (strcmp(table[i].name, name) == 0)
			return &table[i];
	return NULL;
}

/* getopt_long's tables, made from the one above. */
static void getopt_tables(struct option *lo, char *shorts)
{
	char *s = shorts;
	*s++ = ':'; /* a missing value is ':', not '?' */
	for (size_t i = 0; i < NOPTIONS; i++) {
		lo[i] = (struct option){table[i].name, table[i].arg ? required_argument : no_argument,
					NULL, val_of(i)};
		if (table[i].short_name) {
			*s++ = table[i].short_name;
			if (table[i].arg)
				*s++ = ':';
		}
	}
	lo[NOPTIONS] = (struct option){NULL, 0, NULL, 0};
	*s = '\0';
}

#define HELP_COLUMN 30

static void usage(FILE *out)
{
	fputs("Usage: shmallocd [OPTION]...\n"
	      "Serve a heap in POSIX shared memory to the processes of this host.\n\n", out);
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct options_def *def = &table[i];
		int n = def->short_name ? fprintf(out, "  -%c, ", def->short_name)
					: fprintf(out, "      ");
		n += fprintf(out, "--%s", def->name);
		if (def->arg)
			n += fprintf(out, " %s", def->arg);
		fprintf(out, "%*s", n + 2 > HELP_COLUMN ? 2 : HELP_COLUMN - n, "");
		for (const char *h = def->help; *h; h++) {
			fputc(*h, out);
			if (*h == '\n')
				fprintf(out, "%*s", HELP_COLUMN, "");
		}
		fputc('\n', out);
	}
	fputs("\nSIZE takes K, M, G or T (powers of 1024).  SIGTERM or SIGINT stop the daemon\n"
	      "and keep its segments, so that a restart recovers the heap.\n", out);
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int config_line(struct options *o, char *line, const char *path, unsigned lineno,
		       FILE *err)
{
	char *s = trim(line);
	if (*s == '\0' || *s == '#')
		return 0;
	char *value = s + strcspn(s, " \t=");
	if (*value != '\0')
		*value++ = '\0';
	value = trim(value);
	if (*value == '=')
		value = trim(value + 1);
	const struct options_def *def = def_of_name(s);
	if (def == NULL || def->kind != OPTIONS_VALUE) {
		fprintf(err, "shmallocd: %s:%u: unknown option '%s'\n", path, lineno, s);
		return -EINVAL;
	}
	if (def->arg != NULL && *value == '\0') {
		fprintf(err, "shmallocd: %s:%u: '%s' needs a value\n", path, lineno, s);
		return -EINVAL;
	}
	return def->parse(def, o, value, err);
}

static int read_config(struct options *o, const char *path, FILE *err)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		fprintf(err, "shmallocd: --config %s: %s\n", path, strerror(errno));
		return -errno;
	}
	char line[1024];
	unsigned lineno = 0;
	int rc = 0;
	while (rc == 0 && fgets(line, sizeof line, f) != NULL)
		rc = config_line(o, line, path, ++lineno, err);
	fclose(f);
	return rc;
}

/* Each option's default, through its own parser; the rest are zero. */
static int set_defaults(struct options *o, FILE *err)
{
	memset(o, 0, sizeof *o);
	for (size_t i = 0; i < NOPTIONS; i++)
		if (table[i].dflt != NULL && table[i].parse(&table[i], o, table[i].dflt, err) != 0)
			return -EINVAL;
	return 0;
}

static int finish(struct options *o, FILE *err)
{
	if (o->socket_path[0] == '\0' &&
	    seg_default_socket(o->socket_path, sizeof o->socket_path) != 0) {
		fprintf(err, "shmallocd: the default socket path is too long; use --socket\n");
		return -ENAMETOOLONG;
	}
	if (o->instance[0] == '\0')
		seg_instance_from_path(o->socket_path, o->instance, sizeof o->instance);
	if (!seg_instance_valid(o->instance)) {
		fprintf(err, "shmallocd: --name: use letters, digits, '_' and '-' only\n");
		return -EINVAL;
	}
	struct arena_geometry g;
	if (layout_geometry(o->arena_size, &g) != 0) {
		fprintf(err, "shmallocd: --arena-size: a power of two from 1M to 64G\n");
		return -EINVAL;
	}
	if (o->large_threshold < 16 || o->large_threshold > SIZECLASS_MAX_SIZE) {
		fprintf(err, "shmallocd: --large-threshold: from 16 bytes to 1M\n");
		return -EINVAL;
	}
	if (o->nallow_gid > 0 && o->socket_mode == 0600)
		o->socket_mode = 0660;
	if (o->segment_mode == 0)
		o->segment_mode = o->socket_mode & 0666;
	if (o->nallow_uid == 0)
		o->allow_uid[o->nallow_uid++] = getuid();
	snprintf(o->huge_got, sizeof o->huge_got, "off"); /* backing.c says what it got */
	return 0;
}


/* The config file first, wherever --config stands, so that the command line
 * overrides it. */
static int read_configs(struct options *o, int argc, char **argv, FILE *err)
{
	for (int i = 1; i < argc; i++) {
		const char *path = NULL;
		if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc)
			path = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
		if (path != NULL && read_config(o, path, err) != 0)
			return -EINVAL;
	}
	return 0;
}

enum options_result options_parse(struct options *o, int argc, char **argv, FILE *out,
				  FILE *err)
{
	struct option lo[NOPTIONS + 1];
	char shorts[2 + 2 * NOPTIONS];
	if (set_defaults(o, err) != 0 || read_configs(o, argc, argv, err) != 0)
		return OPTIONS_ERROR;
	getopt_tables(lo, shorts);
	optind = 1;
	opterr = 0;
	int opt, idx;
	while ((opt = getopt_long(argc, argv, shorts, lo, &idx)) != -1) {
		if (opt == ':') {
			fprintf(err, "shmallocd: %s needs a value\n", argv[optind - 1]);
			return OPTIONS_ERROR;
		}
		const struct options_def *def = def_of_val(opt);
		if (def == NULL) {
			fprintf(err, "shmallocd: unknown option '%s' (try --help)\n", argv[optind - 1]);
			return OPTIONS_ERROR;
		}
		switch (def->kind) {
		case OPTIONS_HELP: usage(out); return OPTIONS_EXIT_OK;
		case OPTIONS_VERSION: fprintf(out, "shmallocd %s\n", PACKAGE_VERSION); return OPTIONS_EXIT_OK;
		case OPTIONS_CONFIG: break;
		case OPTIONS_VALUE:
			if (def->parse(def, o, optarg, err) != 0)
				return OPTIONS_ERROR;
			break;
		}
	}
	if (optind < argc) {
		fprintf(err, "shmallocd: unexpected argument '%s' (try --help)\n", argv[optind]);
		return OPTIONS_ERROR;
	}
	return finish(o, err) == 0 ? OPTIONS_RUN : OPTIONS_ERROR;
}
