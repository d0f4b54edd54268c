/*
 * exec: run a Nagios/monitoring-plugins compatible program (argv as
 * configured, no shell) through the host's spawn helper, and turn its exit
 * code, first output line and performance data into a result.
 *
 * Async: the host's spawn helper forks, watches and reaps the child on the
 * loop; nothing here blocks.
 *
 * Evidence: a program's verdict carries none (it cannot tell us how sure
 * it is); a timeout is ambiguous.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include <troika/plugin.h>

#include "perfdata.h"

#define EXEC_MAX_OUTPUT_MAX (16LL * 1024 * 1024)
/*
 * Perfdata items reported per run, at most: a bound on the work (and the
 * series) a runaway program can cause.
 */
#define EXEC_MAX_ITEMS 256

struct exec_check {
	const struct troika_host *host;
	struct troika_instance *inst;
	char **argv; /* NULL-terminated */
	size_t max_output;
	struct event *defer; /* reports a failed spawn() from the loop */

	/* The current run. */
	struct troika_task *task;
	void *spawn;     /* handle while the child runs */
	int spawn_errno; /* spawn() failed: reported through defer */
	int64_t budget_ms;
};

static const struct troika_option exec_options[] = {
	{ .name = "command", .type = TROIKA_OPT_STRING_LIST, .required = 1,
	    .help = "program and arguments, run without a shell" },
	{ .name = "max_output", .type = TROIKA_OPT_SIZE,
	    .default_value = "64KiB", .min = 1, .max = EXEC_MAX_OUTPUT_MAX,
	    .help = "most output kept (stdout and stderr together)" },
	{ .name = NULL },
};

static void exec_defer_cb(evutil_socket_t fd, short what, void *arg);

static void
exec_instance_free(void *state)
{
	struct exec_check *e = state;

	if (e == NULL)
		return;
	/* The host cancels a running task first; this is a safety net. */
	if (e->spawn != NULL)
		e->host->spawn_cancel(e->spawn);
	if (e->defer != NULL)
		event_free(e->defer);
	if (e->argv != NULL)
		for (size_t i = 0; e->argv[i] != NULL; i++)
			free(e->argv[i]);
	free(e->argv);
	free(e);
}

static int
exec_instance_new(const struct troika_host *host,
    struct troika_instance *inst, void **ret_state)
{
	struct exec_check *e;
	size_t n = host->opt_list_len(inst, "command");
	int r;

