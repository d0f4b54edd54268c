/*
 * Unit tests of core/ctl/ctl_json.c: escaping (quotes, backslashes,
 * control characters, DEL and C1), invalid UTF-8 of every kind replaced,
 * exact 64-bit integers, nesting and empty containers, times and enums,
 * and every misuse reported by ctl_json_finish().
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "ctl_json.h"
#include "troika/v1/admin.pb-c.h"
#include "troika/v1/agent.pb-c.h"
#include "etcd/kv.pb-c.h"

#define S(x) ((char *)(uintptr_t)(x))

struct doc {
	struct evbuffer *b;
	struct ctl_json j;
};

static void
doc_init(struct doc *d)
{
	d->b = evbuffer_new();
	assert_non_null(d->b);
	ctl_json_init(&d->j, d->b);
}

/* Finish, expect rc, and compare the text (NULL: do not compare). */
static void
doc_check(struct doc *d, int rc, const char *expect)
{
	size_t len;
	char *s;

	assert_int_equal(ctl_json_finish(&d->j), rc);
	len = evbuffer_get_length(d->b);
	s = malloc(len + 1);
	assert_non_null(s);
	evbuffer_remove(d->b, s, len);
	s[len] = '\0';
	if (expect != NULL)
		assert_string_equal(s, expect);
	free(s);
	evbuffer_free(d->b);
}

/* One string value, as a whole document. */
static void
check_string(const char *in, size_t len, const char *expect)
{
	struct doc d;

	doc_init(&d);
	ctl_json_stringn(&d.j, in, len);
	doc_check(&d, 0, expect);
}

