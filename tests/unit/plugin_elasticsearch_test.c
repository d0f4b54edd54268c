/*
 * The elasticsearch plugin, loaded from the build tree and driven through
 * the fake host against a libevent evhttp server on 127.0.0.1 replaying
 * replies in the exact format of Elasticsearch 8 and OpenSearch 2 (the
 * servers themselves are not packaged for Debian): green, yellow and red
 * clusters, no master (503 with an error object), refused credentials,
 * junk, huge and never-ending replies. tests/system/replay_server.py
 * replays the same kinds of replies to the real agent.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
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

#include "fake_host.h"

#define ES_PLUGIN TEST_BUILD_PLUGIN_DIR "/troika-elasticsearch.so"

/* GET /_cluster/health of a three-node Elasticsearch 8 cluster. */
static const char green_health[] =
    "{\"cluster_name\":\"shop\",\"status\":\"green\",\"timed_out\":false,"
    "\"number_of_nodes\":3,\"number_of_data_nodes\":3,"
    "\"active_primary_shards\":5,\"active_shards\":10,"
    "\"relocating_shards\":0,\"initializing_shards\":0,"
    "\"unassigned_shards\":0,\"unassigned_primary_shards\":0,"
    "\"delayed_unassigned_shards\":0,\"number_of_pending_tasks\":0,"
    "\"number_of_in_flight_fetch\":0,"
    "\"task_max_waiting_in_queue_millis\":0,"
    "\"active_shards_percent_as_number\":100.0}";

/* GET / of an Elasticsearch 8 node. */
static const char es_banner[] =
    "{\n  \"name\" : \"node-1\",\n  \"cluster_name\" : \"shop\",\n"
    "  \"cluster_uuid\" : \"Qx3hYyJrQ8G2m6cDqRk2dA\",\n"
    "  \"version\" : {\n    \"number\" : \"8.11.3\",\n"
    "    \"build_flavor\" : \"default\",\n    \"build_type\" : \"deb\",\n"
    "    \"build_hash\" : \"64cf052f3b56b1fd4449f5454cb88aca7e739d9a\",\n"
    "    \"build_date\" : \"2023-12-08T11:33:53.634979452Z\",\n"
    "    \"build_snapshot\" : false,\n    \"lucene_version\" : \"9.8.0\",\n"
    "    \"minimum_wire_compatibility_version\" : \"7.17.0\",\n"
    "    \"minimum_index_compatibility_version\" : \"7.0.0\"\n  },\n"
    "  \"tagline\" : \"You Know, for Search\"\n}\n";

/* A two-node OpenSearch 2 cluster that lost a replica: yellow. */
static const char yellow_health[] =
    "{\"cluster_name\":\"search\",\"status\":\"yellow\",\"timed_out\":false,"
    "\"number_of_nodes\":2,\"number_of_data_nodes\":2,"
    "\"discovered_master\":true,\"discovered_cluster_manager\":true,"
    "\"active_primary_shards\":5,\"active_shards\":8,"
    "\"relocating_shards\":1,\"initializing_shards\":0,"
    "\"unassigned_shards\":2,\"delayed_unassigned_shards\":2,"
    "\"number_of_pending_tasks\":0,\"number_of_in_flight_fetch\":0,"
    "\"task_max_waiting_in_queue_millis\":0,"
    "\"active_shards_percent_as_number\":80.0}";

static const char os_banner[] =
    "{\"name\":\"os-node-2\",\"cluster_name\":\"search\","
    "\"cluster_uuid\":\"fR1mWQ7NQxS2VbqG3pLw6A\",\"version\":{"
    "\"distribution\":\"opensearch\",\"number\":\"2.11.1\","
    "\"build_type\":\"deb\",\"build_hash\":\"6b1986e964d440be9137eba1413015c31c5a7752\","
    "\"build_date\":\"2023-11-29T21:43:10.135035992Z\","
    "\"build_snapshot\":false,\"lucene_version\":\"9.7.0\","
    "\"minimum_wire_compatibility_version\":\"7.10.0\","
    "\"minimum_index_compatibility_version\":\"7.0.0\"},"
    "\"tagline\":\"The OpenSearch Project: https://opensearch.org/\"}";

