/*
 * troikactl actions: the recovery actions the coordinators recorded
 * (Admin/ListActions, newest first), and `actions ack ID` to release a
 * LOCKED record once an operator has looked at the service
 * (Admin/AcknowledgeAction, which only the leader answers).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "ctl.h"
#include "ctl_fmt.h"
#include "ctl_json.h"
#include "ctl_rpc.h"
#include "ctl_table.h"
#include "grpc_status.h"

static enum ctl_color
ctl_action_color(int state)
{
	switch (state) {
	case TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING:
		return CTL_COLOR_YELLOW;
	case TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED:
		return CTL_COLOR_GREEN;
	case TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED:
		return CTL_COLOR_RED;
	case TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED:
		return CTL_COLOR_ALERT;
	default:
		return CTL_COLOR_NONE;
	}
}

/* How long an action took: "850ms", "2.3s", "1m5s". */
static char *
ctl_action_took(uint64_t ns, char *buf, size_t len)
{
	if (ns < 1000000000u)
		snprintf(
		    buf, len, "%llums", (unsigned long long)(ns / 1000000));
	else if (ns < 60 * 1000000000ull)
		snprintf(buf, len, "%llu.%llus",
		    (unsigned long long)(ns / 1000000000u),
		    (unsigned long long)(ns % 1000000000u / 100000000u));
	else
		ctl_fmt_age((int64_t)ns, buf, len);
	return buf;
}

int
ctl_actions_write(Troika__V1__ActionRecord *const *recs, size_t n, int color,
    struct evbuffer *out)
{
	static const char *const headers[] = {"ID", "STARTED", "NODE", "CHECK",
	    "ACTION", "ATTEMPT", "STATE", "TOKEN", "TOOK", "MESSAGE"};
	struct ctl_table *t;
	size_t locked = 0;
	int r;

	if (n == 0)
		return evbuffer_add_printf(out, "no actions\n") < 0 ? -ENOMEM
		                                                    : 0;
	if ((t = ctl_table_new(headers, 10)) == NULL)
		return -ENOMEM;
	ctl_table_align(t, 5, CTL_ALIGN_RIGHT);
	ctl_table_align(t, 7, CTL_ALIGN_RIGHT);
	for (size_t i = 0; i < n; i++) {
		const Troika__V1__ActionRecord *a = recs[i];
		char when[CTL_RFC3339_LEN], state[64], took[CTL_AGE_LEN];
		struct evbuffer *act = evbuffer_new();

		if (act == NULL) {
			ctl_table_free(t);
			return -ENOMEM;
		}
		/* The action and its arguments, as one would type them. */
		evbuffer_add_printf(act, "%s", a->action);
		for (size_t k = 0; k < a->n_args; k++)
			evbuffer_add_printf(act, " %s", a->args[k]);
		evbuffer_add(act, "", 1);
		ctl_enum_short(&troika__v1__action_state__descriptor,
		    (int)a->state, "ACTION_STATE_", 0, state, sizeof(state));
		locked +=
		    a->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED;
		ctl_table_row(t);
		ctl_table_cell(t, CTL_COLOR_NONE, a->id);
		ctl_table_cell(t, CTL_COLOR_NONE,
		    a->started_unix_nano == 0
		        ? "-"
		        : ctl_fmt_rfc3339(
		              a->started_unix_nano, 0, when, sizeof(when)));
		/* A cluster's procedure has no node: its cluster instead. */
		if (a->node[0] == '\0' && a->cluster[0] != '\0')
			ctl_table_cellf(t, CTL_COLOR_NONE, "cluster %s",
			    a->cluster);
		else
			ctl_table_cell(t, CTL_COLOR_NONE, a->node);
		ctl_table_cell(t, CTL_COLOR_NONE, a->check);
		ctl_table_cell(
		    t, CTL_COLOR_NONE, (const char *)evbuffer_pullup(act, -1));
		ctl_table_cellf(t, CTL_COLOR_NONE, "%u", a->attempt);
		ctl_table_cell(t, ctl_action_color((int)a->state), state);
		ctl_table_cellf(t, CTL_COLOR_NONE, "%llu",
		    (unsigned long long)a->fencing_token);
		/* As the agent measured it: none while running or locked. */
		ctl_table_cell(t, CTL_COLOR_NONE,
		    a->duration_nano == 0 ? "-"
		                          : ctl_action_took(a->duration_nano,
		                                took, sizeof(took)));
		/* What became of it; while nothing has, why it started. */
		ctl_table_cell(t, CTL_COLOR_NONE,
		    a->message[0] != '\0' ? a->message : a->reason);
		evbuffer_free(act);
	}
	r = ctl_table_write(t, color, out);
	ctl_table_free(t);
	if (r == 0 && locked > 0 &&
	    evbuffer_add_printf(out,
	        "\n%s%zu LOCKED: no recovery of %s starts until an operator "
	        "has looked and run 'troikactl actions ack ID'%s\n",
	        color ? ctl_color_on(CTL_COLOR_ALERT) : "", locked,
	        locked == 1 ? "its check" : "their checks",
	        color ? CTL_COLOR_OFF : "") < 0)
		r = -ENOMEM;
	return r;
}

