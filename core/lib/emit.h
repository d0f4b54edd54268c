/*
 * Every state change goes through event_emit(): one log line now, and every
 * registered sink (the coordinator streams and alert hooks, later). Keeping
 * one funnel means a change is never logged but not reported, or the other
 * way round.
 */
#ifndef TROIKA_EMIT_H
#define TROIKA_EMIT_H

enum event_kind {
	EVENT_AGENT_STARTED = 1,
	EVENT_AGENT_STOPPING,
	EVENT_CONFIG_RELOADED,
	EVENT_CONFIG_REJECTED,
	EVENT_PLUGIN_LOADED,
	EVENT_PLUGIN_REFUSED,
	EVENT_PLUGIN_UNLOADED,
	EVENT_CHECK_ADDED,
	EVENT_CHECK_REMOVED,
	EVENT_CHECK_STATUS,  /* a check's status changed */
	EVENT_CHECK_TIMEOUT, /* a run passed its deadline */
	EVENT_ACTION_STARTED,
	EVENT_ACTION_DONE,
	EVENT_PROCESS_EXITED, /* a check's watched main process exited */
};

/* Fields that do not apply are NULL, or -1 for statuses. */
struct troika_event {
	enum event_kind kind;
	const char *check;
	const char *plugin;
	int old_status;
	int new_status;
	const char *message;
};

typedef void (*event_sink_fn)(const struct troika_event *ev, void *arg);

/* Loop thread only. */
void event_emit(const struct troika_event *ev);

/* Returns 0 or -ENOMEM. Sinks run in registration order. */
int event_sink_add(event_sink_fn fn, void *arg);
void event_sink_remove(event_sink_fn fn, void *arg);

const char *event_kind_str(enum event_kind kind);

#endif
