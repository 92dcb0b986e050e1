/* SPDX-License-Identifier: MIT */
/*
 * A root's name: see rootname.h.
 */
#include "rootname.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

/* Length of the UTF-8 sequence at p (1-4), or 0 if it is not one or is a
 * control character (C0, DEL, C1). */
static size_t name_char(const unsigned char *p)
{
	if (p[0] < 0x20 || p[0] == 0x7f)
		return 0;
	if (p[0] < 0x80)
		return 1;
	size_t n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
	if (n == 0 || p[0] > 0xf4)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xf0 && p[1] < 0x90) ||
	    (p[0] == 0xf4 && p[1] > 0x8f) || (p[0] == 0xed && p[1] > 0x9f) ||
	    (p[0] == 0xc2 && p[1] < 0xa0))
		return 0; /* overlong, past U+10FFFF, a surrogate, or C1 */
	return n;
}

int rootname_check(const char *name)
{
	if (name == NULL || name[0] == '\0')
		return -EINVAL;
	size_t len = strnlen(name, ROOT_NAME_MAX + 1);
	if (len > ROOT_NAME_MAX)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < len;) {
		size_t n = name_char((const unsigned char *)name + i);
		if (n == 0 || n > len - i)
			return -EINVAL;
		i += n;
	}
	return 0;
}
