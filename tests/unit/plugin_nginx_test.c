/*
 * The nginx plugin, loaded from the build tree and driven through the fake
 * host: a libevent evhttp server on 127.0.0.1 on the same event base
 * serves stub_status pages (numbers set by each test), errors, garbage,
 * huge replies and silence; a raw socket closes mid-reply. Actions run
 * against the fake host's service_control and real commands (/bin/true,
 * /bin/false) through the real spawn module.
 */
#include <sys/socket.h>
#include <sys/types.h>
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
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "fake_host.h"

#define NGINX_PLUGIN TEST_BUILD_PLUGIN_DIR "/troika-nginx.so"

struct fixture {
	const struct troika_plugin *p;
	void *dl;
	struct fake_host *fh;
	void *state;
	struct evhttp *http;
	int port;
	int requests;
	unsigned long long active, accepts, handled, reqs;
	struct evhttp_request *held;
	/* A raw server writing `raw_reply` and closing. */
	int raw;
	int raw_port;
	struct event *raw_ev;
	int raw_conn;
	struct event *raw_conn_ev;
	const char *raw_reply;
	int fds_before;
};

static int
local_socket(int backlog, int *ret_port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
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
reply(struct evhttp_request *req, int code, const char *body)
{
	struct evbuffer *b = evbuffer_new();

	assert_non_null(b);
	evbuffer_add(b, body, strlen(body));
	evhttp_send_reply(req, code, "X", b);
	evbuffer_free(b);
}

static void
http_cb(struct evhttp_request *req, void *arg)
{
	struct fixture *f = arg;
	const char *uri = evhttp_request_get_uri(req);
	char page[512];

	f->requests++;
	if (strcmp(uri, "/stub_status") == 0) {
		/* The exact layout of ngx_http_stub_status_module. */
		snprintf(page, sizeof(page), "Active connections: %llu \n"
		    "server accepts handled requests\n"
		    " %llu %llu %llu \n"
		    "Reading: 1 Writing: %llu Waiting: %llu \n", f->active,
		    f->accepts, f->handled, f->reqs, f->active - 1,
		    f->active > 2 ? f->active - 2 : 0);
		reply(req, 200, page);
	} else if (strcmp(uri, "/garbage") == 0) {
		reply(req, 200, "<html>\x01\xff Welcome to nginx!</html>");
	} else if (strcmp(uri, "/truncated") == 0) {
		reply(req, 200, "Active connections: 3 \n"
		    "server accepts handled requests\n 10 10 ");
	} else if (strcmp(uri, "/huge") == 0) {
		char *big = malloc(200000);

		assert_non_null(big);
		memset(big, 'A', 199999);
		big[199999] = '\0';
		reply(req, 200, big);
		free(big);
	} else if (strcmp(uri, "/denied") == 0) {
		reply(req, 403, "forbidden");
	} else if (strcmp(uri, "/error") == 0) {
		reply(req, 502, "bad gateway");
	} else if (strcmp(uri, "/slow") == 0) {
		f->held = req;
	} else {
		reply(req, 404, "not found");
	}
}

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->p = fake_host_load_plugin(NGINX_PLUGIN, &f->dl);
	*state = f;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fixture *f = *state;

	dlclose(f->dl);
	free(f);
	return 0;
}

static int
setup(void **state)
{
	struct fixture *f = *state;
	int fd;

	f->fds_before = fake_host_count_fds();
	f->fh = fake_host_new(f->p->options);
	f->state = NULL;
	f->requests = 0;
	f->held = NULL;
	f->active = 3;
	f->accepts = f->handled = 100;
	f->reqs = 250;
	f->raw = f->raw_conn = -1;
	f->raw_ev = f->raw_conn_ev = NULL;
	fd = local_socket(16, &f->port);
	assert_non_null(f->http = evhttp_new(fake_host_base(f->fh)));
	assert_int_equal(evhttp_accept_socket(f->http, fd), 0);
	evhttp_set_gencb(f->http, http_cb, f);
	return 0;
}

