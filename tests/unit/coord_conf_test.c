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
	    "tls:\n  cert: \"/c.pem\"\n  key: \"/k.pem\"\n  ca: \"/ca.pem\"\n"
	    "store: local\n"
	    "quorum: 1\n"
	    "recovery:\n  max_concurrent: 1\n  max_per_hour: 10\n"
	    "  nodes:\n    down_after: 10s\n"
	    "  policies: []\n"
	    "    # implicit, last: every check no policy above matches\n"
	    "    #- match: \"*\"\n"
	    "    #  fail_after: 3\n"
	    "    #  certain_after: 2\n"
	    "    #  down_after: 30s\n"
	    "    #  ladder: [restart, restart, alert]\n"
	    "    #  max_attempts: 3\n"
	    "    #  window: 1h\n"
	    "    #  backoff: 10s\n"
	    "    #  cooldown: 5m\n"
	    "    #  action_timeout: 2m\n"
	    "tilt:\n  stall: 2s\n  clock_jump: 5s\n  grace: 30s\n");
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

/* The store, recovery and tilt keys when none is written. */
static void
test_recovery_defaults(void **state)
{
	struct coord_conf *c = parse_ok("listen: h:1\n");
	const struct coord_policy *pol;

	(void)state;
	assert_int_equal(c->store, COORD_STORE_LOCAL);
	assert_string_equal(coord_store_kind_str(c->store), "local");
	assert_string_equal(coord_store_kind_str(COORD_STORE_ETCD), "etcd");
	assert_null(c->etcd_endpoints);
	assert_int_equal(c->netcd_endpoints, 0);
	assert_string_equal(c->etcd_prefix, "/troika");
	assert_int_equal(c->etcd_timeout_ms, 1000);
	assert_int_equal(c->lease_ttl_ms, 5000);
	assert_null(c->state_file);
	assert_int_equal(c->quorum, 1);
	assert_int_equal(c->node_down_after_ms, 10000);
	assert_int_equal(c->max_concurrent, 1);
	assert_int_equal(c->max_per_hour, 10);
	assert_int_equal(c->tilt_stall_ms, 2000);
	assert_int_equal(c->tilt_jump_ms, 5000);
	assert_int_equal(c->tilt_grace_ms, 30000);
	/* Only the implicit "*", with every default. */
	assert_int_equal(c->npolicies, 1);
	pol = coord_conf_policy(c, "anything");
	assert_ptr_equal(pol, &c->policies[0]);
	assert_string_equal(pol->match, "*");
	assert_int_equal(pol->fail_after, 3);
	assert_int_equal(pol->certain_after, 2);
	assert_int_equal(pol->down_after_ms, 30000);
	assert_int_equal(pol->nladder, 3);
	assert_string_equal(pol->ladder[0], "restart");
	assert_string_equal(pol->ladder[1], "restart");
	assert_string_equal(pol->ladder[2], "alert");
	assert_int_equal(pol->max_attempts, 3);
	assert_int_equal(pol->window_ms, 3600000);
	assert_int_equal(pol->backoff_ms, 10000);
	assert_int_equal(pol->cooldown_ms, 300000);
	assert_int_equal(pol->action_timeout_ms, 120000);
	coord_conf_free(c);
	/* store local written out; quorum 1 is allowed. */
	c = parse_ok("listen: h:1\nstore: local\nquorum: 1\n"
	             "state_file: /var/lib/t.state\n");
	assert_int_equal(c->quorum, 1);
	assert_string_equal(c->state_file, "/var/lib/t.state");
	coord_conf_free(c);
}

static void
test_store_etcd(void **state)
{
	struct coord_conf *c;

	(void)state;
	c = parse_ok("listen: h:1\nstore: etcd\n"
	             "etcd: {endpoints: [\"a:2379\", \"[::1]:2379\", "
	             "\"b:1\"]}\n");
	assert_int_equal(c->store, COORD_STORE_ETCD);
	assert_int_equal(c->netcd_endpoints, 3);
	assert_string_equal(c->etcd_endpoints[0], "a:2379");
	assert_string_equal(c->etcd_endpoints[1], "[::1]:2379");
	assert_string_equal(c->etcd_endpoints[2], "b:1");
	/* Three coordinators: two must agree, by default. */
	assert_int_equal(c->quorum, 2);
	assert_string_equal(c->etcd_prefix, "/troika");
	coord_conf_free(c);
	c = parse_ok("listen: h:1\nstore: etcd\nquorum: 3\n"
	             "etcd:\n  endpoints: [\"a:1\"]\n  prefix: /a/b\n"
	             "  timeout: 100ms\n  lease_ttl: 60s\n");
	assert_int_equal(c->quorum, 3);
	assert_int_equal(c->netcd_endpoints, 1);
	assert_string_equal(c->etcd_prefix, "/a/b");
	assert_int_equal(c->etcd_timeout_ms, 100);
	assert_int_equal(c->lease_ttl_ms, 60000);
	coord_conf_free(c);
	c = parse_ok("listen: h:1\nstore: etcd\n"
	             "etcd: {endpoints: [\"a:1\"], timeout: 10s, "
	             "lease_ttl: 2s}\n");
	assert_int_equal(c->etcd_timeout_ms, 10000);
	assert_int_equal(c->lease_ttl_ms, 2000);
	coord_conf_free(c);
}

/* What --print gives loads back to the same output. */
static char *
print_conf(const struct coord_conf *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	assert_non_null(f = open_memstream(&buf, &len));
	coord_conf_print(c, f);
	fclose(f);
	return buf;
}

