/*
 * Alertmanager's side of the alert sinks (see alert.h): which events fire
 * an alert, which resolve one, the active set, and the JSON body of
 * POST /api/v2/alerts. No I/O here, so the unit tests drive it alone.
 */
#include "alert.h"

#include <sys/queue.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

/*
 * {resolver, resolved}: an event of the first kind (any severity) ends
 * the active alerts of the second kind with the same node, check and
 * cluster. Besides these, an INFO event ends the alerts of its own kind
 * when that kind is listed in alert_am_self.
 */
static const char *const alert_am_pairs[][2] = {
	{"check_status", "verdict"},
	{"check_status", "recovery_held"},
	{"check_status", "recovery_escalated"},
	{"node_connected", "node_disconnected"},
	{"node_returned", "node_lost"},
	{"node_returned", "verdict"},
	{"node_returned", "recovery_held"},
	{"node_returned", "recovery_escalated"},
	{"quorum_regained", "quorum_lost"},
	{"tilt_ended", "tilt"},
	{"action_done", "action_started"},
	{"action_locked", "action_started"},
	{"action_acknowledged", "action_locked"},
};

/* Kinds whose INFO events say "it is fine again". */
static const char *const alert_am_self[] = {"check_status", "opinion"};

#define ALERT_AM_NPAIRS (sizeof(alert_am_pairs) / sizeof(alert_am_pairs[0]))
#define ALERT_AM_NSELF (sizeof(alert_am_self) / sizeof(alert_am_self[0]))

struct alert_am_alert {
	TAILQ_ENTRY(alert_am_alert) entry;
	char *kind;
	char *node;
	char *check;
	char *cluster;
	char *labels;      /* JSON object */
	char *annotations; /* JSON object */
	uint64_t starts_ns;
};

TAILQ_HEAD(alert_am_list, alert_am_alert);

struct alert_am {
	int64_t resend_ms;
	struct alert_am_list active;
	size_t nactive;
};

const char *
alert_am_resolver(const char *kind, size_t i)
{
	size_t n = 0;

	for (size_t k = 0; k < ALERT_AM_NPAIRS; k++)
		if (strcmp(alert_am_pairs[k][0], kind) == 0 && n++ == i)
			return alert_am_pairs[k][1];
	return NULL;
}

static int
alert_am_self_resolving(const char *kind)
{
	for (size_t k = 0; k < ALERT_AM_NSELF; k++)
		if (strcmp(alert_am_self[k], kind) == 0)
			return 1;
	return 0;
}

int
alert_am_resolvable(const char *kind)
{
	if (alert_am_self_resolving(kind))
		return 1;
	for (size_t k = 0; k < ALERT_AM_NPAIRS; k++)
		if (strcmp(alert_am_pairs[k][1], kind) == 0)
			return 1;
	return 0;
}

struct alert_am *
alert_am_new(int64_t resend_ms)
{
	struct alert_am *am = calloc(1, sizeof(*am));

	if (am == NULL)
		return NULL;
	am->resend_ms = resend_ms > 0 ? resend_ms : ALERT_DEFAULT_RESEND_MS;
	TAILQ_INIT(&am->active);
	return am;
}

static void
alert_am_alert_free(struct alert_am_alert *a)
{
	if (a == NULL)
		return;
	free(a->kind);
	free(a->node);
	free(a->check);
	free(a->cluster);
	free(a->labels);
	free(a->annotations);
	free(a);
}

void
alert_am_free(struct alert_am *am)
{
	struct alert_am_alert *a;

	if (am == NULL)
		return;
	while ((a = TAILQ_FIRST(&am->active)) != NULL) {
		TAILQ_REMOVE(&am->active, a, entry);
		alert_am_alert_free(a);
	}
	free(am);
}

size_t
alert_am_active(const struct alert_am *am)
{
	return am->nactive;
}

static const char *
alert_am_str(const char *s)
{
	return s != NULL ? s : "";
}

static const char *
alert_am_cluster(const struct alert_event *ev)
{
	for (size_t i = 0; i < ev->nfields; i++)
		if (strcmp(ev->fields[i].name, "cluster") == 0)
			return alert_am_str(ev->fields[i].value);
	return "";
}

