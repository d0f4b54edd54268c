/*
 * The phpfpm plugin, loaded from the build tree and driven through the
 * fake host, both ways it reads a pool's status page:
 *  - url: a libevent evhttp server on 127.0.0.1 (the web server's part)
 *    serves the JSON page with numbers each test sets, errors and junk;
 *  - fastcgi: a small FastCGI responder written here (TCP and a unix
 *    socket) that decodes the plugin's records, checks its params, and
 *    answers as PHP-FPM does, or misbehaves (closes, stalls, garbage,
 *    huge, FCGI_OVERLOADED, 404 with STDERR).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
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

#define PHPFPM_PLUGIN TEST_BUILD_PLUGIN_DIR "/troika-phpfpm.so"

enum fcgi_mode {
	FCGI_ANSWER,      /* the status page, in records of 7 bytes or less */
	FCGI_NOT_FOUND,   /* STDERR + "Status: 404", as FPM for a bad path */
	FCGI_CLOSE,       /* close without a reply */
	FCGI_CLOSE_MID,   /* half a reply, then close */
	FCGI_SILENT,      /* read the request, never answer */
	FCGI_GARBAGE,     /* bytes that are not records */
	FCGI_HUGE,        /* 200 KB of STDOUT */
	FCGI_OVERLOADED,  /* END_REQUEST with FCGI_OVERLOADED */
	FCGI_NO_HEADERS,  /* STDOUT without a CGI header block */
};

struct fixture {
	const struct troika_plugin *p;
	void *dl;
	struct fake_host *fh;
	void *state;
	struct evhttp *http;
	int port;
	int requests;
	char last_uri[256];
	/* The pool's numbers. */
	long start_time, accepted, queue, idle, active, max_children;
	int with_slow;

	/* The FastCGI responder. */
	int fl;                /* listening socket */
	int fl_port;
	char sock_path[108];
	struct event *fl_ev;
	int fc;                /* accepted connection */
	struct event *fc_ev;
	struct evbuffer *fc_in;
	struct evbuffer *fc_out;
	enum fcgi_mode mode;
	int fcgi_requests;
	char params[2048];     /* "NAME=value;" of the last request */
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

/* The JSON status page, as FPM 8.2 writes it for ?json. */
static int
status_page(struct fixture *f, char *buf, size_t len)
{
	return snprintf(buf, len, "{\"pool\":\"www\",\"process manager\":"
	    "\"static\",\"start time\":%ld,\"start since\":42,"
	    "\"accepted conn\":%ld,\"listen queue\":%ld,\"max listen queue\":"
	    "%ld,\"listen queue len\":511,\"idle processes\":%ld,"
	    "\"active processes\":%ld,\"total processes\":%ld,"
	    "\"max active processes\":%ld,\"max children reached\":%ld%s}",
	    f->start_time, f->accepted, f->queue, f->queue + 1, f->idle,
	    f->active, f->idle + f->active, f->active + 1, f->max_children,
	    f->with_slow ? ",\"slow requests\":7" : "");
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
	char page[1024];

	f->requests++;
	snprintf(f->last_uri, sizeof(f->last_uri), "%s", uri);
	if (strcmp(uri, "/status?json") == 0 ||
	    strcmp(uri, "/status?full&json") == 0) {
		status_page(f, page, sizeof(page));
		reply(req, 200, page);
	} else if (strcmp(uri, "/notjson?json") == 0) {
		reply(req, 200, "pool: www\nprocess manager: static\n");
	} else if (strcmp(uri, "/array?json") == 0) {
		reply(req, 200, "[1,2,3]");
	} else if (strcmp(uri, "/partial?json") == 0) {
		reply(req, 200, "{\"pool\":\"www\",\"start time\":1,"
		    "\"start since\":1,\"accepted conn\":1}");
	} else if (strcmp(uri, "/badgw?json") == 0) {
		reply(req, 502, "<html>502 Bad Gateway</html>");
	} else {
		reply(req, 404, "File not found.\n");
	}
}

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->p = fake_host_load_plugin(PHPFPM_PLUGIN, &f->dl);
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
	f->requests = f->fcgi_requests = 0;
	f->start_time = 1700000000;
	f->accepted = 10;
	f->queue = 0;
	f->idle = 4;
	f->active = 1;
	f->max_children = 0;
	f->with_slow = 1;
	f->fl = f->fc = -1;
	f->fl_ev = f->fc_ev = NULL;
	f->fc_in = f->fc_out = NULL;
	f->sock_path[0] = '\0';
	f->mode = FCGI_ANSWER;
	f->params[0] = '\0';
	fd = local_socket(16, &f->port);
	assert_non_null(f->http = evhttp_new(fake_host_base(f->fh)));
	assert_int_equal(evhttp_accept_socket(f->http, fd), 0);
	evhttp_set_gencb(f->http, http_cb, f);
	return 0;
}