static void
test_policies(void **state)
{
	static const char text[] =
	    "listen: h:1\n"
	    "recovery:\n"
	    "  max_concurrent: 100\n"
	    "  max_per_hour: 10000\n"
	    "  nodes: {down_after: 1d}\n"
	    "  policies:\n"
	    "    - match: \"mysql*\"\n"
	    "      fail_after: 100\n"
	    "      certain_after: 100\n"
	    "      down_after: 1s\n"
	    "      ladder: [restart, rejoin, alert]\n"
	    "      max_attempts: 100\n"
	    "      window: 1m\n"
	    "      backoff: 1h\n"
	    "      cooldown: 0s\n"
	    "      action_timeout: 1h\n"
	    "    - match: \"redis-[0-9]\"\n"
	    "      fail_after: 1\n"
	    "      max_attempts: 0\n"
	    "    - match: web\n"
	    "      certain_after: 1\n"
	    "      ladder: [alert]\n"
	    "tilt: {stall: 1m, clock_jump: 100ms, grace: 0s}\n";
	struct coord_conf *c = parse_ok(text), *c2;
	const struct coord_policy *pol;
	char *out, *out2;

	(void)state;
	assert_int_equal(c->max_concurrent, 100);
	assert_int_equal(c->max_per_hour, 10000);
	assert_int_equal(c->node_down_after_ms, 86400000);
	assert_int_equal(c->tilt_stall_ms, 60000);
	assert_int_equal(c->tilt_jump_ms, 100);
	assert_int_equal(c->tilt_grace_ms, 0);
	assert_int_equal(c->npolicies, 4);
	pol = coord_conf_policy(c, "mysql-main");
	assert_ptr_equal(pol, &c->policies[0]);
	assert_int_equal(pol->fail_after, 100);
	assert_int_equal(pol->certain_after, 100);
	assert_int_equal(pol->down_after_ms, 1000);
	assert_int_equal(pol->nladder, 3);
	assert_string_equal(pol->ladder[1], "rejoin");
	assert_int_equal(pol->max_attempts, 100);
	assert_int_equal(pol->window_ms, 60000);
	assert_int_equal(pol->backoff_ms, 3600000);
	assert_int_equal(pol->cooldown_ms, 0);
	assert_int_equal(pol->action_timeout_ms, 3600000);
	assert_ptr_equal(coord_conf_policy(c, "mysql"), &c->policies[0]);
	/* Only fail_after written: certain_after follows it down. */
	pol = coord_conf_policy(c, "redis-1");
	assert_ptr_equal(pol, &c->policies[1]);
	assert_int_equal(pol->fail_after, 1);
	assert_int_equal(pol->certain_after, 1);
	assert_int_equal(pol->max_attempts, 0);
	/* Unwritten keys of a written policy take the defaults. */
	assert_int_equal(pol->down_after_ms, 30000);
	assert_int_equal(pol->nladder, 3);
	pol = coord_conf_policy(c, "web");
	assert_ptr_equal(pol, &c->policies[2]);
	assert_int_equal(pol->fail_after, 3);
	assert_int_equal(pol->certain_after, 1);
	assert_int_equal(pol->nladder, 1);
	assert_string_equal(pol->ladder[0], "alert");
	/* A glob matches the whole name; the rest fall to the implicit. */
	assert_ptr_equal(coord_conf_policy(c, "redis-10"), &c->policies[3]);
	assert_ptr_equal(coord_conf_policy(c, "webx"), &c->policies[3]);
	assert_ptr_equal(coord_conf_policy(c, "my-mysql"), &c->policies[3]);
	assert_string_equal(c->policies[3].match, "*");
	assert_int_equal(c->policies[3].nladder, 3);

	/* --print, loaded again, prints the same. */
	out = print_conf(c);
	assert_non_null(strstr(out,
	    "  policies:\n"
	    "    - match: \"mysql*\"\n"
	    "      fail_after: 100\n"
	    "      certain_after: 100\n"
	    "      down_after: 1s\n"
	    "      ladder: [restart, rejoin, alert]\n"
	    "      max_attempts: 100\n"
	    "      window: 1m\n"
	    "      backoff: 1h\n"
	    "      cooldown: 0s\n"
	    "      action_timeout: 1h\n"
	    "    - match: \"redis-[0-9]\"\n"
	    "      fail_after: 1\n"
	    "      certain_after: 1\n"));
	assert_non_null(strstr(out,
	    "    # implicit, last: every check no policy above matches\n"
	    "    #- match: \"*\"\n"));
	assert_non_null(strstr(out,
	    "tilt:\n  stall: 1m\n  clock_jump: 100ms\n"
	    "  grace: 0s\n"));
	c2 = parse_ok(out);
	assert_int_equal(c2->npolicies, 4);
	out2 = print_conf(c2);
	assert_string_equal(out, out2);
	free(out);
	free(out2);
	coord_conf_free(c2);
	coord_conf_free(c);

	/* The etcd keys print too, and load back. */
	c = parse_ok("listen: h:1\nstore: etcd\nquorum: 2\n"
	             "etcd: {endpoints: [\"a:1\", \"b:2\"], prefix: /p}\n");
	out = print_conf(c);
	assert_non_null(strstr(out,
	    "store: etcd\netcd:\n  endpoints: [\"a:1\", \"b:2\"]\n"
	    "  prefix: \"/p\"\n  timeout: 1s\n  lease_ttl: 5s\n"
	    "quorum: 2\n"));
	c2 = parse_ok(out);
	out2 = print_conf(c2);
	assert_string_equal(out, out2);
	free(out);
	free(out2);
	coord_conf_free(c2);
	coord_conf_free(c);
}

