#include "emit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "log.h"
#include "status.h"

struct event_sink {
	event_sink_fn fn;
	void *arg;
};

static struct event_sink *sinks;
static size_t nsinks;

static const char *const event_kind_names[] = {
	[EVENT_AGENT_STARTED] = "agent_started",
	[EVENT_AGENT_STOPPING] = "agent_stopping",
	[EVENT_CONFIG_RELOADED] = "config_reloaded",
	[EVENT_CONFIG_REJECTED] = "config_rejected",
	[EVENT_PLUGIN_LOADED] = "plugin_loaded",
	[EVENT_PLUGIN_REFUSED] = "plugin_refused",
	[EVENT_PLUGIN_UNLOADED] = "plugin_unloaded",
	[EVENT_CHECK_ADDED] = "check_added",
	[EVENT_CHECK_REMOVED] = "check_removed",
	[EVENT_CHECK_STATUS] = "check_status",
	[EVENT_CHECK_TIMEOUT] = "check_timeout",
	[EVENT_ACTION_STARTED] = "action_started",
	[EVENT_ACTION_DONE] = "action_done",
	[EVENT_PROCESS_EXITED] = "process_exited",
};

const char *
event_kind_str(enum event_kind kind)
{
	if ((size_t)kind >= sizeof(event_kind_names) / sizeof(event_kind_names[0]) ||
	    event_kind_names[kind] == NULL)
		return "invalid";
	return event_kind_names[kind];
}

/* Problems are worth a warning; everything else is information. */
static int
event_level(const struct troika_event *ev)
{
	switch (ev->kind) {
	case EVENT_PLUGIN_REFUSED:
	case EVENT_CONFIG_REJECTED:
	case EVENT_CHECK_TIMEOUT:
	case EVENT_ACTION_STARTED:
	case EVENT_ACTION_DONE:
	case EVENT_PROCESS_EXITED:
		return LOG_WARNING;
	case EVENT_CHECK_STATUS:
		return ev->new_status == TROIKA_STATUS_OK ? LOG_INFO : LOG_WARNING;
	default:
		return LOG_INFO;
	}
}

/* Quote a message for key="value" logs: \ and " escaped, controls as ?. */
static void
event_quote(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; *in != '\0' && o + 3 < len; in++) {
		unsigned char c = (unsigned char)*in;
		if (c == '"' || c == '\\')
			out[o++] = '\\';
		out[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	out[o] = '\0';
}

void
event_emit(const struct troika_event *ev)
{
	char msg[2048];

	if (ev->message != NULL)
		event_quote(ev->message, msg, sizeof(msg));
	/* key=value, so a log search or a parser finds fields reliably. */
	log_msg(event_level(ev), "event=%s%s%s%s%s%s%s%s%s%s%s%s",
	    event_kind_str(ev->kind),
	    ev->check ? " check=" : "", ev->check ? ev->check : "",
	    ev->plugin ? " plugin=" : "", ev->plugin ? ev->plugin : "",
	    ev->old_status >= 0 ? " from=" : "",
	    ev->old_status >= 0 ? troika_status_str(ev->old_status) : "",
	    ev->new_status >= 0 ? " to=" : "",
	    ev->new_status >= 0 ? troika_status_str(ev->new_status) : "",
	    ev->message ? " msg=\"" : "", ev->message ? msg : "",
	    ev->message ? "\"" : "");
	for (size_t i = 0; i < nsinks; i++)
		sinks[i].fn(ev, sinks[i].arg);
}

int
event_sink_add(event_sink_fn fn, void *arg)
{
	struct event_sink *n;

	n = realloc(sinks, (nsinks + 1) * sizeof(*sinks));
	if (n == NULL)
		return -ENOMEM;
	sinks = n;
	sinks[nsinks].fn = fn;
	sinks[nsinks].arg = arg;
	nsinks++;
	return 0;
}

void
event_sink_remove(event_sink_fn fn, void *arg)
{
	for (size_t i = 0; i < nsinks; i++) {
		if (sinks[i].fn == fn && sinks[i].arg == arg) {
			memmove(&sinks[i], &sinks[i + 1],
			    (nsinks - i - 1) * sizeof(*sinks));
			nsinks--;
			break;
		}
	}
	if (nsinks == 0) {
		free(sinks);
		sinks = NULL;
	}
}
