/*
 * flaky: an async plugin whose status cycles through the option `statuses`
 * (a list of ok, warning, critical, unknown; default [ok]), one entry per
 * run. It completes from a 0 ms libevent timer, never synchronously inside
 * check(), as a real async plugin would. It tests rise/fall and state
 * changes with a known sequence of results, and the escaping of the
 * exposition format: its one sample, troika_flaky_value (the number of
 * runs so far), has a label `text` holding a double quote, a backslash and
 * a newline, and its message holds the same characters.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include <troika/plugin.h>

/* Every character an exposition writer must escape, on purpose. */
#define FLAKY_TEXT "quote \" backslash \\ newline \n end"

struct flaky_state {
	const struct troika_host *host;
	struct troika_instance *inst;
	enum troika_status *statuses;
	size_t nstatuses;
	unsigned long runs;
	struct troika_task *task; /* running task or NULL */
	struct event *timer;      /* made once, so check() cannot fail */
};

static const struct troika_option flaky_options[] = {
	{ .name = "statuses", .type = TROIKA_OPT_STRING_LIST,
	    .help = "statuses reported in turn: ok, warning, critical, unknown" },
	{ .name = NULL },
};

static const char *const flaky_status_names[] = {
	[TROIKA_STATUS_OK] = "ok",
	[TROIKA_STATUS_WARNING] = "warning",
	[TROIKA_STATUS_CRITICAL] = "critical",
	[TROIKA_STATUS_UNKNOWN] = "unknown",
};

static int
flaky_status_from_str(const char *s, enum troika_status *ret)
{
	for (size_t i = 0; i < sizeof(flaky_status_names) /
	    sizeof(flaky_status_names[0]); i++) {
		if (strcmp(s, flaky_status_names[i]) == 0) {
			*ret = (enum troika_status)i;
			return 0;
		}
	}
	return -EINVAL;
}

static void flaky_timer_cb(evutil_socket_t fd, short what, void *arg);

static void
flaky_instance_free(void *state)
{
	struct flaky_state *f = state;

	if (f == NULL)
		return;
	if (f->timer != NULL)
		event_free(f->timer);
	free(f->statuses);
	free(f);
}

static int
flaky_instance_new(const struct troika_host *host,
    struct troika_instance *inst, void **ret_state)
{
	struct flaky_state *f;
	size_t n;
	int r;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -ENOMEM;
	f->host = host;
	f->inst = inst;
	n = host->opt_list_len(inst, "statuses");
	f->nstatuses = n > 0 ? n : 1;
	if ((f->statuses = calloc(f->nstatuses, sizeof(*f->statuses))) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	f->timer = evtimer_new(host->event_base(inst), flaky_timer_cb, f);
	if (f->timer == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	/* calloc left statuses[0] as TROIKA_STATUS_OK: the default [ok]. */
	for (size_t i = 0; i < n; i++) {
		const char *s = host->opt_list_at(inst, "statuses", i);

		if (flaky_status_from_str(s, &f->statuses[i]) < 0) {
			host->log(inst, TROIKA_LOG_ERR,
			    "statuses[%zu]: \"%s\" is not one of ok, warning, "
			    "critical, unknown", i, s);
			r = -EINVAL;
			goto fail;
		}
	}
	*ret_state = f;
	return 0;

fail:
	flaky_instance_free(f);
	return r;
}

static void
flaky_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct flaky_state *f = arg;
	struct troika_task *task = f->task;
	struct troika_label label = { .name = "text", .value = FLAKY_TEXT };
	struct troika_sample sample = {
		.name = "troika_flaky_value",
		.help = "Runs so far; the label text needs escaping",
		.type = TROIKA_METRIC_GAUGE,
		.labels = &label,
		.nlabels = 1,
	};
	struct troika_result res = {
		.size = sizeof(res),
		.evidence = TROIKA_EVIDENCE_NONE,
		.message = FLAKY_TEXT,
		.samples = &sample,
		.nsamples = 1,
	};

	(void)fd;
	(void)what;
	res.status = f->statuses[f->runs % f->nstatuses];
	f->runs++;
	sample.value = (double)f->runs;
	f->task = NULL;
	f->host->check_done(task, &res);
}

static void
flaky_check(void *state, struct troika_task *task)
{
	struct flaky_state *f = state;
	struct timeval tv = { 0, 0 };
	struct troika_result res = {
		.size = sizeof(res),
		.status = TROIKA_STATUS_UNKNOWN,
		.message = "flaky: cannot add a timer",
	};

	f->task = task;
	if (evtimer_add(f->timer, &tv) == -1) {
		/* Only out of memory gets here; there is no way to defer. */
		f->task = NULL;
		f->host->check_done(task, &res);
	}
}

static void
flaky_cancel(void *state, struct troika_task *task)
{
	struct flaky_state *f = state;

	if (f->task != task)
		return;
	evtimer_del(f->timer);
	f->task = NULL;
}

static const struct troika_plugin flaky_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "flaky",
	.version = TROIKA_VERSION,
	.description = "test plugin: cycles statuses, needs escaping",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = flaky_options,
	.instance_new = flaky_instance_new,
	.instance_free = flaky_instance_free,
	.check = flaky_check,
	.cancel = flaky_cancel,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &flaky_plugin;
}