/* "listen: h:1\n" and then text: refused with want. */
static void
parse_err_after_listen(const char *text, const char *want)
{
	char *buf;

	assert_true(asprintf(&buf, "listen: h:1\n%s", text) > 0);
	parse_err(buf, want);
	free(buf);
}

static void
test_recovery_errors(void **state)
{
	char text[16384], name[66];
	size_t off;

	(void)state;
	/* store */
	parse_err_after_listen("store: raft\n",
	    "t.yaml:2:8: store: expected local or etcd, got 'raft'\n");
	parse_err_after_listen("store: [etcd]\n",
	    "t.yaml:2:8: store: expected local or etcd, got a sequence\n");
	/* A bad store: no guesses about what depends on it. */
	parse_err_after_listen("store: x\netcd: {prefix: /a}\nquorum: 2\n",
	    "t.yaml:2:8: store: expected local or etcd, got 'x'\n");
	parse_err_after_listen(
	    "store: etcd\n", "t.yaml:2:1: store etcd needs etcd.endpoints\n");
	parse_err_after_listen("store: etcd\netcd: {prefix: /a}\n",
	    "t.yaml:2:1: store etcd needs etcd.endpoints\n");
	parse_err_after_listen(
	    "store: etcd\netcd: {endpoints: [\"a:1\"]}\nstate_file: /s\n",
	    "t.yaml:4:1: state_file: only with store local (etcd keeps the "
	    "state)\n");
	parse_err_after_listen("etcd: {endpoints: [\"a:1\"]}\n",
	    "t.yaml:2:1: etcd: only with store etcd (store is local)\n");
	parse_err_after_listen("quorum: 2\n",
	    "t.yaml:2:1: quorum: store local is one coordinator alone: "
	    "quorum must be 1\n");
	parse_err_after_listen("state_file: \"\"\n",
	    "t.yaml:2:13: state_file: expected a non-empty string, got ''\n");
	parse_err_after_listen("state_file: \"a\\tb\"\n",
	    "t.yaml:2:13: state_file: control characters are not allowed\n");
	/* quorum */
	parse_err_after_listen("store: etcd\netcd: {endpoints: [\"a:1\"]}\n"
	                       "quorum: 0\n",
	    "t.yaml:4:9: quorum: expected an integer from 1 to 16, got '0'\n");
	parse_err_after_listen("store: etcd\netcd: {endpoints: [\"a:1\"]}\n"
	                       "quorum: two\n",
	    "t.yaml:4:9: quorum: expected an integer from 1 to 16, got "
	    "'two'\n");
	parse_err_after_listen("store: etcd\netcd: {endpoints: [\"a:1\"]}\n"
	                       "quorum: 17\n",
	    "t.yaml:4:9: quorum: expected an integer from 1 to 16, got "
	    "'17'\n");
	/* etcd */
	parse_err_after_listen("store: etcd\netcd: [a]\n",
	    "t.yaml:3:7: etcd: expected a mapping, got a sequence\n"
	    "t.yaml:2:1: store etcd needs etcd.endpoints\n");
	parse_err_after_listen("store: etcd\netcd: {endpoints: [\"a:1\"], "
	                       "members: 3}\n",
	    "t.yaml:3:28: unknown key 'members' in etcd\n");
	parse_err_after_listen("store: etcd\netcd: {endpoints: \"a:1\"}\n",
	    "t.yaml:3:19: endpoints: expected a list of host:port, got "
	    "'a:1'\n");
	parse_err_after_listen("store: etcd\netcd: {endpoints: []}\n",
	    "t.yaml:3:19: endpoints: expected 1 to 16 host:port, got 0\n");
	off = (size_t)snprintf(
	    text, sizeof(text), "store: etcd\netcd: {endpoints: [");
	for (int i = 0; i < 17; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off,
		    "%s\"h%d:1\"", i ? ", " : "", i);
	snprintf(text + off, sizeof(text) - off, "]}\n");
	parse_err_after_listen(text,
	    "t.yaml:3:19: endpoints: expected 1 to 16 host:port, got 17\n");
	parse_err_after_listen(
	    "store: etcd\netcd: {endpoints: [\"a\", \"a:0\", {x: 1}, "
	    "\"a:1\", \"a:1\"]}\n",
	    "t.yaml:3:20: endpoints: expected host:port, got 'a'\n"
	    "t.yaml:3:25: endpoints: expected host:port, got 'a:0'\n"
	    "t.yaml:3:32: endpoints: expected host:port, got a mapping\n"
	    "t.yaml:3:47: endpoints: 'a:1' is listed twice\n");
	parse_err_after_listen(
	    "store: etcd\n"
	    "etcd:\n  endpoints: [\"a:1\"]\n  prefix: troika\n",
	    "t.yaml:5:11: prefix: expected a key prefix such as /troika (a "
	    "leading '/', no trailing '/', no spaces)\n");
	parse_err_after_listen(
	    "store: etcd\n"
	    "etcd:\n  endpoints: [\"a:1\"]\n  prefix: /troika/\n",
	    "t.yaml:5:11: prefix: expected a key prefix such as /troika (a "
	    "leading '/', no trailing '/', no spaces)\n");
	parse_err_after_listen("store: etcd\n"
	                       "etcd:\n  endpoints: [\"a:1\"]\n  prefix: /\n",
	    "t.yaml:5:11: prefix: expected a key prefix such as /troika (a "
	    "leading '/', no trailing '/', no spaces)\n");
	parse_err_after_listen(
	    "store: etcd\n"
	    "etcd:\n  endpoints: [\"a:1\"]\n  prefix: \"/a b\"\n",
	    "t.yaml:5:11: prefix: expected a key prefix such as /troika (a "
	    "leading '/', no trailing '/', no spaces)\n");
	parse_err_after_listen(
	    "store: etcd\n"
	    "etcd:\n  endpoints: [\"a:1\"]\n  prefix: \"/a\\nb\"\n",
	    "t.yaml:5:11: prefix: control characters are not allowed\n");
	parse_err_after_listen(
	    "store: etcd\n"
	    "etcd:\n  endpoints: [\"a:1\"]\n  timeout: 99ms\n",
	    "t.yaml:5:12: timeout: 99ms is out of range (100ms to 10s)\n");
	parse_err_after_listen("store: etcd\n"
	                       "etcd:\n  endpoints: [\"a:1\"]\n  timeout: 1\n",
	    "t.yaml:5:12: timeout: expected a duration such as 5s or 500ms, "
	    "got '1'\n");
	parse_err_after_listen(
	    "store: etcd\n"
	    "etcd:\n  endpoints: [\"a:1\"]\n  lease_ttl: 1s\n",
	    "t.yaml:5:14: lease_ttl: 1s is out of range (2s to 1m)\n");
	parse_err_after_listen(
	    "store: etcd\n"
	    "etcd:\n  endpoints: [\"a:1\"]\n  lease_ttl: 61s\n",
	    "t.yaml:5:14: lease_ttl: 61s is out of range (2s to 1m)\n");
	parse_err_after_listen(
	    "store: etcd\n"
	    "etcd:\n  endpoints: [\"a:1\"]\n  lease_ttl: 5s1ms\n",
	    "t.yaml:5:14: lease_ttl: etcd leases are whole seconds, got "
	    "5s1ms\n");

	/* recovery */
	parse_err_after_listen("recovery: 1\n",
	    "t.yaml:2:11: recovery: expected a mapping, got a scalar\n");
	parse_err_after_listen("recovery: {max_concurent: 2, "
	                       "max_concurrent: 0}\n",
	    "t.yaml:2:12: unknown key 'max_concurent' in recovery\n"
	    "t.yaml:2:46: max_concurrent: expected an integer from 1 to 100, "
	    "got '0'\n");
	parse_err_after_listen("recovery: {max_concurrent: 101}\n",
	    "t.yaml:2:28: max_concurrent: expected an integer from 1 to 100, "
	    "got '101'\n");
	parse_err_after_listen("recovery: {max_per_hour: -1}\n",
	    "t.yaml:2:26: max_per_hour: expected an integer from 0 to 10000, "
	    "got '-1'\n");
	parse_err_after_listen("recovery: {max_per_hour: 10001}\n",
	    "t.yaml:2:26: max_per_hour: expected an integer from 0 to 10000, "
	    "got '10001'\n");
	parse_err_after_listen("recovery: {max_per_hour: 1.5}\n",
	    "t.yaml:2:26: max_per_hour: expected an integer from 0 to 10000, "
	    "got '1.5'\n");
	parse_err_after_listen("recovery: {nodes: 10s}\n",
	    "t.yaml:2:19: nodes: expected a mapping, got a scalar\n");
	parse_err_after_listen(
	    "recovery: {nodes: {down_after: 999ms, up: 1}}\n",
	    "t.yaml:2:32: down_after: 999ms is out of range (1s to 1d)\n"
	    "t.yaml:2:39: unknown key 'up' in nodes\n");
	parse_err_after_listen("recovery: {nodes: {down_after: 1d1s}}\n",
	    "t.yaml:2:32: down_after: 1d1s is out of range (1s to 1d)\n");
	parse_err_after_listen("recovery: {policies: {match: x}}\n",
	    "t.yaml:2:22: policies: expected a list of policies, got a "
	    "mapping\n");
	off = (size_t)snprintf(text, sizeof(text), "recovery:\n  policies:\n");
	for (int i = 0; i < 257; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off,
		    "    - {match: \"c%d\"}\n", i);
	parse_err_after_listen(
	    text, "t.yaml:4:5: policies: at most 256 policies, got 257\n");
	parse_err_after_listen("recovery:\n  policies: [x, [y], ~]\n",
	    "t.yaml:3:14: policy: expected a mapping, got a scalar\n"
	    "t.yaml:3:17: policy: expected a mapping, got a sequence\n"
	    "t.yaml:3:22: policy: expected a mapping, got null\n");
	parse_err_after_listen(
	    "recovery:\n  policies:\n    - {fail_after: 2}\n",
	    "t.yaml:4:7: policy: 'match' (a glob on check names, \"*\" for "
	    "all) is required\n");
	parse_err_after_listen(
	    "recovery:\n  policies:\n    - {match: \"a\\u0001\"}\n",
	    "t.yaml:4:15: match: control characters are not allowed\n");
	parse_err_after_listen(
	    "recovery:\n  policies:\n    - {match: a, retries: 2}\n",
	    "t.yaml:4:18: unknown key 'retries' in policy\n");
	parse_err_after_listen("recovery:\n  policies:\n"
	                       "    - {match: a, fail_after: 0, "
	                       "certain_after: 101}\n",
	    "t.yaml:4:30: fail_after: expected an integer from 1 to 100, got "
	    "'0'\n"
	    "t.yaml:4:48: certain_after: expected an integer from 1 to 100, "
	    "got '101'\n");
	/* certain_after written above fail_after (written or default). */
	parse_err_after_listen("recovery:\n  policies:\n"
	                       "    - {match: a, fail_after: 2, "
	                       "certain_after: 3}\n"
	                       "    - {match: b, certain_after: 4}\n",
	    "t.yaml:4:7: policy: certain_after (3) must not exceed fail_after "
	    "(2)\n"
	    "t.yaml:5:7: policy: certain_after (4) must not exceed fail_after "
	    "(3)\n");
	parse_err_after_listen("recovery:\n  policies:\n"
	                       "    - {match: a, down_after: 999ms}\n"
	                       "    - {match: b, down_after: 1d1ms}\n",
	    "t.yaml:4:30: down_after: 999ms is out of range (1s to 1d)\n"
	    "t.yaml:5:30: down_after: 1d1ms is out of range (1s to 1d)\n");
	parse_err_after_listen(
	    "recovery:\n  policies:\n    - {match: a, ladder: restart}\n",
	    "t.yaml:4:26: ladder: expected a list of actions such as "
	    "[restart, alert], got 'restart'\n");
	parse_err_after_listen(
	    "recovery:\n  policies:\n    - {match: a, ladder: []}\n",
	    "t.yaml:4:26: ladder: expected 1 to 32 actions ([alert]: alert "
	    "only), got 0\n");
	off = (size_t)snprintf(text, sizeof(text),
	    "recovery:\n  policies:\n    - {match: a, ladder: [");
	for (int i = 0; i < 33; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "%s",
		    i ? ", restart" : "restart");
	snprintf(text + off, sizeof(text) - off, "]}\n");
	parse_err_after_listen(text,
	    "t.yaml:4:26: ladder: expected 1 to 32 actions ([alert]: alert "
	    "only), got 33\n");
	/* Names: [a-z0-9_-], 1 to 64 characters. */
	memset(name, 'a', 65);
	name[65] = '\0';
	snprintf(text, sizeof(text),
	    "recovery:\n  policies:\n"
	    "    - {match: a, ladder: [Restart, re.start, \"\", ~, %s, "
	    "%.64s, re_start-2]}\n",
	    name, name);
	parse_err_after_listen(text,
	    "t.yaml:4:27: ladder: expected an action name ([a-z0-9_-], at "
	    "most 64), got 'Restart'\n"
	    "t.yaml:4:36: ladder: expected an action name ([a-z0-9_-], at "
	    "most 64), got 're.start'\n"
	    "t.yaml:4:46: ladder: expected an action name ([a-z0-9_-], at "
	    "most 64), got ''\n"
	    "t.yaml:4:50: ladder: expected an action name ([a-z0-9_-], at "
	    "most 64), got null\n"
	    "t.yaml:4:53: ladder: expected an action name ([a-z0-9_-], at "
	    "most 64), got "
	    "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "'"
	    "\n");
	parse_err_after_listen("recovery:\n  policies:\n"
	                       "    - {match: a, max_attempts: 101}\n",
	    "t.yaml:4:32: max_attempts: expected an integer from 0 to 100, "
	    "got '101'\n");
	parse_err_after_listen("recovery:\n  policies:\n"
	                       "    - {match: a, window: 59s}\n"
	                       "    - {match: b, window: 7d1ms}\n"
	                       "    - {match: c, backoff: 1h1ms}\n"
	                       "    - {match: d, cooldown: 1d1ms}\n"
	                       "    - {match: e, action_timeout: 999ms}\n"
	                       "    - {match: f, action_timeout: 1h1ms}\n",
	    "t.yaml:4:26: window: 59s is out of range (1m to 7d)\n"
	    "t.yaml:5:26: window: 7d1ms is out of range (1m to 7d)\n"
	    "t.yaml:6:27: backoff: 1h1ms is out of range (0s to 1h)\n"
	    "t.yaml:7:28: cooldown: 1d1ms is out of range (0s to 1d)\n"
	    "t.yaml:8:34: action_timeout: 999ms is out of range (1s to 1h)\n"
	    "t.yaml:9:34: action_timeout: 1h1ms is out of range (1s to 1h)\n");
	/* Policies that can never apply. */
	parse_err_after_listen("recovery:\n  policies:\n"
	                       "    - {match: \"a*\"}\n"
	                       "    - {match: \"a*\"}\n"
	                       "    - {match: \"*\"}\n"
	                       "    - {match: \"b\"}\n",
	    "t.yaml:5:15: match: this policy never applies: the one at 4:15 "
	    "(match 'a*') comes first\n"
	    "t.yaml:7:15: match: this policy never applies: the one at 6:15 "
	    "(match '*') comes first\n");
	/* tilt */
	parse_err_after_listen("tilt: 2s\n",
	    "t.yaml:2:7: tilt: expected a mapping, got a scalar\n");
	parse_err_after_listen(
	    "tilt: {stall: 99ms, clock_jump: 1h1ms, grace: 1h1ms, x: 1}\n",
	    "t.yaml:2:15: stall: 99ms is out of range (100ms to 1m)\n"
	    "t.yaml:2:33: clock_jump: 1h1ms is out of range (100ms to 1h)\n"
	    "t.yaml:2:47: grace: 1h1ms is out of range (0s to 1h)\n"
	    "t.yaml:2:54: unknown key 'x' in tilt\n");
	parse_err_after_listen("tilt: {stall: 1m1ms, clock_jump: 99ms}\n",
	    "t.yaml:2:15: stall: 1m1ms is out of range (100ms to 1m)\n"
	    "t.yaml:2:34: clock_jump: 99ms is out of range (100ms to 1h)\n");
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
	/* One machine: store local, and the example policy for nginx. */
	assert_int_equal(c->store, COORD_STORE_LOCAL);
	assert_int_equal(c->quorum, 1);
	assert_int_equal(c->npolicies, 2);
	assert_string_equal(
	    coord_conf_policy(c, "nginx-http")->match, "nginx-*");
	assert_string_equal(coord_conf_policy(c, "load")->match, "*");
	coord_conf_free(c);
	coord_conf_free(NULL);
}

