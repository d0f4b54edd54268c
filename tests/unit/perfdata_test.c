/*
 * perfdata_parse against outputs captured from the Debian monitoring-plugins
 * (check_tcp, check_load, check_disk, check_procs, check_ping, check_http,
 * check_users, check_swap, check_file_age), then every unit, thresholds,
 * quoting, malformed items, the item cap, NUL bytes and multi-line output.
 *
 * Every input is copied into a buffer of exactly len bytes with no
 * terminating NUL, so ASan catches a read past len.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perfdata.h"

/*
 * Allocation failure injection, outside sanitizer builds (ASan brings its
 * own malloc). glibc's allocator stays underneath; while armed, the
 * wrappers count live blocks and fail the n-th allocation.
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
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static int fault_armed;
static long fault_countdown; /* allocations left before one fails */
static long fault_live;      /* blocks allocated minus freed while armed */

void *
malloc(size_t n)
{
	void *p;

	if (fault_armed && fault_countdown-- == 0) {
		errno = ENOMEM;
		return NULL;
	}
	p = __libc_malloc(n);
	if (fault_armed && p != NULL)
		fault_live++;
	return p;
}

void *
realloc(void *old, size_t n)
{
	void *p;

	if (fault_armed && fault_countdown-- == 0) {
		errno = ENOMEM;
		return NULL;
	}
	p = __libc_realloc(old, n);
	if (fault_armed && p != NULL && old == NULL)
		fault_live++;
	return p;
}

void
free(void *p)
{
	if (fault_armed && p != NULL)
		fault_live--;
	__libc_free(p);
}
#endif

/* Equal, or both NAN; values are compared to 1e-12 relative. */
static void
assert_num(double got, double want, const char *what)
{
	double d, scale;

	if (isnan(want)) {
		if (!isnan(got))
			fail_msg("%s: got %.17g, want NAN", what, got);
		return;
	}
	d = got - want;
	if (d < 0)
		d = -d;
	scale = want < 0 ? -want : want;
	if (scale < 1)
		scale = 1;
	if (isnan(got) || d > scale * 1e-12)
		fail_msg("%s: got %.17g, want %.17g", what, got, want);
}

/* perfdata_parse on an unterminated copy of exactly len bytes. */
static void
parse_exact(const char *s, size_t len, struct perfdata *pd)
{
	char *copy = malloc(len > 0 ? len : 1);

	assert_non_null(copy);
	memcpy(copy, s, len);
	assert_int_equal(perfdata_parse(copy, len, pd), 0);
	free(copy);
	assert_non_null(pd->text);
	assert_true(pd->nitems == 0 || pd->items != NULL);
}

static void
parse_str(const char *s, struct perfdata *pd)
{
	parse_exact(s, strlen(s), pd);
}

struct want {
	const char *label;
	double value;
	enum perfdata_unit unit;
	double warn, crit, min, max;
};

static void
check_items(const struct perfdata *pd, const struct want *w, size_t n,
    size_t nbad)
{
	char what[128];

	if (pd->nitems != n)
		fail_msg("nitems %zu, want %zu", pd->nitems, n);
	if (pd->nbad != nbad)
		fail_msg("nbad %zu, want %zu", pd->nbad, nbad);
	for (size_t i = 0; i < n; i++) {
		const struct perfdata_item *it = &pd->items[i];

		assert_string_equal(it->label, w[i].label);
		if (it->unit != w[i].unit)
			fail_msg("%s: unit %d, want %d", w[i].label, it->unit,
			    w[i].unit);
		snprintf(what, sizeof(what), "%s value", w[i].label);
		assert_num(it->value, w[i].value, what);
		snprintf(what, sizeof(what), "%s warn", w[i].label);
		assert_num(it->warn, w[i].warn, what);
		snprintf(what, sizeof(what), "%s crit", w[i].label);
		assert_num(it->crit, w[i].crit, what);
		snprintf(what, sizeof(what), "%s min", w[i].label);
		assert_num(it->min, w[i].min, what);
		snprintf(what, sizeof(what), "%s max", w[i].label);
		assert_num(it->max, w[i].max, what);
	}
}

