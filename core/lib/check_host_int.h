/*
 * Internals of the check host, shared by its parts; not for other modules.
 *   check_host.c     the host table, options, instances, schedule, apply
 *   check_task.c     runs and actions: tasks, deadlines, the worker pool
 *   check_result.c   copying and bounding what a plugin reports
 *   check_service.c  start/stop/restart through svc.c
 *   check_metrics.c  the troika_check_* families and plugin samples
 */
#ifndef TROIKA_CHECK_HOST_INT_H
#define TROIKA_CHECK_HOST_INT_H

#include <pthread.h>
#include <sys/types.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

#include "check_host.h"
#include "metrics.h"
#include "svc.h"

struct conf_check;
struct conf_service;

enum check_recheck_reason {
	CHECK_RECHECK_CERTAIN = 0,      /* confirming a certain failure */
	CHECK_RECHECK_PROCESS_EXIT,     /* the main process exited */
	CHECK_RECHECK_COUNT,
};

/* Bounds on what one result may carry; more is cut and counted. */
#define RESULT_MAX_SAMPLES 1000
#define RESULT_MAX_LABELS 16
#define RESULT_MAX_MESSAGE 1024
#define RESULT_MAX_FIELDS 64
#define RESULT_MAX_FIELD_VALUE 4096
#define WORKER_QUEUE_MAX 4096
/* Distinct intervals and timeouts given O(1) timer queues (libevent: 256). */
#define COMMON_TIMEOUTS_MAX 64

struct sample_copy {
	char *name;
	char *help;
	enum troika_metric_type type;
	double value;
	struct troika_label *labels; /* names and values owned */
	size_t nlabels;
};

struct result_copy {
	enum troika_status status;
	enum troika_evidence evidence;
	char *message;
	struct sample_copy *samples;
	size_t nsamples;
	size_t ndropped; /* samples refused (bad names, over the limit) */
	struct troika_label *fields; /* names and values owned */
	size_t nfields;
};

/* A check's own copy of its options (the agent_conf may go away). */
struct opt_copy {
	char *name;
	enum troika_option_type type;
	int isset;
	int hasvalue;
	char *str;
	int64_t num;
	char **list;
	size_t nlist;
	char **keys;
	char **vals;
	size_t nmap;
};

enum task_state {
	TASK_RUNNING,
	/* Past its deadline, result recorded; waiting for the late end. */
	TASK_ABANDONED,
};

struct troika_task {
	struct troika_instance *check; /* NULL once the check is gone */
	struct check_host *host;
	enum task_state state;
	int blocking;
	int64_t started_us;  /* monotonic */
	int64_t deadline_us; /* monotonic */
	struct event *deadline;
	/*
	 * Blocking plugins: check_done() on the worker thread fills this;
	 * the loop reads it after the job's done callback. When the check
	 * was freed while the job ran, the task keeps what instance_free
	 * needs.
	 */
	int has_result;
	struct result_copy result;
	struct plugin *orphan_plugin;
	void *orphan_state;

	/* An action rather than a check run. */
	int is_action;
	/* start/stop/restart run by the host's service manager, no plugin. */
	int builtin_service;
	char *action;
	char **argv;
	size_t argc;
	int64_t timeout_ms;
	check_action_done_fn done; /* NULL once reported or forgotten */
	void *done_arg;
};

struct troika_instance {
	struct check_host *host;
	char *name;
	char *plugin_name;
	char *canonical;
	int64_t interval_ms;
	int64_t timeout_ms;
	int64_t action_timeout_ms;
	struct opt_copy *opts;
	size_t nopts;
	struct svc_spec service;
	struct service_call *service_calls; /* in progress; cancelled with us */

	struct plugin *plugin; /* referenced; NULL when not loaded */
	void *state;           /* plugin instance; NULL if not created */
	int runnable;

	struct troika_task *pending_action; /* waits for the running check */
	struct event *first;  /* one-shot: the spread offset */
	struct event *ticker; /* persistent: every interval after that */
	struct troika_task *task;

