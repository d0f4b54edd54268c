/*
 * Unit tests of core/lib/conf.c. Each test writes small YAML files into a
 * fresh mkdtemp directory (the working directory during the tests, so
 * messages carry short relative paths) and checks values, or the exact
 * "file:line:col: message" list of errors.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "conf.h"

/* Fake plugins: declarations in the shape real plugins use. */
static const struct troika_option tcp_opts[] = {
	{ "host", TROIKA_OPT_STRING, 1, NULL, 0, -1, "host to connect to" },
	{ "port", TROIKA_OPT_INT, 1, NULL, 1, 65535, "TCP port" },
	{ "send", TROIKA_OPT_STRING, 0, NULL, 0, -1, "text to send" },
	{ "expect", TROIKA_OPT_STRING, 0, NULL, 0, -1, "text to expect" },
	{ NULL, 0, 0, NULL, 0, 0, NULL },
};

/* One option of each type, with defaults and ranges. */
static const struct troika_option all_opts[] = {
	{ "s", TROIKA_OPT_STRING, 0, "dflt", 0, -1, "" },
	{ "i", TROIKA_OPT_INT, 0, "7", -5, 100, "" },
	{ "b", TROIKA_OPT_BOOL, 0, "yes", 0, -1, "" },
	{ "d", TROIKA_OPT_DURATION, 0, "1500ms", 100, 60000, "" },
	{ "z", TROIKA_OPT_SIZE, 0, "1KiB", 0, 1 << 20, "" },
	{ "l", TROIKA_OPT_STRING_LIST, 0, NULL, 0, -1, "" },
	{ "m", TROIKA_OPT_STRING_MAP, 0, NULL, 0, -1, "" },
	{ "u", TROIKA_OPT_INT, 0, NULL, 1, 0, "unbounded, no default" },
	{ NULL, 0, 0, NULL, 0, 0, NULL },
};

static const struct troika_option baddefault_opts[] = {
	{ "port", TROIKA_OPT_INT, 0, "eighty", 1, 65535, "" },
	{ "wait", TROIKA_OPT_DURATION, 0, "1d", 0, 1000, "" },
	{ "ok", TROIKA_OPT_STRING, 0, "fine", 0, -1, "" },
	{ NULL, 0, 0, NULL, 0, 0, NULL },
};

static const struct troika_option badnames_opts[] = {
	{ "interval", TROIKA_OPT_STRING, 0, NULL, 0, -1, "" },
	{ "x", TROIKA_OPT_STRING, 0, NULL, 0, -1, "" },
	{ "x", TROIKA_OPT_INT, 0, NULL, 0, -1, "" },
	{ "t", (enum troika_option_type)42, 0, NULL, 0, -1, "" },
	{ NULL, 0, 0, NULL, 0, 0, NULL },
};

static const struct troika_option none_opts[] = {
	{ NULL, 0, 0, NULL, 0, 0, NULL },
};

static int lookups;

static const struct troika_option *
fake_lookup(const char *plugin, void *arg)
{
	assert_ptr_equal(arg, &lookups);
	lookups++;
	if (strcmp(plugin, "tcp") == 0)
		return tcp_opts;
	if (strcmp(plugin, "all") == 0)
		return all_opts;
	if (strcmp(plugin, "baddefault") == 0)
		return baddefault_opts;
	if (strcmp(plugin, "badnames") == 0)
		return badnames_opts;
	if (strcmp(plugin, "none") == 0)
		return none_opts;
	return NULL;
}

