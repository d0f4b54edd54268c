/*
 * The solr plugin, loaded from the build tree and driven through the fake
 * host against a libevent evhttp server on 127.0.0.1 replaying replies in
 * the exact format of Solr 9 (Solr is not packaged for Debian): the core
 * admin STATUS of loaded cores, of a core that failed to load, and of a
 * missing one; pings that are OK, disabled (503) or unavailable (500);
 * refused credentials, junk and silence. The first path segment of
 * base_url picks the scenario.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <dlfcn.h>
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

#include "fake_host.h"

#define SOLR_PLUGIN TEST_BUILD_PLUGIN_DIR "/troika-solr.so"

/* GET /solr/admin/cores?action=STATUS&wt=json: two cores loaded. */
static const char status_ok[] =
    "{\n  \"responseHeader\":{\n    \"status\":0,\n    \"QTime\":3},\n"
    "  \"initFailures\":{},\n  \"status\":{\n"
    "    \"orders\":{\n      \"name\":\"orders\",\n"
    "      \"instanceDir\":\"/var/solr/data/orders\",\n"
    "      \"dataDir\":\"/var/solr/data/orders/data/\",\n"
    "      \"config\":\"solrconfig.xml\",\n      \"schema\":\"managed-schema.xml\",\n"
    "      \"startTime\":\"2024-03-04T09:12:44.118Z\",\n      \"uptime\":7532000,\n"
    "      \"index\":{\n        \"numDocs\":512,\n        \"maxDoc\":530,\n"
    "        \"deletedDocs\":18,\n        \"version\":2417,\n"
    "        \"segmentCount\":4,\n        \"current\":true,\n"
    "        \"hasDeletions\":true,\n"
    "        \"directory\":\"org.apache.lucene.store.NRTCachingDirectory:NRTCachingDirectory(MMapDirectory@/var/solr/data/orders/data/index lockFactory=org.apache.lucene.store.NativeFSLockFactory@1b2c3d4e; maxCacheMB=48.0 maxMergeSizeMB=4.0)\",\n"
    "        \"segmentsFile\":\"segments_1r\",\n"
    "        \"segmentsFileSizeInBytes\":412,\n"
    "        \"userData\":{\n          \"commitCommandVer\":\"1792611123456458752\",\n"
    "          \"commitTimeMSec\":\"1709545100012\"},\n"
    "        \"lastModified\":\"2024-03-04T09:38:20.012Z\",\n"
    "        \"sizeInBytes\":1843201,\n        \"size\":\"1.76 MB\"}},\n"
    "    \"products\":{\n      \"name\":\"products\",\n"
    "      \"instanceDir\":\"/var/solr/data/products\",\n"
    "      \"dataDir\":\"/var/solr/data/products/data/\",\n"
    "      \"config\":\"solrconfig.xml\",\n      \"schema\":\"managed-schema.xml\",\n"
    "      \"startTime\":\"2024-03-04T09:12:44.102Z\",\n      \"uptime\":7532016,\n"
    "      \"index\":{\n        \"numDocs\":12000,\n        \"maxDoc\":12000,\n"
    "        \"deletedDocs\":0,\n        \"version\":88,\n"
    "        \"segmentCount\":9,\n        \"current\":true,\n"
    "        \"hasDeletions\":false,\n"
    "        \"directory\":\"org.apache.lucene.store.NRTCachingDirectory:NRTCachingDirectory(MMapDirectory@/var/solr/data/products/data/index lockFactory=org.apache.lucene.store.NativeFSLockFactory@5f6e7d8c; maxCacheMB=48.0 maxMergeSizeMB=4.0)\",\n"
    "        \"segmentsFile\":\"segments_c\",\n"
    "        \"segmentsFileSizeInBytes\":811,\n"
    "        \"userData\":{},\n"
    "        \"lastModified\":\"2024-03-04T09:20:01.777Z\",\n"
    "        \"sizeInBytes\":73400320,\n        \"size\":\"70 MB\"}}}}\n";

/* "products" did not load: it is in initFailures, not in status. */
static const char status_init_failure[] =
    "{\"responseHeader\":{\"status\":0,\"QTime\":1},\"initFailures\":{"
    "\"products\":\"org.apache.solr.common.SolrException:org.apache.solr."
    "common.SolrException: Could not load conf for core products: Error "
    "loading solr config from /var/solr/data/products/conf/solrconfig.xml\"},"
    "\"status\":{\"orders\":{\"name\":\"orders\",\"uptime\":1000,\"index\":{"
    "\"numDocs\":512,\"maxDoc\":530,\"deletedDocs\":18,\"segmentCount\":4,"
    "\"sizeInBytes\":1843201,\"size\":\"1.76 MB\"}}}}";