#define NWANT(w) (sizeof(w) / sizeof((w)[0]))
#define S PERFDATA_UNIT_SECONDS
#define P PERFDATA_UNIT_PERCENT
#define B PERFDATA_UNIT_BYTES
#define C PERFDATA_UNIT_COUNTER
#define N PERFDATA_UNIT_NONE

/* check_tcp -H 127.0.0.1 -p PORT */
static void
test_real_check_tcp(void **state)
{
	static const struct want w[] = {
		{ "time", 0.000098, S, NAN, NAN, 0, 10 },
	};
	struct perfdata pd;

	(void)state;
	parse_str("TCP OK - 0.000 second response time on 127.0.0.1 port "
	    "47023|time=0.000098s;;;0.000000;10.000000\n", &pd);
	assert_string_equal(pd.text,
	    "TCP OK - 0.000 second response time on 127.0.0.1 port 47023");
	check_items(&pd, w, NWANT(w), 0);
	perfdata_free(&pd);
}

/* check_tcp -H 127.0.0.1 -p 1 (refused): no perfdata at all. */
static void
test_real_check_tcp_refused(void **state)
{
	struct perfdata pd;

	(void)state;
	parse_str("connect to address 127.0.0.1 and port 1: Connection "
	    "refused\n", &pd);
	assert_string_equal(pd.text,
	    "connect to address 127.0.0.1 and port 1: Connection refused");
	check_items(&pd, NULL, 0, 0);
	perfdata_free(&pd);
}

/* check_load -r -w 1,1,1 -c 2,2,2: trailing "; " after the last item. */
static void
test_real_check_load(void **state)
{
	static const struct want w[] = {
		{ "load1", 0, N, NAN, NAN, 0, NAN },
		{ "scaled_load1", 0, N, 1, 2, 0, NAN },
		{ "load5", 0.06, N, NAN, NAN, 0, NAN },
		{ "scaled_load5", 0.03, N, 1, 2, 0, NAN },
		{ "load15", 0.03, N, NAN, NAN, 0, NAN },
		{ "scaled_load15", 0.015, N, 1, 2, 0, NAN },
	};
	struct perfdata pd;

	(void)state;
	parse_str("LOAD OK - scaled load average: 0.00, 0.03, 0.01 - total "
	    "load average: 0.00, 0.06, 0.03|load1=0.000;;;0; "
	    "scaled_load1=0.000;1.000;2.000;0; load5=0.060;;;0; "
	    "scaled_load5=0.030;1.000;2.000;0; load15=0.030;;;0; "
	    "scaled_load15=0.015;1.000;2.000;0; \n", &pd);
	assert_string_equal(pd.text, "LOAD OK - scaled load average: 0.00, "
	    "0.03, 0.01 - total load average: 0.00, 0.06, 0.03");
	check_items(&pd, w, NWANT(w), 0);
	perfdata_free(&pd);
}

/* check_disk -w 1000 -c 500 -p / -p /dev/shm */
static void
test_real_check_disk(void **state)
{
	static const struct want w[] = {
		{ "/", 17358127104.0, B, 269503954944.0, 270028242944.0, 0,
		    270552530944.0 },
		{ "/dev/shm", 0, B, 24227348480.0, 24751636480.0, 0,
		    25275924480.0 },
	};
	struct perfdata pd;
	char buf[64];

	(void)state;
	parse_str("DISK OK - free space: / 81431MiB (83% inode=97%); "
	    "/dev/shm 24105MiB (100% inode=99%);| "
	    "/=17358127104B;269503954944;270028242944;0;270552530944 "
	    "/dev/shm=0B;24227348480;24751636480;0;25275924480\n", &pd);
	assert_string_equal(pd.text, "DISK OK - free space: / 81431MiB (83% "
	    "inode=97%); /dev/shm 24105MiB (100% inode=99%);");
	check_items(&pd, w, NWANT(w), 0);
	assert_string_equal(perfdata_label_to_metric(pd.items[0].label, buf,
	    sizeof(buf)), "_");
	assert_string_equal(perfdata_label_to_metric(pd.items[1].label, buf,
	    sizeof(buf)), "_dev_shm");
	perfdata_free(&pd);
}

