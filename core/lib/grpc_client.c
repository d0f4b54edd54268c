/*
 * The gRPC client (grpc_client.h): one HTTP/2 connection through nghttp2
 * on a bufferevent (socket, TLS socket, or a pair in tests).
 *
 * All work on the session happens from the loop: reads feed nghttp2 and
 * deliver callbacks, a deferred "flush" event submits new calls, hands
 * nghttp2's output to the transport while it holds less than 64 KiB,
 * ends calls that failed locally and runs drained(). User calls
 * (open/send/half-close/cancel) only change state and schedule a flush,
 * so nghttp2 is never entered from inside one of its own callbacks and
 * the owner is never re-entered.
 *
 * Flow control: window is given back (nghttp2_session_consume) only for
 * bytes that were handed to message() or are held by the call's bounded
 * decoder, so the server can never make us hold more than one message of
 * max_recv_message per call.
 */
#include "grpc_client.h"

#include <sys/queue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "grpc_frame.h"
#include "log.h"

/* nghttp2 output is pulled while the transport holds less than this. */
#define GRPC_CLIENT_OUT_HIGH (64 * 1024)
/* Input given to nghttp2 between two flushes. */
#define GRPC_CLIENT_IN_BATCH (8 * 1024)
/* Response headers and trailers kept per call, names and values. */
#define GRPC_CLIENT_MAX_HEADERS (16 * 1024)

struct grpc_client_hdr {
	char *name;
	char *value;
};

TAILQ_HEAD(grpc_client_call_list, grpc_client_call);

struct grpc_client_call {
	TAILQ_ENTRY(grpc_client_call) entry;
	struct grpc_client *cl;
	const struct grpc_client_handler *handler;
	void *arg;
	char *path;
	int64_t timeout_ms;
	int32_t stream_id;     /* 0 until submitted */
	struct grpc_client_hdr *md; /* request metadata */
	size_t nmd;
	struct evbuffer *out;  /* framed requests not yet given to HTTP/2 */
	int half_closed;
	int deferred;          /* the data provider said DEFERRED */
	int want_drained;
	struct grpc_frame_decoder dec;
	struct grpc_client_hdr *hdrs; /* response headers and trailers */
	size_t nhdrs;
	size_t hdr_bytes;
	int http_status;
	int got_headers;
	int grpc_status;       /* -1 until a grpc-status header */
	char *grpc_message;
	int local_status;      /* -1, or our own verdict (wins) */
	char *local_message;
	struct event *deadline_ev;
};

struct grpc_client {
	struct event_base *base;
	struct grpc_client_config cfg;
	struct bufferevent *bev;
	nghttp2_session *h2;
	void *tls;             /* SSL_CTX *, referenced; NULL for h2c */
	char *authority;
	struct grpc_client_call_list calls;
	struct event *flush_ev;
	struct event *down_ev;
	struct event *timer_ev; /* connect timeout, then keepalive */
	int connected;         /* transport up */
	int handshaken;        /* server SETTINGS seen */
	int ping_outstanding;
	int read_paused;       /* our output backs up */
	int too_many_pings;    /* GOAWAY said our PINGs come too often */
	int goaway;            /* received or sent: no new calls */
	int down;
	int dying;
	char down_reason[128];
	grpc_client_down_cb down_cb;
	void *down_arg;
	struct grpc_client_stats stats;
};

static void grpc_client_go_down(struct grpc_client *cl, const char *reason);

void
grpc_client_config_default(struct grpc_client_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_recv_message = GRPC_FRAME_MAX_DEFAULT;
	cfg->call_send_cap = 1024 * 1024;
	cfg->stream_window = 1024 * 1024;
	cfg->conn_window = 4 * 1024 * 1024;
	cfg->connect_timeout_ms = 10000;
	cfg->keepalive_ms = 60000;
	cfg->keepalive_timeout_ms = 20000;
}

static void
grpc_client_timer_ms(struct event *ev, int64_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(ev, &tv);
}

static void
grpc_client_schedule_flush(struct grpc_client *cl)
{
	if (!cl->dying && !cl->down)
		event_active(cl->flush_ev, EV_TIMEOUT, 0);
}

/* ---- calls ---- */

