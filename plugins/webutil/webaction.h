/*
 * webaction: the start, stop, restart and reload actions of the phpfpm and
 * nginx plugins. start/stop/restart go through host->service_control (the
 * check's `service:` key); reload runs the check's reload_command (argv,
 * no shell) through host->spawn, since the service manager knows no
 * reload. Compiled into each plugin; not a plugin itself.
 */
#ifndef TROIKA_WEBACTION_H
#define TROIKA_WEBACTION_H

#include <stddef.h>

#include <troika/plugin.h>

struct webaction;

/* The actions, NULL-name terminated, for the descriptor. */
extern const struct troika_action webaction_actions[];

/* The reload_command option, for a plugin's option table. */
#define WEBACTION_OPTION_RELOAD { .name = "reload_command", \
	.type = TROIKA_OPT_STRING_LIST, \
	.help = "argv of the reload action, e.g. [/usr/sbin/nginx, -s, " \
	    "reload]" }

/*
 * Reads reload_command (an empty list, or an empty or relative argv[0],
 * is refused with a log line). Returns 0 with *ret set, or a negative
 * errno.
 */
int webaction_new(const struct troika_host *host,
    struct troika_instance *inst, struct webaction **ret);
/* Abandons a running action. Accepts NULL. */
void webaction_free(struct webaction *wa);

/* Run action name (one of webaction_actions) as task; reports once. */
void webaction_run(struct webaction *wa, struct troika_task *task,
    const char *name);
/* Abandon task if it is this module's running action. */
void webaction_cancel(struct webaction *wa, struct troika_task *task);

#endif
