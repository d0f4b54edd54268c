/*
 * troika.v1.Admin, but WatchEvents (coord_events.c):
 *   GetStatus: the view as it is now, the leader and the quorum. The
 *     response borrows the view's own messages (Hello strings, kept
 *     CheckResults): it is packed before the handler returns, so nothing
 *     is copied.
 *   ListActions: the records every coordinator mirrors.
 *   AcknowledgeAction, SetMaintenance, Switchover: writes to the store;
 *     the answer comes when etcd has answered. A client gone by then is
 *     no harm: the call's context outlives it (coord_admin_op).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "coord_conf.h"
#include "coord_quorum.h"
#include "coord_recovery.h"
#include "coord_redis.h"
#include "coord_tilt.h"
#include "coord_view.h"
#include "troika/v1/admin.pb-c.h"

static int
coord_admin_wanted(const Troika__V1__GetStatusRequest *req, const char *node)
{
	if (req->n_nodes == 0)
		return 1;
	for (size_t i = 0; i < req->n_nodes; i++)
		if (strcmp(req->nodes[i], node) == 0)
			return 1;
	return 0;
}

/* Maintenance in force, as the mutable pointers protobuf-c wants. */
static size_t
coord_admin_maint(struct coord *c, Troika__V1__Maintenance *out[64])
{
	const Troika__V1__Maintenance *m[64];
	size_t n = coord_recovery_maintenance(c->recovery, m, 64);

	for (size_t i = 0; i < n; i++)
		out[i] = (Troika__V1__Maintenance *)(uintptr_t)m[i];
	return n;
}

static int
coord_admin_start(struct grpc_call *call, void *arg)
{
	grpc_call_set_data(call, arg);
	return 0;
}

static void
coord_admin_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	struct coord *c = grpc_call_data(call);
	const struct coord_view *v = c->view;
	Troika__V1__GetStatusRequest *req;
	Troika__V1__GetStatusResponse rep =
	    TROIKA__V1__GET_STATUS_RESPONSE__INIT;
	Troika__V1__NodeStatus *ns = NULL, **pns = NULL;
	Troika__V1__CheckResult **results = NULL;
	Troika__V1__Maintenance *maint[64];
	Troika__V1__ClusterStatus clusters[COORD_CONF_MAX_CLUSTERS];
	Troika__V1__ClusterStatus *pclusters[COORD_CONF_MAX_CLUSTERS];
	size_t n = 0, nres = 0, maxres = 0;

	c->stats.status_requests++;
	req = troika__v1__get_status_request__unpack(NULL, len, msg);
	if (req == NULL) {
		grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
		    "cannot parse GetStatusRequest");
		return;
	}
	for (size_t i = 0; i < v->nnodes; i++)
		maxres += v->nodes[i]->nchecks;
	if ((v->nnodes > 0 &&
	        ((ns = calloc(v->nnodes, sizeof(*ns))) == NULL ||
	            (pns = calloc(v->nnodes, sizeof(*pns))) == NULL)) ||
	    (maxres > 0 &&
	        (results = calloc(maxres, sizeof(*results))) == NULL)) {
		grpc_call_finish(
		    call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < v->nnodes; i++) {
		const struct coord_node *node = v->nodes[i];
		Troika__V1__NodeStatus *s = &ns[n];

		if (!coord_admin_wanted(req, node->name))
			continue;
		troika__v1__node_status__init(s);
		s->node = node->name;
		s->connected = node->stream != 0;
		s->last_seen_unix_nano = node->last_seen_ns;
		s->agent_version = node->hello->version;
		s->agent_start_time_unix_nano =
		    node->hello->start_time_unix_nano;
		for (size_t j = 0; j < node->nchecks; j++)
			if (node->checks[j].last != NULL)
				results[nres + s->n_checks++] =
				    node->checks[j].last;
		/* results is NULL when no node has a check. */
		s->checks = s->n_checks > 0 ? &results[nres] : NULL;
		nres += s->n_checks;
		pns[n++] = s;
	}
	rep.coordinator = c->conf->name;
	rep.version = (char *)(uintptr_t)TROIKA_VERSION;
	rep.leader = coord_quorum_is_leader(c->quorum);
	rep.leader_name = (char *)(uintptr_t)coord_quorum_leader_name(c->quorum);
	rep.fencing_token = (uint64_t)coord_quorum_leader_token(c->quorum);
	rep.store = c->conf->store == COORD_STORE_ETCD ?
	    TROIKA__V1__STORE_KIND__STORE_KIND_ETCD :
	    TROIKA__V1__STORE_KIND__STORE_KIND_LOCAL;
	rep.quorum = coord_quorum_ok(c->quorum);
	rep.quorum_reason = (char *)(uintptr_t)coord_quorum_reason(c->quorum);
	rep.tilt_until_unix_nano = coord_tilt_until(c->tilt);
	rep.n_maintenance = coord_admin_maint(c, maint);
	rep.maintenance = maint;
	rep.n_clusters = coord_recovery_clusters(c->recovery, clusters,
	    COORD_CONF_MAX_CLUSTERS);
	for (size_t i = 0; i < rep.n_clusters; i++)
		pclusters[i] = &clusters[i];
	rep.clusters = pclusters;
	rep.nodes = pns;
	rep.n_nodes = n;
	rep.time_unix_nano = coord_now_ns();
	if (coord_send(call, &rep.base) == 0)
		grpc_call_finish(call, GRPC_STATUS_OK, NULL);
out:
	free(results);
	free(pns);
	free(ns);
	troika__v1__get_status_request__free_unpacked(req, NULL);
}

