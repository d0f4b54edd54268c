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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "coord_conf.h"
#include "coord_events.h"
#include "coord_member.h"
#include "coord_procedure.h"
#include "coord_recovery.h"
#include "troika/v1/admin.pb-c.h"

#define REDIS_NS_PER_MS 1000000ULL

struct coord_redis {
	struct coord_procedure p;
	/* The primary's failure, as this leader first saw it. */
	int failed;             /* member index, -1: none */
	uint64_t failed_since;
	char announced_for[COORD_PROCEDURE_ID_MAX]; /* primary_changed said */
};

/* What the records say about the cluster's latest failover. */
struct redis_state {
	struct coord_procedure_state ps;
	const Troika__V1__ActionRecord *role[COORD_CONF_MAX_MEMBERS];
	const Troika__V1__ActionRecord *promote;
	const Troika__V1__ActionRecord *replicate[COORD_CONF_MAX_MEMBERS];
	const Troika__V1__ActionRecord *handover; /* a switchover's */
	/*
	 * The member the last change of primary made the primary (a
	 * failover's promote, a switchover's handover), -1: none yet; and
	 * that step's record.
	 */
	int last_primary;
	const Troika__V1__ActionRecord *last_change;
	const Troika__V1__ActionRecord *rejoin[COORD_CONF_MAX_MEMBERS];
};

static uint64_t
redis_ns(int64_t ms)
{
	return (uint64_t)ms * REDIS_NS_PER_MS;
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
	const Troika__V1__CheckResult *res = coord_member_result(g->p.c,
	    g->p.cl->nodes[m], g->p.cl->check);

	return res != NULL ? coord_member_field(res->fields, res->n_fields,
	    name) : NULL;
}

/* "host:port", or "[host]:port" for an IPv6 address. */
static void
redis_join_address(const char *host, const char *port, char *buf, size_t len)
{
	snprintf(buf, len, strchr(host, ':') != NULL ? "[%s]:%s" : "%s:%s",
	    host, port);
}

/*
 * The member a handover step handed the primary role to: the one whose
 * address (its role record of the same switchover, else its latest
 * result) is the step's host and port. -1: none.
 */
static int
redis_handover_target(const struct coord_redis *g,
    const Troika__V1__ActionRecord *const *recs, size_t n,
    const Troika__V1__ActionRecord *h)
{
	char want[300];
	int m;

	if (h->n_args < 2)
		return -1;
	redis_join_address(h->args[0], h->args[1], want, sizeof(want));
	for (size_t i = 0; i < n; i++) {
		const char *a;

		if (strcmp(recs[i]->procedure, h->procedure) != 0 ||
		    strcmp(recs[i]->action, "role") != 0 ||
		    (a = redis_rec_field(recs[i], "address")) == NULL ||
		    strcmp(a, want) != 0)
			continue;
		if ((m = coord_procedure_member(&g->p, recs[i]->node)) >= 0)
			return m;
	}
	for (size_t i = 0; i < g->p.cl->nnodes; i++) {
		const char *a = redis_fact(g, (int)i, "address");

		if (a != NULL && strcmp(a, want) == 0)
			return (int)i;
	}
	return -1;
}

static void
redis_read(struct coord_redis *g, uint64_t now, struct redis_state *st)
{
	const Troika__V1__ActionRecord **recs;
	const char *proc;
	size_t n;

	memset(st, 0, sizeof(*st));
	st->last_primary = -1;
	n = coord_procedure_read(&g->p, now, &st->ps, &recs);
	proc = st->ps.proc != NULL ? st->ps.proc->id : NULL;
	for (size_t i = 0; i < n; i++) {
		const Troika__V1__ActionRecord *pb = recs[i];
		int m;

		if (strcmp(pb->cluster, g->p.cl->name) != 0 ||
		    (m = coord_procedure_member(&g->p, pb->node)) < 0)
			continue;
		if (strcmp(pb->action, "promote") == 0 && pb->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED) {
			st->last_primary = m;
			st->last_change = pb;
		}
		/* A planned switchover is a change of primary too. */
		if (strcmp(pb->action, "handover") == 0 && pb->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED &&
		    pb->procedure[0] != '\0') {
			int t = redis_handover_target(g, recs, n, pb);

			if (t >= 0) {
				st->last_primary = t;
				st->last_change = pb;
			}
		}
		if (pb->procedure[0] == '\0') {
			if (strcmp(pb->action, "replicate") == 0)
				st->rejoin[m] = pb;
			continue;
		}
		if (proc == NULL || strcmp(pb->procedure, proc) != 0)
			continue;
		if (strcmp(pb->action, "role") == 0)
			st->role[m] = pb;
		else if (strcmp(pb->action, "promote") == 0)
			st->promote = pb;
		else if (strcmp(pb->action, "replicate") == 0)
			st->replicate[m] = pb;
		else if (strcmp(pb->action, "handover") == 0)
			st->handover = pb;
	}
}

