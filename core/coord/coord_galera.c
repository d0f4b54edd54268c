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

struct coord_galera {
	struct coord_procedure p;
};

struct galera_position {
	const Troika__V1__ActionRecord *rec; /* the latest position step */
	const char *uuid;
	int64_t seqno;
	int safe;               /* safe_to_bootstrap: 1 */
};

/* What the records say about the cluster's procedure. */
struct galera_state {
	struct coord_procedure_state ps;
	const Troika__V1__ActionRecord *asked[COORD_CONF_MAX_MEMBERS];
	struct galera_position pos[COORD_CONF_MAX_MEMBERS];
	const Troika__V1__ActionRecord *bootstrap;
	const Troika__V1__ActionRecord *start[COORD_CONF_MAX_MEMBERS];
};

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

static void
galera_read(struct coord_galera *g, uint64_t now, struct galera_state *st)
{
	const Troika__V1__ActionRecord **recs;
	size_t n;

	memset(st, 0, sizeof(*st));
	n = coord_procedure_read(&g->p, now, &st->ps, &recs);
	for (size_t i = 0; st->ps.proc != NULL && i < n; i++) {
		const Troika__V1__ActionRecord *pb = recs[i];
		int m;

		if (strcmp(pb->procedure, st->ps.proc->id) != 0 ||
		    (m = coord_procedure_member(&g->p, pb->node)) < 0)
			continue;
		if (strcmp(pb->action, "position") == 0) {
			struct galera_position *p = &st->pos[m];
			const char *seq, *safe;

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
		} else if (strcmp(pb->action, "bootstrap") == 0) {
			st->bootstrap = pb;
		} else if (strcmp(pb->action, "start") == 0) {
			st->start[m] = pb;
		}
	}
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
		snprintf(values[n], sizeof(values[n]), "%s:%" PRId64 "%s",
		    p->uuid, p->seqno, p->safe ? " safe_to_bootstrap" : "");
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

		if (best < 0 || p->seqno > st->pos[best].seqno ||
		    (p->seqno == st->pos[best].seqno && p->safe &&
		    !st->pos[best].safe))
			best = (int)i;
	}
	return best;
}

/* Before the bootstrap: positions, then the choice. */
static void
galera_decide(struct coord_galera *g, const struct galera_state *st,
    uint64_t now)
{
	const struct coord_cluster *cl = g->p.cl;
	char why[512];
	int best;

	/* A member answering ends it all: no bootstrap is needed. */
	for (size_t i = 0; i < cl->nnodes; i++)
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
	if (coord_procedure_collect(&g->p, st->ps.proc, st->asked, -1, 0,
	    "position", "no Primary, and no bootstrap until every member's "
	    "position is known", why, now))
		return;
	for (size_t i = 0; i < cl->nnodes; i++)
		if (st->pos[i].uuid == NULL) {
			snprintf(why, sizeof(why), "the position of %s names "
			    "no cluster uuid: no bootstrap; an operator "
			    "decides", cl->nodes[i]);
			galera_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED, -1,
			    why);
			return;
		}
	for (size_t i = 1; i < cl->nnodes; i++)
		if (strcmp(st->pos[i].uuid, st->pos[0].uuid) != 0) {
			snprintf(why, sizeof(why), "the members name different "
			    "clusters (%s: %s, %s: %s): no bootstrap; an "
			    "operator decides", cl->nodes[0], st->pos[0].uuid,
			    cl->nodes[i], st->pos[i].uuid);
			galera_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED, -1,
			    why);
			return;
		}
	for (size_t i = 0; i < cl->nnodes; i++)
		if (st->pos[i].seqno < 0) {
			snprintf(why, sizeof(why), "the position of %s is not "
			    "known (seqno %" PRId64 "): no bootstrap; an "
			    "operator decides", cl->nodes[i], st->pos[i].seqno);
			galera_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED, -1,
			    why);
			return;
		}
	best = galera_choose(g, st);
	snprintf(why, sizeof(why), "the most advanced member: %s at %s:%"
	    PRId64, cl->nodes[best], st->pos[best].uuid, st->pos[best].seqno);
	for (size_t i = 0; i < cl->nnodes; i++)
		if ((int)i != best)
			snprintf(why + strlen(why), sizeof(why) - strlen(why),
			    "; %s at %" PRId64, cl->nodes[i], st->pos[i].seqno);
	coord_procedure_begin(&g->p, st->ps.proc->id, cl->nodes[best],
	    "bootstrap", NULL, 0, why);
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

		if ((int)i == best || (s != NULL && s->state ==
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
	for (size_t i = 0; i < cl->nnodes; i++)
		if (!galera_member_ok(g, cl->nodes[i]) ||
		    galera_member_failed(g, cl->nodes[i])) {
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
	if (!coord_procedure_may_start(&g->p, &st.ps, now, "bootstrap it"))
		return;
	snprintf(why, sizeof(why), "no member of cluster %s answers: every "
	    "one has failed by quorum", cl->name);
	coord_procedure_begin(&g->p, "", "", COORD_GALERA_PROCEDURE, NULL, 0,
	    why);
}

int
coord_galera_holds(struct coord_galera *g, const char *node,
    uint64_t verdict_ns, char *why, size_t len)
{
	const struct coord_cluster *cl = g->p.cl;
	struct galera_state st;

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
		    galera_member_ok(g, cl->nodes[i]) &&
		    coord_member_result_at(g->p.c, cl->nodes[i], cl->check) >
		    verdict_ns)
			return 0;
	snprintf(why, len, "no other member of cluster %s has answered since "
	    "%s failed: alone it has nothing to join", cl->name, node);
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
