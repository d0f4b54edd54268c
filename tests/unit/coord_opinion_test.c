/*
 * Unit tests of core/coord/coord_opinion.c: every rule of coord_opinion.h
 * (fail_after, certain_after, WARNING and UNKNOWN, OK, silence, node
 * streams, TILT, Hello forgetting checks), the reports, foreach_failed and
 * the metrics. Timers run on a real event base with durations of 100 to
 * 200 ms set in the config by hand (the loader's minimum is 1 s); every
 * test ends with no event left on the base.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "coord_conf.h"
#include "coord_opinion.h"
#include "troika/v1/agent.pb-c.h"

#define OK TROIKA__V1__CHECK_STATUS__CHECK_STATUS_OK
#define WARN TROIKA__V1__CHECK_STATUS__CHECK_STATUS_WARNING
#define CRIT TROIKA__V1__CHECK_STATUS__CHECK_STATUS_CRITICAL
#define UNKN TROIKA__V1__CHECK_STATUS__CHECK_STATUS_UNKNOWN
#define CERTAIN TROIKA__V1__EVIDENCE__EVIDENCE_CERTAIN
#define AMBIG TROIKA__V1__EVIDENCE__EVIDENCE_AMBIGUOUS

/*
 * db*: slow to judge ambiguity, quick on certainty; quick: one CRITICAL
 * is enough; the rest: the defaults (3 and 2).
 */
static const char conf_text[] = "listen: h:1\n"
                                "recovery:\n"
                                "  policies:\n"
                                "    - match: \"db*\"\n"
                                "      fail_after: 5\n"
                                "      certain_after: 2\n"
                                "    - match: quick\n"
                                "      fail_after: 1\n";

struct change {
	char *node;
	char *check; /* NULL: the node */
	char *plugin;
	int failed;
	int certain;
	char *reason;
	uint64_t time_ns;
	int now_failed; /* coord_opinions_failed() inside the callback */
};

struct fixture {
	struct event_base *base;
	struct coord_conf *conf;
	struct coord_opinions *o;
	struct change ch[128];
	size_t nch;
};

static char *
dup_or_null(const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	assert_non_null(d);
	return d;
}

static void
record_cb(const struct coord_opinion_change *ch, void *arg)
{
	struct fixture *f = arg;
	struct change *c;

	assert_true(f->nch < sizeof(f->ch) / sizeof(f->ch[0]));
	c = &f->ch[f->nch++];
	c->node = dup_or_null(ch->node);
	c->check = dup_or_null(ch->check);
	c->plugin = dup_or_null(ch->plugin);
	c->failed = ch->failed;
	c->certain = ch->certain;
	c->reason = dup_or_null(ch->reason);
	c->time_ns = ch->time_ns;
	/* The new opinion is in place when it is reported. */
	c->now_failed = coord_opinions_failed(f->o, ch->node, ch->check);
}

static void
changes_clear(struct fixture *f)
{
	for (size_t i = 0; i < f->nch; i++) {
		free(f->ch[i].node);
		free(f->ch[i].check);
		free(f->ch[i].plugin);
		free(f->ch[i].reason);
	}
	f->nch = 0;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *errs = NULL;

	assert_non_null(f);
	assert_non_null(f->base = event_base_new());
	assert_int_equal(coord_conf_parse(conf_text, strlen(conf_text),
	                     "t.yaml", &f->conf, &errs),
	    0);
	assert_int_equal(f->conf->npolicies, 3);
	assert_non_null(
	    f->o = coord_opinions_new(f->base, f->conf, record_cb, f));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	coord_opinions_free(f->o);
	/* Every timer went with the object. */
	assert_int_equal(
	    event_base_get_num_events(f->base, EVENT_BASE_COUNT_ADDED), 0);
	changes_clear(f);
	coord_conf_free(f->conf);
	event_base_free(f->base);
	free(f);
	return 0;
}