/*
 * The primary: the last failover's promoted member, else the member that
 * says it is a master, else the one whose address the replicas follow.
 */
static int
redis_primary(const struct coord_redis *g, const struct redis_state *st)
{
	const struct coord_cluster *cl = g->p.cl;

	if (st->last_primary >= 0)
		return st->last_primary;
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

/*
 * The primary is down for its replicas' sake: failed by quorum, its node
 * out of reach, or its latest result here says CRITICAL or UNKNOWN (a
 * replica notices a dead primary at its next run, the primary's own check
 * at once, from its pid: its verdict may come after the replica's).
 */
static int
redis_primary_down(const struct coord_redis *g, int p)
{
	const Troika__V1__CheckResult *res = coord_member_result(g->p.c,
	    g->p.cl->nodes[p], g->p.cl->check);

	return coord_member_failed(g->p.c, g->p.cl->nodes[p],
	    g->p.cl->check) || !coord_member_connected(g->p.c,
	    g->p.cl->nodes[p]) || res == NULL || res->status ==
	    TROIKA__V1__CHECK_STATUS__CHECK_STATUS_CRITICAL || res->status ==
	    TROIKA__V1__CHECK_STATUS__CHECK_STATUS_UNKNOWN;
}

int
coord_redis_split_address(const char *addr, char *host, size_t hlen,
    char *port, size_t plen)
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

/* End the failover; the primary (member index, -1: none) as its facts. */
static void
redis_finish(struct coord_redis *g, const struct redis_state *st, int state,
    int primary, const char *msg)
{
	Troika__V1__Label labels[2], *fields[2];
	const char *addr = primary >= 0 ? redis_fact(g, primary, "address") :
	    NULL;
	size_t n = 0;

	if (primary >= 0) {
		troika__v1__label__init(&labels[n]);
		labels[n].name = (char *)(uintptr_t)"primary";
		labels[n].value = g->p.cl->nodes[primary];
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
	coord_procedure_finish(&g->p, st->ps.proc->id, state, fields, n, "%s",
	    msg);
}

static void
redis_announce(struct coord_redis *g, const struct redis_state *st, int m,
    const char *how)
{
	const struct coord_cluster *cl = g->p.cl;
	const char *addr = redis_fact(g, m, "address");
	const char *const f[] = { "cluster", cl->name, "primary",
	    cl->nodes[m], "address", addr != NULL ? addr : "" };

	if (strcmp(g->announced_for, st->ps.proc->id) == 0)
		return;
	snprintf(g->announced_for, sizeof(g->announced_for), "%s",
	    st->ps.proc->id);
	coord_events_emit(g->p.c, "primary_changed",
	    TROIKA__V1__SEVERITY__SEVERITY_WARNING, cl->nodes[m], cl->check,
	    f, 3, "cluster %s: %s (%s) is the primary now; %s %s",
	    cl->name, cl->nodes[m], addr != NULL ? addr : "?",
	    st->ps.proc->args[0], how);
}

/* Before the promotion: the replicas' offsets, then the choice. */
static void
redis_decide(struct coord_redis *g, const struct redis_state *st, int old,
    uint64_t now)
{
	const struct coord_cluster *cl = g->p.cl;
	int64_t best_off = -1;
	char why[512];
	int best = -1;

	if (coord_member_ok(g->p.c, cl->nodes[old], cl->check) &&
	    !coord_member_failed(g->p.c, cl->nodes[old], cl->check)) {
		snprintf(why, sizeof(why), "%s answers again: no failover "
		    "needed", cl->nodes[old]);
		redis_finish(g, st,
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED, old, why);
		return;
	}
	snprintf(why, sizeof(why), "the primary %s has failed: the replicas' "
	    "offsets decide which one is promoted", cl->nodes[old]);
	/* A replica on a lost node is counted out: it cannot be promoted,
	 * and it follows the new primary when it is back (rejoin). */
	if (coord_procedure_collect(&g->p, st->ps.proc, st->role,
	    old >= 0 ? 1u << old : 0, 1, "role",
	    "no replica is promoted until every member's offset is known",
	    why, now))
		return;
	for (size_t i = 0; i < cl->nnodes; i++) {
		const Troika__V1__ActionRecord *p = st->role[i];
		const char *role, *link, *off;

		if ((int)i == old || p == NULL ||
		    p->state != TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED)
			continue; /* counted out (lost) */
		role = redis_rec_field(p, "role");
		link = redis_rec_field(p, "master_link_status");
		off = redis_rec_field(p, "slave_repl_offset");
		if (role == NULL || strcmp(role, "replica") != 0)
			continue;
		if (link != NULL && strcmp(link, "up") == 0) {
			snprintf(why, sizeof(why), "%s's link to the primary "
			    "is up: the primary lives, no failover",
			    cl->nodes[i]);
			redis_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED,
			    old, why);
			return;
		}
		if (off != NULL && strtoll(off, NULL, 10) > best_off) {
			best_off = strtoll(off, NULL, 10);
			best = (int)i;
		}
	}
	if (best < 0) {
		redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED,
		    -1, "no replica with a known offset to promote");
		return;
	}
	snprintf(why, sizeof(why), "the replica with the highest offset: %s "
	    "at %" PRId64, cl->nodes[best], best_off);
	for (size_t i = 0; i < cl->nnodes; i++) {
		const char *off;

		if ((int)i == best || (int)i == old || st->role[i] == NULL)
			continue;
		off = redis_rec_field(st->role[i], "slave_repl_offset");
		snprintf(why + strlen(why), sizeof(why) - strlen(why),
		    "; %s at %s", cl->nodes[i], off != NULL ? off :
		    "? (not a replica)");
	}
	coord_procedure_begin(&g->p, st->ps.proc->id, cl->nodes[best],
	    "promote", NULL, 0, why);
}

