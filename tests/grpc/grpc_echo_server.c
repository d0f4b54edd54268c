/*
 * grpc_echo_server: the core/lib gRPC server with test services, for the
 * interoperability tests (tests/system/test_grpc.py) until troika-coord
 * exists. It serves
 *   troika.test.Echo   (echo.proto): every kind of call, errors, delays,
 *                      large replies, metadata, the server's metrics;
 *   troika.v1.Agent    Connect: Hello -> Welcome, heartbeats answered,
 *                      check results kept;
 *   troika.v1.Admin    GetStatus: the nodes and results heard on Connect.
 *
 * usage: grpc_echo_server [options] HOST PORT
 * Prints "port N" on stdout once it listens. SIGTERM or SIGINT shut it
 * down gracefully (--grace); it exits 0 when every connection is gone.
 */
#include <sys/queue.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "echo.pb-c.h"
#include "troika/v1/admin.pb-c.h"
#include "troika/v1/agent.pb-c.h"

#include "grpc_server.h"
#include "log.h"

/* Count keeps at most this much queued before it waits for drained(). */
#define ECHO_QUEUE_MAX (256 * 1024)

static struct event_base *echo_base;
static struct grpc_server *echo_srv;
/* Handlers' close() statuses, reported by Metrics. */
static uint64_t echo_closed[GRPC_STATUS_MAX + 1];
static unsigned echo_open;

/* Pack any protobuf-c message and send it on call. */
static int
echo_send_msg(struct grpc_call *call, const ProtobufCMessage *m)
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

/* ---- troika.test.Echo ---- */

enum echo_kind {
	ECHO_SAY,
	ECHO_COUNT,
	ECHO_COLLECT,
	ECHO_CHAT,
	ECHO_METRICS,
};

struct echo_call {
	enum echo_kind kind;
	struct grpc_call *call;
	struct event *timer;
	Troika__Test__EchoRequest *req; /* Say and Count: the request */
	uint32_t seq;
	uint32_t left;                /* Count: replies still to send */
	struct evbuffer *texts;       /* Collect */
	uint64_t received;
	uint32_t nreq;
	uint32_t fail_code;
	char *fail_message;
};

static void
echo_call_free(struct echo_call *ec)
{
	if (ec == NULL)
		return;
	if (ec->timer != NULL)
		event_free(ec->timer);
	if (ec->req != NULL)
		troika__test__echo_request__free_unpacked(ec->req, NULL);
	if (ec->texts != NULL)
		evbuffer_free(ec->texts);
	free(ec->fail_message);
	free(ec);
}

static int
echo_start(struct grpc_call *call, void *arg)
{
	struct echo_call *ec;

	if ((ec = calloc(1, sizeof(*ec))) == NULL)
		return -ENOMEM;
	ec->kind = (enum echo_kind)(intptr_t)arg;
	ec->call = call;
	if ((ec->texts = evbuffer_new()) == NULL) {
		free(ec);
		return -ENOMEM;
	}
	grpc_call_set_data(call, ec);
	echo_open++;
	return 0;
}

static void
echo_close(struct grpc_call *call, int status)
{
	echo_closed[status]++;
	echo_open--;
	echo_call_free(grpc_call_data(call));
}

/* One reply, padded with the request's reply_size bytes. */
static int
echo_reply(struct echo_call *ec, const char *text, uint64_t received)
{
	Troika__Test__EchoReply rep;
	uint32_t pad = ec->req != NULL ? ec->req->reply_size : 0;
	int r;

	troika__test__echo_reply__init(&rep);
	rep.text = (char *)(uintptr_t)text;
	rep.seq = ec->seq++;
	rep.received = received;
	rep.remaining_ms = grpc_call_remaining_ms(ec->call);
	if (pad > 0) {
		if ((rep.payload.data = malloc(pad)) == NULL)
			return -ENOMEM;
		memset(rep.payload.data, 'r', pad);
		rep.payload.len = pad;
	}
	r = echo_send_msg(ec->call, &rep.base);
	free(rep.payload.data);
	return r;
}

static Troika__Test__EchoRequest *
echo_unpack(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	Troika__Test__EchoRequest *req;

	req = troika__test__echo_request__unpack(NULL, len, msg);
	if (req == NULL)
		grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
		    "cannot parse EchoRequest");
	return req;
}