static void
fcgi_conn_close(struct fixture *f)
{
	if (f->fc_ev != NULL)
		event_free(f->fc_ev);
	f->fc_ev = NULL;
	if (f->fc >= 0)
		close(f->fc);
	f->fc = -1;
	if (f->fc_in != NULL)
		evbuffer_free(f->fc_in);
	f->fc_in = NULL;
	if (f->fc_out != NULL)
		evbuffer_free(f->fc_out);
	f->fc_out = NULL;
}

static void
servers_stop(struct fixture *f)
{
	if (f->http != NULL)
		evhttp_free(f->http);
	f->http = NULL;
	fcgi_conn_close(f);
	if (f->fl_ev != NULL)
		event_free(f->fl_ev);
	f->fl_ev = NULL;
	if (f->fl >= 0)
		close(f->fl);
	f->fl = -1;
	if (f->sock_path[0] != '\0')
		unlink(f->sock_path);
	f->sock_path[0] = '\0';
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	f->p->instance_free(f->state);
	f->state = NULL;
	servers_stop(f);
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

static double
value(const struct fake_result *r, const char *name,
    enum troika_metric_type type)
{
	const struct fake_sample *s = fake_result_sample(r, name, NULL, NULL);

	if (s == NULL)
		fail_msg("no sample %s", name);
	assert_int_equal(s->type, type);
	return s->value;
}

static void
assert_down(const struct fake_result *r)
{
	assert_int_equal(r->nsamples, 1);
	assert_true(value(r, "phpfpm_up", TROIKA_METRIC_GAUGE) == 0);
	assert_int_equal(r->samples[0].nlabels, 0);
}

static void
assert_no_plugin_events(struct fixture *f)
{
	servers_stop(f);
	fake_host_run_for(f->fh, 10);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
}

/* ---- the FastCGI responder ---- */

static void
rec(struct evbuffer *b, int type, const void *data, size_t len)
{
	unsigned char h[8] = { 1, (unsigned char)type, 0, 1,
	    (unsigned char)(len >> 8), (unsigned char)len, 3, 0 };
	static const unsigned char pad[3];

	evbuffer_add(b, h, 8);
	evbuffer_add(b, data, len);
	evbuffer_add(b, pad, 3); /* padding, as FPM adds to align to 8 */
}

static void
rec_end(struct evbuffer *b, int protocol_status)
{
	unsigned char end[8] = { 0, 0, 0, 0, (unsigned char)protocol_status };

	rec(b, 3, end, sizeof(end));
}

/* STDOUT in small pieces: the plugin must join records. */
static void
rec_stdout(struct evbuffer *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i += 7)
		rec(b, 6, s + i, len - i < 7 ? len - i : 7);
}

static size_t
param_len(const unsigned char *p, size_t *i)
{
	size_t n = p[*i];

	if (n < 128) {
		(*i)++;
		return n;
	}
	n = ((size_t)(p[*i] & 0x7f) << 24) | ((size_t)p[*i + 1] << 16) |
	    ((size_t)p[*i + 2] << 8) | p[*i + 3];
	*i += 4;
	return n;
}

