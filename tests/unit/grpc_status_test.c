/*
 * Unit tests of core/lib/grpc_status.c: status names, grpc-status values,
 * the HTTP/2 and HTTP error mappings, grpc-timeout in both directions and
 * the percent-encoding of grpc-message.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "grpc_status.h"

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(grpc_status_str(GRPC_STATUS_OK), "OK");
	assert_string_equal(grpc_status_str(GRPC_STATUS_DEADLINE_EXCEEDED),
	    "DEADLINE_EXCEEDED");
	assert_string_equal(grpc_status_str(8), "RESOURCE_EXHAUSTED");
	assert_string_equal(grpc_status_str(12), "UNIMPLEMENTED");
	assert_string_equal(grpc_status_str(16), "UNAUTHENTICATED");
	assert_string_equal(grpc_status_str(17), "INVALID");
	assert_string_equal(grpc_status_str(-1), "INVALID");
	/* Every code has a name that reads back to it. */
	for (int i = 0; i <= GRPC_STATUS_MAX; i++)
		assert_int_equal(grpc_status_from_str(grpc_status_str(i)), i);
	assert_int_equal(grpc_status_from_str("INVALID"), -1);
	assert_int_equal(grpc_status_from_str("ok"), -1);
	assert_int_equal(grpc_status_from_str(""), -1);
}

static void
test_status_parse(void **state)
{
	(void)state;
	assert_int_equal(grpc_status_parse("0", 1), 0);
	assert_int_equal(grpc_status_parse("14", 2), 14);
	assert_int_equal(grpc_status_parse("16", 2), 16);
	assert_int_equal(grpc_status_parse("014", 3), 14);
	/* Well-formed but unknown: UNKNOWN, as the spec says. */
	assert_int_equal(grpc_status_parse("17", 2), GRPC_STATUS_UNKNOWN);
	assert_int_equal(grpc_status_parse("999999999", 9), GRPC_STATUS_UNKNOWN);
	/* Not numbers. */
	assert_int_equal(grpc_status_parse("", 0), -EINVAL);
	assert_int_equal(grpc_status_parse("-1", 2), -EINVAL);
	assert_int_equal(grpc_status_parse("+1", 2), -EINVAL);
	assert_int_equal(grpc_status_parse(" 1", 2), -EINVAL);
	assert_int_equal(grpc_status_parse("1 ", 2), -EINVAL);
	assert_int_equal(grpc_status_parse("OK", 2), -EINVAL);
	assert_int_equal(grpc_status_parse("1000000000", 10), -EINVAL);
	/* len counts, not the NUL. */
	assert_int_equal(grpc_status_parse("123", 1), 1);
}

static void
test_http2_errors(void **state)
{
	(void)state;
	assert_int_equal(grpc_status_from_http2_error(NGHTTP2_NO_ERROR),
	    GRPC_STATUS_INTERNAL);
	assert_int_equal(grpc_status_from_http2_error(NGHTTP2_PROTOCOL_ERROR),
	    GRPC_STATUS_INTERNAL);
	assert_int_equal(grpc_status_from_http2_error(NGHTTP2_REFUSED_STREAM),
	    GRPC_STATUS_UNAVAILABLE);
	assert_int_equal(grpc_status_from_http2_error(NGHTTP2_CANCEL),
	    GRPC_STATUS_CANCELLED);
	assert_int_equal(grpc_status_from_http2_error(
	    NGHTTP2_ENHANCE_YOUR_CALM), GRPC_STATUS_RESOURCE_EXHAUSTED);
	assert_int_equal(grpc_status_from_http2_error(
	    NGHTTP2_INADEQUATE_SECURITY), GRPC_STATUS_PERMISSION_DENIED);
	assert_int_equal(grpc_status_from_http2_error(NGHTTP2_CONNECT_ERROR),
	    GRPC_STATUS_INTERNAL);
	assert_int_equal(grpc_status_from_http2_error(0xdead),
	    GRPC_STATUS_UNKNOWN);
}