static void
grpc_client_hdrs_free(struct grpc_client_hdr *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

static int
grpc_client_hdrs_add(struct grpc_client_hdr **h, size_t *n,
    const char *name, size_t nlen, const char *value, size_t vlen)
{
	struct grpc_client_hdr *nh;

	if ((nh = realloc(*h, (*n + 1) * sizeof(**h))) == NULL)
		return -ENOMEM;
	*h = nh;
	nh[*n].name = strndup(name, nlen);
	nh[*n].value = strndup(value, vlen);
	if (nh[*n].name == NULL || nh[*n].value == NULL) {
		free(nh[*n].name);
		free(nh[*n].value);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

/*
 * Our own verdict on a call (deadline, oversized reply, bad reply,
 * cancel): the first one wins. The stream is reset; close() follows from
 * the stream's close, or from the flush for a call never submitted.
 */
static void
grpc_client_call_fail(struct grpc_client_call *call, int status,
    const char *message)
{
	struct grpc_client *cl = call->cl;

	if (call->local_status >= 0)
		return;
	call->local_status = status;
	call->local_message = strdup(message);
	if (call->stream_id > 0 && !cl->down)
		nghttp2_submit_rst_stream(cl->h2, NGHTTP2_FLAG_NONE,
		    call->stream_id, NGHTTP2_CANCEL);
	grpc_client_schedule_flush(cl);
}

/* The final status: ours, the server's, or what the transport says. */
static void
grpc_client_call_verdict(struct grpc_client_call *call, uint32_t error_code,
    int *ret_status, const char **ret_message, char *buf, size_t buflen)
{
	if (call->local_status >= 0) {
		*ret_status = call->local_status;
		*ret_message = call->local_message != NULL ?
		    call->local_message : "";
		return;
	}
	if (call->grpc_status >= 0 && error_code == NGHTTP2_NO_ERROR) {
		if (grpc_frame_decoder_pending(&call->dec) > 0) {
			*ret_status = GRPC_STATUS_INTERNAL;
			*ret_message = "reply ended inside a message";
			return;
		}
		*ret_status = call->grpc_status;
		*ret_message = call->grpc_message != NULL ?
		    call->grpc_message : "";
		return;
	}
	if (error_code != NGHTTP2_NO_ERROR) {
		*ret_status = grpc_status_from_http2_error(error_code);
		snprintf(buf, buflen, "stream reset by the server: %s",
		    nghttp2_http2_strerror(error_code));
	} else if (call->http_status != 0 && call->http_status != 200) {
		*ret_status = grpc_status_from_http_status(call->http_status);
		snprintf(buf, buflen, "HTTP status %d", call->http_status);
	} else {
		*ret_status = GRPC_STATUS_INTERNAL;
		snprintf(buf, buflen, "reply without grpc-status");
	}
	*ret_message = buf;
}

/* close() and free; the call is unlinked from everything. */
static void
grpc_client_call_end(struct grpc_client_call *call, uint32_t error_code)
{
	struct grpc_client *cl = call->cl;
	const char *message;
	char buf[128];
	int status;

	grpc_client_call_verdict(call, error_code, &status, &message, buf,
	    sizeof(buf));
	TAILQ_REMOVE(&cl->calls, call, entry);
	cl->stats.calls_open--;
	if (status >= 0 && status <= GRPC_STATUS_MAX)
		cl->stats.handled[status]++;
	if (call->stream_id > 0 && !cl->dying && !cl->down)
		nghttp2_session_set_stream_user_data(cl->h2, call->stream_id,
		    NULL);
	if (call->deadline_ev != NULL)
		event_free(call->deadline_ev);
	call->deadline_ev = NULL;
	call->handler->close(call, status, message, call->arg);
	grpc_frame_decoder_free(&call->dec);
	evbuffer_free(call->out);
	grpc_client_hdrs_free(call->md, call->nmd);
	grpc_client_hdrs_free(call->hdrs, call->nhdrs);
	free(call->grpc_message);
	free(call->local_message);
	free(call->path);
	free(call);
	/* A client that said or heard GOAWAY is done with its last call. */
	if (cl->goaway && TAILQ_EMPTY(&cl->calls) && !cl->dying && !cl->down)
		grpc_client_schedule_flush(cl);
}

static void
grpc_client_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_client_call *call = arg;

	(void)fd;
	(void)what;
	grpc_client_call_fail(call, GRPC_STATUS_DEADLINE_EXCEEDED,
	    "deadline exceeded");
}

static int
grpc_client_header_name_ok(const char *name)
{
	if (*name == '\0' || *name == ':' || strncmp(name, "grpc-", 5) == 0)
		return 0;
	for (const char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || *p == '.'))
			return 0;
	return strcmp(name, "te") != 0 && strcmp(name, "content-type") != 0;
}

struct grpc_client_call *
grpc_client_call_open(struct grpc_client *cl, const char *path,
    int64_t timeout_ms, const struct grpc_client_handler *handler, void *arg)
{
	struct grpc_client_call *call;

	if (!grpc_client_usable(cl)) {
		errno = ENOTCONN;
		return NULL;
	}
	if (path == NULL || path[0] != '/' || strchr(path + 1, '/') == NULL ||
	    handler == NULL || handler->close == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if ((call = calloc(1, sizeof(*call))) == NULL)
		return NULL;
	call->cl = cl;
	call->handler = handler;
	call->arg = arg;
	call->timeout_ms = timeout_ms;
	call->grpc_status = -1;
	call->local_status = -1;
	grpc_frame_decoder_init(&call->dec, cl->cfg.max_recv_message);
	if ((call->path = strdup(path)) == NULL ||
	    (call->out = evbuffer_new()) == NULL)
		goto fail;
	if (timeout_ms > 0) {
		if ((call->deadline_ev = evtimer_new(cl->base,
		    grpc_client_deadline_cb, call)) == NULL)
			goto fail;
		grpc_client_timer_ms(call->deadline_ev, timeout_ms);
	}
	TAILQ_INSERT_TAIL(&cl->calls, call, entry);
	cl->stats.calls_started++;
	cl->stats.calls_open++;
	grpc_client_schedule_flush(cl);
	return call;
fail:
	if (call->out != NULL)
		evbuffer_free(call->out);
	free(call->path);
	free(call);
	errno = ENOMEM;
	return NULL;
}

int
grpc_client_call_metadata(struct grpc_client_call *call, const char *name,
    const char *value)
{
	if (call->stream_id != 0 || !grpc_client_header_name_ok(name))
		return -EINVAL;
	for (const char *p = value; *p != '\0'; p++)
		if (*p < 0x20 || *p > 0x7e)
			return -EINVAL;
	return grpc_client_hdrs_add(&call->md, &call->nmd, name,
	    strlen(name), value, strlen(value));
}

static void
grpc_client_call_resume(struct grpc_client_call *call)
{
	if (call->stream_id > 0 && call->deferred) {
		call->deferred = 0;
		nghttp2_session_resume_data(call->cl->h2, call->stream_id);
	}
	grpc_client_schedule_flush(call->cl);
}

int
grpc_client_call_send(struct grpc_client_call *call, const void *msg,
    size_t len)
{
	int rc;

	if (call->half_closed || call->local_status >= 0 || call->cl->down)
		return -EINVAL;
	if (evbuffer_get_length(call->out) >= call->cl->cfg.call_send_cap) {
		call->want_drained = 1;
		return -EAGAIN;
	}
	if ((rc = grpc_frame_append(call->out, msg, len)) != 0)
		return rc;
	call->cl->stats.msgs_sent++;
	grpc_client_call_resume(call);
	return 0;
}

size_t
grpc_client_call_queued(const struct grpc_client_call *call)
{
	return evbuffer_get_length(call->out);
}

int
grpc_client_call_half_close(struct grpc_client_call *call)
{
	if (call->half_closed || call->local_status >= 0)
		return -EINVAL;
	call->half_closed = 1;
	grpc_client_call_resume(call);
	return 0;
}

void
grpc_client_call_cancel(struct grpc_client_call *call)
{
	grpc_client_call_fail(call, GRPC_STATUS_CANCELLED,
	    "cancelled by the client");
}

const char *
grpc_client_call_header(const struct grpc_client_call *call,
    const char *name)
{
	for (size_t i = 0; i < call->nhdrs; i++)
		if (strcmp(call->hdrs[i].name, name) == 0)
			return call->hdrs[i].value;
	return NULL;
}

/* ---- nghttp2 callbacks ---- */

static ssize_t
grpc_client_data_cb(nghttp2_session *h2, int32_t stream_id, uint8_t *buf,
    size_t length, uint32_t *data_flags, nghttp2_data_source *source,
    void *user_data)
{
	struct grpc_client_call *call = source->ptr;
	int n;

	(void)h2;
	(void)stream_id;
	(void)user_data;
	n = evbuffer_remove(call->out, buf, length);
	if (n < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (evbuffer_get_length(call->out) == 0 && call->half_closed)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	else if (n == 0) {
		call->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	return n;
}

static int
grpc_client_on_header(nghttp2_session *h2, const nghttp2_frame *frame,
    const uint8_t *name, size_t namelen, const uint8_t *value,
    size_t valuelen, uint8_t flags, void *user_data)
{
	struct grpc_client_call *call;
	int rc;

	(void)flags;
	(void)user_data;
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
	if (call == NULL || call->local_status >= 0)
		return 0;
	call->hdr_bytes += namelen + valuelen;
	if (call->hdr_bytes > GRPC_CLIENT_MAX_HEADERS) {
		grpc_client_call_fail(call, GRPC_STATUS_INTERNAL,
		    "reply headers too large");
		return 0;
	}
	if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
		call->http_status = 0;
		for (size_t i = 0; i < valuelen && i < 3; i++)
			call->http_status = call->http_status * 10 +
			    (value[i] - '0');
		return 0;
	}
	if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
		rc = grpc_status_parse((const char *)value, valuelen);
		call->grpc_status = rc < 0 ? GRPC_STATUS_UNKNOWN : rc;
		return 0;
	}
	if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
		free(call->grpc_message);
		if ((call->grpc_message = strndup((const char *)value,
		    valuelen)) != NULL)
			grpc_message_decode(call->grpc_message, valuelen);
		return 0;
	}
	if (grpc_client_hdrs_add(&call->hdrs, &call->nhdrs,
	    (const char *)name, namelen, (const char *)value, valuelen) != 0)
		grpc_client_call_fail(call, GRPC_STATUS_INTERNAL,
		    "out of memory");
	return 0;
}

static int
grpc_client_on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame,
    void *user_data)
{
	struct grpc_client *cl = user_data;
	struct grpc_client_call *call;
	const char *ct;

	switch (frame->hd.type) {
	case NGHTTP2_SETTINGS:
		if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && !cl->handshaken) {
			cl->handshaken = 1;
			evtimer_del(cl->timer_ev);
			if (cl->cfg.keepalive_ms > 0)
				grpc_client_timer_ms(cl->timer_ev,
				    cl->cfg.keepalive_ms);
		}
		break;
	case NGHTTP2_PING:
		if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && cl->ping_outstanding) {
			cl->ping_outstanding = 0;
			if (cl->cfg.keepalive_ms > 0)
				grpc_client_timer_ms(cl->timer_ev,
				    cl->cfg.keepalive_ms);
		}
		break;
	case NGHTTP2_GOAWAY:
		/*
		 * nghttp2 closes the streams above last_stream_id itself with
		 * REFUSED_STREAM: UNAVAILABLE, safe to retry elsewhere.
		 */
		cl->goaway = 1;
		/* gRPC servers say so when our keepalive is too eager. */
		if (frame->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM &&
		    frame->goaway.opaque_data_len == 14 &&
		    memcmp(frame->goaway.opaque_data, "too_many_pings", 14) == 0)
			cl->too_many_pings = 1;
		log_debug("grpc client %s: GOAWAY (%s), last stream %d",
		    cl->authority,
		    nghttp2_http2_strerror(frame->goaway.error_code),
		    frame->goaway.last_stream_id);
		grpc_client_schedule_flush(cl);
		break;
	case NGHTTP2_HEADERS:
		call = nghttp2_session_get_stream_user_data(h2,
		    frame->hd.stream_id);
		if (call == NULL || call->local_status >= 0)
			break;
		if (frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
			call->got_headers = 1;
			ct = grpc_client_call_header(call, "content-type");
			if (call->http_status == 200 && (ct == NULL ||
			    strncmp(ct, "application/grpc", 16) != 0)) {
				grpc_client_call_fail(call, GRPC_STATUS_UNKNOWN,
				    "reply content-type is not application/grpc");
				break;
			}
			if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
			    call->handler->headers != NULL)
				call->handler->headers(call, call->arg);
		}
		break;
	default:
		break;
	}
	return 0;
}

