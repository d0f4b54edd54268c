/*
 * Unit tests of troikactl's output (core/ctl/ctl_status.c, ctl_events.c):
 * a GetStatus answer and events, built with protobuf-c, rendered as
 * tables, event lines and JSON, compared byte for byte. Every time is
 * fixed, so ages are exact here (the system tests cannot fix the
 * coordinator's clock).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "ctl.h"

#define S(x) ((char *)(uintptr_t)(x))
/* 2023-11-14T22:13:20Z */
#define T0 1700000000000000000ull
#define SEC 1000000000ull

static char *
take(struct evbuffer *b)
{
	size_t len = evbuffer_get_length(b);
	char *s = malloc(len + 1);

	assert_non_null(s);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	return s;
}

/*
 * s starts with prefix and ends with "}\n". The JSON is written from the
 * proto's descriptors, so fields a newer admin.proto adds after these
 * come between the two: this test pins the fields it knows.
 */
static void
assert_json_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(s);

	if (strncmp(s, prefix, strlen(prefix)) != 0)
		fail_msg("JSON:\n%s\ndoes not start with\n%s", s, prefix);
	assert_true(n >= 2 && strcmp(s + n - 2, "}\n") == 0);
	assert_true(s[strlen(prefix)] == '}' || s[strlen(prefix)] == ',');
}

static char *
status_text(const Troika__V1__GetStatusResponse *rep, int json, int color)
{
	struct evbuffer *b = evbuffer_new();
	char *s;

	assert_non_null(b);
	assert_int_equal(ctl_status_write(rep, json, color, b), 0);
	s = take(b);
	evbuffer_free(b);
	return s;
}

static char *
event_text(const Troika__V1__Event *e, int json, int color)
{
	struct evbuffer *b = evbuffer_new();
	char *s;

	assert_non_null(b);
	assert_int_equal(ctl_event_write(e, json, color, b), 0);
	s = take(b);
	evbuffer_free(b);
	return s;
}

/* Two nodes: one with three checks, one gone, without results. */
struct cluster {
	Troika__V1__GetStatusResponse rep;
	Troika__V1__NodeStatus n1, n2, *nodes[2];
	Troika__V1__CheckResult c[3], *checks[3];
	Troika__V1__Label f[2], *fields[2];
};

static void
cluster_init(struct cluster *k)
{
	troika__v1__get_status_response__init(&k->rep);
	k->rep.coordinator = S("coord-2");
	k->rep.version = S("0.1.0");
	k->rep.leader = 0;
	k->rep.leader_name = S("coord-1");
	k->rep.fencing_token = 41;
	k->rep.store = TROIKA__V1__STORE_KIND__STORE_KIND_ETCD;
	k->rep.quorum = 1;
	k->rep.time_unix_nano = T0 + 3723 * SEC + 456000000;
	troika__v1__node_status__init(&k->n1);
	k->n1.node = S("node-1");
	k->n1.connected = 1;
	k->n1.last_seen_unix_nano = T0 + 3721 * SEC;
	k->n1.agent_version = S("0.1.0");
	k->n1.agent_start_time_unix_nano = T0;
	troika__v1__node_status__init(&k->n2);
	k->n2.node = S("node-22");
	k->n2.connected = 0;
	k->n2.last_seen_unix_nano = T0 + 3 * SEC;
	k->n2.agent_version = S("0.0.9");
	k->n2.agent_start_time_unix_nano = 0;
	for (int i = 0; i < 3; i++) {
		troika__v1__check_result__init(&k->c[i]);
		k->c[i].plugin = S("tcp");
		k->checks[i] = &k->c[i];
	}
	k->c[0].check = S("web");
	k->c[0].status = TROIKA__V1__CHECK_STATUS__CHECK_STATUS_OK;
	k->c[0].message = S("HTTP 200 in 3 ms");
	k->c[0].duration_nano = 3000000;
	k->c[0].time_unix_nano = T0 + 3720 * SEC;
	k->c[0].run = 1234;
	k->c[1].check = S("mysql");
	k->c[1].plugin = S("mysql");
	k->c[1].status = TROIKA__V1__CHECK_STATUS__CHECK_STATUS_CRITICAL;
	k->c[1].evidence = TROIKA__V1__EVIDENCE__EVIDENCE_CERTAIN;
	k->c[1].message = S("connect: Connection refused");
	k->c[1].time_unix_nano = T0 + 3600 * SEC;
	k->c[1].run = 7;
	troika__v1__label__init(&k->f[0]);
	k->f[0].name = S("uuid");
	k->f[0].value = S("6e1c\"x\"");
	troika__v1__label__init(&k->f[1]);
	k->f[1].name = S("seqno");
	k->f[1].value = S("-1");
	k->fields[0] = &k->f[0];
	k->fields[1] = &k->f[1];
	k->c[1].fields = k->fields;
	k->c[1].n_fields = 2;
	k->c[2].check = S("slow");
	k->c[2].status = TROIKA__V1__CHECK_STATUS__CHECK_STATUS_UNKNOWN;
	k->c[2].evidence = TROIKA__V1__EVIDENCE__EVIDENCE_AMBIGUOUS;
	k->c[2].message = S("timed out after 2s");
	k->c[2].time_unix_nano = 0;
	k->c[2].timed_out = 1;
	k->n1.checks = k->checks;
	k->n1.n_checks = 3;
	k->nodes[0] = &k->n1;
	k->nodes[1] = &k->n2;
	k->rep.nodes = k->nodes;
	k->rep.n_nodes = 2;
}

