/*
 * Unit tests of core/ctl/ctl_args.c: options before and after the
 * command, coordinator lists (repeated, comma-separated, from the
 * environment, default port), timeouts, events filters, and every usage
 * error with its message.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl.h"

/* Parse a NULL-terminated argv; the usage errors land in *ret_err. */
static int
parse(struct ctl_opts *o, const char *env, char **ret_err, ...)
{
	char *argv[32];
	int argc = 0, rc;
	size_t errlen;
	FILE *err = open_memstream(ret_err, &errlen);
	va_list ap;
	const char *a;

	assert_non_null(err);
	argv[argc++] = (char *)(uintptr_t) "troikactl";
	va_start(ap, ret_err);
	while ((a = va_arg(ap, const char *)) != NULL)
		argv[argc++] = (char *)(uintptr_t)a;
	va_end(ap);
	argv[argc] = NULL;
	rc = ctl_args_parse(o, argc, argv, env, err);
	fclose(err);
	return rc;
}

static void
test_status_defaults(void **state)
{
	struct ctl_opts o;
	char *err;

	(void)state;
	assert_int_equal(parse(&o, NULL, &err, "status", NULL), 0);
	assert_string_equal(err, "");
	assert_int_equal(o.command, CTL_CMD_STATUS);
	assert_int_equal(o.ntargets, 1);
	assert_string_equal(o.targets[0].host, "127.0.0.1");
	assert_int_equal(o.targets[0].port, 7443);
	assert_int_equal(o.timeout_ms, 5000);
	assert_false(o.json);
	assert_false(o.tls);
	assert_int_equal(o.nargs, 0);
	ctl_opts_free(&o);
	free(err);
}

static void
test_options_anywhere(void **state)
{
	struct ctl_opts o;
	char *err;

	(void)state;
	assert_int_equal(parse(&o, "ignored:1", &err, "--coordinator",
	                     "10.0.0.1:7000,node-2", "status", "node-1",
	                     "--json", "--coordinator=[::1]:7001", "node-3",
	                     "--timeout", "250ms", NULL),
	    0);
	assert_string_equal(err, "");
	assert_int_equal(o.ntargets, 3);
	assert_string_equal(o.targets[0].host, "10.0.0.1");
	assert_int_equal(o.targets[0].port, 7000);
	assert_string_equal(o.targets[1].host, "node-2");
	assert_int_equal(o.targets[1].port, 7443);
	assert_string_equal(o.targets[1].text, "node-2");
	assert_string_equal(o.targets[2].host, "::1");
	assert_int_equal(o.targets[2].port, 7001);
	assert_true(o.json);
	assert_int_equal(o.timeout_ms, 250);
	assert_int_equal(o.nargs, 2);
	assert_string_equal(o.args[0], "node-1");
	assert_string_equal(o.args[1], "node-3");
	ctl_opts_free(&o);
	free(err);
	/* Plain seconds, and "--" before operands. */
	assert_int_equal(parse(&o, NULL, &err, "--timeout", "2", "status", "--",
	                     "--odd-node", NULL),
	    0);
	assert_int_equal(o.timeout_ms, 2000);
	assert_int_equal(o.nargs, 1);
	assert_string_equal(o.args[0], "--odd-node");
	ctl_opts_free(&o);
	free(err);
}

static void
test_environment(void **state)
{
	struct ctl_opts o;
	char *err;

	(void)state;
	assert_int_equal(
	    parse(&o, "127.0.1.1:1,127.0.1.2:2", &err, "status", NULL), 0);
	assert_int_equal(o.ntargets, 2);
	assert_int_equal(o.targets[1].port, 2);
	ctl_opts_free(&o);
	free(err);
	/* Empty means unset. */
	assert_int_equal(parse(&o, "", &err, "status", NULL), 0);
	assert_string_equal(o.targets[0].text, "127.0.0.1:7443");
	ctl_opts_free(&o);
	free(err);
	assert_int_equal(
	    parse(&o, "x:99999", &err, "status", NULL), CTL_EXIT_USAGE);
	assert_string_equal(err,
	    "troikactl: bad coordinator 'x:99999' in "
	    "$TROIKA_COORDINATOR: expected HOST:PORT\n"
	    "try 'troikactl --help'\n");
	ctl_opts_free(&o);
	free(err);
}

