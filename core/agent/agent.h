/*
 * troika-agent: the configuration, the loaded plugins, the check host and
 * the HTTP endpoint of one node, and the reload that ties them together.
 */
#ifndef TROIKA_AGENT_H
#define TROIKA_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "plugin_set.h"

struct event_base;
struct agent_conf;
struct check_host;
struct agent_http;
struct agent_admin;
struct agent_uplink;

struct agent {
	struct event_base *base;
	char *config_path;
	char **plugin_dirs_override; /* --plugin-dir, or NULL */
	size_t nplugin_dirs_override;

	struct agent_conf *conf;
	struct plugin_set plugins;
	struct check_host *checks;
	struct agent_http *http;
	const char *admin_path;      /* --admin-socket, or "" for none */
	struct agent_admin *admin;
	struct agent_uplink *uplink; /* NULL: no coordinators configured */
	struct agent_commands *commands; /* fencing and command ids */

	int last_reload_ok;
	double last_reload_success_time;
	double start_time;
};

/*
 * Load the configuration and plugins and start checking. Configuration
 * errors are printed (file:line:col) and make this fail; refused plugins
 * do not. Returns 0 or -1.
 */
int agent_start(struct agent *a);

/*
 * SIGHUP: reload plugins (new, changed, removed) and configuration,
 * keeping unchanged checks as they are. A bad configuration is rejected
 * with its errors logged, and the running one stays.
 */
void agent_reload(struct agent *a);

void agent_stop(struct agent *a);

/* The whole /metrics page. */
struct evbuffer;
void agent_metrics(const struct agent *a, struct evbuffer *out);

/* agent_admin.c: the local admin socket (unix, 0600). */
struct agent_admin *agent_admin_start(struct agent *a, const char *path);
void agent_admin_free(struct agent_admin *admin);

/* agent_client.c: `troika-agent action|status` talking to that socket.
 * Returns the process exit status. */
int agent_client(const char *path, int argc, char **argv);

/*
 * agent_uplink.c: the streams to the coordinators of conf->uplink. NULL
 * when none are configured (or on failure, logged). hello() after a
 * reload tells every coordinator the new checks and results.
 */
struct agent_uplink *agent_uplink_start(struct agent *a);
void agent_uplink_hello(struct agent_uplink *up);
void agent_uplink_free(struct agent_uplink *up);
void agent_uplink_metrics(const struct agent_uplink *up, struct evbuffer *out);
/* agent_command_send_fn for commands that came on an uplink stream. */
int agent_uplink_send(void *sender, const void *msg, size_t len);

/*
 * agent_command.c: coordinator commands, fenced and run at most once.
 * send() gives a packed AgentMessage (a CommandResult) to the sender the
 * command came with; it returns 0 or a negative errno.
 */
struct agent_commands;
struct Troika__V1__Command;
struct check_host;
typedef int (*agent_command_send_fn)(void *sender, const void *msg,
    size_t len);
struct agent_commands *agent_commands_new(struct check_host *checks,
    agent_command_send_fn send);
void agent_commands_free(struct agent_commands *cmds);
/* from names the sender in logs (e.g. the coordinator's address). */
void agent_commands_handle(struct agent_commands *cmds, void *sender,
    const char *from, const struct Troika__V1__Command *cmd);
/* The highest fencing token seen, and one seen elsewhere (Welcome). */
uint64_t agent_commands_token(const struct agent_commands *cmds);
void agent_commands_see_token(struct agent_commands *cmds, uint64_t token);
/* The sender is going away: answers for it are only kept. */
void agent_commands_sender_gone(struct agent_commands *cmds, void *sender);
void agent_commands_metrics(const struct agent_commands *cmds,
    struct evbuffer *out);

/* agent_http.c */
struct agent_http *agent_http_start(struct agent *a, const char *listen);
const char *agent_http_listen(const struct agent_http *h);
void agent_http_free(struct agent_http *h);

#endif
