/*
 * coord_load: N simulated agents in one process, for
 * tests/bench/bench_coord_throughput.py. Each agent opens a
 * troika.v1.Agent/Connect stream (by default on its own HTTP/2
 * connection, as real agents do), says Hello, then sends CheckResults:
 * either as fast as flow control lets them through (no --rate), or
 * paced at --rate results per second in total. A separate connection
 * watches Admin/WatchEvents, as troikactl would.
 *
 * Latency is measured end to end through something the coordinator
 * really does: one in --mark of each agent's results goes to a check of
 * its own ("marker") whose status flips between WARNING and OK each
 * time, so the coordinator must put it into its view, see the change and
 * emit a check_status event. The result's message carries a marker
 * number that the event's message repeats; the latency of a marker is
 * the time from handing it to our gRPC client to receiving its event,
 * both on this process's monotonic clock. Each agent's first result sets
 * the marker check UNKNOWN, so the first marker is a change whatever the
 * server kept from an earlier run with the same node names.
 *
 *   coord_load [--agents 100] [--conns N] [--checks 10] [--rate R]
 *              [--mark 20] [--warmup 3] [--seconds 10] [--drain 5]
 *              [--send-cap 65536] [--agent-connect] HOST PORT
 *
 * Connections are made here, with TCP_NODELAY as gRPC core sets it, and
 * handed to the gRPC client (grpc_client_adopt()). --agent-connect has
 * the client connect itself instead (grpc_client_connect(), the way
 * troika-agent does): today it leaves Nagle's algorithm on, which shows
 * in the latency of single small results.
 *
 * Lines on stdout, flushed as they happen:
 *   ready AGENTS CONNS           every agent was welcomed, events arrive
 *   window_start                 the measuring window begins
 *   window_end                   it ends; sending stops
 *   result {json}                what was sent and the marker latencies
 * The result counts the window's results and markers sent, markers seen,
 * their latency percentiles (-1 when none was seen), sends refused for a
 * full queue (eagain), failed sends, agent streams the server ended
 * (streams_lost), and how often the watcher was cut off (watch_cuts).
 * Exit 0 after the result line; 1 when the run could not be done (a
 * connection or stream refused before every agent was welcomed, no event
 * within 10 s), saying why on stderr.
 * Benchmarks only, never installed.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "grpc_client.h"
#include "log.h"
#include "troika/v1/admin.pb-c.h"
#include "troika/v1/agent.pb-c.h"

#define LOAD_PATH_CONNECT "/troika.v1.Agent/Connect"
#define LOAD_PATH_WATCH "/troika.v1.Admin/WatchEvents"
#define LOAD_MARKER_TAG "bench marker "
/* The pacing timer's period: results due are sent in bursts this long. */
#define LOAD_TICK_US 1000
/* Results packed into this; ours are a little over 100 bytes. */
#define LOAD_MSG_MAX 512

enum load_phase {
	LOAD_CONNECTING,
	LOAD_WARMUP,
	LOAD_MEASURE,
	LOAD_DRAIN,
	LOAD_DONE,
};

struct load;

struct load_agent {
	struct load *ld;
	int index;
	char node[32];
	struct grpc_client_call *call;
	int welcomed;
	int waiting; /* a send was refused: drained() brings us back */
	int closed;
	uint64_t owed; /* paced: results due and not yet sent */
	uint64_t run;
	size_t next_check;
	int marker_warning; /* the marker check's last status */
};

struct load {
	struct event_base *base;
	const char *host;
	int port;
	int nagents;
	int nconns;
	int nchecks;
	double rate; /* 0: saturate */
	unsigned mark;
	double warmup_s;
	double seconds;
	double drain_s;
	size_t send_cap;
	int agent_connect; /* grpc_client_connect(), no TCP_NODELAY */

	struct grpc_client **conns;
	struct load_agent *agents;
	struct grpc_client *watch_cl;
	struct grpc_client_call *watch;
	uint64_t watch_cuts;

