/*
 * troika.v1.Admin/GetStatus: the view as it is now. The response borrows
 * the view's own messages (Hello strings, kept CheckResults): it is packed
 * before the handler returns, so nothing is copied.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "coord_conf.h"
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
	/* One coordinator with no store yet: it leads itself, no quorum. */
	rep.leader = 1;
	rep.leader_name = c->conf->name;
	rep.store = TROIKA__V1__STORE_KIND__STORE_KIND_LOCAL;
	rep.quorum = 1;
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

int
coord_admin_register(struct coord *c)
{
	const struct grpc_method m = {
	    .path = "/troika.v1.Admin/GetStatus",
	    .kind = GRPC_METHOD_UNARY,
	    .handler = &coord_admin_handler,
	    .arg = c,
	};

	return grpc_server_add_method(c->srv, &m);
}
