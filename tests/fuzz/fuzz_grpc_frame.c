/*
 * libFuzzer target: the gRPC message framer (grpc_frame.c) and the small
 * parsers beside it (grpc_status.c: grpc-timeout, grpc-status,
 * grpc-message). Input: one byte choosing the maximum message size and
 * how the rest is split into reads, then the bytes of a request body.
 * Checked: whatever the split, the same messages come out, each within
 * the maximum; the decoder never holds more than one message; a prefix
 * it refuses stays refused; what was decoded frames back to the input,
 * and with what is still pending makes up all of it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "grpc_frame.h"
#include "grpc_status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decode all of in, in reads of `step` bytes; frame what comes out. */
static int
fuzz_decode(const uint8_t *in, size_t len, size_t max, size_t step,
    struct evbuffer *out, size_t *ret_pending)
{
	struct grpc_frame_decoder d;
	size_t off = 0;
	int r = 0;

	grpc_frame_decoder_init(&d, max);
	while (off < len && r >= 0) {
		size_t chunk = len - off < step ? len - off : step;

		while (chunk > 0) {
			const uint8_t *msg;
			size_t used, mlen;

			r = grpc_frame_decode(&d, in + off, chunk, &used, &msg,
			    &mlen, NULL);
			if (r < 0)
				break;
			if (used > chunk)
				abort();
			off += used;
			chunk -= used;
			if (r == 0) {
				if (chunk != 0)
					abort();
				break;
			}
			if (mlen > max || (mlen > 0 && msg == NULL))
				abort();
			if (grpc_frame_append(out, msg, mlen) != 0)
				abort();
		}
		if (grpc_frame_decoder_pending(&d) > max + GRPC_FRAME_HEADER_LEN ||
		    d.buf_cap > max)
			abort();
	}
	if (r < 0) {
		const uint8_t *msg;
		size_t used, mlen;

		/* Sticky. */
		if (grpc_frame_decode(&d, (const uint8_t *)"\0\0\0\0\0", 5,
		    &used, &msg, &mlen, NULL) != r || used != 0)
			abort();
		if (r != -EMSGSIZE && r != -ENOTSUP && r != -EPROTO)
			abort();
	}
	*ret_pending = grpc_frame_decoder_pending(&d);
	grpc_frame_decoder_free(&d);
	if (grpc_frame_decoder_pending(&d) != 0)
		abort();
	return r;
}

static void
fuzz_parsers(const uint8_t *data, size_t size)
{
	uint64_t ns;
	char *enc, *copy;
	size_t n;

	if (grpc_timeout_parse((const char *)data, size, &ns) == 0 &&
	    (size < 2 || size > 9))
		abort();
	(void)grpc_status_parse((const char *)data, size);
	if ((copy = malloc(size + 1)) == NULL)
		return;
	memcpy(copy, data, size);
	copy[size] = '\0';
	/* Encoding never fails on text and decodes back to it. */
	if ((enc = grpc_message_encode(copy, size)) != NULL) {
		size_t want = strlen(copy);

		n = grpc_message_decode(enc, strlen(enc));
		if (n != want || memcmp(enc, copy, n) != 0)
			abort();
		free(enc);
	}
	n = grpc_message_decode(copy, size);
	if (n > size || copy[n] != '\0')
		abort();
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t maxes[] = { 0, 1, 16, 1024, 65536 };
	struct evbuffer *one, *split;
	size_t max, step, p1, p2, n;
	int r1, r2;

	if (size < 1)
		return 0;
	max = maxes[data[0] % 5];
	step = 1 + (data[0] >> 3);
	data++;
	size--;
	fuzz_parsers(data, size);

	one = evbuffer_new();
	split = evbuffer_new();
	if (one == NULL || split == NULL)
		abort();
	r1 = fuzz_decode(data, size, max, size > 0 ? size : 1, one, &p1);
	r2 = fuzz_decode(data, size, max, step, split, &p2);
	n = evbuffer_get_length(one);
	/* The split changes nothing. */
	if (r1 != r2 || n != evbuffer_get_length(split))
		abort();
	/* Framed again, the messages are the start of the input ... */
	if (n > size || (n > 0 &&
	    (memcmp(evbuffer_pullup(one, -1), data, n) != 0 ||
		memcmp(evbuffer_pullup(split, -1), data, n) != 0)))
		abort();
	/* ... and without an error, the rest is what is pending. */
	if (r1 == 0 && (p1 != p2 || n + p1 != size))
		abort();
	evbuffer_free(one);
	evbuffer_free(split);
	return 0;
}
