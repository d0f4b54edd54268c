/*
 * troikactl maintenance: what is in force (from Admin/GetStatus), and
 * `maintenance on|off [NODE [CHECK]]` (Admin/SetMaintenance) for the
 * cluster, a node or one check of a node. Nothing automated happens
 * inside maintenance; it ends by itself at its `until`.
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
#include "ctl_table.h"
#include "grpc_status.h"

static uint64_t
ctl_maint_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* "cluster", "node-1" or "node-1/db". */
static void
ctl_maint_scope(const Troika__V1__Maintenance *m, char *buf, size_t len)
{
	if (m->node[0] == '\0')
		snprintf(buf, len, "cluster");
	else if (m->check[0] == '\0')
		snprintf(buf, len, "%s", m->node);
	else
		snprintf(buf, len, "%s/%s", m->node, m->check);
}

int
ctl_maint_write(Troika__V1__Maintenance *const *m, size_t n, uint64_t now_ns,
    int color, struct evbuffer *out)
{
	static const char *const headers[] = {
	    "MAINTENANCE", "UNTIL", "LEFT", "BY", "REASON"};
	struct ctl_table *t;
	int r;

	if (n == 0)
		return evbuffer_add_printf(out, "no maintenance\n") < 0
		    ? -ENOMEM
		    : 0;
	if ((t = ctl_table_new(headers, 5)) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char scope[512], until[CTL_RFC3339_LEN], left[CTL_AGE_LEN];

		ctl_maint_scope(m[i], scope, sizeof(scope));
		ctl_table_row(t);
		ctl_table_cell(t, CTL_COLOR_YELLOW, scope);
		ctl_table_cell(t, CTL_COLOR_NONE,
		    ctl_fmt_rfc3339(
		        m[i]->until_unix_nano, 0, until, sizeof(until)));
		if (m[i]->until_unix_nano > now_ns)
			ctl_fmt_age((int64_t)(m[i]->until_unix_nano - now_ns),
			    left, sizeof(left));
		else
			snprintf(left, sizeof(left), "ended");
		ctl_table_cell(t, CTL_COLOR_NONE, left);
		ctl_table_cell(t, CTL_COLOR_NONE, m[i]->by);
		ctl_table_cell(t, CTL_COLOR_NONE, m[i]->reason);
	}
	r = ctl_table_write(t, color, out);
	ctl_table_free(t);
	return r;
}

/*
 * The maintenance in force as a SetMaintenanceResponse: the answer of
 * on/off as it is, and for list the GetStatus answer's part, so that all
 * three print the same JSON shape.
 */
static int
ctl_maint_output(const struct ctl_opts *o, Troika__V1__Maintenance **m,
    size_t n, uint64_t now_ns)
{
	Troika__V1__SetMaintenanceResponse rep =
	    TROIKA__V1__SET_MAINTENANCE_RESPONSE__INIT;
	struct evbuffer *out = evbuffer_new();
	int e = -ENOMEM;

	if (out == NULL)
		goto fail;
	rep.maintenance = m;
	rep.n_maintenance = n;
	if (o->json) {
		struct ctl_json j;

		ctl_json_init(&j, out);
		ctl_json_message(&j, &rep.base);
		e = ctl_json_finish(&j);
	} else {
		if (o->sub == CTL_SUB_ON || o->sub == CTL_SUB_OFF) {
			char scope[512];
			Troika__V1__Maintenance one =
			    TROIKA__V1__MAINTENANCE__INIT;

			one.node =
			    o->nargs > 0 ? o->args[0] : (char *)(uintptr_t) "";
			one.check =
			    o->nargs > 1 ? o->args[1] : (char *)(uintptr_t) "";
			ctl_maint_scope(&one, scope, sizeof(scope));
			evbuffer_add_printf(out, "maintenance %s for %s\n\n",
			    o->sub == CTL_SUB_ON ? "started" : "ended", scope);
		}
		e = ctl_maint_write(m, n, now_ns, o->color, out);
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
ctl_maint_run(const struct ctl_opts *o)
{
	Troika__V1__GetStatusRequest status =
	    TROIKA__V1__GET_STATUS_REQUEST__INIT;
	Troika__V1__SetMaintenanceRequest set =
	    TROIKA__V1__SET_MAINTENANCE_REQUEST__INIT;
	Troika__V1__Maintenance m = TROIKA__V1__MAINTENANCE__INIT;
	/* No node has an empty name: the answer carries no nodes. */
	char *none[] = {(char *)(uintptr_t) ""};
	struct ctl_rpc_reply mc = {NULL, NULL};
	const ProtobufCMessage *req;
	const char *path;
	char who[256];
	struct ctl_rpc r;
	uint64_t now = ctl_maint_now_ns();
	int st, rc = CTL_EXIT_FAIL;

	if (ctl_rpc_init(&r, o) != 0)
		goto out;
	if (o->sub == CTL_SUB_LIST) {
		status.nodes = none;
		status.n_nodes = 1;
		req = &status.base;
		path = "/troika.v1.Admin/GetStatus";
		mc.desc = &troika__v1__get_status_response__descriptor;
	} else {
		m.node = o->nargs > 0 ? o->args[0] : (char *)(uintptr_t) "";
		m.check = o->nargs > 1 ? o->args[1] : (char *)(uintptr_t) "";
		if (o->sub == CTL_SUB_ON) {
			m.until_unix_nano =
			    now + (uint64_t)o->for_ms * 1000000u;
			m.reason =
			    (char *)(uintptr_t)(o->reason != NULL ? o->reason
			                                          : "");
			if (o->by != NULL)
				snprintf(who, sizeof(who), "%s", o->by);
			else
				ctl_whoami(who, sizeof(who));
			m.by = who;
		}
		set.maintenance = &m;
		set.clear = o->sub == CTL_SUB_OFF;
		req = &set.base;
		path = "/troika.v1.Admin/SetMaintenance";
		mc.desc = &troika__v1__set_maintenance_response__descriptor;
	}
	st =
	    ctl_rpc_call(&r, path, req, o->timeout_ms, &ctl_rpc_reply_handler, &mc);
	if (st == CTL_RPC_NO_ANSWER)
		goto out;
	if (r.stopped) {
		fprintf(stderr, "troikactl: interrupted\n");
		goto out;
	}
	if (st != GRPC_STATUS_OK || mc.msg == NULL) {
		fprintf(stderr, "troikactl: %s: %s: %s\n", ctl_rpc_target(&r),
		    grpc_status_str(st),
		    st != GRPC_STATUS_OK ? r.message
		                         : "no answer in the reply");
		goto out;
	}
	if (o->sub == CTL_SUB_LIST) {
		Troika__V1__GetStatusResponse *g =
		    (Troika__V1__GetStatusResponse *)mc.msg;

		rc = ctl_maint_output(
		    o, g->maintenance, g->n_maintenance, g->time_unix_nano);
	} else {
		Troika__V1__SetMaintenanceResponse *s =
		    (Troika__V1__SetMaintenanceResponse *)mc.msg;

		rc = ctl_maint_output(o, s->maintenance, s->n_maintenance, now);
	}
out:
	if (mc.msg != NULL)
		protobuf_c_message_free_unpacked(mc.msg, NULL);
	ctl_rpc_cleanup(&r);
	return rc;
}
