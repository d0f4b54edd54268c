/*
 * tiny: a descriptor whose size field (16) is smaller than any descriptor
 * the host can use: it covers abi_major, abi_minor and size only. It tests
 * that the host refuses a too-small struct instead of reading fields the
 * plugin says it does not have. The rest is filled in and valid, so only
 * the size check can reject it.
 */
#include <troika/plugin.h>

static const struct troika_option tiny_options[] = {
	{ .name = NULL },
};

static int
tiny_instance_new(const struct troika_host *host, struct troika_instance *inst,
    void **ret_state)
{
	(void)host;
	(void)inst;
	*ret_state = NULL;
	return 0;
}

static void
tiny_instance_free(void *state)
{
	(void)state;
}

static void
tiny_check(void *state, struct troika_task *task)
{
	(void)state;
	(void)task;
}

static const struct troika_plugin tiny_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = 16,
	.name = "tiny",
	.version = TROIKA_VERSION,
	.description = "test plugin: descriptor size too small",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = tiny_options,
	.instance_new = tiny_instance_new,
	.instance_free = tiny_instance_free,
	.check = tiny_check,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &tiny_plugin;
}
