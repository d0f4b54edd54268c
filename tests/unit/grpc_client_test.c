/*
 * The gRPC client (core/lib/grpc_client.c) against our own server
 * (grpc_server.c) over a bufferevent pair: every call kind, statuses and
 * messages, deadlines, oversized replies, the send cap and drained(),
 * cancel, GOAWAY, connection loss, keepalive and connect timeouts; and the
 * reconnect backoff. Each test ends on a fresh base with nothing pending
 * and every call closed exactly once (ASan finds what is left).
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

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
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <nghttp2/nghttp2.h>

#include "grpc_client.h"
#include "grpc_frame.h"
#include "grpc_server.h"

/* ---- the server side: test methods ---- */

static int srv_closed[GRPC_STATUS_MAX + 1];
static char srv_md[64];
static struct grpc_call *held;

static int
s_start(struct grpc_call *call, void *arg)
{
	const char *md = grpc_call_metadata(call, "x-test");

	(void)arg;
	if (md != NULL)
		snprintf(srv_md, sizeof(srv_md), "%s", md);
	return 0;
}

static void
s_close(struct grpc_call *call, int status)
{
	if (call == held)
		held = NULL;
	srv_closed[status]++;
}

/* Unary: "fail", "big", "hold", "md", "none" or the text back. */
static void
s_unary_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	char text[64];

	snprintf(text, sizeof(text), "%.*s", (int)len, (const char *)msg);
	if (strcmp(text, "fail") == 0) {
		grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
		    "bad \n100% \xc3\xa9");
	} else if (strcmp(text, "big") == 0) {
		static uint8_t big[100000];

		grpc_call_send(call, big, sizeof(big));
		grpc_call_finish(call, GRPC_STATUS_OK, NULL);
	} else if (strcmp(text, "hold") == 0) {
		held = call;
	} else if (strcmp(text, "md") == 0) {
		grpc_call_send(call, srv_md, strlen(srv_md));
		grpc_call_finish(call, GRPC_STATUS_OK, NULL);
	} else {
		grpc_call_send(call, msg, len);
		grpc_call_finish(call, GRPC_STATUS_OK, NULL);
	}
}

/* Server streaming: the number asked for, "0", "1", ... */
static void
s_count_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	char buf[16];
	int n;

	snprintf(buf, sizeof(buf), "%.*s", (int)len, (const char *)msg);
	n = atoi(buf);
	for (int i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "%d", i);
		grpc_call_send(call, buf, strlen(buf));
	}
	grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

/* Client streaming and bidi: collect; bidi also echoes each. */
static char collected[256];

static void
s_collect_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	(void)call;
	strncat(collected, (const char *)msg,
	    len < sizeof(collected) - strlen(collected) - 1 ? len :
	    sizeof(collected) - strlen(collected) - 1);
}

static void
s_collect_half_close(struct grpc_call *call)
{
	grpc_call_send(call, collected, strlen(collected));
	grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static void
s_chat_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	held = call;
	grpc_call_send(call, msg, len);
}

static void
s_chat_half_close(struct grpc_call *call)
{
	grpc_call_finish(call, GRPC_STATUS_OK, "bye");
}

static const struct grpc_handler unary_h = {
	.start = s_start, .message = s_unary_message, .close = s_close,
};
static const struct grpc_handler count_h = {
	.start = s_start, .message = s_count_message, .close = s_close,
};
static const struct grpc_handler collect_h = {
	.start = s_start, .message = s_collect_message,
	.half_close = s_collect_half_close, .close = s_close,
};
static const struct grpc_handler chat_h = {
	.start = s_start, .message = s_chat_message,
	.half_close = s_chat_half_close, .close = s_close,
};

/* ---- the client side: what the callbacks saw ---- */

#define NCALLS 16

struct ccall {
	struct grpc_client_call *call;
	int headers;
	int nmsg;
	size_t last_len;
	char last[128];
	char all[512];
	int drained;
	int closed;
	int status;
	char message[128];
	char ct[64];
	char trailer[32]; /* x-t, read in close() */
};

struct ctx {
	struct event_base *base;
	struct event *tick;
	struct grpc_server *srv;
	struct grpc_server_config scfg;
	struct grpc_client *cl;
	struct grpc_client_config ccfg;
	struct bufferevent *peer; /* the far end when no server is used */
	int down;
	char down_reason[128];
	int free_in_down;
	struct ccall calls[NCALLS];
	int ncalls;
};

static void
c_headers(struct grpc_client_call *call, void *arg)
{
	struct ccall *c = arg;
	const char *ct = grpc_client_call_header(call, "content-type");

	c->headers++;
	snprintf(c->ct, sizeof(c->ct), "%s", ct != NULL ? ct : "");
}

static void
c_message(struct grpc_client_call *call, const uint8_t *msg, size_t len,
    void *arg)
{
	struct ccall *c = arg;

	(void)call;
	c->nmsg++;
	c->last_len = len;
	snprintf(c->last, sizeof(c->last), "%.*s", (int)len,
	    (const char *)msg);
	if (len < 64) {
		size_t used = strlen(c->all);

		/* snprintf, not strncat: gcc -O2 cannot prove the two
		 * buffers apart and fails the build with -Wrestrict. */
		snprintf(c->all + used, sizeof(c->all) - used, "%.*s,",
		    (int)len, (const char *)msg);
	}
}

static void
c_drained(struct grpc_client_call *call, void *arg)
{
	struct ccall *c = arg;

	(void)call;
	c->drained++;
}

static void
c_close(struct grpc_client_call *call, int status, const char *message,
    void *arg)
{
	struct ccall *c = arg;
	const char *t = grpc_client_call_header(call, "x-t");

	snprintf(c->trailer, sizeof(c->trailer), "%s", t != NULL ? t : "");
	c->closed++;
	c->status = status;
	c->call = NULL;
	snprintf(c->message, sizeof(c->message), "%s", message);
}

static const struct grpc_client_handler chandler = {
	.headers = c_headers, .message = c_message, .drained = c_drained,
	.close = c_close,
};

static void
c_down(struct grpc_client *cl, const char *reason, void *arg)
{
	struct ctx *c = arg;

	c->down++;
	snprintf(c->down_reason, sizeof(c->down_reason), "%s", reason);
	if (c->free_in_down) {
		grpc_client_free(cl);
		c->cl = NULL;
	}
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static int
setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct timeval tv = { 0, 5000 };

	assert_non_null(c);
	memset(srv_closed, 0, sizeof(srv_closed));
	srv_md[0] = '\0';
	collected[0] = '\0';
	held = NULL;
	assert_non_null(c->base = event_base_new());
	assert_non_null(c->tick = event_new(c->base, -1, EV_PERSIST, tick_cb,
	    NULL));
	evtimer_add(c->tick, &tv);
	grpc_server_config_default(&c->scfg);
	grpc_client_config_default(&c->ccfg);
	*state = c;
	return 0;
}

static int
teardown(void **state)
{
	struct ctx *c = *state;

	grpc_client_free(c->cl);
	grpc_server_free(c->srv);
	if (c->peer != NULL)
		bufferevent_free(c->peer);
	event_free(c->tick);
	event_base_loop(c->base, EVLOOP_NONBLOCK);
	assert_int_equal(event_base_get_num_events(c->base,
	    EVENT_BASE_COUNT_ADDED), 0);
	event_base_free(c->base);
	for (int i = 0; i < c->ncalls; i++)
		assert_int_equal(c->calls[i].closed, 1);
	free(c);
	return 0;
}