/* A primary is lost: red; one shard is being initialized. */
static const char red_health[] =
    "{\"cluster_name\":\"shop\",\"status\":\"red\",\"timed_out\":false,"
    "\"number_of_nodes\":2,\"number_of_data_nodes\":2,"
    "\"active_primary_shards\":4,\"active_shards\":7,"
    "\"relocating_shards\":0,\"initializing_shards\":1,"
    "\"unassigned_shards\":2,\"delayed_unassigned_shards\":0,"
    "\"number_of_pending_tasks\":3,\"number_of_in_flight_fetch\":0,"
    "\"task_max_waiting_in_queue_millis\":1250,"
    "\"active_shards_percent_as_number\":70.0}";

/* No elected master: Elasticsearch answers 503 with an error object. */
static const char no_master[] =
    "{\"error\":{\"root_cause\":[{\"type\":\"master_not_discovered_exception\","
    "\"reason\":null}],\"type\":\"master_not_discovered_exception\","
    "\"reason\":null},\"status\":503}";

static const char auth_error[] =
    "{\"error\":{\"root_cause\":[{\"type\":\"security_exception\","
    "\"reason\":\"unable to authenticate user [monitor] for REST request "
    "[/_cluster/health]\",\"header\":{\"WWW-Authenticate\":["
    "\"Basic realm=\\\"security\\\" charset=\\\"UTF-8\\\"\"]}}],"
    "\"type\":\"security_exception\",\"reason\":\"unable to authenticate "
    "user [monitor] for REST request [/_cluster/health]\"},\"status\":401}";

struct fixture {
	const struct troika_plugin *p;
	void *dl;
	struct fake_host *fh;
	void *state;
	struct evhttp *http;
	int port;
	int requests;
	char last_uri[256];
	struct evhttp_request *held[2];
	int nheld;
	int fds_before;
	char tls_dir[64]; /* certificate and key of the TLS server */
	pid_t tls_pid;
};

static int
local_socket(int backlog, int *ret_port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	if (backlog >= 0)
		assert_int_equal(listen(fd, backlog), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*ret_port = ntohs(sin.sin_port);
	return fd;
}

static void
reply(struct evhttp_request *req, int code, const char *body)
{
	struct evbuffer *b = evbuffer_new();

	assert_non_null(b);
	evbuffer_add(b, body, strlen(body));
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_send_reply(req, code, "X", b);
	evbuffer_free(b);
}

static void
http_cb(struct evhttp_request *req, void *arg)
{
	static const struct {
		const char *uri;
		int code;
		const char *body;
	} routes[] = {
		{ "/green/_cluster/health", 200, green_health },
		{ "/green/", 200, es_banner },
		{ "/yellow/_cluster/health", 200, yellow_health },
		{ "/yellow/", 200, os_banner },
		{ "/red/_cluster/health", 200, red_health },
		{ "/local/_cluster/health?local=true", 200, green_health },
		{ "/nomaster/_cluster/health", 503, no_master },
		{ "/nomaster/", 200, es_banner },
		{ "/auth/_cluster/health", 401, auth_error },
		{ "/auth/", 401, auth_error },
		{ "/html/_cluster/health", 502, "<html><body>502 Bad Gateway"
		    "</body></html>" },
		{ "/garbage/_cluster/health", 200, "\x16\x03\x01\x02\x7fgarbage" },
		{ "/array/_cluster/health", 200, "[\"green\"]" },
		{ "/nostatus/_cluster/health", 200, "{\"cluster_name\":\"shop\","
		    "\"status\":\"blue\",\"number_of_nodes\":3}" },
		{ "/slowinfo/_cluster/health", 200, green_health },
	};
	struct fixture *f = arg;
	const char *uri = evhttp_request_get_uri(req);

	f->requests++;
	snprintf(f->last_uri, sizeof(f->last_uri), "%s", uri);
	if (strncmp(uri, "/slow/", 6) == 0 || strcmp(uri, "/slowinfo/") == 0) {
		assert_true(f->nheld < 2);
		f->held[f->nheld++] = req;
		return;
	}
	if (strcmp(uri, "/huge/_cluster/health") == 0) {
		size_t len = 3 * 1024 * 1024;
		char *big = malloc(len + 1);

		assert_non_null(big);
		memset(big, ' ', len);
		big[0] = '{';
		big[len] = '\0';
		reply(req, 200, big);
		free(big);
		return;
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(uri, routes[i].uri) == 0) {
			reply(req, routes[i].code, routes[i].body);
			return;
		}
	}
	reply(req, 404, "{\"error\":\"no handler found for uri\"}");
}

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->p = fake_host_load_plugin(ES_PLUGIN, &f->dl);
	*state = f;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fixture *f = *state;

	dlclose(f->dl);
	free(f);
	return 0;
}