static char tmpdir[64];
static char olddir[4096];
static struct conf_errors errs;

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/conf_test.XXXXXX");
	if (mkdtemp(tmpdir) == NULL || getcwd(olddir, sizeof(olddir)) == NULL)
		return -1;
	return chdir(tmpdir);
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	if (chdir(olddir) < 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Each test starts in an empty directory. */
static int
clean(void **state)
{
	(void)state;
	conf_errors_clear(&errs);
	lookups = 0;
	return system("rm -rf ./* ./.[!.]*") == 0 ? 0 : -1;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void
make_dir(const char *path)
{
	assert_int_equal(mkdir(path, 0755), 0);
}

static struct agent_conf *
load_ok(const char *path, int flags)
{
	struct agent_conf *conf;

	conf = conf_load(path, fake_lookup, &lookups, flags, &errs);
	if (conf == NULL) {
		for (size_t i = 0; i < errs.n; i++)
			print_message("unexpected: %s\n", errs.msgs[i]);
		fail_msg("conf_load(%s) failed", path);
	}
	assert_int_equal(errs.n, 0);
	return conf;
}

/* Load must fail with exactly these messages (NULL-terminated). */
static void
load_err(const char *path, int flags, const char *const *want)
{
	struct agent_conf *conf;
	size_t n = 0;

	conf = conf_load(path, fake_lookup, &lookups, flags, &errs);
	assert_null(conf);
	while (want[n] != NULL)
		n++;
	for (size_t i = 0; i < errs.n || i < n; i++) {
		const char *got = i < errs.n ? errs.msgs[i] : "(none)";
		const char *exp = i < n ? want[i] : "(none)";

		if (strcmp(got, exp) != 0) {
			for (size_t j = 0; j < errs.n; j++)
				print_message("got: %s\n", errs.msgs[j]);
			fail_msg("error %zu:\n  got:  %s\n  want: %s", i, got,
			    exp);
		}
	}
	conf_errors_clear(&errs);
}

/* The file must fail to load with exactly one message. */
static void
one_err(const char *text, const char *want)
{
	const char *const w[] = { want, NULL };

	write_file("agent.yaml", text);
	load_err("agent.yaml", CONF_STRICT_PLUGINS, w);
}

static char *
print_conf(const struct agent_conf *conf)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *s;

	assert_non_null(b);
	conf_print(conf, b);
	len = evbuffer_get_length(b);
	assert_non_null(s = malloc(len + 1));
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	return s;
}

static void
test_defaults(void **state)
{
	struct agent_conf *conf;

	(void)state;
	write_file("agent.yaml", "node: n1\n");
	conf = load_ok("agent.yaml", CONF_STRICT_PLUGINS);
	assert_string_equal(conf->path, "agent.yaml");
	assert_string_equal(conf->node, "n1");
	assert_int_equal(conf->nplugin_dirs, 1);
	assert_string_equal(conf->plugin_dirs[0],
	    "/usr/local/lib/troika/plugins");
	assert_null(conf->include_dir);
	assert_int_equal(conf->workers, 4);
	assert_string_equal(conf->metrics_listen, "127.0.0.1:9464");
	assert_int_equal(conf->log_level, LOG_INFO);
	assert_int_equal(conf->log_syslog, 0);
	assert_int_equal(conf->default_interval_ms, 10000);
	assert_int_equal(conf->default_timeout_ms, 5000);
	assert_int_equal(conf->nchecks, 0);
	assert_int_equal(conf->nfiles, 1);
	assert_string_equal(conf->files[0], "agent.yaml");
	assert_int_equal(lookups, 0);
	conf_free(conf);
}

static void
test_empty_file_uses_hostname(void **state)
{
	struct agent_conf *conf;
	char host[256];

	(void)state;
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	write_file("agent.yaml", "");
	conf = load_ok("agent.yaml", 0);
	assert_string_equal(conf->node, host);
	conf_free(conf);

	/* Sections present but empty are the same as absent. */
	write_file("agent.yaml", "metrics:\nlog:\ndefaults:\nchecks:\n");
	conf = load_ok("agent.yaml", 0);
	assert_string_equal(conf->node, host);
	assert_string_equal(conf->metrics_listen, "127.0.0.1:9464");
	assert_int_equal(conf->nchecks, 0);
	conf_free(conf);
}

static void
test_main_values(void **state)
{
	struct agent_conf *conf;

	(void)state;
	make_dir("etc");
	make_dir("etc/conf.d");
	write_file("etc/agent.yaml",
	    "node: web-1.example\n"
	    "plugin_dirs: [plugins, /opt/troika/plugins/, ../lib]\n"
	    "include: conf.d/\n"
	    "workers: 256\n"
	    "metrics: {listen: \"[::1]:9100\"}\n"
	    "log: {level: debug, target: syslog}\n"
	    "defaults: {interval: 1m30s, timeout: 90000ms}\n");
	conf = load_ok("etc/agent.yaml", 0);
	assert_string_equal(conf->node, "web-1.example");
	assert_int_equal(conf->nplugin_dirs, 3);
	/* Relative to the main file's directory, trailing slashes gone. */
	assert_string_equal(conf->plugin_dirs[0], "etc/plugins");
	assert_string_equal(conf->plugin_dirs[1], "/opt/troika/plugins");
	assert_string_equal(conf->plugin_dirs[2], "etc/../lib");
	assert_string_equal(conf->include_dir, "etc/conf.d");
	assert_int_equal(conf->workers, 256);
	assert_string_equal(conf->metrics_listen, "[::1]:9100");
	assert_int_equal(conf->log_level, LOG_DEBUG);
	assert_int_equal(conf->log_syslog, 1);
	assert_int_equal(conf->default_interval_ms, 90000);
	assert_int_equal(conf->default_timeout_ms, 90000);
	conf_free(conf);

	write_file("etc/agent.yaml",
	    "node: n\nworkers: 1\nmetrics: {listen: \"\"}\n"
	    "log: {level: err, target: stderr}\ninclude: /\n");
	conf = load_ok("etc/agent.yaml", 0);
	assert_int_equal(conf->workers, 1);
	assert_string_equal(conf->metrics_listen, "");
	assert_int_equal(conf->log_level, LOG_ERR);
	assert_int_equal(conf->log_syslog, 0);
	assert_string_equal(conf->include_dir, "/");
	conf_free(conf);

	/* The built-in timeout is cut to a shorter default interval. */
	write_file("etc/agent.yaml", "node: n\ndefaults: {interval: 1s}\n");
	conf = load_ok("etc/agent.yaml", 0);
	assert_int_equal(conf->default_interval_ms, 1000);
	assert_int_equal(conf->default_timeout_ms, 1000);
	conf_free(conf);

	write_file("etc/agent.yaml",
	    "node: n\nmetrics: {listen: \"0.0.0.0:1\"}\nlog: {level: warning}\n");
	conf = load_ok("etc/agent.yaml", 0);
	assert_string_equal(conf->metrics_listen, "0.0.0.0:1");
	assert_int_equal(conf->log_level, LOG_WARNING);
	conf_free(conf);

	write_file("etc/agent.yaml",
	    "node: n\nmetrics: {listen: \"localhost:65535\"}\n");
	conf = load_ok("etc/agent.yaml", 0);
	assert_string_equal(conf->metrics_listen, "localhost:65535");
	conf_free(conf);
}

static void
test_check_values(void **state)
{
	struct agent_conf *conf;
	const struct conf_check *c;
	const struct conf_value *v;

	(void)state;
	write_file("agent.yaml",
	    "node: n1\n"
	    "defaults:\n"
	    "  interval: 20s\n"
	    "checks:\n"
	    "  - name: web\n"
	    "    plugin: tcp\n"
	    "    interval: 5000ms\n"
	    "    timeout: 2s\n"
	    "    host: 127.0.0.1\n"
	    "    port: 80\n"
	    "  - name: db.main_1-a\n"
	    "    plugin: tcp\n"
	    "    host: db\n"
	    "    port: \"3306\"\n"
	    "    expect: \"\"\n");
	conf = load_ok("agent.yaml", CONF_STRICT_PLUGINS);
	assert_int_equal(conf->nchecks, 2);
	assert_int_equal(lookups, 1); /* once per plugin */

	c = &conf->checks[0];
	assert_string_equal(c->name, "web");
	assert_string_equal(c->plugin, "tcp");
	assert_int_equal(c->interval_ms, 5000);
	assert_int_equal(c->timeout_ms, 2000);
	assert_string_equal(c->pos.file, "agent.yaml");
	assert_ptr_equal(c->pos.file, conf->files[0]);
	assert_int_equal(c->pos.line, 5);
	assert_int_equal(c->pos.col, 5);
	assert_int_equal(c->plugin_pos.line, 6);
	assert_int_equal(c->plugin_pos.col, 13);
	assert_int_equal(c->plugin_missing, 0);
	assert_int_equal(c->nopts, 4);

	v = conf_check_opt(c, "host");
	assert_non_null(v);
	assert_ptr_equal(v, &c->opts[0]);
	assert_string_equal(v->name, "host");
	assert_int_equal(v->type, TROIKA_OPT_STRING);
	assert_true(v->isset);
	assert_true(v->hasvalue);
	assert_string_equal(v->str, "127.0.0.1");
	assert_int_equal(v->pos.line, 9);
	assert_int_equal(v->pos.col, 11);

	v = conf_check_opt(c, "port");
	assert_int_equal(v->num, 80);
	assert_string_equal(v->str, "80");

	v = conf_check_opt(c, "send");
	assert_false(v->isset);
	assert_false(v->hasvalue);
	assert_null(v->str);
	assert_int_equal(v->pos.line, 5); /* the check's position */
	assert_null(conf_check_opt(c, "nosuch"));
	assert_null(conf_check_opt(c, "name"));

	c = &conf->checks[1];
	assert_string_equal(c->name, "db.main_1-a");
	assert_int_equal(c->interval_ms, 20000); /* from defaults */
	assert_int_equal(c->timeout_ms, 5000);
	assert_int_equal(conf_check_opt(c, "port")->num, 3306);
	v = conf_check_opt(c, "expect");
	assert_true(v->isset);
	assert_string_equal(v->str, "");
	conf_free(conf);
}

static void
test_timeout_clamped_to_short_interval(void **state)
{
	struct agent_conf *conf;

	(void)state;
	/* The default timeout (5s) is cut to a shorter interval... */
	write_file("agent.yaml",
	    "node: n\nchecks:\n"
	    "  - {name: a, plugin: tcp, host: h, port: 1, interval: 1s}\n"
	    "  - {name: b, plugin: tcp, host: h, port: 1, interval: 100ms,"
	    " timeout: 100ms}\n"
	    "  - {name: c, plugin: tcp, host: h, port: 1, interval: 7d,"
	    " timeout: 7d}\n");
	conf = load_ok("agent.yaml", 0);
	assert_int_equal(conf->checks[0].interval_ms, 1000);
	assert_int_equal(conf->checks[0].timeout_ms, 1000);
	assert_int_equal(conf->checks[1].timeout_ms, 100);
	assert_int_equal(conf->checks[2].interval_ms, 7LL * 86400000);
	assert_int_equal(conf->checks[2].timeout_ms, 7LL * 86400000);
	conf_free(conf);

	/* ...but an explicit one is an error (see test_check_errors). */
	one_err("node: n\nchecks:\n"
		"  - {name: a, plugin: tcp, host: h, port: 1, interval: 1s,"
		" timeout: 2s}\n",
	    "agent.yaml:3:69: 'timeout' 2s is longer than 'interval' 1s in "
	    "check 'a'");
}

static void
test_option_types(void **state)
{
	struct agent_conf *conf;
	const struct conf_check *c;
	const struct conf_value *v;

	(void)state;
	write_file("agent.yaml",
	    "node: n\n"
	    "checks:\n"
	    "  - name: set\n"
	    "    plugin: all\n"
	    "    s: text\n"
	    "    i: -5\n"
	    "    b: off\n"
	    "    d: 1m\n"
	    "    z: 1MiB\n"
	    "    l: [a, \"b c\", \"\"]\n"
	    "    m: {x: 1, \"y z\": two, e: \"\"}\n"
	    "    u: -9223372036854775808\n"
	    "  - name: defaults\n"
	    "    plugin: all\n"
	    "    l: []\n"
	    "    m: {}\n");
	conf = load_ok("agent.yaml", CONF_STRICT_PLUGINS);
	c = &conf->checks[0];
	assert_int_equal(c->nopts, 8);
	assert_string_equal(conf_check_opt(c, "s")->str, "text");
	assert_int_equal(conf_check_opt(c, "i")->num, -5);
	assert_int_equal(conf_check_opt(c, "b")->num, 0);
	assert_string_equal(conf_check_opt(c, "b")->str, "off");
	assert_int_equal(conf_check_opt(c, "d")->num, 60000);
	assert_string_equal(conf_check_opt(c, "d")->str, "1m");
	assert_int_equal(conf_check_opt(c, "z")->num, 1 << 20);
	assert_int_equal(conf_check_opt(c, "u")->num, INT64_MIN);
	v = conf_check_opt(c, "l");
	assert_int_equal(v->type, TROIKA_OPT_STRING_LIST);
	assert_true(v->isset);
	assert_null(v->str);
	assert_int_equal(v->nlist, 3);
	assert_string_equal(v->list[0], "a");
	assert_string_equal(v->list[1], "b c");
	assert_string_equal(v->list[2], "");
	v = conf_check_opt(c, "m");
	assert_int_equal(v->nmap, 3);
	assert_string_equal(v->keys[0], "x");
	assert_string_equal(v->vals[0], "1");
	assert_string_equal(v->keys[1], "y z");
	assert_string_equal(v->vals[1], "two");
	assert_string_equal(v->keys[2], "e");
	assert_string_equal(v->vals[2], "");
	assert_int_equal(v->pos.line, 11);
	assert_int_equal(v->pos.col, 8);

	/* Defaults: parsed like config text, not isset. */
	c = &conf->checks[1];
	v = conf_check_opt(c, "s");
	assert_false(v->isset);
	assert_true(v->hasvalue);
	assert_string_equal(v->str, "dflt");
	assert_int_equal(v->pos.line, 13);
	assert_int_equal(conf_check_opt(c, "i")->num, 7);
	assert_int_equal(conf_check_opt(c, "b")->num, 1);
	assert_string_equal(conf_check_opt(c, "b")->str, "yes");
	assert_int_equal(conf_check_opt(c, "d")->num, 1500);
	assert_int_equal(conf_check_opt(c, "z")->num, 1024);
	v = conf_check_opt(c, "u");
	assert_false(v->hasvalue);
	v = conf_check_opt(c, "l");
	assert_true(v->isset);
	assert_int_equal(v->nlist, 0);
	v = conf_check_opt(c, "m");
	assert_true(v->isset);
	assert_int_equal(v->nmap, 0);
	conf_free(conf);
}

static void
test_dropins(void **state)
{
	struct agent_conf *conf;

	(void)state;
	make_dir("etc");
	make_dir("etc/conf.d");
	make_dir("etc/conf.d/dir.yaml");
	write_file("etc/agent.yaml",
	    "node: n\ninclude: conf.d\nchecks:\n"
	    "  - {name: main, plugin: tcp, host: h, port: 1}\n");
	write_file("etc/conf.d/20-b.yaml",
	    "checks:\n  - {name: b, plugin: tcp, host: h, port: 2}\n");
	write_file("etc/conf.d/10-a.yaml",
	    "# first by name\n"
	    "checks:\n"
	    "  - {name: a1, plugin: tcp, host: h, port: 3}\n"
	    "  - {name: a2, plugin: tcp, host: h, port: 4}\n");
	write_file("etc/conf.d/15-empty.yaml", "");
	write_file("etc/conf.d/16-nochecks.yaml", "checks:\n");
	/* Not read: dotfiles, other suffixes, directories. */
	write_file("etc/conf.d/.hidden.yaml", "bogus: [\n");
	write_file("etc/conf.d/notes.txt", "bogus: [\n");
	write_file("etc/conf.d/x.yaml.orig", "bogus: [\n");
	write_file("etc/conf.d/.yaml", "bogus: [\n");
	write_file("etc/real.yaml",
	    "checks:\n  - {name: linked, plugin: tcp, host: h, port: 5}\n");
	assert_int_equal(symlink("../real.yaml", "etc/conf.d/30-link.yaml"),
	    0);

	conf = load_ok("etc/agent.yaml", CONF_STRICT_PLUGINS);
	assert_string_equal(conf->include_dir, "etc/conf.d");
	assert_int_equal(conf->nchecks, 5);
	assert_string_equal(conf->checks[0].name, "main");
	assert_string_equal(conf->checks[1].name, "a1");
	assert_string_equal(conf->checks[2].name, "a2");
	assert_string_equal(conf->checks[3].name, "b");
	assert_string_equal(conf->checks[4].name, "linked");
	assert_string_equal(conf->checks[2].pos.file, "etc/conf.d/10-a.yaml");
	assert_int_equal(conf->checks[2].pos.line, 4);
	assert_int_equal(conf->checks[2].pos.col, 5);
	assert_string_equal(conf->checks[4].pos.file,
	    "etc/conf.d/30-link.yaml");
	assert_int_equal(conf->nfiles, 6);
	assert_string_equal(conf->files[0], "etc/agent.yaml");
	assert_string_equal(conf->files[1], "etc/conf.d/10-a.yaml");
	assert_string_equal(conf->files[2], "etc/conf.d/15-empty.yaml");
	assert_string_equal(conf->files[5], "etc/conf.d/30-link.yaml");
	conf_free(conf);

	/* An include directory holding the main file does not read it again. */
	write_file("etc/conf.d/agent.yaml",
	    "node: n\ninclude: .\nchecks:\n"
	    "  - {name: self, plugin: tcp, host: h, port: 1}\n");
	conf = load_ok("etc/conf.d/agent.yaml", CONF_STRICT_PLUGINS);
	assert_string_equal(conf->include_dir, "etc/conf.d/.");
	assert_int_equal(conf->nchecks, 5);
	assert_string_equal(conf->checks[0].name, "self");
	assert_string_equal(conf->checks[1].name, "a1");
	conf_free(conf);
}

static void
test_unknown_plugin_not_strict(void **state)
{
	struct agent_conf *conf;
	const struct conf_check *c;

	(void)state;
	write_file("agent.yaml",
	    "node: n\nchecks:\n"
	    "  - {name: a, plugin: later, whatever: [1, {x: y}], port: 99999}\n"
	    "  - {name: b, plugin: later, whatever: [1, {x: z}], port: 99999}\n");
	conf = load_ok("agent.yaml", 0);
	c = &conf->checks[0];
	assert_int_equal(c->plugin_missing, 1);
	assert_int_equal(c->nopts, 0);
	assert_null(c->opts);
	assert_null(conf_check_opt(c, "port"));
	/* The raw options still tell the checks apart. */
	assert_string_not_equal(conf->checks[0].canonical,
	    conf->checks[1].canonical);
	conf_free(conf);

	one_err("node: n\nchecks:\n  - {name: a, plugin: later}\n",
	    "agent.yaml:3:23: unknown plugin 'later' in check 'a'");
}

/* Canonical text of the first check of a one-check file. */
static char *
canonical_of(const char *check)
{
	struct agent_conf *conf;
	char text[512];
	char *s;

	snprintf(text, sizeof(text), "node: n\nchecks:\n  - %s\n", check);
	write_file("agent.yaml", text);
	conf = load_ok("agent.yaml", 0);
	assert_int_equal(conf->nchecks, 1);
	assert_non_null(s = strdup(conf->checks[0].canonical));
	conf_free(conf);
	return s;
}

static void
assert_same_canonical(const char *a, const char *b)
{
	char *x = canonical_of(a), *y = canonical_of(b);

	if (strcmp(x, y) != 0)
		fail_msg("canonical differs:\n%s\n%s\n--\n%s--\n%s", a, b, x, y);
	free(x);
	free(y);
}

static void
assert_other_canonical(const char *a, const char *b)
{
	char *x = canonical_of(a), *y = canonical_of(b);

	if (strcmp(x, y) == 0)
		fail_msg("canonical equal:\n%s\n%s\n--\n%s", a, b, x);
	free(x);
	free(y);
}

static void
test_canonical(void **state)
{
	static const char base[] =
	    "{name: a, plugin: tcp, host: h, port: 80, interval: 5s}";

	(void)state;
	/* Same effective definition, written differently. */
	assert_same_canonical(base,
	    "{plugin: tcp, port: 0080, interval: 5000ms, name: other, "
	    "host: \"h\", timeout: 5s}");
	assert_same_canonical("{name: a, plugin: all}",
	    "{name: a, plugin: all, s: dflt, i: 7, b: true, d: 1s500ms, "
	    "z: 1024}");
	assert_same_canonical("{name: a, plugin: all, l: [x], m: {k: v}}",
	    "{name: a, plugin: all, l: [\"x\"], m: {\"k\": 'v'}}");

	/* Anything that differs. */
	assert_other_canonical(base,
	    "{name: a, plugin: tcp, host: h, port: 81, interval: 5s}");
	assert_other_canonical(base,
	    "{name: a, plugin: tcp, host: h2, port: 80, interval: 5s}");
	assert_other_canonical(base,
	    "{name: a, plugin: tcp, host: h, port: 80, interval: 6s}");
	assert_other_canonical(base,
	    "{name: a, plugin: tcp, host: h, port: 80, interval: 5s, "
	    "timeout: 4s}");
	assert_other_canonical(base,
	    "{name: a, plugin: tcp, host: h, port: 80, interval: 5s, "
	    "send: \"\"}");
	assert_other_canonical(base,
	    "{name: a, plugin: tcp, host: h, port: 80, interval: 5s, "
	    "expect: x}");
	assert_other_canonical("{name: a, plugin: tcp, host: h, port: 80, "
			       "send: x}",
	    "{name: a, plugin: tcp, host: h, port: 80, expect: x}");
	assert_other_canonical("{name: a, plugin: all}",
	    "{name: a, plugin: all, u: 0}");
	assert_other_canonical("{name: a, plugin: all}",
	    "{name: a, plugin: all, b: false}");
	assert_other_canonical("{name: a, plugin: all, l: [a, b]}",
	    "{name: a, plugin: all, l: [\"a, b\"]}");
	assert_other_canonical("{name: a, plugin: all, l: [a, b]}",
	    "{name: a, plugin: all, l: [b, a]}");
	assert_other_canonical("{name: a, plugin: all, l: []}",
	    "{name: a, plugin: all, l: [\"\"]}");
	assert_other_canonical("{name: a, plugin: all}",
	    "{name: a, plugin: all, l: []}");
	assert_other_canonical("{name: a, plugin: all, m: {a: b, c: d}}",
	    "{name: a, plugin: all, m: {c: d, a: b}}");
	assert_other_canonical("{name: a, plugin: all, m: {a: \"b\\\", c\"}}",
	    "{name: a, plugin: all, m: {a: b, c: \"\"}}");
	assert_other_canonical("{name: a, plugin: all, s: \"x\\ny\"}",
	    "{name: a, plugin: all, s: \"x\\\\ny\"}");
	assert_other_canonical("{name: a, plugin: x}",
	    "{name: a, plugin: y}");
	assert_other_canonical("{name: a, plugin: x, k: 1}",
	    "{name: a, plugin: x, k: \"1 \"}");
}

static void
test_print(void **state)
{
	static const char want[] =
	    "node: n1\n"
	    "plugin_dirs:\n"
	    "  - /usr/lib/troika/plugins\n"
	    "  - \"dir with space\"\n"
	    "include: conf.d\n"
	    "workers: 4\n"
	    "metrics:\n"
	    "  listen: \"127.0.0.1:9464\"\n"
	    "log:\n"
	    "  level: info\n"
	    "  target: stderr\n"
	    "defaults:\n"
	    "  interval: 10s\n"
	    "  timeout: 5s\n"
	    "  action_timeout: 2m\n"
	    "checks:\n"
	    "  # agent.yaml:5\n"
	    "  - name: web\n"
	    "    plugin: tcp\n"
	    "    interval: 5s\n"
	    "    timeout: 2s\n"
	    "    action_timeout: 2m\n"
	    "    host: \"127.0.0.1\"\n"
	    "    port: 80\n"
	    "  # agent.yaml:11\n"
	    "  - name: \"123\"\n"
	    "    plugin: all\n"
	    "    interval: 1m30s\n"
	    "    timeout: 5s\n"
	    "    action_timeout: 2m\n"
	    "    s: \"q\\\"uo\\\\te\\n\\ttab\\x01 ü\"\n"
	    "    i: -5\n"
	    "    b: true\n"
	    "    d: 1s500ms\n"
	    "    z: 1536\n"
	    "    l:\n"
	    "      - a\n"
	    "      - \"true\"\n"
	    "      - \"\"\n"
	    "      - \"x: y\"\n"
	    "    m:\n"
	    "      k: v\n"
	    "      \"a b\": \"null\"\n"
	    "  # agent.yaml:14\n"
	    "  - name: empty\n"
	    "    plugin: all\n"
	    "    interval: 10s\n"
	    "    timeout: 5s\n"
	    "    action_timeout: 2m\n"
	    "    s: dflt\n"
	    "    i: 7\n"
	    "    b: true\n"
	    "    d: 1s500ms\n"
	    "    z: 1KiB\n"
	    "    l: []\n"
	    "    m: {}\n"
	    "  # conf.d/x.yaml:2\n"
	    "  - name: ghost\n"
	    "    plugin: \"no such\"\n"
	    "    interval: 10s\n"
	    "    timeout: 5s\n"
	    "    action_timeout: 2m\n"
	    "    # plugin not found: options not validated, not shown\n";
	struct agent_conf *conf;
	char *out;

	(void)state;
	make_dir("conf.d");
	write_file("agent.yaml",
	    "node: n1\n"
	    "plugin_dirs: [/usr/lib/troika/plugins, dir with space]\n"
	    "include: conf.d\n"
	    "checks:\n"
	    "  - name: web\n"
	    "    plugin: tcp\n"
	    "    interval: 5000ms\n"
	    "    timeout: 2s\n"
	    "    host: 127.0.0.1\n"
	    "    port: 80\n"
	    "  - {name: \"123\", plugin: all, interval: 90s, i: -5, z: 1536,\n"
	    "     s: \"q\\\"uo\\\\te\\n\\ttab\\x01 ü\", l: [a, \"true\", '', \"x: y\"],\n"
	    "     m: {k: v, a b: \"null\"}}\n"
	    "  - {name: empty, plugin: all, l: [], m: {}}\n");
	write_file("conf.d/x.yaml",
	    "checks:\n  - {name: ghost, plugin: no such, port: 1}\n");
	conf = load_ok("agent.yaml", 0);
	out = print_conf(conf);
	assert_string_equal(out, want);
	free(out);
	conf_free(conf);
}

/* Remove the "  # file:line" lines of conf_print() output, in place. */
static void
drop_comments(char *s)
{
	char *out = s;

	while (*s != '\0') {
		char *eol = strchr(s, '\n');
		size_t len = eol != NULL ? (size_t)(eol - s) + 1 : strlen(s);

		if (strncmp(s, "  # ", 4) != 0) {
			memmove(out, s, len);
			out += len;
		}
		s += len;
	}
	*out = '\0';
}

/* What conf_print() writes loads again to the same configuration. */
static void
test_print_round_trip(void **state)
{
	struct agent_conf *conf;
	char *first, *second;

	(void)state;
	write_file("agent.yaml",
	    "node: \"yes\"\n"
	    "plugin_dirs: [\"/a:b\", \"#x\", \"- y\", \"on\", \"[z]\"]\n"
	    "metrics: {listen: \"\"}\n"
	    "log: {level: debug, target: syslog}\n"
	    "defaults: {interval: 2d, timeout: 1h1ms}\n"
	    "checks:\n"
	    "  - {name: \"0\", plugin: all, s: \"a\\u0085b'c\\\"d\\\\\\x81"
	    "\\u2028\\u2029\\uFEFF\\uFFFE\\uFFFF\\ud7ff\\xa0\\U0010FFFF\", i: 100,"
	    " b: no,\n"
	    "     d: 100ms, z: 0, l: [\"\", \"~\", \"- \", \"{}\", \"'\"],"
	    " m: {\"\": \"\", \"%\": \"@\", \"N\": n}}\n"
	    "  - {name: t, plugin: tcp, host: \"::1\", port: 1, send: \"\\t\","
	    " expect: \"\\r\\n\"}\n");
	conf = load_ok("agent.yaml", CONF_STRICT_PLUGINS);
	first = print_conf(conf);
	conf_free(conf);

	write_file("printed.yaml", first);
	conf = load_ok("printed.yaml", CONF_STRICT_PLUGINS);
	second = print_conf(conf);
	conf_free(conf);
	/* Only the file comments differ. */
	drop_comments(first);
	drop_comments(second);
	assert_string_equal(first, second);
	free(first);
	free(second);
}

static void
test_file_errors(void **state)
{
	static const char *const missing[] = {
		"nope.yaml: cannot open: No such file or directory", NULL,
	};
	static const char *const syntax[] = {
		"agent.yaml:3:1: syntax error: did not find expected ',' or "
		"'}' (while parsing a flow mapping at 2:6)", NULL,
	};
	static const char *const dup[] = {
		"agent.yaml:2:1: duplicate key 'node' (first at 1:1)", NULL,
	};

	(void)state;
	load_err("nope.yaml", 0, missing);
	write_file("agent.yaml", "node: n\nlog: {level: x\n");
	load_err("agent.yaml", 0, syntax);
	write_file("agent.yaml", "node: n\nnode: m\n");
	load_err("agent.yaml", 0, dup);
	one_err("- node\n", "agent.yaml:1:1: expected a mapping at the top of "
	    "the file (got a sequence)");
	one_err("node\n", "agent.yaml:1:1: expected a mapping at the top of "
	    "the file (got a scalar)");
}

static void
test_main_errors(void **state)
{
	(void)state;
	one_err("node: n\nnodes: m\n", "agent.yaml:2:1: unknown key 'nodes' "
	    "(expected one of: node, plugin_dirs, include, workers, metrics, "
	    "log, defaults, coordinators, checks)");
	one_err("node: \"\"\n", "agent.yaml:1:7: 'node' must not be empty");
	one_err("node:\n", "agent.yaml:1:6: missing value for 'node' "
	    "(expected a string)");
	one_err("node: [a]\n", "agent.yaml:1:7: expected a string for 'node' "
	    "(got a sequence)");
	one_err("node: n\nplugin_dirs: /x\n", "agent.yaml:2:14: expected a "
	    "sequence of directories for 'plugin_dirs' (got a scalar)");
	one_err("node: n\nplugin_dirs:\n", "agent.yaml:2:13: expected a "
	    "sequence of directories for 'plugin_dirs' (got null)");
	one_err("node: n\nplugin_dirs: []\n",
	    "agent.yaml:2:14: 'plugin_dirs' must not be empty");
	one_err("node: n\nplugin_dirs: [/a, {b: c}]\n",
	    "agent.yaml:2:19: expected a string for 'plugin_dirs' "
	    "(got a mapping)");
	one_err("node: n\nplugin_dirs: [/a, '']\n",
	    "agent.yaml:2:19: 'plugin_dirs' entries must not be empty");
	one_err("node: n\ninclude: ''\n",
	    "agent.yaml:2:10: 'include' must not be empty");
	one_err("node: n\ninclude: nodir\n", "agent.yaml:2:10: cannot open "
	    "include directory 'nodir': No such file or directory");
	one_err("node: n\nworkers: 0\n",
	    "agent.yaml:2:10: 'workers' out of range: 0 (expected 1..256)");
	one_err("node: n\nworkers: 257\n",
	    "agent.yaml:2:10: 'workers' out of range: 257 (expected 1..256)");
	one_err("node: n\nworkers: 99999999999999999999\n",
	    "agent.yaml:2:10: 'workers' out of range: 99999999999999999999 "
	    "(expected 1..256)");
	one_err("node: n\nworkers: four\n",
	    "agent.yaml:2:10: invalid integer 'four' for 'workers'");
}

static void
test_section_errors(void **state)
{
	static const char listen_hint[] = "(expected host:port, e.g. "
	    "127.0.0.1:9464 or [::1]:9464, or \"\" to disable)";
	static const char *const bad_listen[] = {
		"1.2.3.4", "1.2.3.4:", ":9464", "::1:9464", "[::1]", "[::1]9464",
		"[]:1", "[host]:1", "a b:1", "h:12x", "h:-1", "[::1:1",
	};
	char text[128], want[512];

	(void)state;
	one_err("node: n\nmetrics: 9464\n", "agent.yaml:2:10: expected a "
	    "mapping for 'metrics' (got a scalar)");
	one_err("node: n\nmetrics: {port: 1}\n", "agent.yaml:2:11: unknown "
	    "key 'port' in 'metrics' (expected one of: listen)");
	one_err("node: n\nmetrics: {listen: [a]}\n", "agent.yaml:2:19: "
	    "expected a string for 'listen' (got a sequence)");
	one_err("node: n\nmetrics: {listen: }\n", "agent.yaml:2:19: "
	    "missing value for 'listen' (expected a string)");
	for (size_t i = 0; i < sizeof(bad_listen) / sizeof(bad_listen[0]);
	     i++) {
		snprintf(text, sizeof(text), "node: n\nmetrics:\n  listen: "
		    "\"%s\"\n", bad_listen[i]);
		snprintf(want, sizeof(want), "agent.yaml:3:11: invalid "
		    "address '%s' for 'listen' %s", bad_listen[i], listen_hint);
		one_err(text, want);
	}
	one_err("node: n\nmetrics:\n  listen: \"h:0\"\n", "agent.yaml:3:11: "
	    "port out of range in 'listen': 'h:0' (expected 1..65535)");
	one_err("node: n\nmetrics:\n  listen: \"[::1]:65536\"\n",
	    "agent.yaml:3:11: port out of range in 'listen': '[::1]:65536' "
	    "(expected 1..65535)");
	one_err("node: n\nmetrics:\n  listen: \"h:99999999999999999999\"\n",
	    "agent.yaml:3:11: port out of range in 'listen': "
	    "'h:99999999999999999999' (expected 1..65535)");

	one_err("node: n\nlog: [a]\n", "agent.yaml:2:6: expected a mapping "
	    "for 'log' (got a sequence)");
	one_err("node: n\nlog: {level: loud}\n", "agent.yaml:2:14: invalid "
	    "log level 'loud' (expected one of: err, warning, info, debug)");
	one_err("node: n\nlog: {target: file}\n", "agent.yaml:2:15: invalid "
	    "log target 'file' (expected one of: stderr, syslog)");
	one_err("node: n\nlog: {file: x}\n", "agent.yaml:2:7: unknown key "
	    "'file' in 'log' (expected one of: level, target)");
	one_err("node: n\nlog: {level: {a: b}}\n", "agent.yaml:2:14: "
	    "expected a string for 'level' (got a mapping)");

	one_err("node: n\ndefaults: 5s\n", "agent.yaml:2:11: expected a "
	    "mapping for 'defaults' (got a scalar)");
	one_err("node: n\ndefaults: {interval: fast}\n", "agent.yaml:2:22: "
	    "invalid duration 'fast' for 'interval' (expected e.g. 500ms, "
	    "5s, 1m)");
	one_err("node: n\ndefaults: {interval: 99ms}\n", "agent.yaml:2:22: "
	    "'interval' out of range: 99ms (expected 100ms..7d)");
	one_err("node: n\ndefaults: {timeout: 7d1ms}\n", "agent.yaml:2:21: "
	    "'timeout' out of range: 7d1ms (expected 100ms..7d)");
	one_err("node: n\ndefaults: {timeout: 9999999999999999999d}\n",
	    "agent.yaml:2:21: 'timeout' out of range: 9999999999999999999d "
	    "(expected 100ms..7d)");
	one_err("node: n\ndefaults: {timeout: 11s}\n", "agent.yaml:2:21: "
	    "'timeout' 11s is longer than 'interval' 10s in 'defaults'");
	one_err("node: n\ndefaults: {intervall: 1s}\n", "agent.yaml:2:12: "
	    "unknown key 'intervall' in 'defaults' (expected one of: "
	    "interval, timeout, action_timeout)");
}

static void
test_check_errors(void **state)
{
	(void)state;
	one_err("node: n\nchecks: {a: b}\n", "agent.yaml:2:9: expected a "
	    "sequence for 'checks' (got a mapping)");
	one_err("node: n\nchecks:\n  - web\n", "agent.yaml:3:5: expected a "
	    "mapping for each check (got a scalar)");
	one_err("node: n\nchecks:\n  - {plugin: tcp, host: h, port: 1}\n",
	    "agent.yaml:3:5: missing required key 'name' in check #1");
	one_err("node: n\nchecks:\n  - {name: a, plugin: none}\n"
		"  - {name: b}\n",
	    "agent.yaml:4:5: missing required key 'plugin' in check 'b'");
	one_err("node: n\nchecks:\n  - {name: \"a b\", plugin: none}\n",
	    "agent.yaml:3:12: invalid check name 'a b' (expected letters, "
	    "digits, '_', '.', '-')");
	one_err("node: n\nchecks:\n  - {name: \"\", plugin: none}\n",
	    "agent.yaml:3:12: 'name' must not be empty");
	one_err("node: n\nchecks:\n  - {name: [a], plugin: none}\n",
	    "agent.yaml:3:12: expected a string for 'name' (got a sequence)");
	one_err("node: n\nchecks:\n  - {name: a, plugin: }\n",
	    "agent.yaml:3:23: missing value for 'plugin' (expected a string)");
	one_err("node: n\nchecks:\n  - {name: \"a\\n\", plugin: none}\n",
	    "agent.yaml:3:12: invalid check name 'a\\n' (expected letters, "
	    "digits, '_', '.', '-')");
	/* An invalid name is not used to label the check. */
	{
		static const char *const w[] = {
			"agent.yaml:3:12: invalid check name 'a/b' (expected "
			"letters, digits, '_', '.', '-')",
			"agent.yaml:3:25: unknown plugin 'nosuch' in check #1",
			NULL,
		};

		write_file("agent.yaml",
		    "node: n\nchecks:\n  - {name: a/b, plugin: nosuch}\n");
		load_err("agent.yaml", CONF_STRICT_PLUGINS, w);
	}
	one_err("node: n\nchecks:\n  - {name: a, plugin: none, port: 1}\n",
	    "agent.yaml:3:29: unknown key 'port' in check 'a' (expected one "
	    "of: name, plugin, interval, timeout, action_timeout, service)");
	one_err("node: n\nchecks:\n"
		"  - name: web\n"
		"    plugin: tcp\n"
		"    host: h\n"
		"    port: 1\n"
		"    intervall: 5s\n",
	    "agent.yaml:7:5: unknown key 'intervall' in check 'web' (expected "
	    "one of: name, plugin, interval, timeout, action_timeout, service, "
	    "host, port, send, "
	    "expect)");
	one_err("node: n\nchecks:\n  - {name: a, plugin: none, interval: x}\n",
	    "agent.yaml:3:39: invalid duration 'x' for 'interval' (expected "
	    "e.g. 500ms, 5s, 1m)");
	one_err("node: n\nchecks:\n  - {name: a, plugin: none, timeout: 8d}\n",
	    "agent.yaml:3:38: 'timeout' out of range: 8d (expected 100ms..7d)");
	one_err("node: n\nchecks:\n  - {name: a, plugin: none, interval: [1s]}\n",
	    "agent.yaml:3:39: expected a duration for 'interval' (got a "
	    "sequence)");
	one_err("node: n\nchecks:\n  - {name: a, plugin: none, timeout: 11s}\n",
	    "agent.yaml:3:38: 'timeout' 11s is longer than 'interval' 10s in "
	    "check 'a'");
}

static void
test_option_errors(void **state)
{
	static const struct {
		const char *opt;
		const char *want;
	} cases[] = {
		{ "host: [a]", "expected a string for 'host' (got a sequence)" },
		{ "host: {a: b}", "expected a string for 'host' (got a mapping)" },
		{ "host: ~", "missing value for 'host' (expected a string)" },
		{ "port: abc", "invalid integer 'abc' for 'port'" },
		{ "port: 1.5", "invalid integer '1.5' for 'port'" },
		{ "port: 0", "'port' out of range: 0 (expected 1..65535)" },
		{ "port: 70000", "'port' out of range: 70000 (expected 1..65535)" },
		{ "port: -1", "'port' out of range: -1 (expected 1..65535)" },
		{ "port: 9223372036854775808", "'port' out of range: "
		  "9223372036854775808 (expected 1..65535)" },
		{ "port: [1]", "expected an integer for 'port' (got a sequence)" },
	};
	static const struct {
		const char *opt;
		const char *want;
	} all_cases[] = {
		{ "b: maybe", "invalid boolean 'maybe' for 'b' (expected true "
		  "or false)" },
		{ "b: 1", "invalid boolean '1' for 'b' (expected true or false)" },
		{ "b: [true]", "expected a boolean for 'b' (got a sequence)" },
		{ "d: 5", "invalid duration '5' for 'd' (expected e.g. 500ms, "
		  "5s, 1m)" },
		{ "d: 99ms", "'d' out of range: 99ms (expected 100ms..1m)" },
		{ "d: 2m", "'d' out of range: 2m (expected 100ms..1m)" },
		{ "z: 1 MiB", "invalid size '1 MiB' for 'z' (expected e.g. 512, "
		  "64KiB, 1MB)" },
		{ "z: 2MiB", "'z' out of range: 2MiB (expected 0..1MiB)" },
		{ "z: {}", "expected a size for 'z' (got a mapping)" },
		{ "i: 101", "'i' out of range: 101 (expected -5..100)" },
		{ "i: -6", "'i' out of range: -6 (expected -5..100)" },
		{ "u: 9223372036854775808", "'u' out of range: "
		  "9223372036854775808 (too large)" },
		{ "l: a", "expected a sequence of strings for 'l' (got a "
		  "scalar)" },
		{ "l: ", "expected a sequence of strings for 'l' (got null)" },
		{ "l: {a: b}", "expected a sequence of strings for 'l' (got a "
		  "mapping)" },
		{ "m: [a]", "expected a mapping of strings for 'm' (got a "
		  "sequence)" },
		{ "m: ~", "expected a mapping of strings for 'm' (got null)" },
	};
	char text[256], want[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* The value starts at column 11 of line 6. */
		if (strncmp(cases[i].opt, "host", 4) == 0)
			snprintf(text, sizeof(text), "node: n\nchecks:\n"
			    "  - name: a\n    plugin: tcp\n    port: 1\n"
			    "    %s\n", cases[i].opt);
		else
			snprintf(text, sizeof(text), "node: n\nchecks:\n"
			    "  - name: a\n    plugin: tcp\n    host: h\n"
			    "    %s\n", cases[i].opt);
		snprintf(want, sizeof(want), "agent.yaml:6:11: %s",
		    cases[i].want);
		one_err(text, want);
	}
	for (size_t i = 0; i < sizeof(all_cases) / sizeof(all_cases[0]);
	     i++) {
		int col = all_cases[i].opt[3] == '\0' ? 7 : 8;

		snprintf(text, sizeof(text), "node: n\nchecks:\n"
		    "  - name: a\n    plugin: all\n    %s\n", all_cases[i].opt);
		snprintf(want, sizeof(want), "agent.yaml:5:%d: %s", col,
		    all_cases[i].want);
		one_err(text, want);
	}

	/* Items of lists and values of maps are strings. */
	one_err("node: n\nchecks:\n  - {name: a, plugin: all, l: [a, [b]]}\n",
	    "agent.yaml:3:35: expected a string for 'l' (got a sequence)");
	one_err("node: n\nchecks:\n  - {name: a, plugin: all, l: [a, ~]}\n",
	    "agent.yaml:3:35: missing value for 'l' (expected a string)");
	one_err("node: n\nchecks:\n  - {name: a, plugin: all, m: {k: [v]}}\n",
	    "agent.yaml:3:35: expected a string for 'k' (got a sequence)");
	one_err("node: n\nchecks:\n  - {name: a, plugin: all, m: {\"k\\n\": }}\n",
	    "agent.yaml:3:39: missing value for 'k\\n' (expected a string)");

	/* Required options, reported at the check. */
	{
		static const char *const w[] = {
			"agent.yaml:3:5: missing required key 'host' for "
			"plugin 'tcp'",
			"agent.yaml:3:5: missing required key 'port' for "
			"plugin 'tcp'",
			NULL,
		};

		write_file("agent.yaml",
		    "node: n\nchecks:\n  - name: a\n    plugin: tcp\n");
		load_err("agent.yaml", CONF_STRICT_PLUGINS, w);
	}
}

static void
test_plugin_table_errors(void **state)
{
	static const char *const baddefault[] = {
		"agent.yaml:3:23: plugin 'baddefault' has a bad default: "
		"invalid integer 'eighty' for 'port'",
		"agent.yaml:3:23: plugin 'baddefault' has a bad default: "
		"'wait' out of range: 1d (expected 0s..1s)",
		NULL,
	};
	static const char *const badnames[] = {
		"agent.yaml:3:23: plugin 'badnames' declares option "
		"'interval', a name reserved for the host",
		"agent.yaml:3:23: plugin 'badnames' declares option 'x' twice",
		"agent.yaml:3:23: plugin 'badnames' declares option 't' with "
		"unknown type 42",
		NULL,
	};

	(void)state;
	/* Reported once for the plugin, not once per check. */
	write_file("agent.yaml",
	    "node: n\nchecks:\n"
	    "  - {name: a, plugin: baddefault}\n"
	    "  - {name: b, plugin: baddefault, port: 1, wait: 1s}\n");
	load_err("agent.yaml", CONF_STRICT_PLUGINS, baddefault);
	assert_int_equal(lookups, 1);

	write_file("agent.yaml",
	    "node: n\nchecks:\n"
	    "  - {name: a, plugin: badnames}\n"
	    "  - {name: b, plugin: badnames}\n");
	load_err("agent.yaml", CONF_STRICT_PLUGINS, badnames);
}

static void
test_duplicate_checks(void **state)
{
	static const char *const w[] = {
		"agent.yaml:5:5: check 'web' already defined at agent.yaml:3:5",
		"conf.d/b.yaml:3:5: check 'web' already defined at "
		"agent.yaml:3:5",
		"conf.d/b.yaml:4:5: check 'db' already defined at "
		"conf.d/a.yaml:2:5",
		NULL,
	};

	(void)state;
	make_dir("conf.d");
	write_file("agent.yaml",
	    "node: n\nchecks:\n"
	    "  - {name: web, plugin: none}\n"
	    "  - {name: other, plugin: none}\n"
	    "  - {name: web, plugin: none}\n"
	    "include: conf.d\n");
	write_file("conf.d/a.yaml", "checks:\n  - {name: db, plugin: none}\n");
	write_file("conf.d/b.yaml", "checks:\n"
				    "  - {name: fine, plugin: none}\n"
				    "  - {name: web, plugin: none}\n"
				    "  - {name: db, plugin: none}\n");
	load_err("agent.yaml", CONF_STRICT_PLUGINS, w);
}

static void
test_dropin_errors(void **state)
{
	static const char *const w[] = {
		"agent.yaml:2:14: invalid log level 'x' (expected one of: err, "
		"warning, info, debug)",
		"agent.yaml:4:34: 'port' out of range: 0 (expected 1..65535)",
		"conf.d/1.yaml:1:1: 'node' is only allowed in the main file "
		"(drop-in files hold only 'checks')",
		"conf.d/1.yaml:2:1: 'defaults' is only allowed in the main "
		"file (drop-in files hold only 'checks')",
		"conf.d/1.yaml:3:1: unknown key 'chekcs' (expected one of: "
		"checks)",
		"conf.d/2.yaml:2:2: syntax error: mapping values are not "
		"allowed in this context",
		"conf.d/3.yaml:1:1: expected a mapping at the top of the file "
		"(got a sequence)",
		"conf.d/4.yaml:2:34: missing value for 'host' (expected a "
		"string)",
		"conf.d/5.yaml:1:9: anchors and aliases are not supported",
		NULL,
	};

	(void)state;
	make_dir("conf.d");
	write_file("agent.yaml",
	    "include: conf.d\nlog: {level: x}\nchecks:\n"
	    "  - {name: a, plugin: tcp, port: 0, host: h}\n");
	write_file("conf.d/1.yaml", "node: n\ndefaults: {}\nchekcs: []\n");
	write_file("conf.d/2.yaml", "checks\nx: 1\n");
	write_file("conf.d/3.yaml", "- 1\n");
	write_file("conf.d/4.yaml",
	    "checks:\n  - {name: b, plugin: tcp, host: , port: 1}\n");
	write_file("conf.d/5.yaml", "checks: &a []\n");
	load_err("agent.yaml", CONF_STRICT_PLUGINS, w);
}

static void
test_errors_accumulate(void **state)
{
	static const char *const w1[] = {
		"agent.yaml:1:6: missing value for 'node' (expected a string)",
		NULL,
	};
	static const char *const w2[] = {
		"agent.yaml:1:6: missing value for 'node' (expected a string)",
		"other.yaml: cannot open: No such file or directory",
		NULL,
	};
	struct agent_conf *conf;

	(void)state;
	/* A later load appends; a success adds nothing. */
	write_file("agent.yaml", "node: \n");
	load_err("agent.yaml", 0, w1);
	assert_null(conf_load("agent.yaml", fake_lookup, &lookups, 0, &errs));
	assert_null(conf_load("other.yaml", fake_lookup, &lookups, 0, &errs));
	write_file("good.yaml", "node: n\n");
	conf = conf_load("good.yaml", fake_lookup, &lookups, 0, &errs);
	assert_non_null(conf);
	conf_free(conf);
	assert_int_equal(errs.n, 2);
	for (size_t i = 0; i < 2; i++)
		assert_string_equal(errs.msgs[i], w2[i]);
	conf_errors_clear(&errs);
	assert_int_equal(errs.n, 0);
	assert_null(errs.msgs);
	conf_errors_clear(&errs);
	conf_errors_clear(NULL);
	conf_free(NULL);
	conf_strv_free(NULL, 0);

	/* No lookup function: every plugin is unknown. */
	write_file("agent.yaml", "node: n\nchecks: [{name: a, plugin: tcp}]\n");
	conf = conf_load("agent.yaml", NULL, NULL, 0, &errs);
	assert_non_null(conf);
	assert_int_equal(conf->checks[0].plugin_missing, 1);
	conf_free(conf);
}

static void
test_plugin_dirs(void **state)
{
	static const char *const w_missing[] = {
		"nope.yaml: cannot open: No such file or directory", NULL,
	};
	char **dirs;
	size_t n = 99;

	(void)state;
	make_dir("etc");
	write_file("etc/agent.yaml", "node: n\n");
	dirs = conf_plugin_dirs("etc/agent.yaml", &n, &errs);
	assert_non_null(dirs);
	assert_int_equal(n, 1);
	assert_string_equal(dirs[0], "/usr/local/lib/troika/plugins");
	conf_strv_free(dirs, n);

	/* Only plugin_dirs is looked at: other mistakes wait for conf_load. */
	write_file("etc/agent.yaml", "bogus: 1\nworkers: 0\n"
				     "plugin_dirs: [p, /abs/]\n");
	dirs = conf_plugin_dirs("etc/agent.yaml", &n, &errs);
	assert_non_null(dirs);
	assert_int_equal(n, 2);
	assert_string_equal(dirs[0], "etc/p");
	assert_string_equal(dirs[1], "/abs");
	assert_int_equal(errs.n, 0);
	conf_strv_free(dirs, n);

	write_file("etc/agent.yaml", "");
	dirs = conf_plugin_dirs("etc/agent.yaml", &n, &errs);
	assert_int_equal(n, 1);
	conf_strv_free(dirs, n);

	n = 99;
	assert_null(conf_plugin_dirs("nope.yaml", &n, &errs));
	assert_int_equal(n, 0);
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.msgs[0], w_missing[0]);
	conf_errors_clear(&errs);

	write_file("etc/agent.yaml", "plugin_dirs: [a, [b], '']\n");
	assert_null(conf_plugin_dirs("etc/agent.yaml", &n, &errs));
	assert_int_equal(errs.n, 2);
	assert_string_equal(errs.msgs[0], "etc/agent.yaml:1:18: expected a "
	    "string for 'plugin_dirs' (got a sequence)");
	assert_string_equal(errs.msgs[1], "etc/agent.yaml:1:23: "
	    "'plugin_dirs' entries must not be empty");
	conf_errors_clear(&errs);

	write_file("etc/agent.yaml", "[plugin_dirs]\n");
	assert_null(conf_plugin_dirs("etc/agent.yaml", &n, &errs));
	assert_string_equal(errs.msgs[0], "etc/agent.yaml:1:1: expected a "
	    "mapping at the top of the file (got a sequence)");
	conf_errors_clear(&errs);

	write_file("etc/agent.yaml", "plugin_dirs: [a\n");
	assert_null(conf_plugin_dirs("etc/agent.yaml", &n, &errs));
	assert_int_equal(errs.n, 1);
	conf_errors_clear(&errs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_defaults, clean),
		cmocka_unit_test_setup(test_empty_file_uses_hostname, clean),
		cmocka_unit_test_setup(test_main_values, clean),
		cmocka_unit_test_setup(test_check_values, clean),
		cmocka_unit_test_setup(test_timeout_clamped_to_short_interval,
		    clean),
		cmocka_unit_test_setup(test_option_types, clean),
		cmocka_unit_test_setup(test_dropins, clean),
		cmocka_unit_test_setup(test_unknown_plugin_not_strict, clean),
		cmocka_unit_test_setup(test_canonical, clean),
		cmocka_unit_test_setup(test_print, clean),
		cmocka_unit_test_setup(test_print_round_trip, clean),
		cmocka_unit_test_setup(test_file_errors, clean),
		cmocka_unit_test_setup(test_main_errors, clean),
		cmocka_unit_test_setup(test_section_errors, clean),
		cmocka_unit_test_setup(test_check_errors, clean),
		cmocka_unit_test_setup(test_option_errors, clean),
		cmocka_unit_test_setup(test_plugin_table_errors, clean),
		cmocka_unit_test_setup(test_duplicate_checks, clean),
		cmocka_unit_test_setup(test_dropin_errors, clean),
		cmocka_unit_test_setup(test_errors_accumulate, clean),
		cmocka_unit_test_setup(test_plugin_dirs, clean),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
