/*
 * The gRPC server (core/lib/grpc_server.c, grpc_conn.c, grpc_call.c)
 * against an nghttp2 client written here, over a libevent bufferevent
 * pair (one test over a real socket). Test methods record what their
 * handlers saw; each test checks statuses, headers, messages, handler
 * calls and server counters, then frees everything on a fresh event base
 * (ASan finds what is left).
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
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "grpc_frame.h"
#include "grpc_server.h"
#include "grpc_status.h"

#define NSTREAMS 8

/* ---- what handlers saw ---- */

struct hcall {
	int used;
	struct grpc_call *call;
	int closed;      /* close() calls: must end at 1 */
	int close_status;
	int nmsg;
	int half_closed;
	char last[64];
	int send_ret;    /* last grpc_call_send() result of interest */
	int finish_ret;
	int64_t remaining_ms;
	char md[64];
};

static struct hcall hcalls[NSTREAMS * 2];
static int nstarted;

static struct hcall *
hcall_of(struct grpc_call *call)
{
	return grpc_call_data(call);
}

static int
t_start(struct grpc_call *call, void *arg)
{
	struct hcall *h;
	const char *md;

	(void)arg;
	assert_true(nstarted < (int)(sizeof(hcalls) / sizeof(hcalls[0])));
	h = &hcalls[nstarted++];
	memset(h, 0, sizeof(*h));
	h->used = 1;
	h->call = call;
	h->send_ret = 1;
	h->finish_ret = 1;
	h->remaining_ms = grpc_call_remaining_ms(call);
	if ((md = grpc_call_metadata(call, "x-test")) != NULL)
		snprintf(h->md, sizeof(h->md), "%s", md);
	grpc_call_set_data(call, h);
	return 0;
}

static void
t_close(struct grpc_call *call, int status)
{
	struct hcall *h = hcall_of(call);

	/* Refuse's start() failed before it made any state. */
	if (h == NULL)
		return;
	h->closed++;
	h->close_status = status;
	h->call = NULL;
}

static void
t_record(struct hcall *h, const uint8_t *msg, size_t len)
{
	h->nmsg++;
	snprintf(h->last, sizeof(h->last), "%.*s", (int)len, (const char *)msg);
}

/* Unary: the message back, or what the message asks for. */
static void
t_unary_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	struct hcall *h = hcall_of(call);

	t_record(h, msg, len);
	if (strcmp(h->last, "fail") == 0) {
		h->finish_ret = grpc_call_finish(call,
		    GRPC_STATUS_INVALID_ARGUMENT, "bad \n100%");
		/* A second finish is refused. */
		assert_int_equal(grpc_call_finish(call, GRPC_STATUS_OK, NULL),
		    -EINVAL);
		assert_int_equal(grpc_call_send(call, "x", 1), -EINVAL);
		return;
	}
	if (strcmp(h->last, "none") == 0) {
		h->finish_ret = grpc_call_finish(call, GRPC_STATUS_OK, NULL);
		return;
	}
	if (strcmp(h->last, "two") == 0) {
		assert_int_equal(grpc_call_send(call, "one", 3), 0);
		/* A unary response has exactly one message. */
		h->send_ret = grpc_call_send(call, "two", 3);
		h->finish_ret = grpc_call_finish(call, GRPC_STATUS_OK, NULL);
		return;
	}
	if (strcmp(h->last, "drainless") == 0) {
		/* A handler without drained() cannot ask for it. */
		h->send_ret = grpc_call_notify_drained(call);
		h->finish_ret = grpc_call_send(call, "d", 1);
		grpc_call_finish(call, GRPC_STATUS_OK, NULL);
		return;
	}
	if (strcmp(h->last, "big") == 0) {
		static uint8_t big[2048];

		h->send_ret = grpc_call_send(call, big, sizeof(big));
		h->finish_ret = grpc_call_finish(call, GRPC_STATUS_OK, NULL);
		return;
	}
	h->send_ret = grpc_call_send(call, msg, len);
	h->finish_ret = grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static void
t_half_close(struct grpc_call *call)
{
	struct hcall *h = hcall_of(call);

	h->half_closed++;
	if (grpc_call_finish(call, GRPC_STATUS_OK, "bye") != 0)
		h->finish_ret = -1;
}

/* Echo (bidi): each message back at once. */
static void
t_echo_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	struct hcall *h = hcall_of(call);

	t_record(h, msg, len);
	h->send_ret = grpc_call_send(call, msg, len);
}

/* Hold (bidi): keeps everything, answers nothing. */
static void
t_hold_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	t_record(hcall_of(call), msg, len);
}

/*
 * Flood (server streaming): 16 KiB messages until a send fails, or as
 * many as the request message says, leaving the call open.
 */
static void
t_flood_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	static uint8_t chunk[16 * 1024];
	struct hcall *h = hcall_of(call);
	int r, n = 0, max;

	t_record(h, msg, len);
	if ((max = atoi(h->last)) > 0) {
		while (n < max &&
		    (r = grpc_call_send(call, chunk, sizeof(chunk))) == 0)
			n++;
		h->nmsg = n;
		h->send_ret = r;
		return;
	}
	while ((r = grpc_call_send(call, chunk, sizeof(chunk))) == 0)
		n++;
	h->send_ret = r;
	h->nmsg = n;
	/* After the reset, the call refuses everything. */
	assert_int_equal(grpc_call_send(call, "x", 1), -ECANCELED);
	assert_int_equal(grpc_call_finish(call, GRPC_STATUS_OK, NULL),
	    -ECANCELED);
}

/*
 * Pace (server streaming): 64 messages of 16 KiB, sent while less than
 * 64 KiB wait, the rest from drained().
 */
#define PACE_TOTAL 64

static void
t_pace_more(struct grpc_call *call)
{
	static uint8_t chunk[16 * 1024];
	struct hcall *h = hcall_of(call);

	while (h->nmsg < PACE_TOTAL) {
		if ((h->send_ret = grpc_call_send(call, chunk,
		    sizeof(chunk))) != 0)
			return;
		h->nmsg++;
		assert_true(grpc_call_queued(call) <= 64 * 1024 + 16 * 1024 + 5);
		if (grpc_call_queued(call) >= 64 * 1024) {
			assert_int_equal(grpc_call_notify_drained(call), 0);
			return;
		}
	}
	h->finish_ret = grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static void
t_pace_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	(void)msg;
	(void)len;
	t_pace_more(call);
}

static void
t_pace_drained(struct grpc_call *call)
{
	hcall_of(call)->half_closed++; /* counts drained() calls here */
	t_pace_more(call);
}

static int
t_refuse_start(struct grpc_call *call, void *arg)
{
	(void)call;
	(void)arg;
	return -EPERM;
}

static int
t_deny_start(struct grpc_call *call, void *arg)
{
	t_start(call, arg);
	return grpc_call_finish(call, GRPC_STATUS_PERMISSION_DENIED, "no");
}

static const struct grpc_handler unary_handler = {
	.start = t_start,
	.message = t_unary_message,
	.close = t_close,
};
static const struct grpc_handler echo_handler = {
	.start = t_start,
	.message = t_echo_message,
	.half_close = t_half_close,
	.close = t_close,
};
static const struct grpc_handler hold_handler = {
	.start = t_start,
	.message = t_hold_message,
	.close = t_close,
};
static const struct grpc_handler flood_handler = {
	.start = t_start,
	.message = t_flood_message,
	.close = t_close,
};
static const struct grpc_handler pace_handler = {
	.start = t_start,
	.message = t_pace_message,
	.drained = t_pace_drained,
	.close = t_close,
};
static const struct grpc_handler refuse_handler = {
	.start = t_refuse_start,
	.message = t_hold_message,
	.close = t_close,
};
static const struct grpc_handler deny_handler = {
	.start = t_deny_start,
	.message = t_hold_message,
	.close = t_close,
};

