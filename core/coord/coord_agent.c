/*
 * troika.v1.Agent/Connect: one bidirectional stream per agent. The agent
 * says Hello first; the coordinator answers Welcome and from then on
 * keeps what the agent reports in the view. A message that cannot be
 * parsed, or has no body, ends the stream with INVALID_ARGUMENT; anything
 * before a Hello ends it with FAILED_PRECONDITION. Either ends only that
 * stream: other agents never notice.
 *
 * Heartbeats are not answered: each side sends one when it had nothing
 * else to send for the heartbeat interval (agent.proto), so a timer per
 * stream sends ours, and ends a stream the agent left silent for the
 * configured timeout with UNAVAILABLE (a dead peer behind a proxy that
 * answers HTTP/2 PINGs for it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "coord.h"
#include "coord_conf.h"
#include "coord_events.h"
#include "coord_opinion.h"
#include "coord_quorum.h"
#include "coord_recovery.h"
#include "coord_view.h"
#include "log.h"
#include "status.h"
#include "troika/v1/agent.pb-c.h"

/* At most this many refused streams are logged per window. */
#define COORD_LOG_PER_WINDOW 10
#define COORD_LOG_WINDOW_S 10.0

struct coord_stream {
	LIST_ENTRY(coord_stream) entry;
	struct coord *c;
	struct grpc_call *call;
	uint64_t id;
	char *node; /* NULL until the Hello */
	uint64_t heartbeats;
	struct event *timer;
	double last_recv; /* monotonic seconds */
	double last_sent;
	int finished; /* we ended it: send nothing more */
};

static const char *const coord_msg_kind_names[COORD_MSG_MAX] = {
    [COORD_MSG_HELLO] = "hello",
    [COORD_MSG_CHECK_RESULT] = "check_result",
    [COORD_MSG_METRIC_BATCH] = "metric_batch",
    [COORD_MSG_HEARTBEAT] = "heartbeat",
    [COORD_MSG_COMMAND_RESULT] = "command_result",
    [COORD_MSG_INVALID] = "invalid",
};

const char *
coord_msg_kind_str(enum coord_msg_kind kind)
{
	if ((unsigned)kind >= COORD_MSG_MAX)
		return "invalid";
	return coord_msg_kind_names[kind];
}

uint64_t
coord_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static double
coord_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
coord_send(struct grpc_call *call, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len > 0 ? len : 1);
	int r;

	if (buf == NULL)
		return -ENOMEM;
	protobuf_c_message_pack(m, buf);
	r = grpc_call_send(call, buf, len);
	free(buf);
	return r;
}

/* End the stream with an error status, counted and logged. */
static void
coord_stream_fail(struct coord_stream *st, struct grpc_call *call, int status,
    const char *msg)
{
	struct coord *c = st->c;
	double now = coord_mono_s();

	c->stats.stream_errors[status]++;
	/*
	 * A client opening bad streams in a loop must not flood the log:
	 * a few lines per window, then one line saying how many were not
	 * logged (the metrics count them all).
	 */
	if (now - c->log_window >= COORD_LOG_WINDOW_S) {
		if (c->log_suppressed > 0)
			log_warnx("%llu more agent streams refused, not logged",
			    (unsigned long long)c->log_suppressed);
		c->log_window = now;
		c->log_count = 0;
		c->log_suppressed = 0;
	}
	if (c->log_count++ < COORD_LOG_PER_WINDOW)
		log_warnx("agent stream from %s (%s): %s: %s",
		    grpc_call_peer(call),
		    st->node != NULL ? st->node : "no Hello yet",
		    grpc_status_str(status), msg);
	else
		c->log_suppressed++;
	st->finished = 1;
	grpc_call_finish(call, status, msg);
}

static int
coord_stream_send(struct coord_stream *st, const ProtobufCMessage *m)
{
	st->last_sent = coord_mono_s();
	return coord_send(st->call, m);
}