static int
grpc_client_on_data(nghttp2_session *h2, uint8_t flags, int32_t stream_id,
    const uint8_t *data, size_t len, void *user_data)
{
	struct grpc_client *cl = user_data;
	struct grpc_client_call *call;
	size_t off = 0;

	(void)flags;
	call = nghttp2_session_get_stream_user_data(h2, stream_id);
	/* Everything is processed or held within bounds: give it back. */
	nghttp2_session_consume(h2, stream_id, len);
	if (call == NULL)
		return 0;
	while (off < len && call->local_status < 0) {
		const uint8_t *msg;
		size_t used, mlen;
		char buf[128];
		int rc;

		rc = grpc_frame_decode(&call->dec, data + off, len - off, &used,
		    &msg, &mlen, NULL);
		off += used;
		if (rc < 0) {
			if (rc == -EMSGSIZE)
				snprintf(buf, sizeof(buf), "reply message "
				    "larger than max (%zu)",
				    cl->cfg.max_recv_message);
			else
				snprintf(buf, sizeof(buf), "bad reply "
				    "message: %s", strerror(-rc));
			grpc_client_call_fail(call, grpc_frame_error_status(rc),
			    buf);
			break;
		}
		if (rc == 0)
			break;
		cl->stats.msgs_received++;
		if (call->handler->message != NULL)
			call->handler->message(call, msg, mlen, call->arg);
	}
	return 0;
}

