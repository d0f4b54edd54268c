/*
 * slow: an async plugin that completes OK after the option `delay`, from a
 * libevent timer. Its cancel callback frees the timer and counts the
 * cancellations. It tests the host's deadline and cancel path (a delay
 * longer than the check timeout), shutdown with a task out, and that a
 * cancelled task is never reported. The number of cancels so far is
 * reported as the sample troika_slow_cancels_total and in the message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include <troika/plugin.h>

struct slow_state {
	const struct troika_host *host;
	struct troika_instance *inst;
	int64_t delay_ms;
	struct troika_task *task; /* running task or NULL */
	struct event *timer;      /* exists only while a task runs */
	unsigned long cancels;
};

static const struct troika_option slow_options[] = {
	{ .name = "delay", .type = TROIKA_OPT_DURATION, .default_value = "100ms",
	    .min = 0, .max = 24LL * 3600 * 1000,
	    .help = "time until the check completes OK" },
	{ .name = NULL },
};

static int
slow_instance_new(const struct troika_host *host, struct troika_instance *inst,
    void **ret_state)
{
	struct slow_state *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->host = host;
	s->inst = inst;
	s->delay_ms = host->opt_duration_ms(inst, "delay");
	*ret_state = s;
	return 0;
}

static void
slow_instance_free(void *state)
{
	struct slow_state *s = state;

	if (s == NULL)
		return;
	/* The host cancels a running task first; this is only a safety net. */
	if (s->timer != NULL)
		event_free(s->timer);
	free(s);
}

static void
slow_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct slow_state *s = arg;
	struct troika_task *task = s->task;
	struct troika_sample sample = {
		.name = "troika_slow_cancels_total",
		.help = "Tasks of this instance cancelled so far",
		.type = TROIKA_METRIC_COUNTER,
		.value = (double)s->cancels,
	};
	struct troika_result res = {
		.size = sizeof(res),
		.status = TROIKA_STATUS_OK,
		.evidence = TROIKA_EVIDENCE_NONE,
		.samples = &sample,
		.nsamples = 1,
	};
	char msg[128];

	(void)fd;
	(void)what;
	snprintf(msg, sizeof(msg), "done after %lld ms (%lu cancelled before)",
	    (long long)s->delay_ms, s->cancels);
	res.message = msg;
	event_free(s->timer);
	s->timer = NULL;
	s->task = NULL;
	s->host->check_done(task, &res);
}

static void
slow_check(void *state, struct troika_task *task)
{
	struct slow_state *s = state;
	struct timeval tv = {
		.tv_sec = s->delay_ms / 1000,
		.tv_usec = (s->delay_ms % 1000) * 1000,
	};
	struct troika_result res = {
		.size = sizeof(res),
		.status = TROIKA_STATUS_UNKNOWN,
		.message = "slow: cannot create a timer",
	};

	s->task = task;
	s->timer = evtimer_new(s->host->event_base(s->inst), slow_timer_cb, s);
	if (s->timer == NULL || evtimer_add(s->timer, &tv) == -1) {
		/* Not worth a deferral in a test plugin: this never happens. */
		if (s->timer != NULL)
			event_free(s->timer);
		s->timer = NULL;
		s->task = NULL;
		s->host->check_done(task, &res);
	}
}

static void
slow_cancel(void *state, struct troika_task *task)
{
	struct slow_state *s = state;

	if (s->task != task)
		return;
	if (s->timer != NULL)
		event_free(s->timer);
	s->timer = NULL;
	s->task = NULL;
	s->cancels++;
	s->host->log(s->inst, TROIKA_LOG_DEBUG, "cancelled (%lu so far)",
	    s->cancels);
}

static const struct troika_plugin slow_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "slow",
	.version = TROIKA_VERSION,
	.description = "test plugin: completes OK after a delay, cancellable",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = slow_options,
	.instance_new = slow_instance_new,
	.instance_free = slow_instance_free,
	.check = slow_check,
	.cancel = slow_cancel,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &slow_plugin;
}
