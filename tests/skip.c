/* SPDX-License-Identifier: MIT */
/*
 * The skip line of a test that cannot run here (see skip.h): one line, one
 * write, so that lines of tests run in parallel processes never mix.
 */
#include "skip.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void test_skip(const char *fn, const char *why_format, ...)
{
	char line[512];
	size_t n = strlen(fn);
	if (n > 3 && strcmp(fn + n - 3, "_fn") == 0)
		n -= 3;
	int k = snprintf(line, sizeof line, "SKIP: %.*s: ", (int)n, fn);
	va_list ap;
	va_start(ap, why_format);
	if (k > 0 && (size_t)k < sizeof line)
		k += vsnprintf(line + k, sizeof line - (size_t)k, why_format, ap);
	va_end(ap);
	if (k < 0)
		return;
	if ((size_t)k > sizeof line - 2)
		k = (int)sizeof line - 2;
	line[k++] = '\n';
	fflush(stderr);
	if (write(STDERR_FILENO, line, (size_t)k) < 0)
		return; /* nowhere to say it */
}