static int
setup(void **state)
{
	struct fixture *f = *state;
	int fd;

	f->fds_before = fake_host_count_fds();
	f->fh = fake_host_new(f->p->options);
	f->state = NULL;
	f->requests = 0;
	f->nheld = 0;
	f->tls_dir[0] = '\0';
	f->tls_pid = -1;
	fd = local_socket(16, &f->port);
	assert_non_null(f->http = evhttp_new(fake_host_base(f->fh)));
	assert_int_equal(evhttp_accept_socket(f->http, fd), 0);
	evhttp_set_gencb(f->http, http_cb, f);
	return 0;
}

static void
tls_stop(struct fixture *f)
{
	char path[128];

	if (f->tls_pid > 0) {
		kill(f->tls_pid, SIGKILL);
		waitpid(f->tls_pid, NULL, 0);
	}
	f->tls_pid = -1;
	if (f->tls_dir[0] == '\0')
		return;
	snprintf(path, sizeof(path), "%s/cert.pem", f->tls_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/key.pem", f->tls_dir);
	unlink(path);
	rmdir(f->tls_dir);
	f->tls_dir[0] = '\0';
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tls_stop(f);
	f->p->instance_free(f->state);
	f->state = NULL;
	if (f->http != NULL)
		evhttp_free(f->http);
	f->http = NULL;
	assert_int_equal(fake_host_violations(f->fh), 0);
	fake_host_free(f->fh);
	f->fh = NULL;
	assert_int_equal(fake_host_count_fds(), f->fds_before);
	return 0;
}

static void
set_url(struct fixture *f, const char *path)
{
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", f->port, path);
	fake_host_set_string(f->fh, "url", url);
}

static void
new_instance(struct fixture *f)
{
	f->p->instance_free(f->state);
	f->state = NULL;
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
}

static const struct fake_result *
run_check(struct fixture *f, int64_t deadline_ms)
{
	struct troika_task *task = fake_host_task(f->fh, deadline_ms);
	unsigned before = fake_host_done_count(f->fh);
	const struct fake_result *r;

	fake_host_check(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_done_count(f->fh), before);
	assert_int_equal(fake_host_wait_done(f->fh, before + 1,
	    (int)deadline_ms + 3000), 0);
	r = fake_host_last(f->fh);
	assert_ptr_equal(r->task, task);
	assert_non_null(r->message);
	assert_null(strchr(r->message, '\n'));
	return r;
}

static void
assert_contains(const char *haystack, const char *needle)
{
	if (haystack == NULL || strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"",
		    haystack != NULL ? haystack : "(null)", needle);
}

/* The value of metric name with label cluster=cluster (and color). */
static double
value(const struct fake_result *r, const char *name, const char *cluster)
{
	const struct fake_sample *s = fake_result_sample(r, name, "cluster",
	    cluster);

	if (s == NULL)
		fail_msg("no sample %s{cluster=\"%s\"}", name, cluster);
	assert_int_equal(s->type, TROIKA_METRIC_GAUGE);
	return s->value;
}

static double
color(const struct fake_result *r, const char *c)
{
	const struct fake_sample *s = fake_result_sample(r,
	    "elasticsearch_cluster_health_status", "color", c);

	if (s == NULL)
		fail_msg("no status sample for %s", c);
	return s->value;
}

static void
assert_down(const struct fake_result *r)
{
	assert_int_equal(r->nsamples, 1);
	assert_string_equal(r->samples[0].name,
	    "elasticsearch_cluster_health_up");
	assert_true(r->samples[0].value == 0);
	assert_int_equal(r->nfields, 0);
}

static void
assert_no_plugin_events(struct fixture *f)
{
	evhttp_free(f->http);
	f->http = NULL;
	f->nheld = 0;
	fake_host_run_for(f->fh, 10);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
}

static void
test_descriptor(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(f->p->name, "elasticsearch");
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_ASYNC);
	assert_non_null(f->p->cancel);
	assert_null(f->p->actions);
	assert_null(dlsym(f->dl, "webfetch_get"));
}

