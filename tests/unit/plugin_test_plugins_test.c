/*
 * The test-only plugins of tests/plugins behave as the host tests expect
 * them to: hang never reports, slow reports after its delay and counts
 * cancels, sleepy blocks, flaky cycles and carries characters to escape,
 * and badabi, tiny and noentry are broken in exactly one way each.
 */
#include <dlfcn.h>
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

#include "fake_host.h"

#define TEST_PLUGIN(name) TEST_PLUGIN_DIR "/troika-" name ".so"

struct fixture {
	const struct troika_plugin *p;
	void *dl;
	struct fake_host *fh;
	void *state;
};

static void
load(struct fixture *f, const char *path)
{
	f->p = fake_host_load_plugin(path, &f->dl);
	f->fh = fake_host_new(f->p->options);
	f->state = NULL;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (f->p != NULL)
		f->p->instance_free(f->state);
	if (f->fh != NULL) {
		assert_int_equal(fake_host_violations(f->fh), 0);
		fake_host_free(f->fh);
	}
	if (f->dl != NULL)
		dlclose(f->dl);
	free(f);
	return 0;
}

static double
elapsed_s(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	    (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
test_hang(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	load(f, TEST_PLUGIN("hang"));
	assert_string_equal(f->p->name, "hang");
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_ASYNC);
	assert_null(f->p->cancel);
	assert_null(f->p->options[0].name);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	task = fake_host_task(f->fh, 100);
	fake_host_check(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_wait_done(f->fh, 1, 300), -ETIMEDOUT);
	assert_int_equal(fake_host_done_count(f->fh), 0);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
}

static void
test_slow(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	const struct fake_sample *s;
	struct troika_task *task;
	struct timespec t0;

	load(f, TEST_PLUGIN("slow"));
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_ASYNC);
	assert_non_null(f->p->cancel);
	fake_host_set_duration(f->fh, "delay", 150);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	fake_host_check(f->fh, f->p, f->state, fake_host_task(f->fh, 1000));
	assert_int_equal(fake_host_wait_done(f->fh, 1, 2000), 0);
	/* libevent's timers run on the coarse clock: a tick early at most. */
	assert_true(elapsed_s(&t0) >= 0.14);
	r = fake_host_last(f->fh);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "done after 150 ms (0 cancelled before)");
	s = fake_result_sample(r, "troika_slow_cancels_total", NULL, NULL);
	assert_non_null(s);
	assert_int_equal(s->type, TROIKA_METRIC_COUNTER);
	assert_true(s->value == 0);

	/* Cancelled: no result, timer gone, counted. */
	task = fake_host_task(f->fh, 1000);
	fake_host_check(f->fh, f->p, f->state, task);
	fake_host_cancel(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
	fake_host_run_for(f->fh, 250);
	assert_int_equal(fake_host_done_count(f->fh), 1);
	assert_true(fake_host_log_contains(f->fh, "cancelled (1 so far)"));

	fake_host_check(f->fh, f->p, f->state, fake_host_task(f->fh, 1000));
	assert_int_equal(fake_host_wait_done(f->fh, 2, 2000), 0);
	r = fake_host_last(f->fh);
	assert_string_equal(r->message, "done after 150 ms (1 cancelled before)");
	assert_true(fake_result_sample(r, "troika_slow_cancels_total", NULL,
	    NULL)->value == 1);
}

static void
test_slow_default_delay(void **state)
{
	struct fixture *f = *state;

	load(f, TEST_PLUGIN("slow"));
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	fake_host_check(f->fh, f->p, f->state, fake_host_task(f->fh, 1000));
	assert_int_equal(fake_host_wait_done(f->fh, 1, 2000), 0);
	assert_string_equal(fake_host_last(f->fh)->message,
	    "done after 100 ms (0 cancelled before)");
}

static void
test_sleepy(void **state)
{
	struct fixture *f = *state;
	struct timespec t0;

	load(f, TEST_PLUGIN("sleepy"));
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_BLOCKING);
	assert_null(f->p->cancel);
	fake_host_set_duration(f->fh, "sleep", 120);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Blocking: it has reported when check() returns. */
	fake_host_check(f->fh, f->p, f->state, fake_host_task(f->fh, 1000));
	assert_true(elapsed_s(&t0) >= 0.12);
	assert_int_equal(fake_host_done_count(f->fh), 1);
	assert_int_equal(fake_host_last(f->fh)->status, TROIKA_STATUS_OK);
	assert_string_equal(fake_host_last(f->fh)->message, "slept 120 ms");
}

