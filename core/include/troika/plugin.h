/*
 * troika plugin ABI.
 *
 * A plugin is a shared object that exports one function, TROIKA_PLUGIN_ENTRY,
 * returning a pointer to a constant descriptor (struct troika_plugin). The
 * host checks the descriptor's ABI major (also part of the symbol name, so a
 * plugin built for another major is not even found) and its size, then
 * creates one instance per configured check.
 *
 * The host owns scheduling, deadlines, concurrency and result bookkeeping. A
 * plugin only knows how to talk to its service: check() starts the work and
 * the plugin reports exactly once through host->check_done(). Plugins link no
 * host symbols; everything they need from the host comes through the
 * struct troika_host function table, so a unit test can pass a fake one.
 *
 * Compatibility rules:
 *  - a new ABI major renames the entry symbol; the host refuses other majors;
 *  - within a major, structs only grow at the end; each carries its size so
 *    either side can tell which fields the other knows about.
 *
 * History: 1.0 checks; 1.1 actions (struct troika_action, action()),
 * result fields, host->service_control().
 */
#ifndef TROIKA_PLUGIN_H
#define TROIKA_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TROIKA_PLUGIN_ABI_MAJOR 1
#define TROIKA_PLUGIN_ABI_MINOR 1

/* The exported entry point. The major is part of the name on purpose. */
#define TROIKA_PLUGIN_ENTRY troika_plugin_entry_v1
#define TROIKA_PLUGIN_ENTRY_NAME "troika_plugin_entry_v1"

/* Check statuses, numbered as in the Nagios/monitoring-plugins convention. */
enum troika_status {
	TROIKA_STATUS_OK = 0,
	TROIKA_STATUS_WARNING = 1,
	TROIKA_STATUS_CRITICAL = 2,
	TROIKA_STATUS_UNKNOWN = 3,
};

/*
 * How sure a result is. Certain evidence (the process exited, a local
 * connect was refused, a connection was reset) lets policies act after one
 * confirming re-check; ambiguous evidence (a timeout, a slow reply) needs
 * several consecutive results.
 */
enum troika_evidence {
	TROIKA_EVIDENCE_NONE = 0, /* OK results, or the plugin cannot tell */
	TROIKA_EVIDENCE_CERTAIN = 1,
	TROIKA_EVIDENCE_AMBIGUOUS = 2,
};

/* How the host runs check(). */
enum troika_exec_model {
	/* check() returns at once; I/O runs on the host's event base. */
	TROIKA_EXEC_ASYNC = 1,
	/*
	 * check() may block; the host calls it on a bounded worker pool
	 * thread. check_done() may be called from that thread before check()
	 * returns (the host hands the result back to the loop thread).
	 */
	TROIKA_EXEC_BLOCKING = 2,
};

enum troika_log_level {
	TROIKA_LOG_ERR = 3,
	TROIKA_LOG_WARNING = 4,
	TROIKA_LOG_INFO = 6,
	TROIKA_LOG_DEBUG = 7,
};

/*
 * Option types a plugin may declare. The host parses and validates them at
 * configuration time, so a typo or a bad value is reported with its
 * file:line:column before any check runs.
 */
enum troika_option_type {
	TROIKA_OPT_STRING = 1,
	TROIKA_OPT_INT = 2,      /* int64, bounded by min/max */
	TROIKA_OPT_BOOL = 3,     /* true/false */
	TROIKA_OPT_DURATION = 4, /* "500ms", "5s", "6h"; milliseconds, min/max */
	TROIKA_OPT_SIZE = 5,     /* "64MiB", "512"; bytes, min/max */
	TROIKA_OPT_STRING_LIST = 6, /* YAML sequence of scalars */
	TROIKA_OPT_STRING_MAP = 7,  /* YAML mapping of scalar -> scalar */
};

/* One declared option. Arrays of these end with an entry whose name is NULL. */
struct troika_option {
	const char *name;
	enum troika_option_type type;
	int required;              /* non-zero: must be present */
	const char *default_value; /* scalar types only, parsed like config text */
	int64_t min;               /* INT, DURATION (ms), SIZE; ignored if min > max */
	int64_t max;
	const char *help;          /* one line, shown by --list-plugins */
};

enum troika_metric_type {
	TROIKA_METRIC_GAUGE = 1,
	TROIKA_METRIC_COUNTER = 2,
};

struct troika_label {
	const char *name;
	const char *value;
};

