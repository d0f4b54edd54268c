/*
 * check_host: scheduling, deadlines, one run at a time, results, reload
 * semantics and exposition, driven through the test plugins on a fresh
 * event base per test.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "check_host.h"
#include "conf.h"
#include "emit.h"
#include "plugin_set.h"

struct fixture {
	struct event_base *base;
	struct plugin_set ps;
	struct check_host *h;
	struct agent_conf conf;
};

static int status_events;
static int timeout_events;

static void
count_sink(const struct troika_event *ev, void *arg)
{
	(void)arg;
	if (ev->kind == EVENT_CHECK_STATUS)
		status_events++;
	else if (ev->kind == EVENT_CHECK_TIMEOUT)
		timeout_events++;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *dirs[] = { TEST_PLUGIN_DIR };

	assert_non_null(f);
	evthread_use_pthreads();
	f->base = event_base_new();
	assert_non_null(f->base);
	plugin_set_init(&f->ps, 0);
	plugin_set_load_dirs(&f->ps, dirs, 1);
	assert_non_null(plugin_set_find(&f->ps, "flaky"));
	f->h = check_host_new(f->base, 2);
	assert_non_null(f->h);
	status_events = timeout_events = 0;
	event_sink_add(count_sink, NULL);
	*state = f;
	return 0;
}

static void
conf_reset(struct agent_conf *conf)
{
	for (size_t i = 0; i < conf->nchecks; i++) {
		struct conf_check *c = &conf->checks[i];
		for (size_t j = 0; j < c->nopts; j++) {
			free(c->opts[j].name);
			free(c->opts[j].str);
			conf_strv_free(c->opts[j].list, c->opts[j].nlist);
		}
		free(c->opts);
		free(c->name);
		free(c->plugin);
		free(c->canonical);
	}
	free(conf->checks);
	conf->checks = NULL;
	conf->nchecks = 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	check_host_free(f->h);
	/* Everything the host put on the loop is gone with it. */
	assert_int_equal(event_base_get_num_events(f->base, EVENT_BASE_COUNT_ADDED), 0);
	assert_int_equal(check_host_tasks_alive(), 0);
	plugin_set_free(&f->ps);
	conf_reset(&f->conf);
	event_base_free(f->base);
	event_sink_remove(count_sink, NULL);
	free(f);
	return 0;
}

/*
 * Add a check to the fixture's config. opt is "name=value" for a duration
 * option, "name=[a,b]" for a list, or NULL.
 */
static void
add_check(struct agent_conf *conf, const char *name, const char *plugin,
    int64_t interval_ms, int64_t timeout_ms, const char *opt)
{
	struct conf_check *c;
	char canon[512];

	conf->checks = realloc(conf->checks, (conf->nchecks + 1) * sizeof(*c));
	assert_non_null(conf->checks);
	c = &conf->checks[conf->nchecks++];
	memset(c, 0, sizeof(*c));
	c->name = strdup(name);
	c->plugin = strdup(plugin);
	c->interval_ms = interval_ms;
	c->timeout_ms = timeout_ms;
	c->plugin_pos.file = "test.yaml";
	c->plugin_pos.line = 1;
	c->plugin_pos.col = 1;
	snprintf(canon, sizeof(canon), "%s|%lld|%lld|%s", plugin,
	    (long long)interval_ms, (long long)timeout_ms, opt ? opt : "");
	c->canonical = strdup(canon);
	if (opt == NULL)
		return;
	const char *eq = strchr(opt, '=');
	assert_non_null(eq);
	c->opts = calloc(1, sizeof(*c->opts));
	c->nopts = 1;
	c->opts[0].name = strndup(opt, (size_t)(eq - opt));
	c->opts[0].isset = c->opts[0].hasvalue = 1;
	if (eq[1] == '[') {
		char *list = strndup(eq + 2, strlen(eq + 2) - 1), *save, *tok;
		c->opts[0].type = TROIKA_OPT_STRING_LIST;
		for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			c->opts[0].list = realloc(c->opts[0].list,
			    (c->opts[0].nlist + 1) * sizeof(char *));
			c->opts[0].list[c->opts[0].nlist++] = strdup(tok);
		}
		free(list);
	} else {
		c->opts[0].type = TROIKA_OPT_DURATION;
		c->opts[0].str = strdup(eq + 1);
		c->opts[0].num = strtoll(eq + 1, NULL, 10);
	}
}

static void
run_for(struct fixture *f, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(f->base, &tv);
	event_base_dispatch(f->base);
}

static struct check_view
view(struct fixture *f, const char *name)
{
	struct troika_instance *c = check_host_find(f->h, name);
	struct check_view v;

	assert_non_null(c);
	check_view(c, &v);
	return v;
}