/* Server with the test methods, client on a bufferevent pair to it. */
static void
ctx_connect(struct ctx *c)
{
	static const struct {
		const char *path;
		enum grpc_method_kind kind;
		const struct grpc_handler *h;
	} methods[] = {
		{ "/t.S/Unary", GRPC_METHOD_UNARY, &unary_h },
		{ "/t.S/Count", GRPC_METHOD_SERVER_STREAMING, &count_h },
		{ "/t.S/Collect", GRPC_METHOD_CLIENT_STREAMING, &collect_h },
		{ "/t.S/Chat", GRPC_METHOD_BIDI_STREAMING, &chat_h },
	};
	struct bufferevent *pair[2];

	assert_non_null(c->srv = grpc_server_new(c->base, &c->scfg));
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		struct grpc_method m = {
			.path = methods[i].path,
			.kind = methods[i].kind,
			.handler = methods[i].h,
		};

		assert_int_equal(grpc_server_add_method(c->srv, &m), 0);
	}
	assert_int_equal(bufferevent_pair_new(c->base, 0, pair), 0);
	assert_int_equal(grpc_server_adopt(c->srv, pair[0], "pair"), 0);
	assert_non_null(c->cl = grpc_client_adopt(c->base, pair[1], "test",
	    &c->ccfg, c_down, c));
}

/* A client whose far end is a silent bufferevent (no server). */
static void
ctx_connect_silent(struct ctx *c)
{
	struct bufferevent *pair[2];

	assert_int_equal(bufferevent_pair_new(c->base, 0, pair), 0);
	c->peer = pair[0];
	assert_non_null(c->cl = grpc_client_adopt(c->base, pair[1], "test",
	    &c->ccfg, c_down, c));
}

static struct ccall *
ctx_open(struct ctx *c, const char *path, int64_t timeout_ms)
{
	struct ccall *cc;

	assert_true(c->ncalls < NCALLS);
	cc = &c->calls[c->ncalls++];
	memset(cc, 0, sizeof(*cc));
	assert_non_null(cc->call = grpc_client_call_open(c->cl, path,
	    timeout_ms, &chandler, cc));
	return cc;
}

/* Open, send one message, half-close. */
static struct ccall *
ctx_unary(struct ctx *c, const char *path, const char *msg,
    int64_t timeout_ms)
{
	struct ccall *cc = ctx_open(c, path, timeout_ms);

	assert_int_equal(grpc_client_call_send(cc->call, msg, strlen(msg)), 0);
	assert_int_equal(grpc_client_call_half_close(cc->call), 0);
	return cc;
}

static int
run_until(struct ctx *c, int (*cond)(struct ctx *), int ms)
{
	struct timespec t0, now;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (cond(c))
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 +
		    (now.tv_nsec - t0.tv_nsec) / 1000000 > ms)
			return 0;
		event_base_loop(c->base, EVLOOP_ONCE);
	}
}

static int
never(struct ctx *c)
{
	(void)c;
	return 0;
}

static int
all_closed(struct ctx *c)
{
	for (int i = 0; i < c->ncalls; i++)
		if (!c->calls[i].closed)
			return 0;
	return 1;
}

static int
is_down(struct ctx *c)
{
	return c->down > 0;
}

static int
is_held(struct ctx *c)
{
	(void)c;
	return held != NULL;
}

/* ---- tests ---- */

static void
test_unary(void **state)
{
	struct ctx *c = *state;
	struct ccall *ok, *fail, *md;
	const struct grpc_client_stats *st;

	ctx_connect(c);
	ok = ctx_unary(c, "/t.S/Unary", "hello", 0);
	fail = ctx_unary(c, "/t.S/Unary", "fail", 0);
	md = ctx_open(c, "/t.S/Unary", 5000);
	assert_int_equal(grpc_client_call_metadata(md->call, "x-test", "v1"),
	    0);
	assert_int_equal(grpc_client_call_metadata(md->call, "grpc-x", "v"),
	    -EINVAL);
	assert_int_equal(grpc_client_call_metadata(md->call, "Bad", "v"),
	    -EINVAL);
	assert_int_equal(grpc_client_call_send(md->call, "md", 2), 0);
	assert_int_equal(grpc_client_call_half_close(md->call), 0);
	/* Nothing happens inside the API calls: all from the loop. */
	assert_int_equal(ok->closed, 0);
	assert_true(run_until(c, all_closed, 2000));

	assert_int_equal(ok->status, GRPC_STATUS_OK);
	assert_int_equal(ok->nmsg, 1);
	assert_string_equal(ok->last, "hello");
	assert_int_equal(ok->headers, 1);
	assert_string_equal(ok->ct, "application/grpc");
	assert_string_equal(ok->message, "");

	/* Trailers-Only error: no headers(), message decoded. */
	assert_int_equal(fail->status, GRPC_STATUS_INVALID_ARGUMENT);
	assert_string_equal(fail->message, "bad \n100% \xc3\xa9");
	assert_int_equal(fail->nmsg, 0);

	assert_int_equal(md->status, GRPC_STATUS_OK);
	assert_string_equal(md->last, "v1");

	st = grpc_client_stats(c->cl);
	assert_int_equal(st->calls_started, 3);
	assert_int_equal(st->calls_open, 0);
	assert_int_equal(st->msgs_sent, 3);
	assert_int_equal(st->msgs_received, 2);
	assert_int_equal(st->handled[GRPC_STATUS_OK], 2);
	assert_int_equal(st->handled[GRPC_STATUS_INVALID_ARGUMENT], 1);
	assert_true(st->bytes_sent > 0 && st->bytes_received > 0);
	assert_int_equal(c->down, 0);
	assert_true(grpc_client_usable(c->cl));
}

static void
test_unknown_method(void **state)
{
	struct ctx *c = *state;
	struct ccall *cc;

	ctx_connect(c);
	cc = ctx_unary(c, "/t.S/Nope", "x", 0);
	assert_true(run_until(c, all_closed, 2000));
	assert_int_equal(cc->status, GRPC_STATUS_UNIMPLEMENTED);
	assert_string_equal(cc->message, "unknown method /t.S/Nope");
}

static void
test_bad_open(void **state)
{
	struct ctx *c = *state;

	ctx_connect(c);
	errno = 0;
	assert_null(grpc_client_call_open(c->cl, "nope", 0, &chandler, NULL));
	assert_int_equal(errno, EINVAL);
	assert_null(grpc_client_call_open(c->cl, "/a", 0, &chandler, NULL));
	assert_int_equal(errno, EINVAL);
	assert_null(grpc_client_call_open(NULL, "/a/b", 0, &chandler, NULL));
	assert_int_equal(errno, ENOTCONN);
}

static void
test_server_streaming(void **state)
{
	struct ctx *c = *state;
	struct ccall *cc;

	ctx_connect(c);
	cc = ctx_unary(c, "/t.S/Count", "5", 0);
	assert_true(run_until(c, all_closed, 2000));
	assert_int_equal(cc->status, GRPC_STATUS_OK);
	assert_int_equal(cc->nmsg, 5);
	assert_string_equal(cc->all, "0,1,2,3,4,");
}