/*
 * One metric sample reported with a result. The host adds the labels
 * check="<check name>" and plugin="<plugin name>"; the name must match
 * [a-zA-Z_:][a-zA-Z0-9_:]* and must not start with "troika_check_" or
 * "troika_plugin_" (reserved for the host).
 */
struct troika_sample {
	const char *name;
	const char *help; /* may be NULL */
	enum troika_metric_type type;
	double value;
	const struct troika_label *labels;
	size_t nlabels;
};

/*
 * What a check found, or how an action went. check_done() copies everything
 * it points to. For an action, status OK means done, CRITICAL failed, and
 * UNKNOWN that the outcome is not known (e.g. timed out half-way).
 */
struct troika_result {
	size_t size; /* sizeof(struct troika_result) as the plugin knows it */
	enum troika_status status;
	enum troika_evidence evidence;
	const char *message; /* one line; may be NULL */
	const struct troika_sample *samples;
	size_t nsamples;
	/*
	 * ABI 1.1: facts as text, e.g. an action's output (uuid, seqno) or a
	 * check's findings that are not numbers (role, local state). Names
	 * follow label-name rules; at most 64 fields of 4 KiB each.
	 */
	const struct troika_label *fields;
	size_t nfields;
};

/*
 * An action a plugin offers (ABI 1.1): start, stop, restart, promote,
 * position, ... Arrays of these end with an entry whose name is NULL.
 */
struct troika_action {
	const char *name;  /* [a-z0-9_-]+ */
	const char *usage; /* arguments, e.g. "<host> <port>"; NULL if none */
	int min_args;
	int max_args;
	const char *help;  /* one line */
};

/* Opaque host objects. */
struct troika_instance; /* one configured check */
struct troika_task;     /* one run of a check */
struct event_base;

/* Result of a child process run through host->spawn(). */
struct troika_spawn_result {
	int exited;          /* 1: exited normally, exit_code is valid */
	int exit_code;
	int signal;          /* terminating signal, if !exited */
	int timed_out;       /* the host killed it at its deadline */
	int spawn_errno;     /* non-zero: it could not be started at all */
	const char *output;  /* stdout and stderr, NUL-terminated, maybe cut */
	size_t output_len;
	int output_truncated;
	int64_t duration_us;
};

typedef void (*troika_spawn_done_cb)(const struct troika_spawn_result *res,
    void *arg);

/* Completion of a transfer added with host->curl_add(); code is a CURLcode. */
typedef void (*troika_curl_done_cb)(void *easy, int code, void *arg);

/*
 * Completion of host->service_control(): ok is 1 when the service manager
 * did what was asked; message says what happened either way.
 */
typedef void (*troika_service_done_cb)(int ok, const char *message, void *arg);

/*
 * The table of host functions. All functions are called on the loop thread
 * unless marked otherwise.
 */
struct troika_host {
	uint32_t abi_major;
	uint32_t abi_minor;
	size_t size; /* sizeof(struct troika_host) as the host knows it */