static void
raw_close(struct fixture *f)
{
	if (f->raw_conn_ev != NULL)
		event_free(f->raw_conn_ev);
	f->raw_conn_ev = NULL;
	if (f->raw_conn >= 0)
		close(f->raw_conn);
	f->raw_conn = -1;
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
	raw_close(f);
	if (f->raw_ev != NULL)
		event_free(f->raw_ev);
	f->raw_ev = NULL;
	if (f->raw >= 0)
		close(f->raw);
	f->raw = -1;
	assert_int_equal(fake_host_violations(f->fh), 0);
	fake_host_free(f->fh);
	f->fh = NULL;
	assert_int_equal(fake_host_count_fds(), f->fds_before);
	return 0;
}

static void
set_url(struct fixture *f, const char *path)
{
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", f->port, path);
	fake_host_set_string(f->fh, "url", url);
}

static void
new_instance(struct fixture *f)
{
	f->p->instance_free(f->state);
	f->state = NULL;
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
}

static const struct fake_result *
run_task(struct fixture *f, int64_t deadline_ms, const char *action)
{
	struct troika_task *task = fake_host_task(f->fh, deadline_ms);
	unsigned before = fake_host_done_count(f->fh);
	const struct fake_result *r;

	if (action != NULL)
		fake_host_action(f->fh, f->p, f->state, task, action, NULL, 0);
	else
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

static const struct fake_result *
run_check(struct fixture *f, int64_t deadline_ms)
{
	return run_task(f, deadline_ms, NULL);
}

static void
assert_contains(const char *haystack, const char *needle)
{
	if (haystack == NULL || strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"",
		    haystack != NULL ? haystack : "(null)", needle);
}

static double
value(const struct fake_result *r, const char *name,
    enum troika_metric_type type)
{
	const struct fake_sample *s = fake_result_sample(r, name, NULL, NULL);

	if (s == NULL)
		fail_msg("no sample %s", name);
	assert_int_equal(s->type, type);
	assert_int_equal(s->nlabels, 0);
	return s->value;
}

/* A failed run reports nginx_up 0 and nothing else. */
static void
assert_down(const struct fake_result *r)
{
	assert_int_equal(r->nsamples, 1);
	assert_true(value(r, "nginx_up", TROIKA_METRIC_GAUGE) == 0);
}

static void
assert_no_plugin_events(struct fixture *f)
{
	evhttp_free(f->http);
	f->http = NULL;
	f->held = NULL;
	raw_close(f);
	if (f->raw_ev != NULL)
		event_free(f->raw_ev);
	f->raw_ev = NULL;
	fake_host_run_for(f->fh, 10);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
}

static void
test_descriptor(void **state)
{
	struct fixture *f = *state;
	const char *names[] = { "start", "stop", "restart", "reload" };

	assert_string_equal(f->p->name, "nginx");
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_ASYNC);
	assert_non_null(f->p->cancel);
	assert_non_null(f->p->actions);
	for (size_t i = 0; i < 4; i++) {
		assert_non_null(f->p->actions[i].name);
		assert_string_equal(f->p->actions[i].name, names[i]);
		assert_int_equal(f->p->actions[i].max_args, 0);
	}
	assert_null(f->p->actions[4].name);
	/* Only the entry symbol is exported. */
	assert_null(dlsym(f->dl, "webfetch_get"));
	assert_null(dlsym(f->dl, "webaction_actions"));
}

