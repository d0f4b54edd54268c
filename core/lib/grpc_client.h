/*
 * A gRPC client on libevent and nghttp2: one HTTP/2 connection (h2c with
 * prior knowledge, or TLS with ALPN "h2") to one target, carrying any
 * number of calls of every kind (unary, server-, client-streaming, bidi).
 * The counterpart of grpc_server.h; messages are opaque bytes here.
 *
 * A call's life, as its owner sees it:
 *   headers()  optional: the response headers arrived (not for a
 *              Trailers-Only reply);
 *   message()  each response message, as it is complete;
 *   drained()  optional: a send refused with -EAGAIN can be retried;
 *   close()    always, exactly once, last: the final status with the
 *              decoded grpc-message (the server's, or ours for a local
 *              error: DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED for a reply
 *              over max_recv_message, UNAVAILABLE for a lost connection
 *              or a call the server did not process before GOAWAY,
 *              INTERNAL for a malformed reply, CANCELLED after
 *              grpc_client_call_cancel()). The call pointer is invalid
 *              once close() returns.
 * Callbacks run from the loop, never from inside a grpc_client_* call, so
 * an owner is never re-entered and may send, half-close or cancel from
 * any callback.
 *
 * Reconnecting is not done here: when the connection is gone (down()),
 * the owner frees the client and makes a new one (grpc_backoff below
 * paces the attempts).
 */
#ifndef TROIKA_GRPC_CLIENT_H
#define TROIKA_GRPC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "grpc_status.h"

struct event_base;
struct evbuffer;
struct bufferevent;
struct grpc_client;
struct grpc_client_call;

struct grpc_client_config {
	size_t max_recv_message;   /* default 4 MiB: RESOURCE_EXHAUSTED above */
	/*
	 * Bytes queued for sending per call; a send beyond it is refused
	 * with -EAGAIN and drained() follows once the queue is empty.
	 */
	size_t call_send_cap;      /* default 1 MiB */
	uint32_t stream_window;    /* initial stream window; default 1 MiB */
	uint32_t conn_window;      /* connection window; default 4 MiB */
	/* Milliseconds; 0 disables. */
	int64_t connect_timeout_ms; /* TCP + TLS + SETTINGS; default 10 s */
	int64_t keepalive_ms;      /* silence with calls open; default 60 s */
	int64_t keepalive_timeout_ms; /* wait for the PING ack; default 20 s */
	/*
	 * A struct evdns_base * to resolve names without blocking the loop;
	 * NULL (the default) resolves with getaddrinfo() at once, which is
	 * fine only for numeric addresses and /etc/hosts names.
	 */
	void *dns_base;
};

/* Fill in the defaults above. */
void grpc_client_config_default(struct grpc_client_config *cfg);

/*
 * The connection went down (refused, lost, GOAWAY'd and empty, keepalive
 * unanswered); every call was closed before. reason is for logs. Called
 * once, from its own event: the owner may free the client here.
 */
typedef void (*grpc_client_down_cb)(struct grpc_client *cl,
    const char *reason, void *arg);

/*
 * Connect to host:port (a numeric address or a name). tls is an SSL_CTX *
 * from grpc_tls_client_ctx(), or NULL for h2c; the client takes its own
 * reference. authority is the :authority and TLS server name (NULL: host).
 * cfg NULL means the defaults. Calls may be opened at once: they go out
 * once connected. Returns NULL (errno set) on failure.
 */
struct grpc_client *grpc_client_connect(struct event_base *base,
    const char *host, int port, void *tls, const char *authority,
    const struct grpc_client_config *cfg, grpc_client_down_cb down,
    void *arg);

/*
 * A client on an already connected transport (one end of a bufferevent
 * pair in tests). Takes ownership of bev, also on error.
 */
struct grpc_client *grpc_client_adopt(struct event_base *base,
    struct bufferevent *bev, const char *authority,
    const struct grpc_client_config *cfg, grpc_client_down_cb down,
    void *arg);

