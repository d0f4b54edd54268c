#include "agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "check_host.h"
#include "conf.h"
#include "emit.h"
#include "log.h"
#include "metrics.h"

static double
wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
print_conf_errors(const struct conf_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		log_warnx("%s", errs->msgs[i]);
}

/*
 * The plugin directories to use: --plugin-dir if given, else the file's.
 * Returns an array the caller frees with conf_strv_free(), or NULL.
 */
static char **
agent_plugin_dirs(const struct agent *a, size_t *ret_n, struct conf_errors *errs)
{
	char **dirs;

	if (a->plugin_dirs_override == NULL)
		return conf_plugin_dirs(a->config_path, ret_n, errs);
	if ((dirs = calloc(a->nplugin_dirs_override, sizeof(*dirs))) == NULL)
		return NULL;
	for (size_t i = 0; i < a->nplugin_dirs_override; i++) {
		if ((dirs[i] = strdup(a->plugin_dirs_override[i])) == NULL) {
			conf_strv_free(dirs, i);
			return NULL;
		}
	}
	*ret_n = a->nplugin_dirs_override;
	return dirs;
}

static void
agent_apply_logging(const struct agent_conf *conf)
{
	log_setlevel(conf->log_level);
}

static int
agent_plugin_in_use(const struct plugin *p, void *arg)
{
	return check_host_uses_plugin(arg, p);
}

int
agent_start(struct agent *a)
{
	struct conf_errors errs = { 0 };
	char **dirs;
	size_t ndirs = 0;

	a->start_time = wall_now();
	if ((dirs = agent_plugin_dirs(a, &ndirs, &errs)) == NULL) {
		print_conf_errors(&errs);
		conf_errors_clear(&errs);
		return -1;
	}
	plugin_set_load_dirs(&a->plugins, dirs, ndirs);
	conf_strv_free(dirs, ndirs);

	/* Not strict: a check whose plugin was refused is reported, not fatal. */
	a->conf = conf_load(a->config_path, plugin_set_options, &a->plugins, 0, &errs);
	if (a->conf == NULL) {
		print_conf_errors(&errs);
		conf_errors_clear(&errs);
		return -1;
	}
	agent_apply_logging(a->conf);
	if ((a->checks = check_host_new(a->base, a->conf->workers)) == NULL) {
		log_warn("creating the check host");
		return -1;
	}
	if (a->conf->metrics_listen[0] != '\0' &&
	    (a->http = agent_http_start(a, a->conf->metrics_listen)) == NULL)
		return -1;
	if (a->admin_path != NULL && a->admin_path[0] != '\0' &&
	    (a->admin = agent_admin_start(a, a->admin_path)) == NULL)
		return -1;
	if ((a->commands = agent_commands_new(a->checks,
	    agent_uplink_send)) == NULL) {
		log_warn("commands");
		return -1;
	}
	/* Before the first results, so that the very first ones go out. */
	if (a->conf->uplink.ntargets > 0 &&
	    (a->uplink = agent_uplink_start(a)) == NULL)
		return -1;
	check_host_apply(a->checks, a->conf, &a->plugins);
	/* Vetted and validated against; now only what checks use stays. */
	plugin_set_release_unused(&a->plugins, agent_plugin_in_use, a->checks);
	a->last_reload_ok = 1;
	a->last_reload_success_time = wall_now();

	char msg[256];
	snprintf(msg, sizeof(msg), "node %s, %zu checks, %zu plugins, version %s",
	    a->conf->node, check_host_count(a->checks), a->plugins.nplugins,
	    TROIKA_VERSION);
	struct troika_event ev = {
		.kind = EVENT_AGENT_STARTED, .old_status = -1, .new_status = -1,
		.message = msg,
	};
	event_emit(&ev);
	return 0;
}

static void
agent_reject(struct agent *a, struct conf_errors *errs)
{
	struct troika_event ev = {
		.kind = EVENT_CONFIG_REJECTED, .old_status = -1, .new_status = -1,
		.message = "configuration has errors; keeping the running one",
	};

	print_conf_errors(errs);
	conf_errors_clear(errs);
	a->last_reload_ok = 0;
	event_emit(&ev);
}

