/*
 * coord_galera: the Galera full-outage procedure (coord_galera.h has the
 * rules). Everything decided here is read from the action records each
 * time; the state kept in struct coord_galera is only what must not be
 * repeated (a write in progress, an alert already given) and a timer.
 */
#include "coord_galera.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "coord_conf.h"
#include "coord_member.h"
#include "coord_procedure.h"
#include "coord_recovery.h"
#include "troika/v1/admin.pb-c.h"

#define GALERA_NS_PER_MS 1000000ULL
/*
 * With a running member: how long Galera gets to re-form the Primary
 * component by itself after the last stopped member was started (or the
 * cluster's retry, if longer). Measured here: the last member's start
 * to Primary in 3-5 s; a member that cannot join (no saved view) never
 * does.
 */
#define GALERA_REFORM_MS 30000
/*
 * With two members failed, a survivor that is Primary and still counts
 * every member this long after a verdict has not lost the failed one
 * (Galera's default evs.inactive_timeout is 15 s).
 */
#define GALERA_SETTLE_MS 15000

struct coord_galera {
	struct coord_procedure p;
};

struct galera_position {
	const Troika__V1__ActionRecord *rec; /* the latest position step */
	const char *uuid;
	int64_t seqno;
	int safe;               /* safe_to_bootstrap: 1 */
	int running;            /* taken from the running server */
};

/* What the records say about the cluster's procedure. */
struct galera_state {
	struct coord_procedure_state ps;
	const Troika__V1__ActionRecord *asked[COORD_CONF_MAX_MEMBERS];
	struct galera_position pos[COORD_CONF_MAX_MEMBERS];
	const Troika__V1__ActionRecord *bootstrap;
	const Troika__V1__ActionRecord *start[COORD_CONF_MAX_MEMBERS];
	/*
	 * A bit per member started by its own (per-service) recovery, not
	 * by the procedure: its start or restart is running (the server
	 * waits for a Primary to join), or was when the procedure started
	 * the others. The procedure makes no move on it and has no position
	 * of it, so it never bootstraps while one is set.
	 */
	uint32_t joining;
};

static int
galera_joining(const struct galera_state *st, size_t i)
{
	return (st->joining & (1u << i)) != 0;
}

static int
galera_member_ok(const struct coord_galera *g, const char *node)
{
	return coord_member_ok(g->p.c, node, g->p.cl->check);
}

static int
galera_member_failed(const struct coord_galera *g, const char *node)
{
	return coord_member_failed(g->p.c, node, g->p.cl->check);
}

static int
galera_started(const struct galera_state *st, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (st->start[i] != NULL)
			return 1;
	return 0;
}

static void
galera_read(struct coord_galera *g, uint64_t now, struct galera_state *st)
{
	const Troika__V1__ActionRecord **recs;
	size_t n;

	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < g->p.cl->nnodes; i++) {
		const Troika__V1__ActionRecord *own = coord_recovery_open_own(
		    g->p.r, g->p.cl->nodes[i], g->p.cl->check);

		if (own == NULL || own->state !=
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING)
			continue;
		/* A restart waits for the answer the same way. */
		if (strcmp(own->action, "start") == 0 ||
		    strcmp(own->action, "restart") == 0)
			st->joining |= 1u << i;
	}
	n = coord_procedure_read(&g->p, now, &st->ps, &recs);
	for (size_t i = 0; st->ps.proc != NULL && i < n; i++) {
		const Troika__V1__ActionRecord *pb = recs[i];
		int m;

		if (strcmp(pb->procedure, st->ps.proc->id) != 0 ||
		    (m = coord_procedure_member(&g->p, pb->node)) < 0)
			continue;
		if (strcmp(pb->action, "position") == 0) {
			struct galera_position *p = &st->pos[m];
			const char *seq, *safe, *src;

			/* The latest answer counts; a failed one erases. */
			st->asked[m] = pb;
			memset(p, 0, sizeof(*p));
			p->rec = pb;
			if (pb->state !=
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED)
				continue;
			p->uuid = coord_member_field(pb->fields, pb->n_fields,
			    "cluster_uuid");
			seq = coord_member_field(pb->fields, pb->n_fields,
			    "seqno");
			safe = coord_member_field(pb->fields, pb->n_fields,
			    "safe_to_bootstrap");
			p->seqno = seq != NULL ? strtoll(seq, NULL, 10) : -1;
			p->safe = safe != NULL && strcmp(safe, "1") == 0;
			src = coord_member_field(pb->fields, pb->n_fields,
			    "source");
			p->running = src != NULL && strcmp(src, "server") == 0;
		} else if (strcmp(pb->action, "bootstrap") == 0) {
			st->bootstrap = pb;
		} else if (strcmp(pb->action, "start") == 0) {
			st->start[m] = pb;
		}
	}
	/*
	 * Once the procedure started members, a member never asked for its
	 * position was being started by its own recovery then (every other
	 * member is asked first): its own start may have ended since, and
	 * it still has no position.
	 */
	for (size_t i = 0; galera_started(st, g->p.cl->nnodes) &&
	    i < g->p.cl->nnodes; i++)
		if (st->asked[i] == NULL)
			st->joining |= 1u << i;
}

