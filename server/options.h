/*
 * The daemon's options: the command line, and a config file (--config) that
 * takes the same long options as "name = value" lines.  The command line wins
 * over the file wherever both say something.  Layer: session (no libuv).
 */
#ifndef SHMA_SERVER_OPTIONS_H
#define SHMA_SERVER_OPTIONS_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

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
	uint32_t uid_max_connections; /* limits per uid (quota.c); 0: none */
	uint32_t uid_max_orphans;
	uint32_t uid_max_roots;
	uint32_t uid_max_large;
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
};

enum options_result { OPTIONS_RUN = 0, OPTIONS_EXIT_OK = 1, OPTIONS_ERROR = -1 };

/* Fills o from defaults, the config file and argv; messages go to out/err. */
enum options_result options_parse(struct options *o, int argc, char **argv, FILE *out,
				  FILE *err);

/* "64M" -> 67108864; K, M, G, T suffixes (powers of 1024), optional "B"/"iB".
 * 0 or -EINVAL / -ERANGE. */
int options_parse_size(const char *s, uint64_t *out);

#endif
