/*
 * The http plugin, loaded from the build tree and driven through the fake
 * host (which adds transfers to the real core/lib curlm multi handle):
 * a libevent evhttp server on 127.0.0.1 on the same event base answers
 * with statuses, bodies, echoes, redirects and silence; a raw socket
 * resets; and `openssl s_server` with a certificate made for the test
 * serves TLS.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
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
#include <event2/keyvalq_struct.h>

#include "fake_host.h"

#define HTTP_PLUGIN TEST_BUILD_PLUGIN_DIR "/troika-http.so"

struct fixture {
	const struct troika_plugin *p;
	void *dl;
	struct fake_host *fh;
	void *state;
	struct evhttp *http;
	int port;
	char base_url[64];
	int requests;
	struct evhttp_request *held; /* a /slow request never answered */
	int raw;        /* a raw socket of a test, or -1 */
	struct event *raw_ev;
	int raw_conn;
	int fds_before;
	char dir[64];   /* TLS material */
	pid_t tls_pid;
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
reply(struct evhttp_request *req, int code, const char *reason,
    const void *body, size_t len)
{
	struct evbuffer *b = evbuffer_new();

	assert_non_null(b);
	evbuffer_add(b, body, len);
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

static const char *
method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	default:
		return "OTHER";
	}
}

static void
http_cb(struct evhttp_request *req, void *arg)
{
	struct fixture *f = arg;
	const char *uri = evhttp_request_get_uri(req);

	f->requests++;
	if (strcmp(uri, "/ok") == 0) {
		reply(req, 200, "OK", "hello world\n", 12);
	} else if (strcmp(uri, "/status/503") == 0) {
		reply(req, 503, "Service Unavailable", "down\n", 5);
	} else if (strcmp(uri, "/big") == 0) {
		char body[3000];

		memset(body, 'a', sizeof(body));
		memcpy(body + sizeof(body) - 7, "NEEDLE\n", 7);
		reply(req, 200, "OK", body, sizeof(body));
	} else if (strcmp(uri, "/binary") == 0) {
		reply(req, 200, "OK", "head\0tail", 9);
	} else if (strcmp(uri, "/echo") == 0) {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		const char *x = evhttp_find_header(
		    evhttp_request_get_input_headers(req), "X-Test");
		char body[256];
		size_t n = evbuffer_get_length(in);
		int len;

		assert_true(n < 100);
		len = snprintf(body, sizeof(body), "%s|%s|",
		    method_name(evhttp_request_get_command(req)),
		    x != NULL ? x : "");
		evbuffer_remove(in, body + len, n);
		reply(req, 200, "OK", body, (size_t)len + n);
	} else if (strcmp(uri, "/redirect") == 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Location", "/ok");
		reply(req, 302, "Found", "", 0);
	} else if (strcmp(uri, "/slow") == 0) {
		f->held = req; /* freed with its connection by evhttp_free */
	} else {
		reply(req, 404, "Not Found", "", 0);
	}
}

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->p = fake_host_load_plugin(HTTP_PLUGIN, &f->dl);
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
	f->raw = f->raw_conn = -1;
	f->raw_ev = NULL;
	f->tls_pid = -1;
	f->dir[0] = '\0';
	fd = local_socket(16, &f->port);
	assert_non_null(f->http = evhttp_new(fake_host_base(f->fh)));
	assert_int_equal(evhttp_accept_socket(f->http, fd), 0);
	evhttp_set_gencb(f->http, http_cb, f);
	evhttp_set_allowed_methods(f->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	snprintf(f->base_url, sizeof(f->base_url), "http://127.0.0.1:%d",
	    f->port);
	return 0;
}

