/*
 * One HTTP/2 connection of the gRPC server: bytes from the transport (a
 * bufferevent: socket, TLS, or a pair in tests) go through nghttp2, whose
 * callbacks drive the calls (grpc_call.c); nghttp2's output goes to the
 * transport only while the transport's own queue is short, and input is
 * paused while it is not, so a peer that does not read makes us hold at
 * most that queue plus the calls' capped queues, and cannot make us
 * produce more (PING and SETTINGS acks) by writing.
 *
 * Timers: the handshake timeout (until the client's SETTINGS), the idle
 * timeout (no call open), keepalive PINGs, and a linger limit for the last
 * bytes of a closing connection. A deferred "flush" event writes what
 * handlers queued outside of nghttp2 callbacks.
 *
 * The connection is freed only from its own event callbacks or by the
 * server, never from inside nghttp2 or a handler.
 */
#include "grpc_server_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"

/* nghttp2 output is pulled while the transport holds less than this. */
#define GRPC_CONN_OUT_HIGH (64 * 1024)
/* The write callback runs when the transport is down to this. */
#define GRPC_CONN_OUT_LOW (16 * 1024)
/* Input held by the transport at most (reads stop above it). */
#define GRPC_CONN_IN_HIGH (256 * 1024)
/*
 * Input given to nghttp2 between two flushes: small enough that the
 * control frames it may answer (a PING flood) stay well under nghttp2's
 * limit of queued acks, which it treats as an attack.
 */
#define GRPC_CONN_IN_BATCH (8 * 1024)
/* A closing connection gets this long to deliver its last bytes. */
#define GRPC_CONN_LINGER_MS 5000

static int grpc_conn_flush(struct grpc_conn *conn);

/* Count a connection ended by a protocol error, once. */
static void
grpc_conn_protocol_error(struct grpc_conn *conn)
{
	if (!conn->protocol_error) {
		conn->protocol_error = 1;
		conn->srv->stats.conns_protocol_error++;
	}
}

static void
grpc_timer_ms(struct event *ev, int64_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(ev, &tv);
}

/* The idle timer runs while no call is open (or until the handshake). */
void
grpc_conn_calls_changed(struct grpc_conn *conn)
{
	const struct grpc_server_config *cfg = &conn->srv->cfg;

	if (conn->closing || conn->dying || !conn->handshaken)
		return;
	if (conn->ncalls > 0 || cfg->idle_timeout_ms <= 0)
		evtimer_del(conn->idle_ev);
	else if (!evtimer_pending(conn->idle_ev, NULL))
		grpc_timer_ms(conn->idle_ev, cfg->idle_timeout_ms);
}

void
grpc_conn_schedule_flush(struct grpc_conn *conn)
{
	if (!conn->dying)
		event_active(conn->flush_ev, EV_TIMEOUT, 0);
}

void
grpc_conn_free(struct grpc_conn *conn)
{
	struct grpc_server *srv;
	struct grpc_call *call;

	if (conn == NULL)
		return;
	srv = conn->srv;
	conn->dying = 1;
	/* nghttp2_session_del() calls no callbacks: close the calls here. */
	while ((call = TAILQ_FIRST(&conn->calls)) != NULL)
		grpc_call_on_stream_close(call, NGHTTP2_CANCEL);
	nghttp2_session_del(conn->h2);
	if (conn->bev != NULL) {
		/* A socket closes with the fd; a pair needs to be told. */
		bufferevent_flush(conn->bev, EV_WRITE, BEV_FINISHED);
		bufferevent_free(conn->bev);
	}
	if (conn->idle_ev != NULL)
		event_free(conn->idle_ev);
	if (conn->ping_ev != NULL)
		event_free(conn->ping_ev);
	if (conn->flush_ev != NULL)
		event_free(conn->flush_ev);
	log_debug("grpc %s: connection closed", conn->peer);
	grpc_server_conn_gone(srv, conn);
	free(conn);
}

/* No more input; free once the transport delivered what is queued. */
static void
grpc_conn_close_soon(struct grpc_conn *conn)
{
	if (conn->closing)
		return;
	conn->closing = 1;
	bufferevent_disable(conn->bev, EV_READ);
	evtimer_del(conn->ping_ev);
	/* The write callback must also run for the very last byte. */
	bufferevent_setwatermark(conn->bev, EV_WRITE, 0, 0);
	grpc_timer_ms(conn->idle_ev, GRPC_CONN_LINGER_MS);
}

/*
 * Hand nghttp2's output to the transport while it is short, and free the
 * connection when both sides are done. Returns -1 when conn was freed.
 */