/* check_procs -w 1:5 -c @1:300 -C python3: ranges give NAN. */
static void
test_real_check_procs(void **state)
{
	static const struct want w[] = {
		{ "procs", 2, N, NAN, NAN, 0, NAN },
	};
	static const struct want w2[] = {
		{ "procs", 74, N, NAN, NAN, 0, NAN },
		{ "procs_warn", 0, N, NAN, NAN, 0, NAN },
		{ "procs_crit", 0, N, NAN, NAN, 0, NAN },
	};
	struct perfdata pd;

	(void)state;
	parse_str("PROCS CRITICAL: 2 processes with command name 'python3' | "
	    "procs=2;1:5;@1:300;0;\n", &pd);
	assert_string_equal(pd.text,
	    "PROCS CRITICAL: 2 processes with command name 'python3'");
	check_items(&pd, w, NWANT(w), 0);
	perfdata_free(&pd);

	/* check_procs -m RSS -w 100000 */
	parse_str("RSS OK: 74 processes | procs=74;;;0; procs_warn=0;;;0; "
	    "procs_crit=0;;;0;\n", &pd);
	assert_string_equal(pd.text, "RSS OK: 74 processes");
	check_items(&pd, w2, NWANT(w2), 0);
	perfdata_free(&pd);
}

/* check_ping -H 127.0.0.1 -w 100,20% -c 200,50% -p 2: ms to seconds. */
static void
test_real_check_ping(void **state)
{
	static const struct want w[] = {
		{ "rta", 0.403 / 1000, S, 0.1, 0.2, 0, NAN },
		{ "pl", 0, P, 20, 50, 0, NAN },
	};
	struct perfdata pd;

	(void)state;
	parse_str("PING OK - Packet loss = 0%, RTA = 0.40 ms|rta=0.403000ms;"
	    "100.000000;200.000000;0.000000 pl=0%;20;50;0;\n", &pd);
	assert_string_equal(pd.text,
	    "PING OK - Packet loss = 0%, RTA = 0.40 ms");
	check_items(&pd, w, NWANT(w), 0);
	perfdata_free(&pd);
}

/* check_http --extended-perfdata: two blanks between items, empty min. */
static void
test_real_check_http(void **state)
{
	static const struct want w[] = {
		{ "time", 0.001098, S, NAN, NAN, 0, 10 },
		{ "size", 381, B, NAN, NAN, 0, NAN },
		{ "time_connect", 0.000507, S, NAN, NAN, NAN, 10 },
		{ "time_headers", 0.000025, S, NAN, NAN, NAN, 10 },
		{ "time_firstbyte", 0.000477, S, NAN, NAN, NAN, 10 },
		{ "time_transfer", 0.000520, S, NAN, NAN, NAN, 10 },
	};
	struct perfdata pd;

	(void)state;
	parse_str("HTTP OK: HTTP/1.0 200 OK - 381 bytes in 0.001 second "
	    "response time |time=0.001098s;;;0.000000;10.000000 "
	    "size=381B;;;0; time_connect=0.000507s;;;;10.000000  "
	    "time_headers=0.000025s;;;;10.000000 "
	    "time_firstbyte=0.000477s;;;;10.000000 "
	    "time_transfer=0.000520s;;;;10.000000\n", &pd);
	assert_string_equal(pd.text, "HTTP OK: HTTP/1.0 200 OK - 381 bytes in "
	    "0.001 second response time");
	check_items(&pd, w, NWANT(w), 0);
	perfdata_free(&pd);
}

/* check_users, check_swap, check_file_age. */
static void
test_real_misc(void **state)
{
	static const struct want users[] = {
		{ "users", 0, N, 5, 10, 0, NAN },
	};
	static const struct want swap[] = {
		{ "swap", 0, B, 0, 0, 0, 0 },
	};
	static const struct want age[] = {
		{ "age", 367, S, 60, 120, NAN, NAN },
		{ "size", 3, B, 0, 0, 0, NAN },
	};
	struct perfdata pd;

	(void)state;
	parse_str("USERS OK - 0 users currently logged in |users=0;5;10;0\n",
	    &pd);
	assert_string_equal(pd.text, "USERS OK - 0 users currently logged in");
	check_items(&pd, users, NWANT(users), 0);
	perfdata_free(&pd);

	parse_str("SWAP CRITICAL - 0% free (0MB out of 0MB) - Swap is either "
	    "disabled, not present, or of zero size. |swap=0B;0;0;0;0\n", &pd);
	check_items(&pd, swap, NWANT(swap), 0);
	perfdata_free(&pd);

	parse_str("FILE_AGE CRITICAL: /etc/hostname is 367 seconds old and 3 "
	    "bytes | age=367s;60;120 size=3B;0;0;0\n", &pd);
	assert_string_equal(pd.text,
	    "FILE_AGE CRITICAL: /etc/hostname is 367 seconds old and 3 bytes");
	check_items(&pd, age, NWANT(age), 0);
	perfdata_free(&pd);
}