static void
test_green(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/green");
	fake_host_set_int(f->fh, "expected_nodes", 3);
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message, "Elasticsearch 8.11.3 cluster shop is "
	    "green: 3 nodes, 10 of 10 shards active");
	assert_int_equal(r->nsamples, 18);
	assert_true(value(r, "elasticsearch_cluster_health_up", "shop") == 1);
	assert_true(color(r, "green") == 1);
	assert_true(color(r, "yellow") == 0);
	assert_true(color(r, "red") == 0);
	assert_true(value(r, "elasticsearch_cluster_health_number_of_nodes",
	    "shop") == 3);
	assert_true(value(r,
	    "elasticsearch_cluster_health_number_of_data_nodes", "shop") == 3);
	assert_true(value(r, "elasticsearch_cluster_health_active_shards",
	    "shop") == 10);
	assert_true(value(r,
	    "elasticsearch_cluster_health_active_primary_shards", "shop") == 5);
	assert_true(value(r, "elasticsearch_cluster_health_unassigned_shards",
	    "shop") == 0);
	assert_true(value(r,
	    "elasticsearch_cluster_health_active_shards_percent_as_number",
	    "shop") == 100);
	assert_true(value(r, "elasticsearch_cluster_health_timed_out",
	    "shop") == 0);
	assert_true(value(r, "elasticsearch_clusterinfo_version_info",
	    "shop") == 1);
	assert_string_equal(fake_sample_label(fake_result_sample(r,
	    "elasticsearch_clusterinfo_version_info", NULL, NULL),
	    "distribution"), "elasticsearch");
	assert_string_equal(fake_result_field(r, "distribution"),
	    "elasticsearch");
	assert_string_equal(fake_result_field(r, "version"), "8.11.3");
	assert_string_equal(fake_result_field(r, "node"), "node-1");
	assert_string_equal(fake_result_field(r, "cluster"), "shop");
	assert_string_equal(fake_result_field(r, "color"), "green");
	assert_int_equal(f->requests, 2);
	assert_no_plugin_events(f);
}

static void
test_fewer_nodes_than_expected(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/green/");
	fake_host_set_int(f->fh, "expected_nodes", 4);
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "Elasticsearch 8.11.3 cluster shop is "
	    "green: 3 nodes, fewer than the 4 expected, 10 of 10 shards "
	    "active");
}

