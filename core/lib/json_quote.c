/*
 * JSON string escaping (see json_quote.h).
 */
#include "json_quote.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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

/* JSON's two-character escape of cp; NULL: it has none (\u00XX then). */
static const char *
json_short_escape(uint32_t cp)
{
	switch (cp) {
	case '"':
		return "\\\"";
	case '\\':
		return "\\\\";
	case '\n':
		return "\\n";
	case '\r':
		return "\\r";
	case '\t':
		return "\\t";
	case '\b':
		return "\\b";
	case '\f':
		return "\\f";
	default:
		return NULL;
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
		const char *esc;
		char uesc[16];

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
		/* Other controls, and U+FFFD (a bad byte, or the real one). */
		if ((esc = json_short_escape(cp)) == NULL) {
			snprintf(uesc, sizeof(uesc), "\\u%04x", (unsigned)cp);
			esc = uesc;
		}
		if (evbuffer_add(out, esc, strlen(esc)) != 0)
			return -ENOMEM;
		i += n;
	}
	if (evbuffer_add(out, "\"", 1) != 0)
		return -ENOMEM;
	return 0;
}