static int
grpc_client_on_stream_close(nghttp2_session *h2, int32_t stream_id,
    uint32_t error_code, void *user_data)
{
	struct grpc_client_call *call;

	(void)user_data;
	call = nghttp2_session_get_stream_user_data(h2, stream_id);
	if (call != NULL) {
		call->stream_id = -1; /* its user data is gone with it */
		grpc_client_call_end(call, error_code);
	}
	return 0;
}

static int
grpc_client_on_frame_not_send(nghttp2_session *h2, const nghttp2_frame *frame,
    int lib_error_code, void *user_data)
{
	struct grpc_client_call *call;

	(void)user_data;
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
	if (call == NULL)
		return 0;
	/* Never reached the server (GOAWAY meanwhile): safe to retry. */
	if (call->local_status < 0) {
		call->local_status = GRPC_STATUS_UNAVAILABLE;
		call->local_message = strdup(nghttp2_strerror(lib_error_code));
	}
	nghttp2_session_set_stream_user_data(h2, frame->hd.stream_id, NULL);
	call->stream_id = -1;
	grpc_client_call_end(call, NGHTTP2_NO_ERROR);
	return 0;
}

/* ---- the connection ---- */

static void
grpc_client_nv(nghttp2_nv *v, const char *name, const char *value)
{
	v->name = (uint8_t *)(uintptr_t)name;
	v->namelen = strlen(name);
	v->value = (uint8_t *)(uintptr_t)value;
	v->valuelen = strlen(value);
	v->flags = NGHTTP2_NV_FLAG_NONE;
}

