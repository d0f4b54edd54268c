/*
 * coord_redis: the Redis primary failover (coord_redis.h has the rules).
 * Everything decided here is read from the action records and the
 * members' latest results each time; struct coord_redis keeps only what
 * must not be repeated (a write in progress, an event already given),
 * when the primary's failure was first seen, and a timer.
 */
#include "coord_redis.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "coord.h"
#include "coord_conf.h"
#include "coord_events.h"
#include "coord_member.h"
#include "coord_recovery.h"
#include "log.h"
#include "troika/v1/admin.pb-c.h"

#define REDIS_NS_PER_MS 1000000ULL
#define REDIS_ID_MAX 64

struct coord_redis {
	struct coord *c;
	struct coord_recovery *r;
	const struct coord_cluster *cl;
	struct event *wake;
	int starting;           /* a record is being written */
	/* The primary's failure, as this leader first saw it. */
	int failed;             /* member index, -1: none */
	uint64_t failed_since;
	/* Alerts given for the procedure alerted_for (a bit per member). */
	char alerted_for[REDIS_ID_MAX];
	unsigned alerted;
	char announced_for[REDIS_ID_MAX]; /* primary_changed said */
	int escalated;
};

/* What the records say about the cluster's latest failover. */
struct redis_state {
	const Troika__V1__ActionRecord *proc;
	const Troika__V1__ActionRecord *running;
	const Troika__V1__ActionRecord *locked;
	const Troika__V1__ActionRecord *role[COORD_CONF_MAX_MEMBERS];
	const Troika__V1__ActionRecord *promote;
	const Troika__V1__ActionRecord *replicate[COORD_CONF_MAX_MEMBERS];
	const Troika__V1__ActionRecord *last_promote; /* of any failover */
	const Troika__V1__ActionRecord *rejoin[COORD_CONF_MAX_MEMBERS];
	unsigned procs_in_window;
	uint64_t last_proc_end;
};

static uint64_t
redis_ns(int64_t ms)
{
	return (uint64_t)ms * REDIS_NS_PER_MS;
}

static int
redis_member(const struct coord_cluster *cl, const char *node)
{
	for (size_t i = 0; i < cl->nnodes; i++)
		if (strcmp(cl->nodes[i], node) == 0)
			return (int)i;
	return -1;
}

static int
redis_open(const Troika__V1__ActionRecord *pb)
{
	return pb->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING ||
	    pb->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED;
}

static const char *
redis_rec_field(const Troika__V1__ActionRecord *pb, const char *name)
{
	return coord_member_field(pb->fields, pb->n_fields, name);
}

/* A fact of member m's latest result; NULL: none. */
static const char *
redis_fact(const struct coord_redis *g, int m, const char *name)
{
	const Troika__V1__CheckResult *res = coord_member_result(g->c,
	    g->cl->nodes[m], g->cl->check);

	return res != NULL ? coord_member_field(res->fields, res->n_fields,
	    name) : NULL;
}

static void
redis_read(const struct coord_redis *g, uint64_t now, struct redis_state *st)
{
	const struct coord_policy *pol = coord_conf_policy(g->c->conf,
	    g->cl->check);
	const Troika__V1__ActionRecord **recs;
	size_t n = coord_recovery_records(g->r, &recs);

	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < n; i++) {
		const Troika__V1__ActionRecord *pb = recs[i];
		uint64_t end = pb->ended_unix_nano != 0 ? pb->ended_unix_nano :
		    pb->started_unix_nano;
		int m;

		if (strcmp(pb->cluster, g->cl->name) != 0)
			continue;
		if (pb->node[0] == '\0') {
			if (strcmp(pb->action, COORD_REDIS_PROCEDURE) != 0)
				continue;
			st->proc = pb;
			if (pb->started_unix_nano + redis_ns(pol->window_ms) >=
			    now)
				st->procs_in_window++;
			if (!redis_open(pb) && end > st->last_proc_end)
				st->last_proc_end = end;
			continue;
		}
		if ((m = redis_member(g->cl, pb->node)) < 0)
			continue;
		if (strcmp(pb->action, "promote") == 0 && pb->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED)
			st->last_promote = pb;
		if (pb->procedure[0] == '\0') {
			if (strcmp(pb->action, "replicate") == 0)
				st->rejoin[m] = pb;
			continue;
		}
	}
	if (st->proc == NULL)
		return;
	/* The steps of the latest failover. */
	for (size_t i = 0; i < n; i++) {
		const Troika__V1__ActionRecord *pb = recs[i];
		int m;

		if (strcmp(pb->procedure, st->proc->id) != 0 ||
		    (m = redis_member(g->cl, pb->node)) < 0)
			continue;
		if (pb->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING)
			st->running = pb;
		else if (pb->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED)
			st->locked = pb;
		if (strcmp(pb->action, "role") == 0)
			st->role[m] = pb;
		else if (strcmp(pb->action, "promote") == 0)
			st->promote = pb;
		else if (strcmp(pb->action, "replicate") == 0)
			st->replicate[m] = pb;
	}
}