/* ---- the test client ---- */

struct tstream {
	int32_t id;
	struct tclient *tc;
	struct evbuffer *out; /* framed messages to send */
	int eos;              /* end the stream once out is sent */
	struct evbuffer *in;  /* DATA received */
	char http_status[8];
	char grpc_status[8];
	char grpc_message[128];
	char accept_encoding[32];
	int nheaders_blocks;
	int closed;
	uint32_t error_code;
};

struct tclient {
	struct event_base *base;
	struct bufferevent *bev; /* client end */
	nghttp2_session *h2;
	struct tstream streams[NSTREAMS];
	int nstreams;
	int eof;
	int goaway;
	int32_t goaway_last;
	int pings;
	int no_read; /* stop reading the transport */
};

struct ctx {
	struct event_base *base;
	struct grpc_server *srv;
	struct grpc_server_config cfg;
	struct tclient tc;
	struct event *tick;
	int done_called;
};

static void tc_flush(struct tclient *tc);

static struct tstream *
tc_stream(struct tclient *tc, int32_t id)
{
	for (int i = 0; i < tc->nstreams; i++)
		if (tc->streams[i].id == id)
			return &tc->streams[i];
	return NULL;
}

static void
copy_hdr(char *dst, size_t dstlen, const uint8_t *v, size_t len)
{
	snprintf(dst, dstlen, "%.*s", (int)len, (const char *)v);
}

static int
tc_on_header(nghttp2_session *h2, const nghttp2_frame *frame,
    const uint8_t *name, size_t namelen, const uint8_t *value,
    size_t valuelen, uint8_t flags, void *user_data)
{
	struct tstream *s = tc_stream(user_data, frame->hd.stream_id);

	(void)h2;
	(void)flags;
	if (s == NULL)
		return 0;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0)
		copy_hdr(s->http_status, sizeof(s->http_status), value,
		    valuelen);
	else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
		copy_hdr(s->grpc_status, sizeof(s->grpc_status), value,
		    valuelen);
	else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0)
		copy_hdr(s->grpc_message, sizeof(s->grpc_message), value,
		    valuelen);
	else if (namelen == 20 && memcmp(name, "grpc-accept-encoding", 20) == 0)
		copy_hdr(s->accept_encoding, sizeof(s->accept_encoding), value,
		    valuelen);
	return 0;
}

static int
tc_on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame,
    void *user_data)
{
	struct tclient *tc = user_data;
	struct tstream *s;

	(void)h2;
	if (frame->hd.type == NGHTTP2_GOAWAY) {
		tc->goaway++;
		tc->goaway_last = frame->goaway.last_stream_id;
	} else if (frame->hd.type == NGHTTP2_PING &&
	    !(frame->hd.flags & NGHTTP2_FLAG_ACK))
		tc->pings++;
	else if (frame->hd.type == NGHTTP2_HEADERS &&
	    (s = tc_stream(tc, frame->hd.stream_id)) != NULL)
		s->nheaders_blocks++;
	return 0;
}

static int
tc_on_data(nghttp2_session *h2, uint8_t flags, int32_t stream_id,
    const uint8_t *data, size_t len, void *user_data)
{
	struct tstream *s = tc_stream(user_data, stream_id);

	(void)h2;
	(void)flags;
	if (s != NULL)
		evbuffer_add(s->in, data, len);
	return 0;
}

static int
tc_on_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code,
    void *user_data)
{
	struct tstream *s = tc_stream(user_data, stream_id);

	(void)h2;
	if (s != NULL) {
		s->closed = 1;
		s->error_code = error_code;
	}
	return 0;
}

static ssize_t
tc_read_cb(nghttp2_session *h2, int32_t stream_id, uint8_t *buf,
    size_t length, uint32_t *data_flags, nghttp2_data_source *source,
    void *user_data)
{
	struct tstream *s = source->ptr;
	int n;

	(void)h2;
	(void)stream_id;
	(void)user_data;
	n = evbuffer_remove(s->out, buf, length);
	if (evbuffer_get_length(s->out) == 0 && s->eos)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	else if (n == 0)
		return NGHTTP2_ERR_DEFERRED;
	return n;
}

static void
tc_transport_read_cb(struct bufferevent *bev, void *arg)
{
	struct tclient *tc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	ssize_t n;

	if (len == 0)
		return;
	n = nghttp2_session_mem_recv(tc->h2, evbuffer_pullup(in, -1), len);
	assert_true(n >= 0);
	evbuffer_drain(in, len);
	tc_flush(tc);
}

static void
tc_transport_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct tclient *tc = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		tc->eof = 1;
}

static void
tc_flush(struct tclient *tc)
{
	const uint8_t *data;
	ssize_t n;

	if (tc->eof || tc->h2 == NULL)
		return;
	while ((n = nghttp2_session_mem_send(tc->h2, &data)) > 0)
		bufferevent_write(tc->bev, data, (size_t)n);
}

/*
 * A client session on bev. window: the client's stream window; 0 means
 * "never give window back" (a peer that does not read at the HTTP/2 level).
 */
static void
tc_init(struct tclient *tc, struct event_base *base, struct bufferevent *bev,
    int consume)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;

	memset(tc, 0, sizeof(*tc));
	tc->base = base;
	tc->bev = bev;
	assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
	nghttp2_session_callbacks_set_on_header_callback(cbs, tc_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
	    tc_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
	    tc_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
	    tc_on_close);
	assert_int_equal(nghttp2_option_new(&opt), 0);
	if (!consume)
		nghttp2_option_set_no_auto_window_update(opt, 1);
	assert_int_equal(nghttp2_session_client_new2(&tc->h2, cbs, tc, opt),
	    0);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	assert_int_equal(nghttp2_submit_settings(tc->h2, NGHTTP2_FLAG_NONE,
	    NULL, 0), 0);
	bufferevent_setcb(bev, tc_transport_read_cb, NULL,
	    tc_transport_event_cb, tc);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	tc_flush(tc);
}

static void
tc_free(struct tclient *tc)
{
	for (int i = 0; i < tc->nstreams; i++) {
		evbuffer_free(tc->streams[i].out);
		evbuffer_free(tc->streams[i].in);
	}
	nghttp2_session_del(tc->h2);
	if (tc->bev != NULL)
		bufferevent_free(tc->bev);
	memset(tc, 0, sizeof(*tc));
}

static void
nv(nghttp2_nv *v, const char *name, const char *value)
{
	v->name = (uint8_t *)(uintptr_t)name;
	v->namelen = strlen(name);
	v->value = (uint8_t *)(uintptr_t)value;
	v->valuelen = strlen(value);
	v->flags = NGHTTP2_NV_FLAG_NONE;
}

/*
 * Start a request. extra: more header pairs (name, value, ..., NULL).
 * method/ctype NULL mean POST and application/grpc.
 */
static struct tstream *
tc_request_full(struct tclient *tc, const char *path, const char *method,
    const char *ctype, const char *const *extra)
{
	struct tstream *s;
	nghttp2_data_provider prd;
	nghttp2_nv v[16];
	size_t n = 0;

	assert_true(tc->nstreams < NSTREAMS);
	s = &tc->streams[tc->nstreams++];
	memset(s, 0, sizeof(*s));
	s->tc = tc;
	assert_non_null(s->out = evbuffer_new());
	assert_non_null(s->in = evbuffer_new());
	nv(&v[n++], ":method", method != NULL ? method : "POST");
	nv(&v[n++], ":scheme", "http");
	nv(&v[n++], ":authority", "test");
	nv(&v[n++], ":path", path);
	nv(&v[n++], "content-type", ctype != NULL ? ctype : "application/grpc");
	nv(&v[n++], "te", "trailers");
	for (; extra != NULL && extra[0] != NULL; extra += 2)
		nv(&v[n++], extra[0], extra[1]);
	prd.source.ptr = s;
	prd.read_callback = tc_read_cb;
	s->id = nghttp2_submit_request(tc->h2, NULL, v, n, &prd, NULL);
	assert_true(s->id > 0);
	tc_flush(tc);
	return s;
}