static void
test_events(void **state)
{
	struct ctl_opts o;
	char *err;

	(void)state;
	assert_int_equal(parse(&o, NULL, &err, "events", "--follow", "--after",
	                     "17", "--node", "a,b", "--node=c", "--kind",
	                     "check_status", "--tls-ca", "ca.pem", NULL),
	    0);
	assert_string_equal(err, "");
	assert_int_equal(o.command, CTL_CMD_EVENTS);
	assert_true(o.follow);
	assert_true(o.after_set);
	assert_int_equal(o.after, 17);
	assert_int_equal(o.nnodes, 3);
	assert_string_equal(o.nodes[0], "a");
	assert_string_equal(o.nodes[1], "b");
	assert_string_equal(o.nodes[2], "c");
	assert_int_equal(o.nkinds, 1);
	assert_string_equal(o.kinds[0], "check_status");
	assert_true(o.tls);
	assert_string_equal(o.tls_ca, "ca.pem");
	ctl_opts_free(&o);
	free(err);
	/* The history: a limit, no watch. */
	assert_int_equal(parse(&o, NULL, &err, "events", "--limit", "5",
	                     "--kind", "x", NULL),
	    0);
	assert_int_equal(o.limit, 5);
	assert_false(o.follow);
	assert_false(o.after_set);
	ctl_opts_free(&o);
	free(err);
}

static void
test_actions_and_maintenance(void **state)
{
	struct ctl_opts o;
	char *err;

	(void)state;
	/* actions: list by default, with or without the word. */
	assert_int_equal(parse(&o, NULL, &err, "actions", NULL), 0);
	assert_int_equal(o.command, CTL_CMD_ACTIONS);
	assert_int_equal(o.sub, CTL_SUB_LIST);
	assert_int_equal(o.nargs, 0);
	ctl_opts_free(&o);
	free(err);
	assert_int_equal(parse(&o, NULL, &err, "actions", "node-1", "--limit",
	                     "5", "node-2", NULL),
	    0);
	assert_int_equal(o.sub, CTL_SUB_LIST);
	assert_int_equal(o.limit, 5);
	assert_int_equal(o.nargs, 2);
	assert_string_equal(o.args[1], "node-2");
	ctl_opts_free(&o);
	free(err);
	assert_int_equal(
	    parse(&o, NULL, &err, "actions", "list", "ack", NULL), 0);
	assert_int_equal(o.sub, CTL_SUB_LIST);
	assert_int_equal(o.nargs, 1);
	assert_string_equal(o.args[0], "ack");
	ctl_opts_free(&o);
	free(err);
	assert_int_equal(parse(&o, NULL, &err, "actions", "ack", "0001-0002",
	                     "--by", "alice", NULL),
	    0);
	assert_int_equal(o.sub, CTL_SUB_ACK);
	assert_string_equal(o.args[0], "0001-0002");
	assert_string_equal(o.by, "alice");
	ctl_opts_free(&o);
	free(err);
	/* maintenance */
	assert_int_equal(parse(&o, NULL, &err, "maintenance", NULL), 0);
	assert_int_equal(o.command, CTL_CMD_MAINTENANCE);
	assert_int_equal(o.sub, CTL_SUB_LIST);
	ctl_opts_free(&o);
	free(err);
	assert_int_equal(
	    parse(&o, NULL, &err, "maintenance", "on", "node-1", "db", "--for",
	        "1h30m", "--reason", "upgrade", "--by=bob", NULL),
	    0);
	assert_int_equal(o.sub, CTL_SUB_ON);
	assert_int_equal(o.nargs, 2);
	assert_string_equal(o.args[0], "node-1");
	assert_string_equal(o.args[1], "db");
	assert_int_equal(o.for_ms, 5400000);
	assert_string_equal(o.reason, "upgrade");
	assert_string_equal(o.by, "bob");
	ctl_opts_free(&o);
	free(err);
	assert_int_equal(parse(&o, NULL, &err, "maintenance", "off", NULL), 0);
	assert_int_equal(o.sub, CTL_SUB_OFF);
	assert_int_equal(o.nargs, 0);
	ctl_opts_free(&o);
	free(err);
	/* switchover */
	assert_int_equal(parse(&o, NULL, &err, "switchover", "cache", NULL), 0);
	assert_int_equal(o.command, CTL_CMD_SWITCHOVER);
	assert_int_equal(o.nargs, 1);
	assert_string_equal(o.args[0], "cache");
	assert_null(o.to);
	assert_false(o.wait);
	assert_null(o.by);
	ctl_opts_free(&o);
	free(err);
	assert_int_equal(parse(&o, NULL, &err, "switchover", "--to", "node-2",
	                     "cache", "--wait", "--by", "carol", NULL),
	    0);
	assert_int_equal(o.command, CTL_CMD_SWITCHOVER);
	assert_string_equal(o.args[0], "cache");
	assert_string_equal(o.to, "node-2");
	assert_true(o.wait);
	assert_string_equal(o.by, "carol");
	ctl_opts_free(&o);
	free(err);
}