/* End the procedure, with the positions it saw as its facts. */
static void
galera_finish(struct coord_galera *g, const struct galera_state *st,
    int state, int chosen, const char *msg)
{
	const struct coord_cluster *cl = g->p.cl;
	Troika__V1__Label labels[COORD_CONF_MAX_MEMBERS + 1];
	Troika__V1__Label *fields[COORD_CONF_MAX_MEMBERS + 1];
	char values[COORD_CONF_MAX_MEMBERS][160];
	size_t n = 0;

	for (size_t i = 0; i < cl->nnodes; i++) {
		const struct galera_position *p = &st->pos[i];

		if (p->uuid == NULL)
			continue;
		troika__v1__label__init(&labels[n]);
		snprintf(values[n], sizeof(values[n]), "%s:%" PRId64 "%s%s",
		    p->uuid, p->seqno, p->safe ? " safe_to_bootstrap" : "",
		    p->running ? " running" : "");
		labels[n].name = cl->nodes[i];
		labels[n].value = values[n];
		fields[n] = &labels[n];
		n++;
	}
	if (chosen >= 0) {
		troika__v1__label__init(&labels[n]);
		labels[n].name = (char *)(uintptr_t)"bootstrapped";
		labels[n].value = cl->nodes[chosen];
		fields[n] = &labels[n];
		n++;
	}
	coord_procedure_finish(&g->p, st->ps.proc->id, state, fields, n, "%s",
	    msg);
}

/* The member that bootstraps: the most advanced (see the header). */
static int
galera_choose(const struct coord_galera *g, const struct galera_state *st)
{
	int best = -1;

	for (size_t i = 0; i < g->p.cl->nnodes; i++) {
		const struct galera_position *p = &st->pos[i];
		const struct galera_position *b = best >= 0 ? &st->pos[best] :
		    NULL;

		/* A running member needs no restart to be bootstrapped; a
		 * stopped one started beside it cannot be bootstrapped. */
		if (b == NULL || p->seqno > b->seqno)
			best = (int)i;
		else if (p->seqno < b->seqno)
			continue;
		else if (p->running != b->running)
			best = p->running ? (int)i : best;
		else if (p->safe && !b->safe)
			best = (int)i;
	}
	return best;
}

/* Some member's latest result says Primary. */
static int
galera_some_primary(const struct coord_galera *g)
{
	const struct coord_cluster *cl = g->p.cl;

	for (size_t i = 0; i < cl->nnodes; i++) {
		const Troika__V1__CheckResult *r = coord_member_result(g->p.c,
		    cl->nodes[i], cl->check);
		const char *v;

		if (r == NULL || !coord_member_connected(g->p.c, cl->nodes[i]))
			continue;
		v = coord_member_field(r->fields, r->n_fields,
		    "wsrep_cluster_status");
		if (v != NULL && strcmp(v, "Primary") == 0)
			return 1;
	}
	return 0;
}

/* Every member answers OK and none is failed any more. */
static int
galera_all_ok(const struct coord_galera *g)
{
	const struct coord_cluster *cl = g->p.cl;

	for (size_t i = 0; i < cl->nnodes; i++)
		if (!galera_member_ok(g, cl->nodes[i]) ||
		    galera_member_failed(g, cl->nodes[i]))
			return 0;
	return 1;
}