static void
test_http_status(void **state)
{
	(void)state;
	assert_int_equal(grpc_status_from_http_status(200), GRPC_STATUS_OK);
	assert_int_equal(grpc_status_from_http_status(400),
	    GRPC_STATUS_INTERNAL);
	assert_int_equal(grpc_status_from_http_status(401),
	    GRPC_STATUS_UNAUTHENTICATED);
	assert_int_equal(grpc_status_from_http_status(403),
	    GRPC_STATUS_PERMISSION_DENIED);
	assert_int_equal(grpc_status_from_http_status(404),
	    GRPC_STATUS_UNIMPLEMENTED);
	assert_int_equal(grpc_status_from_http_status(429),
	    GRPC_STATUS_UNAVAILABLE);
	assert_int_equal(grpc_status_from_http_status(502),
	    GRPC_STATUS_UNAVAILABLE);
	assert_int_equal(grpc_status_from_http_status(503),
	    GRPC_STATUS_UNAVAILABLE);
	assert_int_equal(grpc_status_from_http_status(504),
	    GRPC_STATUS_UNAVAILABLE);
	assert_int_equal(grpc_status_from_http_status(500),
	    GRPC_STATUS_UNKNOWN);
	assert_int_equal(grpc_status_from_http_status(415),
	    GRPC_STATUS_UNKNOWN);
}

static void
assert_timeout(const char *s, uint64_t want)
{
	uint64_t ns = 42;

	if (grpc_timeout_parse(s, strlen(s), &ns) != 0)
		fail_msg("grpc_timeout_parse(\"%s\") failed", s);
	if (ns != want)
		fail_msg("grpc_timeout_parse(\"%s\") = %llu, want %llu", s,
		    (unsigned long long)ns, (unsigned long long)want);
}

static void
assert_timeout_bad(const char *s)
{
	uint64_t ns = 42;

	if (grpc_timeout_parse(s, strlen(s), &ns) != -EINVAL)
		fail_msg("grpc_timeout_parse(\"%s\") accepted", s);
	assert_int_equal(ns, 42); /* untouched */
}

static void
test_timeout_parse(void **state)
{
	(void)state;
	assert_timeout("100m", 100000000ULL);
	assert_timeout("5S", 5000000000ULL);
	assert_timeout("1H", 3600000000000ULL);
	assert_timeout("2M", 120000000000ULL);
	assert_timeout("7u", 7000ULL);
	assert_timeout("9n", 9ULL);
	assert_timeout("0S", 0);
	assert_timeout("0n", 0);
	assert_timeout("00000001S", 1000000000ULL);
	assert_timeout("99999999n", 99999999ULL);
	assert_timeout("99999999S", 99999999000000000ULL);
	/* 99999999 hours overflow 64 bits of nanoseconds: saturated. */
	assert_timeout("99999999H", UINT64_MAX);
	assert_timeout("99999999M", 5999999940000000000ULL);
	/* 5124095 hours still fit, 5124096 do not. */
	assert_timeout("5124095H", 5124095ULL * 3600000000000ULL);
	assert_timeout("5124096H", UINT64_MAX);

	assert_timeout_bad("");
	assert_timeout_bad("S");
	assert_timeout_bad("5");
	assert_timeout_bad("5s");       /* units are case-sensitive */
	assert_timeout_bad("5h");
	assert_timeout_bad("5x");
	assert_timeout_bad("123456789S"); /* nine digits */
	assert_timeout_bad("-5S");
	assert_timeout_bad("+5S");
	assert_timeout_bad(" 5S");
	assert_timeout_bad("5 S");
	assert_timeout_bad("5S ");
	assert_timeout_bad("1.5S");
	assert_timeout_bad("5SS");
	assert_timeout_bad("0x5S");
}

static void
test_timeout_parse_len(void **state)
{
	uint64_t ns = 0;

	(void)state;
	/* The header value is not NUL-terminated: len is the truth. */
	assert_int_equal(grpc_timeout_parse("15Sxyz", 3, &ns), 0);
	assert_int_equal(ns, 15000000000ULL);
	assert_int_equal(grpc_timeout_parse("15S", 2, &ns), -EINVAL);
}

static void
assert_format(uint64_t ns, const char *want)
{
	char buf[GRPC_TIMEOUT_BUFLEN];
	uint64_t back = 0;
	size_t n;

	n = grpc_timeout_format(ns, buf);
	assert_string_equal(buf, want);
	assert_int_equal(n, strlen(want));
	/* It reads back, never shorter than asked. */
	assert_int_equal(grpc_timeout_parse(buf, n, &back), 0);
	assert_true(back >= ns);
}