static void
test_client_streaming(void **state)
{
	struct ctx *c = *state;
	struct ccall *cc;

	ctx_connect(c);
	cc = ctx_open(c, "/t.S/Collect", 0);
	assert_int_equal(grpc_client_call_send(cc->call, "a", 1), 0);
	assert_int_equal(grpc_client_call_send(cc->call, "bc", 2), 0);
	assert_true(run_until(c, never, 50) == 0);
	assert_int_equal(grpc_client_call_send(cc->call, "d", 1), 0);
	assert_int_equal(grpc_client_call_half_close(cc->call), 0);
	/* After half-close nothing more goes. */
	assert_int_equal(grpc_client_call_send(cc->call, "e", 1), -EINVAL);
	assert_int_equal(grpc_client_call_half_close(cc->call), -EINVAL);
	assert_true(run_until(c, all_closed, 2000));
	assert_int_equal(cc->status, GRPC_STATUS_OK);
	assert_string_equal(cc->last, "abcd");
}

static int
chat_two(struct ctx *c)
{
	return c->calls[0].nmsg >= 2;
}

static void
test_bidi(void **state)
{
	struct ctx *c = *state;
	struct ccall *cc;

	ctx_connect(c);
	cc = ctx_open(c, "/t.S/Chat", 0);
	assert_int_equal(grpc_client_call_send(cc->call, "one", 3), 0);
	assert_int_equal(grpc_client_call_send(cc->call, "two", 3), 0);
	assert_true(run_until(c, chat_two, 2000));
	assert_int_equal(cc->closed, 0);
	assert_string_equal(cc->all, "one,two,");
	assert_int_equal(grpc_client_call_send(cc->call, "three", 5), 0);
	assert_int_equal(grpc_client_call_half_close(cc->call), 0);
	assert_true(run_until(c, all_closed, 2000));
	assert_int_equal(cc->status, GRPC_STATUS_OK);
	assert_string_equal(cc->message, "bye");
	assert_string_equal(cc->all, "one,two,three,");
}

static void
test_deadline(void **state)
{
	struct ctx *c = *state;
	struct ccall *cc;

	ctx_connect(c);
	cc = ctx_unary(c, "/t.S/Unary", "hold", 100);
	assert_true(run_until(c, is_held, 2000));
	/* The server saw the deadline too (grpc-timeout). */
	assert_true(grpc_call_remaining_ms(held) > 0);
	assert_true(grpc_call_remaining_ms(held) <= 100);
	assert_true(run_until(c, all_closed, 2000));
	assert_int_equal(cc->status, GRPC_STATUS_DEADLINE_EXCEEDED);
	assert_true(run_until(c, never, 50) == 0);
	assert_int_equal(srv_closed[GRPC_STATUS_DEADLINE_EXCEEDED] +
	    srv_closed[GRPC_STATUS_CANCELLED], 1);
	assert_int_equal(c->down, 0);
	/* The connection carries on. */
	cc = ctx_unary(c, "/t.S/Unary", "again", 100);
	assert_true(run_until(c, all_closed, 2000));
	assert_int_equal(cc->status, GRPC_STATUS_OK);
}

static void
test_too_big(void **state)
{
	struct ctx *c = *state;
	struct ccall *big, *ok;

	c->ccfg.max_recv_message = 1000;
	ctx_connect(c);
	big = ctx_unary(c, "/t.S/Unary", "big", 0);
	ok = ctx_unary(c, "/t.S/Unary", "small", 0);
	assert_true(run_until(c, all_closed, 2000));
	assert_int_equal(big->status, GRPC_STATUS_RESOURCE_EXHAUSTED);
	assert_string_equal(big->message, "reply message larger than max "
	    "(1000)");
	assert_int_equal(big->nmsg, 0);
	assert_int_equal(ok->status, GRPC_STATUS_OK);
	assert_string_equal(ok->last, "small");
}

static void
test_cancel(void **state)
{
	struct ctx *c = *state;
	struct ccall *cc, *early;

	ctx_connect(c);
	cc = ctx_open(c, "/t.S/Chat", 0);
	assert_int_equal(grpc_client_call_send(cc->call, "x", 1), 0);
	assert_true(run_until(c, is_held, 2000));
	grpc_client_call_cancel(cc->call);
	assert_int_equal(cc->closed, 0);
	assert_int_equal(grpc_client_call_send(cc->call, "y", 1), -EINVAL);
	/* Cancelled before it ever went out. */
	early = ctx_open(c, "/t.S/Chat", 0);
	grpc_client_call_cancel(early->call);
	assert_true(run_until(c, all_closed, 2000));
	assert_int_equal(cc->status, GRPC_STATUS_CANCELLED);
	assert_int_equal(early->status, GRPC_STATUS_CANCELLED);
	assert_string_equal(early->message, "cancelled by the client");
	assert_true(run_until(c, never, 30) == 0);
	assert_int_equal(srv_closed[GRPC_STATUS_CANCELLED], 1);
}

static int
drained_once(struct ctx *c)
{
	return c->calls[0].drained > 0;
}

static void
test_send_cap(void **state)
{
	struct ctx *c = *state;
	struct ccall *cc;
	char msg[100];
	int n = 0;

	c->ccfg.call_send_cap = 250;
	memset(msg, 'm', sizeof(msg));
	ctx_connect(c);
	cc = ctx_open(c, "/t.S/Chat", 0);
	while (grpc_client_call_send(cc->call, msg, sizeof(msg)) == 0)
		n++;
	/* 105 bytes framed each: the third goes over 250. */
	assert_int_equal(n, 3);
	assert_int_equal(grpc_client_call_send(cc->call, msg, 1), -EAGAIN);
	assert_int_equal(grpc_client_call_queued(cc->call), 315);
	assert_true(run_until(c, drained_once, 2000));
	assert_int_equal(grpc_client_call_queued(cc->call), 0);
	assert_int_equal(cc->drained, 1);
	assert_int_equal(grpc_client_call_send(cc->call, msg, 1), 0);
	assert_int_equal(grpc_client_call_half_close(cc->call), 0);
	assert_true(run_until(c, all_closed, 2000));
	assert_int_equal(cc->status, GRPC_STATUS_OK);
	assert_int_equal(cc->nmsg, 4);
}

static void
test_goaway(void **state)
{
	struct ctx *c = *state;
	struct ccall *cc;

	ctx_connect(c);
	cc = ctx_open(c, "/t.S/Chat", 0);
	assert_int_equal(grpc_client_call_send(cc->call, "x", 1), 0);
	assert_true(run_until(c, is_held, 2000));
	grpc_server_shutdown(c->srv, 100, NULL, NULL);
	assert_true(run_until(c, all_closed, 3000));
	assert_int_equal(cc->status, GRPC_STATUS_UNAVAILABLE);
	assert_true(run_until(c, is_down, 3000));
	assert_int_equal(c->down, 1);
	assert_false(grpc_client_usable(c->cl));
	errno = 0;
	assert_null(grpc_client_call_open(c->cl, "/t.S/Chat", 0, &chandler,
	    NULL));
	assert_int_equal(errno, ENOTCONN);
}

