/*
 * Unit tests of core/coord/coord_view.c: Hello, results, samples, stream
 * ownership, disconnects, refusals, and the metrics page of the view.
 * Messages are built with protobuf-c and packed/unpacked as on the wire,
 * so the view owns what it would own in the daemon.
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

#include "coord_view.h"

/* Through the wire format: the view gets what protobuf-c allocates. */
static void *
roundtrip(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len + 1);
	void *out;

	assert_non_null(buf);
	protobuf_c_message_pack(m, buf);
	out = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
	assert_non_null(out);
	free(buf);
	return out;
}

static Troika__V1__Hello *
hello(const char *node, uint64_t start, const char *const *checks)
{
	Troika__V1__Hello h = TROIKA__V1__HELLO__INIT;
	Troika__V1__Check cs[8], *pcs[8];
	size_t n = 0;

	h.node = (char *)(uintptr_t)node;
	h.version = (char *)(uintptr_t) "0.1.0";
	h.start_time_unix_nano = start;
	for (; checks != NULL && checks[n] != NULL; n++) {
		troika__v1__check__init(&cs[n]);
		cs[n].name = (char *)(uintptr_t)checks[n];
		cs[n].plugin = (char *)(uintptr_t) "tcp";
		pcs[n] = &cs[n];
	}
	h.checks = pcs;
	h.n_checks = n;
	return roundtrip(&h.base);
}

static Troika__V1__CheckResult *
result(const char *check, int status, uint64_t run)
{
	Troika__V1__CheckResult r = TROIKA__V1__CHECK_RESULT__INIT;

	r.check = (char *)(uintptr_t)check;
	r.plugin = (char *)(uintptr_t) "tcp";
	r.status = (Troika__V1__CheckStatus)status;
	r.run = run;
	r.message = (char *)(uintptr_t) "msg";
	return roundtrip(&r.base);
}

static char *
page(const struct coord_view *v, uint64_t *skipped)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *s;

	assert_non_null(b);
	coord_view_write_metrics(v, b, skipped);
	len = evbuffer_get_length(b);
	assert_non_null(s = malloc(len + 1));
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	return s;
}

static void
test_hello_results_order(void **state)
{
	static const char *const checks[] = {"web", "db", NULL};
	struct coord_view *v = coord_view_new();
	struct coord_node *n;
	Troika__V1__CheckResult *r;

	(void)state;
	assert_int_equal(
	    coord_view_hello(v, 1, hello("node-2", 5, checks), 100), 0);
	assert_int_equal(
	    coord_view_hello(v, 2, hello("node-1", 5, NULL), 110), 0);
	/* Sorted by name. */
	assert_int_equal(v->nnodes, 2);
	assert_string_equal(v->nodes[0]->name, "node-1");
	assert_string_equal(v->nodes[1]->name, "node-2");
	assert_null(coord_view_node(v, "node-3"));
	n = coord_view_node(v, "node-2");
	assert_int_equal(n->stream, 1);
	assert_int_equal(n->connected_ns, 100);
	assert_int_equal(n->nchecks, 2);
	assert_string_equal(n->checks[0].name, "web");
	assert_string_equal(n->checks[1].name, "db");
	assert_null(n->checks[0].last);

	assert_int_equal(
	    coord_view_result(v, 1, "node-2", result("db", 3, 1), 120), 0);
	assert_int_equal(n->checks[1].last->run, 1);
	assert_int_equal(n->last_seen_ns, 120);
	/* A newer result replaces the older one. */
	assert_int_equal(
	    coord_view_result(v, 1, "node-2", result("db", 1, 2), 130), 0);
	assert_int_equal(n->checks[1].last->run, 2);
	assert_int_equal(n->checks[1].last->status, 1);
	/* A check missing from the Hello is kept, after the others. */
	assert_int_equal(
	    coord_view_result(v, 1, "node-2", result("extra", 2, 1), 140), 0);
	assert_int_equal(n->nchecks, 3);
	assert_string_equal(n->checks[2].name, "extra");

	/* Refusals. */
	r = result("", 1, 1);
	assert_int_equal(coord_view_result(v, 1, "node-2", r, 150), -EINVAL);
	troika__v1__check_result__free_unpacked(r, NULL);
	r = result("web", 1, 1);
	assert_int_equal(coord_view_result(v, 2, "node-2", r, 150), -ESTALE);
	assert_int_equal(coord_view_result(v, 1, "node-9", r, 150), -ENOENT);
	troika__v1__check_result__free_unpacked(r, NULL);
	assert_int_equal(n->last_seen_ns, 140);

	/* A new Hello keeps results of checks still configured. */
	{
		static const char *const again[] = {"db", "new", NULL};

		assert_int_equal(
		    coord_view_hello(v, 1, hello("node-2", 5, again), 160), 0);
	}
	assert_int_equal(n->nchecks, 2);
	assert_string_equal(n->checks[0].name, "db");
	assert_non_null(n->checks[0].last);
	assert_int_equal(n->checks[0].last->run, 2);
	assert_null(n->checks[1].last);
	/* Same stream: still connected since the first Hello. */
	assert_int_equal(n->connected_ns, 100);
	coord_view_free(v);
	coord_view_free(NULL);
}

