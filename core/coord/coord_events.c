/*
 * Events and Admin/WatchEvents (see coord_events.h).
 *
 * Each event is packed once, when it happens, and kept packed in the
 * ring: a watcher is sent the very bytes, whatever the number of
 * watchers. A watcher is a cursor into the ring. Sending follows the
 * client's pace (drained()); a client so slow that the ring overwrote
 * events it has not been sent yet is cut off with RESOURCE_EXHAUSTED and
 * told from which seq to resume, as admin.proto says.
 */
#include "coord_events.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <syslog.h>

#include "alert.h"
#include "coord.h"
#include "coord_conf.h"
#include "coord_history.h"
#include "log.h"

struct coord_event {
	uint64_t seq; /* 0: slot empty */
	char *node;
	char *kind;
	uint8_t *packed;
	size_t len;
};

struct coord_watch {
	LIST_ENTRY(coord_watch) entry;
	struct coord *c;
	struct grpc_call *call;
	Troika__V1__WatchEventsRequest *req; /* NULL until it arrived */
	uint64_t next;                       /* next seq to look at */
	int waiting;                         /* drained() asked for */
	int finished;
};

struct coord_events {
	struct coord_event ring[COORD_EVENTS_KEEP];
	uint64_t last_seq;
	LIST_HEAD(, coord_watch) watches;
};

struct coord_events *
coord_events_new(void)
{
	struct coord_events *ev = calloc(1, sizeof(*ev));

	if (ev != NULL)
		LIST_INIT(&ev->watches);
	return ev;
}

static void
coord_event_clear(struct coord_event *e)
{
	free(e->node);
	free(e->kind);
	free(e->packed);
	memset(e, 0, sizeof(*e));
}

void
coord_events_free(struct coord_events *ev)
{
	if (ev == NULL)
		return;
	for (size_t i = 0; i < COORD_EVENTS_KEEP; i++)
		coord_event_clear(&ev->ring[i]);
	free(ev);
}

uint64_t
coord_events_last_seq(const struct coord_events *ev)
{
	return ev->last_seq;
}

/* The oldest seq still kept. */
static uint64_t
coord_events_oldest(const struct coord_events *ev)
{
	return ev->last_seq > COORD_EVENTS_KEEP
	    ? ev->last_seq - COORD_EVENTS_KEEP + 1
	    : 1;
}