static void
test_connection_lost(void **state)
{
	struct ctx *c = *state;
	struct ccall *a, *b;

	c->free_in_down = 1;
	ctx_connect(c);
	a = ctx_open(c, "/t.S/Chat", 0);
	assert_int_equal(grpc_client_call_send(a->call, "x", 1), 0);
	b = ctx_open(c, "/t.S/Count", 0); /* open, never half-closed */
	assert_true(run_until(c, is_held, 2000));
	grpc_server_free(c->srv);
	c->srv = NULL;
	assert_true(run_until(c, is_down, 2000));
	assert_int_equal(a->status, GRPC_STATUS_UNAVAILABLE);
	assert_int_equal(b->status, GRPC_STATUS_UNAVAILABLE);
	assert_string_equal(a->message,
	    "connection lost: connection closed by the server");
	assert_string_equal(c->down_reason, "connection closed by the server");
	/* down() freed the client. */
	assert_null(c->cl);
}

static void
test_connect_timeout(void **state)
{
	struct ctx *c = *state;
	struct ccall *cc;

	c->ccfg.connect_timeout_ms = 50;
	ctx_connect_silent(c);
	cc = ctx_unary(c, "/t.S/Unary", "x", 0);
	assert_true(run_until(c, is_down, 2000));
	assert_int_equal(cc->status, GRPC_STATUS_UNAVAILABLE);
	assert_string_equal(cc->message, "connection lost: connect timeout");
	assert_string_equal(c->down_reason, "connect timeout");
}

static int
three_pings(struct ctx *c)
{
	return grpc_client_stats(c->cl)->pings_sent >= 3;
}

static void
test_keepalive(void **state)
{
	struct ctx *c = *state;
	struct ccall *cc;

	c->ccfg.keepalive_ms = 20;
	c->ccfg.keepalive_timeout_ms = 200;
	ctx_connect(c);
	/* No calls: no PINGs. */
	assert_true(run_until(c, never, 80) == 0);
	assert_int_equal(grpc_client_stats(c->cl)->pings_sent, 0);
	cc = ctx_open(c, "/t.S/Chat", 0);
	assert_true(run_until(c, three_pings, 2000));
	assert_int_equal(c->down, 0);
	assert_int_equal(cc->closed, 0);
	assert_int_equal(grpc_client_call_half_close(cc->call), 0);
	assert_true(run_until(c, all_closed, 2000));
	assert_int_equal(cc->status, GRPC_STATUS_OK);
}

/* The server's end stops reading: its PING ack never comes. */
static void
test_keepalive_unanswered(void **state)
{
	struct ctx *c = *state;
	struct ccall *cc;

	c->ccfg.keepalive_ms = 20;
	c->ccfg.keepalive_timeout_ms = 50;
	c->ccfg.connect_timeout_ms = 0;
	ctx_connect_silent(c);
	/* A handshake without a server: an empty SETTINGS frame. */
	{
		static const uint8_t settings[9] = { 0, 0, 0, 4, 0, 0, 0, 0, 0 };

		bufferevent_write(c->peer, settings, sizeof(settings));
	}
	cc = ctx_open(c, "/t.S/Chat", 0);
	assert_true(run_until(c, is_down, 2000));
	assert_string_equal(c->down_reason, "keepalive PING not answered");
	assert_int_equal(cc->status, GRPC_STATUS_UNAVAILABLE);
	assert_int_equal(grpc_client_stats(c->cl)->pings_sent, 1);
}

static void
test_free_with_calls(void **state)
{
	struct ctx *c = *state;
	struct ccall *cc;

	ctx_connect(c);
	cc = ctx_open(c, "/t.S/Chat", 0);
	assert_int_equal(grpc_client_call_send(cc->call, "x", 1), 0);
	assert_true(run_until(c, is_held, 2000));
	grpc_client_free(c->cl);
	c->cl = NULL;
	assert_int_equal(cc->status, GRPC_STATUS_CANCELLED);
	assert_true(run_until(c, never, 50) == 0);
	assert_int_equal(srv_closed[GRPC_STATUS_CANCELLED], 1);
	assert_int_equal(c->down, 0);
}


/* ---- a fake server (raw nghttp2) for replies ours never sends ---- */

struct fstream {
	int32_t id;
	int ended;                 /* the client half-closed */
	const uint8_t *body;
	size_t blen;
	const nghttp2_nv *trailers;
	size_t ntrailers;
};

struct fsrv {
	nghttp2_session *h2;
	struct bufferevent *bev;
	struct fstream streams[8];
	int nstreams;
};

static struct fsrv fs;

static struct fstream *
fs_stream(int32_t id)
{
	for (int i = 0; i < fs.nstreams; i++)
		if (fs.streams[i].id == id)
			return &fs.streams[i];
	return NULL;
}

static int
fs_on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame,
    void *user_data)
{
	(void)h2;
	(void)user_data;
	if (frame->hd.type == NGHTTP2_HEADERS && fs_stream(frame->hd.stream_id)
	    == NULL && fs.nstreams < 8)
		fs.streams[fs.nstreams++].id = frame->hd.stream_id;
	return 0;
}

static int
fs_on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame,
    void *user_data)
{
	struct fstream *st = fs_stream(frame->hd.stream_id);

	(void)h2;
	(void)user_data;
	if (st != NULL && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		st->ended = 1;
	return 0;
}

static ssize_t
fs_read_cb(nghttp2_session *h2, int32_t stream_id, uint8_t *buf,
    size_t length, uint32_t *data_flags, nghttp2_data_source *source,
    void *user_data)
{
	struct fstream *st = source->ptr;
	size_t n = st->blen < length ? st->blen : length;

	(void)user_data;
	memcpy(buf, st->body, n);
	st->body += n;
	st->blen -= n;
	if (st->blen == 0) {
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
		if (st->trailers != NULL) {
			*data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			nghttp2_submit_trailer(h2, stream_id, st->trailers,
			    st->ntrailers);
		}
	}
	return (ssize_t)n;
}

static void
fs_flush(void)
{
	const uint8_t *data;
	ssize_t n;

	while ((n = nghttp2_session_mem_send(fs.h2, &data)) > 0)
		bufferevent_write(fs.bev, data, (size_t)n);
}

static void
fs_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);

	(void)arg;
	assert_int_equal(nghttp2_session_mem_recv(fs.h2,
	    evbuffer_pullup(in, -1), len), (ssize_t)len);
	evbuffer_drain(in, len);
	fs_flush();
}

static void fs_setup(struct bufferevent *bev);

static void
ctx_connect_fake(struct ctx *c)
{
	struct bufferevent *pair[2];

	assert_int_equal(bufferevent_pair_new(c->base, 0, pair), 0);
	c->peer = pair[0];
	fs_setup(pair[0]);
	assert_non_null(c->cl = grpc_client_adopt(c->base, pair[1], "test",
	    &c->ccfg, c_down, c));
}

static void
fs_free(void)
{
	nghttp2_session_del(fs.h2);
	memset(&fs, 0, sizeof(fs));
}

static void fs_goaway_pings(void);
static int fs_one_stream(struct ctx *c);

static int
fs_one_ended(struct ctx *c)
{
	(void)c;
	return fs.nstreams >= 1 && fs.streams[0].ended;
}

static int
fs_two_ended(struct ctx *c)
{
	(void)c;
	return fs.nstreams >= 2 && fs.streams[1].ended;
}

#define NV(n, v) { (uint8_t *)(uintptr_t)(n), (uint8_t *)(uintptr_t)(v), \
	sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE }

