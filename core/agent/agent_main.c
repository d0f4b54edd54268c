/*
 * troika-agent: runs the checks of one node.
 *
 *   troika-agent [--config FILE] [--plugin-dir DIR ...]
 *   troika-agent --config FILE --check-config [--print]
 *   troika-agent --list-plugins [--plugin-dir DIR ...]
 *   troika-agent [--admin-socket PATH] action CHECK ACTION [ARG...]
 *   troika-agent [--admin-socket PATH] status
 */
#include <errno.h>
#include <stddef.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "agent.h"
#include "conf.h"
#include "log.h"
#include "spawn.h"

#ifndef TROIKA_DEFAULT_ADMIN_SOCKET
#define TROIKA_DEFAULT_ADMIN_SOCKET "/run/troika-agent.sock"
#endif

#ifndef TROIKA_DEFAULT_CONFIG
#define TROIKA_DEFAULT_CONFIG "/etc/troika/agent.yaml"
#endif

enum {
	OPT_CHECK_CONFIG = 256,
	OPT_PRINT,
	OPT_PLUGIN_DIR,
	OPT_LIST_PLUGINS,
	OPT_VERSION,
	OPT_ADMIN_SOCKET,
};

static const struct option long_options[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "check-config", no_argument, NULL, OPT_CHECK_CONFIG },
	{ "print", no_argument, NULL, OPT_PRINT },
	{ "plugin-dir", required_argument, NULL, OPT_PLUGIN_DIR },
	{ "list-plugins", no_argument, NULL, OPT_LIST_PLUGINS },
	{ "debug", no_argument, NULL, 'd' },
	{ "admin-socket", required_argument, NULL, OPT_ADMIN_SOCKET },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void __attribute__((noreturn))
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: troika-agent [--config FILE] [--plugin-dir DIR]... [--debug]\n"
	    "       troika-agent [--config FILE] --check-config [--print]\n"
	    "       troika-agent --list-plugins [--config FILE | --plugin-dir DIR...]\n"
	    "       troika-agent [--admin-socket PATH] action CHECK ACTION [ARG...]\n"
	    "       troika-agent [--admin-socket PATH] status\n"
	    "\n"
	    "  -c, --config FILE   main configuration (default %s)\n"
	    "      --check-config  validate the configuration, exit 0 if valid, 1 if not\n"
	    "      --print         with --check-config: print the effective configuration\n"
	    "      --plugin-dir D  load plugins from D instead of the configured plugin_dirs\n"
	    "      --list-plugins  list loadable plugins and their options\n"
	    "  -d, --debug         log at debug level\n"
	    "      --admin-socket P  the local admin socket (default %s; \"\" disables)\n"
	    "\n"
	    "Signals: SIGHUP reloads configuration and plugins; SIGTERM stops.\n"
	    "action and status exit 0 if done, 1 if failed, 3 if unknown, 2 on error.\n",
	    TROIKA_DEFAULT_CONFIG, TROIKA_DEFAULT_ADMIN_SOCKET);
	exit(status);
}

static const char *
option_type_name(enum troika_option_type t)
{
	switch (t) {
	case TROIKA_OPT_STRING: return "string";
	case TROIKA_OPT_INT: return "int";
	case TROIKA_OPT_BOOL: return "bool";
	case TROIKA_OPT_DURATION: return "duration";
	case TROIKA_OPT_SIZE: return "size";
	case TROIKA_OPT_STRING_LIST: return "list";
	case TROIKA_OPT_STRING_MAP: return "map";
	}
	return "?";
}

static int
list_plugins(struct agent *a)
{
	for (struct plugin *p = a->plugins.plugins; p != NULL; p = p->next) {
		const struct troika_plugin *d = p->desc;
		printf("%s %s (%s) - %s\n  file: %s\n", d->name,
		    d->version ? d->version : "?",
		    d->exec_model == TROIKA_EXEC_ASYNC ? "async" : "blocking",
		    d->description ? d->description : "", p->path);
		for (const struct troika_option *o = d->options; o && o->name; o++)
			printf("  %-22s %-8s %s%s%s%s%s\n", o->name,
			    option_type_name(o->type),
			    o->required ? "(required) " : "",
			    o->default_value ? "[default " : "",
			    o->default_value ? o->default_value : "",
			    o->default_value ? "] " : "",
			    o->help ? o->help : "");
		if (d->size >= offsetof(struct troika_plugin, action) +
		    sizeof(d->action) && d->actions != NULL)
			for (const struct troika_action *act = d->actions; act->name; act++)
				printf("  action %s%s%s: %s\n", act->name,
				    act->usage ? " " : "", act->usage ? act->usage : "",
				    act->help ? act->help : "");
	}
	for (struct plugin_refusal *r = a->plugins.refused; r; r = r->next)
		printf("refused %s: %s\n", r->path, r->reason);
	return 0;
}