static struct tstream *
tc_request(struct tclient *tc, const char *path)
{
	return tc_request_full(tc, path, NULL, NULL, NULL);
}

/* Queue raw bytes (frames or garbage) on the stream's DATA. */
static void
ts_raw(struct tstream *s, const void *data, size_t len, int eos)
{
	evbuffer_add(s->out, data, len);
	s->eos = eos;
	nghttp2_session_resume_data(s->tc->h2, s->id);
	tc_flush(s->tc);
}

static void
ts_send(struct tstream *s, const char *msg, int eos)
{
	assert_int_equal(grpc_frame_append(s->out, msg, strlen(msg)), 0);
	s->eos = eos;
	nghttp2_session_resume_data(s->tc->h2, s->id);
	tc_flush(s->tc);
}

static void
ts_reset(struct tstream *s)
{
	nghttp2_submit_rst_stream(s->tc->h2, NGHTTP2_FLAG_NONE, s->id,
	    NGHTTP2_CANCEL);
	tc_flush(s->tc);
}

/* The i-th message the stream received, NUL-terminated into buf. */
static int
ts_message(struct tstream *s, int i, char *buf, size_t buflen)
{
	size_t len = evbuffer_get_length(s->in), off = 0;
	const uint8_t *p = evbuffer_pullup(s->in, -1);

	while (off + 5 <= len) {
		size_t mlen = (size_t)p[off + 1] << 24 | (size_t)p[off + 2] << 16 |
		    (size_t)p[off + 3] << 8 | p[off + 4];

		if (off + 5 + mlen > len)
			break;
		if (i-- == 0) {
			snprintf(buf, buflen, "%.*s", (int)mlen,
			    (const char *)p + off + 5);
			return 0;
		}
		off += 5 + mlen;
	}
	return -1;
}

static int
ts_nmessages(struct tstream *s)
{
	char buf[4];
	int n = 0;

	while (ts_message(s, n, buf, sizeof(buf)) == 0)
		n++;
	return n;
}

/* ---- fixture ---- */

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static void
ctx_server(struct ctx *c)
{
	static const struct {
		const char *path;
		enum grpc_method_kind kind;
		const struct grpc_handler *h;
	} methods[] = {
		{ "/t.S/Unary", GRPC_METHOD_UNARY, &unary_handler },
		{ "/t.S/Echo", GRPC_METHOD_BIDI_STREAMING, &echo_handler },
		{ "/t.S/Hold", GRPC_METHOD_BIDI_STREAMING, &hold_handler },
		{ "/t.S/HoldUnary", GRPC_METHOD_UNARY, &hold_handler },
		{ "/t.S/Collect", GRPC_METHOD_CLIENT_STREAMING, &echo_handler },
		{ "/t.S/Flood", GRPC_METHOD_SERVER_STREAMING, &flood_handler },
		{ "/t.S/Pace", GRPC_METHOD_SERVER_STREAMING, &pace_handler },
		{ "/t.S/Refuse", GRPC_METHOD_UNARY, &refuse_handler },
		{ "/t.S/Deny", GRPC_METHOD_UNARY, &deny_handler },
	};

	assert_non_null(c->srv = grpc_server_new(c->base, &c->cfg));
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		struct grpc_method m = {
			.path = methods[i].path,
			.kind = methods[i].kind,
			.handler = methods[i].h,
		};

		assert_int_equal(grpc_server_add_method(c->srv, &m), 0);
	}
}

/* A bufferevent pair: one end to the server, the other to the client. */
static void
ctx_connect(struct ctx *c, int consume)
{
	struct bufferevent *pair[2];

	assert_int_equal(bufferevent_pair_new(c->base, 0, pair), 0);
	assert_int_equal(grpc_server_adopt(c->srv, pair[0], "pair"), 0);
	tc_init(&c->tc, c->base, pair[1], consume);
}

static int
setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct timeval tv = { 0, 5000 };

	assert_non_null(c);
	memset(hcalls, 0, sizeof(hcalls));
	nstarted = 0;
	assert_non_null(c->base = event_base_new());
	assert_non_null(c->tick = event_new(c->base, -1, EV_PERSIST, tick_cb,
	    NULL));
	evtimer_add(c->tick, &tv);
	grpc_server_config_default(&c->cfg);
	*state = c;
	return 0;
}

static int
teardown(void **state)
{
	struct ctx *c = *state;

	tc_free(&c->tc);
	grpc_server_free(c->srv);
	event_free(c->tick);
	/* Let deferred bufferevent finalizers run. */
	event_base_loop(c->base, EVLOOP_NONBLOCK);
	/* Nothing may be left behind on the base. */
	assert_int_equal(event_base_get_num_events(c->base,
	    EVENT_BASE_COUNT_ADDED), 0);
	event_base_free(c->base);
	/* Every started call was closed exactly once. */
	for (int i = 0; i < nstarted; i++)
		assert_int_equal(hcalls[i].closed, 1);
	free(c);
	return 0;
}

/* Run the loop until cond(c) holds, at most ms milliseconds. */
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
		tc_flush(&c->tc);
	}
}

static int
never(struct ctx *c)
{
	(void)c;
	return 0;
}

/* Run for ms, whatever happens. */
static void
run_for(struct ctx *c, int ms)
{
	run_until(c, never, ms);
}

static int
s0_closed(struct ctx *c)
{
	return c->tc.streams[0].closed;
}

static int
all_closed(struct ctx *c)
{
	for (int i = 0; i < c->tc.nstreams; i++)
		if (!c->tc.streams[i].closed)
			return 0;
	return 1;
}

static int
tc_eof(struct ctx *c)
{
	return c->tc.eof;
}

static const struct grpc_server_stats *
stats(struct ctx *c)
{
	return grpc_server_stats(c->srv);
}

/* ---- tests ---- */

static void
test_add_method(void **state)
{
	struct ctx *c = *state;
	struct grpc_method m = { "/a.B/C", GRPC_METHOD_UNARY, &unary_handler,
		NULL };
	static const char *const bad[] = { "a.B/C", "/a.B", "/a.B/", "//C",
		"/a.B/C/D", "", NULL };
	struct grpc_handler nomsg = unary_handler;

	assert_non_null(c->srv = grpc_server_new(c->base, NULL));
	assert_int_equal(grpc_server_add_method(c->srv, &m), 0);
	assert_int_equal(grpc_server_add_method(c->srv, &m), -EEXIST);
	for (int i = 0; bad[i] != NULL; i++) {
		struct grpc_method b = m;

		b.path = bad[i];
		assert_int_equal(grpc_server_add_method(c->srv, &b), -EINVAL);
	}
	m.path = NULL;
	assert_int_equal(grpc_server_add_method(c->srv, &m), -EINVAL);
	m.path = "/a.B/D";
	nomsg.message = NULL;
	m.handler = &nomsg;
	assert_int_equal(grpc_server_add_method(c->srv, &m), -EINVAL);
	m.handler = &unary_handler;
	m.kind = 0;
	assert_int_equal(grpc_server_add_method(c->srv, &m), -EINVAL);
	assert_string_equal(grpc_method_kind_str(GRPC_METHOD_BIDI_STREAMING),
	    "bidi_stream");
	assert_string_equal(grpc_method_kind_str(0), "invalid");
}

