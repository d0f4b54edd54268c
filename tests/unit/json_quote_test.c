/*
 * Unit tests of core/lib/json_quote.c, the one JSON string escaper behind
 * troikactl's --json and the alert hooks' bodies: the short escapes, every
 * other control byte, DEL and C1, valid UTF-8 in all its lengths passed
 * through, and each kind of invalid byte sequence turned into \ufffd.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "json_quote.h"

static void
assert_quoted_n(const char *in, size_t len, const char *want)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *got;

	assert_non_null(b);
	assert_int_equal(json_quote(b, in, len), 0);
	n = evbuffer_get_length(b);
	got = malloc(n + 1);
	assert_non_null(got);
	evbuffer_remove(b, got, n);
	got[n] = '\0';
	assert_string_equal(got, want);
	free(got);
	evbuffer_free(b);
}

static void
assert_quoted(const char *in, const char *want)
{
	assert_quoted_n(in, strlen(in), want);
}

static void
test_plain_and_short_escapes(void **state)
{
	(void)state;
	assert_quoted("", "\"\"");
	assert_quoted("plain text", "\"plain text\"");
	/* '/' may be escaped in JSON; it is not. */
	assert_quoted("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
	assert_quoted("\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\"");
	/* Only len bytes count, and a NUL among them is a control. */
	assert_quoted_n("ab\0cd", 5, "\"ab\\u0000cd\"");
	assert_quoted_n("abcdef", 3, "\"abc\"");
}

static void
test_controls_del_and_c1(void **state)
{
	char in[64], want[512];
	size_t k = 0, w;

	(void)state;
	/* Every C0 control without a short form, then DEL. */
	w = (size_t)snprintf(want, sizeof(want), "\"");
	for (int c = 1; c < 0x20; c++) {
		if (c == '\n' || c == '\r' || c == '\t' || c == '\b' ||
		    c == '\f')
			continue;
		in[k++] = (char)c;
		w += (size_t)snprintf(want + w, sizeof(want) - w, "\\u%04x", c);
	}
	in[k++] = 0x7f;
	in[k] = '\0';
	snprintf(want + w, sizeof(want) - w, "\\u007f\"");
	assert_quoted(in, want);
	/* C1 controls (U+0080..U+009F, two bytes in UTF-8): U+009B is CSI. */
	assert_quoted("x\xc2\x9b[2Jy\xc2\x80\xc2\x9f",
	    "\"x\\u009b[2Jy\\u0080\\u009f\"");
	/* U+00A0, the first code point after them, passes. */
	assert_quoted("\xc2\xa0", "\"\xc2\xa0\"");
}

static void
test_utf8(void **state)
{
	(void)state;
	/* Valid: 2, 3 and 4 byte forms, and the highest code point. */
	assert_quoted("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf",
	    "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"");
	/* Each bad byte becomes one \ufffd; the next byte starts afresh. */
	assert_quoted("a\x80z", "\"a\\ufffdz\"");
	assert_quoted("\xff\xfe", "\"\\ufffd\\ufffd\"");
	/* Overlong '/' (C0 AF and E0 80 AF). */
	assert_quoted("\xc0\xaf", "\"\\ufffd\\ufffd\"");
	assert_quoted("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");
	/* A surrogate, and beyond U+10FFFF. */
	assert_quoted("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");
	assert_quoted("\xf4\x90\x80\x80",
	    "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	/* Cut by the end of the input (len, not the NUL), or by a quote. */
	assert_quoted_n("x\xe2\x82\xac", 3, "\"x\\ufffd\\ufffd\"");
	assert_quoted("\xe2\"", "\"\\ufffd\\\"\"");
	/* A real U+FFFD is written the same way as a replaced byte. */
	assert_quoted("\xef\xbf\xbd", "\"\\ufffd\"");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_and_short_escapes),
		cmocka_unit_test(test_controls_del_and_c1),
		cmocka_unit_test(test_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
