/*
 * troikactl's calls to a coordinator, on core/lib's gRPC client: one
 * event loop, one connection at a time, each call run to its end.
 *
 * Any coordinator can answer, so a call goes to the configured targets in
 * order until one answers. A target that does not answer (connection
 * refused or lost, TLS failure, no reply before the deadline, UNAVAILABLE)
 * gets one line on stderr saying why, and the next is tried. Once a target
 * has answered, the session stays with it: sequence numbers and views are
 * per coordinator, so a later call (an events watch resumed) must not
 * land on another one.
 */
#ifndef TROIKA_CTL_RPC_H
#define TROIKA_CTL_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "ctl.h"

struct event_base;
struct event;
struct grpc_client;
struct grpc_client_call;

/* ctl_rpc_call()'s answer when no target answered. */
#define CTL_RPC_NO_ANSWER (-1)

struct ctl_rpc_handler {
	/*
	 * One response message (valid during the call only). Return 0, or
	 * a negative errno to end the call (ctl_rpc_call() then returns
	 * GRPC_STATUS_INTERNAL with r->message saying why).
	 */
	int (*message)(const uint8_t *msg, size_t len, void *arg);
};

/*
 * The one answer of a unary call, unpacked with desc: pass
 * &ctl_rpc_reply_handler and a struct ctl_rpc_reply to ctl_rpc_call().
 * A second answer ends the call. The caller frees msg
 * (protobuf_c_message_free_unpacked) when it is not NULL.
 */
struct ctl_rpc_reply {
	const ProtobufCMessageDescriptor *desc;
	ProtobufCMessage *msg;
};
extern const struct ctl_rpc_handler ctl_rpc_reply_handler;

struct ctl_rpc {
	struct event_base *base;
	const struct ctl_opts *o;
	void *tls; /* SSL_CTX *, or NULL for h2c */
	struct grpc_client *cl;
	size_t target;  /* the target cl talks to */
	int answered;   /* a target answered: stay with it */
	size_t nfailed; /* targets that did not answer */
	struct event *sigint;
	struct event *sigterm;
	int interrupted; /* SIGINT or SIGTERM arrived */
	/* The current call. */
	struct grpc_client_call *call;
	const struct ctl_rpc_handler *handler;
	void *arg;
	int responded; /* headers or a message came back */
	int done;
	int stopped; /* ctl_rpc_stop() ended it */
	int status;
	char message[512]; /* grpc-message, or why it failed */
};

/*
 * Set up: the event loop, TLS (a message on stderr when the files do not
 * load) and the signal handlers (SIGINT/SIGTERM stop the current call,
 * SIGPIPE ignored). Returns 0 or -1.
 */
int ctl_rpc_init(struct ctl_rpc *r, const struct ctl_opts *o);
/* NULL-safe teardown; also after a failed init. */
void ctl_rpc_cleanup(struct ctl_rpc *r);

/*
 * Run one call: req packed and sent, half-close, each response message to
 * h, until the call ends. timeout_ms > 0 is the call's deadline (and
 * bounds the connection set-up); 0 means none, and then --timeout bounds
 * the set-up alone. Returns the final gRPC status of the target that
 * answered (r->message has its grpc-message; GRPC_STATUS_CANCELLED with
 * r->stopped after ctl_rpc_stop() or a signal), or CTL_RPC_NO_ANSWER
 * once every target failed, each with its line on stderr.
 */
int ctl_rpc_call(struct ctl_rpc *r, const char *path,
    const ProtobufCMessage *req, int64_t timeout_ms,
    const struct ctl_rpc_handler *h, void *arg);

/*
 * For calls only the leader answers (AcknowledgeAction): ask the targets
 * in order (GetStatus) which one leads, and stay with it for the calls
 * that follow. Returns 0, or -1 after saying why on stderr.
 */
int ctl_rpc_find_leader(struct ctl_rpc *r);

/* End the current call from a callback or timer; no other target. */
void ctl_rpc_stop(struct ctl_rpc *r);

/* 1 once the current connection finished its HTTP/2 handshake. */
int ctl_rpc_connected(const struct ctl_rpc *r);

/* The target of the current (or last) call, as given. */
const char *ctl_rpc_target(const struct ctl_rpc *r);

#endif