/* recovery.clusters: what loads, what prints back, what is refused. */
static void
test_clusters(void **state)
{
	struct coord_conf *c, *c2;
	char *out, *out2;

	(void)state;
	c = parse_ok("listen: h:1\nrecovery:\n  clusters:\n"
	             "    - name: shop-db\n      kind: galera\n"
	             "      check: db\n"
	             "      nodes: [node-1, node-2, \"node 3\"]\n"
	             "      timeout: 5m\n"
	             "    - {name: other, kind: galera, check: db, "
	             "nodes: [node-4, node-5], retry: 1s}\n"
	             "    - {name: cache, kind: redis, check: redis, "
	             "nodes: [node-1, node-2], failover_after: 0s}\n");
	assert_int_equal(c->nclusters, 3);
	assert_int_equal(c->clusters[2].kind, COORD_CLUSTER_REDIS);
	assert_int_equal(c->clusters[2].failover_after_ms, 0);
	assert_int_equal(c->clusters[0].failover_after_ms, 10 * 1000);
	assert_string_equal(c->clusters[0].name, "shop-db");
	assert_int_equal(c->clusters[0].kind, COORD_CLUSTER_GALERA);
	assert_string_equal(c->clusters[0].check, "db");
	assert_int_equal(c->clusters[0].nnodes, 3);
	assert_string_equal(c->clusters[0].nodes[2], "node 3");
	assert_int_equal(c->clusters[0].timeout_ms, 5 * 60 * 1000);
	assert_int_equal(c->clusters[0].retry_ms, 10 * 1000);
	assert_int_equal(c->clusters[1].timeout_ms, 10 * 60 * 1000);
	assert_int_equal(c->clusters[1].retry_ms, 1000);
	assert_ptr_equal(coord_conf_cluster_of(c, "node 3", "db"),
	    &c->clusters[0]);
	assert_ptr_equal(coord_conf_cluster_of(c, "node-5", "db"),
	    &c->clusters[1]);
	assert_ptr_equal(coord_conf_cluster_of(c, "node-1", "redis"),
	    &c->clusters[2]);
	assert_null(coord_conf_cluster_of(c, "node-1", "nginx"));
	assert_null(coord_conf_cluster_of(c, "node-9", "db"));
	assert_null(coord_conf_cluster_of(c, "node-1", NULL));
	out = print_conf(c);
	assert_non_null(strstr(out,
	    "  clusters:\n"
	    "    - name: shop-db\n      kind: galera\n      check: \"db\"\n"
	    "      nodes: [\"node-1\", \"node-2\", \"node 3\"]\n"
	    "      timeout: 5m\n      retry: 10s\n"
	    "    - name: other\n"));
	assert_non_null(strstr(out,
	    "    - name: cache\n      kind: redis\n      check: \"redis\"\n"
	    "      nodes: [\"node-1\", \"node-2\"]\n"
	    "      timeout: 10m\n      retry: 10s\n      failover_after: 0s\n"));
	c2 = parse_ok(out);
	out2 = print_conf(c2);
	assert_string_equal(out, out2);
	free(out);
	free(out2);
	coord_conf_free(c2);
	coord_conf_free(c);

	/* The load balancer a lost node is taken out of. */
	c = parse_ok("listen: h:1\nrecovery:\n  nodes:\n    load_balancer: "
	             "{check: lb, nodes: [node-1]}\n");
	assert_string_equal(c->lb_check, "lb");
	assert_int_equal(c->nlb_nodes, 1);
	assert_string_equal(c->lb_nodes[0], "node-1");
	out = print_conf(c);
	assert_non_null(strstr(out, "  nodes:\n    down_after: 10s\n"
	    "    load_balancer:\n      check: \"lb\"\n"
	    "      nodes: [\"node-1\"]\n"));
	c2 = parse_ok(out);
	out2 = print_conf(c2);
	assert_string_equal(out, out2);
	free(out);
	free(out2);
	coord_conf_free(c2);
	coord_conf_free(c);
	parse_err_after_listen("recovery:\n  nodes:\n    load_balancer: "
	    "{check: [], nodes: [], x: 1}\n",
	    "t.yaml:4:28: check: expected a check name, got a sequence\n"
	    "t.yaml:4:39: nodes: expected a list of 1 to 16 node names, got "
	    "a sequence\n"
	    "t.yaml:4:43: unknown key 'x' in load_balancer\n");
	parse_err_after_listen("recovery:\n  nodes:\n    load_balancer: {}\n",
	    "t.yaml:4:20: load_balancer: 'check' is required\n"
	    "t.yaml:4:20: load_balancer: 'nodes' is required\n");

	parse_err_after_listen("recovery: {clusters: {name: x}}\n",
	    "t.yaml:2:22: clusters: expected a list of at most 64 clusters, "
	    "got a mapping\n");
	parse_err_after_listen("recovery:\n  clusters:\n    - {name: x}\n",
	    "t.yaml:4:7: cluster: 'kind' is required\n"
	    "t.yaml:4:7: cluster: 'check' is required\n"
	    "t.yaml:4:7: cluster: 'nodes' is required\n");
	parse_err_after_listen("recovery:\n  clusters:\n"
	    "    - {name: X, kind: mongo, check: \"\", nodes: [a], "
	    "timeout: 1s, retry: 2h, size: 3}\n",
	    "t.yaml:4:14: name: expected [a-z0-9_-], at most 64 characters, "
	    "got 'X'\n"
	    "t.yaml:4:23: kind: expected galera or redis, got 'mongo'\n"
	    "t.yaml:4:37: check: expected a check name, got ''\n"
	    "t.yaml:4:48: nodes: expected a list of 2 to 16 node names, got "
	    "a sequence\n"
	    "t.yaml:4:62: timeout: 1s is out of range (1m to 1d)\n"
	    "t.yaml:4:73: retry: 2h is out of range (1s to 1h)\n"
	    "t.yaml:4:77: unknown key 'size' in cluster\n");
	parse_err_after_listen("recovery:\n  clusters:\n"
	    "    - {name: a, kind: galera, check: db, nodes: [n1, n2], "
	    "failover_after: 2h}\n",
	    "t.yaml:4:75: failover_after: 2h is out of range (0s to 1h)\n"
	    "t.yaml:4:59: failover_after: only a redis cluster fails over\n");
	parse_err_after_listen("recovery:\n  clusters:\n"
	    "    - {name: a, kind: galera, check: db, nodes: [n1, n2, n1]}\n"
	    "    - {name: a, kind: galera, check: db, nodes: [n3, n2]}\n",
	    "t.yaml:4:58: nodes: n1 is listed twice\n"
	    "t.yaml:5:14: name: cluster a is defined twice\n"
	    "t.yaml:5:7: cluster: n2/db is already a member of cluster a\n");
}