/* The text to send back: the request's, or a header it names. */
static const char *
echo_text(const struct echo_call *ec, const Troika__Test__EchoRequest *req)
{
	const char *md;

	if (req->echo_metadata[0] != '\0') {
		md = grpc_call_metadata(ec->call, req->echo_metadata);
		return md != NULL ? md : "(absent)";
	}
	return req->text;
}

static void echo_timer_cb(evutil_socket_t fd, short what, void *arg);

/* Continue in ms: Say answers, Count sends its next reply. */
static void
echo_after(struct echo_call *ec, uint32_t ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	if (ec->timer == NULL &&
	    (ec->timer = evtimer_new(echo_base, echo_timer_cb, ec)) == NULL) {
		grpc_call_finish(ec->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
		    "out of memory");
		return;
	}
	evtimer_add(ec->timer, &tv);
}

/* Say */

static void
echo_say_answer(struct echo_call *ec)
{
	if (ec->req->fail_code != 0) {
		grpc_call_finish(ec->call, (int)ec->req->fail_code,
		    ec->req->fail_message);
		return;
	}
	if (echo_reply(ec, echo_text(ec, ec->req), 0) == 0)
		grpc_call_finish(ec->call, GRPC_STATUS_OK, NULL);
}

/* Count */

static void
echo_count_next(struct echo_call *ec)
{
	char text[32];

	while (ec->left > 0) {
		ec->left--;
		snprintf(text, sizeof(text), "%s %u", ec->req->text, ec->seq);
		if (echo_reply(ec, text, 0) != 0)
			return; /* reset or cancelled: close() follows */
		if (ec->req->interval_ms > 0 && ec->left > 0) {
			echo_after(ec, ec->req->interval_ms);
			return;
		}
		if (!ec->req->ignore_flow_control &&
		    grpc_call_queued(ec->call) >= ECHO_QUEUE_MAX) {
			grpc_call_notify_drained(ec->call);
			return;
		}
	}
	if (ec->req->fail_code != 0)
		grpc_call_finish(ec->call, (int)ec->req->fail_code,
		    ec->req->fail_message);
	else
		grpc_call_finish(ec->call, GRPC_STATUS_OK, NULL);
}

static void
echo_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct echo_call *ec = arg;

	(void)fd;
	(void)what;
	if (ec->kind == ECHO_COUNT)
		echo_count_next(ec);
	else
		echo_say_answer(ec);
}

static void
echo_drained(struct grpc_call *call)
{
	echo_count_next(grpc_call_data(call));
}

static void
echo_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	struct echo_call *ec = grpc_call_data(call);
	Troika__Test__EchoRequest *req;

	if ((req = echo_unpack(call, msg, len)) == NULL)
		return;
	switch (ec->kind) {
	case ECHO_SAY:
		ec->req = req;
		if (req->delay_ms > 0)
			echo_after(ec, req->delay_ms);
		else
			echo_say_answer(ec);
		return;
	case ECHO_COUNT:
		ec->req = req;
		ec->left = req->count;
		if (req->delay_ms > 0)
			echo_after(ec, req->delay_ms);
		else
			echo_count_next(ec);
		return;
	case ECHO_COLLECT:
		ec->nreq++;
		ec->received += req->payload.len;
		evbuffer_add(ec->texts, req->text, strlen(req->text));
		if (req->fail_code != 0 && ec->fail_code == 0) {
			ec->fail_code = req->fail_code;
			ec->fail_message = strdup(req->fail_message);
		}
		break;
	case ECHO_CHAT:
		if (req->fail_code != 0)
			grpc_call_finish(call, (int)req->fail_code,
			    req->fail_message);
		else {
			Troika__Test__EchoRequest *keep = ec->req;

			/* reply_size of this request pads this reply. */
			ec->req = req;
			echo_reply(ec, echo_text(ec, req), req->payload.len);
			ec->req = keep;
		}
		break;
	case ECHO_METRICS:
		break;
	}
	troika__test__echo_request__free_unpacked(req, NULL);
}

