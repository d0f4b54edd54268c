/*
 * libFuzzer target: perfdata_parse on raw plugin output. Plugin output is
 * untrusted, so any byte string must parse (or fail with -ENOMEM) without
 * reading past len, leaking or crashing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "perfdata.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct perfdata pd;
	char metric[64];

	if (perfdata_parse((const char *)data, size, &pd) != 0)
		return 0;
	if (pd.text == NULL || pd.nitems > 1024 ||
	    (pd.nitems > 0 && pd.items == NULL))
		abort();
	for (size_t i = 0; i < pd.nitems; i++) {
		/* Labels are strings; every one maps to a metric fragment. */
		if (pd.items[i].label[0] == '\0')
			abort();
		perfdata_label_to_metric(pd.items[i].label, metric,
		    sizeof(metric));
		if (strlen(metric) >= sizeof(metric))
			abort();
	}
	perfdata_free(&pd);
	return 0;
}
