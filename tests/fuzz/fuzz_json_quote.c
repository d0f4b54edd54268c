/*
 * libFuzzer target: json_quote() on any byte string (check messages and
 * other foreign text). The output must be one JSON string that a strict
 * reader accepts: quoted, no raw control, DEL or C1 character, only valid
 * UTF-8, only the escapes JSON defines. Read back, it must give the
 * input's code points, each bad byte as U+FFFD (utf8_next()'s reading).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "json_quote.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* json_quote writes lower case */
}

/*
 * The next code point of the JSON string body s[*i..len), escapes
 * decoded; aborts on anything a strict reader refuses.
 */
static uint32_t
json_next(const char *s, size_t len, size_t *i)
{
	uint32_t cp = 0;
	size_t n;

	if (s[*i] != '\\') {
		n = utf8_next(s + *i, len - *i, &cp);
		if (cp == 0xfffd || cp < 0x20 || cp == '"' || cp == 0x7f ||
		    (cp >= 0x80 && cp <= 0x9f))
			abort(); /* bad UTF-8, or should have been escaped */
		*i += n;
		return cp;
	}
	if (*i + 1 >= len)
		abort();
	switch (s[*i + 1]) {
	case '"': cp = '"'; break;
	case '\\': cp = '\\'; break;
	case 'n': cp = '\n'; break;
	case 'r': cp = '\r'; break;
	case 't': cp = '\t'; break;
	case 'b': cp = '\b'; break;
	case 'f': cp = '\f'; break;
	case 'u':
		if (*i + 6 > len)
			abort();
		for (size_t k = 2; k < 6; k++) {
			int v = hex_value(s[*i + k]);

			if (v < 0)
				abort();
			cp = cp << 4 | (uint32_t)v;
		}
		*i += 6;
		return cp;
	default:
		abort();
	}
	*i += 2;
	return cp;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct evbuffer *b = evbuffer_new();
	size_t len, i = 1, j = 0;
	const char *out;

	if (b == NULL)
		return 0;
	if (json_quote(b, in, size) != 0) {
		evbuffer_free(b);
		return 0;
	}
	len = evbuffer_get_length(b);
	out = (const char *)evbuffer_pullup(b, -1);
	if (len < 2 || out[0] != '"' || out[len - 1] != '"')
		abort();
	while (i < len - 1) {
		uint32_t got = json_next(out, len - 1, &i), want;

		if (j >= size)
			abort(); /* more out than in */
		j += utf8_next(in + j, size - j, &want);
		if (got != want)
			abort();
	}
	if (j != size)
		abort(); /* input left over */
	evbuffer_free(b);
	return 0;
}
