/*
 * One gRPC call on one HTTP/2 stream: the request's headers are checked,
 * its messages decoded and handed to the method's handler, and the
 * handler's messages and status go out as DATA and trailers. nghttp2 calls
 * in from grpc_conn.c; handlers call in through grpc_call_send() and
 * grpc_call_finish(), which only queue and schedule a write, so nghttp2 and
 * handler callbacks never nest the wrong way round.
 */
#include "grpc_server_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "log.h"

/* grpc-message text we send is cut to this many bytes before encoding. */
#define GRPC_CALL_MSG_MAX 512
/* A client still sending this long after our END_STREAM is reset. */
#define GRPC_CALL_LINGER_S 1
/* A grpc-timeout longer than this is taken as this (timer arithmetic). */
#define GRPC_CALL_DEADLINE_MAX_S (366LL * 24 * 3600)

static void grpc_call_deadline_cb(evutil_socket_t fd, short what, void *arg);

static int
grpc_call_request_unary(const struct grpc_call *call)
{
	return call->method->kind == GRPC_METHOD_UNARY ||
	    call->method->kind == GRPC_METHOD_SERVER_STREAMING;
}

static int
grpc_call_response_unary(const struct grpc_call *call)
{
	return call->method->kind == GRPC_METHOD_UNARY ||
	    call->method->kind == GRPC_METHOD_CLIENT_STREAMING;
}

/* Bring conn and server byte counts in line with what the call holds. */
static void
grpc_call_account(struct grpc_call *call)
{
	struct grpc_conn *conn = call->conn;
	struct grpc_server_stats *st = &conn->srv->stats;
	size_t in = grpc_frame_decoder_pending(&call->dec) + call->req_len;
	size_t out = call->out != NULL ? evbuffer_get_length(call->out) : 0;

	conn->in_held = conn->in_held - call->in_held + in;
	conn->out_held = conn->out_held - call->out_held + out;
	st->buffered = st->buffered - call->in_held - call->out_held + in + out;
	call->in_held = in;
	call->out_held = out;
}

struct grpc_call *
grpc_call_new(struct grpc_conn *conn, int32_t stream_id)
{
	struct grpc_call *call;

	if ((call = calloc(1, sizeof(*call))) == NULL)
		return NULL;
	if ((call->out = evbuffer_new()) == NULL) {
		free(call);
		return NULL;
	}
	call->conn = conn;
	call->stream_id = stream_id;
	grpc_frame_decoder_init(&call->dec, conn->srv->cfg.max_recv_message);
	TAILQ_INSERT_TAIL(&conn->calls, call, entry);
	conn->ncalls++;
	grpc_conn_calls_changed(conn);
	return call;
}

static void
grpc_call_free(struct grpc_call *call)
{
	struct grpc_conn *conn;

	if (call == NULL)
		return;
	conn = call->conn;
	grpc_frame_decoder_free(&call->dec);
	free(call->req);
	call->req = NULL;
	call->req_len = 0;
	evbuffer_free(call->out);
	call->out = NULL;
	grpc_call_account(call);
	TAILQ_REMOVE(&conn->calls, call, entry);
	conn->ncalls--;
	if (call->deadline_ev != NULL)
		event_free(call->deadline_ev);
	if (call->linger_ev != NULL)
		event_free(call->linger_ev);
	free(call->http_method);
	free(call->path);
	free(call->content_type);
	free(call->encoding);
	free(call->timeout);
	for (size_t i = 0; i < call->nmd; i++) {
		free(call->md[i].name);
		free(call->md[i].value);
	}
	free(call->md);
	free(call->status_msg);
	free(call);
	grpc_conn_calls_changed(conn);
}

