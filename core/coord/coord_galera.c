/*
 * coord_galera: the Galera full-outage procedure (coord_galera.h has the
 * rules). Everything decided here is read from the action records each
 * time; the state kept in struct coord_galera is only what must not be
 * repeated (a write in progress, an alert already given) and a timer.
 */
#include "coord_galera.h"

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

#define GALERA_NS_PER_MS 1000000ULL

struct coord_galera {
	struct coord *c;
	struct coord_recovery *r;
	const struct coord_cluster *cl;
	struct event *wake;
	int starting;           /* a record is being written */
	/* Alerts given for the procedure alerted_for (one per member). */
	char alerted_for[64];
	unsigned alerted;       /* bit per member */
	int escalated;          /* max_attempts reached, said once */
};

/* What the records say about the cluster's procedure. */
struct galera_position {
	const Troika__V1__ActionRecord *rec; /* the latest position step */
	const char *uuid;
	int64_t seqno;
	int safe;               /* safe_to_bootstrap: 1 */
};

struct galera_state {
	const Troika__V1__ActionRecord *proc;   /* latest procedure, or NULL */
	const Troika__V1__ActionRecord *running; /* a step in flight */
	const Troika__V1__ActionRecord *locked;  /* a step locked */
	const Troika__V1__ActionRecord *bootstrap; /* the bootstrap step */
	struct galera_position pos[COORD_CONF_MAX_MEMBERS];
	const Troika__V1__ActionRecord *start[COORD_CONF_MAX_MEMBERS];
	unsigned procs_in_window;
	uint64_t last_proc_end;
};

static uint64_t
galera_ns(int64_t ms)
{
	return (uint64_t)ms * GALERA_NS_PER_MS;
}

static int
galera_member(const struct coord_cluster *cl, const char *node)
{
	for (size_t i = 0; i < cl->nnodes; i++)
		if (strcmp(cl->nodes[i], node) == 0)
			return (int)i;
	return -1;
}

/* The member answers OK to this coordinator now. */
static int
galera_member_ok(const struct coord_galera *g, const char *node)
{
	return coord_member_ok(g->c, node, g->cl->check);
}

static int
galera_member_failed(const struct coord_galera *g, const char *node)
{
	return coord_member_failed(g->c, node, g->cl->check);
}

static int
galera_is_proc(const struct coord_galera *g, const Troika__V1__ActionRecord *pb)
{
	return pb->node[0] == '\0' && strcmp(pb->cluster, g->cl->name) == 0 &&
	    strcmp(pb->action, COORD_GALERA_PROCEDURE) == 0;
}

static int
galera_open(const Troika__V1__ActionRecord *pb)
{
	return pb->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING ||
	    pb->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED;
}