static void
echo_half_close(struct grpc_call *call)
{
	struct echo_call *ec = grpc_call_data(call);

	switch (ec->kind) {
	case ECHO_COLLECT: {
		size_t n = evbuffer_get_length(ec->texts);
		char *all = malloc(n + 1);

		if (all == NULL) {
			grpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
			    "out of memory");
			return;
		}
		evbuffer_remove(ec->texts, all, n);
		all[n] = '\0';
		ec->seq = ec->nreq;
		if (ec->fail_code != 0)
			grpc_call_finish(call, (int)ec->fail_code,
			    ec->fail_message);
		else if (echo_reply(ec, all, ec->received) == 0)
			grpc_call_finish(call, GRPC_STATUS_OK, NULL);
		free(all);
		break;
	}
	case ECHO_CHAT:
		grpc_call_finish(call, GRPC_STATUS_OK, NULL);
		break;
	default:
		break;
	}
}

/* Metrics */

static void
echo_metrics_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	Troika__Test__MetricsRequest *req;
	Troika__Test__MetricsReply rep;
	struct evbuffer *text = evbuffer_new();
	char *closed[GRPC_STATUS_MAX + 1];
	char names[GRPC_STATUS_MAX + 1][48];
	size_t n = 0;

	req = troika__test__metrics_request__unpack(NULL, len, msg);
	if (req == NULL || text == NULL) {
		grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
		    "bad MetricsRequest");
		goto out;
	}
	troika__test__metrics_reply__init(&rep);
	grpc_server_write_metrics(echo_srv, text);
	evbuffer_add(text, "", 1);
	rep.text = (char *)evbuffer_pullup(text, -1);
	for (int c = 0; c <= GRPC_STATUS_MAX; c++) {
		if (echo_closed[c] == 0)
			continue;
		snprintf(names[n], sizeof(names[n]), "%s=%llu",
		    grpc_status_str(c), (unsigned long long)echo_closed[c]);
		closed[n] = names[n];
		n++;
	}
	rep.closed = closed;
	rep.n_closed = n;
	/* This call itself is open. */
	rep.open_calls = echo_open - 1;
	if (echo_send_msg(call, &rep.base) == 0)
		grpc_call_finish(call, GRPC_STATUS_OK, NULL);
out:
	if (req != NULL)
		troika__test__metrics_request__free_unpacked(req, NULL);
	if (text != NULL)
		evbuffer_free(text);
}

static const struct grpc_handler echo_handler = {
	.start = echo_start,
	.message = echo_message,
	.half_close = echo_half_close,
	.drained = echo_drained,
	.close = echo_close,
};

static const struct grpc_handler echo_metrics_handler = {
	.start = echo_start,
	.message = echo_metrics_message,
	.close = echo_close,
};

/* ---- troika.v1.Agent and troika.v1.Admin ---- */

/* One Connect stream: the agent's node and its latest check results. */
struct agent_stream {
	LIST_ENTRY(agent_stream) entry;
	struct grpc_call *call;
	Troika__V1__Hello *hello;
	Troika__V1__CheckResult **results;
	size_t nresults;
	uint64_t heartbeats;
};

static LIST_HEAD(, agent_stream) agent_streams =
    LIST_HEAD_INITIALIZER(agent_streams);

