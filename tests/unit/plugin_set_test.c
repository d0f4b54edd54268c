/* plugin_set: what the host refuses to load, and why. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "emit.h"
#include "plugin_set.h"

static char refusals[8192];
static int nloaded_events;

static void
capture_sink(const struct troika_event *ev, void *arg)
{
	(void)arg;
	if (ev->kind == EVENT_PLUGIN_REFUSED) {
		strncat(refusals, ev->message, sizeof(refusals) - strlen(refusals) - 2);
		strcat(refusals, "\n");
	} else if (ev->kind == EVENT_PLUGIN_LOADED) {
		nloaded_events++;
	}
}

static void
copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[65536];
	FILE *in = fopen(from, "rb"), *out;
	size_t n;

	assert_non_null(in);
	out = fopen(to, "wb");
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	fclose(out);
	assert_int_equal(chmod(to, mode), 0);
}

static char tmpdir[64];

static void
put(const char *plugin, const char *as, mode_t mode)
{
	char from[1024], to[1024];

	snprintf(from, sizeof(from), "%s/troika-%s.so", TEST_PLUGIN_DIR, plugin);
	snprintf(to, sizeof(to), "%s/%s", tmpdir, as);
	copy_file(from, to, mode);
}

static int
setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/troika-plugin-set-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	assert_int_equal(chmod(tmpdir, 0755), 0);
	refusals[0] = '\0';
	nloaded_events = 0;
	assert_int_equal(event_sink_add(capture_sink, NULL), 0);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[256];

	(void)state;
	event_sink_remove(capture_sink, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void
test_refuses_bad_plugins_and_loads_the_rest(void **state)
{
	struct plugin_set ps;
	char *dirs[] = { tmpdir };
	char expect[1024];

	(void)state;
	put("flaky", "troika-flaky.so", 0644);
	put("hang", "troika-hang.so", 0755);
	put("badabi", "troika-badabi.so", 0644);
	put("tiny", "troika-tiny.so", 0644);
	put("noentry", "troika-noentry.so", 0644);
	put("flaky", "troika-flaky2.so", 0644);      /* same name again */
	put("slow", "troika-slow.so", 0664);         /* group-writable */
	put("sleepy", "troika-sleepy.so.disabled", 0644); /* not *.so */

	plugin_set_init(&ps, 4242);
	assert_int_equal(plugin_set_load_dirs(&ps, dirs, 1), 2);
	assert_int_equal(ps.nplugins, 2);
	assert_int_equal(nloaded_events, 2);
	assert_non_null(plugin_set_find(&ps, "flaky"));
	assert_non_null(plugin_set_find(&ps, "hang"));
	assert_null(plugin_set_find(&ps, "slow"));
	assert_null(plugin_set_find(&ps, "sleepy"));

	snprintf(expect, sizeof(expect), "refused %s/troika-badabi.so: ABI major "
	    "mismatch: plugin has 99, host has 1\n", tmpdir);
	assert_non_null(strstr(refusals, expect));
	snprintf(expect, sizeof(expect), "refused %s/troika-tiny.so: descriptor "
	    "too small for ABI 1: 16 bytes", tmpdir);
	assert_non_null(strstr(refusals, expect));
	snprintf(expect, sizeof(expect), "refused %s/troika-noentry.so: no entry "
	    "symbol troika_plugin_entry_v1", tmpdir);
	assert_non_null(strstr(refusals, expect));
	snprintf(expect, sizeof(expect), "refused %s/troika-flaky2.so: plugin "
	    "name 'flaky' already provided by %s/troika-flaky.so\n", tmpdir, tmpdir);
	assert_non_null(strstr(refusals, expect));
	snprintf(expect, sizeof(expect), "refused %s/troika-slow.so: writable by "
	    "group or others\n", tmpdir);
	assert_non_null(strstr(refusals, expect));

	size_t nrefused = 0;
	for (struct plugin_refusal *r = ps.refused; r; r = r->next)
		nrefused++;
	assert_int_equal(nrefused, 5);

	/* Option declarations for the config loader. */
	const struct troika_option *o = plugin_set_options("flaky", &ps);
	assert_non_null(o);
	assert_string_equal(o[0].name, "statuses");
	assert_null(plugin_set_options("nope", &ps));
	plugin_set_free(&ps);
}

