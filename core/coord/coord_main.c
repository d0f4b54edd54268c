/*
 * troika-coord: the coordinator. It accepts agents' Connect streams and
 * keeps the latest view of every node and check (coord_agent.c,
 * coord_view.c); forms its own opinions from them (coord_opinion.c);
 * shares them through etcd and campaigns for the leader key
 * (coord_quorum.c); as leader, turns a quorum of FAILED opinions into
 * recovery actions (coord_recovery.c); and answers Admin and /metrics.
 * This file wires those together.
 *
 *   troika-coord [--config FILE] [-d]
 *   troika-coord --config FILE --check-config [--print]
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <event2/event.h>

#include "alert.h"
#include "coord.h"
#include "coord_conf.h"
#include "coord_events.h"
#include "coord_history.h"
#include "coord_opinion.h"
#include "coord_quorum.h"
#include "coord_recovery.h"
#include "coord_tilt.h"
#include "coord_view.h"
#include "log.h"
#include "spawn.h"

#ifndef TROIKA_DEFAULT_COORD_CONFIG
#define TROIKA_DEFAULT_COORD_CONFIG "/etc/troika/coord.yaml"
#endif

/* Open streams get this long to end on their own at shutdown. */
#define COORD_GRACE_MS 5000

enum {
	OPT_CHECK_CONFIG = 256,
	OPT_PRINT,
	OPT_VERSION,
};

static const struct option coord_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
    {"print", no_argument, NULL, OPT_PRINT},
    {"debug", no_argument, NULL, 'd'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void
usage(int rc)
{
	fprintf(rc == 0 ? stdout : stderr,
	    "usage: troika-coord [--config FILE] [-d]\n"
	    "       troika-coord [--config FILE] --check-config [--print]\n"
	    "  -c, --config FILE   configuration "
	    "(default " TROIKA_DEFAULT_COORD_CONFIG ")\n"
	    "      --check-config  validate the configuration, exit 0 if "
	    "valid, 1 if not\n"
	    "      --print         with --check-config: print the effective "
	    "configuration\n"
	    "  -d, --debug         log at debug level\n"
	    "      --version       print the version\n");
	exit(rc);
}

static void
coord_done_cb(void *arg)
{
	struct coord *c = arg;

	event_base_loopbreak(c->base);
}

static void
coord_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct coord *c = arg;

	(void)what;
	log_info(
	    "received %s, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	coord_agent_shutdown(c);
	coord_events_shutdown(c);
	grpc_server_shutdown(c->srv, COORD_GRACE_MS, coord_done_cb, c);
}

static int
coord_load(const char *path, struct coord_conf **ret)
{
	char *errs = NULL;
	int r;

	if ((r = coord_conf_load(path, ret, &errs)) == -EINVAL) {
		fputs(errs, stderr);
	} else if (r < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(-r));
	}
	free(errs);
	return r;
}

/* ---- the wiring of opinions, quorum and recovery ---- */

/* Our opinion changed: an event, and the others must know it. */
static void
coord_opinion_changed(const struct coord_opinion_change *ch, void *arg)
{
	struct coord *c = arg;
	const char *const f[] = {
		"opinion", ch->failed ? "failed" : "ok",
		"evidence", ch->certain ? "certain" : "ambiguous",
	};

	coord_events_emit(c, "opinion", ch->failed ?
	    TROIKA__V1__SEVERITY__SEVERITY_WARNING :
	    TROIKA__V1__SEVERITY__SEVERITY_INFO, ch->node, ch->check, f, 2,
	    "%s thinks %s on %s %s: %s", c->conf->name,
	    ch->check != NULL ? ch->check : "the node", ch->node,
	    ch->failed ? "FAILED" : "OK", ch->reason);
	if (c->quorum != NULL)
		coord_quorum_publish(c->quorum, ch);
}

static void
coord_quorum_opinions(const char *node, const char *check, void *arg)
{
	struct coord *c = arg;

	if (c->recovery != NULL)
		coord_recovery_opinions(c->recovery, node, check);
}

static void
coord_quorum_leader_changed(int leader, int64_t token, const char *reason,
    void *arg)
{
	struct coord *c = arg;

	if (leader)
		log_info("leader, fencing token %lld", (long long)token);
	else
		log_info("not the leader: %s", reason);
	if (c->recovery != NULL)
		coord_recovery_leader(c->recovery, leader, token, reason);
}

static void
coord_quorum_changed(int ok, const char *reason, void *arg)
{
	struct coord *c = arg;

	if (c->recovery != NULL)
		coord_recovery_quorum(c->recovery, ok, reason);
}

static const struct coord_quorum_handler coord_quorum_handler = {
	.opinions = coord_quorum_opinions,
	.leader = coord_quorum_leader_changed,
	.quorum = coord_quorum_changed,
};

/*
 * One coordinator sends alerts, not three: the leader, and any that knows
 * of no leader or has no quorum (an etcd minority: it cannot tell who
 * leads, and that is when alerts matter most). Alertmanager merges the
 * identical label sets of two senders.
 */
static int
coord_alerts_sending(void *arg)
{
	struct coord *c = arg;

	if (c->quorum == NULL)
		return 1;
	return coord_quorum_is_leader(c->quorum) ||
	    coord_quorum_leader_name(c->quorum)[0] == '\0' ||
	    !coord_quorum_ok(c->quorum);
}

static int
coord_start_recovery(struct coord *c)
{
	if ((c->tilt = coord_tilt_new(c)) == NULL ||
	    (c->opinions = coord_opinions_new(c->base, c->conf,
	    coord_opinion_changed, c)) == NULL) {
		log_warn("starting");
		return -1;
	}
	if ((c->quorum = coord_quorum_new(c, &coord_quorum_handler, c)) == NULL)
		return -1;
	if ((c->recovery = coord_recovery_new(c)) == NULL) {
		log_warn("starting recovery");
		return -1;
	}
	if (c->conf->store == COORD_STORE_ETCD &&
	    (c->history = coord_history_new(c)) == NULL) {
		log_warn("starting the history");
		return -1;
	}
	return 0;
}

