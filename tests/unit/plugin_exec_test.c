/*
 * The exec plugin, loaded from the build tree and driven through the fake
 * host (which spawns with the real core/lib spawn module): /bin/sh scripts
 * written to a mkdtemp directory play every kind of program, and the real
 * check_tcp and check_http of Debian's monitoring-plugins run against
 * listeners made here.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

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
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "fake_host.h"
#include "spawn.h"

#define EXEC_PLUGIN TEST_BUILD_PLUGIN_DIR "/troika-exec.so"
#define NAGIOS_DIR "/usr/lib/nagios/plugins"

struct fixture {
	const struct troika_plugin *p;
	void *dl;
	struct fake_host *fh;
	void *state;
	char dir[64];
	char paths[16][128]; /* scripts written, removed at the end */
	int npaths;
	int fds_before;
	int sock; /* a test's own socket, or -1 */
	struct evhttp *http;
};

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->p = fake_host_load_plugin(EXEC_PLUGIN, &f->dl);
	snprintf(f->dir, sizeof(f->dir), "/tmp/plugin_exec_test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < f->npaths; i++)
		unlink(f->paths[i]);
	rmdir(f->dir);
	dlclose(f->dl);
	free(f);
	return 0;
}

static int
setup(void **state)
{
	struct fixture *f = *state;

	f->fds_before = fake_host_count_fds();
	f->fh = fake_host_new(f->p->options);
	f->state = NULL;
	f->sock = -1;
	f->http = NULL;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	f->p->instance_free(f->state);
	f->state = NULL;
	if (f->http != NULL)
		evhttp_free(f->http);
	f->http = NULL;
	if (f->sock >= 0)
		close(f->sock);
	assert_int_equal(fake_host_violations(f->fh), 0);
	fake_host_free(f->fh);
	f->fh = NULL;
	assert_int_equal(spawn_active(), 0);
	assert_int_equal(fake_host_count_fds(), f->fds_before);
	return 0;
}

/* Write a /bin/sh script named name with body; returns its path. */
static const char *
script(struct fixture *f, const char *name, int mode, const char *body)
{
	char *path;
	FILE *fp;

	assert_true(f->npaths < 16);
	path = f->paths[f->npaths++];
	snprintf(path, 128, "%s/%s", f->dir, name);
	assert_non_null(fp = fopen(path, "w"));
	fprintf(fp, "#!/bin/sh\n%s\n", body);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, (mode_t)mode), 0);
	return path;
}

static void
set_command(struct fixture *f, const char *a0, const char *a1,
    const char *a2, const char *a3, const char *a4)
{
	const char *argv[] = { a0, a1, a2, a3, a4 };
	size_t n = 0;

	while (n < 5 && argv[n] != NULL)
		n++;
	fake_host_set_list(f->fh, "command", argv, n);
}

/* One run, waited for; checks what every result must satisfy. */
static const struct fake_result *
run_check(struct fixture *f, int64_t deadline_ms)
{
	struct troika_task *task = fake_host_task(f->fh, deadline_ms);
	unsigned before = fake_host_done_count(f->fh);
	const struct fake_result *r;

	fake_host_check(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_done_count(f->fh), before);
	assert_int_equal(fake_host_wait_done(f->fh, before + 1,
	    (int)deadline_ms + 3000), 0);
	r = fake_host_last(f->fh);
	assert_ptr_equal(r->task, task);
	assert_non_null(r->message);
	assert_null(strchr(r->message, '\n'));
	return r;
}

static void
assert_contains(const char *haystack, const char *needle)
{
	if (haystack == NULL || strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"",
		    haystack != NULL ? haystack : "(null)", needle);
}

static const struct fake_sample *
perf(const struct fake_result *r, const char *label, const char *unit)
{
	const struct fake_sample *s = fake_result_sample(r,
	    "troika_exec_perfdata", "label", label);

	if (s == NULL)
		fail_msg("no perfdata sample for label \"%s\"", label);
	assert_string_equal(fake_sample_label(s, "unit"), unit);
	assert_int_equal(s->nlabels, 2);
	assert_int_equal(s->type, TROIKA_METRIC_GAUGE);
	return s;
}

static double
exit_code_sample(const struct fake_result *r)
{
	const struct fake_sample *s = fake_result_sample(r,
	    "troika_exec_exit_code", NULL, NULL);

	if (s == NULL)
		fail_msg("no troika_exec_exit_code sample");
	return s->value;
}

static void
test_descriptor(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(f->p->name, "exec");
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_ASYNC);
	assert_non_null(f->p->cancel);
	assert_null(dlsym(f->dl, "perfdata_parse"));
}