static void
test_units(void **state)
{
	static const struct want w[] = {
		{ "s", 2.5, S, NAN, NAN, NAN, NAN },
		{ "ms", 1.5, S, NAN, NAN, NAN, NAN },
		{ "us", 0.00025, S, NAN, NAN, NAN, NAN },
		{ "pct", 99.5, P, NAN, NAN, NAN, NAN },
		{ "b", 7, B, NAN, NAN, NAN, NAN },
		{ "kb", 2048, B, NAN, NAN, NAN, NAN },
		{ "mb", 3.0 * 1048576, B, NAN, NAN, NAN, NAN },
		{ "gb", 1.5 * 1073741824, B, NAN, NAN, NAN, NAN },
		{ "tb", 2.0 * 1099511627776, B, NAN, NAN, NAN, NAN },
		{ "c", 12345, C, NAN, NAN, NAN, NAN },
		{ "none", 42, N, NAN, NAN, NAN, NAN },
		/* Unknown units keep the value as written. */
		{ "mib", 3, N, NAN, NAN, NAN, NAN },
		{ "upper", 4, N, NAN, NAN, NAN, NAN },
		{ "kb_lower", 5, N, NAN, NAN, NAN, NAN },
		{ "rate", 6, N, NAN, NAN, NAN, NAN },
		{ "neg", -3, S, NAN, NAN, NAN, NAN },
		{ "exp", 1500, N, NAN, NAN, NAN, NAN },
		{ "plus", 1, N, NAN, NAN, NAN, NAN },
		{ "frac", 0.5, N, NAN, NAN, NAN, NAN },
		{ "dot", 5, N, NAN, NAN, NAN, NAN },
	};
	struct perfdata pd;

	(void)state;
	parse_str("OK | s=2.5s ms=1500ms us=250us pct=99.5% b=7B kb=2KB mb=3MB "
	    "gb=1.5GB tb=2TB c=12345c none=42 mib=3MiB upper=4S kb_lower=5kB "
	    "rate=6req/s neg=-3s exp=1.5e3 plus=+1 frac=.5 dot=5.", &pd);
	check_items(&pd, w, NWANT(w), 0);
	perfdata_free(&pd);
}

/* Thresholds and min/max use the value's unit. */
static void
test_thresholds(void **state)
{
	static const struct want w[] = {
		{ "plain", 1, N, 10, 20, 0, 100 },
		{ "ranges", 1, N, NAN, NAN, NAN, NAN },
		{ "inside", 1, N, NAN, NAN, NAN, NAN },
		{ "signed", 1, N, -5, 7, -1000, 25 },
		{ "garbage", 1, N, NAN, NAN, NAN, NAN },
		{ "tilde", 1, N, NAN, NAN, NAN, NAN },
		{ "conv", 0.1, S, 0.2, 0.3, 0, 1 },
		{ "convkb", 1024, B, 2048, NAN, 0, 10240 },
		{ "extra", 1, N, 2, 3, 4, 5 },
		{ "short", 1, N, 2, NAN, NAN, NAN },
		{ "space", 1, N, NAN, NAN, NAN, NAN },
	};
	struct perfdata pd;

	(void)state;
	parse_str("OK | plain=1;10;20;0;100 ranges=1;10:20;~:5;; "
	    "inside=1;@10:20;10:;; signed=1;-5;+7;-1e3;2.5e1 "
	    "garbage=1;abc;1x;-;. tilde=1;~;@5;5:; "
	    "conv=100ms;200;300;0;1000 convkb=1KB;2;;0;10 "
	    "extra=1;2;3;4;5;6;7 short=1;2 space=1; \n", &pd);
	check_items(&pd, w, NWANT(w), 0);
	perfdata_free(&pd);
}

