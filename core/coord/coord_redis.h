/*
 * coord_redis: the leader's failover of a Redis primary (issue 6). A
 * recovery.clusters entry of kind redis names the members: check `check`
 * (the redis plugin) on each node; one is the primary, the others its
 * replicas.
 *
 * The primary is the member the last failover promoted, as the action
 * records say (so every coordinator names the same one); before any
 * failover, the member whose results say role master, or else the member
 * whose address the replicas name as their master.
 *
 * While the primary has failed by quorum, its replicas' own recovery is
 * held (their link to it is down: restarting them helps nothing). Its own
 * recovery (restart) has `failover_after` to bring it back; then, with no
 * member in maintenance, the leader writes a failover record (its args:
 * the failed primary) and its steps, one at a time, each written before
 * its command:
 *   1. role of every other member, in list order: fresh offsets. A
 *      member that cannot answer (agent unreachable, action failed) is an
 *      alert-level event and is asked again after `retry`: nothing is
 *      promoted until every one has answered.
 *   2. a replica whose link to the primary is still up means the primary
 *      lives: the failover ends, not needed.
 *   3. promote the replica with the highest slave_repl_offset (on a tie
 *      the first in the list); an event primary_changed.
 *   4. replicate: every other replica follows the new primary.
 * The failover SUCCEEDS with the new primary and its address as fields.
 * A member other than the primary that answers as a master (the old
 * primary, restarted) is made a replica of the primary (a replicate
 * record of its own), once the primary has answered as a master after
 * that member's result (every member's result is a reason to look
 * again: roles changed by hand leave every check OK). Steps and procedure are records; the state is a
 * function of them, so a new leader continues where the old one stopped.
 */
#ifndef TROIKA_COORD_REDIS_H
#define TROIKA_COORD_REDIS_H

#include <stddef.h>

struct coord;
struct coord_cluster;
struct coord_redis;
struct coord_recovery;
struct Troika__V1__ClusterStatus;

/* The action of a failover record. */
#define COORD_REDIS_PROCEDURE "failover"
/* The action of a planned switchover's record. */
#define COORD_REDIS_SWITCHOVER "switchover"

struct coord_redis *coord_redis_new(struct coord *c,
    struct coord_recovery *r, const struct coord_cluster *cl);
void coord_redis_free(struct coord_redis *g);

/* Look again (records, opinions, results or leadership changed). */
void coord_redis_evaluate(struct coord_redis *g);

/* Whether per-service recovery of member `node` must wait; why. */
int coord_redis_holds(struct coord_redis *g, const char *node, char *why,
    size_t len);

/*
 * Whether member `node` is where the cluster wants it: not astray (a
 * master, or another server's replica, after a failover), no rejoin or
 * failover of it running. 1 for a node that is no member.
 */
int coord_redis_settled(struct coord_redis *g, const char *node);

/*
 * A planned switchover (Admin/Switchover): the primary hands its role
 * over to `to` (NULL or "": the replica with the highest offset) with
 * Redis' FAILOVER, then the other replicas follow the new primary. The
 * leader refuses unless every member is OK, connected, in no
 * maintenance and busy with nothing, no procedure of the cluster is
 * open, and `to` is a replica of the primary with its link up. Then it
 * writes the record (node "", action "switchover", args: the primary,
 * then `to` if given; `by` in its reason) and its steps, each before its
 * command, so a new leader goes on from the records:
 *   1. role of every member, in list order (fresh offsets); the primary
 *      must still be a master and every other member its replica with
 *      the link up, else it ends FAILED with nothing changed;
 *   2. handover <host> <port> <timeout_ms> on the primary, the target's
 *      address: Redis pauses writes until the target has caught up,
 *      then swaps the roles; a handover that fails ends it FAILED, the
 *      primary unchanged; once it succeeded the target is the primary
 *      for every coordinator (event primary_changed);
 *   3. replicate of every other replica to the new primary.
 * It SUCCEEDS with the new primary and its address as fields.
 *
 * Returns 0 when the record's write started (done() reports it, with
 * the id), or a negative errno with why filled: -EPERM not the leader
 * with quorum, -EINVAL `to` no member, -EBUSY a procedure, record or
 * member action open, -EALREADY `to` is the primary, -EAGAIN a member
 * not fit (maintenance, not OK, not connected, not a replica of the
 * primary) or no primary known, -ENOMEM, -EIO the write did not start.
 */
typedef void (*coord_redis_switch_fn)(int ok, const char *id, void *arg);
int coord_redis_switchover(struct coord_redis *g, const char *to,
    const char *by, coord_redis_switch_fn done, void *arg, char *why,
    size_t len);

/* Pure helpers, exposed for the unit tests. */
struct Troika__V1__ActionRecord;
/* "host:port" or "[v6]:port" into host and port: 0 or -EINVAL. */
int coord_redis_split_address(const char *addr, char *host, size_t hlen,
    char *port, size_t plen);
/* A role record (fields of the redis plugin's role action) says a
 * replica of host:port with its link up. */
int coord_redis_follows(const struct Troika__V1__ActionRecord *role,
    const char *host, const char *port);
/* Of succeeded role records (by member; NULL: none), but member skip:
 * the replica with the highest slave_repl_offset, the first on a tie;
 * -1: none. */
int coord_redis_pick(const struct Troika__V1__ActionRecord *const *roles,
    size_t n, int skip);

/* Leadership lost: forget timers and what was said. */
void coord_redis_reset(struct coord_redis *g);

/* The cluster as GetStatus shows it (strings valid until the loop runs). */
void coord_redis_status(struct coord_redis *g,
    struct Troika__V1__ClusterStatus *cs);

#endif