static int
grpc_conn_flush(struct grpc_conn *conn)
{
	struct evbuffer *out = bufferevent_get_output(conn->bev);

	while (evbuffer_get_length(out) < GRPC_CONN_OUT_HIGH) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(conn->h2, &data);

		if (n < 0) {
			log_warnx("grpc %s: %s", conn->peer,
			    nghttp2_strerror((int)n));
			grpc_conn_protocol_error(conn);
			grpc_conn_free(conn);
			return -1;
		}
		if (n == 0)
			break;
		if (evbuffer_add(out, data, (size_t)n) != 0) {
			log_warnx("grpc %s: out of memory", conn->peer);
			grpc_conn_free(conn);
			return -1;
		}
		conn->srv->stats.bytes_sent += (uint64_t)n;
	}

	/* Producers waiting for room: their next messages go next turn. */
	if (conn->drained_ready) {
		grpc_call_run_drained(conn);
		grpc_conn_schedule_flush(conn);
	}
	if (!nghttp2_session_want_read(conn->h2) &&
	    !nghttp2_session_want_write(conn->h2))
		grpc_conn_close_soon(conn);
	if (conn->closing) {
		if (evbuffer_get_length(out) == 0) {
			grpc_conn_free(conn);
			return -1;
		}
		return 0;
	}

	/*
	 * A peer that sends but does not read gets no more of our time:
	 * what it sends would only make more output.
	 */
	if (evbuffer_get_length(out) >= GRPC_CONN_OUT_HIGH) {
		if (!conn->read_paused) {
			conn->read_paused = 1;
			bufferevent_disable(conn->bev, EV_READ);
		}
	} else if (conn->read_paused) {
		conn->read_paused = 0;
		bufferevent_enable(conn->bev, EV_READ);
		/* What is already read wakes no read callback by itself. */
		if (evbuffer_get_length(bufferevent_get_input(conn->bev)) > 0)
			bufferevent_trigger(conn->bev, EV_READ,
			    BEV_TRIG_IGNORE_WATERMARKS |
			    BEV_TRIG_DEFER_CALLBACKS);
	}
	return 0;
}

static void
grpc_conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct grpc_conn *conn = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (evbuffer_get_length(in) > 0 && !conn->closing &&
	    !conn->read_paused) {
		struct evbuffer_iovec v;
		ssize_t n;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		if (v.iov_len > GRPC_CONN_IN_BATCH)
			v.iov_len = GRPC_CONN_IN_BATCH;
		n = nghttp2_session_mem_recv(conn->h2, v.iov_base, v.iov_len);
		if (n < 0) {
			log_debug("grpc %s: %s", conn->peer,
			    nghttp2_strerror((int)n));
			grpc_conn_protocol_error(conn);
			grpc_conn_free(conn);
			return;
		}
		evbuffer_drain(in, (size_t)n);
		conn->srv->stats.bytes_received += (uint64_t)n;
		conn->read_seen = 1;
		if (grpc_conn_flush(conn) < 0)
			return;
	}
	if (conn->closing)
		evbuffer_drain(in, evbuffer_get_length(in));
	grpc_conn_flush(conn);
}

static void
grpc_conn_write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	grpc_conn_flush(arg);
}

static void
grpc_conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct grpc_conn *conn = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return; /* TLS handshake done; nghttp2 sees the preface next */
	if (what & BEV_EVENT_ERROR)
		log_debug("grpc %s: transport error", conn->peer);
	grpc_conn_free(conn);
}

static void
grpc_conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	grpc_conn_flush(arg);
}

static void
grpc_conn_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_conn *conn = arg;

	(void)fd;
	(void)what;
	if (conn->closing) {
		log_debug("grpc %s: peer does not read; closing", conn->peer);
		grpc_conn_free(conn);
		return;
	}
	conn->srv->stats.conns_idle_closed++;
	if (!conn->handshaken) {
		log_debug("grpc %s: no HTTP/2 handshake in time", conn->peer);
		grpc_conn_free(conn);
		return;
	}
	if (conn->ncalls > 0)
		return;
	log_debug("grpc %s: idle; sending GOAWAY", conn->peer);
	nghttp2_session_terminate_session(conn->h2, NGHTTP2_NO_ERROR);
	grpc_conn_flush(conn);
}

static void
grpc_conn_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_conn *conn = arg;
	const struct grpc_server_config *cfg = &conn->srv->cfg;

	(void)fd;
	(void)what;
	/*
	 * Only connections with calls are probed: idle ones are the idle
	 * timeout's business, and gRPC core clients answer PINGs late
	 * while they have no call open.
	 */
	if (conn->read_seen || conn->ncalls == 0) {
		/* Heard from the peer since the last look: all is well. */
		conn->read_seen = 0;
		conn->ping_state = GRPC_PING_IDLE;
		grpc_timer_ms(conn->ping_ev, cfg->keepalive_ms);
		return;
	}
	if (conn->ping_state == GRPC_PING_WAIT) {
		log_info("grpc %s: no answer to keepalive PING; closing",
		    conn->peer);
		conn->srv->stats.conns_keepalive_closed++;
		grpc_conn_free(conn);
		return;
	}
	conn->ping_state = GRPC_PING_WAIT;
	nghttp2_submit_ping(conn->h2, NGHTTP2_FLAG_NONE, NULL);
	grpc_timer_ms(conn->ping_ev, cfg->keepalive_timeout_ms);
	grpc_conn_flush(conn);
}