/*
 * Close at once: every open call's close() runs with CANCELLED, down()
 * does not. Not from inside a call callback. NULL is fine.
 */
void grpc_client_free(struct grpc_client *cl);

/*
 * Stop opening calls and send GOAWAY; down() follows once the open calls
 * ended.
 */
void grpc_client_shutdown(struct grpc_client *cl);

/* 1 once the server's SETTINGS arrived: the connection worked. */
int grpc_client_handshaken(const struct grpc_client *cl);

/*
 * 1 once the server sent GOAWAY ENHANCE_YOUR_CALM "too_many_pings" (gRPC
 * servers allow a PING every 5 minutes by default when no data flows):
 * the next connection should PING half as often (grpc_reconnect does).
 */
int grpc_client_too_many_pings(const struct grpc_client *cl);

/* 1 while new calls can be opened (not down, no GOAWAY either way). */
int grpc_client_usable(const struct grpc_client *cl);

struct grpc_client_stats {
	uint64_t calls_started;
	uint64_t calls_open;       /* gauge */
	uint64_t msgs_sent;
	uint64_t msgs_received;
	uint64_t bytes_sent;       /* HTTP/2 bytes, framing included */
	uint64_t bytes_received;
	uint64_t pings_sent;
	uint64_t handled[GRPC_STATUS_MAX + 1]; /* calls ended, by status */
};

const struct grpc_client_stats *grpc_client_stats(
    const struct grpc_client *cl);

/* ---- calls ---- */

struct grpc_client_handler {
	void (*headers)(struct grpc_client_call *call, void *arg);
	/* One response message; msg is valid during the callback only. */
	void (*message)(struct grpc_client_call *call, const uint8_t *msg,
	    size_t len, void *arg);
	void (*drained)(struct grpc_client_call *call, void *arg);
	/* Required. message is "" when the server sent none. */
	void (*close)(struct grpc_client_call *call, int status,
	    const char *message, void *arg);
};

/*
 * Open a call on path ("/pkg.Service/Method"). timeout_ms > 0 sets a
 * deadline (sent as grpc-timeout; DEADLINE_EXCEEDED when it passes).
 * handler must outlive the call; arg is passed to its callbacks.
 * Returns NULL with errno ENOTCONN when the client is not usable, EINVAL
 * for a bad path or handler, ENOMEM.
 */
struct grpc_client_call *grpc_client_call_open(struct grpc_client *cl,
    const char *path, int64_t timeout_ms,
    const struct grpc_client_handler *handler, void *arg);

/*
 * Add a request header (lower-case name, printable value) before the
 * first send/half-close/loop turn. Returns 0, -EINVAL (too late or bad
 * name), -ENOMEM.
 */
int grpc_client_call_metadata(struct grpc_client_call *call,
    const char *name, const char *value);

/*
 * Queue one request message. Returns 0; -EAGAIN when call_send_cap bytes
 * are already queued (nothing taken; drained() follows); -EINVAL after
 * half-close or once the call is ending; -EMSGSIZE; -ENOMEM.
 */
int grpc_client_call_send(struct grpc_client_call *call, const void *msg,
    size_t len);

/* Request bytes queued and not yet given to HTTP/2. */
size_t grpc_client_call_queued(const struct grpc_client_call *call);

/* No more requests: END_STREAM after what is queued. 0 or -EINVAL. */
int grpc_client_call_half_close(struct grpc_client_call *call);

/* Cancel (RST_STREAM CANCEL); close() follows with CANCELLED. */
void grpc_client_call_cancel(struct grpc_client_call *call);

/*
 * A response header or trailer by lower-case name (custom metadata,
 * content-type, ...); NULL if absent. Trailers are there by close():
 * read them in it. grpc-status and grpc-message are not kept here (they
 * are close()'s arguments). The value is valid until close() returns.
 */
const char *grpc_client_call_header(const struct grpc_client_call *call,
    const char *name);

/* ---- TLS ---- */