/* Decode PARAMS content into f->params as "NAME=value;". */
static void
decode_params(struct fixture *f, const unsigned char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t nl = param_len(p, &i), vl = param_len(p, &i);
		size_t used = strlen(f->params);

		assert_true(i + nl + vl <= len);
		snprintf(f->params + used, sizeof(f->params) - used, "%.*s=%.*s;",
		    (int)nl, p + i, (int)vl, p + i + nl);
		i += nl + vl;
	}
}

static void
fcgi_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;
	size_t len = evbuffer_get_length(f->fc_out);
	ssize_t n = 0;

	(void)what;
	if (len > 0)
		n = send(fd, evbuffer_pullup(f->fc_out, -1), len, MSG_NOSIGNAL);
	if (n > 0)
		evbuffer_drain(f->fc_out, (size_t)n);
	if (len == 0 || (n < 0 && errno != EAGAIN))
		fcgi_conn_close(f);
}

static void
fcgi_respond(struct fixture *f)
{
	struct evbuffer *out = evbuffer_new();
	char page[1024], cgi[1200];
	int n;

	assert_non_null(out);
	switch (f->mode) {
	case FCGI_ANSWER:
		status_page(f, page, sizeof(page));
		n = snprintf(cgi, sizeof(cgi), "Content-type: application/json"
		    "\r\nExpires: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
		    "Cache-Control: no-cache, no-store, must-revalidate, "
		    "max-age=0\r\n\r\n%s", page);
		rec_stdout(out, cgi, (size_t)n);
		rec_end(out, 0);
		break;
	case FCGI_NOT_FOUND:
		rec(out, 7, "Primary script unknown", 22);
		n = snprintf(cgi, sizeof(cgi), "Status: 404 Not Found\r\n"
		    "Content-type: text/html; charset=UTF-8\r\n\r\n"
		    "File not found.\n");
		rec_stdout(out, cgi, (size_t)n);
		rec_end(out, 0);
		break;
	case FCGI_CLOSE:
		break;
	case FCGI_CLOSE_MID:
		rec_stdout(out, "Content-type: application/json\r\n", 32);
		break;
	case FCGI_SILENT:
		evbuffer_free(out);
		return;
	case FCGI_GARBAGE:
		evbuffer_add(out, "HTTP/1.1 400 Bad Request\r\n\r\n", 28);
		break;
	case FCGI_HUGE: {
		char chunk[60000];

		memset(chunk, 'x', sizeof(chunk));
		for (int i = 0; i < 4; i++)
			rec(out, 6, chunk, sizeof(chunk));
		rec_end(out, 0);
		break;
	}
	case FCGI_OVERLOADED:
		rec_end(out, 2);
		break;
	case FCGI_NO_HEADERS:
		rec_stdout(out, "{}", 2);
		rec_end(out, 0);
		break;
	}
	/* Written as the socket takes it; then the pool closes. */
	f->fc_out = out;
	event_free(f->fc_ev);
	f->fc_ev = event_new(fake_host_base(f->fh), f->fc,
	    EV_WRITE | EV_PERSIST, fcgi_write_cb, f);
	event_add(f->fc_ev, NULL);
}

