/* SPDX-License-Identifier: MIT */
/*
 * A root's name: the one rule, kept by the library before it sends a name,
 * by the daemon when it receives one, and by the roots directory that
 * stores it (server/heap/roots.c).  libc only, so that every layer can use
 * it; proto/wire.h makes it part of the wire contract.
 *
 * A name is 1 to ROOT_NAME_MAX bytes of UTF-8 without control characters
 * (C0, DEL, C1), overlong forms or surrogates: names end up in logs and in
 * other processes' listings, where such bytes forge or garble lines.
 */
#ifndef SHMA_ROOTNAME_H
#define SHMA_ROOTNAME_H

#define ROOT_NAME_MAX 255 /* bytes of a name, NUL not included */

/* 0, -EINVAL (NULL, empty, a byte the rule refuses) or -ENAMETOOLONG (more
 * than ROOT_NAME_MAX bytes; found without reading past byte ROOT_NAME_MAX). */
int rootname_check(const char *name);

#endif