int
coord_events_match(const char *const *list, size_t n, const char *s)
{
	if (n == 0)
		return 1;
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

static int
coord_watch_wants(const struct coord_watch *w, const struct coord_event *e)
{
	const Troika__V1__WatchEventsRequest *q = w->req;

	return coord_events_match((const char *const *)q->nodes, q->n_nodes,
	        e->node) &&
	    coord_events_match((const char *const *)q->kinds, q->n_kinds,
	        e->kind);
}

static void
coord_watch_fail(struct coord_watch *w, int status, const char *msg)
{
	w->finished = 1;
	grpc_call_finish(w->call, status, msg);
}

/* Send what the watcher has not had yet, as far as its pace allows. */
static void
coord_watch_pump(struct coord_watch *w)
{
	struct coord_events *ev = w->c->events;
	char msg[128];

	if (w->finished || w->req == NULL || w->waiting)
		return;
	if (w->next < coord_events_oldest(ev)) {
		snprintf(msg, sizeof(msg),
		    "too slow: events were lost; "
		    "resume with after_seq %llu",
		    (unsigned long long)(w->next - 1));
		coord_watch_fail(w, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
		return;
	}
	while (w->next <= ev->last_seq) {
		const struct coord_event *e =
		    &ev->ring[w->next % COORD_EVENTS_KEEP];

		if (grpc_call_queued(w->call) >= COORD_EVENTS_QUEUE_MAX) {
			w->waiting = 1;
			grpc_call_notify_drained(w->call);
			return;
		}
		if (coord_watch_wants(w, e) &&
		    grpc_call_send(w->call, e->packed, e->len) < 0) {
			/* Cancelled or reset: close() follows. */
			w->finished = 1;
			return;
		}
		w->next++;
	}
}

/* To the alert hooks, which copy what they keep. */
static void
coord_events_alert(struct coord *c, const Troika__V1__Event *m,
    const char *const *fields, size_t nfields)
{
	struct alert_field f[16];
	struct alert_event ae = {
		.seq = m->seq,
		.time_ns = m->time_unix_nano,
		.kind = m->kind,
		.severity = (int)m->severity,
		.node = m->node,
		.check = m->check,
		.message = m->message,
		.coordinator = m->coordinator,
		.fields = f,
	};

	if (c->alerts == NULL)
		return;
	for (size_t i = 0; i < nfields && i < sizeof(f) / sizeof(f[0]); i++) {
		f[i].name = fields[2 * i];
		f[i].value = fields[2 * i + 1];
		ae.nfields++;
	}
	alert_hooks_emit(c->alerts, &ae);
}

void
coord_events_emit(struct coord *c, const char *kind,
    Troika__V1__Severity severity, const char *node, const char *check,
    const char *const *fields, size_t nfields, const char *fmt, ...)
{
	struct coord_events *ev = c->events;
	Troika__V1__Event m = TROIKA__V1__EVENT__INIT;
	Troika__V1__Label *labels = NULL, **plabels = NULL;
	struct coord_event *e;
	struct coord_watch *w;
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_msg(severity >= TROIKA__V1__SEVERITY__SEVERITY_WARNING ? LOG_WARNING
	                                                           : LOG_INFO,
	    "event %s: %s", kind, text);

	e = &ev->ring[(ev->last_seq + 1) % COORD_EVENTS_KEEP];
	coord_event_clear(e);
	m.seq = ev->last_seq + 1;
	m.time_unix_nano = coord_now_ns();
	m.kind = (char *)(uintptr_t)kind;
	m.severity = severity;
	m.node = (char *)(uintptr_t)(node != NULL ? node : "");
	m.check = (char *)(uintptr_t)(check != NULL ? check : "");
	m.message = text;
	m.coordinator = (char *)(uintptr_t)c->conf->name;
	if (nfields > 0 &&
	    ((labels = calloc(nfields, sizeof(*labels))) == NULL ||
	        (plabels = calloc(nfields, sizeof(*plabels))) == NULL))
		goto out;
	for (size_t i = 0; i < nfields; i++) {
		troika__v1__label__init(&labels[i]);
		labels[i].name = (char *)(uintptr_t)fields[2 * i];
		labels[i].value = (char *)(uintptr_t)fields[2 * i + 1];
		plabels[i] = &labels[i];
	}
	m.fields = plabels;
	m.n_fields = nfields;
	e->len = protobuf_c_message_get_packed_size(&m.base);
	if ((e->packed = malloc(e->len > 0 ? e->len : 1)) == NULL ||
	    (e->node = strdup(m.node)) == NULL ||
	    (e->kind = strdup(kind)) == NULL) {
		coord_event_clear(e);
		goto out;
	}
	protobuf_c_message_pack(&m.base, e->packed);
	e->seq = m.seq;
	ev->last_seq = m.seq;
	if (c->history != NULL && coord_history_wants(kind))
		coord_history_record(c->history, m.seq, e->packed, e->len);
	LIST_FOREACH(w, &ev->watches, entry)
	coord_watch_pump(w);
	coord_events_alert(c, &m, fields, nfields);
out:
	/* Out of memory: the event is logged, but not kept or sent. */
	free(labels);
	free(plabels);
}

static int
coord_watch_start(struct grpc_call *call, void *arg)
{
	struct coord *c = arg;
	struct coord_watch *w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -ENOMEM;
	w->c = c;
	w->call = call;
	LIST_INSERT_HEAD(&c->events->watches, w, entry);
	grpc_call_set_data(call, w);
	return 0;
}

static void
coord_watch_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	struct coord_watch *w = grpc_call_data(call);
	struct coord_events *ev = w->c->events;

	w->req = troika__v1__watch_events_request__unpack(NULL, len, msg);
	if (w->req == NULL) {
		coord_watch_fail(w, GRPC_STATUS_INVALID_ARGUMENT,
		    "cannot parse WatchEventsRequest");
		return;
	}
	if (w->req->after_seq == 0 || w->req->after_seq > ev->last_seq)
		w->next = ev->last_seq + 1;
	else if (w->req->after_seq + 1 < coord_events_oldest(ev))
		/* Older than the ring keeps: from the oldest kept, as the
		 * README says (a cut-off here would name the same seq to
		 * resume from, for ever). */
		w->next = coord_events_oldest(ev);
	else
		w->next = w->req->after_seq + 1;
	coord_watch_pump(w);
}

static void
coord_watch_drained(struct grpc_call *call)
{
	struct coord_watch *w = grpc_call_data(call);

	w->waiting = 0;
	coord_watch_pump(w);
}

static void
coord_watch_close(struct grpc_call *call, int status)
{
	struct coord_watch *w = grpc_call_data(call);

	(void)status;
	if (w == NULL)
		return;
	LIST_REMOVE(w, entry);
	if (w->req != NULL)
		troika__v1__watch_events_request__free_unpacked(w->req, NULL);
	free(w);
}

static const struct grpc_handler coord_watch_handler = {
    .start = coord_watch_start,
    .message = coord_watch_message,
    .drained = coord_watch_drained,
    .close = coord_watch_close,
};

/* ---- Admin/ListEvents ---- */

static int
coord_list_start(struct grpc_call *call, void *arg)
{
	grpc_call_set_data(call, arg);
	return 0;
}

static void
coord_list_close(struct grpc_call *call, int status)
{
	(void)call;
	(void)status;
}

/* With store local: this coordinator's ring, newest first. */
static size_t
coord_list_ring(struct coord_events *ev,
    const Troika__V1__ListEventsRequest *req, Troika__V1__Event **out,
    size_t max)
{
	uint64_t oldest = coord_events_oldest(ev);
	size_t n = 0;

	for (uint64_t seq = ev->last_seq; seq >= oldest && seq > 0 && n < max;
	    seq--) {
		const struct coord_event *e = &ev->ring[seq % COORD_EVENTS_KEEP];
		Troika__V1__Event *m;

		if (e->seq != seq ||
		    !coord_events_match((const char *const *)req->nodes,
		    req->n_nodes, e->node) ||
		    !coord_events_match((const char *const *)req->kinds,
		    req->n_kinds, e->kind))
			continue;
		if ((m = troika__v1__event__unpack(NULL, e->len,
		    e->packed)) != NULL)
			out[n++] = m;
	}
	return n;
}

static void
coord_list_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	struct coord *c = grpc_call_data(call);
	Troika__V1__ListEventsRequest *req;
	Troika__V1__ListEventsResponse rep =
	    TROIKA__V1__LIST_EVENTS_RESPONSE__INIT;
	Troika__V1__Event **evs;
	size_t limit, n;

	if ((req = troika__v1__list_events_request__unpack(NULL, len,
	    msg)) == NULL) {
		grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
		    "cannot parse ListEventsRequest");
		return;
	}
	limit = req->limit == 0 ? 100 : req->limit > 5000 ? 5000 : req->limit;
	if ((evs = calloc(limit, sizeof(*evs))) == NULL) {
		grpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
		    "out of memory");
		goto out;
	}
	if (c->history != NULL) {
		n = coord_history_list(c->history,
		    (const char *const *)req->nodes, req->n_nodes,
		    (const char *const *)req->kinds, req->n_kinds,
		    (const Troika__V1__Event **)(uintptr_t)evs, limit);
	} else {
		n = coord_list_ring(c->events, req, evs, limit);
	}
	rep.events = evs;
	rep.n_events = n;
	if (coord_send(call, &rep.base) == 0)
		grpc_call_finish(call, GRPC_STATUS_OK, NULL);
	/* The ring's were unpacked for this answer; the history's are kept. */
	if (c->history == NULL)
		for (size_t i = 0; i < n; i++)
			troika__v1__event__free_unpacked(evs[i], NULL);
	free(evs);
out:
	troika__v1__list_events_request__free_unpacked(req, NULL);
}

static const struct grpc_handler coord_list_handler = {
    .start = coord_list_start,
    .message = coord_list_message,
    .close = coord_list_close,
};

int
coord_events_register(struct coord *c)
{
	const struct grpc_method m = {
	    .path = "/troika.v1.Admin/WatchEvents",
	    .kind = GRPC_METHOD_SERVER_STREAMING,
	    .handler = &coord_watch_handler,
	    .arg = c,
	};
	const struct grpc_method list = {
	    .path = "/troika.v1.Admin/ListEvents",
	    .kind = GRPC_METHOD_UNARY,
	    .handler = &coord_list_handler,
	    .arg = c,
	};

	if (grpc_server_add_method(c->srv, &m) < 0)
		return -1;
	return grpc_server_add_method(c->srv, &list);
}

void
coord_events_shutdown(struct coord *c)
{
	struct coord_watch *w;

	LIST_FOREACH(w, &c->events->watches, entry)
	if (!w->finished)
		coord_watch_fail(
		    w, GRPC_STATUS_UNAVAILABLE, "coordinator shutting down");
}
