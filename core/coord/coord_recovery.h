/*
 * coord_recovery: the leader's decisions (issue 5, "Detection,
 * confirmation, action"). When at least `quorum` live opinions say a
 * (node, check) FAILED, the leader — and only while it holds the leader
 * key and the store's quorum — applies the check's policy and, where the
 * policy allows, starts exactly one action:
 *   - nothing inside maintenance (cluster, node or check);
 *   - nothing while another action of that check is RUNNING or LOCKED
 *     (a hung recovery never lets a second one start);
 *   - nothing within the cooldown after a success, or the backoff after
 *     an attempt;
 *   - the ladder's next rung: attempt N of the window takes ladder[N-1];
 *     "alert", the end of the ladder or max_attempts reached means
 *     escalation: an event, no action;
 *   - at most max_concurrent actions running in the cluster and
 *     max_per_hour started in the last hour;
 *   - only when the node's agent has a stream to this coordinator.
 * The action record is written first, in a transaction guarded by the
 * leader key (coord_leader_guarded), then the command is sent with the
 * leader's fencing token. The agent's final answer completes the record
 * (again guarded); no answer by the action timeout leaves it LOCKED until
 * an operator acknowledges it. A new leader re-sends the command of every
 * RUNNING record under the same id: the agent runs an id at most once and
 * answers a repeat with the outcome it kept, so an action is never run
 * twice across a takeover.
 *
 * Records (<prefix>/actions/<id>) and maintenance (<prefix>/maintenance/
 * <node>/<check>, "*" for all) are mirrored by every coordinator, so any
 * of them answers ListActions and shows maintenance in its status. With
 * store local they live in memory only.
 */
#ifndef TROIKA_COORD_RECOVERY_H
#define TROIKA_COORD_RECOVERY_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct coord;
struct coord_recovery;
struct Troika__V1__CommandResult;
struct Troika__V1__ActionRecord;
struct Troika__V1__Maintenance;

struct coord_recovery *coord_recovery_new(struct coord *c);
void coord_recovery_free(struct coord_recovery *r);

/* From coord_quorum's handler. */
void coord_recovery_opinions(struct coord_recovery *r, const char *node,
    const char *check);
void coord_recovery_leader(struct coord_recovery *r, int leader,
    int64_t token, const char *reason);
void coord_recovery_quorum(struct coord_recovery *r, int ok,
    const char *reason);

/* From coord_agent.c. */
void coord_recovery_command_result(struct coord_recovery *r, const char *node,
    const struct Troika__V1__CommandResult *cr);
void coord_recovery_node_connected(struct coord_recovery *r,
    const char *node);
/*
 * A result of check on node arrived. A cluster member's facts can change
 * while its status stays OK (an operator swapped Redis roles by hand, a
 * restarted old primary answers as a master): its cluster's procedure
 * looks again, so it notices without waiting for another opinion.
 */
void coord_recovery_result(struct coord_recovery *r, const char *node,
    const char *check);

/* Admin: records newest first (only of nodes, if nnodes > 0). */
size_t coord_recovery_actions(const struct coord_recovery *r,
    const char *const *nodes, size_t nnodes,
    const struct Troika__V1__ActionRecord **out, size_t max);

/*
 * Acknowledge a LOCKED record. 0 when the write was started (done() then
 * reports), -EPERM not the leader, -ENOENT no such record, -EINVAL not
 * LOCKED.
 */
typedef void (*coord_recovery_done_fn)(int status, const char *message,
    const struct Troika__V1__ActionRecord *rec, void *arg);
int coord_recovery_acknowledge(struct coord_recovery *r, const char *id,
    const char *by, coord_recovery_done_fn done, void *arg);

/* Maintenance: set (or clear) one scope; done() reports the write. */
typedef void (*coord_recovery_maint_fn)(int status, const char *message,
    void *arg);
