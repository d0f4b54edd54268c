/*
 * troikactl events: the history (Admin/ListEvents), or this coordinator's
 * events after a seq and as they happen (Admin/WatchEvents); one line per
 * event, or one JSON object per line.
 *
 * Without --follow or --after, the listing is ListEvents: with store etcd
 * the cluster's recovery history from every coordinator, with store local
 * the coordinator's kept events. It comes newest first and is printed
 * oldest first, as a log reads.
 *
 * A coordinator without ListEvents (UNIMPLEMENTED: an older one), and
 * --after without --follow, list through WatchEvents instead. That stream
 * never ends by itself, and neither an event nor the stream says "these
 * were the kept ones, what follows is new". So troikactl asks GetStatus
 * first, only for the coordinator's clock (time_unix_nano, the clock
 * that also stamps events): an event stamped later is new, and the first
 * one ends the listing unprinted. When no new event comes, the listing
 * ends once the stream has been quiet for CTL_EVENTS_IDLE_MS after the
 * connection was up: the kept events come in one burst right after the
 * request.
 *
 * A watcher too slow for the coordinator is cut off with
 * RESOURCE_EXHAUSTED; troikactl says so and resumes after the last seq
 * it saw, on the same coordinator (seqs are per coordinator).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "ctl.h"
#include "ctl_fmt.h"
#include "ctl_json.h"
#include "ctl_rpc.h"
#include "grpc_status.h"

/* Quiet this long (connection up) = the kept events are all here. */
#define CTL_EVENTS_IDLE_MS 500
/* How often the quiet is looked at. */
#define CTL_EVENTS_TICK_MS 50

/* A field value as it is, or "quoted" when it has spaces, quotes, ... */
static int
ctl_event_value(struct evbuffer *out, const char *v)
{
	int plain = *v != '\0';

	for (const char *p = v; *p != '\0' && plain; p++)
		if ((unsigned char)*p <= ' ' || *p == '"' || *p == '=' ||
		    *p == '\\' || *p == 0x7f)
			plain = 0;
	if (plain)
		return ctl_fmt_clean(out, v) < 0 ? -ENOMEM : 0;
	if (evbuffer_add(out, "\"", 1) != 0)
		return -ENOMEM;
	for (const char *p = v; *p != '\0'; p++) {
		const char *q = p;

		/* Quotes and backslashes escaped; the rest cleaned. */
		while (*q != '\0' && *q != '"' && *q != '\\')
			q++;
		if (q > p) {
			char *part = strndup(p, (size_t)(q - p));

			if (part == NULL || ctl_fmt_clean(out, part) < 0) {
				free(part);
				return -ENOMEM;
			}
			free(part);
		}
		if (*q == '\0')
			break;
		if (evbuffer_add_printf(out, "\\%c", *q) < 0)
			return -ENOMEM;
		p = q;
	}
	return evbuffer_add(out, "\"", 1) == 0 ? 0 : -ENOMEM;
}

/* " name=value", two spaces before the first. */
static int
ctl_event_field(
    struct evbuffer *out, const char **sep, const char *name, const char *value)
{
	if (evbuffer_add(out, *sep, strlen(*sep)) != 0 ||
	    ctl_fmt_clean(out, name) < 0 || evbuffer_add(out, "=", 1) != 0 ||
	    ctl_event_value(out, value) != 0)
		return -ENOMEM;
	*sep = " ";
	return 0;
}