	enum load_phase phase;
	struct event *tick_ev;
	struct event *phase_ev;
	int welcomed;
	uint64_t t_load_ns;  /* the load started */
	uint64_t t_start_ns; /* the measuring window */
	uint64_t t_end_ns;
	uint64_t t_phase_ns; /* the current phase started */
	uint64_t scheduled;  /* paced: results handed out to agents */
	uint64_t results;    /* results sent, all phases */
	uint64_t window_results;
	uint64_t eagain;
	uint64_t send_errors;
	uint64_t streams_lost;
	uint64_t events_seen;

	/* Markers: the send time of each, by number. */
	uint64_t *marker_sent_ns;
	uint8_t *marker_seen;
	size_t nmarkers;
	size_t markers_cap;
	uint64_t window_markers; /* sent in the window */
	uint64_t window_seen;    /* of those, seen */
	uint64_t *lat_ns;        /* their latencies */
	size_t nlat;
	size_t lat_cap;
	int failed;
};

static const char *const load_check_names[] = {
    "mysql",
    "redis",
    "rabbitmq",
    "http",
    "nginx",
    "phpfpm",
    "elasticsearch",
    "process",
    "disk",
    "load",
    "tcp",
    "galera",
};
#define LOAD_NAMED_CHECKS                                                      \
	(sizeof(load_check_names) / sizeof(load_check_names[0]))

static uint64_t
load_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t
load_real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The run cannot be done: say why (the first reason only) and stop. */
static void
load_fail(struct load *ld, const char *why)
{
	if (!ld->failed)
		fprintf(stderr, "coord_load: %s\n", why);
	ld->failed = 1;
	event_base_loopbreak(ld->base);
}

static void
load_check_name(int i, char *buf, size_t len)
{
	if ((size_t)i < LOAD_NAMED_CHECKS)
		snprintf(buf, len, "%s", load_check_names[i]);
	else
		snprintf(buf, len, "check-%d", i);
}

static int
load_send_packed(struct grpc_client_call *call, const ProtobufCMessage *m)
{
	uint8_t buf[LOAD_MSG_MAX];
	size_t len = protobuf_c_message_get_packed_size(m);

	if (len > sizeof(buf))
		return -EMSGSIZE;
	protobuf_c_message_pack(m, buf);
	return grpc_client_call_send(call, buf, len);
}

/* ---- markers and latencies ---- */

static int
load_marker_new(struct load *ld, uint64_t *ret_id)
{
	if (ld->nmarkers == ld->markers_cap) {
		size_t cap = ld->markers_cap ? ld->markers_cap * 2 : 4096;
		uint64_t *t = realloc(ld->marker_sent_ns, cap * sizeof(*t));
		uint8_t *s;

		if (t == NULL)
			return -ENOMEM;
		ld->marker_sent_ns = t;
		if ((s = realloc(ld->marker_seen, cap)) == NULL)
			return -ENOMEM;
		ld->marker_seen = s;
		ld->markers_cap = cap;
	}
	ld->marker_sent_ns[ld->nmarkers] = 0;
	ld->marker_seen[ld->nmarkers] = 0;
	*ret_id = ld->nmarkers++;
	return 0;
}

static int
load_in_window(const struct load *ld, uint64_t t_ns)
{
	return ld->t_start_ns != 0 && t_ns >= ld->t_start_ns &&
	    (ld->t_end_ns == 0 || t_ns < ld->t_end_ns);
}

static void
load_marker_seen(struct load *ld, uint64_t id, uint64_t now)
{
	uint64_t sent;

	if (id >= ld->nmarkers || ld->marker_seen[id])
		return;
	ld->marker_seen[id] = 1;
	sent = ld->marker_sent_ns[id];
	if (sent == 0 || !load_in_window(ld, sent))
		return;
	ld->window_seen++;
	if (ld->nlat == ld->lat_cap) {
		size_t cap = ld->lat_cap ? ld->lat_cap * 2 : 4096;
		uint64_t *l = realloc(ld->lat_ns, cap * sizeof(*l));

		if (l == NULL)
			return;
		ld->lat_ns = l;
		ld->lat_cap = cap;
	}
	ld->lat_ns[ld->nlat++] = now - sent;
}

