/*
 * Agent configuration: the main YAML file plus a drop-in directory of check
 * files (every conf.d/NAME.yaml, read in name order). Every key is known: an unknown
 * key, a wrong type or an out-of-range value is an error naming
 * file:line:column and what was expected. Plugin options are validated
 * against the option declarations of the plugin (struct troika_option), so
 * a typo can never silently disable a check.
 *
 * Main file keys:
 *   node: <string>                 default: the host name
 *   plugin_dirs: [<dir>, ...]      default: [TROIKA_DEFAULT_PLUGIN_DIR]
 *   include: <dir>                 drop-in directory; relative to the main
 *                                  file's directory; default: none
 *   workers: <int 1..256>          blocking-plugin worker threads; default 4
 *   metrics: { listen: "host:port" }  default 127.0.0.1:9464; "" disables
 *   log: { level: err|warning|info|debug, target: stderr|syslog }
 *   defaults: { interval: <duration>, timeout: <duration>,
 *               action_timeout: <duration> }  10s / 5s / 2m
 *   coordinators:                  where the agent reports; default: none
 *     targets: [ "host:port", ... ]   1..16 troika-coord gRPC endpoints
 *     heartbeat: <duration>        sent when silent this long; 5s
 *                                  (a coordinator's Welcome may override)
 *     timeout: <duration>          a silent coordinator is left after
 *                                  this long; default 3 heartbeats
 *     max_queued_samples: <int>    metric samples kept per coordinator
 *                                  while it is slow or away; 100000
 *     tls: { ca: FILE, cert: FILE, key: FILE }  TLS (ca: verify the
 *                                  coordinator; cert+key: mutual TLS)
 *   checks: [ <check>, ... ]
 * Drop-in files hold only `checks:`.
 * A check: name (unique, [A-Za-z0-9_.-]+), plugin, optional interval and
 * timeout (100ms..7d; timeout <= interval), optional action_timeout (the
 * deadline of its actions: restarts and bootstraps take longer than a
 * check; 1s..1h), optional service (how to start,
 * stop and restart what the check watches), and the plugin's own options as
 * further keys of the same mapping:
 *   service:
 *     manager: exec                      argv lists run without a shell,
 *     start: [argv...]                   each optional; restart without
 *     stop: [argv...]                    its own command is stop + start
 *     restart: [argv...]
 *   service:
 *     manager: systemd                   unit jobs over D-Bus
 *     unit: nginx.service
 *   service:
 *     pidfile: /run/redis/redis.pid      with or without a manager: the
 *                                        main process's exit runs the
 *                                        check at once (pidfd)
 */
#ifndef TROIKA_CONF_H
#define TROIKA_CONF_H

#include <stddef.h>
#include <stdint.h>

#include <troika/plugin.h>

struct conf_pos {
	const char *file; /* owned by the struct agent_conf */
	int line;         /* 1-based */
	int col;          /* 1-based */
};

/* One declared plugin option with its effective value. */
struct conf_value {
	char *name;
	enum troika_option_type type;
	int isset;           /* given in the file (not a default) */
	int hasvalue;        /* isset, or a default exists */
	struct conf_pos pos; /* of the value; of the check if not set */
	char *str;           /* scalar text as written (or the default) */
	int64_t num;         /* INT, BOOL (0/1), DURATION (ms), SIZE (bytes) */
	char **list;         /* STRING_LIST */
	size_t nlist;
	char **keys;         /* STRING_MAP, in file order */
	char **vals;
	size_t nmap;
};

enum conf_service_manager {
	CONF_SERVICE_NONE = 0,
	CONF_SERVICE_EXEC = 1,
	CONF_SERVICE_SYSTEMD = 2,
};

/* How the host starts, stops and restarts a check's service. */
struct conf_service {
	enum conf_service_manager manager;
	char **start;
	size_t nstart;
	char **stop;
	size_t nstop;
	char **restart;
	size_t nrestart;
	char *unit; /* systemd */
	/*
	 * The service's main process, watched with a pidfd: its exit makes
	 * the check run at once. May be the only key (manager NONE then).
	 */
	char *pidfile;
};

