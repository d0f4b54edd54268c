/*
 * Inside the gRPC server: the objects shared by grpc_server.c (listeners,
 * methods, limits, shutdown, metrics), grpc_conn.c (one HTTP/2 connection:
 * transport, nghttp2 session, timers) and grpc_call.c (one stream: request
 * checks, message decoding, the handler API, response and trailers).
 * Not for users of the server: they include grpc_server.h.
 */
#ifndef TROIKA_GRPC_SERVER_INT_H
#define TROIKA_GRPC_SERVER_INT_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <nghttp2/nghttp2.h>

#include "grpc_frame.h"
#include "grpc_server.h"
#include "metrics.h"

struct event;

/* A registered method with its counters. */
struct grpc_method_entry {
	char *path;    /* "/pkg.Service/Method" */
	char *service; /* "pkg.Service" */
	char *name;    /* "Method" */
	enum grpc_method_kind kind;
	const struct grpc_handler *handler;
	void *arg;
	uint64_t started;
	uint64_t msgs_received;
	uint64_t msgs_sent;
	uint64_t handled[GRPC_STATUS_MAX + 1];
	struct metrics_histogram handling; /* seconds from start to close */
};

struct grpc_listener {
	SLIST_ENTRY(grpc_listener) entry;
	struct grpc_server *srv;
	struct evconnlistener *lev;
	void *tls; /* SSL_CTX *, referenced; NULL for h2c */
};

TAILQ_HEAD(grpc_conn_list, grpc_conn);
TAILQ_HEAD(grpc_call_list, grpc_call);

struct grpc_server {
	struct event_base *base;
	struct grpc_server_config cfg;
	struct grpc_method_entry **methods;
	size_t nmethods;
	SLIST_HEAD(, grpc_listener) listeners;
	struct grpc_conn_list conns;
	struct grpc_server_stats stats;
	/* Shutdown: GOAWAY stages, then done() from its own event. */
	int shutting_down;
	int shutdown_stage;
	int64_t grace_ms;
	struct event *shutdown_ev;
	struct event *done_ev;
	grpc_server_done_cb done;
	void *done_arg;
};

/* Keepalive: waiting for the next check, or for any sign of life. */
enum grpc_ping_state {
	GRPC_PING_IDLE = 0,
	GRPC_PING_WAIT = 1,
};

struct grpc_conn {
	TAILQ_ENTRY(grpc_conn) entry;
	struct grpc_server *srv;
	struct bufferevent *bev;
	nghttp2_session *h2;
	char peer[64];
	struct grpc_call_list calls;
	size_t ncalls;
	int handshaken;  /* the client's SETTINGS arrived */
	int closing;     /* no more input; free once the output is out */
	int dying;       /* being freed: calls must not submit anything */
	int read_paused; /* output backed up: input stopped */
	int read_seen;   /* bytes arrived since the keepalive timer ran */
	int protocol_error; /* counted as closed for a protocol error */
	int drained_ready;  /* some call's drained() is due */
	enum grpc_ping_state ping_state;
	size_t in_held;  /* partial request messages held by its calls */
	size_t out_held; /* response bytes queued by its calls */
	struct event *idle_ev;  /* handshake, idle, and linger timeouts */
	struct event *ping_ev;  /* keepalive */
	struct event *flush_ev; /* deferred write, so handlers are not re-entered */
};

struct grpc_md {
	char *name;
	char *value;
};

struct grpc_call {
	TAILQ_ENTRY(grpc_call) entry;
	struct grpc_conn *conn;
	int32_t stream_id;
	struct grpc_method_entry *method; /* NULL: not given to a handler */
	void *data;

	/* Request headers. */
	char *http_method;
	char *path;
	char *content_type;
	char *encoding;      /* grpc-encoding */
	char *timeout;       /* grpc-timeout, as sent */
	struct grpc_md *md;  /* other headers */
	size_t nmd;
	size_t hdr_bytes;    /* as HPACK counts them: name + value + 32 */

	/* Receiving. */
	struct grpc_frame_decoder dec;
	uint8_t *req;        /* the request of a unary-request method */
	size_t req_len;
	int nreq;
	int remote_closed;   /* the client half-closed */

	/* Sending. */
	struct evbuffer *out; /* framed messages not yet given to nghttp2 */
	size_t head_left;    /* bytes of out's first message still to go */
	int response_submitted;
	int deferred;        /* the data source waits for resume_data */
	int want_drained;    /* call drained() once out is empty */
	int drained_ready;   /* ... it is: grpc_conn_flush() calls it */
	uint64_t nsent;

	/* The end. */
	int started;         /* start() was called: close() is owed */
	int finished;        /* the status is decided */
	int cancelled;       /* ended by us or the peer, not by the handler */
	int reset;           /* we sent RST_STREAM */
	int status;
	char *status_msg;    /* percent-encoded, or NULL */
	int has_deadline;
	struct timespec deadline; /* CLOCK_MONOTONIC */
	struct event *deadline_ev;
	struct event *linger_ev;  /* reset a client that sends on after the end */
	struct timespec t0;  /* start, for the handling histogram */

	size_t in_held;      /* accounted in conn and server */
	size_t out_held;
};

/* grpc_server.c */
struct grpc_method_entry *grpc_server_find_method(struct grpc_server *srv,
    const char *path);
void grpc_server_conn_gone(struct grpc_server *srv, struct grpc_conn *conn);

/* grpc_conn.c */
struct grpc_conn *grpc_conn_new(struct grpc_server *srv,
    struct bufferevent *bev, const char *peer);
void grpc_conn_free(struct grpc_conn *conn);
/* Write what nghttp2 has, from the loop (never re-entering handlers). */
void grpc_conn_schedule_flush(struct grpc_conn *conn);
/* Shutdown stages: 0 notice, 1 final GOAWAY, 2 fail all calls. */
void grpc_conn_shutdown_stage(struct grpc_conn *conn, int stage);
/* A call was created or freed: keeps the idle timer right. */
void grpc_conn_calls_changed(struct grpc_conn *conn);

/* grpc_call.c */
struct grpc_call *grpc_call_new(struct grpc_conn *conn, int32_t stream_id);
/* Returns 0, or -E2BIG when the header list is over its limit. */
int grpc_call_on_header(struct grpc_call *call, const uint8_t *name,
    size_t namelen, const uint8_t *value, size_t valuelen);
/* The request headers are complete: check them, start the handler. */
void grpc_call_on_request(struct grpc_call *call);
/* DATA payload; the caller gives the bytes back to flow control. */
void grpc_call_on_data(struct grpc_call *call, const uint8_t *data,
    size_t len);
/* END_STREAM from the client. */
void grpc_call_on_remote_close(struct grpc_call *call);
/* Our END_STREAM went out. */
void grpc_call_on_end_sent(struct grpc_call *call);
/* The stream is gone: tell the handler, free. */
void grpc_call_on_stream_close(struct grpc_call *call, uint32_t error_code);
/* Call the drained() handlers that are due on conn. */
void grpc_call_run_drained(struct grpc_conn *conn);
/* Finish a call for the server's own reasons (shutdown, limits). */
void grpc_call_fail(struct grpc_call *call, int status, const char *msg);

#endif
