/*
 * noentry: a shared object without the TROIKA_PLUGIN_ENTRY symbol. It
 * exports only troika_plugin_entry_v2, as a plugin built for another ABI
 * major would, to test that the host does not find it (the major is part
 * of the symbol name) and reports the file as "not a troika plugin"
 * instead of crashing or loading it.
 */
#include <stddef.h>

__attribute__((visibility("default"))) const void *
troika_plugin_entry_v2(void);

const void *
troika_plugin_entry_v2(void)
{
	return NULL;
}
