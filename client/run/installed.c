/* SPDX-License-Identifier: MIT */
/*
 * Where shmalloc-run finds the preload library and the daemon.
 *
 * The paths compiled in are those of configure's prefix.  But a package is
 * installed into a staging directory (`make install DESTDIR=...`), and a
 * user may install elsewhere than configured (`make install
 * prefix=$HOME/.local`): the compiled path then names a file that is not
 * there (or an older one).  So shmalloc-run looks first where the file is
 * relative to its own executable -- the configured libdir seen from the
 * configured bindir, applied to the directory /proc/self/exe is in -- and
 * only then at the compiled path.  The same layout (bin/ beside lib/ and
 * sbin/) holds under any prefix or DESTDIR, so what one `make install`
 * put together is found together.
 */
#include "installed.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The length of the first component of p (no leading '/'). */
static size_t component(const char *p)
{
	const char *slash = strchr(p, '/');
	return slash ? (size_t)(slash - p) : strlen(p);
}

static const char *skip_slashes(const char *p)
{
	while (*p == '/')
		p++;
	return p;
}

int installed_relative(const char *from, const char *to, char *out, size_t n)
{
	const char *f = skip_slashes(from), *t = skip_slashes(to);
	/* The components both share. */
	for (;;) {
		size_t fl = component(f), tl = component(t);
		if (fl == 0 || fl != tl || memcmp(f, t, fl) != 0)
			break;
		f = skip_slashes(f + fl);
		t = skip_slashes(t + tl);
	}
	size_t at = 0;
	out[0] = '\0';
	/* One ".." for each component of from left. */
	while (*f != '\0') {
		int w = snprintf(out + at, n - at, "../");
		if (w < 0 || (size_t)w >= n - at)
			return -1;
		at += (size_t)w;
		f = skip_slashes(f + component(f));
	}
	int w = snprintf(out + at, n - at, "%s", t);
	return w < 0 || (size_t)w >= n - at ? -1 : 0;
}

const char *installed_path(const char *configured_bindir, const char *configured_path,
			   char *buf, size_t n)
{
	char exe[PATH_MAX], rel[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (len > 0 && installed_relative(configured_bindir, configured_path, rel, sizeof rel) == 0) {
		exe[len] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash != NULL) {
			*slash = '\0';
			int w = snprintf(buf, n, "%s/%s", exe, rel);
			if (w > 0 && (size_t)w < n && access(buf, F_OK) == 0)
				return buf;
		}
	}
	return configured_path;
}