static struct alert_am_alert *
alert_am_find(struct alert_am *am, const char *kind, const char *node,
    const char *check, const char *cluster)
{
	struct alert_am_alert *a;

	TAILQ_FOREACH(a, &am->active, entry)
		if (strcmp(a->kind, kind) == 0 && strcmp(a->node, node) == 0 &&
		    strcmp(a->check, check) == 0 &&
		    strcmp(a->cluster, cluster) == 0)
			return a;
	return NULL;
}

/* The buffer's text as a new string; NULL when out of memory. */
static char *
alert_am_take(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	if (s == NULL)
		return NULL;
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

static void
alert_am_label(struct evbuffer *b, const char *name, const char *value)
{
	/* An empty label value is no label in Alertmanager: leave it out. */
	if (value == NULL || *value == '\0')
		return;
	evbuffer_add_printf(b, ",\"%s\":", name);
	alert_json_string(b, value);
}

/*
 * Annotation names are label names to Alertmanager ([a-zA-Z_][a-zA-Z0-9_]*):
 * a field name is written with every other byte as '_'.
 */
static void
alert_am_annotation_name(struct evbuffer *b, const char *name)
{
	evbuffer_add(b, "\"", 1);
	if (*name == '\0' || (*name >= '0' && *name <= '9'))
		evbuffer_add(b, "_", 1);
	for (const char *p = name; *p != '\0'; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_'))
			c = '_';
		evbuffer_add(b, &c, 1);
	}
	evbuffer_add(b, "\":", 2);
}

/* Labels and annotations of the alert ev fires, as two strings. */
static int
alert_am_render(const struct alert_event *ev, char **ret_labels,
    char **ret_annotations)
{
	struct evbuffer *b;
	int r = -ENOMEM;

	*ret_labels = *ret_annotations = NULL;
	if ((b = evbuffer_new()) == NULL)
		return -ENOMEM;
	/* Kinds are [a-z_]: "troika_" + kind needs no escaping beyond. */
	evbuffer_add(b, "{\"alertname\":", 13);
	{
		struct evbuffer *n = evbuffer_new();
		char *name;

		if (n == NULL)
			goto out;
		evbuffer_add_printf(n, "troika_%s", alert_am_str(ev->kind));
		name = alert_am_take(n);
		evbuffer_free(n);
		if (name == NULL)
			goto out;
		alert_json_string(b, name);
		free(name);
	}
	alert_am_label(b, "severity", alert_severity_str(ev->severity));
	alert_am_label(b, "node", ev->node);
	alert_am_label(b, "check", ev->check);
	alert_am_label(b, "cluster", alert_am_cluster(ev));
	evbuffer_add(b, "}", 1);
	if ((*ret_labels = alert_am_take(b)) == NULL)
		goto out;

	evbuffer_add(b, "{\"summary\":", 11);
	alert_json_string(b, ev->message);
	evbuffer_add(b, ",\"coordinator\":", 15);
	alert_json_string(b, ev->coordinator);
	evbuffer_add_printf(b, ",\"seq\":\"%llu\"", (unsigned long long)ev->seq);
	for (size_t i = 0; i < ev->nfields; i++) {
		const char *name = ev->fields[i].name;

		if (strcmp(name, "summary") == 0 ||
		    strcmp(name, "coordinator") == 0 ||
		    strcmp(name, "seq") == 0)
			continue;
		evbuffer_add(b, ",", 1);
		alert_am_annotation_name(b, name);
		alert_json_string(b, ev->fields[i].value);
	}
	evbuffer_add(b, "}", 1);
	if ((*ret_annotations = alert_am_take(b)) == NULL)
		goto out;
	r = 0;
out:
	evbuffer_free(b);
	if (r < 0) {
		free(*ret_labels);
		*ret_labels = NULL;
	}
	return r;
}

/* One alert of the array: labels, annotations, startsAt, endsAt. */
static void
alert_am_write(struct evbuffer *out, int *first, const char *labels,
    const char *annotations, uint64_t starts_ns, uint64_t ends_ns)
{
	evbuffer_add_printf(out, "%s{\"labels\":%s,\"annotations\":%s,"
	    "\"startsAt\":", *first ? "[" : ",", labels, annotations);
	alert_json_time(out, starts_ns);
	evbuffer_add(out, ",\"endsAt\":", 10);
	alert_json_time(out, ends_ns);
	evbuffer_add(out, "}", 1);
	*first = 0;
}

static uint64_t
alert_am_expiry(const struct alert_am *am, uint64_t now_ns)
{
	return now_ns + 4 * (uint64_t)am->resend_ms * 1000000u;
}

/* Resolve (send with endsAt now) and forget one active alert. */
static void
alert_am_resolve(struct alert_am *am, struct alert_am_alert *a,
    struct evbuffer *b, int *first, uint64_t now_ns)
{
	alert_am_write(b, first, a->labels, a->annotations, a->starts_ns,
	    now_ns);
	TAILQ_REMOVE(&am->active, a, entry);
	am->nactive--;
	alert_am_alert_free(a);
}

static struct alert_am_alert *
alert_am_add(struct alert_am *am, const struct alert_event *ev,
    const char *node, const char *check, const char *cluster)
{
	struct alert_am_alert *a = calloc(1, sizeof(*a));

	if (a == NULL || (a->kind = strdup(ev->kind)) == NULL ||
	    (a->node = strdup(node)) == NULL ||
	    (a->check = strdup(check)) == NULL ||
	    (a->cluster = strdup(cluster)) == NULL) {
		alert_am_alert_free(a);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&am->active, a, entry);
	am->nactive++;
	return a;
}

int
alert_am_event(struct alert_am *am, const struct alert_event *ev, int fire,
    uint64_t now_ns, struct evbuffer *out)
{
	const char *node = alert_am_str(ev->node);
	const char *check = alert_am_str(ev->check);
	const char *cluster = alert_am_cluster(ev);
	char *labels = NULL, *annotations = NULL;
	struct alert_am_alert *a;
	struct evbuffer *b;
	int first = 1, resolved = 0, r = -ENOMEM;
	const char *kind;

	if (ev->kind == NULL)
		return 0;
	if ((b = evbuffer_new()) == NULL)
		return -ENOMEM;
	for (size_t i = 0; (kind = alert_am_resolver(ev->kind, i)) != NULL;
	    i++) {
		if ((a = alert_am_find(am, kind, node, check, cluster)) != NULL) {
			alert_am_resolve(am, a, b, &first, now_ns);
			resolved = 1;
		}
	}
	if (ev->severity < ALERT_WARNING) {
		if (alert_am_self_resolving(ev->kind) &&
		    (a = alert_am_find(am, ev->kind, node, check,
		    cluster)) != NULL) {
			alert_am_resolve(am, a, b, &first, now_ns);
			resolved = 1;
		}
		/* "It is fine again" is no alert of its own. */
		if (alert_am_resolvable(ev->kind) || resolved)
			fire = 0;
	}
	if (fire) {
		if (alert_am_render(ev, &labels, &annotations) < 0)
			goto out;
		a = alert_am_find(am, ev->kind, node, check, cluster);
		if (a != NULL && strcmp(a->labels, labels) != 0) {
			/* Other labels (severity) make another alert. */
			alert_am_resolve(am, a, b, &first, now_ns);
			a = NULL;
		}
		if (a == NULL && ev->severity >= ALERT_WARNING &&
		    alert_am_resolvable(ev->kind) &&
		    am->nactive < ALERT_AM_MAX_ACTIVE) {
			if ((a = alert_am_add(am, ev, node, check,
			    cluster)) == NULL)
				goto out;
			a->starts_ns = now_ns;
			a->labels = labels;
			labels = NULL;
		}
		if (a != NULL) {
			/* The latest message and fields, the first start. */
			free(a->annotations);
			a->annotations = annotations;
			annotations = NULL;
			alert_am_write(b, &first, a->labels, a->annotations,
			    a->starts_ns, alert_am_expiry(am, now_ns));
		} else {
			/* A notice: shown for a while, then it expires. */
			alert_am_write(b, &first, labels, annotations, now_ns,
			    alert_am_expiry(am, now_ns));
		}
	}
	r = 0;
	if (!first) {
		evbuffer_add(b, "]", 1);
		evbuffer_add_buffer(out, b);
		r = 1;
	}
out:
	free(labels);
	free(annotations);
	evbuffer_free(b);
	return r;
}

int
alert_am_resend(struct alert_am *am, uint64_t now_ns, struct evbuffer *out)
{
	struct alert_am_alert *a;
	int first = 1;

	TAILQ_FOREACH(a, &am->active, entry)
		alert_am_write(out, &first, a->labels, a->annotations,
		    a->starts_ns, alert_am_expiry(am, now_ns));
	if (first)
		return 0;
	evbuffer_add(out, "]", 1);
	return 1;
}
