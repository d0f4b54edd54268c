/*
 * coord_galera: the leader's procedure for a Galera cluster with no
 * Primary anywhere (issue 6, "Galera full outage"). A recovery.clusters
 * entry of kind galera names the members: check `check` on each node.
 *
 * When every member's check has failed by quorum, per-service recovery
 * of the members is held (a member started alone has nothing to join) and
 * the leader runs one procedure, each move an action record written
 * before its command goes out:
 *   1. position: asked of every member, one at a time. A member whose
 *      agent is unreachable, or whose answer fails or times out, has no
 *      position: an alert-level event, and it is asked again after
 *      `retry`. Nothing is bootstrapped until every member has answered
 *      (a timeout is never "peer absent"). A running member answers
 *      from the server (source "server"), a stopped one from
 *      grastate.dat or --wsrep-recover.
 *   2. the positions must name one cluster uuid and a known seqno (>= 0);
 *      otherwise the procedure locks: an operator decides.
 *   3. some members running (non-Primary survivors), some stopped: start
 *      nowait of each stopped one, one at a time, at its recovered
 *      position; then Galera has GALERA_REFORM_MS (or `retry`) to
 *      re-form the Primary component by itself; done, with no
 *      bootstrap, once every member answers OK. Every member running
 *      and none Primary locks the procedure (a partition is likelier).
 *   4. bootstrap, only when nothing else can work: exactly one member,
 *      the most advanced (highest seqno; on a tie a running member, then
 *      the one grastate.dat marks safe_to_bootstrap, then the first in
 *      the cluster's list). A running member is bootstrapped in place
 *      (never restarted), and only if its component holds every member;
 *      a started member that does not answer is never bootstrapped:
 *      both lock the procedure instead.
 *   5. start: every other stopped member not started yet, one at a
 *      time; the mysql plugin writes its recovered position into
 *      grastate.dat first, so it joins by IST. A running member joins
 *      the bootstrapped one by itself.
 *   6. done when no member is failed any more and every one answers OK.
 * A member whose own start or restart (its per-service recovery) is
 * running when the others fail too (a staggered failure: its server waits
 * for a Primary that needs another failed member) does not hold the
 * procedure up. It is left to that action: never asked its position,
 * never started again, counted as running in step 3, so the others are
 * started around it; and since its position is not known, no bootstrap
 * happens (step 4 locks instead).
 * The procedure and its steps are records in etcd, and the state of the
 * procedure is a function of them alone, so a new leader continues where
 * the old one stopped (a step in flight is asked again under its id; the
 * agent runs an id once). A member answering again before the bootstrap
 * (and before any start) ends the procedure: no bootstrap is needed.
 */
#ifndef TROIKA_COORD_GALERA_H
#define TROIKA_COORD_GALERA_H

#include <stddef.h>
#include <stdint.h>

struct coord;
struct coord_cluster;
struct coord_galera;
struct coord_recovery;

/* The action of a procedure record. */
#define COORD_GALERA_PROCEDURE "bootstrap_cluster"

struct coord_galera *coord_galera_new(struct coord *c,
    struct coord_recovery *r, const struct coord_cluster *cl);
void coord_galera_free(struct coord_galera *g);

/* Look again (records, opinions, the view or leadership changed). */
void coord_galera_evaluate(struct coord_galera *g);

/*
 * Whether per-service recovery of member `node`, failed by quorum since
 * verdict_ns, must wait: a procedure is open, or no other member has
 * answered OK since then (then the member has nothing to join, or the
 * others are failing too and their verdicts are on the way: when the
 * whole cluster goes down at once, the failures reach the leader a few
 * milliseconds apart, and a member started alone in between would stay
 * non-Primary and hold up the bootstrap). While another member has
 * failed too, an OK does not count (a survivor answers OK until Galera
 * notices, and then may lose its Primary): only a member answering
 * Primary in a view without every member, or Primary with all of them
 * GALERA_SETTLE_MS after the verdict. why gets one line.
 */
int coord_galera_holds(struct coord_galera *g, const char *node,
    uint64_t verdict_ns, char *why, size_t len);

/* Leadership lost: forget timers and what was said. */
void coord_galera_reset(struct coord_galera *g);

/* The cluster as GetStatus shows it (strings valid until the loop runs). */
struct Troika__V1__ClusterStatus;
void coord_galera_status(struct coord_galera *g,
    struct Troika__V1__ClusterStatus *cs);

#endif
