/*
 * Unit tests of core/ctl/ctl_fmt.c: UTF-8 decoding and encoding, text
 * cleaned for a terminal, RFC 3339 times, ages, enum names.
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

#include "ctl_fmt.h"
#include "utf8.h"
#include "troika/v1/admin.pb-c.h"

static void
check_clean(const char *in, const char *expect, int width)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *s;

	assert_non_null(b);
	assert_int_equal(ctl_fmt_clean(b, in), width);
	len = evbuffer_get_length(b);
	s = malloc(len + 1);
	assert_non_null(s);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	assert_string_equal(s, expect);
	free(s);
	evbuffer_free(b);
}

static void
test_clean(void **state)
{
	(void)state;
	check_clean(NULL, "", 0);
	check_clean("", "", 0);
	check_clean("plain \\ text", "plain \\ text", 12);
	check_clean("a\nb\rc\td", "a\\nb\\rc\\td", 10);
	check_clean("\033]0;title\007", "\\x1b]0;title\\x07", 16);
	check_clean("\x7f", "\\x7f", 4);
	/* C1 control U+009B (CSI), then U+00A0 which is fine. */
	check_clean("\xc2\x9b\xc2\xa0", "\\x9b\xc2\xa0", 5);
	check_clean("\xe2\x82\xac 5", "\xe2\x82\xac 5", 3);
	check_clean("bad\xff", "bad\xef\xbf\xbd", 4);
}

static void
test_utf8(void **state)
{
	static const uint32_t cps[] = {
	    0, 0x7f, 0x80, 0x7ff, 0x800, 0xfffd, 0xffff, 0x10000, 0x10ffff};
	uint32_t cp;

	(void)state;
	for (size_t i = 0; i < sizeof(cps) / sizeof(cps[0]); i++) {
		struct evbuffer *b = evbuffer_new();
		char buf[8];
		size_t n;

		assert_non_null(b);
		assert_int_equal(ctl_utf8_put(b, cps[i]), 0);
		n = evbuffer_get_length(b);
		evbuffer_remove(b, buf, n);
		assert_int_equal(utf8_next(buf, n, &cp), n);
		assert_int_equal(cp, cps[i]);
		evbuffer_free(b);
	}
	/* Invalid: one byte taken, U+FFFD. */
	assert_int_equal(utf8_next("\xf8\x88\x80\x80\x80", 5, &cp), 1);
	assert_int_equal(cp, 0xfffd);
	assert_int_equal(utf8_next("\xf0\x9f\x98", 3, &cp), 1);
	assert_int_equal(cp, 0xfffd);
	/* Overlong 4-byte form. */
	assert_int_equal(utf8_next("\xf0\x8f\xbf\xbf", 4, &cp), 1);
	assert_int_equal(cp, 0xfffd);
}

static void
test_times(void **state)
{
	char b[CTL_RFC3339_LEN];

	(void)state;
	assert_string_equal(
	    ctl_fmt_rfc3339(0, 0, b, sizeof(b)), "1970-01-01T00:00:00Z");
	assert_string_equal(
	    ctl_fmt_rfc3339(1700000000123456789ull, 3, b, sizeof(b)),
	    "2023-11-14T22:13:20.123Z");
	assert_string_equal(
	    ctl_fmt_rfc3339(1700000000123456789ull, 6, b, sizeof(b)),
	    "2023-11-14T22:13:20.123456Z");
	assert_string_equal(
	    ctl_fmt_rfc3339(1700000000123456789ull, 9, b, sizeof(b)),
	    "2023-11-14T22:13:20.123456789Z");
	/* The largest fixed64: far in the future, still a date. */
	assert_string_equal(ctl_fmt_rfc3339(UINT64_MAX, 0, b, sizeof(b)),
	    "2554-07-21T23:34:33Z");
}

static void
test_ages(void **state)
{
	static const struct {
		int64_t s;
		const char *text;
	} cases[] = {
	    {0, "0s"},
	    {59, "59s"},
	    {60, "1m"},
	    {192, "3m12s"},
	    {3599, "59m59s"},
	    {3600, "1h"},
	    {18180, "5h3m"},
	    {18185, "5h3m"},
	    {86399, "23h59m"},
	    {86400, "1d"},
	    {187200, "2d4h"},
	    {-3, "in 3s"},
	    {-3600, "in 1h"},
	};
	char b[CTL_AGE_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(
		    ctl_fmt_age(cases[i].s * 1000000000, b, sizeof(b)),
		    cases[i].text);
	/* Below a second, and the extremes. */
	assert_string_equal(ctl_fmt_age(999999999, b, sizeof(b)), "0s");
	assert_string_equal(ctl_fmt_age(-1, b, sizeof(b)), "in 0s");
	assert_string_equal(ctl_fmt_age(INT64_MAX, b, sizeof(b)), "106751d23h");
	assert_string_equal(
	    ctl_fmt_age(INT64_MIN, b, sizeof(b)), "in 106751d23h");
}

static void
test_enums(void **state)
{
	char b[32];

	(void)state;
	assert_string_equal(ctl_enum_name(&troika__v1__severity__descriptor,
	                        TROIKA__V1__SEVERITY__SEVERITY_WARNING),
	    "SEVERITY_WARNING");
	assert_null(ctl_enum_name(&troika__v1__severity__descriptor, 9));
	assert_string_equal(ctl_enum_short(&troika__v1__evidence__descriptor,
	                        TROIKA__V1__EVIDENCE__EVIDENCE_AMBIGUOUS,
	                        "EVIDENCE_", 1, b, sizeof(b)),
	    "ambiguous");
	assert_string_equal(
	    ctl_enum_short(&troika__v1__check_status__descriptor,
	        TROIKA__V1__CHECK_STATUS__CHECK_STATUS_UNKNOWN, "CHECK_STATUS_",
	        0, b, sizeof(b)),
	    "UNKNOWN");
	assert_string_equal(
	    ctl_enum_short(&troika__v1__check_status__descriptor, -4,
	        "CHECK_STATUS_", 0, b, sizeof(b)),
	    "?-4");
	/* Colours: never an escape for "none". */
	assert_string_equal(ctl_color_on(CTL_COLOR_NONE), "");
	assert_int_equal(ctl_check_status_color(
	                     TROIKA__V1__CHECK_STATUS__CHECK_STATUS_CRITICAL),
	    CTL_COLOR_RED);
	assert_int_equal(ctl_check_status_color(77), CTL_COLOR_MAGENTA);
	assert_int_equal(
	    ctl_severity_color(TROIKA__V1__SEVERITY__SEVERITY_INFO),
	    CTL_COLOR_NONE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_clean),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_times),
	    cmocka_unit_test(test_ages),
	    cmocka_unit_test(test_enums),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
