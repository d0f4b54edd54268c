/*
 * hang: an async plugin whose check() never completes and which has no
 * cancel callback. It tests that the host times the task out on its own,
 * keeps the task (the plugin may still hold it) and never runs a second
 * check of the instance while the first one is out.
 */
#include <errno.h>
#include <stdlib.h>

#include <troika/plugin.h>

struct hang_state {
	const struct troika_host *host;
	struct troika_instance *inst;
	unsigned long checks;
};

static const struct troika_option hang_options[] = {
	{ .name = NULL },
};

static int
hang_instance_new(const struct troika_host *host, struct troika_instance *inst,
    void **ret_state)
{
	struct hang_state *h;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return -ENOMEM;
	h->host = host;
	h->inst = inst;
	*ret_state = h;
	return 0;
}

static void
hang_instance_free(void *state)
{
	free(state);
}

static void
hang_check(void *state, struct troika_task *task)
{
	struct hang_state *h = state;

	/* On purpose: the task is dropped and check_done() never comes. */
	(void)task;
	h->checks++;
	h->host->log(h->inst, TROIKA_LOG_DEBUG, "check %lu started, never ends",
	    h->checks);
}

static const struct troika_plugin hang_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "hang",
	.version = TROIKA_VERSION,
	.description = "test plugin: never completes, has no cancel",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = hang_options,
	.instance_new = hang_instance_new,
	.instance_free = hang_instance_free,
	.check = hang_check,
	.cancel = NULL,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &hang_plugin;
}