static void
test_quoted_labels(void **state)
{
	static const struct want w[] = {
		{ "label with spaces", 1, N, NAN, NAN, NAN, NAN },
		{ "it's", 2, N, NAN, NAN, NAN, NAN },
		{ "'quoted'", 3, N, NAN, NAN, NAN, NAN },
		{ "a=b", 4, N, NAN, NAN, NAN, NAN },
		{ "x y", 5, S, 1, 2, NAN, NAN },
		{ "'", 6, N, NAN, NAN, NAN, NAN },
		{ "C:\\ Label: Serial", 7, P, NAN, NAN, NAN, NAN },
		{ "in'side", 8, N, NAN, NAN, NAN, NAN },
		{ "|", 9, N, NAN, NAN, NAN, NAN },
	};
	struct perfdata pd;
	char buf[64];

	(void)state;
	parse_str("OK | 'label with spaces'=1 'it''s'=2 '''quoted'''=3 "
	    "'a=b'=4 'x y'=5s;1;2 ''''=6 'C:\\ Label: Serial'=7% in'side=8 "
	    "'|'=9", &pd);
	check_items(&pd, w, NWANT(w), 0);
	assert_string_equal(perfdata_label_to_metric(pd.items[0].label, buf,
	    sizeof(buf)), "label_with_spaces");
	assert_string_equal(perfdata_label_to_metric(pd.items[6].label, buf,
	    sizeof(buf)), "c_label_serial");
	perfdata_free(&pd);
}

static void
test_malformed(void **state)
{
	static const struct want w[] = {
		{ "good", 1, N, NAN, NAN, NAN, NAN },
		{ "after", 2, N, NAN, NAN, NAN, NAN },
		{ "last", 3, N, NAN, NAN, NAN, NAN },
	};
	static const struct want w2[] = {
		{ "b", 1, N, NAN, NAN, NAN, NAN },
		{ "last", 3, N, NAN, NAN, NAN, NAN },
	};
	struct perfdata pd;

	(void)state;
	/*
	 * Bad, in order: empty label, no '=', unterminated quote, empty
	 * value, U (unknown), a word, only separators, two dots, junk after
	 * a quoted label, double sign, lone dot, nan, inf, hex, overflow,
	 * decimal comma, ''= (empty quoted label), a quoted label and '='
	 * only.
	 */
	parse_str("OK | =1 noequals 'unterminated=1 a= b=U c=abc d=;; e=1.2.3 "
	    "'q'x=1 good=1 g=--1 h=. i=nan j=inf k=0x10 l=1e999 m=1,5 ''=1 "
	    "after=2 'n'= last=3", &pd);
	check_items(&pd, w, NWANT(w), 18);
	perfdata_free(&pd);

	/*
	 * An unterminated quote costs one token: scanning resumes at the
	 * blank after it.
	 */
	parse_str("OK | 'a b=1 last=3", &pd);
	check_items(&pd, w2, NWANT(w2), 1);
	perfdata_free(&pd);
	/* A quote opened at the very end. */
	parse_str("OK | last=3 '", &pd);
	check_items(&pd, w + 2, 1, 1);
	perfdata_free(&pd);
	/* A quote closed at the very end, without '='. */
	parse_str("OK | last=3 'x'", &pd);
	check_items(&pd, w + 2, 1, 1);
	perfdata_free(&pd);
}

static void
test_text_only_and_empty(void **state)
{
	struct perfdata pd;

	(void)state;
	parse_exact("", 0, &pd);
	assert_string_equal(pd.text, "");
	check_items(&pd, NULL, 0, 0);
	perfdata_free(&pd);

	assert_int_equal(perfdata_parse(NULL, 10, &pd), 0);
	assert_string_equal(pd.text, "");
	check_items(&pd, NULL, 0, 0);
	perfdata_free(&pd);

	/* check_dummy 1 hello */
	parse_str("WARNING: hello\n", &pd);
	assert_string_equal(pd.text, "WARNING: hello");
	check_items(&pd, NULL, 0, 0);
	perfdata_free(&pd);

	/* Blanks and CRLF are trimmed; a bar with nothing after it. */
	parse_str(" \t OK all fine \t |\r\n", &pd);
	assert_string_equal(pd.text, "OK all fine");
	check_items(&pd, NULL, 0, 0);
	perfdata_free(&pd);

	parse_str("|a=1", &pd);
	assert_string_equal(pd.text, "");
	assert_int_equal(pd.nitems, 1);
	perfdata_free(&pd);

	parse_str("\n\n\n", &pd);
	assert_string_equal(pd.text, "");
	check_items(&pd, NULL, 0, 0);
	perfdata_free(&pd);
}