static int
ctl_event_human(const Troika__V1__Event *e, int color, struct evbuffer *out)
{
	const char *sep = "  ";
	char t[CTL_RFC3339_LEN], sev[64];
	enum ctl_color c = ctl_severity_color((int)e->severity);
	const char *on = color ? ctl_color_on(c) : "";

	ctl_enum_short(&troika__v1__severity__descriptor, (int)e->severity,
	    "SEVERITY_", 0, sev, sizeof(sev));
	evbuffer_add_printf(out, "%llu %s %s%-8s%s ",
	    (unsigned long long)e->seq,
	    ctl_fmt_rfc3339(e->time_unix_nano, 3, t, sizeof(t)), on, sev,
	    *on != '\0' ? CTL_COLOR_OFF : "");
	if (ctl_fmt_clean(out, e->node[0] != '\0' ? e->node : "-") < 0 ||
	    evbuffer_add(out, " ", 1) != 0 || ctl_fmt_clean(out, e->kind) < 0 ||
	    evbuffer_add(out, ": ", 2) != 0 ||
	    ctl_fmt_clean(out, e->message) < 0)
		return -ENOMEM;
	/* k=v: the check, the fields, the coordinator that saw it. */
	if (e->check[0] != '\0' &&
	    ctl_event_field(out, &sep, "check", e->check) != 0)
		return -ENOMEM;
	for (size_t i = 0; i < e->n_fields; i++)
		if (ctl_event_field(out, &sep, e->fields[i]->name,
		        e->fields[i]->value) != 0)
			return -ENOMEM;
	if (e->coordinator[0] != '\0' &&
	    ctl_event_field(out, &sep, "coordinator", e->coordinator) != 0)
		return -ENOMEM;
	return evbuffer_add(out, "\n", 1) == 0 ? 0 : -ENOMEM;
}

static int
ctl_event_json(const Troika__V1__Event *e, struct evbuffer *out)
{
	struct ctl_json j;

	ctl_json_init(&j, out);
	ctl_json_message(&j, &e->base);
	return ctl_json_finish(&j);
}

int
ctl_event_write(
    const Troika__V1__Event *e, int json, int color, struct evbuffer *out)
{
	return json ? ctl_event_json(e, out) : ctl_event_human(e, color, out);
}

struct ctl_events {
	const struct ctl_opts *o;
	struct ctl_rpc *r;
	struct evbuffer *out;
	struct event *tick;
	uint64_t now_ns;     /* the coordinator's clock (no --follow) */
	uint64_t last_seq;   /* the last event printed; 0: none */
	uint64_t received;   /* events in the current call */
	int64_t quiet_since; /* monotonic ms */
	int write_error;     /* -errno of a failed write to stdout */
	int newer;           /* an event after now_ns ended the listing */
};

static int64_t
ctl_events_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
ctl_events_message(const uint8_t *msg, size_t len, void *arg)
{
	struct ctl_events *ev = arg;
	Troika__V1__Event *e;
	int r;

	if ((e = troika__v1__event__unpack(NULL, len, msg)) == NULL)
		return -EBADMSG;
	ev->quiet_since = ctl_events_mono_ms();
	ev->received++;
	/* A coordinator without a clock (0) leaves it to the quiet. */
	if (!ev->o->follow && ev->now_ns != 0 &&
	    e->time_unix_nano > ev->now_ns) {
		/* New since we asked: the kept ones are all printed. */
		ev->newer = 1;
		troika__v1__event__free_unpacked(e, NULL);
		ctl_rpc_stop(ev->r);
		return 0;
	}
	r = ctl_event_write(e, ev->o->json, ev->o->color, ev->out);
	if (e->seq > ev->last_seq)
		ev->last_seq = e->seq;
	troika__v1__event__free_unpacked(e, NULL);
	if (r == 0)
		r = ctl_flush(ev->out, STDOUT_FILENO);
	if (r != 0) {
		ev->write_error = r;
		ctl_rpc_stop(ev->r);
	}
	return 0;
}

static const struct ctl_rpc_handler ctl_events_handler = {
    .message = ctl_events_message,
};

static void
ctl_events_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_events *ev = arg;
	int64_t now = ctl_events_mono_ms();

	(void)fd;
	(void)what;
	/* The quiet counts once the connection is up. */
	if (!ctl_rpc_connected(ev->r))
		ev->quiet_since = now;
	else if (now - ev->quiet_since >= CTL_EVENTS_IDLE_MS)
		ctl_rpc_stop(ev->r);
}

/* The coordinator's clock, from GetStatus (see the top of this file). */
struct ctl_events_clock {
	uint64_t now_ns;
	int got;
};

