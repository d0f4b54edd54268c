/*
 * troikactl switchover CLUSTER [--to NODE] [--by WHO] [--wait]: a planned
 * Redis switchover (Admin/Switchover, which only the leader answers). It
 * prints the procedure's record id; with --wait it then asks the same
 * coordinator (ListActions) until that record is final, prints how it
 * ended, and exits 0 only when it SUCCEEDED.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "ctl.h"
#include "ctl_fmt.h"
#include "ctl_json.h"
#include "ctl_rpc.h"
#include "grpc_status.h"

/* Between two looks at the record while waiting. */
#define CTL_SWITCH_POLL_MS 200
/* ListActions' answer has the procedure among its newest records. */
#define CTL_SWITCH_LIMIT 1000

/* The unary call's answer, or an error said on stderr (NULL). */
static ProtobufCMessage *
ctl_switch_call(struct ctl_rpc *r, const struct ctl_opts *o, const char *path,
    const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc)
{
	struct ctl_rpc_reply ac = {desc, NULL};
	int st;

	st = ctl_rpc_call(
	    r, path, req, o->timeout_ms, &ctl_rpc_reply_handler, &ac);
	if (st == CTL_RPC_NO_ANSWER)
		goto fail;
	if (r->stopped) {
		fprintf(stderr, "troikactl: interrupted\n");
		goto fail;
	}
	if (st != GRPC_STATUS_OK || ac.msg == NULL) {
		fprintf(stderr, "troikactl: %s: %s: %s\n", ctl_rpc_target(r),
		    grpc_status_str(st),
		    st != GRPC_STATUS_OK ? r->message
		                         : "no answer in the reply");
		goto fail;
	}
	return ac.msg;
fail:
	if (ac.msg != NULL)
		protobuf_c_message_free_unpacked(ac.msg, NULL);
	return NULL;
}

static int
ctl_switch_print(
    const struct ctl_opts *o, const ProtobufCMessage *m, const char *line)
{
	struct evbuffer *out = evbuffer_new();
	int e = -ENOMEM;

	if (out == NULL)
		goto fail;
	if (o->json) {
		struct ctl_json j;

		ctl_json_init(&j, out);
		ctl_json_message(&j, m);
		e = ctl_json_finish(&j);
	} else {
		e = evbuffer_add_printf(out, "%s\n", line) < 0 ? -ENOMEM : 0;
	}
	if (e == 0)
		e = ctl_flush(out, STDOUT_FILENO);
fail:
	if (e != 0)
		fprintf(stderr, "troikactl: stdout: %s\n", strerror(-e));
	if (out != NULL)
		evbuffer_free(out);
	return e;
}

/* Until record id is final: its last state printed, the exit status. */
static int
ctl_switch_wait(struct ctl_rpc *r, const struct ctl_opts *o, const char *id)
{
	Troika__V1__ListActionsRequest req =
	    TROIKA__V1__LIST_ACTIONS_REQUEST__INIT;
	const struct timespec pause = {0, CTL_SWITCH_POLL_MS * 1000000L};

	req.limit = CTL_SWITCH_LIMIT;
	for (;;) {
		Troika__V1__ListActionsResponse *rep;
		const Troika__V1__ActionRecord *a = NULL;
		char state[64], line[1024];
		int rc;

		rep = (Troika__V1__ListActionsResponse *)ctl_switch_call(r, o,
		    "/troika.v1.Admin/ListActions", &req.base,
		    &troika__v1__list_actions_response__descriptor);
		if (rep == NULL)
			return CTL_EXIT_FAIL;
		for (size_t i = 0; i < rep->n_actions && a == NULL; i++)
			if (strcmp(rep->actions[i]->id, id) == 0)
				a = rep->actions[i];
		if (a == NULL) {
			fprintf(stderr, "troikactl: %s: no record %s\n",
			    ctl_rpc_target(r), id);
			protobuf_c_message_free_unpacked(&rep->base, NULL);
			return CTL_EXIT_FAIL;
		}
		if (a->state !=
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING) {
			ctl_enum_short(&troika__v1__action_state__descriptor,
			    (int)a->state, "ACTION_STATE_", 0, state,
			    sizeof(state));
			snprintf(line, sizeof(line), "switchover %s %s: %s", id,
			    state, a->message);
			rc = ctl_switch_print(o, &a->base, line) != 0 ||
			        a->state !=
			            TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED
			    ? CTL_EXIT_FAIL
			    : CTL_EXIT_OK;
			protobuf_c_message_free_unpacked(&rep->base, NULL);
			return rc;
		}
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		nanosleep(&pause, NULL);
		if (r->interrupted) {
			fprintf(stderr,
			    "troikactl: interrupted; switchover %s "
			    "goes on\n",
			    id);
			return CTL_EXIT_FAIL;
		}
	}
}

int
ctl_switch_run(const struct ctl_opts *o)
{
	Troika__V1__SwitchoverRequest req =
	    TROIKA__V1__SWITCHOVER_REQUEST__INIT;
	Troika__V1__SwitchoverResponse *rep = NULL;
	char who[256];
	struct ctl_rpc r;
	int rc = CTL_EXIT_FAIL;

	if (ctl_rpc_init(&r, o) != 0)
		goto out;
	/* Only the leader writes records. */
	if (ctl_rpc_find_leader(&r) != 0)
		goto out;
	req.cluster = o->args[0];
	req.to_node = (char *)(uintptr_t)(o->to != NULL ? o->to : "");
	if (o->by != NULL)
		snprintf(who, sizeof(who), "%s", o->by);
	else
		ctl_whoami(who, sizeof(who));
	req.requested_by = who;
	rep = (Troika__V1__SwitchoverResponse *)ctl_switch_call(&r, o,
	    "/troika.v1.Admin/Switchover", &req.base,
	    &troika__v1__switchover_response__descriptor);
	if (rep == NULL)
		goto out;
	/* Without --wait the id alone, for scripts; with it, the end. */
	if (!o->wait) {
		rc = ctl_switch_print(o, &rep->base, rep->id) != 0
		    ? CTL_EXIT_FAIL
		    : CTL_EXIT_OK;
		goto out;
	}
	if (!o->json) {
		char line[256];

		snprintf(line, sizeof(line), "switchover %s started", rep->id);
		if (ctl_switch_print(o, &rep->base, line) != 0)
			goto out;
	}
	rc = ctl_switch_wait(&r, o, rep->id);
out:
	if (rep != NULL)
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	ctl_rpc_cleanup(&r);
	return rc;
}