static int
grpc_client_submit(struct grpc_client *cl, struct grpc_client_call *call)
{
	nghttp2_data_provider prd;
	char timeout[GRPC_TIMEOUT_BUFLEN];
	nghttp2_nv *nva;
	size_t n = 0;
	int32_t id;

	if ((nva = calloc(8 + call->nmd, sizeof(*nva))) == NULL)
		return -ENOMEM;
	grpc_client_nv(&nva[n++], ":method", "POST");
	grpc_client_nv(&nva[n++], ":scheme", cl->tls != NULL ? "https" : "http");
	grpc_client_nv(&nva[n++], ":path", call->path);
	grpc_client_nv(&nva[n++], ":authority", cl->authority);
	grpc_client_nv(&nva[n++], "content-type", "application/grpc");
	grpc_client_nv(&nva[n++], "te", "trailers");
	grpc_client_nv(&nva[n++], "user-agent", "troika-grpc/1");
	if (call->timeout_ms > 0) {
		grpc_timeout_format((uint64_t)call->timeout_ms * 1000000u,
		    timeout);
		grpc_client_nv(&nva[n++], "grpc-timeout", timeout);
	}
	for (size_t i = 0; i < call->nmd; i++)
		grpc_client_nv(&nva[n++], call->md[i].name, call->md[i].value);
	prd.source.ptr = call;
	prd.read_callback = grpc_client_data_cb;
	id = nghttp2_submit_request(cl->h2, NULL, nva, n, &prd, call);
	free(nva);
	if (id < 0)
		return -EIO;
	call->stream_id = id;
	return 0;
}

static void
grpc_client_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_client *cl = arg;
	struct grpc_client_call *call, *next;
	struct evbuffer *out;

	(void)fd;
	(void)what;
	if (cl->down)
		return;
	/*
	 * New calls go out once connected (until then they are ours alone,
	 * so a deadline or cancel ends them at once); calls that failed
	 * before going out end here.
	 */
	for (call = TAILQ_FIRST(&cl->calls); call != NULL; call = next) {
		next = TAILQ_NEXT(call, entry);
		if (call->stream_id != 0)
			continue;
		if (call->local_status < 0 && cl->goaway) {
			call->local_status = GRPC_STATUS_UNAVAILABLE;
			call->local_message = strdup("connection going away");
		}
		if (call->local_status < 0 && cl->connected &&
		    grpc_client_submit(cl, call) != 0)
			grpc_client_call_fail(call, GRPC_STATUS_INTERNAL,
			    "cannot submit the request");
		if (call->local_status >= 0 && call->stream_id == 0) {
			call->stream_id = -1;
			grpc_client_call_end(call, NGHTTP2_NO_ERROR);
		}
	}
	if (!cl->connected)
		return;
	out = bufferevent_get_output(cl->bev);
	while (evbuffer_get_length(out) < GRPC_CLIENT_OUT_HIGH) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(cl->h2, &data);

		if (n < 0) {
			grpc_client_go_down(cl, nghttp2_strerror((int)n));
			return;
		}
		if (n == 0)
			break;
		if (evbuffer_add(out, data, (size_t)n) != 0) {
			grpc_client_go_down(cl, "out of memory");
			return;
		}
		cl->stats.bytes_sent += (uint64_t)n;
	}
	/* Producers waiting for room. */
	for (call = TAILQ_FIRST(&cl->calls); call != NULL; call = next) {
		next = TAILQ_NEXT(call, entry);
		if (call->want_drained && evbuffer_get_length(call->out) == 0 &&
		    call->local_status < 0) {
			call->want_drained = 0;
			if (call->handler->drained != NULL)
				call->handler->drained(call, call->arg);
		}
	}
	/*
	 * A server that sends but does not read gets no more of our time:
	 * what it sends (PINGs, SETTINGS) would only make more output.
	 */
	if (evbuffer_get_length(out) >= GRPC_CLIENT_OUT_HIGH) {
		if (!cl->read_paused) {
			cl->read_paused = 1;
			bufferevent_disable(cl->bev, EV_READ);
		}
	} else if (cl->read_paused) {
		cl->read_paused = 0;
		bufferevent_enable(cl->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_input(cl->bev)) > 0)
			bufferevent_trigger(cl->bev, EV_READ,
			    BEV_TRIG_IGNORE_WATERMARKS |
			    BEV_TRIG_DEFER_CALLBACKS);
	}
	if (cl->goaway && TAILQ_EMPTY(&cl->calls))
		grpc_client_go_down(cl, "GOAWAY and no calls left");
	else if (!nghttp2_session_want_read(cl->h2) &&
	    !nghttp2_session_want_write(cl->h2))
		grpc_client_go_down(cl, "HTTP/2 session ended");
}

static void
grpc_client_down_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_client *cl = arg;

	(void)fd;
	(void)what;
	if (cl->down_cb != NULL)
		cl->down_cb(cl, cl->down_reason, cl->down_arg);
}

/*
 * The connection is gone: every call ends UNAVAILABLE (unless it had a
 * verdict of its own), then down() from its own event. Called from the
 * loop only, never from inside nghttp2.
 */
static void
grpc_client_go_down(struct grpc_client *cl, const char *reason)
{
	struct grpc_client_call *call;
	char msg[160];

	if (cl->down || cl->dying)
		return;
	cl->down = 1;
	snprintf(cl->down_reason, sizeof(cl->down_reason), "%s", reason);
	log_debug("grpc client %s: down: %s", cl->authority, reason);
	bufferevent_disable(cl->bev, EV_READ | EV_WRITE);
	evtimer_del(cl->timer_ev);
	snprintf(msg, sizeof(msg), "connection lost: %s", reason);
	while ((call = TAILQ_FIRST(&cl->calls)) != NULL) {
		if (call->local_status < 0) {
			call->local_status = GRPC_STATUS_UNAVAILABLE;
			call->local_message = strdup(msg);
		}
		grpc_client_call_end(call, NGHTTP2_NO_ERROR);
	}
	event_active(cl->down_ev, EV_TIMEOUT, 0);
}