/*
 * An OpenSSL client context: TLS 1.2 or later, ALPN "h2", the server's
 * certificate checked against ca_file (NULL: the system's CAs) and its
 * name; with cert_file and key_file, a client certificate (mutual TLS).
 * Returns an SSL_CTX * (free with grpc_tls_ctx_free()) or NULL after
 * logging why.
 */
void *grpc_tls_client_ctx(const char *ca_file, const char *cert_file,
    const char *key_file);

/* ---- reconnect pacing ---- */

/*
 * Jittered exponential backoff as gRPC's connection-backoff.md: the
 * first retry after initial_ms, each later one multiplier times longer up
 * to max_ms, every delay spread by +-jitter (0.2 = 20 %). A connection
 * that worked calls grpc_backoff_reset().
 */
struct grpc_backoff {
	int64_t initial_ms;  /* default 1000 */
	int64_t max_ms;      /* default 120000 */
	double multiplier;   /* default 1.6 */
	double jitter;       /* default 0.2 */
	double current_ms;   /* next delay before jitter */
	uint64_t rng;        /* xorshift state; seed with anything non-zero */
};

void grpc_backoff_init(struct grpc_backoff *b, uint64_t seed);
void grpc_backoff_reset(struct grpc_backoff *b);
/* The delay before the next attempt, in milliseconds (>= 0). */
int64_t grpc_backoff_next(struct grpc_backoff *b);

/* ---- a connection kept up (grpc_client_reconnect.c) ---- */

/*
 * One target kept connected: a new client after every loss, paced by the
 * backoff (reset once a connection completed its handshake), and with
 * keepalive_ms doubled after a server said "too_many_pings". Made for
 * the agent's stream to each coordinator: attempt() gets every new client
 * at once, so the owner opens its calls (which go out once connected, or
 * end UNAVAILABLE if this attempt fails); down() says why the client went
 * and when the next attempt is. The client belongs to the reconnector:
 * the owner never frees it, and must not use it after down().
 */
struct grpc_reconnect;

typedef void (*grpc_reconnect_attempt_cb)(struct grpc_reconnect *r,
    struct grpc_client *cl, void *arg);
typedef void (*grpc_reconnect_down_cb)(struct grpc_reconnect *r,
    const char *reason, int64_t next_ms, void *arg);

/*
 * Start: the first attempt follows from the loop at once. tls (SSL_CTX *,
 * referenced per client), authority and cfg (its dns_base too) as for
 * grpc_client_connect(); backoff NULL means the defaults, its
 * rng is seeded here. Returns NULL (errno set) on failure.
 */
struct grpc_reconnect *grpc_reconnect_new(struct event_base *base,
    const char *host, int port, void *tls, const char *authority,
    const struct grpc_client_config *cfg, const struct grpc_backoff *backoff,
    grpc_reconnect_attempt_cb attempt, grpc_reconnect_down_cb down,
    void *arg);

/* The current client, NULL while waiting for the next attempt. */
struct grpc_client *grpc_reconnect_client(const struct grpc_reconnect *r);

/* The keepalive interval the next client gets. */
int64_t grpc_reconnect_keepalive_ms(const struct grpc_reconnect *r);

/* Attempts made so far (the first included). */
uint64_t grpc_reconnect_attempts(const struct grpc_reconnect *r);

/*
 * Prometheus families for n reconnectors, one series each labelled
 * target="host:port" (counters summed over all their clients):
 * troika_grpc_client_connected (gauge), ..._connect_attempts_total,
 * ..._calls_started_total, ..._calls_handled_total{grpc_code},
 * ..._msg_sent_total, ..._msg_received_total, ..._sent_bytes_total,
 * ..._received_bytes_total, ..._keepalive_pings_total.
 */
void grpc_reconnect_write_metrics(struct grpc_reconnect *const *rs, size_t n,
    struct evbuffer *out);

/*
 * Stop: the current client is freed (its calls end CANCELLED, down() is
 * not called). Not from inside a call callback. NULL is fine.
 */
void grpc_reconnect_free(struct grpc_reconnect *r);

#endif
