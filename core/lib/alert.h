/*
 * Alert sinks: events sent to webhooks (JSON over HTTP POST, libcurl),
 * Alertmanager (API v2) and exec hooks (argv without a shell, the event
 * as JSON on stdin and TROIKA_EVENT_* in the environment).
 *
 * Each hook has a bounded queue and delivers one payload at a time, in
 * order, on the event loop (the shared curl multi, the spawn helper):
 * nothing here ever blocks. A failed delivery is retried after backoff,
 * 2*backoff, 4*backoff ... up to retries times, then dropped; a full queue
 * drops the new payload. Both are counted.
 *
 * Alertmanager: an event of severity >= min_severity fires the alert
 * labelled alertname="troika_<kind>", severity and, when present, node,
 * check and cluster (the event's field "cluster"); annotations are
 * summary (the message), coordinator, seq and the event's fields.
 * Alerts of kinds that something clears (alert_am_resolver()) stay
 * active: they are re-sent every resend with endsAt = now + 4*resend
 * (so a dead coordinator's alerts expire on their own), until an INFO
 * event of the same (node, check, cluster) and of the same kind, or of
 * the kind that clears it, resolves them (sent once more with endsAt =
 * now). Every other kind is a notice: sent once, it expires after
 * 4*resend.
 */
#ifndef TROIKA_ALERT_H
#define TROIKA_ALERT_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct alert_hooks;
struct alert_am;

enum alert_kind {
	ALERT_WEBHOOK = 1,
	ALERT_ALERTMANAGER,
	ALERT_EXEC,
};

/* The values of troika.v1.Severity. */
enum alert_severity {
	ALERT_INFO = 1,
	ALERT_WARNING = 2,
	ALERT_CRITICAL = 3,
};

#define ALERT_DEFAULT_TIMEOUT_MS 5000
#define ALERT_DEFAULT_RESEND_MS 60000
#define ALERT_DEFAULT_QUEUE 256
#define ALERT_DEFAULT_RETRIES 3
#define ALERT_DEFAULT_BACKOFF_MS 1000
/* Active Alertmanager alerts kept per hook; more are sent as notices. */
#define ALERT_AM_MAX_ACTIVE 4096
/* Output of an exec hook kept for the log line of a failure. */
#define ALERT_EXEC_MAX_OUTPUT 4096

/* "webhook", "alertmanager", "exec". */
const char *alert_kind_str(enum alert_kind kind);
/* "info", "warning", "critical"; "unspecified" for anything else. */
const char *alert_severity_str(int severity);
/* The severity named s, or -1. */
int alert_severity_from_str(const char *s);

/* One hook as configured (coord_conf.c fills it; all strings owned). */
struct alert_hook_conf {
	char *name;         /* [a-z0-9_-]+, unique */
	enum alert_kind kind;
	char *url;          /* webhook, alertmanager: http(s)://... */
	char **argv;        /* exec: argv[0] and its arguments */
	size_t nargv;
	int min_severity;   /* default ALERT_WARNING */
	char **kinds;       /* only these event kinds; all when nkinds 0 */
	size_t nkinds;
	char **headers;     /* "Name: value", sent with every request */
	size_t nheaders;
	int64_t timeout_ms; /* one delivery: the request or the process */
	int64_t resend_ms;  /* alertmanager: re-send active alerts */
	int queue;          /* payloads waiting at most */
	int retries;        /* after the first attempt */
	int64_t backoff_ms; /* before the first retry; doubles */
};

void alert_hook_conf_default(struct alert_hook_conf *hc);
/* Frees what hc holds (not hc itself). */
void alert_hook_conf_clear(struct alert_hook_conf *hc);

struct alert_field {
	const char *name;
	const char *value;
};

/* An event as the coordinator emitted it; nothing is owned. */
struct alert_event {
	uint64_t seq;
	uint64_t time_ns;     /* wall clock, Unix epoch */
	const char *kind;
	int severity;         /* enum alert_severity */
	const char *node;     /* "" or NULL: none */
	const char *check;    /* "" or NULL: none */
	const char *message;
	const char *coordinator;
	const struct alert_field *fields;
	size_t nfields;
};

/* ---- JSON (alert_json.c) ---- */

/*
 * s as a JSON string, with its quotes, escaped by json_quote() (so always
 * valid JSON and valid UTF-8). NULL is written as "".
 */
void alert_json_string(struct evbuffer *out, const char *s);

/* RFC 3339 UTC with milliseconds: 2026-11-26T20:12:50.123Z. */
void alert_json_time(struct evbuffer *out, uint64_t unix_ns);

/*
 * The event as one JSON object: seq, time (RFC 3339), time_unix_nano,
 * kind, severity ("info"...), node, check, message, coordinator and
 * fields (an object of name: value).
 */
void alert_json_event(struct evbuffer *out, const struct alert_event *ev);

/* ---- Alertmanager's active alerts (alert_am.c) ---- */

/*
 * The kind whose active alerts an INFO event of this kind resolves,
 * besides its own kind (e.g. node_connected -> node_disconnected); NULL
 * when none. An alert of kind k stays active (and is re-sent) only if
 * some kind resolves it: alert_am_resolvable(k).
 */
const char *alert_am_resolver(const char *kind, size_t i);
int alert_am_resolvable(const char *kind);

struct alert_am *alert_am_new(int64_t resend_ms);
void alert_am_free(struct alert_am *am);

/*
 * Take an event at now_ns. fire: the hook's filters want it (severity
 * and kinds); an INFO event resolves whatever it clears whether or not.
 * Writes the JSON array to POST to /api/v2/alerts into out and returns
 * 1, or 0 when there is nothing to send (out untouched); -ENOMEM.
 */
int alert_am_event(struct alert_am *am, const struct alert_event *ev,
    int fire, uint64_t now_ns, struct evbuffer *out);

/* Every active alert with endsAt = now + 4*resend: 1, or 0 if none. */
int alert_am_resend(struct alert_am *am, uint64_t now_ns,
    struct evbuffer *out);

size_t alert_am_active(const struct alert_am *am);

/* ---- the hooks (alert.c) ---- */

/* Whether this coordinator sends now (asked at each event, each resend
 * and for the metrics; it must have no side effects). */
typedef int (*alert_sending_fn)(void *arg);

/*
 * Start the hooks (confs are copied). sending decides, per event and per
 * resend, whether anything goes out; Alertmanager's active alerts are
 * kept either way, so a coordinator that starts sending (a new leader)
 * re-sends what is active at its next resend. NULL with errno on failure.
 */
struct alert_hooks *alert_hooks_new(struct event_base *base,
    const struct alert_hook_conf *confs, size_t n, alert_sending_fn sending,
    void *arg);

/* Stop: transfers are aborted, processes killed; NULL is fine. */
void alert_hooks_free(struct alert_hooks *ah);

/* An event: queued on every hook that wants it (ev is copied). */
void alert_hooks_emit(struct alert_hooks *ah, const struct alert_event *ev);

/*
 * troika_alert_deliveries_total{hook,result}, troika_alert_dropped_total
 * {hook,reason}, troika_alert_queue_length{hook},
 * troika_alert_active{hook} (alertmanager), troika_alert_sending.
 */
void alert_hooks_write_metrics(const struct alert_hooks *ah,
    struct evbuffer *out);

/* For tests: payloads queued or in flight on all hooks. */
size_t alert_hooks_pending(const struct alert_hooks *ah);

#endif
