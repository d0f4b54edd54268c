/*
 * coord_nodeloss: a lost node out of the load balancer's rotation and back
 * (coord_nodeloss.h has the rules).
 */
#include "coord_nodeloss.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "coord.h"
#include "coord_conf.h"
#include "coord_quorum.h"
#include "coord_recovery.h"
#include "coord_view.h"
#include "log.h"
#include "troika/v1/admin.pb-c.h"

#define NODELOSS_NS_PER_MS 1000000ULL
#define NODELOSS_MAX_COORDS 16
/* A failed disable or enable is tried again after this long. */
#define NODELOSS_RETRY_MS 5000
/* While a node waits to go back into rotation, look this often. */
#define NODELOSS_POLL_MS 1000

struct coord_nodeloss {
	struct coord *c;
	struct coord_recovery *r;
	struct event *wake;
	int starting;           /* a record is being written */
};

int
coord_nodeloss_lost(const struct coord *c, const char *node)
{
	const char *coords[NODELOSS_MAX_COORDS];

	return coord_quorum_failed(c->quorum, node, NULL, coords,
	    NODELOSS_MAX_COORDS, NULL) >= (size_t)c->conf->quorum;
}

static void
nodeloss_wake_in(struct coord_nodeloss *nl, uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000),
	    .tv_usec = (suseconds_t)(ms % 1000 * 1000) };

	evtimer_add(nl->wake, &tv);
}

/*
 * Back: connected, every check OK in a result since it reconnected, its
 * services where their clusters want them (a Redis rejoined) and no
 * action of it open.
 */
static int
nodeloss_ready(struct coord_nodeloss *nl, const char *node)
{
	const struct coord *c = nl->c;
	const struct coord_node *n = coord_view_node(c->view, node);

	if (n == NULL || n->stream == 0 || n->nchecks == 0)
		return 0;
	for (size_t i = 0; i < n->nchecks; i++) {
		const struct coord_check *k = &n->checks[i];

		if (k->last == NULL || k->last_ns < n->connected_ns ||
		    k->last->status != TROIKA__V1__CHECK_STATUS__CHECK_STATUS_OK)
			return 0;
	}
	return coord_recovery_node_settled(nl->r, node);
}

/* The latest disable or enable of node on load balancer lb. */
static const Troika__V1__ActionRecord *
nodeloss_last(struct coord_nodeloss *nl, const char *lb, const char *node)
{
	const struct coord_conf *conf = nl->c->conf;
	const Troika__V1__ActionRecord **recs, *last = NULL;
	size_t n = coord_recovery_records(nl->r, &recs);

	for (size_t i = 0; i < n; i++) {
		const Troika__V1__ActionRecord *pb = recs[i];

		if (strcmp(pb->node, lb) == 0 &&
		    strcmp(pb->check, conf->lb_check) == 0 && pb->n_args == 1 &&
		    strcmp(pb->args[0], node) == 0 &&
		    (strcmp(pb->action, "disable") == 0 ||
		    strcmp(pb->action, "enable") == 0))
			last = pb;
	}
	return last;
}

static void
nodeloss_written(int ok, void *arg)
{
	struct coord_nodeloss *nl = arg;

	nl->starting = 0;
	nodeloss_wake_in(nl, ok ? 0 : NODELOSS_RETRY_MS);
}

static void
nodeloss_begin(struct coord_nodeloss *nl, const char *lb, const char *action,
    const char *node, const char *reason)
{
	const struct coord_policy *pol = coord_conf_policy(nl->c->conf,
	    nl->c->conf->lb_check);
	char *args[1] = { (char *)(uintptr_t)node };
	struct coord_recovery_step s = {
		.node = lb, .check = nl->c->conf->lb_check, .action = action,
		.args = args, .nargs = 1, .procedure = "", .cluster = "",
		.reason = reason,
		.timeout_ns = (uint64_t)pol->action_timeout_ms *
		    NODELOSS_NS_PER_MS,
	};
	int rc;

	nl->starting = 1;
	if ((rc = coord_recovery_begin(nl->r, &s, nodeloss_written, nl)) < 0) {
		nl->starting = 0;
		log_warnx("%s of %s on %s: cannot write its record: %s", action,
		    node, lb, strerror(-rc));
		nodeloss_wake_in(nl, NODELOSS_RETRY_MS);
	}
}

/*
 * What node needs on load balancer lb: 1 when a record was started (one
 * at a time), 0 when nothing is to be done there now.
 */
static int
nodeloss_node(struct coord_nodeloss *nl, const char *lb, const char *node,
    uint64_t now)
{
	const Troika__V1__ActionRecord *last = nodeloss_last(nl, lb, node);
	int lost = coord_nodeloss_lost(nl->c, node);
	int out = last != NULL && strcmp(last->action, "disable") == 0;
	char why[256];

	if (last != NULL && coord_recovery_record_open(last))
		return 0; /* its end brings us back; locked: an operator */
	if (last != NULL && last->state !=
	    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED && now <
	    last->ended_unix_nano + NODELOSS_RETRY_MS * NODELOSS_NS_PER_MS) {
		nodeloss_wake_in(nl, NODELOSS_RETRY_MS);
		return 0;
	}
	if (!coord_agent_connected(nl->c, lb))
		return 0; /* its connection brings us back */
	if (lost && (!out || last->state !=
	    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED)) {
		snprintf(why, sizeof(why), "node %s is lost: out of the load "
		    "balancer's rotation", node);
		nodeloss_begin(nl, lb, "disable", node, why);
		return 1;
	}
	if (lost || !out || last->state !=
	    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED)
		return 0;
	if (!nodeloss_ready(nl, node)) {
		nodeloss_wake_in(nl, NODELOSS_POLL_MS);
		return 0;
	}
	snprintf(why, sizeof(why), "node %s is back and every check of it is "
	    "OK: into the load balancer's rotation again", node);
	nodeloss_begin(nl, lb, "enable", node, why);
	return 1;
}

void
coord_nodeloss_evaluate(struct coord_nodeloss *nl)
{
	const struct coord_conf *conf = nl->c->conf;
	const struct coord_view *v = nl->c->view;
	uint64_t now = coord_now_ns();

	if (conf->lb_check == NULL || nl->starting ||
	    !coord_recovery_deciding(nl->r))
		return;
	for (size_t i = 0; i < v->nnodes; i++) {
		const char *node = v->nodes[i]->name;

		for (size_t j = 0; j < conf->nlb_nodes; j++)
			if (strcmp(conf->lb_nodes[j], node) != 0 &&
			    nodeloss_node(nl, conf->lb_nodes[j], node, now))
				return;
	}
}

static void
nodeloss_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	coord_nodeloss_evaluate(arg);
}

struct coord_nodeloss *
coord_nodeloss_new(struct coord *c, struct coord_recovery *r)
{
	struct coord_nodeloss *nl;

	if ((nl = calloc(1, sizeof(*nl))) == NULL)
		return NULL;
	nl->c = c;
	nl->r = r;
	if ((nl->wake = evtimer_new(c->base, nodeloss_wake_cb, nl)) == NULL) {
		free(nl);
		return NULL;
	}
	return nl;
}

void
coord_nodeloss_reset(struct coord_nodeloss *nl)
{
	evtimer_del(nl->wake);
	nl->starting = 0;
}

void
coord_nodeloss_free(struct coord_nodeloss *nl)
{
	if (nl == NULL)
		return;
	event_free(nl->wake);
	free(nl);
}