static void
coord_admin_close(struct grpc_call *call, int status)
{
	(void)call;
	(void)status;
}

static const struct grpc_handler coord_admin_handler = {
    .start = coord_admin_start,
    .message = coord_admin_message,
    .close = coord_admin_close,
};

/* ---- ListActions ---- */

static void
coord_admin_list_actions(struct grpc_call *call, const uint8_t *msg,
    size_t len)
{
	struct coord *c = grpc_call_data(call);
	Troika__V1__ListActionsRequest *req;
	Troika__V1__ListActionsResponse rep =
	    TROIKA__V1__LIST_ACTIONS_RESPONSE__INIT;
	const Troika__V1__ActionRecord **recs;
	size_t limit;

	if ((req = troika__v1__list_actions_request__unpack(NULL, len,
	    msg)) == NULL) {
		grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
		    "cannot parse ListActionsRequest");
		return;
	}
	limit = req->limit == 0 ? 100 : req->limit > 1000 ? 1000 : req->limit;
	if ((recs = calloc(limit, sizeof(*recs))) == NULL) {
		grpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
		    "out of memory");
		goto out;
	}
	rep.n_actions = coord_recovery_actions(c->recovery,
	    (const char *const *)req->nodes, req->n_nodes, recs, limit);
	rep.actions = (Troika__V1__ActionRecord **)(uintptr_t)recs;
	if (coord_send(call, &rep.base) == 0)
		grpc_call_finish(call, GRPC_STATUS_OK, NULL);
	free(recs);
out:
	troika__v1__list_actions_request__free_unpacked(req, NULL);
}

/* ---- writes: the call may be gone when the store answers ---- */

struct coord_admin_op {
	struct coord *c;
	struct grpc_call *call;  /* NULL once the client went away */
	int pending;             /* a store write is out */
};

static int
coord_admin_op_start(struct grpc_call *call, void *arg)
{
	struct coord_admin_op *op;

	if ((op = calloc(1, sizeof(*op))) == NULL)
		return -ENOMEM;
	op->c = arg;
	op->call = call;
	grpc_call_set_data(call, op);
	return 0;
}

static void
coord_admin_op_close(struct grpc_call *call, int status)
{
	struct coord_admin_op *op = grpc_call_data(call);

	(void)status;
	if (op == NULL)
		return;
	op->call = NULL;
	if (!op->pending)
		free(op);
}

/* The store answered; returns 1 when the op is still to be used. */
static int
coord_admin_op_done(struct coord_admin_op *op)
{
	op->pending = 0;
	if (op->call != NULL)
		return 1;
	free(op);
	return 0;
}

static void
coord_admin_not_leader(struct grpc_call *call, struct coord *c)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "not the leader; ask %s",
	    coord_quorum_leader_name(c->quorum)[0] != '\0' ?
	    coord_quorum_leader_name(c->quorum) : "the leader (none now)");
	grpc_call_finish(call, GRPC_STATUS_FAILED_PRECONDITION, msg);
}