static void
test_status_tables(void **state)
{
	struct cluster k;
	char *s;

	(void)state;
	cluster_init(&k);
	s = status_text(&k.rep, 0, 0);
	assert_string_equal(s,
	    "coordinator  coord-2, version 0.1.0\n"
	    "store        etcd, quorum\n"
	    "leader       coord-1, fencing token 41\n"
	    "nodes        2, 1 connected\n"
	    "checks       3: 1 ok, 1 critical, 1 unknown\n"
	    "time         2023-11-14T23:15:23.456Z\n"
	    "\n"
	    "NODE     CONNECTED  LAST SEEN  AGENT  STARTED\n"
	    "node-1   yes        2s ago     0.1.0  1h2m ago\n"
	    "node-22  NO         1h2m ago   0.0.9  -\n"
	    "\n"
	    "NODE    CHECK  STATUS               EVIDENCE   AGE   RUNS  "
	    "MESSAGE\n"
	    "node-1  web    OK                   -          3s    1234  "
	    "HTTP 200 in 3 ms\n"
	    "node-1  mysql  CRITICAL             certain    2m3s     7  "
	    "connect: Connection refused\n"
	    "node-1  slow   UNKNOWN (timed out)  ambiguous  -        0  "
	    "timed out after 2s\n");
	free(s);
}

static void
test_status_no_quorum_and_colour(void **state)
{
	struct cluster k;
	char *s;

	(void)state;
	cluster_init(&k);
	/* The embedded default: loud even though it "has" quorum. */
	k.rep.store = TROIKA__V1__STORE_KIND__STORE_KIND_LOCAL;
	k.rep.leader = 1;
	k.rep.leader_name = S("coord-2");
	k.rep.fencing_token = 0;
	k.rep.n_nodes = 0;
	s = status_text(&k.rep, 0, 0);
	assert_string_equal(s,
	    "coordinator  coord-2, version 0.1.0\n"
	    "store        local, NO QUORUM (local store)\n"
	    "leader       coord-2 (this coordinator), fencing token 0\n"
	    "nodes        0, 0 connected\n"
	    "checks       0\n"
	    "time         2023-11-14T23:15:23.456Z\n"
	    "\n"
	    "no nodes\n");
	free(s);
	s = status_text(&k.rep, 0, 1);
	assert_non_null(strstr(s,
	    "store        \033[1;31mlocal, NO QUORUM (local store)\033[0m\n"));
	free(s);
	/* etcd without quorum; no leader; an unknown store kind. */
	k.rep.store = TROIKA__V1__STORE_KIND__STORE_KIND_ETCD;
	k.rep.quorum = 0;
	k.rep.leader = 0;
	k.rep.leader_name = S("");
	s = status_text(&k.rep, 0, 0);
	assert_non_null(strstr(s,
	    "store        etcd, NO QUORUM: no action is taken\n"
	    "leader       none\n"));
	free(s);
	k.rep.store = 9;
	k.rep.quorum = 1;
	s = status_text(&k.rep, 0, 0);
	assert_non_null(strstr(s, "store        ?9, quorum\n"));
	free(s);
	/* A node without checks. */
	cluster_init(&k);
	k.n1.n_checks = 0;
	s = status_text(&k.rep, 0, 0);
	assert_non_null(strstr(s, "  -\n\nno check results\n"));
	free(s);
}