static uint64_t
echo_now_unix_nano(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int
agent_start(struct grpc_call *call, void *arg)
{
	struct agent_stream *as;

	(void)arg;
	if ((as = calloc(1, sizeof(*as))) == NULL)
		return -ENOMEM;
	as->call = call;
	LIST_INSERT_HEAD(&agent_streams, as, entry);
	grpc_call_set_data(call, as);
	echo_open++;
	return 0;
}

static void
agent_close(struct grpc_call *call, int status)
{
	struct agent_stream *as = grpc_call_data(call);

	echo_closed[status]++;
	echo_open--;
	LIST_REMOVE(as, entry);
	if (as->hello != NULL)
		troika__v1__hello__free_unpacked(as->hello, NULL);
	for (size_t i = 0; i < as->nresults; i++)
		troika__v1__check_result__free_unpacked(as->results[i], NULL);
	free(as->results);
	free(as);
}

/* Keep the latest result of each check; takes ownership of res. */
static void
agent_keep_result(struct agent_stream *as, Troika__V1__CheckResult *res)
{
	Troika__V1__CheckResult **v;

	for (size_t i = 0; i < as->nresults; i++) {
		if (strcmp(as->results[i]->check, res->check) == 0) {
			troika__v1__check_result__free_unpacked(as->results[i],
			    NULL);
			as->results[i] = res;
			return;
		}
	}
	v = realloc(as->results, (as->nresults + 1) * sizeof(*v));
	if (v == NULL) {
		troika__v1__check_result__free_unpacked(res, NULL);
		return;
	}
	as->results = v;
	as->results[as->nresults++] = res;
}

static void
agent_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	struct agent_stream *as = grpc_call_data(call);
	Troika__V1__AgentMessage *am;
	Troika__V1__CoordinatorMessage cm;
	Troika__V1__Welcome w;
	Troika__V1__Heartbeat hb;

	if ((am = troika__v1__agent_message__unpack(NULL, len, msg)) == NULL) {
		grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
		    "cannot parse AgentMessage");
		return;
	}
	troika__v1__coordinator_message__init(&cm);
	if (as->hello == NULL &&
	    am->body_case != TROIKA__V1__AGENT_MESSAGE__BODY_HELLO) {
		grpc_call_finish(call, GRPC_STATUS_FAILED_PRECONDITION,
		    "the first message must be a Hello");
		goto out;
	}
	switch (am->body_case) {
	case TROIKA__V1__AGENT_MESSAGE__BODY_HELLO:
		if (as->hello != NULL)
			troika__v1__hello__free_unpacked(as->hello, NULL);
		/* Take the Hello out of the envelope to keep it. */
		as->hello = am->hello;
		am->hello = NULL;
		am->body_case = TROIKA__V1__AGENT_MESSAGE__BODY__NOT_SET;
		troika__v1__welcome__init(&w);
		w.coordinator = (char *)(uintptr_t)"echo";
		w.version = (char *)(uintptr_t)TROIKA_VERSION;
		w.heartbeat_interval_nano = 5000000000ULL;
		w.fencing_token = as->hello->fencing_token;
		cm.body_case = TROIKA__V1__COORDINATOR_MESSAGE__BODY_WELCOME;
		cm.welcome = &w;
		echo_send_msg(call, &cm.base);
		break;
	case TROIKA__V1__AGENT_MESSAGE__BODY_CHECK_RESULT:
		agent_keep_result(as, am->check_result);
		am->check_result = NULL;
		am->body_case = TROIKA__V1__AGENT_MESSAGE__BODY__NOT_SET;
		break;
	case TROIKA__V1__AGENT_MESSAGE__BODY_HEARTBEAT:
		troika__v1__heartbeat__init(&hb);
		hb.seq = ++as->heartbeats;
		hb.time_unix_nano = echo_now_unix_nano();
		cm.body_case = TROIKA__V1__COORDINATOR_MESSAGE__BODY_HEARTBEAT;
		cm.heartbeat = &hb;
		echo_send_msg(call, &cm.base);
		break;
	default:
		break;
	}
out:
	troika__v1__agent_message__free_unpacked(am, NULL);
}