static void
fcgi_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;
	unsigned char h[8];

	(void)what;
	if (evbuffer_read(f->fc_in, fd, 4096) <= 0) {
		fcgi_conn_close(f);
		return;
	}
	/* Walk complete records; the empty STDIN ends the request. */
	while (evbuffer_copyout(f->fc_in, h, 8) == 8) {
		size_t clen = ((size_t)h[4] << 8) | h[5];
		size_t total = 8 + clen + h[6];
		unsigned char *rec_data;

		if (evbuffer_get_length(f->fc_in) < total)
			return;
		assert_int_equal(h[0], 1);
		assert_int_equal((h[2] << 8) | h[3], 1);
		rec_data = evbuffer_pullup(f->fc_in, (ev_ssize_t)total);
		if (h[1] == 1) {
			assert_int_equal(clen, 8);
			assert_int_equal(rec_data[8 + 1], 1); /* RESPONDER */
			assert_int_equal(rec_data[8 + 2], 0); /* no keep-alive */
		} else if (h[1] == 4) {
			decode_params(f, rec_data + 8, clen);
		} else if (h[1] == 5 && clen == 0) {
			evbuffer_drain(f->fc_in, total);
			f->fcgi_requests++;
			fcgi_respond(f);
			return;
		}
		evbuffer_drain(f->fc_in, total);
	}
}

static void
fcgi_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;

	(void)what;
	fcgi_conn_close(f);
	f->fc = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	assert_true(f->fc >= 0);
	if (f->mode == FCGI_CLOSE) {
		fcgi_conn_close(f);
		return;
	}
	assert_non_null(f->fc_in = evbuffer_new());
	f->fc_ev = event_new(fake_host_base(f->fh), f->fc,
	    EV_READ | EV_PERSIST, fcgi_read_cb, f);
	event_add(f->fc_ev, NULL);
}

static void
fcgi_listen_tcp(struct fixture *f)
{
	char addr[64];

	f->fl = local_socket(16, &f->fl_port);
	f->fl_ev = event_new(fake_host_base(f->fh), f->fl, EV_READ |
	    EV_PERSIST, fcgi_accept_cb, f);
	event_add(f->fl_ev, NULL);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->fl_port);
	fake_host_set_string(f->fh, "fastcgi", addr);
}

static void
fcgi_listen_unix(struct fixture *f)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	snprintf(f->sock_path, sizeof(f->sock_path),
	    "/tmp/plugin_phpfpm_test.%d.sock", (int)getpid());
	unlink(f->sock_path);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->sock_path);
	f->fl = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(f->fl >= 0);
	assert_int_equal(bind(f->fl, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(f->fl, 16), 0);
	f->fl_ev = event_new(fake_host_base(f->fh), f->fl, EV_READ |
	    EV_PERSIST, fcgi_accept_cb, f);
	event_add(f->fl_ev, NULL);
	fake_host_set_string(f->fh, "fastcgi", f->sock_path);
}

/* ---- tests ---- */

static void
test_descriptor(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(f->p->name, "phpfpm");
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_ASYNC);
	assert_non_null(f->p->cancel);
	assert_string_equal(f->p->actions[0].name, "start");
	assert_string_equal(f->p->actions[3].name, "reload");
	assert_null(f->p->actions[4].name);
	assert_null(dlsym(f->dl, "fcgi_get"));
	assert_null(dlsym(f->dl, "webjson_object"));
}

