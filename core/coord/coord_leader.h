/*
 * coord_leader: leader election among the coordinators on etcd (issue 5),
 * a library with a callback; coord_main.c wires it to the config.
 *
 * A candidate grants itself a lease (ttl_s), keeps it alive
 * (etcd_lease_keepalive) and runs one transaction on the leader key:
 * "if the key does not exist (create_revision == 0), put my value with my
 * lease, else read the key". The winner's fencing token is the key's
 * create_revision, which etcd never hands out twice. Every candidate
 * watches the key: a follower campaigns again as soon as it is deleted
 * (revoked or expired lease, resignation); a leader stops being leader at
 * once, and says so, when its lease is lost (etcd said TTL 0, or no
 * renewal in time: etcd_client.h gives it up before etcd would expire
 * it) or when the key is deleted or re-created by someone else.
 *
 * Guarded writes: coord_leader_guarded() runs operations in a
 * transaction whose compare is "the leader key's create_revision == my
 * token", so only the current leader's writes succeed; a deposed leader's
 * fail, however late they arrive.
 */
#ifndef TROIKA_COORD_LEADER_H
#define TROIKA_COORD_LEADER_H

#include <stdint.h>

#include "etcd_client.h"

struct evbuffer;
struct coord_leader;

enum coord_leader_state {
	COORD_LEADER_CANDIDATE, /* campaigning, or etcd did not answer yet */
	COORD_LEADER_FOLLOWER,  /* someone else holds the key */
	COORD_LEADER_LEADER,    /* we hold it: coord_leader_token() */
};

/* "candidate", "follower", "leader". */
const char *coord_leader_state_str(enum coord_leader_state state);

struct coord_leader_config {
	const char *key;        /* the leader key, e.g. "/troika/leader" */
	const char *value;      /* who we are (the coordinator's name) */
	int64_t ttl_s;          /* lease TTL; default 5 */
	int64_t retry_ms;       /* pause after a failed etcd call; 500 */
};

void coord_leader_config_default(struct coord_leader_config *cfg);

/*
 * Every change of state, with a reason for logs and events. Called from
 * the loop; the owner may not free the object from inside it.
 */
typedef void (*coord_leader_changed_cb)(struct coord_leader *cl,
    enum coord_leader_state state, const char *reason, void *arg);

/*
 * Start campaigning on ec (which must outlive the object). key and value
 * are copied. Returns NULL with errno EINVAL or ENOMEM.
 */
struct coord_leader *coord_leader_new(struct etcd_client *ec,
    const struct coord_leader_config *cfg, coord_leader_changed_cb changed,
    void *arg);

/*
 * Stop. A leader revokes its lease on the way out, so that another
 * coordinator takes over at once instead of after the TTL. NULL is fine.
 */
void coord_leader_free(struct coord_leader *cl);

enum coord_leader_state coord_leader_state(const struct coord_leader *cl);
/* Our fencing token while leader, else 0. */
int64_t coord_leader_token(const struct coord_leader *cl);
/* The holder's value and token as last seen (NULL and 0 if none). */
const char *coord_leader_holder(const struct coord_leader *cl);
int64_t coord_leader_holder_token(const struct coord_leader *cl);

/*
 * Run ops (RANGE, PUT, DELETE) if the leader key's create_revision is
 * token (0: our own token, -EPERM unless we are leader). The result's
 * succeeded says whether the guard held; when it did not, ops[0] of the
 * result is a range of the leader key (the current holder, if any).
 * Returns as etcd_txn().
 */
int coord_leader_guarded(struct coord_leader *cl, int64_t token,
    const struct etcd_op *ops, size_t nops, etcd_result_cb cb, void *arg,
    struct etcd_call **ret_call);

/*
 * troika_coord_leader{state} (1 for the current state),
 * troika_coord_leader_token, troika_coord_leader_changes_total.
 */
void coord_leader_write_metrics(const struct coord_leader *cl,
    struct evbuffer *out);

#endif