/* ---- an agent's stream ---- */

static int
load_agent_send_result(struct load_agent *a)
{
	struct load *ld = a->ld;
	Troika__V1__AgentMessage am = TROIKA__V1__AGENT_MESSAGE__INIT;
	Troika__V1__CheckResult res = TROIKA__V1__CHECK_RESULT__INIT;
	Troika__V1__Label l1 = TROIKA__V1__LABEL__INIT;
	Troika__V1__Label l2 = TROIKA__V1__LABEL__INIT;
	Troika__V1__Label *fields[] = {&l1, &l2};
	char check[32], msg[64], addr[32];
	uint64_t marker = 0, now = 0;
	/*
	 * Each agent marks every mark-th of its own results, so markers
	 * spread over all streams whatever order they are sent in; the
	 * agent's index shifts its turn, or agents that send in step
	 * would all mark at once, every mark-th round.
	 */
	int prime = a->run == 0;
	int is_marker = !prime && ld->mark > 0 &&
	    (a->run + (uint64_t)a->index) % ld->mark == 0;
	int r;

	res.plugin = "tcp";
	res.evidence = TROIKA__V1__EVIDENCE__EVIDENCE_UNSPECIFIED;
	res.duration_nano = 1200000 + (a->run % 1000) * 1000;
	res.time_unix_nano = load_real_ns();
	res.run = ++a->run;
	res.fields = fields;
	res.n_fields = 2;
	l1.name = "addr";
	snprintf(addr, sizeof(addr), "127.0.1.%d:%d", a->index % 3 + 1,
	    3306 + (int)a->next_check);
	l1.value = addr;
	l2.name = "state";
	if (prime) {
		/*
		 * The marker check starts UNKNOWN, a status markers never
		 * have: the first marker then changes it whatever the
		 * server kept from an earlier run with the same node names.
		 */
		res.check = "marker";
		res.status = TROIKA__V1__CHECK_STATUS__CHECK_STATUS_UNKNOWN;
		snprintf(msg, sizeof(msg), "bench start");
		l2.value = "unknown";
	} else if (is_marker) {
		if (load_marker_new(ld, &marker) < 0)
			return -ENOMEM;
		res.check = "marker";
		a->marker_warning = !a->marker_warning;
		res.status = a->marker_warning
		    ? TROIKA__V1__CHECK_STATUS__CHECK_STATUS_WARNING
		    : TROIKA__V1__CHECK_STATUS__CHECK_STATUS_OK;
		snprintf(msg, sizeof(msg),
		    LOAD_MARKER_TAG "%08" PRIu64 " flips the status", marker);
		l2.value = a->marker_warning ? "warning" : "ok";
	} else {
		load_check_name((int)a->next_check, check, sizeof(check));
		a->next_check = (a->next_check + 1) % (size_t)ld->nchecks;
		res.check = check;
		res.status = TROIKA__V1__CHECK_STATUS__CHECK_STATUS_OK;
		snprintf(
		    msg, sizeof(msg), "connected in 1.2 ms, 42 of 151 in use");
		l2.value = "ok";
	}
	res.message = msg;
	am.body_case = TROIKA__V1__AGENT_MESSAGE__BODY_CHECK_RESULT;
	am.check_result = &res;
	if (is_marker)
		now = load_mono_ns();
	if ((r = load_send_packed(a->call, &am.base)) < 0) {
		if (is_marker)
			ld->nmarkers--; /* not sent: it never was */
		if (is_marker)
			a->marker_warning = !a->marker_warning;
		a->run--;
		return r;
	}
	if (is_marker) {
		ld->marker_sent_ns[marker] = now;
		if (load_in_window(ld, now))
			ld->window_markers++;
	}
	ld->results++;
	if (ld->phase == LOAD_MEASURE)
		ld->window_results++;
	return 0;
}

