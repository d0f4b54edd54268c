/*
 * Unit tests of core/lib/grpc_frame.c: the 5-byte prefix, appending to an
 * evbuffer, and the incremental decoder fed in every split, with zero-
 * length messages, the size limit, bad flags and sticky errors.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "grpc_frame.h"
#include "grpc_status.h"

static void
test_header(void **state)
{
	uint8_t h[GRPC_FRAME_HEADER_LEN];

	(void)state;
	grpc_frame_header(h, 0, 0);
	assert_memory_equal(h, "\0\0\0\0\0", 5);
	grpc_frame_header(h, 1, 0x01020304);
	assert_memory_equal(h, "\x01\x01\x02\x03\x04", 5);
	grpc_frame_header(h, 7, 0xffffffffu); /* any non-zero is "compressed" */
	assert_memory_equal(h, "\x01\xff\xff\xff\xff", 5);
}

static void
test_append(void **state)
{
	struct evbuffer *b = evbuffer_new();
	uint8_t out[32];

	(void)state;
	assert_non_null(b);
	assert_int_equal(grpc_frame_append(b, "hey", 3), 0);
	assert_int_equal(grpc_frame_append(b, NULL, 0), 0);
	assert_int_equal(evbuffer_get_length(b), 8 + 5);
	assert_int_equal(evbuffer_remove(b, out, sizeof(out)), 13);
	assert_memory_equal(out, "\0\0\0\0\x03hey\0\0\0\0\0", 13);
	/* Too long for the prefix: refused, nothing appended. */
	assert_int_equal(grpc_frame_append(b, out, (size_t)UINT32_MAX + 1),
	    -EMSGSIZE);
	assert_int_equal(evbuffer_get_length(b), 0);
	evbuffer_free(b);
}

/* Messages collected by feed(). */
struct got {
	int n;
	size_t len[16];
	uint8_t data[16][64];
	int compressed[16];
};

/*
 * Feed buf in chunks of `step` bytes (the last one shorter), collecting
 * messages. Returns 0 or the decoder's error.
 */
static int
feed(struct grpc_frame_decoder *d, const uint8_t *buf, size_t len,
    size_t step, struct got *g)
{
	size_t off = 0;

	while (off < len) {
		size_t chunk = len - off < step ? len - off : step;

		while (chunk > 0) {
			const uint8_t *msg = NULL;
			size_t used = 12345, mlen = 0;
			int comp = -1, r;

			r = grpc_frame_decode(d, buf + off, chunk, &used, &msg,
			    &mlen, &comp);
			if (r < 0) {
				assert_int_equal(used, 0);
				return r;
			}
			assert_true(used <= chunk);
			off += used;
			chunk -= used;
			if (r == 0) {
				assert_int_equal(chunk, 0);
				break;
			}
			assert_int_equal(r, 1);
			assert_non_null(msg);
			assert_true(g->n < 16 && mlen <= 64);
			g->len[g->n] = mlen;
			memcpy(g->data[g->n], msg, mlen);
			g->compressed[g->n] = comp;
			g->n++;
		}
	}
	return 0;
}

/* Three messages (7 bytes, empty, 40 bytes) in every possible split. */
static void
test_decode_splits(void **state)
{
	uint8_t wire[64 + 3 * 5];
	uint8_t big[40];
	size_t n = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	grpc_frame_header(wire + n, 0, 7);
	memcpy(wire + n + 5, "message", 7);
	n += 12;
	grpc_frame_header(wire + n, 0, 0);
	n += 5;
	grpc_frame_header(wire + n, 0, sizeof(big));
	memcpy(wire + n + 5, big, sizeof(big));
	n += 5 + sizeof(big);

	for (size_t step = 1; step <= n; step++) {
		struct grpc_frame_decoder d;
		struct got g = { 0 };

		grpc_frame_decoder_init(&d, 1024);
		assert_int_equal(feed(&d, wire, n, step, &g), 0);
		assert_int_equal(g.n, 3);
		assert_int_equal(g.len[0], 7);
		assert_memory_equal(g.data[0], "message", 7);
		assert_int_equal(g.compressed[0], 0);
		assert_int_equal(g.len[1], 0);
		assert_int_equal(g.len[2], sizeof(big));
		assert_memory_equal(g.data[2], big, sizeof(big));
		assert_int_equal(grpc_frame_decoder_pending(&d), 0);
		grpc_frame_decoder_free(&d);
	}
}