/*
 * The next step of a failover or switchover that made member primary the
 * primary (old: the member it replaced, which rejoins on its own): the
 * first other replica that does not follow it yet is asked to (args: the
 * primary's host and port), or the procedure FAILS if its replicate step
 * did. 0 when every one follows: the caller finishes.
 */
static int
redis_repoint_next(struct coord_redis *g, const struct redis_state *st,
    int primary, int old, char **args, const char *became)
{
	const struct coord_cluster *cl = g->p.cl;
	char why[512];

	for (size_t i = 0; i < cl->nnodes; i++) {
		const Troika__V1__ActionRecord *s = st->replicate[i];

		if ((int)i == primary || (int)i == old || (s != NULL &&
		    s->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED))
			continue;
		if (s != NULL) {
			snprintf(why, sizeof(why), "%s %s, but %s does not "
			    "follow it: %s", cl->nodes[primary], became,
			    cl->nodes[i], s->message);
			redis_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED,
			    primary, why);
			return 1;
		}
		snprintf(why, sizeof(why), "%s is the primary now: %s follows "
		    "it", cl->nodes[primary], cl->nodes[i]);
		coord_procedure_begin(&g->p, st->ps.proc->id, cl->nodes[i],
		    "replicate", args, 2, why);
		return 1;
	}
	return 0;
}

static void
redis_step(struct coord_redis *g, const struct redis_state *st, uint64_t now)
{
	const struct coord_cluster *cl = g->p.cl;
	const Troika__V1__ActionRecord *proc = st->ps.proc;
	int old = proc->n_args > 0 ? coord_procedure_member(&g->p,
	    proc->args[0]) : -1, best;
	char why[512], host[256], port[16];
	char *args[2] = { host, port };
	const char *addr;

	if (st->ps.running != NULL)
		return; /* its end brings us back */
	if (st->ps.locked != NULL) {
		snprintf(why, sizeof(why), "step %s (%s on %s) has no known "
		    "outcome: look at the cluster, then acknowledge",
		    st->ps.locked->id, st->ps.locked->action,
		    st->ps.locked->node);
		redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED,
		    -1, why);
		return;
	}
	if (old < 0) {
		redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED,
		    -1, "the record names no member as the failed primary");
		return;
	}
	if (st->promote == NULL) {
		redis_decide(g, st, old, now);
		return;
	}
	best = coord_procedure_member(&g->p, st->promote->node);
	if (st->promote->state !=
	    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED) {
		snprintf(why, sizeof(why), "promoting %s failed: %s",
		    st->promote->node, st->promote->message);
		redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED,
		    -1, why);
		return;
	}
	redis_announce(g, st, best, "failed");
	addr = redis_fact(g, best, "address");
	if (addr == NULL || coord_redis_split_address(addr, host, sizeof(host),
	    port, sizeof(port)) < 0) {
		snprintf(why, sizeof(why), "%s was promoted, but its address "
		    "is not known (%s): the other replicas were not repointed",
		    cl->nodes[best], addr != NULL ? addr :
		    "no result with an address");
		redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED,
		    best, why);
		return;
	}
	if (redis_repoint_next(g, st, best, old, args, "was promoted"))
		return;
	snprintf(why, sizeof(why), "%s promoted in place of %s; the other "
	    "replicas follow it", cl->nodes[best], cl->nodes[old]);
	redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED,
	    best, why);
}