static void
test_bad_hello(void **state)
{
	static const char *const dup[] = {"a", "a", NULL};
	static const char *const empty[] = {"a", "", NULL};
	static const char *const ok[] = {"a", NULL};
	struct coord_view *v = coord_view_new();
	Troika__V1__Hello *h;
	struct coord_node *n;

	(void)state;
	h = hello("", 1, NULL);
	assert_int_equal(coord_view_hello(v, 1, h, 1), -EINVAL);
	troika__v1__hello__free_unpacked(h, NULL);
	h = hello("n", 1, dup);
	assert_int_equal(coord_view_hello(v, 1, h, 1), -EINVAL);
	troika__v1__hello__free_unpacked(h, NULL);
	assert_int_equal(v->nnodes, 0);

	/* A refused Hello of a known node leaves it as it was. */
	assert_int_equal(coord_view_hello(v, 1, hello("n", 1, ok), 1), 0);
	assert_int_equal(coord_view_result(v, 1, "n", result("a", 1, 7), 2), 0);
	h = hello("n", 1, empty);
	assert_int_equal(coord_view_hello(v, 1, h, 3), -EINVAL);
	troika__v1__hello__free_unpacked(h, NULL);
	n = coord_view_node(v, "n");
	assert_int_equal(n->nchecks, 1);
	assert_int_equal(n->checks[0].last->run, 7);
	coord_view_free(v);
}

static void
test_disconnect_and_takeover(void **state)
{
	static const char *const checks[] = {"web", NULL};
	struct coord_view *v = coord_view_new();
	struct coord_node *n;

	(void)state;
	assert_int_equal(coord_view_hello(v, 1, hello("n", 1, checks), 10), 0);
	assert_int_equal(
	    coord_view_result(v, 1, "n", result("web", 3, 1), 20), 0);
	assert_int_equal(coord_view_connected(v), 1);
	/* The agent reconnects before its old stream is noticed dead. */
	assert_int_equal(coord_view_hello(v, 2, hello("n", 1, checks), 30), 0);
	n = coord_view_node(v, "n");
	assert_int_equal(n->stream, 2);
	assert_int_equal(n->connected_ns, 30);
	/* The old stream's end changes nothing; its messages are refused. */
	coord_view_disconnect(v, 1, "n", 40);
	coord_view_seen(v, 1, "n", 45);
	assert_int_equal(n->stream, 2);
	assert_int_equal(n->disconnected_ns, 0);
	assert_int_equal(n->last_seen_ns, 30);
	coord_view_seen(v, 2, "n", 50);
	assert_int_equal(n->last_seen_ns, 50);
	/* The owner's end disconnects; the last state stays. */
	coord_view_disconnect(v, 2, "n", 60);
	coord_view_disconnect(v, 2, "nobody", 60);
	assert_int_equal(n->stream, 0);
	assert_int_equal(n->disconnected_ns, 60);
	assert_int_equal(coord_view_connected(v), 0);
	assert_int_equal(n->checks[0].last->status, 3);
	/* And it comes back. */
	assert_int_equal(coord_view_hello(v, 3, hello("n", 1, checks), 70), 0);
	assert_int_equal(n->disconnected_ns, 0);
	assert_int_equal(n->connected_ns, 70);
	assert_int_equal(n->checks[0].last->status, 3);
	coord_view_free(v);
}

