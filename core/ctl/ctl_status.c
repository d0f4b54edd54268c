/*
 * troikactl status [NODE...]: Admin/GetStatus, shown as a header and two
 * tables (nodes, then checks), or as one JSON document.
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

/* Header lines: "label" padded to this width. */
#define CTL_STATUS_LABEL "%-13s"

/* An age "ago", relative to the coordinator's answer; "-" if never. */
static char *
ctl_status_ago(uint64_t now, uint64_t then, char *buf, size_t len)
{
	char age[CTL_AGE_LEN];

	if (then == 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	ctl_fmt_age((int64_t)(now - then), age, sizeof(age));
	snprintf(buf, len, "%s%s", age, then <= now ? " ago" : "");
	return buf;
}

static void
ctl_status_line(struct evbuffer *out, int color, enum ctl_color c,
    const char *label, const char *value)
{
	const char *on = color ? ctl_color_on(c) : "";

	evbuffer_add_printf(out, CTL_STATUS_LABEL, label);
	evbuffer_add_printf(out, "%s", on);
	ctl_fmt_clean(out, value);
	evbuffer_add_printf(out, "%s\n", *on != '\0' ? CTL_COLOR_OFF : "");
}

static void
ctl_status_header(
    const Troika__V1__GetStatusResponse *rep, int color, struct evbuffer *out)
{
	char buf[512], kind[64], t[CTL_RFC3339_LEN];
	size_t nchecks = 0, nconnected = 0, counts[5] = {0};
	enum ctl_color c = CTL_COLOR_NONE;

	snprintf(
	    buf, sizeof(buf), "%s, version %s", rep->coordinator, rep->version);
	ctl_status_line(out, color, CTL_COLOR_NONE, "coordinator", buf);

	ctl_enum_short(&troika__v1__store_kind__descriptor, (int)rep->store,
	    "STORE_KIND_", 1, kind, sizeof(kind));
	if (rep->store == TROIKA__V1__STORE_KIND__STORE_KIND_LOCAL) {
		/* Even when it says quorum: one file, no peers to agree. */
		snprintf(buf, sizeof(buf), "%s, NO QUORUM (local store)", kind);
		c = CTL_COLOR_ALERT;
	} else if (!rep->quorum) {
		snprintf(buf, sizeof(buf),
		    "%s, NO QUORUM: no action is taken%s%s%s", kind,
		    rep->quorum_reason[0] != '\0' ? " (" : "",
		    rep->quorum_reason,
		    rep->quorum_reason[0] != '\0' ? ")" : "");
		c = CTL_COLOR_ALERT;
	} else
		snprintf(buf, sizeof(buf), "%s, quorum", kind);
	ctl_status_line(out, color, c, "store", buf);

	c = CTL_COLOR_NONE;
	if (rep->leader_name[0] == '\0') {
		snprintf(buf, sizeof(buf), "none");
		c = CTL_COLOR_YELLOW;
	} else
		snprintf(buf, sizeof(buf), "%s%s, fencing token %llu",
		    rep->leader_name, rep->leader ? " (this coordinator)" : "",
		    (unsigned long long)rep->fencing_token);
	ctl_status_line(out, color, c, "leader", buf);

	for (size_t i = 0; i < rep->n_nodes; i++) {
		nconnected += rep->nodes[i]->connected != 0;
		for (size_t j = 0; j < rep->nodes[i]->n_checks; j++) {
			unsigned s = (unsigned)rep->nodes[i]->checks[j]->status;

			counts[s < 5 ? s : 0]++;
			nchecks++;
		}
	}
	snprintf(
	    buf, sizeof(buf), "%zu, %zu connected", rep->n_nodes, nconnected);
	ctl_status_line(out, color,
	    nconnected < rep->n_nodes ? CTL_COLOR_RED : CTL_COLOR_NONE, "nodes",
	    buf);
	/* ok, warning, critical, unknown, then anything else. */
	snprintf(buf, sizeof(buf), "%zu", nchecks);
	for (unsigned s = 1; s <= 5; s++) {
		static const char *const names[] = {
		    "", "ok", "warning", "critical", "unknown", "unspecified"};
		size_t n = counts[s % 5];

		if (n > 0)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
			    "%s %zu %s", strchr(buf, ':') ? "," : ":", n,
			    names[s]);
	}
	c = counts[TROIKA__V1__CHECK_STATUS__CHECK_STATUS_CRITICAL] > 0
	    ? CTL_COLOR_RED
	    : counts[TROIKA__V1__CHECK_STATUS__CHECK_STATUS_WARNING] > 0 ||
	        counts[TROIKA__V1__CHECK_STATUS__CHECK_STATUS_UNKNOWN] > 0 ||
	        counts[0] > 0
	    ? CTL_COLOR_YELLOW
	    : CTL_COLOR_NONE;
	ctl_status_line(out, color, c, "checks", buf);
	if (rep->tilt_until_unix_nano != 0) {
		char left[CTL_AGE_LEN];

		ctl_fmt_age(
		    (int64_t)(rep->tilt_until_unix_nano - rep->time_unix_nano),
		    left, sizeof(left));
		snprintf(buf, sizeof(buf),
		    "TILT until %s (%s): opinions withheld",
		    ctl_fmt_rfc3339(rep->tilt_until_unix_nano, 0, t, sizeof(t)),
		    left);
		ctl_status_line(out, color, CTL_COLOR_ALERT, "tilt", buf);
	}
	if (rep->n_maintenance > 0) {
		snprintf(buf, sizeof(buf),
		    "%zu in force: nothing automated "
		    "happens there",
		    rep->n_maintenance);
		ctl_status_line(
		    out, color, CTL_COLOR_YELLOW, "maintenance", buf);
	}
	for (size_t i = 0; i < rep->n_clusters; i++) {
		const Troika__V1__ClusterStatus *cs = rep->clusters[i];
		char state[32];
		int open = cs->procedure_state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING ||
		    cs->procedure_state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED;

		snprintf(buf, sizeof(buf), "%s (%s)", cs->name, cs->kind);
		if (cs->primary[0] != '\0')
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
			    ", primary %s %s", cs->primary,
			    cs->primary_address);
		if (cs->procedure_id[0] != '\0') {
			ctl_enum_short(&troika__v1__action_state__descriptor,
			    (int)cs->procedure_state, "ACTION_STATE_", 0, state,
			    sizeof(state));
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
			    ", last procedure %s %s", cs->procedure_id, state);
		}
		ctl_status_line(out, color, open ? CTL_COLOR_YELLOW :
		    CTL_COLOR_NONE, "cluster", buf);
	}
	ctl_status_line(out, color, CTL_COLOR_NONE, "time",
	    ctl_fmt_rfc3339(rep->time_unix_nano, 3, t, sizeof(t)));
}

