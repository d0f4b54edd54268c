#include "admin_proto.h"

#include <string.h>

#include <event2/buffer.h>

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode one token in place; returns 0 or -1. */
static int
admin_decode(char *s)
{
	char *out = s;

	for (; *s != '\0'; s++) {
		if (*s != '%') {
			*out++ = *s;
			continue;
		}
		int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			return -1;
		*out++ = (char)(hi * 16 + lo);
		s += 2;
	}
	*out = '\0';
	return 0;
}

int
admin_split(char *line, char **argv, int max)
{
	int n = 0;
	char *p = line;

	if (*p == '\0')
		return -1;
	for (;;) {
		char *sp = strchr(p, ' ');

		if (sp != NULL)
			*sp = '\0';
		if (*p == '\0' || n == max || admin_decode(p) < 0)
			return -1;
		argv[n++] = p;
		if (sp == NULL)
			return n;
		p = sp + 1;
	}
}

void
admin_put_token(struct evbuffer *out, const char *token)
{
	static const char safe[] = "._:/@+=,-";

	for (const unsigned char *p = (const unsigned char *)token; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr(safe, *p) != NULL)
			evbuffer_add(out, p, 1);
		else
			evbuffer_add_printf(out, "%%%02X", *p);
	}
}

void
admin_put_value(struct evbuffer *out, const char *value)
{
	for (const char *p = value; *p; p++) {
		switch (*p) {
		case '\\':
			evbuffer_add(out, "\\\\", 2);
			break;
		case '\n':
			evbuffer_add(out, "\\n", 2);
			break;
		case '\r':
			evbuffer_add(out, "\\r", 2);
			break;
		default:
			evbuffer_add(out, p, 1);
		}
	}
}

void
admin_unescape_value(char *value)
{
	char *out = value;

	for (char *p = value; *p; p++) {
		if (*p == '\\' && (p[1] == '\\' || p[1] == 'n' || p[1] == 'r')) {
			p++;
			*out++ = *p == 'n' ? '\n' : *p == 'r' ? '\r' : '\\';
		} else {
			*out++ = *p;
		}
	}
	*out = '\0';
}