static void
test_refuses_loose_directory_and_foreign_owner(void **state)
{
	struct plugin_set ps;
	char *dirs[] = { tmpdir };
	char expect[1100], path[512];

	(void)state;
	put("flaky", "troika-flaky.so", 0644);
	assert_int_equal(chmod(tmpdir, 0775), 0);
	plugin_set_init(&ps, 4242);
	assert_int_equal(plugin_set_load_dirs(&ps, dirs, 1), 0);
	snprintf(expect, sizeof(expect), "refused %s: plugin directory writable "
	    "by group or others; none of its plugins is loaded\n", tmpdir);
	assert_string_equal(refusals, expect);
	assert_int_equal(chmod(tmpdir, 0755), 0);

	/* Owned by someone who is neither root nor the agent's user. */
	refusals[0] = '\0';
	snprintf(path, sizeof(path), "%s/troika-flaky.so", tmpdir);
	assert_int_equal(chown(path, 4343, 4343), 0);
	assert_int_equal(plugin_set_load_dirs(&ps, dirs, 1), 0);
	snprintf(expect, sizeof(expect), "refused %s: owned by neither root nor "
	    "the agent's user\n", path);
	assert_string_equal(refusals, expect);
	/* ... unless that someone is the agent's user. */
	ps.owner_uid = 4343;
	assert_int_equal(plugin_set_load_dirs(&ps, dirs, 1), 1);
	plugin_set_free(&ps);
}

static void
test_stale_detection(void **state)
{
	struct plugin_set ps;
	char *dirs[] = { tmpdir }, *other[] = { "/nonexistent" };
	char path[512];
	struct plugin *p;

	(void)state;
	put("flaky", "troika-flaky.so", 0644);
	plugin_set_init(&ps, 0);
	assert_int_equal(plugin_set_load_dirs(&ps, dirs, 1), 1);
	p = plugin_set_find(&ps, "flaky");
	assert_false(plugin_set_is_stale(p, dirs, 1));
	assert_true(plugin_set_is_stale(p, other, 1));
	/* A second load of the same dir loads nothing new. */
	assert_int_equal(plugin_set_load_dirs(&ps, dirs, 1), 0);

	/* Replaced on disk (new inode, as an install does). */
	snprintf(path, sizeof(path), "%s/troika-flaky.so", tmpdir);
	assert_int_equal(unlink(path), 0);
	put("flaky", "troika-flaky.so", 0644);
	assert_true(plugin_set_is_stale(p, dirs, 1));
	plugin_set_unload(&ps, p);
	assert_int_equal(ps.nplugins, 0);
	assert_int_equal(plugin_set_load_dirs(&ps, dirs, 1), 1);
	plugin_set_free(&ps);
}

static int
use_only_flaky(const struct plugin *p, void *arg)
{
	(void)arg;
	return strcmp(p->desc->name, "flaky") == 0;
}

static void
test_release_unused(void **state)
{
	struct plugin_set ps;
	char *dirs[] = { tmpdir };

	(void)state;
	put("flaky", "troika-flaky.so", 0644);
	put("hang", "troika-hang.so", 0644);
	plugin_set_init(&ps, 0);
	assert_int_equal(plugin_set_load_dirs(&ps, dirs, 1), 2);
	assert_int_equal(nloaded_events, 2);
	plugin_set_release_unused(&ps, use_only_flaky, NULL);
	assert_int_equal(ps.nplugins, 1);
	assert_non_null(plugin_set_find(&ps, "flaky"));
	assert_null(plugin_set_find(&ps, "hang"));
	assert_non_null(ps.parked);

	/* A reload loads it again, quietly: same file. */
	assert_int_equal(plugin_set_load_dirs(&ps, dirs, 1), 1);
	assert_int_equal(nloaded_events, 2);
	assert_non_null(plugin_set_find(&ps, "hang"));
	assert_null(ps.parked);

	/* Released, then replaced on disk: announced as new code. */
	plugin_set_release_unused(&ps, use_only_flaky, NULL);
	char path[512];
	snprintf(path, sizeof(path), "%s/troika-hang.so", tmpdir);
	assert_int_equal(unlink(path), 0);
	put("hang", "troika-hang.so", 0644);
	assert_int_equal(plugin_set_load_dirs(&ps, dirs, 1), 1);
	assert_int_equal(nloaded_events, 3);
	plugin_set_release_unused(&ps, use_only_flaky, NULL);
	plugin_set_free(&ps);
}

static int dummy_new(const struct troika_host *h, struct troika_instance *i, void **s)
{
	(void)h; (void)i; *s = NULL; return 0;
}
static void dummy_free(void *s) { (void)s; }
static void dummy_check(void *s, struct troika_task *t) { (void)s; (void)t; }
static void dummy_action(void *s, struct troika_task *t, const char *n,
    const char *const *argv, size_t argc)
{
	(void)s; (void)t; (void)n; (void)argv; (void)argc;
}