static char *
grpc_strndup(const uint8_t *s, size_t len)
{
	char *p = malloc(len + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

/* Keep the first of a repeated pseudo-header; nghttp2 refuses repeats. */
static int
grpc_call_set_str(char **dst, const uint8_t *value, size_t len)
{
	if (*dst != NULL)
		return 0;
	if ((*dst = grpc_strndup(value, len)) == NULL)
		return -ENOMEM;
	return 0;
}

static int
grpc_name_is(const uint8_t *name, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(name, want, len) == 0;
}

int
grpc_call_on_header(struct grpc_call *call, const uint8_t *name,
    size_t namelen, const uint8_t *value, size_t valuelen)
{
	struct grpc_md *md;

	call->hdr_bytes += namelen + valuelen + 32;
	if (call->hdr_bytes > call->conn->srv->cfg.max_header_list)
		return -E2BIG;
	if (grpc_name_is(name, namelen, ":method"))
		return grpc_call_set_str(&call->http_method, value, valuelen);
	if (grpc_name_is(name, namelen, ":path"))
		return grpc_call_set_str(&call->path, value, valuelen);
	if (namelen > 0 && name[0] == ':')
		return 0; /* :scheme, :authority: nothing to do with them */
	if (grpc_name_is(name, namelen, "content-type"))
		return grpc_call_set_str(&call->content_type, value, valuelen);
	if (grpc_name_is(name, namelen, "grpc-encoding"))
		return grpc_call_set_str(&call->encoding, value, valuelen);
	if (grpc_name_is(name, namelen, "grpc-timeout"))
		return grpc_call_set_str(&call->timeout, value, valuelen);

	/* Bounded by max_header_list: at most one entry per 32 bytes. */
	md = realloc(call->md, (call->nmd + 1) * sizeof(*md));
	if (md == NULL)
		return -ENOMEM;
	call->md = md;
	md[call->nmd].name = grpc_strndup(name, namelen);
	md[call->nmd].value = grpc_strndup(value, valuelen);
	if (md[call->nmd].name == NULL || md[call->nmd].value == NULL) {
		free(md[call->nmd].name);
		free(md[call->nmd].value);
		return -ENOMEM;
	}
	call->nmd++;
	return 0;
}

static void
grpc_nv(nghttp2_nv *nv, const char *name, const char *value)
{
	nv->name = (uint8_t *)(uintptr_t)name;
	nv->namelen = strlen(name);
	nv->value = (uint8_t *)(uintptr_t)value;
	nv->valuelen = strlen(value);
	nv->flags = NGHTTP2_NV_FLAG_NONE; /* nghttp2 copies them */
}

/* Move n bytes of queued output to buf, following message boundaries. */
static void
grpc_call_take(struct grpc_call *call, uint8_t *buf, size_t n)
{
	while (n > 0) {
		size_t take;

		if (call->head_left == 0) {
			uint8_t h[GRPC_FRAME_HEADER_LEN];

			/* out holds whole framed messages: a prefix is here. */
			evbuffer_copyout(call->out, h, sizeof(h));
			call->head_left = GRPC_FRAME_HEADER_LEN +
			    ((size_t)h[1] << 24 | (size_t)h[2] << 16 |
				(size_t)h[3] << 8 | (size_t)h[4]);
		}
		take = n < call->head_left ? n : call->head_left;
		evbuffer_remove(call->out, buf, take);
		buf += take;
		n -= take;
		call->head_left -= take;
	}
}

static int
grpc_call_submit_trailers(struct grpc_call *call)
{
	nghttp2_nv nv[2];
	char code[12];
	size_t n = 0;

	snprintf(code, sizeof(code), "%d", call->status);
	grpc_nv(&nv[n++], "grpc-status", code);
	if (call->status_msg != NULL && call->status_msg[0] != '\0')
		grpc_nv(&nv[n++], "grpc-message", call->status_msg);
	return nghttp2_submit_trailer(call->conn->h2, call->stream_id, nv, n);
}

/* nghttp2's data source: queued messages, then the trailers. */
static ssize_t
grpc_call_read_cb(nghttp2_session *h2, int32_t stream_id, uint8_t *buf,
    size_t length, uint32_t *data_flags, nghttp2_data_source *source,
    void *user_data)
{
	struct grpc_call *call = source->ptr;
	size_t n = evbuffer_get_length(call->out);

	(void)h2;
	(void)stream_id;
	(void)user_data;
	/* Reset: RST_STREAM is on its way, nothing else may go out. */
	if (call->reset)
		return NGHTTP2_ERR_DEFERRED;
	if (n > length)
		n = length;
	if (n > 0) {
		grpc_call_take(call, buf, n);
		grpc_call_account(call);
	}
	if (call->want_drained && evbuffer_get_length(call->out) == 0) {
		/* Not from here, inside nghttp2: after the flush. */
		call->drained_ready = 1;
		call->conn->drained_ready = 1;
	}
	if (evbuffer_get_length(call->out) == 0) {
		if (call->finished) {
			*data_flags |= NGHTTP2_DATA_FLAG_EOF |
			    NGHTTP2_DATA_FLAG_NO_END_STREAM;
			if (grpc_call_submit_trailers(call) != 0)
				return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		} else if (n == 0) {
			call->deferred = 1;
			return NGHTTP2_ERR_DEFERRED;
		}
	}
	return (ssize_t)n;
}

/* Response headers, with the data source that sends messages and trailers. */
static int
grpc_call_submit_response(struct grpc_call *call)
{
	nghttp2_data_provider prd;
	nghttp2_nv nv[2];

	grpc_nv(&nv[0], ":status", "200");
	grpc_nv(&nv[1], "content-type", "application/grpc");
	prd.source.ptr = call;
	prd.read_callback = grpc_call_read_cb;
	call->response_submitted = 1;
	return nghttp2_submit_response(call->conn->h2, call->stream_id, nv, 2,
	    &prd);
}

/*
 * A response of headers only: an HTTP status, and the gRPC status in the
 * same HEADERS frame ("Trailers-Only"), which ends the stream.
 */
static int
grpc_call_submit_headers_only(struct grpc_call *call, const char *http_status,
    const char *extra_name, const char *extra_value)
{
	nghttp2_nv nv[5];
	char code[12];
	size_t n = 0;

	snprintf(code, sizeof(code), "%d", call->status);
	grpc_nv(&nv[n++], ":status", http_status);
	grpc_nv(&nv[n++], "content-type", "application/grpc");
	grpc_nv(&nv[n++], "grpc-status", code);
	if (call->status_msg != NULL && call->status_msg[0] != '\0')
		grpc_nv(&nv[n++], "grpc-message", call->status_msg);
	if (extra_name != NULL)
		grpc_nv(&nv[n++], extra_name, extra_value);
	call->response_submitted = 1;
	return nghttp2_submit_response(call->conn->h2, call->stream_id, nv, n,
	    NULL);
}

/* Kick the data source after new output or a finish. */
static void
grpc_call_resume(struct grpc_call *call)
{
	if (call->deferred) {
		call->deferred = 0;
		nghttp2_session_resume_data(call->conn->h2, call->stream_id);
	}
	grpc_conn_schedule_flush(call->conn);
}

static void
grpc_call_set_status(struct grpc_call *call, int status, const char *msg)
{
	call->finished = 1;
	call->status = status;
	free(call->status_msg);
	call->status_msg = NULL;
	if (msg != NULL && msg[0] != '\0')
		call->status_msg = grpc_message_encode(msg, GRPC_CALL_MSG_MAX);
}

/*
 * Nothing more is read for a finished call: give back what its decoder
 * holds. Not from set_status: a handler may finish the call from inside
 * message() and still read the message, which may live in the decoder.
 */
static void
grpc_call_drop_input(struct grpc_call *call)
{
	grpc_frame_decoder_free(&call->dec);
	grpc_frame_decoder_init(&call->dec, 0);
	free(call->req);
	call->req = NULL;
	call->req_len = 0;
	grpc_call_account(call);
}

/* Decide the status and get it sent: after the queue, or at once. */
static void
grpc_call_end(struct grpc_call *call, int status, const char *msg,
    const char *http_status, const char *extra_name, const char *extra_value)
{
	int r;

	grpc_call_set_status(call, status, msg);
	if (!call->response_submitted)
		r = grpc_call_submit_headers_only(call, http_status, extra_name,
		    extra_value);
	else {
		r = 0;
		grpc_call_resume(call);
	}
	if (r != 0) {
		log_warnx("grpc %s: stream %d: cannot submit status: %s",
		    call->conn->peer, call->stream_id, nghttp2_strerror(r));
		nghttp2_submit_rst_stream(call->conn->h2, NGHTTP2_FLAG_NONE,
		    call->stream_id, NGHTTP2_INTERNAL_ERROR);
	}
	grpc_conn_schedule_flush(call->conn);
}

/*
 * Reset the stream: the way out when the status cannot follow the queued
 * output (a cap was hit, or a message is half sent). Clients map the
 * HTTP/2 error code to a status (grpc_status_from_http2_error()).
 */
static void
grpc_call_reset(struct grpc_call *call, int status, uint32_t h2_error)
{
	call->cancelled = 1;
	call->reset = 1;
	evbuffer_drain(call->out, evbuffer_get_length(call->out));
	call->head_left = 0;
	grpc_call_account(call);
	grpc_call_set_status(call, status, NULL);
	nghttp2_submit_rst_stream(call->conn->h2, NGHTTP2_FLAG_NONE,
	    call->stream_id, h2_error);
	grpc_conn_schedule_flush(call->conn);
}

void
grpc_call_fail(struct grpc_call *call, int status, const char *msg)
{
	if (call->finished)
		return;
	call->cancelled = 1;
	if (call->head_left > 0) {
		/* A message is half out: trailers cannot follow it. */
		grpc_call_reset(call, status,
		    status == GRPC_STATUS_RESOURCE_EXHAUSTED ?
			NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_CANCEL);
		return;
	}
	/* Whole messages not yet sent are dropped: the status goes first. */
	evbuffer_drain(call->out, evbuffer_get_length(call->out));
	grpc_call_account(call);
	grpc_call_end(call, status, msg, "200", NULL, NULL);
}

/* The client's input is over a limit: drop what it holds, tell it. */
static int
grpc_call_check_input(struct grpc_call *call)
{
	const struct grpc_server *srv = call->conn->srv;

	if (call->conn->in_held > srv->cfg.conn_input_cap ||
	    srv->stats.buffered > srv->cfg.server_buffer_cap) {
		grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
		    "server receive buffers full");
		grpc_call_drop_input(call);
		return -ENOBUFS;
	}
	return 0;
}

static void
grpc_call_deliver(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	call->method->msgs_received++;
	call->conn->srv->stats.msgs_received++;
	if (grpc_call_request_unary(call)) {
		/* Held until the client half-closes: there must be one. */
		if (call->nreq++ > 0) {
			grpc_call_fail(call, GRPC_STATUS_INTERNAL,
			    "more than one request message for a unary method");
			return;
		}
		if ((call->req = malloc(len > 0 ? len : 1)) == NULL) {
			grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
			    "out of memory");
			return;
		}
		memcpy(call->req, msg, len);
		call->req_len = len;
		grpc_call_account(call);
		return;
	}
	call->method->handler->message(call, msg, len);
}