/*
 * Member m (not the primary, whose address is host, port) answers as a
 * master, or as the replica of another server (it was away during the
 * failover): it must rejoin. A result from before the last failover or
 * the member's last rejoin ended is old news: it says nothing.
 */
static int
redis_astray(const struct coord_redis *g, const struct redis_state *st, int m,
    const char *host, const char *port)
{
	const struct coord_cluster *cl = g->p.cl;
	const char *role = redis_fact(g, m, "role");
	const char *mh = redis_fact(g, m, "master_host");
	const char *mp = redis_fact(g, m, "master_port");
	uint64_t at = coord_member_result_at(g->p.c, cl->nodes[m], cl->check);

	if (role == NULL || (st->ps.proc != NULL &&
	    at < st->ps.proc->ended_unix_nano) || (st->rejoin[m] != NULL &&
	    at < st->rejoin[m]->ended_unix_nano))
		return 0;
	if (strcmp(role, "master") == 0)
		return 1;
	return strcmp(role, "replica") == 0 && mh != NULL && mp != NULL &&
	    (strcmp(mh, host) != 0 || strcmp(mp, port) != 0);
}

/* The primary's address as the replicate action's two arguments. */
static int
redis_primary_args(const struct coord_redis *g, int primary, char *host,
    size_t hlen, char *port, size_t plen)
{
	const char *addr = redis_fact(g, primary, "address");

	return addr != NULL ? coord_redis_split_address(addr, host, hlen, port,
	    plen) : -ENOENT;
}

/* Every member astray rejoins, one record at a time. */
static void
redis_rejoin(struct coord_redis *g, const struct redis_state *st, int primary,
    uint64_t now)
{
	const struct coord_cluster *cl = g->p.cl;
	char why[512], host[256], port[16];
	char *args[2] = { host, port };
	const char *prole = redis_fact(g, primary, "role");

	/*
	 * Never repoint a member to a primary that does not itself answer
	 * as a master (a handover whose outcome was not known, acknowledged
	 * by an operator: the records may name the wrong one). Two replicas
	 * of each other would leave no master at all.
	 */
	if (prole == NULL || strcmp(prole, "master") != 0)
		return;
	if (redis_primary_args(g, primary, host, sizeof(host), port,
	    sizeof(port)) < 0)
		return;
	for (size_t i = 0; i < cl->nnodes; i++) {
		const Troika__V1__ActionRecord *last = st->rejoin[i];
		const char *role = redis_fact(g, (int)i, "role");

		if ((int)i == primary)
			continue;
		if (last != NULL && coord_recovery_record_open(last))
			return;
		if (!redis_astray(g, st, (int)i, host, port))
			continue;
		/*
		 * The primary's "master" must be newer than the member's
		 * answer: roles swapped by hand show in one member's result
		 * before the other's. Its next result looks again.
		 */
		if (coord_member_result_at(g->p.c, cl->nodes[primary],
		    cl->check) < coord_member_result_at(g->p.c, cl->nodes[i],
		    cl->check))
			continue;
		if (last != NULL && last->state !=
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED &&
		    now < last->ended_unix_nano + redis_ns(cl->retry_ms)) {
			coord_procedure_wake_in(&g->p, last->ended_unix_nano +
			    redis_ns(cl->retry_ms) - now);
			continue;
		}
		if (!coord_agent_connected(g->p.c, cl->nodes[i]) ||
		    coord_recovery_in_maintenance(g->p.r, cl->nodes[i],
		    cl->check))
			continue;
		snprintf(why, sizeof(why), "%s is the primary of cluster %s, "
		    "but %s answers as %s: it rejoins as its replica",
		    cl->nodes[primary], cl->name, cl->nodes[i],
		    strcmp(role, "master") == 0 ? "a master" :
		    "another server's replica");
		coord_procedure_begin(&g->p, "", cl->nodes[i], "replicate", args,
		    2, why);
		return;
	}
}

/* ---- a planned switchover (coord_redis_switchover) ---- */

/* The handover's FAILOVER TIMEOUT: half the action's time, at most 10 s. */
static int64_t
redis_handover_ms(const struct coord_redis *g)
{
	const struct coord_policy *pol = coord_conf_policy(g->p.c->conf,
	    g->p.cl->check);
	int64_t ms = pol->action_timeout_ms / 2;

	return ms > 10000 ? 10000 : ms < 1 ? 1 : ms;
}

int
coord_redis_follows(const Troika__V1__ActionRecord *role, const char *host,
    const char *port)
{
	const char *r = redis_rec_field(role, "role");
	const char *mh = redis_rec_field(role, "master_host");
	const char *mp = redis_rec_field(role, "master_port");
	const char *link = redis_rec_field(role, "master_link_status");

	return r != NULL && strcmp(r, "replica") == 0 && mh != NULL &&
	    mp != NULL && link != NULL && strcmp(mh, host) == 0 &&
	    strcmp(mp, port) == 0 && strcmp(link, "up") == 0;
}