static void
grpc_client_read_cb(struct bufferevent *bev, void *arg)
{
	struct grpc_client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;

	/*
	 * In batches, with output flushed in between: the control frames a
	 * batch makes nghttp2 answer (a PING flood) stay well under its
	 * limit of queued acks, and once our output backs up the flush
	 * pauses reading, so a server that sends but never reads gets
	 * nothing more from us.
	 */
	while (!cl->down && !cl->read_paused &&
	    (len = evbuffer_get_contiguous_space(in)) > 0) {
		ssize_t n;

		if (len > GRPC_CLIENT_IN_BATCH)
			len = GRPC_CLIENT_IN_BATCH;
		n = nghttp2_session_mem_recv(cl->h2,
		    evbuffer_pullup(in, (ssize_t)len), len);
		if (n < 0) {
			grpc_client_go_down(cl, nghttp2_strerror((int)n));
			return;
		}
		cl->stats.bytes_received += (uint64_t)n;
		evbuffer_drain(in, (size_t)n);
		grpc_client_flush_cb(-1, 0, cl);
	}
}

static void
grpc_client_write_cb(struct bufferevent *bev, void *arg)
{
	struct grpc_client *cl = arg;

	(void)bev;
	grpc_client_flush_cb(-1, 0, cl);
}

static void
grpc_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct grpc_client *cl = arg;
	char reason[128];

	if (what & BEV_EVENT_CONNECTED) {
		if (cl->tls != NULL) {
			SSL *ssl = bufferevent_openssl_get_ssl(bev);
			const unsigned char *alpn = NULL;
			unsigned int alen = 0;

			SSL_get0_alpn_selected(ssl, &alpn, &alen);
			if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
				grpc_client_go_down(cl,
				    "TLS: the server did not select ALPN h2");
				return;
			}
		}
		/*
		 * Small frames (a result, a heartbeat) go out at once: with
		 * Nagle on, one waits for the peer's delayed ACK, 40 ms on
		 * Linux, which was the whole p99.9 of report latency.
		 */
		{
			evutil_socket_t fd = bufferevent_getfd(bev);
			int one = 1;

			if (fd >= 0)
				(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
				    &one, sizeof(one));
		}
		cl->connected = 1;
		bufferevent_enable(bev, EV_READ | EV_WRITE);
		grpc_client_flush_cb(-1, 0, cl);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		grpc_client_go_down(cl, "connection closed by the server");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = cl->tls != NULL ?
		    bufferevent_get_openssl_error(bev) : 0;
		int dns = bufferevent_socket_get_dns_error(bev);

		if (dns != 0) {
			snprintf(reason, sizeof(reason), "cannot resolve: %s",
			    evutil_gai_strerror(dns));
		} else if (e != 0) {
			char ebuf[96];

			ERR_error_string_n(e, ebuf, sizeof(ebuf));
			snprintf(reason, sizeof(reason), "TLS: %s", ebuf);
		} else {
			int err = EVUTIL_SOCKET_ERROR();

			snprintf(reason, sizeof(reason), "%s",
			    err != 0 ? strerror(err) : "transport error");
		}
		grpc_client_go_down(cl, reason);
	}
}

static void
grpc_client_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_client *cl = arg;

	(void)fd;
	(void)what;
	if (!cl->handshaken) {
		grpc_client_go_down(cl, "connect timeout");
		return;
	}
	if (cl->ping_outstanding) {
		grpc_client_go_down(cl, "keepalive PING not answered");
		return;
	}
	/* Probe only a connection that carries calls. */
	if (!TAILQ_EMPTY(&cl->calls) && cl->cfg.keepalive_timeout_ms > 0 &&
	    nghttp2_submit_ping(cl->h2, NGHTTP2_FLAG_NONE, NULL) == 0) {
		cl->ping_outstanding = 1;
		cl->stats.pings_sent++;
		grpc_client_timer_ms(cl->timer_ev, cl->cfg.keepalive_timeout_ms);
		grpc_client_schedule_flush(cl);
		return;
	}
	grpc_client_timer_ms(cl->timer_ev, cl->cfg.keepalive_ms);
}

static int
grpc_client_session_new(struct grpc_client *cl)
{
	nghttp2_session_callbacks *cbs = NULL;
	nghttp2_option *opt = NULL;
	nghttp2_settings_entry iv[3];
	int rc = -ENOMEM;

	if (nghttp2_session_callbacks_new(&cbs) != 0 ||
	    nghttp2_option_new(&opt) != 0)
		goto out;
	nghttp2_session_callbacks_set_on_header_callback(cbs,
	    grpc_client_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
	    grpc_client_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
	    grpc_client_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
	    grpc_client_on_stream_close);
	nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs,
	    grpc_client_on_frame_not_send);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	if (nghttp2_session_client_new2(&cl->h2, cbs, cl, opt) != 0)
		goto out;
	iv[0].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
	iv[0].value = 0;
	iv[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
	iv[1].value = cl->cfg.stream_window;
	iv[2].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE;
	iv[2].value = GRPC_CLIENT_MAX_HEADERS;
	if (nghttp2_submit_settings(cl->h2, NGHTTP2_FLAG_NONE, iv, 3) != 0 ||
	    nghttp2_session_set_local_window_size(cl->h2, NGHTTP2_FLAG_NONE, 0,
	    (int32_t)cl->cfg.conn_window) != 0)
		goto out;
	rc = 0;
out:
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	return rc;
}