/* Send what is owed (paced) or all the queue takes (saturation). */
static void
load_agent_pump(struct load_agent *a)
{
	struct load *ld = a->ld;
	int r;

	if (a->closed || !a->welcomed || a->waiting)
		return;
	if (ld->phase != LOAD_WARMUP && ld->phase != LOAD_MEASURE)
		return;
	while (ld->rate == 0 || a->owed > 0) {
		if ((r = load_agent_send_result(a)) == -EAGAIN) {
			ld->eagain++;
			a->waiting = 1;
			return;
		}
		if (r < 0) {
			ld->send_errors++;
			return;
		}
		if (a->owed > 0)
			a->owed--;
	}
}

static void
load_agent_hello(struct load_agent *a)
{
	struct load *ld = a->ld;
	Troika__V1__AgentMessage am = TROIKA__V1__AGENT_MESSAGE__INIT;
	Troika__V1__Hello h = TROIKA__V1__HELLO__INIT;
	Troika__V1__Plugin p = TROIKA__V1__PLUGIN__INIT;
	Troika__V1__Plugin *plugins[] = {&p};
	Troika__V1__Check *checks = NULL, **pchecks = NULL;
	char(*names)[32] = NULL;
	size_t n = (size_t)ld->nchecks + 1;

	checks = calloc(n, sizeof(*checks));
	pchecks = calloc(n, sizeof(*pchecks));
	names = calloc(n, sizeof(*names));
	if (checks == NULL || pchecks == NULL || names == NULL) {
		ld->send_errors++;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		troika__v1__check__init(&checks[i]);
		if (i + 1 < n)
			load_check_name((int)i, names[i], sizeof(names[i]));
		else
			snprintf(names[i], sizeof(names[i]), "marker");
		checks[i].name = names[i];
		checks[i].plugin = "tcp";
		checks[i].interval_nano = 1000000000ULL;
		checks[i].timeout_nano = 500000000ULL;
		pchecks[i] = &checks[i];
	}
	p.name = "tcp";
	p.version = "0.1.0";
	p.description = "TCP connect";
	h.node = a->node;
	h.version = "0.1.0";
	h.plugins = plugins;
	h.n_plugins = 1;
	h.checks = pchecks;
	h.n_checks = n;
	h.start_time_unix_nano = load_real_ns();
	am.body_case = TROIKA__V1__AGENT_MESSAGE__BODY_HELLO;
	am.hello = &h;
	if (load_send_packed(a->call, &am.base) < 0)
		ld->send_errors++;
out:
	free(checks);
	free(pchecks);
	free(names);
}

static void load_start_load(struct load *ld);

static void
load_agent_message(
    struct grpc_client_call *call, const uint8_t *msg, size_t len, void *arg)
{
	struct load_agent *a = arg;
	Troika__V1__CoordinatorMessage *cm;

	(void)call;
	cm = troika__v1__coordinator_message__unpack(NULL, len, msg);
	if (cm == NULL)
		return;
	if (cm->body_case == TROIKA__V1__COORDINATOR_MESSAGE__BODY_WELCOME &&
	    !a->welcomed) {
		a->welcomed = 1;
		if (++a->ld->welcomed == a->ld->nagents)
			load_start_load(a->ld);
		else
			load_agent_pump(a);
	}
	troika__v1__coordinator_message__free_unpacked(cm, NULL);
}

static void
load_agent_drained(struct grpc_client_call *call, void *arg)
{
	struct load_agent *a = arg;

	(void)call;
	a->waiting = 0;
	load_agent_pump(a);
}

static void
load_agent_close(
    struct grpc_client_call *call, int status, const char *message, void *arg)
{
	struct load_agent *a = arg;
	struct load *ld = a->ld;

