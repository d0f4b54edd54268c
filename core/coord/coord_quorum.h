/*
 * coord_quorum: what the coordinators agree on (issue 5, "Consensus: etcd,
 * not our own"). With store etcd it owns the etcd client and
 *   - publishes this coordinator's FAILED opinions under its own lease,
 *     at <prefix>/opinions/<coordinator>/<node>/<check> (check "@node"
 *     for the node itself; '/' and '%' in names are %-escaped), so a dead
 *     coordinator's opinions vanish with its lease;
 *   - watches every coordinator's opinions (a range, then a watch from
 *     the range's revision + 1) and counts them per (node, check);
 *   - campaigns for the leader key <prefix>/leader (coord_leader.c).
 * It has quorum while its lease is alive and etcd answers; without it
 * nothing may be decided, and reason() says why.
 * With store local there is one coordinator: its own opinions are the only
 * ones, it is always the leader, its fencing token comes from the state
 * file (one more at every start, so tokens still grow across restarts),
 * and reason() says loudly that there is no quorum.
 */
#ifndef TROIKA_COORD_QUORUM_H
#define TROIKA_COORD_QUORUM_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct coord;
struct coord_opinion_change;
struct coord_quorum;
struct etcd_client;
struct coord_leader;

/* The check name under which a node's own opinion is kept. */
#define COORD_QUORUM_NODE_CHECK "@node"

struct coord_quorum_handler {
	/* The set of FAILED opinions of (node, check) changed. */
	void (*opinions)(const char *node, const char *check, void *arg);
	/* Leadership changed: token > 0 while leader. */
	void (*leader)(int leader, int64_t token, const char *reason,
	    void *arg);
	/* Quorum came or went (etcd reachable, lease alive). */
	void (*quorum)(int ok, const char *reason, void *arg);
};

/* Start (etcd: connect, lease, watch, campaign). NULL after logging. */
struct coord_quorum *coord_quorum_new(struct coord *c,
    const struct coord_quorum_handler *h, void *arg);
void coord_quorum_free(struct coord_quorum *q);

/* This coordinator's opinion changed: publish it (or withdraw it). */
void coord_quorum_publish(struct coord_quorum *q,
    const struct coord_opinion_change *ch);

/*
 * Withdraw every opinion of ours that the opinion engine no longer holds
 * (a Hello dropped the check, which it forgets without a change).
 */
void coord_quorum_withdraw_stale(struct coord_quorum *q);

/*
 * The coordinators whose FAILED opinion of (node, check) is live now
 * (check NULL: the node), into coords (up to max; pointers valid until the
 * next change); returns how many there are. *certain is set to 1 when
 * every one of them was reached on certain evidence.
 */
size_t coord_quorum_failed(const struct coord_quorum *q, const char *node,
    const char *check, const char **coords, size_t max, int *certain);

/* Every (node, check) with at least one FAILED opinion (check NULL: the
 * node), each once. The table may not change during the walk. */
void coord_quorum_foreach(const struct coord_quorum *q,
    void (*fn)(const char *node, const char *check, void *arg), void *arg);

/* The reason the first of them gave, or "". */
const char *coord_quorum_reason_of(const struct coord_quorum *q,
    const char *node, const char *check);

int coord_quorum_ok(const struct coord_quorum *q);
/* Why there is no quorum ("" when there is). */
const char *coord_quorum_reason(const struct coord_quorum *q);
int coord_quorum_is_leader(const struct coord_quorum *q);
int64_t coord_quorum_token(const struct coord_quorum *q);
/* The current leader's name and token as last seen ("" and 0: none). */
const char *coord_quorum_leader_name(const struct coord_quorum *q);
int64_t coord_quorum_leader_token(const struct coord_quorum *q);

/* NULL with store local. */
struct etcd_client *coord_quorum_etcd(struct coord_quorum *q);
struct coord_leader *coord_quorum_leader(struct coord_quorum *q);

/* Key of a record under the prefix: "<prefix>/<kind>/<a>[/<b>...]". */
char *coord_quorum_key(const struct coord_quorum *q, const char *kind,
    const char *a, const char *b, const char *c);

/*
 * troika_coord_quorum (1/0), troika_coord_leader_info, the opinions
 * published and seen, and the etcd client's and leader's own families.
 */
void coord_quorum_write_metrics(const struct coord_quorum *q,
    struct evbuffer *out);

#endif