static void
coord_admin_acked(int status, const char *message,
    const Troika__V1__ActionRecord *rec, void *arg)
{
	struct coord_admin_op *op = arg;
	Troika__V1__AcknowledgeActionResponse rep =
	    TROIKA__V1__ACKNOWLEDGE_ACTION_RESPONSE__INIT;

	if (!coord_admin_op_done(op))
		return;
	if (status != 0) {
		grpc_call_finish(op->call, GRPC_STATUS_UNAVAILABLE, message);
		return;
	}
	rep.action = (Troika__V1__ActionRecord *)(uintptr_t)rec;
	if (coord_send(op->call, &rep.base) == 0)
		grpc_call_finish(op->call, GRPC_STATUS_OK, NULL);
}

static void
coord_admin_acknowledge(struct grpc_call *call, const uint8_t *msg,
    size_t len)
{
	struct coord_admin_op *op = grpc_call_data(call);
	struct coord *c = op->c;
	Troika__V1__AcknowledgeActionRequest *req;
	int r;

	if ((req = troika__v1__acknowledge_action_request__unpack(NULL, len,
	    msg)) == NULL) {
		grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
		    "cannot parse AcknowledgeActionRequest");
		return;
	}
	op->pending = 1;
	r = coord_recovery_acknowledge(c->recovery, req->id, req->by,
	    coord_admin_acked, op);
	if (r < 0) {
		op->pending = 0;
		if (r == -EPERM)
			coord_admin_not_leader(call, c);
		else if (r == -ENOENT)
			grpc_call_finish(call, GRPC_STATUS_NOT_FOUND,
			    "no such action record");
		else if (r == -EINVAL)
			grpc_call_finish(call, GRPC_STATUS_FAILED_PRECONDITION,
			    "only a LOCKED record can be acknowledged");
		else
			grpc_call_finish(call, GRPC_STATUS_UNAVAILABLE,
			    strerror(-r));
	}
	troika__v1__acknowledge_action_request__free_unpacked(req, NULL);
}

static void
coord_admin_maint_set(int status, const char *message, void *arg)
{
	struct coord_admin_op *op = arg;
	Troika__V1__SetMaintenanceResponse rep =
	    TROIKA__V1__SET_MAINTENANCE_RESPONSE__INIT;
	Troika__V1__Maintenance *m[64];

	if (!coord_admin_op_done(op))
		return;
	if (status != 0) {
		grpc_call_finish(op->call, GRPC_STATUS_UNAVAILABLE, message);
		return;
	}
	rep.n_maintenance = coord_admin_maint(op->c, m);
	rep.maintenance = m;
	if (coord_send(op->call, &rep.base) == 0)
		grpc_call_finish(op->call, GRPC_STATUS_OK, NULL);
}

static void
coord_admin_set_maintenance(struct grpc_call *call, const uint8_t *msg,
    size_t len)
{
	struct coord_admin_op *op = grpc_call_data(call);
	Troika__V1__SetMaintenanceRequest *req;
	int r;

	if ((req = troika__v1__set_maintenance_request__unpack(NULL, len,
	    msg)) == NULL) {
		grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
		    "cannot parse SetMaintenanceRequest");
		return;
	}
	if (req->maintenance == NULL || (!req->clear &&
	    req->maintenance->until_unix_nano <= coord_now_ns())) {
		grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
		    "maintenance needs an until_unix_nano in the future");
		goto out;
	}
	if (req->maintenance->check[0] != '\0' &&
	    req->maintenance->node[0] == '\0') {
		grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
		    "a check's maintenance needs its node");
		goto out;
	}
	if (!coord_quorum_ok(op->c->quorum)) {
		grpc_call_finish(call, GRPC_STATUS_UNAVAILABLE,
		    coord_quorum_reason(op->c->quorum));
		goto out;
	}
	op->pending = 1;
	if ((r = coord_recovery_set_maintenance(op->c->recovery,
	    req->maintenance, req->clear, coord_admin_maint_set, op)) < 0) {
		op->pending = 0;
		grpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, strerror(-r));
	}
out:
	troika__v1__set_maintenance_request__free_unpacked(req, NULL);
}

/* ---- Switchover ---- */

static void
coord_admin_switched(int ok, const char *id, void *arg)
{
	struct coord_admin_op *op = arg;
	Troika__V1__SwitchoverResponse rep =
	    TROIKA__V1__SWITCHOVER_RESPONSE__INIT;

	if (!coord_admin_op_done(op))
		return;
	if (!ok) {
		grpc_call_finish(op->call, GRPC_STATUS_UNAVAILABLE,
		    "the switchover's record was not written");
		return;
	}
	rep.id = (char *)(uintptr_t)id;
	if (coord_send(op->call, &rep.base) == 0)
		grpc_call_finish(op->call, GRPC_STATUS_OK, NULL);
}

