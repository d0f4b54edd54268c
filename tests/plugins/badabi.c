/*
 * badabi: exports the right entry symbol but returns a descriptor whose
 * abi_major is 99. It tests that the host refuses a major it does not
 * speak before it calls anything in the descriptor (every function here
 * works, so a host that forgot the check would happily load it).
 */
#include <stdlib.h>

#include <troika/plugin.h>

static const struct troika_option badabi_options[] = {
	{ .name = NULL },
};

static int
badabi_instance_new(const struct troika_host *host,
    struct troika_instance *inst, void **ret_state)
{
	(void)host;
	(void)inst;
	*ret_state = NULL;
	return 0;
}

static void
badabi_instance_free(void *state)
{
	(void)state;
}

static void
badabi_check(void *state, struct troika_task *task)
{
	(void)state;
	(void)task;
}

static const struct troika_plugin badabi_plugin = {
	.abi_major = 99,
	.abi_minor = 0,
	.size = sizeof(struct troika_plugin),
	.name = "badabi",
	.version = TROIKA_VERSION,
	.description = "test plugin: wrong ABI major",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = badabi_options,
	.instance_new = badabi_instance_new,
	.instance_free = badabi_instance_free,
	.check = badabi_check,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &badabi_plugin;
}
