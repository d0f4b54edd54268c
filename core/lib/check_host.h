/*
 * The check host: one plugin instance per configured check, each run on
 * its schedule, with a deadline, never twice at once; results, state
 * changes and metrics. The plugin only talks to its service; everything
 * about time and bookkeeping lives here.
 *
 * Scheduling: every check fires every `interval` on the loop's monotonic
 * clock, first at an offset derived from its name (so 1,000 checks with one
 * interval spread over it instead of firing together, and the offset stays
 * the same across reloads). A run still out when the next is due is not
 * started twice; the skipped run is counted as an overrun.
 *
 * Deadlines: at `timeout` the run's result is UNKNOWN (ambiguous evidence,
 * "timed out"); an async plugin with cancel() is told to drop the work,
 * otherwise the late completion is waited for and ignored.
 */
#ifndef TROIKA_CHECK_HOST_H
#define TROIKA_CHECK_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <troika/plugin.h>

struct event_base;
struct evbuffer;
struct agent_conf;
struct plugin;
struct plugin_set;
struct check_host;
/* A configured check; the handle plugins get is this very object. */
struct troika_instance;

/* Per-check counters by result. */
enum check_result {
	CHECK_RESULT_OK = 0,
	CHECK_RESULT_WARNING,
	CHECK_RESULT_CRITICAL,
	CHECK_RESULT_UNKNOWN,
	CHECK_RESULT_TIMEOUT,
	CHECK_RESULT_COUNT,
};

struct check_host *check_host_new(struct event_base *base, int workers);
/* Frees every check (cancelling runs) and the pools. Accepts NULL. */
void check_host_free(struct check_host *h);

/*
 * Make the set of checks match conf: checks whose name, definition
 * (canonical text) and plugin object are unchanged keep running with their
 * state and schedule; others are freed; new ones are created and
 * scheduled. A check whose plugin is not loaded, or whose instance_new
 * fails, stays visible with status UNKNOWN and does not run.
 */
void check_host_apply(struct check_host *h, const struct agent_conf *conf,
    struct plugin_set *ps);

/* Does any check use plugin p? */
int check_host_uses_plugin(const struct check_host *h, const struct plugin *p);

/* Free every check that uses plugin p (before p is unloaded). */
void check_host_drop_plugin(struct check_host *h, const struct plugin *p);

/* Start a run now (unless one is out). Returns 0, -ENOENT or -EBUSY. */
int check_host_run_now(struct check_host *h, const char *name);

/* How an action went; valid during the done callback only. */
struct action_outcome {
	enum troika_status status; /* OK done, CRITICAL failed, UNKNOWN unsure */
	const char *message;
	const struct troika_label *fields;
	size_t nfields;
	int timed_out;
	double duration; /* seconds */
};
typedef void (*check_action_done_fn)(const struct action_outcome *o, void *arg);

/*
 * Run an action of a check's plugin (restart, promote, ...) with a
 * deadline (timeout_ms <= 0: the check's action_timeout). It waits for a check
 * run that is out; done is called exactly once unless the handle is
 * forgotten first. Returns 0, or -ENOENT (no such check, or not running),
 * -EOPNOTSUPP (no such action), -EINVAL (wrong argument count), -EBUSY
 * (an action is in progress), -ENOMEM; *ret_error then says it in words.
 */
struct troika_task;
int check_host_action(struct check_host *h, const char *check,
    const char *action, const char *const *argv, size_t argc,
    int64_t timeout_ms, check_action_done_fn done, void *arg,
    struct troika_task **ret_handle, const char **ret_error);
/* The requester went away: done will not be called. */
void check_host_action_forget(struct troika_task *handle);

size_t check_host_count(const struct check_host *h);
/* The i-th check in configuration order (i < check_host_count()). */
struct troika_instance *check_host_at(const struct check_host *h, size_t i);
struct troika_instance *check_host_find(const struct check_host *h,
    const char *name);

/* State of one check, for tests and status output. */
struct check_view {
	const char *name;
	const char *plugin;
	int has_result;
	enum troika_status status;
	enum troika_evidence evidence;
	const char *message;
	uint64_t runs[CHECK_RESULT_COUNT];
	uint64_t overruns;
	int running;
	size_t nsamples;
};
void check_view(const struct troika_instance *c, struct check_view *ret);

/*
 * A check's latest result, as reported to coordinators. Pointers are the
 * check's own: valid until its next result or until it is freed.
 */
struct check_report {
	const char *check;
	const char *plugin;
	enum troika_status status;
	enum troika_evidence evidence;
	const char *message;          /* "" when none */
	const struct troika_label *fields;
	size_t nfields;
	size_t nsamples;              /* read with check_report_sample() */
	double duration;              /* seconds */
	double time;                  /* wall clock, seconds */
	int timed_out;
	uint64_t run;                 /* runs since the agent started */
	/*
	 * Orders results across checks: every recorded result takes the
	 * host's next number, so "everything after N" is well defined.
	 */
	uint64_t seq;
};
/* Returns 0, or -ENOENT when the check has no result yet. */
int check_report_get(const struct troika_instance *c, struct check_report *r);
/* Sample i (< nsamples) of the latest result; labels as the plugin gave. */
void check_report_sample(const struct troika_instance *c, size_t i,
    struct troika_sample *s);

/*
 * Called on the loop after every recorded result (runs, timeouts and
 * statuses the host sets itself), with the seq of the result it replaced
 * (0: none). One hook per host; NULL removes it.
 */
typedef void (*check_result_hook_fn)(const struct troika_instance *c,
    uint64_t prev_seq, void *arg);
void check_host_set_result_hook(struct check_host *h, check_result_hook_fn fn,
    void *arg);

/* Scheduling offset of a check within its interval (exposed for tests). */
int64_t check_spread_offset_ms(const char *name, int64_t interval_ms);

/*
 * troika_check_* families and the plugins' samples (with check and plugin
 * labels), grouped by family as the exposition format requires.
 */
void check_host_metrics(const struct check_host *h, struct evbuffer *out);

/* Number of tasks started and not yet finished or freed (tests). */
size_t check_host_tasks_alive(void);

#endif
