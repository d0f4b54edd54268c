/*
 * actor: a test plugin with actions, for the host's action path (ordering
 * against check runs, deadlines, fields, argument checks).
 *   echo [a [b [c]]]  OK, with fields arg0.. holding the arguments
 *   fail              CRITICAL "failed on purpose" (from the loop, like all)
 *   slow <ms>         OK after <ms> on a timer; cancel() stops it
 * Checks complete after option `delay` (default 0 ms) on a timer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include <troika/plugin.h>

static const struct troika_option actor_options[] = {
	{ .name = "delay", .type = TROIKA_OPT_DURATION, .default_value = "0ms",
	  .min = 0, .max = 60000, .help = "check run duration" },
	{ .name = NULL },
};

static const struct troika_action actor_actions[] = {
	{ .name = "echo", .usage = "[a [b [c]]]", .min_args = 0, .max_args = 3,
	  .help = "report the arguments as fields" },
	{ .name = "fail", .min_args = 0, .max_args = 0, .help = "fail" },
	{ .name = "slow", .usage = "<ms>", .min_args = 1, .max_args = 1,
	  .help = "finish after <ms>" },
	{ .name = NULL },
};

struct actor {
	const struct troika_host *host;
	struct troika_instance *inst;
	struct event *timer;
	struct troika_task *task;
	int is_action;
	int fail;
	char *argv[3];
	size_t argc;
};

static void
actor_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct actor *a = arg;
	struct troika_task *t = a->task;
	struct troika_label fields[3];
	char names[3][24];
	struct troika_result r = {
		.size = sizeof(r),
		.status = a->fail ? TROIKA_STATUS_CRITICAL : TROIKA_STATUS_OK,
		.message = a->fail ? "failed on purpose" :
		    a->is_action ? "action done" : "check done",
	};

	(void)fd;
	(void)what;
	for (size_t i = 0; i < a->argc; i++) {
		snprintf(names[i], sizeof(names[i]), "arg%zu", i);
		fields[i].name = names[i];
		fields[i].value = a->argv[i];
	}
	r.fields = fields;
	r.nfields = a->argc;
	a->task = NULL;
	a->host->check_done(t, &r);
	for (size_t i = 0; i < a->argc; i++)
		free(a->argv[i]);
	a->argc = 0;
}

static int
actor_new(const struct troika_host *host, struct troika_instance *inst,
    void **ret_state)
{
	struct actor *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return -1;
	a->host = host;
	a->inst = inst;
	a->timer = evtimer_new(host->event_base(inst), actor_timer_cb, a);
	if (a->timer == NULL) {
		free(a);
		return -1;
	}
	*ret_state = a;
	return 0;
}

static void
actor_cancel(void *state, struct troika_task *task)
{
	struct actor *a = state;

	(void)task;
	event_del(a->timer);
	a->task = NULL;
	for (size_t i = 0; i < a->argc; i++)
		free(a->argv[i]);
	a->argc = 0;
}

static void
actor_free(void *state)
{
	struct actor *a = state;

	actor_cancel(a, NULL);
	event_free(a->timer);
	free(a);
}

static void
actor_start(struct actor *a, struct troika_task *task, int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	a->task = task;
	evtimer_add(a->timer, &tv);
}

static void
actor_check(void *state, struct troika_task *task)
{
	struct actor *a = state;

	a->is_action = 0;
	a->fail = 0;
	actor_start(a, task, a->host->opt_duration_ms(a->inst, "delay"));
}

static void
actor_action(void *state, struct troika_task *task, const char *name,
    const char *const *argv, size_t argc)
{
	struct actor *a = state;

	a->is_action = 1;
	a->fail = strcmp(name, "fail") == 0;
	if (a->fail) {
		actor_start(a, task, 0);
		return;
	}
	if (strcmp(name, "slow") == 0) {
		actor_start(a, task, strtoll(argv[0], NULL, 10));
		return;
	}
	for (size_t i = 0; i < argc && i < 3; i++)
		a->argv[a->argc++] = strdup(argv[i]);
	actor_start(a, task, 0);
}

static const struct troika_plugin actor_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "actor",
	.version = TROIKA_VERSION,
	.description = "test plugin with actions",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = actor_options,
	.instance_new = actor_new,
	.instance_free = actor_free,
	.check = actor_check,
	.cancel = actor_cancel,
	.actions = actor_actions,
	.action = actor_action,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &actor_plugin;
}