static void
coord_admin_switchover(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	struct coord_admin_op *op = grpc_call_data(call);
	struct coord *c = op->c;
	Troika__V1__SwitchoverRequest *req;
	const struct coord_cluster *cl = NULL;
	struct coord_redis *g;
	char why[512];
	int r;

	if ((req = troika__v1__switchover_request__unpack(NULL, len,
	    msg)) == NULL) {
		grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
		    "cannot parse SwitchoverRequest");
		return;
	}
	for (size_t i = 0; i < c->conf->nclusters; i++)
		if (strcmp(c->conf->clusters[i].name, req->cluster) == 0)
			cl = &c->conf->clusters[i];
	if (cl == NULL) {
		snprintf(why, sizeof(why), "no cluster \"%s\" in "
		    "recovery.clusters", req->cluster);
		grpc_call_finish(call, GRPC_STATUS_NOT_FOUND, why);
		goto out;
	}
	if ((g = coord_recovery_redis(c->recovery, cl->name)) == NULL) {
		snprintf(why, sizeof(why), "cluster %s is of kind %s: a "
		    "switchover is for redis clusters", cl->name,
		    coord_cluster_kind_str(cl->kind));
		grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, why);
		goto out;
	}
	if (!coord_quorum_is_leader(c->quorum)) {
		coord_admin_not_leader(call, c);
		goto out;
	}
	if (!coord_quorum_ok(c->quorum)) {
		grpc_call_finish(call, GRPC_STATUS_UNAVAILABLE,
		    coord_quorum_reason(c->quorum));
		goto out;
	}
	op->pending = 1;
	r = coord_redis_switchover(g, req->to_node, req->requested_by,
	    coord_admin_switched, op, why, sizeof(why));
	if (r < 0) {
		op->pending = 0;
		if (r == -EPERM)
			coord_admin_not_leader(call, c);
		else if (r == -EINVAL)
			grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, why);
		else if (r == -ENOMEM)
			grpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
			    why);
		else if (r == -EIO)
			grpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, why);
		else
			grpc_call_finish(call, GRPC_STATUS_FAILED_PRECONDITION,
			    why);
	}
out:
	troika__v1__switchover_request__free_unpacked(req, NULL);
}

static const struct grpc_handler coord_admin_switchover_handler = {
    .start = coord_admin_op_start,
    .message = coord_admin_switchover,
    .close = coord_admin_op_close,
};

static const struct grpc_handler coord_admin_list_handler = {
    .start = coord_admin_start,
    .message = coord_admin_list_actions,
    .close = coord_admin_close,
};

static const struct grpc_handler coord_admin_ack_handler = {
    .start = coord_admin_op_start,
    .message = coord_admin_acknowledge,
    .close = coord_admin_op_close,
};

static const struct grpc_handler coord_admin_maint_handler = {
    .start = coord_admin_op_start,
    .message = coord_admin_set_maintenance,
    .close = coord_admin_op_close,
};

int
coord_admin_register(struct coord *c)
{
	const struct grpc_method ms[] = {
	    { .path = "/troika.v1.Admin/GetStatus", .kind = GRPC_METHOD_UNARY,
	      .handler = &coord_admin_handler, .arg = c },
	    { .path = "/troika.v1.Admin/ListActions",
	      .kind = GRPC_METHOD_UNARY, .handler = &coord_admin_list_handler,
	      .arg = c },
	    { .path = "/troika.v1.Admin/AcknowledgeAction",
	      .kind = GRPC_METHOD_UNARY, .handler = &coord_admin_ack_handler,
	      .arg = c },
	    { .path = "/troika.v1.Admin/SetMaintenance",
	      .kind = GRPC_METHOD_UNARY, .handler = &coord_admin_maint_handler,
	      .arg = c },
	    { .path = "/troika.v1.Admin/Switchover",
	      .kind = GRPC_METHOD_UNARY,
	      .handler = &coord_admin_switchover_handler, .arg = c },
	};

	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
		if (grpc_server_add_method(c->srv, &ms[i]) < 0)
			return -1;
	return 0;
}