static void
coord_stop_recovery(struct coord *c)
{
	/* Recovery first (its mirrors use the store), the store last but
	 * one: a leader revokes its lease, another takes over at once. */
	coord_history_free(c->history);
	c->history = NULL;
	coord_recovery_free(c->recovery);
	c->recovery = NULL;
	coord_quorum_free(c->quorum);
	c->quorum = NULL;
	coord_opinions_free(c->opinions);
	c->opinions = NULL;
	coord_tilt_free(c->tilt);
	c->tilt = NULL;
}

/* Everything but the loop itself; 0 or -1 after logging why. */
static int
coord_start(struct coord *c)
{
	const struct coord_conf *conf = c->conf;
	void *tls = NULL;
	int r, port;

	LIST_INIT(&c->streams);
	if ((c->view = coord_view_new()) == NULL ||
	    (c->events = coord_events_new()) == NULL ||
	    coord_metrics_init(c) < 0 ||
	    (c->srv = grpc_server_new(c->base, NULL)) == NULL) {
		log_warn("starting");
		return -1;
	}
	if (coord_agent_register(c) < 0 || coord_admin_register(c) < 0 ||
	    coord_events_register(c) < 0) {
		log_warnx("cannot register the gRPC methods");
		return -1;
	}
	/* First: the recovery modules' first events go to the hooks too. */
	if ((c->alerts = alert_hooks_new(c->base, conf->alert_hooks,
	    conf->nalert_hooks, coord_alerts_sending, c)) == NULL) {
		log_warn("starting the alert hooks");
		return -1;
	}
	if (coord_start_recovery(c) < 0)
		return -1;
	if (conf->tls_cert != NULL &&
	    (tls = grpc_tls_server_ctx(
	         conf->tls_cert, conf->tls_key, conf->tls_ca)) == NULL)
		return -1;
	r = grpc_server_listen(
	    c->srv, conf->listen_host, conf->listen_port, tls, &port);
	grpc_tls_ctx_free(tls); /* the listener keeps its own reference */
	if (r < 0) {
		log_warnx(
		    "cannot listen on %s: %s", conf->listen, strerror(-r));
		return -1;
	}
	log_info("coordinator %s serving gRPC (%s) on %s port %d", conf->name,
	    conf->tls_cert != NULL ? "TLS" : "h2c", conf->listen_host, port);
	if (conf->metrics_listen != NULL &&
	    (c->http = coord_http_start(c, conf->metrics_listen)) == NULL)
		return -1;
	return 0;
}

int
main(int argc, char *argv[])
{
	struct coord c = {0};
	struct coord_conf *conf = NULL;
	struct event *sig_term = NULL, *sig_int = NULL;
	const char *path = TROIKA_DEFAULT_COORD_CONFIG;
	int do_check = 0, do_print = 0, debug = 0, ch, rc = 1;

	while (
	    (ch = getopt_long(argc, argv, "c:dh", coord_options, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case OPT_CHECK_CONFIG:
			do_check = 1;
			break;
		case OPT_PRINT:
			do_print = 1;
			break;
		case 'd':
			debug = 1;
			break;
		case OPT_VERSION:
			printf("troika-coord %s\n", TROIKA_VERSION);
			return 0;
		case 'h':
			usage(0);
			break;
		default:
			usage(1);
		}
	}
	if (optind != argc || (do_print && !do_check))
		usage(1);
	log_init("troika-coord", LOG_TARGET_STDERR, LOG_WARNING);
	if (coord_load(path, &conf) < 0)
		return 1;
	if (do_check) {
		if (do_print)
			coord_conf_print(conf, stdout);
		coord_conf_free(conf);
		return 0;
	}
	log_init("troika-coord", conf->log_target,
	    debug ? LOG_DEBUG : conf->log_level);
	c.conf = conf;

	signal(SIGPIPE, SIG_IGN);
	if ((c.base = event_base_new()) == NULL)
		fatalx("cannot create the event base");
	sig_term = evsignal_new(c.base, SIGTERM, coord_signal_cb, &c);
	sig_int = evsignal_new(c.base, SIGINT, coord_signal_cb, &c);
	if (sig_term == NULL || sig_int == NULL ||
	    evsignal_add(sig_term, NULL) < 0 || evsignal_add(sig_int, NULL) < 0)
		fatalx("cannot install signal handlers");

	if (coord_start(&c) == 0) {
		event_base_dispatch(c.base);
		rc = 0;
	}
	/* Streams' close() handlers use the view: free the server first. */
	coord_http_free(c.http);
	grpc_server_free(c.srv);
	/* Before the recovery modules: sending asks the quorum. */
	alert_hooks_free(c.alerts);
	c.alerts = NULL;
	spawn_shutdown();
	coord_stop_recovery(&c);
	coord_view_free(c.view);
	coord_events_free(c.events);
	coord_metrics_free(&c);
	event_free(sig_term);
	event_free(sig_int);
	/*
	 * A bufferevent freed with a deferred callback queued is finalized
	 * only when the loop runs that callback; event_base_free() cancels
	 * it instead, and the connection leaks (LeakSanitizer saw it after a
	 * leader handover). One pass of the loop lets them finish.
	 */
	event_base_loop(c.base, EVLOOP_NONBLOCK);
	event_base_free(c.base);
	libevent_global_shutdown();
	coord_conf_free(conf);
	log_info("stopped");
	return rc;
}