void
grpc_call_on_data(struct grpc_call *call, const uint8_t *data, size_t len)
{
	while (len > 0 && !call->finished && call->method != NULL) {
		const uint8_t *msg;
		size_t used, mlen;
		int r;

		r = grpc_frame_decode(&call->dec, data, len, &used, &msg, &mlen,
		    NULL);
		if (r < 0) {
			char why[96];

			if (r == -EMSGSIZE)
				snprintf(why, sizeof(why),
				    "received message larger than max "
				    "(%u vs. %zu)", call->dec.msg_len,
				    call->dec.max_len);
			else if (r == -ENOTSUP)
				snprintf(why, sizeof(why), "compressed message "
				    "without a negotiated grpc-encoding");
			else if (r == -EPROTO)
				snprintf(why, sizeof(why),
				    "invalid message flags");
			else
				snprintf(why, sizeof(why), "%s",
				    strerror(-r));
			grpc_call_fail(call, grpc_frame_error_status(r), why);
			break;
		}
		data += used;
		len -= used;
		if (r == 1)
			grpc_call_deliver(call, msg, mlen);
	}
	if (!call->finished && call->method != NULL) {
		grpc_call_account(call);
		grpc_call_check_input(call);
	}
	if (call->finished)
		grpc_call_drop_input(call);
}