static void
test_spread_offsets_are_stable_and_even(void **state)
{
	int buckets[10] = { 0 };
	char name[32];

	(void)state;
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "tcp-%d", i);
		int64_t off = check_spread_offset_ms(name, 1000);
		assert_true(off >= 0 && off < 1000);
		assert_int_equal(off, check_spread_offset_ms(name, 1000));
		buckets[off / 100]++;
	}
	/* 100 expected per bucket; a hash that clumps fails this. */
	for (int i = 0; i < 10; i++)
		assert_true(buckets[i] > 60 && buckets[i] < 140);
	assert_int_equal(check_spread_offset_ms("x", 0), 0);
}

static void
test_results_and_status_events(void **state)
{
	struct fixture *f = *state;
	struct check_view v;

	add_check(&f->conf, "flap", "flaky", 100, 50, "statuses=[ok,critical]");
	check_host_apply(f->h, &f->conf, &f->ps);
	run_for(f, 450);
	v = view(f, "flap");
	assert_true(v.runs[CHECK_RESULT_OK] >= 1);
	assert_true(v.runs[CHECK_RESULT_CRITICAL] >= 1);
	assert_int_equal(v.runs[CHECK_RESULT_TIMEOUT], 0);
	assert_int_equal(v.overruns, 0);
	/* Every run flips the status: one event per run. */
	assert_int_equal((uint64_t)status_events,
	    v.runs[CHECK_RESULT_OK] + v.runs[CHECK_RESULT_CRITICAL]);
	assert_int_equal(v.nsamples, 1);
}