/* Only "orders" exists. */
static const char status_missing[] =
    "{\"responseHeader\":{\"status\":0,\"QTime\":0},\"initFailures\":{},"
    "\"status\":{\"orders\":{\"name\":\"orders\",\"uptime\":1000,\"index\":{"
    "\"numDocs\":512,\"maxDoc\":530,\"deletedDocs\":18,\"segmentCount\":4,"
    "\"sizeInBytes\":1843201,\"size\":\"1.76 MB\"}}}}";

/* GET /solr/<core>/admin/ping?wt=json */
static const char ping_ok[] =
    "{\n  \"responseHeader\":{\n    \"zkConnected\":null,\n    \"status\":0,\n"
    "    \"QTime\":1,\n    \"params\":{\n      \"q\":\"{!lucene}*:*\",\n"
    "      \"distrib\":\"false\",\n      \"df\":\"_text_\",\n"
    "      \"rows\":\"10\",\n      \"echoParams\":\"all\",\n"
    "      \"rid\":\"-1\",\n      \"wt\":\"json\"}},\n  \"status\":\"OK\"}\n";

/* The ping handler with its healthcheck file disabled. */
static const char ping_disabled[] =
    "{\"responseHeader\":{\"status\":503,\"QTime\":0},\"error\":{\"metadata\":"
    "[\"error-class\",\"org.apache.solr.common.SolrException\","
    "\"root-error-class\",\"org.apache.solr.common.SolrException\"],"
    "\"msg\":\"Service disabled\",\"code\":503}}";

static const char ping_init_failure[] =
    "{\"responseHeader\":{\"status\":500,\"QTime\":0},\"error\":{\"metadata\":"
    "[\"error-class\",\"org.apache.solr.common.SolrException\"],\"msg\":"
    "\"SolrCore 'products' is not available due to init failure: Could not "
    "load conf for core products\",\"code\":500}}";

static const char not_found_html[] =
    "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;"
    "charset=utf-8\"/>\n<title>Error 404 Not Found</title>\n</head>\n"
    "<body><h2>HTTP ERROR 404 Not Found</h2>\n<table>\n"
    "<tr><th>URI:</th><td>/solr/products/admin/ping</td></tr>\n"
    "<tr><th>STATUS:</th><td>404</td></tr>\n"
    "<tr><th>MESSAGE:</th><td>Not Found</td></tr>\n"
    "<tr><th>SERVLET:</th><td>default</td></tr>\n</table>\n\n</body>\n"
    "</html>\n";

struct fixture {
	const struct troika_plugin *p;
	void *dl;
	struct fake_host *fh;
	void *state;
	struct evhttp *http;
	int port;
	int requests;
	int pings;
	int nheld;
	int fds_before;
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
	evhttp_send_reply(req, code, "X", b);
	evbuffer_free(b);
}