static void
test_ok_page(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/stub_status");
	new_instance(f);
	f->active = 5;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message, "5 active connections (1 reading, "
	    "4 writing, 3 waiting), 250 requests");
	assert_int_equal(r->nsamples, 9);
	assert_true(value(r, "nginx_up", TROIKA_METRIC_GAUGE) == 1);
	assert_true(value(r, "nginx_connections_active",
	    TROIKA_METRIC_GAUGE) == 5);
	assert_true(value(r, "nginx_connections_accepted_total",
	    TROIKA_METRIC_COUNTER) == 100);
	assert_true(value(r, "nginx_connections_handled_total",
	    TROIKA_METRIC_COUNTER) == 100);
	assert_true(value(r, "nginx_http_requests_total",
	    TROIKA_METRIC_COUNTER) == 250);
	assert_true(value(r, "nginx_connections_reading",
	    TROIKA_METRIC_GAUGE) == 1);
	assert_true(value(r, "nginx_connections_writing",
	    TROIKA_METRIC_GAUGE) == 4);
	assert_true(value(r, "nginx_connections_waiting",
	    TROIKA_METRIC_GAUGE) == 3);
	assert_true(value(r, "nginx_connections_dropped_total",
	    TROIKA_METRIC_COUNTER) == 0);
	assert_int_equal(f->requests, 1);
	assert_no_plugin_events(f);
}

static void
test_dropped_connections_warn_when_they_grow(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/stub_status");
	new_instance(f);
	/* Drops from before the first run are a baseline, not news. */
	f->accepts = 120;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_true(value(r, "nginx_connections_dropped_total",
	    TROIKA_METRIC_COUNTER) == 20);

	f->accepts = 130;
	f->handled = 107;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "3 connections dropped since the "
	    "last run (accepts 130, handled 107): a connection limit was "
	    "reached");
	assert_true(value(r, "nginx_connections_dropped_total",
	    TROIKA_METRIC_COUNTER) == 23);

	/* No new drops: OK again. */
	f->accepts = 140;
	f->handled = 117;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);

	/* nginx restarted (counters went back): a new baseline. */
	f->accepts = 10;
	f->handled = 5;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	f->accepts = 12;
	f->handled = 6;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_contains(r->message, "1 connections dropped since the last "
	    "run (accepts 12, handled 6)");
}

static void
test_not_a_status_page(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/garbage");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "not a stub_status page: \"<html>"
	    "\\x01\\xff Welcome to nginx!</html>\"");
	assert_down(r);

	set_url(f, "/truncated");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "not a stub_status page: \"Active "
	    "connections: 3 \\x0aserver");
	assert_down(r);
}

static void
test_huge_reply(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/huge");
	fake_host_set_size(f->fh, "max_body", 4096);
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "reply larger than max_body (4096 "
	    "bytes)");
	assert_down(r);
	assert_no_plugin_events(f);
}

static void
test_http_errors(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[256];

	set_url(f, "/denied");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	snprintf(want, sizeof(want), "HTTP 403 from http://127.0.0.1:%d/denied: "
	    "is stub_status enabled there, and are user and password right?",
	    f->port);
	assert_string_equal(r->message, want);
	assert_down(r);

	set_url(f, "/nope");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_contains(r->message, "HTTP 404 from ");

	set_url(f, "/error");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "HTTP 502 from the status page");
	assert_down(r);
}

static void
test_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char url[64];
	int port;

	f->raw = local_socket(-1, &port); /* bound, not listening */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/stub_status", port);
	fake_host_set_string(f->fh, "url", url);
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "connection refused: ");
	assert_down(r);
	assert_no_plugin_events(f);
}

static void
raw_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;
	char buf[1024];

	(void)what;
	if (read(fd, buf, sizeof(buf)) <= 0)
		return;
	assert_int_equal(write(fd, f->raw_reply, strlen(f->raw_reply)),
	    (ssize_t)strlen(f->raw_reply));
	raw_close(f);
}

static void
raw_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;

	(void)what;
	f->raw_conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(f->raw_conn >= 0);
	f->raw_conn_ev = event_new(fake_host_base(f->fh), f->raw_conn,
	    EV_READ | EV_PERSIST, raw_read_cb, f);
	event_add(f->raw_conn_ev, NULL);
}

