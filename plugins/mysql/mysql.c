/*
 * mysql: MariaDB and Galera. Async: MariaDB Connector/C's non-blocking
 * API on the host's event base (mysql_conn.c), so no thread per check and
 * nothing blocks the loop. Each run opens one connection, reads SHOW
 * GLOBAL STATUS and VARIABLES (and SHOW ALL SLAVES STATUS with
 * `replication: true`), closes it and judges what it read
 * (mysql_status.c). Actions are in mysql_action.c.
 *
 * Names are not resolved (a blocking resolver would stall the loop): host
 * is a numeric address, or socket a unix socket path.
 *
 * Evidence: a refused connect (or a missing socket file), and a connection
 * reset while logging in (a server shutting down), are certain; a timeout
 * or any other lost connection is ambiguous; what the server reports about
 * itself (non-Primary, not ready, ...) is certain.
 */
#include <sys/socket.h>
#include <netdb.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include "mysql_plugin.h"

static const struct troika_option mysql_plugin_options[] = {
	{ .name = "host", .type = TROIKA_OPT_STRING,
	    .default_value = "127.0.0.1",
	    .help = "numeric IPv4 or IPv6 address of the server" },
	{ .name = "port", .type = TROIKA_OPT_INT, .default_value = "3306",
	    .min = 1, .max = 65535, .help = "TCP port" },
	{ .name = "socket", .type = TROIKA_OPT_STRING,
	    .help = "unix socket path; used instead of host and port" },
	{ .name = "user", .type = TROIKA_OPT_STRING, .required = 1,
	    .help = "user name (SUPER for desync, SLAVE MONITOR for "
	    "replication)" },
	{ .name = "password", .type = TROIKA_OPT_STRING,
	    .help = "password; none when unset" },
	{ .name = "galera", .type = TROIKA_OPT_BOOL, .default_value = "true",
	    .help = "judge the Galera (wsrep) state" },
	{ .name = "expected_cluster_size", .type = TROIKA_OPT_INT,
	    .default_value = "0", .min = 0, .max = 255,
	    .help = "WARNING below this many nodes; 0: not checked" },
	{ .name = "flow_control_warning", .type = TROIKA_OPT_INT,
	    .default_value = "10", .min = 0, .max = 100,
	    .help = "WARNING when flow control paused replication more than "
	    "this percent of the time" },
	{ .name = "connections_warning", .type = TROIKA_OPT_INT,
	    .default_value = "90", .min = 1, .max = 100,
	    .help = "WARNING at this percent of max_connections in use" },
	{ .name = "replication", .type = TROIKA_OPT_BOOL,
	    .default_value = "false",
	    .help = "check asynchronous replication (SHOW ALL SLAVES STATUS)" },
	{ .name = "max_replication_lag", .type = TROIKA_OPT_DURATION,
	    .default_value = "60s", .min = 1000, .max = 7 * 86400 * 1000LL,
	    .help = "WARNING when a replica is further behind" },
	{ .name = "datadir", .type = TROIKA_OPT_STRING,
	    .help = "the server's datadir: position and lock when it is down" },
	{ .name = "defaults_file", .type = TROIKA_OPT_STRING,
	    .help = "the server's option file, for --wsrep-recover" },
	{ .name = "mariadbd", .type = TROIKA_OPT_STRING,
	    .default_value = "/usr/sbin/mariadbd",
	    .help = "server binary, for --wsrep-recover" },
	{ .name = "bootstrap_command", .type = TROIKA_OPT_STRING_LIST,
	    .help = "argv that starts the server in the background and "
	    "returns; bootstrap appends --wsrep-new-cluster and "
	    "--wsrep_start_position=<uuid>:<seqno>" },
	{ .name = NULL },
};

static void mysql_instance_free(void *state);
static void mysql_defer_cb(evutil_socket_t fd, short what, void *arg);

