/*
 * A gRPC server on libevent and nghttp2: HTTP/2 with prior knowledge (h2c)
 * or TLS with ALPN "h2", speaking the gRPC over HTTP/2 protocol so that
 * any standard gRPC client can call it.
 *
 * The embedding program registers methods (path, kind, handler) and
 * listens. Messages are opaque bytes here: handlers pack and unpack them
 * (protobuf-c). Everything runs on the loop thread of the event base.
 *
 * A call's life, as its handler sees it:
 *   start()      the request headers arrived and were valid;
 *   message()    each request message (unary and server-streaming methods:
 *                exactly one, delivered once the client half-closed);
 *   half_close() the client sends no more messages;
 *   close()      always, exactly once, last: the call is over (finished by
 *                the handler, cancelled by the client, deadline exceeded,
 *                connection lost, server freed). The call pointer is
 *                invalid once close() returns; free per-call state there.
 * Between start() and close() the handler may send messages and finish
 * the call at any time, from these callbacks or later from its own
 * events. Callbacks are never called from inside grpc_call_send() or
 * grpc_call_finish(), so a handler is never re-entered.
 *
 * Bounded by design: messages larger than max_recv_message are refused
 * (RESOURCE_EXHAUSTED), a peer that does not read cannot make us queue more
 * than the per-call, per-connection and server-wide output caps (the call
 * is then reset with ENHANCE_YOUR_CALM, which clients report as
 * RESOURCE_EXHAUSTED), connections and concurrent streams are limited, and
 * silent or idle connections are closed.
 */
#ifndef TROIKA_GRPC_SERVER_H
#define TROIKA_GRPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "grpc_status.h"

struct event_base;
struct evbuffer;
struct bufferevent;
struct grpc_server;
struct grpc_call;

enum grpc_method_kind {
	GRPC_METHOD_UNARY = 1,
	GRPC_METHOD_SERVER_STREAMING = 2,
	GRPC_METHOD_CLIENT_STREAMING = 3,
	GRPC_METHOD_BIDI_STREAMING = 4,
};

/* "unary", "server_stream", "client_stream", "bidi_stream" (as grpc_type). */
const char *grpc_method_kind_str(enum grpc_method_kind kind);

/* The callbacks of one method; start, message and close are required. */
struct grpc_handler {
	/*
	 * A new call. Set per-call state with grpc_call_set_data(). Return 0,
	 * or a negative errno to have the call finished with INTERNAL (unless
	 * start finished it already); close() follows in either case.
	 */
	int (*start)(struct grpc_call *call, void *arg);
	/* One request message; msg is valid during the callback only. */
	void (*message)(struct grpc_call *call, const uint8_t *msg, size_t len);
	/* Optional: the client will send no more messages. */
	void (*half_close)(struct grpc_call *call);
	/*
	 * Optional: everything queued has gone to the transport, after the
	 * handler asked with grpc_call_notify_drained(). Producers of many
	 * messages send while grpc_call_queued() is small, then wait for
	 * this, instead of running into the output caps.
	 */
	void (*drained)(struct grpc_call *call);
	/*
	 * The end. status is what the client was told: the handler's own
	 * status, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ..., or CANCELLED
	 * when the client reset the stream or the connection went away.
	 */
	void (*close)(struct grpc_call *call, int status);
};

struct grpc_method {
	const char *path; /* "/troika.v1.Admin/GetStatus"; copied */
	enum grpc_method_kind kind;
	const struct grpc_handler *handler; /* not copied: must outlive */
	void *arg;                          /* passed to start() */
};

struct grpc_server_config {
	size_t max_recv_message;      /* default 4 MiB */
	size_t max_send_message;      /* default 4 MiB */
	/* Bytes queued for a peer that does not read, per call. */
	size_t call_output_cap;       /* default 8 MiB */
	/* ... per connection, all calls together. */
	size_t conn_output_cap;       /* default 16 MiB */
	/* Partial request messages held, per connection. */
	size_t conn_input_cap;        /* default 16 MiB */
	/* Input and output held by all connections together. */
	size_t server_buffer_cap;     /* default 256 MiB */
	uint32_t max_concurrent_streams; /* per connection; default 100 */
	unsigned max_connections;     /* default 1024 */
	uint32_t stream_window;       /* initial stream window; default 1 MiB */
	uint32_t conn_window;         /* connection window; default 4 MiB */
	uint32_t max_header_list;     /* request header bytes; default 16 KiB */
	/* Milliseconds; 0 disables. */
	int64_t handshake_timeout_ms; /* preface + SETTINGS; default 10 s */
	int64_t idle_timeout_ms;      /* no call open; default 5 min */
	int64_t keepalive_ms;         /* silence before a PING; default 60 s */
	int64_t keepalive_timeout_ms; /* wait for its ACK; default 20 s */
};

/* Fill in the defaults above. */
void grpc_server_config_default(struct grpc_server_config *cfg);

/*
 * Counters of the whole server (the metrics writer adds per-method ones).
 * Gauges are "now", everything else counts since grpc_server_new().
 */
struct grpc_server_stats {
	uint64_t conns_accepted;
	uint64_t conns_rejected;    /* over max_connections */
	uint64_t conns_open;        /* gauge */
	uint64_t conns_protocol_error; /* closed for a protocol error */
	uint64_t conns_idle_closed; /* idle or handshake timeout */
	uint64_t conns_keepalive_closed; /* PING not answered */
	uint64_t calls_started;
	uint64_t calls_open;        /* gauge */
	uint64_t calls_reset_by_peer;
	uint64_t calls_output_overflow; /* reset: a cap was hit */
	uint64_t msgs_received;
	uint64_t msgs_sent;
	uint64_t bytes_received;    /* HTTP/2 bytes, framing included */
	uint64_t bytes_sent;
	uint64_t buffered;          /* gauge: input + output held now */
	uint64_t handled[GRPC_STATUS_MAX + 1]; /* calls ended, by status */
};