/*
 * The primary: the last failover's promoted member, else the member that
 * says it is a master, else the one whose address the replicas follow.
 */
static int
redis_primary(const struct coord_redis *g, const struct redis_state *st)
{
	const struct coord_cluster *cl = g->cl;

	if (st->last_promote != NULL)
		return redis_member(cl, st->last_promote->node);
	for (size_t i = 0; i < cl->nnodes; i++) {
		const char *role = redis_fact(g, (int)i, "role");

		if (role != NULL && strcmp(role, "master") == 0)
			return (int)i;
	}
	for (size_t i = 0; i < cl->nnodes; i++) {
		const char *mh = redis_fact(g, (int)i, "master_host");
		const char *mp = redis_fact(g, (int)i, "master_port");
		char want[300];

		if (mh == NULL || mp == NULL)
			continue;
		snprintf(want, sizeof(want), strchr(mh, ':') != NULL ?
		    "[%s]:%s" : "%s:%s", mh, mp);
		for (size_t j = 0; j < cl->nnodes; j++) {
			const char *a = redis_fact(g, (int)j, "address");

			if (j != i && a != NULL && strcmp(a, want) == 0)
				return (int)j;
		}
	}
	return -1;
}

/* "host:port" or "[v6]:port" into the replicate action's two args. */
static int
redis_split_address(const char *addr, char *host, size_t hlen, char *port,
    size_t plen)
{
	const char *colon = strrchr(addr, ':');
	size_t n;

	if (colon == NULL || colon[1] == '\0')
		return -EINVAL;
	n = (size_t)(colon - addr);
	if (addr[0] == '[' && n >= 2 && addr[n - 1] == ']') {
		addr++;
		n -= 2;
	}
	if (n == 0 || n >= hlen || strlen(colon + 1) >= plen)
		return -EINVAL;
	memcpy(host, addr, n);
	host[n] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

static void
redis_wake_in(struct coord_redis *g, uint64_t ns)
{
	struct timeval tv;

	ns += 10 * REDIS_NS_PER_MS;
	tv.tv_sec = (time_t)(ns / 1000000000ULL);
	tv.tv_usec = (suseconds_t)(ns % 1000000000ULL / 1000);
	evtimer_add(g->wake, &tv);
}

static void
redis_begun(int ok, void *arg)
{
	struct coord_redis *g = arg;

	g->starting = 0;
	/* Written: the next move is decided from the loop, at once. */
	redis_wake_in(g, ok ? 0 : redis_ns(g->cl->retry_ms));
}

static void
redis_begin(struct coord_redis *g, const char *proc, const char *node,
    const char *action, char *const *args, size_t nargs, const char *reason)
{
	const struct coord_policy *pol = coord_conf_policy(g->c->conf,
	    g->cl->check);
	struct coord_recovery_step s = {
		.node = node, .check = g->cl->check, .action = action,
		.args = args, .nargs = nargs, .procedure = proc,
		.cluster = g->cl->name, .reason = reason,
		.timeout_ns = node[0] == '\0' ? redis_ns(g->cl->timeout_ms) :
		    redis_ns(pol->action_timeout_ms),
	};
	int rc;

	g->starting = 1;
	if ((rc = coord_recovery_begin(g->r, &s, redis_begun, g)) < 0) {
		g->starting = 0;
		log_warnx("cluster %s: cannot write the record of %s: %s",
		    g->cl->name, action, strerror(-rc));
		redis_wake_in(g, redis_ns(g->cl->retry_ms));
	}
}

static void
redis_finish(struct coord_redis *g, const struct redis_state *st, int state,
    int primary, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
redis_finish(struct coord_redis *g, const struct redis_state *st, int state,
    int primary, const char *fmt, ...)
{
	Troika__V1__Label labels[2], *fields[2];
	const char *addr = primary >= 0 ? redis_fact(g, primary, "address") :
	    NULL;
	char msg[512];
	size_t n = 0;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (primary >= 0) {
		troika__v1__label__init(&labels[n]);
		labels[n].name = (char *)(uintptr_t)"primary";
		labels[n].value = g->cl->nodes[primary];
		fields[n] = &labels[n];
		n++;
	}
	if (addr != NULL) {
		troika__v1__label__init(&labels[n]);
		labels[n].name = (char *)(uintptr_t)"address";
		labels[n].value = (char *)(uintptr_t)addr;
		fields[n] = &labels[n];
		n++;
	}
	g->starting = 1;
	if ((rc = coord_recovery_finish(g->r, st->proc->id, state, msg, fields,
	    n, redis_begun, g)) < 0) {
		g->starting = 0;
		log_warnx("cluster %s: failover %s not ended: %s", g->cl->name,
		    st->proc->id, strerror(-rc));
	}
}

static void
redis_alert(struct coord_redis *g, const struct redis_state *st, int m,
    const char *why)
{
	const char *const f[] = { "cluster", g->cl->name, "procedure",
	    st->proc->id };

	if (strcmp(g->alerted_for, st->proc->id) != 0) {
		snprintf(g->alerted_for, sizeof(g->alerted_for), "%s",
		    st->proc->id);
		g->alerted = 0;
	}
	if (g->alerted & (1u << m))
		return;
	g->alerted |= 1u << m;
	coord_events_emit(g->c, "cluster_held",
	    TROIKA__V1__SEVERITY__SEVERITY_CRITICAL, g->cl->nodes[m],
	    g->cl->check, f, 2, "cluster %s: no replica is promoted until "
	    "every member's offset is known: %s; asking again in %" PRId64
	    " ms", g->cl->name, why, g->cl->retry_ms);
}

/* Offsets: ask the next member that has none; 1 while asking. */
static int
redis_collect(struct coord_redis *g, const struct redis_state *st, int old,
    uint64_t now)
{
	uint64_t retry = redis_ns(g->cl->retry_ms), soonest = 0;
	int missing = 0;

	for (size_t i = 0; i < g->cl->nnodes; i++) {
		const Troika__V1__ActionRecord *p = st->role[i];
		const char *node = g->cl->nodes[i];
		char why[256];

		if ((int)i == old || (p != NULL && p->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED))
			continue;
		missing = 1;
		if (p != NULL) {
			snprintf(why, sizeof(why), "role of %s: %s", node,
			    p->message);
			redis_alert(g, st, (int)i, why);
			if (now < p->ended_unix_nano + retry) {
				if (soonest == 0 || p->ended_unix_nano + retry <
				    soonest)
					soonest = p->ended_unix_nano + retry;
				continue;
			}
		}
		if (!coord_agent_connected(g->c, node)) {
			snprintf(why, sizeof(why), "role of %s: its agent has "
			    "no stream to the leader", node);
			redis_alert(g, st, (int)i, why);
			if (soonest == 0 || now + retry < soonest)
				soonest = now + retry;
			continue;
		}
		snprintf(why, sizeof(why), "the primary %s has failed: the "
		    "replicas' offsets decide which one is promoted",
		    g->cl->nodes[old]);
		redis_begin(g, st->proc->id, node, "role", NULL, 0, why);
		return 1;
	}
	if (missing && soonest != 0)
		redis_wake_in(g, soonest > now ? soonest - now : 0);
	return missing;
}

static void
redis_announce(struct coord_redis *g, const struct redis_state *st, int m)
{
	const char *addr = redis_fact(g, m, "address");
	const char *const f[] = { "cluster", g->cl->name, "primary",
	    g->cl->nodes[m], "address", addr != NULL ? addr : "" };

	if (strcmp(g->announced_for, st->proc->id) == 0)
		return;
	snprintf(g->announced_for, sizeof(g->announced_for), "%s",
	    st->proc->id);
	coord_events_emit(g->c, "primary_changed",
	    TROIKA__V1__SEVERITY__SEVERITY_WARNING, g->cl->nodes[m],
	    g->cl->check, f, 3, "cluster %s: %s (%s) is the primary now; %s "
	    "failed", g->cl->name, g->cl->nodes[m], addr != NULL ? addr : "?",
	    st->proc->args[0]);
}

static void
redis_step(struct coord_redis *g, const struct redis_state *st, uint64_t now)
{
	const struct coord_cluster *cl = g->cl;
	int old = st->proc->n_args > 0 ? redis_member(cl, st->proc->args[0]) :
	    -1, best = -1;
	char why[512], host[256], port[16];
	char *args[2] = { host, port };
	const char *addr;
	int64_t best_off = -1;

	if (st->running != NULL)
		return; /* its end brings us back */
	if (st->locked != NULL) {
		redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED,
		    -1, "step %s (%s on %s) has no known outcome: look at the "
		    "cluster, then acknowledge", st->locked->id,
		    st->locked->action, st->locked->node);
		return;
	}
	if (old < 0) {
		redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED,
		    -1, "the record names no member as the failed primary");
		return;
	}
	if (st->promote == NULL) {
		if (coord_member_ok(g->c, cl->nodes[old], cl->check) &&
		    !coord_member_failed(g->c, cl->nodes[old], cl->check)) {
			redis_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED,
			    old, "%s answers again: no failover needed",
			    cl->nodes[old]);
			return;
		}
		if (redis_collect(g, st, old, now))
			return;
		for (size_t i = 0; i < cl->nnodes; i++) {
			const Troika__V1__ActionRecord *p = st->role[i];
			const char *role, *link, *off;

			if ((int)i == old)
				continue;
			role = redis_rec_field(p, "role");
			link = redis_rec_field(p, "master_link_status");
			off = redis_rec_field(p, "slave_repl_offset");
			if (role == NULL || strcmp(role, "replica") != 0)
				continue;
			if (link != NULL && strcmp(link, "up") == 0) {
				redis_finish(g, st,
				    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED,
				    old, "%s's link to the primary is up: the "
				    "primary lives, no failover", cl->nodes[i]);
				return;
			}
			if (off != NULL && strtoll(off, NULL, 10) > best_off) {
				best_off = strtoll(off, NULL, 10);
				best = (int)i;
			}
		}
		if (best < 0) {
			redis_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED, -1,
			    "no replica with a known offset to promote");
			return;
		}
		snprintf(why, sizeof(why), "the replica with the highest "
		    "offset: %s at %" PRId64, cl->nodes[best], best_off);
		for (size_t i = 0; i < cl->nnodes; i++) {
			const char *off;

			if ((int)i == best || (int)i == old)
				continue;
			off = redis_rec_field(st->role[i], "slave_repl_offset");
			snprintf(why + strlen(why), sizeof(why) - strlen(why),
			    "; %s at %s", cl->nodes[i], off != NULL ? off :
			    "? (not a replica)");
		}
		redis_begin(g, st->proc->id, cl->nodes[best], "promote", NULL,
		    0, why);
		return;
	}
	best = redis_member(cl, st->promote->node);
	if (st->promote->state !=
	    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED) {
		redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED,
		    -1, "promoting %s failed: %s", st->promote->node,
		    st->promote->message);
		return;
	}
	redis_announce(g, st, best);
	addr = redis_fact(g, best, "address");
	if (addr == NULL || redis_split_address(addr, host, sizeof(host), port,
	    sizeof(port)) < 0) {
		redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED,
		    best, "%s was promoted, but its address is not known (%s): "
		    "the other replicas were not repointed", cl->nodes[best],
		    addr != NULL ? addr : "no result with an address");
		return;
	}
	for (size_t i = 0; i < cl->nnodes; i++) {
		const Troika__V1__ActionRecord *s = st->replicate[i];

		if ((int)i == best || (int)i == old || (s != NULL &&
		    s->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED))
			continue;
		if (s != NULL) {
			redis_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED, best,
			    "%s was promoted, but %s does not follow it: %s",
			    cl->nodes[best], cl->nodes[i], s->message);
			return;
		}
		snprintf(why, sizeof(why), "%s is the primary now: %s follows "
		    "it", cl->nodes[best], cl->nodes[i]);
		redis_begin(g, st->proc->id, cl->nodes[i], "replicate", args, 2,
		    why);
		return;
	}
	redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED,
	    best, "%s promoted in place of %s; the other replicas follow it",
	    cl->nodes[best], cl->nodes[old]);
}