static void
test_decode_pending(void **state)
{
	struct grpc_frame_decoder d;
	const uint8_t *msg;
	size_t used, len;

	(void)state;
	grpc_frame_decoder_init(&d, 100);
	assert_int_equal(grpc_frame_decoder_pending(&d), 0);
	assert_int_equal(grpc_frame_decode(&d, (const uint8_t *)"\0\0\0", 3,
	    &used, &msg, &len, NULL), 0);
	assert_int_equal(used, 3);
	assert_int_equal(grpc_frame_decoder_pending(&d), 3);
	assert_int_equal(grpc_frame_decode(&d, (const uint8_t *)"\0\x04" "ab", 4,
	    &used, &msg, &len, NULL), 0);
	assert_int_equal(used, 4);
	assert_int_equal(grpc_frame_decoder_pending(&d), 7);
	/* The rest, and the start of the next message. */
	assert_int_equal(grpc_frame_decode(&d, (const uint8_t *)"cd\0", 3,
	    &used, &msg, &len, NULL), 1);
	assert_int_equal(used, 2);
	assert_int_equal(len, 4);
	assert_memory_equal(msg, "abcd", 4);
	assert_int_equal(grpc_frame_decoder_pending(&d), 0);
	/* A zero-length call: nothing happens. */
	assert_int_equal(grpc_frame_decode(&d, (const uint8_t *)"", 0, &used,
	    &msg, &len, NULL), 0);
	assert_int_equal(used, 0);
	grpc_frame_decoder_free(&d);
	grpc_frame_decoder_free(NULL);
}

/* A complete message in one chunk is handed out without a copy. */
static void
test_decode_zero_copy(void **state)
{
	struct grpc_frame_decoder d;
	const uint8_t wire[] = "\0\0\0\0\x02hi\0\0\0\0\x01x";
	const uint8_t *msg;
	size_t used, len;

	(void)state;
	grpc_frame_decoder_init(&d, 100);
	assert_int_equal(grpc_frame_decode(&d, wire, 13, &used, &msg, &len,
	    NULL), 1);
	assert_int_equal(used, 7);
	assert_ptr_equal(msg, wire + 5);
	assert_int_equal(grpc_frame_decode(&d, wire + 7, 6, &used, &msg, &len,
	    NULL), 1);
	assert_ptr_equal(msg, wire + 12);
	assert_int_equal(len, 1);
	assert_null(d.buf); /* nothing was ever buffered */
	grpc_frame_decoder_free(&d);
}

