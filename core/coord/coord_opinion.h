/*
 * coord_opinion: what this coordinator thinks of every (node, check) and
 * of every node, formed from what the agents report to it alone (issue 5,
 * "Detection"). Opinions are local: publishing them, counting them across
 * coordinators and acting on a quorum happen elsewhere (coord_quorum.c,
 * coord_recovery.c).
 *
 * A check is FAILED when, under its policy (coord_conf.h):
 *   - fail_after consecutive results were CRITICAL (any evidence), or
 *   - certain_after consecutive results were CRITICAL with certain
 *     evidence (the agent re-checks at once on certain evidence, so the
 *     default of 2 is reached within milliseconds of a kill), or
 *   - no result arrived for down_after while the node's stream was up
 *     (a silent check: a hung plugin host, a broken agent).
 * It is OK again after one OK result. WARNING and UNKNOWN results leave
 * the counts as they are: they neither confirm nor clear a failure.
 * A node is FAILED (down) when its agent's stream has been gone for the
 * node policy's down_after; it is OK again when a stream says Hello. The
 * checks of a down node keep their opinions but are not counted down for
 * silence (the node's opinion covers them).
 *
 * While withheld (TILT: the loop stalled or the clock jumped), no opinion
 * changes are reported and silence timers do not fire; at the end of the
 * withholding every opinion is evaluated afresh from the next results.
 */
#ifndef TROIKA_COORD_OPINION_H
#define TROIKA_COORD_OPINION_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct coord_conf;
struct coord_opinions;
struct Troika__V1__CheckResult;

struct coord_opinion_change {
	const char *node;
	const char *check;   /* NULL: the node itself */
	const char *plugin;  /* NULL for a node */
	int failed;          /* the new opinion: 1 FAILED, 0 OK */
	int certain;         /* reached on certain evidence */
	/* One line for events: "3 consecutive CRITICAL results: <msg>",
	 * "2 certain CRITICAL results: connection refused", "no result for
	 * 30s", "agent stream gone for 10s", "OK: <msg>", "agent back". */
	const char *reason;
	uint64_t time_ns;    /* wall clock of the change */
};

/* Called from the loop (or from inside coord_opinions_* calls). */
typedef void (*coord_opinion_cb)(const struct coord_opinion_change *ch,
    void *arg);

/* conf must outlive the object (it is the coordinator's). */
struct coord_opinions *coord_opinions_new(struct event_base *base,
    const struct coord_conf *conf, coord_opinion_cb cb, void *arg);
void coord_opinions_free(struct coord_opinions *o);

/* A result as the agent sent it. */
void coord_opinions_result(struct coord_opinions *o, const char *node,
    const struct Troika__V1__CheckResult *res);
/*
 * A node's Hello: its checks now (names; checks not listed are forgotten
 * without a change being reported), and its stream is up.
 */
void coord_opinions_hello(struct coord_opinions *o, const char *node,
    const char *const *checks, const char *const *plugins, size_t nchecks);
/* The node's stream ended: its node timer starts. */
void coord_opinions_disconnected(struct coord_opinions *o, const char *node);

/* TILT: 1 withholds every change until 0. */
void coord_opinions_withhold(struct coord_opinions *o, int on);

/* The current opinion: 1 FAILED, 0 OK or unknown. check NULL: the node. */
int coord_opinions_failed(const struct coord_opinions *o, const char *node,
    const char *check);

/* Every FAILED opinion, e.g. to publish them again after a reconnect. */
void coord_opinions_foreach_failed(const struct coord_opinions *o,
    coord_opinion_cb cb, void *arg);

/*
 * troika_coord_opinions{state="failed"} (gauge: FAILED opinions now),
 * troika_coord_opinion_changes_total{to="failed|ok"},
 * troika_coord_opinions_withheld (1 while withheld).
 */
void coord_opinions_write_metrics(const struct coord_opinions *o,
    struct evbuffer *out);

#endif