static void
test_closed_mid_reply(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char url[64];

	f->raw = local_socket(16, &f->raw_port);
	f->raw_ev = event_new(fake_host_base(f->fh), f->raw, EV_READ,
	    raw_accept_cb, f);
	event_add(f->raw_ev, NULL);
	f->raw_reply = "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n"
	    "Active connections: 3 \nserver accepts";
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/stub_status",
	    f->raw_port);
	fake_host_set_string(f->fh, "url", url);
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "transfer closed with 463 bytes "
	    "remaining to read");
	assert_down(r);
	assert_no_plugin_events(f);
}

static void
test_timeout_and_cancel(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	struct troika_task *task;

	set_url(f, "/slow");
	new_instance(f);
	r = run_check(f, 400);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "timed out after 3");
	assert_down(r);

	f->held = NULL;
	task = fake_host_task(f->fh, 5000);
	fake_host_check(f->fh, f->p, f->state, task);
	for (int i = 0; i < 100 && f->held == NULL; i++)
		fake_host_run_for(f->fh, 10);
	assert_non_null(f->held);
	fake_host_cancel(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_curl_removes(f->fh), 1);
	fake_host_run_for(f->fh, 100);
	assert_int_equal(fake_host_done_count(f->fh), 1);
	assert_no_plugin_events(f);
}

static void
test_curl_add_fails(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/stub_status");
	new_instance(f);
	fake_host_fail_next_curl_add(f->fh, -ENOMEM);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message,
	    "cannot start the request: Cannot allocate memory");
	assert_down(r);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
}

static void
test_cancel_before_deferred_report(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	set_url(f, "/stub_status");
	new_instance(f);
	fake_host_fail_next_curl_add(f->fh, -ENOMEM);
	task = fake_host_task(f->fh, 5000);
	fake_host_check(f->fh, f->p, f->state, task);
	fake_host_cancel(f->fh, f->p, f->state, task);
	/* It never reached the multi handle: nothing to remove. */
	assert_int_equal(fake_host_curl_removes(f->fh), 0);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_done_count(f->fh), 0);
	assert_no_plugin_events(f);
}

static void
test_bad_options(void **state)
{
	struct fixture *f = *state;
	const char *relative[] = { "nginx", "-s", "reload" };

	fake_host_set_string(f->fh, "url", "ftp://127.0.0.1/stub_status");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh), "url \"ftp://127.0.0.1/"
	    "stub_status\": scheme ftp is not http or https");
	set_url(f, "/stub_status");
	fake_host_set_string(f->fh, "password", "secret");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh),
	    "password is set but user is not");
	fake_host_unset(f->fh, "password");
	fake_host_set_string(f->fh, "ca_file", "/nonexistent/ca.pem");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh),
	    "ca_file /nonexistent/ca.pem: No such file or directory");
	fake_host_unset(f->fh, "ca_file");
	fake_host_set_list(f->fh, "reload_command", relative, 3);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh),
	    "reload_command: \"nginx\" is not an absolute path");
	fake_host_set_list(f->fh, "reload_command", relative, 0);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh),
	    "reload_command must not be empty");
	assert_null(f->state);
}

/* Basic auth: evhttp sees the Authorization header. */
static void
auth_cb(struct evhttp_request *req, void *arg)
{
	struct fixture *f = arg;
	const char *a = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");

	/* "monitor:s3cret" in base64. */
	if (a != NULL && strcmp(a, "Basic bW9uaXRvcjpzM2NyZXQ=") == 0) {
		http_cb(req, arg);
		return;
	}
	f->requests++;
	reply(req, 401, "auth");
}

static void
test_basic_auth(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	evhttp_set_gencb(f->http, auth_cb, f);
	set_url(f, "/stub_status");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_contains(r->message, "HTTP 401 from ");

	fake_host_set_string(f->fh, "user", "monitor");
	fake_host_set_string(f->fh, "password", "wrong");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);

	fake_host_set_string(f->fh, "password", "s3cret");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(f->requests, 3);
}