static void
send_run(struct fixture *f, const char *node, const char *check, int status,
    int evidence, const char *msg, uint64_t run, uint64_t time)
{
	Troika__V1__CheckResult r = TROIKA__V1__CHECK_RESULT__INIT;

	r.check = (char *)(uintptr_t)check;
	r.plugin = (char *)(uintptr_t) "tcp";
	r.status = (Troika__V1__CheckStatus)status;
	r.evidence = (Troika__V1__Evidence)evidence;
	r.message = (char *)(uintptr_t)(msg != NULL ? msg : "");
	r.run = run;
	r.time_unix_nano = time;
	coord_opinions_result(f->o, node, &r);
}

/* A result with a new run number each time. */
static void
send_res(struct fixture *f, const char *node, const char *check, int status,
    int evidence, const char *msg)
{
	static uint64_t run;

	run++;
	send_run(f, node, check, status, evidence, msg, run, 1000 + run);
}

static void
hello(struct fixture *f, const char *node, const char *const *checks)
{
	const char *plugins[256];
	size_t n = 0;

	for (; checks[n] != NULL; n++) {
		assert_true(n < 256);
		plugins[n] = "tcp";
	}
	coord_opinions_hello(f->o, node, checks, plugins, n);
}

/* Run the loop for ms milliseconds. */
static void
run_ms(struct fixture *f, int ms)
{
	struct timeval tv = {
	    .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	event_base_loopexit(f->base, &tv);
	event_base_dispatch(f->base);
}

static void
assert_change(const struct change *c, const char *node, const char *check,
    int failed, int certain, const char *reason)
{
	assert_string_equal(c->node, node);
	if (check == NULL) {
		assert_null(c->check);
		assert_null(c->plugin);
	} else {
		assert_string_equal(c->check, check);
		assert_string_equal(c->plugin, "tcp");
	}
	assert_int_equal(c->failed, failed);
	assert_int_equal(c->certain, certain);
	assert_string_equal(c->reason, reason);
	assert_int_equal(c->now_failed, failed);
	assert_true(c->time_ns > 1600000000ull * 1000000000ull);
}

static char *
metrics(struct fixture *f)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *s;

	assert_non_null(b);
	coord_opinions_write_metrics(f->o, b);
	len = evbuffer_get_length(b);
	assert_non_null(s = malloc(len + 1));
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	return s;
}

/* The metrics page has this line. */
static void
assert_metric(struct fixture *f, const char *line)
{
	char *page = metrics(f);
	char want[256];

	snprintf(want, sizeof(want), "\n%s\n", line);
	if (strstr(page, want) == NULL)
		fail_msg("no line '%s' in:\n%s", line, page);
	free(page);
}

static const char *const one[] = {"web", NULL};

/* Three ambiguous CRITICAL results (the default fail_after). */
static void
test_fail_after_ambiguous(void **state)
{
	struct fixture *f = *state;

	hello(f, "node-1", one);
	send_res(f, "node-1", "web", CRIT, AMBIG, "timeout");
	send_res(f, "node-1", "web", CRIT, AMBIG, "timeout");
	assert_int_equal(f->nch, 0);
	assert_int_equal(coord_opinions_failed(f->o, "node-1", "web"), 0);
	send_res(f, "node-1", "web", CRIT, AMBIG, "timeout after 2s");
	assert_int_equal(f->nch, 1);
	assert_change(&f->ch[0], "node-1", "web", 1, 0,
	    "3 consecutive CRITICAL results: timeout after 2s");
	assert_int_equal(coord_opinions_failed(f->o, "node-1", "web"), 1);
	/* The node itself is fine; unknown names are not failed. */
	assert_int_equal(coord_opinions_failed(f->o, "node-1", NULL), 0);
	assert_int_equal(coord_opinions_failed(f->o, "node-1", "db"), 0);
	assert_int_equal(coord_opinions_failed(f->o, "node-9", "web"), 0);
	assert_int_equal(coord_opinions_failed(f->o, "node-9", NULL), 0);
	/* More CRITICAL: still failed, no second report. */
	send_res(f, "node-1", "web", CRIT, AMBIG, "timeout");
	send_res(f, "node-1", "web", CRIT, CERTAIN, "refused");
	send_res(f, "node-1", "web", CRIT, CERTAIN, "refused");
	assert_int_equal(f->nch, 1);
	/* One OK clears it. */
	send_res(f, "node-1", "web", OK, 0, "HTTP 200");
	assert_int_equal(f->nch, 2);
	assert_change(&f->ch[1], "node-1", "web", 0, 0, "OK: HTTP 200");
	assert_int_equal(coord_opinions_failed(f->o, "node-1", "web"), 0);
	/* An empty message: the reason without the colon. */
	send_res(f, "node-1", "web", CRIT, 0, NULL);
	send_res(f, "node-1", "web", CRIT, 0, NULL);
	send_res(f, "node-1", "web", CRIT, 0, NULL);
	send_res(f, "node-1", "web", OK, 0, NULL);
	assert_int_equal(f->nch, 4);
	assert_change(
	    &f->ch[2], "node-1", "web", 1, 0, "3 consecutive CRITICAL results");
	assert_change(&f->ch[3], "node-1", "web", 0, 0, "OK");
	/* A policy with fail_after 1 (and so certain_after 1). */
	send_res(f, "node-1", "quick", CRIT, AMBIG, "slow");
	assert_int_equal(f->nch, 5);
	assert_change(&f->ch[4], "node-1", "quick", 1, 0,
	    "1 consecutive CRITICAL result: slow");
	send_res(f, "node-1", "quick", OK, 0, "");
	send_res(f, "node-1", "quick", CRIT, CERTAIN, "refused");
	assert_int_equal(f->nch, 7);
	assert_change(&f->ch[6], "node-1", "quick", 1, 1,
	    "1 certain CRITICAL result: refused");
}

