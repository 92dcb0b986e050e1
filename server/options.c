/*
 * Options: see options.h.  getopt_long reads the command line; the config
 * file is read line by line and each "name = value" goes through the same
 * apply() as "--name value" would, so the two can never disagree on what an
 * option means.  Layer: session (no libuv).
 */
#include "options.h"
#include "layout.h"
#include "log.h"
#include "seg.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

enum {
	OPT_SOCKET = 's', OPT_NAME = 'n', OPT_CONFIG = 'c', OPT_HELP = 'h',
	OPT_VERSION = 'V', OPT_DAEMONIZE = 'd',
	OPT_ARENA_SIZE = 256, OPT_MAX_MEMORY, OPT_CLIENT_MAX_MEMORY,
	OPT_LARGE_THRESHOLD, OPT_DECAY, OPT_ALLOW_UID, OPT_ALLOW_GID, OPT_SOCKET_MODE,
	OPT_SEGMENT_MODE, OPT_LOG_LEVEL, OPT_CLEANUP, OPT_MAX_FRAME, OPT_DISCARD,
	OPT_HANDSHAKE_TIMEOUT, OPT_WRITE_TIMEOUT, OPT_UID_MAX_CONNECTIONS, OPT_UID_MAX_ORPHANS,
	OPT_UID_MAX_ROOTS, OPT_UID_MAX_LARGE, OPT_BASE,
};

static const struct option long_options[] = {
	{"socket", required_argument, NULL, OPT_SOCKET},
	{"name", required_argument, NULL, OPT_NAME},
	{"config", required_argument, NULL, OPT_CONFIG},
	{"arena-size", required_argument, NULL, OPT_ARENA_SIZE},
	{"max-memory", required_argument, NULL, OPT_MAX_MEMORY},
	{"base", required_argument, NULL, OPT_BASE},
	{"client-max-memory", required_argument, NULL, OPT_CLIENT_MAX_MEMORY},
	{"large-threshold", required_argument, NULL, OPT_LARGE_THRESHOLD},
	{"decay", required_argument, NULL, OPT_DECAY},
	{"allow-uid", required_argument, NULL, OPT_ALLOW_UID},
	{"allow-gid", required_argument, NULL, OPT_ALLOW_GID},
	{"socket-mode", required_argument, NULL, OPT_SOCKET_MODE},
	{"segment-mode", required_argument, NULL, OPT_SEGMENT_MODE},
	{"max-frame", required_argument, NULL, OPT_MAX_FRAME},
	{"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
	{"write-timeout", required_argument, NULL, OPT_WRITE_TIMEOUT},
	{"uid-max-connections", required_argument, NULL, OPT_UID_MAX_CONNECTIONS},
	{"uid-max-orphans", required_argument, NULL, OPT_UID_MAX_ORPHANS},
	{"uid-max-roots", required_argument, NULL, OPT_UID_MAX_ROOTS},
	{"uid-max-large", required_argument, NULL, OPT_UID_MAX_LARGE},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"daemonize", no_argument, NULL, OPT_DAEMONIZE},
	{"cleanup", no_argument, NULL, OPT_CLEANUP},
	{"discard", no_argument, NULL, OPT_DISCARD},
	{"help", no_argument, NULL, OPT_HELP},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0},
};

static const char usage_text[] =
	"Usage: shmallocd [OPTION]...\n"
	"Serve a heap in POSIX shared memory to the processes of this host.\n"
	"\n"
	"  -s, --socket PATH           listen here (default $XDG_RUNTIME_DIR/shmalloc/\n"
	"                              shmallocd.sock, else /tmp/shmalloc-$UID/shmallocd.sock)\n"
	"  -n, --name NAME             instance name in segment names (default: a hash\n"
	"                              of the socket path)\n"
	"  -c, --config FILE           read \"option = value\" lines from FILE first\n"
	"      --arena-size SIZE       bytes per arena, a power of two (default 64M)\n"
	"      --max-memory SIZE       cap on the heap, arenas made on demand; it is\n"
	"                              also the address space every client maps\n"
	"                              (default: no cap, 64G of address space)\n"
	"      --base ADDRESS          map the heap at this address in every process\n"
	"                              (hex; default: chosen at the first start, kept)\n"	"      --client-max-memory SIZE  cap on what one client process holds, over all\n"
	"                              its connections (default: none)\n"
	"      --uid-max-connections N  connections one user may have open (default 2048)\n"
	"      --uid-max-orphans N     control blocks of one user's live processes whose\n"
	"                              connection ended (default 1024)\n"
	"      --uid-max-roots N       roots one user may publish (default 1024)\n"
	"      --uid-max-large N       large blocks one user may hold (default 4096)\n"
	"      --large-threshold SIZE  blocks this big are page runs of their own\n"
	"                              (default 128K, at most 1M)\n"
	"      --decay SECONDS         give free pages idle this long back to the OS\n"
	"                              (default 10; 0 gives them back at once)\n"
	"      --allow-uid UID         let this user connect (repeatable; default: ours)\n"
	"      --allow-gid GID         let members of this group connect (repeatable)\n"
	"      --socket-mode MODE      mode of the socket (default 0600; 0660 with\n"
	"                              --allow-gid)\n"
	"      --segment-mode MODE     mode of shared memory segments (default: as socket)\n"
	"      --max-frame SIZE        longest message accepted (default 1M)\n"
	"      --handshake-timeout SECONDS  close a connection that has not said Hello\n"
	"                              within this time (default 10; 0: never)\n"
	"      --write-timeout SECONDS  close a client that has left 8M of answers\n"
	"                              unread this long (default 60; 0: never)\n"
	"      --log-level LEVEL       error, warn, info (default) or debug\n"
	"  -d, --daemonize             detach from the terminal\n"
	"      --cleanup               remove the instance's segments on exit\n"
	"      --discard               remove segments an earlier run of this instance\n"
	"                              left, instead of refusing to start\n"
	"  -h, --help                  show this help and exit\n"
	"  -V, --version               show the version and exit\n"
	"\n"
	"SIZE takes K, M, G or T (powers of 1024).  SIGTERM or SIGINT stop the daemon\n"
	"and keep its segments, so that a restart recovers the heap.\n";

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

