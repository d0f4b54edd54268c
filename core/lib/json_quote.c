/*
 * JSON string escaping (see json_quote.h).
 */
#include "json_quote.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/buffer.h>

#include "utf8.h"

/* Whether cp goes out as it is. */
static int
json_plain(uint32_t cp)
{
	if (cp < 0x20 || cp == '"' || cp == '\\' || cp == 0x7f)
		return 0;
	if (cp >= 0x80 && cp <= 0x9f)
		return 0;
	/* Also what utf8_next() gives for a bad byte: escaped, see below. */
	return cp != 0xfffd;
}

/* The escape of cp, which is not plain, into esc (16 bytes). Its length. */
static size_t
json_escape(uint32_t cp, char *esc)
{
	switch (cp) {
	case '"':
		return (size_t)snprintf(esc, 16, "\\\"");
	case '\\':
		return (size_t)snprintf(esc, 16, "\\\\");
	case '\n':
		return (size_t)snprintf(esc, 16, "\\n");
	case '\r':
		return (size_t)snprintf(esc, 16, "\\r");
	case '\t':
		return (size_t)snprintf(esc, 16, "\\t");
	case '\b':
		return (size_t)snprintf(esc, 16, "\\b");
	case '\f':
		return (size_t)snprintf(esc, 16, "\\f");
	default:
		/* Other controls, and U+FFFD (a bad byte, or the real one). */
		return (size_t)snprintf(esc, 16, "\\u%04x", (unsigned)cp);
	}
}

int
json_quote(struct evbuffer *out, const char *s, size_t len)
{
	size_t i = 0;

	if (evbuffer_add(out, "\"", 1) != 0)
		return -ENOMEM;
	while (i < len) {
		size_t run = i, n = 0;
		uint32_t cp = 0;
		char esc[16];
		size_t esc_len;

		/* The longest run that goes out unescaped, in one add. */
		while (i < len) {
			n = utf8_next(s + i, len - i, &cp);
			if (!json_plain(cp))
				break;
			i += n;
		}
		if (i > run && evbuffer_add(out, s + run, i - run) != 0)
			return -ENOMEM;
		if (i == len)
			break;
		esc_len = json_escape(cp, esc);
		if (evbuffer_add(out, esc, esc_len) != 0)
			return -ENOMEM;
		i += n;
	}
	if (evbuffer_add(out, "\"", 1) != 0)
		return -ENOMEM;
	return 0;
}