static void
tls_stop(struct fixture *f)
{
	char path[128];

	if (f->tls_pid > 0) {
		kill(f->tls_pid, SIGKILL);
		waitpid(f->tls_pid, NULL, 0);
	}
	f->tls_pid = -1;
	if (f->dir[0] != '\0') {
		snprintf(path, sizeof(path), "%s/cert.pem", f->dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/key.pem", f->dir);
		unlink(path);
		rmdir(f->dir);
	}
	f->dir[0] = '\0';
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
	if (f->raw_ev != NULL)
		event_free(f->raw_ev);
	f->raw_ev = NULL;
	if (f->raw >= 0)
		close(f->raw);
	if (f->raw_conn >= 0)
		close(f->raw_conn);
	tls_stop(f);
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

	snprintf(url, sizeof(url), "%s%s", f->base_url, path);
	fake_host_set_string(f->fh, "url", url);
}

static void
new_instance(struct fixture *f)
{
	f->p->instance_free(f->state);
	f->state = NULL;
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
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

/*
 * Stop the server (its listener and connections are on the same event
 * base), then nothing of the plugin may be left in the base.
 */
static void
assert_no_plugin_events(struct fixture *f)
{
	evhttp_free(f->http);
	f->http = NULL;
	f->held = NULL;
	if (f->raw_ev != NULL)
		event_free(f->raw_ev);
	f->raw_ev = NULL;
	/* libevent finalizes the connections' bufferevents from the loop. */
	fake_host_run_for(f->fh, 10);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
}

static void
assert_contains(const char *haystack, const char *needle)
{
	if (haystack == NULL || strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"",
		    haystack != NULL ? haystack : "(null)", needle);
}

static double
sample_value(const struct fake_result *r, const char *name)
{
	const struct fake_sample *s = fake_result_sample(r, name, NULL, NULL);

	if (s == NULL)
		fail_msg("no sample %s", name);
	assert_int_equal(s->type, TROIKA_METRIC_GAUGE);
	return s->value;
}

static void
test_descriptor(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(f->p->name, "http");
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_ASYNC);
	assert_non_null(f->p->cancel);
	assert_null(dlsym(f->dl, "http_check"));
	assert_null(dlsym(f->dl, "http_write_cb"));
}

static void
test_get_ok(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/ok");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_contains(r->message, "HTTP 200 in ");
	assert_contains(r->message, " s, 12 bytes");
	assert_int_equal(r->nsamples, 3);
	assert_true(sample_value(r, "troika_http_status_code") == 200);
	assert_true(sample_value(r, "troika_http_body_bytes") == 12);
	assert_true(sample_value(r, "troika_http_response_seconds") >= 0);
	assert_true(sample_value(r, "troika_http_response_seconds") < 5);
	assert_int_equal(fake_host_curl_adds(f->fh), 1);
	assert_no_plugin_events(f);
}

static void
test_wrong_status(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/status/503");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "HTTP 503, expected 200");
	assert_true(sample_value(r, "troika_http_status_code") == 503);

	fake_host_set_int(f->fh, "expect_status", 503);
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
}

static void
test_body_contains(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/ok");
	fake_host_set_string(f->fh, "body_contains", "lo wor");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);

	fake_host_set_string(f->fh, "body_contains", "nope\"\n");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "HTTP 200, but the body (12 bytes) "
	    "does not contain \"nope\\\"\\x0a\"");
}

static void
test_body_regex(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/ok");
	fake_host_set_string(f->fh, "body_regex", "^hel+o [a-z]+\n$");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);

	fake_host_set_string(f->fh, "body_regex", "^world");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "HTTP 200, but the body (12 bytes) "
	    "does not match /^world/");
}

static void
test_body_with_nul(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	/* Matching must look past a NUL byte in the body. */
	set_url(f, "/binary");
	fake_host_set_string(f->fh, "body_regex", "t[a-z]il$");
	fake_host_set_string(f->fh, "body_contains", "tail");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_true(sample_value(r, "troika_http_body_bytes") == 9);
}

static void
test_bad_regex(void **state)
{
	struct fixture *f = *state;

	set_url(f, "/ok");
	fake_host_set_string(f->fh, "body_regex", "(unclosed");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_null(f->state);
	assert_int_equal(fake_host_log_last_level(f->fh), TROIKA_LOG_ERR);
	assert_contains(fake_host_log_last(f->fh), "body_regex \"(unclosed\" "
	    "is not a valid POSIX extended regular expression: ");
}

static void
test_max_body(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/big");
	fake_host_set_size(f->fh, "max_body", 100);
	fake_host_set_string(f->fh, "body_contains", "aaaa");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "100 bytes (cut at max_body)");
	assert_true(sample_value(r, "troika_http_body_bytes") == 100);
	assert_true(sample_value(r, "troika_http_status_code") == 200);

	/* What lies beyond max_body is not seen. */
	fake_host_set_string(f->fh, "body_contains", "NEEDLE");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "HTTP 200, but the body (100 bytes "
	    "(cut at max_body)) does not contain \"NEEDLE\"");

	/* And all of it is, when max_body allows. */
	fake_host_unset(f->fh, "max_body");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_true(sample_value(r, "troika_http_body_bytes") == 3000);
}

