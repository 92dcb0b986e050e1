/* SPDX-License-Identifier: MIT */
/*
 * Framing: see frame.h.  Nothing here allocates; the caller owns the buffer
 * and decides how much it will hold.
 */
#include "frame.h"

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

enum frame_status frame_next(const uint8_t *buf, size_t len, uint32_t max,
			     const uint8_t **body, uint32_t *body_len,
			     size_t *consumed)
{
	if (len < FRAME_HEADER)
		return FRAME_NEED_MORE;
	uint32_t n = get_le32(buf);
	if (n == 0)
		return FRAME_EMPTY;
	if (n > max)
		return FRAME_TOO_BIG;
	if (len - FRAME_HEADER < n)
		return FRAME_NEED_MORE;
	*body = buf + FRAME_HEADER;
	*body_len = n;
	*consumed = FRAME_HEADER + (size_t)n;
	return FRAME_OK;
}

void frame_put_header(uint8_t out[FRAME_HEADER], uint32_t len)
{
	out[0] = (uint8_t)len;
	out[1] = (uint8_t)(len >> 8);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 24);
}

const char *frame_status_str(enum frame_status s)
{
	switch (s) {
	case FRAME_NEED_MORE:
		return "incomplete frame";
	case FRAME_OK:
		return "ok";
	case FRAME_EMPTY:
		return "zero-length frame";
	case FRAME_TOO_BIG:
		return "frame longer than the limit";
	}
	return "unknown frame status";
}