static void
test_timeout_format(void **state)
{
	(void)state;
	assert_format(0, "0n");
	assert_format(1, "1n");
	assert_format(99999999ULL, "99999999n");
	/* 100000000 ns needs 9 digits in n: 100000u. */
	assert_format(100000000ULL, "100000u");
	/* Rounded up, never down. */
	assert_format(100000001ULL, "100001u");
	assert_format(5000000000ULL, "5000000u");
	assert_format(99999999000ULL, "99999999u");
	assert_format(100000000000ULL, "100000m");
	assert_format(3600000000000ULL, "3600000m");
	assert_format(99999999ULL * 1000000000ULL, "99999999S");
	assert_format(99999999ULL * 1000000000ULL + 1, "1666667M");
	/* The largest value: hours, capped at 8 digits. */
	assert_format(UINT64_MAX, "5124096H");
}

static void
assert_encode(const char *in, size_t max, const char *want)
{
	char *out = grpc_message_encode(in, max);

	assert_non_null(out);
	assert_string_equal(out, want);
	free(out);
}

static void
test_message_encode(void **state)
{
	(void)state;
	assert_encode("", 100, "");
	assert_encode("plain text, ok!", 100, "plain text, ok!");
	assert_encode("100%", 100, "100%25");
	assert_encode("a\nb\tc\r", 100, "a%0Ab%09c%0D");
	assert_encode("\x7f~ ", 100, "%7F~ ");
	/* UTF-8 bytes are encoded one by one. */
	assert_encode("caf\xc3\xa9", 100, "caf%C3%A9");
	/* Cut at max_in bytes ... */
	assert_encode("abcdef", 3, "abc");
	/* ... but never inside a UTF-8 sequence. */
	assert_encode("ab\xc3\xa9", 3, "ab");
	assert_encode("ab\xc3\xa9", 4, "ab%C3%A9");
	assert_encode("a\xe2\x82\xac", 2, "a");
	assert_encode("a\xe2\x82\xac", 3, "a");
	assert_encode("a\xe2\x82\xac", 1, "a");
	assert_encode("abc", 0, "");
}

static void
assert_decode(const char *in, const char *want, size_t want_len)
{
	char buf[64];
	size_t n;

	strcpy(buf, in);
	n = grpc_message_decode(buf, strlen(buf));
	assert_int_equal(n, want_len);
	assert_memory_equal(buf, want, want_len);
	assert_int_equal(buf[n], '\0');
}

static void
test_message_decode(void **state)
{
	(void)state;
	assert_decode("", "", 0);
	assert_decode("plain", "plain", 5);
	assert_decode("100%25", "100%", 4);
	assert_decode("a%0Ab", "a\nb", 3);
	assert_decode("a%0ab", "a\nb", 3); /* lower case hex too */
	assert_decode("caf%C3%A9", "caf\xc3\xa9", 5);
	assert_decode("%00x", "\0x", 2);
	/* Broken sequences stay as they are. */
	assert_decode("100%", "100%", 4);
	assert_decode("%4", "%4", 2);
	assert_decode("%G1", "%G1", 3);
	assert_decode("%%41", "%A", 2);
	assert_decode("%4%41", "%4A", 3);
	/* Encode then decode gives back the original. */
	{
		const char *orig = "line 1\nline 2: 50% \x01 caf\xc3\xa9";
		char *enc = grpc_message_encode(orig, 1000);
		size_t n;

		assert_non_null(enc);
		n = grpc_message_decode(enc, strlen(enc));
		assert_int_equal(n, strlen(orig));
		assert_string_equal(enc, orig);
		free(enc);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_status_parse),
		cmocka_unit_test(test_http2_errors),
		cmocka_unit_test(test_http_status),
		cmocka_unit_test(test_timeout_parse),
		cmocka_unit_test(test_timeout_parse_len),
		cmocka_unit_test(test_timeout_format),
		cmocka_unit_test(test_message_encode),
		cmocka_unit_test(test_message_decode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
