/*
 * Prometheus text format 0.0.4: exact expected text for families, samples,
 * every escape, values, histograms; name validation tables; the process
 * metrics of the test itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/buffer.h>

#include "metrics.h"

/*
 * Allocation failure injection, outside sanitizer builds (ASan brings its
 * own malloc). glibc's allocator stays underneath; while armed, the n-th
 * allocation fails.
 */
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_MALLOC_FAULTS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_MALLOC_FAULTS 0
#endif
#endif
#ifndef HAVE_MALLOC_FAULTS
#define HAVE_MALLOC_FAULTS 1
#endif

#if HAVE_MALLOC_FAULTS
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static int fault_armed;
static long fault_countdown; /* allocations left before one fails */

static int
fault_now(void)
{
	if (!fault_armed || fault_countdown-- != 0)
		return 0;
	errno = ENOMEM; /* as the real allocator does */
	return 1;
}

void *
malloc(size_t n)
{
	return fault_now() ? NULL : __libc_malloc(n);
}

void *
calloc(size_t n, size_t size)
{
	return fault_now() ? NULL : __libc_calloc(n, size);
}

void *
realloc(void *old, size_t n)
{
	return fault_now() ? NULL : __libc_realloc(old, n);
}
#endif

/* The buffer's contents as a string, which it then drains. */
static char *
take(struct evbuffer *b)
{
	size_t len = evbuffer_get_length(b);
	char *s = malloc(len + 1);

	assert_non_null(s);
	assert_int_equal(evbuffer_remove(b, s, len), (int)len);
	s[len] = '\0';
	return s;
}

static void
assert_text(struct evbuffer *b, const char *want)
{
	char *got = take(b);

	if (strcmp(got, want) != 0) {
		print_error("got:\n%s\nwant:\n%s\n", got, want);
		free(got);
		fail();
	}
	free(got);
}

static int
buf_setup(void **state)
{
	*state = evbuffer_new();
	return *state == NULL ? -1 : 0;
}

static int
buf_teardown(void **state)
{
	evbuffer_free(*state);
	return 0;
}

static void
test_name_valid(void **state)
{
	static const char *const good[] = {
		"a", "A", "_", ":", "a:b_c9", "process_cpu_seconds_total",
		"__internal", ":colon_first", "z09",
	};
	static const char *const bad[] = {
		"", "9a", "a-b", "a b", "a.b", "r\xc3\xa9", "a\n", "-", "a{",
		"a=b", "a\"",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!metrics_name_valid(good[i]))
			fail_msg("\"%s\" should be valid", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (metrics_name_valid(bad[i]))
			fail_msg("\"%s\" should be invalid", bad[i]);
	assert_false(metrics_name_valid(NULL));
}

static void
test_label_name_valid(void **state)
{
	static const char *const good[] = {
		"a", "A", "_", "_a", "le", "a_b9", "check", "Z_",
	};
	static const char *const bad[] = {
		"", "__name__", "__x", "__", "9a", "a:b", ":a", "a-b", "a b",
		"r\xc3\xa9", "a\"",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!metrics_label_name_valid(good[i]))
			fail_msg("\"%s\" should be valid", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (metrics_label_name_valid(bad[i]))
			fail_msg("\"%s\" should be invalid", bad[i]);
	assert_false(metrics_label_name_valid(NULL));
}

static void
test_format_value(void **state)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
		{ 0, "0" },
		{ -0.0, "0" },
		{ 3, "3" },
		{ -3, "-3" },
		{ 1e15, "1000000000000000" },
		{ 9007199254740991.0, "9007199254740991" },
		{ -9007199254740991.0, "-9007199254740991" },
		{ 9007199254740992.0, "9007199254740992" },
		{ 1e20, "1e+20" },
		{ 1e21, "1e+21" },
		{ 0.5, "0.5" },
		{ -2.5, "-2.5" },
		{ 0.1, "0.1" },
		{ 123.456, "123.456" },
		{ 0.001098, "0.001098" },
		{ 1e-5, "1e-05" },
		{ -1e-300, "-1e-300" },
		{ 1000000000000000.5, "1000000000000000.5" },
		{ DBL_MAX, "1.7976931348623157e+308" },
		{ DBL_MIN, "2.2250738585072014e-308" },
		{ 5e-324, "5e-324" },
	};
	char buf[32];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(metrics_format_value(cases[i].v, buf,
		    sizeof(buf)), cases[i].want);
	/* Computed values: the shortest text that reads back exactly. */
	assert_string_equal(metrics_format_value(0.1 + 0.2, buf, sizeof(buf)),
	    "0.30000000000000004");
	assert_string_equal(metrics_format_value(1.0 / 3, buf, sizeof(buf)),
	    "0.3333333333333333");
	assert_string_equal(metrics_format_value(2.0 / 3, buf, sizeof(buf)),
	    "0.6666666666666666");
	assert_string_equal(metrics_format_value(NAN, buf, sizeof(buf)), "NaN");
	assert_string_equal(metrics_format_value(-NAN, buf, sizeof(buf)),
	    "NaN");
	assert_string_equal(metrics_format_value(INFINITY, buf, sizeof(buf)),
	    "+Inf");
	assert_string_equal(metrics_format_value(-INFINITY, buf, sizeof(buf)),
	    "-Inf");
	/* Returns buf; a short buffer is cut but terminated. */
	assert_ptr_equal(metrics_format_value(1, buf, sizeof(buf)), buf);
	assert_string_equal(metrics_format_value(12345, buf, 4), "123");
	buf[0] = 'x';
	metrics_format_value(1, buf, 0);
	assert_int_equal(buf[0], 'x');
}