static void
test_decode_max(void **state)
{
	struct grpc_frame_decoder d;
	uint8_t wire[5 + 16];
	struct got g = { 0 };

	(void)state;
	memset(wire + 5, 'z', 16);
	/* Exactly the maximum is fine ... */
	grpc_frame_decoder_init(&d, 16);
	grpc_frame_header(wire, 0, 16);
	assert_int_equal(feed(&d, wire, sizeof(wire), 3, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.len[0], 16);
	/* ... one more byte is not: refused at the prefix, before any body. */
	grpc_frame_header(wire, 0, 17);
	assert_int_equal(feed(&d, wire, 5, 5, &g), -EMSGSIZE);
	assert_int_equal(g.n, 1);
	assert_int_equal(grpc_frame_error_status(-EMSGSIZE),
	    GRPC_STATUS_RESOURCE_EXHAUSTED);
	grpc_frame_decoder_free(&d);
}

/* A 100 MiB prefix against the 4 MiB default: refused, nothing held. */
static void
test_decode_huge_prefix(void **state)
{
	struct grpc_frame_decoder d;
	uint8_t wire[5];
	struct got g = { 0 };

	(void)state;
	grpc_frame_decoder_init(&d, GRPC_FRAME_MAX_DEFAULT);
	grpc_frame_header(wire, 0, 100u * 1024 * 1024);
	assert_int_equal(feed(&d, wire, 5, 1, &g), -EMSGSIZE);
	assert_null(d.buf);
	grpc_frame_decoder_free(&d);

	/* A 4 MiB prefix followed by a trickle: memory grows with the data. */
	grpc_frame_decoder_init(&d, GRPC_FRAME_MAX_DEFAULT);
	grpc_frame_header(wire, 0, GRPC_FRAME_MAX_DEFAULT);
	assert_int_equal(feed(&d, wire, 5, 5, &g), 0);
	assert_int_equal(feed(&d, (const uint8_t *)"0123456789", 10, 10, &g),
	    0);
	assert_int_equal(g.n, 0);
	assert_true(d.buf_cap < 64 * 1024);
	assert_int_equal(grpc_frame_decoder_pending(&d), 15);
	grpc_frame_decoder_free(&d);
}

/* The full 4 MiB message in 1000-byte pieces; memory ends at its size. */
static void
test_decode_max_default(void **state)
{
	struct grpc_frame_decoder d;
	size_t total = GRPC_FRAME_HEADER_LEN + GRPC_FRAME_MAX_DEFAULT;
	uint8_t *wire = malloc(total);
	size_t off = 0, used, len;
	const uint8_t *msg = NULL;
	int r = 0;

	(void)state;
	assert_non_null(wire);
	grpc_frame_header(wire, 0, GRPC_FRAME_MAX_DEFAULT);
	for (size_t i = 5; i < total; i++)
		wire[i] = (uint8_t)(i % 251);
	grpc_frame_decoder_init(&d, GRPC_FRAME_MAX_DEFAULT);
	while (off < total) {
		size_t chunk = total - off < 1000 ? total - off : 1000;

		r = grpc_frame_decode(&d, wire + off, chunk, &used, &msg, &len,
		    NULL);
		assert_true(r >= 0);
		off += used;
		if (r == 1)
			break;
	}
	assert_int_equal(r, 1);
	assert_int_equal(off, total);
	assert_int_equal(len, GRPC_FRAME_MAX_DEFAULT);
	assert_memory_equal(msg, wire + 5, len);
	assert_int_equal(d.buf_cap, GRPC_FRAME_MAX_DEFAULT);
	/* The next message's prefix gives the big buffer back. */
	assert_int_equal(grpc_frame_decode(&d, (const uint8_t *)"\0\0\0\0\x09"
	    "abc", 8, &used, &msg, &len, NULL), 0);
	assert_true(d.buf_cap <= 4096);
	grpc_frame_decoder_free(&d);
	free(wire);
}

static void
test_decode_flags(void **state)
{
	struct grpc_frame_decoder d;
	struct got g = { 0 };

	(void)state;
	/* Compressed flag without a negotiated encoding: refused. */
	grpc_frame_decoder_init(&d, 100);
	assert_int_equal(feed(&d, (const uint8_t *)"\x01\0\0\0\x01z", 6, 6, &g),
	    -ENOTSUP);
	assert_int_equal(grpc_frame_error_status(-ENOTSUP),
	    GRPC_STATUS_INTERNAL);
	/* Sticky: even a good message is refused now. */
	assert_int_equal(feed(&d, (const uint8_t *)"\0\0\0\0\x01z", 6, 6, &g),
	    -ENOTSUP);
	assert_int_equal(g.n, 0);
	grpc_frame_decoder_free(&d);

	/* Allowed: passed on with the flag. */
	grpc_frame_decoder_init(&d, 100);
	d.allow_compressed = 1;
	assert_int_equal(feed(&d, (const uint8_t *)"\x01\0\0\0\x01z", 6, 2, &g),
	    0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.compressed[0], 1);
	/* Other flag values are never valid. */
	assert_int_equal(feed(&d, (const uint8_t *)"\x02\0\0\0\x01z", 6, 6, &g),
	    -EPROTO);
	assert_int_equal(grpc_frame_error_status(-EPROTO),
	    GRPC_STATUS_INTERNAL);
	grpc_frame_decoder_free(&d);

	/* Known from the first byte: no need to wait for the length. */
	grpc_frame_decoder_init(&d, 100);
	assert_int_equal(feed(&d, (const uint8_t *)"\x80", 1, 1, &g), -EPROTO);
	grpc_frame_decoder_free(&d);
	grpc_frame_decoder_init(&d, 100);
	assert_int_equal(feed(&d, (const uint8_t *)"\x01", 1, 1, &g), -ENOTSUP);
	grpc_frame_decoder_free(&d);
}

/* Round trip of grpc_frame_append output through the decoder. */
static void
test_roundtrip(void **state)
{
	struct evbuffer *b = evbuffer_new();
	struct grpc_frame_decoder d;
	struct got g = { 0 };
	uint8_t *flat;
	size_t len;

	(void)state;
	for (int i = 0; i < 10; i++) {
		char m[16];

		memset(m, 'a' + i, sizeof(m));
		assert_int_equal(grpc_frame_append(b, m, (size_t)i), 0);
	}
	len = evbuffer_get_length(b);
	flat = evbuffer_pullup(b, -1);
	grpc_frame_decoder_init(&d, 9);
	assert_int_equal(feed(&d, flat, len, 4, &g), 0);
	assert_int_equal(g.n, 10);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(g.len[i], (size_t)i);
		for (int j = 0; j < i; j++)
			assert_int_equal(g.data[i][j], 'a' + i);
	}
	grpc_frame_decoder_free(&d);
	evbuffer_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_decode_splits),
		cmocka_unit_test(test_decode_pending),
		cmocka_unit_test(test_decode_zero_copy),
		cmocka_unit_test(test_decode_max),
		cmocka_unit_test(test_decode_huge_prefix),
		cmocka_unit_test(test_decode_max_default),
		cmocka_unit_test(test_decode_flags),
		cmocka_unit_test(test_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