static void
coord_stream_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct coord_stream *st = arg;
	const struct coord_conf *conf = st->c->conf;
	Troika__V1__CoordinatorMessage cm =
	    TROIKA__V1__COORDINATOR_MESSAGE__INIT;
	Troika__V1__Heartbeat hb = TROIKA__V1__HEARTBEAT__INIT;
	double now = coord_mono_s();
	char msg[96];

	(void)fd;
	(void)what;
	if (st->finished)
		return;
	if ((now - st->last_recv) * 1000 >= (double)conf->agent_timeout_ms) {
		snprintf(msg, sizeof(msg),
		    "no message from the agent for "
		    "%.1f s",
		    now - st->last_recv);
		coord_stream_fail(st, st->call, GRPC_STATUS_UNAVAILABLE, msg);
		return;
	}
	/* Half a tick early is fine: heartbeats are a floor, not a clock. */
	if ((now - st->last_sent) * 1000 + (double)conf->heartbeat_ms / 4 <
	    (double)conf->heartbeat_ms)
		return;
	hb.seq = ++st->heartbeats;
	hb.time_unix_nano = coord_now_ns();
	cm.body_case = TROIKA__V1__COORDINATOR_MESSAGE__BODY_HEARTBEAT;
	cm.heartbeat = &hb;
	coord_stream_send(st, &cm.base);
}

static int
coord_stream_start(struct grpc_call *call, void *arg)
{
	struct coord *c = arg;
	struct coord_stream *st;
	int64_t tick_ms = c->conf->heartbeat_ms / 4;
	struct timeval tick = {
	    .tv_sec = tick_ms / 1000,
	    .tv_usec = (suseconds_t)(tick_ms % 1000) * 1000,
	};

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -ENOMEM;
	st->c = c;
	st->call = call;
	st->last_recv = st->last_sent = coord_mono_s();
	if ((st->timer = event_new(
	         c->base, -1, EV_PERSIST, coord_stream_timer_cb, st)) == NULL ||
	    event_add(st->timer, &tick) < 0) {
		if (st->timer != NULL)
			event_free(st->timer);
		free(st);
		return -ENOMEM;
	}
	st->id = ++c->next_stream;
	LIST_INSERT_HEAD(&c->streams, st, entry);
	grpc_call_set_data(call, st);
	c->stats.streams_open++;
	c->stats.streams_total++;
	log_debug("agent stream %llu from %s", (unsigned long long)st->id,
	    grpc_call_peer(call));
	return 0;
}

static void coord_stream_opinions_hello(struct coord *c, const char *node);

static void
coord_stream_welcome(struct coord_stream *st, const Troika__V1__Hello *h)
{
	Troika__V1__CoordinatorMessage cm =
	    TROIKA__V1__COORDINATOR_MESSAGE__INIT;
	Troika__V1__Welcome w = TROIKA__V1__WELCOME__INIT;

	w.coordinator = st->c->conf->name;
	w.version = (char *)(uintptr_t)TROIKA_VERSION;
	w.heartbeat_interval_nano =
	    (uint64_t)st->c->conf->heartbeat_ms * 1000000ULL;
	/* The highest we know: a restarted agent learns it before any
	 * command could come, so a stale leader is refused at once. */
	w.fencing_token = h->fencing_token > st->c->fencing_token ?
	    h->fencing_token : st->c->fencing_token;
	cm.body_case = TROIKA__V1__COORDINATOR_MESSAGE__BODY_WELCOME;
	cm.welcome = &w;
	coord_stream_send(st, &cm.base);
}