static void
test_family(void **state)
{
	struct evbuffer *b = *state;

	metrics_family(b, "troika_up", "gauge", "Whether the agent is up.");
	assert_text(b, "# HELP troika_up Whether the agent is up.\n"
	    "# TYPE troika_up gauge\n");

	/* HELP escapes backslash and newline; quotes and tabs stay. */
	metrics_family(b, "x", "counter", "a\\b\nc \"q\"\td\\\\\n");
	assert_text(b, "# HELP x a\\\\b\\nc \"q\"\td\\\\\\\\\\n\n"
	    "# TYPE x counter\n");

	metrics_family(b, "x", "gauge", "");
	assert_text(b, "# HELP x \n# TYPE x gauge\n");

	/* Either line is optional. */
	metrics_family(b, "x", "gauge", NULL);
	assert_text(b, "# TYPE x gauge\n");
	metrics_family(b, "x", NULL, "h");
	assert_text(b, "# HELP x h\n");
}

static void
test_sample(void **state)
{
	static const struct troika_label two[] = {
		{ "check", "mysql" },
		{ "node", "node-1" },
	};
	static const struct troika_label le = { "le", "0.5" };
	struct evbuffer *b = *state;

	metrics_sample(b, "troika_up", NULL, 0, NULL, 1);
	assert_text(b, "troika_up 1\n");

	metrics_sample(b, "x", two, 2, NULL, 3);
	assert_text(b, "x{check=\"mysql\",node=\"node-1\"} 3\n");

	metrics_sample(b, "x", two, 1, NULL, 0.25);
	assert_text(b, "x{check=\"mysql\"} 0.25\n");

	/* extra goes last, also alone. */
	metrics_sample(b, "x_bucket", two, 2, &le, 7);
	assert_text(b,
	    "x_bucket{check=\"mysql\",node=\"node-1\",le=\"0.5\"} 7\n");
	metrics_sample(b, "x_bucket", NULL, 0, &le, 7);
	assert_text(b, "x_bucket{le=\"0.5\"} 7\n");

	metrics_sample(b, "x", NULL, 0, NULL, NAN);
	assert_text(b, "x NaN\n");
	metrics_sample(b, "x", NULL, 0, NULL, INFINITY);
	assert_text(b, "x +Inf\n");
	metrics_sample(b, "x", NULL, 0, NULL, -INFINITY);
	assert_text(b, "x -Inf\n");
	metrics_sample(b, "x", NULL, 0, NULL, 1e-5);
	assert_text(b, "x 1e-05\n");
}