static void
agent_half_close(struct grpc_call *call)
{
	grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static const struct grpc_handler agent_handler = {
	.start = agent_start,
	.message = agent_message,
	.half_close = agent_half_close,
	.close = agent_close,
};

static int
status_start(struct grpc_call *call, void *arg)
{
	(void)call;
	(void)arg;
	echo_open++;
	return 0;
}

static void
status_close(struct grpc_call *call, int status)
{
	(void)call;
	echo_closed[status]++;
	echo_open--;
}

static int
status_wanted(const Troika__V1__GetStatusRequest *req, const char *node)
{
	if (req->n_nodes == 0)
		return 1;
	for (size_t i = 0; i < req->n_nodes; i++)
		if (strcmp(req->nodes[i], node) == 0)
			return 1;
	return 0;
}

static void
status_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	Troika__V1__GetStatusRequest *req;
	Troika__V1__GetStatusResponse rep;
	Troika__V1__NodeStatus *nodes = NULL, **pnodes = NULL;
	struct agent_stream *as;
	size_t n = 0, max = 0;

	req = troika__v1__get_status_request__unpack(NULL, len, msg);
	if (req == NULL) {
		grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
		    "cannot parse GetStatusRequest");
		return;
	}
	LIST_FOREACH(as, &agent_streams, entry)
		max++;
	if (max > 0 && ((nodes = calloc(max, sizeof(*nodes))) == NULL ||
	    (pnodes = calloc(max, sizeof(*pnodes))) == NULL)) {
		grpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
		    "out of memory");
		goto out;
	}
	LIST_FOREACH(as, &agent_streams, entry) {
		if (as->hello == NULL || !status_wanted(req, as->hello->node))
			continue;
		troika__v1__node_status__init(&nodes[n]);
		nodes[n].node = as->hello->node;
		nodes[n].connected = 1;
		nodes[n].agent_version = as->hello->version;
		nodes[n].agent_start_time_unix_nano =
		    as->hello->start_time_unix_nano;
		nodes[n].last_seen_unix_nano = echo_now_unix_nano();
		nodes[n].checks = as->results;
		nodes[n].n_checks = as->nresults;
		pnodes[n] = &nodes[n];
		n++;
	}
	troika__v1__get_status_response__init(&rep);
	rep.coordinator = (char *)(uintptr_t)"echo";
	rep.version = (char *)(uintptr_t)TROIKA_VERSION;
	rep.leader = 1;
	rep.leader_name = (char *)(uintptr_t)"echo";
	rep.store = TROIKA__V1__STORE_KIND__STORE_KIND_LOCAL;
	rep.quorum = 1;
	rep.nodes = pnodes;
	rep.n_nodes = n;
	rep.time_unix_nano = echo_now_unix_nano();
	if (echo_send_msg(call, &rep.base) == 0)
		grpc_call_finish(call, GRPC_STATUS_OK, NULL);
out:
	free(nodes);
	free(pnodes);
	troika__v1__get_status_request__free_unpacked(req, NULL);
}

static const struct grpc_handler status_handler = {
	.start = status_start,
	.message = status_message,
	.close = status_close,
};

/* ---- main ---- */

static void
echo_done_cb(void *arg)
{
	(void)arg;
	event_base_loopbreak(echo_base);
}

static void
echo_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	int64_t grace_ms = *(int64_t *)arg;

	(void)what;
	log_info("signal %d: shutting down (grace %lld ms)", (int)sig,
	    (long long)grace_ms);
	grpc_server_shutdown(echo_srv, grace_ms, echo_done_cb, NULL);
}

static void
usage(void)
{
	fprintf(stderr, "usage: grpc_echo_server [--debug] [--grace ms] "
	    "[--max-message n] [--max-streams n] [--max-connections n]\n"
	    "    [--handshake-timeout ms] [--idle-timeout ms] "
	    "[--keepalive ms] [--keepalive-timeout ms]\n"
	    "    [--call-output-cap n] [--conn-output-cap n] "
	    "[--conn-input-cap n] [--buffer-cap n]\n"
	    "    [--tls-cert file --tls-key file [--tls-ca file]] "
	    "host port\n");
	exit(2);
}