static int
ctl_status_nodes(
    const Troika__V1__GetStatusResponse *rep, int color, struct evbuffer *out)
{
	static const char *const headers[] = {
	    "NODE", "CONNECTED", "LAST SEEN", "AGENT", "STARTED"};
	struct ctl_table *t;
	char ago[64];
	int r;

	if ((t = ctl_table_new(headers, 5)) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < rep->n_nodes; i++) {
		const Troika__V1__NodeStatus *n = rep->nodes[i];

		ctl_table_row(t);
		ctl_table_cell(t, CTL_COLOR_NONE, n->node);
		ctl_table_cell(t,
		    n->connected ? CTL_COLOR_GREEN : CTL_COLOR_RED,
		    n->connected ? "yes" : "NO");
		ctl_table_cell(t, CTL_COLOR_NONE,
		    ctl_status_ago(rep->time_unix_nano, n->last_seen_unix_nano,
		        ago, sizeof(ago)));
		ctl_table_cell(t, CTL_COLOR_NONE, n->agent_version);
		ctl_table_cell(t, CTL_COLOR_NONE,
		    ctl_status_ago(rep->time_unix_nano,
		        n->agent_start_time_unix_nano, ago, sizeof(ago)));
	}
	r = ctl_table_write(t, color, out);
	ctl_table_free(t);
	return r;
}

static int
ctl_status_checks(
    const Troika__V1__GetStatusResponse *rep, int color, struct evbuffer *out)
{
	static const char *const headers[] = {
	    "NODE", "CHECK", "STATUS", "EVIDENCE", "AGE", "RUNS", "MESSAGE"};
	struct ctl_table *t;
	char s[64], ev[64], age[CTL_AGE_LEN];
	int r;

	if ((t = ctl_table_new(headers, 7)) == NULL)
		return -ENOMEM;
	ctl_table_align(t, 5, CTL_ALIGN_RIGHT);
	for (size_t i = 0; i < rep->n_nodes; i++) {
		const Troika__V1__NodeStatus *n = rep->nodes[i];

		for (size_t j = 0; j < n->n_checks; j++) {
			const Troika__V1__CheckResult *c = n->checks[j];

			ctl_enum_short(&troika__v1__check_status__descriptor,
			    (int)c->status, "CHECK_STATUS_", 0, s, sizeof(s));
			if (c->evidence ==
			    TROIKA__V1__EVIDENCE__EVIDENCE_UNSPECIFIED)
				snprintf(ev, sizeof(ev), "-");
			else
				ctl_enum_short(
				    &troika__v1__evidence__descriptor,
				    (int)c->evidence, "EVIDENCE_", 1, ev,
				    sizeof(ev));
			ctl_table_row(t);
			ctl_table_cell(t, CTL_COLOR_NONE, n->node);
			ctl_table_cell(t, CTL_COLOR_NONE, c->check);
			ctl_table_cellf(t,
			    ctl_check_status_color((int)c->status), "%s%s", s,
			    c->timed_out ? " (timed out)" : "");
			ctl_table_cell(t, CTL_COLOR_NONE, ev);
			if (c->time_unix_nano == 0)
				ctl_table_cell(t, CTL_COLOR_NONE, "-");
			else
				ctl_table_cell(t, CTL_COLOR_NONE,
				    ctl_fmt_age((int64_t)(rep->time_unix_nano -
				                    c->time_unix_nano),
				        age, sizeof(age)));
			ctl_table_cellf(t, CTL_COLOR_NONE, "%llu",
			    (unsigned long long)c->run);
			ctl_table_cell(t, CTL_COLOR_NONE, c->message);
		}
	}
	r = ctl_table_nrows(t) > 0 ? ctl_table_write(t, color, out) : 0;
	if (ctl_table_nrows(t) == 0)
		evbuffer_add_printf(out, "no check results\n");
	ctl_table_free(t);
	return r;
}