/*
 * Some members run (without a Primary) and some are stopped: start the
 * stopped ones at their positions, without waiting for each to answer (a
 * member that joins a cluster with no Primary does not answer until one
 * forms), then give Galera GALERA_REFORM_MS to re-form the Primary
 * component itself: the members of the last Primary view find each other
 * again (pc.recovery). A member being started by its own recovery counts
 * as running; with one, Galera's time counts from the procedure's start
 * even when nothing is left to start. Returns 1 while that is under way
 * or once it ended the procedure; 0 when nothing but a bootstrap can work
 * (no Primary in time), or when no member runs (the full outage).
 */
static int
galera_rejoin(struct coord_galera *g, const struct galera_state *st,
    uint64_t now)
{
	const struct coord_cluster *cl = g->p.cl;
	char *nowait[] = { (char *)(uintptr_t)"nowait" };
	uint64_t last = 0, wait;
	size_t nrun = 0;
	char why[512];

	for (size_t i = 0; i < cl->nnodes; i++)
		nrun += st->pos[i].running != 0 || galera_joining(st, i);
	if (nrun == 0)
		return 0;
	/* A member's own start in flight: Galera's time counts from here. */
	if (st->joining != 0)
		last = st->ps.proc->started_unix_nano;
	if (nrun == cl->nnodes && st->joining == 0) {
		/* Nothing crashed: a partition is likelier, and a member
		 * bootstrapped now could face the others re-forming their
		 * own Primary component when it heals. */
		snprintf(why, sizeof(why), "every member of cluster %s runs, "
		    "none is Primary: no bootstrap; an operator decides",
		    cl->name);
		galera_finish(g, st,
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED, -1, why);
		return 1;
	}
	for (size_t i = 0; i < cl->nnodes; i++) {
		const Troika__V1__ActionRecord *s = st->start[i];

		if (st->pos[i].running || galera_joining(st, i))
			continue;
		if (s == NULL) {
			if (!coord_agent_connected(g->p.c, cl->nodes[i])) {
				coord_procedure_wake_in(&g->p,
				    (uint64_t)cl->retry_ms * GALERA_NS_PER_MS);
				return 1;
			}
			snprintf(why, sizeof(why), "%zu of %zu members run "
			    "without a Primary: %s starts at its position, so "
			    "that the members of the last Primary component "
			    "find each other again", nrun, cl->nnodes,
			    cl->nodes[i]);
			coord_procedure_begin(&g->p, st->ps.proc->id,
			    cl->nodes[i], "start", nowait, 1, why);
			return 1;
		}
		if (s->state !=
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED) {
			snprintf(why, sizeof(why), "%s did not start: %s",
			    cl->nodes[i], s->message);
			galera_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED, -1,
			    why);
			return 1;
		}
		if (s->ended_unix_nano > last)
			last = s->ended_unix_nano;
	}
	if (galera_all_ok(g)) {
		snprintf(why, sizeof(why), "the Primary component re-formed "
		    "by itself: no bootstrap; all %zu members answer",
		    cl->nnodes);
		galera_finish(g, st,
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED, -1, why);
		return 1;
	}
	wait = (uint64_t)(cl->retry_ms > GALERA_REFORM_MS ? cl->retry_ms :
	    GALERA_REFORM_MS) * GALERA_NS_PER_MS;
	/* Formed: the others are joining it. Opinions and this
	 * coordinator's view change apart: look again in a second. */
	if (galera_some_primary(g) || now < last + wait) {
		uint64_t in = 1000 * GALERA_NS_PER_MS;

		if (!galera_some_primary(g) && last + wait - now < in)
			in = last + wait - now;
		coord_procedure_wake_in(&g->p, in);
		return 1;
	}
	return 0;
}

/*
 * Whether bootstrapping `best` after the members were started could make
 * a second Primary component, or cannot work; why says so. A running
 * member is bootstrapped in place only when its component holds every
 * member (its latest result's wsrep_cluster_size): then all of them join
 * it, and none is left to re-form a Primary elsewhere. A started member
 * that does not answer cannot be bootstrapped without a restart.
 */
