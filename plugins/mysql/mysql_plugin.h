/*
 * Internal interface of the mysql plugin, shared by its files:
 *   mysql.c         descriptor, options, instances, the check run, results
 *   mysql_status.c  rows of SHOW STATUS/VARIABLES/SLAVES into facts, and
 *                   the rules that turn facts into a status and samples
 *   mysql_action.c  position, bootstrap, desync, start/stop/restart
 *   mysql_conn.c    one non-blocking connection (Connector/C on libevent)
 *   mysql_galera.c  grastate.dat, the datadir lock, --wsrep-recover output
 */
#ifndef MYSQL_PLUGIN_H
#define MYSQL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/util.h>

#include <troika/plugin.h>

#include "mysql_conn.h"
#include "mysql_galera.h"

#define MYSQL_MAX_SAMPLES 64
#define MYSQL_MAX_LABELS (3 * MYSQL_MAX_SAMPLES)
#define MYSQL_MAX_FIELDS 16
#define MYSQL_FIELD_MAX 256
#define MYSQL_MAX_REPLICAS 8
#define MYSQL_TEXT_MAX 64

/* Queries of a check run, in this order. */
enum {
	MYSQL_Q_STATUS = 0,
	MYSQL_Q_VARIABLES,
	MYSQL_Q_REPLICAS,
};

/* What a MariaDB server told us; have_* say which parts it did. */
struct mysql_replica {
	char connection_name[MYSQL_TEXT_MAX];
	char master_host[MYSQL_TEXT_MAX];
	int io_running;  /* 1 only for "Yes" */
	int sql_running;
	int64_t lag_s;   /* Seconds_Behind_Master; -1 when NULL */
	char last_error[128];
};

struct mysql_facts {
	/* SHOW GLOBAL STATUS; text values "" and numbers -1 when absent. */
	char local_state_uuid[MYSQL_TEXT_MAX];
	char cluster_state_uuid[MYSQL_TEXT_MAX];
	char cluster_status[MYSQL_TEXT_MAX];
	char local_state_comment[MYSQL_TEXT_MAX];
	char provider_version[MYSQL_TEXT_MAX];
	int64_t cluster_size;
	int64_t local_state;
	int64_t last_committed;
	int64_t paused_ns;
	int64_t recv_queue;
	int64_t send_queue;
	int64_t threads_connected;
	double fc_paused; /* < 0 when absent */
	int ready;        /* 1 ON, 0 OFF, -1 absent */
	int connected;
	/* SHOW GLOBAL VARIABLES */
	int64_t max_connections;
	int read_only;
	int wsrep_on;
	/* SHOW ALL SLAVES STATUS */
	struct mysql_replica replicas[MYSQL_MAX_REPLICAS];
	size_t nreplicas;
	size_t replicas_seen; /* rows, also those beyond the array */
};

/* A result being put together; check_done() copies it. */
struct mysql_out {
	enum troika_status status;
	enum troika_evidence evidence;
	char msg[512];
	struct troika_sample samples[MYSQL_MAX_SAMPLES];
	size_t nsamples;
	struct troika_label labels[MYSQL_MAX_LABELS];
	size_t nlabels;
	struct troika_label fields[MYSQL_MAX_FIELDS];
	char field_values[MYSQL_MAX_FIELDS][MYSQL_FIELD_MAX];
	size_t nfields;
};

enum mysql_job {
	MYSQL_JOB_CHECK = 0,
	MYSQL_JOB_POSITION,
	MYSQL_JOB_BOOTSTRAP,
	MYSQL_JOB_DESYNC,
	MYSQL_JOB_START,
	MYSQL_JOB_STOP,
	MYSQL_JOB_RESTART,
};

struct mysql_check;
struct mysql_run;

/*
 * A service_control() call, which may outlive its run (the ABI has no
 * cancel): a cancelled run is forgotten and the ticket stays until done
 * comes. The host never calls done for a freed check, so the instance
 * frees the tickets still out.
 */
struct mysql_ticket {
	struct mysql_check *m;
	struct mysql_run *run; /* NULL once the run is gone */
	struct mysql_ticket *next;
};

/*
 * One task: a check run or an action. Allocated per task, so that a new
 * task started from inside check_done() never overwrites the result being
 * reported.
 */
struct mysql_run {
	struct mysql_check *m;
	struct troika_task *task;
	enum mysql_job job;
	struct timespec start;
	int64_t budget_ms;

	struct myconn *conn;
	const char *queries[4];
	size_t nqueries;
	struct myconn_outcome conn_out; /* the last connection's outcome */
	struct mysql_facts facts;

	void *spawn;
	char recover_log[256]; /* "" when none */
	struct mysql_ticket *ticket;
	int desync_on;
	int nowait;   /* start nowait: done once the service manager is */
	int in_place; /* bootstrap in-place: a running non-Primary server */
	int polls;
	char service_msg[200]; /* what the service manager said */

	/* Position, once known (bootstrap, start, position). */
	struct galera_state pos;
	const char *pos_source; /* NULL until known */

	struct mysql_out out;
};

struct mysql_check {
	const struct troika_host *host;
	struct troika_instance *inst;
	struct event_base *base;

	struct myconn_target target;
	char where[300]; /* "127.0.1.1:3306" or the socket path */
	int galera;
	int64_t expected_size;
	int64_t fc_warn_pct;
	int64_t conn_warn_pct;
	int replication;
	int64_t max_lag_ms;
	const char *datadir;       /* NULL when not configured */
	const char *defaults_file; /* NULL when not configured */
	const char *mariadbd;
	size_t bootstrap_argc;     /* 0: no bootstrap_command */

	struct event *defer; /* reports a result decided inside a call */
	struct event *poll;  /* bootstrap: the next look at the server */

	struct mysql_run *run; /* the task out, or NULL */
	struct troika_task *oom_task; /* a task with no memory for a run */
	struct mysql_ticket *tickets; /* service calls still out */

	/* Flow control: the previous run's counter, for a ratio per run. */
	int have_fc;
	int64_t fc_paused_ns;
	struct timespec fc_time;
};

/* mysql.c */
struct mysql_run *mysql_run_new(struct mysql_check *m,
    struct troika_task *task, enum mysql_job job);
void mysql_set_result(struct mysql_run *run, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void mysql_report(struct mysql_run *run);
void mysql_report_later(struct mysql_run *run);
void mysql_field(struct mysql_run *run, const char *name, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));
void mysql_sample(struct mysql_run *run, const char *name, const char *help,
    double value, const struct troika_label *labels, size_t nlabels);
int64_t mysql_run_left_ms(const struct mysql_run *run);
int mysql_connect(struct mysql_run *run, const char *const *queries,
    size_t nqueries, int64_t timeout_ms, myconn_done_cb done);
void mysql_connect_failed(struct mysql_run *run);
int mysql_server_answered(const struct myconn_outcome *o);

/* mysql_status.c */
void mysql_facts_reset(struct mysql_facts *f);
int mysql_facts_row(struct mysql_facts *f, size_t query,
    const char *const *names, const char *const *values,
    const unsigned long *lengths, unsigned int nfields);
void mysql_evaluate(struct mysql_run *run);
extern const char mysql_q_status[];
extern const char mysql_q_variables[];
extern const char mysql_q_replicas[];

/* mysql_action.c */
extern const struct troika_action mysql_actions[];
void mysql_action(void *state, struct troika_task *task, const char *name,
    const char *const *argv, size_t argc);
void mysql_poll_cb(evutil_socket_t fd, short what, void *arg);

#endif
