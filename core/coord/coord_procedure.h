/*
 * coord_procedure: what every cluster procedure (coord_galera.c,
 * coord_redis.c) does the same way. A procedure is an action record with
 * no node, its cluster's name and the procedure's action; its steps are
 * records of one member each that name it. This module reads them, writes
 * them (one write at a time), ends the procedure, collects one fact from
 * every member with the alert and retry rules, says whether a new
 * procedure may start, and keeps the timer that brings the owner back.
 */
#ifndef TROIKA_COORD_PROCEDURE_H
#define TROIKA_COORD_PROCEDURE_H

#include <stddef.h>
#include <stdint.h>

#include "troika/v1/admin.pb-c.h"

struct coord;
struct coord_cluster;
struct coord_recovery;
struct event;

#define COORD_PROCEDURE_ID_MAX 64

struct coord_procedure {
	struct coord *c;
	struct coord_recovery *r;
	const struct coord_cluster *cl;
	const char *action;     /* of the procedure's records */
	struct event *wake;
	void (*evaluate)(void *arg);
	void *arg;
	int starting;           /* a record is being written */
	/* Alerts given for the procedure alerted_for (a bit per member). */
	char alerted_for[COORD_PROCEDURE_ID_MAX];
	unsigned alerted;
	int escalated;          /* max_attempts reached, said once */
};

/*
 * The cluster's latest procedure (of any action: a redis cluster has
 * failovers and switchovers) and what its steps say in general; the
 * window and the last end count procedures of p->action only.
 */
struct coord_procedure_state {
	const Troika__V1__ActionRecord *proc;    /* NULL: never one */
	const Troika__V1__ActionRecord *running; /* a step in flight */
	const Troika__V1__ActionRecord *locked;  /* a step locked */
	unsigned procs_in_window;  /* procedures in the policy's window */
	uint64_t last_proc_end;    /* the last ended one's end, 0: none */
};

/* evaluate(arg) runs when the timer fires. Returns 0 or -ENOMEM. */
int coord_procedure_init(struct coord_procedure *p, struct coord *c,
    struct coord_recovery *r, const struct coord_cluster *cl,
    const char *action, void (*evaluate)(void *), void *arg);
void coord_procedure_clear(struct coord_procedure *p);

/* Leadership lost: forget the timer and what was said. */
void coord_procedure_reset(struct coord_procedure *p);

/* Leader with quorum and no write of ours in progress. */
int coord_procedure_may_act(const struct coord_procedure *p);

/* Look again in ns (0: from the loop, at once). */
void coord_procedure_wake_in(struct coord_procedure *p, uint64_t ns);

/* Every record, oldest first, and the state of the latest procedure. */
size_t coord_procedure_read(struct coord_procedure *p, uint64_t now,
    struct coord_procedure_state *st, const Troika__V1__ActionRecord ***recs);

/* The member index of node in the cluster; -1: not a member. */
int coord_procedure_member(const struct coord_procedure *p, const char *node);

/* Write a record: the procedure (proc "" and node "") or a step. */
void coord_procedure_begin(struct coord_procedure *p, const char *proc,
    const char *node, const char *action, char *const *args, size_t nargs,
    const char *reason);

/* End the procedure: state SUCCEEDED, FAILED or LOCKED, with facts. */
void coord_procedure_finish(struct coord_procedure *p, const char *proc,
    int state, Troika__V1__Label **fields, size_t nfields, const char *fmt,
    ...) __attribute__((format(printf, 6, 7)));

/*
 * Ask `action` of every member not in `skip` (a bit per member index)
 * whose latest answer (answers[] by member, NULL: none) did not succeed,
 * one at a time, in list order: a member whose answer failed, or whose
 * agent has no stream, gets one alert-level event `cluster_held` (waiting
 * says what waits) and is asked again after the cluster's retry. With
 * skip_lost, a member on a lost node (coord_nodeloss.h) is not asked: it
 * is counted out. Returns 1 while an answer is missing.
 */
int coord_procedure_collect(struct coord_procedure *p,
    const Troika__V1__ActionRecord *proc,
    const Troika__V1__ActionRecord *const *answers, uint32_t skip,
    int skip_lost, const char *action, const char *waiting,
    const char *reason, uint64_t now);

/*
 * Whether a new procedure may start: no member in maintenance or with an
 * action of its own open (but those in busy_ok, a bit per member index),
 * not within the policy's backoff after the last one, fewer than
 * max_attempts in its window (else one recovery_escalated event, `what`
 * saying what is not done again).
 */
int coord_procedure_may_start(struct coord_procedure *p,
    const struct coord_procedure_state *st, uint64_t now, const char *what,
    uint32_t busy_ok);

#endif
