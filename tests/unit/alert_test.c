/*
 * Alert sinks (core/lib/alert*.c): the JSON writer, the Alertmanager
 * payloads and their resolve logic, and the hooks themselves on a fresh event base: a webhook against an
 * evhttp server in this process, exec hooks against /bin/sh, retries,
 * drops, the queue bound and the metrics. Every test ends with nothing
 * pending and, under ASan, nothing leaked.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "alert.h"
#include "spawn.h"

static char *
take(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	assert_non_null(s);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

static void
assert_json_string(const char *in, const char *want)
{
	struct evbuffer *b = evbuffer_new();
	char *got;

	alert_json_string(b, in);
	got = take(b);
	assert_string_equal(got, want);
	free(got);
	evbuffer_free(b);
}

/* The escaping itself is json_quote_test.c's; here only what alert adds. */
static void
test_json_string(void **state)
{
	(void)state;
	assert_json_string(NULL, "\"\"");
	assert_json_string("", "\"\"");
	assert_json_string("a\"b\n\x80", "\"a\\\"b\\n\\ufffd\"");
}

static void
test_json_time_and_event(void **state)
{
	static const struct alert_field f[] = {
		{"from", "OK"},
		{"to", "CRITICAL"},
		{"we\"ird", "a\nb"},
	};
	const struct alert_event ev = {
		.seq = 42,
		.time_ns = 1764188000123456789ull,
		.kind = "check_status",
		.severity = ALERT_CRITICAL,
		.node = "node-1",
		.check = NULL,
		.message = "web on node-1: OK -> CRITICAL: \"refused\"",
		.coordinator = "coord-1",
		.fields = f,
		.nfields = 3,
	};
	struct evbuffer *b = evbuffer_new();
	char *s;

	(void)state;
	alert_json_time(b, 0);
	s = take(b);
	assert_string_equal(s, "\"1970-01-01T00:00:00.000Z\"");
	free(s);
	alert_json_time(b, 1764188000123456789ull);
	s = take(b);
	assert_string_equal(s, "\"2025-11-26T20:13:20.123Z\"");
	free(s);
	alert_json_event(b, &ev);
	s = take(b);
	assert_string_equal(s, "{\"seq\":42,"
	    "\"time\":\"2025-11-26T20:13:20.123Z\","
	    "\"time_unix_nano\":\"1764188000123456789\","
	    "\"kind\":\"check_status\",\"severity\":\"critical\","
	    "\"node\":\"node-1\",\"check\":\"\","
	    "\"message\":\"web on node-1: OK -> CRITICAL: \\\"refused\\\"\","
	    "\"coordinator\":\"coord-1\","
	    "\"fields\":{\"from\":\"OK\",\"to\":\"CRITICAL\","
	    "\"we\\\"ird\":\"a\\nb\"}}");
	free(s);
	evbuffer_free(b);
	assert_string_equal(alert_severity_str(0), "unspecified");
	assert_int_equal(alert_severity_from_str("critical"), ALERT_CRITICAL);
	assert_int_equal(alert_severity_from_str("CRITICAL"), -1);
}

/* 1970-01-01T00:01:40: easy to read in the payloads below. */
#define T0 (100ull * 1000000000ull)
#define SEC 1000000000ull

static char *
am_event(struct alert_am *am, const char *kind, int sev, const char *node,
    const char *check, const char *cluster, int fire, uint64_t now,
    int want)
{
	const struct alert_field f[] = {
		{"cluster", cluster},
		{"fencing-token", "7"},
	};
	const struct alert_event ev = {
		.seq = 9,
		.time_ns = now,
		.kind = kind,
		.severity = sev,
		.node = node,
		.check = check,
		.message = "msg",
		.coordinator = "c1",
		.fields = f,
		.nfields = cluster != NULL ? 2 : 0,
	};
	struct evbuffer *b = evbuffer_new();
	char *s;

	assert_int_equal(alert_am_event(am, &ev, fire, now, b), want);
	s = take(b);
	evbuffer_free(b);
	if (!want) {
		assert_string_equal(s, "");
		free(s);
		return NULL;
	}
	return s;
}

