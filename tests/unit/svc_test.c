/* svc: the exec backend of the service manager, with real processes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "spawn.h"
#include "svc.h"

struct outcome {
	int calls;
	int ok;
	char message[700];
};

static void
done_cb(int ok, const char *message, void *arg)
{
	struct outcome *o = arg;

	o->calls++;
	o->ok = ok;
	snprintf(o->message, sizeof(o->message), "%s", message);
}

static char *sh_true[] = { "/bin/sh", "-c", "exit 0" };
static char *sh_fail[] = { "/bin/sh", "-c", "echo 'no such service' >&2; exit 3" };
static char *sh_slow[] = { "/bin/sh", "-c", "sleep 5" };
static char *missing[] = { "/nonexistent/ctl", "start" };

static void
run(struct event_base *base, struct outcome *o)
{
	while (o->calls == 0)
		event_base_loop(base, EVLOOP_ONCE);
}

static void
test_start_stop_restart(void **state)
{
	struct event_base *base = event_base_new();
	char marker[] = "/tmp/troika-svc-XXXXXX";
	char start_cmd[256], stop_cmd[256];
	struct outcome o = { 0 };
	int err;

	(void)state;
	assert_int_not_equal(mkstemp(marker), -1);
	unlink(marker);
	/* start writes the marker, stop removes it; order is visible. */
	snprintf(start_cmd, sizeof(start_cmd), "echo started >> %s", marker);
	snprintf(stop_cmd, sizeof(stop_cmd), "echo stopped >> %s", marker);
	char *start[] = { "/bin/sh", "-c", start_cmd };
	char *stop[] = { "/bin/sh", "-c", stop_cmd };
	struct svc_spec spec = {
		.backend = SVC_EXEC, .start = start, .nstart = 3,
		.stop = stop, .nstop = 3,
	};

	assert_non_null(svc_control(base, &spec, "start", 5000, done_cb, &o, &err));
	run(base, &o);
	assert_int_equal(o.ok, 1);
	assert_non_null(strstr(o.message, "start: done in "));

	memset(&o, 0, sizeof(o));
	/* restart without its own command: stop, then start. */
	assert_non_null(svc_control(base, &spec, "restart", 5000, done_cb, &o, &err));
	run(base, &o);
	assert_int_equal(o.ok, 1);
	assert_non_null(strstr(o.message, "stop: done in "));
	assert_non_null(strstr(o.message, "; start: done in "));

	FILE *f = fopen(marker, "r");
	char buf[128] = { 0 };
	assert_non_null(f);
	assert_int_equal(fread(buf, 1, sizeof(buf) - 1, f), strlen("started\nstopped\nstarted\n"));
	fclose(f);
	assert_string_equal(buf, "started\nstopped\nstarted\n");
	unlink(marker);
	spawn_shutdown();
	event_base_free(base);
}

static void
test_failures_are_explained(void **state)
{
	struct event_base *base = event_base_new();
	struct outcome o = { 0 };
	int err;

	(void)state;
	struct svc_spec failing = { .backend = SVC_EXEC, .start = sh_fail, .nstart = 3 };
	assert_non_null(svc_control(base, &failing, "start", 5000, done_cb, &o, &err));
	run(base, &o);
	assert_int_equal(o.ok, 0);
	assert_string_equal(o.message, "start: exited 3: no such service");

	memset(&o, 0, sizeof(o));
	struct svc_spec slow = { .backend = SVC_EXEC, .stop = sh_slow, .nstop = 3 };
	assert_non_null(svc_control(base, &slow, "stop", 200, done_cb, &o, &err));
	run(base, &o);
	assert_int_equal(o.ok, 0);
	assert_string_equal(o.message, "stop: timed out");

	memset(&o, 0, sizeof(o));
	struct svc_spec nothere = { .backend = SVC_EXEC, .start = missing, .nstart = 2 };
	assert_non_null(svc_control(base, &nothere, "start", 5000, done_cb, &o, &err));
	run(base, &o);
	assert_int_equal(o.ok, 0);
	assert_string_equal(o.message,
	    "start: could not run /nonexistent/ctl: No such file or directory");

	/* restart whose stop fails still starts; the start decides. */
	memset(&o, 0, sizeof(o));
	struct svc_spec r = { .backend = SVC_EXEC, .stop = sh_fail, .nstop = 3,
	    .start = sh_true, .nstart = 3 };
	assert_non_null(svc_control(base, &r, "restart", 5000, done_cb, &o, &err));
	run(base, &o);
	assert_int_equal(o.ok, 1);
	assert_non_null(strstr(o.message, "stop: exited 3: no such service; start: done in "));
	spawn_shutdown();
	event_base_free(base);
}

static void
test_refusals_and_cancel(void **state)
{
	struct event_base *base = event_base_new();
	struct outcome o = { 0 };
	struct svc_spec none = { .backend = SVC_NONE };
	struct svc_spec only_start = { .backend = SVC_EXEC, .start = sh_slow, .nstart = 3 };
	struct svc_op *op;
	int err;

	(void)state;
	assert_null(svc_control(base, &none, "start", 1000, done_cb, &o, &err));
	assert_int_equal(err, -ENOENT);
	assert_null(svc_control(base, &only_start, "stop", 1000, done_cb, &o, &err));
	assert_int_equal(err, -ENOENT);
	assert_null(svc_control(base, &only_start, "restart", 1000, done_cb, &o, &err));
	assert_int_equal(err, -ENOENT);
	assert_null(svc_control(base, &only_start, "reload", 1000, done_cb, &o, &err));
	assert_int_equal(err, -EINVAL);

	op = svc_control(base, &only_start, "start", 10000, done_cb, &o, &err);
	assert_non_null(op);
	svc_op_cancel(op);
	struct timeval tv = { 0, 200000 };
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	assert_int_equal(o.calls, 0);
	spawn_shutdown();
	assert_int_equal(spawn_active(), 0);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_stop_restart),
		cmocka_unit_test(test_failures_are_explained),
		cmocka_unit_test(test_refusals_and_cancel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