struct conf_check {
	char *name;
	char *plugin;
	int64_t interval_ms;
	int64_t timeout_ms;
	int64_t action_timeout_ms;
	struct conf_pos pos;        /* of the check's mapping */
	struct conf_pos plugin_pos; /* of the plugin value */
	/*
	 * The plugin was not among the known plugins (non-strict load):
	 * options are unvalidated and nopts is 0; the check cannot run.
	 */
	int plugin_missing;
	struct conf_service service;
	/* One entry per declared option, in declaration order. */
	struct conf_value *opts;
	size_t nopts;
	/*
	 * Canonical text of everything that defines this check (plugin,
	 * interval, timeout, option values). Equal text = unchanged check,
	 * which SIGHUP keeps running with its state.
	 */
	char *canonical;
};

/* Where and how the agent reports (its `coordinators:` section). */
struct conf_uplink {
	char **targets;            /* "host:port"; none: report nowhere */
	size_t ntargets;
	int64_t heartbeat_ms;
	int64_t timeout_ms;
	int64_t max_queued_samples;
	int tls;                   /* the tls key was given */
	char *tls_ca;              /* resolved paths, or NULL */
	char *tls_cert;
	char *tls_key;
};

/* Same coordinators, same settings: a reload keeps the streams. */
int conf_uplink_equal(const struct conf_uplink *a, const struct conf_uplink *b);

struct agent_conf {
	char *path;            /* main file */
	char *node;
	char **plugin_dirs;
	size_t nplugin_dirs;
	char *include_dir;     /* resolved path or NULL */
	int workers;
	char *metrics_listen;  /* "host:port", or "" when disabled */
	int log_level;         /* syslog level */
	int log_syslog;        /* 1: target syslog */
	int64_t default_interval_ms;
	int64_t default_timeout_ms;
	int64_t default_action_timeout_ms;
	struct conf_uplink uplink;
	struct conf_check *checks; /* main file first, then drop-ins by name */
	size_t nchecks;
	char **files;          /* every file read; conf_pos.file points here */
	size_t nfiles;
};

/* Error messages, one per problem, "file:line:col: what was expected". */
struct conf_errors {
	char **msgs;
	size_t n;
};

/* Looks up a plugin's option declarations; NULL when no such plugin. */
typedef const struct troika_option *(*conf_plugin_lookup_fn)(
    const char *plugin, void *arg);

enum conf_flags {
	/* An unknown plugin is an error (else: check kept, plugin_missing). */
	CONF_STRICT_PLUGINS = 1 << 0,
};

/*
 * Load and validate the configuration. On success returns the config and
 * leaves errs empty; on any error returns NULL and fills errs (all problems
 * found, not just the first).
 */
struct agent_conf *conf_load(const char *path, conf_plugin_lookup_fn lookup,
    void *lookup_arg, int flags, struct conf_errors *errs);

/* Resolve only plugin_dirs (and nothing else) of a config file, so the
 * caller can load plugins before the full validation. NULL on error, with
 * errs filled. The returned array and strings are the caller's; free with
 * conf_strv_free(). */
char **conf_plugin_dirs(const char *path, size_t *ret_n,
    struct conf_errors *errs);
void conf_strv_free(char **v, size_t n);

void conf_free(struct agent_conf *conf);
void conf_errors_clear(struct conf_errors *errs);

/* Find a check's option by name; NULL if the plugin declares none such. */
const struct conf_value *conf_check_opt(const struct conf_check *check,
    const char *name);

/*
 * Write the effective configuration as YAML (defaults filled in, durations
 * and sizes in canonical form, checks in load order, each preceded by a
 * "# file:line" comment) to out. Deterministic: golden tests diff it.
 */
struct evbuffer;
void conf_print(const struct agent_conf *conf, struct evbuffer *out);

#endif
