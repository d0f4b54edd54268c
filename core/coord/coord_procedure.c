/*
 * coord_procedure: the parts every cluster procedure shares
 * (coord_procedure.h).
 */
#include "coord_procedure.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "coord.h"
#include "coord_conf.h"
#include "coord_events.h"
#include "coord_nodeloss.h"
#include "coord_recovery.h"
#include "log.h"

#define PROCEDURE_NS_PER_MS 1000000ULL

static uint64_t
procedure_ns(int64_t ms)
{
	return (uint64_t)ms * PROCEDURE_NS_PER_MS;
}

static void
procedure_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct coord_procedure *p = arg;

	(void)fd;
	(void)what;
	p->evaluate(p->arg);
}

int
coord_procedure_init(struct coord_procedure *p, struct coord *c,
    struct coord_recovery *r, const struct coord_cluster *cl,
    const char *action, void (*evaluate)(void *), void *arg)
{
	memset(p, 0, sizeof(*p));
	p->c = c;
	p->r = r;
	p->cl = cl;
	p->action = action;
	p->evaluate = evaluate;
	p->arg = arg;
	if ((p->wake = evtimer_new(c->base, procedure_wake_cb, p)) == NULL)
		return -ENOMEM;
	return 0;
}

void
coord_procedure_clear(struct coord_procedure *p)
{
	if (p->wake != NULL)
		event_free(p->wake);
	p->wake = NULL;
}

void
coord_procedure_reset(struct coord_procedure *p)
{
	evtimer_del(p->wake);
	p->starting = 0;
	p->alerted_for[0] = '\0';
	p->alerted = 0;
	p->escalated = 0;
}

int
coord_procedure_may_act(const struct coord_procedure *p)
{
	return !p->starting && coord_recovery_deciding(p->r);
}

void
coord_procedure_wake_in(struct coord_procedure *p, uint64_t ns)
{
	struct timeval tv;

	/* A little after, so that what we wait for has really passed. */
	ns += 10 * PROCEDURE_NS_PER_MS;
	tv.tv_sec = (time_t)(ns / 1000000000ULL);
	tv.tv_usec = (suseconds_t)(ns % 1000000000ULL / 1000);
	evtimer_add(p->wake, &tv);
}

int
coord_procedure_member(const struct coord_procedure *p, const char *node)
{
	for (size_t i = 0; i < p->cl->nnodes; i++)
		if (strcmp(p->cl->nodes[i], node) == 0)
			return (int)i;
	return -1;
}

size_t
coord_procedure_read(struct coord_procedure *p, uint64_t now,
    struct coord_procedure_state *st, const Troika__V1__ActionRecord ***out)
{
	const struct coord_policy *pol = coord_conf_policy(p->c->conf,
	    p->cl->check);
	const Troika__V1__ActionRecord **recs;
	size_t n = coord_recovery_records(p->r, &recs);

	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < n; i++) {
		const Troika__V1__ActionRecord *pb = recs[i];
		uint64_t end = pb->ended_unix_nano != 0 ? pb->ended_unix_nano :
		    pb->started_unix_nano;

		if (pb->node[0] != '\0' || strcmp(pb->cluster,
		    p->cl->name) != 0)
			continue;
		/* Any procedure of the cluster (a failover or an operator's
		 * switchover) is its latest; only p->action's count for
		 * max_attempts and backoff. */
		st->proc = pb;
		if (strcmp(pb->action, p->action) != 0)
			continue;
		if (pb->started_unix_nano + procedure_ns(pol->window_ms) >= now)
			st->procs_in_window++;
		if (!coord_recovery_record_open(pb) && end > st->last_proc_end)
			st->last_proc_end = end;
	}
	for (size_t i = 0; st->proc != NULL && i < n; i++) {
		const Troika__V1__ActionRecord *pb = recs[i];

		if (strcmp(pb->procedure, st->proc->id) != 0)
			continue;
		if (pb->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING)
			st->running = pb;
		else if (pb->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED)
			st->locked = pb;
	}
	*out = recs;
	return n;
}

static void
procedure_written(int ok, void *arg)
{
	struct coord_procedure *p = arg;

	p->starting = 0;
	/* Written: the next move is decided from the loop, at once. */
	coord_procedure_wake_in(p, ok ? 0 : procedure_ns(p->cl->retry_ms));
}

void
coord_procedure_begin(struct coord_procedure *p, const char *proc,
    const char *node, const char *action, char *const *args, size_t nargs,
    const char *reason)
{
	const struct coord_policy *pol = coord_conf_policy(p->c->conf,
	    p->cl->check);
	struct coord_recovery_step s = {
		.node = node, .check = p->cl->check, .action = action,
		.args = args, .nargs = nargs, .procedure = proc,
		.cluster = p->cl->name, .reason = reason,
		.timeout_ns = node[0] == '\0' ? procedure_ns(p->cl->timeout_ms) :
		    procedure_ns(pol->action_timeout_ms),
	};
	int rc;

	p->starting = 1;
	if ((rc = coord_recovery_begin(p->r, &s, procedure_written, p)) < 0) {
		p->starting = 0;
		log_warnx("cluster %s: cannot write the record of %s: %s",
		    p->cl->name, action, strerror(-rc));
		coord_procedure_wake_in(p, procedure_ns(p->cl->retry_ms));
	}
}