/*
 * The write callback runs when the transport is down to 16 KiB (more
 * output, and reading again if it was paused); reads stop at 256 KiB
 * held, so a fast server cannot make the input grow without bound.
 */
static void
grpc_client_setcb(struct grpc_client *cl)
{
	bufferevent_setcb(cl->bev, grpc_client_read_cb, grpc_client_write_cb,
	    grpc_client_event_cb, cl);
	bufferevent_setwatermark(cl->bev, EV_WRITE, 16 * 1024, 0);
	bufferevent_setwatermark(cl->bev, EV_READ, 0, 256 * 1024);
}

static struct grpc_client *
grpc_client_new(struct event_base *base, const char *authority,
    const struct grpc_client_config *cfg, grpc_client_down_cb down,
    void *arg)
{
	struct grpc_client *cl;

	if ((cl = calloc(1, sizeof(*cl))) == NULL)
		return NULL;
	cl->base = base;
	if (cfg != NULL)
		cl->cfg = *cfg;
	else
		grpc_client_config_default(&cl->cfg);
	if (cl->cfg.max_recv_message == 0)
		cl->cfg.max_recv_message = GRPC_FRAME_MAX_DEFAULT;
	if (cl->cfg.stream_window == 0)
		cl->cfg.stream_window = 1024 * 1024;
	if (cl->cfg.conn_window < cl->cfg.stream_window)
		cl->cfg.conn_window = cl->cfg.stream_window;
	cl->down_cb = down;
	cl->down_arg = arg;
	TAILQ_INIT(&cl->calls);
	if ((cl->authority = strdup(authority)) == NULL ||
	    (cl->flush_ev = event_new(base, -1, 0, grpc_client_flush_cb,
	    cl)) == NULL ||
	    (cl->down_ev = event_new(base, -1, 0, grpc_client_down_event_cb,
	    cl)) == NULL ||
	    (cl->timer_ev = evtimer_new(base, grpc_client_timer_cb,
	    cl)) == NULL ||
	    grpc_client_session_new(cl) != 0) {
		grpc_client_free(cl);
		errno = ENOMEM;
		return NULL;
	}
	if (cl->cfg.connect_timeout_ms > 0)
		grpc_client_timer_ms(cl->timer_ev, cl->cfg.connect_timeout_ms);
	return cl;
}

