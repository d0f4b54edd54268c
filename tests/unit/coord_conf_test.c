/*
 * Unit tests of core/coord/coord_conf.c: defaults, every key, and every
 * refusal with its file:line:col.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "coord_conf.h"

static struct coord_conf *
parse_ok(const char *text)
{
	struct coord_conf *c = NULL;
	char *errs = NULL;
	int r;

	r = coord_conf_parse(text, strlen(text), "t.yaml", &c, &errs);
	if (r != 0)
		fail_msg("parse failed (%d): %s", r, errs ? errs : "");
	assert_null(errs);
	return c;
}

/* The text must be refused with exactly these error lines. */
static void
parse_err(const char *text, const char *want)
{
	struct coord_conf *c = (struct coord_conf *)&c;
	char *errs = NULL;

	assert_int_equal(
	    coord_conf_parse(text, strlen(text), "t.yaml", &c, &errs), -EINVAL);
	assert_null(c);
	assert_non_null(errs);
	assert_string_equal(errs, want);
	free(errs);
}

static void
test_minimal_defaults(void **state)
{
	struct coord_conf *c = parse_ok("listen: \"127.0.0.1:7443\"\n");
	char host[256];

	(void)state;
	assert_string_equal(c->listen, "127.0.0.1:7443");
	assert_string_equal(c->listen_host, "127.0.0.1");
	assert_int_equal(c->listen_port, 7443);
	assert_null(c->metrics_listen);
	assert_int_equal(c->log_level, LOG_INFO);
	assert_int_equal(c->log_target, LOG_TARGET_STDERR);
	assert_null(c->tls_cert);
	assert_int_equal(c->heartbeat_ms, 5000);
	assert_int_equal(c->agent_timeout_ms, 15000);
	/* The name defaults to the host name. */
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	assert_string_equal(c->name, host);
	coord_conf_free(c);
}

static void
test_every_key(void **state)
{
	struct coord_conf *c =
	    parse_ok("node:\n  name: coord-2\n"
	             "listen: \"[::1]:0\"\n"
	             "metrics:\n  listen: 127.0.0.1:9465\n"
	             "log:\n  level: debug\n  target: syslog\n"
	             "agents:\n  heartbeat: 1500ms\n  timeout: 1m\n"
	             "tls:\n  cert: /c.pem\n  key: /k.pem\n  ca: /ca.pem\n");
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_string_equal(c->name, "coord-2");
	assert_string_equal(c->listen_host, "::1");
	assert_int_equal(c->listen_port, 0);
	assert_string_equal(c->metrics_listen, "127.0.0.1:9465");
	assert_int_equal(c->log_level, LOG_DEBUG);
	assert_int_equal(c->log_target, LOG_TARGET_SYSLOG);
	assert_string_equal(c->tls_cert, "/c.pem");
	assert_string_equal(c->tls_key, "/k.pem");
	assert_string_equal(c->tls_ca, "/ca.pem");
	assert_int_equal(c->heartbeat_ms, 1500);
	assert_int_equal(c->agent_timeout_ms, 60000);

	/* --print gives YAML that loads back to the same. */
	assert_non_null(f = open_memstream(&buf, &len));
	coord_conf_print(c, f);
	fclose(f);
	assert_string_equal(buf,
	    "node:\n  name: \"coord-2\"\n"
	    "listen: \"[::1]:0\"\n"
	    "metrics:\n  listen: \"127.0.0.1:9465\"\n"
	    "agents:\n  heartbeat: 1s500ms\n  timeout: 1m\n"
	    "log:\n  level: debug\n  target: syslog\n"
	    "tls:\n  cert: \"/c.pem\"\n  key: \"/k.pem\"\n  ca: \"/ca.pem\"\n");
	coord_conf_free(c);
	c = parse_ok(buf);
	assert_string_equal(c->name, "coord-2");
	assert_string_equal(c->tls_ca, "/ca.pem");
	assert_int_equal(c->heartbeat_ms, 1500);
	assert_int_equal(c->agent_timeout_ms, 60000);
	coord_conf_free(c);
	free(buf);
	/* The timeout defaults to three heartbeats. */
	c = parse_ok("listen: h:1\nagents: {heartbeat: 200ms}\n");
	assert_int_equal(c->heartbeat_ms, 200);
	assert_int_equal(c->agent_timeout_ms, 600);
	coord_conf_free(c);
}

