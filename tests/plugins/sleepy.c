/*
 * sleepy: a blocking plugin that sleeps for the option `sleep` with
 * nanosleep() and then reports OK from the worker thread. It tests the
 * worker pool: checks that block run off the loop thread, the pool bound,
 * a result handed back from another thread, and a deadline that passes
 * while the worker is still busy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <troika/plugin.h>

struct sleepy_state {
	const struct troika_host *host;
	struct troika_instance *inst;
	int64_t sleep_ms;
};

static const struct troika_option sleepy_options[] = {
	{ .name = "sleep", .type = TROIKA_OPT_DURATION, .default_value = "100ms",
	    .min = 0, .max = 24LL * 3600 * 1000,
	    .help = "time the check blocks its worker thread" },
	{ .name = NULL },
};

static int
sleepy_instance_new(const struct troika_host *host,
    struct troika_instance *inst, void **ret_state)
{
	struct sleepy_state *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->host = host;
	s->inst = inst;
	s->sleep_ms = host->opt_duration_ms(inst, "sleep");
	*ret_state = s;
	return 0;
}

static void
sleepy_instance_free(void *state)
{
	free(state);
}

static void
sleepy_check(void *state, struct troika_task *task)
{
	const struct sleepy_state *s = state;
	struct timespec ts = {
		.tv_sec = s->sleep_ms / 1000,
		.tv_nsec = (s->sleep_ms % 1000) * 1000000,
	};
	struct troika_result res = {
		.size = sizeof(res),
		.status = TROIKA_STATUS_OK,
		.evidence = TROIKA_EVIDENCE_NONE,
	};
	char msg[64];

	/* A signal must not shorten the sleep: resume with what is left. */
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
	snprintf(msg, sizeof(msg), "slept %lld ms", (long long)s->sleep_ms);
	res.message = msg;
	s->host->check_done(task, &res);
}

static const struct troika_plugin sleepy_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "sleepy",
	.version = TROIKA_VERSION,
	.description = "test plugin: blocks a worker thread, then OK",
	.exec_model = TROIKA_EXEC_BLOCKING,
	.options = sleepy_options,
	.instance_new = sleepy_instance_new,
	.instance_free = sleepy_instance_free,
	.check = sleepy_check,
	.cancel = NULL,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &sleepy_plugin;
}