static void
test_help_and_version(void **state)
{
	struct ctl_opts o;
	char *err;

	(void)state;
	/* No command needed. */
	assert_int_equal(parse(&o, NULL, &err, "--help", NULL), 0);
	assert_true(o.help);
	ctl_opts_free(&o);
	free(err);
	assert_int_equal(parse(&o, NULL, &err, "--version", NULL), 0);
	assert_true(o.version);
	ctl_opts_free(&o);
	free(err);
}

static void
test_usage_errors(void **state)
{
	static const struct {
		const char *args[7];
		const char *err;
	} cases[] = {
	    {{NULL}, "troikactl: no command given\n"},
	    {{"frobnicate", NULL}, "troikactl: unknown command 'frobnicate'\n"},
	    {{"status", "--bogus", NULL},
	        "troikactl: unknown option --bogus\n"},
	    {{"status", "-x", NULL}, "troikactl: unknown option -x\n"},
	    {{"status", "--timeout", NULL},
	        "troikactl: option --timeout needs a value\n"},
	    {{"status", "--json=yes", NULL},
	        "troikactl: unknown option --json=yes\n"},
	    {{"status", "--timeout", "5", "--timeout", "soon", NULL},
	        "troikactl: bad --timeout 'soon': expected a duration such as "
	        "500ms, 5s or 1m\n"},
	    {{"status", "--timeout", "0s", NULL},
	        "troikactl: bad --timeout '0s': expected a duration such as "
	        "500ms, 5s or 1m\n"},
	    {{"status", "--coordinator", "a:1,,b:2", NULL},
	        "troikactl: bad coordinator list 'a:1,,b:2' in "
	        "--coordinator\n"},
	    {{"status", "--coordinator", "h:0", NULL},
	        "troikactl: bad coordinator 'h:0' in --coordinator: "
	        "expected HOST:PORT\n"},
	    {{"status", "--follow", NULL},
	        "troikactl: --follow is an option of events only\n"},
	    {{"status", "--kind", "x", NULL},
	        "troikactl: --kind is an option of events only\n"},
	    {{"events", "node-1", NULL},
	        "troikactl: events takes no operands (use --node): 'node-1'\n"},
	    {{"events", "--after", "-1", NULL},
	        "troikactl: bad --after '-1': expected a sequence number\n"},
	    {{"events", "--after", "99999999999999999999", NULL},
	        "troikactl: bad --after '99999999999999999999': expected a "
	        "sequence number\n"},
	    {{"events", "--node", "a,", NULL}, "troikactl: bad --node 'a,'\n"},
	    {{"status", "--limit", "3", NULL},
	        "troikactl: --limit is an option of actions list and events "
	        "only\n"},
	    {{"actions", "ack", "x", "--limit", "3", NULL},
	        "troikactl: --limit is an option of actions list and events "
	        "only\n"},
	    {{"actions", "--limit", "0", NULL},
	        "troikactl: bad --limit '0': expected a number above 0\n"},
	    {{"actions", "--by", "me", NULL},
	        "troikactl: --by is an option of actions ack, maintenance on "
	        "and switchover only\n"},
	    {{"switchover", NULL},
	        "troikactl: switchover takes one cluster name\n"},
	    {{"switchover", "cache", "node-2", NULL},
	        "troikactl: switchover takes one cluster name\n"},
	    {{"switchover", "cache", "--to", NULL},
	        "troikactl: option --to needs a value\n"},
	    {{"status", "--wait", NULL},
	        "troikactl: --wait is an option of switchover only\n"},
	    {{"actions", "--to", "node-2", NULL},
	        "troikactl: --to is an option of switchover only\n"},
	    {{"actions", "ack", NULL},
	        "troikactl: actions ack takes one action id\n"},
	    {{"actions", "ack", "a", "b", NULL},
	        "troikactl: actions ack takes one action id\n"},
	    {{"maintenance", "on", "n", NULL},
	        "troikactl: maintenance on needs --for DURATION\n"},
	    {{"maintenance", "on", "--for", "5", NULL},
	        "troikactl: bad --for '5': expected a duration such as 30m or "
	        "2h\n"},
	    {{"maintenance", "off", "--for", "5m", NULL},
	        "troikactl: --for is an option of maintenance on only\n"},
	    {{"maintenance", "--reason", "x", NULL},
	        "troikactl: --reason is an option of maintenance on only\n"},
	    {{"maintenance", "on", "a", "b", "c", "--for", "1m"},
	        "troikactl: too many operands: 'c'\n"},
	    {{"maintenance", "list", "x", NULL},
	        "troikactl: too many operands: 'x'\n"},
	    {{"maintenance", "start", NULL},
	        "troikactl: unknown maintenance command 'start' (list, on, "
	        "off)\n"},
	    {{"events", "--follow", "--limit", "2", NULL},
	        "troikactl: --limit lists the history: not with --follow or "
	        "--after\n"},
	    {{"events", "--after=3", "--limit", "2", NULL},
	        "troikactl: --limit lists the history: not with --follow or "
	        "--after\n"},
	    {{"status", "--tls-cert", "c.pem", NULL},
	        "troikactl: --tls-cert and --tls-key go together\n"},
	    {{"status", "--tls-key", "k.pem", NULL},
	        "troikactl: --tls-cert and --tls-key go together\n"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const *a = cases[i].args;
		struct ctl_opts o;
		char *err, expect[256];

		assert_int_equal(parse(&o, NULL, &err, a[0], a[1], a[2], a[3],
		                     a[4], a[5], a[6]),
		    CTL_EXIT_USAGE);
		snprintf(expect, sizeof(expect), "%stry 'troikactl --help'\n",
		    cases[i].err);
		assert_string_equal(err, expect);
		ctl_opts_free(&o);
		free(err);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status_defaults),
	    cmocka_unit_test(test_options_anywhere),
	    cmocka_unit_test(test_environment),
	    cmocka_unit_test(test_events),
	    cmocka_unit_test(test_actions_and_maintenance),
	    cmocka_unit_test(test_help_and_version),
	    cmocka_unit_test(test_usage_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