static Troika__V1__Sample *
sample(Troika__V1__Sample *s, Troika__V1__Label *l, size_t nl, const char *name,
    double value, int type, const char *help)
{
	static Troika__V1__Label *pl[32][4];
	static size_t next;
	Troika__V1__Label **p = pl[next++ % 32];

	troika__v1__sample__init(s);
	s->name = (char *)(uintptr_t)name;
	s->value = value;
	s->type = (Troika__V1__MetricType)type;
	s->help = (char *)(uintptr_t)help;
	for (size_t i = 0; i < nl; i++)
		p[i] = &l[i];
	s->labels = p;
	s->n_labels = nl;
	return s;
}

static void
label(Troika__V1__Label *l, const char *name, const char *value)
{
	troika__v1__label__init(l);
	l->name = (char *)(uintptr_t)name;
	l->value = (char *)(uintptr_t)value;
}

static void
test_samples_and_page(void **state)
{
	static const char *const checks[] = {"r", NULL};
	struct coord_view *v = coord_view_new();
	struct coord_view_drops drops = {0};
	Troika__V1__MetricBatch b = TROIKA__V1__METRIC_BATCH__INIT;
	Troika__V1__Sample s[8], *ps[8];
	Troika__V1__Label l[8];
	uint64_t skipped = 99;
	struct coord_node *n;
	char *text;

	(void)state;
	assert_int_equal(
	    coord_view_hello(v, 1, hello("node-1", 1, checks), 1), 0);
	assert_int_equal(
	    coord_view_hello(v, 2, hello("node-2", 1, NULL), 1), 0);
	assert_int_equal(
	    coord_view_result(v, 1, "node-1", result("r", 3, 1), 2), 0);
	label(&l[0], "check", "r");
	label(&l[1], "plugin", "redis");
	label(&l[2], "node", "x");     /* ours to add: invalid */
	label(&l[3], "bad-name", "x"); /* invalid */
	label(&l[4], "check", "quote\"d\n");
	ps[0] = sample(&s[0], l, 2, "redis_up", 1, 1, "Redis is up.");
	ps[1] = sample(&s[1], &l[1], 2, "redis_up", 1, 1, ""); /* node label */
	ps[2] = sample(&s[2], &l[3], 1, "redis_up", 1, 1, "");
	ps[3] = sample(&s[3], l, 2, "bad name", 1, 1, "");
	ps[4] = sample(&s[4], l, 2, "redis_x", 1, 0, ""); /* no type */
	ps[5] = sample(&s[5], &l[4], 1, "redis_commands_processed_total", 42, 2,
	    "Commands.");
	ps[6] = sample(&s[6], l, 2, "troika_check_status", 7, 1, "");
	b.samples = ps;
	b.n_samples = 7;
	b.dropped_samples = 5;
	assert_int_equal(coord_view_samples(v, 1, "node-1", &b, 3, &drops), 0);
	assert_int_equal(drops.invalid, 4);
	assert_int_equal(drops.limit, 0);
	n = coord_view_node(v, "node-1");
	assert_int_equal(n->nsamples, 3);
	assert_int_equal(n->agent_dropped, 5);
	/* The same sample again updates its value; no new entry. */
	ps[0] = sample(&s[0], l, 2, "redis_up", 0, 1, "");
	b.n_samples = 1;
	b.dropped_samples = 0;
	assert_int_equal(coord_view_samples(v, 1, "node-1", &b, 4, &drops), 0);
	assert_int_equal(n->nsamples, 3);
	/*
	 * node-2 sends redis_up as a counter: refused (a counter's name ends
	 * in _total, a gauge's never does, so two nodes cannot disagree on a
	 * family's type).
	 */
	ps[0] = sample(&s[0], l, 2, "redis_up", 1, 2, "");
	drops.invalid = 0;
	assert_int_equal(coord_view_samples(v, 2, "node-2", &b, 4, &drops), 0);
	assert_int_equal(drops.invalid, 1);
	assert_int_equal(coord_view_node(v, "node-2")->nsamples, 0);
	assert_int_equal(
	    coord_view_samples(v, 3, "node-2", &b, 4, &drops), -ESTALE);

	text = page(v, &skipped);
	assert_non_null(strstr(text,
	    "troika_check_status{node=\"node-1\",check=\"r\",plugin=\"tcp\"} "
	    "2\n"));
	assert_non_null(
	    strstr(text, "troika_coord_node_connected{node=\"node-2\"} 1\n"));
	assert_non_null(strstr(text,
	    "troika_coord_agent_dropped_samples_total{node=\"node-1\"} 5\n"));
	assert_non_null(strstr(text,
	    "# HELP redis_up Redis is up.\n"
	    "# TYPE redis_up gauge\n"
	    "redis_up{node=\"node-1\",check=\"r\",plugin=\"redis\"} 0\n"));
	assert_null(strstr(text, "redis_up{node=\"node-2\""));
	assert_non_null(strstr(text,
	    "# TYPE redis_commands_processed_total "
	    "counter\nredis_commands_processed_total{node=\"node-1\","
	    "check=\"quote\\\"d\\n\"} 42\n"));
	/* The agent's troika_check_status is shadowed by the view's. */
	assert_null(strstr(text, "} 7\n"));
	assert_int_equal(skipped, 1);
	free(text);

	/* A new agent process forgets the old samples; a reconnect does not. */
	assert_int_equal(
	    coord_view_hello(v, 4, hello("node-1", 1, checks), 5), 0);
	assert_int_equal(n->nsamples, 3);
	assert_int_equal(
	    coord_view_hello(v, 5, hello("node-1", 2, checks), 6), 0);
	assert_int_equal(n->nsamples, 0);
	coord_view_free(v);
}