/* A member other than the primary that answers as a master rejoins. */
static int
redis_rejoin(struct coord_redis *g, const struct redis_state *st, int primary,
    uint64_t now)
{
	const struct coord_cluster *cl = g->cl;
	const char *addr = redis_fact(g, primary, "address");
	char why[512], host[256], port[16];
	char *args[2] = { host, port };

	if (addr == NULL || redis_split_address(addr, host, sizeof(host), port,
	    sizeof(port)) < 0)
		return 0;
	for (size_t i = 0; i < cl->nnodes; i++) {
		const Troika__V1__ActionRecord *last = st->rejoin[i];
		const char *role = redis_fact(g, (int)i, "role");

		if ((int)i == primary || role == NULL ||
		    strcmp(role, "master") != 0)
			continue;
		if (last != NULL && redis_open(last))
			return 1;
		/* "master" from before the last rejoin ended is old news. */
		if (last != NULL && coord_member_result_at(g->c, cl->nodes[i],
		    cl->check) < last->ended_unix_nano)
			continue;
		if (last != NULL && last->state !=
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED &&
		    now < last->ended_unix_nano + redis_ns(cl->retry_ms)) {
			redis_wake_in(g, last->ended_unix_nano +
			    redis_ns(cl->retry_ms) - now);
			continue;
		}
		if (!coord_agent_connected(g->c, cl->nodes[i]) ||
		    coord_recovery_in_maintenance(g->r, cl->nodes[i],
		    cl->check))
			continue;
		snprintf(why, sizeof(why), "%s is the primary of cluster %s, "
		    "but %s answers as a master: it rejoins as a replica",
		    cl->nodes[primary], cl->name, cl->nodes[i]);
		redis_begin(g, "", cl->nodes[i], "replicate", args, 2, why);
		return 1;
	}
	return 0;
}