/* db*: certain_after 2 acts long before fail_after 5. */
static void
test_certain_before_fail_after(void **state)
{
	struct fixture *f = *state;
	const char *const checks[] = {"db-main", NULL};

	hello(f, "node-2", checks);
	send_res(f, "node-2", "db-main", CRIT, CERTAIN, "connection refused");
	assert_int_equal(f->nch, 0);
	send_res(f, "node-2", "db-main", CRIT, CERTAIN, "connection refused");
	assert_int_equal(f->nch, 1);
	assert_change(&f->ch[0], "node-2", "db-main", 1, 1,
	    "2 certain CRITICAL results: connection refused");
	send_res(f, "node-2", "db-main", OK, 0, "up");
	assert_int_equal(f->nch, 2);
	/*
	 * An ambiguous CRITICAL breaks the certain streak (not the
	 * CRITICAL one): certain, ambiguous, certain is 3 CRITICAL, 1 certain.
	 */
	send_res(f, "node-2", "db-main", CRIT, CERTAIN, "refused");
	send_res(f, "node-2", "db-main", CRIT, AMBIG, "timeout");
	send_res(f, "node-2", "db-main", CRIT, CERTAIN, "refused");
	assert_int_equal(f->nch, 2);
	send_res(f, "node-2", "db-main", CRIT, CERTAIN, "refused");
	assert_int_equal(f->nch, 3);
	assert_change(&f->ch[2], "node-2", "db-main", 1, 1,
	    "2 certain CRITICAL results: refused");
	send_res(f, "node-2", "db-main", OK, 0, "up");
	/* Without certain evidence: all five. */
	for (int i = 0; i < 4; i++)
		send_res(f, "node-2", "db-main", CRIT, AMBIG, "timeout");
	assert_int_equal(f->nch, 4);
	send_res(f, "node-2", "db-main", CRIT, 0, "timeout");
	assert_int_equal(f->nch, 5);
	assert_change(&f->ch[4], "node-2", "db-main", 1, 0,
	    "5 consecutive CRITICAL results: timeout");
	/* Both reached at once: reported as certain. */
	send_res(f, "node-2", "db-main", OK, 0, "up");
	for (int i = 0; i < 3; i++)
		send_res(f, "node-2", "db-main", CRIT, AMBIG, "timeout");
	send_res(f, "node-2", "db-main", CRIT, CERTAIN, "refused");
	assert_int_equal(f->nch, 6);
	send_res(f, "node-2", "db-main", CRIT, CERTAIN, "refused");
	assert_int_equal(f->nch, 7);
	assert_change(&f->ch[6], "node-2", "db-main", 1, 1,
	    "2 certain CRITICAL results: refused");
}

