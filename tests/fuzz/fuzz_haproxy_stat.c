/*
 * libFuzzer target: the haproxy plugin's parser of `show stat` and `show
 * servers state`, which reads whatever the stats socket (or something
 * pretending to be it) sends back.
 */
#include <stddef.h>
#include <stdint.h>

#include "haproxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct haproxy_backend be = { 0 };
	char err[256];

	if (haproxy_stat_parse(&be, (const char *)data, size, "be", err,
	    sizeof(err)) == 0) {
		/* What the plugin does with a parsed backend. */
		for (size_t i = 0; i < be.nsrv; i++) {
			(void)haproxy_server_state(&be.srv[i]);
			(void)haproxy_server_up(&be.srv[i]);
			(void)haproxy_server_disabled(&be.srv[i]);
			(void)haproxy_backend_server(&be, be.srv[i].name);
		}
	}
	haproxy_backend_clear(&be);
	return 0;
}