static int apply_size(const char *name, const char *arg, uint64_t *out, FILE *err)
{
	int rc = options_parse_size(arg, out);
	if (rc != 0)
		fprintf(err, "shmallocd: --%s: '%s' is not a size (try 64M)\n", name, arg);
	return rc;
}

/* A limit: a count from 0 (no limit) to 2^31. */
static int apply_count(const char *name, const char *arg, uint32_t *out, FILE *err)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(arg, &end, 10);
	if (arg[0] == '-' || end == arg || *end != '\0' || errno != 0 || v > (1ul << 31)) {
		fprintf(err, "shmallocd: --%s: '%s' is not a count (0: no limit)\n", name, arg);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

static int apply_id(struct options *o, int group, const char *arg, FILE *err)
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

static int apply_string(const char *name, const char *arg, char *dst, size_t size, FILE *err)
{
	if (strlen(arg) >= size) {
		fprintf(err, "shmallocd: --%s: longer than %zu bytes\n", name, size - 1);
		return -ENAMETOOLONG;
	}
	strcpy(dst, arg);
	return 0;
}

static int apply_decay(const char *arg, struct options *o, FILE *err)
{
	char *end;
	double s = strtod(arg, &end);
	if (end == arg || *end != '\0' || !(s >= 0) || s > 86400 * 365) {
		fprintf(err, "shmallocd: --decay: '%s' is not a number of seconds\n", arg);
		return -EINVAL;
	}
	o->decay_ms = (uint64_t)(s * 1000);
	return 0;
}

static int apply_mode(const char *name, const char *arg, mode_t *out, FILE *err)
{
	if (parse_mode(arg, out) == 0)
		return 0;
	fprintf(err, "shmallocd: --%s: '%s' is not an octal mode\n", name, arg);
	return -EINVAL;
}

static int apply_log_level(const char *arg, struct options *o, FILE *err)
{
	o->log_level = log_level_parse(arg);
	if (o->log_level >= 0)
		return 0;
	fprintf(err, "shmallocd: --log-level: '%s' is not error, warn, info or debug\n", arg);
	return -EINVAL;
}

static int apply_max_frame(const char *arg, struct options *o, FILE *err)
{
	uint64_t v;
	if (apply_size("max-frame", arg, &v, err) != 0)
		return -EINVAL;
	if (v < 4096 || v > (64u << 20)) {
		fprintf(err, "shmallocd: --max-frame: between 4K and 64M\n");
		return -ERANGE;
	}
	o->max_frame = (uint32_t)v;
	return 0;
}

/* A timeout in seconds (fractions allowed), at most a day; 0 is "never". */
static int apply_timeout(const char *name, const char *arg, uint64_t *ms, FILE *err)
{
	char *end;
	double s = strtod(arg, &end);
	if (end == arg || *end != '\0' || !(s >= 0) || s > 86400) {
		fprintf(err, "shmallocd: --%s: '%s' is not a number of seconds (at most 86400)\n",
			name, arg);
		return -EINVAL;
	}
	*ms = (uint64_t)(s * 1000);
	return 0;
}

/* --base: a page-aligned address in user space, where the heap fits. */
static int apply_base(const char *arg, struct options *o, FILE *err)
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
	o->base = v;
	return 0;
}