static int
galera_unsafe(const struct coord_galera *g, const struct galera_state *st,
    int best, char *why, size_t len)
{
	const struct coord_cluster *cl = g->p.cl;
	const Troika__V1__CheckResult *r;
	const char *size;

	if (!galera_started(st, cl->nnodes))
		return 0;
	if (!st->pos[best].running) {
		snprintf(why, len, "the most advanced member, %s, was started "
		    "and no Primary formed: its bootstrap would need a "
		    "restart; an operator decides", cl->nodes[best]);
		return 1;
	}
	r = coord_member_result(g->p.c, cl->nodes[best], cl->check);
	size = r != NULL ? coord_member_field(r->fields, r->n_fields,
	    "wsrep_cluster_size") : NULL;
	if (size == NULL || strtoll(size, NULL, 10) < (long long)cl->nnodes) {
		snprintf(why, len, "no Primary re-formed, and the component "
		    "of the most advanced member, %s, holds %s of %zu "
		    "members: no bootstrap in place while one may be apart; "
		    "an operator decides", cl->nodes[best],
		    size != NULL ? size : "an unknown number", cl->nnodes);
		return 1;
	}
	return 0;
}

/* Before the bootstrap: positions, then the choice. */
static void
galera_decide(struct coord_galera *g, const struct galera_state *st,
    uint64_t now)
{
	const struct coord_cluster *cl = g->p.cl;
	char *in_place[] = { (char *)(uintptr_t)"in-place" };
	char why[512];
	int best;

	/* A member answering ends it all: no bootstrap is needed (once
	 * members were started, galera_rejoin waits for all of them). */
	for (size_t i = 0; !galera_started(st, cl->nnodes) &&
	    i < cl->nnodes; i++)
		if (galera_member_ok(g, cl->nodes[i]) &&
		    !galera_member_failed(g, cl->nodes[i])) {
			snprintf(why, sizeof(why), "%s answers again: no "
			    "bootstrap needed", cl->nodes[i]);
			galera_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED, -1,
			    why);
			return;
		}
	snprintf(why, sizeof(why), "cluster %s has no Primary: the position "
	    "of every member decides which one bootstraps", cl->name);
	/* A lost member is not counted out: its position may be the
	 * most advanced. */
	if (coord_procedure_collect(&g->p, st->ps.proc, st->asked,
	    st->joining, 0, "position", "no Primary, and no bootstrap until "
	    "every member's position is known", why, now))
		return;
	for (size_t i = 0; i < cl->nnodes; i++)
		if (!galera_joining(st, i) && st->pos[i].uuid == NULL) {
			snprintf(why, sizeof(why), "the position of %s names "
			    "no cluster uuid: no bootstrap; an operator "
			    "decides", cl->nodes[i]);
			galera_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED, -1,
			    why);
			return;
		}
	for (size_t i = 0, k = SIZE_MAX; i < cl->nnodes; i++) {
		if (galera_joining(st, i))
			continue;
		if (k == SIZE_MAX) {
			k = i; /* the first member with a position */
			continue;
		}
		if (strcmp(st->pos[i].uuid, st->pos[k].uuid) != 0) {
			snprintf(why, sizeof(why), "the members name different "
			    "clusters (%s: %s, %s: %s): no bootstrap; an "
			    "operator decides", cl->nodes[k], st->pos[k].uuid,
			    cl->nodes[i], st->pos[i].uuid);
			galera_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED, -1,
			    why);
			return;
		}
	}
	for (size_t i = 0; i < cl->nnodes; i++)
		if (!galera_joining(st, i) && st->pos[i].seqno < 0) {
			snprintf(why, sizeof(why), "the position of %s is not "
			    "known (seqno %" PRId64 "): no bootstrap; an "
			    "operator decides", cl->nodes[i], st->pos[i].seqno);
			galera_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED, -1,
			    why);
			return;
		}
	if (galera_rejoin(g, st, now))
		return;
	for (size_t i = 0; i < cl->nnodes; i++)
		if (galera_joining(st, i)) {
			snprintf(why, sizeof(why), "no Primary re-formed, and "
			    "%s, started by its own recovery, has no known "
			    "position: no bootstrap; an operator decides",
			    cl->nodes[i]);
			galera_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED, -1,
			    why);
			return;
		}
	best = galera_choose(g, st);
	if (galera_unsafe(g, st, best, why, sizeof(why))) {
		galera_finish(g, st,
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED, -1, why);
		return;
	}
	snprintf(why, sizeof(why), "%sthe most advanced member: %s at %s:%"
	    PRId64 "%s", galera_started(st, cl->nnodes) ? "no Primary "
	    "re-formed after the stopped members started; " : "",
	    cl->nodes[best], st->pos[best].uuid, st->pos[best].seqno,
	    st->pos[best].running ? " (running: bootstrapped in place)" : "");
	for (size_t i = 0; i < cl->nnodes; i++)
		if ((int)i != best)
			snprintf(why + strlen(why), sizeof(why) - strlen(why),
			    "; %s at %" PRId64, cl->nodes[i], st->pos[i].seqno);
	coord_procedure_begin(&g->p, st->ps.proc->id, cl->nodes[best],
	    "bootstrap", st->pos[best].running ? in_place : NULL,
	    st->pos[best].running ? 1 : 0, why);
}