void
coord_redis_evaluate(struct coord_redis *g)
{
	const struct coord_cluster *cl = g->cl;
	const struct coord_policy *pol;
	struct redis_state st;
	uint64_t now = coord_now_ns();
	char why[512];
	char *args[1];
	int p;

	if (g->starting || !coord_recovery_deciding(g->r))
		return;
	redis_read(g, now, &st);
	if (st.proc != NULL && st.proc->state ==
	    TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING) {
		redis_step(g, &st, now);
		return;
	}
	if (st.proc != NULL && redis_open(st.proc))
		return; /* LOCKED: an operator acknowledges it first */
	if ((p = redis_primary(g, &st)) < 0)
		return;
	if (!coord_member_failed(g->c, cl->nodes[p], cl->check)) {
		g->failed = -1;
		g->escalated = 0;
		if (st.last_promote != NULL)
			(void)redis_rejoin(g, &st, p, now);
		return;
	}
	if (g->failed != p) {
		g->failed = p;
		g->failed_since = now;
	}
	if (now < g->failed_since + redis_ns(cl->failover_after_ms)) {
		redis_wake_in(g, g->failed_since +
		    redis_ns(cl->failover_after_ms) - now);
		return;
	}
	if (coord_recovery_busy(g->r, cl->nodes[p], cl->check))
		return; /* its restart may yet bring it back; its end returns */
	for (size_t i = 0; i < cl->nnodes; i++)
		if (coord_recovery_in_maintenance(g->r, cl->nodes[i],
		    cl->check)) {
			redis_wake_in(g, 1000 * REDIS_NS_PER_MS);
			return;
		}
	pol = coord_conf_policy(g->c->conf, cl->check);
	if (st.last_proc_end != 0 && now < st.last_proc_end +
	    redis_ns(pol->backoff_ms)) {
		redis_wake_in(g, st.last_proc_end + redis_ns(pol->backoff_ms) -
		    now);
		return;
	}
	if (st.procs_in_window >= (unsigned)pol->max_attempts) {
		const char *const f[] = { "cluster", cl->name };

		if (!g->escalated)
			coord_events_emit(g->c, "recovery_escalated",
			    TROIKA__V1__SEVERITY__SEVERITY_CRITICAL, NULL,
			    cl->check, f, 1, "cluster %s: the primary %s has "
			    "failed and troika will not fail over again: "
			    "max_attempts (%d) reached in the window; an "
			    "operator is needed", cl->name, cl->nodes[p],
			    pol->max_attempts);
		g->escalated = 1;
		return;
	}
	snprintf(why, sizeof(why), "the primary %s of cluster %s has failed by "
	    "quorum for %" PRId64 " ms (failover_after)", cl->nodes[p],
	    cl->name, (int64_t)((now - g->failed_since) / REDIS_NS_PER_MS));
	args[0] = cl->nodes[p];
	redis_begin(g, "", "", COORD_REDIS_PROCEDURE, args, 1, why);
}