static void
test_no_trailing_newline(void **state)
{
	static const struct want w[] = {
		{ "users", 0, N, 5, 10, 0, NAN },
	};
	struct perfdata pd;

	(void)state;
	parse_str("USERS OK - 0 users currently logged in |users=0;5;10;0",
	    &pd);
	assert_string_equal(pd.text, "USERS OK - 0 users currently logged in");
	check_items(&pd, w, NWANT(w), 0);
	perfdata_free(&pd);
}

/* len is the end, even when the bytes after it would change the result. */
static void
test_len_is_the_end(void **state)
{
	static const char s[] = "OK | a=12345;1;2 b=7";
	struct perfdata pd;

	(void)state;
	parse_exact(s, strlen("OK | a=12"), &pd);
	assert_int_equal(pd.nitems, 1);
	assert_string_equal(pd.items[0].label, "a");
	assert_num(pd.items[0].value, 12, "a");
	assert_num(pd.items[0].warn, NAN, "warn");
	perfdata_free(&pd);

	/* Cut inside a quoted label: a bad item, no overread. */
	parse_exact("OK | 'abc'=1", strlen("OK | 'ab"), &pd);
	check_items(&pd, NULL, 0, 1);
	perfdata_free(&pd);

	/* Cut right after '=' and inside the exponent. */
	parse_exact("OK | a=1", strlen("OK | a="), &pd);
	check_items(&pd, NULL, 0, 1);
	perfdata_free(&pd);
	parse_exact("OK | a=1e5", strlen("OK | a=1e"), &pd);
	assert_int_equal(pd.nitems, 1);
	assert_num(pd.items[0].value, 1, "a");
	perfdata_free(&pd);
	/* "1e-" is a broken number, not 1 with the unit "e-". */
	parse_exact("OK | a=1e-5", strlen("OK | a=1e-"), &pd);
	check_items(&pd, NULL, 0, 1);
	perfdata_free(&pd);
	/* Cut inside the text: the bar is never seen. */
	parse_exact("OK text | a=1", 3, &pd);
	assert_string_equal(pd.text, "OK");
	check_items(&pd, NULL, 0, 0);
	perfdata_free(&pd);
}

/* The output ends at the first NUL, as a C string reader sees it. */
static void
test_embedded_nul(void **state)
{
	static const char s1[] = "OK | a=1 b=2\0 c=3 d=4\n";
	static const char s2[] = "O\0K | a=1";
	static const char s3[] = "OK | a=1\0" "0";
	static const char s4[] = "\0OK | a=1";
	struct perfdata pd;

	(void)state;
	parse_exact(s1, sizeof(s1) - 1, &pd);
	assert_string_equal(pd.text, "OK");
	assert_int_equal(pd.nitems, 2);
	assert_string_equal(pd.items[1].label, "b");
	assert_int_equal(pd.nbad, 0);
	perfdata_free(&pd);

	parse_exact(s2, sizeof(s2) - 1, &pd);
	assert_string_equal(pd.text, "O");
	check_items(&pd, NULL, 0, 0);
	perfdata_free(&pd);

	parse_exact(s3, sizeof(s3) - 1, &pd);
	assert_int_equal(pd.nitems, 1);
	assert_num(pd.items[0].value, 1, "a");
	perfdata_free(&pd);

	parse_exact(s4, sizeof(s4) - 1, &pd);
	assert_string_equal(pd.text, "");
	check_items(&pd, NULL, 0, 0);
	perfdata_free(&pd);
}

