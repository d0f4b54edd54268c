/*
 * The tcp plugin, loaded from the build tree and driven through the fake
 * host against real sockets on 127.0.0.1 (and ::1 when there is one): a
 * small server on the same event base plays banners, echoes, resets and
 * silence.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
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
#include <event2/event.h>

#include "fake_host.h"

#define TCP_PLUGIN TEST_BUILD_PLUGIN_DIR "/troika-tcp.so"

enum server_mode {
	SERVER_SILENT,    /* accept, then say nothing */
	SERVER_BANNER,    /* write the banner, keep the connection */
	SERVER_BANNER_CLOSE, /* write the banner, close */
	SERVER_ECHO,      /* echo what comes, keep a copy */
	SERVER_SPLIT,     /* the banner in two parts, 50 ms apart */
	SERVER_RESET,     /* close with an RST 50 ms after accepting */
};

struct server {
	struct event_base *base;
	enum server_mode mode;
	const char *banner;
	int lfd;
	int port;
	int cfd;
	struct event *accept_ev;
	struct event *read_ev;
	struct event *timer;
	char got[256];
	size_t gotlen;
	int accepted;
};

struct fixture {
	const struct troika_plugin *p;
	void *dl;
	struct fake_host *fh;
	void *state;
	struct server srv;
	int fds_before;
	int extra_fd[2]; /* sockets a test made itself */
};

static void
server_write(int fd, const char *s)
{
	size_t len = strlen(s);

	assert_int_equal(write(fd, s, len), (ssize_t)len);
}

static void
server_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	char buf[256];
	ssize_t n;

	(void)what;
	n = read(fd, buf, sizeof(buf));
	if (n <= 0) {
		event_del(s->read_ev);
		return;
	}
	if (s->gotlen + (size_t)n <= sizeof(s->got)) {
		memcpy(s->got + s->gotlen, buf, (size_t)n);
		s->gotlen += (size_t)n;
	}
	assert_int_equal(write(fd, buf, (size_t)n), n);
}

static void
server_later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	(void)fd;
	(void)what;
	if (s->mode == SERVER_SPLIT) {
		server_write(s->cfd, s->banner + 3);
		return;
	}
	/* Late enough for the client to be connected and reading. */
	setsockopt(s->cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(s->cfd);
	s->cfd = -1;
}

static void
server_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	struct timeval tv = { 0, 50 * 1000 };

	(void)what;
	s->cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(s->cfd >= 0);
	s->accepted++;
	switch (s->mode) {
	case SERVER_SILENT:
		break;
	case SERVER_BANNER:
		server_write(s->cfd, s->banner);
		break;
	case SERVER_BANNER_CLOSE:
		server_write(s->cfd, s->banner);
		close(s->cfd);
		s->cfd = -1;
		break;
	case SERVER_ECHO:
		s->read_ev = event_new(s->base, s->cfd, EV_READ | EV_PERSIST,
		    server_read_cb, s);
		assert_non_null(s->read_ev);
		event_add(s->read_ev, NULL);
		break;
	case SERVER_SPLIT:
	case SERVER_RESET:
		if (s->mode == SERVER_SPLIT) {
			assert_true(strlen(s->banner) > 3);
			assert_int_equal(write(s->cfd, s->banner, 3), 3);
		}
		s->timer = evtimer_new(s->base, server_later_cb, s);
		assert_non_null(s->timer);
		evtimer_add(s->timer, &tv);
		break;
	}
}