static void
test_service_actions(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/stub_status");
	new_instance(f);
	/* No service: configured for the check. */
	r = run_task(f, 5000, "restart");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message,
	    "no service manager configured for this check");
	assert_string_equal(fake_result_field(r, "action"), "restart");
	assert_int_equal(fake_host_service_calls(f->fh), 1);
	assert_string_equal(fake_host_service_last_op(f->fh), "restart");

	fake_host_set_service(f->fh, 1, "started nginx.service");
	r = run_task(f, 5000, "start");
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "start: started nginx.service");
	assert_string_equal(fake_host_service_last_op(f->fh), "start");

	fake_host_set_service(f->fh, 0, "exit status 1: no such unit");
	r = run_task(f, 5000, "stop");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "stop: exit status 1: no such unit");
	assert_string_equal(fake_host_service_last_op(f->fh), "stop");
	/* A name the host would refuse still gets one answer. */
	r = run_task(f, 5000, "promote");
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_string_equal(r->message, "no action promote");
	assert_int_equal(fake_host_service_calls(f->fh), 3);
	assert_int_equal(f->requests, 0);
	assert_no_plugin_events(f);
}

static void
test_service_action_cancelled(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	set_url(f, "/stub_status");
	new_instance(f);
	fake_host_set_service(f->fh, 1, "late");
	task = fake_host_task(f->fh, 5000);
	fake_host_action(f->fh, f->p, f->state, task, "restart", NULL, 0);
	fake_host_cancel(f->fh, f->p, f->state, task);
	/* The service manager's late answer is dropped, not reported. */
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_done_count(f->fh), 0);
	/* And the next action works. */
	assert_int_equal(run_task(f, 5000, "restart")->status,
	    TROIKA_STATUS_OK);
}

static void
test_reload(void **state)
{
	struct fixture *f = *state;
	const char *ok[] = { "/bin/true" };
	const char *bad[] = { "/bin/sh", "-c",
	    ("echo 'nginx: [emerg] bad config'; echo more; exit 3") };
	const char *missing[] = { "/nonexistent/nginx", "-s", "reload" };
	const char *hangs[] = { "/bin/sleep", "10" };
	const struct fake_result *r;
	struct troika_task *task;

	set_url(f, "/stub_status");
	new_instance(f);
	r = run_task(f, 5000, "reload");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message,
	    "reload: no reload_command configured for this check");
	assert_int_equal(fake_host_spawns(f->fh), 0);

	fake_host_set_list(f->fh, "reload_command", ok, 1);
	new_instance(f);
	r = run_task(f, 5000, "reload");
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "reload: /bin/true exited with 0");
	assert_string_equal(fake_result_field(r, "action"), "reload");

	fake_host_set_list(f->fh, "reload_command", bad, 3);
	new_instance(f);
	r = run_task(f, 5000, "reload");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "reload: /bin/sh exited with 3: "
	    "nginx: [emerg] bad config");

	fake_host_set_list(f->fh, "reload_command", missing, 3);
	new_instance(f);
	r = run_task(f, 5000, "reload");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "/nonexistent/nginx");

	fake_host_set_list(f->fh, "reload_command", hangs, 2);
	new_instance(f);
	r = run_task(f, 300, "reload");
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_string_equal(r->message,
	    "reload: /bin/sleep timed out and was killed");

	/* Cancelled: the command is killed and nothing is reported. */
	task = fake_host_task(f->fh, 5000);
	fake_host_action(f->fh, f->p, f->state, task, "reload", NULL, 0);
	fake_host_cancel(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_spawn_cancels(f->fh), 1);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_done_count(f->fh), 5);
	/* A failing spawn is reported too. */
	fake_host_fail_next_spawn(f->fh, EMFILE);
	r = run_task(f, 5000, "reload");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "reload: cannot run /bin/sleep: "
	    "Too many open files");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ok_page, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_dropped_connections_warn_when_they_grow, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_not_a_status_page, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_huge_reply, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_http_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closed_mid_reply, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout_and_cancel, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_curl_add_fails, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_cancel_before_deferred_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_options, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_basic_auth, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_service_actions, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_service_action_cancelled,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