/* WARNING, UNKNOWN (and an unset status) neither count nor clear. */
static void
test_warning_unknown_leave_counts(void **state)
{
	struct fixture *f = *state;

	hello(f, "node-1", one);
	send_res(f, "node-1", "web", CRIT, AMBIG, "a");
	send_res(f, "node-1", "web", WARN, 0, "slow");
	send_res(f, "node-1", "web", CRIT, AMBIG, "b");
	send_res(f, "node-1", "web", UNKN, 0, "timed out");
	send_res(f, "node-1", "web", 0, 0, "unset");
	assert_int_equal(f->nch, 0);
	send_res(f, "node-1", "web", CRIT, AMBIG, "c");
	assert_int_equal(f->nch, 1);
	assert_change(&f->ch[0], "node-1", "web", 1, 0,
	    "3 consecutive CRITICAL results: c");
	/* Failed: WARNING and UNKNOWN do not clear. */
	send_res(f, "node-1", "web", WARN, 0, "slow");
	send_res(f, "node-1", "web", UNKN, 0, "timed out");
	assert_int_equal(f->nch, 1);
	assert_int_equal(coord_opinions_failed(f->o, "node-1", "web"), 1);
	/* Certain streaks survive them too. */
	send_res(f, "node-1", "web", OK, 0, "fine");
	send_res(f, "node-1", "web", CRIT, CERTAIN, "refused");
	send_res(f, "node-1", "web", UNKN, 0, "timed out");
	send_res(f, "node-1", "web", CRIT, CERTAIN, "refused");
	assert_int_equal(f->nch, 3);
	assert_change(&f->ch[2], "node-1", "web", 1, 1,
	    "2 certain CRITICAL results: refused");
}

/* OK resets both counts. */
static void
test_ok_clears_counts(void **state)
{
	struct fixture *f = *state;

	hello(f, "node-1", one);
	send_res(f, "node-1", "web", CRIT, AMBIG, "a");
	send_res(f, "node-1", "web", CRIT, CERTAIN, "b");
	send_res(f, "node-1", "web", OK, 0, "fine");
	send_res(f, "node-1", "web", CRIT, CERTAIN, "c");
	send_res(f, "node-1", "web", CRIT, AMBIG, "d");
	send_res(f, "node-1", "web", OK, 0, "fine");
	send_res(f, "node-1", "web", CRIT, AMBIG, "e");
	send_res(f, "node-1", "web", CRIT, AMBIG, "f");
	/* An OK while OK is no change. */
	assert_int_equal(f->nch, 0);
	send_res(f, "node-1", "web", CRIT, AMBIG, "g");
	assert_int_equal(f->nch, 1);
	assert_change(&f->ch[0], "node-1", "web", 1, 0,
	    "3 consecutive CRITICAL results: g");
}

/* A result sent again (same run, same time) counts once. */
static void
test_resent_result(void **state)
{
	struct fixture *f = *state;

	hello(f, "node-1", one);
	send_run(f, "node-1", "web", CRIT, AMBIG, "x", 1, 100);
	send_run(f, "node-1", "web", CRIT, AMBIG, "x", 2, 200);
	send_run(f, "node-1", "web", CRIT, AMBIG, "x", 2, 200);
	assert_int_equal(f->nch, 0);
	/* The same run number from a new agent process is news. */
	send_run(f, "node-1", "web", CRIT, AMBIG, "x", 2, 300);
	assert_int_equal(f->nch, 1);
	/* Run 0 (not numbered) is never taken for a repeat. */
	send_run(f, "node-1", "web", OK, 0, "x", 0, 400);
	send_run(f, "node-1", "web", CRIT, AMBIG, "x", 0, 400);
	send_run(f, "node-1", "web", CRIT, AMBIG, "x", 0, 400);
	send_run(f, "node-1", "web", CRIT, AMBIG, "x", 0, 400);
	assert_int_equal(f->nch, 3);
	assert_int_equal(f->ch[2].failed, 1);
}

/*
 * A check not in the Hello is judged; the next Hello without it forgets
 * it without a report, as it forgets any check no longer listed.
 */