/* Every field, by the descriptor: a newer proto shows without a change. */
static int
ctl_status_json(const Troika__V1__GetStatusResponse *rep, struct evbuffer *out)
{
	struct ctl_json j;

	ctl_json_init(&j, out);
	ctl_json_message(&j, &rep->base);
	return ctl_json_finish(&j);
}

int
ctl_status_write(const Troika__V1__GetStatusResponse *rep, int json, int color,
    struct evbuffer *out)
{
	int r = 0;

	if (json)
		return ctl_status_json(rep, out);
	ctl_status_header(rep, color, out);
	if (evbuffer_add(out, "\n", 1) != 0)
		return -ENOMEM;
	if (rep->n_maintenance > 0 &&
	    ((r = ctl_maint_write(rep->maintenance, rep->n_maintenance,
	          rep->time_unix_nano, color, out)) != 0 ||
	        evbuffer_add(out, "\n", 1) != 0))
		return r != 0 ? r : -ENOMEM;
	if (rep->n_nodes == 0) {
		evbuffer_add_printf(out, "no nodes\n");
		return 0;
	}
	if ((r = ctl_status_nodes(rep, color, out)) != 0 ||
	    evbuffer_add(out, "\n", 1) != 0)
		return r != 0 ? r : -ENOMEM;
	return ctl_status_checks(rep, color, out);
}

int
ctl_flush(struct evbuffer *buf, int fd)
{
	while (evbuffer_get_length(buf) > 0) {
		int n = evbuffer_write(buf, fd);

		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
	}
	return 0;
}

/* Nodes asked for by name that the coordinator does not know. */
static size_t
ctl_status_missing(
    const struct ctl_opts *o, const Troika__V1__GetStatusResponse *rep)
{
	size_t missing = 0;

	for (size_t i = 0; i < o->nargs; i++) {
		size_t k;

		for (k = 0; k < rep->n_nodes; k++)
			if (strcmp(rep->nodes[k]->node, o->args[i]) == 0)
				break;
		if (k == rep->n_nodes) {
			fprintf(stderr, "troikactl: %s: no node '%s'\n",
			    rep->coordinator, o->args[i]);
			missing++;
		}
	}
	return missing;
}

int
ctl_status_run(const struct ctl_opts *o)
{
	Troika__V1__GetStatusRequest req = TROIKA__V1__GET_STATUS_REQUEST__INIT;
	struct ctl_rpc_reply sc = {
		&troika__v1__get_status_response__descriptor, NULL,
	};
	const Troika__V1__GetStatusResponse *rep;
	struct evbuffer *out = NULL;
	struct ctl_rpc r;
	int st, rc = CTL_EXIT_FAIL, e;

	if (ctl_rpc_init(&r, o) != 0)
		goto out;
	req.nodes = o->args;
	req.n_nodes = o->nargs;
	st = ctl_rpc_call(&r, "/troika.v1.Admin/GetStatus", &req.base,
	    o->timeout_ms, &ctl_rpc_reply_handler, &sc);
	if (st == CTL_RPC_NO_ANSWER)
		goto out;
	if (r.stopped) {
		fprintf(stderr, "troikactl: interrupted\n");
		goto out;
	}
	if (st != GRPC_STATUS_OK || sc.msg == NULL) {
		fprintf(stderr, "troikactl: %s: %s: %s\n", ctl_rpc_target(&r),
		    grpc_status_str(st),
		    st != GRPC_STATUS_OK ? r.message
		                         : "no answer in the reply");
		goto out;
	}
	rep = (const Troika__V1__GetStatusResponse *)sc.msg;
	if ((out = evbuffer_new()) == NULL ||
	    (e = ctl_status_write(rep, o->json, o->color, out)) != 0) {
		fprintf(stderr, "troikactl: cannot format the status: %s\n",
		    strerror(out == NULL ? ENOMEM : -e));
		goto out;
	}
	if ((e = ctl_flush(out, STDOUT_FILENO)) != 0) {
		fprintf(stderr, "troikactl: stdout: %s\n", strerror(-e));
		goto out;
	}
	rc = ctl_status_missing(o, rep) > 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
out:
	if (out != NULL)
		evbuffer_free(out);
	if (sc.msg != NULL)
		protobuf_c_message_free_unpacked(sc.msg, NULL);
	ctl_rpc_cleanup(&r);
	return rc;
}