static void
test_ok_with_perfdata(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	const char *path = script(f, "ok", 0755,
	    "echo \"OK - all fine | time=0.5s;1;2;0; size=10KB "
	    "'my label'=50% hits=7c plain=3 time=9s\"\n"
	    "echo 'second line'\nexit 0");

	set_command(f, path, NULL, NULL, NULL, NULL);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message, "OK - all fine");
	assert_true(exit_code_sample(r) == 0);
	/* The first "time" wins; the second would be a duplicate series. */
	assert_true(perf(r, "time", "seconds")->value == 0.5);
	assert_true(perf(r, "size", "bytes")->value == 10240);
	assert_true(perf(r, "my label", "percent")->value == 50);
	assert_true(perf(r, "hits", "counter")->value == 7);
	assert_true(perf(r, "plain", "none")->value == 3);
	assert_int_equal(r->nsamples, 6);
}

static void
test_statuses(void **state)
{
	struct fixture *f = *state;
	static const char *const msgs[] = { "WARNING - w", "CRITICAL - c",
	    "UNKNOWN - u" };
	char body[64], name[16];

	for (int code = 1; code <= 3; code++) {
		const struct fake_result *r;

		snprintf(name, sizeof(name), "status%d", code);
		snprintf(body, sizeof(body), "echo '%s'\nexit %d",
		    msgs[code - 1], code);
		set_command(f, script(f, name, 0755, body), NULL, NULL, NULL,
		    NULL);
		f->p->instance_free(f->state);
		f->state = NULL;
		assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
		    0);
		r = run_check(f, 5000);
		assert_int_equal(r->status, code);
		assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
		assert_string_equal(r->message, msgs[code - 1]);
		assert_true(exit_code_sample(r) == code);
	}
}

static void
test_exit_code_out_of_range(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_command(f, script(f, "exit42", 0755, "echo 'odd | x=1'\nexit 42"),
	    NULL, NULL, NULL, NULL);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message, "exit code 42 (not 0..3): odd");
	assert_true(exit_code_sample(r) == 42);
	assert_true(perf(r, "x", "none")->value == 1);
}

static void
test_killed_by_signal(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_command(f, script(f, "kill9", 0755, "echo before\nkill -9 $$"),
	    NULL, NULL, NULL, NULL);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message, "killed by signal 9");
	assert_int_equal(r->nsamples, 0);
}

static void
test_not_found(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_command(f, NAGIOS_DIR "/check_troika_does_not_exist", "-v", NULL,
	    NULL, NULL);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	/* Not fatal at load time: it may be installed later. */
	assert_int_equal(fake_host_log_last_level(f->fh), TROIKA_LOG_WARNING);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message, "could not start " NAGIOS_DIR
	    "/check_troika_does_not_exist: No such file or directory");
	assert_int_equal(r->nsamples, 0);
}

static void
test_not_executable(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	const char *path = script(f, "noexec", 0644, "exit 0");
	char want[192];

	set_command(f, path, NULL, NULL, NULL, NULL);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	snprintf(want, sizeof(want), "could not start %s: Permission denied",
	    path);
	assert_string_equal(r->message, want);
}

static void
test_spawn_fails(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_command(f, "/bin/true", NULL, NULL, NULL, NULL);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	fake_host_fail_next_spawn(f->fh, EAGAIN);
	/* Reported from the loop, not inside check(): run_check checks it. */
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_string_equal(r->message, "could not start /bin/true: "
	    "Resource temporarily unavailable");
	assert_int_equal(fake_host_spawns(f->fh), 0);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
	/* The next run is a normal one. */
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "(no output)");
	assert_true(exit_code_sample(r) == 0);
}

static void
test_timeout(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	struct timespec t0, t1;
	double took;

	set_command(f, script(f, "sleeper", 0755, "echo started\nsleep 10"),
	    NULL, NULL, NULL, NULL);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = run_check(f, 400);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	took = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "/sleeper timed out after 3");
	/* SIGTERM to the group: sh and its sleep are gone at once. */
	assert_true(took >= 0.3 && took < 0.6);
	assert_int_equal(r->nsamples, 0);
}

static void
test_output_cut(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_command(f, script(f, "chatty", 0755,
	    "echo 'OK 0123456789abcdefghijklmnopqrstuvwxyz | a=1'"), NULL, NULL,
	    NULL, NULL);
	fake_host_set_size(f->fh, "max_output", 12);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "OK 012345678");
	assert_null(fake_result_sample(r, "troika_exec_perfdata", NULL, NULL));
}

static void
test_long_output_and_bad_perfdata(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_command(f, script(f, "long", 0755,
	    "printf 'OK first | a=1 bad=x\\nlong text\\nmore | b=2s\\nc=3%%\\n'"
	    "\nexit 0"), NULL, NULL, NULL, NULL);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "OK first");
	assert_true(perf(r, "a", "none")->value == 1);
	assert_true(perf(r, "b", "seconds")->value == 2);
	assert_true(perf(r, "c", "percent")->value == 3);
	assert_null(fake_result_sample(r, "troika_exec_perfdata", "label",
	    "bad"));
	assert_contains(fake_host_log_last(f->fh), "1 not parsed");
}

static void
test_perfdata_only(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_command(f, script(f, "pdonly", 0755, "echo '| a=1'\nexit 1"), NULL,
	    NULL, NULL, NULL);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_string_equal(r->message, "(no text)");
}