void
grpc_call_on_remote_close(struct grpc_call *call)
{
	const struct grpc_handler *h;

	call->remote_closed = 1;
	if (call->finished || call->method == NULL)
		return;
	h = call->method->handler;
	if (grpc_frame_decoder_pending(&call->dec) > 0) {
		grpc_call_fail(call, GRPC_STATUS_INTERNAL,
		    "stream ended inside a message");
		return;
	}
	if (grpc_call_request_unary(call)) {
		uint8_t *req = call->req;
		size_t len = call->req_len;

		if (call->nreq == 0) {
			grpc_call_fail(call, GRPC_STATUS_INTERNAL,
			    "missing request message");
			return;
		}
		/* Ours until the handler is done with it. */
		call->req = NULL;
		call->req_len = 0;
		grpc_call_account(call);
		h->message(call, req, len);
		free(req);
	}
	if (h->half_close != NULL && !call->finished)
		h->half_close(call);
}

static void
grpc_call_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_call *call = arg;

	(void)fd;
	(void)what;
	nghttp2_submit_rst_stream(call->conn->h2, NGHTTP2_FLAG_NONE,
	    call->stream_id, NGHTTP2_NO_ERROR);
	grpc_conn_schedule_flush(call->conn);
}

void
grpc_call_on_end_sent(struct grpc_call *call)
{
	struct timeval tv = { GRPC_CALL_LINGER_S, 0 };

	/*
	 * The response is complete. A client still sending is told to stop
	 * (RFC 9113 8.1: RST_STREAM with NO_ERROR), but not at once: gRPC
	 * clients end their side as soon as they see the status, and some
	 * HTTP/2 clients (curl 7.88) report an error when the reset comes
	 * while their last DATA frame is on its way. What it still sends is
	 * given back to flow control and dropped.
	 */
	if (call->remote_closed)
		return;
	if (call->linger_ev == NULL && (call->linger_ev = evtimer_new(
	    call->conn->srv->base, grpc_call_linger_cb, call)) == NULL) {
		grpc_call_linger_cb(-1, 0, call);
		return;
	}
	evtimer_add(call->linger_ev, &tv);
}