/* What promtool's lint refuses never gets on the page. */
static void
test_lint_refused(void **state)
{
	static const struct {
		const char *name;
		int type;
		const char *label;
		int valid;
	} cases[] = {
	    {"plain", 1, NULL, 1},
	    {"UPPER_CASE", 1, NULL, 1},
	    {"ok_total", 2, NULL, 1},
	    {"ok_seconds", 1, "quantiles", 1},
	    {"no_suffix", 2, NULL, 0},
	    {"gauge_total", 1, NULL, 0},
	    {"gauge_count", 1, NULL, 0},
	    {"gauge_sum", 1, NULL, 0},
	    {"gauge_bucket", 1, NULL, 0},
	    {"with_le", 1, "le", 0},
	    {"with_quantile", 1, "quantile", 0},
	    {"camelCase", 1, NULL, 0},
	    {"histogram_type", 3, NULL, 0},
	};
	size_t n = sizeof(cases) / sizeof(cases[0]), valid = 0;
	struct coord_view *v = coord_view_new();
	Troika__V1__MetricBatch b = TROIKA__V1__METRIC_BATCH__INIT;
	Troika__V1__Sample s[sizeof(cases) / sizeof(cases[0])];
	Troika__V1__Sample *ps[sizeof(cases) / sizeof(cases[0])];
	Troika__V1__Label l[sizeof(cases) / sizeof(cases[0])];
	struct coord_view_drops drops = {0};
	char *text;

	(void)state;
	assert_int_equal(coord_view_hello(v, 1, hello("n", 1, NULL), 1), 0);
	for (size_t i = 0; i < n; i++) {
		label(&l[i], cases[i].label, "1");
		ps[i] = sample(&s[i], &l[i], cases[i].label ? 1 : 0,
		    cases[i].name, 1, cases[i].type, "");
		valid += (size_t)cases[i].valid;
	}
	b.samples = ps;
	b.n_samples = n;
	assert_int_equal(coord_view_samples(v, 1, "n", &b, 2, &drops), 0);
	assert_int_equal(drops.invalid, n - valid);
	assert_int_equal(coord_view_node(v, "n")->nsamples, valid);
	text = page(v, NULL);
	for (size_t i = 0; i < n; i++) {
		char want[64];

		snprintf(want, sizeof(want), "\n%s{node=\"n\"", cases[i].name);
		if (cases[i].valid)
			assert_non_null(strstr(text, want));
		else
			assert_null(strstr(text, want));
	}
	free(text);
	coord_view_free(v);
}