static void
test_arguments_without_shell(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_command(f, script(f, "args", 0755, "echo \"$1|$2\"\nexit 0"),
	    "two words; $HOME `id`", "x", NULL, NULL);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "two words; $HOME `id`");
}

static void
test_cancel(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	set_command(f, script(f, "cancelme", 0755, "sleep 10"), NULL, NULL,
	    NULL, NULL);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	task = fake_host_task(f->fh, 5000);
	fake_host_check(f->fh, f->p, f->state, task);
	fake_host_run_for(f->fh, 100);
	assert_int_equal(spawn_active(), 1);
	fake_host_cancel(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_spawn_cancels(f->fh), 1);
	/* The child is killed and reaped in the background. */
	for (int i = 0; i < 300 && spawn_active() > 0; i++)
		fake_host_run_for(f->fh, 10);
	assert_int_equal(spawn_active(), 0);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
	assert_int_equal(fake_host_done_count(f->fh), 0);
}

static void
test_cancel_before_deferred_report(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	set_command(f, "/bin/true", NULL, NULL, NULL, NULL);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	fake_host_fail_next_spawn(f->fh, ENOMEM);
	task = fake_host_task(f->fh, 5000);
	fake_host_check(f->fh, f->p, f->state, task);
	fake_host_cancel(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_spawn_cancels(f->fh), 0);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_done_count(f->fh), 0);
}

static void
test_empty_command(void **state)
{
	struct fixture *f = *state;
	const char *empty[] = { "" };

	fake_host_set_list(f->fh, "command", empty, 0);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh),
	    "command must name a program");
	fake_host_set_list(f->fh, "command", empty, 1);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_int_equal(fake_host_log_count(f->fh), 2);
	assert_null(f->state);
}

/* A socket on 127.0.0.1, listening or (backlog < 0) only bound. */
static int
local_socket(int backlog, int *ret_port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	/* Non-blocking, as evhttp needs it for its accept loop. */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	if (backlog >= 0)
		assert_int_equal(listen(fd, backlog), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*ret_port = ntohs(sin.sin_port);
	return fd;
}

static void
test_real_check_tcp(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char port[16];
	int p;

	if (access(NAGIOS_DIR "/check_tcp", X_OK) != 0)
		skip();
	f->sock = local_socket(16, &p);
	snprintf(port, sizeof(port), "%d", p);
	set_command(f, NAGIOS_DIR "/check_tcp", "-H", "127.0.0.1", "-p", port);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "TCP OK");
	assert_true(perf(r, "time", "seconds")->value >= 0);
	assert_true(exit_code_sample(r) == 0);

	/* Bound, not listening: refused. */
	close(f->sock);
	f->sock = local_socket(-1, &p);
	snprintf(port, sizeof(port), "%d", p);
	set_command(f, NAGIOS_DIR "/check_tcp", "-H", "127.0.0.1", "-p", port);
	f->p->instance_free(f->state);
	f->state = NULL;
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "Connection refused");
	assert_true(exit_code_sample(r) == 2);
}

static void
http_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer *body = evbuffer_new();

	(void)arg;
	evbuffer_add_printf(body, "hello from troika\n");
	evhttp_send_reply(req, 200, "OK", body);
	evbuffer_free(body);
}

static void
test_real_check_http(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char port[16];
	int p;

	if (access(NAGIOS_DIR "/check_http", X_OK) != 0)
		skip();
	f->sock = local_socket(16, &p);
	assert_non_null(f->http = evhttp_new(fake_host_base(f->fh)));
	assert_int_equal(evhttp_accept_socket(f->http, f->sock), 0);
	f->sock = -1; /* evhttp owns it now */
	evhttp_set_gencb(f->http, http_cb, NULL);
	snprintf(port, sizeof(port), "%d", p);
	set_command(f, NAGIOS_DIR "/check_http", "-I", "127.0.0.1", "-p", port);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "HTTP OK: HTTP/1.0 200 OK");
	assert_true(perf(r, "time", "seconds")->value >= 0);
	assert_true(perf(r, "size", "bytes")->value > 18);
}

static void
test_two_runs(void **state)
{
	struct fixture *f = *state;

	set_command(f, script(f, "twice", 0755, "echo 'OK again'"), NULL, NULL,
	    NULL, NULL);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	for (int i = 0; i < 2; i++) {
		const struct fake_result *r = run_check(f, 5000);

		assert_int_equal(r->status, TROIKA_STATUS_OK);
		assert_string_equal(r->message, "OK again");
	}
	assert_int_equal(fake_host_spawns(f->fh), 2);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ok_with_perfdata, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_statuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_code_out_of_range,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_by_signal, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_executable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_spawn_fails, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_long_output_and_bad_perfdata, setup, teardown),
		cmocka_unit_test_setup_teardown(test_perfdata_only, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_arguments_without_shell,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_cancel_before_deferred_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_command, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_real_check_tcp, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_real_check_http, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_two_runs, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