static void
test_sample_escaping(void **state)
{
	static const struct troika_label l[] = {
		{ "bs", "C:\\dir\\" },
		{ "q", "say \"hi\"" },
		{ "nl", "two\nlines\n" },
		{ "all", "\\\"\n" },
		{ "empty", "" },
		{ "null", NULL },
		{ "other", "tab\there {}=,'" },
	};
	struct evbuffer *b = *state;

	metrics_sample(b, "x", l, 7, NULL, 1);
	assert_text(b, "x{bs=\"C:\\\\dir\\\\\",q=\"say \\\"hi\\\"\","
	    "nl=\"two\\nlines\\n\",all=\"\\\\\\\"\\n\",empty=\"\",null=\"\","
	    "other=\"tab\there {}=,'\"} 1\n");

	metrics_escape_label_value(b, "a\\b\"c\nd");
	assert_text(b, "a\\\\b\\\"c\\nd");
	metrics_escape_label_value(b, "");
	assert_text(b, "");
	metrics_escape_label_value(b, NULL);
	assert_text(b, "");
}

static const double bounds[] = { 0.25, 0.5, 1, 2.5 };

static void
test_histogram(void **state)
{
	static const struct troika_label l[] = { { "path", "/a\"b" } };
	struct evbuffer *b = *state;
	struct metrics_histogram h;

	assert_int_equal(metrics_histogram_init(&h, bounds, 4), 0);

	/* Nothing observed: all buckets there, all zero. */
	metrics_histogram_write(b, "req", NULL, 0, &h);
	assert_text(b, "req_bucket{le=\"0.25\"} 0\n"
	    "req_bucket{le=\"0.5\"} 0\n"
	    "req_bucket{le=\"1\"} 0\n"
	    "req_bucket{le=\"2.5\"} 0\n"
	    "req_bucket{le=\"+Inf\"} 0\n"
	    "req_sum 0\n"
	    "req_count 0\n");

	/* Equal to a bound: in that bucket. Buckets are cumulative. */
	metrics_histogram_observe(&h, 0.125);
	metrics_histogram_observe(&h, 0.25);
	metrics_histogram_observe(&h, 0.5);
	metrics_histogram_observe(&h, 1);
	metrics_histogram_observe(&h, 3);
	metrics_histogram_write(b, "req", l, 1, &h);
	assert_text(b, "req_bucket{path=\"/a\\\"b\",le=\"0.25\"} 2\n"
	    "req_bucket{path=\"/a\\\"b\",le=\"0.5\"} 3\n"
	    "req_bucket{path=\"/a\\\"b\",le=\"1\"} 4\n"
	    "req_bucket{path=\"/a\\\"b\",le=\"2.5\"} 4\n"
	    "req_bucket{path=\"/a\\\"b\",le=\"+Inf\"} 5\n"
	    "req_sum{path=\"/a\\\"b\"} 4.875\n"
	    "req_count{path=\"/a\\\"b\"} 5\n");
	assert_int_equal(h.count, 5);
	metrics_histogram_free(&h);
}