static void
test_unary(void **state)
{
	struct ctx *c = *state;
	const char *const md[] = { "x-test", "abc", NULL };
	struct tstream *s;
	char buf[64];

	ctx_server(c);
	ctx_connect(c, 1);
	s = tc_request_full(&c->tc, "/t.S/Unary", NULL,
	    "application/grpc+proto", md);
	ts_send(s, "hello", 1);
	assert_true(run_until(c, s0_closed, 2000));
	assert_string_equal(s->http_status, "200");
	assert_string_equal(s->grpc_status, "0");
	assert_string_equal(s->grpc_message, "");
	assert_int_equal(s->error_code, NGHTTP2_NO_ERROR);
	assert_int_equal(ts_nmessages(s), 1);
	assert_int_equal(ts_message(s, 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "hello");
	/* Headers, then trailers: two blocks. */
	assert_int_equal(s->nheaders_blocks, 2);
	assert_int_equal(nstarted, 1);
	assert_int_equal(hcalls[0].closed, 1);
	assert_int_equal(hcalls[0].close_status, GRPC_STATUS_OK);
	assert_int_equal(hcalls[0].nmsg, 1);
	assert_int_equal(hcalls[0].send_ret, 0);
	assert_int_equal(hcalls[0].finish_ret, 0);
	assert_string_equal(hcalls[0].md, "abc");
	assert_int_equal(hcalls[0].remaining_ms, -1);
	assert_int_equal(stats(c)->calls_started, 1);
	assert_int_equal(stats(c)->calls_open, 0);
	assert_int_equal(stats(c)->msgs_received, 1);
	assert_int_equal(stats(c)->msgs_sent, 1);
	assert_int_equal(stats(c)->handled[GRPC_STATUS_OK], 1);
	assert_int_equal(stats(c)->buffered, 0);
	assert_true(stats(c)->bytes_received > 24);
	assert_true(stats(c)->bytes_sent > 0);
}

static void
test_unary_errors(void **state)
{
	struct ctx *c = *state;
	struct tstream *s[5];

	ctx_server(c);
	ctx_connect(c, 1);
	s[0] = tc_request(&c->tc, "/t.S/Unary");
	ts_send(s[0], "fail", 1);
	s[1] = tc_request(&c->tc, "/t.S/Unary");
	ts_send(s[1], "none", 1);
	s[2] = tc_request(&c->tc, "/t.S/Unary");
	ts_raw(s[2], "", 0, 1); /* no request message at all */
	s[3] = tc_request(&c->tc, "/t.S/Unary");
	ts_send(s[3], "a", 0);
	ts_send(s[3], "b", 1); /* two request messages */
	s[4] = tc_request(&c->tc, "/t.S/Unary");
	ts_send(s[4], "two", 1);
	assert_true(run_until(c, all_closed, 2000));

	/* The handler's status; grpc-message percent-encoded. */
	assert_string_equal(s[0]->grpc_status, "3");
	assert_string_equal(s[0]->grpc_message, "bad %0A100%25");
	assert_int_equal(s[0]->nheaders_blocks, 1); /* Trailers-Only */
	assert_int_equal(ts_nmessages(s[0]), 0);
	/* OK without a response is turned into INTERNAL. */
	assert_string_equal(s[1]->grpc_status, "13");
	assert_string_equal(s[1]->grpc_message, "no response message");
	assert_string_equal(s[2]->grpc_status, "13");
	assert_string_equal(s[2]->grpc_message, "missing request message");
	assert_string_equal(s[3]->grpc_status, "13");
	assert_string_equal(s[3]->grpc_message,
	    "more than one request message for a unary method");
	/* The second response message was refused, the first went out. */
	assert_string_equal(s[4]->grpc_status, "0");
	assert_int_equal(ts_nmessages(s[4]), 1);

	assert_int_equal(nstarted, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(hcalls[i].closed, 1);
	/* Calls are numbered in the order they started. */
	assert_int_equal(hcalls[0].close_status, GRPC_STATUS_INVALID_ARGUMENT);
	assert_int_equal(hcalls[0].finish_ret, 0);
	assert_int_equal(hcalls[1].close_status, GRPC_STATUS_INTERNAL);
	assert_int_equal(hcalls[2].close_status, GRPC_STATUS_INTERNAL);
	assert_int_equal(hcalls[2].nmsg, 0);
	assert_int_equal(hcalls[3].close_status, GRPC_STATUS_INTERNAL);
	assert_int_equal(hcalls[3].nmsg, 0);
	assert_int_equal(hcalls[4].send_ret, -EINVAL);
	assert_int_equal(hcalls[4].close_status, GRPC_STATUS_OK);
	assert_int_equal(stats(c)->handled[GRPC_STATUS_INTERNAL], 3);
	assert_int_equal(stats(c)->buffered, 0);
}

static void
test_requests_refused(void **state)
{
	struct ctx *c = *state;
	const char *const gzip[] = { "grpc-encoding", "gzip", NULL };
	const char *const badto[] = { "grpc-timeout", "12", NULL };
	struct tstream *s[7];

	ctx_server(c);
	ctx_connect(c, 1);
	s[0] = tc_request(&c->tc, "/t.S/Nope");
	ts_send(s[0], "x", 1);
	s[1] = tc_request_full(&c->tc, "/t.S/Unary", "PUT", NULL, NULL);
	ts_send(s[1], "x", 1);
	s[2] = tc_request_full(&c->tc, "/t.S/Unary", NULL, "text/plain", NULL);
	ts_send(s[2], "x", 1);
	s[3] = tc_request_full(&c->tc, "/t.S/Unary", NULL, NULL, gzip);
	ts_send(s[3], "x", 1);
	s[4] = tc_request_full(&c->tc, "/t.S/Unary", NULL, NULL, badto);
	ts_send(s[4], "x", 1);
	s[5] = tc_request(&c->tc, "/t.S/Refuse");
	ts_send(s[5], "x", 1);
	s[6] = tc_request(&c->tc, "/t.S/Deny");
	assert_true(run_until(c, all_closed, 2000));

	assert_string_equal(s[0]->http_status, "200");
	assert_string_equal(s[0]->grpc_status, "12");
	assert_string_equal(s[0]->grpc_message, "unknown method /t.S/Nope");
	assert_string_equal(s[1]->http_status, "405");
	assert_string_equal(s[2]->http_status, "415");
	assert_string_equal(s[3]->grpc_status, "12");
	assert_string_equal(s[3]->accept_encoding, "identity");
	assert_string_equal(s[4]->grpc_status, "13");
	assert_string_equal(s[4]->grpc_message, "malformed grpc-timeout");
	assert_string_equal(s[5]->grpc_status, "13");
	assert_string_equal(s[5]->grpc_message, "handler failed to start");
	assert_string_equal(s[6]->grpc_status, "7");
	assert_string_equal(s[6]->grpc_message, "no");
	for (int i = 0; i < 7; i++)
		assert_int_equal(ts_nmessages(s[i]), 0);
	/* Only Refuse and Deny reached a handler; Refuse made no state. */
	assert_int_equal(nstarted, 1);
	assert_int_equal(hcalls[0].close_status,
	    GRPC_STATUS_PERMISSION_DENIED);
	assert_int_equal(stats(c)->calls_started, 2);
	assert_int_equal(stats(c)->handled[GRPC_STATUS_UNIMPLEMENTED], 2);
	assert_int_equal(stats(c)->handled[GRPC_STATUS_INTERNAL], 4);
	assert_int_equal(stats(c)->handled[GRPC_STATUS_PERMISSION_DENIED], 1);
}

static void
test_bidi_split(void **state)
{
	struct ctx *c = *state;
	struct tstream *s;
	struct evbuffer *b = evbuffer_new();
	uint8_t *flat;
	size_t len;
	char buf[64];

	ctx_server(c);
	ctx_connect(c, 1);
	s = tc_request(&c->tc, "/t.S/Echo");
	/* Three messages, one empty; sent a byte per DATA frame. */
	grpc_frame_append(b, "first", 5);
	grpc_frame_append(b, "", 0);
	grpc_frame_append(b, "third", 5);
	len = evbuffer_get_length(b);
	flat = evbuffer_pullup(b, -1);
	for (size_t i = 0; i < len; i++) {
		ts_raw(s, flat + i, 1, 0);
		run_for(c, 0);
	}
	evbuffer_free(b);
	assert_true(run_until(c, never, 50) == 0);
	assert_int_equal(ts_nmessages(s), 3);
	assert_false(s->closed);
	/* Then the half-close: the handler finishes. */
	ts_raw(s, "", 0, 1);
	assert_true(run_until(c, s0_closed, 2000));
	assert_int_equal(ts_message(s, 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "first");
	assert_int_equal(ts_message(s, 1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	assert_int_equal(ts_message(s, 2, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "third");
	assert_string_equal(s->grpc_status, "0");
	assert_string_equal(s->grpc_message, "bye");
	assert_int_equal(hcalls[0].nmsg, 3);
	assert_int_equal(hcalls[0].half_closed, 1);
	assert_int_equal(stats(c)->msgs_received, 3);
	assert_int_equal(stats(c)->msgs_sent, 3);
}

static void
test_bad_messages(void **state)
{
	struct ctx *c = *state;
	struct tstream *s[4];
	uint8_t hdr[5];

	c->cfg.max_recv_message = 1024;
	ctx_server(c);
	ctx_connect(c, 1);
	/* Over the maximum: refused at the prefix. */
	s[0] = tc_request(&c->tc, "/t.S/Hold");
	grpc_frame_header(hdr, 0, 1025);
	ts_raw(s[0], hdr, 5, 0);
	/* Compressed without grpc-encoding. */
	s[1] = tc_request(&c->tc, "/t.S/Hold");
	ts_raw(s[1], "\x01\0\0\0\x01z", 6, 0);
	/* The stream ends inside a message. */
	s[2] = tc_request(&c->tc, "/t.S/Hold");
	ts_raw(s[2], "\0\0\0\0\x09" "abc", 8, 1);
	/* The largest allowed message is fine. */
	s[3] = tc_request(&c->tc, "/t.S/Echo");
	{
		static uint8_t big[5 + 1024];

		grpc_frame_header(big, 0, 1024);
		memset(big + 5, 'b', 1024);
		ts_raw(s[3], big, sizeof(big), 1);
	}
	assert_true(run_until(c, all_closed, 2000));
	assert_string_equal(s[0]->grpc_status, "8");
	assert_string_equal(s[0]->grpc_message,
	    "received message larger than max (1025 vs. 1024)");
	assert_string_equal(s[1]->grpc_status, "13");
	assert_string_equal(s[1]->grpc_message,
	    "compressed message without a negotiated grpc-encoding");
	assert_string_equal(s[2]->grpc_status, "13");
	assert_string_equal(s[2]->grpc_message,
	    "stream ended inside a message");
	assert_string_equal(s[3]->grpc_status, "0");
	assert_int_equal(ts_nmessages(s[3]), 1);
	/* The server told the clients still sending to stop. */
	assert_int_equal(s[0]->error_code, NGHTTP2_NO_ERROR);
	assert_int_equal(hcalls[0].close_status,
	    GRPC_STATUS_RESOURCE_EXHAUSTED);
	assert_int_equal(hcalls[1].close_status, GRPC_STATUS_INTERNAL);
	assert_int_equal(hcalls[2].close_status, GRPC_STATUS_INTERNAL);
	assert_int_equal(hcalls[3].close_status, GRPC_STATUS_OK);
	assert_int_equal(stats(c)->buffered, 0);
}

static int
s0_status(struct ctx *c)
{
	return c->tc.streams[0].grpc_status[0] != '\0';
}

static void
test_deadline(void **state)
{
	struct ctx *c = *state;
	const char *const to[] = { "grpc-timeout", "50m", NULL };
	const char *const zero[] = { "grpc-timeout", "0n", NULL };
	struct timespec t0, t1;
	struct tstream *s;
	double ms;

	ctx_server(c);
	ctx_connect(c, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	s = tc_request_full(&c->tc, "/t.S/Hold", NULL, NULL, to);
	ts_send(s, "waiting", 0);
	assert_true(run_until(c, s0_status, 2000));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms >= 50 && ms < 1000);
	assert_true(run_until(c, s0_closed, 2000));
	assert_string_equal(s->grpc_status, "4");
	assert_string_equal(s->grpc_message, "deadline exceeded");
	assert_int_equal(hcalls[0].close_status, GRPC_STATUS_DEADLINE_EXCEEDED);
	assert_true(hcalls[0].remaining_ms > 0 && hcalls[0].remaining_ms <= 50);
	assert_int_equal(hcalls[0].nmsg, 1);

	/* A deadline already gone when the call starts. */
	s = tc_request_full(&c->tc, "/t.S/HoldUnary", NULL, NULL, zero);
	ts_send(s, "late", 1);
	assert_true(run_until(c, all_closed, 2000));
	assert_string_equal(s->grpc_status, "4");
	assert_int_equal(hcalls[1].close_status, GRPC_STATUS_DEADLINE_EXCEEDED);
	assert_int_equal(stats(c)->handled[GRPC_STATUS_DEADLINE_EXCEEDED], 2);
}

static void
test_client_cancel(void **state)
{
	struct ctx *c = *state;
	struct tstream *s;

	ctx_server(c);
	ctx_connect(c, 1);
	s = tc_request(&c->tc, "/t.S/Hold");
	ts_send(s, "x", 0);
	run_for(c, 20);
	assert_int_equal(hcalls[0].nmsg, 1);
	assert_int_equal(stats(c)->calls_open, 1);
	ts_reset(s);
	assert_true(run_until(c, s0_closed, 2000));
	run_for(c, 20);
	assert_int_equal(hcalls[0].closed, 1);
	assert_int_equal(hcalls[0].close_status, GRPC_STATUS_CANCELLED);
	assert_int_equal(stats(c)->calls_reset_by_peer, 1);
	assert_int_equal(stats(c)->calls_open, 0);
	assert_int_equal(stats(c)->handled[GRPC_STATUS_CANCELLED], 1);
}

static int
hcall0_closed(struct ctx *c)
{
	(void)c;
	return hcalls[0].closed;
}

/* A client that never gives window back: the call's cap resets it. */
static void
test_output_cap_call(void **state)
{
	struct ctx *c = *state;
	struct tstream *s;

	c->cfg.call_output_cap = 256 * 1024;
	ctx_server(c);
	ctx_connect(c, 0);
	s = tc_request(&c->tc, "/t.S/Flood");
	ts_send(s, "go", 1);
	assert_true(run_until(c, s0_closed, 2000));
	assert_true(run_until(c, hcall0_closed, 2000));
	assert_int_equal(s->error_code, NGHTTP2_ENHANCE_YOUR_CALM);
	assert_int_equal(grpc_status_from_http2_error(s->error_code),
	    GRPC_STATUS_RESOURCE_EXHAUSTED);
	assert_int_equal(hcalls[0].send_ret, -ENOBUFS);
	/* 16 KiB messages: the cap, plus what the 64 KiB window took. */
	assert_true(hcalls[0].nmsg >= 15 && hcalls[0].nmsg <= 16 + 4);
	assert_int_equal(hcalls[0].close_status,
	    GRPC_STATUS_RESOURCE_EXHAUSTED);
	assert_int_equal(stats(c)->calls_output_overflow, 1);
	assert_int_equal(stats(c)->buffered, 0);
	/* The connection itself is fine: another call works. */
	s = tc_request(&c->tc, "/t.S/Unary");
	ts_send(s, "still here", 1);
	assert_true(run_until(c, all_closed, 2000));
	assert_string_equal(c->tc.streams[1].grpc_status, "0");
}

static int
s1_closed(struct ctx *c)
{
	return c->tc.streams[1].closed;
}

/* A call under its own cap, but over the connection's with another. */
static void
test_output_cap_conn(void **state)
{
	struct ctx *c = *state;

	c->cfg.call_output_cap = 256 * 1024;
	c->cfg.conn_output_cap = 300 * 1024;
	ctx_server(c);
	ctx_connect(c, 0);
	/* 12 x 16 KiB: 64 KiB go out (the window), 128 KiB wait. */
	ts_send(tc_request(&c->tc, "/t.S/Flood"), "12", 1);
	run_for(c, 50);
	assert_int_equal(hcalls[0].nmsg, 12);
	assert_int_equal(hcalls[0].send_ret, 0);
	ts_send(tc_request(&c->tc, "/t.S/Flood"), "b", 1);
	assert_true(run_until(c, s1_closed, 2000));
	assert_int_equal(c->tc.streams[1].error_code,
	    NGHTTP2_ENHANCE_YOUR_CALM);
	/* Reset with about 172 KiB, less than its own cap would allow. */
	assert_true(hcalls[1].nmsg >= 9 && hcalls[1].nmsg <= 11);
	assert_int_equal(hcalls[1].close_status,
	    GRPC_STATUS_RESOURCE_EXHAUSTED);
	/* The first goes on. */
	assert_false(c->tc.streams[0].closed);
	assert_int_equal(hcalls[0].closed, 0);
	assert_int_equal(stats(c)->calls_output_overflow, 1);
	assert_true(stats(c)->buffered > 100 * 1024);
}

/* A client that stops reading at the transport: bounded, then reset. */
static void
test_output_not_reading(void **state)
{
	struct ctx *c = *state;
	struct tstream *s;

	c->cfg.call_output_cap = 512 * 1024;
	c->cfg.stream_window = 16 * 1024 * 1024;
	ctx_server(c);
	ctx_connect(c, 1);
	/* A big window for the server to send into. */
	{
		nghttp2_settings_entry iv = {
			NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 16 * 1024 * 1024
		};

		nghttp2_submit_settings(c->tc.h2, NGHTTP2_FLAG_NONE, &iv, 1);
		nghttp2_session_set_local_window_size(c->tc.h2,
		    NGHTTP2_FLAG_NONE, 0, 16 * 1024 * 1024);
	}
	s = tc_request(&c->tc, "/t.S/Flood");
	ts_send(s, "go", 1);
	run_for(c, 20);
	bufferevent_disable(c->tc.bev, EV_READ);
	bufferevent_setwatermark(c->tc.bev, EV_READ, 0, 1);
	assert_true(run_until(c, hcall0_closed, 2000));
	assert_int_equal(hcalls[0].send_ret, -ENOBUFS);
	assert_int_equal(hcalls[0].close_status,
	    GRPC_STATUS_RESOURCE_EXHAUSTED);
	assert_int_equal(stats(c)->buffered, 0);
}

/*
 * A client that floods PINGs and reads nothing: the server stops reading
 * once its answers back up, holds a bounded amount, and carries on when
 * the client reads again (never mistaking the backlog for an attack).
 */
static void
test_ping_flood_not_reading(void **state)
{
	struct ctx *c = *state;
	static const uint8_t ping[17] = { 0, 0, 8, 6, 0, 0, 0, 0, 0,
		'p', 'i', 'n', 'g', 'p', 'i', 'n', 'g' };
	struct evbuffer *flood = evbuffer_new();
	uint64_t got;

	ctx_server(c);
	ctx_connect(c, 1);
	ts_send(tc_request(&c->tc, "/t.S/Unary"), "before", 1);
	assert_true(run_until(c, s0_closed, 2000));
	bufferevent_disable(c->tc.bev, EV_READ);
	bufferevent_setwatermark(c->tc.bev, EV_READ, 0, 1);
	for (int i = 0; i < 50000; i++)
		evbuffer_add(flood, ping, sizeof(ping));
	got = stats(c)->bytes_received;
	bufferevent_write_buffer(c->tc.bev, flood);
	evbuffer_free(flood);
	run_for(c, 200);
	/* 850 KB sent; the server took what filled its output, no more. */
	assert_true(stats(c)->bytes_received - got < 600 * 1024);
	assert_int_equal(stats(c)->conns_open, 1);
	/* Reading again, the client gets every answer. */
	bufferevent_setwatermark(c->tc.bev, EV_READ, 0, 0);
	bufferevent_enable(c->tc.bev, EV_READ);
	run_for(c, 500);
	assert_int_equal(stats(c)->bytes_received - got, 50000 * 17);
	assert_int_equal(stats(c)->conns_open, 1);
	assert_int_equal(stats(c)->conns_protocol_error, 0);
	ts_send(tc_request(&c->tc, "/t.S/Unary"), "after", 1);
	assert_true(run_until(c, all_closed, 2000));
	assert_string_equal(c->tc.streams[1].grpc_status, "0");
}

/* A producer that waits for drained() never hits a cap. */
static void
test_paced_producer(void **state)
{
	struct ctx *c = *state;
	struct tstream *s;

	c->cfg.call_output_cap = 128 * 1024;
	ctx_server(c);
	ctx_connect(c, 1);
	s = tc_request(&c->tc, "/t.S/Pace");
	ts_send(s, "go", 1);
	assert_true(run_until(c, s0_closed, 5000));
	assert_string_equal(s->grpc_status, "0");
	assert_int_equal(ts_nmessages(s), PACE_TOTAL);
	assert_int_equal(hcalls[0].nmsg, PACE_TOTAL);
	assert_true(hcalls[0].half_closed >= 10); /* drained() calls */
	assert_int_equal(hcalls[0].close_status, GRPC_STATUS_OK);
	assert_int_equal(stats(c)->calls_output_overflow, 0);

	s = tc_request(&c->tc, "/t.S/Unary");
	ts_send(s, "drainless", 1);
	assert_true(run_until(c, all_closed, 2000));
	assert_int_equal(hcalls[1].send_ret, -EINVAL);
	assert_int_equal(hcalls[1].finish_ret, 0);
}

/* ... and with a client that gives no window, it just waits. */
static void
test_paced_producer_stalled(void **state)
{
	struct ctx *c = *state;
	struct tstream *s;

	c->cfg.call_output_cap = 128 * 1024;
	ctx_server(c);
	ctx_connect(c, 0);
	s = tc_request(&c->tc, "/t.S/Pace");
	ts_send(s, "go", 1);
	run_for(c, 200);
	/*
	 * Four messages reach the 64 KiB mark; the client's window (65535)
	 * takes all but 21 bytes of them, which wait. No reset, no more.
	 */
	assert_false(s->closed);
	assert_int_equal(hcalls[0].nmsg, 4);
	assert_int_equal(hcalls[0].send_ret, 0);
	assert_int_equal(hcalls[0].half_closed, 0);
	assert_int_equal(stats(c)->calls_output_overflow, 0);
	assert_int_equal(stats(c)->buffered, 4 * (16 * 1024 + 5) - 65535);
	ts_reset(s);
	assert_true(run_until(c, hcall0_closed, 2000));
	assert_int_equal(hcalls[0].close_status, GRPC_STATUS_CANCELLED);
	assert_int_equal(stats(c)->buffered, 0);
}

static void
test_max_streams(void **state)
{
	struct ctx *c = *state;

	c->cfg.max_concurrent_streams = 2;
	ctx_server(c);
	ctx_connect(c, 1);
	/* All three leave before the server's SETTINGS arrive. */
	for (int i = 0; i < 3; i++)
		ts_send(tc_request(&c->tc, "/t.S/Hold"), "x", 0);
	run_for(c, 50);
	assert_int_equal(nstarted, 2);
	assert_true(c->tc.streams[2].closed);
	assert_int_equal(c->tc.streams[2].error_code, NGHTTP2_REFUSED_STREAM);
	assert_false(c->tc.streams[0].closed);
	assert_false(c->tc.streams[1].closed);
	assert_int_equal(stats(c)->calls_open, 2);
}

static void
test_max_connections(void **state)
{
	struct ctx *c = *state;
	struct bufferevent *pair[2];

	c->cfg.max_connections = 1;
	ctx_server(c);
	ctx_connect(c, 1);
	assert_int_equal(bufferevent_pair_new(c->base, 0, pair), 0);
	assert_int_equal(grpc_server_adopt(c->srv, pair[0], "second"), -EBUSY);
	bufferevent_free(pair[1]);
	assert_int_equal(stats(c)->conns_rejected, 1);
	assert_int_equal(stats(c)->conns_open, 1);
	assert_int_equal(stats(c)->conns_accepted, 1);
}

static void
test_handshake_timeout(void **state)
{
	struct ctx *c = *state;
	struct bufferevent *pair[2];

	c->cfg.handshake_timeout_ms = 30;
	ctx_server(c);
	/* A client that connects and says nothing. */
	assert_int_equal(bufferevent_pair_new(c->base, 0, pair), 0);
	assert_int_equal(grpc_server_adopt(c->srv, pair[0], "silent"), 0);
	memset(&c->tc, 0, sizeof(c->tc));
	c->tc.bev = pair[1];
	bufferevent_setcb(pair[1], NULL, NULL, tc_transport_event_cb, &c->tc);
	bufferevent_enable(pair[1], EV_READ);
	assert_true(run_until(c, tc_eof, 2000));
	assert_int_equal(stats(c)->conns_open, 0);
	assert_int_equal(stats(c)->conns_idle_closed, 1);
	bufferevent_free(pair[1]);
	c->tc.bev = NULL;
}

static void
test_garbage(void **state)
{
	struct ctx *c = *state;
	struct bufferevent *pair[2];
	const char *http1 = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

	ctx_server(c);
	assert_int_equal(bufferevent_pair_new(c->base, 0, pair), 0);
	assert_int_equal(grpc_server_adopt(c->srv, pair[0], "garbage"), 0);
	memset(&c->tc, 0, sizeof(c->tc));
	c->tc.bev = pair[1];
	bufferevent_setcb(pair[1], NULL, NULL, tc_transport_event_cb, &c->tc);
	bufferevent_enable(pair[1], EV_READ | EV_WRITE);
	bufferevent_write(pair[1], http1, strlen(http1));
	assert_true(run_until(c, tc_eof, 2000));
	assert_int_equal(stats(c)->conns_open, 0);
	assert_int_equal(stats(c)->conns_protocol_error, 1);
	bufferevent_free(pair[1]);
	c->tc.bev = NULL;
}

/* A valid preface, then a frame that breaks the protocol: GOAWAY. */
static void
test_protocol_error(void **state)
{
	struct ctx *c = *state;
	/* DATA on stream 0 is a connection error (RFC 9113 6.1). */
	static const uint8_t bad[] = { 0, 0, 1, 0, 0, 0, 0, 0, 0, 'x' };

	ctx_server(c);
	ctx_connect(c, 1);
	run_for(c, 10);
	bufferevent_write(c->tc.bev, bad, sizeof(bad));
	assert_true(run_until(c, tc_eof, 2000));
	assert_int_equal(c->tc.goaway, 1);
	assert_int_equal(stats(c)->conns_open, 0);
}

static void
test_idle_timeout(void **state)
{
	struct ctx *c = *state;
	struct tstream *s;

	c->cfg.idle_timeout_ms = 60;
	ctx_server(c);
	ctx_connect(c, 1);
	/* A call keeps the connection: not idle while it runs. */
	s = tc_request(&c->tc, "/t.S/Hold");
	ts_send(s, "x", 0);
	run_for(c, 150);
	assert_false(c->tc.eof);
	assert_int_equal(c->tc.goaway, 0);
	ts_raw(s, "", 0, 1);
	ts_reset(s);
	assert_true(run_until(c, tc_eof, 2000));
	assert_int_equal(c->tc.goaway, 1);
	assert_int_equal(stats(c)->conns_idle_closed, 1);
	assert_int_equal(stats(c)->conns_open, 0);
}

static void
test_keepalive(void **state)
{
	struct ctx *c = *state;

	c->cfg.keepalive_ms = 30;
	c->cfg.keepalive_timeout_ms = 30;
	ctx_server(c);
	ctx_connect(c, 1);
	ts_send(tc_request(&c->tc, "/t.S/Hold"), "x", 0);
	/* A live client answers PINGs: the connection stays. */
	run_for(c, 200);
	assert_true(c->tc.pings >= 2);
	assert_false(c->tc.eof);
	assert_int_equal(stats(c)->conns_keepalive_closed, 0);
	/* A dead one does not: closed, the call cancelled. */
	bufferevent_disable(c->tc.bev, EV_READ);
	bufferevent_setwatermark(c->tc.bev, EV_READ, 0, 1);
	assert_true(run_until(c, hcall0_closed, 2000));
	assert_int_equal(hcalls[0].close_status, GRPC_STATUS_CANCELLED);
	assert_int_equal(stats(c)->conns_keepalive_closed, 1);
	assert_int_equal(stats(c)->conns_open, 0);
	/* Not counted as a reset by the peer. */
	assert_int_equal(stats(c)->calls_reset_by_peer, 0);
}

static void
t_done_cb(void *arg)
{
	((struct ctx *)arg)->done_called++;
}

static int
done_called(struct ctx *c)
{
	return c->done_called;
}

static void
test_shutdown(void **state)
{
	struct ctx *c = *state;
	struct tstream *s;

	ctx_server(c);
	ctx_connect(c, 1);
	s = tc_request(&c->tc, "/t.S/Hold");
	ts_send(s, "x", 0);
	run_for(c, 20);
	grpc_server_shutdown(c->srv, 1000, t_done_cb, c);
	grpc_server_shutdown(c->srv, 1000, t_done_cb, c); /* no effect */
	run_for(c, 400);
	/* The notice, then the GOAWAY with the last stream: 1. */
	assert_int_equal(c->tc.goaway, 2);
	assert_int_equal(c->tc.goaway_last, 1);
	assert_false(s->closed);
	/* Still served within the grace period. */
	ts_send(s, "y", 0);
	run_for(c, 20);
	assert_int_equal(hcalls[0].nmsg, 2);
	/* At its end the call is finished UNAVAILABLE. */
	assert_true(run_until(c, done_called, 3000));
	assert_string_equal(s->grpc_status, "14");
	assert_string_equal(s->grpc_message, "server shutting down");
	assert_int_equal(hcalls[0].close_status, GRPC_STATUS_UNAVAILABLE);
	assert_int_equal(c->done_called, 1);
	assert_int_equal(stats(c)->conns_open, 0);
	/* No new connection once shutting down. */
	{
		struct bufferevent *pair[2];

		assert_int_equal(bufferevent_pair_new(c->base, 0, pair), 0);
		assert_int_equal(grpc_server_adopt(c->srv, pair[0], "late"),
		    -EBUSY);
		bufferevent_free(pair[1]);
	}
}

/* Calls that end within the grace period: done comes early. */
static void
test_shutdown_quick(void **state)
{
	struct ctx *c = *state;
	struct timespec t0, t1;

	ctx_server(c);
	ctx_connect(c, 1);
	ts_send(tc_request(&c->tc, "/t.S/Echo"), "x", 0);
	run_for(c, 20);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	grpc_server_shutdown(c->srv, 5000, t_done_cb, c);
	run_for(c, 30);
	ts_raw(&c->tc.streams[0], "", 0, 1);
	assert_true(run_until(c, done_called, 3000));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 2);
	assert_string_equal(c->tc.streams[0].grpc_status, "0");
	assert_int_equal(hcalls[0].close_status, GRPC_STATUS_OK);
}

static void
test_free_with_calls(void **state)
{
	struct ctx *c = *state;

	ctx_server(c);
	ctx_connect(c, 1);
	ts_send(tc_request(&c->tc, "/t.S/Hold"), "x", 0);
	ts_send(tc_request(&c->tc, "/t.S/Hold"), "y", 0);
	run_for(c, 20);
	assert_int_equal(nstarted, 2);
	grpc_server_free(c->srv);
	c->srv = NULL;
	assert_int_equal(hcalls[0].close_status, GRPC_STATUS_CANCELLED);
	assert_int_equal(hcalls[1].close_status, GRPC_STATUS_CANCELLED);
	assert_true(run_until(c, tc_eof, 2000));
}

static void
test_header_limit(void **state)
{
	struct ctx *c = *state;
	static char big[2048];
	const char *md[] = { "x-big", big, NULL };
	struct tstream *s;

	memset(big, 'h', sizeof(big) - 1);
	c->cfg.max_header_list = 1024;
	ctx_server(c);
	ctx_connect(c, 1);
	s = tc_request_full(&c->tc, "/t.S/Unary", NULL, NULL, md);
	ts_send(s, "x", 1);
	assert_true(run_until(c, s0_closed, 2000));
	assert_int_equal(s->error_code, NGHTTP2_INTERNAL_ERROR);
	assert_int_equal(nstarted, 0);
	/* The connection goes on. */
	s = tc_request(&c->tc, "/t.S/Unary");
	ts_send(s, "ok", 1);
	assert_true(run_until(c, all_closed, 2000));
	assert_string_equal(s->grpc_status, "0");
}

static void
test_send_too_big(void **state)
{
	struct ctx *c = *state;
	struct tstream *s;

	c->cfg.max_send_message = 1024;
	ctx_server(c);
	ctx_connect(c, 1);
	s = tc_request(&c->tc, "/t.S/Unary");
	ts_send(s, "big", 1);
	assert_true(run_until(c, s0_closed, 2000));
	assert_int_equal(hcalls[0].send_ret, -EMSGSIZE);
	assert_int_equal(hcalls[0].finish_ret, -ECANCELED);
	assert_string_equal(s->grpc_status, "8");
	assert_string_equal(s->grpc_message,
	    "response message larger than max");
}

static void
test_input_cap(void **state)
{
	struct ctx *c = *state;
	struct tstream *s;
	static uint8_t part[5 + 3000];

	c->cfg.conn_input_cap = 4096;
	ctx_server(c);
	ctx_connect(c, 1);
	/* Two partial messages of 3000 bytes: together over 4096. */
	grpc_frame_header(part, 0, 4000);
	s = tc_request(&c->tc, "/t.S/Hold");
	ts_raw(s, part, sizeof(part), 0);
	run_for(c, 20);
	assert_int_equal(stats(c)->buffered, sizeof(part));
	s = tc_request(&c->tc, "/t.S/Hold");
	ts_raw(s, part, sizeof(part), 0);
	run_for(c, 50);
	assert_string_equal(c->tc.streams[1].grpc_status, "8");
	assert_string_equal(c->tc.streams[1].grpc_message,
	    "server receive buffers full");
	assert_string_equal(c->tc.streams[0].grpc_status, "");
	assert_int_equal(stats(c)->buffered, sizeof(part));
}

static void
test_metrics(void **state)
{
	struct ctx *c = *state;
	struct evbuffer *out = evbuffer_new();
	char *text;

	ctx_server(c);
	ctx_connect(c, 1);
	ts_send(tc_request(&c->tc, "/t.S/Unary"), "m", 1);
	assert_true(run_until(c, all_closed, 2000));
	grpc_server_write_metrics(c->srv, out);
	evbuffer_add(out, "", 1);
	text = (char *)evbuffer_pullup(out, -1);
	assert_non_null(strstr(text, "grpc_server_started_total{grpc_type="
	    "\"unary\",grpc_service=\"t.S\",grpc_method=\"Unary\"} 1\n"));
	assert_non_null(strstr(text, "grpc_server_handled_total{grpc_type="
	    "\"unary\",grpc_service=\"t.S\",grpc_method=\"Unary\","
	    "grpc_code=\"OK\"} 1\n"));
	assert_non_null(strstr(text, "grpc_server_handling_seconds_count{"
	    "grpc_type=\"unary\",grpc_service=\"t.S\",grpc_method=\"Unary\"} "
	    "1\n"));
	assert_non_null(strstr(text, "troika_grpc_server_connections 1\n"));
	assert_non_null(strstr(text,
	    "troika_grpc_server_connections_accepted_total 1\n"));
	assert_non_null(strstr(text, "# TYPE troika_grpc_server_calls gauge\n"));
	evbuffer_free(out);
}

/* Over a real socket: listen, accept, and the connection limit. */
static void
test_socket(void **state)
{
	struct ctx *c = *state;
	struct sockaddr_in sin;
	struct bufferevent *bev;
	struct tstream *s;
	int port = 0, fd2;

	c->cfg.max_connections = 1;
	ctx_server(c);
	assert_int_equal(grpc_server_listen(c->srv, "127.0.0.1", 0, NULL,
	    &port), 0);
	assert_true(port > 0);
	assert_int_equal(grpc_server_listen(c->srv, "not an address", 0, NULL,
	    NULL), -EINVAL);
	assert_true(grpc_server_listen(c->srv, "127.0.0.1", port, NULL,
	    NULL) < 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_non_null(bev = bufferevent_socket_new(c->base, -1,
	    BEV_OPT_CLOSE_ON_FREE));
	assert_int_equal(bufferevent_socket_connect(bev,
	    (struct sockaddr *)&sin, sizeof(sin)), 0);
	tc_init(&c->tc, c->base, bev, 1);
	s = tc_request(&c->tc, "/t.S/Unary");
	ts_send(s, "over tcp", 1);
	assert_true(run_until(c, s0_closed, 2000));
	assert_string_equal(s->grpc_status, "0");
	/* A second connection is over the limit: accepted and closed. */
	assert_true((fd2 = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(fd2, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	run_for(c, 50);
	assert_int_equal(stats(c)->conns_rejected, 1);
	{
		char b;

		assert_int_equal(read(fd2, &b, 1), 0);
	}
	close(fd2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_method, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unary_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_requests_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bidi_split, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_messages, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_cancel, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_output_cap_call, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_output_cap_conn, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_output_not_reading, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ping_flood_not_reading,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_paced_producer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_paced_producer_stalled,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_streams, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_max_connections, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_handshake_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_protocol_error, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_keepalive, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_quick, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_with_calls, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_header_limit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_send_too_big, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_input_cap, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