static void
galera_read(const struct coord_galera *g, uint64_t now, struct galera_state *st)
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

		if (!galera_is_proc(g, pb))
			continue;
		st->proc = pb;
		if (pb->started_unix_nano + galera_ns(pol->window_ms) >= now)
			st->procs_in_window++;
		if (!galera_open(pb) && end > st->last_proc_end)
			st->last_proc_end = end;
	}
	if (st->proc == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		const Troika__V1__ActionRecord *pb = recs[i];
		int m;

		if (strcmp(pb->procedure, st->proc->id) != 0 ||
		    (m = galera_member(g->cl, pb->node)) < 0)
			continue;
		if (pb->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING)
			st->running = pb;
		else if (pb->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED)
			st->locked = pb;
		if (strcmp(pb->action, "position") == 0) {
			struct galera_position *p = &st->pos[m];
			const char *seq, *safe;

			/* The latest answer counts; a failed one erases. */
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

static void
galera_wake_in(struct coord_galera *g, uint64_t ns)
{
	struct timeval tv;

	ns += 10 * GALERA_NS_PER_MS;
	tv.tv_sec = (time_t)(ns / 1000000000ULL);
	tv.tv_usec = (suseconds_t)(ns % 1000000000ULL / 1000);
	evtimer_add(g->wake, &tv);
}

static void
galera_begun(int ok, void *arg)
{
	struct coord_galera *g = arg;

	g->starting = 0;
	/* Written: the next move is decided from the loop, at once. */
	galera_wake_in(g, ok ? 0 : galera_ns(g->cl->retry_ms));
}

/* One record: the procedure (node "") or one of its steps. */
static void
galera_begin(struct coord_galera *g, const char *proc, const char *node,
    const char *action, const char *reason)
{
	const struct coord_policy *pol = coord_conf_policy(g->c->conf,
	    g->cl->check);
	struct coord_recovery_step s = {
		.node = node, .check = g->cl->check, .action = action,
		.procedure = proc, .cluster = g->cl->name, .reason = reason,
		.timeout_ns = node[0] == '\0' ? galera_ns(g->cl->timeout_ms) :
		    galera_ns(pol->action_timeout_ms),
	};
	int rc;

	g->starting = 1;
	if ((rc = coord_recovery_begin(g->r, &s, galera_begun, g)) < 0) {
		g->starting = 0;
		log_warnx("cluster %s: cannot write the record of %s: %s",
		    g->cl->name, action, strerror(-rc));
		galera_wake_in(g, galera_ns(g->cl->retry_ms));
	}
}

static void
galera_finish(struct coord_galera *g, const struct galera_state *st,
    int state, int chosen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* End the procedure, with the positions it saw as its facts. */
static void
galera_finish(struct coord_galera *g, const struct galera_state *st,
    int state, int chosen, const char *fmt, ...)
{
	Troika__V1__Label labels[COORD_CONF_MAX_MEMBERS + 1];
	Troika__V1__Label *fields[COORD_CONF_MAX_MEMBERS + 1];
	char values[COORD_CONF_MAX_MEMBERS][160], msg[512];
	size_t n = 0;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < g->cl->nnodes; i++) {
		const struct galera_position *p = &st->pos[i];

		if (p->uuid == NULL)
			continue;
		troika__v1__label__init(&labels[n]);
		snprintf(values[n], sizeof(values[n]), "%s:%" PRId64 "%s",
		    p->uuid, p->seqno, p->safe ? " safe_to_bootstrap" : "");
		labels[n].name = g->cl->nodes[i];
		labels[n].value = values[n];
		fields[n] = &labels[n];
		n++;
	}
	if (chosen >= 0) {
		troika__v1__label__init(&labels[n]);
		labels[n].name = (char *)(uintptr_t)"bootstrapped";
		labels[n].value = g->cl->nodes[chosen];
		fields[n] = &labels[n];
		n++;
	}
	/* Nothing else starts until the record is written. */
	g->starting = 1;
	if ((rc = coord_recovery_finish(g->r, st->proc->id, state, msg, fields,
	    n, galera_begun, g)) < 0) {
		g->starting = 0;
		log_warnx("cluster %s: procedure %s not ended: %s",
		    g->cl->name, st->proc->id, strerror(-rc));
	}
}

/* The member that bootstraps: the most advanced (see the header). */
static int
galera_choose(const struct coord_galera *g, const struct galera_state *st)
{
	int best = -1;

	for (size_t i = 0; i < g->cl->nnodes; i++) {
		const struct galera_position *p = &st->pos[i];

		if (best < 0 || p->seqno > st->pos[best].seqno ||
		    (p->seqno == st->pos[best].seqno && p->safe &&
		    !st->pos[best].safe))
			best = (int)i;
	}
	return best;
}

static void
galera_alert(struct coord_galera *g, const struct galera_state *st, int m,
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
	    g->cl->check, f, 2, "cluster %s has no Primary and will not be "
	    "bootstrapped until every member's position is known: %s; "
	    "asking again in %" PRId64 " ms", g->cl->name, why,
	    g->cl->retry_ms);
}

/* Positions: ask the next member that has none; 1 while collecting. */
static int
galera_collect(struct coord_galera *g, const struct galera_state *st,
    uint64_t now)
{
	uint64_t retry = galera_ns(g->cl->retry_ms), soonest = 0;
	int missing = 0;

	for (size_t i = 0; i < g->cl->nnodes; i++) {
		const struct galera_position *p = &st->pos[i];
		const char *node = g->cl->nodes[i];
		char why[256];

		if (p->uuid != NULL)
			continue;
		missing = 1;
		if (p->rec != NULL) {
			uint64_t end = p->rec->ended_unix_nano;

			snprintf(why, sizeof(why), "position of %s: %s", node,
			    p->rec->message);
			galera_alert(g, st, (int)i, why);
			if (now < end + retry) {
				if (soonest == 0 || end + retry < soonest)
					soonest = end + retry;
				continue;
			}
		}
		if (!coord_agent_connected(g->c, node)) {
			snprintf(why, sizeof(why), "position of %s: its agent "
			    "has no stream to the leader", node);
			galera_alert(g, st, (int)i, why);
			if (soonest == 0 || now + retry < soonest)
				soonest = now + retry;
			continue;
		}
		snprintf(why, sizeof(why), "cluster %s has no Primary: the "
		    "position of every member decides which one bootstraps",
		    g->cl->name);
		galera_begin(g, st->proc->id, node, "position", why);
		return 1;
	}
	if (missing && soonest != 0)
		galera_wake_in(g, soonest > now ? soonest - now : 0);
	return missing;
}

static void
galera_step(struct coord_galera *g, const struct galera_state *st,
    uint64_t now)
{
	const struct coord_cluster *cl = g->cl;
	char why[512];
	int best;

	if (st->running != NULL)
		return; /* its end brings us back */
	if (st->locked != NULL) {
		galera_finish(g, st,
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED, -1,
		    "step %s (%s on %s) has no known outcome: look at the "
		    "cluster, then acknowledge", st->locked->id,
		    st->locked->action, st->locked->node);
		return;
	}
	if (st->bootstrap == NULL) {
		/* Before the bootstrap, a member answering ends it all. */
		for (size_t i = 0; i < cl->nnodes; i++)
			if (galera_member_ok(g, cl->nodes[i]) &&
			    !galera_member_failed(g, cl->nodes[i])) {
				galera_finish(g, st,
				    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED,
				    -1, "%s answers again: no bootstrap needed",
				    cl->nodes[i]);
				return;
			}
		if (galera_collect(g, st, now))
			return;
		for (size_t i = 1; i < cl->nnodes; i++)
			if (strcmp(st->pos[i].uuid, st->pos[0].uuid) != 0) {
				galera_finish(g, st,
				    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED,
				    -1, "the members name different clusters "
				    "(%s: %s, %s: %s): no bootstrap; an operator "
				    "decides", cl->nodes[0], st->pos[0].uuid,
				    cl->nodes[i], st->pos[i].uuid);
				return;
			}
		for (size_t i = 0; i < cl->nnodes; i++)
			if (st->pos[i].seqno < 0) {
				galera_finish(g, st,
				    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED,
				    -1, "the position of %s is not known (seqno "
				    "%" PRId64 "): no bootstrap; an operator "
				    "decides", cl->nodes[i], st->pos[i].seqno);
				return;
			}
		best = galera_choose(g, st);
		snprintf(why, sizeof(why), "the most advanced member: %s at "
		    "%s:%" PRId64, cl->nodes[best], st->pos[best].uuid,
		    st->pos[best].seqno);
		for (size_t i = 0; i < cl->nnodes; i++)
			if ((int)i != best)
				snprintf(why + strlen(why), sizeof(why) -
				    strlen(why), "; %s at %" PRId64,
				    cl->nodes[i], st->pos[i].seqno);
		galera_begin(g, st->proc->id, cl->nodes[best], "bootstrap",
		    why);
		return;
	}
	best = galera_member(cl, st->bootstrap->node);
	if (st->bootstrap->state !=
	    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED) {
		galera_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED,
		    best, "the bootstrap of %s failed: %s", st->bootstrap->node,
		    st->bootstrap->message);
		return;
	}
	for (size_t i = 0; i < cl->nnodes; i++) {
		const Troika__V1__ActionRecord *s = st->start[i];

		if ((int)i == best || (s != NULL && s->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED))
			continue;
		if (s != NULL) {
			galera_finish(g, st,
			    TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED, best,
			    "%s was bootstrapped, but %s did not start: %s",
			    cl->nodes[best], cl->nodes[i], s->message);
			return;
		}
		if (galera_member_ok(g, cl->nodes[i]))
			continue; /* it came back by itself */
		if (!coord_agent_connected(g->c, cl->nodes[i])) {
			galera_wake_in(g, galera_ns(cl->retry_ms));
			return;
		}
		snprintf(why, sizeof(why), "%s was bootstrapped: %s joins it",
		    cl->nodes[best], cl->nodes[i]);
		galera_begin(g, st->proc->id, cl->nodes[i], "start", why);
		return;
	}
	/* Every member runs: done once every one answers. Opinions and
	 * this coordinator's view change apart: look again in a second. */
	for (size_t i = 0; i < cl->nnodes; i++)
		if (!galera_member_ok(g, cl->nodes[i]) ||
		    galera_member_failed(g, cl->nodes[i])) {
			galera_wake_in(g, 1000 * GALERA_NS_PER_MS);
			return;
		}
	galera_finish(g, st, TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED,
	    best, "bootstrapped from %s; all %zu members answer", cl->nodes[best],
	    cl->nnodes);
}

