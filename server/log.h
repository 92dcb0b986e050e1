/* SPDX-License-Identifier: MIT */
/*
 * Logging: one line per event on stderr, "shmallocd[pid]: level: message",
 * which is what systemd's journal and a terminal both want.  Layer: session
 * (libc only; the loop and the session layer both log).
 */
#ifndef SHMA_SERVER_LOG_H
#define SHMA_SERVER_LOG_H

/* SLOG_, not LOG_: <syslog.h> defines SLOG_INFO, SLOG_DEBUG and the rest. */
enum log_level { SLOG_ERROR = 0, SLOG_WARN = 1, SLOG_INFO = 2, SLOG_DEBUG = 3 };

void log_set_level(enum log_level level);
/* -1 if name is not a level (error, warn, info, debug). */
int log_level_parse(const char *name);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