static void
test_status_json(void **state)
{
	struct cluster k;
	char *s;

	(void)state;
	cluster_init(&k);
	s = status_text(&k.rep, 1, 1);
	assert_json_prefix(s,
	    "{\"coordinator\":\"coord-2\",\"version\":\"0.1.0\","
	    "\"leader\":false,\"leader_name\":\"coord-1\","
	    "\"fencing_token\":41,\"store\":\"STORE_KIND_ETCD\","
	    "\"quorum\":true,\"nodes\":["
	    "{\"node\":\"node-1\",\"connected\":true,"
	    "\"last_seen_unix_nano\":1700003721000000000,"
	    "\"last_seen\":\"2023-11-14T23:15:21.000000000Z\","
	    "\"agent_version\":\"0.1.0\","
	    "\"agent_start_time_unix_nano\":1700000000000000000,"
	    "\"agent_start_time\":\"2023-11-14T22:13:20.000000000Z\","
	    "\"checks\":["
	    "{\"check\":\"web\",\"plugin\":\"tcp\","
	    "\"status\":\"CHECK_STATUS_OK\","
	    "\"evidence\":\"EVIDENCE_UNSPECIFIED\","
	    "\"message\":\"HTTP 200 in 3 ms\",\"duration_nano\":3000000,"
	    "\"fields\":[],\"time_unix_nano\":1700003720000000000,"
	    "\"time\":\"2023-11-14T23:15:20.000000000Z\",\"run\":1234,"
	    "\"timed_out\":false},"
	    "{\"check\":\"mysql\",\"plugin\":\"mysql\","
	    "\"status\":\"CHECK_STATUS_CRITICAL\","
	    "\"evidence\":\"EVIDENCE_CERTAIN\","
	    "\"message\":\"connect: Connection refused\",\"duration_nano\":0,"
	    "\"fields\":[{\"name\":\"uuid\",\"value\":\"6e1c\\\"x\\\"\"},"
	    "{\"name\":\"seqno\",\"value\":\"-1\"}],"
	    "\"time_unix_nano\":1700003600000000000,"
	    "\"time\":\"2023-11-14T23:13:20.000000000Z\",\"run\":7,"
	    "\"timed_out\":false},"
	    "{\"check\":\"slow\",\"plugin\":\"tcp\","
	    "\"status\":\"CHECK_STATUS_UNKNOWN\","
	    "\"evidence\":\"EVIDENCE_AMBIGUOUS\","
	    "\"message\":\"timed out after 2s\",\"duration_nano\":0,"
	    "\"fields\":[],\"time_unix_nano\":0,\"time\":null,\"run\":0,"
	    "\"timed_out\":true}]},"
	    "{\"node\":\"node-22\",\"connected\":false,"
	    "\"last_seen_unix_nano\":1700000003000000000,"
	    "\"last_seen\":\"2023-11-14T22:13:23.000000000Z\","
	    "\"agent_version\":\"0.0.9\","
	    "\"agent_start_time_unix_nano\":0,\"agent_start_time\":null,"
	    "\"checks\":[]}],"
	    "\"time_unix_nano\":1700003723456000000,"
	    "\"time\":\"2023-11-14T23:15:23.456000000Z\"");
	free(s);
}