static void
test_hung_check_times_out_once_and_never_runs_twice(void **state)
{
	struct fixture *f = *state;
	struct check_view v;

	add_check(&f->conf, "stuck", "hang", 100, 50, NULL);
	add_check(&f->conf, "beat", "flaky", 100, 50, NULL);
	check_host_apply(f->h, &f->conf, &f->ps);
	run_for(f, 550);
	v = view(f, "stuck");
	assert_true(v.has_result);
	assert_int_equal(v.status, TROIKA_STATUS_UNKNOWN);
	assert_int_equal(v.evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(v.message, "timed out after 0.050s");
	assert_int_equal(v.runs[CHECK_RESULT_TIMEOUT], 1);
	assert_true(v.overruns >= 3);
	assert_true(v.running);
	assert_int_equal(timeout_events, 1);
	assert_int_equal(check_host_run_now(f->h, "stuck"), -EBUSY);
	/* The other check kept its schedule: 5 or 6 runs in 550 ms. */
	v = view(f, "beat");
	assert_true(v.runs[CHECK_RESULT_OK] >= 5);
	assert_int_equal(check_host_tasks_alive(), 1);
}

static void
test_async_cancel_frees_the_run(void **state)
{
	struct fixture *f = *state;
	struct check_view v;

	/* slow completes after 1000 ms, far past its 30 ms deadline. */
	add_check(&f->conf, "slowpoke", "slow", 100, 30, "delay=1000");
	check_host_apply(f->h, &f->conf, &f->ps);
	run_for(f, 450);
	v = view(f, "slowpoke");
	/* Cancelled at each deadline, so every slot starts a new run. */
	assert_true(v.runs[CHECK_RESULT_TIMEOUT] >= 3);
	assert_int_equal(v.overruns, 0);
	assert_false(v.running);
	assert_int_equal(check_host_tasks_alive(), 0);
}

static void
test_blocking_timeout_and_late_completion(void **state)
{
	struct fixture *f = *state;
	struct check_view v;

	add_check(&f->conf, "sleeper", "sleepy", 100, 30, "sleep=250");
	check_host_apply(f->h, &f->conf, &f->ps);
	run_for(f, 200);
	v = view(f, "sleeper");
	assert_int_equal(v.runs[CHECK_RESULT_TIMEOUT], 1);
	assert_true(v.running);
	assert_int_equal(v.runs[CHECK_RESULT_OK], 0);
	run_for(f, 400);
	/* The late OK was dropped; a later run timed out again. */
	v = view(f, "sleeper");
	assert_int_equal(v.runs[CHECK_RESULT_OK], 0);
	assert_true(v.runs[CHECK_RESULT_TIMEOUT] >= 2);
	assert_true(v.overruns >= 1);
}

static void
test_apply_keeps_unchanged_checks(void **state)
{
	struct fixture *f = *state;
	struct troika_instance *x, *y;
	struct check_view v;

	add_check(&f->conf, "x", "flaky", 100, 50, NULL);
	add_check(&f->conf, "y", "flaky", 100, 50, "statuses=[ok]");
	check_host_apply(f->h, &f->conf, &f->ps);
	run_for(f, 250);
	x = check_host_find(f->h, "x");
	y = check_host_find(f->h, "y");
	uint64_t runs_x = view(f, "x").runs[CHECK_RESULT_OK];
	assert_true(runs_x >= 2);

	conf_reset(&f->conf);
	add_check(&f->conf, "x", "flaky", 100, 50, NULL);
	add_check(&f->conf, "y", "flaky", 100, 50, "statuses=[critical]");
	add_check(&f->conf, "z", "flaky", 100, 50, NULL);
	check_host_apply(f->h, &f->conf, &f->ps);
	assert_int_equal(check_host_count(f->h), 3);
	assert_ptr_equal(check_host_find(f->h, "x"), x);
	assert_ptr_not_equal(check_host_find(f->h, "y"), y);
	v = view(f, "x");
	assert_int_equal(v.runs[CHECK_RESULT_OK], runs_x);
	v = view(f, "y");
	assert_int_equal(v.runs[CHECK_RESULT_OK], 0);
	run_for(f, 250);
	assert_true(view(f, "y").runs[CHECK_RESULT_CRITICAL] >= 1);

	conf_reset(&f->conf);
	check_host_apply(f->h, &f->conf, &f->ps);
	assert_int_equal(check_host_count(f->h), 0);
}

static void
test_missing_plugin_is_reported_not_run(void **state)
{
	struct fixture *f = *state;
	struct check_view v;

	add_check(&f->conf, "ghost", "nope", 100, 50, NULL);
	check_host_apply(f->h, &f->conf, &f->ps);
	run_for(f, 150);
	v = view(f, "ghost");
	assert_true(v.has_result);
	assert_int_equal(v.status, TROIKA_STATUS_UNKNOWN);
	assert_string_equal(v.message, "plugin 'nope' is not loaded");
	assert_false(v.running);
	assert_int_equal(check_host_run_now(f->h, "ghost"), -ENOENT);
	assert_int_equal(check_host_run_now(f->h, "nothing"), -ENOENT);
}

static void
test_drop_plugin_removes_its_checks(void **state)
{
	struct fixture *f = *state;

	add_check(&f->conf, "a", "flaky", 100, 50, NULL);
	add_check(&f->conf, "b", "hang", 100, 50, NULL);
	check_host_apply(f->h, &f->conf, &f->ps);
	run_for(f, 200);
	check_host_drop_plugin(f->h, plugin_set_find(&f->ps, "hang"));
	assert_int_equal(check_host_count(f->h), 1);
	assert_null(check_host_find(f->h, "b"));
	assert_non_null(check_host_find(f->h, "a"));
}

static void
test_exposition(void **state)
{
	struct fixture *f = *state;
	struct evbuffer *out = evbuffer_new();
	char *text;
	size_t len;

	add_check(&f->conf, "esc", "flaky", 100, 50, NULL);
	check_host_apply(f->h, &f->conf, &f->ps);
	run_for(f, 150);
	check_host_metrics(f->h, out);
	len = evbuffer_get_length(out);
	text = calloc(1, len + 1);
	evbuffer_remove(out, text, len);
	assert_non_null(strstr(text, "# TYPE troika_check_status gauge\n"
	    "troika_check_status{check=\"esc\",plugin=\"flaky\"} 0\n"));
	assert_non_null(strstr(text, "troika_check_runs_total{check=\"esc\","
	    "plugin=\"flaky\",result=\"timeout\"} 0\n"));
	assert_non_null(strstr(text, "troika_check_duration_seconds_bucket{"
	    "check=\"esc\",plugin=\"flaky\",le=\"+Inf\"} "));
	assert_non_null(strstr(text, "# TYPE troika_flaky_value gauge\n"
	    "troika_flaky_value{check=\"esc\",plugin=\"flaky\",text=\""));
	/* The label value's quote, backslash and newline are escaped. */
	const char *s = strstr(text, "troika_flaky_value{");
	const char *eol = strchr(s, '\n');
	assert_non_null(memmem(s, (size_t)(eol - s), "\\\"", 2));
	assert_non_null(memmem(s, (size_t)(eol - s), "\\\\", 2));
	assert_non_null(memmem(s, (size_t)(eol - s), "\\n", 2));
	free(text);
	evbuffer_free(out);
}

struct action_log {
	int calls;
	enum troika_status status;
	char message[256];
	char fields[256];
	int timed_out;
	int ran_while_check_out; /* the check had a task out when we finished */
};

static void
action_done_cb(const struct action_outcome *o, void *arg)
{
	struct action_log *l = arg;

	l->calls++;
	l->status = o->status;
	l->timed_out = o->timed_out;
	snprintf(l->message, sizeof(l->message), "%s", o->message ? o->message : "");
	l->fields[0] = '\0';
	for (size_t i = 0; i < o->nfields; i++) {
		size_t n = strlen(l->fields);
		snprintf(l->fields + n, sizeof(l->fields) - n, "%s=%s;",
		    o->fields[i].name, o->fields[i].value);
	}
}

static void
test_actions(void **state)
{
	struct fixture *f = *state;
	struct action_log l = { 0 };
	const char *err;
	const char *args[] = { "one", "two" };

	/* A check run takes 150 ms; runs every 1 s, first within it. */
	add_check(&f->conf, "a", "actor", 1000, 300, "delay=150");
	add_check(&f->conf, "plain", "flaky", 1000, 300, NULL);
	check_host_apply(f->h, &f->conf, &f->ps);

	/* Errors, said in words. */
	assert_int_equal(check_host_action(f->h, "nope", "echo", NULL, 0, 0,
	    action_done_cb, &l, NULL, &err), -ENOENT);
	assert_string_equal(err, "no such check");
	assert_int_equal(check_host_action(f->h, "plain", "restart", NULL, 0, 0,
	    action_done_cb, &l, NULL, &err), -EOPNOTSUPP);
	assert_int_equal(check_host_action(f->h, "a", "slow", NULL, 0, 0,
	    action_done_cb, &l, NULL, &err), -EINVAL);
	assert_string_equal(err, "<ms>");
	assert_int_equal(l.calls, 0);

	/* Fields come back; the action ran once. */
	assert_int_equal(check_host_action(f->h, "a", "echo", args, 2, 0,
	    action_done_cb, &l, NULL, &err), 0);
	assert_int_equal(check_host_action(f->h, "a", "echo", NULL, 0, 0,
	    action_done_cb, &l, NULL, &err), -EBUSY);
	run_for(f, 50);
	assert_int_equal(l.calls, 1);
	assert_int_equal(l.status, TROIKA_STATUS_OK);
	assert_string_equal(l.fields, "arg0=one;arg1=two;");

	/* fail -> CRITICAL with the plugin's message. */
	assert_int_equal(check_host_action(f->h, "a", "fail", NULL, 0, 0,
	    action_done_cb, &l, NULL, &err), 0);
	run_for(f, 20);
	assert_int_equal(l.calls, 2);
	assert_int_equal(l.status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(l.message, "failed on purpose");

	/* Past its deadline: UNKNOWN, timed out, and cancelled in the plugin. */
	const char *ms[] = { "5000" };
	assert_int_equal(check_host_action(f->h, "a", "slow", ms, 1, 100,
	    action_done_cb, &l, NULL, &err), 0);
	run_for(f, 1200);
	assert_int_equal(l.calls, 3);
	assert_int_equal(l.status, TROIKA_STATUS_UNKNOWN);
	assert_true(l.timed_out);
	assert_string_equal(l.message, "timed out after 0.100s");

	/* An action waits for a running check: start one, then ask. */
	assert_int_equal(check_host_run_now(f->h, "a"), 0);
	assert_true(view(f, "a").running);
	uint64_t ok_before = view(f, "a").runs[CHECK_RESULT_OK];
	assert_int_equal(check_host_action(f->h, "a", "echo", NULL, 0, 0,
	    action_done_cb, &l, NULL, &err), 0);
	run_for(f, 100);
	assert_int_equal(l.calls, 3); /* still waiting for the check */
	run_for(f, 150);
	assert_int_equal(l.calls, 4);
	assert_int_equal(view(f, "a").runs[CHECK_RESULT_OK], ok_before + 1);

	/* A forgotten requester is not called; removal reports pending ones. */
	struct troika_task *handle = NULL;
	const char *ms2[] = { "100" };
	assert_int_equal(check_host_action(f->h, "a", "slow", ms2, 1, 500,
	    action_done_cb, &l, &handle, &err), 0);
	check_host_action_forget(handle);
	run_for(f, 200);
	assert_int_equal(l.calls, 4);
	assert_int_equal(check_host_action(f->h, "a", "slow", ms, 1, 10000,
	    action_done_cb, &l, NULL, &err), 0);
	conf_reset(&f->conf);
	check_host_apply(f->h, &f->conf, &f->ps);
	assert_int_equal(l.calls, 5);
	assert_string_equal(l.message, "check removed while the action ran");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spread_offsets_are_stable_and_even),
		cmocka_unit_test_setup_teardown(test_results_and_status_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hung_check_times_out_once_and_never_runs_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_cancel_frees_the_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blocking_timeout_and_late_completion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_keeps_unchanged_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_plugin_is_reported_not_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drop_plugin_removes_its_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exposition, setup, teardown),
		cmocka_unit_test_setup_teardown(test_actions, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