/* Whether s is a numeric address; names are refused (see the top). */
static int
mysql_numeric_host(const char *s)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICHOST,
	};
	struct addrinfo *ai = NULL;

	if (getaddrinfo(s, NULL, &hints, &ai) != 0)
		return 0;
	freeaddrinfo(ai);
	return 1;
}

static int
mysql_opt_path(struct mysql_check *m, const char *name, const char **ret)
{
	const struct troika_host *h = m->host;
	const char *v;

	*ret = NULL;
	if (!h->opt_isset(m->inst, name) && strcmp(name, "mariadbd") != 0)
		return 0;
	v = h->opt_string(m->inst, name);
	if (v == NULL || v[0] != '/') {
		h->log(m->inst, TROIKA_LOG_ERR, "%s must be an absolute path",
		    name);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

static int
mysql_instance_new(const struct troika_host *host,
    struct troika_instance *inst, void **ret_state)
{
	struct mysql_check *m;
	const char *addr;
	int r = -EINVAL;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return -ENOMEM;
	m->host = host;
	m->inst = inst;
	m->base = host->event_base(inst);
	m->target.user = host->opt_string(inst, "user");
	if (host->opt_isset(inst, "password"))
		m->target.password = host->opt_string(inst, "password");
	if (host->opt_isset(inst, "socket")) {
		if (host->opt_isset(inst, "host") ||
		    host->opt_isset(inst, "port")) {
			host->log(inst, TROIKA_LOG_ERR, "set either socket, or "
			    "host and port, not both");
			goto fail;
		}
		m->target.socket = host->opt_string(inst, "socket");
		if (m->target.socket == NULL || m->target.socket[0] == '\0') {
			host->log(inst, TROIKA_LOG_ERR, "socket is empty");
			goto fail;
		}
		snprintf(m->where, sizeof(m->where), "%s", m->target.socket);
	} else {
		addr = host->opt_string(inst, "host");
		if (addr == NULL || !mysql_numeric_host(addr)) {
			host->log(inst, TROIKA_LOG_ERR, "host \"%s\" is not a "
			    "numeric IPv4 or IPv6 address: names are not "
			    "resolved, as a blocking resolver would stall the "
			    "event loop", addr != NULL ? addr : "");
			goto fail;
		}
		m->target.host = addr;
		m->target.port = (unsigned int)host->opt_int(inst, "port");
		snprintf(m->where, sizeof(m->where),
		    strchr(addr, ':') != NULL ? "[%s]:%u" : "%s:%u", addr,
		    m->target.port);
	}
	m->galera = host->opt_bool(inst, "galera");
	m->expected_size = host->opt_int(inst, "expected_cluster_size");
	m->fc_warn_pct = host->opt_int(inst, "flow_control_warning");
	m->conn_warn_pct = host->opt_int(inst, "connections_warning");
	m->replication = host->opt_bool(inst, "replication");
	m->max_lag_ms = host->opt_duration_ms(inst, "max_replication_lag");
	if ((r = mysql_opt_path(m, "datadir", &m->datadir)) < 0 ||
	    (r = mysql_opt_path(m, "defaults_file", &m->defaults_file)) < 0 ||
	    (r = mysql_opt_path(m, "mariadbd", &m->mariadbd)) < 0)
		goto fail;
	if (host->opt_isset(inst, "bootstrap_command")) {
		m->bootstrap_argc = host->opt_list_len(inst,
		    "bootstrap_command");
		if (m->bootstrap_argc == 0) {
			host->log(inst, TROIKA_LOG_ERR,
			    "bootstrap_command is empty");
			r = -EINVAL;
			goto fail;
		}
	}
	m->defer = event_new(m->base, -1, 0, mysql_defer_cb, m);
	m->poll = evtimer_new(m->base, mysql_poll_cb, m);
	if (m->defer == NULL || m->poll == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	*ret_state = m;
	return 0;

fail:
	mysql_instance_free(m);
	return r;
}

/* Stop everything the run has going; it reports nothing any more. */
static void
mysql_run_stop(struct mysql_run *run)
{
	struct mysql_check *m = run->m;

	myconn_free(run->conn);
	run->conn = NULL;
	if (run->spawn != NULL)
		m->host->spawn_cancel(run->spawn);
	run->spawn = NULL;
	if (run->ticket != NULL)
		run->ticket->run = NULL; /* freed when done comes */
	run->ticket = NULL;
	event_del(m->poll);
	event_del(m->defer);
	if (run->recover_log[0] != '\0')
		unlink(run->recover_log);
	run->recover_log[0] = '\0';
}

static void
mysql_instance_free(void *state)
{
	struct mysql_check *m = state;

	if (m == NULL)
		return;
	if (m->run != NULL) {
		mysql_run_stop(m->run);
		free(m->run);
		m->run = NULL;
	}
	while (m->tickets != NULL) {
		struct mysql_ticket *t = m->tickets;

		m->tickets = t->next;
		free(t);
	}
	if (m->defer != NULL)
		event_free(m->defer);
	if (m->poll != NULL)
		event_free(m->poll);
	free(m);
}

/* The time a run may take: the host's deadline minus a margin, so our
 * more telling timeout result comes before the host gives up. */
static int64_t
mysql_budget_ms(int64_t remaining)
{
	int64_t margin = remaining / 10;

	if (margin > 100)
		margin = 100;
	return remaining - margin > 1 ? remaining - margin : 1;
}

int64_t
mysql_run_left_ms(const struct mysql_run *run)
{
	struct timespec now;
	int64_t used;

	clock_gettime(CLOCK_MONOTONIC, &now);
	used = (int64_t)(now.tv_sec - run->start.tv_sec) * 1000 +
	    (now.tv_nsec - run->start.tv_nsec) / 1000000;
	return run->budget_ms - used > 0 ? run->budget_ms - used : 0;
}

/*
 * A new run for task. On allocation failure NULL, after arranging for an
 * UNKNOWN result (reported from the loop).
 */
struct mysql_run *
mysql_run_new(struct mysql_check *m, struct troika_task *task,
    enum mysql_job job)
{
	struct mysql_run *run;

	if ((run = calloc(1, sizeof(*run))) == NULL) {
		m->oom_task = task;
		event_active(m->defer, EV_TIMEOUT, 1);
		return NULL;
	}
	run->m = m;
	run->task = task;
	run->job = job;
	clock_gettime(CLOCK_MONOTONIC, &run->start);
	run->budget_ms = mysql_budget_ms(m->host->task_remaining_ms(task));
	run->pos.seqno = GALERA_SEQNO_UNDEFINED;
	run->pos.safe_to_bootstrap = -1;
	mysql_facts_reset(&run->facts);
	run->out.status = TROIKA_STATUS_UNKNOWN;
	m->run = run;
	return run;
}

void
mysql_set_result(struct mysql_run *run, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
{
	va_list ap;

	run->out.status = status;
	run->out.evidence = evidence;
	va_start(ap, fmt);
	vsnprintf(run->out.msg, sizeof(run->out.msg), fmt, ap);
	va_end(ap);
}

void
mysql_field(struct mysql_run *run, const char *name, const char *fmt, ...)
{
	struct mysql_out *o = &run->out;
	va_list ap;

	for (size_t i = 0; i < o->nfields; i++)
		if (strcmp(o->fields[i].name, name) == 0) {
			va_start(ap, fmt);
			vsnprintf(o->field_values[i], MYSQL_FIELD_MAX, fmt, ap);
			va_end(ap);
			return;
		}
	if (o->nfields == MYSQL_MAX_FIELDS)
		return;
	va_start(ap, fmt);
	vsnprintf(o->field_values[o->nfields], MYSQL_FIELD_MAX, fmt, ap);
	va_end(ap);
	o->fields[o->nfields].name = name;
	o->fields[o->nfields].value = o->field_values[o->nfields];
	o->nfields++;
}

void
mysql_sample(struct mysql_run *run, const char *name, const char *help,
    double value, const struct troika_label *labels, size_t nlabels)
{
	struct mysql_out *o = &run->out;

	if (o->nsamples == MYSQL_MAX_SAMPLES)
		return;
	o->samples[o->nsamples++] = (struct troika_sample){
		.name = name,
		.help = help,
		.type = TROIKA_METRIC_GAUGE,
		.value = value,
		.labels = labels,
		.nlabels = nlabels,
	};
}

/* Report the run's result and end it. */
void
mysql_report(struct mysql_run *run)
{
	struct mysql_check *m = run->m;
	struct troika_task *task = run->task;
	struct troika_result res = {
		.size = sizeof(res),
		.status = run->out.status,
		.evidence = run->out.evidence,
		.message = run->out.msg,
		.samples = run->out.samples,
		.nsamples = run->out.nsamples,
		.fields = run->out.fields,
		.nfields = run->out.nfields,
	};

	/* check_done() may start the next task: this one is over first. */
	mysql_run_stop(run);
	if (m->run == run)
		m->run = NULL;
	m->host->check_done(task, &res);
	free(run);
}

/* Report from the loop: a result decided inside check() or action(). */
void
mysql_report_later(struct mysql_run *run)
{
	event_active(run->m->defer, EV_TIMEOUT, 1);
}

static void
mysql_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mysql_check *m = arg;

	(void)fd;
	(void)what;
	if (m->run != NULL) {
		mysql_report(m->run);
	} else if (m->oom_task != NULL) {
		struct troika_task *task = m->oom_task;
		struct troika_result res = {
			.size = sizeof(res), .status = TROIKA_STATUS_UNKNOWN,
			.message = "out of memory",
		};

		m->oom_task = NULL;
		m->host->check_done(task, &res);
	}
}

/* Rows go to the facts, by which query they answer. */
static int
mysql_row_cb(void *arg, size_t query, const char *const *names,
    const char *const *values, const unsigned long *lengths,
    unsigned int nfields)
{
	struct mysql_run *run = arg;
	const char *q = query < run->nqueries ? run->queries[query] : NULL;

	if (q == mysql_q_status)
		return mysql_facts_row(&run->facts, MYSQL_Q_STATUS, names,
		    values, lengths, nfields);
	if (q == mysql_q_variables)
		return mysql_facts_row(&run->facts, MYSQL_Q_VARIABLES, names,
		    values, lengths, nfields);
	if (q == mysql_q_replicas)
		return mysql_facts_row(&run->facts, MYSQL_Q_REPLICAS, names,
		    values, lengths, nfields);
	return 0;
}

/*
 * Open a connection for the run and send queries (the run keeps the list;
 * the strings must be static). done gets the run as arg. Returns 0 or a
 * negative errno.
 */
int
mysql_connect(struct mysql_run *run, const char *const *queries,
    size_t nqueries, int64_t timeout_ms, myconn_done_cb done)
{
	size_t max = sizeof(run->queries) / sizeof(run->queries[0]);

	if (nqueries > max)
		return -E2BIG;
	for (size_t i = 0; i < nqueries; i++)
		run->queries[i] = queries[i];
	run->nqueries = nqueries;
	mysql_facts_reset(&run->facts);
	return myconn_start(run->m->base, &run->m->target, run->queries,
	    nqueries, timeout_ms, mysql_row_cb, done, run, &run->conn);
}

/* Whether the server itself was there (it talked, or sent an error). */
int
mysql_server_answered(const struct myconn_outcome *o)
{
	return o->ok || o->step != MYCONN_CONNECT ||
	    (o->error > 0 && o->error < CR_MIN_ERROR);
}

/* The result of a run whose connection failed (run->conn_out). */
void
mysql_connect_failed(struct mysql_run *run)
{
	const struct myconn_outcome *o = &run->conn_out;
	const char *where = run->m->where;

	mysql_sample(run, "mysql_up", "Whether the server answered",
	    o->step != MYCONN_CONNECT, NULL, 0);
	if (o->step == MYCONN_CONNECT && (o->sys_errno == ECONNREFUSED ||
	    (run->m->target.socket != NULL && o->sys_errno == ENOENT))) {
		mysql_set_result(run, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_CERTAIN, "connection to %s refused%s",
		    where, o->sys_errno == ENOENT ? " (no socket file)" : "");
		return;
	}
	switch (o->error) {
	case ER_ACCESS_DENIED_ERROR:
	case ER_DBACCESS_DENIED_ERROR:
	case ER_ACCESS_DENIED_NO_PASSWORD_ERROR:
		/* The server is up; restarting it would not help. */
		mysql_set_result(run, TROIKA_STATUS_UNKNOWN,
		    TROIKA_EVIDENCE_NONE, "%s: %s (the server is up, but the "
		    "check cannot see its state)", where, o->message);
		return;
	}
	if (o->error > 0 && o->error < CR_MIN_ERROR &&
	    o->step != MYCONN_CONNECT) {
		/* The server refused a query of ours: it is there. */
		mysql_set_result(run, TROIKA_STATUS_UNKNOWN,
		    TROIKA_EVIDENCE_NONE, "%s: query %zu failed: %s", where,
		    o->query + 1, o->message);
		return;
	}
	/* Reset while logging in: a server going away, as a rule. */
	mysql_set_result(run, TROIKA_STATUS_CRITICAL,
	    o->step == MYCONN_CONNECT && o->sys_errno == ECONNRESET ?
	    TROIKA_EVIDENCE_CERTAIN : TROIKA_EVIDENCE_AMBIGUOUS, "%s: %s",
	    where, o->message);
}

static void
mysql_check_done(void *arg, struct myconn *c, const struct myconn_outcome *o)
{
	struct mysql_run *run = arg;

	run->conn_out = *o;
	myconn_free(c); /* o was inside c */
	run->conn = NULL;
	o = &run->conn_out;
	if (o->ok)
		mysql_evaluate(run);
	else
		mysql_connect_failed(run);
	mysql_report(run);
}

static void
mysql_check(void *state, struct troika_task *task)
{
	struct mysql_check *m = state;
	const char *queries[3] = { mysql_q_status, mysql_q_variables,
	    mysql_q_replicas };
	struct mysql_run *run;
	int r;

	if ((run = mysql_run_new(m, task, MYSQL_JOB_CHECK)) == NULL)
		return;
	r = mysql_connect(run, queries, m->replication ? 3 : 2, run->budget_ms,
	    mysql_check_done);
	if (r < 0) {
		mysql_set_result(run, TROIKA_STATUS_UNKNOWN,
		    TROIKA_EVIDENCE_NONE, "cannot start a connection: %s",
		    strerror(-r));
		mysql_report_later(run);
	}
}

static void
mysql_cancel(void *state, struct troika_task *task)
{
	struct mysql_check *m = state;
	struct mysql_run *run = m->run;

	if (m->oom_task == task) {
		m->oom_task = NULL;
		event_del(m->defer);
	}
	if (run == NULL || run->task != task)
		return;
	mysql_run_stop(run);
	m->run = NULL;
	free(run);
}

static const struct troika_plugin mysql_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "mysql",
	.version = TROIKA_VERSION,
	.description = "MariaDB and Galera: state, metrics, position, "
	    "bootstrap",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = mysql_plugin_options,
	.instance_new = mysql_instance_new,
	.instance_free = mysql_instance_free,
	.check = mysql_check,
	.cancel = mysql_cancel,
	.actions = mysql_actions,
	.action = mysql_action,
};

/*
 * Connector/C keeps global state (character sets, plugins) from the first
 * mysql_init(); give it back when the plugin is unloaded (reload, exit),
 * or it shows up as a leak once the library is unmapped.
 */
__attribute__((destructor)) static void
mysql_plugin_unload(void)
{
	mysql_library_end();
}

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &mysql_plugin;
}