static void
test_hello_forgets_checks(void **state)
{
	struct fixture *f = *state;
	const char *const ab[] = {"a", "b", NULL};
	const char *const b[] = {"b", NULL};

	hello(f, "node-1", ab);
	assert_metric(f, "troika_coord_opinions{state=\"ok\"} 3");
	for (int i = 0; i < 3; i++) {
		send_res(f, "node-1", "a", CRIT, AMBIG, "down");
		send_res(f, "node-1", "new", CRIT, AMBIG, "down");
	}
	assert_int_equal(f->nch, 2);
	assert_change(&f->ch[1], "node-1", "new", 1, 0,
	    "3 consecutive CRITICAL results: down");
	assert_int_equal(coord_opinions_failed(f->o, "node-1", "new"), 1);
	assert_metric(f, "troika_coord_opinions{state=\"failed\"} 2");
	assert_metric(f, "troika_coord_opinions{state=\"ok\"} 2");
	hello(f, "node-1", b);
	assert_int_equal(f->nch, 2);
	assert_int_equal(coord_opinions_failed(f->o, "node-1", "a"), 0);
	assert_int_equal(coord_opinions_failed(f->o, "node-1", "new"), 0);
	assert_metric(f, "troika_coord_opinions{state=\"failed\"} 0");
	assert_metric(f, "troika_coord_opinions{state=\"ok\"} 2");
	/* Forgotten means forgotten: back in a Hello, a check starts over. */
	hello(f, "node-1", ab);
	send_res(f, "node-1", "a", CRIT, AMBIG, "down");
	send_res(f, "node-1", "a", CRIT, AMBIG, "down");
	assert_int_equal(f->nch, 2);
	send_res(f, "node-1", "a", CRIT, AMBIG, "down");
	assert_int_equal(f->nch, 3);
	/* A Hello keeps what a check listed again has: a stays failed. */
	hello(f, "node-1", ab);
	assert_int_equal(coord_opinions_failed(f->o, "node-1", "a"), 1);
	assert_int_equal(f->nch, 3);
	/* Many checks: the table grows and finds them all. */
	{
		char names[200][16];
		const char *list[201];

		for (int i = 0; i < 200; i++) {
			snprintf(names[i], sizeof(names[i]), "c%d", i);
			list[i] = names[i];
		}
		list[200] = NULL;
		hello(f, "node-3", list);
		for (int i = 0; i < 200; i++)
			send_res(f, "node-3", names[i], CRIT, CERTAIN, "x");
		for (int i = 0; i < 200; i += 2)
			send_res(f, "node-3", names[i], CRIT, CERTAIN, "x");
		assert_int_equal(f->nch, 103);
		for (int i = 0; i < 200; i++)
			assert_int_equal(
			    coord_opinions_failed(f->o, "node-3", names[i]),
			    i % 2 == 0);
		/* Keep every third: the others go, the rest are found. */
		for (int i = 0, k = 0; i < 200; i += 3) {
			list[k++] = names[i];
			list[k] = NULL;
		}
		hello(f, "node-3", list);
		for (int i = 0; i < 200; i++)
			assert_int_equal(
			    coord_opinions_failed(f->o, "node-3", names[i]),
			    i % 6 == 0);
		assert_int_equal(f->nch, 103);
	}
}

/*
 * Silence: no result for down_after while the stream is up. Every result
 * puts it off; an OK result after it clears it.
 */
static void
test_silence(void **state)
{
	struct fixture *f = *state;

	f->conf->policies[2].down_after_ms = 150;
	hello(f, "node-1", one);
	run_ms(f, 100);
	send_res(f, "node-1", "web", OK, 0, "fine");
	/* 200 ms after the Hello, 100 after the result: not yet. */
	run_ms(f, 100);
	assert_int_equal(f->nch, 0);
	/* 150 ms after the result it is. */
	run_ms(f, 100);
	assert_int_equal(f->nch, 1);
	assert_change(&f->ch[0], "node-1", "web", 1, 0, "no result for 150ms");
	/* Once; a CRITICAL result does not clear it, an OK one does. */
	send_res(f, "node-1", "web", CRIT, AMBIG, "x");
	assert_int_equal(f->nch, 1);
	send_res(f, "node-1", "web", OK, 0, "back");
	assert_int_equal(f->nch, 2);
	assert_change(&f->ch[1], "node-1", "web", 0, 0, "OK: back");
}