void
grpc_conn_shutdown_stage(struct grpc_conn *conn, int stage)
{
	struct grpc_call *call;

	if (conn->closing || conn->dying)
		return;
	switch (stage) {
	case 0:
		/* "Finish what you have, start nothing new" */
		nghttp2_submit_shutdown_notice(conn->h2);
		break;
	case 1:
		nghttp2_submit_goaway(conn->h2, NGHTTP2_FLAG_NONE,
		    nghttp2_session_get_last_proc_stream_id(conn->h2),
		    NGHTTP2_NO_ERROR, NULL, 0);
		break;
	default:
		/* Fail only queues the status: no call goes away here. */
		TAILQ_FOREACH(call, &conn->calls, entry)
			grpc_call_fail(call, GRPC_STATUS_UNAVAILABLE,
			    "server shutting down");
		break;
	}
	grpc_conn_schedule_flush(conn);
}

/* ---- nghttp2 callbacks ---- */

static struct grpc_call *
grpc_conn_stream_call(nghttp2_session *h2, int32_t stream_id)
{
	return nghttp2_session_get_stream_user_data(h2, stream_id);
}

static int
grpc_on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame,
    void *user_data)
{
	struct grpc_conn *conn = user_data;
	struct grpc_call *call;

	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if ((call = grpc_call_new(conn, frame->hd.stream_id)) == NULL) {
		nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE,
		    frame->hd.stream_id, NGHTTP2_INTERNAL_ERROR);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	nghttp2_session_set_stream_user_data(h2, frame->hd.stream_id, call);
	return 0;
}

static int
grpc_on_header(nghttp2_session *h2, const nghttp2_frame *frame,
    const uint8_t *name, size_t namelen, const uint8_t *value,
    size_t valuelen, uint8_t flags, void *user_data)
{
	struct grpc_call *call;

	(void)flags;
	(void)user_data;
	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0; /* trailers from a client carry nothing for us */
	if ((call = grpc_conn_stream_call(h2, frame->hd.stream_id)) == NULL)
		return 0;
	if (grpc_call_on_header(call, name, namelen, value, valuelen) != 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* stream reset */
	return 0;
}

static int
grpc_on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame,
    void *user_data)
{
	struct grpc_conn *conn = user_data;
	struct grpc_call *call;

	switch (frame->hd.type) {
	case NGHTTP2_SETTINGS:
		if (!conn->handshaken && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
			conn->handshaken = 1;
			evtimer_del(conn->idle_ev);
			grpc_conn_calls_changed(conn);
		}
		return 0;
	case NGHTTP2_HEADERS:
	case NGHTTP2_DATA:
		break;
	default:
		return 0;
	}
	if ((call = grpc_conn_stream_call(h2, frame->hd.stream_id)) == NULL)
		return 0;
	if (frame->hd.type == NGHTTP2_HEADERS &&
	    frame->headers.cat == NGHTTP2_HCAT_REQUEST)
		grpc_call_on_request(call);
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
		grpc_call_on_remote_close(call);
	return 0;
}

static int
grpc_on_data_chunk_recv(nghttp2_session *h2, uint8_t flags, int32_t stream_id,
    const uint8_t *data, size_t len, void *user_data)
{
	struct grpc_call *call;

	(void)flags;
	(void)user_data;
	if ((call = grpc_conn_stream_call(h2, stream_id)) != NULL)
		grpc_call_on_data(call, data, len);
	/*
	 * Processed: a message went to its handler, or its bytes sit in the
	 * call's decoder, bounded by max_recv_message and the input caps.
	 */
	nghttp2_session_consume(h2, stream_id, len);
	return 0;
}