	/* Log a line; the host prefixes it with plugin and check name. Any thread. */
	void (*log)(struct troika_instance *inst, enum troika_log_level level,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

	/* The loop's event base, for async plugins. */
	struct event_base *(*event_base)(struct troika_instance *inst);

	/* Configured check name. */
	const char *(*instance_name)(struct troika_instance *inst);

	/* Typed option getters; the host validated types and ranges already. */
	int (*opt_isset)(struct troika_instance *inst, const char *name);
	const char *(*opt_string)(struct troika_instance *inst, const char *name);
	int64_t (*opt_int)(struct troika_instance *inst, const char *name);
	int (*opt_bool)(struct troika_instance *inst, const char *name);
	int64_t (*opt_duration_ms)(struct troika_instance *inst, const char *name);
	int64_t (*opt_size)(struct troika_instance *inst, const char *name);
	size_t (*opt_list_len)(struct troika_instance *inst, const char *name);
	const char *(*opt_list_at)(struct troika_instance *inst,
	    const char *name, size_t i);
	/* For STRING_MAP options: i-th key and value, in config order. */
	size_t (*opt_map_len)(struct troika_instance *inst, const char *name);
	const char *(*opt_map_key)(struct troika_instance *inst,
	    const char *name, size_t i);
	const char *(*opt_map_value)(struct troika_instance *inst,
	    const char *name, size_t i);

	/*
	 * Report the result of a task (a check run or an action), exactly
	 * once. Copies the result. Blocking plugins may call it from their
	 * worker thread.
	 */
	void (*check_done)(struct troika_task *task,
	    const struct troika_result *res);

	/* Milliseconds left until the task's deadline (0 when past it). */
	int64_t (*task_remaining_ms)(struct troika_task *task);

	/*
	 * Run argv[0] with argv (no shell) in its own process group, stdin
	 * from /dev/null, stdout+stderr captured up to max_output bytes. At
	 * timeout_ms it is sent SIGTERM, and SIGKILL after a grace period.
	 * done is called on the loop thread exactly once, unless the spawn
	 * is cancelled with spawn_cancel() first. Returns a handle or NULL
	 * (with errno set) when it could not even be set up.
	 */
	void *(*spawn)(struct troika_instance *inst, const char *const *argv,
	    int64_t timeout_ms, size_t max_output, troika_spawn_done_cb done,
	    void *arg);
	/* Kill (TERM, then KILL) and forget a spawn; done is not called. */
	void (*spawn_cancel)(void *handle);

	/*
	 * Add a prepared CURL easy handle to the host's shared multi handle,
	 * driven by the event loop. done is called once on the loop thread
	 * when the transfer ends; the plugin then owns the easy handle again.
	 * Returns 0 or a negative errno.
	 */
	int (*curl_add)(struct troika_instance *inst, void *easy,
	    troika_curl_done_cb done, void *arg);
	/* Remove a transfer before it ends; done is not called. */
	void (*curl_remove)(void *easy);

	/*
	 * ABI 1.1: start, stop or restart the check's service through the
	 * service manager configured for the check (its `service:` key).
	 * Loop thread only. Never blocks; done is called on the loop exactly
	 * once, unless the check is freed first (then never). Returns 0,
	 * -ENOENT when the check has no service configured, or another
	 * negative errno.
	 *
	 * Plugins rarely need it: for a check with a `service:`, the host
	 * offers start, stop and restart actions itself. A plugin declares
	 * its own only to add to them (e.g. recover a position first).
	 */
	int (*service_control)(struct troika_instance *inst, const char *op,
	    int64_t timeout_ms, troika_service_done_cb done, void *arg);
};

/*
 * The descriptor a plugin returns. Functions marked optional may be NULL.
 */
struct troika_plugin {
	uint32_t abi_major;
	uint32_t abi_minor;
	size_t size; /* sizeof(struct troika_plugin) as the plugin knows it */

	const char *name; /* [a-z0-9_-]+, unique in the plugin directories */
	const char *version;
	const char *description;
	enum troika_exec_model exec_model;
	const struct troika_option *options; /* NULL-name terminated */

	/*
	 * Create the state of one configured check. Options were validated
	 * against the declaration; this may check combinations. Returns 0
	 * with *ret_state set, or a negative errno after logging why.
	 */
	int (*instance_new)(const struct troika_host *host,
	    struct troika_instance *inst, void **ret_state);

	/*
	 * Free an instance. If a task is still out, the host called cancel()
	 * for it first; a plugin without cancel() must abandon such a task
	 * here and never call check_done() for it afterwards. Blocking
	 * plugins are freed only after their running check() returned.
	 */
	void (*instance_free)(void *state);

	/*
	 * Start one run. Async plugins return at once and call check_done()
	 * later from the loop, never before check() returned (a failure
	 * found at once is reported from a 0 ms timer), so host code is never
	 * re-entered. Blocking plugins run to completion on a worker thread.
	 * The host never starts a second run of an instance while one is out.
	 */
	void (*check)(void *state, struct troika_task *task);

	/*
	 * Optional, async plugins only: abandon the running task (deadline
	 * passed, or shutdown). After it returns, the plugin must not touch
	 * the task nor call check_done() for it. Without cancel, the host
	 * waits for the late check_done() and drops that result.
	 */
	void (*cancel)(void *state, struct troika_task *task);

	/* ABI 1.1: the actions this plugin offers; may be NULL. */
	const struct troika_action *actions;

	/*
	 * ABI 1.1, required when actions is not NULL: run one action. It is
	 * a task like a check run: same execution model, same deadline
	 * handling (cancel() applies), reported once through check_done().
	 * The host never runs two tasks of one instance at once: an action
	 * waits for a running check, and checks wait for a running action.
	 * argc is within the action's min_args..max_args.
	 */
	void (*action)(void *state, struct troika_task *task, const char *name,
	    const char *const *argv, size_t argc);
};

typedef const struct troika_plugin *(*troika_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* TROIKA_PLUGIN_H */
