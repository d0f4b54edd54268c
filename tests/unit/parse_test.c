/*
 * Unit tests of core/lib/util/parse.c: durations, sizes, integers,
 * booleans and their canonical forms, with every error path.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "parse.h"

static void
assert_duration(const char *s, int64_t want)
{
	int64_t ms = -1;

	if (parse_duration_ms(s, &ms) != 0)
		fail_msg("parse_duration_ms(\"%s\") failed", s);
	assert_int_equal(ms, want);
}

static void
assert_duration_err(const char *s, int err)
{
	int64_t ms = 12345;

	assert_int_equal(parse_duration_ms(s, &ms), err);
	assert_int_equal(ms, 12345); /* untouched on error */
}

static void
test_duration_units(void **state)
{
	(void)state;
	assert_duration("0ms", 0);
	assert_duration("0s", 0);
	assert_duration("500ms", 500);
	assert_duration("5s", 5000);
	assert_duration("1m", 60000);
	assert_duration("6h", 6LL * 3600 * 1000);
	assert_duration("2d", 2LL * 86400 * 1000);
	assert_duration("007s", 7000);
}

static void
test_duration_chained(void **state)
{
	(void)state;
	assert_duration("1m30s", 90000);
	assert_duration("1s500ms", 1500);
	assert_duration("1h30m", 5400000);
	assert_duration("1d2h3m4s5ms",
	    86400000LL + 2 * 3600000 + 3 * 60000 + 4000 + 5);
	/* Components need not be contiguous units, only decreasing. */
	assert_duration("1h5s", 3605000);
}

static void
test_duration_errors(void **state)
{
	(void)state;
	assert_duration_err(NULL, -EINVAL);
	assert_duration_err("", -EINVAL);
	assert_duration_err("5", -EINVAL);      /* unit required */
	assert_duration_err("fast", -EINVAL);
	assert_duration_err("s", -EINVAL);
	assert_duration_err("5x", -EINVAL);
	assert_duration_err("5sec", -EINVAL);
	assert_duration_err("5S", -EINVAL);     /* units are lower case */
	assert_duration_err("-5s", -EINVAL);
	assert_duration_err("+5s", -EINVAL);
	assert_duration_err(" 5s", -EINVAL);
	assert_duration_err("5s ", -EINVAL);
	assert_duration_err("5 s", -EINVAL);
	assert_duration_err("1.5s", -EINVAL);
	assert_duration_err("1s1m", -EINVAL);   /* increasing units */
	assert_duration_err("1s1s", -EINVAL);   /* a unit twice */
	assert_duration_err("1m1", -EINVAL);    /* trailing bare number */
	assert_duration_err("5mss", -EINVAL);
}

static void
test_duration_range(void **state)
{
	(void)state;
	assert_duration("9223372036854775807ms", INT64_MAX);
	assert_duration_err("9223372036854775808ms", -ERANGE);
	assert_duration_err("99999999999999999999s", -ERANGE);
	/* Each product fits alone; the sum overflows. */
	assert_duration("106751991167d7h12m55s807ms", INT64_MAX);
	assert_duration_err("106751991167d7h12m55s808ms", -ERANGE);
	assert_duration_err("106751991167d23h", -ERANGE);
	assert_duration("9223372036854775s", 9223372036854775000LL);
	assert_duration_err("9223372036854776s", -ERANGE); /* x1000 overflows */
}

static void
assert_size(const char *s, int64_t want)
{
	int64_t v = -1;

	if (parse_size(s, &v) != 0)
		fail_msg("parse_size(\"%s\") failed", s);
	assert_int_equal(v, want);
}

static void
assert_size_err(const char *s, int err)
{
	int64_t v = 12345;

	assert_int_equal(parse_size(s, &v), err);
	assert_int_equal(v, 12345);
}