/*
 * The multi-line example of the monitoring-plugins guidelines: perfdata
 * after the first line's bar, long text, then perfdata after the first bar
 * of a later line, spanning the remaining lines.
 */
static void
test_multiline(void **state)
{
	static const struct want w[] = {
		{ "/", 2643.0 * 1048576, B, 5948.0 * 1048576, 5958.0 * 1048576,
		    0, 5968.0 * 1048576 },
		{ "/boot", 68.0 * 1048576, B, 88.0 * 1048576, 93.0 * 1048576,
		    0, 98.0 * 1048576 },
		{ "/home", 69357.0 * 1048576, B, 253404.0 * 1048576,
		    253409.0 * 1048576, 0, 253414.0 * 1048576 },
		{ "/var/log", 818.0 * 1048576, B, 970.0 * 1048576,
		    975.0 * 1048576, 0, 980.0 * 1048576 },
	};
	static const struct want w2[] = {
		{ "a", 1, N, NAN, NAN, NAN, NAN },
		{ "b", 2, N, NAN, NAN, NAN, NAN },
	};
	struct perfdata pd;

	(void)state;
	parse_str("DISK OK - free space: / 3326 MB (56%); | "
	    "/=2643MB;5948;5958;0;5968\n"
	    "/ 15272 MB (77%);\n"
	    "/boot 68 MB (69%);\n"
	    "/home 69357 MB (27%);\n"
	    "/var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n"
	    "/home=69357MB;253404;253409;0;253414 \n"
	    "/var/log=818MB;970;975;0;980\n", &pd);
	assert_string_equal(pd.text, "DISK OK - free space: / 3326 MB (56%);");
	check_items(&pd, w, NWANT(w), 0);
	perfdata_free(&pd);

	/* No perfdata on the first line, CRLF line ends. */
	parse_str("OK\r\nlong text\r\nmore | a=1\r\nb=2\r\n", &pd);
	assert_string_equal(pd.text, "OK");
	check_items(&pd, w2, NWANT(w2), 0);
	perfdata_free(&pd);

	/*
	 * After the first bar of the later lines everything is perfdata: a
	 * second bar and words there are bad items.
	 */
	parse_str("OK\nlong | a=1\nmore | b=2", &pd);
	check_items(&pd, w2, NWANT(w2), 2);
	perfdata_free(&pd);

	/* Long text without a bar holds no perfdata, even if it looks so. */
	parse_str("OK | a=1\nx=5 y=6\n", &pd);
	check_items(&pd, w2, 1, 0);
	perfdata_free(&pd);
}

/* At most 1024 items are kept; the rest are counted as skipped. */
static void
test_item_cap(void **state)
{
	const size_t total = 5000;
	size_t len = 0, cap = 16 + total * 16;
	struct perfdata pd;
	char *s;

	(void)state;
	assert_non_null(s = malloc(cap));
	len += (size_t)snprintf(s, cap, "OK |");
	for (size_t i = 0; i < total; i++)
		len += (size_t)snprintf(s + len, cap - len, " i%zu=%zu", i, i);
	parse_exact(s, len, &pd);
	free(s);
	assert_int_equal(pd.nitems, 1024);
	assert_int_equal(pd.nbad, total - 1024);
	assert_string_equal(pd.items[0].label, "i0");
	assert_string_equal(pd.items[1023].label, "i1023");
	assert_num(pd.items[1023].value, 1023, "i1023");
	perfdata_free(&pd);
}

/* A long run of garbage: bounded, counted, and no crash. */
static void
test_huge_garbage(void **state)
{
	const size_t len = 1 << 20;
	struct perfdata pd;
	char *s;

	(void)state;
	assert_non_null(s = malloc(len));
	memset(s, '\'', len);
	s[0] = '|';
	parse_exact(s, len, &pd);
	assert_int_equal(pd.nitems, 0);
	assert_int_equal(pd.nbad, 1);
	perfdata_free(&pd);

	memset(s, '=', len);
	s[0] = '|';
	parse_exact(s, len, &pd);
	assert_int_equal(pd.nitems, 0);
	assert_int_equal(pd.nbad, 1);
	perfdata_free(&pd);

	/* A number too long to be a measurement. */
	memset(s, '1', len);
	memcpy(s, "OK | a=", 7);
	parse_exact(s, len, &pd);
	check_items(&pd, NULL, 0, 1);
	perfdata_free(&pd);
	free(s);
}