static void
test_yellow_opensearch(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/yellow");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "OpenSearch 2.11.1 cluster search is "
	    "yellow: 2 nodes, 8 of 10 shards active");
	assert_true(color(r, "yellow") == 1);
	assert_true(color(r, "green") == 0);
	assert_true(value(r, "elasticsearch_cluster_health_unassigned_shards",
	    "search") == 2);
	assert_true(value(r,
	    "elasticsearch_cluster_health_delayed_unassigned_shards",
	    "search") == 2);
	assert_true(value(r, "elasticsearch_cluster_health_relocating_shards",
	    "search") == 1);
	assert_true(value(r,
	    "elasticsearch_cluster_health_active_shards_percent_as_number",
	    "search") == 80);
	assert_string_equal(fake_result_field(r, "distribution"),
	    "opensearch");
	assert_string_equal(fake_result_field(r, "node"), "os-node-2");
}

static void
test_red_without_banner(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	/* GET / answers 404 here: the health alone is enough. */
	set_url(f, "/red");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "cluster shop is red: 2 nodes, 7 of "
	    "10 shards active");
	assert_int_equal(r->nsamples, 17);
	assert_true(color(r, "red") == 1);
	assert_true(value(r, "elasticsearch_cluster_health_initializing_shards",
	    "shop") == 1);
	assert_true(value(r,
	    "elasticsearch_cluster_health_number_of_pending_tasks",
	    "shop") == 3);
	assert_true(value(r,
	    "elasticsearch_cluster_health_task_max_waiting_in_queue_millis",
	    "shop") == 1250);
	assert_null(fake_result_field(r, "version"));
	assert_string_equal(fake_result_field(r, "color"), "red");
}

static void
test_local(void **state)
{
	struct fixture *f = *state;

	set_url(f, "/local");
	fake_host_set_bool(f->fh, "local", 1);
	new_instance(f);
	assert_int_equal(run_check(f, 5000)->status, TROIKA_STATUS_OK);
}

static void
test_no_master(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/nomaster");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message,
	    "HTTP 503: master_not_discovered_exception");
	assert_down(r);

	set_url(f, "/html");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "HTTP 502: \"<html><body>502 Bad "
	    "Gateway</body></html>\"");
	assert_down(r);
}

static void
test_credentials_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/auth");
	fake_host_set_string(f->fh, "user", "monitor");
	fake_host_set_string(f->fh, "password", "wrong");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message, "HTTP 401: user and password were "
	    "refused, or the user lacks the monitor privilege");
	assert_down(r);
}

static void
test_bad_replies(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/garbage");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "reply is not JSON (");
	assert_contains(r->message, "\"\\x16\\x03\\x01\\x02\\x7fgarbage\"");
	assert_down(r);

	set_url(f, "/array");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message,
	    "reply is JSON but not an object: \"[\"green\"]\"");

	set_url(f, "/nostatus");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "not a cluster health reply: "
	    "{\"cluster_name\":\"shop\",\"status\":\"blue\","
	    "\"number_of_nodes\":3}");
	assert_down(r);

	set_url(f, "/huge");
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message,
	    "reply larger than max_body (1048576 bytes)");
	assert_down(r);
	assert_no_plugin_events(f);
}

static void
test_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char url[64];
	int port, fd = local_socket(-1, &port);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	fake_host_set_string(f->fh, "url", url);
	new_instance(f);
	r = run_check(f, 5000);
	close(fd);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "connection refused: ");
	assert_down(r);
}

static void
test_timeouts(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/slow");
	new_instance(f);
	r = run_check(f, 400);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "timed out after 3");
	assert_down(r);
	assert_int_equal(f->nheld, 2);

	/* A banner that never comes holds the run to its deadline, but the
	 * health that came is still judged. */
	f->nheld = 0;
	set_url(f, "/slowinfo");
	new_instance(f);
	r = run_check(f, 400);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "cluster shop is green: 3 nodes, 10 "
	    "of 10 shards active");
	assert_no_plugin_events(f);
}