/* A socket bound to an ephemeral port of addr; listening if backlog >= 0. */
static int
bound_socket(int family, int backlog, int *ret_port)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	int fd;

	if ((fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*sin);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) == -1 ||
	    (backlog >= 0 && listen(fd, backlog) == -1) ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) == -1) {
		close(fd);
		return -1;
	}
	*ret_port = ntohs(family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* Serve on 127.0.0.1 (or ::1) with the given behaviour. */
static int
server_start(struct fixture *f, int family, enum server_mode mode,
    const char *banner)
{
	struct server *s = &f->srv;

	s->base = fake_host_base(f->fh);
	s->mode = mode;
	s->banner = banner;
	if ((s->lfd = bound_socket(family, 16, &s->port)) == -1)
		return -1;
	s->accept_ev = event_new(s->base, s->lfd, EV_READ | EV_PERSIST,
	    server_accept_cb, s);
	assert_non_null(s->accept_ev);
	event_add(s->accept_ev, NULL);
	return 0;
}

/* Close everything; the port stays known for the test's messages. */
static void
server_stop(struct server *s)
{
	int port = s->port;

	if (s->accept_ev != NULL)
		event_free(s->accept_ev);
	if (s->read_ev != NULL)
		event_free(s->read_ev);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->cfd >= 0)
		close(s->cfd);
	if (s->lfd >= 0)
		close(s->lfd);
	memset(s, 0, sizeof(*s));
	s->lfd = s->cfd = -1;
	s->port = port;
}

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->p = fake_host_load_plugin(TCP_PLUGIN, &f->dl);
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

	f->fds_before = fake_host_count_fds();
	f->fh = fake_host_new(f->p->options);
	f->state = NULL;
	memset(&f->srv, 0, sizeof(f->srv));
	f->srv.lfd = f->srv.cfd = -1;
	f->extra_fd[0] = f->extra_fd[1] = -1;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	f->p->instance_free(f->state);
	f->state = NULL;
	server_stop(&f->srv);
	for (int i = 0; i < 2; i++)
		if (f->extra_fd[i] >= 0)
			close(f->extra_fd[i]);
	assert_int_equal(fake_host_violations(f->fh), 0);
	fake_host_free(f->fh);
	f->fh = NULL;
	assert_int_equal(fake_host_count_fds(), f->fds_before);
	return 0;
}

static void
set_target(struct fixture *f, const char *host, int port)
{
	fake_host_set_string(f->fh, "host", host);
	fake_host_set_int(f->fh, "port", port);
}

/*
 * One run with a deadline, waited for; returns the result after checking
 * what every result must satisfy: reported once, never inside check(),
 * one line, and nothing of the run left in the event base.
 */
static const struct fake_result *
run_check(struct fixture *f, int64_t deadline_ms)
{
	struct troika_task *task = fake_host_task(f->fh, deadline_ms);
	unsigned before = fake_host_done_count(f->fh);
	const struct fake_result *r;

	fake_host_check(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_done_count(f->fh), before);
	assert_int_equal(fake_host_wait_done(f->fh, before + 1,
	    (int)deadline_ms + 2000), 0);
	r = fake_host_last(f->fh);
	assert_ptr_equal(r->task, task);
	assert_non_null(r->message);
	assert_null(strchr(r->message, '\n'));
	/* The server's own events may remain; the plugin's may not. */
	server_stop(&f->srv);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
	return r;
}

static void
assert_contains(const char *haystack, const char *needle)
{
	if (haystack == NULL || strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"",
		    haystack != NULL ? haystack : "(null)", needle);
}

static void
test_descriptor(void **state)
{
	struct fixture *f = *state;
	const struct troika_option *o;
	int required = 0;

	assert_string_equal(f->p->name, "tcp");
	assert_string_equal(f->p->version, TROIKA_VERSION);
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_ASYNC);
	assert_int_equal(f->p->abi_minor, TROIKA_PLUGIN_ABI_MINOR);
	assert_non_null(f->p->cancel);
	for (o = f->p->options; o->name != NULL; o++)
		if (o->required)
			required++;
	assert_int_equal(required, 2); /* host and port */
	/* Only the entry point is exported. */
	assert_null(dlsym(f->dl, "tcp_check"));
	assert_null(dlsym(f->dl, "tcp_unescape"));
}

static void
test_connect_ok(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	const struct fake_sample *s;
	char want[64];

	/* The kernel completes the handshake; no accept needed. */
	assert_int_equal(server_start(f, AF_INET, SERVER_SILENT, NULL), 0);
	set_target(f, "127.0.0.1", f->srv.port);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	snprintf(want, sizeof(want), "connected to 127.0.0.1:%d in ",
	    f->srv.port);
	assert_contains(r->message, want);
	s = fake_result_sample(r, "troika_tcp_connect_seconds", NULL, NULL);
	assert_non_null(s);
	assert_int_equal(s->type, TROIKA_METRIC_GAUGE);
	assert_true(s->value >= 0 && s->value < 2.0);
	assert_int_equal(s->nlabels, 0);
	assert_null(fake_result_sample(r, "troika_tcp_response_seconds", NULL,
	    NULL));
	assert_int_equal(r->nsamples, 1);
}

