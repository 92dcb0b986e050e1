/* SPDX-License-Identifier: MIT */
/*
 * Framing: how messages travel on the socket.
 *
 * A frame is a 4-byte little-endian length followed by that many bytes of one
 * protobuf message.  The length must be 0 < len <= the limit the reader chose;
 * the decoder says so before anything is allocated for the body, so a peer
 * can never make us read or allocate past our limits.  Both the daemon and the
 * client use this one decoder.
 */
#ifndef SHMA_FRAME_H
#define SHMA_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER 4u
#define FRAME_DEFAULT_MAX (1u << 20) /* 1 MiB */

enum frame_status {
	FRAME_NEED_MORE = 0, /* not a whole frame yet */
	FRAME_OK = 1,        /* *body, *body_len name one whole message */
	FRAME_EMPTY = -1,    /* a zero length: never valid */
	FRAME_TOO_BIG = -2,  /* length over the limit */
};

/*
 * Looks at the bytes buf[0..len) and says whether they start with a whole
 * frame.  On FRAME_OK, *body and *body_len name the message and *consumed the
 * bytes the frame takes (header included).  Never reads past buf + len.
 */
enum frame_status frame_next(const uint8_t *buf, size_t len, uint32_t max,
			     const uint8_t **body, uint32_t *body_len,
			     size_t *consumed);

/* Writes the 4-byte little-endian header for a body of len bytes. */
void frame_put_header(uint8_t out[FRAME_HEADER], uint32_t len);

/* What a status means, for log lines and errors. */
const char *frame_status_str(enum frame_status s);

#endif