static double
grpc_elapsed_s(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) +
	    (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

void
grpc_call_on_stream_close(struct grpc_call *call, uint32_t error_code)
{
	struct grpc_server *srv = call->conn->srv;
	int status;

	if (call->finished)
		status = call->status;
	else {
		/* The peer reset it, or the connection went away. */
		status = GRPC_STATUS_CANCELLED;
		call->finished = 1;
		call->cancelled = 1;
		if (error_code != NGHTTP2_NO_ERROR && !call->conn->dying)
			srv->stats.calls_reset_by_peer++;
	}
	if (call->response_submitted || call->started)
		srv->stats.handled[status]++;
	if (call->started) {
		call->method->handled[status]++;
		metrics_histogram_observe(&call->method->handling,
		    grpc_elapsed_s(&call->t0));
		srv->stats.calls_open--;
		call->method->handler->close(call, status);
	}
	grpc_call_free(call);
}

/* Is the content type application/grpc, or application/grpc+proto etc.? */
static int
grpc_content_type_ok(const char *ct)
{
	const char *base = "application/grpc";
	size_t n = strlen(base);

	if (ct == NULL || strncmp(ct, base, n) != 0)
		return 0;
	return ct[n] == '\0' || ct[n] == '+' || ct[n] == ';';
}

static void
grpc_call_start_deadline(struct grpc_call *call, uint64_t ns)
{
	struct timeval tv;

	if (ns > (uint64_t)GRPC_CALL_DEADLINE_MAX_S * 1000000000ULL)
		ns = (uint64_t)GRPC_CALL_DEADLINE_MAX_S * 1000000000ULL;
	call->has_deadline = 1;
	call->deadline = call->t0;
	call->deadline.tv_sec += (time_t)(ns / 1000000000ULL);
	call->deadline.tv_nsec += (long)(ns % 1000000000ULL);
	if (call->deadline.tv_nsec >= 1000000000L) {
		call->deadline.tv_sec++;
		call->deadline.tv_nsec -= 1000000000L;
	}
	tv.tv_sec = (time_t)(ns / 1000000000ULL);
	/* Round up: never fire before the deadline. */
	tv.tv_usec = (suseconds_t)((ns % 1000000000ULL + 999) / 1000);
	if (tv.tv_usec >= 1000000) {
		tv.tv_sec++;
		tv.tv_usec -= 1000000;
	}
	call->deadline_ev = evtimer_new(call->conn->srv->base,
	    grpc_call_deadline_cb, call);
	if (call->deadline_ev != NULL)
		evtimer_add(call->deadline_ev, &tv);
}

void
grpc_call_on_request(struct grpc_call *call)
{
	struct grpc_server *srv = call->conn->srv;
	struct grpc_method_entry *m;
	uint64_t timeout_ns = 0;
	int r;

	if (call->finished)
		return;
	if (call->http_method == NULL ||
	    strcmp(call->http_method, "POST") != 0) {
		grpc_call_end(call, GRPC_STATUS_INTERNAL,
		    "gRPC requires POST", "405", "allow", "POST");
		return;
	}
	if (!grpc_content_type_ok(call->content_type)) {
		grpc_call_end(call, GRPC_STATUS_INTERNAL,
		    "content-type is not application/grpc", "415", NULL,
		    NULL);
		return;
	}
	if (call->encoding != NULL && strcmp(call->encoding, "identity") != 0) {
		char why[96];

		snprintf(why, sizeof(why), "grpc-encoding %.40s is not "
		    "supported", call->encoding);
		grpc_call_end(call, GRPC_STATUS_UNIMPLEMENTED, why, "200",
		    "grpc-accept-encoding", "identity");
		return;
	}
	if (call->timeout != NULL && grpc_timeout_parse(call->timeout,
	    strlen(call->timeout), &timeout_ns) != 0) {
		grpc_call_end(call, GRPC_STATUS_INTERNAL,
		    "malformed grpc-timeout", "200", NULL, NULL);
		return;
	}
	if (call->path == NULL ||
	    (m = grpc_server_find_method(srv, call->path)) == NULL) {
		char why[160];

		snprintf(why, sizeof(why), "unknown method %.120s",
		    call->path != NULL ? call->path : "(none)");
		grpc_call_end(call, GRPC_STATUS_UNIMPLEMENTED, why, "200",
		    NULL, NULL);
		return;
	}
	if (srv->shutting_down) {
		grpc_call_end(call, GRPC_STATUS_UNAVAILABLE,
		    "server shutting down", "200", NULL, NULL);
		return;
	}

	call->method = m;
	call->started = 1;
	clock_gettime(CLOCK_MONOTONIC, &call->t0);
	m->started++;
	srv->stats.calls_started++;
	srv->stats.calls_open++;
	if (call->timeout != NULL)
		grpc_call_start_deadline(call, timeout_ns);
	r = m->handler->start(call, m->arg);
	if (r < 0 && !call->finished) {
		log_warnx("grpc %s: %s: handler refused the call: %s",
		    call->conn->peer, m->path, strerror(-r));
		grpc_call_fail(call, GRPC_STATUS_INTERNAL,
		    "handler failed to start");
	}
}

static void
grpc_call_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_call *call = arg;
	struct timespec now;

	(void)fd;
	(void)what;
	/*
	 * libevent's timers run on a coarse, cached clock and may fire a
	 * few milliseconds early: never fail a call before its deadline.
	 */
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec < call->deadline.tv_sec ||
	    (now.tv_sec == call->deadline.tv_sec &&
		now.tv_nsec < call->deadline.tv_nsec)) {
		struct timeval tv = { 0, 1000 };

		evtimer_add(call->deadline_ev, &tv);
		return;
	}
	grpc_call_fail(call, GRPC_STATUS_DEADLINE_EXCEEDED,
	    "deadline exceeded");
}