static void
assert_page_samples(const struct fake_result *r, struct fixture *f)
{
	const struct fake_sample *s;

	assert_int_equal(r->nsamples, f->with_slow ? 12 : 11);
	for (size_t i = 0; i < r->nsamples; i++) {
		assert_int_equal(r->samples[i].nlabels, 1);
		assert_string_equal(fake_sample_label(&r->samples[i], "pool"),
		    "www");
	}
	assert_true(value(r, "phpfpm_up", TROIKA_METRIC_GAUGE) == 1);
	assert_true(value(r, "phpfpm_start_since", TROIKA_METRIC_GAUGE) == 42);
	assert_true(value(r, "phpfpm_accepted_connections_total",
	    TROIKA_METRIC_COUNTER) == (double)f->accepted);
	assert_true(value(r, "phpfpm_listen_queue", TROIKA_METRIC_GAUGE) ==
	    (double)f->queue);
	assert_true(value(r, "phpfpm_max_listen_queue", TROIKA_METRIC_GAUGE) ==
	    (double)f->queue + 1);
	assert_true(value(r, "phpfpm_listen_queue_length",
	    TROIKA_METRIC_GAUGE) == 511);
	assert_true(value(r, "phpfpm_idle_processes", TROIKA_METRIC_GAUGE) ==
	    (double)f->idle);
	assert_true(value(r, "phpfpm_active_processes", TROIKA_METRIC_GAUGE) ==
	    (double)f->active);
	assert_true(value(r, "phpfpm_total_processes", TROIKA_METRIC_GAUGE) ==
	    (double)(f->idle + f->active));
	assert_true(value(r, "phpfpm_max_active_processes",
	    TROIKA_METRIC_GAUGE) == (double)f->active + 1);
	assert_true(value(r, "phpfpm_max_children_reached_total",
	    TROIKA_METRIC_COUNTER) == (double)f->max_children);
	s = fake_result_sample(r, "phpfpm_slow_requests_total", NULL, NULL);
	if (f->with_slow) {
		assert_non_null(s);
		assert_true(s->value == 7);
	} else {
		assert_null(s);
	}
}

static void
test_http_ok(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/status");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message, "pool www: 1 active, 4 idle, 5 total "
	    "processes, listen queue 0");
	assert_string_equal(f->last_uri, "/status?json");
	assert_page_samples(r, f);

	/* A query of its own keeps it; json is added once. */
	set_url(f, "/status?full");
	f->with_slow = 0;
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(f->last_uri, "/status?full&json");
	assert_page_samples(r, f);
	set_url(f, "/status?json");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(f->last_uri, "/status?json");
	assert_no_plugin_events(f);
}

static void
test_listen_queue_warns(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/status");
	new_instance(f);
	f->queue = 3;
	f->active = 5;
	f->idle = 0;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "pool www: 3 requests wait in the "
	    "listen queue (more than 0) (5 active, 0 idle)");
	assert_page_samples(r, f);

	fake_host_set_int(f->fh, "listen_queue_warning", 3);
	new_instance(f);
	assert_int_equal(run_check(f, 5000)->status, TROIKA_STATUS_OK);
	f->queue = 4;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_contains(r->message, "4 requests wait in the listen queue "
	    "(more than 3)");
}

static void
test_max_children_reached_warns_when_it_grows(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/status");
	new_instance(f);
	f->max_children = 2; /* before the first run: the baseline */
	assert_int_equal(run_check(f, 5000)->status, TROIKA_STATUS_OK);
	f->max_children = 5;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_string_equal(r->message, "pool www: pm.max_children reached 3 "
	    "more times since the last run (1 active, 4 idle)");
	assert_true(value(r, "phpfpm_max_children_reached_total",
	    TROIKA_METRIC_COUNTER) == 5);
	assert_int_equal(run_check(f, 5000)->status, TROIKA_STATUS_OK);

	/* Both warnings at once. */
	f->max_children = 6;
	f->queue = 2;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_string_equal(r->message, "pool www: 2 requests wait in the "
	    "listen queue (more than 0); pm.max_children reached 1 more "
	    "times since the last run (1 active, 4 idle)");

	/* A restarted pool (new start time) starts a new baseline. */
	f->queue = 0;
	f->start_time++;
	f->max_children = 9;
	assert_int_equal(run_check(f, 5000)->status, TROIKA_STATUS_OK);
}

static void
test_http_bad_pages(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/notjson");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "reply is not JSON (");
	assert_contains(r->message, "): \"pool: www\\x0aprocess manager: "
	    "static\\x0a\"");
	assert_down(r);

	set_url(f, "/array");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message,
	    "reply is JSON but not an object: \"[1,2,3]\"");

	set_url(f, "/partial");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "status page without a number \"listen "
	    "queue\": not PHP-FPM's status page?");
	assert_down(r);

	set_url(f, "/badgw");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "HTTP 502 from the status page");

	set_url(f, "/fpm-status");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_string_equal(r->message, "HTTP 404 from the status page: is "
	    "pm.status_path set to that path, and are the credentials right?");
	assert_down(r);
}