static void
test_methods(void **state)
{
	struct fixture *f = *state;
	const char *keys[] = { "X-Test", "Accept" };
	const char *vals[] = { "yes", "text/plain" };
	const struct fake_result *r;

	set_url(f, "/echo");
	fake_host_set_map(f->fh, "headers", keys, vals, 2);
	fake_host_set_string(f->fh, "method", "post");
	fake_host_set_string(f->fh, "body", "payload");
	fake_host_set_string(f->fh, "body_contains", "POST|yes|payload");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);

	fake_host_set_string(f->fh, "method", "PUT");
	fake_host_set_string(f->fh, "body_contains", "PUT|yes|payload");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);

	fake_host_set_string(f->fh, "method", "DELETE");
	fake_host_unset(f->fh, "body");
	fake_host_set_string(f->fh, "body_contains", "DELETE|yes|");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_true(sample_value(r, "troika_http_body_bytes") == 11);

	fake_host_set_string(f->fh, "method", "HEAD");
	fake_host_unset(f->fh, "body_contains");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_true(sample_value(r, "troika_http_body_bytes") == 0);
	assert_int_equal(f->requests, 4);
}

static void
test_bad_method_and_body(void **state)
{
	struct fixture *f = *state;

	set_url(f, "/ok");
	fake_host_set_string(f->fh, "method", "PATCH");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh), "method \"PATCH\" is "
	    "not one of GET, HEAD, POST, PUT, DELETE");
	fake_host_set_string(f->fh, "method", "get");
	fake_host_set_string(f->fh, "body", "x");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh), "body is not sent "
	    "with GET; use POST, PUT or DELETE");
	assert_null(f->state);
}

static void
test_bad_headers(void **state)
{
	struct fixture *f = *state;
	const char *bad_name[] = { "Bad Name" };
	const char *ok_name[] = { "X-Ok" };
	const char *ok_val[] = { "v" };
	const char *bad_val[] = { "v\r\nInjected: 1" };

	set_url(f, "/ok");
	fake_host_set_map(f->fh, "headers", bad_name, ok_val, 1);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh), "headers: \"Bad Name\" "
	    "is not a valid header name");
	fake_host_set_map(f->fh, "headers", ok_name, bad_val, 1);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh),
	    "headers: the value of X-Ok holds a line break");
	assert_null(f->state);
}

static void
test_redirect(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/redirect");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "HTTP 302, expected 200");
	assert_int_equal(f->requests, 1);

	fake_host_set_bool(f->fh, "follow_redirects", 1);
	fake_host_set_string(f->fh, "body_contains", "hello");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(f->requests, 3);
}

static void
test_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char url[64];
	int port;

	f->raw = local_socket(-1, &port); /* bound, not listening */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	fake_host_set_string(f->fh, "url", url);
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "connection refused: ");
	assert_int_equal(r->nsamples, 0);
	assert_no_plugin_events(f);
}

/* Read the request, then close with an RST. */
static void
raw_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	char buf[1024];

	(void)what;
	if (read(fd, buf, sizeof(buf)) <= 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	event_free(f->raw_ev);
	f->raw_ev = NULL;
	close(fd);
	f->raw_conn = -1;
}

static void
raw_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;

	(void)what;
	f->raw_conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(f->raw_conn >= 0);
	event_free(f->raw_ev);
	f->raw_ev = event_new(fake_host_base(f->fh), f->raw_conn,
	    EV_READ | EV_PERSIST, raw_read_cb, f);
	event_add(f->raw_ev, NULL);
}

static void
test_reset(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char url[64];
	int port;

	f->raw = local_socket(16, &port);
	f->raw_ev = event_new(fake_host_base(f->fh), f->raw, EV_READ,
	    raw_accept_cb, f);
	event_add(f->raw_ev, NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	fake_host_set_string(f->fh, "url", url);
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "connection reset: ");
	assert_no_plugin_events(f);
}

static void
test_timeout(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/slow");
	new_instance(f);
	r = run_check(f, 400);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "timed out after 3");
	assert_non_null(f->held);
	assert_int_equal(r->nsamples, 0);
	assert_no_plugin_events(f);
}

static void
test_cancel(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	set_url(f, "/slow");
	new_instance(f);
	task = fake_host_task(f->fh, 5000);
	fake_host_check(f->fh, f->p, f->state, task);
	for (int i = 0; i < 100 && f->held == NULL; i++)
		fake_host_run_for(f->fh, 10);
	assert_non_null(f->held);
	fake_host_cancel(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_curl_removes(f->fh), 1);
	fake_host_run_for(f->fh, 100);
	assert_int_equal(fake_host_done_count(f->fh), 0);
	assert_no_plugin_events(f);
}