static void
test_histogram_edges(void **state)
{
	static const double one[] = { 1 };
	static const double neg[] = { -1, 0, 1e-3 };
	struct evbuffer *b = *state;
	struct metrics_histogram h;

	/* Just above and below a bound; -Inf and +Inf. */
	assert_int_equal(metrics_histogram_init(&h, one, 1), 0);
	metrics_histogram_observe(&h, 1.0000000000000002);
	metrics_histogram_observe(&h, 0.99999999999999989);
	metrics_histogram_observe(&h, -INFINITY);
	metrics_histogram_write(b, "h", NULL, 0, &h);
	assert_text(b, "h_bucket{le=\"1\"} 2\n"
	    "h_bucket{le=\"+Inf\"} 3\n"
	    "h_sum -Inf\n"
	    "h_count 3\n");
	metrics_histogram_observe(&h, INFINITY);
	metrics_histogram_write(b, "h", NULL, 0, &h);
	assert_text(b, "h_bucket{le=\"1\"} 2\n"
	    "h_bucket{le=\"+Inf\"} 4\n"
	    "h_sum NaN\n"
	    "h_count 4\n");
	metrics_histogram_free(&h);

	/* NaN counts, in the +Inf bucket only. */
	assert_int_equal(metrics_histogram_init(&h, neg, 3), 0);
	metrics_histogram_observe(&h, NAN);
	metrics_histogram_observe(&h, -1);
	metrics_histogram_observe(&h, 0);
	metrics_histogram_observe(&h, -0.0);
	metrics_histogram_observe(&h, 1e-3);
	metrics_histogram_write(b, "h", NULL, 0, &h);
	assert_text(b, "h_bucket{le=\"-1\"} 1\n"
	    "h_bucket{le=\"0\"} 3\n"
	    "h_bucket{le=\"0.001\"} 4\n"
	    "h_bucket{le=\"+Inf\"} 5\n"
	    "h_sum NaN\n"
	    "h_count 5\n");
	metrics_histogram_free(&h);

	/* No bounds: only +Inf. */
	assert_int_equal(metrics_histogram_init(&h, NULL, 0), 0);
	metrics_histogram_observe(&h, 42);
	metrics_histogram_observe(&h, 0.5);
	metrics_histogram_write(b, "h", NULL, 0, &h);
	assert_text(b, "h_bucket{le=\"+Inf\"} 2\n"
	    "h_sum 42.5\n"
	    "h_count 2\n");
	metrics_histogram_free(&h);

	/* Freed (or failed) histograms ignore observations, write nothing. */
	metrics_histogram_observe(&h, 1);
	metrics_histogram_write(b, "h", NULL, 0, &h);
	assert_int_equal(evbuffer_get_length(b), 0);
	metrics_histogram_free(&h);
	metrics_histogram_free(NULL);
}

static void
test_histogram_init_errors(void **state)
{
	static const double equal[] = { 1, 1 };
	static const double down[] = { 2, 1 };
	static const double nan[] = { 1, NAN };
	static const double inf[] = { 1, INFINITY };
	static const double ninf[] = { -INFINITY, 1 };
	struct metrics_histogram h;

	(void)state;
	assert_int_equal(metrics_histogram_init(&h, equal, 2), -EINVAL);
	assert_null(h.counts);
	assert_int_equal(metrics_histogram_init(&h, down, 2), -EINVAL);
	assert_int_equal(metrics_histogram_init(&h, nan, 2), -EINVAL);
	assert_int_equal(metrics_histogram_init(&h, inf, 2), -EINVAL);
	assert_int_equal(metrics_histogram_init(&h, ninf, 2), -EINVAL);
	assert_int_equal(metrics_histogram_init(&h, NULL, 2), -EINVAL);
	assert_null(h.counts);
	metrics_histogram_free(&h);
}

static void
test_histogram_out_of_memory(void **state)
{
#if HAVE_MALLOC_FAULTS
	struct metrics_histogram h;
	int r;

	(void)state;
	fault_countdown = 0;
	fault_armed = 1;
	r = metrics_histogram_init(&h, bounds, 4);
	fault_armed = 0;
	assert_int_equal(r, -ENOMEM);
	assert_null(h.counts);
	metrics_histogram_free(&h);
#else
	(void)state;
	skip();
#endif
}