static const nghttp2_nv hdr_ok[] = {
	NV(":status", "200"), NV("content-type", "application/grpc"),
};
static const nghttp2_nv trl_ok[] = { NV("grpc-status", "0") };

/*
 * Answer the first stream: headers (END_STREAM when no body and no
 * trailers), then body and trailers. Returns the call's final state.
 */
static struct ccall *
fs_reply(struct ctx *c, const nghttp2_nv *hdrs, size_t nhdrs,
    const void *body, size_t blen, const nghttp2_nv *trl, size_t ntrl)
{
	struct ccall *cc = ctx_unary(c, "/t.S/Fake", "q", 0);
	struct fstream *st;

	assert_true(run_until(c, fs_one_ended, 2000));
	st = &fs.streams[0];
	st->body = body;
	st->blen = blen;
	st->trailers = trl;
	st->ntrailers = ntrl;
	if (body == NULL && trl == NULL) {
		assert_int_equal(nghttp2_submit_headers(fs.h2,
		    NGHTTP2_FLAG_END_STREAM, st->id, NULL, hdrs, nhdrs, NULL),
		    0);
	} else {
		nghttp2_data_provider prd = { .source.ptr = st,
		    .read_callback = fs_read_cb };

		assert_int_equal(nghttp2_submit_response(fs.h2, st->id, hdrs,
		    nhdrs, &prd), 0);
	}
	fs_flush();
	assert_true(run_until(c, all_closed, 2000));
	return cc;
}

static void
test_fake_http_error(void **state)
{
	struct ctx *c = *state;
	static const nghttp2_nv h[] = { NV(":status", "503") };
	struct ccall *cc;

	ctx_connect_fake(c);
	cc = fs_reply(c, h, 1, NULL, 0, NULL, 0);
	assert_int_equal(cc->status, GRPC_STATUS_UNAVAILABLE);
	assert_string_equal(cc->message, "HTTP status 503");
	fs_free();
}

static void
test_fake_bad_content_type(void **state)
{
	struct ctx *c = *state;
	static const nghttp2_nv h[] = {
		NV(":status", "200"), NV("content-type", "text/html"),
	};
	struct ccall *cc;

	ctx_connect_fake(c);
	cc = fs_reply(c, h, 2, "<html>", 6, trl_ok, 1);
	assert_int_equal(cc->status, GRPC_STATUS_UNKNOWN);
	assert_string_equal(cc->message,
	    "reply content-type is not application/grpc");
	assert_int_equal(cc->nmsg, 0);
	fs_free();
}

static void
test_fake_no_status(void **state)
{
	struct ctx *c = *state;
	static const uint8_t body[] = { 0, 0, 0, 0, 2, 'h', 'i' };
	struct ccall *cc;

	ctx_connect_fake(c);
	cc = fs_reply(c, hdr_ok, 2, body, sizeof(body), NULL, 0);
	assert_int_equal(cc->status, GRPC_STATUS_INTERNAL);
	assert_string_equal(cc->message, "reply without grpc-status");
	assert_int_equal(cc->nmsg, 1);
	assert_string_equal(cc->last, "hi");
	fs_free();
}

/* Custom metadata in headers and trailers, read up to close(). */
static void
test_fake_metadata(void **state)
{
	struct ctx *c = *state;
	static const nghttp2_nv h[] = {
		NV(":status", "200"), NV("content-type", "application/grpc+proto"),
		NV("x-h", "1"),
	};
	static const nghttp2_nv t[] = {
		NV("grpc-status", "0"), NV("x-t", "two"),
	};
	static const uint8_t body[] = { 0, 0, 0, 0, 1, 'm' };
	struct ccall *cc;

	ctx_connect_fake(c);
	cc = fs_reply(c, h, 3, body, sizeof(body), t, 2);
	assert_int_equal(cc->status, GRPC_STATUS_OK);
	assert_int_equal(cc->headers, 1);
	assert_string_equal(cc->ct, "application/grpc+proto");
	assert_string_equal(cc->trailer, "two");
	assert_string_equal(cc->last, "m");
	fs_free();
}

static void
test_fake_cut_message(void **state)
{
	struct ctx *c = *state;
	static const uint8_t body[] = { 0, 0, 0, 0, 9, 'h', 'i' };
	struct ccall *cc;

	ctx_connect_fake(c);
	cc = fs_reply(c, hdr_ok, 2, body, sizeof(body), trl_ok, 1);
	assert_int_equal(cc->status, GRPC_STATUS_INTERNAL);
	assert_string_equal(cc->message, "reply ended inside a message");
	assert_int_equal(cc->nmsg, 0);
	fs_free();
}

static void
test_fake_compressed(void **state)
{
	struct ctx *c = *state;
	static const uint8_t body[] = { 1, 0, 0, 0, 2, 'h', 'i' };
	struct ccall *cc;

	ctx_connect_fake(c);
	cc = fs_reply(c, hdr_ok, 2, body, sizeof(body), trl_ok, 1);
	assert_int_equal(cc->status, GRPC_STATUS_INTERNAL);
	assert_int_equal(cc->nmsg, 0);
	fs_free();
}

static void
test_fake_bad_status(void **state)
{
	struct ctx *c = *state;
	static const nghttp2_nv h[] = {
		NV(":status", "200"), NV("content-type", "application/grpc"),
		NV("grpc-status", "x7"), NV("grpc-message", "a%20b%zz"),
	};
	struct ccall *cc;

	ctx_connect_fake(c);
	cc = fs_reply(c, h, 4, NULL, 0, NULL, 0);
	assert_int_equal(cc->status, GRPC_STATUS_UNKNOWN);
	assert_string_equal(cc->message, "a b%zz");
	fs_free();
}

static void
test_fake_reset(void **state)
{
	struct ctx *c = *state;
	static const struct {
		uint32_t code;
		int status;
	} cases[] = {
		{ NGHTTP2_REFUSED_STREAM, GRPC_STATUS_UNAVAILABLE },
		{ NGHTTP2_ENHANCE_YOUR_CALM, GRPC_STATUS_RESOURCE_EXHAUSTED },
		{ NGHTTP2_CANCEL, GRPC_STATUS_CANCELLED },
		{ NGHTTP2_INTERNAL_ERROR, GRPC_STATUS_INTERNAL },
	};

	ctx_connect_fake(c);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ccall *cc = ctx_unary(c, "/t.S/Fake", "q", 0);

		assert_true(run_until(c, fs_one_ended, 2000));
		assert_int_equal(nghttp2_submit_rst_stream(fs.h2,
		    NGHTTP2_FLAG_NONE, fs.streams[0].id, cases[i].code), 0);
		fs_flush();
		assert_true(run_until(c, all_closed, 2000));
		assert_int_equal(cc->status, cases[i].status);
		assert_non_null(strstr(cc->message, "stream reset by the server"));
		fs.nstreams = 0;
	}
	assert_int_equal(c->down, 0);
	fs_free();
}

/*
 * GOAWAY naming the first stream as the last processed: the second call
 * fails UNAVAILABLE at once (retry elsewhere), the first still completes,
 * then the client goes down.
 */