	int has_result;
	struct result_copy last;
	uint64_t runs[CHECK_RESULT_COUNT];
	uint64_t overruns;
	uint64_t samples_dropped;
	int warned_samples;
	double last_run_time; /* wall clock, seconds */
	double last_duration; /* seconds */
	int last_timed_out;
	uint64_t result_seq;  /* the host's counter when last recorded */

	/* check_watch.c: runs outside the schedule on certain evidence. */
	char *pidfile;        /* service.pidfile, or NULL */
	pid_t watch_pid;      /* 0: not watching */
	pid_t exited_pid;     /* seen exiting: never watched again */
	int watch_fd;         /* pidfd, or -1 */
	struct event *watch_ev;
	struct event *recheck_ev;
	int recheck_pending;  /* waits for the run or action in progress */
	int confirm_next;     /* the next result confirms a certain failure */
	uint64_t rechecks[CHECK_RECHECK_COUNT];
	struct metrics_histogram duration;
};

struct check_host {
	struct event_base *base;
	pthread_t loop_thread; /* where the host's own state may be touched */
	struct worker_pool *pool;
	struct curlm *curlm;
	struct troika_instance **checks; /* in configuration order */
	size_t nchecks;
	struct {
		int64_t ms;
		const struct timeval *tv;
	} common[COMMON_TIMEOUTS_MAX];
	size_t ncommon;
	uint64_t result_seq; /* results recorded so far, all checks */
	check_result_hook_fn result_hook;
	void *result_hook_arg;
};

/* One host->service_control() in progress. */
struct service_call {
	struct troika_instance *check;
	struct svc_op *op;
	troika_service_done_cb done;
	void *arg;
	struct service_call *next;
};

static inline int64_t
check_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline double
check_wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline struct timeval
check_us_to_tv(int64_t us)
{
	struct timeval tv;

	if (us < 0)
		us = 0;
	tv.tv_sec = us / 1000000;
	tv.tv_usec = us % 1000000;
	return tv;
}

/* check_host.c */
void check_record(struct troika_instance *c, struct result_copy *r,
    int timed_out, double duration);
const struct timeval *check_host_timeout(struct check_host *h, int64_t ms,
    struct timeval *plain);
char **check_strv_dup(char *const *v, size_t n);

/* check_result.c: copy a plugin's result, bounded; safe on any thread. */
int check_result_copy(struct result_copy *r, const struct troika_result *res);
void check_result_clear(struct result_copy *r);

/* check_task.c */
int check_start(struct troika_instance *c);
void check_task_done(struct troika_task *t, const struct troika_result *res);
int64_t check_task_remaining_ms(struct troika_task *t);
void check_task_free(struct troika_task *t);
void check_task_finish(struct troika_task *t, struct result_copy *r,
    int timed_out);
int check_plugin_has_cancel(const struct troika_plugin *d);
/* Tell an action's requester how it went, once. */
void check_action_report(struct troika_task *t, const struct result_copy *r,
    int timed_out);

/* check_watch.c */
int check_watch_init(struct troika_instance *c, const char *pidfile);
void check_watch_free(struct troika_instance *c);
/* After every result: (re)read the pidfile, watch the process it names. */
void check_watch_rearm(struct troika_instance *c);
void check_recheck_soon(struct troika_instance *c,
    enum check_recheck_reason why);
/* A run or action ended: start a re-check that waited for it. */
void check_recheck_if_pending(struct troika_instance *c);

/* check_service.c */
int check_service_control(struct troika_instance *c, const char *op,
    int64_t timeout_ms, troika_service_done_cb done, void *arg);
void check_service_cancel_arg(struct troika_instance *c, void *arg);
void check_service_cancel_all(struct troika_instance *c);
int check_service_spec_copy(struct svc_spec *d, const struct conf_service *cs);
void check_service_spec_free(struct svc_spec *s);

#endif
