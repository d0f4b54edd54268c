/*
 * A fake struct troika_host for plugin unit tests. It plays the host's
 * side of the plugin ABI with as little as possible of the real host:
 *  - option getters backed by a name -> value table the test fills; when
 *    the plugin's declarations are given, a value the real host would
 *    refuse (wrong type, out of range, undeclared name) fails the test,
 *    and unset options read as their declared default;
 *  - a real libevent base, a settable deadline per task;
 *  - check_done() keeps a deep copy of every result and counts them;
 *  - log lines are captured;
 *  - spawn and curl go through the real core/lib spawn and curlm modules.
 * Breaches of the plugin contract (check_done() twice, after cancel, or
 * inside an async check(); a reserved or invalid sample name; a getter of
 * the wrong type) are counted as violations, which tests assert to be 0.
 *
 * One fake host stands for one configured check (one instance). Only one
 * fake host may exist at a time: spawn_cancel() and curl_remove() get no
 * instance, so they find the fake host through a static pointer.
 */
#ifndef FAKE_HOST_H
#define FAKE_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <troika/plugin.h>

struct event_base;
struct fake_host;

struct fake_label {
	char *name;
	char *value;
};

struct fake_sample {
	char *name;
	char *help; /* NULL if the plugin gave none */
	enum troika_metric_type type;
	double value;
	struct fake_label *labels;
	size_t nlabels;
};

/* A deep copy of one reported struct troika_result. */
struct fake_result {
	struct troika_task *task;
	enum troika_status status;
	enum troika_evidence evidence;
	char *message; /* NULL if the plugin gave none */
	struct fake_sample *samples;
	size_t nsamples;
	struct fake_label *fields; /* ABI 1.1; none from an older plugin */
	size_t nfields;
};

/*
 * A fake host with a fresh event base. decl, the plugin's option
 * declarations (may be NULL: then nothing is checked and there are no
 * defaults), must outlive the fake host. Never returns NULL: a failure
 * fails the test.
 */
struct fake_host *fake_host_new(const struct troika_option *decl);
/* Frees results, tasks, the curl multi handle, reaps spawned children and
 * frees the event base. Accepts NULL. */
void fake_host_free(struct fake_host *fh);

const struct troika_host *fake_host_table(struct fake_host *fh);
struct troika_instance *fake_host_instance(struct fake_host *fh);
struct event_base *fake_host_base(struct fake_host *fh);

/*
 * Option values, as the host would hand them over after validation. The
 * strings are copied. Setting an option again replaces it.
 */
void fake_host_set_string(struct fake_host *fh, const char *name,
    const char *value);
void fake_host_set_int(struct fake_host *fh, const char *name, int64_t v);
void fake_host_set_bool(struct fake_host *fh, const char *name, int v);
void fake_host_set_duration(struct fake_host *fh, const char *name,
    int64_t ms);
void fake_host_set_size(struct fake_host *fh, const char *name,
    int64_t bytes);
void fake_host_set_list(struct fake_host *fh, const char *name,
    const char *const *items, size_t n);
void fake_host_set_map(struct fake_host *fh, const char *name,
    const char *const *keys, const char *const *values, size_t n);
void fake_host_unset(struct fake_host *fh, const char *name);

/*
 * plugin->instance_new() with this host, after checking that every
 * required option is set (a test that forgets one fails here, as the
 * host would never call instance_new without it). Returns its result.
 */
int fake_host_instance_new(struct fake_host *fh,
    const struct troika_plugin *plugin, void **ret_state);

/* A task whose deadline is deadline_ms from now; owned by the fake host. */
struct troika_task *fake_host_task(struct fake_host *fh, int64_t deadline_ms);
/* Move a task's deadline to deadline_ms from now (0: already past). */
void fake_host_task_set_deadline(struct troika_task *task,
    int64_t deadline_ms);

/*
 * plugin->check(), noting that a check is running: an async plugin that
 * calls check_done() before check() returns is a violation.
 */
void fake_host_check(struct fake_host *fh, const struct troika_plugin *plugin,
    void *state, struct troika_task *task);
/* plugin->action(), with the same rule as fake_host_check(). */
void fake_host_action(struct fake_host *fh, const struct troika_plugin *plugin,
    void *state, struct troika_task *task, const char *name,
    const char *const *argv, size_t argc);
/* plugin->cancel(); a later check_done() for the task is a violation. */
void fake_host_cancel(struct fake_host *fh, const struct troika_plugin *plugin,
    void *state, struct troika_task *task);

/*
 * Run the event loop until count results were reported in total, or
 * timeout_ms passed. Returns 0, or -ETIMEDOUT.
 */
int fake_host_wait_done(struct fake_host *fh, unsigned count, int timeout_ms);
/* Run the event loop for ms milliseconds. */
void fake_host_run_for(struct fake_host *fh, int ms);

unsigned fake_host_done_count(struct fake_host *fh);
/* The most recent result; NULL if there is none. */
const struct fake_result *fake_host_last(struct fake_host *fh);
/* The first sample named name (and, when label is not NULL, whose label of
 * that name has the value value); NULL if none. */
const struct fake_sample *fake_result_sample(const struct fake_result *res,
    const char *name, const char *label, const char *value);
/* Value of a sample's label; NULL if it has none such. */
const char *fake_sample_label(const struct fake_sample *s, const char *name);
/* Value of a result's field; NULL if it has none such. */
const char *fake_result_field(const struct fake_result *res, const char *name);

/* Log lines captured so far, the last one and its level. */
unsigned fake_host_log_count(struct fake_host *fh);
const char *fake_host_log_last(struct fake_host *fh);
int fake_host_log_last_level(struct fake_host *fh);
/* 1 if any captured line contains needle. */
int fake_host_log_contains(struct fake_host *fh, const char *needle);

/* Contract breaches seen; the text of the last one (NULL if none). */
unsigned fake_host_violations(struct fake_host *fh);
const char *fake_host_last_violation(struct fake_host *fh);

/* Make the next spawn() fail with errno err, or the next curl_add()
 * return the negative errno err. */
void fake_host_fail_next_spawn(struct fake_host *fh, int err);
void fake_host_fail_next_curl_add(struct fake_host *fh, int err);

/*
 * service_control(): by default it returns -ENOENT (no service configured
 * for the check). After fake_host_set_service() it returns 0 and calls
 * done(ok, message) from the loop. The calls are counted; the last
 * operation asked for is kept.
 */
void fake_host_set_service(struct fake_host *fh, int ok, const char *message);
unsigned fake_host_service_calls(struct fake_host *fh);
const char *fake_host_service_last_op(struct fake_host *fh);

/* Calls of spawn, spawn_cancel, curl_add and curl_remove so far. */
unsigned fake_host_spawns(struct fake_host *fh);
unsigned fake_host_spawn_cancels(struct fake_host *fh);
unsigned fake_host_curl_adds(struct fake_host *fh);
unsigned fake_host_curl_removes(struct fake_host *fh);

/*
 * Events the plugin left in the event base (added or active), leaving out
 * the fake host's own; tests assert 0 once a run ended or was cancelled.
 */
int fake_host_events_pending(struct fake_host *fh);

/* Open descriptors of this process, to check that a plugin closed its own. */
int fake_host_count_fds(void);

/*
 * dlopen() path (RTLD_NOW | RTLD_LOCAL) and return its descriptor, after
 * the checks the host makes (entry symbol, ABI major, size). Fails the test
 * on any error. *ret_dl is for dlclose().
 */
const struct troika_plugin *fake_host_load_plugin(const char *path,
    void **ret_dl);

#endif
