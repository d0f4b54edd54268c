/*
 * libFuzzer target: the redis plugin's INFO parser, which reads whatever a
 * server (or something pretending to be one) sends back.
 */
#include <stddef.h>
#include <stdint.h>

#include "redis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct redis_info info;
	int64_t v;
	double d;

	if (redis_info_parse(&info, (const char *)data, size) == 0) {
		/* Lookups walk what the parser built. */
		(void)redis_info_get(&info, "role");
		(void)redis_info_int(&info, "master_repl_offset", &v);
		(void)redis_info_double(&info, "mem_fragmentation_ratio", &d);
	}
	redis_info_clear(&info);
	return 0;
}