void
agent_reload(struct agent *a)
{
	struct conf_errors errs = { 0 };
	struct agent_conf *conf;
	struct plugin *p, *next;
	char **dirs;
	int uplink_same;
	size_t ndirs = 0;

	log_info("reloading configuration from %s", a->config_path);
	if ((dirs = agent_plugin_dirs(a, &ndirs, &errs)) == NULL) {
		agent_reject(a, &errs);
		return;
	}
	/* Changed or removed plugin files: their checks go first, then the
	 * code, so the new file is really loaded (dlopen would otherwise hand
	 * back the mapping it already has). */
	for (p = a->plugins.plugins; p != NULL; p = next) {
		next = p->next;
		if (plugin_set_is_stale(p, dirs, ndirs)) {
			check_host_drop_plugin(a->checks, p);
			plugin_set_unload(&a->plugins, p);
		}
	}
	plugin_set_load_dirs(&a->plugins, dirs, ndirs);
	conf_strv_free(dirs, ndirs);

	conf = conf_load(a->config_path, plugin_set_options, &a->plugins, 0, &errs);
	if (conf == NULL) {
		agent_reject(a, &errs);
		/* Recreate checks dropped with a stale plugin, on the old config. */
		check_host_apply(a->checks, a->conf, &a->plugins);
		plugin_set_release_unused(&a->plugins, agent_plugin_in_use,
		    a->checks);
		return;
	}
	if (conf->workers != a->conf->workers)
		log_warnx("workers changed from %d to %d: takes effect at the "
		    "next restart", a->conf->workers, conf->workers);
	if (strcmp(conf->metrics_listen, a->conf->metrics_listen) != 0) {
		struct agent_http *http = NULL;

		agent_http_free(a->http);
		a->http = NULL;
		if (conf->metrics_listen[0] != '\0' &&
		    (http = agent_http_start(a, conf->metrics_listen)) == NULL)
			log_warnx("metrics endpoint not available until the "
			    "next successful reload");
		a->http = http;
	}
	uplink_same = conf_uplink_equal(&conf->uplink, &a->conf->uplink);
	if (!uplink_same) {
		/* New targets or settings: new streams, after the swap. */
		agent_uplink_free(a->uplink);
		a->uplink = NULL;
	}
	check_host_apply(a->checks, conf, &a->plugins);
	plugin_set_release_unused(&a->plugins, agent_plugin_in_use, a->checks);
	conf_free(a->conf);
	a->conf = conf;
	agent_apply_logging(conf);
	if (uplink_same)
		agent_uplink_hello(a->uplink);
	else if (conf->uplink.ntargets > 0 &&
	    (a->uplink = agent_uplink_start(a)) == NULL)
		log_warnx("not reporting to coordinators until the next "
		    "successful reload");
	a->last_reload_ok = 1;
	a->last_reload_success_time = wall_now();

	char msg[128];
	snprintf(msg, sizeof(msg), "%zu checks, %zu plugins",
	    check_host_count(a->checks), a->plugins.nplugins);
	struct troika_event ev = {
		.kind = EVENT_CONFIG_RELOADED, .old_status = -1,
		.new_status = -1, .message = msg,
	};
	event_emit(&ev);
}

void
agent_stop(struct agent *a)
{
	struct troika_event ev = {
		.kind = EVENT_AGENT_STOPPING, .old_status = -1, .new_status = -1,
	};

	event_emit(&ev);
	agent_uplink_free(a->uplink);
	a->uplink = NULL;
	agent_admin_free(a->admin);
	a->admin = NULL;
	agent_http_free(a->http);
	a->http = NULL;
	/* Before the host: forgets the actions still running. */
	agent_commands_free(a->commands);
	a->commands = NULL;
	check_host_free(a->checks);
	a->checks = NULL;
	plugin_set_free(&a->plugins);
	conf_free(a->conf);
	a->conf = NULL;
}

void
agent_metrics(const struct agent *a, struct evbuffer *out)
{
	const struct troika_label build[] = {
		{ "version", TROIKA_VERSION },
		{ "plugin_abi", "1" },
	};
	const struct troika_label node[] = { { "node", a->conf->node } };

	metrics_family(out, "troika_build_info", "gauge",
	    "Build of this agent (always 1).");
	metrics_sample(out, "troika_build_info", build, 2, NULL, 1);
	metrics_family(out, "troika_agent_info", "gauge",
	    "The node this agent runs on (always 1).");
	metrics_sample(out, "troika_agent_info", node, 1, NULL, 1);
	metrics_family(out, "troika_agent_start_time_seconds", "gauge",
	    "Wall-clock time the agent started.");
	metrics_sample(out, "troika_agent_start_time_seconds", NULL, 0, NULL,
	    a->start_time);
	metrics_family(out, "troika_config_last_reload_successful", "gauge",
	    "1 if the last configuration (re)load succeeded.");
	metrics_sample(out, "troika_config_last_reload_successful", NULL, 0,
	    NULL, a->last_reload_ok);
	metrics_family(out, "troika_config_last_reload_success_timestamp_seconds",
	    "gauge", "Wall-clock time of the last successful (re)load.");
	metrics_sample(out, "troika_config_last_reload_success_timestamp_seconds",
	    NULL, 0, NULL, a->last_reload_success_time);
	metrics_write_process(out);
	plugin_set_metrics(&a->plugins, out);
	check_host_metrics(a->checks, out);
	agent_uplink_metrics(a->uplink, out);
	if (a->uplink != NULL)
		agent_commands_metrics(a->commands, out);
}