static int
ctl_actions_output(const struct ctl_opts *o, const ProtobufCMessage *rep)
{
	struct evbuffer *out = evbuffer_new();
	int e = -ENOMEM;

	if (out == NULL)
		goto fail;
	if (o->json) {
		struct ctl_json j;

		ctl_json_init(&j, out);
		ctl_json_message(&j, rep);
		e = ctl_json_finish(&j);
	} else if (rep->descriptor ==
	    &troika__v1__list_actions_response__descriptor) {
		const Troika__V1__ListActionsResponse *l =
		    (const Troika__V1__ListActionsResponse *)rep;

		e = ctl_actions_write(l->actions, l->n_actions, o->color, out);
	} else {
		const Troika__V1__AcknowledgeActionResponse *a =
		    (const Troika__V1__AcknowledgeActionResponse *)rep;

		if (a->action == NULL)
			e = -EBADMSG;
		else if (evbuffer_add_printf(out, "action ") < 0 ||
		    ctl_fmt_clean(out, a->action->id) < 0 ||
		    evbuffer_add_printf(out, " acknowledged by ") < 0 ||
		    ctl_fmt_clean(out, a->action->acknowledged_by) < 0 ||
		    evbuffer_add(out, "\n\n", 2) != 0)
			e = -ENOMEM;
		else
			e = ctl_actions_write(&a->action, 1, o->color, out);
	}
	if (e != 0)
		goto fail;
	if ((e = ctl_flush(out, STDOUT_FILENO)) != 0) {
		fprintf(stderr, "troikactl: stdout: %s\n", strerror(-e));
		evbuffer_free(out);
		return CTL_EXIT_FAIL;
	}
	evbuffer_free(out);
	return CTL_EXIT_OK;
fail:
	fprintf(
	    stderr, "troikactl: cannot format the answer: %s\n", strerror(-e));
	if (out != NULL)
		evbuffer_free(out);
	return CTL_EXIT_FAIL;
}

int
ctl_actions_run(const struct ctl_opts *o)
{
	Troika__V1__ListActionsRequest list =
	    TROIKA__V1__LIST_ACTIONS_REQUEST__INIT;
	Troika__V1__AcknowledgeActionRequest ack =
	    TROIKA__V1__ACKNOWLEDGE_ACTION_REQUEST__INIT;
	struct ctl_rpc_reply ac = {NULL, NULL};
	const ProtobufCMessage *req;
	const char *path;
	char who[256];
	struct ctl_rpc r;
	int st, rc = CTL_EXIT_FAIL;

	if (ctl_rpc_init(&r, o) != 0)
		goto out;
	if (o->sub == CTL_SUB_ACK) {
		/* Only the leader writes records. */
		if (ctl_rpc_find_leader(&r) != 0)
			goto out;
		ack.id = o->args[0];
		if (o->by != NULL)
			snprintf(who, sizeof(who), "%s", o->by);
		else
			ctl_whoami(who, sizeof(who));
		ack.by = who;
		req = &ack.base;
		path = "/troika.v1.Admin/AcknowledgeAction";
		ac.desc = &troika__v1__acknowledge_action_response__descriptor;
	} else {
		list.nodes = o->args;
		list.n_nodes = o->nargs;
		list.limit = o->limit;
		req = &list.base;
		path = "/troika.v1.Admin/ListActions";
		ac.desc = &troika__v1__list_actions_response__descriptor;
	}
	st = ctl_rpc_call(
	    &r, path, req, o->timeout_ms, &ctl_rpc_reply_handler, &ac);
	if (st == CTL_RPC_NO_ANSWER)
		goto out;
	if (r.stopped) {
		fprintf(stderr, "troikactl: interrupted\n");
		goto out;
	}
	if (st != GRPC_STATUS_OK || ac.msg == NULL) {
		fprintf(stderr, "troikactl: %s: %s: %s\n", ctl_rpc_target(&r),
		    grpc_status_str(st),
		    st != GRPC_STATUS_OK ? r.message
		                         : "no answer in the reply");
		goto out;
	}
	rc = ctl_actions_output(o, ac.msg);
out:
	if (ac.msg != NULL)
		protobuf_c_message_free_unpacked(ac.msg, NULL);
	ctl_rpc_cleanup(&r);
	return rc;
}