static void
test_options(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh), "set exactly one of "
	    "url (the status page through the web server) and fastcgi (the "
	    "pool's address)");
	set_url(f, "/status");
	fake_host_set_string(f->fh, "fastcgi", "127.0.0.1:9000");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	fake_host_unset(f->fh, "url");
	fake_host_set_string(f->fh, "fastcgi", "localhost:9000");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh), "fastcgi "
	    "\"localhost:9000\" is not a numeric ip:port, [ipv6]:port or an "
	    "absolute socket path");
	fake_host_set_string(f->fh, "fastcgi", "127.0.0.1");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	fake_host_set_string(f->fh, "fastcgi", "[::1]:9000");
	fake_host_set_string(f->fh, "status_path", "status");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh), "status_path \"status\" "
	    "must be an absolute path of at most 1024 bytes, without a query");
	fake_host_set_string(f->fh, "status_path", "/status?json");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_null(f->state);
	fake_host_unset(f->fh, "status_path");
	new_instance(f);
}

static void
test_fastcgi_tcp(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	fcgi_listen_tcp(f);
	new_instance(f);
	f->active = 2;
	f->idle = 3;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "pool www: 2 active, 3 idle, 5 total "
	    "processes, listen queue 0");
	assert_page_samples(r, f);
	assert_int_equal(f->fcgi_requests, 1);
	assert_int_equal(f->requests, 0);
	assert_string_equal(f->params, "GATEWAY_INTERFACE=CGI/1.1;"
	    "SERVER_SOFTWARE=troika;SERVER_PROTOCOL=HTTP/1.1;"
	    "REQUEST_METHOD=GET;SCRIPT_NAME=/status;SCRIPT_FILENAME=/status;"
	    "REQUEST_URI=/status?json;QUERY_STRING=json;");
	/* Again, on a fresh connection. */
	f->params[0] = '\0';
	assert_int_equal(run_check(f, 5000)->status, TROIKA_STATUS_OK);
	assert_int_equal(f->fcgi_requests, 2);
	assert_no_plugin_events(f);
}

static void
test_fastcgi_unix_and_long_path(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char path[300];

	fcgi_listen_unix(f);
	/* A path over 127 bytes takes the 4-byte length form. */
	memset(path, 'p', sizeof(path));
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	fake_host_set_string(f->fh, "status_path", path);
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_page_samples(r, f);
	assert_contains(f->params, "SCRIPT_NAME=/ppppppppppppppppppppppppp");
	assert_contains(f->params, "pppp?json;QUERY_STRING=json;");

	/* The pool stopped: its socket is gone. */
	servers_stop(f);
	fcgi_listen_unix(f);
	close(f->fl);
	f->fl = -1;
	event_free(f->fl_ev);
	f->fl_ev = NULL;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "connection refused: connecting to "
	    "/tmp/plugin_phpfpm_test.");
	unlink(f->sock_path);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "no socket: connecting to /tmp/");
	assert_contains(r->message, ": No such file or directory");
	assert_down(r);
	assert_no_plugin_events(f);
}

static void
test_fastcgi_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char addr[64];
	int port, fd = local_socket(-1, &port);

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	fake_host_set_string(f->fh, "fastcgi", addr);
	new_instance(f);
	r = run_check(f, 5000);
	close(fd);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "connection refused: connecting to "
	    "127.0.0.1:");
	assert_down(r);
	assert_no_plugin_events(f);
}