static void
http_cb(struct evhttp_request *req, void *arg)
{
	struct fixture *f = arg;
	const char *uri = evhttp_request_get_uri(req);
	char scenario[32], rest[200];
	int is_status, ping_products, ping_orders;

	f->requests++;
	assert_int_equal(sscanf(uri, "/%31[^/]/solr/%199s", scenario, rest), 2);
	is_status = strcmp(rest, "admin/cores?action=STATUS&wt=json") == 0;
	ping_products = strcmp(rest, "products/admin/ping?wt=json") == 0;
	ping_orders = strcmp(rest, "orders/admin/ping?wt=json") == 0;
	if (!is_status && !ping_products && !ping_orders) {
		reply(req, 404, not_found_html);
		return;
	}
	f->pings += !is_status;
	if (strcmp(scenario, "slow") == 0) {
		f->nheld++;
		return; /* never answered; freed with evhttp */
	}
	if (strcmp(scenario, "ok") == 0) {
		reply(req, 200, is_status ? status_ok : ping_ok);
	} else if (strcmp(scenario, "initfail") == 0) {
		if (is_status)
			reply(req, 200, status_init_failure);
		else if (ping_products)
			reply(req, 500, ping_init_failure);
		else
			reply(req, 200, ping_ok);
	} else if (strcmp(scenario, "missing") == 0) {
		if (is_status)
			reply(req, 200, status_missing);
		else if (ping_products)
			reply(req, 404, not_found_html);
		else
			reply(req, 200, ping_ok);
	} else if (strcmp(scenario, "disabled") == 0) {
		reply(req, is_status ? 200 : 503, is_status ? status_ok :
		    ping_disabled);
	} else if (strcmp(scenario, "auth") == 0) {
		reply(req, 401, "<html><title>Error 401 require "
		    "authentication</title></html>");
	} else if (strcmp(scenario, "junk") == 0) {
		reply(req, 200, is_status ? "{\"responseHeader\":{\"status\":0}}" :
		    ping_ok);
	} else if (strcmp(scenario, "error") == 0) {
		reply(req, 500, is_status ? "java.lang.OutOfMemoryError" :
		    ping_ok);
	} else if (strcmp(scenario, "pingjunk") == 0) {
		reply(req, 200, is_status ? status_ok : ping_products ?
		    "{\"status\":\"DEGRADED\"}" : "<xml/>");
	} else {
		fail_msg("no scenario %s", scenario);
	}
}

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->p = fake_host_load_plugin(SOLR_PLUGIN, &f->dl);
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
	const char *cores[] = { "products", "orders" };
	int fd;

	f->fds_before = fake_host_count_fds();
	f->fh = fake_host_new(f->p->options);
	f->state = NULL;
	f->requests = f->pings = f->nheld = 0;
	fd = local_socket(16, &f->port);
	assert_non_null(f->http = evhttp_new(fake_host_base(f->fh)));
	assert_int_equal(evhttp_accept_socket(f->http, fd), 0);
	evhttp_set_gencb(f->http, http_cb, f);
	fake_host_set_list(f->fh, "cores", cores, 2);
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

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
set_scenario(struct fixture *f, const char *scenario)
{
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s/solr/", f->port,
	    scenario);
	fake_host_set_string(f->fh, "base_url", url);
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

static const struct fake_result *
run_scenario(struct fixture *f, const char *scenario)
{
	set_scenario(f, scenario);
	new_instance(f);
	return run_check(f, 5000);
}

static void
assert_contains(const char *haystack, const char *needle)
{
	if (haystack == NULL || strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"",
		    haystack != NULL ? haystack : "(null)", needle);
}

static double
core_value(const struct fake_result *r, const char *name, const char *core)
{
	const struct fake_sample *s = fake_result_sample(r, name, "core",
	    core);

	if (s == NULL)
		fail_msg("no sample %s{core=\"%s\"}", name, core);
	assert_int_equal(s->type, TROIKA_METRIC_GAUGE);
	assert_int_equal(s->nlabels, 1);
	return s->value;
}

static double
up(const struct fake_result *r)
{
	const struct fake_sample *s = fake_result_sample(r, "solr_up", NULL,
	    NULL);

	assert_non_null(s);
	assert_int_equal(s->nlabels, 0);
	return s->value;
}

static void
assert_down(const struct fake_result *r)
{
	assert_int_equal(r->nsamples, 1);
	assert_true(up(r) == 0);
}

static void
assert_no_plugin_events(struct fixture *f)
{
	evhttp_free(f->http);
	f->http = NULL;
	fake_host_run_for(f->fh, 10);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
}

static void
test_descriptor(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(f->p->name, "solr");
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_ASYNC);
	assert_non_null(f->p->cancel);
	assert_null(f->p->actions);
}

static void
test_cores_ok(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r = run_scenario(f, "ok");

	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message, "2 cores OK: products 12000 docs, "
	    "orders 512 docs");
	assert_int_equal(r->nsamples, 15);
	assert_true(up(r) == 1);
	assert_true(core_value(r, "solr_ping_status", "products") == 1);
	assert_true(core_value(r, "solr_ping_status", "orders") == 1);
	assert_true(core_value(r, "solr_core_num_docs", "products") == 12000);
	assert_true(core_value(r, "solr_core_num_docs", "orders") == 512);
	assert_true(core_value(r, "solr_core_max_docs", "orders") == 530);
	assert_true(core_value(r, "solr_core_deleted_docs", "orders") == 18);
	assert_true(core_value(r, "solr_core_index_size_bytes", "products") ==
	    73400320);
	assert_true(core_value(r, "solr_core_segments", "products") == 9);
	assert_true(core_value(r, "solr_core_uptime_seconds", "orders") ==
	    7532);
	assert_int_equal(f->requests, 3);
	assert_int_equal(f->pings, 2);
	assert_no_plugin_events(f);
}