static int
check_config(struct agent *a, int print)
{
	struct conf_errors errs = { 0 };
	struct agent_conf *conf;
	char **dirs;
	size_t ndirs = 0;

	if (a->plugin_dirs_override != NULL) {
		dirs = a->plugin_dirs_override;
		ndirs = a->nplugin_dirs_override;
		plugin_set_load_dirs(&a->plugins, dirs, ndirs);
	} else if ((dirs = conf_plugin_dirs(a->config_path, &ndirs, &errs)) != NULL) {
		plugin_set_load_dirs(&a->plugins, dirs, ndirs);
		conf_strv_free(dirs, ndirs);
	} else {
		goto fail;
	}
	conf = conf_load(a->config_path, plugin_set_options, &a->plugins,
	    CONF_STRICT_PLUGINS, &errs);
	if (conf == NULL)
		goto fail;
	if (print) {
		struct evbuffer *out = evbuffer_new();
		if (out != NULL) {
			conf_print(conf, out);
			while (evbuffer_get_length(out) > 0 &&
			    evbuffer_write(out, STDOUT_FILENO) > 0)
				;
			evbuffer_free(out);
		}
	}
	conf_free(conf);
	plugin_set_free(&a->plugins);
	return 0;
fail:
	/* Exactly the error lines: golden tests and scripts read them. */
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	conf_errors_clear(&errs);
	plugin_set_free(&a->plugins);
	return 1;
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct agent *a = arg;

	(void)what;
	if (sig == SIGHUP) {
		agent_reload(a);
		return;
	}
	log_info("received %s, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	event_base_loopexit(a->base, NULL);
}

int
main(int argc, char *argv[])
{
	struct agent a = {
		.config_path = (char *)(uintptr_t)TROIKA_DEFAULT_CONFIG,
		.admin_path = TROIKA_DEFAULT_ADMIN_SOCKET,
	};
	struct event *sig_hup = NULL, *sig_term = NULL, *sig_int = NULL;
	int do_check = 0, do_print = 0, do_list = 0, debug = 0, ch, rc = 1;

	while ((ch = getopt_long(argc, argv, "c:dh", long_options, NULL)) != -1) {
		switch (ch) {
		case 'c':
			a.config_path = optarg;
			break;
		case OPT_CHECK_CONFIG:
			do_check = 1;
			break;
		case OPT_PRINT:
			do_print = 1;
			break;
		case OPT_PLUGIN_DIR: {
			char **n = realloc(a.plugin_dirs_override,
			    (a.nplugin_dirs_override + 1) * sizeof(*n));
			if (n == NULL)
				fatal("plugin dirs");
			n[a.nplugin_dirs_override++] = optarg;
			a.plugin_dirs_override = n;
			break;
		}
		case OPT_ADMIN_SOCKET:
			a.admin_path = optarg;
			break;
		case OPT_LIST_PLUGINS:
			do_list = 1;
			break;
		case 'd':
			debug = 1;
			break;
		case OPT_VERSION:
			printf("troika-agent %s (plugin ABI %d.%d)\n", TROIKA_VERSION,
			    TROIKA_PLUGIN_ABI_MAJOR, TROIKA_PLUGIN_ABI_MINOR);
			return 0;
		case 'h':
			usage(0);
		default:
			usage(1);
		}
	}
	if (optind < argc && (strcmp(argv[optind], "action") == 0 ||
	    strcmp(argv[optind], "status") == 0)) {
		if ((strcmp(argv[optind], "action") == 0 && argc - optind < 3) ||
		    (strcmp(argv[optind], "status") == 0 && argc - optind != 1) ||
		    a.admin_path[0] == '\0')
			usage(2);
		free(a.plugin_dirs_override);
		return agent_client(a.admin_path, argc - optind, &argv[optind]);
	}
	if (optind != argc || (do_print && !do_check))
		usage(1);

	/* Validation prints only what is wrong: no start-up chatter. */
	log_init("troika-agent", LOG_TARGET_STDERR,
	    do_check || do_list ? LOG_WARNING : (debug ? LOG_DEBUG : LOG_INFO));
	plugin_set_init(&a.plugins, geteuid());

	if (do_check) {
		rc = check_config(&a, do_print);
		free(a.plugin_dirs_override);
		return rc;
	}
	if (do_list) {
		struct conf_errors errs = { 0 };
		char **dirs = a.plugin_dirs_override;
		size_t ndirs = a.nplugin_dirs_override;
		if (dirs == NULL &&
		    (dirs = conf_plugin_dirs(a.config_path, &ndirs, &errs)) == NULL) {
			for (size_t i = 0; i < errs.n; i++)
				fprintf(stderr, "%s\n", errs.msgs[i]);
			conf_errors_clear(&errs);
			return 1;
		}
		plugin_set_load_dirs(&a.plugins, dirs, ndirs);
		list_plugins(&a);
		if (dirs != a.plugin_dirs_override)
			conf_strv_free(dirs, ndirs);
		plugin_set_free(&a.plugins);
		free(a.plugin_dirs_override);
		return 0;
	}

	/* Child processes get default dispositions back (spawn.c). */
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0)
		fatalx("libevent without thread support");
	if ((a.base = event_base_new()) == NULL)
		fatalx("cannot create the event base");
	sig_hup = evsignal_new(a.base, SIGHUP, signal_cb, &a);
	sig_term = evsignal_new(a.base, SIGTERM, signal_cb, &a);
	sig_int = evsignal_new(a.base, SIGINT, signal_cb, &a);
	if (sig_hup == NULL || sig_term == NULL || sig_int == NULL ||
	    evsignal_add(sig_hup, NULL) < 0 || evsignal_add(sig_term, NULL) < 0 ||
	    evsignal_add(sig_int, NULL) < 0)
		fatalx("cannot install signal handlers");

	if (agent_start(&a) == 0) {
		if (debug)
			log_setlevel(LOG_DEBUG);
		event_base_dispatch(a.base);
		rc = 0;
	}
	agent_stop(&a);
	spawn_shutdown();
	event_free(sig_hup);
	event_free(sig_term);
	event_free(sig_int);
	/*
	 * A bufferevent freed with a deferred callback queued is finalized
	 * only when the loop runs that callback; event_base_free() cancels
	 * it instead, and the connection leaks (LeakSanitizer saw it after a
	 * leader handover). One pass of the loop lets them finish.
	 */
	event_base_loop(a.base, EVLOOP_NONBLOCK);
	event_base_free(a.base);
	libevent_global_shutdown();
	free(a.plugin_dirs_override);
	return rc;
}