/* Value of the one sample line "name VALUE\n" in text. */
static double
sample_value(const char *text, const char *name)
{
	char pat[128];
	const char *p;

	snprintf(pat, sizeof(pat), "\n%s ", name);
	p = strstr(text, pat);
	if (p == NULL)
		fail_msg("no sample %s", name);
	return strtod(p + strlen(pat), NULL);
}

static void
test_write_process(void **state)
{
	static const char *const families[][2] = {
		{ "process_cpu_seconds_total", "counter" },
		{ "process_resident_memory_bytes", "gauge" },
		{ "process_virtual_memory_bytes", "gauge" },
		{ "process_open_fds", "gauge" },
		{ "process_max_fds", "gauge" },
		{ "process_start_time_seconds", "gauge" },
	};
	struct evbuffer *b = *state;
	struct rlimit rl;
	const char *p;
	char *text, pat[128];

	assert_int_equal(metrics_write_process(b), 0);
	text = take(b);
	/* Each family in this order: HELP, TYPE, one unlabelled sample. */
	p = text;
	for (size_t i = 0; i < 6; i++) {
		const char *name = families[i][0];
		size_t n;

		n = (size_t)snprintf(pat, sizeof(pat), "# HELP %s ", name);
		assert_memory_equal(p, pat, n);
		p = strchr(p, '\n') + 1;
		n = (size_t)snprintf(pat, sizeof(pat), "# TYPE %s %s\n", name,
		    families[i][1]);
		assert_memory_equal(p, pat, n);
		p += n;
		n = (size_t)snprintf(pat, sizeof(pat), "%s ", name);
		assert_memory_equal(p, pat, n);
		p = strchr(p, '\n') + 1;
	}
	assert_int_equal(*p, '\0');

	assert_true(sample_value(text, "process_resident_memory_bytes") > 0);
	assert_true(sample_value(text, "process_virtual_memory_bytes") >=
	    sample_value(text, "process_resident_memory_bytes"));
	assert_true(sample_value(text, "process_open_fds") >= 3);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(sample_value(text, "process_max_fds") ==
	    (double)rl.rlim_cur);
	assert_true(sample_value(text, "process_start_time_seconds") >
	    1.5e9);
	assert_true(sample_value(text, "process_cpu_seconds_total") >= 0);
	/* Counts are integers, printed as such. */
	p = strstr(text, "\nprocess_open_fds ") + strlen("\nprocess_open_fds ");
	assert_null(memchr(p, '.', strcspn(p, "\n")));
	free(text);

	assert_int_equal(metrics_write_process(NULL), -EINVAL);
}

/* When /proc cannot be read, nothing is written. */
static void
test_write_process_error(void **state)
{
#if HAVE_MALLOC_FAULTS
	struct evbuffer *b = *state;
	int r;

	/* The first allocation is the stdio buffer of /proc/stat. */
	fault_countdown = 0;
	fault_armed = 1;
	r = metrics_write_process(b);
	fault_armed = 0;
	assert_int_equal(r, -ENOMEM);
	assert_int_equal(evbuffer_get_length(b), 0);
#else
	(void)state;
	skip();
#endif
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_label_name_valid),
		cmocka_unit_test(test_format_value),
		cmocka_unit_test_setup_teardown(test_family, buf_setup,
		    buf_teardown),
		cmocka_unit_test_setup_teardown(test_sample, buf_setup,
		    buf_teardown),
		cmocka_unit_test_setup_teardown(test_sample_escaping, buf_setup,
		    buf_teardown),
		cmocka_unit_test_setup_teardown(test_histogram, buf_setup,
		    buf_teardown),
		cmocka_unit_test_setup_teardown(test_histogram_edges, buf_setup,
		    buf_teardown),
		cmocka_unit_test(test_histogram_init_errors),
		cmocka_unit_test(test_histogram_out_of_memory),
		cmocka_unit_test_setup_teardown(test_write_process, buf_setup,
		    buf_teardown),
		cmocka_unit_test_setup_teardown(test_write_process_error,
		    buf_setup, buf_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