static void
coord_stream_hello(struct coord_stream *st, struct grpc_call *call,
    Troika__V1__AgentMessage *am, uint64_t now)
{
	Troika__V1__Hello *h = am->hello;
	const struct coord_node *prev;
	char *node;
	int r, owned;

	if (st->node != NULL && strcmp(st->node, h->node) != 0) {
		coord_stream_fail(st, call, GRPC_STATUS_INVALID_ARGUMENT,
		    "a Hello may not change the node name of a stream");
		return;
	}
	if ((node = strdup(h->node)) == NULL) {
		coord_stream_fail(
		    st, call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	prev = coord_view_node(st->c->view, node);
	owned = prev != NULL && prev->stream == st->id;
	r = coord_view_hello(st->c->view, st->id, h, now);
	if (r < 0) {
		free(node);
		if (r == -EINVAL)
			coord_stream_fail(st, call,
			    GRPC_STATUS_INVALID_ARGUMENT,
			    "Hello needs a node "
			    "name and unique, non-empty check names");
		else
			coord_stream_fail(st, call,
			    GRPC_STATUS_RESOURCE_EXHAUSTED,
			    r == -ENOSPC ? "too many nodes" : "out of memory");
		return;
	}
	/* The view owns the Hello now. */
	am->hello = NULL;
	am->body_case = TROIKA__V1__AGENT_MESSAGE__BODY__NOT_SET;
	free(st->node);
	st->node = node;
	coord_stream_opinions_hello(st->c, node);
	if (!owned) {
		const char *const f[] = {
		    "peer",
		    grpc_call_peer(call),
		    "agent_version",
		    h->version,
		};

		coord_events_emit(st->c, "node_connected",
		    TROIKA__V1__SEVERITY__SEVERITY_INFO, node, NULL, f, 2,
		    "node %s connected from %s (agent %s)", node,
		    grpc_call_peer(call), h->version);
	}
	coord_stream_welcome(st, h);
	if (!owned && st->c->recovery != NULL)
		coord_recovery_node_connected(st->c->recovery, node);
}

/* A view error on an established stream. */
static void
coord_stream_view_error(struct coord_stream *st, struct grpc_call *call, int r)
{
	switch (r) {
	case -EINVAL:
		coord_stream_fail(st, call, GRPC_STATUS_INVALID_ARGUMENT,
		    "CheckResult needs a check name");
		break;
	case -ESTALE:
	case -ENOENT:
		/* A newer stream of the same node took over. */
		coord_stream_fail(st, call, GRPC_STATUS_ABORTED,
		    "a newer stream of this node replaced this one");
		break;
	default:
		coord_stream_fail(
		    st, call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		break;
	}
}

/* The node's check's latest status; 0 (unspecified) if none yet. */
static int
coord_stream_last_status(struct coord *c, const char *node, const char *check)
{
	const struct coord_node *n = coord_view_node(c->view, node);

	for (size_t i = 0; n != NULL && i < n->nchecks; i++)
		if (n->checks[i].last != NULL &&
		    strcmp(n->checks[i].name, check) == 0)
			return (int)n->checks[i].last->status;
	return 0;
}

static const char *
coord_check_status_str(int status)
{
	/* CheckStatus is troika_status + 1 (agent.proto). */
	return status >= 1 && status <= 4 ? troika_status_str(status - 1)
	                                  : "none";
}

/* A check's first result, or one with another status than the last. */
static void
coord_stream_status_event(struct coord *c, const char *node,
    const Troika__V1__CheckResult *res, int prev)
{
	Troika__V1__Severity sev;
	const char *from = coord_check_status_str(prev);
	const char *to = coord_check_status_str((int)res->status);
	const char *const f[] = {
	    "from",
	    from,
	    "to",
	    to,
	    "plugin",
	    res->plugin,
	    "evidence",
	    troika_evidence_str((int)res->evidence),
	};

	switch (res->status) {
	case TROIKA__V1__CHECK_STATUS__CHECK_STATUS_OK:
		sev = TROIKA__V1__SEVERITY__SEVERITY_INFO;
		break;
	case TROIKA__V1__CHECK_STATUS__CHECK_STATUS_WARNING:
		sev = TROIKA__V1__SEVERITY__SEVERITY_WARNING;
		break;
	default:
		sev = TROIKA__V1__SEVERITY__SEVERITY_CRITICAL;
		break;
	}
	coord_events_emit(c, "check_status", sev, node, res->check, f, 4,
	    "%s on %s: %s -> %s: %s", res->check, node, from, to, res->message);
}

static enum coord_msg_kind
coord_msg_kind(const Troika__V1__AgentMessage *am)
{
	switch (am->body_case) {
	case TROIKA__V1__AGENT_MESSAGE__BODY_HELLO:
		return COORD_MSG_HELLO;
	case TROIKA__V1__AGENT_MESSAGE__BODY_CHECK_RESULT:
		return COORD_MSG_CHECK_RESULT;
	case TROIKA__V1__AGENT_MESSAGE__BODY_METRIC_BATCH:
		return COORD_MSG_METRIC_BATCH;
	case TROIKA__V1__AGENT_MESSAGE__BODY_HEARTBEAT:
		return COORD_MSG_HEARTBEAT;
	case TROIKA__V1__AGENT_MESSAGE__BODY_COMMAND_RESULT:
		return COORD_MSG_COMMAND_RESULT;
	default:
		return COORD_MSG_INVALID;
	}
}

static void
coord_stream_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	struct coord_stream *st = grpc_call_data(call);
	struct coord *c = st->c;
	struct coord_view_drops drops = {0};
	Troika__V1__AgentMessage *am;
	enum coord_msg_kind kind;
	const Troika__V1__CheckResult *res;
	int prev;
	double t0 = coord_mono_s();
	uint64_t now = coord_now_ns();
	int r;

	st->last_recv = t0;
	am = troika__v1__agent_message__unpack(NULL, len, msg);
	kind = am != NULL ? coord_msg_kind(am) : COORD_MSG_INVALID;
	c->stats.messages[kind]++;
	c->stats.message_bytes[kind] += len;
	if (am == NULL) {
		coord_stream_fail(st, call, GRPC_STATUS_INVALID_ARGUMENT,
		    "cannot parse AgentMessage");
		goto out;
	}
	if (kind == COORD_MSG_INVALID) {
		coord_stream_fail(st, call, GRPC_STATUS_INVALID_ARGUMENT,
		    "AgentMessage without a body");
		goto out;
	}
	if (st->node == NULL && kind != COORD_MSG_HELLO) {
		coord_stream_fail(st, call, GRPC_STATUS_FAILED_PRECONDITION,
		    "the first message must be a Hello");
		goto out;
	}
	switch (kind) {
	case COORD_MSG_HELLO:
		coord_stream_hello(st, call, am, now);
		break;
	case COORD_MSG_CHECK_RESULT:
		prev = coord_stream_last_status(
		    c, st->node, am->check_result->check);
		r = coord_view_result(
		    c->view, st->id, st->node, am->check_result, now);
		if (r < 0) {
			coord_stream_view_error(st, call, r);
			break;
		}
		res = am->check_result;
		am->check_result = NULL;
		am->body_case = TROIKA__V1__AGENT_MESSAGE__BODY__NOT_SET;
		if ((int)res->status != prev)
			coord_stream_status_event(c, st->node, res, prev);
		if (c->opinions != NULL)
			coord_opinions_result(c->opinions, st->node, res);
		if (c->recovery != NULL)
			coord_recovery_result(c->recovery, st->node,
			    res->check);
		break;
	case COORD_MSG_METRIC_BATCH:
		r = coord_view_samples(
		    c->view, st->id, st->node, am->metric_batch, now, &drops);
		c->stats.samples_invalid += drops.invalid;
		c->stats.samples_limit += drops.limit;
		if (r < 0)
			coord_stream_view_error(st, call, r);
		break;
	case COORD_MSG_COMMAND_RESULT:
		if (c->recovery != NULL)
			coord_recovery_command_result(c->recovery, st->node,
			    am->command_result);
		coord_view_seen(c->view, st->id, st->node, now);
		break;
	case COORD_MSG_HEARTBEAT:
		coord_view_seen(c->view, st->id, st->node, now);
		break;
	default:
		break;
	}
out:
	if (am != NULL)
		troika__v1__agent_message__free_unpacked(am, NULL);
	metrics_histogram_observe(&c->handling, coord_mono_s() - t0);
}

static void
coord_stream_half_close(struct grpc_call *call)
{
	struct coord_stream *st = grpc_call_data(call);

	st->finished = 1;
	grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static void
coord_stream_close(struct grpc_call *call, int status)
{
	struct coord_stream *st = grpc_call_data(call);

	if (st == NULL)
		return;
	if (st->node != NULL) {
		const struct coord_node *n =
		    coord_view_node(st->c->view, st->node);

		/* A stream replaced by a newer one leaves the node as it is. */
		if (n != NULL && n->stream == st->id) {
			const char *const f[] = {
			    "grpc_code",
			    grpc_status_str(status),
			};

			coord_view_disconnect(
			    st->c->view, st->id, st->node, coord_now_ns());
			if (st->c->opinions != NULL)
				coord_opinions_disconnected(st->c->opinions,
				    st->node);
			coord_events_emit(st->c, "node_disconnected",
			    TROIKA__V1__SEVERITY__SEVERITY_WARNING, st->node,
			    NULL, f, 1, "node %s disconnected (%s)", st->node,
			    grpc_status_str(status));
		}
	}
	st->c->stats.streams_open--;
	LIST_REMOVE(st, entry);
	event_free(st->timer);
	free(st->node);
	free(st);
}

static const struct grpc_handler coord_agent_handler = {
    .start = coord_stream_start,
    .message = coord_stream_message,
    .half_close = coord_stream_half_close,
    .close = coord_stream_close,
};

/* The stream that owns node, if it is open. */
static struct coord_stream *
coord_stream_of(struct coord *c, const char *node)
{
	const struct coord_node *n = coord_view_node(c->view, node);
	struct coord_stream *st;

	if (n == NULL || n->stream == 0)
		return NULL;
	LIST_FOREACH(st, &c->streams, entry)
		if (st->id == n->stream && !st->finished)
			return st;
	return NULL;
}

int
coord_agent_command(struct coord *c, const char *node,
    const Troika__V1__Command *cmd)
{
	Troika__V1__CoordinatorMessage cm =
	    TROIKA__V1__COORDINATOR_MESSAGE__INIT;
	struct coord_stream *st = coord_stream_of(c, node);

	if (st == NULL)
		return -ENOTCONN;
	cm.body_case = TROIKA__V1__COORDINATOR_MESSAGE__BODY_COMMAND;
	cm.command = (Troika__V1__Command *)(uintptr_t)cmd;
	return coord_stream_send(st, &cm.base);
}

int
coord_agent_connected(struct coord *c, const char *node)
{
	return coord_stream_of(c, node) != NULL;
}

void
coord_agent_fencing(struct coord *c, uint64_t token)
{
	if (token > c->fencing_token)
		c->fencing_token = token;
}

/* A Hello: the opinions learn the node's checks now. */
static void
coord_stream_opinions_hello(struct coord *c, const char *node)
{
	const struct coord_node *n = coord_view_node(c->view, node);
	const char **names, **plugins;

	if (c->opinions == NULL || n == NULL)
		return;
	names = calloc(n->nchecks + 1, sizeof(*names));
	plugins = calloc(n->nchecks + 1, sizeof(*plugins));
	if (names != NULL && plugins != NULL) {
		for (size_t i = 0; i < n->nchecks; i++) {
			names[i] = n->checks[i].name;
			plugins[i] = n->checks[i].plugin;
		}
		coord_opinions_hello(c->opinions, node, names, plugins,
		    n->nchecks);
		/* Checks the Hello dropped take their opinions with them. */
		if (c->quorum != NULL)
			coord_quorum_withdraw_stale(c->quorum);
	}
	free(names);
	free(plugins);
}

void
coord_agent_shutdown(struct coord *c)
{
	struct coord_stream *st;

	/* close() comes later, from the loop: the list stays intact here. */
	LIST_FOREACH(st, &c->streams, entry)
	{
		if (st->finished)
			continue;
		st->finished = 1;
		grpc_call_finish(st->call, GRPC_STATUS_UNAVAILABLE,
		    "coordinator shutting down");
	}
}

int
coord_agent_register(struct coord *c)
{
	const struct grpc_method m = {
	    .path = "/troika.v1.Agent/Connect",
	    .kind = GRPC_METHOD_BIDI_STREAMING,
	    .handler = &coord_agent_handler,
	    .arg = c,
	};

	return grpc_server_add_method(c->srv, &m);
}