static void
test_free_and_errors(void **state)
{
	struct perfdata pd;

	(void)state;
	perfdata_free(NULL);
	parse_str("OK | a=1", &pd);
	perfdata_free(&pd);
	assert_null(pd.items);
	assert_null(pd.text);
	assert_int_equal(pd.nitems, 0);
	perfdata_free(&pd); /* twice is harmless */

	assert_int_equal(perfdata_parse("OK", 2, NULL), -EINVAL);
}

static void
test_out_of_memory(void **state)
{
#if HAVE_MALLOC_FAULTS
	static const char s[] = "OK | a=1 b=2 c=3 d=4 e=5 f=6 g=7 h=8 i=9 j=10";
	struct perfdata pd;
	int r = -ENOMEM;
	long n;

	(void)state;
	/* Fail each allocation in turn until one run needs no failure. */
	for (n = 0; r == -ENOMEM && n < 1000; n++) {
		memset(&pd, 0xa5, sizeof(pd));
		fault_live = 0;
		fault_countdown = n;
		fault_armed = 1;
		r = perfdata_parse(s, sizeof(s) - 1, &pd);
		fault_armed = 0;
		if (r == -ENOMEM) {
			/* Nothing left behind, nothing to free. */
			assert_int_equal(fault_live, 0);
			assert_null(pd.text);
			assert_null(pd.items);
			assert_int_equal(pd.nitems, 0);
		}
	}
	assert_int_equal(r, 0);
	/* text, the items array twice, and ten labels. */
	assert_true(n > 12);
	assert_int_equal(pd.nitems, 10);
	perfdata_free(&pd);
#else
	(void)state;
	skip();
#endif
}

static void
test_label_to_metric(void **state)
{
	static const struct {
		const char *label;
		const char *want;
	} cases[] = {
		{ "time", "time" },
		{ "Time", "time" },
		{ "scaled_load15", "scaled_load15" },
		{ "/var/log", "_var_log" },
		{ "/", "_" },
		{ "a  b", "a_b" },
		{ "a--/b", "a_b" },
		{ "a_/b", "a__b" },
		{ "1min", "_1min" },
		{ "9", "_9" },
		{ "C:\\ Label", "c_label" },
		{ "r\xc3\xa9sum\xc3\xa9", "r_sum_" },
		{ "", "" },
		{ "ABC_xyz-09", "abc_xyz_09" },
	};
	char buf[64], small[4];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(perfdata_label_to_metric(cases[i].label,
		    buf, sizeof(buf)), cases[i].want);
	/* Truncated, always terminated; the prefix counts. */
	assert_string_equal(perfdata_label_to_metric("abcdef", small,
	    sizeof(small)), "abc");
	assert_string_equal(perfdata_label_to_metric("12345", small,
	    sizeof(small)), "_12");
	assert_string_equal(perfdata_label_to_metric("1", small, 2), "_");
	assert_string_equal(perfdata_label_to_metric("abc", small, 1), "");
	small[0] = 'x';
	perfdata_label_to_metric("abc", small, 0);
	assert_int_equal(small[0], 'x');
	assert_string_equal(perfdata_label_to_metric(NULL, buf, sizeof(buf)),
	    "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_check_tcp),
		cmocka_unit_test(test_real_check_tcp_refused),
		cmocka_unit_test(test_real_check_load),
		cmocka_unit_test(test_real_check_disk),
		cmocka_unit_test(test_real_check_procs),
		cmocka_unit_test(test_real_check_ping),
		cmocka_unit_test(test_real_check_http),
		cmocka_unit_test(test_real_misc),
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_thresholds),
		cmocka_unit_test(test_quoted_labels),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_text_only_and_empty),
		cmocka_unit_test(test_no_trailing_newline),
		cmocka_unit_test(test_len_is_the_end),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_multiline),
		cmocka_unit_test(test_item_cap),
		cmocka_unit_test(test_huge_garbage),
		cmocka_unit_test(test_free_and_errors),
		cmocka_unit_test(test_out_of_memory),
		cmocka_unit_test(test_label_to_metric),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
