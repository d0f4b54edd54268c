/*
 * From rows to facts, and from facts to a check result.
 *
 * The rules (README.md has the table):
 *  CRITICAL  wsrep_on OFF (with galera: true), wsrep_connected OFF,
 *            cluster status not Primary, wsrep_ready OFF; with
 *            replication: true, no replication configured or an IO/SQL
 *            thread not running;
 *  WARNING   local state other than Synced (Donor/Desynced, Joining,
 *            Joined) while Primary and ready, cluster smaller than
 *            expected_cluster_size, flow control paused above
 *            flow_control_warning percent of the time, connections at
 *            connections_warning percent of max_connections, replication
 *            lag over max_replication_lag or unknown.
 * What the server says about its configuration is certain evidence;
 * Galera membership (not Primary, not connected, not ready: true for a
 * moment in every view change), timeouts and lost connections (mysql.c)
 * are ambiguous.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mysql_plugin.h"

/* Galera's wsrep_local_state numbers. */
#define WSREP_STATE_SYNCED 4

const char mysql_q_status[] = "SHOW GLOBAL STATUS WHERE Variable_name IN ("
    "'wsrep_local_state_uuid', 'wsrep_cluster_state_uuid', "
    "'wsrep_cluster_status', 'wsrep_local_state', "
    "'wsrep_local_state_comment', 'wsrep_cluster_size', 'wsrep_ready', "
    "'wsrep_connected', 'wsrep_last_committed', "
    "'wsrep_flow_control_paused', 'wsrep_flow_control_paused_ns', "
    "'wsrep_local_recv_queue', 'wsrep_local_send_queue', "
    "'wsrep_provider_version', 'Threads_connected')";
const char mysql_q_variables[] = "SHOW GLOBAL VARIABLES WHERE Variable_name "
    "IN ('max_connections', 'read_only', 'wsrep_on')";
const char mysql_q_replicas[] = "SHOW ALL SLAVES STATUS";

void
mysql_facts_reset(struct mysql_facts *f)
{
	memset(f, 0, sizeof(*f));
	f->cluster_size = f->local_state = f->last_committed = -1;
	f->paused_ns = f->recv_queue = f->send_queue = -1;
	f->threads_connected = f->max_connections = -1;
	f->fc_paused = -1;
	f->ready = f->connected = f->read_only = f->wsrep_on = -1;
}

/* A printable copy of a value (control bytes become '?'). */
static void
mysql_text(char *dst, size_t dstlen, const char *v, unsigned long len)
{
	size_t n = len < dstlen - 1 ? len : dstlen - 1;

	if (v == NULL)
		n = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];

		dst[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	dst[n] = '\0';
}