	if (n == 0 || host->opt_list_at(inst, "command", 0)[0] == '\0') {
		host->log(inst, TROIKA_LOG_ERR, "command must name a program");
		return -EINVAL;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -ENOMEM;
	e->host = host;
	e->inst = inst;
	if ((e->argv = calloc(n + 1, sizeof(*e->argv))) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if ((e->argv[i] = strdup(host->opt_list_at(inst, "command",
		    i))) == NULL) {
			r = -ENOMEM;
			goto fail;
		}
	}
	/*
	 * Only a warning: the program may be installed after the agent
	 * starts. Each run that cannot start it says so in its result.
	 */
	if (strchr(e->argv[0], '/') != NULL && access(e->argv[0], X_OK) == -1)
		host->log(inst, TROIKA_LOG_WARNING, "%s: %s", e->argv[0],
		    strerror(errno));
	e->max_output = (size_t)host->opt_size(inst, "max_output");
	if ((e->defer = event_new(host->event_base(inst), -1, 0, exec_defer_cb,
	    e)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	*ret_state = e;
	return 0;

fail:
	exec_instance_free(e);
	return r;
}

static void
exec_report(struct exec_check *e, enum troika_status status,
    enum troika_evidence evidence, const struct troika_sample *samples,
    size_t nsamples, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* End the run and report. */
static void
exec_report(struct exec_check *e, enum troika_status status,
    enum troika_evidence evidence, const struct troika_sample *samples,
    size_t nsamples, const char *fmt, ...)
{
	struct troika_task *task = e->task;
	struct troika_result res = {
		.size = sizeof(res),
		.status = status,
		.evidence = evidence,
		.samples = samples,
		.nsamples = nsamples,
	};
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	res.message = msg;
	e->task = NULL;
	e->spawn = NULL;
	e->host->check_done(task, &res);
}

static const char *
exec_unit_name(enum perfdata_unit unit)
{
	switch (unit) {
	case PERFDATA_UNIT_SECONDS:
		return "seconds";
	case PERFDATA_UNIT_BYTES:
		return "bytes";
	case PERFDATA_UNIT_PERCENT:
		return "percent";
	case PERFDATA_UNIT_COUNTER:
		return "counter";
	case PERFDATA_UNIT_NONE:
		break;
	}
	return "none";
}

/*
 * Samples of a program that exited: its exit code, and one
 * troika_exec_perfdata per perfdata label (the first, if a label comes
 * twice: one series must not have two values).
 */
static void
exec_exited(struct exec_check *e, const struct troika_spawn_result *res)
{
	struct perfdata pd = { 0 };
	struct troika_sample *samples = NULL;
	struct troika_label *labels = NULL;
	enum troika_status status = TROIKA_STATUS_UNKNOWN;
	size_t n = 0, nitems;
	const char *text;
	int r;

	if ((r = perfdata_parse(res->output, res->output_len, &pd)) < 0)
		goto nomem;
	nitems = pd.nitems < EXEC_MAX_ITEMS ? pd.nitems : EXEC_MAX_ITEMS;
	if (pd.nitems > EXEC_MAX_ITEMS || pd.nbad > 0)
		e->host->log(e->inst, TROIKA_LOG_DEBUG, "perfdata: %zu items, "
		    "%zu not parsed, %zu kept", pd.nitems + pd.nbad, pd.nbad,
		    nitems);
	samples = calloc(nitems + 1, sizeof(*samples));
	labels = calloc(2 * nitems + 1, sizeof(*labels));
	if (samples == NULL || labels == NULL)
		goto nomem;
	samples[n++] = (struct troika_sample){
		.name = "troika_exec_exit_code",
		.help = "Exit code of the program",
		.type = TROIKA_METRIC_GAUGE,
		.value = res->exit_code,
	};
	for (size_t i = 0; i < nitems; i++) {
		const struct perfdata_item *it = &pd.items[i];
		struct troika_label *l = &labels[2 * i];
		size_t j;

		for (j = 0; j < i; j++)
			if (strcmp(pd.items[j].label, it->label) == 0)
				break;
		if (j < i)
			continue;
		l[0] = (struct troika_label){ "label", it->label };
		l[1] = (struct troika_label){ "unit", exec_unit_name(it->unit) };
		samples[n++] = (struct troika_sample){
			.name = "troika_exec_perfdata",
			.help = "Performance data of the program, in base units",
			.type = TROIKA_METRIC_GAUGE,
			.value = it->value,
			.labels = l,
			.nlabels = 2,
		};
	}
	text = pd.text != NULL && pd.text[0] != '\0' ? pd.text :
	    res->output_len == 0 ? "(no output)" : "(no text)";
	if (res->exit_code >= 0 && res->exit_code <= 3) {
		status = (enum troika_status)res->exit_code;
		exec_report(e, status, TROIKA_EVIDENCE_NONE, samples, n, "%s",
		    text);
	} else {
		exec_report(e, status, TROIKA_EVIDENCE_NONE, samples, n,
		    "exit code %d (not 0..3): %s", res->exit_code, text);
	}
	perfdata_free(&pd);
	free(samples);
	free(labels);
	return;

nomem:
	perfdata_free(&pd);
	free(samples);
	free(labels);
	exec_report(e, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE, NULL, 0,
	    "out of memory parsing the output of %s", e->argv[0]);
}

static void
exec_done_cb(const struct troika_spawn_result *res, void *arg)
{
	struct exec_check *e = arg;

	e->spawn = NULL;
	if (res->spawn_errno != 0)
		exec_report(e, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    NULL, 0, "could not start %s: %s", e->argv[0],
		    strerror(res->spawn_errno));
	else if (res->timed_out)
		exec_report(e, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_AMBIGUOUS,
		    NULL, 0, "%s timed out after %lld ms", e->argv[0],
		    (long long)e->budget_ms);
	else if (!res->exited)
		exec_report(e, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    NULL, 0, "killed by signal %d", res->signal);
	else
		exec_exited(e, res);
}

static void
exec_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_check *e = arg;

	(void)fd;
	(void)what;
	exec_report(e, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE, NULL, 0,
	    "could not start %s: %s", e->argv[0], strerror(e->spawn_errno));
}

/*
 * The time this run may take: what the host allows minus a margin, so a
 * program that stops at SIGTERM is reported by the plugin, with its name,
 * before the host gives up on the task.
 */
static int64_t
exec_budget_ms(int64_t remaining)
{
	int64_t margin = remaining / 10;

	if (margin > 100)
		margin = 100;
	return remaining - margin > 1 ? remaining - margin : 1;
}

static void
exec_check(void *state, struct troika_task *task)
{
	struct exec_check *e = state;

	e->task = task;
	e->budget_ms = exec_budget_ms(e->host->task_remaining_ms(task));
	e->spawn = e->host->spawn(e->inst, (const char *const *)e->argv,
	    e->budget_ms, e->max_output, exec_done_cb, e);
	if (e->spawn == NULL) {
		/* check() must return before the plugin calls check_done(). */
		e->spawn_errno = errno != 0 ? errno : EAGAIN;
		event_active(e->defer, EV_TIMEOUT, 1);
	}
}

static void
exec_cancel(void *state, struct troika_task *task)
{
	struct exec_check *e = state;

	if (e->task != task)
		return;
	if (e->spawn != NULL)
		e->host->spawn_cancel(e->spawn);
	e->spawn = NULL;
	event_del(e->defer);
	e->task = NULL;
}

static const struct troika_plugin exec_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "exec",
	.version = TROIKA_VERSION,
	.description = "run a monitoring-plugins compatible program",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = exec_options,
	.instance_new = exec_instance_new,
	.instance_free = exec_instance_free,
	.check = exec_check,
	.cancel = exec_cancel,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &exec_plugin;
}