static void
galera_step(struct coord_galera *g, const struct galera_state *st,
    uint64_t now)
{
	const struct coord_cluster *cl = g->p.cl;
	char why[512];
	int best;

	if (st->ps.running != NULL)
		return; /* its end brings us back */
	if (st->ps.locked != NULL) {
		snprintf(why, sizeof(why), "step %s (%s on %s) has no known "
		    "outcome: look at the cluster, then acknowledge",
		    st->ps.locked->id, st->ps.locked->action,
		    st->ps.locked->node);
		galera_finish(g, st,
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED, -1, why);
		return;
	}
	if (st->bootstrap == NULL) {
		galera_decide(g, st, now);
		return;
	}
	best = coord_procedure_member(&g->p, st->bootstrap->node);
	if (st->bootstrap->state !=
	    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED) {
		snprintf(why, sizeof(why), "the bootstrap of %s failed: %s",
		    st->bootstrap->node, st->bootstrap->message);
		galera_finish(g, st,
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED, best, why);
		return;
	}
	for (size_t i = 0; i < cl->nnodes; i++) {
		const Troika__V1__ActionRecord *s = st->start[i];

		/* A running member is connected to the bootstrapped one
		 * and joins it by itself. */
		if ((int)i == best || st->pos[i].running || (s != NULL &&
		    s->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED))
			continue;
		if (s != NULL) {
			snprintf(why, sizeof(why), "%s was bootstrapped, but %s "
			    "did not start: %s", cl->nodes[best], cl->nodes[i],
			    s->message);
			galera_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED, best,
			    why);
			return;
		}
		if (galera_member_ok(g, cl->nodes[i]))
			continue; /* it came back by itself */
		if (!coord_agent_connected(g->p.c, cl->nodes[i])) {
			coord_procedure_wake_in(&g->p,
			    (uint64_t)cl->retry_ms * GALERA_NS_PER_MS);
			return;
		}
		snprintf(why, sizeof(why), "%s was bootstrapped: %s joins it",
		    cl->nodes[best], cl->nodes[i]);
		coord_procedure_begin(&g->p, st->ps.proc->id, cl->nodes[i],
		    "start", NULL, 0, why);
		return;
	}
	/* Every member runs: done once every one answers. Opinions and
	 * this coordinator's view change apart: look again in a second. */
	if (!galera_all_ok(g)) {
		coord_procedure_wake_in(&g->p, 1000 * GALERA_NS_PER_MS);
		return;
	}
	snprintf(why, sizeof(why), "bootstrapped from %s; all %zu members "
	    "answer", cl->nodes[best], cl->nnodes);
	galera_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED,
	    best, why);
}

static int
galera_proc_open(const struct galera_state *st)
{
	return st->ps.proc != NULL && coord_recovery_record_open(st->ps.proc);
}

void
coord_galera_evaluate(struct coord_galera *g)
{
	const struct coord_cluster *cl = g->p.cl;
	struct galera_state st;
	uint64_t now = coord_now_ns();
	char why[512];

	if (!coord_procedure_may_act(&g->p))
		return;
	galera_read(g, now, &st);
	if (st.ps.proc != NULL && st.ps.proc->state ==
	    TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING) {
		galera_step(g, &st, now);
		return;
	}
	if (galera_proc_open(&st))
		return; /* LOCKED: an operator acknowledges it first */
	/* A procedure starts only when no member answers. */
	for (size_t i = 0; i < cl->nnodes; i++)
		if (!galera_member_failed(g, cl->nodes[i])) {
			g->p.escalated = 0;
			return;
		}
	/* A member being started already is left to its start: the
	 * procedure starts the others it needs (the staggered failure). */
	if (!coord_procedure_may_start(&g->p, &st.ps, now, "bootstrap it",
	    st.joining))
		return;
	snprintf(why, sizeof(why), "no member of cluster %s answers: every "
	    "one has failed by quorum", cl->name);
	coord_procedure_begin(&g->p, "", "", COORD_GALERA_PROCEDURE, NULL, 0,
	    why);
}