#define FIRING_WEB(sev, starts, ends)                                    \
	"{\"labels\":{\"alertname\":\"troika_check_status\","            \
	"\"severity\":\"" sev "\",\"node\":\"n1\",\"check\":\"web\"},"   \
	"\"annotations\":{\"summary\":\"msg\",\"coordinator\":\"c1\","   \
	"\"seq\":\"9\"},\"startsAt\":\"" starts "\",\"endsAt\":\"" ends  \
	"\"}"

static void
test_am_fire_resend_resolve(void **state)
{
	struct alert_am *am = alert_am_new(10 * 1000);
	struct evbuffer *b = evbuffer_new();
	char *s;

	(void)state;
	/* CRITICAL fires: active, endsAt = now + 4 * resend (40 s). */
	s = am_event(am, "check_status", ALERT_CRITICAL, "n1", "web", NULL, 1,
	    T0, 1);
	assert_string_equal(s, "[" FIRING_WEB("critical",
	    "1970-01-01T00:01:40.000Z", "1970-01-01T00:02:20.000Z") "]");
	free(s);
	assert_int_equal(alert_am_active(am), 1);
	/* Again: the same alert, its first start kept. */
	s = am_event(am, "check_status", ALERT_CRITICAL, "n1", "web", NULL, 1,
	    T0 + 5 * SEC, 1);
	assert_string_equal(s, "[" FIRING_WEB("critical",
	    "1970-01-01T00:01:40.000Z", "1970-01-01T00:02:25.000Z") "]");
	free(s);
	assert_int_equal(alert_am_active(am), 1);
	/* The resend moves endsAt on. */
	assert_int_equal(alert_am_resend(am, T0 + 10 * SEC, b), 1);
	s = take(b);
	assert_string_equal(s, "[" FIRING_WEB("critical",
	    "1970-01-01T00:01:40.000Z", "1970-01-01T00:02:30.000Z") "]");
	free(s);
	/* WARNING now: other labels, so the CRITICAL one ends. */
	s = am_event(am, "check_status", ALERT_WARNING, "n1", "web", NULL, 1,
	    T0 + 20 * SEC, 1);
	assert_string_equal(s, "[" FIRING_WEB("critical",
	    "1970-01-01T00:01:40.000Z", "1970-01-01T00:02:00.000Z") ","
	    FIRING_WEB("warning", "1970-01-01T00:02:00.000Z",
	    "1970-01-01T00:02:40.000Z") "]");
	free(s);
	assert_int_equal(alert_am_active(am), 1);
	/* Another check's OK resolves nothing and fires nothing. */
	assert_null(am_event(am, "check_status", ALERT_INFO, "n1", "db", NULL,
	    1, T0 + 21 * SEC, 0));
	/* INFO of the same check: resolved (endsAt now), even unwanted. */
	s = am_event(am, "check_status", ALERT_INFO, "n1", "web", NULL, 0,
	    T0 + 30 * SEC, 1);
	assert_string_equal(s, "[" FIRING_WEB("warning",
	    "1970-01-01T00:02:00.000Z", "1970-01-01T00:02:10.000Z") "]");
	free(s);
	assert_int_equal(alert_am_active(am), 0);
	assert_int_equal(alert_am_resend(am, T0 + 40 * SEC, b), 0);
	assert_int_equal(evbuffer_get_length(b), 0);
	/* A filtered-out WARNING is neither sent nor kept. */
	assert_null(am_event(am, "check_status", ALERT_WARNING, "n1", "web",
	    NULL, 0, T0, 0));
	assert_int_equal(alert_am_active(am), 0);
	evbuffer_free(b);
	alert_am_free(am);
	alert_am_free(NULL);
}