void
coord_galera_evaluate(struct coord_galera *g)
{
	const struct coord_cluster *cl = g->cl;
	const struct coord_policy *pol;
	struct galera_state st;
	uint64_t now = coord_now_ns();
	char why[512];

	if (g->starting || !coord_recovery_deciding(g->r))
		return;
	galera_read(g, now, &st);
	if (st.proc != NULL && st.proc->state ==
	    TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING) {
		galera_step(g, &st, now);
		return;
	}
	if (st.proc != NULL && galera_open(st.proc))
		return; /* LOCKED: an operator acknowledges it first */
	/* A procedure starts only when no member answers. */
	for (size_t i = 0; i < cl->nnodes; i++)
		if (!galera_member_failed(g, cl->nodes[i])) {
			g->escalated = 0;
			return;
		}
	/* An operator working on a member decides for the cluster too. */
	for (size_t i = 0; i < cl->nnodes; i++)
		if (coord_recovery_in_maintenance(g->r, cl->nodes[i],
		    cl->check)) {
			galera_wake_in(g, 1000 * GALERA_NS_PER_MS);
			return;
		}
	/*
	 * A member's own start, begun while another member still seemed to
	 * answer, ends first (it fails with nothing to join, or times out):
	 * its end brings us back. Never two moves on one member.
	 */
	for (size_t i = 0; i < cl->nnodes; i++)
		if (coord_recovery_busy(g->r, cl->nodes[i], cl->check))
			return;
	pol = coord_conf_policy(g->c->conf, cl->check);
	if (st.last_proc_end != 0 && now < st.last_proc_end +
	    galera_ns(pol->backoff_ms)) {
		galera_wake_in(g, st.last_proc_end + galera_ns(pol->backoff_ms) -
		    now);
		return;
	}
	if (st.procs_in_window >= (unsigned)pol->max_attempts) {
		const char *const f[] = { "cluster", cl->name };

		if (!g->escalated)
			coord_events_emit(g->c, "recovery_escalated",
			    TROIKA__V1__SEVERITY__SEVERITY_CRITICAL, NULL,
			    cl->check, f, 1, "cluster %s has no Primary and "
			    "troika will not bootstrap it again: max_attempts "
			    "(%d) reached in the window; an operator is needed",
			    cl->name, pol->max_attempts);
		g->escalated = 1;
		return;
	}
	snprintf(why, sizeof(why), "no member of cluster %s answers: every "
	    "one has failed by quorum", cl->name);
	galera_begin(g, "", "", COORD_GALERA_PROCEDURE, why);
}