	(void)call;
	a->call = NULL;
	a->closed = 1;
	if (ld->phase < LOAD_DRAIN) {
		ld->streams_lost++;
		fprintf(stderr, "coord_load: agent %s: stream ended: %s %s\n",
		    a->node, grpc_status_str(status), message);
	}
	/* Not every agent can be welcomed now: the run is off. */
	if (ld->phase == LOAD_CONNECTING)
		load_fail(ld,
		    "an agent stream ended before every agent "
		    "was welcomed");
}

static const struct grpc_client_handler load_agent_handler = {
    .message = load_agent_message,
    .drained = load_agent_drained,
    .close = load_agent_close,
};

/* ---- the event watch ---- */

static void load_watch_open(struct load *ld);

static void
load_watch_message(
    struct grpc_client_call *call, const uint8_t *msg, size_t len, void *arg)
{
	struct load *ld = arg;
	uint64_t now = load_mono_ns();
	Troika__V1__Event *e;
	const char *m;

	(void)call;
	if ((e = troika__v1__event__unpack(NULL, len, msg)) == NULL)
		return;
	ld->events_seen++;
	if (strcmp(e->kind, "check_status") == 0 &&
	    (m = strstr(e->message, LOAD_MARKER_TAG)) != NULL)
		load_marker_seen(
		    ld, strtoull(m + strlen(LOAD_MARKER_TAG), NULL, 10), now);
	troika__v1__event__free_unpacked(e, NULL);
}

static void
load_watch_close(
    struct grpc_client_call *call, int status, const char *message, void *arg)
{
	struct load *ld = arg;

	(void)call;
	ld->watch = NULL;
	if (ld->phase >= LOAD_DONE)
		return;
	/*
	 * Cut off as too slow (the coordinator keeps the last 1024 events;
	 * at saturation that is a few milliseconds' worth): the events we
	 * missed are gone, so watch again from now on and let the missing
	 * markers be counted as not seen.
	 */
	if (ld->watch_cuts++ == 0)
		fprintf(stderr,
		    "coord_load: watch ended: %s %s; watching again "
		    "(further cuts are only counted)\n",
		    grpc_status_str(status), message);
	load_watch_open(ld);
}

static const struct grpc_client_handler load_watch_handler = {
    .message = load_watch_message,
    .close = load_watch_close,
};

static void
load_watch_open(struct load *ld)
{
	Troika__V1__WatchEventsRequest req =
	    TROIKA__V1__WATCH_EVENTS_REQUEST__INIT;
	char *kinds[] = {"check_status"};

	if (ld->watch_cl == NULL || !grpc_client_usable(ld->watch_cl) ||
	    (ld->watch = grpc_client_call_open(ld->watch_cl, LOAD_PATH_WATCH, 0,
	         &load_watch_handler, ld)) == NULL) {
		load_fail(ld, "cannot watch events: the connection is gone");
		return;
	}
	/* Only events from now on (after_seq 0). */
	req.kinds = kinds;
	req.n_kinds = 1;
	if (load_send_packed(ld->watch, &req.base) < 0 ||
	    grpc_client_call_half_close(ld->watch) < 0)
		grpc_client_call_cancel(ld->watch);
}

/* ---- phases ---- */

static void
load_phase_after(struct load *ld, double s)
{
	struct timeval tv;

	tv.tv_sec = (time_t)s;
	tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
	evtimer_add(ld->phase_ev, &tv);
}

static void
load_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct load *ld = arg;
	uint64_t due;

	(void)fd;
	(void)what;
	if (ld->phase != LOAD_WARMUP && ld->phase != LOAD_MEASURE)
		return;
	due = (uint64_t)(ld->rate * (double)(load_mono_ns() - ld->t_load_ns) /
	    1e9);
	/* Spread over the agents in turn, as independent agents would be. */
	for (; ld->scheduled < due; ld->scheduled++)
		ld->agents[ld->scheduled % (uint64_t)ld->nagents].owed++;
	for (int i = 0; i < ld->nagents; i++)
		load_agent_pump(&ld->agents[i]);
}