int
coord_redis_pick(const Troika__V1__ActionRecord *const *roles, size_t n,
    int skip)
{
	int64_t best_off = -1;
	int best = -1;

	for (size_t i = 0; i < n; i++) {
		const char *r, *off;
		char *end;
		long long v;

		if ((int)i == skip || roles[i] == NULL || roles[i]->state !=
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED ||
		    (r = redis_rec_field(roles[i], "role")) == NULL ||
		    strcmp(r, "replica") != 0 ||
		    (off = redis_rec_field(roles[i], "slave_repl_offset")) ==
		    NULL)
			continue;
		errno = 0;
		v = strtoll(off, &end, 10);
		if (errno != 0 || *off == '\0' || *end != '\0' || v < 0)
			continue;
		/* Strictly higher: a tie goes to the first in the list. */
		if (v > best_off) {
			best_off = v;
			best = (int)i;
		}
	}
	return best;
}

/*
 * Before the handover: the role of every member, the primary still a
 * master and every other member its replica with the link up; then the
 * handover to the target (the operator's, or the replica with the
 * highest offset). Nothing has changed yet: any doubt ends it FAILED.
 */
static void
redis_switch_prepare(struct coord_redis *g, const struct redis_state *st,
    int old, int want)
{
	const struct coord_cluster *cl = g->p.cl;
	const Troika__V1__ActionRecord *proc = st->ps.proc;
	char why[512], host[256], port[16], thost[256], tport[16], ms[24];
	char *args[3] = { thost, tport, ms };
	const char *addr, *r;
	int best;

	for (size_t i = 0; i < cl->nnodes; i++) {
		const Troika__V1__ActionRecord *a = st->role[i];

		if (a != NULL && a->state !=
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED) {
			snprintf(why, sizeof(why), "role of %s: %s; nothing "
			    "was changed", cl->nodes[i], a->message);
			redis_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED, old,
			    why);
			return;
		}
		if (a != NULL)
			continue;
		if (!coord_agent_connected(g->p.c, cl->nodes[i])) {
			snprintf(why, sizeof(why), "%s's agent has no stream "
			    "to the leader; nothing was changed", cl->nodes[i]);
			redis_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED, old,
			    why);
			return;
		}
		snprintf(why, sizeof(why), "switchover of cluster %s: the "
		    "members' roles and offsets, fresh", cl->name);
		coord_procedure_begin(&g->p, proc->id, cl->nodes[i], "role",
		    NULL, 0, why);
		return;
	}
	r = redis_rec_field(st->role[old], "role");
	addr = redis_rec_field(st->role[old], "address");
	if (r == NULL || strcmp(r, "master") != 0 || addr == NULL ||
	    coord_redis_split_address(addr, host, sizeof(host), port,
	    sizeof(port)) < 0) {
		snprintf(why, sizeof(why), "%s answers as %s, not as the "
		    "primary; nothing was changed", cl->nodes[old],
		    r != NULL ? r : "nothing");
		redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED,
		    old, why);
		return;
	}
	for (size_t i = 0; i < cl->nnodes; i++) {
		if ((int)i == old)
			continue;
		if (!coord_redis_follows(st->role[i], host, port)) {
			snprintf(why, sizeof(why), "%s is not a replica of %s "
			    "(%s) with its link up; nothing was changed",
			    cl->nodes[i], cl->nodes[old], addr);
			redis_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED, old,
			    why);
			return;
		}
	}
	best = want >= 0 ? want : coord_redis_pick(st->role, cl->nnodes, old);
	if (best < 0 || best == old || (addr = redis_rec_field(
	    st->role[best], "address")) == NULL || coord_redis_split_address(addr,
	    thost, sizeof(thost), tport, sizeof(tport)) < 0) {
		redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED,
		    old, best == old ? "the target is the primary already" :
		    "no replica with a known address and offset to hand over "
		    "to; nothing was changed");
		return;
	}
	snprintf(ms, sizeof(ms), "%" PRId64, redis_handover_ms(g));
	snprintf(why, sizeof(why), "%s hands the primary role over to %s "
	    "(%s): writes paused until it has caught up", cl->nodes[old],
	    cl->nodes[best], want >= 0 ? "the operator's choice" :
	    "the replica with the highest offset");
	coord_procedure_begin(&g->p, proc->id, cl->nodes[old], "handover",
	    args, 3, why);
}

