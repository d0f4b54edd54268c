/*
 * coord_nodeloss: the leader's handling of a whole node lost (issue 6).
 * A node is lost when a quorum of coordinators holds it down: its agent's
 * streams gone for recovery.nodes.down_after. Then
 *   - coord_recovery says so once (event node_lost, CRITICAL) and again
 *     when the verdict ends (node_returned);
 *   - its services are counted out: every check of a lost node counts as
 *     failed by quorum (coord_member_failed), so a Redis primary on it is
 *     failed over and its replicas are not waited for;
 *   - with recovery.nodes.load_balancer, `disable <node>` runs on the
 *     load balancer's check of every listed node but the lost one (an
 *     action record each, one at a time);
 *   - when it is back (its agent connected to the leader, and every one
 *     of its checks OK in a result that came after it reconnected),
 *     `enable <node>` runs wherever the latest record for it is a
 *     successful disable.
 * Whether a node is out of rotation is read from the records (the latest
 * disable or enable of it on each load balancer), so a new leader goes on
 * from there.
 */
#ifndef TROIKA_COORD_NODELOSS_H
#define TROIKA_COORD_NODELOSS_H

struct coord;
struct coord_nodeloss;
struct coord_recovery;

struct coord_nodeloss *coord_nodeloss_new(struct coord *c,
    struct coord_recovery *r);
void coord_nodeloss_free(struct coord_nodeloss *nl);

/* Look again (records, opinions, streams or leadership changed). */
void coord_nodeloss_evaluate(struct coord_nodeloss *nl);

/* Leadership lost: forget the timer. */
void coord_nodeloss_reset(struct coord_nodeloss *nl);

/* The node is lost: a quorum of coordinators holds it down. */
int coord_nodeloss_lost(const struct coord *c, const char *node);

#endif