static void
load_start_load(struct load *ld)
{
	struct timeval tick = {0, LOAD_TICK_US};

	printf("ready %d %d\n", ld->nagents, ld->nconns);
	fflush(stdout);
	ld->phase = LOAD_WARMUP;
	ld->t_load_ns = ld->t_phase_ns = load_mono_ns();
	if (ld->rate > 0)
		evtimer_add(ld->tick_ev, &tick);
	for (int i = 0; i < ld->nagents; i++)
		load_agent_pump(&ld->agents[i]);
	load_phase_after(ld, ld->warmup_s);
}

static int
load_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
load_pct_ms(const struct load *ld, double p)
{
	size_t i;

	if (ld->nlat == 0)
		return -1;
	i = (size_t)(p * (double)(ld->nlat - 1) + 0.5);
	return (double)ld->lat_ns[i] / 1e6;
}

static void
load_report(struct load *ld)
{
	double window = (double)(ld->t_end_ns - ld->t_start_ns) / 1e9;

	if (ld->nlat > 0)
		qsort(ld->lat_ns, ld->nlat, sizeof(*ld->lat_ns), load_u64_cmp);
	printf("result {\"agents\": %d, \"conns\": %d, \"checks\": %d, "
	       "\"rate\": %.0f, \"mark\": %u, \"window_s\": %.3f, "
	       "\"results_sent\": %" PRIu64 ", \"sent_per_s\": %.0f, "
	       "\"markers_sent\": %" PRIu64 ", \"markers_seen\": %" PRIu64
	       ", \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, "
	       "\"p999_ms\": %.3f, \"max_ms\": %.3f, "
	       "\"eagain\": %" PRIu64 ", \"send_errors\": %" PRIu64
	       ", \"streams_lost\": %" PRIu64 ", \"watch_cuts\": %" PRIu64
	       ", \"events_seen\": %" PRIu64 "}\n",
	    ld->nagents, ld->nconns, ld->nchecks, ld->rate, ld->mark, window,
	    ld->window_results,
	    window > 0 ? (double)ld->window_results / window : 0,
	    ld->window_markers, ld->window_seen, load_pct_ms(ld, 0.5),
	    load_pct_ms(ld, 0.9), load_pct_ms(ld, 0.99), load_pct_ms(ld, 0.999),
	    load_pct_ms(ld, 1.0), ld->eagain, ld->send_errors, ld->streams_lost,
	    ld->watch_cuts, ld->events_seen);
	fflush(stdout);
}

static void
load_phase_cb(evutil_socket_t fd, short what, void *arg)
{
	struct load *ld = arg;
	uint64_t now = load_mono_ns();
	struct timeval poll = {0, 100000};
	char why[64];

	(void)fd;
	(void)what;
	switch (ld->phase) {
	case LOAD_CONNECTING:
		snprintf(why, sizeof(why), "only %d of %d agents welcomed",
		    ld->welcomed, ld->nagents);
		load_fail(ld, why);
		return;
	case LOAD_WARMUP:
		/* The watch must be live before anything is measured. */
		if (ld->events_seen == 0) {
			if (now - ld->t_phase_ns > 10000000000ULL) {
				load_fail(ld, "no event arrived");
				return;
			}
			evtimer_add(ld->phase_ev, &poll);
			return;
		}
		ld->phase = LOAD_MEASURE;
		ld->t_start_ns = ld->t_phase_ns = now;
		printf("window_start\n");
		fflush(stdout);
		load_phase_after(ld, ld->seconds);
		return;
	case LOAD_MEASURE:
		ld->t_end_ns = now;
		ld->phase = LOAD_DRAIN;
		ld->t_phase_ns = now;
		evtimer_del(ld->tick_ev);
		printf("window_end\n");
		fflush(stdout);
		evtimer_add(ld->phase_ev, &poll);
		return;
	case LOAD_DRAIN:
		/* Until every marker of the window came back, or drain_s. */
		if (ld->window_seen < ld->window_markers &&
		    (double)(now - ld->t_phase_ns) / 1e9 < ld->drain_s) {
			evtimer_add(ld->phase_ev, &poll);
			return;
		}
		ld->phase = LOAD_DONE;
		load_report(ld);
		event_base_loopbreak(ld->base);
		return;
	default:
		return;
	}
}