/*
 * A node whose stream is gone: its checks are not counted down for
 * silence; the node is FAILED after node_down_after, OK at the next Hello.
 */
static void
test_node_disconnect(void **state)
{
	struct fixture *f = *state;

	f->conf->policies[2].down_after_ms = 100;
	f->conf->node_down_after_ms = 200;
	hello(f, "node-2", one);
	coord_opinions_disconnected(f->o, "node-2");
	/* A second end, and the end of a node never seen, change nothing. */
	coord_opinions_disconnected(f->o, "node-2");
	coord_opinions_disconnected(f->o, "node-9");
	run_ms(f, 150);
	assert_int_equal(f->nch, 0);
	run_ms(f, 100);
	assert_int_equal(f->nch, 1);
	assert_change(
	    &f->ch[0], "node-2", NULL, 1, 0, "agent stream gone for 200ms");
	assert_int_equal(coord_opinions_failed(f->o, "node-2", NULL), 1);
	assert_int_equal(coord_opinions_failed(f->o, "node-2", "web"), 0);
	/* Back: OK at once, and its checks' silence counts from now. */
	hello(f, "node-2", one);
	assert_int_equal(f->nch, 2);
	assert_change(&f->ch[1], "node-2", NULL, 0, 1, "agent back");
	run_ms(f, 150);
	assert_int_equal(f->nch, 3);
	assert_change(&f->ch[2], "node-2", "web", 1, 0, "no result for 100ms");
	/* A stream back before the timer: nothing at all. */
	hello(f, "node-3", one);
	send_res(f, "node-3", "web", OK, 0, "");
	coord_opinions_disconnected(f->o, "node-3");
	hello(f, "node-3", one);
	send_res(f, "node-3", "web", OK, 0, "");
	coord_opinions_disconnected(f->o, "node-3");
	assert_int_equal(f->nch, 3);
}

/*
 * TILT: nothing is reported, results do not count, timers do not fire;
 * afterwards counts and timers start afresh.
 */
static void
test_withhold(void **state)
{
	struct fixture *f = *state;
	const char *const checks[] = {"web", "db-1", NULL};

	f->conf->policies[2].down_after_ms = 100;
	f->conf->policies[0].down_after_ms = 100000;
	f->conf->node_down_after_ms = 100;
	hello(f, "node-1", checks);
	hello(f, "node-2", one);
	/* node-3 is down before the TILT and comes back during it. */
	hello(f, "node-3", one);
	coord_opinions_disconnected(f->o, "node-3");
	run_ms(f, 150);
	/* node-3 down, web of node-1 and node-2 silent. */
	assert_int_equal(f->nch, 3);
	assert_int_equal(coord_opinions_failed(f->o, "node-3", NULL), 1);
	assert_int_equal(coord_opinions_failed(f->o, "node-1", "web"), 1);
	assert_int_equal(coord_opinions_failed(f->o, "node-2", "web"), 1);
	send_res(f, "node-1", "web", OK, 0, "");
	send_res(f, "node-2", "web", OK, 0, "");
	changes_clear(f);
	/* One certain CRITICAL before: the end of TILT forgets it too. */
	send_res(f, "node-1", "db-1", CRIT, CERTAIN, "refused");

	coord_opinions_withhold(f->o, 1);
	coord_opinions_withhold(f->o, 1);
	assert_metric(f, "troika_coord_opinions_withheld 1");
	hello(f, "node-3", one);
	coord_opinions_disconnected(f->o, "node-2");
	for (int i = 0; i < 5; i++)
		send_res(f, "node-1", "db-1", CRIT, CERTAIN, "refused");
	/* Longer than every timer: none fires. */
	run_ms(f, 150);
	assert_int_equal(f->nch, 0);
	assert_int_equal(coord_opinions_failed(f->o, "node-3", NULL), 1);
	assert_int_equal(coord_opinions_failed(f->o, "node-1", "db-1"), 0);

	coord_opinions_withhold(f->o, 0);
	assert_metric(f, "troika_coord_opinions_withheld 0");
	/* node-3's agent is back: said at the end. */
	assert_int_equal(f->nch, 1);
	assert_change(&f->ch[0], "node-3", NULL, 0, 1, "agent back");
	/* Counts start again: one certain CRITICAL is not two. */
	send_res(f, "node-1", "db-1", CRIT, CERTAIN, "refused");
	assert_int_equal(f->nch, 1);
	send_res(f, "node-1", "db-1", CRIT, CERTAIN, "refused");
	assert_int_equal(f->nch, 2);
	/* Timers run again, measured from the end of the TILT. */
	run_ms(f, 60);
	assert_int_equal(f->nch, 2);
	run_ms(f, 90);
	/* node-2 (gone during it) down, node-1's and node-3's web silent. */
	assert_int_equal(f->nch, 5);
	for (size_t i = 2; i < 5; i++) {
		if (f->ch[i].check == NULL)
			assert_change(&f->ch[i], "node-2", NULL, 1, 0,
			    "agent stream gone for 100ms");
		else
			assert_change(&f->ch[i], f->ch[i].node, "web", 1, 0,
			    "no result for 100ms");
	}
	assert_int_equal(coord_opinions_failed(f->o, "node-2", NULL), 1);
	assert_int_equal(coord_opinions_failed(f->o, "node-1", "web"), 1);
	assert_int_equal(coord_opinions_failed(f->o, "node-3", "web"), 1);
	/* An end without a start changes nothing. */
	coord_opinions_withhold(f->o, 0);
	assert_int_equal(f->nch, 5);
}

