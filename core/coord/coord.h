/*
 * troika-coord: the daemon's state, shared by its modules. coord_main.c
 * owns it; coord_agent.c serves troika.v1.Agent/Connect into the view
 * (coord_view.c), coord_admin.c answers troika.v1.Admin/GetStatus from it,
 * coord_metrics.c and coord_http.c serve /metrics.
 */
#ifndef TROIKA_COORD_H
#define TROIKA_COORD_H

#include <sys/queue.h>

#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "grpc_server.h"
#include "metrics.h"

struct event_base;
struct evbuffer;
struct coord_conf;
struct coord_view;
struct coord_http;
struct coord_stream;
struct coord_events;
struct coord_opinions;
struct coord_quorum;
struct coord_recovery;
struct coord_tilt;
struct coord_history;
struct alert_hooks;
struct Troika__V1__Command;

/* Kinds of AgentMessage, for counters. */
enum coord_msg_kind {
	COORD_MSG_HELLO,
	COORD_MSG_CHECK_RESULT,
	COORD_MSG_METRIC_BATCH,
	COORD_MSG_HEARTBEAT,
	COORD_MSG_COMMAND_RESULT,
	COORD_MSG_INVALID, /* unparsable, or no body */
	COORD_MSG_MAX,
};

const char *coord_msg_kind_str(enum coord_msg_kind kind);

struct coord_stats {
	uint64_t streams_open; /* gauge */
	uint64_t streams_total;
	uint64_t messages[COORD_MSG_MAX];
	uint64_t message_bytes[COORD_MSG_MAX];
	/* Streams the coordinator ended with an error status, by code. */
	uint64_t stream_errors[GRPC_STATUS_MAX + 1];
	uint64_t samples_invalid;
	uint64_t samples_limit;
	uint64_t status_requests;
};

struct coord {
	struct event_base *base;
	const struct coord_conf *conf;
	struct grpc_server *srv;
	struct coord_view *view;
	struct coord_events *events;
	struct coord_http *http;
	struct coord_opinions *opinions; /* what this coordinator thinks */
	struct coord_quorum *quorum;     /* what they all think; the leader */
	struct coord_recovery *recovery; /* what the leader does about it */
	struct coord_tilt *tilt;
	struct coord_history *history;   /* recovery events in etcd */
	struct alert_hooks *alerts;      /* alert sinks (alerts.hooks) */
	/* The highest fencing token known, told to agents in Welcome. */
	uint64_t fencing_token;
	uint64_t next_stream; /* ids of Connect streams, from 1 */
	LIST_HEAD(, coord_stream) streams;
	struct coord_stats stats;
	/* Time a Connect handler spends on one message. */
	struct metrics_histogram handling;
	/* Refused streams logged in the current window, and those not. */
	double log_window;
	unsigned log_count;
	uint64_t log_suppressed;
};

/* Wall-clock nanoseconds since the Unix epoch. */
uint64_t coord_now_ns(void);

/* Pack a protobuf-c message and send it on call (grpc_call_send()). */
int coord_send(struct grpc_call *call, const ProtobufCMessage *m);

/* Register Agent/Connect (coord_agent.c). */
int coord_agent_register(struct coord *c);
/*
 * Shutting down: end every agent stream now with UNAVAILABLE, so agents
 * turn to the other coordinators at once instead of waiting for the grace
 * period to run out.
 */
void coord_agent_shutdown(struct coord *c);
/*
 * Send a command to a node's agent on its stream to this coordinator:
 * 0, or -ENOTCONN when the node has no stream here.
 */
int coord_agent_command(struct coord *c, const char *node,
    const struct Troika__V1__Command *cmd);
/* Has the node an open stream to this coordinator? */
int coord_agent_connected(struct coord *c, const char *node);
/* A fencing token became known (this coordinator leads with it). */
void coord_agent_fencing(struct coord *c, uint64_t token);
/* Register Admin/GetStatus (coord_admin.c). */
int coord_admin_register(struct coord *c);
/* Initialise and free the coordinator's own metrics (coord_metrics.c). */
int coord_metrics_init(struct coord *c);
void coord_metrics_free(struct coord *c);
/* The whole /metrics page. */
void coord_metrics_write(struct coord *c, struct evbuffer *out);

/* /metrics and /healthz on host:port (coord_http.c); NULL after logging. */
struct coord_http *coord_http_start(struct coord *c, const char *listen);
void coord_http_free(struct coord_http *h);

#endif