static void
load_conn_down(struct grpc_client *cl, const char *reason, void *arg)
{
	struct load *ld = arg;

	(void)cl;
	if (ld->phase < LOAD_DRAIN)
		fprintf(stderr, "coord_load: connection down: %s\n", reason);
}

/*
 * A connection of our own, with TCP_NODELAY: a result is one small
 * write, and Nagle's algorithm would hold it back while an earlier one
 * is unacknowledged (up to the peer's delayed ACK, 40 ms on Linux). The
 * connect blocks, which is fine before the load starts.
 */
static struct grpc_client *
load_connect(struct load *ld, const struct grpc_client_config *cfg)
{
	struct addrinfo hints, *ai = NULL;
	struct bufferevent *bev;
	char port[16], authority[300];
	int fd = -1, one = 1, r;

	if (ld->agent_connect)
		return grpc_client_connect(ld->base, ld->host, ld->port, NULL,
		    NULL, cfg, load_conn_down, ld);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", ld->port);
	if ((r = getaddrinfo(ld->host, port, &hints, &ai)) != 0) {
		fprintf(
		    stderr, "coord_load: %s: %s\n", ld->host, gai_strerror(r));
		errno = EINVAL;
		return NULL;
	}
	if ((fd = socket(ai->ai_family, SOCK_STREAM, 0)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
	    evutil_make_socket_nonblocking(fd) < 0) {
		r = errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		errno = r;
		return NULL;
	}
	freeaddrinfo(ai);
	/* The options grpc_client_connect() gives its own. */
	if ((bev = bufferevent_socket_new(ld->base, fd,
	         BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)) == NULL) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	snprintf(authority, sizeof(authority),
	    strchr(ld->host, ':') != NULL ? "[%s]:%d" : "%s:%d", ld->host,
	    ld->port);
	return grpc_client_adopt(
	    ld->base, bev, authority, cfg, load_conn_down, ld);
}

/*
 * Timers to the microsecond (timerfd): with plain epoll timeouts a 1 ms
 * pacing tick fired every 4-8 ms on the project's VM, and the results of
 * several ticks went out as one burst.
 */
static struct event_base *
load_base_new(void)
{
	struct event_config *cfg;
	struct event_base *base;

	if ((cfg = event_config_new()) == NULL)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: coord_load [--agents N] [--conns N] [--checks N] "
	    "[--rate R] [--mark N] [--warmup S] [--seconds S] [--drain S] "
	    "[--send-cap BYTES] [--agent-connect] HOST PORT\n");
	exit(2);
}

static void
load_free(struct load *ld)
{
	/* Our streams end CANCELLED: the coordinator sees agents go. */
	grpc_client_free(ld->watch_cl);
	for (int i = 0; ld->conns != NULL && i < ld->nconns; i++)
		grpc_client_free(ld->conns[i]);
	free(ld->conns);
	free(ld->agents);
	if (ld->tick_ev != NULL)
		event_free(ld->tick_ev);
	if (ld->phase_ev != NULL)
		event_free(ld->phase_ev);
	/*
	 * A bufferevent with a deferred callback still queued (a loop
	 * broken off early) is freed only once that callback ran: one more
	 * turn, with none of our events left.
	 */
	if (ld->base != NULL) {
		event_base_loop(ld->base, EVLOOP_NONBLOCK);
		event_base_free(ld->base);
	}
	free(ld->marker_sent_ns);
	free(ld->marker_seen);
	free(ld->lat_ns);
}

