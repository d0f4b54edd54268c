/*
 * The JSON of alerts, written by hand into evbuffers: core/lib only ever
 * writes JSON (never parses it) and needs a handful of shapes, so a few
 * dozen lines with strict string escaping beat linking jansson into every
 * daemon. alert_json_string() is the one place strings are escaped.
 */
#include "alert.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

/*
 * Length of the valid UTF-8 sequence at s (1 to 4), or 0 when it is not
 * one: a stray continuation byte, a lead byte without its continuations,
 * an overlong form, a surrogate or a code point beyond U+10FFFF.
 */
static size_t
alert_utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp, min;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		/* The NUL terminator fails this test: no read beyond it. */
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void
alert_json_string(struct evbuffer *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");

	evbuffer_add(out, "\"", 1);
	while (*p != '\0') {
		const unsigned char *run = p;
		size_t n;

		/* Copy the longest run that needs no escaping at once. */
		while (*p >= 0x20 && *p != '"' && *p != '\\' && *p != 0x7f &&
		    (n = alert_utf8_len(p)) != 0)
			p += n;
		if (p > run)
			evbuffer_add(out, run, (size_t)(p - run));
		if (*p == '\0')
			break;
		switch (*p) {
		case '"':
			evbuffer_add(out, "\\\"", 2);
			break;
		case '\\':
			evbuffer_add(out, "\\\\", 2);
			break;
		case '\n':
			evbuffer_add(out, "\\n", 2);
			break;
		case '\r':
			evbuffer_add(out, "\\r", 2);
			break;
		case '\t':
			evbuffer_add(out, "\\t", 2);
			break;
		case '\b':
			evbuffer_add(out, "\\b", 2);
			break;
		case '\f':
			evbuffer_add(out, "\\f", 2);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				evbuffer_add_printf(out, "\\u%04x", *p);
			else /* not UTF-8: U+FFFD */
				evbuffer_add(out, "\xef\xbf\xbd", 3);
			break;
		}
		p++;
	}
	evbuffer_add(out, "\"", 1);
}

void
alert_json_time(struct evbuffer *out, uint64_t unix_ns)
{
	time_t sec = (time_t)(unix_ns / 1000000000u);
	unsigned ms = (unsigned)(unix_ns % 1000000000u / 1000000u);
	struct tm tm;
	char buf[64];

	gmtime_r(&sec, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	evbuffer_add_printf(out, "\"%s.%03uZ\"", buf, ms);
}

void
alert_json_event(struct evbuffer *out, const struct alert_event *ev)
{
	evbuffer_add_printf(out, "{\"seq\":%llu,\"time\":",
	    (unsigned long long)ev->seq);
	alert_json_time(out, ev->time_ns);
	/* A string: JSON numbers beyond 2^53 lose precision in most readers. */
	evbuffer_add_printf(out, ",\"time_unix_nano\":\"%llu\",\"kind\":",
	    (unsigned long long)ev->time_ns);
	alert_json_string(out, ev->kind);
	evbuffer_add_printf(out, ",\"severity\":\"%s\",\"node\":",
	    alert_severity_str(ev->severity));
	alert_json_string(out, ev->node);
	evbuffer_add(out, ",\"check\":", 9);
	alert_json_string(out, ev->check);
	evbuffer_add(out, ",\"message\":", 11);
	alert_json_string(out, ev->message);
	evbuffer_add(out, ",\"coordinator\":", 15);
	alert_json_string(out, ev->coordinator);
	evbuffer_add(out, ",\"fields\":{", 11);
	for (size_t i = 0; i < ev->nfields; i++) {
		if (i > 0)
			evbuffer_add(out, ",", 1);
		alert_json_string(out, ev->fields[i].name);
		evbuffer_add(out, ":", 1);
		alert_json_string(out, ev->fields[i].value);
	}
	evbuffer_add(out, "}}", 2);
}

const char *
alert_severity_str(int severity)
{
	switch (severity) {
	case ALERT_INFO:
		return "info";
	case ALERT_WARNING:
		return "warning";
	case ALERT_CRITICAL:
		return "critical";
	default:
		return "unspecified";
	}
}

int
alert_severity_from_str(const char *s)
{
	for (int sev = ALERT_INFO; sev <= ALERT_CRITICAL; sev++)
		if (strcmp(s, alert_severity_str(sev)) == 0)
			return sev;
	return -1;
}

const char *
alert_kind_str(enum alert_kind kind)
{
	switch (kind) {
	case ALERT_WEBHOOK:
		return "webhook";
	case ALERT_ALERTMANAGER:
		return "alertmanager";
	case ALERT_EXEC:
		return "exec";
	}
	return "?";
}
