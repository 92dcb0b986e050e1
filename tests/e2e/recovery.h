/* SPDX-License-Identifier: MIT */
/*
 * What the recovery suites (check_reclaim.c, check_restart.c,
 * check_reconnect.c, check_threads.c) share: the daemon's count of rejected requests, a
 * client forked onto a daemon of the test's own, the bound on what a kill
 * may leak in flight, and the block sizes the holders use.
 */
#ifndef SHMA_TESTS_RECOVERY_H
#define SHMA_TESTS_RECOVERY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The batches in flight at the kill leak (a refill asked ahead of need and
 * not yet taken in, a flush not yet read): at most one refill per class the
 * holder used (a batch is at most 512 KiB) and one flush. */
#define RECOVERY_IN_FLIGHT_MAX ((uint64_t)24 << 20)

/* The daemon's count of rejected requests and refs (the totals', printed
 * just before "roots"), from the daemon this process is connected to. */
uint64_t recovery_stat_rejected(void);

/* Runs fn(arg) in a child connected to socket; returns its pid. */
pid_t recovery_fork_client(const char *socket, int (*fn)(void *), void *arg);

/* The size of a holder's i-th block: small classes to 1 MiB large ones. */
size_t recovery_block_size(unsigned i);

struct control_block;
/* The control block the daemon made for this process: the one of e2e's
 * instance whose header names our pid, mapped whole (read-write: the tests
 * scribble on it); NULL if none. */
struct control_block *recovery_my_control_block(void);
/* The same for process pid (a child of the test's). */
struct control_block *recovery_control_block_of(pid_t pid);

#endif
