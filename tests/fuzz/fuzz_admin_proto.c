/*
 * libFuzzer target: the admin socket's request splitter (any local client
 * can send anything) and the value escaping round trip.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "admin_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1), *argv[19];
	struct evbuffer *b;

	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';

	/* Values survive escaping and unescaping unchanged. */
	if ((b = evbuffer_new()) != NULL) {
		admin_put_value(b, line);
		size_t n = evbuffer_get_length(b);
		char *esc = malloc(n + 1);
		if (esc != NULL) {
			evbuffer_remove(b, esc, n);
			esc[n] = '\0';
			if (strchr(esc, '\n') != NULL)
				abort();
			admin_unescape_value(esc);
			if (strcmp(esc, line) != 0)
				abort();
			free(esc);
		}
		evbuffer_free(b);
	}
	(void)admin_split(line, argv, 19);
	free(line);
	return 0;
}