static void
redis_switch_step(struct coord_redis *g, const struct redis_state *st)
{
	const struct coord_cluster *cl = g->p.cl;
	const Troika__V1__ActionRecord *proc = st->ps.proc;
	int old = proc->n_args > 0 ? coord_procedure_member(&g->p,
	    proc->args[0]) : -1;
	int want = proc->n_args > 1 ? coord_procedure_member(&g->p,
	    proc->args[1]) : -1, to;
	char why[512], host[256], port[16];
	char *args[2] = { host, port };

	if (st->ps.running != NULL)
		return; /* its end brings us back */
	if (st->ps.locked != NULL) {
		snprintf(why, sizeof(why), "step %s (%s on %s) has no known "
		    "outcome: look at the cluster, then acknowledge",
		    st->ps.locked->id, st->ps.locked->action,
		    st->ps.locked->node);
		redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED,
		    -1, why);
		return;
	}
	if (old < 0 || (proc->n_args > 1 && want < 0)) {
		redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED,
		    -1, "the record names no member as the primary or the "
		    "target");
		return;
	}
	if (st->handover == NULL) {
		redis_switch_prepare(g, st, old, want);
		return;
	}
	if (st->handover->state !=
	    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED) {
		snprintf(why, sizeof(why), "the handover failed: %s; %s is "
		    "still the primary", st->handover->message,
		    cl->nodes[old]);
		redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED,
		    old, why);
		return;
	}
	/* redis_read() made its target the primary. */
	if ((to = st->last_change == st->handover ? st->last_primary : -1) <
	    0) {
		redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED,
		    -1, "the handover succeeded, but its target is no member "
		    "known by that address: look at the cluster");
		return;
	}
	redis_announce(g, st, to, "handed the role over (switchover)");
	snprintf(host, sizeof(host), "%s", st->handover->args[0]);
	snprintf(port, sizeof(port), "%s", st->handover->args[1]);
	if (redis_repoint_next(g, st, to, old, args, "is the primary"))
		return;
	snprintf(why, sizeof(why), "%s handed the primary role over to %s; "
	    "%s and the other replicas follow it", cl->nodes[old],
	    cl->nodes[to], cl->nodes[old]);
	redis_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED,
	    to, why);
}

struct redis_switch_write {
	struct coord_redis *g;
	coord_redis_switch_fn done;
	void *arg;
	char id[COORD_PROCEDURE_ID_MAX];
};

static void
redis_switch_written(int ok, void *arg)
{
	struct redis_switch_write *w = arg;

	w->g->p.starting = 0;
	coord_procedure_wake_in(&w->g->p, 0);
	w->done(ok, w->id, w->arg);
	free(w);
}