static long long
number(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0)
		usage();
	return v;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "debug", no_argument, NULL, 'd' },
		{ "grace", required_argument, NULL, 'g' },
		{ "max-message", required_argument, NULL, 'm' },
		{ "max-streams", required_argument, NULL, 's' },
		{ "max-connections", required_argument, NULL, 'c' },
		{ "handshake-timeout", required_argument, NULL, 'H' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "keepalive", required_argument, NULL, 'k' },
		{ "keepalive-timeout", required_argument, NULL, 'K' },
		{ "call-output-cap", required_argument, NULL, 'o' },
		{ "conn-output-cap", required_argument, NULL, 'O' },
		{ "conn-input-cap", required_argument, NULL, 'I' },
		{ "buffer-cap", required_argument, NULL, 'b' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'Y' },
		{ "tls-ca", required_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct {
		const char *path;
		enum grpc_method_kind kind;
		const struct grpc_handler *handler;
		enum echo_kind arg;
	} methods[] = {
		{ "/troika.test.Echo/Say", GRPC_METHOD_UNARY, &echo_handler,
		    ECHO_SAY },
		{ "/troika.test.Echo/Count", GRPC_METHOD_SERVER_STREAMING,
		    &echo_handler, ECHO_COUNT },
		{ "/troika.test.Echo/Collect", GRPC_METHOD_CLIENT_STREAMING,
		    &echo_handler, ECHO_COLLECT },
		{ "/troika.test.Echo/Chat", GRPC_METHOD_BIDI_STREAMING,
		    &echo_handler, ECHO_CHAT },
		{ "/troika.test.Echo/Metrics", GRPC_METHOD_UNARY,
		    &echo_metrics_handler, ECHO_METRICS },
		{ "/troika.v1.Agent/Connect", GRPC_METHOD_BIDI_STREAMING,
		    &agent_handler, 0 },
		{ "/troika.v1.Admin/GetStatus", GRPC_METHOD_UNARY,
		    &status_handler, 0 },
	};
	struct grpc_server_config cfg;
	struct event *sigterm, *sigint;
	const char *cert = NULL, *key = NULL, *ca = NULL;
	void *tls = NULL;
	int64_t grace_ms = 5000;
	int ch, port, level = LOG_INFO;

	grpc_server_config_default(&cfg);
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			level = LOG_DEBUG;
			break;
		case 'g':
			grace_ms = number(optarg);
			break;
		case 'm':
			cfg.max_recv_message = (size_t)number(optarg);
			cfg.max_send_message = cfg.max_recv_message;
			break;
		case 's':
			cfg.max_concurrent_streams = (uint32_t)number(optarg);
			break;
		case 'c':
			cfg.max_connections = (unsigned)number(optarg);
			break;
		case 'H':
			cfg.handshake_timeout_ms = number(optarg);
			break;
		case 'i':
			cfg.idle_timeout_ms = number(optarg);
			break;
		case 'k':
			cfg.keepalive_ms = number(optarg);
			break;
		case 'K':
			cfg.keepalive_timeout_ms = number(optarg);
			break;
		case 'o':
			cfg.call_output_cap = (size_t)number(optarg);
			break;
		case 'O':
			cfg.conn_output_cap = (size_t)number(optarg);
			break;
		case 'I':
			cfg.conn_input_cap = (size_t)number(optarg);
			break;
		case 'b':
			cfg.server_buffer_cap = (size_t)number(optarg);
			break;
		case 'C':
			cert = optarg;
			break;
		case 'Y':
			key = optarg;
			break;
		case 'A':
			ca = optarg;
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 2 || (cert == NULL) != (key == NULL))
		usage();
	port = (int)number(argv[optind + 1]);
	log_init("grpc_echo_server", LOG_TARGET_STDERR, level);
	signal(SIGPIPE, SIG_IGN);

	if ((echo_base = event_base_new()) == NULL)
		fatalx("event_base_new");
	if ((echo_srv = grpc_server_new(echo_base, &cfg)) == NULL)
		fatal("grpc_server_new");
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		struct grpc_method m = {
			.path = methods[i].path,
			.kind = methods[i].kind,
			.handler = methods[i].handler,
			.arg = (void *)(intptr_t)methods[i].arg,
		};

		if (grpc_server_add_method(echo_srv, &m) != 0)
			fatalx("cannot add %s", m.path);
	}
	if (cert != NULL &&
	    (tls = grpc_tls_server_ctx(cert, key, ca)) == NULL)
		fatalx("cannot set up TLS");
	if ((ch = grpc_server_listen(echo_srv, argv[optind], port, tls,
	    &port)) != 0)
		fatalx("cannot listen on %s %s: %s", argv[optind],
		    argv[optind + 1], strerror(-ch));
	grpc_tls_ctx_free(tls); /* the listener holds its own reference */

	sigterm = evsignal_new(echo_base, SIGTERM, echo_signal_cb, &grace_ms);
	sigint = evsignal_new(echo_base, SIGINT, echo_signal_cb, &grace_ms);
	if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) ||
	    evsignal_add(sigint, NULL))
		fatalx("cannot set up signals");

	printf("port %d\n", port);
	fflush(stdout);
	event_base_dispatch(echo_base);

	grpc_server_free(echo_srv);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(echo_base);
	log_info("stopped");
	return 0;
}