static void
test_errors(void **state)
{
	(void)state;
	parse_err("", "t.yaml: empty configuration: 'listen' is required\n");
	parse_err("- a\n",
	    "t.yaml:1:1: expected a mapping at the top, got a "
	    "sequence\n");
	parse_err("node: {name: x}\n",
	    "t.yaml:1:1: 'listen' (the gRPC host:port) is required\n");
	parse_err("listen: \"x\"\nfoo: 1\n",
	    "t.yaml:1:9: listen: 'x' is not host:port\n"
	    "t.yaml:2:1: unknown key 'foo'\n");
	parse_err("listen: \"h:1\"\nnode: {name: ~, nick: a}\n",
	    "t.yaml:2:17: unknown key 'nick' in node\n");
	parse_err("listen: \"h:1\"\nnode: {name: ~}\n",
	    "t.yaml:2:14: name: expected a non-empty string, got null\n");
	parse_err("listen: \"h:1\"\nnode: [a]\n",
	    "t.yaml:2:7: node: expected a mapping, got a sequence\n");
	parse_err("listen: \"h:1\"\nlog: {level: loud, target: x}\n",
	    "t.yaml:2:14: level: expected err, warning, info or debug, got "
	    "'loud'\n"
	    "t.yaml:2:28: target: expected stderr or syslog, got 'x'\n");
	/* The metrics port may not be 0, the gRPC one may (tests). */
	parse_err("listen: \"h:1\"\nmetrics: {listen: \"h:0\"}\n",
	    "t.yaml:2:19: listen: 'h:0' is not host:port\n");
	parse_err("listen: \"h:65536\"\n",
	    "t.yaml:1:9: listen: 'h:65536' is not host:port\n");
	parse_err("listen: \"::1:80\"\n",
	    "t.yaml:1:9: listen: '::1:80' is not host:port\n");
	parse_err("listen: \"h:1\"\ntls: {cert: a}\n",
	    "t.yaml:2:1: tls: cert and key go together\n");
	parse_err("listen: \"h:1\"\ntls: {ca: a}\n",
	    "t.yaml:2:1: tls: ca (client certificates) needs cert and key\n");
	parse_err("listen: h:1\nagents: {heartbeat: 5, timeout: 50ms}\n",
	    "t.yaml:2:21: heartbeat: expected a duration such as 5s or 500ms, "
	    "got '5'\n"
	    "t.yaml:2:33: timeout: 50ms is out of range (100ms to 1h)\n");
	parse_err("listen: h:1\nagents: {heartbeat: 2h}\n",
	    "t.yaml:2:21: heartbeat: 2h is out of range (100ms to 1h)\n");
	parse_err("listen: h:1\nagents: {heartbeat: 5s, timeout: 5s}\n",
	    "t.yaml:2:1: agents: timeout must be longer than heartbeat\n");
	parse_err("listen: h:1\nnode: {name: \"a\\nb\"}\n",
	    "t.yaml:2:14: name: control characters are not allowed\n");
	parse_err("listen: h:1\nagents: {beat: 5s}\n",
	    "t.yaml:2:10: unknown key 'beat' in agents\n");
	parse_err("listen: \"h:1\"\nlisten: \"h:2\"\n",
	    "t.yaml:2:1: duplicate key 'listen' (first at 1:1)\n");
}

static void
test_load_file(void **state)
{
	char path[] = "/tmp/coord_conf_testXXXXXX";
	struct coord_conf *c = NULL;
	char *errs = NULL;
	int fd;

	(void)state;
	assert_int_equal(
	    coord_conf_load("/nonexistent/coord.yaml", &c, &errs), -ENOENT);
	assert_null(c);
	assert_null(errs);
	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(write(fd, "listen: h:1\nx: 1\n", 17), 17);
	close(fd);
	assert_int_equal(coord_conf_load(path, &c, &errs), -EINVAL);
	assert_non_null(strstr(errs, ":2:1: unknown key 'x'\n"));
	assert_int_equal(strncmp(errs, path, strlen(path)), 0);
	free(errs);
	unlink(path);
	/* The sample in conf/ loads as it is. */
	assert_int_equal(
	    coord_conf_load(TEST_SOURCE_DIR "/../conf/coord.yaml", &c, &errs),
	    0);
	assert_string_equal(c->name, "coord-1");
	assert_string_equal(c->listen, "127.0.0.1:7443");
	assert_string_equal(c->metrics_listen, "127.0.0.1:9465");
	coord_conf_free(c);
	coord_conf_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_minimal_defaults),
	    cmocka_unit_test(test_every_key),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_load_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