static void
test_many_samples(void **state)
{
	struct coord_view *v = coord_view_new();
	struct coord_view_drops drops = {0};
	Troika__V1__MetricBatch b = TROIKA__V1__METRIC_BATCH__INIT;
	Troika__V1__Sample *ps, **pps;
	Troika__V1__Label *ls, **pls;
	char(*vals)[16];
	size_t n = COORD_VIEW_MAX_SAMPLES + 10;
	struct coord_node *node;

	(void)state;
	assert_int_equal(coord_view_hello(v, 1, hello("n", 1, NULL), 1), 0);
	assert_non_null(ps = calloc(n, sizeof(*ps)));
	assert_non_null(pps = calloc(n, sizeof(*pps)));
	assert_non_null(ls = calloc(n, sizeof(*ls)));
	assert_non_null(pls = calloc(n, sizeof(*pls)));
	assert_non_null(vals = calloc(n, sizeof(*vals)));
	for (size_t i = 0; i < n; i++) {
		snprintf(vals[i], sizeof(vals[i]), "%zu", i);
		label(&ls[i], "i", vals[i]);
		pls[i] = &ls[i];
		troika__v1__sample__init(&ps[i]);
		ps[i].name = (char *)(uintptr_t) "m";
		ps[i].type = TROIKA__V1__METRIC_TYPE__METRIC_TYPE_GAUGE;
		ps[i].value = (double)i;
		ps[i].labels = &pls[i];
		ps[i].n_labels = 1;
		pps[i] = &ps[i];
	}
	b.samples = pps;
	b.n_samples = n;
	assert_int_equal(coord_view_samples(v, 1, "n", &b, 2, &drops), 0);
	node = coord_view_node(v, "n");
	assert_int_equal(node->nsamples, COORD_VIEW_MAX_SAMPLES);
	assert_int_equal(drops.limit, 10);
	/* Known ones still update at the limit. */
	b.n_samples = 1;
	ps[0].value = 77;
	drops.limit = 0;
	assert_int_equal(coord_view_samples(v, 1, "n", &b, 3, &drops), 0);
	assert_int_equal(drops.limit, 0);
	{
		char *text = page(v, NULL);

		assert_non_null(strstr(text, "m{node=\"n\",i=\"0\"} 77\n"));
		assert_non_null(
		    strstr(text, "m{node=\"n\",i=\"99999\"} 99999\n"));
		assert_null(strstr(text, "i=\"100000\""));
		free(text);
	}
	free(ps);
	free(pps);
	free(ls);
	free(pls);
	free(vals);
	coord_view_free(v);
}

static void
test_node_limit(void **state)
{
	struct coord_view *v = coord_view_new();
	Troika__V1__Hello *h;
	char name[32];

	(void)state;
	for (int i = 0; i < COORD_VIEW_MAX_NODES; i++) {
		snprintf(name, sizeof(name), "n%04d", i);
		assert_int_equal(coord_view_hello(v, (uint64_t)i + 1,
		                     hello(name, 1, NULL), 1),
		    0);
	}
	h = hello("one-too-many", 1, NULL);
	assert_int_equal(coord_view_hello(v, 9999, h, 1), -ENOSPC);
	troika__v1__hello__free_unpacked(h, NULL);
	/* Known nodes still say Hello again. */
	assert_int_equal(
	    coord_view_hello(v, 5000, hello("n0007", 1, NULL), 2), 0);
	assert_int_equal(v->nnodes, COORD_VIEW_MAX_NODES);
	assert_int_equal(coord_view_node(v, "n0007")->stream, 5000);
	assert_string_equal(v->nodes[0]->name, "n0000");
	assert_string_equal(v->nodes[COORD_VIEW_MAX_NODES - 1]->name, "n1023");
	coord_view_free(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hello_results_order),
	    cmocka_unit_test(test_bad_hello),
	    cmocka_unit_test(test_disconnect_and_takeover),
	    cmocka_unit_test(test_samples_and_page),
	    cmocka_unit_test(test_lint_refused),
	    cmocka_unit_test(test_many_samples),
	    cmocka_unit_test(test_node_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