/* A whole non-negative decimal; -1 when v is not one. */
static int64_t
mysql_int(const char *v, unsigned long len)
{
	int64_t n = 0;

	if (v == NULL || len == 0 || len > 18)
		return -1;
	for (unsigned long i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return n;
}

/* ON/OFF (also YES/NO, 1/0); -1 for anything else. */
static int
mysql_bool(const char *v, unsigned long len)
{
	if (v == NULL)
		return -1;
	if ((len == 2 && strncasecmp(v, "ON", 2) == 0) ||
	    (len == 3 && strncasecmp(v, "YES", 3) == 0) ||
	    (len == 1 && v[0] == '1'))
		return 1;
	if ((len == 3 && strncasecmp(v, "OFF", 3) == 0) ||
	    (len == 2 && strncasecmp(v, "NO", 2) == 0) ||
	    (len == 1 && v[0] == '0'))
		return 0;
	return -1;
}

static double
mysql_double(const char *v, unsigned long len)
{
	char buf[64], *end;
	double d;

	if (v == NULL || len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, v, len);
	buf[len] = '\0';
	d = strtod(buf, &end);
	return *end == '\0' && d >= 0 ? d : -1;
}

static int
mysql_name_is(const char *name, const char *want)
{
	return name != NULL && strcasecmp(name, want) == 0;
}

/* One Variable_name/Value row of SHOW GLOBAL STATUS or VARIABLES. */
static void
mysql_facts_var(struct mysql_facts *f, const char *name, const char *v,
    unsigned long len)
{
	static const struct {
		const char *name;
		size_t off;
	} texts[] = {
		{ "wsrep_local_state_uuid",
		    offsetof(struct mysql_facts, local_state_uuid) },
		{ "wsrep_cluster_state_uuid",
		    offsetof(struct mysql_facts, cluster_state_uuid) },
		{ "wsrep_cluster_status",
		    offsetof(struct mysql_facts, cluster_status) },
		{ "wsrep_local_state_comment",
		    offsetof(struct mysql_facts, local_state_comment) },
		{ "wsrep_provider_version",
		    offsetof(struct mysql_facts, provider_version) },
	}, ints[] = {
		{ "wsrep_cluster_size", offsetof(struct mysql_facts, cluster_size) },
		{ "wsrep_local_state", offsetof(struct mysql_facts, local_state) },
		{ "wsrep_last_committed",
		    offsetof(struct mysql_facts, last_committed) },
		{ "wsrep_flow_control_paused_ns",
		    offsetof(struct mysql_facts, paused_ns) },
		{ "wsrep_local_recv_queue", offsetof(struct mysql_facts, recv_queue) },
		{ "wsrep_local_send_queue", offsetof(struct mysql_facts, send_queue) },
		{ "Threads_connected",
		    offsetof(struct mysql_facts, threads_connected) },
		{ "max_connections", offsetof(struct mysql_facts, max_connections) },
	}, bools[] = {
		{ "wsrep_ready", offsetof(struct mysql_facts, ready) },
		{ "wsrep_connected", offsetof(struct mysql_facts, connected) },
		{ "read_only", offsetof(struct mysql_facts, read_only) },
		{ "wsrep_on", offsetof(struct mysql_facts, wsrep_on) },
	};
	char *base = (char *)f;

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (mysql_name_is(name, texts[i].name)) {
			mysql_text(base + texts[i].off, MYSQL_TEXT_MAX, v, len);
			return;
		}
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		if (mysql_name_is(name, ints[i].name)) {
			*(int64_t *)(void *)(base + ints[i].off) =
			    mysql_int(v, len);
			return;
		}
	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++)
		if (mysql_name_is(name, bools[i].name)) {
			*(int *)(void *)(base + bools[i].off) =
			    mysql_bool(v, len);
			return;
		}
	if (mysql_name_is(name, "wsrep_flow_control_paused"))
		f->fc_paused = mysql_double(v, len);
}

/* One row of SHOW ALL SLAVES STATUS, columns found by name. */
static void
mysql_facts_replica(struct mysql_facts *f, const char *const *names,
    const char *const *values, const unsigned long *lengths,
    unsigned int nfields)
{
	struct mysql_replica *r;
	char last_io[128] = "", last_sql[128] = "";

	f->replicas_seen++;
	if (f->nreplicas == MYSQL_MAX_REPLICAS)
		return;
	r = &f->replicas[f->nreplicas++];
	memset(r, 0, sizeof(*r));
	r->lag_s = -1;
	for (unsigned int i = 0; i < nfields; i++) {
		const char *n = names[i], *v = values[i];
		unsigned long len = v != NULL ? lengths[i] : 0;

		if (mysql_name_is(n, "Connection_name"))
			mysql_text(r->connection_name,
			    sizeof(r->connection_name), v, len);
		else if (mysql_name_is(n, "Master_Host"))
			mysql_text(r->master_host, sizeof(r->master_host), v,
			    len);
		else if (mysql_name_is(n, "Slave_IO_Running"))
			r->io_running = v != NULL && len == 3 &&
			    strncasecmp(v, "Yes", 3) == 0;
		else if (mysql_name_is(n, "Slave_SQL_Running"))
			r->sql_running = v != NULL && len == 3 &&
			    strncasecmp(v, "Yes", 3) == 0;
		else if (mysql_name_is(n, "Seconds_Behind_Master"))
			r->lag_s = mysql_int(v, len);
		else if (mysql_name_is(n, "Last_IO_Error"))
			mysql_text(last_io, sizeof(last_io), v, len);
		else if (mysql_name_is(n, "Last_SQL_Error"))
			mysql_text(last_sql, sizeof(last_sql), v, len);
	}
	snprintf(r->last_error, sizeof(r->last_error), "%s",
	    last_io[0] != '\0' ? last_io : last_sql);
}

int
mysql_facts_row(struct mysql_facts *f, size_t query, const char *const *names,
    const char *const *values, const unsigned long *lengths,
    unsigned int nfields)
{
	switch (query) {
	case MYSQL_Q_STATUS:
	case MYSQL_Q_VARIABLES:
		/* Variable_name, Value: anything else is not our query's. */
		if (nfields != 2 || values[0] == NULL)
			return -EPROTO;
		mysql_facts_var(f, values[0], values[1],
		    values[1] != NULL ? lengths[1] : 0);
		return 0;
	case MYSQL_Q_REPLICAS:
		mysql_facts_replica(f, names, values, lengths, nfields);
		return 0;
	}
	return 0;
}