/* alerts.hooks: what loads, its defaults, --print round trip, refusals. */
static void
test_alerts(void **state)
{
	struct coord_conf *c, *c2;
	char *out, *out2;

	(void)state;
	c = parse_ok("listen: h:1\n");
	assert_int_equal(c->nalert_hooks, 0);
	assert_null(c->alert_hooks);
	out = print_conf(c);
	assert_null(strstr(out, "alerts:"));
	free(out);
	coord_conf_free(c);

	c = parse_ok("listen: h:1\nalerts:\n  hooks:\n"
	             "    - name: ops\n      kind: webhook\n"
	             "      url: \"https://hooks.example/x?a=1\"\n"
	             "      headers: {Authorization: \"Bearer \\\"t\\\"\", "
	             "X-Team: ops}\n"
	             "      kinds: [check_status, primary_changed]\n"
	             "      min_severity: info\n      timeout: 100ms\n"
	             "      queue: 100000\n      retries: 0\n"
	             "      backoff: 10ms\n"
	             "    - {name: am, kind: alertmanager, "
	             "url: \"http://127.0.0.1:9093\", resend: 1h}\n"
	             "    - {name: page-me, kind: exec, "
	             "argv: [/usr/bin/page, \"--to\", \"on call\"], "
	             "min_severity: critical, timeout: 5m, retries: 100, "
	             "backoff: 5m}\n");
	assert_int_equal(c->nalert_hooks, 3);
	assert_string_equal(c->alert_hooks[0].name, "ops");
	assert_int_equal(c->alert_hooks[0].kind, ALERT_WEBHOOK);
	assert_string_equal(c->alert_hooks[0].url,
	    "https://hooks.example/x?a=1");
	assert_int_equal(c->alert_hooks[0].nheaders, 2);
	assert_string_equal(c->alert_hooks[0].headers[0],
	    "Authorization: Bearer \"t\"");
	assert_string_equal(c->alert_hooks[0].headers[1], "X-Team: ops");
	assert_int_equal(c->alert_hooks[0].nkinds, 2);
	assert_string_equal(c->alert_hooks[0].kinds[1], "primary_changed");
	assert_int_equal(c->alert_hooks[0].min_severity, ALERT_INFO);
	assert_int_equal(c->alert_hooks[0].timeout_ms, 100);
	assert_int_equal(c->alert_hooks[0].queue, 100000);
	assert_int_equal(c->alert_hooks[0].retries, 0);
	assert_int_equal(c->alert_hooks[0].backoff_ms, 10);
	/* Defaults. */
	assert_int_equal(c->alert_hooks[1].kind, ALERT_ALERTMANAGER);
	assert_int_equal(c->alert_hooks[1].resend_ms, 60 * 60 * 1000);
	assert_int_equal(c->alert_hooks[1].min_severity, ALERT_WARNING);
	assert_int_equal(c->alert_hooks[1].timeout_ms, 5000);
	assert_int_equal(c->alert_hooks[1].queue, 256);
	assert_int_equal(c->alert_hooks[1].retries, 3);
	assert_int_equal(c->alert_hooks[1].backoff_ms, 1000);
	assert_int_equal(c->alert_hooks[1].nkinds, 0);
	assert_int_equal(c->alert_hooks[2].kind, ALERT_EXEC);
	assert_int_equal(c->alert_hooks[2].nargv, 3);
	assert_string_equal(c->alert_hooks[2].argv[2], "on call");
	assert_null(c->alert_hooks[2].argv[3]);
	assert_null(c->alert_hooks[2].url);
	/* --print loads back to the same. */
	out = print_conf(c);
	assert_non_null(strstr(out, "alerts:\n  hooks:\n    - name: ops\n"
	    "      kind: webhook\n"));
	assert_non_null(strstr(out, "      headers:\n"
	    "        \"Authorization\": \"Bearer \\\"t\\\"\"\n"));
	assert_non_null(strstr(out, "      resend: 1h\n"));
	c2 = parse_ok(out);
	out2 = print_conf(c2);
	assert_string_equal(out, out2);
	free(out);
	free(out2);
	coord_conf_free(c);
	coord_conf_free(c2);

	parse_err("listen: h:1\nalerts: []\n",
	    "t.yaml:2:9: alerts: expected a mapping, got a sequence\n");
	parse_err("listen: h:1\nalerts: {hook: []}\n",
	    "t.yaml:2:10: unknown key 'hook' in alerts\n");
	parse_err("listen: h:1\nalerts: {hooks: x}\n",
	    "t.yaml:2:17: hooks: expected a list of at most 32 hooks, "
	    "got 'x'\n");
	parse_err("listen: h:1\nalerts: {hooks: [x]}\n",
	    "t.yaml:2:18: hook: expected a mapping, got a scalar\n");
	parse_err("listen: h:1\nalerts: {hooks: [{}]}\n",
	    "t.yaml:2:18: hook: 'name' is required\n"
	    "t.yaml:2:18: hook: 'kind' is required\n");
	parse_err("listen: h:1\nalerts: {hooks: [{name: Bad, kind: webhok, "
	    "url: x, nope: 1}]}\n",
	    "t.yaml:2:25: name: expected [a-z0-9_-], at most 64 characters, "
	    "got 'Bad'\n"
	    "t.yaml:2:36: kind: expected webhook, alertmanager or exec, "
	    "got 'webhok'\n"
	    "t.yaml:2:49: url: expected http:// or https://, got 'x'\n"
	    "t.yaml:2:52: unknown key 'nope' in hook\n");
	parse_err("listen: h:1\nalerts: {hooks: [{name: a, kind: webhook}]}\n",
	    "t.yaml:2:18: hook: webhook needs 'url'\n");
	parse_err("listen: h:1\nalerts: {hooks: [{name: a, kind: exec}]}\n",
	    "t.yaml:2:18: hook: exec needs 'argv'\n");
	parse_err("listen: h:1\nalerts: {hooks: [{name: a, kind: exec, "
	    "argv: [], url: \"http://x\", headers: {A: b}}]}\n",
	    "t.yaml:2:46: argv: expected a list of 1 to 256 strings, "
	    "got a sequence\n"
	    "t.yaml:2:50: url: only for webhook and alertmanager hooks\n"
	    "t.yaml:2:67: headers: only for webhook and alertmanager hooks\n");
	parse_err("listen: h:1\nalerts: {hooks: [{name: a, kind: exec, "
	    "argv: [\"\"], resend: 1m}]}\n",
	    "t.yaml:2:47: argv: expected a non-empty string without control "
	    "characters, got ''\n"
	    "t.yaml:2:52: resend: only for alertmanager hooks\n");
	parse_err("listen: h:1\nalerts: {hooks: [{name: a, kind: webhook, "
	    "url: \"http://x\", argv: [x]}]}\n",
	    "t.yaml:2:60: argv: only for exec hooks\n");
	parse_err("listen: h:1\nalerts: {hooks: [{name: a, kind: webhook, "
	    "url: \"http://x\", min_severity: loud, kinds: [Check], "
	    "headers: {Content-Type: x, \"a b\": c, X: [1]}}]}\n",
	    "t.yaml:2:74: min_severity: expected info, warning or critical, "
	    "got 'loud'\n"
	    "t.yaml:2:88: kinds: expected an event kind ([a-z_]), "
	    "got 'Check'\n"
	    "t.yaml:2:106: headers: 'Content-Type' is not a header name one "
	    "may set\n"
	    "t.yaml:2:123: headers: 'a b' is not a header name one may set\n"
	    "t.yaml:2:136: headers: X: expected a one-line value, "
	    "got a sequence\n");
	parse_err("listen: h:1\nalerts: {hooks: [{name: a, kind: webhook, "
	    "url: \"http://x\", timeout: 50ms, queue: 0, retries: 101, "
	    "backoff: 9ms}]}\n",
	    "t.yaml:2:69: timeout: 50ms is out of range (100ms to 5m)\n"
	    "t.yaml:2:82: queue: expected an integer from 1 to 100000, "
	    "got '0'\n"
	    "t.yaml:2:94: retries: expected an integer from 0 to 100, "
	    "got '101'\n"
	    "t.yaml:2:108: backoff: 9ms is out of range (10ms to 5m)\n");
	parse_err("listen: h:1\nalerts: {hooks: [{name: a, kind: alertmanager, "
	    "url: \"http://x\", resend: 2h}, "
	    "{name: a, kind: exec, argv: [x]}]}\n",
	    "t.yaml:2:73: resend: 2h is out of range (1s to 1h)\n"
	    "t.yaml:2:85: name: hook a is defined twice\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_minimal_defaults),
	    cmocka_unit_test(test_every_key),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_recovery_defaults),
	    cmocka_unit_test(test_store_etcd),
	    cmocka_unit_test(test_policies),
	    cmocka_unit_test(test_recovery_errors),
	    cmocka_unit_test(test_load_file),
	    cmocka_unit_test(test_clusters),
	    cmocka_unit_test(test_alerts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
