/* SPDX-License-Identifier: MIT */
/*
 * The daemon's options: the command line, and a config file (--config) that
 * takes the same long options as "name = value" lines.  The command line wins
 * over the file wherever both say something.  Every option is one line of
 * one table (options.c): its name, the field it sets, how its value is read,
 * its default and its --help text; getopt_long's table, the config file's
 * names, --help and the defaults all come from it, and a test checks
 * shmallocd(8) and README.md against it.  Layer: session (no libuv).
 */
#ifndef SHMA_SERVER_OPTIONS_H
#define SHMA_SERVER_OPTIONS_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "quota.h"

#define OPTIONS_MAX_IDS 32

struct options {
	char socket_path[108];     /* sun_path's size */
	char instance[48];         /* "" until derived from the socket path */
	uint64_t arena_size;
	uint64_t max_memory;       /* 0: no cap */
	uint64_t base;             /* --base; 0: as recorded, or the default */
	uint64_t client_max_memory; /* per process, over all its connections; 0: no cap */
	uint64_t large_threshold;
	uint64_t decay_ms;
	uint32_t max_frame;
	uint64_t handshake_timeout_ms; /* no Hello by then: closed; 0: never */
	uint64_t write_timeout_ms; /* answers unread (queue past its cap) this long: closed */
	struct quota_limits uid_max; /* --uid-max-*: limits per uid (quota.c); 0: none */
	uid_t allow_uid[OPTIONS_MAX_IDS];
	unsigned nallow_uid;
	gid_t allow_gid[OPTIONS_MAX_IDS];
	unsigned nallow_gid;
	mode_t socket_mode;        /* of the socket; its directory is 0700 or 0750 */
	mode_t segment_mode;       /* of shm segments */
	int log_level;
	int daemonize;
	int cleanup;
	int discard;               /* remove segments an earlier run left */
	int backing;               /* enum seg_backing (shm/seg.h): --backing */
	char backing_dir[256];     /* --backing file:PATH */
	char backing_name[264];    /* --backing as given: shm, memfd, file:PATH */
	int huge_pages;            /* --huge-pages */
	char huge_got[48];         /* what --huge-pages got (backing.c): for stats */
};

enum options_result { OPTIONS_RUN = 0, OPTIONS_EXIT_OK = 1, OPTIONS_ERROR = -1 };

/* Fills o from defaults, the config file and argv; messages go to out/err. */
enum options_result options_parse(struct options *o, int argc, char **argv, FILE *out,
				  FILE *err);

/* One option of the table. */
enum options_kind {
	OPTIONS_VALUE,   /* sets a field: on the command line or in the config file */
	OPTIONS_CONFIG,  /* --config: read first, wherever it stands */
	OPTIONS_HELP,    /* --help */
	OPTIONS_VERSION, /* --version */
};

struct options_def {
	const char *name;   /* the long name, without the dashes */
	char short_name;    /* 0: none */
	const char *arg;    /* what the value is, in --help; NULL: takes none */
	enum options_kind kind;
	/* Reads arg into the field at offset (size bytes) of o: 0, or a
	 * negative errno after a message on err naming the option. */
	int (*parse)(const struct options_def *def, struct options *o, const char *arg,
		     FILE *err);
	size_t offset, size;
	const char *dflt;   /* the default as it would be given; NULL: zero */
	const char *help;   /* --help text; each '\n' starts an indented line */
};

/* The table, in --help's order; *n gets its length.  Static: never freed. */
const struct options_def *options_table(size_t *n);

/* "64M" -> 67108864; K, M, G, T suffixes (powers of 1024), optional "B"/"iB".
 * 0 or -EINVAL / -ERANGE. */
int options_parse_size(const char *s, uint64_t *out);

#endif