static void
test_fastcgi_misbehaving_pool(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[200];

	fcgi_listen_tcp(f);
	fake_host_set_size(f->fh, "max_body", 65536);
	new_instance(f);

	f->mode = FCGI_NOT_FOUND;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_string_equal(r->message, "HTTP 404 from the pool: is "
	    "pm.status_path set to that path, and are the credentials right?");
	assert_down(r);

	f->mode = FCGI_CLOSE;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	snprintf(want, sizeof(want), "127.0.0.1:%d closed the connection "
	    "without a reply (listen.allowed_clients?)", f->fl_port);
	assert_string_equal(r->message, want);

	f->mode = FCGI_CLOSE_MID;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "closed the connection mid-reply, after "
	    "87 bytes");

	f->mode = FCGI_GARBAGE;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	snprintf(want, sizeof(want), "not a FastCGI reply from "
	    "127.0.0.1:%d (record version 72, id 21584)", f->fl_port);
	assert_string_equal(r->message, want);

	f->mode = FCGI_HUGE;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message,
	    "reply larger than max_body (65536 bytes)");
	assert_down(r);

	f->mode = FCGI_OVERLOADED;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message,
	    "the pool is overloaded (FastCGI FCGI_OVERLOADED)");

	f->mode = FCGI_NO_HEADERS;
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message,
	    "the pool's reply has no CGI headers (2 bytes)");

	f->mode = FCGI_SILENT;
	r = run_check(f, 400);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "timed out after 3");
	assert_contains(r->message, " ms waiting for the reply of 127.0.0.1:");
	assert_down(r);

	/* And it recovers. */
	f->mode = FCGI_ANSWER;
	assert_int_equal(run_check(f, 5000)->status, TROIKA_STATUS_OK);
	assert_int_equal(f->fcgi_requests, 8);
	assert_no_plugin_events(f);
}

static void
test_fastcgi_cancel(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	fcgi_listen_tcp(f);
	new_instance(f);
	f->mode = FCGI_SILENT;
	task = fake_host_task(f->fh, 5000);
	fake_host_check(f->fh, f->p, f->state, task);
	for (int i = 0; i < 100 && f->fcgi_requests == 0; i++)
		fake_host_run_for(f->fh, 10);
	assert_int_equal(f->fcgi_requests, 1);
	fake_host_cancel(f->fh, f->p, f->state, task);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_done_count(f->fh), 0);
	assert_no_plugin_events(f);
}

static void
test_fastcgi_cancel_before_deferred_report(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	/* A missing socket fails inside connect(): reported from the loop,
	 * so a cancel before that silences it. */
	fake_host_set_string(f->fh, "fastcgi", "/nonexistent/php-fpm.sock");
	new_instance(f);
	task = fake_host_task(f->fh, 5000);
	fake_host_check(f->fh, f->p, f->state, task);
	fake_host_cancel(f->fh, f->p, f->state, task);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_done_count(f->fh), 0);
	assert_no_plugin_events(f);
}

static void
test_actions(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;
	const struct fake_result *r;

	set_url(f, "/status");
	new_instance(f);
	task = fake_host_task(f->fh, 5000);
	fake_host_action(f->fh, f->p, f->state, task, "stop", NULL, 0);
	assert_int_equal(fake_host_wait_done(f->fh, 1, 2000), 0);
	r = fake_host_last(f->fh);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message,
	    "no service manager configured for this check");
	assert_string_equal(fake_host_service_last_op(f->fh), "stop");
	fake_host_set_service(f->fh, 1, "php8.2-fpm restarted");
	task = fake_host_task(f->fh, 5000);
	fake_host_action(f->fh, f->p, f->state, task, "restart", NULL, 0);
	assert_int_equal(fake_host_wait_done(f->fh, 2, 2000), 0);
	r = fake_host_last(f->fh);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "restart: php8.2-fpm restarted");
	assert_int_equal(f->requests, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_queue_warns, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_max_children_reached_warns_when_it_grows, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_http_bad_pages, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fastcgi_tcp, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fastcgi_unix_and_long_path,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_fastcgi_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fastcgi_misbehaving_pool,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_fastcgi_cancel, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_fastcgi_cancel_before_deferred_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_actions, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