struct collected {
	char line[8][160];
	size_t n;
};

static void
collect_cb(const struct coord_opinion_change *ch, void *arg)
{
	struct collected *c = arg;

	assert_true(c->n < 8);
	assert_int_equal(ch->failed, 1);
	assert_true(ch->time_ns > 0);
	snprintf(c->line[c->n++], sizeof(c->line[0]), "%s/%s/%s/%d/%s",
	    ch->node, ch->check ? ch->check : "-",
	    ch->plugin ? ch->plugin : "-", ch->certain, ch->reason);
}

static void
test_foreach_failed(void **state)
{
	struct fixture *f = *state;
	const char *const checks[] = {"web", "db-1", "quick", NULL};
	struct collected c = {.n = 0};

	f->conf->node_down_after_ms = 100;
	coord_opinions_foreach_failed(f->o, collect_cb, &c);
	assert_int_equal(c.n, 0);
	hello(f, "node-1", checks);
	hello(f, "node-2", one);
	send_res(f, "node-1", "db-1", CRIT, CERTAIN, "refused");
	send_res(f, "node-1", "db-1", CRIT, CERTAIN, "refused");
	send_res(f, "node-1", "quick", CRIT, AMBIG, "slow");
	send_res(f, "node-1", "quick", OK, 0, "");
	send_res(f, "node-1", "web", CRIT, AMBIG, "t");
	send_res(f, "node-1", "web", CRIT, AMBIG, "t");
	send_res(f, "node-1", "web", CRIT, AMBIG, "t");
	coord_opinions_disconnected(f->o, "node-2");
	run_ms(f, 150);
	coord_opinions_foreach_failed(f->o, collect_cb, &c);
	/* Nodes in name order, each before its checks, in Hello order. */
	assert_int_equal(c.n, 3);
	assert_string_equal(
	    c.line[0], "node-1/web/tcp/0/3 consecutive CRITICAL results: t");
	assert_string_equal(
	    c.line[1], "node-1/db-1/tcp/1/2 certain CRITICAL results: refused");
	assert_string_equal(
	    c.line[2], "node-2/-/-/0/agent stream gone for 100ms");
}