int
main(int argc, char **argv)
{
	struct grpc_client_config cfg;
	struct load ld;
	int i, rc = 1;

	signal(SIGPIPE, SIG_IGN);
	log_init("coord_load", LOG_TARGET_STDERR, 4);
	memset(&ld, 0, sizeof(ld));
	ld.nagents = 100;
	ld.nchecks = 10;
	ld.mark = 20;
	ld.warmup_s = 3;
	ld.seconds = 10;
	ld.drain_s = 5;
	ld.send_cap = 64 * 1024;
	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *o = argv[i];

		if (strcmp(o, "--agent-connect") == 0) {
			ld.agent_connect = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (strcmp(o, "--agents") == 0)
			ld.nagents = atoi(argv[++i]);
		else if (strcmp(o, "--conns") == 0)
			ld.nconns = atoi(argv[++i]);
		else if (strcmp(o, "--checks") == 0)
			ld.nchecks = atoi(argv[++i]);
		else if (strcmp(o, "--rate") == 0)
			ld.rate = atof(argv[++i]);
		else if (strcmp(o, "--mark") == 0)
			ld.mark = (unsigned)atoi(argv[++i]);
		else if (strcmp(o, "--warmup") == 0)
			ld.warmup_s = atof(argv[++i]);
		else if (strcmp(o, "--seconds") == 0)
			ld.seconds = atof(argv[++i]);
		else if (strcmp(o, "--drain") == 0)
			ld.drain_s = atof(argv[++i]);
		else if (strcmp(o, "--send-cap") == 0)
			ld.send_cap = (size_t)atol(argv[++i]);
		else
			usage();
	}
	if (argc - i != 2)
		usage();
	if (ld.nconns <= 0 || ld.nconns > ld.nagents)
		ld.nconns = ld.nagents;
	if (ld.nagents < 1 || ld.nchecks < 1 || ld.rate < 0 ||
	    ld.seconds <= 0 || ld.warmup_s < 0 || ld.send_cap < 1024)
		usage();
	ld.host = argv[i];
	ld.port = atoi(argv[i + 1]);

	grpc_client_config_default(&cfg);
	cfg.call_send_cap = ld.send_cap;
	/* The load is what is measured: no PINGs in between. */
	cfg.keepalive_ms = 0;
	ld.conns = calloc((size_t)ld.nconns, sizeof(*ld.conns));
	ld.agents = calloc((size_t)ld.nagents, sizeof(*ld.agents));
	if (ld.conns == NULL || ld.agents == NULL ||
	    (ld.base = load_base_new()) == NULL ||
	    (ld.tick_ev = event_new(
	         ld.base, -1, EV_PERSIST, load_tick_cb, &ld)) == NULL ||
	    (ld.phase_ev = evtimer_new(ld.base, load_phase_cb, &ld)) == NULL)
		goto out;
	if ((ld.watch_cl = load_connect(&ld, &cfg)) == NULL) {
		fprintf(stderr, "coord_load: connect: %s\n", strerror(errno));
		goto out;
	}
	load_watch_open(&ld);
	if (ld.failed)
		goto out;
	for (int c = 0; c < ld.nconns; c++) {
		if ((ld.conns[c] = load_connect(&ld, &cfg)) == NULL) {
			fprintf(stderr, "coord_load: connect: %s\n",
			    strerror(errno));
			goto out;
		}
	}
	for (int a = 0; a < ld.nagents; a++) {
		struct load_agent *ag = &ld.agents[a];

		ag->ld = &ld;
		ag->index = a;
		snprintf(ag->node, sizeof(ag->node), "bench-%03d", a);
		ag->call = grpc_client_call_open(ld.conns[a % ld.nconns],
		    LOAD_PATH_CONNECT, 0, &load_agent_handler, ag);
		if (ag->call == NULL) {
			fprintf(
			    stderr, "coord_load: open: %s\n", strerror(errno));
			goto out;
		}
		load_agent_hello(ag);
	}
	/* Everyone welcomed within 30 s, or the run is off. */
	load_phase_after(&ld, 30);
	event_base_dispatch(ld.base);
	rc = ld.failed || ld.phase != LOAD_DONE ? 1 : 0;
out:
	ld.phase = LOAD_DONE;
	load_free(&ld);
	return rc;
}