static void
test_fake_goaway(void **state)
{
	struct ctx *c = *state;
	static const uint8_t body[] = { 0, 0, 0, 0, 2, 'o', 'k' };
	nghttp2_data_provider prd;
	struct ccall *a, *b;

	ctx_connect_fake(c);
	a = ctx_unary(c, "/t.S/Fake", "a", 0);
	b = ctx_unary(c, "/t.S/Fake", "b", 0);
	assert_true(run_until(c, fs_two_ended, 2000));
	assert_int_equal(nghttp2_submit_goaway(fs.h2, NGHTTP2_FLAG_NONE,
	    fs.streams[0].id, NGHTTP2_NO_ERROR, NULL, 0), 0);
	fs_flush();
	assert_true(run_until(c, never, 50) == 0);
	assert_int_equal(b->closed, 1);
	assert_int_equal(b->status, GRPC_STATUS_UNAVAILABLE);
	assert_int_equal(a->closed, 0);
	assert_false(grpc_client_usable(c->cl));
	errno = 0;
	assert_null(grpc_client_call_open(c->cl, "/t.S/Fake", 0, &chandler,
	    NULL));
	assert_int_equal(errno, ENOTCONN);
	assert_int_equal(c->down, 0);

	fs.streams[0].body = body;
	fs.streams[0].blen = sizeof(body);
	fs.streams[0].trailers = trl_ok;
	fs.streams[0].ntrailers = 1;
	prd.source.ptr = &fs.streams[0];
	prd.read_callback = fs_read_cb;
	assert_int_equal(nghttp2_submit_response(fs.h2, fs.streams[0].id,
	    hdr_ok, 2, &prd), 0);
	fs_flush();
	assert_true(run_until(c, all_closed, 2000));
	assert_int_equal(a->status, GRPC_STATUS_OK);
	assert_string_equal(a->last, "ok");
	assert_true(run_until(c, is_down, 2000));
	assert_string_equal(c->down_reason, "GOAWAY and no calls left");
	/* A plain GOAWAY is no complaint about our PINGs. */
	assert_false(grpc_client_too_many_pings(c->cl));
	fs_free();
}

static void
test_fake_too_many_pings(void **state)
{
	struct ctx *c = *state;
	struct ccall *cc;

	ctx_connect_fake(c);
	cc = ctx_open(c, "/t.S/Fake", 0);
	assert_true(run_until(c, fs_one_stream, 2000));
	fs_goaway_pings();
	assert_true(run_until(c, is_down, 2000));
	assert_int_equal(cc->status, GRPC_STATUS_UNAVAILABLE);
	assert_true(grpc_client_too_many_pings(c->cl));
	fs_free();
}

/* A small window: the server can send only as fast as we consume. */
static void
test_fake_flow_control(void **state)
{
	struct ctx *c = *state;
	static uint8_t body[5 * (GRPC_FRAME_HEADER_LEN + 30000)];
	struct ccall *cc;

	for (int i = 0; i < 5; i++)
		grpc_frame_header(body + i * (GRPC_FRAME_HEADER_LEN + 30000),
		    0, 30000);
	c->ccfg.stream_window = 65535;
	c->ccfg.conn_window = 65535;
	ctx_connect_fake(c);
	cc = fs_reply(c, hdr_ok, 2, body, sizeof(body), trl_ok, 1);
	assert_int_equal(cc->status, GRPC_STATUS_OK);
	assert_int_equal(cc->nmsg, 5);
	assert_int_equal(cc->last_len, 30000);
	/*
	 * 150 KB through a 64 KiB window: it was given back as we went, up
	 * to what nghttp2 batches into its next WINDOW_UPDATE (half).
	 */
	assert_true(sizeof(body) > 2 * 65535);
	assert_true(nghttp2_session_get_remote_window_size(fs.h2) >=
	    65535 / 2);
	fs_free();
}


/* ---- reconnecting ---- */

struct rctx {
	struct ctx *c;
	int attempts;
	int ndown;
	int64_t next_ms[16];
	char reason[16][96];
};

static void
r_attempt(struct grpc_reconnect *r, struct grpc_client *cl, void *arg)
{
	struct rctx *rc = arg;
	struct ccall *cc;

	(void)r;
	rc->attempts++;
	assert_true(rc->c->ncalls < NCALLS);
	cc = &rc->c->calls[rc->c->ncalls++];
	memset(cc, 0, sizeof(*cc));
	assert_non_null(cc->call = grpc_client_call_open(cl, "/t.S/Chat", 0,
	    &chandler, cc));
	assert_int_equal(grpc_client_call_send(cc->call, "hi", 2), 0);
}

static void
r_down(struct grpc_reconnect *r, const char *reason, int64_t next_ms,
    void *arg)
{
	struct rctx *rc = arg;

	assert_null(grpc_reconnect_client(r));
	if (rc->ndown < 16) {
		rc->next_ms[rc->ndown] = next_ms;
		snprintf(rc->reason[rc->ndown], sizeof(rc->reason[0]), "%s",
		    reason);
	}
	rc->ndown++;
}

static struct rctx *cur_r;

static int
r_last_answered(struct ctx *c)
{
	return c->ncalls > 0 && c->calls[c->ncalls - 1].nmsg == 1;
}

static int
r_four_down(struct ctx *c)
{
	(void)c;
	return cur_r->ndown >= 4;
}

static void
r_listen(struct ctx *c, int *port)
{
	struct grpc_method m = {
		.path = "/t.S/Chat",
		.kind = GRPC_METHOD_BIDI_STREAMING,
		.handler = &chat_h,
	};

	assert_non_null(c->srv = grpc_server_new(c->base, &c->scfg));
	assert_int_equal(grpc_server_add_method(c->srv, &m), 0);
	assert_int_equal(grpc_server_listen(c->srv, "127.0.0.1", *port, NULL,
	    port), 0);
}


