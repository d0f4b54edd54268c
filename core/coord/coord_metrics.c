/*
 * The coordinator's /metrics page: its gRPC server's counters (core/lib),
 * its own stream and message counters, the view (check statuses, nodes,
 * and the samples agents sent, labelled by node) and process metrics.
 */
#include <event2/buffer.h>

#include "alert.h"
#include "coord.h"
#include "coord_opinion.h"
#include "coord_quorum.h"
#include "coord_recovery.h"
#include "coord_tilt.h"
#include "coord_conf.h"
#include "coord_events.h"
#include "coord_view.h"

/* 10 us .. 1 s: a message is handled in microseconds unless the loop is sick.
 */
static const double coord_handling_bounds[] = {
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1,
};

int
coord_metrics_init(struct coord *c)
{
	return metrics_histogram_init(&c->handling, coord_handling_bounds,
	    sizeof(coord_handling_bounds) / sizeof(coord_handling_bounds[0]));
}

void
coord_metrics_free(struct coord *c)
{
	metrics_histogram_free(&c->handling);
}

static void
coord_metrics_counter(
    struct evbuffer *out, const char *name, const char *help, double v)
{
	metrics_family(out, name, "counter", help);
	metrics_sample(out, name, NULL, 0, NULL, v);
}

void
coord_metrics_write(struct coord *c, struct evbuffer *out)
{
	const struct coord_stats *s = &c->stats;
	const struct troika_label info[] = {
	    {"coordinator", c->conf->name},
	    {"version", TROIKA_VERSION},
	    {"store", "local"},
	};
	uint64_t skipped = 0;

	metrics_family(out, "troika_coord_info", "gauge",
	    "The coordinator's name, version and store (local: no quorum).");
	metrics_sample(out, "troika_coord_info", info, 3, NULL, 1);

	metrics_family(out, "troika_coord_agent_streams", "gauge",
	    "Agent Connect streams open now.");
	metrics_sample(out, "troika_coord_agent_streams", NULL, 0, NULL,
	    (double)s->streams_open);
	coord_metrics_counter(out, "troika_coord_agent_streams_started_total",
	    "Agent Connect streams started.", (double)s->streams_total);

	metrics_family(out, "troika_coord_nodes", "gauge",
	    "Nodes known, by whether their agent is connected.");
	{
		size_t conn = coord_view_connected(c->view);
		const struct troika_label up = {"state", "connected"};
		const struct troika_label down = {"state", "disconnected"};

		metrics_sample(
		    out, "troika_coord_nodes", &up, 1, NULL, (double)conn);
		metrics_sample(out, "troika_coord_nodes", &down, 1, NULL,
		    (double)(c->view->nnodes - conn));
	}

	metrics_family(out, "troika_coord_agent_messages_received_total",
	    "counter", "Messages received on agent streams, by kind.");
	for (int k = 0; k < COORD_MSG_MAX; k++) {
		const struct troika_label l = {"kind", coord_msg_kind_str(k)};

		metrics_sample(out,
		    "troika_coord_agent_messages_received_total", &l, 1, NULL,
		    (double)s->messages[k]);
	}
	metrics_family(out, "troika_coord_agent_received_bytes_total",
	    "counter", "Message bytes received on agent streams, by kind.");
	for (int k = 0; k < COORD_MSG_MAX; k++) {
		const struct troika_label l = {"kind", coord_msg_kind_str(k)};

		metrics_sample(out, "troika_coord_agent_received_bytes_total",
		    &l, 1, NULL, (double)s->message_bytes[k]);
	}
	metrics_family(out, "troika_coord_agent_stream_errors_total", "counter",
	    "Agent streams the coordinator ended with an error, "
	    "by gRPC code.");
	for (int code = 1; code <= GRPC_STATUS_MAX; code++) {
		const struct troika_label l = {
		    "grpc_code",
		    grpc_status_str(code),
		};

		if (s->stream_errors[code] == 0)
			continue;
		metrics_sample(out, "troika_coord_agent_stream_errors_total",
		    &l, 1, NULL, (double)s->stream_errors[code]);
	}
	metrics_family(out, "troika_coord_samples_dropped_total", "counter",
	    "Metric samples from agents not kept: invalid names or labels, "
	    "or over the per-node limit.");
	{
		const struct troika_label inv = {"reason", "invalid"};
		const struct troika_label lim = {"reason", "limit"};

		metrics_sample(out, "troika_coord_samples_dropped_total", &inv,
		    1, NULL, (double)s->samples_invalid);
		metrics_sample(out, "troika_coord_samples_dropped_total", &lim,
		    1, NULL, (double)s->samples_limit);
	}
	metrics_family(out, "troika_coord_agent_message_handling_seconds",
	    "histogram", "Time spent handling one agent message.");
	metrics_histogram_write(out,
	    "troika_coord_agent_message_handling_seconds", NULL, 0,
	    &c->handling);
	coord_metrics_counter(out, "troika_coord_events_total",
	    "Events (state changes) since the start; the last event's seq.",
	    (double)coord_events_last_seq(c->events));
	coord_metrics_counter(out, "troika_coord_status_requests_total",
	    "Admin GetStatus requests.", (double)s->status_requests);

	grpc_server_write_metrics(c->srv, out);
	metrics_write_process(out);
	if (c->quorum != NULL)
		coord_quorum_write_metrics(c->quorum, out);
	if (c->recovery != NULL)
		coord_recovery_write_metrics(c->recovery, out);
	if (c->opinions != NULL)
		coord_opinions_write_metrics(c->opinions, out);
	if (c->tilt != NULL)
		coord_tilt_write_metrics(c->tilt, out);
	alert_hooks_write_metrics(c->alerts, out);

	/* The view last: check statuses, nodes, re-exported samples. */
	coord_view_write_metrics(c->view, out, &skipped);
	metrics_family(out, "troika_coord_samples_shadowed", "gauge",
	    "Agent samples left out of this page: their names belong to the "
	    "coordinator.");
	metrics_sample(out, "troika_coord_samples_shadowed", NULL, 0, NULL,
	    (double)skipped);
}