static void
test_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[64];
	int port;

	/* Bound but not listening: the port answers with an RST. */
	f->extra_fd[0] = bound_socket(AF_INET, -1, &port);
	assert_true(f->extra_fd[0] >= 0);
	set_target(f, "127.0.0.1", port);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	snprintf(want, sizeof(want), "connection to 127.0.0.1:%d refused",
	    port);
	assert_string_equal(r->message, want);
	assert_int_equal(r->nsamples, 0);
}

static void
test_expect_banner(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	const struct fake_sample *s;

	assert_int_equal(server_start(f, AF_INET, SERVER_BANNER,
	    "+OK troika ready\r\n"), 0);
	set_target(f, "127.0.0.1", f->srv.port);
	fake_host_set_string(f->fh, "expect", "ready\\r\\n");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "\"ready\\r\\n\" received from 127.0.0.1:");
	assert_non_null(fake_result_sample(r, "troika_tcp_connect_seconds",
	    NULL, NULL));
	s = fake_result_sample(r, "troika_tcp_response_seconds", NULL, NULL);
	assert_non_null(s);
	assert_true(s->value >= 0 && s->value < 2.0);
}

static void
test_send_bytes_on_the_wire(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	assert_int_equal(server_start(f, AF_INET, SERVER_ECHO, NULL), 0);
	set_target(f, "127.0.0.1", f->srv.port);
	fake_host_set_string(f->fh, "send", "PING\\r\\n\\t\\\\x");
	fake_host_set_string(f->fh, "expect", "\\t\\\\x");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	task = fake_host_task(f->fh, 2000);
	fake_host_check(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_wait_done(f->fh, 1, 3000), 0);
	assert_int_equal(fake_host_last(f->fh)->status, TROIKA_STATUS_OK);
	assert_int_equal(f->srv.gotlen, 9);
	assert_memory_equal(f->srv.got, "PING\r\n\t\\x", 9);
}

static void
test_expect_split_across_reads(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	assert_int_equal(server_start(f, AF_INET, SERVER_SPLIT, "+PONG\r\n"),
	    0);
	set_target(f, "127.0.0.1", f->srv.port);
	fake_host_set_string(f->fh, "expect", "PONG");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
}

static void
test_expect_closed(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	assert_int_equal(server_start(f, AF_INET, SERVER_BANNER_CLOSE,
	    "-ERR busy\r\n"), 0);
	set_target(f, "127.0.0.1", f->srv.port);
	fake_host_set_string(f->fh, "expect", "+OK");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "\"+OK\" not received: 127.0.0.1:");
	assert_contains(r->message, "closed the connection after 11 bytes");
	assert_non_null(fake_result_sample(r, "troika_tcp_connect_seconds",
	    NULL, NULL));
	assert_null(fake_result_sample(r, "troika_tcp_response_seconds", NULL,
	    NULL));
}

static void
test_expect_read_limit(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	assert_int_equal(server_start(f, AF_INET, SERVER_BANNER,
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "ready"), 0);
	set_target(f, "127.0.0.1", f->srv.port);
	fake_host_set_string(f->fh, "expect", "ready");
	fake_host_set_size(f->fh, "read_limit", 16);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "\"ready\" not found in the first 16 bytes");
}

static void
test_expect_timeout(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	struct timespec t0, t1;
	double took;

	assert_int_equal(server_start(f, AF_INET, SERVER_SILENT, NULL), 0);
	set_target(f, "127.0.0.1", f->srv.port);
	fake_host_set_string(f->fh, "expect", "hello");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = run_check(f, 300);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	took = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "\"hello\" not received from 127.0.0.1:");
	assert_contains(r->message, " within 2");
	assert_contains(r->message, "(0 bytes read)");
	/* Before the host's deadline, with the margin taken off. */
	assert_true(took >= 0.2 && took < 0.5);
	assert_non_null(fake_result_sample(r, "troika_tcp_connect_seconds",
	    NULL, NULL));
}

static void
test_connect_timeout(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int port;

	/*
	 * A listen queue of one, filled by a first connection that is never
	 * accepted: the kernel drops further SYNs, so a connect hangs.
	 */
	f->extra_fd[0] = bound_socket(AF_INET, 0, &port);
	assert_true(f->extra_fd[0] >= 0);
	f->extra_fd[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	assert_int_equal(connect(f->extra_fd[1], (struct sockaddr *)&sin,
	    sizeof(sin)), 0);
	set_target(f, "127.0.0.1", port);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 300);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "connect to 127.0.0.1:");
	assert_contains(r->message, " timed out after 2");
	assert_int_equal(r->nsamples, 0);
}