/* "; "-separated reasons. */
static void
mysql_reason(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
mysql_reason(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 3 >= len)
		return;
	if (used > 0) {
		memcpy(buf + used, "; ", 3);
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/*
 * Fraction of the time since the previous run that flow control paused
 * replication, from the server's cumulative wsrep_flow_control_paused_ns.
 * The server's own wsrep_flow_control_paused covers the time since some
 * earlier status query, possibly another tool's; this one covers exactly
 * our interval. -1 on the first run, or when the counter went back (the
 * server restarted).
 */
static double
mysql_fc_ratio(struct mysql_check *m, const struct mysql_facts *f)
{
	struct timespec now;
	double ratio = -1, dt;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (f->paused_ns < 0) {
		m->have_fc = 0;
		return -1;
	}
	dt = (double)(now.tv_sec - m->fc_time.tv_sec) * 1e9 +
	    (double)(now.tv_nsec - m->fc_time.tv_nsec);
	if (m->have_fc && f->paused_ns >= m->fc_paused_ns && dt > 0) {
		ratio = (double)(f->paused_ns - m->fc_paused_ns) / dt;
		if (ratio > 1)
			ratio = 1;
	}
	m->have_fc = 1;
	m->fc_paused_ns = f->paused_ns;
	m->fc_time = now;
	return ratio;
}

static void
mysql_galera_samples(struct mysql_run *run, const struct mysql_facts *f,
    double ratio)
{
	struct troika_label *info = &run->out.labels[run->out.nlabels];

	if (f->ready >= 0)
		mysql_sample(run, "mysql_global_status_wsrep_ready",
		    "wsrep_ready: 1 ON, 0 OFF", f->ready, NULL, 0);
	if (f->connected >= 0)
		mysql_sample(run, "mysql_global_status_wsrep_connected",
		    "wsrep_connected: 1 ON, 0 OFF", f->connected, NULL, 0);
	if (f->cluster_status[0] != '\0')
		mysql_sample(run, "mysql_global_status_wsrep_cluster_status",
		    "wsrep_cluster_status: 1 Primary, 0 otherwise",
		    strcmp(f->cluster_status, "Primary") == 0, NULL, 0);
	if (f->cluster_size >= 0)
		mysql_sample(run, "mysql_global_status_wsrep_cluster_size",
		    "Nodes in the cluster component", (double)f->cluster_size,
		    NULL, 0);
	if (f->local_state >= 0)
		mysql_sample(run, "mysql_global_status_wsrep_local_state",
		    "Galera local state: 1 Joining, 2 Donor/Desynced, "
		    "3 Joined, 4 Synced", (double)f->local_state, NULL, 0);
	if (f->last_committed >= 0)
		mysql_sample(run, "mysql_global_status_wsrep_last_committed",
		    "Seqno of the last committed write set",
		    (double)f->last_committed, NULL, 0);
	if (f->fc_paused >= 0)
		mysql_sample(run, "mysql_global_status_wsrep_flow_control_paused",
		    "Fraction of time paused by flow control, as the server "
		    "counts it", f->fc_paused, NULL, 0);
	if (ratio >= 0)
		mysql_sample(run, "troika_mysql_flow_control_paused_ratio",
		    "Fraction of the time since the previous check run that "
		    "flow control paused replication", ratio, NULL, 0);
	if (f->recv_queue >= 0)
		mysql_sample(run, "mysql_global_status_wsrep_local_recv_queue",
		    "Write sets waiting to be applied", (double)f->recv_queue,
		    NULL, 0);
	if (f->send_queue >= 0)
		mysql_sample(run, "mysql_global_status_wsrep_local_send_queue",
		    "Write sets waiting to be sent", (double)f->send_queue,
		    NULL, 0);
	if (f->local_state_uuid[0] != '\0' &&
	    run->out.nlabels + 3 <= MYSQL_MAX_LABELS) {
		info[0] = (struct troika_label){ "wsrep_local_state_uuid",
		    f->local_state_uuid };
		info[1] = (struct troika_label){ "wsrep_cluster_state_uuid",
		    f->cluster_state_uuid };
		info[2] = (struct troika_label){ "wsrep_provider_version",
		    f->provider_version };
		run->out.nlabels += 3;
		mysql_sample(run, "mysql_galera_status_info",
		    "Galera status information", 1, info, 3);
	}
}

static void
mysql_galera_fields(struct mysql_run *run, const struct mysql_facts *f)
{
	if (f->local_state_comment[0] != '\0')
		mysql_field(run, "wsrep_local_state_comment", "%s",
		    f->local_state_comment);
	if (f->cluster_status[0] != '\0')
		mysql_field(run, "wsrep_cluster_status", "%s",
		    f->cluster_status);
	if (f->cluster_state_uuid[0] != '\0')
		mysql_field(run, "wsrep_cluster_state_uuid", "%s",
		    f->cluster_state_uuid);
	if (f->local_state_uuid[0] != '\0')
		mysql_field(run, "wsrep_local_state_uuid", "%s",
		    f->local_state_uuid);
	if (f->last_committed >= 0)
		mysql_field(run, "wsrep_last_committed", "%lld",
		    (long long)f->last_committed);
	if (f->cluster_size >= 0)
		mysql_field(run, "wsrep_cluster_size", "%lld",
		    (long long)f->cluster_size);
}

/* The Galera rules; summary gets the OK text. */
static void
mysql_galera_rules(struct mysql_run *run, const struct mysql_facts *f,
    double ratio, char *crit, char *warn, size_t len, char *summary,
    size_t slen, int *certain)
{
	const struct mysql_check *m = run->m;
	double paused = ratio >= 0 ? ratio : f->fc_paused;

	if (f->wsrep_on == 0) {
		mysql_reason(crit, len, "wsrep_on is OFF: not a Galera node");
		*certain = 1;
		return;
	}
	if (f->ready < 0 || f->connected < 0 || f->cluster_status[0] == '\0') {
		*certain = 1;
		mysql_reason(crit, len, "no wsrep status from the server "
		    "(no Galera provider loaded?)");
		return;
	}
	if (f->connected == 0)
		mysql_reason(crit, len, "not connected to the cluster "
		    "(wsrep_connected OFF)");
	if (strcmp(f->cluster_status, "Primary") != 0)
		mysql_reason(crit, len, "cluster status %s (component of %lld)",
		    f->cluster_status, (long long)f->cluster_size);
	if (f->ready == 0)
		mysql_reason(crit, len, "not ready (wsrep_ready OFF)");
	if (crit[0] == '\0' && f->local_state != WSREP_STATE_SYNCED)
		mysql_reason(warn, len, "local state %s",
		    f->local_state_comment[0] != '\0' ?
		    f->local_state_comment : "unknown");
	if (m->expected_size > 0 && f->cluster_size >= 0 &&
	    f->cluster_size < m->expected_size)
		mysql_reason(warn, len, "cluster size %lld, expected %lld",
		    (long long)f->cluster_size, (long long)m->expected_size);
	if (paused >= 0 && paused * 100 > (double)m->fc_warn_pct)
		mysql_reason(warn, len, "flow control paused replication "
		    "%.0f%% of the time (warning above %lld%%)", paused * 100,
		    (long long)m->fc_warn_pct);
	snprintf(summary, slen, "%s, %s, cluster size %lld",
	    f->local_state_comment, f->cluster_status,
	    (long long)f->cluster_size);
}

static void
mysql_replica_rules(struct mysql_run *run, const struct mysql_facts *f,
    char *crit, char *warn, size_t len, char *summary, size_t slen)
{
	const struct mysql_check *m = run->m;
	int64_t worst = -1;

	if (f->replicas_seen == 0) {
		mysql_reason(crit, len, "replication is configured, but the "
		    "server replicates from no primary (SHOW ALL SLAVES "
		    "STATUS is empty)");
		return;
	}
	for (size_t i = 0; i < f->nreplicas; i++) {
		const struct mysql_replica *r = &f->replicas[i];
		struct troika_label *l = &run->out.labels[run->out.nlabels];
		char name[2 * MYSQL_TEXT_MAX + 32];

		snprintf(name, sizeof(name), "replication%s%s%s from %s",
		    r->connection_name[0] != '\0' ? " '" : "",
		    r->connection_name,
		    r->connection_name[0] != '\0' ? "'" : "", r->master_host);
		if (!r->io_running || !r->sql_running)
			mysql_reason(crit, len, "%s: %s%s%s%s", name,
			    !r->io_running && !r->sql_running ?
			    "IO and SQL threads not running" : !r->io_running ?
			    "IO thread not running" : "SQL thread not running",
			    r->last_error[0] != '\0' ? " (" : "", r->last_error,
			    r->last_error[0] != '\0' ? ")" : "");
		else if (r->lag_s < 0)
			mysql_reason(warn, len, "%s: lag unknown", name);
		else if (r->lag_s * 1000 > m->max_lag_ms)
			mysql_reason(warn, len, "%s: %lld s behind (warning "
			    "above %.3g s)", name, (long long)r->lag_s,
			    (double)m->max_lag_ms / 1000);
		if (r->lag_s > worst)
			worst = r->lag_s;
		if (run->out.nlabels + 2 > MYSQL_MAX_LABELS)
			continue;
		l[0] = (struct troika_label){ "connection_name",
		    r->connection_name };
		l[1] = (struct troika_label){ "master_host", r->master_host };
		run->out.nlabels += 2;
		mysql_sample(run, "mysql_slave_status_slave_io_running",
		    "Replica IO thread running: 1 Yes, 0 otherwise",
		    r->io_running, l, 2);
		mysql_sample(run, "mysql_slave_status_slave_sql_running",
		    "Replica SQL thread running: 1 Yes, 0 otherwise",
		    r->sql_running, l, 2);
		if (r->lag_s >= 0)
			mysql_sample(run,
			    "mysql_slave_status_seconds_behind_master",
			    "Seconds_Behind_Master of the replica",
			    (double)r->lag_s, l, 2);
	}
	if (f->replicas_seen > f->nreplicas)
		mysql_reason(warn, len, "%zu replication connections; only the "
		    "first %d are checked", f->replicas_seen,
		    MYSQL_MAX_REPLICAS);
	if (worst >= 0)
		snprintf(summary, slen, "replica %lld s behind",
		    (long long)worst);
}

void
mysql_evaluate(struct mysql_run *run)
{
	struct mysql_check *m = run->m;
	const struct mysql_facts *f = &run->facts;
	char crit[512] = "", warn[512] = "", gsum[160] = "", rsum[64] = "";
	char conns[64] = "";
	double ratio = -1;
	/*
	 * Not Primary, not connected, not ready: a member in a view change
	 * says so for a moment (a node rejoining makes the others form new
	 * views), so those alone are ambiguous evidence; a coordinator then
	 * waits for fail_after results instead of acting on two. What the
	 * server's configuration says (wsrep off, replication stopped) is
	 * certain.
	 */
	int crit_certain = 0;
	size_t crit_len;

	mysql_sample(run, "mysql_up", "Whether the server answered", 1,
	    NULL, 0);
	if (f->threads_connected >= 0)
		mysql_sample(run, "mysql_global_status_threads_connected",
		    "Open client connections", (double)f->threads_connected,
		    NULL, 0);
	if (f->max_connections >= 0)
		mysql_sample(run, "mysql_global_variables_max_connections",
		    "max_connections", (double)f->max_connections, NULL, 0);
	if (f->read_only >= 0)
		mysql_sample(run, "mysql_global_variables_read_only",
		    "read_only: 1 ON, 0 OFF", f->read_only, NULL, 0);
	if (m->galera) {
		ratio = mysql_fc_ratio(m, f);
		mysql_galera_rules(run, f, ratio, crit, warn, sizeof(crit),
		    gsum, sizeof(gsum), &crit_certain);
		mysql_galera_samples(run, f, ratio);
		mysql_galera_fields(run, f);
	}
	crit_len = strlen(crit);
	if (m->replication)
		mysql_replica_rules(run, f, crit, warn, sizeof(crit), rsum,
		    sizeof(rsum));
	if (strlen(crit) > crit_len)
		crit_certain = 1;
	if (f->threads_connected >= 0 && f->max_connections > 0) {
		snprintf(conns, sizeof(conns), "%lld of %lld connections",
		    (long long)f->threads_connected,
		    (long long)f->max_connections);
		if (f->threads_connected * 100 >=
		    m->conn_warn_pct * f->max_connections)
			mysql_reason(warn, sizeof(warn), "%s used (warning at "
			    "%lld%%)", conns, (long long)m->conn_warn_pct);
	}
	if (crit[0] != '\0') {
		if (warn[0] != '\0')
			mysql_reason(crit, sizeof(crit), "%s", warn);
		mysql_set_result(run, TROIKA_STATUS_CRITICAL, crit_certain ?
		    TROIKA_EVIDENCE_CERTAIN : TROIKA_EVIDENCE_AMBIGUOUS, "%s",
		    crit);
	} else if (warn[0] != '\0') {
		mysql_set_result(run, TROIKA_STATUS_WARNING,
		    TROIKA_EVIDENCE_CERTAIN, "%s", warn);
	} else {
		char sum[512] = "";

		if (gsum[0] != '\0')
			mysql_reason(sum, sizeof(sum), "%s", gsum);
		if (rsum[0] != '\0')
			mysql_reason(sum, sizeof(sum), "%s", rsum);
		if (conns[0] != '\0')
			mysql_reason(sum, sizeof(sum), "%s", conns);
		mysql_set_result(run, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "%s", sum[0] != '\0' ? sum : "up");
	}
}