static void
test_flaky(void **state)
{
	struct fixture *f = *state;
	static const char *const seq[] = { "ok", "critical", "warning",
	    "unknown" };
	static const enum troika_status want[] = { TROIKA_STATUS_OK,
	    TROIKA_STATUS_CRITICAL, TROIKA_STATUS_WARNING,
	    TROIKA_STATUS_UNKNOWN, TROIKA_STATUS_OK };
	const char *text = "quote \" backslash \\ newline \n end";

	load(f, TEST_PLUGIN("flaky"));
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_ASYNC);
	fake_host_set_list(f->fh, "statuses", seq, 4);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	for (unsigned i = 0; i < 5; i++) {
		const struct fake_result *r;
		const struct fake_sample *s;

		/* fake_host_check flags a report from inside check(). */
		fake_host_check(f->fh, f->p, f->state,
		    fake_host_task(f->fh, 1000));
		assert_int_equal(fake_host_done_count(f->fh), i);
		assert_int_equal(fake_host_wait_done(f->fh, i + 1, 1000), 0);
		r = fake_host_last(f->fh);
		assert_int_equal(r->status, want[i]);
		assert_string_equal(r->message, text);
		s = fake_result_sample(r, "troika_flaky_value", "text", text);
		assert_non_null(s);
		assert_true(s->value == i + 1);
	}
	assert_int_equal(fake_host_events_pending(f->fh), 0);
}

static void
test_flaky_default_and_cancel(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	load(f, TEST_PLUGIN("flaky"));
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	fake_host_check(f->fh, f->p, f->state, fake_host_task(f->fh, 1000));
	assert_int_equal(fake_host_wait_done(f->fh, 1, 1000), 0);
	assert_int_equal(fake_host_last(f->fh)->status, TROIKA_STATUS_OK);

	task = fake_host_task(f->fh, 1000);
	fake_host_check(f->fh, f->p, f->state, task);
	fake_host_cancel(f->fh, f->p, f->state, task);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_done_count(f->fh), 1);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
}

static void
test_flaky_bad_status(void **state)
{
	struct fixture *f = *state;
	static const char *const seq[] = { "ok", "maybe" };

	load(f, TEST_PLUGIN("flaky"));
	fake_host_set_list(f->fh, "statuses", seq, 2);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_null(f->state);
	assert_string_equal(fake_host_log_last(f->fh), "statuses[1]: \"maybe\" "
	    "is not one of ok, warning, critical, unknown");
}

/* The broken ones are opened by hand: the fake host's loader refuses them. */
static const struct troika_plugin *
raw_entry(struct fixture *f, const char *path)
{
	troika_plugin_entry_fn entry;

	f->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (f->dl == NULL)
		fail_msg("dlopen %s: %s", path, dlerror());
	*(void **)&entry = dlsym(f->dl, TROIKA_PLUGIN_ENTRY_NAME);
	return entry != NULL ? entry() : NULL;
}

static void
test_badabi(void **state)
{
	struct fixture *f = *state;
	const struct troika_plugin *p = raw_entry(f, TEST_PLUGIN("badabi"));

	assert_non_null(p);
	assert_int_equal(p->abi_major, 99);
	/* Everything else is fine: only the major may make the host refuse. */
	assert_int_equal(p->size, sizeof(struct troika_plugin));
	assert_string_equal(p->name, "badabi");
	assert_non_null(p->instance_new);
	assert_non_null(p->check);
}

static void
test_tiny(void **state)
{
	struct fixture *f = *state;
	const struct troika_plugin *p = raw_entry(f, TEST_PLUGIN("tiny"));

	assert_non_null(p);
	assert_int_equal(p->abi_major, TROIKA_PLUGIN_ABI_MAJOR);
	assert_int_equal(p->size, 16);
	assert_true(p->size < sizeof(struct troika_plugin));
}

static void
test_noentry(void **state)
{
	struct fixture *f = *state;

	assert_null(raw_entry(f, TEST_PLUGIN("noentry")));
	assert_non_null(dlsym(f->dl, "troika_plugin_entry_v2"));
}

