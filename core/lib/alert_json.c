/*
 * The JSON of alerts, written by hand into evbuffers: core/lib only ever
 * writes JSON (never parses it) and needs a handful of shapes, so a few
 * dozen lines with strict string escaping beat linking jansson into every
 * daemon. Strings are escaped by json_quote(), as troikactl's are.
 */
#include "alert.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "json_quote.h"

void
alert_json_string(struct evbuffer *out, const char *s)
{
	if (s == NULL)
		s = "";
	json_quote(out, s, strlen(s));
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