static void
test_am_pairs_and_notices(void **state)
{
	struct alert_am *am = alert_am_new(60 * 1000);
	char *s;

	(void)state;
	assert_true(alert_am_resolvable("node_disconnected"));
	assert_true(alert_am_resolvable("check_status"));
	assert_false(alert_am_resolvable("primary_changed"));
	assert_string_equal(alert_am_resolver("node_returned", 0), "node_lost");
	assert_null(alert_am_resolver("primary_changed", 0));

	/* A notice: sent once, expires after 4 * resend, never active. */
	s = am_event(am, "primary_changed", ALERT_WARNING, "n2", "redis",
	    "cache", 1, T0, 1);
	assert_string_equal(s, "[{\"labels\":{\"alertname\":"
	    "\"troika_primary_changed\",\"severity\":\"warning\","
	    "\"node\":\"n2\",\"check\":\"redis\",\"cluster\":\"cache\"},"
	    "\"annotations\":{\"summary\":\"msg\",\"coordinator\":\"c1\","
	    "\"seq\":\"9\",\"cluster\":\"cache\",\"fencing_token\":\"7\"},"
	    "\"startsAt\":\"1970-01-01T00:01:40.000Z\","
	    "\"endsAt\":\"1970-01-01T00:05:40.000Z\"}]");
	free(s);
	assert_int_equal(alert_am_active(am), 0);

	/* node_disconnected fires; node_connected (INFO) resolves it. */
	s = am_event(am, "node_disconnected", ALERT_WARNING, "n3", NULL, NULL,
	    1, T0, 1);
	assert_non_null(strstr(s, "\"alertname\":\"troika_node_disconnected\""));
	assert_null(strstr(s, "\"check\""));
	free(s);
	assert_int_equal(alert_am_active(am), 1);
	/* Another node's return resolves nothing. */
	assert_null(am_event(am, "node_connected", ALERT_INFO, "n1", NULL,
	    NULL, 0, T0, 0));
	s = am_event(am, "node_connected", ALERT_INFO, "n3", NULL, NULL, 1,
	    T0 + SEC, 1);
	assert_non_null(strstr(s, "\"endsAt\":\"1970-01-01T00:01:41.000Z\""));
	assert_non_null(strstr(s, "troika_node_disconnected"));
	/* The INFO event resolved something: it fires nothing itself. */
	assert_null(strstr(s, "troika_node_connected"));
	free(s);
	assert_int_equal(alert_am_active(am), 0);
	/* With min_severity info, an INFO notice of its own. */
	s = am_event(am, "node_connected", ALERT_INFO, "n3", NULL, NULL, 1,
	    T0, 1);
	assert_non_null(strstr(s, "troika_node_connected"));
	free(s);
	assert_int_equal(alert_am_active(am), 0);

	/* A failed action_done (WARNING) ends action_started and is a
	 * notice of its own; the cluster label keeps clusters apart. */
	free(am_event(am, "action_started", ALERT_WARNING, NULL, "db", "a",
	    1, T0, 1));
	free(am_event(am, "action_started", ALERT_WARNING, NULL, "db", "b",
	    1, T0, 1));
	assert_int_equal(alert_am_active(am), 2);
	s = am_event(am, "action_done", ALERT_WARNING, NULL, "db", "a", 1,
	    T0 + SEC, 1);
	assert_non_null(strstr(s, "troika_action_started"));
	assert_non_null(strstr(s, "troika_action_done"));
	free(s);
	assert_int_equal(alert_am_active(am), 1);
	alert_am_free(am);
}

/* ---- the hooks on an event loop ---- */

struct server {
	struct event_base *base;
	struct evhttp *http;
	int port;
	int status;      /* reply with this */
	int requests;
	char *last_body;
	char *last_uri;
	char *last_auth;
	char *last_type;
};

static void
server_cb(struct evhttp_request *req, void *arg)
{
	struct server *sv = arg;
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *v;

	sv->requests++;
	free(sv->last_body);
	free(sv->last_uri);
	free(sv->last_auth);
	free(sv->last_type);
	sv->last_body = take(evhttp_request_get_input_buffer(req));
	sv->last_uri = strdup(evhttp_request_get_uri(req));
	v = evhttp_find_header(h, "Authorization");
	sv->last_auth = v != NULL ? strdup(v) : NULL;
	v = evhttp_find_header(h, "Content-Type");
	sv->last_type = v != NULL ? strdup(v) : NULL;
	evhttp_send_reply(req, sv->status, "x", NULL);
}

static void
server_start(struct server *sv, struct event_base *base)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	memset(sv, 0, sizeof(*sv));
	sv->base = base;
	sv->status = 200;
	assert_non_null(sv->http = evhttp_new(base));
	evhttp_set_gencb(sv->http, server_cb, sv);
	assert_non_null(bs = evhttp_bind_socket_with_handle(sv->http,
	    "127.0.0.1", 0));
	assert_int_equal(getsockname(evhttp_bound_socket_get_fd(bs),
	    (struct sockaddr *)&ss, &len), 0);
	sv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void