/* A line (fmt) is on the page text. */
static void
r_expect(const char *text, const char *fmt, ...)
{
	char want[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	if (strstr(text, want) == NULL)
		fail_msg("not on the page: %s\n%s", want, text);
}

/* The page has the counts of every client so far, and promtool likes it. */
static void
r_check_metrics(struct grpc_reconnect *r, int port, int ncalls)
{
	struct evbuffer *out = evbuffer_new();
	char *text;
	size_t len;
	FILE *f;
	int attempts = (int)grpc_reconnect_attempts(r);

	assert_non_null(out);
	grpc_reconnect_write_metrics(&r, 1, out);
	len = evbuffer_get_length(out);
	text = (char *)evbuffer_pullup(out, -1);
	text = strndup(text, len);
	assert_non_null(text);
	r_expect(text, "\ntroika_grpc_client_connected{target=\"127.0.0.1:%d\"} 1\n",
	    port);
	r_expect(text, "\ntroika_grpc_client_connect_attempts_total"
	    "{target=\"127.0.0.1:%d\"} %d\n", port, attempts);
	r_expect(text, "\ntroika_grpc_client_calls_started_total"
	    "{target=\"127.0.0.1:%d\"} %d\n", port, ncalls);
	r_expect(text, "\ntroika_grpc_client_calls_handled_total"
	    "{target=\"127.0.0.1:%d\",grpc_code=\"UNAVAILABLE\"} %d\n", port,
	    ncalls - 1);
	r_expect(text, "\ntroika_grpc_client_calls_handled_total"
	    "{target=\"127.0.0.1:%d\",grpc_code=\"OK\"} %d\n", port, 0);
	/* The first call's reply, and the last one's. */
	r_expect(text, "\ntroika_grpc_client_msg_received_total"
	    "{target=\"127.0.0.1:%d\"} %d\n", port, 2);
	r_expect(text, "\ntroika_grpc_client_msg_sent_total"
	    "{target=\"127.0.0.1:%d\"} %d\n", port, ncalls);
	if (access("/usr/bin/promtool", X_OK) == 0) {
		assert_non_null(f = popen("/usr/bin/promtool check metrics "
		    ">/dev/null 2>&1", "w"));
		fwrite(text, 1, len, f);
		assert_int_equal(pclose(f), 0);
	}
	free(text);
	evbuffer_free(out);
}

static void
test_reconnect(void **state)
{
	struct ctx *c = *state;
	struct rctx rc = { .c = c };
	struct grpc_backoff b;
	struct grpc_reconnect *r;
	int port = 0;

	cur_r = &rc;
	r_listen(c, &port);
	grpc_backoff_init(&b, 1);
	b.initial_ms = 20;
	b.max_ms = 100;
	b.multiplier = 2;
	b.jitter = 0;
	assert_non_null(r = grpc_reconnect_new(c->base, "127.0.0.1", port,
	    NULL, NULL, NULL, &b, r_attempt, r_down, &rc));
	/* The first attempt comes from the loop. */
	assert_int_equal(rc.attempts, 0);
	assert_true(run_until(c, r_last_answered, 2000));
	assert_int_equal(rc.attempts, 1);
	assert_non_null(grpc_reconnect_client(r));
	assert_true(grpc_client_handshaken(grpc_reconnect_client(r)));

	/* The server goes: the call ends, attempts back off. */
	grpc_server_free(c->srv);
	c->srv = NULL;
	assert_true(run_until(c, r_four_down, 3000));
	assert_int_equal(c->calls[0].status, GRPC_STATUS_UNAVAILABLE);
	assert_string_equal(rc.reason[0], "connection closed by the server");
	assert_int_equal(rc.next_ms[0], 20);
	assert_string_equal(rc.reason[1], "Connection refused");
	assert_int_equal(rc.next_ms[1], 40);
	assert_int_equal(rc.next_ms[2], 80);
	assert_int_equal(rc.next_ms[3], 100);
	assert_int_equal(c->calls[1].status, GRPC_STATUS_UNAVAILABLE);
	assert_int_equal((int)grpc_reconnect_attempts(r), 4);

	/* Back on the same port: the next attempt's call is answered. */
	r_listen(c, &port);
	assert_true(run_until(c, r_last_answered, 2000));
	assert_true(grpc_client_handshaken(grpc_reconnect_client(r)));
	r_check_metrics(r, port, c->ncalls);
	grpc_reconnect_free(r);
	assert_int_equal(c->calls[c->ncalls - 1].status, GRPC_STATUS_CANCELLED);
}


static void
fs_setup(struct bufferevent *bev)
{
	nghttp2_session_callbacks *cbs;

	memset(&fs, 0, sizeof(fs));
	assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
	    fs_on_begin_headers);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
	    fs_on_frame_recv);
	assert_int_equal(nghttp2_session_server_new(&fs.h2, cbs, NULL), 0);
	nghttp2_session_callbacks_del(cbs);
	assert_int_equal(nghttp2_submit_settings(fs.h2, NGHTTP2_FLAG_NONE,
	    NULL, 0), 0);
	fs.bev = bev;
	bufferevent_setcb(fs.bev, fs_read, NULL, NULL, NULL);
	bufferevent_enable(fs.bev, EV_READ | EV_WRITE);
	fs_flush();
}

static struct ctx *accept_ctx;

static void
fs_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct bufferevent *bev;

	(void)lev;
	(void)sa;
	(void)salen;
	(void)arg;
	assert_null(accept_ctx->peer);
	assert_non_null(bev = bufferevent_socket_new(accept_ctx->base, fd,
	    BEV_OPT_CLOSE_ON_FREE));
	accept_ctx->peer = bev;
	fs_setup(bev);
}

static void
fs_goaway_pings(void)
{
	assert_int_equal(nghttp2_submit_goaway(fs.h2, NGHTTP2_FLAG_NONE, 0,
	    NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)"too_many_pings", 14),
	    0);
	fs_flush();
}

static int
fs_one_stream(struct ctx *c)
{
	(void)c;
	return fs.nstreams >= 1;
}

static int
r_one_down(struct ctx *c)
{
	(void)c;
	return cur_r->ndown >= 1;
}

/*
 * A server that finds our PINGs too many: the call is UNAVAILABLE, and
 * the reconnector's next client PINGs half as often.
 */
static void
test_reconnect_too_many_pings(void **state)
{
	struct ctx *c = *state;
	struct rctx rc = { .c = c };
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	struct evconnlistener *lev;
	struct grpc_client_config cfg;
	struct grpc_backoff b;
	struct grpc_reconnect *r;

	cur_r = &rc;
	accept_ctx = c;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_non_null(lev = evconnlistener_new_bind(c->base, fs_accept_cb,
	    NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4,
	    (struct sockaddr *)&sin, sizeof(sin)));
	assert_int_equal(getsockname(evconnlistener_get_fd(lev),
	    (struct sockaddr *)&sin, &slen), 0);
	grpc_client_config_default(&cfg);
	cfg.keepalive_ms = 1000;
	grpc_backoff_init(&b, 1);
	b.initial_ms = 60000; /* no second attempt during the test */
	assert_non_null(r = grpc_reconnect_new(c->base, "127.0.0.1",
	    ntohs(sin.sin_port), NULL, NULL, &cfg, &b, r_attempt, r_down,
	    &rc));
	assert_true(run_until(c, fs_one_stream, 2000));
	assert_int_equal(grpc_reconnect_keepalive_ms(r), 1000);
	fs_goaway_pings();
	assert_true(run_until(c, r_one_down, 2000));
	assert_int_equal(c->calls[0].status, GRPC_STATUS_UNAVAILABLE);
	assert_string_equal(rc.reason[0], "GOAWAY and no calls left");
	assert_int_equal(grpc_reconnect_keepalive_ms(r), 2000);
	assert_true(rc.next_ms[0] >= 48000);
	grpc_reconnect_free(r);
	evconnlistener_free(lev);
	fs_free();
}


static void
drain_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	(void)arg;
	evbuffer_drain(in, evbuffer_get_length(in));
}

#define NPINGS 60000

static int
all_pings_read(struct ctx *c)
{
	return grpc_client_stats(c->cl)->bytes_received == 9 + NPINGS * 17;
}

/*
 * A server that floods PINGs and reads nothing back: the client reads
 * only while its acks can go out, holds a bounded output, stays up, and
 * catches up once the server reads.
 */
static void
test_ping_flood_not_reading(void **state)
{
	struct ctx *c = *state;
	static const uint8_t settings[9] = { 0, 0, 0, 4, 0, 0, 0, 0, 0 };
	static const uint8_t ping[17] = { 0, 0, 8, 6, 0, 0, 0, 0, 0 };
	const struct grpc_client_stats *st;

	c->ccfg.connect_timeout_ms = 0;
	c->ccfg.keepalive_ms = 0;
	ctx_connect_silent(c);
	bufferevent_write(c->peer, settings, sizeof(settings));
	for (int i = 0; i < NPINGS; i++)
		bufferevent_write(c->peer, ping, sizeof(ping));
	assert_true(run_until(c, never, 200) == 0);
	st = grpc_client_stats(c->cl);
	assert_int_equal(c->down, 0);
	assert_true(grpc_client_usable(c->cl));
	/* 17-byte acks: at most the 64 KiB mark plus one batch's worth. */
	assert_true(st->bytes_sent < 64 * 1024 + 16 * 1024);
	assert_true(st->bytes_received < NPINGS * 17 / 4);

	bufferevent_setcb(c->peer, drain_cb, NULL, NULL, NULL);
	bufferevent_enable(c->peer, EV_READ);
	assert_true(run_until(c, all_pings_read, 5000));
	assert_int_equal(c->down, 0);
}