static void
test_core_failed_to_load(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r = run_scenario(f, "initfail");

	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "core products failed to load: "
	    "org.apache.solr.common.SolrException:org.apache.solr.common."
	    "SolrException: Could not load conf for core products: Error "
	    "loading solr config from /var/solr/d...");
	assert_true(up(r) == 1);
	assert_true(core_value(r, "solr_ping_status", "products") == 0);
	assert_true(core_value(r, "solr_ping_status", "orders") == 1);
	assert_null(fake_result_sample(r, "solr_core_num_docs", "core",
	    "products"));
	assert_true(core_value(r, "solr_core_num_docs", "orders") == 512);
}

static void
test_core_missing(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r = run_scenario(f, "missing");

	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "core products is not loaded");
	assert_true(core_value(r, "solr_ping_status", "products") == 0);
	assert_int_equal(r->nsamples, 1 + 1 + 7);
}

static void
test_pings_fail(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r = run_scenario(f, "disabled");

	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "ping of core products failed: HTTP "
	    "503: Service disabled; ping of core orders failed: HTTP 503: "
	    "Service disabled");
	assert_true(core_value(r, "solr_ping_status", "products") == 0);
	/* The numbers still come from STATUS. */
	assert_true(core_value(r, "solr_core_num_docs", "products") == 12000);

	r = run_scenario(f, "pingjunk");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "ping of core products failed: status "
	    "\"DEGRADED\"; ping of core orders failed: reply is not JSON (");
}

static void
test_admin_api_errors(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r = run_scenario(f, "auth");

	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message, "HTTP 401 from the core admin API: "
	    "user and password were refused, or the user may not read it");
	assert_down(r);

	r = run_scenario(f, "junk");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "not a core STATUS reply: "
	    "{\"responseHeader\":{\"status\":0}}");
	assert_down(r);

	r = run_scenario(f, "error");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "HTTP 500 from the core admin API: "
	    "\"java.lang.OutOfMemoryError\"");
	assert_down(r);
}

static void
test_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char url[64];
	int port, fd = local_socket(-1, &port);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/solr", port);
	fake_host_set_string(f->fh, "base_url", url);
	new_instance(f);
	r = run_check(f, 5000);
	close(fd);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "connection refused: ");
	assert_down(r);
	assert_int_equal(fake_host_curl_adds(f->fh), 3);
}

static void
test_timeout_and_cancel(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	struct troika_task *task;

	set_scenario(f, "slow");
	new_instance(f);
	r = run_check(f, 400);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "timed out after 3");
	assert_down(r);
	assert_int_equal(f->nheld, 3);

	task = fake_host_task(f->fh, 5000);
	fake_host_check(f->fh, f->p, f->state, task);
	for (int i = 0; i < 100 && f->nheld < 6; i++)
		fake_host_run_for(f->fh, 10);
	assert_int_equal(f->nheld, 6);
	fake_host_cancel(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_curl_removes(f->fh), 3);
	fake_host_run_for(f->fh, 100);
	assert_int_equal(fake_host_done_count(f->fh), 1);
	assert_no_plugin_events(f);
}

static void
test_bad_options(void **state)
{
	struct fixture *f = *state;
	const char *bad[] = { "products", "../admin" };
	const char *twice[] = { "orders", "orders" };
	const char *none[] = { NULL };
	const char *many[33];

	set_scenario(f, "ok");
	fake_host_set_list(f->fh, "cores", bad, 2);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh), "cores: \"../admin\" is "
	    "not a Solr core name (letters, digits, '.', '-', '_')");
	fake_host_set_list(f->fh, "cores", twice, 2);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh),
	    "cores: \"orders\" is listed twice");
	fake_host_set_list(f->fh, "cores", none, 0);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh),
	    "cores: list 1 to 32 cores (0 given)");
	for (size_t i = 0; i < 33; i++)
		many[i] = "c";
	fake_host_set_list(f->fh, "cores", many, 33);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	fake_host_set_list(f->fh, "cores", bad, 1);
	fake_host_set_string(f->fh, "base_url", "http://127.0.0.1/solr?x=1");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh), "base_url "
	    "\"http://127.0.0.1/solr?x=1\" must not have a query");
	assert_null(f->state);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cores_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_core_failed_to_load, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_core_missing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pings_fail, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_admin_api_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_and_cancel, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_options, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