static void
test_cancel(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	set_url(f, "/slow");
	new_instance(f);
	task = fake_host_task(f->fh, 5000);
	fake_host_check(f->fh, f->p, f->state, task);
	for (int i = 0; i < 100 && f->nheld < 2; i++)
		fake_host_run_for(f->fh, 10);
	assert_int_equal(f->nheld, 2);
	fake_host_cancel(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_curl_removes(f->fh), 2);
	fake_host_run_for(f->fh, 100);
	assert_int_equal(fake_host_done_count(f->fh), 0);
	assert_no_plugin_events(f);
}

static void
test_curl_add_fails(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_url(f, "/green");
	new_instance(f);
	fake_host_fail_next_curl_add(f->fh, -ENOMEM);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_string_equal(r->message,
	    "cannot start the request: Cannot allocate memory");
	assert_down(r);
	assert_int_equal(run_check(f, 5000)->status, TROIKA_STATUS_OK);
}

/* Run argv quietly and wait; its exit status, or -1. */
static int
run_quiet(const char *const *argv)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execv(argv[0], (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * `openssl s_server -www` (an HTML status page for any GET) with a
 * certificate made for 127.0.0.1. Returns its port, or -1 to skip.
 */
static int
tls_start(struct fixture *f)
{
	char cert[128], key[128], accept[32];
	const char *req[] = { "/usr/bin/openssl", "req", "-x509", "-newkey",
	    "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
	    "-keyout", key, "-out", cert, "-days", "1", "-subj",
	    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", NULL };
	const char *srv[] = { "/usr/bin/openssl", "s_server", "-accept",
	    accept, "-cert", cert, "-key", key, "-www", "-quiet", NULL };
	int fd, port;

	if (access("/usr/bin/openssl", X_OK) != 0)
		return -1;
	snprintf(f->tls_dir, sizeof(f->tls_dir), "/tmp/plugin_es_test.XXXXXX");
	assert_non_null(mkdtemp(f->tls_dir));
	snprintf(cert, sizeof(cert), "%s/cert.pem", f->tls_dir);
	snprintf(key, sizeof(key), "%s/key.pem", f->tls_dir);
	if (run_quiet(req) != 0)
		return -1;
	fd = local_socket(-1, &port);
	close(fd);
	snprintf(accept, sizeof(accept), "127.0.0.1:%d", port);
	f->tls_pid = fork();
	assert_true(f->tls_pid >= 0);
	if (f->tls_pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execv(srv[0], (char *const *)(uintptr_t)srv);
		_exit(127);
	}
	for (int i = 0; i < 300; i++) {
		struct sockaddr_in sin = { .sin_family = AF_INET,
		    .sin_port = htons((uint16_t)port),
		    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int ok = connect(c, (struct sockaddr *)&sin, sizeof(sin)) == 0;

		close(c);
		if (ok)
			return port;
		usleep(10 * 1000);
	}
	return -1;
}

static void
test_tls(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char url[64], ca[128];
	int port;

	if ((port = tls_start(f)) < 0)
		skip();
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
	snprintf(ca, sizeof(ca), "%s/cert.pem", f->tls_dir);
	fake_host_set_string(f->fh, "url", url);

	/* Self-signed, not in the system store: refused. */
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "certificate");
	assert_down(r);

	/* Trusted through ca_file, or not verified: TLS works, and the
	 * HTML page that comes is no cluster health. */
	fake_host_set_string(f->fh, "ca_file", ca);
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "reply is not JSON (");
	fake_host_unset(f->fh, "ca_file");
	fake_host_set_bool(f->fh, "tls_verify", 0);
	new_instance(f);
	r = run_check(f, 5000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "reply is not JSON (");
}

static void
test_bad_options(void **state)
{
	struct fixture *f = *state;

	set_url(f, "/green/_cluster/health?pretty");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_contains(fake_host_log_last(f->fh), "must be the node's base "
	    "URL, without a query");
	fake_host_set_string(f->fh, "url", "127.0.0.1:9200");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_null(f->state);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_green, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fewer_nodes_than_expected,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_yellow_opensearch, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_red_without_banner, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_local, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_master, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credentials_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_replies, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_curl_add_fails, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_options, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