static void
test_descriptor_validation(void **state)
{
	static const struct troika_option shadow[] = {
		{ .name = "interval", .type = TROIKA_OPT_DURATION }, { .name = NULL },
	};
	static const struct troika_option twice[] = {
		{ .name = "a", .type = TROIKA_OPT_INT },
		{ .name = "a", .type = TROIKA_OPT_STRING }, { .name = NULL },
	};
	static const struct troika_option badtype[] = {
		{ .name = "a", .type = (enum troika_option_type)99 }, { .name = NULL },
	};
	struct troika_plugin d = {
		.abi_major = TROIKA_PLUGIN_ABI_MAJOR, .size = sizeof(d),
		.name = "ok-name_1", .exec_model = TROIKA_EXEC_ASYNC,
		.instance_new = dummy_new, .instance_free = dummy_free,
		.check = dummy_check,
	};
	struct troika_plugin t;
	const char *why;

	(void)state;
	assert_int_equal(plugin_desc_validate(&d, &why), 0);
	assert_int_equal(plugin_desc_validate(NULL, &why), -EINVAL);
	assert_string_equal(why, "entry function returned NULL");

	t = d; t.abi_major = 2;
	assert_int_equal(plugin_desc_validate(&t, &why), -EINVAL);
	assert_string_equal(why, "ABI major mismatch");
	/* Exactly up to check is enough: cancel is optional. */
	t = d; t.size = offsetof(struct troika_plugin, cancel);
	assert_int_equal(plugin_desc_validate(&t, &why), 0);
	t.size -= 1;
	assert_int_equal(plugin_desc_validate(&t, &why), -EINVAL);
	assert_string_equal(why, "descriptor too small for ABI 1");
	t = d; t.name = "Bad Name";
	assert_int_equal(plugin_desc_validate(&t, &why), -EINVAL);
	t = d; t.name = NULL;
	assert_int_equal(plugin_desc_validate(&t, &why), -EINVAL);
	t = d; t.exec_model = (enum troika_exec_model)7;
	assert_int_equal(plugin_desc_validate(&t, &why), -EINVAL);
	assert_string_equal(why, "invalid exec_model");
	t = d; t.check = NULL;
	assert_int_equal(plugin_desc_validate(&t, &why), -EINVAL);
	t = d; t.options = shadow;
	assert_int_equal(plugin_desc_validate(&t, &why), -EINVAL);
	assert_non_null(strstr(why, "shadows a host key"));
	t = d; t.options = twice;
	assert_int_equal(plugin_desc_validate(&t, &why), -EINVAL);
	assert_string_equal(why, "option declared twice");
	static const struct troika_action acts[] = {
		{ .name = "restart", .max_args = 0 },
		{ .name = "replicate", .min_args = 2, .max_args = 2 },
		{ .name = NULL },
	};
	static const struct troika_action acts_twice[] = {
		{ .name = "restart" }, { .name = "restart" }, { .name = NULL },
	};
	static const struct troika_action acts_bad[] = {
		{ .name = "x", .min_args = 2, .max_args = 1 }, { .name = NULL },
	};
	t = d; t.actions = acts; t.action = dummy_action;
	assert_int_equal(plugin_desc_validate(&t, &why), 0);
	t.action = NULL;
	assert_int_equal(plugin_desc_validate(&t, &why), -EINVAL);
	assert_string_equal(why, "actions declared without an action callback");
	/* A 1.0 plugin's descriptor ends before actions: never read. */
	t.size = offsetof(struct troika_plugin, actions);
	assert_int_equal(plugin_desc_validate(&t, &why), 0);
	t = d; t.actions = acts_twice; t.action = dummy_action;
	assert_int_equal(plugin_desc_validate(&t, &why), -EINVAL);
	assert_string_equal(why, "action declared twice");
	t = d; t.actions = acts_bad; t.action = dummy_action;
	assert_int_equal(plugin_desc_validate(&t, &why), -EINVAL);
	t = d; t.options = badtype;
	assert_int_equal(plugin_desc_validate(&t, &why), -EINVAL);
	assert_string_equal(why, "option with an invalid type");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refuses_bad_plugins_and_loads_the_rest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_loose_directory_and_foreign_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_detection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_unused, setup, teardown),
		cmocka_unit_test(test_descriptor_validation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