int coord_recovery_set_maintenance(struct coord_recovery *r,
    const struct Troika__V1__Maintenance *m, int clear,
    coord_recovery_maint_fn done, void *arg);
/* In force now. */
size_t coord_recovery_maintenance(const struct coord_recovery *r,
    const struct Troika__V1__Maintenance **out, size_t max);

/*
 * For cluster procedures (coord_galera.c). A procedure is a record with
 * no node (its cluster's name in `cluster`); its steps are records of one
 * node each, naming the procedure's id in `procedure`. Steps do not count
 * in the per-service history, nor in max_concurrent and max_per_hour: the
 * procedure counts once, and its steps run one at a time.
 */
struct coord_recovery_step {
	const char *node;       /* "" for a procedure */
	const char *check;
	const char *action;
	char *const *args;      /* the action's arguments */
	size_t nargs;
	const char *procedure;  /* the parent's id; "" for a procedure */
	const char *cluster;
	const char *reason;
	uint64_t timeout_ns;    /* then the record locks */
	char *ret_id;           /* if not NULL: the record's id, */
	size_t ret_id_len;      /* COORD_PROCEDURE_ID_MAX is enough */
};

/* RUNNING or LOCKED: the record's action has no final outcome yet. */
int coord_recovery_record_open(const struct Troika__V1__ActionRecord *pb);

/* Leader with quorum: the only state in which anything may start. */
int coord_recovery_deciding(const struct coord_recovery *r);

/*
 * The node's services are where their clusters want them (coord_redis:
 * no member astray or rejoining), and no record of it is open.
 */
int coord_recovery_node_settled(struct coord_recovery *r, const char *node);

/* An action of (node, check)'s own is running, locked or being written. */
int coord_recovery_busy(const struct coord_recovery *r, const char *node,
    const char *check);

/*
 * The open record (RUNNING or LOCKED) of (node, check)'s own recovery, not
 * a step of a procedure; NULL: none.
 */
const struct Troika__V1__ActionRecord *coord_recovery_open_own(
    const struct coord_recovery *r, const char *node, const char *check);

/* The failover of the redis cluster named so; NULL: none. */
struct coord_redis *coord_recovery_redis(struct coord_recovery *r,
    const char *cluster);

/* Every recovery.clusters entry as GetStatus shows it, up to max. */
struct Troika__V1__ClusterStatus;
size_t coord_recovery_clusters(struct coord_recovery *r,
    struct Troika__V1__ClusterStatus *out, size_t max);

/* Is (node, check) in maintenance now (cluster, node or check scope)? */
int coord_recovery_in_maintenance(const struct coord_recovery *r,
    const char *node, const char *check);

/* Every record, oldest first (valid until the loop runs again). */
size_t coord_recovery_records(struct coord_recovery *r,
    const struct Troika__V1__ActionRecord ***out);

/*
 * Write a RUNNING record, then (a step) send its command. done() runs
 * once, after the write: ok 0 when it did not happen. Returns 0 or a
 * negative errno (then done() is not called).
 */
typedef void (*coord_recovery_begun_fn)(int ok, void *arg);
int coord_recovery_begin(struct coord_recovery *r,
    const struct coord_recovery_step *s, coord_recovery_begun_fn done,
    void *arg);

/*
 * End a procedure's record: state SUCCEEDED, FAILED or LOCKED, with a
 * message and facts. Returns 0 or a negative errno.
 */
struct Troika__V1__Label;
int coord_recovery_finish(struct coord_recovery *r, const char *id,
    int state, const char *message, struct Troika__V1__Label **fields,
    size_t nfields, coord_recovery_begun_fn done, void *arg);

/*
 * troika_coord_actions{state}, troika_coord_actions_started_total,
 * troika_coord_recovery_escalations_total,
 * troika_coord_recovery_held_total{reason}, troika_coord_maintenance.
 */
void coord_recovery_write_metrics(const struct coord_recovery *r,
    struct evbuffer *out);

#endif