struct grpc_client *
grpc_client_adopt(struct event_base *base, struct bufferevent *bev,
    const char *authority, const struct grpc_client_config *cfg,
    grpc_client_down_cb down, void *arg)
{
	struct grpc_client *cl;

	if ((cl = grpc_client_new(base, authority, cfg, down, arg)) == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	cl->bev = bev;
	cl->connected = 1;
	grpc_client_setcb(cl);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	grpc_client_schedule_flush(cl);
	return cl;
}

struct grpc_client *
grpc_client_connect(struct event_base *base, const char *host, int port,
    void *tls, const char *authority, const struct grpc_client_config *cfg,
    grpc_client_down_cb down, void *arg)
{
	struct grpc_client *cl;
	SSL *ssl = NULL;
	char auth[280];

	if (authority == NULL) {
		snprintf(auth, sizeof(auth), strchr(host, ':') != NULL ?
		    "[%s]:%d" : "%s:%d", host, port);
		authority = auth;
	}
	if ((cl = grpc_client_new(base, authority, cfg, down, arg)) == NULL)
		return NULL;
	if (tls != NULL) {
		char name[300];
		char *colon;
		struct in6_addr a6;

		/* The certificate names the host, without the port. */
		snprintf(name, sizeof(name), "%s", authority);
		if (name[0] == '[') {
			memmove(name, name + 1, strlen(name));
			if ((colon = strchr(name, ']')) != NULL)
				*colon = '\0';
		} else if ((colon = strrchr(name, ':')) != NULL)
			*colon = '\0';
		if ((ssl = SSL_new(tls)) == NULL)
			goto fail;
		/* An address is checked as an IP SAN and sent without SNI. */
		if (evutil_inet_pton(AF_INET, name, &a6) == 1 ||
		    evutil_inet_pton(AF_INET6, name, &a6) == 1)
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
		else {
			SSL_set_tlsext_host_name(ssl, name);
			SSL_set1_host(ssl, name);
		}
		SSL_CTX_up_ref(tls);
		cl->tls = tls;
		cl->bev = bufferevent_openssl_socket_new(base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (cl->bev == NULL) {
			SSL_free(ssl);
			goto fail;
		}
	} else if ((cl->bev = bufferevent_socket_new(base, -1,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)) == NULL)
		goto fail;
	grpc_client_setcb(cl);
	/*
	 * Without an evdns base the name is resolved at once (numeric
	 * addresses, or /etc/hosts, in practice); the connect is async.
	 * A failure shows up as an error event: down() from the loop.
	 */
	if (bufferevent_socket_connect_hostname(cl->bev, cl->cfg.dns_base,
	    AF_UNSPEC, host, port) != 0) {
		int e = bufferevent_socket_get_dns_error(cl->bev);
		char reason[128];

		snprintf(reason, sizeof(reason), "cannot connect to %s:%d: %s",
		    host, port, e != 0 ? evutil_gai_strerror(e) : "error");
		grpc_client_go_down(cl, reason);
	}
	return cl;
fail:
	grpc_client_free(cl);
	errno = ENOMEM;
	return NULL;
}

void
grpc_client_shutdown(struct grpc_client *cl)
{
	if (cl->down || cl->goaway)
		return;
	cl->goaway = 1;
	nghttp2_submit_goaway(cl->h2, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR,
	    NULL, 0);
	grpc_client_schedule_flush(cl);
}

int
grpc_client_handshaken(const struct grpc_client *cl)
{
	return cl->handshaken;
}

int
grpc_client_too_many_pings(const struct grpc_client *cl)
{
	return cl->too_many_pings;
}

int
grpc_client_usable(const struct grpc_client *cl)
{
	return cl != NULL && !cl->down && !cl->goaway && !cl->dying;
}

const struct grpc_client_stats *
grpc_client_stats(const struct grpc_client *cl)
{
	return &cl->stats;
}

void
grpc_client_free(struct grpc_client *cl)
{
	struct grpc_client_call *call;

	if (cl == NULL)
		return;
	cl->dying = 1;
	while ((call = TAILQ_FIRST(&cl->calls)) != NULL) {
		if (call->local_status < 0) {
			call->local_status = GRPC_STATUS_CANCELLED;
			call->local_message = strdup("client closed");
		}
		grpc_client_call_end(call, NGHTTP2_NO_ERROR);
	}
	nghttp2_session_del(cl->h2);
	if (cl->bev != NULL) {
		bufferevent_flush(cl->bev, EV_WRITE, BEV_FINISHED);
		bufferevent_free(cl->bev);
	}
	if (cl->flush_ev != NULL)
		event_free(cl->flush_ev);
	if (cl->down_ev != NULL)
		event_free(cl->down_ev);
	if (cl->timer_ev != NULL)
		event_free(cl->timer_ev);
	if (cl->tls != NULL)
		SSL_CTX_free(cl->tls);
	free(cl->authority);
	free(cl);
}

/* ---- TLS ---- */

static void *
grpc_tls_client_fail(SSL_CTX *ctx, const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "unknown error");
	log_warnx("grpc client tls: %s %s: %s", what, file != NULL ? file : "",
	    buf);
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

void *
grpc_tls_client_ctx(const char *ca_file, const char *cert_file,
    const char *key_file)
{
	static const unsigned char alpn[] = { 2, 'h', '2' };
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return grpc_tls_client_fail(NULL, "SSL_CTX_new", NULL);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	if (ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
			return grpc_tls_client_fail(ctx, "cannot load CA",
			    ca_file);
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		return grpc_tls_client_fail(ctx, "no system CAs", NULL);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (cert_file != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
			return grpc_tls_client_fail(ctx,
			    "cannot load certificate", cert_file);
		if (SSL_CTX_use_PrivateKey_file(ctx, key_file != NULL ?
		    key_file : cert_file, SSL_FILETYPE_PEM) != 1)
			return grpc_tls_client_fail(ctx, "cannot load key",
			    key_file);
		if (SSL_CTX_check_private_key(ctx) != 1)
			return grpc_tls_client_fail(ctx,
			    "key does not match certificate", key_file);
	}
	/* 0 means success for this one. */
	if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn)) != 0)
		return grpc_tls_client_fail(ctx, "ALPN", NULL);
	return ctx;
}

/* ---- backoff ---- */

void
grpc_backoff_init(struct grpc_backoff *b, uint64_t seed)
{
	b->initial_ms = 1000;
	b->max_ms = 120000;
	b->multiplier = 1.6;
	b->jitter = 0.2;
	b->rng = seed != 0 ? seed : 0x9e3779b97f4a7c15ull;
	grpc_backoff_reset(b);
}

void
grpc_backoff_reset(struct grpc_backoff *b)
{
	b->current_ms = (double)b->initial_ms;
}

int64_t
grpc_backoff_next(struct grpc_backoff *b)
{
	double unit, delay;

	/* xorshift64: spread only, nothing secret depends on it. */
	b->rng ^= b->rng << 13;
	b->rng ^= b->rng >> 7;
	b->rng ^= b->rng << 17;
	unit = (double)(b->rng >> 11) / (double)(1ull << 53); /* [0, 1) */
	delay = b->current_ms * (1.0 + b->jitter * (2.0 * unit - 1.0));
	b->current_ms *= b->multiplier;
	if (b->current_ms > (double)b->max_ms)
		b->current_ms = (double)b->max_ms;
	return delay < 0 ? 0 : (int64_t)delay;
}