static void
test_reset_while_reading(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	assert_int_equal(server_start(f, AF_INET, SERVER_RESET, NULL), 0);
	set_target(f, "127.0.0.1", f->srv.port);
	fake_host_set_string(f->fh, "expect", "hello");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "reading from 127.0.0.1:");
	assert_contains(r->message, "Connection reset by peer");
}

static void
test_send_timeout(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	size_t len = 16 * 1024 * 1024;
	char *big = malloc(len + 1);
	int small = 4096;

	/* A peer that never reads and a request far larger than the buffers. */
	assert_non_null(big);
	memset(big, 'a', len);
	big[len] = '\0';
	assert_int_equal(server_start(f, AF_INET, SERVER_SILENT, NULL), 0);
	setsockopt(f->srv.lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	set_target(f, "127.0.0.1", f->srv.port);
	fake_host_set_string(f->fh, "send", big);
	free(big);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 500);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "sending to 127.0.0.1:");
	assert_contains(r->message, "of 16777216 bytes sent)");
}

static void
test_cancel_while_reading(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	assert_int_equal(server_start(f, AF_INET, SERVER_SILENT, NULL), 0);
	set_target(f, "127.0.0.1", f->srv.port);
	fake_host_set_string(f->fh, "expect", "hello");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	task = fake_host_task(f->fh, 2000);
	fake_host_check(f->fh, f->p, f->state, task);
	fake_host_run_for(f->fh, 100);
	assert_int_equal(f->srv.accepted, 1);
	fake_host_cancel(f->fh, f->p, f->state, task);
	server_stop(&f->srv);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
	fake_host_run_for(f->fh, 100);
	assert_int_equal(fake_host_done_count(f->fh), 0);
	/* teardown checks that the socket was closed */
}

static void
test_cancel_before_deferred_report(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;
	int port;

	/* The refusal is known inside check(), reported from the loop. */
	f->extra_fd[0] = bound_socket(AF_INET, -1, &port);
	set_target(f, "127.0.0.1", port);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	task = fake_host_task(f->fh, 2000);
	fake_host_check(f->fh, f->p, f->state, task);
	fake_host_cancel(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_done_count(f->fh), 0);
}

static void
test_cancel_after_instant_connect(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;
	int port;

	/*
	 * A loopback connect is mostly complete when connect() returns; the
	 * run then goes on from the loop without a socket event. A cancel
	 * in between must leave nothing pending and report nothing. The
	 * listener has no event of its own: the kernel completes the
	 * handshake without accept().
	 */
	f->extra_fd[0] = bound_socket(AF_INET, 8, &port);
	set_target(f, "127.0.0.1", port);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	task = fake_host_task(f->fh, 2000);
	fake_host_check(f->fh, f->p, f->state, task);
	fake_host_cancel(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_done_count(f->fh), 0);
}

static void
test_cancel_other_task_ignored(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task, *stale;

	assert_int_equal(server_start(f, AF_INET, SERVER_BANNER, "hello\n"),
	    0);
	set_target(f, "127.0.0.1", f->srv.port);
	fake_host_set_string(f->fh, "expect", "hello");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	stale = fake_host_task(f->fh, 2000);
	task = fake_host_task(f->fh, 2000);
	fake_host_check(f->fh, f->p, f->state, task);
	/* A cancel for a task that is not running must not end this one. */
	f->p->cancel(f->state, stale);
	assert_int_equal(fake_host_wait_done(f->fh, 1, 3000), 0);
	assert_int_equal(fake_host_last(f->fh)->status, TROIKA_STATUS_OK);
}

static void
test_deadline_already_past(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;
	const struct fake_result *r;

	/* No time left at all: the plugin still reports (a timeout). */
	assert_int_equal(server_start(f, AF_INET, SERVER_SILENT, NULL), 0);
	set_target(f, "127.0.0.1", f->srv.port);
	fake_host_set_string(f->fh, "expect", "hello");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	task = fake_host_task(f->fh, 5000);
	fake_host_task_set_deadline(task, 0);
	fake_host_check(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_wait_done(f->fh, 1, 2000), 0);
	r = fake_host_last(f->fh);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	/* Connecting on loopback may or may not beat a 1 ms timer. */
	assert_contains(r->message, " 1 ms");
}