void
coord_procedure_finish(struct coord_procedure *p, const char *proc,
    int state, Troika__V1__Label **fields, size_t nfields, const char *fmt,
    ...)
{
	char msg[512];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->starting = 1;
	if ((rc = coord_recovery_finish(p->r, proc, state, msg, fields, nfields,
	    procedure_written, p)) < 0) {
		p->starting = 0;
		log_warnx("cluster %s: procedure %s not ended: %s", p->cl->name,
		    proc, strerror(-rc));
	}
}

static void
procedure_alert(struct coord_procedure *p, const char *proc, int m,
    const char *waiting, const char *why)
{
	const char *const f[] = { "cluster", p->cl->name, "procedure", proc };

	if (strcmp(p->alerted_for, proc) != 0) {
		snprintf(p->alerted_for, sizeof(p->alerted_for), "%s", proc);
		p->alerted = 0;
	}
	if (p->alerted & (1u << m))
		return;
	p->alerted |= 1u << m;
	coord_events_emit(p->c, "cluster_held",
	    TROIKA__V1__SEVERITY__SEVERITY_CRITICAL, p->cl->nodes[m],
	    p->cl->check, f, 2, "cluster %s: %s: %s; asking again in %" PRId64
	    " ms", p->cl->name, waiting, why, p->cl->retry_ms);
}

int
coord_procedure_collect(struct coord_procedure *p,
    const Troika__V1__ActionRecord *proc,
    const Troika__V1__ActionRecord *const *answers, uint32_t skip,
    int skip_lost, const char *action, const char *waiting,
    const char *reason, uint64_t now)
{
	uint64_t retry = procedure_ns(p->cl->retry_ms), soonest = 0;
	int missing = 0;

	for (size_t i = 0; i < p->cl->nnodes; i++) {
		const Troika__V1__ActionRecord *a = answers[i];
		const char *node = p->cl->nodes[i];
		char why[256];

		if ((skip & (1u << i)) != 0 || (a != NULL && a->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED) ||
		    (skip_lost && coord_nodeloss_lost(p->c, node)))
			continue;
		missing = 1;
		if (a != NULL) {
			snprintf(why, sizeof(why), "%s of %s: %s", action, node,
			    a->message);
			procedure_alert(p, proc->id, (int)i, waiting, why);
			if (now < a->ended_unix_nano + retry) {
				if (soonest == 0 || a->ended_unix_nano + retry <
				    soonest)
					soonest = a->ended_unix_nano + retry;
				continue;
			}
		}
		if (!coord_agent_connected(p->c, node)) {
			snprintf(why, sizeof(why), "%s of %s: its agent has no "
			    "stream to the leader", action, node);
			procedure_alert(p, proc->id, (int)i, waiting, why);
			if (soonest == 0 || now + retry < soonest)
				soonest = now + retry;
			continue;
		}
		coord_procedure_begin(p, proc->id, node, action, NULL, 0, reason);
		return 1;
	}
	if (missing && soonest != 0)
		coord_procedure_wake_in(p, soonest > now ? soonest - now : 0);
	return missing;
}

int
coord_procedure_may_start(struct coord_procedure *p,
    const struct coord_procedure_state *st, uint64_t now, const char *what,
    uint32_t busy_ok)
{
	const struct coord_cluster *cl = p->cl;
	const struct coord_policy *pol = coord_conf_policy(p->c->conf,
	    cl->check);
	const char *const f[] = { "cluster", cl->name };

	/* An operator working on a member decides for the cluster too. */
	for (size_t i = 0; i < cl->nnodes; i++)
		if (coord_recovery_in_maintenance(p->r, cl->nodes[i],
		    cl->check)) {
			coord_procedure_wake_in(p, 1000 * PROCEDURE_NS_PER_MS);
			return 0;
		}
	/*
	 * A member's own action (a start begun while another member still
	 * seemed to answer, a restart within the failover's grace) ends
	 * first: its end brings us back. Never two moves on one member:
	 * the caller's procedure makes none on the members in busy_ok.
	 */
	for (size_t i = 0; i < cl->nnodes; i++)
		if ((busy_ok & (1u << i)) == 0 &&
		    coord_recovery_busy(p->r, cl->nodes[i], cl->check))
			return 0;
	if (st->last_proc_end != 0 && now < st->last_proc_end +
	    procedure_ns(pol->backoff_ms)) {
		coord_procedure_wake_in(p, st->last_proc_end +
		    procedure_ns(pol->backoff_ms) - now);
		return 0;
	}
	if (st->procs_in_window >= (unsigned)pol->max_attempts) {
		if (!p->escalated)
			coord_events_emit(p->c, "recovery_escalated",
			    TROIKA__V1__SEVERITY__SEVERITY_CRITICAL, NULL,
			    cl->check, f, 1, "cluster %s: troika will not %s "
			    "again: max_attempts (%d) reached in the window; "
			    "an operator is needed", cl->name, what,
			    pol->max_attempts);
		p->escalated = 1;
		return 0;
	}
	return 1;
}