/*
 * A TLS server that never answers the ClientHello (a socket nobody
 * accepts): the call's deadline ends it on time, not the connect timeout.
 */
static void
test_deadline_before_connected(void **state)
{
	struct ctx *c = *state;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	struct ccall *cc;
	struct timespec t0, t1;
	void *tls;
	int fd;

	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	assert_non_null(tls = grpc_tls_client_ctx(NULL, NULL, NULL));
	c->ccfg.connect_timeout_ms = 5000;
	assert_non_null(c->cl = grpc_client_connect(c->base, "127.0.0.1",
	    ntohs(sin.sin_port), tls, NULL, &c->ccfg, c_down, c));
	grpc_tls_ctx_free(tls); /* the client holds its own reference */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cc = ctx_unary(c, "/t.S/Unary", "x", 100);
	assert_true(run_until(c, all_closed, 2000));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(cc->status, GRPC_STATUS_DEADLINE_EXCEEDED);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000 < 1000);
	assert_int_equal(c->down, 0);
	/* The connection itself still waits. */
	assert_false(grpc_client_handshaken(c->cl));
	grpc_client_free(c->cl);
	c->cl = NULL;
	close(fd);
}


/* Our own GOAWAY: no new calls, the open one finishes, then down(). */
static void
test_shutdown(void **state)
{
	struct ctx *c = *state;
	struct ccall *cc;

	ctx_connect(c);
	cc = ctx_open(c, "/t.S/Chat", 0);
	assert_int_equal(grpc_client_call_send(cc->call, "x", 1), 0);
	assert_true(run_until(c, is_held, 2000));
	grpc_client_shutdown(c->cl);
	grpc_client_shutdown(c->cl); /* once is enough */
	assert_false(grpc_client_usable(c->cl));
	errno = 0;
	assert_null(grpc_client_call_open(c->cl, "/t.S/Chat", 0, &chandler,
	    NULL));
	assert_int_equal(errno, ENOTCONN);
	/* The open call goes on. */
	assert_int_equal(grpc_client_call_send(cc->call, "y", 1), 0);
	assert_int_equal(grpc_client_call_half_close(cc->call), 0);
	assert_true(run_until(c, all_closed, 2000));
	assert_int_equal(cc->status, GRPC_STATUS_OK);
	assert_string_equal(cc->all, "x,y,");
	assert_true(run_until(c, is_down, 2000));
	assert_string_equal(c->down_reason, "GOAWAY and no calls left");
}


static int
first_closed(struct ctx *c)
{
	return c->calls[0].closed;
}

/* Names resolved by evdns, off the loop's back: one that exists, one not. */
static void
test_connect_dns(void **state)
{
	struct ctx *c = *state;
	struct evdns_base *dns;
	struct grpc_method m = {
		.path = "/t.S/Unary",
		.kind = GRPC_METHOD_UNARY,
		.handler = &unary_h,
	};
	struct ccall *cc;
	int port = 0;

	assert_non_null(c->srv = grpc_server_new(c->base, &c->scfg));
	assert_int_equal(grpc_server_add_method(c->srv, &m), 0);
	assert_int_equal(grpc_server_listen(c->srv, "127.0.0.1", 0, NULL,
	    &port), 0);
	/*
	 * /etc/hosts, and a name server on a loopback port where nobody
	 * answers: nothing leaves the machine.
	 */
	assert_non_null(dns = evdns_base_new(c->base, 0));
	assert_int_equal(evdns_base_nameserver_ip_add(dns, "127.0.0.1:9"), 0);
	assert_int_equal(evdns_base_load_hosts(dns, "/etc/hosts"), 0);
	evdns_base_set_option(dns, "timeout:", "0.2");
	evdns_base_set_option(dns, "attempts:", "1");
	c->ccfg.dns_base = dns;
	assert_non_null(c->cl = grpc_client_connect(c->base, "localhost", port,
	    NULL, NULL, &c->ccfg, c_down, c));
	cc = ctx_unary(c, "/t.S/Unary", "by name", 1000);
	assert_true(run_until(c, first_closed, 2000));
	assert_int_equal(cc->status, GRPC_STATUS_OK);
	assert_string_equal(cc->last, "by name");
	grpc_client_free(c->cl);

	assert_non_null(c->cl = grpc_client_connect(c->base, "no-such.invalid",
	    port, NULL, NULL, &c->ccfg, c_down, c));
	cc = ctx_unary(c, "/t.S/Unary", "x", 0);
	assert_true(run_until(c, is_down, 3000));
	assert_int_equal(cc->status, GRPC_STATUS_UNAVAILABLE);
	assert_non_null(strstr(c->down_reason, "cannot resolve"));
	grpc_client_free(c->cl);
	c->cl = NULL;
	evdns_base_free(dns, 0);
}

static void
test_backoff(void **state)
{
	struct grpc_backoff b;
	double base = 1000;

	(void)state;
	grpc_backoff_init(&b, 42);
	for (int i = 0; i < 20; i++) {
		int64_t d = grpc_backoff_next(&b);

		assert_true(d >= (int64_t)(base * 0.8) - 1);
		assert_true(d <= (int64_t)(base * 1.2) + 1);
		base *= 1.6;
		if (base > 120000)
			base = 120000;
	}
	grpc_backoff_reset(&b);
	assert_true(grpc_backoff_next(&b) <= 1200);

	/* The jitter spreads: two seeds do not march in step. */
	{
		struct grpc_backoff x, y;
		int differ = 0;

		grpc_backoff_init(&x, 1);
		grpc_backoff_init(&y, 2);
		for (int i = 0; i < 5; i++)
			differ += grpc_backoff_next(&x) != grpc_backoff_next(&y);
		assert_true(differ >= 4);
	}
	/* No jitter: exactly the sequence. */
	grpc_backoff_init(&b, 7);
	b.jitter = 0;
	b.max_ms = 3000;
	assert_int_equal(grpc_backoff_next(&b), 1000);
	assert_int_equal(grpc_backoff_next(&b), 1600);
	assert_int_equal(grpc_backoff_next(&b), 2560);
	assert_int_equal(grpc_backoff_next(&b), 3000);
	assert_int_equal(grpc_backoff_next(&b), 3000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_method, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_streaming, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_client_streaming, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bidi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_goaway, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_lost, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_connect_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keepalive_unanswered, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_with_calls, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fake_http_error, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fake_bad_content_type, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fake_no_status, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fake_cut_message, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fake_compressed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fake_bad_status, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fake_reset, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fake_goaway, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fake_too_many_pings, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fake_metadata, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fake_flow_control, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_too_many_pings,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_flood_not_reading,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_before_connected,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_dns, setup, teardown),
		cmocka_unit_test(test_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