/*
 * The primary is down for its replicas' sake: failed by quorum, or its
 * latest result here says CRITICAL or UNKNOWN (a replica notices a dead
 * primary at its next run, the primary's own check at once, from its pid:
 * its verdict may come after the replica's).
 */
static int
redis_primary_down(const struct coord_redis *g, int p)
{
	const Troika__V1__CheckResult *res = coord_member_result(g->c,
	    g->cl->nodes[p], g->cl->check);

	return coord_member_failed(g->c, g->cl->nodes[p], g->cl->check) ||
	    res == NULL || res->status ==
	    TROIKA__V1__CHECK_STATUS__CHECK_STATUS_CRITICAL || res->status ==
	    TROIKA__V1__CHECK_STATUS__CHECK_STATUS_UNKNOWN;
}

int
coord_redis_holds(struct coord_redis *g, const char *node, char *why,
    size_t len)
{
	const struct coord_cluster *cl = g->cl;
	struct redis_state st;
	int p;

	redis_read(g, coord_now_ns(), &st);
	if (st.proc != NULL && redis_open(st.proc)) {
		snprintf(why, len, "cluster %s's failover %s is %s",
		    cl->name, st.proc->id, st.proc->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED ? "locked" :
		    "running");
		return 1;
	}
	p = redis_primary(g, &st);
	if (p >= 0 && strcmp(cl->nodes[p], node) != 0 &&
	    redis_primary_down(g, p)) {
		snprintf(why, len, "the primary %s of cluster %s has failed: "
		    "its replica %s waits for the failover", cl->nodes[p],
		    cl->name, node);
		return 1;
	}
	/*
	 * A failover changes what every member reports: a verdict made of
	 * results from before its end (a replica's "link to the master
	 * down", the new primary's included) is stale until the member has
	 * reported again, and one whose latest result is OK is on its way
	 * out (the other coordinators withdraw their opinions a moment
	 * later).
	 */
	if (st.proc != NULL && coord_member_result_at(g->c, node, cl->check) <
	    st.proc->ended_unix_nano) {
		snprintf(why, len, "%s has not reported since cluster %s's "
		    "failover %s ended", node, cl->name, st.proc->id);
		return 1;
	}
	if (coord_member_ok(g->c, node, cl->check)) {
		snprintf(why, len, "%s's latest result is OK", node);
		return 1;
	}
	return 0;
}