static int
grpc_on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame,
    void *user_data)
{
	struct grpc_call *call;

	/* nghttp2 ends a connection that broke the protocol with GOAWAY. */
	if (frame->hd.type == NGHTTP2_GOAWAY &&
	    frame->goaway.error_code != NGHTTP2_NO_ERROR) {
		log_debug("grpc %s: GOAWAY %s", ((struct grpc_conn *)
		    user_data)->peer, nghttp2_http2_strerror(
		    frame->goaway.error_code));
		grpc_conn_protocol_error(user_data);
		return 0;
	}
	if ((frame->hd.type != NGHTTP2_HEADERS &&
	    frame->hd.type != NGHTTP2_DATA) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	if ((call = grpc_conn_stream_call(h2, frame->hd.stream_id)) != NULL)
		grpc_call_on_end_sent(call);
	return 0;
}

static int
grpc_on_stream_close(nghttp2_session *h2, int32_t stream_id,
    uint32_t error_code, void *user_data)
{
	struct grpc_call *call;

	(void)user_data;
	if ((call = grpc_conn_stream_call(h2, stream_id)) == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(h2, stream_id, NULL);
	grpc_call_on_stream_close(call, error_code);
	return 0;
}

static int
grpc_on_invalid_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame,
    int lib_error_code, void *user_data)
{
	struct grpc_conn *conn = user_data;

	(void)h2;
	log_debug("grpc %s: invalid frame type %u on stream %d: %s",
	    conn->peer, frame->hd.type, frame->hd.stream_id,
	    nghttp2_strerror(lib_error_code));
	return 0;
}

static nghttp2_session_callbacks *
grpc_conn_callbacks(void)
{
	nghttp2_session_callbacks *cbs;

	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return NULL;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
	    grpc_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, grpc_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
	    grpc_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
	    grpc_on_data_chunk_recv);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs,
	    grpc_on_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
	    grpc_on_stream_close);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs,
	    grpc_on_invalid_frame_recv);
	return cbs;
}

static int
grpc_conn_session(struct grpc_conn *conn)
{
	const struct grpc_server_config *cfg = &conn->srv->cfg;
	nghttp2_session_callbacks *cbs = NULL;
	nghttp2_option *opt = NULL;
	nghttp2_settings_entry iv[4];
	int r = -ENOMEM;

	if ((cbs = grpc_conn_callbacks()) == NULL ||
	    nghttp2_option_new(&opt) != 0)
		goto out;
	/* We give window back as we process: grpc_on_data_chunk_recv(). */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	if (nghttp2_session_server_new2(&conn->h2, cbs, conn, opt) != 0)
		goto out;

	iv[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
	iv[0].value = cfg->max_concurrent_streams;
	iv[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
	iv[1].value = cfg->stream_window;
	iv[2].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE;
	iv[2].value = cfg->max_header_list;
	iv[3].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
	iv[3].value = 0;
	if (nghttp2_submit_settings(conn->h2, NGHTTP2_FLAG_NONE, iv, 4) != 0 ||
	    nghttp2_session_set_local_window_size(conn->h2, NGHTTP2_FLAG_NONE,
		0, (int32_t)cfg->conn_window) != 0)
		goto out;
	r = 0;
out:
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	return r;
}

struct grpc_conn *
grpc_conn_new(struct grpc_server *srv, struct bufferevent *bev,
    const char *peer)
{
	const struct grpc_server_config *cfg = &srv->cfg;
	struct grpc_conn *conn;

	if ((conn = calloc(1, sizeof(*conn))) == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	conn->srv = srv;
	conn->bev = bev;
	TAILQ_INIT(&conn->calls);
	snprintf(conn->peer, sizeof(conn->peer), "%s", peer);
	TAILQ_INSERT_TAIL(&srv->conns, conn, entry);
	srv->stats.conns_accepted++;
	srv->stats.conns_open++;

	conn->idle_ev = evtimer_new(srv->base, grpc_conn_idle_cb, conn);
	conn->ping_ev = evtimer_new(srv->base, grpc_conn_ping_cb, conn);
	conn->flush_ev = event_new(srv->base, -1, 0, grpc_conn_flush_cb, conn);
	if (conn->idle_ev == NULL || conn->ping_ev == NULL ||
	    conn->flush_ev == NULL || grpc_conn_session(conn) != 0) {
		grpc_conn_free(conn);
		return NULL;
	}
	bufferevent_setcb(bev, grpc_conn_read_cb, grpc_conn_write_cb,
	    grpc_conn_event_cb, conn);
	bufferevent_setwatermark(bev, EV_WRITE, GRPC_CONN_OUT_LOW, 0);
	bufferevent_setwatermark(bev, EV_READ, 0, GRPC_CONN_IN_HIGH);
	if (bufferevent_enable(bev, EV_READ | EV_WRITE) != 0) {
		grpc_conn_free(conn);
		return NULL;
	}
	if (cfg->handshake_timeout_ms > 0)
		grpc_timer_ms(conn->idle_ev, cfg->handshake_timeout_ms);
	if (cfg->keepalive_ms > 0)
		grpc_timer_ms(conn->ping_ev, cfg->keepalive_ms);
	log_debug("grpc %s: connection open", conn->peer);
	/* Our SETTINGS go first, without waiting for the client. */
	grpc_conn_schedule_flush(conn);
	return conn;
}