static void
test_two_runs(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	assert_int_equal(server_start(f, AF_INET, SERVER_BANNER, "hello\n"),
	    0);
	set_target(f, "127.0.0.1", f->srv.port);
	fake_host_set_string(f->fh, "expect", "hello");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	for (unsigned i = 1; i <= 2; i++) {
		task = fake_host_task(f->fh, 2000);
		fake_host_check(f->fh, f->p, f->state, task);
		assert_int_equal(fake_host_wait_done(f->fh, i, 3000), 0);
		assert_int_equal(fake_host_last(f->fh)->status,
		    TROIKA_STATUS_OK);
		assert_ptr_equal(fake_host_last(f->fh)->task, task);
		if (f->srv.cfd >= 0)
			close(f->srv.cfd);
		f->srv.cfd = -1;
	}
	assert_int_equal(f->srv.accepted, 2);
}

static void
test_ipv6(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[64];

	if (server_start(f, AF_INET6, SERVER_SILENT, NULL) < 0)
		skip(); /* no ::1 here */
	set_target(f, "[::1]", f->srv.port);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	snprintf(want, sizeof(want), "connected to [::1]:%d", f->srv.port);
	assert_contains(r->message, want);
}

static void
test_no_sockets_left(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	struct rlimit old, low;
	int fds[64], n = 0, port;

	f->extra_fd[0] = bound_socket(AF_INET, 16, &port);
	set_target(f, "127.0.0.1", port);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	/* Use up every descriptor below a low limit. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = 64;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < 64 && (fds[n] = open("/dev/null", O_RDONLY)) >= 0)
		n++;
	fake_host_check(f->fh, f->p, f->state, fake_host_task(f->fh, 2000));
	while (n > 0)
		close(fds[--n]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(fake_host_wait_done(f->fh, 1, 3000), 0);
	r = fake_host_last(f->fh);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message,
	    "cannot create a socket: Too many open files");
	assert_int_equal(fake_host_events_pending(f->fh), 0);
}

static void
test_name_refused(void **state)
{
	struct fixture *f = *state;

	set_target(f, "localhost", 80);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_null(f->state);
	assert_int_equal(fake_host_log_last_level(f->fh), TROIKA_LOG_ERR);
	assert_contains(fake_host_log_last(f->fh), "host \"localhost\" is not "
	    "a numeric IPv4 or IPv6 address: names are not resolved");
}

static void
test_bad_host(void **state)
{
	struct fixture *f = *state;

	set_target(f, "", 80);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_contains(fake_host_log_last(f->fh), "is not a numeric");
	set_target(f, "[]", 80);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_int_equal(fake_host_log_count(f->fh), 2);
	set_target(f, "127.0.0.1.5", 80);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_int_equal(fake_host_log_count(f->fh), 3);
}

static void
test_bad_escape(void **state)
{
	struct fixture *f = *state;

	set_target(f, "127.0.0.1", 80);
	fake_host_set_string(f->fh, "send", "GET /\\q");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_contains(fake_host_log_last(f->fh),
	    "send: unknown escape \"\\q\" at offset 5");
	fake_host_unset(f->fh, "send");
	/* A lone backslash at the end is an escape without a letter. */
	fake_host_set_string(f->fh, "expect", "abc\\");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_contains(fake_host_log_last(f->fh), "expect: unknown escape");
	assert_null(f->state);
}

static void
test_empty_expect(void **state)
{
	struct fixture *f = *state;

	set_target(f, "127.0.0.1", 80);
	fake_host_set_string(f->fh, "expect", "");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_contains(fake_host_log_last(f->fh), "expect must not be empty");
}

static void
test_read_limit_below_expect(void **state)
{
	struct fixture *f = *state;

	set_target(f, "127.0.0.1", 80);
	fake_host_set_string(f->fh, "expect", "0123456789");
	fake_host_set_size(f->fh, "read_limit", 4);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_contains(fake_host_log_last(f->fh),
	    "read_limit (4 bytes) is shorter than expect (10 bytes)");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expect_banner, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_send_bytes_on_the_wire,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_expect_split_across_reads,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_expect_closed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_expect_read_limit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_expect_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_connect_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reset_while_reading, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_send_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancel_while_reading, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_cancel_before_deferred_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_after_instant_connect,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_other_task_ignored,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_already_past, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_two_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_sockets_left, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_name_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_escape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_expect, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_read_limit_below_expect,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
