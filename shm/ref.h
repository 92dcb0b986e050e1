/*
 * Refs: how an allocation is named across processes.
 *
 * A ref is 64 bits: the segment kind (2 bits), the segment id (22 bits) and
 * the byte offset inside the segment (40 bits, so a segment may be up to
 * 1 TiB).  0 is the null ref: kind 0 is never a segment.  Because segment names
 * derive from kind and id, any process can turn a ref into a mapping without
 * asking the daemon, and a ref stays valid across a daemon restart.
 */
#ifndef SHMA_REF_H
#define SHMA_REF_H

#include <stdint.h>

enum ref_kind {
	REF_NULL = 0,
	REF_ARENA = 1, /* segment 'a<id>': spans of small objects */
	REF_LARGE = 2, /* segment 'l<id>': one large block */
};

#define REF_OFFSET_BITS 40
#define REF_ID_BITS 22
#define REF_OFFSET_MASK ((UINT64_C(1) << REF_OFFSET_BITS) - 1)
#define REF_ID_MAX ((UINT32_C(1) << REF_ID_BITS) - 1)

static inline uint64_t ref_make(enum ref_kind kind, uint32_t id, uint64_t off)
{
	return (uint64_t)kind << 62 | (uint64_t)(id & REF_ID_MAX) << REF_OFFSET_BITS |
	       (off & REF_OFFSET_MASK);
}

static inline enum ref_kind ref_kind(uint64_t ref)
{
	return (enum ref_kind)(ref >> 62);
}

static inline uint32_t ref_id(uint64_t ref)
{
	return (uint32_t)(ref >> REF_OFFSET_BITS) & REF_ID_MAX;
}

static inline uint64_t ref_offset(uint64_t ref)
{
	return ref & REF_OFFSET_MASK;
}

#endif