int
coord_redis_switchover(struct coord_redis *g, const char *to, const char *by,
    coord_redis_switch_fn done, void *arg, char *why, size_t len)
{
	const struct coord_cluster *cl = g->p.cl;
	struct redis_state st;
	struct redis_switch_write *w;
	char reason[512], host[256], port[16];
	char *args[2];
	int p, t = -1, rc;

	if (!coord_recovery_deciding(g->p.r)) {
		snprintf(why, len, "not the leader with quorum");
		return -EPERM;
	}
	if (to != NULL && *to != '\0' &&
	    (t = coord_procedure_member(&g->p, to)) < 0) {
		snprintf(why, len, "%s is not a member of cluster %s", to,
		    cl->name);
		return -EINVAL;
	}
	if (g->p.starting) {
		snprintf(why, len, "a record of cluster %s is being written; "
		    "try again", cl->name);
		return -EBUSY;
	}
	redis_read(g, coord_now_ns(), &st);
	if (st.ps.proc != NULL && coord_recovery_record_open(st.ps.proc)) {
		snprintf(why, len, "cluster %s's %s %s is %s", cl->name,
		    st.ps.proc->action, st.ps.proc->id, st.ps.proc->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED ?
		    "locked: acknowledge it first" : "still running");
		return -EBUSY;
	}
	if ((p = redis_primary(g, &st)) < 0 || redis_primary_args(g, p, host,
	    sizeof(host), port, sizeof(port)) < 0) {
		snprintf(why, len, "the primary of cluster %s is not known",
		    cl->name);
		return -EAGAIN;
	}
	if (t == p) {
		snprintf(why, len, "%s is the primary of cluster %s already",
		    to, cl->name);
		return -EALREADY;
	}
	for (size_t i = 0; i < cl->nnodes; i++) {
		const char *node = cl->nodes[i];
		const Troika__V1__CheckResult *res = coord_member_result(g->p.c,
		    node, cl->check);

		if (coord_recovery_in_maintenance(g->p.r, node, cl->check)) {
			snprintf(why, len, "%s is in maintenance", node);
			return -EAGAIN;
		}
		if (coord_recovery_busy(g->p.r, node, cl->check) ||
		    (st.rejoin[i] != NULL &&
		    coord_recovery_record_open(st.rejoin[i]))) {
			snprintf(why, len, "%s has an action of its own "
			    "running", node);
			return -EBUSY;
		}
		if (!coord_agent_connected(g->p.c, node)) {
			snprintf(why, len, "%s's agent has no stream to the "
			    "leader", node);
			return -EAGAIN;
		}
		if (coord_member_failed(g->p.c, node, cl->check) ||
		    !coord_member_ok(g->p.c, node, cl->check)) {
			snprintf(why, len, "%s is not OK: %s", node,
			    res != NULL ? res->message : "no result yet");
			return -EAGAIN;
		}
		if ((int)i != p && redis_astray(g, &st, (int)i, host, port)) {
			snprintf(why, len, "%s is not a replica of the primary "
			    "%s", node, cl->nodes[p]);
			return -EAGAIN;
		}
	}
	if (t >= 0) {
		const char *role = redis_fact(g, t, "role");
		const char *mh = redis_fact(g, t, "master_host");
		const char *mp = redis_fact(g, t, "master_port");
		const char *link = redis_fact(g, t, "master_link_status");

		if (role == NULL || strcmp(role, "replica") != 0 || mh == NULL ||
		    mp == NULL || strcmp(mh, host) != 0 || strcmp(mp,
		    port) != 0 || link == NULL || strcmp(link, "up") != 0) {
			snprintf(why, len, "%s is not a healthy replica of the "
			    "primary %s (role %s, master %s:%s, link %s)", to,
			    cl->nodes[p], role != NULL ? role : "?",
			    mh != NULL ? mh : "?", mp != NULL ? mp : "?",
			    link != NULL ? link : "?");
			return -EAGAIN;
		}
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	w->g = g;
	w->done = done;
	w->arg = arg;
	snprintf(reason, sizeof(reason), "switchover requested by %s: %s "
	    "hands the primary role over to %s", by != NULL && *by != '\0' ?
	    by : "an operator", cl->nodes[p], t >= 0 ? cl->nodes[t] :
	    "the replica with the highest offset");
	args[0] = cl->nodes[p];
	args[1] = t >= 0 ? cl->nodes[t] : NULL;
	{
		struct coord_recovery_step s = {
			.node = "", .check = cl->check,
			.action = COORD_REDIS_SWITCHOVER, .args = args,
			.nargs = t >= 0 ? 2 : 1, .procedure = "",
			.cluster = cl->name, .reason = reason,
			.timeout_ns = redis_ns(cl->timeout_ms),
			.ret_id = w->id, .ret_id_len = sizeof(w->id),
		};

		g->p.starting = 1;
		if ((rc = coord_recovery_begin(g->p.r, &s, redis_switch_written,
		    w)) < 0) {
			g->p.starting = 0;
			free(w);
			snprintf(why, len, "cannot write the record: %s",
			    strerror(-rc));
			return rc == -EPERM ? -EPERM : -EIO;
		}
	}
	return 0;
}

void
coord_redis_evaluate(struct coord_redis *g)
{
	const struct coord_cluster *cl = g->p.cl;
	struct redis_state st;
	uint64_t now = coord_now_ns();
	char why[512];
	char *args[1];
	int p;

	if (!coord_procedure_may_act(&g->p))
		return;
	redis_read(g, now, &st);
	if (st.ps.proc != NULL && st.ps.proc->state ==
	    TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING) {
		if (strcmp(st.ps.proc->action, COORD_REDIS_SWITCHOVER) == 0)
			redis_switch_step(g, &st);
		else
			redis_step(g, &st, now);
		return;
	}
	if (st.ps.proc != NULL && coord_recovery_record_open(st.ps.proc))
		return; /* LOCKED: an operator acknowledges it first */
	if ((p = redis_primary(g, &st)) < 0)
		return;
	if (!coord_member_failed(g->p.c, cl->nodes[p], cl->check)) {
		g->failed = -1;
		g->p.escalated = 0;
		if (st.last_primary >= 0)
			redis_rejoin(g, &st, p, now);
		return;
	}
	if (g->failed != p) {
		g->failed = p;
		g->failed_since = now;
	}
	if (now < g->failed_since + redis_ns(cl->failover_after_ms)) {
		coord_procedure_wake_in(&g->p, g->failed_since +
		    redis_ns(cl->failover_after_ms) - now);
		return;
	}
	if (!coord_procedure_may_start(&g->p, &st.ps, now, "fail over", 0))
		return;
	snprintf(why, sizeof(why), "the primary %s of cluster %s has failed by "
	    "quorum for %" PRIu64 " ms (failover_after)", cl->nodes[p],
	    cl->name, (uint64_t)((now - g->failed_since) / REDIS_NS_PER_MS));
	args[0] = cl->nodes[p];
	coord_procedure_begin(&g->p, "", "", COORD_REDIS_PROCEDURE, args, 1,
	    why);
}

int
coord_redis_settled(struct coord_redis *g, const char *node)
{
	struct redis_state st;
	char host[256], port[16];
	int p, m = coord_procedure_member(&g->p, node);

	if (m < 0 || g->p.starting)
		return m < 0;
	redis_read(g, coord_now_ns(), &st);
	if ((st.ps.proc != NULL && coord_recovery_record_open(st.ps.proc)) ||
	    (st.rejoin[m] != NULL && coord_recovery_record_open(st.rejoin[m])))
		return 0;
	if ((p = redis_primary(g, &st)) < 0 || p == m || st.last_primary < 0)
		return 1;
	if (redis_primary_args(g, p, host, sizeof(host), port,
	    sizeof(port)) < 0)
		return 1;
	/* Astray, or a result too old to say: not yet. */
	return !redis_astray(g, &st, m, host, port) &&
	    coord_member_result_at(g->p.c, node, g->p.cl->check) >=
	    (st.ps.proc != NULL ? st.ps.proc->ended_unix_nano : 0);
}

int
coord_redis_holds(struct coord_redis *g, const char *node, char *why,
    size_t len)
{
	const struct coord_cluster *cl = g->p.cl;
	struct redis_state st;
	int p;

	redis_read(g, coord_now_ns(), &st);
	if (st.ps.proc != NULL && coord_recovery_record_open(st.ps.proc)) {
		snprintf(why, len, "cluster %s's %s %s is %s",
		    cl->name, st.ps.proc->action, st.ps.proc->id,
		    st.ps.proc->state ==
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
	 * A replica that answers but has lost its link to the primary has
	 * the primary's problem, not its own (its own agent may see that
	 * before any coordinator sees the primary's node go): restarting it
	 * helps nothing.
	 */
	if (p >= 0 && strcmp(cl->nodes[p], node) != 0) {
		int m = coord_procedure_member(&g->p, node);
		const char *link = m >= 0 ? redis_fact(g, m,
		    "master_link_status") : NULL;

		if (link != NULL && strcmp(link, "up") != 0) {
			snprintf(why, len, "%s's link to the primary %s is "
			    "%s: the primary's recovery decides", node,
			    cl->nodes[p], link);
			return 1;
		}
	}
	/*
	 * A failover changes what every member reports: a verdict made of
	 * results from before its end (a replica's "link to the master
	 * down", the new primary's included) is stale until the member has
	 * reported again, and one whose latest result is OK is on its way
	 * out (the other coordinators withdraw their opinions a moment
	 * later).
	 */
	if (st.ps.proc != NULL && coord_member_result_at(g->p.c, node,
	    cl->check) < st.ps.proc->ended_unix_nano) {
		snprintf(why, len, "%s has not reported since cluster %s's "
		    "%s %s ended", node, cl->name, st.ps.proc->action,
		    st.ps.proc->id);
		return 1;
	}
	if (coord_member_ok(g->p.c, node, cl->check)) {
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
	cs->name = g->p.cl->name;
	cs->kind = (char *)(uintptr_t)coord_cluster_kind_str(g->p.cl->kind);
	if ((p = redis_primary(g, &st)) >= 0) {
		const char *addr = redis_fact(g, p, "address");

		cs->primary = g->p.cl->nodes[p];
		/* A coordinator without the member's results yet: the
		 * failover that promoted it says. */
		if (addr == NULL && st.ps.proc != NULL &&
		    st.last_change != NULL &&
		    strcmp(st.last_change->procedure, st.ps.proc->id) == 0)
			addr = redis_rec_field(st.ps.proc, "address");
		cs->primary_address = (char *)(uintptr_t)(addr != NULL ? addr :
		    "");
	}
	if (st.ps.proc != NULL) {
		cs->procedure_id = st.ps.proc->id;
		cs->procedure_state = st.ps.proc->state;
	}
}

static void
redis_evaluate_cb(void *arg)
{
	coord_redis_evaluate(arg);
}

struct coord_redis *
coord_redis_new(struct coord *c, struct coord_recovery *r,
    const struct coord_cluster *cl)
{
	struct coord_redis *g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->failed = -1;
	if (coord_procedure_init(&g->p, c, r, cl, COORD_REDIS_PROCEDURE,
	    redis_evaluate_cb, g) < 0) {
		coord_redis_free(g);
		return NULL;
	}
	return g;
}

void
coord_redis_reset(struct coord_redis *g)
{
	coord_procedure_reset(&g->p);
	g->failed = -1;
	g->announced_for[0] = '\0';
}

void
coord_redis_free(struct coord_redis *g)
{
	if (g == NULL)
		return;
	coord_procedure_clear(&g->p);
	free(g);
}