server_stop(struct server *sv)
{
	evhttp_free(sv->http);
	free(sv->last_body);
	free(sv->last_uri);
	free(sv->last_auth);
	free(sv->last_type);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Run the loop until the hooks have nothing pending (at most 10 s). */
static void
run_until_idle(struct event_base *base, struct alert_hooks *ah)
{
	struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	struct timeval tv = {0, 10000};

	assert_non_null(tick);
	event_add(tick, &tv);
	for (int i = 0; i < 1000 && alert_hooks_pending(ah) > 0; i++)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(tick);
	assert_int_equal(alert_hooks_pending(ah), 0);
}

static const struct alert_field test_fields[] = {{"from", "OK"},
    {"to", "CRITICAL"}};

static const struct alert_event test_event = {
	.seq = 3,
	.time_ns = T0,
	.kind = "check_status",
	.severity = ALERT_CRITICAL,
	.node = "node-1",
	.check = "web",
	.message = "it's \"down\"\n",
	.coordinator = "coord-1",
	.fields = test_fields,
	.nfields = 2,
};

static char *
metrics_text(const struct alert_hooks *ah)
{
	struct evbuffer *b = evbuffer_new();
	char *s;

	alert_hooks_write_metrics(ah, b);
	s = take(b);
	evbuffer_free(b);
	return s;
}

static void
assert_contains(const char *s, const char *want)
{
	if (strstr(s, want) == NULL)
		fail_msg("'%s' not in:\n%s", want, s);
}

static void
base_finish(struct event_base *base)
{
	assert_int_equal(spawn_active(), 0);
	/* libevent finishes freeing bufferevents (evhttp's) from the loop. */
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(event_base_get_num_events(base,
	    EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), 0);
	event_base_free(base);
}

static int sending_flag;

static int
sending_cb(void *arg)
{
	(void)arg;
	return sending_flag;
}

static void
test_webhook_and_alertmanager(void **state)
{
	struct event_base *base = event_base_new();
	struct alert_hook_conf hc[2];
	char url[64], amurl[64], *m;
	char *hdrs[] = {"Authorization: Bearer t0k"};
	char *kinds[] = {"check_status"};
	struct alert_hooks *ah;
	struct server sv;
	struct alert_event ev = test_event;

	(void)state;
	server_start(&sv, base);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", sv.port);
	snprintf(amurl, sizeof(amurl), "http://127.0.0.1:%d/", sv.port);
	alert_hook_conf_default(&hc[0]);
	hc[0].name = "web";
	hc[0].kind = ALERT_WEBHOOK;
	hc[0].url = url;
	hc[0].headers = hdrs;
	hc[0].nheaders = 1;
	hc[0].kinds = kinds;
	hc[0].nkinds = 1;
	alert_hook_conf_default(&hc[1]);
	hc[1].name = "am";
	hc[1].kind = ALERT_ALERTMANAGER;
	hc[1].url = amurl;
	sending_flag = 1;
	assert_non_null(ah = alert_hooks_new(base, hc, 2, sending_cb, NULL));

	alert_hooks_emit(ah, &ev);
	assert_int_equal(alert_hooks_pending(ah), 2);
	run_until_idle(base, ah);
	assert_int_equal(sv.requests, 2);
	m = metrics_text(ah);
	assert_contains(m, "troika_alert_deliveries_total{hook=\"web\","
	    "kind=\"webhook\",result=\"ok\"} 1\n");
	assert_contains(m, "troika_alert_deliveries_total{hook=\"am\","
	    "kind=\"alertmanager\",result=\"ok\"} 1\n");
	assert_contains(m, "troika_alert_active{hook=\"am\"} 1\n");
	assert_contains(m, "troika_alert_queue_length{hook=\"web\"} 0\n");
	assert_contains(m, "troika_alert_sending 1\n");
	free(m);

	/* A kind the webhook does not want: only Alertmanager hears. */
	ev.kind = "node_lost";
	ev.severity = ALERT_CRITICAL;
	ev.check = NULL;
	sv.requests = 0;
	alert_hooks_emit(ah, &ev);
	run_until_idle(base, ah);
	assert_int_equal(sv.requests, 1);
	assert_string_equal(sv.last_uri, "/api/v2/alerts");
	assert_string_equal(sv.last_type, "application/json");
	assert_null(sv.last_auth);
	assert_contains(sv.last_body, "\"alertname\":\"troika_node_lost\"");

	/* The webhook's own request: body and headers. */
	ev = test_event;
	ev.severity = ALERT_WARNING;
	sending_flag = 1;
	alert_hooks_free(ah);
	assert_non_null(ah = alert_hooks_new(base, hc, 1, sending_cb, NULL));
	alert_hooks_emit(ah, &ev);
	run_until_idle(base, ah);
	assert_string_equal(sv.last_uri, "/hook");
	assert_string_equal(sv.last_auth, "Bearer t0k");
	assert_string_equal(sv.last_body, "{\"seq\":3,"
	    "\"time\":\"1970-01-01T00:01:40.000Z\","
	    "\"time_unix_nano\":\"100000000000\",\"kind\":\"check_status\","
	    "\"severity\":\"warning\",\"node\":\"node-1\",\"check\":\"web\","
	    "\"message\":\"it's \\\"down\\\"\\n\",\"coordinator\":\"coord-1\","
	    "\"fields\":{\"from\":\"OK\",\"to\":\"CRITICAL\"}}\n");
	/* Below min_severity: nothing. */
	ev.severity = ALERT_INFO;
	sv.requests = 0;
	alert_hooks_emit(ah, &ev);
	assert_int_equal(alert_hooks_pending(ah), 0);
	/* Not the sender: nothing either. */
	ev.severity = ALERT_CRITICAL;
	sending_flag = 0;
	alert_hooks_emit(ah, &ev);
	assert_int_equal(alert_hooks_pending(ah), 0);
	assert_int_equal(sv.requests, 0);
	m = metrics_text(ah);
	assert_contains(m, "troika_alert_sending 0\n");
	free(m);
	alert_hooks_free(ah);
	server_stop(&sv);
	base_finish(base);
}

/* Alertmanager's active set follows events while not sending, and goes
 * out as soon as this coordinator sends again. */
static void
test_am_takeover(void **state)
{
	struct event_base *base = event_base_new();
	struct alert_hook_conf hc;
	struct alert_hooks *ah;
	struct server sv;
	struct alert_event ev = test_event;
	char url[64];

	(void)state;
	server_start(&sv, base);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", sv.port);
	alert_hook_conf_default(&hc);
	hc.name = "am";
	hc.kind = ALERT_ALERTMANAGER;
	hc.url = url;
	sending_flag = 0;
	assert_non_null(ah = alert_hooks_new(base, &hc, 1, sending_cb, NULL));
	alert_hooks_emit(ah, &ev);
	assert_int_equal(alert_hooks_pending(ah), 0);
	/* Now the leader: the next event brings the active one along. */
	sending_flag = 1;
	ev.kind = "tilt";
	ev.severity = ALERT_INFO;
	alert_hooks_emit(ah, &ev);
	run_until_idle(base, ah);
	assert_int_equal(sv.requests, 1);
	assert_string_equal(sv.last_uri, "/api/v2/alerts");
	assert_contains(sv.last_body, "\"alertname\":\"troika_check_status\"");
	alert_hooks_free(ah);
	server_stop(&sv);
	base_finish(base);
}

static void
test_webhook_retries_then_drops(void **state)
{
	struct event_base *base = event_base_new();
	struct alert_hook_conf hc[2];
	struct alert_hooks *ah;
	struct server sv;
	char url[64], dead[64], *m;

	(void)state;
	server_start(&sv, base);
	sv.status = 500;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", sv.port);
	alert_hook_conf_default(&hc[0]);
	hc[0].name = "err";
	hc[0].kind = ALERT_WEBHOOK;
	hc[0].url = url;
	hc[0].retries = 2;
	hc[0].backoff_ms = 10;
	/* Nobody listens on port 1 here: connection refused. */
	snprintf(dead, sizeof(dead), "http://127.0.0.1:1/");
	alert_hook_conf_default(&hc[1]);
	hc[1].name = "dead";
	hc[1].kind = ALERT_WEBHOOK;
	hc[1].url = dead;
	hc[1].retries = 1;
	hc[1].backoff_ms = 10;
	hc[1].queue = 1;
	sending_flag = 1;
	assert_non_null(ah = alert_hooks_new(base, hc, 2, sending_cb, NULL));
	alert_hooks_emit(ah, &test_event);
	/* The dead hook's queue holds one: the second payload is dropped. */
	alert_hooks_emit(ah, &test_event);
	run_until_idle(base, ah);
	/* 500: two payloads, three attempts each. */
	assert_int_equal(sv.requests, 6);
	m = metrics_text(ah);
	assert_contains(m, "troika_alert_deliveries_total{hook=\"err\","
	    "kind=\"webhook\",result=\"failed\"} 6\n");
	assert_contains(m, "troika_alert_dropped_total{hook=\"err\","
	    "reason=\"retries\"} 2\n");
	assert_contains(m, "troika_alert_dropped_total{hook=\"err\","
	    "reason=\"queue_full\"} 0\n");
	assert_contains(m, "troika_alert_deliveries_total{hook=\"dead\","
	    "kind=\"webhook\",result=\"failed\"} 2\n");
	assert_contains(m, "troika_alert_dropped_total{hook=\"dead\","
	    "reason=\"retries\"} 1\n");
	assert_contains(m, "troika_alert_dropped_total{hook=\"dead\","
	    "reason=\"queue_full\"} 1\n");
	free(m);
	alert_hooks_free(ah);
	server_stop(&sv);
	base_finish(base);
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;
	FILE *o;
	int ch;

	if (f == NULL)
		return NULL;
	assert_non_null(o = open_memstream(&buf, &len));
	while ((ch = fgetc(f)) != EOF)
		fputc(ch, o);
	fclose(o);
	fclose(f);
	return buf;
}

static void
test_exec_hook(void **state)
{
	struct event_base *base = event_base_new();
	char dir[] = "/tmp/alert_testXXXXXX", out[128], script[512];
	char *argv[] = {"/bin/sh", "-c", script, "hook"};
	struct alert_hook_conf hc;
	struct alert_hooks *ah;
	char *got, *m;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/out", dir);
	/* stdin, then the environment, then fail if told to. */
	snprintf(script, sizeof(script),
	    "cat > %s; printf '%%s|%%s|%%s|%%s|%%s|%%s|%%s\\n' "
	    "\"$TROIKA_EVENT_SEQ\" \"$TROIKA_EVENT_KIND\" "
	    "\"$TROIKA_EVENT_SEVERITY\" \"$TROIKA_EVENT_NODE\" "
	    "\"$TROIKA_EVENT_FIELD_TO\" \"$TROIKA_HOOK\" "
	    "\"$TROIKA_EVENT_TIME\" >> %s; "
	    "test \"$TROIKA_EVENT_NODE\" != bad || { echo nope; exit 3; }",
	    out, out);
	alert_hook_conf_default(&hc);
	hc.name = "script";
	hc.kind = ALERT_EXEC;
	hc.argv = argv;
	hc.nargv = 4;
	hc.retries = 1;
	hc.backoff_ms = 10;
	sending_flag = 1;
	assert_non_null(ah = alert_hooks_new(base, &hc, 1, sending_cb, NULL));
	alert_hooks_emit(ah, &test_event);
	run_until_idle(base, ah);
	got = read_file(out);
	assert_non_null(got);
	assert_string_equal(got, "{\"seq\":3,"
	    "\"time\":\"1970-01-01T00:01:40.000Z\","
	    "\"time_unix_nano\":\"100000000000\",\"kind\":\"check_status\","
	    "\"severity\":\"critical\",\"node\":\"node-1\",\"check\":\"web\","
	    "\"message\":\"it's \\\"down\\\"\\n\",\"coordinator\":\"coord-1\","
	    "\"fields\":{\"from\":\"OK\",\"to\":\"CRITICAL\"}}\n"
	    "3|check_status|critical|node-1|CRITICAL|script|"
	    "1970-01-01T00:01:40.000Z\n");
	free(got);
	/* A failing script: tried twice, then dropped. */
	{
		struct alert_event ev = test_event;

		ev.node = "bad";
		alert_hooks_emit(ah, &ev);
		run_until_idle(base, ah);
	}
	m = metrics_text(ah);
	assert_contains(m, "troika_alert_deliveries_total{hook=\"script\","
	    "kind=\"exec\",result=\"ok\"} 1\n");
	assert_contains(m, "troika_alert_deliveries_total{hook=\"script\","
	    "kind=\"exec\",result=\"failed\"} 2\n");
	assert_contains(m, "troika_alert_dropped_total{hook=\"script\","
	    "reason=\"retries\"} 1\n");
	/* No alertmanager hook: no active gauge sample. */
	assert_null(strstr(m, "troika_alert_active{"));
	free(m);
	alert_hooks_free(ah);
	base_finish(base);
	unlink(out);
	rmdir(dir);
}

/* A hook that hangs is killed at its timeout (TERM, then KILL). */
static void
test_exec_timeout(void **state)
{
	struct event_base *base = event_base_new();
	char *argv[] = {"/bin/sh", "-c", "trap '' TERM; sleep 30"};
	struct alert_hook_conf hc;
	struct alert_hooks *ah;
	char *m;

	(void)state;
	alert_hook_conf_default(&hc);
	hc.name = "slow";
	hc.kind = ALERT_EXEC;
	hc.argv = argv;
	hc.nargv = 3;
	hc.retries = 0;
	hc.timeout_ms = 200;
	sending_flag = 1;
	assert_non_null(ah = alert_hooks_new(base, &hc, 1, sending_cb, NULL));
	alert_hooks_emit(ah, &test_event);
	run_until_idle(base, ah);
	m = metrics_text(ah);
	assert_contains(m, "troika_alert_deliveries_total{hook=\"slow\","
	    "kind=\"exec\",result=\"failed\"} 1\n");
	assert_contains(m, "troika_alert_dropped_total{hook=\"slow\","
	    "reason=\"retries\"} 1\n");
	free(m);
	/* One in flight at free: killed, nothing leaks. */
	alert_hooks_emit(ah, &test_event);
	alert_hooks_free(ah);
	spawn_shutdown();
	base_finish(base);
	alert_hooks_free(NULL);
}

/* A program that cannot run: each payload fails and is dropped in turn;
 * a hook without argv or url is refused at the start. */
static void
test_exec_missing_and_bad_conf(void **state)
{
	struct event_base *base = event_base_new();
	char *argv[] = {"/nonexistent/troika-hook"};
	struct alert_hook_conf hc;
	struct alert_hooks *ah;
	char *m;

	(void)state;
	alert_hook_conf_default(&hc);
	hc.name = "missing";
	hc.kind = ALERT_EXEC;
	hc.argv = argv;
	hc.nargv = 1;
	hc.retries = 0;
	sending_flag = 1;
	assert_non_null(ah = alert_hooks_new(base, &hc, 1, sending_cb, NULL));
	for (int i = 0; i < 5; i++)
		alert_hooks_emit(ah, &test_event);
	assert_int_equal(alert_hooks_pending(ah), 5);
	run_until_idle(base, ah);
	m = metrics_text(ah);
	assert_contains(m, "troika_alert_deliveries_total{hook=\"missing\","
	    "kind=\"exec\",result=\"failed\"} 5\n");
	assert_contains(m, "troika_alert_dropped_total{hook=\"missing\","
	    "reason=\"retries\"} 5\n");
	free(m);
	alert_hooks_free(ah);

	hc.nargv = 0;
	errno = 0;
	assert_null(alert_hooks_new(base, &hc, 1, sending_cb, NULL));
	assert_int_equal(errno, EINVAL);
	hc.kind = ALERT_WEBHOOK;
	assert_null(alert_hooks_new(base, &hc, 1, sending_cb, NULL));
	assert_int_equal(errno, EINVAL);
	base_finish(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_string),
		cmocka_unit_test(test_json_time_and_event),
		cmocka_unit_test(test_am_fire_resend_resolve),
		cmocka_unit_test(test_am_pairs_and_notices),
		cmocka_unit_test(test_webhook_and_alertmanager),
		cmocka_unit_test(test_am_takeover),
		cmocka_unit_test(test_webhook_retries_then_drops),
		cmocka_unit_test(test_exec_hook),
		cmocka_unit_test(test_exec_timeout),
		cmocka_unit_test(test_exec_missing_and_bad_conf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