static void
test_escaping(void **state)
{
	(void)state;
	check_string("", 0, "\"\"\n");
	check_string("plain text", 10, "\"plain text\"\n");
	check_string("a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\"\n");
	check_string("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"\n");
	check_string("\x01\x1b[0m\x1f", 6, "\"\\u0001\\u001b[0m\\u001f\"\n");
	/* An embedded NUL is a character like another. */
	check_string("a\0b", 3, "\"a\\u0000b\"\n");
	/* DEL and C1 (U+009B is CSI on some terminals). */
	check_string("\x7f\xc2\x9b", 3, "\"\\u007f\\u009b\"\n");
	/* Valid UTF-8 of 2, 3 and 4 bytes passes as it is. */
	check_string("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
	    "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"\n");
}

static void
test_invalid_utf8(void **state)
{
	(void)state;
	/* A lone continuation byte, 0xff, 0xc0/0xc1. */
	check_string("a\x80z", 3, "\"a\\ufffdz\"\n");
	check_string("\xff", 1, "\"\\ufffd\"\n");
	check_string("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"\n");
	/* Overlong three-byte form of '/'. */
	check_string("\xe0\x80\xaf", 3, "\"\\ufffd\\ufffd\\ufffd\"\n");
	/* A UTF-16 surrogate, and beyond U+10FFFF. */
	check_string("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"\n");
	check_string(
	    "\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"\n");
	/* Truncated at the end, and cut by an ASCII byte. */
	check_string("ok\xe2\x82", 4, "\"ok\\ufffd\\ufffd\"\n");
	check_string("\xe2x\xac", 3, "\"\\ufffdx\\ufffd\"\n");
	/* Keys are escaped the same way. */
	{
		struct doc d;

		doc_init(&d);
		ctl_json_begin_object(&d.j);
		ctl_json_key(&d.j, "k\"\xff");
		ctl_json_null(&d.j);
		ctl_json_end_object(&d.j);
		doc_check(&d, 0, "{\"k\\\"\\ufffd\":null}\n");
	}
}

static void
test_values_and_nesting(void **state)
{
	struct doc d;

	(void)state;
	doc_init(&d);
	ctl_json_begin_object(&d.j);
	ctl_json_key(&d.j, "max");
	ctl_json_uint(&d.j, UINT64_MAX);
	ctl_json_key(&d.j, "min");
	ctl_json_int(&d.j, INT64_MIN);
	ctl_json_key(&d.j, "zero");
	ctl_json_uint(&d.j, 0);
	ctl_json_key(&d.j, "t");
	ctl_json_bool(&d.j, 1);
	ctl_json_key(&d.j, "f");
	ctl_json_bool(&d.j, 0);
	ctl_json_key(&d.j, "n");
	ctl_json_string(&d.j, NULL);
	ctl_json_key(&d.j, "empty_array");
	ctl_json_begin_array(&d.j);
	ctl_json_end_array(&d.j);
	ctl_json_key(&d.j, "empty_object");
	ctl_json_begin_object(&d.j);
	ctl_json_end_object(&d.j);
	ctl_json_key(&d.j, "list");
	ctl_json_begin_array(&d.j);
	ctl_json_uint(&d.j, 1);
	ctl_json_begin_object(&d.j);
	ctl_json_key(&d.j, "a");
	ctl_json_begin_array(&d.j);
	ctl_json_string(&d.j, "x");
	ctl_json_string(&d.j, "y");
	ctl_json_end_array(&d.j);
	ctl_json_end_object(&d.j);
	ctl_json_null(&d.j);
	ctl_json_end_array(&d.j);
	ctl_json_end_object(&d.j);
	doc_check(&d, 0,
	    "{\"max\":18446744073709551615,\"min\":-9223372036854775808,"
	    "\"zero\":0,\"t\":true,\"f\":false,\"n\":null,"
	    "\"empty_array\":[],\"empty_object\":{},"
	    "\"list\":[1,{\"a\":[\"x\",\"y\"]},null]}\n");
	/* Empty containers as whole documents. */
	doc_init(&d);
	ctl_json_begin_array(&d.j);
	ctl_json_end_array(&d.j);
	doc_check(&d, 0, "[]\n");
	doc_init(&d);
	ctl_json_begin_object(&d.j);
	ctl_json_end_object(&d.j);
	doc_check(&d, 0, "{}\n");
}

static void
test_time_and_enum(void **state)
{
	struct doc d;

	(void)state;
	doc_init(&d);
	ctl_json_begin_object(&d.j);
	ctl_json_time(&d.j, "time", 1700000000123456789ull);
	ctl_json_time(&d.j, "last_seen", 0);
	ctl_json_time(&d.j, "epoch", 1);
	ctl_json_key(&d.j, "status");
	ctl_json_enum(&d.j, &troika__v1__check_status__descriptor,
	    TROIKA__V1__CHECK_STATUS__CHECK_STATUS_CRITICAL);
	ctl_json_key(&d.j, "unknown");
	ctl_json_enum(&d.j, &troika__v1__check_status__descriptor, 42);
	ctl_json_end_object(&d.j);
	doc_check(&d, 0,
	    "{\"time_unix_nano\":1700000000123456789,"
	    "\"time\":\"2023-11-14T22:13:20.123456789Z\","
	    "\"last_seen_unix_nano\":0,\"last_seen\":null,"
	    "\"epoch_unix_nano\":1,"
	    "\"epoch\":\"1970-01-01T00:00:00.000000001Z\","
	    "\"status\":\"CHECK_STATUS_CRITICAL\",\"unknown\":42}\n");
}

static void
test_misuse(void **state)
{
	struct doc d;

	(void)state;
	/* Nothing written. */
	doc_init(&d);
	doc_check(&d, -EINVAL, NULL);
	/* Unfinished. */
	doc_init(&d);
	ctl_json_begin_object(&d.j);
	doc_check(&d, -EINVAL, NULL);
	/* A value without a key inside an object. */
	doc_init(&d);
	ctl_json_begin_object(&d.j);
	ctl_json_uint(&d.j, 1);
	ctl_json_end_object(&d.j);
	doc_check(&d, -EINVAL, NULL);
	/* A key without its value. */
	doc_init(&d);
	ctl_json_begin_object(&d.j);
	ctl_json_key(&d.j, "a");
	ctl_json_end_object(&d.j);
	doc_check(&d, -EINVAL, NULL);
	/* Two keys in a row. */
	doc_init(&d);
	ctl_json_begin_object(&d.j);
	ctl_json_key(&d.j, "a");
	ctl_json_key(&d.j, "b");
	doc_check(&d, -EINVAL, NULL);
	/* A key in an array, or at the top. */
	doc_init(&d);
	ctl_json_begin_array(&d.j);
	ctl_json_key(&d.j, "a");
	doc_check(&d, -EINVAL, NULL);
	doc_init(&d);
	ctl_json_key(&d.j, "a");
	doc_check(&d, -EINVAL, NULL);
	/* Ending what was not begun, or the other kind. */
	doc_init(&d);
	ctl_json_end_array(&d.j);
	doc_check(&d, -EINVAL, NULL);
	doc_init(&d);
	ctl_json_begin_array(&d.j);
	ctl_json_end_object(&d.j);
	doc_check(&d, -EINVAL, NULL);
	/* Two documents. */
	doc_init(&d);
	ctl_json_null(&d.j);
	ctl_json_null(&d.j);
	doc_check(&d, -EINVAL, NULL);
	/* Too deep; the limit itself is fine. */
	doc_init(&d);
	for (int i = 0; i < CTL_JSON_MAX_DEPTH; i++)
		ctl_json_begin_array(&d.j);
	for (int i = 0; i < CTL_JSON_MAX_DEPTH; i++)
		ctl_json_end_array(&d.j);
	doc_check(&d, 0, NULL);
	doc_init(&d);
	for (int i = 0; i <= CTL_JSON_MAX_DEPTH; i++)
		ctl_json_begin_array(&d.j);
	doc_check(&d, -EINVAL, NULL);
	/* A name too long for a time's key. */
	{
		char name[200];

		memset(name, 'n', sizeof(name) - 1);
		name[sizeof(name) - 1] = '\0';
		doc_init(&d);
		ctl_json_begin_object(&d.j);
		ctl_json_time(&d.j, name, 1);
		ctl_json_end_object(&d.j);
		doc_check(&d, -EINVAL, NULL);
	}
}

/* A message by its descriptor: agent.proto has every kind of field. */
static void
test_message(void **state)
{
	Troika__V1__AgentMessage am = TROIKA__V1__AGENT_MESSAGE__INIT;
	Troika__V1__Hello h = TROIKA__V1__HELLO__INIT;
	Troika__V1__Plugin p = TROIKA__V1__PLUGIN__INIT, *pp = &p;
	Troika__V1__Action a = TROIKA__V1__ACTION__INIT, *pa = &a;
	Troika__V1__Check c = TROIKA__V1__CHECK__INIT, *pc = &c;
	Troika__V1__MetricBatch mb = TROIKA__V1__METRIC_BATCH__INIT;
	Troika__V1__Sample sm[3], *psm[3];
	char *actions[] = {S("start"), S("stop")};
	struct doc d;

	(void)state;
	h.node = S("node-1");
	h.version = S("0.1.0");
	h.start_time_unix_nano = 1700000000000000001ull;
	h.fencing_token = UINT64_MAX;
	a.name = S("replicate");
	a.usage = S("<host> <port>");
	a.min_args = 2;
	a.max_args = 2;
	a.help = S("follow another master");
	p.name = S("redis");
	p.version = S("1");
	p.description = S("");
	p.actions = &pa;
	p.n_actions = 1;
	h.plugins = &pp;
	h.n_plugins = 1;
	c.name = S("cache");
	c.plugin = S("redis");
	c.interval_nano = 5000000000ull;
	c.actions = actions;
	c.n_actions = 2;
	h.checks = &pc;
	h.n_checks = 1;
	am.body_case = TROIKA__V1__AGENT_MESSAGE__BODY_HELLO;
	am.hello = &h;
	doc_init(&d);
	ctl_json_message(&d.j, &am.base);
	/* Only the oneof member that is set. */
	doc_check(&d, 0,
	    "{\"hello\":{\"node\":\"node-1\",\"version\":\"0.1.0\","
	    "\"plugins\":[{\"name\":\"redis\",\"version\":\"1\","
	    "\"description\":\"\",\"actions\":[{\"name\":\"replicate\","
	    "\"usage\":\"<host> <port>\",\"min_args\":2,\"max_args\":2,"
	    "\"help\":\"follow another master\"}]}],"
	    "\"checks\":[{\"name\":\"cache\",\"plugin\":\"redis\","
	    "\"interval_nano\":5000000000,\"timeout_nano\":0,"
	    "\"actions\":[\"start\",\"stop\"]}],"
	    "\"start_time_unix_nano\":1700000000000000001,"
	    "\"start_time\":\"2023-11-14T22:13:20.000000001Z\","
	    "\"fencing_token\":18446744073709551615}}\n");
	/* Doubles, NaN and infinities; an empty repeated field. */
	for (int i = 0; i < 3; i++) {
		troika__v1__sample__init(&sm[i]);
		sm[i].name = S("m");
		sm[i].type = TROIKA__V1__METRIC_TYPE__METRIC_TYPE_GAUGE;
		psm[i] = &sm[i];
	}
	sm[0].value = 0.1;
	sm[1].value = NAN;
	sm[2].value = -INFINITY;
	sm[2].type = 7;
	mb.samples = psm;
	mb.n_samples = 3;
	mb.dropped_samples = 3;
	doc_init(&d);
	ctl_json_message(&d.j, &mb.base);
	doc_check(&d, 0,
	    "{\"samples\":[{\"name\":\"m\",\"labels\":[],"
	    "\"value\":0.10000000000000001,\"type\":\"METRIC_TYPE_GAUGE\","
	    "\"help\":\"\"},"
	    "{\"name\":\"m\",\"labels\":[],\"value\":\"NaN\","
	    "\"type\":\"METRIC_TYPE_GAUGE\",\"help\":\"\"},"
	    "{\"name\":\"m\",\"labels\":[],\"value\":\"-Infinity\","
	    "\"type\":7,\"help\":\"\"}],"
	    "\"time_unix_nano\":0,\"time\":null,\"dropped_samples\":3}\n");
	/* Bytes in base64 (every padding), signed 64-bit: etcd's record. */
	{
		Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT;
		static const char *const b64[] = {
		    "", "Zg==", "Zm8=", "Zm9v", "/w=="};
		static const char *const raw[] = {"", "f", "fo", "foo", "\xff"};

		for (int i = 0; i < 5; i++) {
			char expect[256];

			kv.key.data = (uint8_t *)(uintptr_t)raw[i];
			kv.key.len = strlen(raw[i]);
			kv.create_revision = -5;
			kv.mod_revision = INT64_MAX;
			doc_init(&d);
			ctl_json_message(&d.j, &kv.base);
			snprintf(expect, sizeof(expect),
			    "{\"key\":\"%s\",\"create_revision\":-5,"
			    "\"mod_revision\":9223372036854775807,"
			    "\"version\":0,\"value\":\"\",\"lease\":0}\n",
			    b64[i]);
			doc_check(&d, 0, expect);
		}
	}
	/* A message field that is not set. */
	am.body_case = TROIKA__V1__AGENT_MESSAGE__BODY__NOT_SET;
	doc_init(&d);
	ctl_json_message(&d.j, &am.base);
	doc_check(&d, 0, "{}\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escaping),
	    cmocka_unit_test(test_invalid_utf8),
	    cmocka_unit_test(test_values_and_nesting),
	    cmocka_unit_test(test_time_and_enum),
	    cmocka_unit_test(test_misuse),
	    cmocka_unit_test(test_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
