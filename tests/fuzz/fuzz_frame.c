/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the frame decoder and the Request decoder on arbitrary
 * bytes, as the daemon meets them on a socket.
 *
 * The input is cut into frames with frame_next() exactly as the server's
 * read path does (a limit, the length checked before anything is used), and
 * every whole frame is unpacked as a Request and freed.  What must hold:
 * no read past the input, no leak, no crash, and frame_next() never names a
 * body outside the bytes it was given.
 */
#include "frame.h"
#include "shmalloc.pb-c.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A small limit as well as the default, so both sides of it are reached. */
static const uint32_t limits[] = {64, FRAME_DEFAULT_MAX};

static void one_limit(const uint8_t *data, size_t size, uint32_t max)
{
	size_t off = 0;
	for (;;) {
		const uint8_t *body;
		uint32_t n;
		size_t used;
		enum frame_status st = frame_next(data + off, size - off, max, &body, &n, &used);
		if (st != FRAME_OK) {
			(void)frame_status_str(st);
			return;
		}
		if (n == 0 || n > max || body < data + off || body + n > data + size ||
		    used != FRAME_HEADER + (size_t)n)
			abort();
		Shma__Request *req = shma__request__unpack(NULL, n, body);
		if (req != NULL)
			shma__request__free_unpacked(req, NULL);
		off += used;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
		one_limit(data, size, limits[i]);
	return 0;
}