static void
test_events(void **state)
{
	Troika__V1__Event e = TROIKA__V1__EVENT__INIT;
	Troika__V1__Label f[3], *pf[3];
	char *s;

	(void)state;
	e.seq = 12;
	e.time_unix_nano = T0 + 5 * SEC + 7000000;
	e.kind = S("check_status");
	e.severity = TROIKA__V1__SEVERITY__SEVERITY_CRITICAL;
	e.node = S("node-1");
	e.check = S("db");
	e.message = S("db on node-1: ok -> critical: refused\n\033[2J");
	for (int i = 0; i < 3; i++) {
		troika__v1__label__init(&f[i]);
		pf[i] = &f[i];
	}
	f[0].name = S("from");
	f[0].value = S("ok");
	f[1].name = S("why");
	f[1].value = S("a \"quoted\" \\ word");
	f[2].name = S("empty");
	f[2].value = S("");
	e.fields = pf;
	e.n_fields = 3;
	s = event_text(&e, 0, 0);
	assert_string_equal(s,
	    "12 2023-11-14T22:13:25.007Z CRITICAL node-1 check_status: "
	    "db on node-1: ok -> critical: refused\\n\\x1b[2J  "
	    "check=db from=ok why=\"a \\\"quoted\\\" \\\\ word\" empty=\"\"\n");
	free(s);
	s = event_text(&e, 0, 1);
	assert_non_null(strstr(s, " \033[31mCRITICAL\033[0m node-1 "));
	free(s);
	s = event_text(&e, 1, 0);
	assert_json_prefix(s,
	    "{\"seq\":12,\"time_unix_nano\":1700000005007000000,"
	    "\"time\":\"2023-11-14T22:13:25.007000000Z\","
	    "\"kind\":\"check_status\",\"severity\":\"SEVERITY_CRITICAL\","
	    "\"node\":\"node-1\",\"check\":\"db\","
	    "\"message\":\"db on node-1: ok -> critical: refused\\n"
	    "\\u001b[2J\","
	    "\"fields\":[{\"name\":\"from\",\"value\":\"ok\"},"
	    "{\"name\":\"why\",\"value\":\"a \\\"quoted\\\" \\\\ word\"},"
	    "{\"name\":\"empty\",\"value\":\"\"}]");
	free(s);
	/* A cluster-wide event: no node, no check, no fields. */
	e.node = S("");
	e.check = S("");
	e.n_fields = 0;
	e.severity = TROIKA__V1__SEVERITY__SEVERITY_INFO;
	e.kind = S("leader_changed");
	e.message = S("coord-2 leads");
	s = event_text(&e, 0, 0);
	assert_string_equal(s,
	    "12 2023-11-14T22:13:25.007Z INFO     - "
	    "leader_changed: coord-2 leads\n");
	free(s);
	s = event_text(&e, 0, 1);
	assert_string_equal(s,
	    "12 2023-11-14T22:13:25.007Z INFO     - "
	    "leader_changed: coord-2 leads\n");
	free(s);
}

static void
test_actions(void **state)
{
	Troika__V1__ActionRecord a[3], *pa[3];
	char *args[] = {S("127.0.1.2"), S("6379")};
	struct evbuffer *b = evbuffer_new();
	char *s;

	(void)state;
	assert_non_null(b);
	for (int i = 0; i < 3; i++) {
		troika__v1__action_record__init(&a[i]);
		a[i].node = S("node-2");
		a[i].check = S("redis");
		a[i].fencing_token = 12;
		a[i].attempt = 1;
		a[i].reason = S("2 of 3 coordinators: refused");
		pa[i] = &a[i];
	}
	a[0].id = S("000000000012-000003");
	a[0].action = S("replicate");
	a[0].args = args;
	a[0].n_args = 2;
	a[0].state = TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING;
	a[0].started_unix_nano = T0 + 60 * SEC;
	a[1].id = S("000000000012-000002");
	a[1].action = S("restart");
	a[1].state = TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED;
	a[1].attempt = 2;
	a[1].started_unix_nano = T0 + 30 * SEC;
	a[1].ended_unix_nano = T0 + 150 * SEC;
	a[1].message = S("no outcome within 2m");
	a[1].duration_nano = 0;
	a[2].id = S("000000000012-000001");
	a[2].action = S("restart");
	a[2].state = TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED;
	a[2].started_unix_nano = T0;
	a[2].ended_unix_nano = T0 + SEC;
	a[2].duration_nano = 105000000;
	a[2].message = S("restarted");
	assert_int_equal(ctl_actions_write(pa, 3, 0, b), 0);
	s = take(b);
	assert_string_equal(s,
	    "ID                   STARTED               NODE    CHECK  "
	    "ACTION                    ATTEMPT  STATE      TOKEN  TOOK   "
	    "MESSAGE\n"
	    "000000000012-000003  2023-11-14T22:14:20Z  node-2  redis  "
	    "replicate 127.0.1.2 6379        1  RUNNING       12  -      "
	    "2 of 3 coordinators: refused\n"
	    "000000000012-000002  2023-11-14T22:13:50Z  node-2  redis  "
	    "restart                         2  LOCKED        12  -      "
	    "no outcome within 2m\n"
	    "000000000012-000001  2023-11-14T22:13:20Z  node-2  redis  "
	    "restart                         1  SUCCEEDED     12  105ms  "
	    "restarted\n"
	    "\n"
	    "1 LOCKED: no recovery of its check starts until an operator has "
	    "looked and run 'troikactl actions ack ID'\n");
	free(s);
	/* Longer runs; nothing at all. */
	a[2].duration_nano = 2345000000ull;
	assert_int_equal(ctl_actions_write(&pa[2], 1, 0, b), 0);
	s = take(b);
	assert_non_null(strstr(s, "  12  2.3s  restarted\n"));
	free(s);
	a[2].duration_nano = 65 * SEC;
	assert_int_equal(ctl_actions_write(&pa[2], 1, 1, b), 0);
	s = take(b);
	assert_non_null(strstr(s, "\033[32mSUCCEEDED\033[0m"));
	assert_non_null(strstr(s, "  1m5s  restarted\n"));
	free(s);
	assert_int_equal(ctl_actions_write(pa, 0, 0, b), 0);
	s = take(b);
	assert_string_equal(s, "no actions\n");
	free(s);
	evbuffer_free(b);
}