/* One option, from either source.  0, or a negative errno after a message. */
static int apply(struct options *o, int opt, const char *name, const char *arg, FILE *err)
{
	switch (opt) {
	case OPT_SOCKET: return apply_string(name, arg, o->socket_path, sizeof o->socket_path, err);
	case OPT_NAME: return apply_string(name, arg, o->instance, sizeof o->instance, err);
	case OPT_ARENA_SIZE: return apply_size(name, arg, &o->arena_size, err);
	case OPT_MAX_MEMORY: return apply_size(name, arg, &o->max_memory, err);
	case OPT_BASE: return apply_base(arg, o, err);
	case OPT_CLIENT_MAX_MEMORY: return apply_size(name, arg, &o->client_max_memory, err);
	case OPT_LARGE_THRESHOLD: return apply_size(name, arg, &o->large_threshold, err);
	case OPT_DECAY: return apply_decay(arg, o, err);
	case OPT_ALLOW_UID: return apply_id(o, 0, arg, err);
	case OPT_ALLOW_GID: return apply_id(o, 1, arg, err);
	case OPT_SOCKET_MODE: return apply_mode(name, arg, &o->socket_mode, err);
	case OPT_SEGMENT_MODE: return apply_mode(name, arg, &o->segment_mode, err);
	case OPT_MAX_FRAME: return apply_max_frame(arg, o, err);
	case OPT_HANDSHAKE_TIMEOUT: return apply_timeout(name, arg, &o->handshake_timeout_ms, err);
	case OPT_WRITE_TIMEOUT: return apply_timeout(name, arg, &o->write_timeout_ms, err);
	case OPT_UID_MAX_CONNECTIONS: return apply_count(name, arg, &o->uid_max_connections, err);
	case OPT_UID_MAX_ORPHANS: return apply_count(name, arg, &o->uid_max_orphans, err);
	case OPT_UID_MAX_ROOTS: return apply_count(name, arg, &o->uid_max_roots, err);
	case OPT_UID_MAX_LARGE: return apply_count(name, arg, &o->uid_max_large, err);
	case OPT_LOG_LEVEL: return apply_log_level(arg, o, err);
	case OPT_DAEMONIZE: o->daemonize = 1; return 0;
	case OPT_CLEANUP: o->cleanup = 1; return 0;
	case OPT_DISCARD: o->discard = 1; return 0;
	}
	fprintf(err, "shmallocd: --%s cannot be set here\n", name);
	return -EINVAL;
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

static const struct option *find_option(const char *name)
{
	for (const struct option *lo = long_options; lo->name; lo++)
		if (strcmp(lo->name, name) == 0)
			return lo;
	return NULL;
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
	const struct option *lo = find_option(s);
	if (lo == NULL || lo->val == OPT_CONFIG || lo->val == OPT_HELP || lo->val == OPT_VERSION) {
		fprintf(err, "shmallocd: %s:%u: unknown option '%s'\n", path, lineno, s);
		return -EINVAL;
	}
	if (lo->has_arg == required_argument && *value == '\0') {
		fprintf(err, "shmallocd: %s:%u: '%s' needs a value\n", path, lineno, s);
		return -EINVAL;
	}
	return apply(o, lo->val, lo->name, value, err);
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

static void set_defaults(struct options *o)
{
	memset(o, 0, sizeof *o);
	o->arena_size = 64u << 20;
	o->large_threshold = 128u << 10;
	o->decay_ms = 10000;
	o->max_frame = 1u << 20;
	o->handshake_timeout_ms = 10000;
	o->write_timeout_ms = 60000;
	/* Half the connections the daemon takes (MAX_CLIENTS), a quarter of
	 * the roots (ROOTS_CAPACITY), a few thousand large blocks: one user's
	 * runaway program stops there, and the others are served. */
	o->uid_max_connections = 2048;
	o->uid_max_orphans = 1024;
	o->uid_max_roots = 1024;
	o->uid_max_large = 4096;
	o->socket_mode = 0600;
	o->segment_mode = 0;
	o->log_level = SLOG_INFO;
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
	return 0;
}

enum options_result options_parse(struct options *o, int argc, char **argv, FILE *out,
				  FILE *err)
{
	set_defaults(o);
	/* The config file first, wherever --config stands, so that the command
	 * line overrides it. */
	for (int i = 1; i < argc; i++) {
		const char *path = NULL;
		if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc)
			path = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
		if (path != NULL && read_config(o, path, err) != 0)
			return OPTIONS_ERROR;
	}
	optind = 1;
	opterr = 0;
	int opt, idx;
	while ((opt = getopt_long(argc, argv, ":s:n:c:dhV", long_options, &idx)) != -1) {
		switch (opt) {
		case OPT_HELP: fputs(usage_text, out); return OPTIONS_EXIT_OK;
		case OPT_VERSION: fprintf(out, "shmallocd %s\n", PACKAGE_VERSION); return OPTIONS_EXIT_OK;
		case OPT_CONFIG: break;
		case ':':
			fprintf(err, "shmallocd: %s needs a value\n", argv[optind - 1]);
			return OPTIONS_ERROR;
		case '?':
			fprintf(err, "shmallocd: unknown option '%s' (try --help)\n", argv[optind - 1]);
			return OPTIONS_ERROR;
		default: {
			const struct option *lo = NULL;
			for (const struct option *p = long_options; p->name; p++)
				if (p->val == opt)
					lo = p;
			if (apply(o, opt, lo ? lo->name : "?", optarg, err) != 0)
				return OPTIONS_ERROR;
		}
		}
	}
	if (optind < argc) {
		fprintf(err, "shmallocd: unexpected argument '%s' (try --help)\n", argv[optind]);
		return OPTIONS_ERROR;
	}
	return finish(o, err) == 0 ? OPTIONS_RUN : OPTIONS_ERROR;
}