static void
test_metrics(void **state)
{
	struct fixture *f = *state;
	char *page;

	hello(f, "node-1", one);
	send_res(f, "node-1", "quick", CRIT, AMBIG, "x");
	send_res(f, "node-1", "quick", OK, 0, "");
	send_res(f, "node-1", "web", CRIT, CERTAIN, "x");
	send_res(f, "node-1", "web", CRIT, CERTAIN, "x");
	coord_opinions_withhold(f->o, 1);
	page = metrics(f);
	assert_string_equal(page,
	    "# HELP troika_coord_opinions This coordinator's opinions of "
	    "nodes and checks now, by state.\n"
	    "# TYPE troika_coord_opinions gauge\n"
	    "troika_coord_opinions{state=\"failed\"} 1\n"
	    "troika_coord_opinions{state=\"ok\"} 2\n"
	    "# HELP troika_coord_opinion_changes_total Changes of this "
	    "coordinator's opinions, by the new state.\n"
	    "# TYPE troika_coord_opinion_changes_total counter\n"
	    "troika_coord_opinion_changes_total{to=\"failed\"} 2\n"
	    "troika_coord_opinion_changes_total{to=\"ok\"} 1\n"
	    "# HELP troika_coord_opinions_withheld 1 while opinions are "
	    "withheld (TILT).\n"
	    "# TYPE troika_coord_opinions_withheld gauge\n"
	    "troika_coord_opinions_withheld 1\n"
	    "# HELP troika_coord_opinion_results_ignored_total Results not "
	    "judged: no check name, over 1024 nodes, or over 1024 checks a "
	    "node had not announced in its Hello.\n"
	    "# TYPE troika_coord_opinion_results_ignored_total counter\n"
	    "troika_coord_opinion_results_ignored_total 0\n");
	free(page);
}

/* Nodes and unannounced checks are bounded; past the bounds, counted. */
static void
test_limits(void **state)
{
	struct fixture *f = *state;
	char name[32];

	send_res(f, "node-1", "", CRIT, CERTAIN, "no name");
	assert_metric(f, "troika_coord_opinion_results_ignored_total 1");
	/* A result from a node never said Hello: judged all the same. */
	send_res(f, "node-0", "quick", CRIT, CERTAIN, "x");
	assert_int_equal(f->nch, 1);
	for (int i = 1; i < 1024; i++) {
		snprintf(name, sizeof(name), "node-%04d", i);
		hello(f, name, one);
	}
	/* node-0 and its check, 1023 more nodes and their web checks. */
	assert_metric(f, "troika_coord_opinions{state=\"failed\"} 1");
	assert_metric(f, "troika_coord_opinions{state=\"ok\"} 2047");
	hello(f, "node-1025", one);
	send_res(f, "node-1025", "quick", CRIT, CERTAIN, "x");
	assert_int_equal(f->nch, 1);
	assert_int_equal(coord_opinions_failed(f->o, "node-1025", "quick"), 0);
	assert_metric(f, "troika_coord_opinion_results_ignored_total 2");
	/* Known nodes still work. */
	send_res(f, "node-0512", "web", CRIT, CERTAIN, "x");
	send_res(f, "node-0512", "web", CRIT, CERTAIN, "x");
	assert_int_equal(f->nch, 2);
	/* 1024 checks beyond the Hello, then no more. */
	for (int i = 0; i < 1025; i++) {
		snprintf(name, sizeof(name), "extra-%d", i);
		send_res(f, "node-0001", name, OK, 0, "");
	}
	assert_metric(f, "troika_coord_opinion_results_ignored_total 3");
	send_res(f, "node-0001", "extra-1023", CRIT, 0, "x");
	send_res(f, "node-0001", "extra-1024", CRIT, 0, "x");
	assert_metric(f, "troika_coord_opinion_results_ignored_total 4");
	/* A Hello resets what is beyond it: room again. */
	hello(f, "node-0001", one);
	send_res(f, "node-0001", "extra-1024", OK, 0, "");
	assert_metric(f, "troika_coord_opinion_results_ignored_total 4");
}

/* No callback given: changes are still counted. */
static void
test_no_callback(void **state)
{
	struct fixture *f = *state;
	struct coord_opinions *o;
	Troika__V1__CheckResult r = TROIKA__V1__CHECK_RESULT__INIT;

	assert_non_null(o = coord_opinions_new(f->base, f->conf, NULL, NULL));
	r.check = (char *)(uintptr_t) "quick";
	r.status = CRIT;
	r.run = 1;
	coord_opinions_result(o, "n", &r);
	assert_int_equal(coord_opinions_failed(o, "n", "quick"), 1);
	coord_opinions_free(o);
	coord_opinions_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_fail_after_ambiguous, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_certain_before_fail_after, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_warning_unknown_leave_counts, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_ok_clears_counts, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_resent_result, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_hello_forgets_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_silence, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_node_disconnect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_withhold, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_foreach_failed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_callback, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