static void
test_size(void **state)
{
	(void)state;
	assert_size("0", 0);
	assert_size("512", 512);
	assert_size("512B", 512);
	assert_size("1KB", 1000);
	assert_size("2MB", 2000000);
	assert_size("1GB", 1000000000);
	assert_size("1TB", 1000000000000LL);
	assert_size("1KiB", 1024);
	assert_size("64MiB", 64LL << 20);
	assert_size("3GiB", 3LL << 30);
	assert_size("2TiB", 2LL << 40);
	assert_size("9223372036854775807", INT64_MAX);
}

static void
test_size_errors(void **state)
{
	(void)state;
	assert_size_err(NULL, -EINVAL);
	assert_size_err("", -EINVAL);
	assert_size_err("MiB", -EINVAL);
	assert_size_err("1kb", -EINVAL);
	assert_size_err("1KIB", -EINVAL);
	assert_size_err("1 MiB", -EINVAL);
	assert_size_err("1.5MiB", -EINVAL);
	assert_size_err("-1", -EINVAL);
	assert_size_err("1MiB1KiB", -EINVAL);
	assert_size_err("1PiB", -EINVAL);
	assert_size_err("9223372036854775808", -ERANGE);
	assert_size_err("8388608TiB", -ERANGE); /* 2^23 * 2^40 = 2^63 */
	assert_size_err("9223372036854776KB", -ERANGE);
}

static void
assert_int64(const char *s, int64_t want)
{
	int64_t v = -1;

	if (parse_int64(s, &v) != 0)
		fail_msg("parse_int64(\"%s\") failed", s);
	assert_int_equal(v, want);
}

static void
assert_int64_err(const char *s, int err)
{
	int64_t v = 12345;

	assert_int_equal(parse_int64(s, &v), err);
	assert_int_equal(v, 12345);
}

static void
test_int64(void **state)
{
	(void)state;
	assert_int64("0", 0);
	assert_int64("-0", 0);
	assert_int64("42", 42);
	assert_int64("-42", -42);
	assert_int64("0042", 42);
	assert_int64("9223372036854775807", INT64_MAX);
	assert_int64("-9223372036854775807", -INT64_MAX);
	assert_int64("-9223372036854775808", INT64_MIN);
}

static void
test_int64_errors(void **state)
{
	(void)state;
	assert_int64_err(NULL, -EINVAL);
	assert_int64_err("", -EINVAL);
	assert_int64_err("-", -EINVAL);
	assert_int64_err("+1", -EINVAL);
	assert_int64_err("--1", -EINVAL);
	assert_int64_err("1a", -EINVAL);
	assert_int64_err("0x10", -EINVAL);
	assert_int64_err("1.0", -EINVAL);
	assert_int64_err(" 1", -EINVAL);
	assert_int64_err("1 ", -EINVAL);
	assert_int64_err("9223372036854775808", -ERANGE);
	assert_int64_err("-9223372036854775809", -ERANGE);
	assert_int64_err("99999999999999999999999", -ERANGE);
}

static void
test_bool(void **state)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };
	int b;

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		b = -1;
		assert_int_equal(parse_bool(yes[i], &b), 0);
		assert_int_equal(b, 1);
		b = -1;
		assert_int_equal(parse_bool(no[i], &b), 0);
		assert_int_equal(b, 0);
	}
	b = -1;
	assert_int_equal(parse_bool(NULL, &b), -EINVAL);
	assert_int_equal(parse_bool("", &b), -EINVAL);
	assert_int_equal(parse_bool("1", &b), -EINVAL);
	assert_int_equal(parse_bool("TRUE", &b), -EINVAL);
	assert_int_equal(parse_bool("truex", &b), -EINVAL);
	assert_int_equal(parse_bool("tru", &b), -EINVAL);
	assert_int_equal(b, -1);
}

static void
assert_fmt_duration(int64_t ms, const char *want)
{
	char buf[64];

	assert_string_equal(format_duration_ms(ms, buf, sizeof(buf)), want);
}