void
coord_redis_status(struct coord_redis *g, Troika__V1__ClusterStatus *cs)
{
	struct redis_state st;
	int p;

	redis_read(g, coord_now_ns(), &st);
	cs->name = g->cl->name;
	cs->kind = (char *)(uintptr_t)coord_cluster_kind_str(g->cl->kind);
	if ((p = redis_primary(g, &st)) >= 0) {
		const char *addr = redis_fact(g, p, "address");

		cs->primary = g->cl->nodes[p];
		/* A coordinator without the member's results yet: the
		 * failover that promoted it says. */
		if (addr == NULL && st.proc != NULL && st.last_promote != NULL &&
		    strcmp(st.last_promote->procedure, st.proc->id) == 0)
			addr = redis_rec_field(st.proc, "address");
		cs->primary_address = (char *)(uintptr_t)(addr != NULL ? addr :
		    "");
	}
	if (st.proc != NULL) {
		cs->procedure_id = st.proc->id;
		cs->procedure_state = st.proc->state;
	}
}

static void
redis_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	coord_redis_evaluate(arg);
}

struct coord_redis *
coord_redis_new(struct coord *c, struct coord_recovery *r,
    const struct coord_cluster *cl)
{
	struct coord_redis *g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->c = c;
	g->r = r;
	g->cl = cl;
	g->failed = -1;
	if ((g->wake = evtimer_new(c->base, redis_wake_cb, g)) == NULL) {
		free(g);
		return NULL;
	}
	return g;
}

void
coord_redis_reset(struct coord_redis *g)
{
	evtimer_del(g->wake);
	g->starting = 0;
	g->failed = -1;
	g->alerted_for[0] = '\0';
	g->alerted = 0;
	g->announced_for[0] = '\0';
	g->escalated = 0;
}

void
coord_redis_free(struct coord_redis *g)
{
	if (g == NULL)
		return;
	event_free(g->wake);
	free(g);
}