/*
 * A server on base; nothing listens yet. cfg NULL means the defaults.
 * Returns NULL (errno set) on failure.
 */
struct grpc_server *grpc_server_new(struct event_base *base,
    const struct grpc_server_config *cfg);

/*
 * Register a method. Returns 0, -EEXIST for a path already registered,
 * -EINVAL for a path not of the form /service/method or a handler
 * without its required callbacks, or -ENOMEM.
 */
int grpc_server_add_method(struct grpc_server *srv,
    const struct grpc_method *m);

/*
 * Listen on host:port (numeric address; port 0 picks one). tls is an
 * SSL_CTX * from grpc_tls_server_ctx(), or NULL for h2c; the server takes
 * a reference of its own. Stores the bound port in *ret_port if not NULL.
 * Returns 0 or a negative errno.
 */
int grpc_server_listen(struct grpc_server *srv, const char *host,
    int port, void *tls, int *ret_port);

/*
 * Serve an already connected transport (a socket's bufferevent, or one
 * end of a bufferevent pair in tests and fuzzers). The server owns bev
 * from here on, also on error. peer names it in logs. Returns 0, -EBUSY
 * when over max_connections or shutting down (bev freed), or -ENOMEM.
 */
int grpc_server_adopt(struct grpc_server *srv, struct bufferevent *bev,
    const char *peer);

typedef void (*grpc_server_done_cb)(void *arg);

/*
 * Graceful shutdown: stop listening, tell every client with GOAWAY, let
 * open calls finish for up to grace_ms, then finish the rest with
 * UNAVAILABLE and close. done (may be NULL) is called from the loop once
 * the last connection is gone. Calling it again changes nothing.
 */
void grpc_server_shutdown(struct grpc_server *srv, int64_t grace_ms,
    grpc_server_done_cb done, void *arg);

/*
 * Close everything at once: every open call's close() is called with
 * CANCELLED. Not from inside a handler callback. NULL is fine.
 */
void grpc_server_free(struct grpc_server *srv);

const struct grpc_server_stats *grpc_server_stats(
    const struct grpc_server *srv);

/*
 * Prometheus families: go-grpc-prometheus's grpc_server_started_total,
 * grpc_server_handled_total, grpc_server_msg_received_total,
 * grpc_server_msg_sent_total and grpc_server_handling_seconds (labels
 * grpc_type, grpc_service, grpc_method, grpc_code), and
 * troika_grpc_server_* for connections, bytes and resets.
 */
void grpc_server_write_metrics(const struct grpc_server *srv,
    struct evbuffer *out);

/* ---- calls (handlers only, between start() and close()) ---- */

void grpc_call_set_data(struct grpc_call *call, void *data);
void *grpc_call_data(const struct grpc_call *call);
/* The request path, e.g. "/troika.v1.Admin/GetStatus". */
const char *grpc_call_path(const struct grpc_call *call);
/* The peer as "address:port", for logs. */
const char *grpc_call_peer(const struct grpc_call *call);
/*
 * A request header (custom metadata, user-agent, ...) by lower-case name;
 * NULL if absent. Binary (-bin) values are returned as sent (base64).
 */
const char *grpc_call_metadata(const struct grpc_call *call,
    const char *name);
/* Milliseconds left until the client's deadline; -1 if it set none. */
int64_t grpc_call_remaining_ms(const struct grpc_call *call);

/*
 * Queue one response message. Returns 0; -EINVAL after finish or for a
 * second message of a unary-response method; -ECANCELED once the call
 * is cancelled (stop sending; close() follows); -EMSGSIZE over
 * max_send_message (the call is then finished with RESOURCE_EXHAUSTED);
 * -ENOBUFS when an output cap was hit (the call is reset); -ENOMEM.
 */
int grpc_call_send(struct grpc_call *call, const void *msg, size_t len);

/* Bytes queued for this call and not yet handed to the transport. */
size_t grpc_call_queued(const struct grpc_call *call);

/*
 * Have the handler's drained() called once, from the loop, when nothing
 * is queued any more (at the next turn of the loop if nothing is now).
 * Not called for a call that finished or was cancelled meanwhile.
 * Returns 0, or -EINVAL when the handler has no drained().
 */
int grpc_call_notify_drained(struct grpc_call *call);

/*
 * End the call with a status and an optional message (one line, sent
 * percent-encoded in grpc-message). Queued messages go out first. A
 * unary-response method finished OK without a message is reported to
 * the client as INTERNAL. Returns 0, -EINVAL if already finished, or
 * -ECANCELED if the call was cancelled meanwhile.
 */
int grpc_call_finish(struct grpc_call *call, int status, const char *message);

/* ---- TLS ---- */

/*
 * An OpenSSL server context for grpc_server_listen(): certificate chain
 * and key (PEM files), TLS 1.2 or later, ALPN "h2" only. With ca_file,
 * clients must present a certificate signed by that CA (mutual TLS).
 * Returns an SSL_CTX * (free with grpc_tls_ctx_free()) or NULL after
 * logging why.
 */
void *grpc_tls_server_ctx(const char *cert_file, const char *key_file,
    const char *ca_file);
void grpc_tls_ctx_free(void *ctx);

#endif