static void
test_maintenance(void **state)
{
	Troika__V1__Maintenance m[3], *pm[3];
	struct cluster k;
	struct evbuffer *b = evbuffer_new();
	char *s;

	(void)state;
	assert_non_null(b);
	for (int i = 0; i < 3; i++) {
		troika__v1__maintenance__init(&m[i]);
		pm[i] = &m[i];
	}
	m[0].until_unix_nano = T0 + 7200 * SEC;
	m[0].by = S("alice@ops");
	m[0].reason = S("kernel update");
	m[1].node = S("node-2");
	m[1].until_unix_nano = T0 + 90 * SEC;
	m[2].node = S("node-3");
	m[2].check = S("mysql");
	m[2].until_unix_nano = T0 - SEC;
	m[2].by = S("bob");
	assert_int_equal(ctl_maint_write(pm, 3, T0, 0, b), 0);
	s = take(b);
	assert_string_equal(s,
	    "MAINTENANCE   UNTIL                 LEFT   BY         REASON\n"
	    "cluster       2023-11-15T00:13:20Z  2h     alice@ops  "
	    "kernel update\n"
	    "node-2        2023-11-14T22:14:50Z  1m30s\n"
	    "node-3/mysql  2023-11-14T22:13:19Z  ended  bob\n");
	free(s);
	assert_int_equal(ctl_maint_write(pm, 0, T0, 0, b), 0);
	s = take(b);
	assert_string_equal(s, "no maintenance\n");
	free(s);

	/* In the status: a header line and the table; TILT; the reason
	 * there is no quorum. */
	cluster_init(&k);
	k.rep.maintenance = pm;
	k.rep.n_maintenance = 2;
	k.rep.tilt_until_unix_nano = k.rep.time_unix_nano + 25 * SEC;
	k.rep.quorum = 0;
	k.rep.quorum_reason = S("etcd: no leader");
	s = status_text(&k.rep, 0, 0);
	assert_non_null(strstr(s,
	    "store        etcd, NO QUORUM: no action is taken "
	    "(etcd: no leader)\n"
	    "leader       coord-1, fencing token 41\n"
	    "nodes        2, 1 connected\n"
	    "checks       3: 1 ok, 1 critical, 1 unknown\n"
	    "tilt         TILT until 2023-11-14T23:15:48Z (25s): opinions "
	    "withheld\n"
	    "maintenance  2 in force: nothing automated happens there\n"
	    "time         2023-11-14T23:15:23.456Z\n"
	    "\n"
	    "MAINTENANCE  UNTIL                 LEFT    BY         REASON\n"
	    "cluster      2023-11-15T00:13:20Z  57m56s  alice@ops  "
	    "kernel update\n"
	    "node-2       2023-11-14T22:14:50Z  ended\n"
	    "\n"
	    "NODE     CONNECTED"));
	free(s);
	evbuffer_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status_tables),
	    cmocka_unit_test(test_status_no_quorum_and_colour),
	    cmocka_unit_test(test_status_json),
	    cmocka_unit_test(test_events),
	    cmocka_unit_test(test_actions),
	    cmocka_unit_test(test_maintenance),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