static int
ctl_events_clock_message(const uint8_t *msg, size_t len, void *arg)
{
	struct ctl_events_clock *ck = arg;
	Troika__V1__GetStatusResponse *rep;

	if ((rep = troika__v1__get_status_response__unpack(NULL, len, msg)) ==
	    NULL)
		return -EBADMSG;
	ck->now_ns = rep->time_unix_nano;
	ck->got = 1;
	troika__v1__get_status_response__free_unpacked(rep, NULL);
	return 0;
}

static const struct ctl_rpc_handler ctl_events_clock_handler = {
    .message = ctl_events_clock_message,
};

/* The status of a call that failed, on stderr; CTL_EXIT_FAIL. */
static int
ctl_events_failed(struct ctl_rpc *r, int st)
{
	if (st != CTL_RPC_NO_ANSWER)
		fprintf(stderr, "troikactl: %s: %s: %s\n", ctl_rpc_target(r),
		    grpc_status_str(st), r->message);
	return CTL_EXIT_FAIL;
}

/* GetStatus for the clock; 0, or an exit status. */
static int
ctl_events_get_clock(struct ctl_events *ev)
{
	Troika__V1__GetStatusRequest req = TROIKA__V1__GET_STATUS_REQUEST__INIT;
	/* No node has an empty name: the answer carries no nodes. */
	char *none[] = {(char *)(uintptr_t) ""};
	struct ctl_events_clock ck = {0, 0};
	int st;

	req.nodes = none;
	req.n_nodes = 1;
	st = ctl_rpc_call(ev->r, "/troika.v1.Admin/GetStatus", &req.base,
	    ev->o->timeout_ms, &ctl_events_clock_handler, &ck);
	if (st == GRPC_STATUS_OK && ck.got) {
		ev->now_ns = ck.now_ns;
		return 0;
	}
	if (ev->r->stopped)
		return CTL_EXIT_OK;
	if (st == GRPC_STATUS_OK)
		snprintf(ev->r->message, sizeof(ev->r->message),
		    "no answer in the reply");
	return ctl_events_failed(
	    ev->r, st == GRPC_STATUS_OK ? GRPC_STATUS_INTERNAL : st);
}

/*
 * ListEvents, printed oldest first. Returns an exit status, or -1 when
 * the coordinator does not have ListEvents (then the watch lists).
 */
static int
ctl_events_list(struct ctl_events *ev)
{
	Troika__V1__ListEventsRequest req =
	    TROIKA__V1__LIST_EVENTS_REQUEST__INIT;
	const struct ctl_opts *o = ev->o;
	struct ctl_rpc_reply l = {
		&troika__v1__list_events_response__descriptor, NULL,
	};
	const Troika__V1__ListEventsResponse *rep;
	int st, rc = CTL_EXIT_FAIL, e = 0;

	req.nodes = o->nodes;
	req.n_nodes = o->nnodes;
	req.kinds = o->kinds;
	req.n_kinds = o->nkinds;
	req.limit = o->limit;
	st = ctl_rpc_call(ev->r, "/troika.v1.Admin/ListEvents", &req.base,
	    o->timeout_ms, &ctl_rpc_reply_handler, &l);
	if (ev->r->stopped)
		rc = CTL_EXIT_OK;
	else if (st == GRPC_STATUS_UNIMPLEMENTED)
		rc = -1;
	else if (st == CTL_RPC_NO_ANSWER)
		;
	else if (st != GRPC_STATUS_OK || l.msg == NULL) {
		if (st == GRPC_STATUS_OK)
			snprintf(ev->r->message, sizeof(ev->r->message),
			    "no answer in the reply");
		ctl_events_failed(
		    ev->r, st == GRPC_STATUS_OK ? GRPC_STATUS_INTERNAL : st);
	} else {
		rep = (const Troika__V1__ListEventsResponse *)l.msg;
		for (size_t i = rep->n_events; i > 0 && e == 0; i--)
			e = ctl_event_write(
			    rep->events[i - 1], o->json, o->color, ev->out);
		if (e == 0)
			e = ctl_flush(ev->out, STDOUT_FILENO);
		if (e == 0)
			rc = CTL_EXIT_OK;
		else if (e != -EPIPE)
			fprintf(
			    stderr, "troikactl: stdout: %s\n", strerror(-e));
	}
	if (l.msg != NULL)
		protobuf_c_message_free_unpacked(l.msg, NULL);
	return rc;
}