/*
 * Member i, in a result after `since`, answers as part of a Primary
 * component that has let a failed member go (fewer than all members), or
 * that still counts every member `settle` after `since` (the failed one is
 * alive to Galera: hung, say, not gone).
 */
static int
galera_primary_since(const struct coord_galera *g, size_t i, uint64_t since,
    uint64_t settle)
{
	const struct coord_cluster *cl = g->p.cl;
	const Troika__V1__CheckResult *r = coord_member_result(g->p.c,
	    cl->nodes[i], cl->check);
	uint64_t at = coord_member_result_at(g->p.c, cl->nodes[i], cl->check);
	const char *status, *size;

	if (r == NULL || at <= since ||
	    !coord_member_connected(g->p.c, cl->nodes[i]))
		return 0;
	status = coord_member_field(r->fields, r->n_fields,
	    "wsrep_cluster_status");
	size = coord_member_field(r->fields, r->n_fields, "wsrep_cluster_size");
	if (status == NULL || strcmp(status, "Primary") != 0)
		return 0;
	if (size != NULL && strtoll(size, NULL, 10) < (long long)cl->nnodes)
		return 1;
	return at > since + settle;
}

int
coord_galera_holds(struct coord_galera *g, const char *node,
    uint64_t verdict_ns, char *why, size_t len)
{
	const struct coord_cluster *cl = g->p.cl;
	struct galera_state st;
	int others_failed = 0;

	galera_read(g, coord_now_ns(), &st);
	if (galera_proc_open(&st)) {
		snprintf(why, len, "cluster %s's procedure %s is %s: it "
		    "recovers the members", cl->name, st.ps.proc->id,
		    st.ps.proc->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED ? "locked" :
		    "running");
		return 1;
	}
	for (size_t i = 0; i < cl->nnodes; i++)
		if (strcmp(cl->nodes[i], node) != 0 &&
		    galera_member_failed(g, cl->nodes[i]))
			others_failed = 1;
	for (size_t i = 0; i < cl->nnodes; i++) {
		if (strcmp(cl->nodes[i], node) == 0)
			continue;
		if (!others_failed && galera_member_ok(g, cl->nodes[i]) &&
		    coord_member_result_at(g->p.c, cl->nodes[i], cl->check) >
		    verdict_ns)
			return 0;
		/*
		 * Two failed: a survivor's OK may be from before Galera
		 * noticed, and it may be about to lose its Primary; a member
		 * started into a cluster with none waits for one and never
		 * answers. Only a Primary seen without the failed ones counts.
		 */
		if (others_failed && galera_primary_since(g, i, verdict_ns,
		    (uint64_t)GALERA_SETTLE_MS * GALERA_NS_PER_MS))
			return 0;
	}
	if (others_failed)
		snprintf(why, len, "another member of cluster %s has failed "
		    "too, and no member has answered as a Primary without "
		    "them since %s failed: started now, it may have nothing to "
		    "join", cl->name, node);
	else
		snprintf(why, len, "no other member of cluster %s has answered "
		    "since %s failed: alone it has nothing to join", cl->name,
		    node);
	return 1;
}

void
coord_galera_status(struct coord_galera *g, Troika__V1__ClusterStatus *cs)
{
	struct galera_state st;

	galera_read(g, coord_now_ns(), &st);
	cs->name = g->p.cl->name;
	cs->kind = (char *)(uintptr_t)coord_cluster_kind_str(g->p.cl->kind);
	if (st.ps.proc != NULL) {
		cs->procedure_id = st.ps.proc->id;
		cs->procedure_state = st.ps.proc->state;
	}
}

static void
galera_evaluate_cb(void *arg)
{
	coord_galera_evaluate(arg);
}

struct coord_galera *
coord_galera_new(struct coord *c, struct coord_recovery *r,
    const struct coord_cluster *cl)
{
	struct coord_galera *g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	if (coord_procedure_init(&g->p, c, r, cl, COORD_GALERA_PROCEDURE,
	    galera_evaluate_cb, g) < 0) {
		coord_galera_free(g);
		return NULL;
	}
	return g;
}

void
coord_galera_reset(struct coord_galera *g)
{
	coord_procedure_reset(&g->p);
}

void
coord_galera_free(struct coord_galera *g)
{
	if (g == NULL)
		return;
	coord_procedure_clear(&g->p);
	free(g);
}