/*
 * The fake host is what every plugin test leans on: check that it does
 * catch the contract breaches those tests count on it to catch.
 */
static void
test_fake_host_catches_breaches(void **state)
{
	struct fixture *f = *state;
	const struct troika_host *h;
	struct troika_task *task;
	struct troika_label check_label = { "check", "x" };
	struct troika_sample bad[] = {
		{ .name = "troika_check_up", .type = TROIKA_METRIC_GAUGE },
		{ .name = "troika_x", .type = TROIKA_METRIC_COUNTER },
		{ .name = "troika_y", .type = TROIKA_METRIC_GAUGE,
		    .labels = &check_label, .nlabels = 1 },
		{ .name = "9lives", .type = TROIKA_METRIC_GAUGE },
	};
	struct troika_result res = { .size = sizeof(res) };

	load(f, TEST_PLUGIN("flaky"));
	h = fake_host_table(f->fh);
	task = fake_host_task(f->fh, 1000);
	h->check_done(task, &res);
	assert_int_equal(fake_host_violations(f->fh), 0);
	h->check_done(task, &res);
	assert_int_equal(fake_host_violations(f->fh), 1);
	assert_string_equal(fake_host_last_violation(f->fh),
	    "check_done() twice for one task");

	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	task = fake_host_task(f->fh, 1000);
	fake_host_check(f->fh, f->p, f->state, task);
	fake_host_cancel(f->fh, f->p, f->state, task);
	h->check_done(task, &res);
	assert_string_equal(fake_host_last_violation(f->fh),
	    "check_done() after cancel()");

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unsigned before = fake_host_violations(f->fh);

		res.samples = &bad[i];
		res.nsamples = 1;
		h->check_done(fake_host_task(f->fh, 1000), &res);
		assert_int_equal(fake_host_violations(f->fh), before + 1);
	}
	/* A getter of the wrong type, an undeclared option. */
	h->opt_int(fake_host_instance(f->fh), "statuses");
	assert_string_equal(fake_host_last_violation(f->fh),
	    "int getter for option \"statuses\", declared string list");
	h->opt_string(fake_host_instance(f->fh), "nope");
	assert_string_equal(fake_host_last_violation(f->fh),
	    "getter for undeclared option \"nope\"");

	/* Freed here: teardown would (rightly) fail on the violations. */
	f->p->instance_free(f->state);
	f->state = NULL;
	fake_host_free(f->fh);
	f->fh = NULL;
}

static void
service_done(int ok, const char *message, void *arg)
{
	int *calls = arg;

	assert_int_equal(ok, 1);
	assert_string_equal(message, "restarted");
	(*calls)++;
}

static void
test_fake_host_service_and_fields(void **state)
{
	struct fixture *f = *state;
	const struct troika_host *h;
	struct troika_label fields[] = { { "role", "primary" },
	    { "seqno", "42" } };
	struct troika_result res = { .size = sizeof(res), .fields = fields,
	    .nfields = 2 };
	int calls = 0;

	load(f, TEST_PLUGIN("hang"));
	h = fake_host_table(f->fh);
	assert_int_equal(h->service_control(fake_host_instance(f->fh),
	    "restart", 1000, service_done, &calls), -ENOENT);
	fake_host_set_service(f->fh, 1, "restarted");
	assert_int_equal(h->service_control(fake_host_instance(f->fh),
	    "restart", 1000, service_done, &calls), 0);
	assert_int_equal(calls, 0); /* from the loop, not at once */
	fake_host_run_for(f->fh, 20);
	assert_int_equal(calls, 1);
	assert_int_equal(fake_host_service_calls(f->fh), 2);
	assert_string_equal(fake_host_service_last_op(f->fh), "restart");

	h->check_done(fake_host_task(f->fh, 1000), &res);
	assert_string_equal(fake_result_field(fake_host_last(f->fh), "role"),
	    "primary");
	assert_string_equal(fake_result_field(fake_host_last(f->fh), "seqno"),
	    "42");
	assert_null(fake_result_field(fake_host_last(f->fh), "uuid"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hang, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_default_delay, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sleepy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flaky, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flaky_default_and_cancel,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_flaky_bad_status, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_badabi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tiny, setup, teardown),
		cmocka_unit_test_setup_teardown(test_noentry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fake_host_catches_breaches,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_fake_host_service_and_fields,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