int
ctl_events_run(const struct ctl_opts *o)
{
	Troika__V1__WatchEventsRequest req =
	    TROIKA__V1__WATCH_EVENTS_REQUEST__INIT;
	struct ctl_events ev;
	struct ctl_rpc r;
	/*
	 * The kept events: after_seq 0 would mean "only new ones", so 1 is
	 * the nearest to "all": seq 1 itself cannot be asked for (README).
	 */
	uint64_t after = o->after_set ? o->after : 1;
	int rc = CTL_EXIT_FAIL, st, cut_without_progress = 0;

	memset(&ev, 0, sizeof(ev));
	ev.o = o;
	ev.r = &r;
	if (ctl_rpc_init(&r, o) != 0)
		goto out;
	if ((ev.out = evbuffer_new()) == NULL ||
	    (ev.tick = event_new(
	         r.base, -1, EV_PERSIST, ctl_events_tick_cb, &ev)) == NULL) {
		fprintf(stderr, "troikactl: out of memory\n");
		goto out;
	}
	if (!o->follow && !o->after_set && (rc = ctl_events_list(&ev)) != -1)
		goto out;
	rc = CTL_EXIT_FAIL;
	if (!o->follow) {
		if ((rc = ctl_events_get_clock(&ev)) != 0 || r.stopped)
			goto out;
		rc = CTL_EXIT_FAIL;
	}
	req.nodes = o->nodes;
	req.n_nodes = o->nnodes;
	req.kinds = o->kinds;
	req.n_kinds = o->nkinds;
	for (;;) {
		struct timeval tv = {0, CTL_EVENTS_TICK_MS * 1000};

		req.after_seq = after;
		ev.received = 0;
		ev.quiet_since = ctl_events_mono_ms();
		if (!o->follow)
			event_add(ev.tick, &tv);
		st = ctl_rpc_call(&r, "/troika.v1.Admin/WatchEvents", &req.base,
		    o->follow ? 0 : o->timeout_ms, &ctl_events_handler, &ev);
		event_del(ev.tick);
		if (ev.write_error != 0) {
			/* A closed pipe (| head) needs no message. */
			if (ev.write_error != -EPIPE)
				fprintf(stderr, "troikactl: stdout: %s\n",
				    strerror(-ev.write_error));
			break;
		}
		if (r.stopped) {
			rc = CTL_EXIT_OK; /* Ctrl-C, quiet, or a newer event */
			break;
		}
		if (st != GRPC_STATUS_RESOURCE_EXHAUSTED) {
			/* OK: a coordinator that ends the listing itself. */
			rc = st == GRPC_STATUS_OK ? CTL_EXIT_OK
			                          : ctl_events_failed(&r, st);
			break;
		}
		if (ev.received > 0) {
			if (ev.last_seq > after)
				after = ev.last_seq;
			cut_without_progress = 0;
		} else if (cut_without_progress++ > 0) {
			/*
			 * Cut off twice without one event: what comes after
			 * `after` is no longer kept. Following, go on with
			 * new events; listing, there is nothing to list.
			 */
			if (!o->follow) {
				fprintf(stderr,
				    "troikactl: %s: events after "
				    "seq %llu are no longer kept (%s)\n",
				    ctl_rpc_target(&r),
				    (unsigned long long)after, r.message);
				break;
			}
			fprintf(stderr,
			    "troikactl: %s: events after seq %llu "
			    "are no longer kept; going on with new events\n",
			    ctl_rpc_target(&r), (unsigned long long)after);
			after = 0;
			continue;
		}
		fprintf(stderr,
		    "troikactl: %s: cut off (RESOURCE_EXHAUSTED: "
		    "%s); resuming after seq %llu\n",
		    ctl_rpc_target(&r), r.message, (unsigned long long)after);
	}
out:
	if (ev.tick != NULL)
		event_free(ev.tick);
	if (ev.out != NULL)
		evbuffer_free(ev.out);
	ctl_rpc_cleanup(&r);
	return rc;
}