static void
test_format_duration(void **state)
{
	char small[4], one[1] = { 'x' };
	int64_t ms;

	(void)state;
	assert_fmt_duration(0, "0s");
	assert_fmt_duration(1, "1ms");
	assert_fmt_duration(999, "999ms");
	assert_fmt_duration(1000, "1s");
	assert_fmt_duration(1500, "1s500ms");
	assert_fmt_duration(5000, "5s");
	assert_fmt_duration(60000, "1m");
	assert_fmt_duration(90000, "1m30s");
	assert_fmt_duration(3600000, "1h");
	assert_fmt_duration(86400000, "1d");
	assert_fmt_duration(7LL * 86400000, "7d");
	assert_fmt_duration(86400000LL + 3600000 + 60000 + 1000 + 1,
	    "1d1h1m1s1ms");
	assert_fmt_duration(-5, "-");

	/* Canonical text parses back to the same value. */
	for (ms = 1; ms < INT64_MAX / 3; ms = ms * 3 + 7) {
		char buf[64];
		int64_t back;

		format_duration_ms(ms, buf, sizeof(buf));
		assert_int_equal(parse_duration_ms(buf, &back), 0);
		assert_int_equal(back, ms);
	}

	/* A short buffer is cut, but always terminated. */
	format_duration_ms(90000, small, sizeof(small));
	assert_string_equal(small, "1m");
	format_duration_ms(1500, one, sizeof(one));
	assert_string_equal(one, "");
	assert_ptr_equal(format_duration_ms(5, one, 0), one);
}

static void
assert_fmt_size(int64_t v, const char *want)
{
	char buf[64];

	assert_string_equal(format_size(v, buf, sizeof(buf)), want);
}

static void
test_format_size(void **state)
{
	int64_t v;

	(void)state;
	assert_fmt_size(0, "0");
	assert_fmt_size(1, "1");
	assert_fmt_size(1000, "1000");
	assert_fmt_size(1024, "1KiB");
	assert_fmt_size(1536, "1536");
	assert_fmt_size(64LL << 20, "64MiB");
	assert_fmt_size(1LL << 30, "1GiB");
	assert_fmt_size(5LL << 40, "5TiB");
	assert_fmt_size(1LL << 50, "1024TiB");
	assert_fmt_size(-1024, "-1024");

	for (v = 1; v < INT64_MAX / 5; v = v * 5 + 1024) {
		char buf[64];
		int64_t back;

		format_size(v, buf, sizeof(buf));
		assert_int_equal(parse_size(buf, &back), 0);
		assert_int_equal(back, v);
	}
}

static void
test_hostport(void **state)
{
	char host[8];
	int port;

	(void)state;
	assert_int_equal(
	    parse_hostport("a:1", host, sizeof(host), 0, &port), 0);
	assert_string_equal(host, "a");
	assert_int_equal(port, 1);
	assert_int_equal(
	    parse_hostport("[::1]:2", host, sizeof(host), 0, &port),
	    0);
	assert_string_equal(host, "::1");
	assert_int_equal(
	    parse_hostport("a:", host, sizeof(host), 1, &port),
	    -EINVAL);
	assert_int_equal(
	    parse_hostport(":1", host, sizeof(host), 1, &port),
	    -EINVAL);
	assert_int_equal(
	    parse_hostport("a:1x", host, sizeof(host), 1, &port),
	    -EINVAL);
	assert_int_equal(
	    parse_hostport("[::1:2", host, sizeof(host), 1, &port),
	    -EINVAL);
	assert_int_equal(parse_hostport("a:65536", host, sizeof(host), 1, &port),
	    -ERANGE);
	assert_int_equal(parse_hostport("a:0", host, sizeof(host), 1, &port),
	    -ERANGE);
	assert_int_equal(parse_hostport("::1:80", host, sizeof(host), 1, &port),
	    -EINVAL);
	/* Too long for the buffer. */
	assert_int_equal(parse_hostport("abcdefgh:1", host, sizeof(host), 1, &port),
	    -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_duration_units),
		cmocka_unit_test(test_duration_chained),
		cmocka_unit_test(test_duration_errors),
		cmocka_unit_test(test_duration_range),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_size_errors),
		cmocka_unit_test(test_int64),
		cmocka_unit_test(test_int64_errors),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_format_duration),
		cmocka_unit_test(test_format_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