static void
test_curl_add_fails(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/ok");
	new_instance(f);
	fake_host_fail_next_curl_add(f->fh, -ENOMEM);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message,
	    "cannot start the request: Cannot allocate memory");
	assert_int_equal(f->requests, 0);
	/* The next run works. */
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
}

static void
test_cancel_before_deferred_report(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	set_url(f, "/ok");
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
test_bad_urls(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
		"ftp://127.0.0.1/", "file:///etc/passwd", "not a url",
		"127.0.0.1:80/ok",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fake_host_set_string(f->fh, "url", bad[i]);
		assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
		    -EINVAL);
		assert_contains(fake_host_log_last(f->fh), bad[i]);
	}
	fake_host_set_string(f->fh, "url", "ftp://127.0.0.1/");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_contains(fake_host_log_last(f->fh), "scheme ftp is not http or "
	    "https");
	assert_null(f->state);
}

static void
test_bad_options(void **state)
{
	struct fixture *f = *state;

	set_url(f, "/ok");
	fake_host_set_string(f->fh, "ca_file", "/nonexistent/ca.pem");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh),
	    "ca_file /nonexistent/ca.pem: No such file or directory");
	fake_host_unset(f->fh, "ca_file");
	fake_host_set_string(f->fh, "body_contains", "");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh),
	    "body_contains must not be empty");
	assert_null(f->state);
}

static void
test_https_to_plain_server(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char url[64];

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/ok", f->port);
	fake_host_set_string(f->fh, "url", url);
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "SSL");
}

static int
run_quiet(const char *const *argv)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * openssl s_server with a fresh self-signed certificate for 127.0.0.1, on
 * a port that was free a moment ago. Returns the port, or -1 (skip).
 */
static int
tls_start(struct fixture *f)
{
	char cert[128], key[128], accept[64];
	const char *req[] = { "/usr/bin/openssl", "req", "-x509", "-newkey",
	    "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
	    "-keyout", key, "-out", cert, "-days", "1", "-subj",
	    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", NULL };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd, port;

	if (access("/usr/bin/openssl", X_OK) != 0)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/plugin_http_test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(cert, sizeof(cert), "%s/cert.pem", f->dir);
	snprintf(key, sizeof(key), "%s/key.pem", f->dir);
	if (run_quiet(req) != 0)
		return -1;
	fd = local_socket(-1, &port);
	close(fd);
	snprintf(accept, sizeof(accept), "127.0.0.1:%d", port);
	f->tls_pid = fork();
	assert_true(f->tls_pid >= 0);
	if (f->tls_pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execl("/usr/bin/openssl", "openssl", "s_server", "-accept",
		    accept, "-cert", cert, "-key", key, "-www", "-quiet",
		    (char *)NULL);
		_exit(127);
	}
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	for (int i = 0; i < 300; i++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int ok = connect(c, (struct sockaddr *)&sin, sizeof(sin)) == 0;

		close(c);
		if (ok)
			return port;
		usleep(10 * 1000);
	}
	return -1;
}

static void
test_tls(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char url[64], ca[128];
	int port;

	if ((port = tls_start(f)) < 0)
		skip();
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/", port);
	snprintf(ca, sizeof(ca), "%s/cert.pem", f->dir);
	fake_host_set_string(f->fh, "url", url);

	/* Self-signed and not in the system store: refused. */
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "certificate");

	fake_host_set_string(f->fh, "ca_file", ca);
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);

	fake_host_unset(f->fh, "ca_file");
	fake_host_set_bool(f->fh, "tls_verify", 0);
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
}

static void
test_fresh_connection_per_run(void **state)
{
	struct fixture *f = *state;

	set_url(f, "/ok");
	new_instance(f);
	for (int i = 0; i < 3; i++)
		assert_int_equal(run_check(f, 5000)->status, TROIKA_STATUS_OK);
	assert_int_equal(f->requests, 3);
	assert_int_equal(fake_host_curl_adds(f->fh), 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_status, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_body_contains, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_body_regex, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_with_nul, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_regex, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_methods, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_method_and_body, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_headers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_redirect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_curl_add_fails, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_cancel_before_deferred_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_urls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_options, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_https_to_plain_server, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fresh_connection_per_run,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