/* ---- the handler API ---- */

void
grpc_call_set_data(struct grpc_call *call, void *data)
{
	call->data = data;
}

void *
grpc_call_data(const struct grpc_call *call)
{
	return call->data;
}

const char *
grpc_call_path(const struct grpc_call *call)
{
	return call->path;
}

const char *
grpc_call_peer(const struct grpc_call *call)
{
	return call->conn->peer;
}

const char *
grpc_call_metadata(const struct grpc_call *call, const char *name)
{
	for (size_t i = 0; i < call->nmd; i++)
		if (strcmp(call->md[i].name, name) == 0)
			return call->md[i].value;
	return NULL;
}

int64_t
grpc_call_remaining_ms(const struct grpc_call *call)
{
	struct timespec now;
	int64_t ms;

	if (!call->has_deadline)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (int64_t)(call->deadline.tv_sec - now.tv_sec) * 1000 +
	    (call->deadline.tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? ms : 0;
}

size_t
grpc_call_queued(const struct grpc_call *call)
{
	return call->out != NULL ? evbuffer_get_length(call->out) : 0;
}

int
grpc_call_notify_drained(struct grpc_call *call)
{
	if (call->method == NULL || call->method->handler->drained == NULL)
		return -EINVAL;
	call->want_drained = 1;
	if (evbuffer_get_length(call->out) == 0) {
		call->drained_ready = 1;
		call->conn->drained_ready = 1;
		grpc_conn_schedule_flush(call->conn);
	}
	return 0;
}

void
grpc_call_run_drained(struct grpc_conn *conn)
{
	struct grpc_call *call;

	conn->drained_ready = 0;
	/*
	 * drained() may send, finish, or ask again; it frees no call (that
	 * happens only in nghttp2's stream close), so the walk is safe.
	 */
	TAILQ_FOREACH(call, &conn->calls, entry) {
		if (!call->drained_ready)
			continue;
		call->drained_ready = 0;
		call->want_drained = 0;
		if (call->started && !call->finished && !conn->dying)
			call->method->handler->drained(call);
	}
}

int
grpc_call_send(struct grpc_call *call, const void *msg, size_t len)
{
	struct grpc_conn *conn = call->conn;
	const struct grpc_server *srv = conn->srv;
	size_t add = GRPC_FRAME_HEADER_LEN + len;
	int r;

	if (call->cancelled || conn->dying)
		return -ECANCELED;
	if (call->finished)
		return -EINVAL;
	if (grpc_call_response_unary(call) && call->nsent > 0)
		return -EINVAL;
	if (len > srv->cfg.max_send_message) {
		grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
		    "response message larger than max");
		return -EMSGSIZE;
	}
	if (call->out_held + add > srv->cfg.call_output_cap ||
	    conn->out_held + add > srv->cfg.conn_output_cap ||
	    srv->stats.buffered + add > srv->cfg.server_buffer_cap) {
		/* The peer does not read: stop queueing for it. */
		conn->srv->stats.calls_output_overflow++;
		grpc_call_reset(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
		    NGHTTP2_ENHANCE_YOUR_CALM);
		return -ENOBUFS;
	}
	if ((r = grpc_frame_append(call->out, msg, len)) != 0)
		return r;
	grpc_call_account(call);
	call->nsent++;
	call->method->msgs_sent++;
	conn->srv->stats.msgs_sent++;
	if (!call->response_submitted) {
		if ((r = grpc_call_submit_response(call)) != 0) {
			log_warnx("grpc %s: stream %d: cannot submit response: "
			    "%s", conn->peer, call->stream_id,
			    nghttp2_strerror(r));
			grpc_call_reset(call, GRPC_STATUS_INTERNAL,
			    NGHTTP2_INTERNAL_ERROR);
			return -ENOMEM;
		}
		grpc_conn_schedule_flush(conn);
	} else
		grpc_call_resume(call);
	return 0;
}

int
grpc_call_finish(struct grpc_call *call, int status, const char *message)
{
	if (call->cancelled || call->conn->dying)
		return -ECANCELED;
	if (call->finished)
		return -EINVAL;
	if (status < 0 || status > GRPC_STATUS_MAX)
		status = GRPC_STATUS_UNKNOWN;
	if (status == GRPC_STATUS_OK && grpc_call_response_unary(call) &&
	    call->nsent == 0) {
		log_warnx("grpc %s: %s finished OK without a response",
		    call->conn->peer, call->method->path);
		status = GRPC_STATUS_INTERNAL;
		message = "no response message";
	}
	grpc_call_end(call, status, message, "200", NULL, NULL);
	return 0;
}