int
coord_galera_holds(const struct coord_galera *g, const char *node, char *why,
    size_t len)
{
	const Troika__V1__ActionRecord **recs;
	size_t n = coord_recovery_records(g->r, &recs);

	for (size_t i = n; i > 0; i--)
		if (galera_is_proc(g, recs[i - 1])) {
			if (galera_open(recs[i - 1])) {
				snprintf(why, len, "cluster %s's procedure %s "
				    "is %s: it recovers the members",
				    g->cl->name, recs[i - 1]->id,
				    recs[i - 1]->state ==
				    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED ?
				    "locked" : "running");
				return 1;
			}
			break;
		}
	for (size_t i = 0; i < g->cl->nnodes; i++)
		if (strcmp(g->cl->nodes[i], node) != 0 &&
		    galera_member_ok(g, g->cl->nodes[i]))
			return 0;
	snprintf(why, len, "no other member of cluster %s answers: %s alone "
	    "has nothing to join", g->cl->name, node);
	return 1;
}

void
coord_galera_status(struct coord_galera *g, Troika__V1__ClusterStatus *cs)
{
	struct galera_state st;

	galera_read(g, coord_now_ns(), &st);
	cs->name = g->cl->name;
	cs->kind = (char *)(uintptr_t)coord_cluster_kind_str(g->cl->kind);
	if (st.proc != NULL) {
		cs->procedure_id = st.proc->id;
		cs->procedure_state = st.proc->state;
	}
}

static void
galera_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	coord_galera_evaluate(arg);
}

struct coord_galera *
coord_galera_new(struct coord *c, struct coord_recovery *r,
    const struct coord_cluster *cl)
{
	struct coord_galera *g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->c = c;
	g->r = r;
	g->cl = cl;
	if ((g->wake = evtimer_new(c->base, galera_wake_cb, g)) == NULL) {
		free(g);
		return NULL;
	}
	return g;
}

void
coord_galera_reset(struct coord_galera *g)
{
	evtimer_del(g->wake);
	g->starting = 0;
	g->alerted_for[0] = '\0';
	g->alerted = 0;
	g->escalated = 0;
}

void
coord_galera_free(struct coord_galera *g)
{
	if (g == NULL)
		return;
	event_free(g->wake);
	free(g);
}
